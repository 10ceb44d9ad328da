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

Before a plane is segmented (not here: in :func:`~napari_nuclei_unet.core.segment.segment_image`,
and for training in :class:`~napari_nuclei_unet.core.augment.CropSampler`), a frame or the
corners of one value around the sample (a padded or rotated image) are filled with its
background (:func:`~napari_nuclei_unet.core.margins.fill_constant_margins`),
an RGB image whose signal is all in one colour is read as that channel's grey image
(:func:`single_colour_as_grey`), and a few nuclei far brighter than the rest are clipped
(:func:`clip_bright_outliers`), so that the 99.8th percentile no longer leaves the others
dim; :func:`prepare_plane` applies the three.

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


#: A few nuclei far brighter than the rest (dividing or dying cells in a DNA stain, cells
#: that express a nuclear marker strongly) hold the 99.8th percentile, and the others
#: are normalised dim: with one nucleus in ten made eight times brighter, the validation
#: split's dark-background images fell from 0.860 to 0.719 mean IoU. When the 99.8th
#: percentile lies more than this many times as far above the 1st as the 75th
#: percentile of the image's foreground (the pixels above the background's median plus
#: ten times its noise, and above :data:`_BRIGHT_FOREGROUND_FLOOR` of the range), the
#: raw image is clipped at :data:`BRIGHT_CEILING` times that percentile (both measured
#: from the 1st percentile): the median DSB2018 image holds it at 1.7 times less than
#: its 99.8th percentile. (The 75th, not the median: small or blurred nuclei are mostly
#: edge pixels.) Dark-background images only; 2 of stage1_train's 546 such images are
#: clipped. Measured with ``benchmarks/bench_generalisation.py`` (``bright10``,
#: ``bright3``).
BRIGHT_FEW_TIMES = 4.0
BRIGHT_CEILING = 1.75
_BRIGHT_FOREGROUND_PERCENTILE = 75.0
_BRIGHT_FOREGROUND_FLOOR = 0.05


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
    sub, grey, low, high, median, integer = _statistics(image)
    high = _sparse_high(sub, grey, median, high, integer=integer)
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


def _statistics(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float, float, bool]:
    """The pixels the statistics are taken on and the image's percentiles.

    Returns ``(sub, grey, low, high, median, integer)``: ``sub``, the ``(h, w, 3)``
    float64 pixels of a strided subsample (non-finite pixels of a float image left out,
    then as one ``(1, n, 3)`` row); ``grey``, their mean over the channels; the 1st and
    99.8th percentiles of ``sub``; the median of ``grey``; whether the image holds
    integers (booleans read as 0/1).
    """
    rgb = _real(as_rgb(image))
    sub = _strided(rgb)
    if sub.size == 0:
        sub = np.zeros((1, 1, 3))
    low, high = (float(v) for v in np.percentile(sub, [LOW_PERCENTILE, HIGH_PERCENTILE]))
    grey = sub.mean(axis=2)
    return sub, grey, low, high, float(np.median(grey)), rgb.dtype.kind in "ui"


def _strided(pixels: np.ndarray) -> np.ndarray:
    """The ``(h, w, C)`` float64 subsample of ``(H, W, C)`` pixels statistics are taken on.

    At most about :data:`_MAX_STAT_PIXELS` pixels, evenly strided. The non-finite pixels
    of a float image are left out; the rest then come as one ``(1, n, C)`` row (``n`` may
    be 0).
    """
    step = _step(*pixels.shape[:2])
    sub = pixels[::step, ::step].astype(np.float64, copy=False)
    if pixels.dtype.kind == "f" and not np.isfinite(sub).all():  # integers are finite
        sub = sub[np.isfinite(sub).all(axis=2)][None]
    return sub


def _step(height: int, width: int) -> int:
    """The stride that leaves about :data:`_MAX_STAT_PIXELS` of a plane's pixels."""
    return max(1, int(np.ceil(np.sqrt(height * width / _MAX_STAT_PIXELS))))


def _bright_background(median: float, low: float, high: float) -> bool:
    """Whether a median grey lies above the middle of ``low``-``high``, as inversion decides."""
    return median - low > 0.5 * (high - low)


def _noise(grey: np.ndarray, integer: bool) -> float:
    """The noise of ``grey``: the spread of neighbouring pixels' differences (robust).

    At least half a grey level for integer images; 0 for a one-pixel-wide image.
    """
    if grey.shape[1] < 2:
        return 0.0
    return _spread(np.abs(np.diff(grey, axis=1)), integer)


def _spread(steps: np.ndarray, integer: bool) -> float:
    """The noise behind neighbouring pixels' absolute differences (0 when there are none)."""
    noise = 1.4826 * float(np.median(steps)) / np.sqrt(2.0) if steps.size else 0.0
    return max(noise, 0.5) if integer else noise


def _sparse_high(sub: np.ndarray, grey: np.ndarray, median: float, high: float, *,
                 integer: bool) -> float:
    """The high end for a few nuclei in a large field (see :data:`SPARSE_NOISE_TIMES`).

    ``sub``: the ``(h, w, 3)`` pixels the percentiles were taken on, ``grey`` their mean
    over the channels and ``median`` its median; ``high``: their 99.8th percentile,
    returned as it is unless the plane is sparse.
    """
    noise = _noise(grey, integer)
    if not noise > 0:
        return high
    level = median + SPARSE_NOISE_TIMES * noise
    if high >= level:
        return high
    signal = sub[grey > level]
    if signal.shape[0] < _MIN_SPARSE_PIXELS:
        return high  # an empty field, or nuclei no brighter than the noise
    return max(high, float(np.percentile(signal, SPARSE_PERCENTILE)))


def bright_outlier_ceiling(image: np.ndarray) -> float | None:
    """The raw level to clip a few far brighter nuclei at, or None (see :data:`BRIGHT_FEW_TIMES`).

    Parameters
    ----------
    image : numpy.ndarray
        One plane, as :func:`normalization_params` takes it.

    Returns
    -------
    float or None
        None for bright-background images, flat or empty ones, and images whose 99.8th
        percentile is within :data:`BRIGHT_FEW_TIMES` times their foreground's 75th.
    """
    _, grey, low, high, median, integer = _statistics(image)
    noise = _noise(grey, integer)
    if not high > low or _bright_background(median, low, high):
        return None
    level = max(median + SPARSE_NOISE_TIMES * noise, low + _BRIGHT_FOREGROUND_FLOOR * (high - low))
    foreground = grey[grey > level]
    if foreground.size < _MIN_SPARSE_PIXELS:
        return None
    typical = float(np.percentile(foreground, _BRIGHT_FOREGROUND_PERCENTILE)) - low
    if not typical > 0 or high - low <= BRIGHT_FEW_TIMES * typical:
        return None
    return low + BRIGHT_CEILING * typical


def clip_bright_outliers(image: np.ndarray) -> np.ndarray:
    """``image`` with a few far brighter nuclei clipped, or ``image`` itself.

    The raw values above :func:`bright_outlier_ceiling` are set to it (rounded up for
    integer images), all channels alike; the dtype is kept. The percentiles of
    :func:`normalize_image` then show the other nuclei as bright as in a typical
    training image, and the bright ones as saturated.

    Parameters
    ----------
    image : numpy.ndarray
        Any image accepted by :func:`as_rgb`, in its own shape.

    Returns
    -------
    numpy.ndarray
        A clipped copy, or ``image`` unchanged (the same object) when nothing is clipped.
    """
    ceiling = bright_outlier_ceiling(image)
    if ceiling is None:
        return image
    image = np.asarray(image)
    if image.dtype.kind in "ui":
        return np.minimum(image, image.dtype.type(min(np.ceil(ceiling), np.iinfo(image.dtype).max)))
    return np.minimum(image, image.dtype.type(ceiling))


#: A fluorescence image saved in colour holds its nuclei in one channel (a DNA stain shown
#: in blue, a nuclear marker in green) and nearly nothing in the others. The network,
#: trained on grey fluorescence and colour tissue, did not read such an image: the
#: validation split's dark-background images with their grey in the blue channel only
#: scored 0.157 mean IoU (0.860 as grey). When each other channel's range (99.8th minus
#: 1st percentile) is at most this share of the strongest one's, the image is segmented
#: as the grey image of that channel. No image of stage1_train is one.
SINGLE_COLOUR_SHARE = 0.1


def single_colour_as_grey(image: np.ndarray) -> np.ndarray:
    """The one channel of an image whose signal is all in one colour, or ``image`` itself.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` grey or ``(H, W, C)`` colour plane of any real dtype.

    Returns
    -------
    numpy.ndarray
        ``(H, W)``, the channel of ``image`` (RGB or RGBA) that holds the signal, when
        every other colour channel's range is at most :data:`SINGLE_COLOUR_SHARE` of its
        range; else ``image`` (the same object).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        return image
    sub = _strided(_real(as_rgb(image))).reshape(-1, 3)
    if sub.size == 0:
        return image
    low, high = np.percentile(sub, [LOW_PERCENTILE, HIGH_PERCENTILE], axis=0)
    ranges = high - low
    strongest = int(np.argmax(ranges))
    if not ranges[strongest] > 0 or np.delete(ranges, strongest).max() > (
            SINGLE_COLOUR_SHARE * ranges[strongest]):
        return image
    return image[..., strongest]


def prepare_plane(image: np.ndarray) -> np.ndarray:
    """A plane as the network is given it, before normalisation (segmenting and training).

    A frame or corners of one value filled with the sample's background
    (:func:`~napari_nuclei_unet.core.margins.fill_constant_margins`), an RGB image whose
    signal is all in one colour read as that channel (:func:`single_colour_as_grey`), a
    few far brighter nuclei clipped (:func:`clip_bright_outliers`), in that order.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)`` plane of any real dtype.

    Returns
    -------
    numpy.ndarray
        ``image`` itself when no rule applies; else a new array of the same dtype (grey
        ``(H, W)`` when read as one colour's channel).
    """
    from .margins import fill_constant_margins  # it builds on this module's statistics

    return clip_bright_outliers(single_colour_as_grey(fill_constant_margins(image)))


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
