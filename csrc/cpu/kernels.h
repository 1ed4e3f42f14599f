// The CPU kernels' entry points, as registered with the dispatcher (TORCH_LIBRARY_IMPL in corr2d.cpp and
// pool2d.cpp). module.cpp also calls the forward ones directly for eager inference calls (see there).
#pragma once
#include <ATen/ATen.h>

#include <array>
#include <string>
#include <utility>
#include <vector>
#include <tuple>

namespace convkit {

at::Tensor corr2d_cpu(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                      at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                      c10::string_view algo = "auto");

std::tuple<at::Tensor, at::Tensor, at::Tensor> corr2d_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask,
    c10::string_view algo = "auto");

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

// Direct convolution with output channels as vector lanes (direct_oc.cpp): column stride 1 or 2, not 1x1; x, w
// (and b if defined) contiguous in the compute dtype, y preallocated. Workspace: packed weights and slabs.
struct ConvGeom;
bool oc_lanes_applies(const ConvGeom& g);
void oc_lanes_forward_cpu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const ConvGeom& g,
                          at::Tensor& y);
// The same on raw pointers (float, double; b may be null). flipped: g is grad_input's transposed problem
// (transposed_geometry) and w the original layer's weights, flipped and transposed while they are packed.
template <typename T>
void oc_lanes_forward(const T* x, const T* w, const T* b, T* y, const ConvGeom& g, bool flipped);
int64_t oc_lanes_workspace(const ConvGeom& g, int64_t itemsize);
// grad_weight with output channels as lanes (any stride, dilation, padding, groups; make_plan uses it with column
// stride 1); gw (O, Cg, kh, kw) written whole.
template <typename T>
void oc_lanes_grad_weight(const T* x, const T* gy, T* gw, const ConvGeom& g);
int64_t oc_lanes_grad_weight_workspace(const ConvGeom& g, int64_t itemsize);
// grad_weight with the output channels (at most one vector of `lanes` per group) as lanes and (kernel column,
// input channel) pairs as the tile (direct_oc.cpp; any stride, padding, groups, kernel-row dilation; column
// dilation 1); gw (O, Cg, kh, kw) written whole.
bool oc_cols_grad_weight_applies(const ConvGeom& g, int64_t lanes);
template <typename T>
void oc_cols_grad_weight(const T* x, const T* gy, T* gw, const ConvGeom& g);
int64_t oc_cols_grad_weight_workspace(const ConvGeom& g, int64_t itemsize);

// grad_input with (kernel column, input channel) pairs as the lanes (direct_oc.cpp; stride 1, at most two vectors
// of pairs per group; any padding, dilation, groups): the original layer's geometry and weights; gx written whole.
bool oc_cols_grad_input_applies(const ConvGeom& g, int64_t lanes);
template <typename T>
void oc_cols_grad_input(const T* gy, const T* w, T* gx, const ConvGeom& g);
int64_t oc_cols_grad_input_workspace(const ConvGeom& g, int64_t itemsize);

// Winograd F(4x4, 3x3) (winograd.cpp): 3x3, stride 1, any padding, dilation and groups. x, w (and b if
// defined) contiguous in the compute dtype; y preallocated (N, O, Ho, Wo).
bool winograd_applies(const ConvGeom& g);
bool winograd_preferred(const ConvGeom& g);  // where "auto" chooses it (forward, grad_input)
bool winograd_preferred_grad_weight(const ConvGeom& g);
int64_t winograd_tiles_per_image(const ConvGeom& g);  // 4x4 tiles per image, over the phases with outputs
// Images per Winograd chunk (V and M of one chunk; img_bytes of both per image, per_image tiles; the forward's
// own products, or grad_weight's BLAS products).
int64_t winograd_images_per_chunk(int64_t n, int64_t img_bytes, int64_t per_image, bool forward);
void winograd_forward_cpu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const ConvGeom& g,
                          at::Tensor& y);
// grad_input for stride 1 as a forward problem: dY (channels O, Ho x Wo) correlated with the flipped,
// transposed weights, padded by d (k - 1) - p, gives dX (C, H x W). Valid where every p <= d (k - 1).
ConvGeom transposed_geometry(const ConvGeom& g);
// Workspace of one call in bytes: the transformed weights and V, M (Z) of the images in flight (forward: one
// per thread or one chunk; grad_weight: one chunk).
int64_t winograd_workspace_bytes(const ConvGeom& g, int64_t itemsize, bool forward);
void winograd_grad_input_cpu(const at::Tensor& gy, const at::Tensor& w, at::Tensor& gx, const ConvGeom& g);
// grad_weight of a 3x3 stride-1 layer: G^T (sum over tiles of (A dY A^T) . (B^T x B)) G. gw preallocated.
void winograd_grad_weight_cpu(const at::Tensor& x, const at::Tensor& gy, at::Tensor& gw, const ConvGeom& g);

// Stride 2 with a kernel 5 to 8 wide, dilation 1, groups 1, any height and padding (winograd_s2.cpp): direct along
// rows, Winograd F(4, 4) along columns, over the stride phases; forward only. Arguments as winograd_forward_cpu.
bool winograd_s2_applies(const ConvGeom& g);
bool winograd_s2_preferred(const ConvGeom& g);  // where "auto" chooses it (fp32)
void winograd_s2_forward_cpu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const ConvGeom& g,
                             at::Tensor& y);
int64_t winograd_s2_workspace_bytes(const ConvGeom& g, int64_t itemsize);

// The CPU algorithm of forward, grad_input and grad_weight for this call and each one's workspace in bytes
// (approximate upper bounds), for convkit.explain; throws as corr2d does for an inapplicable algo.
std::vector<std::pair<std::string, int64_t>> corr2d_plan_cpu(const ConvGeom& g, c10::string_view algo,
                                                             int64_t itemsize);

// fp32 GFLOP/s of register-only vector FMA chains on every thread (peak.cpp): the benchmarks' FMA peak, and
// how many distinct pool threads ran chains (the figure counts get_num_threads() of them).
struct FmaPeak {
  double gflops;
  int threads_ran;
};
FmaPeak fma_peak_gflops(int64_t iters);

// ATen's BLAS (MKL in the torch wheels) against that peak (peak.cpp). share: sgemm GFLOP/s over the FMA
// probe's, at the current thread count (< 0 until measured); preferred: "auto" takes its BLAS-based paths
// (the column-block, per-image and pointwise products, Winograd's 36 products) only where share >=
// kBlasMinShare, else convkit's own kernels (make_plan). Measured once per process, the first time a plan
// depends on it (measure=false only reads), unless CONVKIT_BLAS=prefer|avoid or set_blas_preference decides.
// Between the two machines measured: 0.42 (Zen 5, full-rate AVX-512; MKL runs AVX2 on AMD) and 0.68
// (sessions 15-16: AVX-512 at the AVX2 rate), where the rules for each were tuned.
constexpr double kBlasMinShare = 0.55;
struct BlasRate {
  double share;
  bool preferred;
  const char* source;  // "measured", "not measured", "prefer" or "avoid" (the override)
};
BlasRate blas_rate(bool measure = true);
void set_blas_preference(int preference);  // -1: measure; 0: avoid; 1: prefer

}  // namespace convkit
