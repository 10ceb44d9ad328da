"""Network passes over one plane: test-time flips, resizing, and smoothing of dim planes.

The steps :mod:`.segment` and :mod:`.nucleus_size` are built from: each pass yields the
progress of its tiles (:func:`tiles_as` names and counts them) and returns the plane's
``(C, h, w)`` maps. ``options`` is a :class:`~napari_nuclei_unet.core.segment.SegmentOptions`
(its tiling, ``tta``, ``amp`` and ``threshold``).
"""

from __future__ import annotations

import numpy as np

from .inference import predict_maps_steps
from .instances import labels_from_heads, labels_from_probability
from .planes import grey_levels, resize_plane, sharpness, smooth
from .progress import Progress, StopCheck, check_stop, relay

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

#: Out-of-focus planes: the network draws a blurred nucleus with a wide band of middling
#: probability, and at 0.5 its outline lies too far out (small nuclei come out 1.5-1.7
#: times their area). A dark-background plane whose share of uncertain pixels
#: (``0.2 < p < 0.8``, per pixel of foreground ``p > 0.5``, at the network's scale) is
#: above :data:`FOCUS_SOFT` *and* that looks blurred (:data:`FOCUS_BLUR`) has its
#: foreground map recentred (:func:`recentre`) so that 0.5 on it is
#: ``0.5 + FOCUS_SLOPE x (share - FOCUS_SOFT)`` on the network's own map, at most
#: :data:`FOCUS_MAX`. The share alone cannot tell a blurred plane from a sharp one of
#: large, soft-edged nuclei outlined generously (their best threshold is 0.3); the blur
#: measure can. Chosen on 240 images of the shipped model's training split, blurred by a
#: Gaussian of sigma 0, 1.5, 2.5 and 3.5 px (README, *Out-of-focus images*).
#: Bright-background planes (histology, brightfield) are left alone: a sharp stained
#: section has as wide a band, and raising its threshold cost up to 0.15 IoU.
FOCUS_SOFT = 0.2
FOCUS_SLOPE = 8.0
FOCUS_MAX = 0.9
#: Blur measure (:func:`blur_measure`) of the plane's grey above which it counts as
#: blurred. On the 240 tuning images' dark-background planes, 5th to 95th percentile:
#: 0.20-0.55 sharp, 0.51-0.74 blurred with sigma 1.5 px, 0.58-0.79 with sigma 2.5 px.
FOCUS_BLUR = 0.58
#: Foreground pixels (at the network's scale) under which the share is not judged: a
#: plane or block with a nucleus or two says nothing about its focus.
FOCUS_MIN_PIXELS = 400

_FLIPS = ((False, False), (False, True), (True, False), (True, True))


def tiles_as(steps, *, part: int = 0, parts: int = 1, what: str = ""):
    """Re-yield a pass's tile updates as part ``part`` of ``parts`` (TTA flips), named ``what``.

    Only part 0 yields ``done == 0``, the start of a pass that
    :func:`~napari_nuclei_unet.core.segment.segment_image_steps` counts.
    """
    def convert(update: Progress) -> Progress | None:
        done = part * update.total + update.done
        if done or part == 0:
            return Progress("tiles", done, parts * update.total, what or update.message)
        return None

    return (yield from relay(steps, convert))


def predict_plane(model, image, options, device, stop: StopCheck | None = None):
    """``(C, H, W)`` probability maps of one plane, averaged over flips with ``tta`` (steps)."""
    kwargs = dict(device=device, tile_size=options.tile_size, overlap=options.overlap,
                  amp=options.amp, should_stop=stop)
    if not options.tta:
        return (yield from predict_maps_steps(model, image, **kwargs))
    total = None
    for part, (flip_y, flip_x) in enumerate(_FLIPS):
        view = image[::-1] if flip_y else image
        view = view[:, ::-1] if flip_x else view
        maps = yield from tiles_as(
            predict_maps_steps(model, np.ascontiguousarray(view), **kwargs),
            part=part, parts=len(_FLIPS))
        maps = maps[:, ::-1] if flip_y else maps
        maps = maps[:, :, ::-1] if flip_x else maps
        total = maps.copy() if total is None else total + maps
    return total / 4.0


def pass_name(scale: float, sigma: float = 0.0, tta: bool = False) -> str:
    """How a network pass sees the plane, in words: ``"at 136 % size, smoothed σ 0.8"``.

    With ``tta`` each tile is counted four times, once per flip: said, or a plane read as
    cut in four tiles (GUI check h_gui40, L3).
    """
    size = "at full size" if scale == 1.0 else f"at {round(scale * 100)} % size"
    return size + (f", smoothed σ {sigma:g}" if sigma else "") + (
        ", each tile flipped 4 ways" if tta else "")


def at_scale(model, image, scale: float, options, device, stop: StopCheck | None = None):
    """The plane's maps with the plane resized by ``scale`` (steps: one network pass)."""
    if scale != 1.0:
        check_stop(stop)
        height, width = image.shape[:2]
        shape = (max(8, round(height * scale)), max(8, round(width * scale)))
        image = resize_plane(image, shape)
    return (yield from tiles_as(predict_plane(model, image, options, device, stop),
                                what=pass_name(scale, tta=options.tta)))


def denoise_steps(model, image, options, scale: float, device,
                  stop: StopCheck | None = None):
    """:func:`~napari_nuclei_unet.core.segment.denoise_dim` as steps (a pass per sigma tried)."""
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
        maps = yield from tiles_as(at_scale(model, candidate, scale, options, device, stop),
                                   what=pass_name(scale, sigma, options.tta))
        score = sharpness(maps[0])
        if best is None or score > best[0]:
            best = (score, candidate, maps, sigma)
        tried.append(sigma)
    return best[1], best[2], best[3]


def instance_labels(maps: np.ndarray, threshold: float) -> np.ndarray:
    """Instances from the network's maps (the contour shapes the watershed with two heads)."""
    if maps.shape[0] > 1:
        return labels_from_heads(maps[0], maps[1], threshold=threshold)
    return labels_from_probability(maps[0], threshold=threshold)


def focus_threshold(foreground: np.ndarray, plane: np.ndarray, scale: float) -> float:
    """The threshold an out-of-focus plane's foreground map wants (0.5: in focus).

    See :data:`FOCUS_SOFT`. ``foreground``: the map at the network's scale; ``plane``:
    the plane as prepared for the network, before any smoothing of a dim plane, at its
    own size; ``scale``: the factor the network saw it resized by.
    """
    share = uncertain_share(foreground, scale)
    if share is None or share <= FOCUS_SOFT:  # the blur measure only where it can matter
        return 0.5
    return threshold_for(share, blur_measure(plane))


def uncertain_share(foreground: np.ndarray, scale: float) -> float | None:
    """The share of uncertain pixels (:data:`FOCUS_SOFT`), or None where none is judged.

    None for fewer than :data:`FOCUS_MIN_PIXELS` foreground pixels, and for a plane the
    network sees made smaller than the sizes it segments as they are (``scale`` below
    ``1 / NATIVE_RANGE[1]``, nuclei over 25 px: an automatic diameter gives no scale
    between that and 1). Such a plane is left alone: blur is small at the network's
    scale then, and an oversampled or enlarged image looks blurred in its own pixels.
    Judged on them, the validation images doubled and tripled (``x2``, ``x3``) lost
    0.007 and 0.008 mean IoU; on the tuning images, leaving them alone cost the blurred
    ones less than 0.001. (A first version left every ``scale`` < 1 alone: a diameter
    of 19 px given for a blurred image turned the rule off, review h_rev52.)
    """
    confident = int(np.count_nonzero(foreground > 0.5))
    if not judged(confident, scale):
        return None
    return np.count_nonzero((foreground > 0.2) & (foreground < 0.8)) / confident


def judged(confident: int, scale: float) -> bool:
    """Whether a plane is judged (:func:`uncertain_share`): enough foreground, seen large enough.

    ``confident``: its foreground pixels at the network's scale; ``scale``: the factor the
    network saw it resized by.
    """
    from .nucleus_size import NATIVE_RANGE

    return scale >= 1.0 / NATIVE_RANGE[1] and confident >= FOCUS_MIN_PIXELS


def threshold_for(share: float, blur: float | None, soft: float = FOCUS_SOFT,
                  slope: float = FOCUS_SLOPE, top: float = FOCUS_MAX,
                  blurred: float = FOCUS_BLUR) -> float:
    """The rule of :data:`FOCUS_SOFT` on a plane's uncertain ``share`` and ``blur`` measure.

    The other arguments are its settings (``benchmarks/tune_focus.py`` tries others).
    """
    wanted = min(top, 0.5 + slope * (share - soft))
    return float(wanted) if wanted > 0.5 and blur is not None and blur > blurred else 0.5


def blur_measure(plane: np.ndarray) -> float | None:
    """How blurred the plane's grey looks in its own pixels: 0 sharp, towards 1 blurred.

    The no-reference measure of Crete-Roffet et al. (2007, "The blur effect"): how much
    of the pixel-to-pixel variation a 9-pixel mean filter along each axis leaves
    (the larger of the two axes). :func:`skimage.measure.blur_effect` computes it with
    Sobel gradients and 11 pixels; on the tuning images it told the sharp, generously
    outlined planes from blurred ones less well (on the 68 validation images, the
    :data:`FOCUS_SOFT` rule with it cost 0.002 mean IoU on the sharp images, none with
    this one). None for a bright-background plane, which :data:`FOCUS_SOFT` leaves
    alone. In the plane's own pixels, not the network's: a plane of small nuclei that
    the network sees enlarged looks blurred there (judged at the network's scale, the
    validation images halved, ``x0.5``, lost 0.011 mean IoU).
    """
    from scipy import ndimage as ndi

    from .normalize import normalization_params, normalize_image

    params = normalization_params(plane)
    if params.inverted:
        return None
    grey = normalize_image(plane, params).mean(axis=0)  # float32: half float64's memory
    measures = []
    for axis in (0, 1):
        sharp = np.abs(np.diff(grey, axis=axis))
        blurred = np.abs(np.diff(ndi.uniform_filter1d(grey, 9, axis=axis), axis=axis))
        total = float(sharp.sum(dtype=np.float64))
        lost = float(np.maximum(0.0, sharp - blurred).sum(dtype=np.float64))
        measures.append((total - lost) / total if total > 0 else 0.0)
    return max(measures)


def recentre(maps: np.ndarray, threshold: float) -> np.ndarray:
    """``maps`` with its foreground moved so that ``threshold`` on it becomes 0.5.

    A shift of the logit, ``p -> sigmoid(logit(p) - logit(threshold))``: the order of the
    pixels and every other threshold keep their meaning relative to it (0.7 asks for
    surer pixels than 0.5 still). Other maps (the contour) are kept.
    """
    p = np.clip(maps[0].astype(np.float64), 1e-6, 1.0 - 1e-6)
    shift = np.log(threshold / (1.0 - threshold))
    out = maps.astype(np.float32, copy=True)
    out[0] = 1.0 / (1.0 + np.exp(shift - np.log(p / (1.0 - p))))
    return out
