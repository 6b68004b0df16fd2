/*
 * test_worker.c - jobs/worker.c and jobs/evaluate.c: workers running real
 * (tiny) training and evaluation jobs: success and registration, stop and
 * exact resume, cancel while queued and while running, pretrain and cm2,
 * and a bad job failing with a message.
 */
#include <cjson/cJSON.h>

#include "engine/engine.h"
#include "jobs/dataset.h"
#include "jobs/jobs.h"
#include "jobs/jobspec.h"
#include "jobs/store.h"
#include "jobs/worker.h"
#include "tests/jobs_test.h"
#include "tests/test.h"
#include "util/log.h"

/* ---- workers on a tiny real model -------------------------------------------------------- */

/* 16 x 16 so that SSIM's 11 x 11 window fits. */
static const char tiny_config[] =
    "{\"sample_size\":16,\"block_out_channels\":[8,16],\"down_block_types\":[\"DownBlock2D\","
    "\"AttnDownBlock2D\"],\"up_block_types\":[\"AttnUpBlock2D\",\"UpBlock2D\"],\"layers_per_block\":1,"
    "\"norm_num_groups\":4,\"attention_head_dim\":8}";

static const char distill_job[] =
    "{\"kind\":\"distill\",\"dataset\":\"tiny\",\"task\":{\"name\":\"sr\",\"factor\":2},"
    "\"adapter_kind\":\"lite\",\"steps\":40,\"batch_size\":2,\"warmup\":2,\"n_grid\":8,\"seed\":5,"
    "\"checkpoint_every\":5,\"name\":\"tiny-sr\"}";

static eng_ctx *ctx;
static eng_model *model;
static char reference_adapter[256]; /* the uninterrupted run's file */

typedef struct env {
    char dir[64];
    jobs_system *sys;
    jobs_store *st;
} env;

/* A data directory with the tiny dataset registered, and its system. */
static int env_start(env *e, int workers) {
    char set[128], msg[512];
    if (make_tmpdir(e->dir, sizeof e->dir) != 0) return -1;
    snprintf(set, sizeof set, "%s/tiny.cds", e->dir);
    if (write_dataset(set, 8, 16, 3) != 0) return -1;
    jobs_system_params p = {workers, 1, ctx, model};
    if (jobs_system_open(e->dir, &e->sys, msg, sizeof msg) != 0 ||
        jobs_system_start_workers(e->sys, &p, msg, sizeof msg) != 0) {
        printf("  start: %s\n", msg);
        return -1;
    }
    e->st = jobs_system_store(e->sys);
    return jobs_dataset_register(e->st, "tiny", set, "file", "train", 0, NULL, msg, sizeof msg);
}

static void env_restart(env *e, int workers) {
    char msg[512];
    jobs_system_stop(e->sys);
    jobs_system_params p = {workers, 1, ctx, model};
    e->sys = NULL;
    if (jobs_system_open(e->dir, &e->sys, msg, sizeof msg) != 0 ||
        jobs_system_start_workers(e->sys, &p, msg, sizeof msg) != 0)
        printf("  restart: %s\n", msg);
    e->st = e->sys ? jobs_system_store(e->sys) : NULL;
}

static void env_end(env *e) {
    jobs_system_stop(e->sys);
    rm_tree(e->dir);
}

/* Polls until the job's state is final or its progress reaches step;
 * the bound only keeps a broken build from hanging the suite. */
static jobs_job wait_job(jobs_store *st, int64_t id, int step) {
    jobs_job j = {0};
    char msg[256];
    for (int i = 0; i < 60000; i++) {
        jobs_job_clear(&j);
        if (jobs_store_job_get(st, id, &j, msg, sizeof msg) != JOBS_OK) break;
        if (jobs_state_is_final(j.state) || (step > 0 && j.progress.step >= step)) break;
        sleep_ms(10);
    }
    return j;
}

TEST(worker_trains_exports_and_registers) {
    env e;
    CHECK(env_start(&e, 1) == 0);
    int64_t id = 0;
    char msg[512];
    CHECK_MSG(jobs_submit(e.st, distill_job, &id, msg, sizeof msg) == JOBS_OK, "%s", msg);
    jobs_job j = wait_job(e.st, id, 0);
    char ckpt[256];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints/job-%lld.safetensors", e.dir, (long long)id);
    snprintf(reference_adapter, sizeof reference_adapter, "%s/adapters/tiny-sr-%lld.safetensors", e.dir, (long long)id);
    int adapter_file = file_exists(reference_adapter), ckpt_left = file_exists(ckpt);
    jobs_adapter_info *list = NULL;
    int n = 0;
    jobs_store_adapter_list(e.st, &list, &n, msg, sizeof msg);
    int64_t adapter_job = n ? list[0].job_id : 0;
    char adapter_name[80] = "", adapter_task[16] = "", adapter_kind[16] = "";
    if (n) {
        snprintf(adapter_name, sizeof adapter_name, "%s", list[0].name);
        snprintf(adapter_task, sizeof adapter_task, "%s", list[0].task);
        snprintf(adapter_kind, sizeof adapter_kind, "%s", list[0].kind);
    }
    for (int i = 0; i < n; i++) jobs_adapter_info_clear(&list[i]);
    free(list);
    jobs_event *ev = NULL;
    int n_ev = 0, progress_rows = 0, results = 0;
    jobs_store_events_since(e.st, id, 0, 1000, &ev, &n_ev, msg, sizeof msg);
    for (int i = 0; i < n_ev; i++) {
        progress_rows += strcmp(ev[i].kind, "progress") == 0;
        results += strcmp(ev[i].kind, "result") == 0;
    }
    jobs_events_free(ev, n_ev);
    /* the test keeps the adapter for the next tests: move it out first */
    char kept[256];
    snprintf(kept, sizeof kept, "/tmp/codid_test_jobs_ref_%d.safetensors", (int)getpid());
    rename(reference_adapter, kept);
    snprintf(reference_adapter, sizeof reference_adapter, "%s", kept);
    env_end(&e);
    CHECK_MSG(j.state == JOBS_SUCCEEDED, "state %s, error %s", jobs_state_name(j.state), j.error ? j.error : "-");
    CHECK_EQ_INT(j.progress.step, 40);
    CHECK_EQ_INT(j.progress.total, 40);
    CHECK(isfinite(j.progress.loss_smooth) && isfinite(j.progress.it_per_s) && j.progress.it_per_s > 0);
    printf("  (%.1f it/s, smoothed loss %.4f)\n", j.progress.it_per_s, j.progress.loss_smooth);
    CHECK_EQ_INT(j.attempts, 1);
    CHECK(j.result && strstr(j.result, "\"adapter_id\":1"));
    CHECK(j.checkpoint == NULL);
    jobs_job_clear(&j);
    CHECK(adapter_file);
    CHECK(!ckpt_left);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(adapter_job, id);
    CHECK_EQ_STR(adapter_name, "tiny-sr");
    CHECK_EQ_STR(adapter_task, "sr");
    CHECK_EQ_STR(adapter_kind, "lite");
    /* the first step, then every JOBS_PROGRESS_EVERY */
    CHECK_EQ_INT(progress_rows, 1 + 40 / JOBS_PROGRESS_EVERY);
    CHECK_EQ_INT(results, 1);
}

TEST(stopped_job_resumes_to_identical_adapter) {
    CHECK_MSG(*reference_adapter, "needs worker_trains_exports_and_registers");
    env e;
    CHECK(env_start(&e, 1) == 0);
    int64_t id = 0;
    char msg[512], ckpt[256], out[256];
    CHECK(jobs_submit(e.st, distill_job, &id, msg, sizeof msg) == JOBS_OK);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints/job-%lld.safetensors", e.dir, (long long)id);
    snprintf(out, sizeof out, "%s/adapters/tiny-sr-%lld.safetensors", e.dir, (long long)id);
    jobs_job j = wait_job(e.st, id, 1);
    jobs_job_clear(&j);
    /* as on SIGTERM: the worker finishes its step, checkpoints, requeues */
    jobs_system_stop(e.sys);
    e.sys = NULL;
    jobs_store *st = NULL;
    CHECK(jobs_store_open(e.dir, 0, &st, msg, sizeof msg) == JOBS_OK);
    jobs_store_job_get(st, id, &j, msg, sizeof msg);
    jobs_store_close(st);
    jobs_state stopped_state = j.state;
    int had_ckpt = file_exists(ckpt), stopped_step = j.progress.step;
    jobs_job_clear(&j);
    env_restart(&e, 1);
    CHECK(e.st);
    j = wait_job(e.st, id, 0);
    /* resumed, not redone: step 1 was run once, and the second run's first
     * step (it records a progress row) came after the checkpoint */
    jobs_event *ev = NULL;
    int n_ev = 0, step_one = 0, states = 0, resumed_step = 0;
    jobs_store_events_since(e.st, id, 0, 1000, &ev, &n_ev, msg, sizeof msg);
    for (int i = 0; i < n_ev; i++) {
        if (strcmp(ev[i].kind, "state") == 0 && strstr(ev[i].payload, "running")) states++;
        if (strcmp(ev[i].kind, "progress") != 0) continue;
        cJSON *p = cJSON_Parse(ev[i].payload);
        int step = (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(p, "step"));
        cJSON_Delete(p);
        step_one += step == 1;
        if (states == 2 && !resumed_step) resumed_step = step;
    }
    jobs_events_free(ev, n_ev);
    uint8_t *a = NULL, *b = NULL;
    long na = read_all(reference_adapter, &a), nb = read_all(out, &b);
    int same = na > 0 && na == nb && memcmp(a, b, (size_t)na) == 0;
    free(a);
    free(b);
    env_end(&e);
    CHECK_EQ_INT(stopped_state, JOBS_QUEUED);
    CHECK(had_ckpt);
    CHECK(stopped_step >= 1);
    CHECK_MSG(j.state == JOBS_SUCCEEDED, "state %s, error %s", jobs_state_name(j.state), j.error ? j.error : "-");
    CHECK_EQ_INT(j.attempts, 2);
    jobs_job_clear(&j);
    CHECK_EQ_INT(step_one, 1);
    CHECK_MSG(resumed_step > 1, "the second run began at step %d", resumed_step);
    printf("  (stopped, then resumed with step %d of 40)\n", resumed_step);
    CHECK_MSG(same, "adapter differs from the uninterrupted run (%ld vs %ld bytes)", na, nb);
}

TEST(cancel_running_job_then_evaluate) {
    CHECK_MSG(*reference_adapter, "needs worker_trains_exports_and_registers");
    env e;
    CHECK(env_start(&e, 1) == 0);
    char msg[512], ckpt[256];
    jobs_adapter_info reg;
    CHECK_MSG(jobs_adapter_register(e.st, "ref", reference_adapter, &reg, msg, sizeof msg) == JOBS_OK, "%s", msg);
    int task_ok = strcmp(reg.task, "sr") == 0;
    jobs_adapter_info_clear(&reg);
    int64_t id = 0, eval = 0;
    CHECK(jobs_submit(e.st,
                      "{\"kind\":\"distill\",\"dataset\":\"tiny\",\"task\":{\"name\":\"sr\"},\"adapter_kind\":\"lite\","
                      "\"steps\":1000000,\"batch_size\":2,\"n_grid\":8,\"checkpoint_every\":2}",
                      &id, msg, sizeof msg) == JOBS_OK);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints/job-%lld.safetensors", e.dir, (long long)id);
    jobs_job j = wait_job(e.st, id, 3);
    jobs_job_clear(&j);
    int had_ckpt = file_exists(ckpt);
    jobs_job after;
    int rc = jobs_cancel(e.st, id, &after, msg, sizeof msg);
    int flagged = rc == JOBS_OK && after.cancel_requested;
    if (rc == JOBS_OK) jobs_job_clear(&after);
    j = wait_job(e.st, id, 0);
    int ckpt_left = file_exists(ckpt);
    /* the worker is free again: an evaluation of the registered adapter */
    int rc_eval = jobs_submit(e.st,
                              "{\"kind\":\"evaluate\",\"dataset\":\"tiny\",\"adapter\":\"ref\",\"n\":5,"
                              "\"sample_steps\":2,\"seed\":3}",
                              &eval, msg, sizeof msg);
    jobs_job ej = wait_job(e.st, eval, 0);
    cJSON *result = ej.result ? cJSON_Parse(ej.result) : NULL;
    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(result, "metrics");
    double psnr = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(metrics, "psnr"));
    double ssim = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(metrics, "ssim"));
    double n = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(result, "n"));
    cJSON_Delete(result);
    env_end(&e);
    CHECK(task_ok);
    CHECK_EQ_INT(rc, JOBS_OK);
    CHECK(flagged);
    CHECK(had_ckpt);
    CHECK_MSG(j.state == JOBS_CANCELLED, "state %s", jobs_state_name(j.state));
    CHECK(j.progress.step >= 3 && j.progress.step < 1000000);
    CHECK(j.error && strstr(j.error, "cancelled at step"));
    jobs_job_clear(&j);
    CHECK(!ckpt_left);
    CHECK_EQ_INT(rc_eval, JOBS_OK);
    CHECK_MSG(ej.state == JOBS_SUCCEEDED, "evaluate: %s %s", jobs_state_name(ej.state), ej.error ? ej.error : "");
    jobs_job_clear(&ej);
    CHECK_EQ_INT((int)n, 5);
    CHECK(psnr > 0 && psnr <= ENG_PSNR_CAP_DB);
    CHECK(ssim > -1 && ssim <= 1);
    printf("  (evaluate: PSNR %.2f dB, SSIM %.4f on 5 images)\n", psnr, ssim);
}

TEST(pretrain_and_cm2_jobs) {
    CHECK_MSG(*reference_adapter, "needs worker_trains_exports_and_registers");
    env e;
    CHECK(env_start(&e, 1) == 0);
    char msg[512], folder[256], config[300], weights[300];
    CHECK(jobs_adapter_register(e.st, "teacher-ref", reference_adapter, NULL, msg, sizeof msg) == JOBS_OK);
    int64_t pre = 0, cm2 = 0;
    CHECK_MSG(jobs_submit(e.st,
                          "{\"kind\":\"pretrain\",\"dataset\":\"tiny\",\"steps\":3,\"batch_size\":2,"
                          "\"name\":\"base\"}",
                          &pre, msg, sizeof msg) == JOBS_OK,
              "%s", msg);
    CHECK_MSG(jobs_submit(e.st,
                          "{\"kind\":\"cm2\",\"dataset\":\"tiny\",\"teacher\":\"teacher-ref\","
                          "\"task\":{\"name\":\"sr\",\"factor\":2},\"adapter_kind\":\"lite\",\"steps\":3,"
                          "\"batch_size\":2,\"n_grid\":8}",
                          &cm2, msg, sizeof msg) == JOBS_OK,
              "%s", msg);
    jobs_job p = wait_job(e.st, pre, 0), c = wait_job(e.st, cm2, 0);
    snprintf(folder, sizeof folder, "%s/models/base-%lld", e.dir, (long long)pre);
    snprintf(config, sizeof config, "%s/config.json", folder);
    snprintf(weights, sizeof weights, "%s/diffusion_pytorch_model.safetensors", folder);
    int exported = file_exists(config) && file_exists(weights);
    /* the exported model loads */
    eng_model *m = NULL;
    eng_error err;
    int loads = eng_model_load(ctx, folder, &m, &err) == ENG_OK;
    eng_model_free(m);
    jobs_adapter_info a;
    int cm2_registered = jobs_store_adapter_get(e.st, 0, "cm2-sr-2", &a, msg, sizeof msg) == JOBS_OK;
    if (cm2_registered) jobs_adapter_info_clear(&a);
    env_end(&e);
    CHECK_MSG(p.state == JOBS_SUCCEEDED, "pretrain: %s %s", jobs_state_name(p.state), p.error ? p.error : "");
    CHECK(p.result && strstr(p.result, "model_path") && !strstr(p.result, "adapter_id"));
    jobs_job_clear(&p);
    CHECK(exported);
    CHECK(loads);
    CHECK_MSG(c.state == JOBS_SUCCEEDED, "cm2: %s %s", jobs_state_name(c.state), c.error ? c.error : "");
    jobs_job_clear(&c);
    CHECK(cm2_registered);
}

TEST(bad_job_fails_with_a_message) {
    env e;
    CHECK(env_start(&e, 1) == 0);
    char set[128], msg[512];
    snprintf(set, sizeof set, "%s/small.cds", e.dir);
    CHECK(write_dataset(set, 4, 16, 3) == 0);
    CHECK(jobs_dataset_register(e.st, "small", set, "file", NULL, 0, NULL, msg, sizeof msg) == JOBS_OK);
    unlink(set); /* registered, then gone */
    int64_t id = 0;
    CHECK(jobs_submit(e.st, "{\"kind\":\"teacher\",\"dataset\":\"small\",\"task\":{\"name\":\"sr\"},\"steps\":3}", &id,
                      msg, sizeof msg) == JOBS_OK);
    jobs_job j = wait_job(e.st, id, 0);
    env_end(&e);
    CHECK_EQ_INT(j.state, JOBS_FAILED);
    CHECK_MSG(j.error && strstr(j.error, "small"), "error: %s", j.error ? j.error : "(none)");
    jobs_job_clear(&j);
}

int main(void) {
    util_log_set_level(UTIL_LOG_WARN);
    eng_ctx_params cp;
    eng_ctx_params_init(&cp);
    cp.device = ENG_DEVICE_CPU;
    eng_error err;
    if (eng_ctx_create(&cp, &ctx, &err) != ENG_OK ||
        eng_model_create(ctx, tiny_config, NULL, 11, &model, &err) != ENG_OK) {
        printf("FAIL engine: %s\n", err.msg);
        test_failed_++;
    } else {
        RUN(worker_trains_exports_and_registers);
        RUN(stopped_job_resumes_to_identical_adapter);
        RUN(cancel_running_job_then_evaluate);
        RUN(pretrain_and_cm2_jobs);
        RUN(bad_job_fails_with_a_message);
    }
    if (*reference_adapter) unlink(reference_adapter);
    eng_model_free(model);
    eng_ctx_free(ctx);
    return TEST_SUMMARY();
}
