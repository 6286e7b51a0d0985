/* Study file: search space, model template, training budget and objective.
 *
 * A study file is one JSON document; docs/study-file.md describes it and
 * examples/cifar10-study.json is a complete example. Parameter values of a
 * trial travel as a cJSON object mapping parameter names to numbers, strings
 * or booleans. */
#ifndef HPO_STUDY_H
#define HPO_STUDY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <gsl/gsl_rng.h>

typedef enum {
    HPO_PARAM_INT = 0,   /* min, max, step, linear or log sampling */
    HPO_PARAM_FLOAT,     /* min, max, linear or log sampling */
    HPO_PARAM_CHOICE,    /* list of values, ordered or not */
    HPO_PARAM_BOOL,
} hpo_param_kind;

/* One search-space parameter; owned by its study. */
typedef struct {
    const char *name;
    hpo_param_kind kind;
    double min, max;     /* int and float */
    double step;         /* int: step >= 1; float: 0 means continuous */
    bool log;            /* int and float: sample log-uniformly */
    const cJSON *values; /* choice: a JSON array of numbers or strings */
    bool ordered;        /* choice: values have a meaningful order */
    const cJSON *default_value; /* NULL when none was given */
} hpo_param;

/* "int", "float", "choice" or "bool". */
const char *hpo_param_kind_name(hpo_param_kind kind);

/* Checks that value is one the parameter can take (in range, on the step,
 * one of the choices). Errors start with the parameter's name. */
int hpo_param_check_value(const hpo_param *param, const cJSON *value,
                          char *err, size_t errlen);

typedef struct {
    int epochs;          /* epochs per trial */
    int train_size;      /* training images per trial; 0 means 45,000 */
    int val_size;        /* validation images; -1 means 5,000 */
    int batch_size;      /* the template's value when it sets
                            training.batch_size; 0 when a parameter does */
    int max_trials;      /* finished trials after which the study is complete */
} hpo_budget;

/* What the coordinator does when a worker asks for a trial while the
 * tuner's model is still being fitted. */
typedef enum {
    HPO_LATE_FIT_WAIT = 0, /* the worker waits (no_work) for the proposal */
    HPO_LATE_FIT_RANDOM,   /* the worker gets a quasi-random trial */
} hpo_late_fit;

/* The study file's optional "tuner" object. */
typedef struct {
    int initial_trials;    /* quasi-random trials before the model; 0 means
                              the tuner's own rule */
    hpo_late_fit late_fit;
} hpo_study_tuner_options;

typedef struct hpo_study hpo_study;

/* Parses and validates a study. Errors give the JSON path of the bad
 * field, e.g. "space.conv1_filters.max: 16 is below min 32". On success the
 * caller frees *out with hpo_study_destroy(). */
int hpo_study_parse(const char *json_text, hpo_study **out, char *err, size_t errlen);
int hpo_study_load_file(const char *path, hpo_study **out, char *err, size_t errlen);
void hpo_study_destroy(hpo_study **study);

const char *hpo_study_name(const hpo_study *study);
const char *hpo_study_objective(const hpo_study *study); /* e.g. "val_accuracy" */
bool hpo_study_maximize(const hpo_study *study);
const hpo_budget *hpo_study_budget(const hpo_study *study);
const hpo_study_tuner_options *hpo_study_tuner(const hpo_study *study);

/* True for a study with "synthetic": true, whose trials are scored by
 * `hpo-worker --objective` instead of training: its parameters need no
 * reference in the model template and are active in every trial. */
bool hpo_study_synthetic(const hpo_study *study);

int hpo_study_param_count(const hpo_study *study);
const hpo_param *hpo_study_param(const hpo_study *study, int i);
int hpo_study_param_index(const hpo_study *study, const char *name); /* -1 if absent */

/* Draws a value for every parameter, uniformly over its range (log-uniform
 * where asked, rounded to the step). The caller owns *values_out. */
int hpo_study_sample_random(const hpo_study *study, gsl_rng *rng,
                            cJSON **values_out, char *err, size_t errlen);

/* Maps a point u of the unit cube [0,1]^d, d = hpo_study_param_count(), to
 * one value per parameter; u[i] belongs to hpo_study_param(study, i).
 *   float: min + u (max - min), or exp(ln min + u (ln max - ln min)) for
 *          log sampling;
 *   int, and float with a step: the k values min, min + step, ...,
 *          split [0,1] into k equal bins; log-sampled ints take the
 *          rounded exp(ln min + u (ln max - ln min)) instead;
 *   choice and bool: n values split [0,1] into n equal bins, in the order
 *          listed (bool: false, true).
 * Quasi-random designs use it; a model-based tuner needs its own encoding
 * of unordered choices. The caller owns *values_out. */
int hpo_study_values_from_unit(const hpo_study *study, const double *u,
                               cJSON **values_out, char *err, size_t errlen);

/* Builds the default configuration: each parameter's default, else its
 * min (int, float), its first value (choice) or false (bool), as Keras
 * Tuner does. The caller owns *values_out. */
int hpo_study_default_values(const hpo_study *study, cJSON **values_out,
                             char *err, size_t errlen);

/* Computes which parameters the template uses for these values without
 * building the model: *active_out maps each active parameter to its value,
 * in parameter order. values needs only the parameters that turn out to be
 * active; extra ones are checked and ignored. The caller owns *active_out. */
int hpo_study_active(const hpo_study *study, const cJSON *values,
                     cJSON **active_out, char *err, size_t errlen);

/* Returns a canonical text of a configuration's active values (parameter
 * order, shortest exact number format), equal for two configurations
 * exactly when their resolved models are equal. `active` is the object
 * that hpo_study_active() or hpo_study_resolve() produced, in any key order.
 * NULL when out of memory; the caller frees the string with free(). */
char *hpo_study_config_key(const hpo_study *study, const cJSON *active);

/* Describes the search space as a JSON array, one object per parameter in
 * parameter order, with every field filled in ("name", "type", "min",
 * "max", "step", "sampling", "values", "ordered", "default"), for
 * `hpoctl space`. NULL when out of memory; the caller frees it with
 * cJSON_Delete(). */
cJSON *hpo_study_space_to_json(const hpo_study *study);

/* Resolves the model template with the given values into a model spec
 * (the JSON that hpo_model_spec_from_json() reads, training settings
 * included) and the object of the parameters that the resolved template
 * used (*active_out); all others are inactive in this trial. Returns -1
 * with the reason when a value is missing or out of range, or when the
 * resolved model cannot be built (e.g. too many 5x5 layers for the input);
 * the caller treats the latter as a failed trial. Its message starts with
 * "the resolved model cannot be built: ". On failure both outputs are
 * NULL, and hpo_study_active() still gives the active values of a model
 * that cannot be built. On success the caller owns both outputs. */
int hpo_study_resolve(const hpo_study *study, const cJSON *values,
                      cJSON **model_out, cJSON **active_out,
                      char *err, size_t errlen);

/* Resolves the model with each int or float parameter at its smallest
 * and largest value, the others at their defaults. Logs a warning for each
 * end whose model cannot be built (a negative filter count, say), because
 * trials that draw it would fail. Returns the number of such ends, or -1
 * when out of memory. Meant for hpod's start; the default configuration
 * itself must build, which hpo_study_parse() checks. */
int hpo_study_warn_unbuildable_ends(const hpo_study *study);

#endif
