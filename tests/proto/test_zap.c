/* The ZAP handler and CURVE sockets over real loopback TCP and IPC: which
 * clients get a message through, the role each message carries, and what
 * the handshake monitors report for rejected clients. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "hpo/auth.h"
#include "hpo/curve.h"
#include "hpo/error.h"
#include "hpo/protocol.h"
#include "hpo/transport.h"

/* Generous upper bound for a loopback handshake or message. */
#define ARRIVAL_MS 5000

/* How long a rejected client is given to get a message through anyway,
 * after its handshake was seen to fail. */
#define NOTHING_MS 300

#define MAX_SOCKETS 12

typedef struct {
    void *ctx;
    char dir[64];
    hpo_curve_keypair server, worker, reader, admin, unlisted;
    hpo_authorized_keys *keys;
    hpo_zap_handler *zap;
    void *routers[2];               /* [0] workers over IPC, [1] control over TCP */
    char endpoints[2][256];
    hpo_curve_monitor *monitors[2]; /* handshakes of the routers */
    void *sockets[MAX_SOCKETS];     /* clients, closed by teardown */
    int n_sockets;
} fixture;

enum { WORKERS = 0, CONTROL = 1 };

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void make_pair(hpo_curve_keypair *pair)
{
    char err[HPO_ERR_MAX];
    if (hpo_curve_keypair_generate(pair, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static void *bind_router(fixture *f, int which, const char *endpoint, const char *domain)
{
    char err[HPO_ERR_MAX];
    hpo_curve_settings curve = {.server = true, .own = f->server, .zap_domain = domain};
    void *router = hpo_transport_router_bind_curve(f->ctx, endpoint, &curve, err, sizeof err);
    if (router == NULL)
        fail_msg("binding %s failed: %s", endpoint, err);
    f->routers[which] = router;
    assert_int_equal(hpo_transport_last_endpoint(router, f->endpoints[which],
                                                 sizeof f->endpoints[which], err,
                                                 sizeof err), 0);
    f->monitors[which] = hpo_curve_monitor_start(f->ctx, router, domain, err, sizeof err);
    if (f->monitors[which] == NULL)
        fail_msg("%s", err);
    return router;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    char err[HPO_ERR_MAX];
    if (f == NULL)
        return -1;
    *state = f;
    strcpy(f->dir, "/tmp/hpo-test-zap-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->ctx = zmq_ctx_new();
    make_pair(&f->server);
    make_pair(&f->worker);
    make_pair(&f->reader);
    make_pair(&f->admin);
    make_pair(&f->unlisted);

    char path[128];
    snprintf(path, sizeof path, "%s/authorized_keys", f->dir);
    FILE *file = fopen(path, "w");
    if (file == NULL)
        return -1;
    fprintf(file, "# test clients\n%s worker\n%s read # reader\n%s admin\n",
            f->worker.public_key, f->reader.public_key, f->admin.public_key);
    fclose(file);
    if (hpo_authorized_keys_load(path, &f->keys, err, sizeof err) != 0 ||
        hpo_zap_handler_start(f->ctx, f->keys, &f->zap, err, sizeof err) != 0) {
        print_error("%s\n", err);
        return -1;
    }

    char ipc[128];
    snprintf(ipc, sizeof ipc, "ipc://%s/workers", f->dir);
    bind_router(f, WORKERS, ipc, HPO_ZAP_DOMAIN_WORKERS);
    bind_router(f, CONTROL, "tcp://127.0.0.1:*", HPO_ZAP_DOMAIN_CONTROL);
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    int linger = 0;
    for (int i = 0; i < f->n_sockets; i++) {
        zmq_setsockopt(f->sockets[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(f->sockets[i]);
    }
    for (int i = 0; i < 2; i++) {
        hpo_curve_monitor_stop(&f->monitors[i]);
        if (f->routers[i] != NULL)
            zmq_setsockopt(f->routers[i], ZMQ_LINGER, &linger, sizeof linger);
        hpo_transport_close(&f->routers[i]);
    }
    hpo_zap_handler_stop(&f->zap);
    assert_null(f->zap);
    hpo_authorized_keys_destroy(&f->keys);
    zmq_ctx_term(f->ctx);

    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", f->dir);
    int rc = system(command);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Connects a DEALER to router `which`. key NULL: no CURVE; server_key NULL:
 * the right server key. */
static void *connect_client(fixture *f, int which, const hpo_curve_keypair *key,
                            const char *server_key)
{
    char err[HPO_ERR_MAX];
    hpo_curve_settings curve = {.server = false};
    if (key != NULL) {
        curve.own = *key;
        snprintf(curve.server_key, sizeof curve.server_key, "%s",
                 server_key != NULL ? server_key : f->server.public_key);
    }
    void *sock = hpo_transport_dealer_connect_curve(f->ctx, f->endpoints[which], false,
                                                    key != NULL ? &curve : NULL,
                                                    err, sizeof err);
    if (sock == NULL)
        fail_msg("connecting to %s failed: %s", f->endpoints[which], err);
    assert_true(f->n_sockets < MAX_SOCKETS);
    f->sockets[f->n_sockets++] = sock;
    return sock;
}

static void send_ready(void *sock, const char *worker_id)
{
    char err[HPO_ERR_MAX];
    hpo_msg msg;
    hpo_msg_init(&msg, HPO_MSG_READY);
    snprintf(msg.ready.worker_id, sizeof msg.ready.worker_id, "%s", worker_id);
    /* Queued until the handshake is done, or forever when it fails. */
    if (hpo_transport_send_msg(sock, NULL, &msg, err, sizeof err) != 0)
        fail_msg("queueing ready failed: %s", err);
}

/* Receives the ready that worker_id sent on router `which` and checks the
 * role that the message carries. */
static void expect_ready(fixture *f, int which, const char *worker_id, const char *role)
{
    char err[HPO_ERR_MAX];
    hpo_peer peer;
    hpo_msg msg;
    hpo_recv_result rc = hpo_transport_recv_msg(f->routers[which], &peer, ARRIVAL_MS, &msg,
                                                NULL, err, sizeof err);
    if (rc != HPO_RECV_OK)
        fail_msg("no message from %s (%d): %s", worker_id, (int)rc, err);
    assert_int_equal(msg.type, HPO_MSG_READY);
    assert_string_equal(msg.ready.worker_id, worker_id);
    assert_string_equal(peer.user_id, role);
    hpo_msg_clear(&msg);
}

/* Waits until the router's handshake failures exceed `before`, then checks
 * that no message arrives. Returns the router monitor's last failure. */
static const char *expect_rejected(fixture *f, int which, int before)
{
    int64_t deadline = now_ms() + ARRIVAL_MS;
    while (hpo_curve_monitor_poll(f->monitors[which], false) <= before) {
        if (now_ms() > deadline)
            fail_msg("no failed handshake on router %d within %d ms", which, ARRIVAL_MS);
        usleep(10000);
    }
    char err[HPO_ERR_MAX];
    hpo_peer peer;
    hpo_msg msg;
    hpo_recv_result rc = hpo_transport_recv_msg(f->routers[which], &peer, NOTHING_MS, &msg,
                                                NULL, err, sizeof err);
    if (rc == HPO_RECV_OK)
        fail_msg("a rejected client's %s arrived with role \"%s\"",
                 hpo_msg_type_name(msg.type), peer.user_id);
    assert_int_equal(rc, HPO_RECV_AGAIN);
    return hpo_curve_monitor_last_failure(f->monitors[which]);
}

/* --- tests ------------------------------------------------------------------ */

/* Listed keys get through where their role allows it, and each message
 * carries the role as its User-Id. */
static void test_listed_keys_admitted_with_role(void **state)
{
    fixture *f = *state;
    send_ready(connect_client(f, WORKERS, &f->worker, NULL), "w-worker");
    expect_ready(f, WORKERS, "w-worker", "worker");
    send_ready(connect_client(f, WORKERS, &f->admin, NULL), "w-admin");
    expect_ready(f, WORKERS, "w-admin", "admin");
    send_ready(connect_client(f, CONTROL, &f->reader, NULL), "c-read");
    expect_ready(f, CONTROL, "c-read", "read");
    send_ready(connect_client(f, CONTROL, &f->admin, NULL), "c-admin");
    expect_ready(f, CONTROL, "c-admin", "admin");
    assert_int_equal(hpo_zap_handler_rejected(f->zap), 0);
    assert_int_equal(hpo_curve_monitor_poll(f->monitors[WORKERS], false), 0);
    assert_int_equal(hpo_curve_monitor_poll(f->monitors[CONTROL], false), 0);
}

/* An unlisted key is rejected by the ZAP handler on both endpoints. */
static void test_unlisted_key_rejected(void **state)
{
    fixture *f = *state;
    send_ready(connect_client(f, WORKERS, &f->unlisted, NULL), "w-unlisted");
    const char *why = expect_rejected(f, WORKERS, 0);
    assert_non_null(strstr(why, "ZAP handler rejected the peer's key (status 400)"));
    long rejected = hpo_zap_handler_rejected(f->zap);
    assert_true(rejected >= 1);

    send_ready(connect_client(f, CONTROL, &f->unlisted, NULL), "c-unlisted");
    expect_rejected(f, CONTROL, 0);
    assert_true(hpo_zap_handler_rejected(f->zap) > rejected);

    /* A listed client still gets through afterwards. */
    send_ready(connect_client(f, WORKERS, &f->worker, NULL), "w-worker");
    expect_ready(f, WORKERS, "w-worker", "worker");
}

/* A listed key is rejected on the endpoint its role may not use. */
static void test_role_limited_to_endpoint(void **state)
{
    fixture *f = *state;
    send_ready(connect_client(f, WORKERS, &f->reader, NULL), "w-reader");
    expect_rejected(f, WORKERS, 0);
    send_ready(connect_client(f, CONTROL, &f->worker, NULL), "c-worker");
    expect_rejected(f, CONTROL, 0);
    assert_true(hpo_zap_handler_rejected(f->zap) >= 2);
}

/* A client without CURVE fails the handshake before ZAP is asked. */
static void test_plain_client_rejected(void **state)
{
    fixture *f = *state;
    send_ready(connect_client(f, WORKERS, NULL, NULL), "w-plain");
    const char *why = expect_rejected(f, WORKERS, 0);
    assert_non_null(strstr(why, "the peer does not use CURVE"));
    send_ready(connect_client(f, CONTROL, NULL, NULL), "c-plain");
    expect_rejected(f, CONTROL, 0);
    assert_int_equal(hpo_zap_handler_rejected(f->zap), 0);
}

/* Rejections of different kinds in a row are each seen by the monitor. */
static void test_rejections_in_a_row(void **state)
{
    fixture *f = *state;
    void *unlisted = connect_client(f, CONTROL, &f->unlisted, NULL);
    send_ready(unlisted, "c-unlisted");
    expect_rejected(f, CONTROL, 0);
    int seen = hpo_curve_monitor_poll(f->monitors[CONTROL], false);
    int linger = 0;
    zmq_setsockopt(unlisted, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(unlisted);
    f->sockets[--f->n_sockets] = NULL;
    usleep(300000);
    seen = hpo_curve_monitor_poll(f->monitors[CONTROL], false);
    send_ready(connect_client(f, CONTROL, NULL, NULL), "c-plain");
    const char *why = expect_rejected(f, CONTROL, seen);
    assert_non_null(strstr(why, "the peer does not use CURVE"));
}

/* A listed key with another server's public key cannot complete the
 * handshake: the server cannot decrypt it. */
static void test_wrong_server_key_rejected(void **state)
{
    fixture *f = *state;
    hpo_curve_keypair other;
    make_pair(&other);
    send_ready(connect_client(f, WORKERS, &f->admin, other.public_key), "w-wrong");
    const char *why = expect_rejected(f, WORKERS, 0);
    assert_non_null(strstr(why, "could not be decrypted"));
    assert_int_equal(hpo_zap_handler_rejected(f->zap), 0);
}

/* hpo_transport_request_curve() fails at once with the reason instead of
 * waiting out its timeout. */
static void test_request_reports_rejection(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX];
    hpo_msg query, reply;
    hpo_msg_init(&query, HPO_MSG_QUERY);
    query.query.command = HPO_QUERY_STATUS;
    query.query.args = cJSON_CreateObject();

    hpo_curve_settings curve = {.server = false, .own = f->unlisted};
    snprintf(curve.server_key, sizeof curve.server_key, "%s", f->server.public_key);
    int64_t start = now_ms();
    assert_int_equal(hpo_transport_request_curve(f->ctx, f->endpoints[CONTROL], &curve,
                                                 &query, 20000, &reply, err, sizeof err),
                     HPO_RECV_FAILED);
    assert_true(now_ms() - start < 10000);
    assert_non_null(strstr(err, "the server rejected this key (ZAP status 400)"));

    /* The role check is the server's: a worker key is rejected on the
     * control endpoint in the same way. */
    curve.own = f->worker;
    assert_int_equal(hpo_transport_request_curve(f->ctx, f->endpoints[CONTROL], &curve,
                                                 &query, 20000, &reply, err, sizeof err),
                     HPO_RECV_FAILED);
    assert_non_null(strstr(err, "rejected this key"));

    hpo_curve_keypair other;
    make_pair(&other);
    curve.own = f->admin;
    snprintf(curve.server_key, sizeof curve.server_key, "%s", other.public_key);
    start = now_ms();
    assert_int_equal(hpo_transport_request_curve(f->ctx, f->endpoints[CONTROL], &curve,
                                                 &query, 20000, &reply, err, sizeof err),
                     HPO_RECV_FAILED);
    assert_true(now_ms() - start < 10000);
    assert_non_null(strstr(err, "check that the server's public key is the right one"));
    hpo_msg_clear(&query);
}

/* A context has one ZAP endpoint: a second handler is refused. */
static void test_second_handler_refused(void **state)
{
    fixture *f = *state;
    char err[HPO_ERR_MAX];
    hpo_zap_handler *second = NULL;
    assert_int_equal(hpo_zap_handler_start(f->ctx, f->keys, &second, err, sizeof err), -1);
    assert_null(second);
    assert_non_null(strstr(err, "binding the ZAP handler at inproc://zeromq.zap.01 failed"));

    /* The first handler still replies. */
    send_ready(connect_client(f, CONTROL, &f->reader, NULL), "c-read");
    expect_ready(f, CONTROL, "c-read", "read");
}

int main(void)
{
    if (!zmq_has("curve")) {
        fprintf(stderr, "SKIP: this libzmq has no CURVE support\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_listed_keys_admitted_with_role, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlisted_key_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_role_limited_to_endpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_client_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_server_key_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejections_in_a_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_reports_rejection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_handler_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
