/* Transport over real loopback sockets: the ROUTER/DEALER exchange over tcp
 * and ipc, envelope checks, the size limit and client requests. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "hpo/error.h"
#include "hpo/protocol.h"
#include "hpo/transport.h"

/* Generous upper bound for a loopback message to arrive. */
#define ARRIVAL_MS 3000

#define MAX_SOCKETS 8

/* Every socket a test opens is listed here and closed by teardown(), so a
 * failed assertion cannot leave zmq_ctx_term() waiting for it forever. */
typedef struct {
    void *ctx;
    void *router;
    char endpoint[256];
    char dir[64]; /* temporary folder for ipc endpoints */
    void *sockets[MAX_SOCKETS];
    int n_sockets;
} fixture;

static void *track(fixture *f, void *sock)
{
    assert_non_null(sock);
    assert_true(f->n_sockets < MAX_SOCKETS);
    f->sockets[f->n_sockets++] = sock;
    return sock;
}

static void *raw_dealer(fixture *f)
{
    void *sock = track(f, zmq_socket(f->ctx, ZMQ_DEALER));
    int reconnect_ms = 50;
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &reconnect_ms, sizeof reconnect_ms);
    assert_int_equal(zmq_connect(sock, f->endpoint), 0);
    return sock;
}

static int setup_router(void **state, bool ipc)
{
    fixture *f = calloc(1, sizeof *f);
    char err[HPO_ERR_MAX];
    if (f == NULL)
        return -1;
    f->ctx = zmq_ctx_new();
    snprintf(f->dir, sizeof f->dir, "/tmp/hpo-transport-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;

    const char *endpoint = "tcp://127.0.0.1:*";
    char ipc_endpoint[128];
    if (ipc) {
        snprintf(ipc_endpoint, sizeof ipc_endpoint, "ipc://%s/workers.sock", f->dir);
        endpoint = ipc_endpoint;
    }

    f->router = hpo_transport_router_bind(f->ctx, endpoint, err, sizeof err);
    if (f->router == NULL) {
        print_error("bind failed: %s\n", err);
        return -1;
    }
    if (hpo_transport_last_endpoint(f->router, f->endpoint, sizeof f->endpoint,
                                    err, sizeof err) != 0)
        return -1;
    *state = f;
    return 0;
}

static int setup_tcp(void **state)
{
    return setup_router(state, false);
}

static int setup_ipc(void **state)
{
    return setup_router(state, true);
}

static int teardown(void **state)
{
    fixture *f = *state;
    int linger = 0;
    for (int i = 0; i < f->n_sockets; i++) {
        zmq_setsockopt(f->sockets[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(f->sockets[i]);
    }
    zmq_setsockopt(f->router, ZMQ_LINGER, &linger, sizeof linger);
    hpo_transport_close(&f->router);
    zmq_ctx_term(f->ctx);

    char path[128];
    snprintf(path, sizeof path, "%s/workers.sock", f->dir);
    unlink(path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void *connect_worker(fixture *f)
{
    char err[HPO_ERR_MAX];
    void *dealer = hpo_transport_dealer_connect(f->ctx, f->endpoint, false, err, sizeof err);
    if (dealer == NULL)
        fail_msg("connect to %s failed: %s", f->endpoint, err);
    return track(f, dealer);
}

/* A register and its registered reply: the ROUTER side addresses the reply
 * by the sender's routing id. */
static void exchange_register(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX];
    void *dealer = connect_worker(f);

    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_REGISTER);
    snprintf(msg.reg.host, sizeof msg.reg.host, "loopback");
    msg.reg.pid = getpid();
    msg.reg.threads = 2;
    msg.reg.protocol = HPO_PROTO_VERSION;
    snprintf(msg.reg.name, sizeof msg.reg.name, "test-worker");
    assert_int_equal(hpo_transport_send_msg(dealer, NULL, &msg, err, sizeof err), 0);

    hpo_peer peer;
    hpo_msg in;
    hpo_proto_status st;
    assert_int_equal(hpo_transport_recv_msg(f->router, &peer, ARRIVAL_MS, &in, &st,
                                            err, sizeof err), HPO_RECV_OK);
    assert_int_equal(st, HPO_PROTO_OK);
    assert_int_equal(in.type, HPO_MSG_REGISTER);
    assert_string_equal(in.reg.name, "test-worker");
    assert_int_equal(in.reg.pid, getpid());
    assert_true(peer.size > 0);
    hpo_msg_clear(&in);

    hpo_msg_init(&msg, HPO_MSG_REGISTERED);
    snprintf(msg.registered.worker_id, sizeof msg.registered.worker_id, "w1");
    msg.registered.heartbeat_ms = 1000;
    assert_int_equal(hpo_transport_send_msg(f->router, &peer, &msg, err, sizeof err), 0);

    assert_int_equal(hpo_transport_recv_msg(dealer, NULL, ARRIVAL_MS, &in, &st,
                                            err, sizeof err), HPO_RECV_OK);
    assert_int_equal(in.type, HPO_MSG_REGISTERED);
    assert_string_equal(in.registered.worker_id, "w1");
    hpo_msg_clear(&in);

    /* Nothing else is waiting on either side. */
    assert_int_equal(hpo_transport_recv_msg(dealer, NULL, 0, &in, &st, err, sizeof err),
                     HPO_RECV_AGAIN);
    assert_int_equal(hpo_transport_recv_msg(f->router, &peer, 0, &in, &st, err, sizeof err),
                     HPO_RECV_AGAIN);
}

/* Two workers: each reply reaches only the worker it is addressed to. */
static void test_exchange_over_tcp(void **state)
{
    exchange_register(state);
}

static void test_exchange_over_ipc(void **state)
{
    exchange_register(state);
}

static void test_router_addresses_each_peer(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX];
    void *dealers[2] = {connect_worker(f), connect_worker(f)};
    hpo_peer peers[2];

    for (int i = 0; i < 2; i++) {
        hpo_msg msg;
        hpo_msg_init(&msg, HPO_MSG_READY);
        snprintf(msg.ready.worker_id, sizeof msg.ready.worker_id, "w%d", i);
        assert_int_equal(hpo_transport_send_msg(dealers[i], NULL, &msg, err, sizeof err), 0);

        hpo_msg in;
        assert_int_equal(hpo_transport_recv_msg(f->router, &peers[i], ARRIVAL_MS, &in, NULL,
                                                err, sizeof err), HPO_RECV_OK);
        char expected[8];
        snprintf(expected, sizeof expected, "w%d", i);
        assert_string_equal(in.ready.worker_id, expected);
    }

    for (int i = 0; i < 2; i++) {
        hpo_msg msg;
        hpo_msg_init(&msg, HPO_MSG_NO_WORK);
        msg.no_work.retry_ms = 100 + i;
        assert_int_equal(hpo_transport_send_msg(f->router, &peers[i], &msg, err, sizeof err), 0);
    }
    for (int i = 0; i < 2; i++) {
        hpo_msg in;
        assert_int_equal(hpo_transport_recv_msg(dealers[i], NULL, ARRIVAL_MS, &in, NULL,
                                                err, sizeof err), HPO_RECV_OK);
        assert_int_equal(in.type, HPO_MSG_NO_WORK);
        assert_int_equal(in.no_work.retry_ms, 100 + i);
    }
}

/* A frame without the empty delimiter is reported, with its sender, and
 * the socket stays usable for the next message. */
static void test_bad_envelope_reported(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX];
    void *raw = raw_dealer(f);

    const char *body = "{\"v\":1,\"type\":\"study_done\"}";
    assert_int_equal(zmq_send(raw, body, strlen(body), 0), (int)strlen(body));

    hpo_peer peer;
    hpo_msg in;
    hpo_proto_status st;
    assert_int_equal(hpo_transport_recv_msg(f->router, &peer, ARRIVAL_MS, &in, &st,
                                            err, sizeof err), HPO_RECV_INVALID);
    assert_int_equal(st, HPO_PROTO_INVALID_ENVELOPE);
    assert_non_null(strstr(err, "delimiter"));
    assert_true(peer.size > 0);

    /* Three body frames: rejected, and all of them consumed. */
    zmq_send(raw, "", 0, ZMQ_SNDMORE);
    zmq_send(raw, body, strlen(body), ZMQ_SNDMORE);
    zmq_send(raw, body, strlen(body), ZMQ_SNDMORE);
    zmq_send(raw, body, strlen(body), 0);
    assert_int_equal(hpo_transport_recv_msg(f->router, &peer, ARRIVAL_MS, &in, &st,
                                            err, sizeof err), HPO_RECV_INVALID);
    assert_int_equal(st, HPO_PROTO_INVALID_ENVELOPE);
    assert_non_null(strstr(err, "more than one body frame"));

    /* A correct message from the same peer after the bad ones. */
    zmq_send(raw, "", 0, ZMQ_SNDMORE);
    zmq_send(raw, body, strlen(body), 0);
    assert_int_equal(hpo_transport_recv_msg(f->router, &peer, ARRIVAL_MS, &in, &st,
                                            err, sizeof err), HPO_RECV_OK);
    assert_int_equal(in.type, HPO_MSG_STUDY_DONE);
}

/* Garbage in the body: the receiver gets the decode status and the
 * sender's id, replies with an error, and the sender reads the code. */
static void test_invalid_body_answered(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX];
    void *dealer = connect_worker(f);

    const char *garbage = "{\"v\":1,\"type\":\"ready\"";
    assert_int_equal(hpo_transport_send(dealer, NULL, garbage, strlen(garbage),
                                        err, sizeof err), 0);

    hpo_peer peer;
    hpo_msg in;
    hpo_proto_status st;
    assert_int_equal(hpo_transport_recv_msg(f->router, &peer, ARRIVAL_MS, &in, &st,
                                            err, sizeof err), HPO_RECV_INVALID);
    assert_int_equal(st, HPO_PROTO_INVALID_JSON);

    hpo_msg reply;
    hpo_msg_error_init(&reply, st, "%s", err);
    assert_int_equal(hpo_transport_send_msg(f->router, &peer, &reply, err, sizeof err), 0);
    assert_int_equal(hpo_transport_recv_msg(dealer, NULL, ARRIVAL_MS, &in, &st,
                                            err, sizeof err), HPO_RECV_OK);
    assert_int_equal(in.type, HPO_MSG_ERROR);
    assert_int_equal(in.error.code, HPO_PROTO_INVALID_JSON);
    assert_non_null(strstr(in.error.message, "invalid JSON"));
}

/* A frame over ZMQ_MAXMSGSIZE never reaches the receiver: libzmq drops the
 * connection instead. The sender reconnects and later messages arrive. */
static void test_oversized_frame_dropped(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX];
    void *raw = raw_dealer(f);

    size_t size = 2 * HPO_MSG_MAX_BYTES;
    char *big = malloc(size);
    assert_non_null(big);
    memset(big, ' ', size);
    big[0] = '{';
    big[size - 1] = '}';
    zmq_send(raw, "", 0, ZMQ_SNDMORE);
    assert_int_equal(zmq_send(raw, big, size, 0), (int)size);
    free(big);

    hpo_peer peer;
    hpo_msg in;
    assert_int_equal(hpo_transport_recv_msg(f->router, &peer, 500, &in, NULL,
                                            err, sizeof err), HPO_RECV_AGAIN);

    /* The router still serves: a small message, sent until the sender's
     * reconnection completes, gets through. */
    const char *body = "{\"v\":1,\"type\":\"study_done\"}";
    hpo_recv_result result = HPO_RECV_AGAIN;
    for (int attempt = 0; attempt < 30 && result == HPO_RECV_AGAIN; attempt++) {
        zmq_send(raw, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(raw, body, strlen(body), ZMQ_DONTWAIT);
        result = hpo_transport_recv_msg(f->router, &peer, 100, &in, NULL, err, sizeof err);
    }
    assert_int_equal(result, HPO_RECV_OK);
    assert_int_equal(in.type, HPO_MSG_STUDY_DONE);
}

/* With ZMQ_ROUTER_MANDATORY, sending to a peer that never connected fails
 * at once instead of vanishing. */
static void test_send_to_unknown_peer_fails(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX] = "";
    hpo_peer ghost = {.id = "ghost", .size = 5};
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_SHUTDOWN);
    assert_int_equal(hpo_transport_send_msg(f->router, &ghost, &msg, err, sizeof err), -1);
    assert_non_null(strstr(err, "ghost"));
}

/* A worker socket with `immediate` set refuses to queue while no
 * coordinator is there, without blocking. */
static void test_immediate_dealer_refuses(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX] = "";
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "ipc://%s/nobody.sock", f->dir);
    void *dealer = track(f, hpo_transport_dealer_connect(f->ctx, endpoint, true,
                                                         err, sizeof err));

    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_STUDY_DONE);
    assert_int_equal(hpo_transport_send_msg(dealer, NULL, &msg, err, sizeof err), -1);
    assert_non_null(strstr(err, "no connection"));
}

static void test_bad_endpoints_named(void **state)
{
    (void)state;
    char err[HPO_ERR_MAX] = "";
    void *ctx = zmq_ctx_new();
    assert_null(hpo_transport_router_bind(ctx, "carrier-pigeon://roof", err, sizeof err));
    assert_non_null(strstr(err, "carrier-pigeon://roof"));
    assert_null(hpo_transport_dealer_connect(ctx, "tcp://", false, err, sizeof err));
    assert_non_null(strstr(err, "tcp://"));
    zmq_ctx_term(ctx);
}

typedef struct {
    void *router;
    int answered;
} control_server;

/* Answers one query with a reply carrying the command's name. */
static void *serve_one_query(void *arg)
{
    control_server *server = arg;
    char err[HPO_ERR_MAX];
    hpo_peer peer;
    hpo_msg in;
    if (hpo_transport_recv_msg(server->router, &peer, ARRIVAL_MS, &in, NULL,
                               err, sizeof err) != HPO_RECV_OK || in.type != HPO_MSG_QUERY)
        return NULL;

    hpo_msg reply;
    hpo_msg_init(&reply, HPO_MSG_REPLY);
    reply.reply.command = in.query.command;
    reply.reply.data = cJSON_CreateObject();
    cJSON_AddStringToObject(reply.reply.data, "echo",
                            hpo_query_command_name(in.query.command));
    cJSON_AddItemToObject(reply.reply.data, "args", cJSON_Duplicate(in.query.args, 1));
    if (hpo_transport_send_msg(server->router, &peer, &reply, err, sizeof err) == 0)
        server->answered = 1;
    hpo_msg_clear(&reply);
    hpo_msg_clear(&in);
    return NULL;
}

static void test_request_gets_reply(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX] = "";
    control_server server = {.router = f->router};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, serve_one_query, &server), 0);

    hpo_msg query, reply;
    hpo_msg_init(&query, HPO_MSG_QUERY);
    query.query.command = HPO_QUERY_SUMMARY;
    query.query.args = cJSON_Parse("{\"top\": 3}");
    hpo_recv_result result = hpo_transport_request(f->ctx, f->endpoint, &query, ARRIVAL_MS,
                                                   &reply, err, sizeof err);
    pthread_join(thread, NULL);
    hpo_msg_clear(&query);

    assert_int_equal(result, HPO_RECV_OK);
    assert_int_equal(server.answered, 1);
    assert_int_equal(reply.type, HPO_MSG_REPLY);
    assert_int_equal(reply.reply.command, HPO_QUERY_SUMMARY);
    const cJSON *echo = cJSON_GetObjectItemCaseSensitive(reply.reply.data, "echo");
    assert_string_equal(cJSON_GetStringValue(echo), "summary");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(reply.reply.data, "args");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(args, "top")->valuedouble, 3);
    hpo_msg_clear(&reply);
}

/* A REQ client sends and receives the bare body; the ROUTER side sees the
 * same envelope as from a DEALER. */
static void test_req_client_served(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX] = "";
    void *req = track(f, zmq_socket(f->ctx, ZMQ_REQ));
    assert_int_equal(zmq_connect(req, f->endpoint), 0);

    const char *query = "{\"v\":1,\"type\":\"query\",\"command\":\"best\"}";
    assert_int_equal(zmq_send(req, query, strlen(query), 0), (int)strlen(query));

    hpo_peer peer;
    hpo_msg in;
    assert_int_equal(hpo_transport_recv_msg(f->router, &peer, ARRIVAL_MS, &in, NULL,
                                            err, sizeof err), HPO_RECV_OK);
    assert_int_equal(in.type, HPO_MSG_QUERY);
    assert_int_equal(in.query.command, HPO_QUERY_BEST);
    hpo_msg_clear(&in);

    hpo_msg reply;
    hpo_msg_init(&reply, HPO_MSG_REPLY);
    reply.reply.command = HPO_QUERY_BEST;
    reply.reply.data = cJSON_CreateNull();
    assert_int_equal(hpo_transport_send_msg(f->router, &peer, &reply, err, sizeof err), 0);
    hpo_msg_clear(&reply);

    char body[256];
    int timeout = ARRIVAL_MS;
    zmq_setsockopt(req, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    int n = zmq_recv(req, body, sizeof body, 0);
    assert_true(n > 0);
    assert_int_equal(hpo_msg_decode(body, (size_t)n, &in, err, sizeof err), HPO_PROTO_OK);
    assert_int_equal(in.type, HPO_MSG_REPLY);
    assert_true(cJSON_IsNull(in.reply.data));
    hpo_msg_clear(&in);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* No coordinator: the request times out after about timeout_ms, and the
 * message names the endpoint. */
static void test_request_times_out(void **state)
{
    fixture *f = *state;
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "ipc://%s/nobody.sock", f->dir);

    char err[HPO_ERR_MAX] = "";
    hpo_msg query, reply;
    hpo_msg_init(&query, HPO_MSG_QUERY);
    query.query.command = HPO_QUERY_STATUS;

    double start = now_seconds();
    hpo_recv_result result = hpo_transport_request(f->ctx, endpoint, &query, 300,
                                                   &reply, err, sizeof err);
    double elapsed = now_seconds() - start;
    assert_int_equal(result, HPO_RECV_AGAIN);
    assert_non_null(strstr(err, "nobody.sock"));
    assert_true(elapsed >= 0.25);
    assert_true(elapsed < 2.0);
}

static void test_peer_format(void **state)
{
    (void)state;
    char buf[64];
    hpo_peer printable = {.id = "worker-1", .size = 8};
    assert_string_equal(hpo_peer_format(&printable, buf, sizeof buf), "worker-1");
    hpo_peer binary = {.id = {0x00, 0x80, 0x00, 0x41, 0xa7}, .size = 5};
    assert_string_equal(hpo_peer_format(&binary, buf, sizeof buf), "0x00800041a7");
    assert_string_equal(hpo_peer_format(&binary, buf, 7), "0x0080");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exchange_over_tcp, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(test_exchange_over_ipc, setup_ipc, teardown),
        cmocka_unit_test_setup_teardown(test_router_addresses_each_peer, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(test_bad_envelope_reported, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_body_answered, setup_ipc, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_frame_dropped, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(test_send_to_unknown_peer_fails, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(test_immediate_dealer_refuses, setup_ipc, teardown),
        cmocka_unit_test(test_bad_endpoints_named),
        cmocka_unit_test_setup_teardown(test_request_gets_reply, setup_tcp, teardown),
        cmocka_unit_test_setup_teardown(test_request_times_out, setup_ipc, teardown),
        cmocka_unit_test_setup_teardown(test_req_client_served, setup_tcp, teardown),
        cmocka_unit_test(test_peer_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
