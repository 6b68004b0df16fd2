/* cli.c - the helpers of cli.h. */
#include "server/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/png.h"

int srv_cli_long(const char *s, const char *flag, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "codid: %s must be an integer in %ld..%ld (got '%s')\n", flag, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int srv_cli_int(const char *s, const char *flag, int lo, int hi, int *out) {
    long v;
    if (srv_cli_long(s, flag, lo, hi, &v) != 0) return -1;
    *out = (int)v;
    return 0;
}

int srv_cli_float(const char *s, const char *flag, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || *end || end == s || !isfinite(v)) {
        fprintf(stderr, "codid: %s must be a number (got '%s')\n", flag, s);
        return -1;
    }
    *out = v;
    return 0;
}

int srv_cli_threads(const char *s, int *out) {
    return srv_cli_int(s, "--threads", 0, SRV_CLI_MAX_THREADS, out);
}

int srv_cli_seed(const char *s, uint64_t *out) {
    long v;
    if (srv_cli_long(s, "--seed", 0, SRV_CLI_MAX_SEED, &v) != 0) return -1;
    *out = (uint64_t)v;
    return 0;
}

int srv_cli_help(int argc, char **argv, const char *usage) {
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 1;
        }
    return 0;
}

int srv_cli_usage_error(const char *usage) {
    fputs(usage, stderr);
    return 2;
}

eng_ctx *srv_cli_ctx(int threads) {
    eng_ctx_params cp;
    eng_ctx_params_init(&cp);
    cp.threads = threads;
    eng_ctx *ctx = NULL;
    eng_error err;
    if (eng_ctx_create(&cp, &ctx, &err) != ENG_OK) {
        fprintf(stderr, "codid: %s\n", err.msg);
        return NULL;
    }
    return ctx;
}

eng_model *srv_cli_model(eng_ctx *ctx, const char *dir) {
    eng_model *m = NULL;
    eng_error err;
    if (eng_model_load(ctx, dir, &m, &err) != ENG_OK) {
        fprintf(stderr, "codid: %s\n", err.msg);
        return NULL;
    }
    return m;
}

eng_classifier *srv_cli_classifier(eng_ctx *ctx, const char *dir) {
    eng_classifier *c = NULL;
    eng_error err;
    if (eng_classifier_load(ctx, dir, &c, &err) != ENG_OK) {
        fprintf(stderr, "codid: %s\n", err.msg);
        return NULL;
    }
    return c;
}

char *srv_cli_read_text(const char *path, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(cap + 1);
    size_t n = buf ? fread(buf, 1, cap + 1, f) : 0;
    fclose(f);
    if (!buf || n > cap) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

int srv_cli_write_file(const char *path, const void *data, size_t len) {
    errno = 0;
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, len, f) == len;
    /* closed whatever happened; its final flush is often what fails (disk full) */
    if (f && fclose(f) != 0) ok = 0;
    if (!ok) {
        fprintf(stderr, "codid: cannot write %s: %s\n", path, errno ? strerror(errno) : "short write");
        return -1;
    }
    return 0;
}

int srv_cli_write_png(const char *path, const uint8_t *pixels, int w, int h, int channels) {
    uint8_t *png = NULL;
    size_t len = 0;
    char msg[256];
    if (util_png_encode(pixels, w, h, channels, &png, &len, msg, sizeof msg) != 0) {
        fprintf(stderr, "codid: %s: %s\n", path, msg);
        return -1;
    }
    int rc = srv_cli_write_file(path, png, len);
    free(png);
    return rc;
}
