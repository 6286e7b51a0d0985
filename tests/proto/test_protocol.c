/* Message codecs: every message type round-trips, and malformed frames are
 * rejected with the documented status and a message naming the field. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hpo/error.h"
#include "hpo/protocol.h"

/* Encodes msg, checks the text is under the size limit and decodes it. */
static void round_trip(const hpo_msg *msg, hpo_msg *out)
{
    char err[HPO_ERR_MAX] = "";
    char *text = NULL;
    size_t size = 0;

    int rc = hpo_msg_encode(msg, &text, &size, err, sizeof err);
    if (rc != 0)
        fail_msg("encode failed: %s", err);
    assert_non_null(text);
    assert_int_equal(size, strlen(text));
    assert_true(size <= HPO_MSG_MAX_BYTES);

    hpo_proto_status st = hpo_msg_decode(text, size, out, err, sizeof err);
    if (st != HPO_PROTO_OK)
        fail_msg("decode of %s failed: %s", text, err);
    assert_int_equal(out->type, msg->type);
    free(text);
}

static void assert_json_equal(const cJSON *a, const cJSON *b)
{
    assert_non_null(a);
    assert_non_null(b);
    assert_true(cJSON_Compare(a, b, 1));
}

static void test_register_round_trip(void **state)
{
    (void)state;
    hpo_msg msg, out;
    hpo_msg_init(&msg, HPO_MSG_REGISTER);
    snprintf(msg.reg.host, sizeof msg.reg.host, "gpu-07.example");
    msg.reg.pid = 4711;
    msg.reg.threads = 8;
    msg.reg.protocol = HPO_PROTO_VERSION;
    snprintf(msg.reg.name, sizeof msg.reg.name, "w-\"quoted\"\\name");
    msg.reg.running_trial = 42;
    msg.reg.n_pending = 2;
    msg.reg.pending_results[0] = 40;
    msg.reg.pending_results[1] = HPO_PROTO_INT_MAX;

    round_trip(&msg, &out);
    assert_string_equal(out.reg.host, "gpu-07.example");
    assert_int_equal(out.reg.pid, 4711);
    assert_int_equal(out.reg.threads, 8);
    assert_int_equal(out.reg.protocol, HPO_PROTO_VERSION);
    assert_string_equal(out.reg.name, "w-\"quoted\"\\name");
    assert_int_equal(out.reg.running_trial, 42);
    assert_int_equal(out.reg.n_pending, 2);
    assert_int_equal(out.reg.pending_results[0], 40);
    assert_int_equal(out.reg.pending_results[1], HPO_PROTO_INT_MAX);
    hpo_msg_clear(&out);

    /* An idle worker with nothing pending: running_trial stays -1. */
    msg.reg.running_trial = -1;
    msg.reg.n_pending = 0;
    round_trip(&msg, &out);
    assert_int_equal(out.reg.running_trial, -1);
    assert_int_equal(out.reg.n_pending, 0);
    hpo_msg_clear(&out);
}

static void test_registered_ready_round_trip(void **state)
{
    (void)state;
    hpo_msg msg, out;
    hpo_msg_init(&msg, HPO_MSG_REGISTERED);
    snprintf(msg.registered.worker_id, sizeof msg.registered.worker_id, "w3");
    msg.registered.heartbeat_ms = 1500;
    round_trip(&msg, &out);
    assert_string_equal(out.registered.worker_id, "w3");
    assert_int_equal(out.registered.heartbeat_ms, 1500);
    hpo_msg_clear(&out);

    hpo_msg_init(&msg, HPO_MSG_READY);
    snprintf(msg.ready.worker_id, sizeof msg.ready.worker_id, "w3");
    round_trip(&msg, &out);
    assert_string_equal(out.ready.worker_id, "w3");
    hpo_msg_clear(&out);
}

static void test_trial_round_trip(void **state)
{
    (void)state;
    cJSON *params = cJSON_Parse("{\"conv1_filters\": 256, \"activation\": \"tanh\","
                                " \"dropout\": true, \"learning_rate\": 0.0005}");
    cJSON *model = cJSON_Parse("{\"input_shape\": [32, 32, 3], \"layers\": ["
                               "{\"type\": \"conv2d\", \"filters\": 8, \"kernel_size\": 3},"
                               "{\"type\": \"flatten\"},"
                               "{\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}]}");
    assert_non_null(params);
    assert_non_null(model);

    hpo_msg msg, out;
    hpo_msg_init(&msg, HPO_MSG_TRIAL);
    msg.trial.trial_id = 12;
    msg.trial.params = params;
    msg.trial.model = model;
    msg.trial.budget = (hpo_msg_budget){.epochs = 8, .train_size = 2000,
                                        .val_size = 500, .batch_size = 64};
    msg.trial.seed = 123456789012345ULL;

    round_trip(&msg, &out);
    assert_int_equal(out.trial.trial_id, 12);
    assert_json_equal(out.trial.params, params);
    assert_json_equal(out.trial.model, model);
    assert_ptr_not_equal(out.trial.params, params);
    assert_int_equal(out.trial.budget.epochs, 8);
    assert_int_equal(out.trial.budget.train_size, 2000);
    assert_int_equal(out.trial.budget.val_size, 500);
    assert_int_equal(out.trial.budget.batch_size, 64);
    assert_int_equal(out.trial.seed, 123456789012345ULL);
    hpo_msg_clear(&out);
    assert_null(out.trial.params);

    /* The caller's trees are untouched and still owned by the caller. */
    assert_int_equal(cJSON_GetArraySize(model), 2);
    cJSON_Delete(params);
    cJSON_Delete(model);
}

static void test_no_work_study_done_round_trip(void **state)
{
    (void)state;
    hpo_msg msg, out;
    hpo_msg_init(&msg, HPO_MSG_NO_WORK);
    msg.no_work.retry_ms = 750;
    round_trip(&msg, &out);
    assert_int_equal(out.no_work.retry_ms, 750);
    hpo_msg_clear(&out);

    hpo_msg_init(&msg, HPO_MSG_STUDY_DONE);
    round_trip(&msg, &out);
    assert_int_equal(out.type, HPO_MSG_STUDY_DONE);
    hpo_msg_clear(&out);
}

static void test_progress_round_trip(void **state)
{
    (void)state;
    hpo_msg msg, out;
    hpo_msg_init(&msg, HPO_MSG_PROGRESS);
    snprintf(msg.progress.worker_id, sizeof msg.progress.worker_id, "w1");
    msg.progress.trial_id = 7;
    msg.progress.epoch = 2;
    msg.progress.epochs = 8;
    msg.progress.loss = 1.2345678901234567;
    msg.progress.accuracy = 0.5625;
    msg.progress.val_loss = 1.5;
    msg.progress.val_accuracy = 0.4375;
    msg.progress.seconds = 12.25;
    msg.progress.images_per_second = 163.2653061224;

    round_trip(&msg, &out);
    assert_string_equal(out.progress.worker_id, "w1");
    assert_int_equal(out.progress.trial_id, 7);
    assert_int_equal(out.progress.epoch, 2);
    assert_int_equal(out.progress.epochs, 8);
    /* Doubles survive the text form bit for bit. */
    assert_true(out.progress.loss == msg.progress.loss);
    assert_true(out.progress.accuracy == msg.progress.accuracy);
    assert_true(out.progress.val_loss == msg.progress.val_loss);
    assert_true(out.progress.val_accuracy == msg.progress.val_accuracy);
    assert_true(out.progress.seconds == msg.progress.seconds);
    assert_true(out.progress.images_per_second == msg.progress.images_per_second);
    hpo_msg_clear(&out);

    /* Without a validation set the validation metrics travel as null. */
    msg.progress.val_loss = NAN;
    msg.progress.val_accuracy = NAN;
    round_trip(&msg, &out);
    assert_true(isnan(out.progress.val_loss));
    assert_true(isnan(out.progress.val_accuracy));
    hpo_msg_clear(&out);
}

static void test_heartbeat_round_trip(void **state)
{
    (void)state;
    hpo_msg msg, out;
    hpo_msg_init(&msg, HPO_MSG_HEARTBEAT);
    snprintf(msg.heartbeat.worker_id, sizeof msg.heartbeat.worker_id, "w2");
    msg.heartbeat.trial_id = 99;
    round_trip(&msg, &out);
    assert_string_equal(out.heartbeat.worker_id, "w2");
    assert_int_equal(out.heartbeat.trial_id, 99);
    hpo_msg_clear(&out);

    msg.heartbeat.trial_id = -1;
    round_trip(&msg, &out);
    assert_int_equal(out.heartbeat.trial_id, -1);
    hpo_msg_clear(&out);
}

static void test_result_round_trip(void **state)
{
    (void)state;
    cJSON *metrics = cJSON_Parse("{\"val_accuracy\": 0.71875, \"val_loss\": 0.83,"
                                 " \"loss\": 0.5, \"accuracy\": 0.8, \"test_accuracy\": null}");
    assert_non_null(metrics);

    hpo_trial_status statuses[] = {HPO_TRIAL_OK, HPO_TRIAL_FAILED, HPO_TRIAL_INTERRUPTED};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        hpo_msg msg, out;
        hpo_msg_init(&msg, HPO_MSG_RESULT);
        snprintf(msg.result.worker_id, sizeof msg.result.worker_id, "w9");
        msg.result.trial_id = 31;
        msg.result.status = statuses[i];
        msg.result.metrics = metrics;
        msg.result.epochs_run = 3;
        msg.result.wall_seconds = 95.5;
        if (statuses[i] == HPO_TRIAL_FAILED)
            snprintf(msg.result.error, sizeof msg.result.error,
                     "layers[4].kernel_size: 5 is larger than the 3x3 input");

        round_trip(&msg, &out);
        assert_string_equal(out.result.worker_id, "w9");
        assert_int_equal(out.result.trial_id, 31);
        assert_int_equal(out.result.status, statuses[i]);
        assert_json_equal(out.result.metrics, metrics);
        assert_int_equal(out.result.epochs_run, 3);
        assert_true(out.result.wall_seconds == 95.5);
        assert_string_equal(out.result.error, msg.result.error);
        hpo_msg_clear(&out);
    }
    cJSON_Delete(metrics);
}

static void test_control_messages_round_trip(void **state)
{
    (void)state;
    hpo_msg msg, out;

    hpo_msg_init(&msg, HPO_MSG_RESULT_ACK);
    msg.result_ack.trial_id = 31;
    round_trip(&msg, &out);
    assert_int_equal(out.result_ack.trial_id, 31);
    hpo_msg_clear(&out);

    hpo_msg_init(&msg, HPO_MSG_STOP_TRIAL);
    msg.stop_trial.trial_id = 5;
    snprintf(msg.stop_trial.reason, sizeof msg.stop_trial.reason, "study stopped");
    round_trip(&msg, &out);
    assert_int_equal(out.stop_trial.trial_id, 5);
    assert_string_equal(out.stop_trial.reason, "study stopped");
    hpo_msg_clear(&out);

    hpo_msg_init(&msg, HPO_MSG_SHUTDOWN);
    round_trip(&msg, &out);
    assert_string_equal(out.shutdown.reason, "");
    hpo_msg_clear(&out);

    for (int code = HPO_PROTO_OK + 1; code < HPO_PROTO_STATUS_COUNT; code++) {
        hpo_msg_error_init(&msg, (hpo_proto_status)code, "code %d: %s", code, "details");
        round_trip(&msg, &out);
        assert_int_equal(out.error.code, code);
        assert_string_equal(out.error.message, msg.error.message);
        hpo_msg_clear(&out);
    }
}

static void test_query_reply_round_trip(void **state)
{
    (void)state;
    cJSON *args = cJSON_Parse("{\"top\": 5, \"format\": \"csv\"}");
    cJSON *data = cJSON_Parse("[{\"trial_id\": 3, \"val_accuracy\": 0.7}]");
    assert_non_null(args);
    assert_non_null(data);

    for (int c = 0; c < HPO_QUERY_COMMAND_COUNT; c++) {
        hpo_msg msg, out;
        hpo_msg_init(&msg, HPO_MSG_QUERY);
        msg.query.command = (hpo_query_command)c;
        msg.query.args = args;
        round_trip(&msg, &out);
        assert_int_equal(out.query.command, c);
        assert_json_equal(out.query.args, args);
        hpo_msg_clear(&out);

        hpo_msg_init(&msg, HPO_MSG_REPLY);
        msg.reply.command = (hpo_query_command)c;
        msg.reply.data = data;
        round_trip(&msg, &out);
        assert_int_equal(out.reply.command, c);
        assert_json_equal(out.reply.data, data);
        hpo_msg_clear(&out);
    }

    /* A query without args decodes with an empty args object. */
    hpo_msg out;
    const char *text = "{\"v\":1,\"type\":\"query\",\"command\":\"status\"}";
    char err[HPO_ERR_MAX];
    assert_int_equal(hpo_msg_decode(text, strlen(text), &out, err, sizeof err), HPO_PROTO_OK);
    assert_true(cJSON_IsObject(out.query.args));
    assert_int_equal(cJSON_GetArraySize(out.query.args), 0);
    hpo_msg_clear(&out);

    cJSON_Delete(args);
    cJSON_Delete(data);
}

static void test_wire_names_parse_back(void **state)
{
    (void)state;
    for (int t = 0; t < HPO_MSG_TYPE_COUNT; t++) {
        hpo_msg_type parsed;
        assert_non_null(hpo_msg_type_name((hpo_msg_type)t));
        assert_int_equal(hpo_msg_type_parse(hpo_msg_type_name((hpo_msg_type)t), &parsed), 0);
        assert_int_equal(parsed, t);
    }
    for (int s = 0; s < HPO_PROTO_STATUS_COUNT; s++) {
        hpo_proto_status parsed;
        assert_int_equal(hpo_proto_status_parse(hpo_proto_status_name((hpo_proto_status)s),
                                                &parsed), 0);
        assert_int_equal(parsed, s);
    }
    assert_null(hpo_msg_type_name(HPO_MSG_TYPE_COUNT));
    assert_null(hpo_proto_status_name(HPO_PROTO_STATUS_COUNT));
    assert_null(hpo_trial_status_name((hpo_trial_status)3));
    assert_null(hpo_query_command_name(HPO_QUERY_COMMAND_COUNT));
    hpo_query_command command;
    assert_int_equal(hpo_query_command_parse("drop_table", &command), -1);
}

/* One malformed frame, the status it must get and a word the message must
 * contain (the field's path wherever there is a field). */
typedef struct {
    const char *name;
    const char *text;
    hpo_proto_status status;
    const char *field;
} malformed_case;

#define PROGRESS_HEAD "{\"v\":1,\"type\":\"progress\",\"worker_id\":\"w1\",\"trial_id\":7,"
#define TRIAL_HEAD "{\"v\":1,\"type\":\"trial\",\"trial_id\":1,\"params\":{},\"model\":{},"

static const malformed_case malformed_cases[] = {
    {"not JSON", "hello worker", HPO_PROTO_INVALID_JSON, "invalid JSON"},
    {"empty frame", "", HPO_PROTO_INVALID_JSON, "empty"},
    {"truncated", "{\"v\":1,\"type\":\"ready\",\"worker_id\":\"w", HPO_PROTO_INVALID_JSON,
     "invalid JSON"},
    {"trailing bytes", "{\"v\":1,\"type\":\"study_done\"} {}", HPO_PROTO_INVALID_JSON,
     "invalid JSON"},
    {"array", "[1,2,3]", HPO_PROTO_INVALID_JSON, "object"},
    {"NaN literal", PROGRESS_HEAD "\"epoch\":1,\"epochs\":2,\"loss\":NaN}",
     HPO_PROTO_INVALID_JSON, "invalid JSON"},
    {"missing version", "{\"type\":\"study_done\"}", HPO_PROTO_MISSING_FIELD, "v:"},
    {"string version", "{\"v\":\"1\",\"type\":\"study_done\"}", HPO_PROTO_WRONG_TYPE, "v:"},
    {"wrong version", "{\"v\":2,\"type\":\"study_done\"}", HPO_PROTO_BAD_VERSION, "v:"},
    {"version zero", "{\"v\":0,\"type\":\"study_done\"}", HPO_PROTO_BAD_VERSION, "v:"},
    {"missing type", "{\"v\":1}", HPO_PROTO_MISSING_FIELD, "type:"},
    {"numeric type", "{\"v\":1,\"type\":3}", HPO_PROTO_WRONG_TYPE, "type:"},
    {"unknown type", "{\"v\":1,\"type\":\"launch_missiles\"}", HPO_PROTO_UNKNOWN_TYPE,
     "launch_missiles"},
    {"type wrong case", "{\"v\":1,\"type\":\"Register\"}", HPO_PROTO_UNKNOWN_TYPE, "type:"},
    {"register missing host",
     "{\"v\":1,\"type\":\"register\",\"pid\":1,\"threads\":1,\"protocol\":1,\"name\":\"a\"}",
     HPO_PROTO_MISSING_FIELD, "register.host"},
    {"register pid string",
     "{\"v\":1,\"type\":\"register\",\"host\":\"h\",\"pid\":\"1\",\"threads\":1,"
     "\"protocol\":1,\"name\":\"a\"}",
     HPO_PROTO_WRONG_TYPE, "register.pid"},
    {"register zero threads",
     "{\"v\":1,\"type\":\"register\",\"host\":\"h\",\"pid\":1,\"threads\":0,"
     "\"protocol\":1,\"name\":\"a\"}",
     HPO_PROTO_INVALID_VALUE, "register.threads"},
    {"register fractional pid",
     "{\"v\":1,\"type\":\"register\",\"host\":\"h\",\"pid\":1.5,\"threads\":1,"
     "\"protocol\":1,\"name\":\"a\"}",
     HPO_PROTO_INVALID_VALUE, "register.pid"},
    {"register pending not array",
     "{\"v\":1,\"type\":\"register\",\"host\":\"h\",\"pid\":1,\"threads\":1,"
     "\"protocol\":1,\"name\":\"a\",\"pending_results\":5}",
     HPO_PROTO_WRONG_TYPE, "register.pending_results"},
    {"register pending negative",
     "{\"v\":1,\"type\":\"register\",\"host\":\"h\",\"pid\":1,\"threads\":1,"
     "\"protocol\":1,\"name\":\"a\",\"pending_results\":[3,-4]}",
     HPO_PROTO_INVALID_VALUE, "register.pending_results[1]"},
    {"registered empty id", "{\"v\":1,\"type\":\"registered\",\"worker_id\":\"\","
     "\"heartbeat_ms\":1000}", HPO_PROTO_INVALID_VALUE, "registered.worker_id"},
    {"ready missing id", "{\"v\":1,\"type\":\"ready\"}", HPO_PROTO_MISSING_FIELD,
     "ready.worker_id"},
    {"trial missing budget", TRIAL_HEAD "\"seed\":1}", HPO_PROTO_MISSING_FIELD,
     "trial.budget"},
    {"trial negative epochs",
     TRIAL_HEAD "\"budget\":{\"epochs\":-1,\"train_size\":10,\"val_size\":0,"
     "\"batch_size\":8},\"seed\":1}",
     HPO_PROTO_INVALID_VALUE, "trial.budget.epochs"},
    {"trial huge train size",
     TRIAL_HEAD "\"budget\":{\"epochs\":1,\"train_size\":1e12,\"val_size\":0,"
     "\"batch_size\":8},\"seed\":1}",
     HPO_PROTO_INVALID_VALUE, "trial.budget.train_size"},
    {"trial sizes over dataset",
     TRIAL_HEAD "\"budget\":{\"epochs\":1,\"train_size\":45000,\"val_size\":6000,"
     "\"batch_size\":8},\"seed\":1}",
     HPO_PROTO_INVALID_VALUE, "trial.budget.val_size"},
    {"trial model string",
     "{\"v\":1,\"type\":\"trial\",\"trial_id\":1,\"params\":{},\"model\":\"{}\","
     "\"budget\":{\"epochs\":1,\"train_size\":10,\"val_size\":0,\"batch_size\":8},\"seed\":1}",
     HPO_PROTO_WRONG_TYPE, "trial.model"},
    {"trial param array",
     "{\"v\":1,\"type\":\"trial\",\"trial_id\":1,\"params\":{\"units\":[1]},\"model\":{},"
     "\"budget\":{\"epochs\":1,\"train_size\":10,\"val_size\":0,\"batch_size\":8},\"seed\":1}",
     HPO_PROTO_INVALID_VALUE, "trial.params"},
    {"trial seed above 2^53",
     TRIAL_HEAD "\"budget\":{\"epochs\":1,\"train_size\":10,\"val_size\":0,"
     "\"batch_size\":8},\"seed\":1e17}",
     HPO_PROTO_INVALID_VALUE, "trial.seed"},
    {"trial negative id",
     "{\"v\":1,\"type\":\"trial\",\"trial_id\":-3}", HPO_PROTO_INVALID_VALUE, "trial.trial_id"},
    {"no_work negative retry", "{\"v\":1,\"type\":\"no_work\",\"retry_ms\":-5}",
     HPO_PROTO_INVALID_VALUE, "no_work.retry_ms"},
    {"progress huge loss",
     PROGRESS_HEAD "\"epoch\":1,\"epochs\":2,\"loss\":1e999,\"accuracy\":0.5,"
     "\"val_loss\":null,\"val_accuracy\":null,\"seconds\":1,\"images_per_second\":1}",
     HPO_PROTO_INVALID_VALUE, "progress.loss"},
    {"progress null loss",
     PROGRESS_HEAD "\"epoch\":1,\"epochs\":2,\"loss\":null,\"accuracy\":0.5,"
     "\"val_loss\":null,\"val_accuracy\":null,\"seconds\":1,\"images_per_second\":1}",
     HPO_PROTO_WRONG_TYPE, "progress.loss"},
    {"progress negative epoch",
     PROGRESS_HEAD "\"epoch\":-1,\"epochs\":2,\"loss\":1,\"accuracy\":0.5,"
     "\"val_loss\":null,\"val_accuracy\":null,\"seconds\":1,\"images_per_second\":1}",
     HPO_PROTO_INVALID_VALUE, "progress.epoch"},
    {"progress epoch after last",
     PROGRESS_HEAD "\"epoch\":3,\"epochs\":2,\"loss\":1,\"accuracy\":0.5,"
     "\"val_loss\":null,\"val_accuracy\":null,\"seconds\":1,\"images_per_second\":1}",
     HPO_PROTO_INVALID_VALUE, "progress.epoch"},
    {"progress negative seconds",
     PROGRESS_HEAD "\"epoch\":1,\"epochs\":2,\"loss\":1,\"accuracy\":0.5,"
     "\"val_loss\":0.1,\"val_accuracy\":0.1,\"seconds\":-2,\"images_per_second\":1}",
     HPO_PROTO_INVALID_VALUE, "progress.seconds"},
    {"heartbeat string trial",
     "{\"v\":1,\"type\":\"heartbeat\",\"worker_id\":\"w1\",\"trial_id\":\"7\"}",
     HPO_PROTO_WRONG_TYPE, "heartbeat.trial_id"},
    {"result unknown status",
     "{\"v\":1,\"type\":\"result\",\"worker_id\":\"w1\",\"trial_id\":7,\"status\":\"great\","
     "\"metrics\":{},\"epochs_run\":1,\"wall_seconds\":1}",
     HPO_PROTO_INVALID_VALUE, "result.status"},
    {"result metric string",
     "{\"v\":1,\"type\":\"result\",\"worker_id\":\"w1\",\"trial_id\":7,\"status\":\"ok\","
     "\"metrics\":{\"val_accuracy\":\"high\"},\"epochs_run\":1,\"wall_seconds\":1}",
     HPO_PROTO_INVALID_VALUE, "result.metrics"},
    {"result negative epochs",
     "{\"v\":1,\"type\":\"result\",\"worker_id\":\"w1\",\"trial_id\":7,\"status\":\"ok\","
     "\"metrics\":{},\"epochs_run\":-1,\"wall_seconds\":1}",
     HPO_PROTO_INVALID_VALUE, "result.epochs_run"},
    {"result missing metrics",
     "{\"v\":1,\"type\":\"result\",\"worker_id\":\"w1\",\"trial_id\":7,\"status\":\"ok\","
     "\"epochs_run\":1,\"wall_seconds\":1}",
     HPO_PROTO_MISSING_FIELD, "result.metrics"},
    {"result_ack float id", "{\"v\":1,\"type\":\"result_ack\",\"trial_id\":2.5}",
     HPO_PROTO_INVALID_VALUE, "result_ack.trial_id"},
    {"stop_trial missing id", "{\"v\":1,\"type\":\"stop_trial\"}", HPO_PROTO_MISSING_FIELD,
     "stop_trial.trial_id"},
    {"shutdown numeric reason", "{\"v\":1,\"type\":\"shutdown\",\"reason\":1}",
     HPO_PROTO_WRONG_TYPE, "shutdown.reason"},
    {"error code ok", "{\"v\":1,\"type\":\"error\",\"code\":\"ok\",\"message\":\"x\"}",
     HPO_PROTO_INVALID_VALUE, "error.code"},
    {"error missing message", "{\"v\":1,\"type\":\"error\",\"code\":\"internal\"}",
     HPO_PROTO_MISSING_FIELD, "error.message"},
    {"query unknown command", "{\"v\":1,\"type\":\"query\",\"command\":\"drop\"}",
     HPO_PROTO_INVALID_VALUE, "query.command"},
    {"query args array", "{\"v\":1,\"type\":\"query\",\"command\":\"best\",\"args\":[]}",
     HPO_PROTO_WRONG_TYPE, "query.args"},
    {"reply missing data", "{\"v\":1,\"type\":\"reply\",\"command\":\"best\"}",
     HPO_PROTO_MISSING_FIELD, "reply.data"},
};

static void test_malformed_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof malformed_cases / sizeof malformed_cases[0]; i++) {
        const malformed_case *c = &malformed_cases[i];
        char err[HPO_ERR_MAX] = "";
        hpo_msg msg;

        hpo_proto_status st = hpo_msg_decode(c->text, strlen(c->text), &msg, err, sizeof err);
        if (st != c->status)
            fail_msg("case \"%s\": status %s, expected %s (%s)", c->name,
                     hpo_proto_status_name(st), hpo_proto_status_name(c->status), err);
        if (strstr(err, c->field) == NULL)
            fail_msg("case \"%s\": message \"%s\" does not contain \"%s\"", c->name, err,
                     c->field);
        /* A rejected frame leaves nothing to free. */
        assert_null(msg.trial.params);
        assert_null(msg.trial.model);
    }
}

/* Fills buf with {"v":1,"type":"shutdown","reason":"xxx..."} of exactly
 * size bytes. */
static void fill_shutdown_frame(char *buf, size_t size)
{
    const char *head = "{\"v\":1,\"type\":\"shutdown\",\"reason\":\"";
    memset(buf, 'x', size);
    memcpy(buf, head, strlen(head));
    memcpy(buf + size - 2, "\"}", 2);
}

static void test_oversized_frame_rejected(void **state)
{
    (void)state;
    char *text = malloc(HPO_MSG_MAX_BYTES + 1);
    assert_non_null(text);
    char err[HPO_ERR_MAX] = "";
    hpo_msg msg;

    /* One byte over the limit: rejected before parsing. */
    fill_shutdown_frame(text, HPO_MSG_MAX_BYTES + 1);
    assert_int_equal(hpo_msg_decode(text, HPO_MSG_MAX_BYTES + 1, &msg, err, sizeof err),
                     HPO_PROTO_TOO_LARGE);
    assert_non_null(strstr(err, "exceed the limit"));

    /* At the limit the frame is parsed, and rejected for its long reason. */
    fill_shutdown_frame(text, HPO_MSG_MAX_BYTES);
    assert_int_equal(hpo_msg_decode(text, HPO_MSG_MAX_BYTES, &msg, err, sizeof err),
                     HPO_PROTO_INVALID_VALUE);
    assert_non_null(strstr(err, "shutdown.reason"));
    free(text);
}

static void test_long_string_rejected(void **state)
{
    (void)state;
    char host[HPO_HOST_MAX + 2];
    memset(host, 'h', sizeof host - 1);
    host[sizeof host - 1] = '\0';

    char text[1024];
    snprintf(text, sizeof text, "{\"v\":1,\"type\":\"register\",\"host\":\"%s\",\"pid\":1,"
             "\"threads\":1,\"protocol\":1,\"name\":\"a\"}", host);
    char err[HPO_ERR_MAX] = "";
    hpo_msg msg;
    assert_int_equal(hpo_msg_decode(text, strlen(text), &msg, err, sizeof err),
                     HPO_PROTO_INVALID_VALUE);
    assert_non_null(strstr(err, "register.host"));
    assert_non_null(strstr(err, "256 bytes"));
}

static void test_embedded_nul_rejected(void **state)
{
    (void)state;
    const char text[] = "{\"v\":1,\"type\":\"study_done\"}\0garbage";
    char err[HPO_ERR_MAX] = "";
    hpo_msg msg;
    assert_int_equal(hpo_msg_decode(text, sizeof text - 1, &msg, err, sizeof err),
                     HPO_PROTO_INVALID_JSON);
    assert_non_null(strstr(err, "NUL"));
}

static void test_deep_nesting_rejected(void **state)
{
    (void)state;
    /* Nesting past cJSON's limit must fail to parse, not exhaust the stack. */
    size_t depth = 100000;
    char *text = malloc(2 * depth + 64);
    assert_non_null(text);
    size_t n = (size_t)sprintf(text, "{\"v\":1,\"type\":\"reply\",\"command\":\"best\",\"data\":");
    memset(text + n, '[', depth);
    memset(text + n + depth, ']', depth);
    strcpy(text + n + 2 * depth, "}");

    char err[HPO_ERR_MAX] = "";
    hpo_msg msg;
    assert_int_equal(hpo_msg_decode(text, strlen(text), &msg, err, sizeof err),
                     HPO_PROTO_INVALID_JSON);
    free(text);
}

static void test_encode_rejects_invalid(void **state)
{
    (void)state;
    char err[HPO_ERR_MAX] = "";
    char *text = NULL;
    size_t size = 0;
    hpo_msg msg;

    /* A diverged loss cannot be sent as progress. */
    hpo_msg_init(&msg, HPO_MSG_PROGRESS);
    snprintf(msg.progress.worker_id, sizeof msg.progress.worker_id, "w1");
    msg.progress.epoch = 1;
    msg.progress.epochs = 1;
    msg.progress.loss = INFINITY;
    assert_int_equal(hpo_msg_encode(&msg, &text, &size, err, sizeof err), -1);
    assert_null(text);
    assert_non_null(strstr(err, "progress.loss"));

    /* A trial without a model. */
    hpo_msg_init(&msg, HPO_MSG_TRIAL);
    msg.trial.params = cJSON_CreateObject();
    msg.trial.budget = (hpo_msg_budget){.epochs = 1, .train_size = 1, .val_size = 0,
                                        .batch_size = 1};
    assert_int_equal(hpo_msg_encode(&msg, &text, &size, err, sizeof err), -1);
    assert_non_null(strstr(err, "trial.model"));
    hpo_msg_clear(&msg);

    /* A worker id that fills its array without a NUL. */
    hpo_msg_init(&msg, HPO_MSG_READY);
    memset(msg.ready.worker_id, 'w', sizeof msg.ready.worker_id);
    assert_int_equal(hpo_msg_encode(&msg, &text, &size, err, sizeof err), -1);
    assert_non_null(strstr(err, "ready.worker_id"));

    hpo_msg_init(&msg, HPO_MSG_REGISTER);
    msg.reg.n_pending = HPO_PENDING_MAX + 1;
    assert_int_equal(hpo_msg_encode(&msg, &text, &size, err, sizeof err), -1);
    assert_non_null(strstr(err, "register.pending_results"));

    msg.type = (hpo_msg_type)HPO_MSG_TYPE_COUNT;
    assert_int_equal(hpo_msg_encode(&msg, &text, &size, err, sizeof err), -1);
    assert_non_null(strstr(err, "type"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_round_trip),
        cmocka_unit_test(test_registered_ready_round_trip),
        cmocka_unit_test(test_trial_round_trip),
        cmocka_unit_test(test_no_work_study_done_round_trip),
        cmocka_unit_test(test_progress_round_trip),
        cmocka_unit_test(test_heartbeat_round_trip),
        cmocka_unit_test(test_result_round_trip),
        cmocka_unit_test(test_control_messages_round_trip),
        cmocka_unit_test(test_query_reply_round_trip),
        cmocka_unit_test(test_wire_names_parse_back),
        cmocka_unit_test(test_malformed_table),
        cmocka_unit_test(test_oversized_frame_rejected),
        cmocka_unit_test(test_long_string_rejected),
        cmocka_unit_test(test_embedded_nul_rejected),
        cmocka_unit_test(test_deep_nesting_rejected),
        cmocka_unit_test(test_encode_rejects_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
