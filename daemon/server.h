/* hpod's event loop: one zmq_poll over the workers' ROUTER socket, the
 * control ROUTER socket and the proposer's PAIR socket. Hands trials to
 * workers that ask, stores their progress and results through the
 * scheduler, detects lost workers, and answers hpoctl. Nothing in the loop
 * waits on a peer, and GP fits run on the proposer thread (proposer.h). */
#ifndef HPO_DAEMON_SERVER_H
#define HPO_DAEMON_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "hpo/auth.h"
#include "hpo/study.h"
#include "hpo/tuner.h"
#include "scheduler.h"
#include "storage.h"

typedef struct {
    const char *workers_endpoint;  /* e.g. tcp://\*:5555 */
    const char *control_endpoint;  /* e.g. tcp://127.0.0.1:5556 */
    int heartbeat_ms;              /* interval sent to workers */
    int worker_timeout_ms;         /* silence after which a worker is lost;
                                      hpod sets it to a number of
                                      heartbeat intervals */
    bool linger;                   /* keep answering queries after the end */
    const char *ready_file;        /* NULL, or a file that receives the bound
                                      endpoints once both sockets listen */
    const hpo_curve_keypair *curve; /* hpod's key pair, which turns CURVE on
                                      for both endpoints; NULL: no CURVE */
    const hpo_authorized_keys *authorized_keys; /* clients admitted over
                                      CURVE; required with curve */
} hpo_server_options;

/* Everything the loop works on; all borrowed. */
typedef struct {
    const hpo_study *study;
    hpo_tuner *tuner;
    hpo_storage *storage;
    hpo_scheduler *scheduler;
} hpo_server_parts;

/* Binds both endpoints and runs the loop until the study leaves the
 * running state (complete, failed, stopped by hpoctl) or a stop is
 * requested; with linger, until hpoctl stop or a signal. Returns 0 after a
 * clean end, -1 with a message when a socket cannot be bound or fails. */
int hpo_server_run(const hpo_server_options *options,
                   const hpo_server_parts *parts, char *err, size_t errlen);

/* Asks the loop to stop: no trial is handed out any more, running trials
 * are queued again so that a later hpod --db resumes them, and the workers
 * of a running study receive the restart notice, so that they keep their
 * trials and results for the next hpod. The loop ends about
 * half a second later. Async-signal-safe, for SIGINT and SIGTERM
 * handlers. */
void hpo_server_request_stop(void);

#endif
