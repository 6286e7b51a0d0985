/* Parameter values from points of the unit cube, random draws and
 * defaults. */
#include "study_internal.h"

#include <math.h>
#include <stdlib.h>

#include "hpo/error.h"
#include "hpo/log.h"

/* Index of the bin of u among n equal bins of [0, 1]; u = 1 falls into the
 * last bin. */
static long unit_bin(double u, double n)
{
    long k = (long)floor(u * n);
    return k < (long)n ? k : (long)n - 1;
}

/* Value of one parameter at coordinate u in [0, 1]. */
static cJSON *param_from_unit(const hpo_param *p, double u)
{
    double n = hpo_param_cardinality(p);

    if (p->log) {
        /* Log-uniform: x = exp(ln min + u (ln max - ln min)). */
        double x = exp(log(p->min) + u * (log(p->max) - log(p->min)));
        if (p->kind == HPO_PARAM_INT)
            x = round(x);
        return cJSON_CreateNumber(fmin(p->max, fmax(p->min, x)));
    }
    if (p->kind == HPO_PARAM_FLOAT && n == 0)
        return cJSON_CreateNumber(fmin(p->max, p->min + u * (p->max - p->min)));
    return hpo_param_value_at(p, unit_bin(u, n));
}

int hpo_study_values_from_unit(const hpo_study *study, const double *u,
                               cJSON **values_out, char *err, size_t errlen)
{
    cJSON *values = cJSON_CreateObject();

    *values_out = NULL;
    if (values == NULL)
        return hpo_error(err, errlen, "unit point: out of memory");

    for (int i = 0; i < study->n_params; i++) {
        const hpo_param *p = &study->params[i];
        if (!(u[i] >= 0.0 && u[i] <= 1.0)) {
            cJSON_Delete(values);
            return hpo_error(err, errlen, "unit point: u[%d] = %g for \"%s\" is outside [0, 1]",
                             i, u[i], p->name);
        }
        cJSON *value = param_from_unit(p, u[i]);
        if (value == NULL || !cJSON_AddItemToObject(values, p->name, value)) {
            cJSON_Delete(value);
            cJSON_Delete(values);
            return hpo_error(err, errlen, "unit point: out of memory");
        }
    }
    *values_out = values;
    return 0;
}

int hpo_study_sample_random(const hpo_study *study, gsl_rng *rng,
                            cJSON **values_out, char *err, size_t errlen)
{
    double *u = malloc((study->n_params > 0 ? (size_t)study->n_params : 1) * sizeof *u);

    *values_out = NULL;
    if (u == NULL)
        return hpo_error(err, errlen, "random sample: out of memory");
    for (int i = 0; i < study->n_params; i++)
        u[i] = gsl_rng_uniform(rng);

    int rc = hpo_study_values_from_unit(study, u, values_out, err, errlen);
    free(u);
    return rc;
}

int hpo_study_default_values(const hpo_study *study, cJSON **values_out,
                             char *err, size_t errlen)
{
    cJSON *values = cJSON_CreateObject();

    *values_out = NULL;
    for (int i = 0; values != NULL && i < study->n_params; i++) {
        cJSON *value = hpo_param_default(&study->params[i]);
        if (value == NULL || !cJSON_AddItemToObject(values, study->params[i].name, value)) {
            cJSON_Delete(value);
            cJSON_Delete(values);
            values = NULL;
        }
    }
    if (values == NULL)
        return hpo_error(err, errlen, "default values: out of memory");
    *values_out = values;
    return 0;
}

/* Returns the largest value of an int parameter's grid, min + k * step. */
static double int_top(const hpo_param *p)
{
    double step = p->step >= 1 ? p->step : 1;
    return p->min + floor((p->max - p->min) / step) * step;
}

int hpo_study_warn_unbuildable_ends(const hpo_study *study)
{
    int unbuildable = 0;
    for (int i = 0; i < study->n_params; i++) {
        const hpo_param *p = &study->params[i];
        if (p->kind != HPO_PARAM_INT && p->kind != HPO_PARAM_FLOAT)
            continue;
        const double ends[2] = {p->min, p->kind == HPO_PARAM_INT ? int_top(p) : p->max};
        for (int e = 0; e < 2; e++) {
            cJSON *values = NULL, *model = NULL, *active = NULL;
            char err[HPO_ERR_MAX];
            if (hpo_study_default_values(study, &values, err, sizeof err) != 0)
                return -1;
            if (!cJSON_ReplaceItemInObjectCaseSensitive(values, p->name,
                                                        cJSON_CreateNumber(ends[e]))) {
                cJSON_Delete(values);
                return -1;
            }
            int rc = hpo_study_resolve(study, values, &model, &active, err, sizeof err);
            cJSON_Delete(values);
            cJSON_Delete(model);
            cJSON_Delete(active);
            if (rc == 0)
                continue;
            unbuildable++;
            hpo_log_warn("space.%s: its %s, %g, with the other parameters at their "
                         "defaults, gives a model that cannot be built (%s); trials that "
                         "draw it will fail, so narrow the range",
                         p->name, e == 0 ? "smallest value" : "largest value", ends[e], err);
        }
    }
    return unbuildable;
}
