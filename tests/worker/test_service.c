/* Worker service mode against a mock coordinator: the test plays hpod on a
 * ROUTER socket while hpo_worker_service_run() trains tiny models on a few
 * hundred real CIFAR-10 images on another thread. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "hpo/error.h"
#include "hpo/log.h"
#include "hpo/protocol.h"
#include "hpo/transport.h"
#include "hpo/worker_service.h"

/* Maximum wait for any one message from the worker. */
#define MESSAGE_MS 20000

/* A conv net small enough to train an epoch on 300 images in milliseconds. */
static const char *const TINY_MODEL =
    "{\"input_shape\": [32, 32, 3], \"layers\": ["
    "{\"type\": \"conv2d\", \"filters\": 4, \"kernel_size\": 3, \"activation\": \"relu\"},"
    "{\"type\": \"maxpool2d\", \"pool_size\": 4},"
    "{\"type\": \"flatten\"},"
    "{\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}],"
    "\"training\": {\"optimizer\": \"adam\", \"learning_rate\": 0.001}}";

/* A model the engine cannot build: the kernel is larger than the image. */
static const char *const BAD_MODEL =
    "{\"input_shape\": [32, 32, 3], \"layers\": ["
    "{\"type\": \"conv2d\", \"filters\": 4, \"kernel_size\": 40},"
    "{\"type\": \"flatten\"},"
    "{\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}]}";

static const char *data_dir;

typedef struct {
    void *ctx;
    void *router;
    char dir[64];
    char endpoint[128];
    hpo_peer worker;         /* routing id of the worker's connection */
    int heartbeats;          /* heartbeats received so far */
    int64_t heartbeat_trial; /* trial_id of the last heartbeat */

    hpo_worker_service_options opt;
    pthread_t thread;
    bool running;
    int service_rc;
    char service_err[HPO_ERR_MAX];
} mock;

/* Session token that the mock coordinator hands out; the worker must
 * present it in every later message. */
#define MOCK_TOKEN "00112233445566778899aabbccddeeff"

static void *service_thread(void *arg)
{
    mock *m = arg;
    m->service_rc = hpo_worker_service_run(&m->opt, m->service_err, sizeof m->service_err);
    return NULL;
}

static void mock_bind(mock *m)
{
    char err[HPO_ERR_MAX];
    m->router = hpo_transport_router_bind(m->ctx, m->endpoint, err, sizeof err);
    if (m->router == NULL)
        fail_msg("mock coordinator: %s", err);
}

/* Closes the mock's socket, as a coordinator that crashed would. */
static void mock_unbind(mock *m)
{
    int linger = 0;
    zmq_setsockopt(m->router, ZMQ_LINGER, &linger, sizeof linger);
    hpo_transport_close(&m->router);
}

/* Binds the mock coordinator and starts the service, which stops after
 * max_trials acknowledged results (0: no limit). */
static int setup_with_limit(void **state, int max_trials)
{
    mock *m = calloc(1, sizeof *m);
    if (m == NULL)
        return -1;
    snprintf(m->dir, sizeof m->dir, "/tmp/hpo-service-XXXXXX");
    if (mkdtemp(m->dir) == NULL)
        return -1;
    snprintf(m->endpoint, sizeof m->endpoint, "ipc://%s/workers.sock", m->dir);
    m->ctx = zmq_ctx_new();
    mock_bind(m);

    hpo_worker_service_options_default(&m->opt);
    m->opt.endpoint = m->endpoint;
    m->opt.data_dir = data_dir;
    m->opt.name = "test-worker";
    m->opt.threads = 1;
    m->opt.reply_timeout_ms = 1000;
    m->opt.max_trials = max_trials;
    if (pthread_create(&m->thread, NULL, service_thread, m) != 0)
        return -1;
    m->running = true;
    *state = m;
    return 0;
}

static int setup(void **state)
{
    return setup_with_limit(state, 0);
}

static int setup_one_trial(void **state)
{
    return setup_with_limit(state, 1);
}

static int teardown(void **state)
{
    mock *m = *state;
    if (m->running) {
        /* A test that failed half-way: stop the worker the hard way. */
        hpo_worker_service_request_stop();
        hpo_worker_service_request_stop();
        pthread_join(m->thread, NULL);
    }
    if (m->router != NULL)
        mock_unbind(m);
    zmq_ctx_term(m->ctx);

    char path[128];
    snprintf(path, sizeof path, "%s/workers.sock", m->dir);
    unlink(path);
    rmdir(m->dir);
    free(m);
    return 0;
}

/* Receives the worker's next message other than a heartbeat; fails the
 * test when none comes within MESSAGE_MS. */
static void mock_recv(mock *m, hpo_msg *msg)
{
    for (;;) {
        char err[HPO_ERR_MAX];
        hpo_recv_result r = hpo_transport_recv_msg(m->router, &m->worker, MESSAGE_MS, msg,
                                                   NULL, err, sizeof err);
        if (r != HPO_RECV_OK)
            fail_msg("mock coordinator: no valid message from the worker (%d: %s)",
                     (int)r, err);
        if (msg->type != HPO_MSG_HEARTBEAT)
            return;
        assert_string_equal(msg->heartbeat.worker_id, "w7");
        assert_string_equal(msg->heartbeat.token, MOCK_TOKEN);
        m->heartbeats++;
        m->heartbeat_trial = msg->heartbeat.trial_id;
        hpo_msg_clear(msg);
    }
}

static void mock_expect(mock *m, hpo_msg_type type, hpo_msg *msg)
{
    mock_recv(m, msg);
    if (msg->type != type)
        fail_msg("mock coordinator: got %s, expected %s", hpo_msg_type_name(msg->type),
                 hpo_msg_type_name(type));
}

static void mock_send(mock *m, const hpo_msg *msg)
{
    char err[HPO_ERR_MAX];
    if (hpo_transport_send_msg(m->router, &m->worker, msg, err, sizeof err) != 0)
        fail_msg("mock coordinator: %s", err);
}

/* Replies registered with worker id w7 to the last sender. */
static void mock_send_registered(mock *m)
{
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_REGISTERED);
    snprintf(msg.registered.worker_id, sizeof msg.registered.worker_id, "w7");
    snprintf(msg.registered.token, sizeof msg.registered.token, "%s", MOCK_TOKEN);
    msg.registered.heartbeat_ms = 100;
    mock_send(m, &msg);
}

/* Receives register and replies registered with worker id w7. */
static void mock_register(mock *m, hpo_msg *reg)
{
    mock_expect(m, HPO_MSG_REGISTER, reg);
    assert_string_equal(reg->reg.name, "test-worker");
    assert_int_equal(reg->reg.pid, getpid());
    assert_int_equal(reg->reg.threads, 1);
    assert_int_equal(reg->reg.protocol, HPO_PROTO_VERSION);
    assert_int_equal(reg->reg.kind, HPO_WORKER_KIND_CIFAR10);
    mock_send_registered(m);
}

/* Receives the worker's next message other than a heartbeat or progress. */
static void mock_recv_after_progress(mock *m, hpo_msg *msg)
{
    mock_recv(m, msg);
    while (msg->type == HPO_MSG_PROGRESS) {
        hpo_msg_clear(msg);
        mock_recv(m, msg);
    }
}

/* Waits for ready and hands out a trial. */
static void mock_give_trial(mock *m, int64_t trial_id, const char *model, int epochs)
{
    hpo_msg msg;
    mock_expect(m, HPO_MSG_READY, &msg);
    assert_string_equal(msg.ready.worker_id, "w7");
    assert_string_equal(msg.ready.token, MOCK_TOKEN);

    hpo_msg_init(&msg, HPO_MSG_TRIAL);
    msg.trial.trial_id = trial_id;
    msg.trial.params = cJSON_Parse("{\"filters\": 4}");
    msg.trial.model = cJSON_Parse(model);
    msg.trial.budget = (hpo_msg_budget){.epochs = epochs, .train_size = 300,
                                        .val_size = 100, .batch_size = 32};
    msg.trial.seed = 5;
    assert_non_null(msg.trial.model);
    mock_send(m, &msg);
    hpo_msg_clear(&msg);
}

static void mock_ack(mock *m, int64_t trial_id)
{
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_RESULT_ACK);
    msg.result_ack.trial_id = trial_id;
    mock_send(m, &msg);
}

/* Ends the session: waits for ready, sends shutdown, joins the worker. */
static void mock_shutdown(mock *m)
{
    hpo_msg msg;
    mock_expect(m, HPO_MSG_READY, &msg);
    hpo_msg_init(&msg, HPO_MSG_SHUTDOWN);
    snprintf(msg.shutdown.reason, sizeof msg.shutdown.reason, "test over");
    mock_send(m, &msg);

    pthread_join(m->thread, NULL);
    m->running = false;
    if (m->service_rc != 0)
        fail_msg("worker service failed: %s", m->service_err);
}

static double metric(const hpo_msg *result, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(result->result.metrics, name);
    if (!cJSON_IsNumber(item))
        fail_msg("result metric %s is missing or null", name);
    return item->valuedouble;
}

/* register -> trial -> one progress per epoch -> result -> ack. */
static void test_service_trains_trial(void **state)
{
    mock *m = *state;
    hpo_msg msg;
    mock_register(m, &msg);
    assert_int_equal(msg.reg.running_trial, -1);
    assert_int_equal(msg.reg.n_pending, 0);
    mock_give_trial(m, 11, TINY_MODEL, 3);

    double last_val_accuracy = NAN;
    for (int epoch = 1; epoch <= 3; epoch++) {
        mock_expect(m, HPO_MSG_PROGRESS, &msg);
        assert_string_equal(msg.progress.worker_id, "w7");
        assert_int_equal(msg.progress.trial_id, 11);
        assert_int_equal(msg.progress.epoch, epoch);
        assert_int_equal(msg.progress.epochs, 3);
        assert_true(msg.progress.loss > 0.0);
        assert_true(msg.progress.loss < 10.0);
        assert_true(msg.progress.accuracy >= 0.0 && msg.progress.accuracy <= 1.0);
        assert_true(msg.progress.val_accuracy >= 0.0 && msg.progress.val_accuracy <= 1.0);
        assert_true(msg.progress.images_per_second > 0.0);
        last_val_accuracy = msg.progress.val_accuracy;
    }

    mock_expect(m, HPO_MSG_RESULT, &msg);
    assert_string_equal(msg.result.worker_id, "w7");
    assert_int_equal(msg.result.trial_id, 11);
    assert_int_equal(msg.result.status, HPO_TRIAL_OK);
    assert_int_equal(msg.result.epochs_run, 3);
    assert_string_equal(msg.result.error, "");
    assert_true(msg.result.wall_seconds > 0.0);
    /* Without early stopping the kept weights are the last epoch's. */
    assert_true(metric(&msg, "val_accuracy") == last_val_accuracy);
    hpo_msg_clear(&msg);
    mock_ack(m, 11);

    mock_shutdown(m);
}

/* stop_trial ends the trial after the current epoch, reported as
 * interrupted; a model that cannot be built fails with its reason. */
static void test_service_stop_and_failure(void **state)
{
    mock *m = *state;
    hpo_msg msg;
    mock_register(m, &msg);
    mock_give_trial(m, 21, TINY_MODEL, 1000);

    mock_expect(m, HPO_MSG_PROGRESS, &msg);
    assert_int_equal(msg.progress.trial_id, 21);

    /* Heartbeats keep coming during training and name the trial. */
    m->heartbeat_trial = -1;
    while (m->heartbeat_trial != 21) {
        mock_expect(m, HPO_MSG_PROGRESS, &msg);
        assert_int_equal(msg.progress.trial_id, 21);
    }

    hpo_msg stop;
    hpo_msg_init(&stop, HPO_MSG_STOP_TRIAL);
    stop.stop_trial.trial_id = 21;
    mock_send(m, &stop);

    hpo_msg_clear(&msg);
    mock_recv_after_progress(m, &msg);
    assert_int_equal(msg.type, HPO_MSG_RESULT);
    assert_int_equal(msg.result.trial_id, 21);
    assert_int_equal(msg.result.status, HPO_TRIAL_INTERRUPTED);
    assert_true(msg.result.epochs_run >= 1);
    assert_true(msg.result.epochs_run < 1000);
    hpo_msg_clear(&msg);
    mock_ack(m, 21);

    mock_give_trial(m, 22, BAD_MODEL, 1);
    mock_expect(m, HPO_MSG_RESULT, &msg);
    assert_int_equal(msg.result.trial_id, 22);
    assert_int_equal(msg.result.status, HPO_TRIAL_FAILED);
    assert_int_equal(msg.result.epochs_run, 0);
    assert_non_null(strstr(msg.result.error, "kernel_size"));
    hpo_msg_clear(&msg);
    mock_ack(m, 22);

    mock_shutdown(m);
}

/* The coordinator dies before acknowledging a result. Its successor does
 * not know the worker: it replies unknown_worker, receives a register that
 * lists the pending result, and then the result itself. */
static void test_service_resends_after_restart(void **state)
{
    mock *m = *state;
    hpo_msg msg;
    mock_register(m, &msg);
    mock_give_trial(m, 31, TINY_MODEL, 1);
    mock_expect(m, HPO_MSG_PROGRESS, &msg);
    mock_expect(m, HPO_MSG_RESULT, &msg);
    assert_int_equal(msg.result.trial_id, 31);
    double val_accuracy = metric(&msg, "val_accuracy");
    hpo_msg_clear(&msg);

    mock_unbind(m);
    usleep(200 * 1000);
    mock_bind(m);

    /* The first message the new coordinator receives is a heartbeat or the
     * resent register of a worker whose ack timed out. */
    char err[HPO_ERR_MAX];
    assert_int_equal(hpo_transport_recv_msg(m->router, &m->worker, MESSAGE_MS, &msg, NULL,
                                            err, sizeof err), HPO_RECV_OK);
    if (msg.type != HPO_MSG_REGISTER) {
        assert_int_equal(msg.type, HPO_MSG_HEARTBEAT);
        hpo_msg reply;
        hpo_msg_error_init(&reply, HPO_PROTO_UNKNOWN_WORKER, "worker %s is not registered",
                           msg.heartbeat.worker_id);
        mock_send(m, &reply);
        mock_expect(m, HPO_MSG_REGISTER, &msg);
    }
    assert_int_equal(msg.reg.n_pending, 1);
    assert_int_equal(msg.reg.pending_results[0], 31);
    assert_int_equal(msg.reg.running_trial, -1);

    mock_send_registered(m);

    mock_expect(m, HPO_MSG_RESULT, &msg);
    assert_int_equal(msg.result.trial_id, 31);
    assert_int_equal(msg.result.status, HPO_TRIAL_OK);
    assert_true(metric(&msg, "val_accuracy") == val_accuracy);
    hpo_msg_clear(&msg);
    mock_ack(m, 31);

    mock_shutdown(m);
}

static bool same_peer(const hpo_peer *a, const hpo_peer *b)
{
    return a->size == b->size && memcmp(a->id, b->id, a->size) == 0;
}

/* A coordinator that stops replying: the worker registers again after
 * its reply timeout, from a new connection, and heartbeats kept flowing
 * meanwhile. */
static void test_service_registers_after_timeout(void **state)
{
    mock *m = *state;
    hpo_msg msg;
    mock_register(m, &msg);
    mock_expect(m, HPO_MSG_READY, &msg);
    hpo_peer first_peer = m->worker;

    /* No reply to ready: within about reply_timeout_ms a new register.
     * The ROUTER gives each connection its own routing id, so a new id
     * shows that the worker opened a new socket. */
    mock_expect(m, HPO_MSG_REGISTER, &msg);
    assert_true(m->heartbeats >= 3);
    assert_int_equal(m->heartbeat_trial, -1);
    assert_false(same_peer(&first_peer, &m->worker));

    mock_send_registered(m);
    mock_shutdown(m);
}

/* The restart notice of a stopping hpod: the worker keeps training, and
 * when the next coordinator listens it registers with the running trial,
 * after which the trial's result reaches the new coordinator. */
static void test_service_restart_notice_keeps_trial(void **state)
{
    mock *m = *state;
    hpo_msg msg;
    mock_register(m, &msg);
    mock_give_trial(m, 51, TINY_MODEL, 1000);
    mock_expect(m, HPO_MSG_PROGRESS, &msg);

    hpo_msg notice;
    hpo_msg_init(&notice, HPO_MSG_SHUTDOWN);
    snprintf(notice.shutdown.reason, sizeof notice.shutdown.reason,
             "coordinator restarting: hpod was stopped by a signal");
    mock_send(m, &notice);
    usleep(100 * 1000);
    mock_unbind(m);
    usleep(300 * 1000);
    mock_bind(m);

    /* The worker is still there and still training trial 51. */
    mock_expect(m, HPO_MSG_REGISTER, &msg);
    assert_int_equal(msg.reg.running_trial, 51);
    assert_int_equal(msg.reg.n_pending, 0);
    mock_send_registered(m);

    mock_expect(m, HPO_MSG_PROGRESS, &msg);
    assert_int_equal(msg.progress.trial_id, 51);
    assert_true(msg.progress.epoch >= 2);
    hpo_msg stop;
    hpo_msg_init(&stop, HPO_MSG_STOP_TRIAL);
    stop.stop_trial.trial_id = 51;
    mock_send(m, &stop);
    hpo_msg_clear(&msg);
    mock_recv_after_progress(m, &msg);
    assert_int_equal(msg.type, HPO_MSG_RESULT);
    assert_int_equal(msg.result.trial_id, 51);
    assert_int_equal(msg.result.status, HPO_TRIAL_INTERRUPTED);
    assert_true(msg.result.epochs_run >= 2);
    hpo_msg_clear(&msg);
    mock_ack(m, 51);

    mock_shutdown(m);
}

/* A message that only workers send reaches the worker, as when its TCP
 * connection reached itself: it drops that connection and registers again
 * from a new one. */
static void test_service_worker_message_reconnects(void **state)
{
    mock *m = *state;
    hpo_msg msg;
    mock_register(m, &msg);
    mock_expect(m, HPO_MSG_READY, &msg);
    hpo_peer first_peer = m->worker;

    hpo_msg echo;
    hpo_msg_init(&echo, HPO_MSG_READY);
    snprintf(echo.ready.worker_id, sizeof echo.ready.worker_id, "w7");
    mock_send(m, &echo);

    mock_expect(m, HPO_MSG_REGISTER, &msg);
    assert_false(same_peer(&first_peer, &m->worker));
    /* The token of the first registration lets the coordinator replace it
     * with this one. */
    assert_string_equal(msg.reg.token, MOCK_TOKEN);
    mock_send_registered(m);
    mock_shutdown(m);
}

/* A stop request (what SIGINT and SIGTERM send) during a trial: the
 * trial is reported as interrupted, acknowledged, and the service returns
 * without asking for more work. */
static void test_service_stop_request_reports_trial(void **state)
{
    mock *m = *state;
    hpo_msg msg;
    mock_register(m, &msg);
    mock_give_trial(m, 41, TINY_MODEL, 1000);
    mock_expect(m, HPO_MSG_PROGRESS, &msg);

    hpo_worker_service_request_stop();

    hpo_msg_clear(&msg);
    mock_recv_after_progress(m, &msg);
    assert_int_equal(msg.type, HPO_MSG_RESULT);
    assert_int_equal(msg.result.trial_id, 41);
    assert_int_equal(msg.result.status, HPO_TRIAL_INTERRUPTED);
    hpo_msg_clear(&msg);
    mock_ack(m, 41);

    pthread_join(m->thread, NULL);
    m->running = false;
    assert_int_equal(m->service_rc, 0);

    /* Nothing after the ack but leave: no ready from a worker that is
     * stopping. */
    char err[HPO_ERR_MAX];
    hpo_recv_result r;
    int leaves = 0;
    do {
        r = hpo_transport_recv_msg(m->router, &m->worker, 300, &msg, NULL, err, sizeof err);
        if (r != HPO_RECV_OK || msg.type == HPO_MSG_HEARTBEAT)
            continue;
        if (msg.type != HPO_MSG_LEAVE)
            fail_msg("unexpected %s after the final ack", hpo_msg_type_name(msg.type));
        assert_string_equal(msg.leave.worker_id, "w7");
        assert_string_equal(msg.leave.token, MOCK_TOKEN);
        assert_non_null(strstr(msg.leave.reason, "stop requested"));
        leaves++;
    } while (r == HPO_RECV_OK);
    assert_int_equal(leaves, 1);
}

/* A worker whose trial limit is reached sends leave after the ack of its
 * last result and returns 0 without asking for more work. */
static void test_service_trial_limit_leaves(void **state)
{
    mock *m = *state;
    hpo_msg msg;
    mock_register(m, &msg);
    mock_give_trial(m, 61, TINY_MODEL, 1);
    hpo_msg_clear(&msg);
    mock_recv_after_progress(m, &msg);
    assert_int_equal(msg.type, HPO_MSG_RESULT);
    assert_int_equal(msg.result.trial_id, 61);
    assert_string_equal(msg.result.token, MOCK_TOKEN);
    hpo_msg_clear(&msg);
    mock_ack(m, 61);

    mock_expect(m, HPO_MSG_LEAVE, &msg);
    assert_string_equal(msg.leave.worker_id, "w7");
    assert_string_equal(msg.leave.token, MOCK_TOKEN);
    assert_string_equal(msg.leave.reason, "the trial limit is reached");
    pthread_join(m->thread, NULL);
    m->running = false;
    assert_int_equal(m->service_rc, 0);
}

/* A coordinator that replies to register with wrong_worker_kind makes the
 * service return -1 with the coordinator's reason, sending nothing
 * more. */
static void test_service_wrong_kind_exits(void **state)
{
    mock *m = *state;
    hpo_msg msg;
    mock_expect(m, HPO_MSG_REGISTER, &msg);
    hpo_msg reply;
    hpo_msg_error_init(&reply, HPO_PROTO_WRONG_WORKER_KIND, "study \"h6\" is synthetic "
                       "and needs objective workers; run hpo-worker --objective NAME");
    mock_send(m, &reply);

    pthread_join(m->thread, NULL);
    m->running = false;
    assert_int_equal(m->service_rc, -1);
    assert_non_null(strstr(m->service_err, "rejected this worker"));
    assert_non_null(strstr(m->service_err, "needs objective workers"));
    assert_non_null(strstr(m->service_err, "--objective NAME"));

    char err[HPO_ERR_MAX];
    hpo_recv_result r = hpo_transport_recv_msg(m->router, &m->worker, 300, &msg, NULL,
                                               err, sizeof err);
    assert_int_equal(r, HPO_RECV_AGAIN);
}

/* worker_id_taken as the reply to register makes the worker register again
 * about a second later, on the same socket, instead of exiting. */
static void test_service_id_taken_retries(void **state)
{
    mock *m = *state;
    hpo_msg msg;
    mock_expect(m, HPO_MSG_REGISTER, &msg);
    hpo_peer first_peer = m->worker;
    hpo_msg reply;
    hpo_msg_error_init(&reply, HPO_PROTO_WORKER_ID_TAKEN, "worker w3 is registered to "
                       "another connection");
    mock_send(m, &reply);

    struct timespec before, after;
    clock_gettime(CLOCK_MONOTONIC, &before);
    mock_expect(m, HPO_MSG_REGISTER, &msg);
    clock_gettime(CLOCK_MONOTONIC, &after);
    double waited = (double)(after.tv_sec - before.tv_sec) +
                    (double)(after.tv_nsec - before.tv_nsec) * 1e-9;
    assert_true(waited >= 0.9);
    assert_true(same_peer(&first_peer, &m->worker));
    mock_send_registered(m);
    mock_shutdown(m);
}

int main(void)
{
    data_dir = getenv("HPO_CIFAR10_DIR");
    if (data_dir == NULL)
        data_dir = HPO_TEST_CIFAR10_DIR;
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/data_batch_1.bin", data_dir);
    if (access(probe, R_OK) != 0) {
        fprintf(stderr, "skipped: CIFAR-10 not found at %s; set HPO_CIFAR10_DIR\n", data_dir);
        return 77;
    }
    hpo_log_init("worker", HPO_LOG_WARN);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_service_trains_trial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_stop_and_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_resends_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_registers_after_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_restart_notice_keeps_trial, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_service_worker_message_reconnects, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_service_trial_limit_leaves, setup_one_trial,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_service_wrong_kind_exits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_id_taken_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service_stop_request_reports_trial, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
