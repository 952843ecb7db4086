"""A trained model: ``txfm.load(run)``."""

from __future__ import annotations

import os

import numpy as np

from . import _txfm


class Model:
    """A trained TxFM model (a run folder's latest checkpoint, a checkpoint or a model bundle).

    ``genes`` (gene ids in weight order) and ``symbols`` are numpy arrays; ``gene_embeddings()``
    is the encoder's per-gene embedding table ``[G, d-1]`` and ``decoder_gene_weights()`` the
    decoder's per-gene output weights ``[G, d_dec]``, rows in ``genes`` order."""

    def __init__(self, path):
        self._m = _txfm.Model(os.fspath(path))
        self._vectors = None

    @property
    def path(self) -> str:
        return str(self._m.path)

    @property
    def genes(self) -> np.ndarray:
        return np.asarray(self._m.genes, dtype=object)

    @property
    def symbols(self) -> np.ndarray:
        return np.asarray(self._m.symbols, dtype=object)

    @property
    def step(self):
        return self._m.step

    @property
    def dim(self) -> int:
        return self._m.dim

    @property
    def config(self) -> dict:
        import tomllib

        return tomllib.loads(self._m.config)

    def _gene_vectors(self):
        if self._vectors is None:
            self._vectors = self._m.gene_vectors()
        return self._vectors

    def gene_embeddings(self) -> np.ndarray:
        return self._gene_vectors()[0]

    def decoder_gene_weights(self) -> np.ndarray:
        return self._gene_vectors()[1]

    def __fspath__(self):
        return self.path

    def __repr__(self):
        return repr(self._m)


def load(run) -> Model:
    """The model of a run folder (its latest checkpoint), a checkpoint folder or a bundle."""
    return Model(run)


def model_path(model) -> str:
    return model.path if isinstance(model, Model) else os.fspath(model)
