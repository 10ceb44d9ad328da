"""The corrections store: corrected image/mask pairs of a project, saved crash-safely."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ..locking import LockTimeout, exclusive_lock
from ._common import (
    BACKUP_DIR,
    CORRECTIONS_DIR,
    LOCK_FILE,
    LOCK_TIMEOUT_S,
    PROJECT_FILE,
    PROJECT_FORMAT,
    PROJECT_FORMAT_VERSION,
    REMOVED_DIR,
    SOURCES,
    STAGING_PREFIX,
    FinetuneError,
    _check_id,
    _now,
    _write_json_atomic,
    _write_png,
)

#: Each correction folder's own index entry (the index is rebuilt from these after a crash).
ENTRY_FILE = "correction.json"


def _read_entry(folder: Path) -> dict[str, Any] | None:
    """The entry a correction folder carries, or None (older projects, unreadable file)."""
    try:
        entry = json.loads((folder / ENTRY_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return entry if isinstance(entry, dict) else None


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
    if labels.size and labels.dtype.kind == "u" and labels.max() > np.iinfo(np.int64).max:
        # numbers past int64 (hashed ids): refused as "negative values" once cast for the
        # relabelling (review h_rev22, L3); renumbered here, 0 staying background
        values, inverse = np.unique(labels, return_inverse=True)
        labels = (inverse.reshape(labels.shape) + (values[0] != 0)).astype(np.int64)
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
    aside : bool
        Kept aside by the user (:meth:`CorrectionStore.set_aside`): rounds score it
        before and after (their self-check) but do not train on it.
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
    aside: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The index entry (without the id and path)."""
        return {"source": self.source, "note": self.note, "n_nuclei": self.n_nuclei,
                "height": self.height, "width": self.width, "created": self.created,
                "updated": self.updated, **({"aside": True} if self.aside else {})}


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
        self._index_stamp: tuple[int, int] | None = None
        self._read_index()
        if self._leftovers() or self._stale():
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

    def _stamp(self) -> tuple[int, int] | None:
        """The index file's modification time and size (None when there is none)."""
        try:
            stat = self.index_path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _read_index_if_changed(self) -> None:
        """Read the index again when another store wrote it since this one read it.

        Another dock or a nuclei-unet command may have added or replaced corrections:
        listing must show them as they are now.
        """
        if self._stamp() != self._index_stamp:
            self._read_index()

    def _read_index(self) -> None:
        self._index_stamp = self._stamp()
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
        self._index_stamp = self._stamp()

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

    def _folder_entries(self) -> dict[str, dict[str, Any] | None]:
        """Each correction folder's own entry (``correction.json``; None when absent)."""
        found: dict[str, dict[str, Any] | None] = {}
        if self.corrections_dir.is_dir():
            for folder in self.corrections_dir.iterdir():
                if folder.is_dir() and not folder.name.startswith("."):
                    found[folder.name] = _read_entry(folder)
        return found

    def _stale(self) -> bool:
        """Whether the index disagrees with the folders.

        That happens when a save or a removal crashed between moving a folder and
        writing the index.
        """
        folders = self._folder_entries()
        if any(k not in folders for k in self._entries):
            return True
        return any(e is not None and self._entries.get(k) != e for k, e in folders.items())

    def _repair(self) -> None:
        """Repair what a crashed :meth:`add` or :meth:`remove` left behind.

        Only call holding the lock. Staging folders are dropped, backups restored when
        their new version never arrived, and the index is brought back in line with the
        folders: each correction folder carries its own entry (``correction.json``,
        written before the folder is moved into place), which wins over a stale index.
        """
        if not self.path.is_dir():
            return
        self._restore_backups()
        self._read_index()
        entries = dict(self._entries)
        folders = self._folder_entries()
        for sample_id in [k for k in entries if k not in folders]:
            del entries[sample_id]  # removed (or never completed): the index lagged behind
        for sample_id, entry in folders.items():
            if entry is not None:
                entries[sample_id] = entry
        if entries != self._entries:
            self._write_index(entries)

    def _restore_backups(self) -> None:
        """Drop staging folders; restore backups whose new version never arrived."""
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
            path=self.corrections_dir / sample_id, aside=entry.get("aside") is True,
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
        self._read_index_if_changed()
        found = []
        if self.corrections_dir.is_dir():
            for folder in sorted(self.corrections_dir.iterdir()):
                if not folder.is_dir() or folder.name.startswith("."):
                    continue
                entry = self._entries.get(folder.name) or _read_entry(folder)
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

        from ..imageio import to_rgb8

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
            self._repair()  # also re-reads the index another store may have changed
            earlier = self._entries.get(sample_id, {})
            entry = {
                "source": source,
                "note": str(note),
                "n_nuclei": n_nuclei,
                "height": int(rgb.shape[0]),
                "width": int(rgb.shape[1]),
                "created": earlier.get("created", _now()),
                "updated": _now(),
                # corrected again, an image kept aside stays aside
                **({"aside": True} if earlier.get("aside") is True else {}),
            }
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.path))
            try:
                self._write_sample(staging / sample_id, sample_id, rgb, labels, n_nuclei)
                _write_json_atomic(staging / sample_id / ENTRY_FILE, entry)
                self._move_into_place(staging / sample_id, sample_id, entry)
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

    @contextmanager
    def _locked_correction(self, sample_id: str) -> Iterator[Path]:
        """Hold the project's lock over an existing correction's folder (KeyError: none)."""
        folder = self.corrections_dir / _check_id(sample_id)
        missing = f"No correction {sample_id!r} in {self.path}."
        if not folder.is_dir():
            raise KeyError(missing)
        with self._locked():
            if not folder.is_dir():  # removed by another store meanwhile
                raise KeyError(missing)
            yield folder

    def set_aside(self, sample_id: str, aside: bool = True) -> Correction:
        """Keep a correction aside (rounds score it but do not train on it), or not.

        Its folder's own entry is written first, then the index (a crash in between is
        repaired from the folder, as after :meth:`add`). Raises as :meth:`remove` does.
        """
        with self._locked_correction(sample_id) as folder:
            self._repair()
            entry = dict(self._entries.get(sample_id) or _read_entry(folder) or
                         self.get(sample_id).to_dict())
            entry.pop("aside", None)
            if aside:
                entry["aside"] = True
            _write_json_atomic(folder / ENTRY_FILE, entry)
            self._write_index({**self._entries, sample_id: entry})
        return self.get(sample_id)

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
        with self._locked_correction(sample_id) as final:
            self._read_index()
            target = self._removed_place(sample_id)
            os.rename(final, target)
            entries = dict(self._entries)
            entries.pop(sample_id, None)
            self._write_index(entries)
        return target

    def keep_copy(self, sample_id: str) -> Path:
        """Copy a correction's files into ``removed/``, as :meth:`remove` keeps them.

        For a correction about to be replaced by other labels (GUI check h_gui33, M1:
        a touched-up new result replaced a careful correction, with no copy left).
        Returns where the copy is; raises as :meth:`remove` does.
        """
        with self._locked_correction(sample_id) as folder:
            target = self._removed_place(sample_id)
            shutil.copytree(folder, target)
        return target

    def _removed_place(self, sample_id: str) -> Path:
        """A new folder name for a correction in ``removed/`` (``<id>-<time>``)."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        (self.path / REMOVED_DIR).mkdir(exist_ok=True)
        return self.path / REMOVED_DIR / f"{sample_id}-{stamp}"

    # -- reading --------------------------------------------------------------------

    def load_labels(self, sample_id: str) -> np.ndarray:
        """The nuclei of one correction as saved, read under the project's lock.

        A save of the same image by another program (or thread) is never read half
        done: it replaces the folder with two renames.

        Raises
        ------
        KeyError
            When there is no such correction.
        DatasetError
            When one of its files is corrupt.
        """
        with self._locked_correction(sample_id) as folder:
            return self._load_one(folder).labels

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
        wanted = self.ids() if ids is None else list(ids)
        samples = []
        for sample_id in wanted:
            # each under the project's lock: a save of the same correction meanwhile (it
            # swaps the folder with two renames) failed about 1 read in 70, or mixed one
            # version's image with the next one's masks (review h_rev24, L2)
            with ExitStack() as held:
                folder = self.corrections_dir / _check_id(sample_id)
                try:
                    held.enter_context(self._locked_correction(sample_id))
                except OSError:  # a project one may read, not write (h_rev25, B2): no lock
                    if not folder.is_dir():
                        raise KeyError(f"No correction {sample_id!r} in {self.path}.") from None
                samples.append(self._load_one(folder))
        return samples

    @staticmethod
    def _load_one(folder: Path) -> Any:
        """One correction's folder as a Sample (the caller holds the project's lock)."""
        from ..dataset import load_sample

        sample = load_sample(folder, require_masks=False)
        # Decoded PNGs can be read-only views of their bytes; copy only those.
        sample.image = np.require(sample.image, requirements="W")
        sample.labels = np.require(sample.labels, requirements="W")
        return sample
