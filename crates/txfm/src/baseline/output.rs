//! Where a baseline embedding goes: an `.h5ad` with the embedding in `obsm[key]`, streamed row
//! chunk by row chunk. For an `.h5ad` input the output is a copy of it (obs, var, X, its dense
//! obsm) with the new entry added, the AnnData a scanpy user expects back; otherwise (a corpus,
//! MTX, a table, or when asked) a file with `obs`, `var` and the embedding only (`X = None`).

use std::path::Path;

use crate::data::h5ad::obsm::H5adCopy;
use crate::data::h5ad::H5adWriter;
use crate::data::{ObsColumn, ObsFrame};
use crate::Result;

use super::input::CountInput;

/// An output being written; rows must be appended in order, then [`ObsmSink::finish`].
pub enum ObsmSink {
    Copy(H5adCopy),
    New { writer: H5adWriter, obs: ObsFrame },
}

impl ObsmSink {
    /// Starts writing `out` for `input`, to receive `obsm[key]`. `embedding_only` writes a new file
    /// even for an h5ad input; `var` of a new file is `var_ids` with a `symbol` column.
    pub fn create(
        input: &mut CountInput,
        out: &Path,
        key: &str,
        embedding_only: bool,
        var_ids: &[String],
        var_symbols: &[String],
    ) -> Result<Self> {
        if input.is_h5ad() && !embedding_only {
            return Ok(ObsmSink::Copy(H5adCopy::create(input.path(), out, &[key])?));
        }
        let var = ObsFrame {
            names: var_ids.to_vec(),
            columns: vec![("symbol".into(), ObsColumn::Str(var_symbols.to_vec()))],
        };
        Ok(ObsmSink::New { writer: H5adWriter::create(out, &var)?, obs: input.obs()? })
    }

    /// Appends `rows.len() / dim` rows of `obsm[key]`.
    pub fn append(&mut self, key: &str, dim: usize, rows: &[f32]) -> Result<()> {
        match self {
            ObsmSink::Copy(c) => c.append(rows.len() / dim.max(1), &[(key, dim, rows)]),
            ObsmSink::New { writer, .. } => writer.append_obsm(key, dim, rows),
        }
    }

    /// Renames the finished file into place; returns what a copy left out, one line each.
    pub fn finish(self) -> Result<Vec<String>> {
        match self {
            ObsmSink::Copy(c) => {
                let warnings = c.warnings().to_vec();
                c.finish()?;
                Ok(warnings)
            }
            ObsmSink::New { writer, obs } => {
                writer.finish(&obs)?;
                Ok(Vec::new())
            }
        }
    }
}
