/* Tests of the unit-cube encoding: columns of each parameter type,
 * rounding, imputation of inactive parameters, projection and
 * perturbation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_rng.h>

#include "encoding.h"
#include "hpo/error.h"
#include "hpo/log.h"
#include "hpo/study.h"

#define CIFAR10_STUDY HPO_EXAMPLES_DIR "/cifar10-study.json"
#define TINY_STUDY HPO_EXAMPLES_DIR "/tiny-study.json"

typedef struct {
    hpo_study *study;
    hpo_encoding *enc;
    gsl_rng *rng;
} fixture;

static int setup_study(void **state, const char *path)
{
    char err[HPO_ERR_MAX] = "";
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL || hpo_study_load_file(path, &f->study, err, sizeof err) != 0 ||
        hpo_encoding_create(f->study, &f->enc, err, sizeof err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    f->rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(f->rng, 99);
    *state = f;
    return 0;
}

static int setup_cifar(void **state) { return setup_study(state, CIFAR10_STUDY); }
static int setup_tiny(void **state) { return setup_study(state, TINY_STUDY); }

static int teardown(void **state)
{
    fixture *f = *state;
    hpo_encoding_destroy(&f->enc);
    assert_null(f->enc);
    hpo_study_destroy(&f->study);
    gsl_rng_free(f->rng);
    free(f);
    return 0;
}

static int column_of(const fixture *f, const char *name)
{
    int param = hpo_study_param_index(f->study, name);
    for (int c = 0; c < hpo_encoding_columns(f->enc); c++) {
        if (hpo_encoding_column_param(f->enc, c) == param)
            return c;
    }
    fail_msg("no column for %s", name);
    return -1;
}

static char *key_of(const fixture *f, const cJSON *values)
{
    char err[HPO_ERR_MAX] = "";
    cJSON *active = NULL;
    if (hpo_study_active(f->study, values, &active, err, sizeof err) != 0)
        fail_msg("%s", err);
    char *key = hpo_study_config_key(f->study, active);
    cJSON_Delete(active);
    assert_non_null(key);
    return key;
}

/* 27 parameters of one column each (numeric choices are ordered, and
 * two-valued unordered ones need one column), and one activity column per
 * conv index 2, 3, 4 and per dense index 2, 3, 4. */
static void cifar_columns(void **state)
{
    fixture *f = *state;
    assert_int_equal(hpo_study_param_count(f->study), 27);
    assert_int_equal(hpo_encoding_activity_groups(f->enc), 6);
    assert_int_equal(hpo_encoding_columns(f->enc), 33);

    assert_int_equal(hpo_encoding_column_kind(f->enc, column_of(f, "learning_rate")),
                     HPO_COLUMN_ORDINAL);
    assert_int_equal(hpo_encoding_column_kind(f->enc, column_of(f, "activation")),
                     HPO_COLUMN_ORDINAL);
    assert_int_equal(hpo_encoding_column_kind(f->enc, 27), HPO_COLUMN_ACTIVITY);
    assert_int_equal(hpo_encoding_column_param(f->enc, 32), -1);
}

/* Encoding then decoding gives the same configuration back. */
static void cifar_round_trip(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX] = "";
    int columns = hpo_encoding_columns(f->enc);
    double *x = malloc((size_t)columns * sizeof *x);
    double *again = malloc((size_t)columns * sizeof *again);

    for (int trial = 0; trial < 200; trial++) {
        cJSON *values = NULL, *decoded = NULL;
        char *key = NULL;
        assert_int_equal(hpo_study_sample_random(f->study, f->rng, &values, err, sizeof err), 0);
        assert_int_equal(hpo_encoding_from_values(f->enc, values, x, &key, err, sizeof err), 0);
        for (int c = 0; c < columns; c++)
            assert_true(x[c] >= 0.0 && x[c] <= 1.0);

        assert_int_equal(hpo_encoding_decode(f->enc, x, &decoded, err, sizeof err), 0);
        char *decoded_key = key_of(f, decoded);
        assert_string_equal(decoded_key, key);

        /* Projection of a valid point changes nothing. */
        assert_int_equal(hpo_encoding_project(f->enc, x, again, NULL, NULL, err, sizeof err), 0);
        assert_memory_equal(x, again, (size_t)columns * sizeof *x);

        free(decoded_key);
        free(key);
        cJSON_Delete(values);
        cJSON_Delete(decoded);
    }
    free(x);
    free(again);
}

/* Two configurations that differ only in inactive parameters encode the
 * same; the inactive columns hold 0.5 and the activity column 0. */
static void cifar_inactive_imputed(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX] = "";
    int columns = hpo_encoding_columns(f->enc);
    double *xa = malloc((size_t)columns * sizeof *xa);
    double *xb = malloc((size_t)columns * sizeof *xb);
    cJSON *a = NULL;

    assert_int_equal(hpo_study_default_values(f->study, &a, err, sizeof err), 0);
    cJSON_ReplaceItemInObject(a, "conv_layers", cJSON_CreateNumber(2));
    cJSON *b = cJSON_Duplicate(a, true);
    cJSON_ReplaceItemInObject(b, "kernel_size3", cJSON_CreateNumber(5));
    cJSON_ReplaceItemInObject(b, "conv4_filters", cJSON_CreateNumber(256));

    assert_int_equal(hpo_encoding_from_values(f->enc, a, xa, NULL, err, sizeof err), 0);
    assert_int_equal(hpo_encoding_from_values(f->enc, b, xb, NULL, err, sizeof err), 0);
    assert_memory_equal(xa, xb, (size_t)columns * sizeof *xa);
    assert_float_equal(xa[column_of(f, "kernel_size3")], 0.5, 0.0);
    int k3 = hpo_study_param_index(f->study, "kernel_size3");
    int k1 = hpo_study_param_index(f->study, "kernel_size1");
    assert_false(hpo_encoding_param_active(f->enc, xa, k3));
    assert_true(hpo_encoding_param_active(f->enc, xa, k1));

    /* With four conv layers kernel_size3 is active again. */
    cJSON_ReplaceItemInObject(b, "conv_layers", cJSON_CreateNumber(4));
    assert_int_equal(hpo_encoding_from_values(f->enc, b, xb, NULL, err, sizeof err), 0);
    assert_true(hpo_encoding_param_active(f->enc, xb, k3));
    assert_float_equal(xb[column_of(f, "kernel_size3")], 1.0, 0.0);

    cJSON_Delete(a);
    cJSON_Delete(b);
    free(xa);
    free(xb);
}

/* Decoding rounds an int column to its step and an ordered choice to the
 * nearest index, and clamps to [0, 1]. */
static void cifar_decode_rounds(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX] = "";
    int columns = hpo_encoding_columns(f->enc);
    double *x = calloc((size_t)columns, sizeof *x);
    cJSON *values = NULL;

    /* conv1_filters: 8 values 32..256; 0.52 * 7 = 3.64 rounds to index 4. */
    x[column_of(f, "conv1_filters")] = 0.52;
    /* learning_rate: [0.001, 0.0005, 0.0001]; 0.7 * 2 = 1.4 rounds to 1. */
    x[column_of(f, "learning_rate")] = 0.7;
    x[column_of(f, "conv_layers")] = 7.0; /* clamped to 1: 5 layers */
    assert_int_equal(hpo_encoding_decode(f->enc, x, &values, err, sizeof err), 0);
    assert_float_equal(cJSON_GetObjectItem(values, "conv1_filters")->valuedouble, 160.0, 0.0);
    assert_float_equal(cJSON_GetObjectItem(values, "learning_rate")->valuedouble, 0.0005, 0.0);
    assert_float_equal(cJSON_GetObjectItem(values, "conv_layers")->valuedouble, 5.0, 0.0);
    cJSON_Delete(values);
    free(x);
}

/* An unordered choice of three strings is one-hot; decoding picks the
 * largest column. */
static void one_hot_choice(void **state)
{
    (void)state;
    static const char text[] =
        "{\"budget\": {\"epochs\": 1}, \"space\": {"
        " \"act\": {\"type\": \"choice\", \"values\": [\"relu\", \"tanh\", \"linear\"]}},"
        " \"model\": {\"layers\": [{\"type\": \"conv2d\", \"filters\": 4, \"kernel_size\": 3,"
        " \"activation\": \"$act\"}, {\"type\": \"flatten\"},"
        " {\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}]}}";
    char err[HPO_ERR_MAX] = "";
    hpo_study *study = NULL;
    hpo_encoding *enc = NULL;
    cJSON *values = NULL;

    if (hpo_study_parse(text, &study, err, sizeof err) != 0 ||
        hpo_encoding_create(study, &enc, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(hpo_encoding_columns(enc), 3);
    assert_int_equal(hpo_encoding_activity_groups(enc), 0);
    for (int c = 0; c < 3; c++)
        assert_int_equal(hpo_encoding_column_kind(enc, c), HPO_COLUMN_ONE_HOT);

    double x[3] = {0.2, 0.9, 0.4}, back[3];
    assert_int_equal(hpo_encoding_decode(enc, x, &values, err, sizeof err), 0);
    assert_string_equal(cJSON_GetObjectItem(values, "act")->valuestring, "tanh");
    assert_int_equal(hpo_encoding_from_values(enc, values, back, NULL, err, sizeof err), 0);
    assert_float_equal(back[0], 0.0, 0.0);
    assert_float_equal(back[1], 1.0, 0.0);
    assert_float_equal(back[2], 0.0, 0.0);
    cJSON_Delete(values);
    hpo_encoding_destroy(&enc);
    hpo_study_destroy(&study);
}

/* Perturbations of a valid point are valid after projection and almost
 * always differ from it. */
static void cifar_perturb(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX] = "";
    int columns = hpo_encoding_columns(f->enc);
    double *x = malloc((size_t)columns * sizeof *x);
    double *moved = malloc((size_t)columns * sizeof *moved);
    cJSON *values = NULL;
    char *key = NULL;
    int differ = 0;

    assert_int_equal(hpo_study_default_values(f->study, &values, err, sizeof err), 0);
    assert_int_equal(hpo_encoding_from_values(f->enc, values, x, &key, err, sizeof err), 0);
    for (int i = 0; i < 100; i++) {
        char *moved_key = NULL;
        hpo_encoding_perturb(f->enc, x, moved, f->rng);
        assert_int_equal(hpo_encoding_project(f->enc, moved, moved, NULL, &moved_key,
                                              err, sizeof err), 0);
        differ += strcmp(moved_key, key) != 0;
        free(moved_key);
    }
    if (differ < 95)
        fail_msg("only %d of 100 perturbations changed the configuration", differ);
    cJSON_Delete(values);
    free(key);
    free(x);
    free(moved);
}

/* learning_rate of the tiny study is a log float in [0.0003, 0.003]. */
static void tiny_log_float(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX] = "";
    int columns = hpo_encoding_columns(f->enc);
    double *x = malloc((size_t)columns * sizeof *x);
    cJSON *values = NULL, *decoded = NULL;

    int c = column_of(f, "learning_rate");
    assert_int_equal(hpo_encoding_column_kind(f->enc, c), HPO_COLUMN_CONTINUOUS);
    assert_int_equal(hpo_study_default_values(f->study, &values, err, sizeof err), 0);
    assert_int_equal(hpo_encoding_from_values(f->enc, values, x, NULL, err, sizeof err), 0);
    assert_float_equal(x[c], log(0.001 / 0.0003) / log(10.0), 1e-12);

    x[c] = 1.0;
    assert_int_equal(hpo_encoding_decode(f->enc, x, &decoded, err, sizeof err), 0);
    assert_float_equal(cJSON_GetObjectItem(decoded, "learning_rate")->valuedouble, 0.003, 1e-15);
    cJSON_Delete(values);
    cJSON_Delete(decoded);
    free(x);
}

/* Every parameter type, no conditional parameter: the numeric paths give
 * the same columns as the paths through parameter values. */
static void numeric_paths_match(void **state)
{
    (void)state;
    static const char text[] =
        "{\"budget\": {\"epochs\": 1}, \"space\": {"
        " \"f\": {\"type\": \"float\", \"min\": 0, \"max\": 0.5},"
        " \"g\": {\"type\": \"float\", \"min\": 0.001, \"max\": 0.5, \"sampling\": \"log\"},"
        " \"h\": {\"type\": \"float\", \"min\": 0.1, \"max\": 0.45, \"step\": 0.1},"
        " \"n\": {\"type\": \"int\", \"min\": 8, \"max\": 64, \"step\": 8},"
        " \"m\": {\"type\": \"int\", \"min\": 1, \"max\": 300, \"sampling\": \"log\"},"
        " \"k\": {\"type\": \"choice\", \"values\": [3, 5, 7]},"
        " \"act\": {\"type\": \"choice\", \"values\": [\"relu\", \"tanh\", \"linear\"]},"
        " \"b\": {\"type\": \"bool\"}},"
        " \"model\": {\"layers\": [{\"type\": \"dropout\", \"rate\": \"$f\"},"
        " {\"type\": \"dropout\", \"rate\": \"$g\"}, {\"type\": \"dropout\", \"rate\": \"$h\"},"
        " {\"if\": \"$b\", \"layers\": [{\"type\": \"dropout\", \"rate\": 0.1}]},"
        " {\"type\": \"conv2d\", \"filters\": \"$n\", \"kernel_size\": \"$k\","
        " \"activation\": \"$act\"}, {\"type\": \"flatten\"},"
        " {\"type\": \"dense\", \"units\": \"$m\", \"activation\": \"relu\"},"
        " {\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}]}}";
    char err[HPO_ERR_MAX] = "";
    hpo_study *study = NULL;
    hpo_encoding *enc = NULL;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 5);

    if (hpo_study_parse(text, &study, err, sizeof err) != 0 ||
        hpo_encoding_create(study, &enc, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(hpo_encoding_activity_groups(enc), 0);
    int columns = hpo_encoding_columns(enc);
    assert_int_equal(columns, 10);

    double u[8], fast[10], slow[10], raw[10];
    for (int trial = 0; trial < 500; trial++) {
        cJSON *values = NULL;
        /* The corners of the cube first, then random points. */
        for (int i = 0; i < 8; i++) {
            if (trial < 2)
                u[i] = trial;
            else
                u[i] = gsl_rng_uniform(rng);
        }
        assert_int_equal(hpo_encoding_from_unit(enc, u, fast, err, sizeof err), 0);
        assert_int_equal(hpo_study_values_from_unit(study, u, &values, err, sizeof err), 0);
        assert_int_equal(hpo_encoding_from_values(enc, values, slow, NULL, err, sizeof err), 0);
        assert_memory_equal(fast, slow, sizeof fast);
        cJSON_Delete(values);

        for (int c = 0; c < columns; c++)
            raw[c] = 1.2 * gsl_rng_uniform(rng) - 0.1;
        assert_int_equal(hpo_encoding_project(enc, raw, fast, NULL, NULL, err, sizeof err), 0);
        assert_int_equal(hpo_encoding_project(enc, raw, slow, &values, NULL, err, sizeof err), 0);
        assert_memory_equal(fast, slow, sizeof fast);
        cJSON_Delete(values);
    }

    u[0] = 1.5;
    assert_int_equal(hpo_encoding_from_unit(enc, u, fast, err, sizeof err), -1);
    assert_non_null(strstr(err, "outside [0, 1]"));
    hpo_encoding_destroy(&enc);
    hpo_study_destroy(&study);
    gsl_rng_free(rng);
}

int main(void)
{
    gsl_set_error_handler_off();
    hpo_log_init("test", HPO_LOG_WARN);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(cifar_columns, setup_cifar, teardown),
        cmocka_unit_test_setup_teardown(cifar_round_trip, setup_cifar, teardown),
        cmocka_unit_test_setup_teardown(cifar_inactive_imputed, setup_cifar, teardown),
        cmocka_unit_test_setup_teardown(cifar_decode_rounds, setup_cifar, teardown),
        cmocka_unit_test_setup_teardown(cifar_perturb, setup_cifar, teardown),
        cmocka_unit_test_setup_teardown(tiny_log_float, setup_tiny, teardown),
        cmocka_unit_test(one_hot_choice),
        cmocka_unit_test(numeric_paths_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
