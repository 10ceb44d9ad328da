"""Corrections from a user's own files: an image and its corrected label image.

``nuclei-unet predict`` writes ``NAME_labels.tif`` next to nothing but its own output; a
user who corrects it (in napari, Fiji, ...) and puts it beside the image ``NAME.tif``
has a *labelled pair*. :func:`add_labelled_image` stores each plane of such a pair in a
fine-tuning project exactly as the Segment dock's "Add plane to fine-tuning project"
does (same ids, ``NAME-planeN``), so the command line and the docks share one project.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..imageio import IMAGE_FILE_SUFFIXES
from ._common import FinetuneError, safe_sample_id

#: What a label image's name adds to its image's name (``cells.tif`` -> ``cells_labels.tif``),
#: as ``nuclei-unet predict`` names its output.
LABELS_SUFFIX = "_labels"
#: Suffixes a label image may have.
LABEL_FILE_SUFFIXES = (".tif", ".tiff", ".png")


def labelled_pairs(folder: str | os.PathLike) -> list[tuple[Path, Path]]:
    """The ``(image, labels)`` files of a folder: ``NAME.<ext>`` beside ``NAME_labels.<ext>``.

    Parameters
    ----------
    folder : str or os.PathLike
        A folder of images and label images.

    Returns
    -------
    list of (Path, Path)
        Sorted by image name; images without a label image are not listed (see
        :func:`unlabelled_images`).
    """
    return pair_up(folder).pairs


def unlabelled_images(folder: str | os.PathLike) -> list[Path]:
    """The images of a folder that have no ``NAME_labels`` file beside them, sorted."""
    return pair_up(folder).unlabelled


def orphan_label_images(folder: str | os.PathLike) -> list[Path]:
    """The ``NAME_labels`` files of a folder whose image ``NAME`` is not beside them, sorted."""
    return pair_up(folder).orphans


class FolderPairs(NamedTuple):
    """What :func:`pair_up` finds in a folder, each sorted by name."""

    pairs: list[tuple[Path, Path]]  # (image, label image)
    unlabelled: list[Path]  # images without a label image
    orphans: list[Path]  # label images without their image


def pair_up(folder: str | os.PathLike) -> FolderPairs:
    """The pairs, images without labels and labels without images of a folder (one scan).

    An image's labels are named after its output name (``embryo.ome.tif`` ->
    ``embryo_labels.tif``, as ``nuclei-unet predict`` names them) or after its whole stem
    (``embryo.ome_labels.tif``); a ``.zarr`` folder is an image too.

    Raises
    ------
    FinetuneError
        When an image has a label image under both names (which one is the
        correction?), or two images claim one label image, or two images or label
        images differ only in case.
    """
    from ..stacks import stack_name

    entries: dict[str, Path] = {}
    for p in sorted(Path(folder).iterdir()):
        if not (p.is_file() or (p.is_dir() and p.suffix.lower() == ".zarr")):
            continue
        other = entries.setdefault(p.name.lower(), p)
        if other is not p and os.path.splitext(p.name.lower())[1] in (
                *IMAGE_FILE_SUFFIXES, *LABEL_FILE_SUFFIXES, ".zarr"):
            # one of the two was left out without a word (review h_rev22, L1)
            raise FinetuneError(
                f"{other.name} and {p.name} differ only in upper and lower case, which "
                "labels are matched without: rename one of them (on Windows and macOS "
                "they would even be the same file).")
    pairs, alone, claimed = [], [], {}
    for name, path in sorted(entries.items()):
        stem, suffix = os.path.splitext(name)
        if (suffix not in IMAGE_FILE_SUFFIXES + (".zarr",) or (suffix == ".zarr") != path.is_dir()
                or LABELS_SUFFIX in (stem[-len(LABELS_SUFFIX):],
                                     stack_name(name)[-len(LABELS_SUFFIX):])):
            continue  # not an image, or labels (predict's cells_labels.ome.zarr too)
        found = [c for c in dict.fromkeys(
            f"{base}{LABELS_SUFFIX}{s}" for base in (stack_name(name), stem)
            for s in LABEL_FILE_SUFFIXES) if c in entries and entries[c].is_file()]
        if len(found) > 1:
            raise FinetuneError(
                f"{path.name} has {len(found)} label images beside it "
                f"({', '.join(entries[c].name for c in found)}): keep only the corrected one.")
        if not found:
            alone.append(path)
            continue
        if found[0] in claimed:
            raise FinetuneError(
                f"{claimed[found[0]].name} and {path.name} would both take "
                f"{entries[found[0]].name} as their labels: keep one of the two images here.")
        claimed[found[0]] = path
        pairs.append((path, entries[found[0]]))
    orphans = [path for name, path in sorted(entries.items())
               if name not in claimed and path.is_file()
               and os.path.splitext(name)[1] in LABEL_FILE_SUFFIXES
               and os.path.splitext(name)[0].endswith(LABELS_SUFFIX)]
    return FolderPairs(pairs, alone, orphans)


class UnreadableFile(FinetuneError):
    """A label image cannot be read at all (corrupt, cut short): the file's fault, no setting's.

    Scoring a folder of pairs (``evaluate``, ``info``) skips such a pair with a note, as a
    DSB2018 dataset's bad sample is skipped (README check h_readme1, M2).
    """


def _unreadable_labels(path: Path, exc: Exception) -> FinetuneError:
    return UnreadableFile(f"{path} cannot be read as a label image ({exc or 'cut short'}); "
                         "the file may be corrupt or cut short (an interrupted copy): replace it "
                         "with a fresh copy.")


def _read_labels(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A label image of exactly ``shape`` (checked before its pixels are read)."""
    if path.suffix.lower() == ".png":
        from PIL import Image

        from ..imageio import check_image_size

        check_image_size(path.read_bytes(), name=str(path))
        try:
            with Image.open(path) as image:
                found: tuple[int, ...] = (image.height, image.width)
                if found == tuple(shape):
                    data = np.asarray(image)
        except (OSError, ValueError, SyntaxError) as exc:  # "image file is truncated"
            raise _unreadable_labels(path, exc) from exc
    else:
        import tifffile

        from ..tiff_checks import tifffile_log

        try:  # tifffile's raw log lines ("<TiffTag.fromfile> raised ...") not printed, even
            with tifffile_log(), tifffile.TiffFile(path) as tif:  # under -q (h_rev30, L8)
                series = tif.series[0]
                found = tuple(int(n) for n in series.shape)
                ones = _size_one_axes(found, tuple(shape))  # a channel axis kept at size 1
                if found == tuple(shape) or ones:  # (napari's Save of lined-up labels:
                    data = series.asarray()        # review h_rev24, M6)
                    data, found = data.reshape(shape) if ones else data, tuple(shape)
        except (tifffile.TiffFileError, OSError, ValueError, IndexError, struct.error) as exc:
            raise _unreadable_labels(path, exc) from exc
    if found != tuple(shape):
        raise FinetuneError(
            f"{path.name} is {' x '.join(map(str, found))} but its image needs labels of "
            f"{' x '.join(map(str, shape))} (the image's shape without its channels): a "
            "label image must match its image pixel for pixel.")
    if data.ndim == len(shape) and data.dtype.kind == "f":
        data = _whole_float_labels(data, path.name)
    if data.ndim != len(shape) or not np.issubdtype(data.dtype, np.integer):
        raise FinetuneError(
            f"{path.name} is not a label image (one whole number per nucleus, 0 = "
            f"background): it holds {data.dtype} values.")
    return data


def _differs(store: Any, sample_id: str, labels: np.ndarray) -> bool:
    """Whether ``labels`` are other nuclei than the stored correction's (unreadable: yes).

    Another image of the same file name (``cells.tif`` of another experiment) replaced a
    careful correction with no copy kept.
    """
    try:
        old = store.load_labels(sample_id)
    except (OSError, ValueError, KeyError, FinetuneError):
        return True
    return old.shape != labels.shape or not np.array_equal(old > 0, labels > 0) or \
        len(np.unique(old)) != len(np.unique(labels))


def _size_one_axes(found: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Whether ``found`` is ``shape`` with one more axis of size 1 (before Y and X).

    Labels the Segment dock lined up over a channel stack (``ZCYX``: ``Z x 1 x Y x X``)
    and saved with napari's own File > Save are such labels.
    """
    if len(found) != len(shape) + 1:
        return False
    return any(found[at] == 1 and found[:at] + found[at + 1:] == shape
               for at in range(len(found) - 2))


def _whole_float_labels(data: np.ndarray, name: str) -> np.ndarray:
    """Float labels that hold whole numbers (as Fiji saves them) as integers.

    Raises FinetuneError, in plain words, when they do not: a probability map or a
    smoothed image is not a label image.
    """
    finite = np.isfinite(data)
    if not finite.all():
        raise FinetuneError(
            f"{name} is not a label image (one whole number per nucleus, 0 = background): "
            f"it holds {data.dtype} values, some of them not numbers (NaN or infinite).")
    if data.size and (data.min() < 0 or data.max() > np.iinfo(np.int32).max
                      or not np.array_equal(data, np.floor(data))):
        example = data[data != np.floor(data)]
        detail = (f"e.g. {float(example.flat[0]):g}" if example.size
                  else f"from {float(data.min()):g} to {float(data.max()):g}")
        raise FinetuneError(
            f"{name} is not a label image (one whole number per nucleus, 0 = background): "
            f"it holds {data.dtype} values that are not whole numbers from 0 up ({detail}). "
            "A probability map or a smoothed image cannot stand for corrected labels.")
    return data.astype(np.int32)


def add_labelled_image(store: Any, image: str | os.PathLike, labels: str | os.PathLike, *,
                       axes: str | None = None, channel: int | None = None) -> list[Any]:
    """Store every plane of an image and its corrected label image as corrections.

    Parameters
    ----------
    store : CorrectionStore
        The fine-tuning project.
    image, labels : str or os.PathLike
        The image (any file :func:`~napari_nuclei_unet.core.stacks.open_stack` reads)
        and its label image (TIFF or PNG, integer labels, the image's shape without
        its channel axis: what ``nuclei-unet predict`` writes).
    axes : str, optional
        The image's axes when its file does not say them.
    channel : int, optional
        The nuclear channel of a multi-channel image.

    Returns
    -------
    list of Correction
        One per plane, ids ``NAME-plane0``, ``NAME-plane1``... (as the Segment dock
        names the planes it adds); a correction of the same id is replaced.

    Raises
    ------
    FinetuneError
        When the label image does not fit the image or holds no labels.
    ImageFileError
        When the image cannot be read as asked (axes, channel).
    """
    from ..stacks import open_stack

    stack = open_stack(image, axes)
    chosen = stack.check_channel(channel)
    try:
        label_data = _read_labels(Path(labels), stack.labels_shape)
    except FinetuneError as exc:
        if not stack.doubtful_rgb or isinstance(exc, UnreadableFile):
            raise
        raise FinetuneError(f"{exc} {stack.doubtful_rgb_note(Path(image).name)}") from None
    added, stored = [], set(store.ids())
    for flat in range(stack.n_planes):
        plane_labels, binary = numbered(np.asarray(label_data[stack.plane_index(flat)]))
        sample_id = safe_sample_id(f"{stack.name}-{stack.plane_name(flat)}")
        if sample_id in stored and _differs(store, sample_id, plane_labels):
            store.keep_copy(sample_id)  # as the Segment dock keeps one (review h_rev24, M2)
        added.append(store.add(sample_id, np.asarray(stack.plane(flat, chosen)),
                               plane_labels, source="label",
                               note=f"from {Path(labels).name}" + (BINARY_NOTE if binary
                                                                   else "")))
    return added


#: Added to a correction's note when its label image was a binary mask.
BINARY_NOTE = " (a binary mask: its separate regions counted as nuclei)"


def numbered(labels: np.ndarray) -> tuple[np.ndarray, bool]:
    """``labels`` with one number per nucleus; whether it was a binary mask, numbered here.

    A binary mask (one value over several separate regions: Fiji's Convert to Mask, any
    threshold) was read as a single nucleus: a DSB score of 0 and a round taught that
    forty nuclei are one (review h_rev15, H5). Its separate regions are numbered instead
    (4-connected, as ``--instances components``); touching nuclei stay one.
    """
    from scipy import ndimage

    values = np.unique(labels)
    if np.count_nonzero(values) != 1:
        return labels, False
    regions, count = ndimage.label(labels != 0)
    if count < 2:
        return labels, False
    return regions.astype(np.int32), True
