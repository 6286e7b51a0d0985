/* Gaussian-process regression for the Bayesian-optimization tuner.
 *
 * Model: y = f(x) + e, f ~ GP(0, k), e ~ N(0, noise variance), with the
 * Matern-5/2 kernel and one lengthscale per input dimension (ARD):
 *   k(x, x') = s2 (1 + sqrt(5) r + 5 r^2 / 3) exp(-sqrt(5) r),
 *   r^2 = sum_j (x_j - x'_j)^2 / l_j^2,
 * where s2 is the signal variance (Rasmussen and Williams, Gaussian
 * Processes for Machine Learning, 2006, eq. 4.17). Outputs are standardized
 * (mean 0, standard deviation 1) before fitting, and predictions are
 * returned in the original units.
 *
 * Hyperparameters are kept as a vector theta of dim + 2 values in log
 * space: theta[j] = ln l_j for j < dim, theta[dim] = ln s2, and
 * theta[dim + 1] = ln(noise variance - HPO_GP_NOISE_FLOOR), all in
 * standardized units. A fit maximizes the log marginal likelihood plus weak
 * log-normal priors on every hyperparameter with GSL's BFGS minimizer.
 *
 * A hpo_gp is not thread-safe; use each one from one thread at a time.
 * Different objects may be used in different threads at once. */
#ifndef HPO_GP_H
#define HPO_GP_H

#include <stdbool.h>
#include <stddef.h>

#include <gsl/gsl_rng.h>

/* Smallest noise variance, in standardized units. It keeps the kernel
 * matrix of duplicate inputs positive definite. */
#define HPO_GP_NOISE_FLOOR 1e-6

typedef struct hpo_gp hpo_gp;

typedef struct {
    /* Optimize the hyperparameters; when false, the fit reuses the current
     * hyperparameters and only factorizes the kernel matrix. */
    bool optimize;
    /* Random starting points drawn from the prior, in addition to the
     * first start: the previous optimum when there is one, else the prior
     * means. scikit-learn's n_restarts_optimizer counts the same way. */
    int restarts;
    /* BFGS iterations per start. */
    int max_iterations;
} hpo_gp_fit_options;

/* Fills *options with the defaults: optimize, 2 restarts, 100 iterations. */
void hpo_gp_fit_options_default(hpo_gp_fit_options *options);

/* Creates an unfitted GP over inputs of dim dimensions (dim >= 1). Its
 * hyperparameters start at the prior means. The caller frees *out with
 * hpo_gp_destroy(). */
int hpo_gp_create(int dim, hpo_gp **out, char *err, size_t errlen);

/* Frees *gp and sets it to NULL. Accepts NULL. */
void hpo_gp_destroy(hpo_gp **gp);

int hpo_gp_dim(const hpo_gp *gp);

/* Number of rows in the model: observations plus fantasies. */
int hpo_gp_count(const hpo_gp *gp);

/* Fits the GP to n >= 1 observations: X contains n rows of dim values (row
 * major), y the n outputs; both are copied. Inputs are meant to lie in
 * [0, 1] and outputs must be finite. rng draws the restarts' starting
 * points and may be NULL when options->restarts is 0 or optimize is false.
 * options NULL means the defaults. Above 128 observations the
 * hyperparameter search runs on random subsets of the rows (daemon/gp.c
 * explains the phases). Fantasies from an earlier fit are dropped. Returns -1 with a message when an input is invalid, memory runs
 * out, or no jitter makes the kernel matrix positive definite. */
int hpo_gp_fit(hpo_gp *gp, const double *X, const double *y, int n,
               const hpo_gp_fit_options *options, gsl_rng *rng,
               char *err, size_t errlen);

/* Adds m fantasy observations at the rows of X (m rows of dim values),
 * each with the current posterior mean as its output (the kriging
 * believer). The posterior mean stays the same everywhere and the variance
 * shrinks near the new rows, so that proposals for parallel workers spread
 * out. Hyperparameters are kept; the kernel matrix is factorized again. */
int hpo_gp_add_fantasies(hpo_gp *gp, const double *X, int m, char *err, size_t errlen);

/* Posterior of the latent f at x (dim values), in the units of y: *mean
 * and *variance (noise excluded). dmean and dvariance, when not NULL,
 * receive the gradients with respect to x (dim values each). Returns -1
 * when the GP is not fitted or memory runs out. */
int hpo_gp_predict(const hpo_gp *gp, const double *x, double *mean, double *variance,
                   double *dmean, double *dvariance, char *err, size_t errlen);

/* Posterior mean and variance at m points (rows of X), with level-3 BLAS;
 * faster than m calls of hpo_gp_predict(). */
int hpo_gp_predict_batch(const hpo_gp *gp, const double *X, int m,
                         double *mean, double *variance, char *err, size_t errlen);

/* Copies the dim + 2 hyperparameters (see the top of this file) into
 * theta. */
void hpo_gp_get_hyperparameters(const hpo_gp *gp, double *theta);

/* Sets the hyperparameters; the next fit without optimization uses them,
 * and the next fit with optimization starts from them. A fitted GP is
 * factorized again. */
int hpo_gp_set_hyperparameters(hpo_gp *gp, const double *theta, char *err, size_t errlen);

/* Evaluates the log marginal likelihood of the fitted observations
 * (standardized outputs, fantasies excluded) at theta, plus the log prior
 * when with_prior is set (without its normalizing constants). grad, when
 * not NULL, receives its dim + 2 partial derivatives with respect to theta. */
int hpo_gp_log_marginal_likelihood(const hpo_gp *gp, const double *theta, bool with_prior,
                                   double *value, double *grad, char *err, size_t errlen);

/* Jitter added to the diagonal of the kernel matrix by the last
 * factorization, in standardized units; 0 when none was needed. */
double hpo_gp_jitter(const hpo_gp *gp);

#endif
