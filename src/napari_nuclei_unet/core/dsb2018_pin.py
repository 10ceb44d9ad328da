"""The content of DSB2018 ``stage1_train`` (BBBC038), pinned: compute, ship and check it.

The archive's own hash cannot be pinned (the file the servers hand out was never
available while this was written), so the *content* is pinned instead: for every
sample folder ``<id>/`` a SHA-256 over its sorted ``(path inside the sample, SHA-256 of
the file)`` pairs. The manifest built from the authoritative copy ships with the
package (``dsb2018_manifest.json``, made by ``benchmarks/build_dsb2018_manifest.py``);
:func:`verify_stage1_train` checks any local copy, extracted folder or zip, against it.

Layouts accepted (as Kaggle's and the Broad's zips have them): the samples at the top
level, or under one wrapping folder such as ``stage1_train/``. Hidden files and archiver
litter (``.DS_Store``, ``__MACOSX/``...) are ignored, as the dataset reader ignores them;
so are loose files at the top level (no sample holds them). Files are hashed streaming,
1 MiB at a time, so memory stays bounded whatever the size of a member; every file and
zip member is read with the dataset reader's checks (:mod:`.zipread`, size, ratio,
encryption, method), so a bad one gets the same message as when the dataset is opened.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .imageio import DatasetError, check_regular_file, is_junk_name
from .zipread import MAX_MEMBER_BYTES, iter_zip_member

__all__ = [
    "SHIPPED_MANIFEST",
    "ContentMismatchError",
    "VerifyResult",
    "build_manifest",
    "load_manifest",
    "sample_digests",
    "verify_stage1_train",
]

#: The manifest of the published stage1_train, shipped with the package.
SHIPPED_MANIFEST = Path(__file__).with_name("dsb2018_manifest.json")
#: Version of the manifest layout.
MANIFEST_FORMAT = 1
#: Hex digits of each sample's SHA-256 kept in the manifest (128 bits).
SAMPLE_HASH_CHARS = 32
#: Shortest sample-id prefix used as a key in the manifest (ids are 64 hex digits).
MIN_ID_CHARS = 16
_CHUNK = 1 << 20
_SHOW = 5  # names listed per kind of difference in a message


@dataclass(frozen=True)
class VerifyResult:
    """A local copy that matches the manifest: how much was checked."""

    path: Path
    n_samples: int
    n_files: int
    digest: str  # the manifest's digest ("sha256:<hex>")


@dataclass
class _Differences:
    missing: list[str] = field(default_factory=list)  # manifest keys (id prefixes)
    extra: list[str] = field(default_factory=list)  # sample ids
    altered: list[str] = field(default_factory=list)  # "<id> (why)"


class ContentMismatchError(DatasetError):
    """A local copy of stage1_train whose content differs from the pinned manifest.

    Parameters
    ----------
    path : pathlib.Path
        The folder or zip checked.
    missing, extra, altered : list of str
        Samples missing (manifest id prefixes), unexpected (ids) and altered
        (ids with what differs).
    """

    def __init__(self, path: Path, missing: list[str], extra: list[str], altered: list[str]):
        self.path, self.missing, self.extra, self.altered = path, missing, extra, altered
        parts = []
        for items, one, many in (
            (missing, "sample is missing", "samples are missing"),
            (altered, "sample has files that differ", "samples have files that differ"),
            (extra, "unexpected sample", "unexpected samples"),
        ):
            if items:
                shown = ", ".join(items[:_SHOW])
                more = f" and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
                parts.append(f"{len(items)} {one if len(items) == 1 else many} ({shown}{more})")
        super().__init__(
            f"{path} is not the published DSB2018 stage1_train (BBBC038): "
            + "; ".join(parts) + "."
        )


# ---------------------------------------------------------------------------
# reading every file of a folder or zip, streaming
# ---------------------------------------------------------------------------


def _hash_chunks(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def _file_chunks(path: str) -> Iterator[bytes]:
    """A file's content, 1 MiB at a time, with the dataset reader's checks and messages."""
    check_regular_file(path, max_bytes=MAX_MEMBER_BYTES, what="image or mask file")
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                yield chunk
    except OSError as exc:
        raise DatasetError(
            f"Cannot read {path}: {exc.strerror or exc}. Check that it exists and is readable."
        ) from exc


@contextlib.contextmanager
def _zip_files(path: Path) -> Iterator[list[tuple[str, Callable[[], str]]]]:
    """(member name, hasher) for every file member of the zip, in archive order."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DatasetError(
            f"{path} is not a readable zip file ({exc}). It may be truncated: download it again."
        ) from exc
    with archive:
        seen: set[str] = set()
        files = []
        for info in archive.infolist():
            if info.is_dir():
                continue
            if info.filename in seen:
                raise DatasetError(
                    f"{path} holds several members named {info.filename}: which one is meant "
                    "cannot be told. Download or re-create the zip."
                )
            seen.add(info.filename)

            def hasher(info: zipfile.ZipInfo = info) -> str:
                return _hash_chunks(iter_zip_member(archive, info, where=str(path),
                                                    chunk_bytes=_CHUNK))

            files.append((info.filename, hasher))
        yield files


@contextlib.contextmanager
def _dir_files(path: Path) -> Iterator[list[tuple[str, Callable[[], str]]]]:
    """(relative posix path, hasher) for every file under the folder, sorted."""
    found = []
    for top, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            full = os.path.join(top, name)
            rel = Path(full).relative_to(path).as_posix()
            found.append((rel, lambda full=full: _hash_chunks(_file_chunks(full))))
    yield found


def _wrapper(names: list[str]) -> str:
    """The one folder wrapping all samples (e.g. ``"stage1_train/"``), or ``""``.

    All files lie under one folder that is not itself a sample (it has no ``images/`` or
    ``masks/`` directly inside): then the samples are its sub-folders.
    """
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) != 1 or not all("/" in n for n in names):
        return ""
    top = tops.pop()
    if any(n.split("/")[1] in ("images", "masks") for n in names):
        return ""
    return top + "/"


def sample_digests(path: str | os.PathLike) -> dict[str, tuple[str, int]]:
    r"""SHA-256 of every sample folder of a stage1_train folder or zip.

    Parameters
    ----------
    path : str or os.PathLike
        The extracted folder (``stage1_train`` or the folder holding it) or the zip.

    Returns
    -------
    dict
        ``{sample id: (sha256 hex, number of files)}``. A sample's SHA-256 is taken over
        the UTF-8 text ``"<id>\n"`` followed by one line ``"<path>\t<file sha256>\n"``
        per file, sorted by ``<path>``, the file's path inside the sample folder (e.g.
        ``masks/<mask id>.png``).

    Raises
    ------
    DatasetError
        When the path does not exist or a file cannot be read (damaged zip).
    """
    path = Path(path)
    if path.is_dir():
        container = _dir_files(path)
    elif path.is_file():
        container = _zip_files(path)
    else:
        raise DatasetError(
            f"{path} does not exist. Give the stage1_train folder or stage1_train.zip."
        )
    pairs: dict[str, list[tuple[str, str]]] = {}
    with container as files:  # names first; each file is read when hashed
        kept = [(n, h) for n, h in files if not any(is_junk_name(p) for p in n.split("/"))]
        prefix = _wrapper([n for n, _ in kept])
        for name, hasher in kept:
            rel = name[len(prefix):]
            if "/" not in rel:
                continue  # a loose file at the top level belongs to no sample
            sample_id, inside = rel.split("/", 1)
            pairs.setdefault(sample_id, []).append((inside, hasher()))
    return {sid: (_sample_hash(sid, p), len(p)) for sid, p in pairs.items()}


def _sample_hash(sample_id: str, pairs: list[tuple[str, str]]) -> str:
    text = sample_id + "\n" + "".join(f"{rel}\t{sha}\n" for rel, sha in sorted(pairs))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------
# the manifest
# ---------------------------------------------------------------------------


def _id_chars(ids: list[str]) -> int:
    """Shortest prefix length (at least MIN_ID_CHARS) that tells all ids apart."""
    n = MIN_ID_CHARS
    while len({i[:n] for i in ids}) < len(ids):
        n += 1
    return n


def _manifest_digest(samples: dict[str, list]) -> str:
    text = "".join(f"{key}\t{sha}\t{n}\n" for key, (sha, n) in sorted(samples.items()))
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Build the manifest of a stage1_train folder or zip.

    Parameters
    ----------
    path : str or os.PathLike
        The authoritative copy of the dataset.

    Returns
    -------
    dict
        JSON-ready: ``samples`` maps each sample id's first ``id_chars`` characters to
        ``[sample sha256 (first 32 hex digits), number of files]``; ``n_samples``,
        ``n_files``; ``digest``, a SHA-256 over the sorted ``samples`` entries.

    Raises
    ------
    DatasetError
        When the path holds no sample folder or a file cannot be read.
    """
    digests = sample_digests(path)
    if not digests:
        raise DatasetError(f"{path} holds no sample folders <id>/images/ ...")
    n = _id_chars(list(digests))
    samples = {sid[:n]: [sha[:SAMPLE_HASH_CHARS], count]
               for sid, (sha, count) in sorted(digests.items())}
    return {
        "format": MANIFEST_FORMAT,
        "dataset": "DSB2018 stage1_train (BBBC038)",
        "sample_hash": (
            "sha256 over '<id>\\n' + '<path in sample>\\t<file sha256>\\n' per file "
            f"(sorted by path), first {SAMPLE_HASH_CHARS} hex digits"
        ),
        "id_chars": n,
        "n_samples": len(samples),
        "n_files": sum(count for _, count in samples.values()),
        "digest": _manifest_digest(samples),
        "samples": samples,
    }


def write_manifest(manifest: dict[str, Any], path: str | os.PathLike) -> None:
    """Write a manifest as JSON, one sample a line (small, readable diffs).

    Parameters
    ----------
    manifest : dict
        From :func:`build_manifest`.
    path : str or os.PathLike
        Where to write it.
    """
    head = {k: v for k, v in manifest.items() if k != "samples"}
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    rows = [f"    {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}"
            for k, v in manifest["samples"].items()]
    text = "{\n" + "\n".join(lines) + '\n  "samples": {\n' + ",\n".join(rows) + "\n  }\n}\n"
    Path(path).write_text(text, encoding="utf-8")


@functools.lru_cache(maxsize=1)
def stage1_train_ids() -> tuple[str, int, frozenset[str]]:
    """The shipped manifest's digest, and its samples' ids as the prefixes it keeps.

    Returns ``(digest, id_chars, prefixes)``: an id of stage1_train starts with one of
    the prefixes, each ``id_chars`` characters long.
    """
    manifest = load_manifest()
    return manifest["digest"], int(manifest["id_chars"]), frozenset(manifest["samples"])


def load_manifest(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Read a manifest and check that it is whole (its digest matches its entries).

    Parameters
    ----------
    path : str or os.PathLike, optional
        Default :data:`SHIPPED_MANIFEST`.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    DatasetError
        When it cannot be read or its digest does not match its entries.
    """
    path = Path(path) if path is not None else SHIPPED_MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        samples = manifest["samples"]
        ok = (manifest["format"] == MANIFEST_FORMAT
              and manifest["digest"] == _manifest_digest(samples)
              and manifest["n_samples"] == len(samples))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"Cannot read the DSB2018 manifest {path}: {exc}. "
                           "Reinstall napari-nuclei-unet.") from exc
    if not ok:
        raise DatasetError(f"The DSB2018 manifest {path} is damaged (its digest does not "
                           "match its entries). Reinstall napari-nuclei-unet.")
    return manifest


def verify_stage1_train(
    path: str | os.PathLike, manifest: dict[str, Any] | str | os.PathLike | None = None
) -> VerifyResult:
    """Check a local stage1_train, folder or zip, against the pinned manifest.

    Every file is read and hashed (about 190 MB for the real dataset); nothing is
    extracted and memory stays bounded.

    Parameters
    ----------
    path : str or os.PathLike
        The extracted folder (``stage1_train`` or the folder holding it) or the zip,
        samples at its top level or under ``stage1_train/``.
    manifest : dict or str or os.PathLike, optional
        A manifest (as from :func:`build_manifest`) or its file; default the shipped
        one, :data:`SHIPPED_MANIFEST`.

    Returns
    -------
    VerifyResult
        Counts of what was checked.

    Raises
    ------
    ContentMismatchError
        Naming the samples missing, altered or unexpected.
    DatasetError
        When the path does not exist or cannot be read (e.g. a truncated zip).
    """
    if not isinstance(manifest, dict):
        manifest = load_manifest(manifest)
    n = manifest["id_chars"]
    expected: dict[str, list] = manifest["samples"]
    found = sample_digests(path)
    diff, matched = _Differences(), set()
    for sid, (sha, count) in sorted(found.items()):
        entry = expected.get(sid[:n])
        if entry is None or sid[:n] in matched:
            diff.extra.append(sid)
            continue
        matched.add(sid[:n])
        if sha[: len(entry[0])] != entry[0]:
            why = ("a file's content differs" if count == entry[1]
                   else f"{entry[1]} files expected, {count} found")
            diff.altered.append(f"{sid}: {why}")
    diff.missing = [key + ("..." if len(key) >= n else "")  # ids are shown shortened
                    for key in sorted(set(expected) - matched)]
    if diff.missing or diff.extra or diff.altered:
        raise ContentMismatchError(Path(path), diff.missing, diff.extra, diff.altered)
    return VerifyResult(Path(path), len(found), sum(c for _, c in found.values()),
                        manifest["digest"])
