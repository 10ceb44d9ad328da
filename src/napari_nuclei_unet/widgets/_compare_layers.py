"""Layers of the Compare view: prediction beside (or over) the label mask.

Two layouts of the same sample:

* **side by side** -- napari grid mode with one row of two panes and linked
  cameras: the left pane shows the image and the label mask, the right pane a
  second image layer (same array, no copy) and the prediction;
* **overlay** -- one pane: the image, the prediction, the label mask's outlines
  and an error layer colouring true-positive, false-positive and false-negative
  pixels.

The layers are created once and reused (their data replaced) when the sample
changes. The image and label-mask layers themselves belong to
:mod:`napari_nuclei_unet.widgets._layers`; this module only adds its own layers
and orders the layer list so that grid mode puts them in the right panes.
Everything here runs on the main thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import napari

from napari_nuclei_unet.widgets._layers import SAMPLE_ID_KEY

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
#: Layers per pane in side-by-side mode: image, mask (or prediction), title.
SIDE_BY_SIDE_STRIDE = 3

#: Values of the error layer.
TRUE_POSITIVE, FALSE_POSITIVE, FALSE_NEGATIVE = 1, 2, 3

#: RGBA colours of the error layer, also used for the legend in the dock.
ERROR_COLORS: dict[int, tuple[float, float, float, float]] = {
    TRUE_POSITIVE: (0.15, 0.85, 0.25, 1.0),  # green
    FALSE_POSITIVE: (1.0, 0.15, 0.85, 1.0),  # magenta
    FALSE_NEGATIVE: (1.0, 0.85, 0.0, 1.0),  # yellow
}
ERROR_NAMES = {
    TRUE_POSITIVE: "correct nucleus pixels (true positive)",
    FALSE_POSITIVE: "predicted, not in the label mask (false positive)",
    FALSE_NEGATIVE: "in the label mask, missed (false negative)",
}


def error_map(true_labels: np.ndarray, pred_labels: np.ndarray) -> np.ndarray:
    """Pixel-wise comparison of a prediction with the label mask.

    Parameters
    ----------
    true_labels, pred_labels : numpy.ndarray
        Label images (or boolean masks) of the same ``(H, W)`` shape; any value
        > 0 is foreground.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` uint8: 0 background in both, :data:`TRUE_POSITIVE` (1)
        foreground in both, :data:`FALSE_POSITIVE` (2) predicted only,
        :data:`FALSE_NEGATIVE` (3) in the label mask only.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    truth = np.asarray(true_labels) > 0
    pred = np.asarray(pred_labels) > 0
    if truth.shape != pred.shape:
        raise ValueError(
            "label mask and prediction must have the same shape, "
            f"got {truth.shape} and {pred.shape}"
        )
    out = np.zeros(truth.shape, dtype=np.uint8)
    out[truth & pred] = TRUE_POSITIVE
    out[pred & ~truth] = FALSE_POSITIVE
    out[truth & ~pred] = FALSE_NEGATIVE
    return out


def match_colors_to_truth(true_labels: np.ndarray, pred_labels: np.ndarray) -> np.ndarray:
    """Renumber predicted nuclei so that each one matching a true nucleus gets its id.

    napari colours a label by its value, so a predicted nucleus drawn with the
    same colour as a nucleus of the label mask is a match (IoU > 0.5, as for
    AP@0.5); unmatched predicted nuclei get new ids above the label mask's.

    Parameters
    ----------
    true_labels, pred_labels : numpy.ndarray
        ``(H, W)`` label images of the same shape.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` int32: ``pred_labels`` renumbered (the same objects).
    """
    from napari_nuclei_unet.core.metrics import match_instances

    pred_labels = np.asarray(pred_labels)
    match = match_instances(true_labels, pred_labels)
    if match.n_pred == 0:
        return pred_labels.astype(np.int32, copy=True)
    lookup = np.zeros(int(pred_labels.max()) + 1, dtype=np.int32)
    pairs = match.matched_ids(0.5)
    lookup[pairs[:, 1]] = pairs[:, 0]
    unmatched = match.unmatched_pred_ids(0.5)
    start = int(match.true_ids.max()) + 1 if match.n_true else 1
    lookup[unmatched] = np.arange(start, start + unmatched.size, dtype=np.int32)
    return lookup[pred_labels]


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


def grid_of(viewer: napari.Viewer):
    """The viewer's grid settings (``viewer.canvas.grid`` since napari 0.9, else ``.grid``)."""
    canvas = getattr(viewer, "canvas", None)
    grid = getattr(canvas, "grid", None)
    return grid if grid is not None else viewer.grid


def _get(viewer: napari.Viewer, name: str):
    return viewer.layers[name] if name in viewer.layers else None


def _upsert_labels(viewer: napari.Viewer, name: str, data: np.ndarray, **kwargs):
    """Return the Labels layer ``name`` showing ``data``, created on first use."""
    layer = _get(viewer, name)
    if layer is None:
        return viewer.add_labels(data, name=name, **kwargs)
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


def _upsert_title(viewer: napari.Viewer, name: str, image_layer):
    """A one-point Points layer whose text titles a pane ("label mask" / "prediction")."""
    layer = _get(viewer, name)
    if layer is None:
        layer = viewer.add_points(
            np.zeros((1, 2)), name=name, size=1, face_color="transparent",
            border_width=0, border_color="transparent",
            features={"title": [PANE_TITLES[name]]},
            text={"string": "{title}", "anchor": "upper_left", "size": 13,
                  "color": "white"},
        )
        layer.editable = False
        layer.metadata["nuclei_unet_title"] = True
    _set(layer, translate=image_layer.translate, scale=image_layer.scale)
    return layer


def _set(layer, **values) -> None:
    """Set the layer properties that differ (only those).

    Every set emits napari events (layer list repaint, thumbnail, grid layout),
    which add up to long main-thread stalls.
    """
    for name, value in values.items():
        current = getattr(layer, name)
        same = (np.array_equal(np.asarray(current), np.asarray(value))
                if name in ("translate", "scale") else current == value)
        if not same:
            setattr(layer, name, value)


def _move_to_bottom(viewer: napari.Viewer, names: list[str]) -> None:
    """Put the named layers at list positions 0, 1, ... in that order (0 is drawn first)."""
    for target, name in enumerate(names):
        index = viewer.layers.index(name)
        if index != target:
            viewer.layers.move(index, target)


def show_comparison(
    viewer: napari.Viewer,
    *,
    image_layer,
    truth_layer,
    pred_labels: np.ndarray,
    true_labels: np.ndarray | None,
    mode: str = SIDE_BY_SIDE,
    sample_id: str | None = None,
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
    pred_labels = np.asarray(pred_labels)
    has_truth = true_labels is not None
    if not has_truth:
        true_labels = np.zeros(pred_labels.shape, dtype=np.int32)

    created = PREDICTION_LAYER not in viewer.layers
    shown_pred = match_colors_to_truth(true_labels, pred_labels) if has_truth else pred_labels
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
            viewer, ERROR_LAYER, error_map(true_labels, pred_labels), colormap=error_colormap()
        )
    _set(contour, contour=1)
    for layer in (pred_image, prediction, contour, errors):
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
        for layer in layers.values():
            _set(layer, visible=False)
        return layers

    if mode == SIDE_BY_SIDE:
        # grid mode groups the layer list in runs of ``stride`` layers, hidden ones
        # included, and fills the panes left to right: [image, label mask] left,
        # [image copy, prediction] right; the overlay layers, hidden, go last.
        spacer = truth_layer.name if truth_layer is not None else TRUTH_CONTOUR_LAYER
        titles = [_upsert_title(viewer, name, image_layer) for name in PANE_TITLES]
        _move_to_bottom(
            viewer, [image_layer.name, spacer, TITLE_LEFT_LAYER,
                     PREDICTION_IMAGE_LAYER, PREDICTION_LAYER, TITLE_RIGHT_LAYER]
        )
        for layer in (image_layer, pred_image, prediction, *titles):
            _set(layer, visible=True)
        if truth_layer is not None:
            _set(truth_layer, visible=has_truth)
        _set(prediction, opacity=0.6)
        _set(contour, visible=False)
        _set(errors, visible=False)
        grid = grid_of(viewer)
        was_enabled = grid.enabled
        if grid.stride != SIDE_BY_SIDE_STRIDE:
            grid.stride = SIDE_BY_SIDE_STRIDE
        if tuple(grid.shape) != (1, 2):
            grid.shape = (1, 2)
        if not was_enabled:
            grid.enabled = True
        _guard_panes(viewer)
        if not was_enabled:
            viewer.reset_view()  # frame both panes
    else:
        _move_to_bottom(
            viewer, [image_layer.name, PREDICTION_LAYER, ERROR_LAYER, TRUTH_CONTOUR_LAYER]
        )
        grid = grid_of(viewer)
        if grid.enabled:
            grid.enabled = False
            viewer.reset_view()  # the camera was framing two panes
        _set(pred_image, visible=False)
        for name in PANE_TITLES:
            if name in viewer.layers:
                _set(viewer.layers[name], visible=False)
        if truth_layer is not None:
            _set(truth_layer, visible=False)
        _set(image_layer, visible=True)
        _set(prediction, visible=True, opacity=0.35)
        _set(errors, visible=has_truth, opacity=0.5)
        _set(contour, visible=has_truth)
    if created:  # show the prediction's controls rather than the last layer added
        viewer.layers.selection.active = prediction
    return layers


def correcting(viewer: napari.Viewer, sample_id: str | None) -> bool:
    """True while the Retrain dock's correction of ``sample_id`` is shown (one pane)."""
    layer = _get(viewer, PLUGIN_LAYERS[0])
    return (sample_id is not None and layer is not None and bool(layer.visible)
            and layer.metadata.get(SAMPLE_ID_KEY) == sample_id)


def side_by_side_active(viewer: napari.Viewer) -> bool:
    """True while the two panes (label mask | prediction) are shown."""
    grid = grid_of(viewer)
    return bool(grid.enabled) and PREDICTION_LAYER in viewer.layers and (
        TITLE_LEFT_LAYER in viewer.layers and viewer.layers[TITLE_LEFT_LAYER].visible
    )


def _guard_panes(viewer: napari.Viewer) -> None:
    """Keep the two panes when the user adds a layer (e.g. drops a zip) in side by side.

    napari's grid puts every run of :data:`SIDE_BY_SIDE_STRIDE` layers in a pane
    and wraps extra runs into the first panes; a new visible layer would land over
    the label mask. It is hidden instead, and the user is told how to see it.
    """
    from napari_nuclei_unet.widgets._session import session_for

    session = session_for(viewer)
    if getattr(session, "panes_guarded", False):
        return

    def on_inserted(event) -> None:
        layer = event.value
        from napari_nuclei_unet.widgets._layers import IMAGE_LAYER, LABELS_LAYER

        # the plugin's own layers (the Retrain dock's correction included) place themselves
        if layer.name in {*COMPARE_LAYERS, IMAGE_LAYER, LABELS_LAYER, *PLUGIN_LAYERS}:
            return
        if not side_by_side_active(viewer) or not layer.visible:
            return
        layer.visible = False
        from napari_nuclei_unet.widgets._workers import notify

        notify(f"Layer “{layer.name[:24]}” is hidden so that side by side keeps the label "
               "mask and the prediction in their panes. Switch Compare to overlay (or tick "
               "the layer's eye) to see it.")

    viewer.layers.events.inserted.connect(on_inserted)
    session.panes_guarded = True


def shown_prediction_id(viewer: napari.Viewer) -> str | None:
    """Return the id of the sample whose prediction is shown, or None."""
    layer = _get(viewer, PREDICTION_LAYER)
    return None if layer is None else layer.metadata.get(SAMPLE_ID_KEY)


def clear_comparison(viewer: napari.Viewer) -> None:
    """Hide the compare layers and leave grid mode (e.g. no prediction for this sample).

    The layers are hidden, emptied and kept, not removed: removing them and adding
    them back when the next prediction shows (after every model change) made
    napari destroy and rebuild their visuals, layer controls and text glyphs on
    the main thread, a stall of seconds. A hidden layer is not redrawn, so
    emptying it costs no texture upload; :func:`shown_prediction_id` is None.
    """
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
    grid = grid_of(viewer)
    if grid.enabled:
        grid.enabled = False
        viewer.reset_view()
