/* Trains one model spec on CIFAR-10 and reports per-epoch metrics. This is
 * the code path of both `hpo-worker train` and the trials that the
 * coordinator hands out. */
#ifndef HPO_TRAINER_H
#define HPO_TRAINER_H

#include <stdbool.h>
#include <stddef.h>

#include "hpo/cifar10.h"
#include "hpo/model.h"

typedef struct {
    int epoch;          /* 1-based */
    int epochs;         /* planned epochs */
    double loss, accuracy;          /* training, averaged over the epoch */
    double val_loss, val_accuracy;  /* NAN when there is no validation set */
    double seconds;                 /* wall time of the epoch */
    double images_per_second;       /* training images per second */
    double data_seconds;            /* of the training time, spent shuffling
                                       and copying images into batches */
} hpo_epoch_metrics;

/* Called after every epoch. Returning non-zero stops training after this
 * epoch (the coordinator uses this to stop a trial). */
typedef int (*hpo_epoch_callback)(const hpo_epoch_metrics *metrics, void *user);

/* Called every few batches with the images done so far in the epoch. */
typedef void (*hpo_batch_callback)(int epoch, int done, int total,
                                   double loss, double accuracy, void *user);

typedef struct {
    int threads;           /* 0 means one per online CPU */
    const char *backend;   /* layer kernels: NULL for the default, "dnnl"
                              (when built), "blas", or "reference" (slow
                              plain loops, for tests) */
    hpo_epoch_callback on_epoch;
    hpo_batch_callback on_batch;
    void *user;            /* passed to both callbacks */
    bool evaluate_test;    /* evaluate the test set after training */
} hpo_train_options;

typedef struct {
    int epochs_run;
    int best_epoch;        /* epoch whose weights were kept */
    bool stopped_early;    /* early stopping triggered */
    bool interrupted;      /* a callback asked to stop */
    double loss, accuracy;             /* last epoch's training metrics */
    double val_loss, val_accuracy;     /* of the kept weights */
    double test_loss, test_accuracy;   /* NAN unless evaluate_test */
    double seconds;                    /* training wall time */
} hpo_train_result;

/* Trains spec on data->train, validates on data->val after each epoch and,
 * if asked, evaluates data->test at the end. Returns -1 with a message for
 * invalid specs, allocation failures and non-finite losses ("diverged"). */
int hpo_train_run(const hpo_model_spec *spec, const hpo_cifar10 *data,
                  const hpo_train_options *opt, hpo_train_result *result,
                  char *err, size_t errlen);

#endif
