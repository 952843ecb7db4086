//! An input's genes on the model's vocabulary. The input's `var_names` are harmonised exactly as
//! the corpus builder harmonises a dataset ([`harmonise`]), then matched to the checkpoint's
//! `genes.tsv` by gene id. The input's *profiled* genes (every harmonised gene of its `var`, zeros
//! included, that the model knows) play the part a corpus dataset's profiled genes play in
//! training: the visible genes are drawn from them.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use indicatif::HumanCount;

use crate::data::genes::{canonical_ensembl, harmonise, GeneIdKind, GeneMapping, GeneTable};
use crate::data::CsrChunk;
use crate::{Error, Result};

/// How an input's genes map onto a model vocabulary.
#[derive(Debug, Clone)]
pub struct GeneMap {
    /// Input var → harmonised gene (what the corpus builder stores). `mapping.report` says what
    /// harmonisation did.
    pub mapping: GeneMapping,
    /// Model index of each harmonised gene; `None` outside the vocabulary. `[mapping.ids.len()]`
    to_model: Vec<Option<u32>>,
    /// Model indices the input profiles, increasing. `[n_profiled]`
    pub profiled: Vec<u32>,
    /// Model vocabulary size `G`.
    pub n_vocab: usize,
}

/// One chunk of input rows on the model's vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRows {
    /// Index of the first row in the input.
    pub row_start: usize,
    /// Library size of each row: its total count over all harmonised genes, also those the model
    /// does not know, as the corpus stores it. `[n]`
    pub library_size: Vec<f64>,
    /// Row `i`'s counts at model genes: `genes[indptr[i]..indptr[i + 1]]` (increasing) and
    /// `counts[...]`. `indptr: [n + 1]`
    pub indptr: Vec<usize>,
    pub genes: Vec<u32>,
    pub counts: Vec<f32>,
}

impl ModelRows {
    pub fn n_rows(&self) -> usize {
        self.library_size.len()
    }

    /// Model genes and counts of local row `i`.
    pub fn row(&self, i: usize) -> (&[u32], &[f32]) {
        let r = self.indptr[i]..self.indptr[i + 1];
        (&self.genes[r.clone()], &self.counts[r])
    }
}

/// `Auto` for an input becomes `Raw` when the vocabulary is not mostly human Ensembl IDs: such a
/// model was trained on a corpus built with `gene_ids = "raw"` (non-human or simulated data), so
/// mapping the input's names through the human table would lose every gene.
pub fn resolve_kind(kind: GeneIdKind, vocab: &[String]) -> GeneIdKind {
    let ensembl = vocab.iter().filter(|g| canonical_ensembl(g).is_some()).count();
    if kind == GeneIdKind::Auto && 2 * ensembl <= vocab.len() { GeneIdKind::Raw } else { kind }
}

impl GeneMap {
    /// Maps `var_names` (of the input `path`, for messages), read as `kind`, onto `vocab`.
    /// An input sharing no gene with the vocabulary is an error.
    pub fn new(var_names: &[String], kind: GeneIdKind, vocab: &[String], path: &Path) -> Result<Self> {
        let mapping = harmonise(var_names, resolve_kind(kind, vocab), GeneTable::human());
        let index: HashMap<&str, u32> = vocab.iter().enumerate().map(|(i, g)| (g.as_str(), i as u32)).collect();
        let to_model: Vec<Option<u32>> = mapping.ids.iter().map(|g| index.get(g.as_str()).copied()).collect();
        let mut profiled: Vec<u32> = to_model.iter().flatten().copied().collect();
        profiled.sort_unstable();
        let map = GeneMap { mapping, to_model, profiled, n_vocab: vocab.len() };
        if map.profiled.is_empty() {
            let shown = |v: &[String]| v.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
            return Err(Error::format(
                path,
                format!(
                    "none of its genes is in the model's vocabulary ({}; input genes e.g. {}; model genes e.g. {}). \
                     Check --gene-ids, or --var-column to take gene IDs from another var column",
                    map.mapping.report,
                    shown(var_names),
                    shown(vocab)
                ),
            ));
        }
        Ok(map)
    }

    /// Model genes the input profiles.
    pub fn n_profiled(&self) -> usize {
        self.profiled.len()
    }

    /// Harmonised input genes the model does not know (left out, but counted in library sizes).
    pub fn n_not_in_vocab(&self) -> usize {
        self.to_model.iter().filter(|m| m.is_none()).count()
    }

    /// Rows of the input (`chunk`, columns = input vars) on the model's genes.
    pub fn rows(&self, chunk: CsrChunk) -> ModelRows {
        let local = self.mapping.remap(chunk);
        let n = local.n_rows();
        let mut out = ModelRows {
            row_start: local.row_start,
            library_size: Vec::with_capacity(n),
            indptr: Vec::with_capacity(n + 1),
            genes: Vec::with_capacity(local.nnz()),
            counts: Vec::with_capacity(local.nnz()),
        };
        out.indptr.push(0);
        let mut row: Vec<(u32, f32)> = Vec::new();
        for i in 0..n {
            let (idx, val) = local.row(i);
            out.library_size.push(val.iter().map(|&v| v as f64).sum());
            row.clear();
            row.extend(idx.iter().zip(val).filter_map(|(&g, &v)| Some((self.to_model[g as usize]?, v))));
            row.sort_unstable_by_key(|&(g, _)| g);
            out.genes.extend(row.iter().map(|&(g, _)| g));
            out.counts.extend(row.iter().map(|&(_, v)| v));
            out.indptr.push(out.genes.len());
        }
        out
    }
}

impl fmt::Display for GeneMap {
    /// `input profiles 1,812 of the model's 2,000 genes (90.6%); 188 input genes are not in the vocabulary`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "input profiles {} of the model's {} genes ({:.1}%); {} input genes are not in the vocabulary",
            HumanCount(self.n_profiled() as u64),
            HumanCount(self.n_vocab as u64),
            100.0 * self.n_profiled() as f64 / self.n_vocab.max(1) as f64,
            HumanCount(self.n_not_in_vocab() as u64)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn maps_input_genes_onto_the_vocabulary_and_keeps_the_whole_library() {
        let vocab = strings(&["g3", "g1", "g9", "g2"]);
        // g7 is not in the vocabulary, g1 appears twice (summed, as the corpus builder does).
        let vars = strings(&["g1", "g2", "g7", "g1", "g3"]);
        let map = GeneMap::new(&vars, GeneIdKind::Raw, &vocab, Path::new("in.h5ad")).unwrap();
        assert_eq!(map.profiled, [0, 1, 3]);
        assert_eq!((map.n_profiled(), map.n_not_in_vocab()), (3, 1));
        assert_eq!(
            map.to_string(),
            "input profiles 3 of the model's 4 genes (75.0%); 1 input genes are not in the vocabulary"
        );
        let mut chunk = CsrChunk::new(10, 5);
        chunk.push_dense_row(&[1.0, 2.0, 4.0, 3.0, 5.0]);
        chunk.push_dense_row(&[0.0, 0.0, 6.0, 0.0, 0.0]);
        let rows = map.rows(chunk);
        assert_eq!((rows.row_start, rows.n_rows()), (10, 2));
        assert_eq!(rows.library_size, [15.0, 6.0]);
        assert_eq!(rows.row(0), (&[0u32, 1, 3][..], &[5.0f32, 4.0, 2.0][..]));
        assert_eq!(rows.row(1), (&[][..], &[][..]));
    }

    #[test]
    fn no_shared_gene_is_an_error_naming_the_file() {
        let err = GeneMap::new(&strings(&["a", "b"]), GeneIdKind::Raw, &strings(&["x"]), Path::new("cells.h5ad"));
        let msg = err.unwrap_err().to_string();
        assert!(msg.starts_with("cells.h5ad: none of its genes is in the model's vocabulary"), "{msg}");
    }

    #[test]
    fn auto_follows_the_vocabulary_namespace() {
        let raw = strings(&["SIMG001", "SIMG002"]);
        let ensembl = strings(&["ENSG00000141510", "ENSG00000012048"]);
        assert_eq!(resolve_kind(GeneIdKind::Auto, &raw), GeneIdKind::Raw);
        assert_eq!(resolve_kind(GeneIdKind::Auto, &ensembl), GeneIdKind::Auto);
        assert_eq!(resolve_kind(GeneIdKind::Symbol, &raw), GeneIdKind::Symbol);
    }
}
