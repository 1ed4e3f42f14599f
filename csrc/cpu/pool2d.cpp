// CPU kernels for convkit::pool2d and convkit::pool2d_backward, with torch's semantics for every option.
// Layout: NCHW contiguous (the op makes its input so). A task owns whole planes (n, c) of the output and,
// in backward, of grad_input, so there are no atomics and results do not depend on the thread count.
// Bytes: input read once per overlapping window (cached), output (+ int64 indices for max) written once.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "../common.h"

namespace convkit {
namespace {

// Runs fn(plane) for every (n, c) plane in parallel; a task owns whole planes, never shares one.
template <typename Fn>
void for_each_plane(const PoolGeom& g, const Fn& fn) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(g.ho * g.wo * g.kh * g.kw, 1));
  at::parallel_for(0, g.n * g.c, grain, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) fn(p);
  });
}

// The avg window of output (oh, ow): clipped bounds and torch's divisor.
struct AvgWindow {
  int64_t h0, h1, w0, w1, div;
};

inline AvgWindow avg_window(const PoolGeom& g, int64_t oh, int64_t ow) {
  int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  int64_t h1 = std::min(h0 + g.kh, g.h + g.ph), w1 = std::min(w0 + g.kw, g.w + g.pw);
  const int64_t pool_size = (h1 - h0) * (w1 - w0);  // counts padding, not ceil_mode's overhang
  h0 = std::max<int64_t>(h0, 0);
  w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, g.h);
  w1 = std::min(w1, g.w);
  const int64_t div = g.divisor ? g.divisor : g.count_include_pad ? pool_size : (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, div};
}

// Max: first element of the window wins ties; NaN propagates (the last NaN's index), as torch's CPU kernel.
template <typename T>
void max_forward(const T* x, T* y, int64_t* idx, const PoolGeom& g) {
  for_each_plane(g, [&](int64_t p) {
    const T* xp = x + p * g.h * g.w;
    T* yp = y + p * g.ho * g.wo;
    int64_t* ip = idx + p * g.ho * g.wo;
    for (int64_t oh = 0; oh < g.ho; ++oh) {
      int64_t h0 = oh * g.sh - g.ph;
      const int64_t h1 = std::min(h0 + (g.kh - 1) * g.dh + 1, g.h);
      while (h0 < 0) h0 += g.dh;
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        int64_t w0 = ow * g.sw - g.pw;
        const int64_t w1 = std::min(w0 + (g.kw - 1) * g.dw + 1, g.w);
        while (w0 < 0) w0 += g.dw;
        int64_t best_i = h0 * g.w + w0;
        T best = -std::numeric_limits<T>::infinity();
        for (int64_t ih = h0; ih < h1; ih += g.dh)
          for (int64_t iw = w0; iw < w1; iw += g.dw) {
            const T v = xp[ih * g.w + iw];
            if (v > best || std::isnan(v)) {
              best = v;
              best_i = ih * g.w + iw;
            }
          }
        yp[oh * g.wo + ow] = best;
        ip[oh * g.wo + ow] = best_i;
      }
    }
  });
}

template <typename T>
void avg_forward(const T* x, T* y, const PoolGeom& g) {
  for_each_plane(g, [&](int64_t p) {
    const T* xp = x + p * g.h * g.w;
    T* yp = y + p * g.ho * g.wo;
    for (int64_t oh = 0; oh < g.ho; ++oh)
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        const AvgWindow a = avg_window(g, oh, ow);
        T s = 0;
        for (int64_t ih = a.h0; ih < a.h1; ++ih)
          for (int64_t iw = a.w0; iw < a.w1; ++iw) s += xp[ih * g.w + iw];
        yp[oh * g.wo + ow] = (a.h0 >= a.h1 || a.w0 >= a.w1) ? T(0) : s / static_cast<T>(a.div);
      }
  });
}

template <typename T>
void max_backward(const T* gy, const int64_t* idx, T* gx, const PoolGeom& g) {
  const int64_t plane = g.h * g.w;
  for_each_plane(g, [&](int64_t p) {
    T* gp = gx + p * plane;
    std::fill(gp, gp + plane, T(0));
    const T* gyp = gy + p * g.ho * g.wo;
    const int64_t* ip = idx + p * g.ho * g.wo;
    for (int64_t k = 0; k < g.ho * g.wo; ++k) {
      const int64_t i = ip[k];
      TORCH_CHECK(i >= 0 && i < plane, "convkit::pool2d_backward: index ", i, " out of range for a ", g.h, "x",
                  g.w, " plane");
      gp[i] += gyp[k];
    }
  });
}

template <typename T>
void avg_backward(const T* gy, T* gx, const PoolGeom& g) {
  const int64_t plane = g.h * g.w;
  for_each_plane(g, [&](int64_t p) {
    T* gp = gx + p * plane;
    std::fill(gp, gp + plane, T(0));
    const T* gyp = gy + p * g.ho * g.wo;
    for (int64_t oh = 0; oh < g.ho; ++oh)
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        const AvgWindow a = avg_window(g, oh, ow);
        const T v = gyp[oh * g.wo + ow] / static_cast<T>(a.div);
        for (int64_t ih = a.h0; ih < a.h1; ++ih)
          for (int64_t iw = a.w0; iw < a.w1; ++iw) gp[ih * g.w + iw] += v;
      }
  });
}

std::tuple<at::Tensor, at::Tensor> pool2d_cpu(const at::Tensor& input, c10::string_view mode, at::IntArrayRef kernel,
                                              at::IntArrayRef stride, at::IntArrayRef padding,
                                              at::IntArrayRef dilation, bool ceil_mode, bool count_include_pad,
                                              c10::optional<int64_t> divisor_override) {
  const PoolGeom g = pool_geometry(input, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
                                   divisor_override);
  const auto ct = compute_type(input.scalar_type());
  const at::Tensor x = input.to(ct).contiguous();
  at::Tensor y = at::empty({g.n, g.c, g.ho, g.wo}, x.options());
  at::Tensor idx = at::empty(g.is_max ? at::IntArrayRef{g.n, g.c, g.ho, g.wo} : at::IntArrayRef{0},
                             x.options().dtype(at::kLong));
  if (y.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES(ct, "convkit_pool2d_cpu", [&] {
      if (g.is_max)
        max_forward<scalar_t>(x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(),
                              idx.mutable_data_ptr<int64_t>(), g);
      else
        avg_forward<scalar_t>(x.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), g);
    });
  }
  return {y.to(input.scalar_type()), idx};
}

at::Tensor pool2d_backward_cpu(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& indices,
                               c10::string_view mode, at::IntArrayRef kernel, at::IntArrayRef stride,
                               at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode,
                               bool count_include_pad, c10::optional<int64_t> divisor_override) {
  const PoolGeom g = pool_geometry(input, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
                                   divisor_override);
  const std::vector<int64_t> out_shape{g.n, g.c, g.ho, g.wo};
  TORCH_CHECK(grad_output.sizes() == at::IntArrayRef(out_shape), "convkit::pool2d_backward: grad_output must have shape ",
              at::IntArrayRef(out_shape), ", got ", grad_output.sizes());
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type(),
              "convkit::pool2d_backward: grad_output must have input's dtype ", input.scalar_type());
  if (g.is_max)
    TORCH_CHECK(indices.scalar_type() == at::kLong && indices.sizes() == at::IntArrayRef(out_shape),
                "convkit::pool2d_backward: indices must be int64 of shape ", at::IntArrayRef(out_shape), ", got ",
                indices.scalar_type(), " ", indices.sizes());
  const auto ct = compute_type(input.scalar_type());
  const at::Tensor gy = grad_output.to(ct).contiguous();
  at::Tensor gx = at::empty({g.n, g.c, g.h, g.w}, gy.options());
  if (gx.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES(ct, "convkit_pool2d_backward_cpu", [&] {
      if (g.is_max) {
        const at::Tensor idx = indices.contiguous();
        max_backward<scalar_t>(gy.const_data_ptr<scalar_t>(), idx.const_data_ptr<int64_t>(),
                               gx.mutable_data_ptr<scalar_t>(), g);
      } else {
        avg_backward<scalar_t>(gy.const_data_ptr<scalar_t>(), gx.mutable_data_ptr<scalar_t>(), g);
      }
    });
  }
  return gx.to(input.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(convkit, CPU, m) {
  m.impl("pool2d", &pool2d_cpu);
  m.impl("pool2d_backward", &pool2d_backward_cpu);
}

}  // namespace convkit
