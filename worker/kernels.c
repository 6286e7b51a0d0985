#include "kernels.h"

#include <string.h>

#include "hpo/error.h"

/* Fastest first: the first entry is the default. */
static const hpo_kernels *const all_kernels[] = {
#if HPO_HAVE_DNNL
    &hpo_kernels_dnnl,
#endif
    &hpo_kernels_blas,
    &hpo_kernels_reference,
};

const char *const hpo_kernels_names[] = {
#if HPO_HAVE_DNNL
    "dnnl",
#endif
    "blas",
    "reference",
    NULL,
};

const hpo_kernels *hpo_kernels_find(const char *name)
{
    const hpo_kernels *const *all = all_kernels;
    if (name == NULL || strcmp(name, "default") == 0)
        return all[0];
    for (size_t i = 0; i < sizeof all_kernels / sizeof *all_kernels; i++) {
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    }
    return NULL;
}

int hpo_padding_before(int in, int out, int window, int stride, int same)
{
    if (!same)
        return 0;
    int total = (out - 1) * stride + window - in;
    return total > 0 ? total / 2 : 0;
}

int hpo_kernels_check_precision(const hpo_kernels *k, hpo_precision precision, char *err,
                                size_t errlen)
{
    if (precision == HPO_PRECISION_FLOAT32)
        return 0;
#if HPO_HAVE_DNNL
    if (k != &hpo_kernels_dnnl)
        return hpo_error(err, errlen, "precision bfloat16 needs the dnnl backend, not %s; "
                                      "drop --backend or use float32", k->name);
    if (!hpo_dnnl_has_bf16())
        return hpo_error(err, errlen, "precision bfloat16 needs a CPU with AVX512_BF16 or "
                                      "AMX, which this one lacks; use float32");
    return 0;
#else
    return hpo_error(err, errlen, "precision bfloat16 needs the dnnl backend, which this "
                                  "build lacks (install libdnnl-dev and rebuild); use float32");
#endif
}
