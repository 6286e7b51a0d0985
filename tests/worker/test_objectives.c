/* Tests of the synthetic objectives against their published optima. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "objectives.h"

static double evaluate(const char *name, const char *json)
{
    char err[256] = "";
    const hpo_objective *objective = hpo_objective_find(name, err, sizeof err);
    assert_non_null(objective);
    cJSON *params = cJSON_Parse(json);
    assert_non_null(params);
    double value = NAN;
    int rc = hpo_objective_evaluate(objective, params, &value, err, sizeof err);
    cJSON_Delete(params);
    if (rc != 0)
        fail_msg("%s at %s: %s", name, json, err);
    return value;
}

/* Checks that the evaluation fails with a message containing fragment. */
static void expect_error(const char *name, const char *json, const char *fragment)
{
    char err[256] = "";
    const hpo_objective *objective = hpo_objective_find(name, err, sizeof err);
    assert_non_null(objective);
    cJSON *params = cJSON_Parse(json);
    assert_non_null(params);
    double value = 0.0;
    assert_int_equal(hpo_objective_evaluate(objective, params, &value, err, sizeof err), -1);
    cJSON_Delete(params);
    if (strstr(err, fragment) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err, fragment);
}

/* Branin's three global minima, 0.397887 (Dixon and Szegő). */
static void test_branin_minima(void **state)
{
    (void)state;
    assert_float_equal(evaluate("branin", "{\"x1\": -3.141592653589793, \"x2\": 12.275}"),
                        0.397887, 1e-6);
    assert_float_equal(evaluate("branin", "{\"x1\": 3.141592653589793, \"x2\": 2.275}"),
                        0.397887, 1e-6);
    assert_float_equal(evaluate("branin", "{\"x1\": 9.42478, \"x2\": 2.475}"),
                        0.397887, 1e-6);
    assert_float_equal(hpo_objective_minimum(hpo_objective_find("branin", NULL, 0)),
                        0.397887, 1e-6);
}

/* A corner far from the minima: f(-5, 0) = 308.129 (computed by hand from
 * the formula: (0 - 25b - 5c - 6)² + 10 (1 - t) cos(-5) + 10). */
static void test_branin_corner(void **state)
{
    (void)state;
    double b = 5.1 / (4.0 * M_PI * M_PI), c = 5.0 / M_PI, t = 1.0 / (8.0 * M_PI);
    double q = -25.0 * b - 5.0 * c - 6.0;
    double expected = q * q + 10.0 * (1.0 - t) * cos(-5.0) + 10.0;
    assert_float_equal(evaluate("branin", "{\"x1\": -5, \"x2\": 0}"), expected, 1e-9);
    assert_float_equal(expected, 308.129, 1e-3);
}

/* Hartmann-6's global minimum -3.32237 at the point tabulated by
 * Surjanovic and Bingham. */
static void test_hartmann6_minimum(void **state)
{
    (void)state;
    double value = evaluate("hartmann6", "{\"x1\": 0.20169, \"x2\": 0.150011, "
                            "\"x3\": 0.476874, \"x4\": 0.275332, \"x5\": 0.311652, "
                            "\"x6\": 0.6573}");
    assert_float_equal(value, -3.32237, 1e-5);
    assert_true(evaluate("hartmann6", "{\"x1\": 0.5, \"x2\": 0.5, \"x3\": 0.5, \"x4\": 0.5, "
                         "\"x5\": 0.5, \"x6\": 0.5}") > value);
    assert_int_equal(hpo_objective_dimensions(hpo_objective_find("hartmann6", NULL, 0)), 6);
}

#define MIXED16_OPTIMUM                                                                 \
    "\"optimizer\": \"adam\", \"learning_rate\": 0.001, \"weight_decay\": 0.0001, "    \
    "\"momentum\": 0, \"dropout\": 0.3, \"label_smoothing\": 0.1, \"batch_size\": 128, " \
    "\"filters1\": 64, \"filters2\": 128, \"units\": 256, \"layers\": 4, "             \
    "\"warmup_epochs\": 2, \"kernel_size\": 5, \"activation\": \"relu\", "             \
    "\"pooling\": \"max\""

/* mixed16 is 0 at its optimum and 0.4 without normalization. */
static void test_mixed16_optimum(void **state)
{
    (void)state;
    assert_float_equal(evaluate("mixed16", "{" MIXED16_OPTIMUM ", \"normalization\": "
                                 "\"batch\"}"), 0.0, 1e-12);
    assert_float_equal(evaluate("mixed16", "{" MIXED16_OPTIMUM ", \"normalization\": "
                                 "\"none\"}"), 0.4, 1e-12);
    assert_int_equal(hpo_objective_dimensions(hpo_objective_find("mixed16", NULL, 0)), 16);
    assert_float_equal(hpo_objective_minimum(hpo_objective_find("mixed16", NULL, 0)), 0.0,
                        0.0);
}

/* sgd's best learning rate is 0.1 with momentum 0.9: a local optimum of
 * value 0.1, the optimizer's penalty. */
static void test_mixed16_sgd_branch(void **state)
{
    (void)state;
    double value = evaluate("mixed16", "{\"optimizer\": \"sgd\", \"learning_rate\": 0.1, "
                            "\"weight_decay\": 0.0001, \"momentum\": 0.9, \"dropout\": 0.3, "
                            "\"label_smoothing\": 0.1, \"batch_size\": 128, \"filters1\": 64, "
                            "\"filters2\": 128, \"units\": 256, \"layers\": 4, "
                            "\"warmup_epochs\": 2, \"kernel_size\": 5, \"activation\": "
                            "\"relu\", \"pooling\": \"max\", \"normalization\": \"batch\"}");
    assert_float_equal(value, 0.1, 1e-12);
}

static void test_bad_parameters(void **state)
{
    (void)state;
    expect_error("branin", "{\"x1\": 0}", "x2 is missing");
    expect_error("branin", "{\"x1\": 11, \"x2\": 0}", "x1 = 11 is outside");
    expect_error("branin", "{\"x1\": \"a\", \"x2\": 0}", "x1 must be a finite number");
    expect_error("hartmann6", "{\"x1\": 0, \"x2\": 0, \"x3\": 0, \"x4\": 0, \"x5\": 0, "
                 "\"x6\": 1.5}", "x6 = 1.5 is outside");
    expect_error("mixed16", "{" MIXED16_OPTIMUM ", \"normalization\": \"group\"}",
                 "normalization must be one of none, batch, layer");
    expect_error("mixed16", "{\"optimizer\": \"adam\", \"learning_rate\": 0.001, "
                 "\"weight_decay\": 0.0001, \"momentum\": 0, \"dropout\": 0.3, "
                 "\"label_smoothing\": 0.1, \"batch_size\": 100.5}", "must be an integer");

    char err[256] = "";
    assert_null(hpo_objective_find("rosenbrock", err, sizeof err));
    assert_non_null(strstr(err, "branin, hartmann6 or mixed16"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_branin_minima),
        cmocka_unit_test(test_branin_corner),
        cmocka_unit_test(test_hartmann6_minimum),
        cmocka_unit_test(test_mixed16_optimum),
        cmocka_unit_test(test_mixed16_sgd_branch),
        cmocka_unit_test(test_bad_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
