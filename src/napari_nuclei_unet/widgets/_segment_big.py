"""The Segment dock's block-by-block jobs (worker thread): a large plane, a stack of them.

A large image (or one read lazily from disk) goes through the big-image path
(:func:`~napari_nuclei_unet.core.bigimage.segment_large`) into a temporary OME-Zarr, the
result layer's working copy: one plane into a 2-D layer of its own, or every plane of a
stack (:func:`~napari_nuclei_unet.core.bigstack.segment_stack_planes`) into one layer
with the stack's axes. The dock segmented only the plane shown of such a stack, and
said so: a Z-stack of slide scans took one press of Segment per plane.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Generator
from typing import Any

import numpy as np

from napari_nuclei_unet.widgets._own_layers import (
    PAINT_ROOM,
    LayerResult,
    cancelled_before_words,
)


def big_job(model: Any, stack: Any, options: Any, channel: int | None,
            planes: list[int] | None, should_stop: Callable[[], bool] | None,
            earlier: Any = None) -> Generator[Any, None, LayerResult]:
    """Plane ``planes[0]`` (``planes`` None: every plane of a stack) block by block.

    ``earlier``: the stack's earlier result, whose planes a Cancel leaves undone keep
    their labels (a stopped run emptied them: GUI check h_gui49, M2); with ``planes``,
    those are segmented into it (the others keep theirs).
    """
    from napari_nuclei_unet.widgets._working_copies import work_folder

    start = time.perf_counter()
    out = work_folder() / f"{stack.name}_labels.ome.zarr"
    try:  # nothing to show when it fails: its folder goes (review h_rev12, M2)
        if (planes is None or earlier is not None) and stack.n_planes > 1:
            result = yield from _every_plane(model, stack, options, channel, should_stop, out,
                                             earlier, planes)
        else:
            result = yield from _one_plane(model, stack, options, channel, (planes or [0])[0],
                                           should_stop, out)
    except BaseException:
        shutil.rmtree(out.parent, ignore_errors=True)
        raise
    if result.labels is None:
        shutil.rmtree(out.parent, ignore_errors=True)
    result.seconds = time.perf_counter() - start
    return result


def _one_plane(model: Any, stack: Any, options: Any, channel: int | None, flat: int,
               should_stop: Any, out: Any) -> Generator[Any, None, LayerResult]:
    from napari_nuclei_unet.core.bigimage import plane_arrays, segment_large

    plane, intensity = plane_arrays(stack, flat, channel)
    result = yield from segment_large(model, plane, out, options, intensity=intensity,
                                      should_stop=should_stop, name=stack.name,
                                      room=PAINT_ROOM)
    if result.cancelled:
        return LayerResult(stack.name, None, {}, [], "YX", None, True,
                           message=_cancel_message(result.blocks_done, result.n_blocks))
    table = dict(result.table)
    if table and stack.plane_axes:
        table["plane"] = np.full(len(table["label"]), flat, np.int64)
    return LayerResult(stack.name, result.labels("r+"), table, [flat], "YX", out, False,
                       diameters=[result.diameter] if result.diameter else [],
                       diameter_set=options.diameter > 0, focus=[result.focus])


def _every_plane(model: Any, stack: Any, options: Any, channel: int | None,
                 should_stop: Any, out: Any, earlier: Any,
                 planes: list[int] | None) -> Generator[Any, None, LayerResult]:
    from napari_nuclei_unet.core.bigstack import segment_stack_planes

    result = yield from segment_stack_planes(model, stack, out, options, channel=channel,
                                             room=PAINT_ROOM, should_stop=should_stop,
                                             earlier=earlier, planes=planes)
    axes = stack.plane_axes + "YX"
    if not result.done:  # a Cancel keeps the planes finished, as for any stack
        return LayerResult(stack.name, None, {}, [], axes, None, True,
                           message=cancelled_before_words(stack, planes, earlier)
                           + " (a large plane's labels are kept only once all its blocks "
                           "are done).")
    return LayerResult(stack.name, result.labels("r+"), dict(result.table),
                       sorted(result.done + result.kept), axes, out, result.cancelled,
                       segmented=result.done, diameters=list(result.diameters),
                       diameter_set=options.diameter > 0, focus=list(result.focus))


def _cancel_message(done: int, total: int) -> str:
    """What a cancelled block-by-block segmentation did, and that it kept nothing."""
    if done < total:
        return (f"Cancelled after {done} of {total} blocks. A large image's labels are kept "
                "only when all its blocks are done, so none were kept.")
    return (f"Cancelled while the {total} blocks were being joined. A large image's labels "
            "are kept only once its blocks are joined, so none were kept.")
