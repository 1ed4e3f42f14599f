// Stride-2 layers with wide kernels (the ResNet stem R1: 3 -> 64 channels, 7x7, stride 2): direct along rows,
// Winograd F(4, 4) along columns, over the stride phases. Forward only; float32 and float64.
//
// The algebra. With stride 2, y[o][r][s] = sum over c, kh, kw of w[o][c][kh][kw] xp[c][2r + kh][2s + kw] (xp the
// zero-padded input). Split kh = 2j + a and kw = 2u + b (a, b the row and column phases): xp[c][2(r+j) + a]
// [2(s+u) + b] = X_cab[r + j][s + u] with the phase image X_cab[i][k] = xp[c][2i + a][2k + b]. Each (c, a, b) is
// a stride-1 correlation of X_cab with the sub-kernel w[o][c][2j + a][2u + b] (j < J_a = ceil((KH - a) / 2),
// u < 4, so KW <= 8).
//   Along columns, Winograd F(4, 4) (points 0, 1, -1, 2, -2, -1/2, inf): tile t gives the 4 outputs s = 4t ..
//   4t + 3 from d = X_cab[i][4t .. 4t + 6] as A^T [(G w_row) . (B^T d)], 7 multiplies in place of 16.
//   Along rows, direct: the tap j is a shift by j whole rows of the phase image.
// So, with R = C x (J_0 + J_1) x 2 terms (c, a, j, b) per point (R1: 42):
//   M[xi][o][r][t] = sum over (c, a, j, b) of U[xi][o][c, a, j, b] V[xi][c, a, b][r + j][t]
//   y[o][r][4t + k] = sum over xi of A^T[k][xi] M[xi][o][r][t] + bias[o]
// R1: 7 x 42 = 294 multiply-adds per output channel and 4 outputs, against 4 x 147 = 588 direct (2x fewer).
// Layout. The positions q = r T + t (T = ceil(Wo / 4) tiles per output row) are the vector lanes. V[xi][c, a, b]
// is stored with row pitch T, so the term (c, a, j, b) of positions q .. q + L - 1 is the contiguous vector at
// q + j T, and where 4T == Wo the 4 outputs of positions q .. q + L - 1 are y's contiguous 4L values from 4q.
//   weights  U[xi][ob][term][8] for blocks ob of 8 output channels (zero past O), from G in double, in one
//            parallel pass over the blocks (s2_weights).
//   inputs   V of one piece of output rows r0 .. r1 needs the phase rows r0 .. r1 + J_0 - 2 (the J_0 - 1 extra
//            rows are the halo, computed again by the next piece). Per padded input row: a zero-padded copy,
//            a deinterleave by 8 (columns 8t + m, m < 8, into 8 vectors over t: 3 levels of two-source
//            permutes, unzip8), then B^T over 7 of the 14 columns 8t .. 8t + 13 per column phase (s2_input_row).
//   products per block of 3 position vectors x 8 output channels (24 accumulators) and point xi, the R-term
//            sum in registers (U broadcast, V loaded at q + j T), stored to an L1 block Mb[xi][8][3][L]
//            (s2_products; the block's 7 points, then its outputs, so Mb never leaves L1).
//   outputs  from Mb: A^T (7 -> 4), the bias, and the 4 vectors interleaved by permutes into the 4L
//            consecutive outputs (4T == Wo), else copied position by position (s2_outputs).
// Schedule: the weight pass, then the output rows of all images cut into one contiguous range per part (as
// many parts as threads), each part done in pieces of at most S2Geom::piece_rows rows that do not cross an image
// (its V within kS2PieceBytes, so it stays in the core's L2). A part owns its rows of y, its V and its Mb;
// every output is computed the same way whatever the cut, so the result does not depend on the thread count.
// Workspace: U, 7 x ceil(O / 8) x 8 x R values (R1: 73.5 KiB fp32), and per part V of one piece plus a row
// buffer, the deinterleaved row and Mb (s2_part_values). V's lanes past a piece's positions hold stale values;
// no output reads them.
// Accuracy (fp32, against float64): ~7e-7 of the output's scale on R1, where the direct fp32 sum has ~5e-7. As
// in any Winograd tile, each output depends on all 7 columns of its tile's window, so with KW < 8 an Inf in a
// column that only a zero tap meets gives NaN where the direct sum stays finite.
// Measured (R1 N=1, fp32, 2 threads, standalone prototype, us): products 237 (92 % of the FMA probe), the rest
// ~100; 335-365 in all against the direct path's 480-510 and torch's 545-575.
// Before this path, sessions 22-23 tried Winograd F(3x3, 4x4) in both directions over the four phases (16
// multiplies per output and input channel in place of 49, so 3x fewer than direct): the 36-point products had
// a 12-term reduction each (per-point store and zeroing overhead, 70 % of the peak), and the 2-D output
// transform cost ~120 us, so it reached 427 us in the machine's fast phase and 704-746 in its slow one
// (branch wip/winograd-s2). Here the reduction is 42 terms long and the transforms are 1-D.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "../common.h"
#include "kernels.h"
#include "simd.h"
#include "workspace.h"

namespace convkit {
namespace {

constexpr int64_t kS2Points = 7;          // F(4, 4): 4 + 4 - 1
constexpr int64_t kS2Ob = 8;              // products' block: output channels
constexpr int64_t kS2Pb = 3;              // ... and position vectors (24 accumulators)
constexpr int64_t kS2PieceBytes = 256 << 10;  // V of one piece, within a core's L2 (1 MiB on Zen 5)

// G (7 x 4) for the points 0, 1, -1, 2, -2, -1/2, inf: row p = (1, p, p^2, p^3) / prod over q != p of (p - q).
constexpr double kG[kS2Points][4] = {
    {1.0 / 2, 0, 0, 0},
    {-1.0 / 9, -1.0 / 9, -1.0 / 9, -1.0 / 9},
    {1.0 / 3, -1.0 / 3, 1.0 / 3, -1.0 / 3},
    {1.0 / 60, 1.0 / 30, 1.0 / 15, 2.0 / 15},
    {-1.0 / 36, 1.0 / 18, -1.0 / 9, 2.0 / 9},
    {-32.0 / 45, 16.0 / 45, -8.0 / 45, 4.0 / 45},
    {0, 0, 0, 1},
};

struct S2Geom {
  int64_t t;        // tiles per output row
  int64_t j0, j1;   // row taps of the even and odd row phases
  int64_t red;      // terms per point: C x (j0 + j1) x 2
  int64_t nob;      // blocks of kS2Ob output channels
  int64_t piece_rows;  // output rows per piece
  int64_t pitch;    // V's values per (point, c, a, b): the piece's phase rows x T, plus the blocks' over-read
  int64_t tx;       // deinterleave blocks of 8L columns per input row (tiles 0 .. tx L - 1, one past T)
};

S2Geom s2_geom(const ConvGeom& g, int64_t itemsize) {
  const int64_t L = 64 / itemsize;
  S2Geom s;
  s.t = (g.wo + 3) / 4;
  s.j0 = (g.kh + 1) / 2;
  s.j1 = g.kh / 2;
  s.red = g.c * (s.j0 + s.j1) * 2;
  s.nob = (g.o + kS2Ob - 1) / kS2Ob;
  const int64_t row_bytes = std::max<int64_t>(1, kS2Points * 4 * g.c * s.t * itemsize);  // V of one phase row
  s.piece_rows = std::max<int64_t>(1, std::min(g.ho, kS2PieceBytes / row_bytes - (s.j0 - 1)));
  s.pitch = round_to((s.piece_rows + s.j0 - 1) * s.t + (kS2Pb + 1) * L, L);
  s.tx = (s.t + 1 + L - 1) / L;
  return s;
}

// Per part: V, the padded input row (tx 8L values), the deinterleaved row (8 x (tx L + L)) and Mb.
struct S2Part {
  int64_t v, row, dein, mb, total;
};

S2Part s2_part_values(const ConvGeom& g, const S2Geom& s, int64_t itemsize) {
  const int64_t L = 64 / itemsize;
  S2Part p;
  p.v = kS2Points * g.c * 4 * s.pitch;
  p.row = s.tx * 8 * L;
  p.dein = 8 * (s.tx * L + L);
  p.mb = kS2Points * kS2Ob * kS2Pb * L;
  p.total = round_to(p.v, L) + round_to(p.row, L) + round_to(p.dein, L) + p.mb;
  return p;
}

int64_t s2_parts(const ConvGeom& g) { return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), g.n * g.ho)); }

// Of a and b's 2L values in order, the groups of G consecutive values with even (P = 0) or odd (P = 1) group index.
template <typename T, int64_t G, int64_t P>
inline typename Simd<T>::V unzip(const typename Simd<T>::V& a, const typename Simd<T>::V& b) {
  constexpr typename Simd<T>::I idx = lane_formula<T>([](int64_t k) { return k / G * 2 * G + k % G + P * G; });
  return __builtin_shuffle(a, b, idx);
}

// The low (H = 0) or high (H = 1) halves of a and b interleaved in groups of G: a's first G, b's first G, ...
template <typename T, int64_t G, int64_t H>
inline typename Simd<T>::V zip(const typename Simd<T>::V& a, const typename Simd<T>::V& b) {
  constexpr int64_t L = Simd<T>::L;
  constexpr typename Simd<T>::I idx =
      lane_formula<T>([](int64_t k) { return k / (2 * G) * G + k % G + (k / G) % 2 * L + H * L / 2; });
  return __builtin_shuffle(a, b, idx);
}

// s[m][l] = p[8 l + m] for m < 8, l < L (8L values: L columns of 8), by three levels of unzips: each level
// splits one bit of m (groups of 4, 2, 1).
template <typename T>
inline void unzip8(const T* p, typename Simd<T>::V* s) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  V a[8], b[8];
  for (int k = 0; k < 8; ++k) a[k] = vload(p + k * L);
  for (int k = 0; k < 4; ++k) {  // m's bit 2: pairs (2k, 2k+1)
    b[k] = unzip<T, 4, 0>(a[2 * k], a[2 * k + 1]);
    b[k + 4] = unzip<T, 4, 1>(a[2 * k], a[2 * k + 1]);
  }
  // now b[k] (k < 4) holds m < 4 of columns 2kL/8.., b[k + 4] m >= 4; m's bit 1
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 2; ++k) {
      a[h * 4 + k] = unzip<T, 2, 0>(b[h * 4 + 2 * k], b[h * 4 + 2 * k + 1]);
      a[h * 4 + k + 2] = unzip<T, 2, 1>(b[h * 4 + 2 * k], b[h * 4 + 2 * k + 1]);
    }
  // a[h * 4 + i * 2 + k]: m's bits 2, 1 = h, i, over columns half k; m's bit 0
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 2; ++i) {
      s[h * 4 + i * 2] = unzip<T, 1, 0>(a[h * 4 + i * 2], a[h * 4 + i * 2 + 1]);
      s[h * 4 + i * 2 + 1] = unzip<T, 1, 1>(a[h * 4 + i * 2], a[h * 4 + i * 2 + 1]);
    }
}

template <typename T>
void s2_weights(const T* w, const ConvGeom& g, const S2Geom& s, int64_t ob, T* u) {
  for (int64_t oo = 0; oo < kS2Ob; ++oo) {
    const int64_t o = ob * kS2Ob + oo;
    int64_t term = 0;
    for (int64_t c = 0; c < g.c; ++c)
      for (int64_t a = 0; a < 2; ++a)
        for (int64_t j = 0; j < (a ? s.j1 : s.j0); ++j)
          for (int64_t b = 0; b < 2; ++b, ++term) {
            double tap[4] = {0, 0, 0, 0};  // zero for the block's channels past O
            if (o < g.o)
              for (int64_t k = 0; k < 4 && 2 * k + b < g.kw; ++k)
                tap[k] = static_cast<double>(w[((o * g.c + c) * g.kh + 2 * j + a) * g.kw + 2 * k + b]);
            for (int64_t xi = 0; xi < kS2Points; ++xi)
              u[((xi * s.nob + ob) * s.red + term) * kS2Ob + oo] =
                  static_cast<T>(kG[xi][0] * tap[0] + kG[xi][1] * tap[1] + kG[xi][2] * tap[2] + kG[xi][3] * tap[3]);
          }
  }
}

// Padded input row hp (phase a = hp % 2) of channel c into V's phase row ii of (c, a, 0) and (c, a, 1).
template <typename T>
void s2_input_row(const T* x, const ConvGeom& g, const S2Geom& s, int64_t c, int64_t hp, int64_t ii, T* v, T* row,
                  T* dein) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  const int64_t len = s.tx * 8 * L, h = hp - g.pt, a = hp % 2;
  std::fill(row, row + len, T(0));
  if (h >= 0 && h < g.h) {  // row[wp] = x[h][wp - pl] where that is inside the image
    const int64_t lo = std::max<int64_t>(0, g.pl), src = std::max<int64_t>(0, -g.pl);
    const int64_t n = std::min(g.w - src, len - lo);
    if (n > 0) std::memcpy(row + lo, x + (c * g.h + h) * g.w + src, n * sizeof(T));
  }
  const int64_t dp = s.tx * L + L;  // dein[m][t] = row[8t + m]
  for (int64_t k = 0; k < s.tx; ++k) {
    V d[8];
    unzip8<T>(row + k * 8 * L, d);
    for (int m = 0; m < 8; ++m) vstore(dein + m * dp + k * L, d[m]);
  }
  for (int64_t m = 0; m < 8; ++m) vstore(dein + m * dp + s.tx * L, V{});
  const int64_t cs = g.c * 4 * s.pitch;  // V's values per point
  for (int64_t b = 0; b < 2; ++b) {
    T* const dst = v + ((c * 2 + a) * 2 + b) * s.pitch + ii * s.t;
    // whole vectors: the last one runs into the next phase row, which is written after this one (or into
    // the pitch's slack)
    for (int64_t t0 = 0; t0 < s.t; t0 += L) {
      V e[7];
      for (int u = 0; u < 7; ++u) {
        const int64_t col = 2 * u + b;  // column 8t + col
        e[u] = col < 8 ? vload(dein + col * dp + t0) : vload(dein + (col - 8) * dp + t0 + 1);
      }
      const V r0 = T(2) * e[0] + T(4) * e[1] - T(2.5) * e[2] - T(5) * e[3] + T(0.5) * e[4] + e[5];
      const V r1 = T(-2) * e[1] - T(6) * e[2] - T(3.5) * e[3] + T(1.5) * e[4] + e[5];
      const V r2 = T(2) * (e[1] + e[2]) - T(4.5) * e[3] - T(0.5) * e[4] + e[5];
      const V r3 = T(2.5) * (e[4] - e[2]) - e[1] + e[5];
      const V r4 = e[1] + T(1.5) * (e[2] - e[4]) - T(2) * e[3] + e[5];
      const V r5 = T(4) * e[1] - T(5) * e[3] + e[5];
      const V r6 = T(2) * e[1] + T(4) * e[2] - T(2.5) * e[3] - T(5) * e[4] + T(0.5) * e[5] + e[6];
      T* const p = dst + t0;
      vstore(p, r0);
      vstore(p + cs, r1);
      vstore(p + 2 * cs, r2);
      vstore(p + 3 * cs, r3);
      vstore(p + 4 * cs, r4);
      vstore(p + 5 * cs, r5);
      vstore(p + 6 * cs, r6);
    }
  }
}

// Mb[o][p] (one point) = sum over the terms of U[term][o] V[term's offset + p L], for 8 channels and 3 vectors.
template <typename T>
inline void s2_products(const T* vq, const T* u, const int64_t* off, int64_t red, T* mb) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  V acc[kS2Ob][kS2Pb];
  {
    const T* vp = vq + off[0];
    const V v0 = vload(vp), v1 = vload(vp + L), v2 = vload(vp + 2 * L);
#pragma GCC unroll 8
    for (int o = 0; o < kS2Ob; ++o) {
      const V w = splat(u[o]);
      acc[o][0] = w * v0;
      acc[o][1] = w * v1;
      acc[o][2] = w * v2;
    }
  }
  for (int64_t r = 1; r < red; ++r) {
    const T* vp = vq + off[r];
    const T* ur = u + r * kS2Ob;
    const V v0 = vload(vp), v1 = vload(vp + L), v2 = vload(vp + 2 * L);
#pragma GCC unroll 8
    for (int o = 0; o < kS2Ob; ++o) {
      const V w = splat(ur[o]);
      acc[o][0] += w * v0;
      acc[o][1] += w * v1;
      acc[o][2] += w * v2;
    }
  }
#pragma GCC unroll 8
  for (int o = 0; o < kS2Ob; ++o)
#pragma GCC unroll 3
    for (int p = 0; p < kS2Pb; ++p) vstore(mb + (o * kS2Pb + p) * L, acc[o][p]);
}

// y's outputs of block ob for the position vectors q0, q0 + L, ... (nvec of them, positions < qend of the image).
template <typename T>
void s2_outputs(const T* mb, const T* bias, T* yimg, const ConvGeom& g, const S2Geom& s, int64_t ob, int64_t q0,
                int64_t nvec, int64_t qend) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  constexpr int64_t xs = kS2Ob * kS2Pb * L;  // Mb's values per point
  for (int64_t oo = 0; oo < kS2Ob && ob * kS2Ob + oo < g.o; ++oo) {
    const int64_t o = ob * kS2Ob + oo;
    const V bv = splat(bias ? bias[o] : T(0));
    T* const yo = yimg + o * g.ho * g.wo;
    for (int64_t p = 0; p < nvec; ++p) {
      const T* m = mb + (oo * kS2Pb + p) * L;
      const V m0 = vload(m), m1 = vload(m + xs), m2 = vload(m + 2 * xs), m3 = vload(m + 3 * xs);
      const V m4 = vload(m + 4 * xs), m5 = vload(m + 5 * xs), m6 = vload(m + 6 * xs);
      const V s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
      const V y0 = m0 + s12 + s34 + m5 + bv;
      const V y1 = d12 + T(2) * d34 - T(0.5) * m5 + bv;
      const V y2 = s12 + T(4) * s34 + T(0.25) * m5 + bv;
      const V y3 = d12 + T(8) * d34 - T(0.125) * m5 + m6 + bv;
      const V t0 = zip<T, 1, 0>(y0, y1), t1 = zip<T, 1, 1>(y0, y1);
      const V t2 = zip<T, 1, 0>(y2, y3), t3 = zip<T, 1, 1>(y2, y3);
      const V z[4] = {zip<T, 2, 0>(t0, t2), zip<T, 2, 1>(t0, t2), zip<T, 2, 0>(t1, t3), zip<T, 2, 1>(t1, t3)};
      const int64_t q = q0 + p * L, nval = std::min<int64_t>(L, qend - q);
      if (4 * s.t == g.wo && nval == L) {
        for (int k = 0; k < 4; ++k) vstore(yo + 4 * q + k * L, z[k]);
        continue;
      }
      T tmp[4 * L];
      for (int k = 0; k < 4; ++k) vstore(tmp + k * L, z[k]);
      for (int64_t e = 0; e < nval; ++e) {  // position q + e: row r, tile t, columns 4t .. min(4t + 4, Wo)
        const int64_t r = (q + e) / s.t, t = (q + e) % s.t;
        std::memcpy(yo + r * g.wo + 4 * t, tmp + 4 * e, std::min<int64_t>(4, g.wo - 4 * t) * sizeof(T));
      }
    }
  }
}

template <typename T>
void s2_forward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const ConvGeom& g, at::Tensor& y) {
  constexpr int64_t L = Simd<T>::L;
  const S2Geom s = s2_geom(g, sizeof(T));
  const S2Part sp = s2_part_values(g, s, sizeof(T));
  const int64_t parts = s2_parts(g), total = g.n * g.ho;
  if (s.red == 0) {  // no input channels: the sum is empty
    if (b.defined()) y.copy_(b.view({1, g.o, 1, 1}).expand_as(y));
    else y.zero_();
    return;
  }
  T* const u = call_workspace<T>(kWsWinogradWeights, kS2Points * s.nob * s.red * kS2Ob);
  T* const wsp = call_workspace<T>(kWsWinogradData, parts * sp.total);
  const T* wp = w.const_data_ptr<T>();
  const T* xp = x.const_data_ptr<T>();
  const T* bp = b.defined() ? b.const_data_ptr<T>() : nullptr;
  T* const yp = y.mutable_data_ptr<T>();
  at::parallel_for(0, s.nob, 1, [&](int64_t begin, int64_t end) {
    for (int64_t ob = begin; ob < end; ++ob) s2_weights<T>(wp, g, s, ob, u);
  });
  // V's offset of each term (c, a, j, b): its (c, a, b) row block, shifted by j phase rows
  std::vector<int64_t> off;
  off.reserve(s.red);
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t a = 0; a < 2; ++a)
      for (int64_t j = 0; j < (a ? s.j1 : s.j0); ++j)
        for (int64_t cb = 0; cb < 2; ++cb) off.push_back(((c * 2 + a) * 2 + cb) * s.pitch + j * s.t);
  const int64_t cs = g.c * 4 * s.pitch;
  at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
    for (int64_t part = begin; part < end; ++part) {
      T* const v = wsp + part * sp.total;
      T* const row = v + round_to(sp.v, L);
      T* const dein = row + round_to(sp.row, L);
      T* const mb = dein + round_to(sp.dein, L);
      const int64_t ra = part * total / parts, rb = (part + 1) * total / parts;
      for (int64_t r0g = ra; r0g < rb;) {
        const int64_t img = r0g / g.ho, r0 = r0g % g.ho;
        const int64_t r1 = std::min({g.ho, r0 + s.piece_rows, r0 + rb - r0g});
        const T* const ximg = xp + img * g.c * g.h * g.w;
        for (int64_t c = 0; c < g.c; ++c)
          for (int64_t a = 0; a < 2; ++a) {  // the phase rows its J_a taps reach (none for a = 1 when KH = 1)
            const int64_t ja = a ? s.j1 : s.j0, ni = ja ? r1 - r0 + ja - 1 : 0;
            for (int64_t ii = 0; ii < ni; ++ii) s2_input_row<T>(ximg, g, s, c, 2 * (r0 + ii) + a, ii, v, row, dein);
          }
        const int64_t np = (r1 - r0) * s.t, nv = (np + L - 1) / L;
        for (int64_t blk = 0; blk < nv; blk += kS2Pb) {
          for (int64_t ob = 0; ob < s.nob; ++ob) {
            for (int64_t xi = 0; xi < kS2Points; ++xi)
              s2_products<T>(v + xi * cs + blk * L, u + (xi * s.nob + ob) * s.red * kS2Ob, off.data(), s.red,
                             mb + xi * kS2Ob * kS2Pb * L);
            s2_outputs<T>(mb, bp, yp + img * g.o * g.ho * g.wo, g, s, ob, r0 * s.t + blk * L,
                          std::min(kS2Pb, nv - blk), r1 * s.t);
          }
        }
        r0g += r1 - r0;
      }
    }
  });
}

}  // namespace

bool winograd_s2_applies(const ConvGeom& g) {
  return g.sh == 2 && g.sw == 2 && g.dh == 1 && g.dw == 1 && g.groups == 1 && g.kw >= 5 && g.kw <= 8;
}

// "auto": measured on R1 (3 -> 64, 7x7, 224x224) only: at most 4 input channels (V holds 7 x 4C values per 4
// output columns), kernels at least 7 x 7 (7 or 8 wide), at least 16 output channels, output rows a multiple
// of 4 wide (whole-vector stores).
bool winograd_s2_preferred(const ConvGeom& g) {
  return winograd_s2_applies(g) && g.c <= 4 && g.kh >= 7 && g.kw >= 7 && g.wo % 4 == 0 && g.o >= 16;
}

void winograd_s2_forward_cpu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const ConvGeom& g,
                             at::Tensor& y) {
  if (g.n == 0 || g.o == 0 || g.ho == 0 || g.wo == 0) return;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "convkit_winograd_s2_cpu", [&] { s2_forward<scalar_t>(x, w, b, g, y); });
}

int64_t winograd_s2_workspace_bytes(const ConvGeom& g, int64_t itemsize) {
  const S2Geom s = s2_geom(g, itemsize);
  return (kS2Points * s.nob * s.red * kS2Ob + s2_parts(g) * s2_part_values(g, s, itemsize).total) * itemsize;
}

}  // namespace convkit
