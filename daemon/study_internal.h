/* Internals shared by space.c, template.c, study.c and the tuners. */
#ifndef HPO_STUDY_INTERNAL_H
#define HPO_STUDY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "hpo/study.h"

/* Maximum length of a parameter name with "{i}" expanded, without the
 * terminating NUL. */
#define HPO_PARAM_NAME_MAX 63

/* Most repetitions one repeat block may have (the max of its count). */
#define HPO_REPEAT_MAX 64

/* One entry of the study's "space" as written. A family is an entry whose
 * name contains "{i}" (e.g. "kernel_size{i}"): it stands for one parameter
 * per repetition index that the template references. */
typedef struct {
    char *name;          /* owned; "{i}" kept for families */
    char *path;          /* owned; JSON path for messages, e.g. "space.x" */
    bool family;
    hpo_param def;       /* def.name is unused; values/default borrow from
                            the study document */
    bool used;           /* a concrete entry was referenced */
    bool *used_index;    /* family: HPO_INDEX_LIMIT flags, owned */
} hpo_space_entry;

/* Repetition indexes run from first_index to first_index + count - 1 and
 * are below this limit. */
#define HPO_INDEX_LIMIT (2 * HPO_REPEAT_MAX)

typedef struct {
    hpo_space_entry *entries; /* owned */
    int n_entries;
} hpo_space;

typedef struct hpo_template_node hpo_template_node;

struct hpo_study {
    char *name;
    char *objective;
    bool maximize;
    hpo_budget budget;
    bool template_sets_batch_size;
    bool synthetic;         /* "synthetic": true; see hpo_study_synthetic() */
    hpo_study_tuner_options tuner; /* the "tuner" object */

    cJSON *doc;             /* the parsed study file; owned */
    hpo_space space;        /* entries as written */
    int n_params;
    hpo_param *params;      /* owned; names point into param_names */
    char **param_names;     /* owned */
    hpo_template_node *model; /* compiled model template; owned */
};

/* space.c */
int hpo_space_parse(const cJSON *json, hpo_space *space, char *err, size_t errlen);
void hpo_space_clear(hpo_space *space);

/* Marks name as referenced from the template at path and checks that an
 * entry defines it: a concrete entry of that name, else a family whose
 * pattern matches it. expanded is true when the template wrote the name
 * with "{i}". Such a name may match both a concrete entry and a family only
 * if their definitions are equal, and then both count as used. *def_out
 * points at the definition. */
int hpo_space_reference(hpo_space *space, const char *name, bool expanded,
                        const char *path, const hpo_param **def_out,
                        char *err, size_t errlen);

/* Builds study->params in space order, families expanded to the indexes
 * that the template referenced; rejects entries that no reference uses. */
int hpo_space_build_params(hpo_study *study, char *err, size_t errlen);

/* Number of distinct values of a parameter; 0 for a continuous float. */
double hpo_param_cardinality(const hpo_param *param);

/* The k-th of the parameter's values (0 <= k < cardinality) as a new cJSON
 * item that the caller owns; NULL when out of memory. */
cJSON *hpo_param_value_at(const hpo_param *param, long k);

/* The default value as a new cJSON item that the caller owns. */
cJSON *hpo_param_default(const hpo_param *param);

/* template.c */

/* Compiles study->doc's "model" into study->model, registering every
 * parameter reference with hpo_space_reference(). */
int hpo_template_compile(hpo_study *study, const cJSON *model,
                         char *err, size_t errlen);

/* Links the compiled template's references to parameter indexes once
 * study->params is final. */
int hpo_template_link(hpo_study *study, char *err, size_t errlen);

/* Evaluates the template for values. With model_out it builds the model
 * JSON (without the budget's training settings); active[i] is set for each
 * parameter used. */
int hpo_template_eval(const hpo_study *study, const cJSON *values,
                      bool *active, cJSON **model_out, char *err, size_t errlen);

void hpo_template_destroy(hpo_template_node **node);

#endif
