/*
 * unet.cpp - diffusers' UNet2DModel in libtorch, layer by layer.
 *
 * Each block mirrors its diffusers namesake (ResnetBlock2D, Attention with
 * residual connection, DownBlock2D / AttnDownBlock2D, UNetMidBlock2D,
 * UpBlock2D / AttnUpBlock2D) and registers its children under the same names,
 * so that named_parameters() yields diffusers' state-dict keys.
 */
#include "engine/unet.hpp"

#include <cjson/cJSON.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "engine/safetensors.h"

namespace F = torch::nn::functional;

namespace eng {

/* ---- config ------------------------------------------------------------ */

namespace {

struct JsonDoc {
    cJSON *root = nullptr;
    ~JsonDoc() { cJSON_Delete(root); }
};

int json_int(const cJSON *o, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return def;
    if (!cJSON_IsNumber(v) || v->valuedouble != std::floor(v->valuedouble))
        raise(ENG_EFORMAT, "config.json: '%s' must be an integer", key);
    return (int)v->valuedouble;
}

double json_num(const cJSON *o, const char *key, double def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return def;
    if (!cJSON_IsNumber(v)) raise(ENG_EFORMAT, "config.json: '%s' must be a number", key);
    return v->valuedouble;
}

bool json_bool(const cJSON *o, const char *key, bool def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return def;
    if (!cJSON_IsBool(v)) raise(ENG_EFORMAT, "config.json: '%s' must be true or false", key);
    return cJSON_IsTrue(v);
}

std::string json_str(const cJSON *o, const char *key, const char *def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return def;
    if (!cJSON_IsString(v)) raise(ENG_EFORMAT, "config.json: '%s' must be a string", key);
    return v->valuestring;
}

std::vector<int> json_int_list(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(v)) raise(ENG_EFORMAT, "config.json: '%s' must be an array of integers", key);
    std::vector<int> out;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 1 || e->valuedouble > 65536)
            raise(ENG_EFORMAT, "config.json: '%s' holds a bad value", key);
        out.push_back((int)e->valuedouble);
    }
    return out;
}

std::vector<std::string> json_str_list(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(v)) raise(ENG_EFORMAT, "config.json: '%s' must be an array of strings", key);
    std::vector<std::string> out;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e)) raise(ENG_EFORMAT, "config.json: '%s' holds a non-string", key);
        out.push_back(e->valuestring);
    }
    return out;
}

} // namespace

UNetConfig UNetConfig::parse(const std::string &json) {
    JsonDoc doc;
    doc.root = cJSON_Parse(json.c_str());
    if (!doc.root || !cJSON_IsObject(doc.root)) raise(ENG_EFORMAT, "config.json is not a JSON object");
    const cJSON *o = doc.root;
    std::string cls = json_str(o, "_class_name", "UNet2DModel");
    if (cls != "UNet2DModel") raise(ENG_EFORMAT, "config.json: _class_name '%s' is not UNet2DModel", cls.c_str());
    UNetConfig c;
    c.json = json;
    c.sample_size = json_int(o, "sample_size", 32);
    c.in_channels = json_int(o, "in_channels", 3);
    c.out_channels = json_int(o, "out_channels", 3);
    c.block_out_channels = json_int_list(o, "block_out_channels");
    c.down_block_types = json_str_list(o, "down_block_types");
    c.up_block_types = json_str_list(o, "up_block_types");
    c.layers_per_block = json_int(o, "layers_per_block", 2);
    /* diffusers: absent means its default 8; null means one head per block */
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(o, "attention_head_dim");
    c.attention_head_dim = !hd ? 8 : cJSON_IsNull(hd) ? 0 : json_int(o, "attention_head_dim", 8);
    c.norm_num_groups = json_int(o, "norm_num_groups", 32);
    c.norm_eps = json_num(o, "norm_eps", 1e-5);
    c.downsample_padding = json_int(o, "downsample_padding", 1);
    c.flip_sin_to_cos = json_bool(o, "flip_sin_to_cos", true);
    c.freq_shift = json_num(o, "freq_shift", 0);
    c.center_input_sample = json_bool(o, "center_input_sample", false);
    c.mid_block_scale_factor = json_num(o, "mid_block_scale_factor", 1);
    c.add_attention = json_bool(o, "add_attention", true);

    auto require = [&](const char *key, const char *want) {
        std::string v = json_str(o, key, want);
        if (v != want) raise(ENG_EFORMAT, "config.json: %s '%s' is not supported (only '%s')", key, v.c_str(), want);
    };
    require("act_fn", "silu");
    require("time_embedding_type", "positional");
    require("resnet_time_scale_shift", "default");
    require("downsample_type", "conv");
    require("upsample_type", "conv");
    const cJSON *cet = cJSON_GetObjectItemCaseSensitive(o, "class_embed_type");
    if (cet && !cJSON_IsNull(cet)) raise(ENG_EFORMAT, "config.json: class embeddings are not supported");
    const cJSON *nce = cJSON_GetObjectItemCaseSensitive(o, "num_class_embeds");
    if (nce && !cJSON_IsNull(nce)) raise(ENG_EFORMAT, "config.json: class embeddings are not supported");

    size_t nb = c.block_out_channels.size();
    if (nb == 0 || nb > 8) raise(ENG_EFORMAT, "config.json: 1 to 8 blocks expected");
    if (c.down_block_types.size() != nb || c.up_block_types.size() != nb)
        raise(ENG_EFORMAT, "config.json: down_block_types, up_block_types and "
                           "block_out_channels must have the same length");
    for (size_t i = 0; i < nb; i++) {
        const std::string &d = c.down_block_types[i], &u = c.up_block_types[i];
        if (d != "DownBlock2D" && d != "AttnDownBlock2D")
            raise(ENG_EFORMAT, "config.json: down block '%s' is not supported", d.c_str());
        if (u != "UpBlock2D" && u != "AttnUpBlock2D")
            raise(ENG_EFORMAT, "config.json: up block '%s' is not supported", u.c_str());
        if (c.block_out_channels[i] % c.norm_num_groups != 0)
            raise(ENG_EFORMAT,
                  "config.json: block_out_channels[%zu] = %d is not a multiple "
                  "of norm_num_groups = %d",
                  i, c.block_out_channels[i], c.norm_num_groups);
    }
    if (c.in_channels < 1 || c.in_channels > 64 || c.out_channels < 1 || c.out_channels > 64)
        raise(ENG_EFORMAT, "config.json: in/out channels out of range");
    if (c.layers_per_block < 1 || c.layers_per_block > 8)
        raise(ENG_EFORMAT, "config.json: layers_per_block out of range");
    if (c.sample_size < 4 || c.sample_size > 4096) raise(ENG_EFORMAT, "config.json: sample_size out of range");
    if (c.norm_num_groups < 1 || c.block_out_channels[0] % 2)
        raise(ENG_EFORMAT, "config.json: bad norm_num_groups or block_out_channels[0]");
    return c;
}

int UNetConfig::num_skips() const {
    return (int)skip_channels().size();
}

std::vector<int> UNetConfig::skip_channels() const {
    std::vector<int> ch{block_out_channels[0]};
    for (size_t i = 0; i < block_out_channels.size(); i++) {
        for (int j = 0; j < layers_per_block; j++) ch.push_back(block_out_channels[i]);
        if (i + 1 < block_out_channels.size()) ch.push_back(block_out_channels[i]);
    }
    return ch;
}

/* ---- layers ------------------------------------------------------------ */

torch::Tensor timestep_embedding(const torch::Tensor &t, int dim, bool flip_sin_to_cos, double freq_shift) {
    int half = dim / 2;
    auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(t.device());
    auto exponent = torch::arange(0, half, opts) * (-std::log(10000.0) / (half - freq_shift));
    auto emb = t.to(torch::kFloat32).unsqueeze(1) * torch::exp(exponent).unsqueeze(0);
    auto out = flip_sin_to_cos ? torch::cat({torch::cos(emb), torch::sin(emb)}, 1)
                               : torch::cat({torch::sin(emb), torch::cos(emb)}, 1);
    if (dim % 2) out = F::pad(out, F::PadFuncOptions({0, 1}));
    return out;
}

static torch::nn::GroupNorm group_norm(int groups, int ch, double eps) {
    return torch::nn::GroupNorm(torch::nn::GroupNormOptions(groups, ch).eps(eps));
}

static torch::nn::Conv2d conv(int in, int out, int k, int stride, int pad) {
    return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(pad));
}

ResnetBlockImpl::ResnetBlockImpl(int in, int out, int temb, int groups, double eps, double scale)
    : output_scale(scale) {
    norm1 = register_module("norm1", group_norm(groups, in, eps));
    conv1 = register_module("conv1", conv(in, out, 3, 1, 1));
    time_emb_proj = register_module("time_emb_proj", torch::nn::Linear(temb, out));
    norm2 = register_module("norm2", group_norm(groups, out, eps));
    conv2 = register_module("conv2", conv(out, out, 3, 1, 1));
    if (in != out) conv_shortcut = register_module("conv_shortcut", conv(in, out, 1, 1, 0));
}

/* SiLU of a tensor no one else holds: in place when autograd is off (its
 * backward would need the input). On the CPU every large activation
 * allocated is fresh memory the kernel faults in page by page, which costs
 * as much as the arithmetic at large batch (bench/RESULTS.md), so the
 * blocks below reuse their own intermediates wherever the math allows. */
static torch::Tensor silu_fresh(torch::Tensor t) {
    return torch::GradMode::is_enabled() ? torch::silu(t) : torch::silu_(t);
}

/* h = conv1(silu(norm1(x))) + proj(silu(temb)); h = conv2(silu(norm2(h)));
 * out = (shortcut(x) + h) / output_scale. The sums go in place into the
 * convolutions' outputs, which their backward does not need. */
torch::Tensor ResnetBlockImpl::forward(const torch::Tensor &x, const torch::Tensor &temb) {
    auto h = conv1(silu_fresh(norm1(x)));
    h.add_(time_emb_proj(torch::silu(temb)).unsqueeze(-1).unsqueeze(-1));
    h = conv2(silu_fresh(norm2(h)));
    h.add_(conv_shortcut ? conv_shortcut(x) : x);
    return output_scale == 1.0 ? h : h.div_(output_scale);
}

AttentionImpl::AttentionImpl(int channels, int head_dim, int groups, double eps, double scale)
    : heads(head_dim > 0 ? channels / head_dim : 1), output_scale(scale) {
    if (head_dim > 0 && channels % head_dim)
        raise(ENG_EFORMAT, "attention: %d channels are not a multiple of head dim %d", channels, head_dim);
    group_norm = register_module("group_norm", eng::group_norm(groups, channels, eps));
    to_q = register_module("to_q", torch::nn::Linear(channels, channels));
    to_k = register_module("to_k", torch::nn::Linear(channels, channels));
    to_v = register_module("to_v", torch::nn::Linear(channels, channels));
    to_out = register_module("to_out", torch::nn::ModuleList());
    out_proj = torch::nn::Linear(channels, channels);
    to_out->push_back(out_proj);
}

/* softmax(q k^T / sqrt(d)) v per head over the h*w positions, then
 * out = (to_out(attn) + x) / output_scale */
torch::Tensor AttentionImpl::forward(const torch::Tensor &x) {
    auto sz = x.sizes();
    int64_t b = sz[0], c = sz[1], hw = sz[2] * sz[3], d = c / heads;
    /* (b, hw, c), made contiguous once rather than by each projection */
    auto h = group_norm(x.view({b, c, hw})).transpose(1, 2).contiguous();
    auto split = [&](const torch::Tensor &t) {
        return t.view({b, hw, heads, d}).permute({0, 2, 1, 3}).reshape({b * heads, hw, d});
    };
    auto q = split(to_q(h)), k = split(to_k(h)), v = split(to_v(h));
    auto scores = torch::baddbmm(torch::empty({b * heads, hw, hw}, q.options()), q, k.transpose(1, 2), /*beta=*/0.0,
                                 /*alpha=*/1.0 / std::sqrt((double)d));
    auto a = torch::bmm(torch::softmax(scores, -1), v);
    a = a.view({b, heads, hw, d}).permute({0, 2, 1, 3}).reshape({b, hw, c});
    /* x first: the sum takes x's contiguous layout. The transposed
     * projection alone is a channels-last view; once that layout reaches
     * the convolutions after this block, oneDNN converts their weights at
     * every call (as diffusers' own `proj + residual` order does on torch
     * 1.13: bench/RESULTS.md). */
    auto out = x + out_proj(a).transpose(1, 2).reshape(sz);
    return output_scale == 1.0 ? out : out.div_(output_scale);
}

static int head_dim_for(const UNetConfig &c, int channels) {
    return c.attention_head_dim > 0 ? c.attention_head_dim : channels;
}

DownBlockImpl::DownBlockImpl(const UNetConfig &c, int, int in, int out, int temb, bool attn, bool downsample) {
    resnets = register_module("resnets", torch::nn::ModuleList());
    if (attn) attentions = register_module("attentions", torch::nn::ModuleList());
    for (int i = 0; i < c.layers_per_block; i++) {
        res.push_back(ResnetBlock(i == 0 ? in : out, out, temb, c.norm_num_groups, c.norm_eps, 1.0));
        resnets->push_back(res.back());
        if (attn) {
            att.push_back(Attention(out, head_dim_for(c, out), c.norm_num_groups, c.norm_eps, 1.0));
            attentions->push_back(att.back());
        }
    }
    if (downsample) {
        /* Downsample2D: a stride-2 3x3 conv; with padding 0 the input is first
         * padded by one on the right and bottom */
        auto holder = std::make_shared<torch::nn::Module>();
        pad_zero = c.downsample_padding == 0;
        down = holder->register_module("conv", conv(out, out, 3, 2, c.downsample_padding));
        downsamplers = register_module("downsamplers", torch::nn::ModuleList());
        downsamplers->push_back(holder);
    }
}

torch::Tensor DownBlockImpl::forward(torch::Tensor h, const torch::Tensor &temb, std::vector<torch::Tensor> &skips) {
    for (size_t i = 0; i < res.size(); i++) {
        h = res[i](h, temb);
        if (!att.empty()) h = att[i](h);
        skips.push_back(h);
    }
    if (down) {
        if (pad_zero) h = F::pad(h, F::PadFuncOptions({0, 1, 0, 1}));
        h = down(h);
        skips.push_back(h);
    }
    return h;
}

MidBlockImpl::MidBlockImpl(const UNetConfig &c, int ch, int temb) {
    resnets = register_module("resnets", torch::nn::ModuleList());
    for (int i = 0; i < 2; i++) {
        res.push_back(ResnetBlock(ch, ch, temb, c.norm_num_groups, c.norm_eps, c.mid_block_scale_factor));
        resnets->push_back(res.back());
    }
    if (c.add_attention) {
        attentions = register_module("attentions", torch::nn::ModuleList());
        att.push_back(Attention(ch, head_dim_for(c, ch), c.norm_num_groups, c.norm_eps, c.mid_block_scale_factor));
        attentions->push_back(att.back());
    }
}

torch::Tensor MidBlockImpl::forward(torch::Tensor h, const torch::Tensor &temb) {
    h = res[0](h, temb);
    if (!att.empty()) h = att[0](h);
    return res[1](h, temb);
}

UpBlockImpl::UpBlockImpl(const UNetConfig &c, int in, int prev, int out, int temb, bool attn, bool upsample) {
    int layers = c.layers_per_block + 1;
    resnets = register_module("resnets", torch::nn::ModuleList());
    if (attn) attentions = register_module("attentions", torch::nn::ModuleList());
    for (int i = 0; i < layers; i++) {
        int skip_ch = i == layers - 1 ? in : out;
        int res_in = i == 0 ? prev : out;
        res.push_back(ResnetBlock(res_in + skip_ch, out, temb, c.norm_num_groups, c.norm_eps, 1.0));
        resnets->push_back(res.back());
        if (attn) {
            att.push_back(Attention(out, head_dim_for(c, out), c.norm_num_groups, c.norm_eps, 1.0));
            attentions->push_back(att.back());
        }
    }
    if (upsample) {
        auto holder = std::make_shared<torch::nn::Module>();
        up = holder->register_module("conv", conv(out, out, 3, 1, 1));
        upsamplers = register_module("upsamplers", torch::nn::ModuleList());
        upsamplers->push_back(holder);
    }
}

torch::Tensor UpBlockImpl::forward(torch::Tensor h, const torch::Tensor &temb, std::vector<torch::Tensor> &skips) {
    for (size_t i = 0; i < res.size(); i++) {
        h = torch::cat({h, skips.back()}, 1);
        skips.pop_back();
        h = res[i](h, temb);
        if (!att.empty()) h = att[i](h);
    }
    if (up) {
        /* nearest-neighbour x2, as diffusers' Upsample2D; to the next skip's
         * size exactly, so that odd sizes (rounded up by the strided convs)
         * come back to their own size */
        std::vector<int64_t> size{h.size(2) * 2, h.size(3) * 2};
        if (!skips.empty()) size = {skips.back().size(2), skips.back().size(3)};
        h = F::interpolate(h, F::InterpolateFuncOptions().size(size).mode(torch::kNearest));
        h = up(h);
    }
    return h;
}

TimeEmbeddingImpl::TimeEmbeddingImpl(int in, int out) {
    linear_1 = register_module("linear_1", torch::nn::Linear(in, out));
    linear_2 = register_module("linear_2", torch::nn::Linear(out, out));
}

torch::Tensor TimeEmbeddingImpl::forward(const torch::Tensor &t) {
    return linear_2(torch::silu(linear_1(t)));
}

void Encoder::build(torch::nn::Module &parent, const UNetConfig &c, int in_channels) {
    const auto &boc = c.block_out_channels;
    int temb = boc[0] * 4;
    conv_in = parent.register_module("conv_in", conv(in_channels, boc[0], 3, 1, 1));
    time_embedding = parent.register_module("time_embedding", TimeEmbedding(boc[0], temb));
    down_blocks = parent.register_module("down_blocks", torch::nn::ModuleList());
    int out = boc[0];
    for (size_t i = 0; i < boc.size(); i++) {
        int in = out;
        out = boc[i];
        downs.push_back(
            DownBlock(c, (int)i, in, out, temb, c.down_block_types[i] == "AttnDownBlock2D", i + 1 < boc.size()));
        down_blocks->push_back(downs.back());
    }
    mid_block = parent.register_module("mid_block", MidBlock(c, boc.back(), temb));
}

torch::Tensor Encoder::embed_time(const UNetConfig &c, const torch::Tensor &t) {
    return time_embedding(timestep_embedding(t, c.block_out_channels[0], c.flip_sin_to_cos, c.freq_shift));
}

torch::Tensor Encoder::down(const torch::Tensor &x, const torch::Tensor &emb, std::vector<torch::Tensor> &skips) {
    auto h = conv_in(x);
    skips.push_back(h);
    for (auto &d : downs) h = d(h, emb, skips);
    return h;
}

UNetImpl::UNetImpl(const UNetConfig &c) : cfg(c) {
    enc.build(*this, c, c.in_channels);
    const auto &boc = c.block_out_channels;
    int temb = boc[0] * 4, nb = (int)boc.size();
    up_blocks = register_module("up_blocks", torch::nn::ModuleList());
    int out = boc[nb - 1];
    for (int i = 0; i < nb; i++) {
        int prev = out;
        out = boc[nb - 1 - i];
        int in = boc[std::max(nb - 2 - i, 0)];
        ups.push_back(UpBlock(c, in, prev, out, temb, c.up_block_types[i] == "AttnUpBlock2D", i + 1 < nb));
        up_blocks->push_back(ups.back());
    }
    conv_norm_out = register_module("conv_norm_out", group_norm(c.norm_num_groups, boc[0], c.norm_eps));
    conv_out = register_module("conv_out", conv(boc[0], c.out_channels, 3, 1, 1));
}

torch::Tensor UNetImpl::forward(const torch::Tensor &x_in, const torch::Tensor &t, const Residuals *res) {
    auto x = cfg.center_input_sample ? x_in * 2 - 1 : x_in;
    auto emb = enc.embed_time(cfg, t);
    std::vector<torch::Tensor> skips;
    auto h = enc.down(x, emb, skips);
    if (res) {
        for (size_t i = 0; i < skips.size(); i++) skips[i] = skips[i] + res->skips[i];
    }
    h = enc.mid_block(h, emb);
    if (res) h = h + res->mid;
    for (auto &u : ups) h = u(h, emb, skips);
    return conv_out(silu_fresh(conv_norm_out(h)));
}

/* ---- weights ----------------------------------------------------------- */

std::string canonical_key(const std::string &key) {
    static const std::pair<const char *, const char *> legacy[] = {
        {".query.", ".to_q."}, {".key.", ".to_k."}, {".value.", ".to_v."}, {".proj_attn.", ".to_out.0."}};
    for (const auto &p : legacy) {
        auto pos = key.find(p.first);
        if (pos != std::string::npos && key.find(".attentions.") != std::string::npos)
            return key.substr(0, pos) + p.second + key.substr(pos + std::strlen(p.first));
    }
    return key;
}

static torch::Tensor tensor_from_st(const st_tensor &t) {
    std::vector<int64_t> shape(t.shape, t.shape + t.ndim);
    int64_t numel = 1;
    for (auto s : shape) numel *= s;
    auto out = torch::empty(shape, torch::kFloat32);
    float *dst = out.data_ptr<float>();
    if (t.dtype == ST_F32) {
        std::memcpy(dst, t.data, (size_t)numel * 4);
    } else {
        for (int64_t i = 0; i < numel; i++) {
            uint16_t h;
            std::memcpy(&h, t.data + i * 2, 2);
            dst[i] = t.dtype == ST_F16 ? st_f16_to_f32(h) : st_bf16_to_f32(h);
        }
    }
    return out;
}

void load_state(torch::nn::Module &module, const std::string &path, const std::string &what) {
    st_file f;
    char msg[256];
    int rc = st_open(path.c_str(), &f, msg, sizeof msg);
    if (rc != ST_OK) raise(rc == ST_EIO ? ENG_EIO : ENG_EFORMAT, "%s: %s", path.c_str(), msg);
    std::unique_ptr<st_file, void (*)(st_file *)> guard(&f, st_close);
    auto params = module.named_parameters(true);
    std::set<std::string> seen;
    torch::NoGradGuard ng;
    for (size_t i = 0; i < f.count; i++) {
        const st_tensor &t = f.tensors[i];
        std::string key = canonical_key(t.name);
        auto *p = params.find(key);
        if (!p) raise(ENG_EMISMATCH, "%s: unexpected key '%s' in %s", what.c_str(), t.name, path.c_str());
        if (!seen.insert(key).second)
            raise(ENG_EMISMATCH, "%s: key '%s' given twice in %s", what.c_str(), key.c_str(), path.c_str());
        auto src = tensor_from_st(t);
        if (src.sizes() != p->sizes()) {
            /* older files store attention projections as 1x1 convolutions */
            if (src.numel() == p->numel() && src.dim() == 4 && p->dim() == 2)
                src = src.view(p->sizes());
            else
                raise(ENG_EMISMATCH, "%s: '%s' has shape %s in the file, the model needs %s", what.c_str(), key.c_str(),
                      c10::str(src.sizes()).c_str(), c10::str(p->sizes()).c_str());
        }
        p->copy_(src);
    }
    for (const auto &kv : params) {
        if (!seen.count(kv.key()))
            raise(ENG_EMISMATCH, "%s: key '%s' is missing from %s", what.c_str(), kv.key().c_str(), path.c_str());
    }
}

void save_state(torch::nn::Module &module, const std::string &path, bool fp16,
                const std::vector<std::pair<std::string, std::string>> &metadata) {
    auto params = module.named_parameters(true);
    std::vector<std::vector<uint8_t>> bufs;
    bufs.reserve(params.size());
    std::unique_ptr<st_writer, void (*)(st_writer *)> w(st_writer_new(), st_writer_free);
    if (!w) raise(ENG_ENOMEM, "out of memory");
    for (const auto &kv : params) {
        auto t = kv.value().detach().to(torch::kCPU, torch::kFloat32).contiguous();
        std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
        int64_t n = t.numel();
        const float *src = t.data_ptr<float>();
        bufs.emplace_back((size_t)n * (fp16 ? 2 : 4));
        auto &b = bufs.back();
        if (fp16) {
            for (int64_t i = 0; i < n; i++) {
                uint16_t h = st_f32_to_f16(src[i]);
                std::memcpy(b.data() + i * 2, &h, 2);
            }
        } else {
            std::memcpy(b.data(), src, b.size());
        }
        if (st_writer_add(w.get(), kv.key().c_str(), fp16 ? ST_F16 : ST_F32, (int)shape.size(), shape.data(), b.data(),
                          b.size()) != ST_OK)
            raise(ENG_EINVAL, "cannot add tensor '%s'", kv.key().c_str());
    }
    for (const auto &m : metadata)
        if (st_writer_set_metadata(w.get(), m.first.c_str(), m.second.c_str()) != ST_OK)
            raise(ENG_EINVAL, "cannot set metadata '%s'", m.first.c_str());
    char msg[256];
    if (st_writer_save(w.get(), path.c_str(), msg, sizeof msg) != ST_OK) raise(ENG_EIO, "%s: %s", path.c_str(), msg);
}

std::string params_hash(torch::nn::Module &module) {
    /* FNV-1a over names, then a multiply-xorshift mix over 64-bit words */
    uint64_t h = 1469598103934665603ull;
    for (const auto &kv : module.named_parameters(true)) {
        for (char ch : kv.key()) h = (h ^ (uint8_t)ch) * 1099511628211ull;
        auto t = kv.value().detach().to(torch::kCPU, torch::kFloat32).contiguous();
        const uint32_t *w = reinterpret_cast<const uint32_t *>(t.data_ptr<float>());
        for (int64_t i = 0; i < t.numel(); i++) {
            h ^= w[i];
            h *= 0x9E3779B97F4A7C15ull;
            h ^= h >> 29;
        }
    }
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
    return buf;
}

int64_t count_params(torch::nn::Module &module) {
    int64_t n = 0;
    for (const auto &p : module.parameters(true)) n += p.numel();
    return n;
}

} // namespace eng
