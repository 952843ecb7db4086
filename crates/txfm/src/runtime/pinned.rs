//! Page-locked (pinned) host memory for non-blocking host-to-GPU copies, through
//! `csrc/pinned.cpp`: tch's `pin_memory(device)` passes the device argument that libtorch 2.11
//! deprecates, with a warning per loader thread.

use std::ffi::c_void;

use tch::{Device, Tensor};

unsafe extern "C" {
    fn txfm_pin_memory(tensor: *mut c_void) -> *mut c_void;
}

/// A pinned copy of the host tensor `t`, to be copied to `device` without blocking. Falls back to
/// tch's call (which warns but pins) if libtorch refuses the one-argument form.
pub fn pinned(t: &Tensor, device: Device) -> Tensor {
    // SAFETY: tch's tensor handle is an `at::Tensor*`, valid while `t` lives; a non-null result
    // is a new `at::Tensor*` that the returned Tensor owns and frees.
    let ptr = unsafe { txfm_pin_memory(t.as_ptr() as *mut c_void) };
    if ptr.is_null() {
        return t.pin_memory(device);
    }
    unsafe { Tensor::from_ptr(ptr as *mut torch_sys::C_tensor) }
}
