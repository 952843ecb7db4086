//! The significance tests of the paper's ablation tables, for comparing a row against the default
//! row: a two-proportion z-test (the counts of consistent perturbations, "perts"), Student's
//! two-sample and one-sample t-tests (recalls over random nulls, "enc" and "dec"), and the
//! Benjamini–Hochberg adjustment across the comparisons of one metric. Two-sided p-values
//! throughout; each function states the scipy call it equals (checked in `tests/stats.rs`).

/// Two-sided p-value of a two-proportion z-test with the pooled variance: `x1` successes of `n1`
/// against `x2` of `n2` (statsmodels' `proportions_ztest`; `2·norm.sf(|z|)` in scipy terms).
/// `None` when a sample is empty; 1 when both proportions are 0 or both 1 (no variance).
pub fn two_proportion_z(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<(f64, f64)> {
    if n1 == 0 || n2 == 0 || x1 > n1 || x2 > n2 {
        return None;
    }
    let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let p = (x1 + x2) as f64 / (n1 + n2) as f64;
    let se = (p * (1.0 - p) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    if se == 0.0 {
        return Some((0.0, 1.0));
    }
    let z = (p1 - p2) / se;
    Some((z, 2.0 * normal_sf(z.abs())))
}

/// Student's two-sample t-test with equal variances (`scipy.stats.ttest_ind(a, b)`): `(t, p)`.
/// `None` with fewer than 3 values in all or no variance in either sample.
pub fn ttest_ind(a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
    let (na, nb) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() || a.len() + b.len() < 3 {
        return None;
    }
    let (ma, mb) = (mean(a), mean(b));
    let ss = |x: &[f64], m: f64| x.iter().map(|v| (v - m) * (v - m)).sum::<f64>();
    let df = na + nb - 2.0;
    let pooled = (ss(a, ma) + ss(b, mb)) / df;
    let se = (pooled * (1.0 / na + 1.0 / nb)).sqrt();
    if !(se > 0.0) {
        return None;
    }
    let t = (ma - mb) / se;
    Some((t, 2.0 * student_t_sf(t.abs(), df)))
}

/// One-sample t-test of `x`'s mean against `mu` (`scipy.stats.ttest_1samp(x, mu)`): `(t, p)`.
/// `None` with fewer than two values or no variance.
pub fn ttest_1samp(x: &[f64], mu: f64) -> Option<(f64, f64)> {
    let n = x.len() as f64;
    if x.len() < 2 {
        return None;
    }
    let m = mean(x);
    let var = x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0);
    let se = (var / n).sqrt();
    if !(se > 0.0) {
        return None;
    }
    let t = (m - mu) / se;
    Some((t, 2.0 * student_t_sf(t.abs(), n - 1.0)))
}

/// Benjamini–Hochberg adjusted p-values, in the input's order
/// (`scipy.stats.false_discovery_control(p, method="bh")`): `p_(i) · m / i` over the sorted
/// p-values, made monotone from the largest down, capped at 1.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m as f64 / (rank + 1) as f64);
        out[i] = running.min(1.0);
    }
    out
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

/// Upper tail of the standard normal, `P(Z > z)`, from the complementary error function.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Upper tail of Student's t with `df` degrees of freedom, `P(T > t)` for `t ≥ 0`:
/// `½ I_{df/(df+t²)}(df/2, ½)` (the regularised incomplete beta).
pub fn student_t_sf(t: f64, df: f64) -> f64 {
    if t < 0.0 {
        return 1.0 - student_t_sf(-t, df);
    }
    0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
}

/// `erfc(x)` to about 1e-15 relative: the continued fraction of the upper incomplete gamma
/// function at a = ½ for large x, its series for small x (`erfc(x) = Q(½, x²)`).
fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    upper_gamma_q(0.5, x * x)
}

/// The regularised upper incomplete gamma `Q(a, x)`: `1 − P` from P's power series below
/// `x < a + 1`, else Legendre's continued fraction for Q itself (modified Lentz), so far tails keep
/// their relative precision (`erfc(25)` ≈ 1e-273).
fn upper_gamma_q(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let log_prefactor = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..500 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-17 {
                break;
            }
        }
        return 1.0 - sum * log_prefactor.exp();
    }
    let tiny = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / tiny;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..500 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < tiny {
            d = tiny;
        }
        c = b + an / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let delta = d * c;
        h *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h * log_prefactor.exp()
}

/// The regularised incomplete beta `I_x(a, b)` by its continued fraction (modified Lentz), using
/// the symmetry `I_x(a, b) = 1 − I_{1−x}(b, a)` where the fraction converges slowly.
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    if x > (a + 1.0) / (a + b + 2.0) {
        return 1.0 - incomplete_beta(b, a, 1.0 - x);
    }
    let log_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let tiny = 1e-300;
    let (mut c, mut d) = (1.0, 1.0 - (a + b) * x / (a + 1.0));
    if d.abs() < tiny {
        d = tiny;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..1000 {
        let m = m as f64;
        // Even step, then odd step, of the fraction's terms.
        for num in [
            m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0)),
        ] {
            d = 1.0 + num * d;
            if d.abs() < tiny {
                d = tiny;
            }
            c = 1.0 + num / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-16 {
            break;
        }
    }
    log_front.exp() * h / a
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, nine coefficients: about 1e-15 relative).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + G + 0.5;
    let series = C[1..].iter().enumerate().fold(C[0], |s, (i, &c)| s + c / (x + i as f64 + 1.0));
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_functions_at_known_values() {
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-13);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-13);
        assert!((normal_sf(0.0) - 0.5).abs() < 1e-15);
        assert!((normal_sf(1.959_963_984_540_054) - 0.025).abs() < 1e-12);
        // t with 1 degree of freedom is Cauchy: P(T > 1) = 1/4.
        assert!((student_t_sf(1.0, 1.0) - 0.25).abs() < 1e-12);
        assert!((student_t_sf(0.0, 7.0) - 0.5).abs() < 1e-15);
    }

    #[test]
    fn bh_is_monotone_and_capped() {
        // Sorted 0.01, 0.03, 0.04, 0.5 → 0.04, 0.06, 0.0533, 0.5, then monotone from the top.
        let adj = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.5]);
        let want = [0.04, 0.16 / 3.0, 0.16 / 3.0, 0.5];
        for (a, w) in adj.iter().zip(want) {
            assert!((a - w).abs() < 1e-15, "{adj:?}");
        }
        assert_eq!(benjamini_hochberg(&[0.9, 0.8]), vec![0.9, 0.9]);
    }
}
