#include "fuzz_checks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_rng.h>

#include "hpo/error.h"
#include "hpo/log.h"
#include "hpo/model.h"
#include "hpo/study.h"

void fuzz_checks_init(void)
{
    gsl_set_error_handler_off();
    hpo_log_init("fuzz", HPO_LOG_ERROR);
}

/* Copies data into a NUL-terminated string; NULL when out of memory. */
static char *text_of(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return NULL;
    if (size > 0)
        memcpy(text, data, size);
    text[size] = '\0';
    return text;
}

/* --- messages ------------------------------------------------------------ */

static bool decoder_code(hpo_proto_status st)
{
    return (st >= HPO_PROTO_TOO_LARGE && st <= HPO_PROTO_INVALID_VALUE) ||
           st == HPO_PROTO_INTERNAL;
}

/* Compares two JSON trees exactly: numbers with ==, unlike cJSON_Compare(),
 * which accepts a relative difference of DBL_EPSILON. Object members must
 * come in the same order, as a round trip keeps it. */
static bool json_equal_exact(const cJSON *a, const cJSON *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    if ((a->type & 0xFF) != (b->type & 0xFF))
        return false;
    if (cJSON_IsNumber(a))
        return a->valuedouble == b->valuedouble;
    if (cJSON_IsString(a))
        return strcmp(a->valuestring, b->valuestring) == 0;
    if (!cJSON_IsArray(a) && !cJSON_IsObject(a))
        return true;
    const cJSON *x = a->child, *y = b->child;
    for (; x != NULL && y != NULL; x = x->next, y = y->next) {
        if (cJSON_IsObject(a) && strcmp(x->string, y->string) != 0)
            return false;
        if (!json_equal_exact(x, y))
            return false;
    }
    return x == NULL && y == NULL;
}

/* The JSON trees that a message carries; NULL where its type has none. */
static void trees_of(const hpo_msg *msg, const cJSON *trees[2])
{
    trees[0] = trees[1] = NULL;
    switch (msg->type) {
    case HPO_MSG_TRIAL:
        trees[0] = msg->trial.params;
        trees[1] = msg->trial.model;
        break;
    case HPO_MSG_RESULT:
        trees[0] = msg->result.metrics;
        break;
    case HPO_MSG_QUERY:
        trees[0] = msg->query.args;
        break;
    case HPO_MSG_REPLY:
        trees[0] = msg->reply.data;
        break;
    default:
        break;
    }
}

int fuzz_check_msg(const uint8_t *data, size_t size, hpo_proto_status *status,
                   char *why, size_t whylen)
{
    char err[HPO_ERR_MAX] = "";
    hpo_msg msg, again;
    *status = hpo_msg_decode(data, size, &msg, err, sizeof err);
    if (*status != HPO_PROTO_OK) {
        if (!decoder_code(*status))
            return hpo_error(why, whylen, "decode returned %d, which the decoder "
                             "does not document", (int)*status);
        if (err[0] == '\0')
            return hpo_error(why, whylen, "decode rejected the frame (%s) without "
                             "a message", hpo_proto_status_name(*status));
        return 0;
    }

    int result = -1;
    char *first = NULL, *second = NULL;
    size_t first_size = 0, second_size = 0;
    hpo_msg_init(&again, HPO_MSG_STUDY_DONE);
    if (hpo_msg_encode(&msg, &first, &first_size, err, sizeof err) != 0) {
        hpo_error(why, whylen, "a decoded %s does not encode: %s",
                  hpo_msg_type_name(msg.type), err);
        goto cleanup;
    }
    if (hpo_msg_decode(first, first_size, &again, err, sizeof err) != HPO_PROTO_OK) {
        hpo_error(why, whylen, "the encoding of a decoded %s does not decode: %s",
                  hpo_msg_type_name(msg.type), err);
        goto cleanup;
    }
    if (again.type != msg.type) {
        hpo_error(why, whylen, "a %s came back as a %s", hpo_msg_type_name(msg.type),
                  hpo_msg_type_name(again.type));
        goto cleanup;
    }
    const cJSON *before[2], *after[2];
    trees_of(&msg, before);
    trees_of(&again, after);
    for (int i = 0; i < 2; i++) {
        if (!json_equal_exact(before[i], after[i])) {
            hpo_error(why, whylen, "a %s's JSON values changed in the round trip: "
                      "%.200s", hpo_msg_type_name(msg.type), first);
            goto cleanup;
        }
    }
    if (hpo_msg_encode(&again, &second, &second_size, err, sizeof err) != 0) {
        hpo_error(why, whylen, "a re-decoded %s does not encode: %s",
                  hpo_msg_type_name(msg.type), err);
        goto cleanup;
    }
    if (second_size != first_size || memcmp(first, second, first_size) != 0) {
        hpo_error(why, whylen, "encoding is not stable: %.200s became %.200s",
                  first, second);
        goto cleanup;
    }
    result = 0;

cleanup:
    free(first);
    free(second);
    hpo_msg_clear(&again);
    hpo_msg_clear(&msg);
    return result;
}

/* --- study files --------------------------------------------------------- */

/* Resolves one configuration. A model that cannot be built is a normal
 * outcome, but it must come with a message. */
static int resolve(const hpo_study *study, const cJSON *values, char *why, size_t whylen)
{
    char err[HPO_ERR_MAX] = "";
    cJSON *model = NULL, *active = NULL;
    int result = 0;
    if (hpo_study_resolve(study, values, &model, &active, err, sizeof err) != 0) {
        if (err[0] == '\0')
            result = hpo_error(why, whylen, "hpo_study_resolve failed without a message");
        err[0] = '\0';
        if (result == 0 && hpo_study_active(study, values, &active, err, sizeof err) != 0 &&
            err[0] == '\0')
            result = hpo_error(why, whylen, "hpo_study_active failed without a message");
    }
    if (active != NULL)
        free(hpo_study_config_key(study, active));
    cJSON_Delete(model);
    cJSON_Delete(active);
    return result;
}

/* Draws the default, a seeded random and three unit-cube configurations
 * and resolves the first two. */
static int exercise_study(const hpo_study *study, char *why, size_t whylen)
{
    char err[HPO_ERR_MAX] = "";
    cJSON *values = NULL;
    cJSON_Delete(hpo_study_space_to_json(study));

    if (hpo_study_default_values(study, &values, err, sizeof err) != 0)
        return hpo_error(why, whylen, "no default configuration: %s", err);
    int result = resolve(study, values, why, whylen);
    cJSON_Delete(values);
    values = NULL;
    if (result != 0)
        return result;

    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (rng == NULL)
        return 0;
    gsl_rng_set(rng, 7);
    if (hpo_study_sample_random(study, rng, &values, err, sizeof err) != 0)
        result = hpo_error(why, whylen, "no random configuration: %s", err);
    else
        result = resolve(study, values, why, whylen);
    cJSON_Delete(values);
    gsl_rng_free(rng);
    if (result != 0)
        return result;

    int d = hpo_study_param_count(study);
    double *u = calloc(d > 0 ? (size_t)d : 1, sizeof *u);
    if (u == NULL)
        return 0;
    const double corners[] = {0.0, 0.5, 1.0};
    for (size_t c = 0; result == 0 && c < sizeof corners / sizeof corners[0]; c++) {
        for (int i = 0; i < d; i++)
            u[i] = corners[c];
        values = NULL;
        if (hpo_study_values_from_unit(study, u, &values, err, sizeof err) != 0)
            result = hpo_error(why, whylen, "no configuration at u = %g: %s",
                               corners[c], err);
        cJSON_Delete(values);
    }
    free(u);
    return result;
}

int fuzz_check_study(const uint8_t *data, size_t size, bool *parsed,
                     char *why, size_t whylen)
{
    *parsed = false;
    char *text = text_of(data, size);
    if (text == NULL)
        return 0;
    char err[HPO_ERR_MAX] = "";
    hpo_study *study = NULL;
    int result = 0;
    if (hpo_study_parse(text, &study, err, sizeof err) == 0) {
        *parsed = true;
        result = exercise_study(study, why, whylen);
    } else if (err[0] == '\0') {
        result = hpo_error(why, whylen, "hpo_study_parse failed without a message");
    }
    hpo_study_destroy(&study);
    free(text);
    return result;
}

/* --- model specs --------------------------------------------------------- */

int fuzz_check_model_spec(const uint8_t *data, size_t size, bool *parsed,
                          char *why, size_t whylen)
{
    *parsed = false;
    char *text = text_of(data, size);
    if (text == NULL)
        return 0;
    char err[HPO_ERR_MAX] = "";
    hpo_model_spec *spec = NULL;
    hpo_shape *shapes = NULL;
    int result = 0;
    if (hpo_model_spec_parse(text, &spec, err, sizeof err) != 0) {
        if (err[0] == '\0')
            result = hpo_error(why, whylen, "hpo_model_spec_parse failed without a message");
        goto cleanup;
    }
    *parsed = true;
    if (hpo_model_spec_validate(spec, err, sizeof err) != 0) {
        result = hpo_error(why, whylen, "a parsed spec fails validation: %s", err);
        goto cleanup;
    }
    shapes = calloc((size_t)spec->n_layers + 1, sizeof *shapes);
    if (shapes != NULL && hpo_model_spec_shapes(spec, shapes, err, sizeof err) != 0) {
        result = hpo_error(why, whylen, "a parsed spec has no layer shapes: %s", err);
        goto cleanup;
    }
    for (int i = 0; i < spec->n_layers; i++) {
        if (hpo_model_spec_layer_params(spec, i) < 0) {
            result = hpo_error(why, whylen, "layer %d has a negative parameter count", i);
            goto cleanup;
        }
    }
    if (!(hpo_model_spec_forward_flops(spec) >= 0.0))
        result = hpo_error(why, whylen, "the forward FLOPs are negative or NaN");

cleanup:
    free(shapes);
    hpo_model_spec_destroy(&spec);
    free(text);
    return result;
}
