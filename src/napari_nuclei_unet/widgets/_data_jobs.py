"""Background jobs of the Data dock: opening a dataset, Load all, the download meter.

:func:`_open_dataset` runs in a worker (``DSBDataset.iter_open`` with plain-words
errors that describe the DSB2018 layout), as :func:`_load_all_stamped` does;
:class:`DownloadMeter` is the tqdm-like object pooch updates from its download
thread, read by the dock's timer.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_nuclei_unet.core.progress import stop_requested

if TYPE_CHECKING:
    from napari_nuclei_unet.core.dataset import DSBDataset

#: What a DSB2018 dataset looks like, appended to "not a dataset" errors.
LAYOUT_HINT = (
    "A DSB2018 dataset is a folder (or a .zip such as stage1_train.zip) with one "
    "sub-folder per sample: <id>/images/<id>.png and <id>/masks/*.png (one black-and-"
    "white PNG per nucleus). Choose the folder that contains those sample folders."
)


class DownloadMeter:
    """tqdm-like object that pooch updates from the download thread; read by a QTimer."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.n = 0

    def update(self, n: int) -> None:
        """Count ``n`` more bytes."""
        self.n += n

    def reset(self) -> None:
        """Start counting again."""
        self.n = 0

    def close(self) -> None:
        """Nothing to release."""


#: Said when a folder that is not a dataset holds image files: a user's own images.
OWN_IMAGES_HINT = (" For your own images (TIFF stacks, PNG, JPEG...), open them with File > "
                   "Open and segment them in the 'Segment image layer' dock.")


def _holds_own_images(path: str) -> bool:
    """Whether ``path`` is a folder holding image files directly (not a DSB2018 dataset)."""
    from napari_nuclei_unet.core.stacks import is_image_file

    folder = Path(path)
    if not folder.is_dir():
        return False
    try:
        return any(is_image_file(p) for p in folder.iterdir())
    except OSError:
        return False


def _open_dataset(
    path: str, should_stop: Any = None
) -> Generator[Any, None, tuple[DSBDataset, dict[str, str] | None] | None]:
    """Open ``path`` as a dataset (runs in a worker, yields ``Progress("index", ...)``).

    Returns the dataset and its samples' file fingerprints (``DSBDataset.fingerprints``,
    which ``Session.set_dataset`` checks kept results against: 670 samples take
    0.25-0.6 s, here rather than on the main thread), or None when ``should_stop()``
    became true (the user pressed Cancel).
    """
    from napari_nuclei_unet.core.dataset import DatasetError, DSBDataset

    if not Path(path).exists():
        raise DatasetError(f"{path} does not exist. {LAYOUT_HINT}")
    try:
        dataset = yield from DSBDataset.iter_open(path, should_stop=should_stop)
    except DatasetError as exc:
        own = OWN_IMAGES_HINT if _holds_own_images(path) else ""
        if "/images/" in str(exc):  # the message already describes the layout
            if not own:
                raise
            raise DatasetError(f"{exc}{own}") from exc
        raise DatasetError(f"{exc} {LAYOUT_HINT}{own}") from exc
    if dataset is None and stop_requested(should_stop):
        return None
    if dataset is None or len(dataset) == 0:
        raise DatasetError(f"{path} contains no readable DSB2018 sample. {LAYOUT_HINT}")
    try:
        stamps = dataset.fingerprints(dataset.ids())
    except OSError:  # the folder went away meanwhile: the session takes them itself
        stamps = None
    return dataset, stamps


def _load_all_stamped(dataset: DSBDataset, should_stop: Any = None
                      ) -> Generator[Any, None, tuple[list, dict[str, str], dict[str, str]]]:
    """``dataset.iter_load``; the loaded samples' fingerprints; new failures (id: why).

    Runs in a worker: the fingerprints (about 0.3 ms a sample) are not taken on the
    main thread, where the session keeps them (``Session.sample_stamps``). The
    failures are returned, not warned: Python's warning hooks are shared by threads,
    and a warning raised while another job ran could reach the terminal instead.
    """
    samples = yield from dataset.iter_load(should_stop=should_stop, warn_failures=False)
    return samples, dataset.fingerprints([s.id for s in samples]), dict(dataset.new_failures)


def failure_list(failures: dict[str, str], limit: int = 5) -> str:
    """The samples that failed to decode (id: why) as lines to append to a message."""
    from napari_nuclei_unet.core.dataset_layout import _report  # the core's own lists

    if not failures:
        return ""
    reasons = [f"{sample_id}: {why}" for sample_id, why in failures.items()]
    return "\n" + _report("These could not be read", reasons, limit=limit)


def load_sample_then(session: Any, sample_id: str, then: Any) -> Any:
    """Load ``sample_id`` of the session's open dataset in a worker, then ``then(sample)``.

    The sample is added to ``session.samples`` first (decoded once, for every dock).
    Nothing happens when another dataset was opened meanwhile. For the docks that show
    an image of the dataset not loaded yet (the Scores panel, the Retrain dock's saved
    corrections); the Data dock has its own, with its failures and its one worker.

    Returns
    -------
    WorkerBase or None
        The worker; None when no dataset is open or the session refused the job.
    """
    from napari_nuclei_unet.widgets._layers import short_id

    dataset = session.dataset
    if dataset is None:
        return None

    def loaded(sample: Any) -> None:
        if dataset is session.dataset:
            session.add_samples([sample])
            then(sample)

    return session.jobs.start("load sample", dataset.load, sample_id, on_returned=loaded,
                              action=f"Loading image {short_id(sample_id)}", refuse=False)
