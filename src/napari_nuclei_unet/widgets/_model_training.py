"""How a model was made, in plain words: the Model dock's "Training" line (no Qt).

:func:`describe_training` reads a checkpoint's sidecar: when, how long and on what a
training run trained it. A fine-tuning version (``<project>/versions/vNNN/model.json``
with a ``"finetune"`` entry) was not trained like that: :func:`describe_version` says
what it was fine-tuned from and on how many corrected images (its scores before and
after are in the dock's metrics table).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from napari_nuclei_unet.widgets._model_names import base_model_words
from napari_nuclei_unet.widgets._retrain_project import local_time


def _count(n: int, word: str, plural: str | None = None) -> str:
    """``"1 epoch"``, ``"12 epochs"``."""
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def describe_version(metadata: Mapping[str, Any]) -> str | None:
    """A fine-tuning version in words, or None when ``metadata`` is not one.

    E.g. ``"fine-tuned from the default model on 3 corrected images (1 kept aside)
    · 34 s · 2026-12-05 06:40"``.
    """
    from napari_nuclei_unet.widgets._progress import format_duration

    info = metadata.get("finetune")
    if not isinstance(info, Mapping):
        return None
    text = "fine-tuned"
    base = base_model_words(info.get("base_model"))
    if base:
        text += f" from {base}"
    corrections = info.get("corrections")
    if isinstance(corrections, list):
        text += f" on {_count(len(corrections), 'corrected image')}"
        aside = info.get("held_out")
        if isinstance(aside, list) and aside:
            text += f" ({len(aside)} kept aside)"
    parts = [text]
    history = metadata.get("history")
    last = history[-1] if isinstance(history, list) and history else None
    if isinstance(last, Mapping) and isinstance(last.get("elapsed_s"), (int, float)):
        parts.append(format_duration(float(last["elapsed_s"])))
    when = local_time(str(metadata.get("created") or info.get("created") or ""))
    if when:
        parts.append(when)
    if info.get("adopted") is False:
        parts.append("not made current by its round's checks")
    return " · ".join(parts)


def _where_trained(metadata: Mapping[str, Any]) -> str:
    """Plain words for the hardware a model was trained on ("an NVIDIA GPU", "the CPU")."""
    hardware = str(metadata.get("training_hardware") or "")
    if hardware:
        return hardware.split(",")[0].split("(")[0].strip().removeprefix("one ")
    device = str(metadata.get("device") or "")
    if device.startswith("cuda"):
        return "an NVIDIA GPU"
    if device.startswith("mps"):
        return "an Apple GPU"
    if device.startswith("cpu"):
        return "the CPU"
    return device


def describe_training(metadata: Mapping[str, Any], path: Any = None) -> str:
    """When, how long and on what the model was trained, in plain words.

    Budget-limited runs plan a huge number of epochs and stop on time, so the
    planned count is shown only when it means something (fewer were trained);
    otherwise the epochs, optimisation steps and minutes actually trained. A run's
    best checkpoint (``path``) may come from an epoch before its last: the run's
    ``last.json`` beside it says how far the run went. A fine-tuning version is
    described by :func:`describe_version`.
    """
    from napari_nuclei_unet.widgets._progress import format_duration

    version = describe_version(metadata)
    if version is not None:  # a fine-tuned version exported as a package: its test too
        return " · ".join([version, *_package_words(metadata)])  # (GUI check h_gui42, L2)
    parts = []
    created = str(metadata.get("created", ""))[:10]
    if created:
        parts.append(f"trained {created}")
    elif metadata.get("packaged"):  # a bioimage.io package that does not say
        parts.append(f"packaged {str(metadata['packaged'])[:10]}")
    epoch, last = _trained_epochs(metadata)
    planned = last.get("epochs")
    if epoch:
        text = _count(int(epoch), "epoch")
        steps = (metadata.get("config") or {}).get("steps_per_epoch")
        if steps:
            text += f" ({_count(int(epoch) * int(steps), 'step')})"
        if last.get("elapsed_s"):
            text += f" in {format_duration(float(last['elapsed_s']))}"
        if planned and int(epoch) < int(planned) <= 10 * int(epoch):
            ran = metadata.get("epochs_run") or _epochs_run(path)  # a package records it
            if ran is not None and ran > int(epoch):
                # ran < planned: stopped, or still training; either way, so far
                text += (f", the best of the {ran} trained" if ran >= int(planned) else
                         f", the best of the {ran} trained so far ({planned} planned)")
            else:
                text += f", stopped before the {planned} planned"
        parts.append(text)
    data = metadata.get("training_data") or {}
    if data.get("n_train") is not None:
        text = f"{data['n_train']} training / {data.get('n_val', 0)} validation images"
        modalities = data.get("train_modalities") or {}
        if modalities:
            text += " (" + ", ".join(f"{k} {v}" for k, v in modalities.items()) + ")"
        parts.append(text)
    where = _where_trained(metadata)
    if where:
        parts.append(f"trained on {where}")
    parts += _package_words(metadata)
    return " · ".join(parts) or "no training record"


def _package_words(metadata: Mapping[str, Any]) -> list[str]:
    """A bioimage.io package's test and weights note; none for a checkpoint.

    Its own test was run as it loaded (``selftest``); the note says that damaged
    TorchScript weights were left for its ONNX ones (GUI check h_gui42, L1).
    """
    package = metadata.get("bioimageio")
    if not isinstance(package, Mapping):
        return []
    return [str(package[key]) for key in ("test", "weights_note") if package.get(key)]


def _epochs_run(path: Any) -> int | None:
    """How many epochs the run of checkpoint ``path`` trained (its ``last`` checkpoint)."""
    if path is None:
        return None
    from napari_nuclei_unet.core.checkpoint import read_metadata

    last = Path(path).with_name("last.json")
    if last == Path(path).with_suffix(".json") or not last.is_file():
        return None
    try:
        epoch = _trained_epochs(read_metadata(last))[0]
        return int(epoch) if epoch else None
    except (OSError, ValueError, TypeError, AttributeError):  # a file we did not write
        return None


def _trained_epochs(metadata: Mapping[str, Any]) -> tuple[Any, dict]:
    """The epochs a checkpoint's run trained when it was saved, and its last history entry."""
    history = metadata.get("history") or []
    last = history[-1] if isinstance(history, list) and history and isinstance(
        history[-1], dict) else {}
    metrics = metadata.get("metrics") or {}
    epoch = metrics.get("epoch") or last.get("epoch") or len(history)
    if isinstance(epoch, int) and metrics.get("cancelled_at_step") is not None:
        epoch -= 1  # the epoch under way when it stopped is not trained (h_gui41, L1)
    elif "val_iou" in metrics and metrics["val_iou"] is None and not history:
        epoch = 0  # the weights of a run stopped in its first epoch
    return epoch, last
