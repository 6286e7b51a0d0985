/* Tests of daemon/study_tuner.c: the tuner configuration that hpod stores
 * with a study, its JSON text, and tuners created from it for the tiny
 * study. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "hpo/error.h"
#include "hpo/study.h"
#include "study_tuner.h"

typedef struct {
    hpo_study *study;
    char err[HPO_ERR_MAX];
} fixture;

/* Reads the whole file at path into a string the caller frees. */
static char *read_text(const char *path)
{
    FILE *file = fopen(path, "rb");
    if (file == NULL)
        return NULL;
    char *text = calloc(1, 1 << 16);
    size_t n = text != NULL ? fread(text, 1, (1 << 16) - 1, file) : 0;
    fclose(file);
    if (n == 0) {
        free(text);
        return NULL;
    }
    return text;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char *text = read_text(HPO_TINY_STUDY);
    if (f == NULL || text == NULL ||
        hpo_study_parse(text, &f->study, f->err, sizeof f->err) != 0) {
        fprintf(stderr, "loading %s failed: %s\n", HPO_TINY_STUDY,
                f != NULL ? f->err : "out of memory");
        free(text);
        free(f);
        return -1;
    }
    free(text);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    hpo_study_destroy(&f->study);
    free(f);
    return 0;
}

/* Parses options_text for tuner name and expects -1 with a message that
 * contains expected. */
static void expect_parse_error(fixture *f, const char *name, const char *options_text,
                               const char *expected)
{
    hpo_tuner_config config;
    int rc = hpo_tuner_config_parse(&config, name, options_text, f->err, sizeof f->err);
    if (rc != -1)
        fail_msg("options %s of tuner %s were accepted", options_text, name);
    if (strstr(f->err, expected) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", f->err, expected);
}

static void test_init_rejects_unknown_name(void **state)
{
    fixture *f = *state;
    hpo_tuner_config config;
    assert_int_equal(hpo_tuner_config_init(&config, "grid", f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "\"grid\""));
    assert_non_null(strstr(f->err, "bayes"));
    assert_int_equal(hpo_tuner_config_init(&config, "random", f->err, sizeof f->err), 0);
    assert_string_equal(config.name, "random");
}

static void test_random_options_empty(void **state)
{
    fixture *f = *state;
    hpo_tuner_config config;
    assert_int_equal(hpo_tuner_config_init(&config, "random", f->err, sizeof f->err), 0);
    char *text = hpo_tuner_config_options_text(&config);
    assert_non_null(text);
    assert_string_equal(text, "{}");
    cJSON_free(text);

    assert_int_equal(hpo_tuner_config_parse(&config, "random", "{}", f->err,
                                            sizeof f->err), 0);
    expect_parse_error(f, "random", "{\"restarts\":2}", "has no options");
}

/* Non-default bayes options survive the text form exactly. */
static void test_bayes_options_round_trip(void **state)
{
    fixture *f = *state;
    hpo_tuner_config config;
    assert_int_equal(hpo_tuner_config_init(&config, "bayes", f->err, sizeof f->err), 0);
    config.bayes.initial_trials = 7;
    config.bayes.acquisition = HPO_ACQ_UCB;
    config.bayes.ucb_beta = 1.75;
    config.bayes.restarts = 4;
    config.bayes.search.sobol_points = 256;
    config.bayes.search.perturbations = 16;
    config.bayes.search.local_starts = 1;
    config.bayes.search.ranked = 3;
    char *text = hpo_tuner_config_options_text(&config);
    assert_non_null(text);

    hpo_tuner_config read;
    if (hpo_tuner_config_parse(&read, "bayes", text, f->err, sizeof f->err) != 0)
        fail_msg("parsing %s failed: %s", text, f->err);
    cJSON_free(text);
    assert_string_equal(read.name, "bayes");
    assert_int_equal(read.bayes.initial_trials, 7);
    assert_int_equal(read.bayes.acquisition, HPO_ACQ_UCB);
    assert_true(read.bayes.ucb_beta == 1.75);
    assert_int_equal(read.bayes.restarts, 4);
    assert_int_equal(read.bayes.search.sobol_points, 256);
    assert_int_equal(read.bayes.search.perturbations, 16);
    assert_int_equal(read.bayes.search.local_starts, 1);
    assert_int_equal(read.bayes.search.ranked, 3);
}

/* A member missing from stored options takes its default. */
static void test_bayes_missing_member_default(void **state)
{
    fixture *f = *state;
    hpo_tuner_config config, defaults;
    assert_int_equal(hpo_tuner_config_init(&defaults, "bayes", f->err, sizeof f->err), 0);
    assert_int_equal(hpo_tuner_config_parse(&config, "bayes", "{\"restarts\":5}",
                                            f->err, sizeof f->err), 0);
    assert_int_equal(config.bayes.restarts, 5);
    assert_int_equal(config.bayes.initial_trials, defaults.bayes.initial_trials);
    assert_int_equal(config.bayes.acquisition, defaults.bayes.acquisition);
    assert_int_equal(config.bayes.search.sobol_points, defaults.bayes.search.sobol_points);
}

static void test_bayes_bad_options_rejected(void **state)
{
    fixture *f = *state;
    expect_parse_error(f, "bayes", "{\"sobol\":12}", "unknown member \"sobol\"");
    expect_parse_error(f, "bayes", "{\"restarts\":-1}", "restarts must be an integer");
    expect_parse_error(f, "bayes", "{\"restarts\":1.5}", "restarts must be an integer");
    expect_parse_error(f, "bayes", "{\"ranked\":\"8\"}", "ranked must be an integer");
    expect_parse_error(f, "bayes", "{\"initial_trials\":3e9}", "initial_trials must be");
    expect_parse_error(f, "bayes", "{\"acquisition\":\"qei\"}", "acquisition must be");
    expect_parse_error(f, "bayes", "{\"ucb_beta\":\"high\"}", "ucb_beta must be");
    expect_parse_error(f, "bayes", "[1,2]", "is not a JSON object");
    expect_parse_error(f, "bayes", "{\"restarts\":", "is not a JSON object");
    expect_parse_error(f, "bayes", NULL, "is not a JSON object");
    expect_parse_error(f, "annealing", "{}", "\"annealing\": unknown");
}

/* The settled configuration records the design size that the tuner chose:
 * the tiny study has 5 parameters, so max(5, 5 + 1) = 6 capped at
 * max(5, 6 max trials / 3) = 5. A tuner created from it uses that size
 * even when the study would give another. */
static void test_settle_records_design_size(void **state)
{
    fixture *f = *state;
    hpo_tuner_config config;
    hpo_tuner *tuner = NULL;
    assert_int_equal(hpo_tuner_config_init(&config, "bayes", f->err, sizeof f->err), 0);
    assert_int_equal(config.bayes.initial_trials, 0);
    if (hpo_tuner_config_create(&config, f->study, 1, &tuner, f->err, sizeof f->err) != 0)
        fail_msg("creating the tuner failed: %s", f->err);
    hpo_tuner_config_settle(&config, tuner);
    assert_int_equal(config.bayes.initial_trials, 5);
    hpo_tuner_destroy(&tuner);

    config.bayes.initial_trials = 9;
    assert_int_equal(hpo_tuner_config_create(&config, f->study, 1, &tuner, f->err,
                                             sizeof f->err), 0);
    assert_int_equal(hpo_tuner_bayes_initial_trials(tuner), 9);
    assert_string_equal(hpo_tuner_name(tuner), "bayes");
    hpo_tuner_destroy(&tuner);
    assert_null(tuner);
}

/* Options that parse but that the tuner rejects fail at creation and
 * leave no tuner. */
static void test_create_rejects_invalid_options(void **state)
{
    fixture *f = *state;
    hpo_tuner_config config;
    hpo_tuner *tuner = NULL;
    assert_int_equal(hpo_tuner_config_parse(&config, "bayes", "{\"sobol_points\":0}",
                                            f->err, sizeof f->err), 0);
    assert_int_equal(hpo_tuner_config_create(&config, f->study, 1, &tuner, f->err,
                                             sizeof f->err), -1);
    assert_null(tuner);
    assert_non_null(strstr(f->err, "Sobol point"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_rejects_unknown_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_options_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bayes_options_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bayes_missing_member_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bayes_bad_options_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settle_records_design_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_rejects_invalid_options, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
