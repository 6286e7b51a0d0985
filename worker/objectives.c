/* Synthetic objectives. Each reads its parameters by name from a trial's
 * values, checks their ranges and returns the function value; all three
 * are minimized. */
#include "objectives.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hpo/error.h"

typedef int (*objective_fn)(const cJSON *params, double *value, char *err, size_t errlen);

struct hpo_objective {
    const char *name;
    int dimensions;
    double minimum;
    objective_fn evaluate;
};

/* ---- reading parameters ---- */

static int read_number(const cJSON *params, const char *name, double lo, double hi,
                       double *out, char *err, size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(params, name);
    if (item == NULL)
        return hpo_error(err, errlen, "objective: parameter %s is missing", name);
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
        return hpo_error(err, errlen, "objective: parameter %s must be a finite number",
                         name);
    if (item->valuedouble < lo || item->valuedouble > hi)
        return hpo_error(err, errlen, "objective: parameter %s = %g is outside [%g, %g]",
                         name, item->valuedouble, lo, hi);
    *out = item->valuedouble;
    return 0;
}

static int read_int(const cJSON *params, const char *name, int lo, int hi, int *out,
                    char *err, size_t errlen)
{
    double value;
    if (read_number(params, name, lo, hi, &value, err, errlen) < 0)
        return -1;
    if (value != floor(value))
        return hpo_error(err, errlen, "objective: parameter %s = %g must be an integer",
                         name, value);
    *out = (int)value;
    return 0;
}

/* Reads a string choice; *index is its position in names. */
static int read_choice(const cJSON *params, const char *name, const char *const *names,
                       int n, int *index, char *err, size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(params, name);
    if (item == NULL)
        return hpo_error(err, errlen, "objective: parameter %s is missing", name);
    for (int i = 0; cJSON_IsString(item) && i < n; i++) {
        if (strcmp(item->valuestring, names[i]) == 0) {
            *index = i;
            return 0;
        }
    }
    char list[160] = "";
    for (int i = 0; i < n; i++) {
        strncat(list, i > 0 ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, names[i], sizeof list - strlen(list) - 1);
    }
    return hpo_error(err, errlen, "objective: parameter %s must be one of %s", name, list);
}

/* ---- Branin ---- */

/* f(x1, x2) = (x2 - b x1² + c x1 - r)² + s (1 - t) cos x1 + s on
 * x1 in [-5, 10], x2 in [0, 15], with b = 5.1 / (4π²), c = 5 / π, r = 6,
 * s = 10, t = 1 / (8π) (Dixon and Szegő, 1978). Minimum 0.397887 at
 * (-π, 12.275), (π, 2.275) and (9.42478, 2.475). */
static int branin(const cJSON *params, double *value, char *err, size_t errlen)
{
    double x1, x2;
    if (read_number(params, "x1", -5.0, 10.0, &x1, err, errlen) < 0 ||
        read_number(params, "x2", 0.0, 15.0, &x2, err, errlen) < 0)
        return -1;

    const double b = 5.1 / (4.0 * M_PI * M_PI), c = 5.0 / M_PI, r = 6.0, s = 10.0;
    const double t = 1.0 / (8.0 * M_PI);
    double q = x2 - b * x1 * x1 + c * x1 - r;
    *value = q * q + s * (1.0 - t) * cos(x1) + s;
    return 0;
}

/* ---- Hartmann-6 ---- */

/* f(x) = -Σ_i α_i exp(-Σ_j A_ij (x_j - P_ij)²) on [0, 1]^6, with the
 * constants of Hartman (1973) as tabulated by Surjanovic and Bingham's
 * Virtual Library of Simulation Experiments. Minimum -3.32237 at
 * (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573). */
static int hartmann6(const cJSON *params, double *value, char *err, size_t errlen)
{
    static const double alpha[4] = {1.0, 1.2, 3.0, 3.2};
    static const double a[4][6] = {
        {10, 3, 17, 3.5, 1.7, 8},
        {0.05, 10, 17, 0.1, 8, 14},
        {3, 3.5, 1.7, 10, 17, 8},
        {17, 8, 0.05, 10, 0.1, 14},
    };
    static const double p[4][6] = {
        {0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886},
        {0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991},
        {0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650},
        {0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381},
    };
    double x[6];
    for (int j = 0; j < 6; j++) {
        char name[8];
        snprintf(name, sizeof name, "x%d", j + 1);
        if (read_number(params, name, 0.0, 1.0, &x[j], err, errlen) < 0)
            return -1;
    }

    double sum = 0.0;
    for (int i = 0; i < 4; i++) {
        double inner = 0.0;
        for (int j = 0; j < 6; j++)
            inner += a[i][j] * (x[j] - p[i][j]) * (x[j] - p[i][j]);
        sum += alpha[i] * exp(-inner);
    }
    *value = -sum;
    return 0;
}

/* ---- mixed16 ---- */

static double square(double x)
{
    return x * x;
}

/* A made-up training-loss surface over 16 parameters of mixed types; the
 * table in docs/benchmarks.md lists the terms. Every term is 0 at the
 * optimum, so the minimum is 0: adam, learning_rate 1e-3, weight_decay
 * 1e-4, momentum 0, dropout 0.3, label_smoothing 0.1, batch_size 128,
 * filters1 64, filters2 128, units 256, layers 4, warmup_epochs 2,
 * kernel_size 5, relu, max pooling, batch normalization. */
static int mixed16(const cJSON *params, double *value, char *err, size_t errlen)
{
    static const char *const optimizers[] = {"sgd", "adam", "rmsprop"};
    static const double optimizer_penalty[] = {0.1, 0.0, 0.05};
    static const double best_log10_lr[] = {-1.0, -3.0, -2.5};
    static const char *const activations[] = {"relu", "tanh", "elu", "gelu"};
    static const double activation_penalty[] = {0.0, 0.3, 0.1, 0.05};
    static const char *const poolings[] = {"max", "avg"};
    static const double pooling_penalty[] = {0.0, 0.15};
    static const char *const normalizations[] = {"none", "batch", "layer"};
    static const double normalization_penalty[] = {0.4, 0.0, 0.1};

    double lr, wd, momentum, dropout, smoothing;
    int batch, filters1, filters2, units, layers, warmup, kernel;
    int optimizer, activation, pooling, normalization;
    if (read_choice(params, "optimizer", optimizers, 3, &optimizer, err, errlen) < 0 ||
        read_number(params, "learning_rate", 1e-5, 1.0, &lr, err, errlen) < 0 ||
        read_number(params, "weight_decay", 1e-6, 0.1, &wd, err, errlen) < 0 ||
        read_number(params, "momentum", 0.0, 0.99, &momentum, err, errlen) < 0 ||
        read_number(params, "dropout", 0.0, 0.7, &dropout, err, errlen) < 0 ||
        read_number(params, "label_smoothing", 0.0, 0.3, &smoothing, err, errlen) < 0 ||
        read_int(params, "batch_size", 16, 512, &batch, err, errlen) < 0 ||
        read_int(params, "filters1", 8, 128, &filters1, err, errlen) < 0 ||
        read_int(params, "filters2", 8, 128, &filters2, err, errlen) < 0 ||
        read_int(params, "units", 16, 1024, &units, err, errlen) < 0 ||
        read_int(params, "layers", 1, 6, &layers, err, errlen) < 0 ||
        read_int(params, "warmup_epochs", 0, 10, &warmup, err, errlen) < 0 ||
        read_int(params, "kernel_size", 3, 7, &kernel, err, errlen) < 0 ||
        read_choice(params, "activation", activations, 4, &activation, err, errlen) < 0 ||
        read_choice(params, "pooling", poolings, 2, &pooling, err, errlen) < 0 ||
        read_choice(params, "normalization", normalizations, 3, &normalization, err,
                    errlen) < 0)
        return -1;
    if (kernel != 3 && kernel != 5 && kernel != 7)
        return hpo_error(err, errlen, "objective: parameter kernel_size = %d must be 3, 5 "
                         "or 7", kernel);

    /* The best learning rate and momentum depend on the optimizer, and the
     * best dropout and filters2 on other parameters, so the terms interact. */
    double f = optimizer_penalty[optimizer] + 0.5 * square(log10(lr) - best_log10_lr[optimizer]);
    f += square(log10(wd) + 4.0) / 16.0;
    f += optimizer == 0 ? 2.0 * square(momentum - 0.9) : 0.5 * square(momentum);
    f += 2.0 * square(dropout - 0.1 * (layers - 1));
    f += 10.0 * square(smoothing - 0.1);
    f += square(log2(batch) - 7.0) / 8.0;
    f += square((filters1 - 64) / 120.0);
    f += square((filters2 - fmin(2.0 * filters1, 128.0)) / 120.0);
    f += square(log2(units) - 8.0) / 16.0;
    f += square((layers - 4) / 5.0);
    f += square((warmup - 2) / 10.0);
    /* Kernel 5 is the optimum, 3 is close and 7 is far. */
    if (kernel == 3)
        f += 0.05;
    else if (kernel != 5)
        f += 0.2;
    f += activation_penalty[activation] + pooling_penalty[pooling] +
         normalization_penalty[normalization];
    *value = f;
    return 0;
}

/* ---- table ---- */

static const hpo_objective objectives[] = {
    {"branin", 2, 0.397887357729738, branin},
    {"hartmann6", 6, -3.32236801141551, hartmann6},
    {"mixed16", 16, 0.0, mixed16},
};

const hpo_objective *hpo_objective_find(const char *name, char *err, size_t errlen)
{
    for (size_t i = 0; i < sizeof objectives / sizeof objectives[0]; i++) {
        if (name != NULL && strcmp(name, objectives[i].name) == 0)
            return &objectives[i];
    }
    hpo_error(err, errlen, "unknown objective \"%s\"; use branin, hartmann6 or mixed16",
              name != NULL ? name : "");
    return NULL;
}

const char *hpo_objective_name(const hpo_objective *objective)
{
    return objective->name;
}

int hpo_objective_dimensions(const hpo_objective *objective)
{
    return objective->dimensions;
}

double hpo_objective_minimum(const hpo_objective *objective)
{
    return objective->minimum;
}

int hpo_objective_evaluate(const hpo_objective *objective, const cJSON *params,
                           double *value, char *err, size_t errlen)
{
    if (!cJSON_IsObject(params))
        return hpo_error(err, errlen, "objective %s: the parameters must be a JSON object",
                         objective->name);
    return objective->evaluate(params, value, err, errlen);
}
