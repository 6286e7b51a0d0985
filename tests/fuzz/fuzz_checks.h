/* Properties that the fuzz harnesses check on each input, shared with the
 * corpus replay test so that CI checks exactly what fuzzing checks.
 *
 * Each function returns 0 when the input behaved, whether it was accepted
 * or rejected, and -1 with the broken property in `why` otherwise. Memory
 * errors, leaks and undefined behaviour are left to the sanitizers. */
#ifndef HPO_FUZZ_CHECKS_H
#define HPO_FUZZ_CHECKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hpo/protocol.h"

/* Decodes one frame. A rejection must carry one of the decoder's
 * documented codes and a message. A decoded message must encode, decode
 * again to the same type, and encode again to the same text. *status
 * receives the decode status. */
int fuzz_check_msg(const uint8_t *data, size_t size, hpo_proto_status *status,
                   char *why, size_t whylen);

/* Parses a study file (text of `size` bytes, not NUL-terminated). A
 * rejection must carry a message. An accepted study is used as hpod uses
 * it: space listing, default, random and unit-cube configurations, and
 * their resolution into model specs. *parsed is set to true when it parsed. */
int fuzz_check_study(const uint8_t *data, size_t size, bool *parsed,
                     char *why, size_t whylen);

/* Parses a model spec as hpo-worker does for each trial. A rejection must
 * carry a message; an accepted spec must validate and have layer shapes,
 * parameter counts and FLOPs. *parsed is set to true when it parsed. */
int fuzz_check_model_spec(const uint8_t *data, size_t size, bool *parsed,
                          char *why, size_t whylen);

/* Quiets the libraries' logging and turns off GSL's aborting error
 * handler; call once before the checks. */
void fuzz_checks_init(void);

#endif
