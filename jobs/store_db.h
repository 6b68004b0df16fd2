/*
 * store_db.h - the store's insides, shared by the files that implement
 * store.h and by nothing else: the connection, its prepared statements and
 * the small helpers every query uses.
 *
 * The store is split by what it keeps: store.c opens, migrates and closes
 * the connection and holds these helpers; store_jobs.c the jobs, their
 * state machine and events; store_registry.c the dataset and adapter
 * registries; store_keys.c the API keys. Every statement the store runs is
 * in the one table below, so it is prepared once per connection at open
 * and a reader sees the store's whole SQL in one place.
 *
 * Helpers with a jobs_store take no lock: their callers hold st->lock.
 * They return JOBS_OK or a negative jobs_status with a message in msg.
 */
#ifndef CODID_JOBS_STORE_DB_H
#define CODID_JOBS_STORE_DB_H

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "jobs/store.h"

/* ---- statements ------------------------------------------------------------- */

#define JOB_COLS                                                                          \
    "id, kind, status, params, created_at, started_at, finished_at, error, result, "      \
    "checkpoint, step, total, loss, loss_smooth, lr, it_per_s, eta_s, cancel_requested, " \
    "attempts"
#define DATASET_COLS "id, name, source, path, count, size, channels, split, labelled, skipped, created_at"
#define ADAPTER_COLS "id, name, job_id, path, task, kind, base_hash, metadata, created_at"
#define KEY_COLS     "id, prefix, hash, scope, created_at, COALESCE(revoked_at, 0)"

#define STATEMENTS(X)                                                                                     \
    X(BEGIN, "BEGIN IMMEDIATE")                                                                           \
    X(COMMIT, "COMMIT")                                                                                   \
    X(ROLLBACK, "ROLLBACK")                                                                               \
    X(USER_VERSION, "PRAGMA user_version")                                                                \
    X(JOB_INSERT, "INSERT INTO jobs (kind, params, total, created_at) VALUES (?1, ?2, ?3, ?4)")           \
    X(JOB_GET, "SELECT " JOB_COLS " FROM jobs WHERE id = ?1")                                             \
    X(JOB_LIST, "SELECT " JOB_COLS " FROM jobs WHERE (?1 IS NULL OR status = ?1) "                        \
                "AND (?2 <= 0 OR id < ?2) ORDER BY id DESC LIMIT ?3")                                     \
    X(JOB_CLAIM, "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, ?1), "            \
                 "attempts = attempts + 1 WHERE id = (SELECT id FROM jobs "                               \
                 "WHERE status = 'queued' ORDER BY id LIMIT 1) RETURNING " JOB_COLS)                      \
    X(JOB_STATE, "SELECT status FROM jobs WHERE id = ?1")                                                 \
    X(JOB_TRANSITION, "UPDATE jobs SET status = ?2, "                                                     \
                      "finished_at = CASE WHEN ?2 IN ('succeeded','failed','cancelled') "                 \
                      "THEN ?3 END, error = COALESCE(?4, error), result = COALESCE(?5, result), "         \
                      "checkpoint = CASE WHEN ?2 IN ('succeeded','failed','cancelled') "                  \
                      "THEN NULL ELSE checkpoint END "                                                    \
                      "WHERE id = ?1 AND status = ?6")                                                    \
    X(JOB_REQUEST_CANCEL, "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1 AND status = 'running'")    \
    X(JOB_CANCEL_REQUESTED, "SELECT cancel_requested FROM jobs WHERE id = ?1")                            \
    X(JOB_PROGRESS, "UPDATE jobs SET step = ?2, total = ?3, loss = ?4, loss_smooth = ?5, "                \
                    "lr = ?6, it_per_s = ?7, eta_s = ?8 WHERE id = ?1")                                   \
    X(JOB_SET_CHECKPOINT, "UPDATE jobs SET checkpoint = ?2, checkpoint_step = ?3 WHERE id = ?1")          \
    X(JOB_RUNNING_IDS, "SELECT id FROM jobs WHERE status = 'running' ORDER BY id")                        \
    X(JOB_RECOVERED, "UPDATE jobs SET recoveries = recoveries + 1, recovered_step = checkpoint_step, "    \
                     "stalled = CASE WHEN checkpoint_step > recovered_step THEN 0 ELSE stalled + 1 END "  \
                     "WHERE id = ?1 RETURNING recoveries, stalled, checkpoint_step")                      \
    X(JOB_SUCCEED, "UPDATE jobs SET status = 'succeeded', finished_at = ?2, checkpoint = NULL, result = " \
                   "CASE WHEN ?4 IS NULL THEN json(?3) ELSE json_set(?3, '$.adapter_id', ?4) END "        \
                   "WHERE id = ?1 AND status = 'running'")                                                \
    X(JOB_REFERENCING, "SELECT id FROM jobs WHERE status IN ('queued','running') AND id <> ?4 "           \
                       "AND json_extract(params, '$.' || ?1) IN (?2, ?3, CAST(?3 AS TEXT)) "              \
                       "ORDER BY id LIMIT 1")                                                             \
    X(EVENT_STATE, "INSERT INTO job_events (job_id, ts, kind, payload) "                                  \
                   "VALUES (?1, ?2, 'state', json_object('status', ?3, 'error', ?4))")                    \
    X(EVENT_PROGRESS, "INSERT INTO job_events (job_id, ts, kind, payload) SELECT id, ?2, "                \
                      "'progress', json_object('step', step, 'total', total, 'loss', loss, "              \
                      "'loss_smooth', loss_smooth, 'lr', lr, 'it_per_s', it_per_s, "                      \
                      "'eta_s', eta_s) FROM jobs WHERE id = ?1")                                          \
    X(EVENT_RESULT, "INSERT INTO job_events (job_id, ts, kind, payload) "                                 \
                    "SELECT id, ?2, 'result', result FROM jobs WHERE id = ?1")                            \
    X(EVENTS_SINCE, "SELECT id, job_id, ts, kind, payload FROM job_events "                               \
                    "WHERE job_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3")                                 \
    X(DATASET_INSERT, "INSERT INTO datasets (name, source, path, count, size, channels, split, "          \
                      "labelled, skipped, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")  \
    X(DATASET_GET, "SELECT " DATASET_COLS " FROM datasets WHERE (?1 > 0 AND id = ?1) OR "                 \
                   "(?1 <= 0 AND name = ?2)")                                                             \
    X(DATASET_LIST, "SELECT " DATASET_COLS " FROM datasets ORDER BY id")                                  \
    X(DATASET_DELETE, "DELETE FROM datasets WHERE id = ?1")                                               \
    X(ADAPTER_INSERT, "INSERT INTO adapters (name, job_id, path, task, kind, base_hash, "                 \
                      "metadata, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, json(?7), ?8)")              \
    X(ADAPTER_GET, "SELECT " ADAPTER_COLS " FROM adapters WHERE (?1 > 0 AND id = ?1) OR "                 \
                   "(?1 <= 0 AND name = ?2)")                                                             \
    X(ADAPTER_LIST, "SELECT " ADAPTER_COLS " FROM adapters ORDER BY id")                                  \
    X(ADAPTER_DELETE, "DELETE FROM adapters WHERE id = ?1")                                               \
    X(KEY_INSERT, "INSERT INTO api_keys (prefix, hash, scope, created_at) VALUES (?1, ?2, ?3, ?4)")       \
    X(KEY_FIND, "SELECT " KEY_COLS " FROM api_keys WHERE prefix = ?1 AND revoked_at IS NULL")             \
    X(KEY_COUNT, "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL")                                \
    X(KEY_LIST, "SELECT " KEY_COLS " FROM api_keys ORDER BY id")                                          \
    X(KEY_REVOKE, "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")             \
    X(JOB_COUNTS, "SELECT status, count(*) FROM jobs GROUP BY status")

#define AS_ENUM(name, sql) STMT_##name,
enum { STATEMENTS(AS_ENUM) N_STATEMENTS };
#undef AS_ENUM

struct jobs_store {
    sqlite3 *db;
    sqlite3_stmt *stmt[N_STATEMENTS];
    pthread_mutex_t lock;
    char data_dir[4096];
};

/* ---- helpers (store.c) ------------------------------------------------------ */

/* An SQLite result code as a jobs_status. */
int jobs_db_code_of(int sqlite_rc);
/* A failed SQLite call as a jobs_status with SQLite's words in msg. */
int jobs_db_fail(jobs_store *st, int sqlite_rc, const char *what, char *msg, size_t msgsz);
/* Statement `which` ready to bind: reset, bindings cleared. */
sqlite3_stmt *jobs_db_stmt(jobs_store *st, int which);
/* NULL, and a non-finite double, bind as SQL NULL. */
void jobs_db_bind_text(sqlite3_stmt *s, int i, const char *v);
void jobs_db_bind_real(sqlite3_stmt *s, int i, double v);
/* Column i as a malloc'ed copy into *out (NULL for NULL; -1 when out of
 * memory), copied into dst ("" for NULL), or a double (NaN for NULL). */
int jobs_db_col_dup(sqlite3_stmt *s, int i, char **out);
void jobs_db_col_copy(sqlite3_stmt *s, int i, char *dst, size_t dstsz);
double jobs_db_col_real(sqlite3_stmt *s, int i);
/* Runs a statement that returns no rows (or whose rows are ignored). */
int jobs_db_run(jobs_store *st, sqlite3_stmt *s, const char *what, char *msg, size_t msgsz);
/* BEGIN IMMEDIATE; jobs_db_finish commits when rc is JOBS_OK, else rolls
 * back and returns rc unchanged. */
int jobs_db_begin(jobs_store *st, char *msg, size_t msgsz);
int jobs_db_finish(jobs_store *st, int rc, char *msg, size_t msgsz);
/* A state event: {"status": to, "error": error or null}. */
int jobs_db_state_event(jobs_store *st, int64_t id, jobs_state to, const char *error, char *msg, size_t msgsz);
/* An event whose payload SQLite copies from the job's row (its progress
 * columns, or its result): STMT_EVENT_PROGRESS or STMT_EVENT_RESULT. */
int jobs_db_row_event(jobs_store *st, int which, int64_t id, char *msg, size_t msgsz);
/* A row reader: the current row of s into *out, 0, or -1 when out of memory
 * (having released what it took). */
typedef int (*jobs_db_reader)(sqlite3_stmt *s, void *out);
/* One row of a single-row query into *out via read(); JOBS_ENOTFOUND when
 * there is none. */
int jobs_db_fetch_one(jobs_store *st, sqlite3_stmt *s, jobs_db_reader read, void *out, const char *what, char *msg,
                      size_t msgsz);
/* Every row of s into a growing array of `size`-byte elements; on failure
 * nothing is returned (clear() releases what each element holds). */
int jobs_db_fetch_all(jobs_store *st, sqlite3_stmt *s, size_t size, jobs_db_reader read, void (*clear)(void *),
                      void **out, int *n, const char *what, char *msg, size_t msgsz);
/* Column 0 as an int, or an int64_t, into *out (for fetch_one/fetch_all). */
int jobs_db_read_int_v(sqlite3_stmt *s, void *out);
int jobs_db_read_id_v(sqlite3_stmt *s, void *out);

/* The adapter row alone, without the lock (store_registry.c): a job's
 * success registers its adapter in the transaction that ends the job. */
int jobs_db_adapter_insert(jobs_store *st, jobs_adapter_info *a, char *msg, size_t msgsz);

#endif
