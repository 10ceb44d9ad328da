"""The model a large image's blocks are segmented with, loaded once per worker process.

A block task carries the model itself (local threads) or its checkpoint path (a
cluster: the workers load it once each, see :mod:`.bigimage`). The file is identified by
its content (:func:`file_identity`: size and SHA-256 of the ``.safetensors`` file and of
the ``.json`` beside it), taken once as a run starts:

- a checkpoint replaced at the same path (a model trained again) is loaded again: a
  cluster's long-lived workers kept using the first one (review h_rev17, F5);
- a file replaced *during* a run is refused, so that the blocks of one image never mix
  two models (h_rev19, L4);
- workers with their own, identical copy of the file (an environment on each node's
  disk) are served: a stamp of time, size and inode refused every block there, saying
  the file "was replaced during this run" (review h_rev20, M4); a worker without the
  file says so.

Each process hashes a file once per version it sees (keyed by its time, size and inode).
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

from .checkpoint import CheckpointError

_MODELS: dict[str, tuple[tuple, Any]] = {}
_IDENTITIES: dict[str, tuple[tuple, tuple]] = {}
_LOCK = threading.Lock()
_CHUNK = 1 << 20


def model_for(ref: Any, threads: int | None, identity: tuple | None = None) -> Any:
    """The model itself, or one loaded (once per process) from a checkpoint path.

    Parameters
    ----------
    ref : UNet or str or os.PathLike
        The model, or its checkpoint's path.
    threads : int, optional
        Torch threads of this process (default: the dask worker's own, when in one).
    identity : tuple, optional
        The file's :func:`file_identity` as the run started; the file here must match.

    Raises
    ------
    CheckpointError
        When the file here is missing or is not the one the run started with.
    """
    if not isinstance(ref, (str, os.PathLike)):
        return ref
    key = str(ref)
    with _LOCK:
        current = _identity(key)
        wanted = current if identity is None else identity
        cached = _MODELS.get(key)
        if cached is not None and cached[0] == wanted:
            return cached[1]
        if wanted != current:
            raise CheckpointError(_mismatch_words(ref, current))
        import torch

        from .checkpoint import load_checkpoint

        threads = threads or _worker_threads()
        if threads:
            torch.set_num_threads(int(threads))
        _MODELS[key] = (current, load_checkpoint(key, device="cpu").model)
        return _MODELS[key][1]


def file_identity(ref: str | os.PathLike) -> tuple:
    """The content of the checkpoint at ``ref``: ``(size, sha256)`` of each of its files.

    A ``.safetensors`` file and its ``.json`` beside it; ``None`` for a file missing or
    unreadable (and for a name such as ``"default"``, which is no file).
    """
    with _LOCK:
        return _identity(str(ref))


def _identity(key: str) -> tuple:
    path = Path(key)
    files = [path, path.with_suffix(".json")] if path.suffix == ".safetensors" else [path]
    return tuple(_file_digest(file) for file in files)


def _file_digest(file: Path) -> tuple | None:
    try:
        info = file.stat()
    except OSError:
        return None
    seen = (info.st_mtime_ns, info.st_size, info.st_ino)
    cached = _IDENTITIES.get(str(file))
    if cached is not None and cached[0] == seen:
        return cached[1]
    digest = hashlib.sha256()
    try:
        with open(file, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    identity = (info.st_size, digest.hexdigest())
    _IDENTITIES[str(file)] = (seen, identity)
    return identity


def _mismatch_words(ref: Any, current: tuple) -> str:
    if any(part is None for part in current):
        where = _host_words()
        return (f"The model file {ref} is not on {where} (or cannot be read there): every "
                "worker must see the model the run started with. Put it in a folder all "
                "workers see, and run it again.")
    return (f"The model file {ref} is not the one this run started with (trained or saved "
            "again since, or another copy on this worker), so the image's blocks would mix "
            "two models. Run it again; on a cluster, give every worker the same file.")


def _host_words() -> str:
    try:
        from distributed import get_worker

        return f"the worker {get_worker().address}"
    except (ImportError, ValueError, AttributeError):
        return "this computer"


def _worker_threads() -> int | None:
    """Threads of the dask worker this runs in (its share of the node), else None."""
    try:
        from distributed import get_worker

        return int(get_worker().state.nthreads)
    except (ImportError, ValueError, AttributeError):
        return None
