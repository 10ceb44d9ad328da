"""What a resumed training run takes over from the run it continues.

:func:`~napari_nuclei_unet.core.training.train` calls these when given ``resume_from``:
the run's recorded validation images stay validation images (:func:`resume_data`, which
front ends call first to say what changed), the time it trained counts against its
budget (:func:`time_left_check`), and a run resumed into another folder starts with its
best model there (:func:`start_best`). Review h_rev23, M1-M3.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import distributed
from .checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from .checkpoint_commit import sidecar_path
from .config import TrainConfig
from .paths import same_path
from .train_data import resumed_split
from .train_updates import BEST_NAME, TrainingError

# Under torchrun only rank 0 writes checkpoints (a no-op elsewhere), as in training.py.
save_checkpoint = distributed.main_only(save_checkpoint)


def resume_data(resume_from: str | os.PathLike, samples: Sequence[Any],
                config: TrainConfig) -> tuple[list[Any], list[Any], str]:
    """The training and validation samples of a resumed run, and what changed (a note).

    The run's recorded validation images stay validation images
    (:func:`~napari_nuclei_unet.core.train_data.resumed_split`); front ends call this
    first to say the note. Raises :class:`TrainingError` for another dataset.
    """
    try:
        recorded = read_metadata(resume_from).get("training_data")
    except CheckpointError:
        recorded = None  # said by the resume itself, as it loads the checkpoint
    try:
        return resumed_split(samples, recorded, config.val_fraction, config.seed)
    except ValueError as exc:
        raise TrainingError(f"Cannot resume {resume_from}: {exc}") from exc


def time_left_check(elapsed: float, config: TrainConfig) -> float:
    """``elapsed`` (seconds a resumed run has trained), unless it spent its time budget."""
    if config.time_budget_s and elapsed >= config.time_budget_s:
        raise TrainingError(
            f"This run has used its whole time budget ({config.time_budget_s:g} s; it trained "
            f"{elapsed:.0f} s). To train it further, resume it with a larger budget: the "
            "total, counting the time already trained (--time-budget-s on the command line, "
            "time_budget_s in a --config file).")
    return elapsed


def start_best(resume_from: str | os.PathLike | None, best_path: Path,
               keep: str | os.PathLike | None = None) -> None:
    """The best model a run starts with in its folder: its own, carried, or none.

    A run resumed into another folder starts with its best model there: its best
    validation IoU is carried over, so a resumed run that never beat it wrote no
    ``best`` at all, and the path printed for scripts did not exist (h_rev23, M3). A best
    already in the folder of a new run, or of a run resumed from elsewhere, is another
    run's (the command line refuses such a folder unless told ``--overwrite``): it is
    removed, not printed as this run's, also when the resumed run's own best is missing
    (reviews h_rev25, B13; h_rev26, 2). ``keep``: the checkpoint a new run starts from
    (``--init``), never removed, were it that very file (review h_rev28, 9).
    """
    source = None if resume_from is None else Path(resume_from).with_name(BEST_NAME)
    if source is not None and _same_file(source, best_path):
        return  # the run's own folder (by any spelling of it: h_rev27, 2): its own best
    best = None
    if source is not None and source.exists():
        try:  # read before anything is removed
            best = load_checkpoint(source, device="cpu")
        except CheckpointError:
            best = None  # the run's own best is written at its end
    if keep is None or not _same_file(Path(keep), best_path):
        _remove_checkpoint(best_path)
    if best is None:
        return
    own = ("format", "format_version", "package_version", "token", "architecture", "config",
           "resume")  # what a save writes itself (a copied token is a mismatched pair)
    save_checkpoint(best_path, best.model, best.config,
                    {k: v for k, v in best.metadata.items() if k not in own})


def _same_file(one: Path, other: Path) -> bool:
    """Whether two paths name one file, by their spelling or on disk.

    :func:`same_path` also holds for a file not there yet; ``os.path.samefile`` finds a
    bind mount or a second mount of a share.
    """
    if same_path(one, other):
        return True
    try:
        return os.path.samefile(one, other)
    except OSError:  # either is missing
        return False


@distributed.main_only
def _remove_checkpoint(path: Path) -> None:
    """Remove a checkpoint's weights and sidecar (rank 0 only under torchrun)."""
    for part in (path, sidecar_path(path)):
        part.unlink(missing_ok=True)
