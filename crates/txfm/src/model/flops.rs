//! Floating-point work of the model per sample, for model FLOPs utilisation (MFU): matmul FLOPs
//! only (2 per multiply-add), the convention of PaLM's appendix B that MFU figures are quoted in;
//! normalisations, activations, the loss and the optimiser are left out. Training counts three
//! forward passes (the backward pass computes gradients of inputs and of weights).
//!
//! Per sample with T = K + 1 tokens (the CLS included), width d, MLP ratio r:
//! - a block: `2·T·(4d² + 2rd²)` for the q/k/v/out and MLP projections, plus `4·T²·d` for the
//!   attention scores and their weighted sum (padding keys are computed and masked, so they count);
//! - the decoder: `2·(its weight matrices' entries)`, applied to the CLS output only;
//! - the tokens themselves `[E_i ; x_i]` are gathered and concatenated, not multiplied; a learned
//!   value encoding (`value_encoding = "mlp"`) costs `2·K·(d + d²)`; the per-gene one is elementwise.

use super::config::{DecoderConfig, ModelConfig, ValueEncoding};

/// Matmul FLOPs of one block for one sample.
fn block_flops(config: &ModelConfig) -> f64 {
    let (t, d, r) = ((config.n_visible + 1) as f64, config.d_model as f64, config.mlp_ratio as f64);
    2.0 * t * (4.0 * d * d + 2.0 * r * d * d) + 4.0 * t * t * d
}

/// Matmul FLOPs of the decoder for one sample.
fn decoder_flops(config: &ModelConfig, n_genes: usize) -> f64 {
    let d = config.d_model as f64;
    let trunk = match config.decoder {
        DecoderConfig::Linear => 0.0,
        DecoderConfig::ResidualMlp { n_layers, d_hidden: h } => {
            let h = h as f64;
            d * h + n_layers as f64 * 2.0 * h * h
        }
    };
    2.0 * (trunk + n_genes as f64 * config.decoder.width(config.d_model) as f64)
}

/// Matmul FLOPs of the value encoding of the `K` visible tokens for one sample.
fn value_flops(config: &ModelConfig) -> f64 {
    let d = config.d_model as f64;
    match config.value_encoding {
        ValueEncoding::Concat => 0.0,
        ValueEncoding::Mlp => 2.0 * config.n_visible as f64 * (d + d * d),
        // An elementwise product per token, not a matmul.
        ValueEncoding::PerGene => 0.0,
    }
}

/// The encoder's forward pass to the CLS embedding (what `txfm embed` runs), per sample.
pub fn embed_flops(config: &ModelConfig) -> f64 {
    value_flops(config) + config.n_blocks as f64 * block_flops(config)
}

/// Encoder and decoder, forward only, per sample.
pub fn forward_flops(config: &ModelConfig, n_genes: usize) -> f64 {
    embed_flops(config) + decoder_flops(config, n_genes)
}

/// A training step's forward and backward passes, per sample: 3 × [`forward_flops`].
pub fn train_flops(config: &ModelConfig, n_genes: usize) -> f64 {
    3.0 * forward_flops(config, n_genes)
}

#[cfg(test)]
mod tests {
    use tch::{nn, Device};

    use super::*;
    use crate::model::TxFm;

    /// The formula against the weight matrices a built model actually holds: every 2-D parameter
    /// of a block is multiplied by all T tokens, every 2-D decoder parameter by the CLS alone, and
    /// the gene embeddings by nothing. A layer added to the model without a term here fails this.
    #[test]
    fn the_formula_counts_the_weight_matrices_of_the_built_model() {
        for config in [
            ModelConfig::tiny(),
            ModelConfig { decoder: DecoderConfig::Linear, ..ModelConfig::tiny() },
            ModelConfig { n_blocks: 3, mlp_ratio: 2, n_visible: 40, ..ModelConfig::tiny() },
            ModelConfig { value_encoding: ValueEncoding::Mlp, n_visible: 40, ..ModelConfig::tiny() },
        ] {
            let g = 300;
            let vs = nn::VarStore::new(Device::Cpu);
            let _model = TxFm::new(&vs.root(), &config, g).unwrap();
            let t = (config.n_visible + 1) as f64;
            let (mut encoder, mut decoder) = (0.0, 0.0);
            for (name, p) in vs.variables() {
                if p.dim() != 2 {
                    continue;
                }
                let n = p.numel() as f64;
                if name.starts_with("encoder.blocks") || name.contains(".blocks.") {
                    encoder += 2.0 * t * n;
                } else if name.starts_with("encoder.value") {
                    encoder += 2.0 * (t - 1.0) * n;
                } else if name.starts_with("decoder") {
                    decoder += 2.0 * n;
                } else {
                    assert!(name.contains("gene") || name.contains("embed"), "unexpected matrix {name}");
                }
            }
            let d = config.d_model as f64;
            encoder += config.n_blocks as f64 * 4.0 * t * t * d;
            assert_eq!(embed_flops(&config), encoder, "{config:?}");
            assert_eq!(forward_flops(&config, g), encoder + decoder, "{config:?}");
            assert_eq!(train_flops(&config, g), 3.0 * (encoder + decoder));
        }
    }

    /// TxFM-B at K = 2048: about 2·T·(params of the blocks) ≈ 2 · 2049 · 85M ≈ 0.35 TFLOP, plus
    /// attention (4 · 12 · 2049² · 768 ≈ 0.15 TFLOP) per sample forward.
    #[test]
    fn txfm_b_is_about_half_a_teraflop_per_sample_forward() {
        let b = ModelConfig::b();
        let f = embed_flops(&b);
        assert!((0.45e12..0.55e12).contains(&f), "{f:e}");
    }
}
