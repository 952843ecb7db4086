// Page-locked host copies, which tch binds only through `pin_memory(device)`: libtorch 2.11
// deprecates the device argument and warns on every call that passes one (once per thread, so
// once per loader worker), which buried a GPU run's output. This calls the one-argument form.
#include <ATen/ATen.h>

extern "C" {

// A new `at::Tensor*` holding a pinned copy of `tensor` (a tch tensor's `at::Tensor*`), or null
// if libtorch refused (no accelerator to pin for).
void *txfm_pin_memory(void *tensor) {
  try {
    const at::Tensor &t = *static_cast<const at::Tensor *>(tensor);
    return new at::Tensor(t.pin_memory());
  } catch (...) {
    return nullptr;
  }
}

}  // extern "C"
