"""Model versions of a project: one never-overwritten folder per fine-tuning round."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..checkpoint import CheckpointError, default_model_path, read_metadata, weights_path
from ..paths import same_path
from ._common import _VERSION_PATTERN, PROJECT_FILE, VERSIONS_DIR, _now, _write_json_atomic


@dataclass(frozen=True)
class ModelVersion:
    """One model of a project: the base (``v000``) or the result of a fine-tuning round.

    Attributes
    ----------
    name : str
        ``"v000"``, ``"v001"``, ...
    path : pathlib.Path
        The version folder.
    model : str or pathlib.Path
        What :func:`~napari_nuclei_unet.core.checkpoint.load_checkpoint` accepts:
        ``"default"`` for the shipped model, else a ``.safetensors`` path.
    created : str
        ISO 8601 UTC time.
    info : dict
        For rounds, the ``"finetune"`` entry of ``model.json`` (base model, corrections
        used, ratio, scores before/after); for ``v000``, ``reference.json``.
    """

    name: str
    path: Path
    model: str | Path
    created: str
    info: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def number(self) -> int:
        """The round number (0 for the base model)."""
        return int(self.name[1:])

    @property
    def is_base(self) -> bool:
        """Whether this is the ``v000`` reference to the base model."""
        return self.number == 0

    @property
    def adopted(self) -> bool:
        """Whether the round that made it was adopted (made current).

        Always True for ``v000`` and for versions saved before rounds checked themselves.
        """
        return self.is_base or self.info.get("adopted", True) is not False

    @property
    def reason(self) -> str:
        """Why the round was (not) adopted; empty when unknown."""
        return str(self.info.get("reason", ""))

    @property
    def unreadable(self) -> str:
        """Why its ``model.json`` cannot be read (it is listed, never used); "" when it can."""
        return str(self.info.get("unreadable", ""))


#: The sets a round scores before and after (``mean_iou_<key>`` in its ``finetune`` entry).
ROUND_SETS = {"corrected": "corrected images", "held_out": "images kept aside",
              "evaluation": "evaluation images",
              "regression": "built-in images of other kinds (the regression set)"}
#: The sets of the user's own images (the regression set is the plugin's).
USER_SETS = ("corrected", "held_out", "evaluation")


def round_scores(metadata: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """A fine-tuning version's mean IoU before and after its round, by set scored.

    Parameters
    ----------
    metadata : mapping
        A checkpoint's sidecar (``model.json``).

    Returns
    -------
    dict
        ``{"mean IoU of the corrected images": {"before": 0.61, "after": 0.80}, ...}``
        for the sets the round scored; empty for a model that no round made.
    """
    info = metadata.get("finetune")
    if not isinstance(info, Mapping):
        return {}
    scores = {}
    for key, words in ROUND_SETS.items():
        pair = info.get(f"mean_iou_{key}")
        if isinstance(pair, Mapping) and all(
                isinstance(pair.get(k), (int, float)) for k in ("before", "after")):
            scores[f"mean IoU of the {words}"] = {"before": float(pair["before"]),
                                                  "after": float(pair["after"])}
    return scores


def version_of_file(path: str | os.PathLike) -> tuple[Path, str] | None:
    """``(project folder, "vNNN")`` for a version file, ``<project>/versions/vNNN/model.*``.

    None for any other file (``unet1/unet1.safetensors`` is not a version).
    """
    path = Path(path).absolute()  # "versions/v001/model.safetensors" has a project too
    if path.stem == "model" and path.parent.parent.name == VERSIONS_DIR \
            and _VERSION_PATTERN.fullmatch(path.parent.name):
        return path.parent.parent.parent, path.parent.name
    return None


def _is_default_model(model: str | os.PathLike) -> bool:
    if isinstance(model, str) and model == "default":
        return True
    try:
        return same_path(weights_path(model), default_model_path())
    except OSError:
        return False


#: The version the user chose last (``{"version": "v001", "chosen": <ISO time>, "over": 2}``:
#: it stays the project's model until a round newer than v002 is made current).
CHOSEN_FILE = "chosen.json"


def newest_adopted(versions: Sequence[ModelVersion]) -> ModelVersion | None:
    """The last adopted version of ``versions`` (listed oldest first), or None."""
    adopted = [v for v in versions if v.adopted]
    return adopted[-1] if adopted else None


class ModelVersions:
    """The models of a fine-tuning project, one never-overwritten folder per round.

    Parameters
    ----------
    project_dir : str or os.PathLike
        The project folder; versions live in ``<project>/versions/vNNN``.
    """

    def __init__(self, project_dir: str | os.PathLike) -> None:
        self.path = Path(project_dir).expanduser().absolute()
        self.versions_dir = self.path / VERSIONS_DIR

    def _read(self, folder: Path) -> ModelVersion | None:
        if folder.name == "v000":
            reference = folder / "reference.json"
            if not reference.exists():
                return None
            try:
                info = json.loads(reference.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                return None
            model = info.get("model", "default")
            if info.get("copied"):
                model = folder / "model.safetensors"
            return ModelVersion("v000", folder, model if model == "default" else Path(model),
                                str(info.get("created", "")), info)
        weights = folder / "model.safetensors"
        if not (folder / "model.json").exists() or not weights.exists():
            return None  # a round that crashed while saving: never complete, never reused
        try:
            metadata = read_metadata(weights)
        except CheckpointError as exc:
            # listed (never used): a version that vanished from the list left the user
            # looking for it (GUI check h_gui9, MEDIUM 14)
            return ModelVersion(folder.name, folder, weights, "",
                                {"adopted": False, "unreadable": str(exc)})
        info = dict(metadata.get("finetune", {}))
        return ModelVersion(folder.name, folder, weights, str(metadata.get("created", "")), info)

    def list(self) -> list[ModelVersion]:
        """Complete versions, oldest first (``v000`` first when recorded).

        Returns
        -------
        list of ModelVersion
        """
        if not self.versions_dir.is_dir():
            return []
        folders = [p for p in self.versions_dir.iterdir()
                   if p.is_dir() and _VERSION_PATTERN.fullmatch(p.name)]
        versions = (self._read(p) for p in sorted(folders, key=lambda p: int(p.name[1:])))
        return [v for v in versions if v is not None]

    def latest(self) -> ModelVersion | None:
        """The newest version (the base ``v000`` when no round was run; None if empty)."""
        versions = self.list()
        return versions[-1] if versions else None

    def current(self, versions: Sequence[ModelVersion] | None = None) -> ModelVersion | None:
        """The project's model: what the next round starts from.

        The newest *adopted* version (a round that made the model worse is kept as a
        version but skipped: :attr:`ModelVersion.adopted`), unless the user chose a
        version since it was made (:meth:`choose`). None when the project has none yet.

        Parameters
        ----------
        versions : sequence of ModelVersion, optional
            :meth:`list`, when just read.
        """
        versions = self.list() if versions is None else list(versions)
        newest = newest_adopted(versions)
        choice = self._choice()
        if choice is None:
            return newest
        name, over = choice
        version = next((v for v in versions if v.name == name and not v.unreadable), None)
        # version numbers, not clocks, tell whether a round was made current since: a
        # round may be saved by another computer, or in the same second
        if version is None or (newest is not None and newest.number > over):
            return newest  # gone, or a round made current since
        return version

    def _choice(self) -> tuple[str, int] | None:
        """The version :meth:`choose` recorded and its ``over``; None when none is readable."""
        try:
            chosen = json.loads((self.versions_dir / CHOSEN_FILE).read_text(encoding="utf-8"))
            return str(chosen["version"]), int(chosen["over"])
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, OverflowError):
            return None

    def choose(self, name: str) -> None:
        """Record that the user chose version ``name`` as the project's model.

        A version a round did not make current, chosen anyway ("Use this version"), was
        forgotten when napari started again (GUI check h_gui13, L6). A round made
        current later takes over.
        """
        version = self.get(name)
        newest = newest_adopted(self.list())
        _write_json_atomic(self.versions_dir / CHOSEN_FILE, {
            "version": version.name, "chosen": _now(),
            # the newest version a round made current then: a newer one takes over
            "over": -1 if newest is None else newest.number})

    def forget_choice(self) -> None:
        """Forget the version the user chose (:meth:`choose`).

        :meth:`current` is then again the newest version a round made current.
        """
        (self.versions_dir / CHOSEN_FILE).unlink(missing_ok=True)

    def get(self, name: str) -> ModelVersion:
        """The version called ``name`` (``"v002"``; ``"2"`` and ``2`` work too).

        Raises
        ------
        KeyError
            When there is no such complete version.
        """
        text = str(name)
        wanted = f"v{int(text.lstrip('v')):03d}" if text.lstrip("v").isdigit() else text
        for version in self.list():
            if version.name == wanted:
                return version
        names = ", ".join(v.name for v in self.list()) or "none"
        raise KeyError(f"No model version {name!r} in {self.versions_dir} (have: {names}).")

    def record_base(self, model: str | os.PathLike) -> ModelVersion:
        """Record the project's base model as ``v000`` (once; later calls return it).

        The shipped default model is recorded by reference (``"default"``); any other
        checkpoint is copied into ``v000`` so the project keeps working if the original
        file is moved or deleted.

        Parameters
        ----------
        model : str or os.PathLike
            ``"default"`` or a checkpoint path.

        Returns
        -------
        ModelVersion
        """
        folder = self.versions_dir / "v000"
        existing = self._read(folder) if folder.is_dir() else None
        if existing is not None:
            return existing
        folder.mkdir(parents=True, exist_ok=True)
        info: dict[str, Any] = {"created": _now()}
        if _is_default_model(model):
            info.update(model="default", copied=False)
        else:
            source = weights_path(model)
            read_metadata(source)  # a clear CheckpointError for a bad file, before copying
            for src, dst in ((source, folder / "model.safetensors"),
                             (source.with_suffix(".json"), folder / "model.json")):
                atomic_write(dst, lambda tmp, src=src: shutil.copyfile(src, tmp))
            info.update(model=str(source.resolve()), copied=True)
        _write_json_atomic(folder / "reference.json", info)
        return self._read(folder)  # type: ignore[return-value]

    def _reserve(self) -> Path:
        """Create the next free ``vNNN`` folder (N >= 1); existing folders are never reused.

        Nor is the number of a version deleted by hand that a choice still counts from
        (:meth:`choose`'s ``over``): the round saved under it was reported as made current
        while the chosen version stayed the project's model (review h_rev24, L1).
        """
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        taken = [int(m.group(1)) for p in self.versions_dir.iterdir()
                 if (m := _VERSION_PATTERN.fullmatch(p.name))]
        choice = self._choice()
        if choice is not None and choice[1] <= max([0, *taken]) + 1000:  # not a hand-edited
            taken.append(choice[1])  # 1e300 (h_rev27, 9)
        number = max([0, *taken]) + 1
        while True:
            folder = self.versions_dir / f"v{number:03d}"
            try:
                folder.mkdir()
                return folder
            except FileExistsError:
                number += 1

    def add(self, model: Any, config: Any, info: Mapping[str, Any],
            metadata: Mapping[str, Any] | None = None) -> ModelVersion:
        """Save a fine-tuned model as a new version.

        Parameters
        ----------
        model : UNet
            The model to save.
        config : TrainConfig
            Its training configuration.
        info : mapping
            Stored under ``"finetune"`` in ``model.json`` (see :attr:`ModelVersion.info`).
        metadata : mapping, optional
            Other sidecar entries (history, training data...).

        Returns
        -------
        ModelVersion
            The new version (``v001``, ``v002``... never an existing folder).
        """
        from ..checkpoint import save_checkpoint

        folder = self._reserve()
        meta = {**(metadata or {}), "created": _now(), "finetune": dict(info)}
        try:
            save_checkpoint(folder / "model.safetensors", model, config, meta)
        except BaseException:
            # a full disk left the folder: "not a complete model version", and the next
            # round skipped its number (CLI check h_cli3, L4). Not saved: its save's lock
            # and temporary files go with it (review h_rev29, 2)
            if not (folder / "model.safetensors").exists():
                for leftover in folder.glob(".*"):
                    with contextlib.suppress(OSError):
                        leftover.unlink()
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when nothing else is in it
            raise
        version = self._read(folder)
        if version is None:  # pragma: no cover - save_checkpoint raised otherwise
            raise CheckpointError(f"Could not save model version {folder}.")
        return version


#: The checkpoint a training run's folder stands for (``nuclei-unet train --out RUN``).
RUN_BEST = "best.safetensors"


def resolve_model_folder(model: str | os.PathLike) -> str | os.PathLike:
    """The checkpoint a MODEL argument names when it is a folder a user has at hand.

    - a fine-tuning project (``<project>/versions/``): its current version, the newest
      made current (what the next round starts from and the Retrain dock uses);
    - one of its version folders (``<project>/versions/v002``): that version's weights;
    - a training run (``RUN/best.safetensors``): its best checkpoint.

    Anything else (``"default"``, a checkpoint file, a bioimage.io package) is returned
    as it is.

    Raises
    ------
    CheckpointError
        For a project without a version yet, or for ``"latest"`` given where no project
        is known (it names the current version of the project a round writes to).
    """
    if isinstance(model, str) and model == "latest" and not Path(model).exists():
        raise CheckpointError(
            "'latest' names a fine-tuning project's current version only for "
            "'nuclei-unet finetune' (the project of --out). Here, give the project folder "
            "itself (it stands for its current version) or a version's model.safetensors.")
    path = Path(model)
    if not path.is_dir():
        _refuse_missing_version(path)
        return model
    if path.name == VERSIONS_DIR and _is_project(path.parent):
        raise CheckpointError(
            f"{path} holds a fine-tuning project's versions: give the project folder "
            f"({path.parent}: its current version) or one version's folder "
            f"({path / _version_names(path.parent)[-1]})." if _version_names(path.parent)
            else f"{path} holds no model version yet: run a fine-tuning round first.")
    weights = path / "model.safetensors"
    if _VERSION_PATTERN.fullmatch(path.name) and path.parent.name == VERSIONS_DIR:
        if weights.is_file():
            return weights
        try:  # v000 may be a reference to the model the project started from
            return ModelVersions(path.parent.parent).get(path.name).model
        except KeyError:
            raise CheckpointError(f"{path} is not a complete model version (a round that "
                                  "stopped while saving): choose another version.") from None
    if _is_project(path):
        current = ModelVersions(path).current()
        if current is None:
            raise CheckpointError(
                f"{path} is a fine-tuning project without a model version yet: run a "
                "fine-tuning round first (Retrain dock or 'nuclei-unet finetune').")
        return current.model
    if (path / RUN_BEST).is_file():
        return path / RUN_BEST
    return model


def _version_names(project: Path) -> list[str]:
    return [v.name for v in ModelVersions(project).list()]


def _refuse_missing_version(path: Path) -> None:
    """A mistyped version folder (``DIR/versions/v009``) is named as such, with the choices."""
    if not (_VERSION_PATTERN.fullmatch(path.name) and path.parent.name == VERSIONS_DIR
            and _is_project(path.parent.parent) and not path.exists()):
        return
    names = _version_names(path.parent.parent)
    raise CheckpointError(
        f"{path.parent.parent} has no version {path.name}"
        + (f" (its versions: {', '.join(names)})." if names else " (no version yet).")
        + f" Give the project folder {path.parent.parent} for its current version.")


def _is_project(path: Path) -> bool:
    """Whether a folder is a fine-tuning project (it has versions or an index)."""
    return (path / VERSIONS_DIR).is_dir() or (path / PROJECT_FILE).is_file()


def describe_model_folder(model: str | os.PathLike) -> str:
    """What a MODEL folder stands for, in words ("" when ``model`` is not such a folder).

    E.g. "runs/finetuned stands for its current version v002
    (runs/finetuned/versions/v002/model.safetensors)", or, when no round of the project
    was made current, that its current version is the model it started from.
    """
    path = Path(model)
    if path.is_dir() and _is_project(path):
        current = ModelVersions(path).current()  # read once; None: loading says why
        if current is None:
            return ""
        if current.is_base:
            what = ("the shipped default model" if str(current.model) == "default"
                    else str(current.model))
            return (f"{path} stands for its current version v000, the model it started "
                    f"from ({what}): no fine-tuning round of it was made current yet")
        return f"{path} stands for its current version {current.name} ({current.model})"
    try:
        resolved = resolve_model_folder(model)
    except CheckpointError:
        return ""  # loading the model says what is wrong
    if str(resolved) == str(model):
        return ""
    if str(resolved) == "default":
        return f"{path} stands for the shipped default model"
    return f"{path} stands for {resolved}"
