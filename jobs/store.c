/*
 * store.c - see store.h. All SQL lives in two tables below: the migration
 * steps (the schema's history) and the statements (prepared once per
 * connection at open).
 */
#include "jobs/store.h"
#include "util/clock.h"
#include "util/msg.h"

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- schema ----------------------------------------------------------------- */

/*
 * Step i takes the schema from version i to i + 1 and ends by setting
 * user_version, so a step and its version stamp commit together. Steps are
 * never edited once released: a change is a new step.
 */
static const char *const migrations[] = {
    /* 0 -> 1: the first schema */
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  kind TEXT NOT NULL CHECK (kind IN ('pretrain','distill','teacher','cm2','evaluate')),"
    "  status TEXT NOT NULL DEFAULT 'queued'"
    "    CHECK (status IN ('queued','running','succeeded','failed','cancelled')),"
    "  params TEXT NOT NULL CHECK (json_valid(params)),"
    "  created_at INTEGER NOT NULL,"
    "  started_at INTEGER,"
    "  finished_at INTEGER,"
    "  error TEXT,"
    "  result TEXT CHECK (result IS NULL OR json_valid(result)),"
    "  step INTEGER NOT NULL DEFAULT 0,"
    "  total INTEGER NOT NULL DEFAULT 0,"
    "  loss REAL, loss_smooth REAL, lr REAL, it_per_s REAL, eta_s REAL,"
    "  cancel_requested INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  checkpoint TEXT"
    ");"
    "CREATE INDEX jobs_by_status ON jobs (status, id);"
    "CREATE TABLE job_events ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
    "  ts INTEGER NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('progress','state','result')),"
    "  payload TEXT NOT NULL CHECK (json_valid(payload))"
    ");"
    "CREATE INDEX job_events_by_job ON job_events (job_id, id);"
    "CREATE TABLE datasets ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  source TEXT NOT NULL,"
    "  path TEXT NOT NULL,"
    "  count INTEGER NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  channels INTEGER NOT NULL,"
    "  split TEXT NOT NULL DEFAULT '',"
    "  labelled INTEGER NOT NULL DEFAULT 0,"
    "  skipped INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE adapters ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  name TEXT NOT NULL UNIQUE,"
    "  job_id INTEGER UNIQUE REFERENCES jobs (id) ON DELETE SET NULL,"
    "  path TEXT NOT NULL,"
    "  task TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  base_hash TEXT NOT NULL,"
    "  metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE api_keys ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  prefix TEXT NOT NULL UNIQUE,"
    "  hash TEXT NOT NULL,"
    "  scope TEXT NOT NULL CHECK (scope IN ('generate','admin')),"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER"
    ");"
    "PRAGMA user_version = 1;",
    /* 1 -> 2: how often a job was found running at start-up (a crash each) */
    "ALTER TABLE jobs ADD COLUMN recoveries INTEGER NOT NULL DEFAULT 0;"
    "PRAGMA user_version = 2;",
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))
_Static_assert(N_MIGRATIONS == JOBS_SCHEMA_VERSION, "one migration step per schema version");

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
    X(JOB_SET_CHECKPOINT, "UPDATE jobs SET checkpoint = ?2 WHERE id = ?1")                                \
    X(JOB_RUNNING_IDS, "SELECT id FROM jobs WHERE status = 'running' ORDER BY id")                        \
    X(JOB_RECOVERED, "UPDATE jobs SET recoveries = recoveries + 1 WHERE id = ?1 RETURNING recoveries")    \
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
#define AS_TEXT(name, sql) sql,
enum { STATEMENTS(AS_ENUM) N_STATEMENTS };
static const char *const statement_sql[] = {STATEMENTS(AS_TEXT)};
#undef AS_ENUM
#undef AS_TEXT

struct jobs_store {
    sqlite3 *db;
    sqlite3_stmt *stmt[N_STATEMENTS];
    pthread_mutex_t lock;
    char data_dir[4096];
};

/* ---- small helpers ------------------------------------------------------------ */

const char *jobs_strerror(int code) {
    switch (code) {
        case JOBS_OK: return "ok";
        case JOBS_ERR: return "database error";
        case JOBS_ENOTFOUND: return "not found";
        case JOBS_ESTATE: return "not allowed in this state";
        case JOBS_EINVAL: return "invalid argument";
        case JOBS_EEXIST: return "already exists";
        case JOBS_EBUSY: return "database is locked";
        case JOBS_ECORRUPT: return "database is corrupt";
        case JOBS_ETOONEW: return "database is newer than this codid";
        case JOBS_EINUSE: return "in use by a job";
        default: return "unknown error";
    }
}

static const char *const state_names[] = {"queued", "running", "succeeded", "failed", "cancelled"};

const char *jobs_state_name(jobs_state s) {
    return (unsigned)s < sizeof state_names / sizeof state_names[0] ? state_names[s] : "unknown";
}

int jobs_state_from_name(const char *name, jobs_state *out) {
    for (size_t i = 0; name && i < sizeof state_names / sizeof state_names[0]; i++)
        if (strcmp(name, state_names[i]) == 0) {
            *out = (jobs_state)i;
            return 0;
        }
    return -1;
}

int jobs_state_is_final(jobs_state s) {
    return s == JOBS_SUCCEEDED || s == JOBS_FAILED || s == JOBS_CANCELLED;
}

static int code_of(int sqlite_rc) {
    switch (sqlite_rc & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED: return JOBS_EBUSY;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB: return JOBS_ECORRUPT;
        case SQLITE_CONSTRAINT:
            return sqlite_rc == SQLITE_CONSTRAINT_UNIQUE || sqlite_rc == SQLITE_CONSTRAINT_PRIMARYKEY ? JOBS_EEXIST
                                                                                                      : JOBS_EINVAL;
        default: return JOBS_ERR;
    }
}

/* A failed SQLite call as a jobs_status with SQLite's words in msg. */
static int db_fail(jobs_store *st, int sqlite_rc, const char *what, char *msg, size_t msgsz) {
    return util_msg(msg, msgsz, code_of(sqlite_rc), "%s: %s", what,
                    st && st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(sqlite_rc));
}

/* A statement ready to bind: reset, bindings cleared. */
static sqlite3_stmt *stmt(jobs_store *st, int which) {
    sqlite3_stmt *s = st->stmt[which];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v) {
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

static void bind_real(sqlite3_stmt *s, int i, double v) {
    if (isfinite(v))
        sqlite3_bind_double(s, i, v);
    else
        sqlite3_bind_null(s, i);
}

static char *col_dup(sqlite3_stmt *s, int i) {
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? strdup((const char *)t) : NULL;
}

static void col_copy(sqlite3_stmt *s, int i, char *dst, size_t dstsz) {
    const unsigned char *t = sqlite3_column_text(s, i);
    snprintf(dst, dstsz, "%s", t ? (const char *)t : "");
}

static double col_real(sqlite3_stmt *s, int i) {
    return sqlite3_column_type(s, i) == SQLITE_NULL ? NAN : sqlite3_column_double(s, i);
}

/* Runs a statement that returns no rows (or whose rows are ignored). */
static int run(jobs_store *st, sqlite3_stmt *s, const char *what, char *msg, size_t msgsz) {
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? JOBS_OK : db_fail(st, rc, what, msg, msgsz);
}

static int begin(jobs_store *st, char *msg, size_t msgsz) {
    return run(st, stmt(st, STMT_BEGIN), "begin", msg, msgsz);
}

static int commit(jobs_store *st, char *msg, size_t msgsz) {
    int rc = run(st, stmt(st, STMT_COMMIT), "commit", msg, msgsz);
    if (rc != JOBS_OK) run(st, stmt(st, STMT_ROLLBACK), "rollback", NULL, 0);
    return rc;
}

/* Ends a transaction: commits when rc is JOBS_OK, else rolls back and
 * returns rc unchanged. */
static int finish(jobs_store *st, int rc, char *msg, size_t msgsz) {
    if (rc == JOBS_OK) return commit(st, msg, msgsz);
    run(st, stmt(st, STMT_ROLLBACK), "rollback", NULL, 0);
    return rc;
}

/* A state event: {"status": to, "error": error or null}. */
static int state_event(jobs_store *st, int64_t id, jobs_state to, const char *error, char *msg, size_t msgsz) {
    sqlite3_stmt *s = stmt(st, STMT_EVENT_STATE);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, util_wall_ms());
    bind_text(s, 3, jobs_state_name(to));
    bind_text(s, 4, error);
    return run(st, s, "job event", msg, msgsz);
}

/* An event whose payload SQLite copies from the job's row (its progress
 * columns, or its result). */
static int row_event(jobs_store *st, int which, int64_t id, char *msg, size_t msgsz) {
    sqlite3_stmt *s = stmt(st, which);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, util_wall_ms());
    return run(st, s, "job event", msg, msgsz);
}

/* ---- open, migrate, close ------------------------------------------------------- */

static int pragma_text(jobs_store *st, const char *sql, char *out, size_t outsz, char *msg, size_t msgsz) {
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        col_copy(s, 0, out, outsz);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        *out = '\0';
        rc = SQLITE_OK;
    }
    int code = rc == SQLITE_OK ? JOBS_OK : db_fail(st, rc, sql, msg, msgsz);
    sqlite3_finalize(s);
    return code;
}

/* quick_check reads every page: a damaged file is refused here rather than
 * failing some later query in a worker thread. */
static int check_integrity(jobs_store *st, const char *path, char *msg, size_t msgsz) {
    char result[512], why[512];
    int rc = pragma_text(st, "PRAGMA quick_check", result, sizeof result, why, sizeof why);
    if (rc == JOBS_ECORRUPT)
        return util_msg(msg, msgsz, rc,
                        "%s is not a usable SQLite database (%s); move it away to start afresh "
                        "or restore it from a backup",
                        path, why);
    if (rc == JOBS_EBUSY)
        return util_msg(msg, msgsz, rc, "%s is locked by another process (still after the busy timeout): %s", path,
                        why);
    if (rc != JOBS_OK) return util_msg(msg, msgsz, rc, "%s: %s", path, why);
    for (char *p = result; *p; p++)
        if (*p == '\n') *p = ' ';
    if (strcmp(result, "ok") != 0)
        return util_msg(msg, msgsz, JOBS_ECORRUPT, "%s fails its integrity check (%.200s); restore it from a backup",
                        path, result);
    return JOBS_OK;
}

static int read_version(jobs_store *st, int *out, char *msg, size_t msgsz) {
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        *out = sqlite3_column_int(s, 0);
        rc = SQLITE_OK;
    }
    int code = rc == SQLITE_OK ? JOBS_OK : db_fail(st, rc, "user_version", msg, msgsz);
    sqlite3_finalize(s);
    return code;
}

static int exec(jobs_store *st, const char *sql, char *msg, size_t msgsz) {
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? JOBS_OK : db_fail(st, rc, "migration", msg, msgsz);
}

/* One step per transaction; the version is read again under the write lock,
 * so two processes opening a fresh file at once migrate it once. */
static int migrate(jobs_store *st, const char *path, char *msg, size_t msgsz) {
    for (;;) {
        int rc = exec(st, "BEGIN IMMEDIATE", msg, msgsz), version = 0;
        if (rc == JOBS_EBUSY)
            return util_msg(msg, msgsz, rc, "%s is locked by another process (still after the busy timeout)", path);
        if (rc != JOBS_OK) return rc;
        rc = read_version(st, &version, msg, msgsz);
        if (rc == JOBS_OK && version > N_MIGRATIONS)
            rc = util_msg(msg, msgsz, JOBS_ETOONEW,
                          "%s has schema version %d; this codid knows up to %d: run a newer codid "
                          "or start from another data directory",
                          path, version, N_MIGRATIONS);
        if (rc == JOBS_OK && version < N_MIGRATIONS) {
            rc = exec(st, migrations[version], msg, msgsz);
            int now = 0;
            if (rc == JOBS_OK) rc = read_version(st, &now, msg, msgsz);
            if (rc == JOBS_OK && now != version + 1)
                rc = util_msg(msg, msgsz, JOBS_ERR, "migration %d left user_version at %d", version + 1, now);
        }
        if (rc != JOBS_OK) {
            exec(st, "ROLLBACK", NULL, 0);
            return rc;
        }
        if ((rc = exec(st, "COMMIT", msg, msgsz)) != JOBS_OK) return rc;
        if (version >= N_MIGRATIONS) return JOBS_OK;
    }
}

int jobs_store_open(const char *data_dir, int busy_ms, jobs_store **out, char *msg, size_t msgsz) {
    jobs_store *st = calloc(1, sizeof *st);
    if (!st) return util_msg(msg, msgsz, JOBS_ERR, "out of memory");
    char path[sizeof st->data_dir + sizeof JOBS_DB_NAME + 1];
    if (snprintf(st->data_dir, sizeof st->data_dir, "%s", data_dir) >= (int)sizeof st->data_dir) {
        free(st);
        return util_msg(msg, msgsz, JOBS_EINVAL, "data directory path too long");
    }
    snprintf(path, sizeof path, "%s/%s", data_dir, JOBS_DB_NAME);
    pthread_mutex_init(&st->lock, NULL);

    int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    int code = JOBS_OK;
    if (rc != SQLITE_OK) {
        code = util_msg(msg, msgsz, code_of(rc), "cannot open %s: %s", path,
                        st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, busy_ms > 0 ? busy_ms : JOBS_BUSY_TIMEOUT_MS);
    if ((code = check_integrity(st, path, msg, msgsz)) != JOBS_OK) goto fail;

    char mode[32];
    if ((code = pragma_text(st, "PRAGMA journal_mode = WAL", mode, sizeof mode, msg, msgsz)) != JOBS_OK) goto fail;
    if (strcmp(mode, "wal") != 0) {
        code = util_msg(msg, msgsz, JOBS_ERR, "%s: cannot switch to WAL (journal mode %s)", path, mode);
        goto fail;
    }
    /* NORMAL is durable across process crashes in WAL mode; a power cut may
     * lose the last commits, never consistency, and everything the store
     * holds is re-derived by re-running from the job's checkpoint. */
    if ((code = exec(st, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL", msg, msgsz)) != JOBS_OK) goto fail;
    if ((code = migrate(st, path, msg, msgsz)) != JOBS_OK) goto fail;

    for (int i = 0; i < N_STATEMENTS; i++) {
        rc = sqlite3_prepare_v3(st->db, statement_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL);
        if (rc != SQLITE_OK) {
            code = util_msg(msg, msgsz, code_of(rc), "%s: cannot prepare \"%s\": %s", path, statement_sql[i],
                            sqlite3_errmsg(st->db));
            goto fail;
        }
    }
    *out = st;
    return JOBS_OK;
fail:
    jobs_store_close(st);
    return code;
}

void jobs_store_close(jobs_store *st) {
    if (!st) return;
    for (int i = 0; i < N_STATEMENTS; i++) sqlite3_finalize(st->stmt[i]);
    sqlite3_close(st->db);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

const char *jobs_store_data_dir(const jobs_store *st) {
    return st->data_dir;
}

int jobs_store_schema_version(jobs_store *st, int *out, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    int rc = read_version(st, out, msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

/* ---- jobs ------------------------------------------------------------------------- */

void jobs_job_clear(jobs_job *j) {
    if (!j) return;
    free(j->params);
    free(j->error);
    free(j->result);
    free(j->checkpoint);
    memset(j, 0, sizeof *j);
}

static void read_job(sqlite3_stmt *s, jobs_job *j) {
    memset(j, 0, sizeof *j);
    j->id = sqlite3_column_int64(s, 0);
    col_copy(s, 1, j->kind, sizeof j->kind);
    jobs_state_from_name((const char *)sqlite3_column_text(s, 2), &j->state);
    j->params = col_dup(s, 3);
    j->created_ms = sqlite3_column_int64(s, 4);
    j->started_ms = sqlite3_column_int64(s, 5);
    j->finished_ms = sqlite3_column_int64(s, 6);
    j->error = col_dup(s, 7);
    j->result = col_dup(s, 8);
    j->checkpoint = col_dup(s, 9);
    j->progress.step = sqlite3_column_int(s, 10);
    j->progress.total = sqlite3_column_int(s, 11);
    j->progress.loss = col_real(s, 12);
    j->progress.loss_smooth = col_real(s, 13);
    j->progress.lr = col_real(s, 14);
    j->progress.it_per_s = col_real(s, 15);
    j->progress.eta_s = col_real(s, 16);
    j->cancel_requested = sqlite3_column_int(s, 17);
    j->attempts = sqlite3_column_int(s, 18);
}

int jobs_store_job_insert(jobs_store *st, const char *kind, const char *params_json, int total, int64_t *id, char *msg,
                          size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    int rc = begin(st, msg, msgsz);
    if (rc == JOBS_OK) {
        sqlite3_stmt *s = stmt(st, STMT_JOB_INSERT);
        bind_text(s, 1, kind);
        bind_text(s, 2, params_json);
        sqlite3_bind_int(s, 3, total);
        sqlite3_bind_int64(s, 4, util_wall_ms());
        rc = run(st, s, "insert job", msg, msgsz);
        if (rc == JOBS_OK) {
            *id = sqlite3_last_insert_rowid(st->db);
            rc = state_event(st, *id, JOBS_QUEUED, NULL, msg, msgsz);
        }
        rc = finish(st, rc, msg, msgsz);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

/* One row of a single-row query into *out via read(); JOBS_ENOTFOUND when
 * there is none. */
static int fetch_one(jobs_store *st, sqlite3_stmt *s, void (*read)(sqlite3_stmt *, void *), void *out, const char *what,
                     char *msg, size_t msgsz) {
    int rc = sqlite3_step(s), code;
    if (rc == SQLITE_ROW) {
        read(s, out);
        code = JOBS_OK;
    } else if (rc == SQLITE_DONE) {
        code = util_msg(msg, msgsz, JOBS_ENOTFOUND, "%s not found", what);
    } else {
        code = db_fail(st, rc, what, msg, msgsz);
    }
    sqlite3_reset(s);
    return code;
}

static void read_job_v(sqlite3_stmt *s, void *out) {
    read_job(s, out);
}

int jobs_store_job_get(jobs_store *st, int64_t id, jobs_job *out, char *msg, size_t msgsz) {
    char what[48];
    snprintf(what, sizeof what, "job %lld", (long long)id);
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = stmt(st, STMT_JOB_GET);
    sqlite3_bind_int64(s, 1, id);
    int rc = fetch_one(st, s, read_job_v, out, what, msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

/* Every row of s into a growing array of `size`-byte elements; on failure
 * nothing is returned (clear() releases what each element holds). */
static int fetch_all(jobs_store *st, sqlite3_stmt *s, size_t size, void (*read)(sqlite3_stmt *, void *),
                     void (*clear)(void *), void **out, int *n, const char *what, char *msg, size_t msgsz) {
    char *items = NULL;
    int count = 0, cap = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            char *grown = realloc(items, (size_t)cap * size);
            if (!grown) {
                rc = SQLITE_NOMEM;
                break;
            }
            items = grown;
        }
        read(s, items + (size_t)count++ * size);
    }
    sqlite3_reset(s);
    *out = NULL;
    *n = 0;
    if (rc != SQLITE_DONE) {
        for (int i = 0; clear && i < count; i++) clear(items + (size_t)i * size);
        free(items);
        return db_fail(st, rc, what, msg, msgsz);
    }
    *out = items;
    *n = count;
    return JOBS_OK;
}

static void clear_job_v(void *p) {
    jobs_job_clear(p);
}

int jobs_store_job_list(jobs_store *st, int state, int64_t before_id, int limit, jobs_job **out, int *n, char *msg,
                        size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = stmt(st, STMT_JOB_LIST);
    bind_text(s, 1, state >= 0 ? jobs_state_name((jobs_state)state) : NULL);
    sqlite3_bind_int64(s, 2, before_id);
    sqlite3_bind_int(s, 3, limit > 0 ? limit : 1);
    void *items = NULL;
    int rc = fetch_all(st, s, sizeof(jobs_job), read_job_v, clear_job_v, &items, n, "list jobs", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    *out = items;
    return rc;
}

int jobs_store_claim(jobs_store *st, jobs_job *out, char *msg, size_t msgsz) {
    jobs_job job;
    pthread_mutex_lock(&st->lock);
    int rc = begin(st, msg, msgsz);
    if (rc == JOBS_OK) {
        sqlite3_stmt *s = stmt(st, STMT_JOB_CLAIM);
        sqlite3_bind_int64(s, 1, util_wall_ms());
        int claimed = rc = fetch_one(st, s, read_job_v, &job, "queued job", msg, msgsz);
        if (rc == JOBS_OK) rc = state_event(st, job.id, JOBS_RUNNING, NULL, msg, msgsz);
        rc = finish(st, rc, msg, msgsz);
        if (claimed == JOBS_OK && rc != JOBS_OK) jobs_job_clear(&job);
    }
    pthread_mutex_unlock(&st->lock);
    if (rc == JOBS_OK) *out = job;
    return rc;
}

static int transition_allowed(jobs_state from, jobs_state to) {
    switch (from) {
        case JOBS_QUEUED: return to == JOBS_RUNNING || to == JOBS_CANCELLED;
        case JOBS_RUNNING:
            return to == JOBS_QUEUED || to == JOBS_SUCCEEDED || to == JOBS_FAILED || to == JOBS_CANCELLED;
        default: return 0;
    }
}

/* Why a guarded UPDATE of job id changed nothing. */
static int state_mismatch(jobs_store *st, int64_t id, jobs_state expected, char *msg, size_t msgsz) {
    sqlite3_stmt *s = stmt(st, STMT_JOB_STATE);
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s), code;
    if (rc == SQLITE_ROW)
        code = util_msg(msg, msgsz, JOBS_ESTATE, "job %lld is %s, not %s", (long long)id,
                        (const char *)sqlite3_column_text(s, 0), jobs_state_name(expected));
    else if (rc == SQLITE_DONE)
        code = util_msg(msg, msgsz, JOBS_ENOTFOUND, "job %lld not found", (long long)id);
    else
        code = db_fail(st, rc, "job state", msg, msgsz);
    sqlite3_reset(s);
    return code;
}

static int transition_locked(jobs_store *st, int64_t id, jobs_state from, jobs_state to, const char *error,
                             const char *result_json, char *msg, size_t msgsz) {
    sqlite3_stmt *s = stmt(st, STMT_JOB_TRANSITION);
    sqlite3_bind_int64(s, 1, id);
    bind_text(s, 2, jobs_state_name(to));
    sqlite3_bind_int64(s, 3, util_wall_ms());
    bind_text(s, 4, error);
    bind_text(s, 5, result_json);
    bind_text(s, 6, jobs_state_name(from));
    int rc = run(st, s, "job transition", msg, msgsz);
    if (rc == JOBS_OK && sqlite3_changes(st->db) == 0) rc = state_mismatch(st, id, from, msg, msgsz);
    if (rc == JOBS_OK) rc = state_event(st, id, to, error, msg, msgsz);
    return rc;
}

int jobs_store_transition(jobs_store *st, int64_t id, jobs_state from, jobs_state to, const char *error,
                          const char *result_json, char *msg, size_t msgsz) {
    if (!transition_allowed(from, to))
        return util_msg(msg, msgsz, JOBS_ESTATE, "a job cannot go from %s to %s", jobs_state_name(from),
                        jobs_state_name(to));
    pthread_mutex_lock(&st->lock);
    int rc = begin(st, msg, msgsz);
    if (rc == JOBS_OK) rc = finish(st, transition_locked(st, id, from, to, error, result_json, msg, msgsz), msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_cancel(jobs_store *st, int64_t id, jobs_state *state, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    int rc = begin(st, msg, msgsz);
    if (rc == JOBS_OK) {
        rc = transition_locked(st, id, JOBS_QUEUED, JOBS_CANCELLED, "cancelled while queued", NULL, msg, msgsz);
        if (rc == JOBS_OK) {
            *state = JOBS_CANCELLED;
        } else if (rc == JOBS_ESTATE) {
            sqlite3_stmt *s = stmt(st, STMT_JOB_REQUEST_CANCEL);
            sqlite3_bind_int64(s, 1, id);
            rc = run(st, s, "cancel job", msg, msgsz);
            if (rc == JOBS_OK && sqlite3_changes(st->db) == 0) rc = state_mismatch(st, id, JOBS_RUNNING, msg, msgsz);
            if (rc == JOBS_OK) *state = JOBS_RUNNING;
        }
        rc = finish(st, rc, msg, msgsz);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static void read_int_v(sqlite3_stmt *s, void *out) {
    *(int *)out = sqlite3_column_int(s, 0);
}

int jobs_store_cancel_requested(jobs_store *st, int64_t id, int *requested, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = stmt(st, STMT_JOB_CANCEL_REQUESTED);
    sqlite3_bind_int64(s, 1, id);
    int rc = fetch_one(st, s, read_int_v, requested, "job", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_progress(jobs_store *st, int64_t id, const jobs_progress *p, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    int rc = begin(st, msg, msgsz);
    if (rc == JOBS_OK) {
        sqlite3_stmt *s = stmt(st, STMT_JOB_PROGRESS);
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int(s, 2, p->step);
        sqlite3_bind_int(s, 3, p->total);
        bind_real(s, 4, p->loss);
        bind_real(s, 5, p->loss_smooth);
        bind_real(s, 6, p->lr);
        bind_real(s, 7, p->it_per_s);
        bind_real(s, 8, p->eta_s);
        rc = run(st, s, "job progress", msg, msgsz);
        if (rc == JOBS_OK && sqlite3_changes(st->db) == 0)
            rc = util_msg(msg, msgsz, JOBS_ENOTFOUND, "job %lld not found", (long long)id);
        if (rc == JOBS_OK) rc = row_event(st, STMT_EVENT_PROGRESS, id, msg, msgsz);
        rc = finish(st, rc, msg, msgsz);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_set_checkpoint(jobs_store *st, int64_t id, const char *path, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = stmt(st, STMT_JOB_SET_CHECKPOINT);
    sqlite3_bind_int64(s, 1, id);
    bind_text(s, 2, path);
    int rc = run(st, s, "job checkpoint", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static void read_id_v(sqlite3_stmt *s, void *out) {
    *(int64_t *)out = sqlite3_column_int64(s, 0);
}

int jobs_store_requeue_running(jobs_store *st, int *n, char *msg, size_t msgsz) {
    *n = 0;
    pthread_mutex_lock(&st->lock);
    int rc = begin(st, msg, msgsz);
    if (rc == JOBS_OK) {
        void *ids = NULL;
        int count = 0;
        rc = fetch_all(st, stmt(st, STMT_JOB_RUNNING_IDS), sizeof(int64_t), read_id_v, NULL, &ids, &count,
                       "running jobs", msg, msgsz);
        for (int i = 0; rc == JOBS_OK && i < count; i++) {
            int64_t id = ((int64_t *)ids)[i], times = 0;
            sqlite3_stmt *s = stmt(st, STMT_JOB_RECOVERED);
            sqlite3_bind_int64(s, 1, id);
            rc = fetch_one(st, s, read_id_v, &times, "job recoveries", msg, msgsz);
            if (rc != JOBS_OK) break;
            /* a job that keeps taking the daemon down is not tried forever */
            char why[160];
            snprintf(why, sizeof why,
                     "the daemon stopped without a shutdown %lld times while this job ran "
                     "(a crash, kill -9 or out of memory): not retried",
                     (long long)times);
            int give_up = times > JOBS_MAX_RECOVERIES;
            rc = transition_locked(st, id, JOBS_RUNNING, give_up ? JOBS_FAILED : JOBS_QUEUED, give_up ? why : NULL,
                                   NULL, msg, msgsz);
            if (rc == JOBS_OK && !give_up) (*n)++;
        }
        free(ids);
        rc = finish(st, rc, msg, msgsz);
        if (rc != JOBS_OK) *n = 0;
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_job_referencing(jobs_store *st, const char *field, const char *name, int64_t id, int64_t except_id,
                               int64_t *job_id, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = stmt(st, STMT_JOB_REFERENCING);
    bind_text(s, 1, field);
    bind_text(s, 2, name);
    if (id > 0) sqlite3_bind_int64(s, 3, id);
    sqlite3_bind_int64(s, 4, except_id);
    *job_id = 0;
    int rc = fetch_one(st, s, read_id_v, job_id, "job", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc == JOBS_ENOTFOUND ? JOBS_OK : rc;
}

static void read_event_v(sqlite3_stmt *s, void *out) {
    jobs_event *e = out;
    e->id = sqlite3_column_int64(s, 0);
    e->job_id = sqlite3_column_int64(s, 1);
    e->ts_ms = sqlite3_column_int64(s, 2);
    col_copy(s, 3, e->kind, sizeof e->kind);
    e->payload = col_dup(s, 4);
}

static void clear_event_v(void *p) {
    free(((jobs_event *)p)->payload);
}

int jobs_store_events_since(jobs_store *st, int64_t job_id, int64_t after_id, int limit, jobs_event **out, int *n,
                            char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = stmt(st, STMT_EVENTS_SINCE);
    sqlite3_bind_int64(s, 1, job_id);
    sqlite3_bind_int64(s, 2, after_id);
    sqlite3_bind_int(s, 3, limit > 0 ? limit : 1);
    void *items = NULL;
    int rc = fetch_all(st, s, sizeof(jobs_event), read_event_v, clear_event_v, &items, n, "job events", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    *out = items;
    return rc;
}

void jobs_events_free(jobs_event *ev, int n) {
    for (int i = 0; ev && i < n; i++) free(ev[i].payload);
    free(ev);
}

/* ---- datasets ------------------------------------------------------------------------ */

void jobs_dataset_info_clear(jobs_dataset_info *d) {
    if (!d) return;
    free(d->path);
    memset(d, 0, sizeof *d);
}

static void read_dataset_v(sqlite3_stmt *s, void *out) {
    jobs_dataset_info *d = out;
    memset(d, 0, sizeof *d);
    d->id = sqlite3_column_int64(s, 0);
    col_copy(s, 1, d->name, sizeof d->name);
    col_copy(s, 2, d->source, sizeof d->source);
    d->path = col_dup(s, 3);
    d->count = sqlite3_column_int(s, 4);
    d->size = sqlite3_column_int(s, 5);
    d->channels = sqlite3_column_int(s, 6);
    col_copy(s, 7, d->split, sizeof d->split);
    d->labelled = sqlite3_column_int(s, 8);
    d->skipped = sqlite3_column_int(s, 9);
    d->created_ms = sqlite3_column_int64(s, 10);
}

int jobs_store_dataset_add(jobs_store *st, jobs_dataset_info *d, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = stmt(st, STMT_DATASET_INSERT);
    d->created_ms = util_wall_ms();
    bind_text(s, 1, d->name);
    bind_text(s, 2, d->source);
    bind_text(s, 3, d->path);
    sqlite3_bind_int(s, 4, d->count);
    sqlite3_bind_int(s, 5, d->size);
    sqlite3_bind_int(s, 6, d->channels);
    bind_text(s, 7, d->split);
    sqlite3_bind_int(s, 8, d->labelled);
    sqlite3_bind_int(s, 9, d->skipped);
    sqlite3_bind_int64(s, 10, d->created_ms);
    int rc = run(st, s, "add dataset", msg, msgsz);
    if (rc == JOBS_OK)
        d->id = sqlite3_last_insert_rowid(st->db);
    else if (rc == JOBS_EEXIST)
        util_msg(msg, msgsz, rc, "a dataset named '%s' exists already", d->name);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static int get_by(jobs_store *st, int which, const char *noun, int64_t id, const char *name,
                  void (*read)(sqlite3_stmt *, void *), void *out, char *msg, size_t msgsz) {
    char what[JOBS_NAME_MAX + 48];
    if (id > 0)
        snprintf(what, sizeof what, "%s %lld", noun, (long long)id);
    else
        snprintf(what, sizeof what, "%s '%.64s'", noun, name ? name : "");
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = stmt(st, which);
    sqlite3_bind_int64(s, 1, id);
    bind_text(s, 2, name ? name : "");
    int rc = fetch_one(st, s, read, out, what, msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_dataset_get(jobs_store *st, int64_t id, const char *name, jobs_dataset_info *out, char *msg,
                           size_t msgsz) {
    return get_by(st, STMT_DATASET_GET, "dataset", id, name, read_dataset_v, out, msg, msgsz);
}

static void clear_dataset_v(void *p) {
    jobs_dataset_info_clear(p);
}

int jobs_store_dataset_list(jobs_store *st, jobs_dataset_info **out, int *n, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    void *items = NULL;
    int rc = fetch_all(st, stmt(st, STMT_DATASET_LIST), sizeof(jobs_dataset_info), read_dataset_v, clear_dataset_v,
                       &items, n, "list datasets", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    *out = items;
    return rc;
}

static int delete_row(jobs_store *st, int which, const char *noun, int64_t id, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = stmt(st, which);
    sqlite3_bind_int64(s, 1, id);
    int rc = run(st, s, noun, msg, msgsz);
    if (rc == JOBS_OK && sqlite3_changes(st->db) == 0)
        rc = util_msg(msg, msgsz, JOBS_ENOTFOUND, "%s %lld not found", noun, (long long)id);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_dataset_delete(jobs_store *st, int64_t id, char *msg, size_t msgsz) {
    return delete_row(st, STMT_DATASET_DELETE, "dataset", id, msg, msgsz);
}

/* ---- adapters ------------------------------------------------------------------------ */

void jobs_adapter_info_clear(jobs_adapter_info *a) {
    if (!a) return;
    free(a->path);
    free(a->metadata);
    memset(a, 0, sizeof *a);
}

static void read_adapter_v(sqlite3_stmt *s, void *out) {
    jobs_adapter_info *a = out;
    memset(a, 0, sizeof *a);
    a->id = sqlite3_column_int64(s, 0);
    col_copy(s, 1, a->name, sizeof a->name);
    a->job_id = sqlite3_column_int64(s, 2);
    a->path = col_dup(s, 3);
    col_copy(s, 4, a->task, sizeof a->task);
    col_copy(s, 5, a->kind, sizeof a->kind);
    col_copy(s, 6, a->base_hash, sizeof a->base_hash);
    a->metadata = col_dup(s, 7);
    a->created_ms = sqlite3_column_int64(s, 8);
}

static int adapter_insert(jobs_store *st, jobs_adapter_info *a, char *msg, size_t msgsz) {
    sqlite3_stmt *s = stmt(st, STMT_ADAPTER_INSERT);
    a->created_ms = util_wall_ms();
    bind_text(s, 1, a->name);
    if (a->job_id > 0) sqlite3_bind_int64(s, 2, a->job_id);
    bind_text(s, 3, a->path);
    bind_text(s, 4, a->task);
    bind_text(s, 5, a->kind);
    bind_text(s, 6, a->base_hash);
    bind_text(s, 7, a->metadata ? a->metadata : "{}");
    sqlite3_bind_int64(s, 8, a->created_ms);
    int rc = run(st, s, "add adapter", msg, msgsz);
    if (rc == JOBS_OK)
        a->id = sqlite3_last_insert_rowid(st->db);
    else if (rc == JOBS_EEXIST)
        util_msg(msg, msgsz, rc, "an adapter named '%s' (or of job %lld) exists already", a->name,
                 (long long)a->job_id);
    return rc;
}

int jobs_store_adapter_add(jobs_store *st, jobs_adapter_info *a, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    int rc = adapter_insert(st, a, msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_adapter_get(jobs_store *st, int64_t id, const char *name, jobs_adapter_info *out, char *msg,
                           size_t msgsz) {
    return get_by(st, STMT_ADAPTER_GET, "adapter", id, name, read_adapter_v, out, msg, msgsz);
}

static void clear_adapter_v(void *p) {
    jobs_adapter_info_clear(p);
}

int jobs_store_adapter_list(jobs_store *st, jobs_adapter_info **out, int *n, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    void *items = NULL;
    int rc = fetch_all(st, stmt(st, STMT_ADAPTER_LIST), sizeof(jobs_adapter_info), read_adapter_v, clear_adapter_v,
                       &items, n, "list adapters", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    *out = items;
    return rc;
}

int jobs_store_adapter_delete(jobs_store *st, int64_t id, char *msg, size_t msgsz) {
    return delete_row(st, STMT_ADAPTER_DELETE, "adapter", id, msg, msgsz);
}

int jobs_store_succeed(jobs_store *st, int64_t id, jobs_adapter_info *a, const char *result_json, char *msg,
                       size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    int rc = begin(st, msg, msgsz);
    if (rc == JOBS_OK) {
        /* the state first: a job that is not running registers nothing */
        sqlite3_stmt *s = stmt(st, STMT_JOB_STATE);
        sqlite3_bind_int64(s, 1, id);
        int step = sqlite3_step(s);
        int running = step == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(s, 0), "running") == 0;
        sqlite3_reset(s);
        if (!running) rc = state_mismatch(st, id, JOBS_RUNNING, msg, msgsz);
        if (rc == JOBS_OK && a) {
            a->job_id = id;
            rc = adapter_insert(st, a, msg, msgsz);
        }
        if (rc == JOBS_OK) {
            s = stmt(st, STMT_JOB_SUCCEED);
            sqlite3_bind_int64(s, 1, id);
            sqlite3_bind_int64(s, 2, util_wall_ms());
            bind_text(s, 3, result_json ? result_json : "{}");
            if (a) sqlite3_bind_int64(s, 4, a->id);
            rc = run(st, s, "job succeeded", msg, msgsz);
            if (rc == JOBS_OK && sqlite3_changes(st->db) == 0) rc = state_mismatch(st, id, JOBS_RUNNING, msg, msgsz);
        }
        if (rc == JOBS_OK) rc = row_event(st, STMT_EVENT_RESULT, id, msg, msgsz);
        if (rc == JOBS_OK) rc = state_event(st, id, JOBS_SUCCEEDED, NULL, msg, msgsz);
        rc = finish(st, rc, msg, msgsz);
        if (rc != JOBS_OK && a) a->id = 0;
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

/* ---- API keys and counts (api/auth.c, api/metrics.c) ------------------------------ */

static void read_key_v(sqlite3_stmt *s, void *out) {
    jobs_api_key *k = out;
    memset(k, 0, sizeof *k);
    k->id = sqlite3_column_int64(s, 0);
    col_copy(s, 1, k->prefix, sizeof k->prefix);
    col_copy(s, 2, k->hash, sizeof k->hash);
    col_copy(s, 3, k->scope, sizeof k->scope);
    k->created_ms = sqlite3_column_int64(s, 4);
    k->revoked_ms = sqlite3_column_int64(s, 5);
}

int jobs_store_key_add(jobs_store *st, const char *prefix, const char *hash_hex, const char *scope, int64_t *id,
                       char *msg, size_t msgsz) {
    if (!prefix || !*prefix || strlen(prefix) > JOBS_KEY_PREFIX_MAX || !hash_hex ||
        strlen(hash_hex) != JOBS_KEY_HASH_HEX || !scope ||
        (strcmp(scope, "generate") != 0 && strcmp(scope, "admin") != 0))
        return util_msg(msg, msgsz, JOBS_EINVAL, "a key needs a prefix, a SHA-256 and a scope (generate or admin)");
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = stmt(st, STMT_KEY_INSERT);
    bind_text(s, 1, prefix);
    bind_text(s, 2, hash_hex);
    bind_text(s, 3, scope);
    sqlite3_bind_int64(s, 4, util_wall_ms());
    int rc = run(st, s, "add key", msg, msgsz);
    if (rc == JOBS_OK && id) *id = sqlite3_last_insert_rowid(st->db);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_key_find(jobs_store *st, const char *prefix, jobs_api_key *out, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = stmt(st, STMT_KEY_FIND);
    bind_text(s, 1, prefix);
    int rc = fetch_one(st, s, read_key_v, out, "key", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_key_count(jobs_store *st, int *n, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    int rc = fetch_one(st, stmt(st, STMT_KEY_COUNT), read_int_v, n, "key count", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_key_list(jobs_store *st, jobs_api_key **out, int *n, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    void *items = NULL;
    int rc = fetch_all(st, stmt(st, STMT_KEY_LIST), sizeof(jobs_api_key), read_key_v, NULL, &items, n, "list keys", msg,
                       msgsz);
    pthread_mutex_unlock(&st->lock);
    *out = items;
    return rc;
}

int jobs_store_key_revoke(jobs_store *st, int64_t id, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = stmt(st, STMT_KEY_REVOKE);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, util_wall_ms());
    int rc = run(st, s, "revoke key", msg, msgsz);
    if (rc == JOBS_OK && sqlite3_changes(st->db) == 0)
        rc = util_msg(msg, msgsz, JOBS_ENOTFOUND, "no active key %lld", (long long)id);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_job_counts(jobs_store *st, int64_t counts[5], char *msg, size_t msgsz) {
    for (int i = 0; i < 5; i++) counts[i] = 0;
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = stmt(st, STMT_JOB_COUNTS);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        jobs_state state;
        if (jobs_state_from_name((const char *)sqlite3_column_text(s, 0), &state) == 0)
            counts[state] = sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    int rc = step == SQLITE_DONE ? JOBS_OK : db_fail(st, step, "count jobs", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc;
}
