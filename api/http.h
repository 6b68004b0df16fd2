/*
 * http.h - the HTTP glue over libmicrohttpd: routing, capped request bodies,
 * problem+json errors, request ids, one log line per request, and the
 * suspend/resume door through which slow work (generation) leaves the event
 * loop. The design notes are at the top of http.c.
 *
 * A handler runs on the event-loop thread and must not block. It either
 * answers at once (api_respond*, api_problem) and returns the status, or
 * hands the request to another thread with api_request_suspend() and returns
 * API_SUSPENDED; that thread later sets the response with the same functions
 * and calls api_request_resume(), its last touch of the request.
 */
#ifndef CODID_API_HTTP_H
#define CODID_API_HTTP_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "api/guard.h"

/* Every status the daemon answers with: name, code, reason phrase. */
#define API_STATUS_TABLE(X)                                            \
    X(OK, 200, "OK")                                                   \
    X(CREATED, 201, "Created")                                         \
    X(ACCEPTED, 202, "Accepted")                                       \
    X(NO_CONTENT, 204, "No Content")                                   \
    X(BAD_REQUEST, 400, "Bad Request")                                 \
    X(UNAUTHORIZED, 401, "Unauthorized")                               \
    X(FORBIDDEN, 403, "Forbidden")                                     \
    X(NOT_FOUND, 404, "Not Found")                                     \
    X(METHOD_NOT_ALLOWED, 405, "Method Not Allowed")                   \
    X(NOT_ACCEPTABLE, 406, "Not Acceptable")                           \
    X(CONFLICT, 409, "Conflict")                                       \
    X(CONTENT_TOO_LARGE, 413, "Content Too Large")                     \
    X(UNSUPPORTED_MEDIA_TYPE, 415, "Unsupported Media Type")           \
    X(UNPROCESSABLE_CONTENT, 422, "Unprocessable Content")             \
    X(TOO_MANY_REQUESTS, 429, "Too Many Requests")                     \
    X(HEADER_FIELDS_TOO_LARGE, 431, "Request Header Fields Too Large") \
    X(INTERNAL_SERVER_ERROR, 500, "Internal Server Error")             \
    X(SERVICE_UNAVAILABLE, 503, "Service Unavailable")                 \
    X(GATEWAY_TIMEOUT, 504, "Gateway Timeout")

typedef enum api_status {
    API_SUSPENDED = 0, /* a handler's answer: the response comes later */
#define API_STATUS_ENUM_(name, code, title) API_##name = code,
    API_STATUS_TABLE(API_STATUS_ENUM_)
#undef API_STATUS_ENUM_
} api_status;

/* The reason phrase ("Not Found"), or "Unknown" for a code not in the table. */
const char *api_status_title(api_status status);

typedef struct api_request api_request;
typedef struct api_server api_server;

typedef api_status (*api_handler)(api_request *r);

/* A pattern is a path whose segments may be "{name}" (one non-empty
 * segment, read back with api_request_param). */
typedef struct api_route {
    const char *method;
    const char *pattern;
    api_handler handler;
    int access; /* the application's own class for the route (api/auth.h) */
    int upload; /* 1: bodies up to max_upload_bytes rather than max_body_bytes */
} api_route;

typedef struct api_server_params {
    const char *host; /* IPv4 or IPv6 literal, or "localhost" */
    int port;         /* 0: any free port (see api_server_port) */
    const api_route *routes;
    size_t n_routes;
    void *app; /* handed to handlers by api_request_app() */
    size_t max_body_bytes;
    size_t max_upload_bytes; /* the cap of routes marked upload */
    unsigned timeout_s;      /* idle connections are closed after this */
    api_guard_params guard;  /* header/body deadlines, connection caps, rate limits */
    size_t max_header_bytes; /* request line and headers together; then 431 */
    int max_headers;         /* header fields; then 431 */
    /* Called on the event-loop thread once a request's headers are in and
     * it is routed, before its body is read: for a request that matched no
     * route a 404/405 is already set, and an OPTIONS request to a known
     * path has no route (api_request_allow() lists the path's methods).
     * Returns 0 to go on, or the status of a response it set (401, a
     * preflight's 204...), which is sent without reading the body. May be
     * NULL. */
    api_status (*admit)(api_request *r);
    /* Called on the event-loop thread when a request is done, with the
     * status sent (0 when nothing was) and its duration. May be NULL. */
    void (*observe)(api_request *r, unsigned status, double ms);
} api_server_params;

/* The rate limit of the API key named by key_id (a prefix of its hash, say)
 * for this request: 0 to go on, or 429 with Retry-After set. */
api_status api_request_rate_key(api_request *r, const char *key_id);

/* Binds and starts the event-loop thread. A bind failure is reported in msg
 * (with the system's reason) and returns -1. */
int api_server_start(const api_server_params *p, api_server **out, char *msg, size_t msgsz);
int api_server_port(const api_server *s);
/* Stops accepting connections; open ones are still served. */
void api_server_quiesce(api_server *s);
/* Waits until no request is in progress: 0, or -1 after timeout_ms. */
int api_server_drain(api_server *s, int timeout_ms);
/* Closes every connection and frees s. No request may be suspended. */
void api_server_stop(api_server *s);

/* ---- the request, for handlers ---------------------------------------- */

const char *api_request_method(const api_request *r);
const char *api_request_path(const api_request *r);
/* 16 hex digits, also sent back as X-Request-Id */
const char *api_request_id(const api_request *r);
/* Header and query lookups read the connection: event-loop thread only. */
const char *api_request_header(api_request *r, const char *name);
const char *api_request_query(api_request *r, const char *name);
/* The matched route, or NULL (no route matched, or an OPTIONS request). */
const api_route *api_request_route(const api_request *r);
/* For a request to a known path: its methods as an Allow header value
 * ("GET, DELETE"); "" otherwise. */
const char *api_request_allow(const api_request *r);
/* A "{name}" segment of the matched route, or NULL. */
const char *api_request_param(const api_request *r, const char *name);
/* The body received so far; complete when the handler runs. */
const char *api_request_body(const api_request *r, size_t *len);
void *api_request_app(const api_request *r);
/* Milliseconds since the request's headers arrived. */
double api_request_age_ms(const api_request *r);

/* The q an Accept header value gives a media type: that of the entry that
 * matches it most specifically (type/subtype over type/ * over * / *), 0
 * when none does. */
double api_accept_q(const char *accept, const char *type);
/* Content negotiation on the Accept header: the best of offers[0..n)
 * (earlier offers win ties; a missing header accepts the first), or NULL
 * when the client accepts none of them. */
const char *api_negotiate(api_request *r, const char *const *offers, size_t n);

/* ---- responding ------------------------------------------------------- */

/* Each of these replaces any response set before, extra headers included.
 * body: malloc'd, owned by the request from now on (NULL when len is 0);
 * content_type: a string that outlives the request (a literal). */
api_status api_respond(api_request *r, api_status status, const char *content_type, void *body, size_t len);
/* Prints and frees doc. */
api_status api_respond_json(api_request *r, api_status status, cJSON *doc);
/* application/problem+json {type, title, status, detail}. */
api_status api_problem(api_request *r, api_status status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An extra header for the response set last (a few fit); -1 when there is
 * no room. */
int api_response_header(api_request *r, const char *name, const char *value);
/* A header sent with whatever response the request gets, even one set
 * later (CORS headers); -1 when there is no room. */
int api_request_keep_header(api_request *r, const char *name, const char *value);

/* ---- streamed responses ------------------------------------------------ */

/*
 * A body written over time by another thread (Server-Sent Events). The
 * writer appends with api_stream_write; while nothing is pending the
 * connection is suspended (no busy polling), and a write resumes it. The
 * stream has two owners, the connection and the writer: the writer calls
 * api_stream_release() when it is done with it, after api_stream_end() or
 * once api_stream_closed() says the client left. A writer must end its
 * streams before api_server_stop().
 */
typedef struct api_stream api_stream;

/* Sets r's response to a stream (chunked, no Content-Length) whose pending
 * bytes are capped at max_pending; *out receives the writer's handle.
 * From a handler only. */
api_status api_respond_stream(api_request *r, api_status status, const char *content_type, size_t max_pending,
                              api_stream **out);
/* From any thread: 0; -1 once the stream is closed or ended; API_BUF_TOOBIG
 * when the client reads too slowly for max_pending. */
int api_stream_write(api_stream *s, const char *data, size_t len);
/* The body ends once what is pending is sent. */
void api_stream_end(api_stream *s);
/* 1 when the connection is done with the stream (the client left, or the
 * body was sent). */
int api_stream_closed(api_stream *s);
void api_stream_release(api_stream *s);

/* ---- suspending ------------------------------------------------------- */

/* From a handler only; returns API_SUSPENDED for the handler to return. */
api_status api_request_suspend(api_request *r);
/* From any thread, once the response is set; the caller must not touch r
 * afterwards. */
void api_request_resume(api_request *r);
/* While suspended, libmicrohttpd does not watch the socket: this peeks at
 * it. 1 when the client has closed its end or reset the connection. */
int api_request_client_gone(const api_request *r);

#endif
