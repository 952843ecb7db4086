//! Mixed precision: run a closure under libtorch autocast on a device at a chosen reduced type.
//! tch's own `tch::autocast` only switches CUDA autocast on at libtorch's default type (float16);
//! TxFM trains in bfloat16, so the enable flag and the type are set here through `csrc/autocast.cpp`.
//! Weights stay float32: autocast casts per op (matmuls and attention run in the reduced type,
//! reductions and the loss in float32), as `torch.autocast` does.

use serde::{Deserialize, Serialize};
use tch::Device;

/// The reduced floating-point type of an autocast region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutocastDtype {
    /// bfloat16: float32's range, so no loss scaling (the paper's choice on H100).
    Bf16,
    /// float16: needs loss scaling for training, which txfm does not do; for inference only.
    F16,
}

unsafe extern "C" {
    fn txfm_autocast_is_enabled(device: i32) -> bool;
    fn txfm_autocast_set_enabled(device: i32, enabled: bool);
    fn txfm_autocast_set_dtype(device: i32, dtype: i32) -> i32;
    fn txfm_autocast_increment_nesting() -> i32;
    fn txfm_autocast_decrement_nesting();
}

fn code(device: Device) -> i32 {
    match device {
        Device::Cuda(_) => 1,
        _ => 0,
    }
}

fn dtype_code(dtype: AutocastDtype) -> i32 {
    match dtype {
        AutocastDtype::Bf16 => 0,
        AutocastDtype::F16 => 1,
    }
}

/// Whether autocast is on for `device`'s type (CPU or CUDA) on this thread.
pub fn is_enabled(device: Device) -> bool {
    // SAFETY: reads a thread-local flag of libtorch.
    unsafe { txfm_autocast_is_enabled(code(device)) }
}

/// Runs `f` with autocast on for `device`'s type at `dtype` (or as is when `dtype` is `None`), then
/// restores the previous flag and type, also if `f` panics.
pub fn with_autocast<T>(device: Device, dtype: Option<AutocastDtype>, f: impl FnOnce() -> T) -> T {
    let Some(dtype) = dtype else { return f() };
    struct Restore {
        device: i32,
        enabled: bool,
        dtype: i32,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: thread-local autocast state of libtorch; see `with_autocast`.
            unsafe {
                txfm_autocast_decrement_nesting();
                txfm_autocast_set_enabled(self.device, self.enabled);
                if self.dtype < 2 {
                    txfm_autocast_set_dtype(self.device, self.dtype);
                }
            }
        }
    }
    let device = code(device);
    // SAFETY: these calls only set libtorch's thread-local autocast state, restored by `Restore`.
    let _restore = unsafe {
        let enabled = txfm_autocast_is_enabled(device);
        let before = txfm_autocast_set_dtype(device, dtype_code(dtype));
        txfm_autocast_set_enabled(device, true);
        txfm_autocast_increment_nesting();
        Restore { device, enabled, dtype: before }
    };
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    // CPU autocast exercises the same libtorch calls as CUDA's, so CI checks the shim.
    #[test]
    fn matmul_runs_in_the_requested_type_and_the_state_is_restored() {
        let a = Tensor::ones([4, 8], (Kind::Float, Device::Cpu));
        let b = Tensor::ones([8, 2], (Kind::Float, Device::Cpu));
        assert!(!is_enabled(Device::Cpu));
        let (inner, nested) = with_autocast(Device::Cpu, Some(AutocastDtype::Bf16), || {
            assert!(is_enabled(Device::Cpu));
            let nested = with_autocast(Device::Cpu, Some(AutocastDtype::F16), || a.matmul(&b).kind());
            (a.matmul(&b).kind(), nested)
        });
        assert_eq!(inner, Kind::BFloat16, "the outer region's type is back after the inner one");
        assert_eq!(nested, Kind::Half);
        assert!(!is_enabled(Device::Cpu));
        assert_eq!(a.matmul(&b).kind(), Kind::Float);
        assert_eq!(with_autocast(Device::Cpu, None, || a.matmul(&b).kind()), Kind::Float);
        // Reductions stay float32 under autocast, as the loss needs.
        let sum = with_autocast(Device::Cpu, Some(AutocastDtype::Bf16), || a.matmul(&b).sum(Kind::Float));
        assert_eq!(sum.kind(), Kind::Float);
        assert_eq!(sum.double_value(&[]), 64.0);
    }

    #[test]
    fn a_panic_inside_restores_the_state() {
        let r = std::panic::catch_unwind(|| with_autocast(Device::Cpu, Some(AutocastDtype::Bf16), || panic!("inside")));
        assert!(r.is_err());
        assert!(!is_enabled(Device::Cpu));
    }
}
