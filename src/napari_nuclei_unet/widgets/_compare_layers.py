"""Layers of the Compare view: prediction beside (or over) the label mask.

Two layouts of the same sample:

* **side by side** -- two panes in the one view of the canvas: the left pane shows
  the image and the label mask, the right pane a second image layer (same array,
  no copy) and the prediction, translated to the right of the left pane by the
  image's width and a small gap (:func:`place_prediction_pane`);
* **overlay** -- one pane: the image, the prediction, the label mask's outlines
  and an error layer colouring true-positive, false-positive and false-negative
  pixels.

The layers are created once and reused (their data replaced) when the sample
changes. The image and label-mask layers themselves belong to
:mod:`napari_nuclei_unet.widgets._layers`; this module only adds its own layers.

The panes are not napari's grid mode: turning the grid on or off makes napari move
every layer's visual to another view box, and vispy then builds each visible
visual's shader program again (8-10 builds, 40-100 ms each with software OpenGL,
at every switch between one pane and two). A switch here only changes the
translation, visibility and opacity of a few layers. The plugin never turns the
grid on; when the user does, the panes are not translated (the grid separates
the layers itself). Everything here runs on the main thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import napari

# the pure-numpy half, kept importable from here (the docks and tests use these names)
from napari_nuclei_unet.widgets._compare_arrays import (  # noqa: F401
    ERROR_COLORS,
    ERROR_NAMES,
    FALSE_NEGATIVE,
    FALSE_POSITIVE,
    TRUE_POSITIVE,
    comparison_arrays,
    error_map,
    match_colors_to_truth,
)
from napari_nuclei_unet.widgets._layers import PLACEHOLDER_KEY, SAMPLE_ID_KEY
from napari_nuclei_unet.widgets._scene import (
    frame_shown,
    grid_of,
    keep_shader_on_data_change,
    one_dims_update,
    one_scene_rebuild,
    set_changed,
)

SIDE_BY_SIDE = "side by side"
OVERLAY = "overlay"
MODES = (SIDE_BY_SIDE, OVERLAY)

#: Second image layer, shown under the prediction in the right pane of side-by-side mode.
PREDICTION_IMAGE_LAYER = "image (prediction pane)"
#: The predicted nuclei (one label per nucleus).
PREDICTION_LAYER = "prediction"
#: Outlines of the label mask (overlay mode).
TRUTH_CONTOUR_LAYER = "label mask (outlines)"
#: Pixel errors of the prediction against the label mask (overlay mode).
ERROR_LAYER = "errors (TP / FP / FN)"

#: Titles drawn on the canvas over the two panes of side-by-side mode (Points text).
TITLE_LEFT_LAYER = "pane title: label mask"
TITLE_RIGHT_LAYER = "pane title: prediction"
PANE_TITLES = {TITLE_LEFT_LAYER: "label mask", TITLE_RIGHT_LAYER: "prediction"}

COMPARE_LAYERS = (PREDICTION_IMAGE_LAYER, PREDICTION_LAYER, TRUTH_CONTOUR_LAYER, ERROR_LAYER,
                  TITLE_LEFT_LAYER, TITLE_RIGHT_LAYER)
#: Other layers the plugin's docks add and place themselves (never hidden by the pane guard).
PLUGIN_LAYERS = ("corrected mask",)  # widgets._retrain_editing.CORRECTION_LAYER
#: Layers moved to the right pane in side-by-side mode (translated, see
#: :func:`place_prediction_pane`).
PREDICTION_PANE_LAYERS = (PREDICTION_IMAGE_LAYER, PREDICTION_LAYER, TITLE_RIGHT_LAYER)
#: Gap between the two panes, as a fraction of the image width (at least 2 pixels).
PANE_GAP = 0.04

#: Prediction-layer metadata key: the mode shown ("side by side" or "overlay").
MODE_KEY = "nuclei_unet_compare_mode"
#: Set while the plugin itself selects the prediction (the user is told nothing then).
SELECTING_KEY = "nuclei_unet_selected_by_plugin"

def error_colormap():
    """The fixed colormap of the error layer (napari ``DirectLabelColormap``)."""
    from napari.utils.colormaps import DirectLabelColormap

    colors = {0: (0.0, 0.0, 0.0, 0.0), None: (0.0, 0.0, 0.0, 0.0)}
    colors.update(ERROR_COLORS)
    return DirectLabelColormap(color_dict=colors)


def _truth_outline_colormap():
    """Every nucleus of the label mask outlined in the same colour (white)."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(
        color_dict={0: (0.0, 0.0, 0.0, 0.0), None: (1.0, 1.0, 1.0, 1.0)}
    )


def pane_offset(image_layer) -> np.ndarray:
    """World translation of the prediction pane from the label-mask pane.

    Parameters
    ----------
    image_layer : napari.layers.Image
        The sample's image layer (its width and scale set the offset).

    Returns
    -------
    numpy.ndarray
        One value per layer dimension: 0, except the last (x): the image width
        plus a gap of :data:`PANE_GAP` of it (at least 2 pixels), in world units.
    """
    scale = np.asarray(image_layer.scale, dtype=float)
    width = int(image_layer.data.shape[image_layer.ndim - 1])  # (H, W) or (H, W, C)
    offset = np.zeros(scale.shape)
    offset[-1] = (width + max(2, round(PANE_GAP * width))) * scale[-1]
    return offset


def place_prediction_pane(viewer: napari.Viewer, image_layer, *, beside: bool) -> bool:
    """Translate the prediction pane's layers beside the image (or back over it).

    Only :data:`PREDICTION_PANE_LAYERS` move, and only when their place differs
    (each translate set redraws the layer). With napari's grid turned on by the
    user, the layers stay over the image: the grid puts them in panes itself.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    image_layer : napari.layers.Image or None
        The sample's image layer; None puts the layers at the origin.
    beside : bool
        True for side by side, False for one pane (overlay, correction, nothing shown).

    Returns
    -------
    bool
        True when a layer moved (the camera should then frame the view again).
    """
    if image_layer is not None:
        base = np.asarray(image_layer.translate, dtype=float)
        scale = np.asarray(image_layer.scale, dtype=float)
        if beside and not grid_of(viewer).enabled:
            base = base + pane_offset(image_layer)
    moved = False
    layers = [_get(viewer, name) for name in PREDICTION_PANE_LAYERS]
    layers = [layer for layer in layers if layer is not None]
    with one_dims_update(viewer, layers):  # the viewer's dims once, not per layer
        for layer in layers:
            if image_layer is None:
                base = np.zeros(layer.ndim)
                scale = np.asarray(layer.scale, dtype=float)
            before = np.array(layer.translate, dtype=float)
            _set(layer, scale=scale, translate=base)
            moved |= not np.array_equal(before, np.asarray(layer.translate, dtype=float))
    return moved


def _get(viewer: napari.Viewer, name: str):
    return viewer.layers[name] if name in viewer.layers else None


def _upsert_labels(viewer: napari.Viewer, name: str, data: np.ndarray, **kwargs):
    """Return the Labels layer ``name`` showing ``data``, created on first use."""
    layer = _get(viewer, name)
    if layer is None:
        layer = viewer.add_labels(data, name=name, **kwargs)
        keep_shader_on_data_change(viewer, layer)  # data changes need no shader build
        return layer
    layer.data = data
    return layer


def _upsert_prediction_image(viewer: napari.Viewer, image_layer):
    """The second image layer of side-by-side mode, sharing ``image_layer``'s array."""
    layer = _get(viewer, PREDICTION_IMAGE_LAYER)
    if layer is None:
        layer = viewer.add_image(
            image_layer.data,
            name=PREDICTION_IMAGE_LAYER,
            rgb=image_layer.rgb,
            colormap=image_layer.colormap,
            contrast_limits=image_layer.contrast_limits,
            gamma=image_layer.gamma,
        )
    else:
        if layer.data is not image_layer.data:
            layer.data = image_layer.data
        layer.contrast_limits = image_layer.contrast_limits
        layer.gamma = image_layer.gamma
    return layer


def _add_title(viewer: napari.Viewer, name: str, **kwargs):
    """A one-point Points layer whose text titles a pane ("label mask" / "prediction")."""
    layer = viewer.add_points(
        np.zeros((1, 2)), name=name, size=1, face_color="transparent",
        border_width=0, border_color="transparent",
        features={"title": [PANE_TITLES[name]]},
        text={"string": "{title}", "anchor": "upper_left", "size": 13,
              "color": "white"}, **kwargs,
    )
    layer.editable = False
    layer.metadata["nuclei_unet_title"] = True
    return layer


def _upsert_title(viewer: napari.Viewer, name: str, image_layer):
    """The title layer ``name``, created on first use.

    The left title is placed over ``image_layer``; the right one moves with the
    prediction pane (:func:`place_prediction_pane`).
    """
    layer = _get(viewer, name)
    if layer is None:
        layer = _add_title(viewer, name)
    if name == TITLE_LEFT_LAYER:
        _set(layer, translate=image_layer.translate, scale=image_layer.scale)
    return layer


def _set(layer, **values) -> None:
    """Set the layer properties that differ (only those).

    Every set emits napari events (layer list repaint, thumbnail, redraw), which
    add up to long main-thread stalls.
    """
    set_changed(layer, **values)


def _move_to_bottom(viewer: napari.Viewer, names: list[str]) -> None:
    """Put the named layers at list positions 0, 1, ... in that order (0 is drawn first).

    Names of layers that do not exist are skipped. Layers already in place are not
    moved: every move makes napari rebuild its scene graph and redraw the layer list.
    """
    target = 0
    for name in dict.fromkeys(names):  # each name once
        if name not in viewer.layers:
            continue
        index = viewer.layers.index(name)
        if index != target:
            viewer.layers.move(index, target)
        target += 1


def layer_order(image_name: str, spacer: str) -> list[str]:
    """The one order of the plugin's layers, the same in both modes (no moves on a switch).

    Side by side: [image, label mask, title] make the left pane, [image copy,
    prediction, title] (translated) the right one; the overlay layers are hidden.
    Overlay: with the label mask, the titles and the image copy hidden, the image
    is drawn first, then the prediction, the errors and the outlines of the label
    mask on top.
    """
    return [image_name, spacer, TITLE_LEFT_LAYER, PREDICTION_IMAGE_LAYER, PREDICTION_LAYER,
            TITLE_RIGHT_LAYER, ERROR_LAYER, TRUTH_CONTOUR_LAYER]


def show_comparison(
    viewer: napari.Viewer,
    *,
    image_layer,
    truth_layer,
    pred_labels: np.ndarray,
    true_labels: np.ndarray | None,
    mode: str = SIDE_BY_SIDE,
    sample_id: str | None = None,
    arrays: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, object]:
    """Show a prediction beside or over the label mask.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    image_layer : napari.layers.Image
        The sample's image layer (from ``widgets._layers.show_sample``).
    truth_layer : napari.layers.Labels or None
        The sample's label-mask layer; None when the sample has no label mask.
    pred_labels : numpy.ndarray
        ``(H, W)`` int32 predicted nuclei (0 = background). Shown renumbered by
        :func:`match_colors_to_truth`, so matched nuclei share their colour with
        the label mask.
    true_labels : numpy.ndarray or None
        The label mask as an array, or None when there is none (the outline and
        error layers are then empty and hidden).
    mode : {"side by side", "overlay"}
        Layout, see the module docstring.
    sample_id : str, optional
        Stored in the compare layers' metadata (:data:`SAMPLE_ID_KEY`), so other
        widgets can tell which sample the prediction shown belongs to.
    arrays : tuple of numpy.ndarray, optional
        :func:`comparison_arrays` of these labels, computed in a worker; computed
        here when omitted.

    Returns
    -------
    dict
        The four compare layers by name.

    Raises
    ------
    ValueError
        If ``mode`` is unknown.
    """
    if mode not in MODES:
        raise ValueError(f"unknown compare mode {mode!r}: expected one of {', '.join(MODES)}")
    from napari_nuclei_unet.widgets import _compare_guards as guards
    pred_labels = np.asarray(pred_labels)
    has_truth = true_labels is not None
    if not has_truth:
        true_labels = np.zeros(pred_labels.shape, dtype=np.int32)

    created = PREDICTION_LAYER not in viewer.layers or bool(
        viewer.layers[PREDICTION_LAYER].metadata.pop(PLACEHOLDER_KEY, False))
    if arrays is None:
        arrays = comparison_arrays(true_labels if has_truth else None, pred_labels)
    shown_pred, error_data = arrays
    pred_image = _upsert_prediction_image(viewer, image_layer)
    prediction = _upsert_labels(viewer, PREDICTION_LAYER, shown_pred)
    # the overlay layers are hidden in side by side: their data waits for overlay mode
    # (every data change costs a thumbnail and a texture upload on the main thread)
    overlay_ready = mode == SIDE_BY_SIDE and _get(viewer, ERROR_LAYER) is not None and (
        _get(viewer, TRUTH_CONTOUR_LAYER) is not None)
    if overlay_ready:
        contour, errors = _get(viewer, TRUTH_CONTOUR_LAYER), _get(viewer, ERROR_LAYER)
    else:
        contour = _upsert_labels(
            viewer, TRUTH_CONTOUR_LAYER, true_labels, colormap=_truth_outline_colormap()
        )
        errors = _upsert_labels(
            viewer, ERROR_LAYER, error_data, colormap=error_colormap()
        )
    _set(contour, contour=1)
    guards.read_only(viewer, (prediction, contour, errors))
    for layer in (pred_image, prediction, contour, errors):
        if layer in (contour, errors):  # the prediction pane's layers: placed below
            _set(layer, translate=image_layer.translate, scale=image_layer.scale)
        if layer in (pred_image, prediction) or not overlay_ready:
            layer.metadata[SAMPLE_ID_KEY] = sample_id
    if truth_layer is not None and truth_layer.name not in viewer.layers:
        truth_layer = None
    layers = {
        PREDICTION_IMAGE_LAYER: pred_image,
        PREDICTION_LAYER: prediction,
        TRUTH_CONTOUR_LAYER: contour,
        ERROR_LAYER: errors,
    }
    if correcting(viewer, sample_id):
        # the Retrain dock's one-pane editing view of this image stays: the compare
        # layers only get the new data, hidden (not redrawn). Switching to the panes
        # and back after every prediction of a round cost shader builds and redraws
        # on the main thread, and flashed the view under the user's brush.
        with one_scene_rebuild(viewer):
            for layer in layers.values():
                _set(layer, visible=False)
            moved = place_prediction_pane(viewer, image_layer, beside=False)
        if moved:
            frame_shown(viewer)  # the camera frames the one pane
        return layers

    spacer = truth_layer.name if truth_layer is not None else TRUTH_CONTOUR_LAYER
    with one_scene_rebuild(viewer):
        # napari rebuilds its scene graph after each visibility change (~50 ms): only
        # what differs is set, and the rebuilds are made once at the end of the block
        # (widgets._scene; not viewer.layers.batched_update(), which ends with a
        # gc.collect() and a GL finish, about 1 s in this process).
        # titles first: one made here (the warm-up had not made it yet) is then put in
        # its place with the others, not left on top of the list
        titles = ([_upsert_title(viewer, name, image_layer) for name in PANE_TITLES]
                  if mode == SIDE_BY_SIDE else [])
        _move_to_bottom(viewer, layer_order(image_layer.name, spacer))
        if mode == SIDE_BY_SIDE:
            for layer in (image_layer, pred_image, prediction, *titles):
                layer.metadata.pop(PLACEHOLDER_KEY, None)  # in use: the warm-up leaves it
                _set(layer, visible=True)
            if truth_layer is not None:
                _set(truth_layer, visible=has_truth)
            _set(prediction, opacity=0.6)
            _set(contour, visible=False)
            _set(errors, visible=False)
        else:
            _set(pred_image, visible=False)
            for name in PANE_TITLES:
                if name in viewer.layers:
                    _set(viewer.layers[name], visible=False)
            if truth_layer is not None:
                _set(truth_layer, visible=False)
            for layer in (errors, contour):
                layer.metadata.pop(PLACEHOLDER_KEY, None)  # in use: the warm-up leaves it
            _set(image_layer, visible=True)
            _set(prediction, visible=True, opacity=0.35)
            _set(errors, visible=has_truth, opacity=0.5)
            _set(contour, visible=has_truth)
        moved = place_prediction_pane(viewer, image_layer, beside=mode == SIDE_BY_SIDE)
        if mode == SIDE_BY_SIDE:
            guards.guard_panes(viewer)
    if moved:
        frame_shown(viewer)  # frame both panes, or the one pane
    prediction.metadata[MODE_KEY] = mode
    if created:  # show the prediction's controls rather than the last layer added
        prediction.metadata[SELECTING_KEY] = True
        viewer.layers.selection.active = prediction
        prediction.metadata.pop(SELECTING_KEY, None)
    return layers


def leave_correction_view(viewer: napari.Viewer) -> bool:
    """Hide the Retrain dock's corrected mask, so that a comparison asked for is shown.

    Its edits stay in the layer (the Retrain dock still holds them and keeps a draft);
    ticking its eye again shows it. Returns whether it was shown.
    """
    layer = _get(viewer, PLUGIN_LAYERS[0])
    if layer is None or not layer.visible:
        return False
    layer.visible = False
    return True


def correcting(viewer: napari.Viewer, sample_id: str | None) -> bool:
    """True while the Retrain dock's correction of ``sample_id`` is shown (one pane)."""
    layer = _get(viewer, PLUGIN_LAYERS[0])
    return (sample_id is not None and layer is not None and bool(layer.visible)
            and layer.metadata.get(SAMPLE_ID_KEY) == sample_id)


def side_by_side_active(viewer: napari.Viewer) -> bool:
    """True while the two panes (label mask | prediction) are shown."""
    return PREDICTION_LAYER in viewer.layers and (
        TITLE_LEFT_LAYER in viewer.layers and viewer.layers[TITLE_LEFT_LAYER].visible
    )


def shown_mode(viewer: napari.Viewer) -> str:
    """The mode the prediction was last shown in (side by side before any)."""
    layer = _get(viewer, PREDICTION_LAYER)
    mode = None if layer is None else layer.metadata.get(MODE_KEY)
    return mode if mode in MODES else SIDE_BY_SIDE


def shown_prediction_id(viewer: napari.Viewer) -> str | None:
    """Return the id of the sample whose prediction is shown, or None."""
    layer = _get(viewer, PREDICTION_LAYER)
    return None if layer is None else layer.metadata.get(SAMPLE_ID_KEY)


def clear_comparison(viewer: napari.Viewer) -> None:
    """Hide the compare layers, back over the image (e.g. no prediction for this sample).

    The layers are hidden, emptied and kept, not removed: removing them and adding
    them back when the next prediction shows (after every model change) made
    napari destroy and rebuild their visuals, layer controls and text glyphs on
    the main thread, a stall of seconds. A hidden layer is not redrawn, so
    emptying it costs no texture upload; :func:`shown_prediction_id` is None.
    """
    from napari_nuclei_unet.widgets._layers import IMAGE_LAYER

    with one_scene_rebuild(viewer):
        for name in COMPARE_LAYERS:
            layer = _get(viewer, name)
            if layer is None:
                continue
            _set(layer, visible=False)
            layer.metadata[SAMPLE_ID_KEY] = None
            if name in (PREDICTION_LAYER, TRUTH_CONTOUR_LAYER, ERROR_LAYER):
                data = layer.data
                if np.any(data):  # no stale nuclei behind the eye button
                    layer.data = np.zeros(data.shape, dtype=data.dtype)
        moved = place_prediction_pane(viewer, _get(viewer, IMAGE_LAYER), beside=False)
    if moved:
        frame_shown(viewer)  # the camera frames the one pane left


def placeholder_makers(viewer: napari.Viewer) -> list:
    """Callables that each add one of the plugin's layers, hidden and empty, in its place.

    napari builds a layer's visual, controls and layer-list row on the main thread
    when the layer is added (tens to hundreds of ms each; the first prediction shown
    added six layers at once and froze the window for over a second). The workflow
    panel runs these one per event-loop turn while the window is idle, in the order
    of :func:`layer_order`, so that showing a sample or a prediction later only
    replaces data and never adds, removes or moves a layer. Layers that exist already
    are left alone.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.

    Returns
    -------
    list of callable
        Each takes no argument and returns the layer it made (or None).
    """
    from napari_nuclei_unet.widgets._layers import IMAGE_LAYER, LABELS_LAYER

    small = (8, 8)

    # marked from the start: the layer-list's "inserted" handlers (layer pickers) see it
    marked = {PLACEHOLDER_KEY: True}

    def image(name: str):
        return viewer.add_image(np.zeros((*small, 3), np.uint8), name=name, rgb=True,
                                visible=False, metadata=dict(marked))

    def labels(name: str, dtype=np.int32, **kwargs):
        layer = viewer.add_labels(np.zeros(small, dtype), name=name, visible=False,
                                  metadata=dict(marked), **kwargs)
        keep_shader_on_data_change(viewer, layer)  # data changes need no shader build
        return layer

    makers = {
        IMAGE_LAYER: lambda: image(IMAGE_LAYER),
        LABELS_LAYER: lambda: labels(LABELS_LAYER, opacity=0.5),
        TITLE_LEFT_LAYER: lambda: _add_title(viewer, TITLE_LEFT_LAYER, visible=False),
        PREDICTION_IMAGE_LAYER: lambda: image(PREDICTION_IMAGE_LAYER),
        PREDICTION_LAYER: lambda: labels(PREDICTION_LAYER, opacity=0.6),
        TITLE_RIGHT_LAYER: lambda: _add_title(viewer, TITLE_RIGHT_LAYER, visible=False),
        ERROR_LAYER: lambda: labels(ERROR_LAYER, np.uint8, colormap=error_colormap()),
        TRUTH_CONTOUR_LAYER: lambda: labels(TRUTH_CONTOUR_LAYER,
                                            colormap=_truth_outline_colormap()),
        PLUGIN_LAYERS[0]: lambda: labels(PLUGIN_LAYERS[0], opacity=0.6),
    }

    def maker(name: str):
        def make():
            if name in viewer.layers:
                return None
            layer = makers[name]()
            layer.metadata[PLACEHOLDER_KEY] = True
            return layer
        return make

    return [maker(name) for name in makers]
