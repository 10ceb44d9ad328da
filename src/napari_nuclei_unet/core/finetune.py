"""Interactive retraining: a store of corrected masks, fine-tuning rounds, model versions.

A *fine-tuning project* is one folder::

    <project>/
      project.json                  index of the corrections (written atomically)
      corrections/<id>/images/<id>.png
      corrections/<id>/masks/0001.png, 0002.png, ...   one 0/255 PNG per nucleus
      versions/v000/reference.json  the base model the project started from
      versions/v001/model.safetensors + model.json     one folder per fine-tuning round
      removed/<id>-<time>/          corrections taken out of the project (kept, not deleted)
      drafts/<id>.npz               the Retrain dock's auto-saved edits not yet added as
                                    corrections (``widgets/_retrain_project.py``); not
                                    training data: this module never reads them
      .lock                         held while a correction is added or removed

``corrections/`` is a DSB2018-style dataset (``DSBDataset.open(<project>/corrections)``
reads it), so corrected images can be used anywhere a dataset is expected.

Safety rules, because the masks were edited by hand and models take time to train:

- a correction is written into a staging folder inside the project, then renamed into
  place; a correction it replaces is first moved aside as a backup and deleted only once
  the new one and the index are in place;
- adding or removing a correction holds an exclusive lock on ``<project>/.lock``
  (:func:`~napari_nuclei_unet.core.locking.exclusive_lock`; an OS lock, so a crash never
  leaves it held) from the staging folder's creation to the index update. Staging
  folders and backups found while holding the lock are therefore leftovers of a crashed
  save, and only then are they repaired: the backup is restored if the new correction
  never arrived, half-written staging folders are dropped. Each save repairs first;
  opening a store repairs only when the lock is free, so a store opened while another
  one (of this or another process) is saving never touches that save;
- the index is re-read under the lock before it is changed (two stores of one project
  never undo each other's entries), written to a temporary file and renamed over the
  old one;
- a model version folder is never reused: round N+1 is always a new ``vNNN`` folder.

The fine-tuning itself (:func:`finetune`) is a generator like
:func:`~napari_nuclei_unet.core.training.train`: it yields the same
:class:`TrainStep`/:class:`EpochEnd` updates (and :class:`Progress` while scoring) and
returns a :class:`FinetuneResult`. No Qt, no napari: the retraining dock, the CLI
(``nuclei-unet finetune``) and tests all drive it the same way.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import CheckpointError, default_model_path, read_metadata, weights_path
from .locking import LockTimeout, exclusive_lock
from .progress import Progress, stop_requested

__all__ = [
    "FINETUNE_DEFAULTS",
    "Correction",
    "CorrectionStore",
    "FinetuneError",
    "FinetuneResult",
    "ModelVersion",
    "ModelVersions",
    "ScoreChange",
    "finetune",
    "mix_samples",
    "safe_sample_id",
]

PROJECT_FILE = "project.json"
CORRECTIONS_DIR = "corrections"
VERSIONS_DIR = "versions"
REMOVED_DIR = "removed"
BACKUP_DIR = ".backup"
LOCK_FILE = ".lock"
#: Seconds a save waits for another one of the same project (another napari window or
#: ``nuclei-unet`` command) before giving up with a FinetuneError.
LOCK_TIMEOUT_S = 60.0
STAGING_PREFIX = ".staging-"
ROUND_PREFIX = ".round-"
PROJECT_FORMAT = "napari-nuclei-unet finetune project"
PROJECT_FORMAT_VERSION = 1

#: Where a correction's labels came from: painted by hand, or a prediction accepted as is.
SOURCES = ("label", "prediction")

#: Training settings of a fine-tuning round, applied over the base model's configuration
#: (architecture fields always come from the base model). Chosen so that a round on five
#: corrected images with the default model (base_width 16, depth 4) takes well under 30 s
#: on a 2-core CPU including scoring; see ``benchmarks/bench_finetune.py``.
FINETUNE_DEFAULTS: dict[str, Any] = {
    "epochs": 3,
    "steps_per_epoch": 8,
    "batch_size": 8,
    "crop_size": 128,
    "learning_rate": 5e-4,
    "schedule": "cosine",
    "warmup_fraction": 0.1,
    "min_lr_fraction": 0.1,
    "early_stopping_patience": None,
    "val_every": 1,
    # One CPU thread: on a busy 2-core machine (napari drawing, other jobs) two torch
    # threads wait for each other and a round took 70-170 s instead of 22-24 s; on an
    # idle machine one thread still needs only ~13 s. Ignored on a GPU.
    "num_threads": 1,
    # Crops are drawn uniformly from the mixed list, so the share of the corrections is
    # the ratio asked for, whatever the base model was trained with.
    "modality_balance": 0.0,
    # A round is a few dozen steps: compiling (about a minute) would cost more than it saves.
    "compile": False,
}

_ARCHITECTURE_FIELDS = ("base_width", "depth", "in_channels")
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_VERSION_PATTERN = re.compile(r"v(\d{3,})")


class FinetuneError(ValueError):
    """A correction, project folder or fine-tuning request is not usable; says why."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def safe_sample_id(name: str) -> str:
    """Turn any name (e.g. a napari layer name) into a valid correction id.

    Parameters
    ----------
    name : str
        Any text.

    Returns
    -------
    str
        Letters, digits and ``._+-`` only, starting with a letter or digit, at most 128
        characters (``"image [1].tif"`` becomes ``"image_1_.tif"``).
    """
    text = re.sub(r"[^A-Za-z0-9._+-]+", "_", str(name)).strip("._-+ ")
    return (text or "image")[:128]


def _check_id(sample_id: str) -> str:
    if not isinstance(sample_id, str) or not _ID_PATTERN.fullmatch(sample_id):
        raise FinetuneError(
            f"Correction id {sample_id!r} cannot be used as a folder name: use letters, digits "
            f"and . _ + - only (at most 128 characters), e.g. {safe_sample_id(str(sample_id))!r}."
        )
    return sample_id


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON to a temporary file in the same folder, fsync it, rename it over ``path``."""
    text = json.dumps(data, indent=2, allow_nan=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_png(path: Path, array: np.ndarray) -> None:
    """Write one PNG (RGB image or 0/255 mask) and flush it to disk."""
    from PIL import Image

    Image.fromarray(array).save(path, format="PNG", compress_level=3)
    _fsync_file(path)


def _as_labels(labels: Any, shape: tuple[int, int], sample_id: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.astype(np.int32)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise FinetuneError(
            f"Correction {sample_id!r}: labels must be a 2-D integer label image (0 = "
            f"background, 1..n = nuclei), got {labels.dtype} of shape {labels.shape}."
        )
    if labels.shape != shape:
        raise FinetuneError(
            f"Correction {sample_id!r}: labels are {labels.shape[1]} x {labels.shape[0]} pixels "
            f"but the image is {shape[1]} x {shape[0]}; they must match pixel for pixel."
        )
    if labels.size and labels.min() < 0:
        raise FinetuneError(
            f"Correction {sample_id!r}: labels contain negative values; use 0 for background "
            "and positive numbers for nuclei."
        )
    return labels


@dataclass(frozen=True)
class Correction:
    """One corrected image of a project (an entry of ``project.json``).

    Attributes
    ----------
    id : str
        Sample id: the folder ``corrections/<id>`` and the image file stem.
    source : str
        ``"label"`` (painted/edited by hand) or ``"prediction"`` (a prediction accepted
        as correct); ``"unknown"`` for a folder found without an index entry.
    note : str
        Free text from the user.
    n_nuclei : int
        Number of nuclei (mask files).
    height, width : int
        Image size in pixels.
    created, updated : str
        ISO 8601 UTC times of the first and the latest save.
    path : pathlib.Path
        The sample folder.
    """

    id: str
    source: str
    note: str
    n_nuclei: int
    height: int
    width: int
    created: str
    updated: str
    path: Path

    def to_dict(self) -> dict[str, Any]:
        """The index entry (without the id and path)."""
        return {"source": self.source, "note": self.note, "n_nuclei": self.n_nuclei,
                "height": self.height, "width": self.width, "created": self.created,
                "updated": self.updated}


class CorrectionStore:
    """Corrected image/mask pairs of a fine-tuning project, saved crash-safely on disk.

    Parameters
    ----------
    project_dir : str or os.PathLike
        The project folder (created on the first :meth:`add`). Opening a folder that
        already holds a project lists its corrections again and, unless another store
        is saving to it right now, repairs what a crashed save left behind (see the
        module notes). Any number of stores, in any threads or processes, may be open
        on one project.

    Raises
    ------
    FinetuneError
        When ``project.json`` exists but is not a project index.
    OSError
        When what a crashed save left behind cannot be repaired (e.g. no permission).

    Examples
    --------
    >>> store = CorrectionStore("my-project")                       # doctest: +SKIP
    >>> store.add("cells-01", image, labels, source="label")        # doctest: +SKIP
    >>> samples = store.load_samples()                              # doctest: +SKIP
    """

    def __init__(self, project_dir: str | os.PathLike) -> None:
        self.path = Path(project_dir).expanduser().absolute()
        self.corrections_dir = self.path / CORRECTIONS_DIR
        self.index_path = self.path / PROJECT_FILE
        self.lock_path = self.path / LOCK_FILE
        self._entries: dict[str, dict[str, Any]] = {}
        self._project: dict[str, Any] = {}
        self._read_index()
        if self._leftovers():
            locked = False
            try:
                with exclusive_lock(self.lock_path, timeout=0):
                    locked = True
                    self._repair()
            except LockTimeout:
                pass  # a save is running right now: not a crash (each save repairs first)
            except OSError:
                if locked:
                    raise
                # no lock file in a read-only folder: nobody can be saving there either

    # -- index ----------------------------------------------------------------------

    def _read_index(self) -> None:
        if not self.index_path.exists():
            return
        try:
            data = json.loads(self.index_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FinetuneError(
                f"{self.index_path} is not a readable project index ({exc}). The corrections "
                f"themselves are in {self.corrections_dir}; move the broken {PROJECT_FILE} "
                "away and reopen the project to rebuild the index from them."
            ) from exc
        if not isinstance(data, dict) or not isinstance(data.get("corrections", {}), dict):
            raise FinetuneError(
                f"{self.index_path} is not a napari-nuclei-unet fine-tuning project index."
            )
        self._project = data
        self._entries = {str(k): dict(v) for k, v in data.get("corrections", {}).items()}

    def _write_index(self, entries: Mapping[str, Mapping[str, Any]]) -> None:
        data = {
            **self._project,
            "format": PROJECT_FORMAT,
            "format_version": PROJECT_FORMAT_VERSION,
            "created": self._project.get("created", _now()),
            "updated": _now(),
            "corrections": {k: dict(entries[k]) for k in sorted(entries)},
        }
        _write_json_atomic(self.index_path, data)
        self._project = data
        self._entries = {k: dict(v) for k, v in data["corrections"].items()}

    def _leftovers(self) -> bool:
        """Whether staging folders or backups exist (a save running now, or crashed)."""
        if not self.path.is_dir():
            return False
        backups = self.path / BACKUP_DIR
        return (any(self.path.glob(STAGING_PREFIX + "*"))
                or (backups.is_dir() and any(backups.iterdir())))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the project's lock; a FinetuneError when another save holds it too long."""
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            with exclusive_lock(self.lock_path, timeout=LOCK_TIMEOUT_S):
                yield
        except LockTimeout as exc:
            raise FinetuneError(
                f"Another program has been saving to the project {self.path} for more than "
                f"{LOCK_TIMEOUT_S:g} s (it holds {self.lock_path}). Wait for it to finish, or "
                "close other napari windows and nuclei-unet commands using this project, "
                "then save again."
            ) from exc

    def _repair(self) -> None:
        """Repair what a crashed :meth:`add` left behind. Only call holding the lock."""
        if not self.path.is_dir():
            return
        for staging in self.path.glob(STAGING_PREFIX + "*"):
            shutil.rmtree(staging, ignore_errors=True)  # never renamed into place: incomplete
        backups = self.path / BACKUP_DIR
        if backups.is_dir():
            for backup in backups.iterdir():
                final = self.corrections_dir / backup.name
                if final.exists():
                    shutil.rmtree(backup, ignore_errors=True)  # the new version is complete
                else:
                    self.corrections_dir.mkdir(parents=True, exist_ok=True)
                    os.rename(backup, final)  # the new one never arrived: restore the old

    @staticmethod
    def _count_masks(folder: Path) -> int:
        masks = folder / "masks"
        return sum(1 for p in masks.iterdir() if p.suffix.lower() == ".png"
                   and not p.name.startswith(".")) if masks.is_dir() else 0

    def _correction(self, sample_id: str, entry: Mapping[str, Any]) -> Correction:
        return Correction(
            id=sample_id, source=str(entry.get("source", "unknown")),
            note=str(entry.get("note", "")), n_nuclei=int(entry.get("n_nuclei", 0)),
            height=int(entry.get("height", 0)), width=int(entry.get("width", 0)),
            created=str(entry.get("created", "")), updated=str(entry.get("updated", "")),
            path=self.corrections_dir / sample_id,
        )

    def list(self) -> list[Correction]:
        """The corrections on disk, sorted by id.

        Folders without an index entry (a save interrupted just before the index was
        updated) are listed too, with ``source="unknown"``; index entries whose folder is
        gone are not.

        Returns
        -------
        list of Correction
        """
        found = []
        if self.corrections_dir.is_dir():
            for folder in sorted(self.corrections_dir.iterdir()):
                if not folder.is_dir() or folder.name.startswith("."):
                    continue
                entry = self._entries.get(folder.name)
                if entry is None:
                    mtime = datetime.fromtimestamp(folder.stat().st_mtime, timezone.utc)
                    stamp = mtime.isoformat(timespec="seconds")
                    entry = {"source": "unknown", "n_nuclei": self._count_masks(folder),
                             "created": stamp, "updated": stamp}
                found.append(self._correction(folder.name, entry))
        return found

    def ids(self) -> list[str]:
        """Ids of the corrections, sorted."""
        return [c.id for c in self.list()]

    def __len__(self) -> int:
        return len(self.list())

    def __contains__(self, sample_id: object) -> bool:
        return isinstance(sample_id, str) and (self.corrections_dir / sample_id).is_dir()

    def get(self, sample_id: str) -> Correction:
        """The correction ``sample_id``.

        Raises
        ------
        KeyError
            When there is no such correction.
        """
        for correction in self.list():
            if correction.id == sample_id:
                return correction
        raise KeyError(f"No correction {sample_id!r} in {self.path} ({len(self)} corrections).")

    # -- writing --------------------------------------------------------------------

    def add(
        self,
        sample_id: str,
        image: np.ndarray,
        labels: np.ndarray,
        *,
        source: str = "label",
        note: str = "",
    ) -> Correction:
        """Save (or replace) a corrected image and its nuclei, crash-safely.

        Parameters
        ----------
        sample_id : str
            Id of the image (letters, digits, ``._+-``; see :func:`safe_sample_id`).
            Saving an id again replaces that correction (its creation time is kept).
        image : numpy.ndarray
            ``(H, W)`` grey or ``(H, W, 3|4)`` image; other dtypes than uint8 are scaled
            to uint8 as when reading files.
        labels : numpy.ndarray
            ``(H, W)`` integer labels (0 = background, one value per nucleus). A boolean
            mask is taken as one single nucleus: label it first to get one per nucleus.
            Label values need not be consecutive; they are renumbered 1..n in the files.
        source : {"label", "prediction"}
            Whether the labels were edited by hand or a prediction accepted as correct.
        note : str
            Free text kept in the index.

        Returns
        -------
        Correction
            The index entry.

        Raises
        ------
        FinetuneError
            For a bad id, source, image or labels (nothing is written then).
            Also when another program kept the project locked for
            :data:`LOCK_TIMEOUT_S` seconds.
        OSError
            When the disk is full or not writable; the previous version of this
            correction and the index are left as they were.
        """
        from skimage.segmentation import relabel_sequential

        from .imageio import to_rgb8

        _check_id(sample_id)
        if source not in SOURCES:
            raise FinetuneError(f"source must be one of {SOURCES}, got {source!r}.")
        try:
            rgb = to_rgb8(np.asarray(image))
        except ValueError as exc:
            raise FinetuneError(f"Correction {sample_id!r}: unusable image: {exc}") from exc
        labels = _as_labels(labels, rgb.shape[:2], sample_id)
        labels, _, _ = relabel_sequential(labels.astype(np.int64, copy=False))
        n_nuclei = int(labels.max()) if labels.size else 0

        with self._locked():
            self._repair()
            self._read_index()  # another store may have changed it since
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.path))
            try:
                self._write_sample(staging / sample_id, sample_id, rgb, labels, n_nuclei)
                self._move_into_place(staging / sample_id, sample_id, {
                    "source": source,
                    "note": str(note),
                    "n_nuclei": n_nuclei,
                    "height": int(rgb.shape[0]),
                    "width": int(rgb.shape[1]),
                    "created": self._entries.get(sample_id, {}).get("created", _now()),
                    "updated": _now(),
                })
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return self.get(sample_id)

    @staticmethod
    def _write_sample(folder: Path, sample_id: str, rgb: np.ndarray, labels: np.ndarray,
                      n_nuclei: int) -> None:
        from scipy.ndimage import find_objects

        (folder / "images").mkdir(parents=True)
        (folder / "masks").mkdir()
        _write_png(folder / "images" / f"{sample_id}.png", rgb)
        digits = max(4, len(str(n_nuclei)))
        for k, box in enumerate(find_objects(labels), start=1):
            mask = np.zeros(labels.shape, np.uint8)
            if box is not None:
                mask[box][labels[box] == k] = 255
            _write_png(folder / "masks" / f"{k:0{digits}d}.png", mask)

    def _move_into_place(self, new: Path, sample_id: str, entry: dict[str, Any]) -> None:
        final = self.corrections_dir / sample_id
        backup = self.path / BACKUP_DIR / sample_id
        self.corrections_dir.mkdir(parents=True, exist_ok=True)
        had_old = final.exists()
        if had_old:
            backup.parent.mkdir(exist_ok=True)
            if backup.exists():  # left by an earlier crash while `final` was complete
                shutil.rmtree(backup)
            os.rename(final, backup)
        try:
            os.rename(new, final)
            self._write_index({**self._entries, sample_id: entry})
        except BaseException:
            # Put the old correction back; the new files are deleted with the staging folder.
            if final.exists() and had_old:
                os.rename(final, new)
            if had_old:
                os.rename(backup, final)
            raise
        if had_old:
            shutil.rmtree(backup, ignore_errors=True)

    def remove(self, sample_id: str) -> Path:
        """Take a correction out of the project, keeping its files in ``removed/``.

        Parameters
        ----------
        sample_id : str
            The correction to remove.

        Returns
        -------
        pathlib.Path
            Where its folder now is (``<project>/removed/<id>-<time>``); delete it by hand
            when sure.

        Raises
        ------
        KeyError
            When there is no such correction.
        FinetuneError
            When another program kept the project locked for :data:`LOCK_TIMEOUT_S` s.
        """
        final = self.corrections_dir / _check_id(sample_id)
        if not final.is_dir():
            raise KeyError(f"No correction {sample_id!r} in {self.path}.")
        with self._locked():
            if not final.is_dir():  # removed by another store meanwhile
                raise KeyError(f"No correction {sample_id!r} in {self.path}.")
            self._read_index()
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
            target = self.path / REMOVED_DIR / f"{sample_id}-{stamp}"
            target.parent.mkdir(exist_ok=True)
            os.rename(final, target)
            entries = dict(self._entries)
            entries.pop(sample_id, None)
            self._write_index(entries)
        return target

    # -- reading --------------------------------------------------------------------

    def load_samples(self, ids: Iterable[str] | None = None) -> list[Any]:
        """Decode corrections as :class:`~napari_nuclei_unet.core.dataset.Sample` objects.

        Parameters
        ----------
        ids : iterable of str, optional
            Which corrections (default: all, sorted by id).

        Returns
        -------
        list of Sample
            Image, labels (1..n in mask file order) and the guessed modality; the
            arrays are writable (torch warns about read-only NumPy arrays).

        Raises
        ------
        KeyError
            For an unknown id.
        DatasetError
            When a file of a correction is corrupt.
        """
        from .dataset import load_sample

        wanted = self.ids() if ids is None else list(ids)
        samples = []
        for sample_id in wanted:
            folder = self.corrections_dir / sample_id
            if not folder.is_dir():
                raise KeyError(f"No correction {sample_id!r} in {self.path}.")
            sample = load_sample(folder, require_masks=False)
            # Decoded PNGs can be read-only views of their bytes; copy only those.
            sample.image = np.require(sample.image, requirements="W")
            sample.labels = np.require(sample.labels, requirements="W")
            samples.append(sample)
        return samples


# ---------------------------------------------------------------------------------
# model versions
# ---------------------------------------------------------------------------------

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


def _is_default_model(model: str | os.PathLike) -> bool:
    if isinstance(model, str) and model == "default":
        return True
    try:
        return weights_path(model).resolve() == default_model_path().resolve()
    except OSError:
        return False


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
        except CheckpointError:
            return None
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
                fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=folder)
                os.close(fd)
                try:
                    shutil.copyfile(src, tmp)
                    os.replace(tmp, dst)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
            info.update(model=str(source.resolve()), copied=True)
        _write_json_atomic(folder / "reference.json", info)
        return self._read(folder)  # type: ignore[return-value]

    def _reserve(self) -> Path:
        """Create the next free ``vNNN`` folder (N >= 1); existing folders are never reused."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        taken = [int(m.group(1)) for p in self.versions_dir.iterdir()
                 if (m := _VERSION_PATTERN.fullmatch(p.name))]
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
        from .checkpoint import save_checkpoint

        folder = self._reserve()
        meta = {**(metadata or {}), "created": _now(), "finetune": dict(info)}
        save_checkpoint(folder / "model.safetensors", model, config, meta)
        version = self._read(folder)
        if version is None:  # pragma: no cover - save_checkpoint raised otherwise
            raise CheckpointError(f"Could not save model version {folder}.")
        return version


# ---------------------------------------------------------------------------------
# fine-tuning rounds
# ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScoreChange:
    """Scores of one image with the model before and after a fine-tuning round.

    Attributes
    ----------
    id, modality : str
        The sample.
    iou_before, iou_after : float
        Foreground IoU with the base model and with the fine-tuned one.
    dice_before, dice_after : float
        Foreground Dice.
    ap50_before, ap50_after : float
        Object score ``TP / (TP + FP + FN)`` at IoU 0.5.
    n_true, n_pred_before, n_pred_after : int
        Nuclei in the corrected labels and in each prediction.
    """

    id: str
    modality: str
    iou_before: float
    iou_after: float
    dice_before: float
    dice_after: float
    ap50_before: float
    ap50_after: float
    n_true: int
    n_pred_before: int
    n_pred_after: int

    @property
    def iou_gain(self) -> float:
        """``iou_after - iou_before``."""
        return self.iou_after - self.iou_before

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fields."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


@dataclass(frozen=True)
class FinetuneResult:
    """Outcome of one :func:`finetune` round.

    Attributes
    ----------
    version : ModelVersion or None
        The new model version (None when the round was cancelled: nothing is saved).
    corrected : tuple of ScoreChange
        Every corrected image, scored with the base and with the new model.
    evaluation : tuple of ScoreChange
        Every ``eval_samples`` image, likewise (empty when none were given).
    history : tuple of EpochEnd
        The training epochs.
    ratio : float
        Fraction of the training list made of corrections (what was actually used).
    n_original : int
        Original samples mixed in.
    cancelled : bool
        ``should_stop`` ended the round.
    elapsed_s : float
        Wall time of the whole round, scoring included.
    """

    version: ModelVersion | None
    corrected: tuple[ScoreChange, ...] = ()
    evaluation: tuple[ScoreChange, ...] = ()
    history: tuple[Any, ...] = ()
    ratio: float = 1.0
    n_original: int = 0
    cancelled: bool = False
    elapsed_s: float = 0.0

    @property
    def checkpoint(self) -> Path | None:
        """The new model's ``.safetensors`` path (None when cancelled)."""
        return None if self.version is None else Path(self.version.model)

    def mean_iou(self, which: str = "corrected", when: str = "after") -> float | None:
        """Mean IoU over the corrected (or evaluation) images, before or after.

        Parameters
        ----------
        which : {"corrected", "evaluation"}
            Which images.
        when : {"before", "after"}
            With the base model or with the fine-tuned one.

        Returns
        -------
        float or None
            None when there are no such images.
        """
        rows = self.corrected if which == "corrected" else self.evaluation
        return _mean([getattr(r, f"iou_{when}") for r in rows])

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: version, mean IoUs before/after, per-image changes."""
        return {
            "version": None if self.version is None else self.version.name,
            "checkpoint": None if self.checkpoint is None else str(self.checkpoint),
            "cancelled": self.cancelled,
            "ratio": self.ratio,
            "n_original": self.n_original,
            "elapsed_s": self.elapsed_s,
            "corrected": {"mean_iou_before": self.mean_iou("corrected", "before"),
                          "mean_iou_after": self.mean_iou("corrected", "after"),
                          "images": [r.to_dict() for r in self.corrected]},
            "evaluation": {"mean_iou_before": self.mean_iou("evaluation", "before"),
                           "mean_iou_after": self.mean_iou("evaluation", "after"),
                           "images": [r.to_dict() for r in self.evaluation]},
        }


def mix_samples(
    corrections: Sequence[Any],
    original: Sequence[Any] | None,
    ratio: float,
    *,
    seed: int = 0,
    max_repeats: int = 16,
) -> tuple[list[Any], float, int]:
    """Build the training list of a round: corrections mixed with original samples.

    Training draws every crop from a uniformly random entry of the list, so the share
    of the corrections in the list is the expected share of correction crops in every
    batch. Corrections are repeated (at most ``max_repeats`` times) and a random subset
    of the originals is taken so that the share is ``ratio``, as near as whole numbers
    allow. Originals with the id of a correction are left out (their old labels are
    the ones being corrected).

    Parameters
    ----------
    corrections : sequence of Sample
        The corrected samples (at least one).
    original : sequence of Sample or None
        The original training data (may be empty or None: then only corrections).
    ratio : float
        Wanted share of the corrections, ``0 < ratio <= 1``.
    seed : int
        Seed of the subset choice.
    max_repeats : int
        Most copies of each correction in the list (bounds memory).

    Returns
    -------
    samples : list of Sample
        The training list (entries repeat; samples are not copied).
    actual_ratio : float
        The share of corrections in it.
    n_original : int
        How many distinct original samples it holds.

    Raises
    ------
    FinetuneError
        Without corrections, or with ``ratio`` outside ``(0, 1]``.
    """
    if not corrections:
        raise FinetuneError(
            "No corrected image to learn from: save at least one corrected mask first."
        )
    if not 0.0 < ratio <= 1.0:
        raise FinetuneError(
            f"ratio is the share of the corrections in each batch and must be in (0, 1], "
            f"got {ratio}."
        )
    corrected_ids = {s.id for s in corrections}
    pool = [s for s in (original or []) if s.id not in corrected_ids]
    if ratio >= 1.0 or not pool:
        return list(corrections), 1.0, 0
    c, o = len(corrections), len(pool)
    repeats = int(min(max_repeats, max(1, round(ratio * o / ((1.0 - ratio) * c)))))
    n_original = int(min(o, max(1, round(repeats * c * (1.0 - ratio) / ratio))))
    rng = np.random.default_rng(seed)
    chosen = [pool[i] for i in sorted(rng.choice(o, size=n_original, replace=False))]
    mixed = list(corrections) * repeats + chosen
    return mixed, repeats * c / len(mixed), n_original


def _score(model: Any, samples: Sequence[Any], device: Any, stage: str,
           should_stop: Callable[[], bool] | None) -> Generator[Progress, None, list[Any]]:
    from .evaluation import score_prediction
    from .inference import predict_probability

    rows = []
    for done, sample in enumerate(samples, start=1):
        if stop_requested(should_stop):
            break
        prob = predict_probability(model, sample.image, device=device)
        rows.append(score_prediction(sample, prob))
        yield Progress(stage, done, len(samples), str(sample.id))
    return rows


def _changes(before: Sequence[Any], after: Sequence[Any]) -> tuple[ScoreChange, ...]:
    return tuple(
        ScoreChange(b.id, b.modality, b.iou, a.iou, b.dice, a.dice, b.ap50, a.ap50,
                    b.n_true, b.n_pred, a.n_pred)
        for b, a in zip(before, after, strict=True)
    )


def _round_config(base_config: Any, overrides: Mapping[str, Any] | None,
                  samples: Sequence[Any]) -> Any:
    """The round's TrainConfig: base config, then FINETUNE_DEFAULTS, then overrides."""
    from .config import TrainConfig

    overrides = dict(overrides or {})
    settings = {**FINETUNE_DEFAULTS, **overrides}
    changed = [k for k in _ARCHITECTURE_FIELDS
               if k in settings and settings[k] != getattr(base_config, k)]
    if changed:
        current = ", ".join(f"{k}={getattr(base_config, k)}" for k in _ARCHITECTURE_FIELDS)
        raise FinetuneError(
            f"config_overrides cannot change {changed}: a fine-tuned model keeps the "
            f"architecture of its base model ({current})."
        )
    unknown = sorted(set(settings) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise FinetuneError(f"Unknown training setting(s) {unknown} in config_overrides.")
    multiple = 2 ** base_config.depth
    crop = int(settings["crop_size"])
    if "crop_size" not in overrides and samples:
        # Crops larger than the images are mostly padding: wasted time on small images.
        largest = max(min(np.shape(s.image)[:2]) for s in samples)
        crop = min(crop, largest)
    settings["crop_size"] = max(multiple, crop - crop % multiple)
    return base_config.replace(**settings)


def finetune(
    base_model: str | os.PathLike | ModelVersion,
    corrections: Sequence[Any],
    *,
    original: Sequence[Any] | None = None,
    ratio: float = 0.5,
    config_overrides: Mapping[str, Any] | None = None,
    out_dir: str | os.PathLike,
    should_stop: Callable[[], bool] | None = None,
    eval_samples: Sequence[Any] | None = None,
) -> Generator[Any, None, FinetuneResult]:
    """Run one fine-tuning round and save its model as a new version of the project.

    The model starts from ``base_model``'s weights and trains briefly
    (:data:`FINETUNE_DEFAULTS`: a few short epochs at a lower learning rate) on the
    corrected samples mixed with original training samples (:func:`mix_samples`), so
    it learns the corrections without forgetting the rest. The model at the end of the
    round is kept (no per-epoch validation: the round is short, and the scores after
    training play that part). The corrected and evaluation images are scored with the
    base model before and with the new model after training.

    Parameters
    ----------
    base_model : str, os.PathLike or ModelVersion
        ``"default"``, a checkpoint path, or a version of this project (usually
        ``ModelVersions(out_dir).latest()``). The first round records it as ``v000``.
    corrections : sequence of Sample
        Corrected samples, e.g. ``CorrectionStore(out_dir).load_samples()``.
    original : sequence of Sample, optional
        Original training samples to mix in (recommended; without them the model may
        drift towards the corrected images).
    ratio : float, default 0.5
        Expected share of training crops drawn from the corrections, in ``(0, 1]``
        (each batch draws every crop from a random entry of the mixed list). Ignored
        (1) when ``original`` is empty.
    config_overrides : mapping, optional
        :class:`TrainConfig` fields over :data:`FINETUNE_DEFAULTS` and the base model's
        configuration, e.g. ``{"epochs": 5, "steps_per_epoch": 10, "device": "cpu"}``.
        Architecture fields cannot change.
    out_dir : str or os.PathLike
        The project folder: the new model goes to ``<out_dir>/versions/vNNN``; training
        scratch files go to a hidden folder in it, deleted afterwards.
    should_stop : callable, optional
        Checked between steps; when True the round stops, saves nothing and returns
        with ``cancelled=True`` (the base model and the corrections are untouched).
    eval_samples : sequence of Sample, optional
        Other labelled samples scored before and after, to check that the model did
        not get worse elsewhere.

    Yields
    ------
    Progress, TrainStep or EpochEnd
        ``Progress("score-before", ...)`` per image, the updates of
        :func:`~napari_nuclei_unet.core.training.train`, then
        ``Progress("score-after", ...)``.

    Returns
    -------
    FinetuneResult

    Raises
    ------
    FinetuneError
        No corrections, a bad ratio or override.
    CheckpointError
        When the base model cannot be loaded.
    TrainingError
        When training fails (e.g. out of memory); nothing is saved.
    """
    from .checkpoint import load_checkpoint
    from .device import configure_cpu_threads, resolve_device, restored_cpu_threads

    started = time.perf_counter()
    corrections = list(corrections)
    eval_list = list(eval_samples or [])
    base = base_model.model if isinstance(base_model, ModelVersion) else base_model
    project = Path(out_dir).expanduser().absolute()
    loaded = load_checkpoint(base, device="cpu")
    seed = int(dict(config_overrides or {}).get("seed", loaded.config.seed))
    mixed, actual_ratio, n_original = mix_samples(corrections, original, ratio, seed=seed)
    config = _round_config(loaded.config, config_overrides, mixed)
    device = resolve_device(config.device)
    base_net = loaded.model.to(device)

    # torch's thread count is process-wide: set for the round, put back afterwards.
    with restored_cpu_threads():
        if device.type == "cpu":
            configure_cpu_threads(config.num_threads)
        return (yield from _round(base_model, base, corrections, eval_list, mixed, config,
                                  device, base_net, project, ratio, actual_ratio, n_original,
                                  config_overrides, should_stop, started))


def _round(base_model, base, corrections, eval_list, mixed, config, device, base_net, project,
           ratio, actual_ratio, n_original, config_overrides, should_stop, started):
    """The body of :func:`finetune` once the inputs are checked (same yields and return)."""
    from .checkpoint import load_checkpoint
    from .training import train

    base_name = base_model.name if isinstance(base_model, ModelVersion) else str(base)
    versions = ModelVersions(project)
    versions.record_base(base)
    scored = corrections + eval_list
    before = yield from _score(base_net, scored, device, "score-before", should_stop)
    if stop_requested(should_stop):
        return FinetuneResult(None, ratio=actual_ratio, n_original=n_original, cancelled=True,
                              elapsed_s=time.perf_counter() - started)

    scratch = Path(tempfile.mkdtemp(prefix=ROUND_PREFIX, dir=project))
    try:
        # No validation inside train(): the after-scores below are the validation, and
        # predicting the images once per epoch would double the round's time.
        result = yield from train(config, mixed, out_dir=scratch, init_from=base,
                                  should_stop=should_stop, val_samples=[])
        if result.cancelled:
            return FinetuneResult(None, history=tuple(result.history), ratio=actual_ratio,
                                  n_original=n_original, cancelled=True,
                                  elapsed_s=time.perf_counter() - started)
        tuned = load_checkpoint(result.best_checkpoint, device=device)
        after = yield from _score(tuned.model, scored, device, "score-after", None)
        changes = _changes(before, after)
        corrected, evaluation = changes[:len(corrections)], changes[len(corrections):]
        store = CorrectionStore(project) if (project / PROJECT_FILE).exists() else None
        stored = {c.id: c for c in store.list()} if store is not None else {}
        info = {
            "base_model": base_name if isinstance(base_model, ModelVersion) else (
                "default" if _is_default_model(base) else str(weights_path(base).resolve())),
            "corrections": [
                {"id": s.id, **({"source": stored[s.id].source, "updated": stored[s.id].updated}
                                if s.id in stored else {})}
                for s in corrections
            ],
            "ratio": ratio,
            "ratio_actual": actual_ratio,
            "n_original": n_original,
            "config_overrides": dict(config_overrides or {}),
            "scores": {"corrected": [c.to_dict() for c in corrected],
                       "evaluation": [c.to_dict() for c in evaluation]},
            "mean_iou_corrected": {"before": _mean([c.iou_before for c in corrected]),
                                   "after": _mean([c.iou_after for c in corrected])},
            "mean_iou_evaluation": {"before": _mean([c.iou_before for c in evaluation]),
                                    "after": _mean([c.iou_after for c in evaluation])},
        }
        history = tuple(result.history)
        version = versions.add(
            tuned.model, config, info,
            # (without the per-epoch checkpoint paths: the scratch folder is deleted)
            {"history": [{k: v for k, v in h.to_dict().items() if k != "checkpoint"}
                         for h in history],
             "training_data": tuned.metadata.get("training_data", {})},
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return FinetuneResult(version, corrected, evaluation, history, actual_ratio, n_original,
                          False, time.perf_counter() - started)
