// CUDA kernels for convkit::corr2d and convkit::corr2d_backward. NCHW in, NCHW out (any input layout is made
// contiguous first); float16/bfloat16 are read and written as such and accumulated in float32, float32 in
// float32, float64 in float64. No atomics anywhere: every output element is written by exactly one thread, and
// every reduction runs in a fixed order, so two runs give bitwise-identical results.
//
// Algorithms ("auto" picks per shape, `algo` forces one; "direct" and "implicit_gemm" run every shape):
//   forward      implicit GEMM (igemm_kernel + FwdGemm): Y[m = (n, oh, ow), o] = sum_k A[m, k] W[k, o] per group,
//                k = (tap, c); the A tile is gathered from x on the fly (no im2col buffer), W is packed once per
//                call as (G, kh*kw, Cg, Og) in the compute type. Direct (direct_fwd_kernel) for depthwise and
//                few-channel layers.
//   grad_input   the transposed problem as implicit GEMM (GradInputGemm): dX[m = (n, h, w), c] =
//                sum_{k = (tap, o)} dY[n, o, oh, ow] W[o, c, tap], split into sh*sw phases of (h, w) so that
//                every gathered dY element is a real tap (no zero rows for stride > 1, no col2im scatter).
//                Direct gather (direct_grad_input_kernel) for few input channels.
//   grad_weight  GEMM over positions (GradWeightGemm): dW[o, (c, tap)] = sum_{r = (n, oh, ow)} dY[n, o, r] X[...],
//                split-K over r into a fixed number of partial buffers reduced in a fixed order. Direct per-tap
//                reduction (direct_grad_weight_kernel) for depthwise / few channels.
//   grad_bias    per-channel block reductions over fixed chunks of (n, oh, ow), then a fixed-order sum.
// Workspace per call (PyTorch's caching allocator): the packed weight (|W| in the compute type); split-K partials
// of at most kMaxPartialBytes when the grid would otherwise not fill the GPU.
#include <ATen/AccumulateType.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <numeric>
#include <type_traits>

#include "../common.h"
#include "compat.cuh"
#include "kernels.cuh"

namespace convkit {
namespace cuda {
namespace {

// The geometry as the kernels read it; int64 throughout (N*C*H*W and friends can exceed 2^31).
struct ConvDims {
  int64_t n, c, h, w, o, cg, og, groups, kh, kw, sh, sw, pt, pl, dh, dw, ho, wo, hw, howo, kk;
};

ConvDims dims_of(const ConvGeom& g) {
  return {g.n,  g.c,  g.h,  g.w,  g.o,  g.cg, g.og, g.groups, g.kh, g.kw,        g.sh,
          g.sw, g.pt, g.pl, g.dh, g.dw, g.ho, g.wo, g.h * g.w,  g.ho * g.wo, g.kh * g.kw};
}

__device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ bool inside(int64_t v, int64_t n) { return v >= 0 && v < n; }
__device__ __forceinline__ int64_t gcd64(int64_t a, int64_t b) {
  while (b) {
    const int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

constexpr int BK = 8;                                 // k per pipeline stage
constexpr int kPad = 4;                               // shared-memory row padding (bank conflicts of k-fast stores)
constexpr int64_t kMaxPartialBytes = 256LL << 20;     // split-K partial buffers, all splits together
constexpr int kTapChunk = 16;                         // direct grad_weight: taps accumulated per block

// ------------------------------------------------------------------------------------------------------------
// Implicit GEMM mainloop, shared by forward, grad_input and grad_weight.
// Block: 256 threads, tile BM x BN = (64 RM) x (64 RN) of C = A B, BK = 8 per stage, fp32 (fp64) accumulators.
// Thread (ty, tx) of a 16 x 16 grid owns a (4 RM) x (4 RN) register tile: rows rm*64 + ty*4 + [0, 4), columns
// rn*64 + tx*4 + [0, 4). Lanes of a warp run along m (P::kLanesM, coalesced NCHW stores) or along n.
// The problem P gathers its A and B tiles into registers (its loaders own the index arithmetic), the mainloop
// double-buffers them through shared memory (one __syncthreads per stage: the next tile's global loads are in
// flight while the current one is multiplied), and P's epilogue writes the tile. blockIdx.x = (z, m-tile) with z
// the problem's batch index (group, split, phase), blockIdx.y = n-tile.
// Per stage and thread: 2*(16 RM RN) FLOPs per k, (RM + RN) 16-byte shared loads per k.
// 128 x 128 tiles run one block per SM (64 accumulators + fragments + loader state need more than the 128
// registers two blocks would leave: ptxas spilled there); the smaller tiles two or more.
template <class P, int RM, int RN>
__global__ void __launch_bounds__(kThreads, RM * RN == 4 ? 1 : 2) igemm_kernel(const P prob, int64_t mtiles) {
  using Acc = typename P::Acc;
  constexpr int BM = 64 * RM, BN = 64 * RN;
  using AL = typename P::template ALoader<BM>;
  using BL = typename P::template BLoader<BN>;
  __shared__ __align__(16) Acc As[2][BK][BM + kPad];
  __shared__ __align__(16) Acc Bs[2][BK][BN + kPad];
  P p = prob;
  const int64_t bx = blockIdx.x;
  const int64_t z = bx / mtiles;
  p.setup(z);
  const int64_t m0 = (bx - z * mtiles) * BM, n0 = int64_t(blockIdx.y) * BN;
  if (m0 >= p.M) return;  // the row count of this z (grad_input phases differ): the whole block leaves
  const int tid = threadIdx.x;
  const int ty = P::kLanesM ? tid % 16 : tid / 16;
  const int tx = P::kLanesM ? tid / 16 : tid % 16;
  AL al(p, m0, tid);
  BL bl(p, n0, tid);
  Acc ra[AL::kN], rb[BL::kN];
  Acc acc[4 * RM][4 * RN];
#pragma unroll
  for (int i = 0; i < 4 * RM; ++i)
#pragma unroll
    for (int j = 0; j < 4 * RN; ++j) acc[i][j] = Acc(0);
  if (p.kb < p.ke) {
    al.load(p, ra);
    bl.load(p, rb);
    al.store(As[0], ra);
    bl.store(Bs[0], rb);
  }
  __syncthreads();
  int buf = 0;
  for (int64_t k = p.kb; k < p.ke; k += BK) {
    const bool more = k + BK < p.ke;
    if (more) {
      al.load(p, ra);
      bl.load(p, rb);
    }
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      Acc a[4 * RM], b[4 * RN];
#pragma unroll
      for (int i = 0; i < RM; ++i) {
        const Pack<Acc, 4> v = *reinterpret_cast<const Pack<Acc, 4>*>(&As[buf][kk][i * 64 + ty * 4]);
#pragma unroll
        for (int r = 0; r < 4; ++r) a[i * 4 + r] = v.v[r];
      }
#pragma unroll
      for (int j = 0; j < RN; ++j) {
        const Pack<Acc, 4> v = *reinterpret_cast<const Pack<Acc, 4>*>(&Bs[buf][kk][j * 64 + tx * 4]);
#pragma unroll
        for (int c = 0; c < 4; ++c) b[j * 4 + c] = v.v[c];
      }
#pragma unroll
      for (int i = 0; i < 4 * RM; ++i)
#pragma unroll
        for (int j = 0; j < 4 * RN; ++j) acc[i][j] = madd(a[i], b[j], acc[i][j]);
    }
    if (more) {
      al.store(As[buf ^ 1], ra);
      bl.store(Bs[buf ^ 1], rb);
    }
    __syncthreads();
    buf ^= 1;
  }
  p.template epilogue<RM, RN>(acc, m0, n0, ty, tx);
}

// ------------------------------------------------------------------------------------------------------------
// Forward: per group g, M = N*Ho*Wo output positions, N = Og output channels, K = kh*kw*Cg with k = tap*Cg + c.
// A[m, k] = x[n, g*Cg + c, oh*sh - pt + i*dh, ow*sw - pl + j*dw] (0 in the padding), B[k, o] = wp[g][k][o].
// ALIGNED (Cg % 8 == 0): a k-stage lies inside one tap, so a thread decodes (tap, c0) once per stage and reads
// 2-4 channels of one pixel; else every element decodes its k with two multiply-shift divisions.
// z = g * splits + s; split s owns k in [s*kchunk, (s+1)*kchunk) and writes partial[g][s][o][m] (reduced by
// split_reduce_nchw_kernel in split order), else the epilogue adds the bias and writes y directly.
template <typename T, typename AccT, bool ALIGNED>
struct FwdGemm {
  using Acc = AccT;
  static constexpr bool kLanesM = true;
  const T* x;
  const Acc* wp;
  const T* bias;
  T* y;
  Acc* partial;
  ConvDims d;
  int64_t M, N, K, splits, kchunk;
  FastDiv div_cg, div_kw;
  int64_t g, s, kb, ke;

  __device__ void setup(int64_t z) {
    g = z / splits;
    s = z - g * splits;
    kb = s * kchunk;
    ke = imin(K, kb + kchunk);
  }

  template <int BM>
  struct ALoader {
    static constexpr int kStep = kThreads / BM, kN = BM * BK / kThreads;
    const T* base;
    int64_t ih0, iw0, k, c0, ti, tj;
    int ml, kl;
    bool valid;
    __device__ ALoader(const FwdGemm& p, int64_t m0, int tid) {
      ml = tid % BM;
      kl = tid / BM;
      const int64_t m = m0 + ml;
      valid = m < p.M;
      int64_t n = 0, pix = 0, oh = 0, ow = 0;
      if (valid) {
        divmod(m, p.d.howo, n, pix);
        divmod(pix, p.d.wo, oh, ow);
      }
      base = p.x + (n * p.d.c + p.g * p.d.cg) * p.d.hw;
      ih0 = oh * p.d.sh - p.d.pt;
      iw0 = ow * p.d.sw - p.d.pl;
      k = p.kb;
      c0 = ti = tj = 0;
      if (ALIGNED) {
        const int64_t tap = k / p.d.cg;
        c0 = k - tap * p.d.cg;
        ti = tap / p.d.kw;
        tj = tap - ti * p.d.kw;
      }
    }
    __device__ __forceinline__ void load(const FwdGemm& p, Acc* r) {
      if (ALIGNED) {
        const int64_t ih = ih0 + ti * p.d.dh, iw = iw0 + tj * p.d.dw;
        const bool ok = valid && k < p.ke && inside(ih, p.d.h) && inside(iw, p.d.w);
        const T* src = base + (c0 + kl) * p.d.hw + ih * p.d.w + iw;
#pragma unroll
        for (int q = 0; q < kN; ++q) r[q] = ok ? static_cast<Acc>(src[q * kStep * p.d.hw]) : Acc(0);
        c0 += BK;
        if (c0 >= p.d.cg) {
          c0 = 0;
          if (++tj == p.d.kw) {
            tj = 0;
            ++ti;
          }
        }
      } else {
#pragma unroll
        for (int q = 0; q < kN; ++q) {
          const int64_t kq = k + kl + q * kStep;
          Acc v = Acc(0);
          if (valid && kq < p.ke) {
            const uint32_t tap = p.div_cg.div(static_cast<uint32_t>(kq));
            const int64_t c = kq - int64_t(tap) * p.d.cg;
            const uint32_t i = p.div_kw.div(tap);
            const int64_t j = int64_t(tap) - int64_t(i) * p.d.kw;
            const int64_t ih = ih0 + i * p.d.dh, iw = iw0 + j * p.d.dw;
            if (inside(ih, p.d.h) && inside(iw, p.d.w)) v = static_cast<Acc>(base[c * p.d.hw + ih * p.d.w + iw]);
          }
          r[q] = v;
        }
      }
      k += BK;
    }
    __device__ __forceinline__ void store(Acc (*sm)[BM + kPad], const Acc* r) const {
#pragma unroll
      for (int q = 0; q < kN; ++q) sm[kl + q * kStep][ml] = r[q];
    }
  };

  template <int BN>
  struct BLoader {
    static constexpr int kStep = kThreads / BN, kN = BN * BK / kThreads;
    const Acc* src;
    int64_t k;
    int nl, kl;
    bool valid;
    __device__ BLoader(const FwdGemm& p, int64_t n0, int tid) {
      nl = tid % BN;
      kl = tid / BN;
      valid = n0 + nl < p.N;
      k = p.kb;
      src = p.wp + (p.g * p.K + k + kl) * p.N + n0 + nl;
    }
    __device__ __forceinline__ void load(const FwdGemm& p, Acc* r) {
#pragma unroll
      for (int q = 0; q < kN; ++q) r[q] = (valid && k + kl + q * kStep < p.ke) ? src[q * kStep * p.N] : Acc(0);
      src += BK * p.N;
      k += BK;
    }
    __device__ __forceinline__ void store(Acc (*sm)[BN + kPad], const Acc* r) const {
#pragma unroll
      for (int q = 0; q < kN; ++q) sm[kl + q * kStep][nl] = r[q];
    }
  };

  template <int RM, int RN>
  __device__ __forceinline__ void epilogue(Acc (&acc)[4 * RM][4 * RN], int64_t m0, int64_t n0, int ty, int tx) const {
#pragma unroll
    for (int rm = 0; rm < RM; ++rm) {
      const int64_t mb = m0 + rm * 64 + ty * 4;
      if (mb >= M) continue;
      int64_t nimg, pix;
      divmod(mb, d.howo, nimg, pix);
      const bool run4 = mb + 3 < M && pix + 3 < d.howo;  // 4 consecutive pixels of one image
#pragma unroll
      for (int rn = 0; rn < RN; ++rn)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int64_t o = n0 + rn * 64 + tx * 4 + c;
          if (o >= N) continue;
          Acc v[4];
#pragma unroll
          for (int r = 0; r < 4; ++r) v[r] = acc[rm * 4 + r][rn * 4 + c];
          if (splits > 1) {
            Acc* dst = partial + ((g * splits + s) * N + o) * M + mb;
            if (mb + 3 < M) {
              store4(dst, v);
            } else {
              for (int r = 0; r < 4 && mb + r < M; ++r) dst[r] = v[r];
            }
            continue;
          }
          const int64_t oc = g * N + o;
          const Acc bv = bias ? static_cast<Acc>(bias[oc]) : Acc(0);
#pragma unroll
          for (int r = 0; r < 4; ++r) v[r] += bv;
          if (run4) {
            store4(y + (nimg * d.o + oc) * d.howo + pix, v);
          } else {
            for (int r = 0; r < 4 && mb + r < M; ++r) {
              int64_t n2, p2;
              divmod(mb + r, d.howo, n2, p2);
              y[(n2 * d.o + oc) * d.howo + p2] = static_cast<T>(v[r]);
            }
          }
        }
    }
  }
};

// ------------------------------------------------------------------------------------------------------------
// grad_input: for each phase (rh, rw) = ((h + pt) mod sh, (w + pl) mod sw), the input positions of that phase,
// h = hf + sh*th, w = wf + sw*tw, receive exactly the taps with i*dh = rh (mod sh): i = i0 + t*step_h,
// step_h = sh / gcd(sh, dh), whose output row oh = (h + pt - i*dh) / sh = oh0 - t*(dh / gcd) is an exact division.
// Per (group, phase): M = N*Hp*Wp positions, N = Cg input channels, K = ni*nj*Og with k = (ti*nj + tj)*Og + o.
// A[m, k] = dY[n, g*Og + o, oh, ow] (0 outside), B[k, c] = wp[g][i*kw + j][o][c] (W packed (G, kh*kw, Og, Cg)).
// Phases without taps (ni or nj == 0) write zeros. z = (g * phases + phase) * splits + s; splits > 1 only for
// stride 1 (one phase), with partial[g][s][c][m] reduced by split_reduce_nchw_kernel.
template <typename T, typename AccT, bool ALIGNED>
struct GradInputGemm {
  using Acc = AccT;
  static constexpr bool kLanesM = true;
  const T* dy;
  const Acc* wp;
  T* gx;
  Acc* partial;
  ConvDims d;
  int64_t N, phases, splits, kchunk;
  FastDiv div_og;
  // per block (setup)
  int64_t g, s, M, K, kb, ke, hf, wf, hp, wq, i0, j0, nj, step_h, step_w, dl_h, dl_w;

  __device__ void setup(int64_t z) {
    s = z % splits;
    z /= splits;
    const int64_t ph = z % phases;
    g = z / phases;
    const int64_t rh = ph / d.sw, rw = ph - rh * d.sw;
    hf = ((rh - d.pt) % d.sh + d.sh) % d.sh;
    wf = ((rw - d.pl) % d.sw + d.sw) % d.sw;
    hp = hf < d.h ? (d.h - hf + d.sh - 1) / d.sh : 0;
    wq = wf < d.w ? (d.w - wf + d.sw - 1) / d.sw : 0;
    M = d.n * hp * wq;
    const int64_t gh = gcd64(d.sh, d.dh), gw = gcd64(d.sw, d.dw);
    step_h = d.sh / gh;
    dl_h = d.dh / gh;
    step_w = d.sw / gw;
    dl_w = d.dw / gw;
    i0 = -1;
    for (int64_t i = 0; i < imin(d.kh, step_h); ++i)
      if ((i * d.dh) % d.sh == rh) {
        i0 = i;
        break;
      }
    j0 = -1;
    for (int64_t j = 0; j < imin(d.kw, step_w); ++j)
      if ((j * d.dw) % d.sw == rw) {
        j0 = j;
        break;
      }
    const int64_t ni = i0 < 0 ? 0 : (d.kh - 1 - i0) / step_h + 1;
    nj = j0 < 0 ? 0 : (d.kw - 1 - j0) / step_w + 1;
    K = ni * nj * d.og;
    kb = splits > 1 ? s * kchunk : 0;
    ke = splits > 1 ? imin(K, kb + kchunk) : K;
  }

  // (ti, tj, o) of k (k < 2^31: 32-bit divisions; this runs per element in the unaligned loaders)
  __device__ __forceinline__ void decode(int64_t k, int64_t& ti, int64_t& tj, int64_t& o) const {
    const uint32_t t = div_og.div(static_cast<uint32_t>(k));
    o = k - int64_t(t) * d.og;
    const uint32_t q = t / static_cast<uint32_t>(nj);
    ti = q;
    tj = int64_t(t) - int64_t(q) * nj;
  }

  template <int BM>
  struct ALoader {
    static constexpr int kStep = kThreads / BM, kN = BM * BK / kThreads;
    const T* base;
    int64_t oh0, ow0, k, o0, ti, tj;
    int ml, kl;
    bool valid;
    __device__ ALoader(const GradInputGemm& p, int64_t m0, int tid) {
      ml = tid % BM;
      kl = tid / BM;
      const int64_t m = m0 + ml;
      valid = m < p.M;
      int64_t n = 0, rem = 0, th = 0, tw = 0;
      if (valid) {
        divmod(m, p.hp * p.wq, n, rem);
        divmod(rem, p.wq, th, tw);
      }
      const int64_t h = p.hf + p.d.sh * th, w = p.wf + p.d.sw * tw;
      oh0 = (h + p.d.pt - p.i0 * p.d.dh) / p.d.sh;  // exact: i0*dh = h + pt (mod sh)
      ow0 = (w + p.d.pl - p.j0 * p.d.dw) / p.d.sw;
      base = p.dy + (n * p.d.o + p.g * p.d.og) * p.d.howo;
      k = p.kb;
      o0 = ti = tj = 0;
      if (ALIGNED && p.K > 0) p.decode(k, ti, tj, o0);
    }
    __device__ __forceinline__ void load(const GradInputGemm& p, Acc* r) {
      if (ALIGNED) {
        const int64_t oh = oh0 - ti * p.dl_h, ow = ow0 - tj * p.dl_w;
        const bool ok = valid && k < p.ke && inside(oh, p.d.ho) && inside(ow, p.d.wo);
        const T* src = base + (o0 + kl) * p.d.howo + oh * p.d.wo + ow;
#pragma unroll
        for (int q = 0; q < kN; ++q) r[q] = ok ? static_cast<Acc>(src[q * kStep * p.d.howo]) : Acc(0);
        o0 += BK;
        if (o0 >= p.d.og) {
          o0 = 0;
          if (++tj == p.nj) {
            tj = 0;
            ++ti;
          }
        }
      } else {
#pragma unroll
        for (int q = 0; q < kN; ++q) {
          const int64_t kq = k + kl + q * kStep;
          Acc v = Acc(0);
          if (valid && kq < p.ke) {
            int64_t a, b, o;
            p.decode(kq, a, b, o);
            const int64_t oh = oh0 - a * p.dl_h, ow = ow0 - b * p.dl_w;
            if (inside(oh, p.d.ho) && inside(ow, p.d.wo))
              v = static_cast<Acc>(base[o * p.d.howo + oh * p.d.wo + ow]);
          }
          r[q] = v;
        }
      }
      k += BK;
    }
    __device__ __forceinline__ void store(Acc (*sm)[BM + kPad], const Acc* r) const {
#pragma unroll
      for (int q = 0; q < kN; ++q) sm[kl + q * kStep][ml] = r[q];
    }
  };

  template <int BN>
  struct BLoader {
    static constexpr int kStep = kThreads / BN, kN = BN * BK / kThreads;
    const Acc* wg;
    int64_t k, o0, ti, tj;
    int nl, kl;
    bool valid;
    __device__ BLoader(const GradInputGemm& p, int64_t n0, int tid) {
      nl = tid % BN;
      kl = tid / BN;
      valid = n0 + nl < p.N;
      wg = p.wp + p.g * p.d.kk * p.d.og * p.N + n0 + nl;
      k = p.kb;
      o0 = ti = tj = 0;
      if (ALIGNED && p.K > 0) p.decode(k, ti, tj, o0);
    }
    __device__ __forceinline__ void load(const GradInputGemm& p, Acc* r) {
      if (ALIGNED) {
        const int64_t tap = (p.i0 + ti * p.step_h) * p.d.kw + p.j0 + tj * p.step_w;
        const Acc* src = wg + (tap * p.d.og + o0 + kl) * p.N;
        const bool ok = valid && k < p.ke;
#pragma unroll
        for (int q = 0; q < kN; ++q) r[q] = ok ? src[q * kStep * p.N] : Acc(0);
        o0 += BK;
        if (o0 >= p.d.og) {
          o0 = 0;
          if (++tj == p.nj) {
            tj = 0;
            ++ti;
          }
        }
      } else {
#pragma unroll
        for (int q = 0; q < kN; ++q) {
          const int64_t kq = k + kl + q * kStep;
          Acc v = Acc(0);
          if (valid && kq < p.ke) {
            int64_t a, b, o;
            p.decode(kq, a, b, o);
            const int64_t tap = (p.i0 + a * p.step_h) * p.d.kw + p.j0 + b * p.step_w;
            v = wg[(tap * p.d.og + o) * p.N];
          }
          r[q] = v;
        }
      }
      k += BK;
    }
    __device__ __forceinline__ void store(Acc (*sm)[BN + kPad], const Acc* r) const {
#pragma unroll
      for (int q = 0; q < kN; ++q) sm[kl + q * kStep][nl] = r[q];
    }
  };

  template <int RM, int RN>
  __device__ __forceinline__ void epilogue(Acc (&acc)[4 * RM][4 * RN], int64_t m0, int64_t n0, int ty, int tx) const {
    const bool one_phase = phases == 1;  // then m = n*H*W + h*W + w
#pragma unroll
    for (int rm = 0; rm < RM; ++rm) {
      const int64_t mb = m0 + rm * 64 + ty * 4;
      if (mb >= M) continue;
      int64_t nimg, pix;
      divmod(mb, hp * wq, nimg, pix);
      const bool run4 = one_phase && mb + 3 < M && pix + 3 < d.hw;
#pragma unroll
      for (int rn = 0; rn < RN; ++rn)
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const int64_t cl = n0 + rn * 64 + tx * 4 + c;
          if (cl >= N) continue;
          Acc v[4];
#pragma unroll
          for (int r = 0; r < 4; ++r) v[r] = acc[rm * 4 + r][rn * 4 + c];
          if (splits > 1) {
            Acc* dst = partial + ((g * splits + s) * N + cl) * M + mb;
            if (mb + 3 < M) {
              store4(dst, v);
            } else {
              for (int r = 0; r < 4 && mb + r < M; ++r) dst[r] = v[r];
            }
            continue;
          }
          const int64_t ch = g * N + cl;
          if (run4) {
            store4(gx + (nimg * d.c + ch) * d.hw + pix, v);
            continue;
          }
          for (int r = 0; r < 4 && mb + r < M; ++r) {
            int64_t n2, rem, th, tw;
            divmod(mb + r, hp * wq, n2, rem);
            divmod(rem, wq, th, tw);
            gx[(n2 * d.c + ch) * d.hw + (hf + d.sh * th) * d.w + wf + d.sw * tw] = static_cast<T>(v[r]);
          }
        }
    }
  }
};

// ------------------------------------------------------------------------------------------------------------
// grad_weight: per group, M = Og, N = Cg*kh*kw (columns (c, tap) in weight order), K = N*Ho*Wo positions r.
// A[o, r] = dY[n, g*Og + o, oh, ow], B[r, col] = X[n, g*Cg + c, oh*sh - pt + i*dh, ow*sw - pl + j*dw].
// Both loaders run along r (a lane per r: coalesced rows of dY and X for stride 1) and track (n, oh, ow)
// incrementally instead of dividing. z = g * splits + s: split s reduces r in [s*kchunk, (s+1)*kchunk) into
// partial[s][g*Og + o][col] (fixed split boundaries, reduced in split order by split_reduce_flat_kernel), or
// writes grad_weight directly when there is one split.
struct PosTracker {
  int64_t n, oh, ow;
  __device__ __forceinline__ void init(int64_t r, const ConvDims& d) {
    int64_t pix;
    divmod(r, d.howo, n, pix);
    divmod(pix, d.wo, oh, ow);
  }
  __device__ __forceinline__ void advance(const ConvDims& d) {
    ow += BK;
    while (ow >= d.wo) {
      ow -= d.wo;
      if (++oh == d.ho) {
        oh = 0;
        ++n;
      }
    }
  }
};

template <typename T, typename AccT>
struct GradWeightGemm {
  using Acc = AccT;
  static constexpr bool kLanesM = false;
  const T* x;
  const T* dy;
  T* gw;
  Acc* partial;
  ConvDims d;
  int64_t M, N, R, splits, kchunk;
  int64_t g, s, kb, ke;

  __device__ void setup(int64_t z) {
    g = z / splits;
    s = z - g * splits;
    kb = s * kchunk;
    ke = imin(R, kb + kchunk);
  }

  template <int BM>
  struct ALoader {
    static constexpr int kN = BM / 32;
    PosTracker pos;
    int64_t r;
    const T* rows;
    int kl, rl;
    int nvalid;  // rows rl + 32 q valid for q < nvalid
    __device__ ALoader(const GradWeightGemm& p, int64_t m0, int tid) {
      kl = tid % BK;
      rl = tid / BK;
      r = p.kb + kl;
      pos.init(r, p.d);
      rows = p.dy + (p.g * p.d.og + m0 + rl) * p.d.howo;
      const int64_t left = p.M - m0 - rl;
      nvalid = left <= 0 ? 0 : static_cast<int>(imin(kN, (left + 31) / 32));
    }
    __device__ __forceinline__ void load(const GradWeightGemm& p, Acc* v) {
      const bool ok = r < p.ke;
      const T* src = rows + pos.n * p.d.o * p.d.howo + pos.oh * p.d.wo + pos.ow;
#pragma unroll
      for (int q = 0; q < kN; ++q) v[q] = (ok && q < nvalid) ? static_cast<Acc>(src[q * 32 * p.d.howo]) : Acc(0);
      r += BK;
      pos.advance(p.d);
    }
    __device__ __forceinline__ void store(Acc (*sm)[BM + kPad], const Acc* v) const {
#pragma unroll
      for (int q = 0; q < kN; ++q) sm[kl][rl + 32 * q] = v[q];
    }
  };

  template <int BN>
  struct BLoader {
    static constexpr int kN = BN / 32;
    PosTracker pos;
    int64_t r;
    int64_t coff[kN];
    int64_t di[kN], dj[kN];
    int kl, cl;
    __device__ BLoader(const GradWeightGemm& p, int64_t n0, int tid) {
      kl = tid % BK;
      cl = tid / BK;
      r = p.kb + kl;
      pos.init(r, p.d);
#pragma unroll
      for (int q = 0; q < kN; ++q) {
        const int64_t col = n0 + cl + 32 * q;
        if (col < p.N) {
          const int64_t c = col / p.d.kk, tap = col - c * p.d.kk, i = tap / p.d.kw, j = tap - i * p.d.kw;
          coff[q] = (p.g * p.d.cg + c) * p.d.hw;
          di[q] = i * p.d.dh - p.d.pt;
          dj[q] = j * p.d.dw - p.d.pl;
        } else {
          coff[q] = 0;
          di[q] = -(int64_t(1) << 40);  // never inside: the column reads nothing
          dj[q] = 0;
        }
      }
    }
    __device__ __forceinline__ void load(const GradWeightGemm& p, Acc* v) {
      const bool ok = r < p.ke;
      const T* xn = p.x + pos.n * p.d.c * p.d.hw;
      const int64_t bh = pos.oh * p.d.sh, bw = pos.ow * p.d.sw;
#pragma unroll
      for (int q = 0; q < kN; ++q) {
        const int64_t ih = bh + di[q], iw = bw + dj[q];
        v[q] = (ok && inside(ih, p.d.h) && inside(iw, p.d.w)) ? static_cast<Acc>(xn[coff[q] + ih * p.d.w + iw])
                                                              : Acc(0);
      }
      r += BK;
      pos.advance(p.d);
    }
    __device__ __forceinline__ void store(Acc (*sm)[BN + kPad], const Acc* v) const {
#pragma unroll
      for (int q = 0; q < kN; ++q) sm[kl][cl + 32 * q] = v[q];
    }
  };

  template <int RM, int RN>
  __device__ __forceinline__ void epilogue(Acc (&acc)[4 * RM][4 * RN], int64_t m0, int64_t n0, int ty, int tx) const {
#pragma unroll
    for (int rm = 0; rm < RM; ++rm)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int64_t o = m0 + rm * 64 + ty * 4 + r;
        if (o >= M) continue;
#pragma unroll
        for (int rn = 0; rn < RN; ++rn) {
          const int64_t cb = n0 + rn * 64 + tx * 4;
          if (cb >= N) continue;
          Acc v[4];
#pragma unroll
          for (int c = 0; c < 4; ++c) v[c] = acc[rm * 4 + r][rn * 4 + c];
          const int64_t row = (s * d.o + g * M + o) * N + cb;  // s == 0 when there is one split
          if (splits > 1) {
            if (cb + 3 < N) {
              store4(partial + row, v);
            } else {
              for (int c = 0; c < 4 && cb + c < N; ++c) partial[row + c] = v[c];
            }
          } else if (cb + 3 < N) {
            store4(gw + row, v);
          } else {
            for (int c = 0; c < 4 && cb + c < N; ++c) gw[row + c] = static_cast<T>(v[c]);
          }
        }
      }
  }
};

// ------------------------------------------------------------------------------------------------------------
// Split-K reductions, one thread per output element, splits summed in order 0, 1, ...
// NCHW outputs (forward, grad_input): out[n, g*cw + c, pix] = sum_s partial[g][s][c][n*P + pix] (+ bias).
template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads) split_reduce_nchw_kernel(const Acc* __restrict__ partial,
                                                                    const T* __restrict__ bias, T* __restrict__ out,
                                                                    int64_t total, int64_t P, int64_t ctot, int64_t cw,
                                                                    int64_t splits) {
  const int64_t M = total / ctot;
  for (int64_t e = int64_t(blockIdx.x) * kThreads + threadIdx.x; e < total; e += int64_t(gridDim.x) * kThreads) {
    int64_t plane, pix, n, ch;
    divmod(e, P, plane, pix);
    divmod(plane, ctot, n, ch);
    const int64_t g = ch / cw, c = ch - g * cw;
    const Acc* src = partial + (g * splits * cw + c) * M + n * P + pix;
    Acc sum = bias ? static_cast<Acc>(bias[ch]) : Acc(0);
    Acc parts = Acc(0);
    for (int64_t s = 0; s < splits; ++s) parts += src[s * cw * M];
    out[e] = static_cast<T>(parts + sum);
  }
}

// Flat: out[e] = sum_s partial[s * total + e] (grad_weight, grad_bias).
template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads) split_reduce_flat_kernel(const Acc* __restrict__ partial,
                                                                    T* __restrict__ out, int64_t total,
                                                                    int64_t splits) {
  for (int64_t e = int64_t(blockIdx.x) * kThreads + threadIdx.x; e < total; e += int64_t(gridDim.x) * kThreads) {
    Acc sum = Acc(0);
    for (int64_t s = 0; s < splits; ++s) sum += partial[s * total + e];
    out[e] = static_cast<T>(sum);
  }
}

// ------------------------------------------------------------------------------------------------------------
// Direct forward: a block owns a 16 x 32 output tile (rows x columns) of one image for OCB output channels of one
// group; thread (ty, tx) of 8 x 32 computes rows ty and ty + 8 of column tx for the OCB channels (2*OCB
// accumulators). Per input channel the block stages the input tile the output tile needs
// ((15 sh + (kh-1) dh + 1) x (31 sw + (kw-1) dw + 1), zeros in the padding) and the OCB x kh*kw weights in shared
// memory, then every tap costs one shared load per output row and OCB FMAs with broadcast weights. Input is read
// from global memory once per OCB channels (plus the halo); for depthwise layers this is a stream over x and y.
struct DirectFwdArgs {
  ConvDims d;
  int64_t tiles_w, tiles, n_ocb;
  int64_t tih, tiw;  // staged input tile
};
constexpr int kDirTH = 16, kDirTW = 32;

template <typename T, typename Acc, int OCB>
__global__ void __launch_bounds__(kThreads) direct_fwd_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                                             const T* __restrict__ bias, T* __restrict__ y,
                                                             DirectFwdArgs a) {
  CONVKIT_DYNAMIC_SMEM(Acc, sm);
  const ConvDims& d = a.d;
  Acc* tile = sm;
  Acc* wsm = sm + a.tih * a.tiw;
  int64_t rest = blockIdx.x;
  const int64_t t = rest % a.tiles;
  rest /= a.tiles;
  const int64_t ob = rest % a.n_ocb;
  rest /= a.n_ocb;
  const int64_t g = rest % d.groups, n = rest / d.groups;
  const int64_t oh0 = (t / a.tiles_w) * kDirTH, ow0 = (t % a.tiles_w) * kDirTW;
  const int tid = threadIdx.x, tx = tid % 32, ty = tid / 32;
  const int64_t ih_org = oh0 * d.sh - d.pt, iw_org = ow0 * d.sw - d.pl;
  const int64_t oc0 = ob * OCB;
  Acc acc[2][OCB];
#pragma unroll
  for (int r = 0; r < 2; ++r)
#pragma unroll
    for (int q = 0; q < OCB; ++q) acc[r][q] = Acc(0);
  for (int64_t c = 0; c < d.cg; ++c) {
    __syncthreads();  // the previous channel's tile is no longer read
    const T* xc = x + (n * d.c + g * d.cg + c) * d.hw;
    for (int64_t r = ty; r < a.tih; r += 8) {
      const int64_t ih = ih_org + r;
      const bool row_ok = inside(ih, d.h);
      for (int64_t q = tx; q < a.tiw; q += 32) {
        const int64_t iw = iw_org + q;
        tile[r * a.tiw + q] = (row_ok && inside(iw, d.w)) ? static_cast<Acc>(xc[ih * d.w + iw]) : Acc(0);
      }
    }
    for (int e = tid; e < OCB * static_cast<int>(d.kk); e += kThreads) {  // OCB*kk fits the 48 KiB staged
      const int q = e / static_cast<int>(d.kk), tap = e - q * static_cast<int>(d.kk);
      wsm[e] = oc0 + q < d.og ? static_cast<Acc>(w[((g * d.og + oc0 + q) * d.cg + c) * d.kk + tap]) : Acc(0);
    }
    __syncthreads();
    for (int64_t i = 0; i < d.kh; ++i)
      for (int64_t j = 0; j < d.kw; ++j) {
        const Acc* src = tile + (ty * d.sh + i * d.dh) * a.tiw + tx * d.sw + j * d.dw;
        const Acc v0 = src[0], v1 = src[8 * d.sh * a.tiw];
        const Acc* wt = wsm + i * d.kw + j;
#pragma unroll
        for (int q = 0; q < OCB; ++q) {
          const Acc wv = wt[q * d.kk];
          acc[0][q] = madd(v0, wv, acc[0][q]);
          acc[1][q] = madd(v1, wv, acc[1][q]);
        }
      }
  }
  const int64_t ow = ow0 + tx;
  if (ow >= d.wo) return;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t oh = oh0 + ty + 8 * r;
    if (oh >= d.ho) continue;
#pragma unroll
    for (int q = 0; q < OCB; ++q) {
      const int64_t oc = g * d.og + oc0 + q;
      if (oc0 + q >= d.og) continue;
      const Acc bv = bias ? static_cast<Acc>(bias[oc]) : Acc(0);
      y[((n * d.o + oc) * d.ho + oh) * d.wo + ow] = static_cast<T>(acc[r][q] + bv);
    }
  }
}

// Direct forward without shared memory, for the rare geometry whose staged tile would not fit (huge dilation
// or kernel): one thread per output element, reading x and w through the cache.
template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads) direct_fwd_global_kernel(const T* __restrict__ x,
                                                                    const T* __restrict__ w,
                                                                    const T* __restrict__ bias, T* __restrict__ y,
                                                                    ConvDims d, int64_t total) {
  for (int64_t e = int64_t(blockIdx.x) * kThreads + threadIdx.x; e < total; e += int64_t(gridDim.x) * kThreads) {
    int64_t rest, ow, oh, n, oc;
    divmod(e, d.wo, rest, ow);
    divmod(rest, d.ho, rest, oh);
    divmod(rest, d.o, n, oc);
    const int64_t g = oc / d.og;
    Acc acc = Acc(0);
    for (int64_t c = 0; c < d.cg; ++c) {
      const T* xc = x + (n * d.c + g * d.cg + c) * d.hw;
      const T* wc = w + (oc * d.cg + c) * d.kk;
      for (int64_t i = 0; i < d.kh; ++i) {
        const int64_t ih = oh * d.sh - d.pt + i * d.dh;
        if (!inside(ih, d.h)) continue;
        for (int64_t j = 0; j < d.kw; ++j) {
          const int64_t iw = ow * d.sw - d.pl + j * d.dw;
          if (inside(iw, d.w))
            acc = madd(static_cast<Acc>(xc[ih * d.w + iw]), static_cast<Acc>(wc[i * d.kw + j]), acc);
        }
      }
    }
    if (bias) acc += static_cast<Acc>(bias[oc]);
    y[e] = static_cast<T>(acc);
  }
}

// Direct grad_input: one thread per input element (n, c, h, w), a gather over the output channels of its group and
// the taps whose output position is an integer inside the output: i = i0, i0 + step_h, ... with
// (h + pt - i*dh) divisible by sh. Every element written once, summed in (o, i, j) order. Tap arithmetic in 32 bits
// (padded coordinates of one image axis), element offsets in 64.
template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads) direct_grad_input_kernel(const T* __restrict__ dy,
                                                                    const T* __restrict__ w, T* __restrict__ gx,
                                                                    ConvDims d, int64_t step_h, int64_t step_w,
                                                                    int64_t total) {
  for (int64_t e = int64_t(blockIdx.x) * kThreads + threadIdx.x; e < total; e += int64_t(gridDim.x) * kThreads) {
    int64_t rest, iw, ih, n, ch;
    divmod(e, d.w, rest, iw);
    divmod(rest, d.h, rest, ih);
    divmod(rest, d.c, n, ch);
    int64_t g, cl;
    divmod(ch, d.cg, g, cl);
    const int kh = static_cast<int>(d.kh), kw = static_cast<int>(d.kw), sh = static_cast<int>(d.sh),
              sw = static_cast<int>(d.sw), dh = static_cast<int>(d.dh), dw = static_cast<int>(d.dw),
              ho = static_cast<int>(d.ho), wo = static_cast<int>(d.wo), sth = static_cast<int>(step_h),
              stw = static_cast<int>(step_w);
    const int th = static_cast<int>(ih + d.pt), tw = static_cast<int>(iw + d.pl);
    int i0 = kh, j0 = kw;
    for (int i = 0; i < kh && i < sth; ++i)
      if ((th - i * dh) % sh == 0) {
        i0 = i;
        break;
      }
    for (int j = 0; j < kw && j < stw; ++j)
      if ((tw - j * dw) % sw == 0) {
        j0 = j;
        break;
      }
    Acc acc = Acc(0);
    for (int64_t o = 0; o < d.og; ++o) {
      const T* dyo = dy + (n * d.o + g * d.og + o) * d.howo;
      const T* wt = w + ((g * d.og + o) * d.cg + cl) * d.kk;
      for (int i = i0; i < kh; i += sth) {
        const int nh = th - i * dh;
        if (nh < 0) break;  // oh only decreases with i
        const int oh = static_cast<unsigned>(nh) / static_cast<unsigned>(sh);
        if (oh >= ho) continue;
        for (int j = j0; j < kw; j += stw) {
          const int nw = tw - j * dw;
          if (nw < 0) break;
          const int ow = static_cast<unsigned>(nw) / static_cast<unsigned>(sw);
          if (ow >= wo) continue;
          acc = madd(static_cast<Acc>(dyo[int64_t(oh) * wo + ow]), static_cast<Acc>(wt[i * kw + j]), acc);
        }
      }
    }
    gx[e] = static_cast<T>(acc);
  }
}

// Direct grad_weight: a block owns (output channel o, input channel c of its group, a chunk of up to 16 taps) and
// one split (a fixed range of output rows (n, oh)); each thread accumulates the chunk's taps over the positions
// it visits (dY read once per position, X through L1), then the block sums each tap in a fixed tree order and
// writes partial[split][o][c][tap] (or grad_weight when there is one split).
template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads) direct_grad_weight_kernel(const T* __restrict__ x,
                                                                     const T* __restrict__ dy, T* __restrict__ gw,
                                                                     Acc* __restrict__ partial, ConvDims d,
                                                                     int64_t tapchunks, int64_t rows_per_split,
                                                                     int64_t splits) {
  __shared__ int64_t di[kTapChunk], dj[kTapChunk];
  __shared__ Acc red[kThreads];
  int64_t rest = blockIdx.x;
  const int64_t tc = rest % tapchunks;
  rest /= tapchunks;
  const int64_t cl = rest % d.cg, oc = rest / d.cg, g = oc / d.og;
  const int64_t t0 = tc * kTapChunk, nt = imin(kTapChunk, d.kk - t0);
  const int64_t s = blockIdx.y;
  const int64_t rb = s * rows_per_split, re = imin(d.n * d.ho, rb + rows_per_split);
  const int tid = threadIdx.x;
  if (tid < kTapChunk) {
    const int64_t tap = t0 + tid, i = tap / d.kw, j = tap - i * d.kw;
    di[tid] = i * d.dh - d.pt;
    dj[tid] = j * d.dw - d.pl;
  }
  __syncthreads();
  Acc acc[kTapChunk];
#pragma unroll
  for (int t = 0; t < kTapChunk; ++t) acc[t] = Acc(0);
  const int64_t count = re > rb ? (re - rb) * d.wo : 0;
  for (int64_t q = tid; q < count; q += kThreads) {
    int64_t rr, ow, n, oh;
    divmod(q, d.wo, rr, ow);
    divmod(rb + rr, d.ho, n, oh);
    const Acc gv = static_cast<Acc>(dy[((n * d.o + oc) * d.ho + oh) * d.wo + ow]);
    const T* xc = x + (n * d.c + g * d.cg + cl) * d.hw;
    const int64_t bh = oh * d.sh, bw = ow * d.sw;
#pragma unroll
    for (int t = 0; t < kTapChunk; ++t) {
      if (t < nt) {
        const int64_t ih = bh + di[t], iw = bw + dj[t];
        if (inside(ih, d.h) && inside(iw, d.w)) acc[t] = madd(gv, static_cast<Acc>(xc[ih * d.w + iw]), acc[t]);
      }
    }
  }
#pragma unroll
  for (int t = 0; t < kTapChunk; ++t) {
    if (t >= nt) break;  // uniform: every thread leaves together
    const Acc sum = block_sum(acc[t], red);
    if (tid == 0) {
      const int64_t e = (oc * d.cg + cl) * d.kk + t0 + t;
      if (splits > 1)
        partial[s * d.o * d.cg * d.kk + e] = sum;
      else
        gw[e] = static_cast<T>(sum);
    }
  }
}

// grad_bias: block (o, split) sums dY[:, o] over positions r = (n, pix) in its fixed chunk of N*Ho*Wo, in a fixed
// order; partial[split][o] (or grad_bias directly with one split).
template <typename T, typename Acc>
__global__ void __launch_bounds__(kThreads) grad_bias_kernel(const T* __restrict__ dy, T* __restrict__ gb,
                                                            Acc* __restrict__ partial, ConvDims d, int64_t chunk,
                                                            int64_t splits) {
  __shared__ Acc red[kThreads];
  const int64_t o = blockIdx.x, s = blockIdx.y;
  const int64_t R = d.n * d.howo, rb = s * chunk, re = imin(R, rb + chunk);
  Acc acc = Acc(0);
  for (int64_t r = rb + threadIdx.x; r < re; r += kThreads) {
    int64_t n, pix;
    divmod(r, d.howo, n, pix);
    acc += static_cast<Acc>(dy[(n * d.o + o) * d.howo + pix]);
  }
  const Acc sum = block_sum(acc, red);
  if (threadIdx.x == 0) {
    if (splits > 1)
      partial[s * d.o + o] = sum;
    else
      gb[o] = static_cast<T>(sum);
  }
}

// ------------------------------------------------------------------------------------------------------------
// Host side: plans and launches.

// Where "auto" takes the direct kernels (implicit GEMM tiles are 64-128 wide in the channel dimension: with fewer
// channels most of a tile would be padding). Thresholds chosen from the tile arithmetic, not yet measured on a
// GPU: benchmarks/bench_cuda.py --algos times both on the few-channel shapes.
bool forward_prefers_direct(const ConvDims& d) { return d.cg == 1 || (d.cg <= 4 && d.og <= 32) || (d.cg <= 16 && d.og <= 16); }
bool grad_input_prefers_direct(const ConvDims& d) { return d.cg <= 4 || (d.cg <= 16 && d.og <= 16); }
bool grad_weight_prefers_direct(const ConvDims& d) { return d.cg * d.og <= 64; }

struct TilePlan {
  int rm = 1, rn = 1;
  int64_t splits = 1;
};

// Tile shape and split-K count for an M x N x K GEMM repeated `batch` times: the candidate with the best
// (useful fraction of the tiles) x (fullness of the last wave) x (relative speed of the tile shape); split-K when
// the tiles alone would leave SMs idle, each split keeping at least min_k of the reduction, and the partial
// buffers (bytes_per_split each) under kMaxPartialBytes.
TilePlan plan_tiles(int64_t M, int64_t N, int64_t K, int64_t batch, bool dbl, int64_t max_splits, int64_t min_k,
                    int64_t bytes_per_split) {
  const int64_t sms = sm_count();
  const int cands[4][2] = {{2, 2}, {2, 1}, {1, 2}, {1, 1}};
  TilePlan best;
  double best_score = -1.0;
  max_splits = std::min(max_splits, std::max<int64_t>(1, kMaxPartialBytes / std::max<int64_t>(1, bytes_per_split)));
  for (const auto& cnd : cands) {
    const int rm = cnd[0], rn = cnd[1];
    if (dbl && rm * rn != 1) continue;  // fp64: 64 x 64 tiles only (register budget)
    const int64_t bm = 64 * rm, bn = 64 * rn;
    const int64_t tiles = ceil_div(M, bm) * ceil_div(N, bn) * batch;
    const int64_t slots = sms * (rm * rn == 4 ? 1 : rm * rn == 2 ? 2 : 4);  // resident blocks (registers)
    int64_t most = 1;
    if (max_splits > 1 && tiles < slots)
      most = std::max<int64_t>(1, std::min({max_splits, ceil_div(slots, tiles), K / min_k}));
    for (const int64_t splits : {int64_t(1), most}) {
      const int64_t work = tiles * splits;
      const double util = double(M) * double(N) * double(batch) / (double(tiles) * double(bm * bn));
      const double waves = double(work) / double(ceil_div(work, slots) * slots);
      const double speed = rm * rn == 4 ? 1.0 : rm * rn == 2 ? 0.85 : 0.7;
      const double score = util * waves * speed * (splits > 1 ? 0.9 : 1.0);
      if (score > best_score) {
        best_score = score;
        best = {rm, rn, splits};
      }
    }
  }
#ifdef CONVKIT_CUDA_EMULATE
  if (const char* t = std::getenv("CONVKIT_EMU_TILE"); t && !dbl) {  // "RM,RN": test every tile shape
    best.rm = t[0] - '0';
    best.rn = t[2] - '0';
  }
#endif
  return best;
}

template <class P>
void run_gemm(const P& p, const TilePlan& plan, int64_t mmax, int64_t ncols, int64_t z) {
  auto go = [&](auto rm_c, auto rn_c) {
    constexpr int RM = decltype(rm_c)::value, RN = decltype(rn_c)::value;
    const int64_t mtiles = ceil_div(mmax, 64 * RM), ntiles = ceil_div(ncols, 64 * RN);
    TORCH_CHECK(mtiles * z < (int64_t(1) << 31) && ntiles < 65536,
                "convkit::corr2d (CUDA): problem too large for one launch (", mtiles * z, " x ", ntiles, " tiles)");
    launch(igemm_kernel<P, RM, RN>, dim3(static_cast<unsigned>(mtiles * z), static_cast<unsigned>(ntiles)),
           dim3(kThreads), 0, p, mtiles);
  };
  using I1 = std::integral_constant<int, 1>;
  using I2 = std::integral_constant<int, 2>;
  if constexpr (std::is_same<typename P::Acc, double>::value) {
    go(I1{}, I1{});
  } else {
    if (plan.rm == 2 && plan.rn == 2)
      go(I2{}, I2{});
    else if (plan.rm == 2)
      go(I2{}, I1{});
    else if (plan.rn == 2)
      go(I1{}, I2{});
    else
      go(I1{}, I1{});
  }
}

template <typename Acc>
at::Tensor acc_empty(int64_t numel, const at::Tensor& like) {
  return at::empty({numel}, like.options().dtype(c10::CppTypeToScalarType<Acc>::value));
}

template <typename T, typename Acc>
void reduce_nchw(const at::Tensor& part, const T* bias, T* out, int64_t total, int64_t P, int64_t ctot, int64_t cw,
                 int64_t splits) {
  launch(split_reduce_nchw_kernel<T, Acc>, dim3(static_cast<unsigned>(grid_for(total))), dim3(kThreads), 0,
         part.const_data_ptr<Acc>(), bias, out, total, P, ctot, cw, splits);
}

template <typename T, typename Acc>
void reduce_flat(const at::Tensor& part, T* out, int64_t total, int64_t splits) {
  launch(split_reduce_flat_kernel<T, Acc>, dim3(static_cast<unsigned>(grid_for(total))), dim3(kThreads), 0,
         part.const_data_ptr<Acc>(), out, total, splits);
}

template <typename T, typename Acc>
void forward_gemm(const at::Tensor& x, const at::Tensor& w, const T* bias, at::Tensor& y, const ConvDims& d) {
  const int64_t K = d.kk * d.cg, M = d.n * d.howo;
  TORCH_CHECK(K < (int64_t(1) << 31), "convkit::corr2d (CUDA): Cg*kh*kw must be below 2^31, got ", K);
  at::Tensor wp = at::empty({d.groups, d.kk, d.cg, d.og}, w.options().dtype(c10::CppTypeToScalarType<Acc>::value));
  wp.copy_(w.view({d.groups, d.og, d.cg, d.kk}).permute({0, 3, 2, 1}));
  const TilePlan plan = plan_tiles(M, d.og, K, d.groups, std::is_same<Acc, double>::value, 32, 256,
                                   M * d.og * d.groups * int64_t(sizeof(Acc)));
  const int64_t kchunk = plan.splits == 1 ? K : ceil_div(ceil_div(K, plan.splits), BK) * BK;
  const int64_t splits = ceil_div(K, kchunk);
  at::Tensor part = splits > 1 ? acc_empty<Acc>(splits * d.groups * d.og * M, y) : at::Tensor();
  auto fill = [&](auto& p) {
    p.x = x.const_data_ptr<T>();
    p.wp = wp.const_data_ptr<Acc>();
    p.bias = bias;
    p.y = y.mutable_data_ptr<T>();
    p.partial = splits > 1 ? part.mutable_data_ptr<Acc>() : nullptr;
    p.d = d;
    p.M = M;
    p.N = d.og;
    p.K = K;
    p.splits = splits;
    p.kchunk = kchunk;
    p.div_cg = FastDiv(d.cg);
    p.div_kw = FastDiv(d.kw);
    p.g = p.s = p.kb = p.ke = 0;
    run_gemm(p, plan, M, d.og, d.groups * splits);
  };
  if (d.cg % BK == 0) {
    FwdGemm<T, Acc, true> p;
    fill(p);
  } else {
    FwdGemm<T, Acc, false> p;
    fill(p);
  }
  if (splits > 1) reduce_nchw<T, Acc>(part, bias, y.mutable_data_ptr<T>(), y.numel(), d.howo, d.o, d.og, splits);
}

template <typename T, typename Acc>
void forward_direct(const at::Tensor& x, const at::Tensor& w, const T* bias, at::Tensor& y, const ConvDims& d) {
  DirectFwdArgs a;
  a.d = d;
  a.tiles_w = ceil_div(d.wo, kDirTW);
  a.tiles = ceil_div(d.ho, kDirTH) * a.tiles_w;
  a.tih = (kDirTH - 1) * d.sh + (d.kh - 1) * d.dh + 1;
  a.tiw = (kDirTW - 1) * d.sw + (d.kw - 1) * d.dw + 1;
  const int ocb = d.og >= 8 ? 8 : d.og >= 4 ? 4 : d.og >= 2 ? 2 : 1;
  a.n_ocb = ceil_div(d.og, ocb);
  const int64_t blocks = d.n * d.groups * a.n_ocb * a.tiles;
  const int64_t smem = (a.tih * a.tiw + ocb * d.kk) * int64_t(sizeof(Acc));
  const T* xp = x.const_data_ptr<T>();
  const T* wptr = w.const_data_ptr<T>();
  T* yp = y.mutable_data_ptr<T>();
  if (smem > 48 * 1024 || blocks >= (int64_t(1) << 31)) {
    launch(direct_fwd_global_kernel<T, Acc>, dim3(static_cast<unsigned>(grid_for(y.numel()))), dim3(kThreads), 0,
           xp, wptr, bias, yp, d, y.numel());
    return;
  }
  const dim3 grid(static_cast<unsigned>(blocks));
  switch (ocb) {
    case 8: launch(direct_fwd_kernel<T, Acc, 8>, grid, dim3(kThreads), smem, xp, wptr, bias, yp, a); break;
    case 4: launch(direct_fwd_kernel<T, Acc, 4>, grid, dim3(kThreads), smem, xp, wptr, bias, yp, a); break;
    case 2: launch(direct_fwd_kernel<T, Acc, 2>, grid, dim3(kThreads), smem, xp, wptr, bias, yp, a); break;
    default: launch(direct_fwd_kernel<T, Acc, 1>, grid, dim3(kThreads), smem, xp, wptr, bias, yp, a);
  }
}

template <typename T, typename Acc>
void grad_input_gemm(const at::Tensor& gy, const at::Tensor& w, at::Tensor& gx, const ConvDims& d) {
  const int64_t phases = d.sh * d.sw;
  const int64_t mmax = d.n * ceil_div(d.h, d.sh) * ceil_div(d.w, d.sw);
  const int64_t kmax = d.kk * d.og;  // an upper bound of any phase's K
  TORCH_CHECK(kmax < (int64_t(1) << 31), "convkit::corr2d_backward (CUDA): Og*kh*kw must be below 2^31");
  at::Tensor wp = at::empty({d.groups, d.kk, d.og, d.cg}, w.options().dtype(c10::CppTypeToScalarType<Acc>::value));
  wp.copy_(w.view({d.groups, d.og, d.cg, d.kk}).permute({0, 3, 1, 2}));
  const TilePlan plan = plan_tiles(mmax, d.cg, kmax, d.groups * phases, std::is_same<Acc, double>::value,
                                   phases == 1 ? 32 : 1, 256, mmax * d.cg * d.groups * int64_t(sizeof(Acc)));
  const int64_t kchunk = plan.splits == 1 ? kmax : ceil_div(ceil_div(kmax, plan.splits), BK) * BK;
  const int64_t splits = ceil_div(kmax, kchunk);
  at::Tensor part = splits > 1 ? acc_empty<Acc>(splits * d.groups * d.cg * mmax, gx) : at::Tensor();
  auto fill = [&](auto& p) {
    p.dy = gy.const_data_ptr<T>();
    p.wp = wp.const_data_ptr<Acc>();
    p.gx = gx.mutable_data_ptr<T>();
    p.partial = splits > 1 ? part.mutable_data_ptr<Acc>() : nullptr;
    p.d = d;
    p.N = d.cg;
    p.phases = phases;
    p.splits = splits;
    p.kchunk = kchunk;
    p.div_og = FastDiv(d.og);
    run_gemm(p, plan, mmax, d.cg, d.groups * phases * splits);
  };
  if (d.og % BK == 0) {
    GradInputGemm<T, Acc, true> p{};
    fill(p);
  } else {
    GradInputGemm<T, Acc, false> p{};
    fill(p);
  }
  if (splits > 1) reduce_nchw<T, Acc>(part, nullptr, gx.mutable_data_ptr<T>(), gx.numel(), d.hw, d.c, d.cg, splits);
}

template <typename T, typename Acc>
void grad_input_direct(const at::Tensor& gy, const at::Tensor& w, at::Tensor& gx, const ConvDims& d) {
  TORCH_CHECK(d.h + d.pt < (int64_t(1) << 31) && d.w + d.pl < (int64_t(1) << 31) && d.kk < (int64_t(1) << 31),
              "convkit::corr2d_backward (CUDA): padded input sides and kh*kw must be below 2^31 for algo 'direct'");
  const int64_t step_h = d.sh / std::gcd(d.sh, d.dh), step_w = d.sw / std::gcd(d.sw, d.dw);
  launch(direct_grad_input_kernel<T, Acc>, dim3(static_cast<unsigned>(grid_for(gx.numel()))), dim3(kThreads), 0,
         gy.const_data_ptr<T>(), w.const_data_ptr<T>(), gx.mutable_data_ptr<T>(), d, step_h, step_w, gx.numel());
}

template <typename T, typename Acc>
void grad_weight_gemm(const at::Tensor& x, const at::Tensor& gy, at::Tensor& gw, const ConvDims& d) {
  const int64_t R = d.n * d.howo, kc = d.cg * d.kk;
  const TilePlan plan = plan_tiles(d.og, kc, R, d.groups, std::is_same<Acc, double>::value, 64, 512,
                                   d.o * kc * int64_t(sizeof(Acc)));
  const int64_t kchunk = plan.splits == 1 ? R : ceil_div(ceil_div(R, plan.splits), BK) * BK;
  const int64_t splits = ceil_div(R, kchunk);
  at::Tensor part = splits > 1 ? acc_empty<Acc>(splits * d.o * kc, gw) : at::Tensor();
  GradWeightGemm<T, Acc> p{};
  p.x = x.const_data_ptr<T>();
  p.dy = gy.const_data_ptr<T>();
  p.gw = gw.mutable_data_ptr<T>();
  p.partial = splits > 1 ? part.mutable_data_ptr<Acc>() : nullptr;
  p.d = d;
  p.M = d.og;
  p.N = kc;
  p.R = R;
  p.splits = splits;
  p.kchunk = kchunk;
  run_gemm(p, plan, d.og, kc, d.groups * splits);
  if (splits > 1) reduce_flat<T, Acc>(part, gw.mutable_data_ptr<T>(), gw.numel(), splits);
}

template <typename T, typename Acc>
void grad_weight_direct(const at::Tensor& x, const at::Tensor& gy, at::Tensor& gw, const ConvDims& d) {
  const int64_t tapchunks = ceil_div(d.kk, kTapChunk), blocks = d.o * d.cg * tapchunks;
  TORCH_CHECK(blocks < (int64_t(1) << 31), "convkit::corr2d_backward (CUDA): too many weights for algo='direct'");
  const int64_t rows = d.n * d.ho;
  int64_t splits = std::min<int64_t>(ceil_div(4 * sm_count(), blocks), ceil_div(rows * d.wo, 2048));
  splits = std::max<int64_t>(1, std::min<int64_t>({splits, rows, 65535}));
  const int64_t rows_per_split = ceil_div(rows, splits);
  splits = ceil_div(rows, rows_per_split);
  at::Tensor part = splits > 1 ? acc_empty<Acc>(splits * gw.numel(), gw) : at::Tensor();
  launch(direct_grad_weight_kernel<T, Acc>, dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(splits)),
         dim3(kThreads), 0, x.const_data_ptr<T>(), gy.const_data_ptr<T>(), gw.mutable_data_ptr<T>(),
         splits > 1 ? part.mutable_data_ptr<Acc>() : static_cast<Acc*>(nullptr), d, tapchunks, rows_per_split,
         splits);
  if (splits > 1) reduce_flat<T, Acc>(part, gw.mutable_data_ptr<T>(), gw.numel(), splits);
}

template <typename T, typename Acc>
void grad_bias(const at::Tensor& gy, at::Tensor& gb, const ConvDims& d) {
  const int64_t R = d.n * d.howo;
  int64_t splits = std::max<int64_t>(1, std::min<int64_t>(ceil_div(2 * sm_count(), d.o), ceil_div(R, 4096)));
  splits = std::min<int64_t>(splits, 65535);
  const int64_t chunk = ceil_div(R, splits);
  splits = ceil_div(R, chunk);
  TORCH_CHECK(d.o < (int64_t(1) << 31), "convkit::corr2d_backward (CUDA): too many output channels");
  at::Tensor part = splits > 1 ? acc_empty<Acc>(splits * d.o, gb) : at::Tensor();
  launch(grad_bias_kernel<T, Acc>, dim3(static_cast<unsigned>(d.o), static_cast<unsigned>(splits)), dim3(kThreads),
         0, gy.const_data_ptr<T>(), gb.mutable_data_ptr<T>(),
         splits > 1 ? part.mutable_data_ptr<Acc>() : static_cast<Acc*>(nullptr), d, chunk, splits);
  if (splits > 1) reduce_flat<T, Acc>(part, gb.mutable_data_ptr<T>(), d.o, splits);
}

// The algorithms CUDA implements: "auto", "direct", "implicit_gemm".
Algo cuda_algo(c10::string_view algo, const at::Tensor& input, const char* op) {
  const Algo a = parse_algo(algo);
  TORCH_CHECK(a == Algo::Auto || a == Algo::Direct || a == Algo::ImplicitGemm, "convkit::", op, ": algo '", algo,
              "' is not implemented on CUDA (input on ", input.device(),
              "); the CUDA kernels have 'auto', 'direct' and 'implicit_gemm'");
  return a;
}

}  // namespace
}  // namespace cuda

at::Tensor corr2d_cuda(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                       at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                       c10::string_view algo) {
  using namespace cuda;
  const Algo a = cuda_algo(algo, input, "corr2d");
  check_device("corr2d", "weight", weight, input);
  const bool has_bias = bias.has_value() && bias->defined();
  if (has_bias) check_device("corr2d", "bias", *bias, input);
  const ConvGeom geom = conv_geometry(input, weight, bias, stride, padding, dilation, groups);
  const ConvDims d = dims_of(geom);
  DeviceGuard device_guard(input.device());
  at::AutoDispatchBelowADInplaceOrView below_autograd;  // the ATen calls below are part of this kernel
  at::Tensor y = at::empty({d.n, d.o, d.ho, d.wo}, input.options().memory_format(at::MemoryFormat::Contiguous));
  if (y.numel() == 0) return y;
  const at::Tensor x = input.contiguous(), w = weight.contiguous();
  const at::Tensor b = has_bias ? bias->contiguous() : at::Tensor();
  if (d.cg == 0) {  // no input channels: the bias alone
    y.zero_();
    if (has_bias) y.add_(b.view({1, d.o, 1, 1}));
    return y;
  }
  const bool direct = a == Algo::Direct || (a == Algo::Auto && forward_prefers_direct(d));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "convkit_corr2d_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, true>;
    const scalar_t* bp = has_bias ? b.const_data_ptr<scalar_t>() : nullptr;
    if (direct)
      forward_direct<scalar_t, acc_t>(x, w, bp, y, d);
    else
      forward_gemm<scalar_t, acc_t>(x, w, bp, y, d);
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> corr2d_backward_cuda(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups, std::array<bool, 3> output_mask,
    c10::string_view algo) {
  using namespace cuda;
  const Algo a = cuda_algo(algo, input, "corr2d_backward");
  check_device("corr2d_backward", "weight", weight, input);
  check_device("corr2d_backward", "grad_output", grad_output, input);
  const ConvGeom geom = conv_geometry(input, weight, c10::nullopt, stride, padding, dilation, groups);
  const ConvDims d = dims_of(geom);
  check_corr2d_grad_output(grad_output, input, geom);
  DeviceGuard device_guard(input.device());
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const auto opts = input.options().memory_format(at::MemoryFormat::Contiguous);
  at::Tensor gx = output_mask[0] ? at::empty({d.n, d.c, d.h, d.w}, opts) : at::Tensor();
  at::Tensor gw = output_mask[1] ? at::empty({d.o, d.cg, d.kh, d.kw}, opts) : at::Tensor();
  at::Tensor gb = output_mask[2] ? at::empty({d.o}, opts) : at::Tensor();
  if (d.n == 0) {  // sums over an empty batch
    if (gw.defined()) gw.zero_();
    if (gb.defined()) gb.zero_();
    return {gx, gw, gb};
  }
  const at::Tensor gy = grad_output.contiguous();
  const at::Tensor x = output_mask[1] ? input.contiguous() : at::Tensor();
  const at::Tensor w = output_mask[0] ? weight.contiguous() : at::Tensor();
  const bool gx_direct = a == Algo::Direct || (a == Algo::Auto && grad_input_prefers_direct(d));
  const bool gw_direct = a == Algo::Direct || (a == Algo::Auto && grad_weight_prefers_direct(d));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, gy.scalar_type(), "convkit_corr2d_backward_cuda", [&] {
    using acc_t = at::acc_type<scalar_t, true>;
    if (output_mask[0] && gx.numel() > 0) {
      if (d.og == 0)  // no output channels: nothing flows back
        gx.zero_();
      else if (gx_direct)
        grad_input_direct<scalar_t, acc_t>(gy, w, gx, d);
      else
        grad_input_gemm<scalar_t, acc_t>(gy, w, gx, d);
    }
    if (output_mask[1] && gw.numel() > 0) {
      if (gw_direct)
        grad_weight_direct<scalar_t, acc_t>(x, gy, gw, d);
      else
        grad_weight_gemm<scalar_t, acc_t>(x, gy, gw, d);
    }
    if (output_mask[2] && gb.numel() > 0) grad_bias<scalar_t, acc_t>(gy, gb, d);
  });
  return {gx, gw, gb};
}

#ifndef CONVKIT_CUDA_EMULATE
TORCH_LIBRARY_IMPL(convkit, CUDA, m) {
  m.impl("corr2d", &corr2d_cuda);
  m.impl("corr2d_backward", &corr2d_backward_cuda);
}
#endif

}  // namespace convkit
