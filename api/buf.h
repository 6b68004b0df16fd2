/*
 * buf.h - a growable byte buffer with a hard cap, fixed when it is created
 * (curl's dynbuf): request bodies and response texts grow in one of these,
 * so no input can make the daemon allocate past the limit it was given.
 */
#ifndef CODID_API_BUF_H
#define CODID_API_BUF_H

#include <stddef.h>

enum {
    API_BUF_OK = 0,
    API_BUF_TOOBIG = -1, /* the data would pass the cap; the buffer is unchanged */
    API_BUF_NOMEM = -2
};

typedef struct api_buf {
    char *data; /* NUL-terminated past len when not NULL */
    size_t len, alloc, max;
} api_buf;

void api_buf_init(api_buf *b, size_t max);
int api_buf_add(api_buf *b, const void *p, size_t n);
/* Hands the data (may be NULL when empty) to the caller and resets b. */
char *api_buf_take(api_buf *b, size_t *len);
void api_buf_free(api_buf *b);

#endif
