/* libFuzzer harness for the model spec parser that hpo-worker runs on each
 * trial's model: hpo_model_spec_parse() on each input, then the shape and
 * size computations of each spec that parses (fuzz_check_model_spec()). A
 * broken property aborts, which libFuzzer reports as a crash and saves the
 * input.
 *
 * Build: meson setup -Dfuzz=true with clang; scripts/fuzz.sh does it. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_checks.h"
#include "hpo/error.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Study files and model specs are small; larger inputs only slow the
 * search down. */
#define INPUT_MAX (64 * 1024)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_checks_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[HPO_ERR_MAX];
    bool parsed;
    if (size > INPUT_MAX)
        return 0;
    if (fuzz_check_model_spec(data, size, &parsed, why, sizeof why) != 0) {
        fprintf(stderr, "fuzz_model_spec: %s\n", why);
        abort();
    }
    return 0;
}
