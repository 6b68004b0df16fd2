/*
 * guard.c - deadlines, connection caps and rate limits for the HTTP server.
 *
 * Why a thread of its own: libmicrohttpd's connection timeout is an idle
 * timeout, reset by every byte, so a client that sends one header byte every
 * few seconds ("slowloris") or trickles a body would hold its connection for
 * ever. The guard keeps every open connection in a list with the phase it is
 * in and when that phase began; its thread wakes every GUARD_TICK_MS and
 * shuts down (shutdown(2), not close) the socket of a connection whose
 * header or body phase has lasted too long. The event loop then reads EOF
 * and closes the connection as if the client had gone, so nobody else waits
 * and the file descriptor is only ever closed by its owner. The record is
 * removed under the same mutex, from MHD's "connection closed" notification,
 * which comes before MHD closes the descriptor: the thread never shuts down
 * a descriptor that was already reused.
 *
 * Phases: HEADER from the connection's start (and again after each
 * response, while a keep-alive connection waits for its next request) until
 * the request's headers are complete; BODY until the body is complete;
 * HANDLING (no deadline) while the handler, the batcher or an event stream
 * has it. An idle keep-alive connection thus lasts header_timeout_s.
 *
 * Rate limits are token buckets of rate_per_min tokens a minute and
 * rate_burst tokens at most, one per client address and one per API key,
 * in a fixed table (GUARD_BUCKETS slots, open addressing over a short probe
 * window). A slot is reused when its bucket has refilled completely, which
 * is the same as never having been used; when the whole window is busy with
 * partly drained buckets, the request passes (the table never grows).
 */
#include "api/guard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/log.h"
#include "util/msg.h"

#define GUARD_TICK_MS  200
#define GUARD_BUCKETS  4096
#define GUARD_PROBE    16
#define GUARD_KEY_MAX  80
#define GUARD_ADDR_MAX 64

typedef enum guard_phase { PHASE_HEADER, PHASE_BODY, PHASE_HANDLING, PHASE_CUT } guard_phase;

struct api_guard_conn {
    int fd;
    int loopback;
    char addr[GUARD_ADDR_MAX];
    guard_phase phase;
    double since_ms;
    api_guard_conn *prev, *next;
};

typedef struct guard_bucket {
    char key[GUARD_KEY_MAX]; /* "" when free */
    double tokens, last_ms;
} guard_bucket;

struct api_guard {
    api_guard_params p;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    int stopping;
    api_guard_conn *conns;
    int n_conns;
    guard_bucket *buckets;
};

static void addr_text(const struct sockaddr *sa, char *out, size_t outsz, int *loopback) {
    *loopback = 0;
    snprintf(out, outsz, "-");
    if (!sa) return;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &v4->sin_addr, out, (socklen_t)outsz);
        *loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &v6->sin6_addr, out, (socklen_t)outsz);
        if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr))
            *loopback = v6->sin6_addr.s6_addr[12] == 127;
        else
            *loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
    }
}

static int deadline_s(const api_guard *g, guard_phase phase) {
    return phase == PHASE_HEADER ? g->p.header_timeout_s : phase == PHASE_BODY ? g->p.body_timeout_s : 0;
}

static void *guard_main(void *arg) {
    api_guard *g = arg;
    pthread_mutex_lock(&g->lock);
    while (!g->stopping) {
        struct timespec ts = util_deadline(CLOCK_MONOTONIC, GUARD_TICK_MS);
        pthread_cond_timedwait(&g->wake, &g->lock, &ts);
        double now = util_mono_ms();
        for (api_guard_conn *c = g->conns; c; c = c->next) {
            int limit = deadline_s(g, c->phase);
            if (limit <= 0 || now - c->since_ms < limit * 1000.0) continue;
            util_log(UTIL_LOG_INFO, "http: closing the connection of %s: %s not complete after %d s (%s)", c->addr,
                     c->phase == PHASE_HEADER ? "request header" : "request body", limit,
                     c->phase == PHASE_HEADER ? "header_timeout_s" : "body_timeout_s");
            shutdown(c->fd, SHUT_RDWR);
            c->phase = PHASE_CUT;
        }
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

int api_guard_start(const api_guard_params *p, api_guard **out, char *msg, size_t msgsz) {
    api_guard *g = calloc(1, sizeof *g);
    if (!g) return util_msg(msg, msgsz, -1, "out of memory");
    g->p = *p;
    if (g->p.rate_per_min > 0) {
        g->buckets = calloc(GUARD_BUCKETS, sizeof *g->buckets);
        if (!g->buckets) {
            free(g);
            return util_msg(msg, msgsz, -1, "out of memory");
        }
    }
    pthread_mutex_init(&g->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&g->wake, &attr);
    pthread_condattr_destroy(&attr);
    int rc = pthread_create(&g->thread, NULL, guard_main, g);
    if (rc != 0) {
        pthread_cond_destroy(&g->wake);
        pthread_mutex_destroy(&g->lock);
        free(g->buckets);
        free(g);
        return util_msg(msg, msgsz, -1, "cannot start the connection guard: %s", strerror(rc));
    }
    *out = g;
    return 0;
}

void api_guard_stop(api_guard *g) {
    if (!g) return;
    pthread_mutex_lock(&g->lock);
    g->stopping = 1;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
    pthread_join(g->thread, NULL);
    while (g->conns) {
        api_guard_conn *c = g->conns;
        g->conns = c->next;
        free(c);
    }
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->lock);
    free(g->buckets);
    free(g);
}

static void set_phase(api_guard *g, api_guard_conn *c, guard_phase phase) {
    if (!c) return;
    pthread_mutex_lock(&g->lock);
    if (c->phase != PHASE_CUT) {
        c->phase = phase;
        c->since_ms = util_mono_ms();
    }
    pthread_mutex_unlock(&g->lock);
}

api_guard_conn *api_guard_open(api_guard *g, int fd, const struct sockaddr *addr) {
    api_guard_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fd = fd;
    addr_text(addr, c->addr, sizeof c->addr, &c->loopback);
    c->phase = PHASE_HEADER;
    c->since_ms = util_mono_ms();
    pthread_mutex_lock(&g->lock);
    c->next = g->conns;
    if (g->conns) g->conns->prev = c;
    g->conns = c;
    g->n_conns++;
    pthread_mutex_unlock(&g->lock);
    return c;
}

void api_guard_close(api_guard *g, api_guard_conn *c) {
    if (!c) return;
    pthread_mutex_lock(&g->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    g->n_conns--;
    pthread_mutex_unlock(&g->lock);
    free(c);
}

void api_guard_headers_done(api_guard *g, api_guard_conn *c) {
    set_phase(g, c, PHASE_BODY);
}

void api_guard_body_done(api_guard *g, api_guard_conn *c) {
    set_phase(g, c, PHASE_HANDLING);
}

void api_guard_request_done(api_guard *g, api_guard_conn *c) {
    set_phase(g, c, PHASE_HEADER);
}

static uint64_t hash_key(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Takes a token from key's bucket (under the lock): 0, or -1 with the
 * seconds until the next token. */
static int take_token(api_guard *g, const char *key, int *retry_s) {
    double now = util_mono_ms(), per_ms = g->p.rate_per_min / 60000.0, burst = g->p.rate_burst;
    uint64_t h = hash_key(key);
    guard_bucket *slot = NULL;
    for (int i = 0; i < GUARD_PROBE && !slot; i++) {
        guard_bucket *b = &g->buckets[(h + (uint64_t)i) % GUARD_BUCKETS];
        if (strcmp(b->key, key) == 0) slot = b;
    }
    if (!slot) {
        for (int i = 0; i < GUARD_PROBE && !slot; i++) {
            guard_bucket *b = &g->buckets[(h + (uint64_t)i) % GUARD_BUCKETS];
            if (!*b->key || b->tokens + (now - b->last_ms) * per_ms >= burst) {
                slot = b;
                snprintf(b->key, sizeof b->key, "%s", key);
                b->tokens = burst;
                b->last_ms = now;
            }
        }
    }
    if (!slot) return 0; /* the window is busy: let it pass rather than grow */
    slot->tokens += (now - slot->last_ms) * per_ms;
    if (slot->tokens > burst) slot->tokens = burst;
    slot->last_ms = now;
    if (slot->tokens >= 1.0) {
        slot->tokens -= 1.0;
        return 0;
    }
    double wait_ms = (1.0 - slot->tokens) / per_ms;
    *retry_s = (int)(wait_ms / 1000.0) + 1;
    return -1;
}

api_guard_verdict api_guard_admit(api_guard *g, api_guard_conn *c, int *retry_s) {
    *retry_s = 1;
    if (!c) return API_GUARD_PASS;
    api_guard_verdict v = API_GUARD_PASS;
    pthread_mutex_lock(&g->lock);
    if (g->p.max_connections > 0 && g->n_conns > g->p.max_connections) {
        v = API_GUARD_TOO_MANY_CONNECTIONS;
    } else if (g->p.max_connections_per_client > 0) {
        int same = 0;
        for (api_guard_conn *o = g->conns; o; o = o->next) same += strcmp(o->addr, c->addr) == 0;
        if (same > g->p.max_connections_per_client) v = API_GUARD_CLIENT_CONNECTIONS;
    }
    if (v == API_GUARD_PASS && g->buckets && (!c->loopback || g->p.rate_loopback)) {
        char key[GUARD_KEY_MAX];
        snprintf(key, sizeof key, "addr:%s", c->addr);
        if (take_token(g, key, retry_s) != 0) v = API_GUARD_RATE;
    }
    pthread_mutex_unlock(&g->lock);
    return v;
}

api_guard_verdict api_guard_admit_key(api_guard *g, api_guard_conn *c, const char *key_id, int *retry_s) {
    *retry_s = 1;
    if (!g->buckets || (c && c->loopback && !g->p.rate_loopback)) return API_GUARD_PASS;
    char key[GUARD_KEY_MAX];
    snprintf(key, sizeof key, "key:%.32s", key_id);
    pthread_mutex_lock(&g->lock);
    int rc = take_token(g, key, retry_s);
    pthread_mutex_unlock(&g->lock);
    return rc == 0 ? API_GUARD_PASS : API_GUARD_RATE;
}

const char *api_guard_addr(const api_guard_conn *c) {
    return c ? c->addr : "-";
}
