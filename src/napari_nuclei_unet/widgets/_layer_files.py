"""What the file a napari layer was read from records: its axes and physical sizes.

napari's own TIFF reader keeps neither; the Segment dock reads them from the file's
header once (by path, modification time and size) and uses them while the layer still
holds the file's very shape.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

#: Axes, shape and physical sizes a TIFF's metadata records, by (path, modification time,
#: size).
_FILE_AXES: dict[tuple, tuple[str, tuple[int, ...], Any] | None] = {}


def file_axes(layer: Any) -> str | None:
    """The axes the layer's TIFF file records, when napari read it whole.

    Only an ImageJ, OME or tifffile-shaped file whose first series has the layer's very
    shape and axes
    of time, depth and at most one channel; None otherwise (any other file, a layer
    made in napari, a file changed or gone since). The file's header is read once.
    """
    return None if (record := _file_record(layer)) is None else record[0]


def file_sizes(layer: Any) -> tuple[tuple[float, float] | None, float | None]:
    """The pixels per µm ``(x, y)`` and Z spacing in µm the layer's TIFF records (or None)."""
    return (None, None) if (record := _file_record(layer)) is None else record[2]


def _file_record(layer: Any) -> tuple[str, tuple[int, ...], Any] | None:
    """What :func:`_read_file_axes` read of the layer's file, when it fits the layer."""
    from napari_nuclei_unet.core.imageio import TIFF_SUFFIXES
    from napari_nuclei_unet.widgets._own_layers import layer_data

    path = getattr(getattr(layer, "source", None), "path", None)
    if not path or Path(str(path)).suffix.lower() not in TIFF_SUFFIXES:
        return None
    try:
        stat = Path(str(path)).stat()
    except OSError:
        return None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _FILE_AXES:
        _FILE_AXES[key] = _read_file_axes(str(path))
    found = _FILE_AXES[key]
    if found is None or found[1] != tuple(layer_data(layer).shape):
        return None
    return found


def _read_file_axes(path: str) -> tuple[str, tuple[int, ...], Any] | None:
    """The axes, shape and physical sizes of an ImageJ, OME or shaped TIFF's first series.

    None when the file records none (tifffile's ``Q`` or ``I`` axes) or cannot be read.
    """
    import tifffile

    from napari_nuclei_unet.core.physical import pixels_per_um_of, z_spacing_um_of

    try:
        with tifffile.TiffFile(path) as tif:
            # tifffile's own shaped files record axes too, when written with them (a
            # ZYX BigTIFF was said to have guessed axes: GUI check h_gui48, L7); without,
            # tifffile guesses them from the shape (3 x H x W: colour samples)
            shaped = tif.is_shaped and bool((tif.shaped_metadata or ({},))[0].get("axes"))
            if not (tif.is_imagej or tif.is_ome or shaped):
                return None
            series = tif.series[0]
            axes, shape = series.axes.replace("S", "C"), tuple(int(n) for n in series.shape)
            # kept in the labels saved (GUI checks h_gui40, M2; h_gui41, L4)
            size = pixels_per_um_of(tif), z_spacing_um_of(tif)
    except (tifffile.TiffFileError, OSError, ValueError, IndexError, KeyError, struct.error):
        return None  # a file tifffile cannot read: no axes from it
    if axes.count("C") > 1 or not axes.endswith("YX") or len(axes) != len(shape) \
            or set(axes) - set("TZCYX"):  # tifffile's "I" or "Q": not recorded as such
        return None
    return axes, shape, size
