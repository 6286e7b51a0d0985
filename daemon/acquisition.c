/* Acquisition functions: log expected improvement that stays accurate
 * where EI underflows, the confidence bound, and log probability of
 * improvement. */
#include "acquisition.h"

#include <math.h>
#include <string.h>

/* ln(2 pi) / 2 */
#define HALF_LOG_2PI 0.91893853320467274178

/* Below z = -TAIL_SWITCH the tail formulas replace the direct ones. At
 * z = -3 the direct phi(z) + z Phi(z) loses about one digit to
 * cancellation, and CONTINUED_FRACTION_TERMS terms of the continued
 * fraction reach about 1e-16 (checked against 50-digit mpmath values). */
#define TAIL_SWITCH 3.0
#define CONTINUED_FRACTION_TERMS 60

/* Beyond this |z|, z^2 would overflow; z is clamped to it. */
#define Z_LIMIT 1e150

int hpo_acquisition_parse(const char *name, hpo_acquisition_kind *out)
{
    if (strcmp(name, "ei") == 0)
        *out = HPO_ACQ_LOG_EI;
    else if (strcmp(name, "ucb") == 0)
        *out = HPO_ACQ_UCB;
    else if (strcmp(name, "pi") == 0)
        *out = HPO_ACQ_PI;
    else
        return -1;
    return 0;
}

const char *hpo_acquisition_name(hpo_acquisition_kind kind)
{
    switch (kind) {
    case HPO_ACQ_LOG_EI: return "ei";
    case HPO_ACQ_UCB: return "ucb";
    case HPO_ACQ_PI: return "pi";
    }
    return "unknown";
}

/* For t > 0, the tail c(t) of Laplace's continued fraction for the Mills
 * ratio R(t) = Q(t) / phi(t), where Q(t) = 1 - Phi(t) (Abramowitz and
 * Stegun, Handbook of Mathematical Functions, eq. 26.2.14):
 *   R(t) = 1 / (t + 1 / (t + 2 / (t + 3 / (t + ...)))) = 1 / (t + c(t)),
 *   c(t) = 1 / (t + 2 / (t + 3 / (t + ...))),
 * evaluated from the innermost term outwards. */
static double mills_tail(double t)
{
    double tail = 0.0;
    for (int k = CONTINUED_FRACTION_TERMS; k >= 2; k--)
        tail = k / (t + tail);
    return 1.0 / (t + tail);
}

/* log h(z) with h(z) = phi(z) + z Phi(z), the factor of EI.
 *
 * For z > -3, h is computed directly. For z = -t <= -3, Phi(z) = Q(t) =
 * phi(t) / (t + c) with c = mills_tail(t), so
 *   h(z) = phi(t) - t phi(t) / (t + c) = phi(t) c / (t + c),
 *   log h(z) = -t^2 / 2 - ln(2 pi) / 2 + ln c - ln(t + c),
 * with no cancellation: the subtraction of two nearly equal terms, which
 * makes the direct formula underflow or lose all digits far below zero,
 * happens inside the continued fraction instead. As t grows, c ~ 1 / t and
 * log h ~ -t^2 / 2 - ln(2 pi) / 2 - 2 ln t, the asymptote of Ament et al.,
 * "Unexpected Improvements to Expected Improvement for Bayesian
 * Optimization", NeurIPS 2023, eq. 9, which uses erfcx for the middle
 * range; C has no erfcx, hence the continued fraction.
 * The derivative is h'(z) / h(z) = Phi(z) / h(z), which is 1 / c in the
 * tail. */
double hpo_log_ei_factor(double z, double *derivative)
{
    if (z > -TAIL_SWITCH) {
        double cdf = 0.5 * erfc(-z / M_SQRT2);
        double pdf = exp(-0.5 * z * z - HALF_LOG_2PI);
        double h = pdf + z * cdf;
        if (derivative != NULL)
            *derivative = cdf / h;
        return log(h);
    }

    double t = fmin(-z, Z_LIMIT);
    double c = mills_tail(t);
    if (derivative != NULL)
        *derivative = 1.0 / c;
    return -0.5 * t * t - HALF_LOG_2PI + log(c) - log(t + c);
}

/* log Phi(z): directly for z > -3, else log phi(t) - ln(t + c(t)) with
 * t = -z, from Phi(z) = Q(t) = phi(t) R(t). */
double hpo_log_normal_cdf(double z, double *derivative)
{
    if (z > -TAIL_SWITCH) {
        double cdf = 0.5 * erfc(-z / M_SQRT2);
        if (derivative != NULL)
            *derivative = exp(-0.5 * z * z - HALF_LOG_2PI) / cdf;
        return log(cdf);
    }

    double t = fmin(-z, Z_LIMIT);
    double c = mills_tail(t);
    if (derivative != NULL)
        *derivative = t + c;
    return -0.5 * t * t - HALF_LOG_2PI - log(t + c);
}

double hpo_acquisition_value(const hpo_acquisition *acq, double mean, double variance,
                             double *d_mean, double *d_variance)
{
    double sd = sqrt(variance);
    double z = (acq->best - mean) / sd;
    double value, dz;

    /* dz/dmean = -1 / sd and dz/dvariance = -z / (2 variance). */
    switch (acq->kind) {
    case HPO_ACQ_UCB:
        value = acq->beta * sd - mean;
        if (d_mean != NULL)
            *d_mean = -1.0;
        if (d_variance != NULL)
            *d_variance = acq->beta / (2.0 * sd);
        return value;
    case HPO_ACQ_PI:
        value = hpo_log_normal_cdf(z, &dz);
        if (d_mean != NULL)
            *d_mean = -dz / sd;
        if (d_variance != NULL)
            *d_variance = -z * dz / (2.0 * variance);
        return value;
    case HPO_ACQ_LOG_EI:
    default:
        value = log(sd) + hpo_log_ei_factor(z, &dz);
        if (d_mean != NULL)
            *d_mean = -dz / sd;
        if (d_variance != NULL)
            *d_variance = (1.0 - z * dz) / (2.0 * variance);
        return value;
    }
}
