//! Known gene-gene relationships (EFAAR pair files).
