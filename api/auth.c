/* auth.c - see auth.h. */
#include "api/auth.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "api/api.h"
#include "util/sha256.h"

#define KEY_TAG        "codid_"
#define KEY_PREFIX_HEX API_KEY_PREFIX_HEX
#define KEY_SECRET_HEX 48
#define KEY_LEN        (sizeof KEY_TAG - 1 + KEY_PREFIX_HEX + 1 + KEY_SECRET_HEX)
#define CORS_MAX_AGE   "600"

/* Request headers a cross-origin client may send (lower case). */
static const char *const cors_headers[] = {"authorization", "content-type", "x-api-key", "accept", "last-event-id"};
#define CORS_ALLOW_HEADERS  "Authorization, Content-Type, X-API-Key, Accept, Last-Event-ID"
#define CORS_EXPOSE_HEADERS "X-Request-Id, X-Seed, Retry-After, Location"

static int hex_random(char *out, size_t hex_digits) {
    uint8_t bytes[32];
    size_t n = hex_digits / 2;
    if (n > sizeof bytes || getrandom(bytes, n, 0) != (ssize_t)n) return -1;
    for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", bytes[i]);
    return 0;
}

int api_key_create(jobs_store *st, const char *scope, char *key, size_t keysz, int64_t *id, char *msg, size_t msgsz) {
    char prefix[KEY_PREFIX_HEX + 1], secret[KEY_SECRET_HEX + 1], hash[2 * UTIL_SHA256_BYTES + 1];
    if (keysz < KEY_LEN + 1) {
        snprintf(msg, msgsz, "key buffer too small");
        return JOBS_EINVAL;
    }
    if (hex_random(prefix, KEY_PREFIX_HEX) != 0 || hex_random(secret, KEY_SECRET_HEX) != 0) {
        snprintf(msg, msgsz, "no random bytes from the system");
        return JOBS_ERR;
    }
    snprintf(key, keysz, "%s%s_%s", KEY_TAG, prefix, secret);
    util_sha256_hex(key, strlen(key), hash);
    int rc = jobs_store_key_add(st, prefix, hash, scope, id, msg, msgsz);
    if (rc != JOBS_OK) memset(key, 0, keysz);
    return rc;
}

static int all_hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) return 0;
    return 1;
}

const char *api_auth_credential(const char *authorization, const char *x_api_key) {
    if (authorization) {
        if (strncasecmp(authorization, "Bearer ", 7) != 0) return authorization; /* refused as malformed */
        authorization += 7;
        while (*authorization == ' ') authorization++;
        return authorization;
    }
    return x_api_key;
}

int api_key_parse(const char *key, char prefix[API_KEY_PREFIX_HEX + 1]) {
    size_t tag = sizeof KEY_TAG - 1;
    if (!key || strlen(key) != KEY_LEN || strncmp(key, KEY_TAG, tag) != 0 || !all_hex(key + tag, KEY_PREFIX_HEX) ||
        key[tag + KEY_PREFIX_HEX] != '_' || !all_hex(key + tag + KEY_PREFIX_HEX + 1, KEY_SECRET_HEX))
        return -1;
    memcpy(prefix, key + tag, KEY_PREFIX_HEX);
    prefix[KEY_PREFIX_HEX] = '\0';
    return 0;
}

/* The key the request carries, or NULL. */
static const char *request_key(api_request *r) {
    return api_auth_credential(api_request_header(r, "Authorization"), api_request_header(r, "X-API-Key"));
}

typedef enum key_check { KEY_NONE, KEY_BAD, KEY_GENERATE, KEY_ADMIN, KEY_ERROR } key_check;

static key_check check_key(jobs_store *st, const char *key) {
    if (!key) return KEY_NONE;
    char prefix[KEY_PREFIX_HEX + 1], hash[2 * UTIL_SHA256_BYTES + 1], msg[128];
    if (api_key_parse(key, prefix) != 0) return KEY_BAD;
    jobs_api_key row;
    int rc = jobs_store_key_find(st, prefix, &row, msg, sizeof msg);
    if (rc == JOBS_ENOTFOUND) return KEY_BAD;
    if (rc != JOBS_OK) return KEY_ERROR;
    util_sha256_hex(key, strlen(key), hash);
    if (!util_equal_ct(hash, row.hash, sizeof hash - 1)) return KEY_BAD;
    return strcmp(row.scope, "admin") == 0 ? KEY_ADMIN : KEY_GENERATE;
}

/* 1 when keys are configured; -1 when the store cannot tell. */
static int keys_configured(api_app *app) {
    int n = 0;
    char msg[128];
    if (!app->store) return 0;
    return jobs_store_key_count(app->store, &n, msg, sizeof msg) == JOBS_OK ? n > 0 : -1;
}

int api_request_is_admin(api_request *r) {
    api_app *app = api_request_app(r);
    if (!atomic_load_explicit(&app->ready, memory_order_acquire)) return 0;
    int configured = keys_configured(app);
    if (configured == 0) return 1;
    return configured > 0 && check_key(app->store, request_key(r)) == KEY_ADMIN;
}

const api_scrub *api_request_scrub(api_request *r) {
    api_app *app = api_request_app(r);
    return api_request_is_admin(r) ? NULL : &app->scrub;
}

/* ---- CORS ------------------------------------------------------------- */

/* Whether origin is in the comma-separated list; *any when through "*". */
static int origin_allowed(const char *list, const char *origin, int *any) {
    *any = 0;
    size_t olen = strlen(origin);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m && p[m - 1] == ' ') m--;
        if (m == 1 && *p == '*')
            *any = 1;
        else if (m && m == olen && memcmp(p, origin, m) == 0)
            return 1;
        p += n;
    }
    return *any;
}

static int method_listed(const char *allow, const char *method) {
    size_t n = strlen(method);
    for (const char *p = allow; *p;) {
        while (*p == ' ' || *p == ',') p++;
        size_t k = strcspn(p, ", ");
        if (k == n && strncmp(p, method, n) == 0) return 1;
        p += k;
    }
    return 0;
}

/* The first requested header we do not allow, copied to bad; 1 if any. */
static int header_refused(const char *list, char *bad, size_t badsz) {
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m && p[m - 1] == ' ') m--;
        int ok = m == 0;
        for (size_t i = 0; !ok && i < sizeof cors_headers / sizeof cors_headers[0]; i++)
            ok = strlen(cors_headers[i]) == m && strncasecmp(p, cors_headers[i], m) == 0;
        if (!ok) {
            snprintf(bad, badsz, "%.*s", (int)(m < 64 ? m : 64), p);
            return 1;
        }
        p += n;
    }
    return 0;
}

/* Sets the CORS headers of the answer; a preflight is answered here:
 * returns its status, else 0. */
static api_status cors(api_request *r, const api_limits *cfg) {
    const char *origin = api_request_header(r, "Origin");
    const char *want_method = api_request_header(r, "Access-Control-Request-Method");
    int preflight =
        !api_request_route(r) && *api_request_allow(r) && want_method && strcmp(api_request_method(r), "OPTIONS") == 0;
    if (!*cfg->cors_origins) {
        if (preflight && origin)
            return api_problem(r, API_FORBIDDEN,
                               "Origin: cross-origin requests are not enabled (cors_origins is empty)");
        return 0;
    }
    int any = 0;
    int allowed = origin && origin_allowed(cfg->cors_origins, origin, &any);
    if (!any) api_request_keep_header(r, "Vary", "Origin");
    if (!origin) return 0;
    if (!allowed) {
        if (preflight) return api_problem(r, API_FORBIDDEN, "Origin: '%.100s' is not in cors_origins", origin);
        return 0; /* no CORS headers: the browser keeps the answer from the page */
    }
    api_request_keep_header(r, "Access-Control-Allow-Origin", any ? "*" : origin);
    if (!any) api_request_keep_header(r, "Access-Control-Allow-Credentials", "true");
    api_request_keep_header(r, "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
    if (!preflight) return 0;

    char bad[80];
    if (!method_listed(api_request_allow(r), want_method))
        return api_problem(r, API_FORBIDDEN, "Access-Control-Request-Method: %.20s is not allowed on %s (allowed: %s)",
                           want_method, api_request_path(r), api_request_allow(r));
    const char *want_headers = api_request_header(r, "Access-Control-Request-Headers");
    if (want_headers && header_refused(want_headers, bad, sizeof bad))
        return api_problem(r, API_FORBIDDEN, "Access-Control-Request-Headers: '%.64s' is not allowed (allowed: %s)",
                           bad, CORS_ALLOW_HEADERS);
    api_respond(r, API_NO_CONTENT, "text/plain", NULL, 0);
    api_response_header(r, "Access-Control-Allow-Methods", api_request_allow(r));
    api_response_header(r, "Access-Control-Allow-Headers", CORS_ALLOW_HEADERS);
    api_response_header(r, "Access-Control-Max-Age", CORS_MAX_AGE);
    return API_NO_CONTENT;
}

/* ---- the hook --------------------------------------------------------- */

static api_status unauthorized(api_request *r, const char *detail) {
    api_problem(r, API_UNAUTHORIZED, "%s", detail);
    api_response_header(r, "WWW-Authenticate", "Bearer realm=\"codid\"");
    return API_UNAUTHORIZED;
}

api_status api_admit(api_request *r) {
    api_app *app = api_request_app(r);
    api_status st = cors(r, &app->cfg);
    if (st) return st;
    const api_route *route = api_request_route(r);
    if (!route || route->access == API_ACCESS_PUBLIC) return 0;
    /* before ready there is no store yet, and every non-public handler
     * answers 503 */
    if (!atomic_load_explicit(&app->ready, memory_order_acquire)) return 0;
    int configured = keys_configured(app);
    if (configured < 0) return api_problem(r, API_SERVICE_UNAVAILABLE, "the key store cannot be read; try again");
    if (configured == 0) return 0;
    const char *key = request_key(r);
    key_check kc = check_key(app->store, key);
    if (kc == KEY_GENERATE || kc == KEY_ADMIN) {
        char hash[2 * UTIL_SHA256_BYTES + 1];
        util_sha256_hex(key, strlen(key), hash);
        hash[16] = 0; /* the bucket's name: a prefix of the key's hash, never the key */
        if (api_request_rate_key(r, hash)) return API_TOO_MANY_REQUESTS;
    }
    switch (kc) {
        case KEY_NONE:
            return unauthorized(r,
                                "Authorization: this needs an API key (Authorization: Bearer KEY, or X-API-Key: KEY)");
        case KEY_BAD: return unauthorized(r, "Authorization: unknown, revoked or malformed API key");
        case KEY_ERROR: return api_problem(r, API_SERVICE_UNAVAILABLE, "the key store cannot be read; try again");
        case KEY_GENERATE:
            if (route->access == API_ACCESS_ADMIN)
                return api_problem(r, API_FORBIDDEN, "scope: %s %s needs an admin key; this key's scope is generate",
                                   api_request_method(r), route->pattern);
            return 0;
        case KEY_ADMIN: return 0;
    }
    return 0;
}

int api_host_is_loopback(const char *host) {
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0) return 1;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}
