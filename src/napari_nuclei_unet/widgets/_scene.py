"""One rebuild of napari's canvas scene graph for several layer changes.

napari 0.9 rebuilds its whole vispy scene graph (view boxes of the grid, parents and
draw order of every layer's visual, overlays) after *each* layer visibility change
and each grid setting (``VispyCanvas._update_scenegraph``): about 50 ms each in grid
mode on a busy machine, and a mode switch of the Compare dock makes four to six of
them. :func:`one_scene_rebuild` holds those rebuilds and does one at the end.

napari's own way, ``viewer.layers.batched_update()``, pauses the same rebuilds but
ends with ``gc.collect()`` and a GL finish (a fix for removed layers on Windows):
about 1 s in this process, whose heap holds torch. No layer is removed here, so the
one rebuild is enough. When napari's canvas cannot be found (no Qt window, another
napari version) the changes simply run unbatched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def scene_canvas(viewer: Any) -> Any:
    """The ``VispyCanvas`` (napari's) of ``viewer``'s window, or None.

    Found through Qt's top-level widgets (napari hands plugins a proxy viewer that
    warns on private attributes; the Qt main window is not proxied).
    """
    try:
        from qtpy.QtWidgets import QApplication
    except Exception:  # no Qt
        return None
    real = getattr(viewer, "__wrapped__", viewer)
    for widget in QApplication.topLevelWidgets():
        qt_viewer = getattr(widget, "_qt_viewer", None)
        if qt_viewer is not None and getattr(qt_viewer, "viewer", None) is real:
            canvas = getattr(qt_viewer, "canvas", None)
            ok = canvas is not None and hasattr(canvas, "_update_scenegraph")
            return canvas if ok and hasattr(canvas, "_pause_scene_graph") else None
    return None


@contextmanager
def one_scene_rebuild(viewer: Any) -> Iterator[None]:
    """Run the block's layer visibility/grid changes with one scene-graph rebuild.

    Nested uses rebuild once, at the end of the outermost block.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    """
    canvas = scene_canvas(viewer)
    if canvas is None or canvas._pause_scene_graph:  # nothing to batch, or nested
        yield
        return
    canvas._pause_scene_graph = True
    try:
        yield
    finally:
        canvas._pause_scene_graph = False
        canvas._update_scenegraph()


def set_visible(layer: Any, visible: bool) -> bool:
    """Set ``layer.visible`` only when it differs; return True when it changed.

    napari's ``visible`` setter has no equality check: setting the same value
    again still refreshes the layer (when True) and rebuilds the scene graph.
    """
    if bool(layer.visible) == bool(visible):
        return False
    layer.visible = visible
    return True
