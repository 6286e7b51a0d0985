/* Opening hpod's study: a new one from the study file, or the one stored
 * in the database, together with the settings that a study keeps across
 * restarts (the seed, the tuner with its options, max failures and max
 * attempts). docs/storage.md lists the rules under "Resuming". */
#ifndef HPO_DAEMON_STUDY_OPEN_H
#define HPO_DAEMON_STUDY_OPEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hpo/study.h"
#include "hpo/tuner.h"
#include "storage.h"

/* The options of hpod's command line that concern the study. The strings
 * are borrowed. */
typedef struct {
    const char *db_path;      /* --db, for messages */
    const char *study_path;   /* --study; NULL when not given */
    const char *tuner;        /* --tuner, or the default */
    bool tuner_given;
    uint64_t seed;            /* --seed, or the default */
    bool seed_given;
    int max_trials;           /* --max-trials; 0 when not given */
    int max_failures;         /* --max-failures, or the default */
    bool max_failures_given;
    int max_attempts;         /* --max-attempts, or the default */
    bool max_attempts_given;
} hpo_study_request;

/* Loads the study stored in storage, or, when storage contains none, the
 * study file request->study_path, and creates the study's tuner.
 *
 * A new study is stored with its seed, tuner, tuner options, max failures
 * and max attempts. A resumed study keeps them. An explicit --tuner that
 * differs from the stored tuner is an error. --seed is ignored with a
 * warning. --max-trials, --max-failures and --max-attempts, when given,
 * replace the stored values. A database written before tuners were stored
 * takes request->tuner and stores it.
 *
 * On success request->tuner, seed, max_trials, max_failures and
 * max_attempts hold the values that the study runs with. The caller frees
 * *tuner_out with hpo_tuner_destroy() before *study_out, which the tuner
 * points to, with hpo_study_destroy(). */
int hpo_study_open(hpo_study_request *request, hpo_storage *storage,
                   hpo_study **study_out, hpo_tuner **tuner_out,
                   char *err, size_t errlen);

#endif
