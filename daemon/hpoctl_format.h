/* Text and CSV renderings of the answers that hpoctl receives (the JSON
 * built by control.c). Each function reads `data` and writes to out. */
#ifndef HPO_DAEMON_HPOCTL_FORMAT_H
#define HPO_DAEMON_HPOCTL_FORMAT_H

#include <stdio.h>

#include <cjson/cJSON.h>

void hpoctl_print_best(FILE *out, const cJSON *data);
void hpoctl_print_trials_table(FILE *out, const cJSON *data);
void hpoctl_print_trials_csv(FILE *out, const cJSON *data);
void hpoctl_print_summary(FILE *out, const cJSON *data);
void hpoctl_print_space(FILE *out, const cJSON *data);
void hpoctl_print_status(FILE *out, const cJSON *data);

#endif
