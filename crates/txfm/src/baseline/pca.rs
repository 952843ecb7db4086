//! PCA baseline.
