"""Finding and loading the commands' inputs: labelled datasets and images to segment."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.dataset_layout import is_sample_folder
from ..core.imageio import IMAGE_FILE_SUFFIXES
from .progress import ProgressBars, first_names, note


def is_dataset_folder(path: str | Path) -> bool:
    """Whether ``path`` is a DSB2018 sample folder or a folder of them."""
    from ..core.dataset_layout import is_dataset_folder as holds_samples

    return Path(path).is_dir() and (is_sample_folder(path) or holds_samples(path))


def open_dataset(path: str, *, quiet: bool = False) -> Any:
    """Open a DSB2018-style dataset, telling the user about the samples skipped.

    Parameters
    ----------
    path : str
        Dataset folder, ``.zip`` or sample folder.
    quiet : bool
        Do not print the skipped-sample notes.

    Returns
    -------
    DSBDataset

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    DatasetError
        When it is not a dataset, or holds no readable sample.
    """
    import warnings

    from ..core.dataset import DSBDataset, check_not_dangling
    from ..core.imageio import DatasetWarning

    check_not_dangling(path)
    if not Path(path).exists():
        raise FileNotFoundError(
            f"{path} does not exist: give a DSB2018 dataset folder (like stage1_train), "
            "its .zip, or one sample folder (<id>/images/<id>.png + <id>/masks/*.png)."
        )
    with warnings.catch_warnings():
        # The skipped samples are listed below, shorter than the warning would.
        warnings.simplefilter("ignore", DatasetWarning)
        dataset = DSBDataset.open(path)
    for sample_id, reason in dataset.skipped[:5]:
        note(f"skipped {sample_id}: {' '.join(str(reason).split())}", quiet=quiet)
    if len(dataset.skipped) > 5:
        note(f"... and {len(dataset.skipped) - 5} more samples skipped "
             f"(see 'nuclei-unet info {path}')", quiet=quiet)
    stray = dataset.stray_files
    if stray:
        note(f"ignored {len(stray)} file(s) that are neither a sample's image nor a mask PNG: "
             f"{first_names(stray)}", quiet=quiet)
    return dataset


def load_samples(dataset: Any, *, quiet: bool = False, should_stop: Any = None,
                 ids: list[str] | None = None, skipped_notes: bool = True) -> list:
    """Decode every sample of a dataset with a progress bar on stderr.

    Parameters
    ----------
    dataset : DSBDataset
        An opened dataset.
    quiet : bool
        No bar.
    should_stop : callable, optional
        Cooperative stop check, passed to :meth:`DSBDataset.iter_load`.
    ids : list of str, optional
        Decode only these samples (default: all).
    skipped_notes : bool
        Print a note naming the samples that failed to decode (False when the caller
        lists ``dataset.skipped`` itself, as ``info`` does).

    Returns
    -------
    list of Sample
    """
    import warnings

    from ..core.imageio import DatasetWarning, SkippedSamplesWarning
    from ..core.progress import drive

    with warnings.catch_warnings(record=True) as caught, ProgressBars(quiet=quiet) as bars:
        warnings.simplefilter("always", DatasetWarning)
        samples = drive(dataset.iter_load(ids, should_stop=should_stop), bars)
    for warning in caught:
        if issubclass(warning.category, SkippedSamplesWarning) and not skipped_notes:
            continue
        if issubclass(warning.category, DatasetWarning):
            note(f"note: {' '.join(str(warning.message).split())}", quiet=quiet)
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)
    return samples


@dataclass(frozen=True)
class ImageInput:
    """One image to segment.

    Attributes
    ----------
    id : str
        Output name (the image id: the sample folder name or the file stem).
    source : str or bytes
        Path of the file (of the zip, when ``member`` is set), or its content.
    name : str
        How to name it in messages.
    member : str, optional
        The member of the zip ``source`` holding the image; read (size-checked) only
        when :meth:`read` is called, so a large zip is never held in memory at once.
    sample : bool
        The image of a DSB2018 sample folder (``<id>/images/``), not a plain file.
    """

    id: str
    source: Any
    name: str
    member: str | None = None
    sample: bool = False

    def read(self) -> Any:
        """Decode the image as ``(H, W, 3)`` uint8 (raises ``DatasetError``)."""
        from ..core.dataset import read_image

        return read_image(self.read_bytes(), name=self.name, sample=self.sample)

    def read_bytes(self) -> Any:
        """The file's content (a zip member is read here), or its path."""
        if self.member is None:
            return self.source
        from ..core.dataset import DatasetError, read_zip_member

        try:
            archive = zipfile.ZipFile(self.source)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DatasetError(f"{self.source} is not a readable zip file ({exc}).") from exc
        with archive:
            return read_zip_member(archive, self.member, where=str(self.source))


def _is_image_file(path: Path) -> bool:
    from ..core.imageio import is_junk_name

    return (path.is_file() and path.suffix.lower() in IMAGE_FILE_SUFFIXES
            and not is_junk_name(path.name))


def is_labels_or_result(path: str | Path) -> bool:
    """Whether a file of a folder of images is a label image or a ``predict`` result.

    ``NAME_labels.tif`` / ``.tiff`` / ``.png`` (the fine-tuning layout's corrected
    labels), ``NAME_labels.ome.zarr`` and ``NAME_measurements.csv`` (what ``predict``
    writes) are not images to segment.
    """
    from ..core.finetune.own import LABEL_FILE_SUFFIXES, LABELS_SUFFIX
    from ..core.own_images import output_paths
    from ..core.stacks import stack_name

    path = Path(path)
    name = path.name.lower()
    if any(name.endswith(result.name.lower()) for result in output_paths(".", "").values()):
        return True
    return (path.suffix.lower() in LABEL_FILE_SUFFIXES
            and stack_name(path).lower().endswith(LABELS_SUFFIX))


def left_out_note(left_out: list[Path], *, quiet: bool = False) -> None:
    """Say which label images / earlier results of a folder of images were left out."""
    if not left_out:
        return
    note(f"note: left out {len(left_out)} label image(s) or earlier result(s), which are not "
         f"images to segment: {first_names([p.name for p in left_out])}", quiet=quiet)


def _sample_image(folder: Path, skipped: list[str] | None = None) -> Path | None:
    """The image of a DSB sample folder, chosen exactly as ``info`` and training choose it.

    ``<id>/images/<id>.png``, or the only image there; several images and none named
    after the folder is ambiguous: the folder is added to ``skipped`` with the reason.
    """
    from ..core.dataset_layout import _pick_image

    images = folder / "images"
    if not images.is_dir():
        return None
    try:
        names = [p.name for p in images.iterdir() if _is_image_file(p)]
    except OSError as exc:
        if skipped is not None:
            skipped.append(f"{folder}: cannot list images/ ({exc.strerror or exc})")
        return None
    chosen, reason, _ = _pick_image(folder.name, names)
    if chosen is None:
        if skipped is not None and names:
            skipped.append(f"{folder.name}: {reason} ({images})")
        return None
    return images / chosen


def _zip_images(path: Path, skipped: list[str]) -> list[ImageInput]:
    """The images of a DSB2018 zip, its samples found as the dataset reader finds them."""
    from ..core.dataset import zip_samples

    images, left_out = zip_samples(path, require_masks=False)
    skipped += [f"{sample_id}: {reason}" for sample_id, reason in left_out]
    return [ImageInput(sample_id, str(path), f"{path}:{member}", member, sample=True)
            for sample_id, member in images.items()]


def _nothing_found(path: str, root: Path, skipped: list[str], vendor: list[str]) -> str:
    """The error for a place with no image to segment, each skipped file said once.

    One skipped file is said in the error, several in the notes above it, and a folder
    of microscope makers' files alone gets their advice once for all of them (review
    h_rev16, L11: the first skip line used to be printed, then repeated in the error).
    """
    if vendor and len(vendor) == len(skipped):
        from ..core.tiff_checks import export_advice

        return (f"No image found in {path}: it holds only microscope makers' files "
                f"({first_names(vendor)}), which are not read here. "
                f"{export_advice(len(vendor))}")
    if len(skipped) == 1:
        detail = f" ({skipped[0]})"
    elif skipped:
        detail = f" ({len(skipped)} skipped: see above)"
    elif (root / "images").is_dir():
        detail = f" (your images may be in {root / 'images'}: give that folder)"
    else:
        detail = ""
    return (f"No image found in {path}{detail}: expected an image file "
            f"({', '.join(IMAGE_FILE_SUFFIXES)}), a folder of images, or DSB2018 sample "
            "folders <id>/images/<id>.png.")


def find_images(path: str, *, quiet: bool = False) -> list[ImageInput]:
    """List the images to segment in ``path``.

    Parameters
    ----------
    path : str
        One of: an image file; a DSB2018 ``.zip``; one sample folder
        (``<id>/images/<id>.png``); a dataset folder of sample folders (masks are not
        needed, so ``stage1_test`` works); a folder of image files.
    quiet : bool
        Do not print the notes about skipped sample folders.

    Returns
    -------
    list of ImageInput
        Sorted by id; ids are unique. Sample folders whose image is ambiguous (several
        images, none named after the folder: ``info`` rejects them too) are skipped
        with a note on stderr.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    DatasetError
        When no image is found, or two images would be written under the same name.
    """
    from ..core.dataset import DatasetError, check_not_dangling
    from ..core.imageio import check_regular_file
    from ..core.tiff_checks import vendor_format_words

    root = Path(path)
    check_not_dangling(root)
    if not root.exists():
        raise FileNotFoundError(
            f"{path} does not exist: give an image file, a folder of images, a sample "
            "folder or a DSB2018 dataset folder or .zip." + swapped_words(path))
    skipped: list[str] = []
    if not root.is_dir():
        check_regular_file(root, what="image file or .zip")  # a FIFO would hang
    if root.is_file() and root.suffix.lower() == ".zip":
        inputs = _zip_images(root, skipped)
    elif root.is_file() and vendor_format_words(root):
        raise DatasetError(vendor_format_words(root))
    elif root.is_file():
        inputs = [ImageInput(root.stem, str(root), str(root))]
    elif is_sample_folder(root):
        image = _sample_image(root, skipped)
        inputs = [ImageInput(root.name, str(image), str(image), sample=True)] if image else []
    else:
        inputs, left_out, vendor = [], [], []
        for child in sorted(root.iterdir()):
            if child.is_dir() and is_sample_folder(child):
                image = _sample_image(child, skipped)
                if image is not None:
                    inputs.append(ImageInput(child.name, str(image), str(image), sample=True))
            elif _is_image_file(child) and is_labels_or_result(child):
                left_out.append(child)
            elif _is_image_file(child):
                inputs.append(ImageInput(child.stem, str(child), str(child)))
            elif vendor_format_words(child):
                skipped.append(str(vendor_format_words(child)))
                vendor.append(child.name)
        left_out_note(left_out, quiet=quiet)
    said_in_error = not inputs and (len(skipped) < 2 or len(vendor) == len(skipped))
    quiet_skips = quiet and bool(inputs)  # else the error says "see above" (h_rev19, L1)
    for line in [] if said_in_error else skipped[:5]:
        note(f"skipped {line}", quiet=quiet_skips)
    if len(skipped) > 5 and not said_in_error:
        note(f"... and {len(skipped) - 5} more skipped", quiet=quiet_skips)
    if not inputs:
        raise DatasetError(_nothing_found(path, root, skipped, vendor))
    seen: dict[str, str] = {}
    for item in inputs:
        if item.id in seen:
            raise DatasetError(
                f"Two images in {path} have the same name {item.id!r} ({seen[item.id]} and "
                f"{item.name}); their masks would overwrite each other. Rename one."
            )
        seen[item.id] = item.name
    return sorted(inputs, key=lambda item: item.id)


def swapped_words(path: str | Path) -> str:
    """A hint when a model was given where the images go ("" otherwise).

    ``predict cells.tif default``: "default does not exist: give an image file" did not
    say that the model comes first (CLI check h_cli2).
    """
    text = str(path)
    if text in ("default", "latest") or text.lower().endswith(".safetensors"):
        return (f" {text} is a model: the model comes first, then the images, e.g. "
                f"nuclei-unet predict {text} IMAGES --out DIR.")
    return ""
