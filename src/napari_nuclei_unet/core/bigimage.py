"""Large 2-D images: segmented block by block with dask, written lazily to zarr.

The plane (a dask array: a 20,000 x 20,000 TIFF opened through tifffile's ``aszarr``,
an OME-Zarr, a napari layer's dask data...) is cut into ``block`` x ``block`` chunks.
:func:`dask.array.map_overlap` hands every chunk, with a ``halo`` of its neighbours,
to :func:`~napari_nuclei_unet.core.segment.segment_image`; each block keeps its own
pixels plus one pixel of halo on every inner side. Labels are made unique by a block
offset (no pass over the data needed), written to a temporary zarr array, and the
nuclei cut by a block seam are merged: on the two pixel lines either side of a seam
both blocks segmented the same pixels, and two labels that share at least half of the
smaller one's pixels there are the same nucleus (a union-find by
:func:`scipy.sparse.csgraph.connected_components`). A last lazy pass renumbers the
labels 1..n into the final zarr array (OME-Zarr 0.4 layout: ``<out>/0`` + multiscales
metadata). Measurements are aggregated per block and merged the same way.

Memory stays bounded by a few blocks per worker thread plus one small array per
nucleus. The same graph runs on the local threaded scheduler or on a
:class:`distributed.Client` (see :mod:`~napari_nuclei_unet.core.cluster`), with
identical results.

Blocks where no pixel reaches a quarter of the image's normalised range (computed
once on a subsample of the whole plane) are background and skipped: per-block
normalisation would otherwise stretch their noise into nuclei.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .bigmeasure import _block_stats, _merge_table
from .bigmeasure import measure_large as measure_large  # re-exported
from .bigsize import sample_plane
from .model_cache import file_identity, model_for
from .ome_zarr import create_array, open_ome_group, write_ome_zarr_attrs
from .own_images import label_dtype
from .progress import Cancelled, Progress, relay

#: Default block side (pixels) and halo: block + 2 halos = 1024, one network pass.
DEFAULT_BLOCK = 896
DEFAULT_HALO = 64
#: A block whose 99.9th percentile stays under this normalised level is background.
EMPTY_LEVEL = 0.25
#: Planes larger than this many pixels go through the block path by default.
BIG_PIXELS = 4096 * 4096


@dataclass
class BigResult:
    """Result of :func:`segment_large`.

    Attributes
    ----------
    labels_path : pathlib.Path
        The OME-Zarr group; the labels are ``zarr.open(labels_path)["0"]``.
    n_nuclei : int
        Number of nuclei (labels are 1..n_nuclei).
    table : dict of str to numpy.ndarray
        Measurements (see :mod:`~napari_nuclei_unet.core.measure`).
    n_blocks : int
        Blocks segmented.
    seconds : float
        Wall time.
    cancelled : bool
        Whether the user stopped it (then nothing is in ``labels_path``: the labels of
        a plane are kept only when every block is done and the seams are merged).
    blocks_done : int
        Blocks finished when it stopped (``n_blocks`` when it did not).
    diameter : float
        The nucleus diameter the blocks were segmented at, in the plane's pixels: the
        one given, or the one measured on sample blocks (:mod:`.bigsize`); 0 when none
        could be measured (each block then measured its own).
    focus : float
        The threshold of the network's map every block's outlines were drawn at: above
        0.5 when the sample blocks looked out of focus (:mod:`.bigsize`); 0.5 when they
        did not, or when no sample block held enough nuclei to judge (each block was
        then judged on its own).
    """

    labels_path: Path
    n_nuclei: int
    table: dict
    n_blocks: int
    seconds: float
    cancelled: bool = False
    blocks_done: int = 0
    diameter: float = 0.0
    focus: float = 0.5

    def __post_init__(self) -> None:
        if not self.cancelled and not self.blocks_done:
            self.blocks_done = self.n_blocks

    def labels(self, mode: str = "r") -> Any:
        """The label array (zarr, read lazily; ``mode="r+"`` to edit it in place)."""
        import zarr

        return zarr.open(str(self.labels_path), mode=mode)["0"]


_LIBC: Any = None


def _libc() -> Any:
    """glibc, or None elsewhere (macOS, Windows, musl)."""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
            libc.malloc_trim, libc.mallopt  # noqa: B018 - both must exist
            _LIBC = libc
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC or None


def bound_heap_growth() -> None:
    """Keep glibc from hoarding freed block buffers (process-wide, Linux only).

    glibc raises its mmap threshold after the first large free, so the next blocks'
    multi-megabyte arrays come from the heap, which fragments and keeps growing with
    the number of blocks (1.0 GB instead of 0.66 GB at 2,000 x 2,000 pixels).
    A fixed 64 KiB threshold (``MALLOC_MMAP_THRESHOLD_=65536``) hands them back to
    the system at once.
    """
    libc = _libc()
    if libc is not None:
        libc.mallopt(-3, 65536)  # M_MMAP_THRESHOLD


def _trim() -> None:
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


# -- block functions (run in workers) ------------------------------------------------

def _is_empty(block: np.ndarray, params: Any) -> bool:
    if params is None:
        return False
    grey = block.mean(axis=-1) if block.ndim == 3 else block
    step = max(1, int(np.sqrt(grey.size / 65536)))
    values = grey[::step, ::step].astype(np.float32) * params.scale + params.offset
    return float(np.percentile(values, 99.9)) < EMPTY_LEVEL


def _segment_block(block: np.ndarray, *, model: Any, options: Any, params: Any, halo: int,
                   bound: int, label_dtype: Any, threads: int | None,
                   should_stop: Callable[[], bool] | None = None, block_info: Any = None,
                   device: Any = None, stamp: tuple | None = None) -> np.ndarray:
    """Segment one block with its halo; keep its pixels + 1 px of halo; offset labels.

    ``should_stop`` (local threads only: it does not travel to cluster workers) is
    checked between the network's passes and tiles; a stop raises :class:`Cancelled`.
    """
    from .segment import segment_image

    info = block_info[0]
    (i, j), (ni, nj) = info["chunk-location"][:2], info["num-chunks"][:2]
    h, w = block.shape[:2]
    top, left = (halo - 1 if i > 0 else 0), (halo - 1 if j > 0 else 0)
    bottom, right = (h - (halo - 1) if i < ni - 1 else h), (w - (halo - 1) if j < nj - 1 else w)
    if _is_empty(block, params):
        return np.zeros((bottom - top, right - left), label_dtype)
    bound_heap_growth()  # in every worker process
    from .device import device_here

    labels = segment_image(model_for(model, threads, stamp), block, options,
                           device=device_here(device),
                           should_stop=should_stop).labels
    out = labels[top:bottom, left:right].astype(label_dtype)
    del labels
    _trim()
    offset = label_dtype.type((i * nj + j) * bound)
    out[out > 0] += offset
    return out


def _seam_pairs(a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """Label pairs on the two shared pixel lines of blocks ``a`` (before) and ``b``.

    Returns ``(n, 5)`` int64 rows ``(label_a, label_b, shared, n_a, n_b)``.
    """
    if axis == 0:
        sa, sb = a[-2:, :], b[:2, :]
    else:
        sa, sb = a[:, -2:], b[:, :2]
    # align the other axis: both blocks have the same margins there (same block row/col)
    la, lb = sa.ravel().astype(np.int64), sb.ravel().astype(np.int64)
    both = (la > 0) & (lb > 0)
    if not both.any():
        return np.zeros((0, 5), np.int64)
    pairs, shared = np.unique(np.stack([la[both], lb[both]], axis=1), axis=0, return_counts=True)
    ua, ca = np.unique(la[la > 0], return_counts=True)
    ub, cb = np.unique(lb[lb > 0], return_counts=True)
    n_a = ca[np.searchsorted(ua, pairs[:, 0])]
    n_b = cb[np.searchsorted(ub, pairs[:, 1])]
    return np.column_stack([pairs, shared, n_a, n_b]).astype(np.int64)


def _write_block(block: np.ndarray, target: Any, y0: int, x0: int) -> None:
    """Write one block of labels into the zarr array at ``(y0, x0)``."""
    target[y0:y0 + block.shape[0], x0:x0 + block.shape[1]] = block


def _relabel(block: np.ndarray, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.zeros(block.shape, values.dtype)
    fg = block > 0
    if fg.any():
        out[fg] = values[np.searchsorted(keys, block[fg])]
    return out


# -- the driver -----------------------------------------------------------------------

def global_params(plane: Any) -> Any:
    """Normalisation of the whole plane, estimated on a strided subsample (bounded memory).

    A frame or corners of one value are filled first, as each block's are
    (:func:`~napari_nuclei_unet.core.margins.fill_constant_margins`): background
    blocks of a rotated or padded plane then read as empty.
    """
    from .margins import fill_constant_margins
    from .normalize import normalization_params

    h, w = plane.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(h * w / 1_000_000))))
    sub = plane[::step, ::step]
    sub = np.asarray(sub.compute() if hasattr(sub, "compute") else sub)
    return normalization_params(fill_constant_margins(sub))


def _block_chunks(length: int, block: int, halo: int) -> tuple[int, ...]:
    """Blocks of ``block`` pixels; a last one thinner than the halo joins its neighbour."""
    sizes = [block] * (length // block)
    rest = length - block * len(sizes)
    if rest and (rest > halo or not sizes):
        sizes.append(rest)
    elif rest:
        sizes[-1] += rest
    return tuple(sizes)


def _ext_chunks(chunks: tuple[int, ...]) -> tuple[int, ...]:
    n = len(chunks)
    return tuple(c + (1 if k > 0 else 0) + (1 if k < n - 1 else 0) for k, c in enumerate(chunks))


def plane_arrays(stack: Any, flat: int, channel: int | None) -> tuple[Any, Any]:
    """Plane ``flat`` of a large :class:`~.stacks.ImageStack` as dask arrays.

    What is segmented: ``(H, W)`` (or ``(H, W, 3)``, RGB); what is measured: ``(H, W)`` or
    ``(H, W, C)``, every channel. Nothing is read until a block is.
    """
    import dask.array as da

    data = stack.data
    if not hasattr(data, "dask"):
        data = da.from_array(data, chunks=(1,) * (len(data.shape) - 2)
                             + (DEFAULT_BLOCK, DEFAULT_BLOCK))
    intensity = data[stack.plane_index(flat)]
    if "C" not in stack.axes:
        return intensity, intensity
    intensity = da.moveaxis(intensity, 0, -1)
    return (intensity if channel is None else intensity[..., channel]), intensity


def segment_large(
    model: Any,
    plane: Any,
    out: str | os.PathLike,
    options: Any = None,
    *,
    intensity: Any = None,
    block: int = DEFAULT_BLOCK,
    halo: int | None = None,
    client: Any = None,
    workers: int = 1,
    threads: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    name: str = "labels",
    pixels_per_um: tuple[float, float] | None = None,
    device: Any = None,
    room: int = 0,
) -> Generator[Progress, None, BigResult]:
    """Segment a large 2-D plane block by block into a zarr label array.

    Parameters
    ----------
    model : UNet or str
        A loaded model, or a checkpoint path (each worker process loads it once; use a
        path with a multi-process or remote cluster).
    plane : array-like
        ``(H, W)`` or ``(H, W, C)`` dask, zarr or numpy array.
    out : str or os.PathLike
        The OME-Zarr folder to write (replaced if it exists).
    options : SegmentOptions, optional
        Segmentation options (diameter, threshold, TTA).
    intensity : array-like, optional
        ``(H, W)`` or ``(H, W, C)`` intensities to measure (default: ``plane``).
    block, halo : int
        Block side and halo in pixels (halo default: 64, or twice the diameter). A
        block is made at least twice the halo wide.
    client : distributed.Client, optional
        Run on this cluster (default: dask's local threaded scheduler).
    workers : int
        Threads of the local scheduler.
    threads : int, optional
        Torch threads per worker process when ``model`` is a path.
    device : str or torch.device, optional
        Where the blocks are segmented (default: the model's device; a checkpoint path
        is loaded on the CPU). A name such as ``"auto"`` is resolved where each block
        runs: a cluster's GPU workers use their GPU (review h_rev17, F6).
    should_stop : callable, optional
        Cooperative stop check: on the local scheduler the blocks being segmented stop
        too, between the network's tiles. Nothing is kept: a stopped plane has no
        labels (``BigResult.cancelled``, with ``blocks_done``).
    name : str
        Name stored in the OME-Zarr metadata.
    pixels_per_um : (float, float), optional
        The image's pixel size ``(x, y)``, stored as its scale (see
        :func:`write_ome_zarr_attrs`).
    room : int
        Labels to keep room for beyond those found (nuclei a user will paint): the labels
        are uint16 while they and ``room`` more fit, else uint32
        (:func:`~napari_nuclei_unet.core.own_images.label_dtype`).

    Yields
    ------
    Progress
        ``stage="blocks"`` (done/total blocks), then ``"merge"``.

    Returns
    -------
    BigResult
    """
    import dask
    import dask.array as da
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from .segment import SegmentOptions

    start = time.perf_counter()
    bound_heap_growth()
    options = options or SegmentOptions()
    if not hasattr(plane, "dask"):
        plane = da.from_array(plane, chunks=(block, block) + tuple(plane.shape[2:]))
    if plane.ndim not in (2, 3):
        raise ValueError(f"expected one 2-D plane (H, W) or (H, W, C), got {plane.shape}")
    height, width = plane.shape[:2]
    guess = len(_block_chunks(height, block, DEFAULT_HALO)) * len(
        _block_chunks(width, block, DEFAULT_HALO))
    yield Progress("blocks", 0, guess, "reading intensity range")
    stamp = file_identity(model) if isinstance(model, (str, os.PathLike)) else None
    params = global_params(plane)
    size = None
    # an automatic diameter, and the focus, are judged once for every block (bigsize)
    judge = options.focus and not options.focus_at
    if options.diameter <= 0 or judge:
        from .device import device_here, device_here_or_cpu
        from .segment import judges_focus

        net = model_for(model, threads, stamp)  # measured here, blocks on a cluster's workers:
        here = device_here(device) if client is None else device_here_or_cpu(device)
        if options.diameter <= 0 or judges_focus(net):
            try:
                size = yield from relay(
                    sample_plane(net, plane, options, block, here,
                                 lambda pixels: _is_empty(pixels, params), should_stop),
                    lambda update: Progress("blocks", 0, guess, update.message))
            except Cancelled:
                return BigResult(out, 0, {}, guess, time.perf_counter() - start,
                                 cancelled=True)
            if size.diameter:
                options = replace(options, diameter=size.block_diameter(net))
            if judge and size.focus:
                options = replace(options, focus_at=size.focus)
    measured = size.diameter if size is not None and size.diameter else options.diameter
    if halo is None:
        halo = max(DEFAULT_HALO, int(2 * measured))
    # a block holds its halo twice over: nuclei over half a small --block stopped dask
    # ("adjust_chunks specified with 6 blocks": review h_rev18, H1)
    block = max(int(block), 2 * int(halo))
    plane = plane.rechunk((_block_chunks(plane.shape[0], block, halo),
                           _block_chunks(plane.shape[1], block, halo)) + tuple(plane.shape[2:]))
    intensity = plane if intensity is None else (
        intensity if hasattr(intensity, "dask") else da.from_array(intensity))
    intensity = intensity.rechunk(plane.chunks[:2] + tuple((s,) for s in intensity.shape[2:]))
    ni, nj = len(plane.chunks[0]), len(plane.chunks[1])
    n_blocks = ni * nj
    bound = (block + 2) * (block + 2)
    dtype = np.dtype(np.uint32 if n_blocks * bound < 2**32 - 1 else np.uint64)
    # an axis of one block needs no halo (its block is the whole axis), and dask refuses
    # a halo deeper than the axis: a 48-pixel-high lazy image failed (h_gui21's test)
    depth = {axis: halo if len(plane.chunks[axis]) > 1 else 0 for axis in (0, 1)}
    depth.update({2: 0} if plane.ndim == 3 else {})
    # blocks on local threads stop within a block; cluster workers finish theirs
    stop_event = threading.Event()
    ext = da.map_overlap(
        _segment_block, plane, depth=depth, boundary="none", trim=False,
        drop_axis=[2] if plane.ndim == 3 else [],
        chunks=(_ext_chunks(plane.chunks[0]), _ext_chunks(plane.chunks[1])),
        dtype=dtype, meta=np.zeros((0, 0), dtype), model=model, options=options,
        params=params, halo=halo, bound=bound,
        label_dtype=dtype,
        threads=threads, device=device, stamp=stamp,
        should_stop=stop_event.is_set if client is None else None,
    )
    core = da.overlap.trim_internal(ext, {0: 1, 1: 1}, boundary="none")

    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    root = open_ome_group(out)
    tmp = create_array(root, "_unmerged", (height, width), (block, block), dtype)
    # one graph, unoptimised: the store, seam and stats tasks must share the block keys
    # (optimised copies would segment every block again for each consumer)
    ext_blocks = ext.to_delayed(optimize_graph=False)
    core_blocks = core.to_delayed(optimize_graph=False)
    img_blocks = intensity.to_delayed(optimize_graph=False)
    if img_blocks.ndim == 3:
        img_blocks = img_blocks[:, :, 0]
    seams = []
    for i in range(ni):
        for j in range(nj):
            if j + 1 < nj:
                seams.append(dask.delayed(_seam_pairs)(ext_blocks[i, j], ext_blocks[i, j + 1], 1))
            if i + 1 < ni:
                seams.append(dask.delayed(_seam_pairs)(ext_blocks[i, j], ext_blocks[i + 1, j], 0))
    y_starts = np.concatenate([[0], np.cumsum(plane.chunks[0])[:-1]])
    x_starts = np.concatenate([[0], np.cumsum(plane.chunks[1])[:-1]])
    store = [dask.delayed(_write_block)(core_blocks[i, j], tmp, int(y_starts[i]),
                                        int(x_starts[j]))
             for i in range(ni) for j in range(nj)]
    token = uuid.uuid4().hex[:12]
    stats = [dask.delayed(_block_stats)(
        core_blocks[i, j], img_blocks[i, j], int(y_starts[i]), int(x_starts[j]),
        dask_key_name=f"nuclei-stats-{token}-{i}-{j}")
        for i in range(ni) for j in range(nj)]
    last = [Progress("blocks", 0, n_blocks)]

    def noted(update: Progress) -> Progress:  # the blocks done, should it stop
        last[0] = update
        return update

    results = yield from relay(_run([*store, *seams, *stats], n_blocks, client, workers,
                                    should_stop, "nuclei-stats", stop_event), noted)
    if results is None:
        shutil.rmtree(out, ignore_errors=True)
        return BigResult(out, 0, {}, n_blocks, time.perf_counter() - start, cancelled=True,
                         blocks_done=last[0].done)
    seam_rows = [r for r in results[len(store):len(store) + len(seams)] if len(r)]
    tables = results[len(store) + len(seams):]

    # -- merge: union-find over the seam pairs, then renumber 1..n
    from .measure import concat_tables

    table = concat_tables(tables)
    keys = np.asarray(table.get("label", np.zeros(0, np.int64)), np.int64)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    table = {k: v[order] for k, v in table.items()}
    n = len(keys)
    if seam_rows and n:
        rows = np.concatenate(seam_rows)
        keep = rows[:, 2] * 2 >= np.minimum(rows[:, 3], rows[:, 4])
        # a label a block holds only in its one-pixel halo line is no nucleus of its own
        # (its neighbour's label holds that nucleus): looked up, it took the next key, an
        # unrelated nucleus, or ran past the table (review h_rev22, H1)
        keep &= np.isin(rows[:, 0], keys) & np.isin(rows[:, 1], keys)
        a = np.searchsorted(keys, rows[keep, 0])
        b = np.searchsorted(keys, rows[keep, 1])
        graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
        _, component = connected_components(graph, directed=False)
    else:
        component = np.arange(n)
    n_nuclei = int(component.max()) + 1 if n else 0
    values = (component + 1).astype(label_dtype(n_nuclei, room=room))
    yield Progress("merge", 0, 1, f"{n_nuclei} nuclei")
    final = da.from_zarr(tmp).map_blocks(_relabel, dask.delayed(keys), dask.delayed(values),
                                         dtype=values.dtype)
    labels_array = create_array(root, "0", (height, width), (block, block), values.dtype)
    merged_store = da.store(final, labels_array, lock=False, compute=False)
    done = yield from _run([merged_store], 0, client, workers, should_stop, None, stop_event)
    if done is None:
        shutil.rmtree(out, ignore_errors=True)
        return BigResult(out, 0, {}, n_blocks, time.perf_counter() - start, cancelled=True,
                         blocks_done=n_blocks)
    del root["_unmerged"]
    write_ome_zarr_attrs(root, name, pixels_per_um)
    merged = _merge_table(table, values, n_nuclei, labels_array, intensity)
    yield Progress("merge", 1, 1, f"{n_nuclei} nuclei")
    return BigResult(out, n_nuclei, merged, n_blocks, time.perf_counter() - start,
                     diameter=float(measured),
                     focus=float(options.focus_at or 0.5) if options.focus else 0.5)


def _run(tasks: list, n_blocks: int, client: Any, workers: int,
         should_stop: Callable[[], bool] | None, counter_prefix: str | None,
         stop_event: threading.Event | None = None,
         ) -> Generator[Progress, None, list | None]:
    """Compute ``tasks`` locally or on ``client``, yielding block progress; None if stopped.

    ``stop_event`` is set when a stop is asked for (the local blocks check it).
    """
    import dask

    stop_event = stop_event or threading.Event()

    def stopped() -> bool:
        if should_stop and should_stop():
            stop_event.set()
        return stop_event.is_set()

    if client is not None:
        futures = client.compute(tasks, optimize_graph=False)
        last = -1
        while not all(f.done() for f in futures):
            if stopped():
                client.cancel(futures)
                return None
            if counter_prefix:
                done = sum(1 for f in futures[-n_blocks:] if f.done())
                if done != last:
                    last = done
                    yield Progress("blocks", done, n_blocks)
            time.sleep(0.2)
        results = client.gather(futures)
        if counter_prefix:
            yield Progress("blocks", n_blocks, n_blocks)
        return list(results)

    from dask.callbacks import Callback

    state = {"done": 0, "result": None, "error": None}

    class _Watch(Callback):
        def _pretask(self, key: Any, dsk: Any, cache: Any) -> None:
            if stop_event.is_set():
                raise Cancelled()

        def _posttask(self, key: Any, result: Any, dsk: Any, cache: Any, id: Any) -> None:
            name = key[0] if isinstance(key, tuple) else key
            if counter_prefix and str(name).startswith(counter_prefix):
                state["done"] += 1

    def work() -> None:
        from concurrent.futures import ThreadPoolExecutor

        # a pool of its own: dask's scheduler returns at a block's Cancelled while the
        # other blocks still run in its shared pool, writing after their folder was
        # removed (review h_rev16, H1); this one is waited for
        pool = ThreadPoolExecutor(max(1, int(workers)), thread_name_prefix="nuclei-unet-block")
        try:
            with _Watch():
                state["result"] = dask.compute(*tasks, scheduler="threads", pool=pool,
                                               optimize_graph=False)
        except BaseException as exc:  # handed to the generator's thread
            state["error"] = exc
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            finished.set()

    # waited for on an Event, not by Thread.join: a join a Ctrl-C interrupted leaves the
    # thread looking finished in CPython 3.11, and a second join returns at once
    finished = threading.Event()
    thread = threading.Thread(target=work, name="nuclei-unet-blocks", daemon=True)
    thread.start()
    last = -1
    try:
        while not finished.is_set():
            finished.wait(0.2)
            stopped()
            if counter_prefix and state["done"] != last:
                last = state["done"]
                yield Progress("blocks", last, n_blocks)
    except BaseException:
        # Ctrl-C (or the generator closed): the blocks stop before the caller removes
        # their folder, which they wrote again after it was removed (review h_rev16, H1)
        stop_event.set()
        finished.wait()
        raise
    if isinstance(state["error"], Cancelled) or stop_event.is_set():
        return None
    if state["error"] is not None:
        raise state["error"]
    return list(state["result"])
