/*
 * model.hpp - the noise schedule and the frozen base model behind eng_model.
 */
#pragma once

#include <string>
#include <vector>

#include "engine/unet.hpp"

namespace eng {

/* The DDPM forward process of diffusers' scheduler_config.json:
 * abar_t = prod_{s<=t} (1 - beta_s), alpha_t = sqrt(abar_t),
 * sigma_t = sqrt(1 - abar_t), z_t = alpha_t x + sigma_t eps. */
struct Schedule {
    int T = 1000;
    double beta_start = 1e-4, beta_end = 0.02;
    std::string beta_schedule = "linear";
    eng_prediction prediction = ENG_PRED_EPSILON;
    std::string timestep_spacing = "leading";
    int steps_offset = 0;
    bool set_alpha_to_one = true;
    std::vector<double> abar;
    std::string json;

    static Schedule parse(const std::string &json); /* "" gives the defaults */
    /* abar_t for t in [0, T); ENG_EINTERNAL for any other t */
    double abar_at(int t) const {
        if (t < 0 || t >= T) raise(ENG_EINTERNAL, "timestep %d is outside the schedule's 0..%d", t, T - 1);
        return abar[t];
    }
    /* t < 0 is the end of sampling: alpha 1, sigma 0 */
    double alpha(int t) const { return t < 0 ? 1.0 : std::sqrt(abar_at(t)); }
    double sigma(int t) const { return t < 0 ? 0.0 : std::sqrt(1.0 - abar_at(t)); }
    /* DDIM's K timesteps, descending, per timestep_spacing */
    std::vector<int> ddim_timesteps(int K) const;
    /* abar at DDIM's previous time (final_alpha_cumprod below zero) */
    double abar_prev(int t) const { return t >= 0 ? abar_at(t) : (set_alpha_to_one ? 1.0 : abar[0]); }
    std::string to_json() const;
};

/* Per-sample schedule values as (n,1,1,1) tensors. */
torch::Tensor gather_coef(const std::vector<double> &table, const torch::Tensor &t, const torch::Device &dev);

/* From a network output to (x0, eps) under the given parameterization. */
void split_prediction(eng_prediction p, const torch::Tensor &z, const torch::Tensor &out, const torch::Tensor &alpha,
                      const torch::Tensor &sigma, torch::Tensor &x0, torch::Tensor &eps);

/* Initial noise for image i from seed + i alone, so that an image does not
 * depend on the batch it is computed in; drawn on the CPU for all devices. */
torch::Tensor seeded_noise(uint64_t seed, int n, int c, int h, int w, const torch::Device &dev);

/* (n,h,w,c) uint8 <-> (n,c,h,w) float in [-1, 1] */
torch::Tensor images_to_tensor(const uint8_t *data, int n, int h, int w, int c, const torch::Device &dev);
void tensor_to_images(const torch::Tensor &x, eng_image *out);

} // namespace eng

struct eng_model {
    eng_ctx *ctx = nullptr;
    eng::UNet unet{nullptr};
    eng::Schedule sched;
    std::string name;
    std::string hash;
    bool trained = false;
};
