"""Per-nucleus measurements (area, centroid, box, intensities, shape) and their CSV.

A table is a plain ``dict`` of equal-length 1-D numpy arrays (column name -> values),
which napari accepts as ``Labels.features`` and :func:`write_csv` writes. Columns:

``label``, ``plane`` (plane number in the stack, 0-based), one column per stack axis
(``t``, ``z``...: the plane's index on that axis), ``area`` (pixels), ``centroid_y``,
``centroid_x``, ``bbox_y0``, ``bbox_x0``, ``bbox_y1``, ``bbox_x1`` (half-open, pixels),
``mean_intensity_c0`` ... one per channel of the input, ``eccentricity``, ``solidity``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .atomic import atomic_write

SHAPE_COLUMNS = ("area", "centroid_y", "centroid_x", "bbox_y0", "bbox_x0", "bbox_y1",
                 "bbox_x1")


def measure_plane(
    labels: np.ndarray,
    channels: np.ndarray | None = None,
    *,
    plane: int = 0,
    plane_index: Sequence[int] = (),
    plane_axes: str = "",
    offset: tuple[int, int] = (0, 0),
) -> dict[str, np.ndarray]:
    """Measure every nucleus of one labelled plane.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(H, W)`` integer labels, 0 = background.
    channels : numpy.ndarray, optional
        ``(C, H, W)`` intensities (every channel of the input plane) or ``(H, W)``;
        gives ``mean_intensity_c<k>`` columns.
    plane : int
        Plane number written in the ``plane`` column.
    plane_index, plane_axes
        The plane's index on each stack axis (e.g. ``(3, 1)`` and ``"TZ"``): one column
        per axis, named by the lower-case letter.
    offset : tuple of int
        Added to centroids and boxes (for a crop of a larger image).

    Returns
    -------
    dict of str to numpy.ndarray
        The table (see the module docstring); empty columns when there is no nucleus.
    """
    from skimage.measure import regionprops_table

    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        labels = labels.astype(np.int64)
    intensity = None
    if channels is not None:
        channels = np.asarray(channels)
        if channels.ndim == 2:
            channels = channels[None]
        intensity = np.moveaxis(channels, 0, -1).astype(np.float64, copy=False)
    props = ["label", "area", "centroid", "bbox", "eccentricity", "solidity"]
    if intensity is not None:
        props.append("intensity_mean")
    raw = regionprops_table(labels, intensity_image=intensity, properties=props)
    n = len(raw["label"])
    table: dict[str, np.ndarray] = {
        "label": raw["label"].astype(np.int64),
        "plane": np.full(n, plane, np.int64),
    }
    for axis, value in zip(plane_axes, plane_index, strict=True):
        table[axis.lower()] = np.full(n, value, np.int64)
    y0, x0 = offset
    table["area"] = raw["area"].astype(np.int64)
    table["centroid_y"] = raw["centroid-0"] + y0
    table["centroid_x"] = raw["centroid-1"] + x0
    for name, key, shift in (("bbox_y0", "bbox-0", y0), ("bbox_x0", "bbox-1", x0),
                             ("bbox_y1", "bbox-2", y0), ("bbox_x1", "bbox-3", x0)):
        table[name] = raw[key].astype(np.int64) + shift
    if intensity is not None:
        for c in range(intensity.shape[-1]):
            key = f"intensity_mean-{c}" if intensity.shape[-1] > 1 else "intensity_mean"
            if key not in raw:
                key = f"intensity_mean-{c}"
            table[f"mean_intensity_c{c}"] = np.asarray(raw[key], np.float64)
    table["eccentricity"] = np.asarray(raw["eccentricity"], np.float64)
    table["solidity"] = np.asarray(raw["solidity"], np.float64)
    return table


def concat_tables(tables: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack tables with the same columns row-wise (an empty list gives ``{}``)."""
    tables = [t for t in tables if t]
    if not tables:
        return {}
    return {key: np.concatenate([t[key] for t in tables]) for key in tables[0]}


def n_rows(table: dict[str, np.ndarray]) -> int:
    """Number of rows of a table."""
    return len(next(iter(table.values()))) if table else 0


def write_csv(table: dict[str, np.ndarray], path: str | os.PathLike,
              columns: Sequence[str] | None = None) -> Path:
    """Write a table as CSV (header + one row per nucleus), atomically.

    Parameters
    ----------
    table : dict
        Column name -> values.
    path : str or os.PathLike
        Destination ``.csv``.
    columns : sequence of str, optional
        Column names for an empty table (default: ``label``, ``plane`` and the shape
        columns).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    header = list(table) if table else list(columns or ("label", "plane", *SHAPE_COLUMNS))
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            if table:
                cols = [table[name] for name in header]
                for row in zip(*cols, strict=True):
                    writer.writerow([_cell(v) for v in row])

    return atomic_write(path, write)


def _cell(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return str(value)
