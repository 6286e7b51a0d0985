/* Tests of the bayes tuner: valid proposals under degenerate data
 * (duplicates, a constant objective, a single observation, all trials
 * failed), exhaustion of a finite space, distinct proposals for parallel
 * workers, the split prepare/run/finish API, and Branin in-process against
 * random search. */
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

#include "hpo/error.h"
#include "hpo/log.h"
#include "hpo/study.h"
#include "hpo/tuner.h"
#include "tuner_bayes.h"

#define CIFAR10_STUDY HPO_EXAMPLES_DIR "/cifar10-study.json"

#define TAIL "{'type': 'flatten'}, {'type': 'dense', 'units': 10, 'activation': 'softmax'}"

/* Branin's x1 in [-5, 10] and x2 in [0, 15] as two dropout rates in
 * [0, 0.75], scaled by 20; a study needs every parameter in its model. */
#define BRANIN_STUDY                                                              \
    "{'budget': {'epochs': 1, 'max_trials': 30}, 'objective': {'metric': 'loss'},"\
    " 'space': {'x1': {'type': 'float', 'min': 0, 'max': 0.75},"                  \
    " 'x2': {'type': 'float', 'min': 0, 'max': 0.75}},"                           \
    " 'model': {'layers': [{'type': 'dropout', 'rate': '$x1'},"                   \
    " {'type': 'dropout', 'rate': '$x2'}, " TAIL "]}}"

/* Two bools and a choice of three: 12 configurations. */
#define FLAT_STUDY                                                               \
    "{'budget': {'epochs': 1}, 'space': {'a': {'type': 'bool'},"                 \
    " 'b': {'type': 'bool'}, 'act': {'type': 'choice', 'values': ['relu', 'tanh', 'linear']}},"\
    " 'model': {'layers': [{'if': '$a', 'layers': [{'type': 'dropout', 'rate': 0.1}]},"  \
    "  {'if': '$b', 'layers': [{'type': 'dropout', 'rate': 0.2}]},"             \
    "  {'type': 'conv2d', 'filters': 4, 'kernel_size': 3, 'activation': '$act'}, " TAIL "]}}"

#define BRANIN_MINIMUM 0.397887357729738

static hpo_study *parse_study(const char *text)
{
    char err[HPO_ERR_MAX] = "";
    hpo_study *study = NULL;
    char *copy = strdup(text);
    assert_non_null(copy);
    for (char *p = copy; *p != '\0'; p++) {
        if (*p == '\'')
            *p = '"';
    }
    int rc = hpo_study_parse(copy, &study, err, sizeof err);
    free(copy);
    if (rc != 0)
        fail_msg("study rejected: %s", err);
    return study;
}

static hpo_tuner *create_tuner(const char *name, const hpo_study *study, uint64_t seed)
{
    char err[HPO_ERR_MAX] = "";
    hpo_tuner *tuner = NULL;
    if (hpo_tuner_create(name, study, seed, &tuner, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(hpo_tuner_name(tuner), name);
    return tuner;
}

static void set_initial(hpo_tuner *tuner, int initial)
{
    char err[HPO_ERR_MAX] = "";
    hpo_bayes_options opt;
    hpo_bayes_options_default(&opt);
    opt.initial_trials = initial;
    if (hpo_tuner_bayes_configure(tuner, &opt, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(hpo_tuner_bayes_initial_trials(tuner), initial);
}

static double branin(const cJSON *values)
{
    double x1 = -5.0 + 20.0 * cJSON_GetObjectItem(values, "x1")->valuedouble;
    double x2 = 20.0 * cJSON_GetObjectItem(values, "x2")->valuedouble;
    double b = 5.1 / (4.0 * M_PI * M_PI), c = 5.0 / M_PI, t = 1.0 / (8.0 * M_PI);
    double u = x2 - b * x1 * x1 + c * x1 - 6.0;
    return u * u + 10.0 * (1.0 - t) * cos(x1) + 10.0;
}

/* Proposes one configuration and checks that it resolves and is new. */
static cJSON *propose_valid(const hpo_study *study, hpo_tuner *tuner, char ***keys, int *n_keys)
{
    char err[HPO_ERR_MAX] = "";
    cJSON *values = NULL, *active = NULL;

    int rc = hpo_tuner_propose(tuner, &values, err, sizeof err);
    if (rc != 0)
        fail_msg("propose returned %d: %s", rc, err);
    if (hpo_study_active(study, values, &active, err, sizeof err) != 0)
        fail_msg("proposal does not resolve: %s", err);
    for (int i = 0; i < hpo_study_param_count(study); i++)
        assert_non_null(cJSON_GetObjectItem(values, hpo_study_param(study, i)->name));

    char *key = hpo_study_config_key(study, active);
    assert_non_null(key);
    for (int i = 0; keys != NULL && i < *n_keys; i++) {
        if (strcmp((*keys)[i], key) == 0)
            fail_msg("proposal %s was proposed before", key);
    }
    if (keys != NULL) {
        *keys = realloc(*keys, (size_t)(*n_keys + 1) * sizeof **keys);
        (*keys)[(*n_keys)++] = key;
    } else {
        free(key);
    }
    cJSON_Delete(active);
    return values;
}

static void free_keys(char **keys, int n)
{
    for (int i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

static void observe(hpo_tuner *tuner, const cJSON *values, double objective,
                    hpo_observe_status status)
{
    char err[HPO_ERR_MAX] = "";
    if (hpo_tuner_observe(tuner, values, NULL, objective, status, err, sizeof err) != 0)
        fail_msg("%s", err);
}

/* Best Branin value after trials proposals of the named tuner. */
static double run_branin(const hpo_study *study, const char *name, uint64_t seed, int trials)
{
    hpo_tuner *tuner = create_tuner(name, study, seed);
    double best = INFINITY;
    char **keys = NULL;
    int n_keys = 0;

    for (int i = 0; i < trials; i++) {
        cJSON *values = propose_valid(study, tuner, &keys, &n_keys);
        double y = branin(values);
        best = fmin(best, y);
        observe(tuner, values, y, HPO_OBSERVE_OK);
        cJSON_Delete(values);
    }
    free_keys(keys, n_keys);
    hpo_tuner_destroy(&tuner);
    return best;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Over five seeds and 30 trials, the median regret of bayes is below a
 * tenth of random search's and every bayes run is within 0.05 of the
 * minimum. */
static void branin_beats_random(void **state)
{
    (void)state;
    enum { SEEDS = 5, TRIALS = 30 };
    hpo_study *study = parse_study(BRANIN_STUDY);
    double bayes[SEEDS], random[SEEDS];

    for (int s = 0; s < SEEDS; s++) {
        bayes[s] = run_branin(study, "bayes", 100 + (uint64_t)s, TRIALS) - BRANIN_MINIMUM;
        random[s] = run_branin(study, "random", 100 + (uint64_t)s, TRIALS) - BRANIN_MINIMUM;
        print_message("seed %d: regret bayes %.5f, random %.5f\n", s, bayes[s], random[s]);
        assert_true(bayes[s] < 0.05);
    }
    qsort(bayes, SEEDS, sizeof *bayes, compare_doubles);
    qsort(random, SEEDS, sizeof *random, compare_doubles);
    assert_true(bayes[SEEDS / 2] < 0.1 * random[SEEDS / 2]);
    hpo_study_destroy(&study);
}

/* The design has max(5, d + 1) trials, d = 2 for Branin. */
static void design_size_default(void **state)
{
    (void)state;
    hpo_study *study = parse_study(BRANIN_STUDY);
    hpo_tuner *tuner = create_tuner("bayes", study, 1);
    assert_int_equal(hpo_tuner_bayes_initial_trials(tuner), 5);
    hpo_tuner_destroy(&tuner);

    /* The cifar10 study has 27 parameters and 10 trials: the design is
     * capped at max(5, 10 / 3) = 5. */
    char err[HPO_ERR_MAX] = "";
    hpo_study_destroy(&study);
    if (hpo_study_load_file(CIFAR10_STUDY, &study, err, sizeof err) != 0)
        fail_msg("%s", err);
    tuner = create_tuner("bayes", study, 1);
    assert_int_equal(hpo_tuner_bayes_initial_trials(tuner), 5);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

/* Observations of the same configuration twice and of nearly equal ones. */
static void duplicates_still_propose(void **state)
{
    (void)state;
    char err[HPO_ERR_MAX] = "";
    hpo_study *study = parse_study(BRANIN_STUDY);
    hpo_tuner *tuner = create_tuner("bayes", study, 7);
    set_initial(tuner, 2);

    for (int i = 0; i < 6; i++) {
        cJSON *values = cJSON_CreateObject();
        cJSON_AddNumberToObject(values, "x1", 0.3 + 1e-15 * (i % 3));
        cJSON_AddNumberToObject(values, "x2", 0.4);
        observe(tuner, values, 1.0 + i, HPO_OBSERVE_OK);
        observe(tuner, values, 2.0 + i, HPO_OBSERVE_OK);
        cJSON_Delete(values);
    }
    assert_int_equal(hpo_tuner_known_count(tuner), 3);

    char **keys = NULL;
    int n_keys = 0;
    for (int i = 0; i < 5; i++) {
        cJSON *values = propose_valid(study, tuner, &keys, &n_keys);
        observe(tuner, values, branin(values), HPO_OBSERVE_OK);
        cJSON_Delete(values);
    }
    (void)err;
    free_keys(keys, n_keys);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

/* A constant objective, then a single observation. */
static void constant_and_single(void **state)
{
    (void)state;
    hpo_study *study = parse_study(BRANIN_STUDY);
    hpo_tuner *tuner = create_tuner("bayes", study, 8);
    char **keys = NULL;
    int n_keys = 0;

    for (int i = 0; i < 12; i++) {
        cJSON *values = propose_valid(study, tuner, &keys, &n_keys);
        observe(tuner, values, 3.0, HPO_OBSERVE_OK);
        cJSON_Delete(values);
    }
    free_keys(keys, n_keys);
    hpo_tuner_destroy(&tuner);

    keys = NULL;
    n_keys = 0;
    tuner = create_tuner("bayes", study, 9);
    set_initial(tuner, 1);
    cJSON *first = propose_valid(study, tuner, &keys, &n_keys);
    observe(tuner, first, branin(first), HPO_OBSERVE_OK);
    cJSON_Delete(first);
    for (int i = 0; i < 3; i++) {
        cJSON *values = propose_valid(study, tuner, &keys, &n_keys);
        cJSON_Delete(values);
    }
    free_keys(keys, n_keys);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

/* Every trial fails: the tuner keeps proposing quasi-random configurations;
 * once one succeeds, failed ones count at the worst objective. */
static void all_failed(void **state)
{
    (void)state;
    hpo_study *study = parse_study(BRANIN_STUDY);
    hpo_tuner *tuner = create_tuner("bayes", study, 10);
    char **keys = NULL;
    int n_keys = 0;

    for (int i = 0; i < 10; i++) {
        cJSON *values = propose_valid(study, tuner, &keys, &n_keys);
        observe(tuner, values, NAN, HPO_OBSERVE_FAILED);
        cJSON_Delete(values);
    }
    cJSON *values = propose_valid(study, tuner, &keys, &n_keys);
    observe(tuner, values, branin(values), HPO_OBSERVE_OK);
    cJSON_Delete(values);
    for (int i = 0; i < 4; i++) {
        values = propose_valid(study, tuner, &keys, &n_keys);
        observe(tuner, values, NAN, HPO_OBSERVE_FAILED);
        cJSON_Delete(values);
    }
    free_keys(keys, n_keys);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

/* All 12 configurations, each once, then exhaustion. */
static void finite_space_exhausts(void **state)
{
    (void)state;
    char err[HPO_ERR_MAX] = "";
    hpo_study *study = parse_study(FLAT_STUDY);
    hpo_tuner *tuner = create_tuner("bayes", study, 11);
    char **keys = NULL;
    int n_keys = 0;

    for (int i = 0; i < 12; i++) {
        cJSON *values = propose_valid(study, tuner, &keys, &n_keys);
        observe(tuner, values, (double)(i % 5), HPO_OBSERVE_OK);
        cJSON_Delete(values);
    }
    cJSON *values = NULL;
    assert_int_equal(hpo_tuner_propose(tuner, &values, err, sizeof err), 1);
    assert_null(values);
    free_keys(keys, n_keys);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

/* Three idle workers: three distinct proposals while all are pending,
 * and the fantasies keep them apart. */
static void parallel_pending_distinct(void **state)
{
    (void)state;
    hpo_study *study = parse_study(BRANIN_STUDY);
    hpo_tuner *tuner = create_tuner("bayes", study, 12);
    char **keys = NULL;
    int n_keys = 0;

    for (int i = 0; i < 8; i++) {
        cJSON *values = propose_valid(study, tuner, &keys, &n_keys);
        observe(tuner, values, branin(values), HPO_OBSERVE_OK);
        cJSON_Delete(values);
    }
    cJSON *batch[3];
    for (int i = 0; i < 3; i++)
        batch[i] = propose_valid(study, tuner, &keys, &n_keys);
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < i; k++) {
            double dx = cJSON_GetObjectItem(batch[i], "x1")->valuedouble -
                        cJSON_GetObjectItem(batch[k], "x1")->valuedouble;
            double dy = cJSON_GetObjectItem(batch[i], "x2")->valuedouble -
                        cJSON_GetObjectItem(batch[k], "x2")->valuedouble;
            assert_true(sqrt(dx * dx + dy * dy) > 1e-3);
        }
    }
    for (int i = 0; i < 3; i++)
        cJSON_Delete(batch[i]);
    free_keys(keys, n_keys);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

/* prepare, run, finish, then propose; a trial observed between run and
 * finish is not proposed again. */
static void split_api(void **state)
{
    (void)state;
    char err[HPO_ERR_MAX] = "";
    hpo_study *study = parse_study(BRANIN_STUDY);
    hpo_tuner *tuner = create_tuner("bayes", study, 13);
    hpo_bayes_job *job = NULL;
    char **keys = NULL;
    int n_keys = 0;

    assert_int_equal(hpo_tuner_bayes_prepare(tuner, &job, err, sizeof err), 1);
    assert_null(job);
    for (int i = 0; i < 6; i++) {
        cJSON *values = propose_valid(study, tuner, &keys, &n_keys);
        observe(tuner, values, branin(values), HPO_OBSERVE_OK);
        cJSON_Delete(values);
    }

    assert_int_equal(hpo_tuner_bayes_prepare(tuner, &job, err, sizeof err), 0);
    assert_non_null(job);
    assert_int_equal(hpo_bayes_job_run(job, err, sizeof err), 0);
    cJSON *other = cJSON_CreateObject();
    cJSON_AddNumberToObject(other, "x1", 0.123);
    cJSON_AddNumberToObject(other, "x2", 0.456);
    observe(tuner, other, NAN, HPO_OBSERVE_PENDING);
    cJSON_Delete(other);
    assert_int_equal(hpo_tuner_bayes_finish(tuner, &job, err, sizeof err), 0);
    assert_null(job);

    cJSON *values = propose_valid(study, tuner, &keys, &n_keys);
    cJSON_Delete(values);

    /* A job of another tuner is rejected; destroying NULL is fine. */
    hpo_tuner *random = create_tuner("random", study, 1);
    assert_int_equal(hpo_tuner_bayes_prepare(random, &job, err, sizeof err), -1);
    hpo_bayes_options opt;
    hpo_bayes_options_default(&opt);
    assert_int_equal(hpo_tuner_bayes_configure(random, &opt, err, sizeof err), -1);
    opt.restarts = -1;
    assert_int_equal(hpo_tuner_bayes_configure(tuner, &opt, err, sizeof err), -1);
    assert_non_null(strstr(err, "restarts"));
    hpo_bayes_job_destroy(&job);
    hpo_tuner_destroy(&random);

    free_keys(keys, n_keys);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

/* The cifar10 study: conditional parameters, some trials failing; every
 * proposal resolves and is new. */
static void cifar_mixed_space(void **state)
{
    (void)state;
    char err[HPO_ERR_MAX] = "";
    hpo_study *study = NULL;
    if (hpo_study_load_file(CIFAR10_STUDY, &study, err, sizeof err) != 0)
        fail_msg("%s", err);
    hpo_tuner *tuner = create_tuner("bayes", study, 14);
    char **keys = NULL;
    int n_keys = 0;

    for (int i = 0; i < 25; i++) {
        cJSON *values = propose_valid(study, tuner, &keys, &n_keys);
        double layers = cJSON_GetObjectItem(values, "conv_layers")->valuedouble;
        double filters = cJSON_GetObjectItem(values, "conv1_filters")->valuedouble;
        if (layers == 5)
            observe(tuner, values, NAN, HPO_OBSERVE_FAILED);
        else
            observe(tuner, values, 0.5 + 0.1 * layers - fabs(filters - 128.0) / 1000.0,
                    HPO_OBSERVE_OK);
        cJSON_Delete(values);
    }
    free_keys(keys, n_keys);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

int main(void)
{
    gsl_set_error_handler_off();
    hpo_log_init("test", HPO_LOG_WARN);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(design_size_default),
        cmocka_unit_test(duplicates_still_propose),
        cmocka_unit_test(constant_and_single),
        cmocka_unit_test(all_failed),
        cmocka_unit_test(finite_space_exhausts),
        cmocka_unit_test(parallel_pending_distinct),
        cmocka_unit_test(split_api),
        cmocka_unit_test(cifar_mixed_space),
        cmocka_unit_test(branin_beats_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
