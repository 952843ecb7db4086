//! Seeded train / test1 / test2 splits over batches and perturbations.
