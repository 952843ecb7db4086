//! The tensor runtime: libtorch through `tch`. All tensor code of txfm goes through this module so
//! the runtime is not smeared through the codebase.

pub mod autocast;
pub mod device_memory;
pub mod dist;
pub mod hooks;
pub mod pinned;
pub mod threads;

pub use autocast::{autocast_for, cpu_has_amx_bf16, with_autocast, AutocastDtype, CpuAutocast, CPU_AUTOCAST_VAR};
pub use pinned::pinned;
pub use threads::TorchThreads;

use crate::{Error, Result};

/// Where tensors live. Parsed from `cpu`, `cuda`, `cuda:N` or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
    Auto,
}

impl std::str::FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "auto" => Ok(DeviceSpec::Auto),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| Error::Invalid(format!("device '{s}': expected cpu, cuda, cuda:N or auto"))),
        }
    }
}

impl DeviceSpec {
    /// Resolves to a concrete device; asking for CUDA where none is usable is an error, not a
    /// silent fall-back to CPU.
    pub fn resolve(self) -> Result<tch::Device> {
        let n = cuda_device_count();
        match self {
            DeviceSpec::Cpu => Ok(tch::Device::Cpu),
            DeviceSpec::Auto => Ok(if n > 0 { tch::Device::Cuda(0) } else { tch::Device::Cpu }),
            DeviceSpec::Cuda(i) if i < n => Ok(tch::Device::Cuda(i)),
            DeviceSpec::Cuda(i) => Err(Error::Invalid(format!(
                "device cuda:{i} requested but libtorch sees {n} CUDA device(s)"
            ))),
        }
    }
}

/// Keeps libtorch's CPU tensor memory in the heap between steps. libtorch allocates with glibc
/// malloc (the Rust global allocator serves only Rust's own allocations), and glibc by default
/// hands large freed blocks back to the kernel, so every training step faulted its activations and
/// gradients in afresh: with these settings a small-config training step ran 9.6% faster on CPU
/// and overtook PyTorch (BENCHMARKS.md). Call once at start-up.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation policy; it is safe to call at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}

/// Restores the default action of SIGPIPE, which Rust's runtime ignores: with it ignored, a
/// write to a closed pipe (`txfm corpus stats DIR | head -1`) fails and `println!` panics, exit
/// code 101 and a backtrace after the work is done. With the default, the process ends quietly at
/// that write, as Unix tools do. Every file txfm writes goes to a temporary name first, so ending
/// there leaves nothing half-written. Call once at start-up.
pub fn default_sigpipe() {
    // SAFETY: setting a signal's disposition to its default has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Number of CUDA devices libtorch can use (0 on a CPU-only machine).
pub fn cuda_device_count() -> usize {
    if tch::Cuda::is_available() { tch::Cuda::device_count() as usize } else { 0 }
}

/// One line describing the runtime, for logs and `txfm --version`-like reports.
pub fn describe() -> String {
    format!(
        "libtorch via tch 0.24 (torch 2.11), {} CPU thread(s), {} CUDA device(s), cuDNN {}",
        tch::get_num_threads(),
        cuda_device_count(),
        if tch::Cuda::cudnn_is_available() { "available" } else { "unavailable" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert!("gpu".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn libtorch_runs_a_matmul() {
        let a = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).reshape([2, 2]);
        let b = a.matmul(&a);
        let v: Vec<f32> = Vec::try_from(b.flatten(0, -1)).unwrap();
        assert_eq!(v, vec![7.0, 10.0, 15.0, 22.0]);
        assert_eq!(DeviceSpec::Cpu.resolve().unwrap(), tch::Device::Cpu);
    }
}
