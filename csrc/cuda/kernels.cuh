// The CUDA kernels' entry points, as registered with the dispatcher (TORCH_LIBRARY_IMPL(convkit, CUDA, m) in
// corr2d.cu and pool2d.cu). Same signatures as the CPU ones in ../cpu/kernels.h.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <tuple>

namespace convkit {

at::Tensor corr2d_cuda(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                       c10::string_view algo);

std::tuple<at::Tensor, at::Tensor, at::Tensor> corr2d_backward_cuda(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask,
    c10::string_view algo);

std::tuple<at::Tensor, at::Tensor> pool2d_cuda(const at::Tensor& input, c10::string_view mode, at::IntArrayRef kernel,
                                               at::IntArrayRef stride, at::IntArrayRef padding,
                                               at::IntArrayRef dilation, bool ceil_mode, bool count_include_pad,
                                               c10::optional<int64_t> divisor_override, bool return_indices);

at::Tensor pool2d_backward_cuda(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& indices,
                                c10::string_view mode, at::IntArrayRef kernel, at::IntArrayRef stride,
                                at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode,
                                bool count_include_pad, c10::optional<int64_t> divisor_override);

}  // namespace convkit
