/*
 * test_condition.c - api/condition.c: the bicubic upsampler against the
 * engine's own sr condition, and condition building (channels, inpaint
 * masks, canny preprocessing, small sr inputs upsampled).
 */
#include <stdlib.h>
#include <string.h>

#include "api/condition.h"
#include "tests/test.h"

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

int main(void) {
    RUN(bicubic_matches_engine_sr);
    RUN(bicubic_keeps_constant_images);
    RUN(condition_inpaint_and_channels);
    RUN(condition_gray_is_the_colorize_task);
    RUN(condition_inpaint_layout_every_value);
    RUN(condition_sr_upsamples_small_inputs);
    return TEST_SUMMARY();
}
