"""Per-image normalisation, shared by training and prediction.

Every image, whatever its modality, is mapped the same way:

1. converted to 3 channels (grey is repeated, alpha is dropped);
2. scaled so that its 1st percentile maps to 0 and its 99.8th percentile to 1
   (one pair of percentiles for all channels, so colours keep their balance); a few
   nuclei in a large field, too few for the 99.8th percentile to reach them, map to 1
   instead of the background's noise (:data:`SPARSE_NOISE_TIMES`);
3. inverted (``1 - x``) when the background is bright, i.e. when the median of the
   scaled grey image is above 0.5. Bright-background brightfield and H&E images then
   look like dark-background fluorescence, which is most of the DSB2018 data.

Percentiles make the map independent of the image's brightness and bit depth: a dim
raw image (max ~100 of 255), the same image in 16 bit or as floats, or one scaled by
any factor, all give the same normalised image (up to the rounding of the dim one).
NaN and infinite pixels (floating-point input) are left out of the statistics and
mapped to the background. Boolean images are read as 0/1.

The mapping is affine per image, so training can store the two numbers of
:func:`normalization_params` per image and normalise random crops of the raw
``uint8`` image exactly as :func:`normalize_image` would normalise the whole image.
This module needs numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOW_PERCENTILE = 1.0
HIGH_PERCENTILE = 99.8
_MAX_STAT_PIXELS = 1 << 17  # percentiles are estimated on at most ~131k pixels

#: A few nuclei in a large field cover less than 0.2 % of it: the 99.8th percentile then
#: falls in the background, whose noise is stretched to the brightness of nuclei, and the
#: network finds "nuclei" all over the field (a 1024 px field holding one 96 px crop of a
#: validation image: 0.539 mean IoU and false nuclei on 31 of 55 images; see
#: ``benchmarks/bench_sparse.py``). When the 99.8th percentile is below the median plus
#: this many times the noise (the spread of neighbouring pixels' differences; at least
#: half a grey level for integer images), the high end is the :data:`SPARSE_PERCENTILE`
#: percentile of the pixels above that level, when there are at least
#: ``_MIN_SPARSE_PIXELS``. It changes none of stage1_train's 670 images but one (a
#: large H&E image, by 3 %), and no validation image under any generalisation protocol.
SPARSE_NOISE_TIMES = 10.0
SPARSE_PERCENTILE = 90.0
_MIN_SPARSE_PIXELS = 20


@dataclass(frozen=True)
class NormalizationParams:
    """Affine map ``x * scale + offset`` from raw to normalised intensities.

    Attributes
    ----------
    scale : float
        Multiplier (negative when the image is inverted).
    offset : float
        Added after scaling.
    inverted : bool
        Whether the image was found to have a bright background and was inverted.
    """

    scale: float
    offset: float
    inverted: bool


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Return an ``(H, W, 3)`` view or copy of a grey, grey+alpha, RGB or RGBA image.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)``, ``(H, W, 1)``, ``(H, W, 2)`` (grey + alpha), ``(H, W, 3)`` or
        ``(H, W, 4)`` (alpha is dropped) array of any real dtype.

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` array of the input dtype.

    Raises
    ------
    ValueError
        When the shape is not one of the above.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (1, 2):
        return np.repeat(image[:, :, :1], 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return image[:, :, :3]
    raise ValueError(
        f"Expected an image of shape (H, W), (H, W, 1..4) (grey, grey+alpha, RGB, RGBA); "
        f"got shape {image.shape}."
    )


def normalization_params(image: np.ndarray) -> NormalizationParams:
    """Compute the per-image affine normalisation of :func:`normalize_image`.

    Parameters
    ----------
    image : numpy.ndarray
        Any image accepted by :func:`as_rgb`.

    Returns
    -------
    NormalizationParams
        The map to apply to the raw values (all channels alike).
    """
    rgb = _real(as_rgb(image))
    h, w = rgb.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(h * w / _MAX_STAT_PIXELS))))
    sub = rgb[::step, ::step].astype(np.float64, copy=False)
    if rgb.dtype.kind == "f" and not np.isfinite(sub).all():  # integers are finite
        finite = np.isfinite(sub).all(axis=2)
        sub = sub[finite][None] if finite.any() else np.zeros((1, 1, 3))
    low, high = (float(v) for v in np.percentile(sub, [LOW_PERCENTILE, HIGH_PERCENTILE]))
    grey = sub.mean(axis=2)
    median = float(np.median(grey))
    high = _sparse_high(sub, grey, median, high, integer=rgb.dtype.kind in "ui")
    if high - low < 1e-6 * max(1.0, abs(high)):
        # Flat image: nothing to stretch; centre it so it becomes all zeros.
        high = low + 1.0
    scale = 1.0 / float(high - low)
    offset = -float(low) * scale
    grey_median = median * scale + offset
    inverted = grey_median > 0.5
    if inverted:
        scale, offset = -scale, 1.0 - offset
    return NormalizationParams(scale=scale, offset=offset, inverted=inverted)


def _sparse_high(sub: np.ndarray, grey: np.ndarray, median: float, high: float, *,
                 integer: bool) -> float:
    """The high end for a few nuclei in a large field (see :data:`SPARSE_NOISE_TIMES`).

    ``sub``: the ``(h, w, 3)`` pixels the percentiles were taken on, ``grey`` their mean
    over the channels and ``median`` its median; ``high``: their 99.8th percentile,
    returned as it is unless the plane is sparse.
    """
    if grey.shape[1] < 2:
        return high
    noise = 1.4826 * float(np.median(np.abs(np.diff(grey, axis=1)))) / np.sqrt(2.0)
    if integer:
        noise = max(noise, 0.5)
    if not noise > 0:
        return high
    level = median + SPARSE_NOISE_TIMES * noise
    if high >= level:
        return high
    signal = sub[grey > level]
    if signal.shape[0] < _MIN_SPARSE_PIXELS:
        return high  # an empty field, or nuclei no brighter than the noise
    return max(high, float(np.percentile(signal, SPARSE_PERCENTILE)))


def normalize_image(image: np.ndarray, params: NormalizationParams | None = None) -> np.ndarray:
    """Normalise an image for the network.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA image of any real dtype
        (``uint8`` for DSB2018).
    params : NormalizationParams, optional
        Precomputed parameters (from :func:`normalization_params` of the same, or of a
        larger, image); computed from ``image`` when omitted.

    Returns
    -------
    numpy.ndarray
        ``(3, H, W)`` float32, background near 0 and nuclei near 1 (values may leave
        [0, 1] slightly for the brightest/darkest 0.2 %/1 % of pixels).
    """
    rgb = _real(as_rgb(image))
    if params is None:
        params = normalization_params(rgb)
    out = np.empty((3, *rgb.shape[:2]), dtype=np.float32)
    wide = rgb.dtype.itemsize > 2
    for c in range(3):
        channel = rgb[:, :, c]
        if wide:  # float64 / 32-bit integers: scale in double precision first
            out[c] = channel * params.scale + params.offset
            continue
        np.multiply(channel, np.float32(params.scale), out=out[c], casting="unsafe")
        out[c] += np.float32(params.offset)
    if rgb.dtype.kind == "f" and not np.isfinite(out).all():
        background = np.float32(0.0)
        np.nan_to_num(out, copy=False, nan=background, posinf=background, neginf=background)
    return out


def _real(rgb: np.ndarray) -> np.ndarray:
    """Bool images as uint8 0/1; complex images are refused with a plain message."""
    if rgb.dtype == bool:
        return rgb.astype(np.uint8)
    if rgb.dtype.kind not in "uif":
        raise ValueError(
            f"Expected an image of real numbers (integers or floats), got dtype {rgb.dtype}; "
            "convert it (e.g. take its magnitude) before segmenting."
        )
    return rgb
