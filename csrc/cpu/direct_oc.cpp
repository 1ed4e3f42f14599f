// Direct convolution with output channels as vector lanes (Georganas et al. 2018's register tile, on NCHW
// input): for layers with a few dozen output channels per group and a large reduction (G1: 192 -> 32, 5x5),
// where the rows kernel (output positions as lanes) broadcasts OB weights per tap from a weight block that
// does not stay in L1, and BLAS has too few output channels to amortise packing.
//   layout    x (N, C, H, W) as is; the weights packed per block of OBV vectors of output channels,
//             wp[group][block][c][i][j][OBV * L] (zero past the group's channels), one copy per call
//             (in a workspace kept between calls).
//   task      one image, group and block of output rows: it copies the input rows they read into a
//             zero-padded slab (slab[c][r][col], col = iw + pl, wide enough for whole tiles), then for each
//             output row, tile of NP output columns and block of channels runs the register tile below.
//   tile      OBV x NP accumulators (OBV = 2 vectors of output channels x NP = 14 output columns: 28 of the 32
//             zmm registers), initialised with the bias. Per tap (c, i, j) ascending: OBV vector loads of
//             packed weights, NP broadcasts of input values from the slab row (every SW-th value), and OBV *
//             NP FMAs. The whole reduction stays in registers; the tile is transposed in registers into y's
//             rows once at the end (store_lanes_transposed: masked stores of the columns below Wo; the
//             columns past it, computed on the slab's zero tail, are dropped). With 64 channels a 4 x 6 tile
//             (fewer loads per FMA) was slower everywhere measured, 0.69-0.91x the time of 2 x 14 (R1, 64->64
//             5x5 and 7x7 @28, 96->64 5x5 @14, R6): its weight block (4 vectors a tap) leaves L1.
// Column stride 1 or 2 (a template parameter: the broadcasts' offsets are constants); any row stride,
// dilation, padding and groups. Used beyond 16 output channels per group (corr2d.cpp oc_lanes_preferred;
// column stride 2 where no BLAS path applies, e.g. the ResNet stem R1 and D1).
// Also here: the grad_weight kernels with output channels as lanes (grad_weight_oc beyond 16 channels per
// group, grad_weight_oc_cols up to one vector of them) and grad_input with (kernel column, input channel)
// pairs as lanes (grad_input_oc_cols), described where they are defined.
// Summation order per output: bias, then (c, i, j) ascending, whatever the split: results do not depend on
// the thread count. Workspace: the packed weights and one slab per thread (about kSlabBytes, more where one
// row block of the input needs more).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "../common.h"
#include "kernels.h"
#include "simd.h"
#include "slab.h"
#include "workspace.h"

namespace convkit {
namespace {

constexpr int64_t kSlabBytes = 256 * 1024;

// The register tile of grad_weight's channel-lanes kernel: OBV vectors of output channels (2 up to two vectors,
// else 4) x 14 or 6 input channels: 28 or 24 of the 32 zmm registers. The forward's is always 2 x 14 (above).
inline int64_t oc_vectors(const ConvGeom& g, int64_t lanes) { return (g.og + lanes - 1) / lanes >= 3 ? 4 : 2; }
inline int64_t oc_tile_width(int64_t obv) { return obv == 4 ? 6 : 14; }

// The forward's register tile: OBV = 2 vectors of output channels x NP = 14 output columns, or for at most one
// vector of output channels per group (column stride 1) OBV = 1 x NP = 8 .. 16 columns, the row split evenly
// into tiles (Wo = 10: one tile of 10; 1 weight load and NP broadcasts per NP FMAs, against the rows
// kernel's 2 loads and 8 broadcasts per 16 FMAs, but every lane useful: L2's 100 positions per image fill
// 100 of the rows kernel's 128 lanes). One definition for the plan, the workspace and the dispatch.
struct FwdTile {
  int obv, np;
};
// The tile width for a row of n columns split evenly into the fewest tiles of at most `most` columns: even,
// and at least 8 (one-vector forward and grad_input_oc_cols).
inline int64_t even_tile(int64_t n, int64_t most) {
  const int64_t tiles = (n + most - 1) / most;
  return std::min(most, std::max<int64_t>(8, ((n + tiles - 1) / tiles + 1) / 2 * 2));
}
FwdTile fwd_tile(const ConvGeom& g, int64_t lanes) {
  if (g.og > lanes || g.sw != 1) return {2, 14};
  return {1, (int)even_tile(g.wo, 16)};
}

// The kernel's shape for one call, with values of `itemsize` bytes: the slab's row pitch ld (whole tiles at
// the column stride, and the padded input row) and its output rows per task (within about kSlabBytes, but no
// more than a fair share of all rows for the threads: each output is computed whole within one task, so the
// split does not change any result).
struct OcPlan {
  int64_t ld, span, rows_per_task;
};
OcPlan oc_plan(const ConvGeom& g, int64_t itemsize) {
  const int64_t np = fwd_tile(g, 64 / itemsize).np;
  const int64_t ld = std::max(g.w + g.pl + g.pr, ((g.wo + np - 1) / np * np - 1) * g.sw + (g.kw - 1) * g.dw + 1);
  const int64_t span = (g.kh - 1) * g.dh + 1;  // input rows one output row reads
  const int64_t row_bytes = std::max<int64_t>(1, g.cg * ld * itemsize);  // (no channels: 0)
  const int64_t want = 4 * at::get_num_threads();
  int64_t rb = std::max<int64_t>(1, (kSlabBytes / row_bytes - span) / g.sh + 1);
  rb = std::max<int64_t>(1, std::min(rb, (g.n * g.groups * g.ho + want - 1) / want));
  // few tasks: fewer rows per task where that makes the task count a multiple of the threads (R9 at N=1: 14
  // rows in 7 tasks of 2 left one of 2 threads a task short). N=1, us, 2 threads, 7 rounds interleaved, 7 ->
  // 14 tasks etc. (torch in brackets): R9 forward 851 -> 780 (677), grad_input 920 -> 847 (675); R8 726 ->
  // 685 / 734 -> 704; G1 779 -> 727 / 729 -> 695; X3 level.
  if (const int64_t nt = at::get_num_threads(), tasks = g.n * g.groups * ((g.ho + rb - 1) / rb);
      nt > 1 && tasks % nt != 0 && tasks < 8 * nt)
    for (int64_t r = rb - 1; r >= 1; --r)
      if ((g.n * g.groups * ((g.ho + r - 1) / r)) % nt == 0) {
        rb = r;
        break;
      }
  return {ld, span, rb};
}

// acc[v][p] = bias + sum over (c, i, j) of wp[c][i][j][v] * s[c * sc + i * si + j * sj + SW * p], then
// y[(v * L + lane) * plane + p] = acc[v][p][lane] for the block's no channels and cnt <= NP positions.
template <typename T, int OBV, int NP, int SW>
void oc_tile_run(const T* s, int64_t sc, int64_t si, int64_t sj, int64_t cg, int64_t kh, int64_t kw, const T* wp,
                 const T* bias, T* y, int64_t plane, int64_t no, int64_t cnt) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  V acc[OBV][NP];
  for (int v = 0; v < OBV; ++v) {
    const V bv = vload(bias + v * L);
    for (int p = 0; p < NP; ++p) acc[v][p] = bv;
  }
  for (int64_t c = 0; c < cg; ++c)
    for (int64_t i = 0; i < kh; ++i) {
      const T* row = s + c * sc + i * si;
      for (int64_t j = 0; j < kw; ++j, wp += OBV * L) {
        const T* q = row + j * sj;  // the tile's broadcasts: q[0], q[SW], ...
        V wv[OBV];
        for (int v = 0; v < OBV; ++v) wv[v] = vload(wp + v * L);
        for (int p = 0; p < NP; ++p) {
          const V xb = splat<T>(q[p * SW]);
          for (int v = 0; v < OBV; ++v) acc[v][p] += wv[v] * xb;
        }
      }
    }
  store_lanes_transposed<T, OBV, NP>(acc, y, plane, no, cnt);
}

template <typename T, int OBV, int NP, int SW>
void forward_oc(const T* x, const T* w, const T* b, T* y, const ConvGeom& g, bool flipped) {
  constexpr int64_t L = Simd<T>::L, CB = OBV * L;  // channels per block
  const int64_t khw = g.kh * g.kw, blocks = (g.og + CB - 1) / CB;
  // packed weights and bias, zero past each group's channels; flipped: w is the original layer's weights
  // (cg x og x kh x kw per group), read flipped and transposed as they are packed
  // (the packed weights in a workspace kept between calls: a fresh zeroed vector of R9's 2.4 MB on every call
  // and a scalar strided copy took 19 % of R9's forward at N=1; now one 16 x 16 in-register transpose per
  // block of rows and k, or per block of rows and input channel with the taps reversed for grad_input. N=1,
  // us, 2 threads, 7 rounds interleaved (torch in brackets): R9 forward 702 -> 577 (657), grad_input 751 ->
  // 594 (661); G1 forward 679 -> 629)
  const int64_t K = g.cg * khw;
  T* const wp = call_workspace<T>(kWsOcWeights, g.groups * blocks * K * CB);
#if defined(__AVX512F__)
  const __m512i reverse = reverse_index<T>(khw);
#endif
  std::vector<T> bp(g.groups * blocks * CB, T(0));
  at::parallel_for(0, g.groups * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t gb = begin; gb < end; ++gb) {
      const int64_t grp = gb / blocks, o0 = gb % blocks * CB, no = std::min(CB, g.og - o0);
      T* dst = wp + gb * K * CB;
      for (int64_t o = 0; o < no; ++o)
        if (b) bp[gb * CB + o] = b[grp * g.og + o0 + o];
      if (!flipped) {  // dst[k][o] = W[o0 + o][k]: blocks of NB rows x L values of k, zero rows past no
        constexpr int NB = L;
        const T* src = w + (grp * g.og + o0) * K;
        for (int64_t k0 = 0; k0 < K; k0 += L) {
          const int64_t nk = std::min(L, K - k0);
          for (int64_t r0 = 0; r0 < CB; r0 += NB) {
            typename Simd<T>::V rows[1][NB];
            for (int p = 0; p < NB; ++p)
              rows[0][p] = r0 + p < no ? load_n(src + (r0 + p) * K + k0, nk) : typename Simd<T>::V{};
            store_lanes_transposed<T, 1, NB>(rows, dst + k0 * CB + r0, CB, nk, NB);
          }
        }
        continue;
      }
#if defined(__AVX512F__)
      if (khw <= L) {  // per c, the block's no rows of kh*kw taps, each reversed in a register, transposed
        using A = Avx512<T>;
        constexpr int NB = L;
        const auto m = lanes_mask<T>(khw);
        for (int64_t c = 0; c < g.cg; ++c) {
          const T* src = w + ((grp * g.cg + c) * g.og + o0) * khw;  // rows o of kh*kw taps, contiguous
          for (int64_t r0 = 0; r0 < CB; r0 += NB) {
            typename Simd<T>::V rows[1][NB];
            for (int p = 0; p < NB; ++p) {
              if (r0 + p >= no) {
                rows[0][p] = typename Simd<T>::V{};
                continue;
              }
              const typename A::V r = load_reversed(src + (r0 + p) * khw, m, reverse);
              rows[0][p] = reinterpret_cast<const typename Simd<T>::V&>(r);
            }
            store_lanes_transposed<T, 1, NB>(rows, dst + c * khw * CB + r0, CB, khw, NB);
          }
        }
        continue;
      }
#endif
      std::fill(dst, dst + K * CB, T(0));
      for (int64_t o = 0; o < no; ++o)
        for (int64_t c = 0; c < g.cg; ++c) {
          const T* src = w + ((grp * g.cg + c) * g.og + o0 + o) * khw;
          for (int64_t q = 0; q < khw; ++q) dst[(c * khw + q) * CB + o] = src[khw - 1 - q];
        }
    }
  });
  const OcPlan plan = oc_plan(g, sizeof(T));
  const int64_t ld = plan.ld, span = plan.span, rb = plan.rows_per_task;
  const int64_t rblocks = (g.ho + rb - 1) / rb, plane = g.ho * g.wo;
  at::parallel_for(0, g.n * g.groups * rblocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> slab;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t oh0 = t % rblocks * rb, oh1 = std::min(g.ho, oh0 + rb);
      const int64_t grp = (t / rblocks) % g.groups, n = t / (rblocks * g.groups);
      const int64_t rows = (oh1 - oh0 - 1) * g.sh + span, ih0 = oh0 * g.sh - g.pt, c_ld = rows * ld;
      const T* xg = x + (n * g.c + grp * g.cg) * g.h * g.w;
      padded_rows_slab(xg, g, ih0, rows, ld, slab);
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t o0 = blk * CB, no = std::min(CB, g.og - o0);
        const T* wb = wp + (grp * blocks + blk) * g.cg * khw * CB;
        const T* bb = bp.data() + (grp * blocks + blk) * CB;
        T* yb = y + (n * g.o + grp * g.og + o0) * plane;
        for (int64_t oh = oh0; oh < oh1; ++oh)
          for (int64_t ow0 = 0; ow0 < g.wo; ow0 += NP) {
            oc_tile_run<T, OBV, NP, SW>(slab.data() + (oh - oh0) * g.sh * ld + ow0 * SW, c_ld, g.dh * ld, g.dw, g.cg,
                                        g.kh, g.kw, wb, bb, yb + oh * g.wo + ow0, plane, no,
                                        std::min<int64_t>(NP, g.wo - ow0));
          }
      }
    }
  });
}

// grad_weight with output channels as vector lanes: gw[o][c][i][j] = sum over images n and output positions
// (oh, ow) of dY[n][o][oh][ow] * x[n][c][oh*sh + i*dh - pt][ow*sw + j*dw - pl], the forward's register tile
// turned around (the reduction is over positions, the tile over input channels):
//   layout    x read in place (NCHW): a tile's CT broadcasts per position come from CT input rows, each read
//             along (a cache line per 16 / sw positions), and a tap's positions that would read padding are
//             skipped (their products are zero). dY transposed and blocked by OBV vectors of output channels
//             per chunk of images and group, d[image][o block][p][OBV * L] (o padded to whole blocks): a task
//             streams its block's panel, 256 B per position (d[p][all o], strided by Og, ran R9 N=8 at 6.3 ms
//             against 4.3), built in one parallel pass per chunk, a task per image and output row, by 16 x 16
//             in-register transposes. Partial sums acc[group][o block][c tile][tap][OBV][CT] (vectors, about
//             gw's size) only where the positions take more than one block. (Until session 18's last change
//             the input was first copied into zero-padded channels-last slabs per tile of CT channels,
//             s[tile][r][col][CT]: that copy was ~half of a 13 % build pass on R3 and most of the stride-2
//             cost, where the input is 4x the output.)
//   blocks    (oc_gw_blocks) as many images per chunk as keep a block's d panel within kGwBlockBytes, so a
//             thread's next tasks (the other taps, then the next channel tile) find it in L2 (at most 7
//             images on R9, 30 on R11, 1 on R8; chunks of equal size); an image whose panel is larger is one chunk, split into blocks of rows.
//   task      a block of OBV vectors of output channels x a tile of CT input channels, with all kh*kw taps
//             where there are at least kGwPairsPerThread such pairs per thread (their tiles then go to gw as
//             runs of taps, oc_gw_store), else with one tap; per position block in turn, over every image of
//             the block. The threads split the tasks.
//   tile      OBV x CT accumulators (2 x 14 up to two vectors of channels, else 4 x 6), zero or loaded from acc
//             at the block's start, stored to acc or (last block) to gw at its end (oc_gw_tile_x). Per output
//             position whose tap reads the image: OBV vector loads of d[p], CT broadcasts of x[c][oh*sh + i*dh
//             - pt][ow*sw + j*dw - pl] for the tile's channels c and OBV * CT FMAs.
// Any stride, dilation, padding and groups. Summation order per gw element: images, then positions (oh, ow)
// ascending, whatever the split or task kind: results do not depend on the thread count. Workspace (kept
// between calls): one chunk's d, and acc where there is more than one block.
// Reading x in place in place of the slabs (two builds in sequence, gw alone, 2 threads, 5 rounds, us, N = 1
// / 8): R9 597 -> 545 / 4657 -> 4134, R3 722 -> 604 / 5612 -> 4725, X3 726 -> 611 / 5701 -> 4857, R11 735
// -> 603 / 5070 -> 4578, G1 650 -> 583 / 4775 -> 3876; and stride 2 became worth it (see oc_gw_preferred).
// Before (session 17): the tile loaded and stored once per image, three parallel passes per image, acc fresh
// and zeroed on every call, dY transposed by scalar strided stores into d[p][o], and a final pass from acc
// into gw: R9 N=8 gw 5.9 ms (314 GFLOP/s), then 4.0-4.3 ms (430-460); R11 N=1 1.34 ms -> 0.68. The tile is
// kept out of line (oc_gw_tile_x): inlined into the single-thread path, GCC folded the d loads into memory
// operands of every FMA (24 loads per 24 FMAs; 78 GFLOP/s at 1 thread, 213 out of line).
struct GwPlan {
  int64_t obv, ct, cgp, ogp, nob, nct;
};
GwPlan oc_gw_plan(const ConvGeom& g, int64_t lanes) {
  const int64_t nvec = (g.og + lanes - 1) / lanes, obv = oc_vectors(g, lanes), ct = oc_tile_width(obv);
  const int64_t nob = (nvec + obv - 1) / obv, nct = (g.cg + ct - 1) / ct;
  return {obv, ct, nct * ct, nob * obv * lanes, nob, nct};
}

// grad_weight_oc_cols' register tile (OBV vectors of output channels x CT (kernel column, input channel)
// pairs) over one image's Ho x Wo positions: per position OBV vector loads of d[p] (dld apart) and CT
// broadcasts of contiguous slab values q[0 .. CT) (q = s + oh * row_step + ow * col_step); acc in memory.
template <typename T, int OBV, int CT>
void oc_gw_tile(const T* s, int64_t row_step, int64_t col_step, const T* d, int64_t dld, int64_t ho, int64_t wo,
                typename Simd<T>::V* accp) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  V acc[OBV][CT];
  for (int v = 0; v < OBV; ++v)
    for (int t = 0; t < CT; ++t) acc[v][t] = accp[v * CT + t];
  for (int64_t oh = 0; oh < ho; ++oh) {
    const T* q = s + oh * row_step;
    for (int64_t ow = 0; ow < wo; ++ow, q += col_step, d += dld) {
      V dv[OBV];
      for (int v = 0; v < OBV; ++v) dv[v] = vload(d + v * L);
      for (int t = 0; t < CT; ++t) {
        const V xb = splat<T>(q[t]);
        for (int v = 0; v < OBV; ++v) acc[v][t] += dv[v] * xb;
      }
    }
  }
  for (int v = 0; v < OBV; ++v)
    for (int t = 0; t < CT; ++t) accp[v * CT + t] = acc[v][t];
}

// grad_weight_oc's tile, reading x in place (NCHW), for one tap: the images of one position block in turn
// into registers, starting from `in` (nullptr: zeros) and ending in `out`. CT input channels from xs[t] (a channel's plane of
// image 0; images x_img apart), output rows [oh_lo, oh_hi) and columns [ow_lo, ow_hi), the positions whose
// tap reads the image (the others would add products of padding zeros), input offset (oh*sh + ih0) * w +
// ow*sw + iw0. d: the block's dY panel of image 0 at position 0 (images d_img apart, positions dld apart).
// Each broadcast reads along one of CT input rows (one cache line per 16 / sw positions).
template <typename T, int OBV, int CT>
__attribute__((noinline)) void oc_gw_tile_x(const T* const (&xs)[CT], int64_t x_img, int64_t w, int64_t sh, int64_t sw,
                                            int64_t ih0, int64_t iw0, const T* d, int64_t d_img, int64_t dld,
                                            int64_t wo, int64_t oh_lo, int64_t oh_hi, int64_t ow_lo, int64_t ow_hi,
                                            int64_t nimg, const typename Simd<T>::V* in, typename Simd<T>::V* out) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  V acc[OBV][CT];
  for (int v = 0; v < OBV; ++v)
    for (int t = 0; t < CT; ++t) acc[v][t] = in ? in[v * CT + t] : V{};
  for (int64_t n = 0; n < nimg; ++n)
    for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
      const T* dp = d + n * d_img + (oh * wo + ow_lo) * dld;
      int64_t off = n * x_img + (oh * sh + ih0) * w + ow_lo * sw + iw0;
      for (int64_t ow = ow_lo; ow < ow_hi; ++ow, off += sw, dp += dld) {
        V dv[OBV];
        for (int v = 0; v < OBV; ++v) dv[v] = vload(dp + v * L);
        for (int t = 0; t < CT; ++t) {
          const V xb = splat<T>(xs[t][off]);
          for (int v = 0; v < OBV; ++v) acc[v][t] += dv[v] * xb;
        }
      }
    }
  for (int v = 0; v < OBV; ++v)
    for (int t = 0; t < CT; ++t) out[v * CT + t] = acc[v][t];
}

// [lo, hi): the outputs o in [0, n) whose tap reads the input, 0 <= o * stride + off < size.
inline std::pair<int64_t, int64_t> valid_outputs(int64_t n, int64_t stride, int64_t off, int64_t size) {
  const int64_t lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
  const int64_t hi = size - 1 - off < 0 ? 0 : (size - 1 - off) / stride + 1;
  return {std::min(lo, n), std::max(std::min(hi, n), std::min(lo, n))};
}

// The position blocks a thread's tasks take in turn: the images of a chunk (built in one parallel pass) and,
// where one image's d panel (all its positions x OBV vectors) is larger than kGwBlockBytes, a chunk of one
// image split into blocks of whole output rows whose panels fit. Blocks that fit L1 instead (24-96 KiB, so
// more passes of the partial sums through memory) were 3-12 % slower on R9, R3, X3, R8, R11 and G1; 1-4 MiB
// level to 10 % slower.
constexpr int64_t kGwBlockBytes = 384 * 1024;
struct GwBlocks {
  int64_t chunk, rows;
};
inline GwBlocks oc_gw_blocks(const ConvGeom& g, int64_t obv) {
  const int64_t row = g.wo * obv * 64, panel = g.ho * row;
  if (panel <= kGwBlockBytes) {  // chunks of equal size (R9 N=8: 4 + 4, not 7 + 1)
    const int64_t most = std::max<int64_t>(1, std::min<int64_t>(g.n, kGwBlockBytes / std::max<int64_t>(panel, 1)));
    const int64_t chunks = (g.n + most - 1) / std::max<int64_t>(most, 1);
    return {std::max<int64_t>(1, (g.n + chunks - 1) / std::max<int64_t>(chunks, 1)), g.ho};
  }
  return {1, std::max<int64_t>(1, kGwBlockBytes / row)};
}

// A task's finished tiles -> gw[grp * og + o][c][i][j] for its taps [tap0, tap0 + ntap): out[tap][v][t] holds
// output channels (ob * OBV + v) * L + lane of input channel ct * CT + t. With every tap of a small kernel
// (kh*kw <= L) one in-register transpose per (v, t) turns the taps x channels vectors into one masked store
// of kh*kw contiguous taps per output channel; else scalar stores. (Each tap's tile stored alone, 384 scalar
// stores 18 KB apart, cost R11 N=1 735 of its 1341 us: 9.4 MB of gw, a page per store.)
constexpr int64_t kGwPairsPerThread = 8;
template <typename T, int OBV, int CT>
void oc_gw_store(const typename Simd<T>::V* out, T* gw, const ConvGeom& g, int64_t grp, int64_t ob, int64_t ct,
                 int64_t tap0, int64_t ntap) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  const int64_t khw = g.kh * g.kw, nc = std::min<int64_t>(CT, g.cg - ct * CT);
  for (int v = 0; v < OBV; ++v) {
    const int64_t o0 = (ob * OBV + v) * L, no = std::min(L, g.og - o0);
    if (no <= 0) break;
    for (int64_t t = 0; t < nc; ++t) {
      T* dst = gw + ((grp * g.og + o0) * g.cg + ct * CT + t) * khw + tap0;
      if (ntap == khw && khw <= L) {
        V rows[1][L];
        for (int64_t q = 0; q < L; ++q) rows[0][q] = q < khw ? out[q * OBV * CT + v * CT + t] : V{};
        store_lanes_transposed<T, 1, L>(rows, dst, g.cg * khw, no, khw);
        continue;
      }
      for (int64_t l = 0; l < no; ++l)
        for (int64_t q = 0; q < ntap; ++q) dst[l * g.cg * khw + q] = out[q * OBV * CT + v * CT + t][l];
    }
  }
}

template <typename T, int OBV, int CT>
void grad_weight_oc(const T* x, const T* gy, T* gw, const ConvGeom& g) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L, OB = OBV * L;  // output channels per block
  const GwPlan pl = oc_gw_plan(g, L);
  const int64_t khw = g.kh * g.kw, plane = g.ho * g.wo, d_img = plane * pl.ogp, x_img = g.c * g.h * g.w;
  if (g.n == 0 || plane == 0) {  // no positions: gw is zero (the tiles below would never reach their last block)
    std::fill(gw, gw + g.o * g.cg * khw, T(0));
    return;
  }
  // tasks: (output-channel block, input-channel tile) pairs with every tap, where there are enough of them to
  // share evenly, so a task's finished tiles go to gw as runs of kh*kw taps; else single taps
  const int64_t pairs = pl.nob * pl.nct, per_group = pairs * khw * OBV * CT;
  const int64_t ntap = pairs >= kGwPairsPerThread * at::get_num_threads() ? khw : 1, tasks = pairs * khw / ntap;
  const GwBlocks bl = oc_gw_blocks(g, OBV);
  const int64_t chunk = bl.chunk, chunks = (g.n + chunk - 1) / chunk, rblocks = (g.ho + bl.rows - 1) / bl.rows;
  // kept between calls (fresh pages cost ~1 us per 4 KiB here: R9's 2.4 MB of partial sums alone were
  // ~0.6 ms a call); the partial sums only where the positions take more than one block
  T* const d = call_workspace<T>(kWsGwDy, chunk * d_img);
  V* const acc = chunks * rblocks > 1 ? call_workspace<V>(kWsGwPartial, g.groups * per_group) : nullptr;
  // per tap, the output rows and columns whose tap reads the image
  std::vector<std::array<int64_t, 4>> reach(khw);
  for (int64_t tap = 0; tap < khw; ++tap) {
    const auto [oh_lo, oh_hi] = valid_outputs(g.ho, g.sh, tap / g.kw * g.dh - g.pt, g.h);
    const auto [ow_lo, ow_hi] = valid_outputs(g.wo, g.sw, tap % g.kw * g.dw - g.pl, g.w);
    reach[tap] = {oh_lo, oh_hi, ow_lo, ow_hi};
  }
  for (int64_t grp = 0; grp < g.groups; ++grp)
    for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
      const int64_t nimg = std::min(chunk, g.n - n0);
      // the chunk's dY, transposed and blocked, one task per image and output row: 16 x 16 in-register
      // transposes of 16 output channels x 16 positions into [p][OB] (zero past Og), the next row prefetched
      at::parallel_for(0, nimg * g.ho, 1, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t n = b / g.ho, r = b % g.ho;
          const T* gyg = gy + ((n0 + n) * g.o + grp * g.og) * plane;
          if (r + 1 < g.ho)
            for (int64_t o = 0; o < g.og; ++o)
              for (int64_t q = 0; q < g.wo; q += 64 / (int64_t)sizeof(T))
                __builtin_prefetch(gyg + o * plane + (r + 1) * g.wo + q);
          for (int64_t p0 = r * g.wo; p0 < (r + 1) * g.wo; p0 += L) {
            const int64_t np = std::min(L, (r + 1) * g.wo - p0);
            for (int64_t o0 = 0; o0 < pl.ogp; o0 += L) {
              V rows16[1][L];
              for (int64_t q = 0; q < L; ++q)
                rows16[0][q] = o0 + q < g.og ? load_n(gyg + (o0 + q) * plane + p0, np) : V{};
              store_lanes_transposed<T, 1, L>(rows16, d + n * d_img + (o0 / OB * plane + p0) * OB + o0 % OB, OB, np,
                                              L);
            }
          }
        }
      });
      at::parallel_for(0, tasks, 1, [&](int64_t u0, int64_t u1) {
        std::vector<V> out(ntap * OBV * CT);  // the finished tiles of one task's taps
        for (int64_t oh0 = 0; oh0 < g.ho; oh0 += bl.rows) {
          const int64_t nrows = std::min(bl.rows, g.ho - oh0);
          const bool first = n0 == 0 && oh0 == 0, last = n0 + chunk >= g.n && oh0 + nrows == g.ho;
          for (int64_t u = u0; u < u1; ++u) {
            const int64_t pair = u / (khw / ntap), tap0 = u % (khw / ntap) * ntap;
            const int64_t ct = pair % pl.nct, ob = pair / pl.nct, nc = std::min<int64_t>(CT, g.cg - ct * CT);
            const T* xs[CT];  // channels past Cg read the tile's first channel: their sums are never stored
            for (int t = 0; t < CT; ++t) xs[t] = x + (n0 * g.c + grp * g.cg + ct * CT + (t < nc ? t : 0)) * g.h * g.w;
            for (int64_t tap = tap0; tap < tap0 + ntap; ++tap) {
              const auto [oh_lo, oh_hi, ow_lo, ow_hi] = reach[tap];
              const int64_t r0 = std::max(oh_lo, oh0), r1 = std::max(r0, std::min(oh_hi, oh0 + nrows));  // this block's
              V* a = acc ? acc + ((grp * pairs + pair) * khw + tap) * OBV * CT : nullptr;
              oc_gw_tile_x<T, OBV, CT>(xs, x_img, g.w, g.sh, g.sw, tap / g.kw * g.dh - g.pt, tap % g.kw * g.dw - g.pl,
                                       d + ob * plane * OB, d_img, OB, g.wo, r0, r1, ow_lo, ow_hi, nimg,
                                       first ? nullptr : a, last ? out.data() + (tap - tap0) * OBV * CT : a);
            }
            if (last) oc_gw_store<T, OBV, CT>(out.data(), gw, g, grp, ob, ct, tap0, ntap);
          }
        }
      });
    }
}

// grad_weight for at most one vector of output channels per group (L2: 6 -> 16, 5x5) and kernel-column dilation
// 1: output channels as the lanes of one vector, and the tile over (kernel column j, input channel c) pairs,
// t = j * Cg + c, which are consecutive values of a channels-last input row: for output position (oh, ow) and
// kernel row i, pair t reads s[oh*sh + i*dh][ow*sw*Cg + t]. So a tile of CT pairs is oc_gw_tile's 1 x CT tile
// with a column step of sw * Cg, and every lane and every product is useful (the positions-as-lanes kernel
// grad_weight_flat pads each image's positions to whole vector pairs, keeps its Og x K accumulators in memory
// and sums their lanes at the end).
//   layout    per image and group, the input as one zero-padded channels-last slab s[r][col][c] (plus CT values
//             of slack: a tile's last pairs may read past the row, and their sums are dropped), and dY
//             transposed to d[p][L] (zero past Og).
//   unit      kernel row i x one tile of CT pairs (CT in 8 .. 28: the pairs split evenly into tiles); a task
//             owns a range of units and one of kOcColsImageBlocks fixed blocks of images, builds each image's
//             slab and d once, and keeps its units' accumulators (CT vectors each) in a small buffer between
//             images, then copies them as they are (vectors) to its block's partial sums. At the end the
//             blocks are added in block order and each sum's lanes scattered once to gw (scattering every
//             task's accumulators to a gw-shaped buffer, 16 scalar stores a line apart per vector, took
//             about a quarter of this kernel's samples on L2 at N=8).
// Summation order per gw element: images of a block, positions (oh, ow) ascending, then the blocks in order,
// whatever the split: results do not depend on the thread count. Workspace: per task one image's slab and d
// and its units' accumulators; kOcColsImageBlocks blocks of partial sums (whole tiles of pairs).
constexpr int64_t kOcColsImageBlocks = 4;
struct ColsPlan {
  int64_t ct, ntiles, units, hp, wp;
};
ColsPlan oc_cols_plan(const ConvGeom& g) {
  const int64_t pairs = g.kw * g.cg, nt = (pairs + 27) / 28;
  const int64_t ct = std::max<int64_t>(8, ((pairs + nt - 1) / nt + 3) / 4 * 4);
  const int64_t ntiles = (pairs + ct - 1) / ct;
  return {ct, ntiles, g.kh * ntiles, g.h + g.pt + g.pb, g.w + g.pl + g.pr};
}

// d[p * L + o] = gy[o * plane + p] for o < og <= L and p < plane (lanes past og untouched): per L positions one
// in-register transpose of og rows (store_lanes_transposed with rows as the tile).
template <typename T>
void transpose_to_lanes(const T* gy, int64_t og, int64_t plane, T* d) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  for (int64_t p0 = 0; p0 < plane; p0 += L) {
    const int64_t cnt = std::min(L, plane - p0);
    V r[1][L];
    for (int64_t o = 0; o < L; ++o) r[0][o] = o < og ? load_n(gy + o * plane + p0, cnt) : V{};
    store_lanes_transposed<T, 1, L>(r, d + p0 * L, L, cnt, og);
  }
}

template <typename T, int CT>
void grad_weight_oc_cols(const T* x, const T* gy, T* gw, const ConvGeom& g) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  const ColsPlan pl = oc_cols_plan(g);
  const int64_t khw = g.kh * g.kw, plane = g.ho * g.wo, row_ld = pl.wp * g.cg, pairs = g.kw * g.cg;
  const int64_t nblocks = std::max<int64_t>(1, std::min(g.n, kOcColsImageBlocks)), nper = (g.n + nblocks - 1) / nblocks;
  const int64_t want = 2 * at::get_num_threads();
  const int64_t usplit = std::min(pl.units, std::max<int64_t>(1, (want + g.groups * nblocks - 1) / (g.groups * nblocks)));
  const int64_t uper = (pl.units + usplit - 1) / usplit;
  // per image block, the units' accumulators as they are: part[grp][nb][u][tt] (vectors of output channels)
  const int64_t upg = pl.units * CT;  // vectors per group and block
  std::vector<V> part(g.groups * nblocks * upg, V{});
  at::parallel_for(0, g.groups * nblocks * usplit, 1, [&](int64_t begin, int64_t end) {
    // zero once: every image writes the same interior of the slab and lanes < Og of d
    std::vector<T> slab(pl.hp * row_ld + CT, T(0)), d(plane * L, T(0));
    std::vector<V> acc;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t us = task % usplit, nb = (task / usplit) % nblocks, grp = task / (usplit * nblocks);
      const int64_t u0 = us * uper, u1 = std::min(pl.units, u0 + uper);
      if (u0 >= u1) continue;
      acc.assign((u1 - u0) * CT, V{});
      for (int64_t n = nb * nper; n < std::min(g.n, (nb + 1) * nper); ++n) {
        const T* xg = x + (n * g.c + grp * g.cg) * g.h * g.w;
        for (int64_t ih = 0; ih < g.h; ++ih) {  // stores in order, loads from Cg rows
          const T* xr = xg + ih * g.w;
          T* sr = slab.data() + (ih + g.pt) * row_ld + g.pl * g.cg;
          for (int64_t iw = 0; iw < g.w; ++iw)
            for (int64_t c = 0; c < g.cg; ++c) sr[iw * g.cg + c] = xr[c * g.h * g.w + iw];
        }
        const T* gyg = gy + (n * g.o + grp * g.og) * plane;
        transpose_to_lanes(gyg, g.og, plane, d.data());
        for (int64_t u = u0; u < u1; ++u) {
          const int64_t i = u / pl.ntiles, tb = u % pl.ntiles;
          oc_gw_tile<T, 1, CT>(slab.data() + i * g.dh * row_ld + tb * CT, g.sh * row_ld, g.sw * g.cg, d.data(), L,
                               g.ho, g.wo, acc.data() + (u - u0) * CT);
        }
      }
      std::copy(acc.begin(), acc.end(), part.begin() + (grp * nblocks + nb) * upg + u0 * CT);
    }
  });
  // the blocks summed in order, then scattered to gw[grp * og + o][c][i][j] (pair t = j * Cg + c of unit
  // i * ntiles + t / CT)
  for (int64_t grp = 0; grp < g.groups; ++grp)
    for (int64_t v = 0; v < upg; ++v) {
      const int64_t u = v / CT, t = u % pl.ntiles * CT + v % CT, i = u / pl.ntiles;
      if (t >= pairs) continue;
      V s = part[grp * nblocks * upg + v];
      for (int64_t nb = 1; nb < nblocks; ++nb) s += part[(grp * nblocks + nb) * upg + v];
      T* dst = gw + (grp * g.og * g.cg + t % g.cg) * khw + i * g.kw + t / g.cg;
      for (int64_t o = 0; o < g.og; ++o) dst[o * g.cg * khw] = s[o];
    }
}

// grad_input for stride 1 with few (kernel column, input channel) pairs per group (L2: 6 input channels x 5
// columns = 30 pairs): the pairs t = j * Cg + c as the lanes of OBV <= 2 vectors, so the kernel's column
// shifts live in the lanes and dY is read as it is. Per gx row h:
//   Z[t][ow]    = sum over o and the kernel rows i whose dY row oh = h + pt - i*dh exists of W[o][c][i][j] dY[o][oh][ow]
//   gx[c][h][w] = sum over j of Z[j * Cg + c][w + pl - j*dw]   (zero where that column is outside dY)
// Every product is of a real dY value. The rows kernel on dY zero-padded by d(k-1) - p (grad_input_rows) has
// positions as lanes and spends on L2 96 of every 196 multiply-adds on the padding, and copies kw shifted,
// padded dY slabs per image.
//   layout    the weights packed wp[group][o][i][OBV * L] (lane t; zero past the pairs); dY read in place, or
//             where NP does not divide Wo (the last tile's broadcasts would read past dY's end) through a
//             per-task copy of the dY rows the block reads, their pitch padded to whole tiles; per thread two
//             row buffers z[t][zoff + ow] (a row is folded while the next one's tiles run), zero outside the
//             Wo columns the tiles write, so the fold needs no bounds.
//   task      one image and group and a block of gx rows (whole rows: the split does not change any result;
//             with the dY copy, the block's rows are bounded so that the copy stays within about kSlabBytes).
//   tile      OBV x NP accumulators over NP consecutive dY columns (NP in 8 .. 14, the row split evenly); per
//             (o, i): OBV weight vector loads, NP broadcasts of dY, OBV * NP FMAs; then transposed into z's rows
//             (store_lanes_transposed). The fold: per input channel and vector of gx columns, kw unaligned
//             loads of z and adds, one store.
// Summation order per gx element: (o, i) ascending, then j ascending. Workspace: the packed weights, and
// per thread z and (where NP does not divide Wo) one block's padded dY rows.
struct ColsGxPlan {
  int64_t obv, np, ntiles, zoff, zld, dld, rows_per_task;
  bool copy;
};
ColsGxPlan oc_cols_gx_plan(const ConvGeom& g, int64_t lanes) {
  const int64_t pairs = g.kw * g.cg, obv = (pairs + lanes - 1) / lanes;
  const int64_t np = even_tile(g.wo, 14), ntiles = (g.wo + np - 1) / np;
  const int64_t zoff = std::max<int64_t>(0, (g.kw - 1) * g.dw - g.pl);  // the fold's lowest column is zoff + pl - (kw-1)dw
  const int64_t wv = (g.w + lanes - 1) / lanes * lanes;
  const int64_t zld = std::max(zoff + g.pl + wv, zoff + g.wo);
  const bool copy = g.wo % np != 0;
  const int64_t dld = copy ? ntiles * np : g.wo;
  const int64_t want = 4 * at::get_num_threads(), tasks = g.n * g.groups;
  int64_t rb = std::max<int64_t>(1, g.h / std::max<int64_t>(1, (want + tasks - 1) / tasks));
  if (copy)  // the copied dY rows of a block (its rows plus the kernel's span) within about kSlabBytes
    rb = std::max<int64_t>(1, std::min(rb, kSlabBytes / std::max<int64_t>(1, g.og * dld * (64 / lanes)) -
                                               (g.kh - 1) * g.dh));
  return {obv, np, ntiles, zoff, zld, dld, rb, copy};
}

// acc[v][p] = sum over o < og and ni kernel rows of wp[o * w_step + ii * OBV * L + v * L] * q[o * o_step +
// ii * i_step + p], then z[(v * L + l) * zld + p] = acc[v][p][l] for lanes below `pairs` and p < cnt.
template <typename T, int OBV, int NP>
void oc_cols_gx_tile(const T* q0, int64_t o_step, int64_t i_step, const T* wp, int64_t w_step, int64_t og, int64_t ni,
                     T* z, int64_t zld, int64_t pairs, int64_t cnt) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  V acc[OBV][NP];
  for (int v = 0; v < OBV; ++v)
    for (int p = 0; p < NP; ++p) acc[v][p] = V{};
  for (int64_t o = 0; o < og; ++o) {
    const T* q = q0 + o * o_step;
    const T* w = wp + o * w_step;
    for (int64_t ii = 0; ii < ni; ++ii, q += i_step, w += OBV * L) {
      V wv[OBV];
      for (int v = 0; v < OBV; ++v) wv[v] = vload(w + v * L);
      for (int p = 0; p < NP; ++p) {
        const V xb = splat<T>(q[p]);
        for (int v = 0; v < OBV; ++v) acc[v][p] += wv[v] * xb;
      }
    }
  }
  store_lanes_transposed<T, OBV, NP>(acc, z, zld, pairs, cnt);
}

template <typename T, int OBV, int NP>
void grad_input_oc_cols(const T* gy, const T* w, T* gx, const ConvGeom& g) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L, TL = OBV * L;
  const ColsGxPlan pl = oc_cols_gx_plan(g, L);
  const int64_t pairs = g.kw * g.cg, khw = g.kh * g.kw, plane = g.ho * g.wo, w_step = g.kh * TL;
  std::vector<T> wp(g.o * w_step, T(0));  // wp[grp * og + o][i][t]
  for (int64_t o = 0; o < g.o; ++o)
    for (int64_t c = 0; c < g.cg; ++c)
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j) wp[o * w_step + i * TL + j * g.cg + c] = w[(o * g.cg + c) * khw + i * g.kw + j];
  const int64_t rb = pl.rows_per_task, rblocks = (g.h + rb - 1) / rb;
  const int64_t zsz = pairs * pl.zld;
  at::parallel_for(0, g.n * g.groups * rblocks, 1, [&](int64_t begin, int64_t end) {
    // two rows of Z: a row is folded after the next row's tiles, when its stores have left the store buffer
    // (folding at once read the just-written, partly masked lines back through failed store forwarding)
    std::vector<T> z(2 * zsz, T(0)), dcopy;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t h0 = task % rblocks * rb, h1 = std::min(g.h, h0 + rb), ng = task / rblocks;
      const int64_t grp = ng % g.groups, n = ng / g.groups;
      T* gxg = gx + (n * g.c + grp * g.cg) * g.h * g.w;
      // dY rows [base, base + rows) as d[o * d_plane + (oh - base) * dld + ow]: in place, or the block's rows
      // copied with their pitch padded to whole tiles
      const T* d = gy + (n * g.o + grp * g.og) * plane;
      int64_t dld = g.wo, d_plane = plane, base = 0;
      if (pl.copy) {
        base = std::max<int64_t>(0, h0 + g.pt - (g.kh - 1) * g.dh);
        const int64_t rows = std::max<int64_t>(0, std::min(g.ho, h1 + g.pt) - base);
        dcopy.assign(g.og * rows * pl.dld + NP, T(0));
        for (int64_t o = 0; o < g.og; ++o)
          for (int64_t r = 0; r < rows; ++r)
            std::copy(d + (o * g.ho + base + r) * g.wo, d + (o * g.ho + base + r + 1) * g.wo,
                      dcopy.data() + (o * rows + r) * pl.dld);
        d = dcopy.data();
        dld = pl.dld;
        d_plane = rows * pl.dld;
      }
      const T* wg = wp.data() + grp * g.og * w_step;
      const auto fold = [&](int64_t h) {  // gx[c][h][w] = sum over j of Z[j * Cg + c][w + pl - j*dw]
        for (int64_t c = 0; c < g.cg; ++c)
          for (int64_t w0 = 0; w0 < g.w; w0 += L) {
            const T* zc = z.data() + (h & 1) * zsz + c * pl.zld + pl.zoff + w0 + g.pl;  // j = 0
            V s = vload(zc);
            for (int64_t j = 1; j < g.kw; ++j) s += vload(zc + j * (g.cg * pl.zld - g.dw));
            store_n(gxg + (c * g.h + h) * g.w + w0, s, std::min(L, g.w - w0));
          }
      };
      int64_t pending = -1;  // the row whose Z waits in z to be folded
      for (int64_t h = h0; h < h1; ++h) {
        // kernel rows i with 0 <= h + pt - i*dh < Ho
        const int64_t top = h + g.pt;
        const int64_t i0 = top >= g.ho ? (top - g.ho) / g.dh + 1 : 0, i1 = std::min(g.kh, top / g.dh + 1);
        if (i0 >= i1) {  // no dY row reaches gx row h
          for (int64_t c = 0; c < g.cg; ++c) std::fill(gxg + (c * g.h + h) * g.w, gxg + (c * g.h + h + 1) * g.w, T(0));
          if (pending >= 0) fold(pending);
          pending = -1;
          continue;
        }
        for (int64_t k = 0; k < pl.ntiles; ++k) {
          const int64_t ow0 = k * NP;
          oc_cols_gx_tile<T, OBV, NP>(d + (top - i0 * g.dh - base) * dld + ow0, d_plane, -g.dh * dld, wg + i0 * TL,
                                      w_step, g.og, i1 - i0, z.data() + (h & 1) * zsz + pl.zoff + ow0, pl.zld, pairs,
                                      std::min<int64_t>(NP, g.wo - ow0));
        }
        if (pending >= 0) fold(pending);
        pending = h;
      }
      if (pending >= 0) fold(pending);
    }
  });
}

}  // namespace

// One vector of output channels per group, kernel-column dilation 1, a kernel wider than one column or more
// than one input channel.
bool oc_cols_grad_weight_applies(const ConvGeom& g, int64_t lanes) {
  return g.og <= lanes && g.dw == 1 && g.kh * g.kw > 1;
}

template <typename T>
void oc_cols_grad_weight(const T* x, const T* gy, T* gw, const ConvGeom& g) {
  switch (oc_cols_plan(g).ct) {
    case 8: grad_weight_oc_cols<T, 8>(x, gy, gw, g); break;
    case 12: grad_weight_oc_cols<T, 12>(x, gy, gw, g); break;
    case 16: grad_weight_oc_cols<T, 16>(x, gy, gw, g); break;
    case 20: grad_weight_oc_cols<T, 20>(x, gy, gw, g); break;
    case 24: grad_weight_oc_cols<T, 24>(x, gy, gw, g); break;
    default: grad_weight_oc_cols<T, 28>(x, gy, gw, g);
  }
}
template void oc_cols_grad_weight<float>(const float*, const float*, float*, const ConvGeom&);
template void oc_cols_grad_weight<double>(const double*, const double*, double*, const ConvGeom&);

// Per thread one image's slab and d and the units' accumulators; the image blocks' partial sums.
int64_t oc_cols_grad_weight_workspace(const ConvGeom& g, int64_t itemsize) {
  const ColsPlan p = oc_cols_plan(g);
  const int64_t lanes = 64 / itemsize;
  const int64_t per_thread = (p.hp * p.wp * g.cg + p.ct + g.ho * g.wo * lanes + p.units * p.ct * lanes) * itemsize;
  return at::get_num_threads() * per_thread + g.groups * std::min(g.n, kOcColsImageBlocks) * p.units * p.ct * 64;
}

// Stride 1 and at most two vectors of (kernel column, input channel) pairs per group.
bool oc_cols_grad_input_applies(const ConvGeom& g, int64_t lanes) {
  return g.sh == 1 && g.sw == 1 && g.kh * g.kw > 1 && g.cg * g.kw <= 2 * lanes;
}

template <typename T>
void oc_cols_grad_input(const T* gy, const T* w, T* gx, const ConvGeom& g) {
  const ColsGxPlan p = oc_cols_gx_plan(g, Simd<T>::L);
#define CONVKIT_COLS_GX(OBV)                                                  \
  switch (p.np) {                                                             \
    case 8: return grad_input_oc_cols<T, OBV, 8>(gy, w, gx, g);              \
    case 10: return grad_input_oc_cols<T, OBV, 10>(gy, w, gx, g);            \
    case 12: return grad_input_oc_cols<T, OBV, 12>(gy, w, gx, g);            \
    default: return grad_input_oc_cols<T, OBV, 14>(gy, w, gx, g);            \
  }
  if (p.obv == 1) CONVKIT_COLS_GX(1)
  CONVKIT_COLS_GX(2)
#undef CONVKIT_COLS_GX
}
template void oc_cols_grad_input<float>(const float*, const float*, float*, const ConvGeom&);
template void oc_cols_grad_input<double>(const double*, const double*, double*, const ConvGeom&);

// The packed weights; per thread z and, where NP does not divide Wo, one row block's padded dY rows.
int64_t oc_cols_grad_input_workspace(const ConvGeom& g, int64_t itemsize) {
  const int64_t lanes = 64 / itemsize;
  const ColsGxPlan p = oc_cols_gx_plan(g, lanes);
  const int64_t rows = std::min(g.ho, p.rows_per_task + (g.kh - 1) * g.dh);  // dY rows one block reads
  const int64_t per_thread = 2 * g.cg * g.kw * p.zld + (p.copy ? g.og * rows * p.dld + p.np : 0);
  return (g.o * g.kh * p.obv * lanes + at::get_num_threads() * per_thread) * itemsize;
}

bool oc_lanes_applies(const ConvGeom& g) { return (g.sw == 1 || g.sw == 2) && g.kh * g.kw > 1; }

// The packed weights (whole blocks) and, per thread, one slab of a task's input rows (at least one row block).
int64_t oc_lanes_workspace(const ConvGeom& g, int64_t itemsize) {
  const OcPlan p = oc_plan(g, itemsize);
  const int64_t cb = fwd_tile(g, 64 / itemsize).obv * (64 / itemsize), blocks = (g.og + cb - 1) / cb;
  const int64_t slab = g.cg * ((std::min(g.ho, p.rows_per_task) - 1) * g.sh + p.span) * p.ld * itemsize;
  return g.groups * blocks * cb * (g.cg * g.kh * g.kw + 1) * itemsize + at::get_num_threads() * slab;
}

template <typename T>
void oc_lanes_forward(const T* x, const T* w, const T* b, T* y, const ConvGeom& g, bool flipped) {
  const FwdTile t = fwd_tile(g, Simd<T>::L);
  if (g.sw == 2) return forward_oc<T, 2, 14, 2>(x, w, b, y, g, flipped);
  if (t.obv == 2) return forward_oc<T, 2, 14, 1>(x, w, b, y, g, flipped);
  switch (t.np) {
    case 8: return forward_oc<T, 1, 8, 1>(x, w, b, y, g, flipped);
    case 10: return forward_oc<T, 1, 10, 1>(x, w, b, y, g, flipped);
    case 12: return forward_oc<T, 1, 12, 1>(x, w, b, y, g, flipped);
    case 14: return forward_oc<T, 1, 14, 1>(x, w, b, y, g, flipped);
    default: return forward_oc<T, 1, 16, 1>(x, w, b, y, g, flipped);
  }
}
template <typename T>
void oc_lanes_grad_weight(const T* x, const T* gy, T* gw, const ConvGeom& g) {
  if (oc_gw_plan(g, Simd<T>::L).obv == 4)
    grad_weight_oc<T, 4, 6>(x, gy, gw, g);
  else
    grad_weight_oc<T, 2, 14>(x, gy, gw, g);
}
template void oc_lanes_grad_weight<float>(const float*, const float*, float*, const ConvGeom&);
template void oc_lanes_grad_weight<double>(const double*, const double*, double*, const ConvGeom&);

// One chunk's blocked dY, and the partial sums (whole tiles and blocks) where the
// images take more than one chunk.
int64_t oc_lanes_grad_weight_workspace(const ConvGeom& g, int64_t itemsize) {
  const GwPlan p = oc_gw_plan(g, 64 / itemsize);
  const GwBlocks bl = oc_gw_blocks(g, p.obv);
  const int64_t chunk = bl.chunk;
  const int64_t partial = chunk < g.n || bl.rows < g.ho ? g.groups * p.ogp * p.cgp * g.kh * g.kw : 0;
  return (chunk * g.ho * g.wo * p.ogp + partial) * itemsize;
}

template void oc_lanes_forward<float>(const float*, const float*, const float*, float*, const ConvGeom&, bool);
template void oc_lanes_forward<double>(const double*, const double*, const double*, double*, const ConvGeom&, bool);

void oc_lanes_forward_cpu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const ConvGeom& g,
                          at::Tensor& y) {
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "convkit_oc_lanes_cpu", [&] {
    oc_lanes_forward<scalar_t>(x.const_data_ptr<scalar_t>(), w.const_data_ptr<scalar_t>(),
                               b.defined() ? b.const_data_ptr<scalar_t>() : nullptr, y.mutable_data_ptr<scalar_t>(), g,
                               /*flipped=*/false);
  });
}

}  // namespace convkit
