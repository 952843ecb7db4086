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
    /// Found ignoring case, or only as a previous symbol or alias, as the flags say.
    Gene { id: &'a str, symbol: &'a str, case_insensitive: bool, alias: bool },
    Dropped { ambiguous: bool, why: String },
}

/// Maps `var_names` (`[n_vars]`) read as `kind` onto canonical IDs through `table`.
///
/// Versioned Ensembl IDs lose their version; Ensembl IDs the table does not know are kept (their
/// symbol is the ID). Symbols map by exact match, then ignoring case, then as a previous symbol or
/// alias (see [`GeneTable::lookup_symbol`]); a symbol several genes share maps to the preferred one
/// or is dropped as ambiguous, and an alias of a gene that another name also reaches is dropped
/// (the source counted them as two genes). Names mapping to the same ID are kept once and
/// [`GeneMapping::remap`] sums their counts.
pub fn harmonise(var_names: &[String], kind: GeneIdKind, table: &GeneTable) -> GeneMapping {
    let resolved = kind.resolve(var_names);
    let mut report = MappingReport::new(resolved, kind == GeneIdKind::Auto, var_names.len());
    let names: Vec<&str> = var_names.iter().map(|n| n.trim()).collect();
    let mut outcomes: Vec<Outcome> = names.iter().map(|n| resolve_name(n, resolved, table, &mut report)).collect();
    drop_aliases_of_named_genes(&names, &mut outcomes);
    let (mut ids, mut symbols) = (Vec::new(), Vec::new());
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut source_to_gene = Vec::with_capacity(var_names.len());
    for (name, outcome) in names.into_iter().zip(outcomes) {
        let target = match outcome {
            Outcome::Gene { id, symbol, case_insensitive, alias } => {
                report.n_mapped += 1;
                report.n_case_insensitive += usize::from(case_insensitive);
                report.n_alias += usize::from(alias);
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
                report.drop(name, ambiguous, why);
                None
            }
        };
        source_to_gene.push(target);
    }
    GeneMapping { ids, symbols, source_to_gene, report }
}

/// Drops each alias match whose gene another name of the dataset also reaches (a mere change of
/// case aside): the source counted them as two genes, so the alias is most likely the old name of
/// a gene NCBI has since merged into this one (`HNRNPU-AS1` into `HNRNPU`, `KIAA0754` into
/// `MACF1`), and summing the two would mix genes. Two aliases of one gene drop each other.
fn drop_aliases_of_named_genes(names: &[&str], outcomes: &mut [Outcome]) {
    let mut names_of: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, outcome) in outcomes.iter().enumerate() {
        if let Outcome::Gene { id, .. } = *outcome {
            names_of.entry(id).or_default().push(i);
        }
    }
    for i in 0..outcomes.len() {
        let Outcome::Gene { id, symbol, alias: true, .. } = outcomes[i] else { continue };
        let other = names_of[id].iter().map(|&j| names[j]).find(|n| !n.eq_ignore_ascii_case(names[i]));
        if let Some(other) = other {
            let why = format!("alias of {symbol}, which {other} names too");
            outcomes[i] = Outcome::Dropped { ambiguous: false, why };
        }
    }
}

fn resolve_name<'a>(name: &'a str, kind: GeneIdKind, table: &'a GeneTable, report: &mut MappingReport) -> Outcome<'a> {
    if name.is_empty() {
        return Outcome::Dropped { ambiguous: false, why: "empty name".into() };
    }
    if kind == GeneIdKind::Raw {
        return Outcome::Gene { id: name, symbol: name, case_insensitive: false, alias: false };
    }
    // Symbol datasets often name unnamed genes by their Ensembl ID, so both kinds accept IDs.
    if let Some(id) = canonical_ensembl(name) {
        return match table.find_id(id) {
            Some(g) => Outcome::Gene {
                id: table.id(g),
                symbol: table.symbol(g).unwrap_or(table.id(g)),
                case_insensitive: false,
                alias: false,
            },
            None => {
                report.n_unknown_ensembl += 1;
                Outcome::Gene { id, symbol: id, case_insensitive: false, alias: false }
            }
        };
    }
    if kind == GeneIdKind::Ensembl {
        return Outcome::Dropped { ambiguous: false, why: "not a human Ensembl gene ID".into() };
    }
    match table.lookup_symbol(name) {
        SymbolMatch::Gene { gene, case_insensitive, alias } => Outcome::Gene {
            id: table.id(gene),
            symbol: table.symbol(gene).unwrap_or(table.id(gene)),
            case_insensitive,
            alias,
        },
        SymbolMatch::Ambiguous { n_candidates } => {
            Outcome::Dropped { ambiguous: true, why: format!("ambiguous: {n_candidates} genes") }
        }
        SymbolMatch::Unknown => Outcome::Dropped { ambiguous: false, why: "unknown symbol".into() },
    }
}

impl GeneMapping {
    /// The same rows over the canonical genes: columns become indices into `ids` (sorted within
    /// each row), several source columns of one gene are summed, dropped genes removed.
    /// `chunk: [n_rows, n_vars]` → `[n_rows, n_genes]`.
    pub fn remap(&self, chunk: CsrChunk) -> CsrChunk {
        assert_eq!(
            chunk.n_cols,
            self.source_to_gene.len(),
            "chunk has {} columns but the gene mapping was made for {} var names",
            chunk.n_cols,
            self.source_to_gene.len()
        );
        // Most datasets map each var to its own gene in order: then no row needs sorting or
        // summing, and the identity needs no copy at all (the ingestion hot path).
        let mut last = None;
        let increasing = self.source_to_gene.iter().flatten().all(|&g| last.replace(g).is_none_or(|p| p < g));
        if increasing && self.ids.len() == self.source_to_gene.len() {
            return CsrChunk { n_cols: self.ids.len(), ..chunk };
        }
        let mut out = CsrChunk::new(chunk.row_start, self.ids.len());
        out.indices.reserve(chunk.nnz());
        out.data.reserve(chunk.nnz());
        let mut row: Vec<(u32, f32)> = Vec::new();
        for i in 0..chunk.n_rows() {
            let (idx, val) = chunk.row(i);
            let mapped = idx.iter().zip(val).filter_map(|(&j, &v)| Some((self.source_to_gene[j as usize]?, v)));
            if increasing {
                out.push_row(mapped);
                continue;
            }
            row.clear();
            row.extend(mapped);
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
    use crate::data::genes::report;

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
             ENSG00000000004\tCcc\tboth\t\n\
             ENSG00000000004\tOLDC\talias\t\n\
             ENSG00000000005\tEEE\tboth\t\n\
             ENSG00000000005\tOLDE\talias\t\n\
             ENSG00000000005\tOLDE2\talias\t\n",
            "tiny",
        )
        .unwrap()
    }

    #[test]
    fn harmonise_symbols_counts_every_outcome() {
        let names = strings(&["AAA", "BBB", "XYZ", "OLDA", "CCC", "ENSG00000000009.2", "", "oldc"]);
        let m = harmonise(&names, GeneIdKind::Symbol, &tiny_table());
        assert_eq!(m.ids, strings(&["ENSG00000000001", "ENSG00000000004", "ENSG00000000009"]));
        assert_eq!(m.symbols, strings(&["AAA", "Ccc", "ENSG00000000009"]));
        // oldc, an alias of Ccc, is dropped: CCC names that gene already.
        assert_eq!(m.source_to_gene, vec![Some(0), None, None, Some(0), Some(1), Some(2), None, None]);
        let r = &m.report;
        assert_eq!((r.n_input, r.n_mapped, r.n_ambiguous, r.n_unmapped), (8, 4, 1, 3));
        assert_eq!((r.n_duplicates_summed, r.n_case_insensitive, r.n_unknown_ensembl, r.n_alias), (1, 1, 1, 0));
        assert_eq!(
            r.examples,
            strings(&[
                "BBB (ambiguous: 2 genes)",
                "XYZ (unknown symbol)",
                " (empty name)",
                "oldc (alias of Ccc, which CCC names too)"
            ])
        );
        assert_eq!(
            r.to_string(),
            "8 var names as symbol: 4 mapped (50.0%), 1 ambiguous, 3 unmapped; 1 duplicates summed; \
             1 matched ignoring case; 1 Ensembl IDs not in the bundled table kept; dropped e.g. \
             BBB (ambiguous: 2 genes), XYZ (unknown symbol),  (empty name), oldc (alias of Ccc, which \
             CCC names too)"
        );
    }

    #[test]
    fn harmonise_maps_aliases_of_genes_no_other_name_reaches() {
        let names = strings(&["OLDC", "OLDE", "OLDE2", "AAA", "oldc"]);
        let m = harmonise(&names, GeneIdKind::Symbol, &tiny_table());
        check_invariants(&m);
        assert_eq!(m.ids, strings(&["ENSG00000000004", "ENSG00000000001"]));
        assert_eq!(m.symbols, strings(&["Ccc", "AAA"]));
        // OLDC and oldc are one name ignoring case, summed; OLDE and OLDE2 stand for one gene
        // that the source counted as two, so neither is trusted.
        assert_eq!(m.source_to_gene, vec![Some(0), None, None, Some(1), Some(0)]);
        let r = &m.report;
        assert_eq!((r.n_mapped, r.n_unmapped, r.n_duplicates_summed), (3, 2, 1));
        assert_eq!((r.n_alias, r.n_case_insensitive), (2, 1));
        let why = ["OLDE (alias of EEE, which OLDE2 names too)", "OLDE2 (alias of EEE, which OLDE names too)"];
        assert_eq!(r.examples, strings(&why));
        assert!(r.to_string().contains("; 1 matched ignoring case; 2 matched a previous symbol or alias;"), "{r}");
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
        let r = m.remap(c.clone());
        assert_eq!((r.row_start, r.n_cols, r.n_rows()), (7, 2, 3));
        // Row 0: G0 = 2 + 4, G1 = 1 + 3; row 1 held only a dropped gene; row 2: G1 = 2.
        assert_eq!(r.indptr, vec![0, 2, 2, 3]);
        assert_eq!(r.indices, vec![0, 1, 1]);
        assert_eq!(r.data, vec![6.0, 4.0, 2.0]);
    }

    /// `var_names` (or a `var` column) of a shared h5ad, read by anndata.
    fn h5ad_var(rel: &str, column: &str) -> Vec<String> {
        let path = crate::testing::shared_data(rel);
        crate::testing::run_python(
            "import sys, anndata as ad\n\
             a = ad.read_h5ad(sys.argv[1], backed='r')\n\
             names = a.var_names if sys.argv[2] == '' else a.var[sys.argv[2]]\n\
             print('\\n'.join(map(str, names)))",
            &[path.to_str().unwrap(), column],
        )
        .lines()
        .map(String::from)
        .collect()
    }

    fn check_invariants(m: &GeneMapping) {
        let r = &m.report;
        assert_eq!(r.n_mapped + r.n_ambiguous + r.n_unmapped, r.n_input);
        assert_eq!(m.ids.len(), r.n_mapped - r.n_duplicates_summed);
        assert_eq!(m.symbols.len(), m.ids.len());
        assert_eq!(m.source_to_gene.len(), r.n_input);
        assert_eq!(m.source_to_gene.iter().flatten().count(), r.n_mapped);
        let unique: std::collections::HashSet<&String> = m.ids.iter().collect();
        assert_eq!(unique.len(), m.ids.len());
    }

    fn mapped_id<'a>(m: &'a GeneMapping, names: &[String], name: &str) -> Option<&'a str> {
        let i = names.iter().position(|n| n == name).unwrap_or_else(|| panic!("{name} not in the var names"));
        m.source_to_gene[i].map(|g| m.ids[g as usize].as_str())
    }

    #[test]
    fn harmonises_celltypist_symbols_from_an_old_10x_reference() {
        let names = h5ad_var("expression/celltypist_sample_cell_by_gene.h5ad", "");
        assert_eq!(names.len(), 32_786);
        let m = harmonise(&names, GeneIdKind::Auto, GeneTable::human());
        eprintln!("{}", m.report);
        check_invariants(&m);
        let r = &m.report;
        assert_eq!((r.kind, r.detected), (GeneIdKind::Symbol, true));
        // Measured 63.4% (20,775), 59.2% before previous symbols and aliases mapped (1,361 do):
        // the rest are mostly clone-based lncRNA names (RP11-34P13.7, AL627309.1) retired since
        // that reference; of names without a '.', 98.1% map (20,728 of 21,119; 91.9% before).
        assert!(r.mapped_fraction() > 0.63, "{r}");
        assert!(r.n_alias > 1_300, "{r}");
        let named: Vec<usize> = (0..names.len()).filter(|&i| !names[i].contains('.')).collect();
        let named_mapped = named.iter().filter(|&&i| m.source_to_gene[i].is_some()).count();
        eprintln!("names without a '.': {named_mapped} of {} mapped", named.len());
        assert!(named_mapped as f64 > 0.975 * named.len() as f64, "{named_mapped} of {}", named.len());
        assert_eq!(r.examples.len(), 2 * report::MAX_EXAMPLES);
        assert!(r.examples.contains(&"RP11-34P13.7 (unknown symbol)".to_string()), "{r}");

        assert_eq!(mapped_id(&m, &names, "TP53"), Some("ENSG00000141510"));
        assert_eq!(mapped_id(&m, &names, "CD4"), Some("ENSG00000010610"));
        assert_eq!(mapped_id(&m, &names, "MS4A1"), Some("ENSG00000156738"));
        // GENCODE names two genes MATR3; NCBI's MATR3 keeps the older one.
        assert_eq!(mapped_id(&m, &names, "MATR3"), Some("ENSG00000015479"));
        // The old reference lists both spellings; ignoring case they are one gene, summed.
        assert_eq!(mapped_id(&m, &names, "C1ORF220"), mapped_id(&m, &names, "C1orf220"));
        assert_eq!(mapped_id(&m, &names, "Metazoa_SRP"), None);
        assert!(r.examples.contains(&"Metazoa_SRP (ambiguous: 170 genes)".to_string()), "{r}");
        let tp53 = m.ids.iter().position(|id| id == "ENSG00000141510").unwrap();
        assert_eq!(m.symbols[tp53], "TP53");

        // Symbols renamed since the reference reach today's genes.
        for (old, id) in [
            ("GBA", "ENSG00000177628"),        // GBA1
            ("SEPT9", "ENSG00000184640"),      // SEPTIN9
            ("WARS", "ENSG00000140105"),       // WARS1
            ("MGEA5", "ENSG00000198408"),      // OGA
            ("UFD1L", "ENSG00000070010"),      // UFD1
            ("HIST2H2AA3", "ENSG00000288825"), // H2AC18
            ("SEPN1", "ENSG00000162430"),      // SELENON
            ("CYHR1", "ENSG00000187954"),      // ZFTRAF1
            ("WDR61", "ENSG00000140395"),      // SKIC8
            ("FAM189B", "ENSG00000160767"),    // ENTREP3
            ("GLTPD1", "ENSG00000224051"),     // CPTP
            ("LINC00152", "ENSG00000222041"),  // CYTOR
            ("ATP5J2", "ENSG00000241468"),     // ATP5MF
            ("CCDC23", "ENSG00000177868"),     // SVBP
            ("C16orf13", "ENSG00000130731"),   // METTL26
            ("PPAPDC1B", "ENSG00000147535"),   // PLPP5
            ("KIAA0125", "ENSG00000226777"),   // FAM30A
            ("FAM96A", "ENSG00000166797"),     // CIAO2A
            ("CCDC104", "ENSG00000163001"),    // CFAP36
            ("ARNTL", "ENSG00000133794"),      // BMAL1
        ] {
            assert_eq!(mapped_id(&m, &names, old), Some(id), "{old}");
        }
        let sept9 = m.ids.iter().position(|id| id == "ENSG00000184640").unwrap();
        assert_eq!(m.symbols[sept9], "SEPTIN9");
        // A former symbol of two genes today (CENPX and BHLHE40) stays unmapped.
        assert_eq!(mapped_id(&m, &names, "STRA13"), None);
        // NCBI has merged HNRNPU-AS1 into HNRNPU, which the reference lists as well: not summed.
        assert_eq!(mapped_id(&m, &names, "HNRNPU-AS1"), None);
        assert_eq!(mapped_id(&m, &names, "HNRNPU"), Some("ENSG00000153187"));
    }

    #[test]
    fn harmonises_versioned_and_unversioned_ensembl_ids() {
        let names = strings(&["ENSG00000141510.17", "ENSG00000141510", "ENSG00000065054.9", "ENSG99999999999"]);
        let m = harmonise(&names, GeneIdKind::Ensembl, GeneTable::human());
        check_invariants(&m);
        assert_eq!(m.ids, strings(&["ENSG00000141510", "ENSG00000065054", "ENSG99999999999"]));
        assert_eq!(m.symbols, strings(&["TP53", "NHERF2", "ENSG99999999999"]));
        assert_eq!(m.source_to_gene, vec![Some(0), Some(0), Some(1), Some(2)]);
        assert_eq!((m.report.n_duplicates_summed, m.report.n_unknown_ensembl), (1, 1));

        // A symbol dataset meets the same IDs through old and new names.
        let syms = strings(&["SLC9A3R2", "NHERF2", "tp53", "Y_RNA"]);
        let m = harmonise(&syms, GeneIdKind::Symbol, GeneTable::human());
        assert_eq!(m.ids, strings(&["ENSG00000065054", "ENSG00000141510"]));
        assert_eq!(m.source_to_gene, vec![Some(0), Some(0), Some(1), None]);
        assert_eq!((m.report.n_case_insensitive, m.report.n_ambiguous), (1, 1));
    }

    #[test]
    fn harmonises_bulk_ensembl_table() {
        let path = crate::testing::shared_data("expression/noiseq_marioni2008_kidney_liver_counts.tsv");
        let src = crate::data::table::TableSource::open(&path, false).unwrap();
        let names = crate::data::ExpressionSource::var_names(&src).to_vec();
        let m = harmonise(&names, GeneIdKind::Auto, GeneTable::human());
        eprintln!("{}", m.report);
        check_invariants(&m);
        let r = &m.report;
        assert_eq!(r.kind, GeneIdKind::Ensembl);
        // Every name is an Ensembl ID and kept; measured: 4,999 of 5,088 are in the table, the
        // rest retired since Ensembl's 2008 release.
        assert_eq!((r.n_input, r.n_mapped), (5088, 5088));
        assert!(r.n_unknown_ensembl < 150, "{r}");
        assert_eq!(mapped_id(&m, &names, "ENSG00000177757"), Some("ENSG00000177757"));
    }

    #[test]
    fn mouse_data_is_kept_raw_when_detected() {
        let symbols = h5ad_var("expression/scanpy_10x_10k_subset_mouse.h5ad", "");
        let ids = h5ad_var("expression/scanpy_10x_10k_subset_mouse.h5ad", "gene_ids");
        for names in [symbols, ids] {
            let m = harmonise(&names, GeneIdKind::Auto, GeneTable::human());
            check_invariants(&m);
            assert_eq!(m.report.kind, GeneIdKind::Raw, "{}", m.report);
            assert_eq!(m.ids[..], names[..m.ids.len()]);
        }
    }

    #[test]
    fn efaar_benchmark_symbols_map() {
        let mut names = std::collections::BTreeSet::new();
        for db in ["CORUM", "HuMAP", "Reactome", "SIGNOR", "StringDB"] {
            let path = crate::testing::shared_data(&format!("annotations/efaar/{db}.txt"));
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines().skip(1) {
                names.extend(line.split(',').map(String::from));
            }
        }
        let names: Vec<String> = names.into_iter().collect();
        let m = harmonise(&names, GeneIdKind::Auto, GeneTable::human());
        eprintln!("{}", m.report);
        check_invariants(&m);
        assert_eq!(m.report.n_input, 13_183);
        // Measured 99.8% (13,157), 99.6% (13,124) before previous symbols and aliases mapped; the
        // rest are NCBI symbols without an Ensembl gene (KIR2DL2), aliases of several genes (TAZ)
        // and names of genes NCBI merged into another the benchmark lists too (C2orf48, RRM2).
        assert!(m.report.mapped_fraction() > 0.997, "{}", m.report);
        assert_eq!(mapped_id(&m, &names, "ARNTL"), Some("ENSG00000133794"));
        assert_eq!(mapped_id(&m, &names, "DDX58"), Some("ENSG00000107201"));
    }
}
