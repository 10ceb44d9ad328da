"""A dock's life in Qt: what runs when it is closed, and letting go of shared signals."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def on_destroyed(widget: Any, callback: Callable[[], None]) -> None:
    """Call ``callback()`` when the Qt ``widget`` is destroyed (its dock closed).

    Connected through a lambda: PyQt never calls a bound method of the object being
    destroyed, so ``widget.destroyed.connect(widget.method)`` would silently not run.
    The widget's Qt children are going away then: ``callback`` should touch plain
    Python state only. The widget is destroyed when napari closes its dock
    (:func:`_destroy_when_closed`).
    """
    widget.destroyed.connect(lambda *_args: callback())
    _destroy_when_closed(widget)


def _destroy_when_closed(widget: Any) -> None:
    """Destroy ``widget`` (and so its children) once napari's × takes it out of its dock.

    napari 0.9's × only un-parents a dock's widget, and its activity list keeps every
    job's cancel callback, a method of the dock that ran it: a closed dock was never
    destroyed, so a segmentation went on and added its labels later, and the closed
    panel's side by side kept hiding the images opened next (GUI check h_gui37, H1).
    """
    from qtpy.QtCore import QEvent, QObject

    if widget.property("nuclei_unet_destroyed_when_closed"):
        return
    widget.setProperty("nuclei_unet_destroyed_when_closed", True)

    class _Closed(QObject):
        docked = False

        def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.ParentChange:
                if in_window(watched):
                    self.docked = True
                elif self.docked and watched.parent() is None:
                    watched.removeEventFilter(self)
                    watched.deleteLater()
            return False

    widget.installEventFilter(_Closed(widget))


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


def share_the_column_when_shown(widget: Any) -> None:
    """When the dock of ``widget`` first shows stacked under others, share their height.

    napari gives a dock added to a side that holds others nearly all of the height, and
    the others their minimum: the Segment dock, with the Retrain dock opened under it at
    1280 x 800, kept a strip of 170 px (its Segment button had to be scrolled to). Once
    the dock is shown, when a dock of its column has less than an equal share and less
    than it asks for, every dock of the column gets an equal share. A widget shown
    inside the workflow panel (a tab), floating or tabbed with others is left alone.
    """
    from qtpy.QtCore import QEvent, QObject, QTimer

    class _FirstShow(QObject):
        def eventFilter(self, watched: Any, event: Any) -> bool:  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.Show:
                watched.removeEventFilter(self)
                # after napari's own sizing of the new dock, in the same turn
                QTimer.singleShot(0, lambda: _share_the_column(widget))
            return False

    widget.installEventFilter(_FirstShow(widget))


def _share_the_column(widget: Any) -> None:
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QDockWidget, QMainWindow

    try:
        dock = widget.parentWidget()
        while dock is not None and not isinstance(dock, QDockWidget):
            if type(dock).__name__ == "WorkflowPanel":
                return  # a tab of the panel
            dock = dock.parentWidget()
    except RuntimeError:  # deleted meanwhile
        return
    window = dock.parentWidget() if dock is not None else None
    if not isinstance(window, QMainWindow) or dock.isFloating() \
            or window.tabifiedDockWidgets(dock):
        return
    area = window.dockWidgetArea(dock)
    column = [d for d in window.findChildren(QDockWidget)
              if d.isVisible() and not d.isFloating() and window.dockWidgetArea(d) == area
              and abs(d.x() - dock.x()) < 4 and not window.tabifiedDockWidgets(d)]
    if len(column) < 2:
        return
    total = sum(d.height() for d in column)
    share = total // len(column)
    if all(d.height() >= min(share, d.widget().sizeHint().height()) - 4
           for d in column if d.widget() is not None):
        return
    window.resizeDocks(column, [share] * len(column), Qt.Orientation.Vertical)


def in_window(widget: Any) -> bool:
    """Whether ``widget`` is in a dock or a main window: False once napari closed its dock.

    napari 0.9 un-parents a closed dock's widget (``setParent(None)``) instead of
    destroying it (GUI check h_gui33, H1): :func:`_destroy_when_closed` tells a close
    by it. A floating dock is still in a dock.
    """
    from qtpy.QtWidgets import QDockWidget, QMainWindow

    while widget is not None:
        if isinstance(widget, (QDockWidget, QMainWindow)):
            return True
        widget = widget.parentWidget()
    return False
