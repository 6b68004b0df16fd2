/*
 * engine.cpp - the C ABI of engine.h over libtorch for the base model and
 * generation. One translation unit for five concepts (each a section below,
 * with its design first; a unit of libtorch C++ costs 15-25 s to compile,
 * so they are not split into files):
 *
 *   errors and context  how a torch failure becomes an eng_status, the
 *                       enum names, the device and thread budget
 *   schedule            the DDPM forward process of scheduler_config.json
 *                       and DDIM's timesteps (model.hpp: Schedule)
 *   noise and images    seeded noise per image, bytes <-> tensors
 *   model I/O           the diffusers folder: load, create, save, forward
 *   sampling            DDIM and eng_generate (CoDi's sampler: adapter.cpp)
 *
 * Elsewhere: the UNet (unet.cpp), adapters and the CoDi sampler
 * (adapter.cpp), trainers (train.cpp), conditions (tasks.cpp), metrics.
 */
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <cjson/cJSON.h>
#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include "engine/adapter.hpp"
#include "engine/model.hpp"
#include "engine/safetensors.h"

namespace eng {

/* ---- errors and context -------------------------------------------------
 * Inside the engine a failure is thrown (raise: an eng::Error with a code
 * and a message; torch throws c10::Error); ENG_GUARD at every extern "C"
 * entry turns any of them into a code and err->msg, so no exception crosses
 * engine.h. fail() is the non-throwing form for checks at the entry. */

int fail(eng_error *err, int code, const char *fmt, ...) {
    if (err) {
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        std::vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

std::mutex &init_mutex() {
    static std::mutex m;
    return m;
}

void raise(int code, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    throw Error{code, buf};
}

/* ---- schedule -------------------------------------------------------------
 * Parsed once from scheduler_config.json (diffusers' names and defaults):
 * abar_t is tabulated for t in [0, T) and every lookup is bounds-checked
 * (Schedule::abar_at, gather_coef), so a bad timestep is an error, never a
 * read past the table. DDIM's timesteps follow timestep_spacing as
 * diffusers' DDIMScheduler does. */

Schedule Schedule::parse(const std::string &json) {
    Schedule s;
    if (!json.empty()) {
        cJSON *o = cJSON_Parse(json.c_str());
        if (!o || !cJSON_IsObject(o)) {
            cJSON_Delete(o);
            raise(ENG_EFORMAT, "scheduler_config.json is not a JSON object");
        }
        auto num = [&](const char *k, double d) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
            return cJSON_IsNumber(v) ? v->valuedouble : d;
        };
        auto str = [&](const char *k, const char *d) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
            return std::string(cJSON_IsString(v) ? v->valuestring : d);
        };
        const cJSON *tb = cJSON_GetObjectItemCaseSensitive(o, "trained_betas");
        bool has_trained_betas = tb && !cJSON_IsNull(tb);
        s.T = (int)num("num_train_timesteps", 1000);
        s.beta_start = num("beta_start", 1e-4);
        s.beta_end = num("beta_end", 0.02);
        s.beta_schedule = str("beta_schedule", "linear");
        std::string pred = str("prediction_type", eng_prediction_name(ENG_PRED_EPSILON));
        s.timestep_spacing = str("timestep_spacing", "leading");
        s.steps_offset = (int)num("steps_offset", 0);
        const cJSON *sa = cJSON_GetObjectItemCaseSensitive(o, "set_alpha_to_one");
        if (cJSON_IsBool(sa)) s.set_alpha_to_one = cJSON_IsTrue(sa);
        cJSON_Delete(o);
        if (has_trained_betas) raise(ENG_EFORMAT, "scheduler_config.json: trained_betas are not supported");
        if (pred == "v" || eng_prediction_from_name(pred.c_str(), &s.prediction) != ENG_OK)
            raise(ENG_EFORMAT, "scheduler_config.json: prediction_type '%s' is not supported", pred.c_str());
        if (s.T < 2 || s.T > 100000) raise(ENG_EFORMAT, "scheduler_config.json: bad num_train_timesteps");
        if (s.timestep_spacing != "leading" && s.timestep_spacing != "trailing" && s.timestep_spacing != "linspace")
            raise(ENG_EFORMAT, "scheduler_config.json: timestep_spacing '%s' is not supported",
                  s.timestep_spacing.c_str());
    }
    std::vector<double> betas(s.T);
    if (s.beta_schedule == "linear") {
        for (int i = 0; i < s.T; i++) betas[i] = s.beta_start + (s.beta_end - s.beta_start) * i / (s.T - 1);
    } else if (s.beta_schedule == "scaled_linear") {
        double a = std::sqrt(s.beta_start), b = std::sqrt(s.beta_end);
        for (int i = 0; i < s.T; i++) {
            double r = a + (b - a) * i / (s.T - 1);
            betas[i] = r * r;
        }
    } else if (s.beta_schedule == "squaredcos_cap_v2") {
        auto f = [](double t) { return std::pow(std::cos((t + 0.008) / 1.008 * M_PI / 2), 2); };
        for (int i = 0; i < s.T; i++) betas[i] = std::min(1 - f((i + 1.0) / s.T) / f((double)i / s.T), 0.999);
    } else {
        raise(ENG_EFORMAT, "scheduler_config.json: beta_schedule '%s' is not supported", s.beta_schedule.c_str());
    }
    s.abar.resize(s.T);
    double prod = 1;
    for (int i = 0; i < s.T; i++) {
        if (!(betas[i] > 0 && betas[i] < 1)) raise(ENG_EFORMAT, "scheduler_config.json: betas out of (0, 1)");
        prod *= 1 - betas[i];
        s.abar[i] = prod;
    }
    s.json = json.empty() ? s.to_json() : json;
    return s;
}

std::string Schedule::to_json() const {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "{\n  \"_class_name\": \"DDIMScheduler\",\n  \"num_train_timesteps\": %d,\n"
                  "  \"beta_start\": %.8g,\n  \"beta_end\": %.8g,\n  \"beta_schedule\": \"%s\",\n"
                  "  \"prediction_type\": \"%s\",\n  \"timestep_spacing\": \"%s\",\n"
                  "  \"steps_offset\": %d,\n  \"set_alpha_to_one\": %s,\n  \"clip_sample\": true\n}\n",
                  T, beta_start, beta_end, beta_schedule.c_str(), eng_prediction_name(prediction),
                  timestep_spacing.c_str(), steps_offset, set_alpha_to_one ? "true" : "false");
    return buf;
}

std::vector<int> Schedule::ddim_timesteps(int K) const {
    std::vector<int> ts(K);
    if (timestep_spacing == "trailing") {
        double r = (double)T / K;
        for (int i = 0; i < K; i++) ts[i] = (int)std::lround(T - i * r) - 1;
    } else if (timestep_spacing == "linspace") {
        for (int i = 0; i < K; i++) ts[i] = (int)std::lround((T - 1) * (K == 1 ? 1.0 : (double)(K - 1 - i) / (K - 1)));
    } else {
        int r = T / K;
        for (int i = 0; i < K; i++) ts[i] = (K - 1 - i) * r + steps_offset;
    }
    for (auto &t : ts) t = std::max(0, std::min(T - 1, t));
    return ts;
}

torch::Tensor gather_coef(const std::vector<double> &table, const torch::Tensor &t, const torch::Device &dev) {
    auto idx = t.to(torch::kCPU, torch::kLong).contiguous();
    auto out = torch::empty({idx.numel(), 1, 1, 1}, torch::kFloat32);
    const int64_t *ip = idx.data_ptr<int64_t>();
    float *op = out.data_ptr<float>();
    for (int64_t i = 0; i < idx.numel(); i++) {
        if (ip[i] < 0 || ip[i] >= (int64_t)table.size())
            raise(ENG_EINTERNAL, "timestep %lld is outside the schedule's 0..%zu", (long long)ip[i], table.size() - 1);
        op[i] = (float)table[ip[i]];
    }
    return out.to(dev);
}

void split_prediction(eng_prediction p, const torch::Tensor &z, const torch::Tensor &out, const torch::Tensor &alpha,
                      const torch::Tensor &sigma, torch::Tensor &x0, torch::Tensor &eps) {
    if (p == ENG_PRED_V) {
        /* v = alpha eps - sigma x  =>  x = alpha z - sigma v, eps = sigma z + alpha v */
        x0 = alpha * z - sigma * out;
        eps = sigma * z + alpha * out;
    } else {
        eps = out;
        x0 = (z - sigma * out) / alpha;
    }
}

/* ---- noise and images -----------------------------------------------------
 * Image i of a request is drawn from its own CPU generator seeded seed + i,
 * on every device, so an image does not depend on its batch; bytes map to
 * [-1, 1] as x / 127.5 - 1 and back with rounding. */

static at::Generator make_gen(uint64_t seed) {
    return at::detail::createCPUGenerator(seed);
}

torch::Tensor seeded_noise(uint64_t seed, int n, int c, int h, int w, const torch::Device &dev) {
    std::vector<torch::Tensor> parts;
    for (int i = 0; i < n; i++) {
        auto g = make_gen(seed + (uint64_t)i);
        parts.push_back(torch::randn({1, c, h, w}, g, torch::kFloat32));
    }
    return torch::cat(parts, 0).to(dev);
}

torch::Tensor images_to_tensor(const uint8_t *data, int n, int h, int w, int c, const torch::Device &dev) {
    auto t = torch::from_blob(const_cast<uint8_t *>(data), {n, h, w, c}, torch::kUInt8);
    return t.to(dev).permute({0, 3, 1, 2}).to(torch::kFloat32).div(127.5).sub(1.0).contiguous();
}

void tensor_to_images(const torch::Tensor &x, eng_image *out) {
    auto u8 = x.detach()
                  .clamp(-1, 1)
                  .add(1)
                  .mul(127.5)
                  .round()
                  .to(torch::kUInt8)
                  .permute({0, 2, 3, 1})
                  .contiguous()
                  .to(torch::kCPU);
    int n = (int)u8.size(0), h = (int)u8.size(1), w = (int)u8.size(2), c = (int)u8.size(3);
    size_t per = (size_t)h * w * c;
    for (int i = 0; i < n; i++) {
        out[i].width = w;
        out[i].height = h;
        out[i].channels = c;
        out[i].data = (uint8_t *)std::malloc(per);
        if (!out[i].data) {
            for (int j = 0; j < i; j++) eng_image_free(&out[j]);
            raise(ENG_ENOMEM, "out of memory for output images");
        }
        std::memcpy(out[i].data, u8.data_ptr<uint8_t>() + per * i, per);
    }
}

/* ---- model I/O ------------------------------------------------------------
 * A diffusers UNet2DModel folder: config.json, scheduler_config.json
 * (optional) and diffusion_pytorch_model.safetensors, every key consumed
 * (unet.cpp). A model is frozen once built (eval, no gradients, on the
 * context's device) and identified by the hash of its weights, which
 * adapters name. Files are written to a temporary name, fsynced, renamed. */

static std::string read_file(const std::string &path, bool required) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        if (required) raise(ENG_EIO, "cannot read %s", path.c_str());
        return "";
    }
    std::stringstream ss;
    ss << f.rdbuf();
    if (ss.str().size() > (1u << 20)) raise(ENG_EFORMAT, "%s is larger than 1 MiB", path.c_str());
    return ss.str();
}

static void write_file(const std::string &path, const std::string &text) {
    std::string tmp = path + ".tmp";
    FILE *f = std::fopen(tmp.c_str(), "wb");
    if (!f) raise(ENG_EIO, "cannot write %s: %s", tmp.c_str(), std::strerror(errno));
    bool ok =
        std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = std::fclose(f) == 0 && ok;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0)
        raise(ENG_EIO, "cannot write %s: %s", path.c_str(), std::strerror(errno));
}

static std::string base_name(const std::string &dir) {
    std::string d = dir;
    while (d.size() > 1 && d.back() == '/') d.pop_back();
    auto pos = d.rfind('/');
    return pos == std::string::npos ? d : d.substr(pos + 1);
}

eng_model *new_model(eng_ctx *ctx, const std::string &config, const std::string &sched) {
    auto m = std::make_unique<eng_model>();
    m->ctx = ctx;
    m->sched = Schedule::parse(sched);
    m->unet = UNet(UNetConfig::parse(config));
    return m.release();
}

/* The frozen base: eval mode, no gradients, on the context's device. */
void freeze(eng_model *m) {
    m->unet->to(m->ctx->device);
    m->unet->eval();
    for (auto &p : m->unet->parameters()) p.set_requires_grad(false);
    m->hash = params_hash(*m->unet);
}

} // namespace eng

using namespace eng;

/* ---- errors and context: names and the context ------------------------- */

/* ---- context ----------------------------------------------------------- */

extern "C" void eng_ctx_params_init(eng_ctx_params *p) {
    p->device = ENG_DEVICE_AUTO;
    p->threads = 0;
}

extern "C" int eng_ctx_create(const eng_ctx_params *p, eng_ctx **out, eng_error *err) {
    ENG_GUARD(err, {
        auto ctx = std::make_unique<eng_ctx>();
        bool cuda = torch::cuda::is_available();
        if (p->device == ENG_DEVICE_CUDA && !cuda)
            return fail(err, ENG_EINVAL, "CUDA was asked for but this libtorch or machine has none");
        if (cuda && p->device != ENG_DEVICE_CPU) {
            ctx->device = torch::Device(torch::kCUDA, 0);
            ctx->device_name = "cuda:0";
        }
        ctx->threads = p->threads;
        /* OpenBLAS (pthreads build) keeps a pool of its own beside torch's
         * OpenMP pool; both spinning on 2 cores halved training speed. Our
         * matrix products are small, so OpenBLAS runs on the calling thread
         * and the thread budget is torch's alone. */
        using set_fn = void (*)(int);
        if (auto f = (set_fn)dlsym(RTLD_DEFAULT, "openblas_set_num_threads")) f(1);
        if (p->threads > 0) eng_set_threads(p->threads);
        *out = ctx.release();
        ok(err);
        return ENG_OK;
    })
}

extern "C" const char *eng_ctx_device_name(const eng_ctx *ctx) {
    return ctx->device_name.c_str();
}

extern "C" void eng_ctx_free(eng_ctx *ctx) {
    delete ctx;
}

extern "C" void eng_set_threads(int threads) {
    if (threads <= 0) return;
    try {
        /* torch initialises a thread's OpenMP pool size lazily from a global on
         * its first parallel op; run one first so the per-thread value set
         * next is not overwritten by that initialisation later. */
        at::parallel_for(0, 2, 1, [](int64_t, int64_t) {});
        at::set_num_threads(threads);
    } catch (...) {
    }
}

extern "C" int eng_get_threads(void) {
    return at::get_num_threads();
}

/* ---- model I/O: the ABI ------------------------------------------------- */

extern "C" int eng_model_load(eng_ctx *ctx, const char *dir, eng_model **out, eng_error *err) {
    ENG_GUARD(err, {
        std::string d = dir;
        std::string config = read_file(d + "/config.json", true);
        std::string sched = read_file(d + "/scheduler_config.json", false);
        std::unique_ptr<eng_model> m(new_model(ctx, config, sched));
        std::string weights = d + "/diffusion_pytorch_model.safetensors";
        load_state(*m->unet, weights, "model");
        st_file f;
        char msg[256], buf[16];
        m->trained = true;
        if (st_open(weights.c_str(), &f, msg, sizeof msg) == ST_OK) {
            const char *v = st_metadata_get(&f, "codid.trained", buf, sizeof buf);
            if (v && std::strcmp(v, "0") == 0) m->trained = false;
            st_close(&f);
        }
        m->name = base_name(d);
        freeze(m.get());
        *out = m.release();
        ok(err);
        return ENG_OK;
    })
}

extern "C" int eng_model_create(eng_ctx *ctx, const char *config_json, const char *scheduler_json, uint64_t seed,
                                eng_model **out, eng_error *err) {
    ENG_GUARD(err, {
        std::unique_ptr<eng_model> m;
        {
            SeededInit seeded(seed);
            m.reset(new_model(ctx, config_json, scheduler_json ? scheduler_json : ""));
        }
        m->name = "random";
        m->trained = false;
        freeze(m.get());
        *out = m.release();
        ok(err);
        return ENG_OK;
    })
}

extern "C" int eng_model_save(eng_model *m, const char *dir, int fp16, eng_error *err) {
    ENG_GUARD(err, {
        std::string d = dir;
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return fail(err, ENG_EIO, "cannot create %s: %s", dir, std::strerror(errno));
        write_file(d + "/config.json", m->unet->cfg.json);
        write_file(d + "/scheduler_config.json", m->sched.json);
        save_state(*m->unet, d + "/diffusion_pytorch_model.safetensors", fp16 != 0,
                   {{"format", "pt"}, {"codid.trained", m->trained ? "1" : "0"}});
        ok(err);
        return ENG_OK;
    })
}

extern "C" void eng_model_get_info(const eng_model *m, eng_model_info *out) {
    std::memset(out, 0, sizeof *out);
    const auto &c = m->unet->cfg;
    out->in_channels = c.in_channels;
    out->out_channels = c.out_channels;
    out->sample_size = c.sample_size;
    out->parameters = count_params(*const_cast<eng_model *>(m)->unet);
    out->memory_bytes = out->parameters * 4;
    out->trained = m->trained;
    out->prediction = m->sched.prediction;
    out->train_timesteps = m->sched.T;
    std::snprintf(out->hash, sizeof out->hash, "%s", m->hash.c_str());
    std::snprintf(out->name, sizeof out->name, "%s", m->name.c_str());
}

extern "C" const char *eng_model_config_json(const eng_model *m) {
    return m->unet->cfg.json.c_str();
}

extern "C" void eng_model_free(eng_model *m) {
    delete m;
}

extern "C" int eng_model_forward(eng_model *m, const float *x, int n, int h, int w, float timestep, float *out,
                                 eng_error *err) {
    ENG_GUARD(err, {
        const auto &c = m->unet->cfg;
        if (n < 1 || h < 1 || w < 1) return fail(err, ENG_EINVAL, "empty input");
        torch::InferenceMode im;
        auto dev = m->ctx->device;
        auto xt = torch::from_blob(const_cast<float *>(x), {n, c.in_channels, h, w}, torch::kFloat32).to(dev);
        auto t = torch::full({n}, timestep, torch::TensorOptions().dtype(torch::kFloat32).device(dev));
        auto y = m->unet->forward(xt, t).to(torch::kCPU).contiguous();
        std::memcpy(out, y.data_ptr<float>(), (size_t)y.numel() * sizeof(float));
        ok(err);
        return ENG_OK;
    })
}

extern "C" int eng_timestep_embedding(const float *t, int n, int dim, int flip_sin_to_cos, float freq_shift, float *out,
                                      eng_error *err) {
    ENG_GUARD(err, {
        if (n < 1 || dim < 2) return fail(err, ENG_EINVAL, "n and dim must be positive");
        auto tt = torch::from_blob(const_cast<float *>(t), {n}, torch::kFloat32);
        auto e = timestep_embedding(tt, dim, flip_sin_to_cos != 0, freq_shift).contiguous();
        std::memcpy(out, e.data_ptr<float>(), (size_t)n * dim * sizeof(float));
        ok(err);
        return ENG_OK;
    })
}

/* ---- sampling -------------------------------------------------------------
 * eng_generate draws the noise, builds the condition tensor and runs DDIM
 * (any adapter or none) or CoDi's K-step sampler (distilled adapters);
 * the defaults (eng_default_steps here, eng_gen_params_init in names.c) live there only.
 * A sample that is not finite is refused rather than sent as black. */

extern "C" int eng_default_steps(const eng_model *m, const eng_adapter *a, int evaluation) {
    if (a && a->distilled) return std::min(ENG_CODI_DEFAULT_STEPS, a->n_grid);
    return std::min(evaluation ? ENG_DDIM_EVALUATION_STEPS : ENG_DDIM_DEFAULT_STEPS, m->sched.T);
}

extern "C" void eng_image_free(eng_image *img) {
    if (!img) return;
    std::free(img->data);
    img->data = nullptr;
}

namespace eng {

/* One network evaluation of the (possibly conditional) model. */
torch::Tensor model_output(eng_model *m, eng_adapter *a, const torch::Tensor &z, const torch::Tensor &t,
                           const torch::Tensor &cond) {
    if (!a) return m->unet->forward(z, t);
    Residuals r = a->net->residuals(z, t, cond);
    return m->unet->forward(z, t, &r);
}

/* DDIM (Song et al.), as diffusers' DDIMScheduler with eta:
 *   x0 = pred_x0(z_t), eps = (z_t - alpha_t x0) / sigma_t
 *   s  = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)
 *   z_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - s^2) eps + s noise */
static torch::Tensor sample_ddim(eng_model *m, eng_adapter *a, const eng_gen_params *p, torch::Tensor z,
                                 const torch::Tensor &cond, std::vector<at::Generator> &gens) {
    const Schedule &s = m->sched;
    auto dev = z.device();
    auto ts = s.ddim_timesteps(p->steps);
    torch::Tensor x0, eps;
    for (size_t i = 0; i < ts.size(); i++) {
        int t = ts[i], prev = i + 1 < ts.size() ? ts[i + 1] : -1;
        double at = s.abar_at(t), ap = s.abar_prev(prev);
        auto tv = torch::full({z.size(0)}, (float)t, torch::TensorOptions().device(dev));
        auto out = model_output(m, a, z, tv, cond);
        split_prediction(s.prediction, z, out, torch::scalar_tensor(std::sqrt(at), dev),
                         torch::scalar_tensor(std::sqrt(1 - at), dev), x0, eps);
        if (p->clamp) {
            x0 = x0.clamp(-1, 1);
            eps = (z - std::sqrt(at) * x0) / std::sqrt(1 - at);
        }
        double sd = p->eta * std::sqrt((1 - ap) / (1 - at)) * std::sqrt(1 - at / ap);
        z = std::sqrt(ap) * x0 + std::sqrt(std::max(0.0, 1 - ap - sd * sd)) * eps;
        if (sd > 0 && prev >= 0) {
            std::vector<torch::Tensor> noise;
            for (auto &g : gens) noise.push_back(torch::randn({1, z.size(1), z.size(2), z.size(3)}, g));
            z = z + sd * torch::cat(noise, 0).to(dev);
        }
        if (p->progress && p->progress((int)i + 1, (int)ts.size(), p->user))
            raise(ENG_ECANCELLED, "cancelled at step %zu of %zu", i + 1, ts.size());
    }
    return z;
}

} // namespace eng

extern "C" int eng_generate(eng_model *m, eng_adapter *a, const eng_gen_params *p, const eng_image *cond,
                            eng_image *out, eng_error *err) {
    ENG_GUARD(err, {
        const auto &c = m->unet->cfg;
        if (p->n < 1 || p->n > 1024) return fail(err, ENG_EINVAL, "n must be in 1..1024");
        if (p->steps < 1 || p->steps > m->sched.T) return fail(err, ENG_EINVAL, "steps must be in 1..%d", m->sched.T);
        if (!(p->eta >= 0 && p->eta <= 1)) return fail(err, ENG_EINVAL, "eta must be in [0, 1]");
        if (a && !cond) return fail(err, ENG_EINVAL, "this adapter needs a condition image");
        int size = c.sample_size;
        torch::InferenceMode im;
        auto dev = m->ctx->device;
        std::vector<at::Generator> gens;
        std::vector<torch::Tensor> noise;
        for (int i = 0; i < p->n; i++) {
            gens.push_back(make_gen(p->seed + (uint64_t)i));
            noise.push_back(torch::randn({1, c.in_channels, size, size}, gens.back()));
        }
        auto z = torch::cat(noise, 0).to(dev);
        torch::Tensor ct;
        if (a) ct = adapter_condition(a, cond, p->n, size, dev);
        eng_sampler smp = p->sampler;
        if (smp == ENG_SAMPLER_AUTO) smp = a && a->distilled ? ENG_SAMPLER_CODI : ENG_SAMPLER_DDIM;
        torch::Tensor x;
        if (smp == ENG_SAMPLER_CODI) {
            if (!a || !a->distilled) return fail(err, ENG_EINVAL, "the CoDi sampler needs a distilled adapter");
            x = sample_codi(m, a, p, z, ct, gens);
        } else {
            x = sample_ddim(m, a, p, z, ct, gens);
        }
        /* a NaN would leave as a black image answered 200: refuse it */
        if (!torch::isfinite(x).all().item<bool>())
            return fail(err, ENG_EINTERNAL, "sampling produced non-finite values");
        tensor_to_images(x, out);
        ok(err);
        return ENG_OK;
    })
}
