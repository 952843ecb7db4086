//! `txfm env`: what runtime this binary found (libtorch, threads, CUDA devices).

/// Print the tensor runtime txfm found: libtorch version, CPU threads, CUDA devices.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(_: Args) -> anyhow::Result<()> {
    println!("txfm {}", env!("CARGO_PKG_VERSION"));
    println!("{}", txfm::runtime::describe());
    Ok(())
}
