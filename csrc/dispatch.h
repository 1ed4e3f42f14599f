// The convkit ops called from C++ through the dispatcher (so autograd, Python dispatch modes and the CPU or
// CUDA kernel all apply, as for torch.ops.convkit.* from Python). Defined in autograd.cpp; module.cpp's eager
// entry points use them when autograd or a dispatch mode is involved.
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <tuple>

namespace convkit {

at::Tensor corr2d_call(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                       c10::string_view algo);

std::tuple<at::Tensor, at::Tensor> pool2d_call(const at::Tensor& x, c10::string_view mode, at::IntArrayRef kernel,
                                               at::IntArrayRef stride, at::IntArrayRef padding,
                                               at::IntArrayRef dilation, bool ceil_mode, bool count_include_pad,
                                               c10::optional<int64_t> divisor_override, bool return_indices);

}  // namespace convkit
