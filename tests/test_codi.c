/*
 * test_codi.c - adapters, task condition builders, the CoDi / teacher / cm2
 * trainers and the K-step sampler, on a tiny base model (8x8 images).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/safetensors.h"
#include "tests/test.h"

static const char *TINY = "{\"sample_size\":8,\"in_channels\":3,\"out_channels\":3,\"block_out_channels\":[8,16],"
                          "\"down_block_types\":[\"DownBlock2D\",\"AttnDownBlock2D\"],"
                          "\"up_block_types\":[\"AttnUpBlock2D\",\"UpBlock2D\"],\"layers_per_block\":1,"
                          "\"norm_num_groups\":4,\"attention_head_dim\":8}";
static const char *VPRED = "{\"prediction_type\":\"v_prediction\",\"timestep_spacing\":\"trailing\"}";

static eng_ctx *ctx;
static eng_model *base;
static char tmpdir[64];
#define NIMG 32
static uint8_t pixels[NIMG * 8 * 8 * 3];
static eng_images data = {NIMG, 8, 8, 3, pixels};

static void make_images(void) {
    /* smooth colour gradients with a random offset each: structure to learn */
    srand(11);
    for (int i = 0; i < NIMG; i++) {
        int r0 = rand() % 128, g0 = rand() % 128, b0 = rand() % 128;
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++) {
                uint8_t *p = pixels + ((i * 8 + y) * 8 + x) * 3;
                p[0] = (uint8_t)(r0 + 16 * x);
                p[1] = (uint8_t)(g0 + 16 * y);
                p[2] = (uint8_t)(b0 + 8 * (x + y));
            }
    }
}

static void path_in(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

static int slurp(const char *path, uint8_t **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc(*len);
    size_t got = fread(*out, 1, *len, f);
    fclose(f);
    return got == *len ? 0 : -1;
}

static int same_file(const char *a, const char *b) {
    uint8_t *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int same = slurp(a, &x, &nx) == 0 && slurp(b, &y, &ny) == 0 && nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    free(y);
    return same;
}

/* The tensors of two safetensors files (names, shapes and bytes), the
 * metadata aside. */
static int same_weights(const char *a, const char *b) {
    st_file x, y;
    char msg[256];
    if (st_open(a, &x, msg, sizeof msg) != ST_OK) return -1;
    if (st_open(b, &y, msg, sizeof msg) != ST_OK) {
        st_close(&x);
        return -1;
    }
    int same = x.count == y.count;
    for (size_t i = 0; same && i < x.count; i++) {
        const st_tensor *s = &x.tensors[i], *t = st_find(&y, s->name);
        same = t && s->nbytes == t->nbytes && memcmp(s->data, t->data, s->nbytes) == 0;
    }
    st_close(&x);
    st_close(&y);
    return same;
}

static void params(eng_train_params *p, eng_train_kind kind, eng_adapter_kind ak, eng_task_kind task) {
    eng_train_params_init(p, kind);
    p->batch_size = 4;
    p->total_steps = 20;
    p->warmup_steps = 2;
    p->adapter_kind = ak;
    p->seed = 5;
    eng_task_params_init(&p->task, task);
    p->task.factor = 2;
    p->n_grid = 10;
}

/* Train `steps` steps (optionally stopping at `split`, checkpointing and
 * continuing in a fresh trainer), export to out. */
static int train(const eng_train_params *p, int split, const char *out) {
    eng_trainer *t = NULL;
    eng_error err;
    if (eng_trainer_create_adapter(base, p, &data, &t, &err) != ENG_OK) {
        printf("# create: %s\n", err.msg);
        return -1;
    }
    char ckpt[128];
    path_in(ckpt, sizeof ckpt, "ckpt.safetensors");
    eng_step_stats st;
    while (eng_trainer_steps_done(t) < p->total_steps) {
        if (eng_trainer_step(t, &st, &err) != ENG_OK) {
            printf("# step: %s\n", err.msg);
            eng_trainer_free(t);
            return -1;
        }
        if (split && eng_trainer_steps_done(t) == split) {
            if (eng_trainer_save_checkpoint(t, ckpt, &err) != ENG_OK) return -1;
            eng_trainer_free(t);
            t = NULL;
            if (eng_trainer_create_adapter(base, p, &data, &t, &err) != ENG_OK) return -1;
            if (eng_trainer_load_checkpoint(t, ckpt, &err) != ENG_OK) {
                printf("# load: %s\n", err.msg);
                eng_trainer_free(t);
                return -1;
            }
            if (eng_trainer_steps_done(t) != split) return -1;
        }
    }
    int rc = eng_trainer_export(t, out, 0, "{\"note\":\"test\"}", &err);
    if (rc) printf("# export: %s\n", err.msg);
    eng_trainer_free(t);
    return rc;
}

static int gen(eng_adapter *a, eng_sampler s, int n, int steps, uint64_t seed, const eng_image *cond, eng_image *out) {
    eng_gen_params p;
    eng_gen_params_init(&p);
    p.n = n;
    p.steps = steps;
    p.seed = seed;
    p.sampler = s;
    eng_error err;
    int rc = eng_generate(base, a, &p, cond, out, &err);
    if (rc) printf("# generate: %s\n", err.msg);
    return rc;
}

static int max_diff(const eng_image *a, const eng_image *b) {
    int d = 0;
    size_t n = (size_t)a->width * a->height * a->channels;
    for (size_t i = 0; i < n; i++) {
        int e = abs(a->data[i] - b->data[i]);
        if (e > d) d = e;
    }
    return d;
}

static void conds_for(eng_adapter *a, int n, eng_image *conds, uint8_t *buf) {
    eng_adapter_info info;
    eng_adapter_get_info(a, &info);
    int ch = eng_task_cond_channels(&info.task, 3);
    eng_images in = {n, 8, 8, 3, pixels};
    eng_error err;
    eng_task_apply(&info.task, &in, 1, buf, &err);
    for (int i = 0; i < n; i++) {
        conds[i].width = conds[i].height = 8;
        conds[i].channels = ch;
        conds[i].data = buf + (size_t)i * 64 * ch;
    }
}

/* At initialisation the output convolutions are zero: base + adapter must
 * sample exactly what the base samples. */
TEST(adapters_start_equal_to_the_base) {
    eng_adapter_kind kinds[] = {ENG_ADAPTER_CONTROLNET, ENG_ADAPTER_LITE};
    for (int k = 0; k < 2; k++) {
        eng_train_params p;
        params(&p, ENG_TRAIN_TEACHER, kinds[k], ENG_TASK_INPAINT);
        eng_trainer *t = NULL;
        eng_error err;
        CHECK(eng_trainer_create_adapter(base, &p, &data, &t, &err) == ENG_OK);
        char path[128];
        path_in(path, sizeof path, "init.safetensors");
        CHECK(eng_trainer_export(t, path, 0, NULL, &err) == ENG_OK);
        eng_trainer_free(t);
        eng_adapter *a = NULL;
        CHECK_MSG(eng_adapter_load(base, path, &a, &err) == ENG_OK, "%s", err.msg);
        eng_image conds[2], with[2], without[2];
        uint8_t buf[2 * 64 * 4];
        conds_for(a, 2, conds, buf);
        CHECK(gen(a, ENG_SAMPLER_DDIM, 2, 4, 9, conds, with) == 0);
        CHECK(gen(NULL, ENG_SAMPLER_DDIM, 2, 4, 9, NULL, without) == 0);
        for (int i = 0; i < 2; i++) {
            CHECK_MSG(memcmp(with[i].data, without[i].data, 8 * 8 * 3) == 0, "%s adapter changed the output",
                      eng_adapter_kind_name(kinds[k]));
            eng_image_free(&with[i]);
            eng_image_free(&without[i]);
        }
        eng_adapter_info info;
        eng_adapter_get_info(a, &info);
        eng_model_info mi;
        eng_model_get_info(base, &mi);
        printf("# %s adapter: %lld parameters (base %lld)\n", eng_adapter_kind_name(kinds[k]),
               (long long)info.parameters, (long long)mi.parameters);
        CHECK(info.parameters > 0);
        eng_adapter_free(a);
    }
}

/* 20 steps straight vs 10 + checkpoint + fresh trainer + 10: same bytes. */
TEST(resume_continues_exactly) {
    eng_train_kind kinds[] = {ENG_TRAIN_DISTILL, ENG_TRAIN_TEACHER};
    for (int k = 0; k < 2; k++) {
        eng_train_params p;
        params(&p, kinds[k], ENG_ADAPTER_CONTROLNET, ENG_TASK_SR);
        char a[128], b[128];
        path_in(a, sizeof a, "straight.safetensors");
        path_in(b, sizeof b, "resumed.safetensors");
        CHECK(train(&p, 0, a) == 0);
        CHECK(train(&p, 10, b) == 0);
        CHECK_MSG(same_file(a, b), "%s: resumed run differs", eng_train_kind_name(kinds[k]));
        /* and a different seed gives a different adapter */
        p.seed = 6;
        CHECK(train(&p, 0, b) == 0);
        CHECK(!same_file(a, b));
    }
}

TEST(cm2_trains_from_a_teacher_and_resumes_exactly) {
    eng_train_params p;
    params(&p, ENG_TRAIN_TEACHER, ENG_ADAPTER_LITE, ENG_TASK_COLORIZE);
    p.total_steps = 6;
    char teacher[128], a[128], b[128];
    path_in(teacher, sizeof teacher, "teacher.safetensors");
    CHECK(train(&p, 0, teacher) == 0);
    params(&p, ENG_TRAIN_CM2, ENG_ADAPTER_LITE, ENG_TASK_COLORIZE);
    p.total_steps = 8;
    p.teacher_path = teacher;
    path_in(a, sizeof a, "cm2a.safetensors");
    path_in(b, sizeof b, "cm2b.safetensors");
    CHECK(train(&p, 0, a) == 0);
    CHECK(train(&p, 4, b) == 0);
    CHECK(same_file(a, b));
    /* a teacher of another task is refused */
    params(&p, ENG_TRAIN_CM2, ENG_ADAPTER_LITE, ENG_TASK_SR);
    p.teacher_path = teacher;
    eng_trainer *t = NULL;
    eng_error err;
    CHECK(eng_trainer_create_adapter(base, &p, &data, &t, &err) == ENG_EINVAL);
}

/* Each CoDi option (CODI.md steps 2, 4, 7) trains, and changes the trained
 * adapter for the same seed: an option the trainer ignored would export the
 * default's bytes. */
TEST(every_codi_option_changes_the_adapter) {
    char def[128], path[128];
    path_in(def, sizeof def, "opt_default.safetensors");
    path_in(path, sizeof path, "opt.safetensors");
    eng_train_params p;
    params(&p, ENG_TRAIN_DISTILL, ENG_ADAPTER_LITE, ENG_TASK_DEBLUR);
    p.total_steps = 3;
    CHECK(train(&p, 0, def) == 0);
    static const char *const names[] = {"ode_model ema", "consistency_space eps", "shared_t", "loss_weight snr_trunc",
                                        "lambda 0.25"};
    for (int opt = 0; opt < 5; opt++) {
        params(&p, ENG_TRAIN_DISTILL, ENG_ADAPTER_LITE, ENG_TASK_DEBLUR);
        p.total_steps = 3;
        if (opt == 0) p.ode_model = ENG_ODE_EMA;
        if (opt == 1) p.consistency = ENG_CONSISTENCY_EPS;
        if (opt == 2) p.shared_t = 1;
        if (opt == 3) p.loss_weight = ENG_LOSS_WEIGHT_SNR_TRUNC;
        if (opt == 4) p.lambda = 0.25f;
        eng_trainer *t = NULL;
        eng_error err;
        CHECK(eng_trainer_create_adapter(base, &p, &data, &t, &err) == ENG_OK);
        eng_step_stats st;
        for (int i = 0; i < p.total_steps; i++) {
            int rc = eng_trainer_step(t, &st, &err);
            if (rc) eng_trainer_free(t);
            CHECK_MSG(rc == ENG_OK, "%s: %s", names[opt], err.msg);
            CHECK(isfinite(st.loss) && st.loss > 0);
        }
        /* the recipe in the metadata differs whatever the weights: compare
         * the weights alone */
        int rc = eng_trainer_export(t, path, 0, NULL, &err);
        eng_trainer_free(t);
        CHECK(rc == ENG_OK);
        CHECK_MSG(!same_weights(def, path), "%s: the same adapter as the default recipe", names[opt]);
    }
}

TEST(training_lowers_the_loss) {
    eng_train_params p;
    params(&p, ENG_TRAIN_DISTILL, ENG_ADAPTER_CONTROLNET, ENG_TASK_SR);
    p.total_steps = 60;
    p.batch_size = 8;
    p.lr = 3e-3f;
    eng_trainer *t = NULL;
    eng_error err;
    CHECK(eng_trainer_create_adapter(base, &p, &data, &t, &err) == ENG_OK);
    double first = 0, last = 0;
    eng_step_stats st;
    for (int i = 0; i < 60; i++) {
        CHECK(eng_trainer_step(t, &st, &err) == ENG_OK);
        if (i < 10) first += st.loss;
        if (i >= 50) last += st.loss;
    }
    eng_trainer_free(t);
    printf("# distill loss: first 10 steps %.4f, last 10 %.4f\n", first / 10, last / 10);
    CHECK(last < first);
}

/* An image depends on its seed, adapter, K and condition, not on the batch. */
TEST(codi_sampler_is_batch_invariant) {
    eng_train_params p;
    params(&p, ENG_TRAIN_DISTILL, ENG_ADAPTER_CONTROLNET, ENG_TASK_SR);
    p.total_steps = 5;
    char path[128];
    path_in(path, sizeof path, "codi.safetensors");
    CHECK(train(&p, 0, path) == 0);
    eng_adapter *a = NULL;
    eng_error err;
    CHECK(eng_adapter_load(base, path, &a, &err) == ENG_OK);
    eng_image conds[3], batch[3], single[1];
    uint8_t buf[3 * 64 * 3];
    conds_for(a, 3, conds, buf);
    for (int K = 1; K <= 4; K *= 2) {
        CHECK(gen(a, ENG_SAMPLER_AUTO, 3, K, 100, conds, batch) == 0);
        for (int i = 0; i < 3; i++) {
            CHECK(gen(a, ENG_SAMPLER_AUTO, 1, K, 100 + (uint64_t)i, &conds[i], single) == 0);
            int d = max_diff(&batch[i], &single[0]);
            eng_image_free(&single[0]);
            CHECK_MSG(d <= 1, "K=%d image %d differs by %d levels between batch and single", K, i, d);
        }
        for (int i = 0; i < 3; i++) eng_image_free(&batch[i]);
    }
    /* steps beyond N are refused */
    eng_image out[1];
    CHECK(gen(a, ENG_SAMPLER_AUTO, 1, 11, 1, conds, out) != 0);
    eng_adapter_free(a);
}

/* An image with at least two different bytes: the out-of-grid times of
 * issue 12 item 7 made all-black images. */
static int varied(const eng_image *img) {
    size_t sz = (size_t)img->width * img->height * img->channels;
    for (size_t i = 1; i < sz; i++)
        if (img->data[i] != img->data[0]) return 1;
    return 0;
}

/* Every accepted K (1..N), n, eta and stochastic flag samples a finite
 * (eng_generate refuses non-finite samples), non-constant image. */
TEST(codi_sampler_every_step_count) {
    eng_train_params p;
    params(&p, ENG_TRAIN_DISTILL, ENG_ADAPTER_CONTROLNET, ENG_TASK_SR);
    p.total_steps = 2;
    char path[128];
    path_in(path, sizeof path, "codi_k.safetensors");
    CHECK(train(&p, 0, path) == 0);
    eng_adapter *a = NULL;
    eng_error err;
    CHECK(eng_adapter_load(base, path, &a, &err) == ENG_OK);
    eng_image conds[3], out[3];
    uint8_t buf[3 * 64 * 3];
    conds_for(a, 3, conds, buf);
    for (int K = 1; K <= p.n_grid; K++)
        for (int n = 1; n <= 3; n++)
            for (int stochastic = 0; stochastic <= 1; stochastic++)
                for (int eta = 0; eta <= 1; eta++) {
                    eng_gen_params g;
                    eng_gen_params_init(&g);
                    g.n = n;
                    g.steps = K;
                    g.seed = 7;
                    g.eta = (float)eta;
                    g.stochastic = stochastic;
                    int rc = eng_generate(base, a, &g, conds, out, &err);
                    CHECK_MSG(rc == ENG_OK, "K=%d n=%d stochastic=%d eta=%d: %s", K, n, stochastic, eta, err.msg);
                    int bad = -1;
                    for (int i = 0; i < n; i++) {
                        if (bad < 0 && !varied(&out[i])) bad = i;
                        eng_image_free(&out[i]);
                    }
                    CHECK_MSG(bad < 0, "K=%d n=%d stochastic=%d: image %d is constant", K, n, stochastic, bad);
                }
    eng_adapter_free(a);
}

TEST(adapter_metadata_and_wrong_base_refused) {
    eng_train_params p;
    params(&p, ENG_TRAIN_DISTILL, ENG_ADAPTER_LITE, ENG_TASK_EDGES);
    p.total_steps = 2;
    char path[128];
    path_in(path, sizeof path, "meta.safetensors");
    CHECK(train(&p, 0, path) == 0);
    st_file f;
    char msg[256], buf[1024];
    CHECK(st_open(path, &f, msg, sizeof msg) == ST_OK);
    eng_model_info mi;
    eng_model_get_info(base, &mi);
    CHECK_EQ_STR(st_metadata_get(&f, "codid.base_hash", buf, sizeof buf), mi.hash);
    CHECK_EQ_STR(st_metadata_get(&f, "codid.task", buf, sizeof buf), "edges");
    CHECK_EQ_STR(st_metadata_get(&f, "codid.kind", buf, sizeof buf), "lite");
    CHECK_EQ_STR(st_metadata_get(&f, "codid.n_grid", buf, sizeof buf), "10");
    CHECK(strstr(st_metadata_get(&f, "codid.recipe", buf, sizeof buf), "\"trainer\":\"distill\""));
    st_close(&f);

    eng_model *other = NULL;
    eng_error err;
    CHECK(eng_model_create(ctx, TINY, VPRED, 99, &other, &err) == ENG_OK);
    eng_adapter *a = NULL;
    CHECK(eng_adapter_load(other, path, &a, &err) == ENG_EMISMATCH);
    CHECK_MSG(strstr(err.msg, "trained on base model") && strstr(err.msg, mi.hash), "%s", err.msg);
    CHECK(a == NULL);
    eng_model_free(other);
}

/* Pretraining: 6 steps straight vs 3 + checkpoint + a fresh trainer + 3
 * give the same model file, byte for byte. */
static int pretrain(int steps, int split, const char *dir) {
    eng_train_params p;
    eng_train_params_init(&p, ENG_TRAIN_PRETRAIN);
    p.batch_size = 4;
    p.total_steps = steps;
    p.warmup_steps = 2;
    p.seed = 3;
    eng_trainer *t = NULL;
    eng_error err;
    char ckpt[128];
    path_in(ckpt, sizeof ckpt, "pretrain-ckpt.safetensors");
    if (eng_trainer_create_pretrain(ctx, TINY, NULL, &p, &data, &t, &err)) return -1;
    while (eng_trainer_steps_done(t) < steps) {
        if (eng_trainer_step(t, NULL, &err)) break;
        if (split && eng_trainer_steps_done(t) == split) {
            if (eng_trainer_save_checkpoint(t, ckpt, &err)) break;
            eng_trainer_free(t);
            t = NULL;
            if (eng_trainer_create_pretrain(ctx, TINY, NULL, &p, &data, &t, &err) ||
                eng_trainer_load_checkpoint(t, ckpt, &err))
                break;
        }
    }
    int rc = eng_trainer_steps_done(t) == steps ? eng_trainer_export(t, dir, 0, NULL, &err) : -1;
    if (rc) printf("# pretrain: %s\n", err.msg);
    eng_trainer_free(t);
    return rc;
}

TEST(pretraining_resumes_exactly) {
    char a[128], b[128], fa[256], fb[256];
    path_in(a, sizeof a, "pre-straight");
    path_in(b, sizeof b, "pre-resumed");
    CHECK(pretrain(6, 0, a) == 0);
    CHECK(pretrain(6, 3, b) == 0);
    snprintf(fa, sizeof fa, "%s/diffusion_pytorch_model.safetensors", a);
    snprintf(fb, sizeof fb, "%s/diffusion_pytorch_model.safetensors", b);
    CHECK(same_file(fa, fb));
    /* the export is a loadable, trained v-prediction model */
    eng_model *m = NULL;
    eng_error err;
    CHECK_MSG(eng_model_load(ctx, a, &m, &err) == ENG_OK, "%s", err.msg);
    eng_model_info info;
    eng_model_get_info(m, &info);
    CHECK_EQ_INT(info.trained, 1);
    CHECK_EQ_INT(info.prediction, ENG_PRED_V);
    eng_model_free(m);
    CHECK(pretrain(5, 0, b) == 0);
    CHECK(!same_file(fa, fb));
}

/* ---- condition builders --------------------------------------------- */

static int apply(eng_task_kind k, int factor, int canny, const uint8_t *img, int n, int h, int w, uint64_t seed,
                 uint8_t *out) {
    eng_task_params p;
    eng_task_params_init(&p, k);
    p.factor = factor;
    p.canny = canny;
    eng_images in = {n, h, w, 3, img};
    eng_error err;
    int rc = eng_task_apply(&p, &in, seed, out, &err);
    if (rc) printf("# task: %s\n", err.msg);
    return rc;
}

TEST(sr_condition_is_the_area_average_upsampled) {
    /* 4x4 blocks of constant colour: area-downsampling by 4 and bicubic
     * upsampling give back blocks whose centres keep their colour */
    uint8_t img[16 * 16 * 3], out[16 * 16 * 3];
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++)
            for (int c = 0; c < 3; c++) img[(y * 16 + x) * 3 + c] = (uint8_t)(((x / 8) * 100 + (y / 8) * 50 + c * 20));
    CHECK(apply(ENG_TASK_SR, 8, 0, img, 1, 16, 16, 0, out) == 0);
    CHECK(abs(out[(4 * 16 + 4) * 3] - img[(4 * 16 + 4) * 3]) <= 12);
    /* a constant image stays constant */
    memset(img, 77, sizeof img);
    CHECK(apply(ENG_TASK_SR, 4, 0, img, 1, 16, 16, 0, out) == 0);
    for (int i = 0; i < 16 * 16 * 3; i++) CHECK_MSG(abs(out[i] - 77) <= 1, "pixel %d = %d", i, out[i]);
    /* bad factor refused */
    CHECK(apply(ENG_TASK_SR, 3, 0, img, 1, 16, 16, 0, out) != 0);
}

TEST(inpaint_masks_are_seeded_and_zero_the_hole) {
    uint8_t img[4 * 16 * 16 * 3], a[4 * 16 * 16 * 4], b[4 * 16 * 16 * 4], c[4 * 16 * 16 * 4];
    for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)(200 + i % 50);
    CHECK(apply(ENG_TASK_INPAINT, 0, 0, img, 4, 16, 16, 3, a) == 0);
    CHECK(apply(ENG_TASK_INPAINT, 0, 0, img, 4, 16, 16, 3, b) == 0);
    CHECK(apply(ENG_TASK_INPAINT, 0, 0, img, 4, 16, 16, 4, c) == 0);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    int holes = 0;
    for (int i = 0; i < 4 * 256; i++) {
        uint8_t *px = a + i * 4;
        if (px[3] == 255) { /* hole: grey (0 in [-1, 1]) */
            holes++;
            CHECK(abs(px[0] - 128) <= 1 && abs(px[1] - 128) <= 1);
        } else {
            CHECK(px[3] == 0);
            CHECK(px[0] == img[i * 3]);
        }
    }
    CHECK(holes > 0 && holes < 4 * 256);
}

TEST(colorize_is_luminance) {
    uint8_t img[2 * 3] = {255, 0, 0, 10, 200, 30}, out[2];
    CHECK(apply(ENG_TASK_COLORIZE, 0, 0, img, 1, 1, 2, 0, out) == 0);
    CHECK(abs(out[0] - (int)lround(0.299 * 255)) <= 1);
    CHECK(abs(out[1] - (int)lround(0.299 * 10 + 0.587 * 200 + 0.114 * 30)) <= 1);
}

TEST(edges_mark_the_boundary_only) {
    /* left half black, right half white: edges at columns 7 and 8 */
    uint8_t img[16 * 16 * 3], out[16 * 16];
    for (int y = 0; y < 16; y++)
        for (int x = 0; x < 16; x++) memset(img + (y * 16 + x) * 3, x < 8 ? 0 : 255, 3);
    for (int canny = 0; canny <= 1; canny++) {
        CHECK(apply(ENG_TASK_EDGES, 0, canny, img, 1, 16, 16, 0, out) == 0);
        for (int y = 2; y < 14; y++) {
            int on = 0;
            for (int x = 0; x < 16; x++) {
                int edge = out[y * 16 + x] > 128;
                if (x < 5 || x > 10) CHECK_MSG(!edge, "canny=%d: edge at (%d,%d)", canny, x, y);
                on += edge;
            }
            CHECK_MSG(on >= 1, "canny=%d: no edge in row %d", canny, y);
            if (canny) CHECK_MSG(on <= 2, "canny=%d: %d edge pixels in row %d", canny, on, y);
        }
    }
}

TEST(deblur_and_denoise_degrade_with_seeded_strength) {
    uint8_t img[16 * 16 * 3], a[16 * 16 * 3], b[16 * 16 * 3];
    for (int i = 0; i < 16 * 16; i++) memset(img + i * 3, (i % 2) ? 255 : 0, 3); /* fine stripes */
    CHECK(apply(ENG_TASK_DEBLUR, 0, 0, img, 1, 16, 16, 1, a) == 0);
    double var_in = 0, var_out = 0;
    for (int i = 0; i < 16 * 16 * 3; i++) {
        var_in += (img[i] - 127.5) * (img[i] - 127.5);
        var_out += (a[i] - 127.5) * (a[i] - 127.5);
    }
    CHECK(var_out < var_in / 2);
    memset(img, 128, sizeof img);
    CHECK(apply(ENG_TASK_DENOISE, 0, 0, img, 1, 16, 16, 1, a) == 0);
    CHECK(apply(ENG_TASK_DENOISE, 0, 0, img, 1, 16, 16, 2, b) == 0);
    CHECK(memcmp(a, img, sizeof a) != 0);
    CHECK(memcmp(a, b, sizeof a) != 0);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/codid-test-codi-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    make_images();
    eng_ctx_params cp;
    eng_ctx_params_init(&cp);
    cp.device = ENG_DEVICE_CPU;
    cp.threads = 2;
    eng_error err;
    if (eng_ctx_create(&cp, &ctx, &err) != ENG_OK || eng_model_create(ctx, TINY, VPRED, 1, &base, &err) != ENG_OK) {
        printf("FAIL setup: %s\n", err.msg);
        return 1;
    }
    RUN(adapters_start_equal_to_the_base);
    RUN(resume_continues_exactly);
    RUN(cm2_trains_from_a_teacher_and_resumes_exactly);
    RUN(every_codi_option_changes_the_adapter);
    RUN(training_lowers_the_loss);
    RUN(codi_sampler_is_batch_invariant);
    RUN(codi_sampler_every_step_count);
    RUN(adapter_metadata_and_wrong_base_refused);
    RUN(pretraining_resumes_exactly);
    RUN(sr_condition_is_the_area_average_upsampled);
    RUN(inpaint_masks_are_seeded_and_zero_the_hole);
    RUN(colorize_is_luminance);
    RUN(edges_mark_the_boundary_only);
    RUN(deblur_and_denoise_degrade_with_seeded_strength);
    eng_model_free(base);
    eng_ctx_free(ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) printf("# could not remove %s\n", tmpdir);
    return TEST_SUMMARY();
}
