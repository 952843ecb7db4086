//! Peak GPU memory as libtorch's caching allocator counts it (`torch.cuda.max_memory_allocated`
//! and `max_memory_reserved`), through `csrc/device_memory.cpp`.

use tch::Device;

/// Peak bytes on one device since start-up or [`reset_peak_memory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeakMemory {
    /// Held by tensors.
    pub allocated_bytes: u64,
    /// Held by the allocator's cache (what the device sees as used, apart from CUDA's context).
    pub reserved_bytes: u64,
}

unsafe extern "C" {
    fn txfm_cuda_peak_memory(index: i32, allocated: *mut i64, reserved: *mut i64) -> i32;
    fn txfm_cuda_reset_peak_memory(index: i32) -> i32;
}

/// The peaks of a CUDA device that libtorch has allocated on; `None` for the CPU, or a device
/// libtorch has not used or does not have.
pub fn peak_memory(device: Device) -> Option<PeakMemory> {
    let Device::Cuda(index) = device else { return None };
    let (mut allocated, mut reserved) = (0i64, 0i64);
    // SAFETY: two out-parameters; the shim catches libtorch's exceptions.
    let code = unsafe { txfm_cuda_peak_memory(index as i32, &mut allocated, &mut reserved) };
    (code == 0).then_some(PeakMemory { allocated_bytes: allocated as u64, reserved_bytes: reserved as u64 })
}

/// Starts the peaks afresh from the current usage (a no-op where [`peak_memory`] is `None`).
pub fn reset_peak_memory(device: Device) {
    if let Device::Cuda(index) = device {
        // SAFETY: no arguments but the index; failures are ignored as documented.
        unsafe { txfm_cuda_reset_peak_memory(index as i32) };
    }
}

#[cfg(test)]
mod tests {
    use tch::{Kind, Tensor};

    use super::*;

    #[test]
    fn peaks_are_counted_on_a_gpu_and_absent_elsewhere() {
        assert_eq!(peak_memory(Device::Cpu), None);
        if !tch::Cuda::is_available() {
            // Asking about a device that does not exist answers None rather than aborting.
            assert_eq!(peak_memory(Device::Cuda(0)), None);
            assert_eq!(peak_memory(Device::Cuda(7)), None);
            reset_peak_memory(Device::Cuda(0));
            return;
        }
        let device = Device::Cuda(0);
        let t = Tensor::zeros([16 << 20], (Kind::Float, device));
        reset_peak_memory(device);
        let before = peak_memory(device).unwrap();
        let u = Tensor::ones([16 << 20], (Kind::Float, device));
        let after = peak_memory(device).unwrap();
        assert!(after.allocated_bytes >= before.allocated_bytes + (64 << 20), "{before:?} → {after:?}");
        assert!(after.reserved_bytes >= after.allocated_bytes);
        drop((t, u));
    }
}
