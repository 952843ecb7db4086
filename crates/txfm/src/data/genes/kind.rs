//! What kind of identifier a dataset's `var_names` are, and the canonical form of an Ensembl ID.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How to read a dataset's gene identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeneIdKind {
    /// Decide per dataset with [`GeneIdKind::resolve`].
    #[default]
    Auto,
    /// Human gene symbols (`TP53`), mapped to Ensembl IDs through the bundled table. Names that
    /// are human Ensembl IDs are taken as such.
    Symbol,
    /// Human Ensembl gene IDs, versioned or not (`ENSG00000141510.17`).
    Ensembl,
    /// IDs kept exactly as given: for non-human data, which the human-only table cannot map.
    Raw,
}

impl GeneIdKind {
    /// The kind `Auto` stands for on these names; any other kind is returned unchanged.
    ///
    /// Mostly human Ensembl IDs → `Ensembl`; mostly another species' Ensembl IDs (`ENSMUSG…`) or
    /// mouse-style symbols (`Actb`, `Gm1992`) → `Raw`, because mapping those through a human
    /// table would silently rename genes across species; otherwise `Symbol`.
    pub fn resolve(self, names: &[String]) -> GeneIdKind {
        if self != GeneIdKind::Auto {
            return self;
        }
        let majority = |n: usize| 2 * n > names.len();
        let human = names.iter().filter(|n| canonical_ensembl(n.trim()).is_some()).count();
        let other = names.iter().filter(|n| is_other_species_ensembl(n.trim())).count();
        let title_case = names.iter().filter(|n| looks_mouse_symbol(n.trim())).count();
        if majority(human) {
            GeneIdKind::Ensembl
        } else if majority(other) || majority(title_case) {
            GeneIdKind::Raw
        } else {
            GeneIdKind::Symbol
        }
    }
}

impl fmt::Display for GeneIdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GeneIdKind::Auto => "auto",
            GeneIdKind::Symbol => "symbol",
            GeneIdKind::Ensembl => "ensembl",
            GeneIdKind::Raw => "raw",
        })
    }
}

/// The unversioned human Ensembl gene ID in `name`, or `None` if it is not one.
///
/// `ENSG00000141510`, `ENSG00000141510.17` and GENCODE's pseudo-autosomal copy
/// `ENSG00000182378.14_PAR_Y` give `ENSG00000141510` / `ENSG00000182378`: the `_PAR_Y` copy is the
/// same gene, so its counts are summed with the X copy.
pub fn canonical_ensembl(name: &str) -> Option<&str> {
    let name = name.strip_suffix("_PAR_Y").unwrap_or(name);
    let (id, version) = name.split_once('.').unwrap_or((name, ""));
    let digits = id.strip_prefix("ENSG")?;
    let ok = digits.len() == 11
        && digits.bytes().all(|b| b.is_ascii_digit())
        && version.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(id)
}

/// `ENSMUSG00000051951`, `ENSRNOG…`, `ENSDARG…`: an Ensembl gene ID of a species other than human.
fn is_other_species_ensembl(name: &str) -> bool {
    let id = name.split_once('.').map_or(name, |(id, _)| id);
    let Some(rest) = id.strip_prefix("ENS") else { return false };
    let letters = rest.bytes().take_while(|b| b.is_ascii_uppercase()).count();
    let digits = &rest[letters..];
    letters > 1
        && rest.as_bytes()[letters - 1] == b'G'
        && digits.len() == 11
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Mouse (and rat) symbols are capitalised (`Actb`); human ones are upper case apart from the
/// `orf` of open-reading-frame names (`C1orf112`).
fn looks_mouse_symbol(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.as_str().replace("orf", "").bytes().any(|b| b.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn canonical_ensembl_strips_versions_and_par_y() {
        assert_eq!(canonical_ensembl("ENSG00000141510"), Some("ENSG00000141510"));
        assert_eq!(canonical_ensembl("ENSG00000141510.17"), Some("ENSG00000141510"));
        assert_eq!(canonical_ensembl("ENSG00000182378.14_PAR_Y"), Some("ENSG00000182378"));
        assert_eq!(canonical_ensembl("ENSG00000182378_PAR_Y"), Some("ENSG00000182378"));
        assert_eq!(canonical_ensembl("ENSG0000014151"), None);
        assert_eq!(canonical_ensembl("ENSG00000141510.x"), None);
        assert_eq!(canonical_ensembl("ENSMUSG00000051951"), None);
        assert_eq!(canonical_ensembl("TP53"), None);
    }

    #[test]
    fn auto_detects_the_kind_by_majority() {
        let ens = names(&["ENSG00000141510.17", "ENSG00000012048", "ERCC-00002"]);
        assert_eq!(GeneIdKind::Auto.resolve(&ens), GeneIdKind::Ensembl);
        let human = names(&["TP53", "C1orf112", "HLA-A", "ENSG00000012048"]);
        assert_eq!(GeneIdKind::Auto.resolve(&human), GeneIdKind::Symbol);
        let mouse = names(&["Xkr4", "Gm1992", "Sox17", "Mrpl15"]);
        assert_eq!(GeneIdKind::Auto.resolve(&mouse), GeneIdKind::Raw);
        let mouse_ids = names(&["ENSMUSG00000051951", "ENSMUSG00000025900.3"]);
        assert_eq!(GeneIdKind::Auto.resolve(&mouse_ids), GeneIdKind::Raw);
        assert_eq!(GeneIdKind::Symbol.resolve(&ens), GeneIdKind::Symbol);
    }

    #[test]
    fn serde_names_are_lowercase() {
        let k: GeneIdKind = serde_json::from_str("\"ensembl\"").unwrap();
        assert_eq!(k, GeneIdKind::Ensembl);
        assert_eq!(serde_json::to_string(&GeneIdKind::Raw).unwrap(), "\"raw\"");
        assert_eq!(GeneIdKind::Symbol.to_string(), "symbol");
    }
}
