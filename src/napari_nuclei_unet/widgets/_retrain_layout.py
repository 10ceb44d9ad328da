"""The Retrain dock's layout: project row, then the four steps as boxes.

:func:`build_layout` creates the dock's widgets as attributes of the dock
(``dock.add_button``, ``dock.progress``, ...); the dock connects them.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible

from napari_nuclei_unet.core.finetune import FINETUNE_DEFAULTS, ROUND_OPTIONS
from napari_nuclei_unet.core.finetune.rounds import steps_for_error
from napari_nuclei_unet.widgets import _retrain_editing as editing
from napari_nuclei_unet.widgets._retrain_views import (
    CorrectionsTable,
    ScoreChangeTable,
    VersionsTable,
    loss_curves,
)
from napari_nuclei_unet.widgets._scroll import scrolled_layout


def build_layout(dock: Any) -> None:
    """Create the Retrain dock's widgets, as attributes of ``dock``, in a scroll area."""
    layout = scrolled_layout(dock)

    # project folder
    project_row = QHBoxLayout()
    project_row.addWidget(QLabel("Project"))
    dock.project_edit = QLineEdit()
    dock.project_edit.setReadOnly(True)
    dock.project_edit.setToolTip("Corrections and model versions are saved in this folder")
    dock.choose_button = QPushButton("Change…")
    dock.choose_button.setToolTip("Open another project folder (or an empty one to start)")
    dock.open_button = QPushButton("Open")
    dock.open_button.setToolTip("Show the project folder in the file browser")
    project_row.addWidget(dock.project_edit, 1)
    project_row.addWidget(dock.choose_button)
    project_row.addWidget(dock.open_button)
    layout.addLayout(project_row)

    # 1. correct
    correct_box = QGroupBox("1. Correct the shown image")
    correct = QVBoxLayout(correct_box)
    dock.image_label = QLabel()
    dock.image_label.setWordWrap(True)
    correct.addWidget(dock.image_label)
    edit_row = QHBoxLayout()
    dock.edit_prediction_button = QPushButton("Edit prediction as labels")
    dock.edit_prediction_button.setToolTip(
        "Copy the predicted nuclei into an editable layer and paint on it")
    dock.edit_labels_button = QPushButton("Edit label mask")
    dock.edit_labels_button.setToolTip("Paint on the image's label mask")
    edit_row.addWidget(dock.edit_prediction_button)
    edit_row.addWidget(dock.edit_labels_button)
    correct.addLayout(edit_row)
    dock.draft_button = QPushButton("Continue draft")
    dock.draft_button.setToolTip("Bring back the corrections of this image that were not "
                                 "added to the training set yet")
    dock.draft_button.setVisible(False)
    correct.addWidget(dock.draft_button)
    dock.keys_label = QLabel(editing.KEY_HINT)
    dock.keys_label.setTextFormat(Qt.TextFormat.RichText)
    dock.keys_label.setWordWrap(True)
    font = dock.keys_label.font()
    font.setPointSizeF(max(7.0, font.pointSizeF() * 0.9))
    dock.keys_label.setFont(font)
    correct.addWidget(dock.keys_label)
    dock.add_button = QPushButton("Add to training set")
    dock.add_button.setToolTip("Save the image and the corrected nuclei in the project")
    correct.addWidget(dock.add_button)
    layout.addWidget(correct_box)

    # 2. training set
    set_box = QGroupBox("2. Training set (corrected images)")
    set_layout = QVBoxLayout(set_box)
    dock.corrections_table = CorrectionsTable()
    dock.corrections_table.setToolTip("Double-click a row to show that image with its "
                                      "correction as saved, to look at it or fix it")
    set_layout.addWidget(dock.corrections_table)
    set_buttons = QHBoxLayout()
    dock.corrections_label = QLabel()
    dock.corrections_label.setWordWrap(True)  # "… · 1 draft(s) not added yet" widened the tab
    dock.remove_button = QPushButton("Remove")
    dock.remove_button.setToolTip("Take the selected image out of the training set (its "
                                  "files are moved to the project's removed/ folder)")
    dock.aside_button = QPushButton("Keep aside")  # "Train on it" for an image kept aside
    dock.aside_button.setToolTip(
        "Keep the selected image out of training, to check rounds on it: each round scores "
        "it before and after, and a round that makes it worse is not made current")
    set_buttons.addWidget(dock.corrections_label, 1)
    set_buttons.addWidget(dock.aside_button)
    set_buttons.addWidget(dock.remove_button)
    set_layout.addLayout(set_buttons)
    layout.addWidget(set_box)

    # 3. fine-tune
    tune_box = QGroupBox("3. Fine-tune the model")
    tune = QVBoxLayout(tune_box)
    dock.model_label = QLabel()
    dock.model_label.setWordWrap(True)
    tune.addWidget(dock.model_label)
    form = QFormLayout()
    dock.ratio_spin = QDoubleSpinBox()
    dock.ratio_spin.setRange(0.0, 1.0)
    dock.ratio_spin.setSingleStep(0.05)
    dock.ratio_spin.setDecimals(2)
    dock.ratio_spin.setSpecialValueText("automatic")  # 0: weighted by how few there are
    dock.ratio_spin.setValue(0.0)
    dock.ratio_spin.setToolTip(
        "Share of each training batch taken from your corrections; the rest comes from "
        "the shipped replay crops and the loaded original images, so the model does not "
        "forget them (1: corrections only). Automatic gives a few corrections more weight.")
    form.addRow("Share of corrections", dock.ratio_spin)
    tune.addLayout(form)
    settings = QCollapsible("Round settings", collapsedIcon="▶")  # points at what opens
    inner = QWidget()
    settings_form = QFormLayout(inner)
    dock.epochs_spin = QSpinBox()
    dock.epochs_spin.setRange(0, 100)
    epochs = int(FINETUNE_DEFAULTS["epochs"])
    most = steps_for_error(epochs, [0.0], ROUND_OPTIONS["more_steps"])  # the longest round
    # 0: the round decides (more epochs when the model is far off on the corrections)
    dock.epochs_spin.setSpecialValueText("automatic")  # the range is in the tooltip
    dock.epochs_spin.setValue(0)
    dock.epochs_spin.setToolTip(
        f"Short passes over the mixed training images. Automatic: {epochs}, up to "
        f"{most} when the model is far off on your corrections.")
    dock.steps_spin = QSpinBox()
    dock.steps_spin.setRange(1, 1000)
    dock.steps_spin.setValue(int(FINETUNE_DEFAULTS["steps_per_epoch"]))
    dock.steps_spin.setToolTip("Batches per epoch")
    settings_form.addRow("Epochs", dock.epochs_spin)
    settings_form.addRow("Steps per epoch", dock.steps_spin)
    settings.addWidget(inner)
    tune.addWidget(settings)
    tune_buttons = QHBoxLayout()
    dock.finetune_button = QPushButton("Fine-tune")
    dock.finetune_button.setToolTip("Continue training the current model on the training set")
    dock.stop_button = QPushButton("Stop")
    dock.stop_button.setToolTip("Stop the round; nothing is saved and the model is unchanged")
    dock.stop_button.setEnabled(False)
    tune_buttons.addWidget(dock.finetune_button, 1)
    tune_buttons.addWidget(dock.stop_button)
    tune.addLayout(tune_buttons)
    dock.progress = QProgressBar()
    dock.progress.setRange(0, 1000)
    dock.progress.setValue(0)
    dock.progress.setFormat("not fine-tuning")
    tune.addWidget(dock.progress)
    dock.status_label = QLabel(" ")
    dock.status_label.setWordWrap(True)
    tune.addWidget(dock.status_label)
    # a round that scored worse is kept as a version, never made current: say so
    dock.adoption_label = QLabel()
    dock.adoption_label.setWordWrap(True)
    dock.adoption_label.setStyleSheet("color: #f0a030; font-weight: bold")
    dock.adoption_label.setVisible(False)
    tune.addWidget(dock.adoption_label)
    dock.curves = loss_curves(getattr(dock.viewer, "theme", "dark"))
    tune.addWidget(dock.curves)
    dock.scores_title = QLabel("IoU of the corrected images, before and after a round")
    dock.scores_title.setWordWrap(True)
    tune.addWidget(dock.scores_title)
    dock.scores_table = ScoreChangeTable()
    tune.addWidget(dock.scores_table)
    dock.summary_label = QLabel()
    dock.summary_label.setWordWrap(True)
    dock.summary_label.setTextFormat(Qt.TextFormat.RichText)
    tune.addWidget(dock.summary_label)
    layout.addWidget(tune_box)

    # 4. versions
    versions_box = QGroupBox("4. Model versions")
    versions = QVBoxLayout(versions_box)
    dock.versions_table = VersionsTable()
    dock.versions_table.setToolTip("Select a version to see its scores; double-click to use it")
    versions.addWidget(dock.versions_table)
    version_buttons = QHBoxLayout()
    dock.versions_label = QLabel()
    dock.versions_label.setWordWrap(True)
    dock.use_button = QPushButton("Use this version")
    dock.use_button.setToolTip("Make the selected version the current model (nothing is "
                               "deleted)")
    version_buttons.addWidget(dock.versions_label, 1)
    version_buttons.addWidget(dock.use_button)
    versions.addLayout(version_buttons)
    layout.addWidget(versions_box)
    layout.addStretch(1)

