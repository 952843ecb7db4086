//! `txfm bench perturb`: the perturbation benchmark over embeddings in an h5ad's obsm.

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
