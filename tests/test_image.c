/* test_image.c - util/image.c: the centre crop, the channel conversion and
 * the resampling that fit an image to a model's input. */
#include "tests/test.h"
#include "util/image.h"

#include <stdint.h>

TEST(crop_shrink_and_convert) {
    /* 4 x 2 RGB: a wide image keeps its middle 2 x 2, averaged to 1 x 1 */
    const uint8_t src[4 * 2 * 3] = {255, 0, 0, 10, 20, 30, 30, 40, 50, 0, 0, 255,
                                    255, 0, 0, 50, 60, 70, 70, 80, 90, 0, 0, 255};
    uint8_t rgb[3], gray[1], rgba[4];
    char msg[128];
    CHECK(util_image_fit(src, 4, 2, 3, 1, 3, rgb, msg, sizeof msg) == 0);
    CHECK_EQ_INT(rgb[0], 40);
    CHECK_EQ_INT(rgb[1], 50);
    CHECK_EQ_INT(rgb[2], 60);
    CHECK(util_image_fit(src, 4, 2, 3, 1, 4, rgba, msg, sizeof msg) == 0);
    CHECK_EQ_INT(rgba[3], 255);
    const uint8_t white[3] = {255, 255, 255};
    CHECK(util_image_fit(white, 1, 1, 3, 1, 1, gray, msg, sizeof msg) == 0);
    CHECK_EQ_INT(gray[0], 255);
}

TEST(enlarge_is_bilinear) {
    const uint8_t two[4] = {0, 200, 0, 200};
    uint8_t out[16];
    char msg[128];
    CHECK(util_image_fit(two, 2, 2, 1, 4, 1, out, msg, sizeof msg) == 0);
    const uint8_t row[4] = {0, 50, 150, 200};
    for (int y = 0; y < 4; y++) CHECK(memcmp(out + 4 * y, row, 4) == 0);
}

TEST(fitter_reuses_its_scratch_and_refuses_bad_shapes) {
    util_image_fitter f;
    char msg[128];
    CHECK(util_image_fitter_init(&f, 0, 3, msg, sizeof msg) != 0);
    CHECK(strcmp(msg, "bad image shape") == 0);
    CHECK(util_image_fitter_init(&f, 2, 2, msg, sizeof msg) != 0);
    CHECK(util_image_fitter_init(&f, 2, 1, msg, sizeof msg) == 0);
    uint8_t a[9] = {9, 9, 9, 9, 9, 9, 9, 9, 9}, b[4] = {1, 1, 1, 1};
    int ok = util_image_fitter_fit(&f, a, 3, 3, 1, msg, sizeof msg) == 0 && f.out[0] == 9 && f.out[3] == 9;
    ok = ok && util_image_fitter_fit(&f, b, 2, 2, 1, msg, sizeof msg) == 0 && f.out[0] == 1 && f.out[3] == 1;
    util_image_fitter_free(&f);
    CHECK(ok);
    uint8_t out[1];
    CHECK(util_image_fit(b, 2, 2, 1, UTIL_IMAGE_MAX_SIDE + 1, 1, out, msg, sizeof msg) != 0);
}

int main(void) {
    RUN(crop_shrink_and_convert);
    RUN(enlarge_is_bilinear);
    RUN(fitter_reuses_its_scratch_and_refuses_bad_shapes);
    return TEST_SUMMARY();
}
