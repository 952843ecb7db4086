//! The learning-rate schedule: one cycle of a linear warm-up from 0 to the peak, then a cosine
//! back to 0. A pure function of the step, so a resumed run needs only the step to continue it.

/// One-cycle cosine schedule over `total` steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OneCycle {
    pub peak: f64,
    pub total: u64,
    /// Steps of linear warm-up (at least 1, so step 0 starts at 0).
    pub warmup: u64,
}

impl OneCycle {
    /// A schedule whose warm-up is `warmup_fraction` of `total` steps.
    pub fn new(peak: f64, total: u64, warmup_fraction: f64) -> Self {
        let warmup = ((warmup_fraction * total as f64).round() as u64).clamp(1, total.max(1));
        OneCycle { peak, total, warmup }
    }

    /// The learning rate of step `step` (0-based): `peak · step / warmup` during the warm-up, then
    /// `peak · ½(1 + cos(π · progress))` with progress going from 0 at the end of the warm-up to 1
    /// at `total`.
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.peak * step as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        self.peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_for_ten_percent_then_decays_to_zero() {
        let s = OneCycle::new(1e-3, 1000, 0.1);
        assert_eq!(s.warmup, 100);
        assert_eq!(s.lr(0), 0.0);
        assert!((s.lr(50) - 5e-4).abs() < 1e-15, "half-way through the warm-up");
        assert_eq!(s.lr(100), 1e-3, "the peak at 10%");
        assert!((s.lr(550) - 5e-4).abs() < 1e-12, "the cosine's midpoint");
        assert!(s.lr(999) > 0.0 && s.lr(999) < 1e-7, "{}", s.lr(999));
        assert!(s.lr(1000).abs() < 1e-18);
        assert!((1..1000).all(|t| if t <= 100 { s.lr(t) > s.lr(t - 1) } else { s.lr(t) < s.lr(t - 1) }));
    }

    #[test]
    fn short_runs_still_warm_up_for_a_step() {
        let s = OneCycle::new(1.0, 3, 0.1);
        assert_eq!(s.warmup, 1);
        assert_eq!((s.lr(0), s.lr(1)), (0.0, 1.0));
    }
}
