// The CPU kernels' entry points, as registered with the dispatcher (TORCH_LIBRARY_IMPL in corr2d.cpp and
// pool2d.cpp). module.cpp also calls the forward ones directly for eager inference calls (see there).
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <tuple>

namespace convkit {

at::Tensor corr2d_cpu(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                      at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);

std::tuple<at::Tensor, at::Tensor, at::Tensor> corr2d_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask);

std::tuple<at::Tensor, at::Tensor> pool2d_cpu(const at::Tensor& input, c10::string_view mode, at::IntArrayRef kernel,
                                              at::IntArrayRef stride, at::IntArrayRef padding,
                                              at::IntArrayRef dilation, bool ceil_mode, bool count_include_pad,
                                              c10::optional<int64_t> divisor_override, bool return_indices);

// pool2d's output alone (no indices tensor at all): the eager inference entry point.
at::Tensor pool2d_values_cpu(const at::Tensor& input, c10::string_view mode, at::IntArrayRef kernel,
                             at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                             bool ceil_mode, bool count_include_pad, c10::optional<int64_t> divisor_override);

at::Tensor pool2d_backward_cpu(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& indices,
                               c10::string_view mode, at::IntArrayRef kernel, at::IntArrayRef stride,
                               at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode,
                               bool count_include_pad, c10::optional<int64_t> divisor_override);

}  // namespace convkit
