//! `txfm baseline pca|libnorm`: baseline embeddings on the same data.

#[derive(clap::Subcommand)]
pub enum Command {
    /// PCA of LibNorm+log1p expression.
    Pca,
}

pub fn run(_command: Command) -> anyhow::Result<()> {
    anyhow::bail!("txfm baseline is not built yet")
}
