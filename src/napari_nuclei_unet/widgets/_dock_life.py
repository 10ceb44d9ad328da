"""A dock's life in Qt: what runs when it is closed, and letting go of shared signals."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def on_destroyed(widget: Any, callback: Callable[[], None]) -> None:
    """Call ``callback()`` when the Qt ``widget`` is destroyed (its dock closed).

    Connected through a lambda: PyQt never calls a bound method of the object being
    destroyed, so ``widget.destroyed.connect(widget.method)`` would silently not run.
    The widget's Qt children are going away then: ``callback`` should touch plain
    Python state only.
    """
    widget.destroyed.connect(lambda *_args: callback())


def disconnect_all(pairs: Iterable[tuple[Any, Callable[..., Any]]]) -> None:
    """Disconnect each ``(signal, slot)`` pair (psygnal signals or napari events).

    Pairs that are no longer connected are skipped.
    """
    for signal, slot in pairs:
        try:
            signal.disconnect(slot)
        except (TypeError, ValueError, RuntimeError):
            pass
