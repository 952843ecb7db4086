//! `txfm bench genes`: gene-relationship recall from a checkpoint's parameters and/or PCA loadings.

use std::path::PathBuf;

use anyhow::Context;
use txfm::eval::annotations::load_paths;
use txfm::eval::genes::{gene_recall, report, GeneRecallConfig, GeneVectors, NullMode, DECODER_COMPONENTS, ENCODER_COMPONENTS};

/// Recall of known gene-gene relationships (EFAAR pair databases) from gene vectors: a model's
/// encoder gene embeddings and decoder per-gene weights, and PCA loadings. Each is standardised,
/// reduced by PCA, and its known pairs' cosine similarities are ranked against all pairs of
/// annotated genes (5th/95th percentiles), beside random-pair nulls.
#[derive(clap::Args)]
pub struct Args {
    /// A run folder (its latest checkpoint) or a checkpoint folder.
    #[arg(long, required_unless_present_any = ["loadings", "scvi"])]
    model: Option<PathBuf>,
    /// An scVI model folder (`txfm baseline scvi`'s <out>.scvi/): its first encoder layer's
    /// weights and its decoder's per-gene weights, as the paper reads scVI's.
    #[arg(long)]
    scvi: Option<PathBuf>,
    /// A PCA loadings table (`txfm baseline pca`'s <out>.pcs.tsv).
    #[arg(long)]
    loadings: Option<PathBuf>,
    /// Pair databases: a folder (its CORUM, HuMAP, Reactome, SIGNOR and StringDB .txt files) or
    /// single entity1,entity2 CSV files; repeatable.
    #[arg(long, required = true)]
    annotations: Vec<PathBuf>,
    /// PCA components for the encoder embeddings.
    #[arg(long, default_value_t = ENCODER_COMPONENTS)]
    encoder_components: usize,
    /// PCA components for the decoder weights.
    #[arg(long, default_value_t = DECODER_COMPONENTS)]
    decoder_components: usize,
    /// PCA components for the loadings (default: all of them).
    #[arg(long)]
    loadings_components: Option<usize>,
    /// Seeds of the random-pair nulls.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    seeds: Vec<u64>,
    /// Output folder: gene_recall.json and gene_recall.md.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let dbs = load_paths(&a.annotations)?;
    let mut sources: Vec<(GeneVectors, usize)> = Vec::new();
    if let Some(m) = &a.model {
        let (enc, dec) = GeneVectors::from_checkpoint(m).with_context(|| format!("loading gene vectors of {}", m.display()))?;
        sources.push((enc, a.encoder_components));
        sources.push((dec, a.decoder_components));
    }
    if let Some(m) = &a.scvi {
        let (enc, dec) = GeneVectors::from_scvi(m).with_context(|| format!("loading gene vectors of {}", m.display()))?;
        sources.push((enc, a.encoder_components));
        sources.push((dec, a.decoder_components));
    }
    if let Some(l) = &a.loadings {
        let v = GeneVectors::from_loadings(l)?;
        let k = a.loadings_components.unwrap_or(v.dim);
        sources.push((v, k));
    }
    let mut results = Vec::new();
    for (v, components) in &sources {
        let cfg = GeneRecallConfig { components: *components, seeds: a.seeds.clone(), ..GeneRecallConfig::default() };
        let r = gene_recall(v, &dbs, &cfg, NullMode::Streamed).with_context(|| format!("{} of {}", v.source, v.origin))?;
        eprintln!("{}: {} of {} genes annotated, {} null pairs", r.source, r.n_genes_covered, r.n_genes, r.n_null_pairs);
        results.push(r);
    }
    let (json, md) = report::write(&a.out, &results)?;
    print!("{}", report::markdown(&results));
    println!("\nreport: {}\njson: {}", md.display(), json.display());
    Ok(())
}
