#include "control.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpo/error.h"

/* Adds a number, or null when it is not finite (JSON has no NaN). */
static void add_number_or_null(cJSON *obj, const char *name, double value)
{
    if (isfinite(value))
        cJSON_AddNumberToObject(obj, name, value);
    else
        cJSON_AddNullToObject(obj, name);
}

static void add_string_or_null(cJSON *obj, const char *name, const char *value)
{
    if (value != NULL)
        cJSON_AddStringToObject(obj, name, value);
    else
        cJSON_AddNullToObject(obj, name);
}

/* Adds a copy of json, or null. */
static void add_copy(cJSON *obj, const char *name, const cJSON *json)
{
    cJSON *copy = json != NULL ? cJSON_Duplicate(json, true) : NULL;
    if (copy == NULL)
        copy = cJSON_CreateNull();
    cJSON_AddItemToObject(obj, name, copy);
}

/* {"name": "val_accuracy", "direction": "max"} */
static cJSON *objective_json(const hpo_study *study)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "name", hpo_study_objective(study));
    cJSON_AddStringToObject(obj, "direction",
                            hpo_study_maximize(study) ? "max" : "min");
    return obj;
}

/* One trial as hpoctl shows it. "hyperparameters" contains the active
 * parameters (all values for a trial whose model was never resolved) and
 * "inactive" the names of the others. */
static cJSON *trial_json(const hpo_trial_record *r)
{
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddNumberToObject(obj, "id", (double)r->id);
    cJSON_AddStringToObject(obj, "status", hpo_trial_state_name(r->status));
    add_number_or_null(obj, "objective", r->objective);

    const cJSON *shown = r->active != NULL ? r->active : r->params;
    add_copy(obj, "hyperparameters", shown);
    cJSON *inactive = cJSON_AddArrayToObject(obj, "inactive");
    const cJSON *param = NULL;
    cJSON_ArrayForEach(param, r->params) {
        if (!cJSON_HasObjectItem(shown, param->string))
            cJSON_AddItemToArray(inactive, cJSON_CreateString(param->string));
    }

    add_copy(obj, "metrics", r->metrics);
    cJSON_AddNumberToObject(obj, "epochs_run", r->epochs_run);
    if (r->worker_id > 0) {
        char worker[32];
        snprintf(worker, sizeof worker, "w%lld", (long long)r->worker_id);
        cJSON_AddStringToObject(obj, "worker", worker);
    } else {
        cJSON_AddNullToObject(obj, "worker");
    }
    cJSON_AddNumberToObject(obj, "attempts", r->attempts);
    add_string_or_null(obj, "error", r->error);
    add_number_or_null(obj, "seconds", r->seconds);
    add_string_or_null(obj, "created", r->created);
    add_string_or_null(obj, "started", r->started);
    add_string_or_null(obj, "finished", r->finished);
    return obj;
}

/* Orders ok trials best first for the study's direction (context points
 * to a bool, true to maximize), ties by id. */
static int compare_best_first(const void *a, const void *b, void *context)
{
    const hpo_trial_record *x = *(const hpo_trial_record *const *)a;
    const hpo_trial_record *y = *(const hpo_trial_record *const *)b;
    bool maximize = *(const bool *)context;
    if (x->objective != y->objective) {
        bool x_better = maximize ? x->objective > y->objective
                                 : x->objective < y->objective;
        return x_better ? -1 : 1;
    }
    return x->id < y->id ? -1 : (x->id > y->id ? 1 : 0);
}

/* Collects pointers to the ok trials, best first. The caller frees
 * *ranked_out (not the records). */
static int rank_trials(const hpo_study *study, hpo_trial_record *records,
                       size_t n, const hpo_trial_record ***ranked_out,
                       size_t *n_ranked)
{
    const hpo_trial_record **ranked = calloc(n > 0 ? n : 1, sizeof *ranked);
    if (ranked == NULL)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (records[i].status == HPO_TRIAL_STATE_OK && isfinite(records[i].objective))
            ranked[k++] = &records[i];
    }
    bool maximize = hpo_study_maximize(study);
    qsort_r(ranked, k, sizeof *ranked, compare_best_first, &maximize);
    *ranked_out = ranked;
    *n_ranked = k;
    return 0;
}

/* Reads "top" from args: a positive integer, HPO_CONTROL_SUMMARY_TOP when
 * absent. */
static int read_top(const cJSON *args, int *top, char *err, size_t errlen)
{
    *top = HPO_CONTROL_SUMMARY_TOP;
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(args, "top");
    if (value == NULL || cJSON_IsNull(value))
        return 0;
    if (!cJSON_IsNumber(value) || value->valuedouble < 1 ||
        value->valuedouble > 1e6 || value->valuedouble != floor(value->valuedouble))
        return hpo_error(err, errlen, "args.top: expected an integer from 1 "
                         "to 1000000");
    *top = (int)value->valuedouble;
    return 0;
}

static cJSON *answer_trials(const hpo_control_context *ctx,
                            hpo_trial_record *records, size_t n)
{
    cJSON *data = cJSON_CreateObject();
    cJSON_AddItemToObject(data, "objective", objective_json(ctx->study));
    cJSON *list = cJSON_AddArrayToObject(data, "trials");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(list, trial_json(&records[i]));
    return data;
}

static cJSON *answer_ranked(const hpo_control_context *ctx,
                            const hpo_trial_record **ranked, size_t n_ranked,
                            int top, size_t n_total)
{
    cJSON *data = cJSON_CreateObject();
    cJSON_AddItemToObject(data, "objective", objective_json(ctx->study));
    cJSON_AddNumberToObject(data, "top", top);
    cJSON_AddNumberToObject(data, "trials_total", (double)n_total);
    cJSON *list = cJSON_AddArrayToObject(data, "trials");
    for (size_t i = 0; i < n_ranked && i < (size_t)top; i++)
        cJSON_AddItemToArray(list, trial_json(ranked[i]));
    return data;
}

static int answer_best(const hpo_control_context *ctx,
                       const hpo_trial_record **ranked, size_t n_ranked,
                       cJSON **data_out, char *err, size_t errlen)
{
    cJSON *data = cJSON_CreateObject();
    cJSON_AddItemToObject(data, "objective", objective_json(ctx->study));
    if (n_ranked == 0) {
        cJSON_AddNullToObject(data, "trial");
        *data_out = data;
        return 0;
    }

    cJSON *trial = trial_json(ranked[0]);
    cJSON *epochs = NULL;
    if (hpo_storage_epochs_get(ctx->storage, ranked[0]->id, &epochs, err, errlen) != 0) {
        cJSON_Delete(trial);
        cJSON_Delete(data);
        return -1;
    }
    cJSON_AddItemToObject(trial, "epochs", epochs);
    cJSON_AddItemToObject(data, "trial", trial);
    *data_out = data;
    return 0;
}

static int answer_status(const hpo_control_context *ctx, cJSON **data_out,
                         char *err, size_t errlen)
{
    hpo_study_info info;
    bool found = false;
    int counts[HPO_TRIAL_STATE_COUNT];
    int counted = 0;
    if (hpo_storage_study_get(ctx->storage, &info, &found, err, errlen) != 0)
        return -1;
    if (!found)
        return hpo_error(err, errlen, "the database holds no study");
    if (hpo_storage_trial_counts(ctx->storage, counts, &counted, err, errlen) != 0) {
        hpo_study_info_clear(&info);
        return -1;
    }

    cJSON *data = cJSON_CreateObject();
    cJSON_AddStringToObject(data, "study", info.name);
    cJSON_AddStringToObject(data, "state", info.state);
    cJSON_AddStringToObject(data, "source", ctx->source);
    /* hpoctl --db has no running tuner: report the one stored with the
     * study, which is NULL in databases of schema version 1. */
    add_string_or_null(data, "tuner", ctx->tuner != NULL ? ctx->tuner : info.tuner);
    cJSON_AddNumberToObject(data, "max_trials", info.max_trials);
    cJSON_AddItemToObject(data, "objective", objective_json(ctx->study));
    add_string_or_null(data, "created", info.created);
    add_string_or_null(data, "updated", info.updated);

    cJSON *trials = cJSON_AddObjectToObject(data, "trials");
    for (int i = 0; i < HPO_TRIAL_STATE_COUNT; i++)
        cJSON_AddNumberToObject(trials, hpo_trial_state_name((hpo_trial_state)i),
                                counts[i]);
    cJSON_AddNumberToObject(trials, "counted", counted);

    if (ctx->workers != NULL) {
        cJSON_AddNumberToObject(data, "workers_connected",
                                cJSON_GetArraySize(ctx->workers));
        cJSON_AddItemToObject(data, "workers", cJSON_Duplicate(ctx->workers, true));
    } else {
        cJSON_AddNullToObject(data, "workers_connected");
        cJSON_AddNullToObject(data, "workers");
    }
    hpo_study_info_clear(&info);
    *data_out = data;
    return 0;
}

int hpo_control_answer(const hpo_control_context *ctx,
                       hpo_query_command command, const cJSON *args,
                       cJSON **data_out, hpo_proto_status *code,
                       char *err, size_t errlen)
{
    *data_out = NULL;
    *code = HPO_PROTO_INTERNAL;

    if (command == HPO_QUERY_SPACE) {
        cJSON *data = cJSON_CreateObject();
        cJSON_AddStringToObject(data, "study", hpo_study_name(ctx->study));
        cJSON_AddItemToObject(data, "objective", objective_json(ctx->study));
        cJSON_AddItemToObject(data, "parameters", hpo_study_space_to_json(ctx->study));
        *data_out = data;
        return 0;
    }
    if (command == HPO_QUERY_STATUS)
        return answer_status(ctx, data_out, err, errlen);
    if (command != HPO_QUERY_BEST && command != HPO_QUERY_TRIALS &&
        command != HPO_QUERY_SUMMARY) {
        *code = HPO_PROTO_UNKNOWN_COMMAND;
        return hpo_error(err, errlen, "command %s is not answered from the "
                         "database", hpo_query_command_name(command));
    }

    int top = HPO_CONTROL_SUMMARY_TOP;
    if (command == HPO_QUERY_SUMMARY && read_top(args, &top, err, errlen) != 0) {
        *code = HPO_PROTO_INVALID_ARGUMENT;
        return -1;
    }

    hpo_trial_record *records = NULL;
    size_t n = 0;
    if (hpo_storage_trials_list(ctx->storage, &records, &n, err, errlen) != 0)
        return -1;

    int result = 0;
    const hpo_trial_record **ranked = NULL;
    size_t n_ranked = 0;
    if (command == HPO_QUERY_TRIALS) {
        *data_out = answer_trials(ctx, records, n);
    } else if (rank_trials(ctx->study, records, n, &ranked, &n_ranked) != 0) {
        result = hpo_error(err, errlen, "out of memory ranking %zu trials", n);
    } else if (command == HPO_QUERY_SUMMARY) {
        *data_out = answer_ranked(ctx, ranked, n_ranked, top, n);
    } else {
        result = answer_best(ctx, ranked, n_ranked, data_out, err, errlen);
    }
    free(ranked);
    hpo_trial_records_free(&records, n);
    if (result == 0 && *data_out == NULL)
        result = hpo_error(err, errlen, "out of memory building the answer");
    return result;
}
