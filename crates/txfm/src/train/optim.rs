//! AdamW (Loshchilov & Hutter) as PyTorch's `torch.optim.AdamW` computes it, written on tensors so
//! its whole state (step count, first and second moments) can be saved and restored exactly; tch's
//! built-in optimisers cannot export theirs.
//!
//! One step at learning rate `lr` and decay `wd`, for each parameter `p` with gradient `g`:
//! `p ← p·(1 − lr·wd)` (decoupled decay, matrices only), `m ← β₁m + (1−β₁)g`,
//! `v ← β₂v + (1−β₂)g²`, `p ← p − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)`.
//!
//! Weight decay applies to matrices only — linear weights and the gene embeddings — and not to
//! biases, LayerNorm and LayerScale vectors, the negative-binomial dispersions, or the CLS token
//! (a `[1, 1, d]` vector): the common ViT practice (timm, MAE), since shrinking a gain or an offset
//! towards 0 does not regularise the function the way shrinking a weight matrix does.

use std::path::Path;

use tch::{nn, Device, Kind, Tensor};

use crate::{Error, Result};

/// One trainable parameter and its moments.
struct Slot {
    name: String,
    value: Tensor,
    /// First moment, same shape as `value`.
    m: Tensor,
    /// Second moment, same shape as `value`.
    v: Tensor,
    decay: bool,
}

/// AdamW over every trainable variable of a `VarStore`.
pub struct AdamW {
    slots: Vec<Slot>,
    betas: (f64, f64),
    eps: f64,
    /// Updates applied so far (`t` of the bias corrections after the next one is `steps + 1`).
    steps: u64,
}

/// Whether weight decay applies: tensors with at least two dimensions longer than 1 (matrices).
fn decays(t: &Tensor) -> bool {
    t.size().iter().filter(|&&s| s > 1).count() >= 2
}

impl AdamW {
    /// Zero moments for the trainable variables of `vs`, ordered by name so the state file and
    /// the update order do not depend on hash-map order.
    pub fn new(vs: &nn::VarStore, betas: (f64, f64), eps: f64) -> Self {
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = vars
            .into_iter()
            .map(|(name, value)| Slot { decay: decays(&value), m: value.zeros_like(), v: value.zeros_like(), name, value })
            .collect();
        AdamW { slots, betas, eps, steps: 0 }
    }

    /// Updates applied so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Names of the parameters that weight decay applies to.
    pub fn decayed(&self) -> Vec<&str> {
        self.slots.iter().filter(|s| s.decay).map(|s| s.name.as_str()).collect()
    }

    pub fn zero_grad(&mut self) {
        for s in &mut self.slots {
            s.value.zero_grad();
        }
    }

    /// Scales the gradients so their global L2 norm is at most `max_norm` (PyTorch's
    /// `clip_grad_norm_`); returns the norm before clipping as a 0-dim tensor, left on the device
    /// so clipping does not synchronise.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Tensor {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self.slots.iter().map(|s| s.value.grad()).filter(Tensor::defined).collect();
            let Some(first) = grads.first() else { return Tensor::from(0f32) };
            let sq: Vec<Tensor> = grads.iter().map(|g| g.to_kind(Kind::Float).square().sum(Kind::Float)).collect();
            let norm = Tensor::stack(&sq, 0).sum(Kind::Float).sqrt();
            let coef = (max_norm / (&norm + 1e-6)).clamp_max(1.0).to_device(first.device());
            for mut g in grads {
                let _ = g.g_mul_(&coef.to_kind(g.kind()));
            }
            norm
        })
    }

    /// One training update from `loss`: clear the gradients, backpropagate, clip to `grad_clip`
    /// (global norm) if set, then [`AdamW::step`]. The trainer and the speed benchmark both call
    /// this, so the benchmark times exactly the trainer's update.
    pub fn backward_step(&mut self, loss: &Tensor, grad_clip: Option<f64>, lr: f64, weight_decay: f64) {
        self.zero_grad();
        loss.backward();
        if let Some(max_norm) = grad_clip {
            let _norm = self.clip_grad_norm(max_norm);
        }
        self.step(lr, weight_decay);
    }

    /// Applies one update with learning rate `lr` and decoupled weight decay `weight_decay` to
    /// every parameter that has a gradient.
    pub fn step(&mut self, lr: f64, weight_decay: f64) {
        self.steps += 1;
        let (b1, b2) = self.betas;
        let t = self.steps as i32;
        let step_size = lr / (1.0 - b1.powi(t));
        let bias2_sqrt = (1.0 - b2.powi(t)).sqrt();
        tch::no_grad(|| {
            for s in &mut self.slots {
                let g = s.value.grad();
                if !g.defined() {
                    continue;
                }
                if s.decay && weight_decay != 0.0 {
                    let _ = s.value.g_mul_scalar_(1.0 - lr * weight_decay);
                }
                let _ = s.m.lerp_(&g, 1.0 - b1);
                let _ = s.v.g_mul_scalar_(b2);
                let _ = s.v.addcmul_(&(&g * (1.0 - b2)), &g);
                let denom = s.v.sqrt() / bias2_sqrt + self.eps;
                let _ = s.value.g_sub_(&(&s.m / denom * step_size));
            }
        });
    }

    /// Writes the step count and the moments (`m.<name>`, `v.<name>`) to a safetensors file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = vec![("steps".into(), Tensor::from(self.steps as i64))];
        for s in &self.slots {
            named.push((format!("m.{}", s.name), s.m.to_device(Device::Cpu)));
            named.push((format!("v.{}", s.name), s.v.to_device(Device::Cpu)));
        }
        Tensor::write_safetensors(&named, path).map_err(|e| Error::format(path, e.to_string()))
    }

    /// Restores a state written by [`save`](Self::save) for the same parameters.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let named: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(path).map_err(|e| Error::format(path, e.to_string()))?.into_iter().collect();
        let get = |name: &str, like: &Tensor| -> Result<Tensor> {
            let t = named.get(name).ok_or_else(|| Error::format(path, format!("no tensor '{name}'")))?;
            if t.size() != like.size() {
                return Err(Error::format(path, format!("'{name}' has shape {:?}, the model {:?}", t.size(), like.size())));
            }
            Ok(t.to_device(like.device()).to_kind(like.kind()))
        };
        let steps = named.get("steps").ok_or_else(|| Error::format(path, "no tensor 'steps'"))?;
        self.steps = steps.int64_value(&[]) as u64;
        for s in &mut self.slots {
            s.m = get(&format!("m.{}", s.name), &s.value)?;
            s.v = get(&format!("v.{}", s.name), &s.value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A var store with a 2-element vector `b` and a 2×2 matrix `w`, with gradients set by hand.
    fn store(grad_b: [f32; 2], grad_w: [f32; 4]) -> (nn::VarStore, Tensor, Tensor) {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let b = root.var_copy("b", &Tensor::from_slice(&[1.0f32, -2.0]));
        let w = root.var_copy("w", &Tensor::from_slice(&[0.5f32, -0.5, 2.0, 4.0]).view([2, 2]));
        let loss = (&b * Tensor::from_slice(&grad_b)).sum(Kind::Float)
            + (&w * Tensor::from_slice(&grad_w).view([2, 2])).sum(Kind::Float);
        loss.backward();
        (vs, b, w)
    }

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::try_from(t.to_kind(Kind::Double).reshape([-1])).unwrap()
    }

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    /// PyTorch's AdamW for one parameter after `t` steps of gradient `g` (constant), from `p`.
    fn reference(mut p: f64, g: f64, t: i32, lr: f64, wd: f64, (b1, b2): (f64, f64), eps: f64) -> f64 {
        let (mut m, mut v) = (0.0, 0.0);
        for k in 1..=t {
            p *= 1.0 - lr * wd;
            m = b1 * m + (1.0 - b1) * g;
            v = b2 * v + (1.0 - b2) * g * g;
            let denom = (v.sqrt() / (1.0 - b2.powi(k)).sqrt()) + eps;
            p -= lr / (1.0 - b1.powi(k)) * m / denom;
        }
        p
    }

    #[test]
    fn one_step_matches_the_pytorch_formula_and_decays_matrices_only() {
        let (vs, b, w) = store([0.5, -3.0], [1.0, 0.0, -0.25, 2.0]);
        let mut opt = AdamW::new(&vs, (0.9, 0.999), 1e-6);
        assert_eq!(opt.decayed(), vec!["w"]);
        let (lr, wd) = (0.1, 0.5);
        opt.step(lr, wd);
        // Step 1: m̂ = g, v̂ = g², so p ← p(1 − lr·wd) − lr·g/(|g| + ε) on matrices.
        let expect_b = [1.0 - 0.1 * 0.5 / (0.5 + 1e-6), -2.0 + 0.1 * 3.0 / (3.0 + 1e-6)];
        assert!(close(&values(&b), &expect_b, 1e-6), "{:?} vs {expect_b:?}", values(&b));
        let ref_w: Vec<f64> = [(0.5, 1.0), (-0.5, 0.0), (2.0, -0.25), (4.0, 2.0)]
            .iter()
            .map(|&(p, g)| reference(p, g, 1, lr, wd, (0.9, 0.999), 1e-6))
            .collect();
        assert!(close(&values(&w), &ref_w, 1e-6), "{:?} vs {ref_w:?}", values(&w));
        assert!((values(&w)[1] + 0.5 * 0.95).abs() < 1e-7, "zero gradient: decay only");
    }

    #[test]
    fn several_steps_follow_the_reference_and_the_state_round_trips() {
        let (vs, b, _w) = store([0.5, -3.0], [1.0, 0.0, -0.25, 2.0]);
        let mut opt = AdamW::new(&vs, (0.8, 0.99), 1e-8);
        for _ in 0..3 {
            opt.step(0.01, 0.0);
        }
        let expect: Vec<f64> = [(1.0, 0.5), (-2.0, -3.0)].iter().map(|&(p, g)| reference(p, g, 3, 0.01, 0.0, (0.8, 0.99), 1e-8)).collect();
        assert!(close(&values(&b), &expect, 1e-6), "{:?} vs {expect:?}", values(&b));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optimizer.safetensors");
        opt.save(&path).unwrap();
        let (vs2, _, _) = store([0.5, -3.0], [1.0, 0.0, -0.25, 2.0]);
        let mut restored = AdamW::new(&vs2, (0.8, 0.99), 1e-8);
        restored.load(&path).unwrap();
        assert_eq!(restored.steps(), 3);
        for (a, b) in opt.slots.iter().zip(&restored.slots) {
            assert!(a.m.equal(&b.m) && a.v.equal(&b.v), "{}", a.name);
        }
    }

    #[test]
    fn clipping_scales_the_global_norm() {
        let (vs, b, w) = store([3.0, 0.0], [0.0, 4.0, 0.0, 0.0]);
        let mut opt = AdamW::new(&vs, (0.9, 0.999), 1e-6);
        let norm = opt.clip_grad_norm(1.0);
        assert!((norm.double_value(&[]) - 5.0).abs() < 1e-6);
        assert!(close(&values(&b.grad()), &[0.6, 0.0], 1e-5));
        assert!(close(&values(&w.grad()), &[0.0, 0.8, 0.0, 0.0], 1e-5));
    }
}
