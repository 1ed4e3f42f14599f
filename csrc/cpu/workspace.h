// A grow-only buffer per calling thread and slot, kept between calls: a fresh allocation of a few MB is
// page-faulted in again on every call (glibc returns it to the OS), which cost ~10 % of grad_input on R9.
// Only the thread that enters the op uses it (before or after a parallel region, never inside). One slot per
// buffer that can be live at the same time within one op call.
#pragma once
#include <cstdint>
#include <vector>

namespace convkit {

enum WorkspaceSlot : int {
  kWsPackedWeights = 0,  // corr2d.cpp: W^T panels (grad_input_tiled)
  kWsForwardPanels,      // corr2d.cpp: W as OB-channel panels (forward_tiled)
  kWsFlippedWeights,     // corr2d.cpp: flipped, transposed W (grad_input_rows)
  kWsSharedCols,         // corr2d.cpp: forward_tiled's per-thread column blocks, forward_columns_blas' column block,
                         // forward_images_blas' per-thread column blocks
  kWsBlasAccumulator,    // corr2d.cpp: forward_columns_blas' output accumulator (several images)
  kWsWinogradData,       // winograd.cpp: transformed input V of one chunk (or per thread, one image or piece);
                         // winograd_s2.cpp: per part, V of one piece, its row buffers and Mb
  kWsWinogradProducts,   // winograd.cpp: products M / transformed dY Z of one chunk (or per thread, as V)
  kWsWinogradWeights,    // winograd.cpp: transformed weights U / dL/dU; winograd_s2.cpp: its U
  kWsOcWeights,          // direct_oc.cpp: the channel-lanes forward's packed weights (forward and grad_input)
  kWsGwDy,               // direct_oc.cpp: the channel-lanes grad_weight's blocked dY (one chunk of images)
  kWsGwPartial,          // direct_oc.cpp: its partial sums between chunks
  kWsSlots
};

// The buffer starts on a 64-byte line whatever malloc returned (std::vector<float> is only 16-byte aligned,
// and where a buffer landed changed from process to process).
template <typename T>
T* call_workspace(WorkspaceSlot slot, int64_t n) {
  constexpr int64_t kAlign = 64, kPad = kAlign / sizeof(T) > 1 ? kAlign / sizeof(T) : 1;
  static thread_local std::vector<T> buffers[kWsSlots];
  std::vector<T>& b = buffers[slot];
  if (static_cast<int64_t>(b.size()) < n + kPad) b.resize(n + kPad);
  const std::uintptr_t p = reinterpret_cast<std::uintptr_t>(b.data());
  return reinterpret_cast<T*>((p + kAlign - 1) / kAlign * kAlign);
}

}  // namespace convkit
