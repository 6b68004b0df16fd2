/* The Accept parser (api/http.c api_accept_q): any header value gives each
 * media type a q in [0, 1]. */
#include "api/http.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *accept = fuzz_cstr(data, size);
    if (!accept) return 0;
    static const char *const types[] = {"image/png", "application/json", "text/event-stream", "text/csv"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        double q = api_accept_q(accept, types[i]);
        FUZZ_CHECK(q >= 0 && q <= 1);
    }
    free(accept);
    return 0;
}
