"""An exclusive lock on a file, shared by threads and processes, that a crash never leaves held.

The lock is an operating-system lock on an open file (``fcntl.flock`` on POSIX,
``msvcrt.locking`` on Windows), not the file's existence: when a process dies its locks
go with it, so a lock file left behind after a crash never blocks anyone. The file
itself is kept (deleting a lock file while another process waits on it would let two
holders in). Threads of one process are also kept apart by a plain
:class:`threading.Lock` per file, because some file systems (e.g. NFS on Linux) give
``flock`` per-process rather than per-file-handle semantics.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

__all__ = ["LockTimeout", "RunFolderBusy", "exclusive_lock", "hold_run_folder", "lock_owner"]

_BUSY = {errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, errno.EDEADLK}
_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


class LockTimeout(TimeoutError):
    """The lock was held by someone else for longer than the caller wanted to wait."""


def _thread_lock(path: Path) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(os.path.normcase(str(path)), threading.Lock())


def _try_lock(fd: int) -> bool:
    """Take the OS lock on ``fd`` without waiting; False when another holder has it."""
    try:
        if os.name == "nt":
            import msvcrt

            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _BUSY:
            return False
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            return True  # the file system has no locks: go on unlocked rather than never save
        raise
    return True


def _unlock(fd: int) -> None:
    if os.name == "nt":
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def exclusive_lock(path: str | os.PathLike, *, timeout: float = 60.0,
                   poll_s: float = 0.05, owner: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for a ``with`` block.

    Parameters
    ----------
    path : str or os.PathLike
        The lock file; its folder must exist.
    timeout : float, default 60
        Seconds to wait for another holder; 0 tries once.
    poll_s : float, default 0.05
        Seconds between tries while waiting.
    owner : str, optional
        Text written into the lock file while it is held (e.g. the process id and
        command), so that someone who finds it busy can be told who holds it
        (:func:`lock_owner`).

    Raises
    ------
    LockTimeout
        When another thread or process held the lock for the whole ``timeout``.
    OSError
        When the lock file cannot be created (e.g. a read-only folder).
    """
    path = Path(path)
    deadline = time.monotonic() + max(0.0, timeout)
    local = _thread_lock(path)
    acquired = local.acquire(timeout=timeout) if timeout > 0 else local.acquire(blocking=False)
    if not acquired:
        raise LockTimeout(f"{path} is held by another thread of this program.")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            while not _try_lock(fd):
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"{path} is held by another program (waited {timeout:g} s).")
                time.sleep(poll_s)
            if owner is not None and os.name != "nt":
                try:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, owner.encode("utf-8", "replace"), 0)
                except OSError:
                    pass
            try:
                yield
            finally:
                _unlock(fd)
        finally:
            os.close(fd)
    finally:
        local.release()


def lock_owner(path: str | os.PathLike) -> str:
    """What the holder of a lock file wrote in it (``""`` if nothing or unreadable)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return " ".join(fh.read(500).split())
    except OSError:
        return ""


#: The lock file of a training run folder.
RUN_LOCK_NAME = ".nuclei-unet-run.lock"


_run_holders: dict[str, int] = {}


def take_at_once(path: str | os.PathLike, busy: Callable[[str], Exception],
                 command: str | None = None) -> ExitStack:
    """An ``ExitStack`` holding the lock file ``path``, taken at once, or ``busy`` raised.

    ``busy(owner)`` makes the exception to raise when another process (or thread)
    holds it, with ``owner`` the words that holder left in the file ("process 4242
    (nuclei-unet train ...)"). ``command`` is what this process leaves there (default:
    its first arguments).
    """
    import sys

    if command is None:
        command = " ".join(sys.argv[:6]) + (" …" if len(sys.argv) > 6 else "")
    stack = ExitStack()
    try:
        stack.enter_context(
            exclusive_lock(path, timeout=0, owner=f"process {os.getpid()} ({command})"))
    except LockTimeout:
        raise busy(lock_owner(path) or "another program") from None
    return stack


class RunFolderBusy(ValueError):
    """Another program is writing checkpoints into the same run folder."""


@contextmanager
def hold_run_folder(folder: str | os.PathLike) -> Iterator[None]:
    """Be the only writer of a training run folder for a ``with`` block.

    Parameters
    ----------
    folder : str or os.PathLike
        The run folder (``--out``); created if missing.

    Raises
    ------
    RunFolderBusy
        At once, when another process (or thread) holds it; the message names the
        folder and the other process.

    Notes
    -----
    Re-entrant within one thread (the CLI takes it, then ``train()`` again). In a
    torch.distributed job (``RANK`` set) only rank 0 takes it.
    """
    if os.environ.get("RANK", "0") != "0":
        # a torch.distributed job: rank 0 holds the lock for the whole job (and is the
        # only rank that writes checkpoints)
        yield
        return
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RunFolderBusy(
            f"{folder} is a file, not a folder: give --out a folder for the checkpoints "
            "(it is created if missing)."
        )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RUN_LOCK_NAME
    key = os.path.normcase(str(path.resolve()))
    if _run_holders.get(key) == threading.get_ident():
        yield  # nested: this thread already holds it (e.g. the CLI, then train())
        return
    stack = take_at_once(path, lambda other: RunFolderBusy(
        f"{folder} is already used by a training run in {other}. Two runs writing to one "
        "folder would mix their checkpoints: wait for that run to finish (or stop it), or "
        "give this one another --out folder."))
    _run_holders[key] = threading.get_ident()
    try:
        with stack:
            yield
    finally:
        _run_holders.pop(key, None)


class OutputFolderBusy(ValueError):
    """Another ``predict`` is writing into the same output folder."""


@contextmanager
def hold_output_folder(folder: str | os.PathLike) -> Iterator[None]:
    """Be the only ``predict`` writing into ``folder`` (its ``--out``) for a ``with`` block.

    Two commands into one folder both succeeded, the later one replacing the earlier
    one's results without ``--overwrite`` (CLI check h_cli3, H2). The lock file is kept
    in the cache folder, named after the folder's real path (a link to it is the same
    folder), so that the results
    folder holds results only and is not created before the input is checked.

    Raises
    ------
    OutputFolderBusy
        At once, when another process (or thread) holds it, naming that process.
    """
    import hashlib

    from .cache import cache_dir

    key = os.path.normcase(os.path.realpath(os.fspath(folder))).encode("utf-8", "surrogatepass")
    stack = ExitStack()
    try:
        locks = cache_dir() / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        stack = take_at_once(
            locks / f"predict-{hashlib.sha256(key).hexdigest()[:16]}.lock",
            lambda other: OutputFolderBusy(
                f"{folder} is being written by another nuclei-unet predict ({other}). Two "
                "commands writing into one folder replace each other's results: wait for it "
                "to end, or give this one another --out folder."))
    except OSError:  # no cache folder to write in (a read-only home): predict as before
        pass
    with stack:
        yield
