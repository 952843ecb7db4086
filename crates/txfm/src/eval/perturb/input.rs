//! Loading the benchmark's input from an h5ad.
