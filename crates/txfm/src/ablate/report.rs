//! The study's outputs: `study.md` (the tables and how they were made), `study.json` (the tables
//! with every p-value, and each cell's result), and `study.html`, one self-contained page with
//! the tables and each group's plot inlined as a PNG (`plots/<group>.png` beside it).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::cell::CellResult;
use super::study::{Budget, Study};
use super::table::{format_cell, StudyTable};
use crate::atomic::{write_atomic, write_atomic_with};
use crate::plot::{BarChart, BarSeries};
use crate::{Error, Result};

#[derive(Serialize)]
struct StudyJson<'a> {
    table: &'a StudyTable,
    budget: Budget,
    seconds: f64,
    cells: Vec<&'a CellResult>,
}

/// Writes `study.md`, `study.json`, `plots/*.png` and `study.html` into `out`.
pub fn write(out: &Path, study: &Study, table: &StudyTable, results: &[Option<CellResult>], seconds: f64) -> Result<()> {
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots).map_err(|e| Error::io(&plots, e))?;
    let mut pngs = Vec::new();
    for g in &table.groups {
        let mut chart = BarChart::new(&format!("{}: mean over seeds, bars sd", g.name), "percent", table.columns.clone());
        for r in &g.rows {
            chart.series.push(BarSeries {
                name: if r.is_default { format!("{} (default)", r.name) } else { r.name.clone() },
                values: r.cells.iter().map(|c| c.value.unwrap_or(f64::NAN)).collect(),
                errors: Some(r.cells.iter().map(|c| c.sd.unwrap_or(f64::NAN)).collect()),
            });
        }
        let png = chart.render().to_png();
        let file = format!("{}.png", file_stem(&g.name));
        write_atomic_with(&plots.join(&file), |f| std::io::Write::write_all(f, &png))?;
        pngs.push((file, png));
    }
    let md = markdown(study, table, seconds);
    write_atomic(&out.join("study.md"), &md)?;
    let json = StudyJson { table, budget: study.budget, seconds, cells: results.iter().flatten().collect() };
    write_atomic(&out.join("study.json"), &serde_json::to_string_pretty(&json).map_err(|e| Error::format(out.join("study.json"), e.to_string()))?)?;
    write_atomic(&out.join("study.html"), &html(study, table, seconds, &pngs))?;
    Ok(())
}

fn file_stem(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

fn budget_text(b: Budget) -> String {
    match b {
        Budget::Steps(n) => format!("{n} steps"),
        Budget::Minutes(m) => format!("{m} minutes of training (steps timed per config)"),
    }
}

fn setup_lines(study: &Study, table: &StudyTable, seconds: f64) -> Vec<String> {
    let b = &study.base.config;
    vec![
        format!("corpus `{}`; screens: {}", study.base.corpus.display(), study.screens.iter().map(|s| format!("`{}` ({})", s.name, s.h5ad.display())).collect::<Vec<_>>().join(", ")),
        format!(
            "default: d {} × {} blocks, K {}, batch {}, lr {}; budget {}; seeds {:?}",
            b.model.d_model,
            b.model.n_blocks,
            b.model.n_visible,
            b.loader.batch_size,
            b.optimizer.lr,
            budget_text(study.budget),
            study.seeds
        ),
        format!(
            "benchmark: {} settings, {} seed(s), inv {}; post-processing read: {}; read-out: {}",
            study.bench.mode,
            study.bench.seeds,
            if study.bench.inv { "on" } else { "off" },
            study.bench.postprocess,
            study.bench.readout
        ),
        format!("{} of {} cells finished; this run took {:.1} min", table.cells_done, table.cells_total, seconds / 60.0),
    ]
}

const METHOD: &str = "perts: the consistent perturbations of p.cst (the benchmark's leave-one-out test), pooled over seeds, in percent; \
avg: the benchmark's average score, mean ± sd over seeds; enc, dec: gene-relationship recall (combined databases, \
percent) from the encoder's gene embeddings and the decoder's gene weights. Bold: the best of the group's column. \
⋆: differs from the default row at p_adj < 0.05 — perts by a pooled two-proportion z-test, enc and dec by a \
two-tailed Student t-test on the recall above each of the random-pair nulls (every seed), avg by the same t-test over \
seeds; Benjamini–Hochberg across all ablation pairs, per metric.";

fn markdown(study: &Study, table: &StudyTable, seconds: f64) -> String {
    let mut s = format!("# Ablation study: {}\n\n", study.name);
    for l in setup_lines(study, table, seconds) {
        let _ = writeln!(s, "- {l}");
    }
    let _ = write!(s, "\n{METHOD}\n\n{}", table.markdown());
    s.push_str("## Rows\n\n| group | row | diff | seeds done | val loss | PR | train s |\n|---|---|---|---|---:|---:|---:|\n");
    for g in &table.groups {
        for r in &g.rows {
            let f = |v: Option<f64>, d: usize| v.map_or("—".into(), |v| format!("{v:.d$}"));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:?} | {} | {} | {} |",
                g.name,
                r.name,
                if r.is_default { "(default)".into() } else { format!("`{}`", r.diff) },
                r.seeds_done,
                f(r.val_loss, 3),
                f(r.participation_ratio, 1),
                f(r.train_seconds, 0)
            );
        }
    }
    s.push_str("\nPlots: `plots/<group>.png`; every p-value and cell result: `study.json`.\n");
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn html(study: &Study, table: &StudyTable, seconds: f64, pngs: &[(String, Vec<u8>)]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Ablation study: {title}</title>\n<style>\
         body{{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;color:#222}}\
         table{{border-collapse:collapse;margin:0.5em 0 1em}}th,td{{border:1px solid #ccc;padding:0.3em 0.7em}}\
         td.num{{text-align:right;font-variant-numeric:tabular-nums}}tr.default{{background:#f3f6fa}}\
         .sig{{color:#b00}}.note{{color:#555;font-size:0.92em}}img{{max-width:100%}}code{{font-size:0.92em}}\
         </style></head><body>\n<h1>Ablation study: {title}</h1>\n<ul>",
        title = escape(&study.name)
    );
    for l in setup_lines(study, table, seconds) {
        let _ = write!(h, "<li>{}</li>", escape(&l).replace('`', ""));
    }
    let _ = write!(h, "</ul>\n<p class=\"note\">{}</p>\n", escape(METHOD));
    for (g, (file, png)) in table.groups.iter().zip(pngs) {
        let _ = write!(h, "<h2>{}</h2>\n<table><tr><th>row</th>", escape(&g.name));
        for c in &table.columns {
            let _ = write!(h, "<th>{}</th>", escape(c));
        }
        h.push_str("<th>diff</th></tr>\n");
        for r in &g.rows {
            let _ = write!(h, "<tr{}><td>{}</td>", if r.is_default { " class=\"default\"" } else { "" }, escape(&if r.is_default { format!("{} (default)", r.name) } else { r.name.clone() }));
            for c in &r.cells {
                let text = escape(&format_cell(c));
                let text = if c.significant() { format!("<span class=\"sig\">{text}</span>") } else { text };
                let title = c.p_adj.map_or(String::new(), |q| format!(" title=\"p = {:.2e}, p_adj = {q:.2e}\"", c.p.unwrap_or(f64::NAN)));
                let _ = write!(h, "<td class=\"num\"{title}>{}</td>", if c.best { format!("<b>{text}</b>") } else { text });
            }
            let _ = writeln!(h, "<td><code>{}</code></td></tr>", escape(&r.diff));
        }
        let _ = write!(h, "</table>\n<img alt=\"{}\" src=\"data:image/png;base64,{}\">\n", escape(file), base64(png));
    }
    if !table.references.is_empty() {
        h.push_str("<h2>Baselines on the same screens</h2>\n<table><tr><th>screen</th><th>embedding</th><th>post-processing</th><th>perts</th><th>avg</th></tr>\n");
        for r in &table.references {
            let f = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.1}"));
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(&r.screen),
                escape(&r.embedding),
                escape(&r.postprocess),
                f(r.perts),
                f(r.average)
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// Standard base64 (RFC 4648, padded), for the inlined PNGs.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }
}
