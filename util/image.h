/*
 * image.h - fitting an image to a model's input: centre crop to a square,
 * channel conversion and resizing, on 8-bit interleaved pixels (the layout
 * of util_image in util/png.h).
 *
 * The dataset importers (jobs/) fit every image they store this way, and
 * the HTTP API (api/) fits condition images the same way, so a model sees
 * at generation the same geometry it was trained on. Resizing is separable:
 * area averaging when shrinking (no aliasing), bilinear when enlarging.
 * Channels convert as util_png_decode converts them: Rec. 709 gray, alpha
 * dropped, gray replicated, opaque alpha added.
 *
 * Functions return 0, or -1 with a message in msg (when msg is not NULL).
 */
#ifndef CODID_UTIL_IMAGE_H
#define CODID_UTIL_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define UTIL_IMAGE_MAX_SIDE 1024 /* the largest side an image is fitted to */

/* Scratch for fitting many images to one size and channel count: each fit
 * reuses the buffers of the one before. */
typedef struct util_image_fitter {
    int size, channels; /* the output: size x size x channels */
    uint8_t *out;       /* the last fitted image */
    uint8_t *crop_;     /* private: the cropped, converted square */
    size_t crop_cap_;
} util_image_fitter;

int util_image_fitter_init(util_image_fitter *f, int size, int channels, char *msg, size_t msgsz);
void util_image_fitter_free(util_image_fitter *f);
/* Fits a w x h image of `channels_in` (row stride w * channels_in) into
 * f->out. */
int util_image_fitter_fit(util_image_fitter *f, const uint8_t *src, int w, int h, int channels_in, char *msg,
                          size_t msgsz);

/* One image fitted: a w x h image of channels_in (1, 3 or 4) centre-cropped
 * to a square, converted to channels_out and resized to size x size into
 * out (size * size * channels_out bytes). */
int util_image_fit(const uint8_t *src, int w, int h, int channels_in, int size, int channels_out, uint8_t *out,
                   char *msg, size_t msgsz);

#endif
