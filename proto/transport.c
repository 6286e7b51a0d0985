/* ZeroMQ sockets and the REQ/REP-style envelope of the hpod protocol. */
#include "hpo/transport.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "hpo/auth.h"
#include "hpo/error.h"

/* ZMTP heartbeats: a TCP peer that sends nothing, not even a heartbeat, for
 * HEARTBEAT_TIMEOUT_MS is treated as gone, so a coordinator that vanished
 * without closing its connections is noticed and reconnected to. */
#define HEARTBEAT_IVL_MS 1000
#define HEARTBEAT_TIMEOUT_MS 5000
#define RECONNECT_IVL_MS 100
#define RECONNECT_IVL_MAX_MS 2000

/* Queue limits in messages, per peer and direction. When a peer's send
 * queue is full, a send fails (the sends never block). When its receive
 * queue is full, libzmq stops reading from that connection until the
 * program catches up. One flooding peer thus holds at most RECV_HWM
 * frames of up to HPO_MSG_MAX_BYTES in this process, plus the frame being
 * read and the kernel's socket buffers. A protocol peer has only a few
 * messages in flight. */
#define SEND_HWM 1000
#define RECV_HWM 100

static int set_int(void *sock, int option, int value, const char *name,
                   char *err, size_t errlen)
{
    if (zmq_setsockopt(sock, option, &value, sizeof value) != 0)
        return hpo_error(err, errlen, "setting %s to %d failed: %s",
                         name, value, zmq_strerror(errno));
    return 0;
}

/* Creates a socket with the options that every hpod socket shares. */
static void *socket_create(void *ctx, int kind, char *err, size_t errlen)
{
    void *sock = zmq_socket(ctx, kind);
    if (sock == NULL) {
        hpo_error(err, errlen, "creating a ZeroMQ socket failed: %s", zmq_strerror(errno));
        return NULL;
    }

    int64_t max_size = HPO_MSG_MAX_BYTES;
    if (zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max_size, sizeof max_size) != 0) {
        hpo_error(err, errlen, "setting ZMQ_MAXMSGSIZE failed: %s", zmq_strerror(errno));
        zmq_close(sock);
        return NULL;
    }
    if (set_int(sock, ZMQ_LINGER, HPO_TRANSPORT_LINGER_MS, "ZMQ_LINGER", err, errlen) ||
        set_int(sock, ZMQ_SNDHWM, SEND_HWM, "ZMQ_SNDHWM", err, errlen) ||
        set_int(sock, ZMQ_RCVHWM, RECV_HWM, "ZMQ_RCVHWM", err, errlen) ||
        set_int(sock, ZMQ_HEARTBEAT_IVL, HEARTBEAT_IVL_MS, "ZMQ_HEARTBEAT_IVL", err, errlen) ||
        set_int(sock, ZMQ_HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS, "ZMQ_HEARTBEAT_TIMEOUT",
                err, errlen)) {
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

void *hpo_transport_router_bind(void *ctx, const char *endpoint,
                                char *err, size_t errlen)
{
    return hpo_transport_router_bind_curve(ctx, endpoint, NULL, err, errlen);
}

void *hpo_transport_router_bind_curve(void *ctx, const char *endpoint,
                                      const hpo_curve_settings *curve,
                                      char *err, size_t errlen)
{
    void *sock = socket_create(ctx, ZMQ_ROUTER, err, errlen);
    if (sock == NULL)
        return NULL;

    if (set_int(sock, ZMQ_ROUTER_MANDATORY, 1, "ZMQ_ROUTER_MANDATORY", err, errlen) != 0 ||
        (curve != NULL && hpo_curve_settings_apply(sock, curve, err, errlen) != 0)) {
        zmq_close(sock);
        return NULL;
    }
    if (zmq_bind(sock, endpoint) != 0) {
        hpo_error(err, errlen, "binding %s failed: %s; check the address and that no "
                  "other program uses it", endpoint, zmq_strerror(errno));
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

void *hpo_transport_dealer_connect(void *ctx, const char *endpoint, bool immediate,
                                   char *err, size_t errlen)
{
    return hpo_transport_dealer_connect_curve(ctx, endpoint, immediate, NULL, err, errlen);
}

void *hpo_transport_dealer_connect_curve(void *ctx, const char *endpoint, bool immediate,
                                         const hpo_curve_settings *curve,
                                         char *err, size_t errlen)
{
    void *sock = socket_create(ctx, ZMQ_DEALER, err, errlen);
    if (sock == NULL)
        return NULL;

    if (set_int(sock, ZMQ_RECONNECT_IVL, RECONNECT_IVL_MS, "ZMQ_RECONNECT_IVL", err, errlen) ||
        set_int(sock, ZMQ_RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS, "ZMQ_RECONNECT_IVL_MAX",
                err, errlen) ||
        set_int(sock, ZMQ_IMMEDIATE, immediate ? 1 : 0, "ZMQ_IMMEDIATE", err, errlen) ||
        (curve != NULL && hpo_curve_settings_apply(sock, curve, err, errlen) != 0)) {
        zmq_close(sock);
        return NULL;
    }
    if (zmq_connect(sock, endpoint) != 0) {
        hpo_error(err, errlen, "connecting to %s failed: %s; expected tcp://HOST:PORT "
                  "or ipc://PATH", endpoint, zmq_strerror(errno));
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

void hpo_transport_close(void **sock)
{
    if (sock == NULL || *sock == NULL)
        return;
    zmq_close(*sock);
    *sock = NULL;
}

int hpo_transport_last_endpoint(void *sock, char *buf, size_t size,
                                char *err, size_t errlen)
{
    size_t len = size;
    if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, buf, &len) != 0)
        return hpo_error(err, errlen, "reading ZMQ_LAST_ENDPOINT failed: %s",
                         zmq_strerror(errno));
    return 0;
}

int hpo_transport_send(void *sock, const hpo_peer *peer, const void *data,
                       size_t size, char *err, size_t errlen)
{
    /* The first frame decides: libzmq checks the peer and the high-water
     * mark when a message starts and delivers multipart messages whole, so
     * the later frames do not fail for a full queue or a missing peer. */
    if (peer != NULL && zmq_send(sock, peer->id, peer->size, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        char id[2 * sizeof peer->id + 3];
        return hpo_error(err, errlen, "sending to peer %s failed: %s",
                         hpo_peer_format(peer, id, sizeof id), zmq_strerror(errno));
    }
    if (zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(sock, data, size, ZMQ_DONTWAIT) < 0) {
        if (errno == EAGAIN)
            return hpo_error(err, errlen, "sending failed: no connection to the peer "
                             "or its queue is full");
        return hpo_error(err, errlen, "sending failed: %s", zmq_strerror(errno));
    }
    return 0;
}

int hpo_transport_send_msg(void *sock, const hpo_peer *peer, const hpo_msg *msg,
                           char *err, size_t errlen)
{
    char *text = NULL;
    size_t size = 0;
    if (hpo_msg_encode(msg, &text, &size, err, errlen) != 0)
        return -1;
    int rc = hpo_transport_send(sock, peer, text, size, err, errlen);
    free(text);
    return rc;
}

/* Discards the remaining frames of a multipart message. */
static void drain_frames(void *sock)
{
    int more = 1;
    size_t len = sizeof more;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &len) == 0 && more) {
        zmq_msg_t frame;
        zmq_msg_init(&frame);
        int rc = zmq_msg_recv(&frame, sock, ZMQ_DONTWAIT);
        zmq_msg_close(&frame);
        if (rc < 0)
            return;
        len = sizeof more;
    }
}

static bool has_more(void *sock)
{
    int more = 0;
    size_t len = sizeof more;
    return zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &len) == 0 && more;
}

/* Waits for the socket to become readable. Returns 1 when readable, 0 on
 * timeout or signal, -1 on failure. */
static int wait_readable(void *sock, int timeout_ms, char *err, size_t errlen)
{
    zmq_pollitem_t item = {.socket = sock, .events = ZMQ_POLLIN};
    int rc = zmq_poll(&item, 1, timeout_ms);
    if (rc < 0) {
        if (errno == EINTR)
            return 0;
        return hpo_error(err, errlen, "polling failed: %s", zmq_strerror(errno));
    }
    return rc > 0 && (item.revents & ZMQ_POLLIN) ? 1 : 0;
}

/* Receives one frame. Returns 0, -2 when nothing is waiting, or -1 on
 * failure. */
static int recv_frame(void *sock, zmq_msg_t *frame, char *err, size_t errlen)
{
    if (zmq_msg_recv(frame, sock, ZMQ_DONTWAIT) >= 0)
        return 0;
    if (errno == EAGAIN || errno == EINTR)
        return -2;
    return hpo_error(err, errlen, "receiving failed: %s", zmq_strerror(errno));
}

static hpo_recv_result envelope_invalid(void *sock, hpo_proto_status *status,
                                        char *err, size_t errlen, const char *what)
{
    drain_frames(sock);
    if (status != NULL)
        *status = HPO_PROTO_INVALID_ENVELOPE;
    hpo_error(err, errlen, "envelope: %s; expected an empty delimiter frame "
              "followed by one JSON frame", what);
    return HPO_RECV_INVALID;
}

hpo_recv_result hpo_transport_recv_msg(void *sock, hpo_peer *peer, int timeout_ms,
                                       hpo_msg *msg, hpo_proto_status *status,
                                       char *err, size_t errlen)
{
    memset(msg, 0, sizeof *msg);
    if (status != NULL)
        *status = HPO_PROTO_OK;

    int ready = wait_readable(sock, timeout_ms, err, errlen);
    if (ready < 0)
        return HPO_RECV_FAILED;
    if (ready == 0)
        return HPO_RECV_AGAIN;

    zmq_msg_t frame;
    zmq_msg_init(&frame);
    int rc = recv_frame(sock, &frame, err, errlen);
    if (rc != 0) {
        zmq_msg_close(&frame);
        return rc == -2 ? HPO_RECV_AGAIN : HPO_RECV_FAILED;
    }

    /* 1. On a ROUTER socket the first frame is the sender's routing id. */
    if (peer != NULL) {
        peer->user_id[0] = '\0';
        peer->public_key[0] = '\0';
        peer->address[0] = '\0';
        size_t size = zmq_msg_size(&frame);
        peer->size = size < sizeof peer->id ? size : sizeof peer->id;
        memcpy(peer->id, zmq_msg_data(&frame), peer->size);
        if (!has_more(sock)) {
            zmq_msg_close(&frame);
            return envelope_invalid(sock, status, err, errlen, "only a routing id");
        }
        if (recv_frame(sock, &frame, err, errlen) != 0) {
            zmq_msg_close(&frame);
            return HPO_RECV_FAILED;
        }
    }

    /* 2. The empty delimiter, then exactly one body frame. */
    if (zmq_msg_size(&frame) != 0 || !has_more(sock)) {
        zmq_msg_close(&frame);
        return envelope_invalid(sock, status, err, errlen, "no empty delimiter frame");
    }
    if (recv_frame(sock, &frame, err, errlen) != 0) {
        zmq_msg_close(&frame);
        return HPO_RECV_FAILED;
    }
    if (has_more(sock)) {
        zmq_msg_close(&frame);
        return envelope_invalid(sock, status, err, errlen, "more than one body frame");
    }

    /* The ROUTER makes the routing id frame itself; the body frame carries
     * the connection's metadata, the ZAP User-Id included. */
    if (peer != NULL) {
        const char *user_id = zmq_msg_gets(&frame, "User-Id");
        const char *key = zmq_msg_gets(&frame, HPO_ZAP_PUBLIC_KEY_PROPERTY);
        const char *address = zmq_msg_gets(&frame, "Peer-Address");
        snprintf(peer->user_id, sizeof peer->user_id, "%s", user_id != NULL ? user_id : "");
        snprintf(peer->public_key, sizeof peer->public_key, "%s", key != NULL ? key : "");
        snprintf(peer->address, sizeof peer->address, "%s", address != NULL ? address : "");
    }

    /* 3. The body. */
    hpo_proto_status st = hpo_msg_decode(zmq_msg_data(&frame), zmq_msg_size(&frame),
                                         msg, err, errlen);
    zmq_msg_close(&frame);
    if (status != NULL)
        *status = st;
    return st == HPO_PROTO_OK ? HPO_RECV_OK : HPO_RECV_INVALID;
}

/* Waits up to timeout_ms for the answer on a client socket. With a
 * monitor, waits in short steps and returns HPO_RECV_AGAIN early once a
 * handshake has failed, because libzmq retries a failed handshake without
 * end. */
static hpo_recv_result recv_watching(void *sock, hpo_curve_monitor *monitor,
                                     int timeout_ms, hpo_msg *reply,
                                     char *err, size_t errlen)
{
    if (monitor == NULL)
        return hpo_transport_recv_msg(sock, NULL, timeout_ms, reply, NULL, err, errlen);
    for (int waited = 0; waited < timeout_ms;) {
        int step = timeout_ms - waited < 100 ? timeout_ms - waited : 100;
        hpo_recv_result result = hpo_transport_recv_msg(sock, NULL, step, reply, NULL,
                                                        err, errlen);
        if (result != HPO_RECV_AGAIN || hpo_curve_monitor_poll(monitor, false) > 0)
            return result;
        waited += step;
    }
    return HPO_RECV_AGAIN;
}

hpo_recv_result hpo_transport_request(void *ctx, const char *endpoint,
                                      const hpo_msg *request, int timeout_ms,
                                      hpo_msg *reply, char *err, size_t errlen)
{
    return hpo_transport_request_curve(ctx, endpoint, NULL, request, timeout_ms,
                                       reply, err, errlen);
}

hpo_recv_result hpo_transport_request_curve(void *ctx, const char *endpoint,
                                            const hpo_curve_settings *curve,
                                            const hpo_msg *request, int timeout_ms,
                                            hpo_msg *reply, char *err, size_t errlen)
{
    memset(reply, 0, sizeof *reply);
    void *sock = hpo_transport_dealer_connect_curve(ctx, endpoint, false, curve,
                                                    err, errlen);
    if (sock == NULL)
        return HPO_RECV_FAILED;
    /* Without the monitor a rejected handshake looks like a timeout. */
    hpo_curve_monitor *monitor = hpo_curve_monitor_start(ctx, sock, endpoint, err, errlen);

    hpo_recv_result result = HPO_RECV_FAILED;
    if (monitor != NULL && hpo_transport_send_msg(sock, NULL, request, err, errlen) == 0) {
        result = recv_watching(sock, monitor, timeout_ms, reply, err, errlen);
        if (result == HPO_RECV_AGAIN && hpo_curve_monitor_poll(monitor, false) > 0) {
            result = HPO_RECV_FAILED;
            hpo_error(err, errlen, "no answer from %s: %s", endpoint,
                      hpo_curve_monitor_last_failure(monitor));
        } else if (result == HPO_RECV_AGAIN) {
            hpo_error(err, errlen, "no answer from %s within %d ms; check that hpod "
                      "is running and listens there", endpoint, timeout_ms);
        }
    }
    hpo_curve_monitor_stop(&monitor);

    /* Drop an unsent request instead of waiting for a peer that is not there. */
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    hpo_transport_close(&sock);
    return result;
}

const char *hpo_peer_format(const hpo_peer *peer, char *buf, size_t size)
{
    if (size == 0)
        return buf;

    bool printable = peer->size > 0;
    for (size_t i = 0; i < peer->size; i++) {
        if (peer->id[i] < 0x21 || peer->id[i] > 0x7e)
            printable = false;
    }

    if (printable) {
        snprintf(buf, size, "%.*s", (int)peer->size, (const char *)peer->id);
        return buf;
    }

    size_t pos = (size_t)snprintf(buf, size, "0x");
    for (size_t i = 0; i < peer->size && pos + 2 < size; i++)
        pos += (size_t)snprintf(buf + pos, size - pos, "%02x", peer->id[i]);
    return buf;
}
