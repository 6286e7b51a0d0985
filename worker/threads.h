/* Thread count of the compute libraries. */
#ifndef HPO_WORKER_THREADS_H
#define HPO_WORKER_THREADS_H

#include <stdbool.h>

/* Sets the compute threads to `threads`, or to one per online CPU when
 * threads <= 0, and returns the count applied. With openmp_compute (the
 * oneDNN backend, whose kernels run on OpenMP) OpenMP gets the threads and
 * OpenBLAS one; otherwise OpenBLAS gets them and OpenMP one. Also sets
 * the calling thread and its OpenMP threads to flush denormal floats to
 * zero. Kept in its own file because OpenBLAS's cblas.h conflicts with
 * GSL's gsl_cblas.h. */
int hpo_threads_apply(int threads, bool openmp_compute);

#endif
