/*
 * fuzz.h - what every harness under tests/fuzz/ shares.
 *
 * Each fuzz_TARGET.c defines LLVMFuzzerTestOneInput for one parser of bytes
 * that come from outside (a client, a file a user names). The same file
 * builds two ways:
 *   - `make fuzz`: clang -fsanitize=fuzzer,address,undefined, libFuzzer's
 *     own main, run for FUZZ_SECONDS over tests/fuzz/corpus/TARGET/;
 *   - `make test`: with replay.c's main, which feeds every file of the
 *     committed corpus to the harness once (tests/fuzz_replay.test.sh), so
 *     each finding, once added as a regression input, stays fixed.
 * A harness returns 0 and never crashes or leaks for any input; what the
 * parser answers is its own business, but an answer of success must be
 * consistent (the harness checks what it cheaply can with FUZZ_CHECK).
 */
#ifndef CODID_TESTS_FUZZ_H
#define CODID_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of a successful parse; abort() makes libFuzzer keep the input. */
#define FUZZ_CHECK(cond)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

/* A NUL-terminated copy of data (malloc'd; NULL when out of memory). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) return NULL;
    for (size_t i = 0; i < size; i++) s[i] = (char)data[i];
    s[size] = 0;
    return s;
}

/* Splits data at the first newline: the head (a NUL-terminated copy, at most
 * cap bytes) steers the harness, the rest is the input. */
static inline void fuzz_split(const uint8_t *data, size_t size, char *head, size_t cap, const uint8_t **rest,
                              size_t *rest_len) {
    size_t i = 0;
    while (i < size && data[i] != '\n') i++;
    size_t n = i < cap - 1 ? i : cap - 1;
    for (size_t k = 0; k < n; k++) head[k] = (char)data[k];
    head[n] = 0;
    *rest = i < size ? data + i + 1 : data + size;
    *rest_len = i < size ? size - i - 1 : 0;
}

#endif
