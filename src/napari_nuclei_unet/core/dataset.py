"""Reading the Kaggle DSB2018 nuclei data: folder, ``stage1_train.zip`` or one sample.

Layout (as downloaded from Kaggle or BBBC038)::

    stage1_train/<id>/images/<id>.png   # the image (8-bit RGBA, alpha 255)
    stage1_train/<id>/masks/<mask>.png  # one binary PNG per nucleus

:meth:`DSBDataset.open` takes the extracted folder, the zip as downloaded (read in
place, with or without a top-level ``stage1_train/`` folder) or a single sample
folder. Opening builds an index (:class:`SampleInfo`) without decoding any mask;
:meth:`DSBDataset.iter_load` decodes samples in a process pool and keeps the result
in the decoded-dataset cache (:mod:`napari_nuclei_unet.core.cache`).

Bad samples never stop a whole-dataset scan or load: they are listed in
:attr:`DSBDataset.skipped` and reported in one :class:`DatasetWarning`.

Finding the samples of a layout is :mod:`.dataset_layout`'s job (names only);
decoding them, in a process pool, is :mod:`.dataset_decode`'s; one sample read on
its own, :mod:`.dataset_sample`'s.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Generator, Iterable, Sequence
from pathlib import Path

from . import cache
from .dataset_decode import (
    Sample,
    SampleInfo,
    _decode_files,
    _decode_task,
    _index_task,
    _run_tasks,
    _to_sample,
)
from .dataset_layout import (
    _HOW_TO_FIX,
    _report,
    _SampleFiles,
    _Scan,
    _scan,
    _scan_sample_dir,
    check_not_dangling,
    zip_samples,
)
from .dataset_sample import load_sample, load_zip_sample
from .imageio import (
    DatasetError,
    DatasetWarning,
    SkippedSamplesWarning,
    read_image,
)
from .modality import MODALITIES
from .progress import Progress, StopCheck, drive
from .zipread import read_zip_member

__all__ = [
    "MODALITIES",
    "DSBDataset",
    "DatasetError",
    "DatasetWarning",
    "Sample",
    "SampleInfo",
    "check_not_dangling",
    "load_sample",
    "load_zip_sample",
    "read_image",
    "read_zip_member",
    "zip_samples",
]

#: Below this many mask files a load runs in the calling process (no pool start-up).
PARALLEL_MIN_MASKS = 2_000
#: Guards the updates of ``DSBDataset.skipped`` (a sample loaded alone and a Load all,
#: in two threads); module-level, so that a dataset stays picklable.
_SKIPPED_LOCK = threading.Lock()


def _image_stat(kind: str, root: str, rel: str) -> tuple[int, int]:
    """(size, mtime_ns) identifying the current version of an image file."""
    st = os.stat(root if kind == "zip" else os.path.join(root, rel))
    return st.st_size, st.st_mtime_ns


# ---------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------


class DSBDataset:
    """An opened DSB2018 dataset: an index of samples and ways to decode them.

    Use :meth:`open` (or :meth:`iter_open` for progress updates) rather than the
    constructor.

    Attributes
    ----------
    path : pathlib.Path
        What was opened (folder, zip or sample folder), absolute.
    infos : list of SampleInfo
        One per usable sample, sorted by id.
    skipped : list of (str, str)
        ``(sample id or path, reason)`` for every sample left out, at scan or load.
    stray_files : list of str
        Unexpected files found in images/ or masks/ folders (ignored).
    """

    def __init__(self, path: Path, scan: _Scan, infos: list[SampleInfo]):
        self.path = path
        self._kind = scan.kind
        self._root = scan.root
        self._files = scan.files
        self.infos = sorted(infos, key=lambda i: i.id)
        self._by_id = {i.id: i for i in self.infos}
        self.skipped: list[tuple[str, str]] = list(scan.skipped)
        self.stray_files: list[str] = list(scan.stray)
        #: The samples the last :meth:`iter_load` found newly failing (id: why).
        self.new_failures: dict[str, str] = {}

    # -- opening ------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike, *, use_cache: bool = True) -> DSBDataset:
        """Open a stage1_train folder, a stage1_train.zip, or one sample folder.

        Parameters
        ----------
        path : str or os.PathLike
            The dataset.
        use_cache : bool
            Reuse image sizes and modalities from the index cache (see
            :meth:`iter_open`).

        Returns
        -------
        DSBDataset
            The indexed dataset. Bad samples are skipped and listed in one
            :class:`DatasetWarning` (see :attr:`skipped`).

        Raises
        ------
        DatasetError
            When the path is not a DSB2018 dataset, or no sample in it is usable.
        """
        return drive(cls.iter_open(path, use_cache=use_cache))

    @classmethod
    def iter_open(
        cls,
        path: str | os.PathLike,
        *,
        use_cache: bool = True,
        should_stop: StopCheck | None = None,
        workers: int | None = None,
    ) -> Generator[Progress, None, DSBDataset | None]:
        """Open a dataset as a generator job yielding ``Progress("index", ...)``.

        Parameters
        ----------
        path : str or os.PathLike
            Folder, zip or sample folder (see :meth:`open`).
        should_stop : callable, optional
            Polled between samples; when it returns True the job returns None.
        use_cache : bool
            Reuse image sizes and modalities from the index cache for image files
            whose size and mtime are unchanged (and update it).
        workers : int, optional
            Processes for decoding images (default: one per available core).

        Returns
        -------
        DSBDataset or None
            The dataset (None when stopped).
        """
        path = Path(path).expanduser().absolute()
        scan = _scan(path)
        files = [scan.files[k] for k in sorted(scan.files)]
        total = len(files)
        yield Progress("index", 0, total, f"found {total} samples")
        known = cache.load_index(path) if use_cache else {}
        stats = {f.id: _image_stat(scan.kind, scan.root, f.image) for f in files}
        infos: list[SampleInfo] = []
        fresh: dict[str, cache.IndexEntry] = {}
        to_decode = []
        for f in files:
            entry = known.get(f.image)
            if entry is not None and tuple(entry[:2]) == stats[f.id]:
                fresh[f.image] = entry
                infos.append(SampleInfo(f.id, int(entry[2]), int(entry[3]), entry[4], len(f.masks)))
            else:
                to_decode.append(f)
        n_skipped_before = len(scan.skipped)
        if infos:
            yield Progress("index", len(infos), total, "read from index cache")
        job = _run_tasks(
            _index_task,
            scan.kind,
            scan.root,
            to_decode,
            parallel=len(to_decode) >= 64,
            workers=workers,
            should_stop=should_stop,
        )
        try:
            while True:
                try:
                    item, status, payload = next(job)
                except StopIteration as stop:
                    if stop.value:
                        return None
                    break
                if status == "ok":
                    h, w, modality = payload
                    infos.append(SampleInfo(item.id, int(h), int(w), modality, len(item.masks)))
                    fresh[item.image] = (*stats[item.id], int(h), int(w), modality)
                else:
                    scan.skipped.append((item.id, str(payload)))
                    del scan.files[item.id]
                done = len(infos) + len(scan.skipped) - n_skipped_before
                yield Progress("index", done, total, item.id)
        finally:
            job.close()
        if use_cache and to_decode and fresh:
            cache.save_index(path, fresh)
        if not infos:
            reasons = [f"{s}: {r}" for s, r in scan.skipped] or ["(nothing found)"]
            raise DatasetError(
                _report(f"{path}: no usable DSB2018 sample ({len(scan.skipped)} skipped)", reasons)
                + f"\n{_HOW_TO_FIX}"
            )
        dataset = cls(path, scan, infos)
        dataset._warn_scan()
        return dataset

    def _warn_scan(self) -> None:
        parts = []
        if self.skipped:
            parts.append(
                _report(
                    f"{self.path}: skipped {len(self.skipped)} bad sample(s)",
                    [f"{s}: {r}" for s, r in self.skipped],
                )
            )
        if self.stray_files:
            parts.append(_report("ignored unexpected files (not images/masks)", self.stray_files))
        if parts:
            warnings.warn("\n".join(parts), DatasetWarning, stacklevel=4)

    # -- index --------------------------------------------------------------------

    def __len__(self) -> int:
        """Return the number of usable samples."""
        return len(self.infos)

    def __repr__(self) -> str:
        return f"DSBDataset({str(self.path)!r}, {len(self)} samples, {len(self.skipped)} skipped)"

    def ids(self) -> list[str]:
        """Return the ids of the usable samples, sorted."""
        return [i.id for i in self.infos]

    def failures(self) -> dict[str, str]:
        """Ids of :meth:`ids` whose files failed to decode when last loaded, with why.

        One reading of :attr:`skipped`, which a loading thread may replace meanwhile.
        """
        return {i: why for i, why in self.skipped if i in self._by_id}

    def keep_failures(self, failures: dict[str, str]) -> None:
        """List ``failures`` (id: reason, e.g. of this dataset opened before) in :attr:`skipped`.

        Only ids of :meth:`ids` not listed already; a load of them tries them again.
        """
        with _SKIPPED_LOCK:
            known = dict(self.skipped)
            self.skipped = [*self.skipped, *((i, why) for i, why in failures.items()
                                             if i in self._by_id and i not in known)]

    def failed_ids(self) -> list[str]:
        """Ids of :meth:`ids` whose files failed to decode when last loaded (:attr:`skipped`)."""
        return list(self.failures())

    def info(self, sample_id: str) -> SampleInfo:
        """Return the index entry of one sample.

        Raises
        ------
        KeyError
            When the id is not in the dataset (the message says how many are).
        """
        try:
            return self._by_id[sample_id]
        except KeyError:
            raise KeyError(
                f"no sample {sample_id!r} in {self.path} ({len(self)} samples; see .ids())"
            ) from None

    # -- decoding -----------------------------------------------------------------

    def load(self, sample_id: str) -> Sample:
        """Decode one sample.

        Parameters
        ----------
        sample_id : str
            An id from :meth:`ids`.

        Returns
        -------
        Sample
            The image and labels; a :class:`DatasetWarning` names the sample when
            masks overlap.

        Raises
        ------
        DatasetError
            When a file of the sample is corrupt or a mask size differs from the image
            (the sample is then listed in :attr:`skipped`, until it decodes).
        KeyError
            When the id is unknown.
        """
        self.info(sample_id)
        try:
            sample = _to_sample(_decode_files(self._kind, self._root, self._files[sample_id]))
        except DatasetError as exc:  # listed in skipped, as a failure of iter_load is
            with _SKIPPED_LOCK:  # a Load all may update it from another thread
                if sample_id not in dict(self.skipped):
                    self.skipped = [*self.skipped, (sample_id, str(exc))]
            raise
        with _SKIPPED_LOCK:
            if sample_id in dict(self.skipped):  # its files were fixed since
                self.skipped = [(i, why) for i, why in self.skipped if i != sample_id]
        if sample.overlap_pixels:
            warnings.warn(
                f"{sample_id}: {sample.overlap_pixels} pixels belong to more than one mask; "
                "the later mask file (by name) was kept",
                DatasetWarning,
                stacklevel=2,
            )
        return sample

    def _current_files(
        self, ids: Sequence[str]
    ) -> tuple[list[_SampleFiles], list[tuple[str, int, int]]]:
        """Files of ``ids`` as they are now, and their stats for the cache fingerprint.

        A folder is listed again (masks may have been added or removed since
        :meth:`open`); a zip is identified by its own size and mtime.
        """
        if self._kind == "zip":
            st = os.stat(self._root)
            stats = [(os.path.basename(self._root), st.st_size, st.st_mtime_ns)]
            return [self._files[i] for i in ids], stats
        scan = _Scan("dir", self._root, {}, [], [])
        stats: list[tuple[str, int, int]] = []
        for sample_id in ids:
            _scan_sample_dir(self._root, sample_id, scan, require_masks=True, stats=stats)
        return [scan.files.get(i, self._files[i]) for i in ids], stats

    def fingerprints(self, ids: Iterable[str]) -> dict[str, str]:
        """A short string per sample that changes when any of its files changes.

        From the files' names, sizes and modification times, listed again (masks added
        or removed count); every sample of a zip shares the zip's own. Ids not in the
        dataset are left out. About 0.4 ms a sample for a folder (670 in 0.25 s here).
        """
        known = [i for i in ids if i in self._by_id]
        if self._kind == "zip":
            stamp = self._current_files(known[:1])[1] if known else []
            return dict.fromkeys(known, cache.fingerprint(stamp))
        # names inside the dataset: the same folder reached another way matches
        return {sample_id: cache.fingerprint(
                    (os.path.relpath(p, self._root), size, mtime)
                    for p, size, mtime in self._current_files([sample_id])[1])
                for sample_id in known}

    def iter_load(
        self,
        ids: Iterable[str] | None = None,
        *,
        use_cache: bool = True,
        should_stop: StopCheck | None = None,
        workers: int | None = None,
        warn_failures: bool = True,
    ) -> Generator[Progress, None, list[Sample]]:
        """Decode many samples as a generator job yielding ``Progress("load", ...)``.

        Parameters
        ----------
        ids : iterable of str, optional
            Samples to load, in the order wanted (default: all, sorted by id).
        use_cache : bool
            Read from / write to the decoded-dataset cache
            (:func:`napari_nuclei_unet.core.cache.cache_dir`). The cache is a miss
            when any file's size or mtime changed or files were added or removed.
        should_stop : callable, optional
            Polled between samples. When it returns True, the job stops and returns
            the samples decoded so far (the cache is not written).
        workers : int, optional
            Decoding processes (default: one per available core). Small loads (fewer
            than :data:`PARALLEL_MIN_MASKS` masks) run in the calling process.
        warn_failures : bool
            Report the samples that newly failed to decode in one
            :class:`SkippedSamplesWarning`. A job in a GUI thread passes False and
            reports :attr:`new_failures` itself: Python's warning hooks are shared by all
            threads, so a warning of one job can reach another's handler (or none).

        Returns
        -------
        list of Sample
            In the order of ``ids``. A sample that fails to decode is left out and added
            to :attr:`skipped`.

        Raises
        ------
        KeyError
            When an id is not in the dataset.
        """
        ids = self.ids() if ids is None else list(ids)
        unknown = [i for i in ids if i not in self._by_id]
        if unknown:
            raise KeyError(
                f"{len(unknown)} id(s) not in {self.path}, e.g. {unknown[0]!r}; see .ids()"
            )
        total = len(ids)
        self.new_failures = {}
        yield Progress("load", 0, total, "checking cache" if use_cache else "")
        files, stats = self._current_files(ids)
        cache_file = fp = None
        if use_cache and total:
            fp = cache.fingerprint(stats)
            cache_file = cache.cache_path(self.path, ids)
            cached = cache.load(cache_file, fp)
            if cached is not None and [c.id for c in cached] == ids:
                samples = [
                    Sample(c.id, c.image, c.labels, c.modality, c.overlap_pixels, c.has_labels)
                    for c in cached
                ]
                yield Progress("load", total, total, "read from cache")
                return samples
        decoded: dict[str, dict] = {}
        failed: list[tuple[str, str]] = []
        n_masks = sum(len(f.masks) for f in files)
        job = _run_tasks(
            _decode_task,
            self._kind,
            self._root,
            files,
            parallel=n_masks >= PARALLEL_MIN_MASKS,
            workers=workers,
            should_stop=should_stop,
        )
        stopped = False
        try:
            while True:
                try:
                    item, status, payload = next(job)
                except StopIteration as stop:
                    stopped = bool(stop.value)
                    break
                if status == "ok":
                    payload["modality"] = self._by_id[item.id].modality
                    decoded[item.id] = payload
                else:
                    failed.append((item.id, str(payload)))
                yield Progress("load", len(decoded) + len(failed), total, item.id)
        finally:
            job.close()  # stops the worker pool at once when this job is closed
        samples = [_to_sample(decoded[i]) for i in ids if i in decoded]
        self._warn_load(failed, samples, warn_failures)
        if use_cache and not stopped and not failed and cache_file is not None:
            self._write_cache(cache_file, fp, ids, decoded)
        return samples

    def _warn_load(self, failed: list[tuple[str, str]], samples: list[Sample],
                   warn_failures: bool) -> None:
        # once each (a second "Load all" of the same files counted them again), and no
        # more once a file was fixed and the sample decoded
        # and said once: a failure already reported for the same reason is not repeated
        loaded = {sample.id for sample in samples}
        with _SKIPPED_LOCK:  # a sample loaded alone may update it from another thread
            said = set(self.skipped)
            kept = [(i, why) for i, why in self.skipped if i not in loaded]
            known = {sample_id for sample_id, _reason in kept}
            # a new list, never one changed in place: readers take it as one snapshot
            self.skipped = kept + [(i, reason) for i, reason in failed if i not in known]
        new = [(i, reason) for i, reason in failed if (i, reason) not in said]
        self.new_failures = dict(new)
        if new and warn_failures:
            warnings.warn(
                _report(
                    f"{self.path}: skipped {len(new)} sample(s) that failed to decode",
                    [f"{s}: {r}" for s, r in new],
                ),
                SkippedSamplesWarning,
                stacklevel=4,
            )
        overlaps = [f"{s.id}: {s.overlap_pixels} px" for s in samples if s.overlap_pixels]
        if overlaps:
            warnings.warn(
                _report("masks overlap (the later mask file by name was kept) in", overlaps),
                DatasetWarning,
                stacklevel=4,
            )

    def _write_cache(self, cache_file: Path, fp: str, ids: list[str], decoded: dict) -> None:
        records = [
            cache.CachedSample(
                d["id"],
                d["image"],
                d["labels"],
                d["modality"],
                d["overlap_pixels"],
                d["has_labels"],
            )
            for d in (decoded[i] for i in ids)
        ]
        try:
            cache.save(cache_file, fp, records)
        except OSError as exc:
            warnings.warn(
                f"could not write the dataset cache {cache_file}: {exc}. Loading still works; "
                f"set {cache.CACHE_ENV_VAR} to a writable folder to cache decoded data.",
                DatasetWarning,
                stacklevel=4,
            )
