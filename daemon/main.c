/* hpod: the coordinator of a tuning study. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>

#include "db_lock.h"
#include "hpo/auth.h"
#include "hpo/endpoint.h"
#include "hpo/error.h"
#include "hpo/log.h"
#include "hpo/protocol.h"
#include "hpo/study.h"
#include "hpo/tuner.h"
#include "scheduler.h"
#include "server.h"
#include "storage.h"
#include "study_open.h"

/* Defaults of --lost-after, --max-failures and --max-attempts. */
#define LOST_AFTER_DEFAULT 5
#define MAX_FAILURES_DEFAULT 3
#define MAX_ATTEMPTS_DEFAULT 3

typedef struct {
    hpo_study_request study; /* --study, --db, --tuner, --seed, --max-trials,
                                --max-failures and --max-attempts */
    const char *workers_endpoint;
    const char *control_endpoint;
    const char *ready_file;
    int lost_after;          /* missed heartbeats before a worker is lost */
    int worker_timeout_s;    /* 0: lost_after decides */
    int heartbeat_ms;
    bool linger;
    const char *curve_secret_path;     /* NULL: no CURVE */
    const char *authorized_keys_path;  /* with curve_secret_path */
    bool insecure;           /* allow endpoints beyond this host without CURVE */
    hpo_log_level log_level;
} hpod_options;

static void print_usage(FILE *out)
{
    fprintf(out,
        "Usage: hpod --db PATH [--study FILE] [options]\n"
        "Coordinates a hyperparameter tuning study: hands trials to hpo-worker\n"
        "processes, stores every result in an SQLite database and answers hpoctl.\n"
        "\n"
        "  --study FILE          study file (JSON); may be left out when --db\n"
        "                        already holds the study, which then resumes\n"
        "  --db PATH             SQLite database of the study (created if absent)\n"
        "  --workers ENDPOINT    endpoint that workers connect to\n"
        "                        (default tcp://127.0.0.1:5555; other hosts need\n"
        "                        e.g. tcp://*:5555 with CURVE keys or --insecure)\n"
        "  --control ENDPOINT    endpoint for hpoctl (default tcp://127.0.0.1:5556)\n"
        "  --max-trials N        trials that count before the study is complete\n"
        "                        (default: the study file's budget.max_trials)\n"
        "  --seed N              seed of the tuner and the trials (default 1; a\n"
        "                        resumed study keeps its stored seed)\n"
        "  --tuner NAME          proposal method: bayes (Gaussian-process Bayesian\n"
        "                        optimization, the default) or random; a resumed\n"
        "                        study keeps its stored tuner and rejects another\n"
        "  --max-failures N      end the study as failed after N trials in a row\n"
        "                        failed on workers (default %d; a resumed study\n"
        "                        keeps its stored value unless this is given)\n"
        "  --heartbeat-ms MS     heartbeat interval sent to workers (default %d)\n"
        "  --lost-after N        declare a worker lost after N heartbeat intervals\n"
        "                        without a message from it, and queue its trial\n"
        "                        again (default %d, at least 2)\n"
        "  --worker-timeout S    the same limit in seconds instead of heartbeats\n"
        "  --max-attempts N      times a trial may be handed out; a trial whose\n"
        "                        worker is lost on its last attempt fails\n"
        "                        (default %d; a resumed study keeps its stored\n"
        "                        value unless this is given)\n"
        "  --linger              keep answering hpoctl after the study ended,\n"
        "                        until hpoctl stop or a signal\n"
        "  --ready-file PATH     write the bound endpoints to PATH once listening\n"
        "  --log-level LEVEL     debug, info, warn or error (default info)\n"
        "  --curve-secret FILE   hpod's CURVE key pair (hpoctl keygen); turns on\n"
        "                        encryption and authentication on both endpoints\n"
        "  --authorized-keys FILE  public keys admitted with CURVE, one per line\n"
        "                        with a role: worker, read or admin\n"
        "  --insecure            listen on an address reachable from other hosts\n"
        "                        without CURVE, admitting every peer\n"
        "  --help                show this help\n"
        "\n"
        "SIGINT or SIGTERM stops hpod: it hands out no more trials, queues the\n"
        "running ones again, tells the workers that it restarts (they keep\n"
        "training and report to the next hpod started with the same --db) and\n"
        "exits with status 0.\n",
        MAX_FAILURES_DEFAULT, HPO_HEARTBEAT_MS_DEFAULT, LOST_AFTER_DEFAULT,
        MAX_ATTEMPTS_DEFAULT);
}

/* Parses a decimal integer in [min, max] for option `name`. */
static int parse_int(const char *name, const char *text, long long min,
                     long long max, long long *out, char *err, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max)
        return hpo_error(err, errlen, "%s: invalid value \"%s\"; expected an "
                         "integer from %lld to %lld", name, text, min, max);
    *out = value;
    return 0;
}

static int parse_options(int argc, char **argv, hpod_options *o, bool *help,
                         char *err, size_t errlen)
{
    enum { OPT_MAX_TRIALS = 256, OPT_MAX_FAILURES, OPT_WORKER_TIMEOUT,
           OPT_HEARTBEAT, OPT_LINGER, OPT_READY_FILE, OPT_LOG_LEVEL,
           OPT_LOST_AFTER, OPT_MAX_ATTEMPTS };
    enum { OPT_CURVE_SECRET = 512, OPT_AUTHORIZED_KEYS, OPT_INSECURE };
    static const struct option longopts[] = {
        {"curve-secret", required_argument, NULL, OPT_CURVE_SECRET},
        {"authorized-keys", required_argument, NULL, OPT_AUTHORIZED_KEYS},
        {"insecure", no_argument, NULL, OPT_INSECURE},
        {"study", required_argument, NULL, 's'},
        {"db", required_argument, NULL, 'd'},
        {"workers", required_argument, NULL, 'w'},
        {"control", required_argument, NULL, 'c'},
        {"seed", required_argument, NULL, 'S'},
        {"tuner", required_argument, NULL, 't'},
        {"max-trials", required_argument, NULL, OPT_MAX_TRIALS},
        {"max-failures", required_argument, NULL, OPT_MAX_FAILURES},
        {"worker-timeout", required_argument, NULL, OPT_WORKER_TIMEOUT},
        {"lost-after", required_argument, NULL, OPT_LOST_AFTER},
        {"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
        {"heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT},
        {"linger", no_argument, NULL, OPT_LINGER},
        {"ready-file", required_argument, NULL, OPT_READY_FILE},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };

    *o = (hpod_options){
        .study = {
            .tuner = "bayes",
            .seed = 1,
            .max_failures = MAX_FAILURES_DEFAULT,
            .max_attempts = MAX_ATTEMPTS_DEFAULT,
        },
        .workers_endpoint = "tcp://127.0.0.1:5555",
        .control_endpoint = "tcp://127.0.0.1:5556",
        .lost_after = LOST_AFTER_DEFAULT,
        .heartbeat_ms = HPO_HEARTBEAT_MS_DEFAULT,
        .log_level = HPO_LOG_INFO,
    };
    *help = false;

    opterr = 0;
    int c;
    long long value = 0;
    bool lost_after_given = false;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 's': o->study.study_path = optarg; break;
        case 'd': o->study.db_path = optarg; break;
        case 'w': o->workers_endpoint = optarg; break;
        case 'c': o->control_endpoint = optarg; break;
        case 't':
            if (hpo_tuner_known_name(optarg, err, errlen) == NULL)
                return -1;
            o->study.tuner = optarg;
            o->study.tuner_given = true;
            break;
        case OPT_LINGER: o->linger = true; break;
        case OPT_READY_FILE: o->ready_file = optarg; break;
        case OPT_CURVE_SECRET: o->curve_secret_path = optarg; break;
        case OPT_AUTHORIZED_KEYS: o->authorized_keys_path = optarg; break;
        case OPT_INSECURE: o->insecure = true; break;
        case 'h': *help = true; return 0;
        case 'S':
            if (parse_int("--seed", optarg, 0, HPO_PROTO_INT_MAX, &value, err, errlen) != 0)
                return -1;
            o->study.seed = (uint64_t)value;
            o->study.seed_given = true;
            break;
        case OPT_MAX_TRIALS:
            if (parse_int("--max-trials", optarg, 1, 1000000, &value, err, errlen) != 0)
                return -1;
            o->study.max_trials = (int)value;
            break;
        case OPT_MAX_FAILURES:
            if (parse_int("--max-failures", optarg, 1, 1000000, &value, err, errlen) != 0)
                return -1;
            o->study.max_failures = (int)value;
            o->study.max_failures_given = true;
            break;
        case OPT_WORKER_TIMEOUT:
            if (parse_int("--worker-timeout", optarg, 1, 86400, &value, err, errlen) != 0)
                return -1;
            o->worker_timeout_s = (int)value;
            break;
        case OPT_LOST_AFTER:
            if (parse_int("--lost-after", optarg, 2, 100000, &value, err, errlen) != 0)
                return -1;
            o->lost_after = (int)value;
            lost_after_given = true;
            break;
        case OPT_MAX_ATTEMPTS:
            if (parse_int("--max-attempts", optarg, 1, 1000000, &value, err, errlen) != 0)
                return -1;
            o->study.max_attempts = (int)value;
            o->study.max_attempts_given = true;
            break;
        case OPT_HEARTBEAT:
            if (parse_int("--heartbeat-ms", optarg, 100, 3600000, &value, err, errlen) != 0)
                return -1;
            o->heartbeat_ms = (int)value;
            break;
        case OPT_LOG_LEVEL:
            if (hpo_log_level_parse(optarg, &o->log_level) != 0)
                return hpo_error(err, errlen, "--log-level: invalid value \"%s\"; "
                                 "expected debug, info, warn or error", optarg);
            break;
        default:
            return hpo_error(err, errlen, "unknown or incomplete option \"%s\"; "
                             "see hpod --help", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return hpo_error(err, errlen, "unexpected argument \"%s\"; see hpod --help",
                         argv[optind]);
    if (o->study.db_path == NULL)
        return hpo_error(err, errlen, "--db is missing; give the SQLite file that "
                         "holds (or will hold) the study");
    if (o->worker_timeout_s > 0 && lost_after_given)
        return hpo_error(err, errlen, "--worker-timeout and --lost-after set the "
                         "same limit; give only one of them");
    if (o->worker_timeout_s > 0 &&
        (int64_t)o->worker_timeout_s * 1000 < 2 * (int64_t)o->heartbeat_ms)
        return hpo_error(err, errlen, "--worker-timeout %d s is shorter than two "
                         "heartbeats of %d ms; raise it", o->worker_timeout_s,
                         o->heartbeat_ms);
    if (o->worker_timeout_s == 0 &&
        (int64_t)o->lost_after * o->heartbeat_ms > 86400 * 1000)
        return hpo_error(err, errlen, "--lost-after %d heartbeats of %d ms is "
                         "longer than a day; lower it", o->lost_after,
                         o->heartbeat_ms);
    return 0;
}

/* Refuses an endpoint that other hosts can reach while CURVE is off,
 * unless --insecure is given. */
static int check_exposure(const hpod_options *o, char *err, size_t errlen)
{
    char inner[HPO_ERR_MAX];
    if (hpo_endpoint_validate(o->workers_endpoint, inner, sizeof inner) != 0)
        return hpo_error(err, errlen, "--workers %s", inner);
    if (hpo_endpoint_validate(o->control_endpoint, inner, sizeof inner) != 0)
        return hpo_error(err, errlen, "--control %s", inner);
    /* Port 0 or * asks for a free port, so two such endpoints differ. */
    size_t length = strlen(o->workers_endpoint);
    bool any_port = length >= 2 && (strcmp(o->workers_endpoint + length - 2, ":0") == 0 ||
                                    strcmp(o->workers_endpoint + length - 2, ":*") == 0);
    if (!any_port && strcmp(o->workers_endpoint, o->control_endpoint) == 0)
        return hpo_error(err, errlen, "--workers and --control are both %s; give each its "
                         "own endpoint", o->workers_endpoint);

    if ((o->curve_secret_path == NULL) != (o->authorized_keys_path == NULL))
        return hpo_error(err, errlen, "%s is missing; CURVE needs both "
                         "--curve-secret FILE and --authorized-keys FILE",
                         o->curve_secret_path == NULL ? "--curve-secret"
                                                      : "--authorized-keys");
    if (o->curve_secret_path != NULL || o->insecure)
        return 0;

    const char *names[] = {"--workers", "--control"};
    const char *endpoints[] = {o->workers_endpoint, o->control_endpoint};
    for (int i = 0; i < 2; i++) {
        if (!hpo_endpoint_is_local(endpoints[i]))
            return hpo_error(err, errlen, "%s %s is reachable from other hosts, "
                             "and CURVE is off, so any peer could take trials, "
                             "send results or stop the study; give "
                             "--curve-secret FILE and --authorized-keys FILE "
                             "(docs/security.md), bind a loopback address such "
                             "as tcp://127.0.0.1:PORT, or pass --insecure",
                             names[i], endpoints[i]);
    }
    return 0;
}

/* Loads hpod's key pair and the authorized keys when CURVE is on, and warns
 * about each endpoint that --insecure leaves open. */
static int load_security(const hpod_options *o, hpo_curve_keypair *key,
                         hpo_authorized_keys **keys, char *err, size_t errlen)
{
    if (o->curve_secret_path == NULL) {
        const char *endpoints[] = {o->workers_endpoint, o->control_endpoint};
        for (int i = 0; i < 2; i++) {
            if (!hpo_endpoint_is_local(endpoints[i]))
                hpo_log_warn("listening on %s without CURVE (--insecure): every "
                             "host that reaches it is admitted", endpoints[i]);
        }
        return 0;
    }
    if (o->insecure)
        hpo_log_warn("--insecure has no effect: CURVE is on");
    if (hpo_curve_keypair_load(o->curve_secret_path, key, err, errlen) != 0 ||
        hpo_authorized_keys_load(o->authorized_keys_path, keys, err, errlen) != 0)
        return -1;
    if (hpo_authorized_keys_count(*keys) == 0)
        hpo_log_warn("%s lists no keys: every worker and client is rejected",
                     o->authorized_keys_path);
    return 0;
}

/* Formats an rlimit value as a number or "unlimited". */
static const char *format_rlimit(rlim_t value, char *out, size_t size)
{
    if (value == RLIM_INFINITY)
        snprintf(out, size, "unlimited");
    else
        snprintf(out, size, "%llu", (unsigned long long)value);
    return out;
}

/* Raises the soft limit on open files (RLIMIT_NOFILE) to the hard limit.
 * Each worker costs descriptors (its TCP connection, plus ZeroMQ's own),
 * and SQLite keeps the database, its WAL and its shared-memory file open,
 * so the soft limit, often far below the hard one, runs out first. A
 * failure only warns, because hpod still serves fewer workers. */
static void raise_open_file_limit(void)
{
    struct rlimit limit;
    char soft[32], hard[32];

    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        hpo_log_warn("reading the open-file limit (RLIMIT_NOFILE) failed: %s; "
                     "hpod keeps the limit it was started with", strerror(errno));
        return;
    }
    format_rlimit(limit.rlim_cur, soft, sizeof soft);
    format_rlimit(limit.rlim_max, hard, sizeof hard);
    if (limit.rlim_cur == limit.rlim_max) {
        hpo_log_info("open-file limit (RLIMIT_NOFILE): soft %s is already the "
                     "hard limit %s", soft, hard);
        return;
    }

    struct rlimit raised = {limit.rlim_max, limit.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
        hpo_log_warn("raising the open-file limit (RLIMIT_NOFILE) from soft %s "
                     "to the hard limit %s failed: %s; hpod may run out of file "
                     "descriptors with many workers, so raise the soft limit "
                     "before starting it (ulimit -n)", soft, hard, strerror(errno));
        return;
    }
    hpo_log_info("raised the open-file limit (RLIMIT_NOFILE) from soft %s to "
                 "the hard limit %s", soft, hard);
}

static void on_stop_signal(int signum)
{
    (void)signum;
    hpo_server_request_stop();
}

static void install_signal_handlers(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Removes a database that this start created and the files SQLite and
 * the lock put beside it. The lock file goes last, while still held. */
static void remove_new_database(const char *db_path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal", "-lock"};
    char path[4096];
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        if ((size_t)snprintf(path, sizeof path, "%s%s", db_path, suffixes[i]) >= sizeof path)
            return;
        if (unlink(path) != 0 && errno != ENOENT)
            hpo_log_warn("removing %s after the failed start failed: %s", path,
                         strerror(errno));
    }
    hpo_log_info("removed the new database %s, because the start failed before it "
                 "contained a study", db_path);
}

int main(int argc, char **argv)
{
    char err[HPO_ERR_MAX];
    hpod_options o;
    bool help = false;

    gsl_set_error_handler_off();
    if (parse_options(argc, argv, &o, &help, err, sizeof err) != 0) {
        fprintf(stderr, "hpod: %s\n", err);
        return 2;
    }
    if (help) {
        print_usage(stdout);
        return 0;
    }
    if (check_exposure(&o, err, sizeof err) != 0) {
        fprintf(stderr, "hpod: %s\n", err);
        return 2;
    }
    hpo_log_init("hpod", o.log_level);
    raise_open_file_limit();

    hpo_storage *storage = NULL;
    hpo_study *study = NULL;
    hpo_tuner *tuner = NULL;
    hpo_scheduler *scheduler = NULL;
    int status = 1;
    hpo_curve_keypair server_key = {{0}, {0}};
    hpo_authorized_keys *authorized_keys = NULL;
    int db_lock = -1;
    /* A start that fails before the study is in a new database removes
     * the files it created, so that a fixed study file starts afresh. */
    bool db_is_new = access(o.study.db_path, F_OK) != 0;

    if (load_security(&o, &server_key, &authorized_keys, err, sizeof err) != 0)
        goto fail;
    if (hpo_db_lock_acquire(o.study.db_path, &db_lock, err, sizeof err) != 0)
        goto fail;
    if (hpo_storage_open(o.study.db_path, true, &storage, err, sizeof err) != 0 ||
        hpo_study_open(&o.study, storage, &study, &tuner, err, sizeof err) != 0)
        goto fail;
    db_is_new = false; /* it contains the study now */

    /* A worker that kept training while hpod was down reclaims its trial
     * when it notices the new hpod, at its next heartbeat or a second after
     * the restart notice. Trials are held for it as long as a silent worker
     * would count as alive. */
    int worker_timeout_ms = o.worker_timeout_s > 0 ? o.worker_timeout_s * 1000
                                                   : o.lost_after * o.heartbeat_ms;
    hpo_scheduler_options sched_options = {
        .max_trials = o.study.max_trials,
        .max_consecutive_failures = o.study.max_failures,
        .max_consecutive_unbuildable = 1000,
        .max_attempts = o.study.max_attempts,
        .reclaim_ms = worker_timeout_ms,
        .seed = o.study.seed,
    };
    if (hpo_scheduler_create(study, tuner, storage, &sched_options, &scheduler,
                             err, sizeof err) != 0)
        goto fail;

    install_signal_handlers();
    hpo_log_info("hpod starting: study %s, tuner %s, max trials %d, seed %" PRIu64
                 ", database %s, heartbeat %d ms, workers lost after %d ms, "
                 "%d attempts per trial, max %d failures in a row",
                 hpo_study_name(study), hpo_tuner_name(tuner), o.study.max_trials,
                 o.study.seed, o.study.db_path, o.heartbeat_ms, worker_timeout_ms,
                 o.study.max_attempts, o.study.max_failures);
    hpo_server_options server_options = {
        .workers_endpoint = o.workers_endpoint,
        .control_endpoint = o.control_endpoint,
        .heartbeat_ms = o.heartbeat_ms,
        .worker_timeout_ms = worker_timeout_ms,
        .linger = o.linger,
        .ready_file = o.ready_file,
        .curve = o.curve_secret_path != NULL ? &server_key : NULL,
        .authorized_keys = authorized_keys,
    };
    hpo_server_parts parts = {study, tuner, storage, scheduler};
    if (hpo_server_run(&server_options, &parts, err, sizeof err) != 0)
        goto fail;

    hpo_study_state state = hpo_scheduler_state(scheduler);
    status = state == HPO_STUDY_FAILED ? 1 : 0;
    hpo_log_info("hpod stopped: study %s is %s", hpo_study_name(study),
                 hpo_study_state_name(state));
    goto cleanup;

fail:
    hpo_log_error("%s", err);

cleanup:
    hpo_scheduler_destroy(&scheduler);
    hpo_tuner_destroy(&tuner);
    hpo_study_destroy(&study);
    hpo_storage_close(&storage);
    if (db_is_new && db_lock >= 0)
        remove_new_database(o.study.db_path);
    hpo_db_lock_release(&db_lock);
    hpo_authorized_keys_destroy(&authorized_keys);
    hpo_curve_keypair_clear(&server_key);
    return status;
}
