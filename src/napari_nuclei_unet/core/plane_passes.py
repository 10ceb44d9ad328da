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
