//! Dense text tables (TSV/CSV, optionally gzipped), the usual shape of bulk RNA-seq counts:
//! a header of sample names, then one row per gene with its ID first. Bulk tables are small
//! (tens of thousands of genes × at most thousands of samples), so the whole matrix is held in
//! memory as sparse samples × genes rows.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::data::{CsrChunk, ExpressionSource, ObsFrame, SourceMeta};
use crate::{Error, Result};

/// A table read whole at open: `n_obs` samples × `n_vars` genes, whichever way the file lays
/// them out.
#[derive(Debug)]
pub struct TableSource {
    /// Matrix name `table`; obs names from the header (or first column, genes as columns).
    meta: SourceMeta,
    /// All samples as one CSR block. `[n_obs, n_vars]`
    matrix: CsrChunk,
}

/// How cells are separated on a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delimiter {
    Tab,
    Comma,
    /// Runs of spaces (R's `write.table` default).
    Whitespace,
}

impl Delimiter {
    /// `.csv` → comma, `.tsv`/`.tab` → tab; anything else (`.txt`) from the header line.
    fn sniff(path: &Path, header: &str) -> Delimiter {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".csv") {
            Delimiter::Comma
        } else if name.ends_with(".tsv") || name.ends_with(".tab") || header.contains('\t') {
            Delimiter::Tab
        } else if header.contains(',') {
            Delimiter::Comma
        } else {
            Delimiter::Whitespace
        }
    }

    /// Cells of `line`, with surrounding whitespace and one pair of double quotes removed.
    fn split<'a>(self, line: &'a str) -> Vec<&'a str> {
        let unquote = |c: &'a str| {
            let c = c.trim();
            c.strip_prefix('"').and_then(|c| c.strip_suffix('"')).unwrap_or(c)
        };
        match self {
            Delimiter::Tab => line.split('\t').map(unquote).collect(),
            Delimiter::Comma => line.split(',').map(unquote).collect(),
            Delimiter::Whitespace => line.split_whitespace().map(unquote).collect(),
        }
    }
}

impl TableSource {
    /// Reads a table with genes as rows (default) or, with `genes_as_columns`, samples as rows.
    ///
    /// The header holds the column names, with or without a leading corner cell (`gene`, empty,
    /// or absent as R writes it); each further line holds a row name and one number per column.
    /// Values need not be integers here: whether they are counts is checked by the caller.
    pub fn open(path: &Path, genes_as_columns: bool) -> Result<Self> {
        let text = read_text(path).map_err(|e| blame_gzip(path, e))?;
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let Some((_, header)) = lines.next() else {
            return Err(Error::format(path, "the table is empty"));
        };
        let delim = Delimiter::sniff(path, header);
        let header = delim.split(header);
        let rows: Vec<(usize, &str)> = lines.collect();
        let Some(&(first_no, first)) = rows.first() else {
            return Err(Error::format(path, "the table has a header but no data lines"));
        };
        let width = delim.split(first).len();
        let col_names: Vec<String> = if header.len() + 1 == width {
            header.iter().map(|s| s.to_string()).collect()
        } else if header.len() == width {
            header[1..].iter().map(|s| s.to_string()).collect()
        } else {
            return Err(Error::format(path, format!(
                "line 1 (the header) has {} cells but line {} has {width}; expected as many, or one \
                 fewer when the header has no cell above the row names",
                header.len(),
                first_no + 1
            )));
        };

        let mut row_names = Vec::with_capacity(rows.len());
        // The file's own layout: file rows × file columns.
        let mut cells_by_row = CsrChunk::new(0, col_names.len());
        let mut values = vec![0f32; col_names.len()];
        for &(no, line) in &rows {
            let cells = delim.split(line);
            if cells.len() != width {
                return Err(Error::format(path, format!(
                    "line {}: {} cells, expected {width} as on line {}",
                    no + 1,
                    cells.len(),
                    first_no + 1
                )));
            }
            row_names.push(cells[0].to_string());
            for (j, cell) in cells[1..].iter().enumerate() {
                values[j] = cell.parse::<f32>().map_err(|_| {
                    Error::format(path, format!(
                        "line {}, column {} ('{}'): '{cell}' is not a number",
                        no + 1,
                        j + 2,
                        col_names[j]
                    ))
                })?;
            }
            cells_by_row.push_dense_row(&values);
        }
        let (var_names, obs_names, matrix) = if genes_as_columns {
            (col_names, row_names, cells_by_row)
        } else {
            (row_names, col_names, transpose(&cells_by_row))
        };
        Ok(TableSource {
            meta: SourceMeta {
                path: path.to_path_buf(),
                matrix_name: "table".to_string(),
                var_names,
                obs: ObsFrame { names: obs_names, columns: Vec::new() },
            },
            matrix,
        })
    }
}

/// `[n_rows, n_cols]` → `[n_cols, n_rows]`; rows of the result come out sorted by column.
fn transpose(m: &CsrChunk) -> CsrChunk {
    let mut rows: Vec<Vec<(u32, f32)>> = vec![Vec::new(); m.n_cols];
    for i in 0..m.n_rows() {
        let (idx, val) = m.row(i);
        for (&j, &v) in idx.iter().zip(val) {
            rows[j as usize].push((i as u32, v));
        }
    }
    let mut t = CsrChunk::new(0, m.n_rows());
    for r in rows {
        t.push_row(r);
    }
    t
}

/// A text file, gunzipped on the fly when its name ends in `.gz`; shared by the MTX reader.
pub(crate) fn open_text(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(if path.extension().is_some_and(|e| e == "gz") {
        // Multi-member so that bgzip-compressed files read whole.
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    })
}

/// Whether a `.gz` file's compressed stream is damaged, decoding it to the end (where gzip's CRC
/// is checked). Called on the error path only: a flipped byte in the middle of a deflate stream
/// often decodes to garbage lines before the CRC can fail, and the garbage must not be reported
/// as a syntax error of the file's format.
pub(crate) fn gzip_damage(path: &Path) -> Option<String> {
    if !path.extension().is_some_and(|e| e == "gz") {
        return None;
    }
    let file = std::fs::File::open(path).ok()?;
    std::io::copy(&mut flate2::read::MultiGzDecoder::new(file), &mut std::io::sink()).err().map(|e| e.to_string())
}

/// `err`, or, for a `.gz` file whose compressed stream is damaged, that instead.
pub(crate) fn blame_gzip(path: &Path, err: Error) -> Error {
    match gzip_damage(path) {
        Some(why) => Error::format(path, format!("the gzip stream is corrupt ({why}); the file is damaged: download or compress it again")),
        None => err,
    }
}

fn read_text(path: &Path) -> Result<String> {
    let mut text = String::new();
    open_text(path)?.read_to_string(&mut text).map_err(|e| Error::io(path, e))?;
    Ok(text)
}

impl ExpressionSource for TableSource {
    fn meta(&self) -> &SourceMeta {
        &self.meta
    }

    fn read_range(&mut self, start: usize, end: usize) -> Result<CsrChunk> {
        let mut chunk = CsrChunk::new(start, self.n_vars());
        for i in start..end {
            let (idx, val) = self.matrix.row(i);
            chunk.push_row(idx.iter().copied().zip(val.iter().copied()));
        }
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{run_python, shared_data};

    /// pandas' reading of a table (genes as rows): per-sample sums, per-gene sums, shape.
    fn pandas_sums(path: &Path) -> (Vec<f64>, Vec<f64>) {
        let out = run_python(
            "import sys, json, pandas as pd\n\
             df = pd.read_csv(sys.argv[1], sep='\\t', index_col=0)\n\
             print(json.dumps([df.sum(axis=0).tolist(), df.sum(axis=1).tolist()]))",
            &[path.to_str().unwrap()],
        );
        serde_json::from_str(&out).unwrap()
    }

    fn gene_sums(src: &mut TableSource) -> Vec<f64> {
        let chunk = src.read_rows(0, src.n_obs()).unwrap();
        let mut sums = vec![0f64; src.n_vars()];
        for (&j, &v) in chunk.indices.iter().zip(&chunk.data) {
            sums[j as usize] += v as f64;
        }
        sums
    }

    #[test]
    fn reads_r_table_without_corner_cell_like_pandas() {
        let path = shared_data("expression/seurat_pbmc_raw.txt");
        let mut src = TableSource::open(&path, false).unwrap();
        assert_eq!((src.n_obs(), src.n_vars()), (80, 230));
        assert_eq!(src.var_names()[0], "MS4A1");
        assert_eq!(src.obs().names[..2], ["ATGCCAGAACGACT", "CATGGCCTGTGCAT"]);
        // Line 2 of the file: MS4A1 is 0 in the first ten cells, then 2 2 4 4.
        let chunk = src.read_rows(10, 14).unwrap();
        assert_eq!(chunk.row_start, 10);
        let ms4a1: Vec<f32> = (0..4).map(|i| chunk.to_dense()[i * 230]).collect();
        assert_eq!(ms4a1, [2.0, 2.0, 4.0, 4.0]);
        assert_eq!(src.read_rows(0, 10).unwrap().to_dense().iter().step_by(230).sum::<f32>(), 0.0);

        let (sample_sums, expected_gene_sums) = pandas_sums(&path);
        assert_eq!(src.read_rows(0, 1000).unwrap().row_sums(), sample_sums);
        assert_eq!(gene_sums(&mut src), expected_gene_sums);
    }

    #[test]
    fn reads_bulk_ensembl_table_like_pandas() {
        let path = shared_data("expression/noiseq_marioni2008_kidney_liver_counts.tsv");
        let mut src = TableSource::open(&path, false).unwrap();
        assert_eq!((src.n_obs(), src.n_vars()), (10, 5088));
        assert_eq!(src.obs().names[0], "R1L1Kidney");
        assert_eq!(src.obs().names[9], "R2L6Kidney");
        assert_eq!(src.var_names()[..2], ["ENSG00000177757", "ENSG00000187634"]);
        // The first two lines of data: 2 1 0 0 1 2 0 1 1 3 and 49 27 43 34 23 41 35 42 25 47.
        let dense = src.read_rows(0, 10).unwrap().to_dense();
        let first_two = |s: usize| [dense[s * 5088], dense[s * 5088 + 1]];
        assert_eq!(first_two(0), [2.0, 49.0]);
        assert_eq!(first_two(3), [0.0, 34.0]);
        assert_eq!(first_two(9), [3.0, 47.0]);

        let (sample_sums, expected_gene_sums) = pandas_sums(&path);
        assert_eq!(src.read_rows(0, 10).unwrap().row_sums(), sample_sums);
        assert_eq!(gene_sums(&mut src), expected_gene_sums);
    }

    #[test]
    fn genes_as_columns_gzip_csv_and_corner_label() {
        let dir = tempfile::tempdir().unwrap();
        let rows = dir.path().join("rows.tsv");
        std::fs::write(&rows, "gene\ts1\ts2\nA\t1\t0\nB\t0\t2.5\nC\t3\t4\n").unwrap();
        let cols = dir.path().join("cols.csv.gz");
        let mut gz = flate2::write::GzEncoder::new(std::fs::File::create(&cols).unwrap(), Default::default());
        std::io::Write::write_all(&mut gz, b"\"\",\"A\",\"B\",\"C\"\r\n\"s1\",1,0,3\r\n\"s2\",0,2.5,4\r\n").unwrap();
        gz.finish().unwrap();

        let mut a = TableSource::open(&rows, false).unwrap();
        let mut b = TableSource::open(&cols, true).unwrap();
        for src in [&mut a, &mut b] {
            assert_eq!(src.var_names(), ["A", "B", "C"]);
            assert_eq!(src.obs().names, ["s1", "s2"]);
            let chunk = src.read_rows(0, 2).unwrap();
            assert_eq!(chunk.to_dense(), [1.0, 0.0, 3.0, 0.0, 2.5, 4.0]);
            assert_eq!(chunk.nnz(), 4);
        }
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            TableSource::open(&p, false).unwrap_err().to_string()
        };
        let err = open("ragged.tsv", "gene\ts1\ts2\nA\t1\t0\nB\t0\n");
        assert!(err.ends_with("ragged.tsv: line 3: 2 cells, expected 3 as on line 2"), "{err}");
        let err = open("nan.tsv", "gene\ts1\ts2\nA\t1\t0\nB\t0\tNA\n");
        assert!(err.ends_with("nan.tsv: line 3, column 3 ('s2'): 'NA' is not a number"), "{err}");
        // A negative count in a genes-as-rows table is placed by its sample and gene names, not
        // by bare indices that read transposed against the file (checked by `open_source`).
        let neg = dir.path().join("neg.tsv");
        std::fs::write(&neg, "gene\ts1\ts2\ts3\nA\t1\t2\t3\nB\t4\t-6\t1\n").unwrap();
        let err = crate::data::open_source(&neg, &Default::default()).err().expect("a negative count is refused").to_string();
        assert!(err.contains("first at obs row 1 ('s2'), var column 1 ('B'): -6"), "{err}");
        let err = open("header.tsv", "gene\ts1\ts2\ts3\ts4\nA\t1\t0\n");
        assert!(err.contains("header.tsv: line 1 (the header) has 5 cells but line 2 has 3"), "{err}");
        let err = open("empty.tsv", "\n");
        assert!(err.ends_with("empty.tsv: the table is empty"), "{err}");
    }
}
