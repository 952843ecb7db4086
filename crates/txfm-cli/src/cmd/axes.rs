//! `txfm axes`: a model's read-out principal axes, fitted on a corpus, in a new bundle.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use txfm::embed::write_axes_bundle;
use txfm::runtime::DeviceSpec;

/// Fit the principal axes of a model's read-outs (the CLS and [CLS ; token mean]) on a corpus
/// and write the model with them as a new bundle folder, which `txfm embed --model` then maps
/// embeddings into. A run fits them on its training corpus for its final checkpoint by itself;
/// this is for a model without them (trained before txfm fitted axes, or an intermediate
/// checkpoint). The cells are the corpus's training split, embedded as `txfm embed` would with
/// the model's defaults; the model's own folder is left as it was.
#[derive(clap::Args)]
pub struct Args {
    /// A run folder (uses checkpoints/latest), a checkpoint or a bundle folder.
    #[arg(long)]
    model: PathBuf,
    /// The corpus to fit on: the model's training corpus for the axes its run would have fitted.
    /// Every corpus gene must be in the model's vocabulary.
    #[arg(long)]
    corpus: PathBuf,
    /// The new bundle folder (must not exist).
    #[arg(long)]
    out: PathBuf,
    /// Training-split cells to fit on at most (a seeded subsample of a larger split).
    #[arg(long, default_value_t = 20_000)]
    cells: usize,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let device = a.device.parse::<DeviceSpec>()?;
    let bar = if std::io::stderr().is_terminal() {
        let style = indicatif::ProgressStyle::with_template("{spinner} {pos} cells embedded  {per_sec}").expect("the template is valid");
        indicatif::ProgressBar::new_spinner().with_style(style)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let axes = write_axes_bundle(&a.model, &a.corpus, &a.out, a.cells, device, &mut |n| bar.set_position(n))
        .with_context(|| format!("fitting the principal axes of {} on {}", a.model.display(), a.corpus.display()))?;
    bar.finish_and_clear();
    let share = |v: &[f64], k: usize| 100.0 * v.iter().take(k).sum::<f64>() / v.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    eprintln!(
        "wrote {} with the principal axes fitted on {} cells: CLS top axis {:.0}% of the variance (top 5: {:.0}%), \
         [CLS ; token mean] top axis {:.0}%",
        a.out.display(),
        axes.n_cells,
        share(&axes.cls.variance, 1),
        share(&axes.cls.variance, 5),
        share(&axes.cls_mean.variance, 1)
    );
    Ok(())
}
