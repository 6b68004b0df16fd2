/*
 * test_faults.c - allocation faults, the SQLite way (its malloc.test): a
 * countdown makes the Nth allocation of an operation fail, and the
 * operation is run for N = 1, 2, ... until it completes with the countdown
 * unspent. Each N runs twice: with only the Nth allocation failing
 * (transient) and with it and every one after failing (persistent, as when
 * memory stays short). After a failed run the operation must have returned
 * an error with a message, leaked nothing (run under make SANITIZE=1:
 * LeakSanitizer checks at exit), left the state as it was (a job is fully
 * there or absent, no temporary file, PRAGMA integrity_check ok), and the
 * same operation run again with no fault must succeed.
 *
 * Where the allocations come from, and how they reach the countdown:
 *   - our objects' malloc, calloc, realloc, strdup and strndup: the
 *     Makefile links this program with -Wl,--wrap=... so those references
 *     call the __wrap_* below (only references in our objects are rewritten;
 *     shared libraries' own calls are not);
 *   - cJSON's: cJSON_InitHooks with the counting malloc;
 *   - SQLite's: SQLITE_CONFIG_MALLOC with methods that count and forward to
 *     SQLite's own, set before sqlite3_initialize.
 * libpng's and libc's internal allocations are not counted.
 *
 * FAULTS_VERBOSE=1 prints how many runs each case took.
 */
#include "api/upload.h"
#include "jobs/dataset.h"
#include "jobs/jobs.h"
#include "jobs/jobspec.h"
#include "jobs/store.h"
#include "tests/jobs_test.h"
#include "tests/test.h"
#include "util/base64.h"
#include "util/json.h"
#include "util/log.h"
#include "util/msg.h"
#include "util/png.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the countdown ---------------------------------------------------------------- */

static long fault_at;    /* the allocation (counted from arming) that fails; 0: off */
static long fault_count; /* allocations since arming */
static int fault_persistent;
static int fault_fired;

static void fault_arm(long n, int persistent) {
    fault_count = 0;
    fault_fired = 0;
    fault_persistent = persistent;
    fault_at = n;
}

/* Disarms; whether a fault was injected. */
static int fault_disarm(void) {
    fault_at = 0;
    return fault_fired;
}

static int fault_fails(void) {
    fault_count++;
    if (!fault_at) return 0;
    if (fault_count == fault_at || (fault_persistent && fault_count > fault_at)) {
        fault_fired = 1;
        return 1;
    }
    return 0;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n) {
    return fault_fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size) {
    return fault_fails() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n) {
    return fault_fails() ? NULL : __real_realloc(p, n);
}

char *__wrap_strndup(const char *s, size_t max) {
    if (fault_fails()) return NULL;
    size_t n = strnlen(s, max);
    char *d = __real_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *__wrap_strdup(const char *s) {
    return __wrap_strndup(s, SIZE_MAX);
}

static sqlite3_mem_methods sqlite_mem;

static void *sqlite_malloc(int n) {
    return fault_fails() ? NULL : sqlite_mem.xMalloc(n);
}

static void *sqlite_realloc(void *p, int n) {
    return fault_fails() ? NULL : sqlite_mem.xRealloc(p, n);
}

static void faults_init(void) {
    cJSON_Hooks hooks = {__wrap_malloc, free};
    cJSON_InitHooks(&hooks);
    sqlite3_mem_methods counted;
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sqlite_mem) != SQLITE_OK) abort();
    counted = sqlite_mem;
    counted.xMalloc = sqlite_malloc;
    counted.xRealloc = sqlite_realloc;
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &counted) != SQLITE_OK || sqlite3_initialize() != SQLITE_OK) abort();
}

/* ---- the loop --------------------------------------------------------------------- */

/*
 * One operation under test. setup() builds its fixture with no fault armed;
 * op() is the operation (0 or a non-zero code with a message in msg);
 * failed() checks the fixture after a failed op() (the state as before),
 * done() after one that succeeded; teardown() releases the fixture. The
 * checks return NULL or what is wrong.
 */
typedef struct fault_case {
    const char *name;
    void (*setup)(void *ctx);
    int (*op)(void *ctx, char *msg, size_t msgsz);
    const char *(*failed)(void *ctx);
    const char *(*done)(void *ctx);
    void (*teardown)(void *ctx);
} fault_case;

#define RUNS_MAX 200000
/* What an op returns when its result is wrong: never a tolerable failure. */
#define FAULT_WRONG 99

/*
 * Runs in each mode, at most: an operation of more allocations (opening a
 * store makes some 5000, most of them SQLite preparing statements) is
 * faulted at every stride-th one, the stride odd so that it falls on every
 * residue of a repeating pattern of allocations. FAULTS_FULL=1 faults
 * every allocation.
 */
#define RUNS_PER_MODE 1500

/* NULL when every run of c behaved; else what went wrong, in why. */
static const char *run_faults(const fault_case *c, void *ctx, char *why, size_t whysz) {
    long runs = 0;
    char msg0[512] = "";
    if (c->setup) c->setup(ctx);
    fault_count = 0;
    int rc0 = c->op(ctx, msg0, sizeof msg0);
    long total = fault_count;
    if (c->teardown) c->teardown(ctx);
    if (rc0 != 0) return snprintf(why, whysz, "%s: fails with no fault: %s", c->name, msg0), why;
    long stride = getenv("FAULTS_FULL") ? 1 : total / RUNS_PER_MODE + 1;
    if (stride > 1 && stride % 2 == 0) stride++;
    for (int persistent = 0; persistent < 2; persistent++) {
        for (long n = 1;; n += stride) {
            if (n > RUNS_MAX) return snprintf(why, whysz, "%s: over %d runs", c->name, RUNS_MAX), why;
            char msg[512] = "";
            if (c->setup) c->setup(ctx);
            fault_arm(n, persistent);
            int rc = c->op(ctx, msg, sizeof msg);
            int fired = fault_disarm();
            runs++;
            const char *bad = NULL;
            if (rc == FAULT_WRONG) {
                bad = msg;
            } else if (rc == 0) {
                bad = c->done ? c->done(ctx) : NULL; /* a fault may be survived, never half-survived */
            } else if (!fired) {
                bad = "failed with no fault injected";
            } else if (!msg[0]) {
                bad = "failed with no message";
            } else if (c->failed && (bad = c->failed(ctx)) == NULL) {
                char again[512] = "";
                if (c->op(ctx, again, sizeof again) != 0) {
                    snprintf(why, whysz, "%s: the run after fault %ld (%s) failed: %s", c->name, n,
                             persistent ? "persistent" : "transient", again);
                    if (c->teardown) c->teardown(ctx);
                    return why;
                }
                bad = c->done ? c->done(ctx) : NULL;
            }
            if (c->teardown) c->teardown(ctx);
            if (bad) {
                snprintf(why, whysz, "%s: fault %ld (%s), rc %d (%s): %s", c->name, n,
                         persistent ? "persistent" : "transient", rc, msg, bad);
                return why;
            }
            if (!fired) break;
        }
    }
    if (getenv("FAULTS_VERBOSE")) printf("  %s: %ld allocations, %ld runs\n", c->name, total, runs);
    return NULL;
}

#define CHECK_FAULTS(c, ctx)                                           \
    do {                                                               \
        char why_[1024];                                               \
        const char *bad_ = run_faults(&(c), (ctx), why_, sizeof why_); \
        CHECK_MSG(bad_ == NULL, "%s", bad_);                           \
    } while (0)

/* ---- fixtures: a data directory and its store --------------------------------------- */

typedef struct store_ctx {
    char dir[256];
    jobs_store *st;
    int64_t job_id;
    jobs_job job;
    jobs_adapter_info adapter;
    jobs_dataset_info dataset;
    void *list;
    int n;
    int64_t cursor;
} store_ctx;

static void tmpdir_in_memory(char *out, size_t outsz) {
    /* tmpfs where there is one: the loops open and commit thousands of times */
    snprintf(out, outsz, "%s/codid_test_faults_XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(out)) abort();
}

/* One integer from SQL on the test's own connection; -1 on error. */
static long long sql_int(const char *dir, const char *sql) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, JOBS_DB_NAME);
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    long long v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static const char *integrity(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, JOBS_DB_NAME);
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    const char *bad = "integrity_check could not run";
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        bad = strcmp((const char *)sqlite3_column_text(s, 0), "ok") == 0 ? NULL : "integrity_check is not ok";
    sqlite3_finalize(s);
    sqlite3_close(db);
    return bad;
}

/* Files in dir whose names hold ".tmp". */
static int temporaries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp")) n++;
    if (d) closedir(d);
    return n;
}

static void open_store(store_ctx *c) {
    char msg[256];
    if (jobs_store_open(c->dir, 0, &c->st, msg, sizeof msg) != JOBS_OK) {
        fprintf(stderr, "open: %s\n", msg);
        abort();
    }
}

static void store_setup(void *p) {
    store_ctx *c = p;
    memset(c, 0, sizeof *c);
    tmpdir_in_memory(c->dir, sizeof c->dir);
    open_store(c);
}

static void store_teardown(void *p) {
    store_ctx *c = p;
    jobs_store_close(c->st);
    jobs_job_clear(&c->job);
    jobs_adapter_info_clear(&c->adapter);
    jobs_dataset_info_clear(&c->dataset);
    free(c->list);
    rm_tree(c->dir);
    memset(c, 0, sizeof *c);
}

static void insert_job(store_ctx *c) {
    char msg[256];
    if (jobs_store_job_insert(c->st, "distill", "{\"kind\":\"distill\",\"dataset\":\"d\"}", 10, &c->job_id, msg,
                              sizeof msg) != JOBS_OK)
        abort();
}

static void claim_job(store_ctx *c) {
    char msg[256];
    jobs_job j;
    if (jobs_store_claim(c->st, &j, msg, sizeof msg) != JOBS_OK) abort();
    jobs_job_clear(&j);
}

/* ---- store: open --------------------------------------------------------------------- */

static void open_setup_empty(void *p) {
    store_ctx *c = p;
    memset(c, 0, sizeof *c);
    tmpdir_in_memory(c->dir, sizeof c->dir);
}

static void open_setup_existing(void *p) {
    store_setup(p);
    store_ctx *c = p;
    insert_job(c);
    jobs_store_close(c->st);
    c->st = NULL;
}

static int op_open(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    jobs_store_close(c->st);
    c->st = NULL;
    return jobs_store_open(c->dir, 0, &c->st, msg, msgsz);
}

static const char *open_failed(void *p) {
    store_ctx *c = p;
    return c->st ? "a store was returned with the error" : NULL;
}

static const char *open_done(void *p) {
    store_ctx *c = p;
    int v = 0;
    char msg[256];
    if (jobs_store_schema_version(c->st, &v, msg, sizeof msg) != JOBS_OK || v != JOBS_SCHEMA_VERSION)
        return "schema version not current";
    return integrity(c->dir);
}

TEST(store_open_fresh_and_existing) {
    store_ctx c;
    fault_case fresh = {"open a fresh store", open_setup_empty, op_open, open_failed, open_done, store_teardown};
    CHECK_FAULTS(fresh, &c);
    fault_case existing = {"open a store", open_setup_existing, op_open, open_failed, open_done, store_teardown};
    CHECK_FAULTS(existing, &c);
}

/* ---- store: jobs and the state machine ---------------------------------------------------- */

static int op_insert(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    return jobs_store_job_insert(c->st, "distill", "{\"kind\":\"distill\",\"dataset\":\"d\"}", 10, &c->job_id, msg,
                                 msgsz);
}

static const char *insert_failed(void *p) {
    store_ctx *c = p;
    if (sql_int(c->dir, "SELECT count(*) FROM jobs") != 0) return "a job row is left";
    if (sql_int(c->dir, "SELECT count(*) FROM job_events") != 0) return "an event is left";
    return integrity(c->dir);
}

static const char *insert_done(void *p) {
    store_ctx *c = p;
    if (sql_int(c->dir, "SELECT count(*) FROM jobs WHERE status = 'queued' AND total = 10") != 1)
        return "not one queued job";
    if (sql_int(c->dir, "SELECT count(*) FROM job_events WHERE kind = 'state'") != 1) return "not one state event";
    return integrity(c->dir);
}

static void setup_queued(void *p) {
    store_setup(p);
    insert_job(p);
}

static void setup_running(void *p) {
    setup_queued(p);
    claim_job(p);
}

static int op_claim(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    jobs_job_clear(&c->job);
    return jobs_store_claim(c->st, &c->job, msg, msgsz);
}

static const char *claim_failed(void *p) {
    store_ctx *c = p;
    if (sql_int(c->dir, "SELECT count(*) FROM jobs WHERE status = 'queued' AND attempts = 0") != 1)
        return "the job is not queued as it was";
    if (sql_int(c->dir, "SELECT count(*) FROM job_events") != 1) return "an event was added";
    return integrity(c->dir);
}

static const char *claim_done(void *p) {
    store_ctx *c = p;
    if (c->job.id != c->job_id || c->job.state != JOBS_RUNNING || !c->job.params ||
        strstr(c->job.params, "distill") == NULL)
        return "the claimed job came back incomplete";
    if (sql_int(c->dir, "SELECT count(*) FROM jobs WHERE status = 'running' AND attempts = 1") != 1)
        return "the job is not running";
    if (sql_int(c->dir, "SELECT count(*) FROM job_events") != 2) return "not two events";
    return integrity(c->dir);
}

static int op_progress(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    jobs_progress pr = {5, 10, 0.5, 0.4, 1e-3, 2.0, 3.0};
    return jobs_store_progress(c->st, c->job_id, &pr, msg, msgsz);
}

static const char *progress_failed(void *p) {
    store_ctx *c = p;
    if (sql_int(c->dir, "SELECT step FROM jobs") != 0) return "the step moved";
    if (sql_int(c->dir, "SELECT count(*) FROM job_events WHERE kind = 'progress'") != 0) return "an event was added";
    return integrity(c->dir);
}

static const char *progress_done(void *p) {
    store_ctx *c = p;
    if (sql_int(c->dir, "SELECT step FROM jobs") != 5) return "the step is not 5";
    if (sql_int(c->dir, "SELECT count(*) FROM job_events WHERE kind = 'progress'") != 1)
        return "not one progress event";
    return integrity(c->dir);
}

static int op_fail_job(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    return jobs_store_transition(c->st, c->job_id, JOBS_RUNNING, JOBS_FAILED, "disk full", NULL, msg, msgsz);
}

static const char *still_running(void *p) {
    store_ctx *c = p;
    if (sql_int(c->dir, "SELECT count(*) FROM jobs WHERE status = 'running' AND error IS NULL") != 1)
        return "the job is no longer running as it was";
    if (sql_int(c->dir, "SELECT count(*) FROM job_events") != 2) return "an event was added";
    if (sql_int(c->dir, "SELECT count(*) FROM adapters") != 0) return "an adapter row was added";
    return integrity(c->dir);
}

static const char *fail_done(void *p) {
    store_ctx *c = p;
    if (sql_int(c->dir, "SELECT count(*) FROM jobs WHERE status = 'failed' AND error = 'disk full'") != 1)
        return "the job did not fail with its error";
    if (sql_int(c->dir, "SELECT count(*) FROM job_events WHERE payload LIKE '%disk full%'") != 1)
        return "no state event with the error";
    return integrity(c->dir);
}

static int op_succeed(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    jobs_adapter_info a = {0};
    snprintf(a.name, sizeof a.name, "sr4");
    a.path = "/data/adapters/sr4.safetensors";
    snprintf(a.task, sizeof a.task, "sr");
    snprintf(a.kind, sizeof a.kind, "lite");
    snprintf(a.base_hash, sizeof a.base_hash, "0123456789abcdef");
    a.metadata = "{\"fid\":1.5}";
    return jobs_store_succeed(c->st, c->job_id, &a, "{\"metrics\":{\"fid\":1.5}}", msg, msgsz);
}

static const char *succeed_done(void *p) {
    store_ctx *c = p;
    if (sql_int(c->dir, "SELECT count(*) FROM jobs WHERE status = 'succeeded' AND "
                        "json_extract(result, '$.adapter_id') = (SELECT id FROM adapters)") != 1)
        return "the job did not succeed with its adapter";
    if (sql_int(c->dir, "SELECT count(*) FROM adapters WHERE job_id IS NOT NULL") != 1) return "not one adapter";
    if (sql_int(c->dir, "SELECT count(*) FROM job_events") != 4) return "not four events";
    return integrity(c->dir);
}

static int op_cancel(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    jobs_job_clear(&c->job);
    return jobs_cancel(c->st, c->job_id, &c->job, msg, msgsz);
}

/* A failed jobs_cancel either did nothing or cancelled and could not read
 * the job back: both leave a whole job. */
static const char *cancel_failed(void *p) {
    store_ctx *c = p;
    long long queued = sql_int(c->dir, "SELECT count(*) FROM jobs WHERE status = 'queued'");
    long long cancelled = sql_int(c->dir, "SELECT count(*) FROM jobs WHERE status = 'cancelled'");
    long long events = sql_int(c->dir, "SELECT count(*) FROM job_events");
    if (!((queued == 1 && events == 1) || (cancelled == 1 && events == 2))) return "the job is half cancelled";
    if (cancelled) {
        /* committed, then the read-back failed: cancelling again is refused */
        char msg[256];
        if (jobs_cancel(c->st, c->job_id, NULL, msg, sizeof msg) != JOBS_ESTATE)
            return "cancel after cancel not refused";
        const char *bad = integrity(c->dir);
        store_teardown(c); /* the run again needs a queued job */
        setup_queued(c);
        return bad;
    }
    return integrity(c->dir);
}

static const char *cancel_done(void *p) {
    store_ctx *c = p;
    if (c->job.state != JOBS_CANCELLED || !c->job.params || !c->job.error) return "the job came back incomplete";
    if (sql_int(c->dir, "SELECT count(*) FROM jobs WHERE status = 'cancelled'") != 1) return "not cancelled";
    if (sql_int(c->dir, "SELECT count(*) FROM job_events") != 2) return "not two events";
    return integrity(c->dir);
}

static int op_requeue(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    return jobs_store_requeue_running(c->st, &c->n, msg, msgsz);
}

static const char *requeue_done(void *p) {
    store_ctx *c = p;
    if (c->n != 1) return "not one job requeued";
    if (sql_int(c->dir, "SELECT count(*) FROM jobs WHERE status = 'queued' AND recoveries = 1") != 1)
        return "the job is not queued with one recovery";
    return integrity(c->dir);
}

static const char *requeue_failed(void *p) {
    store_ctx *c = p;
    if (sql_int(c->dir, "SELECT count(*) FROM jobs WHERE status = 'running' AND recoveries = 0") != 1)
        return "the job is not running as it was";
    return integrity(c->dir);
}

TEST(store_jobs_and_their_states) {
    store_ctx c;
    fault_case cases[] = {
        {"insert a job", store_setup, op_insert, insert_failed, insert_done, store_teardown},
        {"claim a job", setup_queued, op_claim, claim_failed, claim_done, store_teardown},
        {"record progress", setup_running, op_progress, progress_failed, progress_done, store_teardown},
        {"fail a job", setup_running, op_fail_job, still_running, fail_done, store_teardown},
        {"succeed with an adapter", setup_running, op_succeed, still_running, succeed_done, store_teardown},
        {"cancel a queued job", setup_queued, op_cancel, cancel_failed, cancel_done, store_teardown},
        {"requeue running jobs", setup_running, op_requeue, requeue_failed, requeue_done, store_teardown},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) CHECK_FAULTS(cases[i], &c);
}

/* ---- store: reading back ------------------------------------------------------------------ */

static void setup_three_jobs(void *p) {
    store_ctx *c = p;
    store_setup(p);
    for (int i = 0; i < 3; i++) insert_job(c);
    claim_job(c);
    jobs_progress pr = {1, 10, 0.5, 0.4, 1e-3, 2.0, 3.0};
    char msg[256];
    if (jobs_store_progress(c->st, 1, &pr, msg, sizeof msg) != JOBS_OK) abort();
}

static int op_get(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    jobs_job_clear(&c->job);
    return jobs_store_job_get(c->st, 1, &c->job, msg, msgsz);
}

static const char *get_done(void *p) {
    store_ctx *c = p;
    return c->job.id == 1 && c->job.params && c->job.state == JOBS_RUNNING ? NULL : "the job came back incomplete";
}

static void free_jobs(store_ctx *c) {
    jobs_job *jobs = c->list;
    for (int i = 0; jobs && i < c->n; i++) jobs_job_clear(&jobs[i]);
    free(jobs);
    c->list = NULL;
    c->n = 0;
}

static int op_list(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    free_jobs(c);
    jobs_job *jobs = NULL;
    int rc = jobs_list(c->st, NULL, 0, 2, &jobs, &c->n, &c->cursor, msg, msgsz);
    c->list = jobs;
    return rc;
}

static const char *list_failed(void *p) {
    store_ctx *c = p;
    return c->list || c->n ? "a list came back with the error" : NULL;
}

static const char *list_done(void *p) {
    store_ctx *c = p;
    jobs_job *jobs = c->list;
    if (c->n != 2 || c->cursor != 2) return "not the first page";
    for (int i = 0; i < c->n; i++)
        if (!jobs[i].params) return "a job came back without its params";
    return NULL;
}

static void list_teardown(void *p) {
    free_jobs(p);
    store_teardown(p);
}

static int op_progress_since(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    jobs_progress out[8];
    int64_t last = 0;
    int rc = jobs_progress_since(c->st, 1, 0, 8, out, &c->n, &last, msg, msgsz);
    if (rc == JOBS_OK && (c->n != 1 || out[0].step != 1 || last != 5))
        return util_msg(msg, msgsz, FAULT_WRONG, "wrong points");
    return rc;
}

static int op_events(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    jobs_event *ev = NULL;
    int rc = jobs_events_since(c->st, 1, 0, 8, &ev, &c->n, msg, msgsz);
    int complete = rc != JOBS_OK || c->n == 3;
    for (int i = 0; rc == JOBS_OK && i < c->n; i++)
        if (!ev[i].payload) complete = 0;
    jobs_events_free(ev, c->n);
    return complete ? rc : util_msg(msg, msgsz, FAULT_WRONG, "events came back incomplete");
}

TEST(store_reads_come_back_whole_or_fail) {
    store_ctx c;
    fault_case cases[] = {
        {"get a job", setup_three_jobs, op_get, NULL, get_done, store_teardown},
        {"list jobs", setup_three_jobs, op_list, list_failed, list_done, list_teardown},
        {"progress since", setup_three_jobs, op_progress_since, NULL, NULL, store_teardown},
        {"events since", setup_three_jobs, op_events, NULL, NULL, store_teardown},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) CHECK_FAULTS(cases[i], &c);
}

/* ---- registry, keys and submission ----------------------------------------------------------- */

static void setup_dataset_file(void *p) {
    store_setup(p);
    store_ctx *c = p;
    char path[300];
    snprintf(path, sizeof path, "%s/datasets/tiny.cds", c->dir);
    char sub[300];
    snprintf(sub, sizeof sub, "%s/datasets", c->dir);
    mkdir(sub, 0755);
    if (write_dataset(path, 4, 8, 3) != 0) abort();
}

static int op_dataset_register(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    char path[300];
    snprintf(path, sizeof path, "%s/datasets/tiny.cds", c->dir);
    jobs_dataset_info_clear(&c->dataset);
    return jobs_dataset_register(c->st, "tiny", path, "png", NULL, 1, &c->dataset, msg, msgsz);
}

static const char *no_dataset(void *p) {
    store_ctx *c = p;
    if (c->dataset.path) return "a row came back with the error";
    if (sql_int(c->dir, "SELECT count(*) FROM datasets") != 0) return "a dataset row was added";
    return integrity(c->dir);
}

static const char *dataset_done(void *p) {
    store_ctx *c = p;
    if (!c->dataset.path || c->dataset.count != 4 || c->dataset.id < 1) return "the row came back incomplete";
    if (sql_int(c->dir, "SELECT count(*) FROM datasets WHERE count = 4 AND skipped = 1") != 1)
        return "not one dataset row";
    return integrity(c->dir);
}

static void setup_registered(void *p) {
    setup_dataset_file(p);
    char msg[256];
    store_ctx *c = p;
    if (op_dataset_register(p, msg, sizeof msg) != JOBS_OK) abort();
    jobs_dataset_info_clear(&c->dataset);
}

static int op_dataset_get(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    jobs_dataset_info_clear(&c->dataset);
    return jobs_dataset_get(c->st, "tiny", &c->dataset, msg, msgsz);
}

static const char *dataset_get_done(void *p) {
    store_ctx *c = p;
    return c->dataset.path && c->dataset.count == 4 ? NULL : "the row came back incomplete";
}

static int op_dataset_list(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    jobs_dataset_info *d = NULL;
    int rc = jobs_store_dataset_list(c->st, &d, &c->n, msg, msgsz);
    int whole = rc != JOBS_OK || (c->n == 1 && d[0].path);
    for (int i = 0; rc == JOBS_OK && i < c->n; i++) jobs_dataset_info_clear(&d[i]);
    free(d);
    return whole ? rc : util_msg(msg, msgsz, FAULT_WRONG, "the list came back incomplete");
}

static int op_adapter_add(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    jobs_adapter_info a = {0};
    snprintf(a.name, sizeof a.name, "hand");
    a.path = "/x/hand.safetensors";
    snprintf(a.task, sizeof a.task, "sr");
    snprintf(a.kind, sizeof a.kind, "controlnet");
    snprintf(a.base_hash, sizeof a.base_hash, "0123456789abcdef");
    a.metadata = "{\"recipe\":{\"steps\":2}}";
    return jobs_store_adapter_add(c->st, &a, msg, msgsz);
}

static const char *no_adapter(void *p) {
    store_ctx *c = p;
    if (sql_int(c->dir, "SELECT count(*) FROM adapters") != 0) return "an adapter row was added";
    return integrity(c->dir);
}

static const char *adapter_done(void *p) {
    store_ctx *c = p;
    if (sql_int(c->dir, "SELECT count(*) FROM adapters WHERE json_extract(metadata, '$.recipe.steps') = 2") != 1)
        return "not one adapter row";
    return integrity(c->dir);
}

static void setup_adapter(void *p) {
    store_setup(p);
    char msg[256];
    if (op_adapter_add(p, msg, sizeof msg) != JOBS_OK) abort();
}

static int op_adapter_read(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    jobs_adapter_info_clear(&c->adapter);
    int rc = jobs_adapter_get(c->st, "hand", &c->adapter, msg, msgsz);
    if (rc != JOBS_OK) return rc;
    jobs_adapter_info *list = NULL;
    rc = jobs_store_adapter_list(c->st, &list, &c->n, msg, msgsz);
    int whole = rc != JOBS_OK || (c->n == 1 && list[0].path && list[0].metadata);
    for (int i = 0; rc == JOBS_OK && i < c->n; i++) jobs_adapter_info_clear(&list[i]);
    free(list);
    return whole ? rc : util_msg(msg, msgsz, FAULT_WRONG, "the list came back incomplete");
}

static const char *adapter_read_done(void *p) {
    store_ctx *c = p;
    return c->adapter.path && c->adapter.metadata ? NULL : "the adapter came back incomplete";
}

static const char *hash_hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

static int op_key_add(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    return jobs_store_key_add(c->st, "ck_abc", hash_hex, "admin", &c->job_id, msg, msgsz);
}

static const char *no_key(void *p) {
    store_ctx *c = p;
    return sql_int(c->dir, "SELECT count(*) FROM api_keys") == 0 ? integrity(c->dir) : "a key row was added";
}

static const char *key_done(void *p) {
    store_ctx *c = p;
    jobs_api_key k;
    char msg[256];
    if (jobs_store_key_find(c->st, "ck_abc", &k, msg, sizeof msg) != JOBS_OK || strcmp(k.hash, hash_hex) != 0)
        return "the key is not there";
    return integrity(c->dir);
}

static int op_submit(void *p, char *msg, size_t msgsz) {
    store_ctx *c = p;
    return jobs_submit(c->st,
                       "{\"kind\":\"distill\",\"dataset\":\"tiny\",\"task\":{\"name\":\"sr\",\"factor\":4},"
                       "\"adapter_kind\":\"lite\",\"steps\":20,\"name\":\"sr4\"}",
                       &c->job_id, msg, msgsz);
}

static const char *no_job(void *p) {
    store_ctx *c = p;
    if (sql_int(c->dir, "SELECT count(*) FROM jobs") != 0) return "a job row was added";
    if (sql_int(c->dir, "SELECT count(*) FROM job_events") != 0) return "an event was added";
    return integrity(c->dir);
}

static const char *submit_done(void *p) {
    store_ctx *c = p;
    if (sql_int(c->dir, "SELECT count(*) FROM jobs WHERE total = 20 AND json_extract(params, '$.name') = 'sr4'") != 1)
        return "not one job with its params";
    return integrity(c->dir);
}

TEST(registry_keys_and_submission) {
    store_ctx c;
    fault_case cases[] = {
        {"register a dataset", setup_dataset_file, op_dataset_register, no_dataset, dataset_done, store_teardown},
        {"get a dataset", setup_registered, op_dataset_get, NULL, dataset_get_done, store_teardown},
        {"list datasets", setup_registered, op_dataset_list, NULL, NULL, store_teardown},
        {"add an adapter", store_setup, op_adapter_add, no_adapter, adapter_done, store_teardown},
        {"read adapters", setup_adapter, op_adapter_read, NULL, adapter_read_done, store_teardown},
        {"add a key", store_setup, op_key_add, no_key, key_done, store_teardown},
        {"submit a job", setup_registered, op_submit, no_job, submit_done, store_teardown},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) CHECK_FAULTS(cases[i], &c);
}

/* ---- dataset import: from memory and from a tar ------------------------------------------------ */

#define N_PNGS 3

typedef struct import_ctx {
    char dir[256], out[300];
    uint8_t *png[N_PNGS];
    size_t png_len[N_PNGS];
    uint8_t *tar;
    size_t tar_len;
} import_ctx;

static void put_octal(uint8_t *f, size_t n, uint64_t v) {
    snprintf((char *)f, n, "%0*llo", (int)n - 1, (unsigned long long)v);
}

/* A ustar archive of the PNGs (and a directory entry, which is skipped). */
static void build_tar(import_ctx *c) {
    size_t cap = 1024 * 4;
    for (int i = 0; i < N_PNGS; i++) cap += 512 + (c->png_len[i] + 511) / 512 * 512;
    c->tar = calloc(1, cap);
    size_t off = 0;
    for (int i = -1; i < N_PNGS; i++) {
        uint8_t *h = c->tar + off;
        size_t len = i < 0 ? 0 : c->png_len[i];
        snprintf((char *)h, 100, i < 0 ? "pngs/" : "pngs/%d.png", i);
        put_octal(h + 100, 8, 0644);
        put_octal(h + 108, 8, 0);
        put_octal(h + 116, 8, 0);
        put_octal(h + 124, 12, len);
        put_octal(h + 136, 12, 0);
        h[156] = i < 0 ? '5' : '0';
        memcpy(h + 257, "ustar", 6);
        memcpy(h + 263, "00", 2);
        memset(h + 148, ' ', 8);
        unsigned sum = 0;
        for (int k = 0; k < 512; k++) sum += h[k];
        snprintf((char *)h + 148, 8, "%06o", sum);
        off += 512;
        if (i >= 0) memcpy(c->tar + off, c->png[i], len);
        off += (len + 511) / 512 * 512;
    }
    c->tar_len = off + 1024;
}

static void import_setup(void *p) {
    import_ctx *c = p;
    memset(c, 0, sizeof *c);
    tmpdir_in_memory(c->dir, sizeof c->dir);
    snprintf(c->out, sizeof c->out, "%s/up.cds", c->dir);
    for (int i = 0; i < N_PNGS; i++) {
        int w = 12 + 4 * i, h = 10 + 2 * i;
        uint8_t *px = malloc((size_t)w * h * 3);
        for (int k = 0; k < w * h * 3; k++) px[k] = (uint8_t)(k * 7 + i * 31);
        char msg[256];
        if (util_png_encode(px, w, h, 3, &c->png[i], &c->png_len[i], msg, sizeof msg) != 0) abort();
        free(px);
    }
    build_tar(c);
}

static void import_teardown(void *p) {
    import_ctx *c = p;
    for (int i = 0; i < N_PNGS; i++) free(c->png[i]);
    free(c->tar);
    rm_tree(c->dir);
}

static int import_blobs(import_ctx *c, const jobs_png_blob *blobs, int n, char *msg, size_t msgsz) {
    jobs_import_params ip;
    jobs_import_params_init(&ip);
    ip.source = JOBS_SOURCE_PNG_MEMORY;
    ip.size = 8;
    ip.pngs = blobs;
    ip.n_pngs = n;
    jobs_import_stats stats;
    int rc = jobs_dataset_import(&ip, c->out, &stats, msg, msgsz);
    /* an allocation that fails is the daemon's trouble, never the upload's */
    if (rc == JOBS_EINVAL || rc == JOBS_ELIMIT) {
        char why[512];
        snprintf(why, sizeof why, "%s", msg);
        return util_msg(msg, msgsz, FAULT_WRONG, "a good file was refused as the client's fault (%d): %s", rc, why);
    }
    return rc;
}

static int op_import_memory(void *p, char *msg, size_t msgsz) {
    import_ctx *c = p;
    jobs_png_blob blobs[N_PNGS];
    for (int i = 0; i < N_PNGS; i++) blobs[i] = (jobs_png_blob){c->png[i], c->png_len[i]};
    return import_blobs(c, blobs, N_PNGS, msg, msgsz);
}

typedef struct tar_walk {
    jobs_png_blob *blobs;
    int n;
} tar_walk;

/* api/datasets.c's walk: each member a PNG blob, the array grown by realloc */
static int on_member(const api_tar_member *m, void *user) {
    tar_walk *w = user;
    jobs_png_blob *grown = realloc(w->blobs, sizeof *grown * (size_t)(w->n + 1));
    if (!grown) return -1;
    w->blobs = grown;
    w->blobs[w->n++] = (jobs_png_blob){m->data, m->len};
    return 0;
}

static int op_import_tar(void *p, char *msg, size_t msgsz) {
    import_ctx *c = p;
    tar_walk w = {NULL, 0};
    int rc = api_tar_each(c->tar, c->tar_len, on_member, &w, msg, msgsz);
    if (rc != 0 && !msg[0]) util_msg(msg, msgsz, 0, "out of memory");
    if (rc == 0)
        rc = w.n == N_PNGS ? import_blobs(c, w.blobs, w.n, msg, msgsz) : util_msg(msg, msgsz, FAULT_WRONG, "members");
    free(w.blobs);
    return rc;
}

static const char *import_failed(void *p) {
    import_ctx *c = p;
    if (access(c->out, F_OK) == 0) return "the output exists after a failed import";
    if (temporaries(c->dir)) return "a temporary file is left";
    return NULL;
}

static const char *import_done(void *p) {
    import_ctx *c = p;
    jobs_dataset ds;
    char msg[256];
    if (jobs_dataset_map(c->out, &ds, msg, sizeof msg) != 0) return "the output does not map";
    int ok = ds.count == N_PNGS && ds.width == 8 && ds.channels == 3;
    jobs_dataset_unmap(&ds);
    if (!ok) return "the output is not the three images";
    if (temporaries(c->dir)) return "a temporary file is left";
    unlink(c->out);
    return NULL;
}

TEST(dataset_import_from_memory_and_tar) {
    import_ctx c;
    fault_case mem = {"import PNGs in memory", import_setup, op_import_memory,
                      import_failed,           import_done,  import_teardown};
    CHECK_FAULTS(mem, &c);
    fault_case tar = {"import a tar", import_setup, op_import_tar, import_failed, import_done, import_teardown};
    CHECK_FAULTS(tar, &c);
}

/* ---- request codecs ------------------------------------------------------------------------------- */

static int op_base64(void *p, char *msg, size_t msgsz) {
    (void)p;
    static const uint8_t data[] = "codid, the distillation daemon";
    char *enc = NULL;
    uint8_t *dec = NULL;
    size_t elen = 0, dlen = 0;
    int rc = util_base64_encode(data, sizeof data, 1024, &enc, &elen, msg, msgsz);
    if (rc != 0 && enc) rc = util_msg(msg, msgsz, FAULT_WRONG, "an output came back with the error");
    if (rc == 0) rc = util_base64_decode(enc, elen, 1024, &dec, &dlen, msg, msgsz);
    if (rc != 0 && dec) rc = util_msg(msg, msgsz, FAULT_WRONG, "an output came back with the error");
    if (rc == 0 && (dlen != sizeof data || memcmp(dec, data, dlen) != 0))
        rc = util_msg(msg, msgsz, FAULT_WRONG, "round trip differs");
    free(enc);
    free(dec);
    return rc;
}

static int op_png(void *p, char *msg, size_t msgsz) {
    (void)p;
    uint8_t px[16 * 9 * 4];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 13);
    uint8_t *enc = NULL;
    size_t len = 0;
    util_image img = {0};
    int rc = util_png_encode(px, 16, 9, 4, &enc, &len, msg, msgsz);
    if (rc != 0 && enc) rc = util_msg(msg, msgsz, FAULT_WRONG, "an output came back with the error");
    if (rc == 0) rc = util_png_decode(enc, len, 0, 1 << 20, &img, msg, msgsz);
    if (rc != 0 && img.data) rc = util_msg(msg, msgsz, FAULT_WRONG, "an image came back with the error");
    if (rc == 0 && (img.width != 16 || img.channels != 4 || memcmp(img.data, px, sizeof px) != 0))
        rc = util_msg(msg, msgsz, FAULT_WRONG, "round trip differs");
    if (rc == UTIL_PNG_ELIMIT) rc = util_msg(msg, msgsz, FAULT_WRONG, "a fault read as a limit");
    free(enc);
    util_image_free(&img);
    return rc;
}

static int op_multipart(void *p, char *msg, size_t msgsz) {
    (void)p;
    static const char body[] = "--XyZ\r\nContent-Disposition: form-data; name=\"steps\"\r\n\r\n4\r\n"
                               "--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n"
                               "Content-Type: image/png\r\n\r\n\x89PNG\r\n--XyZ--\r\n";
    api_part *parts = NULL;
    int n = 0;
    int rc = api_multipart_parse("multipart/form-data; boundary=XyZ", (const uint8_t *)body, sizeof body - 1, 8, &parts,
                                 &n, msg, msgsz);
    if (rc == 0 && (n != 2 || strcmp(parts[1].filename, "a.png") != 0 || parts[1].len != 4))
        rc = util_msg(msg, msgsz, FAULT_WRONG, "parts differ");
    free(parts);
    return rc;
}

static int op_jobspec(void *p, char *msg, size_t msgsz) {
    (void)p;
    jobs_spec s;
    int rc = jobs_spec_parse("{\"kind\":\"pretrain\",\"dataset\":\"d\",\"steps\":30,"
                             "\"config\":{\"sample_size\":8,\"block_out_channels\":[8,16]},\"name\":\"b\"}",
                             &s, msg, msgsz);
    if (rc == JOBS_OK) {
        if (!s.model_config || jobs_spec_total(&s) != 30) rc = util_msg(msg, msgsz, FAULT_WRONG, "spec differs");
        jobs_spec_free(&s);
    } else if (rc == JOBS_EINVAL) {
        char why[512];
        snprintf(why, sizeof why, "%s", msg);
        rc = util_msg(msg, msgsz, FAULT_WRONG, "a fault read as a bad spec: %s", why);
    }
    return rc;
}

static int op_json(void *p, char *msg, size_t msgsz) {
    (void)p;
    cJSON *doc = cJSON_Parse("{\"steps\":4,\"seed\":123456789,\"n\":2}");
    if (!doc) return util_msg(msg, msgsz, -1, "out of memory");
    long long steps = 0, seed = 0;
    int rc = util_json_int(cJSON_GetObjectItem(doc, "steps"), "steps", 1, 8, &steps, msg, msgsz);
    if (rc == 0) rc = util_json_int(cJSON_GetObjectItem(doc, "seed"), "seed", 0, 1LL << 40, &seed, msg, msgsz);
    cJSON_Delete(doc);
    if (rc != 0) return rc;
    cJSON *d = jobs_spec_describe();
    if (!d) return util_msg(msg, msgsz, -1, "out of memory");
    char *text = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    if (!text) return util_msg(msg, msgsz, -1, "out of memory");
    rc = strstr(text, "\"kinds\"") ? 0 : util_msg(msg, msgsz, FAULT_WRONG, "no kinds");
    cJSON_free(text);
    return rc;
}

TEST(request_codecs) {
    fault_case cases[] = {
        {"base64", NULL, op_base64, NULL, NULL, NULL},       {"png", NULL, op_png, NULL, NULL, NULL},
        {"multipart", NULL, op_multipart, NULL, NULL, NULL}, {"job spec", NULL, op_jobspec, NULL, NULL, NULL},
        {"json", NULL, op_json, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) CHECK_FAULTS(cases[i], NULL);
}

int main(void) {
    faults_init();
    util_log_set_level(UTIL_LOG_WARN);
    RUN(store_open_fresh_and_existing);
    RUN(store_jobs_and_their_states);
    RUN(store_reads_come_back_whole_or_fail);
    RUN(registry_keys_and_submission);
    RUN(dataset_import_from_memory_and_tar);
    RUN(request_codecs);
    return TEST_SUMMARY();
}
