"""Progress bars for notebooks and terminals: tqdm (its notebook widget under Jupyter) when it is
installed, else nothing."""

from __future__ import annotations


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


class Bar:
    """A callback ``(label, done, total)`` for the extension's long calls."""

    def __init__(self, enabled: bool, unit: str = "it"):
        self._tqdm = _tqdm() if enabled else None
        self._bar = None
        self._unit = unit

    def __call__(self, label, done, total):
        if self._tqdm is None:
            return
        if self._bar is None:
            self._bar = self._tqdm(total=total or None, desc=label, unit=self._unit, leave=False)
        if total and self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    @property
    def callback(self):
        return self if self._tqdm is not None else None

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class StepBar:
    """``on_step(record, total)`` for training: steps, the loss and, on evaluation steps, the
    validation loss and the embedding's health."""

    def __init__(self, enabled: bool):
        tqdm = _tqdm() if enabled else None
        self._tqdm = tqdm
        self._bar = None
        self.last = None
        self._post = {}

    def __call__(self, record, total):
        self.last = record
        if self._tqdm is None:
            return True
        if self._bar is None:
            self._bar = self._tqdm(total=total, initial=record["step"] - 1, desc="training", unit="step")
        self._bar.n = record["step"]
        self._post["loss"] = f"{record['train_loss']:.4f}"
        if record.get("val_loss") is not None:
            self._post["val"] = f"{record['val_loss']:.4f}"
        health = record.get("health") or {}
        if "participation_ratio" in health:
            self._post["PR"] = f"{health['participation_ratio']:.1f}"
        self._bar.set_postfix(self._post, refresh=True)
        return True

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
