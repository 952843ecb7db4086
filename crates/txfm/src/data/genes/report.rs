//! What harmonising one dataset's gene IDs did, as counts a person can check at a glance.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::GeneIdKind;

/// How many examples of ambiguous, and of unmapped, names a report keeps.
pub const MAX_EXAMPLES: usize = 5;

/// Counts over a dataset's `var_names`: `n_input = n_mapped + n_ambiguous + n_unmapped`, and
/// the number of canonical genes is `n_mapped - n_duplicates_summed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingReport {
    /// The kind the names were read as (what `Auto` resolved to).
    pub kind: GeneIdKind,
    /// `kind` was detected from the names rather than given.
    pub detected: bool,
    pub n_input: usize,
    /// Names given a canonical ID, duplicates included.
    pub n_mapped: usize,
    /// Symbols shared by several genes with none preferred: dropped.
    pub n_ambiguous: usize,
    /// Unknown symbols, names that are not human Ensembl IDs, empty names, aliases of a gene
    /// another name already stands for: dropped.
    pub n_unmapped: usize,
    /// Mapped names whose canonical ID an earlier name already had; their counts are summed in.
    pub n_duplicates_summed: usize,
    /// Mapped symbols found only by case-insensitive match.
    pub n_case_insensitive: usize,
    /// Mapped symbols found only as a gene's previous symbol or alias (`SEPT9`, now `SEPTIN9`).
    /// Absent from reports written before aliases were mapped.
    #[serde(default)]
    pub n_alias: usize,
    /// Ensembl IDs kept although the bundled table (GENCODE v44, NCBI 2022) does not know them:
    /// retired or newer genes, which other datasets may not share.
    pub n_unknown_ensembl: usize,
    /// The first [`MAX_EXAMPLES`] ambiguous and the first [`MAX_EXAMPLES`] unmapped names, each
    /// with its reason: `Y_RNA (ambiguous: 758 genes)`.
    pub examples: Vec<String>,
}

impl MappingReport {
    pub fn new(kind: GeneIdKind, detected: bool, n_input: usize) -> Self {
        MappingReport {
            kind,
            detected,
            n_input,
            n_mapped: 0,
            n_ambiguous: 0,
            n_unmapped: 0,
            n_duplicates_summed: 0,
            n_case_insensitive: 0,
            n_alias: 0,
            n_unknown_ensembl: 0,
            examples: Vec::new(),
        }
    }

    /// Fraction of input names mapped (1 for an empty input).
    pub fn mapped_fraction(&self) -> f64 {
        if self.n_input == 0 { 1.0 } else { self.n_mapped as f64 / self.n_input as f64 }
    }

    /// Counts a dropped name, keeping it as an example while there are few of its class.
    pub(super) fn drop(&mut self, name: &str, ambiguous: bool, why: impl fmt::Display) {
        let seen = if ambiguous { &mut self.n_ambiguous } else { &mut self.n_unmapped };
        *seen += 1;
        if *seen <= MAX_EXAMPLES {
            self.examples.push(format!("{name} ({why})"));
        }
    }
}

impl fmt::Display for MappingReport {
    /// One line: `32786 var names as symbol (detected): 20775 mapped (63.4%), 8 ambiguous, …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.detected { " (detected)" } else { "" };
        write!(
            f,
            "{} var names as {}{how}: {} mapped ({:.1}%), {} ambiguous, {} unmapped",
            self.n_input,
            self.kind,
            self.n_mapped,
            100.0 * self.mapped_fraction(),
            self.n_ambiguous,
            self.n_unmapped
        )?;
        let extras = [
            (self.n_duplicates_summed, "duplicates summed"),
            (self.n_case_insensitive, "matched ignoring case"),
            (self.n_alias, "matched a previous symbol or alias"),
            (self.n_unknown_ensembl, "Ensembl IDs not in the bundled table kept"),
        ];
        for (n, what) in extras.into_iter().filter(|(n, _)| *n > 0) {
            write!(f, "; {n} {what}")?;
        }
        if !self.examples.is_empty() {
            write!(f, "; dropped e.g. {}", self.examples.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_reports_written_before_aliases_were_mapped() {
        let mut r = MappingReport::new(GeneIdKind::Symbol, true, 3);
        r.n_alias = 2;
        let mut json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["n_alias"], 2);
        json.as_object_mut().unwrap().remove("n_alias");
        let old: MappingReport = serde_json::from_value(json).unwrap();
        assert_eq!(old, MappingReport { n_alias: 0, ..r });
    }
}
