//! One pre-norm transformer block with LayerScale and stochastic depth (ViT / CaiT / DINOv2 style):
//! `x = x + drop_path(ls1 · attn(norm1(x)))`, `x = x + drop_path(ls2 · mlp(norm2(x)))`.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// Weights start at N(0, 0.02²) and biases at 0, the ViT/timm convention.
pub(super) fn linear(path: nn::Path, in_dim: usize, out_dim: usize) -> nn::Linear {
    let config = nn::LinearConfig {
        ws_init: nn::Init::Randn { mean: 0.0, stdev: 0.02 },
        bs_init: Some(nn::Init::Const(0.0)),
        bias: true,
    };
    nn::linear(path, in_dim as i64, out_dim as i64, config)
}

pub(super) fn layer_norm(path: nn::Path, dim: usize) -> nn::LayerNorm {
    nn::layer_norm(path, vec![dim as i64], Default::default())
}

/// Multi-head self-attention through libtorch's fused scaled-dot-product attention.
#[derive(Debug)]
struct Attention {
    qkv: nn::Linear,
    proj: nn::Linear,
    n_heads: i64,
}

impl Attention {
    fn new(path: nn::Path, d_model: usize, n_heads: usize) -> Self {
        Attention {
            qkv: linear(&path / "qkv", d_model, 3 * d_model),
            proj: linear(&path / "proj", d_model, d_model),
            n_heads: n_heads as i64,
        }
    }

    /// `x: [n, t, d]`, `keep: [n, 1, 1, t]` bool, true at keys that may be attended to.
    /// Returns `[n, t, d]`.
    fn forward(&self, x: &Tensor, keep: &Tensor) -> Tensor {
        let (n, t, d) = x.size3().unwrap();
        // [n, t, 3d] → [3, n, heads, t, d_head]
        let qkv = self.qkv.forward(x).view([n, t, 3, self.n_heads, d / self.n_heads]).permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let out = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(keep), 0.0, false, None, false);
        self.proj.forward(&out.transpose(1, 2).reshape([n, t, d]))
    }
}

/// Drops the whole residual branch of each sample with probability `p` in training, rescaling the
/// survivors by `1 / (1 - p)` so the expectation is unchanged; the identity in evaluation.
fn drop_path(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p == 0.0 {
        return x.shallow_clone();
    }
    let n = x.size()[0];
    let keep = Tensor::empty([n, 1, 1], (Kind::Float, x.device())).bernoulli_float_(1.0 - p).to_kind(x.kind());
    x * keep / (1.0 - p)
}

/// Encoder block. Parameters: 2 LayerNorms, qkv `[3d, d]`, proj `[d, d]`, MLP `[r·d, d]` and
/// `[d, r·d]` with biases, and LayerScale vectors `ls1`, `ls2` `[d]`.
#[derive(Debug)]
pub(super) struct Block {
    norm1: nn::LayerNorm,
    attn: Attention,
    ls1: Tensor,
    norm2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    ls2: Tensor,
    drop_path: f64,
}

impl Block {
    pub(super) fn new(
        path: nn::Path,
        d_model: usize,
        n_heads: usize,
        mlp_ratio: usize,
        layer_scale_init: f64,
        drop_path: f64,
    ) -> Self {
        let ls = nn::Init::Const(layer_scale_init);
        Block {
            norm1: layer_norm(&path / "norm1", d_model),
            attn: Attention::new(&path / "attn", d_model, n_heads),
            ls1: path.var("ls1", &[d_model as i64], ls),
            norm2: layer_norm(&path / "norm2", d_model),
            fc1: linear(&path / "fc1", d_model, mlp_ratio * d_model),
            fc2: linear(&path / "fc2", mlp_ratio * d_model, d_model),
            ls2: path.var("ls2", &[d_model as i64], ls),
            drop_path,
        }
    }

    /// `x: [n, t, d]`, `keep: [n, 1, 1, t]` → `[n, t, d]`.
    pub(super) fn forward(&self, x: &Tensor, keep: &Tensor, train: bool) -> Tensor {
        let x = x + drop_path(&(self.attn.forward(&self.norm1.forward(x), keep) * &self.ls1), self.drop_path, train);
        let mlp = self.fc2.forward(&self.fc1.forward(&self.norm2.forward(&x)).gelu("none"));
        &x + drop_path(&(mlp * &self.ls2), self.drop_path, train)
    }

    /// Parameter count of a block of width `d` and MLP ratio `r`.
    pub(super) fn num_parameters(d: usize, r: usize) -> usize {
        let norms = 2 * 2 * d;
        let attn = (3 * d * d + 3 * d) + (d * d + d);
        let mlp = (r * d * d + r * d) + (r * d * d + d);
        let layer_scale = 2 * d;
        norms + attn + mlp + layer_scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_path_is_the_identity_in_eval_and_drops_whole_samples_in_training() {
        let _rng = crate::model::testutil::lock_torch_rng();
        tch::manual_seed(0);
        let x = Tensor::ones([400, 3, 2], (Kind::Float, tch::Device::Cpu));
        assert!(drop_path(&x, 0.5, false).equal(&x));
        let y = drop_path(&x, 0.5, true);
        // Each sample is all 0 or all 2 (= 1 / (1 - 0.5)).
        let per_sample = y.sum_dim_intlist([1i64, 2].as_slice(), false, Kind::Float);
        let values: Vec<f32> = Vec::try_from(&per_sample).unwrap();
        assert!(values.iter().all(|&v| v == 0.0 || v == 12.0), "{values:?}");
        let kept = values.iter().filter(|&&v| v > 0.0).count();
        assert!((150..250).contains(&kept), "{kept} of 400 kept at p = 0.5");
    }
}
