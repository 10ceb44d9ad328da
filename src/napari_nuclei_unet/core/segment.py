"""One call from a 2-D image to nucleus labels: the contract every front end uses.

The CLI (``predict``), the widgets (DSB samples and the user's own image layers), the
big-image and distributed paths and fine-tuning checks all segment a 2-D plane through
:func:`segment_image`. How the model gets there (rescaling to the training nucleus
size, test-time augmentation, several output heads, seeded watershed) lives behind it:
the network passes over a plane (flips, resizing, smoothing of dim planes) in
:mod:`.plane_passes`, the automatic nucleus size in :mod:`.nucleus_size`.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import plane_passes
from .inference import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE_SIZE,
    predict_maps,  # noqa: F401 - segment.predict_maps, as before
)
from .instances import labels_from_probability
from .normalize import prepare_plane
from .nucleus_size import (  # noqa: F401 - segment.TRAINING_DIAMETER ..., as before
    NATIVE_RANGE,
    SCALE_CHOICES,
    TRAINING_DIAMETER,
    estimate_steps,
    model_diameter,
)
from .plane_passes import (  # noqa: F401 - segment.DIM_LEVELS ..., as before
    DENOISE_MORE_SIGMAS,
    DENOISE_SIGMAS,
    DIM_LEVELS,
)
from .planes import resize_array
from .progress import Progress, StopCheck, check_stop, drive, relay


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
        Average the predictions of the four flipped copies (about 4x slower).
    tile_size, overlap : int
        Tiling of large planes; see :func:`~napari_nuclei_unet.core.inference.predict_probability`.
    amp : bool
        Reduced precision where it is fast.
    focus : bool
        Recentre an out-of-focus dark-background plane's foreground map, so that
        ``threshold`` draws its nuclei tighter (see
        :data:`~napari_nuclei_unet.core.plane_passes.FOCUS_SOFT`).
    focus_at : float
        With ``focus``: the threshold such a plane's map is recentred at, judged
        elsewhere and used as it is (a large plane's, judged once on sample blocks by
        :mod:`~napari_nuclei_unet.core.bigsize`, so that every block is drawn alike;
        0.5: none). 0: each plane is judged on its own.
    """

    diameter: float = 0.0
    threshold: float = 0.5
    tta: bool = False
    tile_size: int = DEFAULT_TILE_SIZE
    overlap: int = DEFAULT_OVERLAP
    amp: bool = True
    focus: bool = True
    focus_at: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.diameter) and self.diameter >= 0):
            raise ValueError(
                f"nucleus diameter must be 0 (automatic) or a positive number of pixels, "
                f"got {self.diameter!r}"
            )
        if not (0.0 < self.threshold < 1.0):
            raise ValueError(f"threshold must be between 0 and 1, got {self.threshold!r}")
        if not (self.focus_at == 0.0 or 0.5 <= self.focus_at < 1.0):
            raise ValueError(f"focus_at must be 0 or in [0.5, 1), got {self.focus_at!r}")


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
    contour : numpy.ndarray or None
        ``(H, W)`` float32 contour probability, in the input's pixels, for models with a
        contour head; None otherwise.
    smoothing : float
        Gaussian sigma (pixels) a dim integer plane was smoothed with (0 = none); see
        :func:`denoise_dim`.
    focus : float
        Above 0.5 when the plane looked out of focus: ``probability`` was recentred so
        that 0.5 on it is this on the network's own map (see :attr:`NetworkMaps.focus`).
    """

    labels: np.ndarray
    probability: np.ndarray
    diameter: float
    scale: float
    contour: np.ndarray | None = None
    smoothing: float = 0.0
    focus: float = 0.5


def denoise_dim(
    model, image: np.ndarray, options: SegmentOptions | None = None, *, scale: float = 1.0,
    device=None,
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Smooth a dim integer plane as much as the network finds best.

    An integer plane whose contrast spans fewer than :data:`DIM_LEVELS` grey levels is
    predicted once per sigma of :data:`DENOISE_SIGMAS` (Gaussian smoothing, 0 = as it
    is) at ``scale``, then with each of :data:`DENOISE_MORE_SIGMAS` while the last sigma
    tried gave the sharpest prediction so far, and the version whose prediction is the
    sharpest (:func:`~napari_nuclei_unet.core.planes.sharpness`) is kept. Other planes
    are returned as they are, unpredicted.

    Parameters
    ----------
    model : UNet
        A loaded model.
    image : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)`` plane.
    options : SegmentOptions, optional
        ``tta``, tiling and ``amp`` are used.
    scale : float, optional
        Factor the plane is resized by before the network.
    device : torch.device or str, optional
        Where to compute.

    Returns
    -------
    image : numpy.ndarray
        The plane to segment (``image`` itself, or a smoothed float32 copy).
    maps : numpy.ndarray or None
        Its ``(C, h, w)`` maps at ``scale`` when they were computed, else None.
    sigma : float
        The smoothing used (0 = none).
    """
    return drive(plane_passes.denoise_steps(model, image, options or SegmentOptions(),
                                             scale, device))


def estimate_diameter(
    model, image: np.ndarray, options: SegmentOptions | None = None, *, device=None
) -> tuple[float, float, np.ndarray]:
    """Estimate the typical nucleus diameter of a plane from the model's own predictions.

    A first pass at native scale gives the median equivalent diameter of the confident
    nuclei. Within :data:`NATIVE_RANGE` of the model's training diameter the plane is
    kept as it is; otherwise it is resized so that diameter becomes the training one,
    predicted again and measured again (twice at most). When no nucleus is found at
    native scale, halved and quartered copies are tried (nuclei too big to be seen);
    when the nuclei found cover little of the plane's bright area, a halved copy is
    tried too and followed when it sees much larger nuclei (only their inner parts were
    found: :data:`~napari_nuclei_unet.core.nucleus_size.SEES_LITTLE`). A plane of more
    than 1.5 million pixels is first measured at half size; when its nuclei are too big
    even there, the full-size pass is skipped.

    Parameters
    ----------
    model : UNet
        A loaded model.
    image : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)`` plane.
    options : SegmentOptions, optional
        ``tta``, ``threshold`` and tiling are used; ``diameter`` is ignored.
    device : torch.device or str, optional
        Where to compute.

    Returns
    -------
    diameter : float
        Estimated nucleus diameter in the input's pixels (the training diameter when
        nothing could be measured).
    scale : float
        The factor to resize the plane by before the network (1.0 = native).
    maps : numpy.ndarray
        ``(C, h, w)`` probability maps already computed at that scale (reused).
    """
    diameter, scale, maps, _ = drive(estimate_steps(model, image, options or SegmentOptions(),
                                                    device))
    return diameter, scale, maps


def _labels_back(maps: np.ndarray, shape: tuple[int, int], scale: float,
                 threshold: float, small: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Labels found at the network's scale, mapped back to the input's pixels.

    Instances are split at the network's scale (where the watershed's sizes hold); the
    foreground outline comes from the probability resized back, and each of its pixels
    takes the label of the nearest nucleus.
    """
    from skimage.segmentation import expand_labels

    if small is None:
        small = plane_passes.instance_labels(maps, threshold)
    back = np.stack([np.clip(resize_array(m, shape, 1), 0.0, 1.0) for m in maps])
    labels = resize_array(small, shape, 0)
    foreground = back[0] > threshold
    reach = int(np.ceil(1.0 / scale)) + 1
    labels = expand_labels(labels, distance=reach) * foreground
    return labels.astype(np.int32, copy=False), back


@dataclass(frozen=True, eq=False)  # holds arrays: compared by identity
class NetworkMaps:
    """A plane's maps at the network's scale: what :func:`segment_image` thresholds.

    Kept by front ends that re-threshold without running the network again (the
    Compare dock's cache): :func:`labels_from_maps` turns them into the labels
    :func:`segment_image` gives at any threshold.

    Attributes
    ----------
    maps : numpy.ndarray
        ``(C, h, w)`` float32 maps at the network's scale (foreground, then contour for
        two-head models).
    shape : tuple of int
        ``(H, W)`` of the input plane.
    scale : float
        Factor the plane was resized by before the network (1.0 = native).
    diameter : float
        Nucleus diameter (pixels) used: the given one, or the estimate.
    smoothing : float
        Gaussian sigma a dim integer plane was smoothed with (0 = none).
    focus : float
        The network's own threshold that 0.5 on ``maps`` stands for: above 0.5 for an
        out-of-focus plane, whose foreground map was recentred (see
        :data:`~napari_nuclei_unet.core.plane_passes.FOCUS_SOFT`).
    """

    maps: np.ndarray
    shape: tuple[int, int]
    scale: float
    diameter: float
    smoothing: float = 0.0
    focus: float = 0.5

    @property
    def size(self) -> int:
        """Number of pixels of the input plane."""
        return int(self.shape[0]) * int(self.shape[1])


def predict_network_maps(
    model, image: np.ndarray, options: SegmentOptions | None = None, *, device=None
) -> NetworkMaps:
    """The network part of :func:`segment_image`: diameter, smoothing, scale and maps.

    Parameters
    ----------
    model : UNet
        A loaded model (any mode).
    image : numpy.ndarray
        ``(H, W)`` grey or ``(H, W, C)`` colour plane of any real dtype.
    options : SegmentOptions, optional
        As for :func:`segment_image`; ``threshold`` only matters to the diameter estimate.
    device : torch.device or str, optional
        Where to compute.

    Returns
    -------
    NetworkMaps
        Give it to :func:`labels_from_maps` for the labels at any threshold.
    """
    return drive(_network_maps(model, image, options or SegmentOptions(), device))[0]


def judges_focus(model: Any) -> bool:
    """Whether ``model``'s maps of an out-of-focus plane are recentred (``SegmentOptions.focus``).

    The plugin's one-head networks only: a package brings its own processing, and a
    two-head model's watershed weighs the contour against the foreground (untuned).
    """
    return (getattr(model, "predict_probability", None) is None
            and getattr(model, "out_channels", 1) == 1)


def _network_maps(model, image, options: SegmentOptions, device, stop: StopCheck | None = None):
    """:func:`predict_network_maps` as steps, plus the labels at ``options.threshold`` if known."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        raise ValueError(f"expected one 2-D plane (H, W) or (H, W, C), got shape {image.shape}")
    if getattr(model, "predict_probability", None) is None:  # a package brings its own
        image = prepare_plane(image)
    prepared = image  # as the network sees it before a dim plane's smoothing
    height, width = image.shape[:2]
    if options.diameter > 0:
        diameter = float(options.diameter)
        scale = model_diameter(model) / diameter
        if abs(scale - 1.0) <= 0.05:
            scale = 1.0
        image, maps, sigma = yield from plane_passes.denoise_steps(model, image, options, scale,
                                                                   device, stop)
        if maps is None:
            maps = yield from plane_passes.at_scale(model, image, scale, options, device, stop)
        labels = None
    else:
        image, native, sigma = yield from plane_passes.denoise_steps(model, image, options, 1.0,
                                                                     device, stop)
        diameter, scale, maps, labels = yield from estimate_steps(model, image, options, device,
                                                                  native, stop)
    focus = 0.5
    if options.focus and judges_focus(model) and maps.shape[0] == 1:
        focus = options.focus_at or plane_passes.focus_threshold(maps[0], prepared, scale)
    if focus > 0.5:
        maps, labels = plane_passes.recentre(maps, focus), None
    return NetworkMaps(maps, (height, width), scale, diameter, sigma, focus), labels


def labels_from_maps(
    network: NetworkMaps, threshold: float = 0.5, *, split: bool = True
) -> Segmentation:
    """The :class:`Segmentation` of maps kept from :func:`predict_network_maps`.

    ``labels_from_maps(predict_network_maps(model, image, options), options.threshold)``
    is ``segment_image(model, image, options)``; another threshold gives the labels
    :func:`segment_image` would give at it with the same diameter and scale, without
    running the network again.

    Parameters
    ----------
    network : NetworkMaps
        The maps.
    threshold : float, optional
        Foreground probability threshold.
    split : bool, optional
        True (default): nuclei split as :func:`segment_image` does. False: every
        connected foreground region of the input's pixels is one nucleus.

    Returns
    -------
    Segmentation
        Labels and maps in the input's pixels.
    """
    return _segmentation(network, threshold, split)


def _segmentation(network: NetworkMaps, threshold: float, split: bool = True,
                  small: np.ndarray | None = None) -> Segmentation:
    """:func:`labels_from_maps`; ``small``: the labels at the network's scale, if known."""
    maps, scale = network.maps, network.scale
    if scale == 1.0:
        labels = small
        if labels is None and split:
            labels = plane_passes.instance_labels(maps, threshold)
    else:
        if split:
            labels, maps = _labels_back(maps, tuple(network.shape), scale, threshold, small)
        else:
            maps = np.stack([np.clip(resize_array(m, tuple(network.shape), 1), 0.0, 1.0)
                             for m in maps])
    if not split:
        labels = labels_from_probability(maps[0], threshold=threshold, method="components")
    contour = maps[1] if maps.shape[0] > 1 else None
    return Segmentation(labels=labels, probability=maps[0], diameter=network.diameter,
                        scale=scale, contour=contour, smoothing=network.smoothing,
                        focus=network.focus)


def segment_image(
    model, image: np.ndarray, options: SegmentOptions | None = None, *, device=None,
    should_stop: StopCheck | None = None,
) -> Segmentation:
    """Segment the nuclei of one 2-D plane.

    With ``options.diameter`` 0 the nucleus size is estimated
    (:func:`estimate_diameter`) and the plane is resized so nuclei match the size the
    model was trained at when they are outside the range it handles natively; with a
    diameter in pixels the plane is resized by ``training diameter / diameter``.
    A dim integer image is smoothed first, as much as the network finds best
    (:func:`denoise_dim`). Labels and maps are returned in the input's pixels.
    The two halves are :func:`predict_network_maps` and :func:`labels_from_maps`.

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
    should_stop : callable, optional
        Checked between the network's tiles and passes; see :func:`segment_image_steps`.

    Returns
    -------
    Segmentation
        Labels and probability in the input's pixels, and the diameter and scale used.

    Raises
    ------
    Cancelled
        When ``should_stop`` returned True before the plane was done.
    """
    return drive(segment_image_steps(model, image, options, device=device,
                                     should_stop=should_stop))


def segment_image_steps(
    model, image: np.ndarray, options: SegmentOptions | None = None, *, device=None,
    should_stop: StopCheck | None = None,
) -> Generator[Progress, None, Segmentation]:
    """:func:`segment_image` as a job: progress within the plane, stoppable between tiles.

    A large plane takes several network passes (the automatic diameter looks at it at
    half size, full size, and resized; a dim plane is tried smoothed), each of one or
    more tiles. ``should_stop`` is checked before every batch of tiles and between the
    passes, so a stop takes effect within about one batch of tiles (about a second for
    the default model's 1024-pixel tiles on one CPU core).

    Parameters
    ----------
    model, image, options, device
        As for :func:`segment_image`.
    should_stop : callable, optional
        Cooperative stop check.

    Yields
    ------
    Progress
        ``Progress("tiles", done, total, message)`` for the tiles of the current
        network pass; ``message`` says which pass and how it sees the plane, e.g.
        ``"step 3, image at 136 % size"``. ``done == 0`` starts a pass.

    Returns
    -------
    Segmentation
        As :func:`segment_image` returns.

    Raises
    ------
    Cancelled
        When ``should_stop`` returned True: half a plane is no result, so there is none
        to return; a job over many planes keeps the planes it finished.
    """
    options = options or SegmentOptions()
    passes = 0

    def counted(update: Progress) -> Progress:
        nonlocal passes
        if update.done == 0:  # a new network pass starts
            passes += 1
        return Progress("tiles", update.done, update.total,
                        f"step {passes}, image {update.message}")

    network, labels = yield from relay(
        _network_maps(model, image, options, device, should_stop), counted)
    check_stop(should_stop)
    # the estimate's labels were made at this threshold: reused, not made again
    return _segmentation(network, options.threshold, True, labels)
