"""Hold off Python's full garbage collections while the warm-ups import; then freeze.

Opening the workflow panel starts warm-ups that import about 2,000 modules in
workers and on the main thread (napari's layer modules, pandas, xarray, pint,
torch's optimizer, which imports ``torch._dynamo`` and sympy): the heap grows
from about 340,000 to 610,000 tracked objects. Python starts a full
("generation 2") collection whenever the objects promoted since the last one
exceed a quarter of those it kept, so that growth set off two or three full
collections of 250-450 ms each in the middle of the user's first clicks (a
collection in a worker holds the GIL: the window froze too;
``benchmarks/bench_journey.py --gc-log``). None of them freed much: the new
objects are modules' functions, classes and dicts, alive until the process ends.

:class:`CollectionPause` holds off full collections for the warm-ups: young
collections still run (a few milliseconds each), so the imports' short-lived
cycles are freed as they go. Once the warm-ups are over and the window is idle,
the panel collects the young generations and **freezes** what is left
(``gc.freeze()``): the warmed-up heap is moved out of the collector's sight, so
later full collections walk only what the session makes afterwards. A full
collection of the warmed-up heap took 450-600 ms (it found 16,000 unreachable
objects keeping 215,000 alive, because collection used to be off during the
imports); with young collections running, the frozen heap held 3,433 unreachable
objects (0.4 MB) at the end of a whole ``bench_journey`` session, and no
collection of that session took over 2 ms.

A frozen object that becomes cyclic garbage is never freed, and neither is what
it holds. The one such case that matters is a layer that existed when the heap
was frozen (the user's own, or a plugin layer) being removed: its data would
stay in memory. :meth:`CollectionPause.thaw` gives the frozen objects back to
the collector (the next full collection then walks them once); the panel calls
it when such a layer is removed and when the panel itself goes
(:func:`settle_heap_steps`, ``workflow_panel``).

The previous thresholds are restored whatever happens: several holders count
(two panels), a holder released twice counts once, and a safety timer ends the
pause after :data:`MAX_PAUSE_S` seconds even if the release never comes (the
window never shown, a warm-up stuck).
"""

from __future__ import annotations

import gc
import threading

#: The longest full collections stay held off (s), whatever happens (the warm-ups
#: take 10-30 s on a busy 2-core machine).
MAX_PAUSE_S = 90.0

#: The generation-2 threshold while paused: no full collection can start.
NO_FULL_COLLECTION = 1_000_000_000


class CollectionPause:
    """A process-wide, counted hold on full garbage collections.

    Parameters
    ----------
    max_s : float, optional
        The thresholds are restored after this many seconds even if a holder
        never releases (a daemon timer thread).

    Notes
    -----
    Only the transition from no holder to one holder changes the thresholds;
    only the last release restores them. Young collections, and explicit
    ``gc.collect()`` calls, still run during the pause; a collector turned off
    stays off.
    """

    def __init__(self, *, max_s: float = MAX_PAUSE_S) -> None:
        self.max_s = max_s
        self._lock = threading.RLock()  # a finalizer run by a collection may hold again
        self._holders: set[int] = set()
        self._next_token = 0
        self._thresholds: tuple[int, ...] | None = None  # to restore at the end
        self._timer: threading.Timer | None = None
        self._frozen = False

    @property
    def active(self) -> bool:
        """True while at least one holder holds the pause."""
        with self._lock:
            return bool(self._holders)

    @property
    def frozen(self) -> bool:
        """True while the heap this pause froze is out of the collector's sight."""
        with self._lock:
            return self._frozen

    def hold(self) -> int:
        """Hold off full collections until :meth:`release`.

        Returns
        -------
        int
            A token for :meth:`release`.
        """
        with self._lock:
            self._next_token += 1
            token = self._next_token
            if not self._holders:
                self._thresholds = gc.get_threshold()
                young, middle = self._thresholds[:2]
                gc.set_threshold(young, middle, NO_FULL_COLLECTION)
                self._timer = threading.Timer(self.max_s, self.end_all)
                self._timer.daemon = True
                self._timer.start()
            self._holders.add(token)
            return token

    def release(self, token: int, *, freeze: bool = False) -> bool:
        """End the hold ``token``; the last one restores the thresholds.

        Parameters
        ----------
        token : int
            What :meth:`hold` returned. A token released already (or expired)
            is ignored.
        freeze : bool, optional
            When this is the last holder, collect the young generations and
            freeze every object left (call it while idle, once the warm-ups
            are over: a few milliseconds) before restoring the thresholds.

        Returns
        -------
        bool
            True when this release ended the pause.
        """
        with self._lock:  # held while freezing: a new pause starts after this one ends
            if token not in self._holders:
                return False
            self._holders.discard(token)
            if self._holders:
                return False
            self._end(freeze=freeze)
            return True

    def end_all(self) -> bool:
        """Drop every holder and restore the thresholds (nothing is frozen).

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
            self._end(freeze=False)
            return True

    def thaw(self) -> bool:
        """Give the objects this pause froze back to the collector.

        Returns
        -------
        bool
            True when something was frozen.
        """
        with self._lock:
            if not self._frozen:
                return False
            self._frozen = False
            gc.unfreeze()
            return True

    def _end(self, *, freeze: bool) -> None:
        """Stop the timer, optionally freeze, restore the thresholds (lock held)."""
        timer, self._timer = self._timer, None
        thresholds, self._thresholds = self._thresholds, None
        if timer is not None:
            timer.cancel()  # harmless when the timer itself is ending the pause
        try:
            if freeze:
                gc.collect(1)  # the young generations: short-lived cycles go first
                gc.freeze()
                self._frozen = True
        finally:
            if thresholds is not None:
                gc.set_threshold(*thresholds)


#: The pause the warm-ups share (one process, one collector).
PAUSE = CollectionPause()


#: How long :func:`settle_heap_steps` waits for a moment with no job running (s).
SETTLE_WAIT_S = 120.0


def settle_heap_steps(viewer, *, wait_s: float = SETTLE_WAIT_S, pause: int | None = None
                      ) -> list:
    """Steps that freeze the warmed-up heap once the warm-ups are over and idle.

    Python runs a full ("generation 2") collection when the objects that survived
    two young collections since the last full one exceed a quarter of those kept
    by it, and a full collection walks every tracked object. The warm-ups import
    napari's layer modules, torch's optimizer (which imports ``torch._dynamo``
    and sympy) and draw every layer once: the heap grows to about 610,000 tracked
    objects, and each full collection of it froze the window 450-600 ms (the
    warm-ups' own, then one in the user's first minutes: a fine-tuning round, a
    model switch). While the warm-ups run, ``pause`` (a token of
    ``_gc_pause.PAUSE``) holds full collections off; here, once no job runs, it
    is released with ``freeze=True``: the young generations are collected and
    the rest is frozen (a few milliseconds), so later full collections walk only
    what the session makes afterwards (``_gc_pause`` has the figures).

    Removing a layer that existed when the heap was frozen thaws it
    (:meth:`~._gc_pause.CollectionPause.thaw`): the layer's data would otherwise
    stay in memory for the rest of the session.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer (its session's jobs are waited for; its layers are watched).
    wait_s : float, optional
        Give up (freeze nothing; full collections come back) when no idle moment
        came within this many seconds.
    pause : int, optional
        The token of a :data:`~._gc_pause.PAUSE` hold to release. Without one,
        the steps take their own hold when they start.

    Returns
    -------
    list of callable
        The steps, for :class:`TurnRunner`.
    """
    import time

    from napari_nuclei_unet.widgets._session import session_for

    began: list[float] = []
    token: list[int] = [] if pause is None else [pause]

    def settle() -> list | None:
        if not began:
            began.append(time.monotonic())
            if not token:
                token.append(PAUSE.hold())
        jobs = getattr(session_for(viewer), "jobs", None)
        if jobs is not None and jobs.kinds():  # a warm-up or the user's job runs
            if time.monotonic() - began[0] > wait_s:
                PAUSE.release(token[0])  # the user is busy: the collector keeps its pace
                return None
            return [_idle, _idle, settle]
        if PAUSE.release(token[0], freeze=True):
            thaw_when_removed(viewer)
        return None

    return [settle]


def thaw_when_removed(viewer) -> None:
    """Thaw the frozen heap when a layer the viewer has now is removed.

    A frozen layer in a cycle (napari's layers are) is never freed once removed,
    nor is its data; thawing hands every frozen object back to the collector.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose current layers are watched (a stand-in without
        ``layers`` is ignored).
    """
    import weakref


    layers = getattr(viewer, "layers", None)
    events = getattr(layers, "events", None)
    if events is None:
        return
    frozen = weakref.WeakSet(layers)

    def on_removed(event) -> None:
        if event.value in frozen:
            PAUSE.thaw()

    events.removed.connect(on_removed)


def _idle() -> None:
    """A warm-up turn without work: the window draws and takes input in between."""
