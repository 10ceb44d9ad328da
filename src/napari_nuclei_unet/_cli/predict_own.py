"""``nuclei-unet predict`` for the user's own images: stacks, channels, large planes, clusters.

Each image file gives ``<out>/<name>_labels.tif`` (the input's non-channel shape,
planes in the same order) and ``<out>/<name>_measurements.csv``; a large 2-D image is
streamed block by block into ``<name>_labels.ome.zarr`` as well. ``--scheduler`` /
``--workers`` run on a dask.distributed cluster: the files of a folder one task each,
or the blocks of one large image.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

from .data import is_dataset_folder, is_labels_or_result, left_out_note
from .predict import (
    check_targets,
    counted,
    dataset_options,
    done_already,
    is_native,
    skipped_words,
)
from .predict_notes import (
    note_axes_overridden,
    note_guessed_planes,
    note_label_like,
)
from .progress import ProgressBars, first_names, note, note_weights

#: Options that ask for the own-image path even for a PNG or a folder of PNGs.
OWN_OPTIONS = ("channel", "axes", "scheduler")


def _is_own_file(path: Path) -> bool:
    from ..core.imageio import TIFF_SUFFIXES

    return path.suffix.lower() in TIFF_SUFFIXES or (
        path.is_dir() and path.suffix.lower() == ".zarr")


def wants_own_images(args: argparse.Namespace) -> bool:
    """Whether ``predict`` should take the own-image path for these arguments.

    True for a TIFF/OME-TIFF file or ``.zarr`` folder, a folder of image files holding
    a TIFF, or when ``--channel``, ``--axes``, ``--scheduler``, ``--workers`` or
    ``--labels`` is given. DSB2018 datasets and folders of PNGs keep the per-image mask
    output (both paths honour ``--diameter`` and ``--tta``).
    """
    if any(getattr(args, name, None) is not None for name in OWN_OPTIONS):
        return True
    if getattr(args, "workers", 0) or getattr(args, "labels", False):
        return True  # --labels: PNG/JPEG images give labels too (review h_rev15, M7)
    root = Path(args.input)
    if _is_own_file(root):
        return True
    if root.is_dir() and not is_dataset_folder(root):
        return any(_is_own_file(c) for c in root.iterdir())
    return False


def find_files(path: str, *, quiet: bool = False) -> list[Path]:
    """The image files of INPUT: itself, or the image files/``.zarr`` folders in it.

    In a folder, label images and earlier results (``NAME_labels.tif``,
    ``NAME_labels.ome.zarr``...: :func:`.data.is_labels_or_result`) are left out, with
    one note.
    """
    from ..core.imageio import is_junk_name
    from ..core.stacks import is_image_file

    root = Path(path)
    if not root.exists():
        from .data import swapped_words

        raise FileNotFoundError(f"{path} does not exist: give an image file (TIFF, OME-TIFF, "
                                "PNG, JPEG), a .zarr folder or a folder of images."
                                + swapped_words(path))
    if root.is_file() or root.suffix.lower() == ".zarr":
        return [root]
    if not root.is_dir():  # a FIFO, a device: said in plain words, never read
        from ..core.imageio import check_regular_file

        check_regular_file(root, what="image file")
    from ..core.tiff_checks import vendor_format_words

    found = sorted(c for c in root.iterdir() if not is_junk_name(c.name) and is_image_file(c))
    files = [c for c in found if not is_labels_or_result(c)]
    for child in sorted(root.iterdir()):  # (review h_rev16, M5)
        if vendor_format_words(child):
            note(f"skipped {vendor_format_words(child)}", quiet=quiet)
    if not files:
        only = (f" (only {len(found)} label image(s) or earlier result(s), such as "
                f"{found[0].name})" if found else
                f" (your images may be in {root / 'images'}: give that folder)"
                if (root / "images").is_dir() else "")
        raise FileNotFoundError(
            f"No image found in {path}{only}: expected TIFF/OME-TIFF, PNG or JPEG files or "
            ".zarr folders.")
    left_out_note([c for c in found if c not in files], quiet=quiet)
    return files


def _refuse_dataset(args: argparse.Namespace) -> None:
    """A DSB2018 dataset given with an option of the own-image path: say which and why."""
    if not is_dataset_folder(args.input):
        return
    given = [f"--{name}" for name in OWN_OPTIONS if getattr(args, name, None) is not None]
    if getattr(args, "workers", 0):
        given.append("--workers")
    if getattr(args, "labels", False):
        given.append("--labels")
    raise FileNotFoundError(
        f"{args.input} is a DSB2018 dataset (sample folders <id>/images/), but "
        f"{' and '.join(given)} {'work' if len(given) > 1 else 'works'} on image files and "
        "folders of images (TIFF, PNG, JPEG, .zarr): leave them out to segment the dataset "
        "here, or give a folder of images.")


def run_own(args: argparse.Namespace) -> int:
    """Segment the own-image INPUT (see the module docstring).

    Parameters
    ----------
    args : argparse.Namespace
        The ``predict`` arguments.

    Returns
    -------
    int
        0 once at least one file was segmented (those that cannot be read are skipped
        with a note).
    """
    from ..core.own_images import output_paths
    from ..core.stacks import ImageFileError, stack_name

    if args.submission:
        raise ValueError("--submission writes a Kaggle DSB2018 file; it works with DSB2018 "
                         "datasets and PNG folders, not with TIFF stacks. Leave it out.")
    if args.instances == "components":
        raise ValueError("--instances components numbers the connected regions of one mask "
                         "per image; it works with DSB2018 datasets and PNG folders, not with "
                         "TIFF stacks, whose nuclei are always split as with --instances "
                         "watershed. Leave it out.")
    if args.block < 128:
        raise ValueError(f"--block must be at least 128 pixels, got {args.block}.")
    options = dataset_options(args)  # values checked; 'native' is set once the model is loaded
    if args.axes is not None and not args.axes.strip().isalpha():
        raise ImageFileError(f"--axes {args.axes!r} must be letters such as ZCYX or TCYX.")
    _refuse_dataset(args)
    files = find_files(args.input, quiet=args.quiet)
    total = len(files)  # before --skip-existing leaves some (review h_rev26, 6)
    if len(files) == 1 and files[0] == Path(args.input) and is_labels_or_result(files[0]):
        note(f"note: {files[0].name} is named as a label image (or an earlier result): it is "
             "segmented as an image. Give the image it labels instead, if that is what you "
             "meant.", quiet=args.quiet)  # (the dock says so too: CLI check h_cli1, L7)
    out = Path(args.out)
    names: dict[str, Path] = {}
    for path in files:
        name = stack_name(path)
        if name in names:
            raise ValueError(f"{names[name]} and {path} would both be written as {name}_...; "
                             "rename one.")
        names[name] = path
    skip = getattr(args, "skip_existing", False)

    def results(name: str) -> list[Path]:  # its label TIFF (written after a large image's
        return [output_paths(out, name)["labels"]]  # zarr: a run stopped by an error
        # leaves that half built: h_rev21); it may hold the user's edits

    if skip:
        check_targets(out, [p for name in names for p in output_paths(out, name).values()],
                      files, overwrite=True, what="result file", kept="edited labels")
        _note_labels_alone(names, out, results, args, "--skip-existing")
        files = done_already(list(names), results, files, out, quiet=args.quiet)
        if not files:
            return 0
        names = {stack_name(path): path for path in files}
    elif args.overwrite:  # edited labels are not replaced either (CLI check h_cli2, H3)
        alone = _note_labels_alone(names, out, results, args, "--overwrite")
        files = [path for name, path in names.items() if name not in alone]
        if not files:
            print(f"Nothing to do: every image's labels in {out} are left as they are.")
            return 0
        names = {stack_name(path): path for path in files}
    # with --skip-existing, what is left of an image not done (a CSV without its labels)
    # is replaced, not refused (review h_rev16, H1); its labels never (h_cli1, H1)
    check_targets(out, [p for name in names for p in output_paths(out, name).values()], files,
                  overwrite=args.overwrite or skip, what="result file", kept="edited labels")
    files, skipped, single, own = _check_inputs(files, args, total)
    _check_package_runs_here(args)
    _note_ignored_options(args)

    from ..core.cluster import dask_client

    with dask_client(args.scheduler, args.workers) as client, \
            ProgressBars(quiet=args.quiet) as bars:
        summaries, options, failed = _segment(files, out, options, args, client, bars,
                                              single, own)
    skipped += failed
    if not summaries:
        raise _none_readable(args.input, skipped)
    n_nuclei = sum(s.n_nuclei for s in summaries)
    n_planes = sum(s.n_planes for s in summaries)
    print(f"Wrote {counted(len(summaries), 'label image')} ({counted(n_planes, 'plane')}, "
          f"{counted(n_nuclei, 'nucleus', 'nuclei')}) and measurements to {out}"
          + skipped_words(len(skipped), args.quiet) + _vendor_words(args))
    return 0


def _vendor_words(args: argparse.Namespace) -> str:
    """The summary's count of a folder's microscope-format files, which were not read.

    Said one by one as the folder was listed, they were left out of the summary's
    "skipped" (README check h_readme1, L2).
    """
    from ..core.tiff_checks import vendor_format_words

    root = Path(args.input)
    if not root.is_dir() or root.suffix.lower() == ".zarr":
        return ""
    n = sum(1 for child in root.iterdir() if vendor_format_words(child))
    where = "run without -q to see which" if args.quiet else "see the notes above"
    return (f"; {counted(n, 'file')} in a microscope's own format not read ({where})"
            if n else "")


def _say_done(summary: Any, options: Any, args: argparse.Namespace) -> None:
    """One image's line: its nuclei, planes, nucleus size, time and labels file.

    Said as each image ends: a batch job's log (no terminal) showed nothing until the
    end, and after a Ctrl-C never said which were done (CLI check h_cli1, L1).
    """
    size = diameter_words(summary.diameters, options, native=is_native(args),
                          pixels_per_um=summary.pixels_per_um,
                          found=bool(summary.n_nuclei))
    blurred = sum(value > 0.5 for value in summary.focus)
    focus = "" if not blurred else (
        ", out of focus: outlines drawn tighter" if summary.n_planes == 1 else
        f", {counted(blurred, 'plane')} out of focus: outlines drawn tighter")
    note(f"{summary.name}: {counted(summary.n_nuclei, 'nucleus', 'nuclei')} in "
         f"{counted(summary.n_planes, 'plane')}, {size}{focus}, "
         f"{summary.seconds:.1f} s -> {Path(summary.labels).name}", quiet=args.quiet)


def _note_labels_alone(names: dict[str, Path], out: Path, results: Any,
                       args: argparse.Namespace, option: str) -> list[str]:
    """Name the images whose labels are in ``out`` without their CSV; those names.

    A run writes both or neither, so such labels were most likely edited (and the CSV,
    stale, deleted): they were replaced without a word (CLI check h_cli1, H1; with
    ``--overwrite``, h_cli2, H3). They are left as they are. ``option``: the option
    given, said first.
    """
    from ..core.own_images import output_paths

    alone = [name for name in names if all(p.exists() for p in results(name))
             and not output_paths(out, name)["csv"].exists()]
    if alone:
        note(f"{option}: {counted(len(alone), 'image')} ({', '.join(alone[:3])}"
             f"{', …' if len(alone) > 3 else ''}) {'has' if len(alone) == 1 else 'have'} "
             f"labels in {out} without their "
             "measurements: left as they are (they may hold your edits). Delete those labels "
             "to segment them again.", quiet=args.quiet)
    return alone


def diameter_words(diameters: list[float], options: Any, *, native: bool = False,
                   pixels_per_um: Any = None, found: bool = True) -> str:
    """The nucleus diameter one file was segmented at, e.g. "diameter 17 px (automatic)".

    Parameters
    ----------
    diameters : list of float
        The diameter used for each plane (``FileSummary.diameters``; a large plane's is
        measured on a few of its blocks; empty when none held enough nuclei to measure,
        and then each block estimated its own).
    options : SegmentOptions
        The options used (``options.diameter`` 0: automatic).
    native : bool
        ``--diameter native`` was given (``options.diameter`` is the model's own).
    pixels_per_um : (float, float), optional
        The image's pixel size: the diameter is said in micrometres too.
    found : bool
        Whether any nucleus was found: with none, an automatic diameter is the model's
        own, used for want of nuclei to measure ("18 px (automatic: median of 2 planes)"
        was said of an empty image: README check h_readme1, L4).
    """
    import statistics

    from ..core.physical import um_words

    if native:
        return "native scale (no resizing)"
    if options.diameter:
        return f"diameter {options.diameter:g} px{um_words(options.diameter, pixels_per_um)}"
    if not diameters:
        return "diameter automatic (too few nuclei to measure; estimated per block)"
    if not found:
        return (f"diameter {statistics.median(diameters):.0f} px (the model's own: no nucleus "
                "found to measure)")
    median = statistics.median(diameters)
    size = f"{median:.0f} px{um_words(median, pixels_per_um)}"
    if len(diameters) == 1:
        return f"diameter {size} (automatic)"
    low, high = round(min(diameters)), round(max(diameters))
    spread = f", {low}-{high} px" if low != high else ""
    return f"diameter {size} (automatic: median of {len(diameters)} planes{spread})"


def _note_ignored_options(args: argparse.Namespace) -> None:
    """Note that ``--instances watershed`` / ``--format`` (stacks get a TIFF) are ignored."""
    given = [f"--instances {args.instances}"] if args.instances == "watershed" else []
    given += [f"--format {args.format}"] if args.format else []
    if given:
        note(f"note: {' and '.join(given)} {'is' if len(given) == 1 else 'are'} ignored with "
             "TIFF stacks, which always give <name>_labels.tif (numbered nuclei, split as "
             "with --instances watershed) and <name>_measurements.csv.", quiet=args.quiet)


def _check_inputs(files: list[Path], args: argparse.Namespace, total: int = 0
                  ) -> tuple[list[Path], list[tuple[Path, Exception]], set[Path], set[Path]]:
    """Open every file (metadata only) so that a bad axes/channel fails before any work.

    A file that cannot be read is skipped with a note (one bad file never refuses a
    whole folder); when none can be read, all are named in one error. Returns the files
    to segment, the ``(file, error)`` of those skipped, and the files of one channel
    (no channel axis), which ``--channel`` does not apply to: a folder of grey images
    and one multi-channel file had no command that worked (review h_rev15, M2). Last,
    the files ``--axes`` does not fit (another number of dimensions, or a colour image
    that ``--axes`` does not give a colour axis) whose own axes are known, which keep
    them: a folder of a plain TIFF and a zarr without recorded axes had no command that
    worked either (review h_rev24, L4), and an RGB photo beside ZYX stacks was segmented
    as 48 planes of 64 x 3 pixels (review h_rev26, 5). ``total``: the files the input
    holds (some may be done already: ``--skip-existing``).

    An image taken as RGB from the file's own axes although it is not 8-bit gets a
    note: it is more likely planes or channels (see ``ImageStack.doubtful_rgb``).
    """
    from ..core.stacks import ImageFileError, open_stack

    readable, skipped, single, own = [], [], set(), set()
    several = max(total, len(files)) > 1
    for path in files:
        try:
            stack = open_stack(path, args.axes)
            if several and (colour := _own_colour(path, args.axes)) is not None:
                stack = colour
                own.add(path)
        except (ImageFileError, OSError) as exc:  # a colour photo among stacks: the
            # axes made its planes 64 x 3 pixels, now refused (README check h_readme1, L1)
            stack = (_own_axes(path, args.axes) or _own_colour(path, args.axes)) \
                if several else None
            if stack is not None:
                own.add(path)
            elif not unreadable_file(path, exc, args.axes):
                raise  # the settings do not fit: they are the user's to change
            else:
                skipped.append((path, exc))
                continue
        if args.channel is not None and "C" not in stack.axes and several:
            single.add(path)  # one channel: segmented as it is
        else:
            stack.check_channel(args.channel)
        # Q: tifffile's unknown axis; I: pages written one by one, no axes recorded (a
        # 2-channel file of them was segmented as 2 planes, unsaid: README check h_readme1)
        if args.axes is None and set("QI") & set(stack.stored_axes or stack.axes):
            note_guessed_planes(path, stack, args)
        elif args.axes is not None and path not in own:
            note_axes_overridden(path, args)
        note_label_like(path, stack, args)
        if stack.other_series:
            note(f"note: {path.name} holds {stack.other_series + 1} images (positions or "
                 f"series); only the first ({' x '.join(map(str, stack.data.shape))}, "
                 f"{stack.axes}) is segmented. Save each one as a file of its own (Fiji: "
                 "Bio-Formats, open all series) to segment the others.", quiet=args.quiet)
        if (args.axes is None or path in own) and args.channel is None \
                and stack.doubtful_rgb:
            note(f"note: {stack.doubtful_rgb_note(path.name)}", quiet=args.quiet)
        readable.append(path)
    if not readable:
        raise _none_readable(args.input, skipped)
    for path, exc in skipped:
        _note_skipped(path, exc, args)
    if own and own.issuperset(readable) and len(files) >= total:  # fits none: a mistake
        for path in sorted(own):
            open_stack(path, args.axes)
    if own:
        _note_own_axes(readable, own, args)
    if single and (args.workers or args.scheduler):  # said before a cluster starts
        raise ValueError(
            f"With --workers or --scheduler, --channel {args.channel} applies to every "
            f"file, and {sorted(single)[0].name} has one channel: put the files of one "
            "channel in a folder of their own.")  # (review h_rev16, M2)
    if single and len(single) < len(readable):
        applied = first_names([p.name for p in sorted(readable) if p not in single])
        note(f"note: --channel {args.channel} is used for {applied} (the files with "
             "channels; of a colour image, one colour), and "
             f"{first_names([p.name for p in sorted(single)])} of one channel "
             f"{'is segmented as it is' if len(single) == 1 else 'are segmented as they are'}.",
             quiet=args.quiet)
    elif single and len(files) >= total:  # no file has channels (none done before with
        first = sorted(single)[0]  # --skip-existing): the option is a mistake
        open_stack(first, None if first in own else args.axes).check_channel(args.channel)
    return readable, skipped, single, own


def _own_axes(path: Path, axes: str | None) -> Any:
    """``path`` opened with its own axes when ``axes`` has another number of letters; else None."""
    stack = _own_stack(path) if axes is not None else None
    return stack if stack is not None and len(
        stack.stored_axes or stack.axes) != len(axes.strip()) else None


def _own_colour(path: Path, axes: str | None) -> Any:
    """``path`` with its own axes when it is a colour image and ``axes`` give no colour axis.

    Only an image whose colours are its last stored axis (a photo, ``YXS``): a plain
    ``tifffile.imwrite`` of 3 planes reads as colours first (``SYX``), and ``--axes ZYX``
    is what the note about it asks for (review h_rev27, 1).
    """
    if axes is None or axes.strip().upper()[-1:] in ("C", "S"):
        return None
    stack = _own_stack(path)
    last = "" if stack is None else (stack.stored_axes or stack.axes)[-1:]
    return stack if last in ("C", "S") and stack.rgb else None


def _own_stack(path: Path) -> Any:
    """``path`` opened with its own axes (metadata only), or None when it cannot be."""
    from ..core.stacks import ImageFileError, open_stack

    try:
        return open_stack(path)
    except (ImageFileError, OSError):
        return None


def _note_own_axes(readable: list[Path], own: set[Path], args: argparse.Namespace) -> None:
    """Say which files ``--axes`` is used for, and which keep their own (one line)."""
    if args.workers or args.scheduler:  # said before a cluster starts
        raise ValueError(
            f"With --workers or --scheduler, --axes {args.axes} applies to every file, and "
            f"{sorted(own)[0].name} has another number of dimensions or is in colour: put "
            "the files that --axes fits in a folder of their own.")
    applied = [p.name for p in sorted(readable) if p not in own]
    kept = first_names([p.name for p in sorted(own)])
    verb = "keeps its own axes" if len(own) == 1 else "keep their own axes"
    given = args.axes.strip().upper()
    if applied:
        note(f"note: --axes {given} is used for {first_names(applied)}, and {kept} of "
             f"another number of dimensions or in colour {verb}.", quiet=args.quiet)
    else:  # --skip-existing left only such files
        note(f"note: --axes {given} fits none of the files left to do: {kept} {verb} "
             "(another number of dimensions, or in colour).", quiet=args.quiet)


def unreadable_file(path: Path, exc: Exception, axes: str | None) -> bool:
    """Whether ``exc`` (opening ``path``) says the file cannot be read, not that a setting is off.

    A message about a setting (the axes to give) is not the file's fault; with
    ``--axes`` given, the file is unreadable only if it cannot be opened without them.
    """
    from ..core.stacks import ImageFileError, open_stack

    if isinstance(exc, OSError):
        return True
    if getattr(exc, "about_a_setting", False):  # ImageFileError.about_a_setting
        return False
    if axes is None:
        return True
    try:
        open_stack(path)
    except (ImageFileError, OSError) as plain:
        return isinstance(plain, OSError) or not getattr(plain, "about_a_setting", False)
    return False


def _note_skipped(path: Path, exc: BaseException, args: argparse.Namespace) -> None:
    note(f"skipped {path.name}: {' '.join(str(exc).split())}", quiet=args.quiet)


def _none_readable(where: str, skipped: list[tuple[Path, Exception]]) -> Exception:
    """The error when no file of INPUT could be read: each file and why, on one line."""
    from ..core.stacks import ImageFileError

    if len(skipped) == 1:
        return skipped[0][1]
    reasons = "; ".join(" ".join(str(exc).split()) for _, exc in skipped)
    return ImageFileError(f"None of the {len(skipped)} image files in {where} could be "
                          f"read: {reasons}")


def _segment(files: list[Path], out: Path, options: Any, args: argparse.Namespace,
             client: Any, bars: ProgressBars, single: set[Path] = frozenset(),
             own: set[Path] = frozenset()) -> tuple[list, Any, list]:
    """Segment the files; return their summaries, the options used and the files skipped.

    ``--diameter native`` becomes the loaded model's own diameter in those options, and
    a diameter in pixels is checked against the model's (``diameter_in_pixels``). The
    ``--out`` folder is made only once the model and the device are found. A file found
    damaged half way is skipped with a note; a file stopped half way (Ctrl-C, an error)
    leaves none of its results (:func:`_process_whole`).
    """
    from ..core.cluster import map_files, torch_threads_per_worker
    from ..core.own_images import process_file
    from ..core.progress import drive
    from ..core.stacks import ImageFileError

    model_ref, model = _model_reference(args, client)
    options = dataset_options(args, model)  # 'native': the model's own diameter
    out.mkdir(parents=True, exist_ok=True)
    # a local cluster shares this machine's cores; a remote worker uses its own share
    threads = torch_threads_per_worker(client) if client is not None and not args.scheduler \
        else None
    if client is not None and (len(files) > 1 or not _large(files[0], args.axes)):
        # one small file too: it ran here, on a login node's device (review h_rev19, M2);
        # one large file's blocks go to the workers (segment_large)
        from ..core.cluster import FileDone, FileSkipped

        def said(update: Any) -> None:  # each file as its task ends (h_readme1, M1)
            if not isinstance(update, FileDone):
                bars(update)
            elif not isinstance(update.result, FileSkipped):
                _say_done(update.result, options, args)
            elif len(files) > 1:  # a damaged file: the others go on (h_rev16, M3); one
                result = update.result  # file: its error says it (h_readme1, L3)
                _note_skipped(Path(result.path), ImageFileError(result.reason), args)

        # the device said on each worker, --block for their large images (h_rev17, F6)
        results = drive(map_files(client, model_ref, [str(f) for f in files], out, options,
                                  channel=args.channel, axes=args.axes, threads=threads,
                                  device=args.device, block=args.block), said)
        failed = [(Path(r.path), ImageFileError(r.reason)) for r in results
                  if isinstance(r, FileSkipped)]
        return [r for r in results if not isinstance(r, FileSkipped)], options, failed
    summaries, failed = [], []
    for path in files:
        try:
            channel = None if path in single else args.channel
            axes = None if path in own else args.axes  # its own (review h_rev24, L4)
            summaries.append(_process_whole(path, out, lambda p=path, c=channel, a=axes:
                                            process_file(
                model_ref, p, out, options, channel=c, axes=a,
                block=args.block, client=client, threads=threads,
                device=args.device if client is not None else _device(args),  # per worker
                on_update=bars)))
            _say_done(summaries[-1], options, args)
        except ImageFileError as exc:  # a damaged plane: the other files go on
            failed.append((path, exc))
            if len(files) > 1:  # one file: its error says it (said twice: h_readme1, L3)
                _note_skipped(path, exc, args)
    return summaries, options, failed


def _large(path: Path, axes: str | None) -> bool:
    """Whether the planes of ``path`` (read with ``axes``) are large enough for the block path."""
    from ..core.bigimage import BIG_PIXELS
    from ..core.own_images import is_large
    from ..core.stacks import open_stack

    return is_large(open_stack(path, axes), BIG_PIXELS)


def _process_whole(path: Path, out: Path, process: Any) -> Any:
    """Run ``process()`` (one file's ``process_file``); if it stops half way, undo it.

    A Ctrl-C or an error in the middle of a file removes what it wrote of that file's
    results: a half-written ``NAME_labels.ome.zarr``, or labels without their
    measurements. Results that were there before (``--overwrite``) stay when nothing of
    them was replaced yet; once one was, all go, so no file is left without the others.
    """
    from ..core.own_images import output_paths
    from ..core.stacks import stack_name

    paths = output_paths(out, stack_name(path))
    before = {key: _identity(p) for key, p in paths.items()}
    try:
        return process()
    except BaseException:
        changed = any(_identity(p) != before[key] for key, p in paths.items())
        if changed:  # (a large image's blocks have stopped by now: core.bigimage._run)
            for p in paths.values():
                _remove(p)
        raise


def _identity(path: Path) -> tuple[int, int, int] | None:
    """What tells a file (or folder) written anew from the one there before; None: absent."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _device(args: argparse.Namespace) -> Any:
    from ..core.device import resolve_device

    return resolve_device(args.device)


def _check_package_runs_here(args: argparse.Namespace) -> None:
    """Refuse a bioimage.io package with a cluster before any work (workers load checkpoints)."""
    from ..bioimageio.load import is_bioimageio_package

    if (args.scheduler or args.workers) and is_bioimageio_package(args.model):
        raise ValueError(
            f"{args.model} is a bioimage.io package; packages run on this machine only, not "
            "on a dask cluster. Leave out --scheduler / --workers, or give the nuclei-unet "
            "checkpoint (.safetensors) the package was exported from.")


def _model_reference(args: argparse.Namespace, client: Any) -> tuple[Any, Any]:
    """The model to segment with, and the loaded model.

    The first is the loaded model itself (plain path), or its checkpoint path for
    cluster workers.
    """
    from ..bioimageio.load import load_any_model
    from ..core.device import configure_cpu_threads, resolve_device

    # a remote cluster's workers resolve --device themselves: the machine running this
    # command (a login node, often without a GPU) only checks the model (h_rev18, M5)
    device = resolve_device("cpu") if args.scheduler else _device(args)
    loaded = load_any_model(args.model, device=device)  # a bad model fails here, early
    note_weights(loaded)
    if client is not None:
        # absolute: a remote worker reads it in its own folder (h_cli3, H1; h_rev29, 3)
        return (os.path.abspath(loaded.path) if loaded.path is not None else args.model), \
            loaded.model
    if device.type == "cpu":
        configure_cpu_threads()
    return loaded.model, loaded.model
