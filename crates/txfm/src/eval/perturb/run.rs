//! The whole benchmark: embeddings × post-processing × seeds.
