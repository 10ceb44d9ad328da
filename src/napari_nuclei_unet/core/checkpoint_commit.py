"""Replacing a checkpoint set as one step, and finishing a save a crash interrupted.

Used by :mod:`napari_nuclei_unet.core.checkpoint` (see its module docstring for the
protocol): every new file is written under a temporary name and flushed, a commit
record ``.<name>.commit.json`` naming them is written, then they are moved into
place and the record deleted. :func:`recover_checkpoint` finishes a committed save
and deletes the leftovers of an uncommitted one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from . import atomic
from .locking import LockTimeout, exclusive_lock

#: Seconds a save or a recovery waits for another save of the same checkpoint.
LOCK_TIMEOUT_S = 60.0

WEIGHTS_SUFFIX = ".safetensors"
TRAIN_STATE_SUFFIX = ".train.safetensors"


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, unsafe or of another architecture."""


def weights_path(path: str | os.PathLike) -> Path:
    """Normalise a checkpoint path to its ``.safetensors`` file.

    ``run/best``, ``run/best.json`` and ``run/best.safetensors`` all name the same
    checkpoint.
    """
    path = Path(path)
    if path.name.endswith(TRAIN_STATE_SUFFIX):
        return path.with_name(path.name[: -len(TRAIN_STATE_SUFFIX)] + WEIGHTS_SUFFIX)
    if path.suffix in (WEIGHTS_SUFFIX, ".json"):
        return path.with_suffix(WEIGHTS_SUFFIX)
    return path.with_name(path.name + WEIGHTS_SUFFIX)


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a checkpoint."""
    return weights_path(path).with_suffix(".json")


def train_state_path(path: str | os.PathLike) -> Path:
    """The optional resume-state file of a checkpoint."""
    weights = weights_path(path)
    return weights.with_name(weights.name[: -len(WEIGHTS_SUFFIX)] + TRAIN_STATE_SUFFIX)


def commit_record_path(path: str | os.PathLike) -> Path:
    """The commit record of a checkpoint save in progress (``.<name>.commit.json``).

    It exists only between the moment every new file of a save is complete on disk and
    the moment they are all in place; see :func:`recover_checkpoint`.
    """
    weights = weights_path(path)
    return weights.with_name(f".{_stem(weights)}.commit.json")


def _stem(weights: Path) -> str:
    return weights.name[: -len(WEIGHTS_SUFFIX)]


def _lock_path(weights: Path) -> Path:
    return weights.with_name(f".{_stem(weights)}.lock")


def _set_names(weights: Path) -> list[str]:
    """Names of the files of a checkpoint set (and of its commit record)."""
    return [weights.name, sidecar_path(weights).name, train_state_path(weights).name,
            commit_record_path(weights).name]


def _read_record(record: Path) -> dict | None:
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}  # unreadable: written atomically, so this is not ours: ignore it
    return data if isinstance(data, dict) else {}


def _record_moves(record: dict) -> list[tuple[str, str]]:
    moves = record.get("moves")
    if not isinstance(moves, list):
        return []
    return [(str(m[0]), str(m[1])) for m in moves
            if isinstance(m, list) and len(m) == 2 and "/" not in str(m[0]) + str(m[1])
            and os.sep not in str(m[0]) + str(m[1])]


def _roll_forward(folder: Path, record_file: Path, record: dict) -> None:
    """Finish a save whose commit record was written: move its files in, remove stale ones."""
    for tmp, target in _record_moves(record):
        source = folder / tmp
        if source.exists():
            try:
                atomic.replace(source, folder / target)
            except FileNotFoundError:  # moved meanwhile by another reader's recovery
                pass
    for name in record.get("remove", []) if isinstance(record.get("remove"), list) else []:
        if isinstance(name, str) and "/" not in name and os.sep not in name:
            atomic._hook("unlink", folder / name)
            (folder / name).unlink(missing_ok=True)
    atomic.fsync_dir(folder)
    atomic._hook("unlink", record_file)
    record_file.unlink(missing_ok=True)
    atomic.fsync_dir(folder)


def _recover_locked(weights: Path) -> bool:
    """Recover a checkpoint set (lock held): finish a committed save, delete leftovers."""
    record_file = commit_record_path(weights)
    record = _read_record(record_file)
    if record:  # an unreadable record (None or empty) is not one of ours: left alone
        _roll_forward(weights.parent, record_file, record)
    for name in _set_names(weights):
        atomic.remove_stale_temps(weights.parent, name)
    return bool(record)


def recover_checkpoint(path: str | os.PathLike) -> bool:
    """Repair a checkpoint whose save was interrupted (a crash, a kill, a power cut).

    A save writes every new file of the set (weights, sidecar, resume state) under a
    temporary name, then writes a commit record naming them, then moves them into
    place and deletes the record. After a crash before the record was written the old
    set is complete (the temporary files are deleted here); after it, the moves are
    finished here. Loading does this automatically.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint (``run/best``, ``run/best.safetensors`` or ``run/best.json``).

    Returns
    -------
    bool
        True when an interrupted save was completed.
    """
    weights = weights_path(path)
    if not weights.parent.is_dir():
        return False
    with exclusive_lock(_lock_path(weights), timeout=LOCK_TIMEOUT_S):
        return _recover_locked(weights)


def _pending_files(weights: Path) -> dict[str, Path]:
    """Where each file of the set really is now, finishing a committed save if possible.

    When the folder cannot be written (e.g. a read-only share), the files a commit
    record names are read from their temporary names instead.
    """
    record_file = commit_record_path(weights)
    if not record_file.exists():
        return {}
    try:
        recover_checkpoint(weights)
        return {}
    except (OSError, LockTimeout):
        record = _read_record(record_file) or {}
        return {target: weights.parent / tmp for tmp, target in _record_moves(record)
                if (weights.parent / tmp).exists()}


def _actual(weights: Path, target: Path) -> Path:
    return _pending_files(weights).get(target.name, target)


def _commit(weights: Path, writes: list[tuple[Path, Any]], remove: list[Path]) -> None:
    """Replace a checkpoint set as one step, whatever moment a crash comes at.

    1. every new file is written completely under a temporary name and flushed;
    2. a commit record naming them is written (atomically): the commit point;
    3. the files are moved into place, ``remove`` deleted, the record deleted.

    A crash before 2 leaves the old set (the temporary files are deleted at the next
    save or load); a crash after 2 is finished by :func:`recover_checkpoint`, which
    every load and save runs first. A failure while writing (e.g. a full disk) leaves
    the old set untouched and no temporary files.
    """
    folder = weights.parent
    folder.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(_lock_path(weights), timeout=LOCK_TIMEOUT_S):
        _recover_locked(weights)
        temps: list[tuple[Path, Path]] = []
        try:
            for target, write in writes:
                temps.append((atomic.write_temp(target, write), target))
            record = {"moves": [[tmp.name, target.name] for tmp, target in temps],
                      "remove": [p.name for p in remove]}
            atomic.atomic_write_json(commit_record_path(weights), record)
        except BaseException as exc:
            for tmp, _ in temps:
                tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise CheckpointError(
                    f"Could not save checkpoint {weights}: "
                    f"{atomic.plain_os_error(exc, weights, 'save')}"
                ) from exc
            raise
        try:
            _roll_forward(folder, commit_record_path(weights), record)
        except OSError as exc:
            raise CheckpointError(
                f"Checkpoint {weights} was written but could not be put in place "
                f"({exc}); it will be completed the next time it is loaded."
            ) from exc


