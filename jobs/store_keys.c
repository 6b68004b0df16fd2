/*
 * store_keys.c - see store.h: API keys. Only a key's public prefix and the
 * SHA-256 of the whole key are stored (api/auth.c hashes and compares); a
 * revoked key keeps its row, with the time it was revoked.
 */
#include "jobs/store.h"
#include "jobs/store_db.h"
#include "util/clock.h"
#include "util/msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- API keys and counts (api/auth.c, api/metrics.c) ------------------------------ */

static int read_key_v(sqlite3_stmt *s, void *out) {
    jobs_api_key *k = out;
    memset(k, 0, sizeof *k);
    k->id = sqlite3_column_int64(s, 0);
    jobs_db_col_copy(s, 1, k->prefix, sizeof k->prefix);
    jobs_db_col_copy(s, 2, k->hash, sizeof k->hash);
    jobs_db_col_copy(s, 3, k->scope, sizeof k->scope);
    k->created_ms = sqlite3_column_int64(s, 4);
    k->revoked_ms = sqlite3_column_int64(s, 5);
    return 0;
}

int jobs_store_key_add(jobs_store *st, const char *prefix, const char *hash_hex, const char *scope, int64_t *id,
                       char *msg, size_t msgsz) {
    if (!prefix || !*prefix || strlen(prefix) > JOBS_KEY_PREFIX_MAX || !hash_hex ||
        strlen(hash_hex) != JOBS_KEY_HASH_HEX || !scope ||
        (strcmp(scope, "generate") != 0 && strcmp(scope, "admin") != 0))
        return util_msg(msg, msgsz, JOBS_EINVAL, "a key needs a prefix, a SHA-256 and a scope (generate or admin)");
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = jobs_db_stmt(st, STMT_KEY_INSERT);
    jobs_db_bind_text(s, 1, prefix);
    jobs_db_bind_text(s, 2, hash_hex);
    jobs_db_bind_text(s, 3, scope);
    sqlite3_bind_int64(s, 4, util_wall_ms());
    int rc = jobs_db_run(st, s, "add key", msg, msgsz);
    if (rc == JOBS_OK && id) *id = sqlite3_last_insert_rowid(st->db);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_key_find(jobs_store *st, const char *prefix, jobs_api_key *out, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = jobs_db_stmt(st, STMT_KEY_FIND);
    jobs_db_bind_text(s, 1, prefix);
    int rc = jobs_db_fetch_one(st, s, read_key_v, out, "key", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_key_count(jobs_store *st, int *n, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    int rc = jobs_db_fetch_one(st, jobs_db_stmt(st, STMT_KEY_COUNT), jobs_db_read_int_v, n, "key count", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    return rc;
}

int jobs_store_key_list(jobs_store *st, jobs_api_key **out, int *n, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    void *items = NULL;
    int rc = jobs_db_fetch_all(st, jobs_db_stmt(st, STMT_KEY_LIST), sizeof(jobs_api_key), read_key_v, NULL, &items, n,
                               "list keys", msg, msgsz);
    pthread_mutex_unlock(&st->lock);
    *out = items;
    return rc;
}

int jobs_store_key_revoke(jobs_store *st, int64_t id, char *msg, size_t msgsz) {
    pthread_mutex_lock(&st->lock);
    sqlite3_stmt *s = jobs_db_stmt(st, STMT_KEY_REVOKE);
    sqlite3_bind_int64(s, 1, id);
    sqlite3_bind_int64(s, 2, util_wall_ms());
    int rc = jobs_db_run(st, s, "revoke key", msg, msgsz);
    if (rc == JOBS_OK && sqlite3_changes(st->db) == 0)
        rc = util_msg(msg, msgsz, JOBS_ENOTFOUND, "no active key %lld", (long long)id);
    pthread_mutex_unlock(&st->lock);
    return rc;
}
