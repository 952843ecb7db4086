//! The seeded train / test1 / test2 split of Tx-Evaluation (`data_split.py`,
//! `train_test1_test2_split`): shuffle the batches and the perturbations of the non-control cells,
//! give the first `floor(0.7·n)` of each to training, and
//! - `train` = training batches × training perturbations;
//! - `test1` = the other batches × training perturbations that occur in `train`;
//! - `test2` = the other batches × the other perturbations;
//!
//! then add to each split the controls of the batches its cells are in.
//!
//! Where the reference is silent: the training share of batches and of perturbations is clamped to
//! `1..=n-1` (so two batches split 1 / 1, as `int(2·0.7) = 1` does, and no split is left without
//! batches); shuffling uses ChaCha8 seeded with `seed`, so splits match across runs of txfm, not
//! numpy's.

use std::collections::HashSet;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::data::{PerturbData, Split};
use crate::{Error, Result};

/// Shares of the batches and of the perturbations that go to training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitConfig {
    pub train_batch_fraction: f64,
    pub train_pert_fraction: f64,
}

impl Default for SplitConfig {
    /// Tx-Evaluation's 0.7 / 0.7.
    fn default() -> Self {
        SplitConfig { train_batch_fraction: 0.7, train_pert_fraction: 0.7 }
    }
}

/// `floor(fraction · n)` clamped to `1..=n-1`.
fn n_train(n: usize, fraction: f64) -> usize {
    ((n as f64 * fraction).floor() as usize).clamp(1, n - 1)
}

/// Splits the cells of `data` (see the module docs). Errors if there are fewer than two batches or
/// two perturbations among the non-control cells, or a fraction is outside (0, 1).
pub fn split(data: &PerturbData, cfg: &SplitConfig, seed: u64) -> Result<Split> {
    for (name, f) in [("train_batch_fraction", cfg.train_batch_fraction), ("train_pert_fraction", cfg.train_pert_fraction)] {
        if !(f > 0.0 && f < 1.0) {
            return Err(Error::config("split", name, format!("must be in (0, 1), got {f}")));
        }
    }
    let treated: Vec<usize> = (0..data.n_obs).filter(|&i| !data.is_control(i)).collect();
    let unique = |codes: &[u32]| -> Vec<u32> {
        let mut seen = HashSet::new();
        treated.iter().map(|&i| codes[i]).filter(|c| seen.insert(*c)).collect()
    };
    let mut batches = unique(&data.batch);
    let mut perts = unique(&data.pert);
    if batches.len() < 2 || perts.len() < 2 {
        return Err(Error::Invalid(format!(
            "the split needs at least two batches and two perturbations among the perturbed cells; found {} and {}",
            batches.len(),
            perts.len()
        )));
    }
    // Sorted before shuffling so the split depends on the seed and the labels, not on row order.
    batches.sort_by(|a, b| data.batch_names[*a as usize].cmp(&data.batch_names[*b as usize]));
    perts.sort_by(|a, b| data.pert_names[*a as usize].cmp(&data.pert_names[*b as usize]));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    batches.shuffle(&mut rng);
    perts.shuffle(&mut rng);
    let train_batches: HashSet<u32> = batches[..n_train(batches.len(), cfg.train_batch_fraction)].iter().copied().collect();
    let train_perts: HashSet<u32> = perts[..n_train(perts.len(), cfg.train_pert_fraction)].iter().copied().collect();

    let mut split = Split::default();
    for &i in &treated {
        match (train_batches.contains(&data.batch[i]), train_perts.contains(&data.pert[i])) {
            (true, true) => split.train.push(i),
            (false, true) => split.test1.push(i),
            (false, false) => split.test2.push(i),
            (true, false) => {}
        }
    }
    let in_train: HashSet<u32> = split.train.iter().map(|&i| data.pert[i]).collect();
    split.test1.retain(|&i| in_train.contains(&data.pert[i]));
    for rows in [&mut split.train, &mut split.test1, &mut split.test2] {
        let batches: HashSet<u32> = rows.iter().map(|&i| data.batch[i]).collect();
        rows.extend((0..data.n_obs).filter(|&i| data.is_control(i) && batches.contains(&data.batch[i])));
        rows.sort_unstable();
    }
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 4 batches × (control + 5 perturbations), two cells each.
    fn grid() -> PerturbData {
        let (mut pert, mut batch) = (Vec::new(), Vec::new());
        for b in 0..4u32 {
            for p in 0..6u32 {
                for _ in 0..2 {
                    pert.push(p);
                    batch.push(b);
                }
            }
        }
        let n = pert.len();
        PerturbData {
            n_obs: n,
            dim: 1,
            x: vec![0.0; n],
            pert,
            pert_names: ["ctrl", "A", "B", "C", "D", "E"].iter().map(|s| s.to_string()).collect(),
            batch,
            batch_names: ["b0", "b1", "b2", "b3"].iter().map(|s| s.to_string()).collect(),
            control: 0,
        }
    }

    #[test]
    fn shares_and_exclusivity() {
        let d = grid();
        let s = split(&d, &SplitConfig::default(), 7).unwrap();
        let batches = |rows: &[usize]| rows.iter().map(|&i| d.batch[i]).collect::<HashSet<_>>();
        let perts = |rows: &[usize]| rows.iter().filter(|&&i| !d.is_control(i)).map(|&i| d.pert[i]).collect::<HashSet<_>>();
        // floor(0.7·4) = 2 training batches, floor(0.7·5) = 3 training perturbations.
        assert_eq!(batches(&s.train).len(), 2);
        assert_eq!(perts(&s.train).len(), 3);
        assert_eq!(perts(&s.test1), perts(&s.train));
        assert!(perts(&s.test2).is_disjoint(&perts(&s.train)));
        assert_eq!(perts(&s.test2).len(), 2);
        assert!(batches(&s.train).is_disjoint(&batches(&s.test1)));
        assert_eq!(batches(&s.test1), batches(&s.test2));
        // Each split holds its batches' controls: 2 batches × 2 control cells.
        for rows in [&s.train, &s.test1, &s.test2] {
            assert_eq!(rows.iter().filter(|&&i| d.is_control(i)).count(), 4);
        }
        // 2 batches × 3 perts × 2 cells + 4 controls; test2: 2 × 2 × 2 + 4.
        assert_eq!((s.train.len(), s.test1.len(), s.test2.len()), (16, 16, 12));
    }

    #[test]
    fn seeded() {
        let d = grid();
        let cfg = SplitConfig::default();
        assert_eq!(split(&d, &cfg, 3).unwrap(), split(&d, &cfg, 3).unwrap());
        let differs = (0..10).any(|s| split(&d, &cfg, s).unwrap() != split(&d, &cfg, 3).unwrap());
        assert!(differs);
    }

    #[test]
    fn refuses_one_batch() {
        let mut d = grid();
        d.batch.iter_mut().for_each(|b| *b = 0);
        assert!(split(&d, &SplitConfig::default(), 0).is_err());
    }
}
