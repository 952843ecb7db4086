//! Post-processing on controls: none, center, scale, TVN.
