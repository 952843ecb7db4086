//! The library's one error type. Every variant that concerns a file names it.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The OS error is in the message and deliberately not a `source()`: error chains printed
    /// with their causes (`{:#}`, as the CLI does) would say it twice.
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{path}: HDF5: {message}")]
    Hdf5 { path: PathBuf, message: String },
    #[error("{path}: Parquet/Arrow: {message}")]
    Parquet { path: PathBuf, message: String },
    /// The file is readable but its content is not what it must be (missing field, bad shape...).
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// A matrix holds values that are not raw counts (negative, fractional, z-scored...).
    #[error(
        "{path}: {matrix} does not hold raw counts: {seen}. txfm models raw counts; pass the raw \
         matrix (e.g. layers['counts'] or raw/X), or allow normalised values explicitly \
         (--allow-non-counts / allow_non_counts = true) for already-normalised bulk data"
    )]
    NotCounts { path: PathBuf, matrix: String, seen: String },
    /// A configuration or manifest field is invalid.
    #[error("{origin}: {field}: {message}")]
    Config { origin: String, field: String, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), err: source }
    }
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format { path: path.into(), message: message.into() }
    }
    pub fn hdf5(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Self {
        Error::Hdf5 { path: path.into(), message: err.to_string() }
    }
    pub fn parquet(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Self {
        Error::Parquet { path: path.into(), message: err.to_string() }
    }
    pub fn config(origin: impl Into<String>, field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config { origin: origin.into(), field: field.into(), message: message.into() }
    }
}
