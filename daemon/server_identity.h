/* Identity of a worker on hpod's workers endpoint. A session token binds a
 * worker id to the peer that registered it. This file also has the peer's
 * description in logs, the per-peer registration limit and the check that
 * a worker's kind fits the study. server.c applies these rules, and
 * docs/protocol.md describes them on the wire. */
#ifndef HPO_DAEMON_SERVER_IDENTITY_H
#define HPO_DAEMON_SERVER_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hpo/protocol.h"
#include "hpo/transport.h"

/* Random bytes in a session token, sent as twice as many hex digits. */
#define HPO_WORKER_TOKEN_BYTES 16

/* Registrations that one peer may make per window. A worker registers
 * once at start and again after each reconnect, so a legitimate peer
 * stays far below this unless it starts many workers at once. Peers that
 * exceed it get an error that says to retry after the window. Rejected
 * registrations do not count. */
#define HPO_REGISTER_LIMIT 32
#define HPO_REGISTER_WINDOW_MS 10000

/* Peers whose registration counts are kept. When more peers register
 * within one window, the count of the peer that registered least recently
 * is dropped. */
#define HPO_REGISTER_PEERS 64

/* Maximum length of a peer principal, see hpo_peer_principal(). */
#define HPO_PRINCIPAL_MAX 600

/* Writes a new random session token of 2 * HPO_WORKER_TOKEN_BYTES hex
 * digits into token, which has room for HPO_TOKEN_MAX + 1 bytes. Returns
 * 0, or -1 with a message when the kernel's random source fails. */
int hpo_worker_token_new(char *token, char *err, size_t errlen);

/* Compares a stored token with a presented one in time that does not
 * depend on where they differ. An empty stored token matches nothing. */
bool hpo_worker_token_equal(const char *stored, const char *presented);

/* Writes what the registration limit counts against: "key KEY" with CURVE,
 * else "address ADDRESS" (libzmq's Peer-Address), else "routing id ID".
 * Returns buf, which should have HPO_PRINCIPAL_MAX + 1 bytes. */
const char *hpo_peer_principal(const hpo_peer *peer, char *buf, size_t size);

/* Writes a peer for logs: its routing id, address and CURVE key where
 * known, e.g. "peer 00A1B2C3D4 (address 10.0.0.7, key K)". Returns buf. */
const char *hpo_peer_describe(const hpo_peer *peer, char *buf, size_t size);

/* Registration counts per peer in fixed windows of HPO_REGISTER_WINDOW_MS.
 * Zero-initialize it. It owns no allocations. */
typedef struct {
    char principal[HPO_PRINCIPAL_MAX + 1];
    int64_t window_start_ms;
    int64_t last_ms;           /* time of the last registration; 0: unused */
    int count;                 /* registrations in the current window */
} hpo_register_count;

typedef struct {
    hpo_register_count peers[HPO_REGISTER_PEERS];
} hpo_register_limiter;

/* Returns true and counts the registration when the peer named by
 * principal made fewer than HPO_REGISTER_LIMIT registrations in its
 * current window. Otherwise returns false and sets *retry_ms to the time
 * until the window ends. */
bool hpo_register_limiter_allow(hpo_register_limiter *limiter, const char *principal,
                                int64_t now_ms, int64_t *retry_ms);

/* Checks that a worker of this kind can run the trials of a study (a
 * synthetic study needs objective workers, any other study cifar10
 * workers). Returns 0, or -1 with a message for the worker that names
 * both kinds and the command to run instead. A worker that did not send
 * its kind (HPO_WORKER_KIND_UNKNOWN) passes. */
int hpo_worker_kind_check(const char *study_name, bool synthetic, hpo_worker_kind kind,
                          char *text, size_t size);

#endif
