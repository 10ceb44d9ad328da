"""Retrain dock: correct masks in napari, fine-tune the model on them, watch the scores.

The loop, for a biologist:

1. **Correct** the shown image: "Edit prediction as labels" copies the predicted
   nuclei into an editable layer; "Edit label mask" paints on the label mask
   itself (napari's paint / fill / erase tools, see the key hint in the dock).
2. **Add to training set** saves the image and the corrected nuclei in the
   project folder, DSB2018 layout, crash-safely
   (:class:`~napari_nuclei_unet.core.finetune.CorrectionStore`, in a worker).
   Edits not added yet are never lost: they are saved as a *draft* in the
   project (``drafts/``) a moment after each stroke and when the user moves to
   another image (with a warning); "Continue draft" brings them back.
3. **Fine-tune** continues training the current model on the corrections mixed
   with the loaded original images (:func:`~napari_nuclei_unet.core.finetune.finetune`
   in a worker, progress and loss curve like the Train dock). The round's model
   is saved as a new version (``v001``, ``v002``...; never overwritten) and
   becomes the session's model, unless it failed its checks (worse, or hardly
   better on the corrected images): then it is kept as a version but not made
   current, and the dock says so. The corrected images and the shown one are
   predicted again, so the Compare dock and the IoU panel update by themselves,
   and the dock lists each corrected image's IoU before and after.
4. **Versions**: any earlier version (``v000`` is the model the project started
   from) can be used again.

The project folder is chosen by the user and remembered for next time
(:mod:`~napari_nuclei_unet.widgets._retrain_project`).

One module per job: the layout (``_retrain_layout``), correcting and saving
(``_retrain_corrections``), fine-tuning rounds (``_retrain_finetune``), the
worker jobs (``_retrain_jobs``), label editing (``_retrain_editing``), tables
(``_retrain_views``); this module holds the dock, its project and its versions.

Programmatic use (tests, notebooks)::

    dock = RetrainWidget(viewer)
    dock.set_project(tmp_path / "project")
    dock.edit_prediction()                # or dock.edit_label_mask()
    dock.add_to_training_set()            # worker
    dock.start_finetune()                 # worker; dock.last_result when done
    dock.use_version("v000")              # worker
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt, QTimer, QUrl
from qtpy.QtGui import QDesktopServices
from qtpy.QtWidgets import QFileDialog, QWidget

from napari_nuclei_unet.core.paths import same_path
from napari_nuclei_unet.widgets import _retrain_editing as editing
from napari_nuclei_unet.widgets._dock_life import (
    connect_napari,
    disconnect_all,
    on_destroyed,
    share_the_column_when_shown,
)
from napari_nuclei_unet.widgets._layers import DRAFTED_KEY, short_id
from napari_nuclei_unet.widgets._model_names import base_model_words, model_name_in
from napari_nuclei_unet.widgets._project_watch import ProjectWatch
from napari_nuclei_unet.widgets._retrain_corrections import CorrectionSteps
from napari_nuclei_unet.widgets._retrain_finetune import FinetuneSteps, after_colon
from napari_nuclei_unet.widgets._retrain_jobs import (  # noqa: F401  (re-exported)
    BUSY_FINETUNE,
    BUSY_TRAINING,
    CLOSE_TIMEOUT_S,
    DRAFT_DELAY_MS,
    FINETUNE_JOB,
    LOAD_MODEL_JOB,
    NO_CORRECTIONS,
    NO_IMAGE,
    NO_MODEL_FILE,
    SAVE_JOB,
    _load_version,
    _run_finetune,
    _save_correction,
    _SaveRequest,
    _warm_up,
    marked_version,
    round_adopted,
    version_of_model,
    version_words,
)
from napari_nuclei_unet.widgets._retrain_layout import build_layout
from napari_nuclei_unet.widgets._retrain_others import OtherRounds
from napari_nuclei_unet.widgets._retrain_project import (
    READ_ONLY_HINT,
    ROUND_LOST_NOTICE,
    DraftStore,
    default_project_dir,
    forget_round_note,
    interrupted_round,
    leave_other_choice,
    local_time,
    unwritable_reason,
)
from napari_nuclei_unet.widgets._session import session_for
from napari_nuclei_unet.widgets._workers import notify, notify_error

if TYPE_CHECKING:
    import napari
    from superqt.utils import WorkerBase

# ---------------------------------------------------------------------- the dock
class RetrainWidget(CorrectionSteps, FinetuneSteps, OtherRounds, QWidget):
    """The "Retrain" dock: corrections, fine-tuning rounds and model versions.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer (napari passes it); the dock shares its :class:`Session`.
    parent : QWidget, optional
        Parent widget.

    Attributes
    ----------
    project : pathlib.Path
        The project folder in use.
    last_result : FinetuneResult or None
        What the last finished round returned.
    curves : TrainingCurves
        The loss curve of the running (or last) round.
    """

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.project: Path = self.session.fine_tuning_project()  # the viewer's, or last time's
        self.last_result: Any = None
        self.last_adopted: bool | None = None
        self._edit: editing.EditState | None = None
        self._stop_event = self.session.finetune_stop  # one per viewer (h_gui33, H1)
        self._owns_round = self._closed_stop = False
        self._done_event = threading.Event()
        self._done_event.set()
        self._closing = False
        self._round_at = self._round_id = ""  # where the running round is; its note
        self._round_lost = ""  # a round of the project napari's closing or a crash cut short
        self._dead = False  # set when the Qt widget is destroyed (plain Python from then on)
        self._last_step_ui = 0.0
        self._epochs = 1
        self._outcome: str | None = None
        self._draft_error_shown = False
        self._store: Any = None
        self._save_queue: list[_SaveRequest] = []
        self._build()
        self._draft_timer = QTimer(self)
        self._draft_timer.setSingleShot(True)
        self._draft_timer.setInterval(DRAFT_DELAY_MS)
        self._draft_timer.timeout.connect(self._autosave_draft)
        # the Compare dock redraws its side-by-side view when predictions change (e.g.
        # after a round); a moment later, the correction being painted is shown again
        self._view_timer = QTimer(self)
        self._view_timer.setSingleShot(True)
        self._view_timer.setInterval(150)
        self._view_timer.timeout.connect(self._restore_editing_view)
        self._connect()
        self._watch = ProjectWatch(self, lambda: self._dead or self.refresh(), busy=lambda: (
            self.is_finetuning() or bool(self._save_queue) or self.session.jobs.is_running(
                SAVE_JOB)))  # a command line's round or corrections listed (h_gui44 M1)
        # a remembered project that cannot be written to (read-only since, a drive not
        # mounted) is said once, with the default project used meanwhile (h_gui10 N7)
        unwritable = unwritable_reason(self.project) if self.project.is_dir() else None
        if unwritable or not self.set_project(self.project, remember=False):  # broken index
            fallback = default_project_dir()
            if fallback == self.project or not self.set_project(fallback, remember=False):
                self.project_edit.setText("")
                self.project_edit.setPlaceholderText("choose a project folder")
                if unwritable:
                    notify(unwritable + READ_ONLY_HINT, warning=True)
            elif unwritable:
                notify(f"{unwritable} Working in the default fine-tuning project {fallback} "
                       "meanwhile; your folder is tried again when napari starts next time."
                       + READ_ONLY_HINT, warning=True)
            else:
                notify(f"Working in the default fine-tuning project {fallback} for now.")
        self.session.jobs.start("warm up fine-tuning", _warm_up, refuse=False,
                                action="Preparing fine-tuning")
        self._say_other_round()

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        build_layout(self)

    def _connect(self) -> None:
        self.choose_button.clicked.connect(self._choose_project)
        self.open_button.clicked.connect(self._open_project_folder)
        self.edit_prediction_button.clicked.connect(self.edit_prediction)
        self.edit_labels_button.clicked.connect(self.edit_label_mask)
        self.draft_button.clicked.connect(self.continue_draft)
        self.add_button.clicked.connect(self.add_to_training_set)
        self.remove_button.clicked.connect(self._remove_selected)
        self.aside_button.clicked.connect(self._toggle_aside_selected)
        self.corrections_table.itemSelectionChanged.connect(self._update_buttons)
        self.corrections_table.cellDoubleClicked.connect(self._on_correction_double_clicked)
        self.finetune_button.clicked.connect(self.start_finetune)
        self.stop_button.clicked.connect(self.stop)
        self.use_button.clicked.connect(self._use_selected)
        self.versions_table.itemSelectionChanged.connect(self._on_version_selected)
        self.versions_table.cellDoubleClicked.connect(lambda *_: self._use_selected())
        session = self.session
        session.current_changed.connect(self._on_current_changed)
        session.dataset_changed.connect(self._on_dataset_changed)
        session.model_changed.connect(self._on_model_changed)
        session.project_changed.connect(self._on_project_changed)
        session.project_chosen.connect(self._on_project_chosen)
        session.predictions_changed.connect(self._update_image_label)
        session.predictions_changed.connect(self._on_predictions_changed)
        session.jobs.started.connect(self._on_job_started)
        session.jobs.ended.connect(self._on_job_ended)
        self._napari_pairs = connect_napari([(self.viewer.layers.events.removed,
                                              self._on_layer_removed),
                                             (self.viewer.events.theme, self._on_theme)])
        on_destroyed(self, self._on_destroyed)  # keeps unsaved corrections as a draft
        share_the_column_when_shown(self)  # stacked under another dock

    def _on_destroyed(self, *_args: Any) -> None:
        # the dock's Qt objects are going away: only plain Python from here
        self._dead = True  # a job's late handlers (a round, a save) may still run
        if self._owns_round:  # never fine-tune on for a deleted dock, and say why
            self._closed_stop = self._closed_stop or not self._stop_event.is_set()
            self._stop_event.set()
        state = self._edit
        if state is not None:  # the session says again what happens to the mask's edits
            state.layer.metadata.pop(DRAFTED_KEY, None)
        if state is not None:  # its edits, and strokes painted since (h_gui38 M2): a draft
            editing.keep_drafting(state, self.project)
        disconnect_all((
            (self.session.current_changed, self._on_current_changed),
            (self.session.dataset_changed, self._on_dataset_changed),
            (self.session.model_changed, self._on_model_changed),
            (self.session.project_changed, self._on_project_changed),
            (self.session.project_chosen, self._on_project_chosen),
            (self.session.predictions_changed, self._update_image_label),
            (self.session.predictions_changed, self._on_predictions_changed),
            (self.session.jobs.started, self._on_job_started),
            (self.session.jobs.ended, self._on_job_ended),
            *self._napari_pairs,
        ))

    # ----------------------------------------------------------------- project
    def corrections_store(self) -> Any:
        """The project's :class:`~napari_nuclei_unet.core.finetune.CorrectionStore`.

        One instance per project, opened by :meth:`set_project` and shared with the
        dock's workers (other instances are safe too: saves hold the project's lock).
        """
        return self._store

    def model_versions(self) -> Any:
        """The project's :class:`~napari_nuclei_unet.core.finetune.ModelVersions`."""
        from napari_nuclei_unet.core.finetune import ModelVersions

        return ModelVersions(self.project)

    def set_project(self, folder: str | Path, *, remember: bool = True) -> bool:
        """Use ``folder`` as the project (created on the first save) and list its contents.

        Parameters
        ----------
        folder : str or pathlib.Path
            The project folder.
        remember : bool, optional
            Reopen it next time napari starts.

        Returns
        -------
        bool
            False when refused (a round is running, the folder cannot be written to,
            or it holds a broken project index); a notification says why.
        """
        from napari_nuclei_unet.core.finetune import CorrectionStore

        folder = Path(folder).expanduser().absolute()
        if folder == self.project and self._store is not None:
            self.refresh()
            return True
        if self.is_finetuning() and self._store is not None:  # a new view opens the
            # session's project, the round's (a dock opened again mid-round: h_gui33, H1)
            notify("Wait for the fine-tuning round to finish before changing the project.")
            return False
        if folder.exists() and not folder.is_dir():
            notify(f"{folder} is a file, not a folder: choose a folder for the project.",
                   warning=True)
            return False
        if self._save_queue or self.session.jobs.is_running(SAVE_JOB):
            notify("Wait for the corrections being saved, then change the project.")
            return False
        unwritable = unwritable_reason(folder)
        if unwritable:  # its corrections, drafts and versions could not be saved: refused
            stays = (f" The fine-tuning project stays {self.project}."
                     if self._store is not None else "")
            notify(unwritable + stays + READ_ONLY_HINT, warning=True)
            return False
        try:
            store = CorrectionStore(folder)  # reads the index, repairs a crashed save
        except (ValueError, OSError) as exc:
            notify_error(exc, f"Opening the project {folder}")
            return False
        self._flush_draft(warn=False)  # a copy of unsaved edits stays with the old project
        self.project = folder
        self._watch.follow(folder)
        self._store = store
        self._draft_error_shown = False
        self.project_edit.setText(str(folder))
        self.project_edit.setToolTip(str(folder))
        self.project_edit.setCursorPosition(len(str(folder)))  # the folder's own name shows
        self.scores_table.set_changes([])
        self.summary_label.setText("")
        self._clear_round_messages()
        self._round_lost = interrupted_round(folder) or ""  # shown with the model in use
        if self._round_lost:  # (the status line lay below a laptop's screen: h_gui29 M1)
            forget_round_note(folder)
            notify(ROUND_LOST_NOTICE)
        self.session.set_project_dir(folder, remember=remember)  # the Segment dock's too
        self.refresh()
        rounds = [v for v in self.versions() if not v.is_base]
        if rounds:  # a reopened project shows what its last round measured
            self.versions_table.select_key(rounds[-1].name)
        return True

    def _clear_round_messages(self) -> None:
        """Forget the last round's lines: the model or the project they spoke of changed."""
        self.adoption_label.setVisible(False)
        self.status_label.setText(" ")
        self.progress.setValue(0)
        self.progress.setFormat("not fine-tuning")

    def _on_project_chosen(self, folder: str) -> None:
        """Another dock (the Segment dock) chose the viewer's project: show it here."""
        if self._dead or Path(folder) == self.project:
            return
        if not self.set_project(folder):
            notify(f"The fine-tuning project stays {self.project}.")
            # the other docks show it again; the one remembered is left as it was
            self.session.set_project_dir(self.project, remember=False)

    def corrections(self) -> list[Any]:
        """The corrections of the project (``core.finetune.Correction``), sorted by id."""
        if self._store is None:
            return []
        try:
            return self._store.list()
        except (ValueError, OSError) as exc:
            notify_error(exc, "Reading the project")
            return []

    def versions(self) -> list[Any]:
        """The model versions of the project (``core.finetune.ModelVersion``), oldest first."""
        try:
            return self.model_versions().list()
        except OSError as exc:
            notify_error(exc, "Reading the model versions")
            return []

    def current_version(self) -> Any:
        """The project version the session's model was loaded from, or None."""
        return version_of_model(self.session.model, self.versions())

    def refresh(self) -> None:
        """List the corrections and versions again and update every label."""
        corrections = self.corrections()
        self.corrections_table.set_corrections(corrections)
        drafts = DraftStore(self.project).ids()
        text = f"{len(corrections)} image(s)"
        aside = sum(c.aside for c in corrections)
        if aside:
            text += f", {aside} kept aside"
        if drafts:
            text += f" · {len(drafts)} draft(s) not added yet"
        self.corrections_label.setText(text)
        versions = self.versions()
        self.versions_label.setText(
            "No round yet: the first one records the current model as v000."
            if not versions else f"{len(versions)} version(s); ● marks the one in use."
        )
        self._show_model_in_use(versions, version_of_model(self.session.model, versions))
        self._update_image_label()
        self._update_buttons()

    def _choose_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Choose a project folder (an empty one starts a new project)", str(self.project)
        )
        if folder:
            self.set_project(folder)

    def _open_project_folder(self) -> None:
        try:
            self.project.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            notify_error(exc, "Opening the project folder")
            return
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.project)))

    # ----------------------------------------------------------------- versions
    def use_version(self, name: str) -> WorkerBase | None:
        """Make project version ``name`` the session's model (loaded in a worker).

        Parameters
        ----------
        name : str
            ``"v000"``, ``"v001"``...

        Returns
        -------
        WorkerBase or None
            The loading worker, or None when refused.
        """
        if self.is_finetuning():
            notify("Wait for the fine-tuning round to finish before switching versions.")
            return None
        try:
            version = self.model_versions().get(name)
        except KeyError as exc:
            notify(str(exc).strip("'\""), warning=True)
            return None

        def use(loaded: Any) -> None:
            self.session.set_model(loaded)
            try:  # the project's model from now on, also after napari starts again
                self.model_versions().choose(version.name)
            except (OSError, KeyError) as exc:
                notify_error(exc, f"Recording {version.name} as the project's model")
            again = (self.predicted_words() if self.samples_to_predict()
                     else "press Segment (Segment panel) to see it on your images")
            notify(f"Now using model {version_words(version)}; {again}.")  # h_gui33, M3
            self.refresh()
            # the scores shown are those of the version in use, not of the last round
            # (GUI check h_gui11, L6)
            self.versions_table.select_key(version.name)
            self._on_version_selected()
            self.predict_corrected()

        return self.session.jobs.start(
            LOAD_MODEL_JOB, _load_version, version, on_returned=use,
            action=f"Loading model {version.name}", viewer=self.viewer,
        )

    def _use_selected(self) -> None:
        name = self.versions_table.selected_key()
        if name is None:
            notify("Select a version in the list first.")
            return
        version = next((v for v in self.versions() if v.name == name), None)
        if version is not None and not version.adopted and not version.unreadable \
                and not self._confirm_refused(version.name):
            return  # a double click to look at its scores put it in use (GUI check h_gui14)
        self.use_version(name)

    def _confirm_refused(self, name: str) -> bool:
        from qtpy.QtWidgets import QMessageBox

        version = next((v for v in self.versions() if v.name == name), None)
        # its own reason: "did worse" was said of rounds that gained too little (h_gui33 L1)
        why = after_colon((version.reason if version is not None else "").split(". ")[0])
        why = why.rstrip(".")
        answer = QMessageBox.question(
            self, "Use a version its round did not make current?",
            f"Its round did not make {name} current" + (f": {why}." if why else ".")
            + " Use it anyway? It becomes this project's model, also when napari starts "
            "again, until a round is made current or another of its versions is put in use.")
        return answer == QMessageBox.StandardButton.Yes

    def _on_version_selected(self) -> None:
        name = self.versions_table.selected_key()
        if name is None:
            return
        version = next((v for v in self.versions() if v.name == name), None)
        self.show_version_reason(version)  # why it was not made current, or nothing
        if version is not None and version.is_base:
            self.show_scores([], title=f"{version_words(version)}: the model the first round "
                                       "started from (no round made it: no scores).")
        if version is None or version.is_base or version.unreadable:
            self._update_buttons()
            return
        scores = version.info.get("scores") or {}
        changes = scores.get("corrected") or []
        base = (base_model_words(version.info.get("base_model"), self.project)
                or "the model before the round")
        self.show_scores(changes, aside=scores.get("held_out") or [],
                         regression=scores.get("regression") or [],
                         title=f"{version.name}: IoU of the corrected images with "
                               f"{base} (before) and {version.name} (after)")
        self._update_buttons()

    # -------------------------------------------------------------- labels etc.
    def _on_project_changed(self, folder: str) -> None:
        """Another dock added to a project: list it again if it is this dock's."""
        if self._dead:
            return
        if same_path(folder, self.project):
            self.refresh()

    def _on_model_changed(self) -> None:
        if not self.is_finetuning():  # a round's own outcome sets the model while it ends
            self._clear_round_messages()  # they were about the model used before
        versions = self.versions()
        current = version_of_model(self.session.model, versions)
        if current is not None and not self.is_finetuning():
            try:  # another of its versions put in use: the project's own rule again
                leave_other_choice(self.model_versions(), current, versions)
            except OSError as exc:
                notify_error(exc, "Forgetting the version chosen for this project")
        self._show_model_in_use(versions, current)
        self._update_buttons()

    def _show_model_in_use(self, versions: list[Any], current: Any) -> None:
        """Mark the version in use (●) and say it; ``current``: the model in use's version."""
        marked = marked_version(self.session.model, versions, self.model_versions(), current)
        self.versions_table.set_versions(versions, marked)
        self._update_model_label(current, versions)

    def _update_model_label(self, current: Any, versions: list[Any]) -> None:
        """Say which model is in use; ``versions``: the project's, as just listed."""
        model = self.session.model
        project_model = self.model_versions().current(versions) if model is None else None
        if project_model is not None and version_words(project_model) == project_model.name:
            # not the shipped model (a v000 copied from a checkpoint is named too)
            # e.g. napari restarted: the project is back, its model is not loaded yet
            text = (f"No model loaded. This project's model is <b>{project_model.name}</b>: "
                    "'Fine-tune' and the Segment panel use it; to predict dataset images "
                    "with it, click 'Use this version' under '4. Model versions'.")
        elif model is None:
            text = ("No model loaded: 'Fine-tune' starts from the default model (or load "
                    "one in the Model panel).")
        elif current is not None:
            text = f"Model in use: <b>{version_words(current)}</b> of this project."
        else:
            # named as the Model and Compare docks name it ("run-…/best", not "best")
            name = (model_name_in(model, self.project) if getattr(model, "path", None)
                    else "unsaved model")
            text = (f"Model in use: <b>{name}</b> (the first round records it as v000)."
                    if not versions else
                    f"Model in use: <b>{name}</b> "
                    f"({self._not_a_version_words(model, versions)}).")
        if self._round_lost:  # until the next round starts
            text = f"<span style='color:#f0a030'><b>{self._round_lost}</b></span><br>{text}"
        self.model_label.setText(text)

    @staticmethod
    def _not_a_version_words(model: Any, versions: list[Any]) -> str:
        """Why the model in use is not listed among this project's ``versions``.

        A package exported from one of them is told by the version's name and time: a
        colleague's project of the same name ("default") has a v003 of its own.
        """
        info = (getattr(model, "metadata", None) or {}).get("finetune") or {}
        version, project = info.get("version"), info.get("project")
        if not isinstance(version, str) or not isinstance(project, str):
            return "not a version of this project"
        made = info.get("version_created")
        if made and any(v.name == version and v.created == made for v in versions):
            return (f"a package exported from this project's {version}; the version itself "
                    "is listed under '4. Model versions'")
        return f"a package exported from {version} of project {project}"

    def _update_image_label(self, *_args: Any) -> None:
        sample = self._current_sample()
        if sample is None:  # the project's corrections (from Segment image) come first
            n = self.corrections_table.rowCount()  # as listed by refresh: no folder read
            self.image_label.setText(NO_IMAGE if not n else (
                f"This project holds {n} correction(s), listed in '2. Training set': "
                f"'3. Fine-tune the model' learns from them. {NO_IMAGE}"))  # (h_gui23, L4)
            self.draft_button.setVisible(False)
            return
        from napari_nuclei_unet.core.finetune import safe_sample_id

        parts = [f"Image <b>{short_id(sample.id)}</b>"]
        store = self._store
        correction_id = safe_sample_id(sample.id)
        if store is not None and correction_id in store:
            try:
                saved = local_time(store.get(correction_id).updated)
            except KeyError:
                saved = ""
            parts.append(f"in the training set (saved {saved})" if saved
                         else "in the training set")
        else:
            parts.append("not in the training set")
        state = self._edit
        editing_it = state is not None and state.sample.id == sample.id
        if editing_it:
            on_copy = state.layer.name == editing.CORRECTION_LAYER
            what = ("saved correction" if state.saved else "draft" if state.baseline is None
                    else "prediction copy" if on_copy else "label mask")  # (h_gui29 L3)
            parts.append(f"editing the {what}" + (" · <b>unsaved edits</b>" if state.is_dirty()
                                                  else ""))
        has_draft = DraftStore(self.project).has(sample.id)
        if has_draft and not editing_it:
            parts.append("a draft correction is waiting")
        self.image_label.setText(" · ".join(parts))
        self.image_label.setTextFormat(Qt.TextFormat.RichText)
        self.draft_button.setVisible(has_draft and not editing_it)

    def _update_buttons(self) -> None:
        running = self.is_finetuning()
        self.finetune_button.setEnabled(not running)
        self.stop_button.setEnabled(running and not self._stop_event.is_set())
        self.choose_button.setEnabled(not running)
        selected = self.versions_table.selected_key()
        self.use_button.setEnabled(not running and selected is not None
                                   and selected not in self.versions_table.unreadable)
        chosen = self.corrections_table.selected_key()
        self.remove_button.setEnabled(chosen is not None and not running)  # h_gui33 L8
        self.aside_button.setEnabled(chosen is not None and not running)
        self.aside_button.setText("Train on it" if chosen in self.corrections_table.aside
                                  else "Keep aside")
        self.add_button.setEnabled(not self.session.jobs.is_running(SAVE_JOB))

    def _on_theme(self, *_args: Any) -> None:
        if self._dead:
            return
        self.curves.set_theme(getattr(self.viewer, "theme", "dark"))
