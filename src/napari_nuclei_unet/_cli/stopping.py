"""Cooperative stop for long commands: Ctrl-C and a time limit.

The first Ctrl-C asks the running core generator to stop at its next check (it then
saves what it has, e.g. the last checkpoint); a second Ctrl-C aborts at once.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from .progress import note


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
    def stopped(self) -> bool:
        """Whether a stop was requested (by Ctrl-C or the time limit)."""
        return self.interrupted or self.timed_out

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        note(f"Ctrl-C: stopping {self.what} after the current step {self.then}... "
             "(press Ctrl-C again to abort at once)", quiet=self.quiet)

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False
