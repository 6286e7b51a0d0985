/* The ZAP handler: a thread that replies to libzmq's authentication
 * requests (ZeroMQ RFC 27) for CURVE handshakes, from the authorized keys. */
#include "hpo/auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "hpo/error.h"
#include "hpo/log.h"

/* The endpoint RFC 27 fixes for the handler of a context. */
#define ZAP_ENDPOINT "inproc://zeromq.zap.01"

/* Maximum wait in ms before the thread checks its stop flag. */
#define STOP_CHECK_MS 100

/* Frames of a ZAP request: version, request id, domain, address,
 * routing id, mechanism, and one credentials frame for CURVE. */
#define REQUEST_FRAMES 7

/* Log lines per 10 s for rejected handshakes. */
#define LOG_BURST 5

struct hpo_zap_handler {
    void *rep;                    /* bound in the caller's thread, then
                                     used by the handler thread only */
    const hpo_authorized_keys *keys; /* borrowed */
    pthread_t thread;
    atomic_bool stop;
    atomic_long rejected;
};

typedef struct {
    zmq_msg_t frames[REQUEST_FRAMES];
    int count;      /* frames received, at most REQUEST_FRAMES */
    bool too_many;  /* more frames arrived and were dropped */
} zap_request;

/* Copies frame i of the request as a string into buf ("" when absent). */
static const char *frame_text(zap_request *r, int i, char *buf, size_t size)
{
    buf[0] = '\0';
    if (i < r->count) {
        size_t n = zmq_msg_size(&r->frames[i]);
        if (n > size - 1)
            n = size - 1;
        memcpy(buf, zmq_msg_data(&r->frames[i]), n);
        buf[n] = '\0';
    }
    return buf;
}

/* Receives every frame of one request. Returns false when none waits. */
static bool request_receive(void *rep, zap_request *r)
{
    r->count = 0;
    r->too_many = false;
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    if (zmq_msg_recv(&frame, rep, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&frame);
        return false;
    }
    for (;;) {
        bool more = zmq_msg_more(&frame);
        if (r->count < REQUEST_FRAMES) {
            r->frames[r->count++] = frame;
        } else {
            r->too_many = true;
            zmq_msg_close(&frame);
        }
        if (!more)
            return true;
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, rep, 0) < 0) {
            zmq_msg_close(&frame);
            return true;
        }
    }
}

static void request_clear(zap_request *r)
{
    for (int i = 0; i < r->count; i++)
        zmq_msg_close(&r->frames[i]);
    r->count = 0;
}

/* Encodes one ZMTP metadata property (ZeroMQ RFC 23): a 1-byte name
 * length, the name, a 4-byte big-endian value length and the value.
 * Returns the bytes written, 0 when buf is too small. */
static size_t metadata_property(unsigned char *buf, size_t size, const char *name,
                                const char *value)
{
    size_t name_len = strlen(name), value_len = strlen(value);
    if (name_len > 255 || 1 + name_len + 4 + value_len > size)
        return 0;
    size_t n = 0;
    buf[n++] = (unsigned char)name_len;
    memcpy(buf + n, name, name_len);
    n += name_len;
    buf[n++] = (unsigned char)(value_len >> 24);
    buf[n++] = (unsigned char)(value_len >> 16);
    buf[n++] = (unsigned char)(value_len >> 8);
    buf[n++] = (unsigned char)value_len;
    memcpy(buf + n, value, value_len);
    return n + value_len;
}

/* Sends the reply: version, request id, status code and text, user id and
 * metadata. An admitted client's metadata contains its public key (key is
 * NULL for a rejection, whose metadata is empty). */
static void reply_send(void *rep, zap_request *r, const char *code, const char *text,
                       const char *user_id, const char *key)
{
    unsigned char metadata[64];
    size_t metadata_size = key != NULL ? metadata_property(metadata, sizeof metadata,
                                                           HPO_ZAP_PUBLIC_KEY_PROPERTY,
                                                           key)
                                       : 0;
    /* The request id is echoed byte for byte, not as a C string. */
    const void *frames[] = {"1.0", r->count > 1 ? zmq_msg_data(&r->frames[1]) : "",
                            code, text, user_id, metadata};
    size_t sizes[] = {3, r->count > 1 ? zmq_msg_size(&r->frames[1]) : 0, strlen(code),
                      strlen(text), strlen(user_id), metadata_size};
    for (int i = 0; i < 6; i++) {
        if (zmq_send(rep, frames[i], sizes[i], i < 5 ? ZMQ_SNDMORE : 0) < 0)
            return;
    }
}

/* Decides one request and replies to it. */
static void handle_request(hpo_zap_handler *h, zap_request *r)
{
    char version[8], domain[64], address[128], mechanism[16];
    frame_text(r, 0, version, sizeof version);
    frame_text(r, 2, domain, sizeof domain);
    frame_text(r, 3, address, sizeof address);
    frame_text(r, 5, mechanism, sizeof mechanism);
    const char *peer = address[0] != '\0' ? address : "a local peer";

    if (strcmp(version, "1.0") != 0 || r->count < 6) {
        hpo_log_limited("zap_invalid", LOG_BURST, HPO_LOG_ERROR,
                        "invalid ZAP request (version \"%s\", %d frames) rejected",
                        version, r->count);
        atomic_fetch_add(&h->rejected, 1);
        reply_send(h->rep, r, "500", "invalid ZAP request", "", NULL);
        return;
    }
    if (strcmp(mechanism, "CURVE") != 0 || r->count != REQUEST_FRAMES || r->too_many ||
        zmq_msg_size(&r->frames[6]) != 32) {
        hpo_log_limited("zap_refused", LOG_BURST, HPO_LOG_WARN,
                        "rejected %s on the %s endpoint: mechanism %s, expected CURVE "
                        "with a 32-byte public key", peer, domain, mechanism);
        atomic_fetch_add(&h->rejected, 1);
        reply_send(h->rep, r, "400", "CURVE required", "", NULL);
        return;
    }

    char key[HPO_CURVE_KEY_CHARS + 1];
    zmq_z85_encode(key, zmq_msg_data(&r->frames[6]), 32);
    hpo_auth_role role;
    if (!hpo_authorized_keys_find(h->keys, key, &role)) {
        hpo_log_limited("zap_refused", LOG_BURST, HPO_LOG_WARN,
                        "rejected key %s from %s on the %s endpoint: it is not in the "
                        "authorized keys", key, peer, domain);
        atomic_fetch_add(&h->rejected, 1);
        reply_send(h->rep, r, "400", "key not authorized", "", NULL);
        return;
    }
    if (!hpo_auth_role_allows(role, domain)) {
        hpo_log_limited("zap_refused", LOG_BURST, HPO_LOG_WARN,
                        "rejected key %s (role %s) from %s on the %s endpoint: role %s "
                        "may not connect there", key, hpo_auth_role_name(role), peer,
                        domain, hpo_auth_role_name(role));
        atomic_fetch_add(&h->rejected, 1);
        reply_send(h->rep, r, "400", "role not allowed on this endpoint", "", NULL);
        return;
    }

    hpo_log(strcmp(domain, HPO_ZAP_DOMAIN_WORKERS) == 0 ? HPO_LOG_INFO : HPO_LOG_DEBUG,
            "admitted key %s (role %s) from %s on the %s endpoint", key,
            hpo_auth_role_name(role), peer, domain);
    reply_send(h->rep, r, "200", "OK", hpo_auth_role_name(role), key);
}

static void *handler_main(void *arg)
{
    hpo_zap_handler *h = arg;
    while (!atomic_load(&h->stop)) {
        zmq_pollitem_t item = {.socket = h->rep, .events = ZMQ_POLLIN};
        int rc = zmq_poll(&item, 1, STOP_CHECK_MS);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            hpo_log_error("the ZAP handler stopped: polling failed: %s; new "
                          "connections are rejected", zmq_strerror(errno));
            return NULL;
        }
        zap_request request;
        while (request_receive(h->rep, &request)) {
            handle_request(h, &request);
            request_clear(&request);
        }
    }
    return NULL;
}

int hpo_zap_handler_start(void *ctx, const hpo_authorized_keys *keys,
                          hpo_zap_handler **handler, char *err, size_t errlen)
{
    *handler = NULL;
    hpo_zap_handler *h = calloc(1, sizeof *h);
    if (h == NULL)
        return hpo_error(err, errlen, "out of memory starting the ZAP handler");
    atomic_init(&h->stop, false);
    atomic_init(&h->rejected, 0);

    h->rep = zmq_socket(ctx, ZMQ_REP);
    int linger = 0;
    if (h->rep == NULL || zmq_setsockopt(h->rep, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(h->rep, ZAP_ENDPOINT) != 0) {
        hpo_error(err, errlen, "binding the ZAP handler at %s failed: %s", ZAP_ENDPOINT,
                  zmq_strerror(errno));
        goto fail;
    }
    h->keys = keys;
    int rc = pthread_create(&h->thread, NULL, handler_main, h);
    if (rc != 0) {
        hpo_error(err, errlen, "starting the ZAP handler thread failed: %s", strerror(rc));
        goto fail;
    }
    *handler = h;
    return 0;

fail:
    if (h->rep != NULL)
        zmq_close(h->rep);
    free(h);
    return -1;
}

long hpo_zap_handler_rejected(const hpo_zap_handler *handler)
{
    return handler != NULL ? atomic_load(&handler->rejected) : 0;
}

void hpo_zap_handler_stop(hpo_zap_handler **handler)
{
    if (handler == NULL || *handler == NULL)
        return;
    hpo_zap_handler *h = *handler;
    atomic_store(&h->stop, true);
    pthread_join(h->thread, NULL);
    zmq_close(h->rep);
    free(h);
    *handler = NULL;
}
