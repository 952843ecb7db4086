//! The bundled human gene table: unversioned Ensembl gene IDs with the symbols GENCODE v44 and
//! NCBI Gene give them and NCBI's aliases and previous symbols, and the rules that pick one gene
//! for a name.

use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;

use crate::{Error, Result};

/// `crates/txfm/assets/hs_genes.tsv.gz`, derived by `scripts/make_gene_table.py`; its README
/// gives sources, versions and licences.
const HUMAN_TSV_GZ: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/hs_genes.tsv.gz"));
const HUMAN_ORIGIN: &str = "assets/hs_genes.tsv.gz";

/// Genes (indexed `0..len()`) and symbol → gene lookups.
#[derive(Debug, Clone, Default)]
pub struct GeneTable {
    /// Unversioned Ensembl IDs. `[n_genes]`
    ids: Vec<String>,
    /// Display symbol: the GENCODE name, else the NCBI symbol, else empty. `[n_genes]`
    symbols: Vec<String>,
    /// NCBI calls the gene protein-coding. `[n_genes]`
    coding: Vec<bool>,
    by_id: HashMap<String, u32>,
    /// Current symbols (GENCODE's and NCBI's).
    current: SymbolIndex,
    /// Aliases and previous symbols (`SEPT9` for SEPTIN9), consulted only when no current
    /// symbol matches.
    aliases: SymbolIndex,
}

/// Names → the genes they may stand for.
#[derive(Debug, Clone, Default)]
struct SymbolIndex {
    exact: HashMap<String, Vec<Candidate>>,
    /// Keyed by the ASCII upper-case name, for the case-insensitive fallback.
    folded: HashMap<String, Vec<Candidate>>,
}

/// A gene a symbol may stand for, and which annotation names it so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Candidate {
    gene: u32,
    gencode: bool,
    ncbi: bool,
}

/// What a symbol resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolMatch {
    /// One gene (an index into the table), found by exact or only by case-insensitive match, of a
    /// current symbol or only of an alias.
    Gene { gene: u32, case_insensitive: bool, alias: bool },
    /// Several genes carry the symbol and none is preferred.
    Ambiguous { n_candidates: usize },
    Unknown,
}

impl GeneTable {
    /// The bundled human table, parsed once on first use (about 60k genes).
    pub fn human() -> &'static GeneTable {
        static TABLE: OnceLock<GeneTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            let mut text = String::new();
            flate2::read::GzDecoder::new(HUMAN_TSV_GZ)
                .read_to_string(&mut text)
                .expect("the bundled gene table is valid gzip");
            GeneTable::parse(&text, HUMAN_ORIGIN).expect("the bundled gene table parses")
        })
    }

    /// Parses the table format of `assets/hs_genes.tsv.gz`: `#` comments, a header, then rows
    /// `ensembl_id  symbol  source  ncbi_type` with `source` one of `both`, `gencode`, `ncbi`
    /// (current symbols) or `alias` (an alias or previous symbol). `origin` names the text in
    /// errors.
    pub fn parse(text: &str, origin: &str) -> Result<GeneTable> {
        let mut table = GeneTable::default();
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.starts_with('#'));
        match lines.next() {
            Some((_, "ensembl_id\tsymbol\tsource\tncbi_type")) => {}
            other => {
                let found = other.map_or("nothing", |(_, l)| l);
                return Err(Error::format(origin, format!("expected the header \
                    'ensembl_id<TAB>symbol<TAB>source<TAB>ncbi_type', found '{found}'")));
            }
        }
        for (i, line) in lines {
            let bad = |what: String| Error::format(origin, format!("line {}: {what}", i + 1));
            let fields: Vec<&str> = line.split('\t').collect();
            let [id, symbol, source, ncbi_type] = fields[..] else {
                return Err(bad(format!("expected 4 tab-separated fields, found {}", fields.len())));
            };
            let (gencode, ncbi, alias) = match source {
                "both" => (true, true, false),
                "gencode" => (true, false, false),
                "ncbi" => (false, true, false),
                "alias" => (false, false, true),
                _ => return Err(bad(format!("source '{source}' is not both, gencode, ncbi or alias"))),
            };
            if super::canonical_ensembl(id) != Some(id) {
                return Err(bad(format!("'{id}' is not an unversioned human Ensembl gene ID")));
            }
            let gene = table.gene_index(id);
            table.coding[gene as usize] |= ncbi_type == "protein-coding";
            if symbol.is_empty() {
                continue;
            }
            let cand = Candidate { gene, gencode, ncbi };
            if alias {
                table.aliases.add(symbol, cand);
                continue;
            }
            if table.symbols[gene as usize].is_empty() {
                table.symbols[gene as usize] = symbol.to_string();
            }
            table.current.add(symbol, cand);
        }
        Ok(table)
    }

    fn gene_index(&mut self, id: &str) -> u32 {
        if let Some(&g) = self.by_id.get(id) {
            return g;
        }
        let g = self.ids.len() as u32;
        self.ids.push(id.to_string());
        self.symbols.push(String::new());
        self.coding.push(false);
        self.by_id.insert(id.to_string(), g);
        g
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The gene with this unversioned Ensembl ID.
    pub fn find_id(&self, id: &str) -> Option<u32> {
        self.by_id.get(id).copied()
    }

    /// Ensembl ID of gene `gene`.
    pub fn id(&self, gene: u32) -> &str {
        &self.ids[gene as usize]
    }

    /// Display symbol of gene `gene`; `None` for genes without a name.
    pub fn symbol(&self, gene: u32) -> Option<&str> {
        Some(self.symbols[gene as usize].as_str()).filter(|s| !s.is_empty())
    }

    /// Current symbols first, case-sensitive then case-insensitive, and only then aliases in the
    /// same order, so an alias never takes a name from a gene that has it as its symbol. Among
    /// several genes carrying a current symbol the preferred one is the single best by (GENCODE
    /// names it so, NCBI names it so, NCBI calls it protein-coding), compared in that order; a tie
    /// at the top is ambiguous. An alias several genes carry is ambiguous: NCBI keeps aliases
    /// a gene merely picked up, so no rank makes one of them safe.
    pub fn lookup_symbol(&self, symbol: &str) -> SymbolMatch {
        let folded = symbol.to_ascii_uppercase();
        for (index, alias) in [(&self.current, false), (&self.aliases, true)] {
            if let Some(cands) = index.exact.get(symbol) {
                return self.pick(cands, false, alias);
            }
            if let Some(cands) = index.folded.get(&folded) {
                return self.pick(cands, true, alias);
            }
        }
        SymbolMatch::Unknown
    }

    fn pick(&self, cands: &[Candidate], case_insensitive: bool, alias: bool) -> SymbolMatch {
        let rank = |c: &Candidate| (c.gencode, c.ncbi, self.coding[c.gene as usize]);
        let best = cands.iter().map(rank).max().expect("symbols have at least one candidate");
        let mut top = cands.iter().filter(|c| rank(c) == best);
        match (top.next(), top.next()) {
            (Some(c), None) if !alias || cands.len() == 1 => {
                SymbolMatch::Gene { gene: c.gene, case_insensitive, alias }
            }
            _ => SymbolMatch::Ambiguous { n_candidates: cands.len() },
        }
    }
}

impl SymbolIndex {
    fn add(&mut self, name: &str, cand: Candidate) {
        add_candidate(&mut self.exact, name.to_string(), cand);
        add_candidate(&mut self.folded, name.to_ascii_uppercase(), cand);
    }
}

/// Adds `cand` under `key`, merging with an entry for the same gene (the folded map meets the
/// same gene under two spellings).
fn add_candidate(map: &mut HashMap<String, Vec<Candidate>>, key: String, cand: Candidate) {
    let list = map.entry(key).or_default();
    match list.iter_mut().find(|c| c.gene == cand.gene) {
        Some(c) => {
            c.gencode |= cand.gencode;
            c.ncbi |= cand.ncbi;
        }
        None => list.push(cand),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = "# comment\n\
        ensembl_id\tsymbol\tsource\tncbi_type\n\
        ENSG00000000001\tAAA\tboth\tprotein-coding\n\
        ENSG00000000001\tOLDA\tncbi\tprotein-coding\n\
        ENSG00000000001\tAAA0\talias\t\n\
        ENSG00000000001\tCCC\talias\t\n\
        ENSG00000000001\tddd\talias\t\n\
        ENSG00000000002\tBBB\tgencode\t\n\
        ENSG00000000002\tEEE\talias\t\n\
        ENSG00000000003\tBBB\tgencode\t\n\
        ENSG00000000003\tEEE\talias\t\n\
        ENSG00000000004\tCCC\tgencode\t\n\
        ENSG00000000005\tCCC\tncbi\tprotein-coding\n\
        ENSG00000000006\tDdd\tgencode\t\n\
        ENSG00000000007\t\tgencode\t\n";

    #[test]
    fn parses_and_resolves_symbols() {
        let t = GeneTable::parse(TINY, "tiny").unwrap();
        assert_eq!(t.len(), 7);
        let g = |id: &str| t.find_id(id).unwrap();
        assert_eq!(t.symbol(g("ENSG00000000001")), Some("AAA"));
        assert_eq!(t.symbol(g("ENSG00000000007")), None);
        let exact = |gene| SymbolMatch::Gene { gene, case_insensitive: false, alias: false };
        let folded = |gene| SymbolMatch::Gene { gene, case_insensitive: true, alias: false };
        assert_eq!(t.lookup_symbol("AAA"), exact(g("ENSG00000000001")));
        assert_eq!(t.lookup_symbol("OLDA"), exact(g("ENSG00000000001")));
        // Two GENCODE genes named BBB, neither confirmed by NCBI: no basis to choose.
        assert_eq!(t.lookup_symbol("BBB"), SymbolMatch::Ambiguous { n_candidates: 2 });
        // GENCODE's CCC wins over NCBI's CCC.
        assert_eq!(t.lookup_symbol("CCC"), exact(g("ENSG00000000004")));
        assert_eq!(t.lookup_symbol("DDD"), folded(g("ENSG00000000006")));
        assert_eq!(t.lookup_symbol("aaa"), folded(g("ENSG00000000001")));
        assert_eq!(t.lookup_symbol("ZZZ"), SymbolMatch::Unknown);
    }

    #[test]
    fn aliases_map_only_names_no_current_symbol_takes() {
        let t = GeneTable::parse(TINY, "tiny").unwrap();
        let g = |id: &str| t.find_id(id).unwrap();
        let alias = |gene, case_insensitive| SymbolMatch::Gene { gene, case_insensitive, alias: true };
        assert_eq!(t.lookup_symbol("AAA0"), alias(g("ENSG00000000001"), false));
        assert_eq!(t.lookup_symbol("aaa0"), alias(g("ENSG00000000001"), true));
        // Another gene's current symbol wins over an alias, even one matching only ignoring case.
        assert!(matches!(t.lookup_symbol("CCC"), SymbolMatch::Gene { alias: false, .. }));
        let folded_symbol = SymbolMatch::Gene { gene: g("ENSG00000000006"), case_insensitive: true, alias: false };
        assert_eq!(t.lookup_symbol("ddd"), folded_symbol);
        // An alias of two genes is ambiguous, even where one would win on rank as a symbol.
        assert_eq!(t.lookup_symbol("EEE"), SymbolMatch::Ambiguous { n_candidates: 2 });
        // Aliases never become the display symbol.
        assert_eq!(t.symbol(g("ENSG00000000001")), Some("AAA"));
    }

    #[test]
    fn parse_errors_name_origin_and_line() {
        let err = GeneTable::parse("ensembl_id\tsymbol\tsource\tncbi_type\nENSG00000000001\tA\tweird\t\n", "t.tsv")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "t.tsv: line 2: source 'weird' is not both, gencode, ncbi or alias");
        let err = GeneTable::parse("id\tname\n", "t.tsv").unwrap_err().to_string();
        assert!(err.starts_with("t.tsv: expected the header"), "{err}");
        let err = GeneTable::parse("ensembl_id\tsymbol\tsource\tncbi_type\nENSG1\tA\tboth\t\n", "t.tsv")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "t.tsv: line 2: 'ENSG1' is not an unversioned human Ensembl gene ID");
    }

    /// The Ensembl ID `symbol` resolves to in the bundled table, and whether through an alias.
    fn human_lookup(symbol: &str) -> (&'static str, bool) {
        let t = GeneTable::human();
        match t.lookup_symbol(symbol) {
            SymbolMatch::Gene { gene, alias, .. } => (t.id(gene), alias),
            other => panic!("{symbol}: {other:?}"),
        }
    }

    #[test]
    fn bundled_human_table_knows_well_known_genes() {
        let t = GeneTable::human();
        assert!(t.len() > 60_000, "{}", t.len());
        let tp53 = t.find_id("ENSG00000141510").unwrap();
        assert_eq!(t.symbol(tp53), Some("TP53"));
        assert_eq!(t.lookup_symbol("TP53"), SymbolMatch::Gene { gene: tp53, case_insensitive: false, alias: false });
        // Renamed in GENCODE, still NCBI's symbol in 2022: both spellings reach the same gene.
        assert_eq!(human_lookup("NHERF2"), ("ENSG00000065054", false));
        assert_eq!(human_lookup("SLC9A3R2"), ("ENSG00000065054", false));
        // Hundreds of Y_RNA loci share the name.
        assert!(matches!(t.lookup_symbol("Y_RNA"), SymbolMatch::Ambiguous { n_candidates } if n_candidates > 500));
    }

    #[test]
    fn bundled_human_table_maps_previous_symbols() {
        for (old, id, now) in [
            ("GBA", "ENSG00000177628", "GBA1"),
            ("SEPT9", "ENSG00000184640", "SEPTIN9"),
            ("WARS", "ENSG00000140105", "WARS1"),
            ("ARNTL", "ENSG00000133794", "BMAL1"),
            ("MGEA5", "ENSG00000198408", "OGA"),
            ("UFD1L", "ENSG00000070010", "UFD1"),
            ("SEPN1", "ENSG00000162430", "SELENON"),
            ("HIST2H2AA3", "ENSG00000288825", "H2AC18"),
            ("LINC00152", "ENSG00000222041", "CYTOR"),
        ] {
            assert_eq!(human_lookup(old), (id, true), "{old}");
            assert_eq!(human_lookup(now), (id, false), "{now}");
        }
        // POTEF lists ACTB and NDUFA2 lists CD14 among its aliases; the genes named so keep them.
        assert_eq!(human_lookup("ACTB"), ("ENSG00000075624", false));
        assert_eq!(human_lookup("CD14"), ("ENSG00000170458", false));
        // NCBI gives LCA10 to CEP290 (a disease name) and to L1CAM-AS1 (its previous symbol):
        // left out of the table.
        assert_eq!(GeneTable::human().lookup_symbol("LCA10"), SymbolMatch::Unknown);
    }
}
