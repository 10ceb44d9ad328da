"""The Train dock's runs on disk (no Qt): the runs folder remembered, the last run's model.

Every run writes ``run-<date>-<time>/best.safetensors`` (and ``last.safetensors``) under
the runs folder. After a restart the Train dock offers the newest run's model again
(:func:`newest_run`), and the Model dock's *Checkpoint…* opens in the runs folder
(:func:`runs_root`): the default one is in a hidden folder that file dialogs do not show.
The runs folder a run was started in is remembered in ``<config>/train.json``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from napari_nuclei_unet.core.train_updates import BEST_NAME, LAST_NAME
from napari_nuclei_unet.widgets._train_jobs import default_runs_root

SETTINGS_NAME = "train.json"


def runs_root() -> Path:
    """The runs folder the last run was started in, else :func:`default_runs_root`."""
    from napari_nuclei_unet.widgets._retrain_project import read_setting

    folder = read_setting(SETTINGS_NAME, "runs_folder")
    return Path(folder).expanduser() if folder else default_runs_root()


def remember_runs_root(folder: str | os.PathLike) -> None:
    """Remember ``folder`` as the runs folder to show next time (failures are ignored)."""
    from napari_nuclei_unet.widgets._retrain_project import write_setting

    try:
        write_setting(SETTINGS_NAME, "runs_folder", str(Path(folder).expanduser().absolute()))
    except OSError:
        pass  # a convenience: the runs folder is still shown in the dock


@dataclass(frozen=True)
class RunModel:
    """The model a training run left, as the Train dock offers it.

    Attributes
    ----------
    run_dir : pathlib.Path
        The run's folder (``run-<date>-<time>``).
    checkpoint : pathlib.Path
        ``best.safetensors``, or ``last.safetensors`` for a run that failed before
        it wrote its best model.
    val_iou : float or None
        The validation IoU of those weights (None: not validated).
    saved : datetime or None
        When the weights were saved (local time).
    val_ids : frozenset or None
        The images ``val_iou`` was measured on (None: not recorded): two runs' IoUs
        compare only over the same images.
    stopped : str
        ``"stopped after 10 of 50 epochs"`` for a run stopped before its end (Stop, the
        Train panel closed, napari closed), else ``""``.
    """

    run_dir: Path
    checkpoint: Path
    val_iou: float | None
    saved: datetime | None
    val_ids: frozenset | None = None
    stopped: str = ""
    token: str | None = None  # the save's token: the weights, not only the file


def validation_ids(metadata: dict) -> frozenset | None:
    """The ids of the images a checkpoint was validated on, from its sidecar, or None."""
    data = metadata.get("training_data") if isinstance(metadata, dict) else None
    ids = data.get("val_ids") if isinstance(data, dict) else None
    return frozenset(map(str, ids)) if isinstance(ids, list) and ids else None


def _saved_at(created: object, path: Path) -> datetime | None:
    try:
        return datetime.fromisoformat(str(created)).astimezone()
    except (TypeError, ValueError):
        pass
    try:
        return datetime.fromtimestamp(path.stat().st_mtime)
    except OSError:
        return None


def run_model(run_dir: str | os.PathLike) -> RunModel | None:
    """The model run folder ``run_dir`` offers, or None when it holds no usable one.

    ``best.safetensors`` when it is there: training writes it at every better
    validation and, when stopped before any, from the last weights. Otherwise (the
    run failed before) ``last.safetensors``, the weights of its last finished epoch.
    A checkpoint whose description (``.json``) cannot be read is not offered: it
    could not be loaded either.
    """
    from napari_nuclei_unet.core.checkpoint import read_metadata

    for name in (BEST_NAME, LAST_NAME):
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        try:
            metadata = read_metadata(path)
        except (OSError, ValueError, RecursionError):  # CheckpointError is a ValueError
            continue
        metrics = metadata.get("metrics")
        value = metrics.get("val_iou") if isinstance(metrics, dict) else None
        val_iou = float(value) if isinstance(value, (int, float)) and \
            not isinstance(value, bool) else None
        token = metadata.get("token")
        return RunModel(Path(run_dir), path, val_iou, _saved_at(metadata.get("created"), path),
                        validation_ids(metadata), _stopped_words(Path(run_dir) / LAST_NAME),
                        token if isinstance(token, str) else None)
    return None


def _stopped_words(last: Path) -> str:
    """How far a stopped run got, from its last weights' description; "" when it ended.

    A run stopped by closing the Train panel was offered again as if it had finished
    (GUI check h_gui38).
    """
    from napari_nuclei_unet.core.checkpoint import read_metadata

    try:
        metadata = read_metadata(last) if last.is_file() else {}
    except (OSError, ValueError, RecursionError):
        return ""
    metrics, config = metadata.get("metrics"), metadata.get("config")
    if not isinstance(metrics, dict) or metrics.get("cancelled_at_step") is None:
        return ""
    epoch, epochs = metrics.get("epoch"), (config or {}).get("epochs") \
        if isinstance(config, dict) else None
    if not (isinstance(epoch, int) and isinstance(epochs, int)):
        return "stopped before its end"
    # the epoch under way is not done: "stopped at epoch 4 of 8" after 3 read as 4 and,
    # at 8 of 8, as finished (GUI check h_gui41, L1)
    step = metrics.get("cancelled_at_step")
    during = f" (during epoch {epoch})" if isinstance(step, int) and step > 0 else ""
    return f"stopped after {epoch - 1} of {epochs} epochs{during}"


def _last_written(folder: Path) -> float:
    times = []
    for name in (BEST_NAME, LAST_NAME):
        try:
            times.append((folder / name).stat().st_mtime)
        except OSError:
            pass
    return max(times, default=-1.0)


def newest_run(root: str | os.PathLike) -> RunModel | None:
    """The model of the run under ``root`` written last (a resumed run counts as new).

    Folders without a usable model (a run that failed before its first epoch ended,
    a sidecar that cannot be read) are passed over; a missing or unreadable ``root``
    gives None.
    """
    try:
        folders = [p for p in Path(root).iterdir() if p.name.startswith("run-") and p.is_dir()]
    except OSError:
        return None
    written = sorted(((_last_written(p), p.name, p) for p in folders), reverse=True)
    for when, _name, folder in written:
        if when < 0:
            break  # the rest hold no checkpoint at all
        found = run_model(folder)
        if found is not None:
            return found
    return None


def run_words(run: RunModel) -> str:
    """``"run-20261205-062511 (validation IoU 0.690, 2026-12-05 06:31)"``."""
    what = ("not validated" if run.val_iou is None else f"validation IoU {run.val_iou:.3f}")
    if run.checkpoint.name == LAST_NAME:
        what = f"last weights, {what}"  # the run ended before it wrote a best model
    when = "" if run.saved is None else f", {run.saved:%Y-%m-%d %H:%M}"
    stopped = f", {run.stopped}" if run.stopped else ""
    return f"{run.run_dir.name} ({what}{stopped}{when})"
