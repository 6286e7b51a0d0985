/* A network built from a model spec: parameters, activations and all the
 * buffers of one training step, allocated once at creation for the largest
 * batch and reused by every batch. */
#ifndef HPO_WORKER_NET_H
#define HPO_WORKER_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_rng.h>

#include "hpo/model.h"
#include "kernels.h"
#include "layers.h"

typedef struct {
    hpo_layer_spec spec;
    hpo_shape in, out;
    size_t in_size, out_size;  /* floats per image */
    hpo_conv_geom conv;
    hpo_pool_geom pool;

    float *w, *b;              /* views into hpo_net.params; NULL without weights */
    float *dw, *db;            /* views into hpo_net.grads */
    size_t n_weights;

    float *y;                  /* own output buffer [max_batch][out_size], or NULL
                                  for flatten, which passes its input on */
    const float *output;       /* output of the last forward pass */
    int32_t *arg;              /* max/min pool: chosen input per output */
    float *mask;               /* dropout: 0 or 1 / (1 - rate) per element */
} hpo_net_layer;

typedef struct {
    const hpo_kernels *kernels;
    int n_layers;
    hpo_net_layer *layers;
    int max_batch;
    int classes;

    float *params;             /* all weights and biases, layer by layer */
    float *grads;              /* same layout as params */
    size_t n_params;

    float *scratch;            /* kernel scratch (im2col) */
    float *grad_a, *grad_b;    /* ping-pong buffers for backward */
    const float *input_grad;   /* gradient of the loss w.r.t. the input after
                                  backward with want_input_grad */

    gsl_rng *rng;              /* weight init and dropout masks */
    bool freeze_dropout;       /* reuse the current masks (gradient checks) */
} hpo_net;

/* Builds a net for batches of up to max_batch images with Glorot-uniform
 * weights and zero biases, drawn from seed. The caller frees it with
 * hpo_net_destroy(). */
int hpo_net_create(const hpo_model_spec *spec, const hpo_kernels *kernels, int max_batch,
                   uint64_t seed, hpo_net **out, char *err, size_t errlen);
void hpo_net_destroy(hpo_net **net);

/* Runs n images x [n][h][w][c] through the net and returns the softmax
 * probabilities [n][classes], owned by the net. Dropout is applied only
 * when training is true. */
const float *hpo_net_forward(hpo_net *net, const float *x, int n, bool training);

/* Computes grads of the mean cross-entropy for the last forward pass,
 * which must have been run on the same x with training true. */
void hpo_net_backward(hpo_net *net, const float *x, const uint8_t *labels, int n,
                      bool want_input_grad);

#endif
