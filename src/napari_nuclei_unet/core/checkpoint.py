"""Checkpoints: safetensors weights + a JSON sidecar, written atomically.

A checkpoint ``<name>`` is two files:

- ``<name>.safetensors``: the model weights (tensors only, never pickle);
- ``<name>.json``: format version, architecture, :class:`TrainConfig`, metrics,
  training-data description, package version and a ``token`` that is also stored in
  the safetensors header, so weights and sidecar that do not belong together are
  detected.

Training checkpoints may have a third file, ``<name>.train.safetensors``: optimizer
state and RNG state for resuming (scalars live in the JSON under ``"resume"``).

A save replaces the whole set as one step: every new file is written under a
temporary name and flushed, then a commit record (``.<name>.commit.json``) naming them
is written, then they are moved into place and the record deleted. A crash before the
record leaves the old set; a crash after it is finished by the next load or save
(:func:`recover_checkpoint`). Either way the old or the new complete set loads, and
temporary files left by a crash are deleted. Saves of one checkpoint are serialised
by an OS lock (``.<name>.lock``).

Loading checks everything it can before building a model: the sidecar's types, the
architecture's sizes, tensor names, shapes and dtypes (no integer or bool weights),
then that no weight is NaN or infinite. Reading metadata (:func:`read_metadata`)
needs no torch; loading weights imports torch lazily.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from . import atomic
from .checkpoint_commit import (  # the path helpers live there: the commit needs them too
    CheckpointError,
    _actual,
    _commit,
    commit_record_path,
    recover_checkpoint,
    sidecar_path,
    train_state_path,
    weights_path,
)
from .config import ConfigError, TrainConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch

FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")
#: A sidecar is a few KB; anything far bigger is refused before being parsed.
MAX_SIDECAR_BYTES = 64 * 1024 * 1024
#: Allowed ranges of the U-Net sizes in a sidecar, checked before a model is built.
ARCHITECTURE_RANGES = {"in_channels": (1, 16), "base_width": (1, 512), "depth": (1, 8)}
#: safetensors dtypes accepted for weights.
FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")


@dataclass
class LoadedModel:
    """A model loaded from a checkpoint.

    Attributes
    ----------
    model : UNet
        The model, in eval mode, on the requested device.
    config : TrainConfig
        The configuration it was trained with.
    metadata : dict
        The whole JSON sidecar (metrics, training data, versions, ...).
    path : pathlib.Path or None
        The ``.safetensors`` file it came from.
    """

    model: Any
    config: TrainConfig
    metadata: dict = field(default_factory=dict)
    path: Path | None = None


def models_dir() -> Path:
    """Folder of the models shipped with the package."""
    return Path(__file__).resolve().parent.parent / "models"


def default_model_path() -> Path:
    """Path of the shipped default model (``models/default.safetensors``)."""
    return models_dir() / "default.safetensors"


__all__ = [
    "CheckpointError",
    "LoadedModel",
    "commit_record_path",
    "default_model_path",
    "load_checkpoint",
    "load_state_strict",
    "load_train_state",
    "read_metadata",
    "recover_checkpoint",
    "save_checkpoint",
    "sidecar_path",
    "train_state_path",
    "weights_path",
]


def _write_json_file(path: Path, data: dict) -> None:
    path.write_text(atomic.json_text(data), encoding="utf-8")


def _write_tensors_file(
    path: Path, tensors: dict[str, torch.Tensor], header: dict[str, str]
) -> None:
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    # Serialised in memory, written by Python: a full disk is then a plain OSError.
    path.write_bytes(save(tensors, metadata=header))


def _check_finite_weights(state: dict[str, Any], weights: Path) -> None:
    import torch

    bad = [k for k, v in state.items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f"Not saving {weights}: {len(bad)} weight tensor(s) hold NaN or infinite values "
            f"(e.g. {bad[0]}); training diverged. The checkpoint already there (if any) is "
            "kept. Lower the learning rate (or turn amp off) and train again."
        )


def save_checkpoint(
    path: str | os.PathLike,
    model: Any,
    config: TrainConfig,
    metadata: dict | None = None,
    *,
    train_state: tuple[dict[str, torch.Tensor], dict] | None = None,
) -> Path:
    """Write a checkpoint set atomically (see :func:`_commit`).

    Parameters
    ----------
    path : str or os.PathLike
        ``<name>.safetensors`` (or ``<name>``); the sidecar is ``<name>.json``.
    model : UNet
        The model whose ``state_dict`` is saved (a fused inference copy cannot be saved).
    config : TrainConfig
        Saved in the sidecar under ``"config"``.
    metadata : dict, optional
        Extra JSON-serialisable entries (metrics, training data, history, ...).
    train_state : (dict of tensors, dict), optional
        Resume state: tensors go to ``<name>.train.safetensors``, the dict of scalars to
        the sidecar under ``"resume"``. When omitted, a stale resume file is removed.

    Returns
    -------
    pathlib.Path
        The ``.safetensors`` path written.

    Raises
    ------
    CheckpointError
        When the weights are not finite (a diverged run), or the disk is full or not
        writable; the checkpoint already there is then kept as it was.
    """
    if getattr(model, "is_fused", False):
        raise CheckpointError("Cannot save a fused inference model; save the training model.")
    weights = weights_path(path)
    token = secrets.token_hex(8)
    architecture = model.architecture() if hasattr(model, "architecture") else {}
    header = {"format": "napari-nuclei-unet", "token": token,
              "architecture": architecture.get("name", "")}
    sidecar = {
        "format": "napari-nuclei-unet",
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "token": token,
        "architecture": architecture,
        "config": config.to_dict(),
        **(metadata or {}),
    }
    state_file = train_state_path(weights)
    state = dict(model.state_dict())
    _check_finite_weights(state, weights)
    writes: list[tuple[Path, Any]] = []
    remove: list[Path] = []
    if train_state is not None:
        tensors, scalars = train_state
        writes.append((state_file, lambda tmp: _write_tensors_file(tmp, tensors, {"token": token})))
        sidecar["resume"] = scalars
    else:
        remove.append(state_file)
    writes.append((weights, lambda tmp: _write_tensors_file(tmp, state, header)))
    writes.append((sidecar_path(weights), lambda tmp: _write_json_file(tmp, sidecar)))
    _commit(weights, writes, remove)
    return weights


def _check_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def read_metadata(path: str | os.PathLike) -> dict:
    """Read a checkpoint's JSON sidecar without importing torch.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint (``.safetensors``, ``.json`` or no suffix), or ``"default"``.

    Returns
    -------
    dict

    Raises
    ------
    CheckpointError
        When the sidecar is missing, not valid JSON, or its entries have wrong types.
    """
    weights = _resolve(path)
    sidecar = _actual(weights, sidecar_path(weights))
    if not sidecar.is_file():
        raise CheckpointError(
            f"Checkpoint sidecar {sidecar} is missing: every model file needs the JSON written "
            f"beside it by napari-nuclei-unet (architecture and training configuration). "
            f"Copy {sidecar.name} together with {weights.name}."
        )
    try:
        if sidecar.stat().st_size > MAX_SIDECAR_BYTES:
            raise CheckpointError(
                f"Checkpoint sidecar {sidecar} is {sidecar.stat().st_size:,} bytes, far more "
                "than a napari-nuclei-unet sidecar (a few KB): it is not one."
            )
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"Checkpoint sidecar {sidecar} is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise CheckpointError(
            f"{sidecar} is not the description napari-nuclei-unet writes beside a model (it "
            "holds no training settings): choose the .safetensors file a training run wrote, "
            "with its .json beside it."
        )
    version = data.get("format_version", 0)
    if not _check_int(version, 0, 10**6):
        raise CheckpointError(
            f"Checkpoint sidecar {sidecar}: format_version must be a whole number, got "
            f"{version!r}. The file was edited or not written by napari-nuclei-unet."
        )
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"Checkpoint {weights} has format version {version}, newer than this "
            f"napari-nuclei-unet ({__version__}, format {FORMAT_VERSION}); please upgrade."
        )
    architecture = data.get("architecture", {})
    if architecture is not None and not isinstance(architecture, dict):
        raise CheckpointError(
            f"Checkpoint sidecar {sidecar}: 'architecture' must be an object like "
            f"{{\"name\": \"unet\", \"depth\": 4, ...}}, got a {type(architecture).__name__}. "
            "The file was edited or not written by napari-nuclei-unet."
        )
    return data


def check_architecture(architecture: dict, config: TrainConfig, source: Path) -> dict:
    """The U-Net sizes a sidecar asks for, checked before any model is built.

    Parameters
    ----------
    architecture : dict
        The sidecar's ``"architecture"``.
    config : TrainConfig
        The sidecar's config (fallback for missing sizes).
    source : pathlib.Path
        The checkpoint, for messages.

    Returns
    -------
    dict
        ``in_channels``, ``base_width``, ``depth``, ``out_channels`` and, when recorded,
        ``training_diameter``.

    Raises
    ------
    CheckpointError
        For a size that is not a whole number in its range (a hostile or edited file
        could otherwise make the program allocate gigabytes).
    """
    sizes = {}
    for key, (low, high) in ARCHITECTURE_RANGES.items():
        value = architecture.get(key, getattr(config, key))
        if not _check_int(value, low, high):
            raise CheckpointError(
                f"Checkpoint {source}: architecture {key} must be a whole number from {low} "
                f"to {high}, got {value!r}. The sidecar was edited or is not from "
                "napari-nuclei-unet; use the .json written with the weights."
            )
        sizes[key] = value
    # v2 fields, absent from v1 checkpoints (one foreground output, no recorded scale)
    out_channels = architecture.get("out_channels", 1)
    if not _check_int(out_channels, 1, 2):
        raise CheckpointError(
            f"Checkpoint {source}: architecture out_channels must be 1 (foreground) or 2 "
            f"(foreground + contour), got {out_channels!r}. The sidecar was edited or is not "
            "from napari-nuclei-unet; use the .json written with the weights."
        )
    sizes["out_channels"] = out_channels
    diameter = architecture.get("training_diameter")
    if diameter is not None:
        if (isinstance(diameter, bool) or not isinstance(diameter, (int, float))
                or not math.isfinite(diameter) or not 1.0 <= diameter <= 1000.0):
            raise CheckpointError(
                f"Checkpoint {source}: architecture training_diameter must be a nucleus "
                f"diameter in pixels (1 to 1000), got {diameter!r}. The sidecar was edited or "
                "is not from napari-nuclei-unet; use the .json written with the weights."
            )
        sizes["training_diameter"] = float(diameter)
    return sizes


def _resolve(path_or_default: str | os.PathLike) -> Path:
    if isinstance(path_or_default, str) and path_or_default == "default":
        weights = default_model_path()
        if not weights.exists():
            raise CheckpointError(
                f"The default model is not installed: {weights} is missing. Train a model "
                "(Train dock or `nuclei-unet train`) and load its best.safetensors, or "
                "reinstall napari-nuclei-unet from a release that ships the model."
            )
        return weights
    path = Path(path_or_default)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        hint = _package_beside(path)
        raise CheckpointError(
            f"Refusing to load {path}: {path.suffix} files (PyTorch's pickle format) can run "
            "any program on this computer when they are opened, so they are never opened. "
            "Choose a .safetensors model (with the .json file saved beside it) or a "
            f"bioimage.io package.{hint}"
        )
    from ..bioimageio.detect import is_bioimageio_package

    # what predict, evaluate and the Model dock read, not this (review h_rev17, F9: a
    # checkpoint's messages contradicted it, "... or a bioimage.io package")
    if is_bioimageio_package(path):
        raise CheckpointError(
            f"{path} is a bioimage.io model package: predict, evaluate and the Model dock "
            "use one, but fine-tuning and training (--init) start from a napari-nuclei-unet "
            "checkpoint (the .safetensors file training wrote, with its .json beside it). "
            "For a package nuclei-unet exported, give the checkpoint it was exported from.")
    weights = weights_path(path)
    if weights != path and path.suffix != ".json" and path.is_file() and not weights.exists():
        # an existing file of another kind (an image, a note): not "X.safetensors missing"
        raise CheckpointError(
            f"{path} is not a model checkpoint: choose the .safetensors file training wrote "
            f"(with its .json beside it), or a bioimage.io model package.{_package_beside(path)}")
    return weights


def _package_beside(path: Path) -> str:
    """Name the package whose weights ``path`` is ("": none; h_gui31 L6, h_gui32 N4)."""
    for name in ("rdf.yaml", "bioimageio.yaml"):
        if path.with_name(name).is_file():
            return (f" This folder holds a bioimage.io package: choose its {name} (or the "
                    "folder) instead.")
    return ""


def _other_checkpoint_hint(path: Path) -> str:
    """What to use instead of a broken checkpoint file, by the file's name."""
    stem = path.name.split(".")[0]
    if ".train." in path.name:
        return (f"Its resume state is broken, not necessarily its weights: start a new run "
                f"initialised from {path.with_name(stem + '.safetensors')} instead of "
                "resuming, or retrain.")
    if stem == "best":
        return "Use another checkpoint (e.g. last instead of best) or retrain."
    if stem == "last":
        return "Use another checkpoint (e.g. best instead of last) or retrain."
    return "Use another checkpoint or retrain."


def _tensor_layout(path: Path) -> tuple[dict[str, tuple[tuple[int, ...], str]], dict[str, str]]:
    """Names, shapes and dtypes of a safetensors file, without reading any tensor."""
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(f"Checkpoint file {path} does not exist.")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            header = handle.metadata() or {}
            layout = {}
            for key in handle.keys():
                piece = handle.get_slice(key)
                layout[key] = (tuple(int(n) for n in piece.get_shape()), str(piece.get_dtype()))
    except Exception as exc:  # safetensors raises several error types for bad files
        raise CheckpointError(
            f"Checkpoint file {path} is corrupt or not a safetensors file ({exc}). "
            f"{_other_checkpoint_hint(path)}"
        ) from exc
    return layout, header


def _check_dtypes(layout: dict[str, tuple[tuple[int, ...], str]], skeleton: Any,
                  path: Path) -> None:
    """Weights must be floating point where the model's are (counters stay integers)."""
    expected = skeleton.state_dict()
    bad = {}
    for key, (_, dtype) in layout.items():
        want_float = key in expected and expected[key].is_floating_point()
        is_float = dtype.upper() in FLOAT_DTYPES
        if dtype.upper() == "BOOL" or want_float != is_float:
            bad[key] = dtype
    if bad:
        key = sorted(bad)[0]
        raise CheckpointError(
            f"Checkpoint file {path} holds {len(bad)} tensor(s) of the wrong type "
            f"(e.g. {key}: {bad[key]}); U-Net weights are float32/float16/bfloat16. The file "
            "was edited or converted wrongly: use the file training wrote, or retrain."
        )


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    if not path.exists():
        raise CheckpointError(f"Checkpoint file {path} does not exist.")
    try:
        tensors = {}
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            header = handle.metadata() or {}
            for key in handle.keys():
                tensors[key] = handle.get_tensor(key)
    except Exception as exc:  # safetensors raises several error types for bad files
        raise CheckpointError(
            f"Checkpoint file {path} is corrupt or not a safetensors file ({exc}). "
            f"{_other_checkpoint_hint(path)}"
        ) from exc
    return tensors, header


def _check_finite_loaded(tensors: dict[str, Any], path: Path) -> None:
    import torch

    bad = [k for k, v in tensors.items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(
            f"Checkpoint file {path} holds NaN or infinite weights ({len(bad)} tensor(s), "
            f"e.g. {bad[0]}): the run that wrote it diverged and its predictions would be "
            "meaningless. Use an earlier checkpoint (e.g. best instead of last) or retrain "
            "with a lower learning rate."
        )


def load_checkpoint(path_or_default: str | os.PathLike, device: Any = "cpu") -> LoadedModel:
    """Load a model from a checkpoint, never unpickling anything.

    Every check that needs no model (sidecar types, architecture sizes, tensor names,
    shapes and dtypes) runs before the model is built, so a hostile file cannot make
    the program allocate more than the weights file itself holds.

    Parameters
    ----------
    path_or_default : str or os.PathLike
        ``<name>.safetensors`` (or ``<name>.json`` / ``<name>``), or ``"default"`` for the
        model shipped with the package.
    device : str or torch.device, default "cpu"
        Where to put the model (any value accepted by :func:`resolve_device`).

    Returns
    -------
    LoadedModel
        The model in eval mode, its config, the sidecar metadata and the weights path.

    Raises
    ------
    CheckpointError
        For a pickle file (.pt/.pth/.ckpt), a missing file or sidecar, a corrupt file,
        integer or NaN weights, or weights of another architecture; the message names the
        file and the problem.
    """
    from .device import resolve_device
    from .model import ARCHITECTURE, UNet

    weights = _resolve(path_or_default)
    if not weights.exists() and not commit_record_path(weights).exists():
        given = str(path_or_default)
        if Path(given).suffix.lower() in (".zip", ".yaml", ".yml") and not Path(given).exists():
            raise CheckpointError(  # it said "nosuch.zip.safetensors does not exist" (h_cli2)
                f"{given} does not exist: give the path of a bioimage.io package (.zip, or "
                "its folder or rdf.yaml), 'default' (the shipped model) or a .safetensors "
                "checkpoint.")
        if not Path(given).suffix and not Path(given).exists():  # "defualt": a name typed
            raise CheckpointError(  # (it said "defualt.safetensors": CLI check h_cli1, L5)
                f"There is no model {given!r}: give 'default' (the shipped model), a "
                ".safetensors checkpoint, a training run's or a fine-tuning project's "
                "folder, or a bioimage.io package (.zip or folder).")
        raise CheckpointError(f"Checkpoint file {weights} does not exist.")
    metadata = read_metadata(weights)  # finishes an interrupted save first
    source = _actual(weights, weights)
    if not source.exists():
        raise CheckpointError(f"Checkpoint file {weights} does not exist.")
    try:
        config = TrainConfig.from_dict(metadata["config"])
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(
            f"Checkpoint {sidecar_path(weights)} has a bad config: {exc}"
        ) from exc
    architecture = metadata.get("architecture") or {}
    name = architecture.get("name", ARCHITECTURE)
    if name != ARCHITECTURE:
        raise CheckpointError(
            f"Checkpoint {weights} is a {name!r} model; this version of napari-nuclei-unet "
            f"loads {ARCHITECTURE!r} models."
        )
    sizes = check_architecture(architecture, config, sidecar_path(weights))
    layout, header = _tensor_layout(source)
    if header.get("token") and metadata.get("token") and header["token"] != metadata["token"]:
        raise CheckpointError(
            f"Checkpoint {weights} and its sidecar {sidecar_path(weights).name} do not belong "
            "together (different save tokens); one of them was overwritten or copied from "
            "another run."
        )
    _check_layout(layout, sizes, weights)
    tensors, _ = _read_tensors(source)
    _check_finite_loaded(tensors, weights)
    model = UNet(**sizes)
    load_state_strict(model, tensors, weights)
    model.eval()
    return LoadedModel(model=model.to(resolve_device(device)), config=config,
                       metadata=metadata, path=weights)


def _check_layout(layout: dict[str, tuple[tuple[int, ...], str]], sizes: dict[str, int],
                  source: Path) -> None:
    """Compare tensor names and shapes with a U-Net built on torch's meta device (no memory)."""
    import torch

    from .model import UNet

    with torch.device("meta"):
        skeleton = UNet(**sizes)
    fake = {k: torch.empty(shape, device="meta") for k, (shape, _) in layout.items()}
    _mismatch(skeleton, fake, source)
    _check_dtypes(layout, skeleton, source)


def load_state_strict(model: Any, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Copy ``tensors`` into ``model``, raising a clear error on any mismatch.

    Raises
    ------
    CheckpointError
        Listing missing keys, unexpected keys and shape mismatches (first few of each).
    """
    _mismatch(model, tensors, source)
    model.load_state_dict(tensors, strict=True)


def _mismatch(model: Any, tensors: dict[str, Any], source: Path) -> None:
    """Raise :class:`CheckpointError` listing the differences of names and shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(tensors[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(tensors))
        if tuple(tensors[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) (e.g. {unexpected[:3]})")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es) (e.g. {mismatched[:2]})")
        raise CheckpointError(
            f"Checkpoint {source} does not fit the U-Net described by its sidecar "
            f"({model.architecture() if hasattr(model, 'architecture') else ''}): "
            + "; ".join(parts)
            + ". It was saved by another architecture or the files were mixed up."
        )


def load_train_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """Read the resume state of a training checkpoint.

    Returns
    -------
    (dict of tensors, dict, dict)
        Model weights, resume tensors and the sidecar metadata (resume scalars under
        ``metadata["resume"]``).

    Raises
    ------
    CheckpointError
        When the checkpoint has no resume state or the files do not belong together.
    """
    weights = _resolve(path)
    metadata = read_metadata(weights)  # finishes an interrupted save first
    state_file = train_state_path(weights)
    if "resume" not in metadata or not state_file.exists():
        raise CheckpointError(
            f"Checkpoint {weights} has no resume state ({state_file.name} or the 'resume' entry "
            "is missing); resume from a training run's last.safetensors, or use it to "
            "initialise a new run instead."
        )
    model_tensors, header = _read_tensors(_actual(weights, weights))
    state_tensors, state_header = _read_tensors(_actual(weights, state_file))
    _check_finite_loaded(model_tensors, weights)
    token = metadata.get("token")
    if token and (header.get("token") != token or state_header.get("token") != token):
        raise CheckpointError(
            f"Checkpoint {weights}: weights, resume state and sidecar do not belong together."
        )
    return model_tensors, state_tensors, metadata
