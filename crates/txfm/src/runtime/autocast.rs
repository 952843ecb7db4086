//! Mixed precision: run a closure under libtorch autocast on a device at a chosen reduced type.
//! tch's own `tch::autocast` only switches CUDA autocast on at libtorch's default type (float16);
//! TxFM trains in bfloat16, so the enable flag and the type are set here through `csrc/autocast.cpp`.
//! Weights stay float32: autocast casts per op (matmuls and attention run in the reduced type), as
//! `torch.autocast` does. Which ops it upcasts differs between CUDA and CPU (CPU keeps `exp` and
//! `tanh` in the reduced type), so the model casts its decoder logits to float32 itself
//! (`TxFm::decode`): the count activation and the loss always run in float32.
//!
//! A run's config asks for autocast (`autocast = true`, the default of the GPU presets); where it
//! then applies is decided here ([`autocast_for`]): on CUDA always; on CPU only with
//! `TXFM_CPU_AUTOCAST=on`. On a CPU with AMX bfloat16 trains the S shape 2.8x and embeds 2.4-3.1x
//! faster (BENCHMARKS.md), but on the quickstart's model it cost the CLS read-out about 3
//! benchmark points when training and 0.6-1.6 when embedding (measured, docs/experiments.md § 32),
//! so float32 stays the CPU default and a run that could use AMX says how to opt in.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use tch::Device;

use crate::{Error, Result};

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
    fn txfm_cpu_has_amx_bf16() -> bool;
    fn txfm_autocast_is_enabled(device: i32) -> bool;
    fn txfm_autocast_set_enabled(device: i32, enabled: bool);
    fn txfm_autocast_set_dtype(device: i32, dtype: i32) -> i32;
    fn txfm_autocast_increment_nesting() -> i32;
    fn txfm_autocast_decrement_nesting();
}

/// The environment variable that decides CPU autocast ([`CpuAutocast`]).
pub const CPU_AUTOCAST_VAR: &str = "TXFM_CPU_AUTOCAST";

impl AutocastDtype {
    /// The type's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            AutocastDtype::Bf16 => "bfloat16",
            AutocastDtype::F16 => "float16",
        }
    }
}

/// Whether a CPU region runs under the autocast its config asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuAutocast {
    /// Float32 on CPU (the default).
    Off,
    /// At the config's type, training and embedding (fast on CPUs with AMX, [`cpu_has_amx_bf16`];
    /// slow where the CPU emulates the type).
    On,
}

impl std::str::FromStr for CpuAutocast {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "on" | "1" | "true" => Ok(CpuAutocast::On),
            "" | "off" | "0" | "false" => Ok(CpuAutocast::Off),
            _ => Err(Error::Invalid(format!("{CPU_AUTOCAST_VAR}={s}: expected on or off"))),
        }
    }
}

impl CpuAutocast {
    /// The policy `TXFM_CPU_AUTOCAST` names (`off` when unset).
    pub fn from_env() -> Result<Self> {
        std::env::var(CPU_AUTOCAST_VAR).map_or(Ok(CpuAutocast::Off), |v| v.parse())
    }
}

/// Whether this CPU has AMX-BF16 tiles (libtorch's cpuinfo; the OS's permission to use them is
/// requested by oneDNN on first use).
pub fn cpu_has_amx_bf16() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    // SAFETY: reads libtorch's CPU capability table; no state is changed.
    *HAS.get_or_init(|| unsafe { txfm_cpu_has_amx_bf16() })
}

/// The reduced type of a forward pass on `device` whose config asks for `requested` (`None`:
/// float32): `requested` on CUDA; on CPU as `TXFM_CPU_AUTOCAST` decides ([`CpuAutocast`]). An
/// unreadable value of the variable is an error naming it.
pub fn autocast_for(device: Device, requested: Option<AutocastDtype>) -> Result<Option<AutocastDtype>> {
    Ok(decide(device, requested, CpuAutocast::from_env()?))
}

fn decide(device: Device, requested: Option<AutocastDtype>, cpu: CpuAutocast) -> Option<AutocastDtype> {
    match (device, cpu) {
        (Device::Cpu, CpuAutocast::Off) => None,
        _ => requested,
    }
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
    fn cpu_regions_use_autocast_only_when_asked() {
        use AutocastDtype::{Bf16, F16};
        use CpuAutocast::{Off, On};
        let (cpu, cuda) = (Device::Cpu, Device::Cuda(0));
        // CUDA follows the config whatever the CPU policy.
        for p in [Off, On] {
            assert_eq!(decide(cuda, Some(Bf16), p), Some(Bf16));
            assert_eq!(decide(cuda, None, p), None);
        }
        assert_eq!(decide(cpu, Some(Bf16), Off), None);
        assert_eq!(decide(cpu, Some(F16), On), Some(F16));
        // A config without autocast stays float32 under every policy.
        assert_eq!(decide(cpu, None, On), None);
        assert_eq!("OFF".parse::<CpuAutocast>().unwrap(), Off);
        assert_eq!("".parse::<CpuAutocast>().unwrap(), Off);
        assert_eq!("1".parse::<CpuAutocast>().unwrap(), On);
        let err = "auto".parse::<CpuAutocast>().unwrap_err().to_string();
        assert!(err.contains("TXFM_CPU_AUTOCAST=auto") && err.contains("on or off"), "{err}");
    }

    // libtorch's cpuinfo reads CPUID and the OS-enabled state (XCR0); the kernel lists `amx_bf16`
    // in /proc/cpuinfo under the same two conditions.
    #[cfg(target_os = "linux")]
    #[test]
    fn amx_detection_agrees_with_the_kernels_cpu_flags() {
        let info = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo is readable on Linux");
        let flagged = info
            .lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|l| l.split_whitespace().any(|f| f == "amx_bf16"));
        assert_eq!(cpu_has_amx_bf16(), flagged);
    }

    #[test]
    fn a_panic_inside_restores_the_state() {
        let r = std::panic::catch_unwind(|| with_autocast(Device::Cpu, Some(AutocastDtype::Bf16), || panic!("inside")));
        assert!(r.is_err());
        assert!(!is_enabled(Device::Cpu));
    }
}
