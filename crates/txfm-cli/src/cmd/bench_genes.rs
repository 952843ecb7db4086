//! `txfm bench genes`: gene-relationship recall from a checkpoint's parameters.

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
