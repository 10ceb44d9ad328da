"""Where a session's dataset was opened from, and its files' fingerprints (no Qt).

A dataset opened again (the same folder or zip, named any way) keeps what was loaded,
predicted and scored for its unchanged samples (``_session.Session.set_dataset``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _fingerprints(dataset: Any, ids: list[str]) -> dict[str, str]:
    """``dataset.fingerprints(ids)``; a dataset that cannot tell (or fails to) gives ""."""
    known = set(dataset.ids())
    fingerprints = getattr(dataset, "fingerprints", None)
    if fingerprints is None:
        return {i: "" for i in ids if i in known}
    try:
        return fingerprints([i for i in ids if i in known])
    except OSError:  # the folder went away: nothing of it can be checked
        return {}


def _place(dataset: Any) -> str:
    """Where a dataset was opened from, as one string for every way of naming it."""
    try:
        return str(Path(dataset.path).resolve())
    except OSError:
        return str(dataset.path)


def _place_name(dataset: Any) -> str:
    return Path(dataset.path).name


def same_place(old: Any, new: Any) -> bool:
    """Whether two opened datasets are the same folder or zip."""
    return old is not None and new is not None and _place(old) == _place(new)
