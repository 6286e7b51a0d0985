/* Worker service mode: hpo-worker --connect ENDPOINT --data DIR.
 *
 * The service registers with the coordinator, requests trials, trains each
 * one with hpo_train_run(), streams per-epoch progress and heartbeats, sends
 * the result and keeps it until the coordinator acknowledges it, even
 * across a coordinator restart. docs/protocol.md describes the exchange. */
#ifndef HPO_WORKER_SERVICE_H
#define HPO_WORKER_SERVICE_H

#include <stddef.h>

#include "hpo/curve.h"

typedef struct {
    const char *endpoint;    /* coordinator's worker endpoint (required) */
    const char *data_dir;    /* CIFAR-10 folder (required) */
    const char *name;        /* worker name; NULL means "HOST-PID" */
    int threads;             /* training threads; 0 means one per CPU */
    int reply_timeout_ms;    /* register again when a request gets no answer
                                within this time */
    int heartbeat_ms;        /* used until `registered` gives the interval */
    int max_trials;          /* exit after this many results were acked;
                                0 means no limit */
    const char *objective;   /* NULL: train; else a synthetic objective
                                (branin, hartmann6, mixed16) evaluated on
                                the trial's parameters instead, and no
                                CIFAR-10 folder is needed */
    const char *objective_metric; /* metric that reports the objective's
                                value; NULL means val_loss */
    int objective_sleep_ms;  /* pause before each synthetic evaluation */
    double objective_noise;  /* SD of Gaussian noise on the objective */
    const hpo_curve_settings *curve; /* CURVE client settings: the worker's
                                key pair and hpod's public key;
                                borrowed; NULL: no CURVE */
} hpo_worker_service_options;

/* Fills opt with the defaults: no endpoint or data folder, reply timeout
 * 5 s, heartbeat HPO_HEARTBEAT_MS_DEFAULT, no trial limit. */
void hpo_worker_service_options_default(hpo_worker_service_options *opt);

/* Runs the service until the study is done, the coordinator sends
 * `shutdown`, max_trials is reached or hpo_worker_service_request_stop() is
 * called. Returns 0 on a clean exit. Returns -1 with a message when it
 * cannot start (bad endpoint, no CIFAR-10 files in data_dir), when its
 * socket fails, or when the coordinator rejects the protocol version. One
 * service runs per process, because the stop request is a process-wide
 * flag that each run resets when it starts. */
int hpo_worker_service_run(const hpo_worker_service_options *opt,
                           char *err, size_t errlen);

/* Requests the running service to stop: the trial in progress stops after
 * its current epoch and is reported as interrupted, then the service
 * returns. A second request reports the trial at once and returns without
 * waiting for the epoch, leaving the training thread running until the
 * process exits. Async-signal-safe, so a SIGINT or SIGTERM handler may
 * call it. */
void hpo_worker_service_request_stop(void);

/* Command-line entry point: parses --connect, --data, --threads, --name,
 * --objective (with --objective-metric, --objective-sleep and
 * --objective-noise), --log-level and --help, installs SIGINT and SIGTERM
 * handlers and runs the service. Returns the process exit status. */
int hpo_worker_service_main(int argc, char **argv);

#endif
