/*
 * test_plot.c - util/plot.c: the loss plot's rasteriser draws its series
 * inside the axes, refuses a canvas too small, and draws axes for no data.
 */
#include <stdlib.h>

#include "tests/test.h"
#include "util/plot.h"

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
    RUN(plot_draws_series_inside_the_axes);
    return TEST_SUMMARY();
}
