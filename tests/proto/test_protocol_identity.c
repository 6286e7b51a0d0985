/* Codecs of the worker identity fields: session tokens in registered and
 * every worker message, register.kind, the leave message and the error
 * codes that hpod sends when it rejects a worker. */
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

#define TOKEN "5be0c2f1d4a3968e7b1c0f2a9d8e4b67"

/* Encodes msg and decodes the text into *out; returns the text, which the
 * caller frees. */
static char *round_trip(const hpo_msg *msg, hpo_msg *out)
{
    char err[HPO_ERR_MAX] = "";
    char *text = NULL;
    size_t size = 0;
    if (hpo_msg_encode(msg, &text, &size, err, sizeof err) != 0)
        fail_msg("encode failed: %s", err);
    hpo_proto_status st = hpo_msg_decode(text, size, out, err, sizeof err);
    if (st != HPO_PROTO_OK)
        fail_msg("decode of %s failed: %s", text, err);
    assert_int_equal(out->type, msg->type);
    return text;
}

static hpo_proto_status decode_text(const char *text, hpo_msg *out, char *err, size_t errlen)
{
    return hpo_msg_decode(text, strlen(text), out, err, errlen);
}

static void test_register_kind_token_round_trip(void **state)
{
    (void)state;
    hpo_msg msg, out;
    hpo_msg_init(&msg, HPO_MSG_REGISTER);
    snprintf(msg.reg.host, sizeof msg.reg.host, "gpu-07");
    msg.reg.pid = 17;
    msg.reg.threads = 2;
    msg.reg.protocol = HPO_PROTO_VERSION;
    snprintf(msg.reg.name, sizeof msg.reg.name, "gpu-07-17");
    msg.reg.kind = HPO_WORKER_KIND_OBJECTIVE;
    snprintf(msg.reg.token, sizeof msg.reg.token, TOKEN);

    char *text = round_trip(&msg, &out);
    assert_non_null(strstr(text, "\"kind\":\"objective\""));
    assert_int_equal(out.reg.kind, HPO_WORKER_KIND_OBJECTIVE);
    assert_string_equal(out.reg.token, TOKEN);
    free(text);
    hpo_msg_clear(&out);

    /* Without kind and token, neither field is written, and both read
     * back as absent. */
    msg.reg.kind = HPO_WORKER_KIND_UNKNOWN;
    msg.reg.token[0] = '\0';
    text = round_trip(&msg, &out);
    assert_null(strstr(text, "\"kind\""));
    assert_null(strstr(text, "\"token\""));
    assert_int_equal(out.reg.kind, HPO_WORKER_KIND_UNKNOWN);
    assert_string_equal(out.reg.token, "");
    free(text);
    hpo_msg_clear(&out);
}

static void test_worker_messages_carry_token(void **state)
{
    (void)state;
    hpo_msg msg, out;

    hpo_msg_init(&msg, HPO_MSG_REGISTERED);
    snprintf(msg.registered.worker_id, sizeof msg.registered.worker_id, "w3");
    msg.registered.heartbeat_ms = 2000;
    snprintf(msg.registered.token, sizeof msg.registered.token, TOKEN);
    free(round_trip(&msg, &out));
    assert_string_equal(out.registered.token, TOKEN);
    hpo_msg_clear(&out);

    hpo_msg_init(&msg, HPO_MSG_READY);
    snprintf(msg.ready.worker_id, sizeof msg.ready.worker_id, "w3");
    snprintf(msg.ready.token, sizeof msg.ready.token, TOKEN);
    free(round_trip(&msg, &out));
    assert_string_equal(out.ready.token, TOKEN);
    hpo_msg_clear(&out);

    hpo_msg_init(&msg, HPO_MSG_HEARTBEAT);
    snprintf(msg.heartbeat.worker_id, sizeof msg.heartbeat.worker_id, "w3");
    snprintf(msg.heartbeat.token, sizeof msg.heartbeat.token, TOKEN);
    free(round_trip(&msg, &out));
    assert_string_equal(out.heartbeat.token, TOKEN);
    hpo_msg_clear(&out);

    hpo_msg_init(&msg, HPO_MSG_PROGRESS);
    snprintf(msg.progress.worker_id, sizeof msg.progress.worker_id, "w3");
    snprintf(msg.progress.token, sizeof msg.progress.token, TOKEN);
    msg.progress.trial_id = 4;
    msg.progress.epoch = 1;
    msg.progress.epochs = 2;
    free(round_trip(&msg, &out));
    assert_string_equal(out.progress.token, TOKEN);
    hpo_msg_clear(&out);

    hpo_msg_init(&msg, HPO_MSG_RESULT);
    snprintf(msg.result.worker_id, sizeof msg.result.worker_id, "w3");
    snprintf(msg.result.token, sizeof msg.result.token, TOKEN);
    msg.result.trial_id = 4;
    msg.result.metrics = cJSON_CreateObject();
    free(round_trip(&msg, &out));
    assert_string_equal(out.result.token, TOKEN);
    hpo_msg_clear(&out);
    hpo_msg_clear(&msg);
}

static void test_leave_round_trip(void **state)
{
    (void)state;
    hpo_msg msg, out;
    hpo_msg_init(&msg, HPO_MSG_LEAVE);
    snprintf(msg.leave.worker_id, sizeof msg.leave.worker_id, "w12");
    snprintf(msg.leave.token, sizeof msg.leave.token, TOKEN);
    snprintf(msg.leave.reason, sizeof msg.leave.reason, "stop requested (SIGINT or SIGTERM)");
    char *text = round_trip(&msg, &out);
    assert_non_null(strstr(text, "\"type\":\"leave\""));
    assert_string_equal(out.leave.worker_id, "w12");
    assert_string_equal(out.leave.token, TOKEN);
    assert_string_equal(out.leave.reason, "stop requested (SIGINT or SIGTERM)");
    free(text);
    hpo_msg_clear(&out);

    char err[HPO_ERR_MAX];
    assert_int_equal(decode_text("{\"v\":1,\"type\":\"leave\",\"worker_id\":\"w1\"}", &out,
                                 err, sizeof err), HPO_PROTO_OK);
    assert_string_equal(out.leave.token, "");
    assert_string_equal(out.leave.reason, "");
    assert_int_equal(decode_text("{\"v\":1,\"type\":\"leave\"}", &out, err, sizeof err),
                     HPO_PROTO_MISSING_FIELD);
    assert_non_null(strstr(err, "leave.worker_id"));
}

/* Each bad field is rejected with its code and named in the message. */
static void test_identity_fields_rejected(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        hpo_proto_status expected;
        const char *field;
    } cases[] = {
        {"{\"v\":1,\"type\":\"register\",\"host\":\"h\",\"pid\":1,\"threads\":1,"
         "\"protocol\":1,\"name\":\"n\",\"kind\":\"gpu\"}", HPO_PROTO_INVALID_VALUE,
         "register.kind"},
        {"{\"v\":1,\"type\":\"register\",\"host\":\"h\",\"pid\":1,\"threads\":1,"
         "\"protocol\":1,\"name\":\"n\",\"kind\":1}", HPO_PROTO_WRONG_TYPE, "register.kind"},
        {"{\"v\":1,\"type\":\"ready\",\"worker_id\":\"w1\",\"token\":7}",
         HPO_PROTO_WRONG_TYPE, "ready.token"},
        {"{\"v\":1,\"type\":\"heartbeat\",\"worker_id\":\"w1\",\"token\":\""
         "00000000000000000000000000000000000000000000000000000000000000000\"}",
         HPO_PROTO_INVALID_VALUE, "heartbeat.token"},
        {"{\"v\":1,\"type\":\"leave\",\"worker_id\":\"w1\",\"reason\":false}",
         HPO_PROTO_WRONG_TYPE, "leave.reason"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[HPO_ERR_MAX] = "";
        hpo_msg out;
        hpo_proto_status st = decode_text(cases[i].text, &out, err, sizeof err);
        if (st != cases[i].expected)
            fail_msg("case %zu: status %s, expected %s (%s)", i, hpo_proto_status_name(st),
                     hpo_proto_status_name(cases[i].expected), err);
        if (strstr(err, cases[i].field) == NULL)
            fail_msg("case %zu: message \"%s\" does not name %s", i, err, cases[i].field);
    }
}

static void test_identity_wire_names(void **state)
{
    (void)state;
    hpo_worker_kind kind;
    assert_string_equal(hpo_worker_kind_name(HPO_WORKER_KIND_CIFAR10), "cifar10");
    assert_string_equal(hpo_worker_kind_name(HPO_WORKER_KIND_OBJECTIVE), "objective");
    assert_null(hpo_worker_kind_name(HPO_WORKER_KIND_UNKNOWN));
    assert_null(hpo_worker_kind_name(HPO_WORKER_KIND_COUNT));
    assert_int_equal(hpo_worker_kind_parse("cifar10", &kind), 0);
    assert_int_equal(kind, HPO_WORKER_KIND_CIFAR10);
    assert_int_equal(hpo_worker_kind_parse("", &kind), -1);
    assert_int_equal(hpo_worker_kind_parse(NULL, &kind), -1);

    assert_string_equal(hpo_proto_status_name(HPO_PROTO_WORKER_ID_TAKEN), "worker_id_taken");
    assert_string_equal(hpo_proto_status_name(HPO_PROTO_WRONG_WORKER_KIND),
                        "wrong_worker_kind");
    assert_string_equal(hpo_proto_status_name(HPO_PROTO_TOO_MANY_REGISTRATIONS),
                        "too_many_registrations");
    assert_string_equal(hpo_msg_type_name(HPO_MSG_LEAVE), "leave");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_kind_token_round_trip),
        cmocka_unit_test(test_worker_messages_carry_token),
        cmocka_unit_test(test_leave_round_trip),
        cmocka_unit_test(test_identity_fields_rejected),
        cmocka_unit_test(test_identity_wire_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
