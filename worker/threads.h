/* Thread count of the compute libraries. */
#ifndef HPO_WORKER_THREADS_H
#define HPO_WORKER_THREADS_H

/* Sets the threads of OpenBLAS and OpenMP to `threads`, or to one per
 * online CPU when threads <= 0. Returns the count applied. Kept in its own
 * file because OpenBLAS's cblas.h conflicts with GSL's gsl_cblas.h. */
int hpo_threads_apply(int threads);

#endif
