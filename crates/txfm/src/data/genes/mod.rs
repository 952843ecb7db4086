//! Gene-ID harmonisation: every dataset's genes are brought into one namespace, the unversioned
//! human Ensembl gene ID (`ENSG00000141510`), with the symbol kept alongside for display and for
//! symbol-keyed annotations.
//!
//! [`kind`] says what a dataset's `var_names` are, [`table`] is the bundled human gene table,
//! [`mapping`] maps names and count chunks onto canonical genes, [`report`] tells what it did.

pub mod kind;
pub mod table;
pub mod mapping;
pub mod report;

pub use kind::{canonical_ensembl, GeneIdKind};
pub use mapping::{harmonise, GeneMapping};
pub use report::MappingReport;
pub use table::{GeneTable, SymbolMatch};
