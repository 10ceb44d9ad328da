"""A stack of large planes, block by block: each plane through :func:`~.bigimage.segment_large`.

A stack (Z, T, several positions...) whose planes are each too large to segment whole
(:data:`~.bigimage.BIG_PIXELS`) was segmented one whole plane at a time, at about 70
bytes per pixel of a plane: a 2 x 6000 x 6000 stack took 2.3 GB where one such plane,
block by block, took 0.64 GB (CLI check h_cli3, M5), and a stack of slide scans could not
be segmented at all without splitting it into files first.

Each plane now goes through the block path into a folder of its own (read lazily from
the file, a plane at a time), as a single large image does. Once every plane is done,
their nuclei are numbered on across the stack (plane 2's first nucleus follows plane 1's
last, as :func:`~.own_images.segment_stack` numbers them) and copied, a strip of rows at
a time, into one OME-Zarr label image with the stack's axes; the measurements are the
planes' tables with the same numbering and the stack's plane columns. Memory stays that
of one large plane.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .progress import Progress, relay


@dataclass
class StackBigResult:
    """Result of :func:`segment_large_planes`.

    Attributes
    ----------
    labels_path : pathlib.Path
        The OME-Zarr group; the labels are ``zarr.open(labels_path)["0"]``, with the axes
        ``axes``.
    n_nuclei : int
        Nuclei of all planes (labels 1..n_nuclei, unique across the stack).
    table : dict of str to numpy.ndarray
        Measurements, one row per nucleus, with the ``plane`` column and one column per
        plane axis (as :func:`~.own_images.segment_stack`'s).
    planes : int
        Planes segmented.
    seconds : float
        Wall time.
    diameters : list of float
        Each plane's nucleus diameter (see :attr:`.bigimage.BigResult.diameter`).
    focus : list of float
        The threshold each plane segmented now was drawn at (above 0.5: it looked out
        of focus; see :attr:`.bigimage.BigResult.focus`).
    cancelled : bool
        Whether it was stopped (then nothing is in ``labels_path``).
    axes : str
        The labels' axes: the stack's plane axes in OME-Zarr's order (time first, depth
        last, others between), or in the stack's own order (:func:`segment_stack_planes`),
        then ``YX``.
    done : list of int
        The planes segmented now whose labels are in ``labels_path`` (all of them, unless
        a stop kept the planes finished: :func:`segment_stack_planes`).
    kept : list of int
        The planes a stop left undone that keep an earlier result's labels.
    """

    labels_path: Path
    n_nuclei: int
    table: dict
    planes: int
    seconds: float
    diameters: list[float] = field(default_factory=list)
    cancelled: bool = False
    axes: str = "YX"
    done: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    focus: list[float] = field(default_factory=list)

    def labels(self, mode: str = "r") -> Any:
        """The label array (zarr, read lazily)."""
        import zarr

        return zarr.open(str(self.labels_path), mode=mode)["0"]


def segment_large_planes(
    model: Any,
    path: str | os.PathLike,
    out: str | os.PathLike,
    options: Any = None,
    *,
    axes: str | None = None,
    channel: int | None = None,
    block: int | None = None,
    client: Any = None,
    workers: int = 1,
    threads: int | None = None,
    device: Any = None,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[Progress, None, StackBigResult]:
    """Segment every plane of the stack in file ``path`` block by block into ``out``.

    Parameters
    ----------
    model : UNet or str
        A loaded model, or a checkpoint path (see :func:`~.bigimage.segment_large`).
    path : str or os.PathLike
        The image file or ``.zarr`` folder (opened with ``axes``).
    out : str or os.PathLike
        The OME-Zarr folder to write (replaced if it exists).
    options : SegmentOptions, optional
        Diameter (automatic: measured on each plane), threshold, TTA.
    axes, channel
        Axes override and nuclear channel, as for :func:`~.stacks.open_stack`.
    block, client, workers, threads, device, should_stop
        As for :func:`~.bigimage.segment_large`; ``should_stop`` is also asked between
        planes.

    Yields
    ------
    Progress
        ``stage="blocks"``: blocks done over the whole stack, the message naming the plane;
        then ``"number"`` (the planes' nuclei numbered on across the stack).

    Returns
    -------
    StackBigResult
    """
    import dask.array as da

    from .bigimage import DEFAULT_BLOCK
    from .lazy_plane import LazyPlane
    from .stacks import open_stack

    stack = open_stack(path, axes)
    stack.check_channel(channel)
    blk = int(block or DEFAULT_BLOCK)

    def source(flat: int) -> tuple[Any, Any]:
        plane_src = LazyPlane(str(path), axes, channel, plane=flat)
        intensity_src = LazyPlane(str(path), axes, "all", plane=flat)
        return (da.from_array(plane_src, chunks=(blk, blk) + plane_src.shape[2:]),
                da.from_array(intensity_src, chunks=(blk, blk) + intensity_src.shape[2:]))

    return (yield from _segment_planes(
        model, stack, source, Path(out), options, _ome_order(stack), block=blk,
        client=client, workers=workers, threads=threads, device=device,
        should_stop=should_stop))


def segment_stack_planes(
    model: Any,
    stack: Any,
    out: str | os.PathLike,
    options: Any = None,
    *,
    channel: int | None = None,
    room: int = 0,
    should_stop: Callable[[], bool] | None = None,
    earlier: Any = None,
    planes: list[int] | None = None,
) -> Generator[Progress, None, StackBigResult]:
    """Segment every plane of an open stack (a napari layer's data) block by block.

    As :func:`segment_large_planes`, for the Segment dock: the labels keep the stack's own
    axis order (they lie over its layer), ``room`` labels more fit their type (nuclei a
    user paints), and a stop keeps the planes finished (the others stay 0; ``done`` names
    them; none finished: ``cancelled`` and nothing written). Before, the dock segmented
    only the plane shown of a stack of large planes. ``earlier``: the stack's earlier
    result (``labels``, zarr or numpy with the stack's labels shape, ``table``,
    ``planes``), whose labels the planes a stop left undone keep (``kept``), numbered
    after the new ones: a stopped run emptied them. ``planes``: only those (the others
    keep ``earlier``'s labels): one plane segmented again went into a layer of its own,
    drawn over the stack's.
    """
    from .bigimage import DEFAULT_BLOCK, plane_arrays

    stack.check_channel(channel)
    return (yield from _segment_planes(
        model, stack, lambda flat: plane_arrays(stack, flat, channel), Path(out), options,
        list(range(len(stack.plane_axes))), block=DEFAULT_BLOCK, room=room,
        should_stop=should_stop, keep_done=True, earlier=earlier, todo=planes))


def _segment_planes(model: Any, stack: Any, source: Callable[[int], tuple[Any, Any]],
                    out: Path, options: Any, order: list[int], *, block: int, room: int = 0,
                    should_stop: Callable[[], bool] | None = None, keep_done: bool = False,
                    earlier: Any = None, todo: list[int] | None = None, **engine: Any
                    ) -> Generator[Progress, None, StackBigResult]:
    """Each plane of ``stack`` (or of ``todo``) block by block, numbered on into ``out``.

    ``source(flat)``: what is segmented and what is measured of plane ``flat``;
    ``order``: the plane axes' order in the labels; ``engine``: client, workers,
    threads and device for ``segment_large``.
    """
    from .bigimage import segment_large
    from .own_images import _where

    start = time.perf_counter()
    # beside the result, on the same disk (a plane's labels are as large as the result's);
    # one name: what a run killed (SIGKILL, out of memory) left is cleared by the next one
    # (review h_rev30, M3). One writer per result: the CLI holds its --out folder's lock.
    work = out.parent / f".{out.name}.planes"
    shutil.rmtree(work, ignore_errors=True)
    planes: list[Any] = []
    axes = "".join(stack.plane_axes[i] for i in order) + "YX"
    cancelled, per_plane = False, {}
    todo = list(range(stack.n_planes)) if todo is None else list(todo)
    try:
        for k, flat in enumerate(todo):
            if should_stop is not None and should_stop():
                cancelled = True
                break
            plane, intensity = source(flat)
            where = _where(stack, flat)
            result = yield from relay(
                segment_large(model, plane, work / f"{flat}.ome.zarr", options,
                              intensity=intensity, block=block, should_stop=should_stop,
                              name=f"{stack.name} {where}",
                              pixels_per_um=stack.pixels_per_um, room=room, **engine),
                lambda update, k=k, w=where: _overall(update, k, len(todo), w, per_plane))
            if result.cancelled:
                cancelled = True
                break
            planes.append(result)
        if cancelled and not (keep_done and planes):
            # ``out`` is not touched until every plane is done: an earlier result stays
            return StackBigResult(out, 0, {}, stack.n_planes, time.perf_counter() - start,
                                  [float(r.diameter) for r in planes if r.diameter],
                                  cancelled=True, axes=axes,
                                  focus=[float(r.focus) for r in planes])
        yield Progress("number", 0, 1, "numbering the nuclei across the planes")
        done = todo[:len(planes)]
        kept = [] if earlier is None else [p for p in earlier.planes if p not in done]
        n_nuclei, table = _assemble(stack, list(zip(done, planes, strict=True)), out, block,
                                    order, room, (earlier, kept) if kept else None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    yield Progress("number", 1, 1, f"{n_nuclei} nuclei")
    return StackBigResult(out, n_nuclei, table, stack.n_planes, time.perf_counter() - start,
                          [float(r.diameter) for r in planes if r.diameter],
                          cancelled=cancelled, axes=axes, done=done, kept=kept,
                          focus=[float(r.focus) for r in planes])


def _ome_order(stack: Any) -> list[int]:
    """The stack's plane axes in OME-Zarr 0.4's order: time first, space (Z) last.

    A ZTYX file gave z before t, which the specification does not allow (review h_rev30,
    L1); the labels TIFF, written from the OME-Zarr, takes the same order.
    """
    axes = stack.plane_axes
    return sorted(range(len(axes)), key=lambda i: (0 if axes[i] == "T" else
                                                   2 if axes[i] == "Z" else 1, i))


def _overall(update: Progress, flat: int, n_planes: int, where: str,
             per_plane: dict) -> Progress:
    """One plane's block update as the stack's: blocks done over every plane.

    ``per_plane`` keeps the blocks of a plane, seen in its block updates: a plane's
    joining ("merge", 0 of 1, then 1 of 1) filled the stack's bar after each plane, then
    it fell back (GUI check h_gui48, M2); it is the plane's blocks done of the stack's.
    """
    if update.stage == "blocks" and update.total:
        per_plane["blocks"] = update.total
        return Progress("blocks", flat * update.total + update.done,
                        n_planes * update.total,
                        f"{where}" + (f": {update.message}" if update.message else ""))
    message = f"{where}: {update.message}".rstrip(": ")
    per = per_plane.get("blocks")
    if update.stage == "merge" and per:
        return Progress("merge", (flat + 1) * per, n_planes * per, message)
    return Progress(update.stage, update.done, update.total, message)


def _assemble(stack: Any, planes: list, out: Path, block: int, order: list[int],
              room: int = 0, keep: tuple | None = None) -> tuple[int, dict]:
    """Copy the planes' labels into one stack, numbered on; return the count and table.

    ``planes``: ``(plane, result)`` of the planes done (the others are 0, or kept);
    ``order``: the plane axes' order in the labels; ``keep``: ``(earlier, planes)``, an
    earlier result whose labels those planes keep, numbered after the new nuclei.
    """
    from .measure import concat_tables
    from .ome_zarr import create_array, open_ome_group, write_ome_zarr_attrs
    from .own_images import label_dtype

    n_nuclei = sum(int(r.n_nuclei) for _, r in planes)
    h, w = stack.yx_shape
    found = _kept_labels(stack, keep, h, w, block)  # numbered on from the new ones: shifted
    dtype = label_dtype(n_nuclei + len(found), room=room)  # they grew at each Cancel
    if out.exists():
        shutil.rmtree(out)
    root = open_ome_group(out)
    shape = tuple(stack.plane_shape[i] for i in order) + (h, w)
    target = create_array(root, "0", shape, (1,) * len(order) + (block, block), dtype)
    tables, offset = [], 0
    if not n_nuclei and not found.size:  # no nucleus at all: the CSV's columns all the
        tables.append(_empty_table(stack))  # same (review h_rev30, L2)
    for flat, result in planes:
        index = stack.plane_index(flat)
        at = tuple(index[i] for i in order)
        source = result.labels()
        for y in range(0, h, block):  # a strip of rows at a time: bounded memory
            strip = np.asarray(source[y:y + block, :]).astype(dtype)
            if offset:
                strip[strip > 0] += dtype.type(offset)
            target[(*at, slice(y, y + strip.shape[0]), slice(0, w))] = strip
        tables.append(plane_rows(result.table, offset, flat, index, stack.plane_axes))
        offset += int(result.n_nuclei)
    for flat in keep[1] if keep else ():  # after the new ones (their labels from 1)
        index = stack.plane_index(flat)
        at = tuple(index[i] for i in order)
        source = keep[0].labels
        for y in range(0, h, block):
            strip = np.asarray(source[(*index, slice(y, y + block), slice(0, w))])
            new = (n_nuclei + 1 + np.searchsorted(found, strip)).astype(dtype)
            new[strip == 0] = 0
            target[(*at, slice(y, y + strip.shape[0]), slice(0, w))] = new
    if found.size:
        tables.append(_kept_rows(keep, found, n_nuclei))
    write_ome_zarr_attrs(root, stack.name, stack.pixels_per_um,
                         plane_axes="".join(stack.plane_axes[i] for i in order),
                         z_spacing_um=stack.z_spacing_um)
    return n_nuclei + int(found.size), concat_tables(tables)


def _kept_labels(stack: Any, keep: tuple | None, h: int, w: int, block: int) -> np.ndarray:
    """The labels found on the planes kept of an earlier result, sorted (a strip at a time)."""
    found: set[int] = set()
    for flat in keep[1] if keep else ():
        index = stack.plane_index(flat)
        for y in range(0, h, block):
            strip = np.asarray(keep[0].labels[(*index, slice(y, y + block), slice(0, w))])
            found.update(int(v) for v in np.unique(strip) if v)
    return np.array(sorted(found), np.int64)


def _kept_rows(keep: tuple, found: np.ndarray, offset: int) -> dict:
    """The earlier result's rows of the planes kept, labelled as their pixels now are."""
    table = {key: np.asarray(value) for key, value in (keep[0].table or {}).items()}
    if not table:
        return {}
    labels = table["label"].astype(np.int64)
    at = np.minimum(np.searchsorted(found, labels), found.size - 1)
    mine = np.isin(table["plane"], keep[1]) & (found[at] == labels)  # pixels left
    rows = {key: value[mine] for key, value in table.items()}
    rows["label"] = offset + 1 + at[mine]
    return rows


def _empty_table(stack: Any) -> dict:
    """The stack's table columns, with no row (as a whole-plane segmentation gives them)."""
    from .measure import measure_plane

    channels = np.zeros((max(1, stack.n_channels), 1, 1), np.float32)
    return measure_plane(np.zeros((1, 1), np.int32), channels, plane=0,
                         plane_index=stack.plane_index(0), plane_axes=stack.plane_axes)


def plane_rows(table: dict, offset: int, flat: int, index: tuple[int, ...],
               plane_axes: str) -> dict:
    """A plane's table in the stack: labels numbered on, its plane and plane-axis columns."""
    if not table:
        return {}
    n = len(table["label"])
    rows = {"label": np.asarray(table["label"], np.int64) + offset,
            "plane": np.full(n, flat, np.int64)}
    for axis, value in zip(plane_axes, index, strict=True):
        rows[axis.lower()] = np.full(n, value, np.int64)
    rows.update({key: value for key, value in table.items() if key not in rows})
    return rows
