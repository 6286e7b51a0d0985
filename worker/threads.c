#include "threads.h"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

int hpo_threads_apply(int threads, bool openmp_compute)
{
    if (threads <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? (int)cpus : 1;
    }

    /* Only one of the two thread pools gets the threads. With both OpenMP
     * and OpenBLAS threads on 2 CPUs, their idle threads spin against each
     * other: a 2-thread epoch of the small model on the BLAS backend ran 2x
     * slower than a 1-thread one, and 1.3x faster once OpenMP had one
     * thread. */
    openblas_set_num_threads(openmp_compute ? 1 : threads);
    omp_set_num_threads(openmp_compute ? threads : 1);
    return threads;
}
