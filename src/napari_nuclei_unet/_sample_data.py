"""npe2 sample data: synthetic nuclei shipped with the plugin, and the real DSB2018 download.

The synthetic samples live in the repository's ``sample_data/`` folder, which the
package reaches through the ``napari_nuclei_unet/sample_data`` symlink (copied
into wheels as real files). Nothing here imports napari or torch at module
level; napari is imported only for the download's progress bar.

A sample that cannot be opened raises an exception whose message says why and what
to do: napari shows it as one error notification (returning no layers instead
would add napari's own "did not return any valid layer data" error to ours).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core.download import DownloadError

if TYPE_CHECKING:
    from .core.dataset import Sample

LayerData = tuple[Any, dict[str, Any], str]

_PACKAGE_DIR = Path(__file__).resolve().parent


class SampleDownloadError(DownloadError):
    """The DSB2018 sample could not be downloaded; the message says why and what to do.

    A :class:`~napari_nuclei_unet.core.download.DownloadError` (same ``url`` and
    ``reason``) whose message is written for the napari user.
    """

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.args = (
            f"Could not download DSB2018 stage1_train from {url}: {reason.rstrip('.')}. "
            "Check your internet connection, or download stage1_train.zip yourself and "
            "drag it onto napari.",
        )

    def __reduce__(self) -> tuple[Any, ...]:  # keeps it picklable (two arguments)
        return type(self), (self.url, self.reason)


def sample_data_dir() -> Path:
    """Folder holding the shipped synthetic samples (DSB layout).

    Returns
    -------
    pathlib.Path
        ``napari_nuclei_unet/sample_data`` inside the installed package, or the
        repository's top-level ``sample_data/`` for a source checkout where the
        symlink is missing (e.g. a Windows clone without symlink support).

    Raises
    ------
    FileNotFoundError
        If neither folder exists.
    """
    candidates = (
        Path(__file__).parent / "sample_data",  # not resolved: follow the symlink
        _PACKAGE_DIR.parents[1] / "sample_data",  # src/napari_nuclei_unet -> repository root
    )
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        "The plugin's synthetic sample data is missing (looked in "
        + ", ".join(str(c) for c in candidates)
        + "). Reinstall napari-nuclei-unet, or run sample_data/generate.py in a source checkout."
    )


def _synthetic_sample(style: str) -> Sample:
    """The first shipped sample of ``style``; regenerated in memory if the files are missing."""
    from .core.synthetic import SAMPLE_SPECS

    spec = next(s for s in SAMPLE_SPECS if s.style == style)
    try:
        folder = sample_data_dir() / spec.sample_id
    except FileNotFoundError:
        folder = None
    if folder is not None and folder.is_dir():
        from .core.dataset import load_sample

        return load_sample(folder)
    return _generate_sample(spec)


def _generate_sample(spec) -> Sample:
    import numpy as np

    from .core.dataset import Sample
    from .core.synthetic import make_synthetic_sample

    image, masks = make_synthetic_sample(spec.style, shape=spec.shape, seed=spec.seed)
    labels = np.zeros(image.shape[:2], np.int32)
    for i, mask in enumerate(masks, start=1):
        labels[mask] = i
    return Sample(id=spec.sample_id, image=image, labels=labels, modality=spec.style)


def _synthetic_layer_data(style: str) -> list[LayerData]:
    from ._reader import sample_layer_data

    sample = _synthetic_sample(style)
    try:
        dataset = sample_data_dir()
    except FileNotFoundError:
        dataset = None
    return sample_layer_data(sample, dataset_path=dataset)


def fluorescence_sample() -> list[LayerData]:
    """Synthetic fluorescence nuclei (256 x 256): image and ground-truth labels.

    Returns
    -------
    list of tuple
        An RGB image layer named after the sample and a labels layer
        ``"<id> labels"``.
    """
    return _synthetic_layer_data("fluorescence")


def brightfield_sample() -> list[LayerData]:
    """Synthetic brightfield nuclei (256 x 320): image and ground-truth labels.

    Returns
    -------
    list of tuple
        An RGB image layer named after the sample and a labels layer
        ``"<id> labels"``.
    """
    return _synthetic_layer_data("brightfield")


def histology_sample() -> list[LayerData]:
    """Synthetic H&E-like nuclei (256 x 256): image and ground-truth labels.

    Returns
    -------
    list of tuple
        An RGB image layer named after the sample and a labels layer
        ``"<id> labels"``.
    """
    return _synthetic_layer_data("histology")


def dsb2018_download_sample() -> list[LayerData]:
    """Download DSB2018 ``stage1_train.zip`` (BBBC038, about 80 MB) and open its first sample.

    The zip is downloaded once into the user cache (see
    :func:`napari_nuclei_unet.core.download.fetch_stage1_train`); later calls
    open the cached file. The layers' metadata name the zip, so the plugin's
    dataset browser can show the other 669 images.

    Returns
    -------
    list of tuple
        An image and a labels layer.

    Raises
    ------
    SampleDownloadError
        When the download fails (offline, server error); napari shows its message.
    DatasetError
        When the downloaded zip is not a DSB2018 dataset (the message says to delete it).
    """
    from .core import download

    url = download.DEFAULT_URL
    bar = None if download.cached_path().is_file() else _napari_progress("Downloading DSB2018")
    try:
        zip_path = download.fetch_stage1_train(
            url=url, progressbar=bar if bar is not None else False
        )
    except DownloadError as exc:
        raise SampleDownloadError(url, exc.reason) from exc
    finally:
        if bar is not None:
            bar.close()
    from ._reader import load_first_sample, sample_layer_data
    from .core.dataset import DatasetError

    try:
        sample = load_first_sample(zip_path)
    except DatasetError as exc:
        raise DatasetError(
            f"{exc} Delete {zip_path} to have it downloaded again on the next try."
        ) from exc
    return sample_layer_data(sample, dataset_path=zip_path)


def _napari_progress(description: str) -> Any:
    """A napari progress bar for pooch (shown in napari's activity dock), or None."""
    try:
        from napari.utils import progress
    except ImportError:  # pragma: no cover - napari is a dependency
        return None
    # total > 0: pooch tests the bar for truth (tqdm is falsy when total == 0); it sets the size
    return progress(desc=description, total=1)
