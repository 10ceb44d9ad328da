"""Viewer side of correcting a mask: the editable layer, paint mode, the key hint.

Two ways to start a correction of the shown image:

* **from the prediction** -- :func:`promote_prediction` copies the predicted
  nuclei into a new Labels layer (:data:`CORRECTION_LAYER`), shows it over the
  image alone (one pane, compare layers hidden), selects it and switches napari
  to paint mode;
* **from the label mask** -- :func:`edit_label_mask` selects the label-mask layer
  (``widgets._layers.LABELS_LAYER``) in paint mode.

:class:`EditState` remembers which layer holds the correction, for which sample,
and what it looked like when last saved, so the dock can tell whether there are
unsaved edits (it compares the arrays, so programmatic edits count too).
Everything here runs on the main thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_nuclei_unet.widgets._layers import (
    IMAGE_LAYER,
    LABELS_LAYER,
    SAMPLE_ID_KEY,
    find_layer,
)
from napari_nuclei_unet.widgets._scene import frame_shown

if TYPE_CHECKING:
    import napari
    from napari.layers import Labels

#: The Labels layer holding a prediction promoted to an editable mask.
CORRECTION_LAYER = "corrected mask"

#: Delay (ms) before the hidden prediction pane moves back over the image after the
#: correction view is shown: after the click's repaint (:func:`_pane_back`).
PANE_BACK_MS = 100

#: napari 0.9's Labels shortcuts (``napari.utils.shortcuts.default_shortcuts``).
KEY_HINT = (
    "<b>P</b> paint · <b>F</b> fill · <b>E</b> erase · <b>M</b> new nucleus · "
    "<b>[</b> <b>]</b> brush size · <b>L</b> pick a nucleus · <b>Z</b> pan/zoom · "
    "<b>Ctrl+Z</b> undo. Click a layer's eye to hide it."
)


@dataclass
class EditState:
    """The correction in progress.

    Attributes
    ----------
    sample : Sample
        The image being corrected (kept even when the viewer moves to another one).
    layer : napari.layers.Labels
        The layer painted on.
    labels : numpy.ndarray
        The array painted on (``layer.data`` when editing started; it stays the
        painted array after the layer moves on to another sample).
    start : str
        ``"prediction"`` or ``"label mask"`` (``_retrain_project.START_*``).
    start_labels : numpy.ndarray
        A copy of the labels editing started from (tells a prediction accepted as
        is from an edited one).
    baseline : numpy.ndarray or None
        A copy of the labels as last added to the training set, or as they were
        when editing started; None when they were never saved there (a draft).
    saved : bool
        Whether ``baseline`` is what the training set holds (added, or a saved
        correction shown again to look at or fix).
    """

    sample: Any
    layer: Any
    labels: np.ndarray
    start: str
    start_labels: np.ndarray
    baseline: np.ndarray | None
    saved: bool = False

    def shows_sample(self) -> bool:
        """Whether the layer still shows this correction's sample."""
        return self.layer.metadata.get(SAMPLE_ID_KEY) == self.sample.id

    def current_labels(self) -> np.ndarray:
        """The labels as painted now (the layer's data while it shows this sample)."""
        return np.asarray(self.layer.data) if self.shows_sample() else self.labels

    def is_dirty(self) -> bool:
        """Whether the labels differ from what was last added to the training set."""
        if self.baseline is None:
            return True
        labels = self.current_labels()
        return labels.shape != self.baseline.shape or not np.array_equal(labels, self.baseline)

    def was_edited(self) -> bool:
        """Whether the labels differ from those editing started from."""
        labels = self.current_labels()
        return labels.shape != self.start_labels.shape or not np.array_equal(
            labels, self.start_labels
        )

    def mark_added(self) -> None:
        """Take the current labels as the state saved in the training set."""
        self.baseline = np.array(self.current_labels(), copy=True)
        self.saved = True


def _paint_mode(viewer: napari.Viewer, layer: Labels) -> None:
    """Make ``layer`` visible, the only selected layer, in paint mode with a new label."""
    from napari_nuclei_unet.widgets._scene import set_visible

    set_visible(layer, True)
    viewer.layers.selection.active = layer
    data = np.asarray(layer.data)
    layer.selected_label = int(data.max()) + 1 if data.size else 1
    layer.mode = "paint"


#: On the correction layer of a closed Retrain dock: the draft its strokes still go to.
ORPHAN_DRAFT_KEY = "nuclei_unet_orphan_draft"


def keep_drafting(state: EditState, project: Any) -> None:
    """The Retrain dock closed: its edits, and strokes painted on its layer since, kept.

    They go to the image's draft (``DraftStore``). The layer stayed editable, and what
    was painted on it after the dock closed was lost without a word at *Continue draft*
    (GUI check h_gui38, M2). Ends when a Retrain dock edits in the layer again
    (:func:`promote_prediction`).
    """
    import uuid
    import weakref

    from napari_nuclei_unet.widgets._layers import short_id
    from napari_nuclei_unet.widgets._retrain_project import DraftStore
    from napari_nuclei_unet.widgets._workers import notify_error

    sample_id, start, token = state.sample.id, state.start, uuid.uuid4().hex
    layer = weakref.ref(state.layer)

    def save(labels: Any) -> None:
        try:
            DraftStore(project).save(sample_id, np.asarray(labels), start)
        except OSError as exc:
            notify_error(exc, f"Saving your corrections of {short_id(sample_id)}")

    def painted(_event: Any = None) -> None:
        shown = layer()
        if shown is not None and shown.metadata.get(ORPHAN_DRAFT_KEY) == token:
            save(shown.data)  # (not when a Retrain dock edits in it again)

    if state.is_dirty():
        save(state.current_labels())
    if state.shows_sample():
        state.layer.metadata[ORPHAN_DRAFT_KEY] = token
        state.layer.events.paint.connect(painted)


def promote_prediction(
    viewer: napari.Viewer, labels: np.ndarray, sample: Any, *, start: str = "prediction"
) -> Labels:
    """Show ``labels`` (a copy) in the editable :data:`CORRECTION_LAYER`, in paint mode.

    The view is switched to one pane with the image and the correction
    only, so that what is painted is what is seen.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    labels : numpy.ndarray
        ``(H, W)`` predicted nuclei (or a draft); copied, never modified.
    sample : Sample
        The image they belong to.
    start : str, optional
        Recorded in the layer's metadata.

    Returns
    -------
    napari.layers.Labels
        The correction layer.
    """
    data = np.array(labels, dtype=np.int32, copy=True)
    layer = find_layer(viewer, CORRECTION_LAYER)
    if layer is None:
        from napari_nuclei_unet.widgets._scene import keep_shader_on_data_change
        from napari_nuclei_unet.widgets._unsaved_labels import undo_counts_as_paint

        layer = viewer.add_labels(data, name=CORRECTION_LAYER, opacity=0.6)
        keep_shader_on_data_change(viewer, layer)  # data changes need no shader build
        undo_counts_as_paint(layer)  # an undo after Add is an unsaved edit (its draft)
    else:
        from napari_nuclei_unet.widgets._unsaved_labels import forget_history

        layer.data = data
        forget_history(layer)  # Ctrl+Z never reaches into the image corrected before
    image = find_layer(viewer, IMAGE_LAYER)
    if image is not None:  # only when they differ: each set redraws the layer
        from napari_nuclei_unet.widgets._scene import set_changed

        set_changed(layer, translate=image.translate, scale=image.scale)
    layer.metadata[SAMPLE_ID_KEY] = sample.id
    layer.metadata["nuclei_unet_start"] = start
    layer.metadata.pop(ORPHAN_DRAFT_KEY, None)  # a closed dock's draft no longer follows it
    show_editing_view(viewer, layer)
    _paint_mode(viewer, layer)
    return layer


def show_editing_view(viewer: napari.Viewer, layer: Labels) -> None:
    """One pane with the image and ``layer`` on top (compare layers hidden).

    Used when a correction starts, and again when the Compare dock has put its
    side-by-side view back while the user was correcting (e.g. after a round).
    The camera frames the one pane at once; the hidden prediction pane goes back
    over the image :data:`PANE_BACK_MS` later (:func:`_pane_back`).
    """
    from napari_nuclei_unet.widgets._compare_layers import COMPARE_LAYERS
    from napari_nuclei_unet.widgets._scene import one_scene_rebuild, set_visible

    # napari rebuilds its scene graph after each visibility change (about 50 ms each
    # here): only what differs is set, and the rebuilds are made once
    with one_scene_rebuild(viewer):
        for name in (*COMPARE_LAYERS, LABELS_LAYER):
            other = find_layer(viewer, name)
            if other is not None:
                set_visible(other, False)
        image = find_layer(viewer, IMAGE_LAYER)
        if image is not None:
            set_visible(image, True)
        set_visible(layer, True)
        index = viewer.layers.index(layer)
        if index != len(viewer.layers) - 1:
            viewer.layers.move(index, len(viewer.layers))
    if _pane_apart(viewer, image):
        # the camera was framing two panes: now the shown one (on napari < 0.9 the
        # hidden pane still widens it, so it is framed again once the pane is back)
        exact = frame_shown(viewer)
        from qtpy.QtCore import QTimer

        QTimer.singleShot(PANE_BACK_MS, lambda: _pane_back(viewer, reframe=not exact))


def _pane_apart(viewer: napari.Viewer, image: Any) -> bool:
    """Whether a prediction-pane layer is not over ``image`` (side by side was shown)."""
    from napari_nuclei_unet.widgets._compare_layers import PREDICTION_PANE_LAYERS

    if image is None:
        return False
    place = np.asarray(image.translate, dtype=float)
    for name in PREDICTION_PANE_LAYERS:
        other = find_layer(viewer, name)
        if other is not None and not np.array_equal(np.asarray(other.translate, float), place):
            return True
    return False


def _pane_back(viewer: napari.Viewer, *, reframe: bool = False) -> None:
    """Put the hidden prediction pane back over the image, if the one pane still shows.

    Its layers are hidden, so the view does not change; napari's "reset view" (which
    fits hidden layers too) then frames the one pane. Done after the click's repaint
    (a zero-delay timer ran before it, in the same stall): the moves cost the main
    thread about 5 ms, which added to the click's own stall. Side by side shown
    meanwhile places the pane itself. ``reframe``: the first frame included the
    hidden pane (napari < 0.9), so the one pane is framed again once it is back.
    """
    from napari_nuclei_unet.widgets._compare_layers import (
        place_prediction_pane,
        side_by_side_active,
    )
    image = find_layer(viewer, IMAGE_LAYER)  # None once the window closed (napari clears)
    if image is None or side_by_side_active(viewer):
        return
    if place_prediction_pane(viewer, image, beside=False) and reframe:
        frame_shown(viewer)


def edit_label_mask(viewer: napari.Viewer) -> Labels | None:
    """Select the label-mask layer of the shown image in paint mode.

    Returns
    -------
    napari.layers.Labels or None
        The layer, or None when no image is shown.
    """
    from napari.layers import Labels

    layer = find_layer(viewer, LABELS_LAYER, Labels)
    if layer is None:
        return None
    correction = find_layer(viewer, CORRECTION_LAYER)
    if correction is not None:
        from napari_nuclei_unet.widgets._scene import set_visible

        set_visible(correction, False)
    _paint_mode(viewer, layer)
    return layer


def remove_correction_layer(viewer: napari.Viewer) -> None:
    """Remove the :data:`CORRECTION_LAYER` (its edits must have been saved first)."""
    layer = find_layer(viewer, CORRECTION_LAYER)
    if layer is not None:
        viewer.layers.remove(layer)


def hide_correction_layer(viewer: napari.Viewer) -> None:
    """Hide and empty the :data:`CORRECTION_LAYER`, kept for the next correction.

    Its edits must have been saved first. Removing it and adding it back for the
    next image made napari rebuild its visual and controls on the main thread
    (a stall of about a second); a hidden layer is not redrawn, so emptying it
    costs no texture upload, and no stale mask shows over another image.
    """
    layer = find_layer(viewer, CORRECTION_LAYER)
    if layer is None:
        return
    layer.visible = False
    layer.metadata[SAMPLE_ID_KEY] = None
    data = layer.data
    if np.any(data):
        layer.data = np.zeros(data.shape, dtype=data.dtype)
