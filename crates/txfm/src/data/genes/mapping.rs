//! Maps one dataset's `var_names` onto canonical gene IDs and its count chunks onto those genes.

use std::collections::HashMap;

use serde::Serialize;

use super::table::SymbolMatch;
use super::{canonical_ensembl, GeneIdKind, GeneTable, MappingReport};
use crate::data::CsrChunk;

/// A dataset's genes in the canonical namespace: unversioned human Ensembl IDs, or the IDs as
/// given for [`GeneIdKind::Raw`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneMapping {
    /// Canonical IDs, unique, in first-seen order. `[n_genes]`
    pub ids: Vec<String>,
    /// Display symbol of each canonical ID (the ID itself if it has none). `[n_genes]`
    pub symbols: Vec<String>,
    /// For each source var, its index into `ids`; `None` = dropped. `[n_vars]`
    pub source_to_gene: Vec<Option<u32>>,
    pub report: MappingReport,
}

/// What one name resolves to.
enum Outcome<'a> {
    Gene { id: &'a str, symbol: &'a str },
    Dropped { ambiguous: bool, why: String },
}

/// Maps `var_names` (`[n_vars]`) read as `kind` onto canonical IDs through `table`.
///
/// Versioned Ensembl IDs lose their version; Ensembl IDs the table does not know are kept (their
/// symbol is the ID). Symbols map by exact match, then ignoring case; a symbol several genes share
/// maps to the preferred one (see [`GeneTable::lookup_symbol`]) or is dropped as ambiguous. Names
/// mapping to the same ID are kept once and [`GeneMapping::remap`] sums their counts.
pub fn harmonise(var_names: &[String], kind: GeneIdKind, table: &GeneTable) -> GeneMapping {
    let resolved = kind.resolve(var_names);
    let mut report = MappingReport::new(resolved, kind == GeneIdKind::Auto, var_names.len());
    let (mut ids, mut symbols) = (Vec::new(), Vec::new());
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut source_to_gene = Vec::with_capacity(var_names.len());
    for name in var_names {
        let name = name.trim();
        let target = match resolve_name(name, resolved, table, &mut report) {
            Outcome::Gene { id, symbol } => {
                report.n_mapped += 1;
                if let Some(&g) = index.get(id) {
                    report.n_duplicates_summed += 1;
                    Some(g)
                } else {
                    let g = ids.len() as u32;
                    index.insert(id.to_string(), g);
                    ids.push(id.to_string());
                    symbols.push(symbol.to_string());
                    Some(g)
                }
            }
            Outcome::Dropped { ambiguous, why } => {
                if ambiguous {
                    report.n_ambiguous += 1;
                } else {
                    report.n_unmapped += 1;
                }
                report.example(name, why);
                None
            }
        };
        source_to_gene.push(target);
    }
    GeneMapping { ids, symbols, source_to_gene, report }
}

fn resolve_name<'a>(name: &'a str, kind: GeneIdKind, table: &'a GeneTable, report: &mut MappingReport) -> Outcome<'a> {
    if name.is_empty() {
        return Outcome::Dropped { ambiguous: false, why: "empty name".into() };
    }
    if kind == GeneIdKind::Raw {
        return Outcome::Gene { id: name, symbol: name };
    }
    // Symbol datasets often name unnamed genes by their Ensembl ID, so both kinds accept IDs.
    if let Some(id) = canonical_ensembl(name) {
        return match table.find_id(id) {
            Some(g) => Outcome::Gene { id: table.id(g), symbol: table.symbol(g).unwrap_or(table.id(g)) },
            None => {
                report.n_unknown_ensembl += 1;
                Outcome::Gene { id, symbol: id }
            }
        };
    }
    if kind == GeneIdKind::Ensembl {
        return Outcome::Dropped { ambiguous: false, why: "not a human Ensembl gene ID".into() };
    }
    match table.lookup_symbol(name) {
        SymbolMatch::Gene { gene, case_insensitive } => {
            report.n_case_insensitive += usize::from(case_insensitive);
            Outcome::Gene { id: table.id(gene), symbol: table.symbol(gene).unwrap_or(table.id(gene)) }
        }
        SymbolMatch::Ambiguous { n_candidates } => {
            Outcome::Dropped { ambiguous: true, why: format!("ambiguous: {n_candidates} genes") }
        }
        SymbolMatch::Unknown => Outcome::Dropped { ambiguous: false, why: "unknown symbol".into() },
    }
}

impl GeneMapping {
    pub fn n_genes(&self) -> usize {
        self.ids.len()
    }

    /// The same rows over the canonical genes: columns become indices into `ids` (sorted within
    /// each row), several source columns of one gene are summed, dropped genes removed.
    /// `chunk: [n_rows, n_vars]` → `[n_rows, n_genes]`.
    pub fn remap(&self, chunk: &CsrChunk) -> CsrChunk {
        assert_eq!(
            chunk.n_cols,
            self.source_to_gene.len(),
            "chunk has {} columns but the gene mapping was made for {} var names",
            chunk.n_cols,
            self.source_to_gene.len()
        );
        let mut out = CsrChunk::new(chunk.row_start, self.ids.len());
        let mut row: Vec<(u32, f32)> = Vec::new();
        for i in 0..chunk.n_rows() {
            let (idx, val) = chunk.row(i);
            row.clear();
            row.extend(idx.iter().zip(val).filter_map(|(&j, &v)| Some((self.source_to_gene[j as usize]?, v))));
            row.sort_unstable_by_key(|&(g, _)| g);
            row.dedup_by(|next, kept| {
                let same = next.0 == kept.0;
                if same {
                    kept.1 += next.1;
                }
                same
            });
            out.push_row(row.iter().copied());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn tiny_table() -> GeneTable {
        GeneTable::parse(
            "ensembl_id\tsymbol\tsource\tncbi_type\n\
             ENSG00000000001\tAAA\tboth\tprotein-coding\n\
             ENSG00000000001\tOLDA\tncbi\tprotein-coding\n\
             ENSG00000000002\tBBB\tgencode\t\n\
             ENSG00000000003\tBBB\tgencode\t\n\
             ENSG00000000004\tCcc\tboth\t\n",
            "tiny",
        )
        .unwrap()
    }

    #[test]
    fn harmonise_symbols_counts_every_outcome() {
        let names = strings(&["AAA", "BBB", "XYZ", "OLDA", "CCC", "ENSG00000000009.2", ""]);
        let m = harmonise(&names, GeneIdKind::Symbol, &tiny_table());
        assert_eq!(m.ids, strings(&["ENSG00000000001", "ENSG00000000004", "ENSG00000000009"]));
        assert_eq!(m.symbols, strings(&["AAA", "Ccc", "ENSG00000000009"]));
        assert_eq!(m.source_to_gene, vec![Some(0), None, None, Some(0), Some(1), Some(2), None]);
        let r = &m.report;
        assert_eq!((r.n_input, r.n_mapped, r.n_ambiguous, r.n_unmapped), (7, 4, 1, 2));
        assert_eq!((r.n_duplicates_summed, r.n_case_insensitive, r.n_unknown_ensembl), (1, 1, 1));
        assert_eq!(r.examples, strings(&["BBB (ambiguous: 2 genes)", "XYZ (unknown symbol)", " (empty name)"]));
        assert_eq!(
            r.to_string(),
            "7 var names as symbol: 4 mapped (57.1%), 1 ambiguous, 2 unmapped; 1 duplicates summed; \
             1 matched ignoring case; 1 Ensembl IDs not in the bundled table kept; dropped e.g. \
             BBB (ambiguous: 2 genes), XYZ (unknown symbol),  (empty name)"
        );
    }

    #[test]
    fn harmonise_ensembl_and_raw() {
        let names = strings(&["ENSG00000000004.3", "ENSG00000000004", "AAA"]);
        let m = harmonise(&names, GeneIdKind::Auto, &tiny_table());
        assert_eq!(m.report.kind, GeneIdKind::Ensembl);
        assert!(m.report.detected);
        assert_eq!(m.ids, strings(&["ENSG00000000004"]));
        assert_eq!(m.symbols, strings(&["Ccc"]));
        assert_eq!(m.source_to_gene, vec![Some(0), Some(0), None]);
        assert_eq!(m.report.examples, strings(&["AAA (not a human Ensembl gene ID)"]));

        let m = harmonise(&strings(&["Actb", "Gapdh", "Actb"]), GeneIdKind::Raw, &tiny_table());
        assert_eq!(m.ids, strings(&["Actb", "Gapdh"]));
        assert_eq!(m.source_to_gene, vec![Some(0), Some(1), Some(0)]);
        assert_eq!(m.report.n_duplicates_summed, 1);
    }

    #[test]
    fn remap_sums_duplicates_and_drops_unmapped() {
        // 5 source columns: 0 → gene 1, 1 → dropped, 2 → gene 0, 3 → gene 1, 4 → gene 0.
        let m = GeneMapping {
            ids: strings(&["G0", "G1"]),
            symbols: strings(&["g0", "g1"]),
            source_to_gene: vec![Some(1), None, Some(0), Some(1), Some(0)],
            report: MappingReport::new(GeneIdKind::Raw, false, 5),
        };
        let mut c = CsrChunk::new(7, 5);
        c.push_dense_row(&[1.0, 9.0, 2.0, 3.0, 4.0]);
        c.push_dense_row(&[0.0, 5.0, 0.0, 0.0, 0.0]);
        c.push_dense_row(&[0.0, 0.0, 0.0, 2.0, 0.0]);
        let r = m.remap(&c);
        assert_eq!((r.row_start, r.n_cols, r.n_rows()), (7, 2, 3));
        // Row 0: G0 = 2 + 4, G1 = 1 + 3; row 1 held only a dropped gene; row 2: G1 = 2.
        assert_eq!(r.indptr, vec![0, 2, 2, 3]);
        assert_eq!(r.indices, vec![0, 1, 1]);
        assert_eq!(r.data, vec![6.0, 4.0, 2.0]);
    }
}
