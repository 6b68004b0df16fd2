/*
 * image.c - see image.h: the crop, the channel conversion and the
 * separable resampling that fit an image to a model's input.
 */
#include "util/image.h"

#include "util/msg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rec. 709 luma in 15-bit fixed point: libpng's default rgb_to_gray weights,
 * so imported and API-decoded gray images agree. */
static uint8_t luma(const uint8_t *rgb) {
    return (uint8_t)((6968u * rgb[0] + 23434u * rgb[1] + 2366u * rgb[2] + 16384u) >> 15);
}

static void convert_pixel(const uint8_t *s, int sc, uint8_t *d, int dc) {
    if (sc == dc) {
        memcpy(d, s, (size_t)dc);
    } else if (dc == 1) {
        d[0] = sc >= 3 ? luma(s) : s[0];
    } else {
        int color = sc >= 3;
        d[0] = s[0];
        d[1] = color ? s[1] : s[0];
        d[2] = color ? s[2] : s[0];
        if (dc == 4) d[3] = sc == 4 ? s[3] : 0xff;
    }
}

/* One output sample of a 1-D resampling: taps over [first, first + n). */
typedef struct taps {
    int first, n;
    float *w;
} taps;

/*
 * Weights for resampling `from` samples to `to`. Shrinking: each output
 * sample averages the input span it covers, partial samples weighted by
 * their overlap (area averaging, no aliasing). Enlarging: bilinear between
 * the two nearest input centres (half-pixel aligned, clamped at the edges).
 */
static taps *make_taps(int from, int to, float **storage) {
    int max_n = from > to ? from / to + 2 : 2;
    taps *t = malloc(sizeof *t * (size_t)to);
    float *w = malloc(sizeof *w * (size_t)to * (size_t)max_n);
    if (!t || !w) {
        free(t);
        free(w);
        return NULL;
    }
    double scale = (double)from / to;
    for (int o = 0; o < to; o++) {
        taps *k = &t[o];
        k->w = w + (size_t)o * max_n;
        if (from > to) {
            double lo = o * scale, hi = (o + 1) * scale;
            k->first = (int)lo;
            int last = (int)ceil(hi) - 1;
            if (last > from - 1) last = from - 1;
            k->n = last - k->first + 1;
            for (int i = 0; i < k->n; i++) {
                int s = k->first + i;
                double a = s < lo ? lo : s, b = s + 1 > hi ? hi : s + 1;
                k->w[i] = (float)((b - a) / scale);
            }
        } else {
            double pos = (o + 0.5) * scale - 0.5;
            if (pos < 0) pos = 0;
            if (pos > from - 1) pos = from - 1;
            k->first = (int)pos;
            double f = pos - k->first;
            k->n = k->first + 1 < from ? 2 : 1;
            k->w[0] = (float)(1 - f);
            if (k->n == 2) k->w[1] = (float)f;
        }
    }
    *storage = w;
    return t;
}

static uint8_t to_u8(float v) {
    return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)(v + 0.5f);
}

/* Resizes a side x side image of c channels to size x size, separably. */
static int resize_square(const uint8_t *src, int side, int c, uint8_t *dst, int size) {
    if (side == size) {
        memcpy(dst, src, (size_t)side * side * c);
        return 0;
    }
    float *wstore = NULL;
    taps *t = make_taps(side, size, &wstore);
    float *tmp = malloc(sizeof *tmp * (size_t)side * size * c); /* side rows, size cols */
    if (!t || !tmp) {
        free(t);
        free(wstore);
        free(tmp);
        return -1;
    }
    for (int y = 0; y < side; y++)
        for (int x = 0; x < size; x++)
            for (int ch = 0; ch < c; ch++) {
                float acc = 0;
                for (int i = 0; i < t[x].n; i++) acc += t[x].w[i] * src[((size_t)y * side + t[x].first + i) * c + ch];
                tmp[((size_t)y * size + x) * c + ch] = acc;
            }
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            for (int ch = 0; ch < c; ch++) {
                float acc = 0;
                for (int i = 0; i < t[y].n; i++) acc += t[y].w[i] * tmp[((size_t)(t[y].first + i) * size + x) * c + ch];
                dst[((size_t)y * size + x) * c + ch] = to_u8(acc);
            }
    free(t);
    free(wstore);
    free(tmp);
    return 0;
}

static int valid_channels(int c) {
    return c == 1 || c == 3 || c == 4;
}

int util_image_fitter_init(util_image_fitter *f, int size, int channels, char *msg, size_t msgsz) {
    memset(f, 0, sizeof *f);
    if (size < 1 || size > UTIL_IMAGE_MAX_SIDE || !valid_channels(channels))
        return util_msg(msg, msgsz, -1, "bad image shape");
    f->size = size;
    f->channels = channels;
    f->out = malloc((size_t)size * size * channels);
    return f->out ? 0 : util_msg(msg, msgsz, -1, "out of memory");
}

void util_image_fitter_free(util_image_fitter *f) {
    free(f->crop_);
    free(f->out);
    memset(f, 0, sizeof *f);
}

int util_image_fitter_fit(util_image_fitter *f, const uint8_t *src, int w, int h, int sc, char *msg, size_t msgsz) {
    int side = w < h ? w : h, x0 = (w - side) / 2, y0 = (h - side) / 2, dc = f->channels;
    size_t need = (size_t)side * side * dc;
    if (need > f->crop_cap_) {
        uint8_t *grown = realloc(f->crop_, need);
        if (!grown) return util_msg(msg, msgsz, -1, "out of memory");
        f->crop_ = grown;
        f->crop_cap_ = need;
    }
    for (int y = 0; y < side; y++) {
        const uint8_t *s = src + ((size_t)(y0 + y) * w + x0) * sc;
        uint8_t *d = f->crop_ + (size_t)y * side * dc;
        if (sc == dc)
            memcpy(d, s, (size_t)side * dc);
        else
            for (int x = 0; x < side; x++) convert_pixel(s + (size_t)x * sc, sc, d + (size_t)x * dc, dc);
    }
    if (resize_square(f->crop_, side, dc, f->out, f->size) != 0) return util_msg(msg, msgsz, -1, "out of memory");
    return 0;
}

int util_image_fit(const uint8_t *src, int w, int h, int channels_in, int size, int channels_out, uint8_t *out,
                   char *msg, size_t msgsz) {
    if (w < 1 || h < 1 || size < 1 || size > UTIL_IMAGE_MAX_SIDE || !valid_channels(channels_in) ||
        !valid_channels(channels_out))
        return util_msg(msg, msgsz, -1, "bad image shape");
    util_image_fitter f;
    if (util_image_fitter_init(&f, size, channels_out, msg, msgsz) != 0) return -1;
    int rc = util_image_fitter_fit(&f, src, w, h, channels_in, msg, msgsz);
    if (rc == 0) memcpy(out, f.out, (size_t)size * size * channels_out);
    util_image_fitter_free(&f);
    return rc;
}
