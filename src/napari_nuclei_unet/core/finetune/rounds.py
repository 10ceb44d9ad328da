"""Fine-tuning rounds: mix corrections with replay images, train, check, save a version."""

from __future__ import annotations

import math
import numbers
import os
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import weights_path
from ..progress import Cancelled, stop_requested
from ._common import PROJECT_FILE, FinetuneError, RoundRunning, safe_sample_id
from .check import choose_step, score_sets, step_back_fractions, step_factors
from .degrade import matched_replay
from .mixing import auto_ratio, mix_samples, weighted_samples
from .replay import replay_samples
from .results import FinetuneResult, _mean
from .store import CorrectionStore
from .trainer import draw_probabilities, group_probabilities, train_round
from .versions import ROUND_SETS, USER_SETS, ModelVersion, ModelVersions, _is_default_model
from .view import inference_views

#: Training settings of a fine-tuning round, applied over the base model's configuration
#: (architecture fields always come from the base model; the device never does). Chosen
#: with ``benchmarks/bench_finetune_domains.py`` on the three domains where the shipped
#: model is weakest (docs/finetuning.md): 96 steps at 1e-3 adapted more than 48 at 5e-4
#: and a round on 3 corrected images, scoring included, still took <= 60 s on a busy
#: 2-core CPU; ``benchmarks/bench_finetune.py`` times the phases.
FINETUNE_DEFAULTS: dict[str, Any] = {
    "epochs": 12,
    "steps_per_epoch": 8,
    "batch_size": 8,
    "crop_size": 128,
    "learning_rate": 1e-3,
    "schedule": "cosine",
    "warmup_fraction": 0.1,
    "min_lr_fraction": 0.1,
    "early_stopping_patience": None,
    "val_every": 1,
    # One CPU thread: on a busy 2-core machine (napari drawing, other jobs) two torch
    # threads wait for each other and a round took 70-170 s instead of 22-24 s (with the
    # earlier 48-step defaults). Ignored on a GPU.
    "num_threads": 1,
    # Crops are drawn uniformly from the mixed list, so the share of the corrections is
    # the ratio asked for, whatever the base model was trained with.
    "modality_balance": 0.0,
    # A round is a few dozen steps: compiling (about a minute) would cost more than it saves.
    "compile": False,
    # Rounds run where the user is: never on the device the base model was trained on
    # (a model trained on CUDA must fine-tune on a laptop CPU). Override to choose.
    "device": "auto",
    # A round is sized by its steps, not by the base model's training budget (the shipped
    # model's 450 s was written into every fine-tuned version's config, unused).
    "time_budget_s": None,
}

#: How a round protects what the base model knew (not TrainConfig fields; may be given in
#: ``config_overrides`` too): keep the base model's BatchNorm statistics; which parameters
#: learn ("all", "late": decoder + the encoder's deepest block, "decoder"); the encoder's
#: learning rate as a fraction of the decoder's; the weight of distillation towards the
#: base model on replay crops; how crops are drawn (:data:`DRAWS`); whether the
#: corrections are trained on, and the corrected images scored, as inference shows them
#: (``match_inference``, :data:`MATCH_INFERENCE`: resized to the training nucleus size
#: and smoothed when dim, as :func:`~napari_nuclei_unet.core.segment.segment_image`
#: does, see :mod:`.view`; "both" also keeps the native pixels: the tuned model may
#: pick another scale or smoothing than the base model did). See
#: :func:`.trainer.train_round`; chosen by ``benchmarks/bench_finetune_domains.py``
#: (docs/finetuning.md).
ROUND_OPTIONS: dict[str, Any] = {"freeze_batchnorm": True, "trainable": "late",
                                 "encoder_lr": 1.0, "distill": 4.0, "draw": "weighted",
                                 "match_inference": "both", "noise_matched": 0.5,
                                 "more_steps": 0.5, "extrapolate": 1.3,
                                 "step_back": (0.85, 0.7, 0.5)}
#: ``more_steps``: up to this many times more epochs (1 + more_steps at most) when the
#: base model is far off on the corrections: the factor is their mean error
#: (1 - IoU before) over :data:`STEPS_REFERENCE_ERROR`, clipped to [1, 1 + more_steps].
#: Not applied when ``epochs`` is given. With distillation 4 (instead of 2) it let the
#: ``fluo-blur`` round (base IoU 0.55 on its corrections: 18 epochs) keep its gain
#: (+0.148 instead of +0.154) while losing 0.009 instead of 0.018 on other domains, and
#: be made current (docs/finetuning.md, fourth pass).
STEPS_REFERENCE_ERROR = 0.3
#: Extrapolation starts where the base model's mean IoU on the corrections falls below
#: 0.75 (error 0.25, the line issue 12 draws between images the model already does well
#: on and a new kind of image) and reaches ``extrapolate`` at 1 - 0.25 x extrapolate
#: (0.675 for 1.3).
EXTRAPOLATE_REFERENCE_ERROR = 0.25
#: ``extrapolate``: the round's change of the weights is carried up to this many times as
#: far (:func:`.trainer.extrapolate_weights`: base + factor x (trained - base)), the
#: factor growing with the base model's error on the corrections from
#: :data:`EXTRAPOLATE_REFERENCE_ERROR` (:func:`extrapolation_for_error`); when the
#: self-check refuses the extrapolated model, the trained one is checked next (then
#: ``step_back``). 1 = the trained weights. 1.3 raised
#: ``fluo-blur``'s gain in each of ten draws before the check (the rounds delivered
#: +0.144 instead of +0.133) for 0.002-0.004 more forgetting (docs/finetuning.md,
#: tenth check).
#: ``step_back``: when the self-check refuses the round's change (extrapolated, then as
#: trained), these fractions of it are checked in turn, largest first, and the first that
#: passes is made current (:func:`step_factors`, :func:`.check.choose_step`): the round
#: keeps as much of its adaptation as the check accepts, instead of none. Fractions
#: below 1 move the weights part of the way from the base model to the trained ones
#: (weight-space interpolation, as WiSE-FT). () = never. On ``fluo-blur``, 8 rounds of 20
#: (two training seeds) were not made current with the trained weights alone, for
#: regression drops of 0.005-0.009 against a tolerance of 0.005, while gaining +0.085
#: to +0.208 on the domain's other images; with it all 20 are, and the model in use
#: gains +0.133 on average instead of +0.091 (docs/finetuning.md, eleventh check).
#: ``noise_matched``: when the corrections are dim and noisy (:mod:`.degrade`), this
#: share of the corrections' draws goes to replay crops made as dim and noisy as they
#: are (trained on with their true labels, not distilled); 0 = never.
_OWN_OPTIONS = ("draw", "match_inference", "noise_matched", "more_steps", "extrapolate",
                "step_back")

#: How the crops of a round are drawn: "weighted" (corrections and every replay crop,
#: each with a chance that gives the corrections their share) or "list" (a list of
#: repeated corrections and a random subset of the replay crops, see :func:`mix_samples`).
DRAWS = ("weighted", "list")

#: How the corrections are shown to the network (``match_inference``): as inference
#: shows them (True), at their native pixels (False, as rounds did before, and the
#: self-check then scores natively too), or both ("both": each correction that inference
#: transforms is trained on twice, the copies sharing its chance of being drawn; with
#: ``draw="list"`` the copies are added to the list).
MATCH_INFERENCE = (True, False, "both")

_ARCHITECTURE_FIELDS = ("base_width", "depth", "in_channels")


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


#: The lock file a round holds in its project folder.
ROUND_LOCK_NAME = ".nuclei-unet-round.lock"
#: The projects whose round lock this thread holds (:func:`round_lock` is re-entrant
#: within a thread: the Retrain dock's worker takes it before it writes its note).
_HELD = threading.local()


def one_round_at_a_time(round_function: Callable[..., Generator]) -> Callable[..., Generator]:
    """Hold the project's round lock while ``round_function`` (a generator) runs.

    Two rounds on one project at once (the command line and the Retrain dock, or two
    terminals) each made a version from the same model, and the second was made current
    without being compared with the first, whose corrections it never saw (review
    h_rev24, M3). The second is refused at once, in plain words.
    """
    import functools

    @functools.wraps(round_function)
    def held(*args: Any, **kwargs: Any) -> Generator:
        with round_lock(kwargs["out_dir"]):
            return (yield from round_function(*args, **kwargs))

    return held


def round_lock(out_dir: str | os.PathLike) -> Any:
    """The project's round lock, held (a context manager); FinetuneError when it is taken.

    The command line takes it a moment first too (:func:`check_no_round`), before it
    stores a folder's pairs in the project (review h_rev25, B6). Taken again by the
    thread that holds it, it is held already: the Retrain dock's worker takes it, then
    writes its round's note, then runs :func:`finetune` (review h_rev26, 8).
    """
    import sys
    from contextlib import ExitStack

    from ..locking import take_at_once

    project = Path(out_dir).expanduser().absolute()
    project.mkdir(parents=True, exist_ok=True)
    lock = project / ROUND_LOCK_NAME
    # "nuclei-unet finetune", "napari": the owner said in words, without full paths (GUI
    # check h_gui44, M1)
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:2]]) if sys.argv else "python"
    held = _HELD.__dict__.setdefault("projects", set())
    if project in held:
        return ExitStack()
    held_lock = take_at_once(lock, lambda other: RoundRunning(
        f"A fine-tuning round is already running on the project {project} (in {other}). "
        "Wait for it to end, or stop it, then start this one: two rounds at once would "
        "each start from the same model, and the later would replace the earlier without "
        "being compared with it."), command)
    held.add(project)
    held_lock.callback(held.discard, project)
    return held_lock


def check_no_round(out_dir: str | os.PathLike) -> None:
    """Refuse at once when a round runs on the project ``out_dir`` (an existing one)."""
    if Path(out_dir).expanduser().is_dir():
        with round_lock(out_dir):
            pass


@one_round_at_a_time
def finetune(
    base_model: str | os.PathLike | ModelVersion,
    corrections: Sequence[Any],
    *,
    original: Sequence[Any] | None = None,
    ratio: float | None = None,
    config_overrides: Mapping[str, Any] | None = None,
    out_dir: str | os.PathLike,
    should_stop: Callable[[], bool] | None = None,
    eval_samples: Sequence[Any] | None = None,
    held_out: Sequence[Any] | None = None,
    replay: bool | Sequence[Any] = True,
    check: bool | Sequence[Any] = True,
    tolerance: Mapping[str, float] | None = None,
    segment_options: Any = None,
    inputs_key: str | None = None,
) -> Generator[Any, None, FinetuneResult]:
    """Run one fine-tuning round, save its model as a new version, decide whether to adopt it.

    The model starts from ``base_model``'s weights and trains briefly
    (:data:`FINETUNE_DEFAULTS`) on the corrected samples mixed with the shipped replay
    crops (:mod:`~napari_nuclei_unet.core.finetune.replay`) and any original training
    samples (:func:`mix_samples`), so it learns the corrections without forgetting the
    rest, even when the original data is not at hand. The corrected images, the held-out
    ones, the evaluation images and the built-in regression set (replay ``check`` crops)
    are scored with the base model before and with the new model after training. The
    new model is always saved as a version; it is *adopted* (made current) only when it
    got worse on none of those sets (:func:`~.results.adoption`).

    When the base model is far off on the corrections, the round's change is carried
    further (``extrapolate``, :func:`extrapolation_for_error`). If the self-check
    refuses that model, the plain trained weights are checked next, then parts of the
    change (``step_back``, :func:`.check.choose_step`); the first that passes is made
    current.

    The network sees the corrections as the user's predictions show them
    (``match_inference``, "both" by default): each is resized and smoothed with the
    scale and smoothing that :func:`~napari_nuclei_unet.core.segment.segment_image`
    uses with the base model and ``segment_options`` (found once, before training;
    recorded per correction in the version's ``inference_views``), and with "both" it
    is also trained on at its native pixels (the two copies share its chance of being
    drawn). The corrected, held-out and evaluation images are scored through
    ``segment_image`` with those options. The regression crops are at the training
    scale already: they are scored natively.

    Parameters
    ----------
    base_model : str, os.PathLike or ModelVersion
        ``"default"``, a checkpoint path, or a version of this project (usually
        ``ModelVersions(out_dir).current()``). The first round records it as ``v000``.
    corrections : sequence of Sample
        Corrected samples to learn from, e.g. ``CorrectionStore(out_dir).load_samples()``.
    original : sequence of Sample, optional
        Original training samples, mixed in with the replay crops.
    ratio : float, optional
        Expected share of training crops drawn from the corrections, in ``(0, 1]``.
        Default: :func:`auto_ratio` (0.75 for 1-3 corrections, down to 0.5 for 8+).
        Ignored (1) when there is nothing to mix in.
    config_overrides : mapping, optional
        :class:`TrainConfig` fields over :data:`FINETUNE_DEFAULTS` and the base model's
        configuration, e.g. ``{"epochs": 5, "device": "cpu"}``. Architecture fields
        cannot change. The device is ``"auto"`` unless given here: it is never taken
        from the base model's configuration.
    out_dir : str or os.PathLike
        The project folder: the new model goes to ``<out_dir>/versions/vNNN``.
    should_stop : callable, optional
        Checked between steps; when True the round stops, saves nothing and returns
        with ``cancelled=True``.
    eval_samples : sequence of Sample, optional
        Other labelled samples scored before and after; they count as regression set.
    held_out : sequence of Sample, optional
        Corrected samples the user keeps aside: not trained on, scored before and after.
    replay : bool or sequence of Sample, default True
        Mix the shipped replay crops (or these samples) into training. False: only the
        corrections and ``original``.
    check : bool or sequence of Sample, default True
        Score the shipped regression crops (or these samples) before and after.
    tolerance : mapping, optional
        Allowed mean-IoU drops per set (see :data:`~.results.ADOPT_TOLERANCE`).
    segment_options : SegmentOptions, optional
        How the user's predictions are made (default: automatic diameter, threshold
        0.5): give the nucleus diameter when the user gives one to predict.
    inputs_key : str, optional
        The caller's key of this round's inputs, recorded in the version
        (``info["inputs_key"]``): the Retrain dock compares it with the key of a next
        round to tell one that would only train the same weights again.

    Yields
    ------
    Progress, TrainStep or EpochEnd
        ``Progress("prepare", ...)`` per correction (``match_inference``),
        ``Progress("score-before", ...)`` per image, the updates of
        :func:`~napari_nuclei_unet.core.training.train`, then
        ``Progress("score-after", ...)``, ``Progress("score-plain", ...)`` when an
        extrapolated model was refused and the plain trained weights are checked, and
        ``Progress("score-step-back", ...)`` for each part of the change checked after
        (:func:`.check.choose_step`).

    Returns
    -------
    FinetuneResult
        With ``adopted`` and ``reason``.

    Raises
    ------
    FinetuneError
        No corrections, a bad ratio or override, a damaged replay set, or another round
        running on the project (:func:`one_round_at_a_time`; the project folder is made
        before that check).
    CheckpointError
        When the base model cannot be loaded.
    TrainingError
        When training fails (e.g. out of memory); nothing is saved.
    """
    from ..checkpoint import load_checkpoint
    from ..device import configure_cpu_threads, resolve_device, restored_cpu_threads

    started = time.perf_counter()
    corrections = list(corrections)
    if ratio is None:
        ratio = auto_ratio(len(corrections))
    replay_list = (replay_samples("train") if replay is True else list(replay or []))
    check_list = (replay_samples("check") if check is True else list(check or []))
    sets = {"corrected": corrections, "held_out": list(held_out or []),
            "evaluation": list(eval_samples or []), "regression": check_list}
    base = base_model.model if isinstance(base_model, ModelVersion) else base_model
    project = Path(out_dir).expanduser().absolute()
    loaded = load_checkpoint(base, device="cpu")
    overrides = dict(config_overrides or {})
    round_options = {k: overrides.pop(k, v) for k, v in ROUND_OPTIONS.items()}
    if round_options["draw"] not in DRAWS:
        raise FinetuneError(f"draw must be one of {DRAWS}, got {round_options['draw']!r}.")
    if round_options["match_inference"] not in MATCH_INFERENCE:
        raise FinetuneError(f"match_inference must be one of {MATCH_INFERENCE}, got "
                            f"{round_options['match_inference']!r}.")
    factor = round_options["extrapolate"]
    if not (isinstance(factor, numbers.Real) and not isinstance(factor, bool)
            and math.isfinite(factor) and factor > 0):
        raise FinetuneError(f"extrapolate must be a positive number, got {factor!r}.")
    round_options["step_back"] = step_back_fractions(round_options["step_back"])
    train_options = {k: v for k, v in round_options.items() if k not in _OWN_OPTIONS}
    seed = int(overrides.get("seed", loaded.config.seed))
    # an image kept aside or scored for evaluation is never trained on, not even as an
    # original sample of the loaded data (the same image under its dataset id)
    scored_only = {key for s in [*sets["held_out"], *sets["evaluation"]]
                   for key in (s.id, safe_sample_id(s.id))}
    pool = [s for s in [*(original or []), *replay_list]
            if s.id not in scored_only and safe_sample_id(s.id) not in scored_only]
    if round_options["draw"] == "weighted":
        mixed, actual_ratio, n_original, chances = weighted_samples(corrections, pool, ratio)
        train_options["probabilities"] = chances
    else:
        mixed, actual_ratio, n_original = mix_samples(corrections, pool, ratio, seed=seed)
    train_options["n_corrections"] = len(mixed) - n_original
    config = _round_config(loaded.config, overrides, mixed)
    device = resolve_device(config.device)
    base_net = loaded.model.to(device)
    scoring = None
    if round_options["match_inference"]:
        from ..segment import SegmentOptions

        scoring = segment_options or SegmentOptions()

    # torch's thread count is process-wide: set for the round, put back afterwards.
    with restored_cpu_threads():
        if device.type == "cpu":
            configure_cpu_threads(config.num_threads)
        views = []
        if scoring is not None:
            n_corrections = train_options["n_corrections"]
            shown, views = yield from inference_views(
                base_net, mixed[:n_corrections], scoring, device=device,
                should_stop=should_stop)
            if round_options["match_inference"] == "both":
                # also the native pixels of the corrections that inference transforms:
                # the corrections' share is spread over both copies
                shown = [*shown, *(old for new, old in zip(shown, mixed[:n_corrections],
                                                           strict=True) if new is not old)]
                train_options["n_corrections"] = len(shown)
                if "probabilities" in train_options:
                    train_options["probabilities"] = draw_probabilities(
                        len(shown), len(shown) + n_original, actual_ratio)
            mixed = [*shown, *mixed[n_corrections:]]
        mixed, noisy = _with_noise_matched(mixed, corrections, replay_list, round_options,
                                           train_options, actual_ratio, seed)
        config = _round_config(loaded.config, overrides, mixed)  # crop size
        return (yield from _round(base_model, base, sets, mixed, config, device, base_net,
                                  project, ratio, actual_ratio, n_original, config_overrides,
                                  should_stop, started, tolerance, len(replay_list),
                                  round_options, train_options,
                                  loaded.metadata.get("training_data", {}), scoring, views,
                                  noisy, inputs_key=inputs_key))


def _error_factor(corrected_iou: Sequence[float], most: float,
                  reference: float = STEPS_REFERENCE_ERROR) -> float:
    """``(1 - mean IoU) / reference``, clipped to ``[1, most]`` (1 without a finite IoU)."""
    values = np.asarray(corrected_iou, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 1.0
    return float(np.clip((1.0 - values.mean()) / reference, 1.0, most))


def steps_for_error(epochs: int, corrected_iou: Sequence[float], more: float) -> int:
    """Epochs of a round: more when the base model is far off on the corrections.

    Parameters
    ----------
    epochs : int
        The round's epochs.
    corrected_iou : sequence of float
        IoU of the base model on each corrected image.
    more : float
        At most ``1 + more`` times ``epochs`` (0: always ``epochs``).

    Returns
    -------
    int
        ``epochs`` times ``(1 - mean IoU) / STEPS_REFERENCE_ERROR``, clipped to
        ``[1, 1 + more]``.
    """
    if more <= 0:
        return int(epochs)
    return int(round(epochs * _error_factor(corrected_iou, 1.0 + more)))


def extrapolation_for_error(corrected_iou: Sequence[float], most: float) -> float:
    """How far a round's change is carried: further when the base model is far off.

    Measured as for :func:`steps_for_error`, from :data:`EXTRAPOLATE_REFERENCE_ERROR`:
    where the base model already does well on the corrections, a round's change is
    small and mostly noise, and carrying it further costs the domain's other images
    (``brightfield``, ``histology-x2``: docs/finetuning.md, tenth check); where it is
    far off, the change is the adaptation, and carrying it further adapts more.

    Parameters
    ----------
    corrected_iou : sequence of float
        IoU of the base model on each corrected image.
    most : float
        The ``extrapolate`` option: the largest factor. 1 or less is used as it is
        (1: the trained weights; below 1: a fixed interpolation towards the base).

    Returns
    -------
    float
        ``(1 - mean IoU) / EXTRAPOLATE_REFERENCE_ERROR``, clipped to ``[1, most]``.
    """
    if most <= 1.0:
        return float(most)
    return _error_factor(corrected_iou, most, EXTRAPOLATE_REFERENCE_ERROR)


def _with_noise_matched(mixed, corrections, replay_list, round_options, train_options,
                        actual_ratio, seed):
    """Add replay crops as dim and noisy as the corrections, when these are (:mod:`.degrade`).

    The copies join the corrections' block of ``mixed`` (trained on with their labels,
    never distilled) and take ``noise_matched`` of its share of the draws. Returns the
    new list and what to record (None when no copies were made).
    """
    share = float(round_options["noise_matched"])
    if not 0.0 <= share < 1.0:
        raise FinetuneError(f"noise_matched must be in [0, 1), got {share}.")
    if share == 0.0 or not replay_list:
        return mixed, None
    noisy, measured = matched_replay(corrections, replay_list, seed=seed)
    if not noisy:
        return mixed, None
    n_corrections = train_options["n_corrections"]
    mixed = [*mixed[:n_corrections], *noisy, *mixed[n_corrections:]]
    train_options["n_corrections"] = n_corrections + len(noisy)
    if "probabilities" in train_options:
        train_options["probabilities"] = group_probabilities(
            (n_corrections, len(noisy), len(mixed) - n_corrections - len(noisy)),
            (actual_ratio * (1.0 - share), actual_ratio * share, 1.0 - actual_ratio))
    return mixed, {"n": len(noisy), "share": share, "measured": measured.to_dict()}


def _round(base_model, base, sets, mixed, config, device, base_net, project, ratio,
           actual_ratio, n_original, config_overrides, should_stop, started, tolerance,
           n_replay, round_options, train_options, training_data, scoring, views, noisy,
           inputs_key=None):
    """The body of :func:`finetune` once the inputs are checked (same yields and return)."""
    base_name = base_model.name if isinstance(base_model, ModelVersion) else str(base)
    versions = ModelVersions(project)
    versions.record_base(base)
    order = tuple(ROUND_SETS)  # corrected, held_out, evaluation, regression
    # the user's kind of images as their predictions are made; the regression crops are
    # at the training scale: native
    scored = [([s for key in USER_SETS for s in sets[key]], scoring),
              (sets["regression"], None)]
    before = yield from score_sets(base_net, scored, device, "score-before", should_stop)
    if stop_requested(should_stop):
        return FinetuneResult(None, ratio=actual_ratio, n_original=n_original, cancelled=True,
                              elapsed_s=time.perf_counter() - started)
    corrected_iou = [r.iou for r in before[:len(sets["corrected"])]]
    if "epochs" not in (config_overrides or {}):
        config = config.replace(epochs=steps_for_error(
            config.epochs, corrected_iou, round_options["more_steps"]))

    tuned, history, cancelled = yield from train_round(
        config, mixed, base_net, device=device, should_stop=should_stop,
        out_hint=project, **train_options)
    if cancelled:
        return FinetuneResult(None, history=tuple(history), ratio=actual_ratio,
                              n_original=n_original, cancelled=True,
                              elapsed_s=time.perf_counter() - started)
    factor = extrapolation_for_error(corrected_iou, float(round_options["extrapolate"]))
    try:
        tuned, factor, split, adopted, reason, refused = yield from choose_step(
            tuned, base_net, step_factors(factor, round_options["step_back"]), before,
            scored, sets, order, device, tolerance, should_stop=should_stop)
    except Cancelled:  # stopped while the new model was scored: nothing is saved
        return FinetuneResult(None, history=tuple(history), ratio=actual_ratio,
                              n_original=n_original, cancelled=True,
                              elapsed_s=time.perf_counter() - started)
    store = CorrectionStore(project) if (project / PROJECT_FILE).exists() else None
    stored = {c.id: c for c in store.list()} if store is not None else {}
    info = {
        "base_model": base_name if isinstance(base_model, ModelVersion) else (
            "default" if _is_default_model(base) else str(weights_path(base).resolve())),
        "corrections": [
            {"id": s.id, **({"source": stored[s.id].source, "updated": stored[s.id].updated}
                            if s.id in stored else {})}
            for s in sets["corrected"]
        ],
        "held_out": [s.id for s in sets["held_out"]],
        "ratio": ratio,
        "ratio_actual": actual_ratio,
        "n_original": n_original,
        "n_replay": n_replay,
        "config_overrides": dict(config_overrides or {}),
        "round_options": dict(round_options),
        "extrapolated": factor,
        "refused_factors": refused,
        "inference_views": [v.to_dict() for v in views],
        "noise_matched": noisy,
        "scoring": (None if scoring is None else
                    {"diameter": scoring.diameter, "threshold": scoring.threshold,
                     "tta": scoring.tta}),
        "device": str(device),
        "adopted": adopted,
        "reason": reason,
        "scores": {key: [c.to_dict() for c in split[key]] for key in order},
        **({"inputs_key": str(inputs_key)} if inputs_key else {}),
    }
    for key in order:
        info[f"mean_iou_{key}"] = {"before": _mean([c.iou_before for c in split[key]]),
                                   "after": _mean([c.iou_after for c in split[key]])}
    history = tuple(history)
    version = versions.add(
        tuned, config, info,
        {"history": [{k: v for k, v in h.to_dict().items() if k != "checkpoint"}
                     for h in history],
         "training_data": training_data},
    )
    return FinetuneResult(version, split["corrected"], split["evaluation"], history,
                          actual_ratio, n_original, False, time.perf_counter() - started,
                          held_out=split["held_out"], regression=split["regression"],
                          adopted=adopted, reason=reason,
                          views=tuple(v.to_dict() for v in views))
