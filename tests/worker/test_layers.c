/* Tests of the layer kernels and of backpropagation through every layer
 * type:
 * - convolution semantics against hand-computed cross-correlations with
 *   the classic 3x3 image kernels;
 * - analytic gradients against central differences;
 * - the BLAS backend against the reference loops. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <omp.h>
#include <gsl/gsl_rng.h>

#include "hpo/error.h"
#include "hpo/model.h"
#include "conv_direct.h"
#include "kernels.h"
#include "layers.h"
#include "net.h"
#include "threads.h"

/* ---- Convolution semantics ------------------------------------------- */

/* Four 3x3 filters in the [ky][kx][c][f] layout, c = 1:
 * box blur (1/9 each), the 8-neighbour Laplacian outline kernel
 * [-1 -1 -1; -1 8 -1; -1 -1 -1], horizontal Sobel [-1 0 1; -2 0 2; -1 0 1]
 * and vertical Sobel [-1 -2 -1; 0 0 0; 1 2 1]. */
static void classic_kernels(float *w)
{
    static const float laplacian[9] = {-1, -1, -1, -1, 8, -1, -1, -1, -1};
    static const float sobel_x[9] = {-1, 0, 1, -2, 0, 2, -1, 0, 1};
    static const float sobel_y[9] = {-1, -2, -1, 0, 0, 0, 1, 2, 1};
    for (int k = 0; k < 9; k++) {
        w[k * 4 + 0] = 1.0f / 9.0f;
        w[k * 4 + 1] = laplacian[k];
        w[k * 4 + 2] = sobel_x[k];
        w[k * 4 + 3] = sobel_y[k];
    }
}

static void conv_classic_kernels(const hpo_kernels *k)
{
    /* Image 0: a vertical step edge, every row 0 0 9 9 9.
     * Image 1: an impulse, 9 at (2, 2) and 0 elsewhere. */
    float x[2 * 25] = {0};
    for (int r = 0; r < 5; r++)
        for (int c = 2; c < 5; c++)
            x[r * 5 + c] = 9.0f;
    x[25 + 12] = 9.0f;

    /* Expected outputs, worked out by hand from
     * y[oy][ox] = sum_{ky,kx} w[ky][kx] x[oy+ky][ox+kx] (valid padding).
     * Edge: each output row is the same. Box: 27/9, 54/9, 81/9. Laplacian
     * = 9 * centre - window sum: 0 - 27, 81 - 54, 81 - 81. Sobel x = 4 *
     * (right column - left column): 36, 36, 0. Sobel y = 0 (rows equal).
     * Impulse: y[oy][ox] = 9 w[2-oy][2-ox], the kernel rotated by 180
     * degrees, which distinguishes cross-correlation from convolution. */
    static const float edge[4][3] = {{3, 6, 9}, {-27, 27, 0}, {36, 36, 0}, {0, 0, 0}};
    static const float impulse[4][9] = {
        {1, 1, 1, 1, 1, 1, 1, 1, 1},
        {-9, -9, -9, -9, 72, -9, -9, -9, -9},
        {9, 0, -9, 18, 0, -18, 9, 0, -9},
        {9, 18, 9, 0, 0, 0, -9, -18, -9},
    };

    hpo_conv_geom g = {.in_h = 5, .in_w = 5, .in_c = 1, .out_h = 3, .out_w = 3, .out_c = 4,
                       .kernel = 3, .stride = 1};
    float w[36], b[4] = {0}, y[2 * 9 * 4];
    classic_kernels(w);
    float *scratch = malloc(k->conv2d_scratch_floats(&g, 2) * sizeof(float) + 64);
    k->conv2d_forward(&g, 2, x, w, b, y, scratch);

    for (int f = 0; f < 4; f++)
        for (int p = 0; p < 9; p++) {
            float got_edge = y[p * 4 + f];
            float got_impulse = y[36 + p * 4 + f];
            if (fabsf(got_edge - edge[f][p % 3]) > 1e-4f)
                fail_msg("%s: edge image, filter %d, pixel %d: got %g, expected %g", k->name,
                         f, p, got_edge, edge[f][p % 3]);
            if (fabsf(got_impulse - impulse[f][p]) > 1e-4f)
                fail_msg("%s: impulse image, filter %d, pixel %d: got %g, expected %g",
                         k->name, f, p, got_impulse, impulse[f][p]);
        }
    free(scratch);
}

/* Every backend built, the reference loops included. */
static void conv_classic_kernels_all(void **state)
{
    for (int i = 0; hpo_kernels_names[i] != NULL; i++)
        conv_classic_kernels(hpo_kernels_find(hpo_kernels_names[i]));
}

/* "same" padding on the impulse image: the output keeps the 5x5 size and
 * the Laplacian response sits around the impulse, zero elsewhere. */
static void conv_same_padding(const hpo_kernels *k)
{
    hpo_conv_geom g = {.in_h = 5, .in_w = 5, .in_c = 1, .out_h = 5, .out_w = 5, .out_c = 4,
                       .kernel = 3, .stride = 1, .pad_top = 1, .pad_left = 1};
    float x[25] = {0}, w[36], b[4] = {0}, y[100];
    x[12] = 9.0f;
    classic_kernels(w);
    float *scratch = malloc(k->conv2d_scratch_floats(&g, 1) * sizeof(float) + 64);
    k->conv2d_forward(&g, 1, x, w, b, y, scratch);
    for (int r = 0; r < 5; r++)
        for (int c = 0; c < 5; c++) {
            float expected = 0.0f;
            if (r == 2 && c == 2)
                expected = 72.0f;
            else if (abs(r - 2) <= 1 && abs(c - 2) <= 1)
                expected = -9.0f;
            assert_float_equal(y[(r * 5 + c) * 4 + 1], expected, 1e-4);
        }
    free(scratch);
}

static void conv_same_padding_all(void **state)
{
    for (int i = 0; hpo_kernels_names[i] != NULL; i++)
        conv_same_padding(hpo_kernels_find(hpo_kernels_names[i]));
}

/* ---- Gradient checks --------------------------------------------------- */

#define GC_CLASSES 4
#define GC_BATCH 3

/* Mean cross-entropy of the net on x, in training mode with frozen
 * dropout masks. */
static double gc_loss(hpo_net *net, const float *x, const uint8_t *labels)
{
    const float *p = hpo_net_forward(net, x, GC_BATCH, true);
    return hpo_cross_entropy(GC_BATCH, GC_CLASSES, p, labels, NULL);
}

/* Central difference (L(v + h) - L(v - h)) / 2h of the loss with respect
 * to *v. The loss is computed in double from float32 activations. */
static double gc_central(hpo_net *net, float *v, float h, const float *x,
                         const uint8_t *labels)
{
    float saved = *v;
    *v = saved + h;
    double up = gc_loss(net, x, labels);
    *v = saved - h;
    double down = gc_loss(net, x, labels);
    *v = saved;
    return (up - down) / (2.0 * (double)h);
}

/* Accumulates one element of the check. relu, max/min pooling and their
 * ties have kinks, where the derivative jumps and a finite difference
 * across the kink is meaningless. On a smooth stretch the central
 * differences at steps h and h/2 agree to O(h^2). Where they disagree, the
 * element sits on a kink, so it is counted and skipped. */
typedef struct {
    double diff2, analytic2, numeric2;
    int checked, skipped;
} gc_tally;

static void gc_element(gc_tally *t, hpo_net *net, float *v, double analytic,
                       const float *x, const uint8_t *labels)
{
    const float h = 5e-3f;
    double wide = gc_central(net, v, h, x, labels);
    double narrow = gc_central(net, v, h / 2, x, labels);
    if (fabs(wide - narrow) > 1e-3 * fmax(fabs(wide), fabs(narrow)) + 1e-4) {
        t->skipped++;
        return;
    }
    t->checked++;
    t->diff2 += (analytic - narrow) * (analytic - narrow);
    t->analytic2 += analytic * analytic;
    t->numeric2 += narrow * narrow;
}

static double gc_error(const gc_tally *t)
{
    return sqrt(t->diff2) / fmax(sqrt(t->analytic2), sqrt(t->numeric2));
}

/* Checks every weight, bias and input gradient of the net built from
 * layers on a 6x6x2 input. The error is measured over the whole gradient:
 * |g_analytic - g_numeric| / max(|g_analytic|, |g_numeric|) with
 * Euclidean norms, and must stay below 1e-3 (float32 activations, steps
 * 5e-3 and 2.5e-3). At most 15% of the elements may sit on kinks: with
 * relu units, a step in one weight moves many pre-activations at once. */
static void gradient_check(const char *name, const hpo_layer_spec *layers, int n_layers,
                           const hpo_kernels *kernels)
{
    hpo_model_spec spec = {
        .n_layers = n_layers, .layers = (hpo_layer_spec *)layers,
        .input_h = 6, .input_w = 6, .input_c = 2,
        .optimizer = HPO_OPT_ADAM, .learning_rate = 1e-3, .batch_size = GC_BATCH,
    };
    char err[HPO_ERR_MAX] = "";
    hpo_net *net = NULL;
    if (hpo_net_create(&spec, kernels, GC_BATCH, 7, &net, err, sizeof err) != 0)
        fail_msg("%s: %s", name, err);

    /* Inputs in [-1, 1] and non-zero biases, so that relu units are not
     * all active and biases get non-trivial gradients. */
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 11);
    float x[GC_BATCH * 72];
    for (int i = 0; i < GC_BATCH * 72; i++)
        x[i] = (float)(2.0 * gsl_rng_uniform(rng) - 1.0);
    for (size_t i = 0; i < net->n_params; i++)
        net->params[i] += (float)(0.1 * (gsl_rng_uniform(rng) - 0.5));
    uint8_t labels[GC_BATCH] = {0, 3, 1};

    gc_loss(net, x, labels);
    net->freeze_dropout = true;
    hpo_net_backward(net, x, labels, GC_BATCH, true);

    float *grads = malloc(net->n_params * sizeof *grads);
    float input_grad[GC_BATCH * 72];
    memcpy(grads, net->grads, net->n_params * sizeof *grads);
    memcpy(input_grad, net->input_grad, sizeof input_grad);

    gc_tally params = {0}, input = {0};
    for (size_t i = 0; i < net->n_params; i++)
        gc_element(&params, net, &net->params[i], grads[i], x, labels);
    for (int i = 0; i < GC_BATCH * 72; i++)
        gc_element(&input, net, &x[i], input_grad[i], x, labels);

    if (!(gc_error(&params) < 1e-3) || !(gc_error(&input) < 1e-3))
        fail_msg("%s (%s): relative gradient error %.3g for parameters, %.3g for the input",
                 name, kernels->name, gc_error(&params), gc_error(&input));
    if (params.skipped * 100 > 15 * (params.checked + params.skipped) ||
        input.skipped * 100 > 15 * (input.checked + input.skipped))
        fail_msg("%s (%s): too many elements on kinks: %d of %d parameters, %d of %d inputs",
                 name, kernels->name, params.skipped, params.checked + params.skipped,
                 input.skipped, input.checked + input.skipped);
    assert_true(params.analytic2 > 0.0);
    assert_true(input.analytic2 > 0.0);

    free(grads);
    gsl_rng_free(rng);
    hpo_net_destroy(&net);
}

#define CONV(f, k, s, pad, act) \
    {.kind = HPO_LAYER_CONV2D, .filters = f, .kernel_size = k, .stride = s, \
     .padding = pad, .activation = act}
#define POOL(kind_, size, s, pad) \
    {.kind = kind_, .pool_size = size, .stride = s, .padding = pad}
#define DENSE(u, act) {.kind = HPO_LAYER_DENSE, .units = u, .activation = act}
#define FLATTEN {.kind = HPO_LAYER_FLATTEN}
#define HEAD DENSE(GC_CLASSES, HPO_ACT_SOFTMAX)

static const hpo_layer_spec net_conv_relu[] = {
    CONV(3, 3, 1, HPO_PAD_VALID, HPO_ACT_RELU), FLATTEN, HEAD};
static const hpo_layer_spec net_conv_tanh_same_stride[] = {
    CONV(3, 3, 2, HPO_PAD_SAME, HPO_ACT_TANH), FLATTEN, HEAD};
static const hpo_layer_spec net_conv_linear_5x5[] = {
    CONV(2, 5, 1, HPO_PAD_SAME, HPO_ACT_LINEAR), FLATTEN, HEAD};
static const hpo_layer_spec net_maxpool[] = {
    CONV(3, 3, 1, HPO_PAD_VALID, HPO_ACT_TANH), POOL(HPO_LAYER_MAXPOOL2D, 2, 2, HPO_PAD_VALID),
    FLATTEN, HEAD};
/* 32 filters on 2 channels, pooled without overlap: with AVX-512, the
 * convolution and the pooling run fused (conv_direct.c). Min pooling of
 * the fused pass is checked by conv_pool_fusion_exact, because a gradient
 * check of a linear convolution under min pooling sits on too many kinks. */
static const hpo_layer_spec net_conv_maxpool_fused[] = {
    CONV(32, 3, 1, HPO_PAD_VALID, HPO_ACT_RELU), POOL(HPO_LAYER_MAXPOOL2D, 2, 2, HPO_PAD_VALID),
    FLATTEN, HEAD};
static const hpo_layer_spec net_minpool_same[] = {
    /* tanh, because min pooling over relu outputs mostly picks zeros,
     * whose gradient is zero, and the check would test little. */
    CONV(3, 3, 1, HPO_PAD_SAME, HPO_ACT_TANH), POOL(HPO_LAYER_MINPOOL2D, 3, 2, HPO_PAD_SAME),
    FLATTEN, HEAD};
static const hpo_layer_spec net_avgpool_same[] = {
    CONV(3, 3, 1, HPO_PAD_VALID, HPO_ACT_TANH), POOL(HPO_LAYER_AVGPOOL2D, 3, 2, HPO_PAD_SAME),
    FLATTEN, HEAD};
static const hpo_layer_spec net_global_avgpool[] = {
    CONV(4, 3, 1, HPO_PAD_VALID, HPO_ACT_RELU), {.kind = HPO_LAYER_GLOBAL_AVGPOOL}, HEAD};
static const hpo_layer_spec net_dropout[] = {
    CONV(3, 3, 1, HPO_PAD_VALID, HPO_ACT_TANH), {.kind = HPO_LAYER_DROPOUT, .rate = 0.3f},
    FLATTEN, DENSE(5, HPO_ACT_RELU), {.kind = HPO_LAYER_DROPOUT, .rate = 0.5f}, HEAD};
static const hpo_layer_spec net_dense_relu_tanh[] = {
    FLATTEN, DENSE(6, HPO_ACT_RELU), DENSE(5, HPO_ACT_TANH), DENSE(4, HPO_ACT_LINEAR), HEAD};
static const hpo_layer_spec net_two_convs[] = {
    CONV(3, 3, 1, HPO_PAD_VALID, HPO_ACT_RELU), CONV(2, 3, 1, HPO_PAD_VALID, HPO_ACT_TANH),
    FLATTEN, HEAD};

#define NET(layers) #layers, layers, (int)(sizeof layers / sizeof *layers)

static void gradient_checks(const hpo_kernels *k)
{
    gradient_check(NET(net_conv_relu), k);
    gradient_check(NET(net_conv_tanh_same_stride), k);
    gradient_check(NET(net_conv_linear_5x5), k);
    gradient_check(NET(net_maxpool), k);
    gradient_check(NET(net_minpool_same), k);
    gradient_check(NET(net_conv_maxpool_fused), k);
    gradient_check(NET(net_avgpool_same), k);
    gradient_check(NET(net_global_avgpool), k);
    gradient_check(NET(net_dropout), k);
    gradient_check(NET(net_dense_relu_tanh), k);
    gradient_check(NET(net_two_convs), k);
    printf("gradient checks passed on the %s backend\n", k->name);
}

static void gradients_all_backends(void **state)
{
    for (int i = 0; hpo_kernels_names[i] != NULL; i++)
        gradient_checks(hpo_kernels_find(hpo_kernels_names[i]));
}

/* ---- BLAS against reference -------------------------------------------- */

/* Runs the same conv geometry through the reference loops and `fast`,
 * forward and backward, on random data and compares every output. */
static void compare_conv_act(const hpo_kernels *fast, int in_h, int in_c, int filters,
                             int kernel, int stride, int same, int n, hpo_activation act)
{
    int out_h = same ? (in_h + stride - 1) / stride : (in_h - kernel) / stride + 1;
    hpo_conv_geom g = {
        .in_h = in_h, .in_w = in_h, .in_c = in_c,
        .out_h = out_h, .out_w = out_h, .out_c = filters,
        .kernel = kernel, .stride = stride,
        .pad_top = hpo_padding_before(in_h, out_h, kernel, stride, same),
        .pad_left = hpo_padding_before(in_h, out_h, kernel, stride, same),
        .activation = act,
    };
    size_t nx = (size_t)n * in_h * in_h * in_c, ny = (size_t)n * out_h * out_h * filters;
    size_t nw = (size_t)kernel * kernel * in_c * filters;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(filters * 4);
    float *dy = malloc(ny * 4);
    float *y[2], *dx[2], *dw[2], *db[2], *scratch[2];
    const hpo_kernels *k[2] = {&hpo_kernels_reference, fast};

    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, (unsigned long)(in_h * 131 + filters));
    for (size_t i = 0; i < nx; i++)
        x[i] = (float)(gsl_rng_uniform(rng) - 0.5);
    for (size_t i = 0; i < nw; i++)
        w[i] = (float)(gsl_rng_uniform(rng) - 0.5);
    for (int i = 0; i < filters; i++)
        b[i] = (float)(gsl_rng_uniform(rng) - 0.5);
    for (size_t i = 0; i < ny; i++)
        dy[i] = (float)(gsl_rng_uniform(rng) - 0.5);

    for (int j = 0; j < 2; j++) {
        y[j] = malloc(ny * 4);
        dx[j] = malloc(nx * 4);
        dw[j] = malloc(nw * 4);
        db[j] = malloc(filters * 4);
        scratch[j] = malloc(k[j]->conv2d_scratch_floats(&g, n) * 4 + 64);
        k[j]->conv2d_forward(&g, n, x, w, b, y[j], scratch[j]);
        k[j]->conv2d_backward(&g, n, x, w, dy, dx[j], dw[j], db[j], scratch[j]);
    }

    /* Sums of up to a few thousand products of values in [-0.5, 0.5]:
     * float32 rounding stays far below 1e-3. */
    for (size_t i = 0; i < ny; i++)
        assert_float_equal(y[0][i], y[1][i], 1e-3);
    for (size_t i = 0; i < nx; i++)
        assert_float_equal(dx[0][i], dx[1][i], 1e-3);
    for (size_t i = 0; i < nw; i++)
        assert_float_equal(dw[0][i], dw[1][i], 1e-2);
    for (int i = 0; i < filters; i++)
        assert_float_equal(db[0][i], db[1][i], 1e-2);

    for (int j = 0; j < 2; j++) {
        free(y[j]);
        free(dx[j]);
        free(dw[j]);
        free(db[j]);
        free(scratch[j]);
    }
    free(x);
    free(w);
    free(b);
    free(dy);
    gsl_rng_free(rng);
}

static void compare_conv(const hpo_kernels *fast, int in_h, int in_c, int filters, int kernel,
                         int stride, int same, int n)
{
    compare_conv_act(fast, in_h, in_c, filters, kernel, stride, same, n, HPO_ACT_LINEAR);
}

static void conv_matches_reference(void **state)
{
    for (int i = 0; hpo_kernels_names[i] != NULL; i++) {
        const hpo_kernels *k = hpo_kernels_find(hpo_kernels_names[i]);
        if (k == &hpo_kernels_reference)
            continue;
        compare_conv(k, 8, 3, 5, 3, 1, 0, 4);
        compare_conv(k, 9, 4, 6, 3, 2, 1, 3);
        compare_conv(k, 7, 2, 3, 5, 1, 1, 2);
        compare_conv(k, 6, 5, 4, 1, 1, 0, 3); /* pointwise: the GEMM-only path */
        /* Large enough that the BLAS backend splits the batch into chunks. */
        compare_conv(k, 15, 64, 16, 5, 1, 0, 12);
        /* Few input channels and filters in blocks of 16: the direct loops
         * of conv_direct.c where AVX-512 is built, with a partial block of
         * output pixels (out_w 8 = 6 + 2), stride 2 and kernels split into
         * chunks of rows. */
        compare_conv_act(k, 10, 3, 32, 3, 1, 0, 3, HPO_ACT_RELU);
        compare_conv_act(k, 13, 3, 16, 5, 2, 0, 2, HPO_ACT_LINEAR);
        compare_conv_act(k, 14, 1, 48, 7, 1, 0, 2, HPO_ACT_RELU);
        compare_conv_act(k, 9, 4, 32, 1, 1, 0, 2, HPO_ACT_RELU);
    }
}

/* The geometries above that conv_matches_reference sends to the direct
 * loops are the ones those loops take, where they are built (AVX-512),
 * and the loops refuse what they do not handle. */
static void conv_direct_choice(void **state)
{
    hpo_conv_geom first = {.in_h = 32, .in_w = 32, .in_c = 3, .out_h = 30, .out_w = 30,
                           .out_c = 32, .kernel = 3, .stride = 1,
                           .activation = HPO_ACT_RELU};
    if (!hpo_conv_direct_supports(&first, 2)) {
        printf("direct convolution loops not built (no AVX-512): checking refusals only\n");
    } else {
        const hpo_conv_geom taken[] = {
            {.in_h = 10, .in_w = 10, .in_c = 3, .out_h = 8, .out_w = 8, .out_c = 32,
             .kernel = 3, .stride = 1, .activation = HPO_ACT_RELU},
            {.in_h = 13, .in_w = 13, .in_c = 3, .out_h = 5, .out_w = 5, .out_c = 16,
             .kernel = 5, .stride = 2},
            {.in_h = 14, .in_w = 14, .in_c = 1, .out_h = 8, .out_w = 8, .out_c = 48,
             .kernel = 7, .stride = 1, .activation = HPO_ACT_RELU},
            {.in_h = 9, .in_w = 9, .in_c = 4, .out_h = 9, .out_w = 9, .out_c = 32,
             .kernel = 1, .stride = 1, .activation = HPO_ACT_RELU},
        };
        for (size_t i = 0; i < sizeof taken / sizeof *taken; i++)
            assert_true(hpo_conv_direct_supports(&taken[i], 2));
        /* 32 filters of a 3x3 kernel make 2 work items for the weight
         * gradient: not enough for 4 threads. */
        assert_false(hpo_conv_direct_supports(&first, 4));
    }
    hpo_conv_geom g = first;
    g.activation = HPO_ACT_TANH;
    assert_false(hpo_conv_direct_supports(&g, 1));
    g = first;
    g.out_c = 24;
    assert_false(hpo_conv_direct_supports(&g, 1));
    g = first;
    g.bf16 = true;
    assert_false(hpo_conv_direct_supports(&g, 1));
    g = first;
    g.out_h = g.out_w = 32;
    g.pad_top = g.pad_left = 1;
    assert_false(hpo_conv_direct_supports(&g, 1));
    g = first;
    g.in_c = 8;
    assert_false(hpo_conv_direct_supports(&g, 1));
}

/* A fused convolution and pooling writes exactly what the convolution
 * followed by hpo_pool_forward() writes: the same values and the same arg
 * indices, for max and min pooling, windows that tile the output, leave
 * rows out or have gaps between them. The fused weight gradient equals,
 * bit for bit, the one computed from hpo_pool_backward()'s output. */
static void conv_pool_fusion_exact(void **state)
{
    enum { N = 3, IN = 10, OUT = 8, F = 32, C = 3, K = 3 };
    hpo_conv_geom g = {.in_h = IN, .in_w = IN, .in_c = C, .out_h = OUT, .out_w = OUT,
                       .out_c = F, .kernel = K, .stride = 1, .activation = HPO_ACT_RELU};
    const hpo_pool_geom pools[] = {
        {.in_h = OUT, .in_w = OUT, .c = F, .out_h = 4, .out_w = 4, .size = 2, .stride = 2},
        {.in_h = OUT, .in_w = OUT, .c = F, .out_h = 2, .out_w = 2, .size = 3, .stride = 3},
        {.in_h = OUT, .in_w = OUT, .c = F, .out_h = 3, .out_w = 3, .size = 2, .stride = 3},
    };
    static float x[N * IN * IN * C], w[K * K * C * F], b[F], y[N * OUT * OUT * F];
    static float z[2][N * 16 * F], dz[N * 16 * F], dy[N * OUT * OUT * F];
    static float dw[2][K * K * C * F], db[2][F];
    static int32_t arg[2][N * 16 * F];
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    for (size_t i = 0; i < sizeof x / sizeof *x; i++)
        x[i] = (float)(gsl_rng_uniform(rng) - 0.5);
    for (size_t i = 0; i < sizeof w / sizeof *w; i++)
        w[i] = (float)(gsl_rng_uniform(rng) - 0.5);
    for (int i = 0; i < F; i++)
        b[i] = (float)(gsl_rng_uniform(rng) - 0.5);
    for (size_t i = 0; i < sizeof dz / sizeof *dz; i++)
        dz[i] = (float)(gsl_rng_uniform(rng) - 0.5);
    gsl_rng_free(rng);

    for (int bi = 0; hpo_kernels_names[bi] != NULL; bi++) {
        const hpo_kernels *k = hpo_kernels_find(hpo_kernels_names[bi]);
        if (k->conv2d_pool_forward == NULL)
            continue;
        float *scratch = malloc(k->conv2d_scratch_floats(&g, N) * sizeof(float) + 64);
        k->conv2d_forward(&g, N, x, w, b, y, scratch);
        for (size_t pi = 0; pi < sizeof pools / sizeof *pools; pi++)
            for (hpo_pool_kind kind = HPO_POOL_MAX; kind <= HPO_POOL_MIN; kind++) {
                const hpo_pool_geom *p = &pools[pi];
                size_t outs = (size_t)N * p->out_h * p->out_w * F;
                if (!k->conv2d_pool_forward(&g, kind, p, N, x, w, b, z[1], arg[1])) {
                    printf("%s: no fused convolution and pooling here\n", k->name);
                    continue;
                }
                hpo_pool_forward(kind, p, N, y, z[0], arg[0]);
                for (size_t i = 0; i < outs; i++) {
                    if (z[0][i] != z[1][i] || arg[0][i] != arg[1][i])
                        fail_msg("%s: pooling %zu kind %d: output %zu is %g at %d, expected "
                                 "%g at %d", k->name, pi, kind, i, z[1][i], arg[1][i],
                                 z[0][i], arg[0][i]);
                }

                hpo_pool_backward(kind, p, N, dz, arg[0], dy);
                k->conv2d_backward(&g, N, x, w, dy, NULL, dw[0], db[0], scratch);
                assert_true(k->conv2d_pool_backward_weights(&g, kind, p, N, x, dz, arg[0],
                                                            dw[1], db[1]));
                for (size_t i = 0; i < sizeof dw[0] / sizeof dw[0][0]; i++)
                    if (dw[0][i] != dw[1][i])
                        fail_msg("%s: pooling %zu kind %d: weight gradient %zu is %g, "
                                 "expected %g", k->name, pi, kind, i, dw[1][i], dw[0][i]);
                for (int i = 0; i < F; i++)
                    assert_float_equal(db[1][i], db[0][i], 0);
            }
        assert_false(k->conv2d_pool_forward(&g, HPO_POOL_AVG, &pools[0], N, x, w, b, z[1],
                                            arg[1]));
        free(scratch);
    }
}

static void dense_matches_reference(const hpo_kernels *fast)
{
    enum { N = 5, IN = 37, OUT = 11 };
    float x[N * IN], w[IN * OUT], b[OUT], dy[N * OUT];
    float y[2][N * OUT], dx[2][N * IN], dw[2][IN * OUT], db[2][OUT];
    const hpo_kernels *k[2] = {&hpo_kernels_reference, fast};
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    for (int i = 0; i < N * IN; i++)
        x[i] = (float)(gsl_rng_uniform(rng) - 0.5);
    for (int i = 0; i < IN * OUT; i++)
        w[i] = (float)(gsl_rng_uniform(rng) - 0.5);
    for (int i = 0; i < OUT; i++)
        b[i] = (float)(gsl_rng_uniform(rng) - 0.5);
    for (int i = 0; i < N * OUT; i++)
        dy[i] = (float)(gsl_rng_uniform(rng) - 0.5);
    for (int j = 0; j < 2; j++) {
        k[j]->dense_forward(N, IN, OUT, x, w, b, y[j]);
        k[j]->dense_backward(N, IN, OUT, x, w, dy, dx[j], dw[j], db[j]);
    }
    for (int i = 0; i < N * OUT; i++)
        assert_float_equal(y[0][i], y[1][i], 1e-4);
    for (int i = 0; i < N * IN; i++)
        assert_float_equal(dx[0][i], dx[1][i], 1e-4);
    for (int i = 0; i < IN * OUT; i++)
        assert_float_equal(dw[0][i], dw[1][i], 1e-4);
    for (int i = 0; i < OUT; i++)
        assert_float_equal(db[0][i], db[1][i], 1e-4);
    gsl_rng_free(rng);
}

static void dense_matches_reference_all(void **state)
{
    for (int i = 0; hpo_kernels_names[i] != NULL; i++) {
        const hpo_kernels *k = hpo_kernels_find(hpo_kernels_names[i]);
        if (k != &hpo_kernels_reference)
            dense_matches_reference(k);
    }
}

#if HPO_HAVE_DNNL
/* bfloat16 keeps 8 significant bits, so each product is off by up to
 * 2^-8 relative; over sums of 45 products of values in [-0.5, 0.5] the
 * result stays within 0.05 of the float32 reference. */
static void dnnl_bf16_conv_close_to_float32(void **state)
{
    if (!hpo_dnnl_has_bf16()) {
        skip();
        return;
    }
    hpo_conv_geom g = {.in_h = 9, .in_w = 9, .in_c = 5, .out_h = 7, .out_w = 7, .out_c = 6,
                       .kernel = 3, .stride = 1, .activation = HPO_ACT_LINEAR};
    enum { N = 2 };
    float x[N * 81 * 5], w[9 * 5 * 6], b[6], y_ref[N * 49 * 6], y_bf16[N * 49 * 6];
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    for (size_t i = 0; i < sizeof x / sizeof *x; i++)
        x[i] = (float)(gsl_rng_uniform(rng) - 0.5);
    for (size_t i = 0; i < sizeof w / sizeof *w; i++)
        w[i] = (float)(gsl_rng_uniform(rng) - 0.5);
    for (int i = 0; i < 6; i++)
        b[i] = (float)(gsl_rng_uniform(rng) - 0.5);

    hpo_kernels_reference.conv2d_forward(&g, N, x, w, b, y_ref, NULL);
    g.bf16 = true;
    float *scratch = malloc(hpo_kernels_dnnl.conv2d_scratch_floats(&g, N) * 4 + 64);
    hpo_kernels_dnnl.conv2d_forward(&g, N, x, w, b, y_bf16, scratch);
    double max_diff = 0.0;
    for (size_t i = 0; i < sizeof y_ref / sizeof *y_ref; i++)
        max_diff = fmax(max_diff, fabs(y_ref[i] - y_bf16[i]));
    assert_true(max_diff < 0.05);
    /* Not float32 in disguise: bf16 rounding must show. */
    assert_true(max_diff > 1e-5);
    free(scratch);
    gsl_rng_free(rng);
}
#endif

/* bfloat16 is rejected with a clear message where it cannot run. */
static void bf16_needs_dnnl(void **state)
{
    char err[HPO_ERR_MAX] = "";
    assert_int_equal(hpo_kernels_check_precision(&hpo_kernels_blas, HPO_PRECISION_BFLOAT16,
                                                 err, sizeof err), -1);
    assert_non_null(strstr(err, "precision bfloat16 needs the dnnl backend"));
    assert_int_equal(hpo_kernels_check_precision(&hpo_kernels_blas, HPO_PRECISION_FLOAT32,
                                                 err, sizeof err), 0);
}

/* ---- Pooling and softmax values ---------------------------------------- */

/* Max and min pooling route each output's gradient to the input element
 * recorded in arg, which has that output's value, and every other input
 * element gets zero. Checked against a scatter written from that
 * definition, for windows that overlap, windows with gaps between them,
 * and disjoint windows that leave the last row and column out or start
 * in the padding. */
static void pooling_routes_gradients(void **state)
{
    enum { N = 3, H = 7, C = 5, OUT = 16 };
    float x[N * H * H * C], dy[N * OUT * C], y[N * OUT * C];
    float dx[N * H * H * C], expected[N * H * H * C];
    int32_t arg[N * OUT * C];
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    for (size_t i = 0; i < sizeof x / sizeof *x; i++)
        x[i] = (float)(gsl_rng_uniform(rng) - 0.5);
    for (size_t i = 0; i < sizeof dy / sizeof *dy; i++)
        dy[i] = (float)(gsl_rng_uniform(rng) - 0.5);

    const hpo_pool_geom geoms[] = {
        /* 7x7 -> 3x3, window 2, stride 2: row and column 6 in no window. */
        {.in_h = H, .in_w = H, .c = C, .out_h = 3, .out_w = 3, .size = 2, .stride = 2},
        /* window 3, stride 2, one pixel of padding before: overlapping. */
        {.in_h = H, .in_w = H, .c = C, .out_h = 4, .out_w = 4, .size = 3, .stride = 2,
         .pad_top = 1, .pad_left = 1},
        /* window 2, stride 3: a gap row and column after each window. */
        {.in_h = H, .in_w = H, .c = C, .out_h = 2, .out_w = 2, .size = 2, .stride = 3},
        /* window 3, stride 3, one pixel of padding before. */
        {.in_h = H, .in_w = H, .c = C, .out_h = 3, .out_w = 3, .size = 3, .stride = 3,
         .pad_top = 1, .pad_left = 1},
    };
    const hpo_pool_kind kinds[2] = {HPO_POOL_MAX, HPO_POOL_MIN};

    for (size_t gi = 0; gi < sizeof geoms / sizeof *geoms; gi++)
        for (int ki = 0; ki < 2; ki++) {
            const hpo_pool_geom *g = &geoms[gi];
            size_t in_size = (size_t)H * H * C, out_size = (size_t)g->out_h * g->out_w * C;
            hpo_pool_forward(kinds[ki], g, N, x, y, arg);
            hpo_pool_backward(kinds[ki], g, N, dy, arg, dx);

            memset(expected, 0, sizeof expected);
            for (int i = 0; i < N; i++)
                for (size_t o = 0; o < out_size; o++) {
                    size_t at = (size_t)i * in_size + (size_t)arg[(size_t)i * out_size + o];
                    assert_int_equal(arg[(size_t)i * out_size + o] % C, o % C);
                    assert_float_equal(x[at], y[(size_t)i * out_size + o], 0);
                    expected[at] += dy[(size_t)i * out_size + o];
                }
            for (size_t i = 0; i < sizeof dx / sizeof *dx; i++)
                if (dx[i] != expected[i])
                    fail_msg("pooling kind %d, geometry %zu: gradient %zu is %g, expected %g",
                             ki, gi, i, dx[i], expected[i]);
        }
    gsl_rng_free(rng);
}

static void pooling_values(void **state)
{
    /* One 4x4 single-channel image, pooled 2x2 with stride 2. */
    static const float x[16] = {1, 5, 2, 0, -3, 4, 7, 8, 0, 0, -1, -2, 6, -6, -5, 3};
    hpo_pool_geom g = {.in_h = 4, .in_w = 4, .c = 1, .out_h = 2, .out_w = 2, .size = 2,
                       .stride = 2};
    float y[4];
    int32_t arg[4];
    static const float max[4] = {5, 8, 6, 3}, min[4] = {-3, 0, -6, -5};
    static const float avg[4] = {7.0f / 4, 17.0f / 4, 0, -5.0f / 4};

    hpo_pool_forward(HPO_POOL_MAX, &g, 1, x, y, arg);
    for (int i = 0; i < 4; i++)
        assert_float_equal(y[i], max[i], 0);
    assert_int_equal(arg[0], 1);
    assert_int_equal(arg[1], 7);
    hpo_pool_forward(HPO_POOL_MIN, &g, 1, x, y, arg);
    for (int i = 0; i < 4; i++)
        assert_float_equal(y[i], min[i], 0);
    hpo_pool_forward(HPO_POOL_AVG, &g, 1, x, y, NULL);
    for (int i = 0; i < 4; i++)
        assert_float_equal(y[i], avg[i], 1e-6);
}

/* Dropout drops about `rate` of the units, scales the rest by
 * 1 / (1 - rate), gives each image its own mask, and draws the same masks
 * on 1 thread as on 2. */
static void dropout_masks(void **state)
{
    enum { N = 8, H = 16, C = 4, SIZE = H * H * C };
    hpo_layer_spec layers[] = {
        {.kind = HPO_LAYER_DROPOUT, .rate = 0.3f}, FLATTEN, HEAD,
    };
    hpo_model_spec spec = {
        .n_layers = 3, .layers = layers, .input_h = H, .input_w = H, .input_c = C,
        .optimizer = HPO_OPT_ADAM, .learning_rate = 1e-3, .batch_size = N,
    };
    static float x[N * SIZE], masks[2][N * SIZE];
    for (size_t i = 0; i < sizeof x / sizeof *x; i++)
        x[i] = 1.0f;
    char err[HPO_ERR_MAX] = "";

    for (int run = 0; run < 2; run++) {
        hpo_net *net = NULL;
        int threads = omp_get_max_threads();
        omp_set_num_threads(run == 0 ? 1 : 2);
        assert_int_equal(hpo_net_create(&spec, &hpo_kernels_reference, N, 5, &net, err,
                                        sizeof err), 0);
        hpo_net_forward(net, x, N, true);
        memcpy(masks[run], net->layers[0].mask, sizeof masks[run]);
        omp_set_num_threads(threads);
        hpo_net_destroy(&net);
    }

    assert_memory_equal(masks[0], masks[1], sizeof masks[0]);
    int dropped = 0;
    for (int i = 0; i < N * SIZE; i++) {
        if (masks[0][i] == 0.0f)
            dropped++;
        else
            assert_float_equal(masks[0][i], 1.0 / 0.7, 1e-6);
    }
    /* 8,192 draws at p = 0.3: the standard deviation is 41 units. */
    assert_in_range(dropped, 0.3 * N * SIZE - 250, 0.3 * N * SIZE + 250);
    assert_memory_not_equal(masks[0], masks[0] + SIZE, SIZE * sizeof(float));
}

/* Returns the bits of FLT_MIN / 2 computed on the calling thread: zero
 * when denormal results are flushed. */
static uint32_t half_flt_min_bits(void)
{
    volatile float tiny = 1.17549435e-38f;
    float half = tiny * 0.5f;
    uint32_t bits;
    memcpy(&bits, &half, sizeof bits);
    return bits;
}

/* After hpo_threads_apply(), the calling thread and each OpenMP thread
 * flush denormal results to zero. */
static void threads_flush_denormals(void **state)
{
    int threads = omp_get_max_threads();
    assert_int_equal(hpo_threads_apply(2, true), 2);
    int flushed = 0, team = 0;
#pragma omp parallel reduction(+ : flushed, team)
    {
        flushed += half_flt_min_bits() == 0;
        team += 1;
    }
    assert_int_equal(half_flt_min_bits(), 0);
    assert_int_equal(team, 2);
    assert_int_equal(flushed, 2);
    hpo_threads_apply(threads, true);
}

static void softmax_is_stable(void **state)
{
    /* Logits of 1000 would overflow expf without the max subtraction. */
    float z[3] = {1000.0f, 1000.0f, 998.0f};
    hpo_softmax_forward(1, 3, z);
    double e = exp(-2.0);
    assert_float_equal(z[0], 1.0 / (2.0 + e), 1e-6);
    assert_float_equal(z[2], e / (2.0 + e), 1e-6);
    uint8_t label = 2;
    int correct = -1;
    double loss = hpo_cross_entropy(1, 3, z, &label, &correct);
    assert_float_equal(loss, -log(e / (2.0 + e)), 1e-5);
    assert_int_equal(correct, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conv_classic_kernels_all),
        cmocka_unit_test(conv_same_padding_all),
        cmocka_unit_test(gradients_all_backends),
        cmocka_unit_test(conv_matches_reference),
        cmocka_unit_test(conv_direct_choice),
        cmocka_unit_test(conv_pool_fusion_exact),
        cmocka_unit_test(dense_matches_reference_all),
#if HPO_HAVE_DNNL
        cmocka_unit_test(dnnl_bf16_conv_close_to_float32),
#endif
        cmocka_unit_test(bf16_needs_dnnl),
        cmocka_unit_test(pooling_values),
        cmocka_unit_test(pooling_routes_gradients),
        cmocka_unit_test(dropout_masks),
        cmocka_unit_test(threads_flush_denormals),
        cmocka_unit_test(softmax_is_stable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
