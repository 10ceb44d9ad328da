"""One DSB2018 sample read on its own: a sample folder, or one sample of a zip.

No index of the other samples is built (see :class:`.dataset.DSBDataset` for that).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from .dataset_decode import Sample, _decode_files, _to_sample
from .dataset_layout import _HOW_TO_FIX, _report, _Scan, _scan, _scan_sample_dir
from .imageio import DatasetError, DatasetWarning

__all__ = ["load_sample", "load_zip_sample"]


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
