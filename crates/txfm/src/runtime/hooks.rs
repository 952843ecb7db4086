//! Autograd hooks that tch does not bind (through `csrc/grad_hooks.cpp`): a callback run as soon as
//! the backward pass has accumulated a leaf tensor's gradient. Data-parallel training starts a
//! gradient bucket's all-reduce from it while the rest of the backward pass still runs.

use std::ffi::{c_int, c_void};

use tch::Tensor;

use crate::{Error, Result};

/// Called with the `ctx` and `index` given at registration, after the tensor's `.grad` holds this
/// backward pass's gradient. It runs on the thread executing the backward pass (the caller's for
/// CPU tensors, libtorch's device thread for CUDA ones) and must not unwind.
pub type GradReadyFn = extern "C" fn(ctx: *mut c_void, index: usize);

unsafe extern "C" {
    fn txfm_set_grad_ready_hook(tensor: *mut c_void, f: Option<GradReadyFn>, ctx: *mut c_void, index: usize) -> c_int;
}

/// Sets `tensor`'s gradient-ready hook, replacing any earlier one (a tensor has one).
///
/// # Safety
/// `ctx` must stay valid for `f` until the hook is removed with [`clear_grad_ready_hook`] (the
/// hook lives with the tensor's storage, which the caller does not own alone).
pub unsafe fn set_grad_ready_hook(tensor: &Tensor, f: GradReadyFn, ctx: *mut c_void, index: usize) -> Result<()> {
    // SAFETY: tch's tensor handle is an `at::Tensor*`, valid while `tensor` lives.
    let code = unsafe { txfm_set_grad_ready_hook(tensor.as_ptr() as *mut c_void, Some(f), ctx, index) };
    if code != 0 {
        return Err(Error::Invalid("a gradient hook goes on a leaf tensor that requires grad".into()));
    }
    Ok(())
}

/// Removes `tensor`'s gradient-ready hook, if any.
pub fn clear_grad_ready_hook(tensor: &Tensor) {
    // SAFETY: as above; a null callback removes the hook and never fails.
    unsafe { txfm_set_grad_ready_hook(tensor.as_ptr() as *mut c_void, None, std::ptr::null_mut(), 0) };
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tch::{Device, Kind};

    use super::*;

    /// (index, the gradient's sum when the hook ran) per call.
    type Calls = Mutex<Vec<(usize, f64)>>;
    static PARAMS: Mutex<Vec<Tensor>> = Mutex::new(Vec::new());

    extern "C" fn record(ctx: *mut c_void, index: usize) {
        // SAFETY: the tests pass a `&Calls` that outlives their hooks.
        let calls = unsafe { &*(ctx as *const Calls) };
        let sum = PARAMS.lock().unwrap()[index].grad().sum(Kind::Double).double_value(&[]);
        calls.lock().unwrap().push((index, sum));
    }

    #[test]
    fn hooks_fire_once_per_backward_after_the_gradient_is_written_latest_layer_first() {
        let opts = (Kind::Float, Device::Cpu);
        let w1 = Tensor::full([3, 4], 0.5, opts).set_requires_grad(true);
        let w2 = Tensor::full([4, 2], 2.0, opts).set_requires_grad(true);
        let x = Tensor::ones([5, 3], opts);
        *PARAMS.lock().unwrap() = vec![w1.shallow_clone(), w2.shallow_clone()];
        let calls: Calls = Mutex::new(Vec::new());
        let ctx = &calls as *const Calls as *mut c_void;
        for (i, w) in [&w1, &w2].into_iter().enumerate() {
            // SAFETY: `calls` outlives the hooks, which are cleared below.
            unsafe { set_grad_ready_hook(w, record, ctx, i) }.unwrap();
        }
        // loss = Σ x·w1·w2 (w1 used twice: its hook still fires once, after both parts are summed).
        let loss = (x.matmul(&w1).matmul(&w2).sum(Kind::Float)) + w1.sum(Kind::Float);
        loss.backward();
        // d/dw2 = (x·w1)ᵀ·1 = 5 rows of 1.5 → each entry 7.5, 8 entries; d/dw1 = x ᵀ·1·w2ᵀ + 1 = 5·4 + 1 = 21 each, 12 entries.
        assert_eq!(*calls.lock().unwrap(), vec![(1, 8.0 * 7.5), (0, 12.0 * 21.0)]);

        // A second pass accumulates onto the first; the hook sees the sum.
        calls.lock().unwrap().clear();
        (x.matmul(&w1).matmul(&w2).sum(Kind::Float) + w1.sum(Kind::Float)).backward();
        assert_eq!(*calls.lock().unwrap(), vec![(1, 2.0 * 60.0), (0, 2.0 * 252.0)]);

        for w in [&w1, &w2] {
            clear_grad_ready_hook(w);
        }
        calls.lock().unwrap().clear();
        (x.matmul(&w1).matmul(&w2).sum(Kind::Float)).backward();
        assert!(calls.lock().unwrap().is_empty(), "cleared hooks stay silent");

        // Hooks go on leaves that require grad only.
        let not_leaf = w1.shallow_clone() * 2.0;
        // SAFETY: refused, so nothing keeps `ctx`.
        assert!(unsafe { set_grad_ready_hook(&not_leaf, record, ctx, 0) }.is_err());
        assert!(unsafe { set_grad_ready_hook(&x, record, ctx, 0) }.is_err());
    }
}
