/* Tests of the CIFAR-10 loader.
 *
 * The layout and bad-input tests use fake batch files in a temporary
 * folder. They are sparse files made with ftruncate(), so a full-size 30 MB
 * batch costs no disk writes. The real-data tests read the folder given as
 * the first argument, else $HPO_CIFAR10_DIR, else HPO_TEST_CIFAR10_DIR.
 * When it is absent they are skipped and the program exits with 77, which
 * meson reports as SKIP. */
#include "hpo/cifar10.h"
#include "hpo/error.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#define PLANE_PIXELS (HPO_CIFAR10_SIDE * HPO_CIFAR10_SIDE)
#define BATCH_BYTES \
    ((off_t)HPO_CIFAR10_BATCH_RECORDS * HPO_CIFAR10_RECORD_BYTES)

#define assert_contains(text, part)                                       \
    do {                                                                  \
        if (strstr((text), (part)) == NULL)                               \
            fail_msg("message \"%s\" does not contain \"%s\"", (text),    \
                     (part));                                             \
    } while (0)

static const char *const batch_names[] = {
    "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
    "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin",
};
#define BATCH_FILES 6

/* Real CIFAR-10 folder, or NULL when absent. */
static const char *real_dir;

/* ---- Helpers ---------------------------------------------------------- */

static void path_join(char *path, size_t size, const char *dir,
                      const char *name)
{
    int n = snprintf(path, size, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < size);
}

/* Options for a small subset of the folder dir. */
static void options_small(hpo_cifar10_options *opt, const char *dir)
{
    hpo_cifar10_options_default(opt);
    opt->dir = dir;
    opt->train_size = 1000;
    opt->val_size = 200;
    opt->test_size = 500;
}

/* Reads record `index` of a batch file straight from disk. */
static void record_read(const char *dir, const char *name, int index,
                        uint8_t *record)
{
    char path[1024];
    path_join(path, sizeof path, dir, name);

    FILE *file = fopen(path, "rb");
    assert_non_null(file);
    assert_int_equal(fseek(file, (long)index * HPO_CIFAR10_RECORD_BYTES,
                           SEEK_SET), 0);
    assert_int_equal(fread(record, 1, HPO_CIFAR10_RECORD_BYTES, file),
                     HPO_CIFAR10_RECORD_BYTES);
    fclose(file);
}

/* Checks one loaded image and label against a raw record: the byte of
 * channel c at pixel p sits at record[1 + c * 1024 + p] and must appear as
 * byte / 255 at image[p * 3 + c]. */
static void assert_image_matches_record(const float *image, uint8_t label,
                                        const uint8_t *record)
{
    assert_int_equal(label, record[0]);
    for (int p = 0; p < PLANE_PIXELS; p++)
        for (int c = 0; c < HPO_CIFAR10_CHANNELS; c++)
            assert_float_equal(image[p * HPO_CIFAR10_CHANNELS + c],
                               record[1 + c * PLANE_PIXELS + p] / 255.0f,
                               1e-7f);
}

static void skip_without_data(void)
{
    if (real_dir == NULL) {
        print_message("CIFAR-10 folder not found; skipping the real-data "
                      "test. Set HPO_CIFAR10_DIR to run it.\n");
        skip();
    }
}

/* ---- Fake batch files ------------------------------------------------- */

typedef struct {
    char dir[256];
} fake_folder;

/* Creates (or resizes) a fake batch file of `size` bytes. The hole that
 * ftruncate() leaves reads as zeros, that is label 0 and black pixels. */
static void fake_batch_write(const fake_folder *fake, const char *name,
                             off_t size)
{
    char path[512];
    path_join(path, sizeof path, fake->dir, name);

    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, size), 0);
    close(fd);
}

static void fake_byte_set(const fake_folder *fake, const char *name,
                          off_t offset, uint8_t value)
{
    char path[512];
    path_join(path, sizeof path, fake->dir, name);

    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, &value, 1, offset), 1);
    close(fd);
}

/* Makes a temporary folder with six valid all-zero batch files. */
static int fake_setup(void **state)
{
    const char *tmp = getenv("TMPDIR");
    fake_folder *fake = calloc(1, sizeof *fake);
    if (fake == NULL)
        return -1;

    snprintf(fake->dir, sizeof fake->dir, "%s/hpo-cifar10-XXXXXX",
             (tmp != NULL && tmp[0] != '\0') ? tmp : "/tmp");
    if (mkdtemp(fake->dir) == NULL) {
        free(fake);
        return -1;
    }
    for (int i = 0; i < BATCH_FILES; i++)
        fake_batch_write(fake, batch_names[i], BATCH_BYTES);
    *state = fake;
    return 0;
}

static int fake_teardown(void **state)
{
    fake_folder *fake = *state;
    char path[512];

    for (int i = 0; i < BATCH_FILES; i++) {
        snprintf(path, sizeof path, "%s/%s", fake->dir, batch_names[i]);
        unlink(path);
    }
    rmdir(fake->dir);
    free(fake);
    return 0;
}

/* Loads the small subset of the fake folder, expects failure, and leaves
 * the message in err. */
static void load_expect_error(const hpo_cifar10_options *opt, char *err)
{
    /* A failing load must reset the caller's pointer to NULL. */
    static hpo_cifar10 sentinel;
    hpo_cifar10 *data = &sentinel;

    err[0] = '\0';
    assert_int_equal(hpo_cifar10_load(opt, &data, err, HPO_ERR_MAX), -1);
    assert_null(data);
    assert_true(strlen(err) > 0);
    print_message("expected error: %s\n", err);
}

/* ---- Tests on fake files ---------------------------------------------- */

static void fake_load_converts_to_hwc(void **state)
{
    fake_folder *fake = *state;
    hpo_cifar10_options opt;
    hpo_cifar10 *data = NULL;
    char err[HPO_ERR_MAX];

    /* Test record 0: label 7, red 255 at (y 2, x 3), green 51 at (0, 0),
     * blue 102 at (31, 31). Everything else is 0. */
    fake_byte_set(fake, "test_batch.bin", 0, 7);
    fake_byte_set(fake, "test_batch.bin", 1 + 0 * PLANE_PIXELS + 2 * 32 + 3,
                  255);
    fake_byte_set(fake, "test_batch.bin", 1 + 1 * PLANE_PIXELS + 0, 51);
    fake_byte_set(fake, "test_batch.bin", 1 + 2 * PLANE_PIXELS + 1023, 102);

    options_small(&opt, fake->dir);
    opt.test_size = 2;
    assert_int_equal(hpo_cifar10_load(&opt, &data, err, sizeof err), 0);
    assert_int_equal(data->train.n, 1000);
    assert_int_equal(data->val.n, 200);
    assert_int_equal(data->test.n, 2);

    const float *image = data->test.images;
    assert_int_equal(data->test.labels[0], 7);
    assert_float_equal(image[(2 * 32 + 3) * 3 + 0], 1.0f, 1e-7f);
    assert_float_equal(image[0 * 3 + 1], 51 / 255.0f, 1e-7f);
    assert_float_equal(image[1023 * 3 + 2], 102 / 255.0f, 1e-7f);

    int nonzero = 0;
    for (int i = 0; i < 2 * HPO_CIFAR10_PIXELS; i++)
        nonzero += data->test.images[i] != 0.0f;
    assert_int_equal(nonzero, 3);
    assert_int_equal(data->test.labels[1], 0);

    hpo_cifar10_destroy(&data);
    assert_null(data);
}

static void missing_dir_is_error(void **state)
{
    fake_folder *fake = *state;
    hpo_cifar10_options opt;
    char dir[512], err[HPO_ERR_MAX];

    path_join(dir, sizeof dir, fake->dir, "absent");
    options_small(&opt, dir);
    load_expect_error(&opt, err);
    assert_contains(err, "CIFAR-10 folder");
    assert_contains(err, dir);
    assert_contains(err, "not found");
    assert_contains(err, "HPO_CIFAR10_DIR");
}

static void missing_file_is_error(void **state)
{
    fake_folder *fake = *state;
    hpo_cifar10_options opt;
    char path[512], err[HPO_ERR_MAX];

    path_join(path, sizeof path, fake->dir, "data_batch_4.bin");
    assert_int_equal(unlink(path), 0);
    options_small(&opt, fake->dir);
    load_expect_error(&opt, err);
    assert_contains(err, path);
    assert_contains(err, "not found");
}

static void truncated_file_is_error(void **state)
{
    fake_folder *fake = *state;
    hpo_cifar10_options opt;
    char path[512], err[HPO_ERR_MAX];

    /* Five whole records, then 100 bytes of record 5 at offset 15365. */
    fake_batch_write(fake, "data_batch_2.bin", 5 * 3073 + 100);
    path_join(path, sizeof path, fake->dir, "data_batch_2.bin");
    options_small(&opt, fake->dir);
    load_expect_error(&opt, err);
    assert_contains(err, path);
    assert_contains(err, "truncated");
    assert_contains(err, "15465 bytes");
    assert_contains(err, "expected 30730000");
    assert_contains(err, "record 5,");
    assert_contains(err, "byte offset 15365");
}

static void file_ending_between_records_is_error(void **state)
{
    fake_folder *fake = *state;
    hpo_cifar10_options opt;
    char path[512], err[HPO_ERR_MAX];

    fake_batch_write(fake, "test_batch.bin", 3 * 3073);
    path_join(path, sizeof path, fake->dir, "test_batch.bin");
    options_small(&opt, fake->dir);
    load_expect_error(&opt, err);
    assert_contains(err, path);
    assert_contains(err, "truncated");
    assert_contains(err, "9219 bytes");
    assert_contains(err, "byte offset 9219 after 3 of 10000 records");

    fake_batch_write(fake, "test_batch.bin", 0);
    load_expect_error(&opt, err);
    assert_contains(err, path);
    assert_contains(err, "0 bytes");
    assert_contains(err, "byte offset 0 after 0 of 10000 records");
}

static void oversized_file_is_error(void **state)
{
    fake_folder *fake = *state;
    hpo_cifar10_options opt;
    char path[512], err[HPO_ERR_MAX];

    fake_batch_write(fake, "data_batch_5.bin", BATCH_BYTES + 7);
    path_join(path, sizeof path, fake->dir, "data_batch_5.bin");
    options_small(&opt, fake->dir);
    load_expect_error(&opt, err);
    assert_contains(err, path);
    assert_contains(err, "too large");
    assert_contains(err, "30730007 bytes");
    assert_contains(err, "expected 30730000");
    assert_contains(err, "7 extra bytes start at byte offset 30730000");
}

static void label_ten_is_error(void **state)
{
    fake_folder *fake = *state;
    hpo_cifar10_options opt;
    char path[512], err[HPO_ERR_MAX];

    /* Record 1234 of batch 3: its label byte is at 1234 * 3073 = 3792082. */
    fake_byte_set(fake, "data_batch_3.bin", (off_t)1234 * 3073, 10);
    path_join(path, sizeof path, fake->dir, "data_batch_3.bin");
    options_small(&opt, fake->dir);
    load_expect_error(&opt, err);
    assert_contains(err, path);
    assert_contains(err, "record 1234 ");
    assert_contains(err, "label 10 ");
    assert_contains(err, "byte offset 3792082");
}

static void bad_test_label_is_error(void **state)
{
    fake_folder *fake = *state;
    hpo_cifar10_options opt;
    char path[512], err[HPO_ERR_MAX];

    /* The last record's label byte, at 9999 * 3073 = 30726927, is checked
     * even though only the first 500 test records are used. */
    fake_byte_set(fake, "test_batch.bin", (off_t)9999 * 3073, 255);
    path_join(path, sizeof path, fake->dir, "test_batch.bin");
    options_small(&opt, fake->dir);
    load_expect_error(&opt, err);
    assert_contains(err, path);
    assert_contains(err, "record 9999 ");
    assert_contains(err, "label 255 ");
    assert_contains(err, "byte offset 30726927");
}

static void train_plus_val_too_large_is_error(void **state)
{
    fake_folder *fake = *state;
    hpo_cifar10_options opt;
    char err[HPO_ERR_MAX];

    options_small(&opt, fake->dir);
    opt.train_size = 45001;
    opt.val_size = 5000;
    load_expect_error(&opt, err);
    assert_contains(err, "train_size 45001");
    assert_contains(err, "val_size 5000");

    /* The default val_size of -1 counts as 5,000. */
    opt.train_size = 50000;
    opt.val_size = -1;
    load_expect_error(&opt, err);
    assert_contains(err, "train_size 50000");
    assert_contains(err, "val_size 5000");

    /* A validation set of all 50,000 records leaves no training data. */
    opt.train_size = 0;
    opt.val_size = 50000;
    load_expect_error(&opt, err);
    assert_contains(err, "val_size 50000");
}

static void invalid_sizes_are_errors(void **state)
{
    fake_folder *fake = *state;
    hpo_cifar10_options opt;
    char err[HPO_ERR_MAX];

    options_small(&opt, fake->dir);
    opt.train_size = -1;
    load_expect_error(&opt, err);
    assert_contains(err, "train_size -1");

    options_small(&opt, fake->dir);
    opt.val_size = -2;
    load_expect_error(&opt, err);
    assert_contains(err, "val_size -2");

    options_small(&opt, fake->dir);
    opt.test_size = -1;
    load_expect_error(&opt, err);
    assert_contains(err, "test_size -1");

    options_small(&opt, fake->dir);
    opt.test_size = 10001;
    load_expect_error(&opt, err);
    assert_contains(err, "test_size 10001");

    options_small(&opt, fake->dir);
    opt.scaling = (hpo_pixel_scaling)7;
    load_expect_error(&opt, err);
    assert_contains(err, "scaling 7");
}

static void options_default_reads_env(void **state)
{
    hpo_cifar10_options opt;
    const char *saved = getenv("HPO_CIFAR10_DIR");
    char *copy = saved != NULL ? strdup(saved) : NULL;

    assert_int_equal(setenv("HPO_CIFAR10_DIR", "/data/cifar", 1), 0);
    hpo_cifar10_options_default(&opt);
    assert_string_equal(opt.dir, "/data/cifar");
    assert_int_equal(opt.train_size, 0);
    assert_int_equal(opt.val_size, -1);
    assert_int_equal(opt.test_size, 0);
    assert_true(opt.seed == 1);
    assert_int_equal(opt.scaling, HPO_SCALE_UNIT);

    assert_int_equal(unsetenv("HPO_CIFAR10_DIR"), 0);
    hpo_cifar10_options_default(&opt);
    assert_string_equal(opt.dir, "../shared/cifar10");

    if (copy != NULL)
        setenv("HPO_CIFAR10_DIR", copy, 1);
    free(copy);
}

/* ---- Tests on real data ----------------------------------------------- */

/* Loads the small subset once for the first real-data tests. */
static int real_setup(void **state)
{
    hpo_cifar10_options opt;
    hpo_cifar10 *data = NULL;
    char err[HPO_ERR_MAX];

    *state = NULL;
    if (real_dir == NULL)
        return 0;
    options_small(&opt, real_dir);
    if (hpo_cifar10_load(&opt, &data, err, sizeof err) != 0) {
        print_error("loading %s failed: %s\n", real_dir, err);
        return -1;
    }
    *state = data;
    return 0;
}

static int real_teardown(void **state)
{
    hpo_cifar10 *data = *state;
    hpo_cifar10_destroy(&data);
    return 0;
}

static void assert_dataset_valid(const hpo_dataset *set, int n)
{
    assert_int_equal(set->n, n);
    for (int i = 0; i < n; i++)
        assert_in_range(set->labels[i], 0, 9);
    for (size_t i = 0; i < (size_t)n * HPO_CIFAR10_PIXELS; i++) {
        assert_true(set->images[i] >= 0.0f);
        assert_true(set->images[i] <= 1.0f);
    }
}

static void real_small_subset_loads(void **state)
{
    skip_without_data();
    const hpo_cifar10 *data = *state;

    assert_dataset_valid(&data->train, 1000);
    assert_dataset_valid(&data->val, 200);
    assert_dataset_valid(&data->test, 500);

    /* 1,000 shuffled records cover all ten classes. */
    int count[HPO_CIFAR10_CLASSES] = {0};
    for (int i = 0; i < data->train.n; i++)
        count[data->train.labels[i]]++;
    for (int c = 0; c < HPO_CIFAR10_CLASSES; c++)
        assert_true(count[c] > 0);
}

static void real_first_test_image_matches_file(void **state)
{
    skip_without_data();
    const hpo_cifar10 *data = *state;
    uint8_t record[HPO_CIFAR10_RECORD_BYTES];

    record_read(real_dir, "test_batch.bin", 0, record);
    assert_image_matches_record(data->test.images, data->test.labels[0],
                                record);

    record_read(real_dir, "test_batch.bin", 499, record);
    assert_image_matches_record(data->test.images +
                                    (size_t)499 * HPO_CIFAR10_PIXELS,
                                data->test.labels[499], record);
}

/* The split is documented as GSL's MT19937 seeded with opt->seed shuffling
 * the indices 0..49999: the first val_size go to validation, the next
 * train_size to training. Rebuild it here and check the ends of each
 * subset against the records on disk. */
static void real_split_follows_seeded_shuffle(void **state)
{
    skip_without_data();
    const hpo_cifar10 *data = *state;
    int *order = malloc(HPO_CIFAR10_TRAIN_RECORDS * sizeof *order);
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    uint8_t record[HPO_CIFAR10_RECORD_BYTES];
    assert_non_null(order);
    assert_non_null(rng);

    gsl_rng_set(rng, 1);
    for (int r = 0; r < HPO_CIFAR10_TRAIN_RECORDS; r++)
        order[r] = r;
    gsl_ran_shuffle(rng, order, HPO_CIFAR10_TRAIN_RECORDS, sizeof *order);

    const struct {
        const hpo_dataset *set;
        int index;
        int position;
    } cases[] = {
        {&data->val, 0, 0},
        {&data->val, 199, 199},
        {&data->train, 0, 200},
        {&data->train, 999, 1199},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int r = order[cases[i].position];
        record_read(real_dir, batch_names[r / HPO_CIFAR10_BATCH_RECORDS],
                    r % HPO_CIFAR10_BATCH_RECORDS, record);
        assert_image_matches_record(
            cases[i].set->images + (size_t)cases[i].index * HPO_CIFAR10_PIXELS,
            cases[i].set->labels[cases[i].index], record);
    }

    gsl_rng_free(rng);
    free(order);
}

static int datasets_equal(const hpo_dataset *a, const hpo_dataset *b)
{
    return a->n == b->n && memcmp(a->labels, b->labels, (size_t)a->n) == 0 &&
           memcmp(a->images, b->images,
                  (size_t)a->n * HPO_CIFAR10_PIXELS * sizeof(float)) == 0;
}

static void real_split_depends_on_seed(void **state)
{
    skip_without_data();
    hpo_cifar10_options opt;
    hpo_cifar10 *first = NULL, *again = NULL, *other = NULL;
    char err[HPO_ERR_MAX];

    options_small(&opt, real_dir);
    opt.seed = 7;
    assert_int_equal(hpo_cifar10_load(&opt, &first, err, sizeof err), 0);
    assert_int_equal(hpo_cifar10_load(&opt, &again, err, sizeof err), 0);
    opt.seed = 8;
    assert_int_equal(hpo_cifar10_load(&opt, &other, err, sizeof err), 0);

    assert_true(datasets_equal(&first->train, &again->train));
    assert_true(datasets_equal(&first->val, &again->val));
    assert_false(datasets_equal(&first->train, &other->train));
    assert_false(datasets_equal(&first->val, &other->val));
    /* The test subset does not depend on the seed. */
    assert_true(datasets_equal(&first->test, &other->test));

    hpo_cifar10_destroy(&first);
    hpo_cifar10_destroy(&again);
    hpo_cifar10_destroy(&other);
}

/* Per-channel mean and population standard deviation, in double. */
static void channel_stats(const hpo_dataset *set, double *mean, double *std)
{
    size_t pixels = (size_t)set->n * PLANE_PIXELS;

    for (int c = 0; c < HPO_CIFAR10_CHANNELS; c++) {
        double sum = 0.0, sum_sq = 0.0;
        for (size_t p = 0; p < pixels; p++) {
            double x = set->images[p * HPO_CIFAR10_CHANNELS + c];
            sum += x;
            sum_sq += x * x;
        }
        mean[c] = sum / (double)pixels;
        std[c] = sqrt(sum_sq / (double)pixels - mean[c] * mean[c]);
    }
}

static void real_standardize_uses_train_stats(void **state)
{
    skip_without_data();
    hpo_cifar10_options opt;
    hpo_cifar10 *unit = NULL, *standard = NULL;
    char err[HPO_ERR_MAX];
    double mean[3], std[3], unit_mean[3], unit_std[3];

    options_small(&opt, real_dir);
    assert_int_equal(hpo_cifar10_load(&opt, &unit, err, sizeof err), 0);
    opt.scaling = HPO_SCALE_STANDARDIZE;
    assert_int_equal(hpo_cifar10_load(&opt, &standard, err, sizeof err), 0);

    channel_stats(&standard->train, mean, std);
    for (int c = 0; c < HPO_CIFAR10_CHANNELS; c++) {
        assert_true(fabs(mean[c]) < 1e-4);
        assert_true(fabs(std[c] - 1.0) < 1e-4);
    }

    /* Validation and test use the training statistics: x' = (x - m) / s
     * with m and s of the unit-scaled training subset. */
    channel_stats(&unit->train, unit_mean, unit_std);
    const hpo_dataset *subsets[][2] = {
        {&unit->val, &standard->val},
        {&unit->test, &standard->test},
    };
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < HPO_CIFAR10_PIXELS; i += 97) {
            int c = i % HPO_CIFAR10_CHANNELS;
            double expected =
                (subsets[s][0]->images[i] - unit_mean[c]) / unit_std[c];
            assert_float_equal(subsets[s][1]->images[i], expected, 1e-4f);
        }
    assert_memory_equal(unit->test.labels, standard->test.labels,
                        (size_t)unit->test.n);

    hpo_cifar10_destroy(&unit);
    hpo_cifar10_destroy(&standard);
}

/* ---- Main ------------------------------------------------------------- */

/* Picks the real-data folder: argv[1], else $HPO_CIFAR10_DIR, else the
 * compile-time default. Returns NULL when it has no test_batch.bin. */
static const char *real_dir_find(int argc, char **argv)
{
    const char *dir = HPO_TEST_CIFAR10_DIR;
    const char *env = getenv("HPO_CIFAR10_DIR");
    char path[1024];
    struct stat st;

    if (argc > 1)
        dir = argv[1];
    else if (env != NULL && env[0] != '\0')
        dir = env;

    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    if (stat(path, &st) != 0) {
        fprintf(stderr,
                "test_cifar10: CIFAR-10 folder %s not found (no "
                "test_batch.bin); real-data tests skip. Set HPO_CIFAR10_DIR "
                "or pass the folder as the first argument.\n",
                dir);
        return NULL;
    }
    return dir;
}

int main(int argc, char **argv)
{
    gsl_set_error_handler_off();
    real_dir = real_dir_find(argc, argv);

    const struct CMUnitTest fake_tests[] = {
        cmocka_unit_test_setup_teardown(fake_load_converts_to_hwc,
                                        fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(missing_dir_is_error, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(missing_file_is_error, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(truncated_file_is_error, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(file_ending_between_records_is_error,
                                        fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(oversized_file_is_error, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(label_ten_is_error, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(bad_test_label_is_error, fake_setup,
                                        fake_teardown),
        cmocka_unit_test_setup_teardown(train_plus_val_too_large_is_error,
                                        fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(invalid_sizes_are_errors, fake_setup,
                                        fake_teardown),
        cmocka_unit_test(options_default_reads_env),
    };
    const struct CMUnitTest real_tests[] = {
        cmocka_unit_test(real_small_subset_loads),
        cmocka_unit_test(real_first_test_image_matches_file),
        cmocka_unit_test(real_split_follows_seeded_shuffle),
        cmocka_unit_test(real_split_depends_on_seed),
        cmocka_unit_test(real_standardize_uses_train_stats),
    };

    int failed = cmocka_run_group_tests_name("cifar10 fake files", fake_tests,
                                             NULL, NULL);
    failed += cmocka_run_group_tests_name("cifar10 real data", real_tests,
                                          real_setup, real_teardown);
    if (failed > 0)
        return 1;
    return real_dir == NULL ? 77 : 0;
}
