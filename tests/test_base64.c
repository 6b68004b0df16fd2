/*
 * test_base64.c - util/base64.c: RFC 4648's vectors, lenient and strict
 * decoding, the output caps, binary round trips and data URL stripping.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test.h"
#include "util/base64.h"

TEST(base64_rfc4648_vectors) {
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *e;
        uint8_t *d;
        size_t elen, dlen;
        char msg[128];
        CHECK(util_base64_encode((const uint8_t *)plain[i], strlen(plain[i]), 64, &e, &elen, msg, sizeof msg) == 0);
        int enc_ok =
            strcmp(e, coded[i]) == 0 && elen == strlen(coded[i]) && elen == util_base64_encoded_len(strlen(plain[i]));
        free(e);
        CHECK_MSG(enc_ok, "encoding \"%s\"", plain[i]);
        CHECK(util_base64_decode(coded[i], strlen(coded[i]), 64, &d, &dlen, msg, sizeof msg) == 0);
        int dec_ok = dlen == strlen(plain[i]) && memcmp(d, plain[i], dlen) == 0;
        free(d);
        CHECK_MSG(dec_ok, "decoding \"%s\"", coded[i]);
    }
}

static int decodes_to(const char *in, const char *want) {
    uint8_t *d;
    size_t n;
    if (util_base64_decode(in, strlen(in), 1024, &d, &n, NULL, 0) != 0) return 0;
    int ok = n == strlen(want) && memcmp(d, want, n) == 0;
    free(d);
    return ok;
}

static int refuses(const char *in, const char *msg_part) {
    uint8_t *d = (uint8_t *)"x";
    size_t n = 7;
    char msg[128] = "";
    int rc = util_base64_decode(in, strlen(in), 1024, &d, &n, msg, sizeof msg);
    if (rc == 0) free(d);
    return rc == -1 && d == NULL && n == 0 && strstr(msg, msg_part) != NULL;
}

TEST(base64_decode_lenient_and_strict) {
    CHECK(decodes_to("Zm9vYg", "foob")); /* padding missing */
    CHECK(decodes_to("Zm9vYmE", "fooba"));
    CHECK(decodes_to("Zm9v\r\nYmFy\n", "foobar")); /* wrapped lines */
    CHECK(refuses("Zm9v!mFy", "character 0x21 at offset 4"));
    CHECK(refuses("Zm9-", "character")); /* base64url is not accepted */
    CHECK(refuses("Zm9_", "character"));
    CHECK(refuses("Zg==Zg==", "after '='"));
    CHECK(refuses("Zg=", "padding"));
    CHECK(refuses("Zm9vY", "length")); /* one sextet cannot end a quantum */
    CHECK(refuses("Zm9v====", "padding"));
    CHECK(refuses("Zm\x80v", "0x80"));
}

TEST(base64_caps) {
    uint8_t *d;
    char *e;
    size_t n;
    char msg[128];
    CHECK(util_base64_decode("Zm9vYmFy", 8, 5, &d, &n, msg, sizeof msg) == -1);
    CHECK(strstr(msg, "limit") != NULL);
    CHECK(util_base64_decode("Zm9vYmE", 7, 4, &d, &n, msg, sizeof msg) == -1);
    CHECK(util_base64_decode("Zm9vYmFy", 8, 6, &d, &n, msg, sizeof msg) == 0);
    free(d);
    CHECK(util_base64_encode((const uint8_t *)"foobar", 6, 7, &e, &n, msg, sizeof msg) == -1);
    CHECK(util_base64_encode((const uint8_t *)"foobar", 6, 8, &e, &n, msg, sizeof msg) == 0);
    free(e);
}

TEST(base64_binary_round_trip) {
    uint8_t all[256];
    for (int i = 0; i < 256; i++) all[i] = (uint8_t)(255 - i);
    for (size_t len = 0; len <= 256; len += len < 20 ? 1 : 59) {
        char *e;
        uint8_t *d;
        size_t elen, dlen;
        CHECK(util_base64_encode(all, len, 1024, &e, &elen, NULL, 0) == 0);
        CHECK(util_base64_decode(e, elen, 256, &d, &dlen, NULL, 0) == 0);
        int ok = dlen == len && memcmp(d, all, len) == 0;
        free(e);
        free(d);
        CHECK_MSG(ok, "length %zu", len);
    }
}

static int strips_to(const char *in, const char *want) {
    const char *p;
    size_t n;
    if (util_data_url_strip(in, strlen(in), &p, &n, NULL, 0) != 0) return 0;
    return n == strlen(want) && memcmp(p, want, n) == 0;
}

TEST(data_url_strip) {
    CHECK(strips_to("Zm9v", "Zm9v"));
    CHECK(strips_to("data:image/png;base64,Zm9v", "Zm9v"));
    CHECK(strips_to("DATA:Image/PNG;BASE64,Zm9v", "Zm9v"));
    CHECK(strips_to("data:;base64,Zm9v", "Zm9v"));
    CHECK(strips_to("data:image/png;base64,", ""));
    const char *p;
    size_t n;
    char msg[128];
    const char *jpeg = "data:image/jpeg;base64,/9j/";
    CHECK(util_data_url_strip(jpeg, strlen(jpeg), &p, &n, msg, sizeof msg) == -1);
    CHECK(strstr(msg, "image/jpeg") != NULL);
    CHECK(util_data_url_strip("data:image/png,abc", 18, &p, &n, msg, sizeof msg) == -1);
    CHECK(strstr(msg, "base64") != NULL);
    CHECK(util_data_url_strip("data:image/png;base64", 21, &p, &n, msg, sizeof msg) == -1);
}

int main(void) {
    RUN(base64_rfc4648_vectors);
    RUN(base64_decode_lenient_and_strict);
    RUN(base64_caps);
    RUN(base64_binary_round_trip);
    RUN(data_url_strip);
    return TEST_SUMMARY();
}
