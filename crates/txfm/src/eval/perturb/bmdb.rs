//! bmdb: recall of known relationships among perturbation means.
