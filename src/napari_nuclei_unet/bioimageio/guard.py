"""Bounds on a bioimage.io package's files, checked before bioimageio.spec reads it.

bioimageio.spec reads a package's description and weights whole and validates the
description's tree. A small hostile package could make it allocate gigabytes or wait
for ever (review h_rev17, F1 and F2):

- a 2 KB ``rdf.yaml`` of nested YAML aliases ("billion laughs") grew to 7.6 GB and never
  finished validating;
- a 23 MB zip whose ``rdf.yaml`` inflates to 400 MB took 2.4 GB; a 16 MB zip whose
  weights inflate to 1.5 GB took 3.5 GB before being refused;
- weights that are a FIFO (a named pipe) blocked for ever.

:func:`check_package` refuses those from sizes, file types and the YAML's events
(which never expand an alias), in plain words, before anything is read whole. The
bounds are those of the dataset reader for zip members (:mod:`~napari_nuclei_unet.
core.zipread`), with room for large models' weights.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

from ..core.checkpoint import CheckpointError
from ..core.imageio import DatasetError
from ..core.zipread import inflation, read_zip_member
from .detect import _is_rdf_name

#: Largest package description read (``rdf.yaml`` / ``bioimageio.yaml``: a few KB).
MAX_RDF_BYTES = 1 << 20
#: Largest other file of a package (large models' weights are a few hundred MB).
MAX_FILE_BYTES = 1 << 30
_ASK = "Ask the package's authors for a sound copy, or download it again."


#: Deepest nesting of a description's mappings and lists (a real one: under 10). A
#: 6 KB description nested 3,000 deep raised RecursionError ("this is a bug"); 200,000
#: deep, PyYAML had not parsed it after 120 s (review h_rev18, M4).
MAX_DEPTH = 64
#: Files of a package folder looked at (its sub-folders included).
MAX_FILES = 2000
#: Version-control folders a package folder may hold (not part of the package).
VCS_FOLDERS = frozenset({".git", ".hg", ".svn"})


def check_package(source: str | os.PathLike) -> None:
    """Refuse a package whose files could exhaust memory or block when read.

    Parameters
    ----------
    source : str or os.PathLike
        A package folder, its description (``rdf.yaml``, ``bioimageio.yaml`` or
        ``*.bioimageio.yaml``), or a ``.zip``.

    Raises
    ------
    CheckpointError
        A file larger than :data:`MAX_RDF_BYTES` (the description) or
        :data:`MAX_FILE_BYTES`, a zip member inflating more than
        :data:`~napari_nuclei_unet.core.zipread.MAX_COMPRESSION_RATIO`-fold, a file
        that is not a regular file (a pipe, a device), a description using YAML
        aliases or nested deeper than :data:`MAX_DEPTH`. A package that is otherwise
        broken (not a zip, no description, malformed YAML) is left to
        bioimageio.spec, which says what is wrong.
    """
    path = Path(source)
    try:
        if path.is_dir():
            _check_folder(path)
        elif path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
            _check_zip(path)
        elif path.suffix.lower() in (".yaml", ".yml"):
            _check_description_file(path)
    except (OSError, zipfile.BadZipFile, DatasetError) as exc:
        # a damaged zip, an unreadable file: said as bioimageio.spec's errors are, not
        # as "this is a bug" (review h_rev19, M1)
        raise CheckpointError(f"{source} is not a valid bioimage.io model package: {exc}") \
            from exc


def _regular(path: Path) -> os.stat_result | None:
    """``path``'s stat through links (None: missing), refusing a pipe or a device."""
    try:
        info = path.stat()
    except OSError:
        return None  # a broken link: bioimageio.spec names it if the package uses it
    if not stat.S_ISDIR(info.st_mode) and not stat.S_ISREG(info.st_mode):
        raise CheckpointError(
            f"{path} in the model package is not a regular file (a pipe or a device): "
            f"reading it could wait for ever. {_ASK}")
    return info


def _check_folder(folder: Path) -> None:
    """A package folder: its descriptions first, then every file, sub-folders included.

    The descriptions are found by name, whatever else the folder holds: a count that
    stopped the walk let 2,001 small files sorted before ``rdf.yaml`` hide it and the
    weights it names (review h_rev19, H1). A folder with more than :data:`MAX_FILES`
    files is refused.
    """
    for entry in sorted(folder.iterdir()):
        if _is_rdf_name(entry.name):
            _check_description_file(entry, folder)
    seen = 0
    for root, dirs, files in os.walk(folder):
        # a package cloned with git: .git's objects pushed it past MAX_FILES (h_rev20, L2)
        dirs[:] = sorted(d for d in dirs if d not in VCS_FOLDERS)
        for name in files:
            seen += 1
            if seen > MAX_FILES:
                raise CheckpointError(
                    f"{folder} holds more than {MAX_FILES:,} files, far more than a model "
                    f"package needs, so it is refused. Give the package's own folder. {_ASK}")
            if root == str(folder) and _is_rdf_name(name):
                continue  # checked above, with the weights it names
            info = _regular(Path(root) / name)
            if info is not None and not stat.S_ISDIR(info.st_mode):
                _check_size(name, info.st_size, False, folder)


def _check_description_file(rdf: Path, where: Path | None = None) -> None:
    """A description (given itself, or ``where``'s): it, and the weights it names.

    Not its whole folder when given itself: one in a Downloads folder beside a 2 GB film
    was refused (review h_rev18, L6).
    """
    info = _regular(rdf)
    if info is None or stat.S_ISDIR(info.st_mode):
        return
    _check_size(rdf.name, info.st_size, True, where or rdf.parent)
    _check_yaml(rdf.read_bytes(), rdf, rdf.parent)


def _check_zip(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            is_rdf = "/" not in info.filename and _is_rdf_name(info.filename)  # at its root
            _check_size(info.filename, info.file_size, is_rdf, path)
            fold = inflation(info)
            if fold:
                raise CheckpointError(
                    f"{info.filename} in {path} inflates {int(fold)}-fold (to "
                    f"{info.file_size / 2**20:.0f} MB): likely a zip bomb, so the package "
                    f"is refused. {_ASK}")
            if is_rdf:  # each: bioimageio.spec may take any of them
                _check_yaml(read_zip_member(archive, info, where=str(path)),
                            f"{path}:{info.filename}", None)


def _check_size(name: str, size: int, is_rdf: bool, where: Path) -> None:
    limit = MAX_RDF_BYTES if is_rdf else MAX_FILE_BYTES
    if size > limit:
        what = "description" if is_rdf else "file"
        raise CheckpointError(
            f"The package's {what} {name} ({where}) holds {size / 2**20:.0f} MB, more than "
            f"the {limit / 2**20:.0f} MB a model package's {what} may have here. {_ASK}")


def _check_yaml(data: bytes, name: object, folder: Path | None) -> None:
    """Refuse YAML aliases and nesting deeper than :data:`MAX_DEPTH`.

    A few lines of aliases (``*name``) expand to gigabytes. Both are seen in the
    parser's events, before anything is built.
    """
    import yaml

    depth = 0
    try:
        for event in yaml.parse(data, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise CheckpointError(
                    f"{name} uses YAML aliases (*{event.anchor}), which a bioimage.io "
                    "description does not need and which can make a small file expand "
                    f"to gigabytes, so the package is refused. {_ASK}")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise CheckpointError(
                        f"{name} is nested more than {MAX_DEPTH} levels deep, which no "
                        f"bioimage.io description needs, so the package is refused. {_ASK}")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        rdf = yaml.safe_load(data)  # no alias: nothing expands
    except (yaml.YAMLError, RecursionError):
        return  # malformed, or a tag (review h_rev19, M1): bioimageio.spec says what is wrong
    except (ValueError, TypeError, OverflowError) as exc:  # a value YAML cannot make: a
        raise CheckpointError(  # date "2001-02-30" said "day is out of range for month",
            f"{name} is not a valid bioimage.io description: a value in it cannot be "  # and
            f"read ({exc}). {_ASK}") from exc  # no file (review h_rev20, L1)
    _check_description(rdf, name, folder)


def _check_description(rdf: object, name: object, folder: Path | None) -> None:
    """Say what is wrong in a few words, before bioimageio.spec's validation text.

    A dataset's description got "Invalid dataset description: name: Value should have at
    least 5 items ..."; a format 0.4 package 25 lines of pydantic (review h_rev17, L9).
    Weights outside the package were loaded silently (L5): a package holds its files.
    """
    if not isinstance(rdf, dict):
        return
    kind, version = rdf.get("type"), str(rdf.get("format_version", ""))
    if kind not in (None, "model"):
        raise CheckpointError(
            f"{name} describes a bioimage.io {kind}, not a model: give a model package "
            "(its description says type: model).")
    if version and not version.startswith("0.5"):
        raise CheckpointError(
            f"{name} is a bioimage.io model of format {version}; napari-nuclei-unet reads "
            "format 0.5 packages. Convert it with `bioimageio update-format` "
            "(bioimageio.core) or ask its authors.")
    weights = rdf.get("weights")
    for entry in (weights.values() if isinstance(weights, dict) else ()):
        source = entry.get("source") if isinstance(entry, dict) else None
        if not isinstance(source, str) or "://" in source:
            continue
        if source.startswith(("/", "\\")) or ".." in Path(source.replace("\\", "/")).parts:
            raise CheckpointError(
                f"{name} takes its weights from {source}, outside the package: a package "
                f"holds its own files. {_ASK}")
        if folder is not None:  # a description given itself: the weights it names
            info = _regular(folder / source)
            if info is not None and not stat.S_ISDIR(info.st_mode):
                _check_size(source, info.st_size, False, folder)
