/* The tuner configuration that hpod stores with a study: the tuner's name
 * and the options that decide its proposals, beyond the study file and the
 * seed. A resumed study recreates its tuner from the stored configuration,
 * so neither another --tuner nor a newer hpod with other defaults changes
 * how the study proposes trials. docs/storage.md shows the stored JSON. */
#ifndef HPO_DAEMON_STUDY_TUNER_H
#define HPO_DAEMON_STUDY_TUNER_H

#include <stddef.h>
#include <stdint.h>

#include "hpo/study.h"
#include "hpo/tuner.h"
#include "tuner_bayes.h"

typedef struct {
    const char *name;         /* "bayes" or "random"; a static string */
    hpo_bayes_options bayes;  /* used when name is "bayes" */
} hpo_tuner_config;

/* Sets *config to the named tuner with its default options; -1 for a name
 * that no tuner has. */
int hpo_tuner_config_init(hpo_tuner_config *config, const char *name,
                          char *err, size_t errlen);

/* Sets *config from a stored name and options text, a JSON object as
 * hpo_tuner_config_options_text() writes it. A member missing from the
 * object keeps its default. An unknown member, a wrong type or an invalid
 * value is an error. */
int hpo_tuner_config_parse(hpo_tuner_config *config, const char *name,
                           const char *options_text, char *err, size_t errlen);

/* Writes the options as compact JSON text: {} for random; for bayes,
 * initial_trials, acquisition, ucb_beta, restarts, sobol_points,
 * perturbations, local_starts and ranked. The caller frees the text with
 * cJSON_free(). Returns NULL when out of memory. */
char *hpo_tuner_config_options_text(const hpo_tuner_config *config);

/* Creates the configured tuner for study, as hpo_tuner_create() does, and
 * applies the options. The caller frees *out with hpo_tuner_destroy(). */
int hpo_tuner_config_create(const hpo_tuner_config *config, const hpo_study *study,
                            uint64_t seed, hpo_tuner **out, char *err, size_t errlen);

/* Replaces the automatic choices in config with the values that tuner,
 * created from config, settled on: the bayes design size when
 * initial_trials is 0. A study stores the result, so that a later hpod
 * with another sizing rule keeps the design size. */
void hpo_tuner_config_settle(hpo_tuner_config *config, const hpo_tuner *tuner);

#endif
