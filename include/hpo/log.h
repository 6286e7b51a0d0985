/* Logging shared by every hpod program.
 *
 * One line per event on stderr:
 *   2026-12-04T21:03:07.412Z 4711 hpod INFO trial 12 assigned to worker w3
 * that is, UTC time with milliseconds, pid, role, level and message. */
#ifndef HPO_LOG_H
#define HPO_LOG_H

#include <stdbool.h>

typedef enum {
    HPO_LOG_DEBUG = 0,
    HPO_LOG_INFO,
    HPO_LOG_WARN,
    HPO_LOG_ERROR,
} hpo_log_level;

/* Sets the role printed on each line ("hpod", "worker", "hpoctl") and the
 * lowest level that is printed. The role string must outlive all logging. */
void hpo_log_init(const char *role, hpo_log_level min_level);

/* Parses "debug", "info", "warn" or "error". Returns -1 for anything else. */
int hpo_log_level_parse(const char *name, hpo_log_level *out);

void hpo_log(hpo_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Logs at most `burst` messages per `key` in each 10-second window, then one
 * summary line with the count of suppressed messages when the window ends.
 * Meant for floods such as a peer sending garbage; `key` is a static
 * string identifying the call site. */
void hpo_log_limited(const char *key, int burst, hpo_log_level level,
                     const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define hpo_log_debug(...) hpo_log(HPO_LOG_DEBUG, __VA_ARGS__)
#define hpo_log_info(...) hpo_log(HPO_LOG_INFO, __VA_ARGS__)
#define hpo_log_warn(...) hpo_log(HPO_LOG_WARN, __VA_ARGS__)
#define hpo_log_error(...) hpo_log(HPO_LOG_ERROR, __VA_ARGS__)

#endif
