// CPU kernels for convkit::pool2d and convkit::pool2d_backward, with torch's semantics for every option
// (ties: the first maximum in row-major window order; NaN propagates with the last NaN's index; avg divisor
// with count_include_pad / ceil_mode / divisor_override as torch computes it). Pooling is memory-bound: every
// kernel reads its input once and writes its output once, and a task owns whole output (and grad_input)
// regions, so there are no atomics and results do not depend on the thread count.
//
// Kernels, and the bytes each moves (fp32 4 B/element, int64 indices 8 B):
//  * NCHW forward (max, avg), `plane_forward`: a task owns whole (n, c) planes; per output row, the interior
//    columns (every window tap inside the image) are computed L = 16 (fp32) outputs at a time along W: one
//    vector load per window tap for stride 1, two loads and one even-lane shuffle for stride 2; the edge
//    columns and other strides use the scalar reference `max_at` / `avg_at`. Overlapping windows re-read
//    rows that are still in L1, so memory traffic is input + output (+ indices).
//  * NCHW max without indices (inference), stride 1 or 2 along W, `plane_max_values`: a task owns whole
//    planes; each input row is reduced along W once, read in place (vectorised over every output column;
//    the blocks at the row's ends load with masks that fill -inf, no scalar edges), into a ring of kh rows,
//    then each output row is the max over its window rows. Traffic: input + output (P5 N=8 3.56 -> 2.43
//    -> 2.29 ms, P1 1.84 -> 1.56 ms, 2 threads).
//  * NCHW global average (window == plane, P4), `plane_sum`: one vector reduction per plane.
//  * NCHW avg backward, `plane_avg_backward`: a task owns whole grad_input planes: zero the plane (L2-resident),
//    then add grad_output / divisor to every window tap, L outputs at a time (stride 2 interleaves the values
//    with zeros). Exact 2-wide tiles (kw = sw = 2, kh = sh, no padding: P3), `plane_avg_backward_pairs`:
//    no zero fill, each grad_input element stored once (grad_output lanes duplicated into pairs; P3 N=8
//    backward 2.5 -> 1.15 ms). Max backward, `plane_max_backward`: zero the plane, scatter grad_output to
//    the saved indices (bounds-checked). Traffic: grad_output (+ indices) read once, grad_input written once.
//  * The NCHW forward kernels (`plane_forward`, `plane_max_values`) and the pair-tile avg backward prefetch
//    their input stream 2 KiB ahead in software (`prefetch_ahead`).
//  * channels_last (NHWC) forward, `nhwc_forward`: a task owns output rows (n, oh); every window tap is a
//    contiguous run of C channels, vectorised along C (max: registers per channel block; avg: sums of 4 L
//    channels in registers). Max backward, `nhwc_backward`: a task owns (n, block of kNhwcBlock channels)
//    of grad_input and zeroes it just ahead of the scatter of grad_output to the saved indices (a vector
//    form, comparing every tap with 16 int64 indices, measured 1.5-3x slower here); per output pixel one
//    vectorised pass checks its C indices and finds their maximum, so the scatter itself has no branch (P5
//    N=8 backward 5.0 -> 4.2 ms, P1 1.8 -> 1.6 ms). Avg backward, `nhwc_avg_backward`: a gather, each
//    grad_input element written once, divisors as Divider multiplications (P3 N=8 1.67 -> 1.0 ms).
// Indices are int64 flat h * W + w within the plane, in either layout (torch's convention). `return_indices`
// false (inference) skips writing them: max then moves input + output only.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "../common.h"
#include "kernels.h"
#include "output_cache.h"
#include "simd.h"

namespace convkit {
namespace {

constexpr int64_t kNhwcBlock = 64;  // channels per NHWC backward task

// Runs fn(begin, end) over [0, tasks), `cost` elements of work per task.
template <typename Fn>
void parallel_tasks(int64_t tasks, int64_t cost, const Fn& fn) {
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(cost, 1));
  at::parallel_for(0, tasks, grain, fn);
}

// Software prefetch of the input stream, kPrefetchBytes ahead of the row being read (into the next planes of
// the task near a plane's end; a prefetch never faults). The hardware prefetchers left the NCHW kernels
// waiting on L3 and memory: P3 (avg 2x2/s2), 1 thread, input in L3: 0.41 -> 0.26 ms; N=8, 2 threads:
// 1.64 -> 1.2 ms.
constexpr int64_t kPrefetchBytes = 2048;

template <typename T>
inline void prefetch_ahead(const T* row, int64_t n) {
  const char* p = reinterpret_cast<const char*>(row) + kPrefetchBytes;
  for (int64_t b = 0; b < n * static_cast<int64_t>(sizeof(T)); b += 64) __builtin_prefetch(p + b);
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
  int64_t div = g.divisor ? g.divisor : g.count_include_pad ? pool_size : (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, div == 0 ? 1 : div};  // div == 0 only for an empty window, whose sum is 0
}

// Max window taps along one axis: first tap index start (>= 0, stepping over padding by the dilation) and
// the end (exclusive) of the input range.
inline void max_taps(int64_t o, int64_t s, int64_t p, int64_t k, int64_t d, int64_t n, int64_t& start, int64_t& end) {
  start = o * s - p;
  end = std::min(start + (k - 1) * d + 1, n);
  while (start < 0) start += d;
}

// ---------------------------------------------------------------- scalar reference (edges, generic shapes)
template <typename T>
inline void max_at(const T* xp, const PoolGeom& g, int64_t oh, int64_t ow, T& val, int64_t& idx) {
  int64_t h0, h1, w0, w1;
  max_taps(oh, g.sh, g.ph, g.kh, g.dh, g.h, h0, h1);
  max_taps(ow, g.sw, g.pw, g.kw, g.dw, g.w, w0, w1);
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
  val = best;
  idx = best_i;
}

template <typename T>
inline T avg_at(const T* xp, const PoolGeom& g, int64_t oh, int64_t ow) {
  const AvgWindow a = avg_window(g, oh, ow);
  T s = 0;
  for (int64_t ih = a.h0; ih < a.h1; ++ih)
    for (int64_t iw = a.w0; iw < a.w1; ++iw) s += xp[ih * g.w + iw];
  return s / static_cast<T>(a.div);
}

// v / div, as a multiplication when div is a power of two (the same correctly rounded result: scaling by
// 2^-k is exact either way) and a division otherwise. A 512-bit division costs about 10 cycles per vector
// here, which showed in the channels_last avg kernels (2x2 windows: div 4).
template <typename T>
struct Divider {
  typename Simd<T>::V d;
  bool mul;
  explicit Divider(int64_t div) : mul(div > 0 && (div & (div - 1)) == 0) {
    d = splat<T>(mul ? T(1) / static_cast<T>(div) : static_cast<T>(div));
  }
  typename Simd<T>::V operator()(const typename Simd<T>::V& v) const { return mul ? v * d : v / d; }
};

// The max rule of every vector kernel, as max_at's scalar one: v wins over the running best when it is
// greater or NaN (strict >: the first maximum in scan order stays; the last NaN wins).
template <typename T>
inline typename Simd<T>::I max_wins(const typename Simd<T>::V& v, const typename Simd<T>::V& best) {
  return (v > best) | (v != v);
}

// ---------------------------------------------------------------- NCHW, vectorised along W
// A stride-2 load pair covers 2L elements of which the last is unused: with AVX-512 its second load is
// masked (no access past the last tap, faults suppressed); portable builds keep that element inside the row.
#if defined(__AVX512F__)
constexpr int64_t kStride2Extra = 0;
#else
constexpr int64_t kStride2Extra = 1;
#endif
// Elements a tap<T, S> reads past its last used one.
constexpr int64_t tap_extra(int64_t s) { return s == 2 ? kStride2Extra : 0; }

// Output columns [lo, hi) whose every window tap is inside the row (and, portable builds, the extra element
// a stride-2 load pair reads); vectorised when the stride is 1 or 2, there are at least L of them and plane
// indices fit the lane-sized integer.
template <typename T>
struct ColSplit {
  int64_t lo = 0, hi = 0;
  int stride = 0;  // 1 or 2: vector path; 0: scalar only
};

template <typename T>
ColSplit<T> col_split(const PoolGeom& g) {
  ColSplit<T> c;
  if (g.sw > 2 || g.h * g.w >= std::numeric_limits<typename Simd<T>::IT>::max()) return c;
  const int64_t last = g.w - 1 - tap_extra(g.sw) - (g.kw - 1) * g.dw + g.pw;  // ow * sw <= last
  c.lo = (g.pw + g.sw - 1) / g.sw;
  c.hi = last < 0 ? 0 : std::min(g.wo, last / g.sw + 1);
  if (c.hi - c.lo >= Simd<T>::L) c.stride = static_cast<int>(g.sw);
  return c;
}

// The L inputs p[0], p[S], ..., p[(L-1) S] for S = 1 or 2 (stride 2: two loads, one even-lane shuffle).
template <typename T, int S>
inline typename Simd<T>::V tap(const T* p) {
  if constexpr (S == 1) {
    return vload(p);
  } else {
    static_assert(S == 2, "stride 1 or 2");
    constexpr typename Simd<T>::I even = lane_ramp<T>(2, 0);
#if defined(__AVX512F__)
    const typename Simd<T>::V hi = Avx512<T>::loadz(lanes_mask<T>(Simd<T>::L - 1), p + Simd<T>::L);
#else
    const typename Simd<T>::V hi = vload(p + Simd<T>::L);
#endif
    return __builtin_shuffle(vload(p), hi, even);
  }
}

template <typename T>
inline void store_indices(int64_t* dst, const typename Simd<T>::I& v) {
  const typename Simd<T>::I64 w = __builtin_convertvector(v, typename Simd<T>::I64);
  std::memcpy(dst, &w, sizeof(w));
}

// Max of outputs [ow0, ow0 + L) of row oh, window rows ih0 + i * dh for i in [i_lo, i_hi) (all inside).
template <typename T, int S, bool IDX>
inline void max_vec(const T* xp, T* yrow, int64_t* irow, const PoolGeom& g, int64_t ih0, int64_t i_lo, int64_t i_hi,
                    int64_t ow0) {
  using V = typename Simd<T>::V;
  using I = typename Simd<T>::I;
  const I ramp = lane_ramp<T>(S, 0);
  const int64_t w0 = ow0 * S - g.pw;
  V best = splat<T>(-std::numeric_limits<T>::infinity());
  I bi = ramp + static_cast<typename Simd<T>::IT>((ih0 + i_lo * g.dh) * g.w + w0);
  for (int64_t i = i_lo; i < i_hi; ++i) {
    const int64_t ih = ih0 + i * g.dh;
    const T* row = xp + ih * g.w;
    for (int64_t j = 0; j < g.kw; ++j) {
      const int64_t s = w0 + j * g.dw;
      const V v = tap<T, S>(row + s);
      const I m = max_wins<T>(v, best);
      best = m ? v : best;
      if constexpr (IDX) bi = m ? ramp + static_cast<typename Simd<T>::IT>(ih * g.w + s) : bi;
    }
  }
  vstore(yrow + ow0, best);
  if constexpr (IDX) store_indices<T>(irow + ow0, bi);
}

template <typename T, int S>
inline void avg_vec(const T* xp, T* yrow, const PoolGeom& g, int64_t h0, int64_t h1, const Divider<T>& div,
                    int64_t ow0) {
  using V = typename Simd<T>::V;
  const int64_t w0 = ow0 * S - g.pw;
  V s = splat<T>(0);
  for (int64_t ih = h0; ih < h1; ++ih) {
    const T* row = xp + ih * g.w + w0;
    for (int64_t j = 0; j < g.kw; ++j) s += tap<T, S>(row + j);  // row-major, as torch sums
  }
  vstore(yrow + ow0, div(s));
}

// One plane of the forward. S: 1 or 2 (vector interior) or 0 (scalar everywhere).
template <typename T, int S>
void plane_forward(const T* xp, T* yp, int64_t* ip, const PoolGeom& g, const ColSplit<T>& cs) {
  constexpr int64_t L = Simd<T>::L;
  const int64_t lo = S ? cs.lo : g.wo, hi = S ? cs.hi : g.wo;
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    T* yrow = yp + oh * g.wo;
    int64_t* irow = ip ? ip + oh * g.wo : nullptr;
    // each output row moves sh rows down the input: prefetch that many rows' bytes, 2 KiB ahead of row oh*sh
    prefetch_ahead(xp + oh * g.sh * g.w, g.sh * g.w);
    auto scalar = [&](int64_t ow) {
      if (g.is_max) {
        T v;
        int64_t i;
        max_at(xp, g, oh, ow, v, i);
        yrow[ow] = v;
        if (irow) irow[ow] = i;
      } else {
        yrow[ow] = avg_at(xp, g, oh, ow);
      }
    };
    for (int64_t ow = 0; ow < lo; ++ow) scalar(ow);
    for (int64_t ow = hi; ow < g.wo; ++ow) scalar(ow);
    if constexpr (S != 0) {
      // window rows inside the image (the same for every column of this output row)
      const int64_t ih0 = oh * g.sh - g.ph;
      const int64_t i_lo = ih0 >= 0 ? 0 : (-ih0 + g.dh - 1) / g.dh;
      const int64_t i_hi = ih0 > g.h - 1 ? 0 : std::min(g.kh, (g.h - 1 - ih0) / g.dh + 1);
      if (i_lo >= i_hi) {
        for (int64_t ow = lo; ow < hi; ++ow) scalar(ow);
        continue;
      }
      if (g.is_max) {
        // the last block overlaps the previous one: recomputing a few outputs is cheaper than a scalar tail
        for (int64_t ow0 = lo; ow0 < hi; ow0 += L) {
          if (irow)
            max_vec<T, S, true>(xp, yrow, irow, g, ih0, i_lo, i_hi, std::min(ow0, hi - L));
          else
            max_vec<T, S, false>(xp, yrow, irow, g, ih0, i_lo, i_hi, std::min(ow0, hi - L));
        }
      } else {
        const AvgWindow a = avg_window(g, oh, lo);  // interior columns: the same divisor along the row
        const Divider<T> div(a.div);
        for (int64_t ow0 = lo; ow0 < hi; ow0 += L) avg_vec<T, S>(xp, yrow, g, a.h0, a.h1, div, std::min(ow0, hi - L));
      }
    }
  }
}

// Max without indices (inference), stride 1 or 2 along W, any window / dilation / padding / ceil_mode: the
// window is separable, so a plane is done in two vector passes that need no scalar edges. Each input row is
// reduced along W into `hmax` (all Wo columns), read in place; the blocks whose taps reach past the row's
// ends load with masks that fill those lanes with -inf (a padded tap never wins: an all-padding window is
// -inf, as in max_at). Output row oh is then the max over its window rows' hmax rows. hmax rows live in a
// ring of (kh - 1) * dh + 1 slots tagged with their input row, so each is computed once per plane however
// many output rows read it. Ties and NaN follow max_at's row-major scan (strict > keeps the first maximum,
// a NaN replaces the running value), so results equal the scalar reference bit for bit. Per output vector
// of a 3x3 window: 6 loads and 4 max steps, against 9 loads and 9 dependent max steps (plus scalar edges)
// in plane_forward; P5 (3x3/s1) was compute-bound there at 15 GB/s with the plane in cache. (Rows were
// first copied into a -inf padded buffer: the vector loads that followed the copy's stores stalled on
// store forwarding, 17 % of P5's time.)
template <typename T>
struct MaxRows {
  std::vector<T> ring;
  std::vector<int64_t> tag;
  std::vector<const T*> rows;  // one output row's window rows (kh at most)
  int64_t wo_r = 0, slots = 0;
  explicit MaxRows(const PoolGeom& g) {
    constexpr int64_t L = Simd<T>::L;
    wo_r = (g.wo + L - 1) / L * L;
    slots = (g.kh - 1) * g.dh + 1;
    ring.resize(slots * wo_r);
    rows.resize(g.kh);
  }
};

// tap<T, S>(row + s) with -inf in the lanes whose element lies outside [0, w); nothing outside is read.
template <typename T, int S>
inline typename Simd<T>::V tap_or_ninf(const T* row, int64_t s, int64_t w) {
  constexpr int64_t L = Simd<T>::L;
  constexpr T ninf = -std::numeric_limits<T>::infinity();
#if defined(__AVX512F__)
  using A = Avx512<T>;
  auto load = [&](int64_t at, int64_t n) -> typename Simd<T>::V {  // lanes k < n with 0 <= at + k < w
    const int64_t k0 = std::clamp<int64_t>(-at, 0, n), k1 = std::clamp<int64_t>(w - at, k0, n);
    const auto m = static_cast<typename A::M>(lanes_mask<T>(k1) & ~lanes_mask<T>(k0));
    return A::loadm(A::splat(ninf), m, row + at);
  };
  if constexpr (S == 1) {
    return load(s, L);
  } else {
    constexpr typename Simd<T>::I even = lane_ramp<T>(2, 0);
    return __builtin_shuffle(load(s, L), load(s + L, L - 1), even);
  }
#else
  typename Simd<T>::V r;
  for (int64_t k = 0; k < L; ++k) r[k] = s + k * S >= 0 && s + k * S < w ? row[s + k * S] : ninf;
  return r;
#endif
}

template <typename T>
inline typename Simd<T>::V max_step(const typename Simd<T>::V& best, const typename Simd<T>::V& v) {
  return max_wins<T>(v, best) ? v : best;
}

template <typename T, int S>
void plane_max_values(const T* xp, T* yp, const PoolGeom& g, MaxRows<T>& mr) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  const V ninf = splat<T>(-std::numeric_limits<T>::infinity());
  mr.tag.assign(mr.slots, -1);
  auto hrow = [&](int64_t ih) -> const T* {  // hmax of input row ih, computed on first use
    const int64_t slot = ih % mr.slots;
    T* dst = mr.ring.data() + slot * mr.wo_r;
    if (mr.tag[slot] == ih) return dst;
    mr.tag[slot] = ih;
    const T* xrow = xp + ih * g.w;
    prefetch_ahead(xrow, g.w);
    for (int64_t ow0 = 0; ow0 < mr.wo_r; ow0 += L) {
      const int64_t s = ow0 * S - g.pw;  // the first tap of the block's first column
      auto reduce = [&](auto load) {  // the kw taps in order: max_at's scan
        V best = load(s);
        for (int64_t j = 1; j < g.kw; ++j) best = max_step<T>(best, load(s + j * g.dw));
        vstore(dst + ow0, best);
      };
      if (s >= 0 && s + (L - 1) * S + tap_extra(S) + (g.kw - 1) * g.dw < g.w)
        reduce([&](int64_t at) { return tap<T, S>(xrow + at); });
      else
        reduce([&](int64_t at) { return tap_or_ninf<T, S>(xrow, at, g.w); });
    }
    return dst;
  };
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    const int64_t ih0 = oh * g.sh - g.ph;
    const int64_t i_lo = ih0 >= 0 ? 0 : (-ih0 + g.dh - 1) / g.dh;
    const int64_t i_hi = ih0 > g.h - 1 ? 0 : std::min(g.kh, (g.h - 1 - ih0) / g.dh + 1);
    T* yrow = yp + oh * g.wo;
    const T** const rows = mr.rows.data();
    const int64_t nrows = std::max<int64_t>(0, i_hi - i_lo);
    for (int64_t i = 0; i < nrows; ++i) rows[i] = hrow(ih0 + (i_lo + i) * g.dh);
    for (int64_t ow0 = 0; ow0 < g.wo; ow0 += L) {
      V best = ninf;
      for (int64_t i = 0; i < nrows; ++i) best = max_step<T>(best, vload(rows[i] + ow0));
      if (ow0 + L <= g.wo) {
        vstore(yrow + ow0, best);
      } else {
        T tmp[L];
        vstore(tmp, best);
        std::memcpy(yrow + ow0, tmp, (g.wo - ow0) * sizeof(T));
      }
    }
  }
}

// Global average: the window is the whole plane (no padding), one output per plane.
template <typename T>
inline T plane_sum(const T* xp, int64_t n) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  V acc = splat<T>(0);
  int64_t i = 0;
  for (; i + L <= n; i += L) acc += vload(xp + i);
  T s = 0;
  for (int64_t l = 0; l < L; ++l) s += acc[l];
  for (; i < n; ++i) s += xp[i];
  return s;
}

template <typename T>
void nchw_forward(const T* x, T* y, int64_t* idx, const PoolGeom& g) {
  const int64_t planes = g.n * g.c, plane = g.h * g.w, oplane = g.ho * g.wo;
  if (!g.is_max && g.ho == 1 && g.wo == 1 && g.kh == g.h && g.kw == g.w && g.ph == 0 && g.pw == 0) {
    const T div = static_cast<T>(avg_window(g, 0, 0).div);
    parallel_tasks(planes, plane, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) y[p] = plane_sum(x + p * plane, plane) / div;
    });
    return;
  }
  if (g.is_max && !idx && (g.sw == 1 || g.sw == 2)) {
    parallel_tasks(planes, oplane * g.kh * g.kw, [&](int64_t b, int64_t e) {
      MaxRows<T> mr(g);
      for (int64_t p = b; p < e; ++p) {
        if (g.sw == 1)
          plane_max_values<T, 1>(x + p * plane, y + p * oplane, g, mr);
        else
          plane_max_values<T, 2>(x + p * plane, y + p * oplane, g, mr);
      }
    });
    return;
  }
  const ColSplit<T> cs = col_split<T>(g);
  parallel_tasks(planes, oplane * g.kh * g.kw, [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const T* xp = x + p * plane;
      T* yp = y + p * oplane;
      int64_t* ip = idx ? idx + p * oplane : nullptr;
      switch (cs.stride) {
        case 1: plane_forward<T, 1>(xp, yp, ip, g, cs); break;
        case 2: plane_forward<T, 2>(xp, yp, ip, g, cs); break;
        default: plane_forward<T, 0>(xp, yp, ip, g, cs);
      }
    }
  });
}

// Shuffle masks that spread lanes first, first + 1, ... of a vector over lane pairs: lane k takes
// first + k / 2; with odd_zero its odd lanes take lane 0 of the second shuffle operand (a zero vector).
template <typename T>
constexpr typename Simd<T>::I pair_mask(int64_t first, bool odd_zero) {
  return lane_formula<T>([first, odd_zero](int64_t k) { return odd_zero && k % 2 ? Simd<T>::L : first + k / 2; });
}

// gx[p[0]] += d[0], gx[p[S]] += d[1], ...: stride 2 spreads d over 2L elements, interleaved with zeros.
template <typename T, int S>
inline void add_taps(T* p, const typename Simd<T>::V& d) {
  if constexpr (S == 1) {
    vstore(p, vload(p) + d);
  } else {
    constexpr int64_t L = Simd<T>::L;
    const typename Simd<T>::V z = splat<T>(0);
    // lanes of [d, z]: even output lanes take d[k / 2] (lo) or d[L / 2 + k / 2] (hi), odd ones a zero
    constexpr typename Simd<T>::I lo = pair_mask<T>(0, true), hi = pair_mask<T>(L / 2, true);
    vstore(p, vload(p) + __builtin_shuffle(d, z, lo));
#if defined(__AVX512F__)  // the top lane (a zero) may lie past the row: not touched (kStride2Extra)
    using A = Avx512<T>;
    const auto m = lanes_mask<T>(L - 1);
    A::store(p + L, m, A::add(A::loadz(m, p + L), __builtin_shuffle(d, z, hi)));
#else
    vstore(p + L, vload(p + L) + __builtin_shuffle(d, z, hi));
#endif
  }
}

template <typename T, int S>
void plane_avg_backward(const T* gyp, T* gp, const PoolGeom& g, const ColSplit<T>& cs) {
  constexpr int64_t L = Simd<T>::L;
  std::fill(gp, gp + g.h * g.w, T(0));
  const int64_t lo = S ? cs.lo : g.wo, hi = S ? cs.hi : g.wo;
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    const T* gyrow = gyp + oh * g.wo;
    auto scalar = [&](int64_t ow) {
      const AvgWindow a = avg_window(g, oh, ow);
      const T v = gyrow[ow] / static_cast<T>(a.div);
      for (int64_t ih = a.h0; ih < a.h1; ++ih)
        for (int64_t iw = a.w0; iw < a.w1; ++iw) gp[ih * g.w + iw] += v;
    };
    for (int64_t ow = 0; ow < lo; ++ow) scalar(ow);
    for (int64_t ow = hi; ow < g.wo; ++ow) scalar(ow);
    if constexpr (S != 0) {
      // the last block overlaps the previous one with those lanes zeroed: adding 0 changes nothing
      const AvgWindow a = avg_window(g, oh, lo);
      const Divider<T> div(a.div);
      for (int64_t b = lo; b < hi; b += L) {
        const int64_t ow0 = std::min(b, hi - L);
        typename Simd<T>::V d = div(vload(gyrow + ow0));
        if (ow0 < b) d = (lane_ramp<T>(1, ow0) >= static_cast<typename Simd<T>::IT>(b)) ? d : splat<T>(0);
        for (int64_t ih = a.h0; ih < a.h1; ++ih) {
          T* row = gp + ih * g.w + ow0 * S - g.pw;
          for (int64_t j = 0; j < g.kw; ++j) add_taps<T, S>(row + j, d);
        }
      }
    }
  }
}

template <typename T>
void plane_max_backward(const T* gyp, const int64_t* ip, T* gp, const PoolGeom& g) {
  const int64_t plane = g.h * g.w;
  std::fill(gp, gp + plane, T(0));
  for (int64_t k = 0; k < g.ho * g.wo; ++k) {
    const int64_t i = ip[k];
    TORCH_CHECK(i >= 0 && i < plane, "convkit::pool2d_backward: index ", i, " out of range for a ", g.h, "x", g.w,
                " plane");
    gp[i] += gyp[k];
  }
}

// avg backward when the windows tile the plane exactly along W in pairs (kw = sw = 2) and along H (kh = sh),
// with no padding (the DenseNet transition, P3): every grad_input element is written once with its
// window's grad_output / divisor, each value duplicated into its lane pair; no zero fill, no
// read-modify-write. (The general path's overlapping vector read-modify-writes of neighbouring taps
// stalled on store forwarding: 74 % of P3's backward.) The last block overlaps the one before it and
// rewrites the same values. + 0 gives -0.0 the +0.0 the general path's 0 + d gives.
template <typename T>
bool avg_backward_tiles_pairs(const PoolGeom& g) {
  return !g.is_max && g.sw == 2 && g.kw == 2 && g.dw == 1 && g.pw == 0 && g.ph == 0 && g.kh == g.sh &&
         g.dh == 1 && g.w == 2 * g.wo && g.h == g.ho * g.sh && g.wo >= Simd<T>::L;
}

template <typename T>
void plane_avg_backward_pairs(const T* gyp, T* gp, const PoolGeom& g, const Divider<T>& div) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  constexpr typename Simd<T>::I lo = pair_mask<T>(0, false), hi = pair_mask<T>(L / 2, false);
  const V zero = splat<T>(0);
  for (int64_t oh = 0; oh < g.ho; ++oh) {
    const T* gyrow = gyp + oh * g.wo;
    prefetch_ahead(gyrow, g.wo);
    for (int64_t b = 0; b < g.wo; b += L) {
      const int64_t ow0 = std::min(b, g.wo - L);
      const V d = div(vload(gyrow + ow0)) + zero;
      const V dlo = __builtin_shuffle(d, lo), dhi = __builtin_shuffle(d, hi);
      for (int64_t i = 0; i < g.kh; ++i) {
        T* row = gp + (oh * g.sh + i) * g.w + 2 * ow0;
        vstore(row, dlo);
        vstore(row + L, dhi);
      }
    }
  }
}

template <typename T>
void nchw_backward(const T* gy, const int64_t* idx, T* gx, const PoolGeom& g) {
  const int64_t planes = g.n * g.c, plane = g.h * g.w, oplane = g.ho * g.wo;
  if (avg_backward_tiles_pairs<T>(g)) {
    const Divider<T> div(avg_window(g, 0, 0).div);
    parallel_tasks(planes, plane, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) plane_avg_backward_pairs(gy + p * oplane, gx + p * plane, g, div);
    });
    return;
  }
  const ColSplit<T> cs = col_split<T>(g);
  parallel_tasks(planes, plane + oplane * (g.is_max ? 1 : g.kh * g.kw), [&](int64_t b, int64_t e) {
    for (int64_t p = b; p < e; ++p) {
      const T* gyp = gy + p * oplane;
      T* gp = gx + p * plane;
      if (g.is_max) {
        plane_max_backward(gyp, idx + p * oplane, gp, g);
      } else {
        switch (cs.stride) {
          case 1: plane_avg_backward<T, 1>(gyp, gp, g, cs); break;
          case 2: plane_avg_backward<T, 2>(gyp, gp, g, cs); break;
          default: plane_avg_backward<T, 0>(gyp, gp, g, cs);
        }
      }
    }
  });
}

// ---------------------------------------------------------------- channels_last (NHWC), vectorised along C
template <typename T>
void nhwc_forward(const T* x, T* y, int64_t* idx, const PoolGeom& g) {
  using V = typename Simd<T>::V;
  using I = typename Simd<T>::I;
  constexpr int64_t L = Simd<T>::L;
  const int64_t C = g.c;
  const bool vec_idx = g.h * g.w < std::numeric_limits<typename Simd<T>::IT>::max();
  parallel_tasks(g.n * g.ho, g.wo * C * g.kh * g.kw, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const int64_t n = r / g.ho, oh = r % g.ho;
      const T* xn = x + n * g.h * g.w * C;
      for (int64_t ow = 0; ow < g.wo; ++ow) {
        T* yo = y + (r * g.wo + ow) * C;
        int64_t* io = idx ? idx + (r * g.wo + ow) * C : nullptr;
        if (g.is_max) {
          int64_t c = 0, h0, h1, w0, w1;
          max_taps(oh, g.sh, g.ph, g.kh, g.dh, g.h, h0, h1);
          max_taps(ow, g.sw, g.pw, g.kw, g.dw, g.w, w0, w1);
          if (vec_idx) {
            for (; c + L <= C; c += L) {
              V best = splat<T>(-std::numeric_limits<T>::infinity());
              I bi = lane_ramp<T>(0, h0 * g.w + w0);
              for (int64_t ih = h0; ih < h1; ih += g.dh)
                for (int64_t iw = w0; iw < w1; iw += g.dw) {
                  const V v = vload(xn + (ih * g.w + iw) * C + c);
                  const I m = max_wins<T>(v, best);
                  best = m ? v : best;
                  bi = m ? lane_ramp<T>(0, ih * g.w + iw) : bi;
                }
              vstore(yo + c, best);
              if (io) store_indices<T>(io + c, bi);
            }
          }
          for (; c < C; ++c) {
            T best = -std::numeric_limits<T>::infinity();
            int64_t bi = h0 * g.w + w0;
            for (int64_t ih = h0; ih < h1; ih += g.dh)
              for (int64_t iw = w0; iw < w1; iw += g.dw) {
                const T v = xn[(ih * g.w + iw) * C + c];
                if (v > best || std::isnan(v)) {
                  best = v;
                  bi = ih * g.w + iw;
                }
              }
            yo[c] = best;
            if (io) io[c] = bi;
          }
        } else {
          const AvgWindow a = avg_window(g, oh, ow);
          const Divider<T> div(a.div);
          // Sums of 4 L channels held in registers, the taps in row-major order (torch's order per element),
          // each tap a contiguous 4 L-channel run; then the rest L at a time and a scalar tail. (Summing whole
          // C-runs into the output row instead costs a read-modify-write of the row per tap.)
          auto block = [&](int64_t c, auto nv) {
            constexpr int K = decltype(nv)::value;
            V s[K];
            for (int k = 0; k < K; ++k) s[k] = splat<T>(0);
            for (int64_t ih = a.h0; ih < a.h1; ++ih)
              for (int64_t iw = a.w0; iw < a.w1; ++iw) {
                const T* xt = xn + (ih * g.w + iw) * C + c;
                for (int k = 0; k < K; ++k) s[k] += vload(xt + k * L);
              }
            for (int k = 0; k < K; ++k) vstore(yo + c + k * L, div(s[k]));
          };
          int64_t c = 0;
          for (; c + 4 * L <= C; c += 4 * L) block(c, std::integral_constant<int, 4>{});
          for (; c + L <= C; c += L) block(c, std::integral_constant<int, 1>{});
          for (; c < C; ++c) {
            T s = 0;
            for (int64_t ih = a.h0; ih < a.h1; ++ih)
              for (int64_t iw = a.w0; iw < a.w1; ++iw) s += xn[(ih * g.w + iw) * C + c];
            yo[c] = s / static_cast<T>(a.div);
          }
        }
      }
    }
  });
}

inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// channels_last avg backward as a gather: a task owns input rows (n, ih) of grad_input and writes each
// element once, the sum over the windows that cover it of grad_output / divisor (vectorised along C): no
// zero fill, no read-modify-write. Covering outputs: oh with oh*sh - ph <= ih < oh*sh - ph + kh (the
// clipped window of avg_window contains exactly these), taken in ascending (oh, ow) order.
template <typename T>
void nhwc_avg_backward(const T* gy, T* gx, const PoolGeom& g) {
  using V = typename Simd<T>::V;
  constexpr int64_t L = Simd<T>::L;
  const int64_t C = g.c;
  auto cover = [](int64_t i, int64_t p, int64_t k, int64_t s, int64_t no, int64_t& lo, int64_t& hi) {
    lo = std::max<int64_t>(0, floor_div(i + p - k, s) + 1);
    hi = std::min<int64_t>(no, floor_div(i + p, s) + 1);
  };
  parallel_tasks(g.n * g.h, g.w * C * std::max<int64_t>(1, g.kh * g.kw / (g.sh * g.sw)), [&](int64_t b, int64_t e) {
    struct Src {
      const T* p;
      Divider<T> div;  // a multiplication for power-of-two divisors (P3's 4): a vector division costs ~10 cycles
      T d;
    };
    std::vector<Src> srcs;
    for (int64_t r = b; r < e; ++r) {
      const int64_t n = r / g.h, ih = r % g.h;
      int64_t oh0, oh1;
      cover(ih, g.ph, g.kh, g.sh, g.ho, oh0, oh1);
      for (int64_t iw = 0; iw < g.w; ++iw) {
        int64_t ow0, ow1;
        cover(iw, g.pw, g.kw, g.sw, g.wo, ow0, ow1);
        srcs.clear();
        for (int64_t oh = oh0; oh < oh1; ++oh)
          for (int64_t ow = ow0; ow < ow1; ++ow) {
            const int64_t div = avg_window(g, oh, ow).div;
            srcs.push_back({gy + ((n * g.ho + oh) * g.wo + ow) * C, Divider<T>(div), static_cast<T>(div)});
          }
        T* dst = gx + (r * g.w + iw) * C;
        int64_t c = 0;
        for (; c + L <= C; c += L) {
          V acc = splat<T>(0);
          for (const Src& sd : srcs) acc += sd.div(vload(sd.p + c));
          vstore(dst + c, acc);
        }
        for (; c < C; ++c) {
          T acc = 0;
          for (const Src& sd : srcs) acc += sd.p[c] / sd.d;
          dst[c] = acc;
        }
      }
    }
  });
}

// channels_last max backward: a task owns (n, block of kNhwcBlock channels) of grad_input.
template <typename T>
void nhwc_backward(const T* gy, const int64_t* idx, T* gx, const PoolGeom& g) {
  if (!g.is_max) return nhwc_avg_backward(gy, gx, g);
  // Tasks own whole images (one contiguous zero fill) when there are enough images to go round, else
  // blocks of kNhwcBlock channels; each element's sum runs in output order either way.
  const int64_t C = g.c, plane = g.h * g.w;
  const int64_t cblock = g.n >= 2 * at::get_num_threads() ? C : kNhwcBlock, blocks = (C + cblock - 1) / cblock;
  parallel_tasks(g.n * blocks, (plane + g.ho * g.wo) * std::min(C, cblock), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t n = t / blocks, c0 = t % blocks * cblock, c1 = std::min(C, c0 + cblock);
      T* gn = gx + n * plane * C;
      // Pixels [0, zq) of this task's channels are zeroed. The zero fill runs just ahead of the scatter (to
      // the pixel an index needs), so the scatter's read-modify-write finds its lines in cache; a whole
      // image zeroed first (3 MiB on P1/P2) would have left L2 before the scatter reached it. Correct for
      // any in-plane index: a pixel behind the frontier is zeroed already, one beyond extends it.
      int64_t zq = 0;
      auto zero_to = [&](int64_t q1) {
        if (c0 == 0 && c1 == C)
          std::fill(gn + zq * C, gn + q1 * C, T(0));
        else
          for (int64_t q = zq; q < q1; ++q) std::fill(gn + q * C + c0, gn + q * C + c1, T(0));
        zq = q1;
      };
      for (int64_t o = n * g.ho * g.wo * C; o < (n + 1) * g.ho * g.wo * C; o += C) {
        // one pixel's indices checked and their maximum found first (a vectorised pass over a run that then
        // stays in L1), so that the scatter below has no branch per element
        const int64_t* io = idx + o;
        int64_t mx = -1;
        uint64_t bad = 0;
        for (int64_t c = c0; c < c1; ++c) {
          mx = std::max(mx, io[c]);
          bad |= static_cast<uint64_t>(io[c]) >= static_cast<uint64_t>(plane);
        }
        if (bad)
          for (int64_t c = c0; c < c1; ++c)
            TORCH_CHECK(io[c] >= 0 && io[c] < plane, "convkit::pool2d_backward: index ", io[c],
                        " out of range for a ", g.h, "x", g.w, " plane");
        if (mx >= zq) zero_to(mx + 1);
        const T* go = gy + o;
        for (int64_t c = c0; c < c1; ++c) gn[io[c] * C + c] += go[c];
      }
      zero_to(plane);
    }
  });
}

// channels_last in, channels_last out (as torch does); anything else is computed as NCHW.
inline bool is_channels_last(const at::Tensor& t) {
  return t.is_contiguous(at::MemoryFormat::ChannelsLast) && !t.is_contiguous();
}

}  // namespace

namespace {

// The forward; the indices tensor is created only when `indices` is given (max with return_indices).
at::Tensor pool2d_forward(const at::Tensor& input, const PoolGeom& g, at::Tensor* indices) {
  const auto ct = compute_type(input.scalar_type());
  const bool cl = is_channels_last(input);
  const auto fmt = cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const at::Tensor x = as_compute(input, ct, fmt);
  at::Tensor y = cached_empty({g.n, g.c, g.ho, g.wo}, x.options(), fmt);
  int64_t* ip = nullptr;
  if (indices) {
    *indices = cached_empty({g.n, g.c, g.ho, g.wo}, x.options().dtype(at::kLong), fmt);
    ip = indices->mutable_data_ptr<int64_t>();
  }
  if (y.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES(ct, "convkit_pool2d_cpu", [&] {
      const scalar_t* xp = x.const_data_ptr<scalar_t>();
      scalar_t* yp = y.mutable_data_ptr<scalar_t>();
      if (cl)
        nhwc_forward<scalar_t>(xp, yp, ip, g);
      else
        nchw_forward<scalar_t>(xp, yp, ip, g);
    });
  }
  return as_dtype(y, input.scalar_type());
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> pool2d_cpu(const at::Tensor& input, c10::string_view mode, at::IntArrayRef kernel,
                                              at::IntArrayRef stride, at::IntArrayRef padding,
                                              at::IntArrayRef dilation, bool ceil_mode, bool count_include_pad,
                                              c10::optional<int64_t> divisor_override, bool return_indices) {
  const PoolGeom g = pool_geometry(input, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
                                   divisor_override);
  at::Tensor idx;
  at::Tensor y = pool2d_forward(input, g, g.is_max && return_indices ? &idx : nullptr);
  if (!idx.defined()) idx = at::empty({0}, input.options().dtype(at::kLong));
  return {y, idx};
}

at::Tensor pool2d_values_cpu(const at::Tensor& input, c10::string_view mode, at::IntArrayRef kernel,
                             at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                             bool ceil_mode, bool count_include_pad, c10::optional<int64_t> divisor_override) {
  const PoolGeom g = pool_geometry(input, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
                                   divisor_override);
  return pool2d_forward(input, g, nullptr);
}

at::Tensor pool2d_backward_cpu(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& indices,
                               c10::string_view mode, at::IntArrayRef kernel, at::IntArrayRef stride,
                               at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode,
                               bool count_include_pad, c10::optional<int64_t> divisor_override) {
  const PoolGeom g = pool_geometry(input, mode, kernel, stride, padding, dilation, ceil_mode, count_include_pad,
                                   divisor_override);
  check_pool2d_backward_args(grad_output, indices, input, g);
  const auto ct = compute_type(input.scalar_type());
  const bool cl = is_channels_last(input);
  const auto fmt = cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const at::Tensor gy = as_compute(grad_output, ct, fmt);
  at::Tensor gx = cached_empty({g.n, g.c, g.h, g.w}, gy.options(), fmt);
  if (gx.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES(ct, "convkit_pool2d_backward_cpu", [&] {
      const at::Tensor idx = g.is_max ? indices.contiguous(fmt) : indices;
      const int64_t* ip = g.is_max ? idx.const_data_ptr<int64_t>() : nullptr;
      if (cl)
        nhwc_backward<scalar_t>(gy.const_data_ptr<scalar_t>(), ip, gx.mutable_data_ptr<scalar_t>(), g);
      else
        nchw_backward<scalar_t>(gy.const_data_ptr<scalar_t>(), ip, gx.mutable_data_ptr<scalar_t>(), g);
    });
  }
  return as_dtype(gx, input.scalar_type());
}

TORCH_LIBRARY_IMPL(convkit, CPU, m) {
  m.impl("pool2d", &pool2d_cpu);
  m.impl("pool2d_backward", &pool2d_backward_cpu);
}

}  // namespace convkit
