//! What a baseline fit tells its progress display. Its passes over the data are not known up
//! front (the randomized SVD stops when its residual test holds, the exact one takes two), so
//! each stage announces what it expects and the display re-sizes to it: a bar sized for the most
//! passes allowed would stop at a third, with an ETA many times the real one.

use indicatif::ProgressBar;

#[derive(Debug, Clone, PartialEq)]
pub enum FitProgress {
    /// A block of `rows` more rows was processed.
    Rows(usize),
    /// A stage starts or re-estimates: about `passes` more passes over all rows are left in it.
    Stage { passes: usize, name: String },
}

impl FitProgress {
    /// Applies the event to a bar counting rows of `n_obs`-row passes: a stage sizes the bar to
    /// what is done plus its passes left, and names it in the bar's message.
    pub fn apply(&self, bar: &ProgressBar, n_obs: usize) {
        match self {
            FitProgress::Rows(rows) => bar.inc(*rows as u64),
            FitProgress::Stage { passes, name } => {
                bar.set_length(bar.position() + (*passes * n_obs) as u64);
                bar.set_message(name.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_resizes_the_bar_to_what_is_done_plus_its_passes() {
        let bar = ProgressBar::hidden();
        bar.set_length(1_000_000);
        let n_obs = 100;
        FitProgress::Stage { passes: 1, name: "statistics".into() }.apply(&bar, n_obs);
        assert_eq!(bar.length(), Some(100));
        FitProgress::Rows(60).apply(&bar, n_obs);
        FitProgress::Rows(40).apply(&bar, n_obs);
        FitProgress::Stage { passes: 3, name: "SVD".into() }.apply(&bar, n_obs);
        assert_eq!((bar.position(), bar.length()), (100, Some(400)));
        assert_eq!(bar.message(), "SVD");
        FitProgress::Rows(100).apply(&bar, n_obs);
        // A re-estimate downwards shortens the bar from where it is.
        FitProgress::Stage { passes: 1, name: "SVD, pass 2".into() }.apply(&bar, n_obs);
        assert_eq!((bar.position(), bar.length()), (200, Some(300)));
    }
}
