#include "service_trial.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hpo/error.h"
#include "hpo/log.h"
#include "hpo/model.h"
#include "hpo/trainer.h"

/* Progress messages the mailbox keeps until the socket thread takes them.
 * That thread takes them within milliseconds, so the oldest is dropped
 * only when it is stuck. */
#define PROGRESS_QUEUE_MAX 64

struct hpo_service_trial {
    /* Set by hpo_service_trial_start(), read-only afterwards. */
    int64_t trial_id;
    cJSON *model;
    cJSON *params;                /* the trial's active values */
    hpo_msg_budget budget;
    uint64_t seed;
    int threads;
    hpo_service_data *data;
    double start_seconds;
    pthread_t thread;
    int pipe_fds[2];

    atomic_int stop;

    /* Guarded by lock. */
    pthread_mutex_t lock;
    hpo_msg_progress queue[PROGRESS_QUEUE_MAX];
    int n_queued;
    hpo_msg_progress last;
    int epochs_seen;
    bool done;
    hpo_trial_outcome outcome;
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void wake(hpo_service_trial *trial)
{
    /* The pipe is non-blocking: when it is full, the reader is already due
     * to wake, so a lost byte loses nothing. */
    ssize_t n = write(trial->pipe_fds[1], "x", 1);
    (void)n;
}

static int on_epoch(const hpo_epoch_metrics *m, void *user)
{
    hpo_service_trial *trial = user;
    hpo_msg_progress p = {
        .trial_id = trial->trial_id,
        .epoch = m->epoch,
        .epochs = m->epochs,
        .loss = m->loss,
        .accuracy = m->accuracy,
        .val_loss = m->val_loss,
        .val_accuracy = m->val_accuracy,
        .seconds = m->seconds,
        .images_per_second = m->images_per_second,
    };

    pthread_mutex_lock(&trial->lock);
    if (trial->n_queued == PROGRESS_QUEUE_MAX) {
        memmove(trial->queue, trial->queue + 1, (PROGRESS_QUEUE_MAX - 1) * sizeof p);
        trial->n_queued--;
    }
    trial->queue[trial->n_queued++] = p;
    trial->last = p;
    trial->epochs_seen = m->epoch;
    pthread_mutex_unlock(&trial->lock);

    wake(trial);
    return atomic_load(&trial->stop);
}

/* Adds a metric, as JSON null when it is not finite. */
static void add_metric(cJSON *metrics, const char *name, double value)
{
    if (isfinite(value))
        cJSON_AddNumberToObject(metrics, name, value);
    else
        cJSON_AddNullToObject(metrics, name);
}

/* Loads the budget's subsets unless the cache already has them. The split
 * uses the loader's default seed, so every trial is validated on the same
 * images and their scores are comparable. */
static int load_data(hpo_service_data *cache, const hpo_msg_budget *budget,
                     char *err, size_t errlen)
{
    if (cache->data != NULL && cache->train_size == budget->train_size &&
        cache->val_size == budget->val_size)
        return 0;

    hpo_cifar10_destroy(&cache->data);
    hpo_cifar10_options opt;
    hpo_cifar10_options_default(&opt);
    opt.dir = cache->dir;
    opt.train_size = budget->train_size;
    opt.val_size = budget->val_size;
    opt.test_size = 1; /* the test set is not used; 0 would load all of it */

    double start = now_seconds();
    if (hpo_cifar10_load(&opt, &cache->data, err, errlen) != 0)
        return -1;
    cache->train_size = budget->train_size;
    cache->val_size = budget->val_size;
    hpo_log_info("loaded CIFAR-10 from %s: %d training and %d validation images in %.1f s",
                 cache->dir, cache->data->train.n, cache->data->val.n, now_seconds() - start);
    return 0;
}

/* A standard normal draw from a SplitMix64 stream started at *state
 * (Box-Muller), so that the noise of a trial depends only on its seed. */
static double normal_draw(uint64_t *state)
{
    double u[2];
    for (int i = 0; i < 2; i++) {
        uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        z ^= z >> 31;
        u[i] = ((double)(z >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2.0 * log(u[0])) * cos(2.0 * M_PI * u[1]);
}

/* Scores the trial with the synthetic objective instead of training and
 * reports the value as the configured metric. */
static void run_synthetic(hpo_service_trial *trial, const hpo_service_synthetic *syn)
{
    hpo_trial_outcome *out = &trial->outcome;
    char err[HPO_ERROR_TEXT_MAX + 1] = "";
    double value = NAN;

    if (syn->sleep_ms > 0) {
        struct timespec pause = {syn->sleep_ms / 1000, (long)(syn->sleep_ms % 1000) * 1000000L};
        while (nanosleep(&pause, &pause) != 0 && errno == EINTR)
            continue;
    }
    if (hpo_objective_evaluate(syn->objective, trial->params, &value, err, sizeof err) != 0) {
        snprintf(out->error, sizeof out->error, "%s", err);
        return;
    }
    if (syn->noise_sd > 0.0) {
        uint64_t state = trial->seed;
        value += syn->noise_sd * normal_draw(&state);
    }

    /* No progress message: the result follows at once, and progress
     * carries accuracies that a synthetic objective does not have. */
    pthread_mutex_lock(&trial->lock);
    trial->epochs_seen = 1;
    pthread_mutex_unlock(&trial->lock);
    out->status = atomic_load(&trial->stop) ? HPO_TRIAL_INTERRUPTED : HPO_TRIAL_OK;
    add_metric(out->metrics, syn->metric, value);
}

/* Builds the spec, loads the data and trains; fills trial->outcome. */
static void run_trial(hpo_service_trial *trial)
{
    hpo_trial_outcome *out = &trial->outcome;
    hpo_model_spec *spec = NULL;
    char err[HPO_ERROR_TEXT_MAX + 1] = "";

    out->status = HPO_TRIAL_FAILED;
    out->metrics = cJSON_CreateObject();
    if (trial->data->synthetic != NULL) {
        run_synthetic(trial, trial->data->synthetic);
        return;
    }

    if (hpo_model_spec_from_json(trial->model, &spec, err, sizeof err) != 0) {
        snprintf(out->error, sizeof out->error, "model: %s", err);
        return;
    }
    /* The trial's budget overrides the training settings in the model. */
    spec->epochs = trial->budget.epochs;
    spec->batch_size = trial->budget.batch_size;
    spec->seed = trial->seed;

    if (load_data(trial->data, &trial->budget, err, sizeof err) != 0) {
        snprintf(out->error, sizeof out->error, "data: %s", err);
        hpo_model_spec_destroy(&spec);
        return;
    }
    if (atomic_load(&trial->stop)) {
        out->status = HPO_TRIAL_INTERRUPTED;
        hpo_model_spec_destroy(&spec);
        return;
    }

    hpo_train_options opt = {
        .threads = trial->threads,
        .on_epoch = on_epoch,
        .user = trial,
    };
    hpo_train_result result;
    memset(&result, 0, sizeof result);
    int rc = hpo_train_run(spec, trial->data->data, &opt, &result, err, sizeof err);
    hpo_model_spec_destroy(&spec);

    if (rc != 0) {
        snprintf(out->error, sizeof out->error, "%s", err);
        return;
    }
    out->status = result.interrupted ? HPO_TRIAL_INTERRUPTED : HPO_TRIAL_OK;
    add_metric(out->metrics, "loss", result.loss);
    add_metric(out->metrics, "accuracy", result.accuracy);
    add_metric(out->metrics, "val_loss", result.val_loss);
    add_metric(out->metrics, "val_accuracy", result.val_accuracy);
    add_metric(out->metrics, "best_epoch", result.best_epoch);
    add_metric(out->metrics, "stopped_early", result.stopped_early ? 1 : 0);
}

static void *trial_thread(void *arg)
{
    hpo_service_trial *trial = arg;
    run_trial(trial);

    pthread_mutex_lock(&trial->lock);
    trial->outcome.epochs_run = trial->epochs_seen;
    trial->outcome.wall_seconds = now_seconds() - trial->start_seconds;
    trial->done = true;
    pthread_mutex_unlock(&trial->lock);
    wake(trial);
    return NULL;
}

hpo_service_trial *hpo_service_trial_start(const hpo_msg_trial *msg,
                                           hpo_service_data *data, int threads,
                                           char *err, size_t errlen)
{
    hpo_service_trial *trial = calloc(1, sizeof *trial);
    if (trial == NULL) {
        hpo_error(err, errlen, "trial %lld: out of memory", (long long)msg->trial_id);
        return NULL;
    }
    trial->pipe_fds[0] = trial->pipe_fds[1] = -1;
    trial->trial_id = msg->trial_id;
    trial->budget = msg->budget;
    trial->seed = msg->seed;
    trial->threads = threads;
    trial->data = data;
    trial->start_seconds = now_seconds();
    atomic_init(&trial->stop, 0);
    pthread_mutex_init(&trial->lock, NULL);

    trial->model = cJSON_Duplicate(msg->model, 1);
    trial->params = msg->params != NULL ? cJSON_Duplicate(msg->params, 1)
                                        : cJSON_CreateObject();
    if (trial->model == NULL || trial->params == NULL) {
        hpo_error(err, errlen, "trial %lld: out of memory copying the model",
                  (long long)msg->trial_id);
        goto fail;
    }
    if (pipe2(trial->pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        hpo_error(err, errlen, "trial %lld: creating a pipe failed: %s",
                  (long long)msg->trial_id, strerror(errno));
        goto fail;
    }

    /* SIGINT and SIGTERM go to the socket thread, which stops the trial;
     * the training thread and the compute threads it starts block them. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = pthread_create(&trial->thread, NULL, trial_thread, trial);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        hpo_error(err, errlen, "trial %lld: starting the training thread failed: %s",
                  (long long)msg->trial_id, strerror(rc));
        goto fail;
    }
    return trial;

fail:
    cJSON_Delete(trial->model);
    cJSON_Delete(trial->params);
    if (trial->pipe_fds[0] >= 0) {
        close(trial->pipe_fds[0]);
        close(trial->pipe_fds[1]);
    }
    pthread_mutex_destroy(&trial->lock);
    free(trial);
    return NULL;
}

int64_t hpo_service_trial_id(const hpo_service_trial *trial)
{
    return trial->trial_id;
}

int hpo_service_trial_wake_fd(const hpo_service_trial *trial)
{
    return trial->pipe_fds[0];
}

void hpo_service_trial_stop(hpo_service_trial *trial)
{
    atomic_store(&trial->stop, 1);
}

bool hpo_service_trial_stop_requested(const hpo_service_trial *trial)
{
    return atomic_load(&((hpo_service_trial *)trial)->stop) != 0;
}

int hpo_service_trial_poll(hpo_service_trial *trial, hpo_msg_progress *out, int max)
{
    char buf[64];
    while (read(trial->pipe_fds[0], buf, sizeof buf) > 0)
        continue;

    pthread_mutex_lock(&trial->lock);
    int n = trial->n_queued < max ? trial->n_queued : max;
    memcpy(out, trial->queue, (size_t)n * sizeof *out);
    memmove(trial->queue, trial->queue + n, (size_t)(trial->n_queued - n) * sizeof *out);
    trial->n_queued -= n;
    pthread_mutex_unlock(&trial->lock);
    return n;
}

bool hpo_service_trial_done(hpo_service_trial *trial)
{
    pthread_mutex_lock(&trial->lock);
    bool done = trial->done;
    pthread_mutex_unlock(&trial->lock);
    return done;
}

void hpo_service_trial_finish(hpo_service_trial **trial_ptr, hpo_trial_outcome *outcome)
{
    hpo_service_trial *trial = *trial_ptr;
    pthread_join(trial->thread, NULL);

    *outcome = trial->outcome;
    cJSON_Delete(trial->model);
    cJSON_Delete(trial->params);
    close(trial->pipe_fds[0]);
    close(trial->pipe_fds[1]);
    pthread_mutex_destroy(&trial->lock);
    free(trial);
    *trial_ptr = NULL;
}

void hpo_service_trial_outcome_now(hpo_service_trial *trial, hpo_trial_outcome *outcome)
{
    memset(outcome, 0, sizeof *outcome);
    outcome->status = HPO_TRIAL_INTERRUPTED;
    outcome->metrics = cJSON_CreateObject();

    pthread_mutex_lock(&trial->lock);
    hpo_msg_progress last = trial->last;
    outcome->epochs_run = trial->epochs_seen;
    pthread_mutex_unlock(&trial->lock);

    outcome->wall_seconds = now_seconds() - trial->start_seconds;
    if (outcome->epochs_run > 0) {
        add_metric(outcome->metrics, "loss", last.loss);
        add_metric(outcome->metrics, "accuracy", last.accuracy);
        add_metric(outcome->metrics, "val_loss", last.val_loss);
        add_metric(outcome->metrics, "val_accuracy", last.val_accuracy);
    }
    snprintf(outcome->error, sizeof outcome->error,
             "the worker exited during epoch %d", outcome->epochs_run + 1);
}

void hpo_service_data_clear(hpo_service_data *data)
{
    hpo_cifar10_destroy(&data->data);
}
