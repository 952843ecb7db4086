//! Per-gene vectors to evaluate, and the paper's preparation of them: standardise each feature
//! over the genes, then PCA to a fixed number of components.
//!
//! Sources: a checkpoint's encoder gene-embedding table `[G, d − 1]` and decoder per-gene output
//! weights `[G, d_dec]`, and the loadings `[G, n_comps]` of a PCA baseline.

use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::baseline::Loadings;
use crate::model::ModelBundle;
use crate::Result;

/// One matrix of gene vectors. `values: [n_genes, dim]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneVectors {
    /// What the vectors are (`encoder`, `decoder`, `pca_loadings`).
    pub source: String,
    /// Where they came from (checkpoint or loadings file).
    pub origin: String,
    /// Gene ids (Ensembl for a corpus-trained model) and display symbols. `[n_genes]`
    pub gene_ids: Vec<String>,
    pub symbols: Vec<String>,
    pub values: Vec<f32>,
    pub dim: usize,
}

impl GeneVectors {
    pub fn n_genes(&self) -> usize {
        self.gene_ids.len()
    }

    /// The encoder's gene embeddings and the decoder's per-gene weights of the model `path`
    /// names ([`ModelBundle::open`]: a run folder's latest checkpoint, a checkpoint or a bundle).
    pub fn from_checkpoint(path: &Path) -> Result<(GeneVectors, GeneVectors)> {
        Self::from_bundle(&ModelBundle::open(path)?)
    }

    /// [`Self::from_checkpoint`] of an opened bundle.
    pub fn from_bundle(ck: &ModelBundle) -> Result<(GeneVectors, GeneVectors)> {
        let (_vs, model) = ck.load_weights(Device::Cpu)?;
        let origin = ck.dir.display().to_string();
        let take = |source: &str, t: Tensor| Self::from_tensor(source, &origin, &ck.var_names, &ck.var_symbols, t);
        Ok((take("encoder", model.gene_embeddings())?, take("decoder", model.decoder_gene_weights())?))
    }

    /// An scVI model folder's gene vectors, as the paper reads scVI's parameters: the first
    /// encoder layer's weights (`scvi_encoder`, `[G, n_hidden]`) and the decoder's per-gene
    /// weights (`scvi_decoder`, `[G, n_hidden]`).
    pub fn from_scvi(dir: &Path) -> Result<(GeneVectors, GeneVectors)> {
        let model = crate::baseline::scvi::Scvi::load(dir, Device::Cpu)?;
        let (enc, dec) = model.gene_weights()?;
        let origin = dir.display().to_string();
        let take = |source: &str, t: Tensor| Self::from_tensor(source, &origin, &model.var_names, &model.var_symbols, t);
        Ok((take("scvi_encoder", enc)?, take("scvi_decoder", dec)?))
    }

    /// Gene vectors from a `[G, dim]` tensor of any float kind.
    fn from_tensor(source: &str, origin: &str, gene_ids: &[String], symbols: &[String], t: Tensor) -> Result<GeneVectors> {
        let t = t.to_kind(Kind::Float).contiguous();
        Ok(GeneVectors {
            source: source.into(),
            origin: origin.into(),
            gene_ids: gene_ids.to_vec(),
            symbols: symbols.to_vec(),
            dim: t.size()[1] as usize,
            values: Vec::try_from(t.view(-1))?,
        })
    }

    /// The loadings of a PCA baseline (`txfm baseline pca`'s `<out>.pcs.tsv`).
    pub fn from_loadings(path: &Path) -> Result<GeneVectors> {
        let l = Loadings::read(path)?;
        Ok(GeneVectors {
            source: "pca_loadings".into(),
            origin: path.display().to_string(),
            gene_ids: l.gene_ids,
            symbols: l.symbols,
            values: l.values,
            dim: l.n_comps,
        })
    }
}

/// Rows `rows` of `values: [n, dim]`, each feature standardised over those rows (mean 0, sd 1 with
/// ddof 0, as scikit-learn's `StandardScaler`; constant features become 0), then projected on
/// their top `k` principal axes. Returns `[rows.len(), min(k, dim)]` as an f32 tensor.
pub fn standardise_pca(values: &[f32], dim: usize, rows: &[usize], k: usize) -> Result<Tensor> {
    let n = rows.len();
    let mut x = Vec::with_capacity(n * dim);
    for &r in rows {
        x.extend(values[r * dim..(r + 1) * dim].iter().map(|&v| v as f64));
    }
    let x = Tensor::from_slice(&x).view([n as i64, dim as i64]);
    let mean = x.mean_dim(0, true, Kind::Double);
    let sd = x.std_correction(0, 0, true);
    // A constant feature carries nothing; dividing by 1 leaves it at 0 after centring.
    let sd = sd.where_self(&sd.gt(0.0), &Tensor::ones_like(&sd));
    let z = (x - mean) / sd;
    let k = k.min(dim) as i64;
    let cov = z.tr().matmul(&z);
    let (_, evecs) = cov.f_linalg_eigh("L")?;
    // Ascending eigenvalues: the top k axes are the last k columns.
    let axes = evecs.narrow(1, dim as i64 - k, k).flip([1]);
    Ok(z.matmul(&axes).to_kind(Kind::Float))
}
