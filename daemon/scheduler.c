#include "scheduler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hpo/error.h"
#include "hpo/log.h"

/* Seeds travel as JSON numbers, exact up to 2^53 - 1. */
#define SEED_MASK ((UINT64_C(1) << 53) - 1)

typedef struct {
    int64_t trial_id;
    int64_t worker_id;
} running_entry;

struct hpo_scheduler {
    const hpo_study *study;
    hpo_tuner *tuner;
    hpo_storage *storage;
    hpo_scheduler_options options;

    hpo_study_state state;
    char state_reason[256];

    int64_t *queue;          /* queued trial ids, ascending */
    size_t n_queue, queue_capacity;

    /* Trials that ran before this hpod started are handed to other workers
     * only after this monotonic time (ms), so that a worker that kept
     * training through the restart can register and reclaim its trial. */
    int64_t *reserved;
    size_t n_reserved;
    int64_t reserved_until_ms;
    running_entry *running;
    size_t n_running, running_capacity;

    int counted;             /* trials that count toward max trials */
    int failure_run;         /* counted failures in a row */
    int unbuildable_run;     /* unbuildable proposals in a row */
    bool exhausted;          /* the tuner has no new configuration */
};

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *const state_names[] = {"running", "complete", "stopped", "failed"};

const char *hpo_study_state_name(hpo_study_state state)
{
    if ((int)state < 0 || state > HPO_STUDY_FAILED)
        return "unknown";
    return state_names[state];
}

void hpo_assignment_clear(hpo_assignment *a)
{
    cJSON_Delete(a->params);
    cJSON_Delete(a->model);
    memset(a, 0, sizeof *a);
}

/* --- queue and running set ------------------------------------------- */

static int queue_insert(hpo_scheduler *s, int64_t trial_id)
{
    for (size_t i = 0; i < s->n_queue; i++) {
        if (s->queue[i] == trial_id)
            return 0;
    }
    if (s->n_queue == s->queue_capacity) {
        size_t grown = s->queue_capacity == 0 ? 16 : s->queue_capacity * 2;
        int64_t *bigger = realloc(s->queue, grown * sizeof *bigger);
        if (bigger == NULL)
            return -1;
        s->queue = bigger;
        s->queue_capacity = grown;
    }

    /* Keep ascending order so that the oldest trial runs first. */
    size_t at = s->n_queue;
    while (at > 0 && s->queue[at - 1] > trial_id) {
        s->queue[at] = s->queue[at - 1];
        at--;
    }
    s->queue[at] = trial_id;
    s->n_queue++;
    return 0;
}

static void queue_remove(hpo_scheduler *s, int64_t trial_id)
{
    for (size_t i = 0; i < s->n_queue; i++) {
        if (s->queue[i] == trial_id) {
            memmove(&s->queue[i], &s->queue[i + 1],
                    (s->n_queue - i - 1) * sizeof *s->queue);
            s->n_queue--;
            return;
        }
    }
}

static int running_add(hpo_scheduler *s, int64_t trial_id, int64_t worker_id)
{
    if (s->n_running == s->running_capacity) {
        size_t grown = s->running_capacity == 0 ? 16 : s->running_capacity * 2;
        running_entry *bigger = realloc(s->running, grown * sizeof *bigger);
        if (bigger == NULL)
            return -1;
        s->running = bigger;
        s->running_capacity = grown;
    }
    s->running[s->n_running++] = (running_entry){trial_id, worker_id};
    return 0;
}

/* Removes the entry of (trial_id, worker_id); worker_id 0 matches any
 * worker. Returns true when an entry was removed. */
static bool running_remove(hpo_scheduler *s, int64_t trial_id, int64_t worker_id)
{
    for (size_t i = 0; i < s->n_running; i++) {
        running_entry *e = &s->running[i];
        if (e->trial_id == trial_id && (worker_id == 0 || e->worker_id == worker_id)) {
            s->running[i] = s->running[--s->n_running];
            return true;
        }
    }
    return false;
}

int64_t hpo_scheduler_trial_worker(const hpo_scheduler *s, int64_t trial_id)
{
    for (size_t i = 0; i < s->n_running; i++) {
        if (s->running[i].trial_id == trial_id)
            return s->running[i].worker_id;
    }
    return 0;
}

int64_t hpo_scheduler_worker_trial(const hpo_scheduler *s, int64_t worker_id)
{
    for (size_t i = 0; i < s->n_running; i++) {
        if (s->running[i].worker_id == worker_id)
            return s->running[i].trial_id;
    }
    return -1;
}

/* --- study state --------------------------------------------------------- */

static int set_state(hpo_scheduler *s, hpo_study_state state, const char *reason,
                     char *err, size_t errlen)
{
    if (hpo_storage_study_set_state(s->storage, hpo_study_state_name(state), 0,
                                    err, errlen) != 0)
        return -1;
    s->state = state;
    snprintf(s->state_reason, sizeof s->state_reason, "%s", reason);
    hpo_log(state == HPO_STUDY_FAILED ? HPO_LOG_ERROR : HPO_LOG_INFO,
            "study %s %s: %s", hpo_study_name(s->study),
            hpo_study_state_name(state), reason);
    return 0;
}

/* Completes the study when max trials counted, or when the tuner is
 * exhausted and nothing is queued or running. */
static int check_complete(hpo_scheduler *s, char *err, size_t errlen)
{
    if (s->state != HPO_STUDY_RUNNING || s->n_running > 0)
        return 0;

    char reason[128];
    if (s->counted >= s->options.max_trials) {
        snprintf(reason, sizeof reason, "%d of %d trials finished",
                 s->counted, s->options.max_trials);
        return set_state(s, HPO_STUDY_COMPLETE, reason, err, errlen);
    }
    if (s->exhausted && s->n_queue == 0) {
        snprintf(reason, sizeof reason, "search space exhausted after %d "
                 "trials", s->counted);
        return set_state(s, HPO_STUDY_COMPLETE, reason, err, errlen);
    }
    return 0;
}

static hpo_observe_status observe_status_of(hpo_trial_state state)
{
    switch (state) {
    case HPO_TRIAL_STATE_OK:
        return HPO_OBSERVE_OK;
    case HPO_TRIAL_STATE_FAILED:
        return HPO_OBSERVE_FAILED;
    default:
        return HPO_OBSERVE_PENDING;
    }
}

/* --- creation ------------------------------------------------------------ */

/* Replays every stored trial into the tuner and rebuilds the queue and
 * the count of trials that count toward max trials. */
static int replay_trials(hpo_scheduler *s, char *err, size_t errlen)
{
    hpo_trial_record *records = NULL;
    size_t n = 0;
    if (hpo_storage_trials_list(s->storage, &records, &n, err, errlen) != 0)
        return -1;

    int result = 0;
    s->reserved = calloc(n > 0 ? n : 1, sizeof *s->reserved);
    s->n_reserved = 0;
    for (size_t i = 0; i < n && result == 0; i++) {
        const hpo_trial_record *r = &records[i];
        if (hpo_tuner_observe(s->tuner, r->params, r->active, r->objective,
                              observe_status_of(r->status), err, errlen) != 0) {
            hpo_log_warn("trial %lld not replayed into the tuner: %s",
                         (long long)r->id, err);
        }
        if (r->status == HPO_TRIAL_STATE_QUEUED && queue_insert(s, r->id) != 0)
            result = hpo_error(err, errlen, "out of memory loading the queue");
        if (r->status == HPO_TRIAL_STATE_QUEUED && r->attempts > 0 &&
            s->reserved != NULL)
            s->reserved[s->n_reserved++] = r->id;
        if (r->status == HPO_TRIAL_STATE_OK ||
            (r->status == HPO_TRIAL_STATE_FAILED && r->attempts > 0))
            s->counted++;
    }
    hpo_trial_records_free(&records, n);
    return result;
}

int hpo_scheduler_create(const hpo_study *study, hpo_tuner *tuner,
                         hpo_storage *storage,
                         const hpo_scheduler_options *options,
                         hpo_scheduler **out, char *err, size_t errlen)
{
    *out = NULL;
    if (options->max_trials < 1)
        return hpo_error(err, errlen, "max trials %d is below 1", options->max_trials);

    hpo_scheduler *s = calloc(1, sizeof *s);
    if (s == NULL)
        return hpo_error(err, errlen, "out of memory creating the scheduler");
    s->study = study;
    s->tuner = tuner;
    s->storage = storage;
    s->options = *options;
    s->state = HPO_STUDY_RUNNING;

    int requeued = 0;
    if (hpo_storage_requeue_running(storage, &requeued, err, errlen) != 0)
        goto fail;
    if (requeued > 0)
        hpo_log_info("%d trials that were running when the previous hpod "
                     "stopped are queued again", requeued);
    if (replay_trials(s, err, errlen) != 0)
        goto fail;
    s->reserved_until_ms = monotonic_ms() + options->reclaim_ms;
    if (s->n_reserved > 0)
        hpo_log_info("%zu queued trials ran before; they wait %d ms for their "
                     "workers to reclaim them", s->n_reserved, options->reclaim_ms);
    if (hpo_storage_study_set_state(storage, "running", options->max_trials,
                                    err, errlen) != 0)
        goto fail;
    hpo_log_info("study %s: %d of %d trials finished, %zu queued, %d "
                 "configurations known to the %s tuner", hpo_study_name(study),
                 s->counted, options->max_trials, s->n_queue,
                 hpo_tuner_known_count(tuner), hpo_tuner_name(tuner));
    if (check_complete(s, err, errlen) != 0)
        goto fail;

    *out = s;
    return 0;

fail:
    hpo_scheduler_destroy(&s);
    return -1;
}

void hpo_scheduler_destroy(hpo_scheduler **scheduler)
{
    if (scheduler == NULL || *scheduler == NULL)
        return;
    free((*scheduler)->queue);
    free((*scheduler)->reserved);
    free((*scheduler)->running);
    free(*scheduler);
    *scheduler = NULL;
}

/* --- handing out trials -------------------------------------------------- */

/* Marks a queued trial running on worker_id and fills *a from the database. */
static int assign(hpo_scheduler *s, int64_t trial_id, int64_t worker_id,
                  hpo_assignment *a, char *err, size_t errlen)
{
    hpo_trial_record r;
    bool found = false;
    if (hpo_storage_trial_get(s->storage, trial_id, &r, &found, err, errlen) != 0)
        return -1;
    if (!found || r.model == NULL) {
        hpo_trial_record_clear(&r);
        return hpo_error(err, errlen, "queued trial %lld has no stored model",
                         (long long)trial_id);
    }
    if (hpo_storage_trial_assign(s->storage, trial_id, worker_id, err, errlen) != 0 ||
        running_add(s, trial_id, worker_id) != 0) {
        hpo_trial_record_clear(&r);
        return hpo_error(err, errlen, "assigning trial %lld failed",
                         (long long)trial_id);
    }
    queue_remove(s, trial_id);

    /* Workers receive the active values only (docs/protocol.md). */
    a->trial_id = trial_id;
    if (r.active != NULL) {
        a->params = r.active;
        r.active = NULL;
    } else {
        a->params = r.params;
        r.params = NULL;
    }
    a->model = r.model;
    a->seed = (s->options.seed + (uint64_t)trial_id) & SEED_MASK;
    r.model = NULL;
    hpo_log_info("trial %lld assigned to worker w%lld (attempt %d)",
                 (long long)trial_id, (long long)worker_id, r.attempts + 1);
    hpo_trial_record_clear(&r);
    return 0;
}

/* Stores a proposal whose model cannot be built as a failed trial. Returns
 * 1 when the run of such proposals failed the study. */
static int record_unbuildable(hpo_scheduler *s, const cJSON *values,
                              const char *reason, char *err, size_t errlen)
{
    int64_t id = 0;
    if (hpo_storage_trial_add_failed(s->storage, values, reason, &id, err, errlen) != 0)
        return -1;
    hpo_log_warn("trial %lld failed before training: %s", (long long)id, reason);

    char tuner_err[HPO_ERR_MAX];
    if (hpo_tuner_observe(s->tuner, values, NULL, NAN, HPO_OBSERVE_FAILED,
                          tuner_err, sizeof tuner_err) != 0)
        hpo_log_warn("trial %lld not recorded by the tuner: %s", (long long)id,
                     tuner_err);

    s->unbuildable_run++;
    if (s->unbuildable_run < s->options.max_consecutive_unbuildable)
        return 0;
    char why[160];
    snprintf(why, sizeof why, "%d proposals in a row could not be built; "
             "check the model template and the search space",
             s->unbuildable_run);
    return set_state(s, HPO_STUDY_FAILED, why, err, errlen) == 0 ? 1 : -1;
}

/* Asks the tuner for a buildable configuration and queues it as a new
 * trial. Returns 0 with *trial_id set, 1 when there is none (exhausted or
 * the study failed), -1 on a database error. */
static int propose_trial(hpo_scheduler *s, int64_t *trial_id,
                         char *err, size_t errlen)
{
    while (s->state == HPO_STUDY_RUNNING) {
        cJSON *values = NULL;
        char tuner_err[HPO_ERR_MAX];
        int rc = hpo_tuner_propose(s->tuner, &values, tuner_err, sizeof tuner_err);
        if (rc == 1) {
            s->exhausted = true;
            hpo_log_info("the %s tuner has no new configuration: the search "
                         "space is exhausted", hpo_tuner_name(s->tuner));
            return 1;
        }
        if (rc != 0) {
            char why[HPO_ERR_MAX + 32];
            snprintf(why, sizeof why, "tuner failed: %s", tuner_err);
            return set_state(s, HPO_STUDY_FAILED, why, err, errlen) == 0 ? 1 : -1;
        }

        cJSON *model = NULL, *active = NULL;
        char reason[HPO_ERR_MAX];
        if (hpo_study_resolve(s->study, values, &model, &active, reason,
                              sizeof reason) != 0) {
            rc = record_unbuildable(s, values, reason, err, errlen);
            cJSON_Delete(values);
            if (rc != 0)
                return rc;
            continue;
        }

        rc = hpo_storage_trial_add(s->storage, values, active, model, trial_id,
                                   err, errlen);
        cJSON_Delete(values);
        cJSON_Delete(active);
        cJSON_Delete(model);
        if (rc != 0)
            return -1;
        s->unbuildable_run = 0;
        hpo_log_info("trial %lld created by the %s tuner", (long long)*trial_id,
                     hpo_tuner_name(s->tuner));
        return 0;
    }
    return 1;
}

static bool is_reserved(const hpo_scheduler *s, int64_t trial_id)
{
    if (s->n_reserved == 0 || monotonic_ms() >= s->reserved_until_ms)
        return false;
    for (size_t i = 0; i < s->n_reserved; i++) {
        if (s->reserved[i] == trial_id)
            return true;
    }
    return false;
}

/* Returns the oldest queued trial that is not reserved, -1 when none. */
static int64_t first_available(const hpo_scheduler *s)
{
    for (size_t i = 0; i < s->n_queue; i++) {
        if (!is_reserved(s, s->queue[i]))
            return s->queue[i];
    }
    return -1;
}

bool hpo_scheduler_wants_proposal(const hpo_scheduler *s)
{
    return s->state == HPO_STUDY_RUNNING && !s->exhausted && first_available(s) < 0 &&
           s->counted + (int)(s->n_running + s->n_queue) < s->options.max_trials;
}

int hpo_scheduler_next(hpo_scheduler *s, int64_t worker_id, hpo_next_kind *kind,
                       hpo_assignment *trial, char *err, size_t errlen)
{
    memset(trial, 0, sizeof *trial);
    *kind = HPO_NEXT_WAIT;

    if (s->state == HPO_STUDY_RUNNING &&
        s->counted + (int)s->n_running < s->options.max_trials) {
        int64_t trial_id = first_available(s);
        bool room = s->counted + (int)(s->n_running + s->n_queue) < s->options.max_trials;
        if (trial_id < 0 && room && !s->exhausted) {
            int rc = propose_trial(s, &trial_id, err, errlen);
            if (rc < 0)
                return -1;
            if (rc > 0)
                trial_id = -1;
        }
        if (trial_id > 0) {
            if (assign(s, trial_id, worker_id, trial, err, errlen) != 0)
                return -1;
            *kind = HPO_NEXT_TRIAL;
            return 0;
        }
    }

    if (check_complete(s, err, errlen) != 0)
        return -1;
    if (s->state != HPO_STUDY_RUNNING)
        *kind = HPO_NEXT_DONE;
    return 0;
}

int hpo_scheduler_adopt(hpo_scheduler *s, int64_t trial_id, int64_t worker_id,
                        char *err, size_t errlen)
{
    if (s->state != HPO_STUDY_RUNNING)
        return 0;
    bool queued = false;
    for (size_t i = 0; i < s->n_queue && !queued; i++)
        queued = s->queue[i] == trial_id;
    if (!queued)
        return 0;
    if (hpo_storage_trial_assign(s->storage, trial_id, worker_id, err, errlen) != 0)
        return -1;
    if (running_add(s, trial_id, worker_id) != 0)
        return hpo_error(err, errlen, "out of memory adopting trial %lld",
                         (long long)trial_id);
    queue_remove(s, trial_id);
    hpo_log_info("trial %lld adopted by worker w%lld, which kept running it",
                 (long long)trial_id, (long long)worker_id);
    return 1;
}

int hpo_scheduler_progress(hpo_scheduler *s, int64_t trial_id, int epoch,
                           const cJSON *metrics, char *err, size_t errlen)
{
    return hpo_storage_trial_epoch(s->storage, trial_id, epoch, metrics,
                                   err, errlen);
}

/* --- results --------------------------------------------------------------- */

/* Reads the objective from a result's metrics; NAN when absent. */
static double objective_of(const hpo_scheduler *s, const cJSON *metrics)
{
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(
        metrics, hpo_study_objective(s->study));
    if (!cJSON_IsNumber(value) || !isfinite(value->valuedouble))
        return NAN;
    return value->valuedouble;
}

/* Stores a finished trial, reports it to the tuner, and applies the
 * failure cap. */
static int finish_trial(hpo_scheduler *s, const hpo_trial_record *r,
                        const hpo_trial_report *report, char *err, size_t errlen)
{
    double objective = NAN;
    char reason[HPO_ERR_MAX];
    bool ok = report->outcome == HPO_OUTCOME_OK;
    snprintf(reason, sizeof reason, "%s",
             report->error != NULL && report->error[0] != '\0' ? report->error
                                                                 : "failed");
    if (ok) {
        objective = objective_of(s, report->metrics);
        if (isnan(objective)) {
            ok = false;
            snprintf(reason, sizeof reason, "the result has no finite %s "
                     "metric", hpo_study_objective(s->study));
        }
    }

    if (hpo_storage_trial_finish(s->storage, r->id,
                                 ok ? HPO_TRIAL_STATE_OK : HPO_TRIAL_STATE_FAILED,
                                 objective, report->metrics, report->epochs_run,
                                 report->seconds, ok ? NULL : reason,
                                 err, errlen) != 0)
        return -1;
    queue_remove(s, r->id);
    s->counted++;

    char tuner_err[HPO_ERR_MAX];
    if (hpo_tuner_observe(s->tuner, r->params, r->active, objective,
                          ok ? HPO_OBSERVE_OK : HPO_OBSERVE_FAILED,
                          tuner_err, sizeof tuner_err) != 0)
        hpo_log_warn("trial %lld not recorded by the tuner: %s",
                     (long long)r->id, tuner_err);

    if (ok) {
        s->failure_run = 0;
        hpo_log_info("trial %lld finished on worker w%lld: %s %.6g after %d "
                     "epochs in %.1f s (%d of %d trials)", (long long)r->id,
                     (long long)report->worker_id,
                     hpo_study_objective(s->study), objective,
                     report->epochs_run, report->seconds, s->counted,
                     s->options.max_trials);
        return 0;
    }

    s->failure_run++;
    hpo_log_warn("trial %lld failed on worker w%lld: %s (%d of %d trials, %d "
                 "failures in a row)", (long long)r->id,
                 (long long)report->worker_id, reason, s->counted,
                 s->options.max_trials, s->failure_run);
    if (s->failure_run >= s->options.max_consecutive_failures) {
        char why[HPO_ERR_MAX + 64];
        snprintf(why, sizeof why, "%d trials failed in a row, the last with: %s",
                 s->failure_run, reason);
        return set_state(s, HPO_STUDY_FAILED, why, err, errlen);
    }
    return 0;
}

/* Handles an interrupted trial: queued again unless another worker runs it
 * or it finished meanwhile. */
static int requeue_trial(hpo_scheduler *s, const hpo_trial_record *r,
                         const char *reason, char *err, size_t errlen)
{
    if (r->status == HPO_TRIAL_STATE_RUNNING &&
        hpo_storage_trial_requeue(s->storage, r->id, reason, err, errlen) != 0)
        return -1;
    if (queue_insert(s, r->id) != 0)
        return hpo_error(err, errlen, "out of memory re-queueing trial %lld",
                         (long long)r->id);
    hpo_log_info("trial %lld queued again: %s", (long long)r->id, reason);
    return 0;
}

int hpo_scheduler_report(hpo_scheduler *s, const hpo_trial_report *report,
                         hpo_report_outcome *outcome, int64_t *other_worker,
                         char *err, size_t errlen)
{
    *other_worker = 0;
    *outcome = HPO_REPORT_UNKNOWN;

    hpo_trial_record r;
    bool found = false;
    if (hpo_storage_trial_get(s->storage, report->trial_id, &r, &found,
                              err, errlen) != 0)
        return -1;
    if (!found)
        return 0;

    int result = 0;
    bool mine = running_remove(s, r.id, report->worker_id);
    int64_t other = hpo_scheduler_trial_worker(s, r.id);
    if (r.status == HPO_TRIAL_STATE_OK || r.status == HPO_TRIAL_STATE_FAILED) {
        *outcome = HPO_REPORT_DUPLICATE;
    } else if (report->outcome == HPO_OUTCOME_INTERRUPTED) {
        *outcome = HPO_REPORT_REQUEUED;
        if (other == 0) {
            char reason[HPO_ERR_MAX];
            snprintf(reason, sizeof reason, "interrupted on worker w%lld: %s",
                     (long long)report->worker_id,
                     report->error != NULL ? report->error : "");
            result = requeue_trial(s, &r, reason, err, errlen);
        }
    } else {
        /* The first result wins; a second worker on the same trial is
         * stopped by the caller. */
        if (other != 0) {
            running_remove(s, r.id, other);
            *other_worker = other;
        }
        /* The trial row names the worker that trained it, which is not
         * the last one assigned when another worker's result wins. */
        if (r.worker_id != report->worker_id)
            result = hpo_storage_trial_credit(s->storage, r.id, report->worker_id, err,
                                              errlen);
        if (result == 0)
            result = finish_trial(s, &r, report, err, errlen);
        *outcome = HPO_REPORT_STORED;
    }
    if (!mine && *outcome != HPO_REPORT_DUPLICATE)
        hpo_log_info("trial %lld reported by worker w%lld, which did not hold "
                     "it in this hpod", (long long)r.id,
                     (long long)report->worker_id);
    hpo_trial_record_clear(&r);
    if (result == 0)
        result = check_complete(s, err, errlen);
    return result;
}

int hpo_scheduler_worker_lost(hpo_scheduler *s, int64_t worker_id,
                              const char *reason, bool may_fail,
                              char *err, size_t errlen)
{
    int64_t trial_id = hpo_scheduler_worker_trial(s, worker_id);
    if (trial_id < 0)
        return 0;
    running_remove(s, trial_id, worker_id);

    hpo_trial_record r;
    bool found = false;
    if (hpo_storage_trial_get(s->storage, trial_id, &r, &found, err, errlen) != 0)
        return -1;
    int result = 0;
    if (found && r.status == HPO_TRIAL_STATE_RUNNING &&
        hpo_scheduler_trial_worker(s, trial_id) == 0) {
        if (may_fail && r.attempts >= s->options.max_attempts) {
            char why[HPO_ERR_MAX];
            snprintf(why, sizeof why, "its worker was lost on attempt %d, "
                     "the last of %d allowed: %s", r.attempts,
                     s->options.max_attempts, reason);
            hpo_trial_report report = {
                .trial_id = trial_id, .worker_id = worker_id,
                .outcome = HPO_OUTCOME_FAILED, .error = why,
                .seconds = NAN,
            };
            result = finish_trial(s, &r, &report, err, errlen);
        } else {
            result = requeue_trial(s, &r, reason, err, errlen);
        }
    }
    hpo_trial_record_clear(&r);
    if (result == 0)
        result = check_complete(s, err, errlen);
    return result;
}

int hpo_scheduler_stop(hpo_scheduler *s, const char *reason, char *err, size_t errlen)
{
    int result = 0;
    while (s->n_running > 0 && result == 0) {
        running_entry e = s->running[s->n_running - 1];
        s->n_running--;
        if (hpo_scheduler_trial_worker(s, e.trial_id) != 0)
            continue;
        result = hpo_storage_trial_requeue(s->storage, e.trial_id, reason,
                                           err, errlen);
        if (result == 0)
            result = queue_insert(s, e.trial_id) == 0 ? 0 : -1;
    }
    if (result != 0)
        return -1;
    if (s->state == HPO_STUDY_RUNNING)
        return set_state(s, HPO_STUDY_STOPPED, reason, err, errlen);
    return 0;
}

hpo_study_state hpo_scheduler_state(const hpo_scheduler *s)
{
    return s->state;
}

const char *hpo_scheduler_state_reason(const hpo_scheduler *s)
{
    return s->state_reason;
}

int hpo_scheduler_max_trials(const hpo_scheduler *s)
{
    return s->options.max_trials;
}

int hpo_scheduler_running_count(const hpo_scheduler *s)
{
    return (int)s->n_running;
}
