// Outputs of the CPU kernels (y, indices, grad_input, grad_weight) that are large come from a bounded cache of
// freed blocks instead of fresh memory. Why: glibc serves a request above its mmap threshold (at most 32 MiB)
// with fresh pages every call, and the kernel then takes one page fault per 4 KiB on first touch. Measured
// here (2 threads): allocating and zeroing 103 MB (P1/P3's grad_input at N=32) costs 24 ms, 4.3 GB/s, which
// made pooling backward at N=32 run at 13-20 % of the copy bandwidth, against 46-100 % with the pages kept.
//
// A freed block of at least kCacheMinBytes goes back to the cache while the cache holds at most its limit;
// a request takes a cached block of the same rounded size (2 MiB granules) or allocates a new one.
// Limit: CONVKIT_CPU_CACHE_MB (default 1024; 0 disables the cache: every call gets fresh memory as
// at::empty would). convkit.empty_cache() releases the cached blocks; convkit.cache_info() reports them.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

namespace convkit {

// at::empty(sizes, options with a CPU device) with the memory from the cache; memory_format as at::empty.
at::Tensor cached_empty(at::IntArrayRef sizes, const at::TensorOptions& options,
                        c10::MemoryFormat memory_format = c10::MemoryFormat::Contiguous);

struct CacheInfo {
  int64_t cached_bytes, limit_bytes, hits, misses;
};
CacheInfo cache_info();
void empty_cache();

}  // namespace convkit
