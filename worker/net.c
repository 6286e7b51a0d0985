/* Network construction, forward and backward passes. */
#include "net.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hpo/error.h"

static hpo_pool_kind pool_kind(hpo_layer_kind kind)
{
    if (kind == HPO_LAYER_MINPOOL2D)
        return HPO_POOL_MIN;
    if (kind == HPO_LAYER_AVGPOOL2D)
        return HPO_POOL_AVG;
    return HPO_POOL_MAX;
}

static void *alloc_floats(size_t count)
{
    /* 64-byte alignment suits AVX-512 loads; round the size up to match. */
    size_t bytes = (count * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes ? bytes : 64);
}

/* Fills the geometry of layer l from its spec and input shape. */
static void layer_set_geometry(hpo_net_layer *l, bool bf16)
{
    const hpo_layer_spec *s = &l->spec;
    int same = s->padding == HPO_PAD_SAME;

    if (s->kind == HPO_LAYER_CONV2D) {
        l->conv = (hpo_conv_geom){
            .in_h = l->in.h, .in_w = l->in.w, .in_c = l->in.c,
            .out_h = l->out.h, .out_w = l->out.w, .out_c = l->out.c,
            .kernel = s->kernel_size, .stride = s->stride,
            .pad_top = hpo_padding_before(l->in.h, l->out.h, s->kernel_size, s->stride, same),
            .pad_left = hpo_padding_before(l->in.w, l->out.w, s->kernel_size, s->stride, same),
            .activation = s->activation,
            .bf16 = bf16,
        };
        l->n_weights = (size_t)s->kernel_size * s->kernel_size * l->in.c * s->filters;
    } else if (s->kind == HPO_LAYER_MAXPOOL2D || s->kind == HPO_LAYER_MINPOOL2D ||
               s->kind == HPO_LAYER_AVGPOOL2D) {
        l->pool = (hpo_pool_geom){
            .in_h = l->in.h, .in_w = l->in.w, .c = l->in.c,
            .out_h = l->out.h, .out_w = l->out.w,
            .size = s->pool_size, .stride = s->stride,
            .pad_top = hpo_padding_before(l->in.h, l->out.h, s->pool_size, s->stride, same),
            .pad_left = hpo_padding_before(l->in.w, l->out.w, s->pool_size, s->stride, same),
        };
    } else if (s->kind == HPO_LAYER_DENSE) {
        l->n_weights = l->in_size * (size_t)s->units;
    }
}

/* Glorot uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)); for a
 * convolution both fans include the kernel area, as in Keras. */
static void layer_init_weights(hpo_net_layer *l, gsl_rng *rng)
{
    double fan_in, fan_out;
    if (l->spec.kind == HPO_LAYER_CONV2D) {
        double area = (double)l->spec.kernel_size * l->spec.kernel_size;
        fan_in = area * l->in.c;
        fan_out = area * l->spec.filters;
    } else {
        fan_in = (double)l->in_size;
        fan_out = l->spec.units;
    }
    double limit = sqrt(6.0 / (fan_in + fan_out));
    for (size_t i = 0; i < l->n_weights; i++)
        l->w[i] = (float)((2.0 * gsl_rng_uniform(rng) - 1.0) * limit);
    memset(l->b, 0, (size_t)l->out.c * sizeof *l->b);
}

int hpo_net_create(const hpo_model_spec *spec, const hpo_kernels *kernels, int max_batch,
                   uint64_t seed, hpo_net **out, char *err, size_t errlen)
{
    hpo_net *net = NULL;
    hpo_shape *shapes = NULL;

    *out = NULL;
    if (max_batch < 1)
        return hpo_error(err, errlen, "batch size %d must be at least 1", max_batch);
    if (hpo_model_spec_validate(spec, err, errlen) < 0 ||
        hpo_kernels_check_precision(kernels, spec->precision, err, errlen) < 0)
        return -1;

    net = calloc(1, sizeof *net);
    shapes = calloc((size_t)spec->n_layers, sizeof *shapes);
    if (net == NULL || shapes == NULL)
        goto oom;
    net->kernels = kernels;
    net->n_layers = spec->n_layers;
    net->max_batch = max_batch;
    net->layers = calloc((size_t)spec->n_layers, sizeof *net->layers);
    net->rng = gsl_rng_alloc(gsl_rng_mt19937);
    if (net->layers == NULL || net->rng == NULL)
        goto oom;
    gsl_rng_set(net->rng, (unsigned long)seed);
    hpo_model_spec_shapes(spec, shapes, NULL, 0);

    /* 1. Shapes, geometry and the sizes of every buffer. */
    hpo_shape in = {spec->input_h, spec->input_w, spec->input_c};
    size_t max_values = (size_t)in.h * in.w * in.c;
    size_t scratch = 0;
    for (int i = 0; i < net->n_layers; i++) {
        hpo_net_layer *l = &net->layers[i];
        l->spec = spec->layers[i];
        l->in = in;
        l->out = shapes[i];
        l->in_size = (size_t)in.h * in.w * in.c;
        l->out_size = (size_t)l->out.h * l->out.w * l->out.c;
        layer_set_geometry(l, spec->precision == HPO_PRECISION_BFLOAT16);
        if (l->n_weights > 0)
            net->n_params += l->n_weights + (size_t)l->out.c;
        if (l->spec.kind == HPO_LAYER_CONV2D) {
            size_t s = kernels->conv2d_scratch_floats(&l->conv, max_batch);
            scratch = s > scratch ? s : scratch;
        }
        max_values = l->out_size > max_values ? l->out_size : max_values;
        in = l->out;
    }
    net->classes = net->layers[net->n_layers - 1].out.c;

    /* 2. One allocation per buffer, each sized for the largest batch. */
    net->params = alloc_floats(net->n_params);
    net->grads = alloc_floats(net->n_params);
    net->scratch = alloc_floats(scratch);
    net->grad_a = alloc_floats(max_values * max_batch);
    net->grad_b = alloc_floats(max_values * max_batch);
    if (!net->params || !net->grads || !net->scratch || !net->grad_a || !net->grad_b)
        goto oom;

    size_t offset = 0;
    for (int i = 0; i < net->n_layers; i++) {
        hpo_net_layer *l = &net->layers[i];
        size_t values = l->out_size * (size_t)max_batch;
        if (l->spec.kind != HPO_LAYER_FLATTEN) {
            l->y = alloc_floats(values);
            if (l->y == NULL)
                goto oom;
        }
        if (l->spec.kind == HPO_LAYER_MAXPOOL2D || l->spec.kind == HPO_LAYER_MINPOOL2D ||
            l->spec.kind == HPO_LAYER_AVGPOOL2D) {
            l->arg = malloc(values * sizeof *l->arg);
            if (l->arg == NULL)
                goto oom;
        }
        if (l->spec.kind == HPO_LAYER_DROPOUT) {
            l->mask = alloc_floats(values);
            if (l->mask == NULL)
                goto oom;
        }
        if (l->n_weights > 0) {
            l->w = net->params + offset;
            l->dw = net->grads + offset;
            offset += l->n_weights;
            l->b = net->params + offset;
            l->db = net->grads + offset;
            offset += (size_t)l->out.c;
            layer_init_weights(l, net->rng);
        }
    }
    memset(net->grads, 0, net->n_params * sizeof *net->grads);

    free(shapes);
    *out = net;
    return 0;

oom:
    free(shapes);
    hpo_net_destroy(&net);
    return hpo_error(err, errlen, "out of memory allocating the network for batch size %d",
                     max_batch);
}

void hpo_net_destroy(hpo_net **netp)
{
    if (netp == NULL || *netp == NULL)
        return;
    hpo_net *net = *netp;
    if (net->layers != NULL) {
        for (int i = 0; i < net->n_layers; i++) {
            free(net->layers[i].y);
            free(net->layers[i].arg);
            free(net->layers[i].mask);
        }
    }
    free(net->layers);
    free(net->params);
    free(net->grads);
    free(net->scratch);
    free(net->grad_a);
    free(net->grad_b);
    if (net->rng != NULL)
        gsl_rng_free(net->rng);
    free(net);
    *netp = NULL;
}

/* Returns the next 64 bits of a SplitMix64 generator. */
static inline uint64_t splitmix64_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Inverted dropout: kept units are scaled by 1 / (1 - rate) in training so
 * that inference needs no scaling. Each batch draws one seed from the
 * net's generator. Each image's mask comes from its own SplitMix64 stream,
 * started from that seed and the image's index. So images run in parallel,
 * and the masks do not depend on the thread count. */
static void dropout_forward(hpo_net *net, hpo_net_layer *l, const float *x, int n,
                            bool training)
{
    const size_t per_image = l->out_size, count = per_image * (size_t)n;
    if (!training) {
        memcpy(l->y, x, count * sizeof *x);
        return;
    }
    if (!net->freeze_dropout) {
        const float keep = 1.0f / (1.0f - l->spec.rate);
        const uint32_t drop_below = (uint32_t)(l->spec.rate * 4294967296.0);
        const uint64_t high = gsl_rng_get(net->rng);
        const uint64_t seed = high << 32 ^ gsl_rng_get(net->rng);
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) {
            uint64_t state = seed + (uint64_t)i * 0xd1b54a32d192ed03u;
            float *mask = l->mask + (size_t)i * per_image;
            for (size_t j = 0; j < per_image; j += 2) {
                uint64_t bits = splitmix64_next(&state);
                mask[j] = (uint32_t)bits < drop_below ? 0.0f : keep;
                if (j + 1 < per_image)
                    mask[j + 1] = (uint32_t)(bits >> 32) < drop_below ? 0.0f : keep;
            }
        }
    }
#pragma omp parallel for schedule(static) if (count >= 65536)
    for (size_t i = 0; i < count; i++)
        l->y[i] = x[i] * l->mask[i];
}

/* Returns whether pooling layer i can apply the activation derivative of
 * the convolution below it. Max and min pooling pass each output's
 * gradient to the input element it took, whose activation value is the
 * output's own. So the derivative computed from the pooled values and
 * applied to the pooled gradient gives the same result as on the
 * convolution's gradient, on a tensor a window's area smaller. */
static bool pool_takes_activation(const hpo_net *net, int i)
{
    const hpo_net_layer *l = &net->layers[i];
    return i > 0 && l->spec.kind != HPO_LAYER_AVGPOOL2D &&
           net->layers[i - 1].spec.kind == HPO_LAYER_CONV2D;
}

/* Runs convolution i and the max or min pooling right after it in one
 * pass where the backend can, writing only the pooling's output and arg.
 * The convolution's own output buffer then goes stale, which nothing
 * reads: the pooling's backward pass needs only arg and its own output
 * (pool_takes_activation), and the convolution's needs its input. */
static bool conv_pool_fused(hpo_net *net, int i, int n, const float *in)
{
    const hpo_net_layer *l = &net->layers[i];
    if (net->kernels->conv2d_pool_forward == NULL || i + 1 >= net->n_layers)
        return false;
    hpo_net_layer *next = &net->layers[i + 1];
    if (next->spec.kind != HPO_LAYER_MAXPOOL2D && next->spec.kind != HPO_LAYER_MINPOOL2D)
        return false;
    return net->kernels->conv2d_pool_forward(&l->conv, pool_kind(next->spec.kind), &next->pool,
                                             n, in, l->w, l->b, next->y, next->arg);
}

const float *hpo_net_forward(hpo_net *net, const float *x, int n, bool training)
{
    const hpo_kernels *k = net->kernels;
    const float *in = x;
    bool pooled = false; /* the convolution below this layer did its pooling */

    for (int i = 0; i < net->n_layers; i++) {
        hpo_net_layer *l = &net->layers[i];
        size_t count = l->out_size * (size_t)n;

        switch (l->spec.kind) {
        case HPO_LAYER_CONV2D:
            if (conv_pool_fused(net, i, n, in)) {
                pooled = true;
                break;
            }
            k->conv2d_forward(&l->conv, n, in, l->w, l->b, l->y, net->scratch);
            break;
        case HPO_LAYER_MAXPOOL2D:
        case HPO_LAYER_MINPOOL2D:
        case HPO_LAYER_AVGPOOL2D:
            if (!pooled)
                hpo_pool_forward(pool_kind(l->spec.kind), &l->pool, n, in, l->y, l->arg);
            pooled = false;
            break;
        case HPO_LAYER_GLOBAL_AVGPOOL:
            hpo_global_avgpool_forward(n, l->in.h * l->in.w, l->in.c, in, l->y);
            break;
        case HPO_LAYER_DROPOUT:
            dropout_forward(net, l, in, n, training);
            break;
        case HPO_LAYER_FLATTEN:
            break;
        case HPO_LAYER_DENSE:
            k->dense_forward(n, (int)l->in_size, l->spec.units, in, l->w, l->b, l->y);
            if (l->spec.activation == HPO_ACT_SOFTMAX)
                hpo_softmax_forward(n, l->spec.units, l->y);
            else
                hpo_activation_forward(l->spec.activation, count, l->y);
            break;
        }
        l->output = l->y != NULL ? l->y : in;
        in = l->output;
    }
    return in;
}

void hpo_net_backward(hpo_net *net, const float *x, const uint8_t *labels, int n,
                      bool want_input_grad)
{
    const hpo_kernels *k = net->kernels;
    hpo_net_layer *head = &net->layers[net->n_layers - 1];
    float *grad = net->grad_a;  /* gradient w.r.t. the current layer's output */
    float *spare = net->grad_b;

    /* Set when a pooling layer has applied the activation derivative of
     * the layer below it, or done that layer's whole backward pass, which
     * the layer then skips. */
    bool activation_done = false, conv_done = false;

    hpo_cross_entropy_backward(n, net->classes, head->output, labels, grad);

    for (int i = net->n_layers - 1; i >= 0; i--) {
        hpo_net_layer *l = &net->layers[i];
        const float *in = i > 0 ? net->layers[i - 1].output : x;
        size_t count = l->out_size * (size_t)n;
        bool need_dx = i > 0 || want_input_grad;
        float *dx = need_dx ? spare : NULL;

        switch (l->spec.kind) {
        case HPO_LAYER_CONV2D:
            if (conv_done) {
                conv_done = false;
                activation_done = false;
                break;
            }
            if (!activation_done)
                hpo_activation_backward(l->spec.activation, count, l->y, grad);
            activation_done = false;
            k->conv2d_backward(&l->conv, n, in, l->w, grad, dx, l->dw, l->db, net->scratch);
            break;
        case HPO_LAYER_DENSE:
            /* The softmax head's gradient w.r.t. its logits is already in
             * grad (cross-entropy backward). */
            if (l->spec.activation != HPO_ACT_SOFTMAX)
                hpo_activation_backward(l->spec.activation, count, l->y, grad);
            k->dense_backward(n, (int)l->in_size, l->spec.units, in, l->w, grad, dx, l->dw,
                              l->db);
            break;
        case HPO_LAYER_MAXPOOL2D:
        case HPO_LAYER_MINPOOL2D:
        case HPO_LAYER_AVGPOOL2D:
            if (dx == NULL)
                break;
            if (pool_takes_activation(net, i)) {
                hpo_activation_backward(net->layers[i - 1].spec.activation, count, l->y, grad);
                activation_done = true;
            }
            /* The first layer's convolution needs no input gradient, so it
             * can take its weight gradient straight from this pooling's. */
            if (i == 1 && !want_input_grad && k->conv2d_pool_backward_weights != NULL &&
                net->layers[0].spec.kind == HPO_LAYER_CONV2D &&
                k->conv2d_pool_backward_weights(&net->layers[0].conv, pool_kind(l->spec.kind),
                                                &l->pool, n, x, grad, l->arg, net->layers[0].dw,
                                                net->layers[0].db)) {
                conv_done = true;
                dx = NULL;
                break;
            }
            hpo_pool_backward(pool_kind(l->spec.kind), &l->pool, n, grad, l->arg, dx);
            break;
        case HPO_LAYER_GLOBAL_AVGPOOL:
            if (dx != NULL)
                hpo_global_avgpool_backward(n, l->in.h * l->in.w, l->in.c, grad, dx);
            break;
        case HPO_LAYER_DROPOUT:
#pragma omp parallel for schedule(static) if (count >= 65536)
            for (size_t j = 0; j < count; j++)
                grad[j] *= l->mask[j];
            dx = grad;
            break;
        case HPO_LAYER_FLATTEN:
            dx = grad;
            break;
        }

        if (dx != NULL && dx != grad) {
            spare = grad;
            grad = dx;
        }
    }
    net->input_grad = want_input_grad ? grad : NULL;
}
