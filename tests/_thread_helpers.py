"""Tests' helper: hold a context (a lock, a run folder) in another thread meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager


@contextmanager
def held_elsewhere(make: Callable[[], AbstractContextManager]) -> Iterator[None]:
    """Enter ``make()`` in another thread, and leave it when the ``with`` block ends.

    Stands for another program (or another dock's job) holding a lock meanwhile.
    """
    held, release = threading.Event(), threading.Event()

    def other() -> None:
        with make():
            held.set()
            release.wait(30)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert held.wait(10), "the other thread did not take it"
        yield
    finally:
        release.set()
        thread.join()
