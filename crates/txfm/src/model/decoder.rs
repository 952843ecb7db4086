//! The decoder: the CLS embedding alone must reconstruct every profiled gene (the MAE bottleneck),
//! through an MLP ending in a per-gene output layer. Row `i` of that layer's weight is gene `i`'s
//! "decoder gene weight", read out as a second gene representation.

use tch::Tensor;
use tch::nn::{self, Module};

use super::block::{layer_norm, linear};
use super::config::DecoderConfig;

/// Pre-norm residual MLP layer of width `h`: `x + fc2(gelu(fc1(norm(x))))`.
#[derive(Debug)]
struct ResidualLayer {
    norm: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl ResidualLayer {
    fn new(path: nn::Path, h: usize) -> Self {
        ResidualLayer {
            norm: layer_norm(&path / "norm", h),
            fc1: linear(&path / "fc1", h, h),
            fc2: linear(&path / "fc2", h, h),
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x + self.fc2.forward(&self.fc1.forward(&self.norm.forward(x)).gelu("none"))
    }

    fn num_parameters(h: usize) -> usize {
        2 * h + 2 * (h * h + h)
    }
}

/// The residual-MLP trunk: input projection, layers, closing LayerNorm.
#[derive(Debug)]
struct Trunk {
    proj: nn::Linear,
    layers: Vec<ResidualLayer>,
    norm: nn::LayerNorm,
}

#[derive(Debug)]
pub(super) struct Decoder {
    /// `None` for the linear decoder.
    trunk: Option<Trunk>,
    /// Weight `[G, d_dec]`, bias `[G]`.
    out: nn::Linear,
}

impl Decoder {
    pub(super) fn new(path: nn::Path, config: DecoderConfig, d_model: usize, n_genes: usize) -> Self {
        let trunk = match config {
            DecoderConfig::Linear => None,
            DecoderConfig::ResidualMlp { n_layers, d_hidden } => Some(Trunk {
                // The projection lets the decoder width differ from the encoder's; it costs d·h.
                proj: linear(&path / "proj", d_model, d_hidden),
                layers: (0..n_layers).map(|i| ResidualLayer::new(&path / "layers" / i, d_hidden)).collect(),
                norm: layer_norm(&path / "norm", d_hidden),
            }),
        };
        Decoder { trunk, out: linear(&path / "out", config.width(d_model), n_genes) }
    }

    /// CLS `[n, d]` → logits `[n, G]` (before the count activation).
    pub(super) fn forward(&self, cls: &Tensor) -> Tensor {
        let hidden = match &self.trunk {
            None => cls.shallow_clone(),
            Some(trunk) => {
                let mut x = trunk.proj.forward(cls);
                for layer in &trunk.layers {
                    x = layer.forward(&x);
                }
                trunk.norm.forward(&x)
            }
        };
        self.out.forward(&hidden)
    }

    /// The output bias `[G]`.
    pub(super) fn bias(&self) -> &Tensor {
        self.out.bs.as_ref().expect("the output layer has a bias")
    }

    /// `[G, d_dec]`
    pub(super) fn gene_weights(&self) -> &Tensor {
        &self.out.ws
    }

    pub(super) fn num_parameters(config: DecoderConfig, d_model: usize, n_genes: usize) -> usize {
        let trunk = match config {
            DecoderConfig::Linear => 0,
            DecoderConfig::ResidualMlp { n_layers, d_hidden: h } => {
                (d_model * h + h) + n_layers * ResidualLayer::num_parameters(h) + 2 * h
            }
        };
        trunk + n_genes * config.width(d_model) + n_genes
    }
}
