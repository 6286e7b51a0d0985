/* Answers to hpoctl's queries (best, trials, summary, space, status),
 * built from the database, so that hpod answers over its control socket
 * and `hpoctl --db` answers from the file with the same JSON.
 * docs/hpoctl.md describes each answer. */
#ifndef HPO_DAEMON_CONTROL_H
#define HPO_DAEMON_CONTROL_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "hpo/protocol.h"
#include "hpo/study.h"
#include "storage.h"

/* Default of `summary`'s "top" argument, as in Keras Tuner's
 * results_summary(num_trials=10). */
#define HPO_CONTROL_SUMMARY_TOP 10

typedef struct {
    const hpo_study *study;
    hpo_storage *storage;
    const char *source;    /* "hpod" or "database" */
    const char *tuner;     /* tuner name; NULL when unknown (offline) */
    const cJSON *workers;  /* array of connected workers; NULL offline */
} hpo_control_context;

/* Builds the `data` of a reply to command (stop is not handled here).
 * On failure returns -1, sets *code (HPO_PROTO_INVALID_ARGUMENT for bad
 * args, HPO_PROTO_UNKNOWN_COMMAND, HPO_PROTO_INTERNAL) and writes err.
 * The caller owns *data_out. */
int hpo_control_answer(const hpo_control_context *ctx,
                       hpo_query_command command, const cJSON *args,
                       cJSON **data_out, hpo_proto_status *code,
                       char *err, size_t errlen);

#endif
