//! Embedding new data with a trained model (`txfm embed`), in the order a pass runs:
//! [`genes`] maps the input's genes onto the model's vocabulary, [`sampler`] draws each row's
//! visible genes as the training loader does, [`embedder`] runs the encoder over streamed row
//! chunks, [`output`] writes the embeddings ([`npy`], [`parquet`], or an h5ad copy with
//! `obsm[key]`), and [`run`] ties them into one call.

pub mod genes;
pub mod sampler;
pub mod embedder;
pub mod output;
pub mod npy;
pub mod parquet;
pub mod run;

pub use embedder::Embedder;
pub use genes::{GeneMap, ModelRows};
pub use output::{EmbeddingSink, OutputFormat};
pub use run::{EmbedJob, EmbedOptions, EmbedSummary, GeneWeights};
pub use sampler::Sampler;
