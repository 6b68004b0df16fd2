/* The config file (server/config.c): any bytes as a file either load or are
 * refused with a message; a loaded file gives settings that print. */
#include <string.h>
#include <unistd.h>

#include "server/config.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!*path) snprintf(path, sizeof path, "/tmp/codid-fuzz-config-%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    srv_config c;
    srv_config_defaults(&c);
    char msg[512];
    if (srv_config_load_file(&c, path, msg, sizeof msg) == SRV_CONFIG_OK) {
        FILE *null = fopen("/dev/null", "w");
        if (null) {
            srv_config_print(null, &c);
            fclose(null);
        }
    } else {
        FUZZ_CHECK(memchr(msg, 0, sizeof msg) != NULL && *msg);
    }
    unlink(path);
    return 0;
}
