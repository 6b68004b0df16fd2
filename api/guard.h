/*
 * guard.h - the HTTP server's defences against clients that hold on to
 * resources: deadlines for a whole request header and a whole request body,
 * caps on open connections (in all and per client address), and per-client
 * and per-key rate limits (token buckets). api/http.c owns one guard per
 * server and consults it; nothing else calls these functions directly.
 *
 * Threads: every function is safe from any thread (one mutex); the guard's
 * own thread cuts connections past their deadline with shutdown(2), which
 * makes the event loop see the peer gone and close the connection itself.
 */
#ifndef CODID_API_GUARD_H
#define CODID_API_GUARD_H

#include <stddef.h>
#include <sys/socket.h>

typedef struct api_guard_params {
    int header_timeout_s;           /* connection open (or previous request done) to headers complete; 0 off */
    int body_timeout_s;             /* headers complete to body complete; 0 off */
    int max_connections;            /* open connections in all; 0 off */
    int max_connections_per_client; /* open connections of one client address; 0 off */
    int rate_per_min;               /* requests per minute per client address and per key; 0 off */
    int rate_burst;                 /* bucket size */
    int rate_loopback;              /* also limit loopback clients */
} api_guard_params;

typedef struct api_guard api_guard;
typedef struct api_guard_conn api_guard_conn;

int api_guard_start(const api_guard_params *p, api_guard **out, char *msg, size_t msgsz);
void api_guard_stop(api_guard *g);

/* A connection opened (fd, peer address) or closed. open returns NULL when
 * out of memory (the connection then goes unguarded). */
api_guard_conn *api_guard_open(api_guard *g, int fd, const struct sockaddr *addr);
void api_guard_close(api_guard *g, api_guard_conn *c);

/* The phases whose length the guard bounds. */
void api_guard_headers_done(api_guard *g, api_guard_conn *c); /* now reading the body */
void api_guard_body_done(api_guard *g, api_guard_conn *c);    /* now handling: no deadline */
void api_guard_request_done(api_guard *g, api_guard_conn *c); /* waiting for the next header */

typedef enum api_guard_verdict {
    API_GUARD_PASS = 0,
    API_GUARD_TOO_MANY_CONNECTIONS, /* 503 */
    API_GUARD_CLIENT_CONNECTIONS,   /* 503 */
    API_GUARD_RATE                  /* 429 */
} api_guard_verdict;

/* On a new request's headers: whether the server's and the client's
 * connection counts and the client's rate allow it; *retry_s says when to
 * come back. */
api_guard_verdict api_guard_admit(api_guard *g, api_guard_conn *c, int *retry_s);
/* The rate limit of an API key (key_id names it, e.g. a prefix of its hash),
 * for a request on connection c (which tells whether the client is on
 * loopback). */
api_guard_verdict api_guard_admit_key(api_guard *g, api_guard_conn *c, const char *key_id, int *retry_s);
/* The client's address as text ("-" when unknown), for messages. */
const char *api_guard_addr(const api_guard_conn *c);

#endif
