/* Strict readers for the fields of a protocol message (internal to proto/).
 *
 * Each reader looks up one member of a JSON object, checks its JSON type and
 * range, and on failure writes "WHERE.NAME: reason" into the context's error
 * buffer and returns the matching hpo_proto_status. */
#ifndef HPO_MSG_FIELDS_H
#define HPO_MSG_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "hpo/protocol.h"

typedef struct {
    const char *where; /* path of the object being read, e.g. "trial.budget" */
    char *err;
    size_t errlen;
} hpo_field_ctx;

/* Formats "WHERE.NAME: reason" into ctx->err and returns status. */
hpo_proto_status hpo_field_fail(const hpo_field_ctx *ctx, hpo_proto_status status,
                                const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reads an integral JSON number in [min, max]. An optional field that is
 * absent or null leaves *out unchanged. */
hpo_proto_status hpo_field_int(const hpo_field_ctx *ctx, const cJSON *obj,
                               const char *name, bool required,
                               int64_t min, int64_t max, int64_t *out);

/* Checks one JSON value, such as an array element, as hpo_field_int()
 * does; name is used only in the error message. */
hpo_proto_status hpo_field_int_item(const hpo_field_ctx *ctx, const cJSON *item,
                                    const char *name, int64_t min, int64_t max,
                                    int64_t *out);

/* Reads a finite JSON number >= min. With `nullable`, JSON null reads as
 * NAN; the field is required either way. */
hpo_proto_status hpo_field_number(const hpo_field_ctx *ctx, const cJSON *obj,
                                  const char *name, double min, bool nullable,
                                  double *out);

/* Copies a JSON string of at most max_len bytes into out, which has room
 * for max_len + 1 bytes. An optional field that is absent reads as "". */
hpo_proto_status hpo_field_string(const hpo_field_ctx *ctx, const cJSON *obj,
                                  const char *name, bool required,
                                  char *out, size_t max_len);

/* Finds a member that must be a JSON object. An optional field that is
 * absent sets *out to NULL. The object stays owned by obj. */
hpo_proto_status hpo_field_object(const hpo_field_ctx *ctx, const cJSON *obj,
                                  const char *name, bool required,
                                  cJSON **out);

#endif
