#include "db_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "hpo/error.h"
#include "hpo/log.h"

/* Reads the pid that the lock's holder wrote, or "unknown". */
static void read_holder(int fd, char *pid, size_t size)
{
    ssize_t n = pread(fd, pid, size - 1, 0);
    pid[n > 0 ? n : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    if (pid[0] == '\0')
        snprintf(pid, size, "unknown");
}

int hpo_db_lock_acquire(const char *db_path, int *fd, char *err, size_t errlen)
{
    char path[4096];
    *fd = -1;
    if ((size_t)snprintf(path, sizeof path, "%s-lock", db_path) >= sizeof path)
        return hpo_error(err, errlen, "database path %s is too long", db_path);

    int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock < 0)
        return hpo_error(err, errlen, "cannot open the lock file %s: %s (is the --db folder "
                         "writable?)", path, strerror(errno));
    if (flock(lock, LOCK_EX | LOCK_NB) != 0) {
        int saved = errno;
        char holder[32];
        read_holder(lock, holder, sizeof holder);
        close(lock);
        if (saved == EWOULDBLOCK)
            return hpo_error(err, errlen, "database %s is in use by another hpod (pid %s, "
                             "which holds %s); stop that hpod first, or give this one "
                             "another --db", db_path, holder, path);
        return hpo_error(err, errlen, "locking %s failed: %s", path, strerror(saved));
    }

    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(lock, 0) != 0 || pwrite(lock, pid, (size_t)len, 0) != len)
        hpo_log_warn("writing the pid into the lock file %s failed: %s", path,
                     strerror(errno));
    hpo_log_debug("locked %s for database %s", path, db_path);
    *fd = lock;
    return 0;
}

void hpo_db_lock_release(int *fd)
{
    if (*fd >= 0) {
        flock(*fd, LOCK_UN);
        close(*fd);
    }
    *fd = -1;
}
