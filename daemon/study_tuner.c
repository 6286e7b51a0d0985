/* The tuner configuration stored with a study, and its JSON form. */
#include "study_tuner.h"

#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "hpo/error.h"

/* One integer option of the bayes tuner in the stored JSON. */
typedef struct {
    const char *key;
    size_t offset;  /* of the int in hpo_bayes_options */
} int_option;

static const int_option bayes_int_options[] = {
    {"initial_trials", offsetof(hpo_bayes_options, initial_trials)},
    {"restarts", offsetof(hpo_bayes_options, restarts)},
    {"sobol_points", offsetof(hpo_bayes_options, search.sobol_points)},
    {"perturbations", offsetof(hpo_bayes_options, search.perturbations)},
    {"local_starts", offsetof(hpo_bayes_options, search.local_starts)},
    {"ranked", offsetof(hpo_bayes_options, search.ranked)},
};

#define N_INT_OPTIONS (sizeof bayes_int_options / sizeof bayes_int_options[0])

static int *int_field(hpo_bayes_options *options, const int_option *option)
{
    return (int *)(void *)((char *)options + option->offset);
}

static int int_value(const hpo_bayes_options *options, const int_option *option)
{
    return *(const int *)(const void *)((const char *)options + option->offset);
}

int hpo_tuner_config_init(hpo_tuner_config *config, const char *name,
                          char *err, size_t errlen)
{
    const char *known = hpo_tuner_known_name(name, err, errlen);
    if (known == NULL)
        return -1;
    config->name = known;
    hpo_bayes_options_default(&config->bayes);
    return 0;
}

/* Reads one member of the stored bayes options into options; -1 for an
 * unknown member or an invalid value. */
static int parse_bayes_member(hpo_bayes_options *options, const cJSON *item,
                              char *err, size_t errlen)
{
    const char *key = item->string;

    for (size_t i = 0; i < N_INT_OPTIONS; i++) {
        if (strcmp(key, bayes_int_options[i].key) != 0)
            continue;
        double value = cJSON_IsNumber(item) ? item->valuedouble : NAN;
        if (!(value >= 0 && value <= INT_MAX) || value != floor(value))
            return hpo_error(err, errlen, "tuner options: %s must be an integer "
                             "from 0 to %d", key, INT_MAX);
        *int_field(options, &bayes_int_options[i]) = (int)value;
        return 0;
    }
    if (strcmp(key, "acquisition") == 0) {
        if (!cJSON_IsString(item) ||
            hpo_acquisition_parse(item->valuestring, &options->acquisition) != 0)
            return hpo_error(err, errlen, "tuner options: acquisition must be "
                             "\"ei\", \"ucb\" or \"pi\"");
        return 0;
    }
    if (strcmp(key, "ucb_beta") == 0) {
        if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
            return hpo_error(err, errlen, "tuner options: ucb_beta must be a "
                             "finite number");
        options->ucb_beta = item->valuedouble;
        return 0;
    }
    return hpo_error(err, errlen, "tuner options: unknown member \"%s\" of the "
                     "bayes tuner; a newer hpod may have written it", key);
}

int hpo_tuner_config_parse(hpo_tuner_config *config, const char *name,
                           const char *options_text, char *err, size_t errlen)
{
    if (hpo_tuner_config_init(config, name, err, errlen) != 0)
        return -1;

    cJSON *options = options_text != NULL ? cJSON_Parse(options_text) : NULL;
    if (!cJSON_IsObject(options)) {
        cJSON_Delete(options);
        return hpo_error(err, errlen, "tuner options of %s: \"%.40s\" is not a "
                         "JSON object", config->name,
                         options_text != NULL ? options_text : "(none)");
    }

    int result = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, options) {
        if (strcmp(config->name, "bayes") != 0) {
            result = hpo_error(err, errlen, "tuner options: the %s tuner has no "
                               "options, but \"%s\" is given", config->name,
                               item->string);
            break;
        }
        if (parse_bayes_member(&config->bayes, item, err, errlen) != 0) {
            result = -1;
            break;
        }
    }
    cJSON_Delete(options);
    return result;
}

char *hpo_tuner_config_options_text(const hpo_tuner_config *config)
{
    cJSON *options = cJSON_CreateObject();
    if (options == NULL)
        return NULL;

    bool ok = true;
    if (strcmp(config->name, "bayes") == 0) {
        const hpo_bayes_options *b = &config->bayes;
        ok = cJSON_AddStringToObject(options, "acquisition",
                                     hpo_acquisition_name(b->acquisition)) != NULL &&
             cJSON_AddNumberToObject(options, "ucb_beta", b->ucb_beta) != NULL;
        for (size_t i = 0; ok && i < N_INT_OPTIONS; i++)
            ok = cJSON_AddNumberToObject(options, bayes_int_options[i].key,
                                         int_value(b, &bayes_int_options[i])) != NULL;
    }
    char *text = ok ? cJSON_PrintUnformatted(options) : NULL;
    cJSON_Delete(options);
    return text;
}

int hpo_tuner_config_create(const hpo_tuner_config *config, const hpo_study *study,
                            uint64_t seed, hpo_tuner **out, char *err, size_t errlen)
{
    if (hpo_tuner_create(config->name, study, seed, out, err, errlen) != 0)
        return -1;
    if (strcmp(config->name, "bayes") == 0 &&
        hpo_tuner_bayes_configure(*out, &config->bayes, err, errlen) != 0) {
        hpo_tuner_destroy(out);
        return -1;
    }
    return 0;
}

void hpo_tuner_config_settle(hpo_tuner_config *config, const hpo_tuner *tuner)
{
    if (strcmp(config->name, "bayes") == 0 && config->bayes.initial_trials == 0)
        config->bayes.initial_trials = hpo_tuner_bayes_initial_trials(tuner);
}
