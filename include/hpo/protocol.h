/* Wire protocol between hpod, hpo-worker and hpoctl.
 *
 * Every message is one JSON object in one ZeroMQ frame, with the protocol
 * version and the message type:
 *
 *   {"v": 1, "type": "progress", "worker_id": "w3", "trial_id": 12, ...}
 *
 * docs/protocol.md lists every message, field, limit and error code.
 * hpo_msg_decode() checks a frame strictly and names the first bad field.
 * hpo_msg_encode() applies the same checks, so it never produces a frame
 * that the decoder rejects. Neither function blocks, exits or aborts. */
#ifndef HPO_PROTOCOL_H
#define HPO_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Version carried in every message's "v" field. */
#define HPO_PROTO_VERSION 1

/* Largest frame, in bytes, that any hpod program sends or accepts. Sockets
 * made by transport.h also set ZMQ_MAXMSGSIZE to it. */
#define HPO_MSG_MAX_BYTES (1024 * 1024)

/* Maximum string lengths in bytes, without the terminating NUL. */
#define HPO_HOST_MAX 255       /* register.host */
#define HPO_NAME_MAX 64        /* worker names and ids, query commands */
#define HPO_REASON_MAX 256     /* stop_trial.reason, shutdown.reason */
#define HPO_MESSAGE_MAX 1024   /* error.message */
#define HPO_ERROR_TEXT_MAX 4096 /* result.error */
#define HPO_TOKEN_MAX 64       /* the session token of registered and of the
                                  worker messages that follow it */

/* Largest trial id or seed: integers travel as JSON numbers (doubles), which
 * hold integers exactly up to 2^53. */
#define HPO_PROTO_INT_MAX 9007199254740991LL

/* Entries in register.pending_results. */
#define HPO_PENDING_MAX 16

/* Heartbeat interval a coordinator sends in `registered` unless it has a
 * reason to choose another. */
#define HPO_HEARTBEAT_MS_DEFAULT 2000

typedef enum {
    HPO_MSG_REGISTER = 0, /* worker -> coordinator */
    HPO_MSG_REGISTERED,   /* coordinator -> worker */
    HPO_MSG_READY,        /* worker -> coordinator: requests a trial */
    HPO_MSG_TRIAL,        /* coordinator -> worker */
    HPO_MSG_NO_WORK,      /* coordinator -> worker */
    HPO_MSG_STUDY_DONE,   /* coordinator -> worker */
    HPO_MSG_PROGRESS,     /* worker -> coordinator, once per epoch */
    HPO_MSG_HEARTBEAT,    /* worker -> coordinator */
    HPO_MSG_RESULT,       /* worker -> coordinator */
    HPO_MSG_RESULT_ACK,   /* coordinator -> worker */
    HPO_MSG_STOP_TRIAL,   /* coordinator -> worker */
    HPO_MSG_SHUTDOWN,     /* coordinator -> worker */
    HPO_MSG_ERROR,        /* any direction */
    HPO_MSG_QUERY,        /* client -> coordinator */
    HPO_MSG_REPLY,        /* coordinator -> client */
    HPO_MSG_LEAVE,        /* worker -> coordinator: the worker exits */
} hpo_msg_type;

#define HPO_MSG_TYPE_COUNT (HPO_MSG_LEAVE + 1)

/* Outcome of decoding, and the "code" of an `error` message. The first
 * group is what hpo_msg_decode() returns; the second group is for
 * coordinator replies that a decoder cannot detect. */
typedef enum {
    HPO_PROTO_OK = 0,
    HPO_PROTO_TOO_LARGE,        /* "too_large": over HPO_MSG_MAX_BYTES */
    HPO_PROTO_INVALID_JSON,     /* "invalid_json": not one JSON object */
    HPO_PROTO_BAD_VERSION,      /* "bad_version": "v" is not HPO_PROTO_VERSION */
    HPO_PROTO_UNKNOWN_TYPE,     /* "unknown_type" */
    HPO_PROTO_MISSING_FIELD,    /* "missing_field" */
    HPO_PROTO_WRONG_TYPE,       /* "wrong_type": a field has the wrong JSON type */
    HPO_PROTO_INVALID_VALUE,    /* "invalid_value": out of range, not finite,
                                   not an integer, too long, unknown enum */
    HPO_PROTO_INVALID_ENVELOPE, /* "invalid_envelope": wrong ZeroMQ frames */

    HPO_PROTO_UNEXPECTED,       /* "unexpected_message": valid, but not on
                                   this socket or not in this state */
    HPO_PROTO_UNKNOWN_WORKER,   /* "unknown_worker": register first */
    HPO_PROTO_UNKNOWN_TRIAL,    /* "unknown_trial" */
    HPO_PROTO_UNKNOWN_COMMAND,  /* "unknown_command": query.command */
    HPO_PROTO_INVALID_ARGUMENT, /* "invalid_argument": query.args */
    HPO_PROTO_PERMISSION_DENIED, /* "permission_denied": the command changes
                                    the study and the client's key lacks
                                    the admin role */
    HPO_PROTO_WORKER_ID_TAKEN,  /* "worker_id_taken": the worker id or
                                   registration belongs to another peer,
                                   whose token or CURVE key differs */
    HPO_PROTO_WRONG_WORKER_KIND, /* "wrong_worker_kind": the worker cannot
                                    run this study's trials */
    HPO_PROTO_TOO_MANY_REGISTRATIONS, /* "too_many_registrations": the peer
                                         registered too often recently */
    HPO_PROTO_INTERNAL,         /* "internal": the coordinator failed */
} hpo_proto_status;

#define HPO_PROTO_STATUS_COUNT (HPO_PROTO_INTERNAL + 1)

typedef enum {
    HPO_TRIAL_OK = 0,      /* "ok": trained to the end or stopped early */
    HPO_TRIAL_FAILED,      /* "failed": cannot be built, diverged, ... */
    HPO_TRIAL_INTERRUPTED, /* "interrupted": stop_trial, shutdown or signal */
} hpo_trial_status;

/* What a worker runs, from register.kind. A study with "synthetic": true
 * needs objective workers, every other study cifar10 workers. */
typedef enum {
    HPO_WORKER_KIND_UNKNOWN = 0, /* register.kind absent: not checked */
    HPO_WORKER_KIND_CIFAR10,     /* "cifar10": trains the model on CIFAR-10 */
    HPO_WORKER_KIND_OBJECTIVE,   /* "objective": evaluates a synthetic
                                    objective (hpo-worker --objective) */
} hpo_worker_kind;

#define HPO_WORKER_KIND_COUNT (HPO_WORKER_KIND_OBJECTIVE + 1)

typedef enum {
    HPO_QUERY_BEST = 0,
    HPO_QUERY_TRIALS,
    HPO_QUERY_SUMMARY,
    HPO_QUERY_SPACE,
    HPO_QUERY_STATUS,
    HPO_QUERY_STOP,
} hpo_query_command;

#define HPO_QUERY_COMMAND_COUNT (HPO_QUERY_STOP + 1)

/* Training budget of one trial. The sizes follow hpo_cifar10_options:
 * train_size 0 means every training record the validation split leaves,
 * val_size -1 means the loader's default of 5,000. */
typedef struct {
    int epochs;      /* >= 1 */
    int train_size;  /* 0 .. 50,000 */
    int val_size;    /* -1 .. 50,000; train_size + val_size <= 50,000 */
    int batch_size;  /* >= 1 */
} hpo_msg_budget;

typedef struct {
    char host[HPO_HOST_MAX + 1];
    int64_t pid;                    /* >= 1 */
    int threads;                    /* >= 1: training threads */
    int protocol;                   /* highest version the worker speaks */
    char name[HPO_NAME_MAX + 1];
    int64_t running_trial;          /* -1 when idle; optional on the wire */
    int n_pending;                  /* 0 .. HPO_PENDING_MAX */
    int64_t pending_results[HPO_PENDING_MAX]; /* trial ids of unacked results */
    hpo_worker_kind kind;           /* optional; HPO_WORKER_KIND_UNKNOWN when
                                       absent */
    char token[HPO_TOKEN_MAX + 1];  /* optional: the token of the worker's
                                       previous registration, which lets
                                       this one replace it; "" when none */
} hpo_msg_register;

typedef struct {
    char worker_id[HPO_NAME_MAX + 1];
    int heartbeat_ms;               /* >= 100 */
    char token[HPO_TOKEN_MAX + 1];  /* session token; optional on the wire */
} hpo_msg_registered;

/* Every worker message after `registered` carries the worker id and the
 * session token of that registration. The token is optional on the wire,
 * and "" when absent; hpod rejects a message whose token does not match. */
typedef struct {
    char worker_id[HPO_NAME_MAX + 1];
    char token[HPO_TOKEN_MAX + 1];
} hpo_msg_ready;

typedef struct {
    int64_t trial_id;               /* 0 .. HPO_PROTO_INT_MAX */
    cJSON *params;                  /* object: name -> number, string, bool */
    cJSON *model;                   /* object: the model spec of model.h */
    hpo_msg_budget budget;
    uint64_t seed;                  /* 0 .. HPO_PROTO_INT_MAX */
} hpo_msg_trial;

typedef struct {
    int retry_ms;                   /* >= 0 */
} hpo_msg_no_work;

/* The fields of hpo_epoch_metrics (trainer.h) for one epoch. */
typedef struct {
    char worker_id[HPO_NAME_MAX + 1];
    char token[HPO_TOKEN_MAX + 1];
    int64_t trial_id;
    int epoch;                      /* 1 .. epochs */
    int epochs;                     /* >= 1 */
    double loss, accuracy;          /* finite */
    double val_loss, val_accuracy;  /* finite, or NAN (JSON null) when the
                                       trial has no validation set */
    double seconds;                 /* finite, >= 0 */
    double images_per_second;       /* finite, >= 0 */
} hpo_msg_progress;

typedef struct {
    char worker_id[HPO_NAME_MAX + 1];
    char token[HPO_TOKEN_MAX + 1];
    int64_t trial_id;               /* -1 when idle; JSON null on the wire */
} hpo_msg_heartbeat;

typedef struct {
    char worker_id[HPO_NAME_MAX + 1];
    char token[HPO_TOKEN_MAX + 1];
    int64_t trial_id;
    hpo_trial_status status;
    cJSON *metrics;                 /* object: name -> finite number or null */
    int epochs_run;                 /* >= 0 */
    double wall_seconds;            /* finite, >= 0 */
    char error[HPO_ERROR_TEXT_MAX + 1]; /* "" when status is ok */
} hpo_msg_result;

typedef struct {
    int64_t trial_id;
} hpo_msg_result_ack;

typedef struct {
    int64_t trial_id;
    char reason[HPO_REASON_MAX + 1]; /* optional; "" when absent */
} hpo_msg_stop_trial;

typedef struct {
    char reason[HPO_REASON_MAX + 1]; /* optional; "" when absent */
} hpo_msg_shutdown;

/* Sent by a worker that exits cleanly, so that the coordinator drops it at
 * once instead of waiting for its heartbeats to stop. */
typedef struct {
    char worker_id[HPO_NAME_MAX + 1];
    char token[HPO_TOKEN_MAX + 1];
    char reason[HPO_REASON_MAX + 1]; /* optional; "" when absent */
} hpo_msg_leave;

typedef struct {
    hpo_proto_status code;          /* any value but HPO_PROTO_OK */
    char message[HPO_MESSAGE_MAX + 1];
} hpo_msg_error;

typedef struct {
    hpo_query_command command;
    cJSON *args;                    /* object; {} when absent on the wire */
} hpo_msg_query;

typedef struct {
    hpo_query_command command;      /* the command answered */
    cJSON *data;                    /* any JSON value; the answer */
} hpo_msg_reply;

/* One decoded message. The member named after `type` is valid.
 *
 * Ownership of the cJSON pointers (trial.params, trial.model,
 * result.metrics, query.args, reply.data): a message from hpo_msg_decode()
 * owns them and hpo_msg_clear() frees them. hpo_msg_encode() only reads
 * them, so a message built by the caller may point at cJSON trees that the
 * caller keeps; call hpo_msg_clear() on such a message only when the trees
 * were handed over to it. */
typedef struct {
    hpo_msg_type type;
    union {
        hpo_msg_register reg;
        hpo_msg_registered registered;
        hpo_msg_ready ready;
        hpo_msg_trial trial;
        hpo_msg_no_work no_work;
        hpo_msg_progress progress;
        hpo_msg_heartbeat heartbeat;
        hpo_msg_result result;
        hpo_msg_result_ack result_ack;
        hpo_msg_stop_trial stop_trial;
        hpo_msg_shutdown shutdown;
        hpo_msg_error error;
        hpo_msg_query query;
        hpo_msg_reply reply;
        hpo_msg_leave leave;
    };
} hpo_msg;

/* Zeroes *msg and sets its type and the defaults of optional fields
 * (register.running_trial = -1, heartbeat.trial_id = -1). */
void hpo_msg_init(hpo_msg *msg, hpo_msg_type type);

/* Frees the cJSON trees that *msg owns and zeroes it. Accepts a zeroed or
 * already cleared message. */
void hpo_msg_clear(hpo_msg *msg);

/* Parses one frame of `size` bytes (not NUL-terminated) into *msg.
 * Returns HPO_PROTO_OK, after which the caller owns *msg and calls
 * hpo_msg_clear(). Any other value leaves *msg zeroed and writes into err a
 * message that names the field, e.g.
 *   "trial.budget.epochs: -1 is below the minimum 1".
 * The codes are HPO_PROTO_TOO_LARGE to HPO_PROTO_INVALID_VALUE, and
 * HPO_PROTO_INTERNAL when memory runs out. */
hpo_proto_status hpo_msg_decode(const void *data, size_t size, hpo_msg *msg,
                                char *err, size_t errlen);

/* Checks *msg as hpo_msg_decode() would and serializes it. On success
 * returns 0 and a NUL-terminated string of *size bytes in *out, which the
 * caller frees with free(); on failure returns -1 with a message naming the
 * field. */
int hpo_msg_encode(const hpo_msg *msg, char **out, size_t *size,
                   char *err, size_t errlen);

/* Wire names: "register", "ok", "too_large", "best", ... Each returns NULL
 * for a value outside its enum. The parse functions return -1 for unknown
 * names. */
const char *hpo_msg_type_name(hpo_msg_type type);
int hpo_msg_type_parse(const char *name, hpo_msg_type *out);
const char *hpo_proto_status_name(hpo_proto_status status);
int hpo_proto_status_parse(const char *name, hpo_proto_status *out);
const char *hpo_trial_status_name(hpo_trial_status status);
int hpo_trial_status_parse(const char *name, hpo_trial_status *out);
const char *hpo_query_command_name(hpo_query_command command);
int hpo_query_command_parse(const char *name, hpo_query_command *out);
const char *hpo_worker_kind_name(hpo_worker_kind kind); /* NULL for UNKNOWN */
int hpo_worker_kind_parse(const char *name, hpo_worker_kind *out);

/* Builds an `error` message: code and a printf-style text, truncated to
 * HPO_MESSAGE_MAX bytes. */
void hpo_msg_error_init(hpo_msg *msg, hpo_proto_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
