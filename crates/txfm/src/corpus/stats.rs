//! `txfm corpus stats`: the paper's corpus table (dataset, mode, samples, genes) plus the union.

use super::summary::CorpusSummary;

/// One line per dataset and a final union line, aligned for a terminal (also valid Markdown).
pub fn stats_table(s: &CorpusSummary) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "dataset".into(), "mode".into(), "samples".into(), "genes".into(), "input (obs × vars)".into(), "gene IDs mapped".into(),
    ]];
    for d in &s.datasets {
        rows.push([
            d.name.clone(),
            d.mode.to_string(),
            d.n_samples.to_string(),
            d.n_genes_profiled.to_string(),
            format!("{} × {}", d.n_obs_input, d.n_vars_input),
            format!("{}/{}", d.mapping.n_mapped, d.mapping.n_input),
        ]);
    }
    let modes: std::collections::BTreeSet<String> = s.datasets.iter().map(|d| d.mode.to_string()).collect();
    rows.push([
        "union".into(),
        modes.into_iter().collect::<Vec<_>>().join("+"),
        s.n_samples.to_string(),
        s.n_vars.to_string(),
        String::new(),
        String::new(),
    ]);
    let widths: Vec<usize> = (0..6).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let line = |r: &[String; 6]| {
        let cells: Vec<String> = r.iter().zip(&widths).enumerate()
            .map(|(c, (v, &w))| if (2..=3).contains(&c) { format!("{v:>w$}") } else { format!("{v:<w$}") })
            .collect();
        format!("| {} |", cells.join(" | "))
    };
    let mut out = vec![line(&rows[0])];
    out.push(format!("|{}|", widths.iter().map(|&w| "-".repeat(w + 2)).collect::<Vec<_>>().join("|")));
    out.extend(rows[1..].iter().map(line));
    out.push(format!(
        "filters: genes in ≥ {} samples, samples with ≥ {} genes; {} shard(s)",
        s.filters.min_cells_per_gene, s.filters.min_genes_per_cell, s.shards.len()
    ));
    out.join("\n")
}
