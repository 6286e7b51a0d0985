/* Strict decoding of protocol frames into hpo_msg. */
#include "hpo/protocol.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpo/error.h"
#include "msg_fields.h"

/* Largest training or validation subset: the 50,000 CIFAR-10 training
 * records. */
#define DATA_RECORDS_MAX 50000

/* Reads an integer field into an int. */
static hpo_proto_status read_int(const hpo_field_ctx *ctx, const cJSON *obj,
                                 const char *name, int64_t min, int64_t max, int *out)
{
    int64_t value = 0;
    hpo_proto_status st = hpo_field_int(ctx, obj, name, true, min, max, &value);
    if (st == HPO_PROTO_OK)
        *out = (int)value;
    return st;
}

/* Reads a trial id, which every trial-related message carries. */
static hpo_proto_status read_trial_id(const hpo_field_ctx *ctx, const cJSON *obj,
                                      int64_t *out)
{
    return hpo_field_int(ctx, obj, "trial_id", true, 0, HPO_PROTO_INT_MAX, out);
}

/* Reads a string naming a value of one of the protocol's enums. */
static hpo_proto_status read_enum(const hpo_field_ctx *ctx, const cJSON *obj,
                                  const char *name, int (*parse)(const char *, int *),
                                  const char *expected, int *out)
{
    char text[HPO_NAME_MAX + 1];
    hpo_proto_status st = hpo_field_string(ctx, obj, name, true, text, HPO_NAME_MAX);
    if (st == HPO_PROTO_INVALID_VALUE)
        return hpo_field_fail(ctx, st, name, "unknown value; expected %s", expected);
    if (st != HPO_PROTO_OK)
        return st;
    if (parse(text, out) != 0)
        return hpo_field_fail(ctx, HPO_PROTO_INVALID_VALUE, name,
                              "unknown value \"%s\"; expected %s", text, expected);
    return HPO_PROTO_OK;
}

static int parse_trial_status(const char *name, int *out)
{
    hpo_trial_status value;
    if (hpo_trial_status_parse(name, &value) != 0)
        return -1;
    *out = (int)value;
    return 0;
}

static int parse_worker_kind(const char *name, int *out)
{
    hpo_worker_kind value;
    if (hpo_worker_kind_parse(name, &value) != 0)
        return -1;
    *out = (int)value;
    return 0;
}

/* Reads the optional session token that worker messages carry. */
static hpo_proto_status read_token(const hpo_field_ctx *ctx, const cJSON *obj, char *out)
{
    return hpo_field_string(ctx, obj, "token", false, out, HPO_TOKEN_MAX);
}

static int parse_command(const char *name, int *out)
{
    hpo_query_command value;
    if (hpo_query_command_parse(name, &value) != 0)
        return -1;
    *out = (int)value;
    return 0;
}

/* An error message never carries the code "ok". */
static int parse_error_code(const char *name, int *out)
{
    hpo_proto_status value;
    if (hpo_proto_status_parse(name, &value) != 0 || value == HPO_PROTO_OK)
        return -1;
    *out = (int)value;
    return 0;
}

/* Moves a member that was already checked out of the parsed document, so
 * that the message owns it after the document is deleted. */
static cJSON *take(cJSON *parent, cJSON *item)
{
    return item == NULL ? NULL : cJSON_DetachItemViaPointer(parent, item);
}

static hpo_proto_status decode_register(const hpo_field_ctx *ctx, cJSON *root,
                                        hpo_msg_register *out)
{
    hpo_proto_status st;
    int64_t pid = 0;

    if ((st = hpo_field_string(ctx, root, "host", true, out->host, HPO_HOST_MAX)) ||
        (st = hpo_field_int(ctx, root, "pid", true, 1, INT32_MAX, &pid)) ||
        (st = read_int(ctx, root, "threads", 1, 4096, &out->threads)) ||
        (st = read_int(ctx, root, "protocol", 1, INT32_MAX, &out->protocol)) ||
        (st = hpo_field_string(ctx, root, "name", true, out->name, HPO_NAME_MAX)) ||
        (st = hpo_field_int(ctx, root, "running_trial", false, 0, HPO_PROTO_INT_MAX,
                            &out->running_trial)) ||
        (st = read_token(ctx, root, out->token)))
        return st;
    out->pid = pid;

    out->kind = HPO_WORKER_KIND_UNKNOWN;
    if (cJSON_GetObjectItemCaseSensitive(root, "kind") != NULL) {
        int kind = 0;
        if ((st = read_enum(ctx, root, "kind", parse_worker_kind, "cifar10 or objective",
                            &kind)))
            return st;
        out->kind = (hpo_worker_kind)kind;
    }

    const cJSON *pending = cJSON_GetObjectItemCaseSensitive(root, "pending_results");
    if (pending == NULL)
        return HPO_PROTO_OK;
    if (!cJSON_IsArray(pending))
        return hpo_field_fail(ctx, HPO_PROTO_WRONG_TYPE, "pending_results",
                              "expected an array of trial ids");
    int n = cJSON_GetArraySize(pending);
    if (n > HPO_PENDING_MAX)
        return hpo_field_fail(ctx, HPO_PROTO_INVALID_VALUE, "pending_results",
                              "%d entries exceed the limit of %d", n, HPO_PENDING_MAX);

    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "pending_results[%d]", i);
        st = hpo_field_int_item(ctx, cJSON_GetArrayItem(pending, i), name,
                                0, HPO_PROTO_INT_MAX, &out->pending_results[i]);
        if (st != HPO_PROTO_OK)
            return st;
    }
    out->n_pending = n;
    return HPO_PROTO_OK;
}

static hpo_proto_status decode_registered(const hpo_field_ctx *ctx, const cJSON *root,
                                          hpo_msg_registered *out)
{
    hpo_proto_status st;
    if ((st = hpo_field_string(ctx, root, "worker_id", true, out->worker_id, HPO_NAME_MAX)) ||
        (st = read_int(ctx, root, "heartbeat_ms", 100, 3600 * 1000, &out->heartbeat_ms)) ||
        (st = read_token(ctx, root, out->token)))
        return st;
    if (out->worker_id[0] == '\0')
        return hpo_field_fail(ctx, HPO_PROTO_INVALID_VALUE, "worker_id", "must not be empty");
    return HPO_PROTO_OK;
}

/* Checks that every parameter value is a finite number, a string or a
 * boolean. */
static hpo_proto_status check_params(const hpo_field_ctx *ctx, const cJSON *params)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, params) {
        bool ok = cJSON_IsString(item) || cJSON_IsBool(item) ||
                  (cJSON_IsNumber(item) && isfinite(item->valuedouble));
        if (!ok)
            return hpo_field_fail(ctx, HPO_PROTO_INVALID_VALUE, "params",
                                  "parameter \"%s\" must be a finite number, a string "
                                  "or a boolean", item->string);
    }
    return HPO_PROTO_OK;
}

/* Checks that every number in a free-form tree (trial.model, query.args,
 * reply.data) is finite. A literal such as 1e999 parses to infinity, which
 * no encoder can write back, so the tree would change on its way on. */
static hpo_proto_status check_finite_tree(const hpo_field_ctx *ctx, const char *name,
                                          const cJSON *tree)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, tree) {
        if (cJSON_IsNumber(item) && !isfinite(item->valuedouble))
            return hpo_field_fail(ctx, HPO_PROTO_INVALID_VALUE, name,
                                  "contains a number beyond the range of a double");
        hpo_proto_status st = check_finite_tree(ctx, name, item);
        if (st != HPO_PROTO_OK)
            return st;
    }
    return HPO_PROTO_OK;
}

static hpo_proto_status decode_budget(const hpo_field_ctx *trial_ctx, const cJSON *root,
                                      hpo_msg_budget *out)
{
    hpo_proto_status st;
    cJSON *budget = NULL;
    if ((st = hpo_field_object(trial_ctx, root, "budget", true, &budget)))
        return st;

    hpo_field_ctx ctx = {"trial.budget", trial_ctx->err, trial_ctx->errlen};
    if ((st = read_int(&ctx, budget, "epochs", 1, 100000, &out->epochs)) ||
        (st = read_int(&ctx, budget, "train_size", 0, DATA_RECORDS_MAX, &out->train_size)) ||
        (st = read_int(&ctx, budget, "val_size", -1, DATA_RECORDS_MAX, &out->val_size)) ||
        (st = read_int(&ctx, budget, "batch_size", 1, 65536, &out->batch_size)))
        return st;
    if (out->train_size + out->val_size > DATA_RECORDS_MAX)
        return hpo_field_fail(&ctx, HPO_PROTO_INVALID_VALUE, "val_size",
                              "train_size %d plus val_size %d exceed the %d training records",
                              out->train_size, out->val_size, DATA_RECORDS_MAX);
    return HPO_PROTO_OK;
}

static hpo_proto_status decode_trial(const hpo_field_ctx *ctx, cJSON *root,
                                     hpo_msg_trial *out)
{
    hpo_proto_status st;
    cJSON *params = NULL, *model = NULL;
    int64_t seed = 0;

    if ((st = read_trial_id(ctx, root, &out->trial_id)) ||
        (st = hpo_field_object(ctx, root, "params", true, &params)) ||
        (st = check_params(ctx, params)) ||
        (st = hpo_field_object(ctx, root, "model", true, &model)) ||
        (st = check_finite_tree(ctx, "model", model)) ||
        (st = decode_budget(ctx, root, &out->budget)) ||
        (st = hpo_field_int(ctx, root, "seed", true, 0, HPO_PROTO_INT_MAX, &seed)))
        return st;

    out->seed = (uint64_t)seed;
    out->params = take(root, params);
    out->model = take(root, model);
    return HPO_PROTO_OK;
}

static hpo_proto_status decode_progress(const hpo_field_ctx *ctx, const cJSON *root,
                                        hpo_msg_progress *out)
{
    hpo_proto_status st;
    if ((st = hpo_field_string(ctx, root, "worker_id", true, out->worker_id, HPO_NAME_MAX)) ||
        (st = read_token(ctx, root, out->token)) ||
        (st = read_trial_id(ctx, root, &out->trial_id)) ||
        (st = read_int(ctx, root, "epoch", 1, 100000, &out->epoch)) ||
        (st = read_int(ctx, root, "epochs", 1, 100000, &out->epochs)) ||
        (st = hpo_field_number(ctx, root, "loss", 0.0, false, &out->loss)) ||
        (st = hpo_field_number(ctx, root, "accuracy", 0.0, false, &out->accuracy)) ||
        (st = hpo_field_number(ctx, root, "val_loss", 0.0, true, &out->val_loss)) ||
        (st = hpo_field_number(ctx, root, "val_accuracy", 0.0, true, &out->val_accuracy)) ||
        (st = hpo_field_number(ctx, root, "seconds", 0.0, false, &out->seconds)) ||
        (st = hpo_field_number(ctx, root, "images_per_second", 0.0, false,
                               &out->images_per_second)))
        return st;
    if (out->epoch > out->epochs)
        return hpo_field_fail(ctx, HPO_PROTO_INVALID_VALUE, "epoch",
                              "%d is above epochs %d", out->epoch, out->epochs);
    return HPO_PROTO_OK;
}

static hpo_proto_status decode_heartbeat(const hpo_field_ctx *ctx, const cJSON *root,
                                         hpo_msg_heartbeat *out)
{
    hpo_proto_status st;
    if ((st = hpo_field_string(ctx, root, "worker_id", true, out->worker_id, HPO_NAME_MAX)) ||
        (st = read_token(ctx, root, out->token)))
        return st;
    out->trial_id = -1;
    return hpo_field_int(ctx, root, "trial_id", false, 0, HPO_PROTO_INT_MAX, &out->trial_id);
}

/* Checks that every metric is a finite number or null. */
static hpo_proto_status check_metrics(const hpo_field_ctx *ctx, const cJSON *metrics)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, metrics) {
        bool ok = cJSON_IsNull(item) ||
                  (cJSON_IsNumber(item) && isfinite(item->valuedouble));
        if (!ok)
            return hpo_field_fail(ctx, HPO_PROTO_INVALID_VALUE, "metrics",
                                  "metric \"%s\" must be a finite number or null",
                                  item->string);
    }
    return HPO_PROTO_OK;
}

static hpo_proto_status decode_result(const hpo_field_ctx *ctx, cJSON *root,
                                      hpo_msg_result *out)
{
    hpo_proto_status st;
    cJSON *metrics = NULL;
    int status = 0;

    if ((st = hpo_field_string(ctx, root, "worker_id", true, out->worker_id, HPO_NAME_MAX)) ||
        (st = read_token(ctx, root, out->token)) ||
        (st = read_trial_id(ctx, root, &out->trial_id)) ||
        (st = read_enum(ctx, root, "status", parse_trial_status,
                        "ok, failed or interrupted", &status)) ||
        (st = hpo_field_object(ctx, root, "metrics", true, &metrics)) ||
        (st = check_metrics(ctx, metrics)) ||
        (st = read_int(ctx, root, "epochs_run", 0, 100000, &out->epochs_run)) ||
        (st = hpo_field_number(ctx, root, "wall_seconds", 0.0, false, &out->wall_seconds)) ||
        (st = hpo_field_string(ctx, root, "error", false, out->error, HPO_ERROR_TEXT_MAX)))
        return st;

    out->status = (hpo_trial_status)status;
    out->metrics = take(root, metrics);
    return HPO_PROTO_OK;
}

static hpo_proto_status decode_ready(const hpo_field_ctx *ctx, const cJSON *root,
                                     hpo_msg_ready *out)
{
    hpo_proto_status st = hpo_field_string(ctx, root, "worker_id", true, out->worker_id,
                                           HPO_NAME_MAX);
    if (st != HPO_PROTO_OK)
        return st;
    return read_token(ctx, root, out->token);
}

static hpo_proto_status decode_leave(const hpo_field_ctx *ctx, const cJSON *root,
                                     hpo_msg_leave *out)
{
    hpo_proto_status st;
    if ((st = hpo_field_string(ctx, root, "worker_id", true, out->worker_id, HPO_NAME_MAX)) ||
        (st = read_token(ctx, root, out->token)))
        return st;
    return hpo_field_string(ctx, root, "reason", false, out->reason, HPO_REASON_MAX);
}

static hpo_proto_status decode_error(const hpo_field_ctx *ctx, const cJSON *root,
                                     hpo_msg_error *out)
{
    hpo_proto_status st;
    int code = 0;
    if ((st = read_enum(ctx, root, "code", parse_error_code,
                        "an error code listed in docs/protocol.md", &code)) ||
        (st = hpo_field_string(ctx, root, "message", true, out->message, HPO_MESSAGE_MAX)))
        return st;
    out->code = (hpo_proto_status)code;
    return HPO_PROTO_OK;
}

static hpo_proto_status decode_query(const hpo_field_ctx *ctx, cJSON *root,
                                     hpo_msg_query *out)
{
    hpo_proto_status st;
    cJSON *args = NULL;
    int command = 0;
    if ((st = read_enum(ctx, root, "command", parse_command,
                        "best, trials, summary, space, status or stop", &command)) ||
        (st = hpo_field_object(ctx, root, "args", false, &args)) ||
        (st = check_finite_tree(ctx, "args", args)))
        return st;

    out->command = (hpo_query_command)command;
    out->args = args != NULL ? take(root, args) : cJSON_CreateObject();
    if (out->args == NULL)
        return hpo_field_fail(ctx, HPO_PROTO_INTERNAL, "args", "out of memory");
    return HPO_PROTO_OK;
}

static hpo_proto_status decode_reply(const hpo_field_ctx *ctx, cJSON *root,
                                     hpo_msg_reply *out)
{
    hpo_proto_status st;
    int command = 0;
    if ((st = read_enum(ctx, root, "command", parse_command,
                        "best, trials, summary, space, status or stop", &command)))
        return st;

    cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (data == NULL)
        return hpo_field_fail(ctx, HPO_PROTO_MISSING_FIELD, "data",
                              "missing; expected the answer as any JSON value");
    if (cJSON_IsNumber(data) && !isfinite(data->valuedouble))
        return hpo_field_fail(ctx, HPO_PROTO_INVALID_VALUE, "data",
                              "is a number beyond the range of a double");
    if ((st = check_finite_tree(ctx, "data", data)))
        return st;
    out->command = (hpo_query_command)command;
    out->data = take(root, data);
    return HPO_PROTO_OK;
}

/* Decodes the members that depend on msg->type. */
static hpo_proto_status decode_body(cJSON *root, hpo_msg *msg, char *err, size_t errlen)
{
    hpo_field_ctx ctx = {hpo_msg_type_name(msg->type), err, errlen};

    switch (msg->type) {
    case HPO_MSG_REGISTER:
        return decode_register(&ctx, root, &msg->reg);
    case HPO_MSG_REGISTERED:
        return decode_registered(&ctx, root, &msg->registered);
    case HPO_MSG_READY:
        return decode_ready(&ctx, root, &msg->ready);
    case HPO_MSG_TRIAL:
        return decode_trial(&ctx, root, &msg->trial);
    case HPO_MSG_NO_WORK:
        return read_int(&ctx, root, "retry_ms", 0, 3600 * 1000, &msg->no_work.retry_ms);
    case HPO_MSG_STUDY_DONE:
        return HPO_PROTO_OK;
    case HPO_MSG_PROGRESS:
        return decode_progress(&ctx, root, &msg->progress);
    case HPO_MSG_HEARTBEAT:
        return decode_heartbeat(&ctx, root, &msg->heartbeat);
    case HPO_MSG_RESULT:
        return decode_result(&ctx, root, &msg->result);
    case HPO_MSG_RESULT_ACK:
        return read_trial_id(&ctx, root, &msg->result_ack.trial_id);
    case HPO_MSG_STOP_TRIAL: {
        hpo_proto_status st = read_trial_id(&ctx, root, &msg->stop_trial.trial_id);
        if (st != HPO_PROTO_OK)
            return st;
        return hpo_field_string(&ctx, root, "reason", false, msg->stop_trial.reason,
                                HPO_REASON_MAX);
    }
    case HPO_MSG_SHUTDOWN:
        return hpo_field_string(&ctx, root, "reason", false, msg->shutdown.reason,
                                HPO_REASON_MAX);
    case HPO_MSG_ERROR:
        return decode_error(&ctx, root, &msg->error);
    case HPO_MSG_QUERY:
        return decode_query(&ctx, root, &msg->query);
    case HPO_MSG_REPLY:
        return decode_reply(&ctx, root, &msg->reply);
    case HPO_MSG_LEAVE:
        return decode_leave(&ctx, root, &msg->leave);
    }
    return hpo_field_fail(&ctx, HPO_PROTO_UNKNOWN_TYPE, "type", "no decoder");
}

/* Checks "v" and "type", the two members every message has. */
static hpo_proto_status decode_header(const cJSON *root, hpo_msg_type *type,
                                      char *err, size_t errlen)
{
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(root, "v");
    if (version == NULL) {
        hpo_error(err, errlen, "v: missing; expected the protocol version %d",
                  HPO_PROTO_VERSION);
        return HPO_PROTO_MISSING_FIELD;
    }
    if (!cJSON_IsNumber(version)) {
        hpo_error(err, errlen, "v: expected the number %d", HPO_PROTO_VERSION);
        return HPO_PROTO_WRONG_TYPE;
    }
    if (version->valuedouble != (double)HPO_PROTO_VERSION) {
        hpo_error(err, errlen, "v: protocol version %g is not supported; "
                  "this program speaks version %d", version->valuedouble,
                  HPO_PROTO_VERSION);
        return HPO_PROTO_BAD_VERSION;
    }

    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "type");
    if (name == NULL) {
        hpo_error(err, errlen, "type: missing; expected a message type");
        return HPO_PROTO_MISSING_FIELD;
    }
    if (!cJSON_IsString(name) || name->valuestring == NULL) {
        hpo_error(err, errlen, "type: expected a string");
        return HPO_PROTO_WRONG_TYPE;
    }
    if (hpo_msg_type_parse(name->valuestring, type) != 0) {
        hpo_error(err, errlen, "type: unknown message type \"%.64s\"", name->valuestring);
        return HPO_PROTO_UNKNOWN_TYPE;
    }
    return HPO_PROTO_OK;
}

/* Parses size bytes as exactly one JSON object. cJSON needs a
 * NUL-terminated string to reject trailing bytes, so the frame is copied. */
static hpo_proto_status parse_object(const void *data, size_t size, cJSON **out,
                                     char *err, size_t errlen)
{
    *out = NULL;
    if (size == 0) {
        hpo_error(err, errlen, "message: empty frame");
        return HPO_PROTO_INVALID_JSON;
    }
    if (memchr(data, '\0', size) != NULL) {
        hpo_error(err, errlen, "message: contains a NUL byte, which is not valid in JSON text");
        return HPO_PROTO_INVALID_JSON;
    }

    char *text = malloc(size + 1);
    if (text == NULL) {
        hpo_error(err, errlen, "message: out of memory copying %zu bytes", size);
        return HPO_PROTO_INTERNAL;
    }
    memcpy(text, data, size);
    text[size] = '\0';

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    size_t offset = end != NULL ? (size_t)(end - text) : 0;
    free(text);

    if (root == NULL) {
        hpo_error(err, errlen, "message: invalid JSON near byte %zu of %zu", offset, size);
        return HPO_PROTO_INVALID_JSON;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        hpo_error(err, errlen, "message: expected a JSON object");
        return HPO_PROTO_INVALID_JSON;
    }
    *out = root;
    return HPO_PROTO_OK;
}

hpo_proto_status hpo_msg_decode(const void *data, size_t size, hpo_msg *msg,
                                char *err, size_t errlen)
{
    memset(msg, 0, sizeof *msg);
    if (size > HPO_MSG_MAX_BYTES) {
        hpo_error(err, errlen, "message: %zu bytes exceed the limit of %d",
                  size, HPO_MSG_MAX_BYTES);
        return HPO_PROTO_TOO_LARGE;
    }
    if (data == NULL && size > 0) {
        hpo_error(err, errlen, "message: no data");
        return HPO_PROTO_INVALID_JSON;
    }

    cJSON *root = NULL;
    hpo_proto_status st = parse_object(data, size, &root, err, errlen);
    if (st != HPO_PROTO_OK)
        return st;

    hpo_msg_type type;
    st = decode_header(root, &type, err, errlen);
    if (st == HPO_PROTO_OK) {
        hpo_msg_init(msg, type);
        st = decode_body(root, msg, err, errlen);
    }
    cJSON_Delete(root);

    if (st != HPO_PROTO_OK)
        hpo_msg_clear(msg);
    return st;
}
