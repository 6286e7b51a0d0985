/* Model spec: JSON parsing, validation, shapes and parameter counts. */
#include "hpo/model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpo/cifar10.h"
#include "hpo/error.h"

/* Largest value accepted for any size field (filters, units, kernel_size,
 * batch_size, epochs). It bounds allocations made from untrusted specs. */
#define SPEC_MAX_INT 1000000

static const char *const layer_kind_names[] = {
    "conv2d", "maxpool2d", "avgpool2d", "minpool2d",
    "global_avgpool", "dropout", "flatten", "dense",
};

const char *hpo_layer_kind_name(hpo_layer_kind kind)
{
    return layer_kind_names[kind];
}

static const char *const activation_names[] = {"linear", "relu", "tanh", "softmax"};

/* ---- Field readers ----------------------------------------------------- */

/* Reads an optional integer field; keeps *out when absent. */
static int read_int(const cJSON *obj, const char *field, const char *where,
                    int min, int *out, char *err, size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (item == NULL)
        return 0;
    if (!cJSON_IsNumber(item))
        return hpo_error(err, errlen, "%s.%s: expected an integer", where, field);
    double v = item->valuedouble;
    if (!isfinite(v) || v != floor(v))
        return hpo_error(err, errlen, "%s.%s: %g is not an integer", where, field, v);
    if (v < min)
        return hpo_error(err, errlen, "%s.%s: %g must be at least %d", where, field, v, min);
    if (v > SPEC_MAX_INT)
        return hpo_error(err, errlen, "%s.%s: %g exceeds the limit %d", where, field,
                         v, SPEC_MAX_INT);
    *out = (int)v;
    return 0;
}

/* Reads an optional number field; keeps *out when absent. */
static int read_number(const cJSON *obj, const char *field, const char *where,
                       double *out, char *err, size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (item == NULL)
        return 0;
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
        return hpo_error(err, errlen, "%s.%s: expected a finite number", where, field);
    *out = item->valuedouble;
    return 0;
}

static int read_bool(const cJSON *obj, const char *field, const char *where,
                     bool *out, char *err, size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (item == NULL)
        return 0;
    if (!cJSON_IsBool(item))
        return hpo_error(err, errlen, "%s.%s: expected true or false", where, field);
    *out = cJSON_IsTrue(item);
    return 0;
}

/* Reads an optional string field that must be one of names[0..n-1]; stores
 * the index. */
static int read_enum(const cJSON *obj, const char *field, const char *where,
                     const char *const *names, int n, int *out,
                     char *err, size_t errlen)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (item == NULL)
        return 0;
    if (!cJSON_IsString(item))
        return hpo_error(err, errlen, "%s.%s: expected a string", where, field);
    for (int i = 0; i < n; i++) {
        if (strcmp(item->valuestring, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    char choices[256] = "";
    for (int i = 0; i < n; i++) {
        strncat(choices, names[i], sizeof choices - strlen(choices) - 1);
        if (i + 1 < n)
            strncat(choices, ", ", sizeof choices - strlen(choices) - 1);
    }
    return hpo_error(err, errlen, "%s.%s: unknown value \"%.64s\"; expected one of %s",
                     where, field, item->valuestring, choices);
}

/* Rejects fields outside `allowed`, so that a typo such as "filter" is an
 * error instead of a silently ignored setting. */
static int check_fields(const cJSON *obj, const char *where,
                        const char *const *allowed, char *err, size_t errlen)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, obj)
    {
        bool known = false;
        for (int i = 0; allowed[i] != NULL; i++) {
            if (strcmp(item->string, allowed[i]) == 0) {
                known = true;
                break;
            }
        }
        if (!known)
            return hpo_error(err, errlen, "%s.%.64s: unknown field", where, item->string);
    }
    return 0;
}

/* ---- Layers ------------------------------------------------------------ */

static int parse_layer(const cJSON *obj, int index, hpo_layer_spec *layer,
                       char *err, size_t errlen)
{
    static const char *const conv_fields[] = {
        "type", "filters", "kernel_size", "stride", "padding", "activation", NULL};
    static const char *const pool_fields[] = {
        "type", "pool_size", "stride", "padding", NULL};
    static const char *const dropout_fields[] = {"type", "rate", NULL};
    static const char *const plain_fields[] = {"type", NULL};
    static const char *const dense_fields[] = {"type", "units", "activation", NULL};
    static const char *const padding_names[] = {"valid", "same"};

    char where[32];
    snprintf(where, sizeof where, "layers[%d]", index);

    if (!cJSON_IsObject(obj))
        return hpo_error(err, errlen, "%s: expected an object", where);

    int kind = -1;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "type");
    if (type == NULL)
        return hpo_error(err, errlen, "%s.type: missing", where);
    if (read_enum(obj, "type", where, layer_kind_names,
                  (int)(sizeof layer_kind_names / sizeof *layer_kind_names),
                  &kind, err, errlen) < 0)
        return -1;

    memset(layer, 0, sizeof *layer);
    layer->kind = (hpo_layer_kind)kind;
    layer->stride = 1;
    layer->padding = HPO_PAD_VALID;
    layer->activation = HPO_ACT_LINEAR;

    int padding = HPO_PAD_VALID;
    int activation = HPO_ACT_LINEAR;
    double rate = 0.0;

    switch (layer->kind) {
    case HPO_LAYER_CONV2D:
        if (check_fields(obj, where, conv_fields, err, errlen) < 0)
            return -1;
        if (cJSON_GetObjectItemCaseSensitive(obj, "filters") == NULL)
            return hpo_error(err, errlen, "%s.filters: missing", where);
        if (cJSON_GetObjectItemCaseSensitive(obj, "kernel_size") == NULL)
            return hpo_error(err, errlen, "%s.kernel_size: missing", where);
        if (read_int(obj, "filters", where, 1, &layer->filters, err, errlen) < 0 ||
            read_int(obj, "kernel_size", where, 1, &layer->kernel_size, err, errlen) < 0 ||
            read_int(obj, "stride", where, 1, &layer->stride, err, errlen) < 0 ||
            read_enum(obj, "padding", where, padding_names, 2, &padding, err, errlen) < 0 ||
            read_enum(obj, "activation", where, activation_names, 4, &activation,
                      err, errlen) < 0)
            return -1;
        break;

    case HPO_LAYER_MAXPOOL2D:
    case HPO_LAYER_AVGPOOL2D:
    case HPO_LAYER_MINPOOL2D:
        if (check_fields(obj, where, pool_fields, err, errlen) < 0)
            return -1;
        layer->pool_size = 2;
        layer->stride = 0;
        if (read_int(obj, "pool_size", where, 1, &layer->pool_size, err, errlen) < 0 ||
            read_int(obj, "stride", where, 1, &layer->stride, err, errlen) < 0 ||
            read_enum(obj, "padding", where, padding_names, 2, &padding, err, errlen) < 0)
            return -1;
        /* Keras: the stride defaults to the pool size. */
        if (layer->stride == 0)
            layer->stride = layer->pool_size;
        break;

    case HPO_LAYER_DROPOUT:
        if (check_fields(obj, where, dropout_fields, err, errlen) < 0)
            return -1;
        if (cJSON_GetObjectItemCaseSensitive(obj, "rate") == NULL)
            return hpo_error(err, errlen, "%s.rate: missing", where);
        if (read_number(obj, "rate", where, &rate, err, errlen) < 0)
            return -1;
        if (rate < 0.0 || rate >= 1.0)
            return hpo_error(err, errlen, "%s.rate: %g is outside [0, 1)", where, rate);
        layer->rate = (float)rate;
        break;

    case HPO_LAYER_GLOBAL_AVGPOOL:
    case HPO_LAYER_FLATTEN:
        if (check_fields(obj, where, plain_fields, err, errlen) < 0)
            return -1;
        break;

    case HPO_LAYER_DENSE:
        if (check_fields(obj, where, dense_fields, err, errlen) < 0)
            return -1;
        if (cJSON_GetObjectItemCaseSensitive(obj, "units") == NULL)
            return hpo_error(err, errlen, "%s.units: missing", where);
        if (read_int(obj, "units", where, 1, &layer->units, err, errlen) < 0 ||
            read_enum(obj, "activation", where, activation_names, 4, &activation,
                      err, errlen) < 0)
            return -1;
        break;
    }

    layer->padding = (hpo_padding)padding;
    layer->activation = (hpo_activation)activation;
    return 0;
}

/* ---- Training settings ------------------------------------------------- */

static int parse_training(const cJSON *obj, hpo_model_spec *spec, char *err, size_t errlen)
{
    static const char *const fields[] = {
        "optimizer", "learning_rate", "momentum", "beta_1", "beta_2", "epsilon",
        "batch_size", "epochs", "seed", "early_stopping", "precision", NULL};
    static const char *const es_fields[] = {
        "monitor", "patience", "restore_best_weights", NULL};
    static const char *const optimizer_names[] = {"adam", "sgd"};
    static const char *const monitor_names[] = {"val_loss", "val_accuracy"};
    static const char *const precision_names[] = {"float32", "bfloat16"};

    if (!cJSON_IsObject(obj))
        return hpo_error(err, errlen, "training: expected an object");
    if (check_fields(obj, "training", fields, err, errlen) < 0)
        return -1;

    int optimizer = HPO_OPT_ADAM;
    if (read_enum(obj, "optimizer", "training", optimizer_names, 2, &optimizer,
                  err, errlen) < 0)
        return -1;
    spec->optimizer = (hpo_optimizer_kind)optimizer;

    int precision = HPO_PRECISION_FLOAT32;
    if (read_enum(obj, "precision", "training", precision_names, 2, &precision,
                  err, errlen) < 0)
        return -1;
    spec->precision = (hpo_precision)precision;

    if (read_number(obj, "learning_rate", "training", &spec->learning_rate, err, errlen) < 0 ||
        read_number(obj, "momentum", "training", &spec->momentum, err, errlen) < 0 ||
        read_number(obj, "beta_1", "training", &spec->beta1, err, errlen) < 0 ||
        read_number(obj, "beta_2", "training", &spec->beta2, err, errlen) < 0 ||
        read_number(obj, "epsilon", "training", &spec->epsilon, err, errlen) < 0 ||
        read_int(obj, "batch_size", "training", 1, &spec->batch_size, err, errlen) < 0 ||
        read_int(obj, "epochs", "training", 1, &spec->epochs, err, errlen) < 0)
        return -1;

    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(obj, "seed");
    if (seed != NULL) {
        if (!cJSON_IsNumber(seed) || seed->valuedouble < 0 ||
            seed->valuedouble != floor(seed->valuedouble) || seed->valuedouble > 9.0e15)
            return hpo_error(err, errlen,
                             "training.seed: expected a non-negative integer below 9e15");
        spec->seed = (uint64_t)seed->valuedouble;
    }

    if (!(spec->learning_rate > 0.0))
        return hpo_error(err, errlen, "training.learning_rate: %g must be positive",
                         spec->learning_rate);
    if (spec->momentum < 0.0 || spec->momentum >= 1.0)
        return hpo_error(err, errlen, "training.momentum: %g is outside [0, 1)",
                         spec->momentum);
    if (spec->beta1 < 0.0 || spec->beta1 >= 1.0)
        return hpo_error(err, errlen, "training.beta_1: %g is outside [0, 1)", spec->beta1);
    if (spec->beta2 < 0.0 || spec->beta2 >= 1.0)
        return hpo_error(err, errlen, "training.beta_2: %g is outside [0, 1)", spec->beta2);
    if (!(spec->epsilon > 0.0))
        return hpo_error(err, errlen, "training.epsilon: %g must be positive", spec->epsilon);

    const cJSON *es = cJSON_GetObjectItemCaseSensitive(obj, "early_stopping");
    if (es != NULL && !cJSON_IsNull(es) && !cJSON_IsFalse(es)) {
        if (!cJSON_IsObject(es))
            return hpo_error(err, errlen, "training.early_stopping: expected an object");
        if (check_fields(es, "training.early_stopping", es_fields, err, errlen) < 0)
            return -1;
        int monitor = HPO_MONITOR_VAL_LOSS;
        if (read_enum(es, "monitor", "training.early_stopping", monitor_names, 2,
                      &monitor, err, errlen) < 0 ||
            read_int(es, "patience", "training.early_stopping", 0, &spec->patience,
                     err, errlen) < 0 ||
            read_bool(es, "restore_best_weights", "training.early_stopping",
                      &spec->restore_best_weights, err, errlen) < 0)
            return -1;
        spec->early_stopping = true;
        spec->monitor = (hpo_monitor)monitor;
    }
    return 0;
}

/* ---- Shapes and validation --------------------------------------------- */

/* Output length along one axis, with the TensorFlow rules:
 * valid: floor((in - k) / s) + 1, same: ceil(in / s). Returns 0 when the
 * window does not fit. */
static int output_length(int in, int k, int s, hpo_padding padding)
{
    if (padding == HPO_PAD_SAME)
        return (in + s - 1) / s;
    if (k > in)
        return 0;
    return (in - k) / s + 1;
}

int hpo_model_spec_shapes(const hpo_model_spec *spec, hpo_shape *shapes,
                          char *err, size_t errlen)
{
    hpo_shape in = {spec->input_h, spec->input_w, spec->input_c};
    bool flat = false;

    for (int i = 0; i < spec->n_layers; i++) {
        const hpo_layer_spec *l = &spec->layers[i];
        hpo_shape out = in;
        int k = 0;

        switch (l->kind) {
        case HPO_LAYER_CONV2D:
        case HPO_LAYER_MAXPOOL2D:
        case HPO_LAYER_AVGPOOL2D:
        case HPO_LAYER_MINPOOL2D:
            if (flat)
                return hpo_error(err, errlen,
                                 "layers[%d].type: %s needs an image input, but an earlier "
                                 "layer flattened it", i, hpo_layer_kind_name(l->kind));
            k = l->kind == HPO_LAYER_CONV2D ? l->kernel_size : l->pool_size;
            out.h = output_length(in.h, k, l->stride, l->padding);
            out.w = output_length(in.w, k, l->stride, l->padding);
            if (out.h == 0 || out.w == 0)
                return hpo_error(err, errlen,
                                 "layers[%d].%s: %d is larger than the %dx%d input; use a "
                                 "smaller window, \"padding\": \"same\" or fewer layers "
                                 "before it", i,
                                 l->kind == HPO_LAYER_CONV2D ? "kernel_size" : "pool_size",
                                 k, in.h, in.w);
            if (l->kind == HPO_LAYER_CONV2D)
                out.c = l->filters;
            break;
        case HPO_LAYER_GLOBAL_AVGPOOL:
            if (flat)
                return hpo_error(err, errlen,
                                 "layers[%d].type: global_avgpool needs an image input, but "
                                 "an earlier layer flattened it", i);
            out = (hpo_shape){1, 1, in.c};
            flat = true;
            break;
        case HPO_LAYER_FLATTEN:
            out = (hpo_shape){1, 1, in.h * in.w * in.c};
            flat = true;
            break;
        case HPO_LAYER_DROPOUT:
            break;
        case HPO_LAYER_DENSE:
            if (!flat)
                return hpo_error(err, errlen,
                                 "layers[%d].type: dense needs a flat input; add a flatten "
                                 "or global_avgpool layer before it", i);
            out = (hpo_shape){1, 1, l->units};
            break;
        }
        if ((int64_t)out.h * out.w * out.c > SPEC_MAX_INT * 16LL)
            return hpo_error(err, errlen, "layers[%d]: output of %dx%dx%d values is too large",
                             i, out.h, out.w, out.c);
        shapes[i] = out;
        in = out;
    }
    return 0;
}

int hpo_model_spec_validate(const hpo_model_spec *spec, char *err, size_t errlen)
{
    if (spec->n_layers < 1)
        return hpo_error(err, errlen, "layers: empty; a model needs at least a dense "
                                      "softmax layer");

    for (int i = 0; i < spec->n_layers; i++) {
        const hpo_layer_spec *l = &spec->layers[i];
        bool last = i == spec->n_layers - 1;
        if (l->activation == HPO_ACT_SOFTMAX && !(last && l->kind == HPO_LAYER_DENSE))
            return hpo_error(err, errlen, "layers[%d].activation: softmax is only allowed on "
                                          "the last layer, a dense layer", i);
    }

    const hpo_layer_spec *head = &spec->layers[spec->n_layers - 1];
    if (head->kind != HPO_LAYER_DENSE || head->activation != HPO_ACT_SOFTMAX)
        return hpo_error(err, errlen,
                         "layers[%d]: the last layer must be the classifier head, a dense "
                         "layer with \"activation\": \"softmax\"", spec->n_layers - 1);
    hpo_shape *shapes = malloc(sizeof *shapes * (size_t)spec->n_layers);
    if (shapes == NULL)
        return hpo_error(err, errlen, "out of memory");
    int rc = hpo_model_spec_shapes(spec, shapes, err, errlen);
    free(shapes);
    return rc;
}

/* ---- Parsing entry points ---------------------------------------------- */

int hpo_model_spec_from_json(const cJSON *root, hpo_model_spec **out,
                             char *err, size_t errlen)
{
    static const char *const fields[] = {"input_shape", "layers", "training", "name", NULL};
    hpo_model_spec *spec = NULL;

    *out = NULL;
    if (!cJSON_IsObject(root))
        return hpo_error(err, errlen, "model: expected a JSON object");
    if (check_fields(root, "model", fields, err, errlen) < 0)
        return -1;

    spec = calloc(1, sizeof *spec);
    if (spec == NULL)
        return hpo_error(err, errlen, "out of memory");

    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    if (name != NULL && (!cJSON_IsString(name) || name->valuestring[0] == '\0' ||
                         strlen(name->valuestring) >= sizeof spec->name)) {
        free(spec);
        return hpo_error(err, errlen, "name: expected a string of 1 to %zu characters",
                         sizeof spec->name - 1);
    }
    snprintf(spec->name, sizeof spec->name, "%s",
             name != NULL ? name->valuestring : "sequential");

    /* Defaults follow Keras: Adam(1e-3, 0.9, 0.999, 1e-7), batch size 32. */
    spec->input_h = 32;
    spec->input_w = 32;
    spec->input_c = 3;
    spec->optimizer = HPO_OPT_ADAM;
    spec->learning_rate = 1e-3;
    spec->beta1 = 0.9;
    spec->beta2 = 0.999;
    spec->epsilon = 1e-7;
    spec->batch_size = 32;
    spec->epochs = 1;
    spec->seed = 1;

    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(root, "input_shape");
    if (shape != NULL) {
        int dims[3];
        if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) != 3)
            goto bad_shape;
        for (int i = 0; i < 3; i++) {
            const cJSON *d = cJSON_GetArrayItem(shape, i);
            if (!cJSON_IsNumber(d) || d->valuedouble != floor(d->valuedouble) ||
                d->valuedouble < 1 || d->valuedouble > 4096)
                goto bad_shape;
            dims[i] = (int)d->valuedouble;
        }
        if (dims[0] != 32 || dims[1] != 32 || dims[2] != 3) {
            hpo_error(err, errlen, "input_shape: [%d, %d, %d], but CIFAR-10 images are "
                                   "[32, 32, 3]", dims[0], dims[1], dims[2]);
            goto fail;
        }
    }

    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    if (!cJSON_IsArray(layers)) {
        hpo_error(err, errlen, "layers: missing or not an array");
        goto fail;
    }
    spec->n_layers = cJSON_GetArraySize(layers);
    if (spec->n_layers > 1000) {
        hpo_error(err, errlen, "layers: %d layers exceed the limit of 1000", spec->n_layers);
        goto fail;
    }
    spec->layers = calloc((size_t)spec->n_layers + 1, sizeof *spec->layers);
    if (spec->layers == NULL) {
        hpo_error(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < spec->n_layers; i++) {
        if (parse_layer(cJSON_GetArrayItem(layers, i), i, &spec->layers[i], err, errlen) < 0)
            goto fail;
    }

    const cJSON *training = cJSON_GetObjectItemCaseSensitive(root, "training");
    if (training != NULL && parse_training(training, spec, err, errlen) < 0)
        goto fail;

    if (hpo_model_spec_validate(spec, err, errlen) < 0)
        goto fail;
    const hpo_layer_spec *head = &spec->layers[spec->n_layers - 1];
    if (head->units != HPO_CIFAR10_CLASSES) {
        hpo_error(err, errlen, "layers[%d].units: %d, but the softmax head must have one "
                               "unit per CIFAR-10 class (10)", spec->n_layers - 1, head->units);
        goto fail;
    }

    *out = spec;
    return 0;

bad_shape:
    hpo_error(err, errlen, "input_shape: expected [height, width, channels]");
fail:
    hpo_model_spec_destroy(&spec);
    return -1;
}

int hpo_model_spec_parse(const char *json_text, hpo_model_spec **out,
                         char *err, size_t errlen)
{
    *out = NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json_text, &end, true);
    if (root == NULL) {
        int line, column;
        hpo_text_position(json_text, end != NULL ? (size_t)(end - json_text) : 0, &line,
                          &column);
        return hpo_error(err, errlen, "model: invalid JSON near line %d, column %d", line,
                         column);
    }
    int rc = hpo_model_spec_from_json(root, out, err, errlen);
    cJSON_Delete(root);
    return rc;
}

int hpo_model_spec_load_file(const char *path, hpo_model_spec **out,
                             char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return hpo_error(err, errlen, "%s: cannot open model spec: %s", path, strerror(errno));

    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (16u << 20)) {
                free(text);
                fclose(f);
                return hpo_error(err, errlen, "%s: model spec larger than 16 MiB", path);
            }
            char *grown = realloc(text, cap);
            if (grown == NULL) {
                free(text);
                fclose(f);
                return hpo_error(err, errlen, "out of memory");
            }
            text = grown;
        }
        size_t got = fread(text + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        free(text);
        return hpo_error(err, errlen, "%s: read failed", path);
    }
    text[len] = '\0';

    char inner[HPO_ERR_MAX];
    int rc = hpo_model_spec_parse(text, out, inner, sizeof inner);
    free(text);
    if (rc < 0)
        return hpo_error(err, errlen, "%s: %s", path, inner);
    return 0;
}

/* ---- Counts ------------------------------------------------------------- */

int64_t hpo_model_spec_layer_params(const hpo_model_spec *spec, int i)
{
    const hpo_layer_spec *l = &spec->layers[i];
    int in_c = spec->input_c;
    int64_t in_flat = (int64_t)spec->input_h * spec->input_w * spec->input_c;

    if (i > 0) {
        hpo_shape shapes[1000];
        if (hpo_model_spec_shapes(spec, shapes, NULL, 0) < 0)
            return -1;
        in_c = shapes[i - 1].c;
        in_flat = (int64_t)shapes[i - 1].h * shapes[i - 1].w * shapes[i - 1].c;
    }
    if (l->kind == HPO_LAYER_CONV2D)
        return (int64_t)l->kernel_size * l->kernel_size * in_c * l->filters + l->filters;
    if (l->kind == HPO_LAYER_DENSE)
        return in_flat * l->units + l->units;
    return 0;
}

double hpo_model_spec_forward_flops(const hpo_model_spec *spec)
{
    hpo_shape shapes[1000];
    if (hpo_model_spec_shapes(spec, shapes, NULL, 0) < 0)
        return 0.0;

    double flops = 0.0;
    hpo_shape in = {spec->input_h, spec->input_w, spec->input_c};
    for (int i = 0; i < spec->n_layers; i++) {
        const hpo_layer_spec *l = &spec->layers[i];
        hpo_shape out = shapes[i];
        if (l->kind == HPO_LAYER_CONV2D)
            flops += 2.0 * out.h * out.w * out.c * l->kernel_size * l->kernel_size * in.c;
        else if (l->kind == HPO_LAYER_DENSE)
            flops += 2.0 * in.h * in.w * in.c * out.c;
        in = out;
    }
    return flops;
}

void hpo_model_spec_destroy(hpo_model_spec **spec)
{
    if (spec == NULL || *spec == NULL)
        return;
    free((*spec)->layers);
    free(*spec);
    *spec = NULL;
}
