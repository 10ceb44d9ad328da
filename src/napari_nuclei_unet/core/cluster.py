"""Prediction on a dask.distributed cluster: connect or start one, map files over it.

Two ways to use a cluster, both through dask's own machinery:

- the blocks of one large plane: pass the client to
  :func:`~napari_nuclei_unet.core.bigimage.segment_large` (``map_overlap`` graph);
- many files: :func:`map_files` sends one
  :func:`~napari_nuclei_unet.core.own_images.process_file` task per file.

Workers must see the model file and the images at the same paths (a shared file
system, as on SLURM/PBS clusters started with dask-jobqueue; see the README).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .device import usable_cores
from .progress import Progress

#: How long to wait for a scheduler that does not answer (dask retries until then).
CONNECT_TIMEOUT_S = 20.0


class ClusterError(ValueError):
    """The cluster cannot be reached or started; the message says what to do."""


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int = 0, *, processes: bool = True,
                threads_per_worker: int = 1, timeout_s: float | None = None) -> Iterator[Any]:
    """A :class:`distributed.Client` for the ``with`` block, or None for the plain path.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``) to connect to.
    workers : int
        Without ``scheduler``: start a :class:`distributed.LocalCluster` with this many
        workers (0 = no cluster, yields None).
    processes : bool
        Local workers as processes (True) or threads of this process.
    threads_per_worker : int
        Threads per local worker.
    timeout_s : float, optional
        How long to wait for the scheduler (default :data:`CONNECT_TIMEOUT_S`).

    Yields
    ------
    distributed.Client or None

    Raises
    ------
    ClusterError
        When the scheduler cannot be reached, or ``workers`` is negative.
    """
    if workers < 0:
        raise ClusterError(f"--workers must be 0 (no cluster) or more, got {workers}.")
    cores = usable_cores()
    if not scheduler and workers > cores:  # each worker loads torch and the model
        raise ClusterError(
            f"--workers {workers} is more than this computer's {cores} cores: each worker "
            f"loads the model and takes its share of memory. Give at most {cores}.")
    if not scheduler and not workers:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise ClusterError("dask.distributed is not installed: pip install distributed") \
            from exc
    if scheduler:
        try:
            wait = CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
            client = Client(scheduler, timeout=f"{wait}s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ClusterError(
                f"Could not connect to the dask scheduler at {scheduler} ({exc}). Check that "
                "it is running and reachable (e.g. 'dask scheduler' prints its address), or "
                "use --workers N for a cluster on this machine.") from exc
        try:
            yield client
        finally:
            client.close()
        return
    with _sigint_ignored_by_new_processes(processes):
        cluster = LocalCluster(n_workers=int(workers), threads_per_worker=threads_per_worker,
                               processes=processes, dashboard_address=None,
                               # a stop's "task cancelled", and a Ctrl-C's "Failed to
                               # communicate with scheduler" tracebacks of workers whose
                               # scheduler closed first (CLI check h_cli2, H4): a task's
                               # own error still reaches this process and is said
                               silence_logs=logging.CRITICAL)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@contextlib.contextmanager
def _sigint_ignored_by_new_processes(processes: bool) -> Iterator[None]:
    """Start local worker processes with Ctrl-C ignored; this process's own is back after.

    A terminal's Ctrl-C goes to its whole process group, the workers too: each printed
    a traceback and dask warnings before this process's plain "interrupted" line, and
    was killed 4 s later (review h_rev17, L1). This process stops on Ctrl-C and closes
    the cluster, which stops the workers. An ignored signal stays ignored in a process
    started from this one, and Python then leaves it so; a handler would not. A Ctrl-C
    while the workers start (a few seconds) is ignored too.
    """
    import signal
    import threading

    if not processes or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def torch_threads_per_worker(client: Any) -> int:
    """CPU threads each worker process may give torch (cores / workers on this host)."""
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    except Exception:  # a client that cannot tell: be conservative
        n_workers = 1
    return max(1, usable_cores() // n_workers)  # not the host's (h_rev17, L8)


@dataclass(frozen=True)
class FileSkipped:
    """A file :func:`map_files` could not read (a damaged plane, say): the others go on.

    One such file stopped the whole batch, with the worker's traceback in the terminal
    (review h_rev16, M3), where the same folder without a cluster skipped it.
    """

    path: str
    reason: str


@dataclass(frozen=True)
class FileDone:
    """One file's result as its task ends: a ``FileSummary`` or a :class:`FileSkipped`.

    :func:`map_files` yields it before its ``Progress``: a run over a folder said nothing
    until the last file was done, and after a Ctrl-C not which were (README check
    h_readme1, M1).
    """

    result: Any


def _process(path: str, model: Any, out_dir: str, options: Any, channel: int | None,
             axes: str | None, big_pixels: int | None, threads: int | None,
             device: str | None = None, block: int | None = None) -> Any:
    from .device import device_here
    from .own_images import process_file
    from .stacks import ImageFileError

    try:  # the device is resolved on the worker: "auto" is its own GPU (h_rev17, F6)
        return process_file(model, path, out_dir, options, channel=channel, axes=axes,
                            big_pixels=big_pixels, threads=threads, block=block,
                            device=device_here(device))
    except ImageFileError as exc:
        return FileSkipped(path, str(exc))


def map_files(
    client: Any,
    model: Any,
    paths: Sequence[str],
    out_dir: str | os.PathLike,
    options: Any = None,
    *,
    channel: int | None = None,
    axes: str | None = None,
    big_pixels: int | None = None,
    threads: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    device: str | None = None,
    block: int | None = None,
) -> Generator[Progress, None, list]:
    """Segment many files on a cluster, one task per file; results in input order.

    Parameters
    ----------
    client : distributed.Client
        The cluster.
    model : str or UNet
        Checkpoint path (loaded once per worker process), or a model object for an
        in-process cluster.
    paths : sequence of str
        Image files.
    out_dir : str or os.PathLike
        Output folder, visible to the workers.
    options, channel, axes, big_pixels
        As for :func:`~napari_nuclei_unet.core.own_images.process_file`.
    threads : int, optional
        Torch threads per worker process.
    should_stop : callable, optional
        Cancels the remaining tasks when it returns True.
    device : str, optional
        Where each worker segments, resolved on the worker (``"auto"``: its GPU if it
        has one); default: the model's device (a checkpoint path loads on the CPU).
    block : int, optional
        Block side for a large image (default: ``DEFAULT_BLOCK``).

    Yields
    ------
    FileDone or Progress
        Each file's result as its task ends (:class:`FileDone`), then
        ``Progress(stage="images")``.

    Returns
    -------
    list of FileSummary or FileSkipped
        Empty when stopped; a file that cannot be read is a :class:`FileSkipped`.
    """
    paths = [str(p) for p in paths]
    futures = client.map(_process, paths, model=model, out_dir=str(out_dir), options=options,
                         channel=channel, axes=axes, big_pixels=big_pixels, threads=threads,
                         device=device, block=block, pure=False)
    yield Progress("images", 0, len(paths))
    seen: set[int] = set()
    while len(seen) < len(paths):
        if should_stop is not None and should_stop():
            client.cancel(futures)
            return []
        finished = [k for k, f in enumerate(futures) if f.done()]
        for k in finished:
            if futures[k].status == "error":
                error = futures[k].exception()
                client.cancel(futures)
                raise error  # the worker's error, here
        new = [k for k in finished if k not in seen]
        for k in new:
            yield FileDone(futures[k].result())
        if new:  # the file just finished, not the n-th input (review h_rev17, L10)
            seen.update(new)
            yield Progress("images", len(seen), len(paths), os.path.basename(paths[new[-1]]))
        time.sleep(0.1)
    return list(client.gather(futures))
