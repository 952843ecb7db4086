"""TxFM from Python: embed AnnData objects with a trained model, fit the PCA and (Lib+Log)Norm
baselines, run the perturbation benchmark and the gene-relationship recall, build corpora and
train, all through the one Rust implementation the ``txfm`` command line uses.

    import txfm
    model = txfm.load("runs/my-run")
    txfm.embed(adata, model)                 # adata.obsm["X_txfm"]
    txfm.baseline.pca(adata)                 # adata.obsm["X_pca"], varm["PCs"], uns["pca"]
    table = txfm.bench.perturb(adata, obsm=["X_txfm", "X_pca"], annotations=[...])

Functions follow scanpy's idiom: they take an AnnData, write into it and return it (or return a
table). An in-memory AnnData is read through the buffers of its ``X`` (scipy CSR/CSC or a numpy
array; no copy, no temporary file); a backed one (``backed="r"``) is streamed from its file.
"""

# torch first: its libraries (libtorch, CUDA) are what the extension links against, loaded once
# for the process, so txfm and PyTorch share one libtorch.
import torch as _torch

_TORCH = "2.11"
if not _torch.__version__.startswith(_TORCH + "."):
    raise ImportError(
        f"txfm was built against torch {_TORCH}.*, but torch {_torch.__version__} is installed; "
        f"install torch=={_TORCH}.* (pip install 'torch=={_TORCH}.*') or rebuild txfm against this torch"
    )

from . import _txfm  # noqa: E402
from ._model import Model, load  # noqa: E402
from ._embed import embed  # noqa: E402
from ._train import run_config, train  # noqa: E402
from . import baseline, bench, corpus  # noqa: E402

__all__ = ["Model", "load", "embed", "train", "run_config", "baseline", "bench", "corpus"]
