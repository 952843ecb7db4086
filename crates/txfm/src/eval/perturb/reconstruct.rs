//! inv: gene-expression reconstruction from frozen embeddings.
