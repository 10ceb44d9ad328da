"""Prediction at native resolution: overlapping tiles blended without seams.

The model is run as a fused, channels-last, eval-mode copy
(:meth:`UNet.fuse_for_inference`) under :func:`torch.inference_mode`. The fused copy is
cached per model and rebuilt automatically when the model's weights change (e.g.
between validation rounds of a training run).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Generator, Sequence

import numpy as np
import torch

from .device import amp_dtype
from .normalize import normalize_image
from .progress import Progress, check_stop, drive, stop_requested

DEFAULT_TILE_SIZE = 1024
DEFAULT_OVERLAP = 64

_FUSED_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _weights_version(model: torch.nn.Module) -> tuple:
    """Cheap fingerprint that changes whenever a parameter or buffer is modified."""
    return tuple(t._version for t in (*model.parameters(), *model.buffers())) + tuple(
        t.data_ptr() for t in model.parameters()
    )


def inference_model(model: torch.nn.Module, device: torch.device | None = None) -> torch.nn.Module:
    """Return the fused eval copy of ``model`` on ``device``, cached.

    Parameters
    ----------
    model : UNet
        A training-mode or eval-mode model, or an already fused one (returned as is,
        moved to ``device``).
    device : torch.device, optional
        Defaults to the device of the model's parameters.

    Returns
    -------
    torch.nn.Module
        A model in eval mode, BatchNorm folded, channels-last weights.
    """
    if device is None:
        device = next(model.parameters()).device
    if getattr(model, "is_fused", False) or not hasattr(model, "fuse_for_inference"):
        return model.to(device).eval()
    key = (_weights_version(model), str(device))
    cached = _FUSED_CACHE.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    fused = model.fuse_for_inference(channels_last=True).to(device)
    _FUSED_CACHE[model] = (key, fused)
    return fused


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D blending weights: a linear ramp over ``overlap`` pixels at inner tile edges."""
    weights = np.ones(length, dtype=np.float32)
    ramp_length = min(overlap, length // 2)
    if ramp_length > 0:
        ramp = (np.arange(ramp_length, dtype=np.float32) + 0.5) / ramp_length
        if not at_start:
            weights[:ramp_length] = ramp
        if not at_end:
            weights[length - ramp_length :] = ramp[::-1]
    return weights


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with >= ``overlap`` overlap.

    Tiles are spread evenly (the last one ends exactly at ``length``).
    """
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    count = max(count, 2)
    last = length - tile
    return [round(i * last / (count - 1)) for i in range(count)]


def predict_probability(
    model: torch.nn.Module,
    image: np.ndarray,
    *,
    device: torch.device | str | None = None,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int = 2,
    amp: bool = True,
) -> np.ndarray:
    """Predict the foreground probability of an image of any size.

    The foreground channel of :func:`predict_maps`; see it for the parameters.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32 probabilities in [0, 1].
    """
    return predict_maps(model, image, device=device, tile_size=tile_size, overlap=overlap,
                        batch_size=batch_size, amp=amp)[0]


def predict_maps(
    model: torch.nn.Module,
    image: np.ndarray,
    *,
    device: torch.device | str | None = None,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int = 2,
    amp: bool = True,
) -> np.ndarray:
    """Predict every output map (foreground, and contour for two-head models).

    Images that fit in one tile go through the network in one pass. Larger images
    are cut into overlapping tiles whose predictions are blended with linear-ramp
    weights over the overlaps, so no seams appear. :func:`predict_maps_steps` is the
    same as a generator that reports each tile and can be stopped between tiles.

    Parameters
    ----------
    model : UNet
        Model (any mode; a cached fused eval copy is used).
    image : numpy.ndarray
        ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA image (raw values; it is
        normalised with :func:`~napari_nuclei_unet.core.normalize.normalize_image`).
    device : torch.device or str, optional
        Where to compute; defaults to the model's device.
    tile_size : int, default 1024
        Largest tile side, rounded up to a multiple of ``2**depth``. Images up to this
        size go through in one pass, which on a CPU is faster than tiling (tiles
        overlap, so they compute more pixels); lower it to save memory on a GPU.
    overlap : int, default 64
        Minimum overlap of neighbouring tiles, in pixels.
    batch_size : int, default 2
        Tiles per forward pass.
    amp : bool, default True
        Use reduced precision where it is fast (:func:`~napari_nuclei_unet.core.device.amp_dtype`:
        bf16 on CUDA and on CPUs with native bf16). Probabilities then differ from fp32 by
        about 1e-3; pass False for exact fp32.

    Returns
    -------
    numpy.ndarray
        ``(C, H, W)`` float32 probabilities in [0, 1], one map per output channel
        (``C = model.out_channels``; channel 0 is the foreground).
    """
    return drive(predict_maps_steps(model, image, device=device, tile_size=tile_size,
                                    overlap=overlap, batch_size=batch_size, amp=amp))


def predict_maps_steps(
    model: torch.nn.Module,
    image: np.ndarray,
    *,
    device: torch.device | str | None = None,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int = 2,
    amp: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[Progress, None, np.ndarray]:
    """:func:`predict_maps` as a job: one update per batch of tiles, stoppable between them.

    Parameters
    ----------
    model, image, device, tile_size, overlap, batch_size, amp
        As for :func:`predict_maps`.
    should_stop : callable, optional
        Checked before every batch of tiles and before the tiles are blended.

    Yields
    ------
    Progress
        ``Progress("tiles", done, total)``: ``0`` before the first batch, then the tiles
        done after each batch (``total`` is 1 for an image that fits in one tile).

    Returns
    -------
    numpy.ndarray
        The maps :func:`predict_maps` returns.

    Raises
    ------
    Cancelled
        When ``should_stop`` returned True (half an image's maps are no result).
    """
    custom = getattr(model, "predict_probability", None)
    if custom is not None:  # e.g. a bioimage.io package, which brings its own processing
        yield Progress("tiles", 0, 1)
        check_stop(should_stop)
        prob = custom(image, device=device, tile_size=tile_size, overlap=overlap,
                      batch_size=batch_size, amp=amp)
        yield Progress("tiles", 1, 1)
        return np.asarray(prob, dtype=np.float32)[None]  # its one (foreground) map
    if device is not None and not isinstance(device, torch.device):
        from .device import resolve_device

        device = resolve_device(device)
    net = inference_model(model, device)
    device = next(net.parameters()).device
    x = torch.from_numpy(normalize_image(image))
    height, width = x.shape[-2:]
    multiple = getattr(net, "multiple", 1)
    tile = max(multiple, int(math.ceil(tile_size / multiple) * multiple))
    overlap = max(0, min(int(overlap), tile // 2))
    dtype = amp_dtype(device) if amp else None

    def run(batch: torch.Tensor) -> torch.Tensor:
        # inference mode only around the forward: never held while the job is suspended
        with torch.inference_mode():
            batch = batch.to(device).contiguous(memory_format=torch.channels_last)
            if dtype is not None:
                with torch.autocast(device.type, dtype=dtype):
                    logits = net(batch)
            else:
                logits = net(batch)
            return torch.sigmoid(logits.float()).cpu()

    if height <= tile and width <= tile:
        yield Progress("tiles", 0, 1)
        check_stop(should_stop)
        maps = run(x[None])[0].numpy().astype(np.float32, copy=False)
        yield Progress("tiles", 1, 1)
        return maps
    tile_h, tile_w = min(tile, height), min(tile, width)
    ys = tile_starts(height, tile_h, overlap)
    xs = tile_starts(width, tile_w, overlap)
    channels = getattr(net, "out_channels", 1)
    total = np.zeros((channels, height, width), dtype=np.float32)
    weight_sum = np.zeros((height, width), dtype=np.float32)
    boxes = [(y, x0) for y in ys for x0 in xs]
    yield Progress("tiles", 0, len(boxes))
    for first in range(0, len(boxes), batch_size):
        check_stop(should_stop)
        chunk = boxes[first : first + batch_size]
        batch = torch.stack([x[:, y : y + tile_h, x0 : x0 + tile_w] for y, x0 in chunk])
        probs = run(batch).numpy()
        for (y, x0), prob in zip(chunk, probs, strict=True):
            wy = _ramp(tile_h, overlap, y == 0, y + tile_h >= height)
            wx = _ramp(tile_w, overlap, x0 == 0, x0 + tile_w >= width)
            weight = wy[:, None] * wx[None, :]
            total[:, y : y + tile_h, x0 : x0 + tile_w] += prob * weight
            weight_sum[y : y + tile_h, x0 : x0 + tile_w] += weight
        yield Progress("tiles", first + len(chunk), len(boxes))
    check_stop(should_stop)
    return np.clip(total / weight_sum, 0.0, 1.0).astype(np.float32, copy=False)


def probability_to_mask(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Threshold a probability map.

    Parameters
    ----------
    prob : numpy.ndarray
        Probabilities in [0, 1].
    threshold : float, default 0.5
        Pixels with ``prob > threshold`` are foreground.

    Returns
    -------
    numpy.ndarray
        Boolean mask of the same shape.
    """
    return np.asarray(prob) > threshold


def predict_samples(
    model: torch.nn.Module,
    samples: Sequence,
    *,
    device: torch.device | str | None = None,
    should_stop: Callable[[], bool] | None = None,
    tile_size: int = DEFAULT_TILE_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    amp: bool = True,
) -> Generator[Progress, None, dict[str, np.ndarray]]:
    """Predict many samples, yielding progress.

    Parameters
    ----------
    model : UNet
        The model.
    samples : sequence of Sample
        Objects with ``id`` and ``image``.
    device : torch.device or str, optional
        Where to compute; defaults to the model's device.
    should_stop : callable, optional
        Checked before each image; when it returns True the job stops and returns the
        maps predicted so far.
    tile_size, overlap : int
        See :func:`predict_probability`.
    amp : bool, default True
        See :func:`predict_probability`.

    Yields
    ------
    Progress
        ``Progress("predict", done, total, sample_id)`` after each image.

    Returns
    -------
    dict of str to numpy.ndarray
        Sample id to ``(H, W)`` float32 probability map.
    """
    results: dict[str, np.ndarray] = {}
    total = len(samples)
    for done, sample in enumerate(samples, start=1):
        if stop_requested(should_stop):
            break
        results[sample.id] = predict_probability(
            model, sample.image, device=device, tile_size=tile_size, overlap=overlap, amp=amp
        )
        yield Progress("predict", done, total, sample.id)
    return results
