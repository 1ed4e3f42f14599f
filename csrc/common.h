// Shared by the CPU and CUDA kernels: argument checks for direct torch.ops calls (convkit.functional has
// already validated what users pass; these keep a bad direct call from reading out of bounds) and the
// output-size formulas, the C++ twin of convkit/_shapes.py.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace convkit {

inline int64_t conv_out_size(int64_t n, int64_t k, int64_t pad_total, int64_t stride, int64_t dilation) {
  const int64_t num = n + pad_total - dilation * (k - 1) - 1;
  return num < 0 ? 0 : num / stride + 1;  // num < 0: kernel larger than the padded input (conv_geometry rejects it)
}

inline int64_t pool_out_size(int64_t n, int64_t k, int64_t pad, int64_t stride, int64_t dilation, bool ceil_mode) {
  const int64_t num = n + 2 * pad - dilation * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  if (num < 0) return 0;
  int64_t out = num / stride + 1;
  if (ceil_mode && (out - 1) * stride >= n + pad) --out;  // the last window may not start in the padding
  return out;
}

// Geometry of one corr2d call, in int64 throughout: N*C*H*W and friends can exceed 2^31.
struct ConvGeom {
  int64_t n, c, h, w, o, cg, og, kh, kw, groups;
  int64_t sh, sw, pt, pb, pl, pr, dh, dw, ho, wo;
};

// The argument checks, and every message they raise, are defined once in csrc/checks.cpp and shared by the CPU
// and CUDA kernels.
ConvGeom conv_geometry(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);

// corr2d_backward's grad_output: the forward's output shape and the input's dtype.
void check_corr2d_grad_output(const at::Tensor& grad_output, const at::Tensor& input, const ConvGeom& g);

struct PoolGeom {
  int64_t n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo;
  bool ceil_mode, count_include_pad, is_max;
  int64_t divisor;  // 0: none
};

PoolGeom pool_geometry(const at::Tensor& input, c10::string_view mode, at::IntArrayRef kernel, at::IntArrayRef stride,
                       at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode, bool count_include_pad,
                       c10::optional<int64_t> divisor_override);

// pool2d_backward's grad_output (the forward's output shape, the input's dtype) and, for max, its indices.
void check_pool2d_backward_args(const at::Tensor& grad_output, const at::Tensor& indices, const at::Tensor& input,
                                const PoolGeom& g);

// corr2d's `algo` argument: "auto" lets the kernel choose per shape; the others force one algorithm (for
// benchmarking and teaching). Which of them a device implements, and for which shapes, is the device's
// kernel's business: it TORCH_CHECKs and names the algorithm and the reason when it cannot.
enum class Algo { Auto, Direct, ImplicitGemm, Im2col, Winograd };

inline Algo parse_algo(c10::string_view algo) {
  if (algo == "auto") return Algo::Auto;
  if (algo == "direct") return Algo::Direct;
  if (algo == "implicit_gemm") return Algo::ImplicitGemm;
  if (algo == "im2col") return Algo::Im2col;
  if (algo == "winograd") return Algo::Winograd;
  TORCH_CHECK(false, "convkit::corr2d: algo must be one of 'auto', 'direct', 'implicit_gemm', 'im2col', "
              "'winograd', got '", algo, "'");
}

// float16 / bfloat16 are computed in float32 (the kernels accumulate in the compute type anyway).
inline at::ScalarType compute_type(at::ScalarType t) {
  return (t == at::kHalf || t == at::kBFloat16) ? at::kFloat : t;
}

// t as the kernels read it (dtype ct, memory format fmt), without a dispatcher round trip when it already is.
inline at::Tensor as_compute(const at::Tensor& t, at::ScalarType ct,
                             at::MemoryFormat fmt = at::MemoryFormat::Contiguous) {
  return t.scalar_type() == ct && t.is_contiguous(fmt) ? t : t.to(ct).contiguous(fmt);
}

// A result back in the caller's dtype (a no-op, without a dispatcher call, when it already is).
inline at::Tensor as_dtype(const at::Tensor& t, at::ScalarType dt) { return t.scalar_type() == dt ? t : t.to(dt); }

}  // namespace convkit
