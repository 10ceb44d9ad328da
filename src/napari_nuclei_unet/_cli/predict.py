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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .data import find_images
from .diameter import NATIVE, diameter_in_pixels
from .progress import ProgressBars, note, note_weights


def check_threshold(value: float) -> float:
    """Return ``value`` if it is a probability threshold, else raise a plain ValueError.

    The rule is ``core.segment.SegmentOptions``'s own (strictly between 0 and 1: 0 would
    make every pixel a nucleus, 1 none), said once, in the option's words.
    """
    from ..core.segment import SegmentOptions

    try:
        SegmentOptions(threshold=value)
    except ValueError:
        raise ValueError(
            f"--threshold must be strictly between 0 and 1 (a foreground probability, "
            f"such as 0.5), got {value:g}.") from None
    return value


def mask_file_name(image_id: str, fmt: str) -> str:
    """File name of the mask of ``image_id`` (``<id>.png`` or ``<id>.tif``)."""
    return f"{image_id}.{fmt}"


def check_targets(out: Path, targets: Iterable[Path], inputs: Iterable[Any], *,
                  overwrite: bool, what: str, kept: str, can_skip: bool = True) -> None:
    """Refuse before anything is written: ``--out`` a file, an input hit, existing results.

    Parameters
    ----------
    out : pathlib.Path
        The ``--out`` folder.
    targets : iterable of pathlib.Path
        Every file (or folder) the command would write.
    inputs : iterable of path-like
        The input images (files or ``.zarr`` folders): no target may be one of them, or
        lie inside one, whatever ``overwrite`` says.
    overwrite : bool
        ``--overwrite``: existing results may be replaced.
    what : str
        What one target is, e.g. ``"mask file"``, ``"result file"``.
    kept : str
        What an existing target may hold, e.g. ``"edited masks"``.
    can_skip : bool, default True
        Whether the refusal may offer ``--skip-existing`` (not with ``--submission``,
        which refuses it).
    """
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; give a folder for the results.")
    targets = list(targets)
    hits = _inputs_hit(targets, inputs)
    if hits:
        target, image = hits[0]
        where = "into the image folder" if image.is_dir() else "over the image"
        count = f" ({len(hits)} images in all)" if len(hits) > 1 else ""
        raise FileExistsError(
            f"--out {out} is where the input images are: the result {target.name} would be "
            f"written {where} {image} itself{count}. Nothing was written (--overwrite never "
            "replaces an input image): choose another --out folder.")
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        skip = (" add --skip-existing to segment only the images without results (after a "
                "run that was stopped)," if can_skip else "")
        raise FileExistsError(
            f"{len(existing)} {what}(s) already exist in {out} (e.g. {existing[0].name}); "
            f"they may hold {kept}, so nothing was written. Choose another --out,{skip} "
            "or --overwrite to replace them.")  # (CLI check h_cli3, L2)


def _inputs_hit(targets: list[Path], inputs: Iterable[Any]) -> list[tuple[Path, Path]]:
    """The ``(target, input)`` pairs where a target is an input image or lies inside one.

    Paths are compared resolved, and existing files by identity too (a case-insensitive
    disk, a hard link or a symbolic link name one file in several ways).
    """
    files: dict[Path, Path] = {}
    identities: dict[tuple[int, int], Path] = {}
    folders: list[tuple[Path, Path]] = []
    for source in inputs:
        if not isinstance(source, (str, os.PathLike)):
            continue
        path = Path(source)
        resolved = path.resolve()
        files[resolved] = path
        if path.is_dir():
            folders.append((resolved, path))
        try:
            st = path.stat()
        except OSError:
            continue
        identities[(st.st_dev, st.st_ino)] = path
    hits = []
    for target in targets:
        resolved = target.resolve()
        image = files.get(resolved) or next(
            (path for folder, path in folders if resolved.is_relative_to(folder)), None)
        if image is None:
            try:
                st = target.stat()
            except OSError:
                continue
            image = identities.get((st.st_dev, st.st_ino))
        if image is not None:
            hits.append((target, image))
    return hits


def write_mask(path: Path, array: Any, fmt: str) -> None:
    """Write a mask or label image atomically (``core.atomic.atomic_write``, mode 0644).

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

    from ..core.atomic import atomic_write

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

    def write(tmp: Path) -> None:
        if fmt == "png":
            from PIL import Image

            Image.fromarray(array).save(tmp, format="PNG")
        else:
            import tifffile

            tifffile.imwrite(tmp, array, compression="zlib")

    atomic_write(path, write)


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
        0 once at least one image was segmented (those that cannot be read are skipped
        with a note).
    """
    check_threshold(args.threshold)
    if getattr(args, "scheduler", None):
        _absolute_paths(args)
    from ..core.locking import hold_output_folder

    with hold_output_folder(args.out):  # one predict at a time into a folder (h_cli3, H2)
        return _run(args)


def _absolute_paths(args: argparse.Namespace) -> None:
    """INPUT and --out as absolute paths, for a cluster's workers (MODEL: as loaded).

    The workers of ``--scheduler`` read and write in their own working folder: results
    went to the workers' folder while the command said it wrote them to ``--out``
    (CLI check h_cli3, H1). The model's checkpoint goes to them as the absolute path it
    was loaded from (``predict_own._model_reference``).
    """
    args.input, args.out = os.path.abspath(args.input), os.path.abspath(args.out)


def _run(args: argparse.Namespace) -> int:
    from .predict_own import run_own, wants_own_images

    if wants_own_images(args):
        return run_own(args)
    options = dataset_options(args)
    images = find_images(args.input, quiet=args.quiet)
    out = Path(args.out)
    fmt = args.format or "png"
    targets = {item.id: out / mask_file_name(item.id, fmt) for item in images}
    skip = getattr(args, "skip_existing", False)
    if skip:
        if args.submission:
            raise ValueError("--submission needs every image's nuclei, so it cannot be "
                             "written with --skip-existing: leave one of the two out.")
        # an input is never taken for its own result (review h_rev16, M1)
        check_targets(out, targets.values(), [item.source for item in images],
                      overwrite=True, what="mask file", kept="edited masks")
        images = done_already([i.id for i in images], lambda i: [targets[i]], images,
                              out, quiet=args.quiet)
        if not images:
            return 0
        targets = {item.id: targets[item.id] for item in images}
    check_targets(out, targets.values(), [item.source for item in images],
                  overwrite=args.overwrite or skip, what="mask file", kept="edited masks",
                  can_skip=not args.submission)
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
    note_weights(loaded)
    if device.type == "cpu":
        configure_cpu_threads()  # physical cores: hyper-threads slow convolutions down
    options = dataset_options(args, loaded.model)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    submission: dict[str, np.ndarray] = {}
    n_nuclei = 0
    diameters: list[float] = []
    resized = blurred = 0
    with ProgressBars(quiet=args.quiet) as bars:
        skipped = []
        for done, item in enumerate(images, start=1):
            try:
                image = item.read()
            except DatasetError as exc:  # one bad file must not stop the others
                skipped.append(DatasetError(" ".join(str(exc).split())))
                if len(images) > 1:  # one file: said once, as the error (h_cli1, L3)
                    note(f"skipped {item.name}: {skipped[-1]}", quiet=args.quiet)
                continue
            result = segment_image(loaded.model, image, options, device=device)
            prob = result.probability
            diameters.append(result.diameter)
            resized += result.scale != 1.0
            blurred += result.focus > 0.5
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
        if made and not any(out.iterdir()):  # no empty --out left behind (h_cli1, L3)
            out.rmdir()
        if len(images) == 1:
            raise skipped[0]
        raise DatasetError(f"None of the {len(images)} images in {args.input} could be read; "
                           f"the first: {skipped[0]}")
    what = "label image" if args.instances != "none" else "mask"
    print(f"Wrote {counted(len(images) - len(skipped), what)} to {out}"
          + (f" ({counted(n_nuclei, 'nucleus', 'nuclei')})" if args.instances != "none"
             else "") + skipped_words(len(skipped), args.quiet))
    if args.submission:
        from ..core.rle import write_submission_csv

        path = write_submission_csv(args.submission, submission)
        n_rows = sum(max(1, len(np.unique(v)) - 1) for v in submission.values())
        print(f"Wrote submission {path} ({counted(len(submission), 'image')}, "
              f"{counted(n_rows, 'row')})")
    size = size_note(options, diameters, resized, native=is_native(args))
    note(f"model: {loaded.path}; {size}", quiet=args.quiet)
    if blurred:
        note(f"{counted(blurred, 'image')} of {len(diameters)} looked out of focus: their "
             "nuclei were outlined tighter, at a higher threshold of the network's own "
             "(--no-focus keeps its 0.5; see the README, 'Out-of-focus images')",
             quiet=args.quiet)
    return 0


def done_already(names: list[str], results: Any, items: list, out: Path, *,
                 quiet: bool) -> list:
    """The ``items`` (one per name) whose results are not all in ``out`` yet (``--skip-existing``).

    ``results(name)`` lists the files that make an image's results; an interrupted run
    leaves none of them half written, so an image whose files are all there is done.
    Says how many are left out, or that nothing is left to do (then ``[]``).
    """
    left = [item for name, item in zip(names, items, strict=True)
            if not all(path.exists() for path in results(name))]
    done = len(items) - len(left)
    if not left:
        print(f"Nothing to do: the results of all {counted(done, 'image')} are in {out} "
              "already (--skip-existing).")
    elif done:
        note(f"--skip-existing: {counted(done, 'image')} with results in {out} already left "
             f"out; segmenting the other {len(left)}.", quiet=quiet)
    return left


def skipped_words(n: int, quiet: bool = False) -> str:
    """The end of a summary line for ``n`` images skipped ("" for none).

    With ``-q`` the notes are not printed: it said "see the notes above" of none (CLI
    check h_cli2, M5).
    """
    where = "run without -q to see why" if quiet else "see the notes above"
    return f"; skipped {counted(n, 'image')} that could not be read ({where})" if n else ""


def dataset_options(args: argparse.Namespace, model: Any = None) -> Any:
    """The ``SegmentOptions`` of ``--diameter``, ``--tta``, ``--no-focus`` and ``--threshold``.

    ``--diameter native`` is the training diameter of ``model`` (no resizing); without
    a model (values checked before it is loaded) it stands in as automatic.
    """
    from ..core.segment import SegmentOptions

    diameter = args.diameter
    if diameter == NATIVE and model is None:
        diameter = 0.0
    diameter = diameter_in_pixels(diameter, model)  # a bad --diameter says so plainly
    check_threshold(args.threshold)
    return SegmentOptions(diameter=diameter, threshold=args.threshold, tta=args.tta,
                          focus=not getattr(args, "no_focus", False))


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
