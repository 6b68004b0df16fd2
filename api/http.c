/*
 * http.c - HTTP glue over libmicrohttpd (MHD).
 *
 * Threads
 * -------
 * MHD runs one internal event-loop thread (epoll). Every callback below runs
 * on it: the access handler (on_request), the completion callback
 * (on_completed) and MHD's logger. Nothing here blocks: the work a request
 * needs is either done on the spot (cheap handlers) or handed to another
 * thread (generation goes to the batcher, see api/batcher.c).
 *
 * A request's life
 * ----------------
 * MHD calls on_request several times per request:
 *
 *   1. headers received (*con_cls == NULL): we allocate the api_request,
 *      give it an id, route it, and refuse early what we can refuse before
 *      the body arrives (unknown route 404, wrong method 405, a
 *      Content-Length over max_body_bytes 413): the client is answered
 *      without uploading anything.
 *   2. body chunks (*upload_data_size > 0): appended to a buffer created
 *      with the max_body_bytes cap; a chunked body that passes it gets 413.
 *   3. body complete (*upload_data_size == 0): the route's handler runs and
 *      either sets a response, which is queued at once, or suspends the
 *      connection (MHD_suspend_connection) and hands the request away.
 *   4. after api_request_resume() on some other thread, MHD calls on_request
 *      once more on its own thread and the stored response is queued there:
 *      only the event-loop thread ever calls MHD_queue_response.
 *
 * on_completed runs when MHD is done with the request (sent, timed out, or
 * the client went away); it writes the request's log line and frees it.
 *
 * Ownership
 * ---------
 * The api_request belongs to the event-loop thread, except while suspended:
 * from api_request_suspend() until the worker's api_request_resume() it
 * belongs to the worker, which fills in the response. MHD neither times out
 * nor completes a suspended connection, so the request cannot be freed under
 * the worker; the resume (MHD takes a mutex in it) publishes the worker's
 * writes to the event-loop thread. For the same reason every suspended
 * request must be resumed before api_server_stop().
 *
 * Disconnects: MHD does not watch a suspended socket, so a worker that wants
 * to skip work for a client that left calls api_request_client_gone(), which
 * peeks at the socket.
 */
#include "api/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/msg.h"

#define API_MAX_PARAMS       4
#define API_MAX_HEADERS      4
#define API_MAX_KEPT         6 /* headers kept across responses (CORS) */
#define API_MAX_ALLOWED      8 /* methods listed in one Allow header */
#define API_HEADER_NAME_MAX  48
#define API_HEADER_VALUE_MAX 128
#define PROBLEM_DETAIL_MAX   512
#define LOG_PATH_MAX         200
#define MHD_CONNECTION_SLACK 64
#define MHD_POOL_MIN         (32u * 1024u)
#define MHD_POOL_EXTRA       (16u * 1024u)

struct api_server {
    struct MHD_Daemon *mhd;
    int listen_fd;
    int port;
    int quiesced;
    api_server_params params;
    uint64_t id_base;
    atomic_uint_fast64_t id_counter;
    api_guard *guard;     /* deadlines, connection caps, rate limits */
    pthread_mutex_t lock; /* guards active */
    pthread_cond_t idle;  /* signalled when active drops to 0 */
    int active;           /* requests between headers and completion */
};

typedef struct api_header {
    char name[API_HEADER_NAME_MAX];
    char value[API_HEADER_VALUE_MAX];
} api_header;

struct api_stream {
    pthread_mutex_t lock;
    util_buf pending; /* written, not yet handed to MHD */
    int ended;        /* the writer has no more */
    int closed;       /* MHD freed the response: nobody reads */
    int suspended;    /* the reader suspended the connection for want of data */
    int refs;         /* the connection's and the writer's */
    struct MHD_Connection *conn;
};

struct api_request {
    api_server *server;
    struct MHD_Connection *conn;
    api_guard_conn *gc; /* the connection's record in the guard, or NULL */
    int fd;
    const char *method; /* MHD's string, valid for the request's life */
    char *path;
    char id[17];
    double start_ms;
    const api_route *route;
    /* "{name}" segments: names point into the route's pattern */
    const char *param_names[API_MAX_PARAMS];
    size_t param_name_lens[API_MAX_PARAMS];
    char *param_values[API_MAX_PARAMS];
    int n_params;
    util_buf body;
    int suspended;
    /* the response, queued by the event-loop thread */
    int has_response;
    api_status status;
    const char *content_type;
    char *resp_body;
    size_t resp_len;
    api_header headers[API_MAX_HEADERS];
    int n_headers;
    api_header kept[API_MAX_KEPT];
    int n_kept;
    api_stream *stream; /* the connection's reference, until MHD takes it */
    char allow[API_HEADER_VALUE_MAX];
    /* for the log line */
    unsigned sent_status;
    size_t sent_bytes;
};

const char *api_status_title(api_status status) {
    switch (status) {
#define API_STATUS_CASE_(name, code, title) \
    case API_##name: return title;
        API_STATUS_TABLE(API_STATUS_CASE_)
#undef API_STATUS_CASE_
        case API_SUSPENDED: break;
    }
    return "Unknown";
}

/* splitmix64: request ids that do not reveal how many came before. */
static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* ---- routing ---------------------------------------------------------- */

typedef struct route_match {
    int n;
    const char *names[API_MAX_PARAMS];
    size_t name_lens[API_MAX_PARAMS];
    const char *values[API_MAX_PARAMS];
    size_t value_lens[API_MAX_PARAMS];
} route_match;

static int match_pattern(const char *pattern, const char *path, route_match *m) {
    m->n = 0;
    if (*pattern != '/' || *path != '/') return 0;
    for (;;) {
        pattern++, path++;
        size_t plen = strcspn(pattern, "/"), qlen = strcspn(path, "/");
        if (plen >= 2 && pattern[0] == '{' && pattern[plen - 1] == '}') {
            if (qlen == 0 || m->n == API_MAX_PARAMS) return 0;
            m->names[m->n] = pattern + 1;
            m->name_lens[m->n] = plen - 2;
            m->values[m->n] = path;
            m->value_lens[m->n] = qlen;
            m->n++;
        } else if (plen != qlen || memcmp(pattern, path, plen) != 0) {
            return 0;
        }
        pattern += plen, path += qlen;
        if (!*pattern || !*path) return !*pattern && !*path;
    }
}

static void join_methods(const char *const *methods, int n, char *out, size_t outsz) {
    out[0] = '\0';
    for (int k = 0; k < n; k++) snprintf(out + strlen(out), outsz - strlen(out), "%s%s", k ? ", " : "", methods[k]);
}

/* Routes r, or answers 404/405 (with Allow) and returns -1. An OPTIONS
 * request to a known path is left without a route and without a response
 * (r->allow lists the path's methods). */
static int route_request(api_request *r) {
    const api_server_params *p = &r->server->params;
    const char *allowed[API_MAX_ALLOWED];
    int n_allowed = 0;
    route_match m;
    for (size_t i = 0; i < p->n_routes; i++) {
        const api_route *route = &p->routes[i];
        if (!match_pattern(route->pattern, r->path, &m)) continue;
        if (strcmp(route->method, r->method) != 0) {
            int k = 0;
            while (k < n_allowed && strcmp(allowed[k], route->method) != 0) k++;
            if (k == n_allowed && n_allowed < API_MAX_ALLOWED) allowed[n_allowed++] = route->method;
            continue;
        }
        r->route = route;
        if (route->upload && p->max_upload_bytes) r->body.max = p->max_upload_bytes;
        for (int k = 0; k < m.n; k++) {
            r->param_names[k] = m.names[k];
            r->param_name_lens[k] = m.name_lens[k];
            r->param_values[k] = strndup(m.values[k], m.value_lens[k]);
            if (!r->param_values[k]) {
                api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
                return -1;
            }
            r->n_params = k + 1;
        }
        return 0;
    }
    if (n_allowed == 0) {
        api_problem(r, API_NOT_FOUND, "no resource at %s", r->path);
        return -1;
    }
    join_methods(allowed, n_allowed, r->allow, sizeof r->allow);
    if (strcmp(r->method, MHD_HTTP_METHOD_OPTIONS) == 0) return 0;
    const char *allow = r->allow;
    api_problem(r, API_METHOD_NOT_ALLOWED, "%s is not allowed on %s; allowed: %s", r->method, r->path, allow);
    api_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    return -1;
}

/* ---- responses -------------------------------------------------------- */

static void stream_unref(api_stream *s);

static void clear_response(api_request *r) {
    if (r->stream) {
        stream_unref(r->stream);
        r->stream = NULL;
    }
    free(r->resp_body);
    r->resp_body = NULL;
    r->resp_len = 0;
    r->n_headers = 0;
    r->has_response = 0;
}

api_status api_respond(api_request *r, api_status status, const char *content_type, void *body, size_t len) {
    clear_response(r);
    r->has_response = 1;
    r->status = status;
    r->content_type = content_type;
    r->resp_body = body;
    r->resp_len = body ? len : 0;
    return status;
}

api_status api_respond_json(api_request *r, api_status status, cJSON *doc) {
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (!text) return api_problem(r, API_INTERNAL_SERVER_ERROR, "out of memory writing JSON");
    return api_respond(r, status, "application/json", text, strlen(text));
}

api_status api_problem(api_request *r, api_status status, const char *fmt, ...) {
    char detail[PROBLEM_DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);

    cJSON *doc = cJSON_CreateObject();
    char *text = NULL;
    if (doc && cJSON_AddStringToObject(doc, "type", "about:blank") &&
        cJSON_AddStringToObject(doc, "title", api_status_title(status)) &&
        cJSON_AddNumberToObject(doc, "status", (double)status) && cJSON_AddStringToObject(doc, "detail", detail))
        text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    /* Without memory for the JSON the status line still tells the story. */
    api_respond(r, status, "application/problem+json", text, text ? strlen(text) : 0);
    return status;
}

static int add_header(api_header *list, int *n, int max, const char *name, const char *value) {
    if (*n == max || strlen(name) >= API_HEADER_NAME_MAX || strlen(value) >= API_HEADER_VALUE_MAX) return -1;
    api_header *h = &list[(*n)++];
    memcpy(h->name, name, strlen(name) + 1);
    memcpy(h->value, value, strlen(value) + 1);
    return 0;
}

int api_response_header(api_request *r, const char *name, const char *value) {
    return add_header(r->headers, &r->n_headers, API_MAX_HEADERS, name, value);
}

int api_request_keep_header(api_request *r, const char *name, const char *value) {
    return add_header(r->kept, &r->n_kept, API_MAX_KEPT, name, value);
}

/* ---- streams ---------------------------------------------------------- */

static void stream_unref(api_stream *s) {
    pthread_mutex_lock(&s->lock);
    int last = --s->refs == 0;
    pthread_mutex_unlock(&s->lock);
    if (!last) return;
    util_buf_free(&s->pending);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* MHD's content reader: hands over what is pending; with nothing pending
 * it suspends the connection until the next write or the end. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    api_stream *s = cls;
    ssize_t n;
    pthread_mutex_lock(&s->lock);
    if (s->pending.len) {
        size_t k = s->pending.len < max ? s->pending.len : max;
        memcpy(buf, s->pending.data, k);
        memmove(s->pending.data, s->pending.data + k, s->pending.len - k + 1);
        s->pending.len -= k;
        n = (ssize_t)k;
    } else if (s->ended) {
        n = MHD_CONTENT_READER_END_OF_STREAM;
    } else {
        s->suspended = 1;
        MHD_suspend_connection(s->conn);
        n = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* MHD is done with the response: the connection's reference goes. */
static void stream_done(void *cls) {
    api_stream *s = cls;
    pthread_mutex_lock(&s->lock);
    s->closed = 1;
    pthread_mutex_unlock(&s->lock);
    stream_unref(s);
}

/* Under s->lock: a reader waiting for data gets to run again. */
static void stream_wake(api_stream *s) {
    if (s->suspended && !s->closed) {
        s->suspended = 0;
        MHD_resume_connection(s->conn);
    }
}

api_status api_respond_stream(api_request *r, api_status status, const char *content_type, size_t max_pending,
                              api_stream **out) {
    api_stream *s = calloc(1, sizeof *s);
    if (!s) return api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    util_buf_init(&s->pending, max_pending);
    s->refs = 2;
    s->conn = r->conn;
    api_respond(r, status, content_type, NULL, 0);
    r->stream = s;
    *out = s;
    return status;
}

int api_stream_write(api_stream *s, const char *data, size_t len) {
    pthread_mutex_lock(&s->lock);
    int rc = s->closed || s->ended ? -1 : util_buf_add(&s->pending, data, len);
    if (rc == API_BUF_OK) stream_wake(s);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void api_stream_end(api_stream *s) {
    pthread_mutex_lock(&s->lock);
    s->ended = 1;
    stream_wake(s);
    pthread_mutex_unlock(&s->lock);
}

int api_stream_closed(api_stream *s) {
    pthread_mutex_lock(&s->lock);
    int closed = s->closed;
    pthread_mutex_unlock(&s->lock);
    return closed;
}

void api_stream_release(api_stream *s) {
    if (s) stream_unref(s);
}

static enum MHD_Result queue_response(api_request *r) {
    struct MHD_Response *resp;
    if (r->stream) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, r->stream, stream_done);
        if (resp) r->stream = NULL; /* MHD holds the connection's reference now */
    } else {
        resp = MHD_create_response_from_buffer(r->resp_len, r->resp_body, MHD_RESPMEM_MUST_FREE);
        if (resp) r->resp_body = NULL; /* MHD frees it with the response */
    }
    if (!resp) return MHD_NO;
    int ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type) &&
             MHD_add_response_header(resp, "X-Request-Id", r->id);
    for (int i = 0; ok && i < r->n_headers; i++)
        ok = MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
    for (int i = 0; ok && i < r->n_kept; i++) ok = MHD_add_response_header(resp, r->kept[i].name, r->kept[i].value);
    enum MHD_Result ret = ok ? MHD_queue_response(r->conn, (unsigned)r->status, resp) : MHD_NO;
    MHD_destroy_response(resp);
    if (ret == MHD_YES) {
        r->sent_status = (unsigned)r->status;
        r->sent_bytes = r->resp_len;
    }
    return ret;
}

/* ---- the request ------------------------------------------------------ */

const char *api_request_method(const api_request *r) {
    return r->method;
}
const char *api_request_path(const api_request *r) {
    return r->path;
}
const char *api_request_id(const api_request *r) {
    return r->id;
}
void *api_request_app(const api_request *r) {
    return r->server->params.app;
}
double api_request_age_ms(const api_request *r) {
    return util_mono_ms() - r->start_ms;
}

const char *api_request_header(api_request *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *api_request_query(api_request *r, const char *name) {
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const api_route *api_request_route(const api_request *r) {
    return r->route;
}
const char *api_request_allow(const api_request *r) {
    return r->allow;
}

const char *api_request_param(const api_request *r, const char *name) {
    size_t len = strlen(name);
    for (int i = 0; i < r->n_params; i++)
        if (r->param_name_lens[i] == len && memcmp(r->param_names[i], name, len) == 0) return r->param_values[i];
    return NULL;
}

const char *api_request_body(const api_request *r, size_t *len) {
    if (len) *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

/* The q of the Accept entry that best matches `type` (most specific range
 * first), 0 when none does. */
/* An RFC 9110 qvalue in s[0..end): "0", "1", "0.xyz" or "1.000" with up to
 * three decimals; anything else (1.5, -1, nan, 1e0) counts as 0. */
static double parse_qvalue(const char *s, const char *end) {
    size_t n = 0;
    while (s + n < end && s[n] != ';' && s[n] != ' ' && s[n] != '\t') n++;
    if (n == 0 || (s[0] != '0' && s[0] != '1') || (n > 1 && s[1] != '.') || n > 5) return 0;
    double q = s[0] - '0', scale = 0.1;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9' || (s[0] == '1' && s[i] != '0')) return 0;
        q += (s[i] - '0') * scale;
    }
    return q;
}

double api_accept_q(const char *accept, const char *type) {
    const char *slash = strchr(type, '/');
    size_t main_len = slash ? (size_t)(slash - type) : strlen(type);
    double best_q = 0;
    int best_rank = 0;
    for (const char *p = accept; *p;) {
        size_t len = strcspn(p, ",");
        const char *end = p + len;
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        size_t range_len = strcspn(p, ";, \t");
        if (p + range_len > end) range_len = (size_t)(end - p);
        int rank = 0;
        if (range_len == strlen(type) && strncasecmp(p, type, range_len) == 0)
            rank = 3;
        else if (range_len == main_len + 2 && strncasecmp(p, type, main_len) == 0 &&
                 strncmp(p + main_len, "/*", 2) == 0)
            rank = 2;
        else if (range_len == 3 && strncmp(p, "*/*", 3) == 0)
            rank = 1;
        if (rank > best_rank) {
            double q = 1;
            for (const char *s = p + range_len; s < end; s++) {
                if (*s != ';') continue;
                s++;
                while (s < end && *s == ' ') s++;
                if (s + 2 <= end && (s[0] == 'q' || s[0] == 'Q') && s[1] == '=') q = parse_qvalue(s + 2, end);
            }
            best_rank = rank;
            best_q = q;
        }
        p = *end ? end + 1 : end;
    }
    return best_q;
}

const char *api_negotiate(api_request *r, const char *const *offers, size_t n) {
    const char *accept = api_request_header(r, MHD_HTTP_HEADER_ACCEPT);
    if (!accept || !*accept) return n ? offers[0] : NULL;
    const char *best = NULL;
    double best_q = 0;
    for (size_t i = 0; i < n; i++) {
        double q = api_accept_q(accept, offers[i]);
        if (q > best_q) {
            best_q = q;
            best = offers[i];
        }
    }
    return best;
}

api_status api_request_suspend(api_request *r) {
    r->suspended = 1;
    MHD_suspend_connection(r->conn);
    return API_SUSPENDED;
}

void api_request_resume(api_request *r) {
    MHD_resume_connection(r->conn);
}

int api_request_client_gone(const api_request *r) {
    char c;
    ssize_t n = recv(r->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) return 0; /* pipelined bytes: still there */
    if (n == 0) return 1;
    return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static api_request *request_new(api_server *s, struct MHD_Connection *conn, const char *url, const char *method) {
    api_request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->path = strdup(url);
    if (!r->path) {
        free(r);
        return NULL;
    }
    r->server = s;
    r->conn = conn;
    r->method = method;
    r->start_ms = util_mono_ms();
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    r->fd = info ? info->connect_fd : -1;
    info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    r->gc = info ? info->socket_context : NULL;
    uint64_t id = mix64(s->id_base + atomic_fetch_add(&s->id_counter, 1));
    snprintf(r->id, sizeof r->id, "%016llx", (unsigned long long)id);
    util_buf_init(&r->body, s->params.max_body_bytes);
    pthread_mutex_lock(&s->lock);
    s->active++;
    pthread_mutex_unlock(&s->lock);
    return r;
}

static void request_free(api_request *r) {
    api_server *s = r->server;
    for (int i = 0; i < r->n_params; i++) free(r->param_values[i]);
    if (r->stream) stream_unref(r->stream);
    util_buf_free(&r->body);
    free(r->resp_body);
    free(r->path);
    free(r);
    pthread_mutex_lock(&s->lock);
    if (--s->active == 0) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
}

static void run_handler(api_request *r) {
    api_status status = r->route->handler(r);
    if (r->suspended) return;
    if (status == API_SUSPENDED) {
        api_problem(r, API_INTERNAL_SERVER_ERROR, "handler for %s %s gave no response", r->method, r->route->pattern);
    } else if (!r->has_response) {
        api_problem(r, status, "%s", api_status_title(status));
    }
}

typedef struct header_tally {
    size_t bytes;
    int count;
} header_tally;

static enum MHD_Result tally_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    (void)kind;
    header_tally *t = cls;
    t->count++;
    t->bytes += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
    return MHD_YES;
}

static void retry_after(api_request *r, int seconds) {
    char v[16];
    snprintf(v, sizeof v, "%d", seconds > 0 ? seconds : 1);
    api_response_header(r, "Retry-After", v);
}

/* The checks of a new request before routing: header limits (431), the
 * connection caps (503) and the client's rate (429). 1 when it set a
 * response. */
static int guard_request(api_request *r) {
    api_server *s = r->server;
    header_tally t = {strlen(r->method) + strlen(r->path) + 12, 0}; /* the request line */
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, tally_header, &t);
    if (s->params.max_headers > 0 && t.count > s->params.max_headers) {
        api_problem(r, API_HEADER_FIELDS_TOO_LARGE, "%d header fields are over max_headers (%d)", t.count,
                    s->params.max_headers);
        return 1;
    }
    if (s->params.max_header_bytes > 0 && t.bytes > s->params.max_header_bytes) {
        api_problem(r, API_HEADER_FIELDS_TOO_LARGE, "request header of %zu bytes is over max_header_bytes (%zu)",
                    t.bytes, s->params.max_header_bytes);
        return 1;
    }
    int retry = 1;
    switch (api_guard_admit(s->guard, r->gc, &retry)) {
        case API_GUARD_PASS: return 0;
        case API_GUARD_TOO_MANY_CONNECTIONS:
            api_problem(r, API_SERVICE_UNAVAILABLE, "too many open connections (max_connections %d)",
                        s->params.guard.max_connections);
            api_response_header(r, "Connection", "close");
            break;
        case API_GUARD_CLIENT_CONNECTIONS:
            api_problem(r, API_SERVICE_UNAVAILABLE, "too many open connections from %s (max_connections_per_client %d)",
                        api_guard_addr(r->gc), s->params.guard.max_connections_per_client);
            api_response_header(r, "Connection", "close");
            break;
        case API_GUARD_RATE:
            api_problem(r, API_TOO_MANY_REQUESTS, "too many requests from %s (rate_limit_per_min %d, burst %d)",
                        api_guard_addr(r->gc), s->params.guard.rate_per_min, s->params.guard.rate_burst);
            break;
    }
    retry_after(r, retry);
    return 1;
}

api_status api_request_rate_key(api_request *r, const char *key_id) {
    api_server *s = r->server;
    int retry = 1;
    if (api_guard_admit_key(s->guard, r->gc, key_id, &retry) == API_GUARD_PASS) return 0;
    api_problem(r, API_TOO_MANY_REQUESTS, "too many requests with this API key (rate_limit_per_min %d, burst %d)",
                s->params.guard.rate_per_min, s->params.guard.rate_burst);
    retry_after(r, retry);
    return API_TOO_MANY_REQUESTS;
}

static const char *body_limit_name(const api_request *r) {
    return r->route && r->route->upload && r->server->params.max_upload_bytes ? "max_upload_bytes" : "max_body_bytes";
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    api_server *s = cls;
    api_request *r = *con_cls;

    if (!r) {
        r = request_new(s, conn, url, method);
        if (!r) return MHD_NO;
        *con_cls = r;
        api_guard_headers_done(s->guard, r->gc);
        if (guard_request(r)) return queue_response(r);
        int routed = route_request(r) == 0;
        if (s->params.admit && s->params.admit(r) != 0) return queue_response(r);
        if (!routed) return queue_response(r);
        if (!r->route) { /* OPTIONS that no preflight answered */
            api_respond(r, API_NO_CONTENT, "text/plain", NULL, 0);
            api_response_header(r, MHD_HTTP_HEADER_ALLOW, r->allow);
            return queue_response(r);
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > r->body.max) {
            api_problem(r, API_CONTENT_TOO_LARGE, "request body of %s bytes is over %s (%zu)", cl, body_limit_name(r),
                        r->body.max);
            return queue_response(r);
        }
        return MHD_YES;
    }

    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->has_response) return MHD_YES; /* already refused: drop the rest */
        int rc = util_buf_add(&r->body, upload_data, n);
        if (rc == API_BUF_TOOBIG)
            api_problem(r, API_CONTENT_TOO_LARGE, "request body is over %s (%zu)", body_limit_name(r), r->body.max);
        else if (rc != API_BUF_OK)
            api_problem(r, API_SERVICE_UNAVAILABLE, "out of memory reading the request body");
        return MHD_YES;
    }

    if (r->suspended) { /* resumed: the worker left its response */
        r->suspended = 0;
        return queue_response(r);
    }
    api_guard_body_done(s->guard, r->gc);
    if (!r->has_response) run_handler(r);
    if (r->suspended) return MHD_YES;
    return queue_response(r);
}

static void log_path(const char *path, char *out, size_t outsz) {
    size_t i = 0;
    for (; path[i] && i + 1 < outsz; i++) {
        unsigned char c = (unsigned char)path[i];
        out[i] = c < 0x21 || c == 0x7f ? '?' : (char)c;
    }
    out[i] = '\0';
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)conn;
    api_server *s = cls;
    api_request *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    api_guard_request_done(s->guard, r->gc);
    if (r->server->params.observe) r->server->params.observe(r, r->sent_status, api_request_age_ms(r));
    if (util_log_threshold >= UTIL_LOG_INFO) {
        char path[LOG_PATH_MAX];
        log_path(r->path, path, sizeof path);
        const char *why = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK      ? ""
                          : toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? " (timeout)"
                          : toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT    ? " (client gone)"
                          : toe == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? " (shutdown)"
                                                                          : " (error)";
        char status[12] = "-"; /* nothing was sent */
        if (r->sent_status) snprintf(status, sizeof status, "%u", r->sent_status);
        util_log(UTIL_LOG_INFO, "%s %s %s %zu bytes %.1f ms id=%s%s", r->method, path, status, r->sent_bytes,
                 api_request_age_ms(r), r->id, why);
    }
    request_free(r);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    api_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        *socket_context = fd ? api_guard_open(s->guard, fd->connect_fd, addr ? addr->client_addr : NULL) : NULL;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        api_guard_close(s->guard, *socket_context);
        *socket_context = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n') line[--n] = '\0';
    util_log(UTIL_LOG_WARN, "http: %s", line);
}

/* ---- the server ------------------------------------------------------- */

/* Our own socket rather than MHD's: a bind failure can then say why. */
static int open_listener(const char *host, int port, int *bound_port, char *msg, size_t msgsz) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sslen;
    const char *addr = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        sslen = sizeof *v4;
    } else if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        sslen = sizeof *v6;
    } else {
        return util_msg(msg, msgsz, -1, "listen: '%s' is not an IP address", host);
    }

    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return util_msg(msg, msgsz, -1, "listen: socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, SOMAXCONN) != 0) {
        int e = errno;
        close(fd);
        return util_msg(msg, msgsz, -1, "cannot listen on %s:%d: %s", host, port, strerror(e));
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
        *bound_port = ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
    else
        *bound_port = port;
    return fd;
}

int api_server_start(const api_server_params *p, api_server **out, char *msg, size_t msgsz) {
    api_server *s = calloc(1, sizeof *s);
    if (!s) return util_msg(msg, msgsz, -1, "out of memory");
    s->params = *p;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    if (getrandom(&s->id_base, sizeof s->id_base, GRND_NONBLOCK) != sizeof s->id_base)
        s->id_base = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

    s->listen_fd = open_listener(p->host, p->port, &s->port, msg, msgsz);
    if (s->listen_fd < 0 || api_guard_start(&p->guard, &s->guard, msg, msgsz) != 0) {
        if (s->listen_fd >= 0) close(s->listen_fd);
        pthread_cond_destroy(&s->idle);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return -1;
    }
    /* MHD's own cap sits above ours, so that a client over max_connections
     * is still answered (503) while MHD_CONNECTION_SLACK more are open; its
     * memory pool holds the request header, so it is sized above
     * max_header_bytes and our 431 answers first. */
    unsigned mhd_conn_limit =
        p->guard.max_connections > 0 ? (unsigned)p->guard.max_connections + MHD_CONNECTION_SLACK : 65536u;
    size_t pool =
        p->max_header_bytes + MHD_POOL_EXTRA > MHD_POOL_MIN ? p->max_header_bytes + MHD_POOL_EXTRA : MHD_POOL_MIN;
    s->mhd = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, s,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_LISTEN_SOCKET, s->listen_fd, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_CONNECTION_TIMEOUT, p->timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, mhd_conn_limit, MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool, MHD_OPTION_END);
    if (!s->mhd) {
        api_guard_stop(s->guard);
        close(s->listen_fd);
        pthread_cond_destroy(&s->idle);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return util_msg(msg, msgsz, -1, "cannot start the HTTP server on %s:%d", p->host, p->port);
    }
    *out = s;
    return 0;
}

int api_server_port(const api_server *s) {
    return s->port;
}

void api_server_quiesce(api_server *s) {
    /* From here the listening socket is ours again; closed after stop. */
    if (!s->quiesced) s->quiesced = MHD_quiesce_daemon(s->mhd) != MHD_INVALID_SOCKET;
}

int api_server_drain(api_server *s, int timeout_ms) {
    struct timespec deadline = util_deadline(CLOCK_REALTIME, timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    while (s->active > 0 && rc == 0)
        if (pthread_cond_timedwait(&s->idle, &s->lock, &deadline) == ETIMEDOUT) rc = -1;
    if (s->active == 0) rc = 0;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void api_server_stop(api_server *s) {
    if (!s) return;
    MHD_stop_daemon(s->mhd);
    api_guard_stop(s->guard);
    if (s->quiesced) close(s->listen_fd);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
