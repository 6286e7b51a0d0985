/* Hostile input against a running hpod: a table of hand-written bad
 * messages on both endpoints, oversized frames, broken envelopes, unknown
 * trial ids, results and progress for another worker's trial, and a crowd
 * of bogus peers. Each bad message must get the reply that
 * docs/protocol.md documents (or none, where it documents none), and hpod
 * must keep serving: a good worker completes the study afterwards and the
 * database holds exactly the trials it should.
 *
 * Usage: test_hostile HPOD STUDY_FILE */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "hpo/error.h"
#include "hpo/protocol.h"
#include "hpo/transport.h"
#include "storage.h"

static const char *hpod_path;
static const char *study_path;

/* Generous, because CI runs every test on two shared cores. */
#define REPLY_MS 10000
#define START_MS 20000
/* Wait, in ms, that shows a message gets no reply. */
#define SILENCE_MS 300
/* Sockets of the bogus-peer crowd; libzmq allows 1,023 per context. */
#define CROWD 300
#define SOCKETS_MAX (CROWD + 16)

typedef struct {
    char dir[64];
    char db[128];
    char ready[128];
    char log[128];
    char workers[256];
    char control[256];
    pid_t hpod;
    void *ctx;
    void *sockets[SOCKETS_MAX]; /* closed by teardown */
    int n_sockets;
} fixture;

/* A fake worker: a DEALER socket and the id hpod gave it. */
typedef struct {
    void *sock;
    char id[HPO_NAME_MAX + 1];
    char token[HPO_TOKEN_MAX + 1]; /* session token from registered */
} peer;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/hpo-test-hostile-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof f->db, "%s/study.db", f->dir);
    snprintf(f->ready, sizeof f->ready, "%s/ready", f->dir);
    snprintf(f->log, sizeof f->log, "%s/hpod.log", f->dir);
    snprintf(f->workers, sizeof f->workers, "ipc://%s/workers", f->dir);
    snprintf(f->control, sizeof f->control, "ipc://%s/control", f->dir);
    f->ctx = zmq_ctx_new();
    if (f->ctx != NULL)
        zmq_ctx_set(f->ctx, ZMQ_MAX_SOCKETS, SOCKETS_MAX + 8);
    *state = f;
    return f->ctx != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char command[256];
    if (f->hpod > 0) {
        snprintf(command, sizeof command, "tail -n 30 '%s' >&2", f->log);
        if (system(command) != 0)
            fprintf(stderr, "(no hpod log)\n");
        kill(f->hpod, SIGKILL);
        waitpid(f->hpod, NULL, 0);
    }
    int linger = 0;
    for (int i = 0; i < f->n_sockets; i++) {
        zmq_setsockopt(f->sockets[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(f->sockets[i]);
    }
    zmq_ctx_term(f->ctx);
    snprintf(command, sizeof command, "rm -rf '%s'", f->dir);
    int rc = system(command);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Reads "key=value" of hpod's ready file into out. */
static bool ready_value(const char *path, const char *key, char *out, size_t size)
{
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return false;
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, file) != NULL) {
        size_t n = strlen(key);
        if (strncmp(line, key, n) == 0 && line[n] == '=') {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, size, "%s", line + n + 1);
            found = true;
        }
    }
    fclose(file);
    return found;
}

/* Starts hpod on the fixture's database and IPC endpoints with
 * --max-trials and waits until it listens. */
static void start_hpod(fixture *f, const char *max_trials)
{
    const char *argv[] = {
        hpod_path, "--db", f->db, "--study", study_path, "--workers", f->workers,
        "--control", f->control, "--ready-file", f->ready, "--max-trials",
        max_trials, NULL,
    };
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(f->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
        }
        execv(hpod_path, (char *const *)argv);
        _exit(127);
    }
    f->hpod = pid;
    int64_t deadline = now_ms() + START_MS;
    while (access(f->ready, F_OK) != 0) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            f->hpod = 0;
            fail_msg("hpod exited before listening; see %s", f->log);
        }
        if (now_ms() > deadline)
            fail_msg("hpod did not listen within %d ms", START_MS);
        sleep_ms(20);
    }
    assert_true(ready_value(f->ready, "workers", f->workers, sizeof f->workers));
    assert_true(ready_value(f->ready, "control", f->control, sizeof f->control));
}

/* True while hpod runs. */
static bool hpod_alive(fixture *f)
{
    int status;
    if (waitpid(f->hpod, &status, WNOHANG) == f->hpod) {
        f->hpod = 0;
        return false;
    }
    return true;
}

/* Waits for hpod to exit; returns its exit status, or -1 on timeout. */
static int wait_hpod(fixture *f)
{
    int64_t deadline = now_ms() + START_MS;
    while (now_ms() < deadline) {
        int status;
        if (waitpid(f->hpod, &status, WNOHANG) == f->hpod) {
            f->hpod = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        sleep_ms(20);
    }
    return -1;
}

/* --- peers ---------------------------------------------------------------- */

static void *open_socket(fixture *f, const char *endpoint)
{
    char err[HPO_ERR_MAX];
    assert_true(f->n_sockets < SOCKETS_MAX);
    void *sock = hpo_transport_dealer_connect(f->ctx, endpoint, false, err, sizeof err);
    if (sock == NULL)
        fail_msg("connecting to %s: %s", endpoint, err);
    f->sockets[f->n_sockets++] = sock;
    return sock;
}

static void send_msg(void *sock, const hpo_msg *msg)
{
    char err[HPO_ERR_MAX];
    if (hpo_transport_send_msg(sock, NULL, msg, err, sizeof err) != 0)
        fail_msg("sending %s: %s", hpo_msg_type_name(msg->type), err);
}

static void send_text(void *sock, const char *text)
{
    char err[HPO_ERR_MAX];
    if (hpo_transport_send(sock, NULL, text, strlen(text), err, sizeof err) != 0)
        fail_msg("sending %.60s: %s", text, err);
}

/* Receives one message; fails unless it arrives within REPLY_MS. */
static void expect_msg(void *sock, hpo_msg *msg, const char *after)
{
    char err[HPO_ERR_MAX];
    hpo_recv_result rc = hpo_transport_recv_msg(sock, NULL, REPLY_MS, msg, NULL,
                                                err, sizeof err);
    if (rc != HPO_RECV_OK)
        fail_msg("no valid answer to %s (%d): %s", after, (int)rc, err);
}

/* Fails if anything arrives within SILENCE_MS. */
static void expect_silence(void *sock, const char *after)
{
    char err[HPO_ERR_MAX];
    hpo_msg msg;
    hpo_recv_result rc = hpo_transport_recv_msg(sock, NULL, SILENCE_MS, &msg, NULL,
                                                err, sizeof err);
    if (rc == HPO_RECV_OK) {
        hpo_msg_type type = msg.type;
        hpo_msg_clear(&msg);
        fail_msg("%s was answered with %s; expected no answer", after,
                 hpo_msg_type_name(type));
    }
    assert_int_equal(rc, HPO_RECV_AGAIN);
}

static void register_peer(fixture *f, peer *p, const char *name)
{
    p->sock = open_socket(f, f->workers);
    hpo_msg msg, reply;
    hpo_msg_init(&msg, HPO_MSG_REGISTER);
    snprintf(msg.reg.host, sizeof msg.reg.host, "localhost");
    snprintf(msg.reg.name, sizeof msg.reg.name, "%s", name);
    msg.reg.pid = getpid();
    msg.reg.threads = 1;
    msg.reg.protocol = HPO_PROTO_VERSION;
    send_msg(p->sock, &msg);
    expect_msg(p->sock, &reply, "register");
    assert_int_equal(reply.type, HPO_MSG_REGISTERED);
    snprintf(p->id, sizeof p->id, "%s", reply.registered.worker_id);
    snprintf(p->token, sizeof p->token, "%s", reply.registered.token);
    hpo_msg_clear(&reply);
}

/* Sends ready until a trial (returns its id) or the study's end (returns
 * 0). */
static int64_t next_trial(peer *p)
{
    int64_t deadline = now_ms() + REPLY_MS;
    while (now_ms() < deadline) {
        hpo_msg msg, reply;
        hpo_msg_init(&msg, HPO_MSG_READY);
        snprintf(msg.ready.worker_id, sizeof msg.ready.worker_id, "%s", p->id);
        snprintf(msg.ready.token, sizeof msg.ready.token, "%s", p->token);
        send_msg(p->sock, &msg);
        expect_msg(p->sock, &reply, "ready");
        hpo_msg_type type = reply.type;
        int64_t id = type == HPO_MSG_TRIAL ? reply.trial.trial_id : 0;
        hpo_msg_clear(&reply);
        if (type == HPO_MSG_TRIAL)
            return id;
        if (type == HPO_MSG_STUDY_DONE || type == HPO_MSG_SHUTDOWN)
            return 0;
        if (type != HPO_MSG_NO_WORK)
            fail_msg("ready was answered with %s", hpo_msg_type_name(type));
        sleep_ms(50);
    }
    fail_msg("no trial within %d ms", REPLY_MS);
    return -1;
}

static void send_result(peer *p, int64_t trial_id, double val_accuracy)
{
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_RESULT);
    snprintf(msg.result.worker_id, sizeof msg.result.worker_id, "%s", p->id);
    snprintf(msg.result.token, sizeof msg.result.token, "%s", p->token);
    msg.result.trial_id = trial_id;
    msg.result.status = HPO_TRIAL_OK;
    msg.result.metrics = cJSON_CreateObject();
    cJSON_AddNumberToObject(msg.result.metrics, "val_accuracy", val_accuracy);
    msg.result.epochs_run = 2;
    msg.result.wall_seconds = 0.1;
    send_msg(p->sock, &msg);
    hpo_msg_clear(&msg);
}

/* Sends a result and checks its acknowledgment. */
static void finish_trial(peer *p, int64_t trial_id, double val_accuracy)
{
    send_result(p, trial_id, val_accuracy);
    hpo_msg ack;
    expect_msg(p->sock, &ack, "result");
    if (ack.type != HPO_MSG_RESULT_ACK)
        fail_msg("result was answered with %s", hpo_msg_type_name(ack.type));
    assert_int_equal(ack.result_ack.trial_id, trial_id);
    hpo_msg_clear(&ack);
}

/* Runs a good worker to the study's end and checks that hpod exits 0 with
 * `expected` ok trials, ids 1..expected, each stored once. */
static void good_worker_completes(fixture *f, peer *p, int expected_new)
{
    for (int i = 0; i < expected_new; i++) {
        int64_t id = next_trial(p);
        assert_true(id > 0);
        finish_trial(p, id, 0.5);
    }
    assert_int_equal(next_trial(p), 0);
    assert_int_equal(wait_hpod(f), 0);
}

static void check_trials(const fixture *f, size_t expected, const double *objectives)
{
    hpo_storage *st = NULL;
    char err[HPO_ERR_MAX];
    if (hpo_storage_open(f->db, false, &st, err, sizeof err) != 0)
        fail_msg("%s", err);
    hpo_trial_record *records = NULL;
    size_t n = 0;
    if (hpo_storage_trials_list(st, &records, &n, err, sizeof err) != 0)
        fail_msg("%s", err);
    hpo_storage_close(&st);
    assert_int_equal(n, expected);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(records[i].id, (int64_t)i + 1);
        assert_int_equal(records[i].status, HPO_TRIAL_STATE_OK);
        if (objectives != NULL)
            assert_true(records[i].objective == objectives[i]);
    }
    hpo_trial_records_free(&records, n);
}

/* --- the bad-input table ---------------------------------------------------- */

typedef enum { WORKERS, CONTROL } endpoint;

typedef struct {
    const char *what;
    endpoint where;
    const char *text;          /* "%s" stands for the sender's worker id */
    hpo_proto_status expected; /* the error code of the reply */
} bad_input;

#define PROGRESS(fields) "{\"v\":1,\"type\":\"progress\",\"worker_id\":\"%s\"," fields "}"
#define RESULT(fields) "{\"v\":1,\"type\":\"result\",\"worker_id\":\"%s\"," fields "}"

static const bad_input bad_inputs[] = {
    {"truncated JSON", WORKERS, "{\"v\":1,\"type\":\"ready\",\"worker_id\":", HPO_PROTO_INVALID_JSON},
    {"trailing bytes", WORKERS, "{\"v\":1,\"type\":\"ready\",\"worker_id\":\"%s\"}}", HPO_PROTO_INVALID_JSON},
    {"not an object", WORKERS, "[\"ready\"]", HPO_PROTO_INVALID_JSON},
    {"empty frame", WORKERS, "", HPO_PROTO_INVALID_JSON},
    {"NaN literal", WORKERS, PROGRESS("\"trial_id\":1,\"epoch\":1,\"epochs\":2,\"loss\":NaN,"
     "\"accuracy\":0,\"val_loss\":0,\"val_accuracy\":0,\"seconds\":0,\"images_per_second\":0"),
     HPO_PROTO_INVALID_JSON},
    {"no version", WORKERS, "{\"type\":\"ready\",\"worker_id\":\"%s\"}", HPO_PROTO_MISSING_FIELD},
    {"version 2", WORKERS, "{\"v\":2,\"type\":\"ready\",\"worker_id\":\"%s\"}", HPO_PROTO_BAD_VERSION},
    {"unknown type", WORKERS, "{\"v\":1,\"type\":\"steal\",\"worker_id\":\"%s\"}", HPO_PROTO_UNKNOWN_TYPE},
    {"worker_id a number", WORKERS, "{\"v\":1,\"type\":\"ready\",\"worker_id\":1}", HPO_PROTO_WRONG_TYPE},
    {"trial_id a string", WORKERS, RESULT("\"trial_id\":\"1\",\"status\":\"ok\",\"metrics\":{},"
     "\"epochs_run\":1,\"wall_seconds\":1"), HPO_PROTO_WRONG_TYPE},
    {"metrics an array", WORKERS, RESULT("\"trial_id\":1,\"status\":\"ok\",\"metrics\":[0.9],"
     "\"epochs_run\":1,\"wall_seconds\":1"), HPO_PROTO_WRONG_TYPE},
    {"loss null", WORKERS, PROGRESS("\"trial_id\":1,\"epoch\":1,\"epochs\":2,\"loss\":null,"
     "\"accuracy\":0,\"val_loss\":0,\"val_accuracy\":0,\"seconds\":0,\"images_per_second\":0"),
     HPO_PROTO_WRONG_TYPE},
    {"ready without worker_id", WORKERS, "{\"v\":1,\"type\":\"ready\"}", HPO_PROTO_MISSING_FIELD},
    {"huge trial id", WORKERS, RESULT("\"trial_id\":1e300,\"status\":\"ok\",\"metrics\":{},"
     "\"epochs_run\":1,\"wall_seconds\":1"), HPO_PROTO_INVALID_VALUE},
    {"trial id 2^53", WORKERS, "{\"v\":1,\"type\":\"heartbeat\",\"worker_id\":\"%s\","
     "\"trial_id\":9007199254740992}", HPO_PROTO_INVALID_VALUE},
    {"huge thread count", WORKERS, "{\"v\":1,\"type\":\"register\",\"host\":\"h\",\"pid\":1,"
     "\"threads\":1e12,\"protocol\":1,\"name\":\"n\"}", HPO_PROTO_INVALID_VALUE},
    {"infinite loss", WORKERS, PROGRESS("\"trial_id\":1,\"epoch\":1,\"epochs\":2,\"loss\":1e999,"
     "\"accuracy\":0,\"val_loss\":0,\"val_accuracy\":0,\"seconds\":0,\"images_per_second\":0"),
     HPO_PROTO_INVALID_VALUE},
    {"infinite metric", WORKERS, RESULT("\"trial_id\":1,\"status\":\"ok\",\"metrics\":"
     "{\"val_accuracy\":-1e999},\"epochs_run\":1,\"wall_seconds\":1"), HPO_PROTO_INVALID_VALUE},
    {"negative epoch", WORKERS, PROGRESS("\"trial_id\":1,\"epoch\":-1,\"epochs\":2,\"loss\":1,"
     "\"accuracy\":0,\"val_loss\":0,\"val_accuracy\":0,\"seconds\":0,\"images_per_second\":0"),
     HPO_PROTO_INVALID_VALUE},
    {"negative epochs", WORKERS, PROGRESS("\"trial_id\":1,\"epoch\":1,\"epochs\":-2,\"loss\":1,"
     "\"accuracy\":0,\"val_loss\":0,\"val_accuracy\":0,\"seconds\":0,\"images_per_second\":0"),
     HPO_PROTO_INVALID_VALUE},
    {"negative epochs_run", WORKERS, RESULT("\"trial_id\":1,\"status\":\"ok\",\"metrics\":{},"
     "\"epochs_run\":-3,\"wall_seconds\":1"), HPO_PROTO_INVALID_VALUE},
    {"negative trial id", WORKERS, RESULT("\"trial_id\":-1,\"status\":\"ok\",\"metrics\":{},"
     "\"epochs_run\":1,\"wall_seconds\":1"), HPO_PROTO_INVALID_VALUE},
    {"fractional trial id", WORKERS, RESULT("\"trial_id\":1.5,\"status\":\"ok\",\"metrics\":{},"
     "\"epochs_run\":1,\"wall_seconds\":1"), HPO_PROTO_INVALID_VALUE},
    {"unknown status", WORKERS, RESULT("\"trial_id\":1,\"status\":\"won\",\"metrics\":{},"
     "\"epochs_run\":1,\"wall_seconds\":1"), HPO_PROTO_INVALID_VALUE},
    {"worker_id too long", WORKERS, "{\"v\":1,\"type\":\"ready\",\"worker_id\":"
     "\"wwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwwww\"}",
     HPO_PROTO_INVALID_VALUE},
    {"unregistered worker id", WORKERS, "{\"v\":1,\"type\":\"ready\",\"worker_id\":\"w999\"}",
     HPO_PROTO_UNKNOWN_WORKER},
    {"coordinator message from a worker", WORKERS, "{\"v\":1,\"type\":\"study_done\"}",
     HPO_PROTO_UNEXPECTED},
    {"query on the workers' endpoint", WORKERS, "{\"v\":1,\"type\":\"query\",\"command\":\"status\"}",
     HPO_PROTO_UNEXPECTED},
    {"bad JSON query", CONTROL, "{\"v\":1,\"type\":\"query\",", HPO_PROTO_INVALID_JSON},
    {"unknown command", CONTROL, "{\"v\":1,\"type\":\"query\",\"command\":\"drop\"}",
     HPO_PROTO_INVALID_VALUE},
    {"args not an object", CONTROL, "{\"v\":1,\"type\":\"query\",\"command\":\"summary\","
     "\"args\":[3]}", HPO_PROTO_WRONG_TYPE},
    {"negative top", CONTROL, "{\"v\":1,\"type\":\"query\",\"command\":\"summary\","
     "\"args\":{\"top\":-2}}", HPO_PROTO_INVALID_ARGUMENT},
    {"huge top", CONTROL, "{\"v\":1,\"type\":\"query\",\"command\":\"summary\","
     "\"args\":{\"top\":1e300}}", HPO_PROTO_INVALID_ARGUMENT},
    {"worker message on the control endpoint", CONTROL, "{\"v\":1,\"type\":\"ready\","
     "\"worker_id\":\"w1\"}", HPO_PROTO_UNEXPECTED},
};

/* Every entry of the table gets an error reply with its code while a
 * worker holds trial 1; the worker then finishes the study. */
static void test_bad_input_table(void **state)
{
    fixture *f = *state;
    start_hpod(f, "2");
    peer good;
    register_peer(f, &good, "good");
    int64_t first = next_trial(&good);
    assert_int_equal(first, 1);
    void *control = open_socket(f, f->control);

    for (size_t i = 0; i < sizeof bad_inputs / sizeof bad_inputs[0]; i++) {
        const bad_input *b = &bad_inputs[i];
        char text[1024];
        snprintf(text, sizeof text, b->text, good.id);
        void *sock = b->where == WORKERS ? good.sock : control;
        send_text(sock, text);

        hpo_msg reply;
        expect_msg(sock, &reply, b->what);
        if (reply.type != HPO_MSG_ERROR)
            fail_msg("%s: answered with %s, expected error %s", b->what,
                     hpo_msg_type_name(reply.type), hpo_proto_status_name(b->expected));
        if (reply.error.code != b->expected)
            fail_msg("%s: error %s (%s), expected %s", b->what,
                     hpo_proto_status_name(reply.error.code), reply.error.message,
                     hpo_proto_status_name(b->expected));
        assert_true(strlen(reply.error.message) > 0);
        hpo_msg_clear(&reply);
    }

    /* None of it disturbed the trial in flight or the good worker. */
    assert_true(hpod_alive(f));
    finish_trial(&good, first, 0.25);
    good_worker_completes(f, &good, 1);
    const double objectives[] = {0.25, 0.5};
    check_trials(f, 2, objectives);
}

/* A frame over 1 MiB makes libzmq drop the sender's connection, and hpod
 * drops a message without the empty delimiter. Neither gets a reply, and
 * neither affects other peers. */
static void test_oversized_and_unframed_dropped(void **state)
{
    fixture *f = *state;
    start_hpod(f, "1");
    peer good;
    register_peer(f, &good, "good");

    void *big = open_socket(f, f->workers);
    size_t size = HPO_MSG_MAX_BYTES + 4096;
    char *text = malloc(size + 1);
    assert_non_null(text);
    int n = snprintf(text, size + 1, "{\"v\":1,\"type\":\"ready\",\"worker_id\":\"%s\",\"pad\":\"",
                     good.id);
    memset(text + n, 'x', size - (size_t)n - 2);
    memcpy(text + size - 2, "\"}", 3);
    send_text(big, text);
    free(text);
    expect_silence(big, "a frame over the size limit");

    /* A body frame alone, as a raw DEALER sends it without the delimiter. */
    void *raw = open_socket(f, f->workers);
    const char *body = "{\"v\":1,\"type\":\"ready\",\"worker_id\":\"w1\"}";
    assert_true(zmq_send(raw, body, strlen(body), 0) >= 0);
    expect_silence(raw, "a frame without the empty delimiter");
    /* Three frames: delimiter and two bodies. */
    assert_true(zmq_send(raw, "", 0, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(raw, body, strlen(body), ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(raw, body, strlen(body), 0) >= 0);
    expect_silence(raw, "a message with two body frames");

    assert_true(hpod_alive(f));
    good_worker_completes(f, &good, 1);
    check_trials(f, 1, NULL);
}

/* A result for a trial id that the study never had is acknowledged, so
 * that a worker stops resending it, and nothing is stored. Progress for
 * such a trial makes hpod send stop_trial to the sender. */
static void test_unknown_trial_id(void **state)
{
    fixture *f = *state;
    start_hpod(f, "1");
    peer good;
    register_peer(f, &good, "good");

    finish_trial(&good, 999, 0.99);

    char text[512];
    snprintf(text, sizeof text, PROGRESS("\"token\":\"%s\",\"trial_id\":998,\"epoch\":1,"
             "\"epochs\":2,\"loss\":1,\"accuracy\":0.1,\"val_loss\":1,\"val_accuracy\":0.1,"
             "\"seconds\":1,\"images_per_second\":1"), good.id, good.token);
    send_text(good.sock, text);
    hpo_msg reply;
    expect_msg(good.sock, &reply, "progress of an unknown trial");
    assert_int_equal(reply.type, HPO_MSG_STOP_TRIAL);
    assert_int_equal(reply.stop_trial.trial_id, 998);
    hpo_msg_clear(&reply);

    good_worker_completes(f, &good, 1);
    const double objectives[] = {0.5};
    check_trials(f, 1, objectives);
}

/* Trial 1 runs on worker A. Progress for it from worker B is answered
 * with stop_trial to B and changes nothing for A. A result for it from B
 * is acknowledged and stored (the first result wins, as for a late result
 * from a worker declared lost); A is told to stop, and A's own result then
 * counts as a duplicate: trial 1 is stored once, with B's value and B as
 * its worker. */
static void test_result_for_another_workers_trial(void **state)
{
    fixture *f = *state;
    start_hpod(f, "2");
    peer a, b;
    register_peer(f, &a, "holder");
    register_peer(f, &b, "intruder");
    int64_t id = next_trial(&a);
    assert_int_equal(id, 1);

    char text[512];
    snprintf(text, sizeof text, PROGRESS("\"token\":\"%s\",\"trial_id\":1,\"epoch\":1,"
             "\"epochs\":2,\"loss\":1,\"accuracy\":0.1,\"val_loss\":1,\"val_accuracy\":0.1,"
             "\"seconds\":1,\"images_per_second\":1"), b.id, b.token);
    send_text(b.sock, text);
    hpo_msg reply;
    expect_msg(b.sock, &reply, "progress for another worker's trial");
    assert_int_equal(reply.type, HPO_MSG_STOP_TRIAL);
    assert_int_equal(reply.stop_trial.trial_id, 1);
    hpo_msg_clear(&reply);
    expect_silence(a.sock, "another worker's progress");

    finish_trial(&b, 1, 0.75);
    expect_msg(a.sock, &reply, "another worker's result for A's trial");
    assert_int_equal(reply.type, HPO_MSG_STOP_TRIAL);
    assert_int_equal(reply.stop_trial.trial_id, 1);
    hpo_msg_clear(&reply);

    finish_trial(&a, 1, 0.1);
    good_worker_completes(f, &a, 1);
    const double objectives[] = {0.75, 0.5};
    check_trials(f, 2, objectives);

    /* Trial 1's row names B, whose result it holds, not A. */
    hpo_storage *st = NULL;
    char err[HPO_ERR_MAX];
    hpo_trial_record r;
    bool found = false;
    if (hpo_storage_open(f->db, false, &st, err, sizeof err) != 0 ||
        hpo_storage_trial_get(st, 1, &r, &found, err, sizeof err) != 0)
        fail_msg("%s", err);
    hpo_storage_close(&st);
    assert_true(found);
    assert_int_equal(r.worker_id, strtoll(b.id + 1, NULL, 10));
    assert_int_not_equal(r.worker_id, strtoll(a.id + 1, NULL, 10));
    hpo_trial_record_clear(&r);
}

/* CROWD peers connect at once, and each sends a truncated frame and a
 * ready with an unregistered worker id. Every peer gets both error
 * replies, and a good worker then completes the study. */
static void test_bogus_peer_crowd(void **state)
{
    fixture *f = *state;
    start_hpod(f, "1");
    void *crowd[CROWD];
    for (int i = 0; i < CROWD; i++) {
        crowd[i] = open_socket(f, f->workers);
        send_text(crowd[i], "{\"v\":1,\"type\":");
        char text[128];
        snprintf(text, sizeof text, "{\"v\":1,\"type\":\"ready\",\"worker_id\":\"w%d\"}",
                 1000 + i);
        send_text(crowd[i], text);
    }

    int64_t deadline = now_ms() + 4 * REPLY_MS;
    for (int i = 0; i < CROWD; i++) {
        const hpo_proto_status expected[] = {HPO_PROTO_INVALID_JSON, HPO_PROTO_UNKNOWN_WORKER};
        for (int k = 0; k < 2; k++) {
            char err[HPO_ERR_MAX];
            hpo_msg reply;
            int wait = (int)(deadline - now_ms());
            hpo_recv_result rc = hpo_transport_recv_msg(crowd[i], NULL, wait > 0 ? wait : 0,
                                                        &reply, NULL, err, sizeof err);
            if (rc != HPO_RECV_OK)
                fail_msg("bogus peer %d got no reply %d: %s", i, k + 1, err);
            assert_int_equal(reply.type, HPO_MSG_ERROR);
            assert_int_equal(reply.error.code, expected[k]);
            hpo_msg_clear(&reply);
        }
    }

    assert_true(hpod_alive(f));
    peer good;
    register_peer(f, &good, "good");
    good_worker_completes(f, &good, 1);
    check_trials(f, 1, NULL);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s HPOD STUDY_FILE\n", argv[0]);
        return 2;
    }
    hpod_path = argv[1];
    study_path = argv[2];
    signal(SIGPIPE, SIG_IGN);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_input_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_and_unframed_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_trial_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_result_for_another_workers_trial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bogus_peer_crowd, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
