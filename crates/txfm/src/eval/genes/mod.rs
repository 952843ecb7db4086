//! Gene-relationship recall from gene vectors (`txfm bench genes`): how well the similarity of two
//! genes' vectors recovers known relationships (the EFAAR pair databases).
//!
//! For one source of vectors (a checkpoint's encoder embeddings or decoder weights, or PCA
//! loadings), in pipeline order:
//! 1. [`vectors::standardise_pca`]: standardise each feature over the source's genes, PCA to
//!    `components` (the paper: 32 for the encoder, 256 for the decoder);
//! 2. genes named by the databases are matched to the source's genes: symbols go through the
//!    project's harmoniser to Ensembl IDs (aliases resolve), with an exact match on the source's
//!    IDs and symbols as a fallback (simulated or non-human vocabularies);
//! 3. the **null** is the cosine similarity of every pair of distinct covered genes (all
//!    annotated genes the source has, over every database loaded), never held whole
//!    ([`similarity`]);
//! 4. **recall** of a database: the share of its covered pairs whose similarity lies in either
//!    5% tail of the null, with the tie rule of EFAAR's `compute_recall` ([`crate::eval::recall`]);
//!    "combined" is the union of all databases' pairs;
//! 5. **random nulls**: for each seed, as many pairs of distinct covered genes drawn uniformly
//!    (with replacement) as the database has covered pairs, scored the same way. Their recall
//!    estimates chance, ≈ 10% at (0.05, 0.95); reported as mean ± sd (ddof 1) over seeds.

pub mod vectors;
pub mod similarity;
pub mod report;

use std::collections::{HashMap, HashSet};

use rand::{Rng, SeedableRng};
use serde::Serialize;
use tch::Tensor;

use self::similarity::{for_each_upper_row, percentile_ranks, select_ranks, unit_rows, Cutoffs, TailRanks};
pub use self::vectors::{standardise_pca, GeneVectors};
use crate::data::genes::{canonical_ensembl, harmonise, GeneIdKind, GeneTable};
use crate::eval::annotations::PairDatabase;
use crate::eval::recall::{self, DEFAULT_THRESHOLDS};
use crate::{Error, Result};

/// The paper's PCA sizes.
pub const ENCODER_COMPONENTS: usize = 32;
pub const DECODER_COMPONENTS: usize = 256;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GeneRecallConfig {
    /// PCA components kept (fewer if the vectors are narrower).
    pub components: usize,
    /// Null quantiles bounding the tails, EFAAR's (0.05, 0.95).
    pub thresholds: (f64, f64),
    /// Seeds of the random-pair nulls.
    pub seeds: Vec<u64>,
}

impl Default for GeneRecallConfig {
    fn default() -> Self {
        GeneRecallConfig { components: ENCODER_COMPONENTS, thresholds: DEFAULT_THRESHOLDS, seeds: vec![0, 1, 2] }
    }
}

/// Recall of one database (or `combined`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatabaseRecall {
    pub database: String,
    /// Unique pairs in the database, and those with both genes covered.
    pub n_pairs: usize,
    pub n_pairs_covered: usize,
    /// Distinct genes the database names, and those the source has.
    pub n_genes: usize,
    pub n_genes_covered: usize,
    pub recall: f64,
    /// Recall of each random-pair null, in seed order.
    pub null_recalls: Vec<f64>,
    pub null_mean: f64,
    pub null_sd: f64,
}

/// The evaluation of one source of gene vectors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceRecall {
    pub source: String,
    pub origin: String,
    pub n_genes: usize,
    pub dim: usize,
    pub n_components: usize,
    /// Covered annotated genes (m), and the m(m−1)/2 pairs of the null.
    pub n_genes_covered: usize,
    pub n_null_pairs: u64,
    pub thresholds: (f64, f64),
    /// The null's percentiles at `thresholds` (numpy's linear interpolation), for the reader.
    pub percentiles: (f64, f64),
    /// The similarity values the recall decision reduces to.
    pub cutoffs: Cutoffs,
    pub databases: Vec<DatabaseRecall>,
}

/// How the null's order statistics are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullMode {
    /// Streamed twice, bounded memory (the default).
    Streamed,
    /// Held whole and sorted: m(m−1)/2 f64 values; for tests and small vocabularies.
    Sorted,
}

/// Covered genes, their unit vectors, and every pair set to score in local gene indices `i < j`.
struct Prepared {
    /// Unit-norm PCA vectors of the covered genes. `[m, components]`
    unit: Tensor,
    n_components: usize,
    per_db: Vec<(DatabaseRecallCounts, Vec<(u32, u32)>)>,
}

struct DatabaseRecallCounts {
    name: String,
    n_pairs: usize,
    n_genes: usize,
    n_genes_covered: usize,
}

/// The index into `v`'s genes of each annotation name, `None` where it has none.
fn match_names(v: &GeneVectors, names: &[String]) -> Vec<Option<usize>> {
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    for (i, (id, sym)) in v.gene_ids.iter().zip(&v.symbols).enumerate() {
        for k in [canonical_ensembl(id).unwrap_or(id), id.as_str(), sym.as_str()] {
            by_key.entry(k).or_insert(i);
        }
    }
    let mapping = harmonise(names, GeneIdKind::Symbol, GeneTable::human());
    names
        .iter()
        .zip(&mapping.source_to_gene)
        .map(|(name, g)| {
            g.and_then(|g| by_key.get(mapping.ids[g as usize].as_str()).copied()).or_else(|| by_key.get(name.as_str()).copied())
        })
        .collect()
}

fn prepare(v: &GeneVectors, dbs: &[PairDatabase], cfg: &GeneRecallConfig) -> Result<Prepared> {
    if v.values.len() != v.n_genes() * v.dim || v.dim == 0 {
        return Err(Error::Invalid(format!("{}: {} values for {} genes × {}", v.source, v.values.len(), v.n_genes(), v.dim)));
    }
    let mut names: Vec<String> = dbs.iter().flat_map(|d| d.pairs.iter().flat_map(|(a, b)| [a.clone(), b.clone()])).collect();
    names.sort_unstable();
    names.dedup();
    let source_of: HashMap<&str, usize> =
        names.iter().zip(match_names(v, &names)).filter_map(|(n, s)| Some((n.as_str(), s?))).collect();
    let mut covered: Vec<usize> = source_of.values().copied().collect();
    covered.sort_unstable();
    covered.dedup();
    if covered.len() < 2 {
        return Err(Error::Invalid(format!(
            "{} ({}): {} annotated gene(s) found among its {} genes; nothing to evaluate",
            v.source, v.origin, covered.len(), v.n_genes()
        )));
    }
    let local: HashMap<usize, u32> = covered.iter().enumerate().map(|(k, &s)| (s, k as u32)).collect();

    let mut per_db = Vec::new();
    let mut union: HashSet<(u32, u32)> = HashSet::new();
    let (mut all_genes, mut all_covered) = (HashSet::new(), HashSet::new());
    for db in dbs {
        let (mut genes, mut genes_cov, mut seen) = (HashSet::new(), HashSet::new(), HashSet::new());
        let mut pairs = Vec::new();
        for (a, b) in &db.pairs {
            genes.insert(a.as_str());
            genes.insert(b.as_str());
            let (Some(&sa), Some(&sb)) = (source_of.get(a.as_str()), source_of.get(b.as_str())) else { continue };
            genes_cov.insert(sa);
            genes_cov.insert(sb);
            let (i, j) = (local[&sa], local[&sb]);
            let pair = (i.min(j), i.max(j));
            // Two names of one gene make no pair; two spellings of one pair count once.
            if i != j && seen.insert(pair) {
                pairs.push(pair);
            }
        }
        union.extend(pairs.iter().copied());
        all_genes.extend(genes.iter().copied());
        all_covered.extend(genes_cov.iter().copied());
        let counts = DatabaseRecallCounts { name: db.name.clone(), n_pairs: db.pairs.len(), n_genes: genes.len(), n_genes_covered: genes_cov.len() };
        per_db.push((counts, pairs));
    }
    let mut combined: Vec<(u32, u32)> = union.into_iter().collect();
    combined.sort_unstable();
    let n_pairs_union: HashSet<(&str, &str)> = dbs.iter().flat_map(|d| d.pairs.iter().map(|(a, b)| (a.as_str(), b.as_str()))).collect();
    per_db.push((
        DatabaseRecallCounts { name: "combined".into(), n_pairs: n_pairs_union.len(), n_genes: all_genes.len(), n_genes_covered: all_covered.len() },
        combined,
    ));

    let all_rows: Vec<usize> = (0..v.n_genes()).collect();
    let reduced = standardise_pca(&v.values, v.dim, &all_rows, cfg.components)?;
    let n_components = reduced.size()[1] as usize;
    let idx = Tensor::from_slice(&covered.iter().map(|&c| c as i64).collect::<Vec<_>>());
    Ok(Prepared { unit: unit_rows(&reduced.index_select(0, &idx)), n_components, per_db })
}

/// `n` pairs `i < j` of distinct genes among `m`, uniform, with replacement.
fn random_pairs(m: u32, n: usize, seed: u64) -> Vec<(u32, u32)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| loop {
            let (i, j) = (rng.random_range(0..m), rng.random_range(0..m));
            if i != j {
                break (i.min(j), i.max(j));
            }
        })
        .collect()
}

/// Recall of every database of `dbs` (and their union) from the gene vectors `v`.
pub fn gene_recall(v: &GeneVectors, dbs: &[PairDatabase], cfg: &GeneRecallConfig, mode: NullMode) -> Result<SourceRecall> {
    let prep = prepare(v, dbs, cfg)?;
    let m = prep.unit.size()[0] as u32;
    let n_null = m as u64 * (m as u64 - 1) / 2;

    // Every queried pair set: per database, the real pairs then one random set per seed.
    let mut sets: Vec<Vec<(u32, u32)>> = Vec::new();
    for (d, (_, pairs)) in prep.per_db.iter().enumerate() {
        sets.push(pairs.clone());
        for &s in &cfg.seeds {
            sets.push(random_pairs(m, pairs.len(), s.wrapping_mul(1_000_003).wrapping_add(d as u64)));
        }
    }
    let mut by_row: Vec<Vec<(u32, u32)>> = vec![Vec::new(); m as usize];
    let mut n_slots = 0u32;
    for set in &sets {
        for &(i, j) in set {
            by_row[i as usize].push((j, n_slots));
            n_slots += 1;
        }
    }
    let mut query = vec![f32::NAN; n_slots as usize];
    let mut fill = |i: usize, sims: &[f32]| {
        for &(j, slot) in &by_row[i] {
            query[slot as usize] = sims[j as usize - i - 1];
        }
    };

    let (low, high) = cfg.thresholds;
    let tails = TailRanks::new(n_null, low, high);
    let (pl, ph) = (percentile_ranks(n_null, low.min(high)), percentile_ranks(n_null, low.max(high)));
    let mut wanted = tails.ranks();
    wanted.extend([pl.0, pl.1, ph.0, ph.1]);
    let (values, sorted_null) = match mode {
        NullMode::Streamed => {
            let mut first = true;
            let values = select_ranks(
                &mut |f| {
                    for_each_upper_row(&prep.unit, &mut |i, sims| {
                        f(sims);
                        if first {
                            fill(i, sims);
                        }
                    })?;
                    first = false;
                    Ok(())
                },
                &wanted,
            )?;
            (values, None)
        }
        NullMode::Sorted => {
            let mut null = Vec::with_capacity(n_null as usize);
            for_each_upper_row(&prep.unit, &mut |i, sims| {
                null.extend(sims.iter().map(|&s| s as f64));
                fill(i, sims);
            })?;
            let null = recall::sort_null(null);
            (wanted.iter().map(|&r| null[r as usize] as f32).collect::<Vec<_>>(), Some(null))
        }
    };
    let t = tails.ranks().len();
    let cutoffs = Cutoffs::new(&tails, &values[..t]);
    let percentiles = (
        similarity::interpolate(values[t], values[t + 1], pl.2),
        similarity::interpolate(values[t + 2], values[t + 3], ph.2),
    );
    let decide = |q: f32| match &sorted_null {
        Some(null) => recall::is_recalled(null, q as f64, low, high),
        None => cutoffs.is_recalled(q),
    };

    let mut start = 0usize;
    let mut share = |len: usize| {
        let hits = query[start..start + len].iter().filter(|&&q| decide(q)).count();
        start += len;
        if len == 0 { f64::NAN } else { hits as f64 / len as f64 }
    };
    let mut databases = Vec::new();
    for (counts, pairs) in &prep.per_db {
        let recall = share(pairs.len());
        let null_recalls: Vec<f64> = cfg.seeds.iter().map(|_| share(pairs.len())).collect();
        let k = null_recalls.len() as f64;
        let null_mean = null_recalls.iter().sum::<f64>() / k;
        let null_sd = (null_recalls.iter().map(|r| (r - null_mean).powi(2)).sum::<f64>() / (k - 1.0)).sqrt();
        databases.push(DatabaseRecall {
            database: counts.name.clone(),
            n_pairs: counts.n_pairs,
            n_pairs_covered: pairs.len(),
            n_genes: counts.n_genes,
            n_genes_covered: counts.n_genes_covered,
            recall,
            null_recalls,
            null_mean,
            null_sd,
        });
    }
    Ok(SourceRecall {
        source: v.source.clone(),
        origin: v.origin.clone(),
        n_genes: v.n_genes(),
        dim: v.dim,
        n_components: prep.n_components,
        n_genes_covered: m as usize,
        n_null_pairs: n_null,
        thresholds: cfg.thresholds,
        percentiles,
        cutoffs,
        databases,
    })
}
