"""One call from a 2-D image to nucleus labels: the contract every front end uses.

The CLI (``predict``), the widgets (DSB samples and the user's own image layers), the
big-image and distributed paths and fine-tuning checks all segment a 2-D plane through
:func:`segment_image`. How the model gets there (rescaling to the training nucleus
size, test-time augmentation, several output heads, seeded watershed) lives behind it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .inference import DEFAULT_OVERLAP, DEFAULT_TILE_SIZE, predict_probability
from .instances import labels_from_probability

#: Typical nucleus diameter (pixels) of the DSB2018 training images at native scale.
TRAINING_DIAMETER = 20.0


@dataclass(frozen=True)
class SegmentOptions:
    """How to segment one plane.

    Attributes
    ----------
    diameter : float
        Typical nucleus diameter in pixels; 0 means automatic.
    threshold : float
        Foreground probability threshold.
    tta : bool
        Average the predictions of flipped copies (about 4x slower).
    tile_size, overlap : int
        Tiling of large planes; see :func:`~napari_nuclei_unet.core.inference.predict_probability`.
    amp : bool
        Reduced precision where it is fast.
    """

    diameter: float = 0.0
    threshold: float = 0.5
    tta: bool = False
    tile_size: int = DEFAULT_TILE_SIZE
    overlap: int = DEFAULT_OVERLAP
    amp: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.diameter) and self.diameter >= 0):
            raise ValueError(
                f"nucleus diameter must be 0 (automatic) or a positive number of pixels, "
                f"got {self.diameter!r}"
            )
        if not (0.0 < self.threshold < 1.0):
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold!r}")


@dataclass
class Segmentation:
    """Result of :func:`segment_image`.

    Attributes
    ----------
    labels : numpy.ndarray
        ``(H, W)`` int32, 0 = background, 1..n nuclei, in the input's pixels.
    probability : numpy.ndarray
        ``(H, W)`` float32 foreground probability, in the input's pixels.
    diameter : float
        Nucleus diameter (pixels) used: the given one, or the estimate.
    scale : float
        Factor the plane was resized by before the network (1.0 = native).
    """

    labels: np.ndarray
    probability: np.ndarray
    diameter: float
    scale: float


def _predict(model, image, options: SegmentOptions, device) -> np.ndarray:
    kwargs = dict(
        device=device, tile_size=options.tile_size, overlap=options.overlap, amp=options.amp
    )
    if not options.tta:
        return predict_probability(model, image, **kwargs)
    total = np.zeros(image.shape[:2], dtype=np.float32)
    for flip_y in (False, True):
        for flip_x in (False, True):
            view = image[::-1] if flip_y else image
            view = view[:, ::-1] if flip_x else view
            prob = predict_probability(model, np.ascontiguousarray(view), **kwargs)
            prob = prob[::-1] if flip_y else prob
            total += prob[:, ::-1] if flip_x else prob
    return total / 4.0


def _resize(array: np.ndarray, shape: tuple[int, int], order: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(
        array, shape + array.shape[2:], order=order, preserve_range=True,
        anti_aliasing=order > 0 and (shape[0] < array.shape[0]), mode="edge",
    ).astype(array.dtype if order == 0 else np.float32, copy=False)


def segment_image(
    model, image: np.ndarray, options: SegmentOptions | None = None, *, device=None
) -> Segmentation:
    """Segment the nuclei of one 2-D plane.

    Parameters
    ----------
    model : UNet
        A loaded model (any mode).
    image : numpy.ndarray
        ``(H, W)`` grey or ``(H, W, C)`` colour plane of any real dtype.
    options : SegmentOptions, optional
        Defaults: automatic diameter, threshold 0.5, no TTA.
    device : torch.device or str, optional
        Where to compute; defaults to the model's device.

    Returns
    -------
    Segmentation
        Labels and probability in the input's pixels, and the diameter and scale used.
    """
    options = options or SegmentOptions()
    image = np.asarray(image)
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        raise ValueError(f"expected one 2-D plane (H, W) or (H, W, C), got shape {image.shape}")
    diameter = float(options.diameter) if options.diameter > 0 else TRAINING_DIAMETER
    scale = TRAINING_DIAMETER / diameter
    height, width = image.shape[:2]
    if abs(scale - 1.0) > 0.05:
        shape = (max(8, round(height * scale)), max(8, round(width * scale)))
        prob = _predict(model, _resize(image.astype(np.float32), shape, 1), options, device)
        prob = np.clip(_resize(prob, (height, width), 1), 0.0, 1.0)
    else:
        scale = 1.0
        prob = _predict(model, image, options, device)
    labels = labels_from_probability(prob, threshold=options.threshold)
    return Segmentation(labels=labels, probability=prob, diameter=diameter, scale=scale)
