//! Training: batches, the streaming corpus loader, and (to come) the training loop.

pub mod batch;
pub mod loader;

pub use batch::Batch;
