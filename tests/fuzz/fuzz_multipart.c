/* multipart/form-data (api/upload.c). The first line is the Content-Type,
 * the rest the body; every part of a body that parses lies inside it. */
#include "api/upload.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char ct[256];
    const uint8_t *body;
    size_t len;
    fuzz_split(data, size, ct, sizeof ct, &body, &len);
    api_part *parts = NULL;
    int n = 0;
    char msg[256];
    if (api_multipart_parse(ct, body, len, 16, &parts, &n, msg, sizeof msg) == 0) {
        FUZZ_CHECK(n >= 0 && n <= 16);
        for (int i = 0; i < n; i++) FUZZ_CHECK(parts[i].data >= body && parts[i].data + parts[i].len <= body + len);
    }
    free(parts);
    return 0;
}
