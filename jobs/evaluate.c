/*
 * evaluate.c - see evaluate.h. Batches of JOBS_EVAL_BATCH images: the task
 * turns the references into conditions (eng_task_apply), the adapter
 * samples one output per condition, and the batch's outputs are scored
 * against their references; batch means are weighted by batch size.
 */
#include "jobs/evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SSIM_MIN_SIDE 11

int jobs_evaluate(eng_model *m, eng_adapter *a, const jobs_dataset *ds, int n, int steps, uint64_t seed,
                  int (*progress)(int done, int total, void *user), void *user, jobs_eval_result *out, char *msg,
                  size_t msgsz) {
    eng_model_info mi;
    eng_adapter_info ai;
    eng_model_get_info(m, &mi);
    eng_adapter_get_info(a, &ai);
    if (ds->width != mi.sample_size || ds->height != mi.sample_size || ds->channels != mi.in_channels ||
        mi.out_channels != mi.in_channels) {
        snprintf(msg, msgsz, "the dataset's images are %dx%dx%d; the model takes and makes %dx%dx%d", ds->width,
                 ds->height, ds->channels, mi.sample_size, mi.sample_size, mi.in_channels);
        return ENG_EINVAL;
    }
    if (n < 1 || n > ds->count) n = ds->count;
    if (steps < 1) steps = eng_default_steps(m, a, 1);

    size_t img_bytes = jobs_dataset_image_bytes(ds);
    int cond_ch = eng_task_cond_channels(&ai.task, ds->channels);
    size_t cond_bytes = (size_t)ds->width * ds->height * cond_ch;
    uint8_t *cond = malloc(cond_bytes * JOBS_EVAL_BATCH), *made = malloc(img_bytes * JOBS_EVAL_BATCH);
    if (!cond || !made) {
        free(cond);
        free(made);
        snprintf(msg, msgsz, "out of memory");
        return ENG_ENOMEM;
    }
    int with_ssim = ds->width >= SSIM_MIN_SIDE && ds->height >= SSIM_MIN_SIDE;
    double psnr_sum = 0, ssim_sum = 0;
    int rc = ENG_OK;
    for (int first = 0; first < n && rc == ENG_OK; first += JOBS_EVAL_BATCH) {
        int nb = n - first < JOBS_EVAL_BATCH ? n - first : JOBS_EVAL_BATCH;
        eng_images refs = {nb, ds->height, ds->width, ds->channels, jobs_dataset_image(ds, first)};
        eng_images outs = {nb, ds->height, ds->width, ds->channels, made};
        eng_error err = {0};
        eng_image conds[JOBS_EVAL_BATCH], gen[JOBS_EVAL_BATCH];
        memset(gen, 0, sizeof gen);
        rc = eng_task_apply(&ai.task, &refs, seed + (uint64_t)first, cond, &err);
        if (rc == ENG_OK) {
            for (int i = 0; i < nb; i++) conds[i] = (eng_image){ds->width, ds->height, cond_ch, cond + cond_bytes * i};
            eng_gen_params gp;
            eng_gen_params_init(&gp);
            gp.n = nb;
            gp.steps = steps;
            gp.seed = seed + (uint64_t)first;
            rc = eng_generate(m, a, &gp, conds, gen, &err);
        }
        for (int i = 0; rc == ENG_OK && i < nb; i++) memcpy(made + img_bytes * i, gen[i].data, img_bytes);
        for (int i = 0; i < nb; i++) eng_image_free(&gen[i]);
        double psnr = 0, ssim = 0;
        if (rc == ENG_OK) rc = eng_psnr(&outs, &refs, &psnr, &err);
        if (rc == ENG_OK && with_ssim) rc = eng_ssim(&outs, &refs, &ssim, &err);
        if (rc != ENG_OK) {
            snprintf(msg, msgsz, "%s", err.msg);
            break;
        }
        psnr_sum += psnr * nb;
        ssim_sum += ssim * nb;
        if (progress && progress(first + nb, n, user)) {
            snprintf(msg, msgsz, "stopped after %d of %d images", first + nb, n);
            rc = ENG_ECANCELLED;
        }
    }
    free(cond);
    free(made);
    if (rc == ENG_OK) *out = (jobs_eval_result){n, steps, psnr_sum / n, with_ssim ? ssim_sum / n : NAN};
    return rc;
}
