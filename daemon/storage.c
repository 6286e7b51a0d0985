#include "storage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "hpo/error.h"
#include "hpo/log.h"

/* Bump when the schema changes. hpo_storage_open() upgrades version 1 (see
 * migrate_from_v1()) and rejects every other version. Version 2 added the
 * study's tuner, tuner options, max failures and max attempts. */
#define SCHEMA_VERSION 2

/* ISO 8601 UTC with milliseconds, e.g. 2026-12-04T21:03:07.412Z. */
#define SQL_NOW "strftime('%Y-%m-%dT%H:%M:%fZ','now')"

struct hpo_storage {
    sqlite3 *db;
    char *path;
    int version;  /* schema version of the file; 1 only when opened without create */
};

static const char *const schema_sql =
    "CREATE TABLE IF NOT EXISTS study ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  name TEXT NOT NULL,"
    "  spec TEXT NOT NULL,"
    "  seed INTEGER NOT NULL,"
    "  max_trials INTEGER NOT NULL,"
    "  tuner TEXT,"
    "  tuner_options TEXT,"
    "  max_failures INTEGER,"
    "  max_attempts INTEGER,"
    "  state TEXT NOT NULL DEFAULT 'running'"
    "    CHECK (state IN ('running','complete','stopped','failed')),"
    "  created TEXT NOT NULL DEFAULT (" SQL_NOW "),"
    "  updated TEXT NOT NULL DEFAULT (" SQL_NOW "));"
    "CREATE TABLE IF NOT EXISTS workers ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  host TEXT NOT NULL,"
    "  pid INTEGER NOT NULL,"
    "  threads INTEGER NOT NULL,"
    "  registered TEXT NOT NULL DEFAULT (" SQL_NOW "));"
    "CREATE TABLE IF NOT EXISTS trials ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  status TEXT NOT NULL DEFAULT 'queued'"
    "    CHECK (status IN ('queued','running','ok','failed')),"
    "  params TEXT NOT NULL,"
    "  active TEXT,"
    "  model TEXT,"
    "  objective REAL,"
    "  metrics TEXT,"
    "  epochs_run INTEGER NOT NULL DEFAULT 0,"
    "  worker INTEGER REFERENCES workers(id),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT,"
    "  seconds REAL,"
    "  created TEXT NOT NULL DEFAULT (" SQL_NOW "),"
    "  started TEXT,"
    "  finished TEXT);"
    "CREATE TABLE IF NOT EXISTS epochs ("
    "  trial INTEGER NOT NULL REFERENCES trials(id),"
    "  epoch INTEGER NOT NULL,"
    "  metrics TEXT NOT NULL,"
    "  time TEXT NOT NULL DEFAULT (" SQL_NOW "),"
    "  PRIMARY KEY (trial, epoch));"
    "CREATE TABLE IF NOT EXISTS events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  time TEXT NOT NULL DEFAULT (" SQL_NOW "),"
    "  worker INTEGER,"
    "  trial INTEGER,"
    "  event TEXT NOT NULL,"
    "  detail TEXT);";

static const char *const state_names[HPO_TRIAL_STATE_COUNT] = {
    "queued", "running", "ok", "failed",
};

const char *hpo_trial_state_name(hpo_trial_state status)
{
    if ((int)status < 0 || status >= HPO_TRIAL_STATE_COUNT)
        return "unknown";
    return state_names[status];
}

static int state_parse(const char *name, hpo_trial_state *out)
{
    for (int i = 0; i < HPO_TRIAL_STATE_COUNT; i++) {
        if (name != NULL && strcmp(name, state_names[i]) == 0) {
            *out = (hpo_trial_state)i;
            return 0;
        }
    }
    return -1;
}

/* Formats "<action> in <path>: <sqlite message>" into err and returns -1. */
static int db_error(hpo_storage *st, const char *action, char *err, size_t errlen)
{
    return hpo_error(err, errlen, "%s in %s failed: %s", action, st->path,
                     sqlite3_errmsg(st->db));
}

static int exec_sql(hpo_storage *st, const char *sql, const char *action,
                    char *err, size_t errlen)
{
    char *message = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &message) != SQLITE_OK) {
        hpo_error(err, errlen, "%s in %s failed: %s", action, st->path,
                  message != NULL ? message : sqlite3_errmsg(st->db));
        sqlite3_free(message);
        return -1;
    }
    return 0;
}

/* BEGIN IMMEDIATE takes the write lock at the start, so a transaction
 * waits for (busy_timeout) or fails on another writer before it changes
 * anything, not halfway through. */
static int tx_begin(hpo_storage *st, char *err, size_t errlen)
{
    return exec_sql(st, "BEGIN IMMEDIATE", "starting a transaction", err, errlen);
}

static int tx_commit(hpo_storage *st, char *err, size_t errlen)
{
    return exec_sql(st, "COMMIT", "committing a transaction", err, errlen);
}

static void tx_rollback(hpo_storage *st)
{
    sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

static int prepare(hpo_storage *st, const char *sql, sqlite3_stmt **stmt,
                   char *err, size_t errlen)
{
    if (sqlite3_prepare_v2(st->db, sql, -1, stmt, NULL) != SQLITE_OK)
        return db_error(st, "preparing a statement", err, errlen);
    return 0;
}

/* Binds a JSON value as compact text, or NULL when json is NULL. */
static int bind_json(sqlite3_stmt *stmt, int index, const cJSON *json)
{
    if (json == NULL)
        return sqlite3_bind_null(stmt, index);
    char *text = cJSON_PrintUnformatted(json);
    if (text == NULL)
        return SQLITE_NOMEM;
    return sqlite3_bind_text(stmt, index, text, -1, cJSON_free);
}

static int bind_text_or_null(sqlite3_stmt *stmt, int index, const char *text)
{
    if (text == NULL)
        return sqlite3_bind_null(stmt, index);
    return sqlite3_bind_text(stmt, index, text, -1, SQLITE_TRANSIENT);
}

static int bind_id_or_null(sqlite3_stmt *stmt, int index, int64_t id)
{
    if (id <= 0)
        return sqlite3_bind_null(stmt, index);
    return sqlite3_bind_int64(stmt, index, id);
}

/* Runs a prepared statement that returns no rows and finalizes it. */
static int step_done(hpo_storage *st, sqlite3_stmt *stmt, const char *action,
                     char *err, size_t errlen)
{
    int rc = sqlite3_step(stmt);
    int result = 0;
    if (rc != SQLITE_DONE)
        result = db_error(st, action, err, errlen);
    sqlite3_finalize(stmt);
    return result;
}

static int insert_event(hpo_storage *st, int64_t worker_id, int64_t trial_id,
                        const char *event, const char *detail,
                        char *err, size_t errlen)
{
    sqlite3_stmt *stmt = NULL;
    if (prepare(st, "INSERT INTO events (worker, trial, event, detail) "
                    "VALUES (?1, ?2, ?3, ?4)", &stmt, err, errlen) != 0)
        return -1;
    bind_id_or_null(stmt, 1, worker_id);
    bind_id_or_null(stmt, 2, trial_id);
    sqlite3_bind_text(stmt, 3, event, -1, SQLITE_STATIC);
    bind_text_or_null(stmt, 4, detail);
    return step_done(st, stmt, "writing an event", err, errlen);
}

static int read_schema_version(hpo_storage *st, int *version,
                               char *err, size_t errlen)
{
    sqlite3_stmt *stmt = NULL;
    if (prepare(st, "PRAGMA user_version", &stmt, err, errlen) != 0)
        return -1;
    *version = 0;
    if (sqlite3_step(stmt) == SQLITE_ROW)
        *version = sqlite3_column_int(stmt, 0);
    sqlite3_finalize(stmt);
    return 0;
}

/* Adds the columns of version 2 to a version 1 file in one transaction.
 * Rows written before keep NULL in them, which hpo_storage_study_get()
 * reports as "not stored". The version is read again under the write lock
 * because another hpod may have upgraded the file meanwhile. */
static int migrate_from_v1(hpo_storage *st, char *err, size_t errlen)
{
    if (tx_begin(st, err, errlen) != 0)
        return -1;
    int version = 0;
    if (read_schema_version(st, &version, err, errlen) != 0)
        goto fail;
    if (version == 1) {
        if (exec_sql(st, "ALTER TABLE study ADD COLUMN tuner TEXT;"
                         "ALTER TABLE study ADD COLUMN tuner_options TEXT;"
                         "ALTER TABLE study ADD COLUMN max_failures INTEGER;"
                         "ALTER TABLE study ADD COLUMN max_attempts INTEGER;"
                         "PRAGMA user_version = 2;",
                     "upgrading the schema from version 1 to 2", err, errlen) != 0)
            goto fail;
    } else if (version != SCHEMA_VERSION) {
        hpo_error(err, errlen, "%s changed to schema version %d while it was "
                  "being upgraded from version 1; open it again", st->path, version);
        goto fail;
    }
    if (tx_commit(st, err, errlen) != 0)
        return -1;
    if (version == 1)
        hpo_log_info("upgraded the schema of %s from version 1 to %d",
                     st->path, SCHEMA_VERSION);
    return 0;

fail:
    tx_rollback(st);
    return -1;
}

/* Sets st->version. A fresh file gets the current version. A version 1
 * file is upgraded when the caller may create, which hpod does. Without
 * create (hpoctl's inspection) it is read as it is, so that reading never
 * changes the file. */
static int check_schema_version(hpo_storage *st, bool fresh, bool create,
                                char *err, size_t errlen)
{
    int version = 0;
    if (read_schema_version(st, &version, err, errlen) != 0)
        return -1;

    st->version = version;
    if (version == SCHEMA_VERSION)
        return 0;
    if (version == 0 && fresh) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", SCHEMA_VERSION);
        st->version = SCHEMA_VERSION;
        return exec_sql(st, sql, "setting the schema version", err, errlen);
    }
    if (version == 1 && !create)
        return 0;
    if (version == 1) {
        st->version = SCHEMA_VERSION;
        return migrate_from_v1(st, err, errlen);
    }
    return hpo_error(err, errlen,
                     "%s has schema version %d, this hpod reads versions 1 "
                     "to %d; use a database written by the same hpod version",
                     st->path, version, SCHEMA_VERSION);
}

/* True when the database has no tables yet. */
static int database_is_empty(hpo_storage *st, bool *empty,
                             char *err, size_t errlen)
{
    sqlite3_stmt *stmt = NULL;
    if (prepare(st, "SELECT count(*) FROM sqlite_master", &stmt, err, errlen) != 0)
        return -1;
    int rc = sqlite3_step(stmt);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(stmt);
        return db_error(st, "reading the schema", err, errlen);
    }
    *empty = sqlite3_column_int(stmt, 0) == 0;
    sqlite3_finalize(stmt);
    return 0;
}

int hpo_storage_open(const char *path, bool create, hpo_storage **out,
                     char *err, size_t errlen)
{
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return hpo_error(err, errlen, "database path is empty; give a file name");

    hpo_storage *st = calloc(1, sizeof *st);
    if (st == NULL || (st->path = strdup(path)) == NULL) {
        free(st);
        return hpo_error(err, errlen, "out of memory opening %s", path);
    }

    int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
        hpo_error(err, errlen, "cannot open database %s: %s%s", path,
                  st->db != NULL ? sqlite3_errmsg(st->db) : "out of memory",
                  create ? "" : " (is the path right?)");
        goto fail;
    }
    sqlite3_busy_timeout(st->db, 5000);
    sqlite3_extended_result_codes(st->db, 1);

    /* WAL lets hpoctl and the sqlite3 shell read while hpod writes;
     * synchronous=FULL makes each COMMIT durable before it returns. */
    if (exec_sql(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                     "PRAGMA foreign_keys=ON;",
                 "setting WAL mode", err, errlen) != 0)
        goto fail;

    bool empty = false;
    if (database_is_empty(st, &empty, err, errlen) != 0)
        goto fail;
    if (empty && !create) {
        hpo_error(err, errlen, "%s holds no study; give the database that "
                  "hpod --db wrote", path);
        goto fail;
    }
    if (exec_sql(st, schema_sql, "creating the schema", err, errlen) != 0)
        goto fail;
    if (check_schema_version(st, empty, create, err, errlen) != 0)
        goto fail;

    *out = st;
    return 0;

fail:
    hpo_storage_close(&st);
    return -1;
}

void hpo_storage_close(hpo_storage **storage)
{
    if (storage == NULL || *storage == NULL)
        return;
    sqlite3_close((*storage)->db);
    free((*storage)->path);
    free(*storage);
    *storage = NULL;
}

static char *column_strdup(sqlite3_stmt *stmt, int column)
{
    const unsigned char *text = sqlite3_column_text(stmt, column);
    return text != NULL ? strdup((const char *)text) : NULL;
}

static cJSON *column_json(sqlite3_stmt *stmt, int column)
{
    const unsigned char *text = sqlite3_column_text(stmt, column);
    return text != NULL ? cJSON_Parse((const char *)text) : NULL;
}

void hpo_study_info_clear(hpo_study_info *info)
{
    free(info->name);
    free(info->spec);
    free(info->tuner);
    free(info->tuner_options);
    free(info->state);
    free(info->created);
    free(info->updated);
    memset(info, 0, sizeof *info);
}

/* The study columns that schema version 1 lacks, or NULLs in their place. */
#define STUDY_SETTINGS_V2 "tuner, tuner_options, max_failures, max_attempts"
#define STUDY_SETTINGS_V1 "NULL, NULL, NULL, NULL"

/* Reads an INTEGER column, or 0 where it is NULL (not stored). */
static int column_int_or_zero(sqlite3_stmt *stmt, int column)
{
    if (sqlite3_column_type(stmt, column) == SQLITE_NULL)
        return 0;
    return sqlite3_column_int(stmt, column);
}

int hpo_storage_study_get(hpo_storage *st, hpo_study_info *info, bool *found,
                          char *err, size_t errlen)
{
    memset(info, 0, sizeof *info);
    *found = false;

    const char *sql = st->version >= 2
        ? "SELECT name, spec, seed, max_trials, state, created, updated, "
          STUDY_SETTINGS_V2 " FROM study WHERE id = 1"
        : "SELECT name, spec, seed, max_trials, state, created, updated, "
          STUDY_SETTINGS_V1 " FROM study WHERE id = 1";
    sqlite3_stmt *stmt = NULL;
    if (prepare(st, sql, &stmt, err, errlen) != 0)
        return -1;
    int rc = sqlite3_step(stmt);
    bool missing = false;
    if (rc == SQLITE_ROW) {
        *found = true;
        info->name = column_strdup(stmt, 0);
        info->spec = column_strdup(stmt, 1);
        info->seed = (uint64_t)sqlite3_column_int64(stmt, 2);
        info->max_trials = sqlite3_column_int(stmt, 3);
        info->state = column_strdup(stmt, 4);
        info->created = column_strdup(stmt, 5);
        info->updated = column_strdup(stmt, 6);
        info->tuner = column_strdup(stmt, 7);
        info->tuner_options = column_strdup(stmt, 8);
        info->max_failures = column_int_or_zero(stmt, 9);
        info->max_attempts = column_int_or_zero(stmt, 10);
        missing = (sqlite3_column_type(stmt, 7) != SQLITE_NULL && info->tuner == NULL) ||
                  (sqlite3_column_type(stmt, 8) != SQLITE_NULL && info->tuner_options == NULL);
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_error(st, "reading the study", err, errlen);
    if (*found && (info->name == NULL || info->spec == NULL || info->state == NULL ||
                   missing)) {
        hpo_study_info_clear(info);
        *found = false;
        return hpo_error(err, errlen, "out of memory reading the study");
    }
    if (*found && (info->tuner == NULL) != (info->tuner_options == NULL)) {
        hpo_study_info_clear(info);
        *found = false;
        return hpo_error(err, errlen, "the study in %s stores a tuner without "
                         "its options, or options without a tuner; the "
                         "file was changed outside hpod, so start a new "
                         "study with a new --db", st->path);
    }
    return 0;
}

/* Fails unless the file has the current schema: a version 1 file opened
 * without create has no columns for the study's settings. */
static int require_current_schema(hpo_storage *st, const char *action,
                                  char *err, size_t errlen)
{
    if (st->version == SCHEMA_VERSION)
        return 0;
    return hpo_error(err, errlen, "%s in %s failed: the file has schema version %d; "
                     "open it with create (as hpod does) to upgrade it to %d",
                     action, st->path, st->version, SCHEMA_VERSION);
}

/* Checks that a tuner comes with its options and the limits are not
 * negative. */
static int check_settings(const hpo_study_settings *settings, char *err, size_t errlen)
{
    if ((settings->tuner == NULL) != (settings->tuner_options == NULL))
        return hpo_error(err, errlen, "study settings: the tuner and its options "
                         "must be given together");
    if (settings->max_failures < 0 || settings->max_attempts < 0)
        return hpo_error(err, errlen, "study settings: max failures %d and max "
                         "attempts %d must not be negative; use 0 for not stored",
                         settings->max_failures, settings->max_attempts);
    return 0;
}

static int bind_int_or_null(sqlite3_stmt *stmt, int index, int value)
{
    if (value <= 0)
        return sqlite3_bind_null(stmt, index);
    return sqlite3_bind_int(stmt, index, value);
}

int hpo_storage_study_create(hpo_storage *st, const char *name,
                             const char *spec, uint64_t seed, int max_trials,
                             char *err, size_t errlen)
{
    return hpo_storage_study_create_with_settings(st, name, spec, seed, max_trials,
                                                  NULL, err, errlen);
}

int hpo_storage_study_create_with_settings(hpo_storage *st, const char *name,
                                           const char *spec, uint64_t seed,
                                           int max_trials,
                                           const hpo_study_settings *settings,
                                           char *err, size_t errlen)
{
    hpo_study_settings none = {NULL, NULL, 0, 0};
    if (settings == NULL)
        settings = &none;
    if (require_current_schema(st, "writing the study", err, errlen) != 0 ||
        check_settings(settings, err, errlen) != 0)
        return -1;
    if (tx_begin(st, err, errlen) != 0)
        return -1;

    sqlite3_stmt *stmt = NULL;
    if (prepare(st, "INSERT INTO study (id, name, spec, seed, max_trials, "
                    STUDY_SETTINGS_V2 ") VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                &stmt, err, errlen) != 0)
        goto fail;
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, spec, -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 3, (sqlite3_int64)seed);
    sqlite3_bind_int(stmt, 4, max_trials);
    bind_text_or_null(stmt, 5, settings->tuner);
    bind_text_or_null(stmt, 6, settings->tuner_options);
    bind_int_or_null(stmt, 7, settings->max_failures);
    bind_int_or_null(stmt, 8, settings->max_attempts);
    if (step_done(st, stmt, "writing the study (does the database hold one "
                  "already?)", err, errlen) != 0)
        goto fail;
    if (insert_event(st, 0, 0, "study_created", name, err, errlen) != 0)
        goto fail;
    return tx_commit(st, err, errlen);

fail:
    tx_rollback(st);
    return -1;
}

/* Formats the settings that set_settings changes as the detail of its
 * event, e.g. "tuner=random max_failures=5". */
static void settings_detail(const hpo_study_settings *settings, char *out, size_t size)
{
    int used = snprintf(out, size, "%s%s", settings->tuner != NULL ? "tuner=" : "",
                        settings->tuner != NULL ? settings->tuner : "");
    if (settings->max_failures > 0 && used >= 0 && (size_t)used < size)
        used += snprintf(out + used, size - (size_t)used, "%smax_failures=%d",
                         used > 0 ? " " : "", settings->max_failures);
    if (settings->max_attempts > 0 && used >= 0 && (size_t)used < size)
        snprintf(out + used, size - (size_t)used, "%smax_attempts=%d",
                 used > 0 ? " " : "", settings->max_attempts);
}

/* Reads the stored tuner into *tuner_out (NULL when none is stored). */
static int stored_tuner(hpo_storage *st, char **tuner_out, char *err, size_t errlen)
{
    *tuner_out = NULL;
    sqlite3_stmt *stmt = NULL;
    if (prepare(st, "SELECT tuner FROM study WHERE id = 1", &stmt, err, errlen) != 0)
        return -1;
    int rc = sqlite3_step(stmt);
    int result = 0;
    if (rc == SQLITE_DONE)
        result = hpo_error(err, errlen, "%s holds no study to store settings for",
                           st->path);
    else if (rc != SQLITE_ROW)
        result = db_error(st, "reading the study's tuner", err, errlen);
    else if (sqlite3_column_type(stmt, 0) != SQLITE_NULL &&
             (*tuner_out = column_strdup(stmt, 0)) == NULL)
        result = hpo_error(err, errlen, "out of memory reading the study's tuner");
    sqlite3_finalize(stmt);
    return result;
}

int hpo_storage_study_set_settings(hpo_storage *st, const hpo_study_settings *settings,
                                   char *err, size_t errlen)
{
    if (require_current_schema(st, "storing the study's settings", err, errlen) != 0 ||
        check_settings(settings, err, errlen) != 0)
        return -1;
    if (tx_begin(st, err, errlen) != 0)
        return -1;

    /* A study keeps the tuner it has: proposals after a switch would not
     * follow from the trials before it. */
    sqlite3_stmt *stmt = NULL;
    char *tuner = NULL;
    if (settings->tuner != NULL) {
        if (stored_tuner(st, &tuner, err, errlen) != 0)
            goto fail;
        if (tuner != NULL) {
            hpo_error(err, errlen, "the study in %s already stores tuner %s, so "
                      "%s cannot replace it; start a new study with a new --db "
                      "to use another tuner", st->path, tuner, settings->tuner);
            free(tuner);
            goto fail;
        }
    }

    if (prepare(st, "UPDATE study SET updated = " SQL_NOW ", "
                    "tuner = COALESCE(?1, tuner), "
                    "tuner_options = COALESCE(?2, tuner_options), "
                    "max_failures = COALESCE(?3, max_failures), "
                    "max_attempts = COALESCE(?4, max_attempts) WHERE id = 1",
                &stmt, err, errlen) != 0)
        goto fail;
    bind_text_or_null(stmt, 1, settings->tuner);
    bind_text_or_null(stmt, 2, settings->tuner_options);
    bind_int_or_null(stmt, 3, settings->max_failures);
    bind_int_or_null(stmt, 4, settings->max_attempts);
    if (step_done(st, stmt, "storing the study's settings", err, errlen) != 0)
        goto fail;
    if (sqlite3_changes(st->db) != 1) {
        hpo_error(err, errlen, "%s holds no study to store settings for", st->path);
        goto fail;
    }

    char detail[128];
    settings_detail(settings, detail, sizeof detail);
    if (insert_event(st, 0, 0, "study_settings", detail, err, errlen) != 0)
        goto fail;
    return tx_commit(st, err, errlen);

fail:
    tx_rollback(st);
    return -1;
}

int hpo_storage_study_set_state(hpo_storage *st, const char *state,
                                int max_trials, char *err, size_t errlen)
{
    if (tx_begin(st, err, errlen) != 0)
        return -1;

    sqlite3_stmt *stmt = NULL;
    if (prepare(st, "UPDATE study SET state = ?1, updated = " SQL_NOW ", "
                    "max_trials = CASE WHEN ?2 > 0 THEN ?2 ELSE max_trials END "
                    "WHERE id = 1", &stmt, err, errlen) != 0)
        goto fail;
    sqlite3_bind_text(stmt, 1, state, -1, SQLITE_STATIC);
    sqlite3_bind_int(stmt, 2, max_trials);
    if (step_done(st, stmt, "updating the study state", err, errlen) != 0)
        goto fail;
    if (sqlite3_changes(st->db) != 1) {
        hpo_error(err, errlen, "%s holds no study to set to %s", st->path, state);
        goto fail;
    }
    if (insert_event(st, 0, 0, "study_state", state, err, errlen) != 0)
        goto fail;
    return tx_commit(st, err, errlen);

fail:
    tx_rollback(st);
    return -1;
}

/* Inserts a trial row with the given status and its "created" event. */
static int trial_insert(hpo_storage *st, const char *status,
                        const cJSON *params, const cJSON *active,
                        const cJSON *model, const char *error,
                        int64_t *id_out, char *err, size_t errlen)
{
    if (tx_begin(st, err, errlen) != 0)
        return -1;

    sqlite3_stmt *stmt = NULL;
    if (prepare(st, "INSERT INTO trials (status, params, active, model, error, "
                    "finished) VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?1 = "
                    "'failed' THEN " SQL_NOW " END)", &stmt, err, errlen) != 0)
        goto fail;
    sqlite3_bind_text(stmt, 1, status, -1, SQLITE_STATIC);
    if (bind_json(stmt, 2, params) != SQLITE_OK ||
        bind_json(stmt, 3, active) != SQLITE_OK ||
        bind_json(stmt, 4, model) != SQLITE_OK) {
        sqlite3_finalize(stmt);
        hpo_error(err, errlen, "out of memory storing a trial");
        goto fail;
    }
    bind_text_or_null(stmt, 5, error);
    if (step_done(st, stmt, "inserting a trial", err, errlen) != 0)
        goto fail;

    int64_t id = sqlite3_last_insert_rowid(st->db);
    if (insert_event(st, 0, id, status[0] == 'f' ? "unbuildable" : "created",
                     error, err, errlen) != 0)
        goto fail;
    if (tx_commit(st, err, errlen) != 0)
        return -1;
    *id_out = id;
    return 0;

fail:
    tx_rollback(st);
    return -1;
}

int hpo_storage_trial_add(hpo_storage *st, const cJSON *params,
                          const cJSON *active, const cJSON *model,
                          int64_t *id_out, char *err, size_t errlen)
{
    if (params == NULL)
        return hpo_error(err, errlen, "trial parameters are missing");
    return trial_insert(st, "queued", params, active, model, NULL,
                        id_out, err, errlen);
}

int hpo_storage_trial_add_failed(hpo_storage *st, const cJSON *params,
                                 const char *reason, int64_t *id_out,
                                 char *err, size_t errlen)
{
    if (params == NULL)
        return hpo_error(err, errlen, "trial parameters are missing");
    return trial_insert(st, "failed", params, NULL, NULL,
                        reason != NULL ? reason : "unbuildable", id_out,
                        err, errlen);
}

/* Runs an UPDATE on one trial that must change exactly one row, plus an
 * event, in one transaction. bind() binds the statement's parameters
 * from ?2 on (?1 is the trial id). */
typedef int (*bind_fn)(sqlite3_stmt *stmt, const void *args);

static int trial_update(hpo_storage *st, int64_t trial_id, const char *sql,
                        bind_fn bind, const void *args, int64_t worker_id,
                        const char *event, const char *detail,
                        const char *action, char *err, size_t errlen)
{
    if (tx_begin(st, err, errlen) != 0)
        return -1;

    sqlite3_stmt *stmt = NULL;
    if (prepare(st, sql, &stmt, err, errlen) != 0)
        goto fail;
    sqlite3_bind_int64(stmt, 1, trial_id);
    if (bind != NULL && bind(stmt, args) != SQLITE_OK) {
        sqlite3_finalize(stmt);
        hpo_error(err, errlen, "out of memory %s trial %lld", action,
                  (long long)trial_id);
        goto fail;
    }
    if (step_done(st, stmt, action, err, errlen) != 0)
        goto fail;
    if (sqlite3_changes(st->db) != 1) {
        hpo_error(err, errlen, "%s trial %lld failed: no such trial in a "
                  "state that allows it", action, (long long)trial_id);
        goto fail;
    }
    if (insert_event(st, worker_id, trial_id, event, detail, err, errlen) != 0)
        goto fail;
    return tx_commit(st, err, errlen);

fail:
    tx_rollback(st);
    return -1;
}

static int bind_worker(sqlite3_stmt *stmt, const void *args)
{
    return bind_id_or_null(stmt, 2, *(const int64_t *)args);
}

int hpo_storage_trial_assign(hpo_storage *st, int64_t trial_id,
                             int64_t worker_id, char *err, size_t errlen)
{
    return trial_update(st, trial_id,
                        "UPDATE trials SET status = 'running', worker = ?2, "
                        "attempts = attempts + 1, started = " SQL_NOW " "
                        "WHERE id = ?1 AND status = 'queued'",
                        bind_worker, &worker_id, worker_id, "assigned", NULL,
                        "assigning", err, errlen);
}

int hpo_storage_trial_credit(hpo_storage *st, int64_t trial_id, int64_t worker_id,
                             char *err, size_t errlen)
{
    return trial_update(st, trial_id,
                        "UPDATE trials SET worker = ?2 "
                        "WHERE id = ?1 AND status IN ('queued', 'running')",
                        bind_worker, &worker_id, worker_id, "credited",
                        "the result came from this worker", "crediting", err, errlen);
}

int hpo_storage_trial_requeue(hpo_storage *st, int64_t trial_id,
                              const char *reason, char *err, size_t errlen)
{
    return trial_update(st, trial_id,
                        "UPDATE trials SET status = 'queued', started = NULL "
                        "WHERE id = ?1 AND status = 'running'",
                        NULL, NULL, 0, "requeued", reason, "re-queueing",
                        err, errlen);
}

int hpo_storage_trial_epoch(hpo_storage *st, int64_t trial_id, int epoch,
                            const cJSON *metrics, char *err, size_t errlen)
{
    if (metrics == NULL)
        return hpo_error(err, errlen, "epoch %d of trial %lld has no metrics",
                         epoch, (long long)trial_id);

    sqlite3_stmt *stmt = NULL;
    if (prepare(st, "INSERT OR REPLACE INTO epochs (trial, epoch, metrics) "
                    "VALUES (?1, ?2, ?3)", &stmt, err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(stmt, 1, trial_id);
    sqlite3_bind_int(stmt, 2, epoch);
    if (bind_json(stmt, 3, metrics) != SQLITE_OK) {
        sqlite3_finalize(stmt);
        return hpo_error(err, errlen, "out of memory storing an epoch");
    }
    /* One statement outside BEGIN is its own transaction. */
    return step_done(st, stmt, "storing an epoch", err, errlen);
}

typedef struct {
    const char *status;
    double objective;
    const cJSON *metrics;
    int epochs_run;
    double seconds;
    const char *error;
} finish_args;

static int bind_finish(sqlite3_stmt *stmt, const void *opaque)
{
    const finish_args *a = opaque;
    sqlite3_bind_text(stmt, 2, a->status, -1, SQLITE_STATIC);
    if (isfinite(a->objective))
        sqlite3_bind_double(stmt, 3, a->objective);
    else
        sqlite3_bind_null(stmt, 3);
    int rc = bind_json(stmt, 4, a->metrics);
    sqlite3_bind_int(stmt, 5, a->epochs_run);
    if (isfinite(a->seconds))
        sqlite3_bind_double(stmt, 6, a->seconds);
    else
        sqlite3_bind_null(stmt, 6);
    bind_text_or_null(stmt, 7, a->error);
    return rc;
}

int hpo_storage_trial_finish(hpo_storage *st, int64_t trial_id,
                             hpo_trial_state status, double objective,
                             const cJSON *metrics, int epochs_run,
                             double seconds, const char *error,
                             char *err, size_t errlen)
{
    if (status != HPO_TRIAL_STATE_OK && status != HPO_TRIAL_STATE_FAILED)
        return hpo_error(err, errlen, "trial %lld cannot finish as %s; use ok "
                         "or failed", (long long)trial_id,
                         hpo_trial_state_name(status));
    if (status == HPO_TRIAL_STATE_OK && !isfinite(objective))
        return hpo_error(err, errlen, "trial %lld finished ok without a finite "
                         "objective", (long long)trial_id);

    finish_args args = {
        .status = hpo_trial_state_name(status),
        .objective = status == HPO_TRIAL_STATE_OK ? objective : NAN,
        .metrics = metrics,
        .epochs_run = epochs_run,
        .seconds = seconds,
        .error = status == HPO_TRIAL_STATE_FAILED ? (error != NULL ? error : "failed")
                                            : NULL,
    };
    /* A trial finishes from running, or from queued when a worker reports a
     * trial that a restarted coordinator had put back in the queue. */
    return trial_update(st, trial_id,
                        "UPDATE trials SET status = ?2, objective = ?3, "
                        "metrics = ?4, epochs_run = ?5, seconds = ?6, "
                        "error = ?7, finished = " SQL_NOW " "
                        "WHERE id = ?1 AND status IN ('running','queued')",
                        bind_finish, &args, 0, args.status, args.error,
                        "finishing", err, errlen);
}

int hpo_storage_requeue_running(hpo_storage *st, int *count_out,
                                char *err, size_t errlen)
{
    *count_out = 0;
    if (tx_begin(st, err, errlen) != 0)
        return -1;
    if (exec_sql(st, "INSERT INTO events (worker, trial, event, detail) "
                     "SELECT worker, id, 'requeued', 'coordinator restarted' "
                     "FROM trials WHERE status = 'running'",
                 "logging re-queued trials", err, errlen) != 0)
        goto fail;
    if (exec_sql(st, "UPDATE trials SET status = 'queued', started = NULL "
                     "WHERE status = 'running'",
                 "re-queueing running trials", err, errlen) != 0)
        goto fail;
    int count = sqlite3_changes(st->db);
    if (tx_commit(st, err, errlen) != 0)
        return -1;
    *count_out = count;
    return 0;

fail:
    tx_rollback(st);
    return -1;
}

int hpo_storage_worker_add(hpo_storage *st, const char *host, int64_t pid,
                           int threads, int64_t *id_out, char *err, size_t errlen)
{
    if (tx_begin(st, err, errlen) != 0)
        return -1;

    sqlite3_stmt *stmt = NULL;
    if (prepare(st, "INSERT INTO workers (host, pid, threads) VALUES (?1, ?2, ?3)",
                &stmt, err, errlen) != 0)
        goto fail;
    sqlite3_bind_text(stmt, 1, host != NULL ? host : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, pid);
    sqlite3_bind_int(stmt, 3, threads);
    if (step_done(st, stmt, "registering a worker", err, errlen) != 0)
        goto fail;

    int64_t id = sqlite3_last_insert_rowid(st->db);
    if (insert_event(st, id, 0, "registered", host, err, errlen) != 0)
        goto fail;
    if (tx_commit(st, err, errlen) != 0)
        return -1;
    *id_out = id;
    return 0;

fail:
    tx_rollback(st);
    return -1;
}

int hpo_storage_event(hpo_storage *st, int64_t worker_id, int64_t trial_id,
                      const char *event, const char *detail,
                      char *err, size_t errlen)
{
    return insert_event(st, worker_id, trial_id, event, detail, err, errlen);
}

void hpo_trial_record_clear(hpo_trial_record *r)
{
    cJSON_Delete(r->params);
    cJSON_Delete(r->active);
    cJSON_Delete(r->model);
    cJSON_Delete(r->metrics);
    free(r->error);
    free(r->created);
    free(r->started);
    free(r->finished);
    memset(r, 0, sizeof *r);
}

void hpo_trial_records_free(hpo_trial_record **records, size_t n)
{
    if (records == NULL || *records == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        hpo_trial_record_clear(&(*records)[i]);
    free(*records);
    *records = NULL;
}

#define TRIAL_COLUMNS \
    "id, status, params, active, model, objective, metrics, epochs_run, " \
    "worker, attempts, error, created, started, finished, seconds"

static int record_read(sqlite3_stmt *stmt, hpo_trial_record *r)
{
    memset(r, 0, sizeof *r);
    r->id = sqlite3_column_int64(stmt, 0);
    if (state_parse((const char *)sqlite3_column_text(stmt, 1), &r->status) != 0)
        return -1;
    r->params = column_json(stmt, 2);
    r->active = column_json(stmt, 3);
    r->model = column_json(stmt, 4);
    r->objective = sqlite3_column_type(stmt, 5) == SQLITE_NULL
                       ? NAN : sqlite3_column_double(stmt, 5);
    r->metrics = column_json(stmt, 6);
    r->epochs_run = sqlite3_column_int(stmt, 7);
    r->worker_id = sqlite3_column_int64(stmt, 8);
    r->attempts = sqlite3_column_int(stmt, 9);
    r->error = column_strdup(stmt, 10);
    r->created = column_strdup(stmt, 11);
    r->started = column_strdup(stmt, 12);
    r->finished = column_strdup(stmt, 13);
    r->seconds = sqlite3_column_type(stmt, 14) == SQLITE_NULL
                     ? NAN : sqlite3_column_double(stmt, 14);
    return r->params != NULL ? 0 : -1;
}

int hpo_storage_trial_get(hpo_storage *st, int64_t trial_id,
                          hpo_trial_record *record, bool *found,
                          char *err, size_t errlen)
{
    memset(record, 0, sizeof *record);
    *found = false;

    sqlite3_stmt *stmt = NULL;
    if (prepare(st, "SELECT " TRIAL_COLUMNS " FROM trials WHERE id = ?1",
                &stmt, err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(stmt, 1, trial_id);
    int rc = sqlite3_step(stmt);
    int result = 0;
    if (rc == SQLITE_ROW) {
        *found = true;
        if (record_read(stmt, record) != 0) {
            hpo_trial_record_clear(record);
            result = hpo_error(err, errlen, "trial %lld in %s has an invalid "
                               "status or parameters", (long long)trial_id,
                               st->path);
        }
    } else if (rc != SQLITE_DONE) {
        result = db_error(st, "reading a trial", err, errlen);
    }
    sqlite3_finalize(stmt);
    return result;
}

int hpo_storage_trials_list(hpo_storage *st, hpo_trial_record **records_out,
                            size_t *n_out, char *err, size_t errlen)
{
    *records_out = NULL;
    *n_out = 0;

    sqlite3_stmt *stmt = NULL;
    if (prepare(st, "SELECT " TRIAL_COLUMNS " FROM trials ORDER BY id",
                &stmt, err, errlen) != 0)
        return -1;

    hpo_trial_record *records = NULL;
    size_t n = 0, capacity = 0;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (n == capacity) {
            size_t grown = capacity == 0 ? 16 : capacity * 2;
            hpo_trial_record *bigger = realloc(records, grown * sizeof *records);
            if (bigger == NULL) {
                hpo_error(err, errlen, "out of memory listing trials");
                goto fail;
            }
            records = bigger;
            capacity = grown;
        }
        if (record_read(stmt, &records[n]) != 0) {
            hpo_error(err, errlen, "trial %lld in %s has an invalid status or "
                      "parameters", (long long)records[n].id, st->path);
            hpo_trial_record_clear(&records[n]);
            goto fail;
        }
        n++;
    }
    if (rc != SQLITE_DONE) {
        db_error(st, "listing trials", err, errlen);
        goto fail;
    }
    sqlite3_finalize(stmt);
    *records_out = records;
    *n_out = n;
    return 0;

fail:
    sqlite3_finalize(stmt);
    hpo_trial_records_free(&records, n);
    return -1;
}

int hpo_storage_trial_counts(hpo_storage *st,
                             int counts[HPO_TRIAL_STATE_COUNT],
                             int *counted_out, char *err, size_t errlen)
{
    for (int i = 0; i < HPO_TRIAL_STATE_COUNT; i++)
        counts[i] = 0;
    *counted_out = 0;

    sqlite3_stmt *stmt = NULL;
    if (prepare(st, "SELECT status, count(*), sum(attempts > 0) FROM trials "
                    "GROUP BY status", &stmt, err, errlen) != 0)
        return -1;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        hpo_trial_state status;
        if (state_parse((const char *)sqlite3_column_text(stmt, 0), &status) != 0)
            continue;
        counts[status] = sqlite3_column_int(stmt, 1);
        /* Failed trials count only when a worker ran them, so unbuildable
         * configurations cost no share of the budget. */
        if (status == HPO_TRIAL_STATE_OK)
            *counted_out += counts[status];
        else if (status == HPO_TRIAL_STATE_FAILED)
            *counted_out += sqlite3_column_int(stmt, 2);
    }
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE)
        return db_error(st, "counting trials", err, errlen);
    return 0;
}

int hpo_storage_epochs_get(hpo_storage *st, int64_t trial_id,
                           cJSON **epochs_out, char *err, size_t errlen)
{
    *epochs_out = NULL;
    sqlite3_stmt *stmt = NULL;
    if (prepare(st, "SELECT epoch, metrics FROM epochs WHERE trial = ?1 "
                    "ORDER BY epoch", &stmt, err, errlen) != 0)
        return -1;
    sqlite3_bind_int64(stmt, 1, trial_id);

    cJSON *epochs = cJSON_CreateArray();
    int rc = SQLITE_DONE;
    while (epochs != NULL && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        cJSON *metrics = column_json(stmt, 1);
        if (metrics == NULL || !cJSON_IsObject(metrics))
            metrics = cJSON_CreateObject();
        cJSON_DeleteItemFromObjectCaseSensitive(metrics, "epoch");
        cJSON_AddNumberToObject(metrics, "epoch", sqlite3_column_int(stmt, 0));
        cJSON_AddItemToArray(epochs, metrics);
    }
    sqlite3_finalize(stmt);
    if (epochs == NULL)
        return hpo_error(err, errlen, "out of memory reading epochs");
    if (rc != SQLITE_DONE) {
        cJSON_Delete(epochs);
        return db_error(st, "reading epochs", err, errlen);
    }
    *epochs_out = epochs;
    return 0;
}
