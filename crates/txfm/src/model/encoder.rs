//! The encoder: a set of visible-gene tokens plus a CLS token through pre-norm transformer blocks.
//! A gene's identity is carried by its learned embedding, not by a position: there is no
//! positional encoding, so the encoder sees an unordered set and the CLS output is invariant to
//! the order of the visible genes.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::block::{Block, layer_norm};
use super::config::{ModelConfig, ValueEncoding};
use super::readout::Readout;

/// The visible genes of a batch as tensors on the model's device.
#[derive(Debug)]
pub struct VisibleTokens {
    /// Vocabulary indices `[n, k]` (i64); any valid index at padding slots.
    pub genes: Tensor,
    /// Preprocessed values `[n, k]` (f32); ignored at padding slots.
    pub values: Tensor,
    /// `[n, k]` bool, true at padding slots.
    pub pad: Tensor,
}

/// The learned value encoding of [`ValueEncoding::Mlp`]: `x [n, k]` → `[n, k, d]`.
#[derive(Debug)]
struct ValueMlp {
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl ValueMlp {
    fn forward(&self, values: &Tensor) -> Tensor {
        self.fc2.forward(&self.fc1.forward(&values.unsqueeze(-1)).gelu("none"))
    }
}

/// How the encoder turns a gene's value into part of its token (see [`ValueEncoding`]).
#[derive(Debug)]
enum Value {
    Concat,
    Mlp(ValueMlp),
    /// `[G, d]`: each gene's value direction `V_i`.
    PerGene(Tensor),
}

#[derive(Debug)]
pub(super) struct Encoder {
    /// `[G, d - 1]` (concatenated value) or `[G, d]` (encoded value)
    gene_embedding: Tensor,
    value: Value,
    /// `[1, 1, d]`
    cls: Tensor,
    blocks: Vec<Block>,
    norm: nn::LayerNorm,
}

impl Encoder {
    pub(super) fn new(path: nn::Path, config: &ModelConfig, n_genes: usize) -> Self {
        let d = config.d_model as i64;
        let gene_init = nn::Init::Randn { mean: 0.0, stdev: config.gene_embedding_std };
        let (embedding_width, value) = match config.value_encoding {
            ValueEncoding::Concat => (d - 1, Value::Concat),
            ValueEncoding::Mlp => {
                let v = &path / "value";
                // Scaled so the value's encoding starts as large as the gene embedding it is added
                // to (unit-scale coordinates for x ≈ 1): with ViT's 0.02 on both layers it would
                // start ~10³ times smaller and the encoder would begin blind to the values.
                let fc1 = nn::linear(&v / "fc1", 1, d, nn::LinearConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: 1.0 }, bs_init: Some(nn::Init::Const(0.0)), bias: true });
                let fc2_std = config.gene_embedding_std / (d as f64).sqrt();
                let fc2 = nn::linear(&v / "fc2", d, d, nn::LinearConfig { ws_init: nn::Init::Randn { mean: 0.0, stdev: fc2_std }, bs_init: Some(nn::Init::Const(0.0)), bias: true });
                (d, Value::Mlp(ValueMlp { fc1, fc2 }))
            }
            ValueEncoding::PerGene => {
                // A detected gene's preprocessed value is ~3–11 (log1p of a count normalised to
                // 1e5), so a quarter of the embedding's scale gives `x_i·V_i` about the size of
                // `E_i` from the start: the values move the tokens, and the genes stay apart.
                let std = config.gene_embedding_std / 4.0;
                let table = path.var("value_embedding", &[n_genes as i64, d], nn::Init::Randn { mean: 0.0, stdev: std });
                (d, Value::PerGene(table))
            }
        };
        let blocks = (0..config.n_blocks)
            .map(|i| {
                // Stochastic depth ramps linearly from 0 at the first block to `drop_path` at the
                // last: early blocks, which every later one builds on, are dropped least.
                let rate = if config.n_blocks > 1 {
                    config.drop_path * i as f64 / (config.n_blocks - 1) as f64
                } else {
                    config.drop_path
                };
                Block::new(
                    &path / "blocks" / i,
                    config.d_model,
                    config.n_heads,
                    config.mlp_ratio,
                    config.layer_scale_init,
                    rate,
                )
            })
            .collect();
        Encoder {
            gene_embedding: path.var("gene_embedding", &[n_genes as i64, embedding_width], gene_init),
            value,
            cls: path.var("cls", &[1, 1, d], nn::Init::Randn { mean: 0.0, stdev: config.cls_init_std }),
            blocks,
            norm: layer_norm(&path / "norm", config.d_model),
        }
    }

    /// `[G, d - 1]` or `[G, d]` (see [`ValueEncoding`])
    pub(super) fn gene_embedding(&self) -> &Tensor {
        &self.gene_embedding
    }

    /// Tokens `[n, k, d]` → CLS output `[n, d]` after the final LayerNorm.
    pub(super) fn forward(&self, visible: &VisibleTokens, train: bool) -> Tensor {
        self.norm.forward(&self.trunk(visible, train).select(1, 0))
    }

    /// The sample embedding `[n, readout.width(d)]` of [`Readout`], in evaluation mode.
    pub(super) fn read_out(&self, visible: &VisibleTokens, readout: Readout) -> Tensor {
        let x = self.trunk(visible, false);
        let cls = self.norm.forward(&x.select(1, 0));
        match readout {
            Readout::Cls => cls,
            Readout::ClsMean => {
                let k = visible.genes.size()[1];
                let tokens = self.norm.forward(&x.narrow(1, 1, k));
                // Padding slots are left out of the mean; a row with no visible gene keeps 0.
                let keep = visible.pad.logical_not().to_kind(tokens.kind()).unsqueeze(-1);
                let dims: &[i64] = &[1];
                let mean = (&tokens * &keep).sum_dim_intlist(dims, false, tokens.kind())
                    / keep.sum_dim_intlist(dims, false, tokens.kind()).clamp_min(1.0);
                Tensor::cat(&[cls, mean], 1)
            }
        }
    }

    /// Tokens through the blocks: `[n, k + 1, d]`, the CLS first, before the final LayerNorm.
    fn trunk(&self, visible: &VisibleTokens, train: bool) -> Tensor {
        let (n, k) = visible.genes.size2().unwrap();
        let embedding = self.gene_embedding.index_select(0, &visible.genes.reshape([-1])).view([n, k, -1]);
        let values = visible.values.to_kind(embedding.kind());
        let tokens = match &self.value {
            Value::Concat => Tensor::cat(&[embedding, values.unsqueeze(-1)], -1),
            Value::Mlp(mlp) => embedding + mlp.forward(&values),
            Value::PerGene(table) => {
                let direction = table.index_select(0, &visible.genes.reshape([-1])).view([n, k, -1]);
                embedding + direction * values.unsqueeze(-1)
            }
        };
        let d = tokens.size()[2];
        let mut x = Tensor::cat(&[self.cls.expand([n, 1, d], false), tokens], 1);
        // Attention may use the CLS key and every non-padding key: [n, 1, 1, k + 1].
        let cls_keep = Tensor::ones([n, 1], (Kind::Bool, x.device()));
        let keep = Tensor::cat(&[cls_keep, visible.pad.logical_not()], 1).view([n, 1, 1, k + 1]);
        for block in &self.blocks {
            x = block.forward(&x, &keep, train);
        }
        x
    }

    pub(super) fn num_parameters(config: &ModelConfig, n_genes: usize) -> usize {
        let d = config.d_model;
        let (embedding, value) = match config.value_encoding {
            ValueEncoding::Concat => (d - 1, 0),
            ValueEncoding::Mlp => (d, (d + d) + (d * d + d)),
            ValueEncoding::PerGene => (d, n_genes * d),
        };
        n_genes * embedding + value + d + config.n_blocks * Block::num_parameters(d, config.mlp_ratio) + 2 * d
    }
}
