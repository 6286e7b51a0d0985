/* Gaussian-process regression: Matern-5/2 ARD kernel, Cholesky
 * factorization with escalating jitter, log marginal likelihood with
 * analytic gradients, BFGS over the hyperparameters, and posterior
 * predictions with gradients. Formulas follow Rasmussen and Williams,
 * Gaussian Processes for Machine Learning (2006), chapters 2 and 5. */
#include "hpo/gp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_blas.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_multimin.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_vector.h>

#include "hpo/error.h"
#include "hpo/log.h"

#define SQRT5 2.23606797749978969641

/* Inputs are centered on the middle of the unit cube before scaling, which
 * keeps |z|^2 small in r^2 = |z_i|^2 + |z_k|^2 - 2 z_i.z_k. */
#define INPUT_CENTER 0.5

/* Jitter, relative to the signal variance, first tried when a Cholesky
 * factorization fails; it grows tenfold per retry up to JITTER_MAX. */
#define JITTER_FIRST 1e-9
#define JITTER_MAX 1e-2

/* Weak priors, in log space (ln of a lengthscale, of the signal variance
 * and of the noise variance above the floor):
 *   ln l_j ~ N(ln(0.5 sqrt(dim)), 1.5^2), because the expected distance
 *            between two points of the unit cube grows like sqrt(dim). Two
 *            standard deviations allow a factor of 20 either way.
 *   ln s2  ~ N(0, 1.5^2), because standardized outputs put s2 near 1.
 *   ln n2  ~ N(ln 1e-3, 2^2): evaluations are nearly deterministic, and
 *            training noise of a few percent is within 2 deviations. */
#define PRIOR_LENGTHSCALE_SD 1.5
#define PRIOR_SIGNAL_MEAN 0.0
#define PRIOR_SIGNAL_SD 1.5
#define PRIOR_NOISE_MEAN (-6.907755278982137) /* ln 1e-3 */
#define PRIOR_NOISE_SD 2.0

/* Bounds on theta, enforced by a quadratic wall of this stiffness added to
 * the negative log posterior, because BFGS is unconstrained. */
#define WALL_STIFFNESS 1e3
#define LN_LENGTHSCALE_MIN (-4.605170185988091) /* ln 0.01 */
#define LN_LENGTHSCALE_MAX 4.605170185988091    /* ln 100 */
#define LN_SIGNAL_MIN (-9.0)
#define LN_SIGNAL_MAX 5.0
#define LN_NOISE_MIN (-18.0)
#define LN_NOISE_MAX 2.0

/* BFGS settings: first step length in theta, line-search tolerance, and
 * the stopping rule of minimize_from(). */
#define BFGS_STEP 0.1
#define BFGS_LINE_TOLERANCE 0.1
#define BFGS_WINDOW 3
#define BFGS_DECREASE 0.01
#define BFGS_DECREASE_PER_ROW 1e-4
#define SCREEN_DECREASE 0.1

/* Rows of the two phases of the hyperparameter search, and the BFGS
 * iterations of the second phase (see optimize()). */
#define SCREEN_ROWS 128
#define FIT_ROWS 512
#define REFINE_ITERATIONS 20

/* OpenBLAS's thread control, declared here because OpenBLAS's cblas.h
 * conflicts with GSL's gsl_cblas.h (the project links OpenBLAS). Every
 * multithreaded BLAS call pays for waking its workers, and GSL's recursive
 * Cholesky makes many small calls. So work on kernel matrices of up to
 * SINGLE_THREAD_ROWS rows runs on one thread, which halved the fit at 200
 * rows on 2 cores (bench/gp_speed). NOTE: the thread count is a global of
 * OpenBLAS. GPs fitted on several threads at once change it for each other,
 * which affects their speed but not their results. */
int openblas_get_num_threads(void);
void openblas_set_num_threads(int num_threads);
#define SINGLE_THREAD_ROWS 256

/* Rows of test points per block in hpo_gp_predict_batch(). */
#define PREDICT_BLOCK 256

/* Scratch space for one kernel matrix of n rows. */
typedef struct {
    int n, dim;
    gsl_matrix *kf;      /* noise-free kernel matrix, lower triangle */
    gsl_matrix *chol;    /* K + noise + jitter, then its Cholesky factor L,
                            then (for gradients) K^-1 */
    gsl_matrix *dk;      /* e(r) = s2 (5/3)(1 + sqrt5 r) exp(-sqrt5 r), lower
                            triangle; then W o e for the gradient */
    gsl_matrix *z;       /* (x - INPUT_CENTER) / l, n x dim */
    gsl_matrix *mz;      /* (W o e) z, n x dim */
    gsl_vector *alpha;   /* K^-1 y */
    gsl_vector *zsq;     /* |z_i|^2 */
    gsl_vector *rowsum;  /* row sums of W o e */
    double jitter;       /* jitter of the last factorization */
} workspace;

struct hpo_gp {
    int dim;
    int n;               /* rows: observations, then fantasies */
    int n_observed;
    double *x;           /* n x dim inputs, owned */
    double *y;           /* n standardized outputs, owned */
    double y_mean, y_scale;
    double *theta;       /* dim + 2 hyperparameters, owned */
    workspace *ws;       /* factorization of the current rows at theta */
    bool factorized;
};

/* ---- hyperparameters and priors ---- */

static double prior_mean(int dim, int j)
{
    if (j < dim)
        return log(0.5 * sqrt((double)dim));
    return j == dim ? PRIOR_SIGNAL_MEAN : PRIOR_NOISE_MEAN;
}

static double prior_sd(int dim, int j)
{
    if (j < dim)
        return PRIOR_LENGTHSCALE_SD;
    return j == dim ? PRIOR_SIGNAL_SD : PRIOR_NOISE_SD;
}

static void theta_bounds(int dim, int j, double *lo, double *hi)
{
    if (j < dim) {
        *lo = LN_LENGTHSCALE_MIN;
        *hi = LN_LENGTHSCALE_MAX;
    } else if (j == dim) {
        *lo = LN_SIGNAL_MIN;
        *hi = LN_SIGNAL_MAX;
    } else {
        *lo = LN_NOISE_MIN;
        *hi = LN_NOISE_MAX;
    }
}

/* Log prior plus walls (up to constants) and its gradient, added to
 * *value and grad. */
static void add_log_prior(int dim, const double *theta, double *value, double *grad)
{
    for (int j = 0; j < dim + 2; j++) {
        double mu = prior_mean(dim, j), sd = prior_sd(dim, j), lo, hi;
        double u = (theta[j] - mu) / sd;
        *value -= 0.5 * u * u;
        if (grad != NULL)
            grad[j] -= u / sd;

        theta_bounds(dim, j, &lo, &hi);
        double excess = 0.0;
        if (theta[j] < lo)
            excess = theta[j] - lo;
        else if (theta[j] > hi)
            excess = theta[j] - hi;
        *value -= 0.5 * WALL_STIFFNESS * excess * excess;
        if (grad != NULL)
            grad[j] -= WALL_STIFFNESS * excess;
    }
}

/* ---- BLAS threads ---- */

/* Switches OpenBLAS to one thread for work on kernel matrices of up to
 * SINGLE_THREAD_ROWS rows; returns the thread count to restore. */
static int blas_threads_for(int rows)
{
    int threads = openblas_get_num_threads();
    if (rows <= SINGLE_THREAD_ROWS && threads != 1)
        openblas_set_num_threads(1);
    return threads;
}

static void blas_threads_restore(int threads)
{
    if (openblas_get_num_threads() != threads)
        openblas_set_num_threads(threads);
}

/* ---- workspace ---- */

static void workspace_free(workspace **ws)
{
    if (*ws == NULL)
        return;
    workspace *w = *ws;
    gsl_matrix_free(w->kf);
    gsl_matrix_free(w->chol);
    gsl_matrix_free(w->dk);
    gsl_matrix_free(w->z);
    gsl_matrix_free(w->mz);
    gsl_vector_free(w->alpha);
    gsl_vector_free(w->zsq);
    gsl_vector_free(w->rowsum);
    free(w);
    *ws = NULL;
}

static workspace *workspace_alloc(int n, int dim)
{
    workspace *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->n = n;
    w->dim = dim;
    w->kf = gsl_matrix_alloc((size_t)n, (size_t)n);
    w->chol = gsl_matrix_alloc((size_t)n, (size_t)n);
    w->dk = gsl_matrix_alloc((size_t)n, (size_t)n);
    w->z = gsl_matrix_alloc((size_t)n, (size_t)dim);
    w->mz = gsl_matrix_alloc((size_t)n, (size_t)dim);
    w->alpha = gsl_vector_alloc((size_t)n);
    w->zsq = gsl_vector_alloc((size_t)n);
    w->rowsum = gsl_vector_alloc((size_t)n);
    if (w->kf == NULL || w->chol == NULL || w->dk == NULL || w->z == NULL || w->mz == NULL ||
        w->alpha == NULL || w->zsq == NULL || w->rowsum == NULL)
        workspace_free(&w);
    return w;
}

/* ---- kernel matrix ---- */

/* Matern-5/2 at distance r for signal variance s2:
 *   k = s2 (1 + sqrt5 r + 5 r^2 / 3) exp(-sqrt5 r),
 * and e = s2 (5/3)(1 + sqrt5 r) exp(-sqrt5 r), so that dk/dr = -r e and
 * dk/d(ln l_j) = e (x_j - x'_j)^2 / l_j^2. */
static inline void matern52(double r2, double s2, double *k, double *e)
{
    double r = sqrt(r2);
    double s5r = SQRT5 * r;
    double decay = s2 * exp(-s5r);
    *k = decay * (1.0 + s5r + (5.0 / 3.0) * r2);
    *e = decay * (5.0 / 3.0) * (1.0 + s5r);
}

/* Scales the inputs: z_ij = (x_ij - INPUT_CENTER) / l_j, zsq_i = |z_i|^2. */
static void scale_inputs(const double *x, int n, int dim, const double *theta,
                         gsl_matrix *z, gsl_vector *zsq)
{
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int j = 0; j < dim; j++) {
            double v = (x[(size_t)i * (size_t)dim + (size_t)j] - INPUT_CENTER) * exp(-theta[j]);
            gsl_matrix_set(z, (size_t)i, (size_t)j, v);
            s += v * v;
        }
        gsl_vector_set(zsq, (size_t)i, s);
    }
}

/* Fills the lower triangles of kf (kernel values) and dk (e values, 0 on
 * the diagonal) for the rows in w->z; returns a GSL status. The Gram matrix z z^T comes from one
 * dsyrk call; the exponentials are the only per-pair work. */
static int kernel_matrices(workspace *w, double s2)
{
    size_t n = (size_t)w->n;

    const double *zsq = gsl_vector_const_ptr(w->zsq, 0);

    int status = gsl_blas_dsyrk(CblasLower, CblasNoTrans, 1.0, w->z, 0.0, w->kf);
    if (status != GSL_SUCCESS)
        return status;
    for (size_t i = 0; i < n; i++) {
        double *kf_row = gsl_matrix_ptr(w->kf, i, 0);
        double *dk_row = gsl_matrix_ptr(w->dk, i, 0);
        for (size_t k = 0; k < i; k++) {
            double r2 = zsq[i] + zsq[k] - 2.0 * kf_row[k];
            matern52(r2 > 0.0 ? r2 : 0.0, s2, &kf_row[k], &dk_row[k]);
        }
        kf_row[i] = s2;
        dk_row[i] = 0.0;
    }
    return GSL_SUCCESS;
}

/* Factorizes K = kf + diag I into w->chol (lower triangle), adding jitter
 * while gsl_linalg_cholesky_decomp1 reports a matrix that is not positive
 * definite. log_retries logs each retry as a warning (the final
 * factorization) rather than at debug level (inside the optimizer). */
static int factorize(workspace *w, double diag, double s2, bool log_retries)
{
    size_t n = (size_t)w->n;
    double jitter = 0.0;

    for (;;) {
        for (size_t i = 0; i < n; i++) {
            memcpy(gsl_matrix_ptr(w->chol, i, 0), gsl_matrix_const_ptr(w->kf, i, 0),
                   (i + 1) * sizeof(double));
            *gsl_matrix_ptr(w->chol, i, i) += diag + jitter;
        }
        int status = gsl_linalg_cholesky_decomp1(w->chol);
        if (status == GSL_SUCCESS) {
            w->jitter = jitter;
            return 0;
        }

        double next = jitter == 0.0 ? JITTER_FIRST * s2 : 10.0 * jitter;
        if (status != GSL_EDOM || next > JITTER_MAX * s2) {
            hpo_log_limited("gp-cholesky-failed", 5, HPO_LOG_WARN,
                            "gp: Cholesky factorization of %zu x %zu kernel matrix failed "
                            "(%s) with jitter %g", n, n, gsl_strerror(status), jitter);
            return -1;
        }
        if (log_retries)
            hpo_log_limited("gp-jitter", 5, HPO_LOG_WARN,
                            "gp: %zu x %zu kernel matrix not positive definite; retrying "
                            "with jitter %g", n, n, next);
        else
            hpo_log_debug("gp: kernel matrix not positive definite; retrying with jitter %g",
                          next);
        jitter = next;
    }
}

/* Builds and factorizes the kernel matrix of x at theta and solves for
 * alpha = K^-1 y. */
static int condition(workspace *w, const double *x, const double *y, const double *theta,
                     bool log_retries)
{
    int dim = w->dim;
    double s2 = exp(theta[dim]);
    double noise = HPO_GP_NOISE_FLOOR + exp(theta[dim + 1]);

    scale_inputs(x, w->n, dim, theta, w->z, w->zsq);
    if (kernel_matrices(w, s2) != GSL_SUCCESS || factorize(w, noise, s2, log_retries) < 0)
        return -1;

    gsl_vector_const_view yv = gsl_vector_const_view_array(y, (size_t)w->n);
    if (gsl_linalg_cholesky_solve(w->chol, &yv.vector, w->alpha) != GSL_SUCCESS)
        return -1;
    return 0;
}

/* ---- log marginal likelihood ---- */

/* Log marginal likelihood of y (n values) at theta, with its gradient when
 * grad is not NULL (Rasmussen and Williams, eqs. 2.30 and 5.9):
 *   log p(y) = -y^T alpha / 2 - sum_i ln L_ii - n ln(2 pi) / 2,
 *   d log p / d theta_j = tr((alpha alpha^T - K^-1) dK/dtheta_j) / 2.
 * With W = alpha alpha^T - K^-1 and M = W o e (elementwise), the
 * lengthscale terms reduce to
 *   d log p / d ln l_j = sum_i z_ij^2 (M 1)_i - (z^T M z)_jj,
 * one dsymm call for all dimensions. */
static int log_marginal_likelihood(workspace *w, const double *x, const double *y,
                                   const double *theta, double *value, double *grad)
{
    size_t n = (size_t)w->n;
    int dim = w->dim;

    if (condition(w, x, y, theta, false) < 0)
        return -1;

    double quad = 0.0, logdet = 0.0;
    for (size_t i = 0; i < n; i++) {
        quad += y[i] * gsl_vector_get(w->alpha, i);
        logdet += log(gsl_matrix_get(w->chol, i, i));
    }
    *value = -0.5 * quad - logdet - 0.5 * (double)n * log(2.0 * M_PI);
    if (grad == NULL)
        return 0;

    /* K^-1 from the factor, then W, M = W o e and the scalar terms in one
     * pass over the lower triangle. */
    if (gsl_linalg_cholesky_invert(w->chol) != GSL_SUCCESS)
        return -1;
    double signal_term = 0.0, trace_w = 0.0;
    gsl_vector_set_zero(w->rowsum);
    double *rowsum = gsl_vector_ptr(w->rowsum, 0);
    const double *alpha = gsl_vector_const_ptr(w->alpha, 0);
    for (size_t i = 0; i < n; i++) {
        const double *kinv_row = gsl_matrix_const_ptr(w->chol, i, 0);
        const double *kf_row = gsl_matrix_const_ptr(w->kf, i, 0);
        double *m_row = gsl_matrix_ptr(w->dk, i, 0);
        for (size_t k = 0; k < i; k++) {
            double wik = alpha[i] * alpha[k] - kinv_row[k];
            signal_term += 2.0 * wik * kf_row[k];
            m_row[k] *= wik;
            rowsum[i] += m_row[k];
            rowsum[k] += m_row[k];
        }
        double wii = alpha[i] * alpha[i] - kinv_row[i];
        signal_term += wii * kf_row[i];
        trace_w += wii;
        m_row[i] = 0.0;
    }

    if (gsl_blas_dsymm(CblasLeft, CblasLower, 1.0, w->dk, w->z, 0.0, w->mz) != GSL_SUCCESS)
        return -1;
    for (int j = 0; j < dim; j++)
        grad[j] = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double *zi = gsl_matrix_const_ptr(w->z, i, 0);
        const double *mzi = gsl_matrix_const_ptr(w->mz, i, 0);
        for (int j = 0; j < dim; j++)
            grad[j] += zi[j] * (zi[j] * rowsum[i] - mzi[j]);
    }
    grad[dim] = 0.5 * signal_term;
    grad[dim + 1] = 0.5 * exp(theta[dim + 1]) * trace_w;
    return 0;
}

/* ---- optimization ---- */

typedef struct {
    workspace *w;
    const double *x, *y;
    int dim;
    long evaluations;
    /* Last point evaluated, so that f and df at the same point cost one
     * evaluation. */
    double *cache_theta;
    double cache_value;
    double *cache_grad;
    bool cache_valid;
} objective;

/* Negative log posterior and its gradient at theta. A failed factorization
 * gives a huge value with a zero gradient, so that the line search backs
 * off and BFGS stops there. */
static void objective_eval(objective *o, const gsl_vector *theta_v)
{
    int m = o->dim + 2;
    const double *theta = gsl_vector_const_ptr(theta_v, 0);

    if (o->cache_valid && memcmp(theta, o->cache_theta, (size_t)m * sizeof *theta) == 0)
        return;
    memcpy(o->cache_theta, theta, (size_t)m * sizeof *theta);
    o->cache_valid = true;
    o->evaluations++;

    double value;
    if (log_marginal_likelihood(o->w, o->x, o->y, theta, &value, o->cache_grad) < 0) {
        o->cache_value = 1e300;
        memset(o->cache_grad, 0, (size_t)m * sizeof *o->cache_grad);
        return;
    }
    add_log_prior(o->dim, theta, &value, o->cache_grad);
    o->cache_value = -value;
    for (int j = 0; j < m; j++)
        o->cache_grad[j] = -o->cache_grad[j];
}

static double objective_f(const gsl_vector *theta, void *params)
{
    objective *o = params;
    objective_eval(o, theta);
    return o->cache_value;
}

static void objective_df(const gsl_vector *theta, void *params, gsl_vector *grad)
{
    objective *o = params;
    objective_eval(o, theta);
    for (int j = 0; j < o->dim + 2; j++)
        gsl_vector_set(grad, (size_t)j, o->cache_grad[j]);
}

static void objective_fdf(const gsl_vector *theta, void *params, double *f, gsl_vector *grad)
{
    objective *o = params;
    objective_eval(o, theta);
    *f = o->cache_value;
    for (int j = 0; j < o->dim + 2; j++)
        gsl_vector_set(grad, (size_t)j, o->cache_grad[j]);
}

/* Runs BFGS from start; writes the final point and value. A start stops
 * after max_iterations, when the line search makes no progress, or when
 * the objective fell by less than decrease nats over the last BFGS_WINDOW
 * iterations. */
static int minimize_from(gsl_multimin_fdfminimizer *s, gsl_multimin_function_fdf *fdf,
                         const gsl_vector *start, int max_iterations, double decrease,
                         gsl_vector *best_theta, double *best_value, int *iterations)
{
    double history[BFGS_WINDOW + 1];
    int status = gsl_multimin_fdfminimizer_set(s, fdf, start, BFGS_STEP, BFGS_LINE_TOLERANCE);
    if (status != GSL_SUCCESS)
        return -1;

    int iter = 0;
    history[0] = gsl_multimin_fdfminimizer_minimum(s);
    while (iter < max_iterations) {
        iter++;
        status = gsl_multimin_fdfminimizer_iterate(s);
        if (status != GSL_SUCCESS)
            break; /* GSL_ENOPROG: no further progress along the line */

        double f = gsl_multimin_fdfminimizer_minimum(s);
        history[iter % (BFGS_WINDOW + 1)] = f;
        if (iter >= BFGS_WINDOW &&
            history[(iter - BFGS_WINDOW) % (BFGS_WINDOW + 1)] - f < decrease)
            break;
    }
    *iterations = iter;
    *best_value = gsl_multimin_fdfminimizer_minimum(s);
    gsl_vector_memcpy(best_theta, gsl_multimin_fdfminimizer_x(s));
    return isfinite(*best_value) ? 0 : -1;
}

/* Rows that one phase of the hyperparameter search fits: all of the GP's
 * rows, or a random subset with its own copies and workspace. */
typedef struct {
    int n;
    workspace *ws;
    const double *x, *y;
    double *owned_x, *owned_y; /* NULL when the rows are the GP's own */
    workspace *owned_ws;
} row_set;

/* BFGS state shared by the starts of one optimization. */
typedef struct {
    gsl_multimin_fdfminimizer *minimizer;
    gsl_vector *start, *end, *best;
    objective o;
    gsl_multimin_function_fdf fdf;
    int iterations;
} search;

static void search_free(search *sr)
{
    if (sr->minimizer != NULL)
        gsl_multimin_fdfminimizer_free(sr->minimizer);
    gsl_vector_free(sr->start);
    gsl_vector_free(sr->end);
    gsl_vector_free(sr->best);
    free(sr->o.cache_theta);
    free(sr->o.cache_grad);
}

static int search_init(search *sr, int dim)
{
    size_t m = (size_t)dim + 2;
    memset(sr, 0, sizeof *sr);
    sr->minimizer = gsl_multimin_fdfminimizer_alloc(gsl_multimin_fdfminimizer_vector_bfgs2, m);
    sr->start = gsl_vector_alloc(m);
    sr->end = gsl_vector_alloc(m);
    sr->best = gsl_vector_alloc(m);
    sr->o.dim = dim;
    sr->o.cache_theta = malloc(m * sizeof *sr->o.cache_theta);
    sr->o.cache_grad = malloc(m * sizeof *sr->o.cache_grad);
    sr->fdf = (gsl_multimin_function_fdf){
        .f = objective_f, .df = objective_df, .fdf = objective_fdf, .n = m, .params = &sr->o,
    };
    if (sr->minimizer == NULL || sr->start == NULL || sr->end == NULL || sr->best == NULL ||
        sr->o.cache_theta == NULL || sr->o.cache_grad == NULL) {
        search_free(sr);
        return -1;
    }
    return 0;
}

/* Minimizes from sr->start over the rows of rs; keeps the result in
 * sr->best when it beats *best_value. A screening run, which a refinement
 * on more rows follows, only needs to find the right basin and stops
 * earlier. Otherwise a run stops when the objective falls by less than
 * max(BFGS_DECREASE, BFGS_DECREASE_PER_ROW n) nats over BFGS_WINDOW
 * iterations, because differences that small in the log posterior of n
 * rows do not change the proposals. */
static void search_run(search *sr, const row_set *rs, int max_iterations, bool screening,
                       double *best_value)
{
    double decrease = fmax(screening ? SCREEN_DECREASE : BFGS_DECREASE,
                           BFGS_DECREASE_PER_ROW * rs->n);
    double value;
    int iterations = 0;
    int threads = blas_threads_for(rs->n);

    sr->o.w = rs->ws;
    sr->o.x = rs->x;
    sr->o.y = rs->y;
    sr->o.cache_valid = false;
    int rc = minimize_from(sr->minimizer, &sr->fdf, sr->start, max_iterations, decrease,
                           sr->end, &value, &iterations);
    blas_threads_restore(threads);
    if (rc < 0) {
        hpo_log_debug("gp: a hyperparameter search from one start failed");
        return;
    }
    sr->iterations += iterations;
    hpo_log_debug("gp: BFGS on %d rows: %d iterations, negative log posterior %.6g", rs->n,
                  iterations, value);
    if (value < *best_value) {
        *best_value = value;
        gsl_vector_memcpy(sr->best, sr->end);
    }
}

static void row_set_free(row_set *rs)
{
    free(rs->owned_x);
    free(rs->owned_y);
    workspace_free(&rs->owned_ws);
}

/* Selects count of the GP's rows at random (or spread evenly without
 * rng), or all of them when count >= gp->n. */
static int row_set_pick(hpo_gp *gp, int count, gsl_rng *rng, row_set *rs)
{
    size_t dim = (size_t)gp->dim;

    memset(rs, 0, sizeof *rs);
    if (count >= gp->n) {
        *rs = (row_set){.n = gp->n, .ws = gp->ws, .x = gp->x, .y = gp->y};
        return 0;
    }

    int *all = malloc((size_t)gp->n * sizeof *all);
    int *chosen = malloc((size_t)count * sizeof *chosen);
    rs->owned_x = malloc((size_t)count * dim * sizeof *rs->owned_x);
    rs->owned_y = malloc((size_t)count * sizeof *rs->owned_y);
    rs->owned_ws = workspace_alloc(count, gp->dim);
    if (all == NULL || chosen == NULL || rs->owned_x == NULL || rs->owned_y == NULL ||
        rs->owned_ws == NULL) {
        free(all);
        free(chosen);
        row_set_free(rs);
        return -1;
    }

    for (int i = 0; i < gp->n; i++)
        all[i] = i;
    if (rng != NULL)
        gsl_ran_choose(rng, chosen, (size_t)count, all, (size_t)gp->n, sizeof *all);
    else
        for (int i = 0; i < count; i++)
            chosen[i] = (int)((long)i * gp->n / count);
    for (int i = 0; i < count; i++) {
        memcpy(rs->owned_x + (size_t)i * dim, gp->x + (size_t)chosen[i] * dim,
               dim * sizeof *rs->owned_x);
        rs->owned_y[i] = gp->y[chosen[i]];
    }
    free(all);
    free(chosen);
    *rs = (row_set){.n = count, .ws = rs->owned_ws, .x = rs->owned_x, .y = rs->owned_y,
                    .owned_x = rs->owned_x, .owned_y = rs->owned_y, .owned_ws = rs->owned_ws};
    return 0;
}

/* Maximizes the log posterior over theta from 1 + restarts starting
 * points (gp->theta, then draws from the prior) and stores the best point
 * in gp->theta. Each evaluation on n rows costs O(n^3), so large data sets
 * are fitted in two phases, a subset-of-data estimate (Rasmussen and
 * Williams, section 8.3.1). Every start runs on SCREEN_ROWS random rows.
 * The best result is then refined for at most REFINE_ITERATIONS
 * iterations on FIT_ROWS random rows, or on all rows when there are fewer.
 * The posterior always conditions on all rows. At 1,000 rows in 16 dimensions
 * this costs about 1 s of CPU instead of several, for a log marginal
 * likelihood a few percent below that of a full optimization (see
 * docs/benchmarks.md). */
static int optimize(hpo_gp *gp, const hpo_gp_fit_options *opt, gsl_rng *rng,
                    char *err, size_t errlen)
{
    int dim = gp->dim, m = dim + 2, rc = -1;
    row_set screen = {0}, refine = {0};
    search sr;

    if (search_init(&sr, dim) < 0)
        return hpo_error(err, errlen, "gp: out of memory for the hyperparameter search");
    if (row_set_pick(gp, SCREEN_ROWS, rng, &screen) < 0 ||
        (gp->n > SCREEN_ROWS && row_set_pick(gp, FIT_ROWS, rng, &refine) < 0)) {
        hpo_error(err, errlen, "gp: out of memory for the hyperparameter search");
        goto cleanup;
    }

    double best = INFINITY;
    for (int r = 0; r <= opt->restarts; r++) {
        for (int j = 0; j < m; j++) {
            double v = gp->theta[j];
            if (r > 0) {
                double lo, hi;
                theta_bounds(dim, j, &lo, &hi);
                v = prior_mean(dim, j) + gsl_ran_gaussian(rng, prior_sd(dim, j));
                v = fmin(hi, fmax(lo, v));
            }
            gsl_vector_set(sr.start, (size_t)j, v);
        }
        search_run(&sr, &screen, opt->max_iterations, refine.n > 0, &best);
    }
    if (refine.n > 0 && isfinite(best)) {
        gsl_vector_memcpy(sr.start, sr.best);
        best = INFINITY;
        int iterations = opt->max_iterations < REFINE_ITERATIONS ? opt->max_iterations
                                                                 : REFINE_ITERATIONS;
        search_run(&sr, &refine, iterations, false, &best);
    }
    if (!isfinite(best)) {
        hpo_error(err, errlen, "gp: every hyperparameter search failed for %d observations",
                  gp->n);
        goto cleanup;
    }

    memcpy(gp->theta, gsl_vector_const_ptr(sr.best, 0), (size_t)m * sizeof(double));
    hpo_log_debug("gp: %d observations, %d starts on %d rows%s, %d BFGS iterations, "
                  "%ld evaluations", gp->n, opt->restarts + 1, screen.n,
                  refine.n > 0 ? ", refined on more rows" : "", sr.iterations, sr.o.evaluations);
    rc = 0;

cleanup:
    search_free(&sr);
    row_set_free(&screen);
    row_set_free(&refine);
    return rc;
}

/* ---- public interface ---- */

void hpo_gp_fit_options_default(hpo_gp_fit_options *options)
{
    *options = (hpo_gp_fit_options){.optimize = true, .restarts = 2, .max_iterations = 100};
}

int hpo_gp_create(int dim, hpo_gp **out, char *err, size_t errlen)
{
    *out = NULL;
    if (dim < 1)
        return hpo_error(err, errlen, "gp: dimension %d is invalid; it must be at least 1", dim);

    hpo_gp *gp = calloc(1, sizeof *gp);
    if (gp == NULL || (gp->theta = malloc((size_t)(dim + 2) * sizeof *gp->theta)) == NULL) {
        free(gp);
        return hpo_error(err, errlen, "gp: out of memory");
    }
    gp->dim = dim;
    gp->y_scale = 1.0;
    for (int j = 0; j < dim + 2; j++)
        gp->theta[j] = prior_mean(dim, j);
    *out = gp;
    return 0;
}

void hpo_gp_destroy(hpo_gp **gp)
{
    if (gp == NULL || *gp == NULL)
        return;
    workspace_free(&(*gp)->ws);
    free((*gp)->x);
    free((*gp)->y);
    free((*gp)->theta);
    free(*gp);
    *gp = NULL;
}

int hpo_gp_dim(const hpo_gp *gp) { return gp->dim; }
int hpo_gp_count(const hpo_gp *gp) { return gp->factorized ? gp->n : 0; }
double hpo_gp_jitter(const hpo_gp *gp) { return gp->ws != NULL ? gp->ws->jitter : 0.0; }

void hpo_gp_get_hyperparameters(const hpo_gp *gp, double *theta)
{
    memcpy(theta, gp->theta, (size_t)(gp->dim + 2) * sizeof *theta);
}

/* Allocates a workspace for gp->n rows and factorizes at gp->theta. */
static int refactorize(hpo_gp *gp, char *err, size_t errlen)
{
    gp->factorized = false;
    if (gp->ws == NULL || gp->ws->n != gp->n) {
        workspace_free(&gp->ws);
        gp->ws = workspace_alloc(gp->n, gp->dim);
        if (gp->ws == NULL)
            return hpo_error(err, errlen, "gp: out of memory for a %d x %d kernel matrix",
                             gp->n, gp->n);
    }
    int threads = blas_threads_for(gp->n);
    int rc = condition(gp->ws, gp->x, gp->y, gp->theta, true);
    blas_threads_restore(threads);
    if (rc < 0)
        return hpo_error(err, errlen,
                         "gp: the kernel matrix of %d rows is not positive definite even "
                         "with jitter %g; the inputs or hyperparameters are degenerate",
                         gp->n, JITTER_MAX);
    gp->factorized = true;
    return 0;
}

int hpo_gp_set_hyperparameters(hpo_gp *gp, const double *theta, char *err, size_t errlen)
{
    for (int j = 0; j < gp->dim + 2; j++) {
        if (!isfinite(theta[j]))
            return hpo_error(err, errlen, "gp: hyperparameter %d is not finite", j);
    }
    memcpy(gp->theta, theta, (size_t)(gp->dim + 2) * sizeof *theta);
    if (gp->factorized)
        return refactorize(gp, err, errlen);
    return 0;
}

/* Stores the standardized outputs: (y - mean) / sd, with sd = 1 when the
 * outputs are all equal. */
static void standardize(hpo_gp *gp, const double *y, int n)
{
    double mean = 0.0, ss = 0.0;
    for (int i = 0; i < n; i++)
        mean += y[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        ss += (y[i] - mean) * (y[i] - mean);
    double sd = sqrt(ss / n);
    if (!(sd > 1e-12 * fmax(1.0, fabs(mean))))
        sd = 1.0;

    gp->y_mean = mean;
    gp->y_scale = sd;
    for (int i = 0; i < n; i++)
        gp->y[i] = (y[i] - mean) / sd;
}

int hpo_gp_fit(hpo_gp *gp, const double *X, const double *y, int n,
               const hpo_gp_fit_options *options, gsl_rng *rng, char *err, size_t errlen)
{
    hpo_gp_fit_options defaults;
    size_t nd = (size_t)n * (size_t)gp->dim;

    if (options == NULL) {
        hpo_gp_fit_options_default(&defaults);
        options = &defaults;
    }
    if (n < 1)
        return hpo_error(err, errlen, "gp: %d observations; a fit needs at least 1", n);
    for (size_t i = 0; i < nd; i++) {
        if (!isfinite(X[i]))
            return hpo_error(err, errlen, "gp: input %zu of row %zu is not finite",
                             i % (size_t)gp->dim, i / (size_t)gp->dim);
    }
    for (int i = 0; i < n; i++) {
        if (!isfinite(y[i]))
            return hpo_error(err, errlen, "gp: output %d is not finite", i);
    }
    if (options->optimize && options->restarts > 0 && rng == NULL)
        return hpo_error(err, errlen, "gp: %d restarts need a random generator",
                         options->restarts);

    double *x_copy = malloc(nd * sizeof *x_copy);
    double *y_copy = malloc((size_t)n * sizeof *y_copy);
    if (x_copy == NULL || y_copy == NULL) {
        free(x_copy);
        free(y_copy);
        return hpo_error(err, errlen, "gp: out of memory for %d observations", n);
    }
    memcpy(x_copy, X, nd * sizeof *x_copy);
    free(gp->x);
    free(gp->y);
    gp->x = x_copy;
    gp->y = y_copy;
    gp->n = gp->n_observed = n;
    gp->factorized = false;
    standardize(gp, y, n);

    if (gp->ws == NULL || gp->ws->n != n) {
        workspace_free(&gp->ws);
        gp->ws = workspace_alloc(n, gp->dim);
        if (gp->ws == NULL)
            return hpo_error(err, errlen, "gp: out of memory for a %d x %d kernel matrix", n, n);
    }
    if (options->optimize && optimize(gp, options, rng, err, errlen) < 0)
        return -1;
    return refactorize(gp, err, errlen);
}

int hpo_gp_add_fantasies(hpo_gp *gp, const double *X, int m, char *err, size_t errlen)
{
    if (!gp->factorized)
        return hpo_error(err, errlen, "gp: fantasies need a fitted GP");
    if (m <= 0)
        return 0;

    /* Posterior means in standardized units, at the current rows. */
    double *means = malloc((size_t)m * sizeof *means);
    double *variances = malloc((size_t)m * sizeof *variances);
    if (means == NULL || variances == NULL) {
        free(means);
        free(variances);
        return hpo_error(err, errlen, "gp: out of memory for %d fantasies", m);
    }
    if (hpo_gp_predict_batch(gp, X, m, means, variances, err, errlen) < 0) {
        free(means);
        free(variances);
        return -1;
    }
    free(variances);

    size_t n_new = (size_t)gp->n + (size_t)m, dim = (size_t)gp->dim;
    double *x = realloc(gp->x, n_new * dim * sizeof *x);
    if (x != NULL)
        gp->x = x;
    double *y = x != NULL ? realloc(gp->y, n_new * sizeof *y) : NULL;
    if (y == NULL) {
        free(means);
        return hpo_error(err, errlen, "gp: out of memory for %d fantasies", m);
    }
    gp->y = y;
    memcpy(gp->x + (size_t)gp->n * dim, X, (size_t)m * dim * sizeof *x);
    for (int i = 0; i < m; i++)
        gp->y[gp->n + i] = (means[i] - gp->y_mean) / gp->y_scale;
    free(means);
    gp->n = (int)n_new;
    return refactorize(gp, err, errlen);
}

int hpo_gp_log_marginal_likelihood(const hpo_gp *gp, const double *theta, bool with_prior,
                                   double *value, double *grad, char *err, size_t errlen)
{
    if (gp->n_observed < 1 || gp->x == NULL)
        return hpo_error(err, errlen, "gp: the log marginal likelihood needs a fitted GP");

    workspace *w = workspace_alloc(gp->n_observed, gp->dim);
    if (w == NULL)
        return hpo_error(err, errlen, "gp: out of memory");
    int rc = log_marginal_likelihood(w, gp->x, gp->y, theta, value, grad);
    workspace_free(&w);
    if (rc < 0)
        return hpo_error(err, errlen, "gp: the kernel matrix is not positive definite");
    if (with_prior)
        add_log_prior(gp->dim, theta, value, grad);
    return 0;
}

/* ---- prediction ---- */

int hpo_gp_predict(const hpo_gp *gp, const double *x, double *mean, double *variance,
                   double *dmean, double *dvariance, char *err, size_t errlen)
{
    if (!gp->factorized)
        return hpo_error(err, errlen, "gp: predictions need a fitted GP");

    const workspace *w = gp->ws;
    size_t n = (size_t)gp->n, dim = (size_t)gp->dim;
    double s2 = exp(gp->theta[dim]);
    double *buf = malloc((3 * n + 3 * dim) * sizeof *buf);
    if (buf == NULL)
        return hpo_error(err, errlen, "gp: out of memory");
    double *kstar = buf, *e = buf + n, *v = buf + 2 * n, *zstar = buf + 3 * n;

    /* k_i = k(x, x_i) and e_i from the scaled distance. */
    for (size_t j = 0; j < dim; j++)
        zstar[j] = (x[j] - INPUT_CENTER) * exp(-gp->theta[j]);
    for (size_t i = 0; i < n; i++) {
        const double *zi = gsl_matrix_const_ptr(w->z, i, 0);
        double r2 = 0.0;
        for (size_t j = 0; j < dim; j++)
            r2 += (zstar[j] - zi[j]) * (zstar[j] - zi[j]);
        matern52(r2, s2, &kstar[i], &e[i]);
    }

    /* mean = k^T alpha; variance = s2 - |L^-1 k|^2. */
    gsl_vector_view kv = gsl_vector_view_array(kstar, n), vv = gsl_vector_view_array(v, n);
    double mu, vtv;
    int status = gsl_blas_ddot(&kv.vector, w->alpha, &mu);
    if (status == GSL_SUCCESS)
        status = gsl_vector_memcpy(&vv.vector, &kv.vector);
    if (status == GSL_SUCCESS)
        status = gsl_blas_dtrsv(CblasLower, CblasNoTrans, CblasNonUnit, w->chol, &vv.vector);
    if (status == GSL_SUCCESS)
        status = gsl_blas_ddot(&vv.vector, &vv.vector, &vtv);
    if (status == GSL_SUCCESS && dvariance != NULL)
        status = gsl_blas_dtrsv(CblasLower, CblasTrans, CblasNonUnit, w->chol, &vv.vector);
    if (status != GSL_SUCCESS) {
        free(buf);
        return hpo_error(err, errlen, "gp: prediction failed: %s", gsl_strerror(status));
    }
    double var = s2 - vtv;
    bool clamped = var < 1e-12 * s2;
    if (clamped)
        var = 1e-12 * s2;

    /* Gradients: dk_i/dx_j = -e_i (z_j - z_ij) / l_j; with beta = K^-1 k
     * (in v when dvariance is wanted), dmean_j = sum_i alpha_i dk_i/dx_j and
     * dvar_j = -2 sum_i beta_i dk_i/dx_j. */
    if (dmean != NULL || dvariance != NULL) {
        double *gm = buf + 3 * n + dim, *gv = buf + 3 * n + 2 * dim;
        const double *alpha = gsl_vector_const_ptr(w->alpha, 0);
        for (size_t j = 0; j < dim; j++)
            gm[j] = gv[j] = 0.0;
        for (size_t i = 0; i < n; i++) {
            const double *zi = gsl_matrix_const_ptr(w->z, i, 0);
            for (size_t j = 0; j < dim; j++) {
                double t = e[i] * (zstar[j] - zi[j]);
                gm[j] += alpha[i] * t;
                gv[j] += v[i] * t;
            }
        }
        for (size_t j = 0; j < dim; j++) {
            double inv_l = exp(-gp->theta[j]);
            if (dmean != NULL)
                dmean[j] = -inv_l * gm[j] * gp->y_scale;
            if (dvariance != NULL)
                dvariance[j] = clamped ? 0.0 : 2.0 * inv_l * gv[j] * gp->y_scale * gp->y_scale;
        }
    }

    *mean = gp->y_mean + gp->y_scale * mu;
    *variance = var * gp->y_scale * gp->y_scale;
    free(buf);
    return 0;
}

int hpo_gp_predict_batch(const hpo_gp *gp, const double *X, int m, double *mean,
                         double *variance, char *err, size_t errlen)
{
    if (!gp->factorized)
        return hpo_error(err, errlen, "gp: predictions need a fitted GP");

    const workspace *w = gp->ws;
    size_t n = (size_t)gp->n, dim = (size_t)gp->dim;
    size_t block = (size_t)m < PREDICT_BLOCK ? (size_t)m : PREDICT_BLOCK;
    double s2 = exp(gp->theta[dim]);
    const double *train_zsq = gsl_vector_const_ptr(w->zsq, 0);
    if (m <= 0)
        return 0;

    gsl_matrix *zs = gsl_matrix_alloc(block, dim);
    gsl_matrix *kc = gsl_matrix_alloc(block, n);
    double *zsq = malloc(block * sizeof *zsq);
    int rc = -1, threads = blas_threads_for(gp->n);
    if (zs == NULL || kc == NULL || zsq == NULL) {
        hpo_error(err, errlen, "gp: out of memory for %zu x %zu cross-covariances", block, n);
        goto cleanup;
    }

    for (size_t start = 0; start < (size_t)m; start += block) {
        size_t rows = (size_t)m - start < block ? (size_t)m - start : block;
        gsl_matrix_view zsv = gsl_matrix_submatrix(zs, 0, 0, rows, dim);
        gsl_matrix_view kcv = gsl_matrix_submatrix(kc, 0, 0, rows, n);

        /* Cross-covariances from r^2 = |z*|^2 + |z_i|^2 - 2 z* . z_i. */
        for (size_t p = 0; p < rows; p++) {
            double s = 0.0;
            for (size_t j = 0; j < dim; j++) {
                double v = (X[(start + p) * dim + j] - INPUT_CENTER) * exp(-gp->theta[j]);
                gsl_matrix_set(&zsv.matrix, p, j, v);
                s += v * v;
            }
            zsq[p] = s;
        }
        int status = gsl_blas_dgemm(CblasNoTrans, CblasTrans, 1.0, &zsv.matrix, w->z, 0.0,
                                    &kcv.matrix);
        if (status != GSL_SUCCESS) {
            hpo_error(err, errlen, "gp: prediction failed: %s", gsl_strerror(status));
            goto cleanup;
        }
        for (size_t p = 0; p < rows; p++) {
            double *row = gsl_matrix_ptr(&kcv.matrix, p, 0);
            for (size_t i = 0; i < n; i++) {
                double r2 = zsq[p] + train_zsq[i] - 2.0 * row[i];
                double unused;
                matern52(r2 > 0.0 ? r2 : 0.0, s2, &row[i], &unused);
            }
        }

        /* mean = Kc alpha; V = Kc L^-T; variance = s2 - row sums of V^2. */
        gsl_vector_view mv = gsl_vector_view_array(mean + start, rows);
        status = gsl_blas_dgemv(CblasNoTrans, 1.0, &kcv.matrix, w->alpha, 0.0, &mv.vector);
        if (status == GSL_SUCCESS)
            status = gsl_blas_dtrsm(CblasRight, CblasLower, CblasTrans, CblasNonUnit, 1.0,
                                    w->chol, &kcv.matrix);
        if (status != GSL_SUCCESS) {
            hpo_error(err, errlen, "gp: prediction failed: %s", gsl_strerror(status));
            goto cleanup;
        }
        for (size_t p = 0; p < rows; p++) {
            gsl_vector_view row = gsl_matrix_row(&kcv.matrix, p);
            double ss = 0.0;
            gsl_blas_ddot(&row.vector, &row.vector, &ss); /* lengths match */
            double var = fmax(s2 - ss, 1e-12 * s2);
            mean[start + p] = gp->y_mean + gp->y_scale * mean[start + p];
            variance[start + p] = var * gp->y_scale * gp->y_scale;
        }
    }
    rc = 0;

cleanup:
    blas_threads_restore(threads);
    gsl_matrix_free(zs);
    gsl_matrix_free(kc);
    free(zsq);
    return rc;
}
