/* Maximization of the acquisition over a study's mixed search space:
 * Sobol candidates and perturbations of the incumbents, projected to valid
 * configurations and scored in one batch, then BFGS along the continuous
 * columns of the best ones. */
#include "acquisition.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_multimin.h>
#include <gsl/gsl_qrng.h>
#include <gsl/gsl_vector.h>

#include "hpo/error.h"
#include "hpo/log.h"

/* GSL's Sobol generator has direction numbers for 40 dimensions; larger
 * spaces draw their candidates uniformly. */
#define SOBOL_MAX_DIMENSION 40

/* Local refinement: BFGS iterations, first step, and the stiffness of the
 * quadratic penalty that keeps columns inside [0, 1]. */
#define REFINE_ITERATIONS 20
#define REFINE_STEP 0.05
#define REFINE_LINE_TOLERANCE 0.1
#define REFINE_GRADIENT_TOLERANCE 1e-6
#define REFINE_WALL 1e4

void hpo_search_options_default(hpo_search_options *options)
{
    *options = (hpo_search_options){
        .sobol_points = 1024, .perturbations = 64, .local_starts = 3, .ranked = 8,
    };
}

void hpo_candidates_free(hpo_candidate *candidates, int n)
{
    if (candidates == NULL)
        return;
    for (int i = 0; i < n; i++) {
        cJSON_Delete(candidates[i].values);
        free(candidates[i].key);
    }
    free(candidates);
}

/* A scored point: a projected encoded configuration and its key. */
typedef struct {
    double *x;     /* points into a shared array, or owned when refined */
    char *key;     /* owned; computed only for points that are considered */
    double score;
    bool owned_x;
} scored_point;

typedef struct {
    const hpo_acquisition *acq;
    const hpo_gp *gp;
    const hpo_encoding *enc;
    int columns;
    hpo_known_fn known;
    void *context;
    gsl_rng *rng;
} search_context;

static double elapsed_ms(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return 1e3 * (double)(now.tv_sec - start->tv_sec) +
           1e-6 * (double)(now.tv_nsec - start->tv_nsec);
}

/* ---- candidate generation ---- */

/* Fills rows [0, count) of x with projected Sobol points of the parameter
 * space (Cranley-Patterson rotated by a random shift). */
static int sobol_candidates(const search_context *sc, int count, double *x,
                            char *err, size_t errlen)
{
    const hpo_study *study = hpo_encoding_study(sc->enc);
    int d = hpo_study_param_count(study);
    gsl_qrng *sobol = NULL;
    double *u = malloc((d > 0 ? (size_t)d : 1) * 2 * sizeof *u);
    int rc = 0;

    if (u == NULL)
        return hpo_error(err, errlen, "acquisition: out of memory");
    double *shift = u + d;
    if (d > 0 && d <= SOBOL_MAX_DIMENSION) {
        sobol = gsl_qrng_alloc(gsl_qrng_sobol, (unsigned int)d);
        if (sobol == NULL) {
            free(u);
            return hpo_error(err, errlen, "acquisition: out of memory for a Sobol generator");
        }
    }
    for (int j = 0; j < d; j++)
        shift[j] = gsl_rng_uniform(sc->rng);

    for (int i = 0; i < count && rc == 0; i++) {
        if (sobol != NULL && gsl_qrng_get(sobol, u) == GSL_SUCCESS) {
            for (int j = 0; j < d; j++)
                u[j] = fmod(u[j] + shift[j], 1.0);
        } else {
            for (int j = 0; j < d; j++)
                u[j] = gsl_rng_uniform(sc->rng);
        }

        rc = hpo_encoding_from_unit(sc->enc, u, x + (size_t)i * (size_t)sc->columns,
                                    err, errlen);
    }
    if (sobol != NULL)
        gsl_qrng_free(sobol);
    free(u);
    return rc;
}

/* Fills rows [0, count) of x with projected perturbations of the
 * incumbents, perturbations per incumbent. */
static int perturbed_candidates(const search_context *sc, const double *incumbents,
                                int n_incumbents, int perturbations, double *x,
                                char *err, size_t errlen)
{
    size_t columns = (size_t)sc->columns;
    double *moved = malloc(columns * sizeof *moved);

    if (moved == NULL)
        return hpo_error(err, errlen, "acquisition: out of memory");
    for (int k = 0; k < n_incumbents; k++) {
        for (int p = 0; p < perturbations; p++) {
            size_t row = (size_t)k * (size_t)perturbations + (size_t)p;
            hpo_encoding_perturb(sc->enc, incumbents + (size_t)k * columns, moved, sc->rng);
            if (hpo_encoding_project(sc->enc, moved, x + row * columns, NULL, NULL,
                                     err, errlen) < 0) {
                free(moved);
                return -1;
            }
        }
    }
    free(moved);
    return 0;
}

/* ---- local refinement ---- */

typedef struct {
    const search_context *sc;
    double *x;          /* the full point; its refined columns change */
    const int *columns; /* indexes of the refined columns */
    int n;
    double *dmean, *dvariance;
    bool failed;
} refine_problem;

/* Negative acquisition at the point whose refined columns are v, clamped
 * to [0, 1], plus a quadratic wall outside; gradient into grad. */
static double refine_eval(const gsl_vector *v, refine_problem *rp, gsl_vector *grad)
{
    double penalty = 0.0;
    for (int k = 0; k < rp->n; k++) {
        double value = gsl_vector_get(v, (size_t)k);
        double inside = fmin(1.0, fmax(0.0, value));
        rp->x[rp->columns[k]] = inside;
        penalty += 0.5 * REFINE_WALL * (value - inside) * (value - inside);
    }

    double mean, variance, d_mean, d_variance;
    if (hpo_gp_predict(rp->sc->gp, rp->x, &mean, &variance, rp->dmean, rp->dvariance,
                       NULL, 0) < 0) {
        rp->failed = true;
        if (grad != NULL)
            gsl_vector_set_zero(grad);
        return 1e300;
    }
    double acq = hpo_acquisition_value(rp->sc->acq, mean, variance, &d_mean, &d_variance);

    if (grad != NULL) {
        for (int k = 0; k < rp->n; k++) {
            int j = rp->columns[k];
            double value = gsl_vector_get(v, (size_t)k);
            double inside = fmin(1.0, fmax(0.0, value));
            double g = value == inside ? -(d_mean * rp->dmean[j] + d_variance * rp->dvariance[j])
                                       : REFINE_WALL * (value - inside);
            gsl_vector_set(grad, (size_t)k, g);
        }
    }
    return -acq + penalty;
}

static double refine_f(const gsl_vector *v, void *params)
{
    return refine_eval(v, params, NULL);
}

static void refine_df(const gsl_vector *v, void *params, gsl_vector *grad)
{
    refine_eval(v, params, grad);
}

static void refine_fdf(const gsl_vector *v, void *params, double *f, gsl_vector *grad)
{
    *f = refine_eval(v, params, grad);
}

/* Runs BFGS over the continuous columns of the active parameters of x,
 * starting at x; writes the end point into x_out (projected later).
 * Returns 1 when x has no such column. */
static int refine_point(const search_context *sc, const double *x, double *x_out,
                        char *err, size_t errlen)
{
    int columns = sc->columns, n = 0, rc = -1;
    int *idx = malloc((size_t)columns * sizeof *idx);
    double *grads = malloc(2 * (size_t)columns * sizeof *grads);
    gsl_multimin_fdfminimizer *s = NULL;
    gsl_vector *start = NULL;

    if (idx == NULL || grads == NULL) {
        hpo_error(err, errlen, "acquisition: out of memory");
        goto cleanup;
    }
    memcpy(x_out, x, (size_t)columns * sizeof *x_out);
    for (int j = 0; j < columns; j++) {
        if (hpo_encoding_column_kind(sc->enc, j) == HPO_COLUMN_CONTINUOUS &&
            hpo_encoding_param_active(sc->enc, x, hpo_encoding_column_param(sc->enc, j)))
            idx[n++] = j;
    }
    if (n == 0) {
        rc = 1;
        goto cleanup;
    }

    refine_problem rp = {.sc = sc, .x = x_out, .columns = idx, .n = n,
                         .dmean = grads, .dvariance = grads + columns};
    gsl_multimin_function_fdf fdf = {
        .f = refine_f, .df = refine_df, .fdf = refine_fdf, .n = (size_t)n, .params = &rp,
    };
    s = gsl_multimin_fdfminimizer_alloc(gsl_multimin_fdfminimizer_vector_bfgs2, (size_t)n);
    start = gsl_vector_alloc((size_t)n);
    if (s == NULL || start == NULL) {
        hpo_error(err, errlen, "acquisition: out of memory");
        goto cleanup;
    }
    for (int k = 0; k < n; k++)
        gsl_vector_set(start, (size_t)k, x[idx[k]]);
    if (gsl_multimin_fdfminimizer_set(s, &fdf, start, REFINE_STEP, REFINE_LINE_TOLERANCE) !=
        GSL_SUCCESS) {
        hpo_error(err, errlen, "acquisition: the local search could not start");
        goto cleanup;
    }
    for (int iter = 0; iter < REFINE_ITERATIONS; iter++) {
        if (gsl_multimin_fdfminimizer_iterate(s) != GSL_SUCCESS)
            break;
        if (gsl_multimin_test_gradient(gsl_multimin_fdfminimizer_gradient(s),
                                       REFINE_GRADIENT_TOLERANCE) != GSL_CONTINUE)
            break;
    }

    /* Leave the best point found in x_out. */
    const gsl_vector *end = gsl_multimin_fdfminimizer_x(s);
    for (int k = 0; k < n; k++)
        x_out[idx[k]] = fmin(1.0, fmax(0.0, gsl_vector_get(end, (size_t)k)));
    rc = rp.failed ? hpo_error(err, errlen, "acquisition: a prediction failed") : 0;

cleanup:
    if (s != NULL)
        gsl_multimin_fdfminimizer_free(s);
    gsl_vector_free(start);
    free(idx);
    free(grads);
    return rc;
}

/* ---- selection ---- */

static int compare_score_desc(const void *a, const void *b)
{
    const scored_point *pa = a, *pb = b;
    if (pa->score != pb->score)
        return pa->score > pb->score ? -1 : 1;
    return 0;
}

static bool key_taken(const scored_point *chosen, int n, const char *key)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(chosen[i].key, key) == 0)
            return true;
    }
    return false;
}

/* Scores the refined version of chosen[i]; appends it to chosen when it
 * is new, unknown and better. */
static int add_refined(const search_context *sc, scored_point *chosen, int *n_chosen, int i,
                       char *err, size_t errlen)
{
    double *moved = malloc((size_t)sc->columns * sizeof *moved);
    double *projected = malloc((size_t)sc->columns * sizeof *projected);
    char *key = NULL;
    int rc = -1;

    if (moved == NULL || projected == NULL) {
        hpo_error(err, errlen, "acquisition: out of memory");
        goto cleanup;
    }
    rc = refine_point(sc, chosen[i].x, moved, err, errlen);
    if (rc != 0) {
        rc = rc > 0 ? 0 : -1;
        goto cleanup;
    }
    if (hpo_encoding_project(sc->enc, moved, projected, NULL, &key, err, errlen) < 0) {
        rc = -1;
        goto cleanup;
    }

    double mean, variance;
    rc = hpo_gp_predict(sc->gp, projected, &mean, &variance, NULL, NULL, err, errlen);
    if (rc < 0)
        goto cleanup;
    double score = hpo_acquisition_value(sc->acq, mean, variance, NULL, NULL);
    if (score > chosen[i].score && !key_taken(chosen, *n_chosen, key) &&
        !sc->known(sc->context, key)) {
        chosen[*n_chosen] = (scored_point){.x = projected, .key = key, .score = score,
                                           .owned_x = true};
        (*n_chosen)++;
        projected = NULL;
        key = NULL;
    }

cleanup:
    free(moved);
    free(projected);
    free(key);
    return rc;
}

/* Builds the output list from the best n of chosen. */
static int emit(const search_context *sc, scored_point *chosen, int n, hpo_candidate **out,
                int *n_out, char *err, size_t errlen)
{
    hpo_candidate *list = calloc(n > 0 ? (size_t)n : 1, sizeof *list);
    if (list == NULL)
        return hpo_error(err, errlen, "acquisition: out of memory");

    for (int i = 0; i < n; i++) {
        if (hpo_encoding_decode(sc->enc, chosen[i].x, &list[i].values, err, errlen) < 0) {
            hpo_candidates_free(list, i);
            return -1;
        }
        list[i].key = chosen[i].key;
        chosen[i].key = NULL;
        list[i].score = chosen[i].score;
    }
    *out = list;
    *n_out = n;
    return 0;
}

int hpo_acquisition_search(const hpo_acquisition *acq, const hpo_gp *gp,
                           const hpo_encoding *enc, const double *incumbents,
                           int n_incumbents, hpo_known_fn known, void *context,
                           const hpo_search_options *options, gsl_rng *rng,
                           hpo_candidate **out, int *n_out, char *err, size_t errlen)
{
    search_context sc = {.acq = acq, .gp = gp, .enc = enc, .columns = hpo_encoding_columns(enc),
                         .known = known, .context = context, .rng = rng};
    int n_sobol = options->sobol_points > 0 ? options->sobol_points : 0;
    int n_perturbed = n_incumbents * (options->perturbations > 0 ? options->perturbations : 0);
    int total = n_sobol + n_perturbed;
    int keep = options->ranked > options->local_starts ? options->ranked : options->local_starts;
    int n_chosen = 0, rc = -1;

    *out = NULL;
    *n_out = 0;
    if (sc.columns != hpo_gp_dim(gp))
        return hpo_error(err, errlen, "acquisition: the GP has %d inputs but the encoding %d "
                         "columns", hpo_gp_dim(gp), sc.columns);
    if (total == 0 || keep <= 0)
        return 0;

    double *x = malloc((size_t)total * (size_t)sc.columns * sizeof *x);
    double *mean = malloc((size_t)total * sizeof *mean);
    double *variance = malloc((size_t)total * sizeof *variance);
    scored_point *points = calloc((size_t)total, sizeof *points);
    scored_point *chosen = calloc(2 * (size_t)keep, sizeof *chosen);
    if (x == NULL || mean == NULL || variance == NULL || points == NULL || chosen == NULL) {
        hpo_error(err, errlen, "acquisition: out of memory for %d candidates", total);
        goto cleanup;
    }

    /* 1. Candidates, projected to valid configurations. */
    struct timespec start;
    double ms[3];
    clock_gettime(CLOCK_MONOTONIC, &start);
    if (sobol_candidates(&sc, n_sobol, x, err, errlen) < 0 ||
        perturbed_candidates(&sc, incumbents, n_incumbents, options->perturbations,
                             x + (size_t)n_sobol * (size_t)sc.columns, err, errlen) < 0)
        goto cleanup;

    ms[0] = elapsed_ms(&start);

    /* 2. Scores from one batched prediction. */
    clock_gettime(CLOCK_MONOTONIC, &start);
    if (hpo_gp_predict_batch(gp, x, total, mean, variance, err, errlen) < 0)
        goto cleanup;
    for (int i = 0; i < total; i++)
        points[i] = (scored_point){
            .x = x + (size_t)i * (size_t)sc.columns,
            .score = hpo_acquisition_value(acq, mean[i], variance[i], NULL, NULL),
        };
    qsort(points, (size_t)total, sizeof *points, compare_score_desc);

    /* 3. The best distinct configurations that no trial has. */
    for (int i = 0; i < total && n_chosen < keep; i++) {
        if (hpo_encoding_key(enc, points[i].x, &points[i].key, err, errlen) < 0)
            goto cleanup;
        if (key_taken(chosen, n_chosen, points[i].key) || known(context, points[i].key))
            continue;
        chosen[n_chosen] = points[i];
        chosen[n_chosen].key = strdup(points[i].key);
        if (chosen[n_chosen].key == NULL) {
            hpo_error(err, errlen, "acquisition: out of memory");
            goto cleanup;
        }
        n_chosen++;
    }

    ms[1] = elapsed_ms(&start);

    /* 4. Local refinement along the continuous columns. */
    clock_gettime(CLOCK_MONOTONIC, &start);
    int starts = n_chosen < options->local_starts ? n_chosen : options->local_starts;
    for (int i = 0; i < starts; i++) {
        if (add_refined(&sc, chosen, &n_chosen, i, err, errlen) < 0)
            goto cleanup;
    }

    ms[2] = elapsed_ms(&start);

    qsort(chosen, (size_t)n_chosen, sizeof *chosen, compare_score_desc);
    int n_emit = n_chosen < options->ranked ? n_chosen : options->ranked;
    rc = emit(&sc, chosen, n_emit, out, n_out, err, errlen);
    if (rc == 0)
        hpo_log_debug("acquisition: %d candidates in %.0f ms, scored in %.0f ms, %d refined "
                      "in %.0f ms; best %s %.6g", total, ms[0], ms[1], starts, ms[2],
                      hpo_acquisition_name(acq->kind), n_emit > 0 ? (*out)[0].score : NAN);

cleanup:
    for (int i = 0; chosen != NULL && i < n_chosen; i++) {
        free(chosen[i].key);
        if (chosen[i].owned_x)
            free(chosen[i].x);
    }
    for (int i = 0; points != NULL && i < total; i++)
        free(points[i].key);
    free(chosen);
    free(points);
    free(variance);
    free(mean);
    free(x);
    return rc;
}
