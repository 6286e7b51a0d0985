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
    omp_set_num_threads(threads);
    return threads;
}
