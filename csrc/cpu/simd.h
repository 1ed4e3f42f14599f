// 64-byte GCC vectors shared by the CPU kernels: one zmm register with AVX-512 (16 floats / 8 doubles); the
// compiler splits them into narrower registers on older ISAs (CONVKIT_ARCH=portable), so the code stays
// correct everywhere. Simd<T>::I is the integer vector with T's lane width (comparison masks, shuffles,
// int32 / int64 indices); loads and stores are unaligned.
#pragma once
#include <cstdint>
#include <cstring>
#include <utility>

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

}  // namespace convkit
