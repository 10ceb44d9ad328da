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
from ..core.zipread import MAX_COMPRESSION_RATIO, RATIO_MIN_BYTES
from .detect import RDF_NAMES

#: Largest package description read (``rdf.yaml`` / ``bioimageio.yaml``: a few KB).
MAX_RDF_BYTES = 1 << 20
#: Largest other file of a package (large models' weights are a few hundred MB).
MAX_FILE_BYTES = 1 << 30
_ASK = "Ask the package's authors for a sound copy, or download it again."


def check_package(source: str | os.PathLike) -> None:
    """Refuse a package whose files could exhaust memory or block when read.

    Parameters
    ----------
    source : str or os.PathLike
        A package folder, its ``rdf.yaml`` / ``bioimageio.yaml``, or a ``.zip``.

    Raises
    ------
    CheckpointError
        A file larger than :data:`MAX_RDF_BYTES` (the description) or
        :data:`MAX_FILE_BYTES`, a zip member inflating more than
        :data:`~napari_nuclei_unet.core.zipread.MAX_COMPRESSION_RATIO`-fold, a file
        that is not a regular file (a pipe, a device), or a description using YAML
        aliases. A package that is otherwise broken (not a zip, no description,
        malformed YAML) is left to bioimageio.spec, which says what is wrong.
    """
    path = Path(source)
    if path.is_dir():
        _check_folder(path, None)
    elif path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
        _check_zip(path)
    elif path.suffix.lower() in (".yaml", ".yml"):
        _check_folder(path.parent, path.name)


def _check_folder(folder: Path, rdf_name: str | None) -> None:
    names = (rdf_name.lower(),) if rdf_name else RDF_NAMES
    for entry in sorted(folder.iterdir()):
        try:
            info = entry.stat()  # through a link: what would be read
        except OSError:
            continue  # a broken link: bioimageio.spec names it if the package uses it
        if stat.S_ISDIR(info.st_mode):
            continue
        if not stat.S_ISREG(info.st_mode):
            raise CheckpointError(
                f"{entry} in the model package is not a regular file (a pipe or a device): "
                f"reading it could wait for ever. {_ASK}")
        is_rdf = entry.name.lower() in names
        _check_size(entry.name, info.st_size, is_rdf, folder)
        if is_rdf:
            _check_yaml(entry.read_bytes(), entry)


def _check_zip(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        rdf = None
        for info in archive.infolist():
            if info.is_dir():
                continue
            is_rdf = info.filename.lower() in RDF_NAMES  # the package's own, at its root
            _check_size(info.filename, info.file_size, is_rdf, path)
            if (info.file_size > RATIO_MIN_BYTES
                    and info.file_size > MAX_COMPRESSION_RATIO * max(1, info.compress_size)):
                fold = info.file_size // max(1, info.compress_size)
                raise CheckpointError(
                    f"{info.filename} in {path} inflates {fold}-fold (to "
                    f"{info.file_size / 2**20:.0f} MB): likely a zip bomb, so the package "
                    f"is refused. {_ASK}")
            rdf = info if is_rdf and rdf is None else rdf
        if rdf is not None:
            _check_yaml(archive.read(rdf), f"{path}:{rdf.filename}")


def _check_size(name: str, size: int, is_rdf: bool, where: Path) -> None:
    limit = MAX_RDF_BYTES if is_rdf else MAX_FILE_BYTES
    if size > limit:
        what = "description" if is_rdf else "file"
        raise CheckpointError(
            f"The package's {what} {name} ({where}) holds {size / 2**20:.0f} MB, more than "
            f"the {limit / 2**20:.0f} MB a model package's {what} may have here. {_ASK}")


def _check_yaml(data: bytes, name: object) -> None:
    """Refuse YAML aliases (``*name``): a few lines of them expand to gigabytes."""
    import yaml

    try:
        for event in yaml.parse(data, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise CheckpointError(
                    f"{name} uses YAML aliases (*{event.anchor}), which a bioimage.io "
                    "description does not need and which can make a small file expand "
                    f"to gigabytes, so the package is refused. {_ASK}")
    except yaml.YAMLError:
        return  # malformed: bioimageio.spec says what is wrong with it
    _check_description(yaml.safe_load(data), name)  # no alias: nothing to expand


def _check_description(rdf: object, name: object) -> None:
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
