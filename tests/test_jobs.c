/*
 * test_jobs.c - jobs/: the SQLite store (migrations, refusal of corrupt,
 * locked and newer databases, the state machine, concurrent claims), job
 * specs, the JSON operations, start-up recovery, and the workers running
 * real (tiny) training and evaluation jobs: success and registration,
 * stop and exact resume, cancel while queued and while running.
 */
#include "engine/engine.h"
#include "jobs/dataset.h"
#include "jobs/jobs.h"
#include "jobs/jobspec.h"
#include "jobs/store.h"
#include "jobs/worker.h"
#include "tests/test.h"
#include "util/log.h"

#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ----------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir) {
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int make_tmpdir(char *out, size_t outsz) {
    snprintf(out, outsz, "/tmp/codid_test_jobs_XXXXXX");
    return mkdtemp(out) ? 0 : -1;
}

static int file_exists(const char *path) {
    return access(path, F_OK) == 0;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Runs SQL on a connection of the test's own, beside the store's. */
static int raw_exec(const char *dir, const char *sql) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, JOBS_DB_NAME);
    sqlite3 *db;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

/* A dataset file (jobs/dataset.h's layout) of n smooth, distinct images. */
static int write_dataset(const char *path, int n, int side, int ch) {
    uint8_t header[JOBS_DATASET_HEADER_BYTES] = "CODIDSET";
    uint32_t fields[6] = {JOBS_DATASET_VERSION, (uint32_t)n, (uint32_t)side, (uint32_t)side, (uint32_t)ch, 0};
    memcpy(header + 8, fields, sizeof fields);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fwrite(header, 1, sizeof header, f);
    for (int i = 0; i < n; i++)
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
                for (int c = 0; c < ch; c++) fputc((x * 12 + y * 7 + c * 60 + i * 29) & 255, f);
    return fclose(f) == 0 ? 0 : -1;
}

static long read_all(const char *path, uint8_t **out) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc((size_t)n);
    if (!*out || fread(*out, 1, (size_t)n, f) != (size_t)n) n = -1;
    fclose(f);
    return n;
}

static int64_t add_job(jobs_store *st, const char *params) {
    int64_t id = 0;
    char msg[256];
    if (jobs_store_job_insert(st, "distill", params, 10, &id, msg, sizeof msg) != JOBS_OK) return -1;
    return id;
}

static jobs_state state_of(jobs_store *st, int64_t id) {
    jobs_job j;
    char msg[256];
    if (jobs_store_job_get(st, id, &j, msg, sizeof msg) != JOBS_OK) return (jobs_state)-1;
    jobs_state s = j.state;
    jobs_job_clear(&j);
    return s;
}

/* ---- schema and migrations ------------------------------------------------------- */

TEST(fresh_database_gets_latest_schema) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK_MSG(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK, "%s", msg);
    int v = -1;
    CHECK(jobs_store_schema_version(st, &v, msg, sizeof msg) == JOBS_OK);
    jobs_store_close(st);
    CHECK_EQ_INT(v, JOBS_SCHEMA_VERSION);
    /* WAL, and every table of the schema */
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, JOBS_DB_NAME);
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    sqlite3_stmt *s;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL);
    CHECK(sqlite3_step(s) == SQLITE_ROW);
    int wal = strcmp((const char *)sqlite3_column_text(s, 0), "wal") == 0;
    sqlite3_finalize(s);
    sqlite3_prepare_v2(db,
                       "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                       "('jobs','job_events','datasets','adapters','api_keys')",
                       -1, &s, NULL);
    sqlite3_step(s);
    int tables = sqlite3_column_int(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    rm_tree(dir);
    CHECK(wal);
    CHECK_EQ_INT(tables, 5);
}

TEST(reopening_is_a_noop) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    int64_t id = add_job(st, "{\"a\":1}");
    jobs_store_close(st);
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    int v = -1;
    jobs_store_schema_version(st, &v, msg, sizeof msg);
    jobs_state s = state_of(st, id);
    jobs_store_close(st);
    rm_tree(dir);
    CHECK_EQ_INT(v, JOBS_SCHEMA_VERSION);
    CHECK_EQ_INT(id, 1);
    CHECK_EQ_INT(s, JOBS_QUEUED);
}

TEST(newer_database_refused) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    CHECK(raw_exec(dir, "CREATE TABLE future (x); PRAGMA user_version = 99;") == SQLITE_OK);
    jobs_store *st = NULL;
    int rc = jobs_store_open(dir, 0, &st, msg, sizeof msg);
    rm_tree(dir);
    CHECK_EQ_INT(rc, JOBS_ETOONEW);
    CHECK(st == NULL);
    CHECK_MSG(strstr(msg, "version 99") && strstr(msg, "newer codid"), "message: %s", msg);
}

TEST(not_a_database_refused) {
    char dir[64], path[128], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    snprintf(path, sizeof path, "%s/%s", dir, JOBS_DB_NAME);
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 8192; i++) fputc("this is not a database\n"[i % 23], f);
    fclose(f);
    jobs_store *st = NULL;
    int rc = jobs_store_open(dir, 0, &st, msg, sizeof msg);
    rm_tree(dir);
    CHECK_EQ_INT(rc, JOBS_ECORRUPT);
    CHECK_MSG(strstr(msg, "not a usable SQLite database"), "message: %s", msg);
}

TEST(damaged_database_refused) {
    char dir[64], path[128], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    for (int i = 0; i < 300; i++) add_job(st, "{\"padding\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}");
    jobs_store_close(st); /* the last connection checkpoints the WAL into the file */
    snprintf(path, sizeof path, "%s/%s", dir, JOBS_DB_NAME);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && sb.st_size > 8 * 4096);
    /* garbage over the pages after the first (the header stays valid) */
    FILE *f = fopen(path, "r+b");
    fseek(f, 4096, SEEK_SET);
    for (long i = 4096; i < sb.st_size; i++) fputc((int)(i * 131 % 251), f);
    fclose(f);
    st = NULL;
    int rc = jobs_store_open(dir, 0, &st, msg, sizeof msg);
    rm_tree(dir);
    CHECK_EQ_INT(rc, JOBS_ECORRUPT);
    CHECK(st == NULL);
    printf("  (%s)\n", msg);
}

TEST(locked_database_refused) {
    char dir[64], path[128], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    jobs_store_close(st);
    /* another connection holds the write lock past our busy timeout */
    snprintf(path, sizeof path, "%s/%s", dir, JOBS_DB_NAME);
    sqlite3 *other;
    CHECK(sqlite3_open(path, &other) == SQLITE_OK);
    CHECK(sqlite3_exec(other,
                       "BEGIN EXCLUSIVE; INSERT INTO api_keys (prefix, hash, scope, created_at) "
                       "VALUES ('p', 'h', 'admin', 0)",
                       NULL, NULL, NULL) == SQLITE_OK);
    int rc = jobs_store_open(dir, 100, &st, msg, sizeof msg);
    char locked_msg[512];
    snprintf(locked_msg, sizeof locked_msg, "%s", msg);
    sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
    int rc_after = jobs_store_open(dir, 100, &st, msg, sizeof msg);
    jobs_store_close(st);
    sqlite3_close(other);
    rm_tree(dir);
    CHECK_EQ_INT(rc, JOBS_EBUSY);
    CHECK_MSG(strstr(locked_msg, "locked by another process"), "message: %s", locked_msg);
    CHECK_EQ_INT(rc_after, JOBS_OK);
}

TEST(exclusively_locked_new_database_refused) {
    char dir[64], path[128], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    /* a rollback-journal database whose holder keeps even readers out */
    snprintf(path, sizeof path, "%s/%s", dir, JOBS_DB_NAME);
    sqlite3 *other;
    CHECK(sqlite3_open(path, &other) == SQLITE_OK);
    CHECK(sqlite3_exec(other, "CREATE TABLE t (x); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1)", NULL, NULL, NULL) ==
          SQLITE_OK);
    jobs_store *st = NULL;
    int rc = jobs_store_open(dir, 100, &st, msg, sizeof msg);
    sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(other);
    rm_tree(dir);
    CHECK_EQ_INT(rc, JOBS_EBUSY);
    CHECK(st == NULL);
}

/* ---- the state machine ------------------------------------------------------------- */

TEST(state_machine) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    int64_t id = add_job(st, "{}");
    jobs_job j;
    int rc_skip = jobs_store_transition(st, id, JOBS_QUEUED, JOBS_SUCCEEDED, NULL, NULL, msg, sizeof msg);
    int rc_claim = jobs_store_claim(st, &j, msg, sizeof msg);
    int claimed = (int)j.id, attempts1 = j.attempts;
    int64_t started = j.started_ms;
    jobs_job_clear(&j);
    /* a stale `from` is refused: the job is running, not queued */
    int rc_stale = jobs_store_transition(st, id, JOBS_QUEUED, JOBS_CANCELLED, NULL, NULL, msg, sizeof msg);
    char stale_msg[512];
    snprintf(stale_msg, sizeof stale_msg, "%s", msg);
    int rc_requeue = jobs_store_transition(st, id, JOBS_RUNNING, JOBS_QUEUED, NULL, NULL, msg, sizeof msg);
    jobs_store_claim(st, &j, msg, sizeof msg);
    int attempts2 = j.attempts;
    jobs_job_clear(&j);
    int rc_fail = jobs_store_transition(st, id, JOBS_RUNNING, JOBS_FAILED, "boom", NULL, msg, sizeof msg);
    int rc_back = jobs_store_transition(st, id, JOBS_FAILED, JOBS_QUEUED, NULL, NULL, msg, sizeof msg);
    int rc_again = jobs_store_transition(st, id, JOBS_RUNNING, JOBS_SUCCEEDED, NULL, "{}", msg, sizeof msg);
    jobs_state after;
    int rc_cancel = jobs_store_cancel(st, id, &after, msg, sizeof msg);
    jobs_store_job_get(st, id, &j, msg, sizeof msg);
    jobs_event *ev = NULL;
    int n = 0;
    jobs_store_events_since(st, id, 0, 100, &ev, &n, msg, sizeof msg);
    char seq[256] = "";
    for (int i = 0; i < n; i++)
        if (strcmp(ev[i].kind, "state") == 0) {
            strcat(seq, strstr(ev[i].payload, "queued")    ? "Q"
                        : strstr(ev[i].payload, "running") ? "R"
                        : strstr(ev[i].payload, "failed")  ? "F"
                                                           : "?");
        }
    jobs_events_free(ev, n);
    jobs_store_close(st);
    rm_tree(dir);
    CHECK_EQ_INT(rc_skip, JOBS_ESTATE);
    CHECK_EQ_INT(rc_claim, JOBS_OK);
    CHECK_EQ_INT(claimed, id);
    CHECK_EQ_INT(attempts1, 1);
    CHECK(started > 0);
    CHECK_EQ_INT(rc_stale, JOBS_ESTATE);
    CHECK_MSG(strstr(stale_msg, "is running, not queued"), "message: %s", stale_msg);
    CHECK_EQ_INT(rc_requeue, JOBS_OK);
    CHECK_EQ_INT(attempts2, 2);
    CHECK_EQ_INT(rc_fail, JOBS_OK);
    CHECK_EQ_INT(rc_back, JOBS_ESTATE);
    CHECK_EQ_INT(rc_again, JOBS_ESTATE);
    CHECK_EQ_INT(rc_cancel, JOBS_ESTATE);
    CHECK_EQ_INT(j.state, JOBS_FAILED);
    CHECK_EQ_STR(j.error, "boom");
    CHECK(j.finished_ms >= j.started_ms && j.started_ms > 0);
    CHECK(j.result == NULL);
    jobs_job_clear(&j);
    CHECK_EQ_STR(seq, "QRQRF");
}

TEST(claim_on_empty_queue) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    jobs_job j;
    int rc = jobs_store_claim(st, &j, msg, sizeof msg);
    jobs_store_close(st);
    rm_tree(dir);
    CHECK_EQ_INT(rc, JOBS_ENOTFOUND);
}

#define CLAIM_THREADS 4
#define CLAIM_JOBS    200

static pthread_barrier_t claim_start;

typedef struct claimer {
    const char *dir;
    int64_t got[CLAIM_JOBS];
    int n, errors;
} claimer;

static void *claim_all(void *arg) {
    claimer *c = arg;
    jobs_store *st = NULL;
    char msg[256];
    int opened = jobs_store_open(c->dir, 0, &st, msg, sizeof msg) == JOBS_OK;
    /* every connection open before anyone claims: they contend from the start */
    pthread_barrier_wait(&claim_start);
    if (!opened) {
        c->errors++;
        return NULL;
    }
    for (;;) {
        jobs_job j;
        int rc = jobs_store_claim(st, &j, msg, sizeof msg);
        if (rc == JOBS_ENOTFOUND) break;
        if (rc != JOBS_OK) {
            c->errors++;
            continue;
        }
        if (c->n < CLAIM_JOBS) c->got[c->n++] = j.id;
        jobs_job_clear(&j);
    }
    jobs_store_close(st);
    return NULL;
}

TEST(concurrent_claims_take_each_job_once) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    for (int i = 0; i < CLAIM_JOBS; i++) add_job(st, "{}");
    static claimer c[CLAIM_THREADS];
    pthread_t t[CLAIM_THREADS];
    pthread_barrier_init(&claim_start, NULL, CLAIM_THREADS);
    for (int i = 0; i < CLAIM_THREADS; i++) {
        c[i] = (claimer){.dir = dir};
        pthread_create(&t[i], NULL, claim_all, &c[i]);
    }
    for (int i = 0; i < CLAIM_THREADS; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&claim_start);
    int seen[CLAIM_JOBS + 1] = {0}, total = 0, errors = 0, threads_with_claims = 0;
    for (int i = 0; i < CLAIM_THREADS; i++) {
        errors += c[i].errors;
        total += c[i].n;
        threads_with_claims += c[i].n > 0;
        for (int k = 0; k < c[i].n; k++)
            if (c[i].got[k] >= 1 && c[i].got[k] <= CLAIM_JOBS) seen[c[i].got[k]]++;
    }
    jobs_job *running = NULL;
    int n_running = 0;
    jobs_store_job_list(st, JOBS_RUNNING, 0, CLAIM_JOBS + 10, &running, &n_running, msg, sizeof msg);
    for (int i = 0; i < n_running; i++) jobs_job_clear(&running[i]);
    free(running);
    jobs_store_close(st);
    rm_tree(dir);
    CHECK_EQ_INT(errors, 0);
    CHECK_EQ_INT(total, CLAIM_JOBS);
    for (int id = 1; id <= CLAIM_JOBS; id++) CHECK_MSG(seen[id] == 1, "job %d claimed %d times", id, seen[id]);
    CHECK_EQ_INT(n_running, CLAIM_JOBS);
    printf("  (claims per thread:");
    for (int i = 0; i < CLAIM_THREADS; i++) printf(" %d", c[i].n);
    printf(")\n");
}

TEST(cancel_queued_and_running) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    int64_t a = add_job(st, "{}"), b = add_job(st, "{}");
    jobs_state sa, sb;
    int rc_a = jobs_store_cancel(st, a, &sa, msg, sizeof msg);
    jobs_job j;
    jobs_store_claim(st, &j, msg, sizeof msg); /* takes b: a is no longer queued */
    int64_t claimed = j.id;
    jobs_job_clear(&j);
    int before = -1, after = -1;
    jobs_store_cancel_requested(st, b, &before, msg, sizeof msg);
    int rc_b = jobs_store_cancel(st, b, &sb, msg, sizeof msg);
    jobs_store_cancel_requested(st, b, &after, msg, sizeof msg);
    jobs_state b_state = state_of(st, b);
    jobs_state unknown;
    int rc_missing = jobs_store_cancel(st, 999, &unknown, msg, sizeof msg);
    jobs_store_close(st);
    rm_tree(dir);
    CHECK_EQ_INT(rc_a, JOBS_OK);
    CHECK_EQ_INT(sa, JOBS_CANCELLED);
    CHECK_EQ_INT(claimed, b);
    CHECK_EQ_INT(rc_b, JOBS_OK);
    CHECK_EQ_INT(sb, JOBS_RUNNING);
    CHECK_EQ_INT(before, 0);
    CHECK_EQ_INT(after, 1);
    CHECK_EQ_INT(b_state, JOBS_RUNNING); /* its worker ends it */
    CHECK_EQ_INT(rc_missing, JOBS_ENOTFOUND);
}

TEST(success_registers_adapter_once) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    int64_t id = add_job(st, "{}");
    jobs_job j;
    jobs_store_claim(st, &j, msg, sizeof msg);
    jobs_job_clear(&j);
    jobs_adapter_info a = {0};
    snprintf(a.name, sizeof a.name, "sr4");
    a.path = "/nowhere/sr4.safetensors";
    snprintf(a.task, sizeof a.task, "sr");
    snprintf(a.kind, sizeof a.kind, "lite");
    snprintf(a.base_hash, sizeof a.base_hash, "0123456789abcdef");
    a.metadata = "{\"k\":1}";
    int rc1 = jobs_store_succeed(st, id, &a, "{\"steps\":10}", msg, sizeof msg);
    int64_t adapter_id = a.id;
    int rc2 = jobs_store_succeed(st, id, &a, "{\"steps\":10}", msg, sizeof msg);
    /* the schema itself refuses a second adapter of the job */
    jobs_adapter_info b = a;
    snprintf(b.name, sizeof b.name, "other");
    b.job_id = id;
    int rc3 = jobs_store_adapter_add(st, &b, msg, sizeof msg);
    jobs_adapter_info *list = NULL;
    int n = 0;
    jobs_store_adapter_list(st, &list, &n, msg, sizeof msg);
    int64_t list_job = n ? list[0].job_id : 0;
    for (int i = 0; i < n; i++) jobs_adapter_info_clear(&list[i]);
    free(list);
    cJSON *job = NULL;
    jobs_get(st, id, &job, msg, sizeof msg);
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(job, "result");
    double result_adapter = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(result, "adapter_id"));
    double result_steps = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(result, "steps"));
    const char *status = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(job, "status"));
    int succeeded = status && strcmp(status, "succeeded") == 0;
    cJSON_Delete(job);
    jobs_store_close(st);
    rm_tree(dir);
    CHECK_EQ_INT(rc1, JOBS_OK);
    CHECK(adapter_id > 0);
    CHECK_EQ_INT(rc2, JOBS_ESTATE);
    CHECK_EQ_INT(rc3, JOBS_EEXIST);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(list_job, id);
    CHECK(succeeded);
    CHECK_EQ_INT((int64_t)result_adapter, adapter_id);
    CHECK_EQ_INT((int)result_steps, 10);
}

TEST(list_pages_newest_first) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    for (int i = 0; i < 5; i++) add_job(st, "{}");
    jobs_job j;
    jobs_store_claim(st, &j, msg, sizeof msg); /* job 1 runs */
    jobs_job_clear(&j);
    cJSON *p1 = NULL, *p2 = NULL, *p3 = NULL, *running = NULL;
    int rc1 = jobs_list(st, NULL, 0, 2, &p1, msg, sizeof msg);
    double next1 = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(p1, "next_cursor"));
    jobs_list(st, NULL, (int64_t)next1, 2, &p2, msg, sizeof msg);
    double next2 = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(p2, "next_cursor"));
    jobs_list(st, NULL, (int64_t)next2, 2, &p3, msg, sizeof msg);
    const cJSON *next3 = cJSON_GetObjectItemCaseSensitive(p3, "next_cursor");
    jobs_list(st, "running", 0, 10, &running, msg, sizeof msg);
    int rc_bad = jobs_list(st, "sleeping", 0, 10, &running, msg, sizeof msg);
    int ids[5], k = 0;
    cJSON *pages[3] = {p1, p2, p3};
    for (int p = 0; p < 3; p++) {
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(pages[p], "jobs")) if (k < 5) ids[k++] =
            (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(item, "id"));
    }
    int n_running = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(running, "jobs"));
    int null_next = cJSON_IsNull(next3);
    cJSON_Delete(p1);
    cJSON_Delete(p2);
    cJSON_Delete(p3);
    cJSON_Delete(running);
    jobs_store_close(st);
    rm_tree(dir);
    CHECK_EQ_INT(rc1, JOBS_OK);
    CHECK_EQ_INT(k, 5);
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(ids[i], 5 - i);
    CHECK(null_next);
    CHECK_EQ_INT(n_running, 1);
    CHECK_EQ_INT(rc_bad, JOBS_EINVAL);
}

TEST(events_resume_after_an_id) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    int64_t id = add_job(st, "{}");
    jobs_job j;
    jobs_store_claim(st, &j, msg, sizeof msg);
    jobs_job_clear(&j);
    for (int step = 1; step <= 3; step++) {
        jobs_progress p = {step, 10, 1.0 / step, 0.5, 1e-3, 2.5, (10 - step) / 2.5};
        jobs_store_progress(st, id, &p, msg, sizeof msg);
    }
    cJSON *all = NULL, *tail = NULL;
    int rc = jobs_events_since(st, id, 0, 100, &all, msg, sizeof msg);
    int n_all = cJSON_GetArraySize(all);
    const cJSON *third = cJSON_GetArrayItem(all, 2); /* queued, running, then progress 1 */
    double after = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(third, "id"));
    jobs_events_since(st, id, (int64_t)after, 100, &tail, msg, sizeof msg);
    int n_tail = cJSON_GetArraySize(tail);
    const cJSON *last = cJSON_GetArrayItem(tail, n_tail - 1);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(last, "data");
    double step = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(data, "step"));
    double loss = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(data, "loss"));
    const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "kind"));
    int is_progress = kind && strcmp(kind, "progress") == 0;
    cJSON *none = NULL;
    int rc_missing = jobs_events_since(st, 42, 0, 10, &none, msg, sizeof msg);
    cJSON_Delete(all);
    cJSON_Delete(tail);
    jobs_store_close(st);
    rm_tree(dir);
    CHECK_EQ_INT(rc, JOBS_OK);
    CHECK_EQ_INT(n_all, 5);
    CHECK_EQ_INT(n_tail, 2);
    CHECK(is_progress);
    CHECK_EQ_INT((int)step, 3);
    CHECK_NEAR(loss, 1.0 / 3, 1e-6);
    CHECK_EQ_INT(rc_missing, JOBS_ENOTFOUND);
}

TEST(api_keys_and_job_counts) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    char hash[JOBS_KEY_HASH_HEX + 1];
    memset(hash, 'a', JOBS_KEY_HASH_HEX);
    hash[JOBS_KEY_HASH_HEX] = '\0';
    int64_t k1 = 0, k2 = 0, k3 = 0;
    int rc1 = jobs_store_key_add(st, "p1", hash, "admin", &k1, msg, sizeof msg);
    int rc2 = jobs_store_key_add(st, "p2", hash, "generate", &k2, msg, sizeof msg);
    int rc_dup = jobs_store_key_add(st, "p1", hash, "admin", &k3, msg, sizeof msg);
    int rc_scope = jobs_store_key_add(st, "p3", hash, "root", &k3, msg, sizeof msg);
    int before = 0, after = 0;
    jobs_store_key_count(st, &before, msg, sizeof msg);
    jobs_api_key key;
    int rc_find = jobs_store_key_find(st, "p2", &key, msg, sizeof msg);
    int rc_revoke = jobs_store_key_revoke(st, k2, msg, sizeof msg);
    int rc_revoke2 = jobs_store_key_revoke(st, k2, msg, sizeof msg);
    int rc_gone = jobs_store_key_find(st, "p2", &key, msg, sizeof msg);
    jobs_store_key_count(st, &after, msg, sizeof msg);
    jobs_api_key *keys = NULL;
    int n_keys = 0;
    jobs_store_key_list(st, &keys, &n_keys, msg, sizeof msg);
    int revoked_listed = n_keys == 2 && keys[1].revoked_ms > 0 && keys[0].revoked_ms == 0;
    free(keys);
    add_job(st, "{}");
    add_job(st, "{}");
    jobs_job j;
    jobs_store_claim(st, &j, msg, sizeof msg);
    jobs_job_clear(&j);
    int64_t counts[5];
    int rc_counts = jobs_store_job_counts(st, counts, msg, sizeof msg);
    jobs_store_close(st);
    rm_tree(dir);
    CHECK_EQ_INT(rc1, JOBS_OK);
    CHECK_EQ_INT(rc2, JOBS_OK);
    CHECK(k2 > k1);
    CHECK_EQ_INT(rc_dup, JOBS_EEXIST);
    CHECK_EQ_INT(rc_scope, JOBS_EINVAL);
    CHECK_EQ_INT(before, 2);
    CHECK_EQ_INT(rc_find, JOBS_OK);
    CHECK_EQ_INT(rc_revoke, JOBS_OK);
    CHECK_EQ_INT(rc_revoke2, JOBS_ENOTFOUND);
    CHECK_EQ_INT(rc_gone, JOBS_ENOTFOUND);
    CHECK_EQ_INT(after, 1);
    CHECK(revoked_listed);
    CHECK_EQ_INT(rc_counts, JOBS_OK);
    CHECK_EQ_INT(counts[JOBS_QUEUED], 1);
    CHECK_EQ_INT(counts[JOBS_RUNNING], 1);
    CHECK_EQ_INT(counts[JOBS_SUCCEEDED], 0);
}

/* ---- job specs ------------------------------------------------------------------------- */

TEST(spec_maps_fields_to_engine_params) {
    jobs_spec s;
    char msg[256];
    int rc = jobs_spec_parse("{\"kind\":\"cm2\",\"dataset\":\"cifar\",\"teacher\":7,"
                             "\"task\":{\"name\":\"edges\",\"canny\":true},\"adapter_kind\":\"lite\","
                             "\"steps\":300,\"batch_size\":16,\"lr\":0.0005,\"warmup\":10,"
                             "\"ema_decay\":0.99,\"seed\":42,\"n_grid\":20,\"lambda\":0.5,"
                             "\"ode_model\":\"ema\",\"consistency_space\":\"eps\",\"shared_t\":true,"
                             "\"loss_weight\":\"snr_trunc\",\"name\":\"edges-lite\",\"checkpoint_every\":25}",
                             &s, msg, sizeof msg);
    CHECK_MSG(rc == JOBS_OK, "%s", msg);
    CHECK_EQ_INT(s.kind, JOBS_KIND_CM2);
    CHECK_EQ_INT(s.train.kind, ENG_TRAIN_CM2);
    CHECK_EQ_STR(s.dataset.name, "cifar");
    CHECK_EQ_INT(s.teacher.id, 7);
    CHECK_EQ_INT(s.train.task.kind, ENG_TASK_EDGES);
    CHECK_EQ_INT(s.train.task.canny, 1);
    CHECK_EQ_INT(s.train.adapter_kind, ENG_ADAPTER_LITE);
    CHECK_EQ_INT(s.train.total_steps, 300);
    CHECK_EQ_INT(s.train.batch_size, 16);
    CHECK_NEAR(s.train.lr, 0.0005, 1e-9);
    CHECK_EQ_INT(s.train.warmup_steps, 10);
    CHECK_NEAR(s.train.ema_decay, 0.99, 1e-7);
    CHECK_EQ_INT(s.train.seed, 42);
    CHECK_EQ_INT(s.train.n_grid, 20);
    CHECK_NEAR(s.train.lambda, 0.5, 1e-9);
    CHECK_EQ_INT(s.train.ode_model, ENG_ODE_EMA);
    CHECK_EQ_INT(s.train.consistency, ENG_CONSISTENCY_EPS);
    CHECK_EQ_INT(s.train.shared_t, 1);
    CHECK_EQ_INT(s.train.loss_weight, ENG_LOSS_WEIGHT_SNR_TRUNC);
    CHECK_EQ_STR(s.name, "edges-lite");
    CHECK_EQ_INT(s.checkpoint_every, 25);
    CHECK_EQ_INT(jobs_spec_total(&s), 300);
    jobs_spec_free(&s);

    CHECK(jobs_spec_parse("{\"kind\":\"distill\",\"dataset\":\"12\",\"task\":{\"name\":\"sr\",\"factor\":8}}", &s, msg,
                          sizeof msg) == JOBS_OK);
    CHECK_EQ_INT(s.dataset.id, 12);
    CHECK_EQ_INT(s.train.task.factor, 8);
    CHECK_EQ_INT(s.checkpoint_every, JOBS_CHECKPOINT_EVERY_DEFAULT);
    CHECK_EQ_INT(s.train.adapter_kind, ENG_ADAPTER_CONTROLNET);
    jobs_spec_free(&s);

    CHECK(jobs_spec_parse("{\"kind\":\"pretrain\",\"dataset\":\"d\",\"config\":{\"sample_size\":8},"
                          "\"prediction\":\"epsilon\"}",
                          &s, msg, sizeof msg) == JOBS_OK);
    CHECK_EQ_STR(s.model_config, "{\"sample_size\":8}");
    CHECK_EQ_INT(s.train.prediction, ENG_PRED_EPSILON);
    jobs_spec_free(&s);
    /* diffusers' spelling, and "v", which rows stored by older versions hold */
    const char *vs[] = {"{\"kind\":\"pretrain\",\"dataset\":\"d\",\"prediction\":\"v_prediction\"}",
                        "{\"kind\":\"pretrain\",\"dataset\":\"d\",\"prediction\":\"v\"}"};
    for (int i = 0; i < 2; i++) {
        CHECK_MSG(jobs_spec_parse(vs[i], &s, msg, sizeof msg) == JOBS_OK, "%s", msg);
        CHECK_EQ_INT(s.train.prediction, ENG_PRED_V);
        jobs_spec_free(&s);
    }
    CHECK(jobs_spec_parse("{\"kind\":\"pretrain\",\"dataset\":\"d\",\"prediction\":\"x\"}", &s, msg, sizeof msg) ==
          JOBS_EINVAL);
    CHECK_MSG(strstr(msg, "epsilon, v_prediction"), "%s", msg);

    CHECK(jobs_spec_parse("{\"kind\":\"evaluate\",\"dataset\":\"d\",\"adapter\":\"a\",\"n\":5}", &s, msg, sizeof msg) ==
          JOBS_OK);
    CHECK_EQ_INT(jobs_spec_total(&s), 5);
    CHECK_EQ_INT(s.sample_steps, 0);
    jobs_spec_free(&s);
}

TEST(spec_errors_name_the_field) {
    static const struct {
        const char *json, *expect;
    } cases[] = {
        {"[1]", "JSON object"},
        {"{\"dataset\":\"d\"}", "'kind'"},
        {"{\"kind\":\"train\",\"dataset\":\"d\"}", "'kind' must be one of pretrain"},
        {"{\"kind\":\"distill\",\"task\":{\"name\":\"sr\"}}", "'dataset' is required"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\"}", "'task' is required"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"zoom\"}}", "'task.name'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\",\"factor\":3}}", "'task.factor'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\",\"canny\":1}}", "'task.canny'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"steps\":0}", "'steps'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"steps\":1.5}", "'steps'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"batch_size\":5000}", "'batch_size'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"lr\":0}", "'lr'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"lr\":\"fast\"}", "'lr'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"ema_decay\":1}", "'ema_decay'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"seed\":-1}", "'seed'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"ode_model\":\"x\"}", "'ode_model'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"consistency_space\":1}",
         "'consistency_space'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"loss_weight\":\"snr\"}",
         "'loss_weight'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"shared_t\":\"yes\"}", "'shared_t'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"adapter_kind\":\"big\"}",
         "'adapter_kind'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"name\":\"../x\"}", "'name'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"checkpoint_every\":0}",
         "'checkpoint_every'"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"teacher\":\"t\"}",
         "'teacher' does not apply to a distill job"},
        {"{\"kind\":\"distill\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"},\"stepz\":5}", "'stepz' is unknown"},
        {"{\"kind\":\"distill\",\"dataset\":\"../etc\",\"task\":{\"name\":\"sr\"}}", "'dataset'"},
        {"{\"kind\":\"cm2\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"}}", "'teacher' is required"},
        {"{\"kind\":\"pretrain\",\"dataset\":\"d\",\"config\":[1]}", "'config'"},
        {"{\"kind\":\"pretrain\",\"dataset\":\"d\",\"task\":{\"name\":\"sr\"}}", "'task' does not apply"},
        {"{\"kind\":\"evaluate\",\"dataset\":\"d\"}", "'adapter' is required"},
        {"{\"kind\":\"evaluate\",\"dataset\":\"d\",\"adapter\":\"a\",\"steps\":5}", "'steps' does not apply"},
        {"{\"kind\":\"evaluate\",\"dataset\":\"d\",\"adapter\":\"a\",\"n\":0}", "'n'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jobs_spec s;
        char msg[256] = "";
        int rc = jobs_spec_parse(cases[i].json, &s, msg, sizeof msg);
        CHECK_MSG(rc == JOBS_EINVAL, "%s: accepted", cases[i].json);
        CHECK_MSG(strstr(msg, cases[i].expect), "%s: message '%s' lacks '%s'", cases[i].json, msg, cases[i].expect);
    }
}

/* ---- operations: references, registries ----------------------------------------------------- */

TEST(submit_checks_references_and_names) {
    char dir[64], set[128], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    snprintf(set, sizeof set, "%s/set.cds", dir);
    CHECK(write_dataset(set, 4, 8, 3) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    int64_t id = 0;
    int rc_nods =
        jobs_submit(st, "{\"kind\":\"distill\",\"dataset\":\"tiny\",\"task\":{\"name\":\"sr\"}}", &id, msg, sizeof msg);
    char nods_msg[512];
    snprintf(nods_msg, sizeof nods_msg, "%s", msg);
    cJSON *ds = NULL;
    int rc_reg = jobs_dataset_register(st, "tiny", set, "file", "train", 0, &ds, msg, sizeof msg);
    double count = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(ds, "count"));
    double size = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(ds, "size"));
    cJSON_Delete(ds);
    int rc_dup = jobs_dataset_register(st, "tiny", set, "file", NULL, 0, NULL, msg, sizeof msg);
    int rc_notaset = jobs_dataset_register(st, "bad", dir, "file", NULL, 0, NULL, msg, sizeof msg);
    int rc_ok = jobs_submit(st,
                            "{\"kind\":\"distill\",\"dataset\":\"tiny\",\"task\":{\"name\":\"sr\"},"
                            "\"name\":\"mine\"}",
                            &id, msg, sizeof msg);
    int64_t id2 = 0;
    int rc_byid =
        jobs_submit(st, "{\"kind\":\"teacher\",\"dataset\":1,\"task\":{\"name\":\"sr\"}}", &id2, msg, sizeof msg);
    int rc_name = jobs_submit(st,
                              "{\"kind\":\"distill\",\"dataset\":\"tiny\",\"task\":{\"name\":\"sr\"},"
                              "\"name\":\"mine\"}",
                              &id2, msg, sizeof msg);
    int rc_teacher = jobs_submit(st,
                                 "{\"kind\":\"cm2\",\"dataset\":\"tiny\",\"task\":{\"name\":\"sr\"},"
                                 "\"teacher\":\"nobody\"}",
                                 &id2, msg, sizeof msg);
    int rc_inuse = jobs_dataset_delete(st, "tiny", msg, sizeof msg);
    char inuse_msg[512];
    snprintf(inuse_msg, sizeof inuse_msg, "%s", msg);
    jobs_state s;
    jobs_store_cancel(st, 1, &s, msg, sizeof msg);
    jobs_store_cancel(st, 2, &s, msg, sizeof msg);
    int rc_del = jobs_dataset_delete(st, "1", msg, sizeof msg);
    int rc_gone = jobs_dataset_delete(st, "tiny", msg, sizeof msg);
    jobs_store_close(st);
    int set_kept = file_exists(set); /* registered from outside datasets/: not ours to delete */
    rm_tree(dir);
    CHECK_EQ_INT(rc_nods, JOBS_EINVAL);
    CHECK_MSG(strstr(nods_msg, "field 'dataset'"), "message: %s", nods_msg);
    CHECK_EQ_INT(rc_reg, JOBS_OK);
    CHECK_EQ_INT((int)count, 4);
    CHECK_EQ_INT((int)size, 8);
    CHECK_EQ_INT(rc_dup, JOBS_EEXIST);
    CHECK_EQ_INT(rc_notaset, JOBS_EINVAL);
    CHECK_EQ_INT(rc_ok, JOBS_OK);
    CHECK_EQ_INT(id, 1);
    CHECK_EQ_INT(rc_byid, JOBS_OK);
    CHECK_EQ_INT(rc_name, JOBS_EEXIST);
    CHECK_EQ_INT(rc_teacher, JOBS_EINVAL);
    CHECK_EQ_INT(rc_inuse, JOBS_EINUSE);
    CHECK_MSG(strstr(inuse_msg, "job 1"), "message: %s", inuse_msg);
    CHECK_EQ_INT(rc_del, JOBS_OK);
    CHECK_EQ_INT(rc_gone, JOBS_ENOTFOUND);
    CHECK(set_kept);
}

TEST(start_up_requeues_cleans_and_locks) {
    char dir[64], path[256], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    int64_t a = add_job(st, "{}");
    add_job(st, "{}");
    jobs_job j;
    jobs_store_claim(st, &j, msg, sizeof msg); /* as if a crash left it running */
    jobs_job_clear(&j);
    jobs_store_close(st);
    snprintf(path, sizeof path, "%s/checkpoints", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/adapters", dir);
    mkdir(path, 0755);
    char tmp1[256], tmp2[256], keep[256];
    snprintf(tmp1, sizeof tmp1, "%s/checkpoints/job-1.safetensors.tmp", dir);
    snprintf(tmp2, sizeof tmp2, "%s/adapters/x-1.safetensors.tmp", dir);
    snprintf(keep, sizeof keep, "%s/checkpoints/job-1.safetensors", dir);
    fclose(fopen(tmp1, "w"));
    fclose(fopen(tmp2, "w"));
    fclose(fopen(keep, "w"));

    jobs_system *sys = NULL, *second = NULL;
    int rc = jobs_system_open(dir, &sys, msg, sizeof msg);
    char start_msg[512];
    snprintf(start_msg, sizeof start_msg, "%s", msg);
    int rc2 = jobs_system_open(dir, &second, msg, sizeof msg);
    char second_msg[512];
    snprintf(second_msg, sizeof second_msg, "%s", msg);
    jobs_state s = sys ? state_of(jobs_system_store(sys), a) : (jobs_state)-1;
    jobs_system_stop(sys);
    int t1 = file_exists(tmp1), t2 = file_exists(tmp2), k = file_exists(keep);
    rm_tree(dir);
    CHECK_MSG(rc == 0, "%s", start_msg);
    CHECK_EQ_INT(rc2, -1);
    CHECK_MSG(strstr(second_msg, "another codid process"), "message: %s", second_msg);
    CHECK_EQ_INT(s, JOBS_QUEUED);
    CHECK(!t1 && !t2);
    CHECK(k);
}

/* A job that brings the daemon down every time it runs is retried
 * JOBS_MAX_RECOVERIES times, then failed with the reason; another job found
 * running once is only requeued. */
TEST(start_up_gives_up_on_a_job_that_keeps_crashing) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    int64_t a = add_job(st, "{}");
    int requeued[JOBS_MAX_RECOVERIES + 1];
    jobs_state states[JOBS_MAX_RECOVERIES + 1];
    for (int i = 0; i <= JOBS_MAX_RECOVERIES; i++) {
        jobs_job j;
        if (jobs_store_claim(st, &j, msg, sizeof msg) == JOBS_OK) jobs_job_clear(&j); /* then a crash */
        requeued[i] = -1;
        jobs_store_requeue_running(st, &requeued[i], msg, sizeof msg);
        states[i] = state_of(st, a);
    }
    jobs_job j;
    int rc_get = jobs_store_job_get(st, a, &j, msg, sizeof msg);
    int says_why = rc_get == JOBS_OK && j.error && strstr(j.error, "not retried") && strstr(j.error, "4 times");
    if (rc_get == JOBS_OK) jobs_job_clear(&j);
    int64_t b = add_job(st, "{}"); /* a later job is unaffected */
    int claimed_b = jobs_store_claim(st, &j, msg, sizeof msg) == JOBS_OK && j.id == b;
    if (claimed_b) jobs_job_clear(&j);
    int n_b = -1;
    jobs_store_requeue_running(st, &n_b, msg, sizeof msg);
    jobs_state sb = state_of(st, b);
    jobs_store_close(st);
    rm_tree(dir);
    for (int i = 0; i < JOBS_MAX_RECOVERIES; i++) {
        CHECK_EQ_INT(requeued[i], 1);
        CHECK_EQ_INT(states[i], JOBS_QUEUED);
    }
    CHECK_EQ_INT(requeued[JOBS_MAX_RECOVERIES], 0);
    CHECK_EQ_INT(states[JOBS_MAX_RECOVERIES], JOBS_FAILED);
    CHECK(says_why);
    CHECK(claimed_b);
    CHECK_EQ_INT(n_b, 1);
    CHECK_EQ_INT(sb, JOBS_QUEUED);
}

/* ---- workers on a tiny real model -------------------------------------------------------- */

/* 16 x 16 so that SSIM's 11 x 11 window fits. */
static const char tiny_config[] =
    "{\"sample_size\":16,\"block_out_channels\":[8,16],\"down_block_types\":[\"DownBlock2D\","
    "\"AttnDownBlock2D\"],\"up_block_types\":[\"AttnUpBlock2D\",\"UpBlock2D\"],\"layers_per_block\":1,"
    "\"norm_num_groups\":4,\"attention_head_dim\":8}";

static const char distill_job[] =
    "{\"kind\":\"distill\",\"dataset\":\"tiny\",\"task\":{\"name\":\"sr\",\"factor\":2},"
    "\"adapter_kind\":\"lite\",\"steps\":40,\"batch_size\":2,\"warmup\":2,\"n_grid\":8,\"seed\":5,"
    "\"checkpoint_every\":5,\"name\":\"tiny-sr\"}";

static eng_ctx *ctx;
static eng_model *model;
static char reference_adapter[256]; /* the uninterrupted run's file */

typedef struct env {
    char dir[64];
    jobs_system *sys;
    jobs_store *st;
} env;

/* A data directory with the tiny dataset registered, and its system. */
static int env_start(env *e, int workers) {
    char set[128], msg[512];
    if (make_tmpdir(e->dir, sizeof e->dir) != 0) return -1;
    snprintf(set, sizeof set, "%s/tiny.cds", e->dir);
    if (write_dataset(set, 8, 16, 3) != 0) return -1;
    jobs_system_params p = {workers, 1, ctx, model};
    if (jobs_system_open(e->dir, &e->sys, msg, sizeof msg) != 0 ||
        jobs_system_start_workers(e->sys, &p, msg, sizeof msg) != 0) {
        printf("  start: %s\n", msg);
        return -1;
    }
    e->st = jobs_system_store(e->sys);
    return jobs_dataset_register(e->st, "tiny", set, "file", "train", 0, NULL, msg, sizeof msg);
}

static void env_restart(env *e, int workers) {
    char msg[512];
    jobs_system_stop(e->sys);
    jobs_system_params p = {workers, 1, ctx, model};
    e->sys = NULL;
    if (jobs_system_open(e->dir, &e->sys, msg, sizeof msg) != 0 ||
        jobs_system_start_workers(e->sys, &p, msg, sizeof msg) != 0)
        printf("  restart: %s\n", msg);
    e->st = e->sys ? jobs_system_store(e->sys) : NULL;
}

static void env_end(env *e) {
    jobs_system_stop(e->sys);
    rm_tree(e->dir);
}

/* Polls until the job's state is final or its progress reaches step;
 * the bound only keeps a broken build from hanging the suite. */
static jobs_job wait_job(jobs_store *st, int64_t id, int step) {
    jobs_job j = {0};
    char msg[256];
    for (int i = 0; i < 60000; i++) {
        jobs_job_clear(&j);
        if (jobs_store_job_get(st, id, &j, msg, sizeof msg) != JOBS_OK) break;
        if (jobs_state_is_final(j.state) || (step > 0 && j.progress.step >= step)) break;
        sleep_ms(10);
    }
    return j;
}

TEST(worker_trains_exports_and_registers) {
    env e;
    CHECK(env_start(&e, 1) == 0);
    int64_t id = 0;
    char msg[512];
    CHECK_MSG(jobs_submit(e.st, distill_job, &id, msg, sizeof msg) == JOBS_OK, "%s", msg);
    jobs_job j = wait_job(e.st, id, 0);
    char ckpt[256];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints/job-%lld.safetensors", e.dir, (long long)id);
    snprintf(reference_adapter, sizeof reference_adapter, "%s/adapters/tiny-sr-%lld.safetensors", e.dir, (long long)id);
    int adapter_file = file_exists(reference_adapter), ckpt_left = file_exists(ckpt);
    jobs_adapter_info *list = NULL;
    int n = 0;
    jobs_store_adapter_list(e.st, &list, &n, msg, sizeof msg);
    int64_t adapter_job = n ? list[0].job_id : 0;
    char adapter_name[80] = "", adapter_task[16] = "", adapter_kind[16] = "";
    if (n) {
        snprintf(adapter_name, sizeof adapter_name, "%s", list[0].name);
        snprintf(adapter_task, sizeof adapter_task, "%s", list[0].task);
        snprintf(adapter_kind, sizeof adapter_kind, "%s", list[0].kind);
    }
    for (int i = 0; i < n; i++) jobs_adapter_info_clear(&list[i]);
    free(list);
    jobs_event *ev = NULL;
    int n_ev = 0, progress_rows = 0, results = 0;
    jobs_store_events_since(e.st, id, 0, 1000, &ev, &n_ev, msg, sizeof msg);
    for (int i = 0; i < n_ev; i++) {
        progress_rows += strcmp(ev[i].kind, "progress") == 0;
        results += strcmp(ev[i].kind, "result") == 0;
    }
    jobs_events_free(ev, n_ev);
    /* the test keeps the adapter for the next tests: move it out first */
    char kept[256];
    snprintf(kept, sizeof kept, "/tmp/codid_test_jobs_ref_%d.safetensors", (int)getpid());
    rename(reference_adapter, kept);
    snprintf(reference_adapter, sizeof reference_adapter, "%s", kept);
    env_end(&e);
    CHECK_MSG(j.state == JOBS_SUCCEEDED, "state %s, error %s", jobs_state_name(j.state), j.error ? j.error : "-");
    CHECK_EQ_INT(j.progress.step, 40);
    CHECK_EQ_INT(j.progress.total, 40);
    CHECK(isfinite(j.progress.loss_smooth) && isfinite(j.progress.it_per_s) && j.progress.it_per_s > 0);
    printf("  (%.1f it/s, smoothed loss %.4f)\n", j.progress.it_per_s, j.progress.loss_smooth);
    CHECK_EQ_INT(j.attempts, 1);
    CHECK(j.result && strstr(j.result, "\"adapter_id\":1"));
    CHECK(j.checkpoint == NULL);
    jobs_job_clear(&j);
    CHECK(adapter_file);
    CHECK(!ckpt_left);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(adapter_job, id);
    CHECK_EQ_STR(adapter_name, "tiny-sr");
    CHECK_EQ_STR(adapter_task, "sr");
    CHECK_EQ_STR(adapter_kind, "lite");
    /* the first step, then every JOBS_PROGRESS_EVERY */
    CHECK_EQ_INT(progress_rows, 1 + 40 / JOBS_PROGRESS_EVERY);
    CHECK_EQ_INT(results, 1);
}

TEST(stopped_job_resumes_to_identical_adapter) {
    CHECK_MSG(*reference_adapter, "needs worker_trains_exports_and_registers");
    env e;
    CHECK(env_start(&e, 1) == 0);
    int64_t id = 0;
    char msg[512], ckpt[256], out[256];
    CHECK(jobs_submit(e.st, distill_job, &id, msg, sizeof msg) == JOBS_OK);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints/job-%lld.safetensors", e.dir, (long long)id);
    snprintf(out, sizeof out, "%s/adapters/tiny-sr-%lld.safetensors", e.dir, (long long)id);
    jobs_job j = wait_job(e.st, id, 1);
    jobs_job_clear(&j);
    /* as on SIGTERM: the worker finishes its step, checkpoints, requeues */
    jobs_system_stop(e.sys);
    e.sys = NULL;
    jobs_store *st = NULL;
    CHECK(jobs_store_open(e.dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    jobs_store_job_get(st, id, &j, msg, sizeof msg);
    jobs_store_close(st);
    jobs_state stopped_state = j.state;
    int had_ckpt = file_exists(ckpt), stopped_step = j.progress.step;
    jobs_job_clear(&j);
    env_restart(&e, 1);
    CHECK(e.st);
    j = wait_job(e.st, id, 0);
    /* resumed, not redone: step 1 was run once, and the second run's first
     * step (it records a progress row) came after the checkpoint */
    jobs_event *ev = NULL;
    int n_ev = 0, step_one = 0, states = 0, resumed_step = 0;
    jobs_store_events_since(e.st, id, 0, 1000, &ev, &n_ev, msg, sizeof msg);
    for (int i = 0; i < n_ev; i++) {
        if (strcmp(ev[i].kind, "state") == 0 && strstr(ev[i].payload, "running")) states++;
        if (strcmp(ev[i].kind, "progress") != 0) continue;
        cJSON *p = cJSON_Parse(ev[i].payload);
        int step = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(p, "step"));
        cJSON_Delete(p);
        step_one += step == 1;
        if (states == 2 && !resumed_step) resumed_step = step;
    }
    jobs_events_free(ev, n_ev);
    uint8_t *a = NULL, *b = NULL;
    long na = read_all(reference_adapter, &a), nb = read_all(out, &b);
    int same = na > 0 && na == nb && memcmp(a, b, (size_t)na) == 0;
    free(a);
    free(b);
    env_end(&e);
    CHECK_EQ_INT(stopped_state, JOBS_QUEUED);
    CHECK(had_ckpt);
    CHECK(stopped_step >= 1);
    CHECK_MSG(j.state == JOBS_SUCCEEDED, "state %s, error %s", jobs_state_name(j.state), j.error ? j.error : "-");
    CHECK_EQ_INT(j.attempts, 2);
    jobs_job_clear(&j);
    CHECK_EQ_INT(step_one, 1);
    CHECK_MSG(resumed_step > 1, "the second run began at step %d", resumed_step);
    printf("  (stopped, then resumed with step %d of 40)\n", resumed_step);
    CHECK_MSG(same, "adapter differs from the uninterrupted run (%ld vs %ld bytes)", na, nb);
}

TEST(cancel_running_job_then_evaluate) {
    CHECK_MSG(*reference_adapter, "needs worker_trains_exports_and_registers");
    env e;
    CHECK(env_start(&e, 1) == 0);
    char msg[512], ckpt[256];
    cJSON *reg = NULL;
    CHECK_MSG(jobs_adapter_register(e.st, "ref", reference_adapter, &reg, msg, sizeof msg) == JOBS_OK, "%s", msg);
    const char *task = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(reg, "task"));
    int task_ok = task && strcmp(task, "sr") == 0;
    cJSON_Delete(reg);
    int64_t id = 0, eval = 0;
    CHECK(jobs_submit(e.st,
                      "{\"kind\":\"distill\",\"dataset\":\"tiny\",\"task\":{\"name\":\"sr\"},\"adapter_kind\":\"lite\","
                      "\"steps\":1000000,\"batch_size\":2,\"n_grid\":8,\"checkpoint_every\":2}",
                      &id, msg, sizeof msg) == JOBS_OK);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints/job-%lld.safetensors", e.dir, (long long)id);
    jobs_job j = wait_job(e.st, id, 3);
    jobs_job_clear(&j);
    int had_ckpt = file_exists(ckpt);
    cJSON *after = NULL;
    int rc = jobs_cancel(e.st, id, &after, msg, sizeof msg);
    int flagged = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(after, "cancel_requested"));
    cJSON_Delete(after);
    j = wait_job(e.st, id, 0);
    int ckpt_left = file_exists(ckpt);
    /* the worker is free again: an evaluation of the registered adapter */
    int rc_eval = jobs_submit(e.st,
                              "{\"kind\":\"evaluate\",\"dataset\":\"tiny\",\"adapter\":\"ref\",\"n\":5,"
                              "\"sample_steps\":2,\"seed\":3}",
                              &eval, msg, sizeof msg);
    jobs_job ej = wait_job(e.st, eval, 0);
    cJSON *result = ej.result ? cJSON_Parse(ej.result) : NULL;
    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(result, "metrics");
    double psnr = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(metrics, "psnr"));
    double ssim = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(metrics, "ssim"));
    double n = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(result, "n"));
    cJSON_Delete(result);
    env_end(&e);
    CHECK(task_ok);
    CHECK_EQ_INT(rc, JOBS_OK);
    CHECK(flagged);
    CHECK(had_ckpt);
    CHECK_MSG(j.state == JOBS_CANCELLED, "state %s", jobs_state_name(j.state));
    CHECK(j.progress.step >= 3 && j.progress.step < 1000000);
    CHECK(j.error && strstr(j.error, "cancelled at step"));
    jobs_job_clear(&j);
    CHECK(!ckpt_left);
    CHECK_EQ_INT(rc_eval, JOBS_OK);
    CHECK_MSG(ej.state == JOBS_SUCCEEDED, "evaluate: %s %s", jobs_state_name(ej.state), ej.error ? ej.error : "");
    jobs_job_clear(&ej);
    CHECK_EQ_INT((int)n, 5);
    CHECK(psnr > 0 && psnr <= ENG_PSNR_CAP_DB);
    CHECK(ssim > -1 && ssim <= 1);
    printf("  (evaluate: PSNR %.2f dB, SSIM %.4f on 5 images)\n", psnr, ssim);
}

TEST(pretrain_and_cm2_jobs) {
    CHECK_MSG(*reference_adapter, "needs worker_trains_exports_and_registers");
    env e;
    CHECK(env_start(&e, 1) == 0);
    char msg[512], folder[256], config[300], weights[300];
    CHECK(jobs_adapter_register(e.st, "teacher-ref", reference_adapter, NULL, msg, sizeof msg) == JOBS_OK);
    int64_t pre = 0, cm2 = 0;
    CHECK_MSG(jobs_submit(e.st,
                          "{\"kind\":\"pretrain\",\"dataset\":\"tiny\",\"steps\":3,\"batch_size\":2,"
                          "\"name\":\"base\"}",
                          &pre, msg, sizeof msg) == JOBS_OK,
              "%s", msg);
    CHECK_MSG(jobs_submit(e.st,
                          "{\"kind\":\"cm2\",\"dataset\":\"tiny\",\"teacher\":\"teacher-ref\","
                          "\"task\":{\"name\":\"sr\",\"factor\":2},\"adapter_kind\":\"lite\",\"steps\":3,"
                          "\"batch_size\":2,\"n_grid\":8}",
                          &cm2, msg, sizeof msg) == JOBS_OK,
              "%s", msg);
    jobs_job p = wait_job(e.st, pre, 0), c = wait_job(e.st, cm2, 0);
    snprintf(folder, sizeof folder, "%s/models/base-%lld", e.dir, (long long)pre);
    snprintf(config, sizeof config, "%s/config.json", folder);
    snprintf(weights, sizeof weights, "%s/diffusion_pytorch_model.safetensors", folder);
    int exported = file_exists(config) && file_exists(weights);
    /* the exported model loads */
    eng_model *m = NULL;
    eng_error err;
    int loads = eng_model_load(ctx, folder, &m, &err) == ENG_OK;
    eng_model_free(m);
    jobs_adapter_info a;
    int cm2_registered = jobs_store_adapter_get(e.st, 0, "cm2-sr-2", &a, msg, sizeof msg) == JOBS_OK;
    if (cm2_registered) jobs_adapter_info_clear(&a);
    env_end(&e);
    CHECK_MSG(p.state == JOBS_SUCCEEDED, "pretrain: %s %s", jobs_state_name(p.state), p.error ? p.error : "");
    CHECK(p.result && strstr(p.result, "model_path") && !strstr(p.result, "adapter_id"));
    jobs_job_clear(&p);
    CHECK(exported);
    CHECK(loads);
    CHECK_MSG(c.state == JOBS_SUCCEEDED, "cm2: %s %s", jobs_state_name(c.state), c.error ? c.error : "");
    jobs_job_clear(&c);
    CHECK(cm2_registered);
}

TEST(bad_job_fails_with_a_message) {
    env e;
    CHECK(env_start(&e, 1) == 0);
    char set[128], msg[512];
    snprintf(set, sizeof set, "%s/small.cds", e.dir);
    CHECK(write_dataset(set, 4, 16, 3) == 0);
    CHECK(jobs_dataset_register(e.st, "small", set, "file", NULL, 0, NULL, msg, sizeof msg) == JOBS_OK);
    unlink(set); /* registered, then gone */
    int64_t id = 0;
    CHECK(jobs_submit(e.st, "{\"kind\":\"teacher\",\"dataset\":\"small\",\"task\":{\"name\":\"sr\"},\"steps\":3}", &id,
                      msg, sizeof msg) == JOBS_OK);
    jobs_job j = wait_job(e.st, id, 0);
    env_end(&e);
    CHECK_EQ_INT(j.state, JOBS_FAILED);
    CHECK_MSG(j.error && strstr(j.error, "small"), "error: %s", j.error ? j.error : "(none)");
    jobs_job_clear(&j);
}

int main(void) {
    util_log_set_level(UTIL_LOG_WARN);
    RUN(fresh_database_gets_latest_schema);
    RUN(reopening_is_a_noop);
    RUN(newer_database_refused);
    RUN(not_a_database_refused);
    RUN(damaged_database_refused);
    RUN(locked_database_refused);
    RUN(exclusively_locked_new_database_refused);
    RUN(state_machine);
    RUN(claim_on_empty_queue);
    RUN(concurrent_claims_take_each_job_once);
    RUN(cancel_queued_and_running);
    RUN(success_registers_adapter_once);
    RUN(list_pages_newest_first);
    RUN(events_resume_after_an_id);
    RUN(api_keys_and_job_counts);
    RUN(spec_maps_fields_to_engine_params);
    RUN(spec_errors_name_the_field);
    RUN(submit_checks_references_and_names);
    RUN(start_up_requeues_cleans_and_locks);
    RUN(start_up_gives_up_on_a_job_that_keeps_crashing);

    eng_ctx_params cp;
    eng_ctx_params_init(&cp);
    cp.device = ENG_DEVICE_CPU;
    eng_error err;
    if (eng_ctx_create(&cp, &ctx, &err) != ENG_OK ||
        eng_model_create(ctx, tiny_config, NULL, 11, &model, &err) != ENG_OK) {
        printf("FAIL engine: %s\n", err.msg);
        test_failed_++;
    } else {
        RUN(worker_trains_exports_and_registers);
        RUN(stopped_job_resumes_to_identical_adapter);
        RUN(cancel_running_job_then_evaluate);
        RUN(pretrain_and_cm2_jobs);
        RUN(bad_job_fails_with_a_message);
    }
    if (*reference_adapter) unlink(reference_adapter);
    eng_model_free(model);
    eng_ctx_free(ctx);
    return TEST_SUMMARY();
}
