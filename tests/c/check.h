/* Tiny assertion helpers shared by the C tests. Each CHECK counts as one
 * passed or failed check; main() ends with check_summary(), which prints
 * "N passed, M failed" and returns the exit status. */
#ifndef MEMSHELF_TEST_CHECK_H
#define MEMSHELF_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memshelf.h"

static int checks_passed;
static int checks_failed;

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (cond) {                                                                      \
            checks_passed++;                                                             \
        } else {                                                                         \
            checks_failed++;                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__,      \
                    __LINE__, #cond, memshelf_last_error());                             \
        }                                                                                \
    } while (0)

/* Checks that `call` returns status `want`. */
#define CHECK_STATUS(call, want)                                                         \
    do {                                                                                 \
        memshelf_status got_ = (call);                                                   \
        if (got_ == (want)) {                                                            \
            checks_passed++;                                                             \
        } else {                                                                         \
            checks_failed++;                                                             \
            fprintf(stderr, "%s:%d: %s returned %d (%s), expected %s (last error: %s)\n", \
                    __FILE__, __LINE__, #call, (int)got_, memshelf_strerror(got_), #want, \
                    memshelf_last_error());                                              \
        }                                                                                \
    } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, MEMSHELF_OK)

/* Stops the test when a precondition fails (later checks would crash). */
#define REQUIRE_OK(call)                                                                 \
    do {                                                                                 \
        memshelf_status got_ = (call);                                                   \
        if (got_ != MEMSHELF_OK) {                                                       \
            fprintf(stderr, "%s:%d: %s returned %d (%s): %s\n", __FILE__, __LINE__, #call,  \
                    (int)got_, memshelf_strerror(got_), memshelf_last_error());          \
            exit(2);                                                                     \
        }                                                                                \
    } while (0)

#define K(s) ((const uint8_t *)(s)), strlen(s)

/* A segment name unique to this process and test. */
static inline void test_name(char *out, size_t len, const char *what) {
    snprintf(out, len, "ctest-%s-%ld", what, (long)getpid());
}

static inline int check_summary(const char *program) {
    printf("%s: %d passed, %d failed\n", program, checks_passed, checks_failed);
    return checks_failed == 0 ? 0 : 1;
}

#endif
