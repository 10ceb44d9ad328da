"""A round's self-check: score sets of images with a model, and decide on adoption."""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any

from ..progress import Progress
from .results import ScoreChange, adoption, changes

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
        try:
            while True:
                update = next(job)
                yield Progress(stage, done + update.done, total, update.message)
        except StopIteration as end:
            rows.extend(end.value.rows)
        done += len(samples)
    return rows


def check_round(model: Any, before: Sequence[Any], scored: Sequence[tuple[Sequence[Any], Any]],
                sets: dict[str, Sequence[Any]], order: Sequence[str], device: Any,
                tolerance: dict[str, float] | None, stage: str = "score-after",
                ) -> Generator[Progress, None, tuple[dict[str, Changes], bool, str]]:
    """Score ``model`` after a round against ``before`` and decide on adoption.

    ``scored`` are the groups :func:`score_sets` scored before the round (the sets of
    ``order``, in that order, then the regression crops); the kept-aside evaluation
    images count with the regression crops. Returns the changes per set, whether the
    model may become current, and the one-sentence reason. Progress is yielded as
    ``stage``.
    """
    after = yield from score_sets(model, scored, device, stage, None)
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
