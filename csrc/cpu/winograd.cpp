// Winograd F(4x4, 3x3) for 3x3, stride-1 correlation (Lavin & Gray 2016), any padding, dilation and groups.
// Each 4x4 output tile comes from a 6x6 input tile d:  Y = A^T [ (G g G^T) . (B^T d B) ] A, so the 144
// multiply-adds per tile and channel pair of the direct method become 36, done as 36 * groups matrix
// products of (Og x Cg) transformed weights with (Cg x tiles) transformed inputs.
//   weights  U^T[xi][grp][c][o] = (G g G^T)[xi] for the 36 points xi, once per call (the weights change every
//            step): vector FMAs with lanes = input channels, then 16 x 16 transposes (weight_transform).
//   inputs   V[xi][c][tile] = (B^T d B)[xi], one row of tiles of one channel at a time (input_row). It copies the 6
//            input rows of that tile row into a zero-padded buffer, applies B^T down the columns (vectors
//            along the row), splits each row by column residue mod 4 and applies B along each tile's 6
//            columns (vectors over the row's tiles), writing 36 rows of V contiguous in tile.
//   products M[xi][o][tile] = U[xi] @ V[xi] per point and group (product below: a register tile of 8 rows of
//            U x 48 tiles, c ascending), each single-threaded inside at::parallel_for, so the result does
//            not depend on the thread count. grad_weight's products (tiles as the reduction) are BLAS (gemm).
//   outputs  y = A^T m A + bias per tile, one row of tiles of one output channel at a time (output_row;
//            vectors over the row's tiles, merged back into column order by permutes).
// Dilation (dh, dw) splits the output into dh * dw phases (oy mod dh, ox mod dw): each phase is an undilated
// 3x3 correlation over the input rows and columns of one residue, tiled like dilation 1 on a grid dh (dw)
// times coarser, so the transforms gather and scatter with strides dh, dw and nothing is copied. Tiles are
// numbered image, phase row, tile row, phase column, tile column (one task's row of tiles is contiguous).
// Three forward schedules: from 8 images, where an image's V and M outweigh U and fit 16 MiB, one image per
// work item, each thread in its own V and M (winograd_by_images; workspace U + V + M of one image per
// thread); else, with at least 48 tiles per thread, one range of tile rows per thread, in pieces of >= 96
// tiles in its own V and M (winograd_by_rows; U + V + M of one piece per thread); else images in chunks so
// that V and M stay within kForwardChunkBytes (V is 36/16 = 2.25x the input chunk, M 2.25x the output
// chunk), each pass over all threads (U (36/9 = 4x the weights) + V + M of one chunk).
// grad_weight always runs the chunks. Workspaces are kept between calls by the calling thread. Accuracy: F(4x4, 3x3)'s transforms have entries up to 8 and
// 1/24; the fp32 error is about 1e-6..1e-5 relative to the output's scale (tested against float64).
// The ResNet stem (R1: 3 -> 64, 7x7, stride 2) is winograd_s2.cpp's (direct along rows, F(4, 4) along columns over
// the stride phases); that file's header records the 2-D F(3x3, 4x4) over the phases tried before it.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "../common.h"
#include "kernels.h"
#include "simd.h"
#include "workspace.h"

namespace convkit {
namespace {

// Images per chunk: V and M within kChunkBytes, so that the three passes over them run from L3 rather than
// DRAM, unless that leaves grad_weight's BLAS products fewer than kChunkMinTiles columns (BLAS is slower on
// narrow products); never past kChunkMaxBytes. Measured with BLAS products, 2 threads, ratio to torch in the
// same process (fwd, N=8): R3 16 MiB chunks (4 images) 0.57-0.66 -> 1 image 0.54-0.58, fwd+bwd 0.76-0.81 ->
// 0.64-0.66; R8 and R9 were slower with chunks of 2-3 images (98 and 48 tiles) than with all 8.
// The forward's own products need no such minimum (session 19, fwd us, 3 interleaved rounds: R8 N=8
// 2086 -> 1963 with chunks of 2 images in place of 4; R3, X3 and N=1 level within 1 %), and take chunks of
// kForwardChunkBytes: in the machine's slow phases (its two vCPUs on distant cores, so a chunk written by
// one thread and read by the other crosses them; torch 5-15 % slower, Winograd 30-50 %) R8 N=8 ran
// 3289-3410 us with 4 MiB chunks against 2676-2876 with 1 MiB ones (one image, 49 tiles; three processes),
// and in fast phases 1963 against 1937. A single image is the smallest chunk, so N=1 is not helped.
constexpr int64_t kChunkBytes = 4 << 20, kForwardChunkBytes = 1 << 20;
constexpr int64_t kChunkMinTiles = 192;
constexpr int64_t kChunkMaxBytes = 16 << 20;

// The phases that have outputs (ph = min(dh, Ho) row phases, pw = min(dw, Wo) column phases: a dilation
// past the output's size leaves the rest empty), tile rows and columns per phase (those of phase 0, the
// largest) and tiles per image over those phases.
struct WinoTiles {
  int64_t ph, pw, th, tw, per_image;
};
WinoTiles wino_tiles(const ConvGeom& g) {
  const int64_t th = ((g.ho + g.dh - 1) / g.dh + 3) / 4, tw = ((g.wo + g.dw - 1) / g.dw + 3) / 4;
  const int64_t ph = std::min(g.dh, g.ho), pw = std::min(g.dw, g.wo);
  return {ph, pw, th, tw, ph * pw * th * tw};
}

// G (6 x 3) of F(4, 3) with interpolation points 0, +-1, +-2, inf... (the usual 0, 1, -1, 2, -2 set).
constexpr double kG[6][3] = {{1.0 / 4, 0, 0},
                             {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                             {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                             {1.0 / 24, 1.0 / 12, 1.0 / 6},
                             {1.0 / 24, -1.0 / 12, 1.0 / 6},
                             {0, 0, 1}};

// U[xi][grp][c][o] = (G g_{o,c} G^T)[xi] for the O*Cg kernels g (9 contiguous values each in W), output
// channels contiguous: the layout product() reads (a row of U^T per input channel). A task owns 16 output
// channels x L input channels of a group: per output channel it loads the L kernels (contiguous in W; 9
// stride-9 gathers, lanes = input channels) and computes G g G^T with vector FMAs into a 36 x 16 block of
// vectors on the stack; then per point one 16 x 16 transpose stores 16 rows of U^T. (Gathering 16 output
// channels at a stride of cg*9 instead, with no transpose, made the transform half again slower on R8.)
// (A BLAS product with an inner dimension of 9 runs at a few GFLOP/s here.)
template <typename T>
void weight_transform(const T* w, const ConvGeom& g, T* u) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L, NO = 16;
  const int64_t P = g.o * g.cg, og = g.og, cg = g.cg, oblocks = (og + NO - 1) / NO, cblocks = (cg + L - 1) / L;
  at::parallel_for(0, g.groups * oblocks * cblocks, 4, [&](int64_t begin, int64_t end) {
    V r[36][1][NO];
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t grp = blk / (oblocks * cblocks), o0 = (blk / cblocks) % oblocks * NO, c0 = blk % cblocks * L;
      const int64_t no = std::min(NO, og - o0), nc = std::min(L, cg - c0);
      for (int64_t p = 0; p < NO; ++p) {
        if (p >= no) {
          for (int xi = 0; xi < 36; ++xi) r[xi][0][p] = V{};
          continue;
        }
        const T* const src = w + ((grp * og + o0 + p) * cg + c0) * 9;
        V gv[9];
        for (int q = 0; q < 9; ++q) gv[q] = gather_n(src + q, 9, nc);
        V t[6][3];  // G g
        for (int a = 0; a < 6; ++a)
          for (int j = 0; j < 3; ++j)
            t[a][j] = T(kG[a][0]) * gv[0 * 3 + j] + T(kG[a][1]) * gv[1 * 3 + j] + T(kG[a][2]) * gv[2 * 3 + j];
        for (int a = 0; a < 6; ++a)
          for (int b = 0; b < 6; ++b) r[a * 6 + b][0][p] = t[a][0] * T(kG[b][0]) + t[a][1] * T(kG[b][1]) + t[a][2] * T(kG[b][2]);
      }
      for (int xi = 0; xi < 36; ++xi)
        store_lanes_transposed<T, 1, NO>(r[xi], u + xi * P + (grp * cg + c0) * og + o0, og, nc, no);
    }
  });
}

// ceil(a / b) for b > 0, clamped to [0, hi]: the first index i >= 0 with i * b >= a
inline int64_t first_at_least(int64_t a, int64_t b, int64_t hi) {
  return a <= 0 ? 0 : std::min(hi, (a + b - 1) / b);
}

// Column residues. Along a row, tile tj covers columns 4tj .. 4tj + 5 (input) or 4tj .. 4tj + 3 (output).
// Each transform keeps a row split by column residue mod 4 ([k][m] = column 4m + k, ld values per k, ld a
// multiple of the vector width), so the step along each tile's columns is elementwise over the tiles of a
// row (vectors over tj, loads at m and m + 1) instead of a scalar pass per tile. With AVX-512 the split and
// its inverse are 8 two-source permutes per 4 vectors. Rows of tiles are short (R3: 14 tiles, R8: 7, R9:
// 4), so the tail is one masked store, not a scalar loop.

// dst[k * ld + m] = src[4m + k] for m < ld (ld a multiple of L; src holds 4 ld values).
template <typename T>
inline void split4(const T* src, int64_t ld, T* dst) {
  constexpr int64_t L = Simd<T>::L;
#if defined(__AVX512F__)
  using A = Avx512<T>;
  const __m512i ev = lane_index<T>([](int64_t k) { return 2 * k; });
  const __m512i od = lane_index<T>([](int64_t k) { return 2 * k + 1; });
  for (int64_t m0 = 0; m0 < ld; m0 += L) {
    const T* s = src + 4 * m0;
    const auto a = A::load(s), b = A::load(s + L), c = A::load(s + 2 * L), d = A::load(s + 3 * L);
    const auto e = A::perm2(a, ev, b), o = A::perm2(a, od, b), e2 = A::perm2(c, ev, d), o2 = A::perm2(c, od, d);
    A::store(dst + m0, A::perm2(e, ev, e2));
    A::store(dst + ld + m0, A::perm2(o, ev, o2));
    A::store(dst + 2 * ld + m0, A::perm2(e, od, e2));
    A::store(dst + 3 * ld + m0, A::perm2(o, od, o2));
  }
#else
  (void)L;
  for (int64_t k = 0; k < 4; ++k)
    for (int64_t m = 0; m < ld; ++m) dst[k * ld + m] = src[4 * m + k];
#endif
}

// The inverse: dst[4m + k] = src[k * ld + m] for m < ld.
template <typename T>
inline void merge4(const T* src, int64_t ld, T* dst) {
  constexpr int64_t L = Simd<T>::L;
#if defined(__AVX512F__)
  using A = Avx512<T>;
  const __m512i lo = lane_index<T>([](int64_t k) { return k % 2 == 0 ? k / 2 : L + k / 2; });
  const __m512i hi = lane_index<T>([](int64_t k) { return k % 2 == 0 ? L / 2 + k / 2 : L + L / 2 + k / 2; });
  for (int64_t m0 = 0; m0 < ld; m0 += L) {
    const auto r0 = A::load(src + m0), r1 = A::load(src + ld + m0), r2 = A::load(src + 2 * ld + m0),
               r3 = A::load(src + 3 * ld + m0);
    const auto el = A::perm2(r0, lo, r2), eh = A::perm2(r0, hi, r2), ol = A::perm2(r1, lo, r3),
               oh = A::perm2(r1, hi, r3);
    T* d = dst + 4 * m0;
    A::store(d, A::perm2(el, lo, ol));
    A::store(d + L, A::perm2(el, hi, ol));
    A::store(d + 2 * L, A::perm2(eh, lo, oh));
    A::store(d + 3 * L, A::perm2(eh, hi, oh));
  }
#else
  (void)L;
  for (int64_t k = 0; k < 4; ++k)
    for (int64_t m = 0; m < ld; ++m) dst[4 * m + k] = src[k * ld + m];
#endif
}

// The first n <= L lanes of v to p (one masked store with AVX-512), and n <= L values from p (the rest zero).
template <typename T>
inline void store_n(T* p, const typename Simd<T>::V& v, int64_t n) {
#if defined(__AVX512F__)
  if (n >= Simd<T>::L)
    vstore(p, v);
  else
    Avx512<T>::store(p, lanes_mask<T>(n), v);
#else
  for (int64_t l = 0; l < n; ++l) p[l] = v[l];
#endif
}

template <typename T>
inline typename Simd<T>::V load_n(const T* p, int64_t n) {
#if defined(__AVX512F__)
  if (n >= Simd<T>::L) return vload(p);
  return Avx512<T>::loadz(lanes_mask<T>(n), p);
#else
  typename Simd<T>::V v{};
  for (int64_t l = 0; l < n && l < Simd<T>::L; ++l) v[l] = p[l];
  return v;
#endif
}

// dst[j] = src[s j] for j < n (a row of x or dY at the dilation's column stride).
template <typename T>
inline void copy_strided(T* dst, const T* src, int64_t s, int64_t n) {
  if (s == 1)
    copy_run(dst, src, n);
  else if (s == 2)
    copy_stride2(dst, src, n);
  else
    for (int64_t j = 0; j < n; ++j) dst[j] = src[s * j];
}


// The second half of a tile transform along a row: each of the 6 rows of src (rw values each) split by
// column residue into q (ld per residue), then, per block of L tiles, f(row k's residues, ld, j, o) gives
// the 6 transformed values of tiles j .. j + L, stored (masked past tw) at dst[(6k + l) * ds + j].
template <typename T, typename F>
inline void along_tiles(const T* src, T* q, int64_t rw, int64_t ld, int64_t tw, T* dst, int64_t ds, F f) {
  constexpr int64_t L = Simd<T>::L;
  for (int64_t k = 0; k < 6; ++k) split4(src + k * rw, ld, q + k * rw);
  for (int64_t k = 0; k < 6; ++k)
    for (int64_t j = 0; j < tw; j += L) {
      typename Simd<T>::V o[6];
      f(q + k * rw, ld, j, o);
      for (int l = 0; l < 6; ++l) store_n(dst + (6 * k + l) * ds + j, o[l], std::min(L, tw - j));
    }
}

// Scratch per thread for the row transforms below: three buffers of this many values each.
template <typename T>
int64_t row_scratch(const WinoTiles& wt) {
  return 24 * round_to(wt.tw + 1, Simd<T>::L);
}

// One row of tiles of one input plane xc (phase row py, tile row ti; its dw * tw tiles, phase column by
// phase column): the 36 values of each tile to v[xi * xs + tile]. p, q: row_scratch values each.
template <typename T>
void input_row(const T* xc, const ConvGeom& g, const WinoTiles& wt, int64_t py, int64_t ti, T* v, int64_t xs, T* p,
               T* q) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  const int64_t tw = wt.tw, ld = round_to(tw + 1, L), rw = 4 * ld;  // a row: columns 0 .. 4 tw + 1 (and padding)
  for (int64_t px = 0; px < wt.pw; ++px) {
    // p[r][col] = x[py - pt + dh (4ti + r)][px - pl + dw col], zero outside x
    const int64_t lo = first_at_least(g.pl - px, g.dw, rw), hi = std::max(lo, first_at_least(g.w + g.pl - px, g.dw, rw));
    for (int64_t r = 0; r < 6; ++r) {
      T* pr = p + r * rw;
      const int64_t ih = py - g.pt + g.dh * (4 * ti + r);
      if (ih < 0 || ih >= g.h) {
        std::fill(pr, pr + rw, T(0));
        continue;
      }
      std::fill(pr, pr + lo, T(0));
      copy_strided(pr + lo, xc + ih * g.w + (px - g.pl + g.dw * lo), g.dw, hi - lo);
      std::fill(pr + hi, pr + rw, T(0));
    }
    // B^T down the columns (in place: each column is read before it is written), then each result row split
    // by column residue: q[k][res][m]
    for (int64_t i = 0; i < rw; i += L) {
      const V e0 = vload(p + i), e1 = vload(p + rw + i), e2 = vload(p + 2 * rw + i), e3 = vload(p + 3 * rw + i),
              e4 = vload(p + 4 * rw + i), e5 = vload(p + 5 * rw + i);
      vstore(p + 0 * rw + i, T(4) * e0 - T(5) * e2 + e4);
      vstore(p + 1 * rw + i, T(-4) * e1 - T(4) * e2 + e3 + e4);
      vstore(p + 2 * rw + i, T(4) * e1 - T(4) * e2 - e3 + e4);
      vstore(p + 3 * rw + i, T(-2) * e1 - e2 + T(2) * e3 + e4);
      vstore(p + 4 * rw + i, T(2) * e1 - e2 - T(2) * e3 + e4);
      vstore(p + 5 * rw + i, T(4) * e1 - T(5) * e3 + e5);
    }
    // B along each tile's columns 4tj .. 4tj + 5 = residues 0..3 at tj and 0..1 at tj + 1
    along_tiles(p, q, rw, ld, tw, v + px * tw, xs, [](const T* d, int64_t ld, int64_t j, V* o) {
      const V e0 = vload(d + j), e1 = vload(d + ld + j), e2 = vload(d + 2 * ld + j), e3 = vload(d + 3 * ld + j);
      const V e4 = vload(d + j + 1), e5 = vload(d + ld + j + 1);
      o[0] = T(4) * e0 - T(5) * e2 + e4;
      o[1] = T(-4) * e1 - T(4) * e2 + e3 + e4;
      o[2] = T(4) * e1 - T(4) * e2 - e3 + e4;
      o[3] = T(-2) * e1 - e2 + T(2) * e3 + e4;
      o[4] = T(2) * e1 - e2 - T(2) * e3 + e4;
      o[5] = T(4) * e1 - T(5) * e3 + e5;
    });
  }
}

// One row of tiles of one output plane yo from its products mo[xi * ms + tile]: y = A^T m A + bias.
// s, r: row_scratch values each.
template <typename T>
void output_row(const T* mo, int64_t ms, T bias_value, const ConvGeom& g, const WinoTiles& wt, int64_t py,
                int64_t ti, T* yo, T* s, T* r) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  const int64_t tw = wt.tw, ld = round_to(tw, L);
  const V bias = splat<T>(bias_value);
  T* const out = r + 4 * ld;
  for (int64_t px = 0; px < wt.pw; ++px, mo += tw) {
    // A^T down the 6 rows of m: s[a][l][tj] (a < 4, l < 6), vectors along tj
    for (int64_t l = 0; l < 6; ++l)
      for (int64_t j = 0; j < tw; j += L) {
        const int64_t n = std::min(L, tw - j);
        const V m0 = load_n(mo + (0 * 6 + l) * ms + j, n), m1 = load_n(mo + (1 * 6 + l) * ms + j, n),
                m2 = load_n(mo + (2 * 6 + l) * ms + j, n), m3 = load_n(mo + (3 * 6 + l) * ms + j, n),
                m4 = load_n(mo + (4 * 6 + l) * ms + j, n), m5 = load_n(mo + (5 * 6 + l) * ms + j, n);
        const V a12 = m1 + m2, d12 = m1 - m2, a34 = m3 + m4, d34 = m3 - m4;
        vstore(s + (0 * 6 + l) * ld + j, m0 + a12 + a34);
        vstore(s + (1 * 6 + l) * ld + j, d12 + T(2) * d34);
        vstore(s + (2 * 6 + l) * ld + j, a12 + T(4) * a34);
        vstore(s + (3 * 6 + l) * ld + j, d12 + T(8) * d34 + m5);
      }
    // per output row a: A along the 6 columns, r[k][tj] = output column 4tj + k, merged back into column
    // order and written to y[py + dh (4ti + a)][px + dw j] for j < cols
    const int64_t cols = first_at_least(g.wo - px, g.dw, 4 * tw);
    for (int64_t a = 0; a < 4; ++a) {
      const int64_t oh = py + g.dh * (4 * ti + a);
      if (oh >= g.ho) break;
      const T* sa = s + a * 6 * ld;
      for (int64_t j = 0; j < ld; j += L) {
        const V s0 = vload(sa + j), s1 = vload(sa + ld + j), s2 = vload(sa + 2 * ld + j), s3 = vload(sa + 3 * ld + j),
                s4 = vload(sa + 4 * ld + j), s5 = vload(sa + 5 * ld + j);
        const V a12 = s1 + s2, d12 = s1 - s2, a34 = s3 + s4, d34 = s3 - s4;
        vstore(r + j, bias + s0 + a12 + a34);
        vstore(r + ld + j, bias + d12 + T(2) * d34);
        vstore(r + 2 * ld + j, bias + a12 + T(4) * a34);
        vstore(r + 3 * ld + j, bias + d12 + T(8) * d34 + s5);
      }
      merge4(r, ld, out);
      T* yr = yo + oh * g.wo + px;
      if (g.dw == 1)
        copy_run(yr, out, cols);
      else
        for (int64_t j = 0; j < cols; ++j) yr[g.dw * j] = out[j];
    }
  }
}

// One row of tiles of one dY plane go: Z = A dY_tile A^T (dY zero past the output's edge) to
// z[xi * zs + tile]. d, r, q: row_scratch values each.
template <typename T>
void grad_output_row(const T* go, const ConvGeom& g, const WinoTiles& wt, int64_t py, int64_t ti, T* z, int64_t zs,
                     T* d, T* r, T* q) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  const int64_t tw = wt.tw, ld = round_to(tw, L), rw = 4 * ld;
  for (int64_t px = 0; px < wt.pw; ++px) {
    // d[a][j] = dY[py + dh (4ti + a)][px + dw j], zero past the output's edge
    const int64_t cols = first_at_least(g.wo - px, g.dw, 4 * tw);
    for (int64_t a = 0; a < 4; ++a) {
      T* da = d + a * rw;
      const int64_t oh = py + g.dh * (4 * ti + a);
      if (oh >= g.ho) {
        std::fill(da, da + rw, T(0));
        continue;
      }
      copy_strided(da, go + oh * g.wo + px, g.dw, cols);
      std::fill(da + cols, da + rw, T(0));
    }
    // A (6 x 4) down the rows, then each result row split by column residue: q[k][res][tj]
    for (int64_t i = 0; i < rw; i += L) {
      const V e0 = vload(d + i), e1 = vload(d + rw + i), e2 = vload(d + 2 * rw + i), e3 = vload(d + 3 * rw + i);
      const V a02 = e0 + e2, a13 = e1 + e3;
      vstore(r + 0 * rw + i, e0);
      vstore(r + 1 * rw + i, a02 + a13);
      vstore(r + 2 * rw + i, a02 - a13);
      vstore(r + 3 * rw + i, e0 + T(2) * e1 + T(4) * e2 + T(8) * e3);
      vstore(r + 4 * rw + i, e0 - T(2) * e1 + T(4) * e2 - T(8) * e3);
      vstore(r + 5 * rw + i, e3);
    }
    // A along each tile's 4 columns (residues 0..3 at tj)
    along_tiles(r, q, rw, ld, tw, z + px * tw, zs, [](const T* d, int64_t ld, int64_t j, V* o) {
      const V e0 = vload(d + j), e1 = vload(d + ld + j), e2 = vload(d + 2 * ld + j), e3 = vload(d + 3 * ld + j);
      const V a02 = e0 + e2, a13 = e1 + e3;
      o[0] = e0;
      o[1] = a02 + a13;
      o[2] = a02 - a13;
      o[3] = e0 + T(2) * e1 + T(4) * e2 + T(8) * e3;
      o[4] = e0 - T(2) * e1 + T(4) * e2 - T(8) * e3;
      o[5] = e3;
    });
  }
}

// The passes over rows r0 .. r1 of tiles (r = image * rows + row, rows = ph * th per image; a row's pw * tw
// tiles are contiguous), between the images' x, dY or y and V[xi][c][tile], Z[xi][o][tile] or M[xi][o][tile]
// over those rows' tiles, every (channel, row) in parallel. Inside a parallel region they run inline.
template <typename T>
void input_transform(const T* x, const ConvGeom& g, const WinoTiles& wt, int64_t r0, int64_t r1, T* v) {
  const int64_t rows = wt.ph * wt.th, row_tiles = wt.pw * wt.tw, nr = r1 - r0, tiles = nr * row_tiles;
  at::parallel_for(0, g.c * nr, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> p(row_scratch<T>(wt)), q(row_scratch<T>(wt));
    for (int64_t t = begin; t < end; ++t) {
      const int64_t rl = t % nr, c = t / nr, r = r0 + rl, n = r / rows, row = r % rows;
      input_row(x + (n * g.c + c) * g.h * g.w, g, wt, row / wt.th, row % wt.th, v + c * tiles + rl * row_tiles,
                g.c * tiles, p.data(), q.data());
    }
  });
}

template <typename T>
void output_transform(const T* m, const T* bp, T* yp, const ConvGeom& g, const WinoTiles& wt, int64_t r0, int64_t r1) {
  const int64_t rows = wt.ph * wt.th, row_tiles = wt.pw * wt.tw, nr = r1 - r0, tiles = nr * row_tiles;
  at::parallel_for(0, g.o * nr, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> s0(row_scratch<T>(wt)), s1(row_scratch<T>(wt));
    for (int64_t t = begin; t < end; ++t) {
      const int64_t rl = t % nr, o = t / nr, r = r0 + rl, n = r / rows, row = r % rows;
      output_row(m + o * tiles + rl * row_tiles, g.o * tiles, bp ? bp[o] : T(0), g, wt, row / wt.th,
                 row % wt.th, yp + (n * g.o + o) * g.ho * g.wo, s0.data(), s1.data());
    }
  });
}

template <typename T>
void grad_output_transform(const T* gy, const ConvGeom& g, const WinoTiles& wt, int64_t r0, int64_t r1, T* z) {
  const int64_t rows = wt.ph * wt.th, row_tiles = wt.pw * wt.tw, nr = r1 - r0, tiles = nr * row_tiles;
  at::parallel_for(0, g.o * nr, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> d(row_scratch<T>(wt)), r(row_scratch<T>(wt)), q(row_scratch<T>(wt));
    for (int64_t t = begin; t < end; ++t) {
      const int64_t rl = t % nr, o = t / nr, rg = r0 + rl, n = rg / rows, row = rg % rows;
      grad_output_row(gy + (n * g.o + o) * g.ho * g.wo, g, wt, row / wt.th, row % wt.th, z + o * tiles + rl * row_tiles,
                      g.o * tiles, d.data(), r.data(), q.data());
    }
  });
}

}  // namespace
}  // namespace convkit

// The Fortran BLAS that torch's CPU library exports (MKL's sgemm_ / dgemm_ on x86 builds), declared weak: a
// torch without them still loads convkit, which then goes through ATen (gemm below).
extern "C" {
void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha,
            const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
            const int* ldc) __attribute__((weak));
void dgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc) __attribute__((weak));
}

namespace convkit {
namespace {

// C = op(A) B + beta C, column-major (m x n = (m x k)(k x n); op(A) = A, or A^T with A stored k x m),
// single-threaded when called inside a parallel region: grad_weight's 36 products (tiles as the reduction).
// BLAS directly, not at::mm_out on from_blob views (a few us of tensor creation and dispatch per call).
template <typename T>
void gemm(bool trans_a, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, T beta,
          T* c, int64_t ldc) {
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  const bool fits = m <= kMax && n <= kMax && k <= kMax && lda <= kMax && ldb <= kMax && ldc <= kMax;
  const int im = int(m), in = int(n), ik = int(k), ia = int(lda), ib = int(ldb), ic = int(ldc);
  const T one = 1;
  const char ta = trans_a ? 'T' : 'N', tb = 'N';
  if (fits && m > 0 && n > 0 && k > 0) {
    if constexpr (std::is_same_v<T, float>) {
      if (sgemm_) return sgemm_(&ta, &tb, &im, &in, &ik, &one, a, &ia, b, &ib, &beta, c, &ic);
    } else {
      if (dgemm_) return dgemm_(&ta, &tb, &im, &in, &ik, &one, a, &ia, b, &ib, &beta, c, &ic);
    }
  }
  // row-major C^T (n x m) = B^T (n x k) op(A)^T (k x m) + beta C^T
  const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  at::Tensor ct = at::from_blob(c, {n, m}, {ldc, 1}, opts);
  const at::Tensor bt = at::from_blob(const_cast<T*>(b), {n, k}, {ldb, 1}, opts);
  const at::Tensor at_ = trans_a ? at::from_blob(const_cast<T*>(a), {k, m}, {1, lda}, opts)
                                 : at::from_blob(const_cast<T*>(a), {k, m}, {lda, 1}, opts);
  if (beta == T(0))
    at::mm_out(ct, bt, at_);
  else
    ct.addmm_(bt, at_, beta);
}

// M = U V for one point and group, row-major, from ut = U^T (cg x og, rows og apart: weight_transform's
// layout), V (cg x nt, rows ldv apart), M (og x nt, rows ldm apart); single-threaded (called inside parallel
// regions); c ascending in every sum, so the result does not depend on the threads.
//  * product_block: kProductRows output channels x NV vectors of tiles, acc[r] += U[o0 + r][c] (broadcast;
//    the kProductRows values of one row of U^T are contiguous) * V[c][t0 ..]. Tiles outer, channels inner:
//    the cg x NV*L panel of V stays in L1 while all of U passes over it.
//  * product_cols: the last nt % L tiles, output channels as lanes: acc[t] += V[c][t] (broadcast) *
//    U^T[c][o0 .. o0 + 2L], stored to M's columns lane by lane. The masked one-vector block it replaced did a
//    full vector's work per leftover tile: on R8 at N=1 (49 tiles = 48 + 1) as much time as the other 48.
constexpr int kProductRows = 8, kProductVectors = 3, kProductColsTiles = 12;

template <typename T, int NV>
inline void product_block(const T* ut, int64_t og, int64_t cg, const T* v, int64_t ldv, T* m, int64_t ldm, int64_t t0) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  for (int64_t o0 = 0; o0 < og; o0 += kProductRows) {
    const int64_t nr = std::min<int64_t>(kProductRows, og - o0);
    int64_t idx[kProductRows];
    for (int r = 0; r < kProductRows; ++r) idx[r] = std::min<int64_t>(o0 + r, og - 1);  // past og: not stored
    V acc[kProductRows][NV] = {};
    const T* b = v + t0;
    const T* a = ut;
    for (int64_t c = 0; c < cg; ++c, b += ldv, a += og) {
      V bv[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) bv[j] = vload(b + j * L);
#pragma GCC unroll 8
      for (int r = 0; r < kProductRows; ++r) {
        const V ar = splat<T>(a[idx[r]]);
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[r][j] += ar * bv[j];
      }
    }
    for (int64_t r = 0; r < nr; ++r) {
      T* const dst = m + (o0 + r) * ldm + t0;
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) vstore(dst + j * L, acc[r][j]);
    }
  }
}

template <typename T, int NT>
inline void product_cols(const T* ut, int64_t og, int64_t cg, const T* v, int64_t ldv, T* m, int64_t ldm, int64_t t0) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  for (int64_t o0 = 0; o0 < og; o0 += 2 * L) {
    const int64_t no = std::min(2 * L, og - o0), n0 = std::min(L, no), n1 = no - n0;
    V acc[NT][2] = {};
    const T* b = v + t0;
    const T* a = ut + o0;
    for (int64_t c = 0; c < cg; ++c, b += ldv, a += og) {
      const V u0 = load_n(a, n0), u1 = load_n(a + L, n1);  // n1 == 0: a zero mask reads nothing
#pragma GCC unroll 12
      for (int t = 0; t < NT; ++t) {
        const V s = splat<T>(b[t]);
        acc[t][0] += s * u0;
        acc[t][1] += s * u1;
      }
    }
    for (int t = 0; t < NT; ++t) {
      T* const dst = m + o0 * ldm + t0 + t;
      for (int64_t l = 0; l < n0; ++l) dst[l * ldm] = acc[t][0][l];
      for (int64_t l = 0; l < n1; ++l) dst[(L + l) * ldm] = acc[t][1][l];
    }
  }
}

template <typename T, int NT = kProductColsTiles>
void product_cols_n(const T* ut, int64_t og, int64_t cg, const T* v, int64_t ldv, T* m, int64_t ldm, int64_t t0,
                    int64_t n) {
  if constexpr (NT > 0) {
    if (n == NT) return product_cols<T, NT>(ut, og, cg, v, ldv, m, ldm, t0);
    return product_cols_n<T, NT - 1>(ut, og, cg, v, ldv, m, ldm, t0, n);
  }
}

template <typename T>
void product(int64_t og, int64_t cg, int64_t nt, const T* ut, const T* v, int64_t ldv, T* m, int64_t ldm) {
  constexpr int64_t L = Simd<T>::L, TW = kProductVectors * L;
  int64_t t0 = 0;
  for (; t0 + TW <= nt; t0 += TW) product_block<T, kProductVectors>(ut, og, cg, v, ldv, m, ldm, t0);
  if (nt - t0 >= 2 * L) {
    product_block<T, 2>(ut, og, cg, v, ldv, m, ldm, t0);
    t0 += 2 * L;
  } else if (nt - t0 >= L) {
    product_block<T, 1>(ut, og, cg, v, ldv, m, ldm, t0);
    t0 += L;
  }
  for (; t0 < nt; t0 += kProductColsTiles)
    product_cols_n<T>(ut, og, cg, v, ldv, m, ldm, t0, std::min<int64_t>(kProductColsTiles, nt - t0));
}

// Product i = xi * groups + grp of a block of `tiles` tiles (V and M of that block):
// M_i = U_i V_i, row-major (as column-major M^T = V^T U^T).
template <typename T>
inline void product_at(const ConvGeom& g, int64_t i, int64_t tiles, const T* up, const T* v, T* m) {
  product<T>(g.og, g.cg, tiles, up + i * g.og * g.cg, v + i * g.cg * tiles, tiles, m + i * g.og * tiles, tiles);
}

// The forward in image chunks, each pass over all threads (input transform; the 36 * groups products, one
// per task; output transform), for shapes with too few items to share between threads.
template <typename T>
void winograd_forward_chunked(const T* xp, const T* up, const T* bp, T* yp, const ConvGeom& g, const WinoTiles& wt) {
  const int64_t per_image = wt.per_image, img_bytes = 36 * (g.c + g.o) * per_image * (int64_t)sizeof(T);
  const int64_t nchunk = winograd_images_per_chunk(g.n, img_bytes, per_image, /*forward=*/true);
  const int64_t batches = 36 * g.groups, rows = wt.ph * wt.th;
  for (int64_t n0 = 0; n0 < g.n; n0 += nchunk) {
    const int64_t nimg = std::min(nchunk, g.n - n0), tiles = nimg * per_image;
    T* v = call_workspace<T>(kWsWinogradData, 36 * g.c * tiles);
    T* m = call_workspace<T>(kWsWinogradProducts, 36 * g.o * tiles);
    input_transform<T>(xp, g, wt, n0 * rows, (n0 + nimg) * rows, v);
    at::parallel_for(0, batches, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) product_at<T>(g, i, tiles, up, v, m);
    });
    output_transform<T>(m, bp, yp, g, wt, n0 * rows, (n0 + nimg) * rows);
  }
}

// The forward in ranges of tile rows, one per thread (for shapes that winograd_by_images leaves out, with at
// least kRowsMinTiles tiles per thread): thread k takes rows [k R / threads, (k + 1) R / threads) of the R
// rows of tiles of the batch and runs them in pieces of whole rows, each piece's input transform, 36 *
// groups products and output transform in the thread's own V and M. Nothing one thread writes is read by
// another (the chunked passes read each other's V and M twice per chunk, the cost the machine's slow
// phases multiply), and there is one fork/join per call instead of three per chunk. A piece holds at least
// kRowsPieceTiles tiles (two product blocks of 48), so that U is read once per ~100 tiles, and otherwise as
// many rows as fit kForwardChunkBytes. Measured (session 21; fwd us, 2 threads, median per phase of the
// cross-core round trip, rounds interleaved, fast / slow phase), chunked -> rows:
//   R8 N=8 1920 -> 1872 / 2555 -> 2020      R8 N=2 537 -> 528 / 762 -> 781     R3 N=1 281 -> 274 / 447 -> 383
//   X3 N=1 395 -> 382 / 559 -> 549         R8 N=1 (25 tiles per thread) 294 -> 464: below kRowsMinTiles.
// Pieces of 192 tiles in place of 96: R8 N=8 2188 / 2144 (X3 N=2 816 against 681). Whole images at N >= 8
// (winograd_by_images) stay: R3 N=8 and N=32 level with 192-tile pieces, 2-20 % faster than 96-tile ones.
// Per-thread ranges of output channels instead (each thread transforming the whole input) were faster in
// the slow phase (R8 N=1 375 against 439) and slower in the fast one (341 against 290; X3 N=1 503 vs 395).
// The products sum c in the same order whichever thread or piece holds a tile, so the result does not
// depend on the thread count or the schedule.
constexpr int64_t kRowsMinTiles = 48, kRowsPieceTiles = 96;

bool winograd_by_rows(const ConvGeom& g) {
  return g.n * wino_tiles(g).per_image >= kRowsMinTiles * at::get_num_threads();
}

// winograd_forward_rows' split: `parts` ranges over the `total` rows of tiles (row_tiles tiles each), run in
// pieces of `piece` rows: at least kRowsPieceTiles tiles, or as many as fit kForwardChunkBytes.
struct RowsPlan {
  int64_t total, row_tiles, parts, piece;
};
RowsPlan rows_plan(const ConvGeom& g, const WinoTiles& wt, int64_t itemsize) {
  const int64_t total = g.n * wt.ph * wt.th, row_tiles = wt.pw * wt.tw;
  const int64_t parts = std::min<int64_t>(at::get_num_threads(), total), per_part = (total + parts - 1) / parts;
  const int64_t by_tiles = (kRowsPieceTiles + row_tiles - 1) / row_tiles;
  const int64_t by_bytes = kForwardChunkBytes / (36 * (g.c + g.o) * row_tiles * itemsize);
  return {total, row_tiles, parts, std::max<int64_t>(1, std::min(per_part, std::max(by_bytes, by_tiles)))};
}

// Rows r0 .. r1 of tiles in the calling thread's V and M: the input transform, the 36 * groups products and
// the output transform (winograd_forward_rows' pieces, winograd_forward's images).
template <typename T>
void forward_piece(const T* xp, const T* up, const T* bp, T* yp, const ConvGeom& g, const WinoTiles& wt, int64_t r0,
                   int64_t r1, T* v, T* m) {
  const int64_t tiles = (r1 - r0) * wt.pw * wt.tw;
  input_transform<T>(xp, g, wt, r0, r1, v);
  for (int64_t i = 0; i < 36 * g.groups; ++i) product_at<T>(g, i, tiles, up, v, m);
  output_transform<T>(m, bp, yp, g, wt, r0, r1);
}

template <typename T>
void winograd_forward_rows(const T* xp, const T* up, const T* bp, T* yp, const ConvGeom& g, const WinoTiles& wt) {
  const RowsPlan rp = rows_plan(g, wt, sizeof(T));
  const int64_t total = rp.total, row_tiles = rp.row_tiles, parts = rp.parts, piece = rp.piece;
  constexpr int64_t kLine = 64 / sizeof(T);  // each part's V and M 64-byte aligned
  const int64_t vsize = round_to(36 * g.c * piece * row_tiles, kLine);
  const int64_t msize = round_to(36 * g.o * piece * row_tiles, kLine);
  T* const vall = call_workspace<T>(kWsWinogradData, parts * vsize);
  T* const mall = call_workspace<T>(kWsWinogradProducts, parts * msize);
  at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
    for (int64_t part = begin; part < end; ++part) {
      T* const v = vall + part * vsize;  // V[xi][c][tile], M[xi][o][tile] of one piece
      T* const m = mall + part * msize;
      const int64_t ra = part * total / parts, rb = (part + 1) * total / parts;
      for (int64_t r0 = ra; r0 < rb; r0 += piece)
        forward_piece<T>(xp, up, bp, yp, g, wt, r0, std::min(rb, r0 + piece), v, m);
    }
  });
}

// The forward (and grad_input), one image per work item: a thread transforms the image's input, runs its
// 36 * groups products and transforms them into the output, in its own V and M, so no pass waits for
// another thread's and each image's V and M stay in that core's caches. Measured against the chunked
// passes (2 threads, one process, BLAS called directly in both): R3 N=8 0.87-0.89x the time, X3 N=8
// 0.92x, R8 N=8 1.00-1.03x, R9 N=8 1.18x (its 16 tiles per image re-read 36 x 256 x 256 transformed
// weights per image), and with fewer images than threads one image per thread leaves threads idle (R3 N=1
// 1.45x). Hence: at least kItemsMinImages images and, per image, at least as many transformed input and
// output values as transformed weights, and at most kChunkMaxBytes of them (a thread holds one image's).
// A shape-only rule: the result does not depend on the thread count.
constexpr int64_t kItemsMinImages = 8;

bool winograd_by_images(const ConvGeom& g, int64_t itemsize) {
  const int64_t per_image = 36 * (g.c + g.o) * wino_tiles(g).per_image;
  return g.n >= kItemsMinImages && per_image >= 36 * g.o * g.cg && per_image * itemsize <= kChunkMaxBytes;
}

template <typename T>
void winograd_forward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const ConvGeom& g,
                      at::Tensor& y) {
  T* const up = call_workspace<T>(kWsWinogradWeights, 36 * g.o * g.cg);  // U^T (36, G, Cg, Og)
  weight_transform<T>(w.const_data_ptr<T>(), g, up);
  const WinoTiles wt = wino_tiles(g);
  const T* xp = x.const_data_ptr<T>();
  const T* bp = b.defined() ? b.const_data_ptr<T>() : nullptr;
  T* yp = y.mutable_data_ptr<T>();
  if (g.n == 0 || g.ho == 0 || g.wo == 0) return;
  if (!winograd_by_images(g, sizeof(T)))
    return winograd_by_rows(g) ? winograd_forward_rows<T>(xp, up, bp, yp, g, wt)
                               : winograd_forward_chunked<T>(xp, up, bp, yp, g, wt);
  const int64_t nt = wt.per_image, rows = wt.ph * wt.th;
  // each thread's V and M start 64-byte apart from the first's, so the products see the same alignment
  // whichever thread runs an image
  constexpr int64_t kLine = 64 / sizeof(T);
  const int64_t vsize = round_to(36 * g.c * nt, kLine), msize = round_to(36 * g.o * nt, kLine);
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), g.n);
  T* const vall = call_workspace<T>(kWsWinogradData, threads * vsize);
  T* const mall = call_workspace<T>(kWsWinogradProducts, threads * msize);
  at::parallel_for(0, g.n, 1, [&](int64_t begin, int64_t end) {
    const int64_t tid = at::get_thread_num();
    TORCH_CHECK(tid < threads, "convkit: Winograd thread ", tid, " beyond its ", threads, " workspaces");
    T* const v = vall + tid * vsize;  // V[xi][c][tile], M[xi][o][tile] of one image
    T* const m = mall + tid * msize;
    for (int64_t n = begin; n < end; ++n) forward_piece<T>(xp, up, bp, yp, g, wt, n * rows, (n + 1) * rows, v, m);
  });
}

// grad_weight (the transpose of the forward's algebra): y = A^T (U . V) A is linear in U = G g G^T, so
// dL/dU[xi][o][c] = sum over tiles of Z[xi][o][tile] V[xi][c][tile] with Z = A dY_tile A^T (dY zero past
// the output's edge), and grad_weight = G^T dL/dU G. Z: a task owns one image, output channel and row of
// tiles (A down the 4 rows, vectorised along the row, then A along each tile's 4 columns).
// The chunks' passes share V and Z between the threads, which costs 25-50 % in the machine's slow phases
// (session 21, us, fast / slow: R8 N=8 3369 / 4220, R3 N=8 3342 / 5031, R3 N=1 444 / 680). Per-thread blocks
// of 32 or 64 input channels (each thread its own V rows and a whole Z, BLAS per block, nothing shared) were
// slower in the fast phase (R8 N=8 4067 / 3874, R3 N=1 530 / 509, R8 N=1 630 / 580) and not reliably
// faster in the slow one (R8 N=8 4343 / 4149, R3 N=1 609 / 989), so the shared passes stay.

// gw[p][i][j] = (G^T dU_p G)[i][j] for the P = O*Cg kernels, dU[xi][p]; lanes = kernels (consecutive in dU).
template <typename T>
void weight_grad_transform(const T* du, int64_t P, T* gw) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  at::parallel_for(0, (P + L - 1) / L, 64, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t p0 = blk * L, np = std::min(L, P - p0);
      V t[3][6];  // G^T dU
      for (int i = 0; i < 3; ++i)
        for (int b = 0; b < 6; ++b) t[i][b] = V{};
      for (int a = 0; a < 6; ++a)
        for (int b = 0; b < 6; ++b) {
          V u;
          const T* src = du + (a * 6 + b) * P + p0;
          if (np == L)
            u = vload(src);
          else
            for (int64_t l = 0; l < L; ++l) u[l] = l < np ? src[l] : T(0);
          for (int i = 0; i < 3; ++i)
            if (kG[a][i] != 0) t[i][b] += T(kG[a][i]) * u;
        }
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
          V r = V{};
          for (int b = 0; b < 6; ++b)
            if (kG[b][j] != 0) r += t[i][b] * T(kG[b][j]);
          for (int64_t l = 0; l < np; ++l) gw[(p0 + l) * 9 + i * 3 + j] = r[l];
        }
    }
  });
}

template <typename T>
void winograd_grad_weight(const at::Tensor& x, const at::Tensor& gy, at::Tensor& gw, const ConvGeom& g) {
  if (g.n == 0 || g.ho == 0 || g.wo == 0) {  // no tiles: the sum is empty (the workspace holds stale values)
    gw.zero_();
    return;
  }
  const WinoTiles wt = wino_tiles(g);
  const int64_t per_image = wt.per_image, img_bytes = 36 * (g.c + g.o) * per_image * (int64_t)sizeof(T);
  const int64_t nchunk = winograd_images_per_chunk(g.n, img_bytes, per_image, /*forward=*/false);
  const int64_t batches = 36 * g.groups;
  T* const dup = call_workspace<T>(kWsWinogradWeights, 36 * g.o * g.cg);  // dL/dU (36, G, Og, Cg)
  for (int64_t n0 = 0; n0 < g.n; n0 += nchunk) {
    const int64_t nimg = std::min(nchunk, g.n - n0), tiles = nimg * per_image;
    T* v = call_workspace<T>(kWsWinogradData, 36 * g.c * tiles);
    T* z = call_workspace<T>(kWsWinogradProducts, 36 * g.o * tiles);
    const int64_t rows = wt.ph * wt.th;
    input_transform<T>(x.const_data_ptr<T>(), g, wt, n0 * rows, (n0 + nimg) * rows, v);
    grad_output_transform<T>(gy.const_data_ptr<T>(), g, wt, n0 * rows, (n0 + nimg) * rows, z);
    const T beta = n0 == 0 ? T(0) : T(1);
    at::parallel_for(0, batches, 1, [&](int64_t begin, int64_t end) {  // chunks in order: deterministic sums
      for (int64_t i = begin; i < end; ++i)  // dU = Z V^T, row-major: as column-major dU^T = V Z^T (+ dU^T)
        gemm<T>(true, g.cg, g.og, tiles, v + i * g.cg * tiles, tiles, z + i * g.og * tiles, tiles, beta,
                dup + i * g.og * g.cg, g.cg);
    });
  }
  weight_grad_transform<T>(dup, g.o * g.cg, gw.mutable_data_ptr<T>());
}

}  // namespace

bool winograd_applies(const ConvGeom& g) { return g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1; }

int64_t winograd_tiles_per_image(const ConvGeom& g) { return wino_tiles(g).per_image; }

// With 16 channels per group (X2: 64 channels, groups 4, N=8) the direct kernels beat Winograd in every
// direction (forward 6.0 vs 9.5 ms, grad_input 6.4 vs 10.4, grad_weight 7.7 vs 12.0): its 36 products are
// then 16x16 matrices, too small to pay for the transforms (measured with BLAS products).
constexpr int64_t kWinogradMinChannels = 32;

int64_t winograd_images_per_chunk(int64_t n, int64_t img_bytes, int64_t per_image, bool forward) {
  const int64_t by_bytes = (forward ? kForwardChunkBytes : kChunkBytes) / std::max<int64_t>(1, img_bytes);
  const int64_t by_tiles = forward ? 1 : (kChunkMinTiles + per_image - 1) / per_image;
  const int64_t cap = std::max<int64_t>(1, kChunkMaxBytes / std::max<int64_t>(1, img_bytes));
  return std::max<int64_t>(1, std::min({n, cap, std::max(by_bytes, by_tiles)}));
}

// Tiles past the output's edge (and with dilation, phases' partial tiles) are computed and dropped: Winograd
// needs at least half of its 16 outputs per tile to be real (a 33x33 map with dilation 18: 0.21).
bool winograd_tiles_efficient(const ConvGeom& g) { return 2 * g.ho * g.wo >= 16 * winograd_tiles_per_image(g); }

// The forward's (and grad_input's) rule, with the products in product() (session 19; before, BLAS products
// and a slow-BLAS rule of >= 1024 tiles). Winograd vs "auto" without it, us, 2 threads, one op alone, median of
// 3 interleaved rounds, N = 1 / 8, fwd (grad_input within a few % of it):
//   R3 (64 @56, 196 tiles per image)  309 vs 504 / 2263 vs 4329     128 @56   1023 vs 2047 / 8176 vs 16224
//   R8 (128 @28, 49)                  505 vs 545 / 2474 vs 4124     256 @28   1946 vs 2173 / 10140 vs 15616
//   X3 (64 @56, dilation 2)           413 vs 508 / 3963 vs 4421     96 @28    296 vs 309 / 1739 vs 2212
//   32 @56                            127 vs 140 / 790 vs 1015      64 @28    161 vs 147 / 896 vs 984
//   R9 (256 @14, 16 per image)        1452 vs 555 / 5426 vs 4065    128 @14   367 vs 148 / 1549 vs 978
// Maps of 16 or fewer tiles per image lose by far (36 * O * Cg transformed weights, written and read on every
// call, for few tiles); one 28x28 image (49 tiles) wins only with many channels (R8 1.08x, 256 @28 1.12x; 96
// @28 level, 64 @28 0.91x). Hence: >= kWinoMinImageTiles tiles per image, and either two such images' worth
// of tiles or >= kWinoFewTilesWeights weights per group.
constexpr int64_t kWinoMinImageTiles = 49, kWinoFewTilesWeights = 128 * 128;

bool winograd_preferred(const ConvGeom& g) {
  if (!winograd_applies(g) || !winograd_tiles_efficient(g) || g.cg < kWinogradMinChannels ||
      g.og < kWinogradMinChannels)
    return false;
  const int64_t per_image = winograd_tiles_per_image(g), tiles = g.n * per_image;
  return per_image >= kWinoMinImageTiles && (tiles >= 2 * kWinoMinImageTiles || g.og * g.cg >= kWinoFewTilesWeights);
}

// grad_weight (2 threads, fp32): Winograd against the direct kernels, R8 N=1 1.41 vs 1.58-4.03 ms, R3 N=8
// 15.4 vs 27.7 (flat) / 52.6 (tiled), R9 N=1 2.8 vs 4.0, R9 N=8 12.1 vs 37.8, R11 N=8 16.4 vs 36.3: its
// product has the tiles as the reduction, so it pays off with fewer tiles than the forward.
bool winograd_preferred_grad_weight(const ConvGeom& g) {
  if (!winograd_applies(g) || !winograd_tiles_efficient(g) || g.cg < kWinogradMinChannels ||
      g.og < kWinogradMinChannels)
    return false;
  const int64_t tiles = g.n * winograd_tiles_per_image(g);
  return tiles >= 16 && tiles * 16384 >= g.og * g.cg;
}

void winograd_forward_cpu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const ConvGeom& g,
                          at::Tensor& y) {
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "convkit_winograd_cpu", [&] { winograd_forward<scalar_t>(x, w, b, g, y); });
}

int64_t winograd_workspace_bytes(const ConvGeom& g, int64_t itemsize, bool forward) {
  const int64_t per_image = wino_tiles(g).per_image, img_bytes = 36 * (g.c + g.o) * per_image * itemsize;
  const int64_t ubytes = 36 * g.o * g.cg * itemsize;
  if (forward && winograd_by_images(g, itemsize))
    return ubytes + std::min<int64_t>(at::get_num_threads(), g.n) * img_bytes;
  if (forward && winograd_by_rows(g)) {
    const RowsPlan p = rows_plan(g, wino_tiles(g), itemsize);
    return ubytes + p.parts * p.piece * 36 * (g.c + g.o) * p.row_tiles * itemsize;
  }
  return ubytes + winograd_images_per_chunk(g.n, img_bytes, per_image, forward) * img_bytes;
}

void winograd_grad_input_cpu(const at::Tensor& gy, const at::Tensor& w, at::Tensor& gx, const ConvGeom& g) {
  const ConvGeom t = transposed_geometry(g);
  // W'[grp][c][o][i][j] = W[grp][o][c][2-i][2-j]
  const at::Tensor wt = w.view({g.groups, g.og, g.cg, 3, 3}).flip({3, 4}).transpose(1, 2).reshape({g.c, g.og, 3, 3}).contiguous();
  winograd_forward_cpu(gy, wt, at::Tensor(), t, gx);
}

}  // namespace convkit

namespace convkit {
void winograd_grad_weight_cpu(const at::Tensor& x, const at::Tensor& gy, at::Tensor& gw, const ConvGeom& g) {
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "convkit_winograd_gw_cpu", [&] { winograd_grad_weight<scalar_t>(x, gy, gw, g); });
}
}  // namespace convkit
