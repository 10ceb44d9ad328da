"""Progress on stderr: tqdm bars for the core generators' updates, one line per epoch.

Bars are drawn only when stderr is a terminal (tqdm's ``disable=None``); elsewhere (a
log file) a stage still under way after a minute writes a line a minute. The
per-epoch lines and notes are always written (unless ``--quiet``), so a log file of
a long training run on a cluster still shows how it went.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO


def note(message: str, *, quiet: bool = False, file: TextIO | None = None) -> None:
    """Write one line of progress information to stderr (without breaking a bar)."""
    if quiet:
        return
    from tqdm import tqdm

    tqdm.write(message, file=file or sys.stderr)


class ProgressBars:
    """Turn :class:`~napari_nuclei_unet.core.progress.Progress` updates into tqdm bars.

    One bar per stage (``"index"``, ``"load"``, ``"predict"``...); a new stage closes
    the previous bar. Use as a context manager so the last bar is closed.

    Parameters
    ----------
    quiet : bool
        Draw nothing.
    file : file object, optional
        Where to draw (default: stderr).
    """

    #: Seconds between the lines written in place of a bar when stderr is a log file.
    LOG_EVERY_S = 60.0
    #: What a stage counts (images by default).
    UNITS = {"blocks": "block", "merge": "step", "number": "step", "size": "sample"}

    def __init__(self, *, quiet: bool = False, file: TextIO | None = None) -> None:
        self.quiet = quiet
        self.file = file
        self._bar: Any = None
        self._stage: str | None = None
        self._logged = 0.0
        self._unit = "img"

    def __call__(self, update: Any) -> None:
        """Show one update (objects without ``stage``/``done``/``total`` are ignored)."""
        if self.quiet or not hasattr(update, "stage") or not hasattr(update, "done"):
            return
        import time

        from tqdm import tqdm

        if update.stage != self._stage or self._bar is None:
            self.close()
            self._stage = update.stage
            self._logged = time.monotonic()
            self._unit = self.UNITS.get(update.stage, "img")
            self._bar = tqdm(total=update.total or None, desc=update.stage, unit=self._unit,
                             file=self.file or sys.stderr, disable=None, leave=False,
                             dynamic_ncols=True)
        bar = self._bar
        if update.total and bar.total != update.total:
            bar.total = update.total
        bar.update(max(0, update.done - bar.n))
        # a step's words go with it ("measuring the nucleus size" stayed on every block
        # after it: CLI check h_cli3, M4)
        bar.set_postfix_str(str(update.message or "")[:40], refresh=False)
        if bar.disable and time.monotonic() - self._logged >= self.LOG_EVERY_S:
            # no bar in a log file (a cluster job's): a line a minute, where a 20,000 px
            # slide said nothing for 12 minutes (CLI check h_cli3, M4)
            self._logged = time.monotonic()
            of = f" of {update.total}" if update.total else ""
            words = f" ({update.message})" if update.message else ""
            note(f"{update.stage}: {update.done}{of} {self._unit}s done{words}",
                 file=self.file)

    def close(self) -> None:
        """Close the current bar."""
        if self._bar is not None:
            self._bar.close()
        self._bar = None
        self._stage = None

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def first_names(names: list[str]) -> str:
    """Up to three names, and how many more ("a.tif, b.tif, c.tif and 2 more")."""
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return ", ".join(names[:3]) + more


def format_epoch(update: Any) -> str:
    """One line summing up an :class:`EpochEnd`.

    Parameters
    ----------
    update : EpochEnd
        The end-of-epoch update of :func:`core.training.train`.

    Returns
    -------
    str
        E.g. ``"epoch  3/40  train loss 0.3121  val loss 0.2874  val IoU 0.812  best 0.815  12s"``
        with ``" *"`` when the epoch gave a new best checkpoint.
    """
    width = len(str(update.epochs))

    def number(value: Any, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    parts = [
        f"epoch {update.epoch:>{width}}/{update.epochs}",
        f"train loss {number(update.train_loss, '.4f')}",
    ]
    if any(v is not None for v in (update.val_loss, update.val_iou, update.best_val_iou)):
        parts += [f"val loss {number(update.val_loss, '.4f')}",
                  f"val IoU {number(update.val_iou, '.3f')}",
                  f"best {number(update.best_val_iou, '.3f')}"]
    # without validation (a fine-tuning round: it checks itself after training) the
    # columns would be three dashes
    elapsed = getattr(update, "elapsed_s", None)
    if elapsed is not None:
        parts.append(f"{elapsed:.0f}s")
    line = "  ".join(parts)
    validated = update.val_iou is not None or update.val_loss is not None
    return line + ("  *" if validated and getattr(update, "is_best", False) else "")


class TrainReporter:
    """Show the updates of a training generator: a bar per epoch and a line at its end.

    Parameters
    ----------
    quiet : bool
        Show nothing.
    file : file object, optional
        Where to write (default: stderr).
    """

    def __init__(self, *, quiet: bool = False, file: TextIO | None = None) -> None:
        self.quiet = quiet
        self.file = file
        self._bar: Any = None
        self._epoch: int | None = None
        self._other = ProgressBars(quiet=quiet, file=file)

    def __call__(self, update: Any) -> None:
        """Show one update of :func:`core.training.train` (or a ``Progress``)."""
        if self.quiet:
            return
        from tqdm import tqdm

        if hasattr(update, "step") and hasattr(update, "steps"):  # TrainStep
            if self._bar is None or self._epoch != update.epoch:
                self._close_bar()
                self._other.close()
                self._epoch = update.epoch
                self._bar = tqdm(total=update.steps, unit="step", leave=False,
                                 desc=f"epoch {update.epoch}/{update.epochs}",
                                 file=self.file or sys.stderr, disable=None,
                                 dynamic_ncols=True)
            self._bar.update(max(0, update.step - self._bar.n))
            self._bar.set_postfix(loss=f"{update.loss:.4f}",
                                  img_s=f"{update.images_per_s:.1f}", refresh=False)
        elif hasattr(update, "train_loss"):  # EpochEnd
            self._close_bar()
            note(format_epoch(update), file=self.file)
        else:
            self._other(update)

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar = None
        self._epoch = None

    def close(self) -> None:
        """Close any open bar."""
        self._close_bar()
        self._other.close()

    def __enter__(self) -> TrainReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def note_weights(loaded: Any) -> None:
    """Say that a bioimage.io package runs from its ONNX weights (its TorchScript ones damaged).

    The Model tab says it too (review h_rev27, 11). A warning: said with ``--quiet`` too,
    which hides progress only (review h_rev28, 6).
    """
    package = (getattr(loaded, "metadata", None) or {}).get("bioimageio")
    if isinstance(package, dict) and package.get("weights_note"):
        note(f"warning: {package['weights_note']}")
