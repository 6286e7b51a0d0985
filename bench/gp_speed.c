/* gp-speed: times one GP fit plus one proposal of the bayes tuner on a
 * data file, for bench/gp_speed.
 *
 *   gp-speed --data FILE [--restarts R] [--seed S]
 *
 * FILE contains "n d" on its first line, then n rows of d inputs in [0, 1]
 * and one output. The search space is d floats, so every input column is
 * continuous. The program fits the GP with R random restarts besides the
 * first start and runs the acquisition search (log EI) with the tuner's
 * default options. It prints one JSON object with the wall-clock and CPU
 * seconds of each step, the number of candidates scored, and the log
 * marginal likelihood of the fitted hyperparameters on all rows, without
 * the prior. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_rng.h>

#include "acquisition.h"
#include "encoding.h"
#include "hpo/error.h"
#include "hpo/gp.h"
#include "hpo/log.h"
#include "hpo/study.h"

/* Best rows perturbed by the acquisition search, as in the tuner. */
#define INCUMBENTS 5

/* A wall-clock and a CPU time stamp; CPU time counts every thread of the
 * process, OpenBLAS's included. */
typedef struct {
    struct timespec wall, cpu;
} stamp;

static void stamp_now(stamp *s)
{
    clock_gettime(CLOCK_MONOTONIC, &s->wall);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &s->cpu);
}

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + 1e-9 * (double)(b->tv_nsec - a->tv_nsec);
}

/* Wall-clock and CPU seconds since start. */
static void elapsed(const stamp *start, double *wall, double *cpu)
{
    stamp now;
    stamp_now(&now);
    *wall = seconds_between(&start->wall, &now.wall);
    *cpu = seconds_between(&start->cpu, &now.cpu);
}

static bool known_none(void *context, const char *key)
{
    (void)context;
    (void)key;
    return false;
}

/* A study of d floats in [0, 0.9], each the rate of one dropout layer. */
static int make_study(int d, hpo_study **out, char *err, size_t errlen)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"budget\": {\"epochs\": 1}, \"space\": {\"x{i}\": {\"type\": \"float\","
             " \"min\": 0, \"max\": 0.9}}, \"model\": {\"layers\": [{\"repeat\": %d,"
             " \"first_index\": 0, \"layers\": [{\"type\": \"dropout\", \"rate\": \"$x{i}\"}]},"
             " {\"type\": \"flatten\"}, {\"type\": \"dense\", \"units\": 10,"
             " \"activation\": \"softmax\"}]}}", d);
    return hpo_study_parse(text, out, err, errlen);
}

static int read_data(const char *path, int *n_out, int *d_out, double **x_out, double **y_out,
                     char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    int n, d;

    if (f == NULL)
        return hpo_error(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    if (fscanf(f, "%d %d", &n, &d) != 2 || n < 1 || d < 1) {
        fclose(f);
        return hpo_error(err, errlen, "%s: the first line must be \"n d\"", path);
    }
    double *x = malloc((size_t)n * (size_t)d * sizeof *x);
    double *y = malloc((size_t)n * sizeof *y);
    for (int i = 0; x != NULL && y != NULL && i < n; i++) {
        for (int j = 0; j < d; j++) {
            if (fscanf(f, "%lf", &x[(size_t)i * (size_t)d + (size_t)j]) != 1)
                goto bad;
        }
        if (fscanf(f, "%lf", &y[i]) != 1)
            goto bad;
    }
    fclose(f);
    if (x == NULL || y == NULL) {
        free(x);
        free(y);
        return hpo_error(err, errlen, "out of memory for %d rows", n);
    }
    *n_out = n;
    *d_out = d;
    *x_out = x;
    *y_out = y;
    return 0;

bad:
    fclose(f);
    free(x);
    free(y);
    return hpo_error(err, errlen, "%s: expected %d rows of %d numbers", path, n, d + 1);
}

/* Rows of the INCUMBENTS lowest outputs, best first. */
static void pick_incumbents(const double *x, const double *y, int n, int d, double *out)
{
    int picked[INCUMBENTS];
    for (int k = 0; k < INCUMBENTS && k < n; k++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            bool picked_before = false;
            for (int p = 0; p < k; p++)
                picked_before = picked_before || picked[p] == i;
            if (!picked_before && (best < 0 || y[i] < y[best]))
                best = i;
        }
        picked[k] = best;
        memcpy(out + (size_t)k * (size_t)d, x + (size_t)best * (size_t)d, (size_t)d * sizeof *x);
    }
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int restarts = 2;
    unsigned long seed = 1;
    char err[HPO_ERR_MAX] = "";

    gsl_set_error_handler_off();
    hpo_log_init("gp-speed", getenv("GP_SPEED_DEBUG") != NULL ? HPO_LOG_DEBUG : HPO_LOG_WARN);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--data") == 0 && i + 1 < argc)
            path = argv[++i];
        else if (strcmp(argv[i], "--restarts") == 0 && i + 1 < argc)
            restarts = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: gp-speed --data FILE [--restarts R] [--seed S]\n");
            return 2;
        }
    }
    if (path == NULL || restarts < 0) {
        fprintf(stderr, "usage: gp-speed --data FILE [--restarts R] [--seed S]\n");
        return 2;
    }

    int n = 0, d = 0;
    double *x = NULL, *y = NULL;
    hpo_study *study = NULL;
    hpo_encoding *enc = NULL;
    hpo_gp *gp = NULL;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (rng == NULL || read_data(path, &n, &d, &x, &y, err, sizeof err) < 0 ||
        make_study(d, &study, err, sizeof err) < 0 ||
        hpo_encoding_create(study, &enc, err, sizeof err) < 0 ||
        hpo_gp_create(d, &gp, err, sizeof err) < 0) {
        fprintf(stderr, "gp-speed: %s\n", err);
        return 1;
    }
    gsl_rng_set(rng, seed);
    if (d > 64) {
        fprintf(stderr, "gp-speed: %d dimensions; at most 64\n", d);
        return 1;
    }

    /* 1. Fit. */
    hpo_gp_fit_options fit;
    hpo_gp_fit_options_default(&fit);
    fit.restarts = restarts;
    stamp start;
    double fit_s, fit_cpu_s;
    stamp_now(&start);
    if (hpo_gp_fit(gp, x, y, n, &fit, rng, err, sizeof err) < 0) {
        fprintf(stderr, "gp-speed: %s\n", err);
        return 1;
    }
    elapsed(&start, &fit_s, &fit_cpu_s);

    /* 2. One proposal. */
    double incumbents[INCUMBENTS * 64];
    int n_incumbents = n < INCUMBENTS ? n : INCUMBENTS;
    pick_incumbents(x, y, n, d, incumbents);
    double best = INFINITY;
    for (int i = 0; i < n; i++)
        best = fmin(best, y[i]);
    hpo_acquisition acq = {.kind = HPO_ACQ_LOG_EI, .best = best};
    hpo_search_options search;
    hpo_search_options_default(&search);
    hpo_candidate *candidates = NULL;
    int n_candidates = 0;
    double propose_s, propose_cpu_s;
    stamp_now(&start);
    if (hpo_acquisition_search(&acq, gp, enc, incumbents, n_incumbents, known_none, NULL,
                               &search, rng, &candidates, &n_candidates, err, sizeof err) < 0) {
        fprintf(stderr, "gp-speed: %s\n", err);
        return 1;
    }
    elapsed(&start, &propose_s, &propose_cpu_s);

    /* Quality of the fit, outside the timed steps. */
    double theta[66], lml = NAN;
    hpo_gp_get_hyperparameters(gp, theta);
    if (hpo_gp_log_marginal_likelihood(gp, theta, false, &lml, NULL, err, sizeof err) < 0)
        fprintf(stderr, "gp-speed: %s\n", err);

    printf("{\"n\": %d, \"d\": %d, \"restarts\": %d, \"fit_s\": %.6f, \"propose_s\": %.6f, "
           "\"fit_cpu_s\": %.6f, \"propose_cpu_s\": %.6f, \"scored\": %d, "
           "\"log_marginal_likelihood\": %.6f, \"best_log_ei\": %.6g}\n",
           n, d, restarts, fit_s, propose_s, fit_cpu_s, propose_cpu_s,
           search.sobol_points + n_incumbents * search.perturbations, lml,
           n_candidates > 0 ? candidates[0].score : NAN);

    hpo_candidates_free(candidates, n_candidates);
    hpo_gp_destroy(&gp);
    hpo_encoding_destroy(&enc);
    hpo_study_destroy(&study);
    gsl_rng_free(rng);
    free(x);
    free(y);
    return 0;
}
