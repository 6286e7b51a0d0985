/* Proposer: runs the bayes tuner's GP fits and acquisition searches on a
 * thread of their own, so that hpod's event loop keeps serving workers and
 * hpoctl while a proposal is computed.
 *
 * The loop hands a job from hpo_tuner_bayes_prepare() to
 * hpo_proposer_submit() and polls hpo_proposer_socket() together with its
 * other sockets. When the socket is readable, hpo_proposer_collect()
 * returns the job that ran, which the loop passes to
 * hpo_tuner_bayes_finish(). Job pointers travel over an inproc ZeroMQ
 * PAIR socket, so the thread never touches the tuner and the loop never
 * waits on the thread. One job runs at a time. */
#ifndef HPO_DAEMON_PROPOSER_H
#define HPO_DAEMON_PROPOSER_H

#include <stdbool.h>
#include <stddef.h>

#include "tuner_bayes.h"

typedef struct hpo_proposer hpo_proposer;

/* Starts the thread and its PAIR sockets in the ZeroMQ context ctx, which
 * must outlive the proposer. The caller frees *out with
 * hpo_proposer_stop(). */
int hpo_proposer_start(void *ctx, hpo_proposer **out, char *err, size_t errlen);

/* Waits for a running job to end, frees it, stops the thread, closes the
 * sockets and sets *proposer to NULL. Accepts NULL. */
void hpo_proposer_stop(hpo_proposer **proposer);

/* The loop's end of the PAIR: readable when a job has run. Borrowed. */
void *hpo_proposer_socket(const hpo_proposer *proposer);

/* True from hpo_proposer_submit() until hpo_proposer_collect() returns
 * the job. */
bool hpo_proposer_busy(const hpo_proposer *proposer);

/* Hands *job to the thread and sets *job to NULL. Fails when a job runs
 * already or the socket fails; the job then stays with the caller. */
int hpo_proposer_submit(hpo_proposer *proposer, hpo_bayes_job **job,
                        char *err, size_t errlen);

/* Takes the job that ran, without waiting. Returns 1 and sets *job (owned
 * by the caller, for hpo_tuner_bayes_finish()) when one has run, 0 when
 * none has, -1 when the socket fails. */
int hpo_proposer_collect(hpo_proposer *proposer, hpo_bayes_job **job,
                         char *err, size_t errlen);

#endif
