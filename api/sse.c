/* sse.c - see sse.h. */
#include "api/sse.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "api/render.h"
#include "jobs/jobs.h"
#include "util/clock.h"
#include "util/log.h"

#define EVENTS_PER_POLL 200

typedef struct sse_conn {
    api_stream *s;
    int64_t job_id, last_id;
    const api_scrub *scrub; /* NULL: an admin's stream */
    int sent_job;           /* the initial `event: job` went out */
    double last_write_ms;
    struct sse_conn *next;
} sse_conn;

struct api_sse {
    jobs_store *st;
    int max_streams, poll_ms, heartbeat_ms;
    pthread_t thread;
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t wake;
    sse_conn *added; /* handed over by api_sse_add, not yet polled */
    int count, stopping;
};

/* One event; data is a JSON text without newlines (cJSON's unformatted). */
static int send_event(sse_conn *c, const char *kind, int64_t id, const char *data) {
    size_t len = strlen(data) + strlen(kind) + 64;
    char *buf = malloc(len);
    if (!buf) return -1;
    int n = id > 0 ? snprintf(buf, len, "id: %lld\nevent: %s\ndata: %s\n\n", (long long)id, kind, data)
                   : snprintf(buf, len, "event: %s\ndata: %s\n\n", kind, data);
    int rc = api_stream_write(c->s, buf, (size_t)n);
    free(buf);
    if (rc == 0) c->last_write_ms = util_mono_ms();
    return rc;
}

/* Sends what is new for c; 1 when the stream is over (job final, client
 * gone, or an error), else 0. */
static int poll_conn(api_sse *sse, sse_conn *c) {
    char msg[256];
    if (api_stream_closed(c->s)) return 1;
    jobs_job job;
    int rc = jobs_store_job_get(sse->st, c->job_id, &job, msg, sizeof msg);
    if (rc != JOBS_OK) {
        char data[400];
        snprintf(data, sizeof data, "{\"detail\":\"%s\"}",
                 rc == JOBS_ENOTFOUND ? "the job is gone" : "the store cannot be read");
        send_event(c, "error", 0, data);
        return 1;
    }
    jobs_state state = job.state;
    int failed = 0;
    if (!c->sent_job) {
        cJSON *doc = api_job_json(&job);
        api_scrub_tree(c->scrub, doc);
        char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
        failed = !text || send_event(c, "job", 0, text) != 0;
        cJSON_free(text);
        cJSON_Delete(doc);
        c->sent_job = 1;
    }
    jobs_job_clear(&job);
    /* events read after the state: a final state's events are all in */
    for (int more = 1; more && !failed;) {
        jobs_event *ev = NULL;
        int n = 0;
        if (jobs_store_events_since(sse->st, c->job_id, c->last_id, EVENTS_PER_POLL, &ev, &n, msg, sizeof msg) !=
            JOBS_OK)
            return 1;
        for (int i = 0; i < n && !failed; i++) {
            char *clean = c->scrub ? api_scrub_json_text(c->scrub, ev[i].payload) : NULL;
            failed = (c->scrub && !clean) || send_event(c, ev[i].kind, ev[i].id, clean ? clean : ev[i].payload) != 0;
            free(clean);
            if (!failed) c->last_id = ev[i].id;
        }
        more = n == EVENTS_PER_POLL;
        jobs_events_free(ev, n);
    }
    if (failed) return 1; /* closed, or the client reads too slowly */
    if (jobs_state_is_final(state)) return 1;
    if (util_mono_ms() - c->last_write_ms >= sse->heartbeat_ms) {
        if (api_stream_write(c->s, ": keep-alive\n\n", 14) != 0) return 1;
        c->last_write_ms = util_mono_ms();
    }
    return 0;
}

static void finish_conn(api_sse *sse, sse_conn *c) {
    api_stream_end(c->s);
    api_stream_release(c->s);
    free(c);
    pthread_mutex_lock(&sse->lock);
    sse->count--;
    pthread_mutex_unlock(&sse->lock);
}

static void *sse_main(void *arg) {
    api_sse *sse = arg;
    sse_conn *live = NULL;
    for (;;) {
        pthread_mutex_lock(&sse->lock);
        if (!sse->stopping && !sse->added) {
            struct timespec ts = util_deadline(CLOCK_MONOTONIC, sse->poll_ms);
            pthread_cond_timedwait(&sse->wake, &sse->lock, &ts);
        }
        int stopping = sse->stopping;
        while (sse->added) {
            sse_conn *c = sse->added;
            sse->added = c->next;
            c->next = live;
            live = c;
        }
        pthread_mutex_unlock(&sse->lock);

        sse_conn **link = &live;
        while (*link) {
            sse_conn *c = *link;
            int over = poll_conn(sse, c);
            if (stopping && !over) {
                api_stream_write(c->s, "event: shutdown\ndata: {}\n\n", 26);
                over = 1;
            }
            if (over) {
                *link = c->next;
                finish_conn(sse, c);
            } else {
                link = &c->next;
            }
        }
        if (stopping) break;
    }
    return NULL;
}

int api_sse_start(jobs_store *st, int max_streams, int poll_ms, int heartbeat_ms, api_sse **out, char *msg,
                  size_t msgsz) {
    api_sse *sse = calloc(1, sizeof *sse);
    if (!sse) {
        snprintf(msg, msgsz, "out of memory");
        return -1;
    }
    sse->st = st;
    sse->max_streams = max_streams;
    sse->poll_ms = poll_ms;
    sse->heartbeat_ms = heartbeat_ms;
    pthread_mutex_init(&sse->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&sse->wake, &attr);
    pthread_condattr_destroy(&attr);
    int rc = pthread_create(&sse->thread, NULL, sse_main, sse);
    if (rc != 0) {
        snprintf(msg, msgsz, "cannot start the event stream thread: %s", strerror(rc));
        pthread_cond_destroy(&sse->wake);
        pthread_mutex_destroy(&sse->lock);
        free(sse);
        return -1;
    }
    *out = sse;
    return 0;
}

int api_sse_add(api_sse *sse, api_stream *s, int64_t job_id, int64_t after_event_id, const api_scrub *scrub) {
    sse_conn *c = calloc(1, sizeof *c);
    pthread_mutex_lock(&sse->lock);
    int ok = c && !sse->stopping && sse->count < sse->max_streams;
    if (ok) {
        c->s = s;
        c->job_id = job_id;
        c->scrub = scrub;
        c->last_id = after_event_id;
        c->last_write_ms = util_mono_ms();
        c->next = sse->added;
        sse->added = c;
        sse->count++;
        pthread_cond_signal(&sse->wake);
    }
    pthread_mutex_unlock(&sse->lock);
    if (ok) return 0;
    free(c);
    api_stream_end(s);
    api_stream_release(s);
    return -1;
}

int api_sse_count(api_sse *sse) {
    pthread_mutex_lock(&sse->lock);
    int n = sse->count;
    pthread_mutex_unlock(&sse->lock);
    return n;
}

void api_sse_stop(api_sse *sse) {
    if (!sse) return;
    pthread_mutex_lock(&sse->lock);
    sse->stopping = 1;
    pthread_cond_signal(&sse->wake);
    pthread_mutex_unlock(&sse->lock);
    pthread_join(sse->thread, NULL);
    pthread_cond_destroy(&sse->wake);
    pthread_mutex_destroy(&sse->lock);
    free(sse);
}
