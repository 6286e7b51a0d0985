#include "kernels.h"

#include <string.h>

const hpo_kernels *hpo_kernels_find(const char *name)
{
    static const hpo_kernels *const all[] = {&hpo_kernels_blas, &hpo_kernels_reference};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
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
