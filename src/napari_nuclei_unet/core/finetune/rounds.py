"""Fine-tuning rounds: mix corrections with replay images, train, check, save a version."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import weights_path
from ..progress import Progress, stop_requested
from ._common import PROJECT_FILE, ROUND_PREFIX, FinetuneError
from .store import CorrectionStore
from .versions import ModelVersion, ModelVersions, _is_default_model

#: Training settings of a fine-tuning round, applied over the base model's configuration
#: (architecture fields always come from the base model). Chosen so that a round on five
#: corrected images with the default model (base_width 16, depth 4) takes well under 30 s
#: on a 2-core CPU including scoring; see ``benchmarks/bench_finetune.py``.
FINETUNE_DEFAULTS: dict[str, Any] = {
    "epochs": 3,
    "steps_per_epoch": 8,
    "batch_size": 8,
    "crop_size": 128,
    "learning_rate": 5e-4,
    "schedule": "cosine",
    "warmup_fraction": 0.1,
    "min_lr_fraction": 0.1,
    "early_stopping_patience": None,
    "val_every": 1,
    # One CPU thread: on a busy 2-core machine (napari drawing, other jobs) two torch
    # threads wait for each other and a round took 70-170 s instead of 22-24 s; on an
    # idle machine one thread still needs only ~13 s. Ignored on a GPU.
    "num_threads": 1,
    # Crops are drawn uniformly from the mixed list, so the share of the corrections is
    # the ratio asked for, whatever the base model was trained with.
    "modality_balance": 0.0,
    # A round is a few dozen steps: compiling (about a minute) would cost more than it saves.
    "compile": False,
}

_ARCHITECTURE_FIELDS = ("base_width", "depth", "in_channels")


@dataclass(frozen=True)
class ScoreChange:
    """Scores of one image with the model before and after a fine-tuning round.

    Attributes
    ----------
    id, modality : str
        The sample.
    iou_before, iou_after : float
        Foreground IoU with the base model and with the fine-tuned one.
    dice_before, dice_after : float
        Foreground Dice.
    ap50_before, ap50_after : float
        Object score ``TP / (TP + FP + FN)`` at IoU 0.5.
    n_true, n_pred_before, n_pred_after : int
        Nuclei in the corrected labels and in each prediction.
    """

    id: str
    modality: str
    iou_before: float
    iou_after: float
    dice_before: float
    dice_after: float
    ap50_before: float
    ap50_after: float
    n_true: int
    n_pred_before: int
    n_pred_after: int

    @property
    def iou_gain(self) -> float:
        """``iou_after - iou_before``."""
        return self.iou_after - self.iou_before

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fields."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


@dataclass(frozen=True)
class FinetuneResult:
    """Outcome of one :func:`finetune` round.

    Attributes
    ----------
    version : ModelVersion or None
        The new model version (None when the round was cancelled: nothing is saved).
    corrected : tuple of ScoreChange
        Every corrected image, scored with the base and with the new model.
    evaluation : tuple of ScoreChange
        Every ``eval_samples`` image, likewise (empty when none were given).
    history : tuple of EpochEnd
        The training epochs.
    ratio : float
        Fraction of the training list made of corrections (what was actually used).
    n_original : int
        Original samples mixed in.
    cancelled : bool
        ``should_stop`` ended the round.
    elapsed_s : float
        Wall time of the whole round, scoring included.
    """

    version: ModelVersion | None
    corrected: tuple[ScoreChange, ...] = ()
    evaluation: tuple[ScoreChange, ...] = ()
    history: tuple[Any, ...] = ()
    ratio: float = 1.0
    n_original: int = 0
    cancelled: bool = False
    elapsed_s: float = 0.0

    @property
    def checkpoint(self) -> Path | None:
        """The new model's ``.safetensors`` path (None when cancelled)."""
        return None if self.version is None else Path(self.version.model)

    def mean_iou(self, which: str = "corrected", when: str = "after") -> float | None:
        """Mean IoU over the corrected (or evaluation) images, before or after.

        Parameters
        ----------
        which : {"corrected", "evaluation"}
            Which images.
        when : {"before", "after"}
            With the base model or with the fine-tuned one.

        Returns
        -------
        float or None
            None when there are no such images.
        """
        rows = self.corrected if which == "corrected" else self.evaluation
        return _mean([getattr(r, f"iou_{when}") for r in rows])

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: version, mean IoUs before/after, per-image changes."""
        return {
            "version": None if self.version is None else self.version.name,
            "checkpoint": None if self.checkpoint is None else str(self.checkpoint),
            "cancelled": self.cancelled,
            "ratio": self.ratio,
            "n_original": self.n_original,
            "elapsed_s": self.elapsed_s,
            "corrected": {"mean_iou_before": self.mean_iou("corrected", "before"),
                          "mean_iou_after": self.mean_iou("corrected", "after"),
                          "images": [r.to_dict() for r in self.corrected]},
            "evaluation": {"mean_iou_before": self.mean_iou("evaluation", "before"),
                           "mean_iou_after": self.mean_iou("evaluation", "after"),
                           "images": [r.to_dict() for r in self.evaluation]},
        }


def mix_samples(
    corrections: Sequence[Any],
    original: Sequence[Any] | None,
    ratio: float,
    *,
    seed: int = 0,
    max_repeats: int = 16,
) -> tuple[list[Any], float, int]:
    """Build the training list of a round: corrections mixed with original samples.

    Training draws every crop from a uniformly random entry of the list, so the share
    of the corrections in the list is the expected share of correction crops in every
    batch. Corrections are repeated (at most ``max_repeats`` times) and a random subset
    of the originals is taken so that the share is ``ratio``, as near as whole numbers
    allow. Originals with the id of a correction are left out (their old labels are
    the ones being corrected).

    Parameters
    ----------
    corrections : sequence of Sample
        The corrected samples (at least one).
    original : sequence of Sample or None
        The original training data (may be empty or None: then only corrections).
    ratio : float
        Wanted share of the corrections, ``0 < ratio <= 1``.
    seed : int
        Seed of the subset choice.
    max_repeats : int
        Most copies of each correction in the list (bounds memory).

    Returns
    -------
    samples : list of Sample
        The training list (entries repeat; samples are not copied).
    actual_ratio : float
        The share of corrections in it.
    n_original : int
        How many distinct original samples it holds.

    Raises
    ------
    FinetuneError
        Without corrections, or with ``ratio`` outside ``(0, 1]``.
    """
    if not corrections:
        raise FinetuneError(
            "No corrected image to learn from: save at least one corrected mask first."
        )
    if not 0.0 < ratio <= 1.0:
        raise FinetuneError(
            f"ratio is the share of the corrections in each batch and must be in (0, 1], "
            f"got {ratio}."
        )
    corrected_ids = {s.id for s in corrections}
    pool = [s for s in (original or []) if s.id not in corrected_ids]
    if ratio >= 1.0 or not pool:
        return list(corrections), 1.0, 0
    c, o = len(corrections), len(pool)
    repeats = int(min(max_repeats, max(1, round(ratio * o / ((1.0 - ratio) * c)))))
    n_original = int(min(o, max(1, round(repeats * c * (1.0 - ratio) / ratio))))
    rng = np.random.default_rng(seed)
    chosen = [pool[i] for i in sorted(rng.choice(o, size=n_original, replace=False))]
    mixed = list(corrections) * repeats + chosen
    return mixed, repeats * c / len(mixed), n_original


def _score(model: Any, samples: Sequence[Any], device: Any, stage: str,
           should_stop: Callable[[], bool] | None) -> Generator[Progress, None, list[Any]]:
    from ..evaluation import score_prediction
    from ..inference import predict_probability

    rows = []
    for done, sample in enumerate(samples, start=1):
        if stop_requested(should_stop):
            break
        prob = predict_probability(model, sample.image, device=device)
        rows.append(score_prediction(sample, prob))
        yield Progress(stage, done, len(samples), str(sample.id))
    return rows


def _changes(before: Sequence[Any], after: Sequence[Any]) -> tuple[ScoreChange, ...]:
    return tuple(
        ScoreChange(b.id, b.modality, b.iou, a.iou, b.dice, a.dice, b.ap50, a.ap50,
                    b.n_true, b.n_pred, a.n_pred)
        for b, a in zip(before, after, strict=True)
    )


def _round_config(base_config: Any, overrides: Mapping[str, Any] | None,
                  samples: Sequence[Any]) -> Any:
    """The round's TrainConfig: base config, then FINETUNE_DEFAULTS, then overrides."""
    from ..config import TrainConfig

    overrides = dict(overrides or {})
    settings = {**FINETUNE_DEFAULTS, **overrides}
    changed = [k for k in _ARCHITECTURE_FIELDS
               if k in settings and settings[k] != getattr(base_config, k)]
    if changed:
        current = ", ".join(f"{k}={getattr(base_config, k)}" for k in _ARCHITECTURE_FIELDS)
        raise FinetuneError(
            f"config_overrides cannot change {changed}: a fine-tuned model keeps the "
            f"architecture of its base model ({current})."
        )
    unknown = sorted(set(settings) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise FinetuneError(f"Unknown training setting(s) {unknown} in config_overrides.")
    multiple = 2 ** base_config.depth
    crop = int(settings["crop_size"])
    if "crop_size" not in overrides and samples:
        # Crops larger than the images are mostly padding: wasted time on small images.
        largest = max(min(np.shape(s.image)[:2]) for s in samples)
        crop = min(crop, largest)
    settings["crop_size"] = max(multiple, crop - crop % multiple)
    return base_config.replace(**settings)


def finetune(
    base_model: str | os.PathLike | ModelVersion,
    corrections: Sequence[Any],
    *,
    original: Sequence[Any] | None = None,
    ratio: float = 0.5,
    config_overrides: Mapping[str, Any] | None = None,
    out_dir: str | os.PathLike,
    should_stop: Callable[[], bool] | None = None,
    eval_samples: Sequence[Any] | None = None,
) -> Generator[Any, None, FinetuneResult]:
    """Run one fine-tuning round and save its model as a new version of the project.

    The model starts from ``base_model``'s weights and trains briefly
    (:data:`FINETUNE_DEFAULTS`: a few short epochs at a lower learning rate) on the
    corrected samples mixed with original training samples (:func:`mix_samples`), so
    it learns the corrections without forgetting the rest. The model at the end of the
    round is kept (no per-epoch validation: the round is short, and the scores after
    training play that part). The corrected and evaluation images are scored with the
    base model before and with the new model after training.

    Parameters
    ----------
    base_model : str, os.PathLike or ModelVersion
        ``"default"``, a checkpoint path, or a version of this project (usually
        ``ModelVersions(out_dir).latest()``). The first round records it as ``v000``.
    corrections : sequence of Sample
        Corrected samples, e.g. ``CorrectionStore(out_dir).load_samples()``.
    original : sequence of Sample, optional
        Original training samples to mix in (recommended; without them the model may
        drift towards the corrected images).
    ratio : float, default 0.5
        Expected share of training crops drawn from the corrections, in ``(0, 1]``
        (each batch draws every crop from a random entry of the mixed list). Ignored
        (1) when ``original`` is empty.
    config_overrides : mapping, optional
        :class:`TrainConfig` fields over :data:`FINETUNE_DEFAULTS` and the base model's
        configuration, e.g. ``{"epochs": 5, "steps_per_epoch": 10, "device": "cpu"}``.
        Architecture fields cannot change.
    out_dir : str or os.PathLike
        The project folder: the new model goes to ``<out_dir>/versions/vNNN``; training
        scratch files go to a hidden folder in it, deleted afterwards.
    should_stop : callable, optional
        Checked between steps; when True the round stops, saves nothing and returns
        with ``cancelled=True`` (the base model and the corrections are untouched).
    eval_samples : sequence of Sample, optional
        Other labelled samples scored before and after, to check that the model did
        not get worse elsewhere.

    Yields
    ------
    Progress, TrainStep or EpochEnd
        ``Progress("score-before", ...)`` per image, the updates of
        :func:`~napari_nuclei_unet.core.training.train`, then
        ``Progress("score-after", ...)``.

    Returns
    -------
    FinetuneResult

    Raises
    ------
    FinetuneError
        No corrections, a bad ratio or override.
    CheckpointError
        When the base model cannot be loaded.
    TrainingError
        When training fails (e.g. out of memory); nothing is saved.
    """
    from ..checkpoint import load_checkpoint
    from ..device import configure_cpu_threads, resolve_device, restored_cpu_threads

    started = time.perf_counter()
    corrections = list(corrections)
    eval_list = list(eval_samples or [])
    base = base_model.model if isinstance(base_model, ModelVersion) else base_model
    project = Path(out_dir).expanduser().absolute()
    loaded = load_checkpoint(base, device="cpu")
    seed = int(dict(config_overrides or {}).get("seed", loaded.config.seed))
    mixed, actual_ratio, n_original = mix_samples(corrections, original, ratio, seed=seed)
    config = _round_config(loaded.config, config_overrides, mixed)
    device = resolve_device(config.device)
    base_net = loaded.model.to(device)

    # torch's thread count is process-wide: set for the round, put back afterwards.
    with restored_cpu_threads():
        if device.type == "cpu":
            configure_cpu_threads(config.num_threads)
        return (yield from _round(base_model, base, corrections, eval_list, mixed, config,
                                  device, base_net, project, ratio, actual_ratio, n_original,
                                  config_overrides, should_stop, started))


def _round(base_model, base, corrections, eval_list, mixed, config, device, base_net, project,
           ratio, actual_ratio, n_original, config_overrides, should_stop, started):
    """The body of :func:`finetune` once the inputs are checked (same yields and return)."""
    from ..checkpoint import load_checkpoint
    from ..training import train

    base_name = base_model.name if isinstance(base_model, ModelVersion) else str(base)
    versions = ModelVersions(project)
    versions.record_base(base)
    scored = corrections + eval_list
    before = yield from _score(base_net, scored, device, "score-before", should_stop)
    if stop_requested(should_stop):
        return FinetuneResult(None, ratio=actual_ratio, n_original=n_original, cancelled=True,
                              elapsed_s=time.perf_counter() - started)

    scratch = Path(tempfile.mkdtemp(prefix=ROUND_PREFIX, dir=project))
    try:
        # No validation inside train(): the after-scores below are the validation, and
        # predicting the images once per epoch would double the round's time.
        result = yield from train(config, mixed, out_dir=scratch, init_from=base,
                                  should_stop=should_stop, val_samples=[])
        if result.cancelled:
            return FinetuneResult(None, history=tuple(result.history), ratio=actual_ratio,
                                  n_original=n_original, cancelled=True,
                                  elapsed_s=time.perf_counter() - started)
        tuned = load_checkpoint(result.best_checkpoint, device=device)
        after = yield from _score(tuned.model, scored, device, "score-after", None)
        changes = _changes(before, after)
        corrected, evaluation = changes[:len(corrections)], changes[len(corrections):]
        store = CorrectionStore(project) if (project / PROJECT_FILE).exists() else None
        stored = {c.id: c for c in store.list()} if store is not None else {}
        info = {
            "base_model": base_name if isinstance(base_model, ModelVersion) else (
                "default" if _is_default_model(base) else str(weights_path(base).resolve())),
            "corrections": [
                {"id": s.id, **({"source": stored[s.id].source, "updated": stored[s.id].updated}
                                if s.id in stored else {})}
                for s in corrections
            ],
            "ratio": ratio,
            "ratio_actual": actual_ratio,
            "n_original": n_original,
            "config_overrides": dict(config_overrides or {}),
            "scores": {"corrected": [c.to_dict() for c in corrected],
                       "evaluation": [c.to_dict() for c in evaluation]},
            "mean_iou_corrected": {"before": _mean([c.iou_before for c in corrected]),
                                   "after": _mean([c.iou_after for c in corrected])},
            "mean_iou_evaluation": {"before": _mean([c.iou_before for c in evaluation]),
                                    "after": _mean([c.iou_after for c in evaluation])},
        }
        history = tuple(result.history)
        version = versions.add(
            tuned.model, config, info,
            # (without the per-epoch checkpoint paths: the scratch folder is deleted)
            {"history": [{k: v for k, v in h.to_dict().items() if k != "checkpoint"}
                         for h in history],
             "training_data": tuned.metadata.get("training_data", {})},
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return FinetuneResult(version, corrected, evaluation, history, actual_ratio, n_original,
                          False, time.perf_counter() - started)
