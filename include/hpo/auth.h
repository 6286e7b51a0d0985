/* Who may connect to hpod: the authorized-keys file, key roles, and the
 * ZAP handler (ZeroMQ RFC 27) that admits CURVE clients by their public
 * key.
 *
 * The authorized-keys file lists one client public key per line, with an
 * optional role and an optional comment that starts with '#':
 *
 *   # Blank lines and lines starting with '#' are ignored.
 *   =>pAu@k8//Ft6i9flKwONldsrHa=.q)G.>ZE{!MC worker  # gpu-host-1
 *   HNU1iSvIkR?cuq)IB2mF*l+#E>I-^3/su{5-pvZJ admin   # alice
 *   zUcv[oqT5!vo{4QecdX?:NMCKg&DNu>>FK3+*Gl} read
 *
 * Roles: `worker` may connect to the workers endpoint only. `read` may
 * connect to the control endpoint and send the queries that do not change
 * the study. `admin` may connect to both and send every command, `stop`
 * included. A line without a role gives `read`. */
#ifndef HPO_AUTH_H
#define HPO_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "hpo/curve.h"

/* ZAP domains that hpod sets on its two sockets. */
#define HPO_ZAP_DOMAIN_WORKERS "workers"
#define HPO_ZAP_DOMAIN_CONTROL "control"

/* Connection property, set by the ZAP handler, that contains the client's
 * CURVE public key in Z85. libzmq exposes it on every message of the
 * connection through zmq_msg_gets(), whose manual (libzmq 4.3.4) requires
 * application metadata names to start with "X-". */
#define HPO_ZAP_PUBLIC_KEY_PROPERTY "X-Public-Key"

/* Maximum length of a role name, which the ZAP handler returns as the
 * User-Id. */
#define HPO_AUTH_ROLE_MAX 15

typedef enum {
    HPO_ROLE_READ = 0,  /* "read" */
    HPO_ROLE_WORKER,    /* "worker" */
    HPO_ROLE_ADMIN,     /* "admin" */
} hpo_auth_role;

const char *hpo_auth_role_name(hpo_auth_role role);

/* Parses "read", "worker" or "admin". Returns 0 or -1. */
int hpo_auth_role_parse(const char *name, hpo_auth_role *role);

/* Returns true when a key with role may connect to the endpoint of ZAP
 * domain `domain` (HPO_ZAP_DOMAIN_WORKERS or HPO_ZAP_DOMAIN_CONTROL). */
bool hpo_auth_role_allows(hpo_auth_role role, const char *domain);

/* --- authorized keys ------------------------------------------------------ */

typedef struct hpo_authorized_keys hpo_authorized_keys;

/* Reads an authorized-keys file. Rejects, naming file and line, a key that
 * is not 40 Z85 characters, an unknown role, text after the role that does
 * not start with "#", and a key listed twice. On success the caller owns
 * *keys and frees it with hpo_authorized_keys_destroy(). */
int hpo_authorized_keys_load(const char *path, hpo_authorized_keys **keys,
                             char *err, size_t errlen);

size_t hpo_authorized_keys_count(const hpo_authorized_keys *keys);

/* Looks up a Z85 public key. Returns true and sets *role when it is
 * listed. */
bool hpo_authorized_keys_find(const hpo_authorized_keys *keys, const char *key,
                              hpo_auth_role *role);

/* Frees *keys and sets it to NULL; accepts NULL. */
void hpo_authorized_keys_destroy(hpo_authorized_keys **keys);

/* --- ZAP handler ------------------------------------------------------------
 *
 * A thread with a REP socket bound at inproc://zeromq.zap.01 in the given
 * context. For each CURVE handshake on a socket of that context that has a
 * ZAP domain, it admits the client (status 200, User-Id = the key's role
 * name, and the public key as the HPO_ZAP_PUBLIC_KEY_PROPERTY property)
 * when its public key is listed and its role may use that domain,
 * and rejects it (status 400) otherwise. Rejections are logged at WARN,
 * rate-limited, with the key, the peer's address and the domain. The
 * server reads the role of each message with zmq_msg_gets(msg,
 * "User-Id"). */

typedef struct hpo_zap_handler hpo_zap_handler;

/* Starts the handler. keys is borrowed and must outlive the handler.
 * Start it before binding the sockets that it guards, because libzmq 4.3
 * lets CURVE clients in while no handler is bound. Returns 0, or -1 with a
 * message (a handler is bound in this context already, or the thread
 * cannot start). */
int hpo_zap_handler_start(void *ctx, const hpo_authorized_keys *keys,
                          hpo_zap_handler **handler, char *err, size_t errlen);

/* Number of handshakes rejected since the start. */
long hpo_zap_handler_rejected(const hpo_zap_handler *handler);

/* Stops the thread, closes its socket and sets *handler to NULL; accepts
 * NULL. Close the guarded sockets first, so that none of them admits a
 * client while no handler is bound. */
void hpo_zap_handler_stop(hpo_zap_handler **handler);

#endif
