"""A round's self-check: score sets of images with a model, and decide on adoption.

:func:`choose_step` checks a round's change carried several distances along its
direction, largest first, and keeps the first the check accepts.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Generator, Sequence
from typing import Any

from ..progress import Cancelled, Progress, relay, stop_requested
from ._common import FinetuneError
from .results import NOT_ADOPTED, ScoreChange, adoption, changes

Changes = tuple[ScoreChange, ...]


def score_sets(model: Any, groups: Sequence[tuple[Sequence[Any], Any]], device: Any,
               stage: str, should_stop: Callable[[], bool] | None,
               ) -> Generator[Progress, None, list[Any]]:
    """Score each group of samples with its segment options (None: native scale).

    With options, images are segmented as a user's prediction is
    (:func:`~napari_nuclei_unet.core.segment.segment_image`); without, as the Evaluate
    step scores images at native scale (two-head models: contour-seeded nuclei).
    """
    from ..evaluation import evaluate

    total = sum(len(samples) for samples, _ in groups)
    rows: list[Any] = []
    done = 0
    for samples, options in groups:
        if not samples:
            continue
        job = evaluate(model, samples, device=device, should_stop=should_stop,
                       segment_options=options)
        result = yield from relay(job, lambda update, offset=done: Progress(
            stage, offset + update.done, total, update.message))
        rows.extend(result.rows)
        done += len(samples)
    return rows


def check_round(model: Any, before: Sequence[Any], scored: Sequence[tuple[Sequence[Any], Any]],
                sets: dict[str, Sequence[Any]], order: Sequence[str], device: Any,
                tolerance: dict[str, float] | None, stage: str = "score-after",
                should_stop: Callable[[], bool] | None = None,
                ) -> Generator[Progress, None, tuple[dict[str, Changes], bool, str]]:
    """Score ``model`` after a round against ``before`` and decide on adoption.

    ``scored`` are the groups :func:`score_sets` scored before the round (the sets of
    ``order``, in that order, then the regression crops); the kept-aside evaluation
    images count with the regression crops. Returns the changes per set, whether the
    model may become current, and the one-sentence reason. Progress is yielded as
    ``stage``. A stop asked for meanwhile raises :class:`~napari_nuclei_unet.core.
    progress.Cancelled`: Stop in the last seconds of a round was ignored, and the round
    was saved and made current (GUI check h_gui34, N7).
    """
    after = yield from score_sets(model, scored, device, stage, should_stop)
    if stop_requested(should_stop):
        raise Cancelled()
    all_changes = changes(before, after)
    split: dict[str, Changes] = {}
    start = 0
    for key in order:
        split[key] = all_changes[start:start + len(sets[key])]
        start += len(sets[key])
    adopted, reason = adoption(
        {"corrected": split["corrected"], "held_out": split["held_out"],
         "regression": split["regression"] + split["evaluation"]}, dict(tolerance or {}))
    return split, adopted, reason


#: Progress stages of the checks: the first model checked, the trained weights when they
#: are checked after it, and part of the round's change.
FIRST_STAGE, PLAIN_STAGE, STEP_BACK_STAGE = "score-after", "score-plain", "score-step-back"


def choose_step(trained: Any, base: Any, factors: Sequence[float], before: Sequence[Any],
                scored: Sequence[tuple[Sequence[Any], Any]], sets: dict[str, Sequence[Any]],
                order: Sequence[str], device: Any, tolerance: dict[str, float] | None,
                should_stop: Callable[[], bool] | None = None,
                ) -> Generator[Progress, None, tuple[Any, float, dict[str, Changes], bool,
                                                     str, list[float]]]:
    """Check ``base + k x (trained - base)`` for each ``k`` of ``factors`` until one passes.

    Parameters
    ----------
    trained, base : UNet
        The round's trained weights and the model it started from.
    factors : sequence of float
        Distances along the round's change, in the order they are checked (the largest
        first); 1 is the trained weights.
    before, scored, sets, order, device, tolerance, should_stop
        As for :func:`check_round`.

    Fractions below 1 are tried only while the models refused were refused for the
    regression set alone (:func:`_adapted`).

    Returns
    -------
    model, factor, split, adopted, reason, refused
        The model kept and its factor, its score changes, whether it passes, the reason
        (a sentence is added when it is not the first factor), and the factors refused
        before it. When none passes, the one kept is the trained weights (factor 1, or
        the first factor when 1 is not among them): what "use it anyway" should give.
    """
    from .trainer import extrapolate_weights

    refused: list[float] = []
    fallback = None
    for k in factors:
        model = trained if k == 1.0 else extrapolate_weights(trained, base, k)
        if not refused:
            stage = FIRST_STAGE
        elif k == 1.0:
            stage = PLAIN_STAGE
        else:
            stage = STEP_BACK_STAGE
        split, adopted, reason = yield from check_round(
            model, before, scored, sets, order, device, tolerance, stage=stage,
            should_stop=should_stop)
        if adopted:
            return model, k, split, True, reason + _step_note(k, refused, True), refused
        if fallback is None or k == 1.0:
            fallback = (model, k, split, reason)
        refused.append(k)
        if k <= 1.0 and not _adapted(split, tolerance):
            break  # it made the user's images worse: less of the same change will not help
    model, k, split, reason = fallback
    others = [f for f in refused if f != k]
    return model, k, split, False, _with_note(reason, _step_note(k, others, False)), others


def _with_note(reason: str, note: str) -> str:
    """A refused ``reason`` with ``note`` after why it was refused, before what to do."""
    if note and reason.endswith(NOT_ADOPTED):
        return f"{reason[:-len(NOT_ADOPTED)].rstrip()}{note} {NOT_ADOPTED}"
    return reason + note


def _adapted(split: dict[str, Changes], tolerance: dict[str, float] | None) -> bool:
    """Whether a refused model passed on the corrected and kept-aside images.

    Then it was refused for the regression set (forgetting) alone, and part of its
    change may keep some of the adaptation within the tolerance; a model that got worse
    on the user's own images has no adaptation to keep (stepping back would only look
    for a noisy pass).
    """
    passed, _ = adoption({key: split.get(key, ()) for key in ("corrected", "held_out")},
                         dict(tolerance or {}))
    return passed


#: Why a round kept less of its change than it was refused with.
_FORGOT = "lost too much on other kinds of images (the built-in regression set)."


def _step_note(kept: float, refused: Sequence[float], adopted: bool) -> str:
    """The sentence a reason gets when other distances were checked before."""
    if not refused:
        return ""
    if adopted:
        # only a loss on other kinds of images makes a round step back (choose_step)
        if kept < 1.0:
            return (f" It keeps {kept:.0%} of the round's change (a model part of the way "
                    f"from the model in use to the trained one): more of the change {_FORGOT}")
        if kept == 1.0:
            return (" This is the round's plain result (its trained weights): its change "
                    f"made {max(refused):.2f} times as strong {_FORGOT}")
        return (f" This is the round's change made {kept:.2f} times as strong: a stronger "
                f"one {_FORGOT}")
    # in plain words: "the change made 1.30 times as strong and 85%, 70% and 50% of the
    # change were refused too" read as jargon (CLI check h_cli2)
    parts = [f"a stronger model ({k:.2f} times the round's change)" for k in refused if k > 1.0]
    parts += ["the trained weights"] * any(k == 1.0 for k in refused)
    fractions = [f"{k:.0%}" for k in refused if k < 1.0]
    if fractions:
        parts.append(f"milder models ({_listed(fractions)} of the change)")
    if kept == 1.0:
        what = "The version kept is the round's plain result (its trained weights)"
    elif kept < 1.0:
        what = (f"The version kept holds {kept:.0%} of the round's change (part of the way "
                "from the model in use to the trained weights)")
    else:
        what = f"The version kept is the round's change made {kept:.2f} times as strong"
    return f" {what}. Also checked, and refused as well: {_listed(parts)}."


def _listed(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def step_back_fractions(value: Any) -> tuple[float, ...]:
    """The ``step_back`` option as a tuple of fractions, each strictly between 0 and 1.

    A list or tuple of numbers, one number, or None / ``[]`` for none.
    """
    if value is None:
        return ()
    if isinstance(value, numbers.Real):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(k, numbers.Real) and not isinstance(k, bool) and math.isfinite(k)
            and 0.0 < k < 1.0 for k in value):
        raise FinetuneError("step_back must be a list of fractions between 0 and 1 "
                            f"(e.g. [0.85, 0.7, 0.5], or [] for none), got {value!r}.")
    return tuple(float(k) for k in value)


def step_factors(factor: float, step_back: Sequence[float]) -> list[float]:
    """Distances along a round's change that the self-check tries, in turn.

    ``factor`` (:func:`.rounds.extrapolation_for_error`), then the trained weights (1) when
    ``factor`` is above 1, then each fraction of ``step_back`` smaller than both,
    largest first.

    Parameters
    ----------
    factor : float
        The round's extrapolation factor.
    step_back : sequence of float
        The ``step_back`` option: fractions in (0, 1).

    Returns
    -------
    list of float
        E.g. ``[1.3, 1.0, 0.85, 0.7, 0.5]``.
    """
    factors = [float(factor)]
    if factor > 1.0:
        factors.append(1.0)
    least = min(float(factor), 1.0)
    factors += sorted({float(k) for k in step_back if k < least}, reverse=True)
    return factors
