//! An AnnData's matrix handed over from Python as its numpy buffers, read in place: the binding's
//! side of [`txfm::data::MemorySource`].
//!
//! Python passes `("csr" | "csc", indptr, indices, data)` (scipy's three arrays) or
//! `("dense", array)`. Each array is borrowed read-only for the duration of the call (numpy's
//! borrow flags refuse a concurrent writer from Rust). The GIL is released while the buffers are
//! read: another Python thread writing into the same arrays meanwhile is a data race, as with any
//! numpy extension that releases the GIL; don't. Arrays must be aligned (numpy's `flags.aligned`;
//! the Python layer ensures it), since they are read as Rust slices.

use numpy::ndarray::{Dimension, Ix1, Ix2};
use numpy::{PyReadonlyArray, PyReadonlyArray2};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use txfm::data::{MemoryMatrix, Values};

/// Refuses a misaligned array or one whose strides are not whole elements (a field of a structured
/// array): reading it as a slice of its element type would be undefined behaviour.
fn check_aligned(what: &str, obj: &Bound<'_, PyAny>) -> PyResult<()> {
    let aligned: bool = obj.getattr("flags")?.getattr("aligned")?.extract()?;
    let itemsize: isize = obj.getattr("itemsize")?.extract()?;
    let strides: Vec<isize> = obj.getattr("strides")?.extract()?;
    if !aligned || strides.iter().any(|s| s % itemsize.max(1) != 0) {
        return Err(PyTypeError::new_err(format!("{what}: the array is not aligned to its element type; pass numpy.require(a, requirements='A')")));
    }
    Ok(())
}

fn dtype_error(what: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    let dtype = obj.getattr("dtype").map(|d| d.to_string()).unwrap_or_else(|_| "?".into());
    PyTypeError::new_err(format!("{what}: numpy arrays of integers or floats are read; got dtype {dtype}"))
}

/// The smallest slice holding every element of a strided 2-D view, and where the view's first
/// element and its strides (in elements) sit in it.
fn span<'a, T>(a: &'a PyReadonlyArray2<'_, T>) -> (&'a [T], isize, isize, usize)
where
    T: numpy::Element,
{
    use numpy::PyUntypedArrayMethods;
    if a.shape().contains(&0) {
        return (&[], 1, 1, 0);
    }
    let view = a.as_array();
    let (n, m) = view.dim();
    let (rs, cs) = (view.strides()[0], view.strides()[1]);
    let far = |k: usize, s: isize| (k as isize - 1) * s;
    let lo = far(n, rs).min(0) + far(m, cs).min(0);
    let hi = far(n, rs).max(0) + far(m, cs).max(0);
    // SAFETY: every element of the view lies at `as_ptr() + i*rs + j*cs`, between offsets `lo` and
    // `hi` of the same allocation, which the read-only borrow keeps alive and unchanged.
    let slice = unsafe { std::slice::from_raw_parts(view.as_ptr().offset(lo), (hi - lo + 1) as usize) };
    (slice, rs, cs, (-lo) as usize)
}

/// The element types read, listed once: the enum of borrowed arrays and every dispatch over it are
/// generated from this list.
macro_rules! held {
    ($($v:ident: $t:ty),*) => {
        /// An array of dimension `D` borrowed in its own element type.
        pub enum Held<'py, D: Dimension> {
            $($v(PyReadonlyArray<'py, $t, D>),)*
        }

        impl<'py, D: Dimension> Held<'py, D> {
            pub fn extract(what: &str, obj: &Bound<'py, PyAny>) -> PyResult<Self> {
                check_aligned(what, obj)?;
                $(if let Ok(a) = obj.extract::<PyReadonlyArray<'py, $t, D>>() {
                    return Ok(Held::$v(a));
                })*
                Err(dtype_error(what, obj))
            }
        }

        impl Held<'_, Ix1> {
            /// The elements, which must be contiguous (scipy's sparse arrays always are).
            pub fn values(&self) -> PyResult<Values<'_>> {
                let contiguous = |_| PyTypeError::new_err("sparse matrix arrays must be contiguous");
                Ok(match self {
                    $(Held::$v(a) => Values::$v(a.as_slice().map_err(contiguous)?),)*
                })
            }
        }

        impl Held<'_, Ix2> {
            pub fn shape(&self) -> (usize, usize) {
                use numpy::PyUntypedArrayMethods;
                match self {
                    $(Held::$v(a) => (a.shape()[0], a.shape()[1]),)*
                }
            }

            pub fn matrix(&self) -> MemoryMatrix<'_> {
                match self {
                    $(Held::$v(a) => {
                        let (s, row_stride, col_stride, offset) = span(a);
                        MemoryMatrix::Dense { values: Values::$v(s), row_stride, col_stride, offset }
                    })*
                }
            }
        }
    };
}

held!(F32: f32, F64: f64, I8: i8, I16: i16, I32: i32, I64: i64, U8: u8, U16: u16, U32: u32, U64: u64);

/// A 1-D array (scipy's `indptr`, `indices`, `data`).
pub type Held1<'py> = Held<'py, Ix1>;
/// A 2-D array (a dense `X`).
pub type Held2<'py> = Held<'py, Ix2>;

/// The arrays of a matrix spec, borrowed.
pub enum HeldMatrix<'py> {
    Sparse { csr: bool, indptr: Held1<'py>, indices: Held1<'py>, data: Held1<'py> },
    Dense(Held2<'py>),
}

impl<'py> HeldMatrix<'py> {
    /// Parses `("csr"|"csc", indptr, indices, data)` or `("dense", array)`.
    pub fn extract(spec: &Bound<'py, PyAny>) -> PyResult<Self> {
        let kind: String = spec.get_item(0)?.extract()?;
        match kind.as_str() {
            "csr" | "csc" => Ok(HeldMatrix::Sparse {
                csr: kind == "csr",
                indptr: Held1::extract("indptr", &spec.get_item(1)?)?,
                indices: Held1::extract("indices", &spec.get_item(2)?)?,
                data: Held1::extract("data", &spec.get_item(3)?)?,
            }),
            "dense" => Ok(HeldMatrix::Dense(Held2::extract("X", &spec.get_item(1)?)?)),
            other => Err(PyTypeError::new_err(format!("matrix kind {other}: expected csr, csc or dense"))),
        }
    }

    pub fn matrix(&self) -> PyResult<MemoryMatrix<'_>> {
        Ok(match self {
            HeldMatrix::Sparse { csr: true, indptr, indices, data } => {
                MemoryMatrix::Csr { indptr: indptr.values()?, indices: indices.values()?, data: data.values()? }
            }
            HeldMatrix::Sparse { csr: false, indptr, indices, data } => {
                MemoryMatrix::Csc { indptr: indptr.values()?, indices: indices.values()?, data: data.values()? }
            }
            HeldMatrix::Dense(a) => a.matrix(),
        })
    }
}
