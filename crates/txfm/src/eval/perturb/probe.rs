//! lin: linear probe.
