"""Where the samples of a DSB2018 folder or zip are: names only, nothing decoded.

A layout is scanned into one :class:`_SampleFiles` per sample (its image and mask
files, relative to the folder or inside the zip); :func:`zip_samples` lists a zip's
samples for the command line and the reader. Used by :mod:`.dataset`.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .imageio import (
    IMAGE_FILE_SUFFIXES,
    DatasetError,
    check_regular_file,
    is_junk_name,
)

MASK_EXTENSIONS = (".png",)
_HOW_TO_FIX = (
    "Expected the DSB2018 layout <id>/images/<id>.png + <id>/masks/*.png "
    "(a stage1_train folder, stage1_train.zip, or one sample folder)."
)


def _report(title: str, items: Sequence[str], *, limit: int = 20) -> str:
    shown = "\n  ".join(items[:limit])
    more = f"\n  ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"{title}:\n  {shown}{more}"


@dataclass(frozen=True)
class _SampleFiles:
    """Where one sample's files are inside its container (folder root or zip)."""

    id: str
    image: str  # posix path relative to the container root
    masks: tuple[str, ...]  # sorted by file name
    has_masks_dir: bool = True


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
        (images if name.lower().endswith(IMAGE_FILE_SUFFIXES) else stray).append(name)
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


def _unread_masks(masks: list[str], stray: list[str]) -> str:
    """Why a sample whose masks/ holds files but no mask PNG is left out ("" = it is not).

    Such a sample would otherwise count as an image without nuclei: a label TIFF put in
    masks/ (what ``predict`` writes) would silently teach a round that the image shows
    none.
    """
    if masks or not stray:
        return ""
    shown = ", ".join(sorted(stray)[:3]) + (" ..." if len(stray) > 3 else "")
    return (f"masks/ holds no mask PNG ({shown} not read): masks/ takes one black-and-white "
            "PNG per nucleus")


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
    unread = _unread_masks(masks, stray)
    if unread:
        scan.skipped.append((sample_id, f"{unread} ({os.path.join(base, 'masks')})"))
        return
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
        unread = _unread_masks(masks, stray)
        if unread:
            scan.skipped.append((sample_id, f"{unread} ({where}masks/)"))
            continue
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
        path, "it is a file, not a folder or zip of samples"
    )


def is_sample_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is one DSB sample folder (``images/<its name>.png``, or ``masks/``).

    ``images/<its name>.png`` (or .tif, .jpg...) in it, or both an ``images/`` and a
    ``masks/`` folder. The one rule of napari's reader and the command line: "images"
    alone is a common name for a folder of one's own images (review h_rev15, M8;
    h_rev16, M7).
    """
    p = Path(path)
    images = p / "images"
    if any((images / f"{p.name}{suffix}").is_file() for suffix in IMAGE_FILE_SUFFIXES):
        return True
    return images.is_dir() and (p / "masks").is_dir()


# how many entries of a folder to look at when deciding whether it is a dataset
_MAX_ENTRIES_SCANNED = 200


def is_dataset_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a ``stage1_train``-like folder: one of its folders is a sample.

    Only the first few hundred entries (sorted by name) are looked at, so this
    stays fast on large folders that are not datasets.
    """
    try:
        with os.scandir(path) as it:
            names = sorted(e.name for e in it if not e.name.startswith("."))
    except OSError:
        return False
    for name in names[:_MAX_ENTRIES_SCANNED]:
        child = Path(path) / name
        if child.is_dir() and is_sample_folder(child):
            return True
    return False
