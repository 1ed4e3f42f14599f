// The machine's fp32 FMA rate as the kernels can reach it: every thread of ATen's pool runs kChains
// independent chains of vector FMAs on registers only (no memory traffic), for `iters` iterations. The
// benchmarks quote "% of the FMA peak" against this figure, measured in the same run and at the same thread
// count (a GEMM rate, e.g. MKL's sgemm, is lower on some machines and would flatter every kernel).
#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <vector>

#include "kernels.h"
#include "simd.h"

namespace convkit {

namespace {
constexpr int kChains = 16;  // >= FMA latency x FMA ports (4 x 2 on AVX-512 cores; 12 per core measured here)
}

FmaPeak fma_peak_gflops(int64_t iters) {
  using V = Simd<float>::V;
  constexpr int64_t L = Simd<float>::L;
  const int64_t threads = at::get_num_threads();
  std::atomic<int64_t> sink{0};
  // ran[t]: pool thread t ran chains (the GFLOP/s figure assumes every one did). With ATen's OpenMP pool
  // (the wheels' build) get_thread_num() is the OpenMP thread; with its native pool, the task's thread slot.
  std::vector<std::atomic<char>> ran(threads);
  const auto t0 = std::chrono::steady_clock::now();
  at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
    const int t_id = at::get_thread_num();
    if (t_id >= 0 && t_id < threads) ran[t_id].store(1);
    for (int64_t t = begin; t < end; ++t) {
      V acc[kChains];
      for (int c = 0; c < kChains; ++c) acc[c] = splat<float>(1.0f + c * 1e-3f);
      const V a = splat<float>(0.999999f), b = splat<float>(1e-7f);
      for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
        for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * a + b;
      }
      float s = 0;
      for (int c = 0; c < kChains; ++c)
        for (int64_t l = 0; l < L; ++l) s += acc[c][l];
      sink += static_cast<int64_t>(s);  // keeps the loop: its result is used
    }
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  (void)sink.load();
  int threads_ran = 0;
  for (const auto& r : ran) threads_ran += r.load();
  return {2.0 * kChains * L * iters * threads / seconds / 1e9, threads_ran};
}

}  // namespace convkit
