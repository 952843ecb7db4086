//! Progress for notebooks: the library reports into an `indicatif` bar (hidden here); a watcher
//! thread reads its position a few times a second and calls the Python callback
//! `progress(label, done, total)` with the GIL, which the Python layer turns into a tqdm bar.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::ProgressBar;
use pyo3::prelude::*;

pub struct Progress {
    callback: Option<Py<PyAny>>,
    label: String,
    bar: ProgressBar,
}

impl Progress {
    pub fn new(callback: Option<Py<PyAny>>, label: &str, total: u64) -> Self {
        let bar = ProgressBar::hidden();
        bar.set_length(total);
        Progress { callback, label: label.into(), bar }
    }

    fn report(&self) {
        if let Some(cb) = &self.callback {
            let (pos, len) = (self.bar.position(), self.bar.length().unwrap_or(0));
            // A failing display must not fail the computation.
            Python::attach(|py| {
                let _ = cb.call1(py, (self.label.as_str(), pos, len));
            });
        }
    }

    /// Runs `f` with the bar; call with the GIL released (the watcher takes it to report).
    pub fn run<T>(&self, f: impl FnOnce(&ProgressBar) -> T) -> T {
        if self.callback.is_none() {
            return f(&self.bar);
        }
        let done = AtomicBool::new(false);
        let out = std::thread::scope(|scope| {
            let watcher = scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    self.report();
                    std::thread::park_timeout(Duration::from_millis(250));
                }
            });
            // Stops the watcher however `f` ends: a panic in `f` would otherwise leave the scope
            // waiting on the watcher for ever (the call would hang instead of raising).
            let _stop = Stop(&done, watcher.thread());
            f(&self.bar)
        });
        // The final position, which the watcher may have missed.
        self.report();
        out
    }
}

struct Stop<'a>(&'a AtomicBool, &'a std::thread::Thread);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        self.1.unpark();
    }
}
