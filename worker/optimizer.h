/* Adam and SGD with momentum, with the update rules and defaults of Keras. */
#ifndef HPO_WORKER_OPTIMIZER_H
#define HPO_WORKER_OPTIMIZER_H

#include <stddef.h>

#include "hpo/model.h"

typedef struct {
    hpo_optimizer_kind kind;
    double learning_rate, momentum, beta1, beta2, epsilon;
    size_t n;
    long step;      /* updates applied so far */
    float *m;       /* adam: first moment; sgd: velocity */
    float *v;       /* adam: second moment; NULL for sgd */
} hpo_optimizer;

/* Sets up state for n parameters. The caller frees it with
 * hpo_optimizer_free(). */
int hpo_optimizer_init(hpo_optimizer *opt, const hpo_model_spec *spec, size_t n,
                       char *err, size_t errlen);
void hpo_optimizer_free(hpo_optimizer *opt);

/* Applies one update to params from grads. */
void hpo_optimizer_step(hpo_optimizer *opt, float *params, const float *grads);

#endif
