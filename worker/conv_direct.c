#include "conv_direct.h"

#include <stddef.h>
#include <stdlib.h>

#if defined(__AVX512F__)

#include <immintrin.h>
#include <omp.h>

enum {
    LANES = 16,    /* floats per AVX-512 register: one block of filters */
    PIXELS = 6,    /* output pixels that the forward pass sums at once */
    MAX_TAPS = 28, /* weight-gradient sums kept in registers per block */
};

/* Returns the largest number of kernel rows that divides the kernel size
 * and whose taps (kernel * channels per row) fit in MAX_TAPS registers.
 * The weight gradient handles the kernel in equal chunks of these rows. */
static inline int rows_per_chunk(int kernel, int channels)
{
    int rows = kernel;
    while (rows > 1 && (kernel % rows != 0 || rows * kernel * channels > MAX_TAPS))
        rows--;
    return rows;
}

/* The loops below are written for any kernel size K and channel count C,
 * and inlined into one function per (K, C) pair, so that the compiler
 * unrolls the tap loops and keeps every sum in a register. */

/* Computes output row oy of one image for all filters into y_row. With a
 * constant stride, every input of a block of pixels is addressed from one
 * pointer, so the VARIANT functions pass a literal 1 when the stride is
 * 1. */
static inline __attribute__((always_inline)) void
forward_row(const hpo_conv_geom *g, int image, int oy, const float *x, const float *w,
            const float *b, float *y_row, const int K, const int C, const int stride)
{
    const int taps_per_row = K * C, filters = g->out_c;
    const size_t in_row = (size_t)g->in_w * C;
    const bool relu = g->activation == HPO_ACT_RELU;
    const __m512 zero = _mm512_setzero_ps();

    const float *x_row = x + ((size_t)image * g->in_h + (size_t)oy * stride) * in_row;

    for (int fb = 0; fb < filters; fb += LANES) {
        /* This block's weights, tap by tap, so that each tap's vector
         * sits at a constant offset. */
        float wp[K * K * C * LANES] __attribute__((aligned(64)));
        for (int t = 0; t < K * K * C; t++)
            _mm512_store_ps(wp + t * LANES, _mm512_loadu_ps(w + (size_t)t * filters + fb));
        const __m512 bias = _mm512_loadu_ps(b + fb);
        int ox = 0;
        for (; ox + PIXELS <= g->out_w; ox += PIXELS) {
            __m512 acc[PIXELS];
#pragma GCC unroll 8
            for (int p = 0; p < PIXELS; p++)
                acc[p] = bias;
            for (int ky = 0; ky < K; ky++) {
                const float *xs = x_row + ky * in_row + (size_t)ox * stride * C;
                const float *ws = wp + ky * taps_per_row * LANES;
                /* Opaque to the optimizer, so that it addresses every
                 * load below from these two registers instead of
                 * keeping one induction pointer per load. */
                __asm__("" : "+r"(xs), "+r"(ws));
#pragma GCC unroll 28
                for (int j = 0; j < taps_per_row; j++) {
                    const __m512 wv = _mm512_load_ps(ws + j * LANES);
#pragma GCC unroll 8
                    for (int p = 0; p < PIXELS; p++)
                        acc[p] = _mm512_fmadd_ps(_mm512_set1_ps(xs[p * stride * C + j]),
                                                 wv, acc[p]);
                }
            }
            /* max(0, v) returns v when v is NaN, so divergence shows. */
#pragma GCC unroll 8
            for (int p = 0; p < PIXELS; p++)
                _mm512_storeu_ps(y_row + (size_t)(ox + p) * filters + fb,
                                 relu ? _mm512_max_ps(zero, acc[p]) : acc[p]);
        }
        for (; ox < g->out_w; ox++) {
            __m512 acc = bias;
            for (int ky = 0; ky < K; ky++) {
                const float *xs = x_row + ky * in_row + (size_t)ox * stride * C;
                const float *ws = wp + ky * taps_per_row * LANES;
                for (int j = 0; j < taps_per_row; j++)
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(xs[j]),
                                          _mm512_load_ps(ws + j * LANES), acc);
            }
            _mm512_storeu_ps(y_row + (size_t)ox * filters + fb,
                             relu ? _mm512_max_ps(zero, acc) : acc);
        }
    }
}

/* Limit on the convolution rows that the fused pooling keeps on a
 * thread's stack: pool size * out_w * filters floats. */
enum { POOL_ROWS_FLOATS = 16384 };

/* Pools `size` convolution rows (rows, each out_w * filters floats) into
 * output row py of z and arg, as hpo_pool_forward() would from the whole
 * convolution output: the first window element wins ties. */
static void pool_rows(const hpo_conv_geom *g, hpo_pool_kind kind, const hpo_pool_geom *p,
                      int py, const float *rows, float *z_row, int32_t *arg_row)
{
    const int filters = g->out_c;
    const size_t row_size = (size_t)g->out_w * filters;

    for (int px = 0; px < p->out_w; px++) {
        float *out = z_row + (size_t)px * filters;
        int32_t *out_arg = arg_row + (size_t)px * filters;
        const int iy0 = py * p->stride, ix0 = px * p->stride;
        const int32_t first = (int32_t)(((size_t)iy0 * g->out_w + ix0) * filters);

        for (int c = 0; c < filters; c++) {
            out[c] = rows[(size_t)ix0 * filters + c];
            out_arg[c] = first + c;
        }
        for (int q = 0; q < p->size; q++)
            for (int ix = ix0; ix < ix0 + p->size; ix++) {
                const float *in = rows + (size_t)q * row_size + (size_t)ix * filters;
                const int32_t base = (int32_t)(((size_t)(iy0 + q) * g->out_w + ix) * filters);
                for (int c = 0; c < filters; c++) {
                    bool better = kind == HPO_POOL_MAX ? in[c] > out[c] : in[c] < out[c];
                    out[c] = better ? in[c] : out[c];
                    out_arg[c] = better ? base + c : out_arg[c];
                }
            }
    }
}

/* Computes the weight gradient of one work item: a block of 16 filters
 * and a chunk of kernel rows. It sums over every pixel of the batch in a
 * fixed order. With `routed`, dy is the gradient of the pooling p after
 * the convolution, and each pixel's gradient is the pooled one where arg
 * names that pixel and zero elsewhere, as hpo_pool_backward() would write
 * it. Pixels in no window add nothing and are skipped. */
static inline __attribute__((always_inline)) void
weights_item(const hpo_conv_geom *g, int n, int item, const float *x, const float *dy,
             const hpo_pool_geom *p, const int32_t *arg, float *dw, float *db, const int K,
             const int C, const bool routed)
{
    const int taps_per_row = K * C, filters = g->out_c, stride = g->stride;
    const int R = rows_per_chunk(K, C), chunks = K / R;
    const size_t in_row = (size_t)g->in_w * C;
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
                                            15);

    const int fb = item / chunks * LANES, ky0 = item % chunks * R;
    __m512 acc[MAX_TAPS];
    __m512 bias_sum = _mm512_setzero_ps();
#pragma GCC unroll 28
    for (int t = 0; t < R * taps_per_row; t++)
        acc[t] = _mm512_setzero_ps();

    for (int image = 0; image < n; image++) {
        for (int oy = 0; oy < g->out_h; oy++) {
            const float *x_row =
                x + ((size_t)image * g->in_h + (size_t)oy * stride + ky0) * in_row;
            const float *d_row;
            const int32_t *arg_row = NULL;
            if (routed) {
                int py = oy / p->stride;
                if (oy % p->stride >= p->size || py >= p->out_h)
                    continue;
                size_t offset = ((size_t)image * p->out_h + py) * p->out_w * filters + fb;
                d_row = dy + offset;
                arg_row = arg + offset;
            } else {
                d_row = dy + ((size_t)image * g->out_h + oy) * g->out_w * filters + fb;
            }

            /* px and phase: the pooling window of pixel ox, and the
             * pixel's column within it. */
            int px = 0, phase = 0;
            for (int ox = 0; ox < g->out_w; ox++) {
                __m512 d;
                if (routed) {
                    bool in_window = phase < p->size && px < p->out_w;
                    size_t at = (size_t)px * filters;
                    if (++phase == p->stride) {
                        phase = 0;
                        px++;
                    }
                    if (!in_window)
                        continue;
                    __m512i index = _mm512_add_epi32(
                        _mm512_set1_epi32((oy * g->out_w + ox) * filters + fb), lanes);
                    __mmask16 taken =
                        _mm512_cmpeq_epi32_mask(_mm512_loadu_si512(arg_row + at), index);
                    d = _mm512_maskz_loadu_ps(taken, d_row + at);
                } else {
                    d = _mm512_loadu_ps(d_row + (size_t)ox * filters);
                }
                const float *xs = x_row + (size_t)ox * stride * C;
                bias_sum = _mm512_add_ps(bias_sum, d);
#pragma GCC unroll 28
                for (int t = 0; t < R * taps_per_row; t++)
                    acc[t] = _mm512_fmadd_ps(
                        _mm512_set1_ps(xs[t / taps_per_row * in_row + t % taps_per_row]),
                        d, acc[t]);
            }
        }
    }

    for (int t = 0; t < R * taps_per_row; t++)
        _mm512_storeu_ps(dw + ((size_t)ky0 * taps_per_row + t) * filters + fb, acc[t]);
    if (ky0 == 0)
        _mm512_storeu_ps(db + fb, bias_sum);
}

typedef struct {
    int kernel, channels;
    void (*forward)(const hpo_conv_geom *g, int n, const float *x, const float *w,
                    const float *b, float *y);
    void (*forward_pool)(const hpo_conv_geom *g, hpo_pool_kind kind, const hpo_pool_geom *p,
                         int n, const float *x, const float *w, const float *b, float *z,
                         int32_t *arg);
    void (*weights)(const hpo_conv_geom *g, int n, const float *x, const float *dy, float *dw,
                    float *db);
    void (*weights_pool)(const hpo_conv_geom *g, const hpo_pool_geom *p, int n, const float *x,
                         const float *dz, const int32_t *arg, float *dw, float *db);
} variant;

/* The parallel loops sit here rather than in the inlined functions,
 * because OpenMP outlines a loop's body before inlining: written there,
 * one outlined body would serve every (K, C) pair with K and C unknown. */
#define VARIANT(K, C)                                                                     \
    static void forward_k##K##c##C(const hpo_conv_geom *g, int n, const float *x,         \
                                   const float *w, const float *b, float *y)              \
    {                                                                                     \
        _Pragma("omp parallel for schedule(static)")                                      \
        for (int r = 0; r < n * g->out_h; r++) {                                          \
            float *y_row = y + (size_t)r * g->out_w * g->out_c;                           \
            if (g->stride == 1)                                                           \
                forward_row(g, r / g->out_h, r % g->out_h, x, w, b, y_row, K, C, 1);      \
            else                                                                          \
                forward_row(g, r / g->out_h, r % g->out_h, x, w, b, y_row, K, C,          \
                            g->stride);                                                   \
        }                                                                                 \
    }                                                                                     \
    static void forward_pool_k##K##c##C(const hpo_conv_geom *g, hpo_pool_kind kind,       \
                                        const hpo_pool_geom *p, int n, const float *x,    \
                                        const float *w, const float *b, float *z,         \
                                        int32_t *arg)                                     \
    {                                                                                     \
        const size_t z_row = (size_t)p->out_w * g->out_c;                                 \
        _Pragma("omp parallel for schedule(static)")                                      \
        for (int r = 0; r < n * p->out_h; r++) {                                          \
            float rows[POOL_ROWS_FLOATS] __attribute__((aligned(64)));                    \
            const int image = r / p->out_h, py = r % p->out_h;                            \
            for (int q = 0; q < p->size; q++) {                                           \
                float *row = rows + (size_t)q * g->out_w * g->out_c;                      \
                int oy = py * p->stride + q;                                              \
                if (g->stride == 1)                                                       \
                    forward_row(g, image, oy, x, w, b, row, K, C, 1);                     \
                else                                                                      \
                    forward_row(g, image, oy, x, w, b, row, K, C, g->stride);             \
            }                                                                             \
            pool_rows(g, kind, p, py, rows, z + (size_t)r * z_row,                        \
                      arg + (size_t)r * z_row);                                           \
        }                                                                                 \
    }                                                                                     \
    static void weights_k##K##c##C(const hpo_conv_geom *g, int n, const float *x,         \
                                   const float *dy, float *dw, float *db)                 \
    {                                                                                     \
        const int items = g->out_c / LANES * (K / rows_per_chunk(K, C));                  \
        _Pragma("omp parallel for schedule(static)")                                      \
        for (int item = 0; item < items; item++)                                          \
            weights_item(g, n, item, x, dy, NULL, NULL, dw, db, K, C, false);             \
    }                                                                                     \
    static void weights_pool_k##K##c##C(const hpo_conv_geom *g, const hpo_pool_geom *p,   \
                                        int n, const float *x, const float *dz,           \
                                        const int32_t *arg, float *dw, float *db)         \
    {                                                                                     \
        const int items = g->out_c / LANES * (K / rows_per_chunk(K, C));                  \
        _Pragma("omp parallel for schedule(static)")                                      \
        for (int item = 0; item < items; item++)                                          \
            weights_item(g, n, item, x, dz, p, arg, dw, db, K, C, true);                  \
    }

#define VARIANTS_FOR_KERNEL(K) VARIANT(K, 1) VARIANT(K, 2) VARIANT(K, 3) VARIANT(K, 4)
VARIANTS_FOR_KERNEL(1)
VARIANTS_FOR_KERNEL(3)
VARIANTS_FOR_KERNEL(5)
VARIANTS_FOR_KERNEL(7)

#define ENTRY(K, C)                                                                       \
    {K, C, forward_k##K##c##C, forward_pool_k##K##c##C, weights_k##K##c##C,                \
     weights_pool_k##K##c##C}
#define ENTRIES_FOR_KERNEL(K) ENTRY(K, 1), ENTRY(K, 2), ENTRY(K, 3), ENTRY(K, 4)
static const variant variants[] = {
    ENTRIES_FOR_KERNEL(1), ENTRIES_FOR_KERNEL(3), ENTRIES_FOR_KERNEL(5), ENTRIES_FOR_KERNEL(7),
};

static const variant *variant_find(int kernel, int channels)
{
    for (size_t i = 0; i < sizeof variants / sizeof *variants; i++)
        if (variants[i].kernel == kernel && variants[i].channels == channels)
            return &variants[i];
    return NULL;
}

bool hpo_conv_direct_supports(const hpo_conv_geom *g, int threads)
{
    if (variant_find(g->kernel, g->in_c) == NULL || g->bf16 || g->out_c % LANES != 0)
        return false;
    if (g->activation != HPO_ACT_RELU && g->activation != HPO_ACT_LINEAR)
        return false;
    if (g->pad_top != 0 || g->pad_left != 0 ||
        (g->out_h - 1) * g->stride + g->kernel > g->in_h ||
        (g->out_w - 1) * g->stride + g->kernel > g->in_w)
        return false;
    return g->out_c / LANES * (g->kernel / rows_per_chunk(g->kernel, g->in_c)) >= threads;
}

void hpo_conv_direct_forward(const hpo_conv_geom *g, int n, const float *x, const float *w,
                             const float *b, float *y)
{
    variant_find(g->kernel, g->in_c)->forward(g, n, x, w, b, y);
}

void hpo_conv_direct_backward_weights(const hpo_conv_geom *g, int n, const float *x,
                                      const float *dy, float *dw, float *db)
{
    variant_find(g->kernel, g->in_c)->weights(g, n, x, dy, dw, db);
}

bool hpo_conv_direct_pool_supports(const hpo_conv_geom *g, hpo_pool_kind kind,
                                   const hpo_pool_geom *p, int threads)
{
    return hpo_conv_direct_supports(g, threads) && kind != HPO_POOL_AVG &&
           p->stride >= p->size && p->pad_top == 0 && p->pad_left == 0 &&
           (size_t)p->size * g->out_w * g->out_c <= POOL_ROWS_FLOATS;
}

bool hpo_conv_direct_try_forward_pool(const hpo_conv_geom *g, hpo_pool_kind kind,
                                      const hpo_pool_geom *p, int n, const float *x,
                                      const float *w, const float *b, float *z, int32_t *arg)
{
    if (!hpo_conv_direct_pool_supports(g, kind, p, omp_get_max_threads()))
        return false;
    variant_find(g->kernel, g->in_c)->forward_pool(g, kind, p, n, x, w, b, z, arg);
    return true;
}

bool hpo_conv_direct_try_pool_backward_weights(const hpo_conv_geom *g, hpo_pool_kind kind,
                                               const hpo_pool_geom *p, int n, const float *x,
                                               const float *dz, const int32_t *arg, float *dw,
                                               float *db)
{
    if (!hpo_conv_direct_pool_supports(g, kind, p, omp_get_max_threads()))
        return false;
    variant_find(g->kernel, g->in_c)->weights_pool(g, p, n, x, dz, arg, dw, db);
    return true;
}

#else /* no AVX-512: every convolution goes to the backend's own kernels */

bool hpo_conv_direct_supports(const hpo_conv_geom *g, int threads)
{
    (void)g;
    (void)threads;
    return false;
}

/* Unreachable: callers check hpo_conv_direct_supports() first. */
void hpo_conv_direct_forward(const hpo_conv_geom *g, int n, const float *x, const float *w,
                             const float *b, float *y)
{
    abort();
}

void hpo_conv_direct_backward_weights(const hpo_conv_geom *g, int n, const float *x,
                                      const float *dy, float *dw, float *db)
{
    abort();
}

bool hpo_conv_direct_pool_supports(const hpo_conv_geom *g, hpo_pool_kind kind,
                                   const hpo_pool_geom *p, int threads)
{
    return false;
}

bool hpo_conv_direct_try_forward_pool(const hpo_conv_geom *g, hpo_pool_kind kind,
                                      const hpo_pool_geom *p, int n, const float *x,
                                      const float *w, const float *b, float *z, int32_t *arg)
{
    return false;
}

bool hpo_conv_direct_try_pool_backward_weights(const hpo_conv_geom *g, hpo_pool_kind kind,
                                               const hpo_pool_geom *p, int n, const float *x,
                                               const float *dz, const int32_t *arg, float *dw,
                                               float *db)
{
    return false;
}

#endif
