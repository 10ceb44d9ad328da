"""Hold Python's automatic garbage collection while the warm-ups import, then collect once.

Opening the workflow panel starts warm-ups that import about 2,000 modules in
workers and on the main thread (napari's layer modules, pandas, xarray, pint,
torch's optimizer, which imports ``torch._dynamo`` and sympy): the heap grows
from about 340,000 to 625,000 tracked objects. Python starts a full
("generation 2") collection whenever the objects promoted since the last one
exceed a quarter of those it kept, so that growth set off two or three full
collections of 250-450 ms each in the middle of the user's first clicks (a
collection in a worker holds the GIL: the window froze too;
``benchmarks/bench_journey.py --gc-log``). None of them freed much: the new
objects are modules' functions, classes and dicts, alive until the process ends.

:class:`CollectionPause` turns automatic collection off for the warm-ups (the
objects are still freed by reference counting; only cycles wait) and, once they
are over and the window is idle, the panel collects once and turns it back on
(``_warm_up.settle_heap_steps``). The previous state is restored whatever
happens: several holders count (two panels), a holder released twice counts
once, and a safety timer turns collection back on after :data:`MAX_PAUSE_S`
seconds even if the release never comes (the window never shown, a warm-up
stuck): cyclic garbage is never kept longer than that.
"""

from __future__ import annotations

import gc
import threading

#: The longest automatic collection stays off (s), whatever happens (the warm-ups
#: take 10-30 s on a busy 2-core machine).
MAX_PAUSE_S = 90.0


class CollectionPause:
    """A process-wide, counted pause of automatic garbage collection.

    Parameters
    ----------
    max_s : float, optional
        Collection is turned back on after this many seconds even if a holder
        never releases (a daemon timer thread).

    Notes
    -----
    Only the transition from no holder to one holder turns collection off, and
    only when it was on; only the last release turns it back on. Explicit
    ``gc.collect()`` calls still work during the pause.
    """

    def __init__(self, *, max_s: float = MAX_PAUSE_S) -> None:
        self.max_s = max_s
        self._lock = threading.RLock()  # a finalizer run by the collection may hold again
        self._holders: set[int] = set()
        self._next_token = 0
        self._restore = False  # turn collection back on at the end
        self._timer: threading.Timer | None = None

    @property
    def active(self) -> bool:
        """True while at least one holder holds the pause."""
        with self._lock:
            return bool(self._holders)

    def hold(self) -> int:
        """Turn automatic collection off (if it was on) until :meth:`release`.

        Returns
        -------
        int
            A token for :meth:`release`.
        """
        with self._lock:
            self._next_token += 1
            token = self._next_token
            if not self._holders:
                self._restore = gc.isenabled()
                gc.disable()
                self._timer = threading.Timer(self.max_s, self.end_all)
                self._timer.daemon = True
                self._timer.start()
            self._holders.add(token)
            return token

    def release(self, token: int, *, collect: bool = False) -> bool:
        """End the hold ``token``; the last one restores automatic collection.

        Parameters
        ----------
        token : int
            What :meth:`hold` returned. A token released already (or expired)
            is ignored.
        collect : bool, optional
            When this is the last holder, run one full collection before turning
            collection back on (call it from the main thread while idle: it
            takes a few hundred milliseconds on a heap holding torch).

        Returns
        -------
        bool
            True when this release ended the pause.
        """
        with self._lock:  # held while collecting: a new pause starts after this one ends
            if token not in self._holders:
                return False
            self._holders.discard(token)
            if self._holders:
                return False
            self._end(collect=collect)
            return True

    def end_all(self) -> bool:
        """Drop every holder and restore automatic collection (no collection is run).

        The safety timer calls it; so do the tests, between two tests.

        Returns
        -------
        bool
            True when a pause was ended.
        """
        with self._lock:
            if not self._holders:
                return False
            self._holders.clear()
            self._end(collect=False)
            return True

    def _end(self, *, collect: bool) -> None:
        """Stop the timer, optionally collect, restore the state before the pause (lock held)."""
        timer, self._timer = self._timer, None
        restore, self._restore = self._restore, False
        if timer is not None:
            timer.cancel()  # harmless when the timer itself is ending the pause
        try:
            if collect:
                gc.collect()
        finally:
            if restore:
                gc.enable()


#: The pause the warm-ups share (one process, one collector).
PAUSE = CollectionPause()
