/* condition.c - see condition.h. */
#include "api/condition.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/image.h"

/* Keys' cubic convolution kernel with a = -0.75 (as torch's bicubic). */
static double cubic(double x) {
    const double a = -0.75;
    x = fabs(x);
    if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
    return 0;
}

int api_bicubic_resize(const uint8_t *src, int side, int c, uint8_t *dst, int size) {
    double *tmp = malloc(sizeof *tmp * (size_t)side * size * c); /* side rows, size columns */
    int *idx = malloc(sizeof *idx * (size_t)size * 4);
    double *wt = malloc(sizeof *wt * (size_t)size * 4);
    if (!tmp || !idx || !wt) {
        free(tmp), free(idx), free(wt);
        return -1;
    }
    double scale = (double)side / size;
    for (int o = 0; o < size; o++) {
        double s = (o + 0.5) * scale - 0.5;
        int x0 = (int)floor(s);
        double t = s - x0;
        for (int k = 0; k < 4; k++) {
            int i = x0 - 1 + k;
            idx[o * 4 + k] = i < 0 ? 0 : i >= side ? side - 1 : i;
            wt[o * 4 + k] = cubic(t - (k - 1));
        }
    }
    for (int y = 0; y < side; y++)
        for (int x = 0; x < size; x++)
            for (int ch = 0; ch < c; ch++) {
                double acc = 0;
                for (int k = 0; k < 4; k++) acc += wt[x * 4 + k] * src[((size_t)y * side + idx[x * 4 + k]) * c + ch];
                tmp[((size_t)y * size + x) * c + ch] = acc;
            }
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            for (int ch = 0; ch < c; ch++) {
                double acc = 0;
                for (int k = 0; k < 4; k++) acc += wt[y * 4 + k] * tmp[((size_t)idx[y * 4 + k] * size + x) * c + ch];
                dst[((size_t)y * size + x) * c + ch] = acc <= 0 ? 0 : acc >= 255 ? 255 : (uint8_t)lround(acc);
            }
    free(tmp), free(idx), free(wt);
    return 0;
}

static const char *channels_word(int c) {
    return c == 1 ? "grayscale" : c == 3 ? "RGB" : "RGBA";
}

/* img fitted to size x size with `channels`: bicubic up for sr inputs
 * smaller than the model, the importers' crop-and-resize otherwise. */
static int fit(const api_cond_params *p, const util_image *img, int channels, uint8_t *out, char *msg, size_t msgsz) {
    int side = img->width < img->height ? img->width : img->height;
    if (p->task.kind != ENG_TASK_SR || side >= p->size)
        return util_image_fit(img->data, img->width, img->height, img->channels, p->size, channels, out, msg, msgsz);
    /* crop and convert at the native size, then upsample */
    uint8_t *crop = malloc((size_t)side * side * channels);
    int rc =
        crop ? util_image_fit(img->data, img->width, img->height, img->channels, side, channels, crop, msg, msgsz) : -1;
    if (rc == 0) rc = api_bicubic_resize(crop, side, channels, out, p->size);
    if (rc != 0 && !crop) snprintf(msg, msgsz, "out of memory");
    free(crop);
    return rc;
}

/* The photo at the model's size and channels, then the engine's
 * preprocessing; the request was validated before. */
static api_status preprocess(const api_cond_params *p, const util_image *img, uint8_t *out, char *msg, size_t msgsz) {
    int ci = p->model_channels, size = p->size;
    uint8_t *photo = malloc((size_t)size * size * ci);
    if (!photo) {
        snprintf(msg, msgsz, "out of memory");
        return API_SERVICE_UNAVAILABLE;
    }
    api_status st = API_OK;
    if (util_image_fit(img->data, img->width, img->height, img->channels, size, ci, photo, msg, msgsz) != 0) {
        st = API_INTERNAL_SERVER_ERROR;
    } else {
        eng_images in = {.n = 1, .height = size, .width = size, .channels = ci, .data = photo};
        eng_error err = {0};
        if (eng_preprocess_apply(&p->task, p->preprocess, &in, NULL, p->seed, out, &err) != ENG_OK) {
            snprintf(msg, msgsz, "preprocess: %s", err.msg);
            st = API_INTERNAL_SERVER_ERROR;
        }
    }
    free(photo);
    return st;
}

/* The client's image and mask at the model's size, then the engine's
 * inpaint layout. */
static api_status inpaint(const api_cond_params *p, const util_image *img, const util_image *mask, int rgb,
                          uint8_t *out, char *msg, size_t msgsz) {
    int size = p->size;
    uint8_t *pic = malloc((size_t)size * size * rgb), *m = malloc((size_t)size * size);
    api_status st = API_OK;
    if (!pic || !m) {
        snprintf(msg, msgsz, "out of memory");
        st = API_SERVICE_UNAVAILABLE;
    } else if (fit(p, img, rgb, pic, msg, msgsz) != 0 || fit(p, mask, 1, m, msg, msgsz) != 0) {
        st = API_INTERNAL_SERVER_ERROR;
    } else {
        eng_images in = {.n = 1, .height = size, .width = size, .channels = rgb, .data = pic};
        eng_error err = {0};
        if (eng_preprocess_apply(&p->task, ENG_PRE_NONE, &in, m, 0, out, &err) != ENG_OK) {
            snprintf(msg, msgsz, "mask: %s", err.msg);
            st = API_INTERNAL_SERVER_ERROR;
        }
    }
    free(pic);
    free(m);
    return st;
}

api_status api_condition_build(const api_cond_params *p, const util_image *img, const util_image *mask, eng_image *out,
                               char *msg, size_t msgsz) {
    const char *task = eng_task_name(p->task.kind);
    int ci = p->model_channels, size = p->size;
    int want = eng_task_cond_channels(&p->task, ci);
    int inpainting = p->task.kind == ENG_TASK_INPAINT;
    if (mask && !inpainting) {
        snprintf(msg, msgsz, "mask: only an inpaint adapter takes a mask (this one is %s)", task);
        return API_BAD_REQUEST;
    }
    if (inpainting && p->preprocess == ENG_PRE_NONE && !mask) {
        snprintf(msg, msgsz, "mask: the inpaint adapter needs a mask (grayscale PNG, white = fill)");
        return API_BAD_REQUEST;
    }
    if (mask && mask->channels != 1) {
        snprintf(msg, msgsz, "mask: must be a 1-channel (grayscale) PNG; got %d channels (%s)", mask->channels,
                 channels_word(mask->channels));
        return API_BAD_REQUEST;
    }
    int rgb = inpainting ? want - 1 : want;
    if (p->preprocess != ENG_PRE_NONE) {
        int made = eng_preprocess_channels(&p->task, p->preprocess, ci);
        if (made != want) {
            snprintf(msg, msgsz, "preprocess: '%s' makes a %d-channel condition; the %s adapter takes %d channels",
                     eng_preprocess_name(p->preprocess), made, task, want);
            return API_BAD_REQUEST;
        }
        if (p->preprocess == ENG_PRE_TASK && p->task.kind == ENG_TASK_COLORIZE && ci != 3) {
            snprintf(msg, msgsz, "preprocess: 'task' needs an RGB model for colorize");
            return API_BAD_REQUEST;
        }
    } else if (want == 1 && img->channels != 1) {
        snprintf(msg, msgsz,
                 "image: the %s adapter takes a 1-channel (grayscale) condition; got %d channels (%s); "
                 "send a grayscale PNG, or set preprocess (%s)",
                 task, img->channels, channels_word(img->channels),
                 p->task.kind == ENG_TASK_EDGES ? "canny or sobel" : "gray");
        return API_BAD_REQUEST;
    } else if (img->channels < rgb) {
        snprintf(msg, msgsz, "image: the %s adapter takes a %d-channel (%s) image; got %d channels (%s)", task, rgb,
                 channels_word(rgb), img->channels, channels_word(img->channels));
        return API_BAD_REQUEST;
    }
    uint8_t *data = malloc((size_t)size * size * want);
    if (!data) {
        snprintf(msg, msgsz, "out of memory");
        return API_SERVICE_UNAVAILABLE;
    }
    *out = (eng_image){.width = size, .height = size, .channels = want, .data = data};
    api_status st = API_OK;
    if (p->preprocess != ENG_PRE_NONE)
        st = preprocess(p, img, data, msg, msgsz);
    else if (inpainting)
        st = inpaint(p, img, mask, rgb, data, msg, msgsz);
    else if (fit(p, img, want, data, msg, msgsz) != 0)
        st = API_INTERNAL_SERVER_ERROR;
    if (st != API_OK) {
        free(data);
        out->data = NULL;
    }
    return st;
}
