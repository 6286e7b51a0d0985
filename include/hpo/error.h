/* Error reporting shared by every hpod program.
 *
 * Functions that can fail return 0 on success and -1 on failure, and write a
 * one-line message into a caller-owned buffer `err` of `errlen` bytes. The
 * message names the value that failed and, where there is one, the fix.
 * Only main() exits; library code never does. */
#ifndef HPO_ERROR_H
#define HPO_ERROR_H

#include <stddef.h>

/* Recommended size of an error buffer. Longer messages are truncated. */
#define HPO_ERR_MAX 512

/* Formats a message into err (when err is not NULL) and returns -1, so that
 * a failing function can end with `return hpo_error(err, errlen, ...);`. */
int hpo_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes the 1-based line and column of byte `offset` in text, for
 * messages about a parse error in a file. */
void hpo_text_position(const char *text, size_t offset, int *line, int *column);

#endif
