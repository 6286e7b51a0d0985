/* hpod stays responsive while the bayes tuner fits: with 1,000 finished
 * trials in the database, a worker's ready starts a GP fit on the proposer
 * thread, and a status query and a heartbeat sent after it are answered
 * before the fit ends.
 *
 * The check is on order, not time. hpod's log, written by its event loop
 * in the order of events, must show the fit start, then the status answer
 * and the heartbeat's unknown_worker reply, then the fit's result and the
 * trial assignment. The test also receives the replies before the trial.
 * A second test checks that late_fit "random" hands out a trial during
 * the fit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
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

#define SEEDED_TRIALS 1000
#define REPLY_MS 20000

static const char *hpod_path;
static const char *study_path;

typedef struct {
    char dir[80];
    char db[128];
    char ready[128];
    char log[128];
    char workers[256];
    char control[256];
    bool late_fit_random;  /* seed the study with late_fit "random" */
    pid_t hpod;
    void *ctx;
    void *worker_sock, *stranger_sock;
    char token[HPO_TOKEN_MAX + 1]; /* worker_sock's session token */
} fixture;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *read_text(const char *path)
{
    FILE *file = fopen(path, "rb");
    if (file == NULL)
        return NULL;
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    text[n] = '\0';
    return text;
}

/* A unit-cube point from a fixed linear congruential sequence, so that the
 * database is the same in every run. */
static double next_unit(uint64_t *state)
{
    *state = *state * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    return (double)(*state >> 11) / 9007199254740992.0;
}

/* Creates the study with SEEDED_TRIALS finished trials. Their objective
 * is a smooth function of the point; its values do not matter here. */
static void seed_database(const fixture *f)
{
    char err[HPO_ERR_MAX];
    hpo_storage *storage = NULL;
    const char *file_text = read_text(study_path);
    assert_non_null(file_text);
    assert_int_equal(file_text[0], '{');
    static char text[(1 << 16) + 64];
    strcpy(text, "{");
    if (f->late_fit_random)
        strcat(text, "\"tuner\": {\"late_fit\": \"random\"}, ");
    strcat(text, file_text + 1);
    if (hpo_storage_open(f->db, true, &storage, err, sizeof err) != 0 ||
        hpo_storage_study_create(storage, "hartmann6", text, 1, 2 * SEEDED_TRIALS, err,
                                 sizeof err) != 0)
        fail_msg("creating the study database failed: %s", err);

    cJSON *model = cJSON_Parse("{\"layers\": [{\"type\": \"flatten\"}, {\"type\": \"dense\", "
                               "\"units\": 10, \"activation\": \"softmax\"}]}");
    uint64_t state = 7;
    for (int i = 0; i < SEEDED_TRIALS; i++) {
        cJSON *values = cJSON_CreateObject();
        double objective = 0.0;
        for (int j = 1; j <= 6; j++) {
            char name[8];
            snprintf(name, sizeof name, "x%d", j);
            double x = next_unit(&state);
            cJSON_AddNumberToObject(values, name, x);
            objective += (x - 0.3) * (x - 0.3) * j;
        }
        int64_t id = 0;
        if (hpo_storage_trial_add(storage, values, values, model, &id, err, sizeof err) != 0 ||
            hpo_storage_trial_finish(storage, id, HPO_TRIAL_STATE_OK, objective, NULL, 1, 0.1,
                                     NULL, err, sizeof err) != 0)
            fail_msg("storing trial %d failed: %s", i, err);
        cJSON_Delete(values);
    }
    cJSON_Delete(model);
    hpo_storage_close(&storage);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    /* /dev/shm where it exists: storing 1,000 trials commits 2,000
     * transactions with synchronous=FULL, seconds of fsync on a disk. */
    strcpy(f->dir, access("/dev/shm", W_OK) == 0 ? "/dev/shm/hpo-test-fit-XXXXXX"
                                                  : "/tmp/hpo-test-fit-XXXXXX");
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

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->hpod > 0) {
        char command[256];
        snprintf(command, sizeof command, "tail -n 30 '%s' >&2", f->log);
        if (system(command) != 0)
            fprintf(stderr, "(no hpod log)\n");
        kill(f->hpod, SIGKILL);
        waitpid(f->hpod, NULL, 0);
    }
    int linger = 0;
    void *sockets[] = {f->worker_sock, f->stranger_sock};
    for (int i = 0; i < 2; i++) {
        if (sockets[i] != NULL) {
            zmq_setsockopt(sockets[i], ZMQ_LINGER, &linger, sizeof linger);
            zmq_close(sockets[i]);
        }
    }
    zmq_ctx_term(f->ctx);
    char command[200];
    snprintf(command, sizeof command, "rm -rf '%s'", f->dir);
    int rc = system(command);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void start_hpod(fixture *f)
{
    const char *argv[] = {hpod_path, "--db", f->db, "--tuner", "bayes", "--workers",
                          f->workers, "--control", f->control, "--ready-file", f->ready,
                          "--log-level", "debug", NULL};
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
    for (int waited = 0; access(f->ready, F_OK) != 0; waited += 20) {
        if (waited > REPLY_MS || waitpid(pid, NULL, WNOHANG) == pid)
            fail_msg("hpod did not start; see %s", f->log);
        sleep_ms(20);
    }
}

static void send_msg(void *sock, const hpo_msg *msg)
{
    char err[HPO_ERR_MAX];
    if (hpo_transport_send_msg(sock, NULL, msg, err, sizeof err) != 0)
        fail_msg("sending %s failed: %s", hpo_msg_type_name(msg->type), err);
}

static void expect_msg(void *sock, hpo_msg_type type, hpo_msg *msg)
{
    char err[HPO_ERR_MAX];
    if (hpo_transport_recv_msg(sock, NULL, REPLY_MS, msg, NULL, err, sizeof err) != HPO_RECV_OK)
        fail_msg("expected %s, received nothing valid: %s", hpo_msg_type_name(type), err);
    if (msg->type != type)
        fail_msg("expected %s, received %s", hpo_msg_type_name(type),
                 hpo_msg_type_name(msg->type));
}

/* Returns the line number of the first line of the log that contains
 * text, or 0 when none does. */
static int log_line(const fixture *f, const char *text)
{
    FILE *file = fopen(f->log, "r");
    if (file == NULL)
        return 0;
    char line[2048];
    int number = 0, found = 0;
    while (found == 0 && fgets(line, sizeof line, file) != NULL) {
        number++;
        if (strstr(line, text) != NULL)
            found = number;
    }
    fclose(file);
    return found;
}

/* Registers the fake worker and sends ready; returns its id. */
static void register_and_ask(fixture *f, char *worker_id, size_t size)
{
    hpo_msg msg, reply;
    hpo_msg_init(&msg, HPO_MSG_REGISTER);
    snprintf(msg.reg.host, sizeof msg.reg.host, "localhost");
    snprintf(msg.reg.name, sizeof msg.reg.name, "fit-waiter");
    msg.reg.pid = getpid();
    msg.reg.threads = 1;
    msg.reg.protocol = HPO_PROTO_VERSION;
    send_msg(f->worker_sock, &msg);
    expect_msg(f->worker_sock, HPO_MSG_REGISTERED, &reply);
    snprintf(worker_id, size, "%s", reply.registered.worker_id);
    snprintf(f->token, sizeof f->token, "%s", reply.registered.token);
    hpo_msg_clear(&reply);

    hpo_msg_init(&msg, HPO_MSG_READY);
    snprintf(msg.ready.worker_id, sizeof msg.ready.worker_id, "%s", worker_id);
    snprintf(msg.ready.token, sizeof msg.ready.token, "%s", f->token);
    send_msg(f->worker_sock, &msg);
}

static void test_answers_during_fit(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX];
    seed_database(f);
    start_hpod(f);

    /* 1. A worker registers and asks for a trial, which needs a GP fit on
     *    1,000 trials. */
    f->worker_sock = hpo_transport_dealer_connect(f->ctx, f->workers, false, err, sizeof err);
    f->stranger_sock = hpo_transport_dealer_connect(f->ctx, f->workers, false, err,
                                                    sizeof err);
    assert_non_null(f->worker_sock);
    assert_non_null(f->stranger_sock);
    hpo_msg msg, reply;
    char worker_id[HPO_NAME_MAX + 1];
    register_and_ask(f, worker_id, sizeof worker_id);

    /* 2. Once the fit runs, the status query that hpoctl status sends and
     *    a heartbeat under an id that hpod does not know, whose answer is
     *    unknown_worker. */
    for (int waited = 0; log_line(f, "GP fit started on the proposer thread") == 0;
         waited += 5) {
        if (waited > REPLY_MS)
            fail_msg("hpod did not start a GP fit");
        sleep_ms(5);
    }
    hpo_msg_init(&msg, HPO_MSG_QUERY);
    msg.query.command = HPO_QUERY_STATUS;
    msg.query.args = cJSON_CreateObject();
    hpo_recv_result rc = hpo_transport_request(f->ctx, f->control, &msg, REPLY_MS, &reply,
                                               err, sizeof err);
    hpo_msg_clear(&msg);
    if (rc != HPO_RECV_OK)
        fail_msg("status query failed: %s", err);
    assert_int_equal(reply.type, HPO_MSG_REPLY);
    assert_int_equal(reply.reply.command, HPO_QUERY_STATUS);
    hpo_msg_clear(&reply);

    hpo_msg_init(&msg, HPO_MSG_HEARTBEAT);
    snprintf(msg.heartbeat.worker_id, sizeof msg.heartbeat.worker_id, "w999999");
    msg.heartbeat.trial_id = -1;
    send_msg(f->stranger_sock, &msg);
    expect_msg(f->stranger_sock, HPO_MSG_ERROR, &reply);
    assert_int_equal(reply.error.code, HPO_PROTO_UNKNOWN_WORKER);
    hpo_msg_clear(&reply);

    /* 3. The trial arrives once the fit is done. A fit longer than hpod's
     *    wait limit answers no_work first, and the worker asks again, as
     *    hpo-worker does. */
    for (;;) {
        char recv_err[HPO_ERR_MAX];
        if (hpo_transport_recv_msg(f->worker_sock, NULL, REPLY_MS, &reply, NULL, recv_err,
                                   sizeof recv_err) != HPO_RECV_OK)
            fail_msg("no answer to ready: %s", recv_err);
        if (reply.type != HPO_MSG_NO_WORK)
            break;
        hpo_msg_clear(&reply);
        hpo_msg_init(&msg, HPO_MSG_READY);
        snprintf(msg.ready.worker_id, sizeof msg.ready.worker_id, "%s", worker_id);
        snprintf(msg.ready.token, sizeof msg.ready.token, "%s", f->token);
        send_msg(f->worker_sock, &msg);
    }
    assert_int_equal(reply.type, HPO_MSG_TRIAL);
    int64_t trial_id = reply.trial.trial_id;
    assert_true(trial_id > SEEDED_TRIALS);
    hpo_msg_clear(&reply);

    /* 4. hpod's log orders the events. */
    char assigned[64];
    snprintf(assigned, sizeof assigned, "trial %lld assigned", (long long)trial_id);
    int fit_started = log_line(f, "GP fit started on the proposer thread");
    int status_answered = log_line(f, "query status answered");
    int heartbeat_answered = log_line(f, "heartbeat from w999999");
    int fit_done = log_line(f, "GP on 1000 finished trials");
    int trial_assigned = log_line(f, assigned);
    fprintf(stderr, "log lines: fit started %d, status answered %d, heartbeat answered %d, "
            "fit done %d, trial assigned %d\n", fit_started, status_answered,
            heartbeat_answered, fit_done, trial_assigned);
    assert_true(fit_started > 0);
    assert_true(status_answered > fit_started);
    assert_true(heartbeat_answered > fit_started);
    assert_true(fit_done > status_answered);
    assert_true(fit_done > heartbeat_answered);
    assert_true(trial_assigned > fit_done);

    kill(f->hpod, SIGTERM);
    waitpid(f->hpod, NULL, 0);
    f->hpod = 0;
}

/* With late_fit "random", the ready that starts the fit gets a
 * quasi-random trial at once, before the fit ends. */
static void test_late_fit_random(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX];
    f->late_fit_random = true;
    seed_database(f);
    start_hpod(f);

    f->worker_sock = hpo_transport_dealer_connect(f->ctx, f->workers, false, err, sizeof err);
    assert_non_null(f->worker_sock);
    char worker_id[HPO_NAME_MAX + 1];
    register_and_ask(f, worker_id, sizeof worker_id);

    hpo_msg reply;
    expect_msg(f->worker_sock, HPO_MSG_TRIAL, &reply);
    int64_t trial_id = reply.trial.trial_id;
    assert_true(trial_id > SEEDED_TRIALS);
    assert_int_equal(cJSON_GetArraySize(reply.trial.params), 6);
    hpo_msg_clear(&reply);

    /* The fit still ends and logs its result after the assignment. */
    for (int waited = 0; log_line(f, "GP on 1000 finished trials") == 0; waited += 20) {
        if (waited > REPLY_MS)
            fail_msg("the GP fit did not end");
        sleep_ms(20);
    }
    char assigned[64];
    snprintf(assigned, sizeof assigned, "trial %lld assigned", (long long)trial_id);
    int fit_started = log_line(f, "GP fit started on the proposer thread");
    int random_given = log_line(f, "gets a quasi-random trial");
    int trial_assigned = log_line(f, assigned);
    int fit_done = log_line(f, "GP on 1000 finished trials");
    fprintf(stderr, "log lines: fit started %d, quasi-random trial %d, trial assigned %d, "
            "fit done %d\n", fit_started, random_given, trial_assigned, fit_done);
    assert_true(fit_started > 0);
    assert_true(random_given > fit_started);
    assert_true(trial_assigned > random_given);
    assert_true(fit_done > trial_assigned);

    kill(f->hpod, SIGTERM);
    waitpid(f->hpod, NULL, 0);
    f->hpod = 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s HPOD STUDY\n", argv[0]);
        return 2;
    }
    hpod_path = argv[1];
    study_path = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_answers_during_fit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_fit_random, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
