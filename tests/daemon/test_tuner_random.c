/* Tests of the random tuner: no duplicate proposals, exact exhaustion of
 * small finite spaces, observations that block re-proposals, and seeds. */
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
#include "hpo/study.h"
#include "hpo/tuner.h"

#define CIFAR10_STUDY HPO_EXAMPLES_DIR "/cifar10-study.json"

#define TAIL "{'type': 'flatten'}, {'type': 'dense', 'units': 10, 'activation': 'softmax'}"

/* Two bools and a choice of three: 12 configurations, all parameters
 * always active. */
#define FLAT_STUDY                                                               \
    "{'budget': {'epochs': 1}, 'space': {'a': {'type': 'bool'},"                 \
    " 'b': {'type': 'bool'}, 'act': {'type': 'choice', 'values': ['relu', 'tanh', 'linear']}},"\
    " 'model': {'layers': [{'if': '$a', 'layers': [{'type': 'dropout', 'rate': 0.1}]},"  \
    "  {'if': '$b', 'layers': [{'type': 'dropout', 'rate': 0.2}]},"             \
    "  {'type': 'conv2d', 'filters': 4, 'kernel_size': 3, 'activation': '$act'}, " TAIL "]}}"

/* A repeat of 0 to 2 layers, each with its own bool: 1 + 2 + 4 = 7 distinct
 * configurations among 3 x 2 x 2 = 12 raw combinations. */
#define NESTED_STUDY                                                             \
    "{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 0, 'max': 2},"\
    " 'd{i}': {'type': 'bool'}}, 'model': {'layers': ["                          \
    "  {'repeat': '$n', 'layers': [{'if': '$d{i}', 'layers': [{'type': 'dropout', 'rate': 0.1}]},"\
    "   {'type': 'conv2d', 'filters': 4, 'kernel_size': 3}]}, " TAIL "]}}"

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

static hpo_study *parse_study(const char *text)
{
    char err[HPO_ERR_MAX] = "";
    hpo_study *study = NULL;
    char *copy = json_text(text);
    int rc = hpo_study_parse(copy, &study, err, sizeof err);
    free(copy);
    if (rc != 0)
        fail_msg("study rejected: %s", err);
    return study;
}

static hpo_tuner *create_tuner(const hpo_study *study, uint64_t seed)
{
    char err[HPO_ERR_MAX] = "";
    hpo_tuner *tuner = NULL;
    if (hpo_tuner_create("random", study, seed, &tuner, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(hpo_tuner_name(tuner), "random");
    return tuner;
}

/* Keys of the configurations seen so far, to find duplicates. */
typedef struct {
    char **keys;
    int n;
} key_list;

/* Adds the key of values' active configuration; fails the test when it
 * is already there. */
static void add_unique(key_list *list, const hpo_study *study, const cJSON *values)
{
    cJSON *active = NULL;
    char err[HPO_ERR_MAX] = "";
    if (hpo_study_active(study, values, &active, err, sizeof err) != 0)
        fail_msg("proposal outside the space: %s", err);
    char *key = hpo_study_config_key(study, active);
    cJSON_Delete(active);
    assert_non_null(key);

    for (int i = 0; i < list->n; i++) {
        if (strcmp(list->keys[i], key) == 0)
            fail_msg("configuration proposed twice: %s", key);
    }
    list->keys = realloc(list->keys, (size_t)(list->n + 1) * sizeof *list->keys);
    assert_non_null(list->keys);
    list->keys[list->n++] = key;
}

static void key_list_clear(key_list *list)
{
    for (int i = 0; i < list->n; i++)
        free(list->keys[i]);
    free(list->keys);
    list->keys = NULL;
    list->n = 0;
}

/* Proposes until the tuner reports exhaustion or limit proposals are made;
 * returns the number of proposals, all checked to be distinct. */
static int propose_all(hpo_tuner *tuner, const hpo_study *study, int limit, key_list *seen)
{
    int n = 0;
    for (; n < limit; n++) {
        cJSON *values = NULL;
        char err[HPO_ERR_MAX] = "";
        int rc = hpo_tuner_propose(tuner, &values, err, sizeof err);
        if (rc == 1) {
            assert_null(values);
            break;
        }
        if (rc != 0)
            fail_msg("propose failed: %s", err);
        assert_int_equal(cJSON_GetArraySize(values), hpo_study_param_count(study));
        add_unique(seen, study, values);
        cJSON_Delete(values);
    }
    return n;
}

static void flat_space_exhausts_after_12(void **state)
{
    hpo_study *study = parse_study(FLAT_STUDY);
    hpo_tuner *tuner = create_tuner(study, 1);
    key_list seen = {0};
    cJSON *values = NULL;
    char err[HPO_ERR_MAX] = "";

    assert_int_equal(propose_all(tuner, study, 100, &seen), 12);
    assert_int_equal(hpo_tuner_known_count(tuner), 12);

    /* Exhaustion is final. */
    assert_int_equal(hpo_tuner_propose(tuner, &values, err, sizeof err), 1);
    assert_null(values);

    key_list_clear(&seen);
    hpo_tuner_destroy(&tuner);
    assert_null(tuner);
    hpo_study_destroy(&study);
}

static void inactive_values_not_distinct(void **state)
{
    hpo_study *study = parse_study(NESTED_STUDY);
    hpo_tuner *tuner = create_tuner(study, 5);
    key_list seen = {0};

    assert_int_equal(hpo_study_param_count(study), 3);
    assert_int_equal(propose_all(tuner, study, 100, &seen), 7);
    key_list_clear(&seen);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

static void observed_configurations_not_proposed(void **state)
{
    hpo_study *study = parse_study(FLAT_STUDY);
    hpo_tuner *tuner = create_tuner(study, 2);
    key_list seen = {0};
    char err[HPO_ERR_MAX] = "";

    /* A resumed study replays its trials: finished, failed and pending,
     * with full values or with active values only. */
    static const char *const replayed[] = {
        "{'a': true, 'b': false, 'act': 'relu'}",
        "{'a': true, 'b': true, 'act': 'relu'}",
        "{'a': false, 'b': false, 'act': 'tanh'}",
        "{'a': false, 'b': true, 'act': 'linear'}",
        "{'a': true, 'b': true, 'act': 'linear'}",
    };
    static const hpo_observe_status statuses[] = {
        HPO_OBSERVE_OK, HPO_OBSERVE_FAILED, HPO_OBSERVE_PENDING, HPO_OBSERVE_OK, HPO_OBSERVE_OK};
    for (int i = 0; i < 5; i++) {
        char *text = json_text(replayed[i]);
        cJSON *values = cJSON_Parse(text);
        free(text);
        const cJSON *as_values = i % 2 == 0 ? values : NULL;
        const cJSON *as_active = i % 2 == 0 ? NULL : values;
        if (hpo_tuner_observe(tuner, as_values, as_active, 0.5 + 0.1 * i, statuses[i],
                              err, sizeof err) != 0)
            fail_msg("%s", err);
        add_unique(&seen, study, values);
        cJSON_Delete(values);
    }
    assert_int_equal(hpo_tuner_known_count(tuner), 5);

    /* Observing a known configuration again updates it, adds nothing. */
    char *text = json_text(replayed[2]);
    cJSON *again = cJSON_Parse(text);
    free(text);
    assert_int_equal(hpo_tuner_observe(tuner, again, NULL, 0.7, HPO_OBSERVE_OK, err, sizeof err),
                     0);
    cJSON_Delete(again);
    assert_int_equal(hpo_tuner_known_count(tuner), 5);

    /* add_unique fails the test if a proposal repeats a replayed trial. */
    assert_int_equal(propose_all(tuner, study, 100, &seen), 7);
    key_list_clear(&seen);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

static void observe_rejects_foreign_values(void **state)
{
    hpo_study *study = parse_study(FLAT_STUDY);
    hpo_tuner *tuner = create_tuner(study, 3);
    char err[HPO_ERR_MAX] = "";
    char *text = json_text("{'a': true, 'b': false, 'act': 'gelu'}");
    cJSON *values = cJSON_Parse(text);

    assert_int_equal(hpo_tuner_observe(tuner, values, NULL, NAN, HPO_OBSERVE_FAILED,
                                       err, sizeof err), -1);
    assert_string_equal(err, "tuner random: observed configuration rejected: parameter \"act\": "
                             "\"gelu\" is not one of the choices");
    assert_int_equal(hpo_tuner_observe(tuner, NULL, NULL, NAN, HPO_OBSERVE_FAILED,
                                       err, sizeof err), -1);
    assert_string_equal(err, "tuner random: observe needs values or active values");
    assert_int_equal(hpo_tuner_known_count(tuner), 0);

    free(text);
    cJSON_Delete(values);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

static void example_proposals_distinct(void **state)
{
    char err[HPO_ERR_MAX] = "";
    hpo_study *study = NULL;
    if (hpo_study_load_file(CIFAR10_STUDY, &study, err, sizeof err) != 0)
        fail_msg("%s", err);
    hpo_tuner *tuner = create_tuner(study, 11);
    key_list seen = {0};

    assert_int_equal(propose_all(tuner, study, 300, &seen), 300);
    assert_int_equal(hpo_tuner_known_count(tuner), 300);
    key_list_clear(&seen);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

/* The first proposals as one string, to compare runs. */
static char *first_proposals(const hpo_study *study, uint64_t seed, int n)
{
    hpo_tuner *tuner = create_tuner(study, seed);
    size_t size = 1;
    char *all = calloc(1, 1);

    for (int i = 0; i < n; i++) {
        cJSON *values = NULL;
        char err[HPO_ERR_MAX] = "";
        assert_int_equal(hpo_tuner_propose(tuner, &values, err, sizeof err), 0);
        char *text = cJSON_PrintUnformatted(values);
        size += strlen(text);
        all = realloc(all, size);
        strcat(all, text);
        free(text);
        cJSON_Delete(values);
    }
    hpo_tuner_destroy(&tuner);
    return all;
}

static void seed_determines_proposals(void **state)
{
    hpo_study *study = parse_study(
        "{'budget': {'epochs': 1}, 'space': {"
        " 'lr': {'type': 'float', 'min': 0.0001, 'max': 0.01, 'sampling': 'log'},"
        " 'rate': {'type': 'float', 'min': 0.0, 'max': 0.5}},"
        " 'model': {'layers': [{'type': 'dropout', 'rate': '$rate'}, " TAIL "],"
        "  'training': {'learning_rate': '$lr'}}}");

    /* 30 proposals cover the Sobol design (max(10, 2 d) = 10) and then
     * independent draws. */
    char *a = first_proposals(study, 42, 30);
    char *b = first_proposals(study, 42, 30);
    char *c = first_proposals(study, 43, 30);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    free(a);
    free(b);
    free(c);
    hpo_study_destroy(&study);
}

static void sobol_design_first_points(void **state)
{
    /* One int with the 8 values 8, 16, ..., 64. GSL's 1-D Sobol sequence
     * starts 1/2, 3/4, 1/4, 3/8, 7/8, 5/8, 1/8 (the van der Corput points
     * of denominator 8 in Gray-code order, without 0). The tuner shifts
     * them by s modulo 1, where s is the first uniform draw of an MT19937
     * generator seeded with the tuner's seed; 7 distinct grid points stay
     * in 7 distinct bins, so the first 7 proposals follow directly. */
    static const double sobol[] = {0.5, 0.75, 0.25, 0.375, 0.875, 0.625, 0.125};
    hpo_study *study = parse_study(
        "{'budget': {'epochs': 1}, 'space': {'f': {'type': 'int', 'min': 8, 'max': 64,"
        " 'step': 8}}, 'model': {'layers': [{'type': 'conv2d', 'filters': '$f',"
        " 'kernel_size': 3}, " TAIL "]}}");
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 9);
    double shift = gsl_rng_uniform(rng);
    gsl_rng_free(rng);
    hpo_tuner *tuner = create_tuner(study, 9);

    for (int i = 0; i < 7; i++) {
        cJSON *values = NULL;
        char err[HPO_ERR_MAX] = "";
        assert_int_equal(hpo_tuner_propose(tuner, &values, err, sizeof err), 0);
        int expected = 8 + 8 * (int)floor(8 * fmod(sobol[i] + shift, 1.0));
        assert_int_equal(cJSON_GetObjectItem(values, "f")->valueint, expected);
        cJSON_Delete(values);
    }
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

static void large_finite_space_gives_up(void **state)
{
    /* 20,000 values are too many to list, so exhaustion comes from 1000
     * duplicate draws in a row, which happens once about 1 in 1000
     * configurations or fewer remain. */
    hpo_study *study = parse_study(
        "{'budget': {'epochs': 1}, 'space': {'s': {'type': 'int', 'min': 1, 'max': 20000}},"
        " 'model': {'layers': [" TAIL "], 'training': {'seed': '$s'}}}");
    hpo_tuner *tuner = create_tuner(study, 4);
    bool *taken = calloc(20001, sizeof *taken);
    int n = 0;

    for (;;) {
        cJSON *values = NULL;
        char err[HPO_ERR_MAX] = "";
        int rc = hpo_tuner_propose(tuner, &values, err, sizeof err);
        if (rc == 1)
            break;
        assert_int_equal(rc, 0);
        int s = cJSON_GetObjectItem(values, "s")->valueint;
        assert_false(taken[s]);
        taken[s] = true;
        n++;
        cJSON_Delete(values);
    }
    assert_true(n >= 19800);
    assert_true(n <= 20000);
    free(taken);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

static void many_dimensions_without_sobol(void **state)
{
    /* 41 parameters exceed the Sobol generator's 40 dimensions; the tuner
     * falls back to uniform draws. */
    hpo_study *study = parse_study(
        "{'budget': {'epochs': 1}, 'space': {'n': {'type': 'int', 'min': 40, 'max': 40},"
        " 'd{i}': {'type': 'bool'}}, 'model': {'layers': ["
        "  {'repeat': '$n', 'layers': [{'if': '$d{i}', 'layers': [{'type': 'dropout',"
        "   'rate': 0.1}]}]}, " TAIL "]}}");
    hpo_tuner *tuner = create_tuner(study, 8);
    key_list seen = {0};

    assert_int_equal(hpo_study_param_count(study), 41);
    assert_int_equal(propose_all(tuner, study, 50, &seen), 50);
    key_list_clear(&seen);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

static void single_configuration_space(void **state)
{
    /* A one-value int is a space of one configuration. */
    hpo_study *study = parse_study(
        "{'budget': {'epochs': 1}, 'space': {'f': {'type': 'int', 'min': 16, 'max': 16}},"
        " 'model': {'layers': [{'type': 'conv2d', 'filters': '$f', 'kernel_size': 3}, "
        TAIL "]}}");
    hpo_tuner *tuner = create_tuner(study, 1);
    key_list seen = {0};

    assert_int_equal(propose_all(tuner, study, 10, &seen), 1);
    key_list_clear(&seen);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

static void unknown_tuner_rejected(void **state)
{
    hpo_study *study = parse_study(FLAT_STUDY);
    hpo_tuner *tuner = NULL;
    char err[HPO_ERR_MAX] = "";

    assert_int_equal(hpo_tuner_create("hyperband", study, 1, &tuner, err, sizeof err), -1);
    assert_string_equal(err, "tuner \"hyperband\": unknown; use \"bayes\" or \"random\"");
    assert_null(tuner);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flat_space_exhausts_after_12),
        cmocka_unit_test(inactive_values_not_distinct),
        cmocka_unit_test(observed_configurations_not_proposed),
        cmocka_unit_test(observe_rejects_foreign_values),
        cmocka_unit_test(example_proposals_distinct),
        cmocka_unit_test(seed_determines_proposals),
        cmocka_unit_test(sobol_design_first_points),
        cmocka_unit_test(large_finite_space_gives_up),
        cmocka_unit_test(many_dimensions_without_sobol),
        cmocka_unit_test(single_configuration_space),
        cmocka_unit_test(unknown_tuner_rejected),
    };

    gsl_set_error_handler_off();
    hpo_log_init("test", HPO_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
