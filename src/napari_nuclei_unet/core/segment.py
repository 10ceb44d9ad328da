"""One call from a 2-D image to nucleus labels: the contract every front end uses.

The CLI (``predict``), the widgets (DSB samples and the user's own image layers), the
big-image and distributed paths and fine-tuning checks all segment a 2-D plane through
:func:`segment_image`. How the model gets there (rescaling to the training nucleus
size, test-time augmentation, several output heads, seeded watershed) lives behind it.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from .inference import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE_SIZE,
    predict_maps,  # noqa: F401 - segment.predict_maps, as before
    predict_maps_steps,
)
from .instances import labels_from_heads, labels_from_probability, object_diameters
from .planes import grey_levels, resize_array, resize_plane, sharpness, smooth
from .progress import Progress, StopCheck, check_stop, drive, relay

#: Typical nucleus diameter (pixels) of the DSB2018 training images at native scale: the
#: median over stage1_train's 670 images of each image's median equivalent diameter
#: (18.1 px; 10th-90th percentile 10.6-47.4 px). Models that record their own
#: ``training_diameter`` (v2 checkpoints) use theirs instead.
TRAINING_DIAMETER = 18.0

#: With an automatic diameter, images whose nuclei measure between these multiples of
#: the training diameter are segmented at native scale; outside, the image is resized
#: so its nuclei measure the training diameter. Chosen on 16 stage1_train validation
#: images with the v1 model: (0.75, 1.4) kept the native score and scored x2-rescaled
#: images 0.820 IoU, against 0.783 for a wide (0.6, 2.2) range.
NATIVE_RANGE = (0.75, 1.4)

#: Optional: once the diameter is estimated, also predict the plane at native scale and
#: with its nuclei at each of these multiples of the training diameter, and keep the
#: sharpest prediction (:func:`sharpness`). Empty by default: the estimate alone
#: decides (one pass for nuclei of the training size). On 40 images of the shipped
#: model's *training* split, ``(1.0, 1.4, 2.0)`` raised mean IoU under the auto, x0.5,
#: x2 and x3 protocols by 0.009-0.015, but on the validation split it lowered them
#: (auto 0.859 -> 0.857, x0.5 0.823 -> 0.819, x2 0.849 -> 0.843): the model is surer
#: of images it was trained on, so its sharpness picks the right scale there and not
#: on new images.
SCALE_CHOICES: tuple[float, ...] = ()

_MIN_OBJECTS = 3  # fewer confident objects than this: the estimate is not trusted
_MAX_SIDE = 4096  # candidate scales that would make a side longer than this are skipped
_MIN_SIDE = 24  # ... or a side shorter than this
_LARGE_PIXELS = 1_500_000  # planes above this are measured at half size first

#: Integer planes whose contrast (99.8th minus 1st percentile) spans fewer grey levels
#: than this are "dim": a raw 8-bit image a few percent bright, where nuclei are a
#: staircase of a few levels that the network can read as texture. Normal 8-bit images
#: span 50-255 levels and are left alone.
DIM_LEVELS = 32

#: Gaussian sigmas (pixels) tried on a dim integer plane; the prediction the network is
#: most sure of (:func:`sharpness`) wins. Chosen on 80 images of the shipped model's
#: training split dimmed to 10 % and rounded to 8 bit (``bench_generalisation.py --split
#: train --limit 80``): no single sigma suits them all (small nuclei want none, nuclei one
#: grey level above the background want 1.7); picking by sharpness among these three
#: scored 0.825 mean IoU at native scale, against 0.798 for the former rule (sigma 1.2
#: under 4.5 levels, 0.7 under 6) and 0.766 for the best single sigma (0.8).
DENOISE_SIGMAS = (0.0, 0.8, 1.7)
#: Larger sigmas, tried in turn only while the last sigma tried was the surest so far: a
#: dim image with camera noise (nuclei 6 grey levels above a background with noise of 2,
#: ``bench_finetune_domains.py``'s ``fluo-dim``) often wants more than 1.7. On those
#: training-split images mean IoU went 0.690 -> 0.740; on the 80 noiseless dim10 images
#: above 0.823 -> 0.823 (DSB 0.531 -> 0.533), and images whose surest sigma is 0 or 0.8
#: cost no extra pass.
DENOISE_MORE_SIGMAS = (2.5, 3.5)


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
    contour : numpy.ndarray or None
        ``(H, W)`` float32 contour probability, in the input's pixels, for models with a
        contour head; None otherwise.
    smoothing : float
        Gaussian sigma (pixels) a dim integer plane was smoothed with (0 = none); see
        :func:`denoise_dim`.
    """

    labels: np.ndarray
    probability: np.ndarray
    diameter: float
    scale: float
    contour: np.ndarray | None = None
    smoothing: float = 0.0


def model_diameter(model) -> float:
    """Nucleus diameter (pixels) the model was trained at: its record, or the default.

    Parameters
    ----------
    model : UNet
        A model; v1 checkpoints record none and get :data:`TRAINING_DIAMETER`.

    Returns
    -------
    float
    """
    value = getattr(model, "training_diameter", None)
    return float(value) if value else TRAINING_DIAMETER


_FLIPS = ((False, False), (False, True), (True, False), (True, True))


def _tiles_as(steps, *, part: int = 0, parts: int = 1, what: str = ""):
    """Re-yield a pass's tile updates as part ``part`` of ``parts`` (TTA flips), named ``what``.

    Only part 0 yields ``done == 0``, the start of a pass that :func:`segment_image_steps`
    counts.
    """
    def convert(update: Progress) -> Progress | None:
        done = part * update.total + update.done
        if done or part == 0:
            return Progress("tiles", done, parts * update.total, what or update.message)
        return None

    return (yield from relay(steps, convert))


def _predict(model, image, options: SegmentOptions, device, stop: StopCheck | None = None):
    """``(C, H, W)`` probability maps of one plane, averaged over flips with ``tta`` (steps)."""
    kwargs = dict(device=device, tile_size=options.tile_size, overlap=options.overlap,
                  amp=options.amp, should_stop=stop)
    if not options.tta:
        return (yield from predict_maps_steps(model, image, **kwargs))
    total = None
    for part, (flip_y, flip_x) in enumerate(_FLIPS):
        view = image[::-1] if flip_y else image
        view = view[:, ::-1] if flip_x else view
        maps = yield from _tiles_as(
            predict_maps_steps(model, np.ascontiguousarray(view), **kwargs),
            part=part, parts=len(_FLIPS))
        maps = maps[:, ::-1] if flip_y else maps
        maps = maps[:, :, ::-1] if flip_x else maps
        total = maps.copy() if total is None else total + maps
    return total / 4.0


def denoise_dim(
    model, image: np.ndarray, options: SegmentOptions | None = None, *, scale: float = 1.0,
    device=None,
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """Smooth a dim integer plane as much as the network finds best.

    An integer plane whose contrast spans fewer than :data:`DIM_LEVELS` grey levels is
    predicted once per sigma of :data:`DENOISE_SIGMAS` (Gaussian smoothing, 0 = as it
    is) at ``scale``, then with each of :data:`DENOISE_MORE_SIGMAS` while the last sigma
    tried gave the sharpest prediction so far, and the version whose prediction is the
    sharpest (:func:`sharpness`) is kept. Other planes are returned as they are,
    unpredicted.

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
    return drive(_denoise(model, image, options or SegmentOptions(), scale, device))


def _denoise(model, image, options: SegmentOptions, scale: float, device,
             stop: StopCheck | None = None):
    """:func:`denoise_dim` as steps (one network pass per sigma tried)."""
    levels = grey_levels(image)
    if levels is None or levels >= DIM_LEVELS:
        return image, None, 0.0
    best = None
    tried: list[float] = []
    for sigma in (*DENOISE_SIGMAS, *DENOISE_MORE_SIGMAS):
        if sigma in DENOISE_MORE_SIGMAS and best[3] != tried[-1]:
            break  # the last, smaller sigma was not the surest: smoothing more will not help
        check_stop(stop)
        candidate = smooth(image, sigma) if sigma > 0 else image
        maps = yield from _tiles_as(_at_scale(model, candidate, scale, options, device, stop),
                                    what=_pass_name(scale, sigma))
        score = sharpness(maps[0])
        if best is None or score > best[0]:
            best = (score, candidate, maps, sigma)
        tried.append(sigma)
    return best[1], best[2], best[3]


def _labels(maps: np.ndarray, threshold: float) -> np.ndarray:
    """Instances from the network's maps (the contour shapes the watershed with two heads)."""
    if maps.shape[0] > 1:
        return labels_from_heads(maps[0], maps[1], threshold=threshold)
    return labels_from_probability(maps[0], threshold=threshold)


def _measure(maps: np.ndarray, threshold: float) -> tuple[float | None, np.ndarray]:
    """Median diameter of the confident objects of a prediction (its pixels), and labels.

    Objects touching the border are left out when enough others remain; objects whose
    mean foreground probability is below 0.75 are left out (uncertain debris). The
    labels are the prediction's instances, reused when no resizing follows.
    """
    labels = _labels(maps, threshold)
    n = int(labels.max())
    if n == 0:
        return None, labels
    from scipy import ndimage as ndi

    index = np.arange(1, n + 1)
    confident = np.asarray(ndi.mean(maps[0], labels, index)) >= 0.75
    border = np.zeros(n + 1, bool)
    for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        border[edge] = True
    keep = confident & ~border[1:]
    if keep.sum() < _MIN_OBJECTS:
        keep = confident
    if keep.sum() < _MIN_OBJECTS:
        return None, labels
    lookup = np.zeros(n + 1, dtype=labels.dtype)
    lookup[1:][keep] = index[keep]
    return float(np.median(object_diameters(lookup[labels]))), labels


def _pass_name(scale: float, sigma: float = 0.0) -> str:
    """How a network pass sees the plane, in words: ``"at 136 % size, smoothed σ 0.8"``."""
    size = "at full size" if scale == 1.0 else f"at {round(scale * 100)} % size"
    return size + (f", smoothed σ {sigma:g}" if sigma else "")


def _at_scale(model, image, scale: float, options: SegmentOptions, device,
              stop: StopCheck | None = None):
    """The plane's maps with the plane resized by ``scale`` (steps: one network pass)."""
    if scale != 1.0:
        check_stop(stop)
        height, width = image.shape[:2]
        shape = (max(8, round(height * scale)), max(8, round(width * scale)))
        image = resize_plane(image, shape)
    return (yield from _tiles_as(_predict(model, image, options, device, stop),
                                 what=_pass_name(scale)))


def estimate_diameter(
    model, image: np.ndarray, options: SegmentOptions | None = None, *, device=None
) -> tuple[float, float, np.ndarray]:
    """Estimate the typical nucleus diameter of a plane from the model's own predictions.

    A first pass at native scale gives the median equivalent diameter of the confident
    nuclei. Within :data:`NATIVE_RANGE` of the model's training diameter the plane is
    kept as it is; otherwise it is resized so that diameter becomes the training one,
    predicted again and measured again (twice at most). When no nucleus is found at
    native scale, halved and quartered copies are tried (nuclei too big to be seen).
    A plane of more than 1.5 million pixels is first measured at half size; when its
    nuclei are too big even there, the full-size pass is skipped.

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
    diameter, scale, maps, _ = drive(_estimate(model, image, options or SegmentOptions(),
                                               device))
    return diameter, scale, maps


def _estimate(model, image, options: SegmentOptions, device, native=None,
              stop: StopCheck | None = None):
    """:func:`estimate_diameter` as steps, plus the labels of the returned maps (or None).

    ``native``: the plane's maps at native scale when they are already known.
    """
    target = model_diameter(model)
    low, high = NATIVE_RANGE[0] * target, NATIVE_RANGE[1] * target
    seen: dict[float, tuple] = {}  # scale -> (maps, labels or None): every pass made

    def look(at: float):
        maps = yield from _at_scale(model, image, at, options, device, stop)
        check_stop(stop)
        measured, labels = _measure(maps, options.threshold)
        seen[at] = (maps, labels)
        return measured, maps, labels

    scale, maps, measured, labels = 1.0, None, None, None
    if native is not None:
        measured, labels = _measure(native, options.threshold)
        maps = native
        seen[1.0] = (maps, labels)
    elif image.shape[0] * image.shape[1] > _LARGE_PIXELS:
        # a large plane is first looked at half size: when its nuclei are big even
        # there, the full-size pass (the costly one) is skipped
        half_measure, half, half_labels = yield from look(0.5)
        if half_measure is not None and half_measure > high:
            scale, maps, measured, labels = 0.5, half, half_measure, half_labels
    if maps is None:
        measured, maps, labels = yield from look(1.0)
    if measured is None:
        for trial in (0.5, 0.25):
            if min(image.shape[:2]) * trial < 32:
                break
            trial_measure, trial_maps, trial_labels = yield from look(trial)
            if trial_measure is not None:
                scale, maps, measured, labels = trial, trial_maps, trial_measure, trial_labels
                break
    if measured is None:  # nothing measurable: native scale, as without an estimate
        return target, 1.0, seen[1.0][0], seen[1.0][1]
    for _ in range(2):
        if low <= measured <= high:
            break
        new_scale = scale * target / measured
        if abs(new_scale / scale - 1.0) < 0.05:
            break
        new_measure, new_maps, new_labels = yield from look(new_scale)
        if new_measure is None:
            break
        scale, maps, measured, labels = new_scale, new_maps, new_measure, new_labels
    diameter = measured / scale
    if not SCALE_CHOICES:
        return diameter, scale, maps, labels
    scale = yield from _sharpest_scale(model, image, options, device, seen, target / diameter,
                                       stop)
    return diameter, scale, seen[scale][0], seen[scale][1]


def _sharpest_scale(model, image, options, device, seen: dict, to_target: float,
                    stop: StopCheck | None = None):
    """The scale, among native and :data:`SCALE_CHOICES`, of the sharpest prediction (steps).

    ``seen`` holds the passes already made (scale -> (maps, labels)) and gains the new
    ones; ``to_target`` is the scale that brings the nuclei to the training diameter.
    """
    best = None
    for choice in (1.0, *(to_target * m for m in SCALE_CHOICES)):
        size = (image.shape[0] * choice, image.shape[1] * choice)
        if max(size) > _MAX_SIDE or min(size) < _MIN_SIDE:
            continue
        known = [k for k in seen if abs(k / choice - 1.0) < 0.05]
        if known:
            choice = known[0]
        elif choice == 1.0 and image.shape[0] * image.shape[1] > _LARGE_PIXELS:
            continue  # the costly full-size pass was skipped on purpose
        else:
            seen[choice] = ((yield from _at_scale(model, image, choice, options, device, stop)),
                            None)
        score = sharpness(seen[choice][0][0])
        if best is None or score > best[0]:
            best = (score, choice)
    return best[1] if best is not None else min(seen, key=lambda k: abs(k - to_target))


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
        small = _labels(maps, threshold)
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
    """

    maps: np.ndarray
    shape: tuple[int, int]
    scale: float
    diameter: float
    smoothing: float = 0.0

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


def _network_maps(model, image, options: SegmentOptions, device, stop: StopCheck | None = None):
    """:func:`predict_network_maps` as steps, plus the labels at ``options.threshold`` if known."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
        raise ValueError(f"expected one 2-D plane (H, W) or (H, W, C), got shape {image.shape}")
    height, width = image.shape[:2]
    if options.diameter > 0:
        diameter = float(options.diameter)
        scale = model_diameter(model) / diameter
        if abs(scale - 1.0) <= 0.05:
            scale = 1.0
        image, maps, sigma = yield from _denoise(model, image, options, scale, device, stop)
        if maps is None:
            maps = yield from _at_scale(model, image, scale, options, device, stop)
        labels = None
    else:
        image, native, sigma = yield from _denoise(model, image, options, 1.0, device, stop)
        diameter, scale, maps, labels = yield from _estimate(model, image, options, device,
                                                             native, stop)
    return NetworkMaps(maps, (height, width), scale, diameter, sigma), labels


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
            labels = _labels(maps, threshold)
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
                        scale=scale, contour=contour, smoothing=network.smoothing)


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
        ``"pass 3, at 136 % size"``. ``done == 0`` starts a pass.

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
        return Progress("tiles", update.done, update.total, f"pass {passes}, {update.message}")

    network, labels = yield from relay(
        _network_maps(model, image, options, device, should_stop), counted)
    check_stop(should_stop)
    # the estimate's labels were made at this threshold: reused, not made again
    return _segmentation(network, options.threshold, True, labels)
