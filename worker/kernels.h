/* Layer kernels behind one interface, so that backends can be swapped.
 *
 * Tensors are float32 in NHWC order (batch, height, width, channels).
 * Convolution weights are [kernel][kernel][in_c][filters] row-major (the
 * Keras HWIO layout), dense weights [in][out]. Backward functions
 * overwrite dw and db, and write dx unless it is NULL.
 *
 * Backends: "reference" (plain loops straight from the definitions; the
 * oracle in tests), "blas" (im2col + cblas_sgemm) and, when oneDNN is
 * found at build time, "dnnl" (oneDNN convolution primitives). Pooling,
 * activations and the loss are the same loops for all of them
 * (layers.h). */
#ifndef HPO_WORKER_KERNELS_H
#define HPO_WORKER_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hpo/model.h"
#include "layers.h"

typedef struct {
    int in_h, in_w, in_c;
    int out_h, out_w, out_c; /* out_c is the number of filters */
    int kernel, stride;
    int pad_top, pad_left;   /* zero padding before the first row/column */
    hpo_activation activation; /* applied to the output by conv2d_forward,
                                  fused into the convolution where the
                                  backend can (relu, tanh or linear) */
    bool bf16;                 /* compute in bfloat16 (dnnl backend only) */
} hpo_conv_geom;

typedef struct {
    const char *name;

    /* Scratch floats that conv2d_forward/backward need for a batch of n. */
    size_t (*conv2d_scratch_floats)(const hpo_conv_geom *g, int n);

    /* y = activation(conv(x, w) + b), with cross-correlation as in Keras
     * (no kernel flip). The backward pass takes dy with respect to the
     * pre-activation values: the caller applies the activation's
     * derivative first. */
    void (*conv2d_forward)(const hpo_conv_geom *g, int n, const float *x,
                           const float *w, const float *b, float *y, float *scratch);
    void (*conv2d_backward)(const hpo_conv_geom *g, int n, const float *x,
                            const float *w, const float *dy, float *dx, float *dw,
                            float *db, float *scratch);

    /* Optional, NULL where absent: conv2d_forward followed by max or min
     * pooling p, writing only the pooled output z and arg, as
     * hpo_pool_forward() would. The convolution's own output is not
     * written. Returns false, having written nothing, where the backend
     * cannot fuse this pair. */
    bool (*conv2d_pool_forward)(const hpo_conv_geom *g, hpo_pool_kind kind,
                                const hpo_pool_geom *p, int n, const float *x, const float *w,
                                const float *b, float *z, int32_t *arg);

    /* Optional, NULL where absent: the weight gradient of convolution g
     * when max or min pooling p follows it and no input gradient is
     * needed. It reads the pooling's gradient dz (with the activation
     * derivative applied) and its arg, and never writes the gradient of
     * the convolution's output. Returns false, having written nothing,
     * where the backend cannot do this pair. */
    bool (*conv2d_pool_backward_weights)(const hpo_conv_geom *g, hpo_pool_kind kind,
                                         const hpo_pool_geom *p, int n, const float *x,
                                         const float *dz, const int32_t *arg, float *dw,
                                         float *db);

    /* y[n][out] = x[n][in] . w[in][out] + b[out] */
    void (*dense_forward)(int n, int in, int out, const float *x, const float *w,
                          const float *b, float *y);
    void (*dense_backward)(int n, int in, int out, const float *x, const float *w,
                           const float *dy, float *dx, float *dw, float *db);
} hpo_kernels;

extern const hpo_kernels hpo_kernels_reference;
extern const hpo_kernels hpo_kernels_blas;
#if HPO_HAVE_DNNL
extern const hpo_kernels hpo_kernels_dnnl;
#endif

/* Returns the backend called name, or NULL. NULL or "default" selects the
 * fastest backend built: dnnl when oneDNN was found, else blas. */
const hpo_kernels *hpo_kernels_find(const char *name);

/* Checks that backend k can train at `precision` on this CPU. Returns -1
 * with a message naming the fix otherwise. */
int hpo_kernels_check_precision(const hpo_kernels *k, hpo_precision precision, char *err,
                                size_t errlen);

#if HPO_HAVE_DNNL
/* Whether oneDNN finds native bfloat16 instructions (AVX512_BF16 or AMX). */
bool hpo_dnnl_has_bf16(void);
#endif

/* Lists the names of the backends built, NULL-terminated. */
extern const char *const hpo_kernels_names[];

/* Computes the TensorFlow padding of one axis: valid pads nothing, same
 * pads max((out - 1) * stride + window - in, 0) in total, the smaller half
 * before. Returns the padding before the first element. */
int hpo_padding_before(int in, int out, int window, int stride, int same);

#endif
