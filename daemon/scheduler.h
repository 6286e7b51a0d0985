/* Trial bookkeeping of a running study: which trials are queued, which
 * run on which worker, when the study is complete, and what the tuner
 * proposes next.
 *
 * The database is the record of truth. Every change is written to it
 * before the function returns, so the caller may acknowledge the event
 * afterwards. The scheduler does no I/O besides the database and never
 * blocks on the network.
 *
 * Counting rule: a trial counts toward max trials when it finished on a
 * worker, ok or failed, as Keras Tuner counts failed trials. A proposal
 * whose model cannot be built is stored as a failed trial that does not
 * count, because it cost no training. Runs of failures are capped so that a
 * broken study ends instead of looping. */
#ifndef HPO_DAEMON_SCHEDULER_H
#define HPO_DAEMON_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "hpo/study.h"
#include "hpo/tuner.h"
#include "storage.h"

typedef struct hpo_scheduler hpo_scheduler;

typedef struct {
    int max_trials;                /* trials that count before completion */
    int max_consecutive_failures;  /* counted failures in a row that fail the
                                      study; Keras Tuner's default is 3 */
    int max_consecutive_unbuildable; /* unbuildable proposals in a row that
                                        fail the study */
    int max_attempts;              /* times a trial may be handed out before
                                      losing its worker fails it */
    int reclaim_ms;                /* how long trials that were running when
                                      the previous hpod stopped are kept for
                                      their workers to reclaim */
    uint64_t seed;                 /* study seed; trial seeds derive from it */
} hpo_scheduler_options;

/* Study states, as stored in the study table. */
typedef enum {
    HPO_STUDY_RUNNING = 0,
    HPO_STUDY_COMPLETE,  /* max trials reached or space exhausted */
    HPO_STUDY_STOPPED,   /* stopped by hpoctl stop or a signal */
    HPO_STUDY_FAILED,    /* too many failures in a row */
} hpo_study_state;

/* "running", "complete", "stopped" or "failed". */
const char *hpo_study_state_name(hpo_study_state state);

/* What hpo_scheduler_next() hands to a worker. */
typedef enum {
    HPO_NEXT_TRIAL = 0, /* *trial is the trial to run */
    HPO_NEXT_WAIT,      /* nothing to run now; trials still run elsewhere */
    HPO_NEXT_DONE,      /* the study is no longer running */
} hpo_next_kind;

/* A trial handed to a worker. Owned by the caller, freed with
 * hpo_assignment_clear(). */
typedef struct {
    int64_t trial_id;
    cJSON *params;      /* the active parameter values */
    cJSON *model;
    uint64_t seed;
} hpo_assignment;

void hpo_assignment_clear(hpo_assignment *assignment);

/* Creates the scheduler of a study. Re-queues trials that a previous
 * coordinator left running, replays every stored trial into the tuner and
 * reaches the state the stored trials imply (a study resumed with its max
 * trials already finished is complete at once). study, tuner and storage
 * are borrowed and must outlive the scheduler. On success the caller frees
 * *out with hpo_scheduler_destroy(). */
int hpo_scheduler_create(const hpo_study *study, hpo_tuner *tuner,
                         hpo_storage *storage,
                         const hpo_scheduler_options *options,
                         hpo_scheduler **out, char *err, size_t errlen);
void hpo_scheduler_destroy(hpo_scheduler **scheduler);

/* Picks the next trial for worker_id: the oldest queued trial, else a new
 * proposal of the tuner. Marks it running on the worker. Returns -1 only
 * when the database fails. */
int hpo_scheduler_next(hpo_scheduler *scheduler, int64_t worker_id,
                       hpo_next_kind *kind, hpo_assignment *trial,
                       char *err, size_t errlen);

/* True when hpo_scheduler_next() would ask the tuner for a new proposal:
 * the study runs, no queued trial is available and max trials leaves
 * room. */
bool hpo_scheduler_wants_proposal(const hpo_scheduler *scheduler);

/* Marks a queued trial as running on worker_id, for a worker that kept
 * training it while the coordinator restarted. Returns 1 when adopted, 0
 * when the trial is not queued (finished, unknown or running elsewhere). */
int hpo_scheduler_adopt(hpo_scheduler *scheduler, int64_t trial_id,
                        int64_t worker_id, char *err, size_t errlen);

/* Returns the worker running trial_id, 0 when it runs nowhere. */
int64_t hpo_scheduler_trial_worker(const hpo_scheduler *scheduler,
                                   int64_t trial_id);

/* Returns the trial running on worker_id, -1 when the worker is idle. */
int64_t hpo_scheduler_worker_trial(const hpo_scheduler *scheduler,
                                   int64_t worker_id);

/* Stores one epoch's metrics of a running trial (metrics borrowed). */
int hpo_scheduler_progress(hpo_scheduler *scheduler, int64_t trial_id,
                           int epoch, const cJSON *metrics,
                           char *err, size_t errlen);

/* A worker's final report of a trial. */
typedef struct {
    int64_t trial_id;
    int64_t worker_id;
    enum { HPO_OUTCOME_OK, HPO_OUTCOME_FAILED, HPO_OUTCOME_INTERRUPTED } outcome;
    const cJSON *metrics;   /* borrowed; may be NULL */
    int epochs_run;
    double seconds;
    const char *error;      /* failed and interrupted: the reason */
} hpo_trial_report;

/* What happened to a report. */
typedef enum {
    HPO_REPORT_STORED = 0,  /* stored as ok or failed */
    HPO_REPORT_REQUEUED,    /* interrupted: the trial is queued again */
    HPO_REPORT_DUPLICATE,   /* the trial had finished already; ignored */
    HPO_REPORT_UNKNOWN,     /* no such trial; ignored */
} hpo_report_outcome;

/* Stores a result. An ok result whose metrics lack the objective is
 * stored as failed. If another worker also runs the trial, *other_worker
 * is set to it so that the caller can stop it (0 otherwise). */
int hpo_scheduler_report(hpo_scheduler *scheduler,
                         const hpo_trial_report *report,
                         hpo_report_outcome *outcome, int64_t *other_worker,
                         char *err, size_t errlen);

/* Re-queues the trial that a lost worker was running. With may_fail, a
 * trial that has used max_attempts fails instead, so that a trial that
 * crashes its workers cannot loop. A worker that only registered again
 * passes false. Does nothing for an idle worker. */
int hpo_scheduler_worker_lost(hpo_scheduler *scheduler, int64_t worker_id,
                              const char *reason, bool may_fail,
                              char *err, size_t errlen);

/* Ends the study as stopped: running trials are re-queued so that a later
 * hpod --db resumes them. */
int hpo_scheduler_stop(hpo_scheduler *scheduler, const char *reason,
                       char *err, size_t errlen);

hpo_study_state hpo_scheduler_state(const hpo_scheduler *scheduler);

/* Why the study left the running state; "" while it runs. */
const char *hpo_scheduler_state_reason(const hpo_scheduler *scheduler);

int hpo_scheduler_max_trials(const hpo_scheduler *scheduler);

/* Number of trials running now. */
int hpo_scheduler_running_count(const hpo_scheduler *scheduler);

#endif
