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
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Sub-folder of the cache folder holding the score files.
SCORES_DIR = "scores"
#: Layout of a score file.
FORMAT = 1
#: Score files kept at most: when a new one is made, the oldest beyond this go (a
#: retrained model is a new file each time; old ones would pile up otherwise).
MAX_FILES = 200


def scores_path(place: str, model_key: str, diameter: float) -> Path:
    """The file of the scores of the dataset at ``place`` with a model at a diameter."""
    from napari_nuclei_unet.core.cache import cache_dir

    key = f"{place}\n{model_key}\n{float(diameter):g}".encode()
    return cache_dir() / SCORES_DIR / f"{hashlib.sha256(key).hexdigest()[:32]}.json"


def save_scores(path: Path, rows: dict[str, Any], settings: dict[str, tuple[float, str]],
                about: dict[str, Any], stamps: dict[str, str]) -> bool:
    """Write ``rows`` (``core.evaluation.ImageRow`` by id) with the settings of each.

    ``stamps``: the fingerprint of each sample's files when it was scored
    (``DSBDataset.fingerprints``); only the rows of samples in it are written (scores of
    other images, the Segment dock's layers, are not the dataset's).

    Returns False when they could not be written (the scores stay in memory). Written
    to a temporary file and renamed: a crash leaves the old file or the new one. Not
    synced to disk: it is a cache, and a write per change must stay cheap (it runs on
    the main thread).
    """
    data = {"format": FORMAT, **about,
            "rows": [{**row.to_dict(), "threshold": settings.get(sid, (None, None))[0],
                      "instance_method": settings.get(sid, (None, None))[1],
                      "files": stamps[sid]}
                     for sid, row in rows.items() if sid in stamps]}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    new = not path.exists()
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
    if new:
        _prune(path.parent)
    return True


def _prune(folder: Path) -> None:
    """Remove the oldest score files beyond :data:`MAX_FILES` (errors ignored)."""
    try:
        files = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in files[:-MAX_FILES]:
            old.unlink(missing_ok=True)
    except OSError:
        pass


def load_scores(path: Path, stamps_of: Callable[[list[str]], dict[str, str]]
                ) -> tuple[dict[str, Any], dict[str, tuple]]:
    """The rows kept in ``path`` whose samples' files are unchanged, and their settings.

    ``stamps_of(ids)`` gives the current fingerprint of the files of each sample that
    is in the open dataset; a row of a sample that is not there, or whose files
    changed since it was scored, is left out. ``({}, {})`` when there is no such
    file or it cannot be read.
    """
    from napari_nuclei_unet.core.evaluation import ImageRow

    fields = ImageRow.__dataclass_fields__
    rows: dict[str, Any] = {}
    settings: dict[str, tuple] = {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            return {}, {}
        entries = [e for e in data["rows"] if e.get("threshold") is not None]
        current = stamps_of([e["id"] for e in entries])
        for entry in entries:
            if entry["id"] not in current or current[entry["id"]] != entry.get("files"):
                continue  # not in the dataset, or its files changed since
            rows[entry["id"]] = ImageRow(**{k: v for k, v in entry.items() if k in fields})
            settings[entry["id"]] = (float(entry["threshold"]), str(entry["instance_method"]))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}, {}
    return rows, settings


def remembered_models(place: str, leave_out: str | None = None
                      ) -> list[tuple[str, str | None]]:
    """The model files whose scores on the dataset at ``place`` are kept (newest first).

    Each with the name the model was shown by when they were kept (None in files written
    before it was recorded): a bioimage.io package's own name, not its file's path
    (GUI check h_gui42, L4).

    After napari starts again, the Scores table said "No scores yet" while they waited
    for their model to be loaded (GUI check h_gui40, L11). Only each file's head is read
    (the dataset and model come before the rows): a few hundred small reads.
    """
    import re

    from napari_nuclei_unet.core.cache import cache_dir

    folder = cache_dir() / SCORES_DIR
    try:
        key = (str(folder), place, leave_out, folder.stat().st_mtime_ns)
        if key in _REMEMBERED:  # a refresh of the table reads nothing again
            return list(_REMEMBERED[key])
        files = sorted(folder.glob("*.json"), key=lambda f: f.stat().st_mtime, reverse=True)
    except OSError:
        return []
    found: list[tuple[str, str | None]] = []
    for file in files[:MAX_FILES]:
        try:
            with open(file, encoding="utf-8") as handle:
                head = handle.read(4096)
        except (OSError, UnicodeDecodeError):
            continue
        dataset = re.search(r'"dataset": ("(?:[^"\\]|\\.)*")', head)
        model = re.search(r'"model": ("(?:[^"\\]|\\.)*")', head)
        name = re.search(r'"model_name": ("(?:[^"\\]|\\.)*")', head)
        if not (dataset and model and '"rows": [{' in head):
            continue  # no rows kept: nothing to show again
        try:
            dataset_path, model_path = json.loads(dataset.group(1)), json.loads(model.group(1))
            shown = json.loads(name.group(1)) if name else None
        except ValueError:
            continue
        if dataset_path == place and model_path != leave_out \
                and model_path not in [path for path, _ in found] \
                and Path(model_path).exists():  # a model gone brings none back (h_rev25)
            found.append((model_path, shown if isinstance(shown, str) else None))
    _REMEMBERED.clear()
    _REMEMBERED[key] = tuple(found)
    return found


#: The last answer of :func:`remembered_models`, by folder, place, model and folder time.
_REMEMBERED: dict[tuple, tuple[tuple[str, str | None], ...]] = {}

