/* Acquisition functions of the Bayesian-optimization tuner, and their
 * optimization over a study's mixed search space.
 *
 * The tuner minimizes: it negates objectives that the study maximizes. An
 * acquisition value is larger where a trial is more worth running. */
#ifndef HPO_ACQUISITION_H
#define HPO_ACQUISITION_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <gsl/gsl_rng.h>

#include "encoding.h"
#include "hpo/gp.h"

typedef enum {
    HPO_ACQ_LOG_EI = 0, /* log expected improvement, the default */
    HPO_ACQ_UCB,        /* confidence bound: beta sd - mean */
    HPO_ACQ_PI,         /* log probability of improvement */
} hpo_acquisition_kind;

/* Default beta of Keras Tuner's BayesianOptimization, whose oracle
 * minimizes mean - beta sd of its GP (keras-tuner 1.x). */
#define HPO_UCB_BETA_DEFAULT 2.6

/* Parses "ei", "ucb" or "pi"; -1 for anything else. */
int hpo_acquisition_parse(const char *name, hpo_acquisition_kind *out);

/* "ei", "ucb" or "pi". */
const char *hpo_acquisition_name(hpo_acquisition_kind kind);

/* log(phi(z) + z Phi(z)), where phi and Phi are the standard normal
 * density and distribution function, accurate to about 1e-15 (relative)
 * for every z and finite down to z = -1e150; below that z is clamped.
 * *derivative, when not NULL, receives d/dz = Phi(z) / (phi(z) + z Phi(z)). */
double hpo_log_ei_factor(double z, double *derivative);

/* log Phi(z), accurate in the far lower tail; *derivative, when not NULL,
 * receives phi(z) / Phi(z). */
double hpo_log_normal_cdf(double z, double *derivative);

typedef struct {
    hpo_acquisition_kind kind;
    double best;  /* incumbent: the lowest observed value, in the GP's units */
    double beta;  /* UCB only */
} hpo_acquisition;

/* Acquisition value at a point whose posterior has this mean and variance
 * (variance > 0):
 *   log EI = ln sd + log_ei_factor(z), z = (best - mean) / sd, because
 *            EI = sd (phi(z) + z Phi(z));
 *   UCB    = beta sd - mean;
 *   log PI = log Phi(z).
 * d_mean and d_variance, when not NULL, receive the partial derivatives. */
double hpo_acquisition_value(const hpo_acquisition *acq, double mean, double variance,
                             double *d_mean, double *d_variance);

/* ---- optimization over the search space ---- */

typedef struct {
    int sobol_points;    /* quasi-random candidates (GSL's Sobol sequence) */
    int perturbations;   /* random perturbations of each incumbent */
    int local_starts;    /* best candidates refined by BFGS over the
                            continuous columns */
    int ranked;          /* candidates returned, best first */
} hpo_search_options;

/* Fills *options with the defaults: 1024 Sobol points, 64 perturbations
 * of each incumbent, 3 local starts, 8 ranked candidates. */
void hpo_search_options_default(hpo_search_options *options);

/* Tells whether a configuration key (hpo_study_config_key()) belongs to a
 * trial that is already known: finished, failed or pending. */
typedef bool (*hpo_known_fn)(void *context, const char *key);

/* A proposal candidate. */
typedef struct {
    cJSON *values;  /* one value per parameter; owned */
    char *key;      /* configuration key; owned */
    double score;   /* acquisition value */
} hpo_candidate;

/* Maximizes the acquisition over the encoded space of enc with the fitted
 * gp. Sobol points of the parameter space and perturbations of the rows of
 * incumbents (n_incumbents encoded rows, best first) are projected to
 * valid configurations and scored. The best distinct ones are then refined
 * along their continuous columns. Returns in *out, best first, up to
 * options->ranked distinct candidates for which known() is false; *n_out
 * is 0 when every candidate was known. The caller frees the list with
 * hpo_candidates_free(). */
int hpo_acquisition_search(const hpo_acquisition *acq, const hpo_gp *gp,
                           const hpo_encoding *enc, const double *incumbents,
                           int n_incumbents, hpo_known_fn known, void *context,
                           const hpo_search_options *options, gsl_rng *rng,
                           hpo_candidate **out, int *n_out, char *err, size_t errlen);

/* Frees n candidates and the array. Accepts NULL. */
void hpo_candidates_free(hpo_candidate *candidates, int n);

#endif
