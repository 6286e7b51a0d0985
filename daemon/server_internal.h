/* State of hpod's event loop, shared by server.c (the loop and the message
 * handlers) and server_registry.c (the table of registered workers). Only
 * daemon/server*.c include this header; hpod's interface is server.h. */
#ifndef HPO_DAEMON_SERVER_INTERNAL_H
#define HPO_DAEMON_SERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "proposer.h"
#include "server.h"
#include "server_identity.h"
#include "hpo/auth.h"
#include "hpo/protocol.h"
#include "hpo/transport.h"

typedef struct {
    int64_t id;                    /* database id; shown as "w<id>" */
    hpo_peer peer;
    char host[HPO_HOST_MAX + 1];
    char name[HPO_NAME_MAX + 1];
    int64_t pid;
    int threads;
    int64_t last_seen_ms;
    bool connected;
    bool done_sent;                /* study_done or shutdown was sent */
    char token[HPO_TOKEN_MAX + 1]; /* session token sent in registered; every
                                      later message must present it */
    char public_key[HPO_CURVE_KEY_CHARS + 1]; /* with CURVE: the key that
                                      registered; "" without CURVE */
} worker_slot;

typedef struct {
    const hpo_server_options *options;
    const hpo_server_parts *parts;
    void *ctx;
    void *workers_sock;
    void *control_sock;
    hpo_zap_handler *zap;          /* with CURVE: admits clients by key */
    hpo_curve_monitor *workers_monitor, *control_monitor; /* with CURVE:
                                      log rejected handshakes */

    worker_slot *workers;
    size_t n_workers, workers_capacity;
    hpo_register_limiter register_limiter; /* registrations per peer */

    /* GP fits run on the proposer thread. Workers whose ready arrived
     * during a fit wait here, oldest first, unless the study's late_fit
     * is "random". */
    hpo_proposer *proposer;
    struct {
        int64_t worker_id;
        int64_t since_ms;
    } *fit_waiters;
    size_t n_fit_waiters, fit_waiters_capacity;

    /* Peers recently sent unknown_worker. A worker whose coordinator
     * restarted sends several messages with its old id, and each reply
     * makes it register again; one reply per UNKNOWN_REPLY_MS is enough. */
    struct {
        hpo_peer peer;
        int64_t at_ms;
    } unknown_replies[8];
    size_t unknown_next;

    bool stop_by_client;  /* hpoctl stop arrived */
    bool stop_by_signal;  /* SIGINT or SIGTERM arrived */
    bool restarting;      /* a signal stopped the running study: workers were
                             told to wait for the next hpod */
    bool end_announced;   /* the study's end was logged */
    int64_t end_deadline_ms; /* when idle workers stop being waited for */
    int64_t close_at_ms;     /* when the loop ends; 0 until decided */
} server;

/* --- worker registry (server_registry.c) ---------------------------------
 * srv->workers contains one slot per registration. The slot of a worker
 * that was lost or left stays, with connected false, until
 * hpo_registry_add() reuses it. hpo_registry_add() may move the array, so
 * a worker_slot pointer is valid only until the next hpo_registry_add(). */

/* Parses "w<digits>" into the database id; 0 when it is not one. */
int64_t hpo_registry_parse_id(const char *text);

/* Returns the connected worker with database id `id`, or NULL. */
worker_slot *hpo_registry_find(server *srv, int64_t id);

/* True when w is connected and is the sender of a new registration: the
 * same peer, or the same host, pid and name. */
bool hpo_registry_is_same(const worker_slot *w, const hpo_peer *peer,
                          const hpo_msg_register *reg);

/* True when the sender of a message presents worker w's session token and,
 * with CURVE, connects with the key that registered w. */
bool hpo_registry_credentials_match(const worker_slot *w, const hpo_peer *peer,
                                    const char *token);

/* Returns a zeroed slot for a new registration, reusing the slot of a
 * worker that is no longer connected; NULL when out of memory. srv owns
 * the slot. */
worker_slot *hpo_registry_add(server *srv);

int hpo_registry_connected_count(const server *srv);

/* Builds the array of connected workers for `hpoctl status`; now is
 * CLOCK_MONOTONIC in ms, for last_seen_ms_ago. The caller owns the array
 * and frees it with cJSON_Delete(). */
cJSON *hpo_registry_to_json(const server *srv, int64_t now);

#endif
