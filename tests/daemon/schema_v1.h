/* The SQLite schema that hpod wrote as version 1, before the study row
 * stored its tuner, tuner options, max failures and max attempts. Tests
 * build old databases from it to check the upgrade. It sets user_version
 * to 1 and inserts no rows. */
#ifndef HPO_TEST_SCHEMA_V1_H
#define HPO_TEST_SCHEMA_V1_H

#define HPO_TEST_V1_NOW "(strftime('%Y-%m-%dT%H:%M:%fZ','now'))"

static const char *const hpo_test_schema_v1 =
    "CREATE TABLE study (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " name TEXT NOT NULL, spec TEXT NOT NULL, seed INTEGER NOT NULL,"
    " max_trials INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'running'"
    " CHECK (state IN ('running','complete','stopped','failed')),"
    " created TEXT NOT NULL DEFAULT " HPO_TEST_V1_NOW ","
    " updated TEXT NOT NULL DEFAULT " HPO_TEST_V1_NOW ");"
    "CREATE TABLE workers (id INTEGER PRIMARY KEY AUTOINCREMENT, host TEXT NOT NULL,"
    " pid INTEGER NOT NULL, threads INTEGER NOT NULL,"
    " registered TEXT NOT NULL DEFAULT " HPO_TEST_V1_NOW ");"
    "CREATE TABLE trials (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " status TEXT NOT NULL DEFAULT 'queued'"
    " CHECK (status IN ('queued','running','ok','failed')),"
    " params TEXT NOT NULL, active TEXT, model TEXT, objective REAL, metrics TEXT,"
    " epochs_run INTEGER NOT NULL DEFAULT 0, worker INTEGER REFERENCES workers(id),"
    " attempts INTEGER NOT NULL DEFAULT 0, error TEXT, seconds REAL,"
    " created TEXT NOT NULL DEFAULT " HPO_TEST_V1_NOW ", started TEXT, finished TEXT);"
    "CREATE TABLE epochs (trial INTEGER NOT NULL REFERENCES trials(id),"
    " epoch INTEGER NOT NULL, metrics TEXT NOT NULL,"
    " time TEXT NOT NULL DEFAULT " HPO_TEST_V1_NOW ", PRIMARY KEY (trial, epoch));"
    "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " time TEXT NOT NULL DEFAULT " HPO_TEST_V1_NOW ", worker INTEGER, trial INTEGER,"
    " event TEXT NOT NULL, detail TEXT);"
    "PRAGMA user_version = 1;";

#endif
