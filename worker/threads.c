#include "threads.h"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

int hpo_threads_apply(int threads)
{
    if (threads <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? (int)cpus : 1;
    }
    openblas_set_num_threads(threads);

    /* NOTE: the OpenMP loops (im2col, pooling, activations) run on one
     * thread. With both OpenMP and OpenBLAS threads on 2 CPUs, their idle
     * threads spin against each other and a 2-thread epoch of the small
     * model ran 2x slower than a 1-thread one; with OpenMP at one thread,
     * 2 threads ran 1.3x faster than 1. */
    omp_set_num_threads(1);
    return threads;
}
