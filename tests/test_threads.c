/*
 * test_threads.c - our own threads, many at once, on tests/engine_stub.c
 * (engine.h without torch: instant, deterministic, counting what it
 * allocates): the generation queue (api/batcher.c) fed by submitters on
 * several threads, then stopped with requests waiting; the adapter cache
 * (api/adapters.c) under concurrent acquire, release, forget and sweep;
 * workers (jobs/worker.c) claiming many jobs at once; SSE fan-out
 * (api/sse.c) over a real libmicrohttpd server to many clients while a job
 * moves on; the import queue (api/tasks.c) fed from several threads. Each checks what it can count (every request answered once,
 * every job run once, every adapter freed, every stream complete); `make
 * tsan` runs it under ThreadSanitizer, which checks the rest.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/adapters.h"
#include "api/batcher.h"
#include "api/http.h"
#include "api/sse.h"
#include "api/tasks.h"
#include "jobs/jobs.h"
#include "jobs/store.h"
#include "tests/engine_stub.h"
#include "tests/jobs_test.h"
#include "tests/test.h"
#include "util/log.h"

/* ---- the generation queue ------------------------------------------------- */

enum { SUBMITTERS = 6, PER_SUBMITTER = 40 };

typedef struct gen_rec {
    api_gen_request req;
    atomic_int done_calls;
    int gone; /* client_gone answers this */
    pthread_mutex_t *lock;
    pthread_cond_t *cond;
    int *pending;
} gen_rec;

static int rec_gone(api_gen_request *req) {
    return ((gen_rec *)req->user)->gone;
}

static void rec_done(api_gen_request *req) {
    gen_rec *g = req->user;
    atomic_fetch_add(&g->done_calls, 1);
    pthread_mutex_lock(g->lock);
    (*g->pending)--;
    pthread_cond_broadcast(g->cond);
    pthread_mutex_unlock(g->lock);
}

typedef struct submitter {
    api_batcher *b;
    gen_rec *recs;
    int refused;
} submitter;

static void *submit_all(void *arg) {
    submitter *s = arg;
    for (int i = 0; i < PER_SUBMITTER; i++) {
        gen_rec *g = &s->recs[i];
        pthread_mutex_lock(g->lock);
        (*g->pending)++;
        pthread_mutex_unlock(g->lock);
        if (api_batcher_submit(s->b, &g->req) != SRV_BATCH_OK) {
            s->refused++;
            rec_done(&g->req); /* never submitted: nobody else will answer it */
        }
    }
    return NULL;
}

TEST(batcher_answers_every_request_once) {
    char msg[256];
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
    int pending = 0;
    gen_rec *recs = calloc(SUBMITTERS * PER_SUBMITTER, sizeof *recs);
    CHECK(recs);
    for (int i = 0; i < SUBMITTERS * PER_SUBMITTER; i++) {
        gen_rec *g = &recs[i];
        g->req.n = 1 + i % 2;
        g->req.steps = 1 + i % 3;
        g->req.seed_given = i % 3 == 0;
        g->req.seed = (uint64_t)i * 7;
        g->req.client_gone = rec_gone;
        g->req.done = rec_done;
        g->req.user = g;
        g->gone = i % 17 == 0;
        g->lock = &lock;
        g->cond = &cond;
        g->pending = &pending;
        atomic_init(&g->done_calls, 0);
    }
    api_batcher_params p = {stub_model(), 1, 4, 2, SUBMITTERS * PER_SUBMITTER, 60000};
    api_batcher *b = NULL;
    CHECK_MSG(api_batcher_start(&p, &b, msg, sizeof msg) == 0, "%s", msg);
    pthread_t th[SUBMITTERS];
    submitter subs[SUBMITTERS];
    for (int i = 0; i < SUBMITTERS; i++) {
        subs[i] = (submitter){b, recs + i * PER_SUBMITTER, 0};
        pthread_create(&th[i], NULL, submit_all, &subs[i]);
    }
    for (int i = 0; i < SUBMITTERS; i++) pthread_join(th[i], NULL);
    pthread_mutex_lock(&lock);
    while (pending > 0) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    api_batcher_stop(b, 1000);
    api_batcher_free(b);
    int once = 1, ok = 0, gone = 0, refused = 0, other = 0;
    for (int i = 0; i < SUBMITTERS; i++) refused += subs[i].refused;
    for (int i = 0; i < SUBMITTERS * PER_SUBMITTER; i++) {
        gen_rec *g = &recs[i];
        once = once && atomic_load(&g->done_calls) == 1;
        if (g->req.status == API_GEN_OK && g->req.pngs)
            ok++;
        else if (g->req.status == API_GEN_EGONE)
            gone++;
        else
            other++;
        api_gen_request_release(&g->req);
    }
    free(recs);
    CHECK(once);
    CHECK_EQ_INT(refused, 0);
    CHECK_EQ_INT(other, 0);
    CHECK_EQ_INT(gone, (SUBMITTERS * PER_SUBMITTER + 16) / 17);
    CHECK_EQ_INT(ok + gone, SUBMITTERS * PER_SUBMITTER);
}

/* Stopping with requests waiting answers each of them once (ESHUTDOWN
 * for those that did not run), while submitters still submit. */
TEST(batcher_stop_answers_waiting_requests) {
    char msg[256];
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
    int pending = 0;
    gen_rec *recs = calloc(SUBMITTERS * PER_SUBMITTER, sizeof *recs);
    CHECK(recs);
    for (int i = 0; i < SUBMITTERS * PER_SUBMITTER; i++) {
        gen_rec *g = &recs[i];
        g->req.n = 1;
        g->req.steps = 8;
        g->req.done = rec_done;
        g->req.user = g;
        g->lock = &lock;
        g->cond = &cond;
        g->pending = &pending;
        atomic_init(&g->done_calls, 0);
    }
    stub_set_step_delay_us(200);
    api_batcher_params p = {stub_model(), 1, 2, 0, SUBMITTERS * PER_SUBMITTER, 60000};
    api_batcher *b = NULL;
    CHECK_MSG(api_batcher_start(&p, &b, msg, sizeof msg) == 0, "%s", msg);
    pthread_t th[SUBMITTERS];
    submitter subs[SUBMITTERS];
    for (int i = 0; i < SUBMITTERS; i++) {
        subs[i] = (submitter){b, recs + i * PER_SUBMITTER, 0};
        pthread_create(&th[i], NULL, submit_all, &subs[i]);
    }
    api_batcher_stop(b, 0);
    for (int i = 0; i < SUBMITTERS; i++) pthread_join(th[i], NULL);
    pthread_mutex_lock(&lock);
    while (pending > 0) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    api_batcher_free(b);
    stub_set_step_delay_us(0);
    int once = 1, bad = 0;
    for (int i = 0; i < SUBMITTERS * PER_SUBMITTER; i++) {
        gen_rec *g = &recs[i];
        once = once && atomic_load(&g->done_calls) == 1;
        int submitted_and_answered = g->req.status == API_GEN_OK || g->req.status == API_GEN_ESHUTDOWN;
        /* a refused submission keeps status 0 and no images */
        if (!submitted_and_answered) bad++;
        api_gen_request_release(&g->req);
    }
    free(recs);
    CHECK(once);
    CHECK_EQ_INT(bad, 0);
}

/* ---- the adapter cache ------------------------------------------------------- */

typedef struct cache_user {
    api_adapters *c;
    int index, errors;
} cache_user;

static void *use_cache(void *arg) {
    cache_user *u = arg;
    char msg[256], path[32];
    for (int i = 0; i < 300; i++) {
        int64_t id = 1 + (u->index * 7 + i) % 5;
        snprintf(path, sizeof path, "stub-%lld", (long long)id);
        eng_adapter *a = NULL;
        if (api_adapters_acquire(u->c, id, path, &a, msg, sizeof msg) != 0 || !a) {
            u->errors++;
            continue;
        }
        if (stub_adapter_id(a) != id) u->errors++;
        if (i % 50 == 0) api_adapters_forget(u->c, id);
        if (i % 31 == 0) api_adapters_sweep(u->c);
        api_adapters_release(u->c, a);
        int count;
        api_adapters_memory(u->c, &count);
        api_adapters_loaded(u->c, id);
    }
    return NULL;
}

TEST(adapter_cache_shared_by_many_threads) {
    char msg[256];
    api_adapters *c = NULL;
    CHECK_MSG(api_adapters_start(stub_model(), 3, &c, msg, sizeof msg) == 0, "%s", msg);
    enum { USERS = 6 };
    pthread_t th[USERS];
    cache_user users[USERS];
    for (int i = 0; i < USERS; i++) {
        users[i] = (cache_user){c, i, 0};
        pthread_create(&th[i], NULL, use_cache, &users[i]);
    }
    int errors = 0;
    for (int i = 0; i < USERS; i++) {
        pthread_join(th[i], NULL);
        errors += users[i].errors;
    }
    api_adapters_stop(c);
    CHECK_EQ_INT(errors, 0);
    CHECK_EQ_INT(stub_adapters_alive(), 0);
}

/* ---- workers claiming jobs ---------------------------------------------------- */

static const char stub_job[] =
    "{\"kind\":\"distill\",\"dataset\":\"tiny\",\"task\":{\"name\":\"sr\",\"factor\":2},"
    "\"adapter_kind\":\"lite\",\"steps\":6,\"batch_size\":2,\"warmup\":1,\"n_grid\":8,\"seed\":5,"
    "\"checkpoint_every\":2}";

TEST(workers_claim_each_job_once) {
    char dir[64], set[128], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    snprintf(set, sizeof set, "%s/tiny.cds", dir);
    CHECK(write_dataset(set, 8, 16, 3) == 0);
    jobs_system *sys = NULL;
    CHECK_MSG(jobs_system_open(dir, &sys, msg, sizeof msg) == 0, "%s", msg);
    jobs_store *st = jobs_system_store(sys);
    CHECK_MSG(jobs_dataset_register(st, "tiny", set, "file", "train", 0, NULL, msg, sizeof msg) == JOBS_OK, "%s", msg);
    enum { JOBS = 24 };
    int64_t ids[JOBS];
    for (int i = 0; i < JOBS; i++) CHECK_MSG(jobs_submit(st, stub_job, &ids[i], msg, sizeof msg) == JOBS_OK, "%s", msg);
    jobs_system_params p = {4, 1, stub_ctx(), stub_model()};
    CHECK_MSG(jobs_system_start_workers(sys, &p, msg, sizeof msg) == 0, "%s", msg);
    /* a cancel racing the workers, on every fourth job */
    for (int i = 0; i < JOBS; i += 4) {
        jobs_cancel(st, ids[i], NULL, msg, sizeof msg);
    }
    int succeeded = 0, cancelled = 0, other = 0;
    for (int i = 0; i < JOBS; i++) {
        jobs_job j = {0};
        for (int k = 0; k < 60000; k++) {
            jobs_job_clear(&j);
            if (jobs_store_job_get(st, ids[i], &j, msg, sizeof msg) != JOBS_OK || jobs_state_is_final(j.state)) break;
            sleep_ms(5);
        }
        if (j.state == JOBS_SUCCEEDED)
            succeeded++;
        else if (j.state == JOBS_CANCELLED)
            cancelled++;
        else
            other++;
        jobs_job_clear(&j);
    }
    jobs_adapter_info *as = NULL;
    int n_adapters = 0;
    jobs_store_adapter_list(st, &as, &n_adapters, msg, sizeof msg);
    for (int i = 0; i < n_adapters; i++) jobs_adapter_info_clear(&as[i]);
    free(as);
    jobs_system_stop(sys);
    rm_tree(dir);
    CHECK_EQ_INT(other, 0);
    CHECK_EQ_INT(succeeded + cancelled, JOBS);
    CHECK_EQ_INT(n_adapters, succeeded);
    CHECK_EQ_INT(stub_trainers_alive(), 0);
}

/* ---- SSE fan-out ------------------------------------------------------------ */

static api_sse *the_sse;
static jobs_store *the_store;

static api_status events_handler(api_request *r) {
    api_stream *s = NULL;
    api_respond_stream(r, API_OK, "text/event-stream", API_SSE_PENDING_MAX, &s);
    if (!s) return API_SERVICE_UNAVAILABLE;
    if (api_sse_add(the_sse, s, 1, 0, NULL) != 0) return API_TOO_MANY_REQUESTS;
    return API_OK;
}

typedef struct sse_client {
    int port;
    int progress_events, ended_succeeded;
} sse_client;

/* GET /events over a socket, read to the end: the stream ends when the job does. */
static void *read_events(void *arg) {
    sse_client *c = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return NULL;
    }
    const char req[] = "GET /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    ssize_t n;
    while (buf && (n = read(fd, buf + len, cap - len)) > 0) {
        len += (size_t)n;
        if (len == cap) {
            char *grown = realloc(buf, cap * 2 + 1);
            if (!grown) break;
            buf = grown;
            cap *= 2;
        }
    }
    close(fd);
    if (!buf) return NULL;
    buf[len] = '\0';
    for (char *p = buf; (p = strstr(p, "event: progress")); p++) c->progress_events++;
    c->ended_succeeded = strstr(buf, "\"status\":\"succeeded\"") != NULL;
    free(buf);
    return NULL;
}

TEST(sse_fans_out_to_many_clients) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    CHECK(jobs_store_open(dir, 0, &the_store, msg, sizeof msg) == JOBS_OK);
    int64_t id = add_job(the_store, "{}");
    jobs_job j;
    CHECK(jobs_store_claim(the_store, &j, msg, sizeof msg) == JOBS_OK);
    jobs_job_clear(&j);
    enum { CLIENTS = 8, STEPS = 30 };
    CHECK_MSG(api_sse_start(the_store, CLIENTS, 5, 1000, &the_sse, msg, sizeof msg) == 0, "%s", msg);
    static const api_route routes[] = {{"GET", "/events", events_handler, 0, 0}};
    api_server_params sp = {.host = "127.0.0.1",
                            .routes = routes,
                            .n_routes = 1,
                            .max_body_bytes = 1024,
                            .max_upload_bytes = 1024,
                            .timeout_s = 30,
                            .max_header_bytes = 8192,
                            .max_headers = 64};
    api_server *srv = NULL;
    CHECK_MSG(api_server_start(&sp, &srv, msg, sizeof msg) == 0, "%s", msg);
    pthread_t th[CLIENTS];
    sse_client clients[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        clients[i] = (sse_client){api_server_port(srv), 0, 0};
        pthread_create(&th[i], NULL, read_events, &clients[i]);
    }
    for (int s = 1; s <= STEPS; s++) {
        jobs_progress pr = {s, STEPS, 1.0, 1.0, 1e-3, 10, 1};
        jobs_store_progress(the_store, id, &pr, msg, sizeof msg);
        if (s % 10 == 0) sleep_ms(2);
    }
    jobs_store_transition(the_store, id, JOBS_RUNNING, JOBS_SUCCEEDED, NULL, "{}", msg, sizeof msg);
    for (int i = 0; i < CLIENTS; i++) pthread_join(th[i], NULL);
    api_sse_stop(the_sse);
    api_server_stop(srv);
    jobs_store_close(the_store);
    rm_tree(dir);
    for (int i = 0; i < CLIENTS; i++) {
        CHECK_EQ_INT(clients[i].progress_events, STEPS);
        CHECK(clients[i].ended_succeeded);
    }
}

/* ---- the import queue ---------------------------------------------------------- */

enum { TASK_SUBMITTERS = 4, TASKS_EACH = 200 };

typedef struct task_rec {
    int ran; /* written by the task's thread, read after the stop */
    atomic_int *total;
} task_rec;

static void run_task(void *arg) {
    task_rec *r = arg;
    r->ran++;
    atomic_fetch_add(r->total, 1);
}

typedef struct task_submitter {
    api_tasks *t;
    task_rec *recs;
    int accepted[TASKS_EACH];
} task_submitter;

static void *submit_tasks(void *arg) {
    task_submitter *s = arg;
    for (int i = 0; i < TASKS_EACH; i++) s->accepted[i] = api_tasks_submit(s->t, run_task, &s->recs[i]) == 0;
    return NULL;
}

/* Stopping runs what is queued: every accepted task runs once. */
TEST(tasks_run_every_accepted_task_once) {
    char msg[256];
    api_tasks *t = NULL;
    CHECK_MSG(api_tasks_start("test", 3, TASK_SUBMITTERS * TASKS_EACH, 1, &t, msg, sizeof msg) == 0, "%s", msg);
    atomic_int total;
    atomic_init(&total, 0);
    static task_rec recs[TASK_SUBMITTERS * TASKS_EACH];
    static task_submitter subs[TASK_SUBMITTERS];
    pthread_t th[TASK_SUBMITTERS];
    for (int i = 0; i < TASK_SUBMITTERS * TASKS_EACH; i++) recs[i] = (task_rec){0, &total};
    for (int i = 0; i < TASK_SUBMITTERS; i++) {
        subs[i].t = t;
        subs[i].recs = recs + i * TASKS_EACH;
        pthread_create(&th[i], NULL, submit_tasks, &subs[i]);
    }
    for (int i = 0; i < TASK_SUBMITTERS; i++) pthread_join(th[i], NULL);
    api_tasks_stop(t);
    int accepted = 0, wrong = 0;
    for (int i = 0; i < TASK_SUBMITTERS; i++)
        for (int k = 0; k < TASKS_EACH; k++) {
            accepted += subs[i].accepted[k];
            if (subs[i].recs[k].ran != subs[i].accepted[k]) wrong++;
        }
    CHECK_EQ_INT(accepted, TASK_SUBMITTERS * TASKS_EACH);
    CHECK_EQ_INT(wrong, 0);
    CHECK_EQ_INT(atomic_load(&total), accepted);
}

int main(void) {
    util_log_set_level(UTIL_LOG_ERROR);
    RUN(batcher_answers_every_request_once);
    RUN(batcher_stop_answers_waiting_requests);
    RUN(adapter_cache_shared_by_many_threads);
    RUN(workers_claim_each_job_once);
    RUN(sse_fans_out_to_many_clients);
    RUN(tasks_run_every_accepted_task_once);
    return TEST_SUMMARY();
}
