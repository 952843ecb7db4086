//! PNG charts with labelled axes, drawn without a plotting crate.
