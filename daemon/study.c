/* Study file: loading, objective and budget, and resolving a trial's
 * values into a model spec. */
#include "study_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpo/error.h"
#include "hpo/model.h"

/* Largest study file accepted; real ones are a few kilobytes. */
#define STUDY_FILE_MAX (4 << 20)

#define CIFAR10_TRAIN_RECORDS 50000

static int check_fields(const cJSON *obj, const char *path, const char *const *allowed,
                        char *err, size_t errlen)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, obj) {
        bool ok = false;
        for (int i = 0; allowed[i] != NULL; i++)
            ok = ok || strcmp(item->string, allowed[i]) == 0;
        if (ok)
            continue;

        char list[256] = "";
        for (int i = 0; allowed[i] != NULL; i++) {
            strncat(list, i > 0 ? ", " : "", sizeof list - strlen(list) - 1);
            strncat(list, allowed[i], sizeof list - strlen(list) - 1);
        }
        return hpo_error(err, errlen, "%s%s%s: unknown field; expected one of %s",
                         path, path[0] != '\0' ? "." : "", item->string, list);
    }
    return 0;
}

static int parse_objective(hpo_study *study, const cJSON *json, char *err, size_t errlen)
{
    static const char *const fields[] = {"metric", "direction", NULL};
    static const char *const metrics[] = {"val_accuracy", "val_loss", "accuracy", "loss", NULL};
    const cJSON *metric = json, *direction = NULL;

    if (json != NULL && cJSON_IsObject(json)) {
        if (check_fields(json, "objective", fields, err, errlen) < 0)
            return -1;
        metric = cJSON_GetObjectItemCaseSensitive(json, "metric");
        direction = cJSON_GetObjectItemCaseSensitive(json, "direction");
    } else if (json != NULL && !cJSON_IsString(json)) {
        return hpo_error(err, errlen,
                         "objective: must be a metric name or an object with \"metric\" and "
                         "\"direction\"");
    }

    const char *name = "val_accuracy";
    if (metric != NULL) {
        if (!cJSON_IsString(metric))
            return hpo_error(err, errlen, "objective.metric: must be a string");
        name = metric->valuestring;
    }
    bool known = false;
    for (int i = 0; metrics[i] != NULL; i++)
        known = known || strcmp(name, metrics[i]) == 0;
    if (!known)
        return hpo_error(err, errlen,
                         "objective.metric: \"%s\" is not a metric the worker reports; use "
                         "val_accuracy, val_loss, accuracy or loss", name);

    /* Like Keras Tuner, losses are minimized and accuracies maximized
     * unless a direction is given. */
    study->maximize = strstr(name, "loss") == NULL;
    if (direction != NULL) {
        if (!cJSON_IsString(direction) || (strcmp(direction->valuestring, "max") != 0 &&
                                           strcmp(direction->valuestring, "min") != 0))
            return hpo_error(err, errlen, "objective.direction: must be \"max\" or \"min\"");
        study->maximize = strcmp(direction->valuestring, "max") == 0;
    }

    study->objective = strdup(name);
    return study->objective != NULL ? 0 : hpo_error(err, errlen, "objective: out of memory");
}

/* Reads budget.key into *out when present; the value must be an integer
 * within [lo, hi]. */
static int budget_int(const cJSON *budget, const char *key, int lo, int hi, int *out,
                      bool *found, char *err, size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(budget, key);

    if (found != NULL)
        *found = item != NULL;
    if (item == NULL)
        return 0;
    if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble))
        return hpo_error(err, errlen, "budget.%s: must be an integer", key);
    if (item->valuedouble < lo)
        return hpo_error(err, errlen, "budget.%s: %g is below %d", key, item->valuedouble, lo);
    if (item->valuedouble > hi)
        return hpo_error(err, errlen, "budget.%s: %g is above %d", key, item->valuedouble, hi);
    *out = (int)item->valuedouble;
    return 0;
}

static int parse_budget(hpo_study *study, const cJSON *json, bool *batch_size_given,
                        char *err, size_t errlen)
{
    static const char *const fields[] = {
        "epochs", "train_size", "val_size", "batch_size", "max_trials", NULL};
    hpo_budget *b = &study->budget;
    bool epochs_given;

    b->epochs = 0;
    b->train_size = 0;
    b->val_size = -1;
    b->batch_size = 32;
    b->max_trials = 10;
    if (json == NULL)
        return hpo_error(err, errlen, "budget: missing; give at least budget.epochs");
    if (!cJSON_IsObject(json))
        return hpo_error(err, errlen, "budget: must be an object");
    if (check_fields(json, "budget", fields, err, errlen) < 0 ||
        budget_int(json, "epochs", 1, 100000, &b->epochs, &epochs_given, err, errlen) < 0 ||
        budget_int(json, "train_size", 0, CIFAR10_TRAIN_RECORDS, &b->train_size, NULL,
                   err, errlen) < 0 ||
        budget_int(json, "val_size", -1, CIFAR10_TRAIN_RECORDS, &b->val_size, NULL,
                   err, errlen) < 0 ||
        budget_int(json, "batch_size", 1, CIFAR10_TRAIN_RECORDS, &b->batch_size,
                   batch_size_given, err, errlen) < 0 ||
        budget_int(json, "max_trials", 1, 1000000, &b->max_trials, NULL, err, errlen) < 0)
        return -1;

    if (!epochs_given)
        return hpo_error(err, errlen, "budget.epochs: missing; give the epochs of each trial");
    int val = b->val_size < 0 ? 5000 : b->val_size;
    if (b->train_size + val > CIFAR10_TRAIN_RECORDS)
        return hpo_error(err, errlen,
                         "budget.train_size: %d training and %d validation images exceed the "
                         "%d CIFAR-10 training images", b->train_size, val,
                         CIFAR10_TRAIN_RECORDS);
    if (val == 0 && strncmp(study->objective, "val_", 4) == 0)
        return hpo_error(err, errlen,
                         "budget.val_size: 0 leaves no validation set for the objective %s",
                         study->objective);
    return 0;
}

/* Parses the optional "tuner" object: initial_trials and late_fit. */
static int parse_tuner(hpo_study *study, const cJSON *json, char *err, size_t errlen)
{
    static const char *const fields[] = {"initial_trials", "late_fit", NULL};
    hpo_study_tuner_options *t = &study->tuner;

    t->initial_trials = 0;
    t->late_fit = HPO_LATE_FIT_WAIT;
    if (json == NULL)
        return 0;
    if (!cJSON_IsObject(json))
        return hpo_error(err, errlen, "tuner: must be an object");
    if (check_fields(json, "tuner", fields, err, errlen) < 0)
        return -1;

    const cJSON *initial = cJSON_GetObjectItemCaseSensitive(json, "initial_trials");
    if (initial != NULL) {
        if (!cJSON_IsNumber(initial) || initial->valuedouble != floor(initial->valuedouble) ||
            initial->valuedouble < 0 || initial->valuedouble > 1000000)
            return hpo_error(err, errlen, "tuner.initial_trials: must be an integer from 0 "
                             "to 1000000; 0 lets the tuner choose");
        t->initial_trials = (int)initial->valuedouble;
    }
    const cJSON *late = cJSON_GetObjectItemCaseSensitive(json, "late_fit");
    if (late != NULL) {
        if (!cJSON_IsString(late) || (strcmp(late->valuestring, "wait") != 0 &&
                                      strcmp(late->valuestring, "random") != 0))
            return hpo_error(err, errlen, "tuner.late_fit: must be \"wait\" or \"random\"");
        t->late_fit = strcmp(late->valuestring, "random") == 0 ? HPO_LATE_FIT_RANDOM
                                                                : HPO_LATE_FIT_WAIT;
    }
    return 0;
}

/* Checks the template's "training" against the budget: epochs always come
 * from the budget, batch_size from one of the two. */
static int check_training(hpo_study *study, const cJSON *model, bool batch_size_given,
                          char *err, size_t errlen)
{
    const cJSON *training = cJSON_GetObjectItemCaseSensitive(model, "training");

    if (training == NULL)
        return 0;
    if (!cJSON_IsObject(training))
        return hpo_error(err, errlen, "model.training: must be an object");
    if (cJSON_GetObjectItemCaseSensitive(training, "epochs") != NULL)
        return hpo_error(err, errlen,
                         "model.training.epochs: remove it; budget.epochs sets the epochs of "
                         "every trial");

    const cJSON *batch = cJSON_GetObjectItemCaseSensitive(training, "batch_size");
    if (batch != NULL && batch_size_given)
        return hpo_error(err, errlen,
                         "model.training.batch_size: also set in budget.batch_size; keep one");
    if (batch != NULL) {
        study->template_sets_batch_size = true;
        study->budget.batch_size = cJSON_IsNumber(batch) ? batch->valueint : 0;
    }
    return 0;
}

/* Resolves the default configuration, so that a template that cannot work
 * for any trial is rejected at load. */
static int check_default_builds(const hpo_study *study, char *err, size_t errlen)
{
    cJSON *values = NULL, *model = NULL, *active = NULL;
    char reason[HPO_ERR_MAX];

    if (hpo_study_default_values(study, &values, err, errlen) < 0)
        return -1;
    int rc = hpo_study_resolve(study, values, &model, &active, reason, sizeof reason);
    cJSON_Delete(values);
    cJSON_Delete(model);
    cJSON_Delete(active);
    if (rc < 0)
        return hpo_error(err, errlen,
                         "model: the default configuration does not resolve (%s); fix the "
                         "template or the parameters' defaults", reason);
    return 0;
}

static int parse_root(hpo_study *study, char *err, size_t errlen)
{
    static const char *const fields[] = {
        "name", "description", "objective", "budget", "space", "model", "tuner",
        "synthetic", NULL};
    const cJSON *root = study->doc;
    bool batch_size_given = false;

    if (!cJSON_IsObject(root))
        return hpo_error(err, errlen, "study: must be a JSON object");
    if (check_fields(root, "", fields, err, errlen) < 0)
        return -1;

    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (name != NULL && (!cJSON_IsString(name) || name->valuestring[0] == '\0'))
        return hpo_error(err, errlen, "name: must be a non-empty string");
    study->name = strdup(name != NULL ? name->valuestring : "study");
    if (study->name == NULL)
        return hpo_error(err, errlen, "study: out of memory");

    const cJSON *synthetic = cJSON_GetObjectItemCaseSensitive(root, "synthetic");
    if (synthetic != NULL && !cJSON_IsBool(synthetic))
        return hpo_error(err, errlen, "synthetic: must be true or false");
    study->synthetic = cJSON_IsTrue(synthetic);

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (parse_tuner(study, cJSON_GetObjectItemCaseSensitive(root, "tuner"), err, errlen) < 0 ||
        parse_objective(study, cJSON_GetObjectItemCaseSensitive(root, "objective"),
                        err, errlen) < 0 ||
        parse_budget(study, cJSON_GetObjectItemCaseSensitive(root, "budget"),
                     &batch_size_given, err, errlen) < 0 ||
        hpo_space_parse(cJSON_GetObjectItemCaseSensitive(root, "space"), &study->space,
                        err, errlen) < 0 ||
        check_training(study, model, batch_size_given, err, errlen) < 0 ||
        hpo_template_compile(study, model, err, errlen) < 0 ||
        hpo_space_build_params(study, err, errlen) < 0 ||
        hpo_template_link(study, err, errlen) < 0)
        return -1;
    return check_default_builds(study, err, errlen);
}

int hpo_study_parse(const char *json_text, hpo_study **out, char *err, size_t errlen)
{
    const char *end = NULL;
    hpo_study *study = calloc(1, sizeof *study);

    *out = NULL;
    if (study == NULL)
        return hpo_error(err, errlen, "study: out of memory");

    study->doc = cJSON_ParseWithOpts(json_text, &end, true);
    if (study->doc == NULL) {
        int line, column;
        hpo_text_position(json_text, end != NULL ? (size_t)(end - json_text) : 0, &line, &column);
        hpo_error(err, errlen, "study: invalid JSON near line %d, column %d", line, column);
        hpo_study_destroy(&study);
        return -1;
    }
    if (parse_root(study, err, errlen) < 0) {
        hpo_study_destroy(&study);
        return -1;
    }
    *out = study;
    return 0;
}

int hpo_study_load_file(const char *path, hpo_study **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    char reason[HPO_ERR_MAX];
    int rc = -1;

    *out = NULL;
    if (f == NULL)
        return hpo_error(err, errlen, "study file %s: cannot open: %s", path, strerror(errno));

    text = malloc(STUDY_FILE_MAX + 1);
    if (text == NULL) {
        hpo_error(err, errlen, "study file %s: out of memory", path);
        goto cleanup;
    }
    size_t n = fread(text, 1, STUDY_FILE_MAX + 1, f);
    if (ferror(f)) {
        hpo_error(err, errlen, "study file %s: read failed: %s", path, strerror(errno));
        goto cleanup;
    }
    if (n > STUDY_FILE_MAX) {
        hpo_error(err, errlen, "study file %s: larger than %d bytes", path, STUDY_FILE_MAX);
        goto cleanup;
    }
    text[n] = '\0';

    rc = hpo_study_parse(text, out, reason, sizeof reason);
    if (rc < 0)
        hpo_error(err, errlen, "study file %s: %s", path, reason);

cleanup:
    free(text);
    fclose(f);
    return rc;
}

void hpo_study_destroy(hpo_study **study)
{
    if (study == NULL || *study == NULL)
        return;
    hpo_study *s = *study;
    for (int i = 0; i < s->n_params; i++)
        free(s->param_names[i]);
    free(s->param_names);
    free(s->params);
    hpo_template_destroy(&s->model);
    hpo_space_clear(&s->space);
    cJSON_Delete(s->doc);
    free(s->name);
    free(s->objective);
    free(s);
    *study = NULL;
}

const char *hpo_study_name(const hpo_study *study) { return study->name; }
const char *hpo_study_objective(const hpo_study *study) { return study->objective; }
const hpo_study_tuner_options *hpo_study_tuner(const hpo_study *study) { return &study->tuner; }
bool hpo_study_synthetic(const hpo_study *study) { return study->synthetic; }
bool hpo_study_maximize(const hpo_study *study) { return study->maximize; }
const hpo_budget *hpo_study_budget(const hpo_study *study) { return &study->budget; }
int hpo_study_param_count(const hpo_study *study) { return study->n_params; }

const hpo_param *hpo_study_param(const hpo_study *study, int i)
{
    return i >= 0 && i < study->n_params ? &study->params[i] : NULL;
}

int hpo_study_param_index(const hpo_study *study, const char *name)
{
    for (int i = 0; i < study->n_params; i++) {
        if (strcmp(study->params[i].name, name) == 0)
            return i;
    }
    return -1;
}

/* ---- resolution ---- */

/* Checks that values is an object of known parameters with valid values. */
static int check_values(const hpo_study *study, const cJSON *values, char *err, size_t errlen)
{
    if (!cJSON_IsObject(values))
        return hpo_error(err, errlen, "values: must be an object of parameter values");

    const cJSON *item;
    cJSON_ArrayForEach(item, values) {
        int i = hpo_study_param_index(study, item->string);
        if (i < 0)
            return hpo_error(err, errlen, "values: \"%s\" is not a parameter of study %s",
                             item->string, study->name);
        if (hpo_param_check_value(&study->params[i], item, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* Copies the active values into a new object in parameter order. */
static cJSON *active_object(const hpo_study *study, const cJSON *values, const bool *active)
{
    cJSON *obj = cJSON_CreateObject();

    for (int i = 0; obj != NULL && i < study->n_params; i++) {
        if (!active[i])
            continue;
        const char *name = study->params[i].name;
        cJSON *v = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(values, name), true);
        if (v == NULL || !cJSON_AddItemToObject(obj, name, v)) {
            cJSON_Delete(v);
            cJSON_Delete(obj);
            obj = NULL;
        }
    }
    return obj;
}

/* Evaluates the template; *model_out is built only when model_out is not
 * NULL. */
static int evaluate(const hpo_study *study, const cJSON *values, cJSON **model_out,
                    cJSON **active_out, char *err, size_t errlen)
{
    bool *active = calloc(study->n_params > 0 ? (size_t)study->n_params : 1, sizeof *active);

    if (active == NULL)
        return hpo_error(err, errlen, "values: out of memory");
    if (check_values(study, values, err, errlen) < 0 ||
        hpo_template_eval(study, values, active, model_out, err, errlen) < 0) {
        free(active);
        return -1;
    }
    /* A synthetic objective reads every parameter, whatever the template. */
    for (int i = 0; study->synthetic && i < study->n_params; i++)
        active[i] = true;
    *active_out = active_object(study, values, active);
    free(active);
    if (*active_out == NULL) {
        if (model_out != NULL) {
            cJSON_Delete(*model_out);
            *model_out = NULL;
        }
        return hpo_error(err, errlen, "values: out of memory");
    }
    return 0;
}

int hpo_study_active(const hpo_study *study, const cJSON *values,
                     cJSON **active_out, char *err, size_t errlen)
{
    *active_out = NULL;
    return evaluate(study, values, NULL, active_out, err, errlen);
}

/* Sets training.epochs and, unless the template sets it, training.batch_size
 * from the budget. */
static int apply_budget(const hpo_study *study, cJSON *model)
{
    cJSON *training = cJSON_GetObjectItemCaseSensitive(model, "training");

    if (training == NULL && (training = cJSON_AddObjectToObject(model, "training")) == NULL)
        return -1;
    if (cJSON_AddNumberToObject(training, "epochs", study->budget.epochs) == NULL)
        return -1;
    if (!study->template_sets_batch_size &&
        cJSON_AddNumberToObject(training, "batch_size", study->budget.batch_size) == NULL)
        return -1;
    return 0;
}

int hpo_study_resolve(const hpo_study *study, const cJSON *values,
                      cJSON **model_out, cJSON **active_out,
                      char *err, size_t errlen)
{
    cJSON *model = NULL, *active = NULL;
    hpo_model_spec *spec = NULL;
    char reason[HPO_ERR_MAX];

    *model_out = NULL;
    *active_out = NULL;
    if (evaluate(study, values, &model, &active, err, errlen) < 0)
        return -1;
    if (apply_budget(study, model) < 0) {
        cJSON_Delete(model);
        cJSON_Delete(active);
        return hpo_error(err, errlen, "values: out of memory");
    }
    if (hpo_model_spec_from_json(model, &spec, reason, sizeof reason) < 0) {
        cJSON_Delete(model);
        cJSON_Delete(active);
        return hpo_error(err, errlen, "the resolved model cannot be built: %s", reason);
    }
    hpo_model_spec_destroy(&spec);

    *model_out = model;
    *active_out = active;
    return 0;
}

char *hpo_study_config_key(const hpo_study *study, const cJSON *active)
{
    cJSON *ordered = cJSON_CreateObject();

    for (int i = 0; ordered != NULL && i < study->n_params; i++) {
        const char *name = study->params[i].name;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(active, name);
        if (v == NULL)
            continue;
        cJSON *copy = cJSON_Duplicate(v, true);
        if (copy == NULL || !cJSON_AddItemToObject(ordered, name, copy)) {
            cJSON_Delete(copy);
            cJSON_Delete(ordered);
            ordered = NULL;
        }
    }
    if (ordered == NULL)
        return NULL;

    char *text = cJSON_PrintUnformatted(ordered);
    char *key = text != NULL ? strdup(text) : NULL;
    cJSON_free(text);
    cJSON_Delete(ordered);
    return key;
}
