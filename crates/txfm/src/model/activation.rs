//! The count activation `φ`: decoder logits → predicted preprocessed values `x̂ = log1p(ĉ)`, with
//! `ĉ` the predicted count normalised to a library of `L`. Every variant predicts `x̂ ≥ 0`.

use tch::{Kind, Tensor};

use super::config::CountActivation;

impl CountActivation {
    /// Applies `φ` to `z: [n, G]` for a library size `L`. `profiled: [n, G]` bool (true where the
    /// sample's dataset profiles the gene) only matters for `Softmax`, whose proportions are taken
    /// over the profiled genes — the ones the library was normalised over — and which predicts 0
    /// elsewhere; `None` means every gene is profiled.
    pub fn apply(self, z: &Tensor, library_size: f64, profiled: Option<&Tensor>) -> Tensor {
        let max_value = library_size.ln_1p();
        match self {
            // z / (4e) keeps tanh out of saturation over the logits' working range.
            CountActivation::RectifiedTanh => (z / (4.0 * std::f64::consts::E)).tanh().relu() * max_value,
            CountActivation::Relu => z.relu(),
            CountActivation::ClampedRelu => z.clamp(0.0, max_value),
            CountActivation::Softmax => {
                let z = match profiled {
                    Some(mask) => z.masked_fill(&mask.logical_not(), f64::NEG_INFINITY),
                    None => z.shallow_clone(),
                };
                // log1p(L·p) = log1p(L·exp(log p)); computed from log_softmax so tiny proportions
                // keep their precision.
                (z.log_softmax(-1, Kind::Float).exp() * library_size).log1p()
            }
        }
    }

    /// A logit `z` with `φ(z) = x` for a target value `x ≥ 0`, within what `φ` can reach (a value
    /// beyond a bounded activation's ceiling gets the ceiling's logit). For `Softmax`, a logit
    /// whose share `exp(z)` is the normalised count `expm1(x) / L`: a set of such logits, one
    /// per gene, predicts those values when their shares sum to 1.
    pub fn inverse(self, x: f64, library_size: f64) -> f64 {
        let max_value = library_size.ln_1p();
        let x = x.max(0.0);
        match self {
            // atanh(1) is infinite: stop just short of the ceiling.
            CountActivation::RectifiedTanh => 4.0 * std::f64::consts::E * (x / max_value).min(1.0 - 1e-6).atanh(),
            CountActivation::Relu => x,
            CountActivation::ClampedRelu => x.min(max_value),
            CountActivation::Softmax => (x.exp_m1() / library_size).max(1e-30).ln(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testutil::{assert_close, values};

    const L: f64 = 1e5;

    #[test]
    fn rectified_tanh_is_zero_at_zero_and_bounded_by_log_l_plus_one() {
        let z = Tensor::from_slice(&[-5.0f32, 0.0, 1.0, 4.0 * std::f32::consts::E, 1e3]);
        let x = values(&CountActivation::RectifiedTanh.apply(&z, L, None));
        let max = L.ln_1p();
        // φ(4e) = log(L+1)·tanh(1).
        assert_close(&x, &[0.0, 0.0, max * (1.0 / (4.0 * std::f64::consts::E)).tanh(), max * 1f64.tanh(), max], 1e-5);
        let z = Tensor::linspace(-20.0, 200.0, 500, (Kind::Float, tch::Device::Cpu));
        let x = values(&CountActivation::RectifiedTanh.apply(&z, L, None));
        assert!(x.windows(2).all(|p| p[1] >= p[0]), "not monotone");
        assert!(x.iter().all(|&v| (0.0..=max + 1e-5).contains(&v)));
    }

    #[test]
    fn inverse_maps_back_to_the_value() {
        let xs = [0.0, 0.7, 3.0, 9.5];
        for activation in [CountActivation::RectifiedTanh, CountActivation::Relu, CountActivation::ClampedRelu] {
            let z = Tensor::from_slice(&xs.map(|x| activation.inverse(x, L) as f32));
            assert_close(&values(&activation.apply(&z, L, None)), &xs, 1e-4);
        }
        // Softmax: shares expm1(x) / L that sum to 1 give back x.
        let (l, shares) = (10.0, [0.1f64, 0.3, 0.6]);
        let xs = shares.map(|p| (l * p).ln_1p());
        let z = Tensor::from_slice(&xs.map(|x| CountActivation::Softmax.inverse(x, l) as f32));
        assert_close(&values(&CountActivation::Softmax.apply(&z, l, None)), &xs, 1e-5);
        // Past the ceiling of a bounded activation: the ceiling, finite.
        let z = CountActivation::RectifiedTanh.inverse(20.0, L);
        assert!(z.is_finite() && z > 0.0);
    }

    #[test]
    fn relu_and_clamped_relu() {
        let z = Tensor::from_slice(&[-2.0f32, 0.5, 30.0]);
        assert_close(&values(&CountActivation::Relu.apply(&z, L, None)), &[0.0, 0.5, 30.0], 1e-6);
        assert_close(&values(&CountActivation::ClampedRelu.apply(&z, L, None)), &[0.0, 0.5, L.ln_1p()], 1e-5);
    }

    #[test]
    fn softmax_predicts_log1p_of_library_share_over_profiled_genes() {
        // Row 0: all three profiled, logits ln(1), ln(3), ln(6) → shares 0.1, 0.3, 0.6.
        // Row 1: gene 1 unprofiled → shares over genes 0 and 2 only: 1/7, 6/7, and 0 at gene 1.
        let z = Tensor::from_slice(&[0.0f32, 3f32.ln(), 6f32.ln(), 0.0, 3f32.ln(), 6f32.ln()]).view([2, 3]);
        let mask = Tensor::from_slice(&[true, true, true, true, false, true]).view([2, 3]);
        let x = values(&CountActivation::Softmax.apply(&z, 10.0, Some(&mask)));
        let expect = [1f64.ln_1p(), 3f64.ln_1p(), 6f64.ln_1p(), (10.0f64 / 7.0).ln_1p(), 0.0, (60.0f64 / 7.0).ln_1p()];
        assert_close(&x, &expect, 1e-5);
        // The predicted normalised counts add up to the library.
        let total: f64 = x[..3].iter().map(|v| v.exp_m1()).sum();
        assert!((total - 10.0).abs() < 1e-4);
    }
}
