/* Message lifetime and the wire names of the protocol's enums. */
#include "hpo/protocol.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const type_names[HPO_MSG_TYPE_COUNT] = {
    [HPO_MSG_REGISTER] = "register",
    [HPO_MSG_REGISTERED] = "registered",
    [HPO_MSG_READY] = "ready",
    [HPO_MSG_TRIAL] = "trial",
    [HPO_MSG_NO_WORK] = "no_work",
    [HPO_MSG_STUDY_DONE] = "study_done",
    [HPO_MSG_PROGRESS] = "progress",
    [HPO_MSG_HEARTBEAT] = "heartbeat",
    [HPO_MSG_RESULT] = "result",
    [HPO_MSG_RESULT_ACK] = "result_ack",
    [HPO_MSG_STOP_TRIAL] = "stop_trial",
    [HPO_MSG_SHUTDOWN] = "shutdown",
    [HPO_MSG_ERROR] = "error",
    [HPO_MSG_QUERY] = "query",
    [HPO_MSG_REPLY] = "reply",
    [HPO_MSG_LEAVE] = "leave",
};

static const char *const status_names[HPO_PROTO_STATUS_COUNT] = {
    [HPO_PROTO_OK] = "ok",
    [HPO_PROTO_TOO_LARGE] = "too_large",
    [HPO_PROTO_INVALID_JSON] = "invalid_json",
    [HPO_PROTO_BAD_VERSION] = "bad_version",
    [HPO_PROTO_UNKNOWN_TYPE] = "unknown_type",
    [HPO_PROTO_MISSING_FIELD] = "missing_field",
    [HPO_PROTO_WRONG_TYPE] = "wrong_type",
    [HPO_PROTO_INVALID_VALUE] = "invalid_value",
    [HPO_PROTO_INVALID_ENVELOPE] = "invalid_envelope",
    [HPO_PROTO_UNEXPECTED] = "unexpected_message",
    [HPO_PROTO_UNKNOWN_WORKER] = "unknown_worker",
    [HPO_PROTO_UNKNOWN_TRIAL] = "unknown_trial",
    [HPO_PROTO_UNKNOWN_COMMAND] = "unknown_command",
    [HPO_PROTO_INVALID_ARGUMENT] = "invalid_argument",
    [HPO_PROTO_PERMISSION_DENIED] = "permission_denied",
    [HPO_PROTO_WORKER_ID_TAKEN] = "worker_id_taken",
    [HPO_PROTO_WRONG_WORKER_KIND] = "wrong_worker_kind",
    [HPO_PROTO_TOO_MANY_REGISTRATIONS] = "too_many_registrations",
    [HPO_PROTO_INTERNAL] = "internal",
};

static const char *const trial_status_names[] = {
    [HPO_TRIAL_OK] = "ok",
    [HPO_TRIAL_FAILED] = "failed",
    [HPO_TRIAL_INTERRUPTED] = "interrupted",
};

static const char *const command_names[HPO_QUERY_COMMAND_COUNT] = {
    [HPO_QUERY_BEST] = "best",
    [HPO_QUERY_TRIALS] = "trials",
    [HPO_QUERY_SUMMARY] = "summary",
    [HPO_QUERY_SPACE] = "space",
    [HPO_QUERY_STATUS] = "status",
    [HPO_QUERY_STOP] = "stop",
};

/* Index 0, HPO_WORKER_KIND_UNKNOWN, has no wire name: the field is absent
 * then. */
static const char *const worker_kind_names[HPO_WORKER_KIND_COUNT] = {
    [HPO_WORKER_KIND_CIFAR10] = "cifar10",
    [HPO_WORKER_KIND_OBJECTIVE] = "objective",
};

#define N_ELEMENTS(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const char *name_lookup(const char *const *names, int count, int value)
{
    if (value < 0 || value >= count)
        return NULL;
    return names[value];
}

static int name_parse(const char *const *names, int count, const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < count; i++) {
        if (names[i] != NULL && strcmp(names[i], name) == 0)
            return i;
    }
    return -1;
}

const char *hpo_msg_type_name(hpo_msg_type type)
{
    return name_lookup(type_names, N_ELEMENTS(type_names), (int)type);
}

int hpo_msg_type_parse(const char *name, hpo_msg_type *out)
{
    int i = name_parse(type_names, N_ELEMENTS(type_names), name);
    if (i < 0)
        return -1;
    *out = (hpo_msg_type)i;
    return 0;
}

const char *hpo_proto_status_name(hpo_proto_status status)
{
    return name_lookup(status_names, N_ELEMENTS(status_names), (int)status);
}

int hpo_proto_status_parse(const char *name, hpo_proto_status *out)
{
    int i = name_parse(status_names, N_ELEMENTS(status_names), name);
    if (i < 0)
        return -1;
    *out = (hpo_proto_status)i;
    return 0;
}

const char *hpo_trial_status_name(hpo_trial_status status)
{
    return name_lookup(trial_status_names, N_ELEMENTS(trial_status_names), (int)status);
}

int hpo_trial_status_parse(const char *name, hpo_trial_status *out)
{
    int i = name_parse(trial_status_names, N_ELEMENTS(trial_status_names), name);
    if (i < 0)
        return -1;
    *out = (hpo_trial_status)i;
    return 0;
}

const char *hpo_query_command_name(hpo_query_command command)
{
    return name_lookup(command_names, N_ELEMENTS(command_names), (int)command);
}

int hpo_query_command_parse(const char *name, hpo_query_command *out)
{
    int i = name_parse(command_names, N_ELEMENTS(command_names), name);
    if (i < 0)
        return -1;
    *out = (hpo_query_command)i;
    return 0;
}

const char *hpo_worker_kind_name(hpo_worker_kind kind)
{
    return name_lookup(worker_kind_names, N_ELEMENTS(worker_kind_names), (int)kind);
}

int hpo_worker_kind_parse(const char *name, hpo_worker_kind *out)
{
    int i = name_parse(worker_kind_names, N_ELEMENTS(worker_kind_names), name);
    if (i < 0)
        return -1;
    *out = (hpo_worker_kind)i;
    return 0;
}

void hpo_msg_init(hpo_msg *msg, hpo_msg_type type)
{
    memset(msg, 0, sizeof *msg);
    msg->type = type;
    if (type == HPO_MSG_REGISTER)
        msg->reg.running_trial = -1;
    else if (type == HPO_MSG_HEARTBEAT)
        msg->heartbeat.trial_id = -1;
}

void hpo_msg_clear(hpo_msg *msg)
{
    switch (msg->type) {
    case HPO_MSG_TRIAL:
        cJSON_Delete(msg->trial.params);
        cJSON_Delete(msg->trial.model);
        break;
    case HPO_MSG_RESULT:
        cJSON_Delete(msg->result.metrics);
        break;
    case HPO_MSG_QUERY:
        cJSON_Delete(msg->query.args);
        break;
    case HPO_MSG_REPLY:
        cJSON_Delete(msg->reply.data);
        break;
    default:
        break;
    }
    memset(msg, 0, sizeof *msg);
}

void hpo_msg_error_init(hpo_msg *msg, hpo_proto_status code, const char *fmt, ...)
{
    hpo_msg_init(msg, HPO_MSG_ERROR);
    msg->error.code = code;

    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg->error.message, sizeof msg->error.message, fmt, ap);
    va_end(ap);
}
