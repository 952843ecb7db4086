//! The scVI networks (Lopez et al. 2018) as scvi-tools 1.4.2 builds them (`VAE`, `Encoder`,
//! `DecoderSCVI`, `FCLayers`):
//! - encoder: log1p(counts) `[n, G]` → `n_layers` × (Linear → BatchNorm(momentum 0.01, eps
//!   1e-3) → ReLU → Dropout) → `q_m`, `q_v = exp(·) + 1e-4` `[n, n_latent]`; z = q_m + √q_v·ε;
//! - decoder: z, with the one-hot batch concatenated to every layer's input, → `n_layers` ×
//!   (Linear → BatchNorm → ReLU) → per-gene proportions softmax(Linear) `[n, G]`, scaled by the
//!   observed library size into the mean; dropout logits Linear; one dispersion θ = exp(r) per
//!   gene;
//! - loss: −log p(x | z) summed over genes plus `kl_weight` · KL(q(z|x) ‖ N(0, I)) summed over
//!   latent dimensions, averaged over the batch.

use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

use super::config::{Likelihood, ScviConfig};
use super::likelihood::{log_nb, log_poisson, log_zinb};

/// scvi-tools' `var_eps`: keeps the encoder's variance away from 0.
const VAR_EPS: f64 = 1e-4;

/// PyTorch's `nn.Linear` initialisation, which scvi-tools keeps: weights and biases uniform in
/// ±1/√fan_in (`kaiming_uniform(a = √5)`). tch's default draws weights √6 times wider.
fn torch_linear(p: nn::Path, d_in: usize, d_out: usize) -> nn::Linear {
    let bound = 1.0 / (d_in as f64).sqrt();
    let init = nn::Init::Uniform { lo: -bound, up: bound };
    nn::linear(p, d_in as i64, d_out as i64, nn::LinearConfig { ws_init: init, bs_init: Some(init), bias: true })
}

/// `FCLayers`: Linear → BatchNorm → ReLU → Dropout, `n_cat` one-hot covariates concatenated to the
/// input of every layer.
#[derive(Debug)]
struct FcLayers {
    layers: Vec<(nn::Linear, nn::BatchNorm)>,
    dropout: f64,
    n_cat: usize,
}

impl FcLayers {
    fn new(p: nn::Path, n_in: usize, n_out: usize, n_layers: usize, n_cat: usize, dropout: f64) -> Self {
        // PyTorch starts batch norm's scale at 1 (tch's default draws it from U(0, 1)).
        let bn = nn::BatchNormConfig { momentum: 0.01, eps: 1e-3, ws_init: nn::Init::Const(1.0), bs_init: nn::Init::Const(0.0), ..Default::default() };
        let layers = (0..n_layers)
            .map(|i| {
                let d_in = if i == 0 { n_in } else { n_out };
                let q = &p / i;
                (torch_linear(&q / "linear", d_in + n_cat, n_out), nn::batch_norm1d(&q / "bn", n_out as i64, bn))
            })
            .collect();
        FcLayers { layers, dropout, n_cat }
    }

    /// `x: [n, n_in]`, `cat: [n, n_cat]` → `[n, n_out]`.
    fn forward(&self, x: &Tensor, cat: Option<&Tensor>, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for (linear, bn) in &self.layers {
            if let (Some(c), true) = (cat, self.n_cat > 0) {
                h = Tensor::cat(&[&h, c], 1);
            }
            h = bn.forward_t(&linear.forward(&h), train).relu();
            if self.dropout > 0.0 {
                h = h.dropout(self.dropout, train);
            }
        }
        h
    }
}

/// The whole model.
#[derive(Debug)]
pub struct ScviModule {
    encoder: FcLayers,
    mean_encoder: nn::Linear,
    var_encoder: nn::Linear,
    decoder: FcLayers,
    px_scale: nn::Linear,
    px_dropout: nn::Linear,
    /// Log inverse dispersion per gene. `[G]`
    px_r: Tensor,
    likelihood: Likelihood,
    pub n_genes: usize,
    pub n_batch: usize,
}

/// One batch's loss terms, per cell.
pub struct Terms {
    /// `mean(reconstruction + kl_weight · kl)`: what the optimiser minimises.
    pub loss: Tensor,
    /// −log p(x | z) summed over genes. `[n]`
    pub reconstruction: Tensor,
    /// KL(q(z | x) ‖ N(0, I)). `[n]`
    pub kl: Tensor,
}

/// Path of the first encoder layer's weights `[n_hidden, G]` and of the decoder's per-gene
/// weights `[G, n_hidden]` in the `VarStore`: the gene vectors `bench genes` reads.
pub const ENCODER_GENE_WEIGHTS: &str = "encoder.0.linear.weight";
pub const DECODER_GENE_WEIGHTS: &str = "px_scale.weight";

impl ScviModule {
    pub fn new(root: &nn::Path, cfg: &ScviConfig, n_genes: usize, n_batch: usize) -> Self {
        // One batch is no covariate at all, as scvi-tools' `n_batch = 1` (a constant column).
        let n_cat = if n_batch > 1 { n_batch } else { 0 };
        ScviModule {
            encoder: FcLayers::new(root / "encoder", n_genes, cfg.n_hidden, cfg.n_layers, 0, cfg.dropout_rate),
            mean_encoder: torch_linear(root / "mean_encoder", cfg.n_hidden, cfg.n_latent),
            var_encoder: torch_linear(root / "var_encoder", cfg.n_hidden, cfg.n_latent),
            decoder: FcLayers::new(root / "decoder", cfg.n_latent, cfg.n_hidden, cfg.n_layers, n_cat, 0.0),
            px_scale: torch_linear(root / "px_scale", cfg.n_hidden, n_genes),
            px_dropout: torch_linear(root / "px_dropout", cfg.n_hidden, n_genes),
            px_r: root.var("px_r", &[n_genes as i64], nn::Init::Randn { mean: 0.0, stdev: 1.0 }),
            likelihood: cfg.likelihood,
            n_genes,
            n_batch,
        }
    }

    /// The posterior's mean and variance. `counts: [n, G]` → `([n, n_latent], [n, n_latent])`.
    pub fn encode(&self, counts: &Tensor, train: bool) -> (Tensor, Tensor) {
        let h = self.encoder.forward(&counts.log1p(), None, train);
        (self.mean_encoder.forward(&h), self.var_encoder.forward(&h).exp() + VAR_EPS)
    }

    /// The loss terms of a batch: `counts: [n, G]` raw counts, `batch: [n, n_batch]` one-hot (or
    /// `None` with a single batch); z is sampled (as scvi-tools does in validation too).
    pub fn terms(&self, counts: &Tensor, batch: Option<&Tensor>, kl_weight: f64, train: bool) -> Terms {
        let (qm, qv) = self.encode(counts, train);
        let z = &qm + qv.sqrt() * qm.randn_like();
        let h = self.decoder.forward(&z, batch, train);
        let scale = self.px_scale.forward(&h).softmax(-1, Kind::Float);
        // The observed library size (scvi-tools' use_observed_lib_size); a cell without counts
        // over the genes used is taken as library 1 rather than 0 (log 0).
        let library = counts.sum_dim_intlist(1, true, Kind::Float).clamp_min(1.0);
        let rate = scale * library;
        let log_p = match self.likelihood {
            Likelihood::Zinb => log_zinb(counts, &rate, &self.px_r.exp(), &self.px_dropout.forward(&h)),
            Likelihood::Nb => log_nb(counts, &rate, &self.px_r.exp()),
            Likelihood::Poisson => log_poisson(counts, &rate),
        };
        let reconstruction = -log_p.sum_dim_intlist(1, false, Kind::Float);
        let kl = ((&qv + qm.square() - 1.0 - qv.log()) * 0.5).sum_dim_intlist(1, false, Kind::Float);
        let loss = (&reconstruction + &kl * kl_weight).mean(Kind::Float);
        Terms { loss, reconstruction, kl }
    }
}
