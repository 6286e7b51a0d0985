/* tuner-driver: runs hpod's tuners in-process on a synthetic objective, for
 * bench/tuner_quality. Each trial is one hpo_tuner_propose(), an evaluation
 * of the objective and one hpo_tuner_observe(), one trial at a time as
 * with a single worker, without sockets or a database.
 *
 *   tuner-driver --study FILE --objective NAME --tuner NAME --seeds A-B --trials N
 *       prints "seed trial value" for every trial;
 *   tuner-driver --objective NAME --evaluate
 *       reads one JSON object of parameter values per line from stdin and
 *       prints the objective's value at each, so that other implementations
 *       of the objectives can be checked against this one. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>

#include "hpo/error.h"
#include "hpo/log.h"
#include "hpo/study.h"
#include "hpo/tuner.h"
#include "objectives.h"

static int evaluate_lines(const hpo_objective *objective)
{
    static char line[1 << 16];
    char err[HPO_ERR_MAX];
    while (fgets(line, sizeof line, stdin) != NULL) {
        cJSON *params = cJSON_Parse(line);
        double value = NAN;
        if (params == NULL || hpo_objective_evaluate(objective, params, &value, err,
                                                     sizeof err) != 0) {
            line[strcspn(line, "\n")] = '\0';
            fprintf(stderr, "tuner-driver: cannot evaluate %s: %s\n", line,
                    params == NULL ? "invalid JSON" : err);
            cJSON_Delete(params);
            return 1;
        }
        printf("%.17g\n", value);
        cJSON_Delete(params);
    }
    return 0;
}

/* Runs one study of `trials` trials and prints its values. */
static int run_seed(const hpo_study *study, const hpo_objective *objective, const char *tuner_name,
                    unsigned long seed, int trials)
{
    char err[HPO_ERR_MAX];
    hpo_tuner *tuner = NULL;
    if (hpo_tuner_create(tuner_name, study, seed, &tuner, err, sizeof err) != 0) {
        fprintf(stderr, "tuner-driver: %s\n", err);
        return -1;
    }

    int rc = 0;
    for (int trial = 1; trial <= trials && rc == 0; trial++) {
        cJSON *values = NULL;
        double value = NAN;
        int proposed = hpo_tuner_propose(tuner, &values, err, sizeof err);
        if (proposed == 1) {
            fprintf(stderr, "tuner-driver: seed %lu: the space is exhausted after %d trials\n",
                    seed, trial - 1);
            break;
        }
        if (proposed != 0 ||
            hpo_objective_evaluate(objective, values, &value, err, sizeof err) != 0 ||
            hpo_tuner_observe(tuner, values, NULL, value, HPO_OBSERVE_OK, err, sizeof err) != 0) {
            fprintf(stderr, "tuner-driver: seed %lu, trial %d: %s\n", seed, trial, err);
            rc = -1;
        } else {
            printf("%lu %d %.17g\n", seed, trial, value);
        }
        cJSON_Delete(values);
    }
    fflush(stdout);
    hpo_tuner_destroy(&tuner);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"study", required_argument, NULL, 's'},
        {"objective", required_argument, NULL, 'o'},
        {"tuner", required_argument, NULL, 't'},
        {"seeds", required_argument, NULL, 'S'},
        {"trials", required_argument, NULL, 'n'},
        {"evaluate", no_argument, NULL, 'e'},
        {NULL, 0, NULL, 0},
    };
    const char *study_path = NULL, *objective_name = NULL, *tuner_name = "bayes";
    unsigned long first = 1, last = 1;
    int trials = 50;
    int evaluate = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (c) {
        case 's': study_path = optarg; break;
        case 'o': objective_name = optarg; break;
        case 't': tuner_name = optarg; break;
        case 'n': trials = atoi(optarg); break;
        case 'e': evaluate = 1; break;
        case 'S':
            if (sscanf(optarg, "%lu-%lu", &first, &last) != 2)
                last = first = strtoul(optarg, NULL, 10);
            break;
        default:
            return 2;
        }
    }

    gsl_set_error_handler_off();
    hpo_log_init("tuner-driver", HPO_LOG_WARN);
    char err[HPO_ERR_MAX];
    const hpo_objective *objective = hpo_objective_find(objective_name, err, sizeof err);
    if (objective == NULL) {
        fprintf(stderr, "tuner-driver: %s\n", err);
        return 2;
    }
    if (evaluate)
        return evaluate_lines(objective);
    if (study_path == NULL || trials < 1 || first > last) {
        fprintf(stderr, "usage: tuner-driver --study FILE --objective NAME --tuner NAME "
                        "--seeds A-B --trials N\n");
        return 2;
    }

    hpo_study *study = NULL;
    if (hpo_study_load_file(study_path, &study, err, sizeof err) != 0) {
        fprintf(stderr, "tuner-driver: %s\n", err);
        return 2;
    }
    int status = 0;
    for (unsigned long seed = first; seed <= last && status == 0; seed++)
        status = run_seed(study, objective, tuner_name, seed, trials) == 0 ? 0 : 1;
    hpo_study_destroy(&study);
    return status;
}
