/* Tests of model spec parsing, validation, shapes and parameter counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hpo/error.h"
#include "hpo/model.h"

#ifndef HPO_TEST_SOURCE_DIR
#define HPO_TEST_SOURCE_DIR "."
#endif

#define assert_contains(text, part)                                             \
    do {                                                                        \
        if (strstr((text), (part)) == NULL)                                     \
            fail_msg("message \"%s\" does not contain \"%s\"", (text), (part)); \
    } while (0)

/* Keras's model.summary() for the seed's best model (TensorFlow 2, the
 * same layer list): per-layer parameter counts of the conv and dense
 * layers, in order. */
static void seed_model_params_match_keras(void **state)
{
    static const int64_t keras[] = {7168, 1433824, 516352, 917728, 50400, 21600, 3104, 330};
    char err[HPO_ERR_MAX] = "";
    hpo_model_spec *spec = NULL;

    int rc = hpo_model_spec_load_file(HPO_TEST_SOURCE_DIR "/examples/seed-best-model.json",
                                      &spec, err, sizeof err);
    if (rc != 0)
        fail_msg("%s", err);
    assert_string_equal(spec->name, "seed-best");
    assert_int_equal(spec->n_layers, 13);

    int k = 0;
    int64_t total = 0;
    for (int i = 0; i < spec->n_layers; i++) {
        int64_t params = hpo_model_spec_layer_params(spec, i);
        total += params;
        if (spec->layers[i].kind == HPO_LAYER_CONV2D || spec->layers[i].kind == HPO_LAYER_DENSE) {
            assert_true(k < 8);
            assert_int_equal(params, keras[k]);
            k++;
        } else {
            assert_int_equal(params, 0);
        }
    }
    assert_int_equal(k, 8);
    assert_int_equal(total, 2950506);
    assert_int_equal(spec->optimizer, HPO_OPT_ADAM);
    assert_float_equal(spec->learning_rate, 5e-4, 1e-12);
    hpo_model_spec_destroy(&spec);
    assert_null(spec);
}

static void seed_model_shapes(void **state)
{
    char err[HPO_ERR_MAX] = "";
    hpo_model_spec *spec = NULL;
    hpo_shape shapes[13];

    assert_int_equal(hpo_model_spec_load_file(HPO_TEST_SOURCE_DIR
                                              "/examples/seed-best-model.json",
                                              &spec, err, sizeof err), 0);
    assert_int_equal(hpo_model_spec_shapes(spec, shapes, err, sizeof err), 0);
    /* 32 -conv3-> 30 -pool-> 15 -conv5-> 11 -conv3-> 9 -pool-> 4 (floor). */
    assert_int_equal(shapes[0].h, 30);
    assert_int_equal(shapes[1].h, 15);
    assert_int_equal(shapes[2].h, 11);
    assert_int_equal(shapes[4].h, 9);
    assert_int_equal(shapes[6].h, 4);
    assert_int_equal(shapes[6].c, 256);
    assert_int_equal(shapes[7].c, 4096);
    assert_int_equal(shapes[12].c, 10);
    hpo_model_spec_destroy(&spec);
}

static void defaults_follow_keras(void **state)
{
    const char *json =
        "{\"layers\": ["
        "{\"type\": \"conv2d\", \"filters\": 4, \"kernel_size\": 3},"
        "{\"type\": \"maxpool2d\"},"
        "{\"type\": \"flatten\"},"
        "{\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}]}";
    char err[HPO_ERR_MAX] = "";
    hpo_model_spec *spec = NULL;

    if (hpo_model_spec_parse(json, &spec, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(spec->layers[0].stride, 1);
    assert_int_equal(spec->layers[0].padding, HPO_PAD_VALID);
    assert_int_equal(spec->layers[0].activation, HPO_ACT_LINEAR);
    assert_int_equal(spec->layers[1].pool_size, 2);
    assert_int_equal(spec->layers[1].stride, 2);
    assert_int_equal(spec->optimizer, HPO_OPT_ADAM);
    assert_float_equal(spec->learning_rate, 1e-3, 1e-12);
    assert_float_equal(spec->beta2, 0.999, 1e-12);
    assert_float_equal(spec->epsilon, 1e-7, 1e-15);
    assert_int_equal(spec->batch_size, 32);
    assert_false(spec->early_stopping);
    assert_int_equal(spec->precision, HPO_PRECISION_FLOAT32);
    assert_string_equal(spec->name, "sequential");
    hpo_model_spec_destroy(&spec);
}

static void same_padding_shapes(void **state)
{
    const char *json =
        "{\"layers\": ["
        "{\"type\": \"conv2d\", \"filters\": 8, \"kernel_size\": 5, \"padding\": \"same\"},"
        "{\"type\": \"conv2d\", \"filters\": 8, \"kernel_size\": 3, \"stride\": 2,"
        " \"padding\": \"same\"},"
        "{\"type\": \"avgpool2d\", \"pool_size\": 3, \"stride\": 2, \"padding\": \"same\"},"
        "{\"type\": \"global_avgpool\"},"
        "{\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}]}";
    char err[HPO_ERR_MAX] = "";
    hpo_model_spec *spec = NULL;
    hpo_shape shapes[5];

    if (hpo_model_spec_parse(json, &spec, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_int_equal(hpo_model_spec_shapes(spec, shapes, err, sizeof err), 0);
    assert_int_equal(shapes[0].h, 32);   /* same, stride 1 */
    assert_int_equal(shapes[1].h, 16);   /* ceil(32 / 2) */
    assert_int_equal(shapes[2].h, 8);    /* ceil(16 / 2) */
    assert_int_equal(shapes[3].h, 1);
    assert_int_equal(shapes[3].c, 8);
    /* global_avgpool feeds dense 8 -> 10: 8 * 10 + 10 parameters. */
    assert_int_equal(hpo_model_spec_layer_params(spec, 4), 90);
    hpo_model_spec_destroy(&spec);
}

/* One invalid spec and a part of the message it must produce. */
typedef struct {
    const char *name;
    const char *json;
    const char *message;
} bad_spec;

#define HEAD "{\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}"
#define FLAT "{\"type\": \"flatten\"}"

static const bad_spec bad_specs[] = {
    {"invalid JSON", "{\"layers\": [", "model: invalid JSON near line 1, column 13"},
    {"invalid JSON on line 2", "{\"layers\": [\n  {\"type\": conv2d}]}",
     "model: invalid JSON near line 2, column 12"},
    {"no layers", "{\"training\": {}}", "layers: missing or not an array"},
    {"empty layers", "{\"layers\": []}", "layers: empty"},
    {"name not a string", "{\"name\": 7, \"layers\": [" FLAT ", " HEAD "]}",
     "name: expected a string of 1 to 63 characters"},
    {"unknown layer",
     "{\"layers\": [{\"type\": \"conv3d\", \"filters\": 1}, " FLAT ", " HEAD "]}",
     "layers[0].type: unknown value \"conv3d\"; expected one of conv2d"},
    {"missing type", "{\"layers\": [{\"filters\": 1}, " FLAT ", " HEAD "]}",
     "layers[0].type: missing"},
    {"zero filters",
     "{\"layers\": [{\"type\": \"conv2d\", \"filters\": 0, \"kernel_size\": 3}, " FLAT ", "
     HEAD "]}",
     "layers[0].filters: 0 must be at least 1"},
    {"fractional filters",
     "{\"layers\": [{\"type\": \"conv2d\", \"filters\": 2.5, \"kernel_size\": 3}, " FLAT ", "
     HEAD "]}",
     "layers[0].filters: 2.5 is not an integer"},
    {"string filters",
     "{\"layers\": [{\"type\": \"conv2d\", \"filters\": \"8\", \"kernel_size\": 3}, " FLAT
     ", " HEAD "]}",
     "layers[0].filters: expected an integer"},
    {"huge filters",
     "{\"layers\": [{\"type\": \"conv2d\", \"filters\": 1e12, \"kernel_size\": 3}, " FLAT ", "
     HEAD "]}",
     "layers[0].filters: 1e+12 exceeds the limit"},
    {"missing kernel size",
     "{\"layers\": [{\"type\": \"conv2d\", \"filters\": 8}, " FLAT ", " HEAD "]}",
     "layers[0].kernel_size: missing"},
    {"kernel larger than input",
     "{\"layers\": [{\"type\": \"conv2d\", \"filters\": 8, \"kernel_size\": 5},"
     "{\"type\": \"maxpool2d\", \"pool_size\": 8},"
     "{\"type\": \"conv2d\", \"filters\": 8, \"kernel_size\": 5}, " FLAT ", " HEAD "]}",
     "layers[2].kernel_size: 5 is larger than the 3x3 input"},
    {"pool larger than input",
     "{\"layers\": [{\"type\": \"maxpool2d\", \"pool_size\": 33}, " FLAT ", " HEAD "]}",
     "layers[0].pool_size: 33 is larger than the 32x32 input"},
    {"bad padding",
     "{\"layers\": [{\"type\": \"conv2d\", \"filters\": 8, \"kernel_size\": 3,"
     " \"padding\": \"full\"}, " FLAT ", " HEAD "]}",
     "layers[0].padding: unknown value \"full\"; expected one of valid, same"},
    {"bad activation",
     "{\"layers\": [{\"type\": \"conv2d\", \"filters\": 8, \"kernel_size\": 3,"
     " \"activation\": \"gelu\"}, " FLAT ", " HEAD "]}",
     "layers[0].activation: unknown value \"gelu\""},
    {"negative dropout rate",
     "{\"layers\": [" FLAT ", {\"type\": \"dropout\", \"rate\": -0.1}, " HEAD "]}",
     "layers[1].rate: -0.1 is outside [0, 1)"},
    {"dropout rate one",
     "{\"layers\": [" FLAT ", {\"type\": \"dropout\", \"rate\": 1}, " HEAD "]}",
     "layers[1].rate: 1 is outside [0, 1)"},
    {"missing dropout rate",
     "{\"layers\": [" FLAT ", {\"type\": \"dropout\"}, " HEAD "]}",
     "layers[1].rate: missing"},
    {"unknown field",
     "{\"layers\": [{\"type\": \"conv2d\", \"filter\": 8, \"kernel_size\": 3}, " FLAT ", "
     HEAD "]}",
     "layers[0].filter: unknown field"},
    {"missing softmax head",
     "{\"layers\": [" FLAT ", {\"type\": \"dense\", \"units\": 10}]}",
     "layers[1]: the last layer must be the classifier head"},
    {"softmax not last",
     "{\"layers\": [" FLAT ", {\"type\": \"dense\", \"units\": 10, \"activation\": "
     "\"softmax\"}, " HEAD "]}",
     "layers[1].activation: softmax is only allowed on the last layer"},
    {"head with wrong units",
     "{\"layers\": [" FLAT ", {\"type\": \"dense\", \"units\": 7, \"activation\": "
     "\"softmax\"}]}",
     "layers[1].units: 7, but the softmax head must have one unit per CIFAR-10 class"},
    {"dense on an image",
     "{\"layers\": [{\"type\": \"conv2d\", \"filters\": 8, \"kernel_size\": 3}, " HEAD "]}",
     "layers[1].type: dense needs a flat input"},
    {"conv after flatten",
     "{\"layers\": [" FLAT ", {\"type\": \"conv2d\", \"filters\": 8, \"kernel_size\": 1}, "
     HEAD "]}",
     "layers[1].type: conv2d needs an image input"},
    {"wrong input shape",
     "{\"input_shape\": [28, 28, 1], \"layers\": [" FLAT ", " HEAD "]}",
     "input_shape: [28, 28, 1], but CIFAR-10 images are [32, 32, 3]"},
    {"unknown optimizer",
     "{\"layers\": [" FLAT ", " HEAD "], \"training\": {\"optimizer\": \"rmsprop\"}}",
     "training.optimizer: unknown value \"rmsprop\"; expected one of adam, sgd"},
    {"negative learning rate",
     "{\"layers\": [" FLAT ", " HEAD "], \"training\": {\"learning_rate\": -0.1}}",
     "training.learning_rate: -0.1 must be positive"},
    {"zero epochs",
     "{\"layers\": [" FLAT ", " HEAD "], \"training\": {\"epochs\": 0}}",
     "training.epochs: 0 must be at least 1"},
    {"negative batch size",
     "{\"layers\": [" FLAT ", " HEAD "], \"training\": {\"batch_size\": -4}}",
     "training.batch_size: -4 must be at least 1"},
    {"bad monitor",
     "{\"layers\": [" FLAT ", " HEAD "], \"training\": {\"early_stopping\":"
     " {\"monitor\": \"loss\"}}}",
     "training.early_stopping.monitor: unknown value \"loss\""},
    {"bad precision",
     "{\"layers\": [" FLAT ", " HEAD "], \"training\": {\"precision\": \"float16\"}}",
     "training.precision: unknown value \"float16\"; expected one of float32, bfloat16"},
    {"negative patience",
     "{\"layers\": [" FLAT ", " HEAD "], \"training\": {\"early_stopping\":"
     " {\"patience\": -1}}}",
     "training.early_stopping.patience: -1 must be at least 0"},
};

static void bad_specs_rejected(void **state)
{
    for (size_t i = 0; i < sizeof bad_specs / sizeof *bad_specs; i++) {
        char err[HPO_ERR_MAX] = "";
        hpo_model_spec *spec = NULL;
        int rc = hpo_model_spec_parse(bad_specs[i].json, &spec, err, sizeof err);
        if (rc != -1)
            fail_msg("case \"%s\": accepted", bad_specs[i].name);
        assert_null(spec);
        if (strstr(err, bad_specs[i].message) == NULL)
            fail_msg("case \"%s\": message \"%s\" does not contain \"%s\"", bad_specs[i].name,
                     err, bad_specs[i].message);
    }
}

static void missing_file_names_path(void **state)
{
    char err[HPO_ERR_MAX] = "";
    hpo_model_spec *spec = NULL;
    assert_int_equal(hpo_model_spec_load_file("/nonexistent/model.json", &spec, err,
                                              sizeof err), -1);
    assert_null(spec);
    assert_contains(err, "/nonexistent/model.json: cannot open model spec");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seed_model_params_match_keras),
        cmocka_unit_test(seed_model_shapes),
        cmocka_unit_test(defaults_follow_keras),
        cmocka_unit_test(same_padding_shapes),
        cmocka_unit_test(bad_specs_rejected),
        cmocka_unit_test(missing_file_names_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
