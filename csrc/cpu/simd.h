// 64-byte GCC vectors shared by the CPU kernels: one zmm register with AVX-512 (16 floats / 8 doubles); the
// compiler splits them into narrower registers on older ISAs (CONVKIT_ARCH=portable), so the code stays
// correct everywhere. Simd<T>::I is the integer vector with T's lane width (comparison masks, shuffles,
// int32 / int64 indices); loads and stores are unaligned.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace convkit {

template <typename T>
struct SimdInt;
template <>
struct SimdInt<float> {
  typedef int32_t type;
};
template <>
struct SimdInt<double> {
  typedef int64_t type;
};

template <typename T>
struct Simd {
  typedef T V __attribute__((vector_size(64)));
  typedef typename SimdInt<T>::type IT;  // lane-sized integer
  typedef IT I __attribute__((vector_size(64)));
  typedef int64_t I64 __attribute__((vector_size(64 / sizeof(T) * 8)));  // the lanes widened to int64
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

// Every lane v. Written as a brace list (one broadcast): GCC compiled the element-by-element loop this
// replaces into 16 masked broadcasts, which was about a quarter of P3's avg pool (a Divider per output row).
template <typename T, std::size_t... K>
inline typename Simd<T>::V splat_impl(T v, std::index_sequence<K...>) {
  return typename Simd<T>::V{(static_cast<void>(K), v)...};
}

template <typename T>
inline typename Simd<T>::V splat(T v) {
  return splat_impl<T>(v, std::make_index_sequence<Simd<T>::L>{});
}

// n rounded up to a multiple of l (buffers in whole vectors or lines).
inline int64_t round_to(int64_t n, int64_t l) { return (n + l - 1) / l * l; }

// Lane k = f(k) as lane-sized integers (a permute index: for two-source permutes, indices >= L select the
// second vector); a compile-time constant when f is constexpr.
template <typename T, typename F, std::size_t... K>
constexpr typename Simd<T>::I lane_formula_impl(F f, std::index_sequence<K...>) {
  return typename Simd<T>::I{static_cast<typename Simd<T>::IT>(f(static_cast<int64_t>(K)))...};
}

template <typename T, typename F>
constexpr typename Simd<T>::I lane_formula(F f) {
  return lane_formula_impl<T>(f, std::make_index_sequence<Simd<T>::L>{});
}

// {0, 1, ..., L-1} * step + base, as lane-sized integers; a compile-time constant when the arguments are.
template <typename T>
constexpr typename Simd<T>::I lane_ramp(int64_t step, int64_t base) {
  return lane_formula<T>([step, base](int64_t k) { return base + k * step; });
}

#if defined(__AVX512F__)
// The AVX-512 operations the run helpers below need, for float and double, so that each helper is written
// once (masks of n < 2^16 lanes; index vectors built from a lane formula, constant-folded).
template <typename T>
struct Avx512;
template <>
struct Avx512<float> {
  using V = __m512;
  using M = __mmask16;
  using IT = int32_t;
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V loadz(M m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static V loadm(V src, M m, const float* p) { return _mm512_mask_loadu_ps(src, m, p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void store(float* p, M m, V v) { _mm512_mask_storeu_ps(p, m, v); }
  static V perm2(V a, __m512i idx, V b) { return _mm512_permutex2var_ps(a, idx, b); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V splat(float v) { return _mm512_set1_ps(v); }
};
template <>
struct Avx512<double> {
  using V = __m512d;
  using M = __mmask8;
  using IT = int64_t;
  static V load(const double* p) { return _mm512_loadu_pd(p); }
  static V loadz(M m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
  static V loadm(V src, M m, const double* p) { return _mm512_mask_loadu_pd(src, m, p); }
  static void store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static void store(double* p, M m, V v) { _mm512_mask_storeu_pd(p, m, v); }
  static V perm2(V a, __m512i idx, V b) { return _mm512_permutex2var_pd(a, idx, b); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static V splat(double v) { return _mm512_set1_pd(v); }
};

template <typename T>
inline typename Avx512<T>::M lanes_mask(int64_t n) {
  return static_cast<typename Avx512<T>::M>((1u << n) - 1);
}

// The permute index with lane k = f(k) (two-source permutes: indices >= L select the second vector).
template <typename T, typename F>
inline __m512i lane_index(F f) {
  alignas(64) typename Avx512<T>::IT a[Simd<T>::L];
  for (int64_t k = 0; k < Simd<T>::L; ++k) a[k] = static_cast<typename Avx512<T>::IT>(f(k));
  return _mm512_load_si512(a);
}

// A kernel row's taps reversed (the flipped weights of grad_input): lanes 0 .. n-1 = p[n-1], ..., p[0], zeros
// after (n <= L), with one masked load and one permute. Build the index once per call:
// reverse_index<T>(n), the mask lanes_mask<T>(n).
template <typename T>
inline __m512i reverse_index(int64_t n) {
  return lane_index<T>([n](int64_t l) { return l < n ? n - 1 - l : 0; });
}
template <typename T>
inline typename Avx512<T>::V load_reversed(const T* p, typename Avx512<T>::M m, __m512i reverse) {
  const typename Avx512<T>::V v = Avx512<T>::loadz(m, p);
  return Avx512<T>::perm2(v, reverse, v);
}
#endif

// Lanes l < n from base[l * stride] (one AVX-512 gather; masked-off lanes are zero and never read), else a
// scalar loop. stride * (L - 1) must fit the lane-sized index (int32 for float).
template <typename T>
inline typename Simd<T>::V gather_n(const T* base, int64_t stride, int64_t n) {
#if defined(__AVX512F__)
  using A = Avx512<T>;
  const typename Simd<T>::I ramp = lane_ramp<T>(stride, 0);
  const __m512i idx = reinterpret_cast<const __m512i&>(ramp);
  typename A::V r;
  if constexpr (std::is_same_v<T, float>)
    r = n >= 16 ? _mm512_i32gather_ps(idx, base, 4)
                : _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes_mask<T>(n), idx, base, 4);
  else
    r = n >= 8 ? _mm512_i64gather_pd(idx, base, 8)
               : _mm512_mask_i64gather_pd(_mm512_setzero_pd(), lanes_mask<T>(n), idx, base, 8);
  return reinterpret_cast<const typename Simd<T>::V&>(r);
#else
  typename Simd<T>::V v{};
  for (int64_t l = 0; l < n && l < Simd<T>::L; ++l) v[l] = base[l * stride];
  return v;
#endif
}

// A whole-vector store that bypasses the caches (AVX-512 non-temporal store: no read-for-ownership of the
// line, which a plain store of a cold output line costs); p must be 64-byte aligned. For outputs larger than
// the cores' L2, which would leave the caches anyway; end the writer's work with stream_fence() so the stores
// are visible to the thread that joins it.
template <typename T>
inline void vstream_aligned(T* p, const typename Simd<T>::V& v) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) return _mm512_stream_ps(p, reinterpret_cast<const __m512&>(v));
  if constexpr (std::is_same_v<T, double>) return _mm512_stream_pd(p, reinterpret_cast<const __m512d&>(v));
#endif
  vstore(p, v);
}

// vstream_aligned where p is 64-byte aligned, else a plain store.
template <typename T>
inline void vstore_stream(T* p, const typename Simd<T>::V& v) {
  if (reinterpret_cast<uintptr_t>(p) % 64 == 0) return vstream_aligned(p, v);
  vstore(p, v);
}

inline void stream_fence() {
#if defined(__AVX512F__)
  _mm_sfence();
#endif
}

// dst[v] = src[v] for v in [0, n): the tail by one masked load and store with AVX-512 (column-packing runs
// are one output row, often shorter than two vectors, where a scalar epilogue costs more than the body).
template <typename T>
inline void copy_run(T* __restrict__ dst, const T* __restrict__ src, int64_t n) {
#if defined(__AVX512F__)
  using A = Avx512<T>;
  constexpr int64_t L = Simd<T>::L;
  int64_t v = 0;
  for (; v + L <= n; v += L) A::store(dst + v, A::load(src + v));
  if (v < n) {
    const auto m = lanes_mask<T>(n - v);
    A::store(dst + v, m, A::loadz(m, src + v));
  }
#else
  for (int64_t v = 0; v < n; ++v) dst[v] = src[v];
#endif
}

// dst[v] = src[2 v] for v in [0, n), reading no element past src[2 (n - 1)] (the last one may end a tensor).
// With AVX-512: two loads and one even-lane permute per L outputs, the tail by masked loads and stores
// (masked-off lanes are never read); elsewhere a scalar loop. Used by the stride-2 column packing, whose
// runs are one output row (Wo elements): the scalar strided loop cost about 5 cycles per element there.
template <typename T>
inline void copy_stride2(T* __restrict__ dst, const T* __restrict__ src, int64_t n) {
#if defined(__AVX512F__)
  using A = Avx512<T>;
  constexpr int64_t L = Simd<T>::L;
  const __m512i even = lane_index<T>([](int64_t k) { return 2 * k; });
  int64_t v = 0;
  for (; v + L < n; v += L) A::store(dst + v, A::perm2(A::load(src + 2 * v), even, A::load(src + 2 * v + L)));
  if (v < n) {
    const int64_t r = n - v, need = 2 * r - 1, c1 = need < L ? need : L, c2 = need - c1;
    const auto lo = A::loadz(lanes_mask<T>(c1), src + 2 * v), hi = A::loadz(lanes_mask<T>(c2), src + 2 * v + L);
    A::store(dst + v, lanes_mask<T>(r), A::perm2(lo, even, hi));
  }
#else
  for (int64_t v = 0; v < n; ++v) dst[v] = src[2 * v];
#endif
}

// dst[2 v] += src[v] for v in [0, n), touching no element past dst[2 (n - 1)]: the transpose of copy_stride2
// (col2im of stride-2 convolutions). With AVX-512, src is spread over the even lanes of two vectors (-0.0
// between, which leaves every value, -0.0 included, unchanged) and added to two loads of dst; the tail by
// masked loads and stores.
template <typename T>
inline void add_stride2(T* __restrict__ dst, const T* __restrict__ src, int64_t n) {
#if defined(__AVX512F__)
  using A = Avx512<T>;
  constexpr int64_t L = Simd<T>::L;
  const __m512i lo_idx = lane_index<T>([](int64_t k) { return k % 2 ? L : k / 2; });
  const __m512i hi_idx = lane_index<T>([](int64_t k) { return k % 2 ? L : L / 2 + k / 2; });
  const auto zero = A::splat(T(-0.0));
  int64_t v = 0;
  for (; v + L < n; v += L) {
    const auto x = A::load(src + v);
    T* d = dst + 2 * v;
    A::store(d, A::add(A::load(d), A::perm2(x, lo_idx, zero)));
    A::store(d + L, A::add(A::load(d + L), A::perm2(x, hi_idx, zero)));
  }
  if (v < n) {
    const int64_t r = n - v, need = 2 * r - 1, c1 = need < L ? need : L, c2 = need - c1;
    const auto m1 = lanes_mask<T>(c1), m2 = lanes_mask<T>(c2);
    const auto x = A::loadz(lanes_mask<T>(r), src + v);
    T* d = dst + 2 * v;
    A::store(d, m1, A::add(A::loadz(m1, d), A::perm2(x, lo_idx, zero)));
    A::store(d + L, m2, A::add(A::loadz(m2, d + L), A::perm2(x, hi_idx, zero)));
  }
#else
  for (int64_t v = 0; v < n; ++v) dst[2 * v] += src[v];
#endif
}

// The vector of p[0 .. n) (n <= L) with zeros after, reading nothing past p[n - 1] (a row's tail).
template <typename T>
inline typename Simd<T>::V load_n(const T* p, int64_t n) {
  if (n == Simd<T>::L) return vload(p);
  T tmp[Simd<T>::L] = {};
  for (int64_t l = 0; l < n; ++l) tmp[l] = p[l];
  return vload(tmp);
}

// p[0 .. n) = v's first n lanes (n <= L), writing nothing past p[n - 1]: one masked store with AVX-512.
template <typename T>
inline void store_n(T* p, const typename Simd<T>::V& v, int64_t n) {
  if (n == Simd<T>::L) return vstore(p, v);
#if defined(__AVX512F__)
  using A = Avx512<T>;
  A::store(p, lanes_mask<T>(n), reinterpret_cast<const typename A::V&>(v));
#else
  T tmp[Simd<T>::L];
  vstore(tmp, v);
  for (int64_t l = 0; l < n; ++l) p[l] = tmp[l];
#endif
}

// Stores a register tile with positions as vectors and channels as lanes into channel-major rows:
// y[(v * L + l) * ld + p] = acc[v][p][l] for channels v * L + l < no and positions p < cnt (cnt <= NP).
// fp32 with AVX-512 and NP <= 16: per vector of channels a 16 x 16 in-register transpose (64 shuffles; rows
// past NP are zero) and one masked store of cnt positions per channel, in place of L * NP scalar stores and
// a copy per channel (the channel-lanes forward's tiles, direct_oc.cpp; with OBV = 1 and rows of k as lanes,
// forward_tiled's weight panels, corr2d.cpp pack_w_panels); else scalar.
template <typename T, int OBV, int NP>
inline void store_lanes_transposed(const typename Simd<T>::V (&acc)[OBV][NP], T* y, int64_t ld, int64_t no,
                                   int64_t cnt) {
  constexpr int64_t L = Simd<T>::L;
#if defined(__AVX512F__)
  if constexpr (std::is_same<T, float>::value && NP <= 16) {
    const __mmask16 m = lanes_mask<float>(cnt);
    for (int v = 0; v < OBV && v * L < no; ++v) {
      __m512 r[16], t[16];
      for (int p = 0; p < 16; ++p) r[p] = p < NP ? (__m512)acc[v][p] : _mm512_setzero_ps();
      for (int p = 0; p < 16; p += 2) {  // pairs of rows interleaved per 128-bit lane
        t[p] = _mm512_unpacklo_ps(r[p], r[p + 1]);
        t[p + 1] = _mm512_unpackhi_ps(r[p], r[p + 1]);
      }
      for (int p = 0; p < 16; p += 4) {  // groups of 4 rows: r[p] = column 4q + 0 (per 128-bit lane q), ...
        r[p] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[p]), _mm512_castps_pd(t[p + 2])));
        r[p + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[p]), _mm512_castps_pd(t[p + 2])));
        r[p + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[p + 1]), _mm512_castps_pd(t[p + 3])));
        r[p + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[p + 1]), _mm512_castps_pd(t[p + 3])));
      }
      // r[4g + k] holds rows 4g..4g+3 of columns k, k + 4, k + 8, k + 12 (one per 128-bit lane)
      for (int k = 0; k < 4; ++k) {
        const __m512 a = _mm512_shuffle_f32x4(r[k], r[4 + k], 0x88), b = _mm512_shuffle_f32x4(r[k], r[4 + k], 0xdd);
        const __m512 c = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0x88);
        const __m512 d = _mm512_shuffle_f32x4(r[8 + k], r[12 + k], 0xdd);
        t[k] = _mm512_shuffle_f32x4(a, c, 0x88);       // column k
        t[k + 8] = _mm512_shuffle_f32x4(a, c, 0xdd);   // column k + 8
        t[k + 4] = _mm512_shuffle_f32x4(b, d, 0x88);   // column k + 4
        t[k + 12] = _mm512_shuffle_f32x4(b, d, 0xdd);  // column k + 12
      }
      const int64_t nl = no - v * L < L ? no - v * L : L;
      for (int64_t l = 0; l < nl; ++l) _mm512_mask_storeu_ps(y + (v * L + l) * ld, m, t[l]);
    }
    return;
  }
#endif
  for (int v = 0; v < OBV; ++v)
    for (int64_t l = 0; l < L && v * L + l < no; ++l)
      for (int64_t p = 0; p < cnt; ++p) y[(v * L + l) * ld + p] = acc[v][p][l];
}

// dst[q * dld + r] = src[r * ld + q] for r in [0, 8), q in [0, n): 8 rows into [q][8] groups (grad_weight's
// column panels, dld = 8; its dY panels, dld = TW). With AVX-512 one gather per 16 (fp32: 2 columns, stored
// as two halves) or 8 (fp64: 1 column) elements. The scalar loops these replaced were about a quarter of
// grad_weight_tiled's time (R6 N=8) and a sixth (R1 N=8).
template <typename T>
inline void transpose_rows8(const T* __restrict__ src, int64_t ld, T* __restrict__ dst, int64_t n,
                            int64_t dld = 8) {
  int64_t q = 0;
#if defined(__AVX512F__) && defined(__AVX512DQ__)
  if constexpr (std::is_same<T, float>::value) {
    if (ld <= (int64_t(1) << 27)) {
      const int l = static_cast<int>(ld);
      const __m512i idx = _mm512_setr_epi32(0, l, 2 * l, 3 * l, 4 * l, 5 * l, 6 * l, 7 * l, 1, l + 1, 2 * l + 1,
                                            3 * l + 1, 4 * l + 1, 5 * l + 1, 6 * l + 1, 7 * l + 1);
      for (; q + 2 <= n; q += 2) {
        const __m512 v = _mm512_i32gather_ps(idx, src + q, 4);
        if (dld == 8) {
          _mm512_storeu_ps(dst + q * 8, v);
        } else {
          _mm256_storeu_ps(dst + q * dld, _mm512_castps512_ps256(v));
          _mm256_storeu_ps(dst + (q + 1) * dld, _mm512_extractf32x8_ps(v, 1));
        }
      }
    }
  } else if constexpr (std::is_same<T, double>::value) {
    const __m512i idx = _mm512_setr_epi64(0, ld, 2 * ld, 3 * ld, 4 * ld, 5 * ld, 6 * ld, 7 * ld);
    for (; q < n; ++q) _mm512_storeu_pd(dst + q * dld, _mm512_i64gather_pd(idx, src + q, 8));
  }
#endif
  for (; q < n; ++q)
    for (int r = 0; r < 8; ++r) dst[q * dld + r] = src[r * ld + q];
}

}  // namespace convkit
