/* Tests of hpod as a process: a real hpod on IPC sockets, driven by fake
 * workers that speak the protocol through the transport library, with the
 * database checked through storage.h afterwards. No training happens, so
 * the objective values are chosen by the test.
 *
 * Usage: test_server HPOD HPOCTL STUDY_FILE */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
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
static const char *hpoctl_path;
static const char *study_path;

/* Generous, because CI runs every test on two shared cores. */
#define REPLY_MS 10000
#define START_MS 20000

typedef struct {
    char dir[64];
    char db[128];
    char ready[128];
    char log[128];
    char workers[256];   /* endpoint hpod bound for workers */
    char control[256];
    pid_t hpod;
    void *ctx;
    void *sockets[8];    /* fake workers' sockets, closed by teardown */
    int n_sockets;
} fixture;

typedef struct {
    void *sock;
    char id[HPO_NAME_MAX + 1];
    char token[HPO_TOKEN_MAX + 1]; /* session token from registered */
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
    strcpy(f->dir, "/tmp/hpo-test-server-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof f->db, "%s/study.db", f->dir);
    snprintf(f->ready, sizeof f->ready, "%s/ready", f->dir);
    snprintf(f->log, sizeof f->log, "%s/hpod.log", f->dir);
    /* IPC endpoints, because a restarted hpod must bind the same endpoint
     * and a TCP port from the ephemeral range can meanwhile be taken by an
     * outgoing connection (even a DEALER's reconnect to itself). */
    snprintf(f->workers, sizeof f->workers, "ipc://%s/workers", f->dir);
    snprintf(f->control, sizeof f->control, "ipc://%s/control", f->dir);
    f->ctx = zmq_ctx_new();
    *state = f;
    return f->ctx != NULL ? 0 : -1;
}

static void print_log(const fixture *f)
{
    char command[256];
    snprintf(command, sizeof command, "tail -n 40 '%s' >&2", f->log);
    if (system(command) != 0)
        fprintf(stderr, "(no hpod log)\n");
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->hpod > 0) {
        print_log(f);
        kill(f->hpod, SIGKILL);
        waitpid(f->hpod, NULL, 0);
    }
    /* A failed assertion skips the test's own cleanup; zmq_ctx_term() would
     * wait forever for sockets left open. */
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

/* Starts hpod with the fixture's database, endpoints and the given extra
 * options (NULL-terminated), and waits until it listens. */
static void start_hpod(fixture *f, ...)
{
    const char *argv[40];
    int argc = 0;
    argv[argc++] = hpod_path;
    argv[argc++] = "--db";
    argv[argc++] = f->db;
    argv[argc++] = "--study";
    argv[argc++] = study_path;
    argv[argc++] = "--workers";
    argv[argc++] = f->workers;
    argv[argc++] = "--control";
    argv[argc++] = f->control;
    argv[argc++] = "--ready-file";
    argv[argc++] = f->ready;
    va_list ap;
    va_start(ap, f);
    const char *extra;
    while ((extra = va_arg(ap, const char *)) != NULL && argc < 38)
        argv[argc++] = extra;
    va_end(ap);
    argv[argc] = NULL;

    unlink(f->ready);
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
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
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

/* Waits for hpod to exit and returns its exit status (-1 on timeout). */
static int wait_hpod(fixture *f, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
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

static void kill_hpod(fixture *f, int signum)
{
    assert_int_equal(kill(f->hpod, signum), 0);
    int status = wait_hpod(f, START_MS);
    if (signum == SIGKILL)
        assert_int_equal(status, 128 + SIGKILL);
    else
        assert_int_equal(status, 0);
}

/* --- fake worker -------------------------------------------------------- */

static void worker_connect(fixture *f, fake_worker *w)
{
    char err[HPO_ERR_MAX];
    memset(w, 0, sizeof *w);
    w->sock = hpo_transport_dealer_connect(f->ctx, f->workers, false, err, sizeof err);
    if (w->sock == NULL)
        fail_msg("connecting to %s failed: %s", f->workers, err);
    assert_true(f->n_sockets < 8);
    f->sockets[f->n_sockets++] = w->sock;
}

static void worker_send(fake_worker *w, const hpo_msg *msg)
{
    char err[HPO_ERR_MAX];
    if (hpo_transport_send_msg(w->sock, NULL, msg, err, sizeof err) != 0)
        fail_msg("sending %s failed: %s", hpo_msg_type_name(msg->type), err);
}

/* Receives the next message and checks its type. */
static void worker_expect(fake_worker *w, hpo_msg_type type, hpo_msg *msg)
{
    char err[HPO_ERR_MAX];
    hpo_recv_result rc = hpo_transport_recv_msg(w->sock, NULL, REPLY_MS, msg, NULL,
                                                err, sizeof err);
    if (rc != HPO_RECV_OK)
        fail_msg("expected %s, received nothing valid (%d): %s",
                 hpo_msg_type_name(type), (int)rc, err);
    if (msg->type != type)
        fail_msg("expected %s, received %s%s%s", hpo_msg_type_name(type),
                 hpo_msg_type_name(msg->type),
                 msg->type == HPO_MSG_ERROR ? ": " : "",
                 msg->type == HPO_MSG_ERROR ? msg->error.message : "");
}

static void worker_register(fake_worker *w, const char *name, int64_t running_trial)
{
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_REGISTER);
    snprintf(msg.reg.host, sizeof msg.reg.host, "localhost");
    snprintf(msg.reg.name, sizeof msg.reg.name, "%s", name);
    msg.reg.pid = getpid();
    msg.reg.threads = 1;
    msg.reg.protocol = HPO_PROTO_VERSION;
    msg.reg.running_trial = running_trial;
    snprintf(msg.reg.token, sizeof msg.reg.token, "%s", w->token);
    worker_send(w, &msg);

    hpo_msg reply;
    worker_expect(w, HPO_MSG_REGISTERED, &reply);
    snprintf(w->id, sizeof w->id, "%s", reply.registered.worker_id);
    snprintf(w->token, sizeof w->token, "%s", reply.registered.token);
    assert_int_equal(strlen(w->token), 32);
    assert_true(reply.registered.heartbeat_ms >= 100);
    hpo_msg_clear(&reply);
}

/* Receives the shutdown that a stopping hpod sends to the workers of a
 * running study, whose reason tells hpo-worker to wait for the next hpod. */
static void worker_expect_restart_notice(fake_worker *w)
{
    hpo_msg msg;
    worker_expect(w, HPO_MSG_SHUTDOWN, &msg);
    if (strncmp(msg.shutdown.reason, "coordinator restarting", 22) != 0)
        fail_msg("shutdown reason \"%s\" is not the restart notice",
                 msg.shutdown.reason);
    hpo_msg_clear(&msg);
}

static void worker_heartbeat(fake_worker *w, int64_t trial_id)
{
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_HEARTBEAT);
    snprintf(msg.heartbeat.worker_id, sizeof msg.heartbeat.worker_id, "%s", w->id);
    snprintf(msg.heartbeat.token, sizeof msg.heartbeat.token, "%s", w->token);
    msg.heartbeat.trial_id = trial_id;
    worker_send(w, &msg);
}

/* Sends ready every 100 ms until the answer is a trial and returns its id;
 * 0 for study_done or shutdown. Meanwhile `alive` (may be NULL) sends
 * heartbeats so that hpod does not declare it lost. */
static int64_t worker_poll_trial(fake_worker *w, fake_worker *alive, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        hpo_msg msg, reply;
        hpo_msg_init(&msg, HPO_MSG_READY);
        snprintf(msg.ready.worker_id, sizeof msg.ready.worker_id, "%s", w->id);
        snprintf(msg.ready.token, sizeof msg.ready.token, "%s", w->token);
        worker_send(w, &msg);
        if (alive != NULL)
            worker_heartbeat(alive, -1);

        char err[HPO_ERR_MAX];
        if (hpo_transport_recv_msg(w->sock, NULL, REPLY_MS, &reply, NULL, err,
                                   sizeof err) != HPO_RECV_OK)
            fail_msg("no answer to ready: %s", err);
        hpo_msg_type type = reply.type;
        int64_t id = type == HPO_MSG_TRIAL ? reply.trial.trial_id : 0;
        hpo_msg_clear(&reply);
        if (type == HPO_MSG_TRIAL || type == HPO_MSG_STUDY_DONE ||
            type == HPO_MSG_SHUTDOWN)
            return id;
        if (type != HPO_MSG_NO_WORK)
            fail_msg("unexpected answer %s to ready", hpo_msg_type_name(type));
        sleep_ms(100);
    }
    fail_msg("no trial within %d ms", timeout_ms);
    return -1;
}

/* Sends ready until the answer is a trial (returns its id), study_done or
 * shutdown (returns 0). no_work answers are retried. */
static int64_t worker_next_trial(fake_worker *w, cJSON **params_out)
{
    int64_t deadline = now_ms() + REPLY_MS;
    while (now_ms() < deadline) {
        hpo_msg msg, reply;
        hpo_msg_init(&msg, HPO_MSG_READY);
        snprintf(msg.ready.worker_id, sizeof msg.ready.worker_id, "%s", w->id);
        snprintf(msg.ready.token, sizeof msg.ready.token, "%s", w->token);
        worker_send(w, &msg);

        char err[HPO_ERR_MAX];
        if (hpo_transport_recv_msg(w->sock, NULL, REPLY_MS, &reply, NULL, err,
                                   sizeof err) != HPO_RECV_OK)
            fail_msg("no answer to ready: %s", err);
        if (reply.type == HPO_MSG_TRIAL) {
            int64_t id = reply.trial.trial_id;
            assert_non_null(reply.trial.model);
            assert_int_equal(reply.trial.budget.epochs, 2);
            assert_int_equal(reply.trial.budget.train_size, 2000);
            if (params_out != NULL) {
                *params_out = reply.trial.params;
                reply.trial.params = NULL;
            }
            hpo_msg_clear(&reply);
            return id;
        }
        if (reply.type == HPO_MSG_STUDY_DONE || reply.type == HPO_MSG_SHUTDOWN) {
            hpo_msg_clear(&reply);
            return 0;
        }
        if (reply.type != HPO_MSG_NO_WORK)
            fail_msg("unexpected answer %s to ready", hpo_msg_type_name(reply.type));
        hpo_msg_clear(&reply);
        sleep_ms(50);
    }
    fail_msg("no trial or study_done within %d ms", REPLY_MS);
    return -1;
}

static void worker_progress(fake_worker *w, int64_t trial_id, double val_accuracy)
{
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_PROGRESS);
    snprintf(msg.progress.worker_id, sizeof msg.progress.worker_id, "%s", w->id);
    snprintf(msg.progress.token, sizeof msg.progress.token, "%s", w->token);
    msg.progress.trial_id = trial_id;
    msg.progress.epoch = 1;
    msg.progress.epochs = 1;
    msg.progress.loss = 2.0;
    msg.progress.accuracy = 0.2;
    msg.progress.val_loss = 2.1;
    msg.progress.val_accuracy = val_accuracy;
    msg.progress.seconds = 0.5;
    msg.progress.images_per_second = 4000;
    worker_send(w, &msg);
}

/* Sends a result and waits for its acknowledgment. NAN sends a failure. */
static void worker_result(fake_worker *w, int64_t trial_id, double val_accuracy)
{
    hpo_msg msg, ack;
    hpo_msg_init(&msg, HPO_MSG_RESULT);
    snprintf(msg.result.worker_id, sizeof msg.result.worker_id, "%s", w->id);
    snprintf(msg.result.token, sizeof msg.result.token, "%s", w->token);
    msg.result.trial_id = trial_id;
    msg.result.metrics = cJSON_CreateObject();
    if (isnan(val_accuracy)) {
        msg.result.status = HPO_TRIAL_FAILED;
        snprintf(msg.result.error, sizeof msg.result.error, "diverged: loss is nan");
    } else {
        msg.result.status = HPO_TRIAL_OK;
        cJSON_AddNumberToObject(msg.result.metrics, "val_accuracy", val_accuracy);
        cJSON_AddNumberToObject(msg.result.metrics, "val_loss", 2.0 - val_accuracy);
    }
    msg.result.epochs_run = 1;
    msg.result.wall_seconds = 0.5;
    worker_send(w, &msg);
    hpo_msg_clear(&msg);

    worker_expect(w, HPO_MSG_RESULT_ACK, &ack);
    assert_int_equal(ack.result_ack.trial_id, trial_id);
    hpo_msg_clear(&ack);
}

/* The objective the fake workers report for a trial: distinct values with
 * the maximum on neither the first nor the last trial. */
static double objective_of(int64_t trial_id)
{
    static const double values[] = {0.21, 0.34, 0.55, 0.13, 0.42, 0.29, 0.37, 0.18};
    return values[(trial_id - 1) % 8];
}

/* --- database checks ---------------------------------------------------- */

static hpo_storage *open_db(const fixture *f)
{
    hpo_storage *st = NULL;
    char err[HPO_ERR_MAX];
    if (hpo_storage_open(f->db, false, &st, err, sizeof err) != 0)
        fail_msg("%s", err);
    return st;
}

static void list_trials(const fixture *f, hpo_trial_record **records, size_t *n)
{
    hpo_storage *st = open_db(f);
    char err[HPO_ERR_MAX];
    if (hpo_storage_trials_list(st, records, n, err, sizeof err) != 0)
        fail_msg("%s", err);
    hpo_storage_close(&st);
}

static void expect_study_state(const fixture *f, const char *state)
{
    hpo_storage *st = open_db(f);
    hpo_study_info info;
    bool found = false;
    char err[HPO_ERR_MAX];
    assert_int_equal(hpo_storage_study_get(st, &info, &found, err, sizeof err), 0);
    assert_true(found);
    assert_string_equal(info.state, state);
    hpo_study_info_clear(&info);
    hpo_storage_close(&st);
}

/* Runs hpoctl with args and returns its exit status; stdout goes to out. */
static int run_hpoctl(const fixture *f, const char *args, char *out, size_t size)
{
    char command[1024];
    snprintf(command, sizeof command, "'%s' %s 2>&1", hpoctl_path, args);
    FILE *pipe = popen(command, "r");
    assert_non_null(pipe);
    size_t used = fread(out, 1, size - 1, pipe);
    out[used] = '\0';
    int status = pclose(pipe);
    (void)f;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* --- tests ---------------------------------------------------------------- */

/* Two workers take turns until the study is done; hpod must exit 0 with
 * six ok trials, each stored once, and the best one found by hpoctl. */
static void test_study_runs_to_completion(void **state)
{
    fixture *f = *state;
    start_hpod(f, NULL);

    fake_worker a, b;
    worker_connect(f, &a);
    worker_connect(f, &b);
    worker_register(&a, "fake-a", -1);
    worker_register(&b, "fake-b", -1);
    assert_string_not_equal(a.id, b.id);

    for (int round = 0; round < 6; round++) {
        fake_worker *w = round % 2 == 0 ? &a : &b;
        int64_t id = worker_next_trial(w, NULL);
        assert_int_equal(id, round + 1);
        worker_progress(w, id, objective_of(id));
        worker_result(w, id, objective_of(id));
    }

    /* Both workers learn of the end from study_done, and hpod exits once
     * both received it. */
    assert_int_equal(worker_next_trial(&a, NULL), 0);
    assert_int_equal(worker_next_trial(&b, NULL), 0);
    assert_int_equal(wait_hpod(f, START_MS), 0);
    expect_study_state(f, "complete");

    hpo_trial_record *records = NULL;
    size_t n = 0;
    list_trials(f, &records, &n);
    assert_int_equal(n, 6);
    int64_t workers_seen[2] = {0, 0};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(records[i].id, (int64_t)i + 1);
        assert_int_equal(records[i].status, HPO_TRIAL_STATE_OK);
        assert_true(records[i].objective == objective_of(records[i].id));
        assert_int_equal(records[i].attempts, 1);
        assert_non_null(records[i].model);
        workers_seen[i % 2] = records[i].worker_id;
    }
    assert_true(workers_seen[0] != workers_seen[1]);
    hpo_trial_records_free(&records, n);

    /* Trial 3 has the highest objective (0.55). */
    char out[8192], args[512];
    snprintf(args, sizeof args, "--db '%s' best --json", f->db);
    assert_int_equal(run_hpoctl(f, args, out, sizeof out), 0);
    cJSON *best = cJSON_Parse(out);
    assert_non_null(best);
    const cJSON *trial = cJSON_GetObjectItem(best, "trial");
    assert_int_equal(cJSON_GetObjectItem(trial, "id")->valueint, 3);
    assert_true(cJSON_GetObjectItem(trial, "objective")->valuedouble == 0.55);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(trial, "epochs")), 1);
    cJSON_Delete(best);

    /* summary --top 3 lists trials 3, 5 and 2: descending objective. */
    snprintf(args, sizeof args, "--db '%s' summary --top 3 --json", f->db);
    assert_int_equal(run_hpoctl(f, args, out, sizeof out), 0);
    cJSON *summary = cJSON_Parse(out);
    const cJSON *list = cJSON_GetObjectItem(summary, "trials");
    assert_int_equal(cJSON_GetArraySize(list), 3);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "id")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 1), "id")->valueint, 5);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 2), "id")->valueint, 2);
    cJSON_Delete(summary);
}

/* A result sent twice is acknowledged twice and stored once; the first
 * value stays. */
static void test_duplicate_result_stored_once(void **state)
{
    fixture *f = *state;
    start_hpod(f, "--max-trials", "2", NULL);
    fake_worker w;
    worker_connect(f, &w);
    worker_register(&w, "dup", -1);

    int64_t id = worker_next_trial(&w, NULL);
    assert_int_equal(id, 1);
    worker_result(&w, id, 0.5);
    worker_result(&w, id, 0.9);

    hpo_trial_record *records = NULL;
    size_t n = 0;
    list_trials(f, &records, &n);
    assert_int_equal(n, 1);
    assert_true(records[0].objective == 0.5);
    hpo_trial_records_free(&records, n);
}

/* Messages naming an unregistered worker get unknown_worker; garbage gets
 * an error reply; hpod keeps serving afterwards. */
static void test_bad_messages_rejected(void **state)
{
    fixture *f = *state;
    start_hpod(f, NULL);
    fake_worker w;
    worker_connect(f, &w);

    hpo_msg msg, reply;
    hpo_msg_init(&msg, HPO_MSG_READY);
    snprintf(msg.ready.worker_id, sizeof msg.ready.worker_id, "w99");
    worker_send(&w, &msg);
    worker_expect(&w, HPO_MSG_ERROR, &reply);
    assert_int_equal(reply.error.code, HPO_PROTO_UNKNOWN_WORKER);
    hpo_msg_clear(&reply);

    char err[HPO_ERR_MAX];
    const char *garbage = "{\"v\": 1, \"type\": \"ready\"";
    assert_int_equal(hpo_transport_send(w.sock, NULL, garbage, strlen(garbage),
                                        err, sizeof err), 0);
    worker_expect(&w, HPO_MSG_ERROR, &reply);
    assert_int_equal(reply.error.code, HPO_PROTO_INVALID_JSON);
    hpo_msg_clear(&reply);

    /* A query on the workers' endpoint is the wrong socket. */
    hpo_msg_init(&msg, HPO_MSG_QUERY);
    msg.query.command = HPO_QUERY_STATUS;
    msg.query.args = cJSON_CreateObject();
    worker_send(&w, &msg);
    hpo_msg_clear(&msg);
    worker_expect(&w, HPO_MSG_ERROR, &reply);
    assert_int_equal(reply.error.code, HPO_PROTO_UNEXPECTED);
    hpo_msg_clear(&reply);

    /* The control endpoint answers a bad summary argument with an error and
     * still answers status afterwards. */
    hpo_msg query;
    hpo_msg_init(&query, HPO_MSG_QUERY);
    query.query.command = HPO_QUERY_SUMMARY;
    query.query.args = cJSON_Parse("{\"top\": -2}");
    assert_int_equal(hpo_transport_request(f->ctx, f->control, &query, REPLY_MS,
                                           &reply, err, sizeof err), HPO_RECV_OK);
    hpo_msg_clear(&query);
    assert_int_equal(reply.type, HPO_MSG_ERROR);
    assert_int_equal(reply.error.code, HPO_PROTO_INVALID_ARGUMENT);
    hpo_msg_clear(&reply);

    char out[4096], args[512];
    snprintf(args, sizeof args, "--connect %s status --json", f->control);
    assert_int_equal(run_hpoctl(f, args, out, sizeof out), 0);
    cJSON *status = cJSON_Parse(out);
    assert_non_null(status);
    assert_string_equal(cJSON_GetObjectItem(status, "state")->valuestring, "running");
    assert_string_equal(cJSON_GetObjectItem(status, "source")->valuestring, "hpod");
    cJSON_Delete(status);
}

/* hpod is killed while a trial runs; the restarted hpod lets the worker
 * keep the trial, stores its result once, and completes the study without
 * reusing ids. */
static void resume_after(fixture *f, int signum)
{
    start_hpod(f, "--max-trials", "3", NULL);
    fake_worker w;
    worker_connect(f, &w);
    worker_register(&w, "resume", -1);

    int64_t first = worker_next_trial(&w, NULL);
    worker_result(&w, first, objective_of(first));
    int64_t running = worker_next_trial(&w, NULL);
    assert_int_equal(running, 2);
    worker_progress(&w, running, 0.3);
    kill_hpod(f, signum);
    if (signum == SIGTERM)
        worker_expect_restart_notice(&w);

    /* Without --study: the study comes from the database. */
    expect_study_state(f, signum == SIGKILL ? "running" : "stopped");
    start_hpod(f, NULL);
    worker_register(&w, "resume", running);
    worker_result(&w, running, objective_of(running));

    int64_t next = worker_next_trial(&w, NULL);
    assert_int_equal(next, 3);
    worker_result(&w, next, objective_of(next));
    assert_int_equal(worker_next_trial(&w, NULL), 0);
    assert_int_equal(wait_hpod(f, START_MS), 0);

    hpo_trial_record *records = NULL;
    size_t n = 0;
    list_trials(f, &records, &n);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(records[i].id, (int64_t)i + 1);
        assert_int_equal(records[i].status, HPO_TRIAL_STATE_OK);
        assert_true(records[i].objective == objective_of(records[i].id));
    }
    assert_int_equal(records[1].attempts, 2);
    hpo_trial_records_free(&records, n);
    expect_study_state(f, "complete");
}

static void test_resume_after_sigkill(void **state)
{
    resume_after(*state, SIGKILL);
}

static void test_resume_after_sigterm(void **state)
{
    resume_after(*state, SIGTERM);
}

/* A worker process that registers again from a new socket, mid-trial,
 * keeps its trial: no stop_trial, and its result is stored. */
static void test_reregister_keeps_trial(void **state)
{
    fixture *f = *state;
    start_hpod(f, "--max-trials", "1", NULL);
    fake_worker old_socket, new_socket;
    worker_connect(f, &old_socket);
    worker_register(&old_socket, "same", -1);
    int64_t id = worker_next_trial(&old_socket, NULL);
    assert_int_equal(id, 1);

    /* hpo-worker keeps its session token across sockets, which lets the
     * new registration replace the old one. */
    worker_connect(f, &new_socket);
    snprintf(new_socket.token, sizeof new_socket.token, "%s", old_socket.token);
    worker_register(&new_socket, "same", id);
    assert_string_not_equal(new_socket.id, old_socket.id);
    worker_result(&new_socket, id, 0.45);
    assert_int_equal(worker_next_trial(&new_socket, NULL), 0);
    assert_int_equal(wait_hpod(f, START_MS), 0);

    hpo_trial_record *records = NULL;
    size_t n = 0;
    list_trials(f, &records, &n);
    assert_int_equal(n, 1);
    assert_int_equal(records[0].status, HPO_TRIAL_STATE_OK);
    assert_true(records[0].objective == 0.45);
    hpo_trial_records_free(&records, n);
}

/* A worker that sends nothing for --lost-after heartbeat intervals is
 * declared lost, not earlier, and its trial goes to the next worker. */
static void test_lost_worker_trial_requeued(void **state)
{
    fixture *f = *state;
    start_hpod(f, "--max-trials", "1", "--lost-after", "5",
               "--heartbeat-ms", "200", NULL);
    fake_worker silent, live;
    worker_connect(f, &silent);
    worker_connect(f, &live);
    worker_register(&silent, "silent", -1);
    worker_register(&live, "live", -1);

    /* Taken before the silent worker's last message (its ready), so that
     * the loss cannot come sooner than 1000 ms after it. */
    int64_t silent_since = now_ms();
    int64_t id = worker_next_trial(&silent, NULL);
    assert_int_equal(id, 1);

    /* The only trial runs, so the live worker gets no_work until the
     * silent one has missed 5 heartbeats of 200 ms. */
    assert_int_equal(worker_poll_trial(&live, NULL, REPLY_MS), 1);
    int64_t waited = now_ms() - silent_since;
    assert_true(waited >= 1000);
    /* Loss is checked every 250 ms; the rest is slack for a busy machine. */
    assert_true(waited < 4000);
    worker_result(&live, 1, 0.4);
    assert_int_equal(worker_next_trial(&live, NULL), 0);
    assert_int_equal(wait_hpod(f, START_MS), 0);

    hpo_trial_record *records = NULL;
    size_t n = 0;
    list_trials(f, &records, &n);
    assert_int_equal(n, 1);
    assert_int_equal(records[0].attempts, 2);
    assert_int_equal(records[0].status, HPO_TRIAL_STATE_OK);
    assert_true(records[0].objective == 0.4);
    hpo_trial_records_free(&records, n);
}

/* A trial whose worker is lost on its last allowed attempt fails with the
 * reason; it counts, so the one-trial study is complete. */
static void test_max_attempts_fails_trial(void **state)
{
    fixture *f = *state;
    start_hpod(f, "--max-trials", "1", "--lost-after", "3",
               "--heartbeat-ms", "200", "--max-attempts", "2", NULL);
    fake_worker first, second, watcher;
    worker_connect(f, &first);
    worker_connect(f, &second);
    worker_connect(f, &watcher);
    worker_register(&first, "first", -1);
    worker_register(&second, "second", -1);
    worker_register(&watcher, "watcher", -1);

    assert_int_equal(worker_next_trial(&first, NULL), 1);
    /* The first worker falls silent: the second gets attempt 2... */
    assert_int_equal(worker_poll_trial(&second, &watcher, REPLY_MS), 1);
    /* ...and falls silent too; the trial fails and the study ends. */
    assert_int_equal(worker_poll_trial(&watcher, NULL, REPLY_MS), 0);
    assert_int_equal(wait_hpod(f, START_MS), 0);
    expect_study_state(f, "complete");

    hpo_trial_record *records = NULL;
    size_t n = 0;
    list_trials(f, &records, &n);
    assert_int_equal(n, 1);
    assert_int_equal(records[0].status, HPO_TRIAL_STATE_FAILED);
    assert_int_equal(records[0].attempts, 2);
    assert_non_null(records[0].error);
    assert_non_null(strstr(records[0].error, "lost on attempt 2, the last of 2 allowed"));
    assert_non_null(strstr(records[0].error, "3 heartbeat intervals"));
    hpo_trial_records_free(&records, n);
}

/* A worker declared lost sends its result after the trial went to another
 * worker: the late result is stored once, the other worker is told to
 * stop, and its own result is acknowledged as a duplicate. */
static void test_late_result_of_lost_worker(void **state)
{
    fixture *f = *state;
    start_hpod(f, "--max-trials", "1", "--lost-after", "3",
               "--heartbeat-ms", "200", NULL);
    fake_worker late, next;
    worker_connect(f, &late);
    worker_connect(f, &next);
    worker_register(&late, "late", -1);
    worker_register(&next, "next", -1);
    assert_int_equal(worker_next_trial(&late, NULL), 1);
    assert_int_equal(worker_poll_trial(&next, NULL, REPLY_MS), 1);

    /* The lost worker is unknown now; it registers again, as hpo-worker
     * does, listing the result it holds, and sends it. */
    hpo_msg msg, reply;
    hpo_msg_init(&msg, HPO_MSG_HEARTBEAT);
    snprintf(msg.heartbeat.worker_id, sizeof msg.heartbeat.worker_id, "%s", late.id);
    msg.heartbeat.trial_id = -1;
    worker_send(&late, &msg);
    worker_expect(&late, HPO_MSG_ERROR, &reply);
    assert_int_equal(reply.error.code, HPO_PROTO_UNKNOWN_WORKER);
    hpo_msg_clear(&reply);
    char old_id[HPO_NAME_MAX + 1];
    snprintf(old_id, sizeof old_id, "%s", late.id);
    worker_register(&late, "late", -1);
    assert_string_not_equal(late.id, old_id);
    worker_result(&late, 1, 0.61);

    worker_expect(&next, HPO_MSG_STOP_TRIAL, &reply);
    assert_int_equal(reply.stop_trial.trial_id, 1);
    hpo_msg_clear(&reply);
    worker_result(&next, 1, 0.3);
    assert_int_equal(worker_next_trial(&next, NULL), 0);
    assert_int_equal(worker_next_trial(&late, NULL), 0);
    assert_int_equal(wait_hpod(f, START_MS), 0);

    hpo_trial_record *records = NULL;
    size_t n = 0;
    list_trials(f, &records, &n);
    assert_int_equal(n, 1);
    assert_int_equal(records[0].status, HPO_TRIAL_STATE_OK);
    assert_true(records[0].objective == 0.61);
    assert_int_equal(records[0].attempts, 2);
    hpo_trial_records_free(&records, n);
    expect_study_state(f, "complete");
}

/* SIGTERM: every worker of the running study receives the restart notice,
 * the running trial is queued again, and hpod exits 0. */
static void test_sigterm_tells_workers(void **state)
{
    fixture *f = *state;
    start_hpod(f, "--max-trials", "4", NULL);
    fake_worker busy, idle;
    worker_connect(f, &busy);
    worker_connect(f, &idle);
    worker_register(&busy, "busy", -1);
    worker_register(&idle, "idle", -1);
    int64_t id = worker_next_trial(&busy, NULL);
    assert_int_equal(id, 1);
    worker_progress(&busy, id, 0.2);
    /* A round trip after the progress, so that hpod has handled it. */
    worker_heartbeat(&idle, -1);
    assert_int_equal(worker_next_trial(&idle, NULL), 2);

    kill_hpod(f, SIGTERM);
    worker_expect_restart_notice(&busy);
    worker_expect_restart_notice(&idle);
    expect_study_state(f, "stopped");

    hpo_trial_record *records = NULL;
    size_t n = 0;
    list_trials(f, &records, &n);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(records[i].status, HPO_TRIAL_STATE_QUEUED);
        assert_int_equal(records[i].attempts, 1);
    }
    hpo_trial_records_free(&records, n);
}

/* Three failures in a row end the study as failed, and hpod exits 1. */
static void test_failure_cap_ends_study(void **state)
{
    fixture *f = *state;
    start_hpod(f, "--max-failures", "3", NULL);
    fake_worker w;
    worker_connect(f, &w);
    worker_register(&w, "failing", -1);
    for (int i = 0; i < 3; i++) {
        int64_t id = worker_next_trial(&w, NULL);
        assert_true(id > 0);
        worker_result(&w, id, NAN);
    }
    assert_int_equal(worker_next_trial(&w, NULL), 0);
    assert_int_equal(wait_hpod(f, START_MS), 1);
    expect_study_state(f, "failed");

    hpo_trial_record *records = NULL;
    size_t n = 0;
    list_trials(f, &records, &n);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(records[i].status, HPO_TRIAL_STATE_FAILED);
        assert_string_equal(records[i].error, "diverged: loss is nan");
    }
    hpo_trial_records_free(&records, n);
}

/* hpoctl stop ends hpod; hpoctl then reports the timeout clearly. */
static void test_hpoctl_stop_and_timeout(void **state)
{
    fixture *f = *state;
    start_hpod(f, "--linger", NULL);
    char out[4096], args[512];
    snprintf(args, sizeof args, "--connect %s stop", f->control);
    assert_int_equal(run_hpoctl(f, args, out, sizeof out), 0);
    assert_non_null(strstr(out, "stopped"));
    assert_int_equal(wait_hpod(f, START_MS), 0);

    snprintf(args, sizeof args, "--connect %s --timeout 300 status", f->control);
    assert_int_equal(run_hpoctl(f, args, out, sizeof out), 1);
    char expected[512];
    snprintf(expected, sizeof expected, "hpoctl: no answer from %s within 300 "
             "ms; is hpod running?", f->control);
    assert_non_null(strstr(out, expected));
}

/* hpod rejects a database that contains another study. */
static void test_other_study_db_rejected(void **state)
{
    fixture *f = *state;
    start_hpod(f, "--max-trials", "1", NULL);
    kill_hpod(f, SIGTERM);

    char other[160];
    snprintf(other, sizeof other, "%s/other.json", f->dir);
    FILE *file = fopen(other, "w");
    assert_non_null(file);
    fprintf(file, "{\"name\": \"other\"}\n");
    fclose(file);

    char command[1024];
    snprintf(command, sizeof command, "'%s' --db '%s' --study '%s' "
             "--workers ipc://%s/other-w --control ipc://%s/other-c "
             ">> '%s' 2>&1", hpod_path, f->db, other, f->dir, f->dir, f->log);
    int status = system(command);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s HPOD HPOCTL STUDY_FILE\n", argv[0]);
        return 2;
    }
    hpod_path = argv[1];
    hpoctl_path = argv[2];
    study_path = argv[3];
    signal(SIGPIPE, SIG_IGN);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_study_runs_to_completion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_result_stored_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_messages_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_after_sigkill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_after_sigterm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reregister_keeps_trial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_worker_trial_requeued, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_attempts_fails_trial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_result_of_lost_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_tells_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_cap_ends_study, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hpoctl_stop_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_study_db_rejected, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
