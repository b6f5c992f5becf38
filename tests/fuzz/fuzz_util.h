/*
 * fuzz_util.h: helpers shared by the libFuzzer harnesses (docs/fuzzing.md).
 *
 * A harness feeds the fuzzer's bytes to one parser family and checks what must hold for every
 * input: no crash, leak or undefined behaviour (the sanitizers), and the invariants it asserts with
 * FUZZ_CHECK (e.g. what a parser accepted formats back to a form that parses to the same value).
 */
#ifndef TESTS_FUZZ_FUZZ_UTIL_H
#define TESTS_FUZZ_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* FUZZ_CHECK: an invariant; a violation aborts, which libFuzzer reports as a crash. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* fuzz_strndup: data[0..size) as a NUL-terminated heap string (an embedded NUL ends it early, as
 * it would for a C string taken off the wire). Never NULL. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* fuzz_quiet_logs: parsers that skip unknown input log a warning per call; keep them off the
 * fuzzer's output (errors still show). */
static inline void fuzz_quiet_logs(void)
{
    log_set_level(LOG_ERROR);
}

#endif
