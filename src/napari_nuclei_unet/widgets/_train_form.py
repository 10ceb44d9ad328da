"""The Train dock's settings form: magicgui fields built from the ``TrainConfig`` dataclass.

Each field's widget kind follows the dataclass field's default (bool: check box,
float: float spin box, int: spin box, ``schedule``: its choices); :data:`FIELDS`
only adds the label, tooltip, range and the word standing for None.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from qtpy.QtWidgets import QFormLayout, QGroupBox, QVBoxLayout, QWidget
from superqt import QCollapsible

from napari_nuclei_unet.core.config import SCHEDULES, TrainConfig

# field -> (label, tooltip, spin range (min, max, step[, decimals]) or None, "none" text)
FIELDS: dict[str, tuple[str, str, tuple | None, str | None]] = {
    "epochs": ("Epochs", "Maximum number of passes; the best epoch is kept", (1, 10_000, 1), None),
    "steps_per_epoch": ("Steps per epoch", "Batches per epoch", (0, 100_000, 10),
                        "one pass over the images"),
    "batch_size": ("Batch size", "Crops per step; lower it when memory runs out", (1, 256, 1),
                   None),
    "crop_size": ("Crop size (px)", "Side of the random training crops (a multiple of "
                  "2^depth)", (16, 2048, 16), None),
    "learning_rate": ("Learning rate", "Peak AdamW learning rate", (1e-5, 1.0, 1e-4, 5), None),
    "val_fraction": ("Validation fraction", "Share of images held out (per modality) to pick "
                     "the best epoch", (0.0, 0.9, 0.05, 2), None),
    "seed": ("Seed", "Same seed, same split, same crops", (0, 2**31 - 1, 1), None),
    "early_stopping_patience": ("Early stopping", "Stop after this many validations without a "
                                "better validation IoU (epochs when validating every epoch)",
                                (0, 1000, 1), "never"),
    "base_width": ("Base width", "Channels of the first level (more: bigger, slower model)",
                   (2, 256, 2), None),
    "depth": ("Depth", "Down-sampling levels", (1, 7, 1), None),
    "augment_flips": ("Flips", "Random horizontal / vertical flips", None, None),
    "augment_rot90": ("90° rotations", "Random quarter turns", None, None),
    "augment_intensity": ("Intensity jitter", "Brightness, contrast, gamma, colour", None, None),
    "augment_invert": ("Invert / grey", "Randomly invert or grey images (brightfield looks "
                       "like fluorescence)", None, None),
    "augment_scale": ("Scale jitter", "Random zoom factor range (0: off)", (0.0, 1.0, 0.05, 2),
                      None),
    "amp": ("Mixed precision", "Faster on NVIDIA GPUs; ignored on the CPU", None, None),
    "compile": ("Compile (CUDA)", "torch.compile the model: faster steps on NVIDIA GPUs after "
                "about a minute of compiling; ignored on the CPU", None, None),
    "modality_balance": ("Balance modalities", "How much rare image types are favoured when "
                         "crops are drawn: 0 every image alike, 1 every modality alike",
                         (0.0, 1.0, 0.05, 2), None),
    "num_threads": ("CPU threads", "Threads used when training on the CPU; automatic leaves one "
                    "core free so that napari stays responsive", (0, 256, 1), "automatic"),
    "schedule": ("LR schedule", "Learning-rate schedule after warm-up", None, None),
    "warmup_fraction": ("Warm-up fraction", "Share of steps warming the learning rate up",
                        (0.0, 0.9, 0.01, 2), None),
    "min_lr_fraction": ("Final LR fraction", "End of the cosine schedule, relative to the peak",
                        (0.0, 1.0, 0.01, 3), None),
    "weight_decay": ("Weight decay", "AdamW weight decay", (0.0, 1.0, 1e-4, 5), None),
    "val_every": ("Validate every", "Epochs between validations", (1, 1000, 1), None),
}
SECTIONS = {
    "Training": ("epochs", "batch_size", "crop_size", "learning_rate", "val_fraction", "seed"),
    "Network": ("base_width", "depth"),
    "Augmentation": ("augment_flips", "augment_rot90", "augment_intensity", "augment_invert",
                     "augment_scale"),
    "Hardware": ("amp", "compile", "num_threads"),
    "Advanced": ("steps_per_epoch", "modality_balance", "early_stopping_patience", "schedule",
                 "warmup_fraction", "min_lr_fraction", "weight_decay", "val_every"),
}



def in_form_words(exc: BaseException) -> str:
    """A training-settings error naming the fields as this form labels them.

    ``TrainConfig.crop_size (100) must be ...`` -> ``Crop size (100) must be ...``.
    """
    text = str(exc)
    for name, (label, *_rest) in FIELDS.items():
        text = text.replace(f"TrainConfig.{name} ", f"{label.split(' (')[0]} ")
    return text


def make_field(name: str) -> Any:
    """A magicgui widget for TrainConfig field ``name`` (type from the dataclass).

    Parameters
    ----------
    name : str
        A key of :data:`FIELDS`.

    Returns
    -------
    magicgui.widgets.bases.ValueWidget
        The field's widget (its Qt widget is ``.native``).
    """
    from magicgui.widgets import create_widget

    field = {f.name: f for f in dataclasses.fields(TrainConfig)}[name]
    spin, none_text = FIELDS[name][2], FIELDS[name][3]
    default = field.default
    if name == "schedule":
        widget = create_widget(value=default, name=name, widget_type="ComboBox",
                               options={"choices": list(SCHEDULES)})
    elif isinstance(default, bool):
        widget = create_widget(value=default, name=name, annotation=bool)
        widget.text = ""  # the form's label says it; magicgui shows the field's name here
    elif spin is not None and (len(spin) == 4 or none_text):
        # a whole number whose minimum stands for None ("never") is shown by Qt's double
        # spin box too: magicgui's integer one (superqt's) shows no special value text,
        # and "Early stopping 0" read as "stop at once" (GUI check h_gui13)
        widget = create_widget(name=name, annotation=float, widget_type="FloatSpinBox",
                               options={"min": spin[0], "max": spin[1], "step": spin[2]})
        widget.native.setDecimals(spin[3] if len(spin) == 4 else 0)
    else:
        widget = create_widget(name=name, annotation=int, widget_type="SpinBox",
                               options={"min": spin[0], "max": spin[1], "step": spin[2]})
    if none_text:  # the minimum stands for None
        widget.native.setSpecialValueText(none_text)
    widget.native.setToolTip(FIELDS[name][1])
    return widget


def add_sections(layout: QVBoxLayout, fields: dict[str, Any], editors: dict[str, QWidget]
                 ) -> None:
    """Add the settings to ``layout``: "Training" as a box, the others collapsed.

    The magicgui widgets go into ``fields`` and their Qt widgets into ``editors``,
    by TrainConfig field name.
    """
    for title, names in SECTIONS.items():
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for name in names:
            widget = make_field(name)
            fields[name] = widget
            editors[name] = widget.native
            form.addRow(FIELDS[name][0], widget.native)
        if title == "Training":
            box = QGroupBox(title)
            box.setLayout(form)
            layout.addWidget(box)
        else:
            section = QCollapsible(title, collapsedIcon="▶")  # points at what opens
            inner = QWidget()
            inner.setLayout(form)
            section.addWidget(inner)
            layout.addWidget(section)


def form_values(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields' values by TrainConfig name (a minimum standing for None gives None)."""
    values: dict[str, Any] = {}
    for name, widget in fields.items():
        value = widget.value
        if FIELDS[name][3] and value == widget.min:
            value = None  # the minimum stands for None ("never", "automatic")
        elif len(FIELDS[name][2] or ()) == 3:  # a whole number (shown by a double spin box)
            value = int(round(value))
        values[name] = value
    return values


def show_config(fields: dict[str, Any], config: TrainConfig) -> None:
    """Show ``config``'s values in the fields."""
    for name, widget in fields.items():
        value = getattr(config, name)
        if value is None and FIELDS[name][3]:
            value = widget.min
        widget.value = bool(value) if isinstance(widget.value, bool) else value
