"""``nuclei-unet predict`` for the user's own images: stacks, channels, large planes, clusters.

Each image file gives ``<out>/<name>_labels.tif`` (the input's non-channel shape,
planes in the same order) and ``<out>/<name>_measurements.csv``; a large 2-D image is
streamed block by block into ``<name>_labels.ome.zarr`` as well. ``--scheduler`` /
``--workers`` run on a dask.distributed cluster: the files of a folder one task each,
or the blocks of one large image.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .data import is_dataset_folder
from .predict import counted, dataset_options, is_native
from .progress import ProgressBars, note

#: Options that ask for the own-image path even for a PNG or a folder of PNGs.
OWN_OPTIONS = ("channel", "axes", "scheduler")


def _is_own_file(path: Path) -> bool:
    from ..core.stacks import TIFF_SUFFIXES

    return path.suffix.lower() in TIFF_SUFFIXES or (
        path.is_dir() and path.suffix.lower() == ".zarr")


def wants_own_images(args: argparse.Namespace) -> bool:
    """Whether ``predict`` should take the own-image path for these arguments.

    True for a TIFF/OME-TIFF file or ``.zarr`` folder, a folder of image files holding
    a TIFF, or when ``--channel``, ``--axes``, ``--scheduler`` or ``--workers`` is
    given. DSB2018 datasets and folders of PNGs keep the per-image mask output (both
    paths honour ``--diameter`` and ``--tta``).
    """
    if any(getattr(args, name, None) is not None for name in OWN_OPTIONS):
        return True
    if getattr(args, "workers", 0):
        return True
    root = Path(args.input)
    if _is_own_file(root):
        return True
    if root.is_dir() and not is_dataset_folder(root):
        return any(_is_own_file(c) for c in root.iterdir())
    return False


def find_files(path: str) -> list[Path]:
    """The image files of INPUT: itself, or the image files/``.zarr`` folders in it."""
    from ..core.imageio import is_junk_name
    from ..core.stacks import is_image_file

    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{path} does not exist: give an image file (TIFF, OME-TIFF, "
                                "PNG, JPEG), a .zarr folder or a folder of images.")
    if root.is_file() or root.suffix.lower() == ".zarr":
        return [root]
    if not root.is_dir():  # a FIFO, a device: said in plain words, never read
        from ..core.imageio import check_regular_file

        check_regular_file(root, what="image file")
    files = sorted(c for c in root.iterdir() if not is_junk_name(c.name) and is_image_file(c))
    if not files:
        raise FileNotFoundError(
            f"No image found in {path}: expected TIFF/OME-TIFF, PNG or JPEG files or .zarr "
            "folders.")
    return files


def _refuse_dataset(args: argparse.Namespace) -> None:
    """A DSB2018 dataset given with an option of the own-image path: say which and why."""
    if not is_dataset_folder(args.input):
        return
    given = [f"--{name}" for name in OWN_OPTIONS if getattr(args, name, None) is not None]
    if getattr(args, "workers", 0):
        given.append("--workers")
    raise FileNotFoundError(
        f"{args.input} is a DSB2018 dataset (sample folders <id>/images/), but "
        f"{' and '.join(given)} work on image files and folders of images (TIFF, PNG, JPEG, "
        ".zarr): leave them out to segment the dataset here, or give a folder of images.")


def run_own(args: argparse.Namespace) -> int:
    """Segment the own-image INPUT (see the module docstring).

    Parameters
    ----------
    args : argparse.Namespace
        The ``predict`` arguments.

    Returns
    -------
    int
        0.
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
    files = find_files(args.input)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is a file; give a folder for the results.")
    names: dict[str, Path] = {}
    for path in files:
        name = stack_name(path)
        if name in names:
            raise ValueError(f"{names[name]} and {path} would both be written as {name}_...; "
                             "rename one.")
        names[name] = path
    existing = [p for name in names for p in output_paths(out, name).values() if p.exists()]
    if existing and not args.overwrite:
        raise FileExistsError(
            f"{len(existing)} result file(s) already exist in {out} (e.g. {existing[0].name}); "
            "they may hold edited labels, so nothing was written. Choose another --out, or "
            "add --overwrite to replace them.")
    _check_inputs(files, args)
    _check_package_runs_here(args)
    _note_ignored_options(args)
    out.mkdir(parents=True, exist_ok=True)

    from ..core.cluster import dask_client

    with dask_client(args.scheduler, args.workers) as client, \
            ProgressBars(quiet=args.quiet) as bars:
        summaries, options = _segment(files, out, options, args, client, bars)
    n_nuclei = sum(s.n_nuclei for s in summaries)
    n_planes = sum(s.n_planes for s in summaries)
    print(f"Wrote {counted(len(summaries), 'label image')} ({counted(n_planes, 'plane')}, "
          f"{counted(n_nuclei, 'nucleus', 'nuclei')}) and measurements to {out}")
    for summary in summaries:
        note(f"{summary.name}: {counted(summary.n_nuclei, 'nucleus', 'nuclei')} in "
             f"{counted(summary.n_planes, 'plane')}, "
             f"{diameter_words(summary.diameters, options, native=is_native(args))}, "
             f"{summary.seconds:.1f} s -> {Path(summary.labels).name}", quiet=args.quiet)
    return 0


def diameter_words(diameters: list[float], options: Any, *, native: bool = False) -> str:
    """The nucleus diameter one file was segmented at, e.g. "diameter 17 px (automatic)".

    Parameters
    ----------
    diameters : list of float
        The diameter used for each plane (``FileSummary.diameters``; empty for a large
        plane, whose blocks each estimate their own).
    options : SegmentOptions
        The options used (``options.diameter`` 0: automatic).
    native : bool
        ``--diameter native`` was given (``options.diameter`` is the model's own).
    """
    import statistics

    if native:
        return "native scale (no resizing)"
    if options.diameter:
        return f"diameter {options.diameter:g} px"
    if not diameters:
        return "diameter automatic (estimated per block)"
    median = statistics.median(diameters)
    if len(diameters) == 1:
        return f"diameter {median:.0f} px (automatic)"
    low, high = round(min(diameters)), round(max(diameters))
    spread = f", {low}-{high} px" if low != high else ""
    return f"diameter {median:.0f} px (automatic: median of {len(diameters)} planes{spread})"


def _note_ignored_options(args: argparse.Namespace) -> None:
    """Note that ``--instances watershed`` / ``--format`` (stacks get a TIFF) are ignored."""
    given = [f"--instances {args.instances}"] if args.instances == "watershed" else []
    given += [f"--format {args.format}"] if args.format else []
    if given:
        note(f"note: {' and '.join(given)} {'is' if len(given) == 1 else 'are'} ignored with "
             "TIFF stacks, which always give <name>_labels.tif (numbered nuclei, split as "
             "with --instances watershed) and <name>_measurements.csv.", quiet=args.quiet)


def _check_inputs(files: list[Path], args: argparse.Namespace) -> None:
    """Open every file (metadata only) so that a bad axes/channel fails before any work.

    An image taken as RGB from the file's own axes although it is not 8-bit gets a
    note: it is more likely planes or channels (see ``ImageStack.doubtful_rgb``).
    """
    from ..core.stacks import open_stack

    for path in files:
        stack = open_stack(path, args.axes)
        stack.check_channel(args.channel)
        if args.axes is None and args.channel is None and stack.doubtful_rgb:
            note(f"note: {stack.doubtful_rgb_note(path.name)}", quiet=args.quiet)


def _segment(files: list[Path], out: Path, options: Any, args: argparse.Namespace,
             client: Any, bars: ProgressBars) -> tuple[list, Any]:
    """Segment the files; return their summaries and the options used.

    ``--diameter native`` becomes the loaded model's own diameter in those options.
    """
    from ..core.cluster import map_files, torch_threads_per_worker
    from ..core.own_images import process_file
    from ..core.progress import drive

    model_ref, model = _model_reference(args, client)
    if is_native(args):
        options = dataset_options(args, model)  # the model's own diameter: no resizing
    # a local cluster shares this machine's cores; a remote worker uses its own share
    threads = torch_threads_per_worker(client) if client is not None and not args.scheduler \
        else None
    if client is not None and len(files) > 1:
        return drive(map_files(client, model_ref, [str(f) for f in files], out, options,
                               channel=args.channel, axes=args.axes, threads=threads),
                     bars), options
    summaries = []
    for path in files:
        summaries.append(process_file(model_ref, path, out, options, channel=args.channel,
                                      axes=args.axes, block=args.block, client=client,
                                      threads=threads, device=_device(args), on_update=bars))
    return summaries, options


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
    from ..core.device import configure_cpu_threads

    device = _device(args)
    loaded = load_any_model(args.model, device=device)  # a bad model fails here, early
    if client is not None:
        return (str(loaded.path) if loaded.path is not None else args.model), loaded.model
    if device.type == "cpu":
        configure_cpu_threads()
    return loaded.model, loaded.model
