/*
 * tasks.cpp - condition builders (CODI.md, 'Tasks'): each a pure function of
 * an image batch x in [-1, 1], (n, C, H, W), and a random generator, so that
 * the same seed gives the same condition. Random degradation parameters
 * (mask, blur sigma, noise level) are drawn per image.
 */
#include "engine/tasks.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <cstring>

namespace F = torch::nn::functional;

namespace eng {

static torch::Tensor uniform(at::Generator &g, int64_t n, double lo, double hi) {
    return torch::rand({n}, g) * (hi - lo) + lo;
}

static torch::Tensor luminance(const torch::Tensor &x) {
    if (x.size(1) == 1) return x;
    return 0.299 * x.narrow(1, 0, 1) + 0.587 * x.narrow(1, 1, 1) + 0.114 * x.narrow(1, 2, 1);
}

/* Separable Gaussian blur of each image with its own sigma (reflect padding). */
static torch::Tensor gaussian_blur(const torch::Tensor &x, const torch::Tensor &sigmas) {
    std::vector<torch::Tensor> out;
    for (int64_t i = 0; i < x.size(0); i++) {
        double s = sigmas[i].item<double>();
        int r = std::max(1, (int)std::ceil(3 * s));
        r = std::min<int>(r, (int)std::min(x.size(2), x.size(3)) - 1);
        auto k = torch::arange(-r, r + 1, torch::kFloat32);
        k = torch::exp(-(k * k) / (2 * s * s));
        k = (k / k.sum()).to(x.device());
        int64_t c = x.size(1);
        auto img = x.narrow(0, i, 1);
        auto kh = k.view({1, 1, 1, -1}).repeat({c, 1, 1, 1});
        auto kv = k.view({1, 1, -1, 1}).repeat({c, 1, 1, 1});
        img = F::pad(img, F::PadFuncOptions({r, r, r, r}).mode(torch::kReflect));
        img = F::conv2d(img, kh, F::Conv2dFuncOptions().groups(c));
        img = F::conv2d(img, kv, F::Conv2dFuncOptions().groups(c));
        out.push_back(img);
    }
    return torch::cat(out, 0);
}

static void sobel(const torch::Tensor &y, torch::Tensor &gx, torch::Tensor &gy) {
    auto kx = torch::tensor({-1.f, 0.f, 1.f, -2.f, 0.f, 2.f, -1.f, 0.f, 1.f}).view({1, 1, 3, 3}).to(y.device());
    auto ky = kx.transpose(2, 3).contiguous();
    auto p = F::pad(y, F::PadFuncOptions({1, 1, 1, 1}).mode(torch::kReplicate));
    gx = F::conv2d(p, kx);
    gy = F::conv2d(p, ky);
}

/* Canny: Gaussian smoothing, Sobel gradients, non-maximum suppression along
 * the quantised gradient direction, double threshold relative to each
 * image's strongest gradient, hysteresis by repeated 3x3 dilation of the
 * strong edges inside the weak ones. Output 1 on edges, 0 elsewhere. */
static torch::Tensor canny(const torch::Tensor &y) {
    auto s = gaussian_blur(y, torch::full({y.size(0)}, 1.0));
    torch::Tensor gx, gy;
    sobel(s, gx, gy);
    auto mag = torch::sqrt(gx * gx + gy * gy);
    auto ang = torch::atan2(gy, gx) * (180.0 / M_PI);
    ang = torch::where(ang < 0, ang + 180, ang);
    auto q = (torch::floor((ang + 22.5) / 45.0).to(torch::kLong) % 4); /* 0: -, 1: /, 2: |, 3: \ */
    auto pm = F::pad(mag, F::PadFuncOptions({1, 1, 1, 1}));
    int64_t H = mag.size(2), W = mag.size(3);
    auto at = [&](int dy, int dx) { return pm.narrow(2, 1 + dy, H).narrow(3, 1 + dx, W); };
    /* neighbours along the gradient: 0 -> left/right, 1 -> diagonal, ... */
    auto n1 =
        torch::where(q == 0, at(0, -1), torch::where(q == 1, at(1, -1), torch::where(q == 2, at(-1, 0), at(-1, -1))));
    auto n2 = torch::where(q == 0, at(0, 1), torch::where(q == 1, at(-1, 1), torch::where(q == 2, at(1, 0), at(1, 1))));
    auto nms = torch::where((mag >= n1) & (mag >= n2), mag, torch::zeros_like(mag));
    auto peak = std::get<0>(nms.flatten(1).max(1)).clamp_min(1e-6).view({-1, 1, 1, 1});
    auto strong = nms >= 0.3 * peak;
    auto weak = nms >= 0.1 * peak;
    auto e = strong.to(torch::kFloat32);
    auto wf = weak.to(torch::kFloat32);
    for (int it = 0; it < (int)(H + W); it++) {
        auto grown = F::max_pool2d(e, F::MaxPool2dFuncOptions(3).stride(1).padding(1)) * wf;
        if (torch::equal(grown, e)) break;
        e = grown;
    }
    return e;
}

torch::Tensor edges_map(const torch::Tensor &x, bool use_canny) {
    auto y = luminance(x);
    if (use_canny) return canny(y) * 2 - 1;
    torch::Tensor gx, gy;
    sobel(y, gx, gy);
    /* |grad| of a [-1, 1] image is at most 8 * sqrt(2); scale to [-1, 1] */
    auto mag = torch::sqrt(gx * gx + gy * gy) / (4 * std::sqrt(2.0));
    return mag.clamp(0, 1) * 2 - 1;
}

using MaskAccessor = at::TensorAccessor<float, 4>;

/* Mark the disc of radius r around (cy, cx) in mask i, clipped to the image. */
static void stamp_disc(MaskAccessor &acc, int64_t i, double cy, double cx, double r, int64_t H, int64_t W) {
    int y0 = std::max(0, (int)(cy - r)), y1 = std::min<int>((int)H - 1, (int)(cy + r));
    int x0 = std::max(0, (int)(cx - r)), x1 = std::min<int>((int)W - 1, (int)(cx + r));
    for (int yy = y0; yy <= y1; yy++)
        for (int xx = x0; xx <= x1; xx++)
            if ((yy - cy) * (yy - cy) + (xx - cx) * (xx - cx) <= r * r) acc[i][0][yy][xx] = 1;
}

/* One free-form stroke: segs segments of random angle and length from a
 * random start, a disc of radius r stamped every half pixel. */
template <typename Draw> static void draw_stroke(MaskAccessor &acc, int64_t i, int64_t H, int64_t W, Draw &draw) {
    double y = draw(0, H), x = draw(0, W), r = std::max(1.0, draw(0.04, 0.1) * W);
    int segs = 3 + (int)draw(0, 4);
    for (int k = 0; k < segs; k++) {
        double ang = draw(0, 2 * M_PI), len = draw(0.15, 0.4) * W;
        for (double d = 0; d <= len; d += 0.5)
            stamp_disc(acc, i, y + std::sin(ang) * d, x + std::cos(ang) * d, r, H, W);
        y = std::min<double>(std::max(0.0, y + std::sin(ang) * len), H - 1);
        x = std::min<double>(std::max(0.0, x + std::cos(ang) * len), W - 1);
    }
}

/* Random boxes (half the images) or free-form strokes (the other half); 1 marks the hole. */
static torch::Tensor inpaint_mask(at::Generator &g, int64_t n, int64_t H, int64_t W) {
    auto m = torch::zeros({n, 1, H, W});
    auto acc = m.accessor<float, 4>();
    auto draw = [&](double lo, double hi) { return uniform(g, 1, lo, hi).item<double>(); };
    for (int64_t i = 0; i < n; i++) {
        if (draw(0, 1) < 0.5) {
            int bh = (int)(H * draw(0.25, 0.6)), bw = (int)(W * draw(0.25, 0.6));
            int y0 = (int)draw(0, H - bh), x0 = (int)draw(0, W - bw);
            for (int y = y0; y < y0 + bh; y++)
                for (int x = x0; x < x0 + bw; x++) acc[i][0][y][x] = 1;
            continue;
        }
        int strokes = 1 + (int)draw(0, 3);
        for (int s = 0; s < strokes; s++) draw_stroke(acc, i, H, W, draw);
    }
    return m;
}

torch::Tensor sr_condition(const torch::Tensor &x, int factor) {
    int64_t H = x.size(2), W = x.size(3);
    auto lo = F::avg_pool2d(x, F::AvgPool2dFuncOptions(factor));
    return upsample_bicubic(lo, H, W);
}

torch::Tensor upsample_bicubic(const torch::Tensor &x, int64_t H, int64_t W) {
    return F::interpolate(
               x,
               F::InterpolateFuncOptions().size(std::vector<int64_t>{H, W}).mode(torch::kBicubic).align_corners(false))
        .clamp(-1, 1);
}

/* The inpaint condition: the image with the hole (m = 1) zeroed, then the
 * mask in [-1, 1] as one more channel. */
static torch::Tensor inpaint_condition(const torch::Tensor &x, const torch::Tensor &m) {
    return torch::cat({x * (1 - m), m * 2 - 1}, 1);
}

torch::Tensor build_condition(const eng_task_params &p, const torch::Tensor &x, at::Generator &g) {
    int64_t n = x.size(0), H = x.size(2), W = x.size(3);
    auto dev = x.device();
    switch (p.kind) {
        case ENG_TASK_SR: return sr_condition(x, p.factor);
        case ENG_TASK_INPAINT: return inpaint_condition(x, inpaint_mask(g, n, H, W).to(dev));
        case ENG_TASK_COLORIZE: return luminance(x);
        case ENG_TASK_EDGES: return edges_map(x, p.canny != 0);
        case ENG_TASK_DEBLUR: return gaussian_blur(x, uniform(g, n, 0.5, std::max(0.5f, p.max_sigma)));
        case ENG_TASK_DENOISE: {
            auto s = uniform(g, n, 0.02, std::max(0.02f, p.max_noise)).view({-1, 1, 1, 1});
            return (x + s * torch::randn(x.sizes(), g)).clamp(-1, 1);
        }
        default: raise(ENG_EINVAL, "task %d has no condition builder", (int)p.kind);
    }
}

void validate_task(const eng_task_params &p, int image_channels) {
    if (p.kind == ENG_TASK_SR && p.factor != 2 && p.factor != 4 && p.factor != 8)
        raise(ENG_EINVAL, "sr factor must be 2, 4 or 8");
    if (p.kind == ENG_TASK_COLORIZE && image_channels != 3) raise(ENG_EINVAL, "colorize needs 3-channel images");
    if (p.kind == ENG_TASK_NONE || p.kind > ENG_TASK_DENOISE) raise(ENG_EINVAL, "unknown task");
}

} // namespace eng

using namespace eng;

static torch::Tensor to_bytes(const torch::Tensor &c) {
    return c.clamp(-1, 1).add(1).mul(127.5).round().to(torch::kUInt8).permute({0, 2, 3, 1}).contiguous();
}

extern "C" int eng_task_apply(const eng_task_params *p, const eng_images *in, uint64_t seed, uint8_t *cond_out,
                              eng_error *err) {
    ENG_GUARD(err, {
        if (!in || in->n < 1 || in->height < 1 || in->width < 1 || !in->data)
            return fail(err, ENG_EINVAL, "empty image batch");
        validate_task(*p, in->channels);
        torch::NoGradGuard ng;
        auto x = images_to_tensor(in->data, in->n, in->height, in->width, in->channels, torch::kCPU);
        auto g = at::detail::createCPUGenerator(seed);
        auto u8 = to_bytes(build_condition(*p, x, g));
        std::memcpy(cond_out, u8.data_ptr<uint8_t>(), (size_t)u8.numel());
        ok(err);
        return ENG_OK;
    })
}

extern "C" int eng_preprocess_channels(const eng_task_params *p, eng_preprocess pre, int image_channels) {
    switch (pre) {
        case ENG_PRE_CANNY:
        case ENG_PRE_SOBEL:
        case ENG_PRE_GRAY: return 1;
        default: return eng_task_cond_channels(p, image_channels);
    }
}

extern "C" int eng_preprocess_apply(const eng_task_params *p, eng_preprocess pre, const eng_images *in,
                                    const uint8_t *mask, uint64_t seed, uint8_t *cond_out, eng_error *err) {
    ENG_GUARD(err, {
        if (!in || in->n < 1 || in->height < 1 || in->width < 1 || !in->data)
            return fail(err, ENG_EINVAL, "empty image batch");
        if ((unsigned)pre >= ENG_PRE_COUNT) return fail(err, ENG_EINVAL, "unknown preprocessing %d", (int)pre);
        if (pre == ENG_PRE_TASK) return eng_task_apply(p, in, seed, cond_out, err);
        bool inpaint = pre == ENG_PRE_NONE && p->kind == ENG_TASK_INPAINT;
        if (pre == ENG_PRE_NONE && !inpaint) {
            std::memcpy(cond_out, in->data, (size_t)in->n * in->height * in->width * in->channels);
            ok(err);
            return ENG_OK;
        }
        if (inpaint && !mask) return fail(err, ENG_EINVAL, "inpaint needs a mask");
        torch::NoGradGuard ng;
        auto x = images_to_tensor(in->data, in->n, in->height, in->width, in->channels, torch::kCPU);
        torch::Tensor c;
        if (inpaint) {
            auto m = torch::from_blob(const_cast<uint8_t *>(mask), {in->n, 1, in->height, in->width}, torch::kUInt8);
            c = inpaint_condition(x, m.ge(128).to(torch::kFloat32));
        } else if (pre == ENG_PRE_GRAY) {
            c = luminance(x);
        } else {
            c = edges_map(x, pre == ENG_PRE_CANNY);
        }
        auto u8 = to_bytes(c);
        std::memcpy(cond_out, u8.data_ptr<uint8_t>(), (size_t)u8.numel());
        ok(err);
        return ENG_OK;
    })
}

extern "C" int eng_task_reference(const eng_task_params *p, const eng_images *cond, int out_channels, uint8_t *out,
                                  eng_error *err) {
    ENG_GUARD(err, {
        int cc = eng_task_cond_channels(p, out_channels);
        if (!cond || cond->n < 1 || cond->channels != cc || !cond->data)
            return fail(err, ENG_EINVAL, "the %s task's conditions have %d channels", eng_task_name(p->kind), cc);
        size_t hw = (size_t)cond->height * cond->width, oc = (size_t)out_channels;
        for (int i = 0; i < cond->n; i++) {
            const uint8_t *c = cond->data + (size_t)i * hw * cc;
            uint8_t *o = out + (size_t)i * hw * oc;
            switch (p->kind) {
                case ENG_TASK_SR:
                case ENG_TASK_DEBLUR:
                case ENG_TASK_DENOISE: std::memcpy(o, c, hw * oc); break;
                case ENG_TASK_COLORIZE:
                    for (size_t q = 0; q < hw; q++) std::memset(o + q * oc, c[q], oc);
                    break;
                case ENG_TASK_INPAINT: {
                    /* the layout of inpaint_condition: channel oc is the mask */
                    std::vector<double> sum(oc, 0.0);
                    int known = 0;
                    for (size_t q = 0; q < hw; q++)
                        if (c[q * cc + oc] < 128) {
                            known++;
                            for (size_t k = 0; k < oc; k++) sum[k] += c[q * cc + k];
                        }
                    for (size_t q = 0; q < hw; q++)
                        for (size_t k = 0; k < oc; k++)
                            o[q * oc + k] =
                                c[q * cc + oc] < 128 ? c[q * cc + k] : (uint8_t)(known ? sum[k] / known + 0.5 : 128);
                    break;
                }
                default: return fail(err, ENG_EINVAL, "task %s has no plain reference", eng_task_name(p->kind));
            }
        }
        ok(err);
        return ENG_OK;
    })
}
