#include "hpoctl_format.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Formats a scalar JSON value the way a person reads it: integers without
 * a fraction, other numbers with 6 significant digits, strings bare. */
static void format_value(const cJSON *value, char *buf, size_t size)
{
    if (cJSON_IsNumber(value)) {
        double x = value->valuedouble;
        if (x == floor(x) && fabs(x) < 1e15)
            snprintf(buf, size, "%.0f", x);
        else
            snprintf(buf, size, "%.6g", x);
    } else if (cJSON_IsString(value)) {
        snprintf(buf, size, "%s", value->valuestring);
    } else if (cJSON_IsBool(value)) {
        snprintf(buf, size, "%s", cJSON_IsTrue(value) ? "true" : "false");
    } else if (value == NULL || cJSON_IsNull(value)) {
        snprintf(buf, size, "-");
    } else {
        char *text = cJSON_PrintUnformatted(value);
        snprintf(buf, size, "%s", text != NULL ? text : "?");
        cJSON_free(text);
    }
}

static const char *member_text(const cJSON *obj, const char *name, char *buf,
                               size_t size)
{
    format_value(cJSON_GetObjectItemCaseSensitive(obj, name), buf, size);
    return buf;
}

static const char *objective_name(const cJSON *data)
{
    const cJSON *objective = cJSON_GetObjectItemCaseSensitive(data, "objective");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(objective, "name");
    return cJSON_IsString(name) ? name->valuestring : "objective";
}

static const char *objective_direction(const cJSON *data)
{
    const cJSON *objective = cJSON_GetObjectItemCaseSensitive(data, "objective");
    const cJSON *direction = cJSON_GetObjectItemCaseSensitive(objective, "direction");
    return cJSON_IsString(direction) ? direction->valuestring : "max";
}

/* Prints "  name: value" for each member of obj. */
static void print_members(FILE *out, const cJSON *obj, const char *indent)
{
    const cJSON *item = NULL;
    char value[256];
    cJSON_ArrayForEach(item, obj) {
        format_value(item, value, sizeof value);
        fprintf(out, "%s%s: %s\n", indent, item->string, value);
    }
}

void hpoctl_print_best(FILE *out, const cJSON *data)
{
    const cJSON *trial = cJSON_GetObjectItemCaseSensitive(data, "trial");
    if (!cJSON_IsObject(trial)) {
        fprintf(out, "No trial has finished ok yet.\n");
        return;
    }

    char buf[256];
    fprintf(out, "Best trial: %s\n", member_text(trial, "id", buf, sizeof buf));
    fprintf(out, "Objective: %s = %s (%s)\n", objective_name(data),
            member_text(trial, "objective", buf, sizeof buf),
            objective_direction(data));
    fprintf(out, "Hyperparameters:\n");
    print_members(out, cJSON_GetObjectItemCaseSensitive(trial, "hyperparameters"), "  ");

    const cJSON *inactive = cJSON_GetObjectItemCaseSensitive(trial, "inactive");
    if (cJSON_GetArraySize(inactive) > 0) {
        fprintf(out, "Inactive:");
        const cJSON *name = NULL;
        cJSON_ArrayForEach(name, inactive)
            fprintf(out, " %s", cJSON_IsString(name) ? name->valuestring : "?");
        fprintf(out, "\n");
    }
    fprintf(out, "Metrics:\n");
    print_members(out, cJSON_GetObjectItemCaseSensitive(trial, "metrics"), "  ");

    char worker[64];
    const cJSON *seconds = cJSON_GetObjectItemCaseSensitive(trial, "seconds");
    fprintf(out, "Epochs run: %s, on worker %s, in %.1f s\n",
            member_text(trial, "epochs_run", buf, sizeof buf),
            member_text(trial, "worker", worker, sizeof worker),
            cJSON_IsNumber(seconds) ? seconds->valuedouble : 0.0);
}

/* Joins a trial's hyperparameters as "name=value name=value". */
static void join_params(const cJSON *trial, char *buf, size_t size)
{
    const cJSON *item = NULL;
    size_t used = 0;
    buf[0] = '\0';
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(trial, "hyperparameters")) {
        char value[128];
        format_value(item, value, sizeof value);
        int n = snprintf(buf + used, size - used, "%s%s=%s", used > 0 ? " " : "",
                         item->string, value);
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
}

void hpoctl_print_trials_table(FILE *out, const cJSON *data)
{
    const cJSON *trials = cJSON_GetObjectItemCaseSensitive(data, "trials");
    if (cJSON_GetArraySize(trials) == 0) {
        fprintf(out, "No trials yet.\n");
        return;
    }

    const char *objective = objective_name(data);
    fprintf(out, "%5s  %-8s %14s %6s %7s %8s  %s\n", "id", "status", objective,
            "epochs", "worker", "seconds", "hyperparameters / error");
    const cJSON *trial = NULL;
    cJSON_ArrayForEach(trial, trials) {
        char id[32], status[16], score[32], epochs[16], worker[32], seconds[32];
        char details[2048];
        const cJSON *error = cJSON_GetObjectItemCaseSensitive(trial, "error");
        const cJSON *secs = cJSON_GetObjectItemCaseSensitive(trial, "seconds");
        if (cJSON_IsNumber(secs))
            snprintf(seconds, sizeof seconds, "%.1f", secs->valuedouble);
        else
            snprintf(seconds, sizeof seconds, "-");
        if (cJSON_IsString(error))
            snprintf(details, sizeof details, "error: %s", error->valuestring);
        else
            join_params(trial, details, sizeof details);
        fprintf(out, "%5s  %-8s %14s %6s %7s %8s  %s\n",
                member_text(trial, "id", id, sizeof id),
                member_text(trial, "status", status, sizeof status),
                member_text(trial, "objective", score, sizeof score),
                member_text(trial, "epochs_run", epochs, sizeof epochs),
                member_text(trial, "worker", worker, sizeof worker), seconds,
                details);
    }
}

/* Formats a number with the fewest significant digits that read back as
 * the same double, for CSV output that loses nothing. */
static void format_exact(double x, char *buf, size_t size)
{
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, x);
        if (strtod(buf, NULL) == x)
            return;
    }
}

/* Writes a CSV field, quoted when it contains a comma, quote or line break
 * (RFC 4180). */
static void csv_field(FILE *out, const char *text, bool first)
{
    if (!first)
        fputc(',', out);
    if (strpbrk(text, ",\"\r\n") == NULL) {
        fputs(text, out);
        return;
    }
    fputc('"', out);
    for (const char *c = text; *c != '\0'; c++) {
        if (*c == '"')
            fputc('"', out);
        fputc(*c, out);
    }
    fputc('"', out);
}

/* Adds each hyperparameter name of every trial to names, once, in order of
 * first appearance. */
static cJSON *collect_param_names(const cJSON *trials)
{
    cJSON *names = cJSON_CreateObject();
    const cJSON *trial = NULL;
    cJSON_ArrayForEach(trial, trials) {
        const cJSON *item = NULL;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(trial, "hyperparameters")) {
            if (!cJSON_HasObjectItem(names, item->string))
                cJSON_AddTrueToObject(names, item->string);
        }
    }
    return names;
}

void hpoctl_print_trials_csv(FILE *out, const cJSON *data)
{
    static const char *const columns[] = {"id", "status", "objective", "epochs_run",
                                          "worker", "attempts", "seconds", "error"};
    const size_t n_columns = sizeof columns / sizeof columns[0];
    const cJSON *trials = cJSON_GetObjectItemCaseSensitive(data, "trials");
    cJSON *names = collect_param_names(trials);

    for (size_t i = 0; i < n_columns; i++)
        csv_field(out, i == 2 ? objective_name(data) : columns[i], i == 0);
    const cJSON *name = NULL;
    cJSON_ArrayForEach(name, names)
        csv_field(out, name->string, false);
    fputc('\n', out);

    /* Inactive parameters and unset values are empty fields. */
    const cJSON *trial = NULL;
    cJSON_ArrayForEach(trial, trials) {
        char value[4096];
        for (size_t i = 0; i < n_columns; i++) {
            const cJSON *item = cJSON_GetObjectItemCaseSensitive(trial, columns[i]);
            if (item == NULL || cJSON_IsNull(item))
                value[0] = '\0';
            else if (cJSON_IsNumber(item))
                format_exact(item->valuedouble, value, sizeof value);
            else
                format_value(item, value, sizeof value);
            csv_field(out, value, i == 0);
        }
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(trial, "hyperparameters");
        cJSON_ArrayForEach(name, names) {
            const cJSON *item = cJSON_GetObjectItemCaseSensitive(params, name->string);
            if (item == NULL)
                value[0] = '\0';
            else if (cJSON_IsNumber(item))
                format_exact(item->valuedouble, value, sizeof value);
            else
                format_value(item, value, sizeof value);
            csv_field(out, value, false);
        }
        fputc('\n', out);
    }
    cJSON_Delete(names);
}

void hpoctl_print_summary(FILE *out, const cJSON *data)
{
    const cJSON *trials = cJSON_GetObjectItemCaseSensitive(data, "trials");
    char buf[256];
    fprintf(out, "Results summary\n");
    fprintf(out, "Showing %d best trials of %s\n", cJSON_GetArraySize(trials),
            member_text(data, "trials_total", buf, sizeof buf));
    fprintf(out, "Objective(name=\"%s\", direction=\"%s\")\n",
            objective_name(data), objective_direction(data));

    const cJSON *trial = NULL;
    cJSON_ArrayForEach(trial, trials) {
        fprintf(out, "\nTrial %s summary\n", member_text(trial, "id", buf, sizeof buf));
        fprintf(out, "Hyperparameters:\n");
        print_members(out, cJSON_GetObjectItemCaseSensitive(trial, "hyperparameters"), "");
        fprintf(out, "Score: %s\n", member_text(trial, "objective", buf, sizeof buf));
    }
}

void hpoctl_print_space(FILE *out, const cJSON *data)
{
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(data, "parameters");
    fprintf(out, "Search space summary\n");
    fprintf(out, "Search space size: %d\n", cJSON_GetArraySize(params));

    const cJSON *param = NULL;
    cJSON_ArrayForEach(param, params) {
        char name[128], type[32];
        fprintf(out, "%s (%s)\n", member_text(param, "name", name, sizeof name),
                member_text(param, "type", type, sizeof type));
        const cJSON *item = NULL;
        bool first = true;
        fprintf(out, "  ");
        cJSON_ArrayForEach(item, param) {
            if (strcmp(item->string, "name") == 0 || strcmp(item->string, "type") == 0)
                continue;
            char value[1024];
            format_value(item, value, sizeof value);
            fprintf(out, "%s%s: %s", first ? "" : ", ", item->string, value);
            first = false;
        }
        fprintf(out, "\n");
    }
}

void hpoctl_print_status(FILE *out, const cJSON *data)
{
    char study[128], state[32], source[32], max_trials[32];
    const cJSON *tuner = cJSON_GetObjectItemCaseSensitive(data, "tuner");
    fprintf(out, "Study %s: %s (answered by %s",
            member_text(data, "study", study, sizeof study),
            member_text(data, "state", state, sizeof state),
            member_text(data, "source", source, sizeof source));
    if (cJSON_IsString(tuner))
        fprintf(out, ", tuner %s", tuner->valuestring);
    fprintf(out, ")\n");

    const cJSON *trials = cJSON_GetObjectItemCaseSensitive(data, "trials");
    char counted[32], queued[32], running[32], ok[32], failed[32];
    fprintf(out, "Trials: %s of %s counted; %s queued, %s running, %s ok, %s failed\n",
            member_text(trials, "counted", counted, sizeof counted),
            member_text(data, "max_trials", max_trials, sizeof max_trials),
            member_text(trials, "queued", queued, sizeof queued),
            member_text(trials, "running", running, sizeof running),
            member_text(trials, "ok", ok, sizeof ok),
            member_text(trials, "failed", failed, sizeof failed));

    const cJSON *workers = cJSON_GetObjectItemCaseSensitive(data, "workers");
    if (!cJSON_IsArray(workers)) {
        fprintf(out, "Workers: unknown (read from the database, not from hpod)\n");
        return;
    }
    fprintf(out, "Workers: %d connected\n", cJSON_GetArraySize(workers));
    const cJSON *w = NULL;
    cJSON_ArrayForEach(w, workers) {
        char id[32], host[256], pid[32], trial[32];
        const cJSON *seen = cJSON_GetObjectItemCaseSensitive(w, "last_seen_ms_ago");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(w, "name");
        /* The name the worker was started with (--name), beside the id
         * that trials and results show. */
        if (cJSON_IsString(name) && name->valuestring[0] != '\0')
            fprintf(out, "  %s (%s)", member_text(w, "id", id, sizeof id), name->valuestring);
        else
            fprintf(out, "  %s", member_text(w, "id", id, sizeof id));
        fprintf(out, "  %s pid %s  trial %s  last seen %.1f s ago\n",
                member_text(w, "host", host, sizeof host),
                member_text(w, "pid", pid, sizeof pid),
                member_text(w, "trial", trial, sizeof trial),
                cJSON_IsNumber(seen) ? seen->valuedouble / 1000.0 : 0.0);
    }
}
