/*
 * psnr_ssim.c - the fidelity metrics of CODI.md 'Measuring quality' on 8-bit
 * images, in plain C so that jobs and benchmarks need no torch to use them
 * (declared in engine.h's metrics section).
 *
 * PSNR, per image over all its h * w * c samples:
 *     MSE = mean((a - b)^2),  PSNR = 10 log10(255^2 / MSE) dB,
 * capped at ENG_PSNR_CAP_DB (MSE 0 would give infinity), then averaged over
 * the images.
 *
 * SSIM (Wang, Bovik, Sheikh, Simoncelli 2004), per channel: with a normalised
 * 11x11 Gaussian window w (sigma 1.5) and local statistics
 *     mu_a = w * a,  s_a^2 = w * a^2 - mu_a^2,  s_ab = w * (a b) - mu_a mu_b,
 *     SSIM = (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2)),
 *     C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = 255,
 * averaged over the window positions that lie wholly inside the image (the
 * reference MATLAB code's 'valid' filtering; its optional downsampling of
 * large images is not done), then over channels, then over images. The
 * window is separable, so each statistic is two 1-D passes.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/engine.h"

#define SSIM_WIN   11
#define SSIM_SIGMA 1.5
#define SSIM_K1    0.01
#define SSIM_K2    0.03
#define PIXEL_MAX  255.0

static int fail(eng_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

static int check_pair(const eng_images *a, const eng_images *b, int min_side, eng_error *err) {
    if (!a || !b || !a->data || !b->data || a->n < 1) return fail(err, ENG_EINVAL, "no images");
    if (a->n != b->n || a->height != b->height || a->width != b->width || a->channels != b->channels)
        return fail(err, ENG_EINVAL, "the image sets differ in count or shape (%dx%dx%dx%d vs %dx%dx%dx%d)", a->n,
                    a->width, a->height, a->channels, b->n, b->width, b->height, b->channels);
    if (a->height < min_side || a->width < min_side)
        return fail(err, ENG_EINVAL, "images need sides of at least %d pixels", min_side);
    if (err) {
        err->code = ENG_OK;
        err->msg[0] = '\0';
    }
    return ENG_OK;
}

int eng_psnr(const eng_images *a, const eng_images *b, double *out, eng_error *err) {
    int rc = check_pair(a, b, 1, err);
    if (rc != ENG_OK) return rc;
    size_t per = (size_t)a->height * a->width * a->channels;
    double total = 0;
    for (int i = 0; i < a->n; i++) {
        const uint8_t *pa = a->data + per * i, *pb = b->data + per * i;
        double sq = 0;
        for (size_t k = 0; k < per; k++) {
            double d = (double)pa[k] - pb[k];
            sq += d * d;
        }
        double mse = sq / per;
        double db = mse > 0 ? 10 * log10(PIXEL_MAX * PIXEL_MAX / mse) : ENG_PSNR_CAP_DB;
        total += db < ENG_PSNR_CAP_DB ? db : ENG_PSNR_CAP_DB;
    }
    *out = total / a->n;
    return ENG_OK;
}

/* Valid 1-D filtering along rows then columns: src is h x w, dst is
 * (h - 10) x (w - 10); tmp holds h x (w - 10). */
static void gauss_valid(const double *src, int h, int w, const double *g, double *tmp, double *dst) {
    int ow = w - SSIM_WIN + 1, oh = h - SSIM_WIN + 1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < ow; x++) {
            double s = 0;
            for (int k = 0; k < SSIM_WIN; k++) s += g[k] * src[(size_t)y * w + x + k];
            tmp[(size_t)y * ow + x] = s;
        }
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            double s = 0;
            for (int k = 0; k < SSIM_WIN; k++) s += g[k] * tmp[(size_t)(y + k) * ow + x];
            dst[(size_t)y * ow + x] = s;
        }
}

enum { ST_A, ST_B, ST_AA, ST_BB, ST_AB, ST_COUNT };

int eng_ssim(const eng_images *a, const eng_images *b, double *out, eng_error *err) {
    int rc = check_pair(a, b, SSIM_WIN, err);
    if (rc != ENG_OK) return rc;
    double g[SSIM_WIN], gsum = 0;
    for (int k = 0; k < SSIM_WIN; k++) {
        double u = k - SSIM_WIN / 2;
        g[k] = exp(-u * u / (2 * SSIM_SIGMA * SSIM_SIGMA));
        gsum += g[k];
    }
    for (int k = 0; k < SSIM_WIN; k++) g[k] /= gsum;
    const double c1 = (SSIM_K1 * PIXEL_MAX) * (SSIM_K1 * PIXEL_MAX);
    const double c2 = (SSIM_K2 * PIXEL_MAX) * (SSIM_K2 * PIXEL_MAX);
    int h = a->height, w = a->width, c = a->channels;
    size_t plane = (size_t)h * w, outp = (size_t)(h - SSIM_WIN + 1) * (w - SSIM_WIN + 1);
    /* five input planes, one scratch, five filtered planes */
    double *buf = malloc(sizeof(double) * (ST_COUNT * plane + plane + ST_COUNT * outp));
    if (!buf) return fail(err, ENG_ENOMEM, "out of memory for SSIM of %dx%d images", w, h);
    double *in = buf, *tmp = buf + ST_COUNT * plane, *flt = tmp + plane;
    size_t per = plane * c;
    double total = 0;
    for (int i = 0; i < a->n; i++) {
        const uint8_t *pa = a->data + per * i, *pb = b->data + per * i;
        double img = 0;
        for (int ch = 0; ch < c; ch++) {
            for (size_t k = 0; k < plane; k++) {
                double x = pa[k * c + ch], y = pb[k * c + ch];
                in[ST_A * plane + k] = x;
                in[ST_B * plane + k] = y;
                in[ST_AA * plane + k] = x * x;
                in[ST_BB * plane + k] = y * y;
                in[ST_AB * plane + k] = x * y;
            }
            for (int s = 0; s < ST_COUNT; s++) gauss_valid(in + s * plane, h, w, g, tmp, flt + s * outp);
            double sum = 0;
            for (size_t k = 0; k < outp; k++) {
                double ma = flt[ST_A * outp + k], mb = flt[ST_B * outp + k];
                double va = flt[ST_AA * outp + k] - ma * ma, vb = flt[ST_BB * outp + k] - mb * mb;
                double cov = flt[ST_AB * outp + k] - ma * mb;
                sum += (2 * ma * mb + c1) * (2 * cov + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
            }
            img += sum / outp;
        }
        total += img / c;
    }
    free(buf);
    *out = total / a->n;
    return ENG_OK;
}
