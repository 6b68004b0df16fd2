/*
 * metrics.cpp - the evaluation classifier behind eng_classifier and the
 * FID-proxy built on its features (CODI.md 'Measuring quality').
 *
 * The classifier is a compact VGG-style CNN in the spirit of the fast
 * CIFAR-10 trainers: a stem convolution (stride 2 by default: on a CPU the
 * full-resolution activations cost more than all the rest), then per stage
 *     conv3x3 -> maxpool 2 -> GroupNorm -> ReLU -> conv3x3 -> GroupNorm -> ReLU,
 * global average pooling (the penultimate features, as Inception's pool3 for
 * FID) and one linear layer to the logits. GroupNorm rather than BatchNorm
 * keeps an image's features independent of its batch, train or eval.
 *
 * No Inception weights exist offline, so the figure computed here is named
 * FID-proxy everywhere: the same Frechet distance, on this network's features.
 */
#include <ATen/CPUGeneratorImpl.h>
#include <cjson/cJSON.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/model.hpp"

namespace F = torch::nn::functional;

namespace eng {
namespace {

struct ClassifierConfig {
    int image_size = 32;
    int in_channels = 3;
    int num_classes = 10;
    int groups = 8;
    int stem_stride = 2;
    std::vector<int> widths{48, 96, 192};
    std::string json; /* as written to config.json */

    static ClassifierConfig parse(const std::string &text);
};

int json_int(const cJSON *o, const char *key, int def, int lo, int hi) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return def;
    if (!cJSON_IsNumber(v) || v->valuedouble != std::floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        raise(ENG_EFORMAT, "classifier config: '%s' must be an integer in %d..%d", key, lo, hi);
    return (int)v->valuedouble;
}

ClassifierConfig ClassifierConfig::parse(const std::string &text) {
    std::unique_ptr<cJSON, void (*)(cJSON *)> root(cJSON_Parse(text.c_str()), cJSON_Delete);
    if (!cJSON_IsObject(root.get())) raise(ENG_EFORMAT, "classifier config is not a JSON object");
    const cJSON *o = root.get();
    ClassifierConfig c;
    c.image_size = json_int(o, "image_size", c.image_size, 8, 1024);
    c.in_channels = json_int(o, "in_channels", c.in_channels, 1, 4);
    c.num_classes = json_int(o, "num_classes", c.num_classes, 2, 1000);
    c.groups = json_int(o, "norm_num_groups", c.groups, 1, 1024);
    c.stem_stride = json_int(o, "stem_stride", c.stem_stride, 1, 2);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "widths");
    if (w) {
        if (!cJSON_IsArray(w) || cJSON_GetArraySize(w) < 1 || cJSON_GetArraySize(w) > 6)
            raise(ENG_EFORMAT, "classifier config: 'widths' must be an array of 1 to 6 integers");
        c.widths.clear();
        const cJSON *e;
        cJSON_ArrayForEach(e, w) {
            if (!cJSON_IsNumber(e) || e->valuedouble != std::floor(e->valuedouble) || e->valuedouble < 1 ||
                e->valuedouble > 4096)
                raise(ENG_EFORMAT, "classifier config: 'widths' holds a bad value");
            c.widths.push_back((int)e->valuedouble);
        }
    }
    /* the stem and each stage divide the side */
    if (c.image_size / c.stem_stride >> c.widths.size() < 1)
        raise(ENG_EFORMAT, "classifier config: %zu stages are too many for %d pixels", c.widths.size(), c.image_size);
    for (int wd : c.widths)
        if (wd % c.groups)
            raise(ENG_EFORMAT, "classifier config: width %d is not a multiple of norm_num_groups %d", wd, c.groups);

    std::unique_ptr<cJSON, void (*)(cJSON *)> out(cJSON_CreateObject(), cJSON_Delete);
    cJSON_AddStringToObject(out.get(), "_class_name", "CodidClassifier");
    cJSON_AddNumberToObject(out.get(), "image_size", c.image_size);
    cJSON_AddNumberToObject(out.get(), "in_channels", c.in_channels);
    cJSON_AddNumberToObject(out.get(), "num_classes", c.num_classes);
    cJSON_AddNumberToObject(out.get(), "norm_num_groups", c.groups);
    cJSON_AddNumberToObject(out.get(), "stem_stride", c.stem_stride);
    cJSON_AddItemToObject(out.get(), "widths", cJSON_CreateIntArray(c.widths.data(), (int)c.widths.size()));
    std::unique_ptr<char, void (*)(void *)> printed(cJSON_Print(out.get()), std::free);
    if (!printed) raise(ENG_ENOMEM, "out of memory");
    c.json = printed.get();
    c.json += "\n";
    return c;
}

/* conv3x3 (no bias: the norm follows) -> [maxpool 2] -> GroupNorm -> ReLU */
struct ConvNormImpl : torch::nn::Module {
    ConvNormImpl(int in, int out, int groups, bool pool, int stride = 1) : pool(pool) {
        conv = register_module(
            "conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)));
        norm = register_module("norm", torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, out)));
    }
    torch::Tensor forward(const torch::Tensor &x) {
        auto h = conv->forward(x);
        if (pool) h = F::max_pool2d(h, F::MaxPool2dFuncOptions(2));
        return torch::relu(norm->forward(h));
    }
    torch::nn::Conv2d conv{nullptr};
    torch::nn::GroupNorm norm{nullptr};
    bool pool;
};
TORCH_MODULE(ConvNorm);

struct StageImpl : torch::nn::Module {
    StageImpl(int in, int out, int groups) {
        conv1 = register_module("conv1", ConvNorm(in, out, groups, true));
        conv2 = register_module("conv2", ConvNorm(out, out, groups, false));
    }
    torch::Tensor forward(const torch::Tensor &x) { return conv2->forward(conv1->forward(x)); }
    ConvNorm conv1{nullptr}, conv2{nullptr};
};
TORCH_MODULE(Stage);

struct ClassifierNetImpl : torch::nn::Module {
    explicit ClassifierNetImpl(const ClassifierConfig &c) : cfg(c) {
        stem = register_module("stem", ConvNorm(c.in_channels, c.widths[0], c.groups, false, c.stem_stride));
        stages = register_module("stages", torch::nn::ModuleList());
        int in = c.widths[0];
        for (int w : c.widths) {
            stage_list.push_back(Stage(in, w, c.groups));
            stages->push_back(stage_list.back());
            in = w;
        }
        head = register_module("head", torch::nn::Linear(in, c.num_classes));
    }
    /* x in [-1, 1], (n, c, s, s) -> (n, widths.back()) */
    torch::Tensor features(const torch::Tensor &x) {
        auto h = stem->forward(x);
        for (auto &s : stage_list) h = s->forward(h);
        return h.mean({2, 3});
    }
    torch::Tensor forward(const torch::Tensor &x) { return head->forward(features(x)); }

    ClassifierConfig cfg;
    ConvNorm stem{nullptr};
    torch::nn::ModuleList stages{nullptr};
    std::vector<Stage> stage_list;
    torch::nn::Linear head{nullptr};
};
TORCH_MODULE(ClassifierNet);

void write_text_atomic(const std::string &path, const std::string &text) {
    std::string tmp = path + ".tmp";
    FILE *f = std::fopen(tmp.c_str(), "wb");
    if (!f) raise(ENG_EIO, "cannot write %s: %s", tmp.c_str(), std::strerror(errno));
    bool good =
        std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0 && fsync(fileno(f)) == 0;
    good = std::fclose(f) == 0 && good;
    if (!good || std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        raise(ENG_EIO, "cannot write %s: %s", path.c_str(), std::strerror(errno));
    }
}

std::string read_text(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) raise(ENG_EIO, "cannot read %s", path.c_str());
    std::stringstream ss;
    ss << f.rdbuf();
    if (ss.str().size() > (1u << 20)) raise(ENG_EFORMAT, "%s is larger than 1 MiB", path.c_str());
    return ss.str();
}

} // namespace
} // namespace eng

using namespace eng;

struct eng_classifier {
    eng_ctx *ctx = nullptr;
    ClassifierNet net{nullptr};
    int64_t parameters = 0;
};

namespace {

void check_images(const eng_classifier *c, const eng_images *imgs, const char *what) {
    const auto &cfg = c->net->cfg;
    if (!imgs || imgs->n < 1 || !imgs->data) raise(ENG_EINVAL, "%s: no images", what);
    if (imgs->height != cfg.image_size || imgs->width != cfg.image_size || imgs->channels != cfg.in_channels)
        raise(ENG_EINVAL, "%s: images are %dx%dx%d; the classifier takes %dx%dx%d", what, imgs->width, imgs->height,
              imgs->channels, cfg.image_size, cfg.image_size, cfg.in_channels);
}

/* Runs fn over the images in chunks, in inference mode: fn(first, x). */
template <class Fn> void for_chunks(eng_classifier *c, const eng_images *imgs, Fn fn) {
    const int chunk = 500;
    torch::InferenceMode im;
    c->net->eval();
    size_t per = (size_t)imgs->height * imgs->width * imgs->channels;
    for (int i = 0; i < imgs->n; i += chunk) {
        int m = std::min(chunk, imgs->n - i);
        fn(i, images_to_tensor(imgs->data + per * i, m, imgs->height, imgs->width, imgs->channels, c->ctx->device));
    }
}

/* Row features (n x d) in double precision. */
torch::Tensor features_f64(eng_classifier *c, const eng_images *imgs) {
    std::vector<torch::Tensor> parts;
    for_chunks(c, imgs, [&](int, const torch::Tensor &x) {
        parts.push_back(c->net->features(x).to(torch::kCPU, torch::kFloat64));
    });
    return torch::cat(parts, 0);
}

/* mu = mean of the rows, cov = (X - mu)^T (X - mu) / (n - 1) */
void gaussian_fit(const torch::Tensor &x, torch::Tensor &mu, torch::Tensor &cov) {
    if (x.size(0) < 2) raise(ENG_EINVAL, "a Gaussian fit needs at least 2 samples");
    mu = x.mean(0);
    auto centred = x - mu;
    cov = centred.t().mm(centred) / (double)(x.size(0) - 1);
}

/* Frechet distance between Gaussians (Dowson & Landau 1982):
 *   d^2 = ||mu1 - mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1 S2)^(1/2)).
 * S1 S2 is not symmetric, but it is similar to the symmetric PSD matrix
 * M = S1^(1/2) S2 S1^(1/2), so Tr((S1 S2)^(1/2)) = sum_i sqrt(lambda_i(M)).
 * Both square roots come from symmetric eigendecompositions in float64, with
 * round-off's tiny negative eigenvalues clamped to 0; the result is clamped
 * to 0 for the same reason (identical inputs give -1e-12 or so). */
double frechet(const torch::Tensor &mu1, const torch::Tensor &s1, const torch::Tensor &mu2, const torch::Tensor &s2) {
    auto eig = torch::linalg::eigh(s1, "L");
    auto vals = std::get<0>(eig).clamp_min(0).sqrt();
    auto vecs = std::get<1>(eig);
    auto sqrt_s1 = (vecs * vals.unsqueeze(0)).mm(vecs.t());
    auto m = sqrt_s1.mm(s2).mm(sqrt_s1);
    m = (m + m.t()) * 0.5;
    double tr_sqrt = torch::linalg::eigvalsh(m, "L").clamp_min(0).sqrt().sum().item<double>();
    double d2 =
        (mu1 - mu2).pow(2).sum().item<double>() + s1.trace().item<double>() + s2.trace().item<double>() - 2 * tr_sqrt;
    if (!std::isfinite(d2)) raise(ENG_EINTERNAL, "the Frechet distance is not finite");
    return std::max(0.0, d2);
}

torch::Tensor wrap_f64(const double *p, std::initializer_list<int64_t> shape) {
    return torch::from_blob(const_cast<double *>(p), shape, torch::kFloat64).clone();
}

/* A training batch: random images, each randomly cropped from its 4-pixel
 * reflection-padded self and flipped left-right with probability 1/2. */
void next_batch(eng_classifier *c, const eng_images *d, const uint8_t *labels, int B, at::Generator &gen,
                torch::Tensor &x, torch::Tensor &y) {
    const int pad = 4;
    auto idx = torch::randint(0, d->n, {B}, gen, torch::kLong);
    auto offs = torch::randint(0, 2 * pad + 1, {B, 2}, gen, torch::kLong);
    auto flip = torch::rand({B}, gen) < 0.5;
    size_t per = (size_t)d->height * d->width * d->channels;
    auto u8 = torch::empty({B, d->height, d->width, d->channels}, torch::kUInt8);
    y = torch::empty({B}, torch::kLong);
    auto *ix = idx.data_ptr<int64_t>();
    for (int i = 0; i < B; i++) {
        std::memcpy(u8.data_ptr<uint8_t>() + per * i, d->data + per * ix[i], per);
        y[i] = (int64_t)labels[ix[i]];
    }
    auto full = u8.permute({0, 3, 1, 2}).to(torch::kFloat32).div(127.5).sub(1.0);
    full = F::pad(full, F::PadFuncOptions({pad, pad, pad, pad}).mode(torch::kReflect));
    auto *o = offs.data_ptr<int64_t>();
    auto *fl = flip.data_ptr<bool>();
    std::vector<torch::Tensor> crops;
    crops.reserve(B);
    for (int i = 0; i < B; i++) {
        auto img = full[i].narrow(1, o[2 * i], d->height).narrow(2, o[2 * i + 1], d->width);
        crops.push_back(fl[i] ? img.flip({2}) : img);
    }
    x = torch::stack(crops).to(c->ctx->device);
    y = y.to(c->ctx->device);
}

} // namespace

/* ---- the classifier ------------------------------------------------------ */

extern "C" int eng_classifier_create(eng_ctx *ctx, const char *config_json, uint64_t seed, eng_classifier **out,
                                     eng_error *err) {
    ENG_GUARD(err, {
        if (!config_json) return fail(err, ENG_EINVAL, "no classifier config");
        auto cfg = ClassifierConfig::parse(config_json);
        auto c = std::make_unique<eng_classifier>();
        c->ctx = ctx;
        {
            SeededInit seeded(seed);
            c->net = ClassifierNet(cfg);
        }
        c->net->to(ctx->device);
        c->parameters = count_params(*c->net);
        *out = c.release();
        ok(err);
        return ENG_OK;
    })
}

extern "C" int eng_classifier_load(eng_ctx *ctx, const char *dir, eng_classifier **out, eng_error *err) {
    ENG_GUARD(err, {
        std::string d = dir;
        auto cfg = ClassifierConfig::parse(read_text(d + "/config.json"));
        auto c = std::make_unique<eng_classifier>();
        c->ctx = ctx;
        c->net = ClassifierNet(cfg);
        load_state(*c->net, d + "/model.safetensors", "classifier");
        c->parameters = count_params(*c->net);
        c->net->to(ctx->device);
        c->net->eval();
        *out = c.release();
        ok(err);
        return ENG_OK;
    })
}

extern "C" int eng_classifier_save(eng_classifier *c, const char *dir, int fp16, const char *metadata_json,
                                   eng_error *err) {
    ENG_GUARD(err, {
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return fail(err, ENG_EIO, "cannot create %s: %s", dir, std::strerror(errno));
        std::vector<std::pair<std::string, std::string>> md = {{"format", "pt"}};
        if (metadata_json) {
            std::unique_ptr<cJSON, void (*)(cJSON *)> o(cJSON_Parse(metadata_json), cJSON_Delete);
            if (!cJSON_IsObject(o.get())) return fail(err, ENG_EINVAL, "metadata is not a JSON object");
            const cJSON *e;
            cJSON_ArrayForEach(e, o.get()) {
                if (!cJSON_IsString(e)) return fail(err, ENG_EINVAL, "metadata '%s' is not a string", e->string);
                md.push_back({e->string, e->valuestring});
            }
        }
        std::string d = dir;
        save_state(*c->net, d + "/model.safetensors", fp16 != 0, md);
        write_text_atomic(d + "/config.json", c->net->cfg.json);
        ok(err);
        return ENG_OK;
    })
}

extern "C" void eng_classifier_get_info(const eng_classifier *c, eng_classifier_info *out) {
    const auto &cfg = c->net->cfg;
    out->image_size = cfg.image_size;
    out->channels = cfg.in_channels;
    out->num_classes = cfg.num_classes;
    out->feature_dim = cfg.widths.back();
    out->parameters = c->parameters;
}

extern "C" void eng_classifier_free(eng_classifier *c) {
    delete c;
}

extern "C" void eng_classifier_train_params_init(eng_classifier_train_params *p) {
    std::memset(p, 0, sizeof *p);
    p->total_steps = 5000;
    p->batch_size = 128;
    p->lr = 2e-3f;
    p->warmup_steps = 200;
    p->weight_decay = 5e-2f;
    p->label_smoothing = 0.1f;
}

/* Cross-entropy with label smoothing, AdamW (betas 0.9/0.999), and the rate
 *   lr(s) = peak * s / W                                      for s <= W,
 *   lr(s) = peak * (1 + cos(pi (s - W) / (S - W))) / 2        after. */
extern "C" int eng_classifier_train(eng_classifier *c, const eng_classifier_train_params *p, const eng_images *data,
                                    const uint8_t *labels, eng_error *err) {
    ENG_GUARD(err, {
        check_images(c, data, "training set");
        if (!labels) return fail(err, ENG_EINVAL, "the training set has no labels");
        if (p->total_steps < 1 || p->batch_size < 1 || p->batch_size > 4096 || p->warmup_steps < 0)
            return fail(err, ENG_EINVAL, "total_steps, batch_size or warmup_steps out of range");
        if (!(p->lr > 0 && p->lr < 1) || !(p->weight_decay >= 0) ||
            !(p->label_smoothing >= 0 && p->label_smoothing < 1))
            return fail(err, ENG_EINVAL, "lr, weight_decay or label_smoothing out of range");
        for (int i = 0; i < data->n; i++)
            if (labels[i] >= c->net->cfg.num_classes)
                return fail(err, ENG_EINVAL, "label %d of image %d is not below %d", labels[i], i,
                            c->net->cfg.num_classes);
        std::vector<torch::Tensor> decay, no_decay;
        for (auto &t : c->net->parameters()) (t.dim() >= 2 ? decay : no_decay).push_back(t);
        torch::optim::AdamW opt(
            {torch::optim::OptimizerParamGroup(decay,
                                               std::make_unique<torch::optim::AdamWOptions>(
                                                   torch::optim::AdamWOptions(p->lr).weight_decay(p->weight_decay))),
             torch::optim::OptimizerParamGroup(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                                             torch::optim::AdamWOptions(p->lr).weight_decay(0)))},
            torch::optim::AdamWOptions(p->lr));
        auto gen = at::detail::createCPUGenerator(p->seed);
        auto loss_opts = F::CrossEntropyFuncOptions().label_smoothing(p->label_smoothing);
        c->net->train();
        for (int step = 1; step <= p->total_steps; step++) {
            double lr;
            if (step <= p->warmup_steps) {
                lr = p->lr * step / (double)p->warmup_steps;
            } else {
                double f = (double)(step - p->warmup_steps) / std::max(1, p->total_steps - p->warmup_steps);
                lr = p->lr * 0.5 * (1 + std::cos(M_PI * f));
            }
            for (auto &g : opt.param_groups()) static_cast<torch::optim::AdamWOptions &>(g.options()).lr(lr);
            torch::Tensor x, y;
            next_batch(c, data, labels, p->batch_size, gen, x, y);
            opt.zero_grad();
            auto loss = F::cross_entropy(c->net->forward(x), y, loss_opts);
            loss.backward();
            opt.step();
            float lv = loss.item<float>();
            if (!std::isfinite(lv)) return fail(err, ENG_EINTERNAL, "loss is %f at step %d", lv, step);
            if (p->progress && p->progress(step, p->total_steps, lv, (float)lr, p->user)) {
                c->net->eval();
                return fail(err, ENG_ECANCELLED, "cancelled at step %d of %d", step, p->total_steps);
            }
        }
        c->net->eval();
        ok(err);
        return ENG_OK;
    })
}

extern "C" int eng_classifier_features(eng_classifier *c, const eng_images *imgs, float *feats, eng_error *err) {
    ENG_GUARD(err, {
        check_images(c, imgs, "features");
        int64_t d = c->net->cfg.widths.back();
        for_chunks(c, imgs, [&](int first, const torch::Tensor &x) {
            auto f = c->net->features(x).to(torch::kCPU, torch::kFloat32).contiguous();
            std::memcpy(feats + first * d, f.data_ptr<float>(), (size_t)f.numel() * sizeof(float));
        });
        ok(err);
        return ENG_OK;
    })
}

extern "C" int eng_classifier_accuracy(eng_classifier *c, const eng_images *imgs, const uint8_t *labels, double *out,
                                       eng_error *err) {
    ENG_GUARD(err, {
        check_images(c, imgs, "accuracy");
        if (!labels) return fail(err, ENG_EINVAL, "accuracy needs labels");
        int64_t correct = 0;
        for_chunks(c, imgs, [&](int first, const torch::Tensor &x) {
            auto pred = c->net->forward(x).argmax(1).to(torch::kCPU);
            auto *pp = pred.data_ptr<int64_t>();
            for (int64_t i = 0; i < pred.size(0); i++) correct += pp[i] == labels[first + i];
        });
        *out = (double)correct / imgs->n;
        ok(err);
        return ENG_OK;
    })
}

/* ---- Frechet distance and the FID-proxy ------------------------------------ */

extern "C" int eng_feature_stats(const float *feats, int n, int d, double *mu, double *cov, eng_error *err) {
    ENG_GUARD(err, {
        if (!feats || n < 2 || d < 1) return fail(err, ENG_EINVAL, "need at least 2 rows of 1 or more features");
        auto x = torch::from_blob(const_cast<float *>(feats), {n, d}, torch::kFloat32).to(torch::kFloat64);
        torch::Tensor m, s;
        gaussian_fit(x, m, s);
        std::memcpy(mu, m.contiguous().data_ptr<double>(), sizeof(double) * d);
        std::memcpy(cov, s.contiguous().data_ptr<double>(), sizeof(double) * d * d);
        ok(err);
        return ENG_OK;
    })
}

extern "C" int eng_frechet_distance(const double *mu1, const double *s1, const double *mu2, const double *s2, int d,
                                    double *out, eng_error *err) {
    ENG_GUARD(err, {
        if (d < 1 || !mu1 || !s1 || !mu2 || !s2) return fail(err, ENG_EINVAL, "bad Gaussians");
        *out = frechet(wrap_f64(mu1, {d}), wrap_f64(s1, {d, d}), wrap_f64(mu2, {d}), wrap_f64(s2, {d, d}));
        ok(err);
        return ENG_OK;
    })
}

extern "C" int eng_fid_proxy(eng_classifier *c, const eng_images *a, const eng_images *b, double *out, eng_error *err) {
    ENG_GUARD(err, {
        check_images(c, a, "first set");
        check_images(c, b, "second set");
        if (a->n < 2 || b->n < 2) return fail(err, ENG_EINVAL, "each set needs at least 2 images");
        torch::Tensor mu1, s1, mu2, s2;
        gaussian_fit(features_f64(c, a), mu1, s1);
        gaussian_fit(features_f64(c, b), mu2, s2);
        *out = frechet(mu1, s1, mu2, s2);
        ok(err);
        return ENG_OK;
    })
}
