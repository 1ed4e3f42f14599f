// CUDA kernels for convkit::pool2d and convkit::pool2d_backward with torch's semantics for every option (the
// same formulas as ATen's CUDA kernels: max windows start at the first tap inside the input, ties keep the first
// maximum in row-major window order, a NaN wins and the last NaN's index is kept; avg divisors with
// count_include_pad / ceil_mode / divisor_override as torch; float16/bfloat16 compared and summed in float32).
// Pooling is memory-bound: each kernel reads its input once (overlapping windows hit L1/L2) and writes its output
// once, one thread per output element (or per 4 consecutive outputs of a row / per 16 bytes of channels), in
// grid-stride loops. Backward is a gather: each grad_input element is written once by one thread, the sum over
// the windows that can contain it in ascending (oh, ow) order, so there are no atomics and results are
// deterministic (bitwise equal to torch's CUDA gather kernels for max, which sum in the same order).
//
// Kernels (bytes moved for fp32: input 4, output 4, int64 index 8 per element):
//  * pool_fwd_nchw_kernel<V>: a thread owns V = 4 (when Wo % 4 == 0) or 1 consecutive outputs of a row: window
//    taps read through the cache, outputs (and indices) written as one V-wide store.
//  * pool_global_avg_kernel: window == plane (global average, P4): a block stages up to 256 whole planes in shared
//    memory with coalesced loads, then each thread sums one plane in row-major order.
//  * pool_fwd_nhwc_kernel<V>: channels_last; a thread owns V channels (16 bytes) of one output pixel: every tap is
//    one 16-byte load, coalesced across the warp along C.
//  * pool_bwd_nchw_kernel<V>, pool_bwd_nhwc_kernel<V>: the gathers; max compares the saved flat index h*W + w of
//    every window that can contain the element (out-of-range indices match no element: they are dropped, never
//    dereferenced); avg adds grad_output / divisor of every covering window.
#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <ATen/NumericUtils.h>
#include <torch/library.h>

#include <limits>
#include <vector>

#include "../common.h"
#include "compat.cuh"
#include "kernels.cuh"

namespace convkit {
namespace cuda {
namespace {

// Intra-plane coordinates in 32 bits (the host checks H*W and Ho*Wo < 2^31); plane offsets in 64.
struct PoolDims {
  int64_t planes, c, hw, howo, divisor;
  int h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo;
  bool is_max, count_include_pad;
};

PoolDims dims_of(const PoolGeom& g) {
  PoolDims p;
  p.planes = g.n * g.c;
  p.c = g.c;
  p.hw = g.h * g.w;
  p.howo = g.ho * g.wo;
  p.divisor = g.divisor;
  p.h = static_cast<int>(g.h);
  p.w = static_cast<int>(g.w);
  p.kh = static_cast<int>(g.kh);
  p.kw = static_cast<int>(g.kw);
  p.sh = static_cast<int>(g.sh);
  p.sw = static_cast<int>(g.sw);
  p.ph = static_cast<int>(g.ph);
  p.pw = static_cast<int>(g.pw);
  p.dh = static_cast<int>(g.dh);
  p.dw = static_cast<int>(g.dw);
  p.ho = static_cast<int>(g.ho);
  p.wo = static_cast<int>(g.wo);
  p.is_max = g.is_max;
  p.count_include_pad = g.count_include_pad;
  return p;
}

__device__ __forceinline__ int imin(int a, int b) { return a < b ? a : b; }
__device__ __forceinline__ int imax(int a, int b) { return a > b ? a : b; }

// Max window of output (oh, ow): taps [hs, he) step dh, [ws, we) step dw, starting at the first one inside.
__device__ __forceinline__ void max_window(const PoolDims& p, int oh, int ow, int& hs, int& he, int& ws, int& we) {
  hs = oh * p.sh - p.ph;
  ws = ow * p.sw - p.pw;
  he = imin(hs + (p.kh - 1) * p.dh + 1, p.h);
  we = imin(ws + (p.kw - 1) * p.dw + 1, p.w);
  if (hs < 0) hs += (-hs + p.dh - 1) / p.dh * p.dh;
  if (ws < 0) ws += (-ws + p.dw - 1) / p.dw * p.dw;
}

// Avg window of output (oh, ow) clipped to the input, and torch's divisor. Returns false for a window that lies
// entirely in the padding (its output is 0).
__device__ __forceinline__ bool avg_window(const PoolDims& p, int oh, int ow, int& hs, int& he, int& ws, int& we,
                                           int64_t& div) {
  hs = oh * p.sh - p.ph;
  ws = ow * p.sw - p.pw;
  he = imin(hs + p.kh, p.h + p.ph);
  we = imin(ws + p.kw, p.w + p.pw);
  const int64_t pool_size = int64_t(he - hs) * (we - ws);
  hs = imax(hs, 0);
  ws = imax(ws, 0);
  he = imin(he, p.h);
  we = imin(we, p.w);
  if (hs >= he || ws >= we) return false;
  div = p.divisor ? p.divisor : p.count_include_pad ? pool_size : int64_t(he - hs) * (we - ws);
  return true;
}

// Outputs whose window can contain input row i (torch's p_start / p_end): [lo, hi).
__device__ __forceinline__ void covering(int i, int pad, int extent, int stride, int nout, int& lo, int& hi) {
  lo = (i + pad < extent) ? 0 : (i + pad - extent) / stride + 1;
  hi = imin((i + pad) / stride + 1, nout);
}

template <typename Acc>
__device__ __forceinline__ Acc neg_inf() {
  return -std::numeric_limits<Acc>::infinity();
}

// ------------------------------------------------------------------------------------------------------------ NCHW
template <typename T, typename Acc, int V>
__global__ void __launch_bounds__(kThreads) pool_fwd_nchw_kernel(const T* __restrict__ x, T* __restrict__ y,
                                                                int64_t* __restrict__ idx, PoolDims p,
                                                                int64_t items) {
  const int64_t wv = p.wo / V;
  for (int64_t it = int64_t(blockIdx.x) * kThreads + threadIdx.x; it < items; it += int64_t(gridDim.x) * kThreads) {
    int64_t rest, owv, plane, oh64;
    divmod(it, wv, rest, owv);
    divmod(rest, p.ho, plane, oh64);
    const int oh = static_cast<int>(oh64);
    const T* xp = x + plane * p.hw;
    Acc out[V];
    int64_t oi[V];
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const int ow = static_cast<int>(owv) * V + v;
      int hs, he, ws, we;
      if (p.is_max) {
        max_window(p, oh, ow, hs, he, ws, we);
        Acc best = neg_inf<Acc>();
        int bi = hs * p.w + ws;
        for (int ih = hs; ih < he; ih += p.dh)
          for (int iw = ws; iw < we; iw += p.dw) {
            const Acc val = static_cast<Acc>(xp[ih * p.w + iw]);
            if (val > best || at::_isnan(val)) {
              best = val;
              bi = ih * p.w + iw;
            }
          }
        out[v] = best;
        oi[v] = bi;
      } else {
        int64_t div = 1;
        Acc sum = Acc(0);
        if (avg_window(p, oh, ow, hs, he, ws, we, div)) {
          for (int ih = hs; ih < he; ++ih)
            for (int iw = ws; iw < we; ++iw) sum += static_cast<Acc>(xp[ih * p.w + iw]);
          sum = sum / static_cast<Acc>(div);
        }
        out[v] = sum;
        oi[v] = 0;
      }
    }
    const int64_t off = plane * p.howo + int64_t(oh) * p.wo + owv * V;
    Pack<T, V> yv;
#pragma unroll
    for (int v = 0; v < V; ++v) yv.v[v] = static_cast<T>(out[v]);
    *reinterpret_cast<Pack<T, V>*>(y + off) = yv;
    if (idx) {
      Pack<int64_t, V> iv;
#pragma unroll
      for (int v = 0; v < V; ++v) iv.v[v] = oi[v];
      *reinterpret_cast<Pack<int64_t, V>*>(idx + off) = iv;
    }
  }
}

// Global average (window == plane, no padding): per_block planes staged in shared memory (coalesced loads of one
// contiguous run), then one thread per plane sums it in row-major order, as torch's kernel does.
template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads) pool_global_avg_kernel(const T* __restrict__ x, T* __restrict__ y,
                                                                  int64_t planes, int64_t hw, int64_t per_block,
                                                                  int64_t div) {
  CONVKIT_DYNAMIC_SMEM(T, sm);
  const int64_t p0 = int64_t(blockIdx.x) * per_block;
  const int64_t np = planes - p0 < per_block ? planes - p0 : per_block;
  const T* src = x + p0 * hw;
  for (int64_t e = threadIdx.x; e < np * hw; e += kThreads) sm[e] = src[e];
  __syncthreads();
  for (int64_t t = threadIdx.x; t < np; t += kThreads) {
    Acc sum = Acc(0);
    for (int64_t i = 0; i < hw; ++i) sum += static_cast<Acc>(sm[t * hw + i]);
    y[p0 + t] = static_cast<T>(sum / static_cast<Acc>(div));
  }
}

template <typename T, typename Acc, int V>
__global__ void __launch_bounds__(kThreads) pool_bwd_nchw_kernel(const T* __restrict__ gy,
                                                                const int64_t* __restrict__ idx,
                                                                T* __restrict__ gx, PoolDims p, int64_t items) {
  const int64_t wv = p.w / V;
  const int eh = p.is_max ? (p.kh - 1) * p.dh + 1 : p.kh, ew = p.is_max ? (p.kw - 1) * p.dw + 1 : p.kw;
  for (int64_t it = int64_t(blockIdx.x) * kThreads + threadIdx.x; it < items; it += int64_t(gridDim.x) * kThreads) {
    int64_t rest, iwv, plane, ih64;
    divmod(it, wv, rest, iwv);
    divmod(rest, p.h, plane, ih64);
    const int ih = static_cast<int>(ih64);
    const T* gp = gy + plane * p.howo;
    const int64_t* ip = p.is_max ? idx + plane * p.howo : nullptr;
    int oh0, oh1;
    covering(ih, p.ph, eh, p.sh, p.ho, oh0, oh1);
    Acc out[V];
#pragma unroll
    for (int v = 0; v < V; ++v) {
      const int iw = static_cast<int>(iwv) * V + v;
      int ow0, ow1;
      covering(iw, p.pw, ew, p.sw, p.wo, ow0, ow1);
      Acc acc = Acc(0);
      if (p.is_max) {
        const int64_t target = int64_t(ih) * p.w + iw;
        for (int oh = oh0; oh < oh1; ++oh)
          for (int ow = ow0; ow < ow1; ++ow) {
            const int64_t o = int64_t(oh) * p.wo + ow;
            if (ip[o] == target) acc += static_cast<Acc>(gp[o]);
          }
      } else {
        for (int oh = oh0; oh < oh1; ++oh)
          for (int ow = ow0; ow < ow1; ++ow) {
            int hs, he, ws, we;
            int64_t div;
            if (!avg_window(p, oh, ow, hs, he, ws, we, div)) continue;
            acc += static_cast<Acc>(gp[int64_t(oh) * p.wo + ow]) / static_cast<Acc>(div);
          }
      }
      out[v] = acc;
    }
    Pack<T, V> g;
#pragma unroll
    for (int v = 0; v < V; ++v) g.v[v] = static_cast<T>(out[v]);
    *reinterpret_cast<Pack<T, V>*>(gx + plane * p.hw + int64_t(ih) * p.w + iwv * V) = g;
  }
}

// ------------------------------------------------------------------------------------------------------------ NHWC
template <typename T, typename Acc, int V>
__global__ void __launch_bounds__(kThreads) pool_fwd_nhwc_kernel(const T* __restrict__ x, T* __restrict__ y,
                                                                int64_t* __restrict__ idx, PoolDims p,
                                                                int64_t items) {
  const int64_t cv = p.c / V;
  for (int64_t it = int64_t(blockIdx.x) * kThreads + threadIdx.x; it < items; it += int64_t(gridDim.x) * kThreads) {
    int64_t rest, ci, ow64, n, oh64;
    divmod(it, cv, rest, ci);
    divmod(rest, p.wo, rest, ow64);
    divmod(rest, p.ho, n, oh64);
    const int oh = static_cast<int>(oh64), ow = static_cast<int>(ow64);
    const T* xn = x + n * p.hw * p.c + ci * V;
    Acc acc[V];
    int64_t bi[V];
    int hs, he, ws, we;
    if (p.is_max) {
      max_window(p, oh, ow, hs, he, ws, we);
#pragma unroll
      for (int v = 0; v < V; ++v) {
        acc[v] = neg_inf<Acc>();
        bi[v] = int64_t(hs) * p.w + ws;
      }
      for (int ih = hs; ih < he; ih += p.dh)
        for (int iw = ws; iw < we; iw += p.dw) {
          const int64_t q = int64_t(ih) * p.w + iw;
          const Pack<T, V> pk = *reinterpret_cast<const Pack<T, V>*>(xn + q * p.c);
#pragma unroll
          for (int v = 0; v < V; ++v) {
            const Acc val = static_cast<Acc>(pk.v[v]);
            if (val > acc[v] || at::_isnan(val)) {
              acc[v] = val;
              bi[v] = q;
            }
          }
        }
    } else {
      int64_t div = 1;
#pragma unroll
      for (int v = 0; v < V; ++v) {
        acc[v] = Acc(0);
        bi[v] = 0;
      }
      if (avg_window(p, oh, ow, hs, he, ws, we, div)) {
        for (int ih = hs; ih < he; ++ih)
          for (int iw = ws; iw < we; ++iw) {
            const Pack<T, V> pk = *reinterpret_cast<const Pack<T, V>*>(xn + (int64_t(ih) * p.w + iw) * p.c);
#pragma unroll
            for (int v = 0; v < V; ++v) acc[v] += static_cast<Acc>(pk.v[v]);
          }
#pragma unroll
        for (int v = 0; v < V; ++v) acc[v] = acc[v] / static_cast<Acc>(div);
      }
    }
    const int64_t off = ((n * p.ho + oh) * p.wo + ow) * p.c + ci * V;
    Pack<T, V> yv;
#pragma unroll
    for (int v = 0; v < V; ++v) yv.v[v] = static_cast<T>(acc[v]);
    *reinterpret_cast<Pack<T, V>*>(y + off) = yv;
    if (idx) {
      Pack<int64_t, V> iv;
#pragma unroll
      for (int v = 0; v < V; ++v) iv.v[v] = bi[v];
      *reinterpret_cast<Pack<int64_t, V>*>(idx + off) = iv;
    }
  }
}

template <typename T, typename Acc, int V>
__global__ void __launch_bounds__(kThreads) pool_bwd_nhwc_kernel(const T* __restrict__ gy,
                                                                const int64_t* __restrict__ idx,
                                                                T* __restrict__ gx, PoolDims p, int64_t items) {
  const int64_t cv = p.c / V;
  const int eh = p.is_max ? (p.kh - 1) * p.dh + 1 : p.kh, ew = p.is_max ? (p.kw - 1) * p.dw + 1 : p.kw;
  for (int64_t it = int64_t(blockIdx.x) * kThreads + threadIdx.x; it < items; it += int64_t(gridDim.x) * kThreads) {
    int64_t rest, ci, iw64, n, ih64;
    divmod(it, cv, rest, ci);
    divmod(rest, p.w, rest, iw64);
    divmod(rest, p.h, n, ih64);
    const int ih = static_cast<int>(ih64), iw = static_cast<int>(iw64);
    int oh0, oh1, ow0, ow1;
    covering(ih, p.ph, eh, p.sh, p.ho, oh0, oh1);
    covering(iw, p.pw, ew, p.sw, p.wo, ow0, ow1);
    Acc acc[V];
#pragma unroll
    for (int v = 0; v < V; ++v) acc[v] = Acc(0);
    const int64_t target = int64_t(ih) * p.w + iw;
    for (int oh = oh0; oh < oh1; ++oh)
      for (int ow = ow0; ow < ow1; ++ow) {
        const int64_t off = ((n * p.ho + oh) * p.wo + ow) * p.c + ci * V;
        const Pack<T, V> g = *reinterpret_cast<const Pack<T, V>*>(gy + off);
        if (p.is_max) {
          const Pack<int64_t, V> ik = *reinterpret_cast<const Pack<int64_t, V>*>(idx + off);
#pragma unroll
          for (int v = 0; v < V; ++v)
            if (ik.v[v] == target) acc[v] += static_cast<Acc>(g.v[v]);
        } else {
          int hs, he, ws, we;
          int64_t div;
          if (!avg_window(p, oh, ow, hs, he, ws, we, div)) continue;
#pragma unroll
          for (int v = 0; v < V; ++v) acc[v] += static_cast<Acc>(g.v[v]) / static_cast<Acc>(div);
        }
      }
    Pack<T, V> out;
#pragma unroll
    for (int v = 0; v < V; ++v) out.v[v] = static_cast<T>(acc[v]);
    *reinterpret_cast<Pack<T, V>*>(gx + ((n * p.h + ih) * p.w + iw) * p.c + ci * V) = out;
  }
}

// ------------------------------------------------------------------------------------------------------------ host
inline bool is_channels_last(const at::Tensor& t) {
  return t.is_contiguous(at::MemoryFormat::ChannelsLast) && !t.is_contiguous();
}

// Channels per 16-byte access in channels_last kernels (1 when C or an address does not allow it).
template <typename T>
int nhwc_vec(int64_t c, std::initializer_list<const void*> ptrs) {
  constexpr int V = 16 / sizeof(T);
  if (c % V != 0) return 1;
  for (const void* q : ptrs)
    if (q && !aligned_to<T>(q, 16)) return 1;
  return V;
}

void check_plane_sizes(const PoolGeom& g) {
  TORCH_CHECK(g.h * g.w < (int64_t(1) << 31) && g.ho * g.wo < (int64_t(1) << 31),
              "convkit::pool2d (CUDA): planes of 2^31 elements or more are not supported, got ", g.h, "x", g.w);
}

template <typename T, typename Acc>
void forward_launch(const at::Tensor& x, at::Tensor& y, int64_t* ip, const PoolGeom& g, bool cl) {
  const PoolDims p = dims_of(g);
  const T* xp = x.const_data_ptr<T>();
  T* yp = y.mutable_data_ptr<T>();
  if (cl) {
    constexpr int VV = 16 / sizeof(T);
    const int v = nhwc_vec<T>(g.c, {xp});
    const int64_t items = g.n * g.ho * g.wo * (g.c / v);
    const dim3 grid(static_cast<unsigned>(grid_for(items)));
    if (v == VV)
      launch(pool_fwd_nhwc_kernel<T, Acc, VV>, grid, dim3(kThreads), 0, xp, yp, ip, p, items);
    else
      launch(pool_fwd_nhwc_kernel<T, Acc, 1>, grid, dim3(kThreads), 0, xp, yp, ip, p, items);
    return;
  }
  if (!g.is_max && g.ho == 1 && g.wo == 1 && g.kh == g.h && g.kw == g.w && g.ph == 0 && g.pw == 0) {
    const int64_t per_block = std::min<int64_t>(kThreads, (48 * 1024) / (p.hw * int64_t(sizeof(T))));
    if (per_block >= 32) {
      const int64_t div = g.divisor ? g.divisor : p.hw;
      launch(pool_global_avg_kernel<T, Acc>, dim3(static_cast<unsigned>(ceil_div(p.planes, per_block))),
             dim3(kThreads), size_t(per_block * p.hw * sizeof(T)), xp, yp, p.planes, p.hw, per_block, div);
      return;
    }
  }
  const int v = g.wo % 4 == 0 ? 4 : 1;
  const int64_t items = p.planes * g.ho * (g.wo / v);
  const dim3 grid(static_cast<unsigned>(grid_for(items)));
  if (v == 4)
    launch(pool_fwd_nchw_kernel<T, Acc, 4>, grid, dim3(kThreads), 0, xp, yp, ip, p, items);
  else
    launch(pool_fwd_nchw_kernel<T, Acc, 1>, grid, dim3(kThreads), 0, xp, yp, ip, p, items);
}

template <typename T, typename Acc>
void backward_launch(const at::Tensor& gy, const int64_t* ip, at::Tensor& gx, const PoolGeom& g, bool cl) {
  const PoolDims p = dims_of(g);
  const T* gyp = gy.const_data_ptr<T>();
  T* gxp = gx.mutable_data_ptr<T>();
  if (cl) {
    constexpr int VV = 16 / sizeof(T);
    const int v = nhwc_vec<T>(g.c, {gyp, ip});
    const int64_t items = g.n * g.h * g.w * (g.c / v);
    const dim3 grid(static_cast<unsigned>(grid_for(items)));
    if (v == VV)
      launch(pool_bwd_nhwc_kernel<T, Acc, VV>, grid, dim3(kThreads), 0, gyp, ip, gxp, p, items);
    else
      launch(pool_bwd_nhwc_kernel<T, Acc, 1>, grid, dim3(kThreads), 0, gyp, ip, gxp, p, items);
    return;
  }
  const int v = g.w % 4 == 0 ? 4 : 1;
  const int64_t items = p.planes * g.h * (g.w / v);
  const dim3 grid(static_cast<unsigned>(grid_for(items)));
  if (v == 4)
    launch(pool_bwd_nchw_kernel<T, Acc, 4>, grid, dim3(kThreads), 0, gyp, ip, gxp, p, items);
  else
    launch(pool_bwd_nchw_kernel<T, Acc, 1>, grid, dim3(kThreads), 0, gyp, ip, gxp, p, items);
}

}  // namespace
}  // namespace cuda

std::tuple<at::Tensor, at::Tensor> pool2d_cuda(const at::Tensor& input, c10::string_view mode, at::IntArrayRef kernel,
                                               at::IntArrayRef stride, at::IntArrayRef padding,
                                               at::IntArrayRef dilation, bool ceil_mode, bool count_include_pad,
                                               c10::optional<int64_t> divisor_override, bool return_indices) {
  using namespace cuda;
  TORCH_CHECK(on_kernel_device(input), "convkit::pool2d: input must be a CUDA tensor, got ", input.device());
  const PoolGeom g = pool_geometry(input, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
                                   divisor_override);
  check_plane_sizes(g);
  DeviceGuard device_guard(input.device());
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const bool cl = is_channels_last(input);
  const auto fmt = cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  at::Tensor y = at::empty({g.n, g.c, g.ho, g.wo}, input.options().memory_format(fmt));
  const bool with_idx = g.is_max && return_indices;
  at::Tensor idx = with_idx ? at::empty({g.n, g.c, g.ho, g.wo}, input.options().dtype(at::kLong).memory_format(fmt))
                            : at::empty({0}, input.options().dtype(at::kLong));
  if (y.numel() == 0) return {y, idx};
  const at::Tensor x = input.contiguous(fmt);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "convkit_pool2d_cuda", [&] {
    forward_launch<scalar_t, at::acc_type<scalar_t, true>>(x, y, with_idx ? idx.mutable_data_ptr<int64_t>() : nullptr,
                                                          g, cl);
  });
  return {y, idx};
}

at::Tensor pool2d_backward_cuda(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& indices,
                                c10::string_view mode, at::IntArrayRef kernel, at::IntArrayRef stride,
                                at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode,
                                bool count_include_pad, c10::optional<int64_t> divisor_override) {
  using namespace cuda;
  TORCH_CHECK(on_kernel_device(input), "convkit::pool2d_backward: input must be a CUDA tensor, got ", input.device());
  check_device("pool2d_backward", "grad_output", grad_output, input);
  const PoolGeom g = pool_geometry(input, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
                                   divisor_override);
  check_plane_sizes(g);
  check_pool2d_backward_args(grad_output, indices, input, g);  // first: it names undefined indices
  if (g.is_max) check_device("pool2d_backward", "indices", indices, input);
  DeviceGuard device_guard(input.device());
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const bool cl = is_channels_last(input);
  const auto fmt = cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  at::Tensor gx = at::empty({g.n, g.c, g.h, g.w}, input.options().memory_format(fmt));
  if (gx.numel() == 0) return gx;
  const at::Tensor gy = grad_output.contiguous(fmt);
  const at::Tensor idx = g.is_max ? indices.contiguous(fmt) : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, gy.scalar_type(), "convkit_pool2d_backward_cuda", [&] {
    backward_launch<scalar_t, at::acc_type<scalar_t, true>>(gy, g.is_max ? idx.const_data_ptr<int64_t>() : nullptr,
                                                           gx, g, cl);
  });
  return gx;
}

#ifndef CONVKIT_CUDA_EMULATE
TORCH_LIBRARY_IMPL(convkit, CUDA, m) {
  m.impl("pool2d", &pool2d_cuda);
  m.impl("pool2d_backward", &pool2d_backward_cuda);
}
#endif

}  // namespace convkit
