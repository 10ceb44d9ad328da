"""The nucleus size and focus of a large plane, judged once before its blocks are segmented.

With the automatic diameter, every block of :func:`~napari_nuclei_unet.core.bigimage.
segment_large` used to measure its own nuclei (GUI checks h_gui31 L4 and h_gui32 N3):

- neighbouring blocks could see the plane at different scales, so a nucleus cut by a
  seam could be drawn differently on either side;
- the halo was sized for the default nucleus (64 pixels) whatever the nuclei's size;
- and the result could not say which nucleus size was used, as a small image's does.

Here a few non-empty blocks, from the plane's centre outwards, are segmented with the
automatic diameter (the same estimate as for a small image), and every block is then
segmented at their median size (:meth:`PlaneSize.block_diameter`).

Whether the plane looks out of focus (:data:`~napari_nuclei_unet.core.plane_passes.
FOCUS_SOFT`) is judged on the same sample blocks (at the given diameter when there is
one), and every block is drawn at their median threshold
(:attr:`~napari_nuclei_unet.core.segment.SegmentOptions.focus_at`): judged block by
block, a block of a few nuclei was left as it was beside blocks drawn tighter, the
thresholds of neighbours differed, and the result could not say it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .progress import Progress, relay

#: Non-empty blocks whose nuclei are measured (their median is used), and the most
#: non-empty blocks tried to find them (blocks of debris or of a few nuclei measure nothing).
SAMPLES, MAX_TRIES = 3, 6
#: Fewest nuclei in a sample block for its measure to count.
MIN_NUCLEI = 3
#: Smallest side of a sample block (pixels): one network tile. Nuclei larger than about
#: a quarter of the side touch its border and are measured less well, so a small
#: ``--block`` does not make the samples small.
SAMPLE_SIDE = 1024


@dataclass(frozen=True)
class PlaneSize:
    """What the sample blocks of a large plane measured.

    Attributes
    ----------
    diameter : float
        Median nucleus diameter of the sample blocks, in the plane's pixels; 0 when none
        was measured (too few nuclei, or the diameter was given): every block then
        measures its own, or is segmented at the given one.
    samples : int
        Sample blocks whose nuclei were measured.
    focus : float
        The threshold every block's map is recentred at
        (:attr:`~napari_nuclei_unet.core.segment.SegmentOptions.focus_at`; 0.5: in focus):
        the median (the lower middle one of an even number) of the sample blocks that
        held :data:`MIN_NUCLEI` nuclei and enough foreground to be judged
        (:func:`~napari_nuclei_unet.core.plane_passes.judged`); 0 when none did (each
        block is then judged on its own).
    """

    diameter: float
    samples: int
    focus: float = 0.0

    def block_diameter(self, model: Any) -> float:
        """The fixed diameter every block is segmented at.

        The automatic rule for one measured size: within
        :data:`~napari_nuclei_unet.core.nucleus_size.NATIVE_RANGE` of the model's
        training diameter a plane is seen as it is (the training diameter, fixed, means
        no resizing), outside it is resized so that its nuclei have the training size.
        The sample blocks' own scales are not used: a block of a few nuclei can settle
        on another scale than the whole plane would (128-pixel blocks of one test image
        chose 1.0 to 2.2 where the whole image chose 1.0).
        """
        from .nucleus_size import NATIVE_RANGE, model_diameter

        target = model_diameter(model)
        if NATIVE_RANGE[0] * target <= self.diameter <= NATIVE_RANGE[1] * target:
            return target
        return self.diameter


def centre_out(shape: tuple[int, int], block: int) -> list[tuple[int, int]]:
    """The top-left corners of a ``block`` grid over ``shape``, nearest the centre first."""
    h, w = shape
    corners = [(y, x) for y in range(0, h, block) for x in range(0, w, block)]
    return sorted(corners, key=lambda c: ((c[0] + min(block, h - c[0]) / 2 - h / 2) ** 2
                                          + (c[1] + min(block, w - c[1]) / 2 - w / 2) ** 2))


def sample_plane(
    model: Any,
    plane: Any,
    options: Any,
    block: int,
    device: Any,
    is_empty: Callable[[np.ndarray], bool],
    should_stop: Callable[[], bool] | None = None,
) -> Generator[Progress, None, PlaneSize]:
    """Measure the nuclei of a large plane, and judge its focus, on up to :data:`SAMPLES` blocks.

    Parameters
    ----------
    model : UNet
        A loaded model.
    plane : array-like
        ``(H, W)`` or ``(H, W, C)`` dask, zarr or numpy array.
    options : SegmentOptions
        Its ``diameter``: 0 measures the nuclei (the sample blocks at the automatic
        diameter), else the blocks are seen at it and only the focus is judged (when
        ``options.focus``).
    block : int
        The plane's block side; sample blocks are at least :data:`SAMPLE_SIDE`.
    device : torch.device, optional
        Where to compute (None: the model's device).
    is_empty : callable
        Whether a block is background (skipped).
    should_stop : callable, optional
        Cooperative stop check (raises :class:`~napari_nuclei_unet.core.progress.Cancelled`).

    Yields
    ------
    Progress
        ``Progress("size", k, SAMPLES, message)`` before sample block ``k``.

    Returns
    -------
    PlaneSize
        Its ``diameter`` 0 when none was measured, its ``focus`` 0 when no sample block
        could be judged (then every block measures or judges its own, as before).
    """
    from dataclasses import replace

    from .nucleus_size import model_diameter
    from .plane_passes import judged
    from .segment import segment_image_steps

    automatic = options.diameter <= 0
    options = replace(options, focus_at=0.0)  # each sample block judged on its own
    message = "measuring the nucleus size" if automatic else "judging the focus"
    found: list[float] = []
    votes: list[float] = []  # the focus thresholds of blocks with nuclei
    tries = 0
    h, w = plane.shape[:2]
    block = max(block, SAMPLE_SIDE)
    for y, x in centre_out((h, w), block):
        if len(found if automatic else votes) == SAMPLES or tries == MAX_TRIES:
            break
        pixels = plane[y:y + block, x:x + block]
        pixels = np.asarray(pixels.compute() if hasattr(pixels, "compute") else pixels)
        if min(pixels.shape[:2]) < block // 4 or is_empty(pixels):
            continue
        tries += 1
        done = len(found if automatic else votes)
        yield Progress("size", done, SAMPLES, message)
        seg = yield from relay(segment_image_steps(model, pixels, options, device=device,
                                                   should_stop=should_stop),
                               lambda _, done=done: Progress("size", done, SAMPLES, message))
        if int(seg.labels.max()) < MIN_NUCLEI:
            continue
        # a window too sparse for the rule to judge (a few small nuclei) has no say:
        # its 0.5 would hold dense blurred blocks elsewhere at 0.5 (review h_rev53, 1).
        # Its foreground on the network's own map (not recentred: it was not judged
        # blurred), not its labels, which the user's Threshold cuts (h_rev53b, 1)
        confident = int(np.count_nonzero(seg.probability > 0.5) * seg.scale ** 2)
        if seg.focus > 0.5 or judged(confident, seg.scale):
            votes.append(float(seg.focus))
        # the estimate gives the model's own diameter, exactly, when it measured nothing
        # (too few confident nuclei): not a measure (review h_rev18, L2)
        if automatic and seg.diameter != model_diameter(model):
            found.append(seg.diameter)
    # the lower middle vote: a threshold a window chose, and tighter outlines only where
    # most windows asked for them (the mean of 0.5 and 0.82 was no window's)
    focus = sorted(votes)[(len(votes) - 1) // 2] if votes else 0.0
    return PlaneSize(float(np.median(found)) if found else 0.0, len(found), float(focus))
