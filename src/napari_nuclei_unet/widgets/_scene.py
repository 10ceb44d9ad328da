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


@contextmanager
def one_dims_update(viewer: Any, layers: list) -> Iterator[None]:
    """Let the block's ``translate``/``scale`` sets of ``layers`` update the dims once.

    napari's viewer recomputes its dimensions from every layer at each such set of
    any layer (``ViewerModel._on_layers_change``, about 4 ms each here): moving the
    prediction pane's three layers paid it three times at every view change. Inside
    the block that callback is held for ``layers``; it runs once at the end when
    any of them moved. Each layer's own visual still follows every set. When the
    callback cannot be found (another napari), the sets run as they are.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer (or napari's proxy of it).
    layers : list of napari.layers.Layer
        The layers whose sets are batched.
    """
    real = getattr(viewer, "__wrapped__", viewer)  # the proxy warns on private names
    update = getattr(real, "_on_layers_change", None)
    emitters = []
    for layer in layers:
        for name in ("translate", "scale"):
            emitter = getattr(layer.events, name, None)
            if emitter is not None and hasattr(emitter, "block"):
                emitters.append(emitter)
    if update is None or not emitters:
        yield
        return
    moved: list = []

    def note(_event: Any = None) -> None:
        moved.append(True)

    for emitter in emitters:
        emitter.block(update)
        emitter.connect(note)
    try:
        yield
    finally:
        for emitter in emitters:
            emitter.unblock(update)
            emitter.disconnect(note)
        if moved:
            update()


@contextmanager
def added_unselected(viewer: Any) -> Iterator[None]:
    """Layers added inside the block are not selected (napari selects each one it adds).

    Selecting a new layer shows its controls (about 20 ms on the main thread for the
    first layer of a kind): the warm-up's hidden placeholders paid it, inside the
    stall of opening the panel, for a selection it then gave back. napari's layer
    list has a switch for it (``_activate_on_insert``, set back after the block); where
    it is missing (another napari), layers are added as napari adds them.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer (or napari's proxy of it).
    """
    layers = getattr(getattr(viewer, "__wrapped__", viewer), "layers", None)
    layers = getattr(layers, "__wrapped__", layers)
    before = getattr(layers, "_activate_on_insert", None)
    if not isinstance(before, bool):
        yield
        return
    layers._activate_on_insert = False
    try:
        yield
    finally:
        layers._activate_on_insert = before


def frame_shown(viewer: Any) -> bool:
    """Fit the camera to the layers that are visible.

    napari's ``reset_view()`` fits every layer, hidden ones included, so a hidden
    layer still holding a larger image (the prediction pane's copy, the last
    correction) left a small image framed as if it were that large. napari 0.9 takes
    the layers to fit; older versions fit them all. The plugin's own views (images
    and labels in 2-D) are framed from the layers' public extents
    (:func:`_fit_image_layers`), as napari frames them, without its copy of the
    layer list.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.

    Returns
    -------
    bool
        False when hidden layers widened the frame (napari < 0.9 without the fast
        fit): the caller frames again once they are out of the way.
    """
    shown = [layer for layer in viewer.layers if layer.visible]
    if shown and _fit_image_layers(viewer, shown):
        return True
    if not shown or len(shown) == len(viewer.layers) or _hidden_add_nothing(viewer, shown):
        viewer.reset_view()  # the same extent, without napari's copy of the layer list
        return True
    try:
        viewer.reset_view(layers=shown)
    except TypeError:  # napari < 0.9: no ``layers`` argument
        viewer.reset_view()
        return False
    except (IndexError, ValueError):  # napari 0.9 with layers of fewer dimensions shown
        viewer.reset_view()
        return False
    return True


def frame_if_lost(viewer: Any, layer: Any, small: float = 0.4) -> bool:
    """Frame ``layer`` when it is out of the view or small in it.

    A 256 px image segmented after a 1024 px dataset sample sat in a corner of the
    canvas at the sample's zoom, and napari's Home kept it there (the sample's hidden
    layers count in its extent: GUI check h_gui16, N2). An image the user zoomed into
    (larger than the view, in it) is left as it is. Returns whether it framed.
    """
    import numpy as np

    try:
        box = _world_box(layer, viewer.dims.ndim)
        if box is None or viewer.dims.ndisplay != 2:
            return False
        displayed = list(viewer.dims.displayed)
        low, high = box[0][displayed], box[1][displayed]
        camera = camera_of(viewer)
        canvas = np.asarray(viewer.canvas.size, dtype=float)
        center = np.asarray(camera.center, dtype=float)[-2:]
        half = canvas / camera.zoom / 2
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and canvas.shape == (2,)):
            return False
        outside = np.any(high < center - half) or np.any(low > center + half)
        tiny = np.all(high - low < small * 2 * half)
    except Exception:  # noqa: BLE001 - another napari: leave the view
        return False
    if not (outside or tiny):
        return False
    if not _fit_image_layers(viewer, [layer]):  # napari's way for the others
        try:
            viewer.reset_view(layers=[layer])
        except (TypeError, IndexError, ValueError):  # an older napari, other dimensions
            frame_shown(viewer)
    return True


def frame_first_own_layer(viewer: Any) -> None:
    """Frame the user's first layer when the panel's hidden placeholders came before it.

    napari frames the camera on the first layer added to an empty viewer, and leaves
    it alone afterwards. The workflow panel adds its layers ahead of use (8 x 8 px,
    hidden: ``_compare_layers.placeholder_makers``), so napari framed those, and a
    user's own image opened next was shown through a camera zoomed on 8 pixels (big
    grey blocks until the user pressed Home). A layer added while every other layer
    is such a placeholder is framed as napari frames a first layer. Installed once
    per viewer.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    """
    from qtpy.QtCore import QTimer

    from napari_nuclei_unet.widgets._layers import is_placeholder
    from napari_nuclei_unet.widgets._session import session_for

    session = session_for(viewer)
    if getattr(session, "own_layer_framing", False):
        return

    def on_inserted(event: Any) -> None:
        layer = event.value
        if is_placeholder(layer) or not layer.visible:
            return
        others = [other for other in viewer.layers if other is not layer]
        if not others or not all(is_placeholder(other) for other in others):
            return  # napari frames a first layer itself; later ones keep the user's view

        def frame() -> None:  # once napari has set the dims for the new layer
            if layer in viewer.layers:
                frame_shown(viewer)
        QTimer.singleShot(0, frame)

    viewer.layers.events.inserted.connect(on_inserted)
    session.own_layer_framing = True


#: Margin napari's ``reset_view`` leaves around the layers (fraction of the canvas).
FRAME_MARGIN = 0.05


def _fit_image_layers(viewer: Any, shown: list) -> bool:
    """Frame ``shown`` as ``reset_view(layers=shown)`` does; False when it cannot.

    napari's ``reset_view(layers=...)`` builds a new ``LayerList`` of them: 27 ms on
    the main thread at each view change of a session (``reset_view()`` of all layers:
    9 ms). For 2-D image, labels and points layers without rotation, shear or affine
    (the plugin's), their framed box is computed as napari computes it
    (:func:`_world_box`); the camera is centred on the union and zoomed so it fills
    the canvas less the margin. Points layers (the panes' titles) are allowed only
    when they lie within the images' box (so the frame is the images'). Anything else
    (shapes, points beyond the images, multiscale, 3-D, grid mode, another napari)
    returns False: napari's own way.
    """
    import numpy as np

    try:
        from napari.layers import Points

        if viewer.dims.ndisplay != 2 or grid_of(viewer).enabled:
            return False
        boxes, points = [], []
        for layer in shown:
            box = _world_box(layer, viewer.dims.ndim)
            if box is None:
                return False
            (points if isinstance(layer, Points) else boxes).append(box)
        if not boxes:
            return False
        low, high = _union(boxes)
        for inner_low, inner_high in points:
            if np.any(inner_low < low - 1e-9) or np.any(inner_high > high + 1e-9):
                return False
        displayed = list(viewer.dims.displayed)
        corner, size = low[displayed], (high - low)[displayed]
        canvas = np.asarray(viewer.canvas.size, dtype=float)
        if not (np.all(np.isfinite(corner)) and np.all(np.isfinite(size))
                and canvas.shape == (2,)):
            return False  # e.g. an axis displayed that some layer lacks: napari's way
        camera = camera_of(viewer)
        camera.center = tuple(corner + size / 2)
        size[np.isclose(size, 0)] = 1
        camera.zoom = float((1 - FRAME_MARGIN) * np.min(canvas / size))
        return True
    except Exception:  # noqa: BLE001 - another napari: its own way
        return False


def camera_of(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, else ``.camera``)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def _world_box(layer: Any, ndim: int) -> tuple[Any, Any] | None:
    """The world box napari frames ``layer`` by, from its data and transform; or None.

    Computed from public attributes (``data``, ``scale``, ``translate``, ``size``),
    not from ``layer.extent``: napari keeps a layer's extent cached while it is
    hidden, so a placeholder made at 8 x 8 px, given a 256 x 256 image while hidden
    and then shown, still reported 8 x 8 (the first image of a session was framed
    71 times too close). Images and labels: the pixel centres' span widened by half
    a pixel; points: their coordinates' span widened by half the largest point
    size, as napari's ``reset_view``. None for anything else (other layer types,
    multiscale data, rotation, shear or affine, another dimensionality).
    """
    import numpy as np
    from napari.layers import Image, Labels, Points

    if not isinstance(layer, (Image, Labels, Points)) or not 0 < layer.ndim <= ndim:
        return None
    if getattr(layer, "multiscale", False) or not _axis_aligned(layer):
        return None
    own = layer.ndim
    if isinstance(layer, Points):
        data = np.asarray(layer.data, dtype=float)
        if data.ndim != 2 or data.shape[1] != own or not len(data):
            return None
        sizes = np.asarray(layer.size, dtype=float)
        half = np.max(sizes) / 2 if sizes.size else 0.0
        low, high = data.min(axis=0) - half, data.max(axis=0) + half
    else:
        shape = np.asarray(layer.data.shape[:own], dtype=float)
        low, high = np.full(own, -0.5), shape - 0.5
    scale = np.asarray(layer.scale, dtype=float)
    translate = np.asarray(layer.translate, dtype=float)
    first, last = low * scale + translate, high * scale + translate
    # a layer of fewer dimensions (a 2-D image beside the user's stack) spans the last
    # axes of the world, as napari lays it out; it says nothing of the others (NaN)
    pad = np.full(ndim - own, np.nan)
    return (np.concatenate([pad, np.minimum(first, last)]),
            np.concatenate([pad, np.maximum(first, last)]))


def grid_of(viewer: Any) -> Any:
    """The viewer's grid settings (``viewer.canvas.grid`` since napari 0.9, else ``.grid``)."""
    canvas = getattr(viewer, "canvas", None)
    grid = getattr(canvas, "grid", None)
    return grid if grid is not None else viewer.grid


def _union(boxes: list) -> tuple[Any, Any]:
    """Lowest and highest corner of ``(low, high)`` boxes (arrays of one length)."""
    import numpy as np

    return np.min([box[0] for box in boxes], axis=0), np.max([box[1] for box in boxes], axis=0)


def _axis_aligned(layer: Any) -> bool:
    import numpy as np

    n = layer.ndim
    return bool(np.allclose(layer.rotate, np.eye(n)) and np.allclose(layer.shear, 0)
                and np.allclose(layer.affine.affine_matrix, np.eye(n + 1)))


def _hidden_add_nothing(viewer: Any, shown: list) -> bool:
    """True when the hidden layers lie within the box of the ``shown`` ones.

    napari's ``reset_view(layers=...)`` builds a new ``LayerList`` of them
    (15-30 ms on the main thread, at every view change). When the shown layers
    span the same box as all the layers (:func:`_world_box`, from their data, not
    their cached extents), ``reset_view()`` frames the same. Only public
    attributes: napari warns on the console when a plugin reads private ones.
    False (napari's own way) when anything is unexpected.
    """
    import numpy as np

    try:
        ndim = viewer.dims.ndim
        every = [_world_box(layer, ndim) for layer in viewer.layers]
        boxes = [_world_box(layer, ndim) for layer in shown]
        if not boxes or any(box is None for box in every + boxes):
            return False
        low, high = _union(boxes)
        all_low, all_high = _union(every)
        return bool(np.allclose(low, all_low) and np.allclose(high, all_high))
    except Exception:  # noqa: BLE001 - another napari: take the general way
        return False


def set_visible(layer: Any, visible: bool) -> bool:
    """Set ``layer.visible`` only when it differs; return True when it changed.

    napari's ``visible`` setter has no equality check: setting the same value
    again still refreshes the layer (when True) and rebuilds the scene graph.
    """
    if bool(layer.visible) == bool(visible):
        return False
    layer.visible = visible
    return True


def set_changed(layer: Any, **values: Any) -> None:
    """Set only the layer properties whose value differs.

    napari's setters have no equality check for most properties: setting
    ``translate`` or ``scale`` to the same value still updates the layer's dims,
    extent and thumbnail and redraws it (10-40 ms, then 40-90 ms of events, on
    the main thread).

    Parameters
    ----------
    layer : napari.layers.Layer
        The layer.
    **values
        Property names and their new values (``translate`` and ``scale`` are
        compared as arrays).
    """
    import numpy as np

    for name, value in values.items():
        current = getattr(layer, name)
        same = (np.array_equal(np.asarray(current), np.asarray(value))
                if name in ("translate", "scale") else current == value)
        if not same:
            setattr(layer, name, value)


def keep_shader_on_data_change(viewer: Any, layer: Any) -> bool:
    """Stop napari rebuilding a Labels layer's shader program at every data change.

    napari 0.9's Labels visual (``napari/_vispy/layers/labels.py``) answers every
    ``layer.events.data`` with ``_on_colormap_change``, which makes a new colormap
    object; vispy then builds the visual's shader program again (parse, compile,
    link: 40-100 ms on the main thread with software OpenGL) although the code is
    the same. Each prediction, label mask or correction shown paid it once per
    layer and per pane. The colormap only depends on the data's dtypes, which
    napari checks itself after each data change (``_on_data_change`` rebuilds the
    colormap when they differ), and on the colormap and selection, whose own
    events stay connected. Only that one redundant connection is removed.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    layer : napari.layers.Labels
        A Labels layer of the plugin, already added to ``viewer``.

    Returns
    -------
    bool
        True when the connection was removed; False when napari's canvas or the
        layer's visual cannot be found (another napari version): nothing changes.
    """
    canvas = scene_canvas(viewer)
    visuals = getattr(canvas, "layer_to_visual", None)
    visual = visuals.get(layer) if isinstance(visuals, dict) else None
    rebuild = getattr(visual, "_on_colormap_change", None)
    check = getattr(visual, "_on_data_change", None)
    if rebuild is None or check is None or not hasattr(visual, "_colormap_dtypes"):
        return False
    try:
        layer.events.data.disconnect(rebuild)
    except Exception:  # noqa: BLE001 - not connected (another napari): leave it
        return False
    return True
