/*
 * train.cpp - the trainers behind eng_trainer: unconditional pretraining of
 * a base UNet, and the adapter trainers on a frozen base: CoDi (`distill`,
 * CODI.md 'One training step of CoDi'), the plain-diffusion `teacher`, and
 * the two-stage `cm2` baseline.
 *
 * Everything a step depends on lives in the trainer and goes into its
 * checkpoint: weights, EMA weights, AdamW moments, the step count and the
 * random generator's state. Batches, timesteps, noise and task degradations
 * are all drawn from that one generator, so a resumed run continues bit for
 * bit as if it had never stopped.
 */
#include <ATen/CPUGeneratorImpl.h>
#include <cjson/cJSON.h>

#include <cmath>
#include <cstring>
#include <sys/stat.h>

#include "engine/adapter.hpp"
#include "engine/safetensors.h"
#include "engine/tasks.hpp"

namespace eng {
eng_model *new_model(eng_ctx *ctx, const std::string &config, const std::string &sched);
void freeze(eng_model *m);
} // namespace eng

using namespace eng;

struct eng_trainer {
    eng_ctx *ctx = nullptr;
    eng_train_params p{};
    std::string teacher_path;
    eng_images data{};
    at::Generator gen;

    /* pretrain: the model being trained and its EMA twin */
    std::unique_ptr<eng_model> online_model, ema_model;
    /* adapters: the frozen base (borrowed), online and EMA adapters, and the
     * cm2 teacher */
    eng_model *base = nullptr;
    std::unique_ptr<eng_adapter> online, ema, teacher;

    std::vector<std::string> names;
    std::vector<torch::Tensor> params, ema_params, m1, m2;
    int step = 0;

    eng_model *model() { return base ? base : online_model.get(); }
};

namespace {

void validate(const eng_train_params *p, const eng_images *d) {
    if (p->total_steps < 1) raise(ENG_EINVAL, "total_steps must be at least 1");
    if (p->batch_size < 1 || p->batch_size > 4096) raise(ENG_EINVAL, "batch_size must be in 1..4096");
    if (!(p->lr > 0 && p->lr < 1)) raise(ENG_EINVAL, "lr must be in (0, 1)");
    if (p->warmup_steps < 0) raise(ENG_EINVAL, "warmup_steps must be >= 0");
    if (!(p->ema_decay >= 0 && p->ema_decay < 1)) raise(ENG_EINVAL, "ema_decay must be in [0, 1)");
    if (!(p->weight_decay >= 0) || !(p->grad_clip >= 0)) raise(ENG_EINVAL, "bad weight_decay or grad_clip");
    if (!d || d->n < 1 || !d->data) raise(ENG_EINVAL, "the training set is empty");
}

void track(eng_trainer *t, torch::nn::Module &online, torch::nn::Module &ema) {
    auto e = ema.named_parameters(true);
    for (auto &kv : online.named_parameters(true)) {
        t->names.push_back(kv.key());
        kv.value().set_requires_grad(true);
        t->params.push_back(kv.value());
        auto ev = e[kv.key()];
        ev.set_requires_grad(false);
        t->ema_params.push_back(ev);
        t->m1.push_back(torch::zeros_like(kv.value()));
        t->m2.push_back(torch::zeros_like(kv.value()));
    }
}

/* A batch of training images in [-1, 1], random horizontal flips per image. */
torch::Tensor next_batch(eng_trainer *t, const torch::Device &dev) {
    const eng_images &d = t->data;
    int B = t->p.batch_size;
    auto idx = torch::randint(0, d.n, {B}, t->gen, torch::kLong);
    auto flip = torch::rand({B}, t->gen) < 0.5;
    size_t per = (size_t)d.height * d.width * d.channels;
    auto u8 = torch::empty({B, d.height, d.width, d.channels}, torch::kUInt8);
    for (int i = 0; i < B; i++)
        std::memcpy(u8.data_ptr<uint8_t>() + per * i, d.data + per * idx[i].item<int64_t>(), per);
    auto x = u8.to(dev).permute({0, 3, 1, 2}).to(torch::kFloat32).div(127.5).sub(1.0);
    if (t->p.hflip) {
        auto f = flip.to(dev).view({-1, 1, 1, 1});
        x = torch::where(f, x.flip({3}), x);
    }
    return x.contiguous();
}

/* Timesteps in [lo, T-1], per sample or one shared by the batch (CODI.md step 2). */
torch::Tensor draw_t(eng_trainer *t, int lo, int T, int B) {
    if (t->p.shared_t) return torch::randint(lo, T, {1}, t->gen, torch::kLong).repeat({B});
    return torch::randint(lo, T, {B}, t->gen, torch::kLong);
}

/* The target of the denoising loss in the model's parameterization. */
torch::Tensor diffusion_target(eng_prediction p, const torch::Tensor &x, const torch::Tensor &eps,
                               const torch::Tensor &alpha, const torch::Tensor &sigma) {
    return p == ENG_PRED_V ? alpha * eps - sigma * x : eps;
}

torch::Tensor pretrain_loss(eng_trainer *t) {
    eng_model *m = t->online_model.get();
    auto dev = m->ctx->device;
    auto x = next_batch(t, dev);
    int B = (int)x.size(0);
    auto ts = torch::randint(0, m->sched.T, {B}, t->gen, torch::kLong);
    auto eps = torch::randn(x.sizes(), t->gen).to(dev);
    auto abar = gather_coef(m->sched.abar, ts, dev);
    auto alpha = abar.sqrt(), sigma = (1 - abar).sqrt();
    auto z = alpha * x + sigma * eps;
    auto out = m->unet->forward(z, ts.to(dev).to(torch::kFloat32));
    return torch::mse_loss(out, diffusion_target(m->sched.prediction, x, eps, alpha, sigma));
}

torch::Tensor teacher_loss(eng_trainer *t) {
    eng_model *m = t->base;
    auto dev = m->ctx->device;
    auto x = next_batch(t, dev);
    int B = (int)x.size(0);
    auto c = build_condition(t->p.task, x, t->gen);
    auto ts = torch::randint(0, m->sched.T, {B}, t->gen, torch::kLong);
    auto eps = torch::randn(x.sizes(), t->gen).to(dev);
    auto abar = gather_coef(m->sched.abar, ts, dev);
    auto alpha = abar.sqrt(), sigma = (1 - abar).sqrt();
    auto z = alpha * x + sigma * eps;
    auto out = model_output(m, t->online.get(), z, ts.to(dev).to(torch::kFloat32), c);
    return torch::mse_loss(out, diffusion_target(m->sched.prediction, x, eps, alpha, sigma));
}

/* CoDi, CODI.md 'One training step of CoDi' (also cm2's second stage, whose
 * ODE model is the teacher adapter). */
torch::Tensor codi_loss(eng_trainer *t) {
    eng_model *m = t->base;
    const Schedule &s = m->sched;
    auto dev = m->ctx->device;
    /* step 1: data, condition, noise */
    auto x = next_batch(t, dev);
    int B = (int)x.size(0);
    auto c = build_condition(t->p.task, x, t->gen);
    auto eps = torch::randn(x.sizes(), t->gen).to(dev);
    /* step 2: t uniform in [1, T-1], s = max(t - T/N, 0) */
    auto tt = draw_t(t, 1, s.T, B);
    auto ss = (tt - s.T / t->p.n_grid).clamp_min(0);
    auto tf = tt.to(dev).to(torch::kFloat32), sf = ss.to(dev).to(torch::kFloat32);
    auto abar_t = gather_coef(s.abar, tt, dev), abar_s = gather_coef(s.abar, ss, dev);
    auto alpha_t = abar_t.sqrt(), sigma_t = (1 - abar_t).sqrt();
    auto alpha_s = abar_s.sqrt(), sigma_s = (1 - abar_s).sqrt();
    /* step 3 */
    auto z_t = alpha_t * x + sigma_t * eps;
    torch::Tensor y;
    {
        torch::NoGradGuard ng;
        /* step 4: one deterministic ODE step from t to s */
        eng_adapter *ode = t->p.kind == ENG_TRAIN_CM2      ? t->teacher.get()
                           : t->p.ode_model == ENG_ODE_EMA ? t->ema.get()
                                                           : nullptr;
        torch::Tensor xhat, epshat;
        split_prediction(s.prediction, z_t, model_output(m, ode, z_t, tf, c), alpha_t, sigma_t, xhat, epshat);
        auto zhat_s = alpha_s * xhat + sigma_s * epshat;
        /* step 5: the EMA model's consistency output at s */
        y = consistency_fn(m, t->ema.get(), zhat_s, sf, c);
    }
    /* step 6 */
    auto pred = consistency_fn(m, t->online.get(), z_t, tf, c);
    /* step 7: self-consistency + lambda * conditional guidance */
    auto w = torch::ones({B, 1, 1, 1}, x.options());
    if (t->p.loss_weight == ENG_LOSS_WEIGHT_SNR_TRUNC) w = (abar_t / (1 - abar_t)).clamp_max(1.0);
    if (t->p.consistency == ENG_CONSISTENCY_EPS) {
        /* implied noises relative to z_t: e(a) - e(b) = alpha_t / sigma_t (b - a) */
        auto r = alpha_t / sigma_t;
        w = w * r * r;
    }
    auto per = [&](const torch::Tensor &d) { return (w * d * d).mean(); };
    return per(pred - y) + t->p.lambda * per(pred - x);
}

} // namespace

static void check_data(const eng_images *d, eng_model *m) {
    const auto &c = m->unet->cfg;
    if (d->channels != c.in_channels || d->height != c.sample_size || d->width != c.sample_size)
        raise(ENG_EINVAL, "training images are %dx%dx%d; the model takes %dx%dx%d", d->width, d->height, d->channels,
              c.sample_size, c.sample_size, c.in_channels);
}

extern "C" int eng_trainer_create_pretrain(eng_ctx *ctx, const char *config_json, const char *scheduler_json,
                                           const eng_train_params *p, const eng_images *data, eng_trainer **out,
                                           eng_error *err) {
    ENG_GUARD(err, {
        validate(p, data);
        auto t = std::make_unique<eng_trainer>();
        t->ctx = ctx;
        t->p = *p;
        t->data = *data;
        t->gen = at::detail::createCPUGenerator(p->seed);
        std::string sched = scheduler_json ? scheduler_json : "";
        {
            SeededInit seeded(p->seed);
            t->online_model.reset(new_model(ctx, config_json, sched));
        }
        if (!scheduler_json) {
            /* our own default: v-prediction (CODI.md 'Parameterization'),
             * trailing DDIM spacing so that few-step sampling starts at T-1 */
            t->online_model->sched.prediction = p->prediction;
            t->online_model->sched.timestep_spacing = "trailing";
            t->online_model->sched.json = t->online_model->sched.to_json();
        }
        t->online_model->name = "pretrain";
        check_data(data, t->online_model.get());
        t->online_model->unet->to(ctx->device);
        t->ema_model.reset(new_model(ctx, config_json, t->online_model->sched.json));
        t->ema_model->unet->to(ctx->device);
        {
            torch::NoGradGuard ng;
            auto src = t->online_model->unet->named_parameters(true);
            for (auto &kv : t->ema_model->unet->named_parameters(true)) kv.value().copy_(src[kv.key()]);
        }
        track(t.get(), *t->online_model->unet, *t->ema_model->unet);
        *out = t.release();
        ok(err);
        return ENG_OK;
    })
}

extern "C" int eng_trainer_create_adapter(eng_model *m, const eng_train_params *p, const eng_images *data,
                                          eng_trainer **out, eng_error *err) {
    ENG_GUARD(err, {
        validate(p, data);
        if (p->kind == ENG_TRAIN_PRETRAIN)
            return fail(err, ENG_EINVAL, "pretrain jobs use eng_trainer_create_pretrain");
        if (p->n_grid < 1 || p->n_grid > m->sched.T)
            return fail(err, ENG_EINVAL, "n_grid must be in 1..%d", m->sched.T);
        if (!(p->lambda >= 0)) return fail(err, ENG_EINVAL, "lambda must be >= 0");
        check_data(data, m);
        validate_task(p->task, m->unet->cfg.in_channels);
        auto t = std::make_unique<eng_trainer>();
        t->ctx = m->ctx;
        t->p = *p;
        t->data = *data;
        t->base = m;
        t->gen = at::detail::createCPUGenerator(p->seed);
        int ch = m->unet->cfg.in_channels;
        {
            SeededInit seeded(p->seed);
            t->online = new_adapter(m, p->adapter_kind, p->task, ch);
            t->ema = new_adapter(m, p->adapter_kind, p->task, ch);
        }
        if (p->kind == ENG_TRAIN_CM2) {
            if (!p->teacher_path) return fail(err, ENG_EINVAL, "cm2 needs a teacher adapter (teacher_path)");
            t->teacher_path = p->teacher_path;
            eng_adapter *teacher = nullptr;
            int rc = eng_adapter_load(m, p->teacher_path, &teacher, err);
            if (rc != ENG_OK) return rc;
            t->teacher.reset(teacher);
            if (teacher->kind != p->adapter_kind || teacher->task.kind != p->task.kind)
                return fail(err, ENG_EINVAL, "the teacher adapter's kind or task differs from this job's");
        }
        t->p.teacher_path = nullptr;
        {
            /* both start equal: from the teacher for cm2 (its student is
             * initialised from the teacher), else from fresh init */
            torch::NoGradGuard ng;
            auto src = (t->teacher ? t->teacher->net : t->online->net)->named_parameters(true);
            for (auto &kv : t->online->net->named_parameters(true)) kv.value().copy_(src[kv.key()]);
            for (auto &kv : t->ema->net->named_parameters(true)) kv.value().copy_(src[kv.key()]);
        }
        t->online->distilled = p->kind != ENG_TRAIN_TEACHER;
        t->online->n_grid = p->n_grid;
        track(t.get(), *t->online->net, *t->ema->net);
        *out = t.release();
        ok(err);
        return ENG_OK;
    })
}

extern "C" int eng_trainer_step(eng_trainer *t, eng_step_stats *stats, eng_error *err) {
    ENG_GUARD(err, {
        if (t->step >= t->p.total_steps) return fail(err, ENG_EINVAL, "all %d steps are done", t->p.total_steps);
        torch::Tensor loss;
        switch (t->p.kind) {
            case ENG_TRAIN_PRETRAIN: loss = pretrain_loss(t); break;
            case ENG_TRAIN_TEACHER: loss = teacher_loss(t); break;
            default: loss = codi_loss(t); break;
        }
        for (auto &p : t->params) p.mutable_grad() = torch::Tensor();
        loss.backward();
        float lv = loss.item<float>();
        if (!std::isfinite(lv)) return fail(err, ENG_EINTERNAL, "loss is %f at step %d", lv, t->step + 1);

        torch::NoGradGuard ng;
        /* global-norm clipping (CODI.md step 8) */
        double sq = 0;
        for (auto &p : t->params)
            if (p.grad().defined()) sq += p.grad().pow(2).sum().item<double>();
        double norm = std::sqrt(sq), scale = 1;
        if (t->p.grad_clip > 0 && norm > t->p.grad_clip) scale = t->p.grad_clip / (norm + 1e-6);

        /* AdamW (betas 0.9 / 0.999, eps 1e-8), decoupled weight decay on
         * weight matrices and kernels only; linear warm-up of the rate */
        int step = t->step + 1;
        double lr = t->p.lr * std::min(1.0, (double)step / std::max(1, t->p.warmup_steps));
        const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
        double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
        for (size_t i = 0; i < t->params.size(); i++) {
            auto &p = t->params[i];
            if (!p.grad().defined()) continue;
            auto g = scale == 1 ? p.grad() : p.grad() * scale;
            if (p.dim() >= 2 && t->p.weight_decay > 0) p.mul_(1 - lr * t->p.weight_decay);
            t->m1[i].mul_(b1).add_(g, 1 - b1);
            t->m2[i].mul_(b2).addcmul_(g, g, 1 - b2);
            auto denom = (t->m2[i] / bc2).sqrt_().add_(eps);
            p.addcdiv_(t->m1[i], denom, -lr / bc1);
        }
        /* EMA, with the usual warm-up of the decay so that early averages do
         * not drag the random initialisation along */
        double d = std::min<double>(t->p.ema_decay, (1.0 + step) / (10.0 + step));
        for (size_t i = 0; i < t->params.size(); i++) t->ema_params[i].mul_(d).add_(t->params[i], 1 - d);
        t->step = step;
        if (stats) {
            stats->step = step;
            stats->loss = lv;
            stats->lr = (float)lr;
            stats->grad_norm = (float)norm;
        }
        ok(err);
        return ENG_OK;
    })
}

extern "C" int eng_trainer_steps_done(const eng_trainer *t) {
    return t->step;
}

/* ---- checkpoints ------------------------------------------------------- */

static std::string hex(const uint8_t *p, size_t n) {
    static const char *d = "0123456789abcdef";
    std::string s(n * 2, '0');
    for (size_t i = 0; i < n; i++) {
        s[2 * i] = d[p[i] >> 4];
        s[2 * i + 1] = d[p[i] & 15];
    }
    return s;
}

static std::vector<uint8_t> unhex(const std::string &s) {
    std::vector<uint8_t> out(s.size() / 2);
    auto v = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    for (size_t i = 0; i < out.size(); i++) out[i] = (uint8_t)(v(s[2 * i]) * 16 + v(s[2 * i + 1]));
    return out;
}

static std::string fingerprint(const eng_trainer *t) {
    char buf[256];
    /* an adapter's checkpoint belongs to its base: resuming on another base
     * of the same shape would silently train something else */
    std::snprintf(buf, sizeof buf, "%s/%s/%s/%d/%zu", eng_train_kind_name(t->p.kind),
                  eng_adapter_kind_name(t->p.adapter_kind), eng_task_name(t->p.task.kind), t->p.batch_size,
                  t->params.size());
    return t->base ? std::string(buf) + "/" + t->base->hash : std::string(buf);
}

extern "C" int eng_trainer_save_checkpoint(eng_trainer *t, const char *path, eng_error *err) {
    ENG_GUARD(err, {
        std::unique_ptr<st_writer, void (*)(st_writer *)> w(st_writer_new(), st_writer_free);
        std::vector<torch::Tensor> keep;
        const char *groups[] = {"param", "ema", "adam_m", "adam_v"};
        std::vector<torch::Tensor> *lists[] = {&t->params, &t->ema_params, &t->m1, &t->m2};
        for (int g = 0; g < 4; g++) {
            for (size_t i = 0; i < t->names.size(); i++) {
                auto c = (*lists[g])[i].detach().to(torch::kCPU).contiguous();
                keep.push_back(c);
                std::vector<int64_t> shape(c.sizes().begin(), c.sizes().end());
                std::string name = std::string(groups[g]) + "/" + t->names[i];
                if (st_writer_add(w.get(), name.c_str(), ST_F32, (int)shape.size(), shape.data(), c.data_ptr<float>(),
                                  (size_t)c.numel() * 4) != ST_OK)
                    return fail(err, ENG_EINTERNAL, "cannot add %s", name.c_str());
            }
        }
        at::Tensor state;
        {
            std::lock_guard<std::mutex> lock(t->gen.mutex());
            state = t->gen.get_state();
        }
        st_writer_set_metadata(w.get(), "codid.step", std::to_string(t->step).c_str());
        st_writer_set_metadata(w.get(), "codid.rng", hex(state.data_ptr<uint8_t>(), state.numel()).c_str());
        st_writer_set_metadata(w.get(), "codid.fingerprint", fingerprint(t).c_str());
        if (t->online_model) {
            st_writer_set_metadata(w.get(), "codid.config", t->online_model->unet->cfg.json.c_str());
            st_writer_set_metadata(w.get(), "codid.scheduler", t->online_model->sched.json.c_str());
        }
        char msg[256];
        if (st_writer_save(w.get(), path, msg, sizeof msg) != ST_OK)
            return fail(err, ENG_EIO, "checkpoint %s: %s", path, msg);
        ok(err);
        return ENG_OK;
    })
}

extern "C" int eng_trainer_load_checkpoint(eng_trainer *t, const char *path, eng_error *err) {
    ENG_GUARD(err, {
        st_file f;
        char msg[256];
        int rc = st_open(path, &f, msg, sizeof msg);
        if (rc != ST_OK) return fail(err, rc == ST_EIO ? ENG_EIO : ENG_EFORMAT, "checkpoint %s: %s", path, msg);
        std::unique_ptr<st_file, void (*)(st_file *)> guard(&f, st_close);
        std::string fp = fingerprint(t);
        char buf[256];
        const char *v = st_metadata_get(&f, "codid.fingerprint", buf, sizeof buf);
        if (!v || fp != v)
            return fail(err, ENG_EMISMATCH, "checkpoint %s is of another run (%s, this run is %s)", path, v ? v : "?",
                        fp.c_str());
        std::vector<char> big(1 << 16);
        const char *rng = st_metadata_get(&f, "codid.rng", big.data(), big.size());
        const char *stp = st_metadata_get(&f, "codid.step", buf, sizeof buf);
        if (!rng || !stp) return fail(err, ENG_EFORMAT, "checkpoint %s lacks step or RNG state", path);
        const char *groups[] = {"param", "ema", "adam_m", "adam_v"};
        std::vector<torch::Tensor> *lists[] = {&t->params, &t->ema_params, &t->m1, &t->m2};
        torch::NoGradGuard ng;
        for (int g = 0; g < 4; g++) {
            for (size_t i = 0; i < t->names.size(); i++) {
                std::string name = std::string(groups[g]) + "/" + t->names[i];
                const st_tensor *st = st_find(&f, name.c_str());
                auto &dst = (*lists[g])[i];
                if (!st || st->dtype != ST_F32 || st->nbytes != (size_t)dst.numel() * 4)
                    return fail(err, ENG_EMISMATCH, "checkpoint %s: tensor %s missing or of another shape", path,
                                name.c_str());
                auto src = torch::from_blob(const_cast<uint8_t *>(st->data), dst.sizes(), torch::kFloat32);
                dst.copy_(src);
            }
        }
        auto bytes = unhex(rng);
        auto state = torch::from_blob(bytes.data(), {(int64_t)bytes.size()}, torch::kUInt8).clone();
        {
            std::lock_guard<std::mutex> lock(t->gen.mutex());
            t->gen.set_state(state);
        }
        t->step = std::atoi(stp);
        ok(err);
        return ENG_OK;
    })
}

/* ---- export ------------------------------------------------------------ */

/* Every setting that shaped the adapter, so that a file says how it was made. */
static std::string recipe_json(const eng_trainer *t) {
    const eng_train_params &p = t->p;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "trainer", eng_train_kind_name(p.kind));
    cJSON_AddNumberToObject(o, "steps", t->step);
    cJSON_AddNumberToObject(o, "batch_size", p.batch_size);
    cJSON_AddNumberToObject(o, "lr", p.lr);
    cJSON_AddNumberToObject(o, "warmup", p.warmup_steps);
    cJSON_AddNumberToObject(o, "weight_decay", p.weight_decay);
    cJSON_AddNumberToObject(o, "grad_clip", p.grad_clip);
    cJSON_AddNumberToObject(o, "ema_decay", p.ema_decay);
    cJSON_AddNumberToObject(o, "seed", (double)p.seed);
    cJSON_AddNumberToObject(o, "n_grid", p.n_grid);
    cJSON_AddNumberToObject(o, "lambda", p.lambda);
    cJSON_AddStringToObject(o, "ode_model", eng_ode_model_name(p.ode_model));
    cJSON_AddStringToObject(o, "consistency_space", eng_consistency_space_name(p.consistency));
    cJSON_AddBoolToObject(o, "shared_t", p.shared_t);
    cJSON_AddStringToObject(o, "loss_weight", eng_loss_weight_name(p.loss_weight));
    if (!t->teacher_path.empty()) cJSON_AddStringToObject(o, "teacher", t->teacher_path.c_str());
    char *text = cJSON_PrintUnformatted(o);
    std::string out = text ? text : "{}";
    cJSON_free(text);
    cJSON_Delete(o);
    return out;
}

extern "C" int eng_trainer_export(eng_trainer *t, const char *path, int fp16, const char *extra_metadata_json,
                                  eng_error *err) {
    ENG_GUARD(err, {
        if (t->ema_model) {
            /* the EMA weights, as a model folder */
            auto *m = t->ema_model.get();
            m->trained = true;
            int rc = eng_model_save(m, path, fp16, err);
            if (rc != ENG_OK) return rc;
            ok(err);
            return ENG_OK;
        }
        std::vector<std::pair<std::string, std::string>> md = {
            {"format", "pt"},
            {"codid.base_hash", t->base->hash},
            {"codid.base_name", t->base->name},
            {"codid.kind", eng_adapter_kind_name(t->p.adapter_kind)},
            {"codid.task", eng_task_name(t->p.task.kind)},
            {"codid.factor", std::to_string(t->p.task.factor)},
            {"codid.canny", std::to_string(t->p.task.canny)},
            {"codid.distilled", t->p.kind == ENG_TRAIN_TEACHER ? "0" : "1"},
            {"codid.n_grid", std::to_string(t->p.n_grid)},
            {"codid.recipe", recipe_json(t)},
            {"codid.steps", std::to_string(t->step)},
        };
        if (extra_metadata_json && *extra_metadata_json) md.push_back({"codid.extra", extra_metadata_json});
        save_state(*t->ema->net, path, fp16 != 0, md);
        ok(err);
        return ENG_OK;
    })
}

extern "C" void eng_trainer_free(eng_trainer *t) {
    delete t;
}
