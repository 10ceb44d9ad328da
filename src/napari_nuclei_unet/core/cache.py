"""Cache of decoded datasets in the user cache directory.

Decoding the 29,461 mask PNGs of DSB2018 stage1_train takes several seconds even in
parallel; reading them back from one flat file takes well under one. A cache file
holds every sample of one load (one dataset path and one list of sample ids):

- images concatenated into one flat uint8 array, labels into one flat uint16 array
  (int32 when a sample has more than 65,535 nuclei), with per-sample shapes;
- ids and modalities as fixed-width unicode arrays, overlap counts, has-labels flags;
- a fingerprint of the source files (relative path, size, mtime of every file): a
  cache whose fingerprint differs from the current one is a miss and is rewritten.

The file is a plain sequence of ``.npy`` records read with ``allow_pickle=False``
(never pickle), written to a temporary file and moved into place with
:func:`os.replace`, so readers never see half a file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write

#: Environment variable that overrides the cache directory.
CACHE_ENV_VAR = "NUCLEI_UNET_CACHE_DIR"
#: Bump when the file layout changes: older files become misses.
FORMAT_VERSION = 1
_MAGIC = "napari-nuclei-unet decoded dataset"
_FIELDS = (
    "header",
    "fingerprint",
    "ids",
    "modalities",
    "shapes",
    "overlap_pixels",
    "has_labels",
    "images",
    "labels",
)


@dataclass
class CachedSample:
    """One decoded sample as stored in the cache (plain fields, no dataset types)."""

    id: str
    image: np.ndarray
    labels: np.ndarray
    modality: str
    overlap_pixels: int
    has_labels: bool


def cache_dir() -> Path:
    """Return the directory of this package's caches.

    Returns
    -------
    pathlib.Path
        ``$NUCLEI_UNET_CACHE_DIR`` when set, else
        ``platformdirs.user_cache_dir("napari-nuclei-unet")``. Not created here.
    """
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("napari-nuclei-unet"))


def fingerprint(entries: Iterable[tuple[str, int, int]]) -> str:
    """Hash file stats into a short string that changes when any file changes.

    Parameters
    ----------
    entries : iterable of (str, int, int)
        ``(relative path, size in bytes, mtime in ns)`` of every source file.

    Returns
    -------
    str
        Hex digest; differs when a file is added, removed, resized or touched.
    """
    h = hashlib.sha256()
    for rel, size, mtime_ns in sorted(entries):
        h.update(f"{rel}\0{size}\0{mtime_ns}\n".encode())
    return h.hexdigest()


def cache_path(dataset_path: str | os.PathLike, ids: Sequence[str]) -> Path:
    """Return the cache file used for loading ``ids`` from ``dataset_path``.

    Parameters
    ----------
    dataset_path : str or os.PathLike
        The dataset folder or zip (resolved to an absolute path).
    ids : sequence of str
        The sample ids of the load, in order.

    Returns
    -------
    pathlib.Path
        ``<cache_dir>/datasets/<name>-<hash>.npys``.
    """
    resolved = str(Path(dataset_path).resolve())
    key = hashlib.sha256((resolved + "\n" + "\n".join(ids)).encode()).hexdigest()[:20]
    stem = Path(resolved).name or "dataset"
    return cache_dir() / "datasets" / f"{stem}-{key}.npys"


def save(path: Path, fingerprint_: str, samples: Sequence[CachedSample]) -> Path:
    """Write decoded samples to ``path`` atomically.

    Parameters
    ----------
    path : pathlib.Path
        Destination, usually from :func:`cache_path`.
    fingerprint_ : str
        :func:`fingerprint` of the source files at the time they were read.
    samples : sequence of CachedSample
        The decoded samples.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    n = len(samples)
    shapes = np.array([s.labels.shape for s in samples], dtype=np.int64).reshape(n, 2)
    if all(s.labels.dtype in (np.uint8, np.uint16) for s in samples):
        label_dtype = np.uint16  # the decoder's own dtype: no need to scan for the max
    else:
        max_label = max((int(s.labels.max(initial=0)) for s in samples), default=0)
        label_dtype = np.uint16 if max_label <= np.iinfo(np.uint16).max else np.int32
    total = int((shapes[:, 0] * shapes[:, 1]).sum())
    ids_width = max((len(s.id) for s in samples), default=1)
    arrays = {
        "header": np.array([_MAGIC, str(FORMAT_VERSION)]),
        "fingerprint": np.array(fingerprint_),
        "ids": np.array([s.id for s in samples], dtype=f"<U{max(ids_width, 1)}"),
        "modalities": np.array([s.modality for s in samples], dtype="<U16"),
        "shapes": shapes,
        "overlap_pixels": np.array([s.overlap_pixels for s in samples], dtype=np.int64),
        "has_labels": np.array([s.has_labels for s in samples], dtype=bool),
    }
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            for name in _FIELDS[:-2]:
                np.save(fh, arrays[name], allow_pickle=False)
            # the two big arrays are streamed sample by sample (no concatenated copy)
            _write_flat(fh, np.dtype(np.uint8), total * 3, (s.image for s in samples))
            _write_flat(fh, np.dtype(label_dtype), total, (s.labels for s in samples))

    return atomic_write(path, write)


def _map_flat(path: Path, fh) -> np.ndarray:
    """Memory-map the flat ``.npy`` record at the file position (copy-on-write) and skip it.

    Mapping instead of reading means a cache hit costs no copy of the images: pages
    come from the OS file cache when first touched; writes stay private to the process.
    """
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    if fortran or len(shape) != 1 or dtype.hasobject:
        raise ValueError("unexpected cache record")
    offset = fh.tell()
    nbytes = int(shape[0]) * dtype.itemsize
    if offset + nbytes > os.fstat(fh.fileno()).st_size:
        raise EOFError("truncated cache file")
    fh.seek(offset + nbytes)
    if nbytes == 0:
        return np.empty(0, dtype)
    return np.memmap(path, dtype=dtype, mode="c", offset=offset, shape=shape)


def _write_flat(fh, dtype: np.dtype, size: int, parts: Iterable[np.ndarray]) -> None:
    """Write parts as one flat ``.npy`` record of ``size`` elements of ``dtype``."""
    header = {
        "descr": np.lib.format.dtype_to_descr(dtype),
        "fortran_order": False,
        "shape": (size,),
    }
    np.lib.format.write_array_header_1_0(fh, header)
    written = 0
    for part in parts:
        data = np.ascontiguousarray(part, dtype=dtype)
        fh.write(data.data if data.size else b"")
        written += data.size
    if written != size:
        raise ValueError(f"cache record size mismatch: wrote {written}, expected {size}")


def load(path: Path, fingerprint_: str) -> list[CachedSample] | None:
    """Read samples back from ``path`` if it is a valid, up-to-date cache file.

    Parameters
    ----------
    path : pathlib.Path
        Cache file written by :func:`save`.
    fingerprint_ : str
        Current :func:`fingerprint` of the source files.

    Returns
    -------
    list of CachedSample or None
        The samples (images are views into one copy-on-write memory map of the
        file, labels are int32 arrays), or
        None on a miss: no file, another format version, a different fingerprint, or
        an unreadable file.
    """
    try:
        with open(path, "rb") as fh:
            header = np.load(fh, allow_pickle=False)
            if header.tolist() != [_MAGIC, str(FORMAT_VERSION)]:
                return None
            if str(np.load(fh, allow_pickle=False)) != fingerprint_:
                return None
            arrays = {name: np.load(fh, allow_pickle=False) for name in _FIELDS[2:-2]}
            images_all = np.asarray(_map_flat(path, fh))  # plain ndarray view of the map
            labels_all = _map_flat(path, fh).astype(np.int32)
    except (OSError, ValueError, EOFError):
        return None
    shapes = arrays["shapes"]
    sizes = (shapes[:, 0] * shapes[:, 1]).tolist() if len(shapes) else []
    if labels_all.size != sum(sizes) or images_all.size != 3 * sum(sizes):
        return None
    out = []
    pos = 0
    for i, size in enumerate(sizes):
        h, w = int(shapes[i, 0]), int(shapes[i, 1])
        out.append(
            CachedSample(
                id=str(arrays["ids"][i]),
                image=images_all[pos * 3 : (pos + size) * 3].reshape(h, w, 3),
                labels=labels_all[pos : pos + size].reshape(h, w),
                modality=str(arrays["modalities"][i]),
                overlap_pixels=int(arrays["overlap_pixels"][i]),
                has_labels=bool(arrays["has_labels"][i]),
            )
        )
        pos += size
    return out


# ---------------------------------------------------------------------------
# index cache: image size and modality per image file, so re-opening is instant
# ---------------------------------------------------------------------------

IndexEntry = tuple[int, int, int, int, str]  # (file size, mtime ns, height, width, modality)


def index_path(dataset_path: str | os.PathLike) -> Path:
    """Return the JSON file that caches the index of ``dataset_path``."""
    resolved = str(Path(dataset_path).resolve())
    key = hashlib.sha256(resolved.encode()).hexdigest()[:20]
    return cache_dir() / "index" / f"{Path(resolved).name or 'dataset'}-{key}.json"


def load_index(dataset_path: str | os.PathLike) -> dict[str, IndexEntry]:
    """Read the cached index entries of a dataset (empty when missing or unreadable).

    Parameters
    ----------
    dataset_path : str or os.PathLike
        The dataset folder or zip.

    Returns
    -------
    dict of str to tuple
        ``{image file: (size, mtime_ns, height, width, modality)}``; an entry is only
        valid while the image file's size and mtime are unchanged (the caller checks).
    """
    import json

    try:
        data = json.loads(index_path(dataset_path).read_text())
        if data.get("version") != FORMAT_VERSION:
            return {}
        return {k: tuple(v) for k, v in data["entries"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def save_index(dataset_path: str | os.PathLike, entries: dict[str, IndexEntry]) -> None:
    """Write the index entries of a dataset atomically (errors are ignored: it is a cache).

    Parameters
    ----------
    dataset_path : str or os.PathLike
        The dataset folder or zip.
    entries : dict of str to tuple
        ``{image file: (size, mtime_ns, height, width, modality)}``.
    """
    import json

    path = index_path(dataset_path)
    text = json.dumps({"version": FORMAT_VERSION, "entries": entries})
    try:
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    except OSError:
        pass
