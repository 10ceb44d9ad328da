"""One way to write a file so that a crash never leaves half of it: temp file, fsync, rename.

:func:`atomic_write` writes to a temporary file in the destination's folder, flushes
it to disk, gives it the usual ``0644`` mode (``mkstemp`` makes ``0600`` files, which
other users of a shared folder cannot read), moves it over the destination with
:func:`os.replace` and flushes the folder entry. Readers see the old file or the new
one, never a mix; a crash leaves at most a hidden ``.<name>.*.tmp`` file, which
:func:`remove_stale_temps` deletes.

A disk that is full or read-only raises :class:`AtomicWriteError` (an ``OSError``)
whose message names the file and says what to do; the destination is untouched.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "FILE_MODE",
    "AtomicWriteError",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_folder",
    "atomic_write_json",
    "fsync_dir",
    "json_safe",
    "make_temp",
    "remove_stale_temps",
]

#: Mode of the files written: readable by everyone, writable by the owner.
FILE_MODE = 0o644

#: Called with an operation name before every file operation; tests replace it to
#: simulate a crash between any two operations (see tests/test_faults_checkpoint.py).
fault_hook: Callable[[str, Path], None] | None = None


class AtomicWriteError(OSError):
    """A file could not be written (full disk, no permission...); the old file is kept."""

    def __str__(self) -> str:
        return str(self.strerror or super().__str__())


def _hook(op: str, path: Path) -> None:
    if fault_hook is not None:
        fault_hook(op, path)


def plain_os_error(exc: OSError, path: Path, what: str = "write") -> AtomicWriteError:
    """A plain-words :class:`AtomicWriteError` for ``exc`` raised while writing ``path``."""
    if isinstance(exc, AtomicWriteError):
        return exc
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        advice = (f"the disk holding {path.parent} is full. Free some space (or choose "
                  "another folder) and try again")
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = f"no permission to write in {path.parent}. Choose a folder you can write to"
    else:
        advice = f"{exc.strerror or exc}"
    err = AtomicWriteError(code or errno.EIO, f"Could not {what} {path}: {advice}. "
                           "Any previous version of the file is kept.")
    return err


def make_temp(path: Path) -> Path:
    """Create an empty hidden temporary file beside ``path`` and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _hook("mkstemp", path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def fsync_file(path: Path) -> None:
    """Flush ``path``'s content to disk."""
    _hook("fsync", path)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (renames, new files) to disk, where the OS allows it."""
    if os.name == "nt":  # pragma: no cover - folders cannot be opened on Windows
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def chmod_shareable(path: Path) -> None:
    """Give ``path`` the mode :data:`FILE_MODE` (ignored where not supported)."""
    try:
        os.chmod(path, FILE_MODE)
    except OSError:
        pass


def write_temp(path: Path, write: Callable[[Path], Any]) -> Path:
    """Write a complete, flushed, ``0644`` temporary copy of ``path``; return its path.

    On any failure the temporary file is removed and the error re-raised
    (an ``OSError`` as :class:`AtomicWriteError`).
    """
    try:
        tmp = make_temp(path)
    except OSError as exc:  # named by the user's file, not by the hidden temporary one
        raise plain_os_error(exc, path) from exc
    try:
        _hook("write", tmp)
        write(tmp)
        chmod_shareable(tmp)
        fsync_file(tmp)
    except BaseException as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise plain_os_error(exc, path) from exc
        raise
    return tmp


def replace(tmp: Path, path: Path) -> None:
    """``os.replace(tmp, path)`` with the fault hook called first."""
    _hook("replace", path)
    os.replace(tmp, path)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Write ``path`` atomically: ``write(tmp)`` fills a temporary file that replaces it.

    Parameters
    ----------
    path : str or os.PathLike
        The destination (its folder is created if missing).
    write : callable
        Called with the temporary file's path; must write the whole content there.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    AtomicWriteError
        When the disk is full or not writable; ``path`` is unchanged.
    """
    path = Path(path)
    tmp = write_temp(path, write)
    try:
        replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise plain_os_error(exc, path) from exc
    fsync_dir(path.parent)
    return path


def atomic_write_folder(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Write a folder (a zarr store) so that a failure never leaves half of it.

    ``write(tmp)`` fills a hidden folder beside ``path``; only once it is complete does
    it take ``path``'s place, and only then is the previous folder removed. A failed or
    stopped write leaves the previous folder as it was (an OME-Zarr saved again over an
    earlier save deleted it first: review h_rev22, M1); a crash leaves at most hidden
    ``.<name>.*.tmp`` folders, which :func:`remove_stale_temps` deletes.

    Parameters
    ----------
    path : str or os.PathLike
        The destination folder (its parent is created if missing).
    write : callable
        Called with the temporary folder's path (it exists, empty).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    AtomicWriteError
        When the disk is full or not writable; ``path`` is unchanged.
    """
    import shutil
    from glob import escape as glob_escape

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(path):  # a crash between the two renames: the old one back
            olds = sorted(path.parent.glob(f".{glob_escape(path.name)}.*.old.tmp"),
                          key=lambda p: p.stat().st_mtime)
            if olds:
                os.rename(olds[-1], path)
        _hook("mkdtemp", path)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700: others of a shared folder could not read
    except OSError as exc:
        raise plain_os_error(exc, path) from exc
    try:
        write(tmp)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise plain_os_error(exc, path) from exc
        raise
    old = None
    try:
        if os.path.lexists(path):
            old = path.with_name(f"{tmp.name[:-len('.tmp')]}.old.tmp")
            _hook("rename", path)
            os.rename(path, old)
        _hook("replace", path)
        os.rename(tmp, path)
    except OSError as exc:
        if old is not None and os.path.lexists(old) and not os.path.lexists(path):
            os.rename(old, path)  # the previous folder back where it was
        shutil.rmtree(tmp, ignore_errors=True)
        raise plain_os_error(exc, path) from exc
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`).

    Parameters
    ----------
    path : str or os.PathLike
        The destination.
    data : bytes
        The whole new content.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def json_safe(value: Any) -> Any:
    """Replace NaN/inf floats (not valid JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def json_text(data: Any) -> str:
    """Indented JSON of ``data`` with NaN/inf written as null."""
    return json.dumps(json_safe(data), indent=2, allow_nan=False)


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON (NaN/inf as null) to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The destination.
    data : object
        JSON-serialisable data.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    text = json_text(data)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def remove_stale_temps(folder: str | os.PathLike, name: str,
                       keep: set[str] | frozenset[str] = frozenset(),
                       older_than_s: float | None = None) -> int:
    """Delete the ``.<name>.*.tmp`` files (and folders) a crash left in ``folder``.

    Only call this while holding the lock that writers of ``name`` take (or when no
    writer can be running), or a write in progress loses its temporary file; without
    such a lock, give ``older_than_s`` longer than any write takes.

    Parameters
    ----------
    folder : str or os.PathLike
        Where ``name`` lives.
    name : str
        The destination file name whose leftovers to remove.
    keep : set of str
        Temporary file names not to delete (e.g. those a commit record still needs).
    older_than_s : float, optional
        Only delete those last written at least this many seconds ago.

    Returns
    -------
    int
        How many files were removed.
    """
    import time

    removed = 0
    prefix = f".{name}."
    before = None if older_than_s is None else time.time() - older_than_s
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        if (entry.name.startswith(prefix) and entry.name.endswith(".tmp")
                and entry.name not in keep):
            try:
                if before is not None and entry.stat().st_mtime > before:
                    continue  # perhaps another writer's, still being written
                if entry.is_dir(follow_symlinks=False):  # a folder's (atomic_write_folder)
                    import shutil

                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed += 1
            except OSError:
                pass
    return removed
