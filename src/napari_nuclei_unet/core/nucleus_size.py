"""The nucleus size of a plane, measured from the network's own predictions.

:func:`estimate_steps` is the automatic diameter of
:func:`~napari_nuclei_unet.core.segment.segment_image`: it decides the scale the plane is
segmented at (see :data:`NATIVE_RANGE`).
"""

from __future__ import annotations

import numpy as np

from . import plane_passes
from .instances import object_diameters
from .planes import sharpness
from .progress import StopCheck, check_stop

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
#: sharpest prediction (:func:`~napari_nuclei_unet.core.planes.sharpness`). Empty by
#: default: the estimate alone decides (one pass for nuclei of the training size). On
#: 40 images of the shipped model's *training* split, ``(1.0, 1.4, 2.0)`` raised mean
#: IoU under the auto, x0.5, x2 and x3 protocols by 0.009-0.015, but on the validation
#: split it lowered them (auto 0.859 -> 0.857, x0.5 0.823 -> 0.819, x2 0.849 -> 0.843):
#: the model is surer of images it was trained on, so its sharpness picks the right
#: scale there and not on new images.
SCALE_CHOICES: tuple[float, ...] = ()

#: Nuclei too big to be seen whole at native size: when the native pass's confident
#: objects measure within :data:`NATIVE_RANGE` but its foreground covers less than
#: ``SEES_LITTLE`` of the plane's bright area (above Otsu's threshold of the normalised
#: plane), the network may have found only the bright inner parts of large nuclei. The
#: half-size pass is then made as well and followed when its nuclei measure at least
#: ``BIGGER_AT_HALF`` times as large (in the plane's pixels) with at least
#: ``MORE_FOREGROUND_AT_HALF`` times the foreground. Chosen on the 80 training images of
#: the tuning subset (README, "How the inference was tuned"), where it changed no image
#: of the auto, x0.5, x2 and x3 protocols and mended four whose background was set to
#: zero (pixels under half Otsu's threshold: 0.761 -> 0.793 mean IoU over the 80). On
#: the validation split, scored after: x3 0.832 -> 0.843 (one image of nuclei of 117 px
#: went 0.07 -> 0.82), x4 0.835 -> 0.847, x5 0.810 -> 0.836, the same background set to
#: zero 0.789 -> 0.802; auto, x0.5, x2 and dim10 unchanged.
SEES_LITTLE = 0.5
BIGGER_AT_HALF = 1.5
MORE_FOREGROUND_AT_HALF = 2.0

_MIN_OBJECTS = 3  # fewer confident objects than this: the estimate is not trusted
_MAX_SIDE = 4096  # candidate scales that would make a side longer than this are skipped
_MIN_SIDE = 24  # ... or a side shorter than this
_LARGE_PIXELS = 1_500_000  # planes above this are measured at half size first


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


def measure_diameter(maps: np.ndarray, threshold: float) -> tuple[float | None, np.ndarray]:
    """Median diameter of the confident objects of a prediction (its pixels), and labels.

    Objects touching the border are left out when enough others remain; objects whose
    mean foreground probability is below 0.75 are left out (uncertain debris). The
    labels are the prediction's instances, reused when no resizing follows.
    """
    labels = plane_passes.instance_labels(maps, threshold)
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


def sees_little(image: np.ndarray, prob: np.ndarray, threshold: float) -> bool:
    """Whether a native-scale prediction covers less than :data:`SEES_LITTLE` of the bright area.

    The bright area is the plane's pixels above Otsu's threshold of its normalised grey
    (nuclei bright, whatever the stain), measured on at most about 250,000 pixels.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)`` plane.
    prob : numpy.ndarray
        ``(H, W)`` foreground probability of the plane at native scale.
    threshold : float
        Foreground probability threshold.

    Returns
    -------
    bool
        False as well for a plane with no bright area (a flat plane).
    """
    from skimage.filters import threshold_otsu

    from .normalize import normalize_image

    height, width = image.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(height * width / 250_000))))
    grey = normalize_image(image[::step, ::step]).mean(axis=0)
    if not np.ptp(grey) > 0:
        return False
    bright = grey > threshold_otsu(grey)
    if not bright.any():
        return False
    return float(np.mean(prob[::step, ::step][bright] > threshold)) < SEES_LITTLE


def estimate_steps(model, image, options, device, native=None,
                   stop: StopCheck | None = None):
    """:func:`~napari_nuclei_unet.core.segment.estimate_diameter` as steps, plus labels.

    Returns the diameter, the scale, the maps at that scale and their labels (or None).

    ``native``: the plane's maps at native scale when they are already known.
    """
    target = model_diameter(model)
    low, high = NATIVE_RANGE[0] * target, NATIVE_RANGE[1] * target
    seen: dict[float, tuple] = {}  # scale -> (maps, labels or None): every pass made
    measures: dict[float, float | None] = {}  # scale -> its diameter: every look made

    def look(at: float):
        maps = yield from plane_passes.at_scale(model, image, at, options, device, stop)
        check_stop(stop)
        measured, labels = measure_diameter(maps, options.threshold)
        seen[at], measures[at] = (maps, labels), measured
        return measured, maps, labels

    scale, maps, measured, labels = 1.0, None, None, None
    if native is not None:
        measured, labels = measure_diameter(native, options.threshold)
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
    if (scale == 1.0 and measured is not None and low <= measured <= high
            and min(image.shape[:2]) * 0.5 >= 32
            and sees_little(image, maps[0], options.threshold)):
        if 0.5 in measures:  # a large plane's first look
            (half, half_labels), half_measure = seen[0.5], measures[0.5]
        else:
            half_measure, half, half_labels = yield from look(0.5)
        if (half_measure is not None and half_measure / 0.5 >= BIGGER_AT_HALF * measured
                and np.mean(half[0] > options.threshold)
                >= MORE_FOREGROUND_AT_HALF * np.mean(maps[0] > options.threshold)):
            scale, maps, measured, labels = 0.5, half, half_measure, half_labels
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
            maps = yield from plane_passes.at_scale(model, image, choice, options, device, stop)
            seen[choice] = (maps, None)
        score = sharpness(seen[choice][0][0])
        if best is None or score > best[0]:
            best = (score, choice)
    return best[1] if best is not None else min(seen, key=lambda k: abs(k - to_target))
