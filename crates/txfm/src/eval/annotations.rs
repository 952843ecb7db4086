//! Known gene–gene relationships: the pair databases of the EFAAR benchmark (CORUM, HuMAP,
//! Reactome, SIGNOR, StringDB), each a CSV file `<NAME>.txt` with the header `entity1,entity2` and
//! one pair of gene symbols a line.
//!
//! Loading follows EFAAR's `filter_relationships`: each pair is put in sorted order, self-pairs
//! are dropped, and a pair listed twice (in either order) is kept once, at its first occurrence.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The five EFAAR databases, in the order reports list them.
pub const DEFAULT_DATABASES: [&str; 5] = ["CORUM", "HuMAP", "Reactome", "SIGNOR", "StringDB"];

/// One database of undirected pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct PairDatabase {
    /// The file stem, e.g. `CORUM`.
    pub name: String,
    /// Unique pairs, each with `entity1 < entity2`, in first-seen order.
    pub pairs: Vec<(String, String)>,
}

impl PairDatabase {
    /// A database from pairs given in memory, filtered like a file (sorted within each pair,
    /// no self-pairs, no duplicates).
    pub fn from_pairs<I, A, B>(name: impl Into<String>, pairs: I) -> PairDatabase
    where
        I: IntoIterator<Item = (A, B)>,
        A: Into<String>,
        B: Into<String>,
    {
        let mut seen = HashSet::new();
        let mut kept = Vec::new();
        for (a, b) in pairs {
            if let Some(pair) = ordered_pair(a.into(), b.into()) {
                if seen.insert(pair.clone()) {
                    kept.push(pair);
                }
            }
        }
        PairDatabase { name: name.into(), pairs: kept }
    }

    /// The pairs whose two entities are both in `entities`, as index pairs into it
    /// (`entities` must not repeat a name; the first index wins if it does).
    pub fn pairs_among(&self, entities: &[String]) -> Vec<(usize, usize)> {
        let index: std::collections::HashMap<&str, usize> =
            entities.iter().enumerate().rev().map(|(i, e)| (e.as_str(), i)).collect();
        self.pairs
            .iter()
            .filter_map(|(a, b)| Some((*index.get(a.as_str())?, *index.get(b.as_str())?)))
            .collect()
    }
}

/// `(a, b)` in sorted order, or `None` for a self-pair.
fn ordered_pair(a: String, b: String) -> Option<(String, String)> {
    match a.cmp(&b) {
        std::cmp::Ordering::Less => Some((a, b)),
        std::cmp::Ordering::Greater => Some((b, a)),
        std::cmp::Ordering::Equal => None,
    }
}

/// Reads one `entity1,entity2` CSV file. The database is named after the file stem.
pub fn load_pairs(path: &Path) -> Result<PairDatabase> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_pairs(path, &text)
}

fn parse_pairs(path: &Path, text: &str) -> Result<PairDatabase> {
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let header = lines.next().map(|(_, l)| fields(l)).unwrap_or_default();
    if header != ["entity1", "entity2"] {
        return Err(Error::format(
            path,
            format!("line 1: expected the header `entity1,entity2`, found `{}`", header.join(",")),
        ));
    }
    let mut pairs = Vec::new();
    for (i, line) in lines {
        let f = fields(line);
        if f.len() != 2 || f[0].is_empty() || f[1].is_empty() {
            return Err(Error::format(
                path,
                format!("line {}: expected two non-empty fields `entity1,entity2`, found `{line}`", i + 1),
            ));
        }
        let mut f = f.into_iter();
        pairs.push((f.next().unwrap(), f.next().unwrap()));
    }
    Ok(PairDatabase::from_pairs(name, pairs))
}

/// Comma-separated fields, trimmed, with surrounding double quotes removed.
fn fields(line: &str) -> Vec<String> {
    line.split(',').map(|f| f.trim().trim_matches('"').to_string()).collect()
}

/// Reads `<dir>/<name>.txt` for each name, in the order given.
pub fn load_databases(dir: &Path, names: &[&str]) -> Result<Vec<PairDatabase>> {
    if !dir.is_dir() {
        return Err(Error::format(dir, "not a directory of pair databases (<NAME>.txt files)"));
    }
    names.iter().map(|n| load_pairs(&dir.join(format!("{n}.txt")))).collect()
}

/// The five default EFAAR databases ([`DEFAULT_DATABASES`]) from `dir`.
pub fn load_default(dir: &Path) -> Result<Vec<PairDatabase>> {
    load_databases(dir, &DEFAULT_DATABASES)
}

/// Databases named on a command line: a directory stands for the five default databases in it, a
/// file for itself.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<PairDatabase>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            out.extend(load_default(p)?);
        } else {
            out.push(load_pairs(p)?);
        }
    }
    if out.is_empty() {
        return Err(Error::Invalid("no pair databases given".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_self_pairs_and_duplicates_in_either_order() {
        let text = "entity1,entity2\nB,A\nA,B\nC,C\n\"D\",A\nA,D\nB,C\n";
        let db = parse_pairs(Path::new("/x/CORUM.txt"), text).unwrap();
        assert_eq!(db.name, "CORUM");
        let want: Vec<(String, String)> =
            [("A", "B"), ("A", "D"), ("B", "C")].iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(db.pairs, want);
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = parse_pairs(Path::new("db.txt"), "entity1,entity2\nA,B\nC\n").unwrap_err().to_string();
        assert!(err.contains("db.txt") && err.contains("line 3"), "{err}");
        let err = parse_pairs(Path::new("db.txt"), "gene_a,gene_b\nA,B\n").unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("entity1,entity2"), "{err}");
    }

    #[test]
    fn pairs_among_maps_to_indices() {
        let db = PairDatabase::from_pairs("x", [("A", "B"), ("B", "Z"), ("C", "A")]);
        let ents: Vec<String> = ["C", "B", "A"].iter().map(|s| s.to_string()).collect();
        assert_eq!(db.pairs_among(&ents), vec![(2, 1), (2, 0)]);
    }

    #[test]
    fn loads_shared_defaults() {
        let dir = crate::testing::shared_data("annotations/efaar");
        let dbs = load_default(&dir).unwrap();
        assert_eq!(dbs.len(), 5);
        for db in &dbs {
            assert!(db.pairs.len() > 1000, "{} has {} pairs", db.name, db.pairs.len());
            assert!(db.pairs.iter().all(|(a, b)| a < b));
        }
    }
}
