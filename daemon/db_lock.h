/* One hpod per study database. Two coordinators on one database would
 * both propose and run trials, repeat each other's configurations and
 * overwrite each other's study state, so hpod holds an exclusive lock on
 * a file beside the database for as long as it runs. hpoctl, which only
 * reads, does not take it. */
#ifndef HPO_DAEMON_DB_LOCK_H
#define HPO_DAEMON_DB_LOCK_H

#include <stddef.h>

/* Locks DB_PATH-lock (created when missing) with flock() and writes this
 * process's pid into it. On success *fd is the open, locked file, which
 * the caller keeps open until it stops using the database and then
 * passes to hpo_db_lock_release(). Returns -1 with a message naming the
 * pid of the hpod holding the lock and what to do. */
int hpo_db_lock_acquire(const char *db_path, int *fd, char *err, size_t errlen);

/* Releases a lock from hpo_db_lock_acquire() and sets *fd to -1. The lock
 * file stays: removing it could let two processes lock different files of
 * the same name. */
void hpo_db_lock_release(int *fd);

#endif
