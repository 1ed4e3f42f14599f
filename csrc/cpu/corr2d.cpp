// CPU kernels for convkit::corr2d and convkit::corr2d_backward. Every kernel owns disjoint parts of its output
// (no atomics, no shared accumulators) and reduces each element in an order that does not depend on how the
// work is split, so results are bitwise identical for any torch.set_num_threads. make_plan (below) is the one
// place that chooses the algorithm of each direction; with algo="auto":
//   forward      3x3 stride 1 (any dilation), >= 32 channels per group both ways, >= 49 4x4 tiles per image
//                and two images' worth or >= 128 x 128 weights per group: Winograd F(4x4, 3x3) (winograd.cpp);
//                1x1 stride 1 (no padding) on planes >= 28x28 with <= 128 input channels per group or < 4
//                images x groups: the pointwise kernel, x read in place (forward_pointwise_rows);
//                else <= 32 output channels per group (<= 64 beyond 1x1) and column stride 1: direct rows
//                (forward_rows; for such 1x1 layers the pointwise kernel too), or with one input channel per
//                group (depthwise) forward_depthwise, or beyond 16 output channels per group and 4 M
//                multiply-adds (not 1x1) output channels as vector lanes (direct_oc.cpp), or with 3/4 to one
//                vector of output channels per group (fp32: 12-16; not 1x1) the same with a 1 x NP tile (L2, X2);
//                other 1x1 stride 1 with >= 4 images x groups: per-image BLAS (pointwise_forward);
//                >= 512 rows of k, >= 128 output channels per group and <= 1024 positions (R9/R11 at N=1,
//                R6 at N=1, R11 at N=8): BLAS products of packed column blocks
//                (forward_columns_blas); the same with more positions on >= 2 images x groups (R6 at N=8):
//                per-image BLAS products of per-thread column blocks (forward_images_blas);
//                column stride 2 beyond 16 output channels per group and 4 M multiply-adds (not 1x1): output
//                channels as vector lanes (direct_oc.cpp; R1, D1);
//                else implicit GEMM over packed column tiles (forward_tiled)
//   grad_input   where the forward would be Winograd: Winograd of the flipped, transposed weights; stride 1 and <= 16
//                input or <= 64 output channels per group: the rows forward of those weights (grad_input_rows,
//                forward_depthwise for depthwise; the channel-lanes kernel where oc_lanes_preferred holds for
//                the transposed problem, i.e. > 16 input channels per group, with no upper bound on them
//                (measured on G1 only) or 12-16 of them (the 1 x NP tile; X2), or with <= 32 (fp64: 16) and >= 5 (kernel column, input channel)
//                pairs per group and >= 5 output channels, those pairs as vector lanes over dY in place
//                (direct_oc.cpp oc_cols_grad_input; LeNet's L1, L2); 1x1 stride 1: the pointwise kernel of W^T where the
//                forward's rule holds for the transposed product (reduction over output channels), else
//                per-image BLAS; the forward's column-block regime (columns_blas_applies): BLAS W^T dY per
//                block of input channels + col2im (grad_input_columns_blas); else W^T dY + col2im
//                (grad_input_tiled)
//   grad_weight  3x3 stride 1 dense with >= 16 tiles and >= 1 tile per 16384 kernel weights: Winograd;
//                stride 1, 17-64 output channels per group and 5x5 or larger (or >= 2048 rows of k): output
//                channels as vector lanes over channels-last slabs (direct_oc.cpp, G1);
//                13-16 output channels per group (fp64: 7-8; "direct" too), column dilation 1, >= 5 (kernel
//                column, input channel) pairs: output channels as the lanes of one vector and those pairs
//                as the tile (direct_oc.cpp oc_cols_grad_weight; LeNet's L2);
//                <= 16 output channels per group (<= 64 with stride 1): positions as vector lanes, from flat
//                slabs for stride 1 (grad_weight_flat) or packed columns (grad_weight_lanes); 1x1 stride 1:
//                on planes >= 28x28, 6x4 channel tiles over the positions in place
//                (pointwise_grad_weight_direct, while its accumulators fit 2 MiB), else per-image BLAS; the
//                column-block regime: BLAS dY cols^T per block of k
//                (grad_weight_columns_blas); else a tiled GEMM over positions (grad_weight_tiled)
// Where ATen's BLAS runs under kBlasMinShare of the FMA peak (blas_rate, peak.cpp; Zen 5 with MKL), "auto"
// takes none of the BLAS paths above: Winograd only from 1024 tiles (dilation 1), the channel-lanes kernels on
// rows of >= 14 columns, the pointwise kernel from 4 images x groups, else forward_tiled / grad_weight_tiled,
// and grad_input as forward_tiled over dY with the flipped weights (FlippedTiled; see the notes before
// make_plan). That grad_input also replaces grad_input_tiled for stride 1 (not 1x1) wherever BLAS is fast.
// algo="direct" | "implicit_gemm" | "im2col" | "winograd" forces a family (see make_plan); "im2col" is the
// textbook column matrix + BLAS, the only path with an im2col-sized buffer, never chosen by "auto".
// Workspace per call: forward, per-task input slabs or column tiles of about kColBytes, or a column block
// of kTiledThreadColBytes per thread (forward_tiled); grad_input, one packed copy of W^T (or the flipped W;
// kept between calls by the calling thread, see workspace.h) plus per-task tiles;
// grad_weight, per-task column and accumulator tiles of about kColBytes each (flat: plus 4 partial copies
// of grad_weight, one per fixed block of images; channel lanes: one chunk of images' blocked dY, and a
// grad_weight-sized buffer of partial sums where there is more than one block; tiled: plus one packed copy of dY up to kSharedGyBytes).
// Winograd: the transformed weights (4x the weights) and one chunk's transformed input and products (<= 16
// MiB), or from 8 images one image's per thread. Column-block BLAS (<= 1024 positions): the shared column
// block (kSharedColBytes) or per-task tiles (kColBytes; grad_input's products up to kGiBlasBytes), and for
// several images one output-sized matrix (the forward's accumulator, dY packed); per
// image (forward_images_blas): one column block per thread (kImageColBytes). Pointwise kernel: the weights
// packed in blocks of 6 rows, and one tail tile per thread; its grad_weight, 24 vector accumulators per 6x4
// channel tile (the vectors at most 2 MiB in all) and 24 scalars. _C.corr2d_plan reports the choice and these sizes (convkit.explain).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <numeric>
#include <vector>

#include "../common.h"
#include "kernels.h"
#include "output_cache.h"
#include "simd.h"
#include "slab.h"
#include "workspace.h"

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

constexpr int64_t kColBytes = 256 * 1024;  // per-thread column tile: stays in L2 beside a weight panel
constexpr int64_t kL2Bytes = 1024 * 1024;  // L2 per core (Zen 4/5)
constexpr int64_t kSharedColBytes = 1 << 20;
// forward_tiled's split schedule: each thread's column block per pass over k. Its history: one 2 MiB block
// packed by all threads together gave 4 passes of 1152 rows on R11 at N=8 in place of 8 of 630, fwd 4827 ->
// 4656 us (1 MiB blocks per thread now give 2 passes of 2304 rows, the same 2 MiB at 2 threads); 128- and
// 256-row passes were 1.2-1.6x slower.
constexpr int64_t kTiledThreadColBytes = 1 << 20;
constexpr int64_t kSharedGyBytes = 32 << 20;  // grad_weight: dY packed once for all tasks up to this size
// Channels per group at or below which the direct-rows forward/grad_input and the positions-as-lanes
// grad_weight replace the packed-tile GEMMs (their register blocks cover up to 16 channels in 1-2 passes).
constexpr int64_t kFewChannels = 16;
// With stride 1, the direct gradients (grad_input_rows, grad_weight_flat) also beat the packed-tile GEMMs up
// to this many output channels per group (2 threads, ms, tiled -> direct; gx and gw alone):
//   G1 (192 -> 32, 5x5, 28x28)  N=1 gx 2.54 -> 1.89, gw 5.20 -> 2.15;  N=8 gx 18.9 -> 9.6, gw 39.4 -> 14.1
//   X3 (64 -> 64, dilation 2)    N=1 gx 1.48 -> 1.46, gw 2.90 -> 1.41;  N=8 gx 11.8 -> 11.0, gw 23.3 -> 17.6
constexpr int64_t kFlatChannels = 64;
constexpr int64_t kKc = 128;               // rows of k per column tile: a kKc x TW tile (16 KiB fp32) stays in L1
// forward_tiled takes all of K in one block up to 1.5 kKc (R1: K = 147 was 128 + 19, a second pass of partial
// sums through y for 19 rows): R1 5 % faster at N=1 and 8, 16->64 3x3 (K = 144) 14 % at N=8, X4 forced 12-16 %.

// The runs of positions [p0, p0 + np) in a column tile layout [tile][nk][TW]: maximal segments within one
// output row and one tile. They depend only on the positions, so pack_cols and col2im_add work them out
// once per call rather than once per row of k (that bookkeeping was most of their time on short output
// rows: R6 at N=8 packed in 3.8 ms of a 13 ms forward).
struct ColumnRun {
  int64_t dst;           // offset of the run in a k row of the tile layout, minus ow (d[ow] is its first element)
  int64_t src;           // offset of the run's image from the first image
  int64_t ih0, ow, end;  // oh * sh - pt; output columns [ow, end)
};

inline std::vector<ColumnRun> column_runs(const ConvGeom& g, int64_t p0, int64_t np, int64_t nk, int64_t TW) {
  std::vector<ColumnRun> runs;
  runs.reserve(np / std::min(g.wo, TW) + 3);
  int64_t q = 0, oh = p0 / g.wo, ow = p0 % g.wo, img = 0;
  while (q < np) {
    if (oh == g.ho) {
      oh = 0;
      img += g.c * g.h * g.w;
    }
    const int64_t run = std::min({g.wo - ow, np - q, TW - q % TW});
    runs.push_back({(q / TW) * nk * TW + q % TW - ow, img, oh * g.sh - g.pt, ow, ow + run});
    q += run;
    ow += run;
    if (ow == g.wo) {
      ow = 0;
      ++oh;
    }
  }
  return runs;
}

// The column tile of positions [p0, p0 + np) of one image/group and rows k in [k0, k1), k = (c, i, j):
// cols[tile][k - k0][TW] = x[c, oh*sh - pt + i*dh, ow*sw - pl + j*dw] for position p = oh*Wo + ow, zero
// where that reads padding and for positions past np (up to a whole tile). Copies run along output rows.
// ld_k / k_base: the tile's k extent and first row (default: exactly [k0, k1)), so that several threads
// can pack disjoint row ranges of one shared tile. Runs are short (Wo elements, cut at tile edges): their
// bookkeeping is done once per call (column_runs), and each copy is one or two vectors with a masked tail
// (copy_run; stride 2: copy_stride2, loads and an even-lane permute), not a library call or scalar loop.
// Positions may run past the end of the image into the next ones (p0 + np > Ho*Wo): xg then advances by
// one image (C*H*W), so small maps can be batched into full tiles.
// TW may also be a run-time width (pack_cols_rows: one tile as wide as all positions, i.e. row-major
// cols[k][q]); the template wrappers below give the register-tile widths as constants.
template <typename T>
[[gnu::always_inline]] inline void pack_cols_impl(const T* xg, const ConvGeom& g, const std::vector<Tap>& taps,
                                                  int64_t p0, int64_t np, int64_t k0, int64_t k1, T* cols,
                                                  int64_t ld_k, int64_t k_base, const int64_t TW) {
  const int64_t nk = ld_k < 0 ? k1 - k0 : ld_k, kb = k_base < 0 ? k0 : k_base, khw = g.kh * g.kw;
  const std::vector<ColumnRun> runs = column_runs(g, p0, np, nk, TW);
  for (int64_t k = k0; k < k1; ++k) {
    const int64_t c = k / khw, i = (k / g.kw) % g.kh, j = k % g.kw;
    const Tap tp = taps[j];
    T* const base = cols + (k - kb) * TW;
    const T* const xc = xg + c * g.h * g.w + tp.off;
    const int64_t di = i * g.dh;
    for (const ColumnRun& r : runs) {
      T* const d = base + r.dst;
      const int64_t ih = r.ih0 + di;
      if (ih < 0 || ih >= g.h) {
        for (int64_t v = r.ow; v < r.end; ++v) d[v] = T(0);
        continue;
      }
      const T* const src = xc + r.src + ih * g.w;
      const int64_t a = std::min(std::max(tp.lo, r.ow), r.end), e = std::max(std::min(tp.hi, r.end), a);
      for (int64_t v = r.ow; v < a; ++v) d[v] = T(0);
      if (g.sw == 1)
        copy_run(d + a, src + a, e - a);
      else if (g.sw == 2)
        copy_stride2(d + a, src + 2 * a, e - a);
      else
        for (int64_t v = a; v < e; ++v) d[v] = src[v * g.sw];
      for (int64_t v = e; v < r.end; ++v) d[v] = T(0);
    }
    if (np % TW) {
      T* dst = base + (np / TW) * nk * TW;
      for (int64_t v = np % TW; v < TW; ++v) dst[v] = T(0);
    }
  }
}

// chunks rounded up so that chunks x other (the tasks per chunk) is a multiple of the thread count nt: no
// thread runs one more task than the others (forward_tiled's local schedule).
inline int64_t chunks_for_even_split(int64_t chunks, int64_t other, int64_t nt) {
  const int64_t m = nt / std::gcd(nt, other);
  return (chunks + m - 1) / m * m;
}

// The output has the input's size at stride 1, so flattened positions index the input directly.
inline bool same_size_stride1(const ConvGeom& g) { return g.sh == 1 && g.sw == 1 && g.ho == g.h && g.wo == g.w; }

#if defined(__AVX512F__)
// pack_cols where the output has the input's size at stride 1 ("same" padding: the 3x3 pad-1 layers R3, R8,
// R9, R11): tap (c, i, j) of flattened position p reads x[c][p + (i*dh - pt)*W + (j*dw - pl)] wherever that
// lies inside the image's rows and columns, so a k row of the tile is one masked load and one masked store
// per vector of positions within one image (the masks per tap and vector are worked out once per call), in
// place of one copy per output row with scalar zero fills around it (R11: 7-element runs).
template <typename T>
void pack_cols_same(const T* xg, const ConvGeom& g, int64_t p0, int64_t np, int64_t k0, int64_t k1, T* cols,
                    int64_t ld_k, int64_t k_base, const int64_t TW) {
  using A = Avx512<T>;
  using M = typename A::M;
  constexpr int64_t L = Simd<T>::L;
  const int64_t nk = ld_k < 0 ? k1 - k0 : ld_k, kb = k_base < 0 ? k0 : k_base;
  const int64_t hw = g.h * g.w, khw = g.kh * g.kw;
  struct Seg {
    int64_t dst, src, p;  // the vector's offset in a k row of the tiles; x offset of its lane 0; first position
    int64_t l0, len;      // lanes [l0, l0 + len) of the vector (vectors start at tile starts)
  };
  std::vector<Seg> segs;
  segs.reserve(np / L + np / hw + 3);
  for (int64_t q = 0, p = p0, img = 0; q < np;) {
    if (p == hw) {
      p = 0;
      img += g.c * hw;
    }
    const int64_t l0 = q % TW % L, len = std::min({L - l0, TW - q % TW, hw - p, np - q});
    segs.push_back({(q / TW) * nk * TW + q % TW - l0, img + p - l0, p, l0, len});
    q += len;
    p += len;
  }
  const int64_t ns = static_cast<int64_t>(segs.size());
  std::vector<M> valid(khw * ns), lanes(ns);
  std::vector<int64_t> shift(khw);
  for (int64_t s = 0; s < ns; ++s) lanes[s] = static_cast<M>(lanes_mask<T>(segs[s].len) << segs[s].l0);
  std::vector<uint32_t> rows(g.kh), cols_ok(g.kw);
  for (int64_t tap = 0; tap < khw; ++tap)
    shift[tap] = ((tap / g.kw) * g.dh - g.pt) * g.w + (tap % g.kw) * g.dw - g.pl;
  for (int64_t s = 0; s < ns; ++s) {  // lanes whose tap row i / column j lies inside the image
    std::fill(rows.begin(), rows.end(), 0u);
    std::fill(cols_ok.begin(), cols_ok.end(), 0u);
    for (int64_t l = 0, oh = segs[s].p / g.w, ow = segs[s].p % g.w; l < segs[s].len; ++l) {
      const uint32_t bit = 1u << (segs[s].l0 + l);
      for (int64_t i = 0; i < g.kh; ++i)
        if (const int64_t ih = oh + i * g.dh - g.pt; ih >= 0 && ih < g.h) rows[i] |= bit;
      for (int64_t j = 0; j < g.kw; ++j)
        if (const int64_t iw = ow + j * g.dw - g.pl; iw >= 0 && iw < g.w) cols_ok[j] |= bit;
      if (++ow == g.w) {
        ow = 0;
        ++oh;
      }
    }
    for (int64_t tap = 0; tap < khw; ++tap)
      valid[tap * ns + s] = static_cast<M>(rows[tap / g.kw] & cols_ok[tap % g.kw]);
  }
  const int64_t rest = np % TW;
  for (int64_t k = k0; k < k1; ++k) {
    const int64_t tap = k % khw;
    // lane l of a segment reads xc[src + l]; lanes outside the valid mask are not read
    const T* const xc = xg + (k / khw) * hw + shift[tap];
    T* const base = cols + (k - kb) * TW;
    const M* const vm = valid.data() + tap * ns;
    for (int64_t s = 0; s < ns; ++s) A::store(base + segs[s].dst, lanes[s], A::loadz(vm[s], xc + segs[s].src));
    if (rest) {  // positions past np up to the end of the last tile are zero
      T* const dst = base + (np / TW) * nk * TW;
      for (int64_t v = rest / L * L; v < TW; v += L) {
        const auto keep = lanes_mask<T>(std::max<int64_t>(rest - v, 0));  // lanes below rest hold positions
        A::store(dst + v, static_cast<M>(lanes_mask<T>(std::min(L, TW - v)) & ~keep), A::splat(T(0)));
      }
    }
  }
}
#endif

template <typename T, int64_t TW>
void pack_cols(const T* xg, const ConvGeom& g, const std::vector<Tap>& taps, int64_t p0, int64_t np, int64_t k0,
               int64_t k1, T* cols, int64_t ld_k = -1, int64_t k_base = -1) {
#if defined(__AVX512F__)
  if (same_size_stride1(g)) return pack_cols_same<T>(xg, g, p0, np, k0, k1, cols, ld_k, k_base, TW);
#endif
  pack_cols_impl<T>(xg, g, taps, p0, np, k0, k1, cols, ld_k, k_base, TW);
}

// Rows [k0, k1) of the row-major column matrix cols[k - k_base][q] of np positions from p0 (ld np).
template <typename T>
void pack_cols_rows(const T* xg, const ConvGeom& g, const std::vector<Tap>& taps, int64_t p0, int64_t np, int64_t k0,
                    int64_t k1, T* cols, int64_t k_base) {
#if defined(__AVX512F__)
  if (same_size_stride1(g)) return pack_cols_same<T>(xg, g, p0, np, k0, k1, cols, k1 - k_base, k_base, np);
#endif
  pack_cols_impl<T>(xg, g, taps, p0, np, k0, k1, cols, k1 - k_base, k_base, np);
}

// The transpose of pack_cols: gxg[c, ih, iw] += cols[tile][k - k0][q] for every position and row that
// reads the image (padding taps are dropped). The caller owns the channels of rows k0..k1.
template <typename T>
[[gnu::always_inline]] inline void col2im_add_impl(const T* cols, const ConvGeom& g, const std::vector<Tap>& taps,
                                                   int64_t p0, int64_t np, int64_t k0, int64_t k1, T* gxg,
                                                   const int64_t TW) {
  const int64_t nk = k1 - k0, khw = g.kh * g.kw;
  const std::vector<ColumnRun> runs = column_runs(g, p0, np, nk, TW);
  for (int64_t k = k0; k < k1; ++k) {
    const int64_t c = k / khw, i = (k / g.kw) % g.kh, j = k % g.kw;
    const Tap tp = taps[j];
    const T* const base = cols + (k - k0) * TW;
    T* const gc = gxg + c * g.h * g.w + tp.off;
    const int64_t di = i * g.dh;
    for (const ColumnRun& r : runs) {
      const int64_t ih = r.ih0 + di;
      if (ih < 0 || ih >= g.h) continue;
      const T* const src = base + r.dst;  // src[ow]: the run's first element
      T* const dst = gc + r.src + ih * g.w;
      const int64_t a = std::min(std::max(tp.lo, r.ow), r.end), e = std::max(std::min(tp.hi, r.end), a);
      if (g.sw == 1)
        for (int64_t v = a; v < e; ++v) dst[v] += src[v];
      else if (g.sw == 2)
        add_stride2(dst + 2 * a, src + a, e - a);
      else
        for (int64_t v = a; v < e; ++v) dst[v * g.sw] += src[v];
    }
  }
}

template <typename T, int64_t TW>
void col2im_add(const T* cols, const ConvGeom& g, const std::vector<Tap>& taps, int64_t p0, int64_t np, int64_t k0,
                int64_t k1, T* gxg) {
  col2im_add_impl<T>(cols, g, taps, p0, np, k0, k1, gxg, TW);
}

// Register tile: acc[r][0..1] += sum_k a[k][r] * b[k][0:TW] with a packed [k][RB] and b [k][TW]:
// 2 vector loads + RB broadcasts per 2*RB FMAs, k ascending.
template <typename T, int RB>
inline void gemm_tile(const T* __restrict__ a, const T* __restrict__ b, int64_t nk,
                      typename Simd<T>::V (&acc)[RB][2]) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  for (int64_t k = 0; k < nk; ++k, a += RB, b += 2 * L) {
    const V b0 = vload(b), b1 = vload(b + L);
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r) {
      acc[r][0] += a[r] * b0;
      acc[r][1] += a[r] * b1;
    }
  }
}

// The same register tile with the RB rows of a read in place (a[r][k0 + k], e.g. the rows of W): no
// per-call weight packing; the RB row streams are each read sequentially.
template <typename T, int RB>
inline void gemm_tile_rows(const T* const (&a)[RB], int64_t k0, const T* __restrict__ b, int64_t nk,
                           typename Simd<T>::V (&acc)[RB][2]) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  for (int64_t k = k0; k < k0 + nk; ++k, b += 2 * L) {
    const V b0 = vload(b), b1 = vload(b + L);
#pragma GCC unroll 8
    for (int r = 0; r < RB; ++r) {
      acc[r][0] += a[r][k] * b0;
      acc[r][1] += a[r][k] * b1;
    }
  }
}

// W^T as panels of RB rows for grad_input: out[grp][rblock][o][RB] = W[grp*Og + o, rblock*RB + r] (rows = k of
// one group, reduction index = the group's output channel o), zeros past the last k. Runs on every call
// (weights change every step): contiguous writes, parallel over panels, no memset.
template <typename T, int RB>
T* pack_wt_panels(const T* w, const ConvGeom& g) {
  const int64_t K = g.cg * g.kh * g.kw, nrb = (K + RB - 1) / RB;
  T* o = call_workspace<T>(kWsPackedWeights, g.groups * nrb * g.og * RB);
  at::parallel_for(0, g.groups * nrb, std::max<int64_t>(1, 16384 / std::max<int64_t>(g.og * RB, 1)),
                   [&](int64_t begin, int64_t end) {
    for (int64_t pb = begin; pb < end; ++pb) {
      const int64_t grp = pb / nrb, k0 = (pb % nrb) * RB, nr = std::min<int64_t>(RB, K - k0);
      const T* src = w + grp * g.og * K + k0;
      T* dst = o + pb * g.og * RB;
      for (int64_t oc = 0; oc < g.og; ++oc, dst += RB) {
        for (int64_t r = 0; r < nr; ++r) dst[r] = src[oc * K + r];
        for (int64_t r = nr; r < RB; ++r) dst[r] = T(0);
      }
    }
  });
  return o;
}

// Stores (or, with cnt < TW, partially stores) the two vectors of a tile row.
template <typename T>
inline void store_tile_row(T* out, const typename Simd<T>::V& v0, const typename Simd<T>::V& v1, int64_t cnt) {
  constexpr int64_t L = Simd<T>::L;
  if (cnt == 2 * L) {
    vstore(out, v0);
    vstore(out + L, v1);
  } else {
    alignas(64) T tmp[2 * L];
    vstore(tmp, v0);
    vstore(tmp + L, v1);
    std::copy(tmp, tmp + cnt, out);
  }
}

template <typename T>
inline void load_tile_row(const T* src, typename Simd<T>::V& v0, typename Simd<T>::V& v1, int64_t cnt) {
  constexpr int64_t L = Simd<T>::L;
  alignas(64) T tmp[2 * L];
  if (cnt < 2 * L) {  // never read past cnt: the tail lanes are zeros
    std::fill(std::copy(src, src + cnt, tmp), tmp + 2 * L, T(0));
    src = tmp;
  }
  v0 = vload(src);
  v1 = vload(src + L);
}

// Rows o0 .. o0+nrows-1 of y at flattened positions [q, q + cnt) (q = n*Ho*Wo + p), which may straddle
// images: one OB x 2-vector register tile in or out of y.
template <typename T, int OB>
struct FlatTile {
  using V = typename Simd<T>::V;
  static constexpr int64_t L = Simd<T>::L;

  static void store(T* y, const ConvGeom& g, int64_t o0, int64_t nrows, int64_t q, int64_t cnt, V (&acc)[OB][2]) {
    nrows = std::min<int64_t>(nrows, OB);
    const int64_t hw = g.ho * g.wo, n = q / hw, p = q % hw;
    if (p + cnt <= hw) {
      for (int64_t r = 0; r < nrows; ++r) store_tile_row<T>(y + (n * g.o + o0 + r) * hw + p, acc[r][0], acc[r][1], cnt);
      return;
    }
    alignas(64) T tmp[2 * L];
    for (int64_t r = 0; r < nrows; ++r) {
      vstore(tmp, acc[r][0]);
      vstore(tmp + L, acc[r][1]);
      for (int64_t v = 0, nn = n, pp = p; v < cnt; pp = 0, ++nn) {  // one contiguous segment per image
        const int64_t seg = std::min(cnt - v, hw - pp);
        std::copy(tmp + v, tmp + v + seg, y + (nn * g.o + o0 + r) * hw + pp);
        v += seg;
      }
    }
  }

  static void load(const T* y, const ConvGeom& g, int64_t o0, int64_t nrows, int64_t q, int64_t cnt, V (&acc)[OB][2]) {
    nrows = std::min<int64_t>(nrows, OB);
    const int64_t hw = g.ho * g.wo, n = q / hw, p = q % hw;
    alignas(64) T tmp[2 * L];
    std::fill(tmp + cnt, tmp + 2 * L, T(0));  // lanes past cnt (the straddling branch fills the rest)
    for (int64_t r = 0; r < nrows; ++r) {
      if (p + cnt <= hw) {
        load_tile_row<T>(y + (n * g.o + o0 + r) * hw + p, acc[r][0], acc[r][1], cnt);
      } else {
        for (int64_t v = 0, nn = n, pp = p; v < cnt; pp = 0, ++nn) {
          const int64_t seg = std::min(cnt - v, hw - pp);
          const T* src = y + (nn * g.o + o0 + r) * hw + pp;
          std::copy(src, src + seg, tmp + v);
          v += seg;
        }
        acc[r][0] = vload(tmp);
        acc[r][1] = vload(tmp + L);
      }
    }
  }
};

// W as panels of OB output channels for the forward: out[grp][ob][k][OB] = W[grp*Og + ob*OB + r, k], zeros
// past the group's last channel: one contiguous weight stream per register tile instead of OB strided rows.
// Measured 3-7 % faster at N=8, not the 20-30 % expected from the strided streams (the register tile alone
// runs at ~94 % of the FMA peak; the rest of forward_tiled's time is packing and cache traffic). Packed on
// every call (the weights change every step), parallel over panels.
template <typename T, int OB>
T* pack_w_panels(const T* w, const ConvGeom& g) {
  const int64_t K = g.cg * g.kh * g.kw, nob = (g.og + OB - 1) / OB;
  T* o = call_workspace<T>(kWsForwardPanels, g.groups * nob * K * OB);
  at::parallel_for(0, g.groups * nob, std::max<int64_t>(1, 16384 / std::max<int64_t>(K * OB, 1)),
                   [&](int64_t begin, int64_t end) {
    for (int64_t pb = begin; pb < end; ++pb) {
      const int64_t grp = pb / nob, o0 = (pb % nob) * OB, nr = std::min<int64_t>(OB, g.og - o0);
      const T* src = w + (grp * g.og + o0) * K;
      T* dst = o + pb * K * OB;
      if constexpr (OB == 1) {  // one channel: a copy
        if (nr == 1)
          std::copy(src, src + K, dst);
        else
          std::fill(dst, dst + K, T(0));
        continue;
      }
      // blocks of L rows of k x NB channels, transposed in registers (store_lanes_transposed) in place of a
      // scalar loop over OB strided streams (R11 N=8 through forward_tiled: 0.94x the time)
      using V = typename Simd<T>::V;
      constexpr int64_t L = Simd<T>::L;
      constexpr int NB = OB < 16 ? OB : 16;
      static_assert(OB % NB == 0, "pack_w_panels: OB must be a multiple of its transpose block");
      for (int64_t k0 = 0; k0 < K; k0 += L) {
        const int64_t nk = std::min(L, K - k0);
        for (int64_t r0 = 0; r0 < OB; r0 += NB) {
          V rows[1][NB];
          for (int p = 0; p < NB; ++p) {
            const int64_t r = r0 + p;
            rows[0][p] = r < nr ? load_n(src + r * K + k0, nk) : V{};
          }
          store_lanes_transposed<T, 1, NB>(rows, dst + k0 * OB + r0, OB, nk, NB);
        }
      }
    }
  });
  return o;
}

// One OB-row block of output channels over one tile of TW flattened positions, for rows k0 .. k0+nk of the
// reduction: starts from the bias (k0 == 0) or from the partial sums in y, accumulates, stores. The weights
// come from the packed panels (pack_w_panels) where given, else the OB rows of W are read in place.
template <typename T, int OB>
inline void forward_block(const T* w, const T* panels, const T* b, T* y, const ConvGeom& g, const T* zero_row,
                          int64_t grp, int64_t ob, int64_t k0, int64_t nk, const T* cols_tile, int64_t q,
                          int64_t cnt) {
  using V = typename Simd<T>::V;
  const int64_t K = g.cg * g.kh * g.kw, nob = (g.og + OB - 1) / OB;
  const int64_t o0 = grp * g.og + ob * OB, nvalid = std::min<int64_t>(OB, grp * g.og + g.og - o0);
  V acc[OB][2];
  if (k0 > 0) {
    FlatTile<T, OB>::load(y, g, o0, nvalid, q, cnt, acc);
  }
  for (int64_t r = (k0 > 0 ? nvalid : 0); r < OB; ++r) {
    const T init = (b && r < nvalid) ? b[o0 + r] : T(0);
    acc[r][0] = V{} + init;
    acc[r][1] = V{} + init;
  }
  if (panels) {
    gemm_tile<T, OB>(panels + ((grp * nob + ob) * K + k0) * OB, cols_tile, nk, acc);
  } else {
    const T* wrows[OB];
    for (int r = 0; r < OB; ++r) wrows[r] = r < nvalid ? w + (o0 + r) * K : zero_row;
    gemm_tile_rows<T, OB>(wrows, k0, cols_tile, nk, acc);
  }
  FlatTile<T, OB>::store(y, g, o0, nvalid, q, cnt, acc);
}

// Forward, implicit GEMM. Layout: x (N, C, H, W), y (N, O, Ho*Wo), w (O, K) contiguous, k = (c, i, j).
// Output positions are flattened over images (q = n*Ho*Wo + p) and cut into tiles of TW = 2 vectors, so
// small maps (7x7, 14x14) still fill whole tiles. A register tile is OB output channels x TW positions,
// accumulated over rows of k. Two schedules:
//  * local (many positions, e.g. R3): a task owns a chunk of P positions of one group and a range of
//    output-channel blocks; per block of kc rows of k it packs its chunk (pack_cols, kc*P*sizeof(T) <=
//    kColBytes) and runs every tile x channel block (the tile's kc x TW columns stay in L1 across blocks).
//    W is packed once per call into OB-channel panels (pack_w_panels): 3-7 % faster than reading its rows
//    in place at N=8 (R4, R6, R9, R10, X3; measured interleaved, 2 threads), level at N=1.
//  * split (few positions, large weights, e.g. R11): the (tile, channel block) pairs, tile-major, are cut
//    into one contiguous range per thread; a thread packs the few tiles of its range itself (a tile cut
//    between two threads is packed by both) and reads W's rows in place (packing them doubled the weight
//    traffic: R11 N=1 1.75 -> 2.18 ms). This replaced a shared schedule (all threads packed one block, then
//    split the channel blocks), whose every thread read the block the other had half written: on this VM,
//    whenever its two vCPUs sat on distant cores (a cross-core round trip of ~380 ns, not ~80), R11 N=8 fwd
//    went from 4.7 to 5.3 ms (split: 4.25 ms there, as in fast phases). Same process, 2 threads, us, shared
//    -> split: R11 N=8 fwd 4312 -> 4280, grad_input (flipped) 4832 -> 4867; N=1 fwd 704 -> 649. Channel-major
//    ranges (each thread packs every tile, reads its share of W) were slower: N=8 fwd 4597, N=1 690.
// Between k blocks the partial sums go through y. The k order is fixed, so results do not depend on the
// thread count or the schedule.
template <typename T, int OB>
void forward_tiled(const T* x, const T* w, const T* b, T* y, const ConvGeom& g) {
  constexpr int64_t TW = 2 * Simd<T>::L;
  const int64_t K = g.cg * g.kh * g.kw, hw = g.ho * g.wo, total = g.n * hw, nob = (g.og + OB - 1) / OB;
  const std::vector<Tap> taps = column_taps(g);
  const std::vector<T> zero_row(K, T(0));  // stands in for the rows past a group's last output channel
  const int64_t kc = K <= kKc + kKc / 2 ? K : kKc, tiles_all = (total + TW - 1) / TW;
  const int64_t want = 2 * at::get_num_threads();
  int64_t p_tiles = std::min(tiles_all, std::max<int64_t>(1, kColBytes / (kc * TW * (int64_t)sizeof(T))));
  int64_t chunks = (tiles_all + p_tiles - 1) / p_tiles;
  const auto image_base = [&](int64_t q, int64_t grp) { return x + ((q / hw) * g.c + grp * g.cg) * g.h * g.w; };

  if (g.groups * chunks < want && nob >= want) {  // split schedule
    // The (tile, output-channel block) pairs of a group, tile-major, in one contiguous range per thread;
    // each thread packs the tiles its range touches (a tile cut between two threads is packed by both)
    // for as many rows of k per pass as its block allows, and writes only its own outputs, so a thread
    // reads no column another thread wrote and there is one fork/join per group, not two per pass.
    const int64_t nthr = at::get_num_threads(), units = tiles_all * nob;
    const auto range = [&](int64_t t) { return std::pair<int64_t, int64_t>(units * t / nthr, units * (t + 1) / nthr); };
    int64_t max_tiles = 1;
    for (int64_t t = 0; t < nthr; ++t)
      if (const auto [u0, u1] = range(t); u1 > u0) max_tiles = std::max(max_tiles, (u1 - 1) / nob - u0 / nob + 1);
    const int64_t kcs = std::min(K, std::max(kc, kTiledThreadColBytes / (max_tiles * TW * (int64_t)sizeof(T))));
    T* const all_cols = call_workspace<T>(kWsSharedCols, nthr * kcs * max_tiles * TW);  // kept between calls
    for (int64_t grp = 0; grp < g.groups; ++grp)
      at::parallel_for(0, nthr, 1, [&](int64_t t_begin, int64_t t_end) {
        for (int64_t t = t_begin; t < t_end; ++t) {
          const auto [u0, u1] = range(t);
          if (u1 <= u0) continue;
          const int64_t ta = u0 / nob, q0 = ta * TW, np = std::min(((u1 - 1) / nob + 1) * TW, total) - q0;
          T* const cols = all_cols + t * kcs * max_tiles * TW;
          for (int64_t k0 = 0; k0 < K; k0 += kcs) {
            const int64_t nk = std::min(K, k0 + kcs) - k0;
            pack_cols<T, TW>(image_base(q0, grp), g, taps, q0 % hw, np, k0, k0 + nk, cols);
            for (int64_t u = u0; u < u1; ++u) {
              const int64_t tile = u / nob;
              forward_block<T, OB>(w, nullptr, b, y, g, zero_row.data(), grp, u % nob, k0, nk,
                                   cols + (tile - ta) * nk * TW, tile * TW, std::min(TW, total - tile * TW));
            }
          }
        }
      });
    return;
  }
  // local schedule: positions first, then output channels, then smaller chunks
  const int64_t osplit = std::min(nob, (want + g.groups * chunks - 1) / (g.groups * chunks));
  if (g.groups * chunks * osplit < want) {
    p_tiles = std::max<int64_t>(1, tiles_all * g.groups * osplit / want);
    chunks = (tiles_all + p_tiles - 1) / p_tiles;
  } else if (const int64_t nt = at::get_num_threads(); nt > 1 && g.groups * chunks * osplit < 8 * nt) {
    // few tasks: a multiple of the thread count, so no thread runs one more task than the others (R6 N=8:
    // 13 chunks -> 14). Positions per chunk only shrink, and the k order does not depend on them.
    const int64_t even = chunks_for_even_split(chunks, g.groups * osplit, nt);
    p_tiles = (tiles_all + even - 1) / even;
    chunks = (tiles_all + p_tiles - 1) / p_tiles;
  }
  const int64_t P = p_tiles * TW, ob_per = (nob + osplit - 1) / osplit;
  const T* const panels = pack_w_panels<T, OB>(w, g);
  at::parallel_for(0, g.groups * chunks * osplit, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> cols(kc * P);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t os = t % osplit, ch = (t / osplit) % chunks, grp = t / (osplit * chunks);
      const int64_t q0 = ch * P, np = std::min(P, total - q0), ntiles = (np + TW - 1) / TW;
      const int64_t ob_end = std::min(nob, (os + 1) * ob_per);
      for (int64_t k0 = 0; k0 < K; k0 += kc) {
        const int64_t nk = std::min(K, k0 + kc) - k0;
        pack_cols<T, TW>(image_base(q0, grp), g, taps, q0 % hw, np, k0, k0 + nk, cols.data());
        for (int64_t tile = 0; tile < ntiles; ++tile)
          for (int64_t ob = os * ob_per; ob < ob_end; ++ob)
            forward_block<T, OB>(w, panels, b, y, g, zero_row.data(), grp, ob, k0, nk, cols.data() + tile * nk * TW,
                                 q0 + tile * TW, std::min(TW, np - tile * TW));
      }
    }
  });
}

// Direct rows: for few output channels per group (Og <= kRowsForwardChannels in the forward) and column stride 1 (LeNet, single
// channel, depthwise, tiny images), where packing im2col tiles costs more than the arithmetic. A task owns a
// block of output rows of one image and group and copies the input those rows read into a zero-padded
// slab (padding becomes zeros; vector loads past the end stay inside). Then, per 2L outputs and block of
// OB output channels, OB x 2 vector accumulators: per (c, i, j) two unaligned loads and 2 * OB FMAs with
// the weight broadcast from memory. No im2col tile and no weight packing; workspace: the slab (about
// kColBytes). Summation order per output: bias, then (c, i, j) ascending, whatever the split.
//  * row stride 1 ("flat"): kw column-shifted copies, slab[j][c][r][ow] = xpad[ih0 + r][ow + j*dw], with a
//    row pitch of exactly Wo, so the outputs of consecutive rows are contiguous positions p and tap (c, i, j)
//    of position p is slab[j][c][p + i*dh*Wo]: every lane is useful however small Wo is;
//  * other row strides ("rows"): one padded copy per row, vectorised along each output row.
// The forward's bound is higher than the gradients' kFewChannels: G1 (192 -> 32 channels, 5x5, N=8) runs in
// 26.1 ms through the rows kernel against 34.8-38.2 ms through forward_tiled. Up to kFlatChannels (64) output
// channels it also wins at 2 threads except for 1x1 (ms, rows vs forward_tiled, interleaved):
//   X3 N=1 1.52 vs 1.84, N=8 13.1 vs 12.3 | 64->64 5x5 @28 N=1 1.06 vs 1.72, N=8 7.6 vs 10.5 |
//   64->64 7x7 @28 N=8 16.2 vs 20.1 | 96->64 3x3 d2 @28 N=8 4.7 vs 5.4 | R2 (1x1 64->64) N=8 1.94 vs 1.45
bool is_pointwise(const ConvGeom& g) {
  return g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.pt == 0 && g.pb == 0 && g.pl == 0 && g.pr == 0;
}

constexpr int64_t kRowsForwardChannels = 32;
// Where the output-channels-as-lanes kernel (direct_oc.cpp) replaces the rows kernel (column stride 1) or,
// with column stride 2 outside the BLAS regimes, forward_tiled: more than kFewChannels output channels per
// group (not 1x1); "auto" also wants at least kOcLanesMinMacs
// multiply-adds, below which its weight packing costs more than it saves. 2 threads, ms, rows -> this
// kernel (same process): G1 N=1 2.10 -> 1.54, N=8 15.9 -> 7.9 (torch 7.7); 64->64 5x5 @28 N=1 1.11 -> 1.09,
// N=8 8.86 -> 6.63; 64->64 7x7 @28 N=8 19.6 -> 14.1; 128->48 3x3 @28 N=1 0.54 -> 0.50, N=8 2.92 -> 2.80;
// 32->32 3x3 @56 N=1 0.42 -> 0.39, N=8 2.33 -> 2.21; X4 N=8 0.28 -> 0.23 but N=1 (1.8 M MACs) 0.032 -> 0.042.
// Column stride 2 (2x14 tile, every other column broadcast), ms, forward_tiled -> this kernel, N = 1 / 8 (same
// process): R1 1.49 -> 1.32 / 12.8 -> 9.9; D1 1.17 -> 0.72 / 9.6 -> 6.2; 32->64 3x3 @112 0.77 -> 0.63 / 5.9 ->
// 4.6; 32->96 3x3 @112 1.20 -> 0.98 / 8.9 -> 7.8; 48->128 3x3 @56 0.73 -> 0.57 / 4.0 -> 3.5; 32->64 5x5 @56
// 1.07 -> 0.70 / 6.2 -> 4.2; 16->256 3x3 @56 0.32 -> 0.34 / 2.41 -> 2.32 (level). Where the BLAS regimes apply
// (>= 128 output channels and >= 512 rows of k) they stay: 256->512 3x3 @28 was 1.1-1.9x slower here.
constexpr int64_t kOcLanesMinMacs = int64_t(4) << 20;

inline bool oc_lanes_preferred(const ConvGeom& g, bool forced) {
  if (!oc_lanes_applies(g) || g.og <= kFewChannels) return false;
  return forced || g.n * g.o * g.cg * g.kh * g.kw * g.ho * g.wo >= kOcLanesMinMacs;
}

// Where grad_weight takes the output-channels-as-lanes kernel (direct_oc.cpp, oc_lanes_grad_weight) over the
// flat slabs: beyond kFewChannels output channels per group (LeNet's 16 stay on the flat kernel), stride 1
// and up to kFlatChannels (the flat kernel's range); beyond that where BLAS is slow (make_plan). Session 16
// (half-rate AVX-512 machine, the kernel before its chunks and transposes) kept the flat kernel on short
// reductions (48->48 3x3 @28 0.19 vs 0.34 ms); since session 18's kernel (2 threads, us, N = 1 / 8, flat ->
// this kernel, same process, 3 rounds interleaved, glibc keeping freed pages): 48->48 3x3 @28 224 -> 175 /
// 2431 -> 1127; 32->32 3x3 @56 335 -> 270 / 2764 -> 2003; 128->48 3x3 @28 593 -> 326 / 5004 -> 2523; 24->32
// 3x3 @28 87 -> 78 / 524 -> 390; 64->64 3x3 @14 150 -> 113 / 1226 -> 439; 32->32 5x5 @28 252 -> 171 / 2408
// -> 1092; 64->64 3x3 @28 364 -> 209 / 2544 -> 1184. Other strides from kOcGwMinChannels input channels per
// group (since it reads x in place; grad_weight_tiled -> this kernel, same process, 5 rounds): R6 682 -> 522
// / 7411 -> 4487 (torch 636 / 5503), 128->128 3x3 s2 @28 233 -> 150 / 1478 -> 1037, X4 (20 -> 24, stride
// (2, 1)) 38 -> 31 / 198 -> 139; not R1 (3 channels in a 6-channel tile: 822 -> 1034 at N=1). Forced
// "direct" takes it beyond kFewChannels (any row stride; "direct" needs column stride 1), so the conformance
// grid covers it.
constexpr int64_t kOcGwMinChannels = 8;
inline bool oc_gw_strided_ok(const ConvGeom& g) { return (g.sh == 1 && g.sw == 1) || g.cg >= kOcGwMinChannels; }
inline bool oc_gw_preferred(const ConvGeom& g, bool forced) {
  if (g.og <= kFewChannels || g.kh * g.kw == 1) return false;
  return forced || (g.og <= kFlatChannels && oc_gw_strided_ok(g));
}

// Where grad_weight takes oc_cols_grad_weight (direct_oc.cpp: output channels as the lanes of one vector,
// (kernel column, input channel) pairs as the tile), "auto" and "direct" alike: at least 3/4 of the lanes
// hold output channels (fp32: 13-16 per group) and at least 5 pairs. gw alone, 2 threads, us, flat or lanes ->
// this kernel (same process, interleaved, 7 rounds): L2 (6 -> 16, 5x5 @14) N=1 20 -> 16, N=8 65 -> 35,
// N=256 1437 -> 706 (torch 1126); 16->16 3x3 @28 N=8 269 -> 231; 3->16 3x3 @56 N=8 230 -> 178; 16->16 3x3
// @112 N=8 4087 -> 3578; 1->16 5x5 @28 p2 N=8 66 -> 52; 64->16 3x3 @28 N=8 1113 -> 1045; 16->16 5x5 s2 @56
// N=8 1777 -> 735. Where it lost: 8 channels (half the lanes; 8->8 3x3 @32 N=8 118 -> 151), 12 channels
// level, 3 pairs (1->16 3x3 @64 N=8 135 -> 176), and 16->16 3x3 @14 at N=1 (31 -> 36: three tasks each
// rebuild the one image's slab). X2 (64 -> 64, groups 4, 3x3 @56): gw N=1 644 -> 668 (level), N=8 5400 ->
// 4286 (torch 4287); its forward + backward 0.96-0.99x the time.
inline bool oc_cols_preferred(const ConvGeom& g, int64_t itemsize) {
  const int64_t lanes = 64 / itemsize;
  return oc_cols_grad_weight_applies(g, lanes) && 4 * g.og > 3 * lanes && g.kw * g.cg >= 5;
}

// Where grad_input takes oc_cols_grad_input (direct_oc.cpp: (kernel column, input channel) pairs as the lanes
// of at most two vectors, dY read in place) over the rows kernel on zero-padded dY, "auto" and "direct" alike:
// at least 5 pairs and 5 output channels per group. gx alone, 2 threads, us, rows -> this kernel (same
// process, interleaved, 7 rounds; torch in brackets): L2 (6 -> 16, 5x5 @14) N=1 36 -> 18 (112), N=8 102 ->
// 40 (155), N=64 679 -> 224 (535), N=256 2929 -> 884 (2101); 4->16 5x5 @14 N=8 105 -> 37; 3->16 3x3 @56
// p1 N=8 368 -> 235; 2->16 3x3 @56 309 -> 219; 5->32 3x3 @28 234 -> 113; 10->32 3x3 @28 373 -> 223; 2->32
// 5x5 @28 p2 450 -> 189; 8->16 3x3 @16 60 -> 52; 16->16 2x2 @28 135 -> 109; 3->64 7x7 @56 p3 N=2 3525 ->
// 922; L1 (1 -> 6, 5x5 @28 p2) N=1 18.0 -> 15.1, N=8 59 -> 45. Where it lost: 3 pairs (1->16 3x3 @64 N=8
// 271 -> 337), 4 output channels (1->4 5x5 @32 p2 N=8 46 -> 50), one channel (1->1 3x3 @64: 24 -> 54, the
// depthwise kernel).
inline bool oc_cols_gx_preferred(const ConvGeom& g, int64_t itemsize) {
  return oc_cols_grad_input_applies(g, 64 / itemsize) && g.kw * g.cg >= 5 && g.og >= 5;
}

// The channel-lanes forward with one vector of output channels (direct_oc.cpp fwd_tile: a 1 x NP tile, NP = 8 ..
// 16 columns) in place of the rows kernel, "auto" and "direct" alike: column stride 1, not 1x1, and at least
// 3/4 of the vector's lanes hold output channels (fp32: 12-16 per group; fp64: 6-8). Same summation order
// (bias, then (c, i, j) ascending): bitwise the same results. Forward alone, 2 threads, us, rows -> this
// kernel (same process, interleaved, 7 rounds; torch in brackets): L2 (6 -> 16, 5x5 @14) N=1 17.9 -> 15.5,
// N=8 48 -> 33 (87), N=256 1248 -> 677; X2 (64 -> 64, groups 4, 3x3 @56) N=8 4503 -> 2904; 16->16 3x3 @28
// N=8 274 -> 189 (259); 3->16 3x3 @56 206 -> 136 (217); 12->12 3x3 @28 171 -> 124; 6->12 5x5 @14 45 -> 34;
// 32->16 3x3 @56 2201 -> 1373 (1829); 16->16 7x7 @28 p3 1193 -> 796 (768); 64->16 3x3 @14 278 -> 176 (203);
// 16->16 3x3 @112 4298 -> 2696. Where it lost: half the lanes (8->8 3x3 @32 N=8 92 -> 107) and 6 of 16
// (L1, 1->6 5x5 @28, N=256 653 -> 890).
// grad_input takes it too where the transposed problem qualifies (12-16 input channels per group), in place of
// the rows kernel over zero-padded dY: gx alone, us, rows -> this kernel, N=8 (torch in brackets): X2 4671 ->
// 2849 (12629), at N=1 536 -> 337 (517); 16->16 3x3 @28 260 -> 170 (232); 16->32 3x3 @28 536 -> 331 (414);
// 12->16 5x5 @14 167 -> 119 (134); 16->16 3x3 @112 4665 -> 2857; 16->64 3x3 @14 302 -> 189 (251).
inline bool oc_one_vector_preferred(const ConvGeom& g, int64_t itemsize) {
  const int64_t lanes = 64 / itemsize;
  return oc_lanes_applies(g) && g.sw == 1 && g.og <= lanes && 4 * g.og >= 3 * lanes;
}

inline bool rows_applies(const ConvGeom& g) {
  return g.sw == 1 && (g.og <= kRowsForwardChannels || (g.og <= kFlatChannels && g.kh * g.kw > 1));
}

// y[o][0:cnt] = b[o] + sum over (c, i, j) of w[o][c][i][j] * base[c*sc + i*si + j*sj + (0:cnt)], o < OB.
template <typename T, int OB>
inline void rows_run(const T* base, int64_t sc, int64_t si, int64_t sj, const T* w, const T* b, T* y, int64_t y_ld,
                     int64_t cnt, const ConvGeom& g) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  const int64_t khw = g.kh * g.kw, w_ld = g.cg * khw;
  V acc[OB][2];
  for (int o = 0; o < OB; ++o) acc[o][0] = acc[o][1] = splat<T>(b ? b[o] : T(0));
  for (int64_t c = 0; c < g.cg; ++c)
    for (int64_t i = 0; i < g.kh; ++i) {
      const T* row = base + c * sc + i * si;
      const T* wc = w + c * khw + i * g.kw;
      for (int64_t j = 0; j < g.kw; ++j) {
        const V x0 = vload(row + j * sj), x1 = vload(row + j * sj + L);
        for (int o = 0; o < OB; ++o) {
          const T wv = wc[o * w_ld + j];
          acc[o][0] += wv * x0;
          acc[o][1] += wv * x1;
        }
      }
    }
  for (int o = 0; o < OB; ++o) store_tile_row(y + o * y_ld, acc[o][0], acc[o][1], cnt);
}

template <typename T>
inline void rows_channels(const T* base, int64_t sc, int64_t si, int64_t sj, const T* w, const T* b, T* y,
                          int64_t y_ld, int64_t cnt, const ConvGeom& g) {
  const int64_t w_ld = g.cg * g.kh * g.kw;
  for (int64_t o = 0; o < g.og; o += 8) {
    const T* wo = w + o * w_ld;
    const T* bo = b ? b + o : nullptr;
    T* yo = y + o * y_ld;
    switch (std::min<int64_t>(8, g.og - o)) {
      case 8: rows_run<T, 8>(base, sc, si, sj, wo, bo, yo, y_ld, cnt, g); break;
      case 7: rows_run<T, 7>(base, sc, si, sj, wo, bo, yo, y_ld, cnt, g); break;
      case 6: rows_run<T, 6>(base, sc, si, sj, wo, bo, yo, y_ld, cnt, g); break;
      case 5: rows_run<T, 5>(base, sc, si, sj, wo, bo, yo, y_ld, cnt, g); break;
      case 4: rows_run<T, 4>(base, sc, si, sj, wo, bo, yo, y_ld, cnt, g); break;
      case 3: rows_run<T, 3>(base, sc, si, sj, wo, bo, yo, y_ld, cnt, g); break;
      case 2: rows_run<T, 2>(base, sc, si, sj, wo, bo, yo, y_ld, cnt, g); break;
      default: rows_run<T, 1>(base, sc, si, sj, wo, bo, yo, y_ld, cnt, g);
    }
  }
}

// The flat slab of channels [c0, c1) of one image/group for output rows starting at input row ih0 (row
// stride 1): out[(j * nc + c - c0) * rows * Wo + r * Wo + ow] = x[c, ih0 + r, ow + j*dw - pl], zero
// outside the image, followed by 2L zeros of slack.
template <typename T>
void build_flat_slab(const T* xg, const ConvGeom& g, int64_t c0, int64_t c1, int64_t ih0, int64_t rows, T* out) {
  const int64_t nc = c1 - c0, cs = rows * g.wo;
  for (int64_t j = 0; j < g.kw; ++j) {
    const int64_t shift = j * g.dw - g.pl;  // input column of output column 0
    const int64_t lo = std::min(g.wo, std::max<int64_t>(0, -shift)), hi = std::max(lo, std::min(g.wo, g.w - shift));
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t r = 0; r < rows; ++r) {
        T* dst = out + ((j * nc + c - c0) * rows + r) * g.wo;
        const int64_t ih = ih0 + r;
        if (ih < 0 || ih >= g.h) {
          std::fill(dst, dst + g.wo, T(0));
          continue;
        }
        const T* src = xg + (c * g.h + ih) * g.w + shift;
        for (int64_t v = 0; v < lo; ++v) dst[v] = T(0);  // runs are short (L2: 10 elements): vector copies
        copy_run(dst + lo, src + lo, hi - lo);
        for (int64_t v = hi; v < g.wo; ++v) dst[v] = T(0);
      }
  }
  std::fill(out + g.kw * nc * cs, out + g.kw * nc * cs + 2 * Simd<T>::L, T(0));
}

// Pointwise (1x1, stride 1, no padding): y[n, o, p] = b[o] + sum_c W[o, c] x[n, c, p], a GEMM per image whose
// operands are already in the right layout, so nothing is copied: the kernel reads x in place (channel
// stride H*W) and the weights in place. Register tile: OB output channels x NV vectors of positions, 24
// accumulators either way: 6 x 4 (64 fp32 positions; per input channel 4 vector loads of x, 6 broadcasts of M
// and 24 FMAs) or 8 x 3 (48 positions; 3 loads, 8 broadcasts), whichever pads the output channels to fewer rows
// (8 x 3 for 64 or 256 of them: 6 x 4 computes 66 or 258, 3 % or 0.8 % wasted; 1 thread, the two run equally
// fast on R4 otherwise). M's element (r, k) is m[r * rs + k * ks]: the forward's W (rs = C, ks = 1: OB row streams) or
// grad_input's W^T (rs = 1, ks = C: OB consecutive values per k). A thread owns one contiguous run of the
// (image, group, vector of positions) space, all output channels, cut into tiles of NV vectors from the
// start of each plane's run: per tile the C x TW slice of x stays in L1 while the output-channel blocks pass
// over it, and during those passes the next tile's slice is prefetched (one input channel per block and channel
// step, spread over the blocks). A tile whose vectors would pass the end of its plane (the plane's last, if H*W
// is not a multiple of L) goes through a zero-padded C x TW copy, so no load passes the end of x. An output
// larger than the threads' L2 (threads x kL2Bytes) is written with non-temporal stores (vstore_stream): it would
// leave the caches anyway, and a plain store first reads each cold line (R4 64->256 @56, N=1 and 8: 0.82-0.84x
// the time; R2 N=8 0.94x; in-process A/B, 9 rounds).
// R4 N=1 at 2 threads, 217 -> 201 us: the threads' runs cut at vectors, not at whole tiles (49 tiles split
// 24:25, now 98:98 vectors), the weights no longer packed on every call (a serial 5 us for 256 x 64 before the
// parallel region), one call per tile for all its blocks; then 201 -> 199 us with 8 x 3 tiles (256 rows).
// Workspace: the tail tile, only where a plane's last tile passes its end. Summation order per output: bias,
// then c ascending.
constexpr int kPwAcc = 24, kPwMaxNV = 4;  // accumulators per tile; vectors per tile at most (OB = 6)

// All output channels (rows of M) of one tile of cnt <= NV * L positions (NV < kPwAcc / OB only for the last
// tile of a run), one block of OB rows after another; in the last block, rows past the end re-read the last row
// and are not stored. Looping over the blocks here (not one call per block) keeps the per-block work to the
// accumulators' set-up and stores: with a call per block, the call's set-up cost 5-8 % of R4 at 1 thread.
template <typename T, int OB, int NV>
void pointwise_tile(const T* __restrict__ x, int64_t ldx, const T* __restrict__ m, int64_t rs, int64_t ks,
                    const T* b, T* __restrict__ y, int64_t ldy, int64_t nc, int64_t rows, int64_t cnt, const T* pf,
                    int64_t pf_step, bool stream) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L, TW = NV * L;
  // Non-temporal stores only where every row of the tile starts on a cache line.
  const bool nt = stream && cnt == TW && reinterpret_cast<uintptr_t>(y) % 64 == 0 && ldy * sizeof(T) % 64 == 0;
  for (int64_t o0 = 0; o0 < rows; o0 += OB) {
    const int64_t no = std::min<int64_t>(OB, rows - o0);
    // Every index into acc is a compile-time constant (the loops over o and v unroll; rows past no are
    // skipped by a branch, the partial tile stored by masked stores), so the 24 accumulators stay in
    // registers. A runtime-bounded loop over acc, or a library call (std::copy) after the main loop, made GCC
    // keep acc on the stack: 24 spills and reloads per block of 64 x 6 outputs, 5 % of R4's time at 1 thread.
    T bias[OB];
    int64_t roff[OB];
    for (int o = 0; o < OB; ++o) {
      bias[o] = b && o < no ? b[o0 + o] : T(0);
      roff[o] = std::min<int64_t>(o, no - 1) * rs;
    }
    V acc[OB][NV];
#pragma GCC unroll 8
    for (int o = 0; o < OB; ++o)
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[o][v] = splat<T>(bias[o]);
    const T* mb = m + o0 * rs;
    for (int64_t c = 0; c < nc; ++c) {
      V xv[NV];
      for (int v = 0; v < NV; ++v) xv[v] = vload(x + c * ldx + v * L);
      const T* mc = mb + c * ks;
#pragma GCC unroll 8
      for (int o = 0; o < OB; ++o) {
        const V wv = splat<T>(mc[roff[o]]);
        for (int v = 0; v < NV; ++v) acc[o][v] += wv * xv[v];
      }
    }
    if (pf) {  // the next tile's input channels [c0, c1), spread over the blocks
      const int64_t c0 = std::min(nc, o0 / OB * pf_step), c1 = std::min(nc, c0 + pf_step);
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t q = 0; q < kPwAcc / OB * L; q += 64 / (int64_t)sizeof(T)) __builtin_prefetch(pf + c * ldx + q, 0, 3);
    }
    T* yb = y + o0 * ldy;
#pragma GCC unroll 8
    for (int o = 0; o < OB; ++o) {
      if (o >= no) break;
      T* yo = yb + o * ldy;
      if (nt) {
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) vstream_aligned(yo + v * L, acc[o][v]);
      } else {
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v)
          if (const int64_t n = std::min<int64_t>(L, cnt - v * L); n > 0) store_n<T>(yo + v * L, acc[o][v], n);
      }
    }
  }
}

// The pointwise product's operands: per group, the matrix M (rows x red) that multiplies the input channels.
// Forward: M = W[group] (Og x Cg); grad_input (transposed): M = W[group]^T (Cg x Og), dY in, dX out.
struct PointwiseDims {
  int64_t rows, red, in_ch, out_ch;  // per group: output rows, reduction; per image: channels in and out
};
inline PointwiseDims pointwise_dims(const ConvGeom& g, bool transposed) {
  return transposed ? PointwiseDims{g.cg, g.og, g.o, g.c} : PointwiseDims{g.og, g.cg, g.c, g.o};
}

// y (N, out_ch, H, W) = M x (N, in_ch, H, W) per image and group, plus b (forward only), with blocks of OB rows.
template <typename T, int OB>
void pointwise_rows_ob(const T* x, const T* w, const T* b, T* y, const ConvGeom& g, bool transposed) {
  constexpr int NV = kPwAcc / OB;
  constexpr int64_t L = Simd<T>::L, TW = NV * L;
  const PointwiseDims d = pointwise_dims(g, transposed);
  const int64_t hw = g.h * g.w, vecs = (hw + L - 1) / L, oblocks = (d.rows + OB - 1) / OB;
  const int64_t rs = transposed ? 1 : g.cg, ks = transposed ? g.cg : 1;  // M[r][k] = W[group] at r * rs + k * ks
  const int64_t total = g.n * g.groups * vecs, runs = std::min<int64_t>(total, at::get_num_threads());
  const bool stream = g.n * d.out_ch * hw * int64_t(sizeof(T)) >= at::get_num_threads() * kL2Bytes;
  const int64_t pf_step = (d.red + oblocks - 1) / oblocks;  // input channels of the next tile per block
  at::parallel_for(0, runs, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> tail;
    for (int64_t t = begin; t < end; ++t) {
      // The run [q0, q1) of flattened (image, group, vector) indices, one plane's part at a time.
      const int64_t q0 = t * total / runs, q1 = (t + 1) * total / runs;
      for (int64_t q = q0; q < q1;) {
        const int64_t ig = q / vecs, v0 = q % vecs, v1 = std::min(vecs, v0 + (q1 - q));
        q += v1 - v0;
        const int64_t grp = ig % g.groups, n = ig / g.groups, p1 = std::min(hw, v1 * L);
        const T* xg = x + (n * d.in_ch + grp * d.red) * hw;
        const T* mg = w + grp * g.og * g.cg;
        const T* bg = b ? b + grp * d.rows : nullptr;
        T* yg = y + (n * d.out_ch + grp * d.rows) * hw;
        for (int64_t p = v0 * L; p < p1; p += TW) {
          const int64_t cnt = std::min(TW, p1 - p), nv = (cnt + L - 1) / L;
          const T* xs = xg + p;
          int64_t ldx = hw;
          if (p + nv * L > hw) {  // the plane's last vector is partial: a zero-padded copy
            tail.assign(d.red * TW, T(0));
            for (int64_t c = 0; c < d.red; ++c) std::copy(xg + c * hw + p, xg + c * hw + p + cnt, tail.data() + c * TW);
            xs = tail.data();
            ldx = TW;
          }
          const T* pf = p + TW + TW <= p1 ? xg + p + TW : nullptr;  // the next tile, if whole and in this run
          T* yt = yg + p;
          if (nv == NV) {
            pointwise_tile<T, OB, NV>(xs, ldx, mg, rs, ks, bg, yt, hw, d.red, d.rows, cnt, pf, pf_step, stream);
          } else if (nv == 1) {
            pointwise_tile<T, OB, 1>(xs, ldx, mg, rs, ks, bg, yt, hw, d.red, d.rows, cnt, pf, pf_step, stream);
          } else if (nv == 2) {
            pointwise_tile<T, OB, 2>(xs, ldx, mg, rs, ks, bg, yt, hw, d.red, d.rows, cnt, pf, pf_step, stream);
          } else if constexpr (NV > 3) {
            pointwise_tile<T, OB, 3>(xs, ldx, mg, rs, ks, bg, yt, hw, d.red, d.rows, cnt, pf, pf_step, stream);
          }
        }
      }
    }
    if (stream) stream_fence();
  });
}

// Blocks of 8 rows (8 x 3 tiles) where they pad M's rows to no more than blocks of 6 do, else 6 (6 x 4).
template <typename T>
void forward_pointwise_rows(const T* x, const T* w, const T* b, T* y, const ConvGeom& g, bool transposed = false) {
  const int64_t rows = pointwise_dims(g, transposed).rows;
  if (round_to(rows, 8) <= round_to(rows, 6)) return pointwise_rows_ob<T, 8>(x, w, b, y, g, transposed);
  pointwise_rows_ob<T, 6>(x, w, b, y, g, transposed);
}

// Where "auto" takes the pointwise kernel over per-image BLAS / forward_tiled (forward, and transposed for
// grad_input): planes of >= kPwMinPositions positions, and a reduction of <= kPwMaxReduction channels or
// fewer than kPointwiseForwardTasks images x groups. ResNet-50's 1x1 layers, 2 threads, ms (this kernel vs
// auto before it): N=1 64->256 @56 0.85 vs 1.01, 256->64 @56 0.95 vs 1.24, 512->256 @28 1.93 vs 2.09,
// 256->1024 @14 1.40 vs 1.10, 512->2048 @7 1.86 vs 1.23; N=8 64->256 @56 6.8 vs 9.2, 64->64 @56 2.0 vs
// 2.2, 128->512 @28 6.7 vs 7.5, 256->64 @56 7.9 vs 7.3. Below 28x28 its few tiles each stream all of M;
// with more reduction channels the C x TW slice of x leaves L1.
constexpr int64_t kPwMinPositions = 28 * 28, kPwMaxReduction = 128;
constexpr int64_t kPointwiseForwardTasks = 4;
inline bool pointwise_kernel_applies(const ConvGeom& g, bool transposed) {
  return is_pointwise(g) && g.h * g.w >= kPwMinPositions &&
         (pointwise_dims(g, transposed).red <= kPwMaxReduction || g.n * g.groups < kPointwiseForwardTasks);
}

// Its workspace (an upper bound): one tail tile per thread, allocated only where a plane's last tile passes
// its end (H*W not a multiple of the vector width).
inline int64_t pointwise_workspace(const ConvGeom& g, bool transposed, int64_t itemsize) {
  if (g.h * g.w % (64 / itemsize) == 0) return 0;
  return at::get_num_threads() * pointwise_dims(g, transposed).red * kPwMaxNV * 64;
}

template <typename T>
void forward_rows(const T* x, const T* w, const T* b, T* y, const ConvGeom& g) {
  if (is_pointwise(g)) return forward_pointwise_rows(x, w, b, y, g);
  constexpr int64_t TW = 2 * Simd<T>::L;
  const bool flat = g.sh == 1;
  const int64_t runs = (g.wo + TW - 1) / TW;
  const int64_t row_ld = flat ? g.wo : runs * TW + (g.kw - 1) * g.dw;  // "rows": >= W + pl + pr
  const int64_t copies = flat ? g.kw : 1;
  const int64_t span = (g.kh - 1) * g.dh + 1;  // input rows one output row reads
  // output rows per task: the slab within about kColBytes, and enough tasks for the threads
  const int64_t row_bytes = std::max<int64_t>(1, copies * g.cg * row_ld * (int64_t)sizeof(T));  // (no channels: 0)
  int64_t rb = std::max<int64_t>(1, (kColBytes / row_bytes - span) / g.sh + 1);
  const int64_t want = 4 * at::get_num_threads();
  rb = std::max<int64_t>(1, std::min(rb, (g.n * g.groups * g.ho + want - 1) / want));
  const int64_t rblocks = (g.ho + rb - 1) / rb, plane = g.ho * g.wo;
  at::parallel_for(0, g.n * g.groups * rblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> slab;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t oh0 = t % rblocks * rb, oh1 = std::min(g.ho, oh0 + rb);
      const int64_t grp = (t / rblocks) % g.groups, n = t / (rblocks * g.groups);
      const int64_t rows = (oh1 - oh0 - 1) * g.sh + span, ih0 = oh0 * g.sh - g.pt, c_ld = rows * row_ld;
      const T* xg = x + (n * g.c + grp * g.cg) * g.h * g.w;
      const T* wg = w + grp * g.og * g.cg * g.kh * g.kw;
      const T* bg = b ? b + grp * g.og : nullptr;
      T* yg = y + (n * g.o + grp * g.og) * plane;
      if (flat) {
        slab.resize(copies * g.cg * c_ld + TW);
        build_flat_slab(xg, g, 0, g.cg, ih0, rows, slab.data());
        const int64_t np = (oh1 - oh0) * g.wo;
        for (int64_t p = 0; p < np; p += TW)
          rows_channels(slab.data() + p, c_ld, g.dh * g.wo, g.cg * c_ld, wg, bg, yg + oh0 * g.wo + p, plane,
                        std::min(TW, np - p), g);
      } else {
        padded_rows_slab(xg, g, ih0, rows, row_ld, slab);
        for (int64_t oh = oh0; oh < oh1; ++oh)
          for (int64_t ow0 = 0; ow0 < g.wo; ow0 += TW)
            rows_channels(slab.data() + (oh - oh0) * g.sh * row_ld + ow0, c_ld, g.dh * row_ld, g.dw, wg, bg,
                          yg + oh * g.wo + ow0, plane, std::min(TW, g.wo - ow0), g);
      }
    }
  });
}

// Depthwise (one input and one output channel per group; column stride 1), e.g. X1: a task owns a block of
// output rows of one image and group. It copies the input rows they read once into a zero-padded slab
// (row pitch ld >= the padded width plus a chunk of slack, so every vector load stays inside), then per
// output row and output channel keeps a chunk of DW_V vectors of the row in registers and adds the kh*kw
// taps, each one unaligned load and one FMA per vector, the weight broadcast from a register. The
// general rows kernel (forward_rows) made kw shifted copies and ran its channel loops for one channel:
// X1 at N=8 took 4.7 ms on one thread, 40 % of it in those copies. Summation order per output: bias,
// then (i, j) ascending, as in forward_rows. Workspace: the slab, about kColBytes per task.
constexpr int64_t kDepthwiseVectors = 4;  // vectors of one output row held in registers

// One input and one output channel per group (X1, and single-channel T1). With more output channels per
// group (a depthwise multiplier, LeNet conv1) forward_rows' register block of up to 8 channels reuses
// each load 8 times and stays.
inline bool depthwise_applies(const ConvGeom& g) { return g.cg == 1 && g.og == 1 && g.sw == 1; }

template <typename T, int64_t KW>  // KW > 0: the kernel width known at compile time; 0: g.kw
inline void depthwise_chunk(const T* row0, int64_t row_step, const T* wk, T bias, T* y, int64_t cnt,
                            const ConvGeom& g) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  const int64_t kw = KW > 0 ? KW : g.kw;
  V acc[kDepthwiseVectors];
  for (int64_t v = 0; v < kDepthwiseVectors; ++v) acc[v] = splat<T>(bias);
  for (int64_t i = 0; i < g.kh; ++i) {
    const T* row = row0 + i * row_step;
    for (int64_t j = 0; j < kw; ++j) {
      const T wv = wk[i * kw + j];
      const T* xs = row + j * g.dw;
#pragma GCC unroll 4
      for (int64_t v = 0; v < kDepthwiseVectors; ++v) acc[v] += wv * vload(xs + v * L);
    }
  }
  for (int64_t v = 0; v < kDepthwiseVectors && v * L < cnt; ++v) {
    const int64_t m = std::min(L, cnt - v * L);
    if (m == L) {
      vstore(y + v * L, acc[v]);
    } else {
      alignas(64) T tmp[L];
      vstore(tmp, acc[v]);
      std::copy(tmp, tmp + m, y + v * L);
    }
  }
}

// 3x3, stride 1, row dilation 1 (any column dilation dw): R output rows x VB vectors of columns at once. Each
// input row's three shifted vectors are loaded once and feed every output row that reads it (up to 3), so a
// block loads (R + 2) * 3 * VB vectors for 9 * R * VB FMAs, against depthwise_chunk's 9 loads per vector's 9
// FMAs. The order per output is the same (bias, then (i, j) ascending): the same results bitwise.
template <typename T, int R, int VB>
inline void depthwise3_rows(const T* in, int64_t ld, int64_t dw, const T* wk, T bias, T* y, int64_t y_ld,
                            int64_t cnt) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  V acc[R][VB];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < VB; ++v) acc[r][v] = splat<T>(bias);
#pragma GCC unroll 8
  for (int ir = 0; ir < R + 2; ++ir) {
    const T* row = in + ir * ld;
#pragma GCC unroll 3
    for (int j = 0; j < 3; ++j) {
      V xv[VB];
      for (int v = 0; v < VB; ++v) xv[v] = vload(row + j * dw + v * L);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const int i = ir - r;  // the kernel row that input row ir is for output row r
        if (i < 0 || i > 2) continue;
        const T wv = wk[i * 3 + j];
        for (int v = 0; v < VB; ++v) acc[r][v] += wv * xv[v];
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < VB && v * L < cnt; ++v) store_n(y + r * y_ld + v * L, acc[r][v], std::min(L, cnt - v * L));
}

template <typename T>
inline void depthwise3_rows_n(int nr, const T* in, int64_t ld, int64_t dw, const T* wk, T bias, T* y, int64_t y_ld,
                              int64_t cnt) {
  constexpr int VB = 2;
  switch (nr) {
    case 4: return depthwise3_rows<T, 4, VB>(in, ld, dw, wk, bias, y, y_ld, cnt);
    case 3: return depthwise3_rows<T, 3, VB>(in, ld, dw, wk, bias, y, y_ld, cnt);
    case 2: return depthwise3_rows<T, 2, VB>(in, ld, dw, wk, bias, y, y_ld, cnt);
    default: return depthwise3_rows<T, 1, VB>(in, ld, dw, wk, bias, y, y_ld, cnt);
  }
}

template <typename T, int64_t KW>
void forward_depthwise_impl(const T* x, const T* w, const T* b, T* y, const ConvGeom& g) {
  constexpr int64_t CH = kDepthwiseVectors * Simd<T>::L;
  const int64_t chunks = (g.wo + CH - 1) / CH;
  const int64_t ld = chunks * CH + (g.kw - 1) * g.dw;  // >= pl + W + pr: the last chunk's loads stay inside
  const int64_t span = (g.kh - 1) * g.dh + 1, khw = g.kh * g.kw, plane = g.ho * g.wo;
  int64_t rb = std::max<int64_t>(1, (kColBytes / (ld * (int64_t)sizeof(T)) - span) / g.sh + 1);
  const int64_t want = 4 * at::get_num_threads();
  rb = std::max<int64_t>(1, std::min(rb, (g.n * g.groups * g.ho + want - 1) / want));
  const int64_t rblocks = (g.ho + rb - 1) / rb;
  static_assert(kDepthwiseVectors % 2 == 0, "depthwise3_rows' 2-vector blocks must tile the slab's chunks");
  const bool rows3 = KW == 3 && g.kh == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1;
  at::parallel_for(0, g.n * g.groups * rblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> slab;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t oh0 = t % rblocks * rb, oh1 = std::min(g.ho, oh0 + rb);
      const int64_t grp = (t / rblocks) % g.groups, n = t / (rblocks * g.groups);
      const int64_t rows = (oh1 - oh0 - 1) * g.sh + span, ih0 = oh0 * g.sh - g.pt;
      const T* xc = x + (n * g.c + grp) * g.h * g.w;
      slab.resize(rows * ld);
      for (int64_t r = 0; r < rows; ++r) {
        T* dst = slab.data() + r * ld;
        const int64_t ih = ih0 + r;
        if (ih < 0 || ih >= g.h) {
          std::fill(dst, dst + ld, T(0));
          continue;
        }
        std::fill(dst, dst + g.pl, T(0));
        std::copy(xc + ih * g.w, xc + (ih + 1) * g.w, dst + g.pl);
        std::fill(dst + g.pl + g.w, dst + ld, T(0));
      }
      for (int64_t o = grp * g.og; o < (grp + 1) * g.og; ++o) {
        const T* wk = w + o * khw;
        const T bias = b ? b[o] : T(0);
        T* yo = y + (n * g.o + o) * plane;
        if (rows3) {  // blocks of 4 output rows x 2 vectors (the slab's ld covers whole 2-vector blocks)
          constexpr int64_t W2 = 2 * Simd<T>::L;
          for (int64_t oh = oh0; oh < oh1; oh += 4)
            for (int64_t c = 0; c < g.wo; c += W2)
              depthwise3_rows_n<T>(static_cast<int>(std::min<int64_t>(4, oh1 - oh)), slab.data() + (oh - oh0) * ld + c,
                                   ld, g.dw, wk, bias, yo + oh * g.wo + c, g.wo, std::min(W2, g.wo - c));
          continue;
        }
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          const T* row0 = slab.data() + (oh - oh0) * g.sh * ld;
          for (int64_t c = 0; c < chunks; ++c)
            depthwise_chunk<T, KW>(row0 + c * CH, g.dh * ld, wk, bias, yo + oh * g.wo + c * CH,
                                   std::min(CH, g.wo - c * CH), g);
        }
      }
    }
  });
}

template <typename T>
void forward_depthwise(const T* x, const T* w, const T* b, T* y, const ConvGeom& g) {
  if (g.kw == 3)
    forward_depthwise_impl<T, 3>(x, w, b, y, g);
  else
    forward_depthwise_impl<T, 0>(x, w, b, y, g);
}

template <typename T>
void forward_kernel(const T* x, const T* w, const T* b, T* y, const ConvGeom& g, bool rows) {
  if (rows)
    forward_rows<T>(x, w, b, y, g);
  else if (g.og >= 6)
    forward_tiled<T, 8>(x, w, b, y, g);
  else if (g.og >= 3)
    forward_tiled<T, 4>(x, w, b, y, g);
  else
    forward_tiled<T, 1>(x, w, b, y, g);
}

// grad_input = col2im(W^T dY), tiled. A task owns input channels [c0, c1) of one image and group, i.e. the
// rows k of W^T for those channels, and so owns gx[n, c0:c1] (zeroed first): no two tasks write the same
// element. Per chunk of P positions (P fixed, so the summation order of every element is the same for any
// split) it packs dY of the group's output channels as [tile][o][TW], computes the column gradient
// cols[k][p] = sum_o W[o, k] dY[o, p] with gemm_tile (8 rows of k per register tile, o ascending) and
// scatters it with col2im_add. FLOPs equal the forward's; the scatter is K*P adds per chunk.
template <typename T>
void grad_input_tiled(const T* gy, const T* w, T* gx, const ConvGeom& g) {
  using V = typename Simd<T>::V;
  constexpr int RB = 8;
  constexpr int64_t TW = 2 * Simd<T>::L;
  const int64_t K = g.cg * g.kh * g.kw, khw = g.kh * g.kw, hw = g.ho * g.wo;
  // W^T panels: rows = k of a group, reduction index = the group's output channel o.
  const T* wtpk = pack_wt_panels<T, RB>(w, g);
  const int64_t nrb_total = (K + RB - 1) / RB;
  const std::vector<Tap> taps = column_taps(g);
  const int64_t P = std::min<int64_t>((hw + TW - 1) / TW, 4) * TW;
  const int64_t chunks = (hw + P - 1) / P;
  // channel blocks: enough tasks for the threads, and a column tile of at most kColBytes
  const int64_t want = 2 * at::get_num_threads();
  const int64_t split = std::max<int64_t>(1, (want + g.n * g.groups - 1) / (g.n * g.groups));
  int64_t cb = std::max<int64_t>(1, (g.cg + split - 1) / split);
  cb = std::max<int64_t>(1, std::min(cb, kColBytes / (khw * P * (int64_t)sizeof(T))));
  const int64_t cblocks = (g.cg + cb - 1) / cb;
  at::parallel_for(0, g.n * g.groups * cblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> gyp(g.og * P), cols(cb * khw * P);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t cbk = t % cblocks, grp = (t / cblocks) % g.groups, n = t / (cblocks * g.groups);
      const int64_t c0 = cbk * cb, c1 = std::min(g.cg, c0 + cb), k0 = c0 * khw, k1 = c1 * khw, nk = k1 - k0;
      T* gxg = gx + (n * g.c + grp * g.cg) * g.h * g.w;
      std::fill(gxg + c0 * g.h * g.w, gxg + c1 * g.h * g.w, T(0));
      for (int64_t ch = 0; ch < chunks; ++ch) {
        const int64_t p0 = ch * P, np = std::min(P, hw - p0), ntiles = (np + TW - 1) / TW;
        for (int64_t o = 0; o < g.og; ++o) {  // dY[o, p0:p0+np] -> gyp[tile][o][TW], zero tail
          const T* src = gy + (n * g.o + grp * g.og + o) * hw + p0;
          for (int64_t tile = 0; tile < ntiles; ++tile) {
            T* dst = gyp.data() + (tile * g.og + o) * TW;
            const int64_t cnt = std::min(TW, np - tile * TW);
            std::copy(src + tile * TW, src + tile * TW + cnt, dst);
            std::fill(dst + cnt, dst + TW, T(0));
          }
        }
        for (int64_t rb = k0 / RB; rb * RB < k1; ++rb) {  // W^T panels by absolute k; keep rows in [k0, k1)
          const T* panel = wtpk + (grp * nrb_total + rb) * g.og * RB;
          for (int64_t tile = 0; tile < ntiles; ++tile) {
            V acc[RB][2];
            for (int r = 0; r < RB; ++r) acc[r][0] = acc[r][1] = V{};
            gemm_tile<T, RB>(panel, gyp.data() + tile * g.og * TW, g.og, acc);
            for (int64_t r = 0; r < RB; ++r) {
              const int64_t k = rb * RB + r;
              if (k < k0 || k >= k1) continue;
              T* dst = cols.data() + (tile * nk + (k - k0)) * TW;
              vstore(dst, acc[r][0]);
              vstore(dst + Simd<T>::L, acc[r][1]);
            }
          }
        }
        col2im_add<T, TW>(cols.data(), g, taps, p0, np, k0, k1, gxg);
      }
    }
  });
}

constexpr int64_t kGradWeightSlabs = 8;  // grad_weight_tiled's position slabs (fixed: thread-independent sums)

// grad_weight_tiled splits the positions into slabs (instead of rows of k / output tiles) when there are many
// positions per weight and a slab's full-K accumulator is small: every other split re-reads an operand the
// size of dY or of the columns once per task.
inline bool grad_weight_splits_positions(const ConvGeom& g, int64_t itemsize) {
  const int64_t TW = 2 * 64 / itemsize, K = g.cg * g.kh * g.kw, og_pad = (g.og + TW - 1) / TW * TW;
  return g.n * g.ho * g.wo >= 64 * K && K * og_pad * itemsize <= (256 << 10);
}

// grad_weight, tiled: gw[o, k] = sum over images and positions p of dY[o, p] * cols[k][p], a GEMM whose
// reduction runs over positions. A task owns rows k in [k0, k1) of one group for all its output channels,
// i.e. gw[:, k0:k1], accumulated in a per-task buffer gwt[k][o]. Per chunk of P positions (P fixed; flattened
// over images, so a chunk may span images) it packs those rows of cols (pack_cols: [tile][k][TW]) and dY into
// gyT[otile][p][TW] (o contiguous, zero past the group's channels and past np), then for every 8 k x TW o
// register tile runs gemm_tile_rows over the P positions (p ascending), the 8 rows of k read in place from
// the column tiles: 2 vector loads + 8 broadcasts per 16 FMAs and one load/store of the tile per chunk.
// Transposing the columns into 8-row panels first (the layout gemm_tile wants) cost a second pass over them:
// without it, gw alone, us, 2 threads (torch in brackets): R6 N=1 920 -> 730 (670), N=8 8413 -> 7098 (5200);
// R11 N=8 6078 -> 5776 (5438); R10 N=1 404 -> 365, N=8 2661 -> 2560. Same order of sums: same results.
// The summation order of an element depends only on P, never
// on the split, so results are thread-count independent. With many positions per weight and a small gw
// (grad_weight_splits_positions: R1), tasks are instead a fixed number of slabs of position chunks, each
// with a full-K accumulator, summed in slab order at the end: nothing is packed twice.
template <typename T>
void grad_weight_tiled(const T* x, const T* gy, T* gw, const ConvGeom& g) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L, TW = 2 * L;
  constexpr int RB = 8;
  const int64_t K = g.cg * g.kh * g.kw, hw = g.ho * g.wo;
  const std::vector<Tap> taps = column_taps(g);
  // chunks of P positions: per image for the position-slab split (split_p), else flattened over images (a
  // chunk may span images: R11's 7x7 maps at N=8 fill 13 tiles of 32 positions, not 8 x 2 of 49 in 64)
  if (g.n * hw == 0) {  // no positions (an empty batch): no terms
    std::fill(gw, gw + g.o * K, T(0));
    return;
  }
  const bool split_p = grad_weight_splits_positions(g, sizeof(T));
  const int64_t span = split_p ? hw : g.n * hw;
  const int64_t P = std::min<int64_t>((span + TW - 1) / TW, 8) * TW;
  const int64_t chunks = (span + P - 1) / P;
  const int64_t otiles = (g.og + TW - 1) / TW, og_pad = otiles * TW;
  // Parallel split: over rows k when K >= Og (each task then re-packs its share of dY), else over output
  // tiles (each task re-packs the columns): the duplicated packing is the smaller operand.
  const int64_t want = 2 * at::get_num_threads();
  const int64_t split = std::max<int64_t>(1, (want + g.groups - 1) / g.groups);
  const bool split_k = K >= g.og;
  int64_t kc = split_k ? ((K + split - 1) / split + RB - 1) / RB * RB : (K + RB - 1) / RB * RB;
  // bound the accumulator buffer (kc x og_pad) and the column tile (kc x P)
  kc = std::max<int64_t>(RB, std::min(kc, (kColBytes / ((int64_t)sizeof(T) * std::max(og_pad, P))) / RB * RB));
  if (const int64_t nt = at::get_num_threads(); split_k && g.groups % nt != 0) {
    // k blocks in a multiple of the thread count, of equal size (R6 N=8: 256 x 4 + 128 on 2 threads left one
    // thread a third idle; now 6 x 192). The sums run over positions only, whatever the blocks.
    const int64_t blocks = ((K + kc - 1) / kc + nt - 1) / nt * nt;
    kc = std::max<int64_t>(RB, ((K + blocks - 1) / blocks + RB - 1) / RB * RB);
  }
  const int64_t kblocks = (K + kc - 1) / kc;
  const int64_t osplit = split_k ? 1 : std::min(otiles, split), ot_per = (otiles + osplit - 1) / osplit;
  // dY transposed into [otile][p][TW] panels once for every task (the same values a task would pack for
  // itself), when that copy is small: otherwise every k-block task re-packs all of dY (kblocks times).
  const int64_t panel = P * TW, per_chunk = otiles * panel;
  const int64_t gy_chunks = split_p ? g.n * chunks : chunks;  // chunks of dY per group
  const bool shared_gy = !split_p && split_k && kblocks > 1 &&
                         g.groups * gy_chunks * per_chunk * (int64_t)sizeof(T) <= kSharedGyBytes;
  std::vector<T> gys(shared_gy ? g.groups * gy_chunks * per_chunk : 0);
  // dY of positions [q0, q0 + np) flattened over images (q = n * hw + p), output tiles [ot0, ot1)
  auto pack_gy = [&](int64_t q0, int64_t np, int64_t grp, int64_t ot0, int64_t ot1, T* dst_chunk) {
    std::fill(dst_chunk + ot0 * panel, dst_chunk + ot1 * panel, T(0));
    const int64_t o_end = std::min(g.og, ot1 * TW);
    for (int64_t done = 0; done < np;) {  // one image's run of positions at a time
      const int64_t n = (q0 + done) / hw, p = (q0 + done) % hw, run = std::min(np - done, hw - p);
      for (int64_t o = ot0 * TW; o < o_end;) {  // 8 channels at a time (TW is a multiple of 8)
        const T* src = gy + (n * g.o + grp * g.og + o) * hw + p;
        T* dst = dst_chunk + (o / TW) * panel + done * TW + o % TW;
        if (o + 8 <= o_end) {
          transpose_rows8(src, hw, dst, run, TW);
          o += 8;
        } else {
          for (int64_t q = 0; q < run; ++q) dst[q * TW] = src[q];
          ++o;
        }
      }
      done += run;
    }
  };
  if (shared_gy)
    at::parallel_for(0, g.groups * chunks, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t q0 = (i % chunks) * P;
        pack_gy(q0, std::min(P, span - q0), i / chunks, 0, otiles, gys.data() + i * per_chunk);
      }
    });
  // One chunk of positions into acc[k - k0][o] (ld og_pad) for rows k in [k0, k1) and output tiles
  // [ot0, ot1): pack the columns, run the 8 x TW register tiles over the chunk's positions. gyc: the chunk's
  // dY panels.
  const std::vector<T> zero_tile(TW, T(0));  // stands in for the rows past a block's last row of k
  auto chunk_gemm = [&](const T* xg, int64_t p0, int64_t np, int64_t k0, int64_t k1, int64_t ot0, int64_t ot1,
                        const T* gyc, T* cols, T* acc) {  // p0 within the image at xg; np may run on
    const int64_t ntiles = (np + TW - 1) / TW;
    const int64_t nk = k1 - k0, kpanels = (nk + RB - 1) / RB;
    pack_cols<T, TW>(xg, g, taps, p0, np, k0, k1, cols);
    // the 8 rows of a panel read in place from the column tiles, one tile of TW positions at a time (rows past
    // nk: zeros), p ascending over the chunk as before
    for (int64_t ot = ot0; ot < ot1; ++ot)  // the dY panel (P x TW) stays in L1 across the panels of k
      for (int64_t kp = 0; kp < kpanels; ++kp) {
        V acc_r[RB][2];
        T* c = acc + (kp * RB) * og_pad + ot * TW;
        for (int r = 0; r < RB; ++r) {
          acc_r[r][0] = vload(c + r * og_pad);
          acc_r[r][1] = vload(c + r * og_pad + L);
        }
        for (int64_t tile = 0; tile < ntiles; ++tile) {
          const T* rows[RB];
          for (int r = 0; r < RB; ++r)
            rows[r] = kp * RB + r < nk ? cols + (tile * nk + kp * RB + r) * TW : zero_tile.data();
          gemm_tile_rows<T, RB>(rows, 0, gyc + ot * panel + tile * TW * TW, TW, acc_r);
        }
        for (int r = 0; r < RB; ++r) {
          vstore(c + r * og_pad, acc_r[r][0]);
          vstore(c + r * og_pad + L, acc_r[r][1]);
        }
      }
  };
  // acc[k - k0][o] -> gw[o][k] in 16 x 16 blocks, so that both sides stay in L1 (a plain loop reads acc with
  // a stride of og_pad per element: 19 % of grad_weight's time on R9 at N=1)
  auto store_gw = [&](const T* acc, int64_t grp, int64_t k0, int64_t k1, int64_t o_begin, int64_t o_end) {
    for (int64_t ob = o_begin; ob < o_end; ob += 16)
      for (int64_t kb = k0; kb < k1; kb += 16)
        for (int64_t o = ob; o < std::min(o_end, ob + 16); ++o)
          for (int64_t k = kb; k < std::min(k1, kb + 16); ++k) gw[(grp * g.og + o) * K + k] = acc[(k - k0) * og_pad + o];
  };
  if (split_p) {
    // Many positions, small gw (R1 at N=8: 100352 positions, gw 147 x 64): a fixed number of slabs of
    // chunks, each with its own full-K accumulator, so dY and x are each read and packed once (the k split
    // had every task stream all of dY: R1 N=8 grad_weight 20.6 ms against torch's 8.6). The slabs are
    // summed in slab order at the end: the result depends on the slab count, fixed here, not on the threads.
    const int64_t nchunks = g.n * chunks, slabs = std::min<int64_t>(nchunks, kGradWeightSlabs);
    const int64_t kcp = std::max<int64_t>(RB, std::min<int64_t>((K + RB - 1) / RB * RB,
                                                                 kColBytes / ((int64_t)sizeof(T) * P) / RB * RB));
    const int64_t Kp = (K + RB - 1) / RB * RB;  // a slab's rows: the last 8-row panel writes up to Kp
    std::vector<T> partial(g.groups * slabs * Kp * og_pad, T(0));
    at::parallel_for(0, g.groups * slabs, 1, [&](int64_t begin, int64_t end) {
      std::vector<T> cols(kcp * P), gyt(per_chunk);
      for (int64_t t = begin; t < end; ++t) {
        const int64_t grp = t / slabs, sl = t % slabs;
        T* const acc = partial.data() + t * Kp * og_pad;
        for (int64_t i = sl * nchunks / slabs; i < (sl + 1) * nchunks / slabs; ++i) {
          const int64_t n = i / chunks, p0 = (i % chunks) * P, np = std::min(P, hw - p0);
          pack_gy(n * hw + p0, np, grp, 0, otiles, gyt.data());
          const T* xg = x + (n * g.c + grp * g.cg) * g.h * g.w;
          for (int64_t k0 = 0; k0 < K; k0 += kcp)
            chunk_gemm(xg, p0, np, k0, std::min(K, k0 + kcp), 0, otiles, gyt.data(), cols.data(),
                       acc + k0 * og_pad);
        }
      }
    });
    at::parallel_for(0, g.groups * K, 64, [&](int64_t begin, int64_t end) {  // partial[grp][0] += the rest
      for (int64_t r = begin; r < end; ++r) {
        const int64_t grp = r / K, k = r % K;
        T* const dst = partial.data() + (grp * slabs * Kp + k) * og_pad;
        for (int64_t sl = 1; sl < slabs; ++sl) {
          const T* src = partial.data() + ((grp * slabs + sl) * Kp + k) * og_pad;
          for (int64_t o = 0; o < og_pad; ++o) dst[o] += src[o];
        }
      }
    });
    at::parallel_for(0, g.groups, 1, [&](int64_t begin, int64_t end) {
      for (int64_t grp = begin; grp < end; ++grp) store_gw(partial.data() + grp * slabs * Kp * og_pad, grp, 0, K, 0, g.og);
    });
    return;
  }
  at::parallel_for(0, g.groups * kblocks * osplit, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> cols(kc * P), gyt(shared_gy ? 0 : per_chunk), acc_buf(kc * og_pad);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t os = t % osplit, kb = (t / osplit) % kblocks, grp = t / (osplit * kblocks);
      const int64_t k0 = kb * kc, k1 = std::min(K, k0 + kc);
      const int64_t ot0 = os * ot_per, ot1 = std::min(otiles, ot0 + ot_per);
      if (ot0 >= ot1) continue;  // e.g. 5 tiles split 4 ways, 2 per task: the last task has none
      std::fill(acc_buf.begin(), acc_buf.end(), T(0));
      for (int64_t ch = 0; ch < chunks; ++ch) {  // positions flattened over images
        const int64_t q0 = ch * P, np = std::min(P, span - q0);
        const T* xg = x + ((q0 / hw) * g.c + grp * g.cg) * g.h * g.w;
        const T* gyc = shared_gy ? gys.data() + (grp * chunks + ch) * per_chunk : gyt.data();
        if (!shared_gy) pack_gy(q0, np, grp, ot0, ot1, gyt.data());
        chunk_gemm(xg, q0 % hw, np, k0, k1, ot0, ot1, gyc, cols.data(), acc_buf.data());
      }
      store_gw(acc_buf.data(), grp, k0, k1, ot0 * TW, std::min(g.og, ot1 * TW));
    }
  });
}

// grad_weight for few output channels per group (Og <= kFewChannels: LeNet, depthwise, channel tails), where
// grad_weight_tiled's 32-wide output tiles would be mostly padding: gw[o, k] = sum_p dY[o, p] cols[k][p]
// vectorised along positions. A task owns a block of rows k of one group, for all Og channels. Per image and
// chunk of positions (never straddling images) it packs its rows of cols (pack_cols: [tile][k][TW]) and
// copies the chunk of dY (zero past the last position), then for every OB x KB block of (o, k) keeps OB * KB
// vector accumulators (lanes = positions) in registers over the chunk: KB + OB loads per OB * KB FMAs.
// Accumulators live in acc[o][k][L] between chunks; their lanes are summed into gw at the end in a fixed
// order, so the result depends neither on the split nor on the thread count.
// Workspace per task: the column tile and the dY chunk (<= kColBytes each) and Og x nk x L accumulators.
// OB x KB accumulators over ntiles tiles of TW positions: acc[a][k] += dY row a * column row k, where row k
// of the columns starts at xrow(k) and advances by xts per tile, and dY row a at gyc + a * ld.
template <typename T, int OB, int KB, typename XRow>
inline void lanes_block(const XRow& xrow, int64_t xts, int64_t kk, const T* gyc, int64_t ld, int64_t ntiles,
                        typename Simd<T>::V* acc_o, int64_t acc_ld) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L, TW = 2 * L;
  V acc[OB][KB];
  const T* xr[KB];
  for (int b = 0; b < KB; ++b) xr[b] = xrow(kk + b);
  for (int a = 0; a < OB; ++a)
    for (int b = 0; b < KB; ++b) acc[a][b] = acc_o[a * acc_ld + kk + b];
  for (int64_t t = 0; t < ntiles; ++t)
    for (int64_t h = 0; h < TW; h += L) {
      V c[KB];
      for (int b = 0; b < KB; ++b) c[b] = vload(xr[b] + t * xts + h);
      for (int a = 0; a < OB; ++a) {
        const V gv = vload(gyc + a * ld + t * TW + h);
        for (int b = 0; b < KB; ++b) acc[a][b] += gv * c[b];
      }
    }
  for (int a = 0; a < OB; ++a)
    for (int b = 0; b < KB; ++b) acc_o[a * acc_ld + kk + b] = acc[a][b];
}

template <typename T, int OB, typename XRow>
inline void lanes_rows(const XRow& xrow, int64_t xts, int64_t nk, const T* gyc, int64_t ld, int64_t ntiles,
                       typename Simd<T>::V* acc_o, int64_t acc_ld) {
  int64_t kk = 0;
  for (; kk + 4 <= nk; kk += 4) lanes_block<T, OB, 4>(xrow, xts, kk, gyc, ld, ntiles, acc_o, acc_ld);
  switch (nk - kk) {
    case 3: lanes_block<T, OB, 3>(xrow, xts, kk, gyc, ld, ntiles, acc_o, acc_ld); break;
    case 2: lanes_block<T, OB, 2>(xrow, xts, kk, gyc, ld, ntiles, acc_o, acc_ld); break;
    case 1: lanes_block<T, OB, 1>(xrow, xts, kk, gyc, ld, ntiles, acc_o, acc_ld); break;
    default: break;
  }
}

// All Og channels of one chunk: gyc holds Og rows of npad positions (zero past the last one).
template <typename T, typename XRow>
inline void lanes_chunk(const XRow& xrow, int64_t xts, int64_t nk, const T* gyc, int64_t npad, int64_t og,
                        typename Simd<T>::V* acc, int64_t acc_ld) {
  const int64_t ntiles = npad / (2 * Simd<T>::L);
  for (int64_t o = 0; o < og; o += 4) {
    const T* go = gyc + o * npad;
    typename Simd<T>::V* ao = acc + o * acc_ld;
    switch (std::min<int64_t>(4, og - o)) {
      case 4: lanes_rows<T, 4>(xrow, xts, nk, go, npad, ntiles, ao, acc_ld); break;
      case 3: lanes_rows<T, 3>(xrow, xts, nk, go, npad, ntiles, ao, acc_ld); break;
      case 2: lanes_rows<T, 2>(xrow, xts, nk, go, npad, ntiles, ao, acc_ld); break;
      default: lanes_rows<T, 1>(xrow, xts, nk, go, npad, ntiles, ao, acc_ld);
    }
  }
}

// dY positions [p0, p0 + np) of the group's Og channels of image n, zero-padded to npad.
template <typename T>
inline void copy_gy_chunk(const T* gy, const ConvGeom& g, int64_t n, int64_t grp, int64_t p0, int64_t np,
                          int64_t npad, T* gyc) {
  const int64_t hw = g.ho * g.wo;
  for (int64_t o = 0; o < g.og; ++o) {
    const T* src = gy + (n * g.o + grp * g.og + o) * hw + p0;
    std::copy(src, src + np, gyc + o * npad);
    std::fill(gyc + o * npad + np, gyc + (o + 1) * npad, T(0));
  }
}

template <typename T>
void write_lanes(const std::vector<typename Simd<T>::V>& acc, int64_t acc_ld, int64_t og, int64_t k0, int64_t k1,
                 int64_t grp, int64_t K, T* gw) {
  for (int64_t o = 0; o < og; ++o)
    for (int64_t k = k0; k < k1; ++k) {
      const typename Simd<T>::V& a = acc[o * acc_ld + (k - k0)];
      T s = 0;
      for (int64_t l = 0; l < Simd<T>::L; ++l) s += a[l];
      gw[(grp * og + o) * K + k] = s;
    }
}

// grad_weight with stride 1 from the forward's flat slabs instead of packed columns: row k = (c, i, j) of
// the columns at position p is slab[j][c][p + i*dh*Wo]. A task owns channels [c0, c1) of one group and one
// of kFlatImageBlocks fixed blocks of images; the blocks' sums are added in block order at the end, so the
// result does not depend on the thread count (the channel split does not change any summation order).
constexpr int64_t kFlatImageBlocks = 4;
constexpr int64_t kFlatAccBytes = 1024 * 1024;

template <typename T>
void grad_weight_flat(const T* x, const T* gy, T* gw, const ConvGeom& g) {
  using V = typename Simd<T>::V;
  constexpr int64_t TW = 2 * Simd<T>::L;
  const int64_t K = g.cg * g.kh * g.kw, khw = g.kh * g.kw, span = (g.kh - 1) * g.dh + 1;
  const int64_t nblocks = std::max<int64_t>(1, std::min<int64_t>(g.n, kFlatImageBlocks));
  const int64_t nper = (g.n + nblocks - 1) / nblocks;
  const int64_t want = 2 * at::get_num_threads();
  const int64_t split = std::max<int64_t>(1, (want + g.groups * nblocks - 1) / (g.groups * nblocks));
  // channels per task: enough tasks for the threads, and the Og x nk vector accumulators within
  // kFlatAccBytes (G1, 192 -> 32 channels 5x5 at N=8: one task per image block held 9.8 MB of them, out of
  // L2, and took 66 ms)
  const int64_t acc_cb = std::max<int64_t>(1, kFlatAccBytes / (g.og * khw * (int64_t)sizeof(V)));
  const int64_t cb = std::min((g.cg + split - 1) / split, acc_cb), cblocks = (g.cg + cb - 1) / cb;
  const int64_t rb =
      std::max<int64_t>(1, std::min(g.ho, kColBytes / ((int64_t)sizeof(T) * g.kw * cb * g.wo) - span + 1));
  std::vector<T> part(nblocks * g.o * K);  // per image block: gw's layout
  at::parallel_for(0, g.groups * cblocks * nblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> slab, gyc;
    std::vector<V> acc;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t nb = t % nblocks, cbi = (t / nblocks) % cblocks, grp = t / (nblocks * cblocks);
      const int64_t c0 = cbi * cb, c1 = std::min(g.cg, c0 + cb), nc = c1 - c0, nk = nc * khw;
      acc.assign(g.og * nk, V{});
      for (int64_t n = nb * nper; n < std::min(g.n, (nb + 1) * nper); ++n) {
        const T* xg = x + (n * g.c + grp * g.cg) * g.h * g.w;
        for (int64_t oh0 = 0; oh0 < g.ho; oh0 += rb) {
          const int64_t oh1 = std::min(g.ho, oh0 + rb), rows = oh1 - oh0 - 1 + span, c_ld = rows * g.wo;
          const int64_t np = (oh1 - oh0) * g.wo, npad = (np + TW - 1) / TW * TW;
          slab.resize(g.kw * nc * c_ld + TW);
          build_flat_slab(xg, g, c0, c1, oh0 - g.pt, rows, slab.data());
          gyc.resize(g.og * npad);
          copy_gy_chunk(gy, g, n, grp, oh0 * g.wo, np, npad, gyc.data());
          const T* sl = slab.data();
          auto xrow = [&](int64_t k) {  // k = (c - c0, i, j)
            const int64_t c = k / khw, i = (k / g.kw) % g.kh, j = k % g.kw;
            return sl + (j * nc + c) * c_ld + i * g.dh * g.wo;
          };
          lanes_chunk<T>(xrow, TW, nk, gyc.data(), npad, g.og, acc.data(), nk);
        }
      }
      write_lanes<T>(acc, nk, g.og, c0 * khw, c1 * khw, grp, K, part.data() + nb * g.o * K);
    }
  });
  for (int64_t e = 0; e < g.o * K; ++e) {
    T s = part[e];
    for (int64_t nb = 1; nb < nblocks; ++nb) s += part[nb * g.o * K + e];
    gw[e] = s;
  }
}

template <typename T>
void grad_weight_lanes(const T* x, const T* gy, T* gw, const ConvGeom& g) {
  using V = typename Simd<T>::V;
  constexpr int64_t TW = 2 * Simd<T>::L;
  const int64_t K = g.cg * g.kh * g.kw, hw = g.ho * g.wo;
  const std::vector<Tap> taps = column_taps(g);
  const int64_t want = 2 * at::get_num_threads();
  const int64_t split = std::max<int64_t>(1, (want + g.groups - 1) / g.groups);
  const int64_t kc = std::min(K, ((K + split - 1) / split + 3) / 4 * 4);
  const int64_t kblocks = (K + kc - 1) / kc;
  // positions per chunk: whole tiles, the column tile within kColBytes, no more than one image
  const int64_t P = std::min((hw + TW - 1) / TW, std::max<int64_t>(1, kColBytes / ((int64_t)sizeof(T) * kc * TW))) * TW;
  at::parallel_for(0, g.groups * kblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> cols(kc * P), gyc(g.og * P);
    std::vector<V> acc(g.og * kc);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t grp = t / kblocks, k0 = t % kblocks * kc, k1 = std::min(K, k0 + kc), nk = k1 - k0;
      std::fill(acc.begin(), acc.end(), V{});
      for (int64_t n = 0; n < g.n; ++n) {
        const T* xg = x + (n * g.c + grp * g.cg) * g.h * g.w;
        for (int64_t p0 = 0; p0 < hw; p0 += P) {
          const int64_t np = std::min(P, hw - p0), npad = (np + TW - 1) / TW * TW;
          pack_cols<T, TW>(xg, g, taps, p0, np, k0, k1, cols.data());
          copy_gy_chunk(gy, g, n, grp, p0, np, npad, gyc.data());
          const T* cl = cols.data();
          auto xrow = [&](int64_t k) { return cl + k * TW; };  // tile-major: row k of tile t at (t*nk + k)*TW
          lanes_chunk<T>(xrow, nk * TW, nk, gyc.data(), npad, g.og, acc.data(), kc);
        }
      }
      write_lanes<T>(acc, kc, g.og, k0, k1, grp, K, gw);
    }
  });
}

// grad_input through the rows forward, for stride 1 and at most kFewChannels input channels or kFlatChannels
// output channels per group: gx is
// the correlation of dY, zero-padded by d*(k-1) - p, with the weights flipped in both axes and transposed
// (W'[c][o][i][j] = W[o][c][kh-1-i][kw-1-j] per group). Workspace: W' and the forward's slab (the
// channel-lanes kernel flips W while packing it: no W').
inline bool transposed_rows_padding_valid(const ConvGeom& g) {
  return g.sh == 1 && g.sw == 1 && g.pt <= g.dh * (g.kh - 1) && g.pb <= g.dh * (g.kh - 1) &&
         g.pl <= g.dw * (g.kw - 1) && g.pr <= g.dw * (g.kw - 1);
}

// forced: algo="direct" uses it for any channel count
inline bool transposed_rows_applies(const ConvGeom& g, bool forced = false) {
  return transposed_rows_padding_valid(g) && (forced || g.cg <= kFewChannels || g.og <= kFlatChannels);
}

}  // namespace

ConvGeom transposed_geometry(const ConvGeom& g) {
  ConvGeom t = g;
  t.c = g.o; t.h = g.ho; t.w = g.wo; t.o = g.c; t.cg = g.og; t.og = g.cg;
  t.pt = g.dh * (g.kh - 1) - g.pt; t.pb = g.dh * (g.kh - 1) - g.pb;
  t.pl = g.dw * (g.kw - 1) - g.pl; t.pr = g.dw * (g.kw - 1) - g.pr;
  t.ho = g.h; t.wo = g.w;
  return t;
}

namespace {

// oc_lanes: the transposed problem has more than kFewChannels output channels per group (G1: 192 input
// channels), where the channel-lanes forward beats the rows kernel (make_plan's GradInput::OcLanes).
// W'[grp][c][o][i][j] = W[grp][o][c][kh-1-i][kw-1-j] into the kWsFlippedWeights workspace. A task owns
// blocks of kFlipChannels input channels of a group: per o it reads their kh*kw taps, contiguous in W (one
// masked load, a lane reversal, one masked store per (o, c)). Rows o are cg*kh*kw apart, past the hardware
// prefetchers' page: without the software prefetch kFlipAhead rows ahead, R11's 9.4 MB W took ~1.2 ms here
// (each load waiting on memory), with it ~0.28 ms (perf, 2 threads).
// tiled (GradInput::FlippedTiled, "auto" for stride 1 outside the other kernels' rules, not 1x1): gx as
// forward_tiled over dY with W', positions flattened over images, in place of grad_input_tiled's W^T dY per
// image + col2im. gx alone, us, 2 threads, interleaved (grad_input_tiled -> this; torch): R11 N=1 1961 ->
// 1258 (1186), N=8 7734 -> 6066 (5079). 1x1 stays on grad_input_tiled: R10 N=1 385 -> 493.
template <typename T>
const T* flipped_weights(const T* w, const ConvGeom& g) {
  constexpr int64_t kFlipChannels = 16, kFlipAhead = 4;
  const int64_t khw = g.kh * g.kw, og = g.og, cg = g.cg, cblocks = (cg + kFlipChannels - 1) / kFlipChannels;
  T* const wt = call_workspace<T>(kWsFlippedWeights, g.o * cg * khw);
  at::parallel_for(0, g.groups * cblocks, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, og * khw * kFlipChannels)),
                   [w, wt, khw, og, cg, cblocks](int64_t begin, int64_t end) {
#if defined(__AVX512F__)
    using A = Avx512<T>;
    const __m512i reverse = reverse_index<T>(khw);
    const auto m = lanes_mask<T>(std::min<int64_t>(khw, Simd<T>::L));
#endif
    for (int64_t t = begin; t < end; ++t) {
      const int64_t grp = t / cblocks, c0 = (t % cblocks) * kFlipChannels, c1 = std::min(cg, c0 + kFlipChannels);
      for (int64_t o = 0; o < og; ++o) {
        const T* const src = w + ((grp * og + o) * cg) * khw;
        T* const dst0 = wt + (grp * cg * og + o) * khw;
        if (o + kFlipAhead < og)  // rows of W are cg * kh * kw apart: beyond the hardware prefetchers' page
          for (const T* p = src + kFlipAhead * cg * khw + c0 * khw; p < src + kFlipAhead * cg * khw + c1 * khw;
               p += 64 / sizeof(T))
            __builtin_prefetch(p);
        for (int64_t c = c0; c < c1; ++c) {
          T* const dst = dst0 + c * og * khw;
#if defined(__AVX512F__)
          if (khw <= Simd<T>::L) {  // one masked load, a lane reversal and one masked store per (o, c)
            A::store(dst, m, load_reversed(src + c * khw, m, reverse));
            continue;
          }
#endif
          for (int64_t q = 0; q < khw; ++q) dst[q] = src[c * khw + khw - 1 - q];
        }
      }
    }
  });
  return wt;
}

// tiled: forward_tiled on the flipped weights (implicit GEMM with positions flattened over images: R11's
// 7x7 maps fill its tiles where grad_input_tiled's per-image tiles do not; see flipped_weights).
template <typename T>
void grad_input_rows(const T* gy, const T* w, T* gx, const ConvGeom& g, bool oc_lanes, bool tiled = false) {
  const ConvGeom t = transposed_geometry(g);
  if (oc_lanes) return oc_lanes_forward<T>(gy, w, nullptr, gx, t, /*flipped=*/true);  // flips as it packs
  const T* wt = flipped_weights(w, g);
  if (tiled)
    forward_kernel<T>(gy, wt, nullptr, gx, t, /*rows=*/false);
  else if (depthwise_applies(t))  // depthwise with one input and one output channel per group: so is its transpose
    forward_depthwise<T>(gy, wt, nullptr, gx, t);
  else
    forward_rows<T>(gy, wt, nullptr, gx, t);
}

// Pointwise (1x1, stride 1, no padding) gradients are plain matrix products per image:
//   grad_weight[group] = sum_n dY[n, group] (Og x HW) @ X[n, group]^T (HW x Cg)
//   grad_input[n, group] = W[group]^T (Cg x Og) @ dY[n, group] (Og x HW)
// computed with ATen's BLAS, each product single-threaded inside a task (BLAS runs sequentially inside a
// parallel region) and the tasks fixed in size (grad_weight: blocks of 32 output channels, summed over
// images in order; grad_input: one image and group), so results do not depend on the thread count.

// out (+)= a @ b with the reduction in fixed runs of kBlasMaxReduction, accumulated in order: MKL's product
// with a longer reduction (900 positions, 1024 channels here) rounds differently inside a parallel region
// (2 threads) than outside it (1 thread), which broke the bitwise equality of 1 and 2 threads
// (tests/backends/test_algos.py, THREAD_SHAPES).
constexpr int64_t kBlasMaxReduction = 512;

void addmm_runs(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, bool accumulate) {
  const int64_t K = a.size(1);
  for (int64_t k = 0; k < K; k += kBlasMaxReduction) {
    const int64_t nk = std::min(kBlasMaxReduction, K - k);
    if (k == 0 && !accumulate)
      at::mm_out(out, a.narrow(1, k, nk), b.narrow(0, k, nk));
    else
      out.addmm_(a.narrow(1, k, nk), b.narrow(0, k, nk));
  }
}

void pointwise_grad_weight(const at::Tensor& x, const at::Tensor& gy, at::Tensor& gw, const ConvGeom& g) {
  constexpr int64_t kOBlock = 32;
  const int64_t hw = g.h * g.w, oblocks = (g.og + kOBlock - 1) / kOBlock;
  const at::Tensor x3 = x.view({g.n, g.c, hw}), gy3 = gy.view({g.n, g.o, hw});
  at::Tensor gw2 = gw.view({g.o, g.cg});
  gw2.zero_();
  at::parallel_for(0, g.groups * oblocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t grp = t / oblocks, o0 = grp * g.og + (t % oblocks) * kOBlock;
      const int64_t no = std::min(kOBlock, grp * g.og + g.og - o0);
      at::Tensor out = gw2.narrow(0, o0, no);
      for (int64_t n = 0; n < g.n; ++n)
        addmm_runs(out, gy3[n].narrow(0, o0, no), x3[n].narrow(0, grp * g.cg, g.cg).t(), /*accumulate=*/true);
    }
  });
}

// Pointwise grad_weight without BLAS: gw[o, c] = sum over images n and positions p of dY[n, o, p] X[n, c, p],
// both rows read in place (stride 1 along p). Layout: X (N, C, HW), dY (N, O, HW), gw (O, Cg).
// Register tile: kGwOB output x kGwCB input channels = 24 vector accumulators, lane l summing the positions
// p = l (mod L). A task is a range of tiles (tile order: group, output block, input block, the last fastest,
// so a thread reads its output rows and every input row). The positions run in chunks of kGwChunk per image,
// every tile of the task passing over a chunk while its rows sit in L2; between chunks a tile's accumulators
// wait in the task's buffer (24 vectors, 1.5 KiB fp32; kPwGwAccBytes bounds all of them). The last partial
// vector of a row is summed in scalar. Each gw element's sum runs in one fixed order (images, chunks,
// positions; then the lanes in order, then the scalar tail), whatever the thread count.
// Chunks of 512 positions measured best of 128-2048 (1 thread; R2 N=8 118 GFLOP/s, 1024: 93-114, 256: 82-105).
constexpr int64_t kGwOB = 6, kGwCB = 4, kGwChunk = 512;
constexpr int64_t kPwGwAccBytes = int64_t(2) << 20;

int64_t pointwise_gw_tiles(const ConvGeom& g) {
  return g.groups * ((g.og + kGwOB - 1) / kGwOB) * ((g.cg + kGwCB - 1) / kGwCB);
}

bool pointwise_gw_kernel_applies(const ConvGeom& g) {
  return is_pointwise(g) && pointwise_gw_tiles(g) * kGwOB * kGwCB * 64 <= kPwGwAccBytes;
}

template <typename T>
void pointwise_grad_weight_direct(const at::Tensor& x, const at::Tensor& gy, at::Tensor& gw, const ConvGeom& g) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L, kAcc = kGwOB * kGwCB;
  const int64_t hw = g.h * g.w, hwv = hw / L * L;
  const int64_t ob = (g.og + kGwOB - 1) / kGwOB, cb = (g.cg + kGwCB - 1) / kGwCB;
  const T* xp = x.const_data_ptr<T>();
  const T* gp = gy.const_data_ptr<T>();
  T* wp = gw.mutable_data_ptr<T>();
  at::parallel_for(0, pointwise_gw_tiles(g), 1, [&](int64_t begin, int64_t end) {
    const int64_t nt = end - begin;
    std::vector<V> acc(nt * kAcc);           // value-initialised: zeros
    std::vector<T> tail(nt * kAcc, T(0));    // the positions past the last full vector
    // per tile: first output channel, the group's output end, first input channel, the group's input end;
    // rows past the group's end repeat its last row (computed, not stored)
    std::vector<std::array<int64_t, 4>> org(nt);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t grp = t / (ob * cb), r = t % (ob * cb);
      org[t - begin] = {grp * g.og + (r / cb) * kGwOB, grp * g.og + g.og, grp * g.cg + (r % cb) * kGwCB,
                        grp * g.cg + g.cg};
    }
    for (int64_t n = 0; n < g.n; ++n)
      for (int64_t p0 = 0; p0 < hw; p0 += kGwChunk) {
        const int64_t pe = std::min(hw, p0 + kGwChunk), pv = std::min(pe, hwv);
        for (int64_t t = begin; t < end; ++t) {
          const auto [o0, oend, c0, cend] = org[t - begin];
          const T* yr[kGwOB];
          const T* xr[kGwCB];
          for (int64_t i = 0; i < kGwOB; ++i) yr[i] = gp + (n * g.o + std::min(o0 + i, oend - 1)) * hw;
          for (int64_t j = 0; j < kGwCB; ++j) xr[j] = xp + (n * g.c + std::min(c0 + j, cend - 1)) * hw;
          V* a = acc.data() + (t - begin) * kAcc;
          V r[kGwOB][kGwCB];
#pragma GCC unroll 6
          for (int64_t i = 0; i < kGwOB; ++i)
#pragma GCC unroll 4
            for (int64_t j = 0; j < kGwCB; ++j) r[i][j] = a[i * kGwCB + j];
          for (int64_t p = p0; p < pv; p += L) {
            V xv[kGwCB];
#pragma GCC unroll 4
            for (int64_t j = 0; j < kGwCB; ++j) xv[j] = vload<T>(xr[j] + p);
#pragma GCC unroll 6
            for (int64_t i = 0; i < kGwOB; ++i) {
              const V yv = vload<T>(yr[i] + p);
#pragma GCC unroll 4
              for (int64_t j = 0; j < kGwCB; ++j) r[i][j] += yv * xv[j];
            }
          }
#pragma GCC unroll 6
          for (int64_t i = 0; i < kGwOB; ++i)
#pragma GCC unroll 4
            for (int64_t j = 0; j < kGwCB; ++j) a[i * kGwCB + j] = r[i][j];
          T* tl = tail.data() + (t - begin) * kAcc;
          for (int64_t p = pv; p < pe; ++p)
            for (int64_t i = 0; i < kGwOB; ++i)
              for (int64_t j = 0; j < kGwCB; ++j) tl[i * kGwCB + j] += yr[i][p] * xr[j][p];
        }
      }
    for (int64_t t = begin; t < end; ++t) {
      const auto [o0, oend, c0, cend] = org[t - begin];
      for (int64_t i = 0; i < kGwOB && o0 + i < oend; ++i)
        for (int64_t j = 0; j < kGwCB && c0 + j < cend; ++j) {
          const V v = acc[(t - begin) * kAcc + i * kGwCB + j];
          T sum = 0;
          for (int64_t l = 0; l < L; ++l) sum += v[l];
          wp[(o0 + i) * g.cg + (c0 + j - (cend - g.cg))] = sum + tail[(t - begin) * kAcc + i * kGwCB + j];
        }  // cend - g.cg: the group's first input channel
    }
  });
}

void pointwise_grad_input(const at::Tensor& gy, const at::Tensor& w, at::Tensor& gx, const ConvGeom& g) {
  const int64_t hw = g.h * g.w;
  const at::Tensor gy3 = gy.view({g.n, g.o, hw}), w2 = w.view({g.o, g.cg});
  at::Tensor gx3 = gx.view({g.n, g.c, hw});
  at::parallel_for(0, g.n * g.groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / g.groups, grp = t % g.groups;
      at::Tensor out = gx3[n].narrow(0, grp * g.cg, g.cg);
      addmm_runs(out, w2.narrow(0, grp * g.og, g.og).t(), gy3[n].narrow(0, grp * g.og, g.og), /*accumulate=*/false);
    }
  });
}

// The 1x1 forward as per-image BLAS, y[n, group] = W[group] (Og x Cg) @ X[n, group] (Cg x HW) + b: no
// column packing (for 1x1, pack_cols only copies X). Tasks are one image and group, each product
// single-threaded, so results do not depend on the thread count. "auto" uses it from kPointwiseForwardTasks
// tasks (a fixed count, not the thread count: the choice must not change with the threads); below that
// one BLAS call per thread leaves threads idle, and forward_tiled splits the positions instead.

void pointwise_forward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, at::Tensor& y, const ConvGeom& g) {
  const int64_t hw = g.h * g.w;
  const at::Tensor x3 = x.view({g.n, g.c, hw}), w2 = w.view({g.o, g.cg});
  at::Tensor y3 = y.view({g.n, g.o, hw});
  const at::Tensor b2 = b.defined() ? b.view({g.o, 1}) : at::Tensor();
  at::parallel_for(0, g.n * g.groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / g.groups, grp = t % g.groups;
      at::Tensor out = y3[n].narrow(0, grp * g.og, g.og);
      const at::Tensor wg = w2.narrow(0, grp * g.og, g.og), xg = x3[n].narrow(0, grp * g.cg, g.cg);
      if (b2.defined()) out.copy_(b2.narrow(0, grp * g.og, g.og).expand({g.og, hw}));
      addmm_runs(out, wg, xg, /*accumulate=*/b2.defined());
    }
  });
}

// Few positions and large weights (R9 and R11 at N = 1: 196 and 49 positions for 2304 and 4608 rows of k;
// R11 at N = 8: 392): implicit GEMM whose products are ATen's BLAS. forward_tiled's 8 x 32 register tile
// reaches only ~77 GFLOP/s per thread on these shapes (its 8 weight rows are strided streams from L2),
// against 105-160 for a single-threaded BLAS product of the same block (measured with torch.mm, 1 thread).
// Per block of kb rows of k (kb x positions within kSharedColBytes), all threads pack the row-major column
// block cols[k][q] (positions q flattened over images); then a task, a fixed block (blas_channel_block) of output
// channels of one group, accumulates C[o][q] += W[o, k block] @ cols with one single-threaded BLAS product.
// C starts from the bias; it is y itself for one image, else an accumulator of the group's output size
// that is copied into y at the end (the one output-sized buffer of this path; no im2col-sized one). The
// blocks depend on the shape only, so results do not depend on the thread count.
// Tasks: output-channel blocks of half the group's channels (multiples of 16, 64 to 256), fixed by the shape:
// every BLAS call re-packs the column block, so fewer, larger products win (R11 N=8: 10.3 ms with blocks
// of 64, 9.3-9.4 with 256; R9 N=1 level within noise), and at least two tasks keep two threads busy.
constexpr int64_t kBlasMaxPositions = 1024;

// Rows of k per column block: the block (rows x positions) within kSharedColBytes, at least 256 rows, a
// multiple of 16 (also what convkit.explain reports).
// K rows in blocks of about equal size, at most `most` rows each rounded up to a multiple of 16 (R11 N=8:
// 7 x 656 + 16 rows -> 6 x 672 + 576: no last product of 16 rows).
int64_t balanced_k_rows(int64_t K, int64_t most) {
  const int64_t blocks = (K + most - 1) / most;
  return std::min(K, ((K + blocks - 1) / blocks + 15) / 16 * 16);
}

int64_t columns_blas_k_rows(const ConvGeom& g, int64_t itemsize) {
  const int64_t np = g.n * g.ho * g.wo, K = g.cg * g.kh * g.kw;
  return balanced_k_rows(K, std::min(K, std::max<int64_t>(256, kSharedColBytes / (np * itemsize)) / 16 * 16));
}

bool columns_blas_applies(const ConvGeom& g) {
  return g.cg * g.kh * g.kw >= 512 && g.og >= 128 && g.n * g.ho * g.wo <= kBlasMaxPositions;
}

int64_t blas_channel_block(const ConvGeom& g) {
  return std::min<int64_t>(256, std::max<int64_t>(64, (g.og / 2 + 15) / 16 * 16));
}

template <typename T>
void forward_columns_blas(const at::Tensor& xt, const at::Tensor& wt, const at::Tensor& bt, at::Tensor& yt,
                          const ConvGeom& g) {
  const T* x = xt.const_data_ptr<T>();
  const T* w = wt.const_data_ptr<T>();
  const T* b = bt.defined() ? bt.const_data_ptr<T>() : nullptr;
  T* y = yt.mutable_data_ptr<T>();
  const int64_t K = g.cg * g.kh * g.kw, hw = g.ho * g.wo, np = g.n * hw;
  const int64_t kb = columns_blas_k_rows(g, sizeof(T));
  const int64_t kBlasCh = blas_channel_block(g), oblocks = (g.og + kBlasCh - 1) / kBlasCh;
  const std::vector<Tap> taps = column_taps(g);
  T* const cols = call_workspace<T>(kWsSharedCols, kb * np);
  T* const acc = g.n == 1 ? nullptr : call_workspace<T>(kWsBlasAccumulator, g.og * np);
  const auto opts = xt.options();
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    T* const c_base = g.n == 1 ? y + grp * g.og * hw : acc;  // C[o][q], ld np
    const T* const xg = x + grp * g.cg * g.h * g.w;
    for (int64_t k0 = 0; k0 < K; k0 += kb) {
      const int64_t nk = std::min(K, k0 + kb) - k0;
      at::parallel_for(0, nk, 8, [&](int64_t kb0, int64_t kb1) {
        pack_cols_rows<T>(xg, g, taps, 0, np, k0 + kb0, k0 + kb1, cols, k0);
      });
      const at::Tensor bm = at::from_blob(cols, {nk, np}, opts);
      at::parallel_for(0, oblocks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t ob = begin; ob < end; ++ob) {
          const int64_t o0 = ob * kBlasCh, no = std::min(kBlasCh, g.og - o0);
          T* const c = c_base + o0 * np;
          if (k0 == 0)
            for (int64_t o = 0; o < no; ++o) std::fill(c + o * np, c + (o + 1) * np, b ? b[grp * g.og + o0 + o] : T(0));
          at::Tensor cm = at::from_blob(c, {no, np}, opts);
          cm.addmm_(at::from_blob(const_cast<T*>(w) + (grp * g.og + o0) * K + k0, {no, nk}, {K, 1}, opts), bm);
        }
      });
    }
    if (g.n > 1)
      at::parallel_for(0, g.n * g.og, 16, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
          const int64_t n = t / g.og, o = t % g.og;
          std::copy(acc + o * np + n * hw, acc + o * np + (n + 1) * hw, y + (n * g.o + grp * g.og + o) * hw);
        }
      });
  }
}

// Many positions per image and a long reduction (R6 at N = 8: 784 positions, K = 1152): per image and
// group, BLAS products of column blocks that the task packs itself. forward_tiled's 8 x 32 register tile
// ran R6 N=8 at ~118 GFLOP/s on 2 threads; a single-threaded BLAS product of one image's blocks runs at
// ~130 per thread (torch.mm, 1 thread, 128 x 144 x 784). A task (one image and group) packs kb rows of k at a
// time into its thread's row-major block cols[k][q] (kb x Ho*Wo, within kImageColBytes, in L2) and
// accumulates y[n, group] (Og x Ho*Wo, from the bias) += W[group][:, k block] @ cols. Each output element is
// one task's, its k blocks in order, each product single-threaded with a reduction of kb <= 512 rows (MKL
// rounds longer ones differently inside and outside a parallel region): results do not depend on the thread
// count. Workspace: one column block per thread; no im2col-sized buffer.
// Where: the column-block regime's reduction and channels (>= 512 rows of k, >= 128 output channels per
// group) with more than kBlasMaxPositions positions, on >= 2 images x groups. Measured (2 threads, 5 rounds,
// bench_conv.py, same process as torch): R6 N=8 8.0-8.1 ms (0.87-0.91x torch) against forward_tiled's
// 10.4-13.4 (1.08-1.14x). Forced on other shapes it lost: R1 (K = 147) 1.23-1.39x and D1 (K = 100) 1.37x
// forward_tiled's time; G1, X3 (rows), R3, R8, R9, R11 (Winograd / column blocks) 1.1-2x slower.
constexpr int64_t kImageColBytes = 512 * 1024;

// Planes of at most kImagesBlasMaxPositions positions, so that blocks of >= 64 rows of k stay within
// kImageColBytes (fp32); larger planes were not measured.
constexpr int64_t kImagesBlasMaxPositions = 2048;

bool images_blas_applies(const ConvGeom& g) {
  return g.cg * g.kh * g.kw >= 512 && g.og >= 128 && g.n * g.ho * g.wo > kBlasMaxPositions &&
         g.ho * g.wo <= kImagesBlasMaxPositions && g.n * g.groups >= 2;
}

int64_t images_blas_k_rows(const ConvGeom& g, int64_t itemsize) {
  const int64_t hw = g.ho * g.wo, K = g.cg * g.kh * g.kw;
  return balanced_k_rows(K, std::min<int64_t>(512, std::max<int64_t>(32, kImageColBytes / (hw * itemsize) / 16 * 16)));
}

template <typename T>
void forward_images_blas(const at::Tensor& xt, const at::Tensor& wt, const at::Tensor& bt, at::Tensor& yt,
                         const ConvGeom& g) {
  const T* x = xt.const_data_ptr<T>();
  const T* w = wt.const_data_ptr<T>();
  const T* b = bt.defined() ? bt.const_data_ptr<T>() : nullptr;
  T* y = yt.mutable_data_ptr<T>();
  const int64_t K = g.cg * g.kh * g.kw, hw = g.ho * g.wo, kb = images_blas_k_rows(g, sizeof(T));
  const std::vector<Tap> taps = column_taps(g);
  const auto opts = xt.options();
  const int64_t threads = at::get_num_threads();
  T* const blocks = call_workspace<T>(kWsSharedCols, threads * kb * hw);
  at::parallel_for(0, g.n * g.groups, 1, [&](int64_t begin, int64_t end) {
    T* const cols = blocks + at::get_thread_num() * kb * hw;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / g.groups, grp = t % g.groups;
      T* const c = y + (n * g.o + grp * g.og) * hw;
      for (int64_t o = 0; o < g.og; ++o) std::fill(c + o * hw, c + (o + 1) * hw, b ? b[grp * g.og + o] : T(0));
      at::Tensor cm = at::from_blob(c, {g.og, hw}, opts);
      const T* const xg = x + (n * g.c + grp * g.cg) * g.h * g.w;
      for (int64_t k0 = 0; k0 < K; k0 += kb) {
        const int64_t nk = std::min(K - k0, kb);
        pack_cols_rows<T>(xg, g, taps, 0, hw, k0, k0 + nk, cols, k0);
        cm.addmm_(at::from_blob(const_cast<T*>(w) + grp * g.og * K + k0, {g.og, nk}, {K, 1}, opts),
                  at::from_blob(cols, {nk, hw}, opts));
      }
    }
  });
}

// The gradients in the same regime (columns_blas_applies), as BLAS products over fixed channel blocks:
//   grad_input:  a task owns input channels [c0, c1) of one group (rows k of those channels): its column
//                gradient C = W[:, k rows]^T (nk x Og) @ dY (Og x positions), one product, then col2im_add
//                into gx[:, c0:c1] (zeroed by the task);
//   grad_weight: a task owns rows [k0, k1) of the group: it packs those rows of the column matrix and
//                writes gw[:, k0:k1] = dY (Og x positions) @ cols^T, one product.
// dY is the (O x positions) matrix: dY itself for one image, else packed once (an output-sized copy).
// Per-task buffers: grad_weight's column block within kColBytes, grad_input's product within kGiBlasBytes;
// the blocks depend on the shape only (deterministic results).
template <typename T>
const T* gy_matrix(const T* gy, const ConvGeom& g) {
  const int64_t hw = g.ho * g.wo, np = g.n * hw;
  if (g.n == 1) return gy;
  T* m = call_workspace<T>(kWsBlasAccumulator, g.o * np);
  at::parallel_for(0, g.n * g.o, 16, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / g.o, o = t % g.o;
      std::copy(gy + t * hw, gy + (t + 1) * hw, m + o * np + n * hw);
    }
  });
  return m;
}

// Input channels per BLAS product of grad_input_columns_blas: the product's rows (channels x taps x
// positions) within kGiBlasBytes, in a multiple of 4 equal blocks (two threads get equal shares; the block
// only changes which rows one product computes, not any sum: results are bitwise the same). Larger products
// than kColBytes allowed: R11 N=8 (18 -> 64 channels) 0.88-0.97x the time in two runs, R9 N=1 (37 -> 64)
// about 0.9x (same process, interleaved; the machine's noise is about 5 %).
constexpr int64_t kGiBlasBytes = 1024 * 1024;
int64_t grad_input_blas_blocks(const ConvGeom& g, int64_t np, int64_t itemsize) {  // block b: [b cg / B, (b+1) cg / B)
  const int64_t most = std::max<int64_t>(1, kGiBlasBytes / (g.kh * g.kw * np * itemsize));
  return std::max<int64_t>(1, std::min(g.cg, ((g.cg + most - 1) / most + 3) / 4 * 4));
}
int64_t grad_input_blas_channels(const ConvGeom& g, int64_t np, int64_t itemsize) {  // the largest block
  const int64_t blocks = grad_input_blas_blocks(g, np, itemsize);
  return (g.cg + blocks - 1) / blocks;
}

// Rows of k per task of grad_weight_columns_blas: whole channels, the task's column block within kColBytes,
// at least two tasks per group.
int64_t grad_weight_blas_rows(const ConvGeom& g, int64_t itemsize) {
  const int64_t khw = g.kh * g.kw, K = g.cg * khw, np = g.n * g.ho * g.wo;
  return std::max<int64_t>(khw, std::min<int64_t>((K + 1) / 2, kColBytes / (np * itemsize)) / khw * khw);
}

template <typename T>
void grad_input_columns_blas(const at::Tensor& gyt, const at::Tensor& wt, at::Tensor& gxt, const ConvGeom& g) {
  const int64_t khw = g.kh * g.kw, K = g.cg * khw, hw = g.ho * g.wo, np = g.n * hw, plane = g.h * g.w;
  const T* dy = gy_matrix<T>(gyt.const_data_ptr<T>(), g);
  const T* w = wt.const_data_ptr<T>();
  T* gx = gxt.mutable_data_ptr<T>();
  const int64_t cb = grad_input_blas_channels(g, np, sizeof(T)), blocks = grad_input_blas_blocks(g, np, sizeof(T));
  const std::vector<Tap> taps = column_taps(g);
  const auto opts = gyt.options();
  at::parallel_for(0, g.groups * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> cbuf(cb * khw * np);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t grp = t / blocks, c0 = t % blocks * g.cg / blocks, c1 = (t % blocks + 1) * g.cg / blocks;
      const int64_t k0 = c0 * khw, nk = (c1 - c0) * khw;
      at::Tensor cm = at::from_blob(cbuf.data(), {nk, np}, opts);
      const at::Tensor wblk = at::from_blob(const_cast<T*>(w) + grp * g.og * K + k0, {g.og, nk}, {K, 1}, opts);
      at::mm_out(cm, wblk.t(), at::from_blob(const_cast<T*>(dy) + grp * g.og * np, {g.og, np}, opts));
      for (int64_t n = 0; n < g.n; ++n) {
        T* gxg = gx + (n * g.c + grp * g.cg) * plane;
        std::fill(gxg + c0 * plane, gxg + c1 * plane, T(0));
        col2im_add_impl<T>(cbuf.data() + n * hw, g, taps, 0, hw, k0, k0 + nk, gxg, np);
      }
    }
  });
}

template <typename T>
void grad_weight_columns_blas(const at::Tensor& xt, const at::Tensor& gyt, at::Tensor& gwt, const ConvGeom& g) {
  const int64_t khw = g.kh * g.kw, K = g.cg * khw, np = g.n * g.ho * g.wo;
  const T* dy = gy_matrix<T>(gyt.const_data_ptr<T>(), g);
  const T* x = xt.const_data_ptr<T>();
  T* gw = gwt.mutable_data_ptr<T>();
  const int64_t kbw = grad_weight_blas_rows(g, sizeof(T));
  const int64_t blocks = (K + kbw - 1) / kbw;
  const std::vector<Tap> taps = column_taps(g);
  const auto opts = gyt.options();
  at::parallel_for(0, g.groups * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> cols(kbw * np);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t grp = t / blocks, k0 = (t % blocks) * kbw, nk = std::min(K, k0 + kbw) - k0;
      pack_cols_rows<T>(x + grp * g.cg * g.h * g.w, g, taps, 0, np, k0, k0 + nk, cols.data(), k0);
      at::Tensor out = at::from_blob(gw + grp * g.og * K + k0, {g.og, nk}, {K, 1}, opts);
      at::mm_out(out, at::from_blob(const_cast<T*>(dy) + grp * g.og * np, {g.og, np}, opts),
                 at::from_blob(cols.data(), {nk, np}, opts).t());
    }
  });
}

// grad_bias[o] = sum over n, oh, ow of gy: Wo partial sums (vectorisable) added in order at the end.
template <typename T>
void grad_bias_kernel(const T* gy, T* gb, const ConvGeom& g) {
  // channels per task: at least kGradBiasMinSums values summed, else one thread (L2 at N=8 sums 800 values per
  // channel; a parallel region costs several microseconds here)
  constexpr int64_t kGradBiasMinSums = 32768;
  const int64_t grain = std::max<int64_t>(1, kGradBiasMinSums / std::max<int64_t>(1, g.n * g.ho * g.wo));
  at::parallel_for(0, g.o, grain, [&](int64_t begin, int64_t end) {
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

// im2col, as the textbook does it (for teaching and comparison, algo="im2col"; never chosen by "auto"): the
// whole column matrix cols = im2col(x) of shape (N, C*kh*kw, Ho*Wo) is materialised (kh*kw times the input,
// 9x for 3x3) and the convolution is one BLAS matrix product per image and group, Y = W cols; backward
// recomputes cols for grad_weight = sum_n dY cols^T and scatters W^T dY back with col2im. Asymmetric padding
// is applied as an explicit zero pad first (ATen's im2col pads symmetrically).
struct Im2colArgs {
  at::Tensor x;  // padded if the padding is asymmetric
  std::vector<int64_t> pad;
};

Im2colArgs im2col_input(const at::Tensor& x, const ConvGeom& g) {
  if (g.pt == g.pb && g.pl == g.pr) return {x, {g.pt, g.pl}};
  return {at::constant_pad_nd(x, {g.pl, g.pr, g.pt, g.pb}, 0), {0, 0}};
}

at::Tensor im2col_cols(const Im2colArgs& a, const ConvGeom& g) {  // (N, G, Cg*kh*kw, Ho*Wo)
  return at::im2col(a.x, {g.kh, g.kw}, {g.dh, g.dw}, a.pad, {g.sh, g.sw})
      .view({g.n, g.groups, g.cg * g.kh * g.kw, g.ho * g.wo});
}

at::Tensor im2col_forward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const ConvGeom& g) {
  const at::Tensor cols = im2col_cols(im2col_input(x, g), g);
  at::Tensor y = at::matmul(w.view({1, g.groups, g.og, g.cg * g.kh * g.kw}), cols).view({g.n, g.o, g.ho, g.wo});
  if (b.defined()) y.add_(b.view({1, g.o, 1, 1}));
  return y;
}

void im2col_backward(const at::Tensor& gy, const at::Tensor& x, const at::Tensor& w, at::Tensor& gx, at::Tensor& gw,
                     const ConvGeom& g) {
  const int64_t K = g.cg * g.kh * g.kw;
  const at::Tensor gy4 = gy.view({g.n, g.groups, g.og, g.ho * g.wo});
  if (gw.defined()) {
    const at::Tensor cols = im2col_cols(im2col_input(x, g), g);
    gw.view({g.groups, g.og, K}).copy_(at::matmul(gy4, cols.transpose(2, 3)).sum(0));
  }
  if (gx.defined()) {
    const at::Tensor gcols = at::matmul(w.view({1, g.groups, g.og, K}).transpose(2, 3), gy4);
    const bool sym = g.pt == g.pb && g.pl == g.pr;
    const int64_t hp = sym ? g.h : g.h + g.pt + g.pb, wp = sym ? g.w : g.w + g.pl + g.pr;
    const at::Tensor full = at::col2im(gcols.view({g.n, g.c * g.kh * g.kw, g.ho * g.wo}), {hp, wp}, {g.kh, g.kw},
                                       {g.dh, g.dw}, sym ? std::vector<int64_t>{g.pt, g.pl} : std::vector<int64_t>{0, 0},
                                       {g.sh, g.sw});
    gx.copy_(sym ? full : full.slice(2, g.pt, g.pt + g.h).slice(3, g.pl, g.pl + g.w));
  }
}

// Which forced algorithms the CPU kernels have for this shape (Auto, ImplicitGemm and Im2col: all shapes).
void check_cpu_algo(Algo algo, const ConvGeom& g) {
  TORCH_CHECK(algo != Algo::Direct || g.sw == 1,
              "convkit::corr2d: algo='direct' (the direct rows kernel) needs a column stride of 1, got stride (",
              g.sh, ", ", g.sw, "); use algo='implicit_gemm' or 'auto'");
  TORCH_CHECK(algo != Algo::Winograd || winograd_applies(g) || winograd_s2_applies(g),
              "convkit::corr2d: algo='winograd' needs a 3x3 kernel with stride 1 (F(4x4, 3x3)), or stride 2 with a "
              "kernel 5 to 8 wide, dilation 1 and groups 1 (F(4, 4) along columns over the stride phases), got "
              "kernel (", g.kh, ", ", g.kw, "), stride (", g.sh, ", ", g.sw, "), dilation (", g.dh, ", ", g.dw,
              "), groups ", g.groups);
}

// The algorithm of each direction for one call: the single place where the CPU backend chooses (the
// kernels below and convkit.explain, through corr2d_plan_cpu, both read it).
enum class Fwd { Rows, OcLanes, Depthwise, PointwiseRows, Pointwise, ColumnsBlas, ImagesBlas, Tiled, Im2col, Winograd, WinogradS2 };
enum class GradInput { Rows, OcLanes, OcCols, PointwiseRows, Pointwise, ColumnsBlas, Tiled, FlippedTiled, Im2col, Winograd };
enum class GradWeight { Flat, OcLanes, OcCols, Lanes, Pointwise, PointwiseDirect, ColumnsBlas, Tiled, Im2col, Winograd };
struct Plan {
  Fwd fwd;
  GradInput gx;
  GradWeight gw;
};

// Where "auto" would take a BLAS-based path somewhere (Winograd, the column-block, per-image or pointwise
// products): only these shapes depend on BLAS's rate (blas_rate, peak.cpp), so no other call measures it.
bool blas_candidate(const ConvGeom& g) {
  return winograd_preferred(g) || winograd_preferred_grad_weight(g) || columns_blas_applies(g) ||
         images_blas_applies(g) || is_pointwise(g);
}

// Where ATen's BLAS runs at under kBlasMinShare of the FMA peak (Zen 5 with MKL: 0.42), "auto" trades its
// BLAS paths for convkit's own kernels; the rules below were measured there (2 threads, us, one op alone,
// median of 3 interleaved rounds, N = 1 / 8; the BLAS path "auto" takes where BLAS is fast -> this one,
// torch in brackets):
//  * Winograd's grad_weight (its products are BLAS; the forward's are not, see winograd_preferred) is kept
//    from one tile per kWinoGwSlowBlasWeights kernel weights (x 9), with dilation 1 and at least
//    kWinoGwSlowBlasImageTiles tiles per image: R8 N=1 (49 tiles for 16384) 503 vs 560 (channel
//    lanes), N=8 3527 vs 4149, R3 N=1 455 vs 664, N=8 3434 vs 4495 - kept; R9 N=1 990 vs 824, N=8 (128 for
//    65536) 6716 vs 4978, X3 (dilation 2) N=8 5831 vs 5305 - dropped. Smaller maps lost by far (session 18,
//    Winograd vs channel lanes): 128->128 3x3 @7 N=8 5732 vs 412, @14 2812 vs 1311, 64->64 @7 2822 vs 193.
//  * Dense layers in the column-block regime, and those Winograd gave up: output channels as lanes (direct_oc)
//    on rows of >= kOcLanesSlowBlasWidth columns, else forward_tiled: R9 fwd 1565 -> 784 / 7439 -> 4094
//    (640 / 4157), gx 1308 -> 751 / 6620 -> 4079 (618 / 4074), gw 1005 -> 824 / 6636 -> 4978 (684 / 4276);
//    R11 (7 columns: the lanes kernel 2124 / 9023) fwd 1618 -> 799 / 10892 -> 5733 (872 / 4256), gx 1825 ->
//    1400 / 9694 -> 6311 (929 / 4325), gw 1375 -> 1138 / 12140 -> 6611 (1140 / 4776); R6 (stride 2) fwd
//    1306 -> 674 / 10491 -> 6141 (655 / 5283), gx 1218 -> 702, gw 1568 -> 813 (session 17).
//    grad_weight takes the channel lanes at any width and, from kOcGwMinChannels input channels, any stride
//    (oc_gw_strided_ok; session 18's kernel, grad_weight_tiled -> lanes, same process): R11 N=1 1136 -> 756,
//    N=8 5342 -> 4973 (torch 1097 / 4894), R6 682 -> 522 / 7411 -> 4487 (torch 636 / 5503).
//  * 1x1: the pointwise kernel from kPointwiseForwardTasks images x groups, else forward_tiled; grad_weight
//    the 6x4 tile kernel up to kPwGwSlowBlasWeights weights, else the tiled GEMM: R10 (1024 -> 256 @14) fwd
//    544 -> 270 / 4241 -> 2029 (279 / 2067), gx 565 -> 350 / 4598 -> 2249 (283 / 1929), gw 570 -> 384 /
//    4702 -> 2823 (565 / 2537); 256->1024 @14 gx 602 -> 348 / 4327 -> 2112, gw 642 -> 558 / 4971 -> 4195;
//    128->512 @28 N=8 gx 4079 -> 1802, gw 4984 -> 3998; 64->64 @16 N=8 fwd 124 -> 47, gx 125 -> 49, gw 159
//    -> 69; R4 N=8 gx 4593 -> 2052.
constexpr int64_t kWinoGwSlowBlasWeights = 400, kWinoGwSlowBlasImageTiles = 49,
                  kOcLanesSlowBlasWidth = 14,
                  kPwGwSlowBlasWeights = 64 * 256;

bool winograd_gw_kept_without_blas(const ConvGeom& g) {
  const int64_t tiles = winograd_tiles_per_image(g);
  return g.dh == 1 && g.dw == 1 && tiles >= kWinoGwSlowBlasImageTiles &&
         g.n * tiles * kWinoGwSlowBlasWeights >= g.og * g.cg;
}

Plan make_plan(const ConvGeom& g, Algo algo, int64_t itemsize) {
  check_cpu_algo(algo, g);
  if (algo == Algo::Im2col) return {Fwd::Im2col, GradInput::Im2col, GradWeight::Im2col};
  // forced on a stride-2 layer, "winograd" is winograd_s2's forward, and the backward as "auto" chooses it
  const bool s2_forced = algo == Algo::Winograd && !winograd_applies(g);
  const bool autom = algo == Algo::Auto || s2_forced;
  // "auto" where BLAS is slow here (see kBlasMinShare): measured only for the shapes whose plan depends on it
  const bool slow_blas = autom && blas_candidate(g) && !blas_rate().preferred;
  // "auto" decides Winograd per direction: grad_input is a forward problem of the same size (same rule),
  // grad_weight has its own measured rule (winograd.cpp).
  const bool wino = algo == Algo::Winograd && !s2_forced;
  const bool wino_s2 = s2_forced || (algo == Algo::Auto && itemsize == 4 && winograd_s2_preferred(g));
  // The forward's products are convkit's own (product, winograd.cpp), so its rule does not depend on BLAS;
  // grad_input is a forward problem of the same size.
  const bool wino_fwd = wino || (autom && winograd_preferred(g));
  const bool wino_gx = wino_fwd && transposed_rows_padding_valid(g);
  const bool wino_gw = wino || (autom && winograd_preferred_grad_weight(g) &&
                                (!slow_blas || winograd_gw_kept_without_blas(g)));
  const bool blas = autom && !slow_blas;  // "auto" may take a BLAS path
  Plan p;
  const bool direct = algo == Algo::Direct || (autom && rows_applies(g));
  const bool pointwise = autom && is_pointwise(g);
  // 1x1 through the rows family is the pointwise kernel (forward_rows sends it there: it reads x in place
  // where the rows kernel would copy x into a slab); one channel per group (1x1 depthwise) stays depthwise
  const bool pw_rows = is_pointwise(g) && !(direct && depthwise_applies(g)) &&
                       (direct || (pointwise && pointwise_kernel_applies(g, false)) ||
                        (pointwise && slow_blas && g.n * g.groups >= kPointwiseForwardTasks));
  // dense layers without BLAS: output channels as lanes on wide enough rows
  const bool oc_lanes_wide = slow_blas && g.sw == 1 && g.wo >= kOcLanesSlowBlasWidth && oc_lanes_preferred(g, false);
  p.fwd = wino_fwd                          ? Fwd::Winograd
          : wino_s2                         ? Fwd::WinogradS2
          : pw_rows                         ? Fwd::PointwiseRows
          : direct && depthwise_applies(g)  ? Fwd::Depthwise
          : direct && oc_lanes_preferred(g, algo == Algo::Direct) ? Fwd::OcLanes
          : direct && oc_one_vector_preferred(g, itemsize) ? Fwd::OcLanes
          : direct                          ? Fwd::Rows
          : oc_lanes_wide                   ? Fwd::OcLanes
          : blas && pointwise && g.n * g.groups >= kPointwiseForwardTasks ? Fwd::Pointwise
          : blas && columns_blas_applies(g) ? Fwd::ColumnsBlas
          : blas && images_blas_applies(g)  ? Fwd::ImagesBlas
          : autom && g.sw == 2 && oc_lanes_preferred(g, false) ? Fwd::OcLanes
                                            : Fwd::Tiled;
  const ConvGeom tg = transposed_geometry(g);
  // grad_input as forward_tiled over dY with the flipped weights, in place of grad_input_tiled (see flipped_weights)
  const bool flipped_tiled = autom && !is_pointwise(g) && transposed_rows_padding_valid(g);
  if (algo == Algo::Direct ? is_pointwise(g)
                           : pointwise && (pointwise_kernel_applies(g, true) ||
                                           (slow_blas && g.n * g.groups >= kPointwiseForwardTasks)))
    p.gx = GradInput::PointwiseRows;
  else if (blas && pointwise)
    p.gx = GradInput::Pointwise;
  else if (pointwise)
    p.gx = GradInput::Tiled;
  else if (wino_gx)
    p.gx = GradInput::Winograd;
  else if (algo != Algo::ImplicitGemm && transposed_rows_applies(g, algo == Algo::Direct))
    p.gx = oc_lanes_preferred(tg, algo == Algo::Direct)  ? GradInput::OcLanes
           : oc_cols_gx_preferred(g, itemsize)            ? GradInput::OcCols
           : oc_one_vector_preferred(tg, itemsize)        ? GradInput::OcLanes
                                                          : GradInput::Rows;
  else if (slow_blas && transposed_rows_padding_valid(g) && g.w >= kOcLanesSlowBlasWidth && oc_lanes_preferred(tg, false))
    p.gx = GradInput::OcLanes;
  else if (blas && columns_blas_applies(g))
    p.gx = GradInput::ColumnsBlas;
  else
    p.gx = flipped_tiled ? GradInput::FlippedTiled : GradInput::Tiled;
  // grad_weight: positions as lanes for few output channels, and with stride 1 (the flat slabs) up to
  // kFlatChannels since the flat kernel's accumulators are bounded (kFlatAccBytes; see kFlatChannels for the
  // measurements). R9 (256 channels) was 4x slower through it; dense 3x3 goes to Winograd first.
  const bool stride1 = g.sh == 1 && g.sw == 1;
  const bool lanes = algo == Algo::Direct ||
                     (algo != Algo::ImplicitGemm && (g.og <= kFewChannels || (stride1 && g.og <= kFlatChannels)));
  // 1x1 grad_weight: the 6x4 tile kernel where its accumulators fit kPwGwAccBytes; "auto" from kPwMinPositions
  // positions (1 thread, GFLOP/s kernel vs BLAS: R2 N=1 102 vs 65, N=8 112 vs 79; 64->256 @56 N=8 92 vs 64;
  // 256->64 @56 N=8 112 vs 83; 16->16 @28 N=32 51 vs 30; but 64->64 @16 N=1 31 vs 37)
  // (auto: at least one whole tile of channels, else most of the 24 accumulators repeat a row: 1x1 depthwise)
  const bool pw_gw = (algo == Algo::Direct ||
                      (pointwise && (g.h * g.w >= kPwMinPositions || (slow_blas && g.og * g.cg <= kPwGwSlowBlasWeights)) &&
                       g.og >= kGwOB && g.cg >= kGwCB)) &&
                     pointwise_gw_kernel_applies(g);
  p.gw = pw_gw                    ? GradWeight::PointwiseDirect
         : blas && pointwise      ? GradWeight::Pointwise
         : pointwise              ? GradWeight::Tiled
         : wino_gw                ? GradWeight::Winograd
         : algo != Algo::ImplicitGemm && oc_gw_preferred(g, algo == Algo::Direct) ? GradWeight::OcLanes
         : algo != Algo::ImplicitGemm && oc_cols_preferred(g, itemsize) ? GradWeight::OcCols
         : lanes                  ? (stride1 ? GradWeight::Flat : GradWeight::Lanes)
         : slow_blas && oc_gw_strided_ok(g) && oc_gw_preferred(g, true) ? GradWeight::OcLanes
         : blas && columns_blas_applies(g) ? GradWeight::ColumnsBlas
                                  : GradWeight::Tiled;
  return p;
}

}  // namespace

at::Tensor corr2d_cpu(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                      at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                      c10::string_view algo_name) {
  const ConvGeom g = conv_geometry(input, weight, bias, stride, padding, dilation, groups);
  const Plan plan = make_plan(g, parse_algo(algo_name), input.element_size() > 4 ? 8 : 4);
  const auto ct = compute_type(input.scalar_type());
  const at::Tensor x = as_compute(input, ct), w = as_compute(weight, ct);
  const bool has_bias = bias.has_value() && bias->defined();
  const at::Tensor b = has_bias ? bias->to(ct).contiguous() : at::Tensor();
  if (plan.fwd == Fwd::Im2col && input.numel() > 0) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;  // the ATen calls are part of this kernel
    return as_dtype(im2col_forward(x, w, b, g), input.scalar_type());
  }
  at::Tensor y = cached_empty({g.n, g.o, g.ho, g.wo}, x.options());
  if (y.numel() > 0) {
    if (plan.fwd == Fwd::Winograd) {
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      winograd_forward_cpu(x, w, b, g, y);
    } else if (plan.fwd == Fwd::WinogradS2) {
      at::AutoDispatchBelowADInplaceOrView below_autograd;  // no input channels: y from the bias by ATen
      winograd_s2_forward_cpu(x, w, b, g, y);
    } else if (plan.fwd == Fwd::OcLanes) {
      oc_lanes_forward_cpu(x, w, b, g, y);
    } else if (plan.fwd == Fwd::Pointwise) {
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      pointwise_forward(x, w, b, y, g);
    } else if (plan.fwd == Fwd::ColumnsBlas) {
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      AT_DISPATCH_FLOATING_TYPES(ct, "convkit_corr2d_cpu", [&] { forward_columns_blas<scalar_t>(x, w, b, y, g); });
    } else if (plan.fwd == Fwd::ImagesBlas) {
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      AT_DISPATCH_FLOATING_TYPES(ct, "convkit_corr2d_cpu", [&] { forward_images_blas<scalar_t>(x, w, b, y, g); });
    } else {
      AT_DISPATCH_FLOATING_TYPES(ct, "convkit_corr2d_cpu", [&] {
        const scalar_t* bp = has_bias ? b.const_data_ptr<scalar_t>() : nullptr;
        if (plan.fwd == Fwd::Depthwise)
          forward_depthwise<scalar_t>(x.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(), bp,
                                      y.mutable_data_ptr<scalar_t>(), g);
        else
          forward_kernel<scalar_t>(x.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(), bp,
                                   y.mutable_data_ptr<scalar_t>(), g,
                                   plan.fwd == Fwd::Rows || plan.fwd == Fwd::PointwiseRows);
      });
    }
  }
  return as_dtype(y, input.scalar_type());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> corr2d_backward_cpu(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask,
    c10::string_view algo_name) {
  const ConvGeom g = conv_geometry(input, weight, c10::nullopt, stride, padding, dilation, groups);
  const Plan plan = make_plan(g, parse_algo(algo_name), input.element_size() > 4 ? 8 : 4);
  at::AutoDispatchBelowADInplaceOrView below_autograd;  // the ATen calls below are part of this kernel
  check_corr2d_grad_output(grad_output, input, g);
  const auto ct = compute_type(input.scalar_type());
  const at::Tensor gy = grad_output.to(ct).contiguous();
  const at::Tensor x = output_mask[1] ? as_compute(input, ct) : at::Tensor();
  const at::Tensor w = output_mask[0] ? as_compute(weight, ct) : at::Tensor();
  at::Tensor gx = output_mask[0] ? cached_empty({g.n, g.c, g.h, g.w}, gy.options()) : at::Tensor();
  at::Tensor gw = output_mask[1] ? cached_empty({g.o, g.cg, g.kh, g.kw}, gy.options()) : at::Tensor();
  at::Tensor gb = output_mask[2] ? at::empty({g.o}, gy.options()) : at::Tensor();
  const bool do_gx = output_mask[0] && gx.numel() > 0, do_gw = output_mask[1] && gw.numel() > 0;
  if (plan.gx == GradInput::Im2col) {
    at::Tensor gx_im = do_gx ? gx : at::Tensor(), gw_im = do_gw ? gw : at::Tensor();  // views of the outputs
    im2col_backward(gy, x, w, gx_im, gw_im, g);
  }
  if (do_gx && plan.gx == GradInput::Pointwise) pointwise_grad_input(gy, w, gx, g);  // per-image BLAS
  if (do_gw && plan.gw == GradWeight::Pointwise) pointwise_grad_weight(x, gy, gw, g);
  if (do_gw && plan.gw == GradWeight::PointwiseDirect)
    AT_DISPATCH_FLOATING_TYPES(ct, "convkit_pointwise_grad_weight", [&] { pointwise_grad_weight_direct<scalar_t>(x, gy, gw, g); });
  if (do_gx && plan.gx == GradInput::Winograd) winograd_grad_input_cpu(gy, w, gx, g);
  if (do_gw && plan.gw == GradWeight::Winograd) winograd_grad_weight_cpu(x, gy, gw, g);
  if (plan.gx == GradInput::ColumnsBlas || plan.gw == GradWeight::ColumnsBlas)
    AT_DISPATCH_FLOATING_TYPES(ct, "convkit_corr2d_backward_cpu", [&] {  // each fills the dY matrix in turn
      if (do_gx && plan.gx == GradInput::ColumnsBlas) grad_input_columns_blas<scalar_t>(gy, w, gx, g);
      if (do_gw && plan.gw == GradWeight::ColumnsBlas) grad_weight_columns_blas<scalar_t>(x, gy, gw, g);
    });
  AT_DISPATCH_FLOATING_TYPES(ct, "convkit_corr2d_backward_cpu", [&] {
    const scalar_t* gyp = gy.const_data_ptr<scalar_t>();
    if (do_gx && plan.gx == GradInput::PointwiseRows)
      forward_pointwise_rows<scalar_t>(gyp, w.const_data_ptr<scalar_t>(), nullptr, gx.mutable_data_ptr<scalar_t>(), g,
                                       /*transposed=*/true);
    if (do_gx && (plan.gx == GradInput::Rows || plan.gx == GradInput::OcLanes || plan.gx == GradInput::FlippedTiled))
      grad_input_rows<scalar_t>(gyp, w.const_data_ptr<scalar_t>(), gx.mutable_data_ptr<scalar_t>(), g,
                                plan.gx == GradInput::OcLanes, plan.gx == GradInput::FlippedTiled);
    if (do_gx && plan.gx == GradInput::OcCols)
      oc_cols_grad_input<scalar_t>(gyp, w.const_data_ptr<scalar_t>(), gx.mutable_data_ptr<scalar_t>(), g);
    if (do_gx && plan.gx == GradInput::Tiled)
      grad_input_tiled<scalar_t>(gyp, w.const_data_ptr<scalar_t>(), gx.mutable_data_ptr<scalar_t>(), g);
    const scalar_t* xp = do_gw ? x.const_data_ptr<scalar_t>() : nullptr;
    if (do_gw && plan.gw == GradWeight::Flat) grad_weight_flat<scalar_t>(xp, gyp, gw.mutable_data_ptr<scalar_t>(), g);
    if (do_gw && plan.gw == GradWeight::OcCols) oc_cols_grad_weight<scalar_t>(xp, gyp, gw.mutable_data_ptr<scalar_t>(), g);
    if (do_gw && plan.gw == GradWeight::OcLanes) oc_lanes_grad_weight<scalar_t>(xp, gyp, gw.mutable_data_ptr<scalar_t>(), g);
    if (do_gw && plan.gw == GradWeight::Lanes) grad_weight_lanes<scalar_t>(xp, gyp, gw.mutable_data_ptr<scalar_t>(), g);
    if (do_gw && plan.gw == GradWeight::Tiled) grad_weight_tiled<scalar_t>(xp, gyp, gw.mutable_data_ptr<scalar_t>(), g);
    if (output_mask[2] && gb.numel() > 0) grad_bias_kernel<scalar_t>(gyp, gb.mutable_data_ptr<scalar_t>(), g);
  });
  const auto back = [&](const at::Tensor& t) { return t.defined() ? as_dtype(t, input.scalar_type()) : t; };
  return {back(gx), back(gw), back(gb)};
}

std::vector<std::pair<std::string, int64_t>> corr2d_plan_cpu(const ConvGeom& g, c10::string_view algo,
                                                             int64_t itemsize) {
  const Plan p = make_plan(g, parse_algo(algo), itemsize);
  const int64_t khw = g.kh * g.kw, wbytes = g.o * g.cg * khw * itemsize, threads = at::get_num_threads();
  const int64_t cols = g.n * g.c * khw * g.ho * g.wo * itemsize, tiles = threads * kColBytes;
  // forward_tiled on geometry t: the local schedule's packed weight panels, or the split one's column block
  // per thread
  const auto tiled_bytes = [&](const ConvGeom& t) {
    const int64_t ob = t.og >= 6 ? 8 : t.og >= 3 ? 4 : 1;
    const int64_t panels = t.groups * ((t.og + ob - 1) / ob) * ob * t.cg * khw * itemsize;
    return std::max(panels, threads * kTiledThreadColBytes);
  };
  std::vector<std::pair<std::string, int64_t>> out;
  switch (p.fwd) {
    case Fwd::Rows: out.emplace_back("direct rows (forward_rows)", tiles); break;
    case Fwd::OcLanes:
      out.emplace_back("direct, output channels as vector lanes (direct_oc.cpp)", oc_lanes_workspace(g, itemsize));
      break;
    case Fwd::Depthwise: out.emplace_back("direct depthwise rows (forward_depthwise)", tiles); break;
    case Fwd::PointwiseRows:
      out.emplace_back("1x1 direct: W X reading x in place (forward_pointwise_rows)", pointwise_workspace(g, false, itemsize));
      break;
    case Fwd::Pointwise: out.emplace_back("per-image BLAS W X (1x1)", 0); break;
    case Fwd::ColumnsBlas: {  // the shared column block, and for several images the output accumulator
      const int64_t np = g.n * g.ho * g.wo, kb = columns_blas_k_rows(g, itemsize);
      out.emplace_back("implicit GEMM, BLAS products over packed column blocks (forward_columns_blas)",
                       (kb * np + (g.n > 1 ? g.og * np : 0)) * itemsize);
      break;
    }
    case Fwd::ImagesBlas:
      out.emplace_back("implicit GEMM, BLAS products of per-image column blocks (forward_images_blas)",
                       threads * images_blas_k_rows(g, itemsize) * g.ho * g.wo * itemsize);
      break;
    case Fwd::Tiled:
      out.emplace_back("implicit GEMM over packed column tiles (forward_tiled)", tiles + tiled_bytes(g));
      break;
    case Fwd::Im2col: out.emplace_back("im2col + BLAS", cols); break;
    case Fwd::Winograd: out.emplace_back("Winograd F(4x4, 3x3), own products", winograd_workspace_bytes(g, itemsize, true)); break;
    case Fwd::WinogradS2:
      out.emplace_back("stride phases: Winograd F(4, 4) along columns, direct along rows, own products",
                       winograd_s2_workspace_bytes(g, itemsize));
      break;
  }
  switch (p.gx) {
    case GradInput::Rows: out.emplace_back("direct rows of the flipped weights (grad_input_rows)", wbytes + tiles); break;
    case GradInput::OcLanes:
      out.emplace_back("direct, output channels as vector lanes, of the flipped weights (direct_oc.cpp)",
                       oc_lanes_workspace(transposed_geometry(g), itemsize));  // flipped as they are packed
      break;
    case GradInput::OcCols:
      out.emplace_back("direct, (kernel column, input channel) pairs as vector lanes, dY read in place (direct_oc.cpp)",
                       oc_cols_grad_input_workspace(g, itemsize));
      break;
    case GradInput::PointwiseRows:
      out.emplace_back("1x1 direct: W^T dY reading dY in place (forward_pointwise_rows)", pointwise_workspace(g, true, itemsize));
      break;
    case GradInput::Pointwise: out.emplace_back("per-image BLAS W^T dY (1x1)", 0); break;
    case GradInput::ColumnsBlas: out.emplace_back("BLAS W^T dY per channel block + col2im (grad_input_columns_blas)",
                                                  (g.n > 1 ? g.o * g.ho * g.wo * g.n * itemsize : 0) +
                                                      at::get_num_threads() * g.kh * g.kw * g.n * g.ho * g.wo * itemsize *
                                                          grad_input_blas_channels(g, g.n * g.ho * g.wo, itemsize)); break;
    case GradInput::Tiled: out.emplace_back("W^T dY GEMM + col2im tiles (grad_input_tiled)", wbytes + tiles); break;
    case GradInput::FlippedTiled:  // W' and forward_tiled's workspace for the transposed problem
      out.emplace_back("implicit GEMM over packed column tiles of the flipped weights (forward_tiled)",
                       wbytes + tiles + tiled_bytes(transposed_geometry(g)));
      break;
    case GradInput::Im2col: out.emplace_back("BLAS W^T dY + col2im", cols); break;
    case GradInput::Winograd: out.emplace_back("Winograd of the flipped weights", wbytes + winograd_workspace_bytes(transposed_geometry(g), itemsize, true)); break;
  }
  switch (p.gw) {
    case GradWeight::OcLanes:
      out.emplace_back("output channels as vector lanes, x read in place, dY blocked per chunk of images (direct_oc.cpp)",
                       oc_lanes_grad_weight_workspace(g, itemsize));
      break;
    case GradWeight::OcCols:
      out.emplace_back("output channels as vector lanes, (kernel column, input channel) pairs as the tile (direct_oc.cpp)",
                       oc_cols_grad_weight_workspace(g, itemsize));
      break;
    case GradWeight::Flat: out.emplace_back("positions as vector lanes over flat slabs (grad_weight_flat)", kFlatImageBlocks * wbytes + tiles); break;
    case GradWeight::Lanes: out.emplace_back("positions as vector lanes over packed columns (grad_weight_lanes)", 2 * tiles); break;
    case GradWeight::Pointwise: out.emplace_back("per-image BLAS dY X^T (1x1)", 0); break;
    case GradWeight::PointwiseDirect:
      out.emplace_back("6x4 channel tiles over positions in place (pointwise_grad_weight_direct)",
                       pointwise_gw_tiles(g) * kGwOB * kGwCB * (64 + itemsize)); break;
    case GradWeight::ColumnsBlas: out.emplace_back("BLAS dY cols^T per block of k (grad_weight_columns_blas)",
                                                   (g.n > 1 ? g.o * g.ho * g.wo * g.n * itemsize : 0) +
                                                      at::get_num_threads() * grad_weight_blas_rows(g, itemsize) *
                                                          g.n * g.ho * g.wo * itemsize); break;
    case GradWeight::Tiled:
      if (grad_weight_splits_positions(g, itemsize)) {  // per-slab accumulators of the whole gw
        const int64_t K = g.cg * g.kh * g.kw, og_pad = (g.og + 2 * 64 / itemsize - 1) / (2 * 64 / itemsize) * (2 * 64 / itemsize);
        out.emplace_back("tiled GEMM over slabs of positions (grad_weight_tiled)",
                         g.groups * kGradWeightSlabs * (K + 7) / 8 * 8 * og_pad * itemsize + tiles);
      } else {
        out.emplace_back("tiled GEMM over positions (grad_weight_tiled)",
                         std::min<int64_t>(kSharedGyBytes, g.n * g.o * g.ho * g.wo * itemsize) + tiles);
      }
      break;
    case GradWeight::Im2col: out.emplace_back("BLAS dY cols^T over im2col", cols); break;
    case GradWeight::Winograd: out.emplace_back("Winograd: G^T (sum of (A dY A^T) . (B^T x B)) G, BLAS products", winograd_workspace_bytes(g, itemsize, false)); break;
  }
  return out;
}

TORCH_LIBRARY_IMPL(convkit, CPU, m) {
  m.impl("corr2d", &corr2d_cpu);
  m.impl("corr2d_backward", &corr2d_backward_cpu);
}

}  // namespace convkit
