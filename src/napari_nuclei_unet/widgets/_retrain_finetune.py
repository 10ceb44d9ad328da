"""The Retrain dock's fine-tuning step: start, follow, stop a round and show its outcome.

:class:`FinetuneSteps` is mixed into
:class:`~napari_nuclei_unet.widgets.retrain_widget.RetrainWidget`; it uses the dock's
widgets (progress bar, curves, score table) and session, built by the dock.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QTimer

from napari_nuclei_unet.core.finetune import FINETUNE_DEFAULTS, RoundRunning
from napari_nuclei_unet.core.finetune.results import NOT_ADOPTED, iou_change
from napari_nuclei_unet.core.progress import Progress
from napari_nuclei_unet.widgets._layers import quoted_names, short_id
from napari_nuclei_unet.widgets._retrain_jobs import (
    ALL_ASIDE,
    BUSY_FINETUNE,
    BUSY_TRAINING,
    CLOSE_TIMEOUT_S,
    FINETUNE_JOB,
    LOAD_MODEL_JOB,
    NO_CORRECTIONS,
    NO_MODEL_FILE,
    _load_version,
    _run_finetune,
    repeated_round,
    round_adopted,
    round_key,
    version_of_model,
    version_words,
)
from napari_nuclei_unet.widgets._retrain_project import (
    close_round_note,
    forget_round,
    unwritable_reason,
)
from napari_nuclei_unet.widgets._retrain_views import change_color
from napari_nuclei_unet.widgets._workers import notify

if TYPE_CHECKING:
    from superqt.utils import WorkerBase


def refused_round_message(name: str, why: str, before: float | None = None,
                          after: float | None = None) -> str:
    """The Retrain dock's message for a round kept as version ``name`` but not made current.

    Parameters
    ----------
    name : str
        The version, e.g. ``"v002"``.
    why : str
        The round's reason (:func:`round_adopted`): the sets that got worse with their
        scores, then what happens to the model and what to do. Said once, as it is.
    before, after : float, optional
        Mean IoU of the corrected images before and after the round; added only when
        ``why`` does not already give it (a round refused for other images).

    Returns
    -------
    str
        ``"<name>: <why> To use it anyway, ..."``, each thing said once.
    """
    text = why.strip().replace(" -> ", " → ")
    if text and not text.endswith("."):
        text += "."
    if before is not None and after is not None and "the corrected images" not in text:
        text = f"Mean IoU on the corrected images {iou_change(before, after, '→')}. {text}"
    return (f"{name}: {text} To use it anyway, select {name} under '4. Model versions' and "
            "click 'Use this version'.")


def _mean_change(rows: Sequence[dict]) -> str:
    """``"0.700 → <b>0.800</b>"``: the rows' mean IoU before and after, coloured."""
    before = float(np.mean([r["iou_before"] for r in rows]))
    after = float(np.mean([r["iou_after"] for r in rows]))
    return (f"{before:.3f} → <b><span style='color:{change_color(after - before)}'>"
            f"{after:.3f}</span></b>")


#: Said when the dock running a round was closed: the round stops (GUI check h_gui33, H1).
CLOSED_DOCK_STOP = ("The Retrain panel was closed during the fine-tuning round, so the round "
                    "was stopped: nothing of it was saved and the model is unchanged. Your "
                    "corrections are all in the project: open Retrain again (Plugins menu) "
                    "and press Fine-tune to run it.")


def after_colon(reason: str) -> str:
    """A round's reason as the dock's lines put it after a colon: lower case, → arrows.

    "... by its round: The new model ..." and "0.883 -> 0.889" beside the dock's "→"
    (GUI checks h_gui34 N6, h_gui35 L1).
    """
    reason = reason.replace(" -> ", " → ")
    return reason[:1].lower() + reason[1:]


class FinetuneSteps:
    """Fine-tuning methods of the Retrain dock (see the module docstring)."""

    _busy = False  # the last round was not started: another round held the project
    # the model loaded for a round when none was in use: said once the round has started
    # (it was said just before a refusal, GUI check h_gui44), or with the refusal
    _start_note = ""
    _loading_for_round = False  # Fine-tune with no model in use: loading it first

    def is_finetuning(self) -> bool:
        """Whether a fine-tuning round runs for this viewer."""
        return self.session.jobs.is_running(FINETUNE_JOB)

    def _base_model(self) -> Any:
        """What the round starts from: the matching project version, else the model file."""
        version = self.current_version()
        return version if version is not None else Path(self.session.model.path)

    def _round_overrides(self, threads: int) -> dict[str, Any]:
        """The round's settings from the dock.

        Epochs only when the user chose a number: automatic lets the round train longer
        when the model is far off on the corrections (``more_steps``).
        """
        overrides: dict[str, Any] = {"steps_per_epoch": self.steps_spin.value(),
                                     "num_threads": int(threads), "device": "auto"}
        if self.epochs_spin.value() > 0:
            overrides["epochs"] = self.epochs_spin.value()
        return overrides

    def start_finetune(self) -> WorkerBase | None:
        """Start a fine-tuning round from the session's model (in a worker).

        Returns
        -------
        WorkerBase or None
            The worker, or None when refused (a round or training already runs, no
            corrections, the project cannot be written); a notification says why. With
            no model in use, the worker loading the project's model (or the shipped
            one): the round starts when it is loaded.
        """
        from napari_nuclei_unet.core.finetune import safe_sample_id
        from napari_nuclei_unet.widgets._workers import gui_cpu_threads

        if self.is_finetuning():
            notify(BUSY_FINETUNE)
            return None
        if self.session.jobs.is_running("training"):
            notify(BUSY_TRAINING)
            return None
        if self.saves_pending():
            notify("A correction is being saved. Press Fine-tune again in a moment.")
            return None
        listed = self.corrections()
        ids = [c.id for c in listed if not c.aside]
        aside = [c.id for c in listed if c.aside]  # scored before and after, not trained on
        if not ids:
            notify(ALL_ASIDE if aside else NO_CORRECTIONS, warning=True)
            return None
        unwritable = unwritable_reason(self.project)
        if unwritable:  # said before training, not after it (the round writes a version)
            self.status_label.setText(unwritable)
            notify(unwritable, warning=True)
            return None
        model = self.session.model
        if model is None:
            return self._load_then_finetune()
        if getattr(model, "path", None) is None or getattr(model, "config", None) is None:
            notify(NO_MODEL_FILE, warning=True)
            return None
        if self.has_unsaved_edits():
            notify(f"Your latest edits of {short_id(self._edit.sample.id)} are not in the "
                   f"training set: this round learns from the {len(ids)} image(s) added so far.")
        from napari_nuclei_unet.widgets._unsaved_labels import painted_not_added

        painted = painted_not_added(self.viewer.layers)
        if painted:  # the Segment dock's results corrected and not added (h_gui33, L4)
            notify(f"You corrected {quoted_names(painted)} and did not add it to the project "
                   "(Add plane in the Segment panel): this round learns from the "
                   f"{len(ids)} image(s) added so far.")
        taken = {c.id for c in listed}  # an image kept aside is not trained on as original
        original = [s for s in self.session.samples.values()
                    if getattr(s, "has_labels", True) and safe_sample_id(s.id) not in taken]
        overrides = self._round_overrides(gui_cpu_threads())
        base = self._base_model()
        ratio = float(self.ratio_spin.value()) or None
        diameter = float(getattr(self.session, "diameter", 0.0) or 0.0)
        key = round_key(base, listed, overrides, ratio, [s.id for s in original], diameter)
        again = repeated_round(self.versions(), key)
        if again is not None:
            said = (f"Nothing changed since the round that made {again.name} (the same "
                    "corrections, starting model and settings): another round would make "
                    f"{again.name} again, which was not made current. Add or correct images, "
                    "keep one aside, or change the round settings.")
            notify(said, warning=True)
            self.status_label.setText(said)  # the toast is cut and fades (h_gui35, L4)
            return None
        self._stop_event.clear()
        self._done_event.clear()
        # its note, read next time the project opens if napari closes or crashes before
        # the end: written by the worker once it holds the project's round lock
        self._round_id = uuid.uuid4().hex
        worker = self.session.jobs.start(
            FINETUNE_JOB, _run_finetune, self._store, base, ids, original, ratio, overrides,
            self._stop_event.is_set, self._done_event, diameter, aside, key, self._round_id,
            on_yielded=self._on_update, on_returned=self._on_result,
            on_errored=self._on_errored, on_finished=self._on_finished, action="Fine-tuning",
            viewer=self.viewer,
            # napari's close dialog lists it: what closing does (GUI check h_gui29, L5)
            description=f"Fine-tuning on {len(ids)} corrected image(s) into {self.project}; "
                        "closing stops it and keeps nothing of it",
            cancel=self.stop_and_wait,
        )
        if worker is None:
            self._done_event.set()
            forget_round(self.project, self._round_id)
            return None
        self._closing = False
        self._owns_round, self._closed_stop = True, False
        self._outcome = None
        self._failure, self._busy = "", False
        self._round_at = ""
        if self._round_lost:  # the round cut short before is said no more
            self._round_lost = ""
            versions = self.versions()
            self._update_model_label(version_of_model(self.session.model, versions), versions)
        self._epochs = int(overrides.get("epochs", FINETUNE_DEFAULTS["epochs"]))
        self.curves.clear()
        self.curves.set_planned_epochs(self._epochs)  # grows if the round plans more
        self.progress.setValue(0)
        self.progress.setFormat("starting …")
        # the replay set guards the other kinds of images, loaded images or not: "corrections
        # only" read as no guard at all (README check h_readme2, L5)
        mix = "mixed with the built-in replay set" + (
            f" and up to {len(original)} original image(s)" if original else "")
        checked = f" ({len(aside)} kept aside to check it)" if aside else ""
        self.status_label.setText(f"Learning from {len(ids)} corrected image(s){checked}, "
                                  f"{mix}.")
        self._update_buttons()
        return worker

    def _load_then_finetune(self) -> WorkerBase | None:
        """No model in use: load the project's model (or the shipped one), then start."""
        if self._loading_for_round and self.session.jobs.is_running(LOAD_MODEL_JOB):
            # Fine-tune pressed twice: not "A model is already being loaded" of a load the
            # user never asked for (GUI check h_gui45, L4)
            notify("Fine-tune is starting: the model is being loaded first, then the round "
                   "runs.")
            return None

        def go(what: str) -> None:
            self._loading_for_round = False
            if self.start_finetune() is not None:  # else it said why (nothing changed...)
                self._start_note = what

        worker = self.load_project_model(go, "fine-tune it", "press Fine-tune")
        self._loading_for_round = worker is not None
        return worker

    def load_project_model(self, then: Any, purpose: str, again: str) -> WorkerBase | None:
        """Load the project's model (the shipped one for a new project), then ``then(what)``.

        For when no model is in use (napari was restarted since the project's last round):
        ``purpose`` and ``again`` word the status line ("fine-tune it", "press Fine-tune").
        """
        version = self.model_versions().current(self.versions())
        what = "the default model" if version is None else f"model {version_words(version)}"

        def go(loaded: Any) -> None:
            self.session.set_model(loaded)
            self.status_label.setText(" ")
            then(what)

        def failed(exc: BaseException) -> None:  # the notification fades; the dock says it
            from napari_nuclei_unet.widgets._workers import explain

            self.status_label.setText(
                f"Could not load {what} to {purpose}: {explain(exc).rstrip('. ')}. Load "
                f"a model in the Model panel, or use another version, then {again}.")

        self.status_label.setText(f"Loading {what} to {purpose} …")
        return self.session.jobs.start(
            LOAD_MODEL_JOB, _load_version, version, on_returned=go, on_errored=failed,
            action=f"Loading {what}", viewer=self.viewer)

    def stop(self) -> None:
        """Stop the running round at its next step (nothing is saved, the model stays)."""
        if not self.is_finetuning():
            return
        self._stop_event.set()
        self.stop_button.setEnabled(False)
        self.status_label.setText("Stopping …")

    def stop_and_wait(self, timeout: float = CLOSE_TIMEOUT_S) -> bool:
        """Stop the round and wait for it to end (napari closing); True when it ended."""
        self._closing = True
        self._stop_event.set()
        ended = self._done_event.wait(timeout)
        close_round_note(self.project, self._round_id, self._round_at)  # if it is still
        return ended  # there: its worker removes it once a version is saved

    def _on_update(self, update: Any) -> None:
        from napari_nuclei_unet.widgets._progress import format_duration

        # a closed dock is destroyed (_dock_life.on_destroyed): its round stops and says why
        if self._closing or self._closed_stop:
            return
        if self._start_note:  # it holds the project: started
            notify(f"No model was in use: the round starts from {self._start_note}, the "
                   "model in use from now on.")
            self._start_note = ""
        self._round_at = _round_stage_words(update) or self._round_at
        if isinstance(update, Progress) and update.stage == "prepare":  # core.finetune.view
            self.progress.setValue(0)
            self.progress.setFormat(f"measuring nucleus size · {update.done}/{update.total}")
        elif isinstance(update, Progress):
            before = update.stage == "score-before"
            # the self-check refused the model first checked: its trained weights, or
            # part of its change, are checked next (core.finetune.check.choose_step)
            share = update.done / max(1, update.total)
            if before:
                value, what = int(100 * share), "current model"
            elif update.stage == "score-plain":
                value, what = 980 + int(20 * share), "round's plain weights"
            elif update.stage == "score-step-back":
                value, what = 980 + int(20 * share), "round's change, part of the way"
            else:
                value, what = 900 + int(80 * share), "fine-tuned model"
            self.progress.setValue(value)
            self.progress.setFormat(f"scoring with the {what} · {update.done}/{update.total}")
        elif hasattr(update, "step"):  # TrainStep
            now = time.monotonic()
            if now - self._last_step_ui < 0.25 and update.step < update.steps:
                return
            self._last_step_ui = now
            done = (update.epoch - 1) * update.steps + update.step
            total = max(1, update.epochs * update.steps)
            self.progress.setValue(100 + int(800 * done / total))
            self.progress.setFormat(
                f"epoch {update.epoch}/{update.epochs} · step {update.step}/{update.steps}")
            self.status_label.setText(
                f"loss {update.loss:.3f} · about {format_duration(update.eta_s)} left")
        elif hasattr(update, "train_loss"):  # EpochEnd
            self.curves.add_epoch(update)

    def _on_result(self, outcome: tuple[Any, Any]) -> None:
        result, loaded = outcome
        if self._closing:
            return
        self._outcome = "stopped" if result.cancelled or loaded is None else "finished"
        if self._outcome == "stopped":
            notify(CLOSED_DOCK_STOP if self._closed_stop else
                   "Fine-tuning stopped: nothing was saved and the model is unchanged.")
            return
        self.last_result = result
        version = result.version
        before = result.mean_iou("corrected", "before")
        after = result.mean_iou("corrected", "after")
        scores = ("" if before is None or after is None
                  else f" (mean IoU on the corrected images {iou_change(before, after, '→')})")
        adopted, why = round_adopted(result)
        self.last_adopted = adopted
        alive = not self._dead  # closed during the round: its outcome still counts
        if alive:
            self.show_scores(result.corrected, aside=result.held_out,
                             regression=result.regression,
                             title=f"{version.name}: IoU of the corrected images "
                                   "before and after the round")
        if not adopted:
            # kept as a version, never made current: the model in use stays
            message = refused_round_message(version.name, why, before, after)
            if alive:
                self.adoption_label.setText(message)
                self.adoption_label.setVisible(True)
            notify(message, warning=True)
        else:
            if alive:
                self.adoption_label.setVisible(False)
            self.session.set_model(loaded)  # the old model's results are kept, not wiped
            notify(f"Fine-tuning finished: {version.name} is now the model{scores}."
                   f"{_stepped_back(version)} Nothing was overwritten.")
        # every Retrain view of the project lists the new version (this one too); a
        # refused round's was listed only by the dock that ran it (GUI check h_gui11, M1)
        self.session.note_project_changed(str(self.project))
        if not alive:
            return
        self.versions_table.select_key(version.name)
        if adopted:
            self.predict_corrected()

    def _on_errored(self, exc: BaseException) -> None:
        from napari_nuclei_unet.widgets._workers import explain

        self._failure = explain(exc)  # kept in the dock: the notification fades
        self._busy = isinstance(exc, RoundRunning)  # not started: no failure (h_gui43 L2)

    def _on_finished(self) -> None:
        from napari_nuclei_unet.widgets._progress import format_duration

        if self._closing:
            return
        forget_round(self.project, self._round_id)  # it ended, and this dock says how
        if self._outcome == "finished":
            self.progress.setValue(1000)
        busy = not self._outcome and self._busy
        self.progress.setFormat(self._outcome or ("not started" if busy else "failed"))
        result = self.last_result
        if self._outcome == "finished" and result is not None and result.version is not None:
            self.status_label.setText(
                f"{result.version.name} saved in {result.version.path} "
                f"({format_duration(result.elapsed_s)})."
                + ("" if self.last_adopted else " Not in use (see below)."))
        elif self._outcome == "stopped":
            self.status_label.setText("Stopped: nothing was saved, the model is unchanged.")
        else:
            why = getattr(self, "_failure", "").rstrip(". ")
            loaded = self._start_note
            self.status_label.setText(("Not started" if busy else "The round failed")
                                      + (f": {why}" if why else "") + (
                                          f". No model was in use: {loaded} is in use now."
                                          if loaded else ". The model in use is unchanged."))
        self._start_note = ""
        self._start_next_save()  # corrections added during the round
        self._update_buttons()
        if self._outcome == "finished":  # its table, why, and "Use this version" (h_gui33 L2)
            from napari_nuclei_unet.widgets._scroll import bring_into_view

            # once the layout has grown to a refused round's text (h_gui34, N1)
            QTimer.singleShot(0, lambda: None if self._dead else
                              bring_into_view(self.summary_label))

    def show_scores(self, changes: Sequence[Any], *, title: str,
                    aside: Sequence[Any] = (), regression: Sequence[Any] = ()) -> None:
        """Fill the before/after table (``ScoreChange`` objects or their dicts).

        ``aside``: the scores of the images kept aside, listed after and summed up apart.
        ``regression``: the built-in regression set's, summed up in a line (what the
        round did to other kinds of images: GUI check h_gui33, L3).
        """
        self.scores_table.set_changes(list(changes), list(aside))
        self.scores_title.setText(title)
        rows = [c if isinstance(c, dict) else c.to_dict() for c in changes]
        if not rows:
            self.summary_label.setText("")
            return
        better = sum(r["iou_after"] - r["iou_before"] > 0.005 for r in rows)
        worse = sum(r["iou_after"] - r["iou_before"] < -0.005 for r in rows)
        text = (f"Mean IoU {_mean_change(rows)} · {better} better, {worse} worse, "
                f"{len(rows) - better - worse} unchanged")
        kept = [c if isinstance(c, dict) else c.to_dict() for c in aside]
        if kept:  # what the round did to images it did not learn from
            text += f"<br>Kept aside ({len(kept)}): {_mean_change(kept)}"
        others = [c if isinstance(c, dict) else c.to_dict() for c in regression]
        if others:
            text += (f"<br>Other kinds of images (built-in regression set, {len(others)}): "
                     f"{_mean_change(others)}")
        self.summary_label.setText(text)

    def show_version_reason(self, version: Any) -> None:
        """Say again why a version's round did not make it current, when it is selected.

        The reason went for good once another version was used, or napari started again
        (GUI check h_gui33, L7); it is kept in the version's ``model.json``.
        """
        if self.is_finetuning():
            return
        refused = version is not None and not version.is_base and not version.adopted
        if refused and version.reason:
            current = self.current_version()
            if current is None and self.session.model is None:  # napari started again:
                current = self.model_versions().current(self.versions())  # the project's
            in_use = getattr(current, "name", None) == version.name  # (h_gui35)
            why = after_colon(version.reason)
            if in_use:  # "the model in use is unchanged" read wrong then (h_gui34, N4)
                why = why.replace(NOT_ADOPTED, "").strip()  # the rest stays (h_gui35, L2)
                why = (f"{version.name} is "
                       + ("in use" if self.session.model is not None else "this project's "
                          "model (Fine-tune and the Segment panel use it)")  # (h_gui38 L2)
                       + f" because you chose it; its round had not made it current: {why}")
            else:
                why = f"{version.name} was not made current by its round: {why}"
            self.adoption_label.setText(why)
        self.adoption_label.setVisible(bool(refused and version.reason))

    def samples_to_predict(self) -> list[Any]:
        """The dataset samples :meth:`predict_corrected` predicts.

        The corrected ones loaded, and the one shown; none for images of one's own:
        they are segmented in the Segment dock (GUI check h_gui33, M3).
        """
        from napari_nuclei_unet.core.finetune import safe_sample_id

        corrected = {c.id for c in self.corrections()}
        samples = [s for s in self.session.samples.values() if safe_sample_id(s.id) in corrected]
        current = self._current_sample()
        if current is not None and current not in samples:
            samples.append(current)
        return samples

    def predicted_words(self, samples: list[Any] | None = None, done: bool = False) -> str:
        """What :meth:`predict_corrected` predicts, in words.

        "the 2 corrected images loaded and the image shown are predicted again"
        (``done``: "… were predicted with the new model").

        "The corrected images are predicted again" was said when none was loaded, only the
        image shown (GUI check h_gui40, L4).
        """
        from napari_nuclei_unet.core.finetune import safe_sample_id

        samples = self.samples_to_predict() if samples is None else samples
        ids = {c.id for c in self.corrections()}
        corrected = sum(safe_sample_id(s.id) in ids for s in samples)
        shown = "the image shown" if len(samples) > corrected else ""
        loaded = ("" if not corrected else "the corrected image loaded" if corrected == 1
                  else f"the {corrected} corrected images loaded")
        subject = " and ".join(w for w in (loaded, shown) if w)
        many = corrected > 1 or (corrected and shown)
        verb = (("were" if many else "was") + " predicted with the new model" if done
                else ("are" if many else "is") + " predicted again")
        dataset = getattr(self.session, "dataset", None)
        listed = {safe_sample_id(i) for i in dataset.ids()} & ids if dataset else set()
        missing = "" if not ids or corrected else (  # in the dataset, not loaded (h_gui42
            " (the corrected images are not loaded: press Load all in Data to predict "  # L5)
            "them too)" if listed else " (none of the corrected images is among the "
            "images open)")  # own images, segmented in the Segment dock (h_rev25)
        return f"{subject} {verb}{missing}" if subject else ""

    def predict_corrected(self) -> WorkerBase | None:
        """Predict the loaded corrected images and the shown one with the session's model.

        Runs the Compare dock's prediction job, so the Compare dock and the IoU
        panel update by themselves. Waits for a prediction already running.

        Returns
        -------
        WorkerBase or None
            The prediction worker, or None (nothing loaded to predict, or queued
            behind a running prediction).
        """
        from napari_nuclei_unet.widgets._prediction_service import (
            PREDICT_JOB,
            start_prediction_job,
        )

        running = self.session.jobs.running(PREDICT_JOB)
        if running is not None:
            running.finished.connect(lambda: QTimer.singleShot(0, self.predict_corrected))
            return None
        samples = self.samples_to_predict()
        if not samples or self.session.model is None:
            return None

        def progress(update: Any) -> None:
            if isinstance(update, Progress) and not self.is_finetuning():
                self.status_label.setText(
                    f"Predicting with the new model: {update.done}/{update.total} image(s)")

        words = self.predicted_words(samples, done=True)

        def done(_result: Any) -> None:
            if not self.is_finetuning() and self.status_label.text().startswith("Predicting"):
                self.status_label.setText(f"{words[0].upper()}{words[1:]}; see the IoU panel.")
            self._update_image_label()

        return start_prediction_job(self.viewer, samples, on_progress=progress, on_done=done)


def _round_stage_words(update: Any) -> str:
    """Where a round is, for the note read if napari closes now ("at epoch 3 of 12")."""
    if hasattr(update, "step"):  # TrainStep
        return f"at epoch {update.epoch} of {update.epochs}"
    stage = getattr(update, "stage", "")
    if stage == "prepare":
        return "while it measured the nucleus size"
    if stage == "score-before":
        return "while it scored the model in use"
    if stage.startswith("score-"):
        return "while it scored the new model"
    return ""


def _stepped_back(version: Any) -> str:
    """A sentence when the version made current holds only part of its round's change."""
    info = getattr(version, "info", None) or {}
    factor = info.get("extrapolated")
    if (not isinstance(factor, (int, float)) or isinstance(factor, bool) or factor >= 1.0
            or not info.get("refused_factors")):  # none, or a fraction the user asked for
        return ""
    return (f" It keeps {factor:.0%} of the round's change: the whole change lost too much "
            "on other kinds of images (the built-in regression set).")
