// Peak device memory from libtorch's caching allocator (what torch.cuda.max_memory_allocated
// reports), which tch 0.24 does not bind. Through c10's device-generic allocator interface, so no
// CUDA header is needed to build it.
#include <cstdint>

#include <c10/core/CachingDeviceAllocator.h>

extern "C" {

// Fills the peak bytes allocated to tensors and reserved by the cache on CUDA device `index`
// since start-up or the last reset. Returns 0, or 1 where there is no such device (or no CUDA).
int txfm_cuda_peak_memory(int index, int64_t *allocated, int64_t *reserved) {
  try {
    auto *allocator = c10::getDeviceAllocator(c10::DeviceType::CUDA);
    if (allocator == nullptr) return 1;
    auto stats = allocator->getDeviceStats(static_cast<c10::DeviceIndex>(index));
    constexpr auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    *allocated = stats.allocated_bytes[all].peak;
    *reserved = stats.reserved_bytes[all].peak;
    return 0;
  } catch (...) {
    return 1;
  }
}

int txfm_cuda_reset_peak_memory(int index) {
  try {
    auto *allocator = c10::getDeviceAllocator(c10::DeviceType::CUDA);
    if (allocator == nullptr) return 1;
    allocator->resetPeakStats(static_cast<c10::DeviceIndex>(index));
    return 0;
  } catch (...) {
    return 1;
  }
}

}  // extern "C"
