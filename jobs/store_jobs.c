/*
 * store_jobs.c - see store.h: jobs and their events. A job's row moves
 * through the state machine drawn in store.h by guarded UPDATEs (a change
 * applies only while the row is still in the state the caller saw), and
 * each move writes its event in the same transaction, so a reader of the
 * events never misses a state the row went through.
 */
#include "jobs/store.h"
#include "jobs/store_db.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- jobs ------------------------------------------------------------------------- */

void jobs_job_clear(jobs_job *j) {
    if (!j) return;
    free(j->params);
    free(j->error);
    free(j->result);
    free(j->checkpoint);
    memset(j, 0, sizeof *j);
}

static int read_job(sqlite3_stmt *s, jobs_job *j) {
    memset(j, 0, sizeof *j);
    j->id = sqlite3_column_int64(s, 0);
    jobs_db_col_copy(s, 1, j->kind, sizeof j->kind);
    jobs_state_from_name((const char *)sqlite3_column_text(s, 2), &j->state);
    int nomem = jobs_db_col_dup(s, 3, &j->params);
    j->created_ms = sqlite3_column_int64(s, 4);
    j->started_ms = sqlite3_column_int64(s, 5);
    j->finished_ms = sqlite3_column_int64(s, 6);
    nomem |= jobs_db_col_dup(s, 7, &j->error);
    nomem |= jobs_db_col_dup(s, 8, &j->result);
    nomem |= jobs_db_col_dup(s, 9, &j->checkpoint);
    j->progress.step = sqlite3_column_int(s, 10);
    j->progress.total = sqlite3_column_int(s, 11);
    j->progress.loss = jobs_db_col_real(s, 12);
    j->progress.loss_smooth = jobs_db_col_real(s, 13);
    j->progress.lr = jobs_db_col_real(s, 14);
    j->progress.it_per_s = jobs_db_col_real(s, 15);
    j->progress.eta_s = jobs_db_col_real(s, 16);
    j->cancel_requested = sqlite3_column_int(s, 17);
    j->attempts = sqlite3_column_int(s, 18);
    if (nomem) jobs_job_clear(j);
    return nomem ? -1 : 0;
}

int jobs_store_job_insert(jobs_store *st, const char *kind, const char *params_json, int total, int64_t *id, char *msg,
                          size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    int rc = jobs_db_begin(st, msg, msgsz);
    if (rc == JOBS_OK) {
        sqlite3_stmt *s = jobs_db_stmt(st, STMT_JOB_INSERT);
        jobs_db_bind_text(s, 1, kind);
        jobs_db_bind_text(s, 2, params_json);
        sqlite3_bind_int(s, 3, total);
        sqlite3_bind_int64(s, 4, util_wall_ms());
        rc = jobs_db_run(st, s, "insert job", msg, msgsz);
        if (rc == JOBS_OK) {
            *id = sqlite3_last_insert_rowid(st->db);
            rc = jobs_db_state_event(st, *id, JOBS_QUEUED, NULL, msg, msgsz);
        }
        rc = jobs_db_finish(st, rc, msg, msgsz);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static int read_job_v(sqlite3_stmt *s, void *out) {
    return read_job(s, out);
}

int jobs_store_job_get(jobs_store *st, int64_t id, jobs_job *out, char *msg, size_t msgsz) {
    char what[48];
    snprintf(what, sizeof what, "job %lld", (long long)id);
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = jobs_db_stmt(st, STMT_JOB_GET);
    sqlite3_bind_int64(s, 1, id);
    int rc = jobs_db_fetch_one(st, s, read_job_v, out, what, msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static void clear_job_v(void *p) {
    jobs_job_clear(p);
}

int jobs_store_job_list(jobs_store *st, int state, int64_t before_id, int limit, jobs_job **out, int *n, char *msg,
                        size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = jobs_db_stmt(st, STMT_JOB_LIST);
    jobs_db_bind_text(s, 1, state >= 0 ? jobs_state_name((jobs_state)state) : NULL);
    sqlite3_bind_int64(s, 2, before_id);
    sqlite3_bind_int(s, 3, limit > 0 ? limit : 1);
    void *items = NULL;
    int rc = jobs_db_fetch_all(st, s, sizeof(jobs_job), read_job_v, clear_job_v, &items, n, "list jobs", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    *out = items;
    return rc;
}

int jobs_store_claim(jobs_store *st, jobs_job *out, char *msg, size_t msgsz) {
    jobs_job job;
    pthread_mutex_lock(&st->lock);
    int rc = jobs_db_begin(st, msg, msgsz);
    if (rc == JOBS_OK) {
        sqlite3_stmt *s = jobs_db_stmt(st, STMT_JOB_CLAIM);
        sqlite3_bind_int64(s, 1, util_wall_ms());
        int claimed = rc = jobs_db_fetch_one(st, s, read_job_v, &job, "queued job", msg, msgsz);
        if (rc == JOBS_OK) rc = jobs_db_state_event(st, job.id, JOBS_RUNNING, NULL, msg, msgsz);
        rc = jobs_db_finish(st, rc, msg, msgsz);
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
    sqlite3_stmt *s = jobs_db_stmt(st, STMT_JOB_STATE);
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s), code;
    if (rc == SQLITE_ROW)
        code = util_msg(msg, msgsz, JOBS_ESTATE, "job %lld is %s, not %s", (long long)id,
                        (const char *)sqlite3_column_text(s, 0), jobs_state_name(expected));
    else if (rc == SQLITE_DONE)
        code = util_msg(msg, msgsz, JOBS_ENOTFOUND, "job %lld not found", (long long)id);
    else
        code = jobs_db_fail(st, rc, "job state", msg, msgsz);
    sqlite3_reset(s);
    return code;
}

static int transition_locked(jobs_store *st, int64_t id, jobs_state from, jobs_state to, const char *error,
                             const char *result_json, char *msg, size_t msgsz) {
    sqlite3_stmt *s = jobs_db_stmt(st, STMT_JOB_TRANSITION);
    sqlite3_bind_int64(s, 1, id);
    jobs_db_bind_text(s, 2, jobs_state_name(to));
    sqlite3_bind_int64(s, 3, util_wall_ms());
    jobs_db_bind_text(s, 4, error);
    jobs_db_bind_text(s, 5, result_json);
    jobs_db_bind_text(s, 6, jobs_state_name(from));
    int rc = jobs_db_run(st, s, "job transition", msg, msgsz);
    if (rc == JOBS_OK && sqlite3_changes(st->db) == 0) rc = state_mismatch(st, id, from, msg, msgsz);
    if (rc == JOBS_OK) rc = jobs_db_state_event(st, id, to, error, msg, msgsz);
    return rc;
}

int jobs_store_transition(jobs_store *st, int64_t id, jobs_state from, jobs_state to, const char *error,
                          const char *result_json, char *msg, size_t msgsz) {
    if (!transition_allowed(from, to))
        return util_msg(msg, msgsz, JOBS_ESTATE, "a job cannot go from %s to %s", jobs_state_name(from),
                        jobs_state_name(to));
    pthread_mutex_lock(&st->lock);
    int rc = jobs_db_begin(st, msg, msgsz);
    if (rc == JOBS_OK)
        rc = jobs_db_finish(st, transition_locked(st, id, from, to, error, result_json, msg, msgsz), msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_cancel(jobs_store *st, int64_t id, jobs_state *state, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    int rc = jobs_db_begin(st, msg, msgsz);
    if (rc == JOBS_OK) {
        rc = transition_locked(st, id, JOBS_QUEUED, JOBS_CANCELLED, "cancelled while queued", NULL, msg, msgsz);
        if (rc == JOBS_OK) {
            *state = JOBS_CANCELLED;
        } else if (rc == JOBS_ESTATE) {
            sqlite3_stmt *s = jobs_db_stmt(st, STMT_JOB_REQUEST_CANCEL);
            sqlite3_bind_int64(s, 1, id);
            rc = jobs_db_run(st, s, "cancel job", msg, msgsz);
            if (rc == JOBS_OK && sqlite3_changes(st->db) == 0) rc = state_mismatch(st, id, JOBS_RUNNING, msg, msgsz);
            if (rc == JOBS_OK) *state = JOBS_RUNNING;
        }
        rc = jobs_db_finish(st, rc, msg, msgsz);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_cancel_requested(jobs_store *st, int64_t id, int *requested, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = jobs_db_stmt(st, STMT_JOB_CANCEL_REQUESTED);
    sqlite3_bind_int64(s, 1, id);
    int rc = jobs_db_fetch_one(st, s, jobs_db_read_int_v, requested, "job", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_progress(jobs_store *st, int64_t id, const jobs_progress *p, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    int rc = jobs_db_begin(st, msg, msgsz);
    if (rc == JOBS_OK) {
        sqlite3_stmt *s = jobs_db_stmt(st, STMT_JOB_PROGRESS);
        sqlite3_bind_int64(s, 1, id);
        sqlite3_bind_int(s, 2, p->step);
        sqlite3_bind_int(s, 3, p->total);
        jobs_db_bind_real(s, 4, p->loss);
        jobs_db_bind_real(s, 5, p->loss_smooth);
        jobs_db_bind_real(s, 6, p->lr);
        jobs_db_bind_real(s, 7, p->it_per_s);
        jobs_db_bind_real(s, 8, p->eta_s);
        rc = jobs_db_run(st, s, "job progress", msg, msgsz);
        if (rc == JOBS_OK && sqlite3_changes(st->db) == 0)
            rc = util_msg(msg, msgsz, JOBS_ENOTFOUND, "job %lld not found", (long long)id);
        if (rc == JOBS_OK) rc = jobs_db_row_event(st, STMT_EVENT_PROGRESS, id, msg, msgsz);
        rc = jobs_db_finish(st, rc, msg, msgsz);
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_set_checkpoint(jobs_store *st, int64_t id, const char *path, int step, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = jobs_db_stmt(st, STMT_JOB_SET_CHECKPOINT);
    sqlite3_bind_int64(s, 1, id);
    jobs_db_bind_text(s, 2, path);
    sqlite3_bind_int(s, 3, step);
    int rc = jobs_db_run(st, s, "job checkpoint", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

typedef struct recovery {
    int recoveries, stalled, checkpoint_step;
} recovery;

static int read_recovery_v(sqlite3_stmt *s, void *out) {
    recovery *r = out;
    r->recoveries = sqlite3_column_int(s, 0);
    r->stalled = sqlite3_column_int(s, 1);
    r->checkpoint_step = sqlite3_column_int(s, 2);
    return JOBS_OK;
}

int jobs_store_requeue_running(jobs_store *st, int *n, char *msg, size_t msgsz) {
    *n = 0;
    pthread_mutex_lock(&st->lock);
    int rc = jobs_db_begin(st, msg, msgsz);
    if (rc == JOBS_OK) {
        void *ids = NULL;
        int count = 0;
        rc = jobs_db_fetch_all(st, jobs_db_stmt(st, STMT_JOB_RUNNING_IDS), sizeof(int64_t), jobs_db_read_id_v, NULL,
                               &ids, &count, "running jobs", msg, msgsz);
        for (int i = 0; rc == JOBS_OK && i < count; i++) {
            int64_t id = ((int64_t *)ids)[i];
            recovery rec = {0};
            sqlite3_stmt *s = jobs_db_stmt(st, STMT_JOB_RECOVERED);
            sqlite3_bind_int64(s, 1, id);
            rc = jobs_db_fetch_one(st, s, read_recovery_v, &rec, "job recoveries", msg, msgsz);
            if (rc != JOBS_OK) break;
            /* a job that keeps taking the daemon down at the same point is
             * not tried forever; one that moves on between crashes is */
            char why[320];
            snprintf(why, sizeof why,
                     "the daemon stopped without a shutdown %d times in a row while this job ran with no new "
                     "checkpoint between them (still at step %d; %d such stops in all): it crashes at the same "
                     "point each time (or is killed there: out of memory?), not retried",
                     rec.stalled, rec.checkpoint_step, rec.recoveries);
            int give_up = rec.stalled > JOBS_MAX_STALLED_RECOVERIES;
            rc = transition_locked(st, id, JOBS_RUNNING, give_up ? JOBS_FAILED : JOBS_QUEUED, give_up ? why : NULL,
                                   NULL, msg, msgsz);
            if (rc == JOBS_OK)
                util_log(give_up ? UTIL_LOG_WARN : UTIL_LOG_INFO,
                         "jobs: job %lld found running after a crash, %d in a row with no new checkpoint (at step "
                         "%d): %s",
                         (long long)id, rec.stalled, rec.checkpoint_step, give_up ? "failed" : "queued to resume");
            if (rc == JOBS_OK && !give_up) (*n)++;
        }
        free(ids);
        rc = jobs_db_finish(st, rc, msg, msgsz);
        if (rc != JOBS_OK) *n = 0;
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_job_referencing(jobs_store *st, const char *field, const char *name, int64_t id, int64_t except_id,
                               int64_t *job_id, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = jobs_db_stmt(st, STMT_JOB_REFERENCING);
    jobs_db_bind_text(s, 1, field);
    jobs_db_bind_text(s, 2, name);
    if (id > 0) sqlite3_bind_int64(s, 3, id);
    sqlite3_bind_int64(s, 4, except_id);
    *job_id = 0;
    int rc = jobs_db_fetch_one(st, s, jobs_db_read_id_v, job_id, "job", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc == JOBS_ENOTFOUND ? JOBS_OK : rc;
}

static int read_event_v(sqlite3_stmt *s, void *out) {
    jobs_event *e = out;
    e->id = sqlite3_column_int64(s, 0);
    e->job_id = sqlite3_column_int64(s, 1);
    e->ts_ms = sqlite3_column_int64(s, 2);
    jobs_db_col_copy(s, 3, e->kind, sizeof e->kind);
    return jobs_db_col_dup(s, 4, &e->payload);
}

static void clear_event_v(void *p) {
    free(((jobs_event *)p)->payload);
}

int jobs_store_events_since(jobs_store *st, int64_t job_id, int64_t after_id, int limit, jobs_event **out, int *n,
                            char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = jobs_db_stmt(st, STMT_EVENTS_SINCE);
    sqlite3_bind_int64(s, 1, job_id);
    sqlite3_bind_int64(s, 2, after_id);
    sqlite3_bind_int(s, 3, limit > 0 ? limit : 1);
    void *items = NULL;
    int rc =
        jobs_db_fetch_all(st, s, sizeof(jobs_event), read_event_v, clear_event_v, &items, n, "job events", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    *out = items;
    return rc;
}

void jobs_events_free(jobs_event *ev, int n) {
    for (int i = 0; ev && i < n; i++) free(ev[i].payload);
    free(ev);
}

int jobs_store_succeed(jobs_store *st, int64_t id, jobs_adapter_info *a, const char *result_json, char *msg,
                       size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    int rc = jobs_db_begin(st, msg, msgsz);
    if (rc == JOBS_OK) {
        /* the state first: a job that is not running registers nothing */
        sqlite3_stmt *s = jobs_db_stmt(st, STMT_JOB_STATE);
        sqlite3_bind_int64(s, 1, id);
        int step = sqlite3_step(s);
        int running = step == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(s, 0), "running") == 0;
        sqlite3_reset(s);
        if (!running) rc = state_mismatch(st, id, JOBS_RUNNING, msg, msgsz);
        if (rc == JOBS_OK && a) {
            a->job_id = id;
            rc = jobs_db_adapter_insert(st, a, msg, msgsz);
        }
        if (rc == JOBS_OK) {
            s = jobs_db_stmt(st, STMT_JOB_SUCCEED);
            sqlite3_bind_int64(s, 1, id);
            sqlite3_bind_int64(s, 2, util_wall_ms());
            jobs_db_bind_text(s, 3, result_json ? result_json : "{}");
            if (a) sqlite3_bind_int64(s, 4, a->id);
            rc = jobs_db_run(st, s, "job succeeded", msg, msgsz);
            if (rc == JOBS_OK && sqlite3_changes(st->db) == 0) rc = state_mismatch(st, id, JOBS_RUNNING, msg, msgsz);
        }
        if (rc == JOBS_OK) rc = jobs_db_row_event(st, STMT_EVENT_RESULT, id, msg, msgsz);
        if (rc == JOBS_OK) rc = jobs_db_state_event(st, id, JOBS_SUCCEEDED, NULL, msg, msgsz);
        rc = jobs_db_finish(st, rc, msg, msgsz);
        if (rc != JOBS_OK && a) a->id = 0;
    }
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_job_counts(jobs_store *st, int64_t counts[5], char *msg, size_t msgsz) {
    for (int i = 0; i < 5; i++) counts[i] = 0;
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = jobs_db_stmt(st, STMT_JOB_COUNTS);
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        jobs_state state;
        if (jobs_state_from_name((const char *)sqlite3_column_text(s, 0), &state) == 0)
            counts[state] = sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    int rc = step == SQLITE_DONE ? JOBS_OK : jobs_db_fail(st, step, "count jobs", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc;
}
