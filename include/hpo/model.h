/* Model spec: a sequential conv net and its training settings, read from
 * JSON. The same spec is what the coordinator resolves from a study's model
 * template and sends to workers.
 *
 * {
 *   "input_shape": [32, 32, 3],
 *   "layers": [
 *     {"type": "conv2d", "filters": 32, "kernel_size": 3, "stride": 1,
 *      "padding": "valid", "activation": "relu"},
 *     {"type": "maxpool2d", "pool_size": 2},
 *     {"type": "flatten"},
 *     {"type": "dense", "units": 10, "activation": "softmax"}
 *   ],
 *   "training": {"optimizer": "adam", "learning_rate": 0.001,
 *                "batch_size": 64, "epochs": 3, "seed": 1,
 *                "precision": "float32",
 *                "early_stopping": {"monitor": "val_loss", "patience": 3,
 *                                   "restore_best_weights": true}}
 * }
 *
 * docs/model-spec.md lists every field with its default. */
#ifndef HPO_MODEL_H
#define HPO_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

typedef enum {
    HPO_LAYER_CONV2D = 0,
    HPO_LAYER_MAXPOOL2D,
    HPO_LAYER_AVGPOOL2D,
    HPO_LAYER_MINPOOL2D,
    HPO_LAYER_GLOBAL_AVGPOOL,
    HPO_LAYER_DROPOUT,
    HPO_LAYER_FLATTEN,
    HPO_LAYER_DENSE,
} hpo_layer_kind;

typedef enum {
    HPO_ACT_LINEAR = 0,
    HPO_ACT_RELU,
    HPO_ACT_TANH,
    HPO_ACT_SOFTMAX, /* only on the final dense layer */
} hpo_activation;

typedef enum { HPO_PAD_VALID = 0, HPO_PAD_SAME } hpo_padding;
typedef enum { HPO_OPT_ADAM = 0, HPO_OPT_SGD } hpo_optimizer_kind;
typedef enum { HPO_MONITOR_VAL_LOSS = 0, HPO_MONITOR_VAL_ACCURACY } hpo_monitor;

/* Arithmetic of the convolutions. Weights, gradients, optimizer state and
 * all other layers stay float32 either way. */
typedef enum {
    HPO_PRECISION_FLOAT32 = 0,
    HPO_PRECISION_BFLOAT16, /* bf16 inputs and weights, float32 sums; needs
                               the dnnl backend on a CPU with AVX512_BF16 */
} hpo_precision;

typedef struct {
    hpo_layer_kind kind;
    int filters;       /* conv2d */
    int kernel_size;   /* conv2d, square */
    int stride;        /* conv2d and pools */
    hpo_padding padding;   /* conv2d and pools */
    hpo_activation activation; /* conv2d and dense */
    int pool_size;     /* pools, square */
    float rate;        /* dropout: fraction of units dropped, in [0, 1) */
    int units;         /* dense */
} hpo_layer_spec;

typedef struct {
    char name[64];          /* the spec's "name", else "sequential" as in Keras */
    int n_layers;
    hpo_layer_spec *layers; /* owned by the spec */
    int input_h, input_w, input_c;

    hpo_optimizer_kind optimizer;
    double learning_rate;
    double momentum;        /* sgd only */
    double beta1, beta2, epsilon; /* adam only; Keras defaults */
    int batch_size;
    int epochs;
    uint64_t seed;

    bool early_stopping;
    hpo_monitor monitor;
    int patience;
    bool restore_best_weights;

    hpo_precision precision;
} hpo_model_spec;

/* Output shape of one layer, as HWC; dense and flatten outputs have h = w = 1. */
typedef struct {
    int h, w, c;
} hpo_shape;

/* Parses and validates a spec. Errors name the layer index and field, e.g.
 * "layers[2].kernel_size: 5 is larger than the 3x3 input". On success the
 * caller frees *out with hpo_model_spec_destroy(). */
int hpo_model_spec_parse(const char *json_text, hpo_model_spec **out,
                         char *err, size_t errlen);
int hpo_model_spec_from_json(const cJSON *root, hpo_model_spec **out,
                             char *err, size_t errlen);
int hpo_model_spec_load_file(const char *path, hpo_model_spec **out,
                             char *err, size_t errlen);

/* Checks the layer sequence and shapes for any input shape and head size;
 * parsing already calls it. Parsing additionally requires the CIFAR-10
 * input shape [32, 32, 3] and a 10-unit softmax head. */
int hpo_model_spec_validate(const hpo_model_spec *spec, char *err, size_t errlen);

/* Computes the output shape of every layer into shapes[0..n_layers-1]. */
int hpo_model_spec_shapes(const hpo_model_spec *spec, hpo_shape *shapes,
                          char *err, size_t errlen);

/* Number of trainable parameters of layer i (weights plus biases). */
int64_t hpo_model_spec_layer_params(const hpo_model_spec *spec, int i);

/* Floating-point operations (2 per multiply-add) of the conv2d and dense
 * layers for one image's forward pass; used to report GFLOP/s. */
double hpo_model_spec_forward_flops(const hpo_model_spec *spec);

const char *hpo_layer_kind_name(hpo_layer_kind kind);

void hpo_model_spec_destroy(hpo_model_spec **spec);

#endif
