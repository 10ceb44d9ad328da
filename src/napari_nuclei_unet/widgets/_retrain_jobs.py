"""The Retrain dock's background jobs (no Qt): save a correction, run a round, load a version.

They run in workers started by :class:`~napari_nuclei_unet.widgets.retrain_widget.RetrainWidget`;
:func:`round_adopted` decides whether a finished round's model becomes current.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_nuclei_unet.core.finetune.repeat import repeated_round as repeated_round
from napari_nuclei_unet.core.finetune.results import iou_change
from napari_nuclei_unet.core.paths import same_path
from napari_nuclei_unet.widgets._retrain_project import (
    DraftStore,
    forget_round,
    start_round_note,
)

#: Job kinds in the session's WorkerGuard.
FINETUNE_JOB = "fine-tuning"
SAVE_JOB = "save correction"
LOAD_MODEL_JOB = "load model"  # shared with the Model and Compare docks
#: Seconds after the last stroke before a draft is written.
DRAFT_DELAY_MS = 1500
#: Seconds napari's window waits for a stopped round to end.
CLOSE_TIMEOUT_S = 60.0

NO_MODEL_FILE = ("The current model has no file on disk, so it cannot be fine-tuned. Load it "
                 "from a checkpoint in the Model panel first.")
NO_CORRECTIONS = ("The training set is empty: correct a mask and click 'Add to training set' "
                  "first.")
ALL_ASIDE = ("Every image of the training set is kept aside: a round needs at least one "
             "to learn from. Select one and click 'Train on it', or add another.")
NO_IMAGE = ("To correct a dataset image, select it in the Data or IoU panel. For your own "
            "images: correct the result in 'Segment image' (the tab, or the 'Segment image layer' "
            "dock), then click 'Add plane to fine-tuning project' there.")
BUSY_FINETUNE = "Fine-tuning is already running. Wait for it to finish, or press Stop."
BUSY_TRAINING = "The Train panel is training. Wait for it to finish (or stop it), then fine-tune."


def _run_finetune(
    store: Any,
    base: Any,
    correction_ids: list[str],
    original: list[Any],
    ratio: float | None,
    overrides: dict[str, Any],
    should_stop: Callable[[], bool],
    done: threading.Event,
    diameter: float = 0.0,
    aside: list[str] | None = None,
    inputs_key: str | None = None,
    round_id: str = "",
) -> Generator[Any, None, tuple[Any, Any]]:
    """The worker's job: read the corrections, run a round, load the new model.

    ``store`` is the dock's :class:`CorrectionStore` (any instance would do: saves
    hold the project's lock, so none mistakes a running save for a crashed one).
    ``diameter``: the session's nucleus diameter (pixels, 0 = automatic), so the round
    trains on and scores the corrections at the size predictions show them. ``aside``:
    the corrections kept aside, scored before and after (``held_out``), not trained on.
    ``inputs_key``: :func:`round_key` of the round, recorded in its version.
    ``round_id``: the round's note (``_retrain_project``), removed here once its
    version is saved or it failed, so that napari closing then does not call it lost.

    Returns
    -------
    tuple
        ``(FinetuneResult, LoadedModel or None)``; the model is None when the round
        was cancelled.
    """
    try:
        from napari_nuclei_unet.core.checkpoint import load_checkpoint
        from napari_nuclei_unet.core.finetune import finetune
        from napari_nuclei_unet.core.finetune.rounds import round_lock
        from napari_nuclei_unet.widgets._workers import import_torch_safely

        with round_lock(store.path):  # refused at once while another round runs; its
            start_round_note(store.path, len(correction_ids), round_id)  # note, then
            import_torch_safely()
            corrections = store.load_samples(correction_ids)
            held_out = store.load_samples(aside) if aside else None
            options = None
            if diameter > 0:
                from napari_nuclei_unet.core.segment import SegmentOptions

                options = SegmentOptions(diameter=float(diameter))
            result = yield from finetune(base, corrections, original=original, ratio=ratio,
                                         config_overrides=overrides, out_dir=store.path,
                                         should_stop=should_stop, segment_options=options,
                                         held_out=held_out, inputs_key=inputs_key)
        if not result.cancelled:  # its version is saved: napari closing now loses nothing
            forget_round(store.path, round_id)
        loaded = None
        if result.version is not None:
            loaded = load_checkpoint(result.version.model, device="auto")
        return result, loaded
    except Exception:
        forget_round(store.path, round_id)  # the dock says why it failed
        raise
    finally:
        done.set()


def _save_correction(store: Any, sample_id: str, image: np.ndarray, labels: np.ndarray,
                     source: str, note: str) -> Any:
    """The worker's job: add one correction to ``store``, then drop its draft."""
    correction = store.add(sample_id, image, labels, source=source, note=note)
    DraftStore(store.path).delete(sample_id)
    return correction


def _saved_labels(store: Any, sample_id: str) -> np.ndarray:
    """The worker's job: the nuclei of a correction as saved in ``store``."""
    return store.load_labels(sample_id)


def round_adopted(result: Any, tolerance: float = 0.005) -> tuple[bool, str]:
    """Whether a fine-tuning round's model should become current, and why not.

    Uses the round's own verdict (``result.adopted`` and ``result.reason``, from
    ``core.finetune``) when it gives one; otherwise the round is adopted unless
    the mean IoU of its checks (the corrected images, and the original images
    when scored) dropped by more than ``tolerance``.

    Returns
    -------
    tuple
        ``(adopted, reason)``; ``reason`` is "" when adopted, else why, then what happens
        to the model and what to do (:data:`~napari_nuclei_unet.core.finetune.NOT_ADOPTED`),
        as the round's own reason says them.
    """
    from napari_nuclei_unet.core.finetune.results import NOT_ADOPTED

    verdict = getattr(result, "adopted", None)
    if verdict is not None:
        reason = str(getattr(result, "reason", "")
                     or f"The new model scored worse on its checks. {NOT_ADOPTED}")
        return bool(verdict), "" if verdict else reason
    worse = []
    for split in ("corrected", "evaluation"):
        try:
            before, after = result.mean_iou(split, "before"), result.mean_iou(split, "after")
        except (KeyError, ValueError, AttributeError):
            continue
        if before is not None and after is not None and after < before - tolerance:
            worse.append(f"the {split} images: mean IoU {iou_change(before, after)}")
    if not worse:
        return True, ""
    return False, f"The new model got worse on {'; and on '.join(worse)}. {NOT_ADOPTED}"


@dataclass
class _SaveRequest:
    """A correction waiting to be saved (saves run one at a time, never during a round)."""

    state: Any
    sample: Any
    sample_id: str
    labels: np.ndarray
    source: str
    note: str


def _warm_up() -> None:
    """Import what a round needs and run one tiny training step (in a worker, at dock open).

    A round's first training step imports about a thousand modules (torch's optimizer
    machinery, scipy, scikit-image); Python holds the GIL while it loads them, which
    stalled napari's main thread for up to a second in the middle of the user's first
    round (``benchmarks/bench_finetune_gui.py``). Doing it when the dock opens keeps
    the round itself smooth. Failures are only logged: the round will report them.
    """
    import logging

    try:
        from napari_nuclei_unet.core.evaluation import score_prediction
        from napari_nuclei_unet.widgets._warm_up import tiny_training_run

        blank, labels = tiny_training_run(validate=False)
        score_prediction(blank, labels.astype(np.float32))
    except Exception:  # noqa: BLE001 - a warm-up must never bother the user
        logging.getLogger(__name__).debug("fine-tuning warm-up failed", exc_info=True)


def version_words(version: Any) -> str:
    """A version's name as notices say it: ``"v003"``, ``"v000 (the default model)"``.

    ``v000`` of a project started from the shipped model is that model, which the other
    docks call "default model": the notice names both.
    """
    if version.is_base and str(version.model) == "default":
        return f"{version.name} (the default model)"
    return version.name


def _load_version(version: Any) -> Any:
    """Load a project version (worker); None stands for the shipped default model."""
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.widgets._workers import import_torch_safely

    import_torch_safely()
    return load_checkpoint("default" if version is None else version.model, device="auto")


def marked_version(model: Any, versions: Sequence[Any], store: Any,
                   current: Any) -> str | None:
    """The version the versions table marks ●: the model in use's, else the project's.

    With no model loaded (napari started again), the project's model is the one Fine-tune
    and the Segment dock use; no version was marked, beside "v001 is in use because you
    chose it" (GUI check h_gui38, L2). ``store``: the project's ``ModelVersions``;
    ``current``: :func:`version_of_model` of ``model`` (None: none of them).
    """
    if current is None and model is None:
        current = store.current(versions)
    return None if current is None else current.name


def version_of_model(model: Any, versions: Sequence[Any]) -> Any:
    """The project version ``model`` (a ``LoadedModel``) was loaded from, or None.

    Parameters
    ----------
    model : LoadedModel or None
        The session's model.
    versions : sequence of ModelVersion
        The project's versions.

    Returns
    -------
    ModelVersion or None
    """
    path = getattr(model, "path", None)
    if path is None:
        return None
    from napari_nuclei_unet.core.checkpoint import default_model_path

    for version in versions:
        candidates = [version.model]
        if version.is_base:
            candidates.append(version.info.get("model"))
            if version.model == "default":
                candidates = [default_model_path()]
        if any(c not in (None, "default") and same_path(c, path) for c in candidates):
            return version
    return None



def round_key(base: Any, corrections: Sequence[Any], overrides: dict[str, Any],
              ratio: float | None, original_ids: Sequence[str], diameter: float) -> str:
    """A key of everything a round trains from, as the Retrain dock starts it.

    Each correction as saved (id, time, kept aside), with the starting model, the
    settings, the share of corrections, the original images and the nucleus diameter:
    :func:`napari_nuclei_unet.core.finetune.repeat.round_key`. Recorded in the version
    (``finetune(inputs_key=...)``), compared by :func:`repeated_round`.
    """
    from napari_nuclei_unet.core.finetune.repeat import round_key as key_of

    return key_of(base, [[c.id, c.updated, bool(c.aside)] for c in corrections], overrides,
                  ratio, original_ids, diameter)
