/*
 * sha256.h - SHA-256 (FIPS 180-4), for hashing API keys at rest. None of
 * the daemon's libraries offers one; tests/test_sha256.c checks it against
 * the standard's test vectors.
 */
#ifndef CODID_UTIL_SHA256_H
#define CODID_UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define UTIL_SHA256_BYTES 32

typedef struct util_sha256 {
    uint32_t h[8];
    uint64_t len; /* bytes hashed so far */
    uint8_t block[64];
    size_t fill; /* bytes waiting in block */
} util_sha256;

void util_sha256_init(util_sha256 *c);
void util_sha256_update(util_sha256 *c, const void *data, size_t n);
void util_sha256_final(util_sha256 *c, uint8_t out[UTIL_SHA256_BYTES]);

/* The digest of data[0..n) as 64 lowercase hex digits and a NUL. */
void util_sha256_hex(const void *data, size_t n, char out[2 * UTIL_SHA256_BYTES + 1]);

/* Compares a[0..n) and b[0..n) in time that depends on n only: 1 if equal. */
int util_equal_ct(const void *a, const void *b, size_t n);

#endif
