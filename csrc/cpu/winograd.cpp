// Winograd F(4x4, 3x3) for 3x3, stride-1, dilation-1 correlation (Lavin & Gray 2016), any padding and groups.
// Each 4x4 output tile comes from a 6x6 input tile d:  Y = A^T [ (G g G^T) . (B^T d B) ] A, so the 144
// multiply-adds per tile and channel pair of the direct method become 36, done as 36 * groups matrix
// products of (Og x Cg) transformed weights with (Cg x tiles) transformed inputs.
//   weights  U[xi][o][c] = (G g G^T)[xi] for the 36 points xi: one BLAS product Cw (36 x 9) @ W (O*Cg x 9)^T
//            per call (the weights change every step), Cw = kron(G, G).
//   inputs   V[xi][c][tile] = (B^T d B)[xi]: a task owns one image, channel and row of tiles. It copies the 6
//            input rows of that tile row into a zero-padded buffer, applies B^T down the columns (vectorised
//            along the row) and then B along each tile's 6 columns, writing 36 rows of V contiguous in tile.
//   products M[xi][o][tile] = U[xi] @ V[xi] per point and group: ATen's BLAS, one product per task inside
//            at::parallel_for (BLAS runs single-threaded there), so the result does not depend on the
//            thread count.
//   outputs  y = A^T m A + bias per tile: a task owns one image, output channel and row of tiles.
// Images are processed in chunks so that V and M stay within kChunkBytes (V is 36/16 = 2.25x the input
// chunk, M 2.25x the output chunk): workspace per call = U (36/9 = 4x the weights) + V + M of one chunk,
// kept between calls by the calling thread. Accuracy: F(4x4, 3x3)'s transforms have entries up to 8 and
// 1/24; the fp32 error is about 1e-6..1e-5 relative to the output's scale (tested against float64).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "../common.h"
#include "kernels.h"
#include "simd.h"
#include "workspace.h"

namespace convkit {
namespace {

// Images per chunk: V and M within kChunkBytes, so that the three passes over them run from L3 rather than
// DRAM, unless that leaves the products fewer than kChunkMinTiles columns (BLAS is slower on narrow
// products); never past kChunkMaxBytes. Measured, 2 threads, ratio to torch in the same process (fwd, N=8):
// R3 16 MiB chunks (4 images) 0.57-0.66 -> 1 image 0.54-0.58, fwd+bwd 0.76-0.81 -> 0.64-0.66; R8 and R9
// were slower with chunks of 2-3 images (98 and 48 tiles) than with all 8.
constexpr int64_t kChunkBytes = 4 << 20;
constexpr int64_t kChunkMinTiles = 192;
constexpr int64_t kChunkMaxBytes = 16 << 20;


// G (6 x 3) of F(4, 3) with interpolation points 0, +-1, +-2, inf... (the usual 0, 1, -1, 2, -2 set).
constexpr double kG[6][3] = {{1.0 / 4, 0, 0},
                             {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                             {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                             {1.0 / 24, 1.0 / 12, 1.0 / 6},
                             {1.0 / 24, -1.0 / 12, 1.0 / 6},
                             {0, 0, 1}};

// B^T applied to 6 values (a column or a row of d).
template <typename T>
inline void bt6(T d0, T d1, T d2, T d3, T d4, T d5, T* o, int64_t os) {
  o[0 * os] = 4 * d0 - 5 * d2 + d4;
  o[1 * os] = -4 * d1 - 4 * d2 + d3 + d4;
  o[2 * os] = 4 * d1 - 4 * d2 - d3 + d4;
  o[3 * os] = -2 * d1 - d2 + 2 * d3 + d4;
  o[4 * os] = 2 * d1 - d2 - 2 * d3 + d4;
  o[5 * os] = 4 * d1 - 5 * d3 + d5;
}

// U[xi][p] = (G g_p G^T)[xi] for the P = O*Cg kernels g_p (9 contiguous values each). A task owns blocks
// of L kernels: it transposes them into 9 vectors (lanes = kernels) and computes G g G^T with vector FMAs,
// storing 36 contiguous vectors. (A BLAS product with an inner dimension of 9 runs at a few GFLOP/s here.)
template <typename T>
void weight_transform(const T* w, int64_t P, T* u) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  at::parallel_for(0, (P + L - 1) / L, 64, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t p0 = blk * L, np = std::min(L, P - p0);
      V gv[9];
      for (int q = 0; q < 9; ++q)
        for (int64_t l = 0; l < L; ++l) gv[q][l] = l < np ? w[(p0 + l) * 9 + q] : T(0);
      V t[6][3];  // G g
      for (int a = 0; a < 6; ++a)
        for (int j = 0; j < 3; ++j)
          t[a][j] = T(kG[a][0]) * gv[0 * 3 + j] + T(kG[a][1]) * gv[1 * 3 + j] + T(kG[a][2]) * gv[2 * 3 + j];
      for (int a = 0; a < 6; ++a)
        for (int b = 0; b < 6; ++b) {
          const V r = t[a][0] * T(kG[b][0]) + t[a][1] * T(kG[b][1]) + t[a][2] * T(kG[b][2]);
          T* dst = u + (a * 6 + b) * P + p0;
          if (np == L)
            vstore(dst, r);
          else
            for (int64_t l = 0; l < np; ++l) dst[l] = r[l];
        }
    }
  });
}

template <typename T>
void input_transform(const T* x, const ConvGeom& g, int64_t n0, int64_t nimg, int64_t th, int64_t tw, T* v) {
  const int64_t tiles = nimg * th * tw, wb = 4 * tw + 2;
  at::parallel_for(0, nimg * g.c * th, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> p(6 * wb), q(6 * wb);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t ti = t % th, c = (t / th) % g.c, nl = t / (th * g.c);
      const T* xc = x + ((n0 + nl) * g.c + c) * g.h * g.w;
      // the 6 input rows of this tile row, zero-padded: p[r][col] = x[4ti + r - pt][col - pl]
      const int64_t lo = std::min(wb, g.pl), hi = std::max(lo, std::min(wb, g.w + g.pl));
      for (int64_t r = 0; r < 6; ++r) {
        T* pr = p.data() + r * wb;
        const int64_t ih = 4 * ti + r - g.pt;
        if (ih < 0 || ih >= g.h) {
          std::fill(pr, pr + wb, T(0));
          continue;
        }
        std::fill(pr, pr + lo, T(0));
        std::copy(xc + ih * g.w + (lo - g.pl), xc + ih * g.w + (hi - g.pl), pr + lo);
        std::fill(pr + hi, pr + wb, T(0));
      }
      // B^T down the columns: q[k][col], vectorised along the row
      const T *p0 = p.data(), *p1 = p0 + wb, *p2 = p1 + wb, *p3 = p2 + wb, *p4 = p3 + wb, *p5 = p4 + wb;
      T *q0 = q.data(), *q1 = q0 + wb, *q2 = q1 + wb, *q3 = q2 + wb, *q4 = q3 + wb, *q5 = q4 + wb;
      for (int64_t col = 0; col < wb; ++col) {
        q0[col] = 4 * p0[col] - 5 * p2[col] + p4[col];
        q1[col] = -4 * p1[col] - 4 * p2[col] + p3[col] + p4[col];
        q2[col] = 4 * p1[col] - 4 * p2[col] - p3[col] + p4[col];
        q3[col] = -2 * p1[col] - p2[col] + 2 * p3[col] + p4[col];
        q4[col] = 2 * p1[col] - p2[col] - 2 * p3[col] + p4[col];
        q5[col] = 4 * p1[col] - 5 * p3[col] + p5[col];
      }
      // B along each tile's columns: v[(k*6 + l)][c][tile]
      const int64_t tile0 = (nl * th + ti) * tw;
      for (int64_t k = 0; k < 6; ++k) {
        const T* qk = q.data() + k * wb;
        T* vk = v + (k * 6 * g.c + c) * tiles + tile0;
        const int64_t ls = g.c * tiles;
        for (int64_t tj = 0; tj < tw; ++tj) {
          const T* d = qk + 4 * tj;
          bt6<T>(d[0], d[1], d[2], d[3], d[4], d[5], vk + tj, ls);
        }
      }
    }
  });
}

template <typename T>
void output_transform(const T* m, const T* b, T* y, const ConvGeom& g, int64_t n0, int64_t nimg, int64_t th,
                      int64_t tw) {
  const int64_t tiles = nimg * th * tw, ms = g.o * tiles;  // stride between the 36 points
  at::parallel_for(0, nimg * g.o * th, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> s(24 * tw), r(4 * 4 * tw);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t ti = t % th, o = (t / th) % g.o, nl = t / (th * g.o);
      const T* mo = m + o * tiles + (nl * th + ti) * tw;
      // A^T down the 6 rows of m: s[a][l][tj] (a < 4, l < 6), vectorised along tj
      for (int64_t l = 0; l < 6; ++l) {
        const T *m0 = mo + (0 * 6 + l) * ms, *m1 = mo + (1 * 6 + l) * ms, *m2 = mo + (2 * 6 + l) * ms;
        const T *m3 = mo + (3 * 6 + l) * ms, *m4 = mo + (4 * 6 + l) * ms, *m5 = mo + (5 * 6 + l) * ms;
        T *s0 = s.data() + (0 * 6 + l) * tw, *s1 = s.data() + (1 * 6 + l) * tw;
        T *s2 = s.data() + (2 * 6 + l) * tw, *s3 = s.data() + (3 * 6 + l) * tw;
        for (int64_t tj = 0; tj < tw; ++tj) {
          const T a12 = m1[tj] + m2[tj], d12 = m1[tj] - m2[tj], a34 = m3[tj] + m4[tj], d34 = m3[tj] - m4[tj];
          s0[tj] = m0[tj] + a12 + a34;
          s1[tj] = d12 + 2 * d34;
          s2[tj] = a12 + 4 * a34;
          s3[tj] = d12 + 8 * d34 + m5[tj];
        }
      }
      // A along the 6 columns: r[a][4*tj + c]
      const T bias = b ? b[o] : T(0);
      for (int64_t a = 0; a < 4; ++a) {
        const T *s0 = s.data() + (a * 6 + 0) * tw, *s1 = s0 + tw, *s2 = s1 + tw, *s3 = s2 + tw, *s4 = s3 + tw,
                *s5 = s4 + tw;
        T* ra = r.data() + a * 4 * tw;
        for (int64_t tj = 0; tj < tw; ++tj) {
          const T a12 = s1[tj] + s2[tj], d12 = s1[tj] - s2[tj], a34 = s3[tj] + s4[tj], d34 = s3[tj] - s4[tj];
          ra[4 * tj + 0] = bias + s0[tj] + a12 + a34;
          ra[4 * tj + 1] = bias + d12 + 2 * d34;
          ra[4 * tj + 2] = bias + a12 + 4 * a34;
          ra[4 * tj + 3] = bias + d12 + 8 * d34 + s5[tj];
        }
      }
      T* yo = y + ((n0 + nl) * g.o + o) * g.ho * g.wo;
      for (int64_t a = 0; a < 4 && 4 * ti + a < g.ho; ++a)
        std::copy(r.data() + a * 4 * tw, r.data() + a * 4 * tw + g.wo, yo + (4 * ti + a) * g.wo);
    }
  });
}

template <typename T>
void winograd_forward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const ConvGeom& g,
                      at::Tensor& y) {
  const auto opts = x.options();
  T* const up = call_workspace<T>(kWsWinogradWeights, 36 * g.o * g.cg);  // U (36, G, Og, Cg)
  weight_transform<T>(w.const_data_ptr<T>(), g.o * g.cg, up);
  const int64_t th = (g.ho + 3) / 4, tw = (g.wo + 3) / 4, per_image = th * tw;
  const int64_t img_bytes = 36 * (g.c + g.o) * per_image * (int64_t)sizeof(T);
  const int64_t nchunk = winograd_images_per_chunk(g.n, img_bytes, per_image);
  const int64_t batches = 36 * g.groups;
  for (int64_t n0 = 0; n0 < g.n; n0 += nchunk) {
    const int64_t nimg = std::min(nchunk, g.n - n0), tiles = nimg * per_image;
    T* v = call_workspace<T>(kWsWinogradData, 36 * g.c * tiles);
    T* m = call_workspace<T>(kWsWinogradProducts, 36 * g.o * tiles);
    input_transform<T>(x.const_data_ptr<T>(), g, n0, nimg, th, tw, v);
    const at::Tensor vt = at::from_blob(v, {batches, g.cg, tiles}, opts);
    at::Tensor mt = at::from_blob(m, {batches, g.og, tiles}, opts);
    const at::Tensor ut = at::from_blob(up, {batches, g.og, g.cg}, opts);
    at::parallel_for(0, batches, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        at::Tensor out = mt[i];
        at::mm_out(out, ut[i], vt[i]);
      }
    });
    output_transform<T>(m, b.defined() ? b.const_data_ptr<T>() : nullptr, y.mutable_data_ptr<T>(), g, n0, nimg,
                        th, tw);
  }
}

// grad_weight (the transpose of the forward's algebra): y = A^T (U . V) A is linear in U = G g G^T, so
// dL/dU[xi][o][c] = sum over tiles of Z[xi][o][tile] V[xi][c][tile] with Z = A dY_tile A^T (dY zero past
// the output's edge), and grad_weight = G^T dL/dU G. Z: a task owns one image, output channel and row of
// tiles (A down the 4 rows, vectorised along the row, then A along each tile's 4 columns).
template <typename T>
void grad_output_transform(const T* gy, const ConvGeom& g, int64_t n0, int64_t nimg, int64_t th, int64_t tw, T* z) {
  const int64_t tiles = nimg * th * tw, wb = 4 * tw;
  at::parallel_for(0, nimg * g.o * th, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> d(4 * wb), r(6 * wb);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t ti = t % th, o = (t / th) % g.o, nl = t / (th * g.o);
      const T* go = gy + ((n0 + nl) * g.o + o) * g.ho * g.wo;
      for (int64_t a = 0; a < 4; ++a) {
        T* da = d.data() + a * wb;
        const int64_t oh = 4 * ti + a;
        if (oh >= g.ho) {
          std::fill(da, da + wb, T(0));
          continue;
        }
        std::copy(go + oh * g.wo, go + (oh + 1) * g.wo, da);
        std::fill(da + g.wo, da + wb, T(0));
      }
      const T *d0 = d.data(), *d1 = d0 + wb, *d2 = d1 + wb, *d3 = d2 + wb;
      T *r0 = r.data(), *r1 = r0 + wb, *r2 = r1 + wb, *r3 = r2 + wb, *r4 = r3 + wb, *r5 = r4 + wb;
      for (int64_t col = 0; col < wb; ++col) {  // A (6 x 4) down the rows
        const T a02 = d0[col] + d2[col], a13 = d1[col] + d3[col];
        r0[col] = d0[col];
        r1[col] = a02 + a13;
        r2[col] = a02 - a13;
        r3[col] = d0[col] + 2 * d1[col] + 4 * d2[col] + 8 * d3[col];
        r4[col] = d0[col] - 2 * d1[col] + 4 * d2[col] - 8 * d3[col];
        r5[col] = d3[col];
      }
      const int64_t tile0 = (nl * th + ti) * tw, ls = g.o * tiles;
      for (int64_t k = 0; k < 6; ++k) {  // A along each tile's 4 columns: z[(k*6 + l)][o][tile]
        const T* rk = r.data() + k * wb;
        T* zk = z + (k * 6 * g.o + o) * tiles + tile0;
        for (int64_t tj = 0; tj < tw; ++tj) {
          const T* q = rk + 4 * tj;
          const T a02 = q[0] + q[2], a13 = q[1] + q[3];
          zk[0 * ls + tj] = q[0];
          zk[1 * ls + tj] = a02 + a13;
          zk[2 * ls + tj] = a02 - a13;
          zk[3 * ls + tj] = q[0] + 2 * q[1] + 4 * q[2] + 8 * q[3];
          zk[4 * ls + tj] = q[0] - 2 * q[1] + 4 * q[2] - 8 * q[3];
          zk[5 * ls + tj] = q[3];
        }
      }
    }
  });
}

// gw[p][i][j] = (G^T dU_p G)[i][j] for the P = O*Cg kernels, dU[xi][p]; lanes = kernels, as weight_transform.
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
  const auto opts = x.options();
  const int64_t th = (g.ho + 3) / 4, tw = (g.wo + 3) / 4, per_image = th * tw;
  const int64_t img_bytes = 36 * (g.c + g.o) * per_image * (int64_t)sizeof(T);
  const int64_t nchunk = winograd_images_per_chunk(g.n, img_bytes, per_image);
  const int64_t batches = 36 * g.groups;
  T* const dup = call_workspace<T>(kWsWinogradWeights, 36 * g.o * g.cg);  // dL/dU (36, G, Og, Cg)
  const at::Tensor du = at::from_blob(dup, {batches, g.og, g.cg}, opts);
  for (int64_t n0 = 0; n0 < g.n; n0 += nchunk) {
    const int64_t nimg = std::min(nchunk, g.n - n0), tiles = nimg * per_image;
    T* v = call_workspace<T>(kWsWinogradData, 36 * g.c * tiles);
    T* z = call_workspace<T>(kWsWinogradProducts, 36 * g.o * tiles);
    input_transform<T>(x.const_data_ptr<T>(), g, n0, nimg, th, tw, v);
    grad_output_transform<T>(gy.const_data_ptr<T>(), g, n0, nimg, th, tw, z);
    const at::Tensor vt = at::from_blob(v, {batches, g.cg, tiles}, opts);
    const at::Tensor zt = at::from_blob(z, {batches, g.og, tiles}, opts);
    const bool first = n0 == 0;
    at::parallel_for(0, batches, 1, [&](int64_t begin, int64_t end) {  // chunks in order: deterministic sums
      for (int64_t i = begin; i < end; ++i) {
        at::Tensor out = du[i];
        if (first)
          at::mm_out(out, zt[i], vt[i].t());
        else
          out.addmm_(zt[i], vt[i].t());
      }
    });
  }
  weight_grad_transform<T>(dup, g.o * g.cg, gw.mutable_data_ptr<T>());
}

}  // namespace

bool winograd_applies(const ConvGeom& g) {
  return g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1;
}

// With 16 channels per group (X2: 64 channels, groups 4, N=8) the direct kernels beat Winograd in every
// direction (forward 6.0 vs 9.5 ms, grad_input 6.4 vs 10.4, grad_weight 7.7 vs 12.0): its 36 products are
// then 16x16 matrices, too small for BLAS to pay for the transforms.
constexpr int64_t kWinogradMinChannels = 32;

// Measured (2 threads, fp32; /tmp-free numbers in benchmarks/results/cpu_winograd.json): Winograd is
// 1.8-2.3x faster than implicit_gemm on R3/R8 at N=1 and 8 and R9 at N=8, 1.4x on R11 at N=8, and slower
// where few tiles share large transformed weights (36 * O * Cg values written and read on every call):
// R9 at N=1 (16 tiles, 0.93x) and R11 at N=1 (4 tiles, 0.28x). So "auto" takes it for dense layers (>= 32
// channels per group both ways) with at least 32 tiles and at least one tile per 8192 kernel weights.
int64_t winograd_images_per_chunk(int64_t n, int64_t img_bytes, int64_t per_image) {
  const int64_t by_bytes = kChunkBytes / std::max<int64_t>(1, img_bytes);
  const int64_t by_tiles = (kChunkMinTiles + per_image - 1) / per_image;
  const int64_t cap = std::max<int64_t>(1, kChunkMaxBytes / std::max<int64_t>(1, img_bytes));
  return std::max<int64_t>(1, std::min({n, cap, std::max(by_bytes, by_tiles)}));
}

bool winograd_preferred(const ConvGeom& g) {
  if (!winograd_applies(g) || g.cg < kWinogradMinChannels || g.og < kWinogradMinChannels) return false;
  const int64_t tiles = g.n * ((g.ho + 3) / 4) * ((g.wo + 3) / 4);
  return tiles >= 32 && tiles * 8192 >= g.og * g.cg;
}

// grad_weight (2 threads, fp32): Winograd against the direct kernels, R8 N=1 1.41 vs 1.58-4.03 ms, R3 N=8
// 15.4 vs 27.7 (flat) / 52.6 (tiled), R9 N=1 2.8 vs 4.0, R9 N=8 12.1 vs 37.8, R11 N=8 16.4 vs 36.3: its
// product has the tiles as the reduction, so it pays off with fewer tiles than the forward.
bool winograd_preferred_grad_weight(const ConvGeom& g) {
  if (!winograd_applies(g) || g.cg < kWinogradMinChannels || g.og < kWinogradMinChannels) return false;
  const int64_t tiles = g.n * ((g.ho + 3) / 4) * ((g.wo + 3) / 4);
  return tiles >= 16 && tiles * 16384 >= g.og * g.cg;
}

void winograd_forward_cpu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const ConvGeom& g,
                          at::Tensor& y) {
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "convkit_winograd_cpu", [&] { winograd_forward<scalar_t>(x, w, b, g, y); });
}

void winograd_grad_input_cpu(const at::Tensor& gy, const at::Tensor& w, at::Tensor& gx, const ConvGeom& g) {
  ConvGeom t = g;
  t.c = g.o; t.h = g.ho; t.w = g.wo; t.o = g.c; t.cg = g.og; t.og = g.cg;
  t.pt = 2 - g.pt; t.pb = 2 - g.pb; t.pl = 2 - g.pl; t.pr = 2 - g.pr;
  t.ho = g.h; t.wo = g.w;
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
