//! libtorch's intra-op thread count, set for a scope and restored after. The setting is global to
//! the process, which in Python is shared with PyTorch and every later call: a run that lowers
//! it (training leaves cores to the loader) must not leave it lowered.

/// Sets libtorch's thread count while alive; restores the previous count on drop.
#[must_use = "the thread count is restored when this guard is dropped"]
pub struct TorchThreads(i32);

impl TorchThreads {
    pub fn set(n: usize) -> Self {
        let was = tch::get_num_threads();
        tch::set_num_threads(n.max(1) as i32);
        TorchThreads(was)
    }
}

impl Drop for TorchThreads {
    fn drop(&mut self) {
        tch::set_num_threads(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_is_restored() {
        let before = tch::get_num_threads();
        {
            let _one = TorchThreads::set(1);
            assert_eq!(tch::get_num_threads(), 1);
        }
        assert_eq!(tch::get_num_threads(), before);
    }
}
