"""Scores kept on disk, so that quitting napari loses none.

The scores of a dataset with a model (at one nucleus diameter) are written to the
package's cache folder (``core.cache.cache_dir() / "scores"``, one small JSON file per
dataset, model and diameter) whenever they change, and read back when that dataset
and that model (the same file, unchanged since) meet again, in this session or a later
one. Only the table's numbers are kept: the prediction maps are made again when an
image's prediction is asked for. The files are a cache: a missing or unreadable one
is an empty table, never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

#: Sub-folder of the cache folder holding the score files.
SCORES_DIR = "scores"
#: Layout of a score file.
FORMAT = 1


def scores_path(place: str, model_key: str, diameter: float) -> Path:
    """The file of the scores of the dataset at ``place`` with a model at a diameter."""
    from napari_nuclei_unet.core.cache import cache_dir

    key = f"{place}\n{model_key}\n{float(diameter):g}".encode()
    return cache_dir() / SCORES_DIR / f"{hashlib.sha256(key).hexdigest()[:32]}.json"


def save_scores(path: Path, rows: dict[str, Any], settings: dict[str, tuple[float, str]],
                about: dict[str, Any]) -> bool:
    """Write ``rows`` (``core.evaluation.ImageRow`` by id) with the settings of each.

    Returns False when they could not be written (the scores stay in memory). Written
    to a temporary file and renamed: a crash leaves the old file or the new one. Not
    synced to disk: it is a cache, and a write per change must stay cheap (it runs on
    the main thread).
    """
    data = {"format": FORMAT, **about,
            "rows": [{**row.to_dict(), "threshold": settings.get(sid, (None, None))[0],
                      "instance_method": settings.get(sid, (None, None))[1]}
                     for sid, row in rows.items()]}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, allow_nan=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return False
    return True


def load_scores(path: Path, ids: set[str]) -> tuple[dict[str, Any], dict[str, tuple]]:
    """The rows (of the samples ``ids``) kept in ``path``, and the settings of each.

    ``({}, {})`` when there is no such file or it cannot be read.
    """
    from napari_nuclei_unet.core.evaluation import ImageRow

    fields = ImageRow.__dataclass_fields__
    rows: dict[str, Any] = {}
    settings: dict[str, tuple] = {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            return {}, {}
        for entry in data["rows"]:
            if entry["id"] not in ids or entry.get("threshold") is None:
                continue  # another dataset's image, or settings unknown
            rows[entry["id"]] = ImageRow(**{k: v for k, v in entry.items() if k in fields})
            settings[entry["id"]] = (float(entry["threshold"]), str(entry["instance_method"]))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}, {}
    return rows, settings
