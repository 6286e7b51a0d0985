/* Handshake monitor: reads a socket's zmq_socket_monitor() events and
 * turns failed CURVE handshakes into log lines and error messages. */
#include "hpo/curve.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "hpo/error.h"
#include "hpo/log.h"

/* Log lines per 10 s for failed handshakes; a peer that retries with a bad
 * key fails every reconnect interval. */
#define LOG_BURST 5

struct hpo_curve_monitor {
    void *pair;          /* receives the events; owned */
    bool server;         /* the watched socket is a CURVE server */
    bool curve;          /* the watched socket uses CURVE */
    char label[256];
    int failures;
    char last[256];
};

hpo_curve_monitor *hpo_curve_monitor_start(void *ctx, void *sock, const char *label,
                                           char *err, size_t errlen)
{
    hpo_curve_monitor *m = calloc(1, sizeof *m);
    if (m == NULL) {
        hpo_error(err, errlen, "out of memory starting a handshake monitor");
        return NULL;
    }
    snprintf(m->label, sizeof m->label, "%s", label);
    int server = 0, mechanism = ZMQ_NULL;
    size_t size = sizeof server;
    if (zmq_getsockopt(sock, ZMQ_CURVE_SERVER, &server, &size) == 0)
        m->server = server != 0;
    size = sizeof mechanism;
    if (zmq_getsockopt(sock, ZMQ_MECHANISM, &mechanism, &size) == 0)
        m->curve = mechanism == ZMQ_CURVE;

    /* A socket's address can be reused by the next socket while the old
     * one's monitor endpoint is still bound, so a counter names them. */
    static atomic_uint next_id;
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://hpo-monitor-%u",
             atomic_fetch_add(&next_id, 1));
    int events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (zmq_socket_monitor(sock, endpoint, events) != 0) {
        hpo_error(err, errlen, "monitoring the %s failed: %s", label, zmq_strerror(errno));
        free(m);
        return NULL;
    }
    m->pair = zmq_socket(ctx, ZMQ_PAIR);
    int linger = 0;
    if (m->pair == NULL ||
        zmq_setsockopt(m->pair, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_connect(m->pair, endpoint) != 0) {
        hpo_error(err, errlen, "connecting to the monitor of the %s failed: %s", label,
                  zmq_strerror(errno));
        hpo_curve_monitor_stop(&m);
        return NULL;
    }
    return m;
}

/* Explains a ZMQ_PROTOCOL_ERROR_* value of a failed handshake. */
static void describe_protocol_error(const hpo_curve_monitor *m, uint32_t value,
                                    char *buf, size_t size)
{
    if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH && m->server)
        snprintf(buf, size, "the peer does not use CURVE; it needs a key pair and "
                 "the server's public key");
    else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH && m->curve)
        snprintf(buf, size, "the server does not use CURVE; leave out this "
                 "client's keys, or give the server its keys");
    else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        snprintf(buf, size, "the server requires CURVE; give this client a key "
                 "pair and the server's public key");
    else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC && m->server)
        snprintf(buf, size, "the peer's CURVE handshake could not be decrypted; it "
                 "uses another server public key than this server's");
    else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
        snprintf(buf, size, "the CURVE handshake could not be decrypted; check the "
                 "server's public key");
    else
        snprintf(buf, size, "ZMTP or ZAP protocol error 0x%08x", (unsigned)value);
}

/* Explains a handshake that failed without a protocol error: the peer
 * closed the connection. A CURVE server closes it without a reason when it
 * cannot decrypt the client's first command, and a client without CURVE
 * closes it when it reads the server's CURVE greeting. */
static void describe_closed(const hpo_curve_monitor *m, uint32_t value, char *buf,
                            size_t size)
{
    const char *why = value != 0 ? zmq_strerror((int)value) : "connection closed";
    if (m->server)
        snprintf(buf, size, "the peer closed the connection during the handshake "
                 "(%s), as a peer without CURVE keys or with another server key "
                 "does", why);
    else if (m->curve)
        snprintf(buf, size, "the handshake failed (%s); check that the server's "
                 "public key is the right one", why);
    else
        snprintf(buf, size, "the handshake failed (%s); the server probably "
                 "requires CURVE, so give this client a key pair and the server's "
                 "public key", why);
}

static void describe_event(const hpo_curve_monitor *m, uint16_t event, uint32_t value,
                           char *buf, size_t size)
{
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        describe_protocol_error(m, value, buf, size);
    else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && m->server)
        snprintf(buf, size, "the ZAP handler rejected the peer's key (status %u)",
                 (unsigned)value);
    else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        snprintf(buf, size, "the server rejected this key (ZAP status %u): it is not "
                 "in the server's authorized keys, or its role may not use this "
                 "endpoint", (unsigned)value);
    else
        describe_closed(m, value, buf, size);
}

/* Receives one event without blocking. Returns false when none waits. */
static bool read_event(hpo_curve_monitor *m, uint16_t *event, uint32_t *value,
                       char *endpoint, size_t size)
{
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    if (zmq_msg_recv(&frame, m->pair, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&frame);
        return false;
    }
    /* First frame: 16-bit event and 32-bit value, in host byte order. */
    bool valid = zmq_msg_size(&frame) == 6;
    if (valid) {
        const uint8_t *data = zmq_msg_data(&frame);
        memcpy(event, data, sizeof *event);
        memcpy(value, data + 2, sizeof *value);
    }
    endpoint[0] = '\0';
    while (zmq_msg_more(&frame)) {
        zmq_msg_close(&frame);
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, m->pair, ZMQ_DONTWAIT) < 0)
            break;
        size_t n = zmq_msg_size(&frame) < size - 1 ? zmq_msg_size(&frame) : size - 1;
        memcpy(endpoint, zmq_msg_data(&frame), n);
        endpoint[n] = '\0';
    }
    zmq_msg_close(&frame);
    if (!valid)
        *event = 0;
    return true;
}

int hpo_curve_monitor_poll(hpo_curve_monitor *m, bool log)
{
    if (m == NULL)
        return 0;
    uint16_t event = 0;
    uint32_t value = 0;
    char endpoint[256];
    while (read_event(m, &event, &value, endpoint, sizeof endpoint)) {
        if (event == 0)
            continue;
        m->failures++;
        describe_event(m, event, value, m->last, sizeof m->last);
        /* The ZAP handler logs its own rejections with the key and the
         * peer's address, so the server only counts them here. */
        if (log && !(m->server && event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH))
            hpo_log_limited("curve_handshake", LOG_BURST, HPO_LOG_WARN,
                            "handshake on the %s (%s) failed: %s", m->label,
                            endpoint, m->last);
    }
    return m->failures;
}

const char *hpo_curve_monitor_last_failure(const hpo_curve_monitor *m)
{
    return m != NULL ? m->last : "";
}

void hpo_curve_monitor_stop(hpo_curve_monitor **monitor)
{
    if (monitor == NULL || *monitor == NULL)
        return;
    hpo_curve_monitor *m = *monitor;
    /* The watched socket keeps its side of the monitor until it closes;
     * events sent there meanwhile are dropped. */
    if (m->pair != NULL)
        zmq_close(m->pair);
    free(m);
    *monitor = NULL;
}
