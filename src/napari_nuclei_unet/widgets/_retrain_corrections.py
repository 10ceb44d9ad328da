"""The Retrain dock's correcting step: edit a mask, keep drafts, add it to the training set.

:class:`CorrectionSteps` is mixed into
:class:`~napari_nuclei_unet.widgets.retrain_widget.RetrainWidget`; it uses the
dock's widgets, project store and session, built by the dock. Unsaved edits are
never lost: they are kept as a draft a moment after each stroke and whenever
the user moves to another image; saves run one at a time, in order, in workers.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt

from napari_nuclei_unet.widgets import _retrain_editing as editing
from napari_nuclei_unet.widgets._data_jobs import load_sample_then
from napari_nuclei_unet.widgets._layers import (
    DRAFTED_KEY,
    LABELS_LAYER,
    SAMPLE_ID_KEY,
    find_layer,
    nuclei,
    short_id,
    show_sample,
)
from napari_nuclei_unet.widgets._retrain_jobs import (
    NO_IMAGE,
    SAVE_JOB,
    _save_correction,
    _saved_labels,
    _SaveRequest,
)
from napari_nuclei_unet.widgets._retrain_project import (
    START_LABEL,
    START_PREDICTION,
    DraftStore,
)
from napari_nuclei_unet.widgets._retrain_views import source_text
from napari_nuclei_unet.widgets._workers import notify, notify_error

if TYPE_CHECKING:
    from superqt.utils import WorkerBase


class CorrectionSteps:
    """Correcting methods of the Retrain dock (see the module docstring)."""

    def _current_sample(self) -> Any:
        sample_id = self.session.current_id
        return None if sample_id is None else self.session.samples.get(sample_id)

    def current_prediction(self) -> np.ndarray | None:
        """The predicted nuclei of the shown image (as the Compare dock shows them), or None."""
        from napari_nuclei_unet.core.predict_score import predicted_labels
        from napari_nuclei_unet.widgets._compare_layers import PREDICTION_LAYER

        sample = self._current_sample()
        if sample is None:
            return None
        layer = find_layer(self.viewer, PREDICTION_LAYER)
        if layer is not None and layer.metadata.get(SAMPLE_ID_KEY) == sample.id:
            return np.asarray(layer.data)
        prob = self.session.probabilities.get(sample.id)
        if prob is None:
            return None
        return predicted_labels(prob, threshold=self.session.threshold,
                                instance_method=self.session.instance_method)

    def edit_prediction(self) -> Any:
        """Copy the shown prediction into an editable Labels layer, in paint mode.

        Returns
        -------
        napari.layers.Labels or None
            The layer (:data:`~._retrain_editing.CORRECTION_LAYER`), or None when
            there is no image or no prediction (a notification says what to do).
        """
        sample = self._current_sample()
        if sample is None:
            notify(NO_IMAGE, warning=True)
            return None
        labels = self.current_prediction()
        if labels is None:  # e.g. after a restart: its score is listed, its prediction not
            if self.session.model is None:  # as Fine-tune does (GUI check h_gui14, N4)
                self.load_project_model(lambda _what: self._predict_then_edit(sample),
                                        "predict this image", "click Edit prediction again")
            else:
                self._predict_then_edit(sample)
            return None
        self._keep_unsaved_edits()
        layer = editing.promote_prediction(self.viewer, labels, sample, start=START_PREDICTION)
        start = np.array(layer.data, copy=True)
        self._begin_edit(editing.EditState(sample, layer, layer.data, START_PREDICTION, start,
                                           start))
        return layer

    def _predict_then_edit(self, sample: Any) -> Any:
        """Predict ``sample`` (in a worker), then open its prediction for editing.

        It was one more trip to the Compare panel per image (GUI check h_gui13, L8).
        """
        from napari_nuclei_unet.widgets._model_names import model_name
        from napari_nuclei_unet.widgets._prediction_service import start_prediction_job

        editing_before = self._edit

        def done(result: Any) -> None:
            if (result is None or self._dead or self.session.current_id != sample.id
                    or sample.id not in self.session.probabilities):
                return
            if self._edit is not editing_before:  # the user started another edit meanwhile
                notify(f"The prediction of {short_id(sample.id)} is ready: click 'Edit "
                       "prediction as labels' to correct it.")
                return
            self.edit_prediction()

        worker = start_prediction_job(self.viewer, [sample], on_done=done)
        if worker is not None:
            notify(f"{short_id(sample.id)} has no prediction yet: predicting it with "
                   f"{model_name(self.session.model)} first; it opens for editing when done.")
        return worker

    def edit_label_mask(self) -> Any:
        """Select the label mask of the shown image in paint mode.

        Returns
        -------
        napari.layers.Labels or None
            The label-mask layer, or None when no image is shown.
        """
        state = self._label_mask_state()
        if state is None:
            notify(NO_IMAGE, warning=True)
            return None
        editing.remove_correction_layer(self.viewer)
        layer = editing.edit_label_mask(self.viewer)
        if self._edit is None or self._edit.layer is not layer or not self._edit.shows_sample():
            self._keep_unsaved_edits()
            self._begin_edit(state)
        return layer

    def _label_mask_state(self) -> editing.EditState | None:
        """An edit of the label mask of the shown image (None when none is shown)."""
        sample = self._current_sample()
        layer = find_layer(self.viewer, LABELS_LAYER)
        if sample is None or layer is None or layer.metadata.get(SAMPLE_ID_KEY) != sample.id:
            return None
        original = np.asarray(sample.labels)
        if original.shape != np.shape(layer.data):
            original = np.array(layer.data, copy=True)
        return editing.EditState(sample, layer, layer.data, START_LABEL, original, original)

    def continue_draft(self) -> Any:
        """Show the draft of the shown image in the editable layer, in paint mode.

        Returns
        -------
        napari.layers.Labels or None
            The layer, or None when the image has no (usable) draft.
        """
        sample = self._current_sample()
        draft = None if sample is None else DraftStore(self.project).load(sample.id)
        if draft is None:
            notify("This image has no draft correction.", warning=True)
            return None
        if draft.labels.shape != sample.image.shape[:2]:
            notify(f"The draft of {short_id(sample.id)} is {draft.labels.shape[1]} x "
                   f"{draft.labels.shape[0]} pixels but the image is {sample.image.shape[1]} x "
                   f"{sample.image.shape[0]}: it belongs to another image of that name.",
                   warning=True)
            return None
        self._keep_unsaved_edits()
        self._end_edit()
        layer = editing.promote_prediction(self.viewer, draft.labels, sample, start=draft.start)
        start = self._start_labels_of(sample, draft.start, layer.data)
        self._begin_edit(editing.EditState(sample, layer, layer.data, draft.start, start, None))
        return layer

    def _start_labels_of(self, sample: Any, start: str, fallback: np.ndarray) -> np.ndarray:
        if start == START_LABEL and np.shape(sample.labels) == np.shape(fallback):
            return np.asarray(sample.labels)
        prediction = self.current_prediction()
        if prediction is not None and prediction.shape == np.shape(fallback):
            return np.array(prediction, copy=True)
        return np.zeros(np.shape(fallback), np.int32)  # unknown: count it as edited

    def _keep_unsaved_edits(self) -> None:
        """Save unsaved edits as a draft before another correction is started."""
        if self._edit is not None and self._flush_draft(warn=False):
            notify(f"Your unsaved corrections of {short_id(self._edit.sample.id)} were kept as "
                   "a draft ('Continue draft' brings them back).")

    def _begin_edit(self, state: editing.EditState) -> None:
        self._end_edit()
        self._edit = state
        state.layer.metadata[DRAFTED_KEY] = True  # this dock says where its edits went
        state.layer.events.paint.connect(self._on_paint)
        self._update_image_label()
        self._update_buttons()

    def _end_edit(self) -> None:
        self._draft_timer.stop()
        state, self._edit = self._edit, None
        if state is None:
            return
        state.layer.metadata.pop(DRAFTED_KEY, None)
        try:
            state.layer.events.paint.disconnect(self._on_paint)
        except (TypeError, ValueError, RuntimeError):
            pass

    def has_unsaved_edits(self) -> bool:
        """Whether the mask being corrected has edits not added to the training set."""
        return self._edit is not None and self._edit.is_dirty()

    def _on_paint(self, _event: Any = None) -> None:
        self._draft_timer.start()
        if "unsaved edits" not in self.image_label.text():  # cheap on every stroke
            self._update_image_label()

    def _autosave_draft(self) -> None:
        state = self._edit
        if state is None or not state.is_dirty():
            return
        try:
            DraftStore(self.project).save(state.sample.id, state.current_labels(), state.start)
        except OSError as exc:
            if not self._draft_error_shown:  # once, not after every stroke
                self._draft_error_shown = True
                notify_error(exc, "Saving a draft of your corrections (add the image to the "
                                  "training set, or choose another project folder)")
            return
        self._update_image_label()

    def _flush_draft(self, *, warn: bool) -> bool:
        """Save the edit's unsaved labels as a draft now; return whether one was written."""
        self._draft_timer.stop()
        state = self._edit
        if state is None or not state.is_dirty():
            return False
        try:
            DraftStore(self.project).save(state.sample.id, state.current_labels(), state.start)
        except OSError as exc:
            notify_error(exc, f"Saving your corrections of {short_id(state.sample.id)}")
            return False
        if warn:
            from napari_nuclei_unet.core.finetune import safe_sample_id

            name = short_id(state.sample.id)
            added = self._store is not None and safe_sample_id(state.sample.id) in self._store
            what = (f"Your latest edits of {name} are not in the training set (it holds your "
                    "earlier correction)" if added else  # an undo after Add (h_gui29 L2)
                    f"Your corrections of {name} are not in the training set yet")
            notify(f"{what}. They were kept as a draft: show that image again and click "
                   "'Continue draft', then 'Add to training set'.", warning=True)
        return True

    def _on_current_changed(self, sample_id: str | None) -> None:
        state = self._edit
        if state is not None and state.sample.id != sample_id:
            self._flush_draft(warn=True)
            self._end_edit()
            if state.layer.name == editing.CORRECTION_LAYER:
                editing.hide_correction_layer(self.viewer)
            self.refresh()
        else:
            self._update_image_label()
            self._update_buttons()

    def _on_predictions_changed(self, ids: frozenset[str] | None = None) -> None:
        state = self._edit
        if (state is not None and state.layer.name == editing.CORRECTION_LAYER
                and state.sample.id == self.session.current_id
                and (ids is None or state.sample.id in ids)):
            # the Compare dock redraws only when the edited image's own prediction
            # changed; other images' results (every second during "Predict all") leave
            # the layers the user turned on alone
            self._view_timer.start()

    def _restore_editing_view(self) -> None:
        state = self._edit
        if (state is None or state.layer.name != editing.CORRECTION_LAYER
                or state.sample.id != self.session.current_id
                or state.layer not in self.viewer.layers
                or not state.layer.visible):  # the user asked for another view meanwhile
            return
        editing.show_editing_view(self.viewer, state.layer)

    def _on_dataset_changed(self) -> None:
        self._on_current_changed(None)

    def _on_layer_removed(self, event: Any) -> None:
        if self._dead:  # the dock was closed: its timers and layers are gone
            return
        state = self._edit
        if state is not None and getattr(event, "value", None) is state.layer:
            self._flush_draft(warn=True)
            self._end_edit()
            self.refresh()

    def add_to_training_set(self) -> WorkerBase | None:
        """Save the shown image and its corrected nuclei in the project (in a worker).

        The mask saved is the one being corrected; when nothing is being corrected,
        the label mask as shown (hand edits included). The correction replaces an
        earlier one of the same image. Saves run one at a time, in order; during a
        fine-tuning round the correction is kept as a draft and saved when it ends.

        Returns
        -------
        WorkerBase or None
            The saving worker, or None when there is nothing to save or the save
            was queued behind another save or a running round.
        """
        from napari_nuclei_unet.core.finetune import safe_sample_id

        if self._store is None:
            notify("Choose a project folder first (Change… at the top of this panel).",
                   warning=True)
            return None
        sample = self._current_sample()
        state = self._edit
        if state is None or state.sample.id != getattr(sample, "id", None):
            state = self._label_mask_state()  # nothing being corrected: the label mask as shown
            if state is None:
                notify(NO_IMAGE, warning=True)
                return None
            self._begin_edit(state)
        if state.saved and not state.is_dirty() and any(  # e.g. a saved correction looked at
                c.id == safe_sample_id(sample.id) for c in self.corrections()):
            notify(f"{short_id(sample.id)} is in the training set as it is already.")
            return None
        labels = np.array(state.current_labels(), copy=True)
        if labels.max(initial=0) <= 0:
            notify("The mask is empty: paint at least one nucleus before adding the image.",
                   warning=True)
            return None
        edited = state.was_edited()
        source = "label" if edited or state.start == START_LABEL else "prediction"
        note = f"started from the {state.start}" + (", edited by hand" if edited else "")
        request = _SaveRequest(state, sample, safe_sample_id(sample.id), labels, source, note)
        pending = [*self._save_queue, getattr(self, "_saving", None)]
        if any(r is not None and r.sample_id == request.sample_id
               and np.array_equal(r.labels, labels) for r in pending):
            return None  # a double click: the same mask is being added already
        last = getattr(self, "_last_added", None)  # a double click after a quick save
        if last is not None and last.sample_id == request.sample_id \
                and np.array_equal(last.labels, labels) \
                and any(c.id == request.sample_id for c in self.corrections()):
            notify(f"{short_id(sample.id)} is in the training set as it is already.")
            return None
        self._save_queue.append(request)
        if self.is_finetuning():
            try:
                DraftStore(self.project).save(sample.id, labels, state.start)
            except OSError as exc:
                notify_error(exc, f"Saving a draft of {short_id(sample.id)}")
            notify(f"A fine-tuning round is running: {short_id(sample.id)} will be added to the "
                   "training set when it ends (kept as a draft until then).")
            self._update_image_label()
            return None
        return self._start_next_save()

    def _start_next_save(self) -> WorkerBase | None:
        """Start the next queued save, unless one (or a round) runs; saves run in order."""
        if not self._save_queue or self.session.jobs.is_running(SAVE_JOB) or self.is_finetuning():
            return None
        request = self._saving = self._save_queue.pop(0)
        worker = self.session.jobs.start(
            SAVE_JOB, _save_correction, self._store, request.sample_id, request.sample.image,
            request.labels, request.source, request.note,
            on_returned=partial(self._on_saved, request), on_finished=self._on_save_finished,
            action=f"Saving the correction of {short_id(request.sample.id)}",
            viewer=self.viewer, description="Saving a corrected mask",
        )
        self._update_buttons()
        return worker

    def _on_saved(self, request: _SaveRequest, correction: Any) -> None:
        self._last_added = request
        current = self._edit
        if current is request.state and current.current_labels().shape == request.labels.shape:
            if np.array_equal(current.current_labels(), request.labels):
                current.mark_added()
            else:  # painted on during the save: the new strokes are still unsaved
                current.baseline = request.labels
        unedited = (" It is the prediction as it was, not edited: a round learns little "
                    "from it." if request.source == "prediction" else "")
        where = ("saved, still kept aside (rounds score it, do not learn from it)"
                 if getattr(correction, "aside", False) else "added to the training set")
        notify(f"{short_id(request.sample.id)} {where} ({nuclei(correction.n_nuclei)}). "
               f"{len(self.corrections())} image(s) in the project.{unedited}")
        self.session.note_project_changed(str(self.project))  # every Retrain view lists it
        self.corrections_table.select_key(correction.id)  # (GUI check h_gui43, L1)

    def _on_save_finished(self) -> None:
        self._saving = None
        self._update_buttons()
        self._start_next_save()
        waiting = getattr(self, "_show_after_saves", None)
        if waiting is not None and not self.saves_pending():
            self._show_after_saves = None
            if self.session.current_id == waiting:  # still the image the user looks at
                self.show_correction(waiting)

    def saves_pending(self) -> int:
        """Corrections waiting to be saved or being saved."""
        return len(self._save_queue) + int(self.session.jobs.is_running(SAVE_JOB))

    def remove_correction(self, sample_id: str) -> Path | None:
        """Take ``sample_id`` out of the training set (its files go to ``removed/``).

        Returns
        -------
        pathlib.Path or None
            Where the files went, or None when it could not be removed.
        """
        if self.is_finetuning() or self.saves_pending():
            notify("Wait for the fine-tuning round (or the saving) to finish before removing "
                   "images from the training set.")
            return None
        if self._store is None:
            return None
        try:
            target = self._store.remove(sample_id)
        except (KeyError, ValueError, OSError) as exc:
            notify_error(exc, f"Removing {short_id(sample_id)}")
            return None
        notify(f"{short_id(sample_id)} was taken out of the training set; its files are kept "
               f"in {target.parent}.")
        self.refresh()
        return target

    def keep_aside(self, sample_id: str, aside: bool = True) -> bool:
        """Keep a corrected image out of training to check rounds on it, or train on it again.

        An image kept aside is scored before and after each round (with the corrected
        images and the built-in regression set): a round that makes it worse is kept as
        a version but not made current. Returns whether it changed.
        """
        if self.is_finetuning():
            notify("Wait for the fine-tuning round to finish, then keep images aside.")
            return False
        try:
            self.corrections_store().set_aside(sample_id, aside)
        except (KeyError, ValueError, OSError) as exc:
            notify_error(exc, f"Keeping {short_id(sample_id)} aside")
            return False
        notify(f"{short_id(sample_id)} is kept aside: rounds do not learn from it; each scores "
               "it before and after, and one that makes it worse is not made current."
               if aside else f"{short_id(sample_id)} is in the training set again.")
        self.session.note_project_changed(str(self.project))  # every Retrain view lists it
        return True

    def _toggle_aside_selected(self) -> None:
        sample_id = self.corrections_table.selected_key()
        if sample_id is None:
            notify("Select a corrected image in the list first.")
            return
        self.keep_aside(sample_id, sample_id not in self.corrections_table.aside)

    def _remove_selected(self) -> None:
        sample_id = self.corrections_table.selected_key()
        if sample_id is None:
            notify("Select a corrected image in the list first.")
            return
        if self._confirm_remove(sample_id):
            self.remove_correction(sample_id)

    def _confirm_remove(self, sample_id: str) -> bool:
        from qtpy.QtWidgets import QMessageBox

        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self, "Take the image out of the training set?",
            f"Take {short_id(sample_id)} out of the training set? Rounds will no longer learn "
            "from its correction. Its files are moved to the project's 'removed' folder, not "
            "deleted.", buttons.Yes | buttons.No, buttons.No)  # Enter keeps it
        return answer == buttons.Yes

    def _on_correction_double_clicked(self, row: int, _column: int) -> None:
        item = self.corrections_table.item(row, 0)
        if item is not None:
            self.show_correction(item.data(Qt.ItemDataRole.UserRole))

    def show_correction(self, sample_id: str) -> Any:
        """Show an image with its correction as saved in the project, ready to be fixed.

        The saved mask is loaded in a worker into the editable layer, in paint mode;
        *Add to training set* then replaces the saved correction (GUI check h_gui13, M3:
        a saved correction could not be looked at, and fixing one nucleus meant redoing
        it). An image of the open dataset not loaded yet is loaded first (GUI check
        h_gui28, M1: in a new session it was "not among the loaded images"). Returns the
        worker, or None when the image is not in the dataset open.
        """
        if self._store is None:
            return None
        dataset = self.session.dataset
        if sample_id not in self.session.samples and dataset is not None \
                and sample_id in dataset.ids():
            return load_sample_then(self.session, sample_id,
                                    lambda sample: self.show_correction(sample.id))
        if not self.show_sample_id(sample_id):
            return None
        if self.saves_pending():  # read once what is being saved is saved
            self._show_after_saves = sample_id
            return None
        store = self._store
        return self.session.jobs.start(
            "load correction", _saved_labels, store, sample_id,
            on_returned=partial(self._edit_saved, store, sample_id),
            action=f"Reading the correction of {short_id(sample_id)}", refuse=False,
        )

    def _edit_saved(self, store: Any, sample_id: str, labels: np.ndarray) -> None:
        sample = self._current_sample()
        if sample is None or sample.id != sample_id or store is not self._store:
            return  # another image, or another project, was chosen meanwhile
        if labels.shape != sample.image.shape[:2]:
            notify(f"The saved correction of {short_id(sample_id)} is {labels.shape[1]} x "
                   f"{labels.shape[0]} pixels but the image is {sample.image.shape[1]} x "
                   f"{sample.image.shape[0]}: it belongs to another image of that name.",
                   warning=True)
            return
        correction = next((c for c in self.corrections() if c.id == sample_id), None)
        # what it started from, for its description when it is saved again
        origin = "" if correction is None else source_text(correction.source, correction.note)
        start = START_PREDICTION if origin in ("prediction", "edited prediction") else START_LABEL
        self._keep_unsaved_edits()
        self._end_edit()
        layer = editing.promote_prediction(self.viewer, labels, sample, start=start)
        saved = np.array(layer.data, copy=True)
        self._begin_edit(editing.EditState(sample, layer, layer.data, start, saved, saved,
                                           saved=True))
        notify(f"The correction of {short_id(sample_id)} saved in the project is shown: paint "
               "to fix it, then 'Add to training set' replaces it.")

    def show_sample_id(self, sample_id: str) -> bool:
        """Show a loaded image (as the Data panel does); return False when it is not loaded."""
        sample = self.session.samples.get(sample_id)
        if sample is None:
            notify(f"{short_id(sample_id)} is not in the dataset open: open the dataset it "
                   "comes from in the Data panel to see it.")
            return False
        try:
            show_sample(self.viewer, sample)
            self.session.set_current(sample.id)
        except Exception as exc:  # never a traceback dialog for a click
            notify_error(exc, f"Showing image {short_id(sample_id)}")
            return False
        return True

