//! Reading AnnData dataframes (`obs`, `var`, `raw/var`) into an [`ObsFrame`]: the index becomes
//! `names`, the columns named by `column-order` become typed columns. Columns txfm cannot
//! represent are skipped with a warning instead of failing the whole file.
//!
//! Encodings: `string-array`, numeric and bool arrays, `categorical` (codes + categories, code
//! `-1` = missing), `nullable-integer`/`nullable-boolean`/`nullable-string-array` (values + mask),
//! and the compound tables of anndata < 0.7 (categories then lived in `uns/<column>_categories`).

use std::path::Path;

use hdf5::types::{FloatSize, IntSize, TypeDescriptor};
use hdf5::{Dataset, File, Group, LocationType};

use super::hdf::{self, At};
use crate::data::{ObsColumn, ObsFrame};
use crate::{Error, Result};

/// The dataframe stored at `name` (a group, or a legacy compound dataset), plus one warning per
/// column skipped.
pub(super) fn read_frame(file: &File, name: &str, path: &Path) -> Result<(ObsFrame, Vec<String>)> {
    match hdf::member_kind(file, name) {
        Some(LocationType::Group) => read_group_frame(&file.group(name).at(path, name)?, name, path),
        Some(LocationType::Dataset) => read_compound_frame(file, &file.dataset(name).at(path, name)?, name, path),
        _ => Err(Error::format(path, format!("no `{name}` dataframe"))),
    }
}

fn read_group_frame(group: &Group, name: &str, path: &Path) -> Result<(ObsFrame, Vec<String>)> {
    let index_key = hdf::str_attr(group, "_index").unwrap_or_else(|| "_index".to_string());
    let index = read_column(group, &index_key)
        .map_err(|why| Error::format(path, format!("{name}: cannot read the index `{name}/{index_key}`: {why}")))?;
    let names = (0..index.len())
        .map(|i| index.get_str(i).ok_or_else(|| Error::format(path, format!("{name}: index entry {i} is missing"))))
        .collect::<Result<Vec<_>>>()?;

    let keys = match group.attr("column-order") {
        // An empty column list is written as an empty float array, which is not text.
        Ok(attr) if attr.size() == 0 => Vec::new(),
        Ok(attr) => hdf::read_strings(&attr).at(path, &format!("{name}: attribute column-order"))?,
        // Files without it list their columns by what the group holds.
        Err(_) => group
            .member_names()
            .at(path, name)?
            .into_iter()
            .filter(|k| *k != index_key && !k.starts_with("__"))
            .collect(),
    };

    let mut frame = ObsFrame { names, columns: Vec::with_capacity(keys.len()) };
    let mut warnings = Vec::new();
    for key in keys {
        match read_column(group, &key) {
            Ok(col) if col.len() == frame.n_obs() => frame.columns.push((key, col)),
            Ok(col) => warnings.push(format!("{name}/{key}: skipped: {} values for {} rows", col.len(), frame.n_obs())),
            Err(why) => warnings.push(format!("{name}/{key}: skipped: {why}")),
        }
    }
    Ok((frame, warnings))
}

/// One column of a dataframe group; `Err` says why it cannot be represented.
fn read_column(group: &Group, key: &str) -> Result<ObsColumn, String> {
    let err = |e: hdf5::Error| e.to_string();
    match hdf::member_kind(group, key) {
        Some(LocationType::Dataset) => read_array(&group.dataset(key).map_err(err)?),
        Some(LocationType::Group) => {
            let g = group.group(key).map_err(err)?;
            let encoding = hdf::encoding_type(&g);
            match encoding.as_deref() {
                Some("categorical") => read_categorical(&g),
                None if g.link_exists("codes") && g.link_exists("categories") => read_categorical(&g),
                Some("nullable-integer" | "nullable-boolean" | "nullable-string-array") => read_nullable(&g),
                Some(other) => Err(format!("encoding `{other}` is not supported")),
                None => Err("a group without an anndata encoding".to_string()),
            }
        }
        _ => Err("not found".to_string()),
    }
}

/// A plain 1-D array column: strings, integers, floats or bools.
fn read_array(ds: &Dataset) -> Result<ObsColumn, String> {
    let err = |e: hdf5::Error| e.to_string();
    if ds.ndim() != 1 {
        return Err(format!("{}-dimensional, not a column", ds.ndim()));
    }
    let ty = hdf::descriptor(ds).map_err(err)?;
    match ty {
        _ if hdf::is_string(&ty) => Ok(ObsColumn::Str(hdf::read_strings(ds).map_err(err)?)),
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
            Ok(ObsColumn::Int(ds.read_raw::<i64>().map_err(err)?))
        }
        TypeDescriptor::Float(_) => Ok(ObsColumn::Float(ds.read_raw::<f64>().map_err(err)?)),
        TypeDescriptor::Boolean => Ok(ObsColumn::Bool(ds.read_raw::<bool>().map_err(err)?)),
        other => Err(format!("element type {other} is not supported")),
    }
}

fn read_categorical(g: &Group) -> Result<ObsColumn, String> {
    let err = |e: hdf5::Error| e.to_string();
    let categories = read_labels(&g.dataset("categories").map_err(err)?)?;
    let codes = g.dataset("codes").map_err(err)?.read_raw::<i32>().map_err(err)?;
    check_codes(&codes, categories.len())?;
    Ok(ObsColumn::Categorical { codes, categories })
}

/// Category labels as text; pandas also allows numeric categories (`louvain` = 0, 1, 2...).
fn read_labels(ds: &Dataset) -> Result<Vec<String>, String> {
    match read_array(ds)? {
        ObsColumn::Str(v) => Ok(v),
        values => Ok((0..values.len()).map(|i| label(&values, i)).collect()),
    }
}

/// Value `i` of a plain column as a category label, bools spelled as pandas prints them.
fn label(values: &ObsColumn, i: usize) -> String {
    match values {
        ObsColumn::Bool(v) => if v[i] { "True" } else { "False" }.to_string(),
        _ => values.get_str(i).unwrap_or_default(),
    }
}

fn check_codes(codes: &[i32], n_categories: usize) -> Result<(), String> {
    match codes.iter().find(|&&c| c < -1 || c >= n_categories as i32) {
        Some(c) => Err(format!("category code {c} out of range for {n_categories} categories")),
        None => Ok(()),
    }
}

/// pandas' nullable `Int64`/`boolean`/`string` columns (values + mask, mask true = missing).
/// Without missing values they are plain columns; with some, integers become floats with NaN (as
/// pandas itself converts them) and the others become categoricals, whose code `-1` is missing.
fn read_nullable(g: &Group) -> Result<ObsColumn, String> {
    let err = |e: hdf5::Error| e.to_string();
    let values = read_array(&g.dataset("values").map_err(err)?)?;
    let mask = g.dataset("mask").map_err(err)?.read_raw::<bool>().map_err(err)?;
    if mask.len() != values.len() {
        return Err(format!("mask has {} entries for {} values", mask.len(), values.len()));
    }
    if !mask.contains(&true) {
        return Ok(values);
    }
    if let ObsColumn::Int(v) = values {
        let v = v.iter().zip(&mask).map(|(&x, &m)| if m { f64::NAN } else { x as f64 }).collect();
        return Ok(ObsColumn::Float(v));
    }
    let text: Vec<String> = (0..values.len()).map(|i| label(&values, i)).collect();
    let mut categories: Vec<String> = text.iter().zip(&mask).filter(|(_, m)| !**m).map(|(t, _)| t.clone()).collect();
    categories.sort();
    categories.dedup();
    let codes = text
        .iter()
        .zip(&mask)
        .map(|(t, &m)| if m { -1 } else { categories.binary_search(t).map_or(-1, |c| c as i32) })
        .collect();
    Ok(ObsColumn::Categorical { codes, categories })
}

/// anndata < 0.7 stored a dataframe as one compound dataset: an `index` field (fixed-length
/// bytes) and one field per column; a column `c` with `uns/c_categories` is categorical.
fn read_compound_frame(file: &File, ds: &Dataset, name: &str, path: &Path) -> Result<(ObsFrame, Vec<String>)> {
    let TypeDescriptor::Compound(ty) = hdf::descriptor(ds).at(path, name)? else {
        return Err(Error::format(path, format!("`{name}` is a dataset but not a table (compound type)")));
    };
    let n = ds.size();
    let index_field = ty
        .fields
        .iter()
        .find(|f| f.name == "index" || f.name == "_index")
        .ok_or_else(|| Error::format(path, format!("{name}: table has no `index` field")))?;
    let names = match compound_column(ds, &index_field.name, &index_field.ty, n).at(path, name)? {
        Some(ObsColumn::Str(v)) => v,
        _ => return Err(Error::format(path, format!("{name}: the `index` field does not hold text"))),
    };

    let mut frame = ObsFrame { names, columns: Vec::new() };
    let mut warnings = Vec::new();
    for field in ty.fields.iter().filter(|f| f.name != index_field.name) {
        let key = &field.name;
        let column = compound_column(ds, key, &field.ty, n).at(path, &format!("{name}/{key}"))?;
        let categories = format!("uns/{key}_categories");
        let column = match (column, file.dataset(&categories)) {
            (Some(ObsColumn::Int(codes)), Ok(cats)) => {
                let categories = read_labels(&cats);
                let codes: Vec<i32> = codes.iter().map(|&c| c as i32).collect();
                match categories.and_then(|c| check_codes(&codes, c.len()).map(|()| c)) {
                    Ok(categories) => Some(ObsColumn::Categorical { codes, categories }),
                    Err(why) => {
                        warnings.push(format!("{name}/{key}: skipped: {why}"));
                        continue;
                    }
                }
            }
            (column, _) => column,
        };
        match column {
            Some(col) => frame.columns.push((key.clone(), col)),
            None => warnings.push(format!("{name}/{key}: skipped: element type {} is not supported", field.ty)),
        }
    }
    Ok((frame, warnings))
}

/// One field of a compound table as a column; `None` for types without a column kind.
fn compound_column(ds: &Dataset, field: &str, ty: &TypeDescriptor, n: usize) -> hdf5::Result<Option<ObsColumn>> {
    // Numbers are converted by HDF5 to 8-byte native values; text and bools are kept as stored.
    let col = match ty {
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
            let b = hdf::read_compound_field(ds, field, TypeDescriptor::Integer(IntSize::U8))?;
            ObsColumn::Int(b.chunks_exact(8).map(|c| i64::from_ne_bytes(c.try_into().unwrap())).collect())
        }
        TypeDescriptor::Float(_) => {
            let b = hdf::read_compound_field(ds, field, TypeDescriptor::Float(FloatSize::U8))?;
            ObsColumn::Float(b.chunks_exact(8).map(|c| f64::from_ne_bytes(c.try_into().unwrap())).collect())
        }
        TypeDescriptor::Boolean => {
            let b = hdf::read_compound_field(ds, field, TypeDescriptor::Boolean)?;
            ObsColumn::Bool(b.iter().map(|&x| x != 0).collect())
        }
        TypeDescriptor::FixedAscii(w) | TypeDescriptor::FixedUnicode(w) => {
            ObsColumn::Str(hdf::fixed_strings(&hdf::read_compound_field(ds, field, ty.clone())?, *w))
        }
        _ => return Ok(None),
    };
    debug_assert_eq!(col.len(), n);
    Ok(Some(col))
}
