"""How a round mixes the user's corrections with the replay crops.

The training list, each entry's chance of being drawn, and the corrections' default share.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._common import FinetuneError
from .trainer import draw_probabilities


def auto_ratio(n_corrections: int) -> float:
    """Default share of correction crops: more weight when there are few corrections.

    0.75 for up to 3 corrected images, falling linearly to 0.5 at 8 and more: with a
    plain share, 1-3 images would be drowned by the replay crops and a round would
    barely move the model.

    Parameters
    ----------
    n_corrections : int
        Number of corrected images trained on.

    Returns
    -------
    float
    """
    return float(np.clip(0.75 - 0.05 * (n_corrections - 3), 0.5, 0.75))



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


def weighted_samples(
    corrections: Sequence[Any], original: Sequence[Any] | None, ratio: float
) -> tuple[list[Any], float, int, np.ndarray]:
    """The training list of a round drawn by weight: every sample once, with its chance.

    The corrections come first and share ``ratio`` of the draws equally; every other
    sample (replay crops, original data) shares the rest, so all of them are seen
    (:func:`mix_samples` repeats corrections and keeps a random subset of the others).

    Parameters
    ----------
    corrections : sequence of Sample
        The corrected samples (at least one).
    original : sequence of Sample or None
        Replay and original samples; those with the id of a correction are left out.
    ratio : float
        Share of the draws from the corrections, ``0 < ratio <= 1``.

    Returns
    -------
    samples : list of Sample
        Corrections, then the others.
    actual_ratio : float
        The corrections' share (1 when there is nothing else).
    n_original : int
        How many other samples are in the list.
    probabilities : numpy.ndarray
        The chance of each entry (see :func:`.trainer.draw_probabilities`).

    Raises
    ------
    FinetuneError
        Without corrections, or with ``ratio`` outside ``(0, 1]``.
    """
    mix_samples(corrections, [], ratio)  # the same checks and messages
    corrected_ids = {s.id for s in corrections}
    pool = [s for s in (original or []) if s.id not in corrected_ids]
    if ratio >= 1.0:
        pool = []
    samples = [*corrections, *pool]
    chances = draw_probabilities(len(corrections), len(samples), ratio)
    return samples, (ratio if pool else 1.0), len(pool), chances
