/* The training loop: epochs, shuffled mini-batches, validation, early
 * stopping and the final test evaluation. */
#include "hpo/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "hpo/error.h"
#include "hpo/log.h"
#include "net.h"
#include "optimizer.h"
#include "threads.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Copies the images and labels of order[first .. first+n-1] into a batch. */
static void gather_batch(const hpo_dataset *d, const size_t *order, int first, int n,
                         float *x, uint8_t *labels)
{
    for (int i = 0; i < n; i++) {
        size_t src = order != NULL ? order[first + i] : (size_t)(first + i);
        memcpy(x + (size_t)i * HPO_CIFAR10_PIXELS, d->images + src * HPO_CIFAR10_PIXELS,
               HPO_CIFAR10_PIXELS * sizeof(float));
        labels[i] = d->labels[src];
    }
}

/* Mean loss and accuracy of the net on a whole dataset, in inference mode. */
static void evaluate(hpo_net *net, const hpo_dataset *d, double *loss, double *accuracy)
{
    double loss_sum = 0.0;
    long correct = 0;
    for (int first = 0; first < d->n; first += net->max_batch) {
        int n = d->n - first < net->max_batch ? d->n - first : net->max_batch;
        const float *x = d->images + (size_t)first * HPO_CIFAR10_PIXELS;
        const float *p = hpo_net_forward(net, x, n, false);
        int hits = 0;
        loss_sum += hpo_cross_entropy(n, net->classes, p, d->labels + first, &hits) * n;
        correct += hits;
    }
    *loss = d->n > 0 ? loss_sum / d->n : NAN;
    *accuracy = d->n > 0 ? (double)correct / d->n : NAN;
}

/* Returns whether `value` improves on `best` for the monitored metric. */
static bool improves(hpo_monitor monitor, double value, double best)
{
    if (isnan(value))
        return false;
    if (isnan(best))
        return true;
    return monitor == HPO_MONITOR_VAL_LOSS ? value < best : value > best;
}

int hpo_train_run(const hpo_model_spec *spec, const hpo_cifar10 *data,
                  const hpo_train_options *opt, hpo_train_result *result,
                  char *err, size_t errlen)
{
    static const hpo_train_options no_options = {0};
    const hpo_dataset *train = &data->train;
    hpo_net *net = NULL;
    hpo_optimizer optimizer = {0};
    gsl_rng *shuffle_rng = NULL;
    size_t *order = NULL;
    float *batch_x = NULL, *best_params = NULL;
    uint8_t *batch_labels = NULL;
    int rc = -1;

    if (opt == NULL)
        opt = &no_options;
    memset(result, 0, sizeof *result);
    result->val_loss = result->val_accuracy = NAN;
    result->test_loss = result->test_accuracy = NAN;

    if (train->n < 1)
        return hpo_error(err, errlen, "the training set is empty; give a train size of at "
                                      "least 1");
    const hpo_kernels *kernels = hpo_kernels_find(opt->backend);
    if (kernels == NULL)
        return hpo_error(err, errlen, "unknown backend \"%s\"; expected %s%s", opt->backend,
#if HPO_HAVE_DNNL
                         "dnnl, ",
#else
                         "",
#endif
                         "blas or reference");

    int threads = hpo_threads_apply(opt->threads, strcmp(kernels->name, "blas") != 0);
    int batch = spec->batch_size;

    /* 1. Network, optimizer and every buffer, allocated once. */
    if (hpo_net_create(spec, kernels, batch, spec->seed, &net, err, errlen) < 0)
        goto cleanup;
    if (hpo_optimizer_init(&optimizer, spec, net->n_params, err, errlen) < 0)
        goto cleanup;
    shuffle_rng = gsl_rng_alloc(gsl_rng_mt19937);
    order = malloc((size_t)train->n * sizeof *order);
    batch_x = malloc((size_t)batch * HPO_CIFAR10_PIXELS * sizeof *batch_x);
    batch_labels = malloc((size_t)batch);
    if (spec->restore_best_weights)
        best_params = malloc(net->n_params * sizeof *best_params);
    if (!shuffle_rng || !order || !batch_x || !batch_labels ||
        (spec->restore_best_weights && !best_params)) {
        hpo_error(err, errlen, "out of memory for training buffers");
        goto cleanup;
    }
    gsl_rng_set(shuffle_rng, (unsigned long)(spec->seed ^ 0x5eed5eedUL));
    for (int i = 0; i < train->n; i++)
        order[i] = (size_t)i;

    hpo_log_debug("training %zu parameters on %d images, batch %d, %d threads, %s kernels",
                  net->n_params, train->n, batch, threads, kernels->name);

    double best_metric = NAN;
    int waited = 0;
    double start = now_seconds();

    for (int epoch = 1; epoch <= spec->epochs; epoch++) {
        double epoch_start = now_seconds();
        double data_seconds = 0.0;
        double loss_sum = 0.0;
        long correct = 0;

        /* 2. One pass over the shuffled training set. */
        gsl_ran_shuffle(shuffle_rng, order, (size_t)train->n, sizeof *order);
        data_seconds += now_seconds() - epoch_start;
        for (int first = 0; first < train->n; first += batch) {
            int n = train->n - first < batch ? train->n - first : batch;
            double gather_start = now_seconds();
            gather_batch(train, order, first, n, batch_x, batch_labels);
            data_seconds += now_seconds() - gather_start;

            const float *p = hpo_net_forward(net, batch_x, n, true);
            int hits = 0;
            double loss = hpo_cross_entropy(n, net->classes, p, batch_labels, &hits);
            if (!isfinite(loss)) {
                hpo_error(err, errlen, "training diverged: loss is %g at epoch %d, image %d; "
                                       "lower the learning rate", loss, epoch, first);
                goto cleanup;
            }
            hpo_net_backward(net, batch_x, batch_labels, n, false);
            hpo_optimizer_step(&optimizer, net->params, net->grads);

            loss_sum += loss * n;
            correct += hits;
            if (opt->on_batch != NULL)
                opt->on_batch(epoch, first + n, train->n, loss_sum / (first + n),
                              (double)correct / (first + n), opt->user);
        }

        /* 3. Metrics of the epoch, validation included. */
        hpo_epoch_metrics m = {
            .epoch = epoch,
            .epochs = spec->epochs,
            .loss = loss_sum / train->n,
            .accuracy = (double)correct / train->n,
            .val_loss = NAN,
            .val_accuracy = NAN,
        };
        double train_seconds = now_seconds() - epoch_start;
        m.images_per_second = train->n / train_seconds;
        m.data_seconds = data_seconds;
        if (data->val.n > 0)
            evaluate(net, &data->val, &m.val_loss, &m.val_accuracy);
        m.seconds = now_seconds() - epoch_start;

        result->epochs_run = epoch;
        result->loss = m.loss;
        result->accuracy = m.accuracy;

        /* 4. Early stopping bookkeeping: the best epoch by the monitored
         * metric, or simply the last epoch when there is none. */
        double metric = spec->monitor == HPO_MONITOR_VAL_LOSS ? m.val_loss : m.val_accuracy;
        if (!spec->early_stopping || improves(spec->monitor, metric, best_metric) ||
            isnan(metric)) {
            best_metric = metric;
            waited = 0;
            result->best_epoch = epoch;
            result->val_loss = m.val_loss;
            result->val_accuracy = m.val_accuracy;
            if (best_params != NULL)
                memcpy(best_params, net->params, net->n_params * sizeof *best_params);
        } else {
            waited++;
        }

        if (opt->on_epoch != NULL && opt->on_epoch(&m, opt->user) != 0) {
            result->interrupted = true;
            break;
        }
        if (spec->early_stopping && waited >= spec->patience) {
            result->stopped_early = true;
            break;
        }
    }

    /* 5. Keep the best weights when asked; otherwise the last epoch's
     * weights are kept and reported. */
    if (best_params != NULL && result->best_epoch != result->epochs_run)
        memcpy(net->params, best_params, net->n_params * sizeof *best_params);
    if (best_params == NULL && result->best_epoch != result->epochs_run &&
        data->val.n > 0) {
        result->best_epoch = result->epochs_run;
        evaluate(net, &data->val, &result->val_loss, &result->val_accuracy);
    }
    result->seconds = now_seconds() - start;

    if (opt->evaluate_test && data->test.n > 0)
        evaluate(net, &data->test, &result->test_loss, &result->test_accuracy);
    rc = 0;

cleanup:
    hpo_net_destroy(&net);
    hpo_optimizer_free(&optimizer);
    if (shuffle_rng != NULL)
        gsl_rng_free(shuffle_rng);
    free(order);
    free(batch_x);
    free(batch_labels);
    free(best_params);
    return rc;
}
