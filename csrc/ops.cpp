// Every convkit op schema, and nothing else. Kernels: cpu/*.cpp (CPU), cuda/*.cu (CUDA).
// Autograd: autograd.cpp. Fake kernels: convkit/backends/compiled.py.
#include <torch/library.h>

TORCH_LIBRARY(convkit, m) {
  // input (N, C, H, W), weight (O, C/groups, kh, kw), padding (top, bottom, left, right), zeros.
  // algo: "auto" (the kernel chooses per shape) or one algorithm forced (see parse_algo in common.h).
  m.def("corr2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[4] padding, int[2] dilation, "
        "int groups, str algo=\"auto\") -> Tensor");
  // Computes grad_input, grad_weight, grad_bias where output_mask says so; the others come back undefined (None).
  m.def("corr2d_backward(Tensor grad_output, Tensor input, Tensor weight, int[2] stride, int[4] padding, "
        "int[2] dilation, int groups, bool[3] output_mask, str algo=\"auto\") -> (Tensor, Tensor, Tensor)");
  // mode "max" | "avg"; returns (output, indices): int64 flat indices h * W + w for max, an empty tensor for avg
  // and for max with return_indices=False (inference: the indices are not written at all).
  // channels_last input gives channels_last output (and indices, and grad_input), as torch does.
  m.def("pool2d(Tensor input, str mode, int[2] kernel, int[2] stride, int[2] padding, int[2] dilation, "
        "bool ceil_mode, bool count_include_pad, int? divisor_override, bool return_indices=True) -> (Tensor, Tensor)");
  m.def("pool2d_backward(Tensor grad_output, Tensor input, Tensor indices, str mode, int[2] kernel, int[2] stride, "
        "int[2] padding, int[2] dilation, bool ceil_mode, bool count_include_pad, int? divisor_override) -> Tensor");
}
