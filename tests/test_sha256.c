/*
 * test_sha256.c - util/sha256.c: SHA-256 against FIPS 180-4's vectors (one
 * block, two blocks, a million 'a' fed in uneven chunks) and the
 * constant-time compare the API key check uses.
 */
#include <stdio.h>
#include <string.h>

#include "tests/test.h"
#include "util/sha256.h"

TEST(sha256_vectors) {
    char hex[65];
    util_sha256_hex("", 0, hex);
    CHECK_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    util_sha256_hex("abc", 3, hex);
    CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    util_sha256_hex(m448, strlen(m448), hex);
    CHECK_EQ_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqr"
                       "smnopqrstnopqrstu";
    util_sha256_hex(m896, strlen(m896), hex);
    CHECK_EQ_STR(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(sha256_million_a_in_odd_chunks) {
    static char a[1000];
    memset(a, 'a', sizeof a);
    util_sha256 c;
    util_sha256_init(&c);
    size_t left = 1000000, k = 0;
    while (left) {
        size_t n = 1 + (k++ * 37) % 999;
        if (n > left) n = left;
        util_sha256_update(&c, a, n);
        left -= n;
    }
    uint8_t d[32];
    util_sha256_final(&c, d);
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    CHECK_EQ_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(equal_ct) {
    CHECK(util_equal_ct("abcdef", "abcdef", 6));
    CHECK(!util_equal_ct("abcdef", "abcdeg", 6));
    CHECK(!util_equal_ct("xbcdef", "abcdef", 6));
    CHECK(util_equal_ct("", "", 0));
}

int main(void) {
    RUN(sha256_vectors);
    RUN(sha256_million_a_in_odd_chunks);
    RUN(equal_ct);
    return TEST_SUMMARY();
}
