/*
 * buf.h - a growable byte buffer with a hard cap, fixed when it is created
 * (curl's dynbuf): request bodies and response texts grow in one of these,
 * so no input can make the daemon allocate past the limit it was given.
 */
#ifndef CODID_UTIL_BUF_H
#define CODID_UTIL_BUF_H

#include <stddef.h>

enum {
    API_BUF_OK = 0,
    API_BUF_TOOBIG = -1, /* the data would pass the cap; the buffer is unchanged */
    API_BUF_NOMEM = -2
};

typedef struct util_buf {
    char *data; /* NUL-terminated past len when not NULL */
    size_t len, alloc, max;
} util_buf;

void util_buf_init(util_buf *b, size_t max);
int util_buf_add(util_buf *b, const void *p, size_t n);
/* Hands the data (may be NULL when empty) to the caller and resets b. */
char *util_buf_take(util_buf *b, size_t *len);
void util_buf_free(util_buf *b);

#endif
