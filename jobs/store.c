/*
 * store.c - see store.h: the connection. It opens the file, refuses one
 * that is damaged, locked or too new, migrates the schema, prepares the
 * statements of store_db.h and holds the helpers the other store files
 * (store_jobs.c, store_registry.c, store_keys.c) run their queries with.
 * The schema's history is the table of migration steps below.
 */
#include "jobs/store.h"
#include "jobs/store_db.h"
#include "util/clock.h"
#include "util/msg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    /* 2 -> 3: poison jobs told apart from preempted ones by progress: the
     * step of the job's checkpoint, its value at the last crash recovery,
     * and the crashes in a row after which it had not moved on. A job of
     * an older file counts from here (its checkpoint's step is unknown). */
    "ALTER TABLE jobs ADD COLUMN checkpoint_step INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN recovered_step INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN stalled INTEGER NOT NULL DEFAULT 0;"
    "PRAGMA user_version = 3;",
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))
_Static_assert(N_MIGRATIONS == JOBS_SCHEMA_VERSION, "one migration step per schema version");

static const char *const statement_sql[] = {
#define AS_TEXT(name, sql) sql,
    STATEMENTS(AS_TEXT)
#undef AS_TEXT
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
        case JOBS_ELIMIT: return "over a limit";
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

int jobs_db_code_of(int sqlite_rc) {
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
int jobs_db_fail(jobs_store *st, int sqlite_rc, const char *what, char *msg, size_t msgsz) {
    return util_msg(msg, msgsz, jobs_db_code_of(sqlite_rc), "%s: %s", what,
                    st && st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(sqlite_rc));
}

/* A statement ready to bind: reset, bindings cleared. */
sqlite3_stmt *jobs_db_stmt(jobs_store *st, int which) {
    sqlite3_stmt *s = st->stmt[which];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* SQLITE_STATIC: SQLite keeps the pointer rather than a copy, so the bind
 * cannot fail for want of memory (a failed bind would leave the value NULL
 * and the statement would run without a word). Every caller runs the
 * statement while v lives, and jobs_db_stmt clears the bindings before
 * the statement's next use. */
void jobs_db_bind_text(sqlite3_stmt *s, int i, const char *v) {
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

void jobs_db_bind_real(sqlite3_stmt *s, int i, double v) {
    if (isfinite(v))
        sqlite3_bind_double(s, i, v);
    else
        sqlite3_bind_null(s, i);
}

int jobs_db_col_dup(sqlite3_stmt *s, int i, char **out) {
    /* NULL from sqlite3_column_text is SQL NULL, or no memory to convert */
    const unsigned char *t = sqlite3_column_text(s, i);
    *out = t ? strdup((const char *)t) : NULL;
    return *out || (!t && sqlite3_column_type(s, i) == SQLITE_NULL) ? 0 : -1;
}

void jobs_db_col_copy(sqlite3_stmt *s, int i, char *dst, size_t dstsz) {
    const unsigned char *t = sqlite3_column_text(s, i);
    snprintf(dst, dstsz, "%s", t ? (const char *)t : "");
}

double jobs_db_col_real(sqlite3_stmt *s, int i) {
    return sqlite3_column_type(s, i) == SQLITE_NULL ? NAN : sqlite3_column_double(s, i);
}

/* Runs a statement that returns no rows (or whose rows are ignored). */
int jobs_db_run(jobs_store *st, sqlite3_stmt *s, const char *what, char *msg, size_t msgsz) {
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? JOBS_OK : jobs_db_fail(st, rc, what, msg, msgsz);
}

int jobs_db_begin(jobs_store *st, char *msg, size_t msgsz) {
    return jobs_db_run(st, jobs_db_stmt(st, STMT_BEGIN), "begin", msg, msgsz);
}

static int commit(jobs_store *st, char *msg, size_t msgsz) {
    int rc = jobs_db_run(st, jobs_db_stmt(st, STMT_COMMIT), "commit", msg, msgsz);
    if (rc != JOBS_OK) jobs_db_run(st, jobs_db_stmt(st, STMT_ROLLBACK), "rollback", NULL, 0);
    return rc;
}

/* Ends a transaction: commits when rc is JOBS_OK, else rolls back and
 * returns rc unchanged. */
int jobs_db_finish(jobs_store *st, int rc, char *msg, size_t msgsz) {
    if (rc == JOBS_OK) return commit(st, msg, msgsz);
    jobs_db_run(st, jobs_db_stmt(st, STMT_ROLLBACK), "rollback", NULL, 0);
    return rc;
}

/* A state event: {"status": to, "error": error or null}. */
int jobs_db_state_event(jobs_store *st, int64_t id, jobs_state to, const char *error, char *msg, size_t msgsz) {
    sqlite3_stmt *s = jobs_db_stmt(st, STMT_EVENT_STATE);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, util_wall_ms());
    jobs_db_bind_text(s, 3, jobs_state_name(to));
    jobs_db_bind_text(s, 4, error);
    return jobs_db_run(st, s, "job event", msg, msgsz);
}

/* An event whose payload SQLite copies from the job's row (its progress
 * columns, or its result). */
int jobs_db_row_event(jobs_store *st, int which, int64_t id, char *msg, size_t msgsz) {
    sqlite3_stmt *s = jobs_db_stmt(st, which);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, util_wall_ms());
    return jobs_db_run(st, s, "job event", msg, msgsz);
}

/* One row of a single-row query into *out via read(); JOBS_ENOTFOUND when
 * there is none. */
int jobs_db_fetch_one(jobs_store *st, sqlite3_stmt *s, jobs_db_reader read, void *out, const char *what, char *msg,
                      size_t msgsz) {
    int rc = sqlite3_step(s), code;
    if (rc == SQLITE_ROW) {
        code = read(s, out) == 0 ? JOBS_OK : util_msg(msg, msgsz, JOBS_ERR, "%s: out of memory", what);
    } else if (rc == SQLITE_DONE) {
        code = util_msg(msg, msgsz, JOBS_ENOTFOUND, "%s not found", what);
    } else {
        code = jobs_db_fail(st, rc, what, msg, msgsz);
    }
    sqlite3_reset(s);
    return code;
}

/* Every row of s into a growing array of `size`-byte elements; on failure
 * nothing is returned (clear() releases what each element holds). */
int jobs_db_fetch_all(jobs_store *st, sqlite3_stmt *s, size_t size, jobs_db_reader read, void (*clear)(void *),
                      void **out, int *n, const char *what, char *msg, size_t msgsz) {
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
        if (read(s, items + (size_t)count * size) != 0) {
            rc = SQLITE_NOMEM;
            break;
        }
        count++;
    }
    sqlite3_reset(s);
    *out = NULL;
    *n = 0;
    if (rc != SQLITE_DONE) {
        for (int i = 0; clear && i < count; i++) clear(items + (size_t)i * size);
        free(items);
        return jobs_db_fail(st, rc, what, msg, msgsz);
    }
    *out = items;
    *n = count;
    return JOBS_OK;
}

int jobs_db_read_int_v(sqlite3_stmt *s, void *out) {
    *(int *)out = sqlite3_column_int(s, 0);
    return 0;
}

int jobs_db_read_id_v(sqlite3_stmt *s, void *out) {
    *(int64_t *)out = sqlite3_column_int64(s, 0);
    return 0;
}

/* ---- open, migrate, close ------------------------------------------------------- */

static int pragma_text(jobs_store *st, const char *sql, char *out, size_t outsz, char *msg, size_t msgsz) {
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        jobs_db_col_copy(s, 0, out, outsz);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        *out = '\0';
        rc = SQLITE_OK;
    }
    int code = rc == SQLITE_OK ? JOBS_OK : jobs_db_fail(st, rc, sql, msg, msgsz);
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
    int code = rc == SQLITE_OK ? JOBS_OK : jobs_db_fail(st, rc, "user_version", msg, msgsz);
    sqlite3_finalize(s);
    return code;
}

static int exec(jobs_store *st, const char *sql, char *msg, size_t msgsz) {
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? JOBS_OK : jobs_db_fail(st, rc, "migration", msg, msgsz);
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
        code = util_msg(msg, msgsz, jobs_db_code_of(rc), "cannot open %s: %s", path,
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
            code = util_msg(msg, msgsz, jobs_db_code_of(rc), "%s: cannot prepare \"%s\": %s", path, statement_sql[i],
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
