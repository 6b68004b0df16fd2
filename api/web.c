/*
 * web.c - GET / and the page's script and style sheet: the web page for
 * people (web/ in the source tree, compiled in: api/web.h). It talks to
 * this daemon's API only, and its Content-Security-Policy holds it to that:
 * every script, style, image and request stays on the daemon's origin.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/web.h"

#define PAGE_CSP "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; frame-ancestors 'none'"

api_status api_web_page(api_request *r) {
    const char *path = api_request_path(r);
    if (strcmp(path, "/") == 0) path = "/index.html";
    for (size_t i = 0; i < api_web_assets_count; i++) {
        const api_web_asset *a = &api_web_assets[i];
        if (strcmp(a->path, path) != 0) continue;
        void *body = malloc(a->len ? a->len : 1);
        if (!body) return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
        memcpy(body, a->data, a->len);
        api_respond(r, API_OK, a->content_type, body, a->len);
        api_response_header(r, "Cache-Control", "no-cache");
        api_response_header(r, "X-Content-Type-Options", "nosniff");
        if (strncmp(a->content_type, "text/html", 9) == 0) api_response_header(r, "Content-Security-Policy", PAGE_CSP);
        return API_OK;
    }
    return api_problem(r, API_NOT_FOUND, "no resource at %s", api_request_path(r));
}
