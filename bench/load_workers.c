/* bench/load_workers: many simulated workers against one hpod on loopback.
 *
 * Starts hpod on a fresh database in a temporary folder, connects N DEALER
 * sockets to it from this one process, and lets each act as a worker with
 * a synthetic objective: it registers, asks for trials, answers each one
 * after --think-ms with an objective computed from the parameters, sends
 * heartbeats, and sends leave once the study is done. Each worker keeps
 * the session token from `registered` and sends it in every later message.
 * Optional bogus peers send invalid frames throughout. When hpod has
 * exited, the database is checked: exactly --trials ok trials, ids
 * 1..--trials, each handed out once.
 *
 * Each simulated worker connects from its own loopback source address
 * (127.1.0.1, 127.1.0.2, ...). So hpod counts one peer per worker, as with
 * workers on separate hosts, and its limit of HPO_REGISTER_LIMIT
 * registrations per peer and window does not throttle the start. Linux
 * routes all of 127.0.0.0/8 to the loopback interface. The program checks
 * at start that it can bind those addresses and exits otherwise.
 *
 * Prints trials per second, the time from a worker's ready to its trial
 * (p50, p99, max), and hpod's CPU time and peak RSS (from wait4()).
 *
 * Usage: load_workers --hpod PATH --study FILE [options]; --help lists
 * them. Exit status 0 when the study completed with no lost or duplicated
 * trial. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "hpo/error.h"
#include "hpo/protocol.h"
#include "hpo/transport.h"
#include "storage.h"

/* A worker resends register, ready or its result when the reply is this
 * late. On loopback that happens only when hpod is overloaded. */
#define REPLY_TIMEOUT_MS 10000

/* Delay before a worker registers again after worker_id_taken or
 * too_many_registrations, as hpo-worker does. */
#define REGISTER_RETRY_MS 1000

/* Source addresses of the simulated workers: 127.1.B.C with C in
 * 1 .. SOURCE_HOSTS_PER_BLOCK, so that no address ends in 0 or 255. */
#define SOURCE_HOSTS_PER_BLOCK 254

typedef struct {
    const char *hpod;
    const char *study;
    const char *tuner;
    int workers;
    int trials;
    int think_ms;
    int bogus;
    int bogus_ms;
    int timeout_s;
    const char *tmpdir;
    bool keep;
} options;

typedef enum {
    W_UNREGISTERED, /* sends register at due_ms */
    W_REGISTERING,
    W_IDLE,        /* sends ready at due_ms */
    W_ASKING,      /* ready sent at asked_ms */
    W_RUNNING,     /* result due at due_ms */
    W_WAIT_ACK,
    W_DONE,        /* study_done or shutdown received */
} worker_state;

typedef struct {
    void *sock;
    char id[HPO_NAME_MAX + 1];
    char token[HPO_TOKEN_MAX + 1]; /* session token from the last registered;
                                      "" before the first */
    worker_state state;
    int64_t due_ms;
    int64_t sent_ms;        /* when the message awaiting a reply was sent */
    double ready_sent_ms;   /* when the pending ready was sent, for latency */
    int64_t heartbeat_due_ms;
    int heartbeat_ms;
    int64_t trial_id;
    double objective;
} sim_worker;

typedef struct {
    const options *opt;
    char dir[4096];
    char db[4200];
    char workers_endpoint[256];
    pid_t hpod;
    int hpod_status;
    struct rusage hpod_usage;
    void *ctx;
    sim_worker *w;
    void **bogus;
    int64_t bogus_due_ms;

    double *latency_ms;     /* ready -> trial, one per assignment */
    size_t n_latency, latency_cap;
    uint8_t *assigned;      /* times each trial id was handed out */
    size_t assigned_cap;
    long results_acked, no_work, resends, duplicates, errors, bogus_sent;
    long register_limited;  /* too_many_registrations answers */
    long id_taken;          /* worker_id_taken answers */
    int64_t first_ready_ms, last_ack_ms;
} bench;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_ms_precise(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void usage(FILE *out)
{
    fprintf(out,
        "Usage: load_workers --hpod PATH --study FILE [options]\n"
        "Runs simulated workers with a synthetic objective against one hpod on\n"
        "loopback and reports its throughput, assignment latency, CPU and memory.\n"
        "\n"
        "  --hpod PATH       the hpod program\n"
        "  --study FILE      study file; its budget is ignored except max trials\n"
        "  --workers N       simulated workers, each with one DEALER socket and its\n"
        "                    own source address in 127.1.0.0/16 (default 500)\n"
        "  --trials N        trials of the study (default 20000)\n"
        "  --tuner NAME      random or bayes (default random)\n"
        "  --think-ms MS     time each worker takes per trial (default 0)\n"
        "  --bogus N         extra peers that send invalid frames (default 0)\n"
        "  --bogus-ms MS     interval of each bogus peer's frames (default 100)\n"
        "  --timeout S       give up after S seconds (default 900)\n"
        "  --tmpdir DIR      folder for hpod's database and log (default /tmp);\n"
        "                    a tmpfs such as /dev/shm takes fsync out of the measure\n"
        "  --keep            keep the temporary folder with hpod's log and database\n");
}

static int parse_int(const char *name, const char *text, int min, int max, int *out)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
        fprintf(stderr, "load_workers: %s: \"%s\" is not an integer from %d to %d\n",
                name, text, min, max);
        return -1;
    }
    *out = (int)value;
    return 0;
}

static int parse_options(int argc, char **argv, options *opt)
{
    static const struct option longs[] = {
        {"hpod", required_argument, NULL, 'H'},
        {"study", required_argument, NULL, 's'},
        {"workers", required_argument, NULL, 'w'},
        {"trials", required_argument, NULL, 'n'},
        {"tuner", required_argument, NULL, 't'},
        {"think-ms", required_argument, NULL, 'k'},
        {"bogus", required_argument, NULL, 'b'},
        {"bogus-ms", required_argument, NULL, 'B'},
        {"timeout", required_argument, NULL, 'T'},
        {"tmpdir", required_argument, NULL, 'D'},
        {"keep", no_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *opt = (options){.tuner = "random", .workers = 500, .trials = 20000,
                     .bogus_ms = 100, .timeout_s = 900, .tmpdir = "/tmp"};
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 'H': opt->hpod = optarg; break;
        case 's': opt->study = optarg; break;
        case 't': opt->tuner = optarg; break;
        case 'w': rc = parse_int("--workers", optarg, 1, 4000, &opt->workers); break;
        case 'n': rc = parse_int("--trials", optarg, 1, 1000000, &opt->trials); break;
        case 'k': rc = parse_int("--think-ms", optarg, 0, 3600000, &opt->think_ms); break;
        case 'b': rc = parse_int("--bogus", optarg, 0, 4000, &opt->bogus); break;
        case 'B': rc = parse_int("--bogus-ms", optarg, 1, 3600000, &opt->bogus_ms); break;
        case 'T': rc = parse_int("--timeout", optarg, 1, 86400, &opt->timeout_s); break;
        case 'D': opt->tmpdir = optarg; break;
        case 'K': opt->keep = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
        if (rc != 0)
            return -1;
    }
    if (opt->hpod == NULL || opt->study == NULL || optind != argc) {
        usage(stderr);
        return -1;
    }
    return 0;
}

/* --- hpod ------------------------------------------------------------------ */

static bool read_ready_value(const char *path, const char *key, char *out, size_t size)
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
            size_t len = strlen(line + n + 1);
            found = len < size;
            if (found)
                memcpy(out, line + n + 1, len + 1);
        }
    }
    fclose(file);
    return found;
}

/* Starts hpod on loopback TCP with ports it picks, and waits for its ready
 * file. */
static int start_hpod(bench *b, char *err, size_t errlen)
{
    char ready[4200], log[4200], trials[32], timeout[32];
    snprintf(ready, sizeof ready, "%s/ready", b->dir);
    snprintf(log, sizeof log, "%s/hpod.log", b->dir);
    snprintf(trials, sizeof trials, "%d", b->opt->trials);
    /* Long enough that a worker of a slow run is never declared lost. */
    snprintf(timeout, sizeof timeout, "%d", 120);
    const char *argv[] = {
        b->opt->hpod, "--db", b->db, "--study", b->opt->study,
        "--workers", "tcp://127.0.0.1:*", "--control", "tcp://127.0.0.1:*",
        "--ready-file", ready, "--max-trials", trials, "--tuner", b->opt->tuner,
        "--worker-timeout", timeout, NULL,
    };
    pid_t pid = fork();
    if (pid < 0)
        return hpo_error(err, errlen, "fork failed: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
        }
        execv(b->opt->hpod, (char *const *)argv);
        _exit(127);
    }
    b->hpod = pid;

    int64_t deadline = now_ms() + 20000;
    while (!read_ready_value(ready, "workers", b->workers_endpoint,
                             sizeof b->workers_endpoint)) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            b->hpod = 0;
            return hpo_error(err, errlen, "hpod exited before listening; see %s", log);
        }
        if (now_ms() > deadline)
            return hpo_error(err, errlen, "hpod did not listen within 20 s; see %s", log);
        usleep(20000);
    }
    return 0;
}

/* Reaps hpod if it exited, keeping its exit status and resource usage. */
static bool hpod_reaped(bench *b, bool block)
{
    if (b->hpod <= 0)
        return true;
    int status = 0;
    pid_t rc = wait4(b->hpod, &status, block ? 0 : WNOHANG, &b->hpod_usage);
    if (rc != b->hpod)
        return false;
    b->hpod = 0;
    b->hpod_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return true;
}

/* --- simulated workers ------------------------------------------------------- */

static void send_or_count(bench *b, void *sock, const hpo_msg *msg)
{
    char err[HPO_ERR_MAX];
    if (hpo_transport_send_msg(sock, NULL, msg, err, sizeof err) != 0) {
        b->errors++;
        fprintf(stderr, "load_workers: sending %s failed: %s\n",
                hpo_msg_type_name(msg->type), err);
    }
}

static void send_register(bench *b, sim_worker *w, int index)
{
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_REGISTER);
    snprintf(msg.reg.host, sizeof msg.reg.host, "loadgen");
    snprintf(msg.reg.name, sizeof msg.reg.name, "sim-%d", index);
    msg.reg.pid = 1 + index;
    msg.reg.threads = 1;
    msg.reg.protocol = HPO_PROTO_VERSION;
    /* The token of the previous registration lets this register replace
     * it. kind is left out, so that hpod does not check it and any study
     * file works. */
    snprintf(msg.reg.token, sizeof msg.reg.token, "%s", w->token);
    send_or_count(b, w->sock, &msg);
    w->state = W_REGISTERING;
    w->sent_ms = now_ms();
}

static void send_ready(bench *b, sim_worker *w)
{
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_READY);
    snprintf(msg.ready.worker_id, sizeof msg.ready.worker_id, "%s", w->id);
    snprintf(msg.ready.token, sizeof msg.ready.token, "%s", w->token);
    send_or_count(b, w->sock, &msg);
    w->state = W_ASKING;
    w->sent_ms = now_ms();
    w->ready_sent_ms = now_ms_precise();
    if (b->first_ready_ms == 0)
        b->first_ready_ms = w->sent_ms;
}

static void send_result(bench *b, sim_worker *w)
{
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_RESULT);
    snprintf(msg.result.worker_id, sizeof msg.result.worker_id, "%s", w->id);
    snprintf(msg.result.token, sizeof msg.result.token, "%s", w->token);
    msg.result.trial_id = w->trial_id;
    msg.result.status = HPO_TRIAL_OK;
    msg.result.metrics = cJSON_CreateObject();
    cJSON_AddNumberToObject(msg.result.metrics, "val_accuracy", w->objective);
    cJSON_AddNumberToObject(msg.result.metrics, "val_loss", 1.0 - w->objective);
    msg.result.epochs_run = 1;
    msg.result.wall_seconds = b->opt->think_ms / 1000.0;
    send_or_count(b, w->sock, &msg);
    hpo_msg_clear(&msg);
    w->state = W_WAIT_ACK;
    w->sent_ms = now_ms();
}

/* Tells hpod that the worker exits, as hpo-worker does after study_done
 * or shutdown, so that hpod drops it at once. */
static void send_leave(bench *b, sim_worker *w, const char *reason)
{
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_LEAVE);
    snprintf(msg.leave.worker_id, sizeof msg.leave.worker_id, "%s", w->id);
    snprintf(msg.leave.token, sizeof msg.leave.token, "%s", w->token);
    snprintf(msg.leave.reason, sizeof msg.leave.reason, "%s", reason);
    send_or_count(b, w->sock, &msg);
}

/* Stops the worker's heartbeats, which would only draw more errors, and
 * registers it again after delay_ms. */
static void register_later(sim_worker *w, int64_t delay_ms)
{
    w->heartbeat_ms = 0;
    w->state = W_UNREGISTERED;
    w->due_ms = now_ms() + delay_ms;
}

/* The synthetic objective: a smooth function of the numeric parameters
 * and the lengths of the string ones, in (0, 1]. It costs nothing, and
 * differs between configurations so that a tuner has a signal. */
static double objective_of(const cJSON *params)
{
    double sum = 0.0;
    const cJSON *item;
    cJSON_ArrayForEach(item, params) {
        if (cJSON_IsNumber(item))
            sum += log1p(fabs(item->valuedouble));
        else if (cJSON_IsString(item))
            sum += 0.1 * (double)strlen(item->valuestring);
        else if (cJSON_IsTrue(item))
            sum += 0.5;
    }
    return 1.0 / (1.0 + (sum - 3.0) * (sum - 3.0));
}

static void record_assignment(bench *b, sim_worker *w, int64_t trial_id)
{
    if (b->n_latency == b->latency_cap) {
        size_t cap = b->latency_cap == 0 ? 4096 : 2 * b->latency_cap;
        double *bigger = realloc(b->latency_ms, cap * sizeof *bigger);
        if (bigger == NULL)
            return;
        b->latency_ms = bigger;
        b->latency_cap = cap;
    }
    b->latency_ms[b->n_latency++] = now_ms_precise() - w->ready_sent_ms;

    if ((size_t)trial_id >= b->assigned_cap) {
        size_t cap = b->assigned_cap == 0 ? 1024 : b->assigned_cap;
        while (cap <= (size_t)trial_id)
            cap *= 2;
        uint8_t *bigger = realloc(b->assigned, cap);
        if (bigger == NULL)
            return;
        memset(bigger + b->assigned_cap, 0, cap - b->assigned_cap);
        b->assigned = bigger;
        b->assigned_cap = cap;
    }
    if (b->assigned[trial_id] > 0)
        b->duplicates++;
    if (b->assigned[trial_id] < UINT8_MAX)
        b->assigned[trial_id]++;
}

/* Counts and logs an error from hpod to worker w, and registers w again
 * where hpo-worker would. A worker that left registers no more. */
static void on_error(bench *b, sim_worker *w, int index, const hpo_msg_error *error)
{
    b->errors++;
    fprintf(stderr, "load_workers: worker %s (sim-%d) got error %s: %s\n",
            w->id[0] ? w->id : "unregistered", index,
            hpo_proto_status_name(error->code), error->message);
    if (error->code == HPO_PROTO_TOO_MANY_REGISTRATIONS)
        b->register_limited++;
    else if (error->code == HPO_PROTO_WORKER_ID_TAKEN)
        b->id_taken++;

    if (w->state == W_DONE)
        return;
    bool registering = w->state == W_UNREGISTERED || w->state == W_REGISTERING;
    if (error->code == HPO_PROTO_TOO_MANY_REGISTRATIONS ||
        error->code == HPO_PROTO_WORKER_ID_TAKEN)
        register_later(w, REGISTER_RETRY_MS);
    else if (error->code == HPO_PROTO_UNKNOWN_WORKER && !registering)
        register_later(w, 0);
}

/* Handles one message from hpod to worker w. */
static void on_message(bench *b, sim_worker *w, int index, const hpo_msg *msg)
{
    switch (msg->type) {
    case HPO_MSG_REGISTERED:
        snprintf(w->id, sizeof w->id, "%s", msg->registered.worker_id);
        snprintf(w->token, sizeof w->token, "%s", msg->registered.token);
        w->heartbeat_ms = msg->registered.heartbeat_ms;
        w->heartbeat_due_ms = now_ms() + w->heartbeat_ms;
        send_ready(b, w);
        break;
    case HPO_MSG_TRIAL:
        record_assignment(b, w, msg->trial.trial_id);
        w->trial_id = msg->trial.trial_id;
        w->objective = objective_of(msg->trial.params);
        w->state = W_RUNNING;
        w->due_ms = now_ms() + b->opt->think_ms;
        break;
    case HPO_MSG_NO_WORK:
        b->no_work++;
        w->state = W_IDLE;
        w->due_ms = now_ms() + msg->no_work.retry_ms;
        break;
    case HPO_MSG_RESULT_ACK:
        if (w->state == W_WAIT_ACK && msg->result_ack.trial_id == w->trial_id) {
            b->results_acked++;
            b->last_ack_ms = now_ms();
            send_ready(b, w);
        }
        break;
    case HPO_MSG_STOP_TRIAL:
        /* Unexpected here; the worker still sends the trial's result. */
        fprintf(stderr, "load_workers: worker %s received stop_trial %" PRId64 ": %s\n",
                w->id, msg->stop_trial.trial_id, msg->stop_trial.reason);
        b->errors++;
        break;
    case HPO_MSG_STUDY_DONE:
        send_leave(b, w, "the study is done");
        w->state = W_DONE;
        break;
    case HPO_MSG_SHUTDOWN:
        send_leave(b, w, "shutdown received");
        w->state = W_DONE;
        break;
    case HPO_MSG_ERROR:
        on_error(b, w, index, &msg->error);
        break;
    default:
        b->errors++;
        break;
    }
}

/* Sends what is due: register after a rejected registration, ready after
 * no_work, results after the think time, heartbeats, and resends of
 * requests whose reply is overdue. */
static void run_timers(bench *b, int64_t now)
{
    for (int i = 0; i < b->opt->workers; i++) {
        sim_worker *w = &b->w[i];
        if (w->state == W_DONE)
            continue;
        if (w->state == W_UNREGISTERED && now >= w->due_ms)
            send_register(b, w, i);
        else if (w->state == W_IDLE && now >= w->due_ms)
            send_ready(b, w);
        else if (w->state == W_RUNNING && now >= w->due_ms)
            send_result(b, w);
        else if ((w->state == W_REGISTERING || w->state == W_ASKING ||
                  w->state == W_WAIT_ACK) && now - w->sent_ms > REPLY_TIMEOUT_MS) {
            b->resends++;
            if (w->state == W_WAIT_ACK)
                send_result(b, w);
            else
                send_register(b, w, i);
        }
        if (w->heartbeat_ms > 0 && now >= w->heartbeat_due_ms) {
            hpo_msg msg;
            hpo_msg_init(&msg, HPO_MSG_HEARTBEAT);
            snprintf(msg.heartbeat.worker_id, sizeof msg.heartbeat.worker_id, "%s", w->id);
            snprintf(msg.heartbeat.token, sizeof msg.heartbeat.token, "%s", w->token);
            msg.heartbeat.trial_id = w->state == W_RUNNING || w->state == W_WAIT_ACK
                                         ? w->trial_id : -1;
            send_or_count(b, w->sock, &msg);
            w->heartbeat_due_ms = now + w->heartbeat_ms;
        }
    }

    if (b->opt->bogus > 0 && now >= b->bogus_due_ms) {
        static const char *garbage[] = {
            "{\"v\":1,\"type\":", "{\"v\":1,\"type\":\"ready\",\"worker_id\":\"w999999\"}",
            "{\"v\":1,\"type\":\"result\",\"worker_id\":1}", "[]",
        };
        char err[HPO_ERR_MAX];
        for (int i = 0; i < b->opt->bogus; i++) {
            const char *text = garbage[(size_t)(b->bogus_sent + i) % 4];
            if (hpo_transport_send(b->bogus[i], NULL, text, strlen(text), err,
                                   sizeof err) == 0)
                b->bogus_sent++;
        }
        b->bogus_due_ms = now + b->opt->bogus_ms;
    }
}

/* Reads and drops whatever arrived on the bogus peers' sockets. */
static void drain_bogus(bench *b)
{
    char buf[2048];
    for (int i = 0; i < b->opt->bogus; i++) {
        while (zmq_recv(b->bogus[i], buf, sizeof buf, ZMQ_DONTWAIT) >= 0)
            ;
    }
}

static bool all_done(const bench *b)
{
    for (int i = 0; i < b->opt->workers; i++) {
        if (b->w[i].state != W_DONE)
            return false;
    }
    return true;
}

/* Writes the loopback source address of simulated worker `index`. */
static void source_address(int index, char *buf, size_t size)
{
    snprintf(buf, size, "127.1.%d.%d", index / SOURCE_HOSTS_PER_BLOCK,
             1 + index % SOURCE_HOSTS_PER_BLOCK);
}

/* Checks that a TCP socket can bind the source address, which fails with
 * EADDRNOTAVAIL where the loopback interface has only 127.0.0.1. With such
 * an address, zmq_connect() (libzmq 4.3.4) still returns 0 but no message
 * arrives, so without this check the workers would wait until --timeout. */
static int check_source_address(const char *address, char *err, size_t errlen)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    if (inet_pton(AF_INET, address, &sa.sin_addr) != 1)
        return hpo_error(err, errlen, "invalid source address %s", address);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return hpo_error(err, errlen, "socket failed: %s", strerror(errno));
    int rc = bind(fd, (const struct sockaddr *)&sa, sizeof sa);
    int bind_errno = errno;
    close(fd);
    if (rc != 0)
        return hpo_error(err, errlen, "binding the source address %s failed: %s; each "
                         "simulated worker connects from its own address in "
                         "127.1.0.0/16, which needs all of 127.0.0.0/8 on the "
                         "loopback interface, as Linux sets it up", address,
                         strerror(bind_errno));
    return 0;
}

/* Checks the first and the last source address of the workers. */
static int check_source_addresses(int workers, char *err, size_t errlen)
{
    char source[32];
    source_address(0, source, sizeof source);
    if (check_source_address(source, err, errlen) != 0)
        return -1;
    source_address(workers - 1, source, sizeof source);
    return check_source_address(source, err, errlen);
}

static int open_sockets(bench *b, char *err, size_t errlen)
{
    int n = b->opt->workers + b->opt->bogus;

    /* hpod binds tcp://127.0.0.1:PORT, and ZeroMQ's connect syntax
     * tcp://SOURCE:0;HOST:PORT picks the source address of a connection. */
    static const char tcp_prefix[] = "tcp://";
    if (strncmp(b->workers_endpoint, tcp_prefix, strlen(tcp_prefix)) != 0)
        return hpo_error(err, errlen, "hpod's workers endpoint %s is not TCP",
                         b->workers_endpoint);
    const char *target = b->workers_endpoint + strlen(tcp_prefix);
    char source[32];

    b->ctx = zmq_ctx_new();
    if (b->ctx == NULL)
        return hpo_error(err, errlen, "zmq_ctx_new failed");
    zmq_ctx_set(b->ctx, ZMQ_MAX_SOCKETS, n + 16);
    zmq_ctx_set(b->ctx, ZMQ_IO_THREADS, 2);
    b->w = calloc((size_t)b->opt->workers, sizeof *b->w);
    b->bogus = calloc((size_t)b->opt->bogus + 1, sizeof *b->bogus);
    if (b->w == NULL || b->bogus == NULL)
        return hpo_error(err, errlen, "out of memory");
    for (int i = 0; i < b->opt->workers; i++) {
        char endpoint[sizeof b->workers_endpoint + 64];
        source_address(i, source, sizeof source);
        snprintf(endpoint, sizeof endpoint, "tcp://%s:0;%s", source, target);
        b->w[i].sock = hpo_transport_dealer_connect(b->ctx, endpoint, false, err, errlen);
        if (b->w[i].sock == NULL)
            return -1;
    }
    for (int i = 0; i < b->opt->bogus; i++) {
        b->bogus[i] = hpo_transport_dealer_connect(b->ctx, b->workers_endpoint, false,
                                                   err, errlen);
        if (b->bogus[i] == NULL)
            return -1;
    }
    return 0;
}

static void close_sockets(bench *b)
{
    int linger = 0;
    for (int i = 0; b->w != NULL && i < b->opt->workers; i++) {
        if (b->w[i].sock != NULL) {
            zmq_setsockopt(b->w[i].sock, ZMQ_LINGER, &linger, sizeof linger);
            zmq_close(b->w[i].sock);
        }
    }
    for (int i = 0; b->bogus != NULL && i < b->opt->bogus; i++) {
        if (b->bogus[i] != NULL) {
            zmq_setsockopt(b->bogus[i], ZMQ_LINGER, &linger, sizeof linger);
            zmq_close(b->bogus[i]);
        }
    }
    if (b->ctx != NULL)
        zmq_ctx_term(b->ctx);
    free(b->w);
    free(b->bogus);
}

/* Runs the workers until each received study_done or shutdown, hpod
 * exited, or the timeout passed. */
static int run_workers(bench *b, char *err, size_t errlen)
{
    int n = b->opt->workers;
    zmq_pollitem_t *items = calloc((size_t)n, sizeof *items);
    if (items == NULL)
        return hpo_error(err, errlen, "out of memory");
    for (int i = 0; i < n; i++) {
        items[i].socket = b->w[i].sock;
        items[i].events = ZMQ_POLLIN;
        send_register(b, &b->w[i], i);
    }

    int64_t deadline = now_ms() + (int64_t)b->opt->timeout_s * 1000;
    int result = 0;
    while (!all_done(b)) {
        if (now_ms() > deadline) {
            result = hpo_error(err, errlen, "timed out after %d s", b->opt->timeout_s);
            break;
        }
        if (hpod_reaped(b, false)) {
            result = hpo_error(err, errlen, "hpod exited (status %d) before every "
                               "worker was told the study is done", b->hpod_status);
            break;
        }
        if (zmq_poll(items, n, 5) < 0 && errno != EINTR) {
            result = hpo_error(err, errlen, "zmq_poll: %s", zmq_strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            hpo_msg msg;
            char why[HPO_ERR_MAX];
            while (hpo_transport_recv_msg(b->w[i].sock, NULL, 0, &msg, NULL, why,
                                          sizeof why) == HPO_RECV_OK) {
                on_message(b, &b->w[i], i, &msg);
                hpo_msg_clear(&msg);
            }
        }
        drain_bogus(b);
        run_timers(b, now_ms());
    }
    free(items);
    return result;
}

/* --- report ---------------------------------------------------------------- */

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return NAN;
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    return sorted[i > 0 ? i - 1 : 0];
}

/* Checks the database: exactly --trials ok trials with ids 1..--trials,
 * each handed out once. Returns the number of problems found. */
static int check_database(const bench *b)
{
    hpo_storage *st = NULL;
    char err[HPO_ERR_MAX];
    if (hpo_storage_open(b->db, false, &st, err, sizeof err) != 0) {
        fprintf(stderr, "load_workers: %s\n", err);
        return 1;
    }
    hpo_trial_record *records = NULL;
    size_t n = 0;
    int problems = 0;
    if (hpo_storage_trials_list(st, &records, &n, err, sizeof err) != 0) {
        fprintf(stderr, "load_workers: %s\n", err);
        hpo_storage_close(&st);
        return 1;
    }
    size_t ok = 0, retried = 0, misplaced = 0;
    for (size_t i = 0; i < n; i++) {
        ok += records[i].status == HPO_TRIAL_STATE_OK;
        retried += records[i].attempts != 1;
        misplaced += records[i].id != (int64_t)i + 1;
    }
    if (misplaced > 0) {
        fprintf(stderr, "load_workers: trial ids have gaps or repeats: %zu of %zu "
                "ids are not 1..N in order\n", misplaced, n);
        problems++;
    }
    if (ok != (size_t)b->opt->trials || n != (size_t)b->opt->trials) {
        fprintf(stderr, "load_workers: the database holds %zu trials, %zu ok; "
                "expected %d ok\n", n, ok, b->opt->trials);
        problems++;
    }
    if (retried > 0) {
        fprintf(stderr, "load_workers: %zu trials were handed out more than once\n",
                retried);
        problems++;
    }
    printf("database: %zu trials, %zu ok, %zu handed out more than once, ids %s\n",
           n, ok, retried, misplaced == 0 ? "1..N without gaps" : "with gaps");
    hpo_trial_records_free(&records, n);
    hpo_storage_close(&st);
    return problems;
}

static int report(bench *b)
{
    double wall_s = b->results_acked > 0
                        ? (double)(b->last_ack_ms - b->first_ready_ms) / 1000.0 : 0.0;
    qsort(b->latency_ms, b->n_latency, sizeof *b->latency_ms, compare_double);
    double cpu_s = (double)b->hpod_usage.ru_utime.tv_sec +
                   (double)b->hpod_usage.ru_utime.tv_usec / 1e6 +
                   (double)b->hpod_usage.ru_stime.tv_sec +
                   (double)b->hpod_usage.ru_stime.tv_usec / 1e6;

    printf("load: %d workers, %d trials, tuner %s, think %d ms, %d bogus peers\n",
           b->opt->workers, b->opt->trials, b->opt->tuner, b->opt->think_ms, b->opt->bogus);
    printf("throughput: %ld results acknowledged in %.2f s = %.1f trials/s\n",
           b->results_acked, wall_s, wall_s > 0 ? (double)b->results_acked / wall_s : 0.0);
    printf("ready -> trial latency: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%zu assignments)\n",
           percentile(b->latency_ms, b->n_latency, 50),
           percentile(b->latency_ms, b->n_latency, 99),
           b->n_latency > 0 ? b->latency_ms[b->n_latency - 1] : NAN, b->n_latency);
    printf("hpod: exit %d, CPU %.2f s (%.0f%% of one core), peak RSS %.1f MiB\n",
           b->hpod_status, cpu_s, wall_s > 0 ? 100.0 * cpu_s / wall_s : 0.0,
           (double)b->hpod_usage.ru_maxrss / 1024.0);
    printf("workers: %ld no_work answers, %ld resends, %ld errors (%ld "
           "too_many_registrations, %ld worker_id_taken), %ld trials assigned twice; "
           "bogus frames sent: %ld\n", b->no_work, b->resends, b->errors,
           b->register_limited, b->id_taken, b->duplicates, b->bogus_sent);

    int problems = check_database(b);
    if (b->duplicates > 0 || b->hpod_status != 0)
        problems++;
    return problems;
}

int main(int argc, char **argv)
{
    options opt;
    if (parse_options(argc, argv, &opt) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);

    bench b = {.opt = &opt};
    char err[HPO_ERR_MAX];
    if (check_source_addresses(opt.workers, err, sizeof err) != 0) {
        fprintf(stderr, "load_workers: %s\n", err);
        return 1;
    }
    snprintf(b.dir, sizeof b.dir, "%s/hpo-load-XXXXXX", opt.tmpdir);
    if (mkdtemp(b.dir) == NULL) {
        fprintf(stderr, "load_workers: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    snprintf(b.db, sizeof b.db, "%s/study.db", b.dir);

    int rc = start_hpod(&b, err, sizeof err);
    if (rc == 0)
        rc = open_sockets(&b, err, sizeof err);
    if (rc == 0)
        rc = run_workers(&b, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "load_workers: %s\n", err);
    close_sockets(&b);

    if (b.hpod > 0) {
        /* hpod exits by itself once the study is done; give it time. */
        for (int i = 0; i < 200 && !hpod_reaped(&b, false); i++)
            usleep(50000);
        if (b.hpod > 0) {
            kill(b.hpod, SIGKILL);
            hpod_reaped(&b, true);
        }
    }
    int problems = rc != 0 ? 1 : 0;
    problems += report(&b);
    free(b.latency_ms);
    free(b.assigned);

    if (opt.keep) {
        printf("kept: %s (hpod.log, study.db)\n", b.dir);
    } else {
        char command[4200];
        snprintf(command, sizeof command, "rm -rf '%s'", b.dir);
        if (system(command) != 0)
            fprintf(stderr, "load_workers: could not remove %s\n", b.dir);
    }
    printf("%s\n", problems == 0 ? "result: ok, no trial lost or duplicated"
                                 : "result: FAILED");
    return problems == 0 ? 0 : 1;
}
