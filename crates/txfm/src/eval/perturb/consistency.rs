//! p.cst: perturbation signal consistency.
