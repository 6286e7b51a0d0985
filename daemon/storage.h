/* SQLite storage of a study: the study file, its trials, their per-epoch
 * metrics, the workers that registered and an event log.
 *
 * One database file holds one study. It is opened in WAL mode with
 * synchronous=FULL, and every write function below commits its own
 * transaction before it returns, so a caller that acknowledges an event
 * after the call returned has it on disk. docs/storage.md documents the
 * schema. Trial ids come from an AUTOINCREMENT key and are never reused,
 * not even after a restart. */
#ifndef HPO_DAEMON_STORAGE_H
#define HPO_DAEMON_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

typedef struct hpo_storage hpo_storage;

typedef enum {
    HPO_TRIAL_STATE_QUEUED = 0,
    HPO_TRIAL_STATE_RUNNING,
    HPO_TRIAL_STATE_OK,
    HPO_TRIAL_STATE_FAILED,
} hpo_trial_state;

#define HPO_TRIAL_STATE_COUNT 4

/* "queued", "running", "ok" or "failed". */
const char *hpo_trial_state_name(hpo_trial_state status);

/* One row of the trials table. Every pointer is owned by the record and
 * freed by hpo_trial_record_clear(). */
typedef struct {
    int64_t id;
    hpo_trial_state status;
    cJSON *params;      /* all parameter values of the trial */
    cJSON *active;      /* the parameters the resolved model used */
    cJSON *model;       /* resolved model spec; NULL when resolution failed */
    double objective;   /* NAN until the trial finished ok */
    cJSON *metrics;     /* final metrics; NULL until the trial finished */
    int epochs_run;
    int64_t worker_id;  /* 0 when the trial never ran on a worker */
    int attempts;       /* times the trial was handed to a worker */
    char *error;        /* reason of a failure; NULL otherwise */
    char *created, *started, *finished; /* ISO 8601 UTC; NULL when unset */
    double seconds;     /* training wall time reported by the worker */
} hpo_trial_record;

void hpo_trial_record_clear(hpo_trial_record *record);

/* Frees an array of n records from hpo_storage_trials_list() and sets
 * *records to NULL. */
void hpo_trial_records_free(hpo_trial_record **records, size_t n);

/* Study row. Strings are owned by the struct; free with
 * hpo_study_info_clear(). A database of schema version 1, or a study
 * created by hpo_storage_study_create(), stores none of the settings:
 * tuner and tuner_options are NULL and the limits 0. */
typedef struct {
    char *name;
    char *spec;         /* the study file's JSON text */
    uint64_t seed;
    int max_trials;     /* the effective max trials of this study */
    char *tuner;        /* "bayes" or "random"; NULL when not stored */
    char *tuner_options; /* JSON object text; NULL exactly when tuner is */
    int max_failures;   /* hpod --max-failures; 0 when not stored */
    int max_attempts;   /* hpod --max-attempts; 0 when not stored */
    char *state;        /* "running", "complete", "stopped" or "failed" */
    char *created, *updated;
} hpo_study_info;

/* Settings of a study that hpod's command line decides and a resumed
 * study keeps. The strings are borrowed. */
typedef struct {
    const char *tuner;          /* NULL: leave or store none */
    const char *tuner_options;  /* JSON object text; NULL exactly when tuner is */
    int max_failures;           /* 0: leave or store none */
    int max_attempts;           /* 0: leave or store none */
} hpo_study_settings;

void hpo_study_info_clear(hpo_study_info *info);

/* Opens (and with create, creates) the database at path and its schema.
 * Without create a missing file is an error, which is what read-only
 * inspection wants. With create, a file of schema version 1 is upgraded to
 * the current version. Without create, it is read as it is, and the
 * functions that store study settings fail on it. The caller frees *out
 * with hpo_storage_close(). */
int hpo_storage_open(const char *path, bool create, hpo_storage **out,
                     char *err, size_t errlen);
void hpo_storage_close(hpo_storage **storage);

/* Reads the study row. *found is false for a database without a study. */
int hpo_storage_study_get(hpo_storage *storage, hpo_study_info *info,
                          bool *found, char *err, size_t errlen);

/* Writes the study row of a new database, without settings. Fails when
 * one exists. */
int hpo_storage_study_create(hpo_storage *storage, const char *name,
                             const char *spec, uint64_t seed, int max_trials,
                             char *err, size_t errlen);

/* Writes the study row of a new database with its settings (NULL for
 * none) in one transaction. Fails when one exists. */
int hpo_storage_study_create_with_settings(hpo_storage *storage, const char *name,
                                           const char *spec, uint64_t seed,
                                           int max_trials,
                                           const hpo_study_settings *settings,
                                           char *err, size_t errlen);

/* Stores the given settings of the stored study and logs the event
 * study_settings; the settings left NULL or 0 keep their stored values.
 * A tuner is stored only into a study that has none (one written before
 * schema version 2), because a study never changes its tuner: with one
 * stored, the call fails and changes nothing. */
int hpo_storage_study_set_settings(hpo_storage *storage,
                                   const hpo_study_settings *settings,
                                   char *err, size_t errlen);

/* Sets the study's state ("running", "complete", "stopped", "failed") and
 * max trials (ignored when max_trials <= 0), and logs an event. */
int hpo_storage_study_set_state(hpo_storage *storage, const char *state,
                                int max_trials, char *err, size_t errlen);

/* Inserts a queued trial and returns its id. params and active are
 * borrowed. */
int hpo_storage_trial_add(hpo_storage *storage, const cJSON *params,
                          const cJSON *active, const cJSON *model,
                          int64_t *id_out, char *err, size_t errlen);

/* Inserts a trial that failed before it ran (its model cannot be built).
 * Such trials do not count toward max trials. */
int hpo_storage_trial_add_failed(hpo_storage *storage, const cJSON *params,
                                 const char *reason, int64_t *id_out,
                                 char *err, size_t errlen);

/* Marks a queued trial running on worker_id and counts the attempt. */
int hpo_storage_trial_assign(hpo_storage *storage, int64_t trial_id,
                             int64_t worker_id, char *err, size_t errlen);

/* Stores one epoch's metrics (borrowed). A repeated epoch replaces the
 * earlier row, because a re-run trial reports its epochs again. */
int hpo_storage_trial_epoch(hpo_storage *storage, int64_t trial_id,
                            int epoch, const cJSON *metrics,
                            char *err, size_t errlen);

/* Finishes a trial as ok (objective finite) or failed (error set).
 * metrics is borrowed and may be NULL. */
int hpo_storage_trial_finish(hpo_storage *storage, int64_t trial_id,
                             hpo_trial_state status, double objective,
                             const cJSON *metrics, int epochs_run,
                             double seconds, const char *error,
                             char *err, size_t errlen);

/* Records worker_id as the worker of a queued or running trial whose
 * result came from it. hpod may have last assigned the trial to another
 * worker or to none, for example when a worker that reconnected under a
 * new id reports a trial it trained before. Appends a `credited` event. */
int hpo_storage_trial_credit(hpo_storage *storage, int64_t trial_id, int64_t worker_id,
                             char *err, size_t errlen);

/* Puts a running trial back in the queue, with the reason in the event
 * log ("worker w3 lost"). */
int hpo_storage_trial_requeue(hpo_storage *storage, int64_t trial_id,
                              const char *reason, char *err, size_t errlen);

/* Puts every running trial back in the queue (used at start, when the
 * previous coordinator died with trials in flight). */
int hpo_storage_requeue_running(hpo_storage *storage, int *count_out,
                                char *err, size_t errlen);

/* Registers a worker and returns its id (shown as "w<id>"). */
int hpo_storage_worker_add(hpo_storage *storage, const char *host,
                           int64_t pid, int threads, int64_t *id_out,
                           char *err, size_t errlen);

/* Appends an event to the log. worker_id and trial_id may be 0, detail
 * may be NULL. */
int hpo_storage_event(hpo_storage *storage, int64_t worker_id,
                      int64_t trial_id, const char *event, const char *detail,
                      char *err, size_t errlen);

/* Reads one trial. *found is false when no trial has that id. */
int hpo_storage_trial_get(hpo_storage *storage, int64_t trial_id,
                          hpo_trial_record *record, bool *found,
                          char *err, size_t errlen);

/* Reads all trials in id order. The caller frees *records_out with
 * hpo_trial_records_free(). */
int hpo_storage_trials_list(hpo_storage *storage,
                            hpo_trial_record **records_out, size_t *n_out,
                            char *err, size_t errlen);

/* Counts trials per status, indexed by hpo_trial_state, and the trials
 * that count toward max trials (finished ok, or failed on a worker). */
int hpo_storage_trial_counts(hpo_storage *storage,
                             int counts[HPO_TRIAL_STATE_COUNT],
                             int *counted_out, char *err, size_t errlen);

/* Reads a trial's epochs as a JSON array of metrics objects, each with an
 * "epoch" member, in epoch order. The caller owns *epochs_out. */
int hpo_storage_epochs_get(hpo_storage *storage, int64_t trial_id,
                           cJSON **epochs_out, char *err, size_t errlen);

#endif
