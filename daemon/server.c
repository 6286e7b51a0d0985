#include "server.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "control.h"
#include "proposer.h"
#include "server_identity.h"
#include "server_internal.h"
#include "hpo/auth.h"
#include "hpo/error.h"
#include "hpo/log.h"
#include "hpo/protocol.h"
#include "hpo/transport.h"

/* Messages read from one socket before the loop looks at the other, so a
 * flood on one socket cannot starve the other. */
#define DRAIN_BURST 64

/* Maximum zmq_poll wait in ms, which bounds how late lost workers and stop
 * requests are noticed. */
#define POLL_MS 250

/* Delay, in ms, that no_work gives an idle worker before its next ready. */
#define NO_WORK_RETRY_MS 1000

/* After the study ends, time in ms that hpod keeps answering ready with
 * study_done before it sends shutdown to the workers that did not ask and
 * exits: long enough for idle workers to ask again after no_work. */
#define END_WAIT_MS (3 * NO_WORK_RETRY_MS)

/* Time in ms that hpod keeps its sockets open after its last study_done or
 * shutdown. Closing at once, even with ZMQ_LINGER set, lost such messages
 * on their way to workers in the end-to-end tests (libzmq 4.3.4). */
#define CLOSE_GRACE_MS 500

/* Longest time in ms that a worker's ready stays unanswered while the GP
 * fit it waits for runs; it then gets no_work with FIT_RETRY_MS. Well below
 * the reply timeout after which a worker registers again (5 s by default). */
#define FIT_WAIT_MS 2000
#define FIT_RETRY_MS 200

/* Minimum time in ms between two unknown_worker replies to one peer. */
#define UNKNOWN_REPLY_MS 1000

/* Start of the `shutdown` reason sent when a signal stops hpod while the
 * study runs. hpo-worker recognizes it (worker/service.c) and, instead of
 * exiting, keeps its trial and results for the next hpod. */
#define RESTART_REASON "coordinator restarting"

static volatile sig_atomic_t stop_signal;

void hpo_server_request_stop(void)
{
    stop_signal = 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- sending ------------------------------------------------------------- */

/* Sends msg to a peer; a failure is logged, because the loop goes on. */
static int send_to(void *sock, const hpo_peer *peer, const hpo_msg *msg,
                   const char *who)
{
    char err[HPO_ERR_MAX];
    if (hpo_transport_send_msg(sock, peer, msg, err, sizeof err) != 0) {
        hpo_log_limited("send", 10, HPO_LOG_WARN, "sending %s to %s failed: %s",
                        hpo_msg_type_name(msg->type), who, err);
        return -1;
    }
    return 0;
}

static int send_worker(server *srv, const worker_slot *w, const hpo_msg *msg)
{
    char who[32];
    snprintf(who, sizeof who, "worker w%" PRId64, w->id);
    return send_to(srv->workers_sock, &w->peer, msg, who);
}

static void send_error(void *sock, const hpo_peer *peer, hpo_proto_status code,
                       const char *text)
{
    hpo_msg msg;
    hpo_msg_error_init(&msg, code, "%s", text);
    char who[64];
    send_to(sock, peer, &msg, hpo_peer_format(peer, who, sizeof who));
}

static void send_stop_trial(server *srv, const worker_slot *w, int64_t trial_id,
                            const char *reason)
{
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_STOP_TRIAL);
    msg.stop_trial.trial_id = trial_id;
    snprintf(msg.stop_trial.reason, sizeof msg.stop_trial.reason, "%s", reason);
    hpo_log_info("telling worker w%" PRId64 " to stop trial %" PRId64 ": %s",
                 w->id, trial_id, reason);
    send_worker(srv, w, &msg);
}

static void broadcast_shutdown(server *srv, const char *reason)
{
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_SHUTDOWN);
    snprintf(msg.shutdown.reason, sizeof msg.shutdown.reason, "%s", reason);
    for (size_t i = 0; i < srv->n_workers; i++) {
        if (!srv->workers[i].connected || srv->workers[i].done_sent)
            continue;
        hpo_log_info("telling worker w%" PRId64 " to shut down: %s",
                     srv->workers[i].id, reason);
        send_worker(srv, &srv->workers[i], &msg);
        srv->workers[i].done_sent = true;
    }
}

/* Logs a database or scheduler failure that the loop survives. */
static void log_failure(const char *action, const char *err)
{
    hpo_log_error("%s failed: %s", action, err);
}

/* --- worker messages ---------------------------------------------------- */

static void lose_worker(server *srv, worker_slot *w, const char *reason,
                        bool may_fail)
{
    char err[HPO_ERR_MAX];
    w->connected = false;
    hpo_log_warn("worker w%" PRId64 " (%s, pid %" PRId64 ") lost: %s",
                 w->id, w->host, w->pid, reason);
    hpo_storage_event(srv->parts->storage, w->id, 0, "lost", reason, err, sizeof err);
    if (hpo_scheduler_worker_lost(srv->parts->scheduler, w->id, reason,
                                  may_fail, err, sizeof err) != 0)
        log_failure("re-queueing the lost worker's trial", err);
}

/* Sends the restart notice (a shutdown whose reason starts with
 * RESTART_REASON) to one peer. */
static void send_restart_notice(server *srv, const hpo_peer *peer)
{
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_SHUTDOWN);
    snprintf(msg.shutdown.reason, sizeof msg.shutdown.reason, "%s: hpod was "
             "stopped by a signal; the study resumes when hpod starts again "
             "on the same database", RESTART_REASON);
    char who[64];
    send_to(srv->workers_sock, peer, &msg, hpo_peer_format(peer, who, sizeof who));
}

/* Rejects a message that claims worker w's id or registration without w's
 * session token or CURVE key: logs both peers and replies
 * worker_id_taken. */
static void reject_claim(server *srv, const worker_slot *w, const hpo_peer *peer,
                         const char *token, const char *type)
{
    char rightful[HPO_PRINCIPAL_MAX + 128], claimant[HPO_PRINCIPAL_MAX + 128];
    hpo_peer_describe(&w->peer, rightful, sizeof rightful);
    hpo_peer_describe(peer, claimant, sizeof claimant);
    const char *mismatch = !hpo_worker_token_equal(w->token, token)
                               ? (token[0] ? "a wrong session token" : "no session token")
                               : "another CURVE key";
    hpo_log_limited("worker_id_taken", 5, HPO_LOG_WARN, "%s claiming worker w%" PRId64
                    " (%s, pid %" PRId64 ") rejected: it came from %s with %s, and w%"
                    PRId64 " is registered to %s", type, w->id, w->host, w->pid,
                    claimant, mismatch, w->id, rightful);

    /* A register matches by host, pid and name, which two workers share
     * when, for example, each runs as pid 1 in a container on the host's
     * network. */
    const char *fix = strcmp(type, "register") == 0
                          ? "if this is another worker, give it its own --name"
                          : "register to get a worker id of your own";
    char text[HPO_MESSAGE_MAX + 1];
    snprintf(text, sizeof text, "worker w%" PRId64 " (%.64s, pid %" PRId64 ") is "
             "registered to another connection, and this %s has %s; %s", w->id,
             w->name, w->pid, type, mismatch, fix);
    send_error(srv->workers_sock, peer, HPO_PROTO_WORKER_ID_TAKEN, text);
}

/* Applies the per-peer registration limit; replies too_many_registrations
 * and returns false when the peer is over it. */
static bool register_allowed(server *srv, const hpo_peer *peer, const hpo_msg_register *reg)
{
    char principal[HPO_PRINCIPAL_MAX + 1];
    hpo_peer_principal(peer, principal, sizeof principal);
    int64_t retry_ms = 0;
    if (hpo_register_limiter_allow(&srv->register_limiter, principal, now_ms(), &retry_ms))
        return true;

    hpo_log_limited("register_limit", 5, HPO_LOG_WARN, "register from %s (%s, pid %"
                    PRId64 ") rejected: this peer made %d registrations within %d ms, "
                    "the limit per peer; it may retry in %" PRId64 " ms", principal,
                    reg->host, reg->pid, HPO_REGISTER_LIMIT, HPO_REGISTER_WINDOW_MS,
                    retry_ms);
    char text[160];
    snprintf(text, sizeof text, "this peer made %d registrations within %d ms, the "
             "limit per peer; register again in %" PRId64 " ms", HPO_REGISTER_LIMIT,
             HPO_REGISTER_WINDOW_MS, retry_ms);
    send_error(srv->workers_sock, peer, HPO_PROTO_TOO_MANY_REGISTRATIONS, text);
    return false;
}

/* Rejects a worker whose kind cannot run the study's trials, replying
 * wrong_worker_kind. */
static bool worker_kind_allowed(server *srv, const hpo_peer *peer,
                                const hpo_msg_register *reg)
{
    char text[HPO_MESSAGE_MAX + 1];
    const hpo_study *study = srv->parts->study;
    if (hpo_worker_kind_check(hpo_study_name(study), hpo_study_synthetic(study), reg->kind,
                              text, sizeof text) == 0)
        return true;
    hpo_log_limited("worker_kind", 5, HPO_LOG_WARN, "register from %s on %s (pid %"
                    PRId64 ", kind %s) rejected: %s", reg->name, reg->host, reg->pid,
                    hpo_worker_kind_name(reg->kind), text);
    send_error(srv->workers_sock, peer, HPO_PROTO_WRONG_WORKER_KIND, text);
    return false;
}

static void on_register(server *srv, const hpo_peer *peer, const hpo_msg_register *reg)
{
    char err[HPO_ERR_MAX];

    if (srv->restarting) {
        hpo_log_info("register from %s (pid %" PRId64 ") answered with the "
                     "restart notice: hpod is stopping", reg->host, reg->pid);
        send_restart_notice(srv, peer);
        return;
    }
    if (!register_allowed(srv, peer, reg) || !worker_kind_allowed(srv, peer, reg))
        return;

    /* A worker registers again when its coordinator vanished, when it was
     * sent unknown_worker or when it opened a new socket. It may replace
     * its earlier registration only with that registration's token (and,
     * with CURVE, key), so that no peer can take over another worker by
     * sending its host, pid and name. The replaced worker's trial is
     * queued again so that the new registration can adopt it below.
     * NOTE: a worker whose `registered` was lost never saw the token, so
     * it is rejected here until its old registration is declared lost. */
    for (size_t i = 0; i < srv->n_workers; i++) {
        worker_slot *old = &srv->workers[i];
        if (hpo_registry_is_same(old, peer, reg) &&
            !hpo_registry_credentials_match(old, peer, reg->token)) {
            reject_claim(srv, old, peer, reg->token, "register");
            return;
        }
    }
    for (size_t i = 0; i < srv->n_workers; i++) {
        if (hpo_registry_is_same(&srv->workers[i], peer, reg))
            lose_worker(srv, &srv->workers[i], "registered again", false);
    }

    char token[HPO_TOKEN_MAX + 1];
    if (hpo_worker_token_new(token, err, sizeof err) != 0) {
        log_failure("making a session token", err);
        send_error(srv->workers_sock, peer, HPO_PROTO_INTERNAL,
                   "the coordinator could not make a session token");
        return;
    }

    int64_t id = 0;
    if (hpo_storage_worker_add(srv->parts->storage, reg->host, reg->pid,
                               reg->threads, &id, err, sizeof err) != 0) {
        log_failure("registering a worker", err);
        send_error(srv->workers_sock, peer, HPO_PROTO_INTERNAL,
                   "the coordinator could not store the registration");
        return;
    }
    worker_slot *w = hpo_registry_add(srv);
    if (w == NULL) {
        hpo_log_error("out of memory registering worker w%" PRId64, id);
        send_error(srv->workers_sock, peer, HPO_PROTO_INTERNAL, "out of memory");
        return;
    }
    w->id = id;
    w->peer = *peer;
    snprintf(w->host, sizeof w->host, "%s", reg->host);
    snprintf(w->name, sizeof w->name, "%s", reg->name);
    w->pid = reg->pid;
    w->threads = reg->threads;
    w->last_seen_ms = now_ms();
    w->connected = true;
    snprintf(w->token, sizeof w->token, "%s", token);
    snprintf(w->public_key, sizeof w->public_key, "%s", peer->public_key);
    char who[HPO_PRINCIPAL_MAX + 128];
    hpo_log_info("worker w%" PRId64 " registered: %s on %s, pid %" PRId64
                 ", %d threads, kind %s, from %s%s", id,
                 reg->name[0] ? reg->name : "(unnamed)", reg->host, reg->pid,
                 reg->threads, reg->kind != HPO_WORKER_KIND_UNKNOWN
                                   ? hpo_worker_kind_name(reg->kind) : "not given",
                 hpo_peer_describe(peer, who, sizeof who),
                 reg->n_pending > 0 ? ", with unacknowledged results" : "");

    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_REGISTERED);
    snprintf(msg.registered.worker_id, sizeof msg.registered.worker_id,
             "w%" PRId64, id);
    msg.registered.heartbeat_ms = srv->options->heartbeat_ms;
    snprintf(msg.registered.token, sizeof msg.registered.token, "%s", token);
    send_worker(srv, w, &msg);

    /* A worker that kept training through a coordinator restart keeps its
     * trial if it is still queued here; otherwise it must stop. */
    if (reg->running_trial > 0) {
        int adopted = hpo_scheduler_adopt(srv->parts->scheduler, reg->running_trial,
                                          id, err, sizeof err);
        if (adopted < 0)
            log_failure("adopting a running trial", err);
        else if (adopted == 0)
            send_stop_trial(srv, w, reg->running_trial,
                            "the trial is not queued in this study");
    }
}

/* Returns true when peer was sent unknown_worker within UNKNOWN_REPLY_MS;
 * otherwise records that it is sent one now. */
static bool unknown_replied_recently(server *srv, const hpo_peer *peer)
{
    int64_t now = now_ms();
    size_t slots = sizeof srv->unknown_replies / sizeof srv->unknown_replies[0];
    for (size_t i = 0; i < slots; i++) {
        const hpo_peer *p = &srv->unknown_replies[i].peer;
        if (p->size == peer->size && memcmp(p->id, peer->id, peer->size) == 0 &&
            now - srv->unknown_replies[i].at_ms < UNKNOWN_REPLY_MS)
            return true;
    }
    srv->unknown_replies[srv->unknown_next].peer = *peer;
    srv->unknown_replies[srv->unknown_next].at_ms = now;
    srv->unknown_next = (srv->unknown_next + 1) % slots;
    return false;
}

/* Finds the sender of a message that names a worker id and its session
 * token. Replies unknown_worker when the id is not registered here, and
 * worker_id_taken when the token or CURVE key is not the registration's.
 * A sender with the right credentials on a new connection moves the
 * worker's routing to it. */
static worker_slot *known_worker(server *srv, const hpo_peer *peer,
                                 const char *worker_id, const char *token,
                                 const char *type)
{
    worker_slot *w = hpo_registry_find(srv, hpo_registry_parse_id(worker_id));
    if (w == NULL) {
        if (unknown_replied_recently(srv, peer)) {
            hpo_log_debug("%s from unknown worker %s: unknown_worker sent "
                          "already", type, worker_id);
            return NULL;
        }
        char text[160];
        snprintf(text, sizeof text, "worker id \"%.64s\" is not registered with "
                 "this coordinator; send register", worker_id);
        hpo_log_limited("unknown_worker", 5, HPO_LOG_WARN, "%s from %s: %s",
                        type, worker_id, text);
        send_error(srv->workers_sock, peer, HPO_PROTO_UNKNOWN_WORKER, text);
        return NULL;
    }
    if (!hpo_registry_credentials_match(w, peer, token)) {
        reject_claim(srv, w, peer, token, type);
        return NULL;
    }
    w->peer = *peer;
    w->last_seen_ms = now_ms();
    return w;
}

static void send_trial(server *srv, worker_slot *w, hpo_assignment *a)
{
    const hpo_budget *budget = hpo_study_budget(srv->parts->study);
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_TRIAL);
    msg.trial.trial_id = a->trial_id;
    msg.trial.params = a->params;
    msg.trial.model = a->model;
    msg.trial.seed = a->seed;
    msg.trial.budget.epochs = budget->epochs;
    msg.trial.budget.train_size = budget->train_size;
    msg.trial.budget.val_size = budget->val_size;
    msg.trial.budget.batch_size = budget->batch_size;

    if (send_worker(srv, w, &msg) != 0)
        lose_worker(srv, w, "the trial could not be sent", true);
}

/* --- GP proposals off the event loop ------------------------------------ */

static void hand_out(server *srv, worker_slot *w);

/* Starts a GP fit and search on the proposer thread unless one runs.
 * Returns -1 when none runs afterwards. */
static int start_fit(server *srv)
{
    if (hpo_proposer_busy(srv->proposer))
        return 0;

    char err[HPO_ERR_MAX];
    hpo_bayes_job *job = NULL;
    int rc = hpo_tuner_bayes_prepare(srv->parts->tuner, &job, err, sizeof err);
    if (rc < 0)
        log_failure("preparing a GP proposal", err);
    if (rc != 0)
        return -1;
    if (hpo_proposer_submit(srv->proposer, &job, err, sizeof err) != 0) {
        log_failure("starting a GP proposal", err);
        hpo_bayes_job_destroy(&job);
        return -1;
    }
    hpo_log_debug("GP fit started on the proposer thread");
    return 0;
}

static bool fit_waiter_add(server *srv, int64_t worker_id)
{
    for (size_t i = 0; i < srv->n_fit_waiters; i++) {
        if (srv->fit_waiters[i].worker_id == worker_id)
            return true;
    }
    if (srv->n_fit_waiters == srv->fit_waiters_capacity) {
        size_t grown = srv->fit_waiters_capacity == 0 ? 8 : 2 * srv->fit_waiters_capacity;
        void *bigger = realloc(srv->fit_waiters, grown * sizeof *srv->fit_waiters);
        if (bigger == NULL)
            return false;
        srv->fit_waiters = bigger;
        srv->fit_waiters_capacity = grown;
    }
    srv->fit_waiters[srv->n_fit_waiters].worker_id = worker_id;
    srv->fit_waiters[srv->n_fit_waiters].since_ms = now_ms();
    srv->n_fit_waiters++;
    return true;
}

static void fit_waiter_remove(server *srv, size_t i)
{
    memmove(&srv->fit_waiters[i], &srv->fit_waiters[i + 1],
            (srv->n_fit_waiters - i - 1) * sizeof *srv->fit_waiters);
    srv->n_fit_waiters--;
}

/* Returns true when worker w must wait for a GP fit, which then runs on
 * the proposer thread; false when the caller hands out a trial now. */
static bool wait_for_fit(server *srv, worker_slot *w)
{
    if (srv->proposer == NULL || !hpo_scheduler_wants_proposal(srv->parts->scheduler) ||
        !hpo_tuner_bayes_needs_fit(srv->parts->tuner) || start_fit(srv) != 0)
        return false;
    if (hpo_study_tuner(srv->parts->study)->late_fit == HPO_LATE_FIT_RANDOM) {
        hpo_log_info("worker w%" PRId64 " gets a quasi-random trial: the GP fit is "
                     "still running (late_fit random)", w->id);
        return false;
    }
    if (!fit_waiter_add(srv, w->id))
        return false;
    hpo_log_debug("worker w%" PRId64 " waits for the GP fit", w->id);
    return true;
}

/* Stores the proposals of a finished GP job and serves the waiting
 * workers, oldest first. Each proposal after the first needs a fit
 * conditioned on the trial just handed out, so serving stops when a new
 * fit starts. */
static void on_fit_done(server *srv)
{
    char err[HPO_ERR_MAX];
    hpo_bayes_job *job = NULL;
    int rc = hpo_proposer_collect(srv->proposer, &job, err, sizeof err);
    if (rc < 0)
        log_failure("collecting a GP proposal", err);
    if (rc <= 0)
        return;
    if (hpo_tuner_bayes_finish(srv->parts->tuner, &job, err, sizeof err) != 0)
        log_failure("storing a GP proposal", err);

    while (srv->n_fit_waiters > 0 && !hpo_proposer_busy(srv->proposer)) {
        worker_slot *w = hpo_registry_find(srv, srv->fit_waiters[0].worker_id);
        fit_waiter_remove(srv, 0);
        if (w == NULL || w->done_sent ||
            hpo_scheduler_worker_trial(srv->parts->scheduler, w->id) > 0)
            continue;
        if (srv->restarting) {
            hpo_msg msg;
            hpo_msg_init(&msg, HPO_MSG_NO_WORK);
            msg.no_work.retry_ms = NO_WORK_RETRY_MS;
            send_worker(srv, w, &msg);
            continue;
        }
        hand_out(srv, w);
    }
}

/* Sends no_work to workers that waited FIT_WAIT_MS for a fit, so that
 * they ask again instead of registering again. */
static void expire_fit_waits(server *srv)
{
    int64_t now = now_ms();
    for (size_t i = 0; i < srv->n_fit_waiters;) {
        worker_slot *w = hpo_registry_find(srv, srv->fit_waiters[i].worker_id);
        if (w != NULL && now - srv->fit_waiters[i].since_ms < FIT_WAIT_MS) {
            i++;
            continue;
        }
        fit_waiter_remove(srv, i);
        if (w == NULL)
            continue;
        hpo_log_info("worker w%" PRId64 " waited %d ms for the GP fit; sending no_work "
                     "so that it asks again", w->id, FIT_WAIT_MS);
        hpo_msg msg;
        hpo_msg_init(&msg, HPO_MSG_NO_WORK);
        msg.no_work.retry_ms = FIT_RETRY_MS;
        send_worker(srv, w, &msg);
    }
}

static void on_ready(server *srv, const hpo_peer *peer, const hpo_msg_ready *ready)
{
    char err[HPO_ERR_MAX];
    worker_slot *w = known_worker(srv, peer, ready->worker_id, ready->token, "ready");
    if (w == NULL)
        return;
    if (srv->restarting) {
        /* study_done would make the worker exit; the study goes on with
         * the next hpod. */
        hpo_msg msg;
        hpo_msg_init(&msg, HPO_MSG_NO_WORK);
        msg.no_work.retry_ms = NO_WORK_RETRY_MS;
        send_worker(srv, w, &msg);
        return;
    }

    hpo_scheduler *sched = srv->parts->scheduler;
    int64_t abandoned = hpo_scheduler_worker_trial(sched, w->id);
    if (abandoned > 0) {
        hpo_log_warn("worker w%" PRId64 " asked for work while holding trial %"
                     PRId64, w->id, abandoned);
        if (hpo_scheduler_worker_lost(sched, w->id, "its worker asked for a new "
                                      "trial", false, err, sizeof err) != 0)
            log_failure("re-queueing an abandoned trial", err);
    }

    hand_out(srv, w);
}

/* Replies to worker w's ready with a trial, no_work or study_done, or not
 * yet when w waits for a GP fit. */
static void hand_out(server *srv, worker_slot *w)
{
    char err[HPO_ERR_MAX];
    hpo_scheduler *sched = srv->parts->scheduler;
    if (wait_for_fit(srv, w))
        return;

    /* The tuner never fits here: a proposal that needs a fit while none
     * can run takes a quasi-random design point. */
    hpo_next_kind kind = HPO_NEXT_DONE;
    hpo_assignment a;
    hpo_tuner_bayes_set_design_only(srv->parts->tuner, true);
    int rc = hpo_scheduler_next(sched, w->id, &kind, &a, err, sizeof err);
    hpo_tuner_bayes_set_design_only(srv->parts->tuner, false);
    if (rc != 0) {
        log_failure("choosing the next trial", err);
        kind = HPO_NEXT_WAIT;
    }

    hpo_msg msg;
    switch (kind) {
    case HPO_NEXT_TRIAL:
        send_trial(srv, w, &a);
        hpo_assignment_clear(&a);
        return;
    case HPO_NEXT_WAIT:
        hpo_msg_init(&msg, HPO_MSG_NO_WORK);
        msg.no_work.retry_ms = NO_WORK_RETRY_MS;
        break;
    case HPO_NEXT_DONE:
        hpo_msg_init(&msg, HPO_MSG_STUDY_DONE);
        w->done_sent = true;
        hpo_log_info("worker w%" PRId64 " sent study_done", w->id);
        break;
    }
    send_worker(srv, w, &msg);
}

static void on_progress(server *srv, const hpo_peer *peer, const hpo_msg_progress *p)
{
    char err[HPO_ERR_MAX];
    worker_slot *w = known_worker(srv, peer, p->worker_id, p->token, "progress");
    if (w == NULL)
        return;
    if (srv->restarting) {
        /* The trial was queued again for the next hpod, which the worker
         * will ask to keep it; stop_trial here would throw its work away. */
        hpo_log_debug("progress of trial %" PRId64 " not stored: hpod is "
                      "stopping", p->trial_id);
        return;
    }

    hpo_scheduler *sched = srv->parts->scheduler;
    if (hpo_scheduler_trial_worker(sched, p->trial_id) != w->id) {
        int adopted = hpo_scheduler_adopt(sched, p->trial_id, w->id, err, sizeof err);
        if (adopted <= 0) {
            send_stop_trial(srv, w, p->trial_id, "the trial is not assigned to "
                            "this worker");
            return;
        }
    }

    cJSON *metrics = cJSON_CreateObject();
    cJSON_AddNumberToObject(metrics, "epochs", p->epochs);
    cJSON_AddNumberToObject(metrics, "loss", p->loss);
    cJSON_AddNumberToObject(metrics, "accuracy", p->accuracy);
    if (isfinite(p->val_loss))
        cJSON_AddNumberToObject(metrics, "val_loss", p->val_loss);
    if (isfinite(p->val_accuracy))
        cJSON_AddNumberToObject(metrics, "val_accuracy", p->val_accuracy);
    cJSON_AddNumberToObject(metrics, "seconds", p->seconds);
    cJSON_AddNumberToObject(metrics, "images_per_second", p->images_per_second);
    if (hpo_scheduler_progress(sched, p->trial_id, p->epoch, metrics, err,
                               sizeof err) != 0)
        log_failure("storing progress", err);
    cJSON_Delete(metrics);

    hpo_log_info("trial %" PRId64 " epoch %d/%d on worker w%" PRId64 ": loss "
                 "%.4f, accuracy %.4f, val_loss %.4f, val_accuracy %.4f, %.1f s",
                 p->trial_id, p->epoch, p->epochs, w->id, p->loss, p->accuracy,
                 p->val_loss, p->val_accuracy, p->seconds);
}

static void on_result(server *srv, const hpo_peer *peer, const hpo_msg_result *res)
{
    char err[HPO_ERR_MAX];
    worker_slot *w = known_worker(srv, peer, res->worker_id, res->token, "result");
    if (w == NULL)
        return;

    hpo_trial_report report = {
        .trial_id = res->trial_id,
        .worker_id = w->id,
        .outcome = res->status == HPO_TRIAL_OK       ? HPO_OUTCOME_OK
                   : res->status == HPO_TRIAL_FAILED ? HPO_OUTCOME_FAILED
                                                     : HPO_OUTCOME_INTERRUPTED,
        .metrics = res->metrics,
        .epochs_run = res->epochs_run,
        .seconds = res->wall_seconds,
        .error = res->error,
    };
    hpo_report_outcome outcome;
    int64_t other = 0;
    if (hpo_scheduler_report(srv->parts->scheduler, &report, &outcome, &other,
                             err, sizeof err) != 0) {
        /* No acknowledgment: the worker keeps the result and sends it again. */
        log_failure("storing a result", err);
        send_error(srv->workers_sock, peer, HPO_PROTO_INTERNAL,
                   "the coordinator could not store the result; it will be "
                   "requested again");
        return;
    }
    if (outcome == HPO_REPORT_DUPLICATE)
        hpo_log_info("result of trial %" PRId64 " from worker w%" PRId64
                     " ignored: the trial had finished already",
                     res->trial_id, w->id);
    else if (outcome == HPO_REPORT_UNKNOWN)
        hpo_log_warn("result of trial %" PRId64 " from worker w%" PRId64
                     " ignored: no such trial in this study",
                     res->trial_id, w->id);

    hpo_msg ack;
    hpo_msg_init(&ack, HPO_MSG_RESULT_ACK);
    ack.result_ack.trial_id = res->trial_id;
    send_worker(srv, w, &ack);

    worker_slot *second = other > 0 ? hpo_registry_find(srv, other) : NULL;
    if (second != NULL)
        send_stop_trial(srv, second, res->trial_id, "another worker finished it");
}

/* Drops a worker that exits cleanly, so that `hpoctl status` stops listing
 * it at once. A trial still assigned to it is queued again without
 * counting an attempt. No reply, because the worker is closing its
 * socket. */
static void on_leave(server *srv, const hpo_peer *peer, const hpo_msg_leave *leave)
{
    char err[HPO_ERR_MAX];
    worker_slot *w = hpo_registry_find(srv, hpo_registry_parse_id(leave->worker_id));
    if (w == NULL) {
        hpo_log_debug("leave from worker %s ignored: it is not registered",
                      leave->worker_id);
        return;
    }
    if (!hpo_registry_credentials_match(w, peer, leave->token)) {
        reject_claim(srv, w, peer, leave->token, "leave");
        return;
    }

    const char *reason = leave->reason[0] ? leave->reason : "no reason given";
    w->connected = false;
    hpo_log_info("worker w%" PRId64 " (%s, pid %" PRId64 ") left: %s", w->id, w->host,
                 w->pid, reason);
    if (hpo_storage_event(srv->parts->storage, w->id, 0, "left", reason, err,
                          sizeof err) != 0)
        log_failure("recording that a worker left", err);
    if (hpo_scheduler_worker_lost(srv->parts->scheduler, w->id, "its worker left",
                                  false, err, sizeof err) != 0)
        log_failure("re-queueing the trial of a worker that left", err);
}

static void on_worker_message(server *srv, const hpo_peer *peer, const hpo_msg *msg)
{
    switch (msg->type) {
    case HPO_MSG_REGISTER:
        on_register(srv, peer, &msg->reg);
        break;
    case HPO_MSG_READY:
        on_ready(srv, peer, &msg->ready);
        break;
    case HPO_MSG_PROGRESS:
        on_progress(srv, peer, &msg->progress);
        break;
    case HPO_MSG_HEARTBEAT:
        known_worker(srv, peer, msg->heartbeat.worker_id, msg->heartbeat.token,
                     "heartbeat");
        break;
    case HPO_MSG_RESULT:
        on_result(srv, peer, &msg->result);
        break;
    case HPO_MSG_LEAVE:
        on_leave(srv, peer, &msg->leave);
        break;
    case HPO_MSG_ERROR:
        hpo_log_limited("worker_error", 5, HPO_LOG_WARN, "a worker reported "
                        "error %s: %s", hpo_proto_status_name(msg->error.code),
                        msg->error.message);
        break;
    default: {
        char text[128];
        snprintf(text, sizeof text, "%s is not a message for the workers' "
                 "endpoint", hpo_msg_type_name(msg->type));
        hpo_log_limited("worker_unexpected", 5, HPO_LOG_WARN, "%s", text);
        send_error(srv->workers_sock, peer, HPO_PROTO_UNEXPECTED, text);
        break;
    }
    }
}

/* --- control messages --------------------------------------------------- */

static void on_stop_query(server *srv, const hpo_peer *peer)
{
    char err[HPO_ERR_MAX];
    hpo_log_info("stop requested by hpoctl");
    if (hpo_scheduler_state(srv->parts->scheduler) == HPO_STUDY_RUNNING &&
        hpo_scheduler_stop(srv->parts->scheduler, "stopped by hpoctl",
                           err, sizeof err) != 0)
        log_failure("stopping the study", err);
    srv->stop_by_client = true;

    hpo_msg reply;
    hpo_msg_init(&reply, HPO_MSG_REPLY);
    reply.reply.command = HPO_QUERY_STOP;
    reply.reply.data = cJSON_CreateObject();
    cJSON_AddStringToObject(reply.reply.data, "state",
                            hpo_study_state_name(hpo_scheduler_state(srv->parts->scheduler)));
    send_to(srv->control_sock, peer, &reply, "hpoctl");
    hpo_msg_clear(&reply);
}

/* With CURVE, commands that change the study need a key with the admin
 * role; the ZAP handler put the role into each message's User-Id. Without
 * CURVE the control endpoint is local or --insecure, and all may. */
static bool command_allowed(server *srv, const hpo_peer *peer, hpo_query_command command)
{
    if (srv->options->curve == NULL || command != HPO_QUERY_STOP ||
        strcmp(peer->user_id, hpo_auth_role_name(HPO_ROLE_ADMIN)) == 0)
        return true;

    char text[160];
    snprintf(text, sizeof text, "%s changes the study and needs a key with the "
             "admin role; this client's key has the role \"%s\"",
             hpo_query_command_name(command), peer->user_id);
    hpo_log_limited("control_denied", 5, HPO_LOG_WARN, "query rejected: %s", text);
    send_error(srv->control_sock, peer, HPO_PROTO_PERMISSION_DENIED, text);
    return false;
}

static void on_query(server *srv, const hpo_peer *peer, const hpo_msg_query *query)
{
    if (!command_allowed(srv, peer, query->command))
        return;
    if (query->command == HPO_QUERY_STOP) {
        on_stop_query(srv, peer);
        return;
    }

    cJSON *workers = hpo_registry_to_json(srv, now_ms());
    hpo_control_context ctx = {
        .study = srv->parts->study,
        .storage = srv->parts->storage,
        .source = "hpod",
        .tuner = hpo_tuner_name(srv->parts->tuner),
        .workers = workers,
    };
    cJSON *data = NULL;
    hpo_proto_status code = HPO_PROTO_INTERNAL;
    char err[HPO_ERR_MAX];
    int rc = hpo_control_answer(&ctx, query->command, query->args, &data, &code,
                                err, sizeof err);
    cJSON_Delete(workers);
    if (rc != 0) {
        hpo_log_warn("query %s failed: %s", hpo_query_command_name(query->command), err);
        send_error(srv->control_sock, peer, code, err);
        return;
    }

    hpo_msg reply;
    hpo_msg_init(&reply, HPO_MSG_REPLY);
    reply.reply.command = query->command;
    reply.reply.data = data;
    hpo_log_debug("query %s answered", hpo_query_command_name(query->command));
    send_to(srv->control_sock, peer, &reply, "hpoctl");
    hpo_msg_clear(&reply);
}

static void on_control_message(server *srv, const hpo_peer *peer, const hpo_msg *msg)
{
    if (msg->type == HPO_MSG_QUERY) {
        on_query(srv, peer, &msg->query);
        return;
    }
    char text[128];
    snprintf(text, sizeof text, "%s is not a message for the control endpoint; "
             "send query", hpo_msg_type_name(msg->type));
    hpo_log_limited("control_unexpected", 5, HPO_LOG_WARN, "%s", text);
    send_error(srv->control_sock, peer, HPO_PROTO_UNEXPECTED, text);
}

/* --- loop --------------------------------------------------------------- */

typedef void (*message_handler)(server *srv, const hpo_peer *peer,
                                const hpo_msg *msg);

/* Reads up to DRAIN_BURST waiting messages from sock. Invalid messages get
 * an error reply and a rate-limited log line. Returns -1 when the socket
 * fails. */
static int drain(server *srv, void *sock, const char *label,
                 message_handler handle, char *err, size_t errlen)
{
    for (int i = 0; i < DRAIN_BURST; i++) {
        hpo_peer peer;
        hpo_msg msg;
        hpo_proto_status status = HPO_PROTO_OK;
        char why[HPO_ERR_MAX];
        hpo_recv_result rc = hpo_transport_recv_msg(sock, &peer, 0, &msg, &status,
                                                    why, sizeof why);
        switch (rc) {
        case HPO_RECV_OK:
            handle(srv, &peer, &msg);
            hpo_msg_clear(&msg);
            break;
        case HPO_RECV_AGAIN:
            return 0;
        case HPO_RECV_INVALID: {
            char who[64];
            hpo_log_limited(label, 5, HPO_LOG_WARN, "invalid message on the %s "
                            "endpoint from %s: %s (%s)", label,
                            hpo_peer_format(&peer, who, sizeof who), why,
                            hpo_proto_status_name(status));
            if (status != HPO_PROTO_INVALID_ENVELOPE)
                send_error(sock, &peer, status, why);
            break;
        }
        case HPO_RECV_FAILED:
            return hpo_error(err, errlen, "receiving on the %s endpoint failed: %s",
                             label, why);
        }
    }
    return 0;
}

static void check_lost_workers(server *srv)
{
    int64_t now = now_ms();
    for (size_t i = 0; i < srv->n_workers; i++) {
        worker_slot *w = &srv->workers[i];
        if (w->connected && now - w->last_seen_ms > srv->options->worker_timeout_ms) {
            char reason[128];
            snprintf(reason, sizeof reason, "no message for %d ms (%d heartbeat "
                     "intervals of %d ms)", srv->options->worker_timeout_ms,
                     srv->options->worker_timeout_ms / srv->options->heartbeat_ms,
                     srv->options->heartbeat_ms);
            lose_worker(srv, w, reason, true);
        }
    }
}

/* Logs the final line of a study. Workers learn of the end from the
 * study_done answer to their next ready; those that do not ask before
 * end_deadline_ms are sent shutdown (see loop_should_end()). */
static void announce_end(server *srv)
{
    const hpo_scheduler *sched = srv->parts->scheduler;
    char err[HPO_ERR_MAX];
    int counts[HPO_TRIAL_STATE_COUNT] = {0};
    int counted = 0;
    if (hpo_storage_trial_counts(srv->parts->storage, counts, &counted, err,
                                 sizeof err) != 0)
        log_failure("counting trials", err);

    hpo_log_info("study %s %s (%s): %d trials counted, %d ok, %d failed, %d "
                 "queued", hpo_study_name(srv->parts->study),
                 hpo_study_state_name(hpo_scheduler_state(sched)),
                 hpo_scheduler_state_reason(sched), counted,
                 counts[HPO_TRIAL_STATE_OK], counts[HPO_TRIAL_STATE_FAILED],
                 counts[HPO_TRIAL_STATE_QUEUED]);
    srv->end_announced = true;
    srv->end_deadline_ms = now_ms() + END_WAIT_MS;
}

/* True when every connected worker was sent study_done or shutdown. */
static bool all_workers_done(const server *srv)
{
    for (size_t i = 0; i < srv->n_workers; i++) {
        if (srv->workers[i].connected && !srv->workers[i].done_sent)
            return false;
    }
    return true;
}

static void shutdown_workers(server *srv)
{
    char reason[HPO_REASON_MAX + 1];
    snprintf(reason, sizeof reason, "study %s",
             hpo_study_state_name(hpo_scheduler_state(srv->parts->scheduler)));
    broadcast_shutdown(srv, reason);
}

static int write_ready_file(const server *srv, char *err, size_t errlen)
{
    char workers[256], control[256];
    if (hpo_transport_last_endpoint(srv->workers_sock, workers, sizeof workers,
                                    err, errlen) != 0 ||
        hpo_transport_last_endpoint(srv->control_sock, control, sizeof control,
                                    err, errlen) != 0)
        return -1;
    hpo_log_info("listening for workers on %s and for hpoctl on %s", workers, control);

    const char *path = srv->options->ready_file;
    if (path == NULL)
        return 0;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *file = fopen(tmp, "w");
    if (file == NULL)
        return hpo_error(err, errlen, "cannot write ready file %s: %s", tmp,
                         strerror(errno));
    fprintf(file, "workers=%s\ncontrol=%s\n", workers, control);
    /* Renaming makes the file appear complete or not at all. */
    if (fclose(file) != 0 || rename(tmp, path) != 0)
        return hpo_error(err, errlen, "cannot write ready file %s: %s", path,
                         strerror(errno));
    return 0;
}

/* Binds a ROUTER socket, as a CURVE server in ZAP domain `domain` when
 * CURVE is on, and watches its handshakes. */
static void *bind_endpoint(server *srv, const char *endpoint, const char *domain,
                           hpo_curve_monitor **monitor, char *err, size_t errlen)
{
    if (srv->options->curve == NULL)
        return hpo_transport_router_bind(srv->ctx, endpoint, err, errlen);

    hpo_curve_settings curve = {.server = true, .own = *srv->options->curve,
                                .zap_domain = domain};
    void *sock = hpo_transport_router_bind_curve(srv->ctx, endpoint, &curve, err, errlen);
    hpo_curve_keypair_clear(&curve.own);
    if (sock == NULL)
        return NULL;
    char label[300];
    snprintf(label, sizeof label, "%s endpoint", domain);
    *monitor = hpo_curve_monitor_start(srv->ctx, sock, label, err, errlen);
    if (*monitor == NULL)
        hpo_transport_close(&sock);
    return sock;
}

static int open_sockets(server *srv, char *err, size_t errlen)
{
    srv->ctx = zmq_ctx_new();
    if (srv->ctx == NULL)
        return hpo_error(err, errlen, "creating the ZeroMQ context failed: %s",
                         zmq_strerror(errno));
    /* The ZAP handler must be bound before the sockets it guards. */
    if (srv->options->curve != NULL &&
        hpo_zap_handler_start(srv->ctx, srv->options->authorized_keys, &srv->zap,
                              err, errlen) != 0)
        return -1;
    srv->workers_sock = bind_endpoint(srv, srv->options->workers_endpoint,
                                      HPO_ZAP_DOMAIN_WORKERS, &srv->workers_monitor,
                                      err, errlen);
    if (srv->workers_sock == NULL)
        return -1;
    srv->control_sock = bind_endpoint(srv, srv->options->control_endpoint,
                                      HPO_ZAP_DOMAIN_CONTROL, &srv->control_monitor,
                                      err, errlen);
    if (srv->control_sock == NULL)
        return -1;
    if (srv->options->curve != NULL)
        hpo_log_info("CURVE on both endpoints: server public key %s, %zu authorized "
                     "keys", srv->options->curve->public_key,
                     hpo_authorized_keys_count(srv->options->authorized_keys));
    return write_ready_file(srv, err, errlen);
}

static void close_sockets(server *srv)
{
    hpo_curve_monitor_stop(&srv->workers_monitor);
    hpo_curve_monitor_stop(&srv->control_monitor);
    hpo_transport_close(&srv->workers_sock);
    hpo_transport_close(&srv->control_sock);
    hpo_zap_handler_stop(&srv->zap);
    if (srv->ctx != NULL)
        zmq_ctx_term(srv->ctx);
    srv->ctx = NULL;
}

/* Stops on SIGINT or SIGTERM. No trial is handed out any more, running
 * trials are queued again, and every write is committed before this
 * returns. The workers of a running study receive the restart notice, so
 * they keep training and deliver their results to the next hpod; those of
 * a study that had ended receive a plain shutdown. The loop then answers
 * for CLOSE_GRACE_MS more, storing results that are already on their way. */
static void stop_on_signal(server *srv)
{
    char err[HPO_ERR_MAX];
    hpo_scheduler *sched = srv->parts->scheduler;
    srv->stop_by_signal = true;
    srv->close_at_ms = now_ms() + CLOSE_GRACE_MS;
    if (hpo_scheduler_state(sched) != HPO_STUDY_RUNNING) {
        hpo_log_info("stop signal received; the study had ended, so the "
                     "workers are told to shut down");
        shutdown_workers(srv);
        return;
    }

    int running = hpo_scheduler_running_count(sched);
    srv->restarting = true;
    if (hpo_scheduler_stop(sched, "stopped by a signal", err, sizeof err) != 0)
        log_failure("stopping the study", err);
    hpo_log_info("stop signal received: %d running trials queued again; "
                 "workers keep them and wait for the next hpod", running);
    for (size_t i = 0; i < srv->n_workers; i++) {
        worker_slot *w = &srv->workers[i];
        if (!w->connected || w->done_sent)
            continue;
        hpo_log_info("telling worker w%" PRId64 " that the coordinator restarts", w->id);
        send_restart_notice(srv, &w->peer);
        w->done_sent = true;
    }
}

/* Decides whether the loop ends now. */
static bool loop_should_end(server *srv)
{
    hpo_scheduler *sched = srv->parts->scheduler;

    if (stop_signal && !srv->stop_by_signal) {
        stop_on_signal(srv);
        return false;
    }
    if (hpo_scheduler_state(sched) != HPO_STUDY_RUNNING && !srv->end_announced)
        announce_end(srv);
    if (srv->close_at_ms > 0)
        return now_ms() >= srv->close_at_ms;
    if (srv->stop_by_client) {
        shutdown_workers(srv);
        srv->close_at_ms = now_ms() + CLOSE_GRACE_MS;
        return false;
    }
    if (!srv->end_announced || srv->options->linger)
        return false;

    /* A study that ended waits a moment for idle workers to ask for work
     * and receive study_done, then sends shutdown to the others. */
    if (!all_workers_done(srv)) {
        if (now_ms() < srv->end_deadline_ms)
            return false;
        shutdown_workers(srv);
    }
    srv->close_at_ms = now_ms() + CLOSE_GRACE_MS;
    return false;
}

int hpo_server_run(const hpo_server_options *options,
                   const hpo_server_parts *parts, char *err, size_t errlen)
{
    server srv = {.options = options, .parts = parts};
    int result = 0;

    stop_signal = 0;
    if (open_sockets(&srv, err, errlen) != 0) {
        close_sockets(&srv);
        return -1;
    }

    if (hpo_proposer_start(srv.ctx, &srv.proposer, err, errlen) != 0) {
        close_sockets(&srv);
        return -1;
    }

    while (!loop_should_end(&srv)) {
        zmq_pollitem_t items[3] = {
            {.socket = srv.workers_sock, .events = ZMQ_POLLIN},
            {.socket = srv.control_sock, .events = ZMQ_POLLIN},
            {.socket = hpo_proposer_socket(srv.proposer), .events = ZMQ_POLLIN},
        };
        if (zmq_poll(items, 3, POLL_MS) < 0) {
            if (errno == EINTR)
                continue;
            result = hpo_error(err, errlen, "zmq_poll failed: %s", zmq_strerror(errno));
            break;
        }
        if ((items[0].revents & ZMQ_POLLIN) &&
            drain(&srv, srv.workers_sock, "workers", on_worker_message, err, errlen) != 0) {
            result = -1;
            break;
        }
        if ((items[1].revents & ZMQ_POLLIN) &&
            drain(&srv, srv.control_sock, "control", on_control_message, err, errlen) != 0) {
            result = -1;
            break;
        }
        if (items[2].revents & ZMQ_POLLIN)
            on_fit_done(&srv);
        expire_fit_waits(&srv);
        check_lost_workers(&srv);
        hpo_curve_monitor_poll(srv.workers_monitor, true);
        hpo_curve_monitor_poll(srv.control_monitor, true);
    }

    hpo_log_info("hpod stopping with %d workers connected",
                 hpo_registry_connected_count(&srv));
    hpo_proposer_stop(&srv.proposer);
    close_sockets(&srv);
    free(srv.workers);
    free(srv.fit_waiters);
    return result;
}
