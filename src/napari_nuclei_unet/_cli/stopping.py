"""Cooperative stop for long commands: Ctrl-C, SIGTERM and a time limit.

The first Ctrl-C (or SIGTERM) asks the running core generator to stop at its next check
(it then saves what it has, e.g. the last checkpoint); a second one aborts at once.
Elsewhere SIGTERM is a :class:`Terminated` interrupt: the clean-ups of Ctrl-C run.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from .progress import note


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, Slurm's ``scancel`` or time-out, torchrun shutting down).

    A :class:`KeyboardInterrupt`, so that everything that cleans up after Ctrl-C
    (partial files, half-written results) does so after SIGTERM too; it used to kill
    the process with its leftovers (review h_rev17, F10).
    """


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the command runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class StopRequest:
    """A ``should_stop`` callable set by Ctrl-C or by a time limit.

    Use as a context manager: the SIGINT handler is installed on entry (main thread
    only) and the previous one restored on exit.

    Parameters
    ----------
    time_limit_minutes : float, optional
        Ask to stop once this many minutes have passed since :meth:`start_clock` (so
        that e.g. loading the data does not count).
    what : str
        What is being stopped, for the messages (e.g. ``"training"``).
    quiet : bool
        Do not print the notes.
    then : str
        What happens on Ctrl-C after the current step, for the message: the checkpoints
        are saved (training); a fine-tuning round keeps nothing of itself.
    """

    def __init__(self, time_limit_minutes: float | None = None, *, what: str = "training",
                 quiet: bool = False, then: str = "and saving") -> None:
        if time_limit_minutes is not None and not time_limit_minutes > 0:
            raise ValueError(
                f"--time-limit must be a positive number of minutes, got {time_limit_minutes}."
            )
        self.time_limit_s = None if time_limit_minutes is None else 60.0 * time_limit_minutes
        self.what = what
        self.then = then
        self.quiet = quiet
        self.interrupted = False
        self.terminated = False  # the interrupt was SIGTERM
        self.timed_out = False
        self._start: float | None = None
        self._previous: Any = None
        self._installed = False

    def __call__(self) -> bool:
        """Whether the job should stop now."""
        if (not self.timed_out and self.time_limit_s is not None and self._start is not None
                and time.monotonic() - self._start >= self.time_limit_s):
            self.timed_out = True
            note(f"Time limit reached: stopping {self.what} (keeping the best checkpoint)...",
                 quiet=self.quiet)
        return self.interrupted or self.timed_out

    def start_clock(self) -> None:
        """Start counting the time limit from now."""
        self._start = time.monotonic()

    @property
    def exit_status(self) -> int:
        """The command's status once stopped: 143 after SIGTERM, 130 after Ctrl-C, else 1."""
        return 143 if self.terminated else 130 if self.interrupted else 1

    @property
    def why(self) -> str:
        """What stopped it, in a word: "Ctrl-C", "SIGTERM" or "time limit"."""
        return "SIGTERM" if self.terminated else "Ctrl-C" if self.interrupted else "time limit"

    @property
    def stopped(self) -> bool:
        """Whether a stop was requested (by Ctrl-C or the time limit)."""
        return self.interrupted or self.timed_out

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        note(f"Ctrl-C: stopping {self.what} after the current step {self.then}... "
             "(press Ctrl-C again to abort at once)", quiet=self.quiet)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        # as the first Ctrl-C: a cluster's grace period (Slurm: 30 s) before SIGKILL is
        # enough to finish the step and save, where up to an epoch was lost (h_rev17 F10)
        if self.interrupted:
            raise Terminated
        self.interrupted = self.terminated = True
        note(f"Termination signal (SIGTERM): stopping {self.what} after the current step "
             f"{self.then}...", quiet=self.quiet)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = (signal.signal(signal.SIGINT, self._on_sigint),
                              signal.signal(signal.SIGTERM, self._on_sigterm))
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous[0])
            signal.signal(signal.SIGTERM, self._previous[1])
            self._installed = False
