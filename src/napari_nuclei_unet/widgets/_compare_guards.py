"""How the Compare view answers what the user does to its layers.

A layer the user adds in side by side is hidden, not drawn over a pane
(:func:`guard_panes`); segmenting the user's own image leaves side by side
(:func:`step_aside_for`); the compare layers cannot be painted, and the user who
selects one is told where a prediction is corrected (:func:`read_only`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari_nuclei_unet.widgets._compare_layers import (
    COMPARE_LAYERS,
    ERROR_LAYER,
    PLUGIN_LAYERS,
    PREDICTION_LAYER,
    SELECTING_KEY,
    TRUTH_CONTOUR_LAYER,
    _get,
    _set,
    clear_comparison,
    side_by_side_active,
)
from napari_nuclei_unet.widgets._layers import SAMPLE_ID_KEY
from napari_nuclei_unet.widgets._scene import frame_shown

if TYPE_CHECKING:
    import napari


def guard_panes(viewer: napari.Viewer) -> None:
    """Keep the two panes when the user adds a layer (e.g. drops a zip) in side by side.

    A new layer is drawn at its own place, on top: a dropped image would cover the
    label-mask pane. It is hidden instead, and the user is told how to see it. With no
    Compare view open (the panel closed), side by side steps aside for it instead: an
    image opened then was hidden, with advice about a Compare step no longer there
    (GUI check h_gui36, M1).
    """
    from napari_nuclei_unet.widgets._session import session_for

    session = session_for(viewer)
    if session.panes_guarded:
        return

    def on_inserted(event) -> None:
        layer = event.value
        from napari_nuclei_unet.widgets._layers import IMAGE_LAYER, LABELS_LAYER

        # the plugin's own layers (the Retrain dock's correction included) place themselves
        if layer.name in {*COMPARE_LAYERS, IMAGE_LAYER, LABELS_LAYER, *PLUGIN_LAYERS}:
            return
        if not side_by_side_active(viewer) or not layer.visible:
            return
        if not session.compare_views:
            step_aside_for(viewer, layer)
            return
        layer.visible = False
        from napari_nuclei_unet.widgets._workers import notify

        notify(f"Layer “{layer.name[:24]}” is hidden so that side by side keeps the label "
               "mask and the prediction in their panes. Switch Compare to overlay (or tick "
               "the layer's eye) to see it.")

    viewer.layers.events.inserted.connect(on_inserted)
    session.panes_guarded = True


def step_aside_for(viewer: napari.Viewer, layer) -> bool:
    """Leave side by side for the user's own ``layer`` (the Segment dock's image).

    In side by side a layer the user adds is hidden (:func:`guard_panes`): the Segment
    dock's image and its result were, and the canvas kept showing a dataset's sample
    while the dock said "Segmentation done" (GUI check h_gui9). Segmenting is asking to
    see that image: the sample and its panes are hidden (choosing a sample again shows
    them, and hides the user's layers: ``_layers.hide_own_layers``), ``layer`` is shown
    and framed. Returns True when side by side was left.
    """
    from napari_nuclei_unet.widgets._layers import IMAGE_LAYER, LABELS_LAYER, STEPPED_ASIDE_KEY

    if not side_by_side_active(viewer):
        return False
    clear_comparison(viewer)
    hidden = []
    for name in (IMAGE_LAYER, LABELS_LAYER):
        sample = _get(viewer, name)
        if sample is not None and sample.visible:
            _set(sample, visible=False)
            sample.metadata[STEPPED_ASIDE_KEY] = True  # the next sample shown shows it
            hidden.append(sample.metadata.get(SAMPLE_ID_KEY) or "")
    if layer is not None and layer in viewer.layers:
        layer.visible = True
    frame_shown(viewer)
    if hidden:  # how to get it back, as hide_own_layers says for the user's layers
        from napari_nuclei_unet.widgets._layers import short_id
        from napari_nuclei_unet.widgets._workers import notify

        sample_id = next((i for i in hidden if i), "")
        notify(f"The dataset's sample{f' {short_id(sample_id)}' if sample_id else ''} is "
               "hidden so that your image shows; click its row in the table of the Data "
               "step (Plugins menu, Nuclei U-Net) to see it again.")
    return True


def read_only(viewer: napari.Viewer, layers: tuple) -> None:
    """The compare layers are views, drawn again for every image and threshold.

    They could be painted, and the strokes were lost at the next image without a word
    while the score shown stayed the model's (GUI check h_gui47, H2). The user who
    selects one is told once where a prediction is corrected.
    """
    for layer in layers:
        if layer.editable:
            layer.editable = False
    from napari_nuclei_unet.widgets._session import session_for

    session = session_for(viewer)
    if session.read_only_hint:
        return
    session.read_only_hint = "waiting"

    def on_active(event=None) -> None:
        layer = viewer.layers.selection.active
        if (session.read_only_hint != "waiting" or layer is None
                or layer.name not in (PREDICTION_LAYER, TRUTH_CONTOUR_LAYER, ERROR_LAYER)
                or layer.metadata.get(SELECTING_KEY)):
            return
        session.read_only_hint = "said"
        from napari_nuclei_unet.widgets._workers import notify

        notify(f"“{layer.name}” shows the model's result and is drawn again for every "
               "image and threshold, so it cannot be painted on. To correct a prediction, "
               "click 'Edit prediction as labels' in Retrain: it copies the prediction into a "
               "layer you paint on, kept as a draft until you add it to the training set.")

    viewer.layers.selection.events.active.connect(on_active)
