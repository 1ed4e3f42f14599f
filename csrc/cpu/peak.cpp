// The machine's fp32 FMA rate as the kernels can reach it: every thread of ATen's pool runs kChains
// independent chains of vector FMAs on registers only (no memory traffic), for `iters` iterations. The
// benchmarks quote "% of the FMA peak" against this figure, measured in the same run and at the same thread
// count (a GEMM rate, e.g. MKL's sgemm, is lower on some machines and would flatter every kernel).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
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

// ---- ATen's BLAS against the FMA peak (see kernels.h). MKL, which the torch wheels link, runs its AVX2
// code on AMD cores: on a core whose AVX-512 FMAs run at twice the AVX2 rate (Zen 5 here: sgemm 200-220 of
// 500-520 GFLOP/s, 0.42) every BLAS product runs at half the width of convkit's own kernels, while on one
// that splits AVX-512 into two halves (sessions 15-16's machine: sgemm about 155 of 228, 0.68) it does not.
// The share is measured once per process, the first time a plan depends on it: the best of kRepeats sgemm
// products of kGemmSize^3 (at::mm, at the current thread count) over the best of kRepeats FMA-probe calls.
namespace {
constexpr int64_t kGemmSize = 384;        // ~113 MFLOP: 0.5-1 ms; 384 and 2048 read within 5 % of each other here
constexpr int64_t kProbeIters = 20000;    // 320 FMAs per lane per thread: ~0.1 ms
constexpr int kRepeats = 3;

double measure_blas_share() {
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor a = at::full({kGemmSize, kGemmSize}, 0.5f, opts), b = at::full({kGemmSize, kGemmSize}, 0.25f, opts);
  at::Tensor c = at::empty({kGemmSize, kGemmSize}, opts);
  at::mm_out(c, a, b);  // warm-up: MKL's first call initialises its threads and buffers
  double gemm = 0, fma = 0;
  for (int r = 0; r < kRepeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    at::mm_out(c, a, b);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    gemm = std::max(gemm, 2.0 * kGemmSize * kGemmSize * kGemmSize / s / 1e9);
    fma = std::max(fma, fma_peak_gflops(kProbeIters).gflops);
  }
  return fma > 0 ? gemm / fma : 0.0;
}

// -1: measure; 0: avoid BLAS; 1: prefer it (CONVKIT_BLAS, or set_blas_preference)
int preference_from_env() {
  const char* s = std::getenv("CONVKIT_BLAS");
  if (!s || !*s || std::strcmp(s, "measure") == 0) return -1;
  if (std::strcmp(s, "prefer") == 0) return 1;
  if (std::strcmp(s, "avoid") == 0) return 0;
  TORCH_CHECK(false, "CONVKIT_BLAS must be 'prefer', 'avoid' or 'measure' (or unset), got '", s, "'");
}

struct BlasState {
  std::mutex mu;
  bool env_read = false;
  int preference = -1;
  double share = -1;  // < 0: not measured yet
};

BlasState& blas_state() {
  static BlasState s;
  return s;
}
}  // namespace

BlasRate blas_rate(bool measure) {
  BlasState& st = blas_state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (!st.env_read) {
    st.preference = preference_from_env();
    st.env_read = true;
  }
  if (st.preference >= 0) return {st.share, st.preference == 1, st.preference == 1 ? "prefer" : "avoid"};
  if (st.share < 0 && measure) st.share = measure_blas_share();
  return {st.share, st.share >= kBlasMinShare, st.share < 0 ? "not measured" : "measured"};
}

void set_blas_preference(int preference) {
  TORCH_CHECK(preference >= -1 && preference <= 1, "set_blas_preference: expected -1, 0 or 1, got ", preference);
  BlasState& st = blas_state();
  std::lock_guard<std::mutex> lock(st.mu);
  st.env_read = true;
  st.preference = preference;
}

}  // namespace convkit

