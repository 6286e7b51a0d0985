/* The "bayes" tuner: Gaussian-process Bayesian optimization.
 *
 * hpo_tuner_create("bayes", ...) makes one, used through the generic
 * interface of hpo/tuner.h. A quasi-random (Sobol) design comes first.
 * Then each proposal fits a GP to the finished trials, with failed ones at
 * the worst observed objective. The GP is conditioned on the pending trials
 * with the kriging believer, and the proposal maximizes the acquisition
 * over the search space. docs/tuner.md explains the rules and reasons.
 *
 * The fit and the search take from milliseconds to about a second (1,000
 * trials), so a coordinator with an event loop can run them on another
 * thread in three steps:
 *   1. hpo_tuner_bayes_prepare() on the tuner's thread copies what the
 *      proposal needs into a job;
 *   2. hpo_bayes_job_run() on any thread fits and searches; it touches only
 *      the job, the tuner's encoding and the study, which never change, so
 *      the tuner may observe and propose meanwhile;
 *   3. hpo_tuner_bayes_finish() on the tuner's thread stores the result;
 *      the next hpo_tuner_propose() returns the best candidate that is not
 *      known by then, without fitting again.
 * A plain hpo_tuner_propose() does all three steps itself. */
#ifndef HPO_TUNER_BAYES_H
#define HPO_TUNER_BAYES_H

#include <stdbool.h>
#include <stddef.h>

#include "acquisition.h"
#include "hpo/tuner.h"

typedef struct {
    /* Trials of the quasi-random design; 0 takes the study file's
     * tuner.initial_trials, and when that is 0 too, max(5, d + 1), d being
     * the number of parameters with two or more values, but at most
     * max(5, budget.max_trials / 3). */
    int initial_trials;
    hpo_acquisition_kind acquisition;
    double ucb_beta;
    /* Random restarts of the hyperparameter search (see hpo/gp.h). */
    int restarts;
    hpo_search_options search;
} hpo_bayes_options;

/* Fills *options with the defaults: automatic design size, log EI,
 * beta 2.6, 2 restarts, and hpo_search_options_default(). */
void hpo_bayes_options_default(hpo_bayes_options *options);

/* Replaces the options of a "bayes" tuner; -1 for another tuner or an
 * invalid option. */
int hpo_tuner_bayes_configure(hpo_tuner *tuner, const hpo_bayes_options *options,
                              char *err, size_t errlen);

/* Number of trials of the quasi-random design in effect. */
int hpo_tuner_bayes_initial_trials(const hpo_tuner *tuner);

/* True when the next hpo_tuner_propose() would fit the GP: the design is
 * complete and no search result is stored for the trials known now. False
 * for other tuners. */
bool hpo_tuner_bayes_needs_fit(const hpo_tuner *tuner);

/* While design_only is set, a proposal that would fit the GP takes the next
 * point of the quasi-random design instead, so that a coordinator never
 * fits on its event loop. Proposals from a stored search result are
 * unaffected. Does nothing for other tuners. */
void hpo_tuner_bayes_set_design_only(hpo_tuner *tuner, bool design_only);

typedef struct hpo_bayes_job hpo_bayes_job;

/* Copies the data of the next GP proposal into *job_out, which the caller
 * frees with hpo_tuner_bayes_finish() or hpo_bayes_job_destroy(). Returns
 * 1 and leaves *job_out NULL when the next proposal needs no model, because
 * the design is not complete or no trial has an objective yet. Then call
 * hpo_tuner_propose() directly. */
int hpo_tuner_bayes_prepare(hpo_tuner *tuner, hpo_bayes_job **job_out,
                            char *err, size_t errlen);

/* Fits the GP and searches the acquisition; safe on any thread while the
 * tuner is used elsewhere, as long as the tuner outlives the job. */
int hpo_bayes_job_run(hpo_bayes_job *job, char *err, size_t errlen);

/* Stores the result of a job that ran (successfully or not) for the next
 * hpo_tuner_propose(), and frees the job. A job that failed leaves the
 * tuner proposing quasi-random configurations until the next fit. */
int hpo_tuner_bayes_finish(hpo_tuner *tuner, hpo_bayes_job **job, char *err, size_t errlen);

/* Frees *job and sets it to NULL. Accepts NULL. */
void hpo_bayes_job_destroy(hpo_bayes_job **job);

#endif
