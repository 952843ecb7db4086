//! The library's errors as Python exceptions, with the message the CLI prints: a missing file is
//! `FileNotFoundError`, other I/O and unreadable files `OSError`, bad input or settings
//! `ValueError`, a libtorch failure `RuntimeError`.

use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyPermissionError, PyRuntimeError, PyValueError};
use pyo3::PyErr;
use txfm::Error;

pub fn to_py(e: Error) -> PyErr {
    let message = e.to_string();
    match &e {
        Error::Io { err, .. } if err.kind() == std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
        Error::Io { err, .. } if err.kind() == std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(message),
        Error::Io { .. } | Error::Hdf5 { .. } | Error::Parquet { .. } => PyOSError::new_err(message),
        Error::Format { .. } | Error::NotCounts { .. } | Error::Config { .. } | Error::Invalid(_) => PyValueError::new_err(message),
        Error::Torch(_) => PyRuntimeError::new_err(message),
    }
}

/// `.py()`: a library result as a Python one.
pub trait PyResultExt<T> {
    fn py(self) -> pyo3::PyResult<T>;
}

impl<T> PyResultExt<T> for txfm::Result<T> {
    fn py(self) -> pyo3::PyResult<T> {
        self.map_err(to_py)
    }
}
