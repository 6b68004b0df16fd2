/*
 * test_api.c - the HTTP API's pure parts: SHA-256 against FIPS 180-4's
 * vectors, the constant-time compare, multipart/form-data and tar parsing
 * (good, malformed, truncated, over the caps), the bicubic upsampler
 * against the engine's own sr condition, condition building (channels,
 * inpaint masks) and the loss plot's rasteriser.
 */
#include <stdlib.h>
#include <string.h>

#include "api/condition.h"
#include "api/upload.h"
#include "tests/test.h"
#include "util/plot.h"
#include "util/sha256.h"

/* ---- SHA-256 --------------------------------------------------------------- */

TEST(sha256_vectors) {
    char hex[65];
    util_sha256_hex("", 0, hex);
    CHECK_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    util_sha256_hex("abc", 3, hex);
    CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    util_sha256_hex(m448, strlen(m448), hex);
    CHECK_EQ_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqr"
                       "smnopqrstnopqrstu";
    util_sha256_hex(m896, strlen(m896), hex);
    CHECK_EQ_STR(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(sha256_million_a_in_odd_chunks) {
    static char a[1000];
    memset(a, 'a', sizeof a);
    util_sha256 c;
    util_sha256_init(&c);
    size_t left = 1000000, k = 0;
    while (left) {
        size_t n = 1 + (k++ * 37) % 999;
        if (n > left) n = left;
        util_sha256_update(&c, a, n);
        left -= n;
    }
    uint8_t d[32];
    util_sha256_final(&c, d);
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    CHECK_EQ_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(equal_ct) {
    CHECK(util_equal_ct("abcdef", "abcdef", 6));
    CHECK(!util_equal_ct("abcdef", "abcdeg", 6));
    CHECK(!util_equal_ct("xbcdef", "abcdef", 6));
    CHECK(util_equal_ct("", "", 0));
}

/* ---- multipart ---------------------------------------------------------------- */

#define CT "multipart/form-data; boundary=XyZ"

TEST(multipart_two_parts) {
    const char body[] = "--XyZ\r\nContent-Disposition: form-data; name=\"adapter\"\r\n\r\nsr4\r\n"
                        "--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a \\\"b\\\".png\"\r\n"
                        "Content-Type: image/png\r\n\r\n\x89PNG\r\n--X\r\n--XyZ--\r\n";
    api_part *p = NULL;
    int n = 0;
    char msg[256];
    CHECK_MSG(api_multipart_parse(CT, (const uint8_t *)body, sizeof body - 1, 8, &p, &n, msg, sizeof msg) == 0, "%s",
              msg);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_STR(p[0].name, "adapter");
    CHECK_EQ_STR(p[0].filename, "");
    CHECK(p[0].len == 3 && memcmp(p[0].data, "sr4", 3) == 0);
    CHECK_EQ_STR(p[1].name, "image");
    CHECK_EQ_STR(p[1].filename, "a \"b\".png");
    CHECK_EQ_STR(p[1].content_type, "image/png");
    CHECK(p[1].len == 9 && memcmp(p[1].data, "\x89PNG\r\n--X", 9) == 0); /* the CRLF before a delimiter is its own */
    free(p);
}

TEST(multipart_quoted_boundary_and_preamble) {
    const char body[] = "preamble\r\n--a b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--a b--";
    api_part *p = NULL;
    int n = 0;
    char msg[256];
    CHECK_MSG(api_multipart_parse("multipart/form-data; boundary=\"a b\"", (const uint8_t *)body, sizeof body - 1, 8,
                                  &p, &n, msg, sizeof msg) == 0,
              "%s", msg);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_STR(p[0].name, "x");
    free(p);
}

TEST(multipart_refusals) {
    api_part *p = NULL;
    int n = 0;
    char msg[256];
    const char ok1[] = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ--";
    CHECK(api_multipart_parse("multipart/form-data", (const uint8_t *)ok1, sizeof ok1 - 1, 8, &p, &n, msg,
                              sizeof msg) != 0);
    CHECK(strstr(msg, "boundary"));
    CHECK(api_multipart_parse("text/plain", (const uint8_t *)ok1, sizeof ok1 - 1, 8, &p, &n, msg, sizeof msg) != 0);
    /* truncated: no closing delimiter */
    CHECK(api_multipart_parse(CT, (const uint8_t *)ok1, sizeof ok1 - 8, 8, &p, &n, msg, sizeof msg) != 0);
    CHECK(strstr(msg, "truncated") || strstr(msg, "closing"));
    /* too many parts */
    const char two[] = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n"
                       "--XyZ\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n2\r\n--XyZ--";
    CHECK(api_multipart_parse(CT, (const uint8_t *)two, sizeof two - 1, 1, &p, &n, msg, sizeof msg) != 0);
    CHECK(strstr(msg, "more than 1 parts"));
    /* no Content-Disposition */
    const char nodisp[] = "--XyZ\r\nContent-Type: text/plain\r\n\r\n1\r\n--XyZ--";
    CHECK(api_multipart_parse(CT, (const uint8_t *)nodisp, sizeof nodisp - 1, 8, &p, &n, msg, sizeof msg) != 0);
    /* no boundary in the body at all */
    CHECK(api_multipart_parse(CT, (const uint8_t *)"hello", 5, 8, &p, &n, msg, sizeof msg) != 0);
    CHECK(p == NULL && n == 0);
}

/* ---- tar ------------------------------------------------------------------------ */

static void tar_header(uint8_t *h, const char *name, size_t size, char type) {
    memset(h, 0, 512);
    snprintf((char *)h, 100, "%s", name);
    snprintf((char *)h + 100, 8, "%07o", 0644);
    snprintf((char *)h + 124, 12, "%011zo", size);
    h[156] = (uint8_t)type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
}

typedef struct seen {
    int n;
    char names[4][API_PART_FILENAME_MAX];
    size_t lens[4];
} seen;

static int collect(const api_tar_member *m, void *user) {
    seen *s = user;
    if (s->n < 4) {
        snprintf(s->names[s->n], sizeof s->names[0], "%s", m->name);
        s->lens[s->n] = m->len;
    }
    s->n++;
    return 0;
}

TEST(tar_members) {
    uint8_t buf[512 * 6];
    memset(buf, 0, sizeof buf);
    tar_header(buf, "dir/", 0, '5');
    tar_header(buf + 512, "dir/a.png", 3, '0');
    memcpy(buf + 1024, "abc", 3);
    tar_header(buf + 1536, "link.png", 0, '2');
    /* then two zero blocks end the archive */
    seen s = {0};
    char msg[256];
    CHECK_MSG(api_tar_each(buf, 512 * 6, collect, &s, msg, sizeof msg) == 0, "%s", msg);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_STR(s.names[0], "dir/a.png");
    CHECK_EQ_INT(s.lens[0], 3);
}

TEST(tar_refusals) {
    uint8_t buf[512 * 4];
    memset(buf, 0, sizeof buf);
    tar_header(buf, "a.png", 700, '0');
    seen s = {0};
    char msg[256];
    /* the member's data runs past the end */
    CHECK(api_tar_each(buf, 1024, collect, &s, msg, sizeof msg) != 0);
    CHECK(strstr(msg, "truncated"));
    /* a corrupt checksum */
    tar_header(buf, "a.png", 3, '0');
    buf[0] = 'b';
    CHECK(api_tar_each(buf, sizeof buf, collect, &s, msg, sizeof msg) != 0);
    CHECK(strstr(msg, "checksum"));
    /* not a tar at all */
    CHECK(api_tar_each((const uint8_t *)"hello", 5, collect, &s, msg, sizeof msg) != 0);
}

/* ---- bicubic against the engine's sr condition ------------------------------------ */

TEST(bicubic_matches_engine_sr) {
    enum { S = 16, F = 4, C = 3 };
    uint8_t img[S * S * C], low[(S / F) * (S / F) * C], mine[S * S * C], theirs[S * S * C];
    unsigned x = 12345;
    for (int i = 0; i < S * S * C; i++) img[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 24);
    /* the engine's sr: F x F average pooling, then bicubic up */
    for (int y = 0; y < S / F; y++)
        for (int xx = 0; xx < S / F; xx++)
            for (int c = 0; c < C; c++) {
                double acc = 0;
                for (int dy = 0; dy < F; dy++)
                    for (int dx = 0; dx < F; dx++) acc += img[((y * F + dy) * S + xx * F + dx) * C + c];
                low[(y * (S / F) + xx) * C + c] = (uint8_t)(acc / (F * F) + 0.5);
            }
    CHECK(api_bicubic_resize(low, S / F, C, mine, S) == 0);
    eng_task_params tp;
    eng_task_params_init(&tp, ENG_TASK_SR);
    tp.factor = F;
    eng_images in = {1, S, S, C, img};
    eng_error err = {0};
    CHECK_MSG(eng_task_apply(&tp, &in, 1, theirs, &err) == ENG_OK, "%s", err.msg);
    int worst = 0;
    for (int i = 0; i < S * S * C; i++) {
        int d = abs((int)mine[i] - (int)theirs[i]);
        if (d > worst) worst = d;
    }
    /* pooling is rounded to bytes here and not in the engine */
    CHECK_MSG(worst <= 2, "largest difference %d", worst);
}

TEST(bicubic_keeps_constant_images) {
    uint8_t src[3 * 3], dst[7 * 7];
    memset(src, 77, sizeof src);
    CHECK(api_bicubic_resize(src, 3, 1, dst, 7) == 0);
    for (int i = 0; i < 49; i++) CHECK_EQ_INT(dst[i], 77);
}

/* ---- conditions --------------------------------------------------------------------- */

TEST(condition_inpaint_and_channels) {
    uint8_t rgb[8 * 8 * 3], gray[8 * 8];
    memset(rgb, 200, sizeof rgb);
    for (int i = 0; i < 64; i++) gray[i] = i < 32 ? 255 : 0; /* top half: fill */
    util_image img = {8, 8, 3, rgb}, mask = {8, 8, 1, gray};
    api_cond_params p;
    memset(&p, 0, sizeof p);
    eng_task_params_init(&p.task, ENG_TASK_INPAINT);
    p.model_channels = 3;
    p.size = 8;
    eng_image out;
    char msg[256];
    CHECK_MSG(api_condition_build(&p, &img, &mask, &out, msg, sizeof msg) == API_OK, "%s", msg);
    CHECK(out.channels == 4 && out.width == 8);
    CHECK(out.data[0] == 128 && out.data[3] == 255);             /* a hole */
    CHECK(out.data[40 * 4] == 200 && out.data[40 * 4 + 3] == 0); /* kept */
    free(out.data);
    CHECK_EQ_INT(api_condition_build(&p, &img, NULL, &out, msg, sizeof msg), API_BAD_REQUEST);
    CHECK(strstr(msg, "mask:"));
    CHECK_EQ_INT(api_condition_build(&p, &img, &img, &out, msg, sizeof msg), API_BAD_REQUEST);
    CHECK(strstr(msg, "1-channel"));
    eng_task_params_init(&p.task, ENG_TASK_EDGES);
    CHECK_EQ_INT(api_condition_build(&p, &img, NULL, &out, msg, sizeof msg), API_BAD_REQUEST);
    CHECK(strstr(msg, "grayscale"));
    p.preprocess = ENG_PRE_CANNY;
    CHECK_MSG(api_condition_build(&p, &img, NULL, &out, msg, sizeof msg) == API_OK, "%s", msg);
    CHECK(out.channels == 1);
    free(out.data);
}

/* The README's colorize command sends preprocess=gray; the adapter was
 * trained on the colorize task's luminance: both must be the same bytes. */
TEST(condition_gray_is_the_colorize_task) {
    uint8_t rgb[8 * 8 * 3];
    srand(3);
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(rand() % 256);
    util_image img = {8, 8, 3, rgb};
    api_cond_params p;
    memset(&p, 0, sizeof p);
    eng_task_params_init(&p.task, ENG_TASK_COLORIZE);
    p.model_channels = 3;
    p.size = 8;
    eng_image gray, task;
    char msg[256];
    p.preprocess = ENG_PRE_GRAY;
    CHECK_MSG(api_condition_build(&p, &img, NULL, &gray, msg, sizeof msg) == API_OK, "%s", msg);
    p.preprocess = ENG_PRE_TASK;
    CHECK_MSG(api_condition_build(&p, &img, NULL, &task, msg, sizeof msg) == API_OK, "%s", msg);
    CHECK(gray.channels == 1 && task.channels == 1);
    int differ = 0;
    for (int i = 0; i < 64; i++) differ += gray.data[i] != task.data[i];
    free(gray.data);
    free(task.data);
    CHECK_MSG(differ == 0, "preprocess gray and task differ in %d of 64 pixels", differ);
}

/* The inpaint condition from a client's image and mask is the training
 * layout: the image with the hole at mid-grey (0 in [-1, 1]), then the mask
 * (255 in the hole), for every byte value. */
TEST(condition_inpaint_layout_every_value) {
    enum { S = 16 };
    uint8_t rgb[S * S * 3], gray[S * S];
    for (int i = 0; i < S * S * 3; i++) rgb[i] = (uint8_t)(i % 256);
    for (int i = 0; i < S * S; i++) gray[i] = (uint8_t)(i * 37 % 256);
    util_image img = {S, S, 3, rgb}, mask = {S, S, 1, gray};
    api_cond_params p;
    memset(&p, 0, sizeof p);
    eng_task_params_init(&p.task, ENG_TASK_INPAINT);
    p.model_channels = 3;
    p.size = S;
    eng_image out;
    char msg[256];
    CHECK_MSG(api_condition_build(&p, &img, &mask, &out, msg, sizeof msg) == API_OK, "%s", msg);
    CHECK(out.channels == 4);
    for (int i = 0; i < S * S; i++) {
        int hole = gray[i] >= 128;
        for (int c = 0; c < 3; c++)
            CHECK_MSG(out.data[i * 4 + c] == (hole ? 128 : rgb[i * 3 + c]), "pixel %d channel %d: %d", i, c,
                      out.data[i * 4 + c]);
        CHECK_EQ_INT(out.data[i * 4 + 3], hole ? 255 : 0);
    }
    free(out.data);
}

TEST(condition_sr_upsamples_small_inputs) {
    uint8_t low[4 * 4 * 3];
    memset(low, 90, sizeof low);
    util_image img = {4, 4, 3, low};
    api_cond_params p;
    memset(&p, 0, sizeof p);
    eng_task_params_init(&p.task, ENG_TASK_SR);
    p.model_channels = 3;
    p.size = 16;
    eng_image out;
    char msg[256];
    CHECK_MSG(api_condition_build(&p, &img, NULL, &out, msg, sizeof msg) == API_OK, "%s", msg);
    CHECK(out.width == 16 && out.height == 16 && out.channels == 3);
    for (int i = 0; i < 16 * 16 * 3; i++) CHECK_EQ_INT(out.data[i], 90);
    free(out.data);
}

/* ---- plot ---------------------------------------------------------------------------- */

TEST(plot_draws_series_inside_the_axes) {
    double x[3] = {0, 1, 2}, y[3] = {1, 0.5, 0};
    util_series s = {y, {255, 0, 0}};
    uint8_t *rgb = NULL;
    char msg[128];
    int w = 200, h = 100;
    CHECK_MSG(util_plot_raster(x, 3, &s, 1, w, h, &rgb, msg, sizeof msg) == 0, "%s", msg);
    int red = 0, outside = 0;
    for (int yy = 0; yy < h; yy++)
        for (int xx = 0; xx < w; xx++) {
            const uint8_t *p = rgb + (yy * w + xx) * 3;
            if (p[0] == 255 && p[1] == 0 && p[2] == 0) {
                red++;
                if (xx < 56 || xx > w - 12 || yy < 12 || yy > h - 24) outside++;
            }
        }
    free(rgb);
    CHECK_MSG(red > 100 && outside == 0, "red %d, outside %d", red, outside);
    CHECK(util_plot_raster(x, 3, &s, 1, 10, 10, &rgb, msg, sizeof msg) != 0);
    /* no data: axes only, still a picture */
    CHECK(util_plot_raster(x, 0, &s, 1, 100, 100, &rgb, msg, sizeof msg) == 0);
    free(rgb);
}

int main(void) {
    RUN(sha256_vectors);
    RUN(sha256_million_a_in_odd_chunks);
    RUN(equal_ct);
    RUN(multipart_two_parts);
    RUN(multipart_quoted_boundary_and_preamble);
    RUN(multipart_refusals);
    RUN(tar_members);
    RUN(tar_refusals);
    RUN(bicubic_matches_engine_sr);
    RUN(bicubic_keeps_constant_images);
    RUN(condition_inpaint_and_channels);
    RUN(condition_gray_is_the_colorize_task);
    RUN(condition_inpaint_layout_every_value);
    RUN(condition_sr_upsamples_small_inputs);
    RUN(plot_draws_series_inside_the_axes);
    return TEST_SUMMARY();
}
