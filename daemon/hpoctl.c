/* hpoctl: queries a running hpod over its control endpoint, or reads a
 * study's database directly with --db. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <zmq.h>

#include "control.h"
#include "hpo/error.h"
#include "hpo/log.h"
#include "hpo/protocol.h"
#include "hpo/study.h"
#include "hpo/transport.h"
#include "hpoctl_format.h"
#include "hpoctl_keygen.h"
#include "storage.h"

#define DEFAULT_CONNECT "tcp://127.0.0.1:5556"
#define DEFAULT_TIMEOUT_MS 3000

typedef enum { FORMAT_TEXT, FORMAT_JSON, FORMAT_CSV } output_format;

typedef struct {
    const char *connect;
    const char *db_path;
    int timeout_ms;
    output_format format;
    int top;                   /* summary; 0 means the default */
    const char *curve_secret_path; /* client key pair; NULL: no CURVE */
    const char *server_key_path;   /* hpod's public key, with CURVE */
    hpo_query_command command;
} hpoctl_options;

static void print_usage(FILE *out)
{
    fprintf(out,
        "Usage: hpoctl [options] COMMAND\n"
        "Queries a running hpod, or reads a study's database with --db.\n"
        "\n"
        "Commands:\n"
        "  best       the best trial: id, objective, hyperparameters, metrics\n"
        "  trials     every trial as a table (or --json, --csv)\n"
        "  summary    the best trials, best first (--top N, default %d)\n"
        "  space      the search space\n"
        "  status     study state, trial counts and connected workers\n"
        "  stop       stop the study (hpod re-queues running trials and exits);\n"
        "             with CURVE, needs a key with the admin role\n"
        "  keygen     write a CURVE key pair: hpoctl keygen --out PREFIX\n"
        "\n"
        "Options:\n"
        "  --connect ENDPOINT  hpod's control endpoint (default %s)\n"
        "  --db PATH           read the study database instead of asking hpod;\n"
        "                      works while hpod runs and after it exited\n"
        "  --timeout MS        wait at most MS milliseconds for hpod (default %d)\n"
        "  --json              print the answer as JSON\n"
        "  --csv               print trials as CSV (trials only)\n"
        "  --top N             number of trials that summary shows\n"
        "  --curve-secret FILE this client's CURVE key pair (hpoctl keygen), for\n"
        "                      an hpod that runs with CURVE\n"
        "  --server-key FILE   hpod's public key file, with --curve-secret\n"
        "  --help              show this help\n",
        HPO_CONTROL_SUMMARY_TOP, DEFAULT_CONNECT, DEFAULT_TIMEOUT_MS);
}

static int parse_positive(const char *name, const char *text, int max, int *out,
                          char *err, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < 1 || value > max)
        return hpo_error(err, errlen, "%s: invalid value \"%s\"; expected an "
                         "integer from 1 to %d", name, text, max);
    *out = (int)value;
    return 0;
}

static int parse_options(int argc, char **argv, hpoctl_options *o, bool *help,
                         char *err, size_t errlen)
{
    static const struct option longopts[] = {
        {"connect", required_argument, NULL, 'c'},
        {"db", required_argument, NULL, 'd'},
        {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"csv", no_argument, NULL, 'v'},
        {"top", required_argument, NULL, 'n'},
        {"curve-secret", required_argument, NULL, 'k'},
        {"server-key", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (hpoctl_options){.connect = DEFAULT_CONNECT, .timeout_ms = DEFAULT_TIMEOUT_MS};
    *help = false;

    /* Options may come before or after the command, as getopt permutes. */
    bool connect_given = false;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->connect = optarg; connect_given = true; break;
        case 'd': o->db_path = optarg; break;
        case 'j': o->format = FORMAT_JSON; break;
        case 'v': o->format = FORMAT_CSV; break;
        case 'k': o->curve_secret_path = optarg; break;
        case 's': o->server_key_path = optarg; break;
        case 'h': *help = true; return 0;
        case 't':
            if (parse_positive("--timeout", optarg, 3600000, &o->timeout_ms, err, errlen) != 0)
                return -1;
            break;
        case 'n':
            if (parse_positive("--top", optarg, 1000000, &o->top, err, errlen) != 0)
                return -1;
            break;
        default:
            return hpo_error(err, errlen, "unknown or incomplete option \"%s\"; "
                             "see hpoctl --help", argv[optind - 1]);
        }
    }

    if (optind >= argc)
        return hpo_error(err, errlen, "missing command; give best, trials, "
                         "summary, space, status or stop");
    if (optind + 1 < argc)
        return hpo_error(err, errlen, "unexpected argument \"%s\" after the "
                         "command", argv[optind + 1]);
    if (hpo_query_command_parse(argv[optind], &o->command) != 0)
        return hpo_error(err, errlen, "unknown command \"%s\"; give best, trials, "
                         "summary, space, status or stop", argv[optind]);
    if (o->db_path != NULL && connect_given)
        return hpo_error(err, errlen, "--connect and --db exclude each other; "
                         "give one");
    if (o->db_path != NULL && o->command == HPO_QUERY_STOP)
        return hpo_error(err, errlen, "stop needs a running hpod; --db only "
                         "reads the database");
    if ((o->curve_secret_path == NULL) != (o->server_key_path == NULL))
        return hpo_error(err, errlen, "%s is missing; CURVE needs both "
                         "--curve-secret FILE and --server-key FILE",
                         o->curve_secret_path == NULL ? "--curve-secret" : "--server-key");
    if (o->db_path != NULL && o->curve_secret_path != NULL)
        return hpo_error(err, errlen, "--curve-secret applies to --connect only; "
                         "--db reads the file without hpod");
    if (o->format == FORMAT_CSV && o->command != HPO_QUERY_TRIALS)
        return hpo_error(err, errlen, "--csv applies to trials only");
    if (o->top > 0 && o->command != HPO_QUERY_SUMMARY)
        return hpo_error(err, errlen, "--top applies to summary only");
    return 0;
}

static cJSON *build_args(const hpoctl_options *o)
{
    cJSON *args = cJSON_CreateObject();
    if (o->top > 0)
        cJSON_AddNumberToObject(args, "top", o->top);
    return args;
}

/* Asks hpod. Returns 0 with the reply data (caller owns), or -1. */
static int ask_hpod(const hpoctl_options *o, cJSON **data_out, char *err, size_t errlen)
{
    *data_out = NULL;
    void *ctx = zmq_ctx_new();
    if (ctx == NULL)
        return hpo_error(err, errlen, "creating the ZeroMQ context failed: %s",
                         zmq_strerror(errno));

    hpo_curve_settings curve = {.server = false};
    if (o->curve_secret_path != NULL &&
        (hpo_curve_keypair_load(o->curve_secret_path, &curve.own, err, errlen) != 0 ||
         hpo_curve_public_key_load(o->server_key_path, curve.server_key,
                                   err, errlen) != 0)) {
        hpo_curve_keypair_clear(&curve.own);
        zmq_ctx_term(ctx);
        return -1;
    }

    hpo_msg request, reply;
    hpo_msg_init(&request, HPO_MSG_QUERY);
    request.query.command = o->command;
    request.query.args = build_args(o);

    int result = -1;
    hpo_recv_result rc = hpo_transport_request_curve(
        ctx, o->connect, o->curve_secret_path != NULL ? &curve : NULL, &request,
        o->timeout_ms, &reply, err, errlen);
    hpo_curve_keypair_clear(&curve.own);
    if (rc == HPO_RECV_AGAIN) {
        hpo_error(err, errlen, "no answer from %s within %d ms; is hpod running?",
                  o->connect, o->timeout_ms);
    } else if (rc != HPO_RECV_OK) {
        /* err contains the transport's message. */
    } else if (reply.type == HPO_MSG_ERROR) {
        hpo_error(err, errlen, "hpod returned error %s: %s",
                  hpo_proto_status_name(reply.error.code), reply.error.message);
    } else if (reply.type != HPO_MSG_REPLY || reply.reply.command != o->command) {
        hpo_error(err, errlen, "hpod sent an unexpected %s message",
                  hpo_msg_type_name(reply.type));
    } else {
        *data_out = reply.reply.data;
        reply.reply.data = NULL;
        result = 0;
    }
    if (rc == HPO_RECV_OK)
        hpo_msg_clear(&reply);
    hpo_msg_clear(&request);
    zmq_ctx_term(ctx);
    return result;
}

/* Builds the answer from the database file, as hpod would. */
static int read_database(const hpoctl_options *o, cJSON **data_out,
                         char *err, size_t errlen)
{
    *data_out = NULL;
    hpo_storage *storage = NULL;
    hpo_study *study = NULL;
    hpo_study_info info;
    bool found = false;
    int result = -1;

    memset(&info, 0, sizeof info);
    if (hpo_storage_open(o->db_path, false, &storage, err, errlen) != 0 ||
        hpo_storage_study_get(storage, &info, &found, err, errlen) != 0)
        goto done;
    if (!found) {
        hpo_error(err, errlen, "%s holds no study", o->db_path);
        goto done;
    }
    char parse_err[HPO_ERR_MAX];
    if (hpo_study_parse(info.spec, &study, parse_err, sizeof parse_err) != 0) {
        hpo_error(err, errlen, "the study stored in %s is invalid: %s",
                  o->db_path, parse_err);
        goto done;
    }

    hpo_control_context ctx = {.study = study, .storage = storage, .source = "database"};
    cJSON *args = build_args(o);
    hpo_proto_status code;
    result = hpo_control_answer(&ctx, o->command, args, data_out, &code, err, errlen);
    cJSON_Delete(args);

done:
    hpo_study_info_clear(&info);
    hpo_study_destroy(&study);
    hpo_storage_close(&storage);
    return result;
}

static void print_answer(const hpoctl_options *o, const cJSON *data)
{
    if (o->format == FORMAT_JSON) {
        char *text = cJSON_Print(data);
        if (text != NULL)
            printf("%s\n", text);
        cJSON_free(text);
        return;
    }
    switch (o->command) {
    case HPO_QUERY_BEST: hpoctl_print_best(stdout, data); break;
    case HPO_QUERY_TRIALS:
        if (o->format == FORMAT_CSV)
            hpoctl_print_trials_csv(stdout, data);
        else
            hpoctl_print_trials_table(stdout, data);
        break;
    case HPO_QUERY_SUMMARY: hpoctl_print_summary(stdout, data); break;
    case HPO_QUERY_SPACE: hpoctl_print_space(stdout, data); break;
    case HPO_QUERY_STATUS: hpoctl_print_status(stdout, data); break;
    case HPO_QUERY_STOP: {
        const cJSON *state = cJSON_GetObjectItemCaseSensitive(data, "state");
        printf("hpod is stopping; study state: %s\n",
               cJSON_IsString(state) ? state->valuestring : "unknown");
        break;
    }
    }
}

int main(int argc, char **argv)
{
    char err[HPO_ERR_MAX];
    hpoctl_options o;
    bool help = false;

    gsl_set_error_handler_off();
    hpo_log_init("hpoctl", HPO_LOG_WARN);
    if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
        return hpoctl_keygen_main(argc - 1, argv + 1);
    if (parse_options(argc, argv, &o, &help, err, sizeof err) != 0) {
        fprintf(stderr, "hpoctl: %s\n", err);
        return 2;
    }
    if (help) {
        print_usage(stdout);
        return 0;
    }

    cJSON *data = NULL;
    int rc = o.db_path != NULL ? read_database(&o, &data, err, sizeof err)
                               : ask_hpod(&o, &data, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "hpoctl: %s\n", err);
        return 1;
    }
    print_answer(&o, data);
    cJSON_Delete(data);
    return fflush(stdout) == 0 ? 0 : 1;
}
