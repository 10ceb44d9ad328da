"""The Train dock's background jobs and run folders (no Qt): train, load the best model.

They run in workers started by :class:`~napari_nuclei_unet.widgets.train_widget.TrainWidget`
and import torch in the worker thread, never on napari's main thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from datetime import datetime
from pathlib import Path
from typing import Any

from napari_nuclei_unet.core.config import TrainConfig

#: Seconds napari's window waits for a stopped run to write its checkpoints.
CLOSE_TIMEOUT_S = 120.0


def default_runs_root() -> Path:
    """The runs folder in the user data dir (``.../napari-nuclei-unet/runs``).

    ``NUCLEI_UNET_DATA_DIR`` overrides the data dir, as for the fine-tuning projects
    (``_retrain_project.data_dir``).
    """
    from napari_nuclei_unet.widgets._retrain_project import data_dir

    return data_dir() / "runs"


def best_summary(result: Any) -> str:
    """Which weights a run's best checkpoint holds, in words (``"epoch 7, validation IoU …"``)."""
    best = [h for h in result.history if h.is_best]
    if not best:
        return "the last weights (not validated)"
    last = best[-1]
    iou = "" if last.val_iou is None else f", validation IoU {last.val_iou:.3f}"
    return f"epoch {last.epoch}{iou}"


def result_words(result: Any, earlier: Path | None = None) -> tuple[str, str]:
    """The Train dock's best-model line and notification for a run's ``TrainResult``.

    ``earlier``: the best model of an earlier run of the dock, still offered when this
    one trained nothing (review h_rev29, 5).
    """
    if not result.trained:
        return ("Best model: —" if earlier is None else f"Best model (an earlier run): "
                f"{earlier}", "Training stopped before its first step: nothing was trained, "
                "so no model was kept.")
    best, path = best_summary(result), Path(result.best_checkpoint)
    label = f"Best model: {best}\n{path}"
    if result.cancelled and not any(h.is_best for h in result.history):
        return label, ("Training stopped before its first validation. Its last weights are "
                       f"kept (not validated): {path}")
    if result.cancelled:
        return label, f"Training stopped. The best model so far ({best}) is kept: {path}"
    if result.stopped_early:
        return label, f"Training stopped early (no better validation IoU). Best model: {path}"
    return label, f"Training finished. Best model: {path}"


def resume_point(run_dir: Path) -> tuple[TrainConfig, dict, int]:
    """The settings of the run in ``run_dir``, its last checkpoint's metadata, the epochs done.

    Raises
    ------
    ValueError
        In plain words, when the folder holds no run to resume.
    """
    from napari_nuclei_unet.core.checkpoint import CheckpointError, read_metadata
    from napari_nuclei_unet.core.config import ConfigError
    from napari_nuclei_unet.core.train_updates import LAST_NAME

    last = run_dir / LAST_NAME
    if not last.exists():
        raise ValueError(f"{run_dir} has no {LAST_NAME}: choose a run folder written by the "
                         "Train panel (run-<date>-<time>).")
    try:
        meta = read_metadata(last)
        saved = TrainConfig.from_dict(meta["config"])
    except (CheckpointError, ConfigError) as exc:
        raise ValueError(f"Cannot resume from {run_dir}: {exc}") from exc
    resume = meta.get("resume") or {}
    done = int(resume.get("epoch", 0)) - (0 if resume.get("epoch_complete", True) else 1)
    return saved, meta, done


def resume_change(meta: dict, samples: Any, config: TrainConfig) -> str:
    """What changed in the data since the run in ``meta`` started (checked before it resumes).

    The run's validation images stay validation images; "" when nothing changed.

    Raises
    ------
    ValueError
        In the dock's words, when the data open is another dataset. It was refused from
        the worker as "Training failed", the bar saying "failed", after "Resuming on 4
        images" (GUI check h_gui41, M2).
    """
    from napari_nuclei_unet.core.train_data import resumed_split

    labelled = [s for s in samples if getattr(s, "has_labels", True)]
    try:
        return resumed_split(labelled, meta.get("training_data"), config.val_fraction,
                             config.seed)[2]
    except ValueError:
        raise ValueError(
            "This run was trained on another dataset: none of its validation images is "
            "open. To continue from its model on these images, load its best.safetensors "
            "in the Model panel and start a new run from 'current model'.") from None


def new_run_dir(root: str | Path) -> Path:
    """A new, not yet existing ``run-YYYYmmdd-HHMMSS`` folder under ``root``."""
    stamp = datetime.now().strftime("run-%Y%m%d-%H%M%S")
    candidate, k = Path(root) / stamp, 1
    while candidate.exists():
        k += 1
        candidate = Path(root) / f"{stamp}-{k}"
    return candidate


def _run_training(
    config: TrainConfig,
    samples: list[Any],
    out_dir: Path,
    *,
    resume_from: Path | None,
    init_from: str | None,
    should_stop: Callable[[], bool],
    done: threading.Event,
) -> Generator[Any, None, Any]:
    """The worker's job: ``core.training.train`` (imports torch in the worker thread)."""
    try:
        from napari_nuclei_unet.widgets._workers import import_torch_safely

        import_torch_safely()
        from napari_nuclei_unet.core.training import train

        return (
            yield from train(config, samples, out_dir=out_dir, resume_from=resume_from,
                             init_from=init_from, should_stop=should_stop)
        )
    finally:
        done.set()


def _load_best(path: Path, device: str) -> Any:
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.widgets._workers import import_torch_safely

    import_torch_safely()

    return load_checkpoint(path, device=device)


def _list_devices_and_warm_up() -> list[tuple[str, str]]:
    """List the devices, then run a one-step training on a blank image (in a worker).

    The first training step of a process imports about a thousand modules
    (torch's optimizer machinery, scipy, scikit-image). Python holds the GIL
    while it loads them, which would stall napari's main thread for a few hundred
    milliseconds in the middle of the user's run; doing it when the dock opens
    keeps the run itself smooth.
    """
    from napari_nuclei_unet.widgets._workers import import_torch_safely

    import_torch_safely()
    from napari_nuclei_unet.core.device import available_devices
    from napari_nuclei_unet.widgets._warm_up import tiny_training_run

    devices = available_devices()
    tiny_training_run(validate=True)
    return devices


def decodable(dataset: Any) -> int:
    """The dataset's samples, less those whose files failed to decode (Load all said so)."""
    failed = getattr(dataset, "failed_ids", None)
    return len(dataset) - (len(failed()) if callable(failed) else 0)


def data_words(n: int, dataset: Any) -> str:
    """The Train dock's line on the data: ``n`` samples loaded of ``dataset``'s."""
    if n == 0:
        return "No samples loaded: open a dataset in the Data panel and press Load all."
    if dataset is not None and n < decodable(dataset):
        return f"{n} of {len(dataset)} samples loaded: press Load all in the Data panel."
    bad = len(dataset) - n if dataset is not None else 0
    return f"{n} samples loaded and ready for training" + (
        f" ({bad} could not be decoded)." if bad > 0 else ".")
