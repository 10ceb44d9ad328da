"""Measuring a large plane's nuclei block by block, and merging the blocks' rows exactly.

Used by :func:`~napari_nuclei_unet.core.bigimage.segment_large` (each block's rows as
it is segmented) and, for labels painted since, :func:`measure_large`. Memory is bounded
by a block, except for a nucleus spread over several blocks, whose shape is measured
again on its whole bounding box.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _block_stats(labels: np.ndarray, image: np.ndarray, y0: int, x0: int) -> dict:
    """Per-label sums of one block (core pixels only) for exact merging across blocks."""
    from .measure import measure_plane

    channels = np.moveaxis(image, -1, 0) if image.ndim == 3 else image[None]
    # the block's labels carry a large offset: measure compact ids (regionprops allocates
    # per label value up to the largest), then give the rows their real labels back
    ids, inverse = np.unique(labels, return_inverse=True)
    compact = inverse.reshape(labels.shape).astype(np.int32)
    if ids[0] != 0:
        compact += 1
        ids = np.concatenate([[0], ids])
    table = measure_plane(compact, channels, offset=(y0, x0))
    table["label"] = ids[table["label"]].astype(np.int64)
    return table


def measure_large(labels: Any, intensity: Any, *, plane: int = 0,
                  block: int | None = None) -> dict:
    """Measure a large plane's labels again, block by block (memory bounded by a block).

    A result the user painted on no longer matches the table its segmentation made
    (its CSV listed the nuclei as segmented: GUI check h_gui19, M1). ``labels``: ``(H,
    W)`` zarr, dask or numpy, any label values; ``intensity``: ``(H, W)`` or ``(H, W,
    C)``; ``plane``: the number in the ``plane`` column. Same columns and merging as
    :func:`segment_large`'s table. A label spread over
    several blocks (a fill of the background by mistake) is measured on its whole box.
    """
    from .bigimage import DEFAULT_BLOCK
    from .measure import concat_tables

    block = block or DEFAULT_BLOCK  # the segmentation's blocks
    height, width = labels.shape[:2]
    tables = []
    for y0 in range(0, height, block):
        for x0 in range(0, width, block):
            part = np.asarray(labels[y0:y0 + block, x0:x0 + block])
            if part.any():
                tables.append(_block_stats(part, np.asarray(
                    intensity[y0:y0 + block, x0:x0 + block]), y0, x0))
    table = concat_tables(tables)
    if not table:
        return {}
    found, ids = np.unique(table["label"], return_inverse=True)
    merged = _merge_table(table, ids + 1, len(found), labels, intensity, found)
    merged["plane"][:] = plane
    return merged


def measure_large_planes(labels: Any, stack: Any, planes: list[int]) -> dict:
    """Measure the labels of a stack of large planes again, each plane block by block.

    ``labels``: the stack's labels (zarr or dask, the stack's plane axes then ``YX``, as
    :func:`~.bigstack.segment_stack_planes` writes them); ``planes``: those measured. The
    table has the ``plane`` and plane-axis columns of a stack's. A painted result of a
    stack was measured as one plane, and its CSV failed (GUI check h_gui48, H1).
    """
    import dask.array as da

    from .bigimage import plane_arrays
    from .bigstack import plane_rows
    from .measure import concat_tables

    lazy = labels if hasattr(labels, "dask") else da.from_array(labels, chunks=labels.chunks)
    tables = []
    for flat in planes:
        index = stack.plane_index(flat)
        table = measure_large(lazy[index], plane_arrays(stack, flat, None)[1], plane=flat)
        tables.append(plane_rows(table, 0, flat, index, stack.plane_axes))
    return concat_tables(tables)


def _merge_table(table: dict, values: np.ndarray, n_nuclei: int, labels: Any,
                 intensity: Any, label_values: np.ndarray | None = None) -> dict:
    """Combine the per-block rows of each nucleus (exact sums; shapes re-measured on crops).

    ``values``: each row's nucleus, 1..n; ``label_values``: nucleus k's label in
    ``labels`` (default k).
    """
    from .measure import measure_plane

    if not n_nuclei:
        return {}
    ids = values.astype(np.int64)
    found = np.arange(1, n_nuclei + 1, dtype=np.int64) if label_values is None \
        else np.asarray(label_values, np.int64)
    area = np.bincount(ids, weights=table["area"], minlength=n_nuclei + 1)[1:]
    parts = np.bincount(ids, minlength=n_nuclei + 1)[1:]
    merged: dict[str, np.ndarray] = {"label": found,
                                     "plane": np.zeros(n_nuclei, np.int64),
                                     "area": area.astype(np.int64)}
    for col in ("centroid_y", "centroid_x"):
        merged[col] = np.bincount(ids, weights=table[col] * table["area"],
                                  minlength=n_nuclei + 1)[1:] / np.maximum(area, 1)
    for col, fn in (("bbox_y0", np.minimum), ("bbox_x0", np.minimum), ("bbox_y1", np.maximum),
                    ("bbox_x1", np.maximum)):
        start = np.full(n_nuclei + 1, np.iinfo(np.int64).max if fn is np.minimum else -1)
        fn.at(start, ids, table[col])
        merged[col] = start[1:].astype(np.int64)
    for col in [c for c in table if c.startswith("mean_intensity")]:
        merged[col] = np.bincount(ids, weights=table[col] * table["area"],
                                  minlength=n_nuclei + 1)[1:] / np.maximum(area, 1)
    for col in ("eccentricity", "solidity"):
        merged[col] = np.zeros(n_nuclei)
        single = parts == 1
        first = np.zeros(n_nuclei + 1, np.int64)
        first[ids[::-1]] = np.arange(len(ids))[::-1]
        merged[col][single] = table[col][first[1:][single]]
    for k in np.flatnonzero(parts > 1):  # nuclei cut by a seam: measure their whole crop
        y0, x0, y1, x1 = (int(merged[c][k]) for c in ("bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1"))
        crop = np.asarray(labels[y0:y1, x0:x1]) == found[k]
        row = measure_plane(crop.astype(np.int32))
        merged["eccentricity"][k] = row["eccentricity"][0]
        merged["solidity"][k] = row["solidity"][0]
    return merged
