/* `hpo-worker train --model M.json --data DIR`: the standalone training
 * command. Output follows Keras: a model summary, one progress line per
 * epoch, then the test accuracy. */
#include "train_cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <gsl/gsl_errno.h>

#include "hpo/cifar10.h"
#include "hpo/error.h"
#include "hpo/log.h"
#include "hpo/model.h"
#include "hpo/trainer.h"

typedef struct {
    bool json;
    bool tty;
    double last_draw;   /* seconds on the batch clock of the last redraw */
    int batches_drawn;
} cli_state;

static void usage(FILE *out)
{
    fputs("usage: hpo-worker train --model FILE [--data DIR] [options]\n"
          "\n"
          "Trains one model spec on CIFAR-10 and reports per-epoch metrics and the\n"
          "test accuracy.\n"
          "\n"
          "  --model FILE        model spec (JSON; see docs/model-spec.md)\n"
          "  --data DIR          CIFAR-10 binary folder (default $HPO_CIFAR10_DIR,\n"
          "                      else ../shared/cifar10)\n"
          "  --train-size N      training images (default: all 45,000)\n"
          "  --val-size N        validation images split off the training batches\n"
          "                      (default 5,000)\n"
          "  --test-size N       test images evaluated at the end (default 10,000;\n"
          "                      0 skips the test evaluation)\n"
          "  --epochs N          epochs (default: the spec's)\n"
          "  --batch-size N      batch size (default: the spec's)\n"
          "  --seed N            seed for weights, shuffling and the split\n"
          "                      (default: the spec's)\n"
          "  --threads N         compute threads (default: one per CPU)\n"
          "  --scaling MODE      pixel scaling: unit ([0,1], default) or standardize\n"
          "  --backend NAME      layer kernels: dnnl (the default when built with\n"
          "                      oneDNN), blas, or reference (slow, for tests)\n"
          "  --precision P       convolution arithmetic: float32 or bfloat16 (needs\n"
          "                      the dnnl backend and AVX512_BF16; default: the spec's)\n"
          "  --json              print JSON lines instead of text\n"
          "  --log-level LEVEL   debug, info, warn or error (default warn)\n",
          out);
}

/* Parses a whole decimal integer in [min, max] for option `name`. */
static int parse_int_option(const char *name, const char *text, long min, long max,
                            long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "hpo-worker train: invalid %s \"%s\": expected an integer from %ld "
                        "to %ld\n", name, text, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

static void print_summary_text(const hpo_model_spec *spec)
{
    hpo_shape shapes[1000];
    hpo_model_spec_shapes(spec, shapes, NULL, 0);

    printf("Model: \"%s\"\n", spec->name);
    printf("_________________________________________________________________\n");
    printf(" %-27s %-25s %s\n", "Layer (type)", "Output Shape", "Param #");
    printf("=================================================================\n");
    int64_t total = 0;
    int counters[8] = {0};
    bool flat = false; /* Keras prints flat outputs as (None, units) */
    for (int i = 0; i < spec->n_layers; i++) {
        const hpo_layer_spec *l = &spec->layers[i];
        char name[64], shape[64], count[32];
        int k = counters[l->kind]++;
        if (k == 0)
            snprintf(name, sizeof name, "%s", hpo_layer_kind_name(l->kind));
        else
            snprintf(name, sizeof name, "%s_%d", hpo_layer_kind_name(l->kind), k);
        if (l->kind == HPO_LAYER_FLATTEN || l->kind == HPO_LAYER_GLOBAL_AVGPOOL)
            flat = true;
        if (flat)
            snprintf(shape, sizeof shape, "(None, %d)", shapes[i].c);
        else
            snprintf(shape, sizeof shape, "(None, %d, %d, %d)", shapes[i].h, shapes[i].w,
                     shapes[i].c);
        int64_t params = hpo_model_spec_layer_params(spec, i);
        total += params;
        snprintf(count, sizeof count, "%lld", (long long)params);
        printf(" %-27s %-25s %s\n", name, shape, count);
    }
    printf("=================================================================\n");
    printf("Total params: %lld\n", (long long)total);
    printf("Trainable params: %lld\n", (long long)total);
    printf("Non-trainable params: 0\n");
    printf("_________________________________________________________________\n");
}

static void print_summary_json(const hpo_model_spec *spec)
{
    hpo_shape shapes[1000];
    hpo_model_spec_shapes(spec, shapes, NULL, 0);

    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "event", "summary");
    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    int64_t total = 0;
    for (int i = 0; i < spec->n_layers; i++) {
        cJSON *l = cJSON_CreateObject();
        int dims[3] = {shapes[i].h, shapes[i].w, shapes[i].c};
        int64_t params = hpo_model_spec_layer_params(spec, i);
        total += params;
        cJSON_AddStringToObject(l, "type", hpo_layer_kind_name(spec->layers[i].kind));
        cJSON_AddItemToObject(l, "output_shape", cJSON_CreateIntArray(dims, 3));
        cJSON_AddNumberToObject(l, "params", (double)params);
        cJSON_AddItemToArray(layers, l);
    }
    cJSON_AddNumberToObject(root, "total_params", (double)total);
    cJSON_AddNumberToObject(root, "forward_flops_per_image",
                            hpo_model_spec_forward_flops(spec));
    char *text = cJSON_PrintUnformatted(root);
    printf("%s\n", text);
    free(text);
    cJSON_Delete(root);
}

/* Draws "  done/total [=====>....] - loss: x - accuracy: y" on a terminal. */
static void on_batch(int epoch, int done, int total, double loss, double accuracy,
                     void *user)
{
    cli_state *st = user;
    if (st->json || !st->tty)
        return;
    if (++st->batches_drawn % 10 != 0 && done != total)
        return;
    char bar[31];
    int filled = (int)(30.0 * done / total);
    for (int i = 0; i < 30; i++)
        bar[i] = i < filled ? '=' : (i == filled ? '>' : '.');
    bar[30] = '\0';
    printf("\r%6d/%d [%s] - loss: %.4f - accuracy: %.4f", done, total, bar, loss, accuracy);
    fflush(stdout);
}

static int on_epoch(const hpo_epoch_metrics *m, void *user)
{
    cli_state *st = user;
    if (st->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "event", "epoch");
        cJSON_AddNumberToObject(root, "epoch", m->epoch);
        cJSON_AddNumberToObject(root, "epochs", m->epochs);
        cJSON_AddNumberToObject(root, "loss", m->loss);
        cJSON_AddNumberToObject(root, "accuracy", m->accuracy);
        if (!isnan(m->val_loss)) {
            cJSON_AddNumberToObject(root, "val_loss", m->val_loss);
            cJSON_AddNumberToObject(root, "val_accuracy", m->val_accuracy);
        }
        cJSON_AddNumberToObject(root, "seconds", m->seconds);
        cJSON_AddNumberToObject(root, "images_per_second", m->images_per_second);
        cJSON_AddNumberToObject(root, "data_seconds", m->data_seconds);
        char *text = cJSON_PrintUnformatted(root);
        printf("%s\n", text);
        free(text);
        cJSON_Delete(root);
    } else {
        if (st->tty)
            printf("\r");
        /* The seconds include validation, as in Keras; the rate counts
         * training images over the training part only. */
        printf("Epoch %d/%d [==============================] - %.1fs - %.0f training "
               "images/s - "
               "loss: %.4f - accuracy: %.4f", m->epoch, m->epochs, m->seconds,
               m->images_per_second, m->loss, m->accuracy);
        if (!isnan(m->val_loss))
            printf(" - val_loss: %.4f - val_accuracy: %.4f", m->val_loss, m->val_accuracy);
        printf("\n");
    }
    fflush(stdout);
    st->batches_drawn = 0;
    return 0;
}

static void print_result(const hpo_train_result *r, bool json)
{
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "event", "result");
        cJSON_AddNumberToObject(root, "epochs_run", r->epochs_run);
        cJSON_AddNumberToObject(root, "best_epoch", r->best_epoch);
        cJSON_AddBoolToObject(root, "stopped_early", r->stopped_early);
        cJSON_AddNumberToObject(root, "loss", r->loss);
        cJSON_AddNumberToObject(root, "accuracy", r->accuracy);
        if (!isnan(r->val_accuracy)) {
            cJSON_AddNumberToObject(root, "val_loss", r->val_loss);
            cJSON_AddNumberToObject(root, "val_accuracy", r->val_accuracy);
        }
        if (!isnan(r->test_accuracy)) {
            cJSON_AddNumberToObject(root, "test_loss", r->test_loss);
            cJSON_AddNumberToObject(root, "test_accuracy", r->test_accuracy);
        }
        cJSON_AddNumberToObject(root, "seconds", r->seconds);
        char *text = cJSON_PrintUnformatted(root);
        printf("%s\n", text);
        free(text);
        cJSON_Delete(root);
        return;
    }
    if (r->stopped_early)
        printf("Early stopping after epoch %d; kept the weights of epoch %d.\n",
               r->epochs_run, r->best_epoch);
    if (!isnan(r->test_accuracy))
        printf("Test loss: %.4f - test accuracy: %.4f\n", r->test_loss, r->test_accuracy);
}

int hpo_train_cli_main(int argc, char **argv)
{
    enum {
        OPT_MODEL = 1, OPT_DATA, OPT_TRAIN, OPT_VAL, OPT_TEST, OPT_EPOCHS, OPT_BATCH,
        OPT_SEED, OPT_THREADS, OPT_SCALING, OPT_BACKEND, OPT_PRECISION, OPT_JSON, OPT_LOG,
        OPT_HELP,
    };
    static const struct option options[] = {
        {"model", required_argument, NULL, OPT_MODEL},
        {"data", required_argument, NULL, OPT_DATA},
        {"train-size", required_argument, NULL, OPT_TRAIN},
        {"val-size", required_argument, NULL, OPT_VAL},
        {"test-size", required_argument, NULL, OPT_TEST},
        {"epochs", required_argument, NULL, OPT_EPOCHS},
        {"batch-size", required_argument, NULL, OPT_BATCH},
        {"seed", required_argument, NULL, OPT_SEED},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"scaling", required_argument, NULL, OPT_SCALING},
        {"backend", required_argument, NULL, OPT_BACKEND},
        {"precision", required_argument, NULL, OPT_PRECISION},
        {"json", no_argument, NULL, OPT_JSON},
        {"log-level", required_argument, NULL, OPT_LOG},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };

    const char *model_path = NULL, *backend = NULL;
    long epochs = 0, batch_size = 0, seed = -1, threads = 0, test_size = 10000;
    int precision = -1; /* -1: the spec's */
    hpo_cifar10_options data_opt;
    hpo_cifar10_options_default(&data_opt);
    hpo_log_level level = HPO_LOG_WARN;
    cli_state st = {0};
    long v;

    hpo_log_init("worker", level);
    gsl_set_error_handler_off();
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (c) {
        case OPT_MODEL: model_path = optarg; break;
        case OPT_DATA: data_opt.dir = optarg; break;
        case OPT_TRAIN:
            if (parse_int_option("--train-size", optarg, 1, HPO_CIFAR10_TRAIN_RECORDS, &v) < 0)
                return 2;
            data_opt.train_size = (int)v;
            break;
        case OPT_VAL:
            if (parse_int_option("--val-size", optarg, 0, HPO_CIFAR10_TRAIN_RECORDS - 1, &v) < 0)
                return 2;
            data_opt.val_size = (int)v;
            break;
        case OPT_TEST:
            if (parse_int_option("--test-size", optarg, 0, HPO_CIFAR10_BATCH_RECORDS,
                                 &test_size) < 0)
                return 2;
            break;
        case OPT_EPOCHS:
            if (parse_int_option("--epochs", optarg, 1, 100000, &epochs) < 0)
                return 2;
            break;
        case OPT_BATCH:
            if (parse_int_option("--batch-size", optarg, 1, 65536, &batch_size) < 0)
                return 2;
            break;
        case OPT_SEED:
            if (parse_int_option("--seed", optarg, 0, LONG_MAX, &seed) < 0)
                return 2;
            break;
        case OPT_THREADS:
            if (parse_int_option("--threads", optarg, 1, 1024, &threads) < 0)
                return 2;
            break;
        case OPT_SCALING:
            if (strcmp(optarg, "unit") == 0) {
                data_opt.scaling = HPO_SCALE_UNIT;
            } else if (strcmp(optarg, "standardize") == 0) {
                data_opt.scaling = HPO_SCALE_STANDARDIZE;
            } else {
                fprintf(stderr, "hpo-worker train: invalid --scaling \"%s\": expected unit "
                                "or standardize\n", optarg);
                return 2;
            }
            break;
        case OPT_BACKEND: backend = optarg; break;
        case OPT_PRECISION:
            if (strcmp(optarg, "float32") == 0) {
                precision = HPO_PRECISION_FLOAT32;
            } else if (strcmp(optarg, "bfloat16") == 0) {
                precision = HPO_PRECISION_BFLOAT16;
            } else {
                fprintf(stderr, "hpo-worker train: invalid --precision \"%s\": expected "
                                "float32 or bfloat16\n", optarg);
                return 2;
            }
            break;
        case OPT_JSON: st.json = true; break;
        case OPT_LOG:
            if (hpo_log_level_parse(optarg, &level) < 0) {
                fprintf(stderr, "hpo-worker train: invalid --log-level \"%s\": expected "
                                "debug, info, warn or error\n", optarg);
                return 2;
            }
            hpo_log_init("worker", level);
            break;
        case OPT_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hpo-worker train: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (model_path == NULL) {
        fprintf(stderr, "hpo-worker train: missing --model FILE (a JSON model spec; see "
                        "examples/seed-best-model.json)\n");
        return 2;
    }

    char err[HPO_ERR_MAX];
    hpo_model_spec *spec = NULL;
    hpo_cifar10 *data = NULL;
    int status = 1;

    if (hpo_model_spec_load_file(model_path, &spec, err, sizeof err) < 0) {
        fprintf(stderr, "hpo-worker train: %s\n", err);
        return 1;
    }
    if (epochs > 0)
        spec->epochs = (int)epochs;
    if (precision >= 0)
        spec->precision = (hpo_precision)precision;
    if (batch_size > 0)
        spec->batch_size = (int)batch_size;
    if (seed >= 0) {
        spec->seed = (uint64_t)seed;
        data_opt.seed = (uint64_t)seed;
    }
    data_opt.test_size = (int)test_size;

    if (st.json)
        print_summary_json(spec);
    else
        print_summary_text(spec);
    fflush(stdout);

    /* A test size of 0 means "skip"; the loader reads 0 as "all". */
    bool want_test = test_size > 0;
    if (!want_test)
        data_opt.test_size = 1;
    if (hpo_cifar10_load(&data_opt, &data, err, sizeof err) < 0) {
        fprintf(stderr, "hpo-worker train: %s\n", err);
        goto done;
    }

    hpo_log_info("training %s: %d train, %d validation, %d test images, %d epochs",
                 model_path, data->train.n, data->val.n, want_test ? data->test.n : 0,
                 spec->epochs);
    st.tty = isatty(STDOUT_FILENO);
    hpo_train_options opt = {
        .threads = (int)threads,
        .backend = backend,
        .on_epoch = on_epoch,
        .on_batch = on_batch,
        .user = &st,
        .evaluate_test = want_test,
    };
    hpo_train_result result;
    if (hpo_train_run(spec, data, &opt, &result, err, sizeof err) < 0) {
        fprintf(stderr, "hpo-worker train: %s\n", err);
        goto done;
    }
    print_result(&result, st.json);
    status = 0;

done:
    hpo_cifar10_destroy(&data);
    hpo_model_spec_destroy(&spec);
    return status;
}
