/*
 * png.h - PNG decoding and encoding in memory (libpng).
 *
 * Every image the daemon handles crosses this module as an util_image: 8-bit
 * samples, interleaved (height, width, channels), channels 1 (gray), 3 (RGB)
 * or 4 (RGBA), the layout engine.h's eng_image uses. Whatever the file holds
 * (palette, 1/2/4/16-bit, gray, alpha, tRNS, Adam7 interlacing) the decoder
 * converts it to that layout.
 *
 * Functions return 0 on success and -1 on failure with a message in `msg`
 * (when msg is not NULL); a failing call leaves *out empty and leaks nothing.
 * The decoders return UTIL_PNG_ELIMIT instead of -1 for an image larger
 * than their max_pixels, and UTIL_PNG_ENOMEM when memory runs out, so that
 * a caller tells a limit, or its own trouble, from a bad file.
 */
#ifndef CODID_UTIL_PNG_H
#define CODID_UTIL_PNG_H

#include <stddef.h>
#include <stdint.h>

#define UTIL_PNG_ELIMIT (-2) /* more pixels than max_pixels */
#define UTIL_PNG_ENOMEM (-3) /* out of memory: the file may be fine */

typedef struct util_image {
    int width, height, channels; /* channels 1, 3 or 4 */
    uint8_t *data;               /* height * width * channels bytes */
} util_image;

/* Frees img->data and zeroes the struct; NULL and empty images are fine. */
void util_image_free(util_image *img);

/*
 * Decodes a PNG held in buf[0..len) into out (8-bit samples).
 *
 * want_channels:
 *   0  keep the file's colour model: gray -> 1, RGB and palette -> 3, any
 *      image with transparency (alpha channel or tRNS) -> 4. Gray+alpha also
 *      becomes 4 (RGBA) because nothing downstream handles 2 channels.
 *   1  gray (colour reduced with the Rec. 709 weights, alpha dropped)
 *   3  RGB (gray replicated, alpha dropped, not composited)
 *   4  RGBA (opaque alpha added where the file has none)
 *
 * max_pixels bounds width * height and is checked from the header, before
 * any pixel memory is allocated. Refuses non-PNG bytes, truncated or corrupt
 * data (bad CRC in a critical chunk, short image data) and files missing
 * their IEND chunk. Over max_pixels: UTIL_PNG_ELIMIT.
 */
int util_png_decode(const uint8_t *buf, size_t len, int want_channels, size_t max_pixels, util_image *out, char *msg,
                    size_t msgsz);

/* util_png_decode for a file, streamed rather than read whole into memory. */
int util_png_decode_file(const char *path, int want_channels, size_t max_pixels, util_image *out, char *msg,
                         size_t msgsz);

/* Hard cap on one encoded PNG; images whose worst-case encoding could pass
 * it are refused before encoding starts. */
#define UTIL_PNG_ENCODE_MAX_BYTES ((size_t)1 << 30)

/*
 * Encodes w x h pixels (channels 1, 3 or 4, interleaved, 8-bit) as a
 * non-interlaced PNG into a buffer allocated with malloc: *out (free() it)
 * and *outlen.
 */
int util_png_encode(const uint8_t *pixels, int w, int h, int channels, uint8_t **out, size_t *outlen, char *msg,
                    size_t msgsz);

#endif
