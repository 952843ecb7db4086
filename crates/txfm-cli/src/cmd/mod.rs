pub mod quickstart;
pub mod simulate;
pub mod corpus;
pub mod train;
pub mod finetune;
pub mod bench;
pub mod inspect;
pub mod env;
