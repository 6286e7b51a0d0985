/* Tests of the study file: loading, validation messages, template
 * resolution, active parameters and the unit-cube mapping. */
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

#include "hpo/error.h"
#include "hpo/log.h"
#include "hpo/model.h"
#include "hpo/study.h"

#define CIFAR10_STUDY HPO_EXAMPLES_DIR "/cifar10-study.json"
#define TINY_STUDY HPO_EXAMPLES_DIR "/tiny-study.json"
#define SEED_BEST_MODEL HPO_EXAMPLES_DIR "/seed-best-model.json"

#define BUILD_FAILURE "the resolved model cannot be built: "

/* Returns a copy of text with every ' replaced by ", so that JSON in the
 * tests reads without escapes. The caller frees it. */
static char *json_text(const char *text)
{
    char *copy = strdup(text);
    assert_non_null(copy);
    for (char *p = copy; *p != '\0'; p++) {
        if (*p == '\'')
            *p = '"';
    }
    return copy;
}

static cJSON *json_parse(const char *text)
{
    char *copy = json_text(text);
    cJSON *json = cJSON_Parse(copy);
    free(copy);
    assert_non_null(json);
    return json;
}

static hpo_study *parse_ok(const char *text)
{
    char err[HPO_ERR_MAX] = "";
    hpo_study *study = NULL;
    char *copy = json_text(text);
    int rc = hpo_study_parse(copy, &study, err, sizeof err);
    free(copy);
    if (rc != 0)
        fail_msg("study rejected: %s", err);
    assert_non_null(study);
    return study;
}

static hpo_study *load_example(const char *path)
{
    char err[HPO_ERR_MAX] = "";
    hpo_study *study = NULL;
    if (hpo_study_load_file(path, &study, err, sizeof err) != 0)
        fail_msg("%s", err);
    return study;
}

/* The values of the best trial of the original Keras Tuner search. */
static cJSON *seed_best_values(void)
{
    return json_parse(
        "{'conv1_filters': 256, 'activation': 'tanh', 'conv_layers': 2,"
        " 'kernel_size0': 5, 'conv0_filters': 224, 'activation0': 'relu',"
        " 'kernel_size1': 3, 'activation1': 'tanh', 'dropout': true,"
        " 'dense_neurons1': 224, 'dense_layers': 3,"
        " 'neurons0': 224, 'neurons1': 96, 'neurons2': 32,"
        " 'learning_rate': 0.0005, 'optimizer': 'adam'}");
}

static void assert_layers_equal(const hpo_model_spec *a, const hpo_model_spec *b)
{
    assert_int_equal(a->n_layers, b->n_layers);
    for (int i = 0; i < a->n_layers; i++) {
        const hpo_layer_spec *x = &a->layers[i], *y = &b->layers[i];
        assert_int_equal(x->kind, y->kind);
        assert_int_equal(x->filters, y->filters);
        assert_int_equal(x->kernel_size, y->kernel_size);
        assert_int_equal(x->stride, y->stride);
        assert_int_equal(x->padding, y->padding);
        assert_int_equal(x->activation, y->activation);
        assert_int_equal(x->pool_size, y->pool_size);
        assert_float_equal(x->rate, y->rate, 0.0);
        assert_int_equal(x->units, y->units);
    }
}

static void assert_training_equal(const hpo_model_spec *a, const hpo_model_spec *b)
{
    assert_int_equal(a->input_h, b->input_h);
    assert_int_equal(a->input_w, b->input_w);
    assert_int_equal(a->input_c, b->input_c);
    assert_int_equal(a->optimizer, b->optimizer);
    assert_float_equal(a->learning_rate, b->learning_rate, 0.0);
    assert_float_equal(a->momentum, b->momentum, 0.0);
    assert_float_equal(a->beta1, b->beta1, 0.0);
    assert_float_equal(a->beta2, b->beta2, 0.0);
    assert_float_equal(a->epsilon, b->epsilon, 0.0);
    assert_int_equal(a->batch_size, b->batch_size);
    assert_int_equal(a->epochs, b->epochs);
    assert_int_equal(a->seed, b->seed);
    assert_int_equal(a->early_stopping, b->early_stopping);
    assert_int_equal(a->monitor, b->monitor);
    assert_int_equal(a->patience, b->patience);
    assert_int_equal(a->restore_best_weights, b->restore_best_weights);
}

/* ---- the CIFAR-10 example ---- */

static void example_loads(void **state)
{
    hpo_study *study = load_example(CIFAR10_STUDY);

    assert_string_equal(hpo_study_name(study), "cifar10-keras-cnn");
    assert_int_equal(hpo_study_warn_unbuildable_ends(study), 0);
    assert_string_equal(hpo_study_objective(study), "val_accuracy");
    assert_true(hpo_study_maximize(study));
    assert_int_equal(hpo_study_budget(study)->epochs, 8);
    assert_int_equal(hpo_study_budget(study)->batch_size, 32);

    /* Space order, families expanded in index order; conv1_filters is the
     * first layer's parameter and the family's index 1 at once. */
    static const char *const names[] = {
        "conv1_filters", "activation", "conv_layers",
        "kernel_size0", "kernel_size1", "kernel_size2", "kernel_size3", "kernel_size4",
        "conv0_filters", "conv2_filters", "conv3_filters", "conv4_filters",
        "activation0", "activation1", "activation2", "activation3", "activation4",
        "dropout", "dense_neurons1", "dense_layers",
        "neurons0", "neurons1", "neurons2", "neurons3", "neurons4",
        "learning_rate", "optimizer"};
    int n = (int)(sizeof names / sizeof names[0]);
    assert_int_equal(hpo_study_param_count(study), n);
    for (int i = 0; i < n; i++)
        assert_string_equal(hpo_study_param(study, i)->name, names[i]);
    assert_null(hpo_study_param(study, n));
    assert_int_equal(hpo_study_param_index(study, "conv1_filters"), 0);
    assert_int_equal(hpo_study_param_index(study, "conv1_activation"), -1);

    const hpo_param *filters = hpo_study_param(study, hpo_study_param_index(study, "conv3_filters"));
    assert_int_equal(filters->kind, HPO_PARAM_INT);
    assert_float_equal(filters->min, 32, 0);
    assert_float_equal(filters->max, 256, 0);
    assert_float_equal(filters->step, 32, 0);
    hpo_study_destroy(&study);
    assert_null(study);
}

static void example_best_trial_resolves(void **state)
{
    hpo_study *study = load_example(CIFAR10_STUDY);
    cJSON *values = seed_best_values(), *model = NULL, *active = NULL;
    hpo_model_spec *resolved = NULL, *expected = NULL;
    char err[HPO_ERR_MAX] = "";

    if (hpo_study_resolve(study, values, &model, &active, err, sizeof err) != 0)
        fail_msg("%s", err);
    if (hpo_model_spec_from_json(model, &resolved, err, sizeof err) != 0)
        fail_msg("%s", err);
    if (hpo_model_spec_load_file(SEED_BEST_MODEL, &expected, err, sizeof err) != 0)
        fail_msg("%s", err);

    assert_layers_equal(resolved, expected);
    assert_training_equal(resolved, expected);

    /* The third conv layer's 256 filters come from conv1_filters. */
    assert_int_equal(resolved->layers[4].kind, HPO_LAYER_CONV2D);
    assert_int_equal(resolved->layers[4].filters, 256);

    /* Every given value was used: the best trial names only active ones. */
    assert_int_equal(cJSON_GetArraySize(active), cJSON_GetArraySize(values));
    assert_true(cJSON_Compare(cJSON_GetObjectItem(active, "neurons2"),
                              cJSON_GetObjectItem(values, "neurons2"), true));

    hpo_model_spec_destroy(&resolved);
    hpo_model_spec_destroy(&expected);
    cJSON_Delete(model);
    cJSON_Delete(active);
    cJSON_Delete(values);
    hpo_study_destroy(&study);
}

static void example_random_samples_resolve(void **state)
{
    hpo_study *study = load_example(CIFAR10_STUDY);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    int n_built = 0, n_unbuildable = 0;

    gsl_rng_set(rng, 7);
    for (int i = 0; i < 200; i++) {
        cJSON *values = NULL, *model = NULL, *active = NULL;
        char err[HPO_ERR_MAX] = "";
        assert_int_equal(hpo_study_sample_random(study, rng, &values, err, sizeof err), 0);
        assert_int_equal(cJSON_GetArraySize(values), hpo_study_param_count(study));

        if (hpo_study_resolve(study, values, &model, &active, err, sizeof err) == 0) {
            hpo_model_spec *spec = NULL;
            assert_int_equal(hpo_model_spec_from_json(model, &spec, err, sizeof err), 0);
            hpo_model_spec_destroy(&spec);
            n_built++;
        } else {
            if (strncmp(err, BUILD_FAILURE, strlen(BUILD_FAILURE)) != 0)
                fail_msg("sample %d failed for another reason: %s", i, err);
            assert_null(model);
            assert_null(active);
            n_unbuildable++;
        }
        cJSON_Delete(values);
        cJSON_Delete(model);
        cJSON_Delete(active);
    }

    /* 4 or 5 conv layers with several 5x5 kernels shrink the 15x15 map
     * below the last pool's window; about 72% of uniform draws build. */
    assert_true(n_built >= 120);
    assert_true(n_unbuildable > 0);
    gsl_rng_free(rng);
    hpo_study_destroy(&study);
}

static void example_active_parameters(void **state)
{
    hpo_study *study = load_example(CIFAR10_STUDY);
    cJSON *values = NULL, *model = NULL, *active = NULL;
    char err[HPO_ERR_MAX] = "";

    /* All parameters at their defaults (2 conv layers, no dropout, 2 dense
     * layers), then the best trial's depth with dropout off. */
    assert_int_equal(hpo_study_default_values(study, &values, err, sizeof err), 0);
    cJSON_ReplaceItemInObject(values, "dense_layers", cJSON_CreateNumber(3));
    if (hpo_study_resolve(study, values, &model, &active, err, sizeof err) != 0)
        fail_msg("%s", err);

    static const char *const inactive[] = {
        "kernel_size2", "kernel_size3", "kernel_size4", "conv2_filters", "conv3_filters",
        "conv4_filters", "activation2", "activation3", "activation4", "neurons3", "neurons4"};
    for (size_t i = 0; i < sizeof inactive / sizeof inactive[0]; i++) {
        if (cJSON_GetObjectItem(active, inactive[i]) != NULL)
            fail_msg("%s is active with 2 conv and 3 dense layers", inactive[i]);
    }
    static const char *const used[] = {
        "conv1_filters", "activation", "conv_layers", "kernel_size0", "kernel_size1",
        "conv0_filters", "activation0", "activation1", "dropout", "dense_neurons1",
        "dense_layers", "neurons0", "neurons1", "neurons2", "learning_rate", "optimizer"};
    for (size_t i = 0; i < sizeof used / sizeof used[0]; i++) {
        if (cJSON_GetObjectItem(active, used[i]) == NULL)
            fail_msg("%s is inactive with 2 conv and 3 dense layers", used[i]);
    }
    assert_int_equal(cJSON_GetArraySize(active), 16);

    /* dropout false: the flag is active but no dropout layer appears. */
    const cJSON *layer;
    int n_layers = 0;
    cJSON_ArrayForEach(layer, cJSON_GetObjectItem(model, "layers")) {
        assert_string_not_equal(cJSON_GetObjectItem(layer, "type")->valuestring, "dropout");
        n_layers++;
    }
    /* conv, pool, 2 conv, pool, flatten, dense, 3 dense, softmax dense. */
    assert_int_equal(n_layers, 11);

    /* hpo_study_active agrees without building, also from active values only. */
    cJSON *active_only = NULL;
    assert_int_equal(hpo_study_active(study, active, &active_only, err, sizeof err), 0);
    assert_true(cJSON_Compare(active, active_only, true));

    cJSON_Delete(active_only);
    cJSON_Delete(values);
    cJSON_Delete(model);
    cJSON_Delete(active);
    hpo_study_destroy(&study);
}

static void example_tiny_study_loads(void **state)
{
    hpo_study *study = load_example(TINY_STUDY);
    assert_int_equal(hpo_study_warn_unbuildable_ends(study), 0);
    const hpo_budget *b = hpo_study_budget(study);

    assert_true(b->epochs >= 1 && b->epochs <= 2);
    assert_true(b->train_size > 0 && b->train_size <= 2000);
    assert_true(b->max_trials >= 6 && b->max_trials <= 8);
    hpo_study_destroy(&study);
}

/* ---- resolution of small templates ---- */

#define SMALL_MODEL                                                              \
    "'model': {'input_shape': [32, 32, 3], 'layers': ["                           \
    " {'type': 'conv2d', 'filters': '$filters', 'kernel_size': 3}, {'type': 'flatten'},"\
    " {'repeat': '$n', 'layers': ["                                              \
    "   {'if': '$wide{i}', 'layers': [{'type': 'dense', 'units': 8}]},"          \
    "   {'type': 'dropout', 'rate': '$rate{i}'}]},"                             \
    " {'type': 'dense', 'units': 10, 'activation': 'softmax'}],"                 \
    " 'training': {'learning_rate': '$lr'}}"

#define SMALL_SPACE                                                              \
    "'space': {'filters': {'type': 'int', 'min': 4, 'max': 16, 'step': 4},"      \
    " 'n': {'type': 'int', 'min': 0, 'max': 3},"                                 \
    " 'wide{i}': {'type': 'bool'},"                                              \
    " 'rate{i}': {'type': 'float', 'min': 0.1, 'max': 0.5, 'step': 0.1},"        \
    " 'lr': {'type': 'float', 'min': 0.0001, 'max': 0.01, 'sampling': 'log',"    \
    "        'default': 0.001}}"

static void repeat_and_if_expand(void **state)
{
    hpo_study *study = parse_ok("{'name': 'small', 'budget': {'epochs': 2, 'batch_size': 16}, "
                                SMALL_SPACE ", " SMALL_MODEL "}");
    cJSON *values = json_parse("{'filters': 8, 'n': 2, 'wide1': true, 'wide2': false,"
                               " 'rate1': 0.2, 'rate2': 0.5, 'lr': 0.003}");
    cJSON *model = NULL, *active = NULL;
    char err[HPO_ERR_MAX] = "";

    assert_int_equal(hpo_study_param_count(study), 1 + 1 + 3 + 3 + 1);
    if (hpo_study_resolve(study, values, &model, &active, err, sizeof err) != 0)
        fail_msg("%s", err);

    cJSON *expected = json_parse(
        "{'input_shape': [32, 32, 3], 'layers': ["
        " {'type': 'conv2d', 'filters': 8, 'kernel_size': 3}, {'type': 'flatten'},"
        " {'type': 'dense', 'units': 8}, {'type': 'dropout', 'rate': 0.2},"
        " {'type': 'dropout', 'rate': 0.5},"
        " {'type': 'dense', 'units': 10, 'activation': 'softmax'}],"
        " 'training': {'learning_rate': 0.003, 'epochs': 2, 'batch_size': 16}}");
    if (!cJSON_Compare(model, expected, true)) {
        char *text = cJSON_PrintUnformatted(model);
        fail_msg("resolved model differs: %s", text);
    }
    cJSON *expected_active = json_parse("{'filters': 8, 'n': 2, 'wide1': true, 'wide2': false,"
                                        " 'rate1': 0.2, 'rate2': 0.5, 'lr': 0.003}");
    assert_true(cJSON_Compare(active, expected_active, true));

    cJSON_Delete(expected);
    cJSON_Delete(expected_active);
    cJSON_Delete(values);
    cJSON_Delete(model);
    cJSON_Delete(active);
    hpo_study_destroy(&study);
}

static void resolve_rejects_bad_values(void **state)
{
    hpo_study *study = parse_ok("{'budget': {'epochs': 1}, " SMALL_SPACE ", " SMALL_MODEL "}");
    static const struct {
        const char *values;
        const char *message;
    } cases[] = {
        {"{'filters': 6, 'n': 0, 'lr': 0.001}",
         "parameter \"filters\": 6 is not on the step 4 from min 4"},
        {"{'filters': 20, 'n': 0, 'lr': 0.001}", "parameter \"filters\": 20 is above max 16"},
        {"{'filters': 8, 'n': 1, 'lr': 0.001, 'rate1': 0.2}",
         "parameter \"wide1\": missing value"},
        {"{'filters': 8, 'n': 0, 'lr': 0.1}", "parameter \"lr\": 0.1 is above max 0.01"},
        {"{'filters': 8, 'n': 0, 'lr': 0.001, 'x': 1}",
         "values: \"x\" is not a parameter of study study"},
        {"{'filters': 8, 'n': 0, 'lr': 0.001, 'wide3': 1}",
         "parameter \"wide3\": must be true or false"},
        {"{'filters': 8, 'n': 1.5, 'lr': 0.001}", "parameter \"n\": 1.5 is not an integer"},
        {"[1]", "values: must be an object of parameter values"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *values = json_parse(cases[i].values), *model = NULL, *active = NULL;
        char err[HPO_ERR_MAX] = "";
        assert_int_equal(hpo_study_resolve(study, values, &model, &active, err, sizeof err), -1);
        assert_string_equal(err, cases[i].message);
        assert_null(model);
        assert_null(active);
        cJSON_Delete(values);
    }
    hpo_study_destroy(&study);
}

static void unbuildable_model_reported(void **state)
{
    /* Each pass of conv 3x3 and pool 2 maps 32 to 15, 6 and 2; the fourth
     * conv finds a 2x2 input. */
    hpo_study *study = parse_ok(
        "{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 1, 'max': 4}},"
        " 'model': {'input_shape': [32, 32, 3], 'layers': ["
        "  {'repeat': '$n', 'layers': [{'type': 'conv2d', 'filters': 4, 'kernel_size': 3},"
        "                              {'type': 'maxpool2d', 'pool_size': 2}]},"
        "  {'type': 'flatten'}, {'type': 'dense', 'units': 10, 'activation': 'softmax'}]}}");
    cJSON *values = json_parse("{'n': 4}"), *model = NULL, *active = NULL;
    char err[HPO_ERR_MAX] = "";

    assert_int_equal(hpo_study_resolve(study, values, &model, &active, err, sizeof err), -1);
    assert_memory_equal(err, BUILD_FAILURE, strlen(BUILD_FAILURE));
    assert_non_null(strstr(err, "layers[6]"));
    assert_null(model);
    /* The check at hpod's start finds the one end that fails: n = 4. */
    assert_int_equal(hpo_study_warn_unbuildable_ends(study), 1);

    /* The configuration still has active values to record. */
    assert_int_equal(hpo_study_active(study, values, &active, err, sizeof err), 0);
    assert_int_equal(cJSON_GetObjectItem(active, "n")->valueint, 4);
    cJSON_Delete(active);
    cJSON_Delete(values);
    hpo_study_destroy(&study);
}

static void template_tunes_batch_size(void **state)
{
    hpo_study *study = parse_ok(
        "{'budget': {'epochs': 3}, 'space': {'bs': {'type': 'choice', 'values': [16, 64]}},"
        " 'model': {'layers': [{'type': 'flatten'},"
        "  {'type': 'dense', 'units': 10, 'activation': 'softmax'}],"
        "  'training': {'batch_size': '$bs'}}}");
    cJSON *values = json_parse("{'bs': 64}"), *model = NULL, *active = NULL;
    char err[HPO_ERR_MAX] = "";

    assert_int_equal(hpo_study_budget(study)->batch_size, 0);
    if (hpo_study_resolve(study, values, &model, &active, err, sizeof err) != 0)
        fail_msg("%s", err);
    cJSON *training = cJSON_GetObjectItem(model, "training");
    assert_int_equal(cJSON_GetObjectItem(training, "batch_size")->valueint, 64);
    assert_int_equal(cJSON_GetObjectItem(training, "epochs")->valueint, 3);
    cJSON_Delete(values);
    cJSON_Delete(model);
    cJSON_Delete(active);
    hpo_study_destroy(&study);
}

/* ---- unit cube ---- */

static void unit_mapping_values(void **state)
{
    hpo_study *study = parse_ok(
        "{'budget': {'epochs': 1}, 'space': ["
        " {'name': 'lr', 'type': 'float', 'min': 0.0001, 'max': 0.01, 'sampling': 'log'},"
        " {'name': 'filters', 'type': 'int', 'min': 32, 'max': 256, 'step': 32},"
        " {'name': 'units', 'type': 'int', 'min': 32, 'max': 256, 'step': 64},"
        " {'name': 'act', 'type': 'choice', 'values': ['relu', 'tanh', 'linear']},"
        " {'name': 'flag', 'type': 'bool'},"
        " {'name': 'rate', 'type': 'float', 'min': 0.1, 'max': 0.5},"
        " {'name': 'width', 'type': 'int', 'min': 1, 'max': 100, 'sampling': 'log'}],"
        " 'model': {'input_shape': [32, 32, 3], 'layers': ["
        "  {'type': 'conv2d', 'filters': '$filters', 'kernel_size': 3, 'activation': '$act'},"
        "  {'if': '$flag', 'layers': [{'type': 'dropout', 'rate': '$rate'}]},"
        "  {'type': 'flatten'}, {'type': 'dense', 'units': '$units'},"
        "  {'type': 'dense', 'units': '$width'},"
        "  {'type': 'dense', 'units': 10, 'activation': 'softmax'}],"
        "  'training': {'learning_rate': '$lr'}}}");
    const struct {
        double u[7];
        double lr;
        int filters, units;
        const char *act;
        bool flag;
        double rate;
        int width;
    } cases[] = {
        /* Midpoint: lr is the geometric mean sqrt(1e-4 * 1e-2). The 8 filter
         * values 32..256 put 0.5 at the start of bin 4 (160). units has the
         * 4 values 32, 96, 160, 224, and width is round(sqrt(100)). */
        {{0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5}, 1e-3, 160, 160, "tanh", true, 0.3, 10},
        {{0, 0, 0, 0, 0, 0, 0}, 1e-4, 32, 32, "relu", false, 0.1, 1},
        {{1, 1, 1, 1, 1, 1, 1}, 1e-2, 256, 224, "linear", true, 0.5, 100},
        /* Bins of the 3 choices end at 1/3 and 2/3; bool splits at 0.5. */
        {{0.25, 0.124, 0.26, 0.333, 0.499, 0.25, 0.25}, 1e-3 / sqrt(10.0), 32, 96, "relu",
         false, 0.2, 3},
        {{0.75, 0.125, 0.74, 0.334, 0.5, 0.75, 0.75}, 1e-3 * sqrt(10.0), 64, 160, "tanh",
         true, 0.4, 32},
        {{0.1, 0.999, 0.999, 0.667, 0.9, 0.0, 0.0}, 1e-4 * pow(100.0, 0.1), 256, 224, "linear",
         true, 0.1, 1},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *v = NULL;
        char err[HPO_ERR_MAX] = "";
        assert_int_equal(hpo_study_values_from_unit(study, cases[i].u, &v, err, sizeof err), 0);
        assert_float_equal(cJSON_GetObjectItem(v, "lr")->valuedouble, cases[i].lr,
                           1e-12 * cases[i].lr);
        assert_int_equal(cJSON_GetObjectItem(v, "filters")->valuedouble, cases[i].filters);
        assert_int_equal(cJSON_GetObjectItem(v, "units")->valuedouble, cases[i].units);
        assert_string_equal(cJSON_GetObjectItem(v, "act")->valuestring, cases[i].act);
        assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(v, "flag")), cases[i].flag);
        assert_float_equal(cJSON_GetObjectItem(v, "rate")->valuedouble, cases[i].rate, 1e-12);
        assert_int_equal(cJSON_GetObjectItem(v, "width")->valuedouble, cases[i].width);
        cJSON_Delete(v);
    }

    double outside[7] = {0.5, 0.5, 1.5, 0.5, 0.5, 0.5, 0.5};
    cJSON *v = NULL;
    char err[HPO_ERR_MAX] = "";
    assert_int_equal(hpo_study_values_from_unit(study, outside, &v, err, sizeof err), -1);
    assert_string_equal(err, "unit point: u[2] = 1.5 for \"units\" is outside [0, 1]");
    assert_null(v);
    outside[2] = NAN;
    assert_int_equal(hpo_study_values_from_unit(study, outside, &v, err, sizeof err), -1);
    hpo_study_destroy(&study);
}

static void unit_mapping_float_step(void **state)
{
    hpo_study *study = parse_ok(
        "{'budget': {'epochs': 1}, 'space': {"
        " 'rate': {'type': 'float', 'min': 0.1, 'max': 0.5, 'step': 0.1}},"
        " 'model': {'input_shape': [32, 32, 3], 'layers': [{'type': 'dropout', 'rate': '$rate'},"
        "  {'type': 'flatten'}, {'type': 'dense', 'units': 10, 'activation': 'softmax'}]}}");
    /* Five values 0.1 .. 0.5, one per fifth of [0, 1]. */
    static const double u[] = {0.0, 0.19, 0.2, 0.5, 0.79, 0.8, 1.0};
    static const double rate[] = {0.1, 0.1, 0.2, 0.3, 0.4, 0.5, 0.5};

    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        cJSON *v = NULL;
        char err[HPO_ERR_MAX] = "";
        assert_int_equal(hpo_study_values_from_unit(study, &u[i], &v, err, sizeof err), 0);
        assert_float_equal(cJSON_GetObjectItem(v, "rate")->valuedouble, rate[i], 1e-12);
        assert_int_equal(hpo_param_check_value(hpo_study_param(study, 0),
                                               cJSON_GetObjectItem(v, "rate"), err, sizeof err),
                         0);
        cJSON_Delete(v);
    }
    hpo_study_destroy(&study);
}

/* ---- descriptions and keys ---- */

static void defaults_follow_keras(void **state)
{
    hpo_study *study = parse_ok("{'budget': {'epochs': 1}, " SMALL_SPACE ", " SMALL_MODEL "}");
    cJSON *values = NULL;
    char err[HPO_ERR_MAX] = "";

    assert_int_equal(hpo_study_default_values(study, &values, err, sizeof err), 0);
    cJSON *expected = json_parse("{'filters': 4, 'n': 0, 'wide1': false, 'wide2': false,"
                                 " 'wide3': false, 'rate1': 0.1, 'rate2': 0.1, 'rate3': 0.1,"
                                 " 'lr': 0.001}");
    assert_true(cJSON_Compare(values, expected, true));
    cJSON_Delete(expected);
    cJSON_Delete(values);
    hpo_study_destroy(&study);
}

static void space_description(void **state)
{
    hpo_study *study = load_example(CIFAR10_STUDY);
    cJSON *space = hpo_study_space_to_json(study);

    assert_non_null(space);
    assert_int_equal(cJSON_GetArraySize(space), hpo_study_param_count(study));
    cJSON *lr = cJSON_GetArrayItem(space, hpo_study_param_index(study, "learning_rate"));
    cJSON *expected = json_parse("{'name': 'learning_rate', 'type': 'choice',"
                                 " 'values': [0.001, 0.0005, 0.0001], 'ordered': true,"
                                 " 'default': 0.001}");
    assert_true(cJSON_Compare(lr, expected, true));
    cJSON_Delete(expected);

    cJSON *filters = cJSON_GetArrayItem(space, 0);
    expected = json_parse("{'name': 'conv1_filters', 'type': 'int', 'min': 32, 'max': 256,"
                          " 'step': 32, 'sampling': 'linear', 'default': 32}");
    assert_true(cJSON_Compare(filters, expected, true));
    cJSON_Delete(expected);
    cJSON_Delete(space);
    hpo_study_destroy(&study);
}

static void config_key_ignores_order(void **state)
{
    hpo_study *study = parse_ok("{'budget': {'epochs': 1}, " SMALL_SPACE ", " SMALL_MODEL "}");
    cJSON *a = json_parse("{'filters': 8, 'n': 1, 'wide1': true, 'rate1': 0.2, 'lr': 0.001}");
    cJSON *b = json_parse("{'lr': 0.001, 'rate1': 0.2, 'wide1': true, 'n': 1, 'filters': 8}");
    cJSON *c = json_parse("{'lr': 0.001, 'rate1': 0.3, 'wide1': true, 'n': 1, 'filters': 8}");
    char *ka = hpo_study_config_key(study, a);
    char *kb = hpo_study_config_key(study, b);
    char *kc = hpo_study_config_key(study, c);

    assert_string_equal(ka, kb);
    assert_string_not_equal(ka, kc);
    assert_string_equal(ka, "{\"filters\":8,\"n\":1,\"wide1\":true,\"rate1\":0.2,\"lr\":0.001}");
    free(ka);
    free(kb);
    free(kc);
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(c);
    hpo_study_destroy(&study);
}

static void list_and_object_spaces_agree(void **state)
{
    hpo_study *a = parse_ok("{'budget': {'epochs': 1}, " SMALL_SPACE ", " SMALL_MODEL "}");
    hpo_study *b = parse_ok(
        "{'budget': {'epochs': 1}, 'space': ["
        " {'name': 'filters', 'type': 'int', 'min': 4, 'max': 16, 'step': 4},"
        " {'name': 'n', 'type': 'int', 'min': 0, 'max': 3},"
        " {'name': 'wide{i}', 'type': 'bool'},"
        " {'name': 'rate{i}', 'type': 'float', 'min': 0.1, 'max': 0.5, 'step': 0.1},"
        " {'name': 'lr', 'type': 'float', 'min': 0.0001, 'max': 0.01, 'sampling': 'log',"
        "  'default': 0.001}], " SMALL_MODEL "}");
    cJSON *da = hpo_study_space_to_json(a), *db = hpo_study_space_to_json(b);

    assert_true(cJSON_Compare(da, db, true));
    cJSON_Delete(da);
    cJSON_Delete(db);
    hpo_study_destroy(&a);
    hpo_study_destroy(&b);
}

static void objective_direction_defaults(void **state)
{
    static const struct {
        const char *objective;
        const char *metric;
        bool maximize;
    } cases[] = {
        {"", "val_accuracy", true},
        {"'objective': 'val_loss', ", "val_loss", false},
        {"'objective': {'metric': 'loss', 'direction': 'max'}, ", "loss", true},
        {"'objective': {'direction': 'min'}, ", "val_accuracy", false},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[4096];
        snprintf(text, sizeof text, "{%s'budget': {'epochs': 1}, %s, %s}", cases[i].objective,
                 SMALL_SPACE, SMALL_MODEL);
        hpo_study *study = parse_ok(text);
        assert_string_equal(hpo_study_objective(study), cases[i].metric);
        assert_int_equal(hpo_study_maximize(study), cases[i].maximize);
        hpo_study_destroy(&study);
    }
}

/* ---- invalid study files ---- */

#define SPACE_N "'space': {'n': {'type': 'int', 'min': 1, 'max': 2}}"
#define LAYERS_N                                                                 \
    "'model': {'layers': [{'type': 'conv2d', 'filters': '$n', 'kernel_size': 3},"\
    " {'type': 'flatten'}, {'type': 'dense', 'units': 10, 'activation': 'softmax'}]}"
#define TAIL "{'type': 'flatten'}, {'type': 'dense', 'units': 10, 'activation': 'softmax'}"

static const struct {
    const char *text;
    const char *message;
} invalid_cases[] = {
    {"{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 32, 'max': 16}}, "
     LAYERS_N "}",
     "space.n.max: 16 is below min 32"},
    {"{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 1, 'max': 2, 'step': 0}}, "
     LAYERS_N "}",
     "space.n.step: 0 is not positive"},
    {"{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 1, 'max': 4, 'step': -1}},"
     " " LAYERS_N "}",
     "space.n.step: -1 is not positive"},
    {"{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 1.5, 'max': 2}}, "
     LAYERS_N "}",
     "space.n.min: 1.5 is not an integer"},
    {"{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 1}}, " LAYERS_N "}",
     "space.n.max: missing"},
    {"{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': '1', 'max': 2}}, "
     LAYERS_N "}",
     "space.n.min: must be a number"},
    {"{'budget': {'epochs': 1}, 'space': {'n': {'type': 'integer', 'min': 1, 'max': 2}}, "
     LAYERS_N "}",
     "space.n.type: \"integer\" is not a parameter type; use \"int\", \"float\", \"choice\" or "
     "\"bool\""},
    {"{'budget': {'epochs': 1}, 'space': {'n': {'min': 1, 'max': 2}}, " LAYERS_N "}",
     "space.n.type: missing; use \"int\", \"float\", \"choice\" or \"bool\""},
    {"{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 1, 'max': 2, 'stpe': 1}},"
     " " LAYERS_N "}",
     "space.n.stpe: unknown field of an int parameter; expected one of type, min, max, step, "
     "sampling, default"},
    {"{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 1, 'max': 8, 'step': 2,"
     " 'default': 4}}, " LAYERS_N "}",
     "space.n.default: 4 is not on the step 2 from min 1"},
    {"{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 1, 'max': 2,"
     " 'sampling': 'cubic'}}, " LAYERS_N "}",
     "space.n.sampling: \"cubic\" is not a sampling; use \"linear\" or \"log\""},
    {"{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 1, 'max': 9, 'step': 2,"
     " 'sampling': 'log'}}, " LAYERS_N "}",
     "space.n.step: log sampling of an int needs step 1, not 2"},
    {"{'budget': {'epochs': 1}, 'space': {'lr': {'type': 'float', 'min': 0, 'max': 1,"
     " 'sampling': 'log'}}, 'model': {'layers': [" TAIL "], 'training': {'learning_rate': '$lr'}}}",
     "space.lr.min: 0 must be positive for log sampling"},
    {"{'budget': {'epochs': 1}, 'space': {'lr': {'type': 'float', 'min': 0.1, 'max': 1,"
     " 'sampling': 'log', 'step': 0.1}}, 'model': {'layers': [" TAIL "],"
     " 'training': {'learning_rate': '$lr'}}}",
     "space.lr.step: a float with log sampling cannot have a step"},
    {"{'budget': {'epochs': 1}, 'space': {'a': {'type': 'choice', 'values': []}}, " LAYERS_N "}",
     "space.a.values: empty; list at least one value"},
    {"{'budget': {'epochs': 1}, 'space': {'a': {'type': 'choice'}}, " LAYERS_N "}",
     "space.a.values: missing; list the choices"},
    {"{'budget': {'epochs': 1}, 'space': {'a': {'type': 'choice', 'values': [3, 'x']}}, "
     LAYERS_N "}",
     "space.a.values[1]: mixes numbers and strings; use one type"},
    {"{'budget': {'epochs': 1}, 'space': {'a': {'type': 'choice', 'values': [3, 5, 3]}}, "
     LAYERS_N "}",
     "space.a.values[2]: listed twice"},
    {"{'budget': {'epochs': 1}, 'space': {'a': {'type': 'choice', 'values': [true]}}, "
     LAYERS_N "}",
     "space.a.values[0]: must be a number or a string"},
    {"{'budget': {'epochs': 1}, 'space': {'a': {'type': 'choice', 'values': ['x'],"
     " 'default': 'y'}}, " LAYERS_N "}",
     "space.a.default: \"y\" is not one of the choices"},
    {"{'budget': {'epochs': 1}, 'space': {'d': {'type': 'bool', 'default': 1}}, " LAYERS_N "}",
     "space.d.default: must be true or false"},
    {"{'budget': {'epochs': 1}, 'space': {'a-b': {'type': 'bool'}}, " LAYERS_N "}",
     "space.a-b: \"a-b\" is not a valid parameter name; use at most 60 letters, digits and '_', "
     "with at most one \"{i}\""},
    {"{'budget': {'epochs': 1}, 'space': [{'type': 'bool'}], " LAYERS_N "}",
     "space[0].name: missing"},
    {"{'budget': {'epochs': 1}, 'space': [{'name': 'n', 'type': 'int', 'min': 1, 'max': 2},"
     " {'name': 'n', 'type': 'bool'}], " LAYERS_N "}",
     "space[1]: parameter \"n\" is defined twice (also at space[0])"},
    {"{'budget': {'epochs': 1}, 'space': 3, " LAYERS_N "}",
     "space: must be an object or a list of parameters"},
    {"{'budget': {'epochs': 1}, " LAYERS_N "}",
     "space: missing; define the parameters to tune"},
    {"{'budget': {'epochs': 1}, " SPACE_N "}",
     "model: missing; give the model template"},
    {"{'budget': {'epochs': 1}, " SPACE_N ", 'model': {'input_shape': [32, 32, 3]}}",
     "model.layers: missing; list the layers"},

    /* references */
    {"{'budget': {'epochs': 1}, " SPACE_N ", 'model': {'layers': ["
     " {'type': 'conv2d', 'filters': '$n', 'kernel_size': 3}, {'type': 'maxpool2d', 'pool_size': 2},"
     " {'type': 'dropout', 'rate': 0.1},"
     " {'repeat': '$conv_layers', 'layers': [{'type': 'dropout', 'rate': 0.1}]}, " TAIL "]}}",
     "model.layers[3].repeat: parameter \"conv_layers\" is not defined in space"},
    {"{'budget': {'epochs': 1}, " SPACE_N ", 'model': {'layers': ["
     " {'type': 'conv2d', 'filters': '$m', 'kernel_size': 3}, " TAIL "]}}",
     "model.layers[0].filters: parameter \"m\" is not defined in space"},
    {"{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 1, 'max': 2},"
     " 'd': {'type': 'bool'}}, 'model': {'layers': ["
     " {'type': 'conv2d', 'filters': '$n', 'kernel_size': 3},"
     " {'repeat': '$d', 'layers': []}, " TAIL "]}}",
     "model.layers[1].repeat: parameter \"d\" is a bool, but a repeat count needs an int "
     "parameter"},
    {"{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 1, 'max': 2},"
     " 'c': {'type': 'choice', 'values': [1, 2]}}, 'model': {'layers': ["
     " {'type': 'conv2d', 'filters': '$n', 'kernel_size': 3},"
     " {'repeat': '$c', 'layers': []}, " TAIL "]}}",
     "model.layers[1].repeat: parameter \"c\" is a choice of numbers, but a repeat count needs "
     "an int parameter"},
    {"{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 0, 'max': 65}},"
     " 'model': {'layers': [{'repeat': '$n', 'layers': [{'type': 'dropout', 'rate': 0.1}]}, "
     TAIL "]}}",
     "model.layers[0].repeat: parameter \"n\" ranges from 0 to 65, but a repeat count must lie "
     "within 0 to 64"},
    {"{'budget': {'epochs': 1}, " SPACE_N ", 'model': {'layers': ["
     " {'type': 'conv2d', 'filters': '$n', 'kernel_size': 3},"
     " {'repeat': 2.5, 'layers': []}, " TAIL "]}}",
     "model.layers[1].repeat: 2.5 is not a count from 0 to 64"},
    {"{'budget': {'epochs': 1}, " SPACE_N ", 'model': {'layers': ["
     " {'type': 'conv2d', 'filters': '$n', 'kernel_size': 3},"
     " {'repeat': 'n', 'layers': []}, " TAIL "]}}",
     "model.layers[1].repeat: must be a \"$name\" reference to an int parameter or a count"},
    {"{'budget': {'epochs': 1}, " SPACE_N ", 'model': {'layers': ["
     " {'type': 'conv2d', 'filters': '$n', 'kernel_size': 3},"
     " {'repeat': 2, 'layers': [{'repeat': 2, 'layers': []}]}, " TAIL "]}}",
     "model.layers[1].layers[0].repeat: a repeat block cannot be inside another repeat"},
    {"{'budget': {'epochs': 1}, " SPACE_N ", 'model': {'layers': ["
     " {'type': 'conv2d', 'filters': '$n', 'kernel_size': 3},"
     " {'repeat': 2, 'layer': []}, " TAIL "]}}",
     "model.layers[1].layer: unknown field of a repeat block; expected \"repeat\", \"layers\" "
     "or \"first_index\""},
    {"{'budget': {'epochs': 1}, " SPACE_N ", 'model': {'layers': ["
     " {'type': 'conv2d', 'filters': '$n', 'kernel_size': 3},"
     " {'repeat': 2}, " TAIL "]}}",
     "model.layers[1].layers: missing; list the layers of the block"},
    {"{'budget': {'epochs': 1}, " SPACE_N ", 'model': {'layers': ["
     " {'type': 'conv2d', 'filters': '$n', 'kernel_size': 3},"
     " {'repeat': 2, 'first_index': -1, 'layers': []}, " TAIL "]}}",
     "model.layers[1].first_index: must be an integer from 0 to 64"},
    {"{'budget': {'epochs': 1}, " SPACE_N ", 'model': {'layers': ["
     " {'type': 'conv2d', 'filters': '$n', 'kernel_size': 3},"
     " {'if': '$n', 'layers': []}, " TAIL "]}}",
     "model.layers[1].if: parameter \"n\" is an int, but an if block needs true or false"},
    {"{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 1, 'max': 2},"
     " 'd': {'type': 'bool'}}, 'model': {'layers': ["
     " {'type': 'conv2d', 'filters': '$n', 'kernel_size': 3},"
     " {'if': '$d', 'then': []}, " TAIL "]}}",
     "model.layers[1].then: unknown field of an if block; expected \"if\" or \"layers\""},
    {"{'budget': {'epochs': 1}, 'space': {'a': {'type': 'choice', 'values': ['relu', 'tanh']}},"
     " 'model': {'layers': [{'type': 'conv2d', 'filters': '$a', 'kernel_size': 3}, " TAIL "]}}",
     "model.layers[0].filters: parameter \"a\" is a choice of strings, but \"filters\" needs an "
     "integer"},
    {"{'budget': {'epochs': 1}, 'space': {'r': {'type': 'float', 'min': 1, 'max': 4}},"
     " 'model': {'layers': [{'type': 'conv2d', 'filters': '$r', 'kernel_size': 3}, " TAIL "]}}",
     "model.layers[0].filters: parameter \"r\" is a float, but \"filters\" needs an integer"},
    {"{'budget': {'epochs': 1}, " SPACE_N ", 'model': {'layers': ["
     " {'type': 'conv2d', 'filters': '$n', 'kernel_size': 3, 'activation': '$n'}, " TAIL "]}}",
     "model.layers[0].activation: parameter \"n\" is an int, but \"activation\" needs a string"},
    {"{'budget': {'epochs': 1}, 'space': {'f{i}': {'type': 'int', 'min': 1, 'max': 2}},"
     " 'model': {'layers': [{'type': 'conv2d', 'filters': '$f{i}', 'kernel_size': 3}, " TAIL "]}}",
     "model.layers[0].filters: \"$f{i}\" uses \"{i}\" outside a repeat block"},
    {"{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 1, 'max': 2},"
     " 'x': {'type': 'bool'}}, " LAYERS_N "}",
     "space.x: parameter \"x\" is not used by the model; reference it as \"$x\" or remove it"},
    {"{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 1, 'max': 2},"
     " 'x{i}': {'type': 'bool'}}, " LAYERS_N "}",
     "space.x{i}: parameter family \"x{i}\" is not used by the model; reference it as "
     "\"$x{i}\" inside a repeat or remove it"},
    {"{'budget': {'epochs': 1}, 'space': {'f1': {'type': 'int', 'min': 1, 'max': 2},"
     " 'f{i}': {'type': 'int', 'min': 1, 'max': 3}}, 'model': {'layers': ["
     " {'type': 'conv2d', 'filters': '$f1', 'kernel_size': 3},"
     " {'repeat': 2, 'layers': [{'type': 'conv2d', 'filters': '$f{i}', 'kernel_size': 1}]}, "
     TAIL "]}}",
     "model.layers[1].layers[0].filters: parameter \"f1\" is defined by both space.f1 and "
     "space.f{i} with different settings; make them equal or rename one"},

    /* budget, objective, training and the top level */
    {"{" SPACE_N ", " LAYERS_N "}", "budget: missing; give at least budget.epochs"},
    {"{'budget': {'max_trials': 5}, " SPACE_N ", " LAYERS_N "}",
     "budget.epochs: missing; give the epochs of each trial"},
    {"{'budget': {'epochs': 0}, " SPACE_N ", " LAYERS_N "}", "budget.epochs: 0 is below 1"},
    {"{'budget': {'epochs': 1, 'batch_size': 'big'}, " SPACE_N ", " LAYERS_N "}",
     "budget.batch_size: must be an integer"},
    {"{'budget': {'epochs': 1, 'train_size': 48000}, " SPACE_N ", " LAYERS_N "}",
     "budget.train_size: 48000 training and 5000 validation images exceed the 50000 CIFAR-10 "
     "training images"},
    {"{'budget': {'epochs': 1, 'val_size': 0}, " SPACE_N ", " LAYERS_N "}",
     "budget.val_size: 0 leaves no validation set for the objective val_accuracy"},
    {"{'budget': {'epochs': 1, 'trials': 5}, " SPACE_N ", " LAYERS_N "}",
     "budget.trials: unknown field; expected one of epochs, train_size, val_size, batch_size, "
     "max_trials"},
    {"{'objective': {'metric': 'f1'}, 'budget': {'epochs': 1}, " SPACE_N ", " LAYERS_N "}",
     "objective.metric: \"f1\" is not a metric the worker reports; use val_accuracy, val_loss, "
     "accuracy or loss"},
    {"{'objective': {'direction': 'up'}, 'budget': {'epochs': 1}, " SPACE_N ", " LAYERS_N "}",
     "objective.direction: must be \"max\" or \"min\""},
    {"{'budget': {'epochs': 1}, " SPACE_N ", 'model': {'layers': ["
     " {'type': 'conv2d', 'filters': '$n', 'kernel_size': 3}, " TAIL "],"
     " 'training': {'epochs': 3}}}",
     "model.training.epochs: remove it; budget.epochs sets the epochs of every trial"},
    {"{'budget': {'epochs': 1, 'batch_size': 8}, " SPACE_N ", 'model': {'layers': ["
     " {'type': 'conv2d', 'filters': '$n', 'kernel_size': 3}, " TAIL "],"
     " 'training': {'batch_size': 16}}}",
     "model.training.batch_size: also set in budget.batch_size; keep one"},
    {"{'budget': {'epochs': 1}, " SPACE_N ", " LAYERS_N ", 'modle': {}}",
     "modle: unknown field; expected one of name, description, objective, budget, space, model, tuner, synthetic"},
    {"{'name': '', 'budget': {'epochs': 1}, " SPACE_N ", " LAYERS_N "}",
     "name: must be a non-empty string"},
    {"[1, 2]", "study: must be a JSON object"},
    {"{'budget': {'epochs': 1},\n 'space': {,}}", "study: invalid JSON near line 2, column 13"},
};

static void invalid_study_messages(void **state)
{
    for (size_t i = 0; i < sizeof invalid_cases / sizeof invalid_cases[0]; i++) {
        char err[HPO_ERR_MAX] = "";
        hpo_study *study = NULL;
        char *text = json_text(invalid_cases[i].text);
        int rc = hpo_study_parse(text, &study, err, sizeof err);
        free(text);
        if (rc != -1 || strcmp(err, invalid_cases[i].message) != 0)
            fail_msg("case %zu: expected \"%s\", got rc %d \"%s\"", i,
                     invalid_cases[i].message, rc, err);
        assert_null(study);
    }
}

static void default_model_must_build(void **state)
{
    char err[HPO_ERR_MAX] = "";
    hpo_study *study = NULL;
    /* Pooling by 8 leaves a 4x4 input, too small for the default 5x5 kernel. */
    char *text = json_text(
        "{'budget': {'epochs': 1}, 'space': {'k': {'type': 'choice', 'values': [5, 3]}},"
        " 'model': {'layers': [{'type': 'maxpool2d', 'pool_size': 8},"
        "  {'type': 'conv2d', 'filters': 4, 'kernel_size': '$k'}, " TAIL "]}}");
    static const char prefix[] =
        "model: the default configuration does not resolve (" BUILD_FAILURE "layers[1]";

    assert_int_equal(hpo_study_parse(text, &study, err, sizeof err), -1);
    assert_memory_equal(err, prefix, strlen(prefix));
    assert_null(study);

    /* With 3 as the default the same template loads. */
    free(text);
    text = json_text(
        "{'budget': {'epochs': 1}, 'space': {'k': {'type': 'choice', 'values': [5, 3],"
        " 'default': 3}}, 'model': {'layers': [{'type': 'maxpool2d', 'pool_size': 8},"
        "  {'type': 'conv2d', 'filters': 4, 'kernel_size': '$k'}, " TAIL "]}}");
    assert_int_equal(hpo_study_parse(text, &study, err, sizeof err), 0);
    hpo_study_destroy(&study);
    free(text);
}

static void load_file_errors(void **state)
{
    char err[HPO_ERR_MAX] = "";
    hpo_study *study = NULL;

    assert_int_equal(hpo_study_load_file("/nonexistent/study.json", &study, err, sizeof err), -1);
    assert_string_equal(err, "study file /nonexistent/study.json: cannot open: No such file or "
                             "directory");
    assert_null(study);

    /* A model spec is not a study: the message names the file and the field. */
    assert_int_equal(hpo_study_load_file(SEED_BEST_MODEL, &study, err, sizeof err), -1);
    assert_string_equal(err, "study file " SEED_BEST_MODEL ": input_shape: unknown field; "
                             "expected one of name, description, objective, budget, space, "
                             "model, tuner, synthetic");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(example_loads),
        cmocka_unit_test(example_best_trial_resolves),
        cmocka_unit_test(example_random_samples_resolve),
        cmocka_unit_test(example_active_parameters),
        cmocka_unit_test(example_tiny_study_loads),
        cmocka_unit_test(repeat_and_if_expand),
        cmocka_unit_test(resolve_rejects_bad_values),
        cmocka_unit_test(unbuildable_model_reported),
        cmocka_unit_test(template_tunes_batch_size),
        cmocka_unit_test(unit_mapping_values),
        cmocka_unit_test(unit_mapping_float_step),
        cmocka_unit_test(defaults_follow_keras),
        cmocka_unit_test(space_description),
        cmocka_unit_test(config_key_ignores_order),
        cmocka_unit_test(list_and_object_spaces_agree),
        cmocka_unit_test(objective_direction_defaults),
        cmocka_unit_test(invalid_study_messages),
        cmocka_unit_test(default_model_must_build),
        cmocka_unit_test(load_file_errors),
    };

    gsl_set_error_handler_off();
    hpo_log_init("test", HPO_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
