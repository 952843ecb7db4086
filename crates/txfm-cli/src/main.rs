//! `txfm`: the command-line tool. Each subcommand lives in `cmd/` and maps its flags onto the
//! library's configs; errors print with their whole cause chain.

mod cmd;

// glibc malloc returns the large per-chunk buffers of ingestion (and later, training) to the
// kernel and faults them back in on every chunk; mimalloc reuses them (see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// TxFM: a masked-autoencoder transcriptomic foundation model (pretrain, embed, benchmark).
#[derive(Parser)]
#[command(name = "txfm", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Quickstart(cmd::quickstart::Args),
    Simulate(cmd::simulate::Args),
    #[command(subcommand)]
    Corpus(cmd::corpus::Command),
    Train(cmd::train::Args),
    Finetune(cmd::finetune::Args),
    Embed(cmd::embed::Args),
    Axes(cmd::axes::Args),
    #[command(subcommand)]
    Baseline(cmd::baseline::Command),
    #[command(subcommand)]
    Bench(cmd::bench::Command),
    Ablate(cmd::ablate::Args),
    Inspect(cmd::inspect::Args),
    Env(cmd::env::Args),
}

fn main() {
    txfm::runtime::tune_allocator();
    txfm::runtime::default_sigpipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Quickstart(a) => cmd::quickstart::run(a),
        Command::Simulate(a) => cmd::simulate::run(a),
        Command::Corpus(c) => cmd::corpus::run(c),
        Command::Train(a) => cmd::train::run(a),
        Command::Finetune(a) => cmd::finetune::run(a),
        Command::Embed(a) => cmd::embed::run(a),
        Command::Axes(a) => cmd::axes::run(a),
        Command::Baseline(c) => cmd::baseline::run(c),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Ablate(a) => cmd::ablate::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Env(a) => cmd::env::run(a),
    };
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
