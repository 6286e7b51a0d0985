/* Training on real CIFAR-10: accuracy of the small model, determinism and
 * early stopping. The data folder is the first argument, else
 * $HPO_CIFAR10_DIR, else HPO_TEST_CIFAR10_DIR; without it the program
 * exits with 77 (meson's SKIP). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <gsl/gsl_errno.h>

#include "hpo/cifar10.h"
#include "hpo/error.h"
#include "hpo/model.h"
#include "hpo/trainer.h"

static const char *data_dir;

static const char *small_model =
    "{\"layers\": ["
    "{\"type\": \"conv2d\", \"filters\": 32, \"kernel_size\": 3, \"activation\": \"relu\"},"
    "{\"type\": \"maxpool2d\", \"pool_size\": 2},"
    "{\"type\": \"conv2d\", \"filters\": 64, \"kernel_size\": 3, \"activation\": \"relu\"},"
    "{\"type\": \"maxpool2d\", \"pool_size\": 2},"
    "{\"type\": \"flatten\"},"
    "{\"type\": \"dense\", \"units\": 128, \"activation\": \"relu\"},"
    "{\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}],"
    " \"training\": {\"optimizer\": \"adam\", \"learning_rate\": 0.001,"
    " \"batch_size\": 32, \"epochs\": 3, \"seed\": 1}}";

static hpo_model_spec *parse_spec(const char *json)
{
    char err[HPO_ERR_MAX] = "";
    hpo_model_spec *spec = NULL;
    if (hpo_model_spec_parse(json, &spec, err, sizeof err) != 0)
        fail_msg("%s", err);
    return spec;
}

static hpo_cifar10 *load(int train, int val, int test)
{
    hpo_cifar10_options opt;
    hpo_cifar10_options_default(&opt);
    opt.dir = data_dir;
    opt.train_size = train;
    opt.val_size = val;
    opt.test_size = test;
    char err[HPO_ERR_MAX] = "";
    hpo_cifar10 *data = NULL;
    if (hpo_cifar10_load(&opt, &data, err, sizeof err) != 0)
        fail_msg("%s", err);
    return data;
}

typedef struct {
    int epochs_seen;
    double val_loss[64];
    double loss[64];
} epoch_log;

static int record_epoch(const hpo_epoch_metrics *m, void *user)
{
    epoch_log *log = user;
    if (log->epochs_seen < 64) {
        log->val_loss[log->epochs_seen] = m->val_loss;
        log->loss[log->epochs_seen] = m->loss;
    }
    log->epochs_seen++;
    return 0;
}

/* The small model, Adam 1e-3, 3 epochs on 10,000 training images, must
 * reach 0.45 accuracy on the full 10,000-image test batch. */
static void small_model_learns(void **state)
{
    hpo_model_spec *spec = parse_spec(small_model);
    hpo_cifar10 *data = load(10000, 1000, 0);
    epoch_log log = {0};
    hpo_train_options opt = {.threads = 2, .on_epoch = record_epoch, .user = &log,
                             .evaluate_test = true};
    hpo_train_result result;
    char err[HPO_ERR_MAX] = "";

    if (hpo_train_run(spec, data, &opt, &result, err, sizeof err) != 0)
        fail_msg("%s", err);
    printf("small model: loss %.4f, val_accuracy %.4f, test_accuracy %.4f (%d test images)\n",
           result.loss, result.val_accuracy, result.test_accuracy, data->test.n);
    assert_int_equal(data->test.n, 10000);
    assert_int_equal(result.epochs_run, 3);
    assert_int_equal(log.epochs_seen, 3);
    assert_true(log.loss[2] < log.loss[0]);
    assert_true(result.test_accuracy >= 0.45);
    assert_true(result.test_accuracy <= 1.0);
    hpo_cifar10_destroy(&data);
    hpo_model_spec_destroy(&spec);
}

/* Same seed and thread count: identical losses, epoch by epoch. */
static void training_is_deterministic(void **state)
{
    hpo_model_spec *spec = parse_spec(small_model);
    spec->epochs = 2;
    hpo_cifar10 *data = load(600, 200, 1);
    epoch_log a = {0}, b = {0};
    hpo_train_result ra, rb;
    char err[HPO_ERR_MAX] = "";

    hpo_train_options opt = {.threads = 2, .on_epoch = record_epoch, .user = &a};
    assert_int_equal(hpo_train_run(spec, data, &opt, &ra, err, sizeof err), 0);
    opt.user = &b;
    assert_int_equal(hpo_train_run(spec, data, &opt, &rb, err, sizeof err), 0);
    for (int e = 0; e < 2; e++) {
        assert_true(a.loss[e] == b.loss[e]);
        assert_true(a.val_loss[e] == b.val_loss[e]);
    }

    /* A different seed gives other weights, so other losses. */
    epoch_log c = {0};
    spec->seed = 2;
    opt.user = &c;
    assert_int_equal(hpo_train_run(spec, data, &opt, &ra, err, sizeof err), 0);
    assert_true(c.loss[0] != a.loss[0]);
    hpo_cifar10_destroy(&data);
    hpo_model_spec_destroy(&spec);
}

/* On 300 images a dense net overfits within a few epochs, so val_loss
 * rises and early stopping (patience 1) must stop before 30 epochs and
 * keep the best epoch's weights: the reported val_loss is the minimum. */
static void early_stopping_restores_best(void **state)
{
    hpo_model_spec *spec = parse_spec(
        "{\"layers\": [{\"type\": \"flatten\"},"
        "{\"type\": \"dense\", \"units\": 64, \"activation\": \"relu\"},"
        "{\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}],"
        " \"training\": {\"learning_rate\": 0.003, \"batch_size\": 32, \"epochs\": 30,"
        " \"early_stopping\": {\"monitor\": \"val_loss\", \"patience\": 1,"
        " \"restore_best_weights\": true}}}");
    hpo_cifar10 *data = load(300, 300, 1);
    epoch_log log = {0};
    hpo_train_options opt = {.threads = 1, .on_epoch = record_epoch, .user = &log};
    hpo_train_result result;
    char err[HPO_ERR_MAX] = "";

    assert_int_equal(hpo_train_run(spec, data, &opt, &result, err, sizeof err), 0);
    assert_true(result.stopped_early);
    assert_true(result.epochs_run < 30);
    assert_int_equal(result.epochs_run, result.best_epoch + 1);

    double best = INFINITY;
    for (int e = 0; e < log.epochs_seen; e++)
        best = fmin(best, log.val_loss[e]);
    assert_float_equal(log.val_loss[result.best_epoch - 1], best, 0);
    assert_float_equal(result.val_loss, best, 1e-12);
    hpo_cifar10_destroy(&data);
    hpo_model_spec_destroy(&spec);
}

/* SGD with a learning rate of 1e38 on softmax regression: after one step
 * the weights are near 1e36, the logits overflow to infinity and the
 * softmax gives NaN. Training must stop with a "diverged" error instead of
 * reporting garbage. */
static void divergence_is_an_error(void **state)
{
    hpo_model_spec *spec = parse_spec(
        "{\"layers\": [{\"type\": \"flatten\"},"
        "{\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}],"
        " \"training\": {\"optimizer\": \"sgd\", \"learning_rate\": 1e38, \"epochs\": 2}}");
    hpo_cifar10 *data = load(256, 0, 1);
    hpo_train_options opt = {.threads = 1};
    hpo_train_result result;
    char err[HPO_ERR_MAX] = "";

    assert_int_equal(hpo_train_run(spec, data, &opt, &result, err, sizeof err), -1);
    if (strstr(err, "training diverged") == NULL)
        fail_msg("unexpected message: %s", err);
    hpo_cifar10_destroy(&data);
    hpo_model_spec_destroy(&spec);
}

int main(int argc, char **argv)
{
    gsl_set_error_handler_off();
    data_dir = argc > 1 ? argv[1] : getenv("HPO_CIFAR10_DIR");
    if (data_dir == NULL || data_dir[0] == '\0')
        data_dir = HPO_TEST_CIFAR10_DIR;
    struct stat st;
    if (stat(data_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        printf("SKIP: CIFAR-10 not found at %s; set HPO_CIFAR10_DIR to the folder of "
               "data_batch_1.bin ... test_batch.bin\n", data_dir);
        return 77;
    }

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(divergence_is_an_error),
        cmocka_unit_test(training_is_deterministic),
        cmocka_unit_test(early_stopping_restores_best),
        cmocka_unit_test(small_model_learns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
