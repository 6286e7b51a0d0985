/* Tests of the study file's "synthetic" and "tuner" fields and of the
 * synthetic example studies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hpo/study.h"
#include "hpo/tuner.h"
#include "tuner_bayes.h"

#define STUDY_HEAD                                                                  \
    "{\"name\": \"s\", \"objective\": {\"metric\": \"val_loss\", \"direction\": \"min\"}," \
    " \"budget\": {\"epochs\": 1, \"max_trials\": 30},"                               \
    " \"space\": {\"x\": {\"type\": \"float\", \"min\": -5, \"max\": 10},"             \
    "             \"c\": {\"type\": \"choice\", \"values\": [\"a\", \"b\"]}},"          \
    " \"model\": {\"layers\": [{\"type\": \"flatten\"}, {\"type\": \"dense\","          \
    "             \"units\": 10, \"activation\": \"softmax\"}]}"

static hpo_study *parse_ok(const char *text)
{
    char err[512] = "";
    hpo_study *study = NULL;
    if (hpo_study_parse(text, &study, err, sizeof err) != 0)
        fail_msg("parse failed: %s", err);
    return study;
}

static void expect_parse_error(const char *text, const char *fragment)
{
    char err[512] = "";
    hpo_study *study = NULL;
    assert_int_equal(hpo_study_parse(text, &study, err, sizeof err), -1);
    assert_null(study);
    if (strstr(err, fragment) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err, fragment);
}

/* Without "synthetic", unreferenced parameters are rejected as before. */
static void test_unreferenced_rejected(void **state)
{
    (void)state;
    expect_parse_error(STUDY_HEAD "}", "parameter \"x\" is not used by the model");
}

/* With it, every parameter is active and its value reaches the trial. */
static void test_synthetic_all_active(void **state)
{
    (void)state;
    hpo_study *study = parse_ok(STUDY_HEAD ", \"synthetic\": true}");
    assert_true(hpo_study_synthetic(study));

    char err[256];
    cJSON *values = cJSON_Parse("{\"x\": 2.5, \"c\": \"b\"}");
    cJSON *model = NULL, *active = NULL;
    assert_int_equal(hpo_study_resolve(study, values, &model, &active, err, sizeof err), 0);
    assert_float_equal(cJSON_GetObjectItem(active, "x")->valuedouble, 2.5, 0.0);
    assert_string_equal(cJSON_GetObjectItem(active, "c")->valuestring, "b");
    assert_int_equal(cJSON_GetArraySize(active), 2);
    cJSON_Delete(values);
    cJSON_Delete(model);
    cJSON_Delete(active);
    hpo_study_destroy(&study);
}

static void test_tuner_fields(void **state)
{
    (void)state;
    hpo_study *study = parse_ok(STUDY_HEAD ", \"synthetic\": true, \"tuner\": "
                                "{\"initial_trials\": 7, \"late_fit\": \"random\"}}");
    assert_int_equal(hpo_study_tuner(study)->initial_trials, 7);
    assert_int_equal(hpo_study_tuner(study)->late_fit, HPO_LATE_FIT_RANDOM);

    /* The bayes tuner takes its design size from the study. */
    char err[256];
    hpo_tuner *tuner = NULL;
    assert_int_equal(hpo_tuner_create("bayes", study, 1, &tuner, err, sizeof err), 0);
    assert_int_equal(hpo_tuner_bayes_initial_trials(tuner), 7);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);

    study = parse_ok(STUDY_HEAD ", \"synthetic\": true}");
    assert_int_equal(hpo_study_tuner(study)->initial_trials, 0);
    assert_int_equal(hpo_study_tuner(study)->late_fit, HPO_LATE_FIT_WAIT);
    assert_int_equal(hpo_tuner_create("bayes", study, 1, &tuner, err, sizeof err), 0);
    assert_int_equal(hpo_tuner_bayes_initial_trials(tuner), 5);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

static void test_bad_fields(void **state)
{
    (void)state;
    expect_parse_error(STUDY_HEAD ", \"synthetic\": 1}", "synthetic: must be true or false");
    expect_parse_error(STUDY_HEAD ", \"synthetic\": true, \"tuner\": 3}",
                       "tuner: must be an object");
    expect_parse_error(STUDY_HEAD ", \"synthetic\": true, \"tuner\": {\"late_fit\": \"x\"}}",
                       "tuner.late_fit: must be \"wait\" or \"random\"");
    expect_parse_error(STUDY_HEAD ", \"synthetic\": true, \"tuner\": "
                       "{\"initial_trials\": -1}}", "tuner.initial_trials");
    expect_parse_error(STUDY_HEAD ", \"synthetic\": true, \"tuner\": "
                       "{\"initial_trials\": 2.5}}", "tuner.initial_trials");
    expect_parse_error(STUDY_HEAD ", \"synthetic\": true, \"tuner\": {\"restarts\": 2}}",
                       "tuner.restarts: unknown field");
}

/* After the design, a proposal needs a fit; design_only replaces it with a
 * design point, and a plain proposal fits and stores ranked candidates. */
static void test_bayes_design_only(void **state)
{
    (void)state;
    hpo_study *study = parse_ok(STUDY_HEAD ", \"synthetic\": true, \"tuner\": "
                                "{\"initial_trials\": 3}}");
    char err[256];
    hpo_tuner *tuner = NULL;
    assert_int_equal(hpo_tuner_create("bayes", study, 1, &tuner, err, sizeof err), 0);
    for (int i = 0; i < 3; i++) {
        assert_true(!hpo_tuner_bayes_needs_fit(tuner));
        cJSON *values = NULL;
        assert_int_equal(hpo_tuner_propose(tuner, &values, err, sizeof err), 0);
        double x = cJSON_GetObjectItem(values, "x")->valuedouble;
        assert_int_equal(hpo_tuner_observe(tuner, values, NULL, (x - 1.0) * (x - 1.0),
                                           HPO_OBSERVE_OK, err, sizeof err), 0);
        cJSON_Delete(values);
    }
    assert_true(hpo_tuner_bayes_needs_fit(tuner));

    /* design_only: a valid proposal, and still no stored search result. */
    cJSON *values = NULL;
    hpo_tuner_bayes_set_design_only(tuner, true);
    assert_int_equal(hpo_tuner_propose(tuner, &values, err, sizeof err), 0);
    hpo_tuner_bayes_set_design_only(tuner, false);
    assert_non_null(cJSON_GetObjectItem(values, "x"));
    assert_non_null(cJSON_GetObjectItem(values, "c"));
    cJSON_Delete(values);
    assert_true(hpo_tuner_bayes_needs_fit(tuner));
    assert_int_equal(hpo_tuner_known_count(tuner), 4);

    /* A job prepared and finished here stores the ranked candidates. */
    hpo_bayes_job *job = NULL;
    assert_int_equal(hpo_tuner_bayes_prepare(tuner, &job, err, sizeof err), 0);
    assert_non_null(job);
    assert_int_equal(hpo_bayes_job_run(job, err, sizeof err), 0);
    assert_int_equal(hpo_tuner_bayes_finish(tuner, &job, err, sizeof err), 0);
    assert_null(job);
    assert_true(!hpo_tuner_bayes_needs_fit(tuner));
    assert_int_equal(hpo_tuner_propose(tuner, &values, err, sizeof err), 0);
    cJSON_Delete(values);
    assert_true(hpo_tuner_bayes_needs_fit(tuner));

    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
}

/* The example studies load with the parameters their objectives read. */
static void test_examples_load(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        int params;
    } cases[] = {{"branin-study.json", 2}, {"hartmann6-study.json", 6},
                 {"mixed16-study.json", 16}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[4096], err[512] = "";
        snprintf(path, sizeof path, "%s/%s", HPO_EXAMPLES_DIR, cases[i].file);
        hpo_study *study = NULL;
        if (hpo_study_load_file(path, &study, err, sizeof err) != 0)
            fail_msg("%s: %s", path, err);
        assert_true(hpo_study_synthetic(study));
        assert_false(hpo_study_maximize(study));
        assert_string_equal(hpo_study_objective(study), "val_loss");
        assert_int_equal(hpo_study_param_count(study), cases[i].params);
        hpo_study_destroy(&study);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unreferenced_rejected),
        cmocka_unit_test(test_synthetic_all_active),
        cmocka_unit_test(test_tuner_fields),
        cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_bayes_design_only),
        cmocka_unit_test(test_examples_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
