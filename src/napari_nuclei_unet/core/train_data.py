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
