/*
 * store.h - the daemon's durable state in SQLite: jobs and their events, the
 * dataset and adapter registries, API keys.
 *
 * One file, data_dir/codid.db, in WAL mode (readers never wait for the
 * writer), foreign keys on, a busy timeout so short lock contention waits
 * instead of failing. The schema is versioned by PRAGMA user_version and
 * brought up to date at open by a list of migration steps, each applied in
 * its own transaction; a file written by a newer codid is refused.
 *
 * A jobs_store is one connection. Its functions take its mutex, so HTTP
 * threads may share one store; each worker thread opens its own so that
 * training never waits behind a slow reader. Every statement is prepared
 * from a constant text; values are always bound, never spliced into SQL.
 *
 * Job states and their transitions (anything else is JOBS_ESTATE):
 *
 *     queued --claim--> running --> succeeded | failed | cancelled
 *       |                  |
 *       +--cancel--> cancelled     running --requeue--> queued
 *                                  (daemon stopping, or found running at
 *                                   start-up after a crash)
 *
 * Timestamps are Unix milliseconds; 0 means "not yet".
 *
 * Functions return JOBS_OK (0) or a negative jobs_status (jobs/status.h,
 * described in jobs.h) with a message in msg (when msg is not NULL).
 */
#ifndef CODID_JOBS_STORE_H
#define CODID_JOBS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "jobs/status.h"

/* The schema version this code writes (PRAGMA user_version). */
#define JOBS_SCHEMA_VERSION  3
#define JOBS_DB_NAME         "codid.db"
#define JOBS_BUSY_TIMEOUT_MS 5000
#define JOBS_NAME_MAX        64

typedef enum jobs_state {
    JOBS_QUEUED = 0,
    JOBS_RUNNING = 1,
    JOBS_SUCCEEDED = 2,
    JOBS_FAILED = 3,
    JOBS_CANCELLED = 4
} jobs_state;

const char *jobs_state_name(jobs_state s);
/* 0 and *out set, or -1 for an unknown name */
int jobs_state_from_name(const char *name, jobs_state *out);
int jobs_state_is_final(jobs_state s);

typedef struct jobs_store jobs_store;

/* Opens (creating when missing) data_dir/codid.db and migrates it. busy_ms:
 * how long to wait for another connection's lock (0: JOBS_BUSY_TIMEOUT_MS).
 * JOBS_EBUSY, JOBS_ECORRUPT and JOBS_ETOONEW say why a file is refused. */
int jobs_store_open(const char *data_dir, int busy_ms, jobs_store **out, char *msg, size_t msgsz);
void jobs_store_close(jobs_store *st);
const char *jobs_store_data_dir(const jobs_store *st);
/* PRAGMA user_version as stored */
int jobs_store_schema_version(jobs_store *st, int *out, char *msg, size_t msgsz);

/* ---- jobs ----------------------------------------------------------------- */

typedef struct jobs_progress {
    int step, total;
    double loss, loss_smooth, lr, it_per_s, eta_s; /* NaN: not known */
} jobs_progress;

typedef struct jobs_job {
    int64_t id;
    char kind[16];
    jobs_state state;
    char *params; /* JSON text */
    int64_t created_ms, started_ms, finished_ms;
    char *error;      /* NULL when none */
    char *result;     /* JSON text; NULL when none */
    char *checkpoint; /* the last checkpoint written; NULL when none and
                         once the job has ended */
    jobs_progress progress;
    int cancel_requested;
    int attempts; /* times claimed */
} jobs_job;

void jobs_job_clear(jobs_job *j);

int jobs_store_job_insert(jobs_store *st, const char *kind, const char *params_json, int total, int64_t *id, char *msg,
                          size_t msgsz);
int jobs_store_job_get(jobs_store *st, int64_t id, jobs_job *out, char *msg, size_t msgsz);

/* Newest first. state < 0: any state. before_id > 0: only ids below it
 * (cursor paging). *out is an array of *n jobs; free each with
 * jobs_job_clear and the array with free(). */
int jobs_store_job_list(jobs_store *st, int state, int64_t before_id, int limit, jobs_job **out, int *n, char *msg,
                        size_t msgsz);

/* Takes the oldest queued job: one UPDATE ... RETURNING, so two connections
 * never claim the same job. JOBS_ENOTFOUND when none is queued. */
int jobs_store_claim(jobs_store *st, jobs_job *out, char *msg, size_t msgsz);

/* Moves job id from `from` to `to` (a transition drawn above), with the
 * error text and result JSON of a final state (either may be NULL), and
 * records a state event. JOBS_ESTATE when the transition is not allowed or
 * the job is no longer in `from`. */
int jobs_store_transition(jobs_store *st, int64_t id, jobs_state from, jobs_state to, const char *error,
                          const char *result_json, char *msg, size_t msgsz);

/* A queued job is cancelled at once; a running one gets cancel_requested
 * and stops at its worker's next step. *state receives the state after the
 * call. JOBS_ESTATE for a finished job. */
int jobs_store_cancel(jobs_store *st, int64_t id, jobs_state *state, char *msg, size_t msgsz);
int jobs_store_cancel_requested(jobs_store *st, int64_t id, int *requested, char *msg, size_t msgsz);

/* The progress columns and a progress event, in one transaction. */
int jobs_store_progress(jobs_store *st, int64_t id, const jobs_progress *p, char *msg, size_t msgsz);
/* The job's checkpoint file and the step it holds (what start-up measures
 * a crashed job's progress by). */
int jobs_store_set_checkpoint(jobs_store *st, int64_t id, const char *path, int step, char *msg, size_t msgsz);

/* Start-up: every running job back to queued (their checkpoints are kept),
 * except a job that looks poisoned: one found running after a crash for the
 * (JOBS_MAX_STALLED_RECOVERIES + 1)-th time in a row with no new checkpoint
 * since the crash before (none since it was first claimed, for the first
 * crash). It fails with an error that says why. A crash after which the
 * checkpoint moved on starts the count again, so a job preempted any
 * number of times still finishes. Clean stops (SIGTERM) count nothing.
 * *n receives how many were queued. */
#define JOBS_MAX_STALLED_RECOVERIES 3
int jobs_store_requeue_running(jobs_store *st, int *n, char *msg, size_t msgsz);

/* Whether a queued or running job other than except_id names `field` (a
 * top-level key of its params) as name, or as id (an integer or its decimal
 * text). *job_id receives one such job, or 0. */
int jobs_store_job_referencing(jobs_store *st, const char *field, const char *name, int64_t id, int64_t except_id,
                               int64_t *job_id, char *msg, size_t msgsz);

typedef struct jobs_event {
    int64_t id; /* increasing across all jobs: a resume point for readers */
    int64_t job_id;
    int64_t ts_ms;
    char kind[12]; /* "progress", "state" or "result" */
    char *payload; /* JSON text */
} jobs_event;

/* Events of job_id with ids above after_id, oldest first, at most limit.
 * Free each payload and the array with jobs_events_free. */
int jobs_store_events_since(jobs_store *st, int64_t job_id, int64_t after_id, int limit, jobs_event **out, int *n,
                            char *msg, size_t msgsz);
void jobs_events_free(jobs_event *ev, int n);

/* ---- datasets ------------------------------------------------------------- */

typedef struct jobs_dataset_info {
    int64_t id;
    char name[JOBS_NAME_MAX + 1];
    char source[32]; /* "cifar10", "fashion-mnist", "png", "upload", "file" */
    char *path;
    int count, size, channels;
    char split[16]; /* "train", "test" or "" */
    int labelled;
    int skipped; /* inputs the import left out */
    int64_t created_ms;
} jobs_dataset_info;

void jobs_dataset_info_clear(jobs_dataset_info *d);

/* d->id and d->created_ms are filled in. JOBS_EEXIST for a taken name. */
int jobs_store_dataset_add(jobs_store *st, jobs_dataset_info *d, char *msg, size_t msgsz);
/* By id when id > 0, else by name. */
int jobs_store_dataset_get(jobs_store *st, int64_t id, const char *name, jobs_dataset_info *out, char *msg,
                           size_t msgsz);
int jobs_store_dataset_list(jobs_store *st, jobs_dataset_info **out, int *n, char *msg, size_t msgsz);
int jobs_store_dataset_delete(jobs_store *st, int64_t id, char *msg, size_t msgsz);

/* ---- adapters ------------------------------------------------------------- */

typedef struct jobs_adapter_info {
    int64_t id;
    char name[JOBS_NAME_MAX + 1];
    int64_t job_id; /* the job that trained it; 0 when registered by hand */
    char *path;
    char task[16];
    char kind[16]; /* "controlnet" or "lite" */
    char base_hash[17];
    char *metadata; /* JSON object text; NULL reads as {} */
    int64_t created_ms;
} jobs_adapter_info;

void jobs_adapter_info_clear(jobs_adapter_info *a);

int jobs_store_adapter_add(jobs_store *st, jobs_adapter_info *a, char *msg, size_t msgsz);
int jobs_store_adapter_get(jobs_store *st, int64_t id, const char *name, jobs_adapter_info *out, char *msg,
                           size_t msgsz);
int jobs_store_adapter_list(jobs_store *st, jobs_adapter_info **out, int *n, char *msg, size_t msgsz);
int jobs_store_adapter_delete(jobs_store *st, int64_t id, char *msg, size_t msgsz);

/*
 * A job's successful end, in one transaction: the adapter row (when a is not
 * NULL; its job_id is set to id and a->id receives its id), the job
 * `succeeded` with result_json (plus "adapter_id"), and a result and a state
 * event. Nothing is written unless the job is still running, so a job is
 * registered once however often this is called; the schema backs that with
 * UNIQUE(adapters.job_id). JOBS_EEXIST when another adapter holds a->name.
 */
int jobs_store_succeed(jobs_store *st, int64_t id, jobs_adapter_info *a, const char *result_json, char *msg,
                       size_t msgsz);

/* ==== API keys and counts, for the HTTP API (api/auth.c, api/metrics.c) ==== */

#define JOBS_KEY_PREFIX_MAX 16
#define JOBS_KEY_HASH_HEX   64

typedef struct jobs_api_key {
    int64_t id;
    char prefix[JOBS_KEY_PREFIX_MAX + 1]; /* the key's public part, unique */
    char hash[JOBS_KEY_HASH_HEX + 1];     /* SHA-256 of the whole key, hex */
    char scope[16];                       /* "generate" or "admin" */
    int64_t created_ms, revoked_ms;       /* revoked_ms 0: active */
} jobs_api_key;

/* A new key row (scope "generate" or "admin"); *id receives its id. */
int jobs_store_key_add(jobs_store *st, const char *prefix, const char *hash_hex, const char *scope, int64_t *id,
                       char *msg, size_t msgsz);
/* The active key with this prefix, or JOBS_ENOTFOUND. */
int jobs_store_key_find(jobs_store *st, const char *prefix, jobs_api_key *out, char *msg, size_t msgsz);
/* Active (not revoked) keys. */
int jobs_store_key_count(jobs_store *st, int *n, char *msg, size_t msgsz);
/* Every key, oldest first; free the array with free(). */
int jobs_store_key_list(jobs_store *st, jobs_api_key **out, int *n, char *msg, size_t msgsz);
/* JOBS_ENOTFOUND when no active key has this id. */
int jobs_store_key_revoke(jobs_store *st, int64_t id, char *msg, size_t msgsz);
/* Jobs in each state, indexed by jobs_state. */
int jobs_store_job_counts(jobs_store *st, int64_t counts[5], char *msg, size_t msgsz);

#endif
