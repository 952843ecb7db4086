//! `txfm embed`: CLS embeddings of every sample of an input file.

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("txfm embed is not built yet")
}
