/*
 * test_store.c - jobs/store*.c: the SQLite store's schema and migrations,
 * its refusal of corrupt, locked and newer databases, the job state machine,
 * concurrent claims, cancellation, success and registration, API keys and
 * job counts.
 */
#include <cjson/cJSON.h>

#include "jobs/jobs.h"
#include "jobs/store.h"
#include "tests/jobs_test.h"
#include "tests/test.h"
#include "util/log.h"

#include <pthread.h>

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

/* A database of schema version 2 (the latest less the columns of step 3)
 * is migrated, keeping its rows: a running job is found and requeued. */
TEST(version_2_database_upgrades) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    int64_t id = add_job(st, "{}");
    jobs_job j;
    CHECK(jobs_store_claim(st, &j, msg, sizeof msg) == JOBS_OK);
    jobs_job_clear(&j);
    jobs_store_close(st);
    CHECK(raw_exec(dir, "ALTER TABLE jobs DROP COLUMN checkpoint_step; ALTER TABLE jobs DROP COLUMN recovered_step;"
                        "ALTER TABLE jobs DROP COLUMN stalled; UPDATE jobs SET recoveries = 2;"
                        "PRAGMA user_version = 2;") == SQLITE_OK);
    int rc = jobs_store_open(dir, 0, &st, msg, sizeof msg), v = -1, n = -1;
    if (rc == JOBS_OK) {
        jobs_store_schema_version(st, &v, msg, sizeof msg);
        jobs_store_requeue_running(st, &n, msg, sizeof msg);
    }
    jobs_state s = rc == JOBS_OK ? state_of(st, id) : (jobs_state)-1;
    jobs_store_close(st);
    rm_tree(dir);
    CHECK_MSG(rc == JOBS_OK, "%s", msg);
    CHECK_EQ_INT(v, JOBS_SCHEMA_VERSION);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(s, JOBS_QUEUED);
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
    jobs_job job;
    jobs_store_job_get(st, id, &job, msg, sizeof msg);
    cJSON *result = job.result ? cJSON_Parse(job.result) : NULL;
    double result_adapter = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(result, "adapter_id"));
    double result_steps = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(result, "steps"));
    int succeeded = job.state == JOBS_SUCCEEDED;
    cJSON_Delete(result);
    jobs_job_clear(&job);
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

int main(void) {
    util_log_set_level(UTIL_LOG_WARN);
    RUN(fresh_database_gets_latest_schema);
    RUN(reopening_is_a_noop);
    RUN(newer_database_refused);
    RUN(version_2_database_upgrades);
    RUN(not_a_database_refused);
    RUN(damaged_database_refused);
    RUN(locked_database_refused);
    RUN(exclusively_locked_new_database_refused);
    RUN(state_machine);
    RUN(claim_on_empty_queue);
    RUN(concurrent_claims_take_each_job_once);
    RUN(cancel_queued_and_running);
    RUN(success_registers_adapter_once);
    RUN(api_keys_and_job_counts);
    return TEST_SUMMARY();
}
