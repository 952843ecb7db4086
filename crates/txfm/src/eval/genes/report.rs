//! The gene-recall report: `gene_recall.json` (every number) and `gene_recall.md` (one table).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::SourceRecall;
use crate::atomic::write_atomic;
use crate::Result;

/// A Markdown table: one row per source and database, recall beside its random null.
pub fn markdown(results: &[SourceRecall]) -> String {
    let mut out = String::from("# Gene-relationship recall\n\n");
    if let Some(r) = results.first() {
        let (lo, hi) = r.thresholds;
        let _ = writeln!(
            out,
            "Recall: share of known pairs whose cosine similarity lies below the {:.0}th or above the {:.0}th \
             percentile of all pairs of covered genes. Random null: as many random gene pairs, mean ± sd over seeds.\n",
            100.0 * lo.min(hi),
            100.0 * lo.max(hi)
        );
    }
    out.push_str("| source | components | genes covered | database | pairs covered / total | recall | random null |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for r in results {
        for d in &r.databases {
            let _ = writeln!(
                out,
                "| {} | {} of {} | {} | {} | {} / {} | **{:.1}%** | {:.1}% ± {:.1}% |",
                r.source,
                r.n_components,
                r.dim,
                r.n_genes_covered,
                d.database,
                d.n_pairs_covered,
                d.n_pairs,
                100.0 * d.recall,
                100.0 * d.null_mean,
                100.0 * d.null_sd
            );
        }
    }
    out.push('\n');
    for r in results {
        let _ = writeln!(
            out,
            "- {}: {} ({} genes × {}); null of {} pairs, percentiles {:.4} / {:.4}",
            r.source, r.origin, r.n_genes, r.dim, r.n_null_pairs, r.percentiles.0, r.percentiles.1
        );
    }
    out
}

/// Writes `dir/gene_recall.json` and `dir/gene_recall.md`; returns their paths.
pub fn write(dir: &Path, results: &[SourceRecall]) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
    let (json, md) = (dir.join("gene_recall.json"), dir.join("gene_recall.md"));
    write_atomic(&json, &serde_json::to_string_pretty(results).expect("results serialise"))?;
    write_atomic(&md, &markdown(results))?;
    Ok((json, md))
}
