//! TxFM: encode the visible genes into a CLS embedding, decode it into every vocabulary gene, score
//! the reconstruction on the profiled genes. `forward` returns `(loss, pred, cls)` like MAE's
//! `(loss, pred, mask)`.

use tch::{Kind, Tensor};
use tch::nn;

use super::batch_tensors::BatchTensors;
use super::config::{LossKind, ModelConfig};
use super::decoder::Decoder;
use super::encoder::{Encoder, VisibleTokens};
use super::loss::{masked_mean, weighted_masked_mean};
use super::readout::Readout;
use crate::{Error, Result};

/// The model. Its parameters live in the `VarStore` behind the path it was built on, on that
/// store's device; nothing here picks a device.
#[derive(Debug)]
pub struct TxFm {
    config: ModelConfig,
    n_genes: usize,
    encoder: Encoder,
    decoder: Decoder,
    /// Per-gene log inverse dispersion `[G]`, only for the negative-binomial loss. Starts at 0
    /// (θ = 1), scVI's unit-scale start.
    log_theta: Option<Tensor>,
    /// Per-gene training-loss weights `[G]` ([`ModelConfig::loss_gene_weight_power`]), derived
    /// from the training data at every start (so neither saved nor loaded); `None` until set, and
    /// always `None` at power 0.
    loss_weights: Option<Tensor>,
}

impl TxFm {
    /// Builds the model on `path` (e.g. `&vs.root()`) for a vocabulary of `n_genes` genes.
    pub fn new(path: &nn::Path, config: &ModelConfig, n_genes: usize) -> Result<Self> {
        config.validate("model config")?;
        if n_genes == 0 {
            return Err(Error::Invalid("a model needs a vocabulary of at least one gene".into()));
        }
        let log_theta = (config.loss == LossKind::NegativeBinomial).then(|| path.zeros("log_theta", &[n_genes as i64]));
        Ok(TxFm {
            config: config.clone(),
            n_genes,
            encoder: Encoder::new(path / "encoder", config, n_genes),
            decoder: Decoder::new(path / "decoder", config.decoder, config.d_model, n_genes),
            log_theta,
            loss_weights: None,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Vocabulary size `G`.
    pub fn n_genes(&self) -> usize {
        self.n_genes
    }

    /// Visible tokens `[n, k]` → sample embeddings (CLS outputs) `[n, d]`. `train` turns
    /// stochastic depth on.
    pub fn encode(&self, visible: &VisibleTokens, train: bool) -> Tensor {
        self.encoder.forward(visible, train)
    }

    /// Visible tokens `[n, k]` → sample embeddings `[n, readout.width(d)]`, in evaluation mode
    /// (what `txfm embed` writes); [`Readout::Cls`] is [`TxFm::encode`]'s CLS.
    pub fn embed(&self, visible: &VisibleTokens, readout: Readout) -> Tensor {
        self.encoder.read_out(visible, readout)
    }

    /// CLS `[n, d]` → predicted preprocessed values `x̂` `[n, G]`, after the count activation.
    /// `profiled: [n, G]` bool restricts the softmax activation's proportions to the sample's
    /// profiled genes; `None` treats every gene as profiled.
    pub fn decode(&self, cls: &Tensor, profiled: Option<&Tensor>) -> Tensor {
        // The activation and the loss in float32, as `bench/torch_reference.py` computes them: under
        // autocast the logits come out in the reduced type, CPU autocast upcasts neither tanh nor
        // exp, and bfloat16's 8-bit mantissa would round every predicted rate by up to 0.4%.
        let logits = self.decoder.forward(cls).to_kind(Kind::Float);
        self.config.activation.apply(&logits, self.config.library_size, profiled)
    }

    /// Reconstruction loss (scalar): the configured loss of `pred` against `target` (`[n, G]`),
    /// averaged over the entries where `mask` (`[n, G]` bool, the profiled genes) is true.
    pub fn loss(&self, pred: &Tensor, target: &Tensor, mask: &Tensor) -> Tensor {
        masked_mean(&self.config.loss.elementwise(pred, target, self.log_theta.as_ref()), mask)
    }

    /// The CLS variance term of [`ModelConfig::cls_variance_weight`] (unweighted, scalar): the
    /// mean over dimensions of `max(0, 1 − std)`, the std over the batch's rows of `cls: [n, d]`.
    /// 0 for a batch of one (no spread to measure).
    pub fn cls_variance_penalty(&self, cls: &Tensor) -> Tensor {
        if cls.size()[0] < 2 {
            return Tensor::zeros([], (cls.kind(), cls.device()));
        }
        let std = (cls.to_kind(tch::Kind::Float).var_dim([0i64].as_slice(), true, false) + 1e-4).sqrt();
        (std.neg() + 1.0).relu().mean(tch::Kind::Float)
    }

    /// Sets the training loss's per-gene weights `μ_g^(−p)` from the per-gene loss-optimal
    /// constants `c_g` (`[G]`; `μ_g = exp(c_g)` for the count losses, whose constant is the log of
    /// the mean shifted count). A no-op at power 0.
    pub fn set_loss_gene_weights(&mut self, constants: &[f64], device: tch::Device) -> Result<()> {
        let power = self.config.loss_gene_weight_power;
        if power == 0.0 {
            return Ok(());
        }
        if constants.len() != self.n_genes {
            return Err(Error::Invalid(format!("{} baseline constants for a vocabulary of {} genes", constants.len(), self.n_genes)));
        }
        // exp(−p·c) directly: μ^(−p) without forming μ, which can be e^12.
        let weights: Vec<f32> = constants.iter().map(|&c| (-power * c).exp() as f32).collect();
        if weights.iter().any(|w| !w.is_finite() || *w <= 0.0) {
            return Err(Error::Invalid("non-finite loss gene weights from the baseline constants".into()));
        }
        self.loss_weights = Some(Tensor::from_slice(&weights).to_device(device));
        Ok(())
    }

    /// What training minimises for a batch whose reconstruction is `pred` and whose CLS is `cls`:
    /// the reconstruction loss (gene-weighted where [`Self::set_loss_gene_weights`] set weights,
    /// else `loss`, the unweighted one `forward` returned) plus the optional CLS variance term.
    pub fn objective(&self, loss: &Tensor, pred: &Tensor, cls: &Tensor, batch: &BatchTensors) -> Tensor {
        let reconstruction = match &self.loss_weights {
            None => loss.shallow_clone(),
            // A weighted mean, so the loss keeps its scale. (Micro-batches join their parts by
            // entry count, which equals the whole batch's weighted mean only approximately.)
            Some(w) => weighted_masked_mean(
                &self.config.loss.elementwise(pred, &batch.target, self.log_theta.as_ref()),
                &batch.target_mask,
                w,
            ),
        };
        match self.config.cls_variance_weight {
            0.0 => reconstruction,
            weight => reconstruction + self.cls_variance_penalty(cls) * weight,
        }
    }

    /// `(loss, pred [n, G], cls [n, d])` for one batch.
    pub fn forward(&self, batch: &BatchTensors, train: bool) -> (Tensor, Tensor, Tensor) {
        let cls = self.encode(&batch.visible, train);
        let pred = self.decode(&cls, Some(&batch.target_mask));
        let loss = self.loss(&pred, &batch.target, &batch.target_mask);
        (loss, pred, cls)
    }

    /// Starts the decoder's output bias at `φ⁻¹(constant)` for each gene (`constants: [G]`, the
    /// loss-optimal per-gene predictions), so a fresh model predicts the per-gene baseline up to
    /// its small initial weights ([`super::DecoderBiasInit::Baseline`]).
    pub fn init_decoder_bias(&mut self, constants: &[f64]) -> Result<()> {
        if constants.len() != self.n_genes {
            return Err(Error::Invalid(format!("{} baseline constants for a vocabulary of {} genes", constants.len(), self.n_genes)));
        }
        let (activation, l) = (self.config.activation, self.config.library_size);
        let logits: Vec<f32> = constants.iter().map(|&c| activation.inverse(c, l) as f32).collect();
        let bias = self.decoder.bias();
        tch::no_grad(|| bias.shallow_clone().copy_(&Tensor::from_slice(&logits).to_device(bias.device())));
        Ok(())
    }

    /// The encoder's learned gene embeddings `[G, d - 1]`, or `[G, d]` with a learned value
    /// encoding (detached).
    pub fn gene_embeddings(&self) -> Tensor {
        self.encoder.gene_embedding().detach()
    }

    /// The decoder's per-gene output weights `[G, d_dec]` (detached).
    pub fn decoder_gene_weights(&self) -> Tensor {
        self.decoder.gene_weights().detach()
    }
}

/// Number of trainable parameters of a model for `n_genes` genes, without building it.
pub fn num_parameters(config: &ModelConfig, n_genes: usize) -> usize {
    let dispersion = if config.loss == LossKind::NegativeBinomial { n_genes } else { 0 };
    Encoder::num_parameters(config, n_genes)
        + Decoder::num_parameters(config.decoder, config.d_model, n_genes)
        + dispersion
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::{CountActivation, DecoderConfig};
    use crate::model::testutil::{lock_torch_rng, max_abs_diff, scalar, values};
    use crate::train::Batch;
    use std::sync::MutexGuard;
    use tch::Device;
    use tch::nn::OptimizerConfig;

    const G: usize = 20;

    /// A tiny model whose residual branches are not damped (LayerScale 1), so the invariance tests
    /// cannot pass merely because attention barely touches the CLS.
    /// Seeded; the caller holds the returned guard while it uses libtorch's generator.
    fn model(config: &ModelConfig) -> (MutexGuard<'static, ()>, nn::VarStore, TxFm) {
        let guard = lock_torch_rng();
        tch::manual_seed(11);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = TxFm::new(&vs.root(), config, G).unwrap();
        (guard, vs, model)
    }

    fn sensitive() -> ModelConfig {
        ModelConfig { layer_scale_init: 1.0, ..ModelConfig::tiny() }
    }

    // CPU autocast upcasts neither tanh nor exp: without the cast in `decode` the predictions and
    // the Poisson loss of a bfloat16 run were computed in bfloat16.
    #[test]
    fn under_autocast_the_activation_and_the_loss_run_in_float32() {
        use crate::runtime::{with_autocast, AutocastDtype};
        let (_g, _vs, model) = model(&ModelConfig::tiny());
        let cls = Tensor::randn([4, model.config().d_model as i64], (Kind::Float, Device::Cpu));
        let (pred, plain) = tch::no_grad(|| {
            let pred = with_autocast(Device::Cpu, Some(AutocastDtype::Bf16), || model.decode(&cls, None));
            (pred, model.decode(&cls, None))
        });
        assert_eq!(pred.kind(), Kind::Float);
        let loss = with_autocast(Device::Cpu, Some(AutocastDtype::Bf16), || {
            model.loss(&pred, &plain, &Tensor::ones([4, G as i64], (Kind::Bool, Device::Cpu)))
        });
        assert_eq!(loss.kind(), Kind::Float);
        // Only the decoder's matmuls were rounded: bfloat16's relative precision, not more.
        let rel = max_abs_diff(&pred, &plain) / plain.abs().max().double_value(&[]);
        assert!(rel > 0.0 && rel < 0.05, "{rel}");
    }

    /// Sample `s` (of `n`) shows genes `3s + j`, j < k, with values `0.5 j + s`; its dataset
    /// profiles the even genes and the visible ones.
    fn batch(n: usize, k: usize) -> Batch {
        let mut b = Batch {
            n,
            k,
            g: G,
            sample: (0..n as u64).collect(),
            library_size: vec![1e3; n],
            visible_genes: vec![],
            visible_values: vec![],
            visible_pad: vec![false; n * k],
            target: vec![0.0; n * G],
            target_mask: vec![false; n * G],
        };
        for s in 0..n {
            for j in 0..k {
                b.visible_genes.push((3 * s + j) as i64 % G as i64);
                b.visible_values.push(0.5 * j as f32 + s as f32);
            }
            for gene in 0..G {
                b.target[s * G + gene] = ((gene * 7 + s) % 5) as f32 * 0.6;
                b.target_mask[s * G + gene] = gene % 2 == 0 || (3 * s..3 * s + k).contains(&gene);
            }
        }
        b
    }

    fn visible(b: &Batch) -> VisibleTokens {
        BatchTensors::from_batch(b, Device::Cpu).visible
    }

    #[test]
    fn analytic_parameter_count_matches_the_var_store() {
        let tiny = ModelConfig::tiny();
        let configs = [
            tiny.clone(),
            ModelConfig { decoder: DecoderConfig::Linear, ..tiny.clone() },
            ModelConfig { decoder: DecoderConfig::ResidualMlp { n_layers: 8, d_hidden: 48 }, ..tiny.clone() },
            ModelConfig { loss: LossKind::NegativeBinomial, ..tiny.clone() },
            ModelConfig { value_encoding: crate::model::ValueEncoding::Mlp, ..tiny.clone() },
            ModelConfig { value_encoding: crate::model::ValueEncoding::PerGene, ..tiny.clone() },
            ModelConfig { n_blocks: 3, mlp_ratio: 2, ..ModelConfig::s() },
        ];
        let _rng = lock_torch_rng();
        for config in configs {
            let vs = nn::VarStore::new(Device::Cpu);
            TxFm::new(&vs.root(), &config, G).unwrap();
            let counted: i64 = vs.trainable_variables().iter().map(|t| t.numel() as i64).sum();
            assert_eq!(counted as usize, num_parameters(&config, G), "{config:?}");
        }
    }

    #[test]
    fn presets_match_the_papers_parameter_counts() {
        // The paper gives 57M / 159M / 403M at 44,349 genes, rounded to the million: a 1%
        // tolerance covers that rounding (±0.9% at 57M) and nothing more. B and L match with a
        // 4-layer residual decoder as wide as the encoder. S as specified (6 blocks) does not: it
        // is ~19% short, and the 12-block ViT-S depth matches instead. The test pins both facts.
        let g = 44_349;
        let rel = |config: &ModelConfig, paper: f64| (num_parameters(config, g) as f64 - paper) / paper;
        assert!(rel(&ModelConfig::b(), 159e6).abs() < 0.01, "B: {}", num_parameters(&ModelConfig::b(), g));
        assert!(rel(&ModelConfig::l(), 403e6).abs() < 0.01, "L: {}", num_parameters(&ModelConfig::l(), g));
        let s = ModelConfig::s();
        assert_eq!(s.n_blocks, 6);
        assert!((-0.20..-0.18).contains(&rel(&s, 57e6)), "S: {}", num_parameters(&s, g));
        let s12 = ModelConfig { n_blocks: 12, ..s };
        assert!(rel(&s12, 57e6).abs() < 0.01, "S with 12 blocks: {}", num_parameters(&s12, g));
    }

    #[test]
    fn forward_shapes_and_gene_read_outs() {
        let (_rng, _vs, model) = model(&ModelConfig::tiny());
        let b = BatchTensors::from_batch(&batch(3, 5), Device::Cpu);
        assert_eq!(b.len(), 3);
        let (loss, pred, cls) = model.forward(&b, true);
        assert_eq!(loss.size(), Vec::<i64>::new());
        assert!(scalar(&loss).is_finite());
        assert_eq!(pred.size(), [3, G as i64]);
        assert_eq!(cls.size(), [3, 64]);
        assert_eq!(model.gene_embeddings().size(), [G as i64, 63]);
        assert_eq!(model.decoder_gene_weights().size(), [G as i64, 64]);
        assert!(!model.gene_embeddings().requires_grad());
    }

    #[test]
    fn padding_is_ignored_whatever_it_holds() {
        let (_rng, _vs, model) = model(&sensitive());
        let plain = batch(2, 3);
        // The same samples with 2 padding slots each — at the end for sample 0, interleaved for
        // sample 1 — holding garbage genes and values.
        let mut padded = batch(2, 5);
        let slots = [[0, 1, 2, 3, 4], [0, 3, 1, 4, 2]]; // where plain token j (j < 3) goes
        for (s, slots) in slots.iter().enumerate() {
            for (j, &slot) in slots.iter().enumerate() {
                let slot = s * 5 + slot;
                if j < 3 {
                    padded.visible_genes[slot] = plain.visible_genes[s * 3 + j];
                    padded.visible_values[slot] = plain.visible_values[s * 3 + j];
                } else {
                    padded.visible_genes[slot] = (7 * j + s) as i64 % G as i64;
                    padded.visible_values[slot] = 1e3 * (j as f32 + 1.0);
                    padded.visible_pad[slot] = true;
                }
            }
        }
        for readout in [Readout::Cls, Readout::ClsMean] {
            let a = model.embed(&visible(&plain), readout);
            let b = model.embed(&visible(&padded), readout);
            assert!(max_abs_diff(&a, &b) < 1e-5, "{readout}: {}", max_abs_diff(&a, &b));
        }
        let a = model.encode(&visible(&plain), false);
        let b = model.encode(&visible(&padded), false);
        assert!(max_abs_diff(&a, &b) < 1e-5, "{}", max_abs_diff(&a, &b));
        // Control: the same garbage, unmasked, does change the embedding.
        padded.visible_pad = vec![false; 10];
        let c = model.encode(&visible(&padded), false);
        assert!(max_abs_diff(&a, &c) > 1e-3);
    }

    #[test]
    fn the_cls_mean_read_out_is_the_cls_beside_the_mean_of_the_visible_tokens() {
        let (_rng, _vs, model) = model(&sensitive());
        let b = batch(3, 4);
        let v = visible(&b);
        let cls = model.encode(&v, false);
        assert_eq!(values(&model.embed(&v, Readout::Cls)), values(&cls), "the CLS read-out is encode's CLS");
        let both = model.embed(&v, Readout::ClsMean);
        let d = ModelConfig::tiny().d_model as i64;
        assert_eq!(both.size(), vec![3, Readout::ClsMean.width(d as usize) as i64]);
        assert_eq!(values(&both.narrow(1, 0, d)), values(&cls));
        // The mean half is not a copy of the CLS, and it is per sample: a sample's mean moves when
        // one of its values does, the other samples' do not (padding: the test above).
        let mean = both.narrow(1, d, d);
        assert!(max_abs_diff(&mean, &cls) > 1e-2, "the mean half differs from the CLS");
        let mut moved = b.clone();
        moved.visible_values[4] += 3.0; // sample 1's first gene
        let after = model.embed(&visible(&moved), Readout::ClsMean).narrow(1, d, d);
        assert!(max_abs_diff(&after.get(1), &mean.get(1)) > 1e-3);
        assert!(max_abs_diff(&after.get(0), &mean.get(0)) < 1e-6);
        assert!(max_abs_diff(&after.get(2), &mean.get(2)) < 1e-6);
    }

    #[test]
    fn the_gene_weighted_objective_is_the_weighted_mean_over_profiled_entries() {
        let config = ModelConfig { loss_gene_weight_power: 0.5, ..ModelConfig::tiny() };
        let (_rng, _vs, mut model) = model(&config);
        let b = batch(3, 4);
        let t = BatchTensors::from_batch(&b, Device::Cpu);
        let (loss, pred, cls) = model.forward(&t, false);
        // Before weights are set (and always at power 0) the objective is the reported loss.
        assert_eq!(scalar(&model.objective(&loss, &pred, &cls, &t)), scalar(&loss));
        let constants: Vec<f64> = (0..G).map(|g| 0.4 * g as f64).collect();
        model.set_loss_gene_weights(&constants, Device::Cpu).unwrap();
        let objective = scalar(&model.objective(&loss, &pred, &cls, &t));
        // By hand in f64: Σ w ℓ / Σ w over the profiled entries, w_g = exp(−0.5 · 0.4 g).
        let p: Vec<f32> = Vec::try_from(pred.reshape([-1])).unwrap();
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for s in 0..3 {
            for g in 0..G {
                if b.target_mask[s * G + g] {
                    let (w, x, y) = ((-0.2 * g as f64).exp(), p[s * G + g] as f64, b.target[s * G + g] as f64);
                    num += w * (x.exp() - x * y.exp());
                    den += w;
                }
            }
        }
        assert!((objective - num / den).abs() <= 1e-5 * (num / den).abs().max(1.0), "{objective} vs {}", num / den);
        assert!((objective - scalar(&loss)).abs() > 1e-3, "the weights changed nothing");
        // The reported loss is unweighted whatever the weights.
        let (again, _, _) = model.forward(&t, false);
        assert_eq!(scalar(&again), scalar(&loss));
        // Weights need a count loss and one constant per gene.
        assert!(model.set_loss_gene_weights(&constants[1..], Device::Cpu).is_err());
        let mse = ModelConfig { loss: LossKind::Mse, ..config.clone() };
        assert!(mse.validate("test").unwrap_err().to_string().contains("count loss"));
        assert!(ModelConfig { loss_gene_weight_power: -1.0, ..config }.validate("test").is_err());
    }

    #[test]
    fn cls_variance_penalty_is_one_for_a_collapsed_cls_and_zero_for_a_spread_one() {
        let (_guard, _vs, model) = model(&ModelConfig::tiny());
        let collapsed = Tensor::ones([8, 64], (tch::Kind::Float, Device::Cpu));
        assert!((model.cls_variance_penalty(&collapsed).double_value(&[]) - 1.0).abs() < 0.02);
        tch::manual_seed(0);
        let spread = Tensor::randn([4096, 64], (tch::Kind::Float, Device::Cpu)) * 3.0;
        assert_eq!(model.cls_variance_penalty(&spread).double_value(&[]), 0.0);
        let half = Tensor::randn([4096, 64], (tch::Kind::Float, Device::Cpu)) * 0.5;
        assert!((model.cls_variance_penalty(&half).double_value(&[]) - 0.5).abs() < 0.02);
    }

    #[test]
    fn cls_is_invariant_to_the_order_of_visible_genes() {
        let (_rng, _vs, model) = model(&sensitive());
        let b = batch(2, 6);
        let order = [4usize, 0, 5, 2, 1, 3];
        let mut shuffled = b.clone();
        for s in 0..2 {
            for (to, &from) in order.iter().enumerate() {
                shuffled.visible_genes[s * 6 + to] = b.visible_genes[s * 6 + from];
                shuffled.visible_values[s * 6 + to] = b.visible_values[s * 6 + from];
            }
        }
        let a = model.encode(&visible(&b), false);
        assert!(max_abs_diff(&a, &model.encode(&visible(&shuffled), false)) < 1e-5);
        // Control: moving a value to another gene is not a permutation and changes the CLS.
        shuffled.visible_values.swap(0, 1);
        assert!(max_abs_diff(&a, &model.encode(&visible(&shuffled), false)) > 1e-3);
    }

    #[test]
    fn drop_path_only_in_training_and_seeded_training_is_reproducible() {
        let (_rng, _vs, model) = model(&ModelConfig { drop_path: 0.5, ..sensitive() });
        let v = visible(&batch(8, 4));
        assert!(model.encode(&v, false).equal(&model.encode(&v, false)));
        let eval = model.encode(&v, false);
        tch::manual_seed(3);
        let train = model.encode(&v, true);
        assert!(max_abs_diff(&eval, &train) > 1e-3, "stochastic depth had no effect");
        tch::manual_seed(3);
        assert!(train.equal(&model.encode(&v, true)));
    }

    #[test]
    fn one_adamw_step_lowers_the_loss_for_every_activation_and_loss() {
        let activations = [
            CountActivation::RectifiedTanh,
            CountActivation::Relu,
            CountActivation::ClampedRelu,
            CountActivation::Softmax,
        ];
        let losses = [LossKind::Poisson, LossKind::Mse, LossKind::SmoothL1, LossKind::NegativeBinomial];
        let b = BatchTensors::from_batch(&batch(4, 6), Device::Cpu);
        for activation in activations {
            for loss in losses {
                // Narrower than `tiny`: 16 models are built and stepped.
                let decoder = DecoderConfig::ResidualMlp { n_layers: 1, d_hidden: 16 };
                let config = ModelConfig {
                    d_model: 16,
                    n_blocks: 1,
                    n_heads: 2,
                    decoder,
                    activation,
                    loss,
                    ..ModelConfig::tiny()
                };
                let (_rng, vs, model) = model(&config);
                let mut opt = nn::AdamW::default().build(&vs, 1e-3).unwrap();
                // Evaluation mode on both sides so the comparison is not blurred by drop path.
                let (before, _, _) = model.forward(&b, false);
                opt.backward_step(&before);
                let (after, _, _) = tch::no_grad(|| model.forward(&b, false));
                let (before, after) = (scalar(&before), scalar(&after));
                assert!(after < before, "{activation:?} × {loss:?}: {before} → {after}");
            }
        }
    }

    #[test]
    fn values_move_the_cls_from_the_start_under_every_value_encoding() {
        use crate::model::ValueEncoding;
        for value_encoding in [ValueEncoding::Concat, ValueEncoding::Mlp, ValueEncoding::PerGene] {
            let (_rng, _vs, model) = model(&ModelConfig { value_encoding, ..ModelConfig::tiny() });
            let a = batch(2, 6);
            let mut b = a.clone();
            b.visible_values.iter_mut().for_each(|v| *v = 2.0 * *v + 1.0);
            let diff = max_abs_diff(&model.encode(&visible(&a), false), &model.encode(&visible(&b), false));
            // With ViT's 0.02 on both layers of the value MLP its encoding started ~10³ times
            // smaller than the gene embeddings and this difference was 0.003.
            assert!(diff > 0.05, "{value_encoding:?}: the same genes at other values moved the CLS by {diff}");
        }
    }

    #[test]
    fn the_cls_token_starts_at_its_configured_scale() {
        let cls = |config: &ModelConfig| {
            let (_rng, vs, _model) = model(config);
            let vars = vs.variables();
            let (_, t) = vars.iter().find(|(name, _)| name.ends_with("cls")).expect("a cls variable");
            t.std(false).double_value(&[])
        };
        // ViT's default, and exactly zero when asked (docs/experiments.md § 20).
        let vit = cls(&ModelConfig::tiny());
        assert!((0.01..0.04).contains(&vit), "std {vit}");
        assert_eq!(cls(&ModelConfig { cls_init_std: 0.0, ..ModelConfig::tiny() }), 0.0);
        let err = ModelConfig { cls_init_std: -1.0, ..ModelConfig::tiny() }.validate("x").unwrap_err().to_string();
        assert!(err.contains("cls_init_std"), "{err}");
        // Not written when default, so configs (and ablation cache keys) from before it are unchanged.
        assert!(!toml::to_string(&ModelConfig::tiny()).unwrap().contains("cls_init_std"));
        let zero = ModelConfig { cls_init_std: 0.0, ..ModelConfig::tiny() };
        assert_eq!(toml::from_str::<ModelConfig>(&toml::to_string(&zero).unwrap()).unwrap(), zero);
    }

    #[test]
    fn a_baseline_initialised_decoder_predicts_the_constants() {
        let (_rng, _vs, mut model) = model(&ModelConfig::tiny());
        let constants: Vec<f64> = (0..G).map(|g| 0.5 * g as f64).collect();
        model.init_decoder_bias(&constants).unwrap();
        let b = BatchTensors::from_batch(&batch(3, 5), Device::Cpu);
        let pred = tch::no_grad(|| model.decode(&model.encode(&b.visible, false), None));
        // The initial weights (std 0.02) move the logits a little around the bias.
        for row in 0..3 {
            let got = values(&pred.get(row));
            let worst = got.iter().zip(&constants).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(worst < 0.5, "row {row}: {got:?}");
        }
        assert!(model.init_decoder_bias(&constants[1..]).is_err());
    }

    #[test]
    fn rejects_an_invalid_config() {
        let vs = nn::VarStore::new(Device::Cpu);
        let config = ModelConfig { n_heads: 3, ..ModelConfig::tiny() };
        assert!(TxFm::new(&vs.root(), &config, G).is_err());
        assert!(TxFm::new(&vs.root(), &ModelConfig::tiny(), 0).is_err());
    }
}
