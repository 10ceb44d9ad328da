"""Replay crops made as dim and noisy as the corrections (noise-matched replay).

Three corrected images show the network only a few dozen nuclei of a new kind of
image. When what makes them new is how they were *recorded* (a short exposure or a
weak stain: nuclei a few grey levels above a noisy background), the shipped replay
crops can show it many more times: each crop, made as dim and as noisy as the
corrections, keeps its true labels. A round then learns to read such images on about
a hundred images of every kind of nucleus instead of three.

The corrections are measured with their labels (:func:`measure`):

- **contrast**: median grey level of the nuclei minus that of the background;
- **noise**: robust standard deviation of the differences between neighbouring
  background pixels far from nuclei (divided by sqrt 2), in grey levels.

A replay crop of the same polarity (dark or bright background) is mapped so that its
background level and contrast are the corrections' median, given the noise it lacks,
and rounded to 8-bit grey levels (:func:`degrade`). Only corrections whose noise,
relative to their contrast, is more than :data:`NOISE_FACTOR` times that of the
replay crops get such copies (:func:`matched_replay`): the DSB2018 kinds of images,
magnified ones and out-of-focus ones measure 0.004-0.02, like the replay crops
(median 0.022); fluorescence at 8 % brightness with camera noise 0.3-0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

#: Corrections count as noisy when their noise-to-contrast ratio is more than this
#: many times the replay crops' median.
NOISE_FACTOR = 3.0


@dataclass(frozen=True)
class Degradation:
    """How dim and noisy an image is, measured with its labels.

    Attributes
    ----------
    background : float
        Median grey level of the background.
    contrast : float
        Median grey level of the nuclei minus ``background`` (negative on a bright
        background).
    noise : float
        Noise standard deviation (grey levels).
    """

    background: float
    contrast: float
    noise: float

    @property
    def noise_ratio(self) -> float:
        """Noise relative to the contrast (inf without contrast)."""
        return self.noise / abs(self.contrast) if self.contrast else float("inf")

    def to_dict(self) -> dict[str, float]:
        """JSON-ready fields."""
        return {"background": self.background, "contrast": self.contrast,
                "noise": self.noise}


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    return image.mean(axis=2) if image.ndim == 3 else image


def measure(image: np.ndarray, labels: np.ndarray) -> Degradation | None:
    """Measure one labelled image (None without enough nuclei or background).

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)`` image.
    labels : numpy.ndarray
        ``(H, W)`` instance labels (0 = background).

    Returns
    -------
    Degradation or None
    """
    from scipy import ndimage as ndi

    grey = _grey(image)
    mask = np.asarray(labels) > 0
    if mask.sum() < 16 or (~mask).sum() < 16:
        return None
    background = float(np.median(grey[~mask]))
    contrast = float(np.median(grey[mask])) - background
    far = ~ndi.binary_dilation(mask, iterations=3)
    diffs = np.concatenate([(grey[:, 1:] - grey[:, :-1])[far[:, 1:] & far[:, :-1]],
                            (grey[1:] - grey[:-1])[far[1:] & far[:-1]]])
    if diffs.size < 16:
        return None
    noise = float(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / np.sqrt(2.0))
    if noise == 0.0:  # most neighbours equal (a clean 8-bit plane): the plain deviation
        noise = float(np.std(diffs) / np.sqrt(2.0))
    return Degradation(background, contrast, noise)


def combined(found: Sequence[Degradation | None]) -> Degradation | None:
    """The median of each field over several measurements (None when none)."""
    found = [d for d in found if d is not None]
    if not found:
        return None
    return Degradation(*(float(np.median([getattr(d, f) for d in found]))
                         for f in ("background", "contrast", "noise")))


def degrade(sample: Any, own: Degradation, target: Degradation,
            rng: np.random.Generator) -> Any:
    """A copy of ``sample`` as dim and noisy as ``target`` (same labels).

    Parameters
    ----------
    sample : Sample
        A replay crop (uint8 image, instance labels).
    own : Degradation
        ``sample``'s own measurement (same sign of contrast as ``target``).
    target : Degradation
        The corrections'.
    rng : numpy.random.Generator
        Source of the noise.

    Returns
    -------
    Sample
        Grey uint8 image (3 equal channels), id ``<id>~noisy``.
    """
    gain = target.contrast / own.contrast
    out = target.background + (_grey(sample.image) - own.background) * gain
    extra = np.sqrt(max(target.noise ** 2 - (own.noise * abs(gain)) ** 2, 0.0))
    if extra > 0:
        out = out + rng.normal(0.0, extra, out.shape)
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return replace(sample, id=f"{sample.id}~noisy", image=np.repeat(out[..., None], 3, axis=2))


_MEASURED: dict[tuple[int, ...], tuple[tuple[Any, ...], tuple[Degradation | None, ...]]] = {}


def _measured(replay: Sequence[Any]) -> tuple[Degradation | None, ...]:
    """Measurements of the replay crops, kept per list of objects.

    The shipped set is decoded once per process, so rounds measure it once.
    """
    key = tuple(id(s) for s in replay)
    if key not in _MEASURED:
        if len(_MEASURED) >= 4:
            _MEASURED.clear()
        # the samples are kept with their measurements, so their ids stay theirs
        _MEASURED[key] = (tuple(replay), tuple(measure(s.image, s.labels) for s in replay))
    return _MEASURED[key][1]


def matched_replay(corrections: Sequence[Any], replay: Sequence[Any], *, seed: int = 0
                   ) -> tuple[list[Any], Degradation | None]:
    """Replay crops made as dim and noisy as the corrections, when these are noisy.

    Parameters
    ----------
    corrections : sequence of Sample
        The corrected images at their native pixels.
    replay : sequence of Sample
        The replay crops to copy (same-polarity ones are used).
    seed : int
        Seed of the noise.

    Returns
    -------
    samples : list of Sample
        The degraded copies; empty when the corrections are not noisier than the
        replay crops (see :data:`NOISE_FACTOR`).
    target : Degradation or None
        The corrections' measurement (median over them).
    """
    target = combined([measure(s.image, s.labels) for s in corrections])
    if target is None or target.contrast == 0 or not replay:
        return [], target
    own = _measured(replay)
    pairs = [(s, m) for s, m in zip(replay, own, strict=True)
             if m is not None and m.contrast * target.contrast > 0]
    if not pairs:
        return [], target
    usual = float(np.median([m.noise_ratio for _, m in pairs]))
    if not target.noise_ratio > NOISE_FACTOR * usual:
        return [], target
    rng = np.random.default_rng(seed)
    return [degrade(s, m, target, rng) for s, m in pairs], target
