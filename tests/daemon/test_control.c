/* Tests of daemon/control.c: the answers to hpoctl's queries, built from a
 * real SQLite file, for a study that minimizes its objective. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "hpo/error.h"
#include "storage.h"

static const char *const study_json =
    "{\"name\": \"min-study\","
    " \"objective\": {\"metric\": \"val_loss\", \"direction\": \"min\"},"
    " \"budget\": {\"epochs\": 1, \"train_size\": 100, \"val_size\": 50,"
    "              \"max_trials\": 5},"
    " \"space\": {\"units\": {\"type\": \"int\", \"min\": 16, \"max\": 64, \"step\": 16},"
    "           \"wide\": {\"type\": \"bool\"}},"
    " \"model\": {\"input_shape\": [32, 32, 3], \"layers\": ["
    "   {\"type\": \"flatten\"},"
    "   {\"if\": \"$wide\", \"layers\": [{\"type\": \"dense\", \"units\": \"$units\","
    "                                     \"activation\": \"relu\"}]},"
    "   {\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}],"
    "  \"training\": {\"optimizer\": \"adam\", \"learning_rate\": 0.001}}}";

typedef struct {
    char dir[64];
    char path[128];
    hpo_storage *storage;
    hpo_study *study;
    hpo_control_context ctx;
    char err[HPO_ERR_MAX];
} fixture;

/* Adds a trial with units and wide; narrow trials leave units inactive. */
static int64_t add_trial(fixture *f, int units, bool wide)
{
    cJSON *params = cJSON_CreateObject();
    cJSON_AddNumberToObject(params, "units", units);
    cJSON_AddBoolToObject(params, "wide", wide);
    cJSON *active = cJSON_CreateObject();
    if (wide)
        cJSON_AddNumberToObject(active, "units", units);
    cJSON_AddBoolToObject(active, "wide", wide);
    cJSON *model = cJSON_CreateObject();
    int64_t id = 0;
    int rc = hpo_storage_trial_add(f->storage, params, active, model, &id,
                                   f->err, sizeof f->err);
    cJSON_Delete(params);
    cJSON_Delete(active);
    cJSON_Delete(model);
    if (rc != 0)
        fail_msg("%s", f->err);
    return id;
}

static void finish(fixture *f, int64_t id, double val_loss)
{
    if (hpo_storage_trial_assign(f->storage, id, 0, f->err, sizeof f->err) != 0)
        fail_msg("%s", f->err);
    cJSON *metrics = cJSON_CreateObject();
    bool ok = !isnan(val_loss);
    if (ok)
        cJSON_AddNumberToObject(metrics, "val_loss", val_loss);
    int rc = hpo_storage_trial_finish(f->storage, id,
                                      ok ? HPO_TRIAL_STATE_OK : HPO_TRIAL_STATE_FAILED,
                                      val_loss, metrics, 1, 0.5,
                                      ok ? NULL : "diverged", f->err, sizeof f->err);
    cJSON_Delete(metrics);
    if (rc != 0)
        fail_msg("%s", f->err);
}

/* Trials: 1 ok 0.9, 2 ok 0.4 (narrow), 3 ok 0.7, 4 failed, 5 queued. */
static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    strcpy(f->dir, "/tmp/hpo-test-control-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/study.db", f->dir);
    const hpo_study_settings settings = {.tuner = "random", .tuner_options = "{}"};
    if (hpo_storage_open(f->path, true, &f->storage, f->err, sizeof f->err) != 0 ||
        hpo_storage_study_create_with_settings(f->storage, "min-study", study_json, 1, 5,
                                               &settings, f->err, sizeof f->err) != 0 ||
        hpo_study_parse(study_json, &f->study, f->err, sizeof f->err) != 0) {
        fprintf(stderr, "setup failed: %s\n", f->err);
        return -1;
    }
    f->ctx = (hpo_control_context){.study = f->study, .storage = f->storage,
                                   .source = "database"};
    *state = f;

    finish(f, add_trial(f, 32, true), 0.9);
    finish(f, add_trial(f, 48, false), 0.4);
    finish(f, add_trial(f, 64, true), 0.7);
    finish(f, add_trial(f, 16, true), NAN);
    add_trial(f, 16, false);
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    hpo_storage_close(&f->storage);
    hpo_study_destroy(&f->study);
    char command[200];
    snprintf(command, sizeof command, "rm -rf '%s'", f->dir);
    int rc = system(command);
    free(f);
    return rc == 0 ? 0 : -1;
}

static cJSON *answer(fixture *f, hpo_query_command command, const char *args_json)
{
    cJSON *args = cJSON_Parse(args_json);
    cJSON *data = NULL;
    hpo_proto_status code;
    int rc = hpo_control_answer(&f->ctx, command, args, &data, &code, f->err,
                                sizeof f->err);
    cJSON_Delete(args);
    if (rc != 0)
        fail_msg("%s failed: %s", hpo_query_command_name(command), f->err);
    return data;
}

static int id_at(const cJSON *trials, int index)
{
    return cJSON_GetObjectItem(cJSON_GetArrayItem(trials, index), "id")->valueint;
}

static void test_best_minimizes(void **state)
{
    fixture *f = *state;
    cJSON *data = answer(f, HPO_QUERY_BEST, "{}");
    const cJSON *objective = cJSON_GetObjectItem(data, "objective");
    assert_string_equal(cJSON_GetObjectItem(objective, "name")->valuestring, "val_loss");
    assert_string_equal(cJSON_GetObjectItem(objective, "direction")->valuestring, "min");

    const cJSON *trial = cJSON_GetObjectItem(data, "trial");
    assert_int_equal(cJSON_GetObjectItem(trial, "id")->valueint, 2);
    assert_true(cJSON_GetObjectItem(trial, "objective")->valuedouble == 0.4);
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(trial, "epochs")));

    /* Trial 2 is narrow: units is inactive and not a hyperparameter. */
    const cJSON *params = cJSON_GetObjectItem(trial, "hyperparameters");
    assert_null(cJSON_GetObjectItem(params, "units"));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(params, "wide")));
    const cJSON *inactive = cJSON_GetObjectItem(trial, "inactive");
    assert_int_equal(cJSON_GetArraySize(inactive), 1);
    assert_string_equal(cJSON_GetArrayItem(inactive, 0)->valuestring, "units");
    cJSON_Delete(data);
}

static void test_summary_ascending_for_min(void **state)
{
    fixture *f = *state;
    cJSON *data = answer(f, HPO_QUERY_SUMMARY, "{}");
    const cJSON *trials = cJSON_GetObjectItem(data, "trials");
    assert_int_equal(cJSON_GetArraySize(trials), 3);
    assert_int_equal(id_at(trials, 0), 2);
    assert_int_equal(id_at(trials, 1), 3);
    assert_int_equal(id_at(trials, 2), 1);
    assert_int_equal(cJSON_GetObjectItem(data, "trials_total")->valueint, 5);
    cJSON_Delete(data);

    data = answer(f, HPO_QUERY_SUMMARY, "{\"top\": 1}");
    trials = cJSON_GetObjectItem(data, "trials");
    assert_int_equal(cJSON_GetArraySize(trials), 1);
    assert_int_equal(id_at(trials, 0), 2);
    cJSON_Delete(data);
}

static void test_summary_rejects_bad_top(void **state)
{
    fixture *f = *state;
    static const char *const bad[] = {"{\"top\": 0}", "{\"top\": 2.5}",
                                      "{\"top\": \"3\"}", "{\"top\": 1e9}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cJSON *args = cJSON_Parse(bad[i]);
        cJSON *data = NULL;
        hpo_proto_status code = HPO_PROTO_OK;
        int rc = hpo_control_answer(&f->ctx, HPO_QUERY_SUMMARY, args, &data,
                                    &code, f->err, sizeof f->err);
        cJSON_Delete(args);
        assert_int_equal(rc, -1);
        assert_int_equal(code, HPO_PROTO_INVALID_ARGUMENT);
        assert_null(data);
        assert_non_null(strstr(f->err, "args.top"));
    }
}

static void test_trials_in_id_order(void **state)
{
    fixture *f = *state;
    cJSON *data = answer(f, HPO_QUERY_TRIALS, "{}");
    const cJSON *trials = cJSON_GetObjectItem(data, "trials");
    assert_int_equal(cJSON_GetArraySize(trials), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(id_at(trials, i), i + 1);

    const cJSON *failed = cJSON_GetArrayItem(trials, 3);
    assert_string_equal(cJSON_GetObjectItem(failed, "status")->valuestring, "failed");
    assert_string_equal(cJSON_GetObjectItem(failed, "error")->valuestring, "diverged");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(failed, "objective")));
    const cJSON *queued = cJSON_GetArrayItem(trials, 4);
    assert_string_equal(cJSON_GetObjectItem(queued, "status")->valuestring, "queued");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(queued, "metrics")));
    cJSON_Delete(data);
}

static void test_status_counts(void **state)
{
    fixture *f = *state;
    cJSON *data = answer(f, HPO_QUERY_STATUS, "{}");
    assert_string_equal(cJSON_GetObjectItem(data, "study")->valuestring, "min-study");
    assert_string_equal(cJSON_GetObjectItem(data, "state")->valuestring, "running");
    assert_string_equal(cJSON_GetObjectItem(data, "source")->valuestring, "database");
    /* Read from the database: the tuner stored with the study. */
    assert_string_equal(cJSON_GetObjectItem(data, "tuner")->valuestring, "random");
    assert_int_equal(cJSON_GetObjectItem(data, "max_trials")->valueint, 5);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(data, "workers")));
    const cJSON *trials = cJSON_GetObjectItem(data, "trials");
    assert_int_equal(cJSON_GetObjectItem(trials, "queued")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(trials, "running")->valueint, 0);
    assert_int_equal(cJSON_GetObjectItem(trials, "ok")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(trials, "failed")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(trials, "counted")->valueint, 4);
    cJSON_Delete(data);
}

static void test_space_lists_parameters(void **state)
{
    fixture *f = *state;
    cJSON *data = answer(f, HPO_QUERY_SPACE, "{}");
    const cJSON *params = cJSON_GetObjectItem(data, "parameters");
    assert_int_equal(cJSON_GetArraySize(params), 2);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(params, 0), "name")->valuestring,
                        "units");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(params, 1), "type")->valuestring,
                        "bool");
    cJSON_Delete(data);
}

static void test_stop_not_answered_here(void **state)
{
    fixture *f = *state;
    cJSON *data = NULL;
    hpo_proto_status code = HPO_PROTO_OK;
    assert_int_equal(hpo_control_answer(&f->ctx, HPO_QUERY_STOP, NULL, &data, &code,
                                        f->err, sizeof f->err), -1);
    assert_int_equal(code, HPO_PROTO_UNKNOWN_COMMAND);
    assert_null(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_best_minimizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_summary_ascending_for_min, setup, teardown),
        cmocka_unit_test_setup_teardown(test_summary_rejects_bad_top, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trials_in_id_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_space_lists_parameters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_not_answered_here, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
