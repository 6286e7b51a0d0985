/* Encoding of a study's configurations as points of the unit cube, the
 * input space of the Gaussian process.
 *
 * Each parameter with more than one value gets columns with values in
 * [0, 1]:
 *   float without a step: one continuous column, linear or logarithmic;
 *   int, float with a step: one column holding the rounded value, linear
 *     or logarithmic, so that the kernel gets only values the parameter can
 *     take (Garrido-Merchan and Hernandez-Lobato, Neurocomputing, 2020,
 *     doi:10.1016/j.neucom.2019.11.004);
 *   ordered choice: one column, the index over (n - 1);
 *   bool and two-valued unordered choice: one column, 0 or 1;
 *   unordered choice of three or more values: one-hot, one column each.
 * A parameter that is inactive in a configuration (not used by the
 * resolved template) takes a fixed value in its columns: 0.5 in a single
 * column, 0 in every one-hot column. Conditional parameters that are active
 * in the same configurations share one activity column (1 when active),
 * so the kernel can tell "inactive" from "active at the imputed value".
 * docs/tuner.md gives the reasons. */
#ifndef HPO_ENCODING_H
#define HPO_ENCODING_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <gsl/gsl_rng.h>

#include "hpo/study.h"

typedef enum {
    HPO_COLUMN_CONTINUOUS = 0, /* float without a step */
    HPO_COLUMN_ORDINAL,        /* int, stepped float, ordered choice, bool, or an
                                  unordered choice of two values */
    HPO_COLUMN_ONE_HOT,        /* one value of an unordered choice */
    HPO_COLUMN_ACTIVITY,       /* activity of a group of conditional parameters */
} hpo_column_kind;

typedef struct hpo_encoding hpo_encoding;

/* Builds the encoding of a study. Conditional parameters are found by
 * resolving the default configuration and 256 random configurations with a
 * fixed seed. A parameter active in all of them gets no activity column.
 * The encoding keeps a pointer to study, which must outlive it. It never
 * changes after creation, so several threads may use it at once. The
 * caller frees *out with hpo_encoding_destroy(). */
int hpo_encoding_create(const hpo_study *study, hpo_encoding **out, char *err, size_t errlen);

/* Frees *encoding and sets it to NULL. Accepts NULL. */
void hpo_encoding_destroy(hpo_encoding **encoding);

/* Number of columns; 0 when no parameter has two or more values. */
int hpo_encoding_columns(const hpo_encoding *encoding);

hpo_column_kind hpo_encoding_column_kind(const hpo_encoding *encoding, int column);

/* The parameter a column belongs to; -1 for activity columns. */
int hpo_encoding_column_param(const hpo_encoding *encoding, int column);

/* Number of activity columns. */
int hpo_encoding_activity_groups(const hpo_encoding *encoding);

const hpo_study *hpo_encoding_study(const hpo_encoding *encoding);

/* Tells whether parameter param is active in the encoded point x, from its
 * activity column; true for parameters without one. */
bool hpo_encoding_param_active(const hpo_encoding *encoding, const double *x, int param);

/* Encodes a configuration from the object of its active values, as
 * hpo_study_active() builds it, into x (hpo_encoding_columns() values). */
int hpo_encoding_encode(const hpo_encoding *encoding, const cJSON *active, double *x,
                        char *err, size_t errlen);

/* Decodes x, clamped to [0, 1], into a values object with one value per
 * parameter: rounded to the step, the nearest ordinal, the one-hot column
 * with the largest value. Activity columns are ignored. The caller owns
 * *values_out. */
int hpo_encoding_decode(const hpo_encoding *encoding, const double *x, cJSON **values_out,
                        char *err, size_t errlen);

/* Encodes a full values object: computes its active parameters, writes
 * the encoding to x and, when key_out is not NULL, the configuration key
 * (hpo_study_config_key(), owned by the caller, freed with free()). */
int hpo_encoding_from_values(const hpo_encoding *encoding, const cJSON *values, double *x,
                             char **key_out, char *err, size_t errlen);

/* Projects any point onto the valid encoded configuration nearest to it:
 * decodes x, then encodes the result into x_out (which may be x). key_out
 * and values_out, when not NULL, receive the key and the values; the
 * caller owns both. Without conditional parameters and with both NULL,
 * the projection is numeric and takes about a microsecond. */
int hpo_encoding_project(const hpo_encoding *encoding, const double *x, double *x_out,
                         cJSON **values_out, char **key_out, char *err, size_t errlen);

/* Encodes the configuration that hpo_study_values_from_unit() maps the
 * point u of the parameters' unit cube to (one value of u per parameter,
 * each in [0, 1]). Numeric without conditional parameters. */
int hpo_encoding_from_unit(const hpo_encoding *encoding, const double *u, double *x,
                           char *err, size_t errlen);

/* Computes the configuration key (hpo_study_config_key()) of the valid
 * encoded point x; the caller frees *key_out with free(). */
int hpo_encoding_key(const hpo_encoding *encoding, const double *x, char **key_out,
                     char *err, size_t errlen);

/* Writes to x_out a random neighbour of the valid encoded point x, for
 * the local search of the acquisition: each parameter active in x changes
 * with probability 2 / (number of active parameters with columns), at
 * least one always. A continuous or fine-grained column moves by a
 * Gaussian step of standard deviation 0.1 (at least 1.5 grid steps), a
 * coarse ordinal (up to 5 values) or one-hot parameter takes another value
 * at random. Inactive parameters get uniform random values, which matter
 * only if the move activates them. x_out needs hpo_encoding_project()
 * before use. */
void hpo_encoding_perturb(const hpo_encoding *encoding, const double *x, double *x_out,
                          gsl_rng *rng);

#endif
