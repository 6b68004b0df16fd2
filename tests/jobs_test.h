/*
 * jobs_test.h - helpers the jobs/ test programs share (test_store.c,
 * test_jobspec.c, test_jobs.c, test_worker.c): temporary data directories,
 * raw SQL beside the store's connection, small dataset files, jobs in a
 * known state. Static inline, so a program that uses some of them is not
 * warned about the others.
 */
#ifndef CODID_TESTS_JOBS_TEST_H
#define CODID_TESTS_JOBS_TEST_H

#include "jobs/dataset.h"
#include "jobs/store.h"

#include <ftw.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static inline int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static inline void rm_tree(const char *dir) {
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static inline int make_tmpdir(char *out, size_t outsz) {
    snprintf(out, outsz, "/tmp/codid_test_jobs_XXXXXX");
    return mkdtemp(out) ? 0 : -1;
}

static inline int file_exists(const char *path) {
    return access(path, F_OK) == 0;
}

static inline void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Runs SQL on a connection of the test's own, beside the store's. */
static inline int raw_exec(const char *dir, const char *sql) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, JOBS_DB_NAME);
    sqlite3 *db;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

/* A dataset file (jobs/dataset.h's layout) of n smooth, distinct images. */
static inline int write_dataset(const char *path, int n, int side, int ch) {
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

static inline long read_all(const char *path, uint8_t **out) {
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

static inline int64_t add_job(jobs_store *st, const char *params) {
    int64_t id = 0;
    char msg[256];
    if (jobs_store_job_insert(st, "distill", params, 10, &id, msg, sizeof msg) != JOBS_OK) return -1;
    return id;
}

static inline jobs_state state_of(jobs_store *st, int64_t id) {
    jobs_job j;
    char msg[256];
    if (jobs_store_job_get(st, id, &j, msg, sizeof msg) != JOBS_OK) return (jobs_state)-1;
    jobs_state s = j.state;
    jobs_job_clear(&j);
    return s;
}

#endif
