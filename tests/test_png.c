/* test_png.c - util/png.c, and a PNG through a data URL (util/base64.c has
 * tests/test_base64.c). */
#include "tests/test.h"
#include "util/base64.h"
#include "util/png.h"

#include <png.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

/* A fixed-seed generator, so every run tests the same bytes. */
static uint32_t rng_state;
static uint32_t rng(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

static void fill_random(uint8_t *p, size_t n, uint32_t seed) {
    rng_state = seed;
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rng();
}

/* ---- PNGs written by libpng itself, in forms our encoder never makes ---- */

typedef struct mem {
    uint8_t data[1 << 16];
    size_t len;
    int overflow;
} mem;

static void mem_write(png_structp png, png_bytep p, size_t n) {
    mem *m = png_get_io_ptr(png);
    if (n > sizeof m->data - m->len) {
        m->overflow = 1;
        png_error(png, "test buffer full");
    }
    memcpy(m->data + m->len, p, n);
    m->len += n;
}

static void mem_flush(png_structp png) {
    (void)png;
}

typedef struct raw_png {
    int w, h, bit_depth, color_type, interlace;
    const uint8_t *rows; /* h rows of packed samples, big-endian 16-bit */
    const png_color *palette;
    int npalette;
    const uint8_t *trns; /* palette alpha entries */
    int ntrns;
} raw_png;

/* 0 and m filled, or -1. */
static int write_raw(const raw_png *r, mem *m) {
    m->len = 0;
    m->overflow = 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_set_write_fn(png, m, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)r->w, (png_uint_32)r->h, r->bit_depth, r->color_type, r->interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (r->palette) png_set_PLTE(png, info, r->palette, r->npalette);
    if (r->trns) png_set_tRNS(png, info, r->trns, r->ntrns, NULL);
    png_write_info(png, info);
    int passes = png_set_interlace_handling(png);
    size_t rowbytes = png_get_rowbytes(png, info);
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < r->h; y++) png_write_row(png, r->rows + rowbytes * y);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 0;
}

/* ---- round trips ---------------------------------------------------------- */

static void round_trip(int channels) {
    enum { W = 37, H = 23 };
    uint8_t px[W * H * 4];
    fill_random(px, sizeof px, 7u + (uint32_t)channels);
    uint8_t *png = NULL;
    size_t len = 0;
    char msg[256];
    CHECK_MSG(util_png_encode(px, W, H, channels, &png, &len, msg, sizeof msg) == 0, "%s", msg);
    util_image img;
    int rc = util_png_decode(png, len, 0, 1 << 20, &img, msg, sizeof msg);
    free(png);
    CHECK_MSG(rc == 0, "%s", msg);
    CHECK_EQ_INT(img.width, W);
    CHECK_EQ_INT(img.height, H);
    CHECK_EQ_INT(img.channels, channels);
    int same = memcmp(img.data, px, (size_t)W * H * channels) == 0;
    util_image_free(&img);
    CHECK(same);
    CHECK(img.data == NULL);
}

TEST(round_trip_gray) {
    round_trip(1);
}
TEST(round_trip_rgb) {
    round_trip(3);
}
TEST(round_trip_rgba) {
    round_trip(4);
}

TEST(decode_file_matches_memory) {
    uint8_t px[5 * 4 * 3];
    fill_random(px, sizeof px, 3);
    uint8_t *png;
    size_t len;
    char msg[256], path[] = "/tmp/codid_test_png_XXXXXX";
    CHECK(util_png_encode(px, 5, 4, 3, &png, &len, msg, sizeof msg) == 0);
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    ssize_t n = write(fd, png, len);
    close(fd);
    free(png);
    CHECK_EQ_INT(n, (ssize_t)len);
    util_image img;
    int rc = util_png_decode_file(path, 0, 100, &img, msg, sizeof msg);
    unlink(path);
    CHECK_MSG(rc == 0, "%s", msg);
    int same = img.width == 5 && img.height == 4 && img.channels == 3 && memcmp(img.data, px, sizeof px) == 0;
    util_image_free(&img);
    CHECK(same);
    CHECK(util_png_decode_file(path, 0, 100, &img, msg, sizeof msg) == -1);
    CHECK(strstr(msg, "cannot open") != NULL);
}

TEST(channel_conversions) {
    /* one RGB pixel (200, 100, 50), one gray pixel 77 */
    const uint8_t rgb[3] = {200, 100, 50}, gray[1] = {77};
    uint8_t *png;
    size_t len;
    util_image img;
    char msg[256];
    CHECK(util_png_encode(rgb, 1, 1, 3, &png, &len, msg, sizeof msg) == 0);
    int rc1 = util_png_decode(png, len, 1, 1, &img, msg, sizeof msg);
    int luma = img.data ? img.data[0] : -1;
    util_image_free(&img);
    int rc4 = util_png_decode(png, len, 4, 1, &img, msg, sizeof msg);
    int rgba_ok = rc4 == 0 && img.channels == 4 && img.data[0] == 200 && img.data[1] == 100 && img.data[2] == 50 &&
                  img.data[3] == 255;
    util_image_free(&img);
    free(png);
    CHECK(rc1 == 0);
    /* Rec. 709: 0.2126 * 200 + 0.7152 * 100 + 0.0722 * 50 = 117.6 */
    CHECK_NEAR(luma, 117.6, 1.0);
    CHECK(rgba_ok);

    CHECK(util_png_encode(gray, 1, 1, 1, &png, &len, msg, sizeof msg) == 0);
    rc1 = util_png_decode(png, len, 3, 1, &img, msg, sizeof msg);
    int rgb_ok = rc1 == 0 && img.channels == 3 && img.data[0] == 77 && img.data[1] == 77 && img.data[2] == 77;
    util_image_free(&img);
    CHECK(rgb_ok);
    CHECK(util_png_decode(png, len, 2, 1, &img, msg, sizeof msg) == -1);
    free(png);
}

/* ---- forms only other encoders produce --------------------------------- */

TEST(decode_16bit_rgb) {
    /* 2 x 1, 16-bit RGB, big-endian samples */
    const uint16_t v[6] = {0x0000, 0xffff, 0x1234, 0x8080, 0x7fff, 0xfe01};
    uint8_t row[12];
    for (int i = 0; i < 6; i++) {
        row[2 * i] = (uint8_t)(v[i] >> 8);
        row[2 * i + 1] = (uint8_t)v[i];
    }
    static mem m;
    raw_png r = {.w = 2, .h = 1, .bit_depth = 16, .color_type = PNG_COLOR_TYPE_RGB, .rows = row};
    CHECK(write_raw(&r, &m) == 0);
    util_image img;
    char msg[256];
    CHECK_MSG(util_png_decode(m.data, m.len, 0, 16, &img, msg, sizeof msg) == 0, "%s", msg);
    int ok = img.channels == 3 && img.width == 2;
    for (int i = 0; ok && i < 6; i++) {
        int want = (int)((v[i] * 255u + 32767u) / 65535u); /* scaled, not truncated */
        if (abs(img.data[i] - want) > 0) ok = 0;
    }
    util_image_free(&img);
    CHECK(ok);
}

TEST(decode_palette_with_transparency) {
    const png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    const uint8_t trns[3] = {255, 128, 0};
    const uint8_t rows[2] = {0x01, 0x20}; /* 2 x 2 at 4 bits: indices 0,1 / 2,0 */
    static mem m;
    raw_png r = {.w = 2,
                 .h = 2,
                 .bit_depth = 4,
                 .color_type = PNG_COLOR_TYPE_PALETTE,
                 .rows = rows,
                 .palette = pal,
                 .npalette = 3};
    util_image img;
    char msg[256];

    CHECK(write_raw(&r, &m) == 0);
    CHECK_MSG(util_png_decode(m.data, m.len, 0, 4, &img, msg, sizeof msg) == 0, "%s", msg);
    const uint8_t want3[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 0, 0};
    int ok3 = img.channels == 3 && memcmp(img.data, want3, 12) == 0;
    util_image_free(&img);
    CHECK(ok3);

    r.trns = trns;
    r.ntrns = 3;
    CHECK(write_raw(&r, &m) == 0);
    CHECK_MSG(util_png_decode(m.data, m.len, 0, 4, &img, msg, sizeof msg) == 0, "%s", msg);
    const uint8_t want4[16] = {255, 0, 0, 255, 0, 255, 0, 128, 0, 0, 255, 0, 255, 0, 0, 255};
    int ok4 = img.channels == 4 && memcmp(img.data, want4, 16) == 0;
    util_image_free(&img);
    CHECK(ok4);
}

TEST(decode_gray_alpha) {
    const uint8_t row[4] = {10, 200, 250, 0}; /* 2 x 1 gray+alpha */
    static mem m;
    raw_png r = {.w = 2, .h = 1, .bit_depth = 8, .color_type = PNG_COLOR_TYPE_GRAY_ALPHA, .rows = row};
    CHECK(write_raw(&r, &m) == 0);
    util_image img;
    char msg[256];
    CHECK_MSG(util_png_decode(m.data, m.len, 0, 2, &img, msg, sizeof msg) == 0, "%s", msg);
    const uint8_t want[8] = {10, 10, 10, 200, 250, 250, 250, 0};
    int ok = img.channels == 4 && memcmp(img.data, want, 8) == 0;
    util_image_free(&img);
    CHECK(ok);
    CHECK(util_png_decode(m.data, m.len, 1, 2, &img, msg, sizeof msg) == 0);
    ok = img.channels == 1 && img.data[0] == 10 && img.data[1] == 250;
    util_image_free(&img);
    CHECK(ok);
    CHECK_MSG(util_png_decode(m.data, m.len, 3, 2, &img, msg, sizeof msg) == 0, "%s", msg);
    ok = img.channels == 3 && memcmp(img.data, want, 3) == 0 && memcmp(img.data + 3, want + 4, 3) == 0;
    util_image_free(&img);
    CHECK(ok);
}

TEST(decode_1bit_gray_and_interlaced) {
    enum { W = 19, H = 11 };
    uint8_t rows[H * 3]; /* 1-bit: 3 bytes per row */
    fill_random(rows, sizeof rows, 11);
    static mem m;
    raw_png r = {.w = W,
                 .h = H,
                 .bit_depth = 1,
                 .color_type = PNG_COLOR_TYPE_GRAY,
                 .interlace = PNG_INTERLACE_ADAM7,
                 .rows = rows};
    CHECK(write_raw(&r, &m) == 0);
    util_image img;
    char msg[256];
    CHECK_MSG(util_png_decode(m.data, m.len, 0, W * H, &img, msg, sizeof msg) == 0, "%s", msg);
    int ok = img.channels == 1 && img.width == W && img.height == H;
    for (int y = 0; ok && y < H; y++)
        for (int x = 0; x < W; x++) {
            int bit = rows[y * 3 + x / 8] >> (7 - x % 8) & 1;
            if (img.data[y * W + x] != (bit ? 255 : 0)) ok = 0;
        }
    util_image_free(&img);
    CHECK(ok);
}

/* ---- refusals ------------------------------------------------------------- */

TEST(refuses_non_png) {
    util_image img;
    char msg[256];
    const uint8_t jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 'J', 'F', 'I', 'F', 0, 1};
    CHECK(util_png_decode((const uint8_t *)"hello, world", 12, 0, 100, &img, msg, sizeof msg) == -1);
    CHECK(strstr(msg, "not a PNG") != NULL);
    CHECK(util_png_decode(jpeg, sizeof jpeg, 0, 100, &img, msg, sizeof msg) == -1);
    CHECK(util_png_decode(jpeg, 0, 0, 100, &img, msg, sizeof msg) == -1);
    CHECK(img.data == NULL);
}

TEST(refuses_every_truncation) {
    uint8_t px[9 * 7 * 3];
    fill_random(px, sizeof px, 5);
    uint8_t *png;
    size_t len;
    char msg[256];
    CHECK(util_png_encode(px, 9, 7, 3, &png, &len, msg, sizeof msg) == 0);
    size_t accepted = 0;
    for (size_t n = 0; n < len; n++) {
        util_image img;
        if (util_png_decode(png, n, 0, 100, &img, msg, sizeof msg) == 0) {
            accepted++;
            util_image_free(&img);
        }
    }
    util_image img;
    int full = util_png_decode(png, len, 0, 100, &img, msg, sizeof msg);
    util_image_free(&img);
    free(png);
    CHECK_EQ_INT(accepted, 0);
    CHECK(full == 0);
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

TEST(refuses_too_many_pixels_before_reading_them) {
    /* A signature, an IHDR claiming 100000 x 100000 RGB, an empty IDAT and
     * IEND: the limit must be what is reported (a decoder that allocated
     * first would run out of memory, one that read on would find no data). */
    uint8_t f[8 + 25 + 12 + 12] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    put_be32(f + 8, 13);
    memcpy(f + 12, "IHDR", 4);
    put_be32(f + 16, 100000);
    put_be32(f + 20, 100000);
    f[24] = 8; /* bit depth */
    f[25] = 2; /* RGB */
    put_be32(f + 29, (uint32_t)crc32(0, f + 12, 17));
    memcpy(f + 37, "IDAT", 4);
    put_be32(f + 41, (uint32_t)crc32(0, f + 37, 4));
    memcpy(f + 49, "IEND", 4);
    put_be32(f + 53, (uint32_t)crc32(0, f + 49, 4));
    util_image img;
    char msg[256];
    CHECK(util_png_decode(f, sizeof f, 0, 1 << 20, &img, msg, sizeof msg) == UTIL_PNG_ELIMIT);
    CHECK_MSG(strstr(msg, "limit") != NULL, "message: %s", msg);

    uint8_t px[64 * 64];
    uint8_t *png;
    size_t len;
    memset(px, 9, sizeof px);
    CHECK(util_png_encode(px, 64, 64, 1, &png, &len, msg, sizeof msg) == 0);
    int over = util_png_decode(png, len, 0, 64 * 64 - 1, &img, msg, sizeof msg);
    int at = util_png_decode(png, len, 0, 64 * 64, &img, msg, sizeof msg);
    util_image_free(&img);
    free(png);
    CHECK(over == UTIL_PNG_ELIMIT);
    CHECK(at == 0);
}

TEST(encode_refuses_bad_arguments) {
    uint8_t px[4] = {0};
    uint8_t *png = (uint8_t *)px;
    size_t len = 1;
    char msg[256];
    CHECK(util_png_encode(px, 1, 1, 2, &png, &len, msg, sizeof msg) == -1);
    CHECK(png == NULL && len == 0);
    CHECK(util_png_encode(px, 0, 1, 1, &png, &len, msg, sizeof msg) == -1);
    CHECK(util_png_encode(NULL, 1, 1, 1, &png, &len, msg, sizeof msg) == -1);
    CHECK(util_png_encode(px, 1 << 20, 1 << 20, 4, &png, &len, msg, sizeof msg) == -1);
}

/* Rewrites the CRC of every chunk that still fits, so mutations reach the
 * IHDR checks and the inflater rather than stopping at the first CRC. */
static void fix_crcs(uint8_t *p, size_t len) {
    size_t off = 8;
    while (off + 12 <= len) {
        uint32_t n = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 | (uint32_t)p[off + 2] << 8 | p[off + 3];
        if (n > len - off - 12) break;
        put_be32(p + off + 8 + n, (uint32_t)crc32(0, p + off + 4, n + 4));
        off += 12 + n;
    }
}

TEST(fuzz_mutations_never_crash) {
    enum { W = 16, H = 16, ITER = 3000 };
    uint8_t px[W * H * 4];
    fill_random(px, sizeof px, 99);
    for (size_t i = 0; i < sizeof px; i += 3) px[i] = 0; /* some structure for deflate */
    uint8_t *png;
    size_t len;
    char msg[256];
    CHECK(util_png_encode(px, W, H, 4, &png, &len, msg, sizeof msg) == 0);
    uint8_t *buf = malloc(len + 64);
    CHECK(buf != NULL);
    rng_state = 12345;
    int decoded = 0, refused = 0, silent = 0;
    for (int it = 0; it < ITER; it++) {
        memcpy(buf, png, len);
        size_t n = len;
        int edits = 1 + (int)(rng() % 8);
        for (int e = 0; e < edits; e++) {
            size_t at = rng() % n;
            switch (rng() % 4) {
                case 0: buf[at] = (uint8_t)rng(); break;
                case 1: buf[at] ^= (uint8_t)(1u << (rng() % 8)); break;
                case 2: n = at > 8 ? at : n; break; /* truncate */
                default: buf[at] = (uint8_t)(buf[at] + 1); break;
            }
        }
        if (it % 2) fix_crcs(buf, n);
        util_image img;
        msg[0] = '\0';
        static const int wants[4] = {0, 1, 3, 4};
        if (util_png_decode(buf, n, wants[rng() % 4], W * H * 4, &img, msg, sizeof msg) == 0) {
            if (img.width < 1 || img.height < 1 || !img.data) silent++;
            decoded++;
            util_image_free(&img);
        } else {
            if (!msg[0]) silent++;
            refused++;
        }
    }
    free(buf);
    free(png);
    CHECK_EQ_INT(silent, 0);
    CHECK(refused > ITER / 2);
    CHECK_EQ_INT(decoded + refused, ITER);
}

TEST(png_through_data_url) {
    uint8_t px[3 * 2 * 3];
    fill_random(px, sizeof px, 21);
    uint8_t *png, *back;
    char *b64, url[512], msg[128];
    size_t len, blen, backlen;
    CHECK(util_png_encode(px, 3, 2, 3, &png, &len, msg, sizeof msg) == 0);
    CHECK(util_base64_encode(png, len, 400, &b64, &blen, msg, sizeof msg) == 0);
    snprintf(url, sizeof url, "data:image/png;base64,%s", b64);
    free(b64);
    const char *payload;
    size_t plen;
    CHECK(util_data_url_strip(url, strlen(url), &payload, &plen, msg, sizeof msg) == 0);
    CHECK(util_base64_decode(payload, plen, 1 << 16, &back, &backlen, msg, sizeof msg) == 0);
    util_image img;
    int rc = util_png_decode(back, backlen, 3, 6, &img, msg, sizeof msg);
    int same = backlen == len && memcmp(back, png, len) == 0;
    free(back);
    free(png);
    CHECK(same);
    CHECK(rc == 0);
    same = memcmp(img.data, px, sizeof px) == 0;
    util_image_free(&img);
    CHECK(same);
}

int main(void) {
    RUN(round_trip_gray);
    RUN(round_trip_rgb);
    RUN(round_trip_rgba);
    RUN(decode_file_matches_memory);
    RUN(channel_conversions);
    RUN(decode_16bit_rgb);
    RUN(decode_palette_with_transparency);
    RUN(decode_gray_alpha);
    RUN(decode_1bit_gray_and_interlaced);
    RUN(refuses_non_png);
    RUN(refuses_every_truncation);
    RUN(refuses_too_many_pixels_before_reading_them);
    RUN(encode_refuses_bad_arguments);
    RUN(fuzz_mutations_never_crash);
    RUN(png_through_data_url);
    return TEST_SUMMARY();
}
