/* CIFAR-10 loader for the official binary layout.
 *
 * Each of data_batch_1.bin ... data_batch_5.bin and test_batch.bin holds
 * 10,000 records of 3,073 bytes: one label byte (0-9), then the 1,024 red,
 * 1,024 green and 1,024 blue bytes of a 32x32 image, each plane row-major.
 * Images are returned as float32 in HWC (channels-last) order, which is the
 * layout the training engine uses. */
#ifndef HPO_CIFAR10_H
#define HPO_CIFAR10_H

#include <stddef.h>
#include <stdint.h>

#define HPO_CIFAR10_SIDE 32
#define HPO_CIFAR10_CHANNELS 3
#define HPO_CIFAR10_PIXELS (HPO_CIFAR10_SIDE * HPO_CIFAR10_SIDE * HPO_CIFAR10_CHANNELS)
#define HPO_CIFAR10_CLASSES 10
#define HPO_CIFAR10_RECORD_BYTES (1 + HPO_CIFAR10_PIXELS)
#define HPO_CIFAR10_BATCH_RECORDS 10000
#define HPO_CIFAR10_TRAIN_RECORDS 50000

typedef enum {
    HPO_SCALE_UNIT = 0,    /* pixel / 255, the Keras convention */
    HPO_SCALE_STANDARDIZE, /* per channel (x - mean) / std, both measured on
                              the training subset and applied to all subsets */
} hpo_pixel_scaling;

typedef struct {
    const char *dir;          /* folder holding the .bin files */
    int train_size;           /* training records; 0 means all that the
                                 validation split leaves (45,000 by default) */
    int val_size;             /* validation records taken from the training
                                 batches; -1 means the default 5,000 */
    int test_size;            /* test records; 0 means all 10,000 */
    uint64_t seed;            /* seeds the train/validation split */
    hpo_pixel_scaling scaling;
} hpo_cifar10_options;

/* n images, HWC float32, and their labels; owned by the hpo_cifar10 that
 * contains it. */
typedef struct {
    int n;
    float *images;   /* n * HPO_CIFAR10_PIXELS floats */
    uint8_t *labels; /* n labels in 0..9 */
} hpo_dataset;

typedef struct {
    hpo_dataset train;
    hpo_dataset val;
    hpo_dataset test;
} hpo_cifar10;

/* Fills opt with the defaults: dir from $HPO_CIFAR10_DIR or
 * "../shared/cifar10", 45,000/5,000 split, full test set, seed 1, unit
 * scaling. */
void hpo_cifar10_options_default(hpo_cifar10_options *opt);

/* Loads the subsets that opt asks for. The split is a seeded shuffle of the
 * 50,000 training records: the first val_size go to validation, the next
 * train_size to training. Errors name the file and, for bad content, the
 * byte offset. On success the caller owns *out and frees it with
 * hpo_cifar10_destroy(). */
int hpo_cifar10_load(const hpo_cifar10_options *opt, hpo_cifar10 **out,
                     char *err, size_t errlen);

/* Frees *data and sets *data to NULL. Accepts NULL. */
void hpo_cifar10_destroy(hpo_cifar10 **data);

#endif
