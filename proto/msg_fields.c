#include "msg_fields.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

hpo_proto_status hpo_field_fail(const hpo_field_ctx *ctx, hpo_proto_status status,
                                const char *name, const char *fmt, ...)
{
    if (ctx->err == NULL || ctx->errlen == 0)
        return status;

    int n = snprintf(ctx->err, ctx->errlen, "%s.%s: ", ctx->where, name);
    if (n >= 0 && (size_t)n < ctx->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->err + n, ctx->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return status;
}

static const char *json_type_name(const cJSON *item)
{
    if (cJSON_IsNull(item))
        return "null";
    if (cJSON_IsBool(item))
        return "a boolean";
    if (cJSON_IsNumber(item))
        return "a number";
    if (cJSON_IsString(item))
        return "a string";
    if (cJSON_IsArray(item))
        return "an array";
    if (cJSON_IsObject(item))
        return "an object";
    return "an invalid value";
}

hpo_proto_status hpo_field_int(const hpo_field_ctx *ctx, const cJSON *obj,
                               const char *name, bool required,
                               int64_t min, int64_t max, int64_t *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (item == NULL || (!required && cJSON_IsNull(item))) {
        if (!required)
            return HPO_PROTO_OK;
        return hpo_field_fail(ctx, HPO_PROTO_MISSING_FIELD, name,
                              "missing; expected an integer");
    }
    return hpo_field_int_item(ctx, item, name, min, max, out);
}

hpo_proto_status hpo_field_int_item(const hpo_field_ctx *ctx, const cJSON *item,
                                    const char *name, int64_t min, int64_t max,
                                    int64_t *out)
{
    if (!cJSON_IsNumber(item))
        return hpo_field_fail(ctx, HPO_PROTO_WRONG_TYPE, name,
                              "expected an integer, got %s", json_type_name(item));

    double value = item->valuedouble;
    if (!isfinite(value))
        return hpo_field_fail(ctx, HPO_PROTO_INVALID_VALUE, name,
                              "%g is not a finite number", value);
    if (value != floor(value))
        return hpo_field_fail(ctx, HPO_PROTO_INVALID_VALUE, name,
                              "%.17g is not an integer", value);

    /* Compare as doubles first: casting a double outside the int64 range
     * is undefined behaviour. */
    if (value < (double)min)
        return hpo_field_fail(ctx, HPO_PROTO_INVALID_VALUE, name,
                              "%.17g is below the minimum %lld", value, (long long)min);
    if (value > (double)max)
        return hpo_field_fail(ctx, HPO_PROTO_INVALID_VALUE, name,
                              "%.17g is above the maximum %lld", value, (long long)max);

    *out = (int64_t)value;
    return HPO_PROTO_OK;
}

hpo_proto_status hpo_field_number(const hpo_field_ctx *ctx, const cJSON *obj,
                                  const char *name, double min, bool nullable,
                                  double *out)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (item == NULL)
        return hpo_field_fail(ctx, HPO_PROTO_MISSING_FIELD, name,
                              "missing; expected a number");
    if (nullable && cJSON_IsNull(item)) {
        *out = NAN;
        return HPO_PROTO_OK;
    }
    if (!cJSON_IsNumber(item))
        return hpo_field_fail(ctx, HPO_PROTO_WRONG_TYPE, name,
                              "expected a finite number, got %s", json_type_name(item));

    double value = item->valuedouble;
    if (!isfinite(value))
        return hpo_field_fail(ctx, HPO_PROTO_INVALID_VALUE, name,
                              "%g is not a finite number", value);
    if (value < min)
        return hpo_field_fail(ctx, HPO_PROTO_INVALID_VALUE, name,
                              "%g is below the minimum %g", value, min);

    *out = value;
    return HPO_PROTO_OK;
}

hpo_proto_status hpo_field_string(const hpo_field_ctx *ctx, const cJSON *obj,
                                  const char *name, bool required,
                                  char *out, size_t max_len)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (item == NULL) {
        out[0] = '\0';
        if (!required)
            return HPO_PROTO_OK;
        return hpo_field_fail(ctx, HPO_PROTO_MISSING_FIELD, name,
                              "missing; expected a string");
    }
    if (!cJSON_IsString(item) || item->valuestring == NULL)
        return hpo_field_fail(ctx, HPO_PROTO_WRONG_TYPE, name,
                              "expected a string, got %s", json_type_name(item));

    size_t len = strlen(item->valuestring);
    if (len > max_len)
        return hpo_field_fail(ctx, HPO_PROTO_INVALID_VALUE, name,
                              "%zu bytes exceed the limit of %zu", len, max_len);

    memcpy(out, item->valuestring, len + 1);
    return HPO_PROTO_OK;
}

hpo_proto_status hpo_field_object(const hpo_field_ctx *ctx, const cJSON *obj,
                                  const char *name, bool required,
                                  cJSON **out)
{
    cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (item == NULL) {
        *out = NULL;
        if (!required)
            return HPO_PROTO_OK;
        return hpo_field_fail(ctx, HPO_PROTO_MISSING_FIELD, name,
                              "missing; expected an object");
    }
    if (!cJSON_IsObject(item))
        return hpo_field_fail(ctx, HPO_PROTO_WRONG_TYPE, name,
                              "expected an object, got %s", json_type_name(item));

    *out = item;
    return HPO_PROTO_OK;
}
