"""Kaggle DSB2018 run-length encoding and the solution / submission CSV files.

The encoding numbers pixels from 1 in column-major (Fortran) order, i.e. top to bottom
then left to right, and writes runs of foreground pixels as ``"start length"`` pairs
separated by single spaces: ``"1 3 10 2"`` is pixels 1, 2, 3, 10 and 11. One CSV row
describes one nucleus; an image without nuclei has one row with an empty
``EncodedPixels``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np


class CSVFormatError(ValueError):
    """A solution/submission CSV or an RLE string is malformed (message says where)."""


def rle_encode(mask: np.ndarray) -> str:
    """Encode a binary mask as a Kaggle run-length string.

    Parameters
    ----------
    mask : numpy.ndarray
        2-D array; non-zero pixels are foreground.

    Returns
    -------
    str
        ``"start length start length ..."`` with 1-based, column-major starts; ``""``
        for an empty mask.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"rle_encode expects a 2-D mask, got shape {m.shape}")
    flat = np.concatenate([[False], m.ravel(order="F") != 0, [False]])
    edges = np.flatnonzero(flat[1:] != flat[:-1])
    starts, ends = edges[0::2], edges[1::2]
    runs = np.empty(starts.size * 2, dtype=np.int64)
    runs[0::2] = starts + 1
    runs[1::2] = ends - starts
    return " ".join(map(str, runs.tolist()))


def _parse_runs(rle: str, shape: tuple[int, int], where: str) -> tuple[np.ndarray, np.ndarray]:
    text = rle.strip() if isinstance(rle, str) else ""
    if not text:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    try:
        numbers = np.array(text.split(), dtype=np.int64)
    except ValueError as exc:
        raise CSVFormatError(
            f"{where}: run-length string is not whitespace-separated integers"
        ) from exc
    if numbers.size % 2:
        raise CSVFormatError(
            f"{where}: run-length string has an odd number of values ({numbers.size})"
        )
    starts, lengths = numbers[0::2] - 1, numbers[1::2]
    size = int(shape[0]) * int(shape[1])
    if (starts < 0).any() or (lengths < 0).any() or (starts + lengths > size).any():
        raise CSVFormatError(
            f"{where}: a run falls outside an image of shape {tuple(shape)} "
            f"({size} pixels); check Height/Width or the shape you passed"
        )
    return starts, lengths


def _run_pixels(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat (Fortran-order) indices covered by the runs."""
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, np.int64)
    keep = lengths > 0
    starts, lengths = starts[keep], lengths[keep]
    # index = run start + position within run, built without a Python loop
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return offsets + np.arange(total)


def rle_decode(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """Decode a Kaggle run-length string into a boolean mask.

    Parameters
    ----------
    rle : str
        ``"start length ..."`` pairs (1-based, column-major); empty for an empty mask.
    shape : tuple of int
        ``(height, width)`` of the image.

    Returns
    -------
    numpy.ndarray
        ``(height, width)`` bool mask.

    Raises
    ------
    CSVFormatError
        When the string is malformed or a run falls outside the image.
    """
    h, w = int(shape[0]), int(shape[1])
    starts, lengths = _parse_runs(rle, (h, w), "rle_decode")
    flat = np.zeros(h * w, dtype=bool)
    flat[_run_pixels(starts, lengths)] = True
    return flat.reshape((h, w), order="F")


def labels_to_rles(labels: np.ndarray) -> list[str]:
    """Encode each instance of a label image as one run-length string.

    Parameters
    ----------
    labels : numpy.ndarray
        2-D integer label image, 0 = background.

    Returns
    -------
    list of str
        One non-empty string per label value present, in increasing label order.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ValueError(f"labels_to_rles expects a 2-D label image, got shape {lab.shape}")
    flat = lab.ravel(order="F")
    # one pass over the image: runs of equal label values, then grouped by label
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [flat.size]])
    values = flat[starts]
    fg = values != 0
    starts, ends, values = starts[fg], ends[fg], values[fg]
    order = np.argsort(values, kind="stable")
    starts, ends, values = starts[order], ends[order], values[order]
    bounds = np.flatnonzero(np.diff(values)) + 1
    out = []
    for s, e in zip(np.split(starts, bounds), np.split(ends, bounds), strict=True):
        if s.size == 0:
            continue
        runs = np.empty(s.size * 2, dtype=np.int64)
        runs[0::2] = s + 1
        runs[1::2] = e - s
        out.append(" ".join(map(str, runs.tolist())))
    return out


def read_solution_csv(
    path: str | os.PathLike, shapes: Mapping[str, tuple[int, int]] | None = None
) -> dict[str, np.ndarray]:
    """Read a solution or submission CSV into one label image per ImageId.

    Parameters
    ----------
    path : str or os.PathLike
        CSV with columns ``ImageId`` and ``EncodedPixels`` and, as in
        ``stage1_solution.csv``, ``Height`` and ``Width``. Other columns (``Usage``) are
        ignored.
    shapes : mapping of str to (int, int), optional
        ``{ImageId: (height, width)}``, needed for images whose rows have no
        Height/Width (submission files never have them); it wins over the CSV.

    Returns
    -------
    dict of str to numpy.ndarray
        ``{ImageId: (H, W) int32 labels}``; rows of an image are labels 1..n in file
        order, an image whose only row is empty has all-zero labels. Where runs of
        several rows overlap, the later row wins.

    Raises
    ------
    CSVFormatError
        When a column is missing, a run-length string is malformed, or an image's
        shape is known neither from the CSV nor from ``shapes``.
    """
    path = Path(path)
    shapes = dict(shapes or {})
    rles: dict[str, list[str]] = {}
    csv_shapes: dict[str, tuple[int, int]] = {}
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or ())
        missing = {"ImageId", "EncodedPixels"} - columns
        if missing:
            raise CSVFormatError(
                f"{path}: missing column(s) {sorted(missing)}; found {sorted(columns)}. "
                "Expected a Kaggle DSB2018 solution/submission CSV "
                "(ImageId,EncodedPixels[,Height,Width])."
            )
        has_shape = {"Height", "Width"} <= columns
        for line, row in enumerate(reader, start=2):
            image_id = row["ImageId"]
            rles.setdefault(image_id, [])
            if row["EncodedPixels"] and row["EncodedPixels"].strip():
                rles[image_id].append(row["EncodedPixels"])
            if has_shape and row["Height"] and row["Width"]:
                try:
                    csv_shapes[image_id] = (int(row["Height"]), int(row["Width"]))
                except ValueError as exc:
                    raise CSVFormatError(
                        f"{path}, line {line}: Height/Width are not integers"
                    ) from exc
    unknown = [i for i in rles if i not in shapes and i not in csv_shapes]
    if unknown:
        what = "has no Height/Width columns" if not has_shape else "has no Height/Width for"
        raise CSVFormatError(
            f"{path} {what} {len(unknown)} image(s) (e.g. {unknown[0]!r}), so their size is "
            "unknown. Pass shapes={ImageId: (height, width), ...}, e.g. from "
            "DSBDataset.info(id), or use a CSV with Height and Width columns."
        )
    out = {}
    for image_id, strings in rles.items():
        h, w = shapes.get(image_id) or csv_shapes[image_id]
        flat = np.zeros(h * w, dtype=np.int32)
        for k, rle in enumerate(strings, start=1):
            starts, lengths = _parse_runs(rle, (h, w), f"{path}, image {image_id}, row {k}")
            flat[_run_pixels(starts, lengths)] = k
        out[image_id] = flat.reshape((h, w), order="F")
    return out


def write_submission_csv(path: str | os.PathLike, labels_by_id: Mapping[str, np.ndarray]) -> Path:
    """Write label images as a Kaggle submission CSV, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Output file; replaced atomically (written to a temporary file first).
    labels_by_id : mapping of str to numpy.ndarray
        ``{ImageId: (H, W) integer labels}``, 0 = background.

    Returns
    -------
    pathlib.Path
        The written file. It has the header ``ImageId,EncodedPixels`` and one row per
        nucleus (in increasing label order); an image with no nuclei gets one row
        with an empty ``EncodedPixels``.
    """
    from .atomic import atomic_write

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["ImageId", "EncodedPixels"])
            for image_id, labels in labels_by_id.items():
                rles = labels_to_rles(labels)
                for rle in rles or [""]:
                    writer.writerow([image_id, rle])

    return atomic_write(path, write)
