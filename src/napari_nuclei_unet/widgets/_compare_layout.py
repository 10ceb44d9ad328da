"""The Compare dock's layout: model row, diameter, predict buttons, view options, scores.

:func:`build_layout` creates the dock's widgets as attributes of the dock
(``dock.predict_button``, ``dock.threshold_slider``, ...); the dock connects them.
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
)

from napari_nuclei_unet.core.predict_score import INSTANCE_METHOD_SPLIT
from napari_nuclei_unet.widgets._compare_layers import ERROR_COLORS, ERROR_NAMES
from napari_nuclei_unet.widgets._prediction_service import DIAMETER_TOOLTIP
from napari_nuclei_unet.widgets._scroll import scrolled_layout

THRESHOLD_RANGE = (0.05, 0.95)


def clamped_threshold(value: float) -> float:
    """``value`` within :data:`THRESHOLD_RANGE` (the slider's range)."""
    low, high = THRESHOLD_RANGE
    return float(min(high, max(low, value)))


def legend_html() -> str:
    """The overlay's colour legend (error classes, label-mask outlines)."""
    lines = []
    for value, (r, g, b, _) in ERROR_COLORS.items():
        color = f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"
        lines.append(f'<span style="color:{color}">&#9632;</span>&nbsp;{ERROR_NAMES[value]}')
    lines.append("<span>&#9633;</span>&nbsp;white outlines: nuclei of the label mask")
    return "<br>".join(lines)


def build_layout(dock: Any) -> None:
    """Create the Compare dock's widgets, as attributes of ``dock``."""
    from magicgui.widgets import Container, FloatSpinBox
    from superqt import QLabeledDoubleSlider

    layout = scrolled_layout(dock)

    model_row = QHBoxLayout()
    dock.model_label = QLabel()
    dock.model_label.setWordWrap(True)
    dock.load_default_button = QPushButton("Load default model")
    dock.load_default_button.setToolTip("Load the model shipped with the plugin.")
    model_row.addWidget(dock.model_label, 1)
    model_row.addWidget(dock.load_default_button)
    layout.addLayout(model_row)

    dock.diameter = FloatSpinBox(label="Diameter (px)", value=dock.session.diameter,
                                 min=0.0, max=1000.0, step=1.0)
    dock.diameter.tooltip = DIAMETER_TOOLTIP
    dock.diameter.native.setKeyboardTracking(False)  # one change per edit, not per key
    dock.diameter.native.setSpecialValueText("0 (automatic)")
    dock._diameter_form = Container(widgets=[dock.diameter])
    dock._diameter_form.margins = (0, 0, 0, 0)
    layout.addWidget(dock._diameter_form.native)

    buttons = QHBoxLayout()
    dock.predict_button = QPushButton("Predict this image")
    dock.predict_button.setToolTip("Run the model on the image shown.")
    dock.predict_all_button = QPushButton("Predict all loaded")
    dock.predict_all_button.setToolTip(
        "Run the model on every loaded image and score each one (IoU panel)."
    )
    dock.cancel_button = QPushButton("Cancel")
    dock.cancel_button.setEnabled(False)
    for button in (dock.predict_button, dock.predict_all_button, dock.cancel_button):
        buttons.addWidget(button)
    layout.addLayout(buttons)

    dock.progress = QProgressBar()
    dock.progress.setVisible(False)
    dock.progress.setTextVisible(True)
    layout.addWidget(dock.progress)

    view_box = QGroupBox("Show the prediction")
    view_layout = QVBoxLayout(view_box)
    mode_row = QHBoxLayout()
    dock.mode_group = QButtonGroup(dock)
    dock.side_by_side_radio = QRadioButton("Side by side")
    dock.side_by_side_radio.setToolTip(
        "Two linked panes: label mask on the left, prediction on the right."
    )
    dock.overlay_radio = QRadioButton("Overlay")
    dock.overlay_radio.setToolTip(
        "One pane: the prediction's errors coloured, the label mask outlined."
    )
    dock.side_by_side_radio.setChecked(True)
    for radio in (dock.side_by_side_radio, dock.overlay_radio):
        dock.mode_group.addButton(radio)
        mode_row.addWidget(radio)
    view_layout.addLayout(mode_row)

    threshold_row = QHBoxLayout()
    threshold_row.addWidget(QLabel("Threshold"))
    dock.threshold_slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
    dock.threshold_slider.setRange(*THRESHOLD_RANGE)
    dock.threshold_slider.setSingleStep(0.01)
    dock.threshold_slider.setDecimals(2)
    dock.threshold_slider.setValue(clamped_threshold(dock.session.threshold))
    dock.threshold_slider.setToolTip(
        "Pixels with a nucleus probability above this are nucleus. "
        "Changing it does not run the network again."
    )
    threshold_row.addWidget(dock.threshold_slider, 1)
    view_layout.addLayout(threshold_row)

    dock.split_checkbox = QCheckBox("Split touching nuclei")
    dock.split_checkbox.setChecked(
        dock.session.instance_method == INSTANCE_METHOD_SPLIT
    )
    dock.split_checkbox.setToolTip(
        "On: touching nuclei are separated (watershed). Off: every connected blob "
        "is one nucleus."
    )
    view_layout.addWidget(dock.split_checkbox)
    layout.addWidget(view_box)

    dock.panes_label = QLabel("Left pane: label mask  ·  right pane: prediction")
    dock.panes_label.setWordWrap(True)
    layout.addWidget(dock.panes_label)

    dock.metrics_label = QLabel()
    dock.metrics_label.setWordWrap(True)
    dock.metrics_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    layout.addWidget(dock.metrics_label)

    dock.legend_label = QLabel(legend_html())
    dock.legend_label.setTextFormat(Qt.TextFormat.RichText)
    dock.legend_label.setWordWrap(True)
    dock.legend_label.setVisible(False)
    layout.addWidget(dock.legend_label)
    layout.addStretch(1)

    # a drag of the slider re-thresholds once it pauses, not at every pixel
    dock._threshold_timer = QTimer(dock)
    dock._threshold_timer.setSingleShot(True)
    dock._threshold_timer.setInterval(80)
