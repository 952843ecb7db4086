//! The HDF5 operations the reader and writer share: errors that name the file and the object,
//! string attributes and string datasets in any storage (variable- or fixed-length, ASCII or
//! UTF-8, as different anndata/h5py versions wrote them), the anndata `encoding-type` attributes,
//! and single fields of the compound tables anndata < 0.7 wrote.

use std::path::Path;
use std::str::FromStr;

use hdf5::types::{CompoundField, CompoundType, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Container, Dataset, Datatype, Group, Location, LocationType};

use crate::{Error, Result};

/// Opens an `.h5ad` for reading without HDF5's file lock (why: see [`super::H5adSource`]).
pub(super) fn open_file(path: &Path) -> Result<hdf5::File> {
    hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .open(path)
        .map_err(|e| Error::format(path, format!("cannot open as HDF5 (an .h5ad file is HDF5): {e}")))
}

/// Maps an HDF5 failure to [`Error::Hdf5`] naming the file and the object (`obs/_index`).
pub(super) trait At<T> {
    fn at(self, path: &Path, what: &str) -> Result<T>;
}

impl<T> At<T> for hdf5::Result<T> {
    fn at(self, path: &Path, what: &str) -> Result<T> {
        self.map_err(|e| Error::hdf5(path, format!("{what}: {e}")))
    }
}

/// What a group member is; `None` when absent.
pub(super) fn member_kind(group: &Group, name: &str) -> Option<LocationType> {
    // `link_exists` first: asking HDF5 about a missing path is an error, not a `None`.
    if !group.link_exists(name) {
        return None;
    }
    group.loc_type_by_name(name).ok()
}

/// Whether the slash-separated `path` exists below `group` (every intermediate group included).
pub(super) fn exists(group: &Group, path: &str) -> bool {
    match path.split_once('/') {
        None => member_kind(group, path).is_some(),
        Some((head, rest)) => {
            member_kind(group, head) == Some(LocationType::Group) && group.group(head).is_ok_and(|g| exists(&g, rest))
        }
    }
}

/// The element type of a dataset or attribute.
pub(super) fn descriptor(c: &Container) -> hdf5::Result<TypeDescriptor> {
    c.dtype()?.to_descriptor()
}

pub(super) fn is_string(ty: &TypeDescriptor) -> bool {
    matches!(
        ty,
        TypeDescriptor::VarLenUnicode
            | TypeDescriptor::VarLenAscii
            | TypeDescriptor::FixedAscii(_)
            | TypeDescriptor::FixedUnicode(_)
    )
}

pub(super) fn is_numeric(ty: &TypeDescriptor) -> bool {
    matches!(ty, TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) | TypeDescriptor::Float(_))
}

/// All values of a string dataset or attribute (scalar or 1-D), invalid UTF-8 replaced.
pub(super) fn read_strings(c: &Container) -> hdf5::Result<Vec<String>> {
    let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match descriptor(c)? {
        TypeDescriptor::VarLenUnicode => {
            Ok(c.read_raw::<VarLenUnicode>()?.iter().map(|s| lossy(s.as_bytes())).collect())
        }
        TypeDescriptor::VarLenAscii => Ok(c.read_raw::<VarLenAscii>()?.iter().map(|s| lossy(s.as_bytes())).collect()),
        TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) => {
            Ok(fixed_strings(&read_bytes(c, &c.dtype()?)?, n))
        }
        other => Err(format!("expected strings, found {other}").into()),
    }
}

/// Splits fixed-length strings of `width` bytes, which numpy pads with NULs.
pub(super) fn fixed_strings(bytes: &[u8], width: usize) -> Vec<String> {
    let trim = |s: &[u8]| {
        let end = s.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        String::from_utf8_lossy(&s[..end]).into_owned()
    };
    bytes.chunks(width.max(1)).map(trim).collect()
}

/// A string attribute (scalar, or the first element of an array); `None` when absent or not text.
pub(super) fn str_attr(loc: &Location, name: &str) -> Option<String> {
    let attr = loc.attr(name).ok()?;
    read_strings(&attr).ok()?.into_iter().next()
}

/// The anndata element encoding (`csr_matrix`, `categorical`, `dataframe`...), if recorded.
pub(super) fn encoding_type(loc: &Location) -> Option<String> {
    str_attr(loc, "encoding-type")
}

pub(super) fn set_str_attr(loc: &Location, name: &str, value: &str) -> hdf5::Result<()> {
    let value = VarLenUnicode::from_str(value).map_err(|e| format!("attribute {name}: {e}"))?;
    loc.new_attr::<VarLenUnicode>().create(name)?.write_scalar(&value)
}

/// Marks an element with its anndata encoding, as `anndata.write_h5ad` does.
pub(super) fn set_encoding(loc: &Location, encoding_type: &str, version: &str) -> hdf5::Result<()> {
    set_str_attr(loc, "encoding-type", encoding_type)?;
    set_str_attr(loc, "encoding-version", version)
}

/// Reads the whole of `c` converted to the in-memory type `mem`, as raw bytes
/// (`[n_elements * mem.size()]`). Only for fixed-size types (no heap pointers inside).
///
/// The high-level API can only read into Rust types known at compile time; fixed-length strings
/// of any width and single fields of compound tables need a type built at run time.
fn read_bytes(c: &Container, mem: &Datatype) -> hdf5::Result<Vec<u8>> {
    use hdf5_sys::{h5a::H5Aread, h5d::H5Dread, h5i::H5I_type_t, h5p::H5P_DEFAULT, h5s::H5S_ALL};
    let n = c.space()?.size();
    let mut buf = vec![0u8; n * mem.size()];
    if buf.is_empty() {
        return Ok(buf);
    }
    let is_attr = c.id_type() == H5I_type_t::H5I_ATTR;
    // SAFETY: `buf` holds exactly `n` elements of `mem` for the whole selection, and the library
    // lock serialises this call with every other HDF5 call made through the `hdf5` crate.
    let status = hdf5::sync::sync(|| unsafe {
        if is_attr {
            H5Aread(c.id(), mem.id(), buf.as_mut_ptr().cast())
        } else {
            H5Dread(c.id(), mem.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.as_mut_ptr().cast())
        }
    });
    if status < 0 {
        return Err(format!("reading {} as {:?} failed", c.name(), mem.to_descriptor()?).into());
    }
    Ok(buf)
}

/// Field `field` of a 1-D compound dataset, converted to `as_type` (`[n * as_type.size()]` bytes).
/// HDF5 matches compound members by name, so this reads that column alone.
pub(super) fn read_compound_field(ds: &Dataset, field: &str, as_type: TypeDescriptor) -> hdf5::Result<Vec<u8>> {
    let size = as_type.size();
    let one = TypeDescriptor::Compound(CompoundType {
        fields: vec![CompoundField { name: field.to_string(), ty: as_type, offset: 0, index: 0 }],
        size,
    });
    read_bytes(ds, &Datatype::from_descriptor(&one)?)
}
