/* Tests of the Gaussian process: posterior values against an independent
 * computation, gradients against finite differences, degenerate data,
 * fantasies and hyperparameter optimization. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_rng.h>

#include "hpo/error.h"
#include "hpo/gp.h"
#include "hpo/log.h"

/* The dataset of tests/daemon/gp_reference.py. */
static const double REF_X[] = {0.1, 0.2, 0.4, 0.9, 0.7, 0.3, 0.95, 0.6, 0.3, 0.55};
static const double REF_Y[] = {1.0, -0.5, 2.0, 0.3, 0.8};
static const double REF_TESTS[] = {0.5, 0.5, 0.0, 1.0, 0.1, 0.2};

/* Printed by tests/daemon/gp_reference.py (numpy 1.24.2, plain formulas:
 * dense solves of K + noise I, no code shared with daemon/gp.c) for
 * lengthscales 0.3 and 0.5, signal variance 1.5 and noise variance 0.01. */
static const double REF_MEAN[] = {1.1821076339621475, 0.36200885164534685, 1.0005651553492532};
static const double REF_VARIANCE[] = {0.2538880858975212, 0.8548770265024203,
                                      0.00670908790763545};
static const double REF_LOG_MARGINAL_LIKELIHOOD = -7.966655065814603;

static void reference_theta(double *theta)
{
    theta[0] = log(0.3);
    theta[1] = log(0.5);
    theta[2] = log(1.5);
    theta[3] = log(0.01 - HPO_GP_NOISE_FLOOR);
}

static hpo_gp *fit_fixed(int dim, const double *theta, const double *X, const double *y, int n)
{
    char err[HPO_ERR_MAX] = "";
    hpo_gp *gp = NULL;
    hpo_gp_fit_options opt;

    hpo_gp_fit_options_default(&opt);
    opt.optimize = false;
    if (hpo_gp_create(dim, &gp, err, sizeof err) != 0 ||
        hpo_gp_set_hyperparameters(gp, theta, err, sizeof err) != 0 ||
        hpo_gp_fit(gp, X, y, n, &opt, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
    return gp;
}

/* Deterministic pseudo-random data in [0, 1]. */
static void random_data(gsl_rng *rng, int n, int dim, double *X, double *y)
{
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < dim; j++) {
            X[i * dim + j] = gsl_rng_uniform(rng);
            s += sin(3.0 * (j + 1) * X[i * dim + j]);
        }
        y[i] = s + 0.05 * gsl_rng_uniform(rng);
    }
}

static void posterior_matches_reference(void **state)
{
    (void)state;
    char err[HPO_ERR_MAX] = "";
    double theta[4];
    reference_theta(theta);
    hpo_gp *gp = fit_fixed(2, theta, REF_X, REF_Y, 5);

    for (int t = 0; t < 3; t++) {
        double mean, variance;
        assert_int_equal(hpo_gp_predict(gp, &REF_TESTS[2 * t], &mean, &variance, NULL, NULL,
                                         err, sizeof err), 0);
        assert_float_equal(mean, REF_MEAN[t], 1e-10);
        assert_float_equal(variance, REF_VARIANCE[t], 1e-10);
    }

    double batch_mean[3], batch_variance[3];
    assert_int_equal(hpo_gp_predict_batch(gp, REF_TESTS, 3, batch_mean, batch_variance,
                                          err, sizeof err), 0);
    for (int t = 0; t < 3; t++) {
        assert_float_equal(batch_mean[t], REF_MEAN[t], 1e-10);
        assert_float_equal(batch_variance[t], REF_VARIANCE[t], 1e-10);
    }

    double lml;
    assert_int_equal(hpo_gp_log_marginal_likelihood(gp, theta, false, &lml, NULL,
                                                    err, sizeof err), 0);
    assert_float_equal(lml, REF_LOG_MARGINAL_LIKELIHOOD, 1e-10);
    assert_float_equal(hpo_gp_jitter(gp), 0.0, 0.0);
    hpo_gp_destroy(&gp);
    assert_null(gp);
}

/* Central differences of the log marginal likelihood, with and without
 * the prior, against the analytic gradient. */
static void lml_gradient_matches_differences(void **state)
{
    (void)state;
    enum { N = 30, DIM = 4, M = DIM + 2 };
    char err[HPO_ERR_MAX] = "";
    double X[N * DIM], y[N];
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 7);
    random_data(rng, N, DIM, X, y);

    double theta[M] = {log(0.4), log(0.7), log(1.3), log(2.5), log(0.8), log(0.02)};
    hpo_gp *gp = fit_fixed(DIM, theta, X, y, N);

    for (int with_prior = 0; with_prior <= 1; with_prior++) {
        double value, grad[M];
        assert_int_equal(hpo_gp_log_marginal_likelihood(gp, theta, with_prior, &value, grad,
                                                        err, sizeof err), 0);
        for (int j = 0; j < M; j++) {
            double h = 1e-5, plus[M], minus[M], fp, fm;
            memcpy(plus, theta, sizeof plus);
            memcpy(minus, theta, sizeof minus);
            plus[j] += h;
            minus[j] -= h;
            assert_int_equal(hpo_gp_log_marginal_likelihood(gp, plus, with_prior, &fp, NULL,
                                                            err, sizeof err), 0);
            assert_int_equal(hpo_gp_log_marginal_likelihood(gp, minus, with_prior, &fm, NULL,
                                                            err, sizeof err), 0);
            double numeric = (fp - fm) / (2 * h);
            if (fabs(grad[j] - numeric) > 1e-5 * fmax(1.0, fabs(numeric)))
                fail_msg("prior %d, d/dtheta[%d]: analytic %.10g, differences %.10g",
                         with_prior, j, grad[j], numeric);
        }
    }
    hpo_gp_destroy(&gp);
    gsl_rng_free(rng);
}

/* Central differences of the posterior mean and variance in x. */
static void posterior_gradient_matches_differences(void **state)
{
    (void)state;
    enum { N = 25, DIM = 3 };
    char err[HPO_ERR_MAX] = "";
    double X[N * DIM], y[N];
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 11);
    random_data(rng, N, DIM, X, y);

    double theta[DIM + 2] = {log(0.3), log(0.6), log(1.1), log(1.2), log(1e-3)};
    hpo_gp *gp = fit_fixed(DIM, theta, X, y, N);

    const double points[][DIM] = {{0.2, 0.5, 0.7}, {0.9, 0.1, 0.4}, {0.55, 0.45, 0.05}};
    for (size_t p = 0; p < sizeof points / sizeof points[0]; p++) {
        double mean, variance, dmean[DIM], dvariance[DIM];
        assert_int_equal(hpo_gp_predict(gp, points[p], &mean, &variance, dmean, dvariance,
                                        err, sizeof err), 0);
        for (int j = 0; j < DIM; j++) {
            double h = 1e-6, xp[DIM], xm[DIM], mp, vp, mm, vm;
            memcpy(xp, points[p], sizeof xp);
            memcpy(xm, points[p], sizeof xm);
            xp[j] += h;
            xm[j] -= h;
            assert_int_equal(hpo_gp_predict(gp, xp, &mp, &vp, NULL, NULL, err, sizeof err), 0);
            assert_int_equal(hpo_gp_predict(gp, xm, &mm, &vm, NULL, NULL, err, sizeof err), 0);
            assert_float_equal(dmean[j], (mp - mm) / (2 * h), 1e-5 * fmax(1.0, fabs(dmean[j])));
            assert_float_equal(dvariance[j], (vp - vm) / (2 * h),
                               1e-5 * fmax(1.0, fabs(dvariance[j])));
        }
    }
    hpo_gp_destroy(&gp);
    gsl_rng_free(rng);
}

/* Forty copies of one input with different outputs: a huge signal
 * variance makes K + noise I numerically singular, so the factorization
 * needs jitter, and the fit must still succeed. */
static void duplicate_inputs_get_jitter(void **state)
{
    (void)state;
    enum { N = 40 };
    char err[HPO_ERR_MAX] = "";
    double X[N * 2], y[N];
    for (int i = 0; i < N; i++) {
        X[2 * i] = 0.25;
        X[2 * i + 1] = 0.75;
        y[i] = i % 2;
    }

    double theta[4] = {log(0.5), log(0.5), 40.0, -40.0};
    hpo_gp *gp = fit_fixed(2, theta, X, y, N);
    assert_true(hpo_gp_jitter(gp) > 0.0);

    double mean, variance;
    assert_int_equal(hpo_gp_predict(gp, X, &mean, &variance, NULL, NULL, err, sizeof err), 0);
    assert_true(isfinite(mean));
    assert_float_equal(mean, 0.5, 1e-3);
    assert_true(variance >= 0.0);
    hpo_gp_destroy(&gp);

    /* With the defaults, optimization over duplicates also succeeds. */
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 3);
    assert_int_equal(hpo_gp_create(2, &gp, err, sizeof err), 0);
    if (hpo_gp_fit(gp, X, y, N, NULL, rng, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(hpo_gp_predict(gp, X, &mean, &variance, NULL, NULL, err, sizeof err), 0);
    assert_float_equal(mean, 0.5, 0.05);
    hpo_gp_destroy(&gp);
    gsl_rng_free(rng);
}

static void constant_and_single_observation(void **state)
{
    (void)state;
    char err[HPO_ERR_MAX] = "";
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 5);
    hpo_gp *gp = NULL;
    double X[] = {0.1, 0.4, 0.9, 0.2, 0.5, 0.5}, y[] = {3.0, 3.0, 3.0};
    double x[] = {0.7, 0.7}, mean, variance;

    assert_int_equal(hpo_gp_create(2, &gp, err, sizeof err), 0);
    if (hpo_gp_fit(gp, X, y, 3, NULL, rng, err, sizeof err) != 0)
        fail_msg("constant outputs: %s", err);
    assert_int_equal(hpo_gp_predict(gp, x, &mean, &variance, NULL, NULL, err, sizeof err), 0);
    assert_float_equal(mean, 3.0, 1e-9);
    assert_true(variance > 0.0);

    if (hpo_gp_fit(gp, X, y, 1, NULL, rng, err, sizeof err) != 0)
        fail_msg("one observation: %s", err);
    assert_int_equal(hpo_gp_count(gp), 1);
    assert_int_equal(hpo_gp_predict(gp, X, &mean, &variance, NULL, NULL, err, sizeof err), 0);
    assert_float_equal(mean, 3.0, 1e-9);
    hpo_gp_destroy(&gp);
    gsl_rng_free(rng);
}

static void invalid_input_rejected(void **state)
{
    (void)state;
    char err[HPO_ERR_MAX] = "";
    hpo_gp *gp = NULL;
    double X[] = {0.1, NAN}, y[] = {1.0};

    assert_int_equal(hpo_gp_create(0, &gp, err, sizeof err), -1);
    assert_non_null(strstr(err, "dimension 0"));
    assert_int_equal(hpo_gp_create(2, &gp, err, sizeof err), 0);
    assert_int_equal(hpo_gp_fit(gp, X, y, 1, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "not finite"));
    assert_int_equal(hpo_gp_fit(gp, X, y, 0, NULL, NULL, err, sizeof err), -1);

    double mean, variance;
    assert_int_equal(hpo_gp_predict(gp, X, &mean, &variance, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "fitted"));
    hpo_gp_destroy(&gp);
}

/* Kriging believer: the mean stays, the variance at the fantasy drops. */
static void fantasies_keep_mean(void **state)
{
    (void)state;
    char err[HPO_ERR_MAX] = "";
    double theta[4];
    reference_theta(theta);
    hpo_gp *gp = fit_fixed(2, theta, REF_X, REF_Y, 5);

    double pending[] = {0.5, 0.5}, far[] = {0.0, 1.0};
    double m0, v0, m1, v1, fm0, fv0, fm1, fv1;
    assert_int_equal(hpo_gp_predict(gp, pending, &m0, &v0, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(hpo_gp_predict(gp, far, &fm0, &fv0, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(hpo_gp_add_fantasies(gp, pending, 1, err, sizeof err), 0);
    assert_int_equal(hpo_gp_count(gp), 6);
    assert_int_equal(hpo_gp_predict(gp, pending, &m1, &v1, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(hpo_gp_predict(gp, far, &fm1, &fv1, NULL, NULL, err, sizeof err), 0);

    assert_float_equal(m1, m0, 1e-9);
    assert_float_equal(fm1, fm0, 1e-9);
    assert_true(v1 < 0.1 * v0);
    assert_true(fv1 <= fv0);
    hpo_gp_destroy(&gp);
}

/* y depends on the first input only: the fitted lengthscale of the
 * second one is much longer, and the optimum beats the prior means. */
static void optimization_finds_relevance(void **state)
{
    (void)state;
    enum { N = 40 };
    char err[HPO_ERR_MAX] = "";
    double X[N * 2], y[N];
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 17);
    for (int i = 0; i < N; i++) {
        X[2 * i] = gsl_rng_uniform(rng);
        X[2 * i + 1] = gsl_rng_uniform(rng);
        y[i] = sin(6.0 * X[2 * i]);
    }

    hpo_gp *gp = NULL;
    double start[4], theta[4], at_start, at_optimum;
    assert_int_equal(hpo_gp_create(2, &gp, err, sizeof err), 0);
    hpo_gp_get_hyperparameters(gp, start);
    if (hpo_gp_fit(gp, X, y, N, NULL, rng, err, sizeof err) != 0)
        fail_msg("%s", err);
    hpo_gp_get_hyperparameters(gp, theta);
    assert_int_equal(hpo_gp_log_marginal_likelihood(gp, start, true, &at_start, NULL,
                                                    err, sizeof err), 0);
    assert_int_equal(hpo_gp_log_marginal_likelihood(gp, theta, true, &at_optimum, NULL,
                                                    err, sizeof err), 0);
    assert_true(at_optimum > at_start);
    assert_true(theta[1] > theta[0] + 1.0);

    double x[] = {0.3, 0.8}, mean, variance;
    assert_int_equal(hpo_gp_predict(gp, x, &mean, &variance, NULL, NULL, err, sizeof err), 0);
    assert_float_equal(mean, sin(1.8), 0.05);
    hpo_gp_destroy(&gp);
    gsl_rng_free(rng);
}

int main(void)
{
    gsl_set_error_handler_off();
    hpo_log_init("test", HPO_LOG_WARN);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(posterior_matches_reference),
        cmocka_unit_test(lml_gradient_matches_differences),
        cmocka_unit_test(posterior_gradient_matches_differences),
        cmocka_unit_test(duplicate_inputs_get_jitter),
        cmocka_unit_test(constant_and_single_observation),
        cmocka_unit_test(invalid_input_rejected),
        cmocka_unit_test(fantasies_keep_mean),
        cmocka_unit_test(optimization_finds_relevance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
