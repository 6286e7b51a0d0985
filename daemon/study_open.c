/* Opening hpod's study: a new one from --study or the stored one from
 * --db, with its tuner and the settings that a resumed study keeps. */
#include "study_open.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "hpo/error.h"
#include "hpo/log.h"
#include "study_tuner.h"

/* Reads a whole file into a NUL-terminated string the caller frees. */
static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        hpo_error(err, errlen, "cannot open study file %s: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t size = 0, capacity = 0;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, file)) > 0) {
        if (size + n + 1 > capacity) {
            capacity = (size + n + 1) * 2;
            char *bigger = realloc(text, capacity);
            if (bigger == NULL) {
                free(text);
                fclose(file);
                hpo_error(err, errlen, "out of memory reading %s", path);
                return NULL;
            }
            text = bigger;
        }
        memcpy(text + size, chunk, n);
        size += n;
    }
    bool failed = ferror(file);
    fclose(file);
    if (failed || text == NULL) {
        free(text);
        hpo_error(err, errlen, "cannot read study file %s%s", path,
                  failed ? "" : ": the file is empty");
        return NULL;
    }
    text[size] = '\0';
    return text;
}

/* True when two JSON texts hold the same document (formatting aside). */
static bool same_json(const char *a, const char *b)
{
    cJSON *x = cJSON_Parse(a), *y = cJSON_Parse(b);
    bool same = x != NULL && y != NULL && cJSON_Compare(x, y, true);
    cJSON_Delete(x);
    cJSON_Delete(y);
    return same;
}

/* Sets *value to the stored limit unless the option was given. Returns
 * true when the value to run with differs from the stored one (0 when the
 * database stores none) and must therefore be stored. */
static bool settle_limit(const char *option, bool given, int *value, int stored)
{
    if (stored > 0 && !given)
        *value = stored;
    if (given && stored > 0 && *value != stored)
        hpo_log_info("%s %d replaces the stored %d", option, *value, stored);
    return *value != stored;
}

/* Sets config to the stored tuner, or to request->tuner for a database
 * that stores none (*store_out is then true). An explicit --tuner that
 * differs from the stored one is an error. */
static int resume_tuner(const hpo_study_request *request, const hpo_study_info *info,
                        hpo_tuner_config *config, bool *store_out,
                        char *err, size_t errlen)
{
    *store_out = false;
    if (info->tuner == NULL) {
        hpo_log_warn("%s stores no tuner, because an older hpod created it; "
                     "resuming study %s with tuner %s (%s) and storing it",
                     request->db_path, info->name, request->tuner,
                     request->tuner_given ? "--tuner" : "the default");
        *store_out = true;
        return hpo_tuner_config_init(config, request->tuner, err, errlen);
    }

    if (request->tuner_given && strcmp(request->tuner, info->tuner) != 0)
        return hpo_error(err, errlen, "--tuner %s: study %s in %s runs with tuner "
                         "%s, and a study keeps the tuner it was created with; "
                         "leave out --tuner to resume with %s, or start a new "
                         "study with a new --db to use %s", request->tuner,
                         info->name, request->db_path, info->tuner, info->tuner,
                         request->tuner);

    char inner[HPO_ERR_MAX];
    if (hpo_tuner_config_parse(config, info->tuner, info->tuner_options,
                               inner, sizeof inner) != 0)
        return hpo_error(err, errlen, "%s: the stored tuner is invalid: %s; use "
                         "the hpod that created the study, or start a new "
                         "study with a new --db", request->db_path, inner);
    hpo_log_info("study %s keeps its tuner %s with options %s", info->name,
                 info->tuner, info->tuner_options);
    return 0;
}

/* Continues the study stored in the database: checks --study against it,
 * decides the settings and creates the tuner. */
static int resume_study(hpo_study_request *request, hpo_storage *storage,
                        const hpo_study_info *info, const char *file_text,
                        hpo_study **study, hpo_tuner **tuner,
                        char *err, size_t errlen)
{
    if (file_text != NULL && !same_json(file_text, info->spec))
        return hpo_error(err, errlen, "%s holds study \"%s\" from a different study "
                         "file than %s; use a new --db, or leave out --study to "
                         "resume the stored study", request->db_path, info->name,
                         request->study_path);
    if (hpo_study_parse(info->spec, study, err, errlen) != 0)
        return -1;
    if (request->seed_given && request->seed != info->seed)
        hpo_log_warn("--seed %" PRIu64 " ignored: the resumed study keeps its "
                     "seed %" PRIu64, request->seed, info->seed);
    request->seed = info->seed;
    if (request->max_trials == 0)
        request->max_trials = info->max_trials;
    hpo_log_info("resuming study %s from %s (state %s, created %s)",
                 info->name, request->db_path, info->state, info->created);

    hpo_tuner_config config;
    bool store_tuner = false;
    if (resume_tuner(request, info, &config, &store_tuner, err, errlen) != 0 ||
        hpo_tuner_config_create(&config, *study, request->seed, tuner, err, errlen) != 0)
        goto fail;
    request->tuner = config.name;

    bool store_failures = settle_limit("--max-failures", request->max_failures_given,
                                       &request->max_failures, info->max_failures);
    bool store_attempts = settle_limit("--max-attempts", request->max_attempts_given,
                                       &request->max_attempts, info->max_attempts);
    if (!store_tuner && !store_failures && !store_attempts)
        return 0;

    char *options_text = NULL;
    if (store_tuner) {
        hpo_tuner_config_settle(&config, *tuner);
        if ((options_text = hpo_tuner_config_options_text(&config)) == NULL) {
            hpo_error(err, errlen, "out of memory storing the tuner options");
            goto fail;
        }
    }
    hpo_study_settings settings = {
        .tuner = store_tuner ? config.name : NULL,
        .tuner_options = options_text,
        .max_failures = store_failures ? request->max_failures : 0,
        .max_attempts = store_attempts ? request->max_attempts : 0,
    };
    int rc = hpo_storage_study_set_settings(storage, &settings, err, errlen);
    cJSON_free(options_text);
    if (rc != 0)
        goto fail;
    return 0;

fail:
    hpo_tuner_destroy(tuner);
    hpo_study_destroy(study);
    return -1;
}

/* Starts the study of the file --study: parses it, creates the tuner and
 * stores the study with its settings. */
static int create_study(hpo_study_request *request, hpo_storage *storage,
                        const char *file_text, hpo_study **study, hpo_tuner **tuner,
                        char *err, size_t errlen)
{
    if (file_text == NULL)
        return hpo_error(err, errlen, "--study is missing: %s holds no study yet, so "
                         "give the study file to start one", request->db_path);
    if (hpo_study_parse(file_text, study, err, errlen) != 0) {
        char inner[HPO_ERR_MAX];
        snprintf(inner, sizeof inner, "%s", err);
        return hpo_error(err, errlen, "%s: %s", request->study_path, inner);
    }
    if (request->max_trials == 0)
        request->max_trials = hpo_study_budget(*study)->max_trials;

    hpo_tuner_config config;
    if (hpo_tuner_config_init(&config, request->tuner, err, errlen) != 0 ||
        hpo_tuner_config_create(&config, *study, request->seed, tuner, err, errlen) != 0)
        goto fail;
    request->tuner = config.name;
    hpo_tuner_config_settle(&config, *tuner);

    char *options_text = hpo_tuner_config_options_text(&config);
    if (options_text == NULL) {
        hpo_error(err, errlen, "out of memory storing the tuner options");
        goto fail;
    }
    hpo_study_settings settings = {
        .tuner = config.name,
        .tuner_options = options_text,
        .max_failures = request->max_failures,
        .max_attempts = request->max_attempts,
    };
    int rc = hpo_storage_study_create_with_settings(storage, hpo_study_name(*study),
                                                    file_text, request->seed,
                                                    request->max_trials, &settings,
                                                    err, errlen);
    cJSON_free(options_text);
    if (rc != 0)
        goto fail;
    hpo_log_info("new study %s from %s in %s", hpo_study_name(*study),
                 request->study_path, request->db_path);
    return 0;

fail:
    hpo_tuner_destroy(tuner);
    hpo_study_destroy(study);
    return -1;
}

int hpo_study_open(hpo_study_request *request, hpo_storage *storage,
                   hpo_study **study_out, hpo_tuner **tuner_out,
                   char *err, size_t errlen)
{
    *study_out = NULL;
    *tuner_out = NULL;

    hpo_study_info info;
    bool found = false;
    if (hpo_storage_study_get(storage, &info, &found, err, errlen) != 0)
        return -1;

    char *file_text = NULL;
    if (request->study_path != NULL &&
        (file_text = read_file(request->study_path, err, errlen)) == NULL) {
        hpo_study_info_clear(&info);
        return -1;
    }

    int result;
    if (found)
        result = resume_study(request, storage, &info, file_text, study_out,
                              tuner_out, err, errlen);
    else
        result = create_study(request, storage, file_text, study_out, tuner_out,
                              err, errlen);
    if (result == 0 && !hpo_study_synthetic(*study_out))
        hpo_study_warn_unbuildable_ends(*study_out);
    if (result == 0 && request->max_trials < 1) {
        hpo_tuner_destroy(tuner_out);
        hpo_study_destroy(study_out);
        result = hpo_error(err, errlen, "max trials is %d; give --max-trials N "
                           "or budget.max_trials in the study file",
                           request->max_trials);
    }

    free(file_text);
    hpo_study_info_clear(&info);
    return result;
}
