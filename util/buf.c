/* buf.c - see buf.h. */
#include "util/buf.h"

#include <stdlib.h>
#include <string.h>

#define BUF_MIN_ALLOC 256

void util_buf_init(util_buf *b, size_t max) {
    b->data = NULL;
    b->len = b->alloc = 0;
    b->max = max;
}

int util_buf_add(util_buf *b, const void *p, size_t n) {
    if (n > b->max - b->len) return API_BUF_TOOBIG;
    size_t need = b->len + n + 1; /* room for the NUL */
    if (need > b->alloc) {
        size_t alloc = b->alloc ? b->alloc : BUF_MIN_ALLOC;
        while (alloc < need) alloc = alloc > (b->max + 1) / 2 ? b->max + 1 : alloc * 2;
        char *grown = realloc(b->data, alloc);
        if (!grown) return API_BUF_NOMEM;
        b->data = grown;
        b->alloc = alloc;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return API_BUF_OK;
}

char *util_buf_take(util_buf *b, size_t *len) {
    char *data = b->data;
    if (len) *len = b->len;
    util_buf_init(b, b->max);
    return data;
}

void util_buf_free(util_buf *b) {
    free(b->data);
    util_buf_init(b, b->max);
}
