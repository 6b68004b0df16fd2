/*
 * adapter.cpp - ControlNet and lite adapters, the consistency function and
 * the CoDi K-step sampler (CODI.md, 'Sampling with K steps').
 */
#include "engine/adapter.hpp"

#include <cjson/cJSON.h>

#include <cmath>
#include <cstring>

#include "engine/safetensors.h"

namespace eng {

static torch::nn::Conv2d conv(int in, int out, int k, int stride, int pad) {
    return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(pad));
}

static torch::nn::Conv2d zero_conv(int ch_in, int ch_out) {
    auto c = conv(ch_in, ch_out, 1, 1, 0);
    torch::NoGradGuard ng;
    c->weight.zero_();
    c->bias.zero_();
    return c;
}

/* ---- ControlNet -------------------------------------------------------- */

struct ControlNet : AdapterNet {
    UNetConfig cfg;
    Encoder enc;
    torch::nn::Sequential cond_embed{nullptr};
    torch::nn::ModuleList down_outs{nullptr};
    std::vector<torch::nn::Conv2d> outs;
    torch::nn::Conv2d mid_out{nullptr};

    ControlNet(eng_model *base, int cond_channels) : cfg(base->unet->cfg) {
        enc.build(*this, cfg, cfg.in_channels);
        /* The condition embedding is initialised at random, not at zero as in
         * the original ControlNet: the zero output convolutions alone keep
         * base + adapter == base at the start, and a live embedding lets the
         * condition's gradient flow from the first step. */
        int c0 = cfg.block_out_channels[0];
        cond_embed =
            register_module("controlnet_cond_embedding",
                            torch::nn::Sequential(conv(cond_channels, 32, 3, 1, 1), torch::nn::SiLU(),
                                                  conv(32, 32, 3, 1, 1), torch::nn::SiLU(), conv(32, c0, 3, 1, 1)));
        down_outs = register_module("controlnet_down_blocks", torch::nn::ModuleList());
        for (int ch : cfg.skip_channels()) {
            outs.push_back(zero_conv(ch, ch));
            down_outs->push_back(outs.back());
        }
        mid_out = register_module("controlnet_mid_block",
                                  zero_conv(cfg.block_out_channels.back(), cfg.block_out_channels.back()));
        /* start from the base encoder's weights (ControlNet's trainable copy) */
        torch::NoGradGuard ng;
        auto src = base->unet->named_parameters(true);
        for (auto &kv : named_parameters(true)) {
            auto *p = src.find(kv.key());
            if (p) kv.value().copy_(*p);
        }
    }

    Residuals residuals(const torch::Tensor &z, const torch::Tensor &t, const torch::Tensor &cond) override {
        auto emb = enc.embed_time(cfg, t);
        std::vector<torch::Tensor> skips;
        auto h = enc.conv_in(z) + cond_embed->forward(cond);
        skips.push_back(h);
        for (auto &d : enc.downs) h = d(h, emb, skips);
        h = enc.mid_block(h, emb);
        Residuals r;
        for (size_t i = 0; i < skips.size(); i++) r.skips.push_back(outs[i](skips[i]));
        r.mid = mid_out(h);
        return r;
    }
};

std::shared_ptr<AdapterNet> make_controlnet(eng_model *base, int cond_channels) {
    return std::make_shared<ControlNet>(base, cond_channels);
}

/* ---- lite ------------------------------------------------------------- */

struct Lite : AdapterNet {
    UNetConfig cfg;
    torch::nn::Conv2d conv_in{nullptr};
    torch::nn::ModuleList body{nullptr}, down_outs{nullptr};
    std::vector<torch::nn::Sequential> levels;
    std::vector<torch::nn::Conv2d> outs;
    std::vector<int> skip_level;
    torch::nn::Conv2d mid_out{nullptr};

    Lite(eng_model *base, int cond_channels) : cfg(base->unet->cfg) {
        const auto &boc = cfg.block_out_channels;
        int nb = (int)boc.size();
        auto width = [&](int i) { return std::max(16, boc[i] / 4); };
        conv_in = register_module("conv_in", conv(cond_channels, width(0), 3, 1, 1));
        body = register_module("body", torch::nn::ModuleList());
        for (int i = 0; i < nb; i++) {
            int in = i == 0 ? width(0) : width(i - 1);
            levels.push_back(torch::nn::Sequential(conv(in, width(i), 3, i == 0 ? 1 : 2, 1), torch::nn::SiLU(),
                                                   conv(width(i), width(i), 3, 1, 1), torch::nn::SiLU()));
            body->push_back(levels.back());
        }
        /* skip k lives at the level of its resolution: conv_in and the
         * resnets of block i at level i, block i's downsampler at level i+1 */
        skip_level.push_back(0);
        for (int i = 0; i < nb; i++) {
            for (int j = 0; j < cfg.layers_per_block; j++) skip_level.push_back(i);
            if (i + 1 < nb) skip_level.push_back(i + 1);
        }
        down_outs = register_module("adapter_down_blocks", torch::nn::ModuleList());
        auto ch = cfg.skip_channels();
        for (size_t k = 0; k < ch.size(); k++) {
            outs.push_back(zero_conv(width(skip_level[k]), ch[k]));
            down_outs->push_back(outs.back());
        }
        mid_out = register_module("adapter_mid_block", zero_conv(width(nb - 1), boc.back()));
    }

    Residuals residuals(const torch::Tensor &, const torch::Tensor &, const torch::Tensor &cond) override {
        std::vector<torch::Tensor> feats;
        auto h = conv_in(cond);
        for (auto &l : levels) {
            h = l->forward(h);
            feats.push_back(h);
        }
        Residuals r;
        for (size_t k = 0; k < outs.size(); k++) r.skips.push_back(outs[k](feats[skip_level[k]]));
        r.mid = mid_out(feats.back());
        return r;
    }
};

std::shared_ptr<AdapterNet> make_lite(eng_model *base, int cond_channels) {
    return std::make_shared<Lite>(base, cond_channels);
}

/* ---- consistency function and sampler --------------------------------- */

void boundary_scalings(const torch::Tensor &t, int T, torch::Tensor &c_skip, torch::Tensor &c_out) {
    const double sd2 = 0.25;
    auto u = t.to(torch::kFloat32).view({-1, 1, 1, 1}) * (10.0 / T);
    auto u2 = u * u;
    c_skip = sd2 / (u2 + sd2);
    c_out = u / torch::sqrt(u2 + sd2);
}

std::vector<int> codi_times(int T, int N, int K) {
    if (N < 1 || N > T || K < 1 || K > N) raise(ENG_EINVAL, "steps must be in 1..%d for this adapter", N);
    int stride = (N + K - 1) / K;
    bool strided = (int64_t)(K - 1) * stride <= N - 1;
    std::vector<int> ts;
    for (int j = 0; j < K; j++) {
        int64_t k = strided ? N - 1 - (int64_t)j * stride : N - 1 - (int64_t)j * (N - 1) / (K - 1);
        ts.push_back((int)(k * T / N));
    }
    return ts;
}

torch::Tensor consistency_fn(eng_model *m, eng_adapter *a, const torch::Tensor &z, const torch::Tensor &t,
                             const torch::Tensor &cond) {
    auto dev = z.device();
    auto alpha = gather_coef(m->sched.abar, t, dev).sqrt();
    auto sigma = (1 - gather_coef(m->sched.abar, t, dev)).sqrt();
    torch::Tensor x0, eps, c_skip, c_out;
    split_prediction(m->sched.prediction, z, model_output(m, a, z, t, cond), alpha, sigma, x0, eps);
    boundary_scalings(t.to(dev), m->sched.T, c_skip, c_out);
    return c_skip * z + c_out * x0;
}

torch::Tensor adapter_condition(eng_adapter *a, const eng_image *cond, int n, int size, const torch::Device &dev) {
    std::vector<uint8_t> buf((size_t)n * size * size * a->cond_channels);
    size_t per = (size_t)size * size * a->cond_channels;
    for (int i = 0; i < n; i++) {
        if (cond[i].width != size || cond[i].height != size || cond[i].channels != a->cond_channels)
            raise(ENG_EINVAL, "condition %d is %dx%dx%d; this adapter needs %dx%dx%d", i, cond[i].width, cond[i].height,
                  cond[i].channels, size, size, a->cond_channels);
        std::memcpy(buf.data() + per * i, cond[i].data, per);
    }
    return images_to_tensor(buf.data(), n, size, size, a->cond_channels, dev);
}

/* CODI.md 'Sampling with K steps': x0 = f(z, tau_i, c), clamped;
 * eps = (z - alpha x0) / sigma; z = alpha' x0 + sigma' (eps or fresh noise). */
torch::Tensor sample_codi(eng_model *m, eng_adapter *a, const eng_gen_params *p, torch::Tensor z,
                          const torch::Tensor &cond, std::vector<at::Generator> &gens) {
    const Schedule &s = m->sched;
    auto ts = codi_times(s.T, a->n_grid, p->steps);
    auto dev = z.device();
    torch::Tensor x0;
    for (size_t i = 0; i < ts.size(); i++) {
        auto tv = torch::full({z.size(0)}, (float)ts[i], torch::TensorOptions().device(dev));
        x0 = consistency_fn(m, a, z, tv, cond);
        if (p->clamp) x0 = x0.clamp(-1, 1);
        if (i + 1 == ts.size()) break;
        int tn = ts[i + 1];
        torch::Tensor eps;
        if (p->stochastic) {
            std::vector<torch::Tensor> noise;
            for (auto &g : gens) noise.push_back(torch::randn({1, z.size(1), z.size(2), z.size(3)}, g));
            eps = torch::cat(noise, 0).to(dev);
        } else {
            eps = (z - s.alpha(ts[i]) * x0) / s.sigma(ts[i]);
        }
        z = s.alpha(tn) * x0 + s.sigma(tn) * eps;
        if (p->progress && p->progress((int)i + 1, (int)ts.size(), p->user))
            raise(ENG_ECANCELLED, "cancelled at step %zu of %zu", i + 1, ts.size());
    }
    return x0.clamp(-1, 1);
}

std::unique_ptr<eng_adapter> new_adapter(eng_model *base, eng_adapter_kind kind, const eng_task_params &task,
                                         int image_channels) {
    auto a = std::make_unique<eng_adapter>();
    a->base = base;
    a->kind = kind;
    a->task = task;
    a->cond_channels = eng_task_cond_channels(&task, image_channels);
    a->net = kind == ENG_ADAPTER_LITE ? make_lite(base, a->cond_channels) : make_controlnet(base, a->cond_channels);
    a->net->to(base->ctx->device);
    return a;
}

} // namespace eng

using namespace eng;

/* ---- the adapter file's metadata ---------------------------------------
 * codid.base_hash, codid.task (+ codid.factor, codid.canny), codid.kind,
 * codid.distilled, codid.n_grid, written by eng_trainer_export; the
 * recipe, the evaluation figures and extra metadata beside them. */

static std::string meta(const st_file &f, const char *key) {
    char buf[4096];
    const char *v = st_metadata_get(&f, key, buf, sizeof buf);
    return v ? v : "";
}

/* The metadata of an open adapter file; T the base's train steps (0: not
 * known, the grid unchecked). */
static eng_adapter_info read_info(const st_file &f, const char *path, int T) {
    eng_adapter_info info;
    std::memset(&info, 0, sizeof info);
    eng_task_kind tk;
    if (eng_task_from_name(meta(f, "codid.task").c_str(), &tk) != ENG_OK)
        raise(ENG_EFORMAT, "%s: unknown task '%s'", path, meta(f, "codid.task").c_str());
    eng_task_params_init(&info.task, tk);
    if (!meta(f, "codid.factor").empty()) info.task.factor = std::atoi(meta(f, "codid.factor").c_str());
    if (!meta(f, "codid.canny").empty()) info.task.canny = std::atoi(meta(f, "codid.canny").c_str());
    std::string kind = meta(f, "codid.kind");
    if (eng_adapter_kind_from_name(kind.c_str(), &info.kind) != ENG_OK)
        raise(ENG_EFORMAT, "%s: unknown adapter kind '%s'", path, kind.c_str());
    info.distilled = meta(f, "codid.distilled") == "1";
    info.n_grid = std::atoi(meta(f, "codid.n_grid").c_str());
    if (info.n_grid < 1 || (T > 0 && info.n_grid > T)) info.n_grid = 50;
    std::snprintf(info.base_hash, sizeof info.base_hash, "%s", meta(f, "codid.base_hash").c_str());
    return info;
}

/* codid.* keys without the prefix; values holding JSON objects parsed. */
static char *metadata_without_prefix(const st_file &f) {
    cJSON *in = f.metadata_json ? cJSON_Parse(f.metadata_json) : nullptr;
    cJSON *o = cJSON_CreateObject(), *item;
    cJSON_ArrayForEach(item, in) {
        if (!cJSON_IsString(item) || std::strncmp(item->string, "codid.", 6) != 0) continue;
        const char *v = item->valuestring;
        cJSON *parsed = v[0] == '{' ? cJSON_Parse(v) : nullptr;
        cJSON_AddItemToObject(o, item->string + 6, parsed ? parsed : cJSON_CreateString(v));
    }
    cJSON_Delete(in);
    char *text = o ? cJSON_PrintUnformatted(o) : nullptr;
    cJSON_Delete(o);
    if (!text) raise(ENG_ENOMEM, "out of memory");
    /* cJSON allocates with malloc unless told otherwise: the caller frees */
    return text;
}

extern "C" int eng_adapter_probe(const char *path, eng_adapter_info *out, char **metadata_json, eng_error *err) {
    ENG_GUARD(err, {
        st_file f;
        char msg[256];
        int rc = st_open(path, &f, msg, sizeof msg);
        if (rc != ST_OK) return fail(err, rc == ST_EIO ? ENG_EIO : ENG_EFORMAT, "%s: %s", path, msg);
        std::unique_ptr<st_file, void (*)(st_file *)> guard(&f, st_close);
        if (meta(f, "codid.task").empty() || meta(f, "codid.kind").empty() || meta(f, "codid.base_hash").empty())
            return fail(err, ENG_EFORMAT, "%s is not a codid adapter (no codid.task, codid.kind or codid.base_hash)",
                        path);
        eng_adapter_info info = read_info(f, path, 0);
        if (metadata_json) *metadata_json = metadata_without_prefix(f);
        *out = info;
        ok(err);
        return ENG_OK;
    })
}

extern "C" int eng_adapter_load(eng_model *m, const char *path, eng_adapter **out, eng_error *err) {
    ENG_GUARD(err, {
        st_file f;
        char msg[256];
        int rc = st_open(path, &f, msg, sizeof msg);
        if (rc != ST_OK) return fail(err, rc == ST_EIO ? ENG_EIO : ENG_EFORMAT, "%s: %s", path, msg);
        std::unique_ptr<st_file, void (*)(st_file *)> guard(&f, st_close);
        std::string base_hash = meta(f, "codid.base_hash");
        if (base_hash != m->hash)
            return fail(err, ENG_EMISMATCH, "%s was trained on base model %s, not on the loaded base %s (%s)", path,
                        base_hash.empty() ? "(unknown)" : base_hash.c_str(), m->hash.c_str(), m->name.c_str());
        eng_adapter_info info = read_info(f, path, m->sched.T);
        auto a = new_adapter(m, info.kind, info.task, m->unet->cfg.in_channels);
        a->distilled = info.distilled;
        a->n_grid = info.n_grid;
        a->metadata_json = f.metadata_json ? f.metadata_json : "{}";
        guard.reset();
        load_state(*a->net, path, "adapter");
        a->net->eval();
        for (auto &p : a->net->parameters()) p.set_requires_grad(false);
        *out = a.release();
        ok(err);
        return ENG_OK;
    })
}

extern "C" void eng_adapter_get_info(const eng_adapter *a, eng_adapter_info *out) {
    std::memset(out, 0, sizeof *out);
    out->kind = a->kind;
    out->task = a->task;
    out->distilled = a->distilled;
    out->n_grid = a->n_grid;
    out->parameters = count_params(*const_cast<eng_adapter *>(a)->net);
    out->memory_bytes = out->parameters * 4;
    std::snprintf(out->base_hash, sizeof out->base_hash, "%s", a->base->hash.c_str());
}

extern "C" const char *eng_adapter_metadata_json(const eng_adapter *a) {
    return a->metadata_json.c_str();
}

extern "C" void eng_adapter_free(eng_adapter *a) {
    delete a;
}
