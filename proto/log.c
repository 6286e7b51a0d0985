#include "hpo/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *log_role = "hpo";
static hpo_log_level log_min_level = HPO_LOG_INFO;
static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void hpo_log_init(const char *role, hpo_log_level min_level)
{
    log_role = role;
    log_min_level = min_level;
}

int hpo_log_level_parse(const char *name, hpo_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, names[i]) == 0) {
            *out = (hpo_log_level)i;
            return 0;
        }
    }
    return -1;
}

static void log_write(hpo_log_level level, const char *fmt, va_list ap)
{
    struct timespec now;
    struct tm utc;
    char stamp[32];

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &utc);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);

    /* One locked write per line keeps lines from threads whole. */
    pthread_mutex_lock(&log_mutex);
    fprintf(stderr, "%s.%03ldZ %ld %s %s ", stamp, now.tv_nsec / 1000000L,
            (long)getpid(), log_role, level_names[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
    pthread_mutex_unlock(&log_mutex);
}

void hpo_log(hpo_log_level level, const char *fmt, ...)
{
    if (level < log_min_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    log_write(level, fmt, ap);
    va_end(ap);
}

/* Rate-limit state, one slot per call site key. Keys are compared by
 * pointer, so they must be static strings. */
#define LIMIT_SLOTS 32
#define LIMIT_WINDOW_SECONDS 10

static struct {
    const char *key;
    time_t window_start;
    int count;
} limit_slots[LIMIT_SLOTS];

void hpo_log_limited(const char *key, int burst, hpo_log_level level,
                     const char *fmt, ...)
{
    if (level < log_min_level)
        return;

    time_t now = time(NULL);
    int suppressed = 0;
    bool print = true;

    pthread_mutex_lock(&log_mutex);
    int slot = -1;
    for (int i = 0; i < LIMIT_SLOTS; i++) {
        if (limit_slots[i].key == key || limit_slots[i].key == NULL) {
            slot = i;
            break;
        }
    }
    if (slot >= 0) {
        if (limit_slots[slot].key == NULL ||
            now - limit_slots[slot].window_start >= LIMIT_WINDOW_SECONDS) {
            if (limit_slots[slot].count > burst)
                suppressed = limit_slots[slot].count - burst;
            limit_slots[slot].key = key;
            limit_slots[slot].window_start = now;
            limit_slots[slot].count = 0;
        }
        limit_slots[slot].count++;
        print = limit_slots[slot].count <= burst;
    }
    pthread_mutex_unlock(&log_mutex);

    if (suppressed > 0)
        hpo_log(level, "%d similar messages suppressed in the last %d s (%s)",
                suppressed, LIMIT_WINDOW_SECONDS, key);
    if (print) {
        va_list ap;
        va_start(ap, fmt);
        log_write(level, fmt, ap);
        va_end(ap);
    }
}
