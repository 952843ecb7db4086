//! 10x Cell Ranger MTX folders: a MatrixMarket coordinate matrix (genes × cells, as 10x writes
//! it, or cells × genes), a gene list (`features.tsv[.gz]` v3: ID, name, type; `genes.tsv` v2:
//! ID, name; or one name per line) and a barcode list.
//!
//! MatrixMarket cannot be read by row without an index, so one streaming pass at open stores the
//! non-zeros cell by cell: in memory (8 bytes each) up to [`MAX_IN_MEMORY_NNZ`], in an anonymous
//! temporary file beyond it. No dense matrix is ever built. 10x writes entries sorted by cell; a
//! file that is not is read a second time to place its entries.

use std::fs::File;
use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::table::open_text;
use crate::data::{CsrChunk, ExpressionSource, ObsFrame, SourceMeta};
use crate::{Error, Result};

/// Non-zeros held in memory before spilling to a temporary file: 2^28 (2 GiB), about 70k cells
/// at 10x's typical 4k genes per cell.
pub const MAX_IN_MEMORY_NNZ: u64 = 1 << 28;

/// 10x's feature type for genes; other types (antibody capture, peaks, CRISPR guides) are left
/// out so an antibody named `CD4` can never be summed into the gene CD4.
const GENE_EXPRESSION: &str = "Gene Expression";

/// An MTX triple opened for row (cell) reads.
#[derive(Debug)]
pub struct MtxSource {
    /// Path = what the user named (the folder or the `.mtx` file); matrix name = the matrix's
    /// file name; var names = the gene list's first column; obs names = barcodes.
    meta: SourceMeta,
    /// Second column of the gene list, where it has one (symbols when IDs come first). `[n_vars]`
    var_symbols: Option<Vec<String>>,
    /// Cell `i` holds entries `indptr[i]..indptr[i + 1]`. `[n_obs + 1]`
    indptr: Vec<u64>,
    entries: Entries,
}

impl MtxSource {
    /// Opens an MTX folder, or the `.mtx` file of one. Within the folder the matrix is the one
    /// file ending in `.mtx[.gz]`; the gene and barcode lists are the files ending in
    /// `features`/`genes` and `barcodes` `.tsv`/`.txt` (`.gz` allowed), preferring those that
    /// share the matrix's prefix (`GSM1_matrix.mtx.gz` → `GSM1_features.tsv.gz`).
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with_budget(path, MAX_IN_MEMORY_NNZ)
    }

    fn open_with_budget(path: &Path, max_in_memory_nnz: u64) -> Result<Self> {
        let files = MtxFiles::find(path)?;
        let features = read_list(&files.features)?;
        let barcodes = read_list(&files.barcodes)?;
        let has_types = features.iter().any(|f| f.len() >= 3);
        let (mut keep, mut genes) = (Vec::with_capacity(features.len()), Vec::new());
        for f in &features {
            if !has_types || f.get(2).is_some_and(|t| t == GENE_EXPRESSION) {
                keep.push(Some(genes.len() as u32));
                genes.push(f);
            } else {
                keep.push(None);
            }
        }
        if genes.is_empty() {
            return Err(Error::format(&files.features, format!("no '{GENE_EXPRESSION}' feature in the third column")));
        }
        let var_names = genes.iter().map(|f| f[0].clone()).collect();
        let var_symbols = genes.iter().all(|f| f.len() >= 2).then(|| genes.iter().map(|f| f[1].clone()).collect());

        let header = read_header(&files.matrix)?;
        let genes_by_cells = match (header.n_rows, header.n_cols) {
            (r, c) if r == features.len() && c == barcodes.len() => true,
            (r, c) if r == barcodes.len() && c == features.len() => false,
            (r, c) => {
                return Err(Error::format(&files.matrix, format!(
                    "the matrix is {r} × {c}, but {} lists {} features and {} lists {} barcodes; \
                     expected features × barcodes (as 10x writes it) or barcodes × features",
                    files.features.display(),
                    features.len(),
                    files.barcodes.display(),
                    barcodes.len()
                )));
            }
        };
        let layout = Layout { genes_by_cells, keep, n_cells: barcodes.len() };
        let (indptr, entries) = load_entries(&files.matrix, &header, &layout, max_in_memory_nnz)?;
        Ok(MtxSource {
            meta: SourceMeta {
                path: path.to_path_buf(),
                matrix_name: file_name(&files.matrix),
                var_names,
                obs: ObsFrame {
                    names: barcodes.into_iter().map(|mut b| b.swap_remove(0)).collect(),
                    columns: Vec::new(),
                },
            },
            var_symbols,
            indptr,
            entries,
        })
    }

    /// The gene list's second column (symbols, when the first holds Ensembl IDs), if it has one.
    pub fn var_symbols(&self) -> Option<&[String]> {
        self.var_symbols.as_deref()
    }

    fn spill_error(&self, e: std::io::Error) -> Error {
        Error::format(&self.meta.path, format!("temporary file holding the matrix: {e}"))
    }
}

impl ExpressionSource for MtxSource {
    fn meta(&self) -> &SourceMeta {
        &self.meta
    }

    fn read_range(&mut self, start: usize, end: usize) -> Result<CsrChunk> {
        let base = self.indptr[start];
        let entries = self.entries.read(base, self.indptr[end]).map_err(|e| self.spill_error(e))?;
        let mut chunk = CsrChunk::new(start, self.n_vars());
        let mut row = Vec::new();
        for i in start..end {
            row.clear();
            row.extend_from_slice(&entries[(self.indptr[i] - base) as usize..(self.indptr[i + 1] - base) as usize]);
            if !row.is_sorted_by(|a, b| a.0 < b.0) {
                // Not 10x order, or a coordinate listed twice (summed, as scipy does).
                row.sort_unstable_by_key(|e| e.0);
                row.dedup_by(|next, kept| {
                    let same = next.0 == kept.0;
                    if same {
                        kept.1 += next.1;
                    }
                    same
                });
            }
            chunk.push_row(row.iter().copied());
        }
        Ok(chunk)
    }
}

/// The matrix, gene list and barcode list of one MTX triple.
#[derive(Debug)]
struct MtxFiles {
    matrix: PathBuf,
    features: PathBuf,
    barcodes: PathBuf,
}

impl MtxFiles {
    fn find(path: &Path) -> Result<MtxFiles> {
        let (dir, given) = if path.is_dir() {
            (path.to_path_buf(), None)
        } else {
            (path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf), Some(file_name(path)))
        };
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(&dir, e))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        let holds = || format!("the folder holds: {}", if names.is_empty() { "nothing".into() } else { names.join(", ") });
        let matrix = match given {
            Some(m) => m,
            None => {
                let found: Vec<&String> = names.iter().filter(|n| strip_gz(n).ends_with(".mtx")).collect();
                match found[..] {
                    [m] => m.clone(),
                    [] => return Err(Error::format(&dir, format!("no MatrixMarket file (*.mtx or *.mtx.gz); {}", holds()))),
                    _ => {
                        return Err(Error::format(&dir, format!(
                            "several MatrixMarket files ({}); pass the .mtx file to read",
                            found.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                        )));
                    }
                }
            }
        };
        let stem = strip_gz(&matrix).strip_suffix(".mtx").unwrap_or(&matrix);
        let prefix = stem.strip_suffix("matrix").or_else(|| stem.strip_suffix("counts")).unwrap_or(stem);
        let pick = |kinds: &[&str], what: &str| -> Result<PathBuf> {
            let found: Vec<&String> = names
                .iter()
                .filter(|n| {
                    let base = strip_gz(n);
                    let base = base.strip_suffix(".tsv").or_else(|| base.strip_suffix(".txt"));
                    base.is_some_and(|b| kinds.iter().any(|k| b.ends_with(k)))
                })
                .collect();
            let same_prefix: Vec<&String> = found.iter().copied().filter(|n| n.starts_with(prefix)).collect();
            match (&same_prefix[..], &found[..]) {
                ([n], _) | (_, [n]) => Ok(dir.join(n)),
                (_, []) => Err(Error::format(&dir, format!(
                    "no {what} ({}) beside {matrix}; {}",
                    kinds.iter().map(|k| format!("*{k}.tsv[.gz]/.txt")).collect::<Vec<_>>().join(" or "),
                    holds()
                ))),
                _ => Err(Error::format(&dir, format!(
                    "several {what}s ({}) and not exactly one shares the prefix of {matrix}",
                    found.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ))),
            }
        };
        Ok(MtxFiles {
            matrix: dir.join(&matrix),
            features: pick(&["features", "genes"], "gene list")?,
            barcodes: pick(&["barcodes"], "barcode list")?,
        })
    }
}

fn strip_gz(name: &str) -> &str {
    name.strip_suffix(".gz").unwrap_or(name)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Tab-separated fields of each non-empty line. `[n_lines][n_fields]`
fn read_list(path: &Path) -> Result<Vec<Vec<String>>> {
    let mut out = Vec::new();
    for line in open_text(path)?.lines() {
        let line = line.map_err(|e| Error::io(path, e))?;
        let line = line.trim_end_matches(['\r', '\n']);
        if !line.trim().is_empty() {
            out.push(line.split('\t').map(|f| f.trim().to_string()).collect());
        }
    }
    if out.is_empty() {
        return Err(Error::format(path, "the list is empty"));
    }
    Ok(out)
}

/// The banner and size line of a MatrixMarket coordinate file.
#[derive(Debug)]
struct Header {
    n_rows: usize,
    n_cols: usize,
    nnz: u64,
    /// Lines before the first entry (banner, comments, size line).
    n_header_lines: usize,
}

fn read_header(path: &Path) -> Result<Header> {
    let mut lines = open_text(path)?.lines();
    let mut next_line = || lines.next().transpose().map_err(|e| Error::io(path, e));
    let banner = next_line()?.unwrap_or_default();
    let words: Vec<String> = banner.split_whitespace().map(|w| w.to_ascii_lowercase()).collect();
    let [mm, object, format, field, symmetry] = &words[..] else {
        return Err(Error::format(path, format!("line 1: expected a MatrixMarket banner \
            '%%MatrixMarket matrix coordinate integer general', found '{banner}'")));
    };
    let problem = if mm != "%%matrixmarket" || object != "matrix" {
        Some("it is not a MatrixMarket matrix".to_string())
    } else if format != "coordinate" {
        Some(format!("the '{format}' (dense) layout is not supported; 10x writes 'coordinate'"))
    } else if field == "pattern" {
        Some("a 'pattern' matrix holds positions but no counts".to_string())
    } else if !["integer", "real", "double"].contains(&field.as_str()) {
        Some(format!("the '{field}' field is not supported (integer or real)"))
    } else if symmetry != "general" {
        Some(format!("the '{symmetry}' symmetry is not supported (general)"))
    } else {
        None
    };
    if let Some(p) = problem {
        return Err(Error::format(path, format!("line 1 '{banner}': {p}")));
    }
    let mut n_header_lines = 1;
    let size = loop {
        n_header_lines += 1;
        match next_line()? {
            Some(l) if l.starts_with('%') || l.trim().is_empty() => continue,
            Some(l) => break l,
            None => return Err(Error::format(path, "no size line ('rows cols entries') after the banner")),
        }
    };
    let dims: Vec<u64> = size.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    let [n_rows, n_cols, nnz] = dims[..] else {
        return Err(Error::format(path, format!("line {n_header_lines}: expected 'rows cols entries', found '{size}'")));
    };
    Ok(Header { n_rows: n_rows as usize, n_cols: n_cols as usize, nnz, n_header_lines })
}

/// How file coordinates become (cell, gene).
struct Layout {
    /// Rows are features and columns barcodes (10x); else the transpose.
    genes_by_cells: bool,
    /// Feature (0-based) → gene index, `None` for non-gene features. `[n_features]`
    keep: Vec<Option<u32>>,
    n_cells: usize,
}

/// Streams the entries of `path` as (cell, gene, value) with 0-based indices, calling `f` for
/// each kept non-zero. Errors name the line, unless the file is a damaged gzip stream, which is
/// said instead.
fn for_each_entry(path: &Path, header: &Header, layout: &Layout, f: impl FnMut(usize, u32, f32) -> Result<()>) -> Result<()> {
    parse_entries(path, header, layout, f).map_err(|e| super::table::blame_gzip(path, e))
}

fn parse_entries(
    path: &Path,
    header: &Header,
    layout: &Layout,
    mut f: impl FnMut(usize, u32, f32) -> Result<()>,
) -> Result<()> {
    let mut reader = open_text(path)?;
    let mut line = String::new();
    let mut line_no = 0usize;
    let mut n_entries = 0u64;
    let read_err = |e| Error::io(path, e);
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(read_err)? == 0 {
            break;
        }
        line_no += 1;
        if line_no <= header.n_header_lines || line.trim().is_empty() {
            continue;
        }
        let bad = |what: &str| Error::format(path, format!("line {line_no}: {what}: '{}'", line.trim_end()));
        let mut words = line.split_ascii_whitespace();
        let (Some(i), Some(j), Some(v), None) = (words.next(), words.next(), words.next(), words.next()) else {
            return Err(bad("expected 'row column value'"));
        };
        let (Ok(i), Ok(j)) = (i.parse::<usize>(), j.parse::<usize>()) else {
            return Err(bad("row and column must be whole numbers"));
        };
        let Ok(v) = v.parse::<f32>() else { return Err(bad("the value is not a number")) };
        if i == 0 || i > header.n_rows || j == 0 || j > header.n_cols {
            return Err(bad(&format!("position outside the {} × {} matrix", header.n_rows, header.n_cols)));
        }
        n_entries += 1;
        let (cell, feature) = if layout.genes_by_cells { (j - 1, i - 1) } else { (i - 1, j - 1) };
        if let Some(gene) = layout.keep[feature]
            && v != 0.0
        {
            f(cell, gene, v)?;
        }
    }
    if n_entries != header.nnz {
        return Err(Error::format(path, format!(
            "the size line declares {} entries but the file holds {n_entries}",
            header.nnz
        )));
    }
    Ok(())
}

/// Reads every kept non-zero into per-cell order: `indptr: [n_cells + 1]` and the entries.
fn load_entries(path: &Path, header: &Header, layout: &Layout, max_in_memory_nnz: u64) -> Result<(Vec<u64>, Entries)> {
    let spill_err = |e: std::io::Error| Error::format(path, format!("temporary file holding the matrix: {e}"));
    let new_store = || -> Result<Entries> {
        Ok(if header.nnz <= max_in_memory_nnz {
            Entries::Memory(Vec::with_capacity(header.nnz as usize))
        } else {
            Entries::Spill { file: tempfile::tempfile().map_err(spill_err)?, buf: Vec::new() }
        })
    };
    let mut counts = vec![0u64; layout.n_cells];
    let mut store = Some(new_store()?);
    let mut last_cell = 0;
    for_each_entry(path, header, layout, |cell, gene, v| {
        counts[cell] += 1;
        if cell < last_cell {
            // Not sorted by cell: keep counting, place the entries in a second pass.
            store = None;
        }
        last_cell = cell;
        match &mut store {
            Some(s) => s.push((gene, v)).map_err(spill_err),
            None => Ok(()),
        }
    })?;
    let mut indptr = Vec::with_capacity(counts.len() + 1);
    indptr.push(0u64);
    for c in &counts {
        indptr.push(indptr.last().unwrap() + c);
    }
    let mut store = match store {
        Some(s) => s,
        None => {
            let mut s = new_store()?;
            s.resize(indptr[counts.len()]).map_err(spill_err)?;
            let mut next = indptr[..counts.len()].to_vec();
            for_each_entry(path, header, layout, |cell, gene, v| {
                s.put(next[cell], (gene, v)).map_err(spill_err)?;
                next[cell] += 1;
                Ok(())
            })?;
            s
        }
    };
    store.flush().map_err(spill_err)?;
    Ok((indptr, store))
}

/// Non-zeros as (gene, value), cell after cell.
#[derive(Debug)]
enum Entries {
    Memory(Vec<(u32, f32)>),
    /// 8 bytes per entry, little-endian gene then value; `buf` batches appends.
    Spill { file: File, buf: Vec<u8> },
}

const ENTRY_BYTES: u64 = 8;
/// Spill appends are written in blocks of this many bytes.
const SPILL_BLOCK: usize = 1 << 20;

impl Entries {
    fn push(&mut self, e: (u32, f32)) -> std::io::Result<()> {
        match self {
            Entries::Memory(v) => v.push(e),
            Entries::Spill { file, buf } => {
                buf.extend_from_slice(&e.0.to_le_bytes());
                buf.extend_from_slice(&e.1.to_le_bytes());
                if buf.len() >= SPILL_BLOCK {
                    file.write_all(buf)?;
                    buf.clear();
                }
            }
        }
        Ok(())
    }

    /// Makes room for `n` entries to be [`Entries::put`] in any order.
    fn resize(&mut self, n: u64) -> std::io::Result<()> {
        match self {
            Entries::Memory(v) => v.resize(n as usize, (0, 0.0)),
            Entries::Spill { file, .. } => file.set_len(n * ENTRY_BYTES)?,
        }
        Ok(())
    }

    /// Writes entry number `pos`; one small write per entry when spilled, which is slow but only
    /// needed for large files not sorted by cell.
    fn put(&mut self, pos: u64, e: (u32, f32)) -> std::io::Result<()> {
        match self {
            Entries::Memory(v) => v[pos as usize] = e,
            Entries::Spill { file, .. } => {
                let mut bytes = [0u8; ENTRY_BYTES as usize];
                bytes[..4].copy_from_slice(&e.0.to_le_bytes());
                bytes[4..].copy_from_slice(&e.1.to_le_bytes());
                file.seek(SeekFrom::Start(pos * ENTRY_BYTES))?;
                file.write_all(&bytes)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if let Entries::Spill { file, buf } = self {
            file.write_all(buf)?;
            buf.clear();
            file.flush()?;
        }
        Ok(())
    }

    /// Entries `start..end`.
    fn read(&mut self, start: u64, end: u64) -> std::io::Result<Vec<(u32, f32)>> {
        match self {
            Entries::Memory(v) => Ok(v[start as usize..end as usize].to_vec()),
            Entries::Spill { file, .. } => {
                let mut bytes = vec![0u8; ((end - start) * ENTRY_BYTES) as usize];
                file.seek(SeekFrom::Start(start * ENTRY_BYTES))?;
                file.read_exact(&mut bytes)?;
                Ok(bytes
                    .chunks_exact(ENTRY_BYTES as usize)
                    .map(|b| {
                        let gene = u32::from_le_bytes(b[..4].try_into().unwrap());
                        (gene, f32::from_le_bytes(b[4..].try_into().unwrap()))
                    })
                    .collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{run_python, shared_data};

    /// scipy's reading of the shared MTX (genes × cells): per-cell sums, per-gene sums, nnz.
    fn scipy_reference(mtx: &Path) -> (Vec<f64>, Vec<f64>, usize) {
        let out = run_python(
            "import sys, json, numpy as np, scipy.io\n\
             m = scipy.io.mmread(sys.argv[1]).tocsc()\n\
             m.eliminate_zeros()\n\
             print(json.dumps([np.asarray(m.sum(0)).ravel().tolist(), np.asarray(m.sum(1)).ravel().tolist(), int(m.nnz)]))",
            &[mtx.to_str().unwrap()],
        );
        serde_json::from_str(&out).unwrap()
    }

    /// Whole matrix read in uneven chunks: per-cell sums, per-gene sums, nnz.
    fn read_all(src: &mut MtxSource) -> (Vec<f64>, Vec<f64>, usize) {
        let (mut cells, mut genes, mut nnz) = (Vec::new(), vec![0f64; src.n_vars()], 0);
        let mut start = 0;
        while start < src.n_obs() {
            let chunk = src.read_rows(start, start + 100).unwrap();
            assert_eq!(chunk.row_start, start);
            for i in 0..chunk.n_rows() {
                assert!(chunk.row(i).0.is_sorted_by(|a, b| a < b), "row {} not strictly increasing", start + i);
            }
            cells.extend(chunk.row_sums());
            for (&j, &v) in chunk.indices.iter().zip(&chunk.data) {
                genes[j as usize] += v as f64;
            }
            nnz += chunk.nnz();
            start += chunk.n_rows();
        }
        (cells, genes, nnz)
    }

    #[test]
    fn reads_shared_pbmc_folder_like_scipy_in_memory_and_spilled() {
        let dir = shared_data("expression/sctransform_pbmc_10x_mtx");
        let mtx = dir.join("sctransform_pbmc_counts.mtx");
        let expected = scipy_reference(&mtx);
        for (path, budget) in [(&dir, MAX_IN_MEMORY_NNZ), (&mtx, MAX_IN_MEMORY_NNZ), (&dir, 0)] {
            let mut src = MtxSource::open_with_budget(path, budget).unwrap();
            assert_eq!((src.n_obs(), src.n_vars()), (283, 914));
            assert_eq!(src.matrix_name(), "sctransform_pbmc_counts.mtx");
            assert_eq!(src.var_names()[..2], ["GPI", "CARD8"]);
            assert_eq!(src.var_symbols(), None);
            assert_eq!(src.obs().names[0], "ACTCTCCTGCATAC");
            assert_eq!(matches!(src.entries, Entries::Spill { .. }), budget == 0);
            // The first entries of the file: `2 1 1` and `3 1 40` (gene, cell, count; 1-based).
            let first = src.read_rows(0, 1).unwrap();
            assert_eq!(first.to_dense()[1..3], [1.0, 40.0]);
            assert_eq!(read_all(&mut src), expected);
        }
    }

    /// Writes `name` in `dir`, gzipped when the name ends in `.gz`.
    fn write(dir: &Path, name: &str, text: &str) {
        let f = File::create(dir.join(name)).unwrap();
        if name.ends_with(".gz") {
            let mut gz = flate2::write::GzEncoder::new(f, Default::default());
            gz.write_all(text.as_bytes()).unwrap();
            gz.finish().unwrap();
        } else {
            std::io::BufWriter::new(f).write_all(text.as_bytes()).unwrap();
        }
    }

    #[test]
    fn v3_gzip_folder_unsorted_real_values_and_feature_types() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "features.tsv.gz", "ENSG00000141510\tTP53\tGene Expression\n\
             CD4_TotalSeqB\tCD4\tAntibody Capture\n\
             ENSG00000010610\tCD4\tGene Expression\n");
        write(dir.path(), "barcodes.tsv.gz", "AAAC-1\nAAAG-1\nAAAT-1\n");
        // Entries out of cell order, a real value, an explicit zero and the antibody row.
        write(dir.path(), "matrix.mtx.gz", "%%MatrixMarket matrix coordinate real general\n\
             % written by hand\n\
             3 3 6\n\
             3 3 2\n\
             1 1 1.5\n\
             2 1 7\n\
             1 3 4\n\
             3 1 0\n\
             3 2 5\n");
        for budget in [MAX_IN_MEMORY_NNZ, 0] {
            let mut src = MtxSource::open_with_budget(dir.path(), budget).unwrap();
            assert_eq!(src.var_names(), ["ENSG00000141510", "ENSG00000010610"]);
            assert_eq!(src.var_symbols().unwrap(), ["TP53", "CD4"]);
            assert_eq!(src.obs().names, ["AAAC-1", "AAAG-1", "AAAT-1"]);
            let all = src.read_rows(0, 3).unwrap();
            assert_eq!(all.to_dense(), [1.5, 0.0, 0.0, 5.0, 4.0, 2.0]);
            assert_eq!(all.nnz(), 4);
            assert_eq!(src.read_rows(2, 9).unwrap().to_dense(), [4.0, 2.0]);
        }
    }

    /// A damaged gzip stream is reported as such, not as the garbage lines it decodes to (the
    /// issue's case: "line 41573: expected 'row column value'"), for every damage position tried.
    #[test]
    fn a_corrupt_gzip_stream_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (genes, cells) = (200usize, 300usize);
        write(d, "features.tsv.gz", &(0..genes).map(|g| format!("G{g}\tG{g}\tGene Expression\n")).collect::<String>());
        write(d, "barcodes.tsv.gz", &(0..cells).map(|c| format!("c{c}\n")).collect::<String>());
        let mut mtx = String::from("%%MatrixMarket matrix coordinate integer general\n");
        let entries: Vec<(usize, usize)> = (0..cells).flat_map(|c| (0..genes).filter(move |g| (g * 7 + c * 3) % 5 == 0).map(move |g| (g, c))).collect();
        mtx.push_str(&format!("{genes} {cells} {}\n", entries.len()));
        for (g, c) in &entries {
            mtx.push_str(&format!("{} {} {}\n", g + 1, c + 1, (g + c) % 9 + 1));
        }
        write(d, "matrix.mtx.gz", &mtx);
        assert!(MtxSource::open(d).is_ok());
        let good = std::fs::read(d.join("matrix.mtx.gz")).unwrap();
        for at in [good.len() / 3, good.len() / 2, 2 * good.len() / 3] {
            let mut bad = good.clone();
            for b in &mut bad[at..at + 16] {
                *b ^= 0x5a;
            }
            std::fs::write(d.join("matrix.mtx.gz"), &bad).unwrap();
            let msg = match MtxSource::open(d) {
                Err(e) => e.to_string(),
                Ok(mut src) => src.read_rows(0, cells).map(|_| "read without error".to_string()).unwrap_or_else(|e| e.to_string()),
            };
            assert!(msg.contains("matrix.mtx.gz") && msg.contains("gzip stream is corrupt"), "damage at {at}: {msg}");
        }
    }

    #[test]
    fn cells_by_genes_orientation_and_v2_genes_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "genes.tsv", "ENSG00000141510\tTP53\nENSG00000010610\tCD4\nENSG00000000003\tTSPAN6\n");
        write(dir.path(), "barcodes.tsv", "c1\nc2\n");
        write(dir.path(), "matrix.mtx", "%%MatrixMarket matrix coordinate integer general\n2 3 3\n1 3 9\n2 1 1\n2 3 2\n");
        let mut src = MtxSource::open(dir.path()).unwrap();
        assert_eq!((src.n_obs(), src.n_vars()), (2, 3));
        assert_eq!(src.read_rows(0, 2).unwrap().to_dense(), [0.0, 0.0, 9.0, 1.0, 0.0, 2.0]);
    }

    #[test]
    fn errors_name_the_file_and_what_was_found() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let err = |p: &Path| MtxSource::open(p).unwrap_err().to_string();
        write(d, "genes.tsv", "A\nB\n");
        write(d, "barcodes.tsv", "c1\nc2\nc3\n");
        write(d, "matrix.mtx", "%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 1 3\n");
        let e = err(d);
        assert!(e.contains("matrix.mtx: the matrix is 2 × 2, but "), "{e}");
        assert!(e.contains("genes.tsv lists 2 features and ") && e.contains("barcodes.tsv lists 3 barcodes"), "{e}");

        write(d, "matrix.mtx", "%%MatrixMarket matrix coordinate pattern general\n2 3 1\n1 1\n");
        assert!(err(d).ends_with("matrix.mtx: line 1 '%%MatrixMarket matrix coordinate pattern general': \
            a 'pattern' matrix holds positions but no counts"), "{}", err(d));

        write(d, "matrix.mtx", "%%MatrixMarket matrix coordinate integer general\n2 3 2\n1 1 3\n1 4 1\n");
        assert!(err(d).ends_with("matrix.mtx: line 4: position outside the 2 × 3 matrix: '1 4 1'"), "{}", err(d));

        write(d, "matrix.mtx", "%%MatrixMarket matrix coordinate integer general\n2 3 2\n1 1 3\n");
        assert!(err(d).ends_with("matrix.mtx: the size line declares 2 entries but the file holds 1"), "{}", err(d));

        write(d, "matrix.mtx", "%%MatrixMarket matrix coordinate integer general\n2 3 1\n1 1 x\n");
        assert!(err(d).ends_with("matrix.mtx: line 3: the value is not a number: '1 1 x'"), "{}", err(d));

        write(d, "other.mtx", "");
        let e = err(d);
        assert!(e.ends_with("several MatrixMarket files (matrix.mtx, other.mtx); pass the .mtx file to read"), "{e}");
        std::fs::remove_file(d.join("barcodes.tsv")).unwrap();
        let e = err(&d.join("matrix.mtx"));
        assert!(e.contains("no barcode list (*barcodes.tsv[.gz]/.txt) beside matrix.mtx; the folder holds: genes.tsv, matrix.mtx, other.mtx"), "{e}");
    }
}
