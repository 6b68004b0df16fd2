/*
 * test_metrics.c - PSNR, SSIM, the Frechet distance, the FID-proxy and the
 * evaluation classifier, through engine.h only. Figures are checked against
 * closed forms: PSNR of a known error, SSIM of constant images, Frechet
 * distances of Gaussians with commuting covariances.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "tests/test.h"

#define SIDE 16
#define PER  (SIDE * SIDE * 3)

static const char *TINY = "{\"image_size\":16,\"in_channels\":3,\"num_classes\":2,\"widths\":[8,16],"
                          "\"norm_num_groups\":4,\"stem_stride\":1}";

static eng_ctx *ctx;
static char tmpdir[64];

/* xorshift64*, so images do not depend on the C library's rand() */
static uint64_t rng_state;
static uint32_t next_u32(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}
static double uniform(void) {
    return (next_u32() + 0.5) / 4294967296.0;
}
static double gauss(void) {
    return sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform());
}

/* n random images with values in [lo, hi] */
static uint8_t *random_images(int n, int lo, int hi, uint64_t seed) {
    rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
    uint8_t *p = malloc((size_t)n * PER);
    for (int i = 0; p && i < n * PER; i++) p[i] = (uint8_t)(lo + next_u32() % (unsigned)(hi - lo + 1));
    return p;
}

/* a copy of src with Gaussian noise of standard deviation sd, clipped */
static uint8_t *noised(const uint8_t *src, int n, double sd, uint64_t seed) {
    rng_state = seed * 0x9E3779B97F4A7C15ull + 7;
    uint8_t *p = malloc((size_t)n * PER);
    for (int i = 0; p && i < n * PER; i++) {
        double v = src[i] + sd * gauss();
        p[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
    }
    return p;
}

static eng_images set_of(const uint8_t *p, int n) {
    return (eng_images){n, SIDE, SIDE, 3, p};
}

/* ---- PSNR ------------------------------------------------------------------ */

TEST(psnr_of_identical_images_is_the_cap) {
    uint8_t *a = random_images(2, 0, 255, 1);
    eng_images s = set_of(a, 2);
    double v = 0;
    eng_error err;
    CHECK(eng_psnr(&s, &s, &v, &err) == ENG_OK);
    CHECK_NEAR(v, ENG_PSNR_CAP_DB, 0);
    free(a);
}

TEST(psnr_of_a_known_error_matches_the_formula) {
    /* b = a +- 5 everywhere: MSE 25, PSNR = 10 log10(255^2 / 25) = 34.151 dB;
     * a second pair with +-10 (MSE 100): the mean of both per-image figures */
    uint8_t *a = random_images(2, 20, 235, 2);
    uint8_t *b = malloc(2 * PER);
    CHECK(a && b);
    for (int i = 0; i < 2 * PER; i++) {
        int d = i < PER ? 5 : 10;
        b[i] = (uint8_t)(a[i] + (i % 2 ? d : -d));
    }
    eng_images sa = set_of(a, 1), sb = set_of(b, 1);
    double v = 0;
    CHECK(eng_psnr(&sa, &sb, &v, NULL) == ENG_OK);
    CHECK_NEAR(v, 10 * log10(255.0 * 255.0 / 25.0), 1e-9);
    sa.n = sb.n = 2;
    CHECK(eng_psnr(&sa, &sb, &v, NULL) == ENG_OK);
    CHECK_NEAR(v, (10 * log10(255.0 * 255.0 / 25.0) + 10 * log10(255.0 * 255.0 / 100.0)) / 2, 1e-9);
    free(a);
    free(b);
}

TEST(psnr_refuses_sets_of_different_shapes) {
    uint8_t *a = random_images(2, 0, 255, 3);
    eng_images sa = set_of(a, 2), sb = set_of(a, 1);
    double v = -1;
    eng_error err;
    CHECK_EQ_INT(eng_psnr(&sa, &sb, &v, &err), ENG_EINVAL);
    CHECK_EQ_INT(err.code, ENG_EINVAL);
    CHECK(v == -1);
    free(a);
}

/* ---- SSIM ------------------------------------------------------------------ */

TEST(ssim_of_identical_images_is_one) {
    uint8_t *a = random_images(3, 0, 255, 4);
    eng_images s = set_of(a, 3);
    double v = 0;
    CHECK(eng_ssim(&s, &s, &v, NULL) == ENG_OK);
    CHECK_NEAR(v, 1.0, 1e-12);
    free(a);
}

TEST(ssim_of_constant_images_matches_the_closed_form) {
    /* no variance anywhere: SSIM = (2 x y + C1) / (x^2 + y^2 + C1) */
    uint8_t *a = malloc(PER), *b = malloc(PER);
    CHECK(a && b);
    memset(a, 100, PER);
    memset(b, 150, PER);
    eng_images sa = set_of(a, 1), sb = set_of(b, 1);
    double v = 0, c1 = (0.01 * 255) * (0.01 * 255);
    CHECK(eng_ssim(&sa, &sb, &v, NULL) == ENG_OK);
    CHECK_NEAR(v, (2 * 100.0 * 150 + c1) / (100.0 * 100 + 150.0 * 150 + c1), 1e-12);
    free(a);
    free(b);
}

TEST(ssim_falls_as_noise_grows_and_is_symmetric) {
    /* a smooth image, so that the noise dominates its local variance */
    uint8_t *a = malloc(PER);
    CHECK(a);
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++)
            for (int c = 0; c < 3; c++) a[(y * SIDE + x) * 3 + c] = (uint8_t)(40 + 6 * x + 3 * y + 10 * c);
    double prev = 1.0;
    const double sds[] = {2, 8, 32};
    for (int k = 0; k < 3; k++) {
        uint8_t *b = noised(a, 1, sds[k], 10 + k);
        eng_images sa = set_of(a, 1), sb = set_of(b, 1);
        double ab = 0, ba = 0;
        CHECK(eng_ssim(&sa, &sb, &ab, NULL) == ENG_OK && eng_ssim(&sb, &sa, &ba, NULL) == ENG_OK);
        free(b);
        CHECK_MSG(ab < prev, "noise sd %g: SSIM %g is not below %g", sds[k], ab, prev);
        CHECK_NEAR(ab, ba, 1e-12);
        prev = ab;
    }
    CHECK(prev > 0 && prev < 0.5);
    free(a);
}

TEST(ssim_refuses_images_smaller_than_its_window) {
    uint8_t px[10 * 10] = {0};
    eng_images s = {1, 10, 10, 1, px};
    double v;
    eng_error err;
    CHECK_EQ_INT(eng_ssim(&s, &s, &v, &err), ENG_EINVAL);
    CHECK(strstr(err.msg, "11") != NULL);
}

/* ---- Frechet distance -------------------------------------------------------- */

TEST(frechet_of_diagonal_gaussians_matches_the_closed_form) {
    /* commuting covariances: d^2 = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2 */
    enum { D = 5 };
    double mu1[D], mu2[D], s1[D * D] = {0}, s2[D * D] = {0}, want = 0;
    for (int i = 0; i < D; i++) {
        mu1[i] = 0.3 * i;
        mu2[i] = 1.0 - 0.2 * i;
        double a = 0.5 + i, b = 4.0 / (i + 1);
        s1[i * D + i] = a;
        s2[i * D + i] = b;
        want += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + (sqrt(a) - sqrt(b)) * (sqrt(a) - sqrt(b));
    }
    double v = 0;
    eng_error err;
    CHECK_MSG(eng_frechet_distance(mu1, s1, mu2, s2, D, &v, &err) == ENG_OK, "%s", err.msg);
    CHECK_NEAR(v, want, 1e-10);
    /* symmetric in its arguments */
    CHECK(eng_frechet_distance(mu2, s2, mu1, s1, D, &v, NULL) == ENG_OK);
    CHECK_NEAR(v, want, 1e-10);
}

TEST(frechet_is_invariant_under_a_common_rotation) {
    /* S = R diag R^T with the same rotation R (a Givens rotation in the
     * plane of axes 0 and 2) gives the diagonal case's figure */
    enum { D = 3 };
    double a[D] = {1, 2, 3}, b[D] = {4, 0.5, 2};
    double c = cos(0.7), s = sin(0.7);
    double r[D * D] = {c, 0, -s, 0, 1, 0, s, 0, c};
    double s1[D * D], s2[D * D], mu[D] = {0.1, -0.2, 0.3}, want = 0;
    for (int i = 0; i < D; i++) {
        want += (sqrt(a[i]) - sqrt(b[i])) * (sqrt(a[i]) - sqrt(b[i]));
        for (int j = 0; j < D; j++) {
            s1[i * D + j] = s2[i * D + j] = 0;
            for (int k = 0; k < D; k++) {
                s1[i * D + j] += r[i * D + k] * a[k] * r[j * D + k];
                s2[i * D + j] += r[i * D + k] * b[k] * r[j * D + k];
            }
        }
    }
    double v = 0;
    CHECK(eng_frechet_distance(mu, s1, mu, s2, D, &v, NULL) == ENG_OK);
    CHECK_NEAR(v, want, 1e-10);
    /* a Gaussian against itself, even with a singular covariance: 0 */
    double sing[D * D] = {1, 1, 0, 1, 1, 0, 0, 0, 0};
    CHECK(eng_frechet_distance(mu, sing, mu, sing, D, &v, NULL) == ENG_OK);
    CHECK_NEAR(v, 0, 1e-10);
}

TEST(feature_stats_fit_mean_and_unbiased_covariance) {
    const float f[4 * 2] = {1, 2, 3, 2, 1, 6, 3, 6};
    double mu[2], cov[4];
    CHECK(eng_feature_stats(f, 4, 2, mu, cov, NULL) == ENG_OK);
    CHECK_NEAR(mu[0], 2, 1e-12);
    CHECK_NEAR(mu[1], 4, 1e-12);
    CHECK_NEAR(cov[0], 4.0 / 3, 1e-12); /* (1 + 1 + 1 + 1) / 3 */
    CHECK_NEAR(cov[3], 16.0 / 3, 1e-12);
    CHECK_NEAR(cov[1], 0, 1e-12);
    CHECK_NEAR(cov[1], cov[2], 0);
    eng_error err;
    CHECK_EQ_INT(eng_feature_stats(f, 1, 2, mu, cov, &err), ENG_EINVAL);
}

/* ---- the classifier and the FID-proxy ---------------------------------------- */

static eng_classifier *tiny(uint64_t seed) {
    eng_classifier *c = NULL;
    eng_error err;
    if (eng_classifier_create(ctx, TINY, seed, &c, &err) != ENG_OK) printf("# create: %s\n", err.msg);
    return c;
}

TEST(fid_proxy_of_a_set_with_itself_is_zero_and_grows_with_distortion) {
    eng_classifier *c = tiny(1);
    CHECK(c);
    enum { N = 64 };
    uint8_t *a = random_images(N, 0, 255, 20), *b = random_images(N, 0, 255, 21);
    uint8_t *dark = malloc((size_t)N * PER);
    CHECK(a && b && dark);
    for (int i = 0; i < N * PER; i++) dark[i] = (uint8_t)(a[i] / 3);
    eng_images sa = set_of(a, N), sb = set_of(b, N), sd = set_of(dark, N);
    double self = -1, other = -1, shifted = -1;
    eng_error err;
    CHECK_MSG(eng_fid_proxy(c, &sa, &sa, &self, &err) == ENG_OK, "%s", err.msg);
    CHECK(eng_fid_proxy(c, &sa, &sb, &other, NULL) == ENG_OK);
    CHECK(eng_fid_proxy(c, &sa, &sd, &shifted, NULL) == ENG_OK);
    printf("# fid-proxy: self %.3g, another draw %.4g, darkened %.4g\n", self, other, shifted);
    CHECK_NEAR(self, 0, 1e-6);
    /* two draws of the same distribution differ by sampling error only */
    CHECK(shifted > 0 && shifted > 10 * other);
    free(a);
    free(b);
    free(dark);
    eng_classifier_free(c);
}

TEST(features_do_not_depend_on_the_batch) {
    eng_classifier *c = tiny(2);
    CHECK(c);
    eng_classifier_info info;
    eng_classifier_get_info(c, &info);
    CHECK_EQ_INT(info.feature_dim, 16);
    CHECK_EQ_INT(info.image_size, SIDE);
    uint8_t *a = random_images(6, 0, 255, 30);
    float all[6 * 16], one[16];
    eng_images s = set_of(a, 6), s3 = set_of(a + 3 * PER, 1);
    CHECK(eng_classifier_features(c, &s, all, NULL) == ENG_OK);
    CHECK(eng_classifier_features(c, &s3, one, NULL) == ENG_OK);
    for (int k = 0; k < 16; k++) CHECK_NEAR(one[k], all[3 * 16 + k], 1e-5);
    /* wrong sizes are refused, naming both */
    eng_images big = {1, 32, 32, 3, a};
    eng_error err;
    CHECK_EQ_INT(eng_classifier_features(c, &big, all, &err), ENG_EINVAL);
    CHECK(strstr(err.msg, "16x16x3") != NULL);
    free(a);
    eng_classifier_free(c);
}

TEST(classifier_round_trips_through_its_folder) {
    eng_classifier *c = tiny(3), *back = NULL, *half = NULL;
    CHECK(c);
    char dir32[128], dir16[128];
    snprintf(dir32, sizeof dir32, "%s/f32", tmpdir);
    snprintf(dir16, sizeof dir16, "%s/f16", tmpdir);
    eng_error err;
    CHECK_MSG(eng_classifier_save(c, dir32, 0, "{\"codid.note\":\"test\"}", &err) == ENG_OK, "%s", err.msg);
    CHECK(eng_classifier_save(c, dir16, 1, NULL, NULL) == ENG_OK);
    CHECK_MSG(eng_classifier_load(ctx, dir32, &back, &err) == ENG_OK, "%s", err.msg);
    CHECK(eng_classifier_load(ctx, dir16, &half, NULL) == ENG_OK);
    uint8_t *a = random_images(4, 0, 255, 40);
    float f[4 * 16], g[4 * 16], h[4 * 16];
    eng_images s = set_of(a, 4);
    CHECK(eng_classifier_features(c, &s, f, NULL) == ENG_OK);
    CHECK(eng_classifier_features(back, &s, g, NULL) == ENG_OK);
    CHECK(eng_classifier_features(half, &s, h, NULL) == ENG_OK);
    for (int k = 0; k < 4 * 16; k++) {
        CHECK_NEAR(g[k], f[k], 0);
        CHECK_NEAR(h[k], f[k], 1e-2 * (1 + fabs(f[k])));
    }
    /* metadata must be an object of strings */
    CHECK_EQ_INT(eng_classifier_save(c, dir32, 0, "{\"n\":1}", &err), ENG_EINVAL);
    /* a folder without weights */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/none", tmpdir);
    eng_classifier *none = NULL;
    CHECK(eng_classifier_load(ctx, missing, &none, &err) == ENG_EIO && none == NULL);
    free(a);
    eng_classifier_free(c);
    eng_classifier_free(back);
    eng_classifier_free(half);
}

TEST(classifier_learns_a_separable_problem) {
    /* class 0: reddish noise images, class 1: bluish ones */
    enum { N = 64 };
    uint8_t *x = random_images(N, 0, 120, 50);
    uint8_t labels[N];
    CHECK(x);
    for (int i = 0; i < N; i++) {
        labels[i] = (uint8_t)(i % 2);
        for (int p = 0; p < SIDE * SIDE; p++) x[i * PER + p * 3 + (labels[i] ? 2 : 0)] += 120;
    }
    eng_classifier *c = tiny(4);
    CHECK(c);
    eng_images s = set_of(x, N);
    double before = 0, after = 0;
    CHECK(eng_classifier_accuracy(c, &s, labels, &before, NULL) == ENG_OK);
    eng_classifier_train_params p;
    eng_classifier_train_params_init(&p);
    p.total_steps = 40;
    p.batch_size = 16;
    p.warmup_steps = 5;
    p.lr = 1e-2f;
    eng_error err;
    CHECK_MSG(eng_classifier_train(c, &p, &s, labels, &err) == ENG_OK, "%s", err.msg);
    CHECK(eng_classifier_accuracy(c, &s, labels, &after, NULL) == ENG_OK);
    printf("# accuracy %.3f before, %.3f after 40 steps\n", before, after);
    CHECK(after == 1.0);
    /* a label beyond the classes is refused before any step */
    labels[5] = 7;
    CHECK_EQ_INT(eng_classifier_train(c, &p, &s, labels, &err), ENG_EINVAL);
    free(x);
    eng_classifier_free(c);
}

static int cancel_at_3(int step, int steps, float loss, float lr, void *user) {
    (void)steps, (void)loss, (void)lr;
    *(int *)user = step;
    return step == 3;
}

TEST(classifier_training_stops_when_cancelled) {
    uint8_t *x = random_images(8, 0, 255, 60);
    uint8_t labels[8] = {0, 1, 0, 1, 0, 1, 0, 1};
    eng_classifier *c = tiny(5);
    CHECK(x && c);
    eng_classifier_train_params p;
    eng_classifier_train_params_init(&p);
    p.total_steps = 100;
    p.batch_size = 4;
    int last = 0;
    p.progress = cancel_at_3;
    p.user = &last;
    eng_images s = set_of(x, 8);
    eng_error err;
    CHECK_EQ_INT(eng_classifier_train(c, &p, &s, labels, &err), ENG_ECANCELLED);
    CHECK_EQ_INT(last, 3);
    free(x);
    eng_classifier_free(c);
}

TEST(classifier_config_is_validated) {
    eng_classifier *c = NULL;
    eng_error err;
    CHECK_EQ_INT(eng_classifier_create(ctx, "{\"widths\":[12],\"norm_num_groups\":8}", 0, &c, &err), ENG_EFORMAT);
    CHECK(strstr(err.msg, "multiple") != NULL);
    CHECK_EQ_INT(eng_classifier_create(ctx, "{\"image_size\":8,\"widths\":[8,8,8,8]}", 0, &c, &err), ENG_EFORMAT);
    CHECK_EQ_INT(eng_classifier_create(ctx, "[1]", 0, &c, &err), ENG_EFORMAT);
    CHECK(c == NULL);
}

int main(void) {
    eng_ctx_params cp;
    eng_ctx_params_init(&cp);
    cp.device = ENG_DEVICE_CPU;
    cp.threads = 1;
    eng_error err;
    if (eng_ctx_create(&cp, &ctx, &err) != ENG_OK) {
        printf("FAIL ctx: %s\n", err.msg);
        return 1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/codid-test-metrics-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;

    RUN(psnr_of_identical_images_is_the_cap);
    RUN(psnr_of_a_known_error_matches_the_formula);
    RUN(psnr_refuses_sets_of_different_shapes);
    RUN(ssim_of_identical_images_is_one);
    RUN(ssim_of_constant_images_matches_the_closed_form);
    RUN(ssim_falls_as_noise_grows_and_is_symmetric);
    RUN(ssim_refuses_images_smaller_than_its_window);
    RUN(frechet_of_diagonal_gaussians_matches_the_closed_form);
    RUN(frechet_is_invariant_under_a_common_rotation);
    RUN(feature_stats_fit_mean_and_unbiased_covariance);
    RUN(fid_proxy_of_a_set_with_itself_is_zero_and_grows_with_distortion);
    RUN(features_do_not_depend_on_the_batch);
    RUN(classifier_round_trips_through_its_folder);
    RUN(classifier_learns_a_separable_problem);
    RUN(classifier_training_stops_when_cancelled);
    RUN(classifier_config_is_validated);

    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) printf("# could not remove %s\n", tmpdir);
    eng_ctx_free(ctx);
    return TEST_SUMMARY();
}
