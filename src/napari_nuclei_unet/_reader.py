"""npe2 reader: open a DSB2018 sample folder, a ``stage1_train`` folder or ``stage1_train.zip``.

:func:`get_reader` only claims folders that look like DSB2018 (checked from folder
names, without decoding anything) and zip files (checked from their end record
only, so that a drop never waits on a large zip's list of names), so napari keeps
offering its other readers for everything else. A zip without DSB2018 samples gets
a plain message when it is read. Reading is done by
:mod:`napari_nuclei_unet.core.dataset`; this module only turns samples into
layer data.

What opens:

- a **sample folder**: its image and label mask, as two layers;
- a **dataset** (a ``stage1_train`` folder or zip) dropped on a napari window:
  every sample, in the plugin's Data panel
  (:mod:`napari_nuclei_unet.widgets._reader_handoff`), which indexes it in the
  background, lists all samples and shows the first; samples are decoded only
  when shown, so a 670-sample zip costs the memory of one image;
- a dataset read without a window (a script): its first
  :data:`MAX_LAYER_SAMPLES` samples as layers, and a plain message saying how
  many there are and how to browse all of them.

Layers are named by the sample's short id (first 8 characters of a 64-character
DSB2018 id); the full id is in the layer's metadata.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_nuclei_unet.core.dataset_layout import is_dataset_folder, is_sample_folder

if TYPE_CHECKING:
    from .core.dataset import Sample

PathOrPaths = str | os.PathLike | Sequence[str | os.PathLike]
LayerData = tuple[Any, dict[str, Any], str]
ReaderFunction = Callable[[PathOrPaths], list[LayerData]]

#: Metadata keys put on the layers, so that the plugin's dataset browser can find
#: the dataset a layer came from and page through its other samples (the same keys
#: as :mod:`napari_nuclei_unet.widgets._layers`, which is not imported here: Qt).
DATASET_KEY = "nuclei_unet_dataset"
SAMPLE_ID_KEY = "nuclei_unet_sample_id"
MODALITY_KEY = "nuclei_unet_modality"

#: What napari's reader machinery accepts as "read, but nothing to add": a reader
#: returning ``[]`` makes napari raise a second, generic error on top of ours.
NULL_LAYER_SENTINEL: list = [(None,)]

#: Samples of a dataset opened as layers when no Data panel can take it (each is
#: decoded into memory: a bound, not the whole dataset).
MAX_LAYER_SAMPLES = 16

def is_zip_archive(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a ``.zip`` file that :func:`zipfile.is_zipfile` accepts.

    Only the zip's end record is read (well under a millisecond, whatever the number
    of members): napari asks this on its main thread when a file is dropped, and
    reading the 32,142 names of ``stage1_train.zip`` takes 0.1 to 0.5 s there.
    Whether the zip holds DSB2018 samples is found when it is read, in the
    background by the Data panel; a zip without samples then gets a plain message
    (:func:`napari_nuclei_unet.core.dataset.zip_samples`).

    Parameters
    ----------
    path : str or os.PathLike
        File to check.

    Returns
    -------
    bool
        True for a regular file named ``*.zip`` with a zip end record.
    """
    p = Path(path)
    if p.suffix.lower() != ".zip" or not p.is_file():  # is_file: never open a FIFO
        return False
    try:
        return zipfile.is_zipfile(p)
    except OSError:
        return False


def looks_like_dsb(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DSB sample folder, a dataset folder or a zip file.

    Parameters
    ----------
    path : str or os.PathLike
        File or folder to check.

    Returns
    -------
    bool
        True if :func:`is_sample_folder`, :func:`is_dataset_folder` or
        :func:`is_zip_archive` says so.
    """
    p = Path(path)
    if p.is_dir():
        return is_sample_folder(p) or is_dataset_folder(p)
    return is_zip_archive(p)


def get_reader(path: PathOrPaths) -> ReaderFunction | None:
    """npe2 ``get_reader`` hook: a reader for DSB2018 paths, None for anything else.

    Parameters
    ----------
    path : str, os.PathLike or list of them
        What napari was asked to open. A list is accepted when every item
        looks like DSB2018.

    Returns
    -------
    callable or None
        :func:`read_dsb` when the path(s) look like a DSB sample folder or a
        ``stage1_train`` folder, or are zip files (``stage1_train.zip``; one
        without samples gets a plain message when read); otherwise None, so
        that napari tries its other readers.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths or not all(looks_like_dsb(p) for p in paths):
        return None
    return read_dsb


def read_dsb(path: PathOrPaths) -> list[LayerData]:
    """Read DSB2018 path(s): sample folders as layers, datasets in the Data panel.

    A dataset folder or zip is handed to the plugin's Data panel of the current
    napari window, which lists and shows all its samples (no layer is returned
    for it here). Without a window, its first :data:`MAX_LAYER_SAMPLES` samples
    (sorted by id) become layers and a message says how many were left out.
    The layers' metadata name the dataset (``"nuclei_unet_dataset"``), the
    sample (``"nuclei_unet_sample_id"``, the full id) and its modality
    (``"nuclei_unet_modality"``).

    Parameters
    ----------
    path : str, os.PathLike or list of them
        Sample folder(s), dataset folder(s) or zip(s).

    Returns
    -------
    list of tuple
        ``(data, kwargs, layer_type)`` tuples. If nothing could be read, a
        notification explains why and napari's "nothing to add" value
        (``[(None,)]``) is returned instead of raising.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    layers: list[LayerData] = []
    handed = False
    for p in paths:
        p = Path(p)
        if not handed and not is_sample_folder(p) and _hand_to_data_panel(p):
            handed = True  # the Data panel shows every sample (one dataset open at a time)
            continue
        layers.extend(_read_one(p))
    return layers or list(NULL_LAYER_SENTINEL)


def _hand_to_data_panel(path: Path) -> bool:
    """Give a dataset to the Data panel of the current napari window (False: no window)."""
    try:
        from .widgets._reader_handoff import open_in_data_panel
    except ImportError:  # no Qt binding: a script reading files
        return False
    try:
        return open_in_data_panel(path)
    except Exception:  # noqa: BLE001  (never lose the file: fall back to layers)
        import logging

        logging.getLogger(__name__).warning("the Data panel could not open %s", path,
                                            exc_info=True)
        return False


def _sample_folders(path: Path) -> list[Path]:
    """Sub-folders of a dataset folder that look like samples, sorted by name."""
    with os.scandir(path) as it:
        names = sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))
    return [path / name for name in names if is_sample_folder(path / name)]


def load_first_sample(path: str | os.PathLike) -> Sample:
    """Load the sample a dataset opens on: the first usable one, sorted by id.

    A sample folder is loaded directly. For a dataset folder or zip the first
    sample is loaded on its own (a zip's members are read in place, with their
    sizes checked first), because indexing a whole ``stage1_train`` decodes every image and
    takes seconds; only if that sample is bad is the dataset indexed with
    :meth:`DSBDataset.open <napari_nuclei_unet.core.dataset.DSBDataset.open>`
    to find the first good one.

    Parameters
    ----------
    path : str or os.PathLike
        Sample folder, dataset folder or zip.

    Returns
    -------
    Sample
        The decoded sample.

    Raises
    ------
    DatasetError
        When nothing usable is found; the message says what is wrong.
    """
    from .core.dataset import DatasetError, DSBDataset, load_sample

    path = Path(path)
    if path.is_dir() and is_sample_folder(path):
        return load_sample(path)
    try:
        if path.is_dir():
            folders = _sample_folders(path)
            if folders:
                return load_sample(folders[0])
        elif path.is_file():
            sample = _load_first_zip_sample(path)
            if sample is not None:
                return sample
    except (DatasetError, OSError, zipfile.BadZipFile):
        pass  # a bad first sample: let the full index skip it and report it
    dataset = DSBDataset.open(path)
    ids = dataset.ids()
    if not ids:  # DSBDataset.open raises first; kept for safety
        raise DatasetError(
            f"{path} has no readable DSB2018 samples "
            "(expected <id>/images/<id>.png and <id>/masks/*.png)."
        )
    return dataset.load(ids[0])


def _load_first_zip_sample(path: Path) -> Sample | None:
    """Decode the first sample (by id) of a DSB zip in place: nothing is extracted."""
    from .core.dataset import load_zip_sample

    return load_zip_sample(path)


def _read_one(path: Path) -> list[LayerData]:
    from .core.dataset import DatasetError

    try:
        if path.is_dir() and is_sample_folder(path):
            samples = [load_first_sample(path)]
        else:
            samples = load_dataset_samples(path, MAX_LAYER_SAMPLES)
    except DatasetError as exc:
        _show_error(str(exc))
        return []
    except OSError as exc:
        _show_error(f"Could not read {path}: {exc}")
        return []
    layers: list[LayerData] = []
    for sample in samples:
        layers.extend(sample_layer_data(sample, dataset_path=path))
    return layers


def dataset_sample_ids(path: str | os.PathLike) -> list[str]:
    """Ids of the samples of a dataset folder or zip, sorted, from names only (no decoding).

    Parameters
    ----------
    path : str or os.PathLike
        A ``stage1_train``-like folder or zip.

    Returns
    -------
    list of str
        Sample ids, sorted: folder names holding ``images/``; for a zip, its usable
        samples as :meth:`DSBDataset.open <napari_nuclei_unet.core.dataset.DSBDataset.open>`
        finds them (:func:`napari_nuclei_unet.core.dataset.zip_samples`).

    Raises
    ------
    DatasetError
        When ``path`` is not a regular file (e.g. a FIFO), not a readable zip, or a zip
        without DSB2018 samples.
    """
    from .core.dataset import zip_samples

    path = Path(path)
    if path.is_dir():
        return [folder.name for folder in _sample_folders(path)]
    return list(zip_samples(path)[0])  # sorted; a FIFO or a non-zip: a plain DatasetError


def load_dataset_samples(path: str | os.PathLike, limit: int = MAX_LAYER_SAMPLES
                         ) -> list[Sample]:
    """Decode the first ``limit`` usable samples of a dataset folder or zip, by id.

    Bad samples are skipped with a warning naming them. When the dataset holds
    more than ``limit`` samples, a message says how many were left out and how
    to browse them all (the plugin's Data panel), so memory stays bounded.

    Parameters
    ----------
    path : str or os.PathLike
        A ``stage1_train``-like folder or zip.
    limit : int, optional
        Most samples decoded.

    Returns
    -------
    list of Sample

    Raises
    ------
    DatasetError
        When none of its samples can be read.
    """
    import warnings

    from .core.dataset import DatasetError, load_sample, load_zip_sample

    path = Path(path)
    ids = dataset_sample_ids(path)
    samples: list[Sample] = []
    bad: list[str] = []
    for sample_id in ids:
        if len(samples) >= limit:
            break
        try:
            samples.append(load_sample(path / sample_id) if path.is_dir()
                           else load_zip_sample(path, sample_id))
        except (DatasetError, OSError, zipfile.BadZipFile) as exc:
            bad.append(f"{sample_id}: {exc}")
    if bad:
        warnings.warn(f"{path}: {len(bad)} sample(s) skipped: " + "; ".join(bad[:3]),
                      UserWarning, stacklevel=2)
    if not samples:
        raise DatasetError(
            f"{path} has no readable DSB2018 samples "
            "(expected <id>/images/<id>.png and <id>/masks/*.png)."
        )
    if len(ids) > limit:
        _show_info(
            f"{path.name} holds {len(ids)} samples: the first {len(samples)} were opened as "
            "layers. To browse all of them, open it in the plugin's Data panel (Plugins > "
            "Nuclei U-Net > Data)."
        )
    return samples


def image_contrast_limits(image, modality: str) -> tuple[float, float]:
    """Display range for a sample image.

    Fluorescence images are mostly dark (nuclei often use a tenth of the 8-bit
    range), so their range is stretched to a high percentile; brightfield and
    histology images use the full 0-255 range.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W, 3)`` uint8 image.
    modality : str
        The sample's modality.

    Returns
    -------
    tuple of float
        ``(low, high)`` contrast limits.
    """
    import numpy as np

    if modality != "fluorescence" or image.size == 0:
        return (0.0, 255.0)
    high = float(np.percentile(image, 99.9))
    return (0.0, float(min(255.0, max(high, 16.0))))


def sample_layer_data(
    sample: Sample, *, dataset_path: str | os.PathLike | None = None
) -> list[LayerData]:
    """Layer data for one sample: an RGB image layer and a labels layer.

    Parameters
    ----------
    sample : Sample
        A loaded sample (``image`` ``(H, W, 3)`` uint8, ``labels`` ``(H, W)`` int32).
    dataset_path : str or os.PathLike, optional
        Where the sample came from (sample folder, dataset folder or zip), kept
        in the layers' metadata.

    Returns
    -------
    list of tuple
        ``[(image, {...}, "image"), (labels, {...}, "labels")]``; the labels
        layer is left out for a sample without masks.
    """
    metadata: dict[str, Any] = {SAMPLE_ID_KEY: sample.id, MODALITY_KEY: sample.modality}
    if dataset_path is not None:
        metadata[DATASET_KEY] = str(dataset_path)
    # a 64-hex DSB2018 id is named by its first 8 characters (full id in the metadata)
    name = sample.id[:8] if re.fullmatch(r"[0-9a-fA-F]{17,}", sample.id) else sample.id
    image_kwargs = {
        "name": name,
        "rgb": True,
        "contrast_limits": image_contrast_limits(sample.image, sample.modality),
        "metadata": dict(metadata),
    }
    layers: list[LayerData] = [(sample.image, image_kwargs, "image")]
    if getattr(sample, "has_labels", True):
        labels_kwargs = {  # not "<id> labels": the Segment dock's result is named so,
            "name": f"{name} label mask",  # and came out "<id> labels [1]" (h_gui42, M2)
            "opacity": 0.5,
            "metadata": dict(metadata),
        }
        layers.append((sample.labels, labels_kwargs, "labels"))
    return layers


def _show_error(message: str) -> None:
    from napari.utils.notifications import show_error

    show_error(message)


def _show_info(message: str) -> None:
    from napari.utils.notifications import show_info

    show_info(message)
