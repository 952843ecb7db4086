//! The model configuration: every architectural axis the paper ablates is a field here, so an
//! ablation is a config diff. Presets `tiny` (CPU tests), `s`, `b`, `l` (the paper's TxFM-S/B/L).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Architecture and objective of a TxFM model. The gene vocabulary size `G` is not part of it: it
/// comes from the corpus the model is trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Token width `d`: a visible gene's token is its `(d - 1)`-dim embedding plus its value
    /// (`value_encoding = "concat"`), or its `d`-dim embedding plus an encoding of its value.
    pub d_model: usize,
    /// How a visible gene's value enters its token.
    #[serde(default)]
    pub value_encoding: ValueEncoding,
    /// Standard deviation of the gene embeddings' N(0, σ²) initialisation. The paper does not give
    /// it. The presets take 1 (PyTorch's `nn.Embedding` default): at ViT's 0.02 (the value of
    /// configs written before this field) the value coordinate dominates each token's
    /// LayerNorm, genes start almost indistinguishable, and the CPU recipe did not learn at all
    /// (docs/experiments.md).
    #[serde(default = "default_gene_embedding_std")]
    pub gene_embedding_std: f64,
    /// Number of pre-norm transformer blocks in the encoder.
    pub n_blocks: usize,
    /// Attention heads per block; must divide `d_model`.
    pub n_heads: usize,
    /// Hidden width of each block's MLP as a multiple of `d_model`.
    pub mlp_ratio: usize,
    /// `K`: visible genes drawn per sample (the encoder's sequence length, CLS excluded).
    pub n_visible: usize,
    /// Exponent `τ` of the visible-gene sampling weights `m_i^τ` (`m_i`: cells expressing gene
    /// `i`); 0 draws uniformly from the profiled genes.
    pub sampling_tau: f64,
    /// Stochastic-depth rate of the last block; earlier blocks ramp linearly from 0 (as in timm).
    pub drop_path: f64,
    /// Initial value of the per-channel LayerScale factors on both residual branches.
    pub layer_scale_init: f64,
    pub decoder: DecoderConfig,
    /// Maps the decoder's logits to predicted preprocessed values.
    pub activation: CountActivation,
    /// `L`, the library size that counts are normalised to; bounds the predicted values at
    /// `log(L + 1)` for the bounded activations.
    pub library_size: f64,
    pub loss: LossKind,
    /// Where the decoder's per-gene output bias starts in a fresh run.
    #[serde(default)]
    pub decoder_bias_init: DecoderBiasInit,
    /// Weight of a variance term on the CLS added to the training loss (VICReg's: the mean over
    /// the CLS's dimensions of `max(0, 1 − std over the batch)`), which pushes every dimension to
    /// vary across cells from the first step instead of waiting for the reconstruction to break the
    /// symmetry (docs/experiments.md § 7's plateau). 0 (the default and the paper's): off. An
    /// experiment's knob; the validation loss never includes it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cls_variance_weight: f64,
    /// Exponent `p` of per-gene weights in the training loss: gene `g` counts with weight
    /// `μ_g^(−p)`, `μ_g` its mean shifted count `exp(c_g)` on the training data (`c_g` the
    /// per-gene baseline constant). The Poisson loss's curvature in the predicted log value is
    /// the mean count, so unweighted (0, the paper's and the default) its gradient is ruled by the
    /// most expressed genes; 1 gives every gene's log value the same weight, as a PCA of log values
    /// does; ½ lies between. The loss stays a weighted mean over profiled entries; reported and
    /// validation losses are always unweighted. An experiment's knob (docs/experiments.md § 12).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub loss_gene_weight_power: f64,
    /// Standard deviation of the learned CLS token's N(0, σ²) initialisation; 0 starts it at
    /// exactly zero. ViT's (and MAE's) 0.02 is the default. Every residual branch adds only
    /// `LayerScale · W_o·W_v·(…)` ≈ 10⁻³ per coordinate to the CLS position at the start, so beside
    /// a 0.02 token the CLS output first varies across cells by about one per cent; from zero, the
    /// final LayerNorm reads the (cell-dependent) attention pool alone. An experiment's knob
    /// (docs/experiments.md § 20).
    #[serde(default = "default_cls_init_std", skip_serializing_if = "is_default_cls_init_std")]
    pub cls_init_std: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// ViT's initialisation scale, which the CLS token has always had; configs without the field
/// (every config before it) mean it, and it is not written out, so their files and ablation cache
/// keys are unchanged.
fn default_cls_init_std() -> f64 {
    0.02
}

fn is_default_cls_init_std(v: &f64) -> bool {
    *v == default_cls_init_std()
}

/// The starting point of the decoder's output bias `b` (`[G]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecoderBiasInit {
    /// `φ⁻¹` of each gene's loss-optimal constant on the training data (the validation baseline):
    /// the model starts as the per-gene baseline and learns what a sample adds to it. With zero
    /// biases every gene starts at `φ(0) = 0`, and Adam moves a bias about `lr` per step, so
    /// reaching a gene's level (a logit of 5–12 for the rectified tanh) alone takes thousands of
    /// steps at the paper's learning rate.
    #[default]
    Baseline,
    /// 0, the ViT/timm convention for linear layers.
    Zero,
}

fn default_gene_embedding_std() -> f64 {
    0.02
}

/// How the value `x_i` of a visible gene joins its learned embedding `E_i` in the token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueEncoding {
    /// `[E_i ; x_i]`: a `(d - 1)`-dim embedding and the scalar value, the paper's token.
    #[default]
    Concat,
    /// `E_i + W₂·GELU(W₁·x_i + b₁) + b₂`: a `d`-dim embedding plus a learned `d`-dim encoding of
    /// the value (hidden width `d`), as scGPT encodes continuous values: every coordinate of the
    /// token can carry the value, and its LayerNorm cannot wash it out.
    Mlp,
    /// `E_i + x_i·V_i`: a `d`-dim embedding plus the value times a second learned `d`-dim vector
    /// of the same gene. Under the other two encodings the value moves every gene's token along
    /// the same direction(s), so an attention head's weighted sum over the tokens carries one
    /// value summary per value direction; here each gene's value has its own direction, and a
    /// head that attends evenly already reads a learned linear map of the visible expression
    /// (what a PCA projection is). Costs a second `[G, d]` table. An experiment's option: on the
    /// CPU recipe it reconstructed as well and lost most of the perturbation signal
    /// (docs/experiments.md § 15).
    PerGene,
}

/// The decoder from the CLS embedding to one value per vocabulary gene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
/// In TOML: `decoder = "linear"`, or a `[decoder.residual_mlp]` table with `n_layers` and
/// `d_hidden` (externally tagged: serde cannot reject unknown fields of internally tagged enums).
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DecoderConfig {
    /// CLS `[n, d]` straight into the per-gene output layer `[G, d]`.
    Linear,
    /// Projection to `d_hidden`, `n_layers` pre-norm residual MLP layers, LayerNorm, then the
    /// per-gene output layer `[G, d_hidden]`.
    ResidualMlp { n_layers: usize, d_hidden: usize },
}

impl DecoderConfig {
    /// Width of the per-gene output weights (the "decoder gene weights").
    pub fn width(&self, d_model: usize) -> usize {
        match *self {
            DecoderConfig::Linear => d_model,
            DecoderConfig::ResidualMlp { d_hidden, .. } => d_hidden,
        }
    }
}

/// Output activation `φ` turning decoder logits `z` into predicted preprocessed values `x̂`
/// (`log1p` of library-normalised counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountActivation {
    /// `φ(z) = log(L + 1) · ReLU(tanh(z / (4e)))`: bounded by the largest value a normalised
    /// count can take, exactly 0 for `z ≤ 0` (sparsity).
    RectifiedTanh,
    /// `φ(z) = max(z, 0)`.
    Relu,
    /// `φ(z) = clamp(z, 0, log(L + 1))`.
    ClampedRelu,
    /// `p = softmax(z)` over the sample's profiled genes, `φ = log1p(L · p)`: the decoder predicts
    /// expression proportions, which under library normalisation to `L` are exactly the
    /// normalised counts divided by `L`.
    Softmax,
}

/// Reconstruction loss between `x̂` and the target `x`, averaged over profiled genes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// `exp(x̂) − x̂ · exp(x)`, exactly as written in the paper: the Poisson NLL (up to terms
    /// constant in `x̂`) of the shifted count `exp(x) = c + 1` under rate `exp(x̂)`.
    Poisson,
    /// `(x̂ − x)²`.
    Mse,
    /// Huber with `β = 1`: `½(x̂ − x)²` if `|x̂ − x| < 1`, else `|x̂ − x| − ½`.
    SmoothL1,
    /// Full negative-binomial NLL of `y = exp(x)` with mean `μ = exp(x̂)` and a learned per-gene
    /// inverse dispersion `θ`; the same shifted-count scale as `Poisson`, to which it tends as
    /// `θ → ∞`.
    NegativeBinomial,
}

impl ModelConfig {
    /// For CPU tests: small enough that a forward/backward pass takes milliseconds.
    pub fn tiny() -> Self {
        ModelConfig {
            d_model: 64,
            value_encoding: ValueEncoding::Concat,
            gene_embedding_std: 1.0,
            n_blocks: 2,
            n_heads: 4,
            mlp_ratio: 4,
            n_visible: 128,
            sampling_tau: 0.0,
            drop_path: 0.1,
            layer_scale_init: 0.1,
            decoder: DecoderConfig::ResidualMlp { n_layers: 1, d_hidden: 64 },
            activation: CountActivation::RectifiedTanh,
            library_size: 1e5,
            loss: LossKind::Poisson,
            decoder_bias_init: DecoderBiasInit::Baseline,
            cls_variance_weight: 0.0,
            loss_gene_weight_power: 0.0,
            cls_init_std: default_cls_init_std(),
        }
    }

    /// TxFM-S as the paper's architecture table gives it: 6 blocks of width 384 with 6 heads.
    /// That is 46.0M parameters at 44,349 genes, not the 57M the paper quotes; 12 blocks (the ViT-S
    /// depth) gives 56.7M, so the paper's S was probably 12 deep. Set `n_blocks = 12` to match
    /// the count (see the parameter-count test).
    pub fn s() -> Self {
        Self::paper(384, 6, 6, 0.1, 0.1)
    }

    /// TxFM-B (159M parameters in the paper): the ViT-B shape.
    pub fn b() -> Self {
        Self::paper(768, 12, 12, 0.1, 0.1)
    }

    /// TxFM-L (403M parameters in the paper): the ViT-L shape. LayerScale starts at 1e-5 because
    /// CaiT found small initial values necessary from about 24 blocks on.
    pub fn l() -> Self {
        Self::paper(1024, 24, 16, 0.3, 1e-5)
    }

    /// The paper's defaults around a given encoder shape: K = 2048, a 4-layer residual decoder as
    /// wide as the encoder, rectified tanh, Poisson loss, L = 1e5.
    fn paper(d_model: usize, n_blocks: usize, n_heads: usize, drop_path: f64, layer_scale_init: f64) -> Self {
        ModelConfig {
            d_model,
            value_encoding: ValueEncoding::Concat,
            gene_embedding_std: 1.0,
            n_blocks,
            n_heads,
            mlp_ratio: 4,
            n_visible: 2048,
            sampling_tau: 0.0,
            drop_path,
            layer_scale_init,
            decoder: DecoderConfig::ResidualMlp { n_layers: 4, d_hidden: d_model },
            activation: CountActivation::RectifiedTanh,
            library_size: 1e5,
            loss: LossKind::Poisson,
            decoder_bias_init: DecoderBiasInit::Baseline,
            cls_variance_weight: 0.0,
            loss_gene_weight_power: 0.0,
            cls_init_std: default_cls_init_std(),
        }
    }

    /// Looks a preset up by name (`tiny`, `s`, `b`, `l`).
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "tiny" => Ok(Self::tiny()),
            "s" => Ok(Self::s()),
            "b" => Ok(Self::b()),
            "l" => Ok(Self::l()),
            _ => Err(Error::Invalid(format!("model preset '{name}': expected tiny, s, b or l"))),
        }
    }

    /// Checks the fields a model cannot be built from; `origin` names where the config came from.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let bad = |field: &str, message: String| Err(Error::config(origin, field, message));
        if self.d_model < 2 {
            return bad("d_model", format!("{} < 2: a token needs an embedding and a value", self.d_model));
        }
        if self.n_heads == 0 || !self.d_model.is_multiple_of(self.n_heads) {
            return bad("n_heads", format!("{} does not divide d_model = {}", self.n_heads, self.d_model));
        }
        if self.mlp_ratio == 0 {
            return bad("mlp_ratio", "must be at least 1".into());
        }
        if !(self.cls_variance_weight.is_finite() && self.cls_variance_weight >= 0.0) {
            return bad("cls_variance_weight", format!("must be a weight >= 0, got {}", self.cls_variance_weight));
        }
        if !(self.loss_gene_weight_power.is_finite() && (0.0..=2.0).contains(&self.loss_gene_weight_power)) {
            return bad("loss_gene_weight_power", format!("must be an exponent in [0, 2], got {}", self.loss_gene_weight_power));
        }
        if self.loss_gene_weight_power != 0.0 && !matches!(self.loss, LossKind::Poisson | LossKind::NegativeBinomial) {
            return bad("loss_gene_weight_power", format!("weights genes by their mean count: it needs a count loss (poisson or negative_binomial), not {:?}", self.loss));
        }
        if self.n_visible == 0 {
            return bad("n_visible", "must be at least 1".into());
        }
        if !self.sampling_tau.is_finite() {
            return bad("sampling_tau", format!("{} is not finite", self.sampling_tau));
        }
        if !(0.0..1.0).contains(&self.drop_path) {
            return bad("drop_path", format!("{} is outside [0, 1)", self.drop_path));
        }
        if !(self.gene_embedding_std.is_finite() && self.gene_embedding_std > 0.0) {
            return bad("gene_embedding_std", format!("{} is not a positive number", self.gene_embedding_std));
        }
        if !(self.cls_init_std.is_finite() && self.cls_init_std >= 0.0) {
            return bad("cls_init_std", format!("{} is not a standard deviation >= 0", self.cls_init_std));
        }
        if !(self.layer_scale_init.is_finite() && self.layer_scale_init > 0.0) {
            return bad("layer_scale_init", format!("{} is not a positive number", self.layer_scale_init));
        }
        if !(self.library_size.is_finite() && self.library_size > 0.0) {
            return bad("library_size", format!("{} is not a positive number", self.library_size));
        }
        if let DecoderConfig::ResidualMlp { n_layers, d_hidden } = self.decoder
            && (n_layers == 0 || d_hidden == 0)
        {
            return bad("decoder", "residual_mlp needs n_layers >= 1 and d_hidden >= 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_round_trip_through_toml() {
        for name in ["tiny", "s", "b", "l"] {
            let config = ModelConfig::preset(name).unwrap();
            config.validate(name).unwrap();
            let text = toml::to_string(&config).unwrap();
            assert_eq!(toml::from_str::<ModelConfig>(&text).unwrap(), config);
        }
        assert!(ModelConfig::preset("xl").is_err());
    }

    #[test]
    fn ablations_are_config_diffs() {
        let text = toml::to_string(&ModelConfig::s())
            .unwrap()
            .replace("activation = \"rectified_tanh\"", "activation = \"softmax\"")
            .replace("[decoder.residual_mlp]\nn_layers = 4\nd_hidden = 384", "")
            .replace("loss = \"poisson\"", "loss = \"poisson\"\ndecoder = \"linear\"");
        let config: ModelConfig = toml::from_str(&text).unwrap();
        assert_eq!(config.activation, CountActivation::Softmax);
        assert_eq!(config.decoder, DecoderConfig::Linear);
        assert!(toml::from_str::<ModelConfig>(&format!("unknown = 1\n{text}")).is_err());
        assert!(toml::from_str::<ModelConfig>(&format!("{text}\nunknown = 1\n")).is_err(), "decoder");
    }

    #[test]
    fn rejects_invalid_fields_by_name() {
        let mut config = ModelConfig::tiny();
        config.n_heads = 5;
        let err = config.validate("run.toml").unwrap_err().to_string();
        assert!(err.starts_with("run.toml: n_heads:"), "{err}");
        let mut config = ModelConfig::tiny();
        config.drop_path = 1.0;
        assert!(config.validate("x").is_err());
    }
}
