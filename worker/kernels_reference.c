/* Reference kernels: plain loops that follow the definitions, used as the
 * oracle for faster backends. Slow on purpose; never used for training. */
#include <string.h>

#include "kernels.h"
#include "layers.h"

static size_t ref_conv2d_scratch_floats(const hpo_conv_geom *g, int n)
{
    return 0;
}

/* y[i,oy,ox,f] = b[f] + sum_{ky,kx,c} x[i, oy*s+ky-pt, ox*s+kx-pl, c] * w[ky,kx,c,f] */
static void ref_conv2d_forward(const hpo_conv_geom *g, int n, const float *x,
                               const float *w, const float *b, float *y, float *scratch)
{
    for (int i = 0; i < n; i++)
        for (int oy = 0; oy < g->out_h; oy++)
            for (int ox = 0; ox < g->out_w; ox++)
                for (int f = 0; f < g->out_c; f++) {
                    double sum = b[f];
                    for (int ky = 0; ky < g->kernel; ky++)
                        for (int kx = 0; kx < g->kernel; kx++) {
                            int iy = oy * g->stride + ky - g->pad_top;
                            int ix = ox * g->stride + kx - g->pad_left;
                            if (iy < 0 || iy >= g->in_h || ix < 0 || ix >= g->in_w)
                                continue;
                            for (int c = 0; c < g->in_c; c++)
                                sum += (double)x[((size_t)(i * g->in_h + iy) * g->in_w + ix) *
                                                     g->in_c + c] *
                                       w[((size_t)(ky * g->kernel + kx) * g->in_c + c) *
                                             g->out_c + f];
                        }
                    y[((size_t)(i * g->out_h + oy) * g->out_w + ox) * g->out_c + f] = (float)sum;
                }
    hpo_activation_forward(g->activation, (size_t)n * g->out_h * g->out_w * g->out_c, y);
}

static void ref_conv2d_backward(const hpo_conv_geom *g, int n, const float *x,
                                const float *w, const float *dy, float *dx, float *dw,
                                float *db, float *scratch)
{
    size_t w_size = (size_t)g->kernel * g->kernel * g->in_c * g->out_c;
    memset(dw, 0, w_size * sizeof *dw);
    memset(db, 0, (size_t)g->out_c * sizeof *db);
    if (dx != NULL)
        memset(dx, 0, (size_t)n * g->in_h * g->in_w * g->in_c * sizeof *dx);

    for (int i = 0; i < n; i++)
        for (int oy = 0; oy < g->out_h; oy++)
            for (int ox = 0; ox < g->out_w; ox++)
                for (int f = 0; f < g->out_c; f++) {
                    float d = dy[((size_t)(i * g->out_h + oy) * g->out_w + ox) * g->out_c + f];
                    db[f] += d;
                    for (int ky = 0; ky < g->kernel; ky++)
                        for (int kx = 0; kx < g->kernel; kx++) {
                            int iy = oy * g->stride + ky - g->pad_top;
                            int ix = ox * g->stride + kx - g->pad_left;
                            if (iy < 0 || iy >= g->in_h || ix < 0 || ix >= g->in_w)
                                continue;
                            for (int c = 0; c < g->in_c; c++) {
                                size_t xi = ((size_t)(i * g->in_h + iy) * g->in_w + ix) *
                                                g->in_c + c;
                                size_t wi = ((size_t)(ky * g->kernel + kx) * g->in_c + c) *
                                                g->out_c + f;
                                dw[wi] += d * x[xi];
                                if (dx != NULL)
                                    dx[xi] += d * w[wi];
                            }
                        }
                }
}

static void ref_dense_forward(int n, int in, int out, const float *x, const float *w,
                              const float *b, float *y)
{
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double sum = b[o];
            for (int k = 0; k < in; k++)
                sum += (double)x[(size_t)i * in + k] * w[(size_t)k * out + o];
            y[(size_t)i * out + o] = (float)sum;
        }
}

static void ref_dense_backward(int n, int in, int out, const float *x, const float *w,
                               const float *dy, float *dx, float *dw, float *db)
{
    for (int o = 0; o < out; o++) {
        double sum = 0.0;
        for (int i = 0; i < n; i++)
            sum += dy[(size_t)i * out + o];
        db[o] = (float)sum;
    }
    for (int k = 0; k < in; k++)
        for (int o = 0; o < out; o++) {
            double sum = 0.0;
            for (int i = 0; i < n; i++)
                sum += (double)x[(size_t)i * in + k] * dy[(size_t)i * out + o];
            dw[(size_t)k * out + o] = (float)sum;
        }
    if (dx == NULL)
        return;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < in; k++) {
            double sum = 0.0;
            for (int o = 0; o < out; o++)
                sum += (double)dy[(size_t)i * out + o] * w[(size_t)k * out + o];
            dx[(size_t)i * in + k] = (float)sum;
        }
}

const hpo_kernels hpo_kernels_reference = {
    .name = "reference",
    .conv2d_scratch_floats = ref_conv2d_scratch_floats,
    .conv2d_forward = ref_conv2d_forward,
    .conv2d_backward = ref_conv2d_backward,
    .dense_forward = ref_dense_forward,
    .dense_backward = ref_dense_backward,
};
