"""A progress bar that repaints at most ~10 times a second and says how long is left.

Background jobs yield one update per image; on a tall window every
``QProgressBar.setValue`` repaints synchronously (tens of ms), and queued updates
then run back to back on the main thread: the window freezes although the work
runs in a thread. :class:`ThrottledProgress` keeps the latest update and paints it
at most every :data:`MIN_INTERVAL_S` seconds (the first and the last update always),
with an estimate of the time left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

#: Shortest time between two repaints of one bar (at most 10 repaints a second).
MIN_INTERVAL_S = 0.1


def format_duration(seconds: float) -> str:
    """Plain-words duration: ``"12 s"``, ``"3 min"``, ``"1 h 05 min"``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def eta_text(done: int, total: int, elapsed_s: float, min_done: int = 1) -> str:
    """``"about 2 min left"`` from the rate so far, or ``""`` when too early to tell.

    Parameters
    ----------
    done, total : int
        Steps finished and steps in all.
    elapsed_s : float
        Seconds since the job started.
    min_done : int
        Steps to wait for (the first of a large image's blocks, half background, said
        "about 1200 s left" where 240 s followed: GUI check h_gui19, L4).

    Returns
    -------
    str
        The estimate, empty before the first step or after the last.
    """
    if done <= 0 or done < min_done or total <= 0 or done >= total or elapsed_s < 0.5:
        return ""
    left = elapsed_s / done * (total - done)
    return f"about {format_duration(left)} left"


class ThrottledProgress:
    """Show a job's progress on a ``QProgressBar`` at most every ``min_interval`` seconds.

    Parameters
    ----------
    bar : QProgressBar
        The bar to paint.
    min_interval : float, optional
        Seconds between two repaints.
    clock : callable, optional
        Monotonic clock (tests pass a fake one).

    Attributes
    ----------
    repaints : int
        How many times the bar was painted since :meth:`begin` (tests read it).
    """

    def __init__(self, bar: Any, *, min_interval: float = MIN_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.bar = bar
        self.min_interval = min_interval
        self._clock = clock
        self._started = clock()
        self._last_paint = -float("inf")
        self.repaints = 0
        self.eta = ""

    def begin(self, text: str = "", total: int = 0) -> None:
        """Start a new job: busy bar (``total == 0``) or an empty bar with ``text``."""
        self._started = self._clock()
        self._last_paint = -float("inf")
        self.repaints = 0
        self.eta = ""
        self.bar.setRange(0, max(0, total))
        self.bar.setValue(0)
        self.bar.setFormat(text)

    def show(self, done: int, total: int, text: str, *, force: bool = False) -> bool:
        """Paint ``done`` of ``total`` with ``text`` (``%v``/``%m`` allowed) and the ETA.

        Skipped (returns False) when the last repaint is less than ``min_interval``
        ago, unless it is the last step or ``force``.
        """
        now = self._clock()
        last = total > 0 and done >= total
        if not (force or last) and now - self._last_paint < self.min_interval:
            return False
        self._last_paint = now
        self.repaints += 1
        self.eta = eta_text(done, total, now - self._started)
        label = f"{text} · {self.eta}" if self.eta else text
        bar = self.bar
        bar.setUpdatesEnabled(False)  # one deferred repaint for the three changes
        try:
            bar.setRange(0, max(1, total))
            bar.setValue(min(max(done, 0), max(1, total)))
            bar.setFormat(label)
        finally:
            bar.setUpdatesEnabled(True)
        return True

    def show_update(self, update: Any, text: str, *, force: bool = False) -> bool:
        """:meth:`show` for a ``core.progress.Progress`` (anything with done/total)."""
        total = int(getattr(update, "total", 0) or 0)
        if not total:
            return False
        return self.show(int(getattr(update, "done", 0)), total, text, force=force)
