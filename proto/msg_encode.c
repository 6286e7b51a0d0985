/* Serialization of hpo_msg into protocol frames. */
#include "hpo/protocol.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpo/error.h"

/* Formats a finite double with the fewest digits that read back to the
 * same value. cJSON's own printer accepts a 15-digit form that is only
 * within DBL_EPSILON of the value (cJSON 1.7.15, print_number), which would
 * change trial ids above 10^15 and the last bit of metrics. */
static void format_number(double value, char *buf, size_t size)
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, value);
        if (strtod(buf, NULL) == value)
            return;
    }
}

/* Adds a number, writing a non-finite value as JSON null. The decoder then
 * rejects the null wherever a finite number is required. */
static bool add_number(cJSON *obj, const char *name, double value)
{
    if (!isfinite(value))
        return cJSON_AddNullToObject(obj, name) != NULL;
    char text[32];
    format_number(value, text, sizeof text);
    return cJSON_AddRawToObject(obj, name, text) != NULL;
}

/* Adds a string from a fixed-size struct member. A member without a NUL is
 * cut at its size, and the decoder check in hpo_msg_encode() rejects it as
 * too long. */
static bool add_string(cJSON *obj, const char *name, const char *value, size_t size)
{
    size_t len = strnlen(value, size);
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return false;
    memcpy(copy, value, len);
    copy[len] = '\0';
    bool ok = cJSON_AddStringToObject(obj, name, copy) != NULL;
    free(copy);
    return ok;
}

#define ADD_STRING(obj, name, member) add_string((obj), (name), (member), sizeof(member))

/* Adds the optional token field; an empty token is left out. */
static bool add_token(cJSON *obj, const char *token, size_t size)
{
    if (token[0] == '\0')
        return true;
    return add_string(obj, "token", token, size);
}

#define ADD_TOKEN(obj, member) add_token((obj), (member), sizeof(member))

/* Copies a caller-owned tree for printing. Numbers become raw text in the
 * exact format of format_number(), because cJSON's printer would round them
 * to 15 digits: 0.30000000000000004 would arrive as 0.3, and the largest
 * double as 1.79769313486232e+308, which reads back as infinity. A
 * non-finite number becomes null, as cJSON prints it. NULL when out of
 * memory. */
static cJSON *copy_tree(const cJSON *item)
{
    if (cJSON_IsNumber(item)) {
        if (!isfinite(item->valuedouble))
            return cJSON_CreateNull();
        char text[32];
        format_number(item->valuedouble, text, sizeof text);
        return cJSON_CreateRaw(text);
    }
    if (!cJSON_IsArray(item) && !cJSON_IsObject(item))
        return cJSON_Duplicate(item, false);

    cJSON *copy = cJSON_IsArray(item) ? cJSON_CreateArray() : cJSON_CreateObject();
    const cJSON *child;
    cJSON_ArrayForEach(child, item) {
        cJSON *element = copy != NULL ? copy_tree(child) : NULL;
        bool added = element != NULL &&
                     (cJSON_IsArray(item) ? cJSON_AddItemToArray(copy, element)
                                          : cJSON_AddItemToObject(copy, child->string,
                                                                  element));
        if (!added) {
            cJSON_Delete(element);
            cJSON_Delete(copy);
            return NULL;
        }
    }
    return copy;
}

/* Adds a copy of a caller-owned tree (copy_tree()), or null when there is
 * none. */
static bool add_tree(cJSON *obj, const char *name, const cJSON *tree)
{
    if (tree == NULL)
        return cJSON_AddNullToObject(obj, name) != NULL;
    cJSON *copy = copy_tree(tree);
    if (copy == NULL || !cJSON_AddItemToObject(obj, name, copy)) {
        cJSON_Delete(copy);
        return false;
    }
    return true;
}

static bool add_register(cJSON *obj, const hpo_msg_register *m)
{
    bool ok = ADD_STRING(obj, "host", m->host) &&
              add_number(obj, "pid", (double)m->pid) &&
              add_number(obj, "threads", m->threads) &&
              add_number(obj, "protocol", m->protocol) &&
              ADD_STRING(obj, "name", m->name);
    if (ok && m->running_trial >= 0)
        ok = add_number(obj, "running_trial", (double)m->running_trial);
    if (ok && m->kind != HPO_WORKER_KIND_UNKNOWN) {
        const char *kind = hpo_worker_kind_name(m->kind);
        ok = cJSON_AddStringToObject(obj, "kind", kind != NULL ? kind : "") != NULL;
    }
    if (ok)
        ok = ADD_TOKEN(obj, m->token);
    if (!ok)
        return false;

    cJSON *pending = cJSON_AddArrayToObject(obj, "pending_results");
    if (pending == NULL)
        return false;
    for (int i = 0; i < m->n_pending; i++) {
        char text[32];
        format_number((double)m->pending_results[i], text, sizeof text);
        cJSON *id = cJSON_CreateRaw(text);
        if (id == NULL || !cJSON_AddItemToArray(pending, id)) {
            cJSON_Delete(id);
            return false;
        }
    }
    return true;
}

static bool add_trial(cJSON *obj, const hpo_msg_trial *m)
{
    if (!add_number(obj, "trial_id", (double)m->trial_id) ||
        !add_tree(obj, "params", m->params) ||
        !add_tree(obj, "model", m->model))
        return false;

    cJSON *budget = cJSON_AddObjectToObject(obj, "budget");
    return budget != NULL &&
           add_number(budget, "epochs", m->budget.epochs) &&
           add_number(budget, "train_size", m->budget.train_size) &&
           add_number(budget, "val_size", m->budget.val_size) &&
           add_number(budget, "batch_size", m->budget.batch_size) &&
           add_number(obj, "seed", (double)m->seed);
}

static bool add_progress(cJSON *obj, const hpo_msg_progress *m)
{
    return ADD_STRING(obj, "worker_id", m->worker_id) &&
           ADD_TOKEN(obj, m->token) &&
           add_number(obj, "trial_id", (double)m->trial_id) &&
           add_number(obj, "epoch", m->epoch) &&
           add_number(obj, "epochs", m->epochs) &&
           add_number(obj, "loss", m->loss) &&
           add_number(obj, "accuracy", m->accuracy) &&
           add_number(obj, "val_loss", m->val_loss) &&
           add_number(obj, "val_accuracy", m->val_accuracy) &&
           add_number(obj, "seconds", m->seconds) &&
           add_number(obj, "images_per_second", m->images_per_second);
}

static bool add_result(cJSON *obj, const hpo_msg_result *m)
{
    const char *status = hpo_trial_status_name(m->status);
    return ADD_STRING(obj, "worker_id", m->worker_id) &&
           ADD_TOKEN(obj, m->token) &&
           add_number(obj, "trial_id", (double)m->trial_id) &&
           cJSON_AddStringToObject(obj, "status", status ? status : "") != NULL &&
           add_tree(obj, "metrics", m->metrics) &&
           add_number(obj, "epochs_run", m->epochs_run) &&
           add_number(obj, "wall_seconds", m->wall_seconds) &&
           ADD_STRING(obj, "error", m->error);
}

static bool add_command(cJSON *obj, hpo_query_command command)
{
    const char *name = hpo_query_command_name(command);
    return cJSON_AddStringToObject(obj, "command", name ? name : "") != NULL;
}

/* Adds the members that depend on msg->type. */
static bool add_body(cJSON *obj, const hpo_msg *msg)
{
    switch (msg->type) {
    case HPO_MSG_REGISTER:
        return add_register(obj, &msg->reg);
    case HPO_MSG_REGISTERED:
        return ADD_STRING(obj, "worker_id", msg->registered.worker_id) &&
               add_number(obj, "heartbeat_ms", msg->registered.heartbeat_ms) &&
               ADD_TOKEN(obj, msg->registered.token);
    case HPO_MSG_READY:
        return ADD_STRING(obj, "worker_id", msg->ready.worker_id) &&
               ADD_TOKEN(obj, msg->ready.token);
    case HPO_MSG_TRIAL:
        return add_trial(obj, &msg->trial);
    case HPO_MSG_NO_WORK:
        return add_number(obj, "retry_ms", msg->no_work.retry_ms);
    case HPO_MSG_STUDY_DONE:
        return true;
    case HPO_MSG_PROGRESS:
        return add_progress(obj, &msg->progress);
    case HPO_MSG_HEARTBEAT:
        if (!ADD_STRING(obj, "worker_id", msg->heartbeat.worker_id) ||
            !ADD_TOKEN(obj, msg->heartbeat.token))
            return false;
        if (msg->heartbeat.trial_id < 0)
            return cJSON_AddNullToObject(obj, "trial_id") != NULL;
        return add_number(obj, "trial_id", (double)msg->heartbeat.trial_id);
    case HPO_MSG_RESULT:
        return add_result(obj, &msg->result);
    case HPO_MSG_RESULT_ACK:
        return add_number(obj, "trial_id", (double)msg->result_ack.trial_id);
    case HPO_MSG_STOP_TRIAL:
        return add_number(obj, "trial_id", (double)msg->stop_trial.trial_id) &&
               ADD_STRING(obj, "reason", msg->stop_trial.reason);
    case HPO_MSG_SHUTDOWN:
        return ADD_STRING(obj, "reason", msg->shutdown.reason);
    case HPO_MSG_ERROR: {
        const char *code = hpo_proto_status_name(msg->error.code);
        return cJSON_AddStringToObject(obj, "code", code ? code : "") != NULL &&
               ADD_STRING(obj, "message", msg->error.message);
    }
    case HPO_MSG_QUERY:
        if (!add_command(obj, msg->query.command))
            return false;
        if (msg->query.args == NULL)
            return true;
        return add_tree(obj, "args", msg->query.args);
    case HPO_MSG_REPLY:
        return add_command(obj, msg->reply.command) &&
               add_tree(obj, "data", msg->reply.data);
    case HPO_MSG_LEAVE:
        return ADD_STRING(obj, "worker_id", msg->leave.worker_id) &&
               ADD_TOKEN(obj, msg->leave.token) &&
               ADD_STRING(obj, "reason", msg->leave.reason);
    }
    return false;
}

int hpo_msg_encode(const hpo_msg *msg, char **out, size_t *size,
                   char *err, size_t errlen)
{
    *out = NULL;
    *size = 0;

    const char *type = hpo_msg_type_name(msg->type);
    if (type == NULL)
        return hpo_error(err, errlen, "type: %d is not a message type", (int)msg->type);
    if (msg->type == HPO_MSG_REGISTER &&
        (msg->reg.n_pending < 0 || msg->reg.n_pending > HPO_PENDING_MAX))
        return hpo_error(err, errlen, "register.pending_results: %d entries; expected 0 to %d",
                         msg->reg.n_pending, HPO_PENDING_MAX);

    cJSON *obj = cJSON_CreateObject();
    bool ok = obj != NULL &&
              add_number(obj, "v", HPO_PROTO_VERSION) &&
              cJSON_AddStringToObject(obj, "type", type) != NULL &&
              add_body(obj, msg);
    char *text = ok ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (text == NULL)
        return hpo_error(err, errlen, "%s: out of memory while encoding", type);

    /* Run the decoder over the text, so that the sender rejects exactly
     * what every receiver would reject, with the same message. */
    size_t len = strlen(text);
    hpo_msg check;
    if (hpo_msg_decode(text, len, &check, err, errlen) != HPO_PROTO_OK) {
        free(text);
        return -1;
    }
    hpo_msg_clear(&check);

    *out = text;
    *size = len;
    return 0;
}
