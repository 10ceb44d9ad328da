"""Whether two paths name the same file or folder, without ever raising."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["same_path"]


def same_path(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` resolve to the same path (False when either is not a path).

    Symbolic links and ``..`` are resolved; a path that cannot be resolved (a loop of
    links, a name the system refuses) or an object that is not a path is never the
    same as anything.
    """
    if a is None or b is None:
        return False
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, TypeError, ValueError, RuntimeError):
        return False
