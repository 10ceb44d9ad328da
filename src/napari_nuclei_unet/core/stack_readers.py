"""Readers of the files :func:`~napari_nuclei_unet.core.stacks.open_stack` opens.

TIFF (OME-TIFF, ImageJ hyperstacks, pyramids: the full resolution), zarr arrays and
OME-Zarr (with their pixel sizes), PNG/JPEG/BMP; each returns an
:class:`~napari_nuclei_unet.core.stacks.ImageStack` or raises
:class:`~napari_nuclei_unet.core.stacks.ImageFileError` in words a user can act on.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from .physical import pixels_per_um_of, z_spacing_um_of
from .stacks import ImageFileError, ImageStack, make_stack, stack_name
from .tiff_checks import CUT_SHORT, TRUNCATED_ADVICE, tifffile_log


def open_tiff(path: Path, axes: str | None) -> ImageStack:
    """A TIFF, OME-TIFF or ImageJ hyperstack (a pyramid's full resolution), read lazily."""
    import tifffile
    import zarr

    with tifffile_log() as logged:
        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                found_axes = series.axes
                rgb_hint = "S" in found_axes and series.keyframe.photometric in (
                    tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.YCBCR)
                # a pyramid's full-resolution level (a whole slide's: its lower levels
                # made the store a group, CLI check h_cli2, H1)
                store = series.aszarr(level=0) if len(series.levels) > 1 else series.aszarr()
                declared = (tif.imagej_metadata or {}).get("images") if tif.is_imagej else None
                pixels, spacing = pixels_per_um_of(tif), z_spacing_um_of(tif)
                others = len(tif.series) - 1 if tif.is_ome else 0
        except (tifffile.TiffFileError, OSError, ValueError, IndexError, struct.error) as exc:
            # (a header cut after 2-7 bytes raised struct.error: CLI check h_cli2, H2)
            detail = ("its structure is damaged" if isinstance(exc, (IndexError, struct.error))
                      else exc)  # "list index out of range" (CLI check h_cli1, L3)
            raise ImageFileError(f"{path} is not a readable TIFF file ({detail}). The file "
                                 "may be corrupt or truncated: replace it with a fresh "
                                 "copy.") from exc
    planes = int(np.prod([n for a, n in zip(series.axes, series.shape, strict=True)
                          if a not in "YXS"]))
    if isinstance(declared, int) and not isinstance(declared, bool) and declared > planes:
        raise ImageFileError(f"{path} says it holds {declared} images (its ImageJ "
                             f"description) but only {planes} can be read. {TRUNCATED_ADVICE}")
    if any(CUT_SHORT in message for message in logged):
        raise ImageFileError(f"{path} ends before its last image: only {planes} image(s) "
                             f"of it can be read. {TRUNCATED_ADVICE}")
    data = zarr.open(store, mode="r")
    # axes given with C, not S: channels, whatever the file's colour tag says (--axes CYX
    # gave the RGB composite again: CLI check h_cli1, M1)
    rgb_hint = rgb_hint and (not axes or "S" in axes.upper())
    stack = make_stack(stack_name(path), data, axes or found_axes, str(path), rgb_hint,
                       read_by=None if axes else "tifffile", pixels=pixels)
    stack.z_spacing_um = spacing if "Z" in stack.axes else None
    stack.other_series = others
    return stack


def open_zarr(path: Path, axes: str | None) -> ImageStack:
    """A zarr array, or an OME-Zarr group's full resolution with its pixel sizes."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr raises many kinds for a non-zarr folder
        raise ImageFileError(f"{path} is not a readable zarr array or OME-Zarr ({exc}).") from exc
    found, sizes = None, {}
    if not hasattr(node, "shape"):  # a group: OME-Zarr, take the full resolution
        multiscales = node.attrs.get("multiscales") or node.attrs.get("ome", {}).get(
            "multiscales")
        if not multiscales:
            raise ImageFileError(f"{path} is a zarr group without OME-Zarr 'multiscales'; "
                                 "give the path of the array inside it.")
        scale = multiscales[0]
        node = node[scale["datasets"][0]["path"]]
        found = "".join(str(a["name"] if isinstance(a, dict) else a)[0].upper()
                        for a in scale.get("axes", [])) or None
        sizes = ome_zarr_sizes_um(scale)
    ndim = len(node.shape)
    default = found or ("YX" if ndim == 2 else ("YXC" if ndim == 3 and node.shape[-1] in (3, 4)
                                                   else "Q" * (ndim - 2) + "YX"))
    read_by = None if axes else ("its OME-Zarr metadata" if found else "")
    pixels = z = None
    if found and (not axes or axes.upper() == found):  # the sizes belong to its own axes
        x, y, z = (sizes.get(a) for a in "XYZ")
        pixels = (1.0 / x, 1.0 / y) if x and y else None
    stack = make_stack(stack_name(path), node, axes or default, str(path), False,
                       read_by=read_by, pixels=pixels)
    stack.z_spacing_um = z if "Z" in stack.axes else None
    return stack


#: Micrometres per unit of the OME-Zarr (NGFF) space units a pixel size is given in.
_NGFF_UM = {"nanometer": 1e-3, "micrometer": 1.0, "millimeter": 1e3, "centimeter": 1e4,
            "meter": 1e6}


def ome_zarr_sizes_um(multiscale: dict) -> dict[str, float]:
    """The pixel size of each spatial axis of an OME-Zarr's full resolution, in µm.

    From its first dataset's ``scale`` transformation and its axes' units; an axis
    without a known length unit is left out (its stack's labels kept no pixel size: CLI
    check h_cli2, M4).
    """
    try:
        axes = multiscale.get("axes", [])
        transforms = multiscale["datasets"][0].get("coordinateTransformations", [])
        scale = next(t["scale"] for t in transforms if t.get("type") == "scale")
        found = {}
        for axis, value in zip(axes, scale, strict=True):
            if isinstance(axis, dict) and axis.get("unit") in _NGFF_UM and float(value) > 0:
                found[str(axis["name"])[0].upper()] = float(value) * _NGFF_UM[axis["unit"]]
        return found
    except (KeyError, TypeError, ValueError, StopIteration, AttributeError):
        return {}


def open_plain(path: Path, axes: str | None) -> ImageStack:
    """A PNG, JPEG or BMP image (or one named as a TIFF), read whole."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I", "F", "L", "RGB", "RGBA"):
                data = np.asarray(im)
            else:
                data = np.asarray(im.convert("RGBA" if "A" in im.mode else "RGB"))
    except (UnidentifiedImageError, OSError) as exc:  # the advice the TIFFs get (h_cli2)
        raise ImageFileError(f"{path} is not a readable image ({exc}). The file may be "
                             "corrupt or truncated, or not an image: replace it with a fresh "
                             "copy.") from exc
    default = "YXS" if data.ndim == 3 else "YX"
    return make_stack(stack_name(path), data, axes or default, str(path), data.ndim == 3,
                      read_by=None if axes else "")


def plain_inside(path: Path) -> bool:
    """Whether a file named as a TIFF holds a PNG or JPEG (read as such, by its content)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return False
    return head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"))
