#include "layers.h"

#include <stdbool.h>
#include <math.h>
#include <string.h>

/* Clips the window of output (oy, ox) to the image: rows [*y0, *y1),
 * columns [*x0, *x1). */
static void pool_window(const hpo_pool_geom *g, int oy, int ox, int *y0, int *y1, int *x0,
                        int *x1)
{
    *y0 = oy * g->stride - g->pad_top;
    *x0 = ox * g->stride - g->pad_left;
    *y1 = *y0 + g->size < g->in_h ? *y0 + g->size : g->in_h;
    *x1 = *x0 + g->size < g->in_w ? *x0 + g->size : g->in_w;
    *y0 = *y0 < 0 ? 0 : *y0;
    *x0 = *x0 < 0 ? 0 : *x0;
}

/* Channels are the innermost loop everywhere below, so that the compiler
 * vectorizes over the contiguous NHWC channel values. */
void hpo_pool_forward(hpo_pool_kind kind, const hpo_pool_geom *g, int n, const float *x,
                      float *y, int32_t *arg)
{
    const size_t in_size = (size_t)g->in_h * g->in_w * g->c;
    const size_t out_size = (size_t)g->out_h * g->out_w * g->c;
    const int c_count = g->c;

#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *image = x + (size_t)i * in_size;
        for (int oy = 0; oy < g->out_h; oy++) {
            for (int ox = 0; ox < g->out_w; ox++) {
                int y0, y1, x0, x1;
                pool_window(g, oy, ox, &y0, &y1, &x0, &x1);
                size_t o = (size_t)i * out_size + ((size_t)oy * g->out_w + ox) * c_count;
                float *out = y + o;

                if (kind == HPO_POOL_AVG) {
                    float scale = 1.0f / (float)((y1 - y0) * (x1 - x0));
                    memset(out, 0, (size_t)c_count * sizeof *out);
                    for (int iy = y0; iy < y1; iy++)
                        for (int ix = x0; ix < x1; ix++) {
                            const float *in = image + ((size_t)iy * g->in_w + ix) * c_count;
                            for (int c = 0; c < c_count; c++)
                                out[c] += in[c];
                        }
                    for (int c = 0; c < c_count; c++)
                        out[c] *= scale;
                    continue;
                }

                /* Max or min: the first window pixel wins ties. */
                int32_t *out_arg = arg + o;
                int32_t first = (int32_t)(((size_t)y0 * g->in_w + x0) * c_count);
                for (int c = 0; c < c_count; c++) {
                    out[c] = image[first + c];
                    out_arg[c] = first + c;
                }
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) {
                        int32_t base = (int32_t)(((size_t)iy * g->in_w + ix) * c_count);
                        const float *in = image + base;
                        if (kind == HPO_POOL_MAX) {
                            for (int c = 0; c < c_count; c++) {
                                bool better = in[c] > out[c];
                                out[c] = better ? in[c] : out[c];
                                out_arg[c] = better ? base + c : out_arg[c];
                            }
                        } else {
                            for (int c = 0; c < c_count; c++) {
                                bool better = in[c] < out[c];
                                out[c] = better ? in[c] : out[c];
                                out_arg[c] = better ? base + c : out_arg[c];
                            }
                        }
                    }
            }
        }
    }
}

/* Backward of max and min pooling whose windows do not overlap (stride at
 * least the window size, as in Keras's default). Each input element then
 * gets the gradient of the one output that took it, or zero, so dx is
 * written once, in order, without the clearing pass and scattered adds of
 * the general loop. */
static void pool_backward_disjoint(const hpo_pool_geom *g, int n, const float *dy,
                                   const int32_t *arg, float *dx)
{
    const int c_count = g->c;
    const size_t row_size = (size_t)g->in_w * c_count;
    const size_t in_size = (size_t)g->in_h * row_size;
    const size_t out_size = (size_t)g->out_h * g->out_w * c_count;

#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const float *grad = dy + (size_t)i * out_size;
        const int32_t *image_arg = arg + (size_t)i * out_size;
        for (int iy = 0; iy < g->in_h; iy++) {
            float *row = dx + (size_t)i * in_size + (size_t)iy * row_size;
            int oy = (iy + g->pad_top) / g->stride;
            if ((iy + g->pad_top) % g->stride >= g->size || oy >= g->out_h) {
                memset(row, 0, row_size * sizeof *row);
                continue;
            }
            for (int ix = 0; ix < g->in_w; ix++) {
                float *out = row + (size_t)ix * c_count;
                int ox = (ix + g->pad_left) / g->stride;
                if ((ix + g->pad_left) % g->stride >= g->size || ox >= g->out_w) {
                    memset(out, 0, (size_t)c_count * sizeof *out);
                    continue;
                }
                const size_t o = ((size_t)oy * g->out_w + ox) * c_count;
                const int32_t base = (int32_t)((size_t)iy * row_size + (size_t)ix * c_count);
                for (int c = 0; c < c_count; c++)
                    out[c] = image_arg[o + c] == base + c ? grad[o + c] : 0.0f;
            }
        }
    }
}

void hpo_pool_backward(hpo_pool_kind kind, const hpo_pool_geom *g, int n, const float *dy,
                       const int32_t *arg, float *dx)
{
    const size_t in_size = (size_t)g->in_h * g->in_w * g->c;
    const size_t out_size = (size_t)g->out_h * g->out_w * g->c;

    if (kind != HPO_POOL_AVG && g->stride >= g->size) {
        pool_backward_disjoint(g, n, dy, arg, dx);
        return;
    }

#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        float *image = dx + (size_t)i * in_size;
        const float *grad = dy + (size_t)i * out_size;
        memset(image, 0, in_size * sizeof *image);

        if (kind != HPO_POOL_AVG) {
            const int32_t *image_arg = arg + (size_t)i * out_size;
            for (size_t o = 0; o < out_size; o++)
                image[image_arg[o]] += grad[o];
            continue;
        }

        for (int oy = 0; oy < g->out_h; oy++) {
            for (int ox = 0; ox < g->out_w; ox++) {
                int y0, y1, x0, x1;
                pool_window(g, oy, ox, &y0, &y1, &x0, &x1);
                float scale = 1.0f / (float)((y1 - y0) * (x1 - x0));
                const float *go = grad + ((size_t)oy * g->out_w + ox) * g->c;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) {
                        float *gi = image + ((size_t)iy * g->in_w + ix) * g->c;
                        for (int c = 0; c < g->c; c++)
                            gi[c] += go[c] * scale;
                    }
            }
        }
    }
}

void hpo_global_avgpool_forward(int n, int pixels, int c, const float *x, float *y)
{
    for (int i = 0; i < n; i++) {
        float *out = y + (size_t)i * c;
        memset(out, 0, (size_t)c * sizeof *out);
        for (int p = 0; p < pixels; p++) {
            const float *in = x + ((size_t)i * pixels + p) * c;
            for (int k = 0; k < c; k++)
                out[k] += in[k];
        }
        for (int k = 0; k < c; k++)
            out[k] /= (float)pixels;
    }
}

void hpo_global_avgpool_backward(int n, int pixels, int c, const float *dy, float *dx)
{
    float scale = 1.0f / (float)pixels;
    for (int i = 0; i < n; i++)
        for (int p = 0; p < pixels; p++) {
            float *out = dx + ((size_t)i * pixels + p) * c;
            for (int k = 0; k < c; k++)
                out[k] = dy[(size_t)i * c + k] * scale;
        }
}

void hpo_bias_broadcast(int rows, int cols, const float *b, float *y)
{
    for (int r = 0; r < rows; r++)
        memcpy(y + (size_t)r * cols, b, (size_t)cols * sizeof *b);
}

void hpo_column_sums(int rows, int cols, const float *a, float *sums)
{
    memset(sums, 0, (size_t)cols * sizeof *sums);
    for (int r = 0; r < rows; r++) {
        const float *row = a + (size_t)r * cols;
        for (int c = 0; c < cols; c++)
            sums[c] += row[c];
    }
}

/* Below these element counts, an activation pass runs on the calling
 * thread, because waking the other threads costs more than the pass. A
 * dense layer of 128 units at batch 64 has 8,192 elements. tanhf costs
 * far more per element than a comparison, so its threshold is lower. */
enum { PARALLEL_MIN_ELEMENTS = 1 << 16, PARALLEL_MIN_TANH = 1 << 11 };

void hpo_activation_forward(hpo_activation act, size_t count, float *y)
{
    if (act == HPO_ACT_RELU) {
#pragma omp parallel for schedule(static) if (count >= PARALLEL_MIN_ELEMENTS)
        for (size_t i = 0; i < count; i++)
            y[i] = y[i] > 0.0f ? y[i] : 0.0f;
    } else if (act == HPO_ACT_TANH) {
#pragma omp parallel for schedule(static) if (count >= PARALLEL_MIN_TANH)
        for (size_t i = 0; i < count; i++)
            y[i] = tanhf(y[i]);
    }
}

void hpo_activation_backward(hpo_activation act, size_t count, const float *y, float *dy)
{
    if (act == HPO_ACT_RELU) {
#pragma omp parallel for schedule(static) if (count >= PARALLEL_MIN_ELEMENTS)
        for (size_t i = 0; i < count; i++)
            dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    } else if (act == HPO_ACT_TANH) {
#pragma omp parallel for schedule(static) if (count >= PARALLEL_MIN_ELEMENTS)
        for (size_t i = 0; i < count; i++)
            dy[i] *= 1.0f - y[i] * y[i];
    }
}

void hpo_softmax_forward(int n, int classes, float *z)
{
    for (int i = 0; i < n; i++) {
        float *row = z + (size_t)i * classes;
        float max = row[0];
        for (int k = 1; k < classes; k++)
            max = row[k] > max ? row[k] : max;
        double sum = 0.0;
        for (int k = 0; k < classes; k++) {
            row[k] = expf(row[k] - max);
            sum += row[k];
        }
        for (int k = 0; k < classes; k++)
            row[k] = (float)(row[k] / sum);
    }
}

double hpo_cross_entropy(int n, int classes, const float *p, const uint8_t *labels,
                         int *correct)
{
    double loss = 0.0;
    int hits = 0;
    for (int i = 0; i < n; i++) {
        const float *row = p + (size_t)i * classes;
        int best = 0;
        for (int k = 1; k < classes; k++)
            best = row[k] > row[best] ? k : best;
        hits += best == labels[i];
        /* A NaN probability keeps the loss NaN, so the trainer detects divergence. */
        double q = row[labels[i]];
        loss -= log(q < 1e-7 ? 1e-7 : q);
    }
    if (correct != NULL)
        *correct = hits;
    return n > 0 ? loss / n : 0.0;
}

void hpo_cross_entropy_backward(int n, int classes, const float *p, const uint8_t *labels,
                                float *dz)
{
    float scale = 1.0f / (float)n;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < classes; k++) {
            float target = k == labels[i] ? 1.0f : 0.0f;
            dz[(size_t)i * classes + k] = (p[(size_t)i * classes + k] - target) * scale;
        }
    }
}
