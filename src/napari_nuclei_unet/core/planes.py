"""Operations on one image plane that inference (and fine-tuning) share.

Resizing a plane as inference resizes it for the network, the Gaussian smoothing and
the contrast measure of dim planes, and how sure a prediction is (:func:`sharpness`).
No model here: :mod:`.segment` decides with them which scale and smoothing to predict
at.
"""

from __future__ import annotations

import numpy as np


def grey_levels(image: np.ndarray) -> float | None:
    """Grey levels an integer plane's contrast spans (None for float planes).

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)`` plane.

    Returns
    -------
    float or None
        The 99.8th minus the 1st percentile (the span the normalisation stretches to
        0-1), in grey levels; None for floating-point or empty planes.
    """
    if image.dtype.kind not in "ui" or image.size == 0:
        return None
    from .normalize import normalization_params

    return 1.0 / abs(normalization_params(image).scale)


def sharpness(prob: np.ndarray) -> float:
    """How sure a foreground map is near its nuclei: mean ``|2p - 1|`` there.

    The mean is taken over the foreground (``p > 0.5``) grown by 2 pixels, so that a
    blurred or noisy prediction (probabilities near 0.5 around and inside the nuclei)
    scores low, whatever the share of background. 0 for a map with no foreground.

    Parameters
    ----------
    prob : numpy.ndarray
        ``(H, W)`` foreground probability.

    Returns
    -------
    float
        In [0, 1].
    """
    from scipy import ndimage as ndi

    near = ndi.binary_dilation(prob > 0.5, iterations=2)
    if not near.any():
        return 0.0
    return float(np.mean(np.abs(2.0 * prob[near] - 1.0)))


def smooth(image: np.ndarray, sigma: float) -> np.ndarray:
    """``image`` smoothed by a Gaussian of ``sigma`` pixels in its two plane axes, float32."""
    from scipy import ndimage as ndi

    sigmas = (sigma, sigma) + (0,) * (image.ndim - 2)
    return ndi.gaussian_filter(image.astype(np.float32), sigmas)


#: How an image is enlarged before the network: "bicubic" (torch, clipped to the
#: image's range) or "bilinear" (skimage, as before).
ENLARGE = "bicubic"


def resize_array(array: np.ndarray, shape: tuple[int, int], order: int) -> np.ndarray:
    """``array`` resized to ``shape`` in its two plane axes.

    Order 0 is nearest (labels; the dtype is kept), order 1 bilinear with
    anti-aliasing when made smaller (float32).
    """
    from skimage.transform import resize

    if array.dtype.kind == "f" and not np.isfinite(array).any():
        # no number at all (all NaN): it stays so, and normalisation makes it background,
        # without scikit-image's "All-NaN slice" warning (review h_rev15, L11); not by
        # warnings.catch_warnings, which dask's block threads share (h_rev18, L4)
        return np.full(shape + array.shape[2:], np.nan, np.float32)
    return resize(
        array, shape + array.shape[2:], order=order, preserve_range=True,
        anti_aliasing=order > 0 and (shape[0] < array.shape[0]), mode="edge",
    ).astype(array.dtype if order == 0 else np.float32, copy=False)


def resize_plane(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An image plane resized to ``shape`` as inference resizes it for the network.

    Enlarged: bicubic (:data:`ENLARGE`), clipped to the plane's range; made smaller:
    bilinear with anti-aliasing. Fine-tuning shows corrections the same way
    (:mod:`.finetune.view`).

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)`` plane, any real dtype.
    shape : tuple of int
        ``(height, width)`` wanted.

    Returns
    -------
    numpy.ndarray
        float32, ``shape`` plus the plane's channels.
    """
    if shape[0] > np.shape(image)[0] and ENLARGE == "bicubic":
        return enlarge(image, shape)
    return resize_array(np.asarray(image).astype(np.float32), shape, 1)


def enlarge(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``image`` enlarged to ``shape`` (bicubic, clipped to its own range), float32."""
    import torch
    import torch.nn.functional as F

    plane = np.asarray(image, dtype=np.float32)
    x = torch.from_numpy(np.ascontiguousarray(plane.reshape(*plane.shape[:2], -1)))
    x = x.permute(2, 0, 1)[None]
    with torch.no_grad():
        y = F.interpolate(x, size=shape, mode="bicubic", align_corners=False)
    finite = plane[np.isfinite(plane)]
    if finite.size:  # clamp to the image's own range; a NaN pixel stays a local NaN
        y = y.clamp_(float(finite.min()), float(finite.max()))
    y = y[0].permute(1, 2, 0).numpy()
    return np.ascontiguousarray(y.reshape(*shape, *plane.shape[2:]))


#: :func:`looks_like_labels`: background share, and share of equal neighbours within objects.
LABELS_BACKGROUND, LABELS_FLAT = 0.2, 0.95


def looks_like_labels(image: np.ndarray, max_side: int = 512) -> bool:
    """Whether a plane looks like a label image (nuclei numbered 1, 2, …) rather than a photo.

    A label image opened with File > Open becomes an Image layer, and segmenting it gives
    nuclei that mean nothing. It is whole numbers, mostly background (0: at least
    :data:`LABELS_BACKGROUND` of the pixels), and constant within each object: at least
    :data:`LABELS_FLAT` of the side-by-side pairs of object pixels are equal. A camera
    image has noise: far fewer of its neighbours are exactly equal, even a dim one.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` plane (other shapes are not label images).
    max_side : int, optional
        Larger planes are looked at through every k-th row (pairs stay side by side).
    """
    if image.ndim != 2 or image.dtype.kind not in "ui" or image.size == 0:
        return False
    step = max(1, int(np.ceil(image.shape[0] / max_side)))
    rows = np.asarray(image[::step])
    objects = rows != 0
    if objects.mean() > 1 - LABELS_BACKGROUND or not objects.any():
        return False
    pairs = objects[:, 1:] & objects[:, :-1]
    if pairs.sum() < 100:
        return False
    return bool((rows[:, 1:] == rows[:, :-1])[pairs].mean() >= LABELS_FLAT)
