"""OME-Zarr 0.4 label images: a group, its arrays and its ``multiscales`` metadata."""

from __future__ import annotations

import os
from typing import Any


def open_ome_group(path: str | os.PathLike) -> Any:
    """A new zarr group in the zarr v2 format of OME-Zarr 0.4 (zarr 2 or zarr 3 library)."""
    import zarr

    try:
        return zarr.open_group(str(path), mode="w", zarr_format=2)
    except TypeError:  # zarr 2: no zarr_format argument, v2 is the only format
        return zarr.open_group(str(path), mode="w")


def create_array(group: Any, name: str, shape: tuple, chunks: tuple, dtype: Any) -> Any:
    """An empty (0-filled) array in ``group`` (zarr 3 ``create_array``, zarr 2 ``create``)."""
    make = getattr(group, "create_array", None) or group.create_dataset
    return make(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=0)


def write_ome_zarr_attrs(group: Any, name: str,
                         pixels_per_um: tuple[float, float] | None = None, *,
                         plane_axes: str = "", z_spacing_um: float | None = None) -> None:
    """Write OME-Zarr 0.4 ``multiscales`` metadata for a single-resolution label array.

    ``pixels_per_um``: the image's pixel size ``(x, y)`` (``ImageStack.pixels_per_um``),
    written as micrometres per pixel; without it, the scale is 1 and no unit is given.
    ``plane_axes``: the axes before Y and X of a stack's labels (e.g. ``"TZ"``: T is
    time, Z space, others have no type); ``z_spacing_um`` the Z step, given with a pixel
    size (micrometres on every space axis, or none).
    """
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    scale = [1.0, 1.0]
    if pixels_per_um:
        for axis in axes:
            axis["unit"] = "micrometer"
        scale = [1.0 / float(pixels_per_um[1]), 1.0 / float(pixels_per_um[0])]
    lead = [{"name": a.lower(), **({"type": "time"} if a == "T" else {"type": "space"}
                                   if a == "Z" else {})} for a in plane_axes]
    lead_scale = [1.0] * len(plane_axes)
    if pixels_per_um and z_spacing_um and "Z" in plane_axes:
        lead[plane_axes.index("Z")]["unit"] = "micrometer"
        lead_scale[plane_axes.index("Z")] = float(z_spacing_um)
    axes, scale = lead + axes, lead_scale + scale
    group.attrs["multiscales"] = [{
        "version": "0.4", "name": name, "axes": axes,
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": scale}]}],
    }]
