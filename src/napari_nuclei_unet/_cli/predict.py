"""``nuclei-unet predict MODEL INPUT --out DIR``: one mask file per image.

Every image is segmented by ``core.segment.segment_image`` with ``--diameter``
(``auto``, the default; ``native``: no resizing; or pixels) and ``--tta``, as the
own-image path does. TIFF stacks, multi-channel and large images (and ``--channel``,
``--axes``, ``--scheduler``...) go to :mod:`.predict_own`: labels TIFF + measurements
CSV per file.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from .data import find_images
from .diameter import NATIVE, diameter_in_pixels
from .progress import ProgressBars, note


def check_threshold(value: float) -> float:
    """Return ``value`` if it is a probability threshold, else raise a plain ValueError."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            f"--threshold must be between 0 and 1 (a foreground probability), got {value}."
        )
    return value


def mask_file_name(image_id: str, fmt: str) -> str:
    """File name of the mask of ``image_id`` (``<id>.png`` or ``<id>.tif``)."""
    return f"{image_id}.{fmt}"


def write_mask(path: Path, array: Any, fmt: str) -> None:
    """Write a mask or label image atomically (temporary file, then rename).

    Parameters
    ----------
    path : pathlib.Path
        Destination.
    array : numpy.ndarray
        ``(H, W)`` uint8 0/255 mask, or integer labels (written as 16-bit, or 32-bit TIFF
        when there are more than 65535 nuclei).
    fmt : {"png", "tif"}
        File format.

    Raises
    ------
    ValueError
        For more than 65535 labels in a PNG.
    """
    import numpy as np

    array = np.asarray(array)
    if array.dtype != np.uint8:
        top = int(array.max()) if array.size else 0
        if top <= np.iinfo(np.uint16).max:
            array = array.astype(np.uint16)
        elif fmt == "png":
            raise ValueError(
                f"{path.name}: {top} nuclei do not fit in a 16-bit PNG; use --format tif."
            )
        else:
            array = array.astype(np.uint32)
    from napari_nuclei_unet.core.atomic import plain_os_error

    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".{fmt}", dir=path.parent)
    except OSError as exc:  # named by the user's file, not by the hidden temporary one
        raise plain_os_error(exc, path) from exc
    os.close(fd)
    try:
        if fmt == "png":
            from PIL import Image

            Image.fromarray(array).save(tmp, format="PNG")
        else:
            import tifffile

            tifffile.imwrite(tmp, array, compression="zlib")
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise plain_os_error(exc, path) from exc
        raise


def run(args: argparse.Namespace) -> int:
    """Segment every image of INPUT and write the masks (and a submission CSV).

    Parameters
    ----------
    args : argparse.Namespace
        ``model``, ``input``, ``out``, ``threshold``, ``instances``, ``format``,
        ``submission``, ``overwrite``, ``device``, ``quiet`` and the own-image options
        (see :func:`.predict_own.wants_own_images`).

    Returns
    -------
    int
        0.
    """
    check_threshold(args.threshold)
    from .predict_own import run_own, wants_own_images

    if wants_own_images(args):
        return run_own(args)
    options = dataset_options(args)
    images = find_images(args.input)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; give a folder for the masks.")
    fmt = args.format or "png"
    targets = {item.id: out / mask_file_name(item.id, fmt) for item in images}
    existing = [p for p in targets.values() if p.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(
            f"{len(existing)} mask file(s) already exist in {out} (e.g. {existing[0].name}); "
            "they may hold edited masks, so nothing was written. Choose another --out, or "
            "add --overwrite to replace them."
        )
    if args.submission and Path(args.submission).exists() and not args.overwrite:
        raise FileExistsError(
            f"Submission file {args.submission} already exists; choose another name or add "
            "--overwrite."
        )

    import numpy as np

    from ..bioimageio.load import load_any_model
    from ..core.dataset import DatasetError
    from ..core.device import configure_cpu_threads, resolve_device
    from ..core.instances import labels_from_probability
    from ..core.progress import Progress
    from ..core.segment import segment_image

    device = resolve_device(args.device)
    loaded = load_any_model(args.model, device=device)  # checkpoint or bioimage.io
    if device.type == "cpu":
        configure_cpu_threads()  # physical cores: hyper-threads slow convolutions down
    options = dataset_options(args, loaded.model)
    out.mkdir(parents=True, exist_ok=True)
    submission: dict[str, np.ndarray] = {}
    n_nuclei = 0
    diameters: list[float] = []
    resized = 0
    with ProgressBars(quiet=args.quiet) as bars:
        skipped = []
        for done, item in enumerate(images, start=1):
            try:
                image = item.read()
            except DatasetError as exc:  # one bad file must not stop the others
                skipped.append(exc)
                note(f"skipped {item.name}: {' '.join(str(exc).split())}", quiet=args.quiet)
                continue
            result = segment_image(loaded.model, image, options, device=device)
            prob = result.probability
            diameters.append(result.diameter)
            resized += result.scale != 1.0
            labels = result.labels  # split as segment_image splits them
            if args.instances == "components":
                labels = labels_from_probability(prob, threshold=args.threshold,
                                                 method="components")
            if args.instances != "none":
                write_mask(targets[item.id], labels, fmt)
                n_nuclei += int(labels.max())
            else:
                mask = (prob > args.threshold).astype(np.uint8) * 255
                write_mask(targets[item.id], mask, fmt)
            if args.submission:
                submission[item.id] = labels
            bars(Progress("predict", done, len(images), item.id))
    if len(skipped) == len(images):
        if len(images) == 1:
            raise skipped[0]
        raise DatasetError(f"None of the {len(images)} images in {args.input} could be read; "
                           f"the first: {skipped[0]}")
    what = "label image" if args.instances != "none" else "mask"
    print(f"Wrote {counted(len(images) - len(skipped), what)} to {out}"
          + (f" ({counted(n_nuclei, 'nucleus', 'nuclei')})" if args.instances != "none"
             else ""))
    if args.submission:
        from ..core.rle import write_submission_csv

        path = write_submission_csv(args.submission, submission)
        n_rows = sum(max(1, len(np.unique(v)) - 1) for v in submission.values())
        print(f"Wrote submission {path} ({counted(len(submission), 'image')}, "
              f"{counted(n_rows, 'row')})")
    size = size_note(options, diameters, resized, native=is_native(args))
    note(f"model: {loaded.path}; {size}", quiet=args.quiet)
    return 0


def dataset_options(args: argparse.Namespace, model: Any = None) -> Any:
    """The ``SegmentOptions`` of ``--diameter``, ``--tta`` and ``--threshold``.

    ``--diameter native`` is the training diameter of ``model`` (no resizing); without
    a model (values checked before it is loaded) it stands in as automatic.
    """
    from ..core.segment import SegmentOptions

    diameter = args.diameter
    if diameter == NATIVE and model is None:
        diameter = 0.0
    diameter = diameter_in_pixels(diameter, model)  # a bad --diameter says so plainly
    try:
        return SegmentOptions(diameter=diameter, threshold=args.threshold, tta=args.tta)
    except ValueError as exc:
        raise ValueError(f"{exc} (--threshold)") from None


def is_native(args: argparse.Namespace) -> bool:
    """Whether ``--diameter native`` was given (segment the images as they are)."""
    return getattr(args, "diameter", 0.0) == NATIVE


def counted(n: int, word: str, plural: str | None = None) -> str:
    """``n`` and ``word`` in the right number: "1 mask", "3 masks", "1 nucleus"."""
    return f"{n} {word if n == 1 else plural or word + 's'}"


def size_note(options: Any, diameters: list[float], resized: int, *,
              native: bool = False) -> str:
    """Plain words for the nucleus diameter used (e.g. "automatic diameter, median 21 px").

    ``native``: ``--diameter native`` was given (``options.diameter`` is the model's
    training diameter, so nothing was resized).
    """
    import statistics

    tta = ", TTA" if options.tta else ""
    if native:
        return (f"native scale, no resizing (the model's nucleus diameter, "
                f"{options.diameter:g} px){tta}")
    if options.diameter:
        return f"nucleus diameter {options.diameter:g} px{tta}"
    if not diameters:
        return f"automatic nucleus diameter{tta}"
    return (f"automatic nucleus diameter (median estimate {statistics.median(diameters):.0f} "
            f"px; {resized} of {len(diameters)} image(s) resized){tta}")
