/*
 * png.c - libpng behind util_image.
 *
 * libpng reports errors by calling our error function, which must not
 * return: it copies the message and longjmps back to the setjmp in
 * decode_run / encode_run. Anything those functions allocate after the
 * setjmp (pixel memory, the output buffer) lives in a context struct owned by
 * their caller, so the pointers stay valid across the longjmp (locals changed
 * after setjmp would be indeterminate) and the error path can free them.
 * libpng's own structs are created before the setjmp and never reassigned.
 */
#include "util/png.h"

#include "util/buf.h"
#include "util/msg.h"

#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ancillary chunks (iCCP, zTXt, ...) may not inflate past this, so a small
 * file cannot make libpng allocate without bound outside the pixel data. */
#define CHUNK_MALLOC_MAX ((png_alloc_size_t)8 << 20)

typedef struct codec_ctx {
    char err[256];
    /* decode source: the whole file in memory */
    const uint8_t *buf;
    size_t len, pos;
    /* decode result, freed on the error path */
    uint8_t *data;
    png_bytep *rows;
    /* encode output, capped */
    util_buf out;
    int over_limit; /* the header named more than max_pixels */
    int nomem;      /* an allocation of ours failed */
} codec_ctx;

void util_image_free(util_image *img) {
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

static void on_error(png_structp png, png_const_charp text) {
    codec_ctx *c = png_get_error_ptr(png);
    snprintf(c->err, sizeof c->err, "%s", text);
    png_longjmp(png, 1);
}

/* Warnings concern ancillary chunks libpng has already dropped. */
static void on_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

static void read_memory(png_structp png, png_bytep dst, size_t n) {
    codec_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) png_error(png, "truncated PNG data");
    memcpy(dst, c->buf + c->pos, n);
    c->pos += n;
}

/* Channels after png_set_expand, and the transforms that give `want`. */
static int set_transforms(png_structp png, png_infop info, int want) {
    int color_type = png_get_color_type(png, info);
    int is_color = (color_type & PNG_COLOR_MASK_COLOR) != 0;
    int has_alpha = (color_type & PNG_COLOR_MASK_ALPHA) != 0 || png_get_valid(png, info, PNG_INFO_tRNS) != 0;

    /* palette -> RGB, gray below 8 bits -> 8 bits, tRNS -> alpha */
    png_set_expand(png);
    if (png_get_bit_depth(png, info) == 16) png_set_scale_16(png);

    if (want == 0) want = has_alpha ? 4 : is_color ? 3 : 1;
    if (want == 1) {
        /* error_action 1: reduce silently; -1, -1: libpng's Rec. 709 weights */
        if (is_color) png_set_rgb_to_gray_fixed(png, 1, -1, -1);
        if (has_alpha) png_set_strip_alpha(png);
    } else {
        if (!is_color) png_set_gray_to_rgb(png);
        if (want == 3 && has_alpha) png_set_strip_alpha(png);
        if (want == 4 && !has_alpha) png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
    }
    png_set_interlace_handling(png);
    return want;
}

/* Reads from the source already set in c, past the 8 signature bytes. */
static int decode_run(codec_ctx *c, png_rw_ptr reader, int want, size_t max_pixels, util_image *out) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, on_error, on_warning);
    if (!png) {
        snprintf(c->err, sizeof c->err, "out of memory");
        return UTIL_PNG_ENOMEM;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(c->err, sizeof c->err, "out of memory");
        return UTIL_PNG_ENOMEM;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(c->rows);
        free(c->data);
        c->rows = NULL;
        c->data = NULL;
        return c->over_limit ? UTIL_PNG_ELIMIT : c->nomem ? UTIL_PNG_ENOMEM : -1;
    }
    png_set_read_fn(png, c, reader);
    png_set_sig_bytes(png, 8);
    png_set_chunk_malloc_max(png, CHUNK_MALLOC_MAX);
    png_read_info(png, info);

    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((size_t)w * h > max_pixels) {
        char text[160];
        snprintf(text, sizeof text, "image is %ux%u = %zu pixels, more than the limit of %zu", (unsigned)w, (unsigned)h,
                 (size_t)w * h, max_pixels);
        c->over_limit = 1;
        png_error(png, text);
    }
    int channels = set_transforms(png, info, want);
    png_read_update_info(png, info);
    size_t rowbytes = (size_t)w * channels;
    if (png_get_channels(png, info) != channels || png_get_bit_depth(png, info) != 8 ||
        png_get_rowbytes(png, info) != rowbytes)
        png_error(png, "unexpected layout after conversion");

    c->data = malloc(rowbytes * h);
    c->rows = malloc(sizeof *c->rows * h);
    if (!c->data || !c->rows) {
        c->nomem = 1;
        png_error(png, "out of memory for pixels");
    }
    for (png_uint_32 y = 0; y < h; y++) c->rows[y] = c->data + rowbytes * y;
    png_read_image(png, c->rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);

    free(c->rows);
    c->rows = NULL;
    out->width = (int)w;
    out->height = (int)h;
    out->channels = channels;
    out->data = c->data;
    c->data = NULL;
    return 0;
}

static int check_want(int want, char *msg, size_t msgsz) {
    if (want == 0 || want == 1 || want == 3 || want == 4) return 0;
    util_msg(msg, msgsz, 0, "%s", "channels must be 0 (keep), 1, 3 or 4");
    return -1;
}

static void decode_failed(const codec_ctx *c, int rc, char *msg, size_t msgsz) {
    if (msg && msgsz) snprintf(msg, msgsz, rc == UTIL_PNG_ENOMEM ? "decoding a PNG: %s" : "invalid PNG: %s", c->err);
}

/* Every chunk's declared length fits in the bytes that follow it: libpng
 * allocates some ancillary chunks (sPLT) at their declared length before
 * reading them, so a 40-byte file could ask for gigabytes (found by
 * fuzzing). The whole file is in memory here, so a walk of the chunk
 * headers refuses such a file before libpng sees it. */
static int chunks_fit(const uint8_t *buf, size_t len, char *msg, size_t msgsz) {
    for (size_t pos = 8; pos + 8 <= len;) {
        uint32_t n =
            (uint32_t)buf[pos] << 24 | (uint32_t)buf[pos + 1] << 16 | (uint32_t)buf[pos + 2] << 8 | buf[pos + 3];
        if ((size_t)n > len - pos - 8) {
            util_msg(msg, msgsz, 0, "invalid PNG: a chunk at byte %zu claims %u bytes, the file has %zu after it", pos,
                     (unsigned)n, len - pos - 8);
            return -1;
        }
        if (memcmp(buf + pos + 4, "IEND", 4) == 0) return 0;
        pos += (size_t)n + 12;
    }
    return 0; /* a file cut short is libpng's to report */
}

int util_png_decode(const uint8_t *buf, size_t len, int want_channels, size_t max_pixels, util_image *out, char *msg,
                    size_t msgsz) {
    memset(out, 0, sizeof *out);
    if (check_want(want_channels, msg, msgsz) != 0) return -1;
    if (!buf || len < 8 || png_sig_cmp(buf, 0, 8) != 0) {
        util_msg(msg, msgsz, 0, "%s", "not a PNG (bad signature)");
        return -1;
    }
    if (chunks_fit(buf, len, msg, msgsz) != 0) return -1;
    codec_ctx c = {.buf = buf, .len = len, .pos = 8};
    int rc = decode_run(&c, read_memory, want_channels, max_pixels, out);
    if (rc != 0) decode_failed(&c, rc, msg, msgsz);
    return rc;
}

/* A file is read whole and decoded from memory, so that its chunk lengths
 * are checked against its size as an upload's are. */
#define PNG_FILE_MAX ((long)1 << 28)
int util_png_decode_file(const char *path, int want_channels, size_t max_pixels, util_image *out, char *msg,
                         size_t msgsz) {
    memset(out, 0, sizeof *out);
    if (check_want(want_channels, msg, msgsz) != 0) return -1;
    FILE *fp = fopen(path, "rb");
    if (!fp) return util_msg(msg, msgsz, -1, "cannot open: %s", strerror(errno));
    long size = fseek(fp, 0, SEEK_END) == 0 ? ftell(fp) : -1;
    uint8_t *buf =
        size >= 0 && size <= PNG_FILE_MAX && fseek(fp, 0, SEEK_SET) == 0 ? malloc(size ? (size_t)size : 1) : NULL;
    int rc = -1;
    if (size > PNG_FILE_MAX)
        util_msg(msg, msgsz, 0, "a PNG file of %ld bytes is over %ld", size, PNG_FILE_MAX);
    else if (!buf)
        util_msg(msg, msgsz, 0, "cannot read: %s", size < 0 ? strerror(errno) : "out of memory");
    else if (fread(buf, 1, (size_t)size, fp) != (size_t)size)
        util_msg(msg, msgsz, 0, "cannot read: %s", ferror(fp) ? strerror(errno) : "the file shrank");
    else
        rc = util_png_decode(buf, (size_t)size, want_channels, max_pixels, out, msg, msgsz);
    if (!buf && size >= 0 && size <= PNG_FILE_MAX) rc = UTIL_PNG_ENOMEM;
    free(buf);
    fclose(fp);
    return rc;
}

static void write_buffer(png_structp png, png_bytep src, size_t n) {
    codec_ctx *c = png_get_io_ptr(png);
    int rc = util_buf_add(&c->out, src, n);
    if (rc == API_BUF_TOOBIG) png_error(png, "encoded PNG exceeds its size cap");
    if (rc != API_BUF_OK) png_error(png, "out of memory");
}

static void flush_buffer(png_structp png) {
    (void)png;
}

static int encode_run(codec_ctx *c, const uint8_t *pixels, int w, int h, int channels) {
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, c, on_error, on_warning);
    if (!png) {
        snprintf(c->err, sizeof c->err, "out of memory");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        snprintf(c->err, sizeof c->err, "out of memory");
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        util_buf_free(&c->out);
        return -1;
    }
    static const int color_types[5] = {0, PNG_COLOR_TYPE_GRAY, 0, PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    png_set_write_fn(png, c, write_buffer, flush_buffer);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, color_types[channels], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t rowbytes = (size_t)w * channels;
    for (int y = 0; y < h; y++) png_write_row(png, pixels + rowbytes * y);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int util_png_encode(const uint8_t *pixels, int w, int h, int channels, uint8_t **out, size_t *outlen, char *msg,
                    size_t msgsz) {
    *out = NULL;
    *outlen = 0;
    if (!pixels || w <= 0 || h <= 0 || (channels != 1 && channels != 3 && channels != 4)) {
        util_msg(msg, msgsz, 0, "%s", "encode: need pixels, width and height > 0, channels 1, 3 or 4");
        return -1;
    }
    /* Worst case: raw rows plus a filter byte each, deflate's stored-block
     * overhead (5 bytes per 16 KiB, bounded by raw / 1024) and chunk framing. */
    size_t raw = ((size_t)w * channels + 1) * (size_t)h;
    if (raw > UTIL_PNG_ENCODE_MAX_BYTES / 2) {
        util_msg(msg, msgsz, 0, "%s", "encode: image too large");
        return -1;
    }
    codec_ctx c = {0};
    util_buf_init(&c.out, raw + raw / 1024 + 65536);
    if (encode_run(&c, pixels, w, h, channels) != 0) {
        if (msg && msgsz) snprintf(msg, msgsz, "PNG encoding failed: %s", c.err);
        return -1;
    }
    *out = (uint8_t *)util_buf_take(&c.out, outlen);
    return 0;
}
