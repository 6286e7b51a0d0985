/* Internals of the tuners: the state that every tuner shares and the
 * operations that each tuner implements. tuner.c keeps the known
 * configurations and rejects duplicates; a tuner only draws candidates. */
#ifndef HPO_TUNER_IMPL_H
#define HPO_TUNER_IMPL_H

#include <gsl/gsl_rng.h>

#include "hpo/tuner.h"

/* A configuration that was proposed or observed. */
typedef struct {
    cJSON *values;       /* owned; as proposed or observed */
    cJSON *active;       /* owned; the active parameters' values */
    char *key;           /* owned; hpo_study_config_key() of active */
    double objective;    /* NAN unless status is HPO_OBSERVE_OK */
    hpo_observe_status status;
} hpo_tuner_trial;

typedef struct {
    const char *name;
    /* Sets tuner->state up; tuner->study, seed and rng are ready. */
    int (*init)(hpo_tuner *tuner, char *err, size_t errlen);
    /* Draws one candidate (a value for every parameter) into *values_out.
     * It may repeat a known configuration; the caller then asks again. */
    int (*candidate)(hpo_tuner *tuner, cJSON **values_out, char *err, size_t errlen);
    /* Frees tuner->state; may be NULL. */
    void (*destroy)(hpo_tuner *tuner);
} hpo_tuner_ops;

struct hpo_tuner {
    const hpo_tuner_ops *ops;
    void *state;                 /* owned by the ops */
    const hpo_study *study;      /* borrowed */
    uint64_t seed;
    gsl_rng *rng;                /* owned; draws of all kinds */

    hpo_tuner_trial *trials;     /* owned; every known configuration */
    int n_trials, trials_capacity;
    int *slots;                  /* owned; hash table of trial indexes, -1 when empty */
    int n_slots;                 /* a power of two */

    /* Finite spaces small enough to list: every distinct configuration. */
    bool enumerated;
    int space_size;
    cJSON **space_values;        /* owned */
    char **space_keys;           /* owned */
    int *space_slots;            /* owned; hash table of listed indexes, -1 when empty */
    int n_space_slots;
    bool *space_known;           /* owned; listed configuration i is known */
    int n_space_known;
    bool exhausted;
};

extern const hpo_tuner_ops hpo_tuner_random_ops;
extern const hpo_tuner_ops hpo_tuner_bayes_ops;

#endif
