/* The "bayes" tuner: a Sobol design, then GP proposals. tuner.c keeps the
 * known configurations and rejects duplicates; this file draws the
 * candidates. */
#include "tuner_bayes.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_qrng.h>
#include <gsl/gsl_rng.h>

#include "encoding.h"
#include "hpo/error.h"
#include "hpo/gp.h"
#include "hpo/log.h"
#include "study_internal.h"
#include "tuner_impl.h"

/* GSL's Sobol generator has direction numbers for 40 dimensions. */
#define SOBOL_MAX_DIMENSION 40

/* Bounds of the automatic design size (see hpo_bayes_options). */
#define INITIAL_MIN 5

/* Best finished trials whose neighbourhoods the acquisition search
 * explores with perturbations. */
#define INCUMBENTS 5

/* BFGS iterations per start of the hyperparameter search. */
#define FIT_ITERATIONS 100

typedef struct {
    hpo_bayes_options opt;
    hpo_encoding *enc;           /* owned */
    int columns;
    int n_initial;

    /* Quasi-random design over the parameters' unit cube. */
    gsl_qrng *sobol;             /* owned; NULL without parameters or above 40 */
    double *shift, *u;           /* owned; a random shift and the current point */

    /* Hyperparameters of the last fit, the start of the next one. */
    double *theta;               /* owned; columns + 2 values */
    bool have_theta;
    int theta_finished;          /* finished trials that the last
                                    optimization saw */

    /* Candidates of the last search, best first; valid while the tuner
     * has ranked_for trials. */
    hpo_candidate *ranked;       /* owned */
    int n_ranked, next_ranked, ranked_for;
    bool have_ranked;

    /* Set by hpo_tuner_bayes_set_design_only(): a proposal that needs a
     * fit takes the next design point instead. */
    bool design_only;

    /* Encoded rows of the known trials, in the order of tuner->trials. */
    double *rows;                /* owned */
    int n_rows, rows_capacity;
} bayes_state;

struct hpo_bayes_job {
    const hpo_encoding *enc;     /* borrowed from the tuner's state */
    const char *study_name;      /* borrowed */
    hpo_bayes_options opt;
    int columns;
    uint64_t seed;

    int n_fit, n_failed;         /* rows to fit; failed ones among them */
    double *x_fit, *y_fit;       /* owned; y oriented for minimization */
    int n_pending;
    double *x_pending;           /* owned */
    double best;                 /* lowest finished y */
    int n_incumbents;
    double *incumbents;          /* owned; best finished rows first */
    char **known;                /* owned; sorted keys of every known trial */
    int n_known;

    double *theta;               /* owned; start, then result */
    bool have_theta, optimize;
    int finished;                /* finished trials in this job */

    bool ran, failed;
    char failure[HPO_ERR_MAX];
    hpo_candidate *ranked;       /* owned; the result */
    int n_ranked;
    double fit_ms, search_ms;
};

static double elapsed_ms(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return 1e3 * (double)(now.tv_sec - start->tv_sec) + 1e-6 * (double)(now.tv_nsec - start->tv_nsec);
}

/* ---- options ---- */

void hpo_bayes_options_default(hpo_bayes_options *options)
{
    *options = (hpo_bayes_options){
        .initial_trials = 0,
        .acquisition = HPO_ACQ_LOG_EI,
        .ucb_beta = HPO_UCB_BETA_DEFAULT,
        .restarts = 2,
    };
    hpo_search_options_default(&options->search);
}

/* The design size: options->initial_trials, else the study file's
 * tuner.initial_trials, else max(5, d + 1) capped at max(5, max_trials / 3). */
static int design_size(const hpo_tuner *t, const bayes_state *s)
{
    if (s->opt.initial_trials > 0)
        return s->opt.initial_trials;
    if (hpo_study_tuner(t->study)->initial_trials > 0)
        return hpo_study_tuner(t->study)->initial_trials;

    int tunable = 0;
    for (int i = 0; i < hpo_study_param_count(t->study); i++)
        tunable += hpo_param_cardinality(hpo_study_param(t->study, i)) != 1;
    int n = tunable + 1 > INITIAL_MIN ? tunable + 1 : INITIAL_MIN;
    int cap = hpo_study_budget(t->study)->max_trials / 3;
    if (cap < INITIAL_MIN)
        cap = INITIAL_MIN;
    return n < cap ? n : cap;
}

static int check_options(const hpo_bayes_options *o, char *err, size_t errlen)
{
    if (o->initial_trials < 0)
        return hpo_error(err, errlen, "tuner bayes: initial trials %d is negative; use 0 for "
                         "the automatic size", o->initial_trials);
    if (!(o->ucb_beta >= 0.0) || !isfinite(o->ucb_beta))
        return hpo_error(err, errlen, "tuner bayes: UCB beta %g must be finite and at least 0",
                         o->ucb_beta);
    if (o->restarts < 0)
        return hpo_error(err, errlen, "tuner bayes: restarts %d is negative", o->restarts);
    if (o->search.sobol_points < 1 || o->search.perturbations < 0 ||
        o->search.local_starts < 0 || o->search.ranked < 1)
        return hpo_error(err, errlen, "tuner bayes: the acquisition search needs at least one "
                         "Sobol point and one ranked candidate");
    return 0;
}

int hpo_tuner_bayes_configure(hpo_tuner *t, const hpo_bayes_options *options,
                              char *err, size_t errlen)
{
    if (t->ops != &hpo_tuner_bayes_ops)
        return hpo_error(err, errlen, "tuner %s: bayes options apply only to the bayes tuner",
                         t->ops->name);
    if (check_options(options, err, errlen) < 0)
        return -1;

    bayes_state *s = t->state;
    s->opt = *options;
    s->n_initial = design_size(t, s);
    hpo_log_info("tuner bayes: study %s: %d design trials, acquisition %s",
                 hpo_study_name(t->study), s->n_initial, hpo_acquisition_name(options->acquisition));
    return 0;
}

int hpo_tuner_bayes_initial_trials(const hpo_tuner *t)
{
    return t->ops == &hpo_tuner_bayes_ops ? ((const bayes_state *)t->state)->n_initial : 0;
}

/* ---- state ---- */

static void free_ranked(bayes_state *s)
{
    hpo_candidates_free(s->ranked, s->n_ranked);
    s->ranked = NULL;
    s->n_ranked = s->next_ranked = 0;
    s->have_ranked = false;
}

static void bayes_destroy(hpo_tuner *t)
{
    bayes_state *s = t->state;
    if (s == NULL)
        return;
    free_ranked(s);
    hpo_encoding_destroy(&s->enc);
    if (s->sobol != NULL)
        gsl_qrng_free(s->sobol);
    free(s->shift);
    free(s->u);
    free(s->theta);
    free(s->rows);
    free(s);
    t->state = NULL;
}

static int bayes_init(hpo_tuner *t, char *err, size_t errlen)
{
    int d = hpo_study_param_count(t->study);
    bayes_state *s = calloc(1, sizeof *s);

    t->state = s;
    if (s == NULL)
        return hpo_error(err, errlen, "tuner bayes: out of memory");
    hpo_bayes_options_default(&s->opt);
    if (hpo_encoding_create(t->study, &s->enc, err, errlen) < 0)
        return -1;
    s->columns = hpo_encoding_columns(s->enc);
    s->shift = calloc(d > 0 ? (size_t)d : 1, sizeof *s->shift);
    s->u = calloc(d > 0 ? (size_t)d : 1, sizeof *s->u);
    s->theta = calloc((size_t)s->columns + 2, sizeof *s->theta);
    if (s->shift == NULL || s->u == NULL || s->theta == NULL)
        return hpo_error(err, errlen, "tuner bayes: out of memory");
    if (d > 0 && d <= SOBOL_MAX_DIMENSION) {
        s->sobol = gsl_qrng_alloc(gsl_qrng_sobol, (unsigned int)d);
        if (s->sobol == NULL)
            return hpo_error(err, errlen, "tuner bayes: out of memory for a Sobol generator");
    }
    for (int i = 0; i < d; i++)
        s->shift[i] = gsl_rng_uniform(t->rng);
    s->n_initial = design_size(t, s);
    hpo_log_info("tuner bayes: study %s: %d columns (%d activity), %d design trials, "
                 "acquisition %s", hpo_study_name(t->study), s->columns,
                 hpo_encoding_activity_groups(s->enc), s->n_initial,
                 hpo_acquisition_name(s->opt.acquisition));
    return 0;
}

/* Encodes the trials that the row cache does not cover yet. */
static int update_rows(hpo_tuner *t, bayes_state *s, char *err, size_t errlen)
{
    size_t columns = (size_t)s->columns;

    if (t->n_trials > s->rows_capacity) {
        int capacity = s->rows_capacity > 0 ? s->rows_capacity : 64;
        while (capacity < t->n_trials)
            capacity *= 2;
        double *rows = realloc(s->rows, (size_t)capacity * (columns > 0 ? columns : 1) *
                                            sizeof *rows);
        if (rows == NULL)
            return hpo_error(err, errlen, "tuner bayes: out of memory for %d trials", capacity);
        s->rows = rows;
        s->rows_capacity = capacity;
    }
    for (; s->n_rows < t->n_trials; s->n_rows++) {
        if (hpo_encoding_encode(s->enc, t->trials[s->n_rows].active,
                                s->rows + (size_t)s->n_rows * columns, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* ---- jobs ---- */

void hpo_bayes_job_destroy(hpo_bayes_job **job)
{
    if (job == NULL || *job == NULL)
        return;
    hpo_bayes_job *j = *job;
    free(j->x_fit);
    free(j->y_fit);
    free(j->x_pending);
    free(j->incumbents);
    for (int i = 0; i < j->n_known; i++)
        free(j->known[i]);
    free(j->known);
    free(j->theta);
    hpo_candidates_free(j->ranked, j->n_ranked);
    free(j);
    *job = NULL;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool job_knows(void *context, const char *key)
{
    const hpo_bayes_job *j = context;
    return bsearch(&key, j->known, (size_t)j->n_known, sizeof *j->known, compare_strings) != NULL;
}

/* The objective of a finished trial, oriented so that lower is better;
 * NAN when the trial has none. */
static double oriented(const hpo_tuner *t, const hpo_tuner_trial *trial)
{
    if (trial->status != HPO_OBSERVE_OK || !isfinite(trial->objective))
        return NAN;
    return hpo_study_maximize(t->study) ? -trial->objective : trial->objective;
}

/* Copies the rows of the job: finished trials with their objectives,
 * failed ones at the worst objective, pending ones apart. */
static int fill_rows(hpo_tuner *t, bayes_state *s, hpo_bayes_job *j, int n_ok,
                     char *err, size_t errlen)
{
    size_t columns = (size_t)s->columns;
    double worst = -INFINITY;

    j->best = INFINITY;
    for (int i = 0; i < t->n_trials; i++) {
        double y = oriented(t, &t->trials[i]);
        if (!isnan(y)) {
            worst = fmax(worst, y);
            j->best = fmin(j->best, y);
        }
    }

    int n_failed = 0, n_pending = 0;
    for (int i = 0; i < t->n_trials; i++) {
        if (t->trials[i].status == HPO_OBSERVE_PENDING)
            n_pending++;
        else if (isnan(oriented(t, &t->trials[i])))
            n_failed++;
    }
    j->x_fit = malloc((size_t)(n_ok + n_failed) * columns * sizeof *j->x_fit);
    j->y_fit = malloc((size_t)(n_ok + n_failed) * sizeof *j->y_fit);
    j->x_pending = malloc((size_t)(n_pending > 0 ? n_pending : 1) * columns *
                          sizeof *j->x_pending);
    if (j->x_fit == NULL || j->y_fit == NULL || j->x_pending == NULL)
        return hpo_error(err, errlen, "tuner bayes: out of memory for %d trials", t->n_trials);

    for (int i = 0; i < t->n_trials; i++) {
        const double *row = s->rows + (size_t)i * columns;
        if (t->trials[i].status == HPO_OBSERVE_PENDING) {
            memcpy(j->x_pending + (size_t)j->n_pending++ * columns, row, columns * sizeof *row);
            continue;
        }
        double y = oriented(t, &t->trials[i]);
        if (isnan(y)) {
            y = worst;
            j->n_failed++;
        }
        memcpy(j->x_fit + (size_t)j->n_fit * columns, row, columns * sizeof *row);
        j->y_fit[j->n_fit++] = y;
    }
    return 0;
}

/* Copies the rows of the INCUMBENTS best finished trials, best first. */
static int fill_incumbents(hpo_tuner *t, bayes_state *s, hpo_bayes_job *j,
                           char *err, size_t errlen)
{
    size_t columns = (size_t)s->columns;
    int picked[INCUMBENTS];

    j->incumbents = malloc(INCUMBENTS * (columns > 0 ? columns : 1) * sizeof *j->incumbents);
    if (j->incumbents == NULL)
        return hpo_error(err, errlen, "tuner bayes: out of memory");
    for (int k = 0; k < INCUMBENTS; k++) {
        int best = -1;
        for (int i = 0; i < t->n_trials; i++) {
            double y = oriented(t, &t->trials[i]);
            bool picked_before = false;
            for (int p = 0; p < k; p++)
                picked_before = picked_before || picked[p] == i;
            if (!isnan(y) && !picked_before &&
                (best < 0 || y < oriented(t, &t->trials[best])))
                best = i;
        }
        if (best < 0)
            break;
        picked[k] = best;
        memcpy(j->incumbents + (size_t)k * columns, s->rows + (size_t)best * columns,
               columns * sizeof *j->incumbents);
        j->n_incumbents++;
    }
    return 0;
}

/* True when the next proposal comes from the GP rather than the design:
 * the design is complete and some trial has an objective. */
static bool model_needed(const hpo_tuner *t, const bayes_state *s)
{
    int n_ok = 0;
    for (int i = 0; i < t->n_trials && n_ok == 0; i++)
        n_ok += !isnan(oriented(t, &t->trials[i]));
    return t->n_trials >= s->n_initial && n_ok > 0 && s->columns > 0;
}

bool hpo_tuner_bayes_needs_fit(const hpo_tuner *t)
{
    if (t->ops != &hpo_tuner_bayes_ops)
        return false;
    const bayes_state *s = t->state;
    if (s->have_ranked && s->ranked_for == t->n_trials)
        return false;
    return model_needed(t, s);
}

void hpo_tuner_bayes_set_design_only(hpo_tuner *t, bool design_only)
{
    if (t->ops == &hpo_tuner_bayes_ops)
        ((bayes_state *)t->state)->design_only = design_only;
}

int hpo_tuner_bayes_prepare(hpo_tuner *t, hpo_bayes_job **job_out, char *err, size_t errlen)
{
    bayes_state *s = t->state;
    int n_ok = 0, n_finished = 0;

    *job_out = NULL;
    if (t->ops != &hpo_tuner_bayes_ops)
        return hpo_error(err, errlen, "tuner %s: not a bayes tuner", t->ops->name);
    for (int i = 0; i < t->n_trials; i++) {
        n_ok += !isnan(oriented(t, &t->trials[i]));
        n_finished += t->trials[i].status != HPO_OBSERVE_PENDING;
    }
    if (!model_needed(t, s))
        return 1;
    if (update_rows(t, s, err, errlen) < 0)
        return -1;

    hpo_bayes_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return hpo_error(err, errlen, "tuner bayes: out of memory");
    j->enc = s->enc;
    j->study_name = hpo_study_name(t->study);
    j->opt = s->opt;
    j->columns = s->columns;
    j->seed = gsl_rng_get(t->rng);
    j->finished = n_finished;
    j->have_theta = s->have_theta;
    j->optimize = !s->have_theta || s->theta_finished != n_finished;
    j->theta = malloc(((size_t)s->columns + 2) * sizeof *j->theta);
    j->known = malloc((size_t)(t->n_trials > 0 ? t->n_trials : 1) * sizeof *j->known);
    if (j->theta == NULL || j->known == NULL) {
        hpo_error(err, errlen, "tuner bayes: out of memory");
        goto fail;
    }
    memcpy(j->theta, s->theta, ((size_t)s->columns + 2) * sizeof *j->theta);

    for (int i = 0; i < t->n_trials; i++) {
        j->known[i] = strdup(t->trials[i].key);
        if (j->known[i] == NULL) {
            hpo_error(err, errlen, "tuner bayes: out of memory");
            goto fail;
        }
        j->n_known++;
    }
    qsort(j->known, (size_t)j->n_known, sizeof *j->known, compare_strings);

    if (fill_rows(t, s, j, n_ok, err, errlen) < 0 || fill_incumbents(t, s, j, err, errlen) < 0)
        goto fail;
    *job_out = j;
    return 0;

fail:
    hpo_bayes_job_destroy(&j);
    return -1;
}

int hpo_bayes_job_run(hpo_bayes_job *j, char *err, size_t errlen)
{
    struct timespec start;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    hpo_gp *gp = NULL;
    int rc = -1;

    j->ran = true;
    j->failed = true;
    if (rng == NULL) {
        hpo_error(err, errlen, "tuner bayes: out of memory");
        goto done;
    }
    gsl_rng_set(rng, (unsigned long)j->seed);

    /* 1. Fit: optimize the hyperparameters when the finished trials
     *    changed, else only factorize with the previous ones. */
    clock_gettime(CLOCK_MONOTONIC, &start);
    hpo_gp_fit_options fit;
    hpo_gp_fit_options_default(&fit);
    fit.optimize = j->optimize;
    fit.restarts = j->opt.restarts;
    fit.max_iterations = FIT_ITERATIONS;
    if (hpo_gp_create(j->columns, &gp, err, errlen) < 0 ||
        (j->have_theta && hpo_gp_set_hyperparameters(gp, j->theta, err, errlen) < 0) ||
        hpo_gp_fit(gp, j->x_fit, j->y_fit, j->n_fit, &fit, rng, err, errlen) < 0 ||
        hpo_gp_add_fantasies(gp, j->x_pending, j->n_pending, err, errlen) < 0)
        goto done;
    hpo_gp_get_hyperparameters(gp, j->theta);
    j->fit_ms = elapsed_ms(&start);

    /* 2. Search. */
    clock_gettime(CLOCK_MONOTONIC, &start);
    hpo_acquisition acq = {.kind = j->opt.acquisition, .best = j->best, .beta = j->opt.ucb_beta};
    if (hpo_acquisition_search(&acq, gp, j->enc, j->incumbents, j->n_incumbents, job_knows, j,
                               &j->opt.search, rng, &j->ranked, &j->n_ranked, err, errlen) < 0)
        goto done;
    j->search_ms = elapsed_ms(&start);
    j->failed = false;
    rc = 0;

done:
    if (rc < 0)
        snprintf(j->failure, sizeof j->failure, "%s", err != NULL ? err : "unknown error");
    hpo_gp_destroy(&gp);
    if (rng != NULL)
        gsl_rng_free(rng);
    return rc;
}

int hpo_tuner_bayes_finish(hpo_tuner *t, hpo_bayes_job **job, char *err, size_t errlen)
{
    bayes_state *s = t->state;
    hpo_bayes_job *j = *job;

    if (t->ops != &hpo_tuner_bayes_ops || j == NULL || !j->ran) {
        hpo_bayes_job_destroy(job);
        return hpo_error(err, errlen, "tuner %s: finish needs a bayes job that ran",
                         t->ops->name);
    }

    free_ranked(s);
    if (j->failed) {
        hpo_log_warn("tuner bayes: study %s: GP proposal failed (%s); proposing a random "
                     "configuration instead", j->study_name, j->failure);
    } else {
        memcpy(s->theta, j->theta, ((size_t)s->columns + 2) * sizeof *s->theta);
        s->have_theta = true;
        if (j->optimize)
            s->theta_finished = j->finished;
        s->ranked = j->ranked;
        s->n_ranked = j->n_ranked;
        j->ranked = NULL;
        j->n_ranked = 0;
        hpo_log_info("tuner bayes: study %s: GP on %d finished trials (%d failed) and %d "
                     "pending, fit %.1f ms%s, search %.1f ms, best %s %.4g",
                     j->study_name, j->n_fit, j->n_failed, j->n_pending, j->fit_ms,
                     j->optimize ? " with hyperparameter search" : "", j->search_ms,
                     hpo_acquisition_name(j->opt.acquisition),
                     s->n_ranked > 0 ? s->ranked[0].score : NAN);
    }
    s->have_ranked = true;
    s->next_ranked = 0;
    s->ranked_for = t->n_trials;
    hpo_bayes_job_destroy(job);
    return 0;
}

/* ---- candidates ---- */

/* The next point of the shifted Sobol design, or a uniform one. */
static int design_candidate(hpo_tuner *t, bayes_state *s, cJSON **values_out,
                            char *err, size_t errlen)
{
    int d = hpo_study_param_count(t->study);

    if (s->sobol != NULL && gsl_qrng_get(s->sobol, s->u) == GSL_SUCCESS) {
        for (int i = 0; i < d; i++)
            s->u[i] = fmod(s->u[i] + s->shift[i], 1.0);
    } else {
        for (int i = 0; i < d; i++)
            s->u[i] = gsl_rng_uniform(t->rng);
    }
    return hpo_study_values_from_unit(t->study, s->u, values_out, err, errlen);
}

/* The next ranked candidate, or a random configuration once the list is
 * used up (tuner.c then counts duplicates towards exhaustion). */
static int ranked_candidate(hpo_tuner *t, bayes_state *s, cJSON **values_out,
                            char *err, size_t errlen)
{
    if (s->next_ranked < s->n_ranked) {
        *values_out = cJSON_Duplicate(s->ranked[s->next_ranked++].values, true);
        return *values_out != NULL ? 0 : hpo_error(err, errlen, "tuner bayes: out of memory");
    }
    return hpo_study_sample_random(t->study, t->rng, values_out, err, errlen);
}

static int bayes_candidate(hpo_tuner *t, cJSON **values_out, char *err, size_t errlen)
{
    bayes_state *s = t->state;
    hpo_bayes_job *job = NULL;

    /* A list installed for the trials known now: take its next entry.
     * tuner.c calls again after a duplicate, with the same trials. */
    if (s->have_ranked && s->ranked_for == t->n_trials)
        return ranked_candidate(t, s, values_out, err, errlen);
    if (s->design_only && model_needed(t, s))
        return design_candidate(t, s, values_out, err, errlen);
    free_ranked(s);

    int rc = hpo_tuner_bayes_prepare(t, &job, err, errlen);
    if (rc < 0)
        return -1;
    if (rc > 0)
        return design_candidate(t, s, values_out, err, errlen);

    char reason[HPO_ERR_MAX] = "";
    hpo_bayes_job_run(job, reason, sizeof reason);
    if (hpo_tuner_bayes_finish(t, &job, err, errlen) < 0)
        return -1;
    return ranked_candidate(t, s, values_out, err, errlen);
}

const hpo_tuner_ops hpo_tuner_bayes_ops = {
    .name = "bayes",
    .init = bayes_init,
    .candidate = bayes_candidate,
    .destroy = bayes_destroy,
};
