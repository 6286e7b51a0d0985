/* Tests of daemon/storage.c against real SQLite files in a temporary
 * folder, including the study's stored settings and the upgrade from
 * schema version 1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "hpo/error.h"
#include "schema_v1.h"
#include "storage.h"

/* Asserts that a storage call returned 0 and shows its message if not. */
#define assert_ok(f, call)                                   \
    do {                                                     \
        if ((call) != 0)                                     \
            fail_msg("%s failed: %s", #call, (f)->err);      \
    } while (0)

/* One study and one trial, as hpod of schema version 1 stored them. */
static const char *const rows_v1 =
    "INSERT INTO study (id, name, spec, seed, max_trials) "
    " VALUES (1, 'old', '{\"name\":\"old\"}', 17, 9);"
    "INSERT INTO trials (status, params, objective) VALUES ('ok', '{\"x\":1}', 0.5);";

typedef struct {
    char dir[64];
    char path[128];
    hpo_storage *st;
    char err[HPO_ERR_MAX];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    strcpy(f->dir, "/tmp/hpo-test-storage-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/study.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char command[200];
    hpo_storage_close(&f->st);
    snprintf(command, sizeof command, "rm -rf '%s'", f->dir);
    int rc = system(command);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void open_new(fixture *f)
{
    int rc = hpo_storage_open(f->path, true, &f->st, f->err, sizeof f->err);
    assert_int_equal(rc, 0);
    assert_non_null(f->st);
}

static void reopen(fixture *f)
{
    hpo_storage_close(&f->st);
    assert_null(f->st);
    int rc = hpo_storage_open(f->path, false, &f->st, f->err, sizeof f->err);
    assert_int_equal(rc, 0);
}

static cJSON *params_of(int filters)
{
    cJSON *params = cJSON_CreateObject();
    cJSON_AddNumberToObject(params, "conv1_filters", filters);
    cJSON_AddStringToObject(params, "activation", "relu");
    return params;
}

static int64_t add_trial(fixture *f, int filters)
{
    cJSON *params = params_of(filters);
    cJSON *model = cJSON_Parse("{\"layers\":[]}");
    int64_t id = 0;
    int rc = hpo_storage_trial_add(f->st, params, params, model, &id,
                                   f->err, sizeof f->err);
    cJSON_Delete(params);
    cJSON_Delete(model);
    assert_int_equal(rc, 0);
    return id;
}

static void finish_ok(fixture *f, int64_t id, double objective)
{
    cJSON *metrics = cJSON_CreateObject();
    cJSON_AddNumberToObject(metrics, "val_accuracy", objective);
    int rc = hpo_storage_trial_finish(f->st, id, HPO_TRIAL_STATE_OK, objective,
                                      metrics, 2, 1.5, NULL, f->err,
                                      sizeof f->err);
    cJSON_Delete(metrics);
    assert_int_equal(rc, 0);
}

/* Runs one SQL query on the file with the plain SQLite API and returns the
 * first column of the first row as text (static buffer). */
static const char *query_text(const char *path, const char *sql)
{
    static char out[256];
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    out[0] = '\0';
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK);
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != NULL)
        snprintf(out, sizeof out, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
}

static void exec_raw(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_open_sets_wal_mode(void **state)
{
    fixture *f = *state;
    open_new(f);
    assert_string_equal(query_text(f->path, "PRAGMA journal_mode"), "wal");
    assert_string_equal(query_text(f->path, "PRAGMA user_version"), "2");
    assert_string_equal(query_text(f->path, "SELECT count(*) FROM sqlite_master "
                                   "WHERE name IN ('study','trials','epochs',"
                                   "'workers','events')"), "5");
}

static void test_open_missing_file_fails(void **state)
{
    fixture *f = *state;
    int rc = hpo_storage_open(f->path, false, &f->st, f->err, sizeof f->err);
    assert_int_equal(rc, -1);
    assert_null(f->st);
    assert_non_null(strstr(f->err, f->path));
    assert_int_equal(access(f->path, F_OK), -1);
}

static void test_open_empty_db_without_create(void **state)
{
    fixture *f = *state;
    exec_raw(f->path, "PRAGMA user_version = 0");
    int rc = hpo_storage_open(f->path, false, &f->st, f->err, sizeof f->err);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(f->err, "holds no study"));
}

static void test_open_rejects_other_version(void **state)
{
    fixture *f = *state;
    open_new(f);
    hpo_storage_close(&f->st);
    exec_raw(f->path, "PRAGMA user_version = 99");
    int rc = hpo_storage_open(f->path, true, &f->st, f->err, sizeof f->err);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(f->err, "schema version 99"));
}

static void test_study_create_and_get(void **state)
{
    fixture *f = *state;
    open_new(f);

    hpo_study_info info;
    bool found = true;
    assert_ok(f, hpo_storage_study_get(f->st, &info, &found, f->err,
                                           sizeof f->err));
    assert_false(found);

    assert_ok(f, hpo_storage_study_create(f->st, "tiny", "{\"a\":1}", 42, 6,
                                              f->err, sizeof f->err));
    reopen(f);
    assert_ok(f, hpo_storage_study_get(f->st, &info, &found, f->err,
                                           sizeof f->err));
    assert_true(found);
    assert_string_equal(info.name, "tiny");
    assert_string_equal(info.spec, "{\"a\":1}");
    assert_int_equal(info.seed, 42);
    assert_int_equal(info.max_trials, 6);
    assert_string_equal(info.state, "running");
    assert_non_null(info.created);
    hpo_study_info_clear(&info);

    /* A database contains at most one study. */
    assert_int_equal(hpo_storage_study_create(f->st, "other", "{}", 1, 3,
                                              f->err, sizeof f->err), -1);
    assert_non_null(strstr(f->err, "writing the study"));

    assert_ok(f, hpo_storage_study_set_state(f->st, "complete", 8, f->err,
                                                 sizeof f->err));
    assert_ok(f, hpo_storage_study_get(f->st, &info, &found, f->err,
                                           sizeof f->err));
    assert_string_equal(info.state, "complete");
    assert_int_equal(info.max_trials, 8);
    hpo_study_info_clear(&info);

    /* The CHECK constraint rejects unknown states. */
    assert_int_equal(hpo_storage_study_set_state(f->st, "paused", 0, f->err,
                                                 sizeof f->err), -1);
}

static void test_trial_lifecycle_ok(void **state)
{
    fixture *f = *state;
    open_new(f);
    int64_t worker = 0;
    assert_ok(f, hpo_storage_worker_add(f->st, "node1", 4711, 2, &worker,
                                            f->err, sizeof f->err));
    assert_int_equal(worker, 1);

    int64_t id = add_trial(f, 64);
    assert_int_equal(id, 1);
    assert_ok(f, hpo_storage_trial_assign(f->st, id, worker, f->err,
                                              sizeof f->err));

    cJSON *epoch = cJSON_Parse("{\"loss\":2.1,\"val_accuracy\":0.25}");
    assert_ok(f, hpo_storage_trial_epoch(f->st, id, 1, epoch, f->err,
                                             sizeof f->err));
    cJSON_Delete(epoch);
    finish_ok(f, id, 0.375);

    hpo_trial_record r;
    bool found = false;
    assert_ok(f, hpo_storage_trial_get(f->st, id, &r, &found, f->err,
                                           sizeof f->err));
    assert_true(found);
    assert_int_equal(r.status, HPO_TRIAL_STATE_OK);
    assert_true(r.objective == 0.375);
    assert_int_equal(r.worker_id, worker);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.epochs_run, 2);
    assert_true(r.seconds == 1.5);
    assert_null(r.error);
    assert_non_null(r.started);
    assert_non_null(r.finished);
    assert_int_equal(cJSON_GetObjectItem(r.params, "conv1_filters")->valueint, 64);
    assert_true(cJSON_GetObjectItem(r.metrics, "val_accuracy")->valuedouble == 0.375);
    hpo_trial_record_clear(&r);

    cJSON *epochs = NULL;
    assert_ok(f, hpo_storage_epochs_get(f->st, id, &epochs, f->err,
                                            sizeof f->err));
    assert_int_equal(cJSON_GetArraySize(epochs), 1);
    cJSON *first = cJSON_GetArrayItem(epochs, 0);
    assert_int_equal(cJSON_GetObjectItem(first, "epoch")->valueint, 1);
    assert_true(cJSON_GetObjectItem(first, "loss")->valuedouble == 2.1);
    cJSON_Delete(epochs);

    /* The event log has the registration, creation, assignment and result. */
    assert_string_equal(query_text(f->path, "SELECT group_concat(event, ',') "
                                   "FROM (SELECT event FROM events ORDER BY id)"),
                        "registered,created,assigned,ok");
}

static void test_trial_finish_twice_fails(void **state)
{
    fixture *f = *state;
    open_new(f);
    int64_t id = add_trial(f, 32);
    assert_ok(f, hpo_storage_trial_assign(f->st, id, 0, f->err,
                                              sizeof f->err));
    finish_ok(f, id, 0.5);

    int rc = hpo_storage_trial_finish(f->st, id, HPO_TRIAL_STATE_FAILED, NAN,
                                      NULL, 0, 0, "late", f->err, sizeof f->err);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(f->err, "no such trial in a state"));

    /* A finished trial cannot be assigned or re-queued either. */
    assert_int_equal(hpo_storage_trial_assign(f->st, id, 0, f->err,
                                              sizeof f->err), -1);
    assert_int_equal(hpo_storage_trial_requeue(f->st, id, "test", f->err,
                                               sizeof f->err), -1);

    hpo_trial_record r;
    bool found = false;
    assert_ok(f, hpo_storage_trial_get(f->st, id, &r, &found, f->err,
                                           sizeof f->err));
    assert_int_equal(r.status, HPO_TRIAL_STATE_OK);
    assert_true(r.objective == 0.5);
    hpo_trial_record_clear(&r);
}

static void test_trial_finish_validates(void **state)
{
    fixture *f = *state;
    open_new(f);
    int64_t id = add_trial(f, 32);
    assert_int_equal(hpo_storage_trial_finish(f->st, id, HPO_TRIAL_STATE_OK,
                                              NAN, NULL, 1, 1, NULL, f->err,
                                              sizeof f->err), -1);
    assert_non_null(strstr(f->err, "finite objective"));
    assert_int_equal(hpo_storage_trial_finish(f->st, id, HPO_TRIAL_STATE_RUNNING,
                                              1, NULL, 1, 1, NULL, f->err,
                                              sizeof f->err), -1);
    assert_int_equal(hpo_storage_trial_finish(f->st, 999, HPO_TRIAL_STATE_OK,
                                              1, NULL, 1, 1, NULL, f->err,
                                              sizeof f->err), -1);
    assert_non_null(strstr(f->err, "trial 999"));
}

static void test_counts_exclude_unbuildable(void **state)
{
    fixture *f = *state;
    open_new(f);

    int64_t ok = add_trial(f, 32);
    int64_t failed = add_trial(f, 64);
    int64_t queued = add_trial(f, 96);
    int64_t running = add_trial(f, 128);
    cJSON *params = params_of(256);
    int64_t unbuildable = 0;
    assert_ok(f, hpo_storage_trial_add_failed(f->st, params, "too many 5x5 "
                                                  "layers", &unbuildable,
                                                  f->err, sizeof f->err));
    cJSON_Delete(params);
    assert_int_equal(unbuildable, 5);

    assert_ok(f, hpo_storage_trial_assign(f->st, ok, 0, f->err, sizeof f->err));
    assert_ok(f, hpo_storage_trial_assign(f->st, failed, 0, f->err, sizeof f->err));
    assert_ok(f, hpo_storage_trial_assign(f->st, running, 0, f->err, sizeof f->err));
    finish_ok(f, ok, 0.3);
    assert_ok(f, hpo_storage_trial_finish(f->st, failed, HPO_TRIAL_STATE_FAILED,
                                              NAN, NULL, 1, 2, "diverged",
                                              f->err, sizeof f->err));

    int counts[HPO_TRIAL_STATE_COUNT];
    int counted = -1;
    assert_ok(f, hpo_storage_trial_counts(f->st, counts, &counted, f->err,
                                              sizeof f->err));
    assert_int_equal(counts[HPO_TRIAL_STATE_QUEUED], 1);
    assert_int_equal(counts[HPO_TRIAL_STATE_RUNNING], 1);
    assert_int_equal(counts[HPO_TRIAL_STATE_OK], 1);
    assert_int_equal(counts[HPO_TRIAL_STATE_FAILED], 2);
    assert_int_equal(counted, 2);
    (void)queued;

    hpo_trial_record r;
    bool found = false;
    assert_ok(f, hpo_storage_trial_get(f->st, unbuildable, &r, &found,
                                           f->err, sizeof f->err));
    assert_int_equal(r.status, HPO_TRIAL_STATE_FAILED);
    assert_string_equal(r.error, "too many 5x5 layers");
    assert_null(r.model);
    assert_int_equal(r.attempts, 0);
    assert_true(isnan(r.objective));
    hpo_trial_record_clear(&r);
}

static void test_ids_never_reused(void **state)
{
    fixture *f = *state;
    open_new(f);
    assert_int_equal(add_trial(f, 32), 1);
    assert_int_equal(add_trial(f, 64), 2);
    assert_int_equal(add_trial(f, 96), 3);
    hpo_storage_close(&f->st);

    /* Deleting the highest row must not free its id. */
    exec_raw(f->path, "DELETE FROM trials WHERE id = 3");
    reopen(f);
    assert_int_equal(add_trial(f, 128), 4);
}

static void test_requeue_running_after_crash(void **state)
{
    fixture *f = *state;
    open_new(f);
    int64_t a = add_trial(f, 32);
    int64_t b = add_trial(f, 64);
    int64_t c = add_trial(f, 96);
    assert_ok(f, hpo_storage_trial_assign(f->st, a, 0, f->err, sizeof f->err));
    assert_ok(f, hpo_storage_trial_assign(f->st, b, 0, f->err, sizeof f->err));
    finish_ok(f, a, 0.4);
    (void)c;
    reopen(f);

    int count = -1;
    assert_ok(f, hpo_storage_requeue_running(f->st, &count, f->err,
                                                 sizeof f->err));
    assert_int_equal(count, 1);

    hpo_trial_record *records = NULL;
    size_t n = 0;
    assert_ok(f, hpo_storage_trials_list(f->st, &records, &n, f->err,
                                             sizeof f->err));
    assert_int_equal(n, 3);
    assert_int_equal(records[0].status, HPO_TRIAL_STATE_OK);
    assert_int_equal(records[1].status, HPO_TRIAL_STATE_QUEUED);
    assert_int_equal(records[1].attempts, 1);
    assert_null(records[1].started);
    assert_int_equal(records[2].status, HPO_TRIAL_STATE_QUEUED);
    assert_int_equal(records[2].attempts, 0);
    hpo_trial_records_free(&records, n);
    assert_null(records);

    assert_string_equal(query_text(f->path, "SELECT detail FROM events WHERE "
                                   "event = 'requeued' AND trial = 2"),
                        "coordinator restarted");

    /* The second assignment counts the second attempt. */
    assert_ok(f, hpo_storage_trial_assign(f->st, b, 0, f->err, sizeof f->err));
    assert_string_equal(query_text(f->path, "SELECT attempts FROM trials "
                                   "WHERE id = 2"), "2");
}

static void test_epoch_repeat_replaces(void **state)
{
    fixture *f = *state;
    open_new(f);
    int64_t id = add_trial(f, 32);
    cJSON *m1 = cJSON_Parse("{\"loss\":3}");
    cJSON *m2 = cJSON_Parse("{\"loss\":1}");
    assert_ok(f, hpo_storage_trial_epoch(f->st, id, 1, m1, f->err, sizeof f->err));
    assert_ok(f, hpo_storage_trial_epoch(f->st, id, 1, m2, f->err, sizeof f->err));
    assert_int_equal(hpo_storage_trial_epoch(f->st, id, 1, NULL, f->err, sizeof f->err), -1);
    cJSON_Delete(m1);
    cJSON_Delete(m2);
    assert_string_equal(query_text(f->path, "SELECT count(*) || ':' || "
                                   "json_extract(metrics, '$.loss') FROM epochs"),
                        "1:1");

    /* The foreign key rejects epochs of unknown trials. */
    cJSON *m3 = cJSON_Parse("{\"loss\":1}");
    assert_int_equal(hpo_storage_trial_epoch(f->st, 77, 1, m3, f->err, sizeof f->err), -1);
    cJSON_Delete(m3);
}

/* A child process commits a result and dies by SIGKILL without closing the
 * database; the parent must find the result on disk. */
static void test_commit_survives_sigkill(void **state)
{
    fixture *f = *state;
    open_new(f);
    int64_t id = add_trial(f, 32);
    assert_ok(f, hpo_storage_trial_assign(f->st, id, 0, f->err, sizeof f->err));
    hpo_storage_close(&f->st);

    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        hpo_storage *st = NULL;
        char err[HPO_ERR_MAX];
        if (hpo_storage_open(f->path, false, &st, err, sizeof err) != 0)
            _exit(2);
        cJSON *metrics = cJSON_Parse("{\"val_accuracy\":0.625}");
        if (hpo_storage_trial_finish(st, id, HPO_TRIAL_STATE_OK, 0.625, metrics,
                                     1, 1, NULL, err, sizeof err) != 0)
            _exit(3);
        kill(getpid(), SIGKILL);
        _exit(4);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);

    reopen(f);
    hpo_trial_record r;
    bool found = false;
    assert_ok(f, hpo_storage_trial_get(f->st, id, &r, &found, f->err,
                                           sizeof f->err));
    assert_int_equal(r.status, HPO_TRIAL_STATE_OK);
    assert_true(r.objective == 0.625);
    hpo_trial_record_clear(&r);
}

static void test_settings_stored_at_create(void **state)
{
    fixture *f = *state;
    open_new(f);
    hpo_study_settings settings = {"bayes", "{\"restarts\":2}", 5, 4};
    assert_ok(f, hpo_storage_study_create_with_settings(f->st, "tiny", "{}", 3, 6,
                                                        &settings, f->err, sizeof f->err));
    reopen(f);

    hpo_study_info info;
    bool found = false;
    assert_ok(f, hpo_storage_study_get(f->st, &info, &found, f->err, sizeof f->err));
    assert_true(found);
    assert_string_equal(info.tuner, "bayes");
    assert_string_equal(info.tuner_options, "{\"restarts\":2}");
    assert_int_equal(info.max_failures, 5);
    assert_int_equal(info.max_attempts, 4);
    assert_int_equal(info.seed, 3);
    hpo_study_info_clear(&info);
    assert_null(info.tuner);
}

static void test_create_without_settings(void **state)
{
    fixture *f = *state;
    open_new(f);
    assert_ok(f, hpo_storage_study_create(f->st, "tiny", "{}", 3, 6, f->err,
                                          sizeof f->err));
    hpo_study_info info;
    bool found = false;
    assert_ok(f, hpo_storage_study_get(f->st, &info, &found, f->err, sizeof f->err));
    assert_true(found);
    assert_null(info.tuner);
    assert_null(info.tuner_options);
    assert_int_equal(info.max_failures, 0);
    assert_int_equal(info.max_attempts, 0);
    hpo_study_info_clear(&info);
}

static void test_create_rejects_half_settings(void **state)
{
    fixture *f = *state;
    open_new(f);
    hpo_study_settings no_options = {"bayes", NULL, 3, 3};
    assert_int_equal(hpo_storage_study_create_with_settings(
                         f->st, "tiny", "{}", 1, 6, &no_options, f->err,
                         sizeof f->err), -1);
    assert_non_null(strstr(f->err, "given together"));
    hpo_study_settings negative = {NULL, NULL, -1, 3};
    assert_int_equal(hpo_storage_study_create_with_settings(
                         f->st, "tiny", "{}", 1, 6, &negative, f->err,
                         sizeof f->err), -1);
    assert_non_null(strstr(f->err, "must not be negative"));
    assert_string_equal(query_text(f->path, "SELECT count(*) FROM study"), "0");
}

/* A stored tuner is never replaced; the failed call changes nothing. */
static void test_set_settings_keeps_tuner(void **state)
{
    fixture *f = *state;
    open_new(f);
    hpo_study_settings settings = {"random", "{}", 3, 3};
    assert_ok(f, hpo_storage_study_create_with_settings(f->st, "tiny", "{}", 1, 6,
                                                        &settings, f->err, sizeof f->err));

    hpo_study_settings other = {"bayes", "{}", 8, 0};
    assert_int_equal(hpo_storage_study_set_settings(f->st, &other, f->err,
                                                    sizeof f->err), -1);
    assert_non_null(strstr(f->err, "already stores tuner random"));
    assert_non_null(strstr(f->err, "bayes"));
    assert_non_null(strstr(f->err, "new --db"));
    assert_string_equal(query_text(f->path, "SELECT tuner FROM study"), "random");
    assert_string_equal(query_text(f->path, "SELECT max_failures FROM study"), "3");
    assert_string_equal(query_text(f->path, "SELECT count(*) FROM events "
                                   "WHERE event = 'study_settings'"), "0");

    hpo_study_settings limits = {NULL, NULL, 8, 0};
    assert_ok(f, hpo_storage_study_set_settings(f->st, &limits, f->err, sizeof f->err));
    assert_string_equal(query_text(f->path, "SELECT max_failures FROM study"), "8");
    assert_string_equal(query_text(f->path, "SELECT max_attempts FROM study"), "3");
    assert_string_equal(query_text(f->path, "SELECT tuner FROM study"), "random");
    assert_string_equal(query_text(f->path, "SELECT detail FROM events "
                                   "WHERE event = 'study_settings'"), "max_failures=8");
}

static void test_set_settings_without_study(void **state)
{
    fixture *f = *state;
    open_new(f);
    hpo_study_settings settings = {"random", "{}", 0, 0};
    assert_int_equal(hpo_storage_study_set_settings(f->st, &settings, f->err,
                                                    sizeof f->err), -1);
    assert_non_null(strstr(f->err, "holds no study"));
    hpo_study_settings limits = {NULL, NULL, 2, 0};
    assert_int_equal(hpo_storage_study_set_settings(f->st, &limits, f->err,
                                                    sizeof f->err), -1);
    assert_non_null(strstr(f->err, "holds no study"));
}

/* hpod (create) upgrades a version 1 file in place: the study and its
 * trials stay, the new settings read as not stored, and a tuner can then
 * be stored once. */
static void test_v1_upgraded_by_writer(void **state)
{
    fixture *f = *state;
    exec_raw(f->path, hpo_test_schema_v1);
    exec_raw(f->path, rows_v1);
    open_new(f);
    assert_string_equal(query_text(f->path, "PRAGMA user_version"), "2");
    assert_string_equal(query_text(f->path, "SELECT count(*) FROM trials"), "1");

    hpo_study_info info;
    bool found = false;
    assert_ok(f, hpo_storage_study_get(f->st, &info, &found, f->err, sizeof f->err));
    assert_true(found);
    assert_string_equal(info.name, "old");
    assert_int_equal(info.seed, 17);
    assert_int_equal(info.max_trials, 9);
    assert_null(info.tuner);
    assert_int_equal(info.max_failures, 0);
    hpo_study_info_clear(&info);

    hpo_study_settings settings = {"random", "{}", 3, 3};
    assert_ok(f, hpo_storage_study_set_settings(f->st, &settings, f->err, sizeof f->err));
    assert_string_equal(query_text(f->path, "SELECT tuner || ' ' || tuner_options "
                                   "FROM study"), "random {}");
    assert_string_equal(query_text(f->path, "SELECT detail FROM events "
                                   "WHERE event = 'study_settings'"),
                        "tuner=random max_failures=3 max_attempts=3");

    /* A second open finds version 2 and upgrades nothing. */
    hpo_storage_close(&f->st);
    open_new(f);
    assert_string_equal(query_text(f->path, "PRAGMA user_version"), "2");
    assert_string_equal(query_text(f->path, "SELECT tuner FROM study"), "random");
}

/* hpoctl (no create) reads a version 1 file without changing it, and the
 * functions that store settings fail on it. */
static void test_v1_read_without_upgrade(void **state)
{
    fixture *f = *state;
    exec_raw(f->path, hpo_test_schema_v1);
    exec_raw(f->path, rows_v1);
    reopen(f);
    assert_string_equal(query_text(f->path, "PRAGMA user_version"), "1");

    hpo_study_info info;
    bool found = false;
    assert_ok(f, hpo_storage_study_get(f->st, &info, &found, f->err, sizeof f->err));
    assert_true(found);
    assert_string_equal(info.name, "old");
    assert_null(info.tuner);
    hpo_study_info_clear(&info);

    hpo_study_settings settings = {"random", "{}", 0, 0};
    assert_int_equal(hpo_storage_study_set_settings(f->st, &settings, f->err,
                                                    sizeof f->err), -1);
    assert_non_null(strstr(f->err, "schema version 1"));
    assert_string_equal(query_text(f->path, "PRAGMA user_version"), "1");
    assert_string_equal(query_text(f->path, "SELECT count(*) FROM pragma_table_info"
                                   "('study') WHERE name = 'tuner'"), "0");
}

/* A tuner stored without its options is reported, not used. */
static void test_tuner_without_options_rejected(void **state)
{
    fixture *f = *state;
    open_new(f);
    hpo_study_settings settings = {"random", "{}", 3, 3};
    assert_ok(f, hpo_storage_study_create_with_settings(f->st, "tiny", "{}", 1, 6,
                                                        &settings, f->err, sizeof f->err));
    exec_raw(f->path, "UPDATE study SET tuner_options = NULL");

    hpo_study_info info;
    bool found = true;
    assert_int_equal(hpo_storage_study_get(f->st, &info, &found, f->err,
                                           sizeof f->err), -1);
    assert_false(found);
    assert_null(info.tuner);
    assert_non_null(strstr(f->err, "without its options"));
}

/* A version above 2 is rejected and left as it is. */
static void test_upgrade_rejects_version_3(void **state)
{
    fixture *f = *state;
    exec_raw(f->path, hpo_test_schema_v1);
    exec_raw(f->path, rows_v1);
    exec_raw(f->path, "PRAGMA user_version = 3");
    assert_int_equal(hpo_storage_open(f->path, true, &f->st, f->err, sizeof f->err), -1);
    assert_null(f->st);
    assert_non_null(strstr(f->err, "schema version 3"));
    assert_non_null(strstr(f->err, "versions 1 to 2"));
    assert_string_equal(query_text(f->path, "PRAGMA user_version"), "3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_sets_wal_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_missing_file_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_empty_db_without_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_rejects_other_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_study_create_and_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trial_lifecycle_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trial_finish_twice_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trial_finish_validates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counts_exclude_unbuildable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ids_never_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requeue_running_after_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epoch_repeat_replaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_survives_sigkill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_stored_at_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_without_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_rejects_half_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_settings_keeps_tuner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_settings_without_study, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_upgraded_by_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_read_without_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tuner_without_options_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_rejects_version_3, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
