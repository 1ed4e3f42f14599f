// CPU kernels for convkit::corr2d and convkit::corr2d_backward: direct loops, no im2col buffer.
// All three kernels own disjoint parts of their output (no atomics, no shared accumulators) and reduce in
// a fixed order, so results are bitwise identical for any torch.set_num_threads.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../common.h"

namespace convkit {
namespace {

// For kernel column j: input column offset off = j*dw - pl, and the output columns [lo, hi) whose input
// column ow*sw + off is inside the image (the rest read padding). Computed once per call: no divisions
// in the loops.
struct Tap {
  int64_t off, lo, hi;
};

std::vector<Tap> column_taps(const ConvGeom& g) {
  std::vector<Tap> taps(g.kw);
  for (int64_t j = 0; j < g.kw; ++j) {
    const int64_t off = j * g.dw - g.pl;
    const int64_t last = g.w - 1 - off;  // ow*sw <= last
    const int64_t hi = last < 0 ? 0 : std::min(g.wo, last / g.sw + 1);
    const int64_t lo = off >= 0 ? 0 : (-off + g.sw - 1) / g.sw;
    taps[j] = {off, std::min(lo, hi), hi};
  }
  return taps;
}

// 64-byte GCC vectors: one zmm register with AVX-512 (16 floats / 8 doubles); the compiler splits them
// into narrower registers on older ISAs (CONVKIT_ARCH=portable), so the code stays correct everywhere.
template <typename T>
struct Simd {
  typedef T V __attribute__((vector_size(64)));
  static constexpr int64_t L = 64 / sizeof(T);
};

template <typename T>
inline typename Simd<T>::V vload(const T* p) {
  typename Simd<T>::V v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
inline void vstore(T* p, const typename Simd<T>::V& v) {
  std::memcpy(p, &v, sizeof(v));
}

constexpr int64_t kColBytes = 256 * 1024;  // per-thread column tile: stays in L2 beside a weight panel
constexpr int64_t kKc = 256;               // rows of k per column tile: an OB x kKc weight panel stays in L1

// Forward, implicit GEMM without an im2col buffer.
// Layout: x (N, C, H, W), y (N, O, Ho*Wo) contiguous; weights packed once per call as
// wpk[group][oblock][k][OB] with k = (c, i, j) and zeros past the group's last output channel.
// A task owns a chunk of P output positions (flattened Ho*Wo, rows may wrap) of one image and group,
// for a range of output-channel blocks. For each block of kc rows of k it packs the chunk's input windows
// into a per-thread column tile cols[tile][kk][TW] (TW = 2 vectors of positions, zeros where the window
// reads padding; kc*P*sizeof(T) <= kColBytes), then for every block of OB output channels and every tile
// keeps OB x 2 vector accumulators in registers over the kc rows: 2 vector loads + OB broadcasts per 2*OB
// FMAs; between k blocks the partial sums go through y. The k order is fixed, so results do not depend
// on the thread count. Packing costs K*P copies per task: 1/Og of the FMAs.
template <typename T, int OB>
void forward_tiled(const T* x, const T* w, const T* b, T* y, const ConvGeom& g) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L, TW = 2 * L;
  const int64_t K = g.cg * g.kh * g.kw, hw = g.ho * g.wo, khw = g.kh * g.kw;
  const int64_t nob = (g.og + OB - 1) / OB;
  std::vector<T> wpk(g.groups * nob * K * OB, T(0));
  for (int64_t o = 0; o < g.o; ++o) {
    const int64_t grp = o / g.og, ol = o % g.og;
    T* dst = wpk.data() + (grp * nob + ol / OB) * K * OB + ol % OB;
    for (int64_t k = 0; k < K; ++k) dst[k * OB] = w[o * K + k];
  }
  const std::vector<Tap> taps = column_taps(g);
  const int64_t kc = std::min(K, kKc);
  const int64_t hw_tiles = (hw + TW - 1) / TW;
  int64_t p_tiles = std::min(hw_tiles, std::max<int64_t>(1, kColBytes / (kc * TW * (int64_t)sizeof(T))));
  // Enough tasks for every thread: smaller position chunks first, then split the output-channel blocks.
  const int64_t want = 2 * at::get_num_threads();
  if (g.n * g.groups * ((hw_tiles + p_tiles - 1) / p_tiles) < want)
    p_tiles = std::max<int64_t>(1, std::min(p_tiles, hw_tiles * g.n * g.groups / want));
  const int64_t P = p_tiles * TW, chunks = (hw + P - 1) / P;
  const int64_t osplit = std::min(nob, std::max<int64_t>(1, want / (g.n * g.groups * chunks)));
  const int64_t ob_per = (nob + osplit - 1) / osplit;
  at::parallel_for(0, g.n * g.groups * chunks * osplit, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> cols(kc * P);
    alignas(64) T tmp[TW];
    for (int64_t t = begin; t < end; ++t) {
      const int64_t os = t % osplit, ch = (t / osplit) % chunks, grp = (t / (osplit * chunks)) % g.groups;
      const int64_t n = t / (osplit * chunks * g.groups);
      const int64_t p0 = ch * P, np = std::min(P, hw - p0), ntiles = (np + TW - 1) / TW;
      const int64_t ob_begin = os * ob_per, ob_end = std::min(nob, ob_begin + ob_per);
      const T* xg = x + (n * g.c + grp * g.cg) * g.h * g.w;
      for (int64_t k0 = 0; k0 < K; k0 += kc) {
        const int64_t k1 = std::min(K, k0 + kc), nk = k1 - k0;
        // pack rows k0..k1 of the chunk's columns: runs of positions sharing an output row and a tile
        for (int64_t k = k0; k < k1; ++k) {
          const int64_t c = k / khw, i = (k / g.kw) % g.kh, j = k % g.kw;
          const Tap tp = taps[j];
          T* base = cols.data() + (k - k0) * TW;
          int64_t q = 0;
          while (q < np) {
            const int64_t p = p0 + q, oh = p / g.wo, ow = p % g.wo;
            const int64_t run = std::min({g.wo - ow, np - q, TW - q % TW});
            T* dst = base + (q / TW) * nk * TW + q % TW;
            const int64_t ih = oh * g.sh - g.pt + i * g.dh;
            if (ih < 0 || ih >= g.h) {
              std::fill(dst, dst + run, T(0));
            } else {
              const T* src = xg + (c * g.h + ih) * g.w + tp.off;
              const int64_t a = std::min(std::max(tp.lo, ow), ow + run);
              const int64_t e = std::max(std::min(tp.hi, ow + run), a);
              std::fill(dst, dst + (a - ow), T(0));
              if (g.sw == 1)
                std::memcpy(dst + (a - ow), src + a, (e - a) * sizeof(T));
              else
                for (int64_t v = a; v < e; ++v) dst[v - ow] = src[v * g.sw];
              std::fill(dst + (e - ow), dst + run, T(0));
            }
            q += run;
          }
          if (np % TW) {
            T* dst = base + (np / TW) * nk * TW;
            std::fill(dst + np % TW, dst + TW, T(0));
          }
        }
        for (int64_t ob = ob_begin; ob < ob_end; ++ob) {
          const int64_t o0 = grp * g.og + ob * OB, nvalid = std::min<int64_t>(OB, grp * g.og + g.og - o0);
          const T* wk = wpk.data() + ((grp * nob + ob) * K + k0) * OB;
          for (int64_t tile = 0; tile < ntiles; ++tile) {
            const int64_t q0 = tile * TW, cnt = std::min(TW, np - q0);
            V acc[OB][2];
            for (int r = 0; r < OB; ++r) {
              if (k0 > 0 && r < nvalid) {  // continue the partial sums of the previous k block
                const T* src = y + (n * g.o + o0 + r) * hw + p0 + q0;
                if (cnt < TW) {
                  std::copy(src, src + cnt, tmp);
                  src = tmp;
                }
                acc[r][0] = vload(src);
                acc[r][1] = vload(src + L);
              } else {
                const T init = (b && r < nvalid) ? b[o0 + r] : T(0);
                acc[r][0] = V{} + init;
                acc[r][1] = V{} + init;
              }
            }
            const T* __restrict__ cp = cols.data() + tile * nk * TW;
            const T* __restrict__ wp = wk;
            for (int64_t k = 0; k < nk; ++k, cp += TW, wp += OB) {
              const V b0 = vload(cp), b1 = vload(cp + L);
#pragma GCC unroll 8
              for (int r = 0; r < OB; ++r) {
                acc[r][0] += wp[r] * b0;
                acc[r][1] += wp[r] * b1;
              }
            }
            for (int64_t r = 0; r < nvalid; ++r) {
              T* out = y + (n * g.o + o0 + r) * hw + p0 + q0;
              if (cnt == TW) {
                vstore(out, acc[r][0]);
                vstore(out + L, acc[r][1]);
              } else {
                vstore(tmp, acc[r][0]);
                vstore(tmp + L, acc[r][1]);
                std::copy(tmp, tmp + cnt, out);
              }
            }
          }
        }
      }
    }
  });
}

template <typename T>
void forward_kernel(const T* x, const T* w, const T* b, T* y, const ConvGeom& g) {
  if (g.og >= 6)
    forward_tiled<T, 8>(x, w, b, y, g);
  else if (g.og >= 3)
    forward_tiled<T, 4>(x, w, b, y, g);
  else
    forward_tiled<T, 1>(x, w, b, y, g);
}

// grad_input. A task owns one input plane gx[n, c] (zeroed first) and scatters into it, for each output
// channel o of c's group, output row oh and kernel tap (i, j) in that order:
// gx[ih, ow*sw + j*dw - pl] += w[o, c, i, j] * gy[n, o, oh, ow]  (contiguous when sw == 1).
// FLOPs equal the forward's; gy is read once per input channel of the group.
template <typename T>
void grad_input_kernel(const T* gy, const T* w, T* gx, const ConvGeom& g) {
  const std::vector<Tap> taps = column_taps(g);
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
              const int64_t off = taps[j].off, lo = taps[j].lo, hi = taps[j].hi;
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
  const std::vector<Tap> taps = column_taps(g);
  const int64_t tasks = g.o * g.cg;
  const int64_t ntaps = g.kh * g.kw;
  const int64_t task_flops = 2 * g.n * g.ho * g.wo * ntaps;
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(task_flops, 1));
  at::parallel_for(0, tasks, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> lanes(ntaps * g.wo);
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
              const int64_t off = taps[j].off, lo = taps[j].lo, hi = taps[j].hi;
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
      T* out = gw + t * ntaps;
      for (int64_t k = 0; k < ntaps; ++k) {
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
      const int64_t eh = g.dh * (g.kh - 1) + 1, ew = g.dw * (g.kw - 1) + 1;
      if (gx.numel() == 0) {
      } else if (g.sh == 1 && g.sw == 1 && g.pt < eh && g.pb < eh && g.pl < ew && g.pr < ew) {
        // Stride 1: grad_input is the forward problem on grad_output with the kernel flipped and
        // transposed per group and padding eff-1-p, so it runs on the fast forward kernel.
        const at::Tensor w2 = w.view({g.groups, g.og, g.cg, g.kh, g.kw}).transpose(1, 2).flip({3, 4})
                                  .reshape({g.c, g.og, g.kh, g.kw}).contiguous();
        const ConvGeom g2 = conv_geometry(gy, w2, c10::nullopt, {1, 1},
                                          {eh - 1 - g.pt, eh - 1 - g.pb, ew - 1 - g.pl, ew - 1 - g.pr},
                                          {g.dh, g.dw}, g.groups);
        forward_kernel<scalar_t>(gy.const_data_ptr<scalar_t>(), w2.const_data_ptr<scalar_t>(), nullptr,
                                 gx.mutable_data_ptr<scalar_t>(), g2);
      } else {
        grad_input_kernel<scalar_t>(gy.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
                                    gx.mutable_data_ptr<scalar_t>(), g);
      }
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
