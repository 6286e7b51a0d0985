/* Synthetic objectives: known test functions that `hpo-worker --objective
 * NAME` evaluates on a trial's parameter values instead of training, so
 * that tuners and the coordinator can be tested in seconds.
 * docs/benchmarks.md defines the functions, their parameters and optima;
 * examples/branin-study.json, hartmann6-study.json and mixed16-study.json
 * are matching studies. */
#ifndef HPO_WORKER_OBJECTIVES_H
#define HPO_WORKER_OBJECTIVES_H

#include <stddef.h>

#include <cjson/cJSON.h>

typedef struct hpo_objective hpo_objective;

/* Finds an objective by name: "branin", "hartmann6" or "mixed16". Returns
 * a static object, or NULL with a message that lists the names. */
const hpo_objective *hpo_objective_find(const char *name, char *err, size_t errlen);

const char *hpo_objective_name(const hpo_objective *objective);

/* Number of parameters the objective reads. */
int hpo_objective_dimensions(const hpo_objective *objective);

/* The global minimum of the objective (all three are minimized). */
double hpo_objective_minimum(const hpo_objective *objective);

/* Evaluates the objective at params, an object that maps each parameter
 * name to its value (numbers, or strings for categorical parameters).
 * Returns -1 with a message naming the parameter when one is missing, of
 * the wrong type or outside its range. */
int hpo_objective_evaluate(const hpo_objective *objective, const cJSON *params,
                           double *value, char *err, size_t errlen);

#endif
