/* One trial of the worker service, trained on its own thread.
 *
 * The service's socket thread starts a trial, then reads its progress and
 * final outcome from a mailbox. The training thread never touches a ZeroMQ
 * socket: it posts to the mailbox and writes one byte to a pipe, whose read
 * end the socket thread polls together with its socket. */
#ifndef HPO_SERVICE_TRIAL_H
#define HPO_SERVICE_TRIAL_H

#include <stdbool.h>
#include <stddef.h>

#include "hpo/cifar10.h"
#include "hpo/protocol.h"
#include "objectives.h"

/* A synthetic objective that trials evaluate instead of training. */
typedef struct {
    const hpo_objective *objective; /* static; see objectives.h */
    const char *metric;           /* metric name the value is reported as */
    int sleep_ms;                 /* pause before each evaluation */
    double noise_sd;              /* SD of Gaussian noise added to the value */
} hpo_service_synthetic;

/* CIFAR-10 subsets kept between trials with the same budget sizes, or the
 * synthetic objective that replaces training. Owned by the service; only
 * the training thread of the running trial uses it. */
typedef struct {
    const char *dir;
    int train_size, val_size;
    hpo_cifar10 *data;            /* NULL until the first load */
    const hpo_service_synthetic *synthetic; /* borrowed; NULL: train */
} hpo_service_data;

/* What a finished trial reports. */
typedef struct {
    hpo_trial_status status;
    int epochs_run;
    double wall_seconds;
    cJSON *metrics;               /* owned by the outcome */
    char error[HPO_ERROR_TEXT_MAX + 1];
} hpo_trial_outcome;

typedef struct hpo_service_trial hpo_service_trial;

/* Starts training `trial` on a new thread with `threads` compute threads.
 * Copies what it needs from trial, so the caller may clear it afterwards.
 * Returns NULL with a message when the thread cannot be started. */
hpo_service_trial *hpo_service_trial_start(const hpo_msg_trial *trial,
                                           hpo_service_data *data, int threads,
                                           char *err, size_t errlen);

int64_t hpo_service_trial_id(const hpo_service_trial *trial);

/* File descriptor that becomes readable when the mailbox has news; poll it,
 * then call hpo_service_trial_poll(). */
int hpo_service_trial_wake_fd(const hpo_service_trial *trial);

/* Asks the training thread to stop after the current epoch. Safe from any
 * thread. */
void hpo_service_trial_stop(hpo_service_trial *trial);
bool hpo_service_trial_stop_requested(const hpo_service_trial *trial);

/* Takes the progress messages posted since the last call: copies up to
 * `max` of them into out and returns their count. Also drains the pipe. */
int hpo_service_trial_poll(hpo_service_trial *trial, hpo_msg_progress *out, int max);

/* Returns whether the training thread has finished. */
bool hpo_service_trial_done(hpo_service_trial *trial);

/* Joins the finished thread, moves its outcome into *outcome (the caller
 * frees outcome->metrics with cJSON_Delete()) and frees *trial. */
void hpo_service_trial_finish(hpo_service_trial **trial, hpo_trial_outcome *outcome);

/* Builds the outcome of a trial that is still running from its last
 * progress, for a service that must exit before the current epoch ends. */
void hpo_service_trial_outcome_now(hpo_service_trial *trial, hpo_trial_outcome *outcome);

/* Frees the cached data. */
void hpo_service_data_clear(hpo_service_data *data);

#endif
