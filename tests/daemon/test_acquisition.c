/* Tests of the acquisition functions and their search: log EI against
 * the closed form and 60-digit values, derivatives against differences,
 * and a search that avoids known configurations and finds the minimum. */
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

#include "acquisition.h"
#include "encoding.h"
#include "hpo/error.h"
#include "hpo/gp.h"
#include "hpo/log.h"
#include "hpo/study.h"

/* log(phi(z) + z Phi(z)) and log Phi(z), computed with mpmath 1.2.1 at
 * 60 digits (mp.log(mp.npdf(z) + z * mp.ncdf(z)) and mp.log(mp.ncdf(z))),
 * independently of daemon/acquisition.c. */
static const struct {
    double z, log_h, log_cdf;
} TAIL_REFERENCE[] = {
    {-2.5, -6.2125416454435128635, -5.0816482772786904984},
    {-3.0, -7.8696860596030285171, -6.6077262215103495433},
    {-3.5, -9.7468100377653867369, -8.366065308344092935},
    {-5.0, -16.744301162660990143, -15.064998393988725736},
    {-10.0, -55.553122036122355927, -53.231285150512470578},
    {-40.0, -808.29856835661996024, -804.60844201375378817},
    {-100.0, -5010.1295788002497923, -5005.5242086942050886},
    {-1e4, -50000019.339619307157, -50000010.129278915181},
    {-1e8, -5000000000000037.7603, -5000000000000019.3396},
};

/* Closed-form EI for minimization: (best - mean) Phi(z) + sd phi(z). */
static double closed_form_ei(double best, double mean, double sd)
{
    double z = (best - mean) / sd;
    double cdf = 0.5 * erfc(-z / M_SQRT2);
    double pdf = exp(-0.5 * z * z) / sqrt(2.0 * M_PI);
    return (best - mean) * cdf + sd * pdf;
}

static void log_ei_matches_closed_form(void **state)
{
    (void)state;
    hpo_acquisition acq = {.kind = HPO_ACQ_LOG_EI, .best = 0.3};

    /* Where EI is representable, up to z = -30 (EI about 1e-200). */
    for (double z = -30.0; z <= 8.0; z += 0.25) {
        double sd = 0.7, mean = acq.best - z * sd;
        double ei = closed_form_ei(acq.best, mean, sd);
        double value = hpo_acquisition_value(&acq, mean, sd * sd, NULL, NULL);
        if (!(ei > 0.0))
            fail_msg("closed form EI at z = %g is %g", z, ei);
        if (fabs(value - log(ei)) > 1e-9 * fmax(1.0, fabs(log(ei))))
            fail_msg("z = %g: log EI %.15g, log of closed form %.15g", z, value, log(ei));
    }
}

static void log_ei_tail_matches_reference(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof TAIL_REFERENCE / sizeof TAIL_REFERENCE[0]; i++) {
        double z = TAIL_REFERENCE[i].z;
        double log_h = hpo_log_ei_factor(z, NULL);
        double log_cdf = hpo_log_normal_cdf(z, NULL);
        if (fabs(log_h - TAIL_REFERENCE[i].log_h) > 1e-13 * fabs(TAIL_REFERENCE[i].log_h))
            fail_msg("log h(%g) = %.17g, reference %.17g", z, log_h, TAIL_REFERENCE[i].log_h);
        if (fabs(log_cdf - TAIL_REFERENCE[i].log_cdf) > 1e-13 * fabs(TAIL_REFERENCE[i].log_cdf))
            fail_msg("log Phi(%g) = %.17g, reference %.17g", z, log_cdf,
                     TAIL_REFERENCE[i].log_cdf);
    }
}

/* Far below the representable range, plain EI is 0 but log EI stays
 * finite and keeps decreasing. */
static void log_ei_finite_far_below(void **state)
{
    (void)state;
    hpo_acquisition acq = {.kind = HPO_ACQ_LOG_EI, .best = 0.0};
    double previous = INFINITY;

    for (double mean = 10.0; mean < 1e145; mean *= 10.0) {
        double value = hpo_acquisition_value(&acq, mean, 1e-4, NULL, NULL);
        assert_true(isfinite(value));
        assert_true(value < previous);
        previous = value;
    }
    assert_float_equal(closed_form_ei(0.0, 1e3, 1e-2), 0.0, 0.0);
    assert_true(isfinite(hpo_log_ei_factor(-1e300, NULL)));
    assert_true(isfinite(hpo_log_normal_cdf(-1e300, NULL)));
}

static void factor_derivatives_match_differences(void **state)
{
    (void)state;
    const double zs[] = {-1e3, -50.0, -8.0, -3.0001, -2.9999, -1.0, 0.0, 0.5, 4.0};
    for (size_t i = 0; i < sizeof zs / sizeof zs[0]; i++) {
        double z = zs[i], h = 1e-6 * fmax(1.0, fabs(z)), d_ei, d_cdf;
        hpo_log_ei_factor(z, &d_ei);
        hpo_log_normal_cdf(z, &d_cdf);
        double n_ei = (hpo_log_ei_factor(z + h, NULL) - hpo_log_ei_factor(z - h, NULL)) / (2 * h);
        double n_cdf =
            (hpo_log_normal_cdf(z + h, NULL) - hpo_log_normal_cdf(z - h, NULL)) / (2 * h);
        assert_float_equal(d_ei, n_ei, 1e-5 * fmax(1.0, fabs(n_ei)));
        assert_float_equal(d_cdf, n_cdf, 1e-5 * fmax(1.0, fabs(n_cdf)));
    }
}

/* d/dmean and d/dvariance of all three acquisitions. */
static void value_derivatives_match_differences(void **state)
{
    (void)state;
    const hpo_acquisition_kind kinds[] = {HPO_ACQ_LOG_EI, HPO_ACQ_UCB, HPO_ACQ_PI};
    const double means[] = {-1.0, 0.2, 3.0, 40.0};

    for (size_t k = 0; k < 3; k++) {
        hpo_acquisition acq = {.kind = kinds[k], .best = 0.1, .beta = HPO_UCB_BETA_DEFAULT};
        for (size_t i = 0; i < sizeof means / sizeof means[0]; i++) {
            double mean = means[i], variance = 0.3, dm, dv, h = 1e-6;
            hpo_acquisition_value(&acq, mean, variance, &dm, &dv);
            double nm = (hpo_acquisition_value(&acq, mean + h, variance, NULL, NULL) -
                         hpo_acquisition_value(&acq, mean - h, variance, NULL, NULL)) / (2 * h);
            double nv = (hpo_acquisition_value(&acq, mean, variance + h, NULL, NULL) -
                         hpo_acquisition_value(&acq, mean, variance - h, NULL, NULL)) / (2 * h);
            if (fabs(dm - nm) > 1e-5 * fmax(1.0, fabs(nm)) ||
                fabs(dv - nv) > 1e-5 * fmax(1.0, fabs(nv)))
                fail_msg("%s at mean %g: d/dmean %g vs %g, d/dvariance %g vs %g",
                         hpo_acquisition_name(kinds[k]), mean, dm, nm, dv, nv);
        }
    }
}

static void ucb_and_names(void **state)
{
    (void)state;
    hpo_acquisition acq = {.kind = HPO_ACQ_UCB, .best = 0.0, .beta = HPO_UCB_BETA_DEFAULT};
    assert_float_equal(hpo_acquisition_value(&acq, 1.5, 4.0, NULL, NULL), 2.6 * 2.0 - 1.5, 1e-12);

    hpo_acquisition_kind kind;
    assert_int_equal(hpo_acquisition_parse("ei", &kind), 0);
    assert_int_equal(kind, HPO_ACQ_LOG_EI);
    assert_int_equal(hpo_acquisition_parse("ucb", &kind), 0);
    assert_int_equal(kind, HPO_ACQ_UCB);
    assert_int_equal(hpo_acquisition_parse("pi", &kind), 0);
    assert_int_equal(kind, HPO_ACQ_PI);
    assert_int_equal(hpo_acquisition_parse("EI", &kind), -1);
    assert_string_equal(hpo_acquisition_name(HPO_ACQ_UCB), "ucb");
}

/* ---- search ---- */

/* Two floats used as dropout rates, and a three-way unordered choice. */
static const char SEARCH_STUDY[] =
    "{\"budget\": {\"epochs\": 1}, \"space\": {"
    " \"a\": {\"type\": \"float\", \"min\": 0, \"max\": 0.5},"
    " \"b\": {\"type\": \"float\", \"min\": 0, \"max\": 0.5},"
    " \"act\": {\"type\": \"choice\", \"values\": [\"relu\", \"tanh\", \"linear\"]}},"
    " \"model\": {\"layers\": ["
    "  {\"type\": \"dropout\", \"rate\": \"$a\"}, {\"type\": \"dropout\", \"rate\": \"$b\"},"
    "  {\"type\": \"conv2d\", \"filters\": 4, \"kernel_size\": 3, \"activation\": \"$act\"},"
    "  {\"type\": \"flatten\"}, {\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}]}}";

/* Known keys: a plain list. */
typedef struct {
    char *keys[64];
    int n;
    bool all;
} key_list;

static bool list_knows(void *context, const char *key)
{
    key_list *list = context;
    for (int i = 0; i < list->n; i++) {
        if (strcmp(list->keys[i], key) == 0)
            return true;
    }
    return list->all;
}

/* A bowl with its minimum at a = 0.3, b = 0.1, act = "tanh". */
static double bowl(const cJSON *values)
{
    double a = cJSON_GetObjectItem(values, "a")->valuedouble;
    double b = cJSON_GetObjectItem(values, "b")->valuedouble;
    const char *act = cJSON_GetObjectItem(values, "act")->valuestring;
    return 10.0 * ((a - 0.3) * (a - 0.3) + (b - 0.1) * (b - 0.1)) +
           (strcmp(act, "tanh") == 0 ? 0.0 : 0.5);
}

static void search_finds_minimum_and_skips_known(void **state)
{
    (void)state;
    enum { N = 30 };
    char err[HPO_ERR_MAX] = "";
    hpo_study *study = NULL;
    hpo_encoding *enc = NULL;
    hpo_gp *gp = NULL;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 21);

    if (hpo_study_parse(SEARCH_STUDY, &study, err, sizeof err) != 0 ||
        hpo_encoding_create(study, &enc, err, sizeof err) != 0)
        fail_msg("%s", err);
    int columns = hpo_encoding_columns(enc);
    assert_int_equal(columns, 5);

    /* Observations at random configurations. */
    double X[N * 5], y[N];
    key_list known = {.n = 0};
    int best = 0;
    for (int i = 0; i < N; i++) {
        cJSON *values = NULL;
        assert_int_equal(hpo_study_sample_random(study, rng, &values, err, sizeof err), 0);
        assert_int_equal(hpo_encoding_from_values(enc, values, &X[i * columns], &known.keys[i],
                                                  err, sizeof err), 0);
        known.n++;
        y[i] = bowl(values);
        if (y[i] < y[best])
            best = i;
        cJSON_Delete(values);
    }
    assert_int_equal(hpo_gp_create(columns, &gp, err, sizeof err), 0);
    if (hpo_gp_fit(gp, X, y, N, NULL, rng, err, sizeof err) != 0)
        fail_msg("%s", err);

    hpo_acquisition acq = {.kind = HPO_ACQ_LOG_EI, .best = y[best]};
    hpo_search_options opt;
    hpo_search_options_default(&opt);
    hpo_candidate *out = NULL;
    int n_out = 0;
    if (hpo_acquisition_search(&acq, gp, enc, &X[best * columns], 1, list_knows, &known, &opt,
                               rng, &out, &n_out, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(n_out, opt.ranked);

    for (int i = 0; i < n_out; i++) {
        assert_false(list_knows(&known, out[i].key));
        for (int k = 0; k < i; k++)
            assert_string_not_equal(out[i].key, out[k].key);
        if (i > 0)
            assert_true(out[i].score <= out[i - 1].score);
    }
    /* The best candidate is close to the minimum of the bowl. */
    double found = bowl(out[0].values);
    if (found > 0.1)
        fail_msg("best candidate has bowl value %g; the minimum is 0", found);
    hpo_candidates_free(out, n_out);

    /* Everything known: no candidate. */
    known.all = true;
    assert_int_equal(hpo_acquisition_search(&acq, gp, enc, &X[best * columns], 1, list_knows,
                                            &known, &opt, rng, &out, &n_out, err, sizeof err), 0);
    assert_int_equal(n_out, 0);
    hpo_candidates_free(out, n_out);

    for (int i = 0; i < known.n; i++)
        free(known.keys[i]);
    hpo_gp_destroy(&gp);
    hpo_encoding_destroy(&enc);
    hpo_study_destroy(&study);
    gsl_rng_free(rng);
}

int main(void)
{
    gsl_set_error_handler_off();
    hpo_log_init("test", HPO_LOG_WARN);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(log_ei_matches_closed_form),
        cmocka_unit_test(log_ei_tail_matches_reference),
        cmocka_unit_test(log_ei_finite_far_below),
        cmocka_unit_test(factor_derivatives_match_differences),
        cmocka_unit_test(value_derivatives_match_differences),
        cmocka_unit_test(ucb_and_names),
        cmocka_unit_test(search_finds_minimum_and_skips_known),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
