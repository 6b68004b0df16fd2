/*
 * plot.h - a line plot rasterised into a PNG, for a job's loss curve
 * (GET /v1/jobs/{id}/loss?format=png): white canvas, axes with grid lines,
 * series drawn as connected 1-pixel lines (Bresenham), the y range and the
 * last x printed with a small built-in digit font. No fonts or graphics
 * libraries beyond libpng.
 */
#ifndef CODID_UTIL_PLOT_H
#define CODID_UTIL_PLOT_H

#include <stddef.h>
#include <stdint.h>

#define UTIL_PLOT_MIN_SIDE   64
#define UTIL_PLOT_MAX_SIDE   2048
#define UTIL_PLOT_MAX_SERIES 4

typedef struct util_series {
    const double *y; /* n values; NaN marks a gap */
    uint8_t rgb[3];
} util_series;

/* Draws series[0..n_series) over x[0..n) (increasing) on a w x h canvas and
 * encodes it as a PNG (*png, malloc'd, *len). Returns 0, or -1 with msg. */
int util_plot_png(const double *x, int n, const util_series *series, int n_series, int w, int h, uint8_t **png,
                  size_t *len, char *msg, size_t msgsz);

/* The canvas before encoding (w * h * 3 bytes, malloc'd): for tests. */
int util_plot_raster(const double *x, int n, const util_series *series, int n_series, int w, int h, uint8_t **rgb,
                     char *msg, size_t msgsz);

#endif
