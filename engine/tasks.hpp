/*
 * tasks.hpp - condition builders on tensors in [-1, 1], shared by the ABI
 * (eng_task_apply) and the adapter trainers.
 */
#pragma once

#include "engine/model.hpp"

namespace eng {

/* Raises ENG_EINVAL for parameters the task cannot take. */
void validate_task(const eng_task_params &p, int image_channels);
/* c = task(x) with fresh degradation parameters drawn from g. */
torch::Tensor build_condition(const eng_task_params &p, const torch::Tensor &x, at::Generator &g);
/* Area downsample by factor, bicubic back to full size (the sr condition). */
torch::Tensor sr_condition(const torch::Tensor &x, int factor);
torch::Tensor upsample_bicubic(const torch::Tensor &x, int64_t H, int64_t W);
/* Edge map in [-1, 1] (Sobel magnitude, or binary Canny). */
torch::Tensor edges_map(const torch::Tensor &x, bool use_canny);

} // namespace eng
