//! Sample embeddings (CLS outputs) of a trained model for any input file.
