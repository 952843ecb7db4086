//! Log-likelihoods of counts under scVI's decoder distributions, written as scvi-tools writes them
//! (`scvi.distributions`: `log_zinb_positive`, `log_nb_positive`, and torch's Poisson), with the
//! same `eps` guards. All tensors `[n, G]`; the result is per entry.

use tch::Tensor;

/// scvi-tools' numerical guard inside the logarithms.
const EPS: f64 = 1e-8;

/// log NB(x; mean `mu`, inverse dispersion `theta`).
pub fn log_nb(x: &Tensor, mu: &Tensor, theta: &Tensor) -> Tensor {
    let log_theta_mu_eps = (theta + mu + EPS).log();
    theta * ((theta + EPS).log() - &log_theta_mu_eps) + x * ((mu + EPS).log() - &log_theta_mu_eps) + (x + theta).lgamma() - theta.lgamma()
        - (x + 1.0).lgamma()
}

/// log ZINB(x; `mu`, `theta`, dropout logits `pi`).
pub fn log_zinb(x: &Tensor, mu: &Tensor, theta: &Tensor, pi: &Tensor) -> Tensor {
    let softplus_pi = (-pi).softplus();
    let log_theta_eps = (theta + EPS).log();
    let log_theta_mu_eps = (theta + mu + EPS).log();
    let pi_theta_log = -pi + theta * (&log_theta_eps - &log_theta_mu_eps);
    let case_zero = pi_theta_log.softplus() - &softplus_pi;
    let case_non_zero =
        -&softplus_pi + &pi_theta_log + x * ((mu + EPS).log() - &log_theta_mu_eps) + (x + theta).lgamma() - theta.lgamma() - (x + 1.0).lgamma();
    let is_zero = x.lt(EPS).to_kind(x.kind());
    let is_non_zero = x.gt(EPS).to_kind(x.kind());
    is_zero * case_zero + is_non_zero * case_non_zero
}

/// log Poisson(x; `rate`).
pub fn log_poisson(x: &Tensor, rate: &Tensor) -> Tensor {
    x * rate.log() - rate - (x + 1.0).lgamma()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn t(v: &[f64]) -> Tensor {
        Tensor::from_slice(v).to_kind(Kind::Double)
    }

    /// Against closed forms: NB(0; μ, θ) = (θ/(θ+μ))^θ; Poisson(2; 3) = 9e⁻³/2; a ZINB with
    /// dropout probability σ(π) puts σ(π) + (1−σ(π))·NB(0) on zero and (1−σ(π))·NB(x) elsewhere.
    #[test]
    fn log_likelihoods_match_their_closed_forms() {
        let (mu, theta) = (2.5f64, 0.7f64);
        let nb0 = (theta / (theta + mu)).powf(theta);
        // NB(3) = Γ(3+θ)/(Γ(θ)·3!) · (θ/(θ+μ))^θ · (μ/(θ+μ))^3.
        let g = |x: f64| libm_lgamma(x);
        let nb3 = (g(3.0 + theta) - g(theta) - g(4.0)).exp() * nb0 * (mu / (theta + mu)).powi(3);
        let x = t(&[0.0, 3.0]);
        let (m, th) = (t(&[mu, mu]), t(&[theta, theta]));
        let nb = log_nb(&x, &m, &th);
        assert!((nb.double_value(&[0]) - nb0.ln()).abs() < 1e-7);
        assert!((nb.double_value(&[1]) - nb3.ln()).abs() < 1e-7);
        let pi_logit = 0.4f64;
        let p = 1.0 / (1.0 + (-pi_logit).exp());
        let z = log_zinb(&x, &m, &th, &t(&[pi_logit, pi_logit]));
        assert!((z.double_value(&[0]) - (p + (1.0 - p) * nb0).ln()).abs() < 1e-7);
        assert!((z.double_value(&[1]) - ((1.0 - p) * nb3).ln()).abs() < 1e-7);
        let po = log_poisson(&t(&[2.0]), &t(&[3.0]));
        assert!((po.double_value(&[0]) - (9.0 * (-3.0f64).exp() / 2.0).ln()).abs() < 1e-12);
    }

    fn libm_lgamma(x: f64) -> f64 {
        Tensor::from_slice(&[x]).lgamma().double_value(&[0])
    }
}
