/* BLAS kernels: convolution as im2col + cblas_sgemm, dense layers as one
 * sgemm per batch. Threads come from OpenBLAS for the GEMMs and from
 * OpenMP for im2col/col2im. */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "conv_direct.h"
#include "kernels.h"
#include "layers.h"

/* Upper bound on the im2col buffer, in floats (16 MiB). Larger batches are
 * processed in chunks of whole images so that memory stays bounded. */
#define IM2COL_TARGET_FLOATS ((size_t)4 << 20)

static size_t col_floats_per_image(const hpo_conv_geom *g)
{
    return (size_t)g->out_h * g->out_w * g->kernel * g->kernel * g->in_c;
}

/* Images per im2col chunk. */
static int chunk_images(const hpo_conv_geom *g, int n)
{
    size_t per_image = col_floats_per_image(g);
    size_t chunk = IM2COL_TARGET_FLOATS / (per_image ? per_image : 1);
    if (chunk < 1)
        chunk = 1;
    return chunk < (size_t)n ? (int)chunk : n;
}

/* A 1x1 convolution with stride 1 and no padding is a plain GEMM on x. */
static int conv_is_pointwise(const hpo_conv_geom *g)
{
    return g->kernel == 1 && g->stride == 1 && g->pad_top == 0 && g->pad_left == 0;
}

static size_t blas_conv2d_scratch_floats(const hpo_conv_geom *g, int n)
{
    if (conv_is_pointwise(g))
        return 0;
    return (size_t)chunk_images(g, n) * col_floats_per_image(g);
}

/* Writes one row per output pixel, each the kernel*kernel*in_c input
 * values under the window in (ky, kx, c) order, zeros where the window
 * covers padding. */
static void im2col(const hpo_conv_geom *g, int n, const float *x, float *col)
{
    const int k = g->kernel;
    const size_t c_bytes = (size_t)g->in_c * sizeof(float);
    const size_t row_len = (size_t)k * k * g->in_c;

#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++) {
        for (int oy = 0; oy < g->out_h; oy++) {
            const float *image = x + (size_t)i * g->in_h * g->in_w * g->in_c;
            float *row = col + ((size_t)(i * g->out_h + oy) * g->out_w) * row_len;
            for (int ox = 0; ox < g->out_w; ox++, row += row_len) {
                float *dst = row;
                for (int ky = 0; ky < k; ky++) {
                    int iy = oy * g->stride + ky - g->pad_top;
                    for (int kx = 0; kx < k; kx++, dst += g->in_c) {
                        int ix = ox * g->stride + kx - g->pad_left;
                        if (iy < 0 || iy >= g->in_h || ix < 0 || ix >= g->in_w)
                            memset(dst, 0, c_bytes);
                        else
                            memcpy(dst, image + ((size_t)iy * g->in_w + ix) * g->in_c, c_bytes);
                    }
                }
            }
        }
    }
}

/* Adds each im2col row back onto the input pixels it was copied from.
 * Images are independent, so they run in parallel without races. */
static void col2im(const hpo_conv_geom *g, int n, const float *col, float *dx)
{
    const int k = g->kernel;
    const size_t row_len = (size_t)k * k * g->in_c;
    const size_t image_size = (size_t)g->in_h * g->in_w * g->in_c;

#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *image = dx + (size_t)i * image_size;
        memset(image, 0, image_size * sizeof *image);
        const float *row = col + (size_t)i * g->out_h * g->out_w * row_len;
        for (int oy = 0; oy < g->out_h; oy++) {
            for (int ox = 0; ox < g->out_w; ox++, row += row_len) {
                const float *src = row;
                for (int ky = 0; ky < k; ky++) {
                    int iy = oy * g->stride + ky - g->pad_top;
                    for (int kx = 0; kx < k; kx++, src += g->in_c) {
                        int ix = ox * g->stride + kx - g->pad_left;
                        if (iy < 0 || iy >= g->in_h || ix < 0 || ix >= g->in_w)
                            continue;
                        float *dst = image + ((size_t)iy * g->in_w + ix) * g->in_c;
                        for (int c = 0; c < g->in_c; c++)
                            dst[c] += src[c];
                    }
                }
            }
        }
    }
}

static void blas_conv2d_forward(const hpo_conv_geom *g, int n, const float *x,
                                const float *w, const float *b, float *y, float *scratch)
{
    const int kkc = g->kernel * g->kernel * g->in_c;
    const int pixels = g->out_h * g->out_w;
    const size_t in_size = (size_t)g->in_h * g->in_w * g->in_c;
    const size_t out_size = (size_t)pixels * g->out_c;
    const int chunk = chunk_images(g, n);

    if (hpo_conv_direct_supports(g, omp_get_max_threads())) {
        hpo_conv_direct_forward(g, n, x, w, b, y);
        return;
    }
    hpo_bias_broadcast(n * pixels, g->out_c, b, y);
    for (int i0 = 0; i0 < n; i0 += chunk) {
        int m = n - i0 < chunk ? n - i0 : chunk;
        const float *col = x + i0 * in_size;
        if (!conv_is_pointwise(g)) {
            im2col(g, m, col, scratch);
            col = scratch;
        }
        /* y[rows][F] += col[rows][kkc] . w[kkc][F] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m * pixels, g->out_c, kkc,
                    1.0f, col, kkc, w, g->out_c, 1.0f, y + i0 * out_size, g->out_c);
    }
    hpo_activation_forward(g->activation, (size_t)n * out_size, y);
}

static void blas_conv2d_backward(const hpo_conv_geom *g, int n, const float *x,
                                 const float *w, const float *dy, float *dx, float *dw,
                                 float *db, float *scratch)
{
    const int kkc = g->kernel * g->kernel * g->in_c;
    const int pixels = g->out_h * g->out_w;
    const size_t in_size = (size_t)g->in_h * g->in_w * g->in_c;
    const size_t out_size = (size_t)pixels * g->out_c;
    const int chunk = chunk_images(g, n);
    const int pointwise = conv_is_pointwise(g);
    const bool direct = hpo_conv_direct_supports(g, omp_get_max_threads());

    if (direct) {
        hpo_conv_direct_backward_weights(g, n, x, dy, dw, db);
        if (dx == NULL)
            return;
    } else {
        hpo_column_sums(n * pixels, g->out_c, dy, db);
    }
    for (int i0 = 0; i0 < n; i0 += chunk) {
        int m = n - i0 < chunk ? n - i0 : chunk;
        int rows = m * pixels;
        const float *dy_chunk = dy + i0 * out_size;
        const float *col = x + i0 * in_size;
        if (!pointwise && !direct) {
            im2col(g, m, col, scratch);
            col = scratch;
        }

        /* dw[kkc][F] (+)= col^T . dy */
        if (!direct)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kkc, g->out_c, rows, 1.0f,
                        col, kkc, dy_chunk, g->out_c, i0 == 0 ? 0.0f : 1.0f, dw, g->out_c);
        if (dx == NULL)
            continue;

        /* dcol[rows][kkc] = dy . w^T, then scattered back onto dx. A
         * pointwise convolution writes dx directly. */
        float *dcol = pointwise ? dx + i0 * in_size : scratch;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, kkc, g->out_c, 1.0f,
                    dy_chunk, g->out_c, w, g->out_c, 0.0f, dcol, kkc);
        if (!pointwise)
            col2im(g, m, dcol, dx + i0 * in_size);
    }
}

static void blas_dense_forward(int n, int in, int out, const float *x, const float *w,
                               const float *b, float *y)
{
    hpo_bias_broadcast(n, out, b, y);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, out, in, 1.0f, x, in, w, out,
                1.0f, y, out);
}

static void blas_dense_backward(int n, int in, int out, const float *x, const float *w,
                                const float *dy, float *dx, float *dw, float *db)
{
    hpo_column_sums(n, out, dy, db);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, out, n, 1.0f, x, in, dy, out,
                0.0f, dw, out);
    if (dx != NULL)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, in, out, 1.0f, dy, out, w, out,
                    0.0f, dx, in);
}

const hpo_kernels hpo_kernels_blas = {
    .name = "blas",
    .conv2d_scratch_floats = blas_conv2d_scratch_floats,
    .conv2d_forward = blas_conv2d_forward,
    .conv2d_backward = blas_conv2d_backward,
    .conv2d_pool_forward = hpo_conv_direct_try_forward_pool,
    .conv2d_pool_backward_weights = hpo_conv_direct_try_pool_backward_weights,
    .dense_forward = blas_dense_forward,
    .dense_backward = blas_dense_backward,
};
