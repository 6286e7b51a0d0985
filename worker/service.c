/* hpo-worker's service mode: the protocol loop that registers with the
 * coordinator, requests trials, trains them on a second thread, and
 * delivers each result until the coordinator acknowledges it. */
#include "hpo/worker_service.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>
#include <zmq.h>

#include "hpo/cifar10.h"
#include "hpo/error.h"
#include "hpo/log.h"
#include "hpo/protocol.h"
#include "hpo/transport.h"
#include "service_trial.h"

/* Maximum wait in zmq_poll, so that a stop request from a signal that
 * landed on another thread is noticed within this time. */
#define POLL_MAX_MS 200

/* Incoming messages handled per loop iteration before the loop runs its
 * timers again. */
#define RECV_BURST 64

/* Retry interval for a register that could not be sent because the
 * connection to the coordinator is not up yet. */
#define REGISTER_RETRY_MS 200

/* Start of the `shutdown` reason that hpod sends when a signal stops it
 * while the study still runs (docs/protocol.md). Such a shutdown means
 * "the coordinator restarts": the worker keeps its trial and its results
 * and registers with the next coordinator instead of exiting. */
#define RESTART_REASON "coordinator restarting"

/* Wait after that notice before the first register: longer than the
 * 500 ms for which the stopping hpod keeps its socket open, so that the
 * register reaches the next coordinator rather than the stopping one. */
#define RESTART_WAIT_MS 1000

/* Wait before registering again after the coordinator rejected a register
 * with worker_id_taken or too_many_registrations. worker_id_taken means
 * that an earlier registration of this worker, whose token it never
 * received, is still live there. It expires after the coordinator's
 * --lost-after heartbeats. */
#define REGISTER_REJECTED_RETRY_MS 1000

/* Number of stop requests: the first stops the trial after its epoch, the
 * second makes the service exit without waiting for the epoch to end. */
static volatile sig_atomic_t stop_requests;

/* What the service waits for from the coordinator, if anything. */
typedef enum {
    AWAIT_NONE = 0,
    AWAIT_REGISTERED, /* after register */
    AWAIT_WORK,       /* after ready: trial, no_work or study_done */
    AWAIT_ACK,        /* after result: result_ack */
} await_kind;

typedef struct {
    const hpo_worker_service_options *opt;
    void *ctx;
    void *sock;
    hpo_curve_monitor *monitor; /* logs failed handshakes */
    char host[HPO_HOST_MAX + 1];
    char name[HPO_NAME_MAX + 1];
    int threads;

    bool registered;
    char worker_id[HPO_NAME_MAX + 1];
    char token[HPO_TOKEN_MAX + 1]; /* session token of the last registration;
                                      kept after it ends, so that the next
                                      register may replace it */
    int heartbeat_ms;
    await_kind awaiting;
    double awaiting_since;
    double retry_at;       /* earliest time for the next ready */
    double register_at;    /* earliest time for the next register while
                              unregistered and no register is outstanding */
    double unsent_since;   /* start of a run of registers that could not be
                              sent for lack of a connection; 0 otherwise */
    double last_heartbeat;

    hpo_service_trial *trial;
    hpo_service_data data;

    /* Results kept until the coordinator acknowledges them; each owns its
     * metrics. */
    hpo_msg_result pending[HPO_PENDING_MAX];
    int n_pending;
    int acked;

    bool exiting;
    char exit_reason[HPO_REASON_MAX + 1]; /* sent in `leave` */
    double exit_deadline;  /* 0 until the service waits for its last acks */
    int failed;            /* set when the socket fails or the coordinator
                              rejects the worker: return -1 */
    char rejection[HPO_MESSAGE_MAX + 1]; /* the coordinator's reason when it
                              rejected the worker; "" otherwise */
} service;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void hpo_worker_service_options_default(hpo_worker_service_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->reply_timeout_ms = 5000;
    opt->heartbeat_ms = HPO_HEARTBEAT_MS_DEFAULT;
}

void hpo_worker_service_request_stop(void)
{
    if (stop_requests < 2)
        stop_requests++;
}

/* Connects a new socket to the coordinator, over CURVE when the options
 * give keys, and watches its handshakes, because a rejected key or a
 * missing one otherwise looks like a coordinator that is down. */
static void *connect_coordinator(service *s, char *err, size_t errlen)
{
    hpo_curve_monitor_stop(&s->monitor);
    void *sock = hpo_transport_dealer_connect_curve(s->ctx, s->opt->endpoint, true,
                                                    s->opt->curve, err, errlen);
    if (sock == NULL)
        return sock;
    s->monitor = hpo_curve_monitor_start(s->ctx, sock, "connection to the coordinator",
                                         err, errlen);
    if (s->monitor == NULL)
        hpo_transport_close(&sock);
    return sock;
}

/* Sends msg to the coordinator. A failure is logged, and the protocol's
 * timeouts recover from the lost message. */
static int send_msg(service *s, const hpo_msg *msg)
{
    char err[HPO_ERR_MAX];
    if (hpo_transport_send_msg(s->sock, NULL, msg, err, sizeof err) == 0)
        return 0;
    hpo_log_limited("worker-send", 5, HPO_LOG_WARN, "sending %s to %s failed: %s",
                    hpo_msg_type_name(msg->type), s->opt->endpoint, err);
    return -1;
}

static void expect_reply(service *s, await_kind kind, double now)
{
    s->awaiting = kind;
    s->awaiting_since = now;
}

/* Replaces the socket to the coordinator with a new one, dropping the
 * messages that the old one still queues. libzmq reconnects a socket by
 * itself. Even so, a worker whose coordinator was killed just after it
 * registered once stayed without a connection for more than 30 s (libzmq
 * 4.3.4, IPC, busy machine), and a new socket connects afresh. It also
 * drops a TCP connection of the socket to itself. */
static void reopen_socket(service *s, const char *why)
{
    char err[HPO_ERR_MAX];
    /* Warned, not just logged: a mistyped endpoint or port shows up here
     * first, and otherwise looks like waiting for a busy coordinator. */
    hpo_log_warn("opening a new connection to %s: %s; check the endpoint if this repeats",
                 s->opt->endpoint, why);
    int linger = 0;
    zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof linger);
    hpo_transport_close(&s->sock);
    s->sock = connect_coordinator(s, err, sizeof err);
    if (s->sock == NULL) {
        hpo_log_error("reconnecting to %s failed: %s", s->opt->endpoint, err);
        s->failed = 1;
    }
}

static void send_register(service *s, double now)
{
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_REGISTER);
    snprintf(msg.reg.host, sizeof msg.reg.host, "%s", s->host);
    msg.reg.pid = getpid();
    msg.reg.threads = s->threads;
    msg.reg.protocol = HPO_PROTO_VERSION;
    snprintf(msg.reg.name, sizeof msg.reg.name, "%s", s->name);
    msg.reg.kind = s->opt->objective != NULL ? HPO_WORKER_KIND_OBJECTIVE
                                             : HPO_WORKER_KIND_CIFAR10;
    snprintf(msg.reg.token, sizeof msg.reg.token, "%s", s->token);
    msg.reg.running_trial = s->trial != NULL ? hpo_service_trial_id(s->trial) : -1;
    msg.reg.n_pending = s->n_pending;
    for (int i = 0; i < s->n_pending; i++)
        msg.reg.pending_results[i] = s->pending[i].trial_id;

    s->registered = false;

    /* Until the connection is up, ZMQ_IMMEDIATE makes the send fail; try
     * again soon instead of after a whole reply timeout. A connection that
     * stays down for a reply timeout gets a new socket, in case libzmq's
     * own reconnection is stuck. */
    char err[HPO_ERR_MAX];
    if (hpo_transport_send_msg(s->sock, NULL, &msg, err, sizeof err) != 0) {
        hpo_log_limited("worker-register", 1, HPO_LOG_INFO,
                        "waiting for the coordinator at %s: %s", s->opt->endpoint, err);
        s->awaiting = AWAIT_NONE;
        s->register_at = now + REGISTER_RETRY_MS / 1000.0;
        if (s->unsent_since == 0)
            s->unsent_since = now;
        if (now - s->unsent_since >= s->opt->reply_timeout_ms / 1000.0) {
            reopen_socket(s, "no connection within the reply timeout");
            s->unsent_since = now;
        }
        return;
    }
    s->unsent_since = 0;
    expect_reply(s, AWAIT_REGISTERED, now);
    hpo_log_info("registering with %s as %s (running trial %lld, %d results pending)",
                 s->opt->endpoint, s->name, (long long)msg.reg.running_trial, s->n_pending);
}

static void send_pending(service *s, double now)
{
    for (int i = 0; i < s->n_pending; i++) {
        hpo_msg msg;
        hpo_msg_init(&msg, HPO_MSG_RESULT);
        msg.result = s->pending[i];
        snprintf(msg.result.worker_id, sizeof msg.result.worker_id, "%s", s->worker_id);
        snprintf(msg.result.token, sizeof msg.result.token, "%s", s->token);
        send_msg(s, &msg);
        hpo_log_info("result of trial %lld sent: %s after %d epochs in %.1f s%s%s",
                     (long long)msg.result.trial_id, hpo_trial_status_name(msg.result.status),
                     msg.result.epochs_run, msg.result.wall_seconds,
                     msg.result.error[0] ? ": " : "", msg.result.error);
    }
    expect_reply(s, AWAIT_ACK, now);
}

/* Queues a result for delivery; it is sent once the service is
 * registered. Takes ownership of metrics. */
static void add_pending(service *s, int64_t trial_id, const hpo_trial_outcome *outcome,
                        double now)
{
    if (s->n_pending == HPO_PENDING_MAX) {
        hpo_log_error("result of trial %lld dropped: %d results already wait for an ack",
                      (long long)trial_id, HPO_PENDING_MAX);
        cJSON_Delete(outcome->metrics);
        return;
    }

    hpo_msg_result *r = &s->pending[s->n_pending++];
    memset(r, 0, sizeof *r);
    r->trial_id = trial_id;
    r->status = outcome->status;
    r->metrics = outcome->metrics;
    r->epochs_run = outcome->epochs_run;
    r->wall_seconds = outcome->wall_seconds;
    snprintf(r->error, sizeof r->error, "%s", outcome->error);

    if (s->registered && s->awaiting != AWAIT_REGISTERED)
        send_pending(s, now);
}

/* Replies to a trial the worker cannot take with an interrupted result,
 * so that the coordinator queues it again. */
static void reject_trial(service *s, int64_t trial_id, const char *why, double now)
{
    hpo_trial_outcome outcome = {.status = HPO_TRIAL_INTERRUPTED,
                                 .metrics = cJSON_CreateObject()};
    snprintf(outcome.error, sizeof outcome.error, "%s", why);
    hpo_log_warn("trial %lld rejected: %s", (long long)trial_id, why);
    add_pending(s, trial_id, &outcome, now);
}

static void begin_exit(service *s, const char *reason)
{
    if (!s->exiting) {
        hpo_log_info("stopping: %s", reason);
        snprintf(s->exit_reason, sizeof s->exit_reason, "%s", reason);
    }
    s->exiting = true;
    if (s->trial != NULL && !hpo_service_trial_stop_requested(s->trial)) {
        hpo_log_info("trial %lld: stopping after the current epoch",
                     (long long)hpo_service_trial_id(s->trial));
        hpo_service_trial_stop(s->trial);
    }
}

static void handle_trial(service *s, const hpo_msg_trial *t, double now)
{
    if (s->awaiting == AWAIT_WORK)
        s->awaiting = AWAIT_NONE;
    if (s->trial != NULL) {
        char why[128];
        snprintf(why, sizeof why, "the worker is busy with trial %lld",
                 (long long)hpo_service_trial_id(s->trial));
        reject_trial(s, t->trial_id, why, now);
        return;
    }
    if (s->exiting) {
        reject_trial(s, t->trial_id, "the worker is shutting down", now);
        return;
    }

    char err[HPO_ERR_MAX];
    s->trial = hpo_service_trial_start(t, &s->data, s->threads, err, sizeof err);
    if (s->trial == NULL) {
        hpo_log_error("%s", err);
        hpo_trial_outcome outcome = {.status = HPO_TRIAL_FAILED,
                                     .metrics = cJSON_CreateObject()};
        snprintf(outcome.error, sizeof outcome.error, "%s", err);
        add_pending(s, t->trial_id, &outcome, now);
        return;
    }
    hpo_log_info("trial %lld received: %d epochs, %d training and %d validation images, "
                 "batch size %d, seed %llu", (long long)t->trial_id, t->budget.epochs,
                 t->budget.train_size, t->budget.val_size, t->budget.batch_size,
                 (unsigned long long)t->seed);
}

static void handle_ack(service *s, int64_t trial_id)
{
    for (int i = 0; i < s->n_pending; i++) {
        if (s->pending[i].trial_id != trial_id)
            continue;
        /* The end-to-end tests read this line as "the coordinator has
         * stored this result". */
        hpo_log_info("result of trial %lld (%s) acknowledged", (long long)trial_id,
                     hpo_trial_status_name(s->pending[i].status));
        cJSON_Delete(s->pending[i].metrics);
        memmove(&s->pending[i], &s->pending[i + 1],
                (size_t)(s->n_pending - i - 1) * sizeof s->pending[0]);
        s->n_pending--;
        s->acked++;
        if (s->n_pending == 0 && s->awaiting == AWAIT_ACK)
            s->awaiting = AWAIT_NONE;
        if (s->opt->max_trials > 0 && s->acked >= s->opt->max_trials)
            begin_exit(s, "the trial limit is reached");
        return;
    }
    hpo_log_debug("ack for trial %lld, which has no pending result", (long long)trial_id);
}

static void handle_error(service *s, const hpo_msg_error *e, double now)
{
    hpo_log_limited("worker-error-reply", 5, HPO_LOG_WARN, "coordinator replied %s: %s",
                    hpo_proto_status_name(e->code), e->message);
    if (e->code == HPO_PROTO_UNKNOWN_WORKER) {
        send_register(s, now);
    } else if (e->code == HPO_PROTO_WORKER_ID_TAKEN ||
               e->code == HPO_PROTO_TOO_MANY_REGISTRATIONS) {
        s->registered = false;
        s->awaiting = AWAIT_NONE;
        s->register_at = now + REGISTER_REJECTED_RETRY_MS / 1000.0;
        hpo_log_limited("worker-register-retry", 1, HPO_LOG_INFO,
                        "registering again in %d ms", REGISTER_REJECTED_RETRY_MS);
    } else if (e->code == HPO_PROTO_WRONG_WORKER_KIND) {
        snprintf(s->rejection, sizeof s->rejection, "%s", e->message);
        s->failed = 1;
    } else if (e->code == HPO_PROTO_BAD_VERSION) {
        hpo_log_error("the coordinator does not speak protocol version %d; "
                      "install matching versions of hpod and hpo-worker", HPO_PROTO_VERSION);
        s->failed = 1;
    }
}

/* Handles the notice of a coordinator that a signal stops: the trial
 * keeps training, results stay pending, and the worker registers with the
 * next coordinator once it listens. */
static void await_restart(service *s, const char *reason, double now)
{
    hpo_log_info("%s; keeping trial %lld and %d unacknowledged results and "
                 "registering again when it is back", reason,
                 s->trial != NULL ? (long long)hpo_service_trial_id(s->trial) : -1LL,
                 s->n_pending);
    s->registered = false;
    s->awaiting = AWAIT_NONE;
    s->register_at = now + RESTART_WAIT_MS / 1000.0;
}

/* Returns whether type is one that only workers send. Receiving one means
 * that the socket reached a worker instead of the coordinator, typically
 * itself: a TCP connect to a port of the ephemeral range on the same host
 * can connect to its own source port while nothing listens there. */
static bool is_worker_message(hpo_msg_type type)
{
    return type == HPO_MSG_REGISTER || type == HPO_MSG_READY ||
           type == HPO_MSG_PROGRESS || type == HPO_MSG_HEARTBEAT ||
           type == HPO_MSG_RESULT;
}

static void handle_message(service *s, const hpo_msg *msg, double now)
{
    if (is_worker_message(msg->type)) {
        hpo_log_limited("worker-self-connect", 5, HPO_LOG_WARN,
                        "received a %s message, which only workers send: the "
                        "connection to %s reached a worker, probably this one; "
                        "reconnecting. Give the coordinator a port below the "
                        "ephemeral range (/proc/sys/net/ipv4/ip_local_port_range)",
                        hpo_msg_type_name(msg->type), s->opt->endpoint);
        reopen_socket(s, "the connection did not reach a coordinator");
        s->registered = false;
        s->awaiting = AWAIT_NONE;
        s->register_at = now + REGISTER_RETRY_MS / 1000.0;
        return;
    }

    switch (msg->type) {
    case HPO_MSG_REGISTERED:
        s->registered = true;
        snprintf(s->worker_id, sizeof s->worker_id, "%s", msg->registered.worker_id);
        snprintf(s->token, sizeof s->token, "%s", msg->registered.token);
        s->heartbeat_ms = msg->registered.heartbeat_ms;
        s->awaiting = AWAIT_NONE;
        hpo_log_info("registered with %s as worker %s (heartbeat every %d ms)",
                     s->opt->endpoint, s->worker_id, s->heartbeat_ms);
        if (s->n_pending > 0)
            send_pending(s, now);
        break;
    case HPO_MSG_TRIAL:
        handle_trial(s, &msg->trial, now);
        break;
    case HPO_MSG_NO_WORK:
        if (s->awaiting == AWAIT_WORK)
            s->awaiting = AWAIT_NONE;
        s->retry_at = now + msg->no_work.retry_ms / 1000.0;
        hpo_log_debug("no work; asking again in %d ms", msg->no_work.retry_ms);
        break;
    case HPO_MSG_STUDY_DONE:
        if (s->awaiting == AWAIT_WORK)
            s->awaiting = AWAIT_NONE;
        begin_exit(s, "the study is done");
        break;
    case HPO_MSG_RESULT_ACK:
        handle_ack(s, msg->result_ack.trial_id);
        break;
    case HPO_MSG_STOP_TRIAL:
        if (s->trial != NULL && hpo_service_trial_id(s->trial) == msg->stop_trial.trial_id) {
            hpo_log_info("trial %lld: stop requested by the coordinator%s%s; stopping after "
                         "the current epoch", (long long)msg->stop_trial.trial_id,
                         msg->stop_trial.reason[0] ? ": " : "", msg->stop_trial.reason);
            hpo_service_trial_stop(s->trial);
        } else {
            hpo_log_warn("stop_trial for trial %lld ignored: it is not running here",
                         (long long)msg->stop_trial.trial_id);
        }
        break;
    case HPO_MSG_SHUTDOWN:
        if (strncmp(msg->shutdown.reason, RESTART_REASON, strlen(RESTART_REASON)) == 0)
            await_restart(s, msg->shutdown.reason, now);
        else
            begin_exit(s, msg->shutdown.reason[0] ? msg->shutdown.reason
                                                  : "the coordinator sent shutdown");
        break;
    case HPO_MSG_ERROR:
        handle_error(s, &msg->error, now);
        break;
    default:
        hpo_log_limited("worker-unexpected", 5, HPO_LOG_WARN,
                        "unexpected %s message from the coordinator dropped",
                        hpo_msg_type_name(msg->type));
        break;
    }
}

/* Reads and handles every message waiting on the socket. */
static void receive_all(service *s, double now)
{
    for (int i = 0; i < RECV_BURST && !s->failed; i++) {
        char err[HPO_ERR_MAX];
        hpo_msg msg;
        hpo_recv_result r = hpo_transport_recv_msg(s->sock, NULL, 0, &msg, NULL,
                                                   err, sizeof err);
        if (r == HPO_RECV_AGAIN)
            return;
        if (r == HPO_RECV_FAILED) {
            hpo_log_error("socket to %s failed: %s", s->opt->endpoint, err);
            s->failed = 1;
            return;
        }
        if (r == HPO_RECV_INVALID) {
            hpo_log_limited("worker-invalid", 5, HPO_LOG_WARN,
                            "invalid message from the coordinator dropped: %s", err);
            continue;
        }
        handle_message(s, &msg, now);
        hpo_msg_clear(&msg);
    }
}

/* Forwards the trial's progress and, when it has finished, its result. */
static void service_trial_events(service *s, double now)
{
    hpo_msg_progress progress[16];
    int n;
    while ((n = hpo_service_trial_poll(s->trial, progress, 16)) > 0) {
        for (int i = 0; i < n; i++) {
            hpo_msg msg;
            hpo_msg_init(&msg, HPO_MSG_PROGRESS);
            msg.progress = progress[i];
            snprintf(msg.progress.worker_id, sizeof msg.progress.worker_id, "%s",
                     s->worker_id);
            snprintf(msg.progress.token, sizeof msg.progress.token, "%s", s->token);
            hpo_log_info("trial %lld epoch %d/%d: loss %.4f accuracy %.4f val_loss %.4f "
                         "val_accuracy %.4f (%.1f s)", (long long)progress[i].trial_id,
                         progress[i].epoch, progress[i].epochs, progress[i].loss,
                         progress[i].accuracy, progress[i].val_loss,
                         progress[i].val_accuracy, progress[i].seconds);
            if (s->registered)
                send_msg(s, &msg);
        }
    }

    if (!hpo_service_trial_done(s->trial))
        return;
    int64_t trial_id = hpo_service_trial_id(s->trial);
    hpo_trial_outcome outcome;
    hpo_service_trial_finish(&s->trial, &outcome);
    add_pending(s, trial_id, &outcome, now);
}

/* Sends whatever the current state calls for: register, the pending
 * results, ready, or a heartbeat. */
static void drive(service *s, double now)
{
    double reply_timeout = s->opt->reply_timeout_ms / 1000.0;
    bool timed_out = s->awaiting != AWAIT_NONE && now - s->awaiting_since >= reply_timeout;

    if (timed_out) {
        hpo_log_warn("no reply from %s within %d ms; reconnecting and registering again",
                     s->opt->endpoint, s->opt->reply_timeout_ms);
        reopen_socket(s, "reply timeout");
        if (!s->failed)
            send_register(s, now);
    } else if (!s->registered && s->awaiting != AWAIT_REGISTERED && now >= s->register_at) {
        send_register(s, now);
    } else if (s->registered && s->awaiting == AWAIT_NONE && s->n_pending > 0) {
        send_pending(s, now);
    } else if (s->registered && s->awaiting == AWAIT_NONE && s->trial == NULL &&
               s->n_pending == 0 && !s->exiting && now >= s->retry_at) {
        hpo_msg msg;
        hpo_msg_init(&msg, HPO_MSG_READY);
        snprintf(msg.ready.worker_id, sizeof msg.ready.worker_id, "%s", s->worker_id);
        snprintf(msg.ready.token, sizeof msg.ready.token, "%s", s->token);
        send_msg(s, &msg);
        expect_reply(s, AWAIT_WORK, now);
    }

    if (s->registered && now - s->last_heartbeat >= s->heartbeat_ms / 1000.0) {
        hpo_msg msg;
        hpo_msg_init(&msg, HPO_MSG_HEARTBEAT);
        snprintf(msg.heartbeat.worker_id, sizeof msg.heartbeat.worker_id, "%s", s->worker_id);
        snprintf(msg.heartbeat.token, sizeof msg.heartbeat.token, "%s", s->token);
        msg.heartbeat.trial_id = s->trial != NULL ? hpo_service_trial_id(s->trial) : -1;
        send_msg(s, &msg);
        s->last_heartbeat = now;
    }
}

/* Returns whether the service may return now. */
static bool exit_ready(service *s, double now)
{
    if (!s->exiting || s->trial != NULL)
        return false;
    if (s->n_pending == 0)
        return true;
    if (s->exit_deadline == 0)
        s->exit_deadline = now + s->opt->reply_timeout_ms / 1000.0;
    if (now < s->exit_deadline)
        return false;
    hpo_log_warn("exiting with %d unacknowledged results, the first for trial %lld",
                 s->n_pending, (long long)s->pending[0].trial_id);
    return true;
}

/* A second stop request while a trial still runs: report it as
 * interrupted now and leave its thread behind. */
static void abandon_trial(service *s, double now)
{
    int64_t trial_id = hpo_service_trial_id(s->trial);
    hpo_trial_outcome outcome;
    hpo_service_trial_outcome_now(s->trial, &outcome);
    hpo_log_warn("trial %lld: second stop request; exiting without waiting for the "
                 "current epoch", (long long)trial_id);
    /* NOTE: the training thread keeps running until the process exits, so
     * the trial and the cached data are deliberately not freed. */
    s->trial = NULL;
    s->data.data = NULL;
    add_pending(s, trial_id, &outcome, now);
}

static void service_loop(service *s)
{
    int seen_stops = 0;
    while (!s->failed) {
        double now = now_seconds();

        int stops = stop_requests;
        if (stops > seen_stops) {
            seen_stops = stops;
            begin_exit(s, "stop requested (SIGINT or SIGTERM)");
            if (stops >= 2 && s->trial != NULL)
                abandon_trial(s, now);
        }
        if (exit_ready(s, now))
            return;
        drive(s, now);

        zmq_pollitem_t items[2] = {{.socket = s->sock, .events = ZMQ_POLLIN}};
        int n_items = 1;
        if (s->trial != NULL) {
            items[1] = (zmq_pollitem_t){.fd = hpo_service_trial_wake_fd(s->trial),
                                        .events = ZMQ_POLLIN};
            n_items = 2;
        }
        if (zmq_poll(items, n_items, POLL_MAX_MS) < 0 && errno != EINTR) {
            hpo_log_error("polling the socket to %s failed: %s", s->opt->endpoint,
                          zmq_strerror(errno));
            s->failed = 1;
            return;
        }

        now = now_seconds();
        receive_all(s, now);
        hpo_curve_monitor_poll(s->monitor, true);
        if (s->trial != NULL)
            service_trial_events(s, now);
    }
}

/* Tells the coordinator that this worker exits, so that it stops listing
 * it at once. Best effort: the socket's linger time delivers it, and a
 * lost leave makes the coordinator time the worker out as after a
 * crash. */
static void send_leave(service *s)
{
    if (!s->registered)
        return;
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_LEAVE);
    snprintf(msg.leave.worker_id, sizeof msg.leave.worker_id, "%s", s->worker_id);
    snprintf(msg.leave.token, sizeof msg.leave.token, "%s", s->token);
    snprintf(msg.leave.reason, sizeof msg.leave.reason, "%s", s->exit_reason);
    if (send_msg(s, &msg) == 0)
        hpo_log_info("sent leave for worker %s to %s: %s", s->worker_id, s->opt->endpoint,
                     s->exit_reason);
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 4096 ? (int)n : 1;
}

/* Checks that dir contains the CIFAR-10 batches, so that a worker without
 * data fails at start instead of failing every trial it gets. */
static int check_data_dir(const char *dir, char *err, size_t errlen)
{
    static const char *const files[] = {
        "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
        "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (access(path, R_OK) != 0)
            return hpo_error(err, errlen, "CIFAR-10 file %s is not readable: %s; pass the "
                             "folder of the binary version with --data", path,
                             strerror(errno));
    }
    return 0;
}

int hpo_worker_service_run(const hpo_worker_service_options *opt,
                           char *err, size_t errlen)
{
    if (opt->endpoint == NULL)
        return hpo_error(err, errlen, "no coordinator endpoint; pass --connect tcp://HOST:PORT");
    hpo_service_synthetic synthetic = {
        .metric = opt->objective_metric != NULL ? opt->objective_metric : "val_loss",
        .sleep_ms = opt->objective_sleep_ms,
        .noise_sd = opt->objective_noise,
    };
    if (opt->objective != NULL &&
        (synthetic.objective = hpo_objective_find(opt->objective, err, errlen)) == NULL)
        return -1;
    if (opt->data_dir == NULL && opt->objective == NULL)
        return hpo_error(err, errlen, "no CIFAR-10 folder; pass --data DIR");
    if (opt->reply_timeout_ms < 1 || opt->heartbeat_ms < 1)
        return hpo_error(err, errlen, "reply timeout %d ms and heartbeat %d ms must be "
                         "positive", opt->reply_timeout_ms, opt->heartbeat_ms);
    if (opt->objective == NULL && check_data_dir(opt->data_dir, err, errlen) != 0)
        return -1;

    service s;
    memset(&s, 0, sizeof s);
    s.opt = opt;
    s.heartbeat_ms = opt->heartbeat_ms;
    s.threads = opt->threads > 0 ? opt->threads : online_cpus();
    s.data.dir = opt->data_dir;
    s.data.synthetic = opt->objective != NULL ? &synthetic : NULL;
    if (gethostname(s.host, sizeof s.host) != 0 || s.host[0] == '\0')
        snprintf(s.host, sizeof s.host, "unknown");
    s.host[sizeof s.host - 1] = '\0';
    if (opt->name != NULL)
        snprintf(s.name, sizeof s.name, "%s", opt->name);
    else
        snprintf(s.name, sizeof s.name, "%.40s-%ld", s.host, (long)getpid());

    s.ctx = zmq_ctx_new();
    if (s.ctx == NULL)
        return hpo_error(err, errlen, "creating the ZeroMQ context failed: %s",
                         zmq_strerror(errno));
    s.sock = connect_coordinator(&s, err, errlen);
    if (s.sock == NULL) {
        zmq_ctx_term(s.ctx);
        return -1;
    }

    stop_requests = 0;
    if (opt->objective != NULL)
        hpo_log_info("worker %s starting: coordinator %s, synthetic objective %s as %s "
                     "(sleep %d ms, noise SD %g)", s.name, opt->endpoint, opt->objective,
                     synthetic.metric, synthetic.sleep_ms, synthetic.noise_sd);
    else
        hpo_log_info("worker %s starting: coordinator %s, data %s, %d threads",
                     s.name, opt->endpoint, opt->data_dir, s.threads);
    service_loop(&s);
    if (!s.failed)
        send_leave(&s);

    for (int i = 0; i < s.n_pending; i++)
        cJSON_Delete(s.pending[i].metrics);
    hpo_service_data_clear(&s.data);
    hpo_curve_monitor_stop(&s.monitor);
    hpo_transport_close(&s.sock);
    zmq_ctx_term(s.ctx);

    if (s.failed && s.rejection[0] != '\0')
        return hpo_error(err, errlen, "the coordinator at %s rejected this worker: %s",
                         opt->endpoint, s.rejection);
    if (s.failed)
        return hpo_error(err, errlen, "the connection to %s failed; see the log above",
                         opt->endpoint);
    hpo_log_info("worker %s stopped after %d acknowledged results", s.name, s.acked);
    return 0;
}

static void on_signal(int signo)
{
    (void)signo;
    hpo_worker_service_request_stop();
}

static void usage(FILE *out)
{
    fputs("usage: hpo-worker --connect ENDPOINT [--data DIR] [options]\n"
          "       hpo-worker serve --connect ENDPOINT [--data DIR] [options]\n"
          "\n"
          "Connects to an hpod coordinator and trains the trials it hands out.\n"
          "SIGINT or SIGTERM stops the running trial after its current epoch, reports\n"
          "it as interrupted and exits; a second signal exits without waiting.\n"
          "When hpod restarts, the worker keeps its trial and results and registers\n"
          "with the next hpod on the same endpoint.\n"
          "\n"
          "  --connect ENDPOINT  coordinator's worker endpoint, tcp://HOST:PORT or\n"
          "                      ipc://PATH\n"
          "  --data DIR          CIFAR-10 binary folder (default $HPO_CIFAR10_DIR,\n"
          "                      else ../shared/cifar10)\n"
          "  --threads N         compute threads (default: one per CPU)\n"
          "  --name NAME         worker name in the coordinator's logs and tables\n"
          "                      (default HOST-PID)\n"
          "  --reply-timeout MS  reconnect and register again when the coordinator\n"
          "                      does not reply within MS milliseconds (default 5000)\n"
          "  --log-level LEVEL   debug, info, warn or error (default info)\n"
          "  --objective NAME    evaluate the synthetic objective NAME (branin,\n"
          "                      hartmann6 or mixed16) on each trial's parameters\n"
          "                      instead of training; needs no --data. A study with\n"
          "                      \"synthetic\": true needs such workers, and every\n"
          "                      other study rejects them\n"
          "  --objective-metric M  metric that reports the value (default val_loss)\n"
          "  --objective-sleep MS  pause MS milliseconds before each evaluation\n"
          "  --objective-noise SD  add Gaussian noise of standard deviation SD\n"
          "  --curve-secret FILE this worker's CURVE key pair (hpoctl keygen), for\n"
          "                      an hpod that runs with CURVE\n"
          "  --server-key FILE   hpod's public key file, with --curve-secret\n",
          out);
}

static int parse_int_arg(const char *name, const char *text, long min, long max, int *out)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
        fprintf(stderr, "hpo-worker: invalid %s \"%s\": expected an integer from %ld to %ld\n",
                name, text, min, max);
        return -1;
    }
    *out = (int)value;
    return 0;
}

int hpo_worker_service_main(int argc, char **argv)
{
    enum { OPT_CONNECT = 256, OPT_DATA, OPT_THREADS, OPT_NAME, OPT_REPLY_TIMEOUT,
           OPT_LOG_LEVEL, OPT_HELP };
    enum { OPT_CURVE_SECRET = 512, OPT_SERVER_KEY };
    enum { OPT_OBJECTIVE = 768, OPT_OBJECTIVE_METRIC, OPT_OBJECTIVE_SLEEP,
           OPT_OBJECTIVE_NOISE };
    static const struct option long_options[] = {
        {"objective", required_argument, NULL, OPT_OBJECTIVE},
        {"objective-metric", required_argument, NULL, OPT_OBJECTIVE_METRIC},
        {"objective-sleep", required_argument, NULL, OPT_OBJECTIVE_SLEEP},
        {"objective-noise", required_argument, NULL, OPT_OBJECTIVE_NOISE},
        {"curve-secret", required_argument, NULL, OPT_CURVE_SECRET},
        {"server-key", required_argument, NULL, OPT_SERVER_KEY},
        {"connect", required_argument, NULL, OPT_CONNECT},
        {"data", required_argument, NULL, OPT_DATA},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"name", required_argument, NULL, OPT_NAME},
        {"reply-timeout", required_argument, NULL, OPT_REPLY_TIMEOUT},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };

    hpo_worker_service_options opt;
    hpo_worker_service_options_default(&opt);
    hpo_cifar10_options data_default;
    hpo_cifar10_options_default(&data_default);
    opt.data_dir = data_default.dir;
    hpo_log_level level = HPO_LOG_INFO;
    const char *curve_secret_path = NULL, *server_key_path = NULL;

    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        switch (c) {
        case OPT_CONNECT: opt.endpoint = optarg; break;
        case OPT_DATA: opt.data_dir = optarg; break;
        case OPT_CURVE_SECRET: curve_secret_path = optarg; break;
        case OPT_SERVER_KEY: server_key_path = optarg; break;
        case OPT_OBJECTIVE: opt.objective = optarg; break;
        case OPT_OBJECTIVE_METRIC: opt.objective_metric = optarg; break;
        case OPT_OBJECTIVE_SLEEP:
            if (parse_int_arg("--objective-sleep", optarg, 0, 3600 * 1000,
                              &opt.objective_sleep_ms) < 0)
                return 2;
            break;
        case OPT_OBJECTIVE_NOISE: {
            char *end = NULL;
            opt.objective_noise = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || !(opt.objective_noise >= 0.0) ||
                !isfinite(opt.objective_noise)) {
                fprintf(stderr, "hpo-worker: invalid --objective-noise \"%s\": expected a "
                        "finite number of at least 0\n", optarg);
                return 2;
            }
            break;
        }
        case OPT_NAME:
            if (strlen(optarg) == 0 || strlen(optarg) > HPO_NAME_MAX) {
                fprintf(stderr, "hpo-worker: invalid --name: expected 1 to %d bytes\n",
                        HPO_NAME_MAX);
                return 2;
            }
            opt.name = optarg;
            break;
        case OPT_THREADS:
            if (parse_int_arg("--threads", optarg, 1, 4096, &opt.threads) < 0)
                return 2;
            break;
        case OPT_REPLY_TIMEOUT:
            if (parse_int_arg("--reply-timeout", optarg, 100, 3600 * 1000,
                              &opt.reply_timeout_ms) < 0)
                return 2;
            break;
        case OPT_LOG_LEVEL:
            if (hpo_log_level_parse(optarg, &level) != 0) {
                fprintf(stderr, "hpo-worker: invalid --log-level \"%s\": expected debug, "
                                "info, warn or error\n", optarg);
                return 2;
            }
            break;
        case 'h':
        case OPT_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hpo-worker: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (opt.endpoint == NULL) {
        fprintf(stderr, "hpo-worker: missing --connect ENDPOINT\n");
        usage(stderr);
        return 2;
    }

    char err[HPO_ERR_MAX];
    hpo_curve_settings curve = {.server = false};
    if ((curve_secret_path == NULL) != (server_key_path == NULL)) {
        fprintf(stderr, "hpo-worker: %s is missing; CURVE needs both --curve-secret "
                "FILE and --server-key FILE\n",
                curve_secret_path == NULL ? "--curve-secret" : "--server-key");
        return 2;
    }
    if (curve_secret_path != NULL) {
        if (hpo_curve_keypair_load(curve_secret_path, &curve.own, err, sizeof err) != 0 ||
            hpo_curve_public_key_load(server_key_path, curve.server_key, err,
                                      sizeof err) != 0) {
            fprintf(stderr, "hpo-worker: %s\n", err);
            return 2;
        }
        opt.curve = &curve;
    }

    hpo_log_init("worker", level);
    gsl_set_error_handler_off();

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int status = 0;
    if (hpo_worker_service_run(&opt, err, sizeof err) != 0) {
        hpo_log_error("%s", err);
        status = 1;
    }
    hpo_curve_keypair_clear(&curve.own);
    return status;
}
