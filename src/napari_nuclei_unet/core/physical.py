"""The physical sizes a TIFF records: its pixel size and the spacing of its Z planes.

Read from an OME-TIFF's ``PhysicalSizeX/Y/Z`` or an ImageJ TIFF's resolution, unit and
``spacing``, and written again with the labels (:func:`~.own_images.write_labels_tiff`),
so that Fiji lays the labels over the image in micrometres and measures a stack's
depth as the image's (CLI check h_cli1, L4; GUI check h_gui41, L4).
"""

from __future__ import annotations

import math
import re
from typing import Any

#: Micrometres per unit of the lengths an ImageJ or OME file records.
_UM_PER_UNIT = {"um": 1.0, "\u00b5m": 1.0, "\u03bcm": 1.0, "micron": 1.0, "microns": 1.0,
                "micrometer": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}  # µ, μ


def pixels_per_um_of(tif: Any) -> tuple[float, float] | None:
    """The pixel size an open TIFF records, as pixels per micrometre ``(x, y)``; or None.

    From an OME-TIFF's ``PhysicalSizeX/Y`` or an ImageJ TIFF's resolution and unit. The
    labels of such a file were written without it, so Fiji could not lay them over the
    image in micrometres (CLI check h_cli1, L4).
    """
    try:
        if tif.is_ome and tif.ome_metadata:
            sizes = [_ome_size_um(tif.ome_metadata, a) for a in "XY"]
            if all(sizes):
                return tuple(1.0 / size for size in sizes)
        unit = _unit((tif.imagej_metadata or {}).get("unit")) if tif.is_imagej else None
        if unit in _UM_PER_UNIT:
            x, y = tif.pages.first.get_resolution()
            if x > 0 and y > 0 and (x, y) != (1, 1):
                return x / _UM_PER_UNIT[unit], y / _UM_PER_UNIT[unit]
    except (ValueError, KeyError, IndexError, TypeError, ZeroDivisionError):
        return None  # a pixel size it cannot tell: the labels go without one
    return None


def z_spacing_um_of(tif: Any) -> float | None:
    """The distance between an open TIFF's Z planes in micrometres, or None.

    From an OME-TIFF's ``PhysicalSizeZ`` or an ImageJ hyperstack's ``spacing`` (in its
    ``zunit``, else its ``unit``); None when the file records none, or none in a unit
    of length.
    """
    try:
        if tif.is_ome and tif.ome_metadata:
            return _ome_size_um(tif.ome_metadata, "Z")
        metadata = (tif.imagej_metadata or {}) if tif.is_imagej else {}
        unit = _unit(metadata.get("zunit") or metadata.get("unit"))
        spacing = metadata.get("spacing")
        if unit in _UM_PER_UNIT and spacing is not None:
            return _length(float(spacing) * _UM_PER_UNIT[unit])
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return None


def _ome_size_um(xml: str, axis: str) -> float | None:
    """``PhysicalSize<axis>`` of an OME-XML in micrometres (its unit, else µm), or None."""
    size = re.search(rf'PhysicalSize{axis}="([^"]+)"', xml)
    unit = re.search(rf'PhysicalSize{axis}Unit="([^"]+)"', xml)
    if size is None:
        return None
    return _length(float(size[1]) * _UM_PER_UNIT[_unit(unit[1]) if unit else "um"])


def _unit(text: Any) -> str | None:
    r"""A unit of length as the table above spells it, or None.

    ``µm`` from ``\u00B5m`` (ImageJ 1.52 escapes it in the file), ``micron`` from
    ``Micron `` (review h_rev26, 1).
    """
    if not isinstance(text, str):
        return None
    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), text)
    return text.strip().lower()


def _length(value: float) -> float | None:
    """``value`` when it is a length (finite, above zero), else None."""
    return value if math.isfinite(value) and value > 0 else None


def um_words(pixels: float | tuple[float, float], pixels_per_um: Any) -> str:
    """`` (5.9 µm)``: a length in pixels (or a low-high range) in micrometres; or ``""``.

    ``pixels_per_um``: the image's pixel size ``(x, y)`` (``ImageStack.pixels_per_um``;
    the geometric mean of the two for pixels that are not square: a round nucleus of
    that many pixels' area). ``""`` when it is unknown, so
    that a nucleus size said in pixels can be checked against what a biologist knows
    of their nuclei (GUI check h_gui40, L10).
    """
    try:
        per_um = math.sqrt(float(pixels_per_um[0]) * float(pixels_per_um[1]))
    except (TypeError, ValueError, IndexError):
        return ""
    if not (math.isfinite(per_um) and per_um > 0):
        return ""
    low, high = pixels if isinstance(pixels, tuple) else (pixels, pixels)
    low, high = low / per_um, high / per_um
    digits = 1 if high < 100 else 0
    size = f"{low:.{digits}f}" if round(low, digits) == round(high, digits) else \
        f"{low:.{digits}f}-{high:.{digits}f}"
    return f" ({size} \u00b5m)"
