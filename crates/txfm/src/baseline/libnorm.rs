//! (Lib+Log)Norm features as an embedding.
