//! The model's gene vocabulary and its mapping onto a corpus's. A model's gene-indexed weights
//! (gene embeddings, decoder rows, dispersions) follow its [`Vocabulary`]; the loader's batches
//! follow the corpus's. They coincide for a run trained from scratch; a fine-tuned model keeps its
//! pretrained order and appends the target corpus's new genes, so its batches go through a
//! [`VocabMap`] (corpus index → model index, by gene id) before they become tensors.

use std::collections::{HashMap, HashSet};

use super::batch::Batch;
use crate::corpus::Corpus;
use crate::{Error, Result};

/// Genes named in a mismatch error.
pub(super) const GENES_SHOWN: usize = 5;

/// Gene ids and symbols in weight order. `[G]` each.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocabulary {
    pub names: Vec<String>,
    pub symbols: Vec<String>,
}

/// How a target corpus's genes relate to a pretrained vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VocabOverlap {
    /// Corpus genes the pretrained vocabulary holds.
    pub in_vocab: usize,
    /// Corpus genes it lacks, appended by [`Vocabulary::extend`].
    pub new: usize,
    /// Pretrained genes the corpus does not profile.
    pub unprofiled: usize,
}

impl Vocabulary {
    pub fn of_corpus(corpus: &Corpus) -> Self {
        Vocabulary { names: corpus.var_names.clone(), symbols: corpus.var_symbols.clone() }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// This vocabulary followed by the genes of `corpus` it lacks, in corpus order: every gene
    /// keeps its index, so pretrained weights stay valid for the first `self.len()` rows.
    pub fn extend(&self, corpus: &Corpus) -> (Vocabulary, VocabOverlap) {
        let known: HashSet<&str> = self.names.iter().map(String::as_str).collect();
        let mut extended = self.clone();
        for (name, symbol) in corpus.var_names.iter().zip(&corpus.var_symbols) {
            if !known.contains(name.as_str()) {
                extended.names.push(name.clone());
                extended.symbols.push(symbol.clone());
            }
        }
        let new = extended.len() - self.len();
        let profiled: HashSet<&str> = corpus.var_names.iter().map(String::as_str).collect();
        let unprofiled = self.names.iter().filter(|g| !profiled.contains(g.as_str())).count();
        (extended, VocabOverlap { in_vocab: corpus.n_vars() - new, new, unprofiled })
    }
}

/// Corpus vocabulary index → model vocabulary index.
#[derive(Debug, Clone, PartialEq)]
pub struct VocabMap {
    /// Model index of each corpus gene. `[corpus G]`
    to_model: Vec<i64>,
    /// Model vocabulary size.
    n_model: usize,
}

impl VocabMap {
    /// The map of a model trained on the corpus itself.
    pub fn identity(n_genes: usize) -> Self {
        VocabMap { to_model: (0..n_genes as i64).collect(), n_model: n_genes }
    }

    /// Maps `corpus` into `model` by gene id; every corpus gene must be in the model's
    /// vocabulary (the error names the first missing ones). `origin` names the vocabulary.
    pub fn new(model: &Vocabulary, corpus: &Corpus, origin: &str) -> Result<Self> {
        let index: HashMap<&str, i64> = model.names.iter().enumerate().map(|(i, g)| (g.as_str(), i as i64)).collect();
        let to_model: Vec<Option<i64>> = corpus.var_names.iter().map(|g| index.get(g.as_str()).copied()).collect();
        let missing: Vec<&str> = corpus.var_names.iter().zip(&to_model).filter(|(_, m)| m.is_none()).map(|(g, _)| g.as_str()).collect();
        if !missing.is_empty() {
            let shown = missing.iter().take(GENES_SHOWN).copied().collect::<Vec<_>>().join(", ");
            return Err(Error::Invalid(format!(
                "{origin}: {} of the {} genes of corpus {} are not in the model's vocabulary, first: {shown}",
                missing.len(),
                corpus.n_vars(),
                corpus.dir.display()
            )));
        }
        Ok(VocabMap { to_model: to_model.into_iter().flatten().collect(), n_model: model.len() })
    }

    /// The model index of corpus gene `corpus_gene`.
    pub fn model_gene(&self, corpus_gene: u32) -> i64 {
        self.to_model[corpus_gene as usize]
    }

    /// True when batches pass through unchanged.
    pub fn is_identity(&self) -> bool {
        self.n_model == self.to_model.len() && self.to_model.iter().enumerate().all(|(i, &m)| m == i as i64)
    }

    /// `batch` in model indices: visible genes renumbered, target and mask columns moved to the
    /// model's `G`, with model genes the corpus lacks unprofiled (value 0, mask false).
    pub fn apply(&self, batch: Batch) -> Batch {
        if self.is_identity() {
            return batch;
        }
        let (n, g) = (batch.n, self.n_model);
        let mut target = vec![0.0; n * g];
        let mut target_mask = vec![false; n * g];
        for i in 0..n {
            let row = i * batch.g..(i + 1) * batch.g;
            for ((&m, &x), &p) in self.to_model.iter().zip(&batch.target[row.clone()]).zip(&batch.target_mask[row]) {
                target[i * g + m as usize] = x;
                target_mask[i * g + m as usize] = p;
            }
        }
        let visible_genes = batch.visible_genes.iter().map(|&c| self.to_model[c as usize]).collect();
        Batch { g, visible_genes, target, target_mask, ..batch }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(to_model: Vec<i64>, n_model: usize) -> VocabMap {
        VocabMap { to_model, n_model }
    }

    #[test]
    fn apply_moves_genes_and_target_columns_to_model_indices() {
        // Corpus genes c0, c1, c2 are model genes 3, 0, 1 of 4; model gene 2 is not profiled.
        let m = map(vec![3, 0, 1], 4);
        assert!(!m.is_identity());
        let b = Batch {
            n: 2,
            k: 2,
            g: 3,
            sample: vec![7, 8],
            library_size: vec![1e3, 2e3],
            visible_genes: vec![0, 2, 1, 0],
            visible_values: vec![1.0, 2.0, 3.0, 4.0],
            visible_pad: vec![false, false, false, true],
            target: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            target_mask: vec![true, false, true, true, true, false],
        };
        let out = m.apply(b.clone());
        assert_eq!(out.g, 4);
        assert_eq!(out.visible_genes, [3, 1, 0, 3]);
        assert_eq!(out.target, [2.0, 3.0, 0.0, 1.0, 5.0, 6.0, 0.0, 4.0]);
        assert_eq!(out.target_mask, [false, true, false, true, true, false, false, true]);
        assert_eq!((out.visible_values, out.visible_pad, out.sample), (b.visible_values.clone(), b.visible_pad.clone(), b.sample.clone()));
        let id = VocabMap::identity(3);
        assert!(id.is_identity());
        assert_eq!(id.apply(b.clone()), b);
    }
}
