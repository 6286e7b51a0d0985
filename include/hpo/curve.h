/* CURVE key pairs, key files and socket settings (ZeroMQ's CurveZMQ,
 * RFC 26): hpod's sockets are CURVE servers, hpo-worker's and hpoctl's
 * are CURVE clients that know the server's public key.
 *
 * Keys are kept in ZeroMQ's Z85 text form, 40 characters for 32 bytes.
 * `hpoctl keygen --out PREFIX` writes two files:
 *
 *   PREFIX.key (mode 0600)       PREFIX.pub
 *     # comment lines              <public key>
 *     public-key <public key>
 *     secret-key <secret key>
 *
 * Lines starting with '#' are comments; '#' is a Z85 character but never
 * the first of a key. docs/security.md describes the files and the whole
 * setup. */
#ifndef HPO_CURVE_H
#define HPO_CURVE_H

#include <stdbool.h>
#include <stddef.h>

/* Characters of a Z85-encoded CURVE key. */
#define HPO_CURVE_KEY_CHARS 40

typedef struct {
    char public_key[HPO_CURVE_KEY_CHARS + 1];  /* Z85, NUL-terminated */
    char secret_key[HPO_CURVE_KEY_CHARS + 1];  /* Z85, NUL-terminated */
} hpo_curve_keypair;

/* CURVE settings of one socket, applied before it binds or connects. */
typedef struct {
    bool server;                  /* true: ZMQ_CURVE_SERVER (hpod) */
    hpo_curve_keypair own;        /* the socket's own key pair */
    char server_key[HPO_CURVE_KEY_CHARS + 1]; /* clients: hpod's public key */
    const char *zap_domain;       /* servers: ZAP domain, e.g. "workers";
                                     borrowed */
} hpo_curve_settings;

/* Returns true when text is a 40-character Z85 string that decodes to a
 * 32-byte key. */
bool hpo_curve_key_valid(const char *text);

/* Makes a new key pair with zmq_curve_keypair(). Returns 0, or -1 when
 * libzmq was built without CURVE. */
int hpo_curve_keypair_generate(hpo_curve_keypair *pair, char *err, size_t errlen);

/* Writes PREFIX.key (mode 0600) and PREFIX.pub (mode 0644). Existing files
 * are never overwritten: the call fails and names the file. */
int hpo_curve_keypair_write(const hpo_curve_keypair *pair, const char *prefix,
                            char *err, size_t errlen);

/* Reads a secret key file. Rejects a file that gives group or others any
 * permission (mode bits 077), a file without both keys, and a public key
 * that does not belong to the secret key. */
int hpo_curve_keypair_load(const char *path, hpo_curve_keypair *pair,
                           char *err, size_t errlen);

/* Reads the public key from a public key file: the first token of its
 * first line that is not a comment. key receives HPO_CURVE_KEY_CHARS + 1
 * bytes. */
int hpo_curve_public_key_load(const char *path, char *key, char *err, size_t errlen);

/* Overwrites the secret key in memory. */
void hpo_curve_keypair_clear(hpo_curve_keypair *pair);

/* Sets ZMQ_CURVE_SERVER, the keys and ZMQ_ZAP_DOMAIN on a socket that has
 * not bound or connected yet. A server socket also gets
 * ZMQ_ZAP_ENFORCE_DOMAIN, so that its handshakes fail while no ZAP handler
 * is bound. */
int hpo_curve_settings_apply(void *sock, const hpo_curve_settings *settings,
                             char *err, size_t errlen);

/* --- handshake monitor --------------------------------------------------
 *
 * Watches a socket's ZMTP handshakes through zmq_socket_monitor(), so that
 * a peer rejected before any message arrives (no CURVE, wrong server key,
 * key refused by ZAP) leaves a trace in the log. */

typedef struct hpo_curve_monitor hpo_curve_monitor;

/* Starts watching sock, from the thread that owns it. label names the
 * socket in log lines, e.g. "workers endpoint". Returns the monitor (free
 * it with hpo_curve_monitor_stop()) or NULL with a message. */
hpo_curve_monitor *hpo_curve_monitor_start(void *ctx, void *sock, const char *label,
                                           char *err, size_t errlen);

/* Reads the events that are waiting, without blocking. With log set, logs
 * each failed handshake at WARN, rate-limited; a server does not repeat
 * the rejections that its ZAP handler logged. Returns the number of failed
 * handshakes seen since the start (0 for a NULL monitor). */
int hpo_curve_monitor_poll(hpo_curve_monitor *monitor, bool log);

/* Describes the last failed handshake ("" when none), for an error
 * message: e.g. "the server rejected this client's key (ZAP status 400)". */
const char *hpo_curve_monitor_last_failure(const hpo_curve_monitor *monitor);

/* Frees the monitor and sets *monitor to NULL; accepts NULL. The watched
 * socket may be closed before or after. */
void hpo_curve_monitor_stop(hpo_curve_monitor **monitor);

#endif
