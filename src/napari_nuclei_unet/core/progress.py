"""Progress updates for long jobs written as generators.

Every long job in :mod:`napari_nuclei_unet.core` (loading a dataset, training,
predicting many images) is a generator that yields small, typed updates and
*returns* its result. napari's ``thread_worker`` turns the return value into
``worker.returned``; headless callers use :func:`drive`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass
from typing import Any, TypeVar

R = TypeVar("R")

StopCheck = Callable[[], bool]


@dataclass(frozen=True)
class Progress:
    """Generic progress of a job made of countable steps.

    Attributes
    ----------
    stage : str
        Short name of what is being done, e.g. ``"index"``, ``"load"``, ``"predict"``.
    done : int
        Steps finished so far.
    total : int
        Steps in all (0 when unknown).
    message : str
        Optional human-readable detail, e.g. the sample id being processed.
    """

    stage: str
    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        """Fraction done in [0, 1] (0 when the total is unknown)."""
        return min(1.0, self.done / self.total) if self.total else 0.0


def drive(job: Generator[Any, None, R], on_update: Callable[[Any], None] | None = None) -> R:
    """Run a generator job to completion and return its return value.

    Parameters
    ----------
    job : generator
        A job that yields updates and returns a result.
    on_update : callable, optional
        Called with each yielded update, e.g. to advance a progress bar.

    Returns
    -------
    object
        Whatever the generator returned.

    An exception raised here while the job waits at a ``yield`` (a Ctrl-C, most often:
    it reaches the main thread wherever it is) closes the job at once, so that its own
    clean-up runs before the caller's (a large image's block threads stop before their
    folder is removed: review h_rev16, H1), not whenever it is garbage collected.
    """
    with closing(job):  # (a job that ended, or raised, is closed already)
        while True:
            try:
                update = next(job)
            except StopIteration as stop:
                return stop.value
            if on_update is not None:
                on_update(update)


def relay(job: Generator[Any, None, R], convert: Callable[[Any], Any]
          ) -> Generator[Any, None, R]:
    """Run ``job`` as part of another job: yield ``convert(update)`` for each update.

    An update ``convert`` maps to None is not passed on. Returns whatever ``job``
    returned, so ``result = yield from relay(inner, lambda u: Progress(...))``.

    Parameters
    ----------
    job : generator
        A job that yields updates and returns a result.
    convert : callable
        Maps one of its updates to the update to yield (or None to skip it).
    """
    with closing(job):  # closed (GeneratorExit) or interrupted: so is ``job``
        while True:
            try:
                update = next(job)
            except StopIteration as stop:
                return stop.value
            out = convert(update)
            if out is not None:
                yield out


def stop_requested(should_stop: StopCheck | None) -> bool:
    """Return True when a cooperative stop was asked for."""
    return bool(should_stop is not None and should_stop())


class Cancelled(Exception):
    """A stop was asked for in the middle of one step (e.g. between the tiles of a plane).

    Raised by the inner steps of a job, where there is nothing partial to return (half a
    plane is no result); the job that owns the step catches it and returns what it
    finished, marked as cancelled.
    """


def check_stop(should_stop: StopCheck | None) -> None:
    """Raise :class:`Cancelled` when a cooperative stop was asked for."""
    if stop_requested(should_stop):
        raise Cancelled("stopped on request")
