"""Tell a bioimage.io model package from a checkpoint, without reading it fully.

A package is a folder with ``rdf.yaml`` / ``bioimageio.yaml`` (or ``*.bioimageio.yaml``),
such a YAML file, or a ``.zip`` with one at its top level. Nothing here imports
bioimageio.core: the command line and the Model dock ask it for every MODEL given.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

RDF_NAMES = ("rdf.yaml", "bioimageio.yaml")
#: File suffixes a bioimage.io package comes as (besides a folder).
PACKAGE_SUFFIXES = (".zip", ".yaml", ".yml")


def _is_rdf_name(name: str) -> bool:
    name = name.lower()
    return name in RDF_NAMES or name.endswith(".bioimageio.yaml")


def is_bioimageio_package(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a bioimage.io package (without reading it fully).

    Parameters
    ----------
    path : str or os.PathLike
        A folder holding ``rdf.yaml`` / ``bioimageio.yaml`` / ``*.bioimageio.yaml``,
        such a YAML file, or a ``.zip`` with one of them at its top level.

    Returns
    -------
    bool
        True for a package; False for anything else (e.g. a ``.safetensors`` checkpoint,
        ``"default"``, or a path that does not exist).
    """
    if isinstance(path, str) and path == "default":
        return False
    path = Path(path)
    try:
        if path.is_dir():
            return any((path / name).is_file() for name in RDF_NAMES) or any(
                path.glob("*.bioimageio.yaml")
            )
        if not path.is_file():
            return False
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            return _is_rdf_name(path.name) or "format_version" in path.read_text(
                encoding="utf-8", errors="replace"
            )[:100_000]
        if suffix == ".zip" and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return any(_is_rdf_name(name) for name in archive.namelist() if "/" not in name)
    except OSError:
        return False
    return False


def may_be_package(path: str | os.PathLike) -> bool:
    """Whether ``path`` has a package's form (a folder, a ``.zip`` or a YAML), unread.

    :func:`is_bioimageio_package` reads it to tell; this only says which kind of file
    was meant, e.g. to call a broken ``.zip`` a package rather than a checkpoint.
    """
    if isinstance(path, str) and path == "default":
        return False
    path = Path(path)
    return path.suffix.lower() in PACKAGE_SUFFIXES or path.is_dir()
