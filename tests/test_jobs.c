/*
 * test_jobs.c - jobs/jobs.c: the operations (submit with its checks of
 * references and names, list pages, events since an id, the registries) and
 * start-up (requeue after a crash, clean-up of temporaries, the data
 * directory's lock, giving up on a job that keeps crashing).
 */
#include <cjson/cJSON.h>

#include "jobs/dataset.h"
#include "jobs/jobs.h"
#include "jobs/store.h"
#include "tests/jobs_test.h"
#include "tests/test.h"
#include "util/log.h"

TEST(list_pages_newest_first) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    for (int i = 0; i < 5; i++) add_job(st, "{}");
    jobs_job j;
    jobs_store_claim(st, &j, msg, sizeof msg); /* job 1 runs */
    jobs_job_clear(&j);
    jobs_job *page = NULL, *running = NULL;
    int n = 0, n_running = 0, ids[5], k = 0;
    int64_t next = 0, none = -1;
    int rc1 = JOBS_OK;
    for (int p = 0; p < 3; p++) {
        int rc = jobs_list(st, NULL, next, 2, &page, &n, &next, msg, sizeof msg);
        if (p == 0) rc1 = rc;
        for (int i = 0; i < n; i++) {
            if (k < 5) ids[k++] = (int)page[i].id;
            jobs_job_clear(&page[i]);
        }
        free(page);
    }
    int null_next = next == 0;
    jobs_list(st, "running", 0, 10, &running, &n_running, &none, msg, sizeof msg);
    for (int i = 0; i < n_running; i++) jobs_job_clear(&running[i]);
    free(running);
    int rc_bad = jobs_list(st, "sleeping", 0, 10, &running, &n, &none, msg, sizeof msg);
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
    jobs_event *all = NULL, *tail = NULL, *none = NULL;
    int n_all = 0, n_tail = 0, n_none = 0;
    int rc = jobs_events_since(st, id, 0, 100, &all, &n_all, msg, sizeof msg);
    int64_t after = n_all > 2 ? all[2].id : 0; /* queued, running, then progress 1 */
    jobs_events_since(st, id, after, 100, &tail, &n_tail, msg, sizeof msg);
    cJSON *data = n_tail ? cJSON_Parse(tail[n_tail - 1].payload) : NULL;
    double step = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(data, "step"));
    double loss = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(data, "loss"));
    int is_progress = n_tail && strcmp(tail[n_tail - 1].kind, "progress") == 0;
    cJSON_Delete(data);
    int rc_missing = jobs_events_since(st, 42, 0, 10, &none, &n_none, msg, sizeof msg);
    jobs_progress prog[100];
    int n_prog = 0;
    int64_t last_id = 0, end_id = 0;
    int rc_prog = jobs_progress_since(st, id, 0, 100, prog, &n_prog, &last_id, msg, sizeof msg);
    int n_after = -1;
    jobs_progress_since(st, id, last_id, 100, prog + 50, &n_after, &end_id, msg, sizeof msg);
    int64_t newest = n_all ? all[n_all - 1].id : -1;
    jobs_events_free(all, n_all);
    jobs_events_free(tail, n_tail);
    jobs_store_close(st);
    rm_tree(dir);
    CHECK_EQ_INT(rc, JOBS_OK);
    CHECK_EQ_INT(n_all, 5);
    CHECK_EQ_INT(n_tail, 2);
    CHECK(is_progress);
    CHECK_EQ_INT((int)step, 3);
    CHECK_NEAR(loss, 1.0 / 3, 1e-6);
    CHECK_EQ_INT(rc_missing, JOBS_ENOTFOUND);
    CHECK_EQ_INT(rc_prog, JOBS_OK);
    CHECK_EQ_INT(n_prog, 3);
    CHECK_EQ_INT(prog[2].step, 3);
    CHECK_EQ_INT(prog[2].total, 10);
    CHECK_NEAR(prog[2].loss, 1.0 / 3, 1e-6);
    CHECK(last_id == newest);
    CHECK_EQ_INT(n_after, 0);
    CHECK(end_id == last_id);
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
    jobs_dataset_info ds = {0};
    int rc_reg = jobs_dataset_register(st, "tiny", set, "file", "train", 0, &ds, msg, sizeof msg);
    int count = ds.count, size = ds.size;
    jobs_dataset_info_clear(&ds);
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
    snprintf(path, sizeof path, "%s/datasets", dir);
    mkdir(path, 0755);
    char tmp1[256], tmp2[256], tmp3[256], keep[256], keep2[256];
    snprintf(tmp1, sizeof tmp1, "%s/checkpoints/job-1.safetensors.tmp", dir);
    snprintf(tmp2, sizeof tmp2, "%s/adapters/x-1.safetensors.tmp", dir);
    /* the dataset writer's mkstemp name, left by a crash mid-import */
    snprintf(tmp3, sizeof tmp3, "%s/datasets/up-r1.cds.tmp-Ab12Cd", dir);
    snprintf(keep, sizeof keep, "%s/checkpoints/job-1.safetensors", dir);
    snprintf(keep2, sizeof keep2, "%s/datasets/a.tmpl.cds", dir);
    fclose(fopen(tmp1, "w"));
    fclose(fopen(tmp2, "w"));
    fclose(fopen(tmp3, "w"));
    fclose(fopen(keep, "w"));
    fclose(fopen(keep2, "w"));

    jobs_system *sys = NULL, *second = NULL;
    int rc = jobs_system_open(dir, &sys, msg, sizeof msg);
    char start_msg[512];
    snprintf(start_msg, sizeof start_msg, "%s", msg);
    int rc2 = jobs_system_open(dir, &second, msg, sizeof msg);
    char second_msg[512];
    snprintf(second_msg, sizeof second_msg, "%s", msg);
    jobs_state s = sys ? state_of(jobs_system_store(sys), a) : (jobs_state)-1;
    jobs_system_stop(sys);
    int t1 = file_exists(tmp1), t2 = file_exists(tmp2), t3 = file_exists(tmp3);
    int k = file_exists(keep) && file_exists(keep2);
    rm_tree(dir);
    CHECK_MSG(rc == 0, "%s", start_msg);
    CHECK_EQ_INT(rc2, -1);
    CHECK_MSG(strstr(second_msg, "another codid process"), "message: %s", second_msg);
    CHECK_EQ_INT(s, JOBS_QUEUED);
    CHECK(!t1 && !t2 && !t3);
    CHECK(k);
}

/* One crash of job id while it runs: claimed, a checkpoint at `step` when
 * step > 0, then start-up. The job's state after it. */
static jobs_state crash_once(jobs_store *st, int64_t id, int step, int *requeued) {
    char msg[512];
    jobs_job j;
    if (jobs_store_claim(st, &j, msg, sizeof msg) == JOBS_OK) jobs_job_clear(&j);
    if (step > 0) jobs_store_set_checkpoint(st, id, "ckpt", step, msg, sizeof msg);
    *requeued = -1;
    jobs_store_requeue_running(st, requeued, msg, sizeof msg);
    return state_of(st, id);
}

/* A job that brings the daemon down at the same point every time (no new
 * checkpoint between the crashes) is retried JOBS_MAX_STALLED_RECOVERIES
 * times, then failed with the reason; another job found running once is
 * only requeued. */
TEST(start_up_gives_up_on_a_job_that_keeps_crashing) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    int64_t a = add_job(st, "{}");
    enum { N = JOBS_MAX_STALLED_RECOVERIES + 2 };
    int requeued[N];
    jobs_state states[N];
    /* the first run checkpoints at step 20 (progress), every later one
     * crashes before its next checkpoint */
    for (int i = 0; i < N; i++) states[i] = crash_once(st, a, i == 0 ? 20 : 0, &requeued[i]);
    jobs_job j;
    int rc_get = jobs_store_job_get(st, a, &j, msg, sizeof msg);
    int says_why = rc_get == JOBS_OK && j.error && strstr(j.error, "not retried") &&
                   strstr(j.error, "4 times in a row") && strstr(j.error, "step 20");
    if (rc_get == JOBS_OK) jobs_job_clear(&j);
    int64_t b = add_job(st, "{}"); /* a later job is unaffected */
    int claimed_b = jobs_store_claim(st, &j, msg, sizeof msg) == JOBS_OK && j.id == b;
    if (claimed_b) jobs_job_clear(&j);
    int n_b = -1;
    jobs_store_requeue_running(st, &n_b, msg, sizeof msg);
    jobs_state sb = state_of(st, b);
    jobs_store_close(st);
    rm_tree(dir);
    for (int i = 0; i < N - 1; i++) {
        CHECK_EQ_INT(requeued[i], 1);
        CHECK_EQ_INT(states[i], JOBS_QUEUED);
    }
    CHECK_EQ_INT(requeued[N - 1], 0);
    CHECK_EQ_INT(states[N - 1], JOBS_FAILED);
    CHECK(says_why);
    CHECK(claimed_b);
    CHECK_EQ_INT(n_b, 1);
    CHECK_EQ_INT(sb, JOBS_QUEUED);
}

/* A job preempted many times, with a new checkpoint after at most
 * JOBS_MAX_STALLED_RECOVERIES crashes in a row without one, is always
 * requeued: what counts is crashes without progress, not crashes. */
TEST(start_up_requeues_a_job_that_moves_on_between_crashes) {
    char dir[64], msg[512];
    CHECK(make_tmpdir(dir, sizeof dir) == 0);
    jobs_store *st = NULL;
    CHECK(jobs_store_open(dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    int64_t a = add_job(st, "{}");
    int all_requeued = 1, step = 0;
    for (int i = 0; i < 40; i++) {
        int progress = i % (JOBS_MAX_STALLED_RECOVERIES + 1) == 0; /* 3 crashes without, then one with */
        if (progress) step += 4;
        int n = -1;
        jobs_state s = crash_once(st, a, progress ? step : 0, &n);
        all_requeued = all_requeued && n == 1 && s == JOBS_QUEUED;
    }
    jobs_store_close(st);
    rm_tree(dir);
    CHECK(all_requeued);
}

int main(void) {
    util_log_set_level(UTIL_LOG_WARN);
    RUN(list_pages_newest_first);
    RUN(events_resume_after_an_id);
    RUN(submit_checks_references_and_names);
    RUN(start_up_requeues_cleans_and_locks);
    RUN(start_up_gives_up_on_a_job_that_keeps_crashing);
    RUN(start_up_requeues_a_job_that_moves_on_between_crashes);
    return TEST_SUMMARY();
}
