//! The perturbation benchmark (`txfm bench perturb`), after Bendidi et al. 2024.

pub mod data;
pub mod input;
pub mod guides;
pub mod postprocess;
pub mod split;
pub mod consistency;
pub mod bmdb;
pub mod ilisi;
pub mod probe;
pub mod knn;
pub mod reconstruct;
pub mod prepare;
pub mod run;
pub mod report;
pub mod plots;
pub mod workflow;
