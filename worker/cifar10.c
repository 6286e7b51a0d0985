/* CIFAR-10 loader: checks the options and the six batch files, splits the
 * training records into validation and training subsets with a seeded
 * shuffle, reads each needed batch file once and converts its records to
 * float32 HWC. */
#include "hpo/cifar10.h"

#include "hpo/error.h"
#include "hpo/log.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#define PLANE_PIXELS (HPO_CIFAR10_SIDE * HPO_CIFAR10_SIDE)
#define BATCH_BYTES \
    ((long long)HPO_CIFAR10_BATCH_RECORDS * HPO_CIFAR10_RECORD_BYTES)
#define TRAIN_BATCHES 5
#define TEST_BATCH TRAIN_BATCHES
#define DEFAULT_VAL_SIZE 5000
#define DEFAULT_DIR "../shared/cifar10"

static const char *const batch_names[TRAIN_BATCHES + 1] = {
    "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
    "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin",
};

/* Subset sizes after the defaults (-1, 0) are replaced. */
typedef struct {
    int train;
    int val;
    int test;
} subset_sizes;

void hpo_cifar10_options_default(hpo_cifar10_options *opt)
{
    const char *env_dir = getenv("HPO_CIFAR10_DIR");

    /* opt->dir points into the environment, so it stays valid until
     * HPO_CIFAR10_DIR is changed. */
    opt->dir = (env_dir != NULL && env_dir[0] != '\0') ? env_dir : DEFAULT_DIR;
    opt->train_size = 0;
    opt->val_size = -1;
    opt->test_size = 0;
    opt->seed = 1;
    opt->scaling = HPO_SCALE_UNIT;
}

static int sizes_resolve(const hpo_cifar10_options *opt, subset_sizes *sizes,
                         char *err, size_t errlen)
{
    if (opt->val_size < -1)
        return hpo_error(err, errlen,
                         "val_size %d is invalid: use -1 for the default "
                         "%d, or 0 to %d",
                         opt->val_size, DEFAULT_VAL_SIZE,
                         HPO_CIFAR10_TRAIN_RECORDS - 1);
    if (opt->train_size < 0)
        return hpo_error(err, errlen,
                         "train_size %d is negative: use 0 for all records "
                         "that the validation split leaves, or 1 to %d",
                         opt->train_size, HPO_CIFAR10_TRAIN_RECORDS);
    if (opt->test_size < 0 || opt->test_size > HPO_CIFAR10_BATCH_RECORDS)
        return hpo_error(err, errlen,
                         "test_size %d is invalid: use 0 for all %d test "
                         "records, or 1 to %d",
                         opt->test_size, HPO_CIFAR10_BATCH_RECORDS,
                         HPO_CIFAR10_BATCH_RECORDS);
    if (opt->scaling != HPO_SCALE_UNIT && opt->scaling != HPO_SCALE_STANDARDIZE)
        return hpo_error(err, errlen,
                         "pixel scaling %d is invalid: use HPO_SCALE_UNIT or "
                         "HPO_SCALE_STANDARDIZE",
                         (int)opt->scaling);

    sizes->val = opt->val_size == -1 ? DEFAULT_VAL_SIZE : opt->val_size;
    if (sizes->val > HPO_CIFAR10_TRAIN_RECORDS - 1)
        return hpo_error(err, errlen,
                         "val_size %d leaves none of the %d training records "
                         "for training; use at most %d",
                         sizes->val, HPO_CIFAR10_TRAIN_RECORDS,
                         HPO_CIFAR10_TRAIN_RECORDS - 1);
    if (opt->train_size > HPO_CIFAR10_TRAIN_RECORDS - sizes->val)
        return hpo_error(err, errlen,
                         "train_size %d plus val_size %d is %d, more than the "
                         "%d training records; lower one of them",
                         opt->train_size, sizes->val,
                         opt->train_size + sizes->val,
                         HPO_CIFAR10_TRAIN_RECORDS);

    sizes->train = opt->train_size == 0
                       ? HPO_CIFAR10_TRAIN_RECORDS - sizes->val
                       : opt->train_size;
    sizes->test = opt->test_size == 0 ? HPO_CIFAR10_BATCH_RECORDS
                                      : opt->test_size;
    return 0;
}

static int dir_check(const char *dir, char *err, size_t errlen)
{
    struct stat st;

    if (dir == NULL || dir[0] == '\0')
        return hpo_error(err, errlen,
                         "CIFAR-10 folder is not set: set HPO_CIFAR10_DIR or "
                         "--data");
    if (stat(dir, &st) != 0)
        return hpo_error(err, errlen,
                         "CIFAR-10 folder %s not found: %s; set "
                         "HPO_CIFAR10_DIR or --data",
                         dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return hpo_error(err, errlen,
                         "CIFAR-10 folder %s is not a directory; set "
                         "HPO_CIFAR10_DIR or --data to the folder that "
                         "contains data_batch_1.bin",
                         dir);
    return 0;
}

static int batch_path(const char *dir, int batch, char *path, size_t size,
                      char *err, size_t errlen)
{
    int n = snprintf(path, size, "%s/%s", dir, batch_names[batch]);

    if (n < 0 || (size_t)n >= size)
        return hpo_error(err, errlen,
                         "CIFAR-10 folder path %s is too long; use a path "
                         "under %zu bytes",
                         dir, size - 32);
    return 0;
}

/* Rejects a file whose size is not exactly 10,000 records, naming the byte
 * offset where the first incomplete or missing record starts. */
static int batch_size_check(const char *path, long long size, char *err,
                            size_t errlen)
{
    long long whole = size / HPO_CIFAR10_RECORD_BYTES;
    long long offset = whole * HPO_CIFAR10_RECORD_BYTES;

    if (size > BATCH_BYTES)
        return hpo_error(err, errlen,
                         "CIFAR-10 file %s is too large: %lld bytes, expected "
                         "%lld (%d records of %d bytes); %lld extra bytes "
                         "start at byte offset %lld",
                         path, size, BATCH_BYTES, HPO_CIFAR10_BATCH_RECORDS,
                         HPO_CIFAR10_RECORD_BYTES, size - BATCH_BYTES,
                         BATCH_BYTES);
    if (size < BATCH_BYTES && offset < size)
        return hpo_error(err, errlen,
                         "CIFAR-10 file %s is truncated: %lld bytes, expected "
                         "%lld; record %lld, starting at byte offset %lld, "
                         "has only %lld of its %d bytes",
                         path, size, BATCH_BYTES, whole, offset,
                         size - offset, HPO_CIFAR10_RECORD_BYTES);
    if (size < BATCH_BYTES)
        return hpo_error(err, errlen,
                         "CIFAR-10 file %s is truncated: %lld bytes, expected "
                         "%lld; it ends at byte offset %lld after %lld of %d "
                         "records",
                         path, size, BATCH_BYTES, offset, whole,
                         HPO_CIFAR10_BATCH_RECORDS);
    return 0;
}

/* Checks that all six files exist with the right size before any of the
 * 30 MB reads starts. */
static int files_check(const char *dir, char *err, size_t errlen)
{
    char path[4096];
    struct stat st;

    for (int batch = 0; batch <= TEST_BATCH; batch++) {
        if (batch_path(dir, batch, path, sizeof path, err, errlen) != 0)
            return -1;
        if (stat(path, &st) != 0)
            return hpo_error(err, errlen,
                             "CIFAR-10 file %s not found: %s; the folder must "
                             "contain data_batch_1.bin to data_batch_5.bin "
                             "and test_batch.bin",
                             path, strerror(errno));
        if (!S_ISREG(st.st_mode))
            return hpo_error(err, errlen,
                             "CIFAR-10 file %s is not a regular file", path);
        if (batch_size_check(path, (long long)st.st_size, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* Reads one whole batch file into buf (BATCH_BYTES long) and checks every
 * label, so that a corrupt file is reported even where the subsets use only
 * some of its records. */
static int batch_read(const char *path, uint8_t *buf, char *err,
                      size_t errlen)
{
    FILE *file = fopen(path, "rb");

    if (file == NULL)
        return hpo_error(err, errlen, "CIFAR-10 file %s: cannot open: %s",
                         path, strerror(errno));
    size_t got = fread(buf, 1, (size_t)BATCH_BYTES, file);
    int read_errno = errno;
    int failed = ferror(file);
    fclose(file);

    /* The size was checked before, so a short read means the file changed
     * or the disk failed. */
    if (got != (size_t)BATCH_BYTES)
        return hpo_error(err, errlen,
                         "CIFAR-10 file %s: read stopped at byte offset %zu "
                         "of %lld: %s",
                         path, got, BATCH_BYTES,
                         failed ? strerror(read_errno) : "unexpected end of file");

    for (int i = 0; i < HPO_CIFAR10_BATCH_RECORDS; i++) {
        long long offset = (long long)i * HPO_CIFAR10_RECORD_BYTES;
        if (buf[offset] >= HPO_CIFAR10_CLASSES)
            return hpo_error(err, errlen,
                             "CIFAR-10 file %s: record %d has label %u at "
                             "byte offset %lld; labels must be 0 to 9, so the "
                             "file is corrupt or not CIFAR-10",
                             path, i, (unsigned)buf[offset], offset);
    }
    return 0;
}

/* Converts one record's planar RGB bytes to HWC floats in [0, 1]: the value
 * for pixel p = y * 32 + x and channel c lands at image[p * 3 + c]. */
static void record_convert(const uint8_t *record, float *image,
                           uint8_t *label)
{
    const uint8_t *planes = record + 1;

    *label = record[0];
    for (int p = 0; p < PLANE_PIXELS; p++)
        for (int c = 0; c < HPO_CIFAR10_CHANNELS; c++)
            image[p * HPO_CIFAR10_CHANNELS + c] =
                (float)planes[c * PLANE_PIXELS + p] / 255.0f;
}

static int dataset_alloc(hpo_dataset *set, int n, char *err, size_t errlen)
{
    set->n = n;
    if (n == 0)
        return 0;
    set->images = malloc((size_t)n * HPO_CIFAR10_PIXELS * sizeof(float));
    set->labels = malloc((size_t)n);
    if (set->images == NULL || set->labels == NULL)
        return hpo_error(err, errlen,
                         "out of memory for %d CIFAR-10 images (%zu MiB)", n,
                         (size_t)n * HPO_CIFAR10_PIXELS * sizeof(float) >> 20);
    return 0;
}

/* Sets slot[r] to training record r's position k in the shuffled order, or
 * to -1 when k >= val + train. Positions below val are validation images,
 * and position k >= val is training image k - val. */
static int split_make(uint64_t seed, const subset_sizes *sizes, int *slot,
                      char *err, size_t errlen)
{
    int *order = malloc(HPO_CIFAR10_TRAIN_RECORDS * sizeof *order);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);

    if (order == NULL || rng == NULL) {
        free(order);
        if (rng != NULL)
            gsl_rng_free(rng);
        return hpo_error(err, errlen, "out of memory for the CIFAR-10 split");
    }

    /* NOTE: GSL's MT19937 uses only the low 32 bits of the seed and
     * replaces seed 0 with 4357, so seeds 0 and 4357 give the same split. */
    gsl_rng_set(rng, (unsigned long)seed);
    for (int r = 0; r < HPO_CIFAR10_TRAIN_RECORDS; r++)
        order[r] = r;
    gsl_ran_shuffle(rng, order, HPO_CIFAR10_TRAIN_RECORDS, sizeof *order);

    for (int r = 0; r < HPO_CIFAR10_TRAIN_RECORDS; r++)
        slot[r] = -1;
    for (int k = 0; k < sizes->val + sizes->train; k++)
        slot[order[k]] = k;

    gsl_rng_free(rng);
    free(order);
    return 0;
}

static int batch_is_needed(const int *slot, int batch)
{
    const int *first = slot + batch * HPO_CIFAR10_BATCH_RECORDS;

    for (int i = 0; i < HPO_CIFAR10_BATCH_RECORDS; i++)
        if (first[i] >= 0)
            return 1;
    return 0;
}

/* Converts the records of training batch `batch` (in buf) that the split
 * assigns to validation or training. */
static void batch_scatter(const uint8_t *buf, int batch, const int *slot,
                          hpo_cifar10 *data)
{
    const int *first = slot + batch * HPO_CIFAR10_BATCH_RECORDS;

    for (int i = 0; i < HPO_CIFAR10_BATCH_RECORDS; i++) {
        int k = first[i];
        if (k < 0)
            continue;

        hpo_dataset *set = &data->val;
        if (k >= data->val.n) {
            set = &data->train;
            k -= data->val.n;
        }
        record_convert(buf + (size_t)i * HPO_CIFAR10_RECORD_BYTES,
                       set->images + (size_t)k * HPO_CIFAR10_PIXELS,
                       &set->labels[k]);
    }
}

static void dataset_standardize(hpo_dataset *set, const double *mean,
                                const double *std)
{
    size_t pixels = (size_t)set->n * PLANE_PIXELS;

    for (size_t p = 0; p < pixels; p++)
        for (int c = 0; c < HPO_CIFAR10_CHANNELS; c++) {
            float *value = &set->images[p * HPO_CIFAR10_CHANNELS + c];
            *value = (float)((*value - mean[c]) / std[c]);
        }
}

/* Standardizes every subset per channel with statistics of the training
 * subset: x' = (x - mean_c) / std_c, where mean_c and the population
 * standard deviation std_c = sqrt(sum (x - mean_c)^2 / N) run over all N
 * training pixels of channel c (two passes, in double). */
static void cifar10_standardize(hpo_cifar10 *data)
{
    const hpo_dataset *train = &data->train;
    size_t pixels = (size_t)train->n * PLANE_PIXELS;
    double mean[HPO_CIFAR10_CHANNELS] = {0};
    double std[HPO_CIFAR10_CHANNELS] = {0};

    for (size_t p = 0; p < pixels; p++)
        for (int c = 0; c < HPO_CIFAR10_CHANNELS; c++)
            mean[c] += train->images[p * HPO_CIFAR10_CHANNELS + c];
    for (int c = 0; c < HPO_CIFAR10_CHANNELS; c++)
        mean[c] /= (double)pixels;

    for (size_t p = 0; p < pixels; p++)
        for (int c = 0; c < HPO_CIFAR10_CHANNELS; c++) {
            double d = train->images[p * HPO_CIFAR10_CHANNELS + c] - mean[c];
            std[c] += d * d;
        }
    for (int c = 0; c < HPO_CIFAR10_CHANNELS; c++) {
        std[c] = sqrt(std[c] / (double)pixels);
        if (std[c] == 0.0) {
            hpo_log_warn("CIFAR-10: channel %d is constant over the %d "
                         "training images; standardization only subtracts "
                         "its mean",
                         c, train->n);
            std[c] = 1.0;
        }
    }

    hpo_log_info("CIFAR-10: standardizing with mean (%.4f, %.4f, %.4f) and "
                 "std (%.4f, %.4f, %.4f) of the training subset",
                 mean[0], mean[1], mean[2], std[0], std[1], std[2]);
    dataset_standardize(&data->train, mean, std);
    dataset_standardize(&data->val, mean, std);
    dataset_standardize(&data->test, mean, std);
}

/* Reads the needed training batches and the test batch, each once into
 * buf, and converts the records that the subsets use. */
static int batches_load(const char *dir, const int *slot, hpo_cifar10 *data,
                        uint8_t *buf, char *err, size_t errlen)
{
    char path[4096];

    for (int batch = 0; batch < TRAIN_BATCHES; batch++) {
        if (!batch_is_needed(slot, batch))
            continue;
        if (batch_path(dir, batch, path, sizeof path, err, errlen) != 0 ||
            batch_read(path, buf, err, errlen) != 0)
            return -1;
        batch_scatter(buf, batch, slot, data);
    }

    if (batch_path(dir, TEST_BATCH, path, sizeof path, err, errlen) != 0 ||
        batch_read(path, buf, err, errlen) != 0)
        return -1;
    for (int i = 0; i < data->test.n; i++)
        record_convert(buf + (size_t)i * HPO_CIFAR10_RECORD_BYTES,
                       data->test.images + (size_t)i * HPO_CIFAR10_PIXELS,
                       &data->test.labels[i]);
    return 0;
}

int hpo_cifar10_load(const hpo_cifar10_options *opt, hpo_cifar10 **out,
                     char *err, size_t errlen)
{
    hpo_cifar10 *data = NULL;
    int *slot = NULL;
    uint8_t *buf = NULL;
    subset_sizes sizes = {0};
    struct timespec start, end;
    int rc = -1;

    if (out == NULL || opt == NULL)
        return hpo_error(err, errlen, "hpo_cifar10_load: opt and out must "
                                      "not be NULL");
    *out = NULL;
    clock_gettime(CLOCK_MONOTONIC, &start);

    /* 1. Check the options, the folder and the files, which is cheap. */
    if (sizes_resolve(opt, &sizes, err, errlen) != 0 ||
        dir_check(opt->dir, err, errlen) != 0 ||
        files_check(opt->dir, err, errlen) != 0)
        return -1;
    hpo_log_info("CIFAR-10: loading from %s: train %d, val %d, test %d, "
                 "seed %llu, %s scaling",
                 opt->dir, sizes.train, sizes.val, sizes.test,
                 (unsigned long long)opt->seed,
                 opt->scaling == HPO_SCALE_UNIT ? "unit" : "standardized");

    /* 2. Allocate every output and the one read buffer up front. */
    data = calloc(1, sizeof *data);
    slot = malloc(HPO_CIFAR10_TRAIN_RECORDS * sizeof *slot);
    buf = malloc((size_t)BATCH_BYTES);
    if (data == NULL || slot == NULL || buf == NULL) {
        hpo_error(err, errlen, "out of memory for the CIFAR-10 buffers");
        goto cleanup;
    }
    if (dataset_alloc(&data->train, sizes.train, err, errlen) != 0 ||
        dataset_alloc(&data->val, sizes.val, err, errlen) != 0 ||
        dataset_alloc(&data->test, sizes.test, err, errlen) != 0)
        goto cleanup;

    /* 3. Shuffle the training record indices into the two subsets. */
    if (split_make(opt->seed, &sizes, slot, err, errlen) != 0)
        goto cleanup;

    /* 4. Read each needed batch once and convert its records. */
    if (batches_load(opt->dir, slot, data, buf, err, errlen) != 0)
        goto cleanup;

    /* 5. Scale. Unit scaling already happened in record_convert(). */
    if (opt->scaling == HPO_SCALE_STANDARDIZE)
        cifar10_standardize(data);

    clock_gettime(CLOCK_MONOTONIC, &end);
    hpo_log_info("CIFAR-10: loaded from %s in %.2f s",
                 opt->dir, (double)(end.tv_sec - start.tv_sec) +
                               (double)(end.tv_nsec - start.tv_nsec) * 1e-9);
    *out = data;
    data = NULL;
    rc = 0;

cleanup:
    free(buf);
    free(slot);
    hpo_cifar10_destroy(&data);
    return rc;
}

static void dataset_free(hpo_dataset *set)
{
    free(set->images);
    free(set->labels);
}

void hpo_cifar10_destroy(hpo_cifar10 **data)
{
    if (data == NULL || *data == NULL)
        return;
    dataset_free(&(*data)->train);
    dataset_free(&(*data)->val);
    dataset_free(&(*data)->test);
    free(*data);
    *data = NULL;
}
