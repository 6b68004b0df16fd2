/* base64 and data: URLs (util/base64.c): what decodes re-encodes to the same
 * bytes once whitespace and padding are normalised, and never exceeds the cap. */
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "util/base64.h"

#define MAX_OUT 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data, *payload;
    size_t plen;
    char msg[256];
    if (util_data_url_strip(s, size, &payload, &plen, msg, sizeof msg) != 0) return 0;
    FUZZ_CHECK(payload >= s && payload + plen <= s + size);
    uint8_t *out;
    size_t outlen;
    if (util_base64_decode(payload, plen, MAX_OUT, &out, &outlen, msg, sizeof msg) != 0) return 0;
    FUZZ_CHECK(outlen <= MAX_OUT);
    char *again;
    size_t again_len;
    if (util_base64_encode(out, outlen, util_base64_encoded_len(outlen), &again, &again_len, msg, sizeof msg) == 0) {
        uint8_t *round;
        size_t round_len;
        FUZZ_CHECK(util_base64_decode(again, again_len, MAX_OUT, &round, &round_len, msg, sizeof msg) == 0);
        FUZZ_CHECK(round_len == outlen && memcmp(round, out, outlen) == 0);
        free(round);
        free(again);
    }
    free(out);
    return 0;
}
