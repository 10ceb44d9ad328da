"""Guess the imaging modality of a nucleus image from its pixels.

DSB2018 mixes three kinds of images, and models, metrics and validation splits are
usually looked at per kind:

- ``"fluorescence"``: bright nuclei on a dark background (any colour);
- ``"brightfield"``: grey image with a bright background;
- ``"histology"``: coloured image with a bright background (H&E-like purple/pink).

The guess uses two robust numbers: the background brightness (median grey level) and
the colourfulness (mean of ``max(R, G, B) - min(R, G, B)``). On DSB2018 stage1_train the
three groups are far apart (fluorescence median <= 44, the others >= 131; grey images
have colourfulness exactly 0, histology >= 12), so the thresholds below sit in wide gaps.
"""

from __future__ import annotations

import numpy as np

MODALITIES = ("fluorescence", "brightfield", "histology")

#: Median grey level below which the background counts as dark (fluorescence).
DARK_BACKGROUND_MAX = 90.0
#: Mean channel spread above which a bright-background image counts as coloured.
COLOUR_MIN = 6.0
#: Pixels looked at (the image is subsampled on a regular grid beyond this).
_MAX_PIXELS = 65_536


def modality_features(image: np.ndarray) -> tuple[float, float]:
    """Return ``(background, colourfulness)`` of an image, the numbers the guess uses.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W, 3)`` uint8 (or ``(H, W)`` grey).

    Returns
    -------
    tuple of float
        Median grey level (0..255) and mean ``max - min`` over the colour channels.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    step = max(1, int(np.ceil(np.sqrt(a.shape[0] * a.shape[1] / _MAX_PIXELS))))
    channels = [a[::step, ::step, c].astype(np.int16) for c in range(min(3, a.shape[2]))]
    grey = sum(channels) / len(channels)  # per-channel ops: much faster than axis=2 reductions
    colour = 0.0
    if len(channels) > 1:
        spread = np.maximum.reduce(channels) - np.minimum.reduce(channels)
        colour = float(spread.mean())
    return float(np.median(grey)), colour


def guess_modality(image: np.ndarray) -> str:
    """Guess whether an image is fluorescence, brightfield or histology.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W, 3)`` uint8 image (``(H, W)`` grey is accepted too).

    Returns
    -------
    str
        One of :data:`MODALITIES`: ``"fluorescence"`` when the background is dark,
        otherwise ``"histology"`` when the image is coloured, else ``"brightfield"``.

    Examples
    --------
    >>> import numpy as np
    >>> guess_modality(np.zeros((8, 8, 3), np.uint8))
    'fluorescence'
    >>> guess_modality(np.full((8, 8, 3), 220, np.uint8))
    'brightfield'
    """
    background, colour = modality_features(image)
    if background < DARK_BACKGROUND_MAX:
        return "fluorescence"
    if colour > COLOUR_MIN:
        return "histology"
    return "brightfield"
