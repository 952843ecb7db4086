// libtorch's autocast controls that tch 0.24 does not bind: per-device enable flags and the
// reduced dtype (tch's `autocast` can only switch CUDA autocast on at its default, float16; TxFM
// trains in bfloat16, which needs no loss scaling). C linkage so Rust can declare them directly.
#include <ATen/autocast_mode.h>

namespace {
at::DeviceType device_type(int device) {
  return device == 1 ? at::kCUDA : at::kCPU;
}
}  // namespace

extern "C" {

bool txfm_autocast_is_enabled(int device) {
  return at::autocast::is_autocast_enabled(device_type(device));
}

void txfm_autocast_set_enabled(int device, bool enabled) {
  at::autocast::set_autocast_enabled(device_type(device), enabled);
}

// dtype: 0 = bfloat16, 1 = float16; returns the previous one with the same code (2 = other).
int txfm_autocast_set_dtype(int device, int dtype) {
  auto before = at::autocast::get_autocast_dtype(device_type(device));
  at::autocast::set_autocast_dtype(device_type(device), dtype == 1 ? at::kHalf : at::kBFloat16);
  return before == at::kBFloat16 ? 0 : before == at::kHalf ? 1 : 2;
}

int txfm_autocast_increment_nesting() {
  return at::autocast::increment_nesting();
}

// Leaving the outermost autocast region frees the casted-weight cache, as torch.autocast does.
void txfm_autocast_decrement_nesting() {
  if (at::autocast::decrement_nesting() == 0) {
    at::autocast::clear_cache();
  }
}

}  // extern "C"

// Whether this CPU multiplies bfloat16 natively in its AMX tiles (Intel since Sapphire Rapids),
// as libtorch's cpuinfo sees it: there, CPU autocast to bfloat16 runs the S/B shapes' matmuls
// 5-7x faster than float32 (BENCHMARKS.md); elsewhere bfloat16 on CPU can be slower than float32.
#include <ATen/cpu/Utils.h>

extern "C" bool txfm_cpu_has_amx_bf16() {
  auto caps = at::cpu::get_cpu_capabilities();
  auto it = caps.find("amx_bf16");
  return it != caps.end() && it->second.isBool() && it->second.toBool();
}
