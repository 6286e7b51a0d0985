/* ZeroMQ sockets for the hpod protocol.
 *
 * The coordinator binds two ROUTER sockets: one for workers (which connect
 * DEALER sockets) and one for clients such as hpoctl (which connect DEALER
 * sockets through hpo_transport_request(), or REQ sockets). Every message
 * uses the envelope of REQ/REP, so both kinds of client work:
 *
 *   on the ROUTER:            [routing id] [empty delimiter] [JSON body]
 *   on the DEALER:                         [empty delimiter] [JSON body]
 *
 * The functions here are for ROUTER and DEALER sockets. A REQ socket adds
 * and strips the delimiter itself, so a REQ client sends and receives the
 * bare body with zmq_send() and zmq_recv().
 *
 * Endpoints are tcp://HOST:PORT or ipc://PATH. Every socket made here has
 * ZMQ_MAXMSGSIZE = HPO_MSG_MAX_BYTES, so a peer that sends a larger frame is
 * disconnected by libzmq and its frame is never delivered, a bounded
 * ZMQ_LINGER, and ZMTP heartbeats that detect a dead TCP peer.
 *
 * The send functions never block: a message that cannot be queued at once
 * (peer gone, queue full) fails with a message. ZeroMQ sockets are not
 * thread-safe; use each socket from one thread only. */
#ifndef HPO_TRANSPORT_H
#define HPO_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "hpo/curve.h"
#include "hpo/protocol.h"

/* Milliseconds a closed socket keeps trying to deliver queued messages. */
#define HPO_TRANSPORT_LINGER_MS 1000

/* Longest ZAP User-Id kept from a message; hpod's are role names. */
#define HPO_PEER_USER_ID_MAX 31

/* Longest Peer-Address kept from a message; an IPv6 address with a zone
 * fits. */
#define HPO_PEER_ADDRESS_MAX 63

/* Routing id that a ROUTER socket puts before each peer's messages; libzmq
 * ids are at most 255 bytes. */
typedef struct {
    unsigned char id[255];
    size_t size;
    /* The "User-Id" that the ZAP handler gave the connection a received
     * message came on: the key's role (docs/security.md) on a CURVE
     * socket, "" on a socket without CURVE. Not part of the identity:
     * sends and comparisons use id and size only. */
    char user_id[HPO_PEER_USER_ID_MAX + 1];
    /* The client's CURVE public key in Z85, which hpod's ZAP handler
     * attaches to the connection as the "X-Public-Key" property; "" on a
     * socket without CURVE. Not part of the identity either. */
    char public_key[HPO_CURVE_KEY_CHARS + 1];
    /* libzmq's "Peer-Address" of the connection: the IP address on TCP,
     * "localhost:UID:GID:PID" on IPC, "" when libzmq gives none. */
    char address[HPO_PEER_ADDRESS_MAX + 1];
} hpo_peer;

/* Outcome of a receive. */
typedef enum {
    HPO_RECV_OK = 0,  /* *msg contains a decoded message; hpo_msg_clear() it */
    HPO_RECV_AGAIN,   /* nothing arrived before the timeout */
    HPO_RECV_INVALID, /* a message arrived and was rejected; *status is the
                         reason, err names the field, *peer is its sender,
                         and every frame of it was consumed */
    HPO_RECV_FAILED,  /* the socket failed (err has zmq_strerror) */
} hpo_recv_result;

/* Creates a ROUTER socket bound to endpoint, with ZMQ_ROUTER_MANDATORY so
 * that sending to a peer that has gone fails instead of vanishing.
 * Returns the socket (close with hpo_transport_close()) or NULL with a
 * message naming the endpoint. */
void *hpo_transport_router_bind(void *ctx, const char *endpoint,
                                char *err, size_t errlen);

/* Creates a DEALER socket connected to endpoint. libzmq reconnects by
 * itself after the peer restarts (every 100 ms, backing off to 2 s). With
 * `immediate` set, messages are queued only while a connection is up, so
 * sends fail instead of piling up for a coordinator that is down. Workers
 * set it, and one-shot clients do not need it. Returns the socket or NULL
 * with a message. */
void *hpo_transport_dealer_connect(void *ctx, const char *endpoint, bool immediate,
                                   char *err, size_t errlen);

/* As hpo_transport_router_bind() and hpo_transport_dealer_connect(), with
 * CURVE when curve is not NULL: the settings are applied before the bind
 * or connect (see hpo/curve.h). NULL gives a plain socket. */
void *hpo_transport_router_bind_curve(void *ctx, const char *endpoint,
                                      const hpo_curve_settings *curve,
                                      char *err, size_t errlen);
void *hpo_transport_dealer_connect_curve(void *ctx, const char *endpoint, bool immediate,
                                         const hpo_curve_settings *curve,
                                         char *err, size_t errlen);

/* Closes *sock (accepts NULL) and sets it to NULL. */
void hpo_transport_close(void **sock);

/* Copies the endpoint the socket last bound, with the port filled in when
 * it was bound to tcp://HOST:* or tcp://HOST:0. Returns 0 or -1. */
int hpo_transport_last_endpoint(void *sock, char *buf, size_t size,
                                char *err, size_t errlen);

/* Sends one body frame of `size` bytes with the envelope. `peer` is the
 * destination on a ROUTER socket and must be NULL on a DEALER or REQ socket.
 * Returns 0, or -1 without blocking when the message cannot be queued. */
int hpo_transport_send(void *sock, const hpo_peer *peer, const void *data,
                       size_t size, char *err, size_t errlen);

/* Encodes msg and sends it as hpo_transport_send() does. */
int hpo_transport_send_msg(void *sock, const hpo_peer *peer, const hpo_msg *msg,
                           char *err, size_t errlen);

/* Waits up to timeout_ms (0: do not wait, -1: no limit) for one message,
 * reads all its frames, checks the envelope and decodes the body. `peer`
 * receives the sender on a ROUTER socket and must be NULL on a DEALER
 * socket. `status` (may be NULL) receives the decode status. A signal that
 * interrupts the wait returns HPO_RECV_AGAIN early. */
hpo_recv_result hpo_transport_recv_msg(void *sock, hpo_peer *peer, int timeout_ms,
                                       hpo_msg *msg, hpo_proto_status *status,
                                       char *err, size_t errlen);

/* Sends a message to the coordinator and waits for its answer: a one-shot
 * DEALER connection for clients such as hpoctl. Returns HPO_RECV_OK with the
 * answer in *reply (a `reply` or an `error` message; the caller clears it),
 * HPO_RECV_AGAIN when no answer came within timeout_ms, or another result
 * with a message. */
hpo_recv_result hpo_transport_request(void *ctx, const char *endpoint,
                                      const hpo_msg *request, int timeout_ms,
                                      hpo_msg *reply, char *err, size_t errlen);

/* As hpo_transport_request(), over CURVE when curve is not NULL. Both
 * watch the handshake: when it fails (key rejected, wrong server key,
 * CURVE on one side only), they return HPO_RECV_FAILED as soon as the
 * failure is seen, with err saying why, instead of waiting out the
 * timeout. */
hpo_recv_result hpo_transport_request_curve(void *ctx, const char *endpoint,
                                            const hpo_curve_settings *curve,
                                            const hpo_msg *request, int timeout_ms,
                                            hpo_msg *reply, char *err, size_t errlen);

/* Formats a routing id for logs: printable ids as they are, others in hex.
 * Returns buf. */
const char *hpo_peer_format(const hpo_peer *peer, char *buf, size_t size);

#endif
