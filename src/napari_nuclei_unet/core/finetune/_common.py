"""Names, errors and file helpers shared by the fine-tuning modules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

PROJECT_FILE = "project.json"
CORRECTIONS_DIR = "corrections"
VERSIONS_DIR = "versions"
REMOVED_DIR = "removed"
BACKUP_DIR = ".backup"
LOCK_FILE = ".lock"
#: Seconds a save waits for another one of the same project (another napari window or
#: ``nuclei-unet`` command) before giving up with a FinetuneError.
LOCK_TIMEOUT_S = 60.0
STAGING_PREFIX = ".staging-"
ROUND_PREFIX = ".round-"
PROJECT_FORMAT = "napari-nuclei-unet finetune project"
PROJECT_FORMAT_VERSION = 1

#: Where a correction's labels came from: painted by hand, or a prediction accepted as is.
SOURCES = ("label", "prediction")

_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_VERSION_PATTERN = re.compile(r"v(\d{3,})")


class FinetuneError(ValueError):
    """A correction, project folder or fine-tuning request is not usable; says why."""


class RoundRunning(FinetuneError):
    """Another round runs on the project (it holds its round lock); a round is not started."""

    #: Said as a refusal, not as a failure (the docks show it as a warning).
    not_started = True


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


#: A name ending like this is always given a hash suffix, so that no name left as it is
#: can equal the sanitised form of another name.
_HASHED_TAIL = re.compile(r"-[0-9a-f]{10}")


def safe_sample_id(name: str) -> str:
    """Turn any name (e.g. a napari layer name) into a valid correction id, injectively.

    A name that is already a valid id is returned as it is. Any other name is
    sanitised and given a short hash of the original name, so two different names never
    share an id (``"cells [1]"`` and ``"cells_1_"`` get different ones, and so do two
    long names with the same first 128 characters).

    Parameters
    ----------
    name : str
        Any text.

    Returns
    -------
    str
        Letters, digits and ``._+-`` only, starting with a letter or digit, at most 128
        characters (``"image [1].tif"`` becomes ``"image_1_.tif-<10 hex digits>"``).
    """
    import hashlib

    name = str(name)
    if _ID_PATTERN.fullmatch(name) and not _HASHED_TAIL.search(name[-11:]):
        return name
    text = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._-+ ") or "image"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{text[:128 - 11]}-{digest}"


def _check_id(sample_id: str) -> str:
    if not isinstance(sample_id, str) or not _ID_PATTERN.fullmatch(sample_id):
        raise FinetuneError(
            f"Correction id {sample_id!r} cannot be used as a folder name: use letters, digits "
            f"and . _ + - only (at most 128 characters), e.g. {safe_sample_id(str(sample_id))!r}."
        )
    return sample_id


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON atomically with the one project helper (:func:`..atomic.atomic_write_json`).

    Temporary file beside ``path``, fsync, mode 0644, rename; a full or read-only disk
    raises :class:`~napari_nuclei_unet.core.atomic.AtomicWriteError` naming the file.
    """
    from ..atomic import atomic_write_json

    atomic_write_json(path, data)


def _write_png(path: Path, array: np.ndarray) -> None:
    """Write one PNG (RGB image or 0/255 mask) atomically, mode 0644, flushed to disk."""
    from PIL import Image

    from ..atomic import atomic_write

    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG",
                                                               compress_level=3))
