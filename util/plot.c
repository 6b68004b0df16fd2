/* plot.c - see plot.h. */
#include "util/plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/png.h"

#define MARGIN_LEFT   56
#define MARGIN_RIGHT  12
#define MARGIN_TOP    12
#define MARGIN_BOTTOM 24
#define GRID_LINES    4
#define GLYPH_SCALE   2

typedef struct canvas {
    uint8_t *px;
    int w, h;
} canvas;

static void set(canvas *c, int x, int y, const uint8_t rgb[3]) {
    if (x < 0 || y < 0 || x >= c->w || y >= c->h) return;
    memcpy(c->px + ((size_t)y * c->w + x) * 3, rgb, 3);
}

static void line(canvas *c, int x0, int y0, int x1, int y1, const uint8_t rgb[3]) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
        set(c, x0, y0, rgb);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * err;
        if (e2 >= dy) err += dy, x0 += sx;
        if (e2 <= dx) err += dx, y0 += sy;
    }
}

/* 3x5 glyphs, one row per 3-bit number (high bit left). */
static const char glyph_chars[] = "0123456789.-e+";
static const uint8_t glyphs[][5] = {{7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1},
                                    {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7},
                                    {0, 0, 0, 0, 2}, {0, 0, 7, 0, 0}, {0, 7, 5, 6, 3}, {0, 2, 7, 2, 0}};

/* Text with its top-left corner at (x, y); returns the width drawn. */
static int text(canvas *c, int x, int y, const char *s, const uint8_t rgb[3]) {
    int x0 = x;
    for (; *s; s++) {
        const char *g = strchr(glyph_chars, *s);
        if (g && *s) {
            const uint8_t *rows = glyphs[g - glyph_chars];
            for (int r = 0; r < 5; r++)
                for (int b = 0; b < 3; b++)
                    if (rows[r] & (4 >> b))
                        for (int dy = 0; dy < GLYPH_SCALE; dy++)
                            for (int dx = 0; dx < GLYPH_SCALE; dx++)
                                set(c, x + b * GLYPH_SCALE + dx, y + r * GLYPH_SCALE + dy, rgb);
        }
        x += 4 * GLYPH_SCALE;
    }
    return x - x0;
}

static void number(char *buf, size_t bufsz, double v) {
    snprintf(buf, bufsz, "%.3g", v);
}

int util_plot_raster(const double *x, int n, const util_series *series, int n_series, int w, int h, uint8_t **rgb,
                     char *msg, size_t msgsz) {
    if (w < UTIL_PLOT_MIN_SIDE || h < UTIL_PLOT_MIN_SIDE || w > UTIL_PLOT_MAX_SIDE || h > UTIL_PLOT_MAX_SIDE) {
        snprintf(msg, msgsz, "the plot must be %d to %d pixels a side", UTIL_PLOT_MIN_SIDE, UTIL_PLOT_MAX_SIDE);
        return -1;
    }
    if (n_series < 0 || n_series > UTIL_PLOT_MAX_SERIES || n < 0) {
        snprintf(msg, msgsz, "bad series");
        return -1;
    }
    canvas c = {malloc((size_t)w * h * 3), w, h};
    if (!c.px) {
        snprintf(msg, msgsz, "out of memory");
        return -1;
    }
    memset(c.px, 255, (size_t)w * h * 3);
    static const uint8_t axis[3] = {80, 80, 80}, grid[3] = {225, 225, 225}, ink[3] = {40, 40, 40};

    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i])) continue;
        for (int s = 0; s < n_series; s++) {
            double v = series[s].y[i];
            if (!isfinite(v)) continue;
            xmin = fmin(xmin, x[i]), xmax = fmax(xmax, x[i]);
            ymin = fmin(ymin, v), ymax = fmax(ymax, v);
        }
    }
    int have = isfinite(xmin);
    if (!have) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
    if (xmax <= xmin) xmax = xmin + 1;
    if (ymax <= ymin) ymax = ymin + fmax(fabs(ymin) * 0.1, 1e-6);

    int left = MARGIN_LEFT, right = w - MARGIN_RIGHT, top = MARGIN_TOP, bottom = h - MARGIN_BOTTOM;
    for (int g = 0; g <= GRID_LINES; g++) {
        int y = top + (bottom - top) * g / GRID_LINES;
        line(&c, left, y, right, y, grid);
    }
    line(&c, left, top, left, bottom, axis);
    line(&c, left, bottom, right, bottom, axis);

    char label[32];
    number(label, sizeof label, ymax);
    text(&c, 4, top - 4, label, ink);
    number(label, sizeof label, ymin);
    text(&c, 4, bottom - 6, label, ink);
    number(label, sizeof label, xmin);
    text(&c, left, bottom + 6, label, ink);
    number(label, sizeof label, xmax);
    text(&c, right - (int)strlen(label) * 4 * GLYPH_SCALE, bottom + 6, label, ink);

    for (int s = 0; s < n_series && have; s++) {
        int px = 0, py = 0, pen = 0;
        for (int i = 0; i < n; i++) {
            double v = series[s].y[i];
            if (!isfinite(v) || !isfinite(x[i])) {
                pen = 0;
                continue;
            }
            int X = left + (int)lround((x[i] - xmin) / (xmax - xmin) * (right - left));
            int Y = bottom - (int)lround((v - ymin) / (ymax - ymin) * (bottom - top));
            if (pen)
                line(&c, px, py, X, Y, series[s].rgb);
            else
                set(&c, X, Y, series[s].rgb);
            px = X, py = Y, pen = 1;
        }
    }
    *rgb = c.px;
    return 0;
}

int util_plot_png(const double *x, int n, const util_series *series, int n_series, int w, int h, uint8_t **png,
                  size_t *len, char *msg, size_t msgsz) {
    uint8_t *rgb;
    if (util_plot_raster(x, n, series, n_series, w, h, &rgb, msg, msgsz) != 0) return -1;
    int rc = util_png_encode(rgb, w, h, 3, png, len, msg, msgsz);
    free(rgb);
    return rc;
}
