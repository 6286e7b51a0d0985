/* Tuner dispatch and the bookkeeping that every tuner shares: the set of
 * known configurations, duplicate rejection and exhaustion. */
#include "tuner_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hpo/error.h"
#include "hpo/log.h"
#include "study_internal.h"

/* Finite spaces with at most this many raw combinations of parameter
 * values are listed at creation, which makes exhaustion exact. Listing
 * 16,384 combinations of 14 bools took 0.29 s on a shared 2-core
 * machine. */
#define ENUMERATE_MAX 16384

/* In a listed space, a proposal picks uniformly among the configurations
 * not yet known after this many duplicate candidates in a row. */
#define LISTED_MISSES 16

/* In a space too large to list, this many duplicate candidates in a row
 * end the search: the space counts as exhausted. */
#define UNLISTED_MISSES 1000

#define HPO_STR_(x) #x
#define HPO_STR(x) HPO_STR_(x)

static const hpo_tuner_ops *const tuner_ops[] = {
    &hpo_tuner_random_ops, &hpo_tuner_bayes_ops, NULL};

/* ---- hash set of configuration keys ---- */

/* FNV-1a, 64 bits. */
static uint64_t key_hash(const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

/* Index of the trial with this key, or -1; *slot_out receives the slot
 * where it is or would be stored. */
static int find_key(const hpo_tuner *t, const char *key, int *slot_out)
{
    int mask = t->n_slots - 1;
    int slot = (int)(key_hash(key) & (uint64_t)mask);

    while (t->slots[slot] >= 0) {
        if (strcmp(t->trials[t->slots[slot]].key, key) == 0) {
            *slot_out = slot;
            return t->slots[slot];
        }
        slot = (slot + 1) & mask;
    }
    *slot_out = slot;
    return -1;
}

/* Doubles the hash table when it is half full. */
static int grow_slots(hpo_tuner *t)
{
    if (2 * (t->n_trials + 1) <= t->n_slots)
        return 0;

    int n = t->n_slots > 0 ? 2 * t->n_slots : 64;
    int *slots = malloc((size_t)n * sizeof *slots);
    if (slots == NULL)
        return -1;
    for (int i = 0; i < n; i++)
        slots[i] = -1;
    free(t->slots);
    t->slots = slots;
    t->n_slots = n;
    for (int i = 0; i < t->n_trials; i++) {
        int slot;
        find_key(t, t->trials[i].key, &slot);
        t->slots[slot] = i;
    }
    return 0;
}

static void mark_listed(hpo_tuner *t, const char *key);

/* Adds a configuration that find_key() did not find; takes ownership of
 * values, active and key even when it fails. */
static int add_trial(hpo_tuner *t, cJSON *values, cJSON *active, char *key,
                     double objective, hpo_observe_status status)
{
    if (t->n_trials == t->trials_capacity) {
        int n = t->trials_capacity > 0 ? 2 * t->trials_capacity : 64;
        hpo_tuner_trial *trials = realloc(t->trials, (size_t)n * sizeof *trials);
        if (trials == NULL)
            goto fail;
        t->trials = trials;
        t->trials_capacity = n;
    }
    if (grow_slots(t) < 0)
        goto fail;

    int slot;
    find_key(t, key, &slot);
    t->trials[t->n_trials] = (hpo_tuner_trial){
        .values = values, .active = active, .key = key,
        .objective = objective, .status = status,
    };
    t->slots[slot] = t->n_trials++;
    if (t->enumerated)
        mark_listed(t, key);
    return 0;

fail:
    cJSON_Delete(values);
    cJSON_Delete(active);
    free(key);
    return -1;
}

/* Computes the key of values' configuration; values must be complete
 * enough to resolve. With active_out, the active values are kept there. */
static int configuration_key(const hpo_tuner *t, const cJSON *values, char **key_out,
                             cJSON **active_out, char *err, size_t errlen)
{
    cJSON *active = NULL;

    *key_out = NULL;
    if (hpo_study_active(t->study, values, &active, err, errlen) < 0)
        return -1;
    *key_out = hpo_study_config_key(t->study, active);
    if (*key_out == NULL) {
        cJSON_Delete(active);
        return hpo_error(err, errlen, "tuner %s: out of memory", t->ops->name);
    }
    if (active_out != NULL)
        *active_out = active;
    else
        cJSON_Delete(active);
    return 0;
}

/* ---- listing finite spaces ---- */

/* Number of raw combinations of parameter values; 0 when a parameter is
 * continuous or the product exceeds limit. */
static double raw_combinations(const hpo_study *study, double limit)
{
    double n = 1;
    for (int i = 0; i < hpo_study_param_count(study); i++) {
        double c = hpo_param_cardinality(hpo_study_param(study, i));
        if (c == 0 || n * c > limit)
            return 0;
        n *= c;
    }
    return n;
}

/* Builds the values of raw combination number k (mixed radix, first
 * parameter fastest). */
static cJSON *combination_values(const hpo_study *study, long k)
{
    cJSON *values = cJSON_CreateObject();

    for (int i = 0; values != NULL && i < hpo_study_param_count(study); i++) {
        const hpo_param *p = hpo_study_param(study, i);
        long radix = (long)hpo_param_cardinality(p);
        cJSON *v = hpo_param_value_at(p, k % radix);
        k /= radix;
        if (v == NULL || !cJSON_AddItemToObject(values, p->name, v)) {
            cJSON_Delete(v);
            cJSON_Delete(values);
            values = NULL;
        }
    }
    return values;
}

/* Index of the listed configuration with this key, or -1; *slot_out
 * receives the slot where it is or would be stored. */
static int listed_index(const hpo_tuner *t, const char *key, int *slot_out)
{
    int slot = (int)(key_hash(key) % (uint64_t)t->n_space_slots);

    while (t->space_slots[slot] >= 0) {
        if (strcmp(t->space_keys[t->space_slots[slot]], key) == 0) {
            *slot_out = slot;
            return t->space_slots[slot];
        }
        slot = (slot + 1) % t->n_space_slots;
    }
    *slot_out = slot;
    return -1;
}

/* Lists the distinct configurations of a small finite space. Two raw
 * combinations that differ only in inactive parameters are one
 * configuration. */
static int enumerate_space(hpo_tuner *t, char *err, size_t errlen)
{
    long n_raw = (long)raw_combinations(t->study, ENUMERATE_MAX);
    if (n_raw == 0)
        return 0;

    t->n_space_slots = 2 * (int)n_raw;
    t->space_values = calloc((size_t)n_raw, sizeof *t->space_values);
    t->space_keys = calloc((size_t)n_raw, sizeof *t->space_keys);
    t->space_known = calloc((size_t)n_raw, sizeof *t->space_known);
    t->space_slots = malloc((size_t)t->n_space_slots * sizeof *t->space_slots);
    if (t->space_values == NULL || t->space_keys == NULL || t->space_known == NULL ||
        t->space_slots == NULL)
        return hpo_error(err, errlen, "tuner: out of memory listing %ld configurations", n_raw);
    for (int i = 0; i < t->n_space_slots; i++)
        t->space_slots[i] = -1;

    int rc = 0;
    for (long k = 0; k < n_raw && rc == 0; k++) {
        cJSON *values = combination_values(t->study, k);
        char *key = NULL;
        if (values == NULL) {
            rc = hpo_error(err, errlen, "tuner: out of memory listing the space");
            break;
        }
        if (configuration_key(t, values, &key, NULL, err, errlen) < 0) {
            cJSON_Delete(values);
            rc = -1;
            break;
        }

        int slot;
        if (listed_index(t, key, &slot) >= 0) {
            cJSON_Delete(values);
            free(key);
            continue;
        }
        t->space_slots[slot] = t->space_size;
        t->space_values[t->space_size] = values;
        t->space_keys[t->space_size] = key;
        t->space_size++;
    }
    t->enumerated = rc == 0;
    return rc;
}

/* Marks the listed configuration with this key as known. */
static void mark_listed(hpo_tuner *t, const char *key)
{
    int slot;
    int i = listed_index(t, key, &slot);
    if (i >= 0 && !t->space_known[i]) {
        t->space_known[i] = true;
        t->n_space_known++;
    }
}

/* ---- public interface ---- */

/* The operations of the tuner called name; NULL for an unknown name. */
static const hpo_tuner_ops *find_ops(const char *name)
{
    for (int i = 0; name != NULL && tuner_ops[i] != NULL; i++) {
        if (strcmp(tuner_ops[i]->name, name) == 0)
            return tuner_ops[i];
    }
    return NULL;
}

const char *hpo_tuner_known_name(const char *name, char *err, size_t errlen)
{
    const hpo_tuner_ops *ops = find_ops(name);
    if (ops == NULL) {
        hpo_error(err, errlen, "tuner \"%s\": unknown; use \"bayes\" or \"random\"",
                  name != NULL ? name : "");
        return NULL;
    }
    return ops->name;
}

int hpo_tuner_create(const char *name, const hpo_study *study, uint64_t seed,
                     hpo_tuner **out, char *err, size_t errlen)
{
    hpo_tuner *t = NULL;

    *out = NULL;
    if (hpo_tuner_known_name(name, err, errlen) == NULL)
        return -1;
    const hpo_tuner_ops *ops = find_ops(name);

    t = calloc(1, sizeof *t);
    if (t == NULL)
        return hpo_error(err, errlen, "tuner %s: out of memory", name);
    t->ops = ops;
    t->study = study;
    t->seed = seed;
    t->rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (t->rng == NULL || grow_slots(t) < 0) {
        hpo_error(err, errlen, "tuner %s: out of memory", name);
        goto fail;
    }
    gsl_rng_set(t->rng, (unsigned long)seed);

    if (enumerate_space(t, err, errlen) < 0 || ops->init(t, err, errlen) < 0)
        goto fail;

    if (t->enumerated)
        hpo_log_info("tuner %s: study %s, %d parameters, %d distinct configurations",
                     name, hpo_study_name(study), hpo_study_param_count(study), t->space_size);
    else
        hpo_log_info("tuner %s: study %s, %d parameters, space too large to list",
                     name, hpo_study_name(study), hpo_study_param_count(study));
    *out = t;
    return 0;

fail:
    hpo_tuner_destroy(&t);
    return -1;
}

void hpo_tuner_destroy(hpo_tuner **tuner)
{
    if (tuner == NULL || *tuner == NULL)
        return;
    hpo_tuner *t = *tuner;

    if (t->ops->destroy != NULL)
        t->ops->destroy(t);
    for (int i = 0; i < t->n_trials; i++) {
        cJSON_Delete(t->trials[i].values);
        cJSON_Delete(t->trials[i].active);
        free(t->trials[i].key);
    }
    for (int i = 0; i < t->space_size; i++) {
        cJSON_Delete(t->space_values[i]);
        free(t->space_keys[i]);
    }
    free(t->space_values);
    free(t->space_keys);
    free(t->space_slots);
    free(t->space_known);
    free(t->trials);
    free(t->slots);
    if (t->rng != NULL)
        gsl_rng_free(t->rng);
    free(t);
    *tuner = NULL;
}

const char *hpo_tuner_name(const hpo_tuner *tuner)
{
    return tuner->ops->name;
}

int hpo_tuner_known_count(const hpo_tuner *tuner)
{
    return tuner->n_trials;
}

int hpo_tuner_observe(hpo_tuner *t, const cJSON *values, const cJSON *active,
                      double objective, hpo_observe_status status,
                      char *err, size_t errlen)
{
    const cJSON *source = values != NULL ? values : active;
    cJSON *computed = NULL;
    char reason[HPO_ERR_MAX];

    if (source == NULL)
        return hpo_error(err, errlen, "tuner %s: observe needs values or active values",
                         t->ops->name);
    if (hpo_study_active(t->study, source, &computed, reason, sizeof reason) < 0)
        return hpo_error(err, errlen, "tuner %s: observed configuration rejected: %s",
                         t->ops->name, reason);
    if (status != HPO_OBSERVE_OK)
        objective = NAN;

    char *key = hpo_study_config_key(t->study, computed);
    if (key == NULL) {
        cJSON_Delete(computed);
        return hpo_error(err, errlen, "tuner %s: out of memory", t->ops->name);
    }

    int slot;
    int i = find_key(t, key, &slot);
    if (i >= 0) {
        t->trials[i].status = status;
        t->trials[i].objective = objective;
        cJSON_Delete(computed);
        free(key);
        return 0;
    }

    cJSON *copy = cJSON_Duplicate(source, true);
    if (copy == NULL || add_trial(t, copy, computed, key, objective, status) < 0) {
        if (copy == NULL) {
            cJSON_Delete(computed);
            free(key);
        }
        return hpo_error(err, errlen, "tuner %s: out of memory", t->ops->name);
    }
    return 0;
}

/* Picks uniformly among the listed configurations that are not known yet
 * and copies its values; returns 1 when there is none. */
static int pick_unknown(hpo_tuner *t, cJSON **values_out)
{
    int n_unknown = t->space_size - t->n_space_known;
    if (n_unknown <= 0)
        return 1;

    int pick = (int)gsl_rng_uniform_int(t->rng, (unsigned long)n_unknown);
    for (int i = 0; i < t->space_size; i++) {
        if (t->space_known[i] || pick-- > 0)
            continue;
        *values_out = cJSON_Duplicate(t->space_values[i], true);
        return *values_out != NULL ? 0 : -1;
    }
    return 1;
}

/* Records values as a pending proposal and hands them to the caller; takes
 * ownership of values, active and key. */
static int accept(hpo_tuner *t, cJSON *values, cJSON *active, char *key,
                  cJSON **values_out, char *err, size_t errlen)
{
    cJSON *copy = cJSON_Duplicate(values, true);

    if (copy == NULL || add_trial(t, copy, active, key, NAN, HPO_OBSERVE_PENDING) < 0) {
        if (copy == NULL) {
            cJSON_Delete(active);
            free(key);
        }
        cJSON_Delete(values);
        return hpo_error(err, errlen, "tuner %s: out of memory", t->ops->name);
    }
    *values_out = values;
    return 0;
}

static int report_exhausted(hpo_tuner *t, const char *why)
{
    if (!t->exhausted)
        hpo_log_info("tuner %s: study %s: search space exhausted after %d configurations (%s)",
                     t->ops->name, hpo_study_name(t->study), t->n_trials, why);
    t->exhausted = true;
    return 1;
}

int hpo_tuner_propose(hpo_tuner *t, cJSON **values_out, char *err, size_t errlen)
{
    *values_out = NULL;
    if (t->exhausted)
        return 1;
    if (t->enumerated && t->n_trials >= t->space_size)
        return report_exhausted(t, "every configuration is known");

    for (int misses = 0;;) {
        cJSON *values = NULL, *active = NULL;
        char *key = NULL;
        if (t->ops->candidate(t, &values, err, errlen) < 0)
            return -1;
        if (configuration_key(t, values, &key, &active, err, errlen) < 0) {
            cJSON_Delete(values);
            return -1;
        }

        int slot;
        if (find_key(t, key, &slot) < 0)
            return accept(t, values, active, key, values_out, err, errlen);
        cJSON_Delete(values);
        cJSON_Delete(active);
        free(key);
        misses++;

        if (t->enumerated && misses >= LISTED_MISSES) {
            int rc = pick_unknown(t, &values);
            if (rc < 0)
                return hpo_error(err, errlen, "tuner %s: out of memory", t->ops->name);
            if (rc > 0)
                return report_exhausted(t, "every configuration is known");
            if (configuration_key(t, values, &key, &active, err, errlen) < 0) {
                cJSON_Delete(values);
                return -1;
            }
            hpo_log_debug("tuner %s: %d duplicate candidates, picked an unknown configuration",
                          t->ops->name, misses);
            return accept(t, values, active, key, values_out, err, errlen);
        }
        if (!t->enumerated && misses >= UNLISTED_MISSES)
            return report_exhausted(t, "no new configuration in " HPO_STR(UNLISTED_MISSES)
                                       " draws in a row");
    }
}
