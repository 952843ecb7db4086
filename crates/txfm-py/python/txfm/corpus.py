"""``txfm.corpus.build``: a training corpus from a manifest of datasets."""

from __future__ import annotations

import json
import os

from . import _txfm


def build(manifest, out, overwrite: bool = False, paper_filters: bool = False) -> dict:
    """Builds the corpus a manifest (TOML: datasets, QC filters, gene-ID harmonisation) describes
    into the folder ``out``, streaming each dataset from disk, as ``txfm corpus build`` does.
    Returns its summary (``corpus.json``)."""
    return json.loads(_txfm.corpus_build(os.fspath(manifest), os.fspath(out), overwrite, paper_filters))
