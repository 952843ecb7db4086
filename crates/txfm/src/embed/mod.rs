//! Embedding new data with a trained model (`txfm embed`), in the order a pass runs:
//! [`genes`] maps the input's genes onto the model's vocabulary, [`sampler`] draws each row's
//! visible genes as the training loader does, [`embedder`] runs the encoder over streamed row
//! chunks (in the principal axes [`corpus_axes`] fits on the training corpus), [`output`] writes the embeddings ([`npy`], [`parquet`], or an h5ad copy with
//! `obsm[key]`), and [`run`] ties them into one call.

pub mod genes;
pub mod sampler;
pub mod embedder;
pub mod corpus_axes;
pub mod output;
pub mod npy;
pub mod parquet;
pub mod run;

pub use corpus_axes::{fit_axes_on_corpus, write_axes_bundle};
pub use embedder::Embedder;
pub use genes::{GeneMap, ModelRows};
pub use output::{EmbeddingSink, OutputFormat};
pub use run::{EmbedJob, EmbedOptions, EmbedSummary, GeneWeights};
pub use sampler::Sampler;
