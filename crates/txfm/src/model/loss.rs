//! Reconstruction losses between predicted `x̂` and target `x` preprocessed values (`log1p` of
//! library-normalised counts), averaged over the genes the sample's dataset profiles. Genes a
//! dataset did not measure have no target: they never enter the loss.

use tch::Tensor;

use super::config::LossKind;

impl LossKind {
    /// Per-entry loss `[n, G]` for `pred`, `target: [n, G]`. `log_theta: [G]` is the per-gene log
    /// inverse dispersion, required by `NegativeBinomial` and ignored otherwise.
    ///
    /// Both count losses work on the shifted count `y = exp(x) = c + 1` with mean `μ = exp(x̂)`, as
    /// the paper's Poisson loss does: then `log μ = x̂` exactly, `μ ≥ 1` for every activation (no
    /// `log 0`), and the NB tends to that Poisson as `θ → ∞`.
    pub fn elementwise(self, pred: &Tensor, target: &Tensor, log_theta: Option<&Tensor>) -> Tensor {
        match self {
            LossKind::Poisson => pred.exp() - pred * target.exp(),
            LossKind::Mse => (pred - target).square(),
            LossKind::SmoothL1 => {
                let d = (pred - target).abs();
                let quadratic = d.square() * 0.5;
                let linear = &d - 0.5;
                quadratic.where_self(&d.lt(1.0), &linear)
            }
            LossKind::NegativeBinomial => {
                let log_theta = log_theta.expect("the negative-binomial loss needs the per-gene log θ");
                let theta = log_theta.exp();
                let y = target.exp();
                // log(θ + μ) with log μ = x̂, without forming μ.
                let log_theta_mu = log_theta.logaddexp(pred);
                // −log NB(y; μ, θ) = −[lgamma(y+θ) − lgamma(θ) − lgamma(y+1)
                //                      + θ·(log θ − log(θ+μ)) + y·(log μ − log(θ+μ))]
                theta.lgamma() + (&y + 1.0).lgamma()
                    - (&y + &theta).lgamma()
                    - &theta * (log_theta - &log_theta_mu)
                    - &y * (pred - &log_theta_mu)
            }
        }
    }

    /// The constant prediction `x̂` that minimises this loss over samples of a gene whose
    /// preprocessed values have mean `mean_x` and whose shifted counts `exp(x)` have mean
    /// `mean_exp_x`: the per-gene baseline a model must beat, and where its output starts.
    /// - Poisson and negative binomial: `ln(mean exp(x))`, the maximum-likelihood mean of the
    ///   shifted count (for a fixed θ too). Predicting the mean of `x` instead is far from it on
    ///   sparse data — a gene detected in 13% of cells at x ≈ 5 has mean x 0.65 but optimum 3.0.
    /// - MSE: the mean of `x`. SmoothL1: its optimum lies between the median and the mean; the
    ///   mean is used.
    pub fn optimal_constant(self, mean_x: f64, mean_exp_x: f64) -> f64 {
        match self {
            LossKind::Poisson | LossKind::NegativeBinomial => mean_exp_x.max(1.0).ln(),
            LossKind::Mse | LossKind::SmoothL1 => mean_x,
        }
    }
}

/// Mean of `values: [n, G]` over the entries where `mask: [n, G]` (bool) is true; a scalar.
/// Entries outside the mask are replaced, not multiplied, by zero so that even an infinite or NaN
/// value there cannot leak into the result.
pub fn masked_mean(values: &Tensor, mask: &Tensor) -> Tensor {
    let kept = values.where_self(mask, &values.zeros_like());
    kept.sum(kept.kind()) / mask.sum(kept.kind()).clamp_min(1.0)
}

/// The weighted mean `Σ w_g v_ng / Σ w_g` of `values: [n, G]` over the entries where `mask` is
/// true, with per-column weights `weights: [G]` (positive); a scalar, safe against non-finite
/// values outside the mask as [`masked_mean`] is.
pub fn weighted_masked_mean(values: &Tensor, mask: &Tensor, weights: &Tensor) -> Tensor {
    let zeros = values.zeros_like();
    let w = weights.to_kind(values.kind()).unsqueeze(0).expand_as(values);
    let kept = (values * &w).where_self(mask, &zeros);
    kept.sum(kept.kind()) / w.where_self(mask, &zeros).sum(kept.kind()).clamp_min(1e-30)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testutil::{assert_close, scalar};

    /// 2×3 predictions and targets; the mask drops (0, 2) and (1, 1). Expected values computed by
    /// hand (Python `math`, see each test).
    fn case(garbage: f32) -> (Tensor, Tensor, Tensor) {
        let pred = Tensor::from_slice(&[0.5f32, 1.0, garbage, 0.0, garbage, 1.5]).view([2, 3]);
        let target = Tensor::from_slice(&[0.0f32, 1.5, -garbage, 1.0, 2.0 * garbage, 0.3]).view([2, 3]);
        let mask = Tensor::from_slice(&[true, true, false, true, false, true]).view([2, 3]);
        (pred, target, mask)
    }

    fn loss(kind: LossKind, garbage: f32) -> f64 {
        let (pred, target, mask) = case(garbage);
        let log_theta = Tensor::from_slice(&[0.0f32, 2f32.ln(), 0.5f32.ln()]);
        scalar(&masked_mean(&kind.elementwise(&pred, &target, Some(&log_theta)), &mask))
    }

    #[test]
    fn losses_match_hand_computed_values_and_ignore_unprofiled_genes() {
        // Poisson: mean of e^x̂ − x̂·e^x over (0.5, 0), (1, 1.5), (0, 1), (1.5, 0.3).
        let poisson =
            ((0.5f64.exp() - 0.5) + (1f64.exp() - 1.5f64.exp()) + 1.0 + (1.5f64.exp() - 1.5 * 0.3f64.exp())) / 4.0;
        assert_close(&[poisson], &[0.7105537219487922], 1e-12);
        // MSE: (0.25 + 0.25 + 1 + 1.44) / 4; smooth L1: (0.125 + 0.125 + 0.5 + 0.7) / 4.
        // NB with θ = (1, 2, 0.5) per gene: scipy-style NLL, computed with math.lgamma.
        let expect = [
            (LossKind::Poisson, 0.7105537219487922),
            (LossKind::Mse, 0.735),
            (LossKind::SmoothL1, 0.3625),
            (LossKind::NegativeBinomial, 2.1543491709506557),
        ];
        for (kind, value) in expect {
            for garbage in [2.0, -7.0, 40.0] {
                assert_close(&[loss(kind, garbage)], &[value], 1e-5);
            }
        }
    }

    #[test]
    fn negative_binomial_tends_to_the_papers_poisson() {
        // −log NB → e^x̂ − x̂·e^x + lgamma(e^x + 1) as θ → ∞ (f64: lgamma at θ = 1e7 needs it).
        let (pred, target) = (Tensor::from_slice(&[0.7f64]), Tensor::from_slice(&[1.2f64]));
        let nb = LossKind::NegativeBinomial.elementwise(&pred, &target, Some(&Tensor::from_slice(&[1e7f64.ln()])));
        let poisson = LossKind::Poisson.elementwise(&pred, &target, None) + (target.exp() + 1.0).lgamma();
        assert_close(&[scalar(&nb)], &[scalar(&poisson)], 1e-6);
    }

    #[test]
    fn the_optimal_constant_minimises_the_loss() {
        // A gene at x = 0 in 7 samples and x = 5 in 3.
        let xs: Vec<f64> = [0.0; 7].into_iter().chain([5.0; 3]).collect();
        let mean_x = xs.iter().sum::<f64>() / 10.0;
        let mean_exp = xs.iter().map(|x| x.exp()).sum::<f64>() / 10.0;
        let target = Tensor::from_slice(&xs);
        let loss_at = |kind: LossKind, c: f64| {
            let pred = Tensor::from_slice(&vec![c; 10]);
            scalar(&kind.elementwise(&pred, &target, Some(&Tensor::from_slice(&[30f64; 10]))).mean(tch::Kind::Double))
        };
        for kind in [LossKind::Poisson, LossKind::NegativeBinomial, LossKind::Mse] {
            let best = kind.optimal_constant(mean_x, mean_exp);
            for delta in [-0.3, -0.05, 0.05, 0.3] {
                assert!(loss_at(kind, best) < loss_at(kind, best + delta), "{kind:?}: {best} vs {}", best + delta);
            }
        }
        // The Poisson optimum is ln(mean exp(x)) ≈ 3.8 here, not the mean of x (1.5).
        assert!((LossKind::Poisson.optimal_constant(mean_x, mean_exp) - mean_exp.ln()).abs() < 1e-12);
        assert!(loss_at(LossKind::Poisson, mean_exp.ln()) < loss_at(LossKind::Poisson, mean_x) - 10.0);
    }

    #[test]
    fn masked_mean_of_an_empty_mask_is_zero() {
        let values = Tensor::from_slice(&[f32::INFINITY, 1.0]);
        let mask = Tensor::from_slice(&[false, false]);
        assert_eq!(scalar(&masked_mean(&values, &mask)), 0.0);
    }
}
