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
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import stat
import warnings
import zipfile
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from . import cache
from .imageio import (
    DatasetError,
    DatasetWarning,
    check_regular_file,
    image_size,
    is_junk_name,
    read_image,
    read_mask_box,
)
from .modality import MODALITIES, guess_modality
from .progress import Progress, StopCheck, drive, stop_requested
from .zipread import MAX_MEMBER_BYTES, read_zip_member

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

IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
MASK_EXTENSIONS = (".png",)
#: Below this many mask files a load runs in the calling process (no pool start-up).
PARALLEL_MIN_MASKS = 2_000
_HOW_TO_FIX = (
    "Expected the DSB2018 layout <id>/images/<id>.png + <id>/masks/*.png "
    "(a stage1_train folder, stage1_train.zip, or one sample folder)."
)


@dataclass(frozen=True)
class SampleInfo:
    """What the index knows about a sample without decoding its masks."""

    id: str
    height: int
    width: int
    modality: str  # one of MODALITIES
    n_nuclei: int  # number of mask files


@dataclass
class Sample:
    """A decoded sample: the image and its instance labels."""

    id: str
    image: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (H, W) int32, 0 = background, 1..n = mask files in sorted name order
    modality: str
    overlap_pixels: int = 0  # pixels claimed by several masks (the later mask file wins)
    has_labels: bool = True  # False for an image loaded without a masks/ folder


@dataclass(frozen=True)
class _SampleFiles:
    """Where one sample's files are inside its container (folder root or zip)."""

    id: str
    image: str  # posix path relative to the container root
    masks: tuple[str, ...]  # sorted by file name
    has_masks_dir: bool = True


# ---------------------------------------------------------------------------
# containers: a folder or a zip, read by relative posix paths
# ---------------------------------------------------------------------------

_OPEN_ZIPS: dict[tuple[str, int, int], zipfile.ZipFile] = {}


def _zip_handle(path: str) -> zipfile.ZipFile:
    """Return an open ZipFile for ``path``, reused per process while the file is unchanged."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    handle = _OPEN_ZIPS.get(key)
    if handle is None:
        for old in [k for k in _OPEN_ZIPS if k[0] == path]:
            _OPEN_ZIPS.pop(old).close()
        handle = _OPEN_ZIPS[key] = zipfile.ZipFile(path)
    return handle


def _read_member(kind: str, root: str, rel: str) -> bytes:
    if kind == "zip":
        try:
            handle = _zip_handle(root)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DatasetError(
                f"Cannot read {rel} from {root}: {exc}. The zip may be truncated: "
                "download it again."
            ) from exc
        return read_zip_member(handle, rel, where=root)
    path = os.path.join(root, rel)
    check_regular_file(path, max_bytes=MAX_MEMBER_BYTES, what="image or mask file")
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise DatasetError(
            f"Cannot read {path}: {exc.strerror or exc}. Check that it exists and is readable."
        ) from exc


def _display(kind: str, root: str, rel: str) -> str:
    return f"{root}:{rel}" if kind == "zip" else os.path.join(root, rel)


# ---------------------------------------------------------------------------
# decoding one sample (module level so that a spawn process pool can run it)
# ---------------------------------------------------------------------------


def _decode_files(kind: str, root: str, files: _SampleFiles, *, modality: bool = True) -> dict:
    """Decode one sample; labels are uint16 (int32 beyond 65,535 masks)."""
    image = read_image(
        _read_member(kind, root, files.image), name=_display(kind, root, files.image)
    )
    h, w = image.shape[:2]
    dtype = np.uint16 if len(files.masks) <= np.iinfo(np.uint16).max else np.int32
    labels = np.zeros((h, w), dtype=dtype)
    overlapped = None
    for k, rel in enumerate(files.masks, start=1):
        found = read_mask_box(
            _read_member(kind, root, rel), name=_display(kind, root, rel), shape=(h, w)
        )
        if found is None:
            continue
        r0, c0, crop = found
        window = labels[r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]]
        if window.any():  # cheap test first: masks rarely touch
            clash = crop & (window != 0)
            if clash.any():
                if overlapped is None:
                    overlapped = np.zeros((h, w), dtype=bool)
                overlapped[r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]] |= clash
        window[crop] = k
    return {
        "id": files.id,
        "image": image,
        "labels": labels,
        "modality": guess_modality(image) if modality else "",
        "overlap_pixels": 0 if overlapped is None else int(overlapped.sum()),
        "has_labels": files.has_masks_dir,
    }


def _decode_task(kind: str, root: str, files: _SampleFiles) -> tuple[str, object]:
    """Pool entry point: never raises for a bad sample, returns ("ok"|"error", payload)."""
    try:
        return "ok", _decode_files(kind, root, files, modality=False)  # the index has it
    except DatasetError as exc:
        return "error", str(exc)
    except Exception as exc:  # noqa: BLE001 - one odd file must not end a whole-dataset load
        return "error", f"{files.id}: unexpected {type(exc).__name__}: {exc}"


def _index_task(kind: str, root: str, files: _SampleFiles) -> tuple[str, object]:
    """Index one sample: size from the image header, modality from the decoded image."""
    name = _display(kind, root, files.image)
    try:
        data = _read_member(kind, root, files.image)
        height, width = image_size(data, name=name)
        image = read_image(data, name=name)
        modality = guess_modality(image)
    except DatasetError as exc:
        return "error", str(exc)
    except Exception as exc:  # noqa: BLE001 - one odd file must not refuse a whole dataset
        return "error", f"{name}: cannot be read ({type(exc).__name__}: {exc})"
    return "ok", (height, width, modality)


def _to_sample(d: dict) -> Sample:
    return Sample(
        id=d["id"],
        image=d["image"],
        labels=d["labels"].astype(np.int32, copy=False),
        modality=d["modality"],
        overlap_pixels=d["overlap_pixels"],
        has_labels=d["has_labels"],
    )


def _worker_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _run_tasks(
    fn: Callable,
    kind: str,
    root: str,
    items: Sequence[_SampleFiles],
    *,
    parallel: bool,
    workers: int | None,
    should_stop: StopCheck | None,
) -> Generator[tuple[_SampleFiles, str, object], None, bool]:
    """Run ``fn(kind, root, item)`` over items, yield (item, status, payload) as they finish.

    Returns True when stopped early. The pool uses the 'spawn' start method so that it
    is safe to start from a thread (napari's thread_worker).
    """
    n_workers = workers or _worker_count()
    if not parallel or n_workers < 2 or len(items) < 2:
        return (yield from _run_serial(fn, kind, root, items, should_stop))
    ctx = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx)
    finished: set[str] = set()
    try:
        # biggest first, so the pool does not wait on one large sample at the end
        order = sorted(items, key=lambda f: -len(f.masks))
        pending = {pool.submit(fn, kind, root, item): item for item in order}
        while pending:
            if stop_requested(should_stop):
                return True
            done, _ = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                item = pending.pop(fut)
                status, payload = fut.result()
                finished.add(item.id)
                yield item, status, payload
        return False
    except (BrokenProcessPool, RuntimeError, OSError) as exc:
        # e.g. a script without an ``if __name__ == "__main__":`` guard cannot spawn
        # workers; decoding in this process is slower but gives the same result
        warnings.warn(
            f"parallel decoding failed ({type(exc).__name__}: {exc}); continuing in one process",
            DatasetWarning,
            stacklevel=2,
        )
        rest = [item for item in items if item.id not in finished]
        return (yield from _run_serial(fn, kind, root, rest, should_stop))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_serial(
    fn: Callable,
    kind: str,
    root: str,
    items: Sequence[_SampleFiles],
    should_stop: StopCheck | None,
) -> Generator[tuple[_SampleFiles, str, object], None, bool]:
    for item in items:
        if stop_requested(should_stop):
            return True
        status, payload = fn(kind, root, item)
        yield item, status, payload
    return False


# ---------------------------------------------------------------------------
# scanning a layout
# ---------------------------------------------------------------------------


@dataclass
class _Scan:
    kind: str  # "dir" or "zip"
    root: str
    files: dict[str, _SampleFiles]
    skipped: list[tuple[str, str]]
    stray: list[str]


def _pick_image(sample_id: str, names: Iterable[str]) -> tuple[str | None, str, list[str]]:
    """Choose the image among the names in images/ -> (name or None, reason, stray)."""
    images, stray = [], []
    for name in names:
        if is_junk_name(name):
            continue
        (images if name.lower().endswith(IMAGE_EXTENSIONS) else stray).append(name)
    if not images:
        return None, "no image file in images/", stray
    if len(images) == 1:
        return images[0], "", stray
    for name in sorted(images):
        if PurePosixPath(name).stem == sample_id:
            return name, "", stray
    return (
        None,
        f"several images in images/ ({', '.join(sorted(images)[:3])}) "
        f"and none named {sample_id}.png",
        stray,
    )


def _split_masks(names: Iterable[str]) -> tuple[list[str], list[str]]:
    masks, stray = [], []
    for name in names:
        if is_junk_name(name):
            continue
        (masks if name.lower().endswith(MASK_EXTENSIONS) else stray).append(name)
    return sorted(masks), stray


def _listdir(path: str, stats: list[tuple[str, int, int]] | None = None) -> list[str] | None:
    """File names in ``path`` (None if it is not a folder); optionally record their stats."""
    try:
        entries = [e for e in os.scandir(path) if e.is_file()]
    except OSError:  # missing, not a folder, a symbolic-link loop, no permission
        return None
    if stats is not None:
        for e in entries:
            st = e.stat()
            stats.append((e.path, st.st_size, st.st_mtime_ns))
    return [e.name for e in entries]


def _scan_sample_dir(
    root: str,
    sample_id: str,
    scan: _Scan,
    *,
    require_masks: bool,
    stats: list[tuple[str, int, int]] | None = None,
) -> None:
    """Add one <root>/<sample_id>/ folder to the scan (or to its skipped list).

    When ``stats`` is given, (path, size, mtime_ns) of every file listed is appended.
    """
    base = os.path.join(root, sample_id)
    image_names = _listdir(os.path.join(base, "images"), stats)
    if image_names is None:
        scan.skipped.append((sample_id, f"no images/ folder in {base}"))
        return
    image, reason, stray = _pick_image(sample_id, image_names)
    scan.stray += [os.path.join(base, "images", s) for s in stray]
    if image is None:
        scan.skipped.append((sample_id, f"{reason} ({os.path.join(base, 'images')})"))
        return
    mask_names = _listdir(os.path.join(base, "masks"), stats)
    if mask_names is None and require_masks:
        scan.skipped.append((sample_id, f"no masks/ folder in {base}"))
        return
    masks, stray = _split_masks(mask_names or [])
    scan.stray += [os.path.join(base, "masks", s) for s in stray]
    scan.files[sample_id] = _SampleFiles(
        id=sample_id,
        image=f"{sample_id}/images/{image}",
        masks=tuple(f"{sample_id}/masks/{m}" for m in masks),
        has_masks_dir=mask_names is not None,
    )


def _not_a_dataset(path: Path, detail: str) -> DatasetError:
    hint = ""
    if path.is_dir():
        nested = [p.name for p in path.iterdir() if p.is_dir() and p.name.startswith("stage1")]
        if nested:
            hint = f" Did you mean {path / nested[0]}?"
    return DatasetError(f"{path} is not a DSB2018 dataset: {detail}. {_HOW_TO_FIX}{hint}")


def _scan_dir(path: Path) -> _Scan:
    if (path / "images").is_dir() or (path / "masks").is_dir():  # one sample folder
        scan = _Scan("dir", str(path.parent), {}, [], [])
        _scan_sample_dir(str(path.parent), path.name, scan, require_masks=True)
        if scan.skipped:
            raise DatasetError(
                f"Sample folder {path} cannot be used: {scan.skipped[0][1]}. {_HOW_TO_FIX} "
                "To read an image without masks use load_sample(path, require_masks=False)."
            )
        return scan
    scan = _Scan("dir", str(path), {}, [], [])
    candidates = 0
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if not entry.is_dir() or is_junk_name(entry.name):
            continue
        sub = _listdir_dirs(entry.path)
        if "images" not in sub and "masks" not in sub:
            scan.skipped.append(
                (entry.name, f"not a sample folder (no images/ or masks/): {entry.path}")
            )
            continue
        candidates += 1
        _scan_sample_dir(str(path), entry.name, scan, require_masks=True)
    if candidates == 0:
        raise _not_a_dataset(path, "it has no sample folders <id>/images/")
    return scan


def _listdir_dirs(path: str) -> set[str]:
    try:
        return {e.name for e in os.scandir(path) if e.is_dir()}
    except OSError:
        return set()


def _scan_zip(path: Path, *, require_masks: bool = True) -> _Scan:
    """Group a zip's members into samples from its list of names (nothing is inflated).

    The one reading of a zip's layout: :meth:`DSBDataset.open`, :func:`zip_samples`
    (the reader's and the command line's zips) all come here.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DatasetError(
            f"{path} is not a readable zip file ({exc}). It may be truncated: download it again."
        ) from exc
    if not names:
        raise DatasetError(f"{path} is an empty zip file. Download stage1_train.zip again.")
    scan = _Scan("zip", str(path), {}, [], [])
    # group members by sample folder: <prefix>/<id>/(images|masks)/<file>
    groups: dict[str, dict[str, list[str]]] = {}
    present: set[tuple[str, str]] = set()  # (sample folder, "images"|"masks") that exist
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    duplicated: dict[str, str] = {}  # sample folder -> one duplicated member
    for name in names:
        parts = name.rstrip("/").split("/")
        if any(is_junk_name(p) for p in parts[:-1]):  # e.g. __MACOSX/..., .hidden/...
            continue
        if counts[name] > 1 and not name.endswith("/") and len(parts) >= 3:
            duplicated.setdefault("/".join(parts[:-2]), name)
        if name.endswith("/"):  # a directory entry, e.g. an empty masks/
            if len(parts) >= 2 and parts[-1] in ("images", "masks"):
                sample_dir = "/".join(parts[:-1])
                groups.setdefault(sample_dir, {"images": [], "masks": []})
                present.add((sample_dir, parts[-1]))
            continue
        if len(parts) < 3 or parts[-2] not in ("images", "masks"):
            continue
        sample_dir = "/".join(parts[:-2])
        group = groups.setdefault(sample_dir, {"images": [], "masks": []})
        present.add((sample_dir, parts[-2]))
        if not is_junk_name(parts[-1]):
            group[parts[-2]].append(parts[-1])
    if not groups:
        raise DatasetError(
            f"{path} holds no DSB2018 samples (no <id>/images/<file> members). {_HOW_TO_FIX}"
        )
    dirs_with = {kind: {d for d, k in present if k == kind} for kind in ("images", "masks")}
    for sample_dir in sorted(groups):
        sample_id = sample_dir.rsplit("/", 1)[-1]
        where = f"{path}:{sample_dir}/"
        if sample_id in scan.files:
            scan.skipped.append((sample_id, f"duplicate sample id at {where}"))
            continue
        if sample_dir in duplicated:
            member = duplicated[sample_dir]
            scan.skipped.append((sample_id, (
                f"the zip holds {counts[member]} members named {member} (duplicate names): "
                "which file is meant cannot be told, so the sample is left out rather than "
                "mixing two images' masks. Re-create the zip from the folder."
            )))
            continue
        if sample_dir not in dirs_with["images"]:
            scan.skipped.append((sample_id, f"no images/ folder in {where}"))
            continue
        image, reason, stray = _pick_image(sample_id, groups[sample_dir]["images"])
        scan.stray += [f"{where}images/{s}" for s in stray]
        if image is None:
            scan.skipped.append((sample_id, f"{reason} ({where}images/)"))
            continue
        has_masks_dir = sample_dir in dirs_with["masks"]
        if not has_masks_dir and require_masks:
            scan.skipped.append((sample_id, f"no masks/ folder in {where}"))
            continue
        masks, stray = _split_masks(groups[sample_dir]["masks"])
        scan.stray += [f"{where}masks/{s}" for s in stray]
        scan.files[sample_id] = _SampleFiles(
            id=sample_id,
            image=f"{sample_dir}/images/{image}",
            masks=tuple(f"{sample_dir}/masks/{m}" for m in masks),
            has_masks_dir=has_masks_dir,
        )
    return scan


def zip_samples(
    path: str | os.PathLike, *, require_masks: bool = True
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The samples of a DSB2018 zip, from its list of names only (nothing is inflated).

    Members are grouped into samples exactly as :meth:`DSBDataset.open` groups them
    (any prefix folder, archiver litter ignored, the image chosen among several as
    ``info`` and training choose it, duplicate names refused).

    Parameters
    ----------
    path : str or os.PathLike
        The zip.
    require_masks : bool
        When False, a sample without a ``masks/`` folder is kept (images to segment,
        as in ``stage1_test``).

    Returns
    -------
    images : dict
        ``{sample id: image member name}``, sorted by id.
    skipped : list of (str, str)
        ``(sample id, reason)`` for every sample left out.

    Raises
    ------
    DatasetError
        When ``path`` is not a regular file (e.g. a FIFO), not a readable zip, empty,
        or holds no ``<id>/images/<file>`` member.
    """
    path = Path(path)
    check_not_dangling(path)
    check_regular_file(path, what="dataset .zip")  # a FIFO would block the open forever
    scan = _scan_zip(path, require_masks=require_masks)
    return {k: scan.files[k].image for k in sorted(scan.files)}, scan.skipped


def check_not_dangling(path: str | os.PathLike) -> None:
    """Refuse a symbolic link that leads nowhere (broken, or a loop of links).

    The one check of its kind: opening a dataset and the command line's inputs all
    call it, so such a link gets the same words everywhere.

    Parameters
    ----------
    path : str or os.PathLike
        What the user gave.

    Raises
    ------
    DatasetError
        When ``path`` is a symbolic link whose target does not exist.
    """
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise DatasetError(
            f"{path} is a symbolic link to nothing (a broken link or a loop of links): "
            "give the real file or folder it should point to."
        )


def _scan(path: Path) -> _Scan:
    check_not_dangling(path)
    if not path.exists():
        raise DatasetError(
            f"{path} does not exist. Give the path of the extracted stage1_train folder, "
            "of stage1_train.zip, or of one sample folder."
        )
    if path.is_dir():
        return _scan_dir(path)
    st = check_regular_file(path, what="dataset .zip or folder")
    if not stat.S_ISREG(st.st_mode):  # pragma: no cover - check_regular_file raised
        raise _not_a_dataset(path, "it is not a regular file")
    if zipfile.is_zipfile(path):
        return _scan_zip(path)
    if path.suffix.lower() == ".zip":
        if path.stat().st_size == 0:
            raise DatasetError(f"{path} is an empty file, not a zip. Download it again.")
        raise DatasetError(
            f"{path} is not a readable zip file. It may be truncated: download it again."
        )
    raise _not_a_dataset(
        path, "it is a file, not a folder or zip (to read a single image, use read_image)"
    )


def _image_stat(kind: str, root: str, rel: str) -> tuple[int, int]:
    """(size, mtime_ns) identifying the current version of an image file."""
    st = os.stat(root if kind == "zip" else os.path.join(root, rel))
    return st.st_size, st.st_mtime_ns


def _report(title: str, items: Sequence[str], *, limit: int = 20) -> str:
    shown = "\n  ".join(items[:limit])
    more = f"\n  ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"{title}:\n  {shown}{more}"


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
            When a file of the sample is corrupt or a mask size differs from the image.
        KeyError
            When the id is unknown.
        """
        self.info(sample_id)
        sample = _to_sample(_decode_files(self._kind, self._root, self._files[sample_id]))
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

    def iter_load(
        self,
        ids: Iterable[str] | None = None,
        *,
        use_cache: bool = True,
        should_stop: StopCheck | None = None,
        workers: int | None = None,
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

        Returns
        -------
        list of Sample
            In the order of ``ids``. A sample that fails to decode is left out, added to
            :attr:`skipped` and reported in one :class:`DatasetWarning`.

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
        self._warn_load(failed, samples)
        if use_cache and not stopped and not failed and cache_file is not None:
            self._write_cache(cache_file, fp, ids, decoded)
        return samples

    def _warn_load(self, failed: list[tuple[str, str]], samples: list[Sample]) -> None:
        self.skipped.extend(failed)
        parts = []
        if failed:
            parts.append(
                _report(
                    f"{self.path}: skipped {len(failed)} sample(s) that failed to decode",
                    [f"{s}: {r}" for s, r in failed],
                )
            )
        overlaps = [f"{s.id}: {s.overlap_pixels} px" for s in samples if s.overlap_pixels]
        if overlaps:
            parts.append(
                _report("masks overlap (the later mask file by name was kept) in", overlaps)
            )
        if parts:
            warnings.warn("\n".join(parts), DatasetWarning, stacklevel=4)

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


def load_sample(path: str | os.PathLike, *, require_masks: bool = True) -> Sample:
    """Read one sample folder ``<id>/images/<id>.png`` + ``<id>/masks/*.png``.

    Parameters
    ----------
    path : str or os.PathLike
        The sample folder.
    require_masks : bool
        When False, a folder without ``masks/`` gives the image with all-zero labels
        and ``has_labels=False`` (for prediction). An empty ``masks/`` folder is always
        a valid image with no nuclei.

    Returns
    -------
    Sample
        The decoded sample.

    Raises
    ------
    DatasetError
        When the folder is not a sample folder, a file is corrupt, or a mask's size
        differs from the image.
    """
    path = Path(path).expanduser().absolute()
    if not path.is_dir():
        raise DatasetError(
            f"{path} is not a folder. load_sample expects a sample folder with images/ "
            "and masks/; to read a single image file use read_image."
        )
    scan = _Scan("dir", str(path.parent), {}, [], [])
    _scan_sample_dir(str(path.parent), path.name, scan, require_masks=require_masks)
    if scan.skipped:
        extra = (
            " Pass require_masks=False to read the image alone."
            if "masks/" in scan.skipped[0][1]
            else ""
        )
        raise DatasetError(f"Cannot load sample {path}: {scan.skipped[0][1]}. {_HOW_TO_FIX}{extra}")
    if scan.stray:
        warnings.warn(_report("ignored unexpected files", scan.stray), DatasetWarning, stacklevel=2)
    sample = _to_sample(_decode_files("dir", str(path.parent), scan.files[path.name]))
    if sample.overlap_pixels:
        warnings.warn(
            f"{path.name}: {sample.overlap_pixels} pixels belong to more than one mask; "
            "the later mask file (by name) was kept",
            DatasetWarning,
            stacklevel=2,
        )
    return sample


def load_zip_sample(path: str | os.PathLike, sample_id: str | None = None) -> Sample:
    """Decode one sample of a DSB2018 zip in place (nothing is extracted to disk).

    Only the zip's list of names and the sample's own members are read, each with the
    size checks of :func:`read_zip_member`.

    Parameters
    ----------
    path : str or os.PathLike
        The zip.
    sample_id : str, optional
        Which sample (default: the first usable one by id, without indexing the others).

    Returns
    -------
    Sample
        The decoded sample.

    Raises
    ------
    DatasetError
        When the zip holds no such (usable) sample, or its files cannot be decoded.
    """
    path = Path(path).expanduser().absolute()
    scan = _scan(path)
    if scan.kind != "zip":
        raise DatasetError(f"{path} is not a zip file.")
    if not scan.files:
        reasons = [f"{s}: {r}" for s, r in scan.skipped] or ["(nothing found)"]
        raise DatasetError(_report(f"{path}: no usable DSB2018 sample", reasons))
    if sample_id is None:
        sample_id = min(scan.files)
    if sample_id not in scan.files:
        raise DatasetError(f"{path} holds no usable sample {sample_id!r}.")
    return _to_sample(_decode_files("zip", scan.root, scan.files[sample_id]))
