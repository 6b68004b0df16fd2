/*
 * auth.h - API keys, scopes and CORS: the admit hook every request passes
 * before its body is read (see api_server_params.admit).
 *
 * Keys read "codid_<12 hex: prefix>_<48 hex: secret>". The store keeps the
 * prefix (to find the row) and the SHA-256 of the whole key, compared in
 * constant time; the key itself is shown once, by `codid keys create`.
 * Clients send "Authorization: Bearer KEY" or "X-API-Key: KEY".
 *
 * A route's access class (api_route.access) says which scope it needs:
 * public routes (probes) none, API_ACCESS_GENERATE a key of either scope,
 * API_ACCESS_ADMIN an admin key. While no key is configured every request
 * is let in; the daemon then listens on loopback only, unless --insecure.
 *
 * CORS: an Origin listed in cors_origins is echoed back (with credentials
 * allowed); "*" lets any origin in, answered with "*" and never with
 * credentials. A preflight (OPTIONS with Access-Control-Request-Method) is
 * answered 204 with the path's methods and the headers clients may send,
 * or 403 naming the origin, method or header refused.
 */
#ifndef CODID_API_AUTH_H
#define CODID_API_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "api/http.h"
#include "api/render.h"
#include "jobs/store.h"

enum { API_ACCESS_PUBLIC = 0, API_ACCESS_GENERATE = 1, API_ACCESS_ADMIN = 2 };

#define API_KEY_MAX        80 /* a key's length with its NUL, with room to spare */
#define API_KEY_PREFIX_HEX 12 /* keys read codid_<12 hex: the prefix>_<48 hex: the secret> */

/* The credential a request carries: the Authorization header's value after
 * "Bearer " (any case, spaces skipped), the whole value when it is another
 * scheme (then refused as malformed), else X-API-Key; NULL with neither. */
const char *api_auth_credential(const char *authorization, const char *x_api_key);
/* 0 when key has a key's form (lower-case hex), its prefix copied out; -1
 * otherwise. */
int api_key_parse(const char *key, char prefix[API_KEY_PREFIX_HEX + 1]);

/* Makes a key of scope "generate" or "admin", stores its hash, and writes
 * the key to key[0..keysz). Returns a jobs_status. */
int api_key_create(jobs_store *st, const char *scope, char *key, size_t keysz, int64_t *id, char *msg, size_t msgsz);

/* The admit hook (api_server_params.admit); the app is an api_app. */
api_status api_admit(api_request *r);

/* Whether r may do what needs an admin key: with keys configured, its key
 * has scope admin; with none, always. */
int api_request_is_admin(api_request *r);
/* The scrubber of what r may see (api/render.h): NULL for an admin, the
 * app's (server paths hidden) for anybody else. */
const api_scrub *api_request_scrub(api_request *r);

/* Whether host (as the listen setting gives it) is a loopback address. */
int api_host_is_loopback(const char *host);

#endif
