"""One plane of an image file as a lazily read array (dask's ``from_array``).

Big images are segmented block by block (``core.bigimage``), in this process or on a
dask cluster: each process opens the file once and reads only the blocks it is given.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from .stacks import ImageStack, open_stack

#: The files opened in this process, the most recently read last. A file kept open for
#: the life of the process ran a folder of 1,000 large images out of file descriptors
#: (review h_rev30, L6): past :data:`MOST_OPEN`, the least recently read is let go.
_OPENED: OrderedDict[tuple, ImageStack] = OrderedDict()
MOST_OPEN = 32  # more than the files a node reads at once (its threads)
_LOCK = threading.Lock()  # dask's threads read blocks at once


def _close(stack: ImageStack) -> None:
    """Let go of the file a stack reads (a TIFF's zarr store holds it open), if it can."""
    close = getattr(getattr(stack.data, "store", None), "close", None)
    try:
        if callable(close):
            close()
    except Exception:  # noqa: BLE001 - a store that cannot close is left to the collector
        pass


class LazyPlane:
    """One plane of an image file as a lazily read array, for :func:`dask.array.from_array`.

    Picklable (it holds the path, not an open file): each process of a dask cluster
    opens the file once and reads only the regions asked for (tifffile ``aszarr``).

    Parameters
    ----------
    path : str
        Image file or ``.zarr`` folder.
    axes : str or None
        Axes override, as for :func:`open_stack`.
    channel : int, None or "all"
        One channel; None: the only channel or the RGB composite; ``"all"``: every
        channel (``(H, W, C)``, or ``(H, W)`` without a channel axis).
    plane : int, default 0
        The plane of a stack (``0 <= plane < n_planes``, as :meth:`ImageStack.plane_index`).
    """

    def __init__(self, path: str, axes: str | None, channel: int | None | str,
                 plane: int = 0) -> None:
        self.path, self.axes, self.channel, self.plane = str(path), axes, channel, int(plane)
        stack = self._stack()
        if not 0 <= self.plane < stack.n_planes:
            raise ValueError(f"plane {plane} does not exist: {path} has {stack.n_planes} "
                             "plane(s).")
        if channel != "all":
            stack.check_channel(channel)  # type: ignore[arg-type]
        h, w = stack.yx_shape
        multi = "C" in stack.axes and (
            channel == "all" or (channel is None and stack.n_channels > 1))
        self.shape = (h, w, stack.n_channels) if multi else (h, w)
        self.dtype = stack.dtype
        self.ndim = len(self.shape)

    def _stack(self) -> ImageStack:
        stat = os.stat(self.path)  # a file rewritten in place is opened again
        key = (self.path, self.axes, stat.st_mtime_ns, stat.st_size)
        with _LOCK:
            if key not in _OPENED:
                _OPENED[key] = open_stack(self.path, self.axes)
                while len(_OPENED) > MOST_OPEN:
                    _close(_OPENED.popitem(last=False)[1])
            _OPENED.move_to_end(key)
            return _OPENED[key]

    def __getitem__(self, index: Any) -> np.ndarray:
        stack = self._stack()
        if not isinstance(index, tuple):
            index = (index,)
        ys, xs = (tuple(index) + (slice(None), slice(None)))[:2]
        prefix = stack.plane_index(self.plane)
        if "C" not in stack.axes:
            return np.asarray(stack.data[(*prefix, ys, xs)])
        if isinstance(self.channel, (int, np.integer)):
            return np.asarray(stack.data[(*prefix, int(self.channel), ys, xs)])
        raw = np.asarray(stack.data[(*prefix, slice(None), ys, xs)])
        return np.moveaxis(raw, 0, -1) if self.ndim == 3 else raw[0]
