/* Tests of how hpod binds a worker id to its peer: session tokens, CURVE
 * keys, the worker kind check, `leave` and the per-peer registration
 * limit. A real hpod runs on IPC sockets in a temporary folder, and fake
 * workers speak the protocol through the transport library. Two tests also
 * run the real hpo-worker.
 *
 * Usage: test_worker_identity HPOD HPO_WORKER CIFAR_STUDY SYNTHETIC_STUDY */
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

#include "hpo/curve.h"
#include "hpo/error.h"
#include "hpo/protocol.h"
#include "hpo/transport.h"

static const char *hpod_path;
static const char *worker_path;
static const char *cifar_study;
static const char *synthetic_study;

/* Generous, because CI runs every test on two shared cores. */
#define REPLY_MS 10000
#define START_MS 20000

/* Sockets that one test may open. */
#define MAX_SOCKETS 48

/* The registration limit per peer and window of daemon/server_identity.h,
 * which the flood test expects to see enforced. */
#define REGISTER_LIMIT 32

typedef struct {
    char dir[64];
    char db[128];
    char ready[128];
    char log[128];
    char workers[256];
    char control[256];
    pid_t hpod;
    pid_t worker;        /* a real hpo-worker, 0 when none runs */
    void *ctx;
    void *sockets[MAX_SOCKETS];
    int n_sockets;
    bool curve;          /* hpod runs with CURVE; fake workers need keys */
    hpo_curve_keypair server_keys, keys[2]; /* with curve: hpod's and two
                                               workers' key pairs */
} fixture;

typedef struct {
    void *sock;
    char id[HPO_NAME_MAX + 1];
    char token[HPO_TOKEN_MAX + 1];
} fake_worker;

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
    strcpy(f->dir, "/tmp/hpo-test-identity-XXXXXX");
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
    *state = f;
    return f->ctx != NULL ? 0 : -1;
}

static void print_log(const fixture *f)
{
    char command[256];
    snprintf(command, sizeof command, "tail -n 30 '%s' >&2", f->log);
    if (system(command) != 0)
        fprintf(stderr, "(no hpod log)\n");
}

static void stop_process(pid_t *pid)
{
    if (*pid <= 0)
        return;
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->hpod > 0)
        print_log(f);
    stop_process(&f->worker);
    stop_process(&f->hpod);
    int linger = 0;
    for (int i = 0; i < f->n_sockets; i++) {
        zmq_setsockopt(f->sockets[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(f->sockets[i]);
    }
    zmq_ctx_term(f->ctx);
    char command[200];
    snprintf(command, sizeof command, "rm -rf '%s'", f->dir);
    int rc = system(command);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Reads "key=value" from the ready file into out. */
static bool read_ready_value(const char *path, const char *key, char *out, size_t size)
{
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return false;
    char line[512];
    bool found = false;
    size_t key_len = strlen(key);
    while (!found && fgets(line, sizeof line, file) != NULL) {
        if (strncmp(line, key, key_len) == 0 && line[key_len] == '=') {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, size, "%s", line + key_len + 1);
            found = true;
        }
    }
    fclose(file);
    return found;
}

/* Starts a program with stdout and stderr appended to log_path. */
static pid_t spawn(const char *const *argv, const char *log_path)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* Writes hpod's key pair and an authorized-keys file that lists both
 * workers' keys with the worker role, and their paths into secret_path
 * and keys_path. */
static void write_curve_files(fixture *f, char *secret_path, char *keys_path, size_t size)
{
    char err[HPO_ERR_MAX], prefix[128];
    snprintf(prefix, sizeof prefix, "%s/server", f->dir);
    assert_int_equal(hpo_curve_keypair_generate(&f->server_keys, err, sizeof err), 0);
    assert_int_equal(hpo_curve_keypair_write(&f->server_keys, prefix, err, sizeof err), 0);
    snprintf(secret_path, size, "%s.key", prefix);

    snprintf(keys_path, size, "%s/authorized_keys", f->dir);
    FILE *file = fopen(keys_path, "w");
    assert_non_null(file);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(hpo_curve_keypair_generate(&f->keys[i], err, sizeof err), 0);
        fprintf(file, "%s worker  # test worker %d\n", f->keys[i].public_key, i);
    }
    assert_int_equal(fclose(file), 0);
}

/* Starts hpod on the study file with the given extra options
 * (NULL-terminated) and waits until it listens. */
static void start_hpod(fixture *f, const char *study, ...)
{
    const char *argv[40];
    int argc = 0;
    argv[argc++] = hpod_path;
    argv[argc++] = "--db";
    argv[argc++] = f->db;
    argv[argc++] = "--study";
    argv[argc++] = study;
    argv[argc++] = "--workers";
    argv[argc++] = f->workers;
    argv[argc++] = "--control";
    argv[argc++] = f->control;
    argv[argc++] = "--ready-file";
    argv[argc++] = f->ready;
    argv[argc++] = "--linger";
    char secret_path[256], keys_path[256];
    if (f->curve) {
        write_curve_files(f, secret_path, keys_path, sizeof secret_path);
        argv[argc++] = "--curve-secret";
        argv[argc++] = secret_path;
        argv[argc++] = "--authorized-keys";
        argv[argc++] = keys_path;
    }
    va_list ap;
    va_start(ap, study);
    const char *extra;
    while ((extra = va_arg(ap, const char *)) != NULL && argc < 38)
        argv[argc++] = extra;
    va_end(ap);
    argv[argc] = NULL;

    f->hpod = spawn(argv, f->log);
    int64_t deadline = now_ms() + START_MS;
    while (access(f->ready, F_OK) != 0) {
        int status;
        if (waitpid(f->hpod, &status, WNOHANG) == f->hpod) {
            f->hpod = 0;
            print_log(f);
            fail_msg("hpod exited before listening (status %d)", status);
        }
        if (now_ms() > deadline)
            fail_msg("hpod did not write %s within %d ms", f->ready, START_MS);
        sleep_ms(20);
    }
    assert_true(read_ready_value(f->ready, "workers", f->workers, sizeof f->workers));
    assert_true(read_ready_value(f->ready, "control", f->control, sizeof f->control));
}

/* Returns the number of lines of hpod's log that contain every one of the
 * given strings (NULL-terminated). */
static int log_count(const fixture *f, ...)
{
    FILE *file = fopen(f->log, "r");
    if (file == NULL)
        return 0;
    int count = 0;
    char line[4096];
    while (fgets(line, sizeof line, file) != NULL) {
        bool all = true;
        va_list ap;
        va_start(ap, f);
        const char *part;
        while (all && (part = va_arg(ap, const char *)) != NULL)
            all = strstr(line, part) != NULL;
        va_end(ap);
        count += all;
    }
    fclose(file);
    return count;
}

/* --- fake workers ----------------------------------------------------------- */

/* Connects a fake worker; with CURVE, with worker key pair key_index. */
static void worker_connect(fixture *f, fake_worker *w, int key_index)
{
    char err[HPO_ERR_MAX];
    memset(w, 0, sizeof *w);
    if (f->curve) {
        hpo_curve_settings curve = {.server = false, .own = f->keys[key_index]};
        snprintf(curve.server_key, sizeof curve.server_key, "%s",
                 f->server_keys.public_key);
        w->sock = hpo_transport_dealer_connect_curve(f->ctx, f->workers, false, &curve,
                                                     err, sizeof err);
    } else {
        w->sock = hpo_transport_dealer_connect(f->ctx, f->workers, false, err, sizeof err);
    }
    if (w->sock == NULL)
        fail_msg("connecting to %s failed: %s", f->workers, err);
    assert_true(f->n_sockets < MAX_SOCKETS);
    f->sockets[f->n_sockets++] = w->sock;
}

static void worker_send(fake_worker *w, const hpo_msg *msg)
{
    char err[HPO_ERR_MAX];
    if (hpo_transport_send_msg(w->sock, NULL, msg, err, sizeof err) != 0)
        fail_msg("sending %s failed: %s", hpo_msg_type_name(msg->type), err);
}

/* Receives the next message within REPLY_MS. */
static void worker_receive(fake_worker *w, hpo_msg *msg, const char *after)
{
    char err[HPO_ERR_MAX];
    hpo_recv_result rc = hpo_transport_recv_msg(w->sock, NULL, REPLY_MS, msg, NULL,
                                                err, sizeof err);
    if (rc != HPO_RECV_OK)
        fail_msg("no valid answer to %s (%d): %s", after, (int)rc, err);
}

/* Receives an error into *msg and checks its code. */
static void worker_expect_error(fake_worker *w, hpo_proto_status code, hpo_msg *msg,
                                const char *after)
{
    worker_receive(w, msg, after);
    if (msg->type != HPO_MSG_ERROR)
        fail_msg("%s was answered with %s; expected error %s", after,
                 hpo_msg_type_name(msg->type), hpo_proto_status_name(code));
    if (msg->error.code != code)
        fail_msg("%s was answered with error %s (%s); expected %s", after,
                 hpo_proto_status_name(msg->error.code), msg->error.message,
                 hpo_proto_status_name(code));
}

static void worker_send_register(fake_worker *w, const char *name, hpo_worker_kind kind,
                                 const char *token)
{
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_REGISTER);
    snprintf(msg.reg.host, sizeof msg.reg.host, "localhost");
    snprintf(msg.reg.name, sizeof msg.reg.name, "%s", name);
    msg.reg.pid = getpid();
    msg.reg.threads = 1;
    msg.reg.protocol = HPO_PROTO_VERSION;
    msg.reg.kind = kind;
    snprintf(msg.reg.token, sizeof msg.reg.token, "%s", token);
    worker_send(w, &msg);
}

/* Registers and keeps the id and token from registered. */
static void worker_register_kind(fake_worker *w, const char *name, hpo_worker_kind kind,
                                 const char *token)
{
    worker_send_register(w, name, kind, token);
    hpo_msg reply;
    worker_receive(w, &reply, "register");
    if (reply.type != HPO_MSG_REGISTERED)
        fail_msg("register was answered with %s: %s", hpo_msg_type_name(reply.type),
                 reply.type == HPO_MSG_ERROR ? reply.error.message : "");
    snprintf(w->id, sizeof w->id, "%s", reply.registered.worker_id);
    snprintf(w->token, sizeof w->token, "%s", reply.registered.token);
    assert_int_equal(strlen(w->token), 32);
    hpo_msg_clear(&reply);
}

/* Registers a worker that trains on CIFAR-10. */
static void worker_register(fake_worker *w, const char *name, const char *token)
{
    worker_register_kind(w, name, HPO_WORKER_KIND_CIFAR10, token);
}

static void worker_send_ready(fake_worker *w, const char *id, const char *token)
{
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_READY);
    snprintf(msg.ready.worker_id, sizeof msg.ready.worker_id, "%s", id);
    snprintf(msg.ready.token, sizeof msg.ready.token, "%s", token);
    worker_send(w, &msg);
}

/* Sends ready with the worker's own credentials and returns the type of
 * the reply: trial, no_work or study_done. */
static hpo_msg_type worker_ready(fake_worker *w)
{
    worker_send_ready(w, w->id, w->token);
    hpo_msg reply;
    worker_receive(w, &reply, "ready");
    hpo_msg_type type = reply.type;
    if (type == HPO_MSG_ERROR)
        fail_msg("ready from %s was answered with error %s: %s", w->id,
                 hpo_proto_status_name(reply.error.code), reply.error.message);
    hpo_msg_clear(&reply);
    return type;
}

static void worker_send_leave(fake_worker *w, const char *token)
{
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_LEAVE);
    snprintf(msg.leave.worker_id, sizeof msg.leave.worker_id, "%s", w->id);
    snprintf(msg.leave.token, sizeof msg.leave.token, "%s", token);
    snprintf(msg.leave.reason, sizeof msg.leave.reason, "test over");
    worker_send(w, &msg);
}

/* --- control queries --------------------------------------------------------- */

/* Returns how many workers `hpoctl status` would list, and whether one
 * has the given name. */
static int status_workers(fixture *f, const char *name, bool *listed)
{
    char err[HPO_ERR_MAX];
    hpo_msg query, reply;
    hpo_msg_init(&query, HPO_MSG_QUERY);
    query.query.command = HPO_QUERY_STATUS;
    hpo_recv_result rc = hpo_transport_request(f->ctx, f->control, &query, REPLY_MS,
                                               &reply, err, sizeof err);
    if (rc != HPO_RECV_OK)
        fail_msg("status query failed (%d): %s", (int)rc, err);
    assert_int_equal(reply.type, HPO_MSG_REPLY);
    const cJSON *workers = cJSON_GetObjectItemCaseSensitive(reply.reply.data, "workers");
    assert_true(cJSON_IsArray(workers));
    if (listed != NULL) {
        *listed = false;
        const cJSON *item;
        cJSON_ArrayForEach(item, workers) {
            const cJSON *worker_name = cJSON_GetObjectItemCaseSensitive(item, "name");
            if (cJSON_IsString(worker_name) && strcmp(worker_name->valuestring, name) == 0)
                *listed = true;
        }
    }
    int n = cJSON_GetArraySize(workers);
    hpo_msg_clear(&reply);
    return n;
}

/* Waits until status lists `expected` workers; returns the time it took,
 * or fails after timeout_ms. */
static int64_t wait_status_workers(fixture *f, int expected, int timeout_ms)
{
    int64_t start = now_ms();
    int n = -1;
    while (now_ms() - start < timeout_ms) {
        n = status_workers(f, "", NULL);
        if (n == expected)
            return now_ms() - start;
        sleep_ms(50);
    }
    fail_msg("status lists %d workers after %d ms; expected %d", n, timeout_ms, expected);
    return -1;
}

/* --- tests ------------------------------------------------------------------- */

/* A registered worker that sends another worker's id, with its own token
 * or none, is rejected with worker_id_taken and a warning that names the
 * id and both peers. The rightful worker keeps its id and its trial, and
 * its own reconnect with the token moves the id to the new socket. */
static void test_claim_by_id_rejected(void **state)
{
    fixture *f = *state;
    start_hpod(f, cifar_study, "--max-trials", "2", NULL);
    fake_worker owner, intruder, reconnected;
    worker_connect(f, &owner, 0);
    worker_connect(f, &intruder, 0);
    worker_register(&owner, "owner", "");
    worker_register(&intruder, "intruder", "");
    assert_string_not_equal(owner.token, intruder.token);
    assert_int_equal(worker_ready(&owner), HPO_MSG_TRIAL);

    hpo_msg reply;
    worker_send_ready(&intruder, owner.id, intruder.token);
    worker_expect_error(&intruder, HPO_PROTO_WORKER_ID_TAKEN, &reply, "ready with a foreign id");
    assert_non_null(strstr(reply.error.message, owner.id));
    assert_non_null(strstr(reply.error.message, "a wrong session token"));
    assert_non_null(strstr(reply.error.message, "register to get a worker id"));
    hpo_msg_clear(&reply);
    worker_send_ready(&intruder, owner.id, "");
    worker_expect_error(&intruder, HPO_PROTO_WORKER_ID_TAKEN, &reply, "ready without a token");
    assert_non_null(strstr(reply.error.message, "no session token"));
    hpo_msg_clear(&reply);
    assert_int_equal(log_count(f, "ready claiming worker", owner.id, "rejected", NULL), 2);

    /* A heartbeat with the owner's id and a wrong token of the right
     * length is rejected too. */
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_HEARTBEAT);
    snprintf(msg.heartbeat.worker_id, sizeof msg.heartbeat.worker_id, "%s", owner.id);
    snprintf(msg.heartbeat.token, sizeof msg.heartbeat.token, "%s", owner.token);
    msg.heartbeat.token[0] = msg.heartbeat.token[0] == '0' ? '1' : '0';
    worker_send(&intruder, &msg);
    worker_expect_error(&intruder, HPO_PROTO_WORKER_ID_TAKEN, &reply, "heartbeat");
    hpo_msg_clear(&reply);

    /* The owner on a new socket, with its token: accepted, and the reply
     * goes to the new socket. Its trial is still its own: ready while
     * holding it re-queues it, and the owner gets it back. */
    worker_connect(f, &reconnected, 0);
    snprintf(reconnected.id, sizeof reconnected.id, "%s", owner.id);
    snprintf(reconnected.token, sizeof reconnected.token, "%s", owner.token);
    assert_int_equal(worker_ready(&reconnected), HPO_MSG_TRIAL);
    assert_int_equal(status_workers(f, "owner", NULL), 2);
}

/* A register with the host, pid and name of a live worker replaces it
 * only with that worker's token. */
static void test_claim_by_register_rejected(void **state)
{
    fixture *f = *state;
    start_hpod(f, cifar_study, "--max-trials", "2", NULL);
    fake_worker owner, copycat;
    worker_connect(f, &owner, 0);
    worker_connect(f, &copycat, 0);
    worker_register(&owner, "same-name", "");

    hpo_msg reply;
    worker_send_register(&copycat, "same-name", HPO_WORKER_KIND_CIFAR10, "");
    worker_expect_error(&copycat, HPO_PROTO_WORKER_ID_TAKEN, &reply, "register without a token");
    assert_non_null(strstr(reply.error.message, owner.id));
    assert_non_null(strstr(reply.error.message, "give it its own --name"));
    hpo_msg_clear(&reply);
    worker_send_register(&copycat, "same-name", HPO_WORKER_KIND_CIFAR10,
                         "0123456789abcdef0123456789abcdef");
    worker_expect_error(&copycat, HPO_PROTO_WORKER_ID_TAKEN, &reply, "register, wrong token");
    hpo_msg_clear(&reply);
    assert_int_equal(log_count(f, "register claiming worker", owner.id, "rejected", NULL), 2);

    /* The owner still works under its id. */
    assert_int_equal(worker_ready(&owner), HPO_MSG_TRIAL);

    /* With the owner's token, the new socket replaces the registration,
     * as hpo-worker's reconnect does: a new id, and the old one is gone. */
    char old_id[HPO_NAME_MAX + 1], old_token[HPO_TOKEN_MAX + 1];
    snprintf(old_id, sizeof old_id, "%s", owner.id);
    snprintf(old_token, sizeof old_token, "%s", owner.token);
    worker_register(&copycat, "same-name", old_token);
    assert_string_not_equal(copycat.id, old_id);
    assert_string_not_equal(copycat.token, old_token);
    worker_send_ready(&owner, old_id, old_token);
    worker_expect_error(&owner, HPO_PROTO_UNKNOWN_WORKER, &reply, "ready with the old id");
    hpo_msg_clear(&reply);
    assert_int_equal(status_workers(f, "", NULL), 1);
}

/* With CURVE, a token alone is not enough: a peer with another key that
 * presents a worker's id and token is rejected, while the worker's own
 * key on a new socket is accepted. */
static void test_curve_key_binds_id(void **state)
{
    fixture *f = *state;
    f->curve = true;
    start_hpod(f, cifar_study, "--max-trials", "2", NULL);
    fake_worker owner, other_key, same_key;
    worker_connect(f, &owner, 0);
    worker_connect(f, &other_key, 1);
    worker_register(&owner, "keyed", "");
    assert_int_equal(worker_ready(&owner), HPO_MSG_TRIAL);

    hpo_msg reply;
    worker_send_ready(&other_key, owner.id, owner.token);
    worker_expect_error(&other_key, HPO_PROTO_WORKER_ID_TAKEN, &reply,
                        "ready with a stolen token");
    assert_non_null(strstr(reply.error.message, "another CURVE key"));
    hpo_msg_clear(&reply);
    assert_int_equal(log_count(f, "claiming worker", owner.id, "another CURVE key",
                               f->keys[0].public_key, f->keys[1].public_key, NULL), 1);

    worker_send_register(&other_key, "keyed", HPO_WORKER_KIND_CIFAR10, owner.token);
    worker_expect_error(&other_key, HPO_PROTO_WORKER_ID_TAKEN, &reply,
                        "register with a stolen token");
    hpo_msg_clear(&reply);

    worker_connect(f, &same_key, 0);
    snprintf(same_key.id, sizeof same_key.id, "%s", owner.id);
    snprintf(same_key.token, sizeof same_key.token, "%s", owner.token);
    assert_int_equal(worker_ready(&same_key), HPO_MSG_TRIAL);
}

/* A worker whose kind does not fit the study is rejected at register with
 * both kinds and the command to run. A fitting kind, or none, registers. */
static void test_wrong_kind_rejected(void **state)
{
    fixture *f = *state;
    start_hpod(f, cifar_study, NULL);
    fake_worker objective, cifar, unspecified;
    worker_connect(f, &objective, 0);
    worker_connect(f, &cifar, 0);
    worker_connect(f, &unspecified, 0);

    hpo_msg reply;
    worker_send_register(&objective, "objective", HPO_WORKER_KIND_OBJECTIVE, "");
    worker_expect_error(&objective, HPO_PROTO_WRONG_WORKER_KIND, &reply,
                        "an objective worker's register");
    assert_non_null(strstr(reply.error.message, "needs cifar10 workers"));
    assert_non_null(strstr(reply.error.message, "this is an objective worker"));
    assert_non_null(strstr(reply.error.message, "without --objective"));
    hpo_msg_clear(&reply);
    assert_int_equal(log_count(f, "register from objective", "rejected", NULL), 1);

    worker_register(&cifar, "cifar", "");
    worker_send_register(&unspecified, "unspecified", HPO_WORKER_KIND_UNKNOWN, "");
    worker_receive(&unspecified, &reply, "a register without kind");
    assert_int_equal(reply.type, HPO_MSG_REGISTERED);
    hpo_msg_clear(&reply);
    assert_int_equal(status_workers(f, "", NULL), 2);
}

static void test_wrong_kind_synthetic_study(void **state)
{
    fixture *f = *state;
    start_hpod(f, synthetic_study, NULL);
    fake_worker cifar, objective;
    worker_connect(f, &cifar, 0);
    worker_connect(f, &objective, 0);

    hpo_msg reply;
    worker_send_register(&cifar, "cifar", HPO_WORKER_KIND_CIFAR10, "");
    worker_expect_error(&cifar, HPO_PROTO_WRONG_WORKER_KIND, &reply,
                        "a cifar10 worker's register");
    assert_non_null(strstr(reply.error.message, "needs objective workers"));
    assert_non_null(strstr(reply.error.message, "this is a cifar10 worker"));
    assert_non_null(strstr(reply.error.message, "hpo-worker --objective NAME"));
    hpo_msg_clear(&reply);

    worker_send_register(&objective, "objective", HPO_WORKER_KIND_OBJECTIVE, "");
    worker_receive(&objective, &reply, "an objective worker's register");
    assert_int_equal(reply.type, HPO_MSG_REGISTERED);
    hpo_msg_clear(&reply);
}

/* The real hpo-worker with --objective against a CIFAR-10 study prints the
 * coordinator's reason and exits with status 1. */
static void test_worker_process_wrong_kind(void **state)
{
    fixture *f = *state;
    start_hpod(f, cifar_study, NULL);
    char worker_log[128];
    snprintf(worker_log, sizeof worker_log, "%s/worker.log", f->dir);
    const char *argv[] = {worker_path, "--connect", f->workers, "--objective", "branin",
                          "--name", "wrong-kind", NULL};
    f->worker = spawn(argv, worker_log);

    int status = 0;
    int64_t deadline = now_ms() + START_MS;
    while (waitpid(f->worker, &status, WNOHANG) != f->worker) {
        if (now_ms() > deadline)
            fail_msg("hpo-worker of the wrong kind did not exit within %d ms", START_MS);
        sleep_ms(50);
    }
    f->worker = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);

    FILE *file = fopen(worker_log, "r");
    assert_non_null(file);
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    text[n] = '\0';
    assert_non_null(strstr(text, "rejected this worker"));
    assert_non_null(strstr(text, "needs cifar10 workers"));
    assert_non_null(strstr(text, "without --objective"));
}

/* leave drops a worker from status at once, with the right token only;
 * the real hpo-worker sends it on SIGTERM. hpod's heartbeat limit (30 s
 * here) cannot explain the drop. */
static void test_leave_drops_worker(void **state)
{
    fixture *f = *state;
    start_hpod(f, synthetic_study, "--heartbeat-ms", "1000", "--lost-after", "30", NULL);
    fake_worker staying, leaving;
    worker_connect(f, &staying, 0);
    worker_connect(f, &leaving, 0);
    worker_register_kind(&staying, "staying", HPO_WORKER_KIND_OBJECTIVE, "");
    worker_register_kind(&leaving, "leaving", HPO_WORKER_KIND_OBJECTIVE, "");
    assert_int_equal(status_workers(f, "", NULL), 2);

    /* Someone else's token: rejected, and the worker stays listed. */
    hpo_msg reply;
    worker_send_leave(&leaving, staying.token);
    worker_expect_error(&leaving, HPO_PROTO_WORKER_ID_TAKEN, &reply, "leave, wrong token");
    hpo_msg_clear(&reply);
    bool listed = false;
    assert_int_equal(status_workers(f, "leaving", &listed), 2);
    assert_true(listed);

    worker_send_leave(&leaving, leaving.token);
    assert_true(wait_status_workers(f, 1, 2000) < 2000);
    assert_int_equal(status_workers(f, "leaving", &listed), 1);
    assert_false(listed);
    assert_int_equal(log_count(f, leaving.id, "left: test over", NULL), 1);
    worker_send_ready(&leaving, leaving.id, leaving.token);
    worker_expect_error(&leaving, HPO_PROTO_UNKNOWN_WORKER, &reply, "ready after leave");
    hpo_msg_clear(&reply);

    /* The real worker: listed while it runs, gone soon after SIGTERM. Each
     * of its trials takes 3 s and it gets SIGTERM 0.5 s into the first
     * one, so hpod is not sending it a trial as it leaves: a send to a
     * closed connection would drop it as lost instead. */
    char worker_log[128];
    snprintf(worker_log, sizeof worker_log, "%s/worker.log", f->dir);
    const char *argv[] = {worker_path, "--connect", f->workers, "--objective", "hartmann6",
                          "--objective-sleep", "3000", "--name", "real-worker", NULL};
    f->worker = spawn(argv, worker_log);
    wait_status_workers(f, 2, START_MS);
    usleep(500 * 1000);
    assert_int_equal(kill(f->worker, SIGTERM), 0);
    int status = 0;
    assert_int_equal(waitpid(f->worker, &status, 0), f->worker);
    f->worker = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(wait_status_workers(f, 1, 3000) < 3000);
    assert_int_equal(status_workers(f, "real-worker", &listed), 1);
    assert_false(listed);
    assert_int_equal(log_count(f, "left: stop requested (SIGINT or SIGTERM)", NULL), 1);
}

/* One peer may register REGISTER_LIMIT times per window; the next
 * registration is rejected with too_many_registrations and logged, and
 * the worker table contains REGISTER_LIMIT workers. */
static void test_register_flood_limited(void **state)
{
    fixture *f = *state;
    start_hpod(f, cifar_study, NULL);
    fake_worker crowd[REGISTER_LIMIT + 2];
    for (int i = 0; i < REGISTER_LIMIT; i++) {
        char name[32];
        snprintf(name, sizeof name, "flood-%d", i);
        worker_connect(f, &crowd[i], 0);
        worker_register(&crowd[i], name, "");
    }
    for (int i = REGISTER_LIMIT; i < REGISTER_LIMIT + 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "flood-%d", i);
        worker_connect(f, &crowd[i], 0);
        worker_send_register(&crowd[i], name, HPO_WORKER_KIND_CIFAR10, "");
        hpo_msg reply;
        worker_expect_error(&crowd[i], HPO_PROTO_TOO_MANY_REGISTRATIONS, &reply,
                            "a register over the limit");
        assert_non_null(strstr(reply.error.message, "32 registrations within 10000 ms"));
        assert_non_null(strstr(reply.error.message, "register again in"));
        hpo_msg_clear(&reply);
    }
    assert_int_equal(status_workers(f, "", NULL), REGISTER_LIMIT);
    assert_int_equal(log_count(f, "rejected: this peer made 32 registrations", NULL), 2);

    /* Registered workers are not affected. */
    assert_int_equal(worker_ready(&crowd[0]), HPO_MSG_TRIAL);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s HPOD HPO_WORKER CIFAR_STUDY SYNTHETIC_STUDY\n", argv[0]);
        return 2;
    }
    hpod_path = argv[1];
    worker_path = argv[2];
    cifar_study = argv[3];
    synthetic_study = argv[4];

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_claim_by_id_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_by_register_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_curve_key_binds_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_kind_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_kind_synthetic_study, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_process_wrong_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_leave_drops_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_flood_limited, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
