//! What the encoder's output tokens become as a sample's embedding.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The sample embedding read from the encoder's final (LayerNormed) tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readout {
    /// The CLS token, `[n, d]`: the paper's sample embedding, and what the decoder is trained on.
    #[default]
    Cls,
    /// `[CLS ; mean over the visible genes' tokens]`, `[n, 2d]`. The decoder never sees the token
    /// mean, but the tokens carry what the CLS attended away from: with the weights fixed it
    /// gained 2.6 ± 0.9 points of the benchmark average on every seed of the CPU recipe, while
    /// the token mean alone lost 7.7 (docs/experiments.md § 14). Costs nothing at training time.
    ClsMean,
}

impl Readout {
    /// Embedding width for a model of width `d`.
    pub fn width(self, d: usize) -> usize {
        match self {
            Readout::Cls => d,
            Readout::ClsMean => 2 * d,
        }
    }
}

impl fmt::Display for Readout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Readout::Cls => "cls",
            Readout::ClsMean => "cls_mean",
        })
    }
}

impl FromStr for Readout {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cls" => Ok(Readout::Cls),
            "cls_mean" => Ok(Readout::ClsMean),
            _ => Err(Error::Invalid(format!("unknown read-out {s:?}; expected cls or cls_mean"))),
        }
    }
}
