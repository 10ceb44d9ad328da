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


def connect_napari(pairs: Iterable[tuple[Any, Callable[..., Any]]]) -> list[tuple[Any, Any]]:
    """Connect napari events to a dock's methods, held weakly; returns the pairs connected.

    Give the returned pairs to :func:`disconnect_all` when the dock is destroyed. napari's
    ``EventEmitter.disconnect`` compares a bound method's object with the objects of the
    other callbacks, and once Qt has deleted the dock that comparison raises: a closed
    dock stayed connected to ``viewer.layers.events``, and the next layer removed ran its
    handler on deleted widgets (an error). Each method is called through a plain
    function, which napari compares by identity.
    """
    connected = [(event, _weak_slot(method)) for event, method in pairs]
    for event, slot in connected:
        event.connect(slot)
    return connected


def _weak_slot(method: Callable[..., Any]) -> Callable[[Any], None]:
    """A function calling ``method`` (a bound method) while its object lives."""
    import inspect
    import weakref

    ref = weakref.WeakMethod(method)
    kinds = {p.kind for p in inspect.signature(method).parameters.values()}
    takes_event = bool(kinds & {inspect.Parameter.POSITIONAL_ONLY,
                                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                inspect.Parameter.VAR_POSITIONAL})

    def slot(event: Any) -> None:
        bound = ref()
        if bound is not None:
            if takes_event:
                bound(event)
            else:
                bound()

    return slot
