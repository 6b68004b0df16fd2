/*
 * web.h - the web page served at GET / (web/ in the source tree), compiled
 * into the binary by the Makefile (web/embed.c writes the table below), so
 * the daemon serves it with nothing installed beside it.
 */
#ifndef CODID_API_WEB_H
#define CODID_API_WEB_H

#include <stddef.h>

typedef struct api_web_asset {
    const char *path; /* "/index.html", "/app.js" */
    const char *content_type;
    const unsigned char *data; /* len bytes (and a NUL after them) */
    size_t len;
} api_web_asset;

extern const api_web_asset api_web_assets[];
extern const size_t api_web_assets_count;

#endif
