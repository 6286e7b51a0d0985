/* Tests of hpod as a process across restarts. A study stores its tuner,
 * tuner options, max failures and max attempts and keeps them, another
 * --tuner is rejected, and a database of schema version 1 is upgraded.
 * Also the open-file limit that hpod raises at start. Each test starts a
 * real hpod on IPC sockets in a temporary folder, reads its log and checks
 * the SQLite file with the plain SQLite API.
 *
 * Usage: test_resume HPOD STUDY_FILE */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sqlite3.h>

#include "schema_v1.h"

static const char *hpod_path;
static const char *study_path;

/* Generous, because CI runs every test on two shared cores. */
#define START_MS 20000

/* Exit status of a child whose setup before exec failed; the test skips. */
#define SETUP_FAILED 98

/* Soft and hard RLIMIT_NOFILE set in the child before it runs hpod; 0
 * leaves the limits as they are. */
typedef struct {
    rlim_t soft, hard;
    bool deny_setrlimit;  /* make every setrlimit fail with EPERM */
} child_limits;

typedef struct {
    char dir[64];
    char db[128];
    char ready[128];
    char log[128];
    char workers[160];
    char control[160];
    pid_t hpod;
    char log_text[65536];  /* the log of the last run, read by read_log() */
} fixture;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    strcpy(f->dir, "/tmp/hpo-test-resume-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->db, sizeof f->db, "%s/study.db", f->dir);
    snprintf(f->ready, sizeof f->ready, "%s/ready", f->dir);
    snprintf(f->log, sizeof f->log, "%s/hpod.log", f->dir);
    snprintf(f->workers, sizeof f->workers, "ipc://%s/workers", f->dir);
    snprintf(f->control, sizeof f->control, "ipc://%s/control", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->hpod > 0) {
        kill(f->hpod, SIGKILL);
        waitpid(f->hpod, NULL, 0);
    }
    char command[200];
    snprintf(command, sizeof command, "rm -rf '%s'", f->dir);
    int rc = system(command);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Installs a seccomp filter under which every change of RLIMIT_NOFILE,
 * through setrlimit() or prlimit64() with a new limit, fails with EPERM.
 * Reading the limit and changing other limits keep working, so that a
 * sanitizer runtime that sets RLIMIT_CORE at start still runs. Returns -1
 * where the filter cannot be installed. */
static int deny_setrlimit(void)
{
#if defined(__x86_64__)
    const unsigned arg0 = offsetof(struct seccomp_data, args);
    const unsigned arg1 = arg0 + sizeof(uint64_t);
    const unsigned arg2 = arg0 + 2 * sizeof(uint64_t);
    /* The jump offsets count instructions from the next one. */
    struct sock_filter code[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        /* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        /* 2 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* 3 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        /* 4 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_setrlimit, 0, 2),
        /* 5: setrlimit's resource */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg0),
        /* 6 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, RLIMIT_NOFILE, 8, 7),
        /* 7 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_prlimit64, 0, 6),
        /* 8: prlimit64's resource */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg1),
        /* 9 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, RLIMIT_NOFILE, 0, 4),
        /* 10: prlimit64's new limit, a pointer: low half, then high half */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg2),
        /* 11 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 3),
        /* 12 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg2 + 4),
        /* 13 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1),
        /* 14 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* 15 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    };
    struct sock_fprog program = {sizeof code / sizeof code[0], code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0)
        return -1;
    return 0;
#else
    return -1;
#endif
}

/* Runs in the forked child: sets the limits, sends output to the log and
 * runs hpod. */
static void exec_hpod(const fixture *f, const child_limits *limits, const char **argv)
{
    int fd = open(f->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        dup2(fd, STDERR_FILENO);
        dup2(fd, STDOUT_FILENO);
    }
    if (limits != NULL && limits->hard > 0) {
        struct rlimit limit = {limits->soft, limits->hard};
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
            _exit(SETUP_FAILED);
    }
    if (limits != NULL && limits->deny_setrlimit && deny_setrlimit() != 0)
        _exit(SETUP_FAILED);
    execv(hpod_path, (char *const *)argv);
    _exit(127);
}

/* Reads the log of the last run into f->log_text. */
static const char *read_log(fixture *f)
{
    f->log_text[0] = '\0';
    FILE *file = fopen(f->log, "r");
    if (file != NULL) {
        size_t n = fread(f->log_text, 1, sizeof f->log_text - 1, file);
        f->log_text[n] = '\0';
        fclose(file);
    }
    return f->log_text;
}

static void expect_log(fixture *f, const char *expected)
{
    if (strstr(read_log(f), expected) == NULL)
        fail_msg("the hpod log lacks \"%s\":\n%s", expected, f->log_text);
}

/* Waits up to timeout_ms for hpod to exit and returns its exit status, or
 * -1 on timeout. */
static int wait_hpod(fixture *f, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        int status;
        if (waitpid(f->hpod, &status, WNOHANG) == f->hpod) {
            f->hpod = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        sleep_ms(20);
    }
    return -1;
}

/* Starts hpod with the fixture's database and endpoints plus the extra
 * arguments (NULL-terminated). Returns 0 once it listens, or its exit
 * status when it exits first. */
static int start_hpod(fixture *f, const child_limits *limits, ...)
{
    const char *argv[32];
    int argc = 0;
    argv[argc++] = hpod_path;
    argv[argc++] = "--db";
    argv[argc++] = f->db;
    argv[argc++] = "--workers";
    argv[argc++] = f->workers;
    argv[argc++] = "--control";
    argv[argc++] = f->control;
    argv[argc++] = "--ready-file";
    argv[argc++] = f->ready;
    va_list ap;
    va_start(ap, limits);
    const char *extra;
    while ((extra = va_arg(ap, const char *)) != NULL && argc < 31)
        argv[argc++] = extra;
    va_end(ap);
    argv[argc] = NULL;

    unlink(f->ready);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        exec_hpod(f, limits, argv);
    f->hpod = pid;

    int64_t deadline = now_ms() + START_MS;
    while (access(f->ready, F_OK) != 0) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            f->hpod = 0;
            if (WIFEXITED(status) && WEXITSTATUS(status) == SETUP_FAILED)
                skip();
            assert_true(WIFEXITED(status));
            assert_int_not_equal(WEXITSTATUS(status), 0);
            return WEXITSTATUS(status);
        }
        if (now_ms() > deadline)
            fail_msg("hpod neither listened nor exited within %d ms:\n%s",
                     START_MS, read_log(f));
        sleep_ms(20);
    }
    return 0;
}

/* Stops a listening hpod with SIGTERM and expects exit status 0. */
static void stop_hpod(fixture *f)
{
    assert_int_equal(kill(f->hpod, SIGTERM), 0);
    int status = wait_hpod(f, START_MS);
    if (status != 0)
        fail_msg("hpod exited with status %d after SIGTERM:\n%s", status, read_log(f));
}

/* Starts hpod, expects it to listen and stops it again. */
static void run_hpod(fixture *f, const child_limits *limits, const char *arg1,
                     const char *arg2, const char *arg3, const char *arg4)
{
    int status = start_hpod(f, limits, arg1, arg2, arg3, arg4, (const char *)NULL);
    if (status != 0)
        fail_msg("hpod exited with status %d before listening:\n%s", status,
                 read_log(f));
    stop_hpod(f);
}

/* Returns the first column of the first row of a query as text ("" for
 * no row, "NULL" for NULL), in a static buffer. */
static const char *query_text(const char *path, const char *sql)
{
    static char out[1024];
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    out[0] = '\0';
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
        fail_msg("%s failed: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(stmt) == SQLITE_ROW) {
        const unsigned char *text = sqlite3_column_text(stmt, 0);
        snprintf(out, sizeof out, "%s", text != NULL ? (const char *)text : "NULL");
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return out;
}

static void exec_sql(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *message = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &message) != SQLITE_OK)
        fail_msg("%s failed: %s", sql, message);
    sqlite3_close(db);
}

/* Reads the hard and soft RLIMIT_NOFILE of a running process from
 * /proc/PID/limits. */
static void process_open_file_limit(pid_t pid, unsigned long long *soft,
                                    unsigned long long *hard)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/limits", (int)pid);
    FILE *file = fopen(path, "r");
    assert_non_null(file);
    bool found = false;
    while (!found && fgets(line, sizeof line, file) != NULL)
        found = sscanf(line, "Max open files %llu %llu", soft, hard) == 2;
    fclose(file);
    assert_true(found);
}

/* ---- tests ---------------------------------------------------------- */

/* A study created with --tuner random, --max-failures 5 and --max-attempts
 * 4 stores them, and a restart without those options runs with them. */
static void test_settings_kept_on_resume(void **state)
{
    fixture *f = *state;
    int status = start_hpod(f, NULL, "--study", study_path, "--tuner", "random",
                            "--max-failures", "5", "--max-attempts", "4",
                            (const char *)NULL);
    assert_int_equal(status, 0);
    stop_hpod(f);
    assert_string_equal(query_text(f->db, "SELECT tuner FROM study"), "random");
    assert_string_equal(query_text(f->db, "SELECT tuner_options FROM study"), "{}");
    assert_string_equal(query_text(f->db, "SELECT max_failures FROM study"), "5");
    assert_string_equal(query_text(f->db, "SELECT max_attempts FROM study"), "4");

    run_hpod(f, NULL, NULL, NULL, NULL, NULL);
    expect_log(f, "study tiny keeps its tuner random with options {}");
    expect_log(f, "hpod starting: study tiny, tuner random,");
    expect_log(f, "4 attempts per trial, max 5 failures in a row");
    assert_string_equal(query_text(f->db, "SELECT count(*) FROM events "
                                   "WHERE event = 'study_settings'"), "0");

    /* An explicit limit replaces the stored one, and the next restart
     * keeps the new value. */
    run_hpod(f, NULL, "--max-attempts", "6", NULL, NULL);
    expect_log(f, "--max-attempts 6 replaces the stored 4");
    assert_string_equal(query_text(f->db, "SELECT max_attempts FROM study"), "6");
    assert_string_equal(query_text(f->db, "SELECT detail FROM events "
                                   "WHERE event = 'study_settings'"), "max_attempts=6");
    run_hpod(f, NULL, NULL, NULL, NULL, NULL);
    expect_log(f, "6 attempts per trial, max 5 failures in a row");
}

/* A bayes study stores the design size it chose: the tiny study's 5
 * parameters give max(5, 5 + 1) = 6, capped at max(5, 6 / 3) = 5. */
/* A second hpod on a database that a running hpod uses exits at start,
 * naming the first one's pid, and leaves the first one running. */
static void test_second_hpod_rejected(void **state)
{
    fixture *f = *state;
    assert_int_equal(start_hpod(f, NULL, "--study", study_path, (const char *)NULL), 0);
    pid_t first = f->hpod;

    assert_int_equal(start_hpod(f, NULL, (const char *)NULL), 1);
    char expected[128];
    snprintf(expected, sizeof expected, "is in use by another hpod (pid %ld",
             (long)first);
    expect_log(f, expected);
    expect_log(f, "give this one another --db");

    f->hpod = first;
    assert_int_equal(kill(first, 0), 0);
    stop_hpod(f);
    /* The lock goes with the hpod that held it. */
    run_hpod(f, NULL, NULL, NULL, NULL, NULL);
}

/* A start that fails on an invalid study file leaves no new database
 * behind, so that the fixed file starts a fresh study. */
static void test_failed_start_leaves_no_database(void **state)
{
    fixture *f = *state;
    char bad[sizeof f->dir + 16];
    snprintf(bad, sizeof bad, "%s/bad.json", f->dir);
    FILE *file = fopen(bad, "w");
    assert_non_null(file);
    fputs("{\"name\": \"broken\",", file);
    fclose(file);

    assert_int_equal(start_hpod(f, NULL, "--study", bad, (const char *)NULL), 1);
    expect_log(f, "invalid JSON");
    assert_int_equal(access(f->db, F_OK), -1);
    run_hpod(f, NULL, "--study", study_path, NULL, NULL);
    assert_int_equal(access(f->db, F_OK), 0);
}

static void test_bayes_options_stored(void **state)
{
    fixture *f = *state;
    run_hpod(f, NULL, "--study", study_path, NULL, NULL);
    assert_string_equal(query_text(f->db, "SELECT tuner FROM study"), "bayes");
    assert_string_equal(query_text(f->db, "SELECT json_extract(tuner_options, "
                                   "'$.initial_trials') FROM study"), "5");
    assert_string_equal(query_text(f->db, "SELECT json_extract(tuner_options, "
                                   "'$.acquisition') FROM study"), "ei");

    /* A stored option wins over the default on resume. */
    exec_sql(f->db, "UPDATE study SET tuner_options = "
                    "json_set(tuner_options, '$.initial_trials', 3)");
    run_hpod(f, NULL, NULL, NULL, NULL, NULL);
    expect_log(f, "\"initial_trials\":3");
    expect_log(f, "3 design trials");
}

/* An explicit --tuner that differs from the stored one stops hpod before
 * it listens, names both tuners and the fix, and changes nothing. */
static void test_other_tuner_rejected(void **state)
{
    fixture *f = *state;
    run_hpod(f, NULL, "--study", study_path, NULL, NULL);
    const char *options = query_text(f->db, "SELECT tuner_options FROM study");
    char stored_options[1024];
    snprintf(stored_options, sizeof stored_options, "%s", options);

    int status = start_hpod(f, NULL, "--tuner", "random", (const char *)NULL);
    assert_int_equal(status, 1);
    expect_log(f, "--tuner random: study tiny");
    expect_log(f, "runs with tuner bayes");
    expect_log(f, "leave out --tuner to resume with bayes");
    expect_log(f, "new --db to use random");
    assert_string_equal(query_text(f->db, "SELECT tuner FROM study"), "bayes");
    assert_string_equal(query_text(f->db, "SELECT tuner_options FROM study"),
                        stored_options);
    assert_string_equal(query_text(f->db, "SELECT state FROM study"), "stopped");

    /* The stored tuner, named explicitly, is accepted. */
    run_hpod(f, NULL, "--tuner", "bayes", NULL, NULL);
    expect_log(f, "hpod starting: study tiny, tuner bayes,");
}

/* An unknown --tuner fails with the usage status before anything opens
 * the database. */
static void test_unknown_tuner_rejected(void **state)
{
    fixture *f = *state;
    int status = start_hpod(f, NULL, "--study", study_path, "--tuner", "grid",
                            (const char *)NULL);
    assert_int_equal(status, 2);
    expect_log(f, "tuner \"grid\": unknown; use \"bayes\" or \"random\"");
    assert_int_equal(access(f->db, F_OK), -1);
}

/* Stored options that this hpod cannot read stop it with the reason. */
static void test_bad_stored_options_rejected(void **state)
{
    fixture *f = *state;
    run_hpod(f, NULL, "--study", study_path, NULL, NULL);
    exec_sql(f->db, "UPDATE study SET tuner_options = '{\"sobol\":64}'");
    assert_int_equal(start_hpod(f, NULL, (const char *)NULL), 1);
    expect_log(f, "the stored tuner is invalid");
    expect_log(f, "unknown member \"sobol\"");

    exec_sql(f->db, "UPDATE study SET tuner = 'annealing', tuner_options = '{}'");
    assert_int_equal(start_hpod(f, NULL, (const char *)NULL), 1);
    expect_log(f, "tuner \"annealing\": unknown");
}

/* Writes a database as hpod of schema version 1 left it: the tiny study,
 * stopped, without stored settings. */
static void write_v1_database(const fixture *f)
{
    FILE *file = fopen(study_path, "rb");
    assert_non_null(file);
    static char spec[65536];
    size_t n = fread(spec, 1, sizeof spec - 1, file);
    fclose(file);
    spec[n] = '\0';

    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, hpo_test_schema_v1, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO study (id, name, spec, seed, "
                                        "max_trials, state) VALUES (1, 'tiny', ?1, 1, "
                                        "6, 'stopped')", -1, &stmt, NULL), SQLITE_OK);
    sqlite3_bind_text(stmt, 1, spec, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(stmt), SQLITE_DONE);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

/* hpod resumes a study of schema version 1 with --tuner, upgrades the
 * file, stores that tuner and the limits, and keeps the tuner from then
 * on. */
static void test_v1_database_resumed(void **state)
{
    fixture *f = *state;
    write_v1_database(f);
    run_hpod(f, NULL, "--tuner", "random", NULL, NULL);
    expect_log(f, "upgraded the schema of");
    expect_log(f, "stores no tuner, because an older hpod created it; resuming "
                  "study tiny with tuner random (--tuner) and storing it");
    assert_string_equal(query_text(f->db, "PRAGMA user_version"), "2");
    assert_string_equal(query_text(f->db, "SELECT tuner FROM study"), "random");
    assert_string_equal(query_text(f->db, "SELECT tuner_options FROM study"), "{}");
    assert_string_equal(query_text(f->db, "SELECT max_failures FROM study"), "3");
    assert_string_equal(query_text(f->db, "SELECT max_attempts FROM study"), "3");
    assert_string_equal(query_text(f->db, "SELECT detail FROM events WHERE event = "
                                   "'study_settings'"),
                        "tuner=random max_failures=3 max_attempts=3");

    assert_int_equal(start_hpod(f, NULL, "--tuner", "bayes", (const char *)NULL), 1);
    expect_log(f, "runs with tuner random");
}

/* Without --tuner, a study of schema version 1 takes the default tuner. */
static void test_v1_database_default_tuner(void **state)
{
    fixture *f = *state;
    write_v1_database(f);
    run_hpod(f, NULL, NULL, NULL, NULL, NULL);
    expect_log(f, "with tuner bayes (the default) and storing it");
    assert_string_equal(query_text(f->db, "SELECT tuner FROM study"), "bayes");
    assert_string_equal(query_text(f->db, "SELECT json_extract(tuner_options, "
                                   "'$.initial_trials') FROM study"), "5");
}

/* The hard limit that the tests give hpod: the current one, at most
 * 4,096, so that it differs from the soft limit of 128. */
static rlim_t test_hard_limit(void)
{
    struct rlimit limit;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &limit), 0);
    if (limit.rlim_max <= 128)
        skip();
    return limit.rlim_max < 4096 ? limit.rlim_max : 4096;
}

/* hpod raises its soft limit to the hard limit and logs both values. */
static void test_open_file_limit_raised(void **state)
{
    fixture *f = *state;
    rlim_t hard = test_hard_limit();
    child_limits limits = {128, hard, false};
    assert_int_equal(start_hpod(f, &limits, "--study", study_path, (const char *)NULL), 0);

    unsigned long long soft_now = 0, hard_now = 0;
    process_open_file_limit(f->hpod, &soft_now, &hard_now);
    assert_int_equal(soft_now, hard);
    assert_int_equal(hard_now, hard);
    stop_hpod(f);

    char expected[160];
    snprintf(expected, sizeof expected, "INFO raised the open-file limit (RLIMIT_NOFILE) "
             "from soft 128 to the hard limit %llu", (unsigned long long)hard);
    expect_log(f, expected);

    /* A soft limit already at the hard limit is only logged. */
    limits.soft = hard;
    run_hpod(f, &limits, NULL, NULL, NULL, NULL);
    snprintf(expected, sizeof expected, "open-file limit (RLIMIT_NOFILE): soft %llu is "
             "already the hard limit %llu", (unsigned long long)hard,
             (unsigned long long)hard);
    expect_log(f, expected);
}

/* When setrlimit fails, hpod warns with the limit and its values and
 * still runs. */
static void test_open_file_limit_failure_warns(void **state)
{
    fixture *f = *state;
    rlim_t hard = test_hard_limit();
    child_limits limits = {128, hard, true};
    assert_int_equal(start_hpod(f, &limits, "--study", study_path, (const char *)NULL), 0);

    unsigned long long soft_now = 0, hard_now = 0;
    process_open_file_limit(f->hpod, &soft_now, &hard_now);
    assert_int_equal(soft_now, 128);
    stop_hpod(f);

    char expected[200];
    snprintf(expected, sizeof expected, "WARN raising the open-file limit (RLIMIT_NOFILE) "
             "from soft 128 to the hard limit %llu failed: %s", (unsigned long long)hard,
             strerror(EPERM));
    expect_log(f, expected);
    expect_log(f, "ulimit -n");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s HPOD STUDY_FILE\n", argv[0]);
        return 2;
    }
    hpod_path = argv[1];
    study_path = argv[2];

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_settings_kept_on_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_hpod_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_start_leaves_no_database, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bayes_options_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_tuner_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_tuner_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_stored_options_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_database_resumed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_database_default_tuner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_file_limit_raised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_file_limit_failure_warns, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
