// What the CUDA kernels share: the launch helper (current stream + C10_CUDA_KERNEL_LAUNCH_CHECK after every
// launch), device checks, 64-bit index helpers, vector packs and a deterministic block reduction.
//
// With CONVKIT_CUDA_EMULATE defined, the same .cu files compile as plain C++ and run on CPU tensors: the threads
// of a block are fibers that switch at __syncthreads, blocks run one after another (so a `static` array is the
// block's shared memory), and the SM count comes from CONVKIT_EMU_SMS (default 4). That is only a test tool
// for the index arithmetic, tiling and boundary handling when no GPU is at hand (it says nothing about speed,
// races between blocks or memory coalescing); the extension itself is always built with nvcc.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <limits>
#include <utility>

#ifdef CONVKIT_CUDA_EMULATE
#include <ucontext.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace convkit {
namespace emu {
// The threads of a block are fibers (ucontext) of one OS thread: each runs until its next __syncthreads or its
// end, then the next one; a round ends when every live fiber has done so.
struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
  bool done = false;
};
inline dim3 thread_idx, block_idx, block_dim, grid_dim;
inline std::vector<unsigned char> dynamic_smem_buf;
inline ucontext_t scheduler;
inline Fiber* current = nullptr;
inline const std::function<void()>* body_ptr = nullptr;
inline bool divergent_barrier = false;

inline void fiber_main() {
  (*body_ptr)();
  current->done = true;
  swapcontext(&current->ctx, &scheduler);
}
inline void sync_threads() { swapcontext(&current->ctx, &scheduler); }

template <typename F>
void run(dim3 grid, dim3 block, size_t smem, const F& body) {
  const std::function<void()> fn = body;
  body_ptr = &fn;
  grid_dim = grid;
  block_dim = block;
  dynamic_smem_buf.assign(smem + 64, 0);
  const unsigned nt = block.x * block.y * block.z;
  static std::vector<Fiber> fibers;
  if (fibers.size() < nt) fibers.resize(nt);
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        block_idx = dim3(bx, by, bz);
        for (unsigned t = 0; t < nt; ++t) {
          Fiber& f = fibers[t];
          f.stack.resize(256 * 1024);
          f.done = false;
          getcontext(&f.ctx);
          f.ctx.uc_stack.ss_sp = f.stack.data();
          f.ctx.uc_stack.ss_size = f.stack.size();
          f.ctx.uc_link = nullptr;
          makecontext(&f.ctx, fiber_main, 0);
        }
        for (;;) {
          unsigned live = 0, finished = 0;
          for (unsigned t = 0; t < nt; ++t) {
            Fiber& f = fibers[t];
            if (f.done) continue;
            ++live;
            current = &f;
            thread_idx = dim3(t % block.x, t / block.x % block.y, t / (block.x * block.y));
            swapcontext(&scheduler, &f.ctx);
            finished += f.done;
          }
          if (live == 0) break;
          if (finished != 0 && finished != live && !divergent_barrier) {
            divergent_barrier = true;  // some threads ended while others wait at a barrier
            std::fprintf(stderr, "convkit emulation: divergent __syncthreads in block (%u,%u,%u)\n", bx, by, bz);
          }
        }
      }
}
inline void* dynamic_smem() {
  auto p = reinterpret_cast<uintptr_t>(dynamic_smem_buf.data());
  return reinterpret_cast<void*>((p + 63) & ~uintptr_t(63));
}
}  // namespace emu
}  // namespace convkit

#define threadIdx ::convkit::emu::thread_idx
#define blockIdx ::convkit::emu::block_idx
#define blockDim ::convkit::emu::block_dim
#define gridDim ::convkit::emu::grid_dim
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __syncthreads() ::convkit::emu::sync_threads()
#define CONVKIT_DYNAMIC_SMEM(type, name) type* name = reinterpret_cast<type*>(::convkit::emu::dynamic_smem())
inline uint32_t __umulhi(uint32_t a, uint32_t b) { return static_cast<uint32_t>((uint64_t(a) * b) >> 32); }
#else
// c10's stream/guard headers only (ATen/cuda/CUDAContext.h would also need the cuBLAS/cuSPARSE/cuSOLVER headers,
// which a minimal CUDA toolkit lacks). c10::cuda::getCurrentCUDAStream is what at::cuda::getCurrentCUDAStream
// re-exports.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <array>
#include <atomic>
#define CONVKIT_DYNAMIC_SMEM(type, name)                     \
  extern __shared__ __align__(16) unsigned char name##_raw[]; \
  type* name = reinterpret_cast<type*>(name##_raw)
#endif

namespace convkit {
namespace cuda {

constexpr int kThreads = 256;  // every kernel's block size

#ifdef CONVKIT_CUDA_EMULATE
struct DeviceGuard {
  explicit DeviceGuard(at::Device) {}
};
inline bool on_kernel_device(const at::Tensor& t) { return t.device().is_cpu(); }
inline int sm_count() {
  const char* s = std::getenv("CONVKIT_EMU_SMS");
  return s ? std::atoi(s) : 4;
}
#else
using DeviceGuard = c10::cuda::CUDAGuard;
inline bool on_kernel_device(const at::Tensor& t) { return t.is_cuda(); }
// Multiprocessors of the current device, queried once per device.
inline int sm_count() {
  static std::array<std::atomic<int>, 64> cache{};
  const int dev = c10::cuda::current_device();
  if (dev < 0 || dev >= 64) {
    int n = 0;
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    return n;
  }
  int n = cache[dev].load(std::memory_order_relaxed);
  if (n == 0) {
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    cache[dev].store(n, std::memory_order_relaxed);
  }
  return n;
}
#endif

// Launches kernel<<<grid, block, smem, current stream>>>(args...) and checks the launch.
template <typename... KArgs, typename... Args>
inline void launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, Args&&... args) {
#ifdef CONVKIT_CUDA_EMULATE
  emu::run(grid, block, smem, [&] { kernel(static_cast<KArgs>(args)...); });
#else
  kernel<<<grid, block, smem, c10::cuda::getCurrentCUDAStream()>>>(std::forward<Args>(args)...);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
#endif
}

// Every tensor argument on the input's CUDA device; `name` is the argument's name in the schema.
inline void check_device(const char* op, const char* name, const at::Tensor& t, const at::Tensor& input) {
  TORCH_CHECK(on_kernel_device(t) && t.device() == input.device(), "convkit::", op, ": ", name,
              " must be on the same CUDA device as input (", input.device(), "), got ", t.device());
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks for a grid-stride loop over `items`: enough to fill the GPU several times, at most 2^31 - 1.
inline int64_t grid_for(int64_t items, int64_t per_sm = 32) {
  return std::max<int64_t>(1, std::min<int64_t>(ceil_div(items, kThreads), int64_t(sm_count()) * per_sm));
}

// q = n / d for 0 <= n, d < 2^31 with a multiply-high and a shift (PyTorch's IntDivider<unsigned>).
struct FastDiv {
  uint32_t d = 1, m = 0, s = 0;
  FastDiv() = default;
  explicit FastDiv(int64_t divisor) : d(static_cast<uint32_t>(divisor)) {
    for (s = 0; s < 32; ++s)
      if ((1U << s) >= d) break;
    const uint64_t one = 1;
    m = static_cast<uint32_t>(((one << 32) * ((one << s) - d)) / d + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, m) + n) >> s; }
};

// a / b and a % b for a >= 0, b > 0, in 32 bits when both fit (a 64-bit division costs ~3x more).
__device__ __forceinline__ void divmod(int64_t a, int64_t b, int64_t& q, int64_t& r) {
  if (((a | b) >> 31) == 0) {
    const uint32_t q32 = static_cast<uint32_t>(a) / static_cast<uint32_t>(b);
    q = q32;
    r = a - int64_t(q32) * b;
  } else {
    q = a / b;
    r = a - q * b;
  }
}

__device__ __forceinline__ float madd(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double madd(double a, double b, double c) { return fma(a, b, c); }

// V elements of T as one load/store (16 bytes at most per access).
template <typename T, int V>
struct alignas(sizeof(T) * V < 16 ? sizeof(T) * V : 16) Pack {
  T v[V];
};

template <typename T>
inline bool aligned_to(const void* p, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(bytes) == 0;
}

// dst[0..3] = v[0..3] converted to T: one vector store when dst is aligned for it, else four scalar stores.
template <typename T, typename Acc>
__device__ __forceinline__ void store4(T* dst, const Acc* v) {
  if (reinterpret_cast<uintptr_t>(dst) % alignof(Pack<T, 4>) == 0) {
    Pack<T, 4> p;
#pragma unroll
    for (int i = 0; i < 4; ++i) p.v[i] = static_cast<T>(v[i]);
    *reinterpret_cast<Pack<T, 4>*>(dst) = p;
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) dst[i] = static_cast<T>(v[i]);
  }
}

// Sum of v over the block (kThreads threads, all of which must call it), in a fixed tree order: the result
// (valid in thread 0) does not depend on timing. red: kThreads elements of shared memory.
template <typename Acc>
__device__ __forceinline__ Acc block_sum(Acc v, Acc* red) {
  const int t = threadIdx.x;
  red[t] = v;
  __syncthreads();
#pragma unroll
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (t < s) red[t] = red[t] + red[t + s];
    __syncthreads();
  }
  const Acc r = red[0];
  __syncthreads();  // red may be reused right away
  return r;
}

}  // namespace cuda
}  // namespace convkit
