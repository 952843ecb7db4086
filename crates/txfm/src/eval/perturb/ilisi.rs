//! ilisi: batch mixing (LISI).
