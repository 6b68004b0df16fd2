/*
 * store_registry.c - see store.h: the dataset and adapter registries, a
 * row per file the trainers read or wrote. Names are unique (the schema
 * says so), a row is found by id or by name, and an adapter trained by a
 * job is added with the job's success in store_jobs.c.
 */
#include "jobs/store.h"
#include "jobs/store_db.h"
#include "util/clock.h"
#include "util/msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- datasets ------------------------------------------------------------------------ */

void jobs_dataset_info_clear(jobs_dataset_info *d) {
    if (!d) return;
    free(d->path);
    memset(d, 0, sizeof *d);
}

static int read_dataset_v(sqlite3_stmt *s, void *out) {
    jobs_dataset_info *d = out;
    memset(d, 0, sizeof *d);
    d->id = sqlite3_column_int64(s, 0);
    jobs_db_col_copy(s, 1, d->name, sizeof d->name);
    jobs_db_col_copy(s, 2, d->source, sizeof d->source);
    if (jobs_db_col_dup(s, 3, &d->path) != 0) return -1;
    d->count = sqlite3_column_int(s, 4);
    d->size = sqlite3_column_int(s, 5);
    d->channels = sqlite3_column_int(s, 6);
    jobs_db_col_copy(s, 7, d->split, sizeof d->split);
    d->labelled = sqlite3_column_int(s, 8);
    d->skipped = sqlite3_column_int(s, 9);
    d->created_ms = sqlite3_column_int64(s, 10);
    return 0;
}

int jobs_store_dataset_add(jobs_store *st, jobs_dataset_info *d, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = jobs_db_stmt(st, STMT_DATASET_INSERT);
    d->created_ms = util_wall_ms();
    jobs_db_bind_text(s, 1, d->name);
    jobs_db_bind_text(s, 2, d->source);
    jobs_db_bind_text(s, 3, d->path);
    sqlite3_bind_int(s, 4, d->count);
    sqlite3_bind_int(s, 5, d->size);
    sqlite3_bind_int(s, 6, d->channels);
    jobs_db_bind_text(s, 7, d->split);
    sqlite3_bind_int(s, 8, d->labelled);
    sqlite3_bind_int(s, 9, d->skipped);
    sqlite3_bind_int64(s, 10, d->created_ms);
    int rc = jobs_db_run(st, s, "add dataset", msg, msgsz);
    if (rc == JOBS_OK)
        d->id = sqlite3_last_insert_rowid(st->db);
    else if (rc == JOBS_EEXIST)
        util_msg(msg, msgsz, rc, "a dataset named '%s' exists already", d->name);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

static int get_by(jobs_store *st, int which, const char *noun, int64_t id, const char *name, jobs_db_reader read,
                  void *out, char *msg, size_t msgsz) {
    char what[JOBS_NAME_MAX + 48];
    if (id > 0)
        snprintf(what, sizeof what, "%s %lld", noun, (long long)id);
    else
        snprintf(what, sizeof what, "%s '%.64s'", noun, name ? name : "");
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = jobs_db_stmt(st, which);
    sqlite3_bind_int64(s, 1, id);
    jobs_db_bind_text(s, 2, name ? name : "");
    int rc = jobs_db_fetch_one(st, s, read, out, what, msg, msgsz);
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
    int rc = jobs_db_fetch_all(st, jobs_db_stmt(st, STMT_DATASET_LIST), sizeof(jobs_dataset_info), read_dataset_v,
                               clear_dataset_v, &items, n, "list datasets", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    *out = items;
    return rc;
}

static int delete_row(jobs_store *st, int which, const char *noun, int64_t id, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = jobs_db_stmt(st, which);
    sqlite3_bind_int64(s, 1, id);
    int rc = jobs_db_run(st, s, noun, msg, msgsz);
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

static int read_adapter_v(sqlite3_stmt *s, void *out) {
    jobs_adapter_info *a = out;
    memset(a, 0, sizeof *a);
    a->id = sqlite3_column_int64(s, 0);
    jobs_db_col_copy(s, 1, a->name, sizeof a->name);
    a->job_id = sqlite3_column_int64(s, 2);
    int nomem = jobs_db_col_dup(s, 3, &a->path);
    jobs_db_col_copy(s, 4, a->task, sizeof a->task);
    jobs_db_col_copy(s, 5, a->kind, sizeof a->kind);
    jobs_db_col_copy(s, 6, a->base_hash, sizeof a->base_hash);
    nomem |= jobs_db_col_dup(s, 7, &a->metadata);
    a->created_ms = sqlite3_column_int64(s, 8);
    if (nomem) jobs_adapter_info_clear(a);
    return nomem ? -1 : 0;
}

int jobs_db_adapter_insert(jobs_store *st, jobs_adapter_info *a, char *msg, size_t msgsz) {
    sqlite3_stmt *s = jobs_db_stmt(st, STMT_ADAPTER_INSERT);
    a->created_ms = util_wall_ms();
    jobs_db_bind_text(s, 1, a->name);
    if (a->job_id > 0) sqlite3_bind_int64(s, 2, a->job_id);
    jobs_db_bind_text(s, 3, a->path);
    jobs_db_bind_text(s, 4, a->task);
    jobs_db_bind_text(s, 5, a->kind);
    jobs_db_bind_text(s, 6, a->base_hash);
    jobs_db_bind_text(s, 7, a->metadata ? a->metadata : "{}");
    sqlite3_bind_int64(s, 8, a->created_ms);
    int rc = jobs_db_run(st, s, "add adapter", msg, msgsz);
    if (rc == JOBS_OK)
        a->id = sqlite3_last_insert_rowid(st->db);
    else if (rc == JOBS_EEXIST)
        util_msg(msg, msgsz, rc, "an adapter named '%s' (or of job %lld) exists already", a->name,
                 (long long)a->job_id);
    return rc;
}

int jobs_store_adapter_add(jobs_store *st, jobs_adapter_info *a, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    int rc = jobs_db_adapter_insert(st, a, msg, msgsz);
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
    int rc = jobs_db_fetch_all(st, jobs_db_stmt(st, STMT_ADAPTER_LIST), sizeof(jobs_adapter_info), read_adapter_v,
                               clear_adapter_v, &items, n, "list adapters", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    *out = items;
    return rc;
}

int jobs_store_adapter_delete(jobs_store *st, int64_t id, char *msg, size_t msgsz) {
    return delete_row(st, STMT_ADAPTER_DELETE, "adapter", id, msg, msgsz);
}
