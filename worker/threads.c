#include "threads.h"

#include <cblas.h>
#include <omp.h>
#include <unistd.h>

#include "hpo/log.h"

#if defined(__SSE2__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

/* Sets the calling thread to flush denormal results and inputs to zero.
 * As training goes on, Adam's second moments and some gradients fall
 * below FLT_MIN, and every operation on such a value takes a slow
 * microcode path. Without this, epochs 3 to 5 of the small model ran 2.5
 * times slower than the first two, with 43% of the time in the optimizer.
 * Flushed values are below 1.2e-38, far under float32's resolution of
 * the sums they enter. */
static void flush_denormals(void)
{
#if defined(__SSE2__)
    _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
    _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
#endif
}

int hpo_threads_apply(int threads, bool openmp_compute)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (threads <= 0)
        threads = cpus > 0 ? (int)cpus : 1;
    else if (cpus > 0 && threads > cpus)
        hpo_log_warn("%d compute threads on %ld CPUs: the threads take turns on the CPUs "
                     "and wait for each other at every layer, which makes training many "
                     "times slower; use --threads %ld or fewer",
                     threads, cpus, cpus);

    /* Only one of the two thread pools gets the threads. With both OpenMP
     * and OpenBLAS threads on 2 CPUs, their idle threads spin against each
     * other: a 2-thread epoch of the small model on the BLAS backend ran 2x
     * slower than a 1-thread one, and 1.3x faster once OpenMP had one
     * thread. */
    openblas_set_num_threads(openmp_compute ? 1 : threads);
    omp_set_num_threads(openmp_compute ? threads : 1);

    /* The floating-point mode is per thread, so every OpenMP thread of the
     * calling thread's team sets its own. */
    flush_denormals();
#pragma omp parallel
    flush_denormals();
    return threads;
}
