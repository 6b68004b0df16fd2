/* The Authorization and X-API-Key parsers (api/auth.c): the first line is
 * the Authorization value (absent when the line is "-"), the rest X-API-Key.
 * A credential that parses as a key has a key's exact form. */
#include <ctype.h>
#include <string.h>

#include "api/auth.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char head[512];
    const uint8_t *rest;
    size_t rest_len;
    fuzz_split(data, size, head, sizeof head, &rest, &rest_len);
    char *x_api_key = fuzz_cstr(rest, rest_len);
    if (!x_api_key) return 0;
    const char *cred = api_auth_credential(strcmp(head, "-") == 0 ? NULL : head, x_api_key);
    char prefix[API_KEY_PREFIX_HEX + 1];
    if (cred && api_key_parse(cred, prefix) == 0) {
        FUZZ_CHECK(strncmp(cred, "codid_", 6) == 0 && strlen(prefix) == API_KEY_PREFIX_HEX);
        for (int i = 0; i < API_KEY_PREFIX_HEX; i++) FUZZ_CHECK(isxdigit((unsigned char)prefix[i]));
    }
    free(x_api_key);
    return 0;
}
