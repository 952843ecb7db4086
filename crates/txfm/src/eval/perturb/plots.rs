//! PNG plots of a benchmark report.
