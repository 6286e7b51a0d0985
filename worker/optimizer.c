#include "optimizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hpo/error.h"

int hpo_optimizer_init(hpo_optimizer *opt, const hpo_model_spec *spec, size_t n,
                       char *err, size_t errlen)
{
    memset(opt, 0, sizeof *opt);
    opt->kind = spec->optimizer;
    opt->learning_rate = spec->learning_rate;
    opt->momentum = spec->momentum;
    opt->beta1 = spec->beta1;
    opt->beta2 = spec->beta2;
    opt->epsilon = spec->epsilon;
    opt->n = n;
    opt->m = calloc(n ? n : 1, sizeof *opt->m);
    if (opt->kind == HPO_OPT_ADAM)
        opt->v = calloc(n ? n : 1, sizeof *opt->v);
    if (opt->m == NULL || (opt->kind == HPO_OPT_ADAM && opt->v == NULL)) {
        hpo_optimizer_free(opt);
        return hpo_error(err, errlen, "out of memory for the optimizer state of %zu parameters",
                         n);
    }
    return 0;
}

void hpo_optimizer_free(hpo_optimizer *opt)
{
    free(opt->m);
    free(opt->v);
    opt->m = NULL;
    opt->v = NULL;
}

void hpo_optimizer_step(hpo_optimizer *opt, float *restrict params, const float *restrict grads)
{
    opt->step++;

    if (opt->kind == HPO_OPT_SGD) {
        /* Keras SGD: v = momentum * v - lr * g; w += v. */
        const float mu = (float)opt->momentum, lr = (float)opt->learning_rate;
        float *restrict m = opt->m;
        const size_t n = opt->n;
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) {
            m[i] = mu * m[i] - lr * grads[i];
            params[i] += m[i];
        }
        return;
    }

    /* Keras Adam (Kingma and Ba, 2015, section 2 with the efficient
     * ordering): lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t),
     * m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
     * w -= lr_t * m / (sqrt(v) + eps). */
    const double t = (double)opt->step;
    const float lr_t = (float)(opt->learning_rate * sqrt(1.0 - pow(opt->beta2, t)) /
                               (1.0 - pow(opt->beta1, t)));
    const float b1 = (float)opt->beta1, b2 = (float)opt->beta2;
    const float eps = (float)opt->epsilon;
    float *restrict m = opt->m, *restrict v = opt->v;
    const size_t n = opt->n;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        params[i] -= lr_t * m[i] / (sqrtf(v[i]) + eps);
    }
}
