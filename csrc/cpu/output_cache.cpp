// The bounded cache of large output blocks (see output_cache.h for why and the measurements).
#include "output_cache.h"

#include <ATen/EmptyTensor.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <cstdlib>
#include <map>
#include <mutex>

namespace convkit {
namespace {

constexpr size_t kCacheMinBytes = size_t(1) << 20;  // smaller requests go to torch's CPU allocator
constexpr int64_t kDefaultLimitMiB = 1024;

size_t rounded(size_t n) {
  const size_t granule = n < (size_t(16) << 20) ? (size_t(256) << 10) : (size_t(2) << 20);
  return (n + granule - 1) / granule * granule;
}

int64_t limit_from_env() {
  const char* s = std::getenv("CONVKIT_CPU_CACHE_MB");
  if (!s || !*s) return kDefaultLimitMiB << 20;
  char* end = nullptr;
  const long long mb = std::strtoll(s, &end, 10);
  TORCH_CHECK(end && *end == '\0' && mb >= 0, "CONVKIT_CPU_CACHE_MB must be a non-negative integer (MiB), got '",
              s, "'");
  return static_cast<int64_t>(mb) << 20;
}

struct Block {
  void* ptr;
  size_t size;
};

class OutputCache final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) override {
    if (n < kCacheMinBytes || limit_ == 0) return c10::GetCPUAllocator()->allocate(n);
    const size_t size = rounded(n);
    void* ptr = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.find(size);
      if (it != free_.end()) {
        ptr = it->second;
        free_.erase(it);
        cached_ -= static_cast<int64_t>(size);
        ++hits_;
      } else {
        ++misses_;
      }
    }
    if (!ptr) ptr = c10::alloc_cpu(size);  // throws c10::Error on out of memory
    return {ptr, new Block{ptr, size}, &OutputCache::give_back, c10::Device(c10::DeviceType::CPU)};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  CacheInfo info() {
    std::lock_guard<std::mutex> lock(mu_);
    return {cached_, limit_, hits_, misses_};
  }

  void clear() {
    std::multimap<size_t, void*> blocks;
    {
      std::lock_guard<std::mutex> lock(mu_);
      blocks.swap(free_);
      cached_ = 0;
    }
    for (auto& b : blocks) c10::free_cpu(b.second);
  }

  static OutputCache& get() {
    static OutputCache* cache = new OutputCache();  // never destroyed: tensors may outlive static destruction
    return *cache;
  }

 private:
  OutputCache() : limit_(limit_from_env()) {}

  static void give_back(void* ctx) {
    Block* b = static_cast<Block*>(ctx);
    OutputCache& c = get();
    bool kept = false;
    {
      std::lock_guard<std::mutex> lock(c.mu_);
      if (c.cached_ + static_cast<int64_t>(b->size) <= c.limit_) {
        c.free_.emplace(b->size, b->ptr);
        c.cached_ += static_cast<int64_t>(b->size);
        kept = true;
      }
    }
    if (!kept) c10::free_cpu(b->ptr);
    delete b;
  }

  std::mutex mu_;
  std::multimap<size_t, void*> free_;  // rounded size -> block
  int64_t cached_ = 0, hits_ = 0, misses_ = 0;
  const int64_t limit_;
};

}  // namespace

at::Tensor cached_empty(at::IntArrayRef sizes, const at::TensorOptions& options, c10::MemoryFormat memory_format) {
  TORCH_INTERNAL_ASSERT(options.device().is_cpu());
  return at::detail::empty_generic(sizes, &OutputCache::get(), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   c10::typeMetaToScalarType(options.dtype()), memory_format);
}

CacheInfo cache_info() { return OutputCache::get().info(); }

void empty_cache() { OutputCache::get().clear(); }

}  // namespace convkit
