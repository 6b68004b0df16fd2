/* Last-Event-ID (api/common.c api_parse_event_id): what parses is a
 * non-negative id that prints back as the same digits. */
#include <inttypes.h>
#include <string.h>

#include "api/api.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = fuzz_cstr(data, size);
    if (!s) return 0;
    int64_t id;
    if (api_parse_event_id(s, &id) == 0) {
        FUZZ_CHECK(id >= 0);
        char back[32];
        snprintf(back, sizeof back, "%" PRId64, id);
        const char *digits = s;
        while (digits[0] == '0' && digits[1]) digits++; /* leading zeros name the same id */
        FUZZ_CHECK(strcmp(back, digits) == 0);
    }
    free(s);
    return 0;
}
