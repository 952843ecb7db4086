"""``txfm.train`` and ``txfm.run_config``."""

from __future__ import annotations

import os

from . import _txfm
from ._model import Model
from ._progress import StepBar


def _dotted(overrides: dict) -> list:
    # Python keywords cannot hold dots: loader__k=128 means loader.k = 128.
    return [(k.replace("__", "."), v) for k, v in overrides.items()]


def run_config(preset: str = "tiny", config=None, **overrides) -> str:
    """The run config (TOML) a preset (``tiny``, ``small``, ``medium``, ``s``, ``b``, ``l``) or a
    config file gives, with ``overrides`` applied (``steps=200``, ``loader__k=128``,
    ``model__loss="mse"``)."""
    return _txfm.run_config(preset, None if config is None else os.fspath(config), _dotted(overrides))


def train(corpus, out, preset: str = "tiny", config=None, resume: bool = False, progress: bool = True,
          on_step=None, **overrides) -> Model:
    """Trains a model on a corpus (from ``txfm.corpus.build``) into the run folder ``out`` and
    returns it (``txfm.load(out)``). ``preset``/``config`` and ``overrides`` as for
    :func:`run_config`; ``resume=True`` continues the run in ``out`` from its latest checkpoint.
    A progress bar shows the loss, the validation loss and the CLS's participation ratio.
    Interrupting (Ctrl-C, or the notebook's stop button) stops at the end of the current step
    with a checkpoint written, and raises KeyboardInterrupt; ``train(..., resume=True)`` goes on.
    ``on_step(record, total)``, if given, is called after each step; returning False stops."""
    text = None if resume else run_config(preset, config, **overrides)
    if resume and (overrides or config is not None):
        raise ValueError("resume=True continues with the run's own config: leave out config and overrides")
    bar = StepBar(progress)

    def hook(record, total):
        go = bar(record, total)
        if on_step is not None:
            go = on_step(record, total) is not False and go
        return go

    try:
        _txfm.train(os.fspath(corpus), os.fspath(out), config=text, resume=resume, on_step=hook)
    finally:
        bar.close()
    return Model(out)
