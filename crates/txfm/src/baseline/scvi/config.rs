//! scVI's settings, with scvi-tools 1.4.2's defaults and the presets the papers used.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The count distribution of the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Likelihood {
    /// Zero-inflated negative binomial (scvi-tools' default).
    Zinb,
    Nb,
    Poisson,
}

impl std::str::FromStr for Likelihood {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "zinb" => Ok(Likelihood::Zinb),
            "nb" => Ok(Likelihood::Nb),
            "poisson" => Ok(Likelihood::Poisson),
            _ => Err(Error::Invalid(format!("likelihood '{s}': expected zinb, nb or poisson"))),
        }
    }
}

/// The optimiser: scvi-tools' `Adam` (L2 weight decay added to the gradient) or `AdamW`
/// (decoupled), as its `TrainingPlan(optimizer=...)` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    Adam,
    AdamW,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScviConfig {
    pub n_hidden: usize,
    pub n_latent: usize,
    pub n_layers: usize,
    /// Dropout of the encoder's hidden layers (the decoder has none, as in scvi-tools).
    pub dropout_rate: f64,
    pub likelihood: Likelihood,
    pub optimizer: OptimizerKind,
    pub lr: f64,
    pub weight_decay: f64,
    pub eps: f64,
    pub batch_size: usize,
    /// `None`: scvi-tools' rule, `min(round(20000 / n_cells · 400), 400)`.
    pub max_epochs: Option<usize>,
    /// The KL term's weight rises linearly from 0 to 1 over this many epochs.
    pub n_epochs_kl_warmup: usize,
    /// Share of the cells trained on; the rest is the validation set.
    pub train_size: f64,
    /// Restrict to this many highly variable genes (Seurat flavour, as `txfm baseline pca`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_top_genes: Option<usize>,
    pub seed: u64,
    /// Rows shuffled together: each epoch streams the input once and shuffles this many rows at a
    /// time, so memory is bounded whatever the number of cells (inputs this small or smaller are
    /// shuffled whole, as scvi-tools does).
    pub shuffle_rows: usize,
}

impl Default for ScviConfig {
    /// scvi-tools 1.4.2's `SCVI()` and `.train()` defaults.
    fn default() -> Self {
        ScviConfig {
            n_hidden: 128,
            n_latent: 10,
            n_layers: 1,
            dropout_rate: 0.1,
            likelihood: Likelihood::Zinb,
            optimizer: OptimizerKind::Adam,
            lr: 1e-3,
            weight_decay: 1e-6,
            eps: 0.01,
            batch_size: 128,
            max_epochs: None,
            n_epochs_kl_warmup: 400,
            train_size: 0.9,
            n_top_genes: None,
            seed: 0,
            shuffle_rows: 65_536,
        }
    }
}

impl ScviConfig {
    /// `default` (scvi-tools'), `txeval` (Tx-Evaluation's: 256 latent, 512 hidden, 8,000 HVGs) or
    /// `txfm` (the TxFM paper's zero-shot scVI: 768 latent, 1,024 hidden, AdamW at 5e-4).
    pub fn preset(name: &str) -> Result<Self> {
        let d = ScviConfig::default();
        match name {
            "default" => Ok(d),
            "txeval" => Ok(ScviConfig { n_latent: 256, n_hidden: 512, n_top_genes: Some(8000), ..d }),
            "txfm" => Ok(ScviConfig { n_latent: 768, n_hidden: 1024, optimizer: OptimizerKind::AdamW, lr: 5e-4, ..d }),
            other => Err(Error::Invalid(format!("scVI preset '{other}': expected default, txeval or txfm"))),
        }
    }

    /// scvi-tools' `get_max_epochs_heuristic`.
    pub fn epochs_for(&self, n_cells: usize) -> usize {
        self.max_epochs.unwrap_or_else(|| ((20_000.0 / n_cells.max(1) as f64 * 400.0).round() as usize).clamp(1, 400))
    }

    /// The KL weight during epoch `epoch` (0-based).
    pub fn kl_weight(&self, epoch: usize) -> f64 {
        if self.n_epochs_kl_warmup == 0 { 1.0 } else { (epoch as f64 / self.n_epochs_kl_warmup as f64).min(1.0) }
    }

    pub fn validate(&self, origin: &str) -> Result<()> {
        let bad = |field: &str, m: String| Err(Error::config(origin, field, m));
        for (name, v) in [("n_hidden", self.n_hidden), ("n_latent", self.n_latent), ("n_layers", self.n_layers), ("batch_size", self.batch_size)] {
            if v == 0 {
                return bad(name, "must be positive".into());
            }
        }
        if self.batch_size < 2 {
            return bad("batch_size", "batch norm needs at least 2 cells per batch".into());
        }
        if !(0.0..1.0).contains(&self.dropout_rate) {
            return bad("dropout_rate", format!("{} is outside [0, 1)", self.dropout_rate));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", format!("{} is not a positive number", self.lr));
        }
        if !(self.train_size > 0.0 && self.train_size <= 1.0) {
            return bad("train_size", format!("{} is outside (0, 1]", self.train_size));
        }
        if self.max_epochs == Some(0) {
            return bad("max_epochs", "must be positive".into());
        }
        if self.shuffle_rows < self.batch_size {
            return bad("shuffle_rows", format!("{} is below the batch size {}", self.shuffle_rows, self.batch_size));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_epochs_and_kl_warmup_follow_scvi_tools() {
        let c = ScviConfig::default();
        assert_eq!(c.epochs_for(7_400), 400);
        assert_eq!(c.epochs_for(40_000), 200);
        assert_eq!(c.epochs_for(1_000_000), 8);
        assert_eq!(c.kl_weight(0), 0.0);
        assert_eq!(c.kl_weight(100), 0.25);
        assert_eq!(c.kl_weight(500), 1.0);
        for p in ["default", "txeval", "txfm"] {
            ScviConfig::preset(p).unwrap().validate(p).unwrap();
        }
        assert!(ScviConfig::preset("big").is_err());
    }
}
