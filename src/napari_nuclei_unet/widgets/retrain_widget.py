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
   becomes the session's model; the corrected images and the shown one are
   predicted again, so the Compare dock and the IoU panel update by themselves,
   and the dock lists each corrected image's IoU before and after.
4. **Versions**: any earlier version (``v000`` is the model the project started
   from) can be used again.

The project folder is chosen by the user and remembered for next time
(:mod:`~napari_nuclei_unet.widgets._retrain_project`).

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
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt, QTimer, QUrl
from qtpy.QtGui import QDesktopServices
from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from napari_nuclei_unet.core.finetune import FINETUNE_DEFAULTS
from napari_nuclei_unet.widgets import _retrain_editing as editing
from napari_nuclei_unet.widgets._layers import (
    LABELS_LAYER,
    SAMPLE_ID_KEY,
    find_layer,
    short_id,
    show_sample,
)
from napari_nuclei_unet.widgets._retrain_finetune import FinetuneSteps
from napari_nuclei_unet.widgets._retrain_jobs import (  # noqa: F401  (re-exported)
    BUSY_FINETUNE,
    BUSY_TRAINING,
    CLOSE_TIMEOUT_S,
    DRAFT_DELAY_MS,
    FINETUNE_JOB,
    LOAD_MODEL_JOB,
    NO_CORRECTIONS,
    NO_IMAGE,
    NO_MODEL,
    NO_MODEL_FILE,
    NO_PREDICTION,
    SAVE_JOB,
    _load_version,
    _run_finetune,
    _same_file,
    _save_correction,
    _SaveRequest,
    _warm_up,
    round_adopted,
    version_of_model,
)
from napari_nuclei_unet.widgets._retrain_project import (
    START_LABEL,
    START_PREDICTION,
    DraftStore,
    default_project_dir,
    last_project_dir,
    local_time,
    remember_project_dir,
)
from napari_nuclei_unet.widgets._retrain_views import (
    CorrectionsTable,
    ScoreChangeTable,
    VersionsTable,
    loss_curves,
)
from napari_nuclei_unet.widgets._session import disconnect_all, on_destroyed, session_for
from napari_nuclei_unet.widgets._workers import notify, notify_error

if TYPE_CHECKING:
    import napari
    from superqt.utils import WorkerBase

# ---------------------------------------------------------------------- the dock
class RetrainWidget(FinetuneSteps, QWidget):
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
        self.project: Path = last_project_dir()
        self.last_result: Any = None
        self.last_adopted: bool | None = None
        self._edit: editing.EditState | None = None
        self._stop_event = threading.Event()
        self._done_event = threading.Event()
        self._done_event.set()
        self._closing = False
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
        if not self.set_project(self.project, remember=False):  # e.g. a broken project index
            fallback = default_project_dir()
            if fallback == self.project or not self.set_project(fallback, remember=False):
                self.project_edit.setText("")
                self.project_edit.setPlaceholderText("choose a project folder")
        self.session.jobs.start("warm up fine-tuning", _warm_up, refuse=False,
                                action="Preparing fine-tuning")

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumHeight(260)  # stacked under other docks, it must stay usable
        body = QWidget()
        layout = QVBoxLayout(body)
        scroll.setWidget(body)
        outer.addWidget(scroll)

        # project folder
        project_row = QHBoxLayout()
        project_row.addWidget(QLabel("Project"))
        self.project_edit = QLineEdit()
        self.project_edit.setReadOnly(True)
        self.project_edit.setToolTip("Corrections and model versions are saved in this folder")
        self.choose_button = QPushButton("Change…")
        self.choose_button.setToolTip("Open another project folder (or an empty one to start)")
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Show the project folder in the file browser")
        project_row.addWidget(self.project_edit, 1)
        project_row.addWidget(self.choose_button)
        project_row.addWidget(self.open_button)
        layout.addLayout(project_row)

        # 1. correct
        correct_box = QGroupBox("1. Correct the shown image")
        correct = QVBoxLayout(correct_box)
        self.image_label = QLabel()
        self.image_label.setWordWrap(True)
        correct.addWidget(self.image_label)
        edit_row = QHBoxLayout()
        self.edit_prediction_button = QPushButton("Edit prediction as labels")
        self.edit_prediction_button.setToolTip(
            "Copy the predicted nuclei into an editable layer and paint on it")
        self.edit_labels_button = QPushButton("Edit label mask")
        self.edit_labels_button.setToolTip("Paint on the image's label mask")
        edit_row.addWidget(self.edit_prediction_button)
        edit_row.addWidget(self.edit_labels_button)
        correct.addLayout(edit_row)
        self.draft_button = QPushButton("Continue draft")
        self.draft_button.setToolTip("Bring back the corrections of this image that were not "
                                     "added to the training set yet")
        self.draft_button.setVisible(False)
        correct.addWidget(self.draft_button)
        self.keys_label = QLabel(editing.KEY_HINT)
        self.keys_label.setTextFormat(Qt.TextFormat.RichText)
        self.keys_label.setWordWrap(True)
        font = self.keys_label.font()
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.9))
        self.keys_label.setFont(font)
        correct.addWidget(self.keys_label)
        self.add_button = QPushButton("Add to training set")
        self.add_button.setToolTip("Save the image and the corrected nuclei in the project")
        correct.addWidget(self.add_button)
        layout.addWidget(correct_box)

        # 2. training set
        set_box = QGroupBox("2. Training set (corrected images)")
        set_layout = QVBoxLayout(set_box)
        self.corrections_table = CorrectionsTable()
        self.corrections_table.setToolTip("Double-click a row to show that image")
        set_layout.addWidget(self.corrections_table)
        set_buttons = QHBoxLayout()
        self.corrections_label = QLabel()
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Take the selected image out of the training set (its "
                                      "files are moved to the project's removed/ folder)")
        set_buttons.addWidget(self.corrections_label, 1)
        set_buttons.addWidget(self.remove_button)
        set_layout.addLayout(set_buttons)
        layout.addWidget(set_box)

        # 3. fine-tune
        tune_box = QGroupBox("3. Fine-tune the model")
        tune = QVBoxLayout(tune_box)
        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        tune.addWidget(self.model_label)
        form = QFormLayout()
        self.ratio_spin = QDoubleSpinBox()
        self.ratio_spin.setRange(0.0, 1.0)
        self.ratio_spin.setSingleStep(0.05)
        self.ratio_spin.setDecimals(2)
        self.ratio_spin.setSpecialValueText("automatic")  # 0: weighted by how few there are
        self.ratio_spin.setValue(0.0)
        self.ratio_spin.setToolTip(
            "Share of each training batch taken from your corrections; the rest comes from "
            "the shipped replay crops and the loaded original images, so the model does not "
            "forget them (1: corrections only). Automatic gives a few corrections more weight.")
        form.addRow("Share of corrections", self.ratio_spin)
        tune.addLayout(form)
        settings = QCollapsible("Round settings")
        inner = QWidget()
        settings_form = QFormLayout(inner)
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 100)
        self.epochs_spin.setValue(int(FINETUNE_DEFAULTS["epochs"]))
        self.epochs_spin.setToolTip("Short passes over the mixed training images")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 1000)
        self.steps_spin.setValue(int(FINETUNE_DEFAULTS["steps_per_epoch"]))
        self.steps_spin.setToolTip("Batches per epoch")
        settings_form.addRow("Epochs", self.epochs_spin)
        settings_form.addRow("Steps per epoch", self.steps_spin)
        settings.addWidget(inner)
        tune.addWidget(settings)
        tune_buttons = QHBoxLayout()
        self.finetune_button = QPushButton("Fine-tune")
        self.finetune_button.setToolTip("Continue training the current model on the training set")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop the round; nothing is saved and the model is unchanged")
        self.stop_button.setEnabled(False)
        tune_buttons.addWidget(self.finetune_button, 1)
        tune_buttons.addWidget(self.stop_button)
        tune.addLayout(tune_buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("not fine-tuning")
        tune.addWidget(self.progress)
        self.status_label = QLabel(" ")
        self.status_label.setWordWrap(True)
        tune.addWidget(self.status_label)
        # a round that scored worse is kept as a version, never made current: say so
        self.adoption_label = QLabel()
        self.adoption_label.setWordWrap(True)
        self.adoption_label.setStyleSheet("color: #f0a030; font-weight: bold")
        self.adoption_label.setVisible(False)
        tune.addWidget(self.adoption_label)
        self.curves = loss_curves(getattr(self.viewer, "theme", "dark"))
        tune.addWidget(self.curves)
        self.scores_title = QLabel("IoU of the corrected images, before and after a round")
        self.scores_title.setWordWrap(True)
        tune.addWidget(self.scores_title)
        self.scores_table = ScoreChangeTable()
        tune.addWidget(self.scores_table)
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(Qt.TextFormat.RichText)
        tune.addWidget(self.summary_label)
        layout.addWidget(tune_box)

        # 4. versions
        versions_box = QGroupBox("4. Model versions")
        versions = QVBoxLayout(versions_box)
        self.versions_table = VersionsTable()
        self.versions_table.setToolTip("Select a version to see its scores; double-click to use it")
        versions.addWidget(self.versions_table)
        version_buttons = QHBoxLayout()
        self.versions_label = QLabel()
        self.versions_label.setWordWrap(True)
        self.use_button = QPushButton("Use this version")
        self.use_button.setToolTip("Make the selected version the current model (nothing is "
                                   "deleted)")
        version_buttons.addWidget(self.versions_label, 1)
        version_buttons.addWidget(self.use_button)
        versions.addLayout(version_buttons)
        layout.addWidget(versions_box)
        layout.addStretch(1)

    def _connect(self) -> None:
        self.choose_button.clicked.connect(self._choose_project)
        self.open_button.clicked.connect(self._open_project_folder)
        self.edit_prediction_button.clicked.connect(self.edit_prediction)
        self.edit_labels_button.clicked.connect(self.edit_label_mask)
        self.draft_button.clicked.connect(self.continue_draft)
        self.add_button.clicked.connect(self.add_to_training_set)
        self.remove_button.clicked.connect(self._remove_selected)
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
        session.predictions_changed.connect(self._update_image_label)
        session.predictions_changed.connect(self._on_predictions_changed)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self.viewer.events.theme.connect(self._on_theme)
        # never fine-tune on for a deleted dock; keep its unsaved edits
        self.destroyed.connect(self._stop_event.set)
        on_destroyed(self, self._on_destroyed)  # keeps unsaved corrections as a draft

    def _on_destroyed(self, *_args: Any) -> None:
        # the dock's Qt objects are going away: only plain Python from here
        self._dead = True  # napari may still call a handler whose disconnect failed
        state = self._edit
        if state is not None and state.is_dirty():
            try:
                DraftStore(self.project).save(state.sample.id, state.current_labels(),
                                              state.start)
            except OSError as exc:
                notify_error(exc, f"Saving your corrections of {short_id(state.sample.id)}")
        disconnect_all((
            (self.session.current_changed, self._on_current_changed),
            (self.session.dataset_changed, self._on_dataset_changed),
            (self.session.model_changed, self._on_model_changed),
            (self.session.predictions_changed, self._update_image_label),
            (self.session.predictions_changed, self._on_predictions_changed),
            (self.viewer.layers.events.removed, self._on_layer_removed),
            (self.viewer.events.theme, self._on_theme),
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
            False when refused (a round is running, or the folder holds a broken
            project index); a notification says why.
        """
        from napari_nuclei_unet.core.finetune import CorrectionStore

        folder = Path(folder).expanduser().absolute()
        if folder == self.project and self._store is not None:
            self.refresh()
            return True
        if self.is_finetuning():
            notify("Wait for the fine-tuning round to finish before changing the project.")
            return False
        if folder.exists() and not folder.is_dir():
            notify(f"{folder} is a file, not a folder: choose a folder for the project.",
                   warning=True)
            return False
        if self._save_queue or self.session.jobs.is_running(SAVE_JOB):
            notify("Wait for the corrections being saved, then change the project.")
            return False
        try:
            store = CorrectionStore(folder)  # reads the index, repairs a crashed save
        except (ValueError, OSError) as exc:
            notify_error(exc, f"Opening the project {folder}")
            return False
        self._flush_draft(warn=False)  # a copy of unsaved edits stays with the old project
        self.project = folder
        self._store = store
        self._draft_error_shown = False
        self.project_edit.setText(str(folder))
        self.project_edit.setToolTip(str(folder))
        self.project_edit.setCursorPosition(len(str(folder)))  # the folder's own name shows
        if remember:
            try:
                remember_project_dir(folder)
            except OSError as exc:
                notify_error(exc, "Remembering the project folder")
        self.scores_table.set_changes([])
        self.summary_label.setText("")
        self.refresh()
        return True

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
        if drafts:
            text += f" · {len(drafts)} draft(s) not added yet"
        self.corrections_label.setText(text)
        versions = self.versions()
        current = version_of_model(self.session.model, versions)
        self.versions_table.set_versions(versions, None if current is None else current.name)
        self.versions_label.setText(
            "No round yet: the first one records the current model as v000."
            if not versions else f"{len(versions)} version(s); ● marks the one in use."
        )
        self._update_model_label(current)
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

    # --------------------------------------------------------------- correcting
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
        if labels is None:
            notify(NO_PREDICTION, warning=True)
            return None
        self._keep_unsaved_edits()
        layer = editing.promote_prediction(self.viewer, labels, sample, start=START_PREDICTION)
        start = np.array(layer.data, copy=True)
        self._begin_edit(editing.EditState(sample, layer, layer.data, START_PREDICTION, start,
                                           start))
        return layer

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
        state.layer.events.paint.connect(self._on_paint)
        self._update_image_label()
        self._update_buttons()

    def _end_edit(self) -> None:
        self._draft_timer.stop()
        state, self._edit = self._edit, None
        if state is None:
            return
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
            notify(
                f"Your corrections of {short_id(state.sample.id)} are not in the training set "
                "yet. They were kept as a draft: show that image again and click 'Continue "
                "draft', then 'Add to training set'.",
                warning=True,
            )
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

    def _on_predictions_changed(self) -> None:
        state = self._edit
        if (state is not None and state.layer.name == editing.CORRECTION_LAYER
                and state.sample.id == self.session.current_id):
            self._view_timer.start()

    def _restore_editing_view(self) -> None:
        state = self._edit
        if (state is None or state.layer.name != editing.CORRECTION_LAYER
                or state.sample.id != self.session.current_id
                or state.layer not in self.viewer.layers):
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
        labels = np.array(state.current_labels(), copy=True)
        if labels.max(initial=0) <= 0:
            notify("The mask is empty: paint at least one nucleus before adding the image.",
                   warning=True)
            return None
        edited = state.was_edited()
        source = "label" if edited or state.start == START_LABEL else "prediction"
        note = f"started from the {state.start}" + (", edited by hand" if edited else "")
        request = _SaveRequest(state, sample, safe_sample_id(sample.id), labels, source, note)
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
        request = self._save_queue.pop(0)
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
        current = self._edit
        if current is request.state and current.current_labels().shape == request.labels.shape:
            if np.array_equal(current.current_labels(), request.labels):
                current.mark_added()
            else:  # painted on during the save: the new strokes are still unsaved
                current.baseline = request.labels
        notify(f"{short_id(request.sample.id)} added to the training set "
               f"({correction.n_nuclei} nuclei). {len(self.corrections())} image(s) in the "
               "project.")
        self.refresh()
        self.corrections_table.select_key(correction.id)

    def _on_save_finished(self) -> None:
        self._update_buttons()
        self._start_next_save()

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

    def _remove_selected(self) -> None:
        sample_id = self.corrections_table.selected_key()
        if sample_id is None:
            notify("Select a corrected image in the list first.")
            return
        self.remove_correction(sample_id)

    def _on_correction_double_clicked(self, row: int, _column: int) -> None:
        item = self.corrections_table.item(row, 0)
        if item is not None:
            self.show_sample_id(item.data(Qt.ItemDataRole.UserRole))

    def show_sample_id(self, sample_id: str) -> bool:
        """Show a loaded image (as the Data panel does); return False when it is not loaded."""
        sample = self.session.samples.get(sample_id)
        if sample is None:
            notify(f"{short_id(sample_id)} is not among the loaded images: open its dataset "
                   "in the Data panel to see it.")
            return False
        try:
            show_sample(self.viewer, sample)
            self.session.set_current(sample.id)
        except Exception as exc:  # never a traceback dialog for a click
            notify_error(exc, f"Showing image {short_id(sample_id)}")
            return False
        return True

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
            notify(f"Now using model {version.name}; the corrected images are predicted again.")
            self.refresh()
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
        self.use_version(name)

    def _on_version_selected(self) -> None:
        name = self.versions_table.selected_key()
        if name is None:
            return
        version = next((v for v in self.versions() if v.name == name), None)
        if version is None or version.is_base:
            self._update_buttons()
            return
        changes = (version.info.get("scores") or {}).get("corrected") or []
        base = str(version.info.get("base_model", "?"))
        base = "the default model" if base == "default" else Path(base).name
        self.show_scores(changes, title=f"{version.name}: IoU of the corrected images with "
                                        f"{base} (before) and {version.name} (after)")
        self._update_buttons()

    # -------------------------------------------------------------- labels etc.
    def _on_model_changed(self) -> None:
        versions = self.versions()
        current = version_of_model(self.session.model, versions)
        self.versions_table.set_versions(versions, None if current is None else current.name)
        self._update_model_label(current)
        self._update_buttons()

    def _update_model_label(self, current: Any = None) -> None:
        model = self.session.model
        if model is None:
            text = "No model loaded: load one in the Model panel (or the Compare panel)."
        elif current is not None:
            text = f"Model in use: <b>{current.name}</b> of this project."
        else:
            path = getattr(model, "path", None)
            name = "unsaved model" if path is None else Path(path).stem
            if path is not None and Path(path).name == "default.safetensors":
                name = "default model"
            text = (f"Model in use: <b>{name}</b> (the first round records it as v000)."
                    if not self.versions() else
                    f"Model in use: <b>{name}</b> (not a version of this project).")
        self.model_label.setText(text)

    def _update_image_label(self, *_args: Any) -> None:
        sample = self._current_sample()
        if sample is None:
            self.image_label.setText(NO_IMAGE)
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
            what = "prediction copy" if on_copy else "label mask"
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
        self.use_button.setEnabled(not running and self.versions_table.selected_key() is not None)
        self.remove_button.setEnabled(self.corrections_table.selected_key() is not None)
        self.add_button.setEnabled(not self.session.jobs.is_running(SAVE_JOB))

    def _on_theme(self, *_args: Any) -> None:
        if self._dead:
            return
        self.curves.set_theme(getattr(self.viewer, "theme", "dark"))
