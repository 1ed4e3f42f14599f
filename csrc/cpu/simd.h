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

template <typename T>
inline typename Simd<T>::V splat(T v) {
  typename Simd<T>::V r;
  for (int64_t i = 0; i < Simd<T>::L; ++i) r[i] = v;
  return r;
}

// {0, 1, ..., L-1} * step + base, as lane-sized integers; a compile-time constant when the arguments are.
template <typename T, std::size_t... K>
constexpr typename Simd<T>::I lane_ramp_impl(int64_t step, int64_t base, std::index_sequence<K...>) {
  return typename Simd<T>::I{static_cast<typename Simd<T>::IT>(base + static_cast<int64_t>(K) * step)...};
}

template <typename T>
constexpr typename Simd<T>::I lane_ramp(int64_t step, int64_t base) {
  return lane_ramp_impl<T>(step, base, std::make_index_sequence<Simd<T>::L>{});
}

// dst[v] = src[v] for v in [0, n): the tail by one masked load and store with AVX-512 (column-packing runs
// are one output row, often shorter than two vectors, where a scalar epilogue costs more than the body).
template <typename T>
inline void copy_run(T* __restrict__ dst, const T* __restrict__ src, int64_t n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same<T, float>::value) {
    int64_t v = 0;
    for (; v + 16 <= n; v += 16) _mm512_storeu_ps(dst + v, _mm512_loadu_ps(src + v));
    if (v < n) {
      const __mmask16 m = static_cast<__mmask16>((1u << (n - v)) - 1);
      _mm512_mask_storeu_ps(dst + v, m, _mm512_maskz_loadu_ps(m, src + v));
    }
    return;
  } else if constexpr (std::is_same<T, double>::value) {
    int64_t v = 0;
    for (; v + 8 <= n; v += 8) _mm512_storeu_pd(dst + v, _mm512_loadu_pd(src + v));
    if (v < n) {
      const __mmask8 m = static_cast<__mmask8>((1u << (n - v)) - 1);
      _mm512_mask_storeu_pd(dst + v, m, _mm512_maskz_loadu_pd(m, src + v));
    }
    return;
  }
#endif
  for (int64_t v = 0; v < n; ++v) dst[v] = src[v];
}

// dst[v] = src[2 v] for v in [0, n), reading no element past src[2 (n - 1)] (the last one may end a tensor).
// With AVX-512: two loads and one even-lane permute per L outputs, the tail by masked loads and stores
// (masked-off lanes are never read); elsewhere a scalar loop. Used by the stride-2 column packing, whose
// runs are one output row (Wo elements): the scalar strided loop cost about 5 cycles per element there.
template <typename T>
inline void copy_stride2(T* __restrict__ dst, const T* __restrict__ src, int64_t n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same<T, float>::value) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    int64_t v = 0;
    for (; v + 16 < n; v += 16)
      _mm512_storeu_ps(dst + v, _mm512_permutex2var_ps(_mm512_loadu_ps(src + 2 * v), even,
                                                       _mm512_loadu_ps(src + 2 * v + 16)));
    if (v < n) {
      const int64_t r = n - v, need = 2 * r - 1, c1 = need < 16 ? need : 16, c2 = need - c1;
      const __m512 lo = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << c1) - 1), src + 2 * v);
      const __m512 hi = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << c2) - 1), src + 2 * v + 16);
      _mm512_mask_storeu_ps(dst + v, static_cast<__mmask16>((1u << r) - 1), _mm512_permutex2var_ps(lo, even, hi));
    }
    return;
  } else if constexpr (std::is_same<T, double>::value) {
    const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    int64_t v = 0;
    for (; v + 8 < n; v += 8)
      _mm512_storeu_pd(dst + v, _mm512_permutex2var_pd(_mm512_loadu_pd(src + 2 * v), even,
                                                       _mm512_loadu_pd(src + 2 * v + 8)));
    if (v < n) {
      const int64_t r = n - v, need = 2 * r - 1, c1 = need < 8 ? need : 8, c2 = need - c1;
      const __m512d lo = _mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << c1) - 1), src + 2 * v);
      const __m512d hi = _mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << c2) - 1), src + 2 * v + 8);
      _mm512_mask_storeu_pd(dst + v, static_cast<__mmask8>((1u << r) - 1), _mm512_permutex2var_pd(lo, even, hi));
    }
    return;
  }
#endif
  for (int64_t v = 0; v < n; ++v) dst[v] = src[2 * v];
}

// dst[2 v] += src[v] for v in [0, n), touching no element past dst[2 (n - 1)]: the transpose of copy_stride2
// (col2im of stride-2 convolutions). With AVX-512, src is spread over the even lanes of two vectors (zeros
// between: -0.0, which leaves every value, -0.0 included, unchanged) and added to two loads of dst; the tail by masked loads and stores.
template <typename T>
inline void add_stride2(T* __restrict__ dst, const T* __restrict__ src, int64_t n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same<T, float>::value) {
    const __m512i lo_idx = _mm512_setr_epi32(0, 16, 1, 16, 2, 16, 3, 16, 4, 16, 5, 16, 6, 16, 7, 16);
    const __m512i hi_idx = _mm512_setr_epi32(8, 16, 9, 16, 10, 16, 11, 16, 12, 16, 13, 16, 14, 16, 15, 16);
    const __m512 zero = _mm512_set1_ps(-0.0f);  // x + -0.0 == x for every x, -0.0 included
    int64_t v = 0;
    for (; v + 16 < n; v += 16) {
      const __m512 s = _mm512_loadu_ps(src + v);
      T* d = dst + 2 * v;
      _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), _mm512_permutex2var_ps(s, lo_idx, zero)));
      _mm512_storeu_ps(d + 16, _mm512_add_ps(_mm512_loadu_ps(d + 16), _mm512_permutex2var_ps(s, hi_idx, zero)));
    }
    if (v < n) {
      const int64_t r = n - v, need = 2 * r - 1, c1 = need < 16 ? need : 16, c2 = need - c1;
      const __mmask16 m1 = static_cast<__mmask16>((1u << c1) - 1), m2 = static_cast<__mmask16>((1u << c2) - 1);
      const __m512 s = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << r) - 1), src + v);
      T* d = dst + 2 * v;
      _mm512_mask_storeu_ps(d, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, d), _mm512_permutex2var_ps(s, lo_idx, zero)));
      _mm512_mask_storeu_ps(d + 16, m2,
                            _mm512_add_ps(_mm512_maskz_loadu_ps(m2, d + 16), _mm512_permutex2var_ps(s, hi_idx, zero)));
    }
    return;
  } else if constexpr (std::is_same<T, double>::value) {
    const __m512i lo_idx = _mm512_setr_epi64(0, 8, 1, 8, 2, 8, 3, 8);
    const __m512i hi_idx = _mm512_setr_epi64(4, 8, 5, 8, 6, 8, 7, 8);
    const __m512d zero = _mm512_set1_pd(-0.0);
    int64_t v = 0;
    for (; v + 8 < n; v += 8) {
      const __m512d s = _mm512_loadu_pd(src + v);
      T* d = dst + 2 * v;
      _mm512_storeu_pd(d, _mm512_add_pd(_mm512_loadu_pd(d), _mm512_permutex2var_pd(s, lo_idx, zero)));
      _mm512_storeu_pd(d + 8, _mm512_add_pd(_mm512_loadu_pd(d + 8), _mm512_permutex2var_pd(s, hi_idx, zero)));
    }
    if (v < n) {
      const int64_t r = n - v, need = 2 * r - 1, c1 = need < 8 ? need : 8, c2 = need - c1;
      const __mmask8 m1 = static_cast<__mmask8>((1u << c1) - 1), m2 = static_cast<__mmask8>((1u << c2) - 1);
      const __m512d s = _mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << r) - 1), src + v);
      T* d = dst + 2 * v;
      _mm512_mask_storeu_pd(d, m1, _mm512_add_pd(_mm512_maskz_loadu_pd(m1, d), _mm512_permutex2var_pd(s, lo_idx, zero)));
      _mm512_mask_storeu_pd(d + 8, m2,
                            _mm512_add_pd(_mm512_maskz_loadu_pd(m2, d + 8), _mm512_permutex2var_pd(s, hi_idx, zero)));
    }
    return;
  }
#endif
  for (int64_t v = 0; v < n; ++v) dst[2 * v] += src[v];
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
