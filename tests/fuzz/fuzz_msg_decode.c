/* libFuzzer harness for the protocol decoder: hpo_msg_decode() on each
 * input, and the encode-decode round trip of what decodes
 * (fuzz_check_msg()). A broken property aborts, which libFuzzer reports
 * as a crash and saves the input.
 *
 * Build: meson setup -Dfuzz=true with clang; scripts/fuzz.sh does it. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_checks.h"
#include "hpo/error.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    hpo_proto_status status;
    if (fuzz_check_msg(data, size, &status, why, sizeof why) != 0) {
        fprintf(stderr, "fuzz_msg_decode: %s\n", why);
        abort();
    }
    return 0;
}
