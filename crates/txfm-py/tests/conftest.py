"""Shared fixtures: the shared data folder (../shared/data beside the checkout), the txfm CLI
binary to compare against, and one small model trained once per session through the package."""

import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
DATA = pathlib.Path(os.environ.get("TXFM_SHARED_DATA", REPO.parent / "shared" / "data"))
CROPSEQ = DATA / "perturbation" / "datlinger2017_cropseq_scperturb_testsubset.h5ad"
CELLTYPIST = DATA / "expression" / "celltypist_sample_cell_by_gene.h5ad"
EFAAR = DATA / "annotations" / "efaar"


def pytest_sessionstart(session):
    if not CROPSEQ.exists():
        raise pytest.UsageError(
            f"the Python tests read real data from {DATA} (../shared/data beside the checkout, or TXFM_SHARED_DATA), "
            f"which is missing {CROPSEQ.name}"
        )


@pytest.fixture(scope="session")
def cli():
    """The txfm binary built from this checkout ($TXFM_BIN, else target/debug, else target/release)."""
    for p in [os.environ.get("TXFM_BIN"), REPO / "target" / "debug" / "txfm", REPO / "target" / "release" / "txfm"]:
        if p and pathlib.Path(p).exists():
            return str(p)
    pytest.fail("no txfm binary: build it (cargo build -p txfm-cli) or set TXFM_BIN")


def run_cli(cli, *args):
    out = subprocess.run([cli, *map(str, args)], capture_output=True, text=True)
    return out


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A corpus of the CROP-seq screen and a tiny model trained on it for 30 steps, both built
    through the package: (corpus dir, run dir, steps seen by on_step)."""
    import txfm

    root = tmp_path_factory.mktemp("trained")
    manifest = root / "corpus.toml"
    manifest.write_text(
        "seed = 0\n[filters]\nmin_cells_per_gene = 3\nmin_genes_per_cell = 5\n\n[[dataset]]\n"
        f'name = "jurkat_cropseq"\npath = "{CROPSEQ}"\ngene_ids = "symbol"\nobs_columns = ["target_gene"]\n'
    )
    summary = txfm.corpus.build(manifest, root / "corpus")
    seen = []
    txfm.train(root / "corpus", root / "run", preset="tiny", steps=30, eval_every=10, checkpoint_every=10,
               progress=False, on_step=lambda r, total: seen.append((r["step"], total)))
    return summary, root / "corpus", root / "run", seen
