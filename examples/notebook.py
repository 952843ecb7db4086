# %% [markdown]
# # txfm from a notebook
#
# The whole pipeline on AnnData objects in memory: a corpus from the CROP-seq screen in Jurkat
# cells, a small model trained on it, its embedding of the screen beside PCA and (Lib+Log)Norm,
# the perturbation benchmark and the gene-relationship recall. Run it as a script
# (`python examples/notebook.py`) or cell by cell in Jupyter (the `# %%` markers); it reads
# `../shared/data` beside the checkout (or `$TXFM_SHARED_DATA`) and writes to a temporary folder
# (or `$TXFM_NOTEBOOK_OUT`). `TXFM_NOTEBOOK_STEPS` sets the training length (default 300: a few
# minutes on 2 CPU cores; the tests run it at 20).

# %%
import os
import pathlib
import tempfile

import anndata as ad

import txfm  # imports torch first: one libtorch for txfm and PyTorch

here = pathlib.Path(__file__).resolve().parent if "__file__" in globals() else pathlib.Path.cwd()
data = pathlib.Path(os.environ.get("TXFM_SHARED_DATA", here.parent.parent / "shared" / "data"))
out = pathlib.Path(os.environ.get("TXFM_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="txfm-notebook-"))
steps = int(os.environ.get("TXFM_NOTEBOOK_STEPS", 300))
screen_path = data / "perturbation" / "datlinger2017_cropseq_scperturb_testsubset.h5ad"
print("writing to", out)

# %% A corpus: the manifest names each dataset, its gene IDs and the obs columns to keep.
(out / "corpus.toml").write_text(f"""
seed = 0
[filters]
min_cells_per_gene = 3
min_genes_per_cell = 5

[[dataset]]
name = "jurkat_cropseq"
path = "{screen_path}"
gene_ids = "symbol"
obs_columns = ["target_gene"]
""")
summary = txfm.corpus.build(out / "corpus.toml", out / "corpus", overwrite=True)
print(summary["n_samples"], "samples,", summary["n_vars"], "genes")

# %% Train (a progress bar with the loss and the CLS's participation ratio; stop it any time and
# resume with resume=True). Overrides use double underscores for nested fields.
model = txfm.train(out / "corpus", out / "run", preset="small", steps=steps, eval_every=max(steps // 4, 1))
model

# %% Embed the screen in memory, with the baselines beside it.
screen = ad.read_h5ad(screen_path)
txfm.embed(screen, model)
txfm.baseline.pca(screen, n_comps=50)
txfm.baseline.libnorm(screen)
screen

# %% The perturbation benchmark: one row per embedding × post-processing.
table = txfm.bench.perturb(
    screen, obsm=["X_txfm", "X_pca", "X_libnorm"], pert_key="target_gene", batch_key="perturbation_2",
    control="control", annotations=data / "annotations" / "efaar", seeds=1, quick=True, inv=False,
    postprocess=["none", "tvn"], out=out / "bench",
)
print(table[["embedding", "postprocess", "lin", "knn", "p.cst", "bmdb", "average"]].round(1).to_string(index=False))
print("plots:", *table.attrs["plots"], sep="\n  ")

# %% Gene-gene relationships read out of the weights.
recall = txfm.bench.genes(model, data / "annotations" / "efaar")
print(recall[recall.database == "combined"].round(3).to_string(index=False))

# %% The weights themselves, for your own analyses.
emb = model.gene_embeddings()
print(emb.shape, "gene embeddings for", len(model.genes), "genes, e.g.", model.symbols[:5])
