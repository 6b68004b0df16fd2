/*
 * unet.hpp - diffusers' UNet2DModel, rebuilt in libtorch with the same
 * state-dict key names, so that weights move between codid and diffusers
 * without conversion.
 *
 * The encoder half (conv_in, time embedding, down blocks, mid block) is built
 * by free functions so that the ControlNet adapter can make a trainable copy
 * of exactly the same layers.
 */
#pragma once

#include <string>
#include <vector>

#include "engine/internal.hpp"

namespace eng {

struct UNetConfig {
    int sample_size = 32;
    int in_channels = 3;
    int out_channels = 3;
    std::vector<int> block_out_channels{128, 256, 256, 256};
    std::vector<std::string> down_block_types;
    std::vector<std::string> up_block_types;
    int layers_per_block = 2;
    int attention_head_dim = 0; /* 0: null in config.json, one head per block */
    int norm_num_groups = 32;
    double norm_eps = 1e-5;
    int downsample_padding = 1;
    bool flip_sin_to_cos = true;
    double freq_shift = 0;
    bool center_input_sample = false;
    double mid_block_scale_factor = 1;
    bool add_attention = true;
    std::string json; /* the config.json text as given */

    /* Parse and validate diffusers' config.json; raises eng::Error. */
    static UNetConfig parse(const std::string &json);
    /* Skip connections the encoder produces (conv_in's output included). */
    int num_skips() const;
    /* Channels of each skip connection, in order. */
    std::vector<int> skip_channels() const;
};

/* Timestep embedding of diffusers' get_timestep_embedding (positional):
 * half = dim/2, freq_j = exp(-ln(10000) * j / (half - shift)),
 * emb = [sin(t freq), cos(t freq)], halves swapped when flip_sin_to_cos. */
torch::Tensor timestep_embedding(const torch::Tensor &t, int dim, bool flip_sin_to_cos, double freq_shift);

struct ResnetBlockImpl : torch::nn::Module {
    ResnetBlockImpl(int in, int out, int temb, int groups, double eps, double scale);
    torch::Tensor forward(const torch::Tensor &x, const torch::Tensor &temb);
    torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
    torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv_shortcut{nullptr};
    torch::nn::Linear time_emb_proj{nullptr};
    double output_scale;
};
TORCH_MODULE(ResnetBlock);

/* Self-attention over the pixels of a feature map, residual. */
struct AttentionImpl : torch::nn::Module {
    AttentionImpl(int channels, int head_dim, int groups, double eps, double scale);
    torch::Tensor forward(const torch::Tensor &x);
    torch::nn::GroupNorm group_norm{nullptr};
    torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
    torch::nn::ModuleList to_out{nullptr};
    torch::nn::Linear out_proj{nullptr}; /* to_out[0] */
    int heads;
    double output_scale;
};
TORCH_MODULE(Attention);

struct DownBlockImpl : torch::nn::Module {
    DownBlockImpl(const UNetConfig &c, int index, int in, int out, int temb, bool attn, bool downsample);
    /* appends each resnet (and downsampler) output to skips */
    torch::Tensor forward(torch::Tensor h, const torch::Tensor &temb, std::vector<torch::Tensor> &skips);
    torch::nn::ModuleList resnets{nullptr}, attentions{nullptr}, downsamplers{nullptr};
    std::vector<ResnetBlock> res;
    std::vector<Attention> att;
    torch::nn::Conv2d down{nullptr};
    int pad_zero = 0; /* downsample_padding 0: pad right/bottom by one first */
};
TORCH_MODULE(DownBlock);

struct MidBlockImpl : torch::nn::Module {
    MidBlockImpl(const UNetConfig &c, int ch, int temb);
    torch::Tensor forward(torch::Tensor h, const torch::Tensor &temb);
    torch::nn::ModuleList resnets{nullptr}, attentions{nullptr};
    std::vector<ResnetBlock> res;
    std::vector<Attention> att;
};
TORCH_MODULE(MidBlock);

struct UpBlockImpl : torch::nn::Module {
    UpBlockImpl(const UNetConfig &c, int in, int prev, int out, int temb, bool attn, bool upsample);
    /* consumes skips from the back */
    torch::Tensor forward(torch::Tensor h, const torch::Tensor &temb, std::vector<torch::Tensor> &skips);
    torch::nn::ModuleList resnets{nullptr}, attentions{nullptr}, upsamplers{nullptr};
    std::vector<ResnetBlock> res;
    std::vector<Attention> att;
    torch::nn::Conv2d up{nullptr};
};
TORCH_MODULE(UpBlock);

struct TimeEmbeddingImpl : torch::nn::Module {
    TimeEmbeddingImpl(int in, int out);
    torch::Tensor forward(const torch::Tensor &t);
    torch::nn::Linear linear_1{nullptr}, linear_2{nullptr};
};
TORCH_MODULE(TimeEmbedding);

/* The encoder half, registered directly on a parent module so that key
 * names stay flat (conv_in.weight, down_blocks.0..., mid_block...). */
struct Encoder {
    torch::nn::Conv2d conv_in{nullptr};
    TimeEmbedding time_embedding{nullptr};
    torch::nn::ModuleList down_blocks{nullptr};
    std::vector<DownBlock> downs;
    MidBlock mid_block{nullptr};

    void build(torch::nn::Module &parent, const UNetConfig &c, int in_channels);
    torch::Tensor embed_time(const UNetConfig &c, const torch::Tensor &t);
    /* runs conv_in + down blocks, filling skips; returns the down output
     * (before the mid block) */
    torch::Tensor down(const torch::Tensor &x, const torch::Tensor &emb, std::vector<torch::Tensor> &skips);
};

/* Residuals an adapter adds to the skip connections and the mid block. */
struct Residuals {
    std::vector<torch::Tensor> skips;
    torch::Tensor mid;
};

struct UNetImpl : torch::nn::Module {
    explicit UNetImpl(const UNetConfig &c);
    /* x (n, in, h, w); t (n,) float timesteps; res may be null */
    torch::Tensor forward(const torch::Tensor &x, const torch::Tensor &t, const Residuals *res = nullptr);
    UNetConfig cfg;
    Encoder enc;
    torch::nn::ModuleList up_blocks{nullptr};
    std::vector<UpBlock> ups;
    torch::nn::GroupNorm conv_norm_out{nullptr};
    torch::nn::Conv2d conv_out{nullptr};
};
TORCH_MODULE(UNet);

/* Name translation for older diffusers files (query/key/value/proj_attn). */
std::string canonical_key(const std::string &key);

/* Load a safetensors state dict into module: every parameter must be present
 * with the right shape and every file key must be used. */
void load_state(torch::nn::Module &module, const std::string &path, const std::string &what);
/* Save parameters as F32 or F16, with string metadata. */
void save_state(torch::nn::Module &module, const std::string &path, bool fp16,
                const std::vector<std::pair<std::string, std::string>> &metadata);

/* 64-bit content hash of the parameters (names and float32 values). */
std::string params_hash(torch::nn::Module &module);
int64_t count_params(torch::nn::Module &module);

} // namespace eng
