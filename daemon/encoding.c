/* Encoding of configurations as points of the unit cube: columns per
 * parameter, imputed values for inactive parameters, activity columns. */
#include "encoding.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "hpo/error.h"
#include "hpo/log.h"
#include "study_internal.h"

/* Random configurations resolved to find the conditional parameters, and
 * the seed of their generator (fixed, so that an encoding depends only on
 * its study). */
#define ACTIVITY_PROBES 256
#define ACTIVITY_SEED 20240611UL

/* Value of a single column when its parameter is inactive. */
#define INACTIVE_VALUE 0.5

/* Perturbations (hpo_encoding_perturb()): standard deviation of a step,
 * in grid steps for ordinal columns, and the most values for which an
 * ordinal parameter jumps to a random other value instead. */
#define PERTURB_SD 0.1
#define PERTURB_GRID_STEPS 1.5
#define PERTURB_JUMP_MAX_VALUES 5

typedef struct {
    int first_column;   /* -1 when the parameter has a single value */
    int n_columns;      /* 0, 1, or the number of values (one-hot) */
    hpo_column_kind kind;
    int group;          /* activity group, or -1 when always active */
    double cardinality; /* number of values; 0 for a continuous float */
    long *canonical;    /* choices: index of the first value equal to value k,
                           which encoding a decoded value k yields; owned */
} param_code;

struct hpo_encoding {
    const hpo_study *study; /* borrowed */
    int n_params;
    param_code *params;     /* owned, n_params */
    int n_columns;
    hpo_column_kind *column_kind; /* owned, n_columns */
    int *column_param;      /* owned, n_columns; -1 for activity columns */
    int n_groups;
    int first_activity_column;
};

/* ---- building ---- */

/* Fills canonical[] of a choice: a value listed twice encodes as its
 * first position. */
static int assign_canonical(const hpo_param *p, param_code *c)
{
    long n = (long)c->cardinality;
    c->canonical = malloc((size_t)(n > 0 ? n : 1) * sizeof *c->canonical);
    if (c->canonical == NULL)
        return -1;
    for (long k = 0; k < n; k++) {
        const cJSON *value = cJSON_GetArrayItem(p->values, (int)k);
        c->canonical[k] = k;
        for (long j = 0; j < k; j++) {
            if (cJSON_Compare(cJSON_GetArrayItem(p->values, (int)j), value, true)) {
                c->canonical[k] = j;
                break;
            }
        }
    }
    return 0;
}

/* Fills the columns of each parameter. */
static void assign_columns(hpo_encoding *enc)
{
    int column = 0;

    for (int i = 0; i < enc->n_params; i++) {
        const hpo_param *p = hpo_study_param(enc->study, i);
        param_code *c = &enc->params[i];
        c->cardinality = hpo_param_cardinality(p);
        c->first_column = -1;
        c->n_columns = 0;
        c->kind = HPO_COLUMN_ORDINAL;
        if (c->cardinality == 1)
            continue;

        if (p->kind == HPO_PARAM_FLOAT && c->cardinality == 0) {
            c->kind = HPO_COLUMN_CONTINUOUS;
            c->n_columns = 1;
        } else if (p->kind == HPO_PARAM_CHOICE && !p->ordered && c->cardinality > 2) {
            c->kind = HPO_COLUMN_ONE_HOT;
            c->n_columns = (int)c->cardinality;
        } else {
            c->n_columns = 1;
        }
        c->first_column = column;
        column += c->n_columns;
    }
    enc->n_columns = column;
}

/* Resolves the default configuration and ACTIVITY_PROBES random ones;
 * active[probe * n_params + i] is set when parameter i was active. */
static int probe_activity(const hpo_encoding *enc, bool *active, char *err, size_t errlen)
{
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    int rc = 0;

    if (rng == NULL)
        return hpo_error(err, errlen, "encoding: out of memory");
    gsl_rng_set(rng, ACTIVITY_SEED);

    for (int probe = 0; probe <= ACTIVITY_PROBES && rc == 0; probe++) {
        cJSON *values = NULL, *act = NULL;
        rc = probe == 0 ? hpo_study_default_values(enc->study, &values, err, errlen)
                        : hpo_study_sample_random(enc->study, rng, &values, err, errlen);
        if (rc == 0)
            rc = hpo_study_active(enc->study, values, &act, err, errlen);
        for (int i = 0; rc == 0 && i < enc->n_params; i++) {
            const char *name = hpo_study_param(enc->study, i)->name;
            active[probe * enc->n_params + i] = cJSON_GetObjectItemCaseSensitive(act, name) != NULL;
        }
        cJSON_Delete(values);
        cJSON_Delete(act);
    }
    gsl_rng_free(rng);
    return rc;
}

/* Groups parameters that were inactive in some probe by their activity
 * pattern over the probes; each group gets one activity column. */
static void assign_groups(hpo_encoding *enc, const bool *active)
{
    int n = enc->n_params, probes = ACTIVITY_PROBES + 1;

    enc->n_groups = 0;
    for (int i = 0; i < n; i++) {
        bool always = true;
        for (int probe = 0; probe < probes && always; probe++)
            always = active[probe * n + i];
        enc->params[i].group = -1;
        if (always || enc->params[i].n_columns == 0)
            continue;

        /* Join the group of an earlier parameter with the same pattern. */
        for (int k = 0; k < i && enc->params[i].group < 0; k++) {
            if (enc->params[k].group < 0)
                continue;
            bool same = true;
            for (int probe = 0; probe < probes && same; probe++)
                same = active[probe * n + i] == active[probe * n + k];
            if (same)
                enc->params[i].group = enc->params[k].group;
        }
        if (enc->params[i].group < 0)
            enc->params[i].group = enc->n_groups++;
    }
    enc->first_activity_column = enc->n_columns;
    enc->n_columns += enc->n_groups;
}

int hpo_encoding_create(const hpo_study *study, hpo_encoding **out, char *err, size_t errlen)
{
    hpo_encoding *enc = calloc(1, sizeof *enc);
    bool *active = NULL;
    int n = hpo_study_param_count(study);

    *out = NULL;
    if (enc == NULL)
        return hpo_error(err, errlen, "encoding: out of memory");
    enc->study = study;
    enc->n_params = n;
    enc->params = calloc(n > 0 ? (size_t)n : 1, sizeof *enc->params);
    active = malloc((size_t)(ACTIVITY_PROBES + 1) * (n > 0 ? (size_t)n : 1) * sizeof *active);
    if (enc->params == NULL || active == NULL) {
        hpo_error(err, errlen, "encoding: out of memory");
        goto fail;
    }

    assign_columns(enc);
    for (int i = 0; i < n; i++) {
        const hpo_param *p = hpo_study_param(study, i);
        if (p->kind == HPO_PARAM_CHOICE && assign_canonical(p, &enc->params[i]) < 0) {
            hpo_error(err, errlen, "encoding: out of memory");
            goto fail;
        }
    }
    if (probe_activity(enc, active, err, errlen) < 0)
        goto fail;
    assign_groups(enc, active);

    int columns = enc->n_columns > 0 ? enc->n_columns : 1;
    enc->column_kind = malloc((size_t)columns * sizeof *enc->column_kind);
    enc->column_param = malloc((size_t)columns * sizeof *enc->column_param);
    if (enc->column_kind == NULL || enc->column_param == NULL) {
        hpo_error(err, errlen, "encoding: out of memory");
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < enc->params[i].n_columns; c++) {
            enc->column_kind[enc->params[i].first_column + c] = enc->params[i].kind;
            enc->column_param[enc->params[i].first_column + c] = i;
        }
    }
    for (int g = 0; g < enc->n_groups; g++) {
        enc->column_kind[enc->first_activity_column + g] = HPO_COLUMN_ACTIVITY;
        enc->column_param[enc->first_activity_column + g] = -1;
    }

    free(active);
    hpo_log_debug("encoding: study %s: %d parameters in %d columns, %d activity groups",
                  hpo_study_name(study), n, enc->n_columns, enc->n_groups);
    *out = enc;
    return 0;

fail:
    free(active);
    hpo_encoding_destroy(&enc);
    return -1;
}

void hpo_encoding_destroy(hpo_encoding **encoding)
{
    if (encoding == NULL || *encoding == NULL)
        return;
    for (int i = 0; (*encoding)->params != NULL && i < (*encoding)->n_params; i++)
        free((*encoding)->params[i].canonical);
    free((*encoding)->params);
    free((*encoding)->column_kind);
    free((*encoding)->column_param);
    free(*encoding);
    *encoding = NULL;
}

int hpo_encoding_columns(const hpo_encoding *encoding) { return encoding->n_columns; }
const hpo_study *hpo_encoding_study(const hpo_encoding *encoding) { return encoding->study; }
int hpo_encoding_activity_groups(const hpo_encoding *encoding) { return encoding->n_groups; }

hpo_column_kind hpo_encoding_column_kind(const hpo_encoding *encoding, int column)
{
    return encoding->column_kind[column];
}

int hpo_encoding_column_param(const hpo_encoding *encoding, int column)
{
    return encoding->column_param[column];
}

/* ---- values and columns ---- */

/* Position of v in [0, 1] on the parameter's linear or log scale. */
static double unit_position(const hpo_param *p, double v)
{
    if (p->max <= p->min)
        return 0.0;
    if (p->log)
        return (log(v) - log(p->min)) / (log(p->max) - log(p->min));
    return (v - p->min) / (p->max - p->min);
}

/* Index of value among the parameter's values, or -1. */
static long value_index(const hpo_param *p, const param_code *c, const cJSON *value)
{
    switch (p->kind) {
    case HPO_PARAM_INT:
    case HPO_PARAM_FLOAT:
        if (!cJSON_IsNumber(value))
            return -1;
        return lround((value->valuedouble - p->min) / (p->log ? 1.0 : p->step));
    case HPO_PARAM_CHOICE:
        for (long k = 0; k < (long)c->cardinality; k++) {
            if (cJSON_Compare(cJSON_GetArrayItem(p->values, (int)k), value, true))
                return k;
        }
        return -1;
    case HPO_PARAM_BOOL:
        if (!cJSON_IsBool(value))
            return -1;
        return cJSON_IsTrue(value) ? 1 : 0;
    }
    return -1;
}

/* Writes the columns of an active parameter. */
static int encode_value(const hpo_param *p, const param_code *c, const cJSON *value,
                        double *x, char *err, size_t errlen)
{
    if (c->kind == HPO_COLUMN_CONTINUOUS || (p->kind == HPO_PARAM_INT && p->log)) {
        if (!cJSON_IsNumber(value))
            return hpo_error(err, errlen, "encoding: \"%s\" must be a number", p->name);
        x[0] = unit_position(p, value->valuedouble);
        return 0;
    }

    long k = value_index(p, c, value);
    if (k < 0 || k >= (long)c->cardinality)
        return hpo_error(err, errlen, "encoding: value of \"%s\" is not one of its values",
                         p->name);
    if (c->kind == HPO_COLUMN_ONE_HOT) {
        for (int j = 0; j < c->n_columns; j++)
            x[j] = j == k ? 1.0 : 0.0;
        return 0;
    }
    x[0] = (double)k / (c->cardinality - 1.0);
    return 0;
}

int hpo_encoding_encode(const hpo_encoding *enc, const cJSON *active, double *x,
                        char *err, size_t errlen)
{
    for (int g = 0; g < enc->n_groups; g++)
        x[enc->first_activity_column + g] = 0.0;

    for (int i = 0; i < enc->n_params; i++) {
        const param_code *c = &enc->params[i];
        const hpo_param *p = hpo_study_param(enc->study, i);
        if (c->n_columns == 0)
            continue;

        const cJSON *value = cJSON_GetObjectItemCaseSensitive(active, p->name);
        double *cols = x + c->first_column;
        if (value == NULL) {
            for (int j = 0; j < c->n_columns; j++)
                cols[j] = c->kind == HPO_COLUMN_ONE_HOT ? 0.0 : INACTIVE_VALUE;
            continue;
        }
        if (encode_value(p, c, value, cols, err, errlen) < 0)
            return -1;
        if (c->group >= 0)
            x[enc->first_activity_column + c->group] = 1.0;
    }
    return 0;
}

static double clamp01(double u)
{
    return isnan(u) ? 0.5 : fmin(1.0, fmax(0.0, u));
}

/* The value of parameter p at its columns x. */
static cJSON *decode_value(const hpo_param *p, const param_code *c, const double *x)
{
    if (c->n_columns == 0)
        return hpo_param_value_at(p, 0);

    if (c->kind == HPO_COLUMN_ONE_HOT) {
        int best = 0;
        for (int j = 1; j < c->n_columns; j++) {
            if (x[j] > x[best])
                best = j;
        }
        return hpo_param_value_at(p, best);
    }

    double u = clamp01(x[0]);
    if (c->kind == HPO_COLUMN_CONTINUOUS || (p->kind == HPO_PARAM_INT && p->log)) {
        double v = p->log ? exp(log(p->min) + u * (log(p->max) - log(p->min)))
                          : p->min + u * (p->max - p->min);
        if (p->kind == HPO_PARAM_INT)
            v = round(v);
        return cJSON_CreateNumber(fmin(p->max, fmax(p->min, v)));
    }
    long k = lround(u * (c->cardinality - 1.0));
    return hpo_param_value_at(p, k);
}

int hpo_encoding_decode(const hpo_encoding *enc, const double *x, cJSON **values_out,
                        char *err, size_t errlen)
{
    cJSON *values = cJSON_CreateObject();

    *values_out = NULL;
    for (int i = 0; values != NULL && i < enc->n_params; i++) {
        const param_code *c = &enc->params[i];
        const hpo_param *p = hpo_study_param(enc->study, i);
        cJSON *v = decode_value(p, c, c->n_columns > 0 ? x + c->first_column : NULL);
        if (v == NULL || !cJSON_AddItemToObject(values, p->name, v)) {
            cJSON_Delete(v);
            cJSON_Delete(values);
            values = NULL;
        }
    }
    if (values == NULL)
        return hpo_error(err, errlen, "encoding: out of memory");
    *values_out = values;
    return 0;
}

int hpo_encoding_from_values(const hpo_encoding *enc, const cJSON *values, double *x,
                             char **key_out, char *err, size_t errlen)
{
    cJSON *active = NULL;

    if (key_out != NULL)
        *key_out = NULL;
    if (hpo_study_active(enc->study, values, &active, err, errlen) < 0)
        return -1;
    int rc = hpo_encoding_encode(enc, active, x, err, errlen);
    if (rc == 0 && key_out != NULL) {
        *key_out = hpo_study_config_key(enc->study, active);
        if (*key_out == NULL)
            rc = hpo_error(err, errlen, "encoding: out of memory");
    }
    cJSON_Delete(active);
    return rc;
}

/* ---- numeric paths for spaces without conditional parameters ----
 *
 * Without activity groups every parameter is active in every
 * configuration, so the template need not be evaluated: the functions
 * below compute, with the same arithmetic, the columns that the cJSON
 * path (decode or hpo_study_values_from_unit(), then
 * hpo_study_active() and encode) produces. The acquisition search scores
 * a thousand candidates or more per proposal, and this path makes each
 * one cost about a microsecond instead of tens. */

/* Columns of a choice, bool or grid value k. */
static void encode_index(const param_code *c, long k, double *cols)
{
    if (c->canonical != NULL)
        k = c->canonical[k];
    if (c->kind == HPO_COLUMN_ONE_HOT) {
        for (int j = 0; j < c->n_columns; j++)
            cols[j] = j == k ? 1.0 : 0.0;
        return;
    }
    cols[0] = (double)k / (c->cardinality - 1.0);
}

/* Column of a number v of a continuous or log-int parameter, as
 * decode_value() produces it and encode_value() encodes it. */
static double encode_number(const hpo_param *p, double v)
{
    if (p->kind == HPO_PARAM_INT)
        v = round(v);
    return unit_position(p, fmin(p->max, fmax(p->min, v)));
}

static bool numeric_column(const hpo_param *p, const param_code *c)
{
    return c->kind == HPO_COLUMN_CONTINUOUS || (p->kind == HPO_PARAM_INT && p->log);
}

static void project_numeric(const hpo_encoding *enc, const double *x, double *x_out)
{
    for (int i = 0; i < enc->n_params; i++) {
        const param_code *c = &enc->params[i];
        const hpo_param *p = hpo_study_param(enc->study, i);
        if (c->n_columns == 0)
            continue;

        const double *cols = x + c->first_column;
        double *out = x_out + c->first_column;
        if (c->kind == HPO_COLUMN_ONE_HOT) {
            int best = 0;
            for (int j = 1; j < c->n_columns; j++) {
                if (cols[j] > cols[best])
                    best = j;
            }
            encode_index(c, best, out);
        } else if (numeric_column(p, c)) {
            double u = clamp01(cols[0]);
            double v = p->log ? exp(log(p->min) + u * (log(p->max) - log(p->min)))
                              : p->min + u * (p->max - p->min);
            out[0] = encode_number(p, v);
        } else {
            encode_index(c, lround(clamp01(cols[0]) * (c->cardinality - 1.0)), out);
        }
    }
}

/* Mirrors hpo_study_values_from_unit(): log scales, else equal bins. */
static void from_unit_numeric(const hpo_encoding *enc, const double *u, double *x)
{
    for (int i = 0; i < enc->n_params; i++) {
        const param_code *c = &enc->params[i];
        const hpo_param *p = hpo_study_param(enc->study, i);
        if (c->n_columns == 0)
            continue;

        double *out = x + c->first_column;
        if (p->log) {
            out[0] = encode_number(p, exp(log(p->min) + u[i] * (log(p->max) - log(p->min))));
        } else if (c->kind == HPO_COLUMN_CONTINUOUS) {
            out[0] = unit_position(p, fmin(p->max, p->min + u[i] * (p->max - p->min)));
        } else {
            long k = (long)floor(u[i] * c->cardinality);
            encode_index(c, k < (long)c->cardinality ? k : (long)c->cardinality - 1, out);
        }
    }
}

int hpo_encoding_from_unit(const hpo_encoding *enc, const double *u, double *x,
                           char *err, size_t errlen)
{
    for (int i = 0; i < enc->n_params; i++) {
        if (!(u[i] >= 0.0 && u[i] <= 1.0))
            return hpo_error(err, errlen, "encoding: u[%d] = %g is outside [0, 1]", i, u[i]);
    }
    if (enc->n_groups == 0) {
        from_unit_numeric(enc, u, x);
        return 0;
    }

    cJSON *values = NULL;
    if (hpo_study_values_from_unit(enc->study, u, &values, err, errlen) < 0)
        return -1;
    int rc = hpo_encoding_from_values(enc, values, x, NULL, err, errlen);
    cJSON_Delete(values);
    return rc;
}

int hpo_encoding_key(const hpo_encoding *enc, const double *x, char **key_out,
                     char *err, size_t errlen)
{
    cJSON *values = NULL, *active = NULL;

    *key_out = NULL;
    if (hpo_encoding_decode(enc, x, &values, err, errlen) < 0)
        return -1;
    int rc = hpo_study_active(enc->study, values, &active, err, errlen);
    if (rc == 0) {
        *key_out = hpo_study_config_key(enc->study, active);
        if (*key_out == NULL)
            rc = hpo_error(err, errlen, "encoding: out of memory");
    }
    cJSON_Delete(values);
    cJSON_Delete(active);
    return rc;
}

int hpo_encoding_project(const hpo_encoding *enc, const double *x, double *x_out,
                         cJSON **values_out, char **key_out, char *err, size_t errlen)
{
    cJSON *values = NULL;

    if (enc->n_groups == 0 && values_out == NULL && key_out == NULL) {
        project_numeric(enc, x, x_out);
        return 0;
    }
    if (values_out != NULL)
        *values_out = NULL;
    if (hpo_encoding_decode(enc, x, &values, err, errlen) < 0)
        return -1;
    if (hpo_encoding_from_values(enc, values, x_out, key_out, err, errlen) < 0) {
        cJSON_Delete(values);
        return -1;
    }
    if (values_out != NULL)
        *values_out = values;
    else
        cJSON_Delete(values);
    return 0;
}

bool hpo_encoding_param_active(const hpo_encoding *enc, const double *x, int param)
{
    int group = enc->params[param].group;
    return group < 0 || x[enc->first_activity_column + group] > 0.5;
}

/* Moves the columns of parameter i of x_out in place. */
static void perturb_param(const hpo_encoding *enc, int i, double *x_out, gsl_rng *rng)
{
    const param_code *c = &enc->params[i];
    double *cols = x_out + c->first_column;
    bool active = hpo_encoding_param_active(enc, x_out, i);

    if (c->kind == HPO_COLUMN_ONE_HOT) {
        int current = -1;
        for (int j = 0; j < c->n_columns; j++) {
            if (cols[j] > 0.5)
                current = j;
        }
        int pick = (int)gsl_rng_uniform_int(rng, (unsigned long)c->n_columns);
        if (pick == current)
            pick = (pick + 1) % c->n_columns;
        for (int j = 0; j < c->n_columns; j++)
            cols[j] = j == pick ? 1.0 : 0.0;
        return;
    }

    if (!active) {
        cols[0] = gsl_rng_uniform(rng);
        return;
    }
    if (c->kind == HPO_COLUMN_ORDINAL && c->cardinality <= PERTURB_JUMP_MAX_VALUES) {
        long levels = (long)c->cardinality;
        long current = lround(cols[0] * (double)(levels - 1));
        long pick = 1 + (long)gsl_rng_uniform_int(rng, (unsigned long)(levels - 1));
        cols[0] = (double)((current + pick) % levels) / (double)(levels - 1);
        return;
    }
    double sd = PERTURB_SD;
    if (c->kind == HPO_COLUMN_ORDINAL)
        sd = fmax(sd, PERTURB_GRID_STEPS / (c->cardinality - 1.0));
    cols[0] = clamp01(cols[0] + gsl_ran_gaussian(rng, sd));
}

void hpo_encoding_perturb(const hpo_encoding *enc, const double *x, double *x_out,
                          gsl_rng *rng)
{
    int movable = 0;

    /* Inactive parameters get random values; they matter only if a move
     * of an active parameter activates them. */
    memcpy(x_out, x, (size_t)enc->n_columns * sizeof *x_out);
    for (int i = 0; i < enc->n_params; i++) {
        if (enc->params[i].n_columns == 0)
            continue;
        if (hpo_encoding_param_active(enc, x, i))
            movable++;
        else
            perturb_param(enc, i, x_out, rng);
    }
    if (movable == 0)
        return;

    double probability = fmin(1.0, 2.0 / movable);
    bool moved = false;
    for (int i = 0; i < enc->n_params; i++) {
        if (enc->params[i].n_columns > 0 && hpo_encoding_param_active(enc, x, i) &&
            gsl_rng_uniform(rng) < probability) {
            perturb_param(enc, i, x_out, rng);
            moved = true;
        }
    }
    if (!moved) {
        int pick = (int)gsl_rng_uniform_int(rng, (unsigned long)movable);
        for (int i = 0; i < enc->n_params; i++) {
            if (enc->params[i].n_columns > 0 && hpo_encoding_param_active(enc, x, i) &&
                pick-- == 0) {
                perturb_param(enc, i, x_out, rng);
                break;
            }
        }
    }
}
