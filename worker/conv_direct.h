/* Direct convolution for layers with few input channels, such as the
 * first layer of an image net, which reads 3 channels.
 *
 * With 3 input channels and a 3x3 kernel, a GEMM-shaped convolution has a
 * reduction of only 27, and oneDNN 2.6 runs the weight gradient of the
 * small CIFAR-10 model's first layer at about a third of the FMA peak.
 * These loops keep their sums in AVX-512 registers: the forward pass sums
 * 6 output pixels of 16 filters at once, and the weight gradient up to 28
 * taps of 16 filters. Each input value is loaded once per use and no
 * im2col copy is made.
 *
 * The dnnl and blas backends call these loops for the geometries that
 * hpo_conv_direct_supports() accepts, and their own kernels otherwise.
 * Same layouts as kernels.h: NHWC activations, HWIO weights. */
#ifndef HPO_WORKER_CONV_DIRECT_H
#define HPO_WORKER_CONV_DIRECT_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels.h"

/* Returns whether these loops handle geometry g with `threads` OpenMP
 * threads. They need a build with AVX-512, float32, relu or linear
 * activation, no padding, a number of filters that is a multiple of 16,
 * 1 to 4 input channels and a kernel size of 1, 3, 5 or 7. The weight
 * gradient splits its work by blocks of 16 filters and chunks of kernel
 * rows, so it also needs at least `threads` of those work items. */
bool hpo_conv_direct_supports(const hpo_conv_geom *g, int threads);

/* Computes y = activation(conv(x, w) + b) for n images. */
void hpo_conv_direct_forward(const hpo_conv_geom *g, int n, const float *x, const float *w,
                             const float *b, float *y);

/* Computes dw and db from x and dy (the gradient w.r.t. the
 * pre-activation output), overwriting both. Each element is summed by one thread in a fixed order,
 * so results do not depend on the thread count. */
void hpo_conv_direct_backward_weights(const hpo_conv_geom *g, int n, const float *x,
                                      const float *dy, float *dw, float *db);

/* Returns whether hpo_conv_direct_try_forward_pool() fuses conv g with
 * the pooling p after it. The convolution must be supported, and the
 * pooling must be max or min, without padding and with windows that do not
 * overlap. `size` output rows of the convolution must fit on a thread's
 * stack. */
bool hpo_conv_direct_pool_supports(const hpo_conv_geom *g, hpo_pool_kind kind,
                                   const hpo_pool_geom *p, int threads);

/* Computes conv g and then pooling p in one pass, writing only the pooled
 * output z and arg, the same values hpo_pool_forward() writes from the
 * convolution's output. That output is never stored: each thread keeps
 * the rows of one window row on its stack. Returns false, having written
 * nothing, where hpo_conv_direct_pool_supports() is false for the
 * current OpenMP thread count. */
bool hpo_conv_direct_try_forward_pool(const hpo_conv_geom *g, hpo_pool_kind kind,
                                      const hpo_pool_geom *p, int n, const float *x,
                                      const float *w, const float *b, float *z, int32_t *arg);

/* Computes dw and db of conv g from the gradient dz of the max or min
 * pooling p after it (with the activation derivative already applied) and
 * the pooling's arg, without the convolution-sized gradient that
 * hpo_pool_backward() would write. Sums are bit-for-bit those of
 * hpo_conv_direct_backward_weights() on that gradient. Returns false,
 * having written nothing, where hpo_conv_direct_pool_supports() is false
 * for the current OpenMP thread count. */
bool hpo_conv_direct_try_pool_backward_weights(const hpo_conv_geom *g, hpo_pool_kind kind,
                                               const hpo_pool_geom *p, int n, const float *x,
                                               const float *dz, const int32_t *arg, float *dw,
                                               float *db);

#endif
