//! Recall of known pairs at percentile thresholds of a null distribution.
