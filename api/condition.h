/*
 * condition.h - the condition image a generate request hands an adapter,
 * built from the client's image (and mask) at the model's size.
 *
 * Sizes: an sr adapter's input is the low-resolution image; one smaller
 * than the model is centre-cropped to a square and upsampled bicubically
 * (Keys' cubic, a = -0.75, half-pixel centres: what the engine's sr task
 * does after downsampling), so a 4x4 image feeds an sr4 adapter of a 16x16
 * model. Every other image of another size is centre-cropped and resized
 * the way datasets are imported (area averaging down, bilinear up).
 *
 * Channels: a task whose condition is one channel (edges, colorize) takes
 * a grayscale PNG; the others take RGB (an alpha channel is dropped).
 * Preprocessing builds the condition on the server from a photo: "canny" or
 * "sobel" (edge maps, the edges task), "gray" (luminance, for colorize) or
 * "task" (the adapter's own degradation, seeded: a demo of what it undoes).
 * inpaint takes an RGB image and a grayscale mask, white (>= 128) marking
 * the pixels to fill. This file only validates and resizes: the engine
 * builds every condition (eng_preprocess_apply), with the code that built
 * the adapter's training conditions.
 */
#ifndef CODID_API_CONDITION_H
#define CODID_API_CONDITION_H

#include <stddef.h>
#include <stdint.h>

#include "api/http.h"
#include "engine/engine.h"
#include "util/png.h"

typedef struct api_cond_params {
    eng_task_params task; /* the adapter's */
    int model_channels;   /* the base model's image channels */
    int size;             /* the model's sample size */
    eng_preprocess preprocess;
    uint64_t seed; /* for preprocess "task" */
} api_cond_params;

/* Builds *out (data malloc'd: eng_image_free or free) from img and mask
 * (NULL when not given). API_OK, or a 4xx (or 500) with msg naming the
 * field (image, mask, preprocess). */
api_status api_condition_build(const api_cond_params *p, const util_image *img, const util_image *mask, eng_image *out,
                               char *msg, size_t msgsz);

/* Bicubic resize of a side x side image of c channels to size x size. */
int api_bicubic_resize(const uint8_t *src, int side, int c, uint8_t *dst, int size);

#endif
