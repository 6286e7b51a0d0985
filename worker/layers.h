/* Pooling, activation and softmax kernels shared by all backends. Tensors
 * are float32 NHWC, as in kernels.h. */
#ifndef HPO_WORKER_LAYERS_H
#define HPO_WORKER_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "hpo/model.h"

typedef enum { HPO_POOL_MAX = 0, HPO_POOL_MIN, HPO_POOL_AVG } hpo_pool_kind;

typedef struct {
    int in_h, in_w, c;
    int out_h, out_w;
    int size, stride;
    int pad_top, pad_left;
} hpo_pool_geom;

/* Max and min pooling record in `arg` the index, within its image, of the
 * input element that each output took; the backward pass routes the
 * gradient there. Average pooling divides by the number of window elements
 * inside the image (TensorFlow's rule for "same" padding) and ignores arg. */
void hpo_pool_forward(hpo_pool_kind kind, const hpo_pool_geom *g, int n, const float *x,
                      float *y, int32_t *arg);
void hpo_pool_backward(hpo_pool_kind kind, const hpo_pool_geom *g, int n, const float *dy,
                       const int32_t *arg, float *dx);

/* Mean over height and width: [n][h*w][c] -> [n][c]. */
void hpo_global_avgpool_forward(int n, int pixels, int c, const float *x, float *y);
void hpo_global_avgpool_backward(int n, int pixels, int c, const float *dy, float *dx);

/* Copies the bias b[cols] into every row of y[rows][cols]; a GEMM with
 * beta = 1 then adds the product. */
void hpo_bias_broadcast(int rows, int cols, const float *b, float *y);

/* sums[c] = sum over rows of a[r][c]: the bias gradient of a layer whose
 * output gradient is a[rows][cols]. */
void hpo_column_sums(int rows, int cols, const float *a, float *sums);

/* Applies relu or tanh in place; linear does nothing. */
void hpo_activation_forward(hpo_activation act, size_t count, float *y);

/* Multiplies dy in place by the activation's derivative, computed from the
 * activation's output y: relu 1[y > 0], tanh 1 - y^2. */
void hpo_activation_backward(hpo_activation act, size_t count, const float *y, float *dy);

/* Replaces each row of logits [n][classes] by its softmax, computed as
 * exp(z - max z) / sum exp(z - max z) for stability. */
void hpo_softmax_forward(int n, int classes, float *z);

/* Mean cross-entropy of the probabilities p [n][classes] against labels,
 * -1/n sum log p[i][label_i] with p clipped at 1e-7 as Keras does, and the
 * count of rows whose largest probability is the label. */
double hpo_cross_entropy(int n, int classes, const float *p, const uint8_t *labels,
                         int *correct);

/* dz = (p - onehot(label)) / n, the gradient of the mean cross-entropy with
 * respect to the logits of a softmax layer. */
void hpo_cross_entropy_backward(int n, int classes, const float *p, const uint8_t *labels,
                                float *dz);

#endif
