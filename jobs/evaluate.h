/*
 * evaluate.h - what an `evaluate` job does: generate with an adapter from
 * the conditions of a dataset's first n images and score each output
 * against its source image with the engine's PSNR and SSIM (eng_psnr,
 * eng_ssim: 11x11 Gaussian window, sigma 1.5, Wang et al. 2004).
 */
#ifndef CODID_JOBS_EVALUATE_H
#define CODID_JOBS_EVALUATE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "jobs/dataset.h"

#define JOBS_EVAL_BATCH 8

typedef struct jobs_eval_result {
    int n;       /* images scored */
    int steps;   /* sampling steps used */
    double psnr; /* mean over images, dB */
    double ssim; /* mean over images; NaN for images under 11 pixels a side,
                    too small for SSIM's window */
} jobs_eval_result;

/*
 * Scores adapter a (loaded on m) on the first n images of ds. steps: 0 for
 * the engine's evaluation default (eng_default_steps: 4 with a distilled
 * adapter, 50 with a teacher). Conditions and sampling
 * noise come from seed, so a run is repeatable. progress (may be NULL) is
 * called after each batch of JOBS_EVAL_BATCH images; a non-zero return stops
 * the evaluation with ENG_ECANCELLED. Returns an eng_status with a message.
 */
int jobs_evaluate(eng_model *m, eng_adapter *a, const jobs_dataset *ds, int n, int steps, uint64_t seed,
                  int (*progress)(int done, int total, void *user), void *user, jobs_eval_result *out, char *msg,
                  size_t msgsz);

#endif
