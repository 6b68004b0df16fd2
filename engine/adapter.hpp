/*
 * adapter.hpp - per-task adapters on a frozen base UNet, and the samplers
 * that use them.
 *
 * An adapter maps (z_t, t, c) to residuals for every skip connection of the
 * base encoder and for its middle block (CODI.md, 'Notation'). Its output
 * layers start at zero, so at initialisation base + adapter == base exactly.
 */
#pragma once

#include <memory>
#include <string>

#include "engine/model.hpp"

namespace eng {

struct AdapterNet : torch::nn::Module {
    virtual Residuals residuals(const torch::Tensor &z, const torch::Tensor &t, const torch::Tensor &cond) = 0;
};

/* ControlNet: a trainable copy of the base encoder fed z plus an embedding
 * of c; zero-initialised 1x1 convolutions on every skip and the middle. */
std::shared_ptr<AdapterNet> make_controlnet(eng_model *base, int cond_channels);
/* Lite (T2I-Adapter style): a small convolutional encoder of c alone whose
 * multi-scale features, through zero-initialised 1x1 convolutions, are added
 * to the base encoder's skips. */
std::shared_ptr<AdapterNet> make_lite(eng_model *base, int cond_channels);

/* Consistency-model boundary scalings (CODI.md, 'Notation'), t in [0, T):
 * with u = 10 t / T and sigma_d = 0.5,
 * c_skip = sigma_d^2 / (u^2 + sigma_d^2), c_out = u / sqrt(u^2 + sigma_d^2). */
void boundary_scalings(const torch::Tensor &t, int T, torch::Tensor &c_skip, torch::Tensor &c_out);

/* The K sampling times of CoDi (1 <= K <= N), descending, all on the grid
 * g_k = k T / N: the top of the grid strided by ceil(N / K) where K such
 * strides fit (K = 1, 2, 4, 8, N of N = 50); else (K = 20 of 50 would run
 * below g_0) spread evenly from g_{N-1} down to g_0. ENG_EINVAL otherwise. */
std::vector<int> codi_times(int T, int N, int K);

} // namespace eng

struct eng_adapter {
    eng_model *base = nullptr;
    std::shared_ptr<eng::AdapterNet> net;
    eng_adapter_kind kind = ENG_ADAPTER_CONTROLNET;
    eng_task_params task{};
    int cond_channels = 3;
    bool distilled = false;
    int n_grid = 50;
    std::string metadata_json = "{}";
};

namespace eng {

/* One evaluation of the conditional model (adapter may be null). */
torch::Tensor model_output(eng_model *m, eng_adapter *a, const torch::Tensor &z, const torch::Tensor &t,
                           const torch::Tensor &cond);
/* f_theta(z, t, c) = c_skip z + c_out xhat (CODI.md, 'Notation'). */
torch::Tensor consistency_fn(eng_model *m, eng_adapter *a, const torch::Tensor &z, const torch::Tensor &t,
                             const torch::Tensor &cond);
/* Condition images (uint8) to a (n, c, h, w) float tensor in [-1, 1]. */
torch::Tensor adapter_condition(eng_adapter *a, const eng_image *cond, int n, int size, const torch::Device &dev);
torch::Tensor sample_codi(eng_model *m, eng_adapter *a, const eng_gen_params *p, torch::Tensor z,
                          const torch::Tensor &cond, std::vector<at::Generator> &gens);
std::unique_ptr<eng_adapter> new_adapter(eng_model *base, eng_adapter_kind kind, const eng_task_params &task,
                                         int image_channels);

} // namespace eng
