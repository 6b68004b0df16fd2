/* The tar importer's reader (api/upload.c api_tar_each): every member it
 * hands out lies inside the archive and has a NUL-terminated name. */
#include <string.h>

#include "api/upload.h"
#include "tests/fuzz/fuzz.h"

typedef struct walk {
    const uint8_t *buf;
    size_t len;
    int members;
} walk;

static int each(const api_tar_member *m, void *user) {
    walk *w = user;
    FUZZ_CHECK(m->data >= w->buf && m->data + m->len <= w->buf + w->len);
    FUZZ_CHECK(memchr(m->name, 0, sizeof m->name) != NULL);
    return ++w->members > 10000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    walk w = {data, size, 0};
    char msg[256];
    api_tar_each(data, size, each, &w, msg, sizeof msg);
    return 0;
}
