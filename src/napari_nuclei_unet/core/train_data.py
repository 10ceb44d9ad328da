"""Which samples training uses, and how: the validation split, drawing weights, nucleus size.

numpy only; :func:`napari_nuclei_unet.core.training.train` records what these give in
the checkpoint's metadata.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from .instances import typical_diameter


def split_train_val(
    samples: Sequence[Any], val_fraction: float, seed: int
) -> tuple[list[Any], list[Any]]:
    """Seeded train/validation split, stratified by modality.

    Within each modality, ``round(n * val_fraction)`` samples (at least one when the
    modality has two or more samples and ``val_fraction > 0``) go to validation.
    The split depends only on the sample ids, modalities and ``seed``, not on the
    order of ``samples``.

    Parameters
    ----------
    samples : sequence of Sample
        Objects with ``id`` and ``modality``.
    val_fraction : float
        Fraction in [0, 1).
    seed : int
        Seed of the split.

    Returns
    -------
    (list, list)
        Training and validation samples, each in the input order.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    by_modality: dict[str, list[str]] = {}
    for sample in samples:
        by_modality.setdefault(str(getattr(sample, "modality", "")), []).append(sample.id)
    val_ids: set[str] = set()
    for modality in sorted(by_modality):
        ids = sorted(by_modality[modality])
        n_val = round(len(ids) * val_fraction)
        if val_fraction > 0 and len(ids) >= 2:
            n_val = max(1, n_val)
        rng = np.random.default_rng([seed, _stable_hash(modality)])
        val_ids.update(ids[i] for i in rng.permutation(len(ids))[:n_val])
    train = [s for s in samples if s.id not in val_ids]
    val = [s for s in samples if s.id in val_ids]
    return train, val


def _stable_hash(text: str) -> int:
    return int.from_bytes(text.encode("utf-8")[:16].ljust(16, b"\0"), "little") % (2**63)


def sampling_probabilities(samples: Sequence[Any], balance: float) -> np.ndarray | None:
    """Probability of drawing each training image, favouring rare modalities.

    Image ``i`` of a modality with ``n`` training images gets weight ``n ** -balance``
    (normalised to sum to 1), so the modalities' shares of the crops go from their
    share of the images (``balance=0``) to equal (``balance=1``). Returns ``None`` for
    ``balance=0``: uniform sampling, drawn the same way as before the option existed.
    Samples without a ``modality`` attribute count as one modality (as in
    :func:`split_train_val`).
    """
    if balance == 0 or not samples:
        return None
    modalities = [str(getattr(s, "modality", "")) for s in samples]
    counts = Counter(modalities)
    weights = np.array([counts[m] ** -balance for m in modalities], dtype=np.float64)
    return weights / weights.sum()


def resumed_split(samples: Sequence[Any], recorded: Any, val_fraction: float,
                  seed: int) -> tuple[list[Any], list[Any], str]:
    """The split of a resumed run: the validation images it recorded stay validation.

    Splitting again moved images between the sets as soon as one image was added to the
    folder: an image the run had trained on was then validated as unseen, and ``best``
    chosen on it (review h_rev23, M1). Images the run has not seen join the training set.

    Parameters
    ----------
    samples : sequence of Sample
        The labelled samples given now.
    recorded : dict or None
        The checkpoint's ``training_data`` (:func:`data_description`); without its
        ``val_ids`` (older checkpoints) the samples are split as a new run splits them.
    val_fraction, seed
        As for :func:`split_train_val`.

    Returns
    -------
    (list, list, str)
        Training and validation samples, and a note saying what changed since the run
        was started ("" when nothing did).

    Raises
    ------
    ValueError
        When none of the recorded validation images is among ``samples``: another
        dataset, on which resuming would mix two runs' scores.
    """
    val_ids = recorded.get("val_ids") if isinstance(recorded, dict) else None
    if not isinstance(val_ids, list):
        return (*split_train_val(samples, val_fraction, seed), "")
    wanted = {str(i) for i in val_ids}
    train = [s for s in samples if s.id not in wanted]
    val = [s for s in samples if s.id in wanted]
    if wanted and not val:
        raise ValueError(
            f"None of the {len(wanted)} validation images this run was started with is in "
            "the dataset given now: it is another dataset. To train on it starting from this "
            "run's model, start a new run from its weights (--init on the command line; in the "
            "Train panel, load it in the Model panel and start from 'current model').")
    words = []
    if len(val) < len(wanted):
        words.append(f"{len(wanted) - len(val)} of its {len(wanted)} validation images are "
                     "missing now (it validates on the others)")
    n_train = recorded.get("n_train")
    if isinstance(n_train, int) and len(train) != n_train:
        words.append(f"it trains on {len(train)} images, not {n_train}"
                     + (": the new ones join the training set, never validation"
                        if len(train) > n_train else ""))
    note = ("The dataset changed since this run was started: " + "; ".join(words) + "."
            if words else "")
    return train, val, note


def data_description(train_samples: Sequence[Any], val_samples: Sequence[Any]) -> dict:
    """What a checkpoint records of its training data: counts, modalities, validation ids."""
    def counts(samples: Sequence[Any]) -> dict[str, int]:
        return dict(sorted(Counter(str(getattr(s, "modality", "")) for s in samples).items()))

    return {
        "n_train": len(train_samples),
        "n_val": len(val_samples),
        "train_modalities": counts(train_samples),
        "val_modalities": counts(val_samples),
        "train_pixels": int(sum(np.asarray(s.labels).size for s in train_samples)),
        "val_ids": sorted(s.id for s in val_samples),
    }


def training_diameter(samples: Sequence[Any]) -> float | None:
    """Median over images of each image's typical nucleus diameter (pixels).

    Crops are taken at native resolution (with symmetric scale jitter), so this is the
    nucleus size the network learns best; prediction rescales images towards it.
    None when no sample has nuclei.
    """
    sizes = [typical_diameter(np.asarray(s.labels)) for s in samples]
    sizes = [d for d in sizes if d]
    return float(np.median(sizes)) if sizes else None
