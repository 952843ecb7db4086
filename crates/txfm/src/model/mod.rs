//! The TxFM model, in the order a sample flows through it (MAE-style):
//! [`sample_visible_genes`] picks the `K` visible genes (on the host, in the loader) →
//! [`BatchTensors`] moves the batch to the device → [`TxFm::encode`] turns the visible tokens into a
//! CLS embedding → [`TxFm::decode`] predicts every vocabulary gene from it → [`TxFm::loss`] scores
//! the profiled genes. [`ModelConfig`] holds every axis the paper ablates.

mod activation;
pub mod axes;
mod batch_tensors;
mod block;
mod config;
mod decoder;
mod encoder;
pub mod flops;
mod loss;
mod readout;
mod sampling;
#[cfg(test)]
mod testutil;
mod txfm;
pub mod bundle;

pub use axes::{AxesAccumulator, PrincipalAxes, ReadoutAxes, AXES_FILE};
pub use batch_tensors::BatchTensors;
pub use bundle::ModelBundle;
pub use config::{CountActivation, DecoderBiasInit, DecoderConfig, LossKind, ModelConfig, ValueEncoding};
pub use encoder::VisibleTokens;
pub use loss::masked_mean;
pub use readout::Readout;
pub use sampling::{frequency_weights, sample_visible_genes, sample_visible_genes_expressed};
pub use txfm::{TxFm, num_parameters};
