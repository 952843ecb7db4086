//! Evaluation: the perturbation benchmark of Bendidi et al. 2024 over any embedding, and the
//! recall of known gene-gene relationships from model parameters.

pub mod annotations;
pub mod recall;
pub mod perturb;
pub mod genes;
pub mod serde_nan;
pub mod stats;
