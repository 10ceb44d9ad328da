"""What inference shows the network: corrections resized and smoothed as ``segment_image`` does.

A user's prediction goes through :func:`~napari_nuclei_unet.core.segment.segment_image`,
which resizes a plane so that its nuclei measure the model's training diameter
(``Segmentation.scale``) and smooths a dim integer plane with the sigma the network is
surest with (``Segmentation.smoothing``). A round that trained on the corrections at
their native pixels would teach the network images it never sees when the user
predicts (an image of nuclei 3 times the training size is shrunk 3 times at inference).
So a round finds, once, with the base model, the scale and smoothing inference uses for
each correction and trains on the correction transformed likewise
(:func:`inference_views`).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..progress import Progress, stop_requested


@dataclass(frozen=True)
class InferenceView:
    """How inference shows one correction to the network.

    Attributes
    ----------
    id : str
        The correction.
    scale : float
        Factor the image was resized by (1.0 = native pixels).
    smoothing : float
        Gaussian sigma (pixels, native) the image was smoothed with first (0 = none).
    diameter : float
        Nucleus diameter (native pixels) inference used: the given or estimated one.
    shape : tuple of int
        ``(height, width)`` of the image trained on.
    """

    id: str
    scale: float
    smoothing: float
    diameter: float
    shape: tuple[int, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fields."""
        return {"id": self.id, "scale": self.scale, "smoothing": self.smoothing,
                "diameter": self.diameter, "shape": list(self.shape)}


def _as_uint8(image: np.ndarray, stretch: bool) -> np.ndarray:
    """The transformed image as uint8 (what training reads).

    ``stretch``: map min..max to 0..255. Training normalises every image by its
    percentiles (an affine map), so stretching changes nothing the network sees but
    keeps the sub-grey-level values that smoothing a dim image creates (rounding them
    back to its few grey levels would undo the smoothing).
    """
    image = image.astype(np.float32, copy=False)
    if stretch:
        low, high = float(image.min()), float(image.max())
        image = (image - low) * (255.0 / max(high - low, 1e-6))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def transform_sample(sample: Any, scale: float, smoothing: float) -> Any:
    """A copy of ``sample`` smoothed (at native pixels), then resized, as inference does.

    Parameters
    ----------
    sample : Sample
        Image ``(H, W)`` or ``(H, W, C)`` and instance labels ``(H, W)``.
    scale : float
        Resize factor (1.0 = none): the image as
        :func:`~napari_nuclei_unet.core.planes.resize_plane` resizes it for inference
        (bicubic when enlarging, anti-aliased linear when shrinking), the labels with
        the nearest label.
    smoothing : float
        Gaussian sigma in native pixels (0 = none), applied per channel.

    Returns
    -------
    Sample
        ``sample`` itself when nothing changes; else a copy with the same id, a uint8
        image and int32 labels.
    """
    if scale == 1.0 and smoothing <= 0:
        return sample
    from ..planes import resize_array, resize_plane, smooth

    image = np.asarray(sample.image)
    labels = np.asarray(sample.labels)
    stretch = smoothing > 0 or image.dtype != np.uint8
    work = image.astype(np.float32)
    if smoothing > 0:
        work = smooth(work, smoothing)
    if scale != 1.0:
        height, width = labels.shape[:2]
        shape = (max(8, round(height * scale)), max(8, round(width * scale)))
        work = resize_plane(work, shape)
        labels = resize_array(labels, shape, 0)
    return replace(sample, image=_as_uint8(work, stretch),
                   labels=np.asarray(labels, dtype=np.int32))


def inference_views(
    model: Any,
    samples: Sequence[Any],
    options: Any = None,
    *,
    device: Any = None,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[Progress, None, tuple[list[Any], list[InferenceView]]]:
    """Transform each sample as :func:`~napari_nuclei_unet.core.segment.segment_image` shows it.

    Each distinct sample (by id) is segmented once with ``model`` and ``options``; the
    scale and smoothing of that segmentation are applied to the image (and the scale
    to the labels) with :func:`transform_sample`. Samples repeated in the list (a
    list-drawn round repeats corrections) share one transformed copy.

    Parameters
    ----------
    model : UNet
        The base model of the round (it decides the scale and smoothing).
    samples : sequence of Sample
        The corrections.
    options : SegmentOptions, optional
        The options of the user's predictions (default: automatic diameter).
    device : torch.device or str, optional
        Where to compute.
    should_stop : callable, optional
        Checked before each sample; when True the samples left are kept as they are.

    Yields
    ------
    Progress
        ``Progress("prepare", i, n, id)`` per distinct sample.

    Returns
    -------
    samples : list of Sample
        The transformed samples, in the order given.
    views : list of InferenceView
        One per distinct sample, in order of first appearance.
    """
    from ..segment import SegmentOptions, segment_image

    options = options or SegmentOptions()
    distinct: dict[str, Any] = {}
    for sample in samples:
        distinct.setdefault(sample.id, sample)
    done: dict[str, Any] = {}
    views: list[InferenceView] = []
    for i, (key, sample) in enumerate(distinct.items()):
        if stop_requested(should_stop):
            break
        result = segment_image(model, sample.image, options, device=device)
        scale, sigma = float(result.scale), float(result.smoothing)
        done[key] = transform_sample(sample, scale, sigma)
        views.append(InferenceView(key, scale, sigma, float(result.diameter),
                                   tuple(int(v) for v in np.shape(done[key].labels)[:2])))
        yield Progress("prepare", i + 1, len(distinct), key)
    return [done.get(s.id, s) for s in samples], views
