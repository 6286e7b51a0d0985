/* Tuner: proposes the next configuration of a study.
 *
 * The coordinator creates one tuner per study, replays every stored trial
 * into it with hpo_tuner_observe() (finished, failed and still pending
 * ones), then alternates hpo_tuner_propose() and hpo_tuner_observe() as
 * trials are handed out and finish. A tuner never proposes a configuration
 * whose active parameter values equal those of a configuration it has
 * proposed or observed, because equal active values resolve to equal
 * models. docs/study-file.md describes the tuners and their exhaustion
 * rules. */
#ifndef HPO_TUNER_H
#define HPO_TUNER_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "hpo/study.h"

typedef enum {
    HPO_OBSERVE_PENDING = 0, /* handed out or queued, no result yet */
    HPO_OBSERVE_OK,          /* finished with an objective value */
    HPO_OBSERVE_FAILED,      /* failed: the model could not be built or
                                training diverged or crashed */
} hpo_observe_status;

typedef struct hpo_tuner hpo_tuner;

/* Returns the tuner name equal to name as a static string, or NULL with a
 * message in err for a name that no tuner has. */
const char *hpo_tuner_known_name(const char *name, char *err, size_t errlen);

/* Creates a tuner by name: "bayes" (Gaussian-process Bayesian
 * optimization, daemon/tuner_bayes.h) or "random" (a Sobol initial
 * design, then uniform random draws), each with its default options. The
 * tuner keeps a pointer to study, which must outlive it.
 * The same seed and the same calls give the same proposals. On success the
 * caller frees *out with hpo_tuner_destroy(). */
int hpo_tuner_create(const char *name, const hpo_study *study, uint64_t seed,
                     hpo_tuner **out, char *err, size_t errlen);

/* Records a trial. values contains the parameter values that were proposed
 * or stored, and inactive ones may be missing. active may be NULL, in which
 * case the tuner computes it from values; when values is given, the tuner
 * computes active from it and ignores the argument. objective is the study's metric as
 * measured (the tuner applies the direction), NAN unless status is
 * HPO_OBSERVE_OK. Observing the same configuration again updates its
 * status and objective. Neither object is kept. */
int hpo_tuner_observe(hpo_tuner *tuner, const cJSON *values,
                      const cJSON *active, double objective,
                      hpo_observe_status status, char *err, size_t errlen);

/* Proposes a configuration that no earlier proposal or observation has.
 * Returns 0 and a values object (one value per parameter, inactive ones
 * included) that the caller owns; 1 when the space is exhausted, leaving
 * *values_out NULL; -1 on error. The proposal counts as pending from now
 * on, so calling hpo_tuner_observe() with HPO_OBSERVE_PENDING for it is
 * not needed. */
int hpo_tuner_propose(hpo_tuner *tuner, cJSON **values_out,
                      char *err, size_t errlen);

/* The tuner's name as given to hpo_tuner_create(). */
const char *hpo_tuner_name(const hpo_tuner *tuner);

/* Number of distinct configurations proposed or observed so far. */
int hpo_tuner_known_count(const hpo_tuner *tuner);

/* Frees *tuner and sets it to NULL. Accepts NULL. */
void hpo_tuner_destroy(hpo_tuner **tuner);

#endif
