"""What an exported model package may record of the model's data, and nothing more.

A bioimage.io package leaves the user's machine: it records which images its model
was trained, validated and fine-tuned on (their ids, so that the Split column of a
colleague's napari still tells them apart), its scores, and a fine-tuning version's
base model and project by name; never a folder of the disk it was made on (a path
written on Windows included).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from .finetune._common import _VERSION_PATTERN, VERSIONS_DIR
from .finetune.versions import ROUND_SETS, version_of_file

#: What a package keeps of its model's training data: counts, ids, the dataset's digest.
SHARED_TRAINING_DATA = ("n_train", "n_val", "dataset_digest", "train_ids", "val_ids",
                        "train_modalities", "val_modalities")
#: What a package keeps of a fine-tuning version's round.
SHARED_ROUND_KEYS = ("adopted", "ratio", "extrapolated", "created",
                     *(f"mean_iou_{key}" for key in ROUND_SETS))


def shareable_training_data(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The ``training_data`` of a checkpoint's sidecar that a package records ({}: none)."""
    data = metadata.get("training_data")
    if not isinstance(data, Mapping):
        return {}
    return {k: data[k] for k in SHARED_TRAINING_DATA if k in data}


#: What a package keeps of each epoch of its model's training (never a checkpoint's path).
SHARED_HISTORY_KEYS = ("epoch", "epochs", "train_loss", "val_loss", "val_iou", "is_best",
                       "elapsed_s")


#: What a package keeps of its model's held-out report (scores, and how they were taken).
SHARED_EVALUATION_KEYS = ("measured", "note", "split", "mean_iou", "median_iou", "mean_dice",
                          "dsb_score", "mean_ap50", "n_images", "per_modality")


def _scores_only(value: Any) -> Any:
    """``value`` with its numbers and words (nested by modality); no other objects."""
    if isinstance(value, Mapping):
        return {str(k): _scores_only(v) for k, v in value.items()}
    return value if isinstance(value, (int, float, str)) or value is None else str(value)


def shareable_training_record(metadata: Mapping[str, Any],
                              path: str | os.PathLike | None = None) -> dict[str, Any]:
    """How the model was trained and scored, as a package records it ({}: nothing).

    The held-out report (``evaluation``), the epochs (their scores and times, without
    the checkpoints' paths), the hardware, and the epochs its run trained when that run
    went on past this checkpoint (``last.json`` beside ``path``): a package loaded back
    showed 6 metric rows of 25 and "1 epoch" for a stopped 1-minute run (GUI check
    h_gui31, L2).
    """
    record: dict[str, Any] = {}
    evaluation = metadata.get("evaluation")
    if isinstance(evaluation, Mapping):  # its scores and words, by name (h_rev16, L5)
        record["evaluation"] = {k: _scores_only(evaluation[k]) for k in SHARED_EVALUATION_KEYS
                                if k in evaluation}
    history = metadata.get("history")
    if isinstance(history, list):
        record["history"] = [{k: h[k] for k in SHARED_HISTORY_KEYS if k in h}
                             for h in history if isinstance(h, Mapping)]
    for key in ("training_hardware", "device"):
        if isinstance(metadata.get(key), str):
            record[key] = metadata[key]
    if path is not None:
        from .checkpoint import read_metadata

        last = os.path.join(os.path.dirname(os.fspath(path)), "last.json")
        if os.path.isfile(last) and os.path.basename(os.fspath(path)) != "last.safetensors":
            try:
                metrics = read_metadata(last).get("metrics") or {}
            except (OSError, ValueError):
                metrics = {}
            from .train_updates import epochs_trained

            epochs = epochs_trained(metrics)  # as the Model dock counts them (h_gui47)
            if epochs is not None:
                record["epochs_run"] = epochs
    return record


def _parts(path: str) -> tuple[str, ...]:
    """A path's parts, read as a Windows path when it has backslashes or a drive."""
    windows = "\\" in path or (len(path) > 1 and path[1] == ":")
    return (PureWindowsPath(path) if windows else PurePosixPath(path)).parts


def _base_words(base: str, project: str | None) -> str:
    """The base model of a round, by name only: ``default``, ``v001 of project lab-a``.

    A version is named with its project ("v001" alone would read as the reader's own
    v001); a run's checkpoint by its folder and file.
    """
    parts = _parts(base)
    if len(parts) == 1:  # "default", or a version of the round's own project
        return f"{base} of project {project}" if project and _VERSION_PATTERN.fullmatch(
            base) else base
    if len(parts) >= 4 and parts[-3] == VERSIONS_DIR and _VERSION_PATTERN.fullmatch(
            parts[-2]) and PurePosixPath(parts[-1]).stem == "model":
        return f"{parts[-2]} of project {parts[-4]}"
    return f"{parts[-2]}/{parts[-1]}"


def shareable_round(metadata: Mapping[str, Any],
                    path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """A fine-tuning version's round as a package records it, or None for other models.

    The images it was fine-tuned on and kept aside (their ids), its scores, its base
    model by name ("v002 of project lab-a": a bare "v002" would read as the reader's
    own), and which version of which project it was, with the version's time (from
    ``path``, ``<project>/versions/vNNN/model.safetensors``): a project's name is not
    enough to tell it from a colleague's project of the same name.
    """
    info = metadata.get("finetune")
    if not isinstance(info, Mapping):
        return None
    shared: dict[str, Any] = {k: info[k] for k in SHARED_ROUND_KEYS if k in info}
    shared["corrections"] = [{"id": str(c["id"])} for c in info.get("corrections") or ()
                             if isinstance(c, Mapping) and "id" in c]
    shared["held_out"] = [str(i) for i in info.get("held_out") or ()]
    owner = version_of_file(path) if path is not None else None
    if owner is not None:
        shared["project"], shared["version"] = owner[0].name, owner[1]
        if metadata.get("created"):
            shared["version_created"] = str(metadata["created"])
    base = info.get("base_model")
    if isinstance(base, str) and base.strip():
        shared["base_model"] = _base_words(base.strip(), shared.get("project"))
    return shared
