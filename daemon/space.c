/* Search-space parameters: parsing the study's "space", checking values,
 * and expanding "{i}" families into one parameter per repetition index. */
#include "study_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpo/error.h"

/* Largest magnitude of an int parameter's bounds; keeps every value exact
 * in a double and in an int. */
#define INT_BOUND 1e9

/* Relative tolerance for a float being on its step. */
#define STEP_TOLERANCE 1e-9

const char *hpo_param_kind_name(hpo_param_kind kind)
{
    switch (kind) {
    case HPO_PARAM_INT: return "int";
    case HPO_PARAM_FLOAT: return "float";
    case HPO_PARAM_CHOICE: return "choice";
    case HPO_PARAM_BOOL: return "bool";
    }
    return "unknown";
}

static bool is_integral(double x)
{
    return isfinite(x) && x == floor(x);
}

/* Number of grid values min, min + step, ... that do not exceed max. */
static long grid_count(double min, double max, double step)
{
    return (long)floor((max - min) / step * (1.0 + STEP_TOLERANCE)) + 1;
}

/* Writes into err why value is not one of param's values, without naming
 * the parameter. */
static int check_value_reason(const hpo_param *p, const cJSON *value,
                              char *err, size_t errlen)
{
    if (value == NULL)
        return hpo_error(err, errlen, "missing value");

    switch (p->kind) {
    case HPO_PARAM_INT:
    case HPO_PARAM_FLOAT: {
        if (!cJSON_IsNumber(value))
            return hpo_error(err, errlen, "must be a number");
        double v = value->valuedouble;
        if (!isfinite(v))
            return hpo_error(err, errlen, "must be finite");
        if (p->kind == HPO_PARAM_INT && !is_integral(v))
            return hpo_error(err, errlen, "%g is not an integer", v);
        if (v < p->min)
            return hpo_error(err, errlen, "%g is below min %g", v, p->min);
        if (v > p->max)
            return hpo_error(err, errlen, "%g is above max %g", v, p->max);
        if (p->step > 0) {
            double r = (v - p->min) / p->step;
            if (fabs(r - round(r)) > STEP_TOLERANCE * fmax(1.0, fabs(r)))
                return hpo_error(err, errlen, "%g is not on the step %g from min %g",
                                 v, p->step, p->min);
        }
        return 0;
    }
    case HPO_PARAM_CHOICE: {
        const cJSON *item;
        cJSON_ArrayForEach(item, p->values) {
            if (cJSON_Compare(item, value, true))
                return 0;
        }
        char *text = cJSON_PrintUnformatted(value);
        hpo_error(err, errlen, "%s is not one of the choices",
                  text != NULL ? text : "the value");
        free(text);
        return -1;
    }
    case HPO_PARAM_BOOL:
        if (!cJSON_IsBool(value))
            return hpo_error(err, errlen, "must be true or false");
        return 0;
    }
    return hpo_error(err, errlen, "unknown parameter type");
}

int hpo_param_check_value(const hpo_param *param, const cJSON *value,
                          char *err, size_t errlen)
{
    char reason[HPO_ERR_MAX];
    if (check_value_reason(param, value, reason, sizeof reason) == 0)
        return 0;
    return hpo_error(err, errlen, "parameter \"%s\": %s", param->name, reason);
}

/* ---- parsing ---- */

/* A valid name has letters, digits and '_', and at most one "{i}" (only
 * where family is allowed). Returns the number of "{i}", or -1. */
static int check_name(const char *name)
{
    size_t len = strlen(name);
    int n_index = 0;

    if (len == 0 || len > HPO_PARAM_NAME_MAX - 3)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (strncmp(name + i, "{i}", 3) == 0) {
            n_index++;
            i += 2;
        } else if (!isalnum((unsigned char)name[i]) && name[i] != '_') {
            return -1;
        }
    }
    return n_index <= 1 ? n_index : -1;
}

static int get_number(const cJSON *obj, const char *key, const char *path,
                      bool required, double *out, bool *found,
                      char *err, size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

    *found = item != NULL;
    if (item == NULL) {
        if (required)
            return hpo_error(err, errlen, "%s.%s: missing", path, key);
        return 0;
    }
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
        return hpo_error(err, errlen, "%s.%s: must be a number", path, key);
    *out = item->valuedouble;
    return 0;
}

static int check_keys(const cJSON *obj, const char *path, const char *kind,
                      const char *const *allowed, char *err, size_t errlen)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, obj) {
        bool ok = false;
        for (int i = 0; allowed[i] != NULL; i++)
            ok = ok || strcmp(item->string, allowed[i]) == 0;
        if (!ok) {
            char list[256] = "";
            for (int i = 0; allowed[i] != NULL; i++) {
                strncat(list, i > 0 ? ", " : "", sizeof list - strlen(list) - 1);
                strncat(list, allowed[i], sizeof list - strlen(list) - 1);
            }
            return hpo_error(err, errlen,
                             "%s.%s: unknown field of a%s %s parameter; expected one of %s",
                             path, item->string, strcmp(kind, "int") == 0 ? "n" : "",
                             kind, list);
        }
    }
    return 0;
}

static int parse_sampling(const cJSON *obj, const char *path, hpo_param *p,
                          char *err, size_t errlen)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, "sampling");

    p->log = false;
    if (s == NULL)
        return 0;
    if (!cJSON_IsString(s))
        return hpo_error(err, errlen, "%s.sampling: must be \"linear\" or \"log\"", path);
    if (strcmp(s->valuestring, "log") == 0)
        p->log = true;
    else if (strcmp(s->valuestring, "linear") != 0)
        return hpo_error(err, errlen,
                         "%s.sampling: \"%s\" is not a sampling; use \"linear\" or \"log\"",
                         path, s->valuestring);
    return 0;
}

static int parse_range(const cJSON *obj, const char *path, hpo_param *p,
                       char *err, size_t errlen)
{
    bool found, is_int = p->kind == HPO_PARAM_INT;

    if (get_number(obj, "min", path, true, &p->min, &found, err, errlen) < 0 ||
        get_number(obj, "max", path, true, &p->max, &found, err, errlen) < 0)
        return -1;
    if (is_int && !is_integral(p->min))
        return hpo_error(err, errlen, "%s.min: %g is not an integer", path, p->min);
    if (is_int && !is_integral(p->max))
        return hpo_error(err, errlen, "%s.max: %g is not an integer", path, p->max);
    if (is_int && (fabs(p->min) > INT_BOUND || fabs(p->max) > INT_BOUND))
        return hpo_error(err, errlen, "%s: bounds must lie within +-%g", path, INT_BOUND);
    if (p->max < p->min)
        return hpo_error(err, errlen, "%s.max: %g is below min %g", path, p->max, p->min);
    if (parse_sampling(obj, path, p, err, errlen) < 0)
        return -1;

    p->step = is_int ? 1 : 0;
    if (get_number(obj, "step", path, false, &p->step, &found, err, errlen) < 0)
        return -1;
    if (found && p->step <= 0)
        return hpo_error(err, errlen, "%s.step: %g is not positive", path, p->step);
    if (found && is_int && !is_integral(p->step))
        return hpo_error(err, errlen, "%s.step: %g is not an integer", path, p->step);

    if (p->log && p->min <= 0)
        return hpo_error(err, errlen,
                         "%s.min: %g must be positive for log sampling", path, p->min);
    if (p->log && found && p->step != 1.0 && is_int)
        return hpo_error(err, errlen,
                         "%s.step: log sampling of an int needs step 1, not %g", path, p->step);
    if (p->log && found && !is_int)
        return hpo_error(err, errlen,
                         "%s.step: a float with log sampling cannot have a step", path);
    return 0;
}

static int parse_choice(const cJSON *obj, const char *path, hpo_param *p,
                        char *err, size_t errlen)
{
    const cJSON *values = cJSON_GetObjectItemCaseSensitive(obj, "values");
    const cJSON *ordered = cJSON_GetObjectItemCaseSensitive(obj, "ordered");

    if (values == NULL)
        return hpo_error(err, errlen, "%s.values: missing; list the choices", path);
    if (!cJSON_IsArray(values))
        return hpo_error(err, errlen, "%s.values: must be a list", path);
    if (cJSON_GetArraySize(values) == 0)
        return hpo_error(err, errlen, "%s.values: empty; list at least one value", path);

    bool numbers = cJSON_IsNumber(values->child);
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, values) {
        if (!cJSON_IsNumber(item) && !cJSON_IsString(item))
            return hpo_error(err, errlen,
                             "%s.values[%d]: must be a number or a string", path, i);
        if (cJSON_IsNumber(item) != numbers)
            return hpo_error(err, errlen,
                             "%s.values[%d]: mixes numbers and strings; use one type", path, i);
        if (numbers && !isfinite(item->valuedouble))
            return hpo_error(err, errlen, "%s.values[%d]: must be finite", path, i);
        for (const cJSON *prev = values->child; prev != item; prev = prev->next) {
            if (cJSON_Compare(prev, item, true))
                return hpo_error(err, errlen, "%s.values[%d]: listed twice", path, i);
        }
        i++;
    }
    p->values = values;

    /* Numeric choices are ordered by default, as in Keras Tuner. */
    p->ordered = numbers;
    if (ordered != NULL) {
        if (!cJSON_IsBool(ordered))
            return hpo_error(err, errlen, "%s.ordered: must be true or false", path);
        p->ordered = cJSON_IsTrue(ordered);
    }
    return 0;
}

static int parse_param(const cJSON *obj, const char *path, bool list_form,
                       hpo_param *p, char *err, size_t errlen)
{
    static const char *const range_keys[] = {
        "name", "type", "min", "max", "step", "sampling", "default", NULL};
    static const char *const choice_keys[] = {
        "name", "type", "values", "ordered", "default", NULL};
    static const char *const bool_keys[] = {"name", "type", "default", NULL};
    const char *const *allowed = range_keys;

    if (!cJSON_IsObject(obj))
        return hpo_error(err, errlen, "%s: must be an object with a \"type\"", path);

    const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "type");
    if (type == NULL)
        return hpo_error(err, errlen,
                         "%s.type: missing; use \"int\", \"float\", \"choice\" or \"bool\"", path);
    if (!cJSON_IsString(type))
        return hpo_error(err, errlen,
                         "%s.type: must be \"int\", \"float\", \"choice\" or \"bool\"", path);

    memset(p, 0, sizeof *p);
    if (strcmp(type->valuestring, "int") == 0) {
        p->kind = HPO_PARAM_INT;
    } else if (strcmp(type->valuestring, "float") == 0) {
        p->kind = HPO_PARAM_FLOAT;
    } else if (strcmp(type->valuestring, "choice") == 0) {
        p->kind = HPO_PARAM_CHOICE;
        allowed = choice_keys;
    } else if (strcmp(type->valuestring, "bool") == 0) {
        p->kind = HPO_PARAM_BOOL;
        allowed = bool_keys;
    } else {
        return hpo_error(err, errlen,
                         "%s.type: \"%s\" is not a parameter type; use \"int\", \"float\", "
                         "\"choice\" or \"bool\"", path, type->valuestring);
    }
    if (check_keys(obj, path, type->valuestring, list_form ? allowed : allowed + 1,
                   err, errlen) < 0)
        return -1;

    if (p->kind == HPO_PARAM_INT || p->kind == HPO_PARAM_FLOAT) {
        if (parse_range(obj, path, p, err, errlen) < 0)
            return -1;
    } else if (p->kind == HPO_PARAM_CHOICE) {
        if (parse_choice(obj, path, p, err, errlen) < 0)
            return -1;
    }

    p->default_value = cJSON_GetObjectItemCaseSensitive(obj, "default");
    if (p->default_value != NULL) {
        char reason[HPO_ERR_MAX];
        if (check_value_reason(p, p->default_value, reason, sizeof reason) < 0)
            return hpo_error(err, errlen, "%s.default: %s", path, reason);
    }
    return 0;
}

static int add_entry(hpo_space *space, const char *name, const char *path,
                     const cJSON *obj, bool list_form, char *err, size_t errlen)
{
    int n_index = check_name(name);
    if (n_index < 0)
        return hpo_error(err, errlen,
                         "%s: \"%s\" is not a valid parameter name; use at most %d letters, "
                         "digits and '_', with at most one \"{i}\"",
                         path, name, HPO_PARAM_NAME_MAX - 3);
    for (int i = 0; i < space->n_entries; i++) {
        if (strcmp(space->entries[i].name, name) == 0)
            return hpo_error(err, errlen, "%s: parameter \"%s\" is defined twice (also at %s)",
                             path, name, space->entries[i].path);
    }

    hpo_space_entry *e = &space->entries[space->n_entries];
    memset(e, 0, sizeof *e);
    if (parse_param(obj, path, list_form, &e->def, err, errlen) < 0)
        return -1;

    e->family = n_index == 1;
    e->name = strdup(name);
    e->path = strdup(path);
    if (e->family)
        e->used_index = calloc(HPO_INDEX_LIMIT, sizeof *e->used_index);
    space->n_entries++;
    if (e->name == NULL || e->path == NULL || (e->family && e->used_index == NULL))
        return hpo_error(err, errlen, "%s: out of memory", path);
    e->def.name = e->name;
    return 0;
}

int hpo_space_parse(const cJSON *json, hpo_space *space, char *err, size_t errlen)
{
    char path[HPO_PARAM_NAME_MAX + 32];

    memset(space, 0, sizeof *space);
    if (json == NULL)
        return hpo_error(err, errlen, "space: missing; define the parameters to tune");
    if (!cJSON_IsObject(json) && !cJSON_IsArray(json))
        return hpo_error(err, errlen, "space: must be an object or a list of parameters");

    int n = cJSON_GetArraySize(json);
    space->entries = calloc(n > 0 ? (size_t)n : 1, sizeof *space->entries);
    if (space->entries == NULL)
        return hpo_error(err, errlen, "space: out of memory");

    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, json) {
        const char *name = item->string;
        if (cJSON_IsArray(json)) {
            snprintf(path, sizeof path, "space[%d]", i);
            const cJSON *name_item = cJSON_GetObjectItemCaseSensitive(item, "name");
            if (!cJSON_IsObject(item))
                return hpo_error(err, errlen, "%s: must be an object", path);
            if (name_item == NULL)
                return hpo_error(err, errlen, "%s.name: missing", path);
            if (!cJSON_IsString(name_item))
                return hpo_error(err, errlen, "%s.name: must be a string", path);
            name = name_item->valuestring;
        } else {
            snprintf(path, sizeof path, "space.%.*s", HPO_PARAM_NAME_MAX + 8, name);
        }
        if (add_entry(space, name, path, item, cJSON_IsArray(json), err, errlen) < 0)
            return -1;
        i++;
    }
    return 0;
}

void hpo_space_clear(hpo_space *space)
{
    for (int i = 0; i < space->n_entries; i++) {
        free(space->entries[i].name);
        free(space->entries[i].path);
        free(space->entries[i].used_index);
    }
    free(space->entries);
    memset(space, 0, sizeof *space);
}

/* ---- families and references ---- */

/* Matches name against a family pattern such as "conv{i}_filters" and
 * stores the index ("conv12_filters" gives 12). Indexes are written
 * without leading zeros. */
static bool family_match(const char *pattern, const char *name, int *index)
{
    const char *mark = strstr(pattern, "{i}");
    size_t prefix = (size_t)(mark - pattern);
    size_t suffix = strlen(mark + 3);
    size_t len = strlen(name);

    if (len <= prefix + suffix || strncmp(name, pattern, prefix) != 0 ||
        strcmp(name + len - suffix, mark + 3) != 0)
        return false;

    const char *digits = name + prefix;
    size_t n_digits = len - prefix - suffix;
    if (n_digits > 6 || (digits[0] == '0' && n_digits > 1))
        return false;
    int value = 0;
    for (size_t i = 0; i < n_digits; i++) {
        if (!isdigit((unsigned char)digits[i]))
            return false;
        value = value * 10 + (digits[i] - '0');
    }
    *index = value;
    return true;
}

static bool param_defs_equal(const hpo_param *a, const hpo_param *b)
{
    if (a->kind != b->kind || a->min != b->min || a->max != b->max ||
        a->step != b->step || a->log != b->log || a->ordered != b->ordered)
        return false;
    if ((a->values == NULL) != (b->values == NULL) ||
        (a->values != NULL && !cJSON_Compare(a->values, b->values, true)))
        return false;
    if ((a->default_value == NULL) != (b->default_value == NULL))
        return false;
    return a->default_value == NULL || cJSON_Compare(a->default_value, b->default_value, true);
}

int hpo_space_reference(hpo_space *space, const char *name, bool expanded,
                        const char *path, const hpo_param **def_out,
                        char *err, size_t errlen)
{
    hpo_space_entry *concrete = NULL, *family = NULL;
    int index = -1;

    for (int i = 0; i < space->n_entries; i++) {
        hpo_space_entry *e = &space->entries[i];
        int k;
        if (!e->family && strcmp(e->name, name) == 0)
            concrete = e;
        else if (e->family && family == NULL && family_match(e->name, name, &k)) {
            family = e;
            index = k;
        }
    }
    if (concrete == NULL && family == NULL)
        return hpo_error(err, errlen, "%s: parameter \"%s\" is not defined in space",
                         path, name);

    /* A name written without "{i}" means the concrete entry when there is
     * one, whatever families match it. */
    if (concrete != NULL && !expanded)
        family = NULL;
    if (concrete != NULL && family != NULL && !param_defs_equal(&concrete->def, &family->def))
        return hpo_error(err, errlen,
                         "%s: parameter \"%s\" is defined by both %s and %s with different "
                         "settings; make them equal or rename one",
                         path, name, concrete->path, family->path);
    if (family != NULL && index >= HPO_INDEX_LIMIT)
        return hpo_error(err, errlen, "%s: index %d of \"%s\" is above the limit %d",
                         path, index, family->name, HPO_INDEX_LIMIT - 1);

    if (family != NULL)
        family->used_index[index] = true;
    if (concrete != NULL) {
        concrete->used = true;
        *def_out = &concrete->def;
    } else {
        *def_out = &family->def;
    }
    return 0;
}

/* Appends one parameter named name with definition def to study->params. */
static int append_param(hpo_study *study, const char *name, const hpo_param *def)
{
    char *copy = strdup(name);
    if (copy == NULL)
        return -1;
    study->param_names[study->n_params] = copy;
    study->params[study->n_params] = *def;
    study->params[study->n_params].name = copy;
    study->n_params++;
    return 0;
}

/* Whether a concrete entry other than the family defines name. */
static bool defined_concretely(const hpo_space *space, const char *name)
{
    for (int i = 0; i < space->n_entries; i++) {
        if (!space->entries[i].family && strcmp(space->entries[i].name, name) == 0)
            return true;
    }
    return false;
}

int hpo_space_build_params(hpo_study *study, char *err, size_t errlen)
{
    const hpo_space *space = &study->space;
    int capacity = 0;

    for (int i = 0; i < space->n_entries; i++)
        capacity += space->entries[i].family ? HPO_INDEX_LIMIT : 1;
    study->params = calloc(capacity > 0 ? (size_t)capacity : 1, sizeof *study->params);
    study->param_names = calloc(capacity > 0 ? (size_t)capacity : 1,
                                sizeof *study->param_names);
    if (study->params == NULL || study->param_names == NULL)
        return hpo_error(err, errlen, "space: out of memory");

    for (int i = 0; i < space->n_entries; i++) {
        const hpo_space_entry *e = &space->entries[i];
        if (!e->family) {
            if (!e->used && !study->synthetic)
                return hpo_error(err, errlen,
                                 "%s: parameter \"%s\" is not used by the model; reference it "
                                 "as \"$%s\" or remove it", e->path, e->name, e->name);
            if (append_param(study, e->name, &e->def) < 0)
                return hpo_error(err, errlen, "space: out of memory");
            continue;
        }

        bool any = false;
        const char *mark = strstr(e->name, "{i}");
        for (int k = 0; k < HPO_INDEX_LIMIT; k++) {
            if (!e->used_index[k])
                continue;
            any = true;
            char name[HPO_PARAM_NAME_MAX + 1];
            snprintf(name, sizeof name, "%.*s%d%s", (int)(mark - e->name), e->name, k,
                     mark + 3);
            if (defined_concretely(space, name))
                continue;
            if (append_param(study, name, &e->def) < 0)
                return hpo_error(err, errlen, "space: out of memory");
        }
        if (!any)
            return hpo_error(err, errlen,
                             "%s: parameter family \"%s\" is not used by the model; reference "
                             "it as \"$%s\" inside a repeat or remove it",
                             e->path, e->name, e->name);
    }
    return 0;
}

/* ---- values ---- */

double hpo_param_cardinality(const hpo_param *p)
{
    switch (p->kind) {
    case HPO_PARAM_INT:
        return p->log ? p->max - p->min + 1 : (double)grid_count(p->min, p->max, p->step);
    case HPO_PARAM_FLOAT:
        if (p->step > 0)
            return (double)grid_count(p->min, p->max, p->step);
        return p->min == p->max ? 1 : 0;
    case HPO_PARAM_CHOICE:
        return cJSON_GetArraySize(p->values);
    case HPO_PARAM_BOOL:
        return 2;
    }
    return 0;
}

cJSON *hpo_param_value_at(const hpo_param *p, long k)
{
    switch (p->kind) {
    case HPO_PARAM_INT:
        return cJSON_CreateNumber(p->min + (double)k * (p->log ? 1 : p->step));
    case HPO_PARAM_FLOAT:
        return cJSON_CreateNumber(fmin(p->max, p->min + (double)k * p->step));
    case HPO_PARAM_CHOICE:
        return cJSON_Duplicate(cJSON_GetArrayItem(p->values, (int)k), true);
    case HPO_PARAM_BOOL:
        return cJSON_CreateBool(k != 0);
    }
    return NULL;
}

cJSON *hpo_param_default(const hpo_param *p)
{
    if (p->default_value != NULL)
        return cJSON_Duplicate(p->default_value, true);
    return hpo_param_value_at(p, 0);
}

/* ---- description ---- */

static int add_number(cJSON *obj, const char *key, double value)
{
    return cJSON_AddNumberToObject(obj, key, value) != NULL ? 0 : -1;
}

static cJSON *describe_param(const hpo_param *p)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON *dflt = hpo_param_default(p);
    int rc = 0;

    if (obj == NULL || dflt == NULL)
        goto fail;
    rc |= cJSON_AddStringToObject(obj, "name", p->name) != NULL ? 0 : -1;
    rc |= cJSON_AddStringToObject(obj, "type", hpo_param_kind_name(p->kind)) != NULL ? 0 : -1;
    if (p->kind == HPO_PARAM_INT || p->kind == HPO_PARAM_FLOAT) {
        rc |= add_number(obj, "min", p->min);
        rc |= add_number(obj, "max", p->max);
        if (p->step > 0)
            rc |= add_number(obj, "step", p->step);
        rc |= cJSON_AddStringToObject(obj, "sampling", p->log ? "log" : "linear") != NULL
                  ? 0 : -1;
    } else if (p->kind == HPO_PARAM_CHOICE) {
        cJSON *values = cJSON_Duplicate(p->values, true);
        if (values == NULL || !cJSON_AddItemToObject(obj, "values", values)) {
            cJSON_Delete(values);
            goto fail;
        }
        rc |= cJSON_AddBoolToObject(obj, "ordered", p->ordered) != NULL ? 0 : -1;
    }
    if (rc != 0 || !cJSON_AddItemToObject(obj, "default", dflt))
        goto fail;
    return obj;

fail:
    cJSON_Delete(dflt);
    cJSON_Delete(obj);
    return NULL;
}

cJSON *hpo_study_space_to_json(const hpo_study *study)
{
    cJSON *list = cJSON_CreateArray();

    for (int i = 0; list != NULL && i < study->n_params; i++) {
        cJSON *p = describe_param(&study->params[i]);
        if (p == NULL || !cJSON_AddItemToArray(list, p)) {
            cJSON_Delete(p);
            cJSON_Delete(list);
            return NULL;
        }
    }
    return list;
}
