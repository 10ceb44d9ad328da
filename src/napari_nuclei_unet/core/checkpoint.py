"""Checkpoints: safetensors weights + a JSON sidecar, written atomically.

A checkpoint ``<name>`` is two files:

- ``<name>.safetensors``: the model weights (tensors only, never pickle);
- ``<name>.json``: format version, architecture, :class:`TrainConfig`, metrics,
  training-data description, package version and a ``token`` that is also stored in
  the safetensors header, so weights and sidecar that do not belong together are
  detected.

Training checkpoints may have a third file, ``<name>.train.safetensors``: optimizer
state and RNG state for resuming (scalars live in the JSON under ``"resume"``).

Every file is written to a temporary name in the same folder and moved into place
with :func:`os.replace`, the JSON last, so a crash leaves either the old or the new
checkpoint, never a broken one. Reading metadata (:func:`read_metadata`) needs no
torch; loading weights imports torch lazily.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from .config import ConfigError, TrainConfig

if TYPE_CHECKING:  # pragma: no cover
    import torch

FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"
TRAIN_STATE_SUFFIX = ".train.safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, unsafe or of another architecture."""


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


def weights_path(path: str | os.PathLike) -> Path:
    """Normalise a checkpoint path to its ``.safetensors`` file.

    ``run/best``, ``run/best.json`` and ``run/best.safetensors`` all name the same
    checkpoint.
    """
    path = Path(path)
    if path.name.endswith(TRAIN_STATE_SUFFIX):
        return path.with_name(path.name[: -len(TRAIN_STATE_SUFFIX)] + WEIGHTS_SUFFIX)
    if path.suffix in (WEIGHTS_SUFFIX, ".json"):
        return path.with_suffix(WEIGHTS_SUFFIX)
    return path.with_name(path.name + WEIGHTS_SUFFIX)


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a checkpoint."""
    return weights_path(path).with_suffix(".json")


def train_state_path(path: str | os.PathLike) -> Path:
    """The optional resume-state file of a checkpoint."""
    weights = weights_path(path)
    return weights.with_name(weights.name[: -len(WEIGHTS_SUFFIX)] + TRAIN_STATE_SUFFIX)


def _temp_path(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def _make_shareable(path: Path) -> None:
    """Give a written file the usual 0644 mode (mkstemp and safetensors make 0600 files).

    Checkpoints are ordinary files: the shipped model must be readable by every user of
    a system-wide installation.
    """
    try:
        os.chmod(path, 0o644)
    except OSError:
        pass


def _json_safe(value: Any) -> Any:
    """Replace NaN/inf floats (not valid JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _write_json_file(path: Path, data: dict) -> None:
    text = json.dumps(_json_safe(data), indent=2, allow_nan=False)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _write_tensors_file(
    path: Path, tensors: dict[str, torch.Tensor], header: dict[str, str]
) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    save_file(tensors, str(path), metadata=header)


def _commit(writes: list[tuple[Path, Any]]) -> None:
    """Write every file to a temporary name first, then move them all into place.

    A failure while writing leaves every target untouched (and no temporary files);
    the moves themselves are atomic renames, done in the given order.
    """
    temps: list[tuple[Path, Path]] = []
    try:
        for target, write in writes:
            tmp = _temp_path(target)
            temps.append((tmp, target))
            write(tmp)
            _make_shareable(tmp)
        for tmp, target in temps:
            os.replace(tmp, target)
    finally:
        for tmp, _ in temps:
            if tmp.exists():
                try:
                    tmp.unlink()
                except OSError:
                    pass


def save_checkpoint(
    path: str | os.PathLike,
    model: Any,
    config: TrainConfig,
    metadata: dict | None = None,
    *,
    train_state: tuple[dict[str, torch.Tensor], dict] | None = None,
) -> Path:
    """Write a checkpoint atomically.

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
    writes: list[tuple[Path, Any]] = []
    if train_state is not None:
        tensors, scalars = train_state
        writes.append((state_file, lambda tmp: _write_tensors_file(tmp, tensors, {"token": token})))
        sidecar["resume"] = scalars
    state = dict(model.state_dict())
    writes.append((weights, lambda tmp: _write_tensors_file(tmp, state, header)))
    writes.append((sidecar_path(weights), lambda tmp: _write_json_file(tmp, sidecar)))
    _commit(writes)
    if train_state is None and state_file.exists():
        state_file.unlink()
    return weights


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
        When the sidecar is missing or not valid JSON.
    """
    weights = _resolve(path)
    sidecar = sidecar_path(weights)
    if not sidecar.exists():
        raise CheckpointError(
            f"Checkpoint sidecar {sidecar} is missing: every model file needs the JSON written "
            f"beside it by napari-nuclei-unet (architecture and training configuration). "
            f"Copy {sidecar.name} together with {weights.name}."
        )
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"Checkpoint sidecar {sidecar} is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict) or "config" not in data:
        raise CheckpointError(
            f"Checkpoint sidecar {sidecar} is not a napari-nuclei-unet checkpoint description "
            "(no 'config' entry)."
        )
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"Checkpoint {weights} has format version {data['format_version']}, newer than this "
            f"napari-nuclei-unet ({__version__}, format {FORMAT_VERSION}); please upgrade."
        )
    return data


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
        raise CheckpointError(
            f"Refusing to load {path}: {path.suffix} files are Python pickles, which can run "
            "arbitrary code when loaded. napari-nuclei-unet only loads .safetensors weights "
            "with their .json sidecar."
        )
    return weights_path(path)


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
            "Use another checkpoint (e.g. last instead of best) or retrain."
        ) from exc
    return tensors, header


def load_checkpoint(path_or_default: str | os.PathLike, device: Any = "cpu") -> LoadedModel:
    """Load a model from a checkpoint, never unpickling anything.

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
        For a pickle file (.pt/.pth/.ckpt), a missing file or sidecar, a corrupt file, or
        weights of another architecture; the message names the file and the problem.
    """
    from .device import resolve_device
    from .model import ARCHITECTURE, UNet

    weights = _resolve(path_or_default)
    if not weights.exists():
        raise CheckpointError(f"Checkpoint file {weights} does not exist.")
    metadata = read_metadata(weights)
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
    tensors, header = _read_tensors(weights)
    if header.get("token") and metadata.get("token") and header["token"] != metadata["token"]:
        raise CheckpointError(
            f"Checkpoint {weights} and its sidecar {sidecar_path(weights).name} do not belong "
            "together (different save tokens); one of them was overwritten or copied from "
            "another run."
        )
    model = UNet(
        in_channels=int(architecture.get("in_channels", config.in_channels)),
        base_width=int(architecture.get("base_width", config.base_width)),
        depth=int(architecture.get("depth", config.depth)),
        # v2 fields (absent from v1 checkpoints: one foreground output, no recorded scale)
        out_channels=int(architecture.get("out_channels", 1)),
        training_diameter=architecture.get("training_diameter"),
    )
    load_state_strict(model, tensors, weights)
    model.eval()
    return LoadedModel(model=model.to(resolve_device(device)), config=config,
                       metadata=metadata, path=weights)


def load_state_strict(model: Any, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Copy ``tensors`` into ``model``, raising a clear error on any mismatch.

    Raises
    ------
    CheckpointError
        Listing missing keys, unexpected keys and shape mismatches (first few of each).
    """
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
    model.load_state_dict(tensors, strict=True)


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
    metadata = read_metadata(weights)
    state_file = train_state_path(weights)
    if "resume" not in metadata or not state_file.exists():
        raise CheckpointError(
            f"Checkpoint {weights} has no resume state ({state_file.name} or the 'resume' entry "
            "is missing); resume from a training run's last.safetensors, or use it to "
            "initialise a new run instead."
        )
    model_tensors, header = _read_tensors(weights)
    state_tensors, state_header = _read_tensors(state_file)
    token = metadata.get("token")
    if token and (header.get("token") != token or state_header.get("token") != token):
        raise CheckpointError(
            f"Checkpoint {weights}: weights, resume state and sidecar do not belong together."
        )
    return model_tensors, state_tensors, metadata
