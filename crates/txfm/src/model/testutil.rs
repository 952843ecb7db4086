//! Helpers shared by the model's unit tests.

use tch::{Kind, Tensor};

/// All elements of `t`, flattened, as f64.
pub(super) fn values(t: &Tensor) -> Vec<f64> {
    Vec::try_from(t.to_kind(Kind::Double).reshape([-1])).unwrap()
}

/// The value of a one-element tensor.
pub(super) fn scalar(t: &Tensor) -> f64 {
    let v = values(t);
    assert_eq!(v.len(), 1, "not a scalar");
    v[0]
}

/// Largest absolute element-wise difference of two same-shaped tensors.
pub(super) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    scalar(&(a - b).abs().max())
}

pub(super) fn assert_close(actual: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(actual.len(), expected.len());
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() <= tol * e.abs().max(1.0), "{actual:?} != {expected:?} (tolerance {tol})");
    }
}

/// Serialises the tests that seed or draw from libtorch's global CPU generator: tests run on
/// parallel threads, and a draw from another test between `manual_seed` and a random op would
/// break reproducibility checks.
pub(super) fn lock_torch_rng() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
