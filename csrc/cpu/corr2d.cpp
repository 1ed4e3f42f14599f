// CPU kernels for convkit::corr2d and convkit::corr2d_backward: direct loops, no im2col buffer.
// All three kernels own disjoint parts of their output (no atomics, no shared accumulators) and reduce in
// a fixed order, so results are bitwise identical for any torch.set_num_threads.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../common.h"

namespace convkit {
namespace {

constexpr int64_t kOB = 4;  // output channels per forward task: one input row load feeds 4 accumulator rows

// Output columns [lo, hi) whose input column ow*sw + off lies in [0, w).
inline void valid_cols(int64_t off, int64_t sw, int64_t w, int64_t wo, int64_t& lo, int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
  const int64_t last = w - 1 - off;  // ow*sw <= last
  hi = last < 0 ? 0 : std::min(wo, last / sw + 1);
  lo = std::min(lo, hi);
}

// Forward. Layout: x (N, C, H, W), w (O, Cg, kh, kw), y (N, O, Ho, Wo), all contiguous.
// A task owns one output row of up to kOB output channels of one image and group: acc[kOB][Wo] starts at
// the bias and gets, for each (c, i, j) in that order, acc[ob][ow] += w[o, c, i, j] * x[c, ih, ow*sw + j*dw - pl]
// over the columns that are not padding: a contiguous axpy when sw == 1, which the compiler vectorises.
// FLOPs 2*N*O*Ho*Wo*Cg*kh*kw; bytes: x and w read once per task from cache, y written once.
template <typename T>
void forward_kernel(const T* x, const T* w, const T* b, T* y, const ConvGeom& g) {
  const int64_t oblocks = (g.og + kOB - 1) / kOB;
  const int64_t tasks = g.n * g.groups * oblocks * g.ho;
  const int64_t task_flops = 2 * kOB * g.wo * g.cg * g.kh * g.kw;
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(task_flops, 1));
  at::parallel_for(0, tasks, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> acc(kOB * g.wo);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t oh = t % g.ho;
      int64_t r = t / g.ho;
      const int64_t obk = r % oblocks;
      r /= oblocks;
      const int64_t grp = r % g.groups;
      const int64_t n = r / g.groups;
      const int64_t o0 = grp * g.og + obk * kOB;
      const int64_t nob = std::min(kOB, grp * g.og + g.og - o0);
      for (int64_t ob = 0; ob < nob; ++ob)
        std::fill(acc.begin() + ob * g.wo, acc.begin() + (ob + 1) * g.wo, b ? b[o0 + ob] : T(0));
      const T* xg = x + (n * g.c + grp * g.cg) * g.h * g.w;
      for (int64_t c = 0; c < g.cg; ++c) {
        for (int64_t i = 0; i < g.kh; ++i) {
          const int64_t ih = oh * g.sh - g.pt + i * g.dh;
          if (ih < 0 || ih >= g.h) continue;
          const T* xrow = xg + (c * g.h + ih) * g.w;
          for (int64_t j = 0; j < g.kw; ++j) {
            const int64_t off = j * g.dw - g.pl;
            int64_t lo, hi;
            valid_cols(off, g.sw, g.w, g.wo, lo, hi);
            const T* wp = w + ((o0 * g.cg + c) * g.kh + i) * g.kw + j;  // w[o0, c, i, j]
            const int64_t wstep = g.cg * g.kh * g.kw;                     // to w[o0 + 1, c, i, j]
            if (g.sw == 1 && nob == kOB) {
              const T* __restrict__ xs = xrow + off;
              T* __restrict__ a0 = acc.data();
              T* __restrict__ a1 = a0 + g.wo;
              T* __restrict__ a2 = a1 + g.wo;
              T* __restrict__ a3 = a2 + g.wo;
              const T w0 = wp[0], w1 = wp[wstep], w2 = wp[2 * wstep], w3 = wp[3 * wstep];
              for (int64_t ow = lo; ow < hi; ++ow) {
                const T v = xs[ow];
                a0[ow] += w0 * v;
                a1[ow] += w1 * v;
                a2[ow] += w2 * v;
                a3[ow] += w3 * v;
              }
            } else {
              for (int64_t ob = 0; ob < nob; ++ob) {
                const T wv = wp[ob * wstep];
                T* __restrict__ a = acc.data() + ob * g.wo;
                const T* __restrict__ xs = xrow + off;
                for (int64_t ow = lo; ow < hi; ++ow) a[ow] += wv * xs[ow * g.sw];
              }
            }
          }
        }
      }
      for (int64_t ob = 0; ob < nob; ++ob)
        std::copy(acc.begin() + ob * g.wo, acc.begin() + (ob + 1) * g.wo,
                  y + ((n * g.o + o0 + ob) * g.ho + oh) * g.wo);
    }
  });
}

// grad_input. A task owns one input plane gx[n, c] (zeroed first) and scatters into it, for each output
// channel o of c's group, output row oh and kernel tap (i, j) in that order:
// gx[ih, ow*sw + j*dw - pl] += w[o, c, i, j] * gy[n, o, oh, ow]  (contiguous when sw == 1).
// FLOPs equal the forward's; gy is read once per input channel of the group.
template <typename T>
void grad_input_kernel(const T* gy, const T* w, T* gx, const ConvGeom& g) {
  const int64_t tasks = g.n * g.c;
  const int64_t task_flops = 2 * g.og * g.ho * g.wo * g.kh * g.kw;
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(task_flops, 1));
  at::parallel_for(0, tasks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / g.c, cin = t % g.c, grp = cin / g.cg, c = cin % g.cg;
      T* plane = gx + t * g.h * g.w;
      std::fill(plane, plane + g.h * g.w, T(0));
      for (int64_t o = grp * g.og; o < (grp + 1) * g.og; ++o) {
        const T* gyo = gy + (n * g.o + o) * g.ho * g.wo;
        const T* wo_ = w + (o * g.cg + c) * g.kh * g.kw;
        for (int64_t oh = 0; oh < g.ho; ++oh) {
          const T* __restrict__ gyr = gyo + oh * g.wo;
          for (int64_t i = 0; i < g.kh; ++i) {
            const int64_t ih = oh * g.sh - g.pt + i * g.dh;
            if (ih < 0 || ih >= g.h) continue;
            for (int64_t j = 0; j < g.kw; ++j) {
              const int64_t off = j * g.dw - g.pl;
              int64_t lo, hi;
              valid_cols(off, g.sw, g.w, g.wo, lo, hi);
              const T wv = wo_[i * g.kw + j];
              T* __restrict__ dst = plane + ih * g.w + off;
              if (g.sw == 1) {
                for (int64_t ow = lo; ow < hi; ++ow) dst[ow] += wv * gyr[ow];
              } else {
                for (int64_t ow = lo; ow < hi; ++ow) dst[ow * g.sw] += wv * gyr[ow];
              }
            }
          }
        }
      }
    }
  });
}

// grad_weight. A task owns gw[o, c, :, :] and reduces over n, oh and ow. Per tap (i, j) it keeps Wo
// partial sums (lanes[i, j, ow] += gy[n, o, oh, ow] * x[n, cin, ih, ow*sw + j*dw - pl], vectorisable) and
// adds the lanes in order at the end: a fixed reduction order without -ffast-math.
template <typename T>
void grad_weight_kernel(const T* x, const T* gy, T* gw, const ConvGeom& g) {
  const int64_t tasks = g.o * g.cg;
  const int64_t taps = g.kh * g.kw;
  const int64_t task_flops = 2 * g.n * g.ho * g.wo * taps;
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(task_flops, 1));
  at::parallel_for(0, tasks, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> lanes(taps * g.wo);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t o = t / g.cg, c = t % g.cg, grp = o / g.og, cin = grp * g.cg + c;
      std::fill(lanes.begin(), lanes.end(), T(0));
      for (int64_t n = 0; n < g.n; ++n) {
        const T* xp = x + (n * g.c + cin) * g.h * g.w;
        const T* gyo = gy + (n * g.o + o) * g.ho * g.wo;
        for (int64_t oh = 0; oh < g.ho; ++oh) {
          const T* __restrict__ gyr = gyo + oh * g.wo;
          for (int64_t i = 0; i < g.kh; ++i) {
            const int64_t ih = oh * g.sh - g.pt + i * g.dh;
            if (ih < 0 || ih >= g.h) continue;
            for (int64_t j = 0; j < g.kw; ++j) {
              const int64_t off = j * g.dw - g.pl;
              int64_t lo, hi;
              valid_cols(off, g.sw, g.w, g.wo, lo, hi);
              const T* __restrict__ xs = xp + ih * g.w + off;
              T* __restrict__ l = lanes.data() + (i * g.kw + j) * g.wo;
              if (g.sw == 1) {
                for (int64_t ow = lo; ow < hi; ++ow) l[ow] += gyr[ow] * xs[ow];
              } else {
                for (int64_t ow = lo; ow < hi; ++ow) l[ow] += gyr[ow] * xs[ow * g.sw];
              }
            }
          }
        }
      }
      T* out = gw + t * taps;
      for (int64_t k = 0; k < taps; ++k) {
        T s = 0;
        for (int64_t ow = 0; ow < g.wo; ++ow) s += lanes[k * g.wo + ow];
        out[k] = s;
      }
    }
  });
}

// grad_bias[o] = sum over n, oh, ow of gy, with Wo lanes per task as in grad_weight.
template <typename T>
void grad_bias_kernel(const T* gy, T* gb, const ConvGeom& g) {
  at::parallel_for(0, g.o, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> lanes(g.wo);
    for (int64_t o = begin; o < end; ++o) {
      std::fill(lanes.begin(), lanes.end(), T(0));
      for (int64_t n = 0; n < g.n; ++n)
        for (int64_t oh = 0; oh < g.ho; ++oh) {
          const T* __restrict__ r = gy + ((n * g.o + o) * g.ho + oh) * g.wo;
          for (int64_t ow = 0; ow < g.wo; ++ow) lanes[ow] += r[ow];
        }
      T s = 0;
      for (int64_t ow = 0; ow < g.wo; ++ow) s += lanes[ow];
      gb[o] = s;
    }
  });
}

at::Tensor corr2d_cpu(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                      at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const ConvGeom g = conv_geometry(input, weight, bias, stride, padding, dilation, groups);
  const auto ct = compute_type(input.scalar_type());
  const at::Tensor x = input.to(ct).contiguous(), w = weight.to(ct).contiguous();
  const bool has_bias = bias.has_value() && bias->defined();
  const at::Tensor b = has_bias ? bias->to(ct).contiguous() : at::Tensor();
  at::Tensor y = at::empty({g.n, g.o, g.ho, g.wo}, x.options());
  if (y.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES(ct, "convkit_corr2d_cpu", [&] {
      forward_kernel<scalar_t>(x.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
                               has_bias ? b.const_data_ptr<scalar_t>() : nullptr, y.mutable_data_ptr<scalar_t>(), g);
    });
  }
  return y.to(input.scalar_type());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> corr2d_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask) {
  const ConvGeom g = conv_geometry(input, weight, c10::nullopt, stride, padding, dilation, groups);
  TORCH_CHECK(grad_output.dim() == 4 && grad_output.size(0) == g.n && grad_output.size(1) == g.o &&
                  grad_output.size(2) == g.ho && grad_output.size(3) == g.wo,
              "convkit::corr2d_backward: grad_output must have shape (", g.n, ", ", g.o, ", ", g.ho, ", ", g.wo,
              "), got ", grad_output.sizes());
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type(),
              "convkit::corr2d_backward: grad_output must have input's dtype ", input.scalar_type());
  const auto ct = compute_type(input.scalar_type());
  const at::Tensor gy = grad_output.to(ct).contiguous();
  at::Tensor gx, gw, gb;
  AT_DISPATCH_FLOATING_TYPES(ct, "convkit_corr2d_backward_cpu", [&] {
    if (output_mask[0]) {
      const at::Tensor w = weight.to(ct).contiguous();
      gx = at::empty({g.n, g.c, g.h, g.w}, gy.options());
      if (gx.numel() > 0)
        grad_input_kernel<scalar_t>(gy.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
                                    gx.mutable_data_ptr<scalar_t>(), g);
    }
    if (output_mask[1]) {
      const at::Tensor x = input.to(ct).contiguous();
      gw = at::empty({g.o, g.cg, g.kh, g.kw}, gy.options());
      if (gw.numel() > 0)
        grad_weight_kernel<scalar_t>(x.const_data_ptr<scalar_t>(), gy.const_data_ptr<scalar_t>(),
                                     gw.mutable_data_ptr<scalar_t>(), g);
    }
    if (output_mask[2]) {
      gb = at::empty({g.o}, gy.options());
      if (gb.numel() > 0) grad_bias_kernel<scalar_t>(gy.const_data_ptr<scalar_t>(), gb.mutable_data_ptr<scalar_t>(), g);
    }
  });
  const auto back = [&](const at::Tensor& t) { return t.defined() ? t.to(input.scalar_type()) : t; };
  return {back(gx), back(gw), back(gb)};
}

}  // namespace

TORCH_LIBRARY_IMPL(convkit, CPU, m) {
  m.impl("corr2d", &corr2d_cpu);
  m.impl("corr2d_backward", &corr2d_backward_cpu);
}

}  // namespace convkit
