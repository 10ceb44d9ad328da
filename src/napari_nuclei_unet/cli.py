"""``nuclei-unet``: the command line of napari-nuclei-unet.

The commands drive the same core generators as the napari dock widgets::

    nuclei-unet info DATA
    nuclei-unet train DATA --out RUN [--epochs N ...]
    nuclei-unet predict MODEL INPUT --out DIR [--diameter auto|native|PX] [--instances watershed]
    nuclei-unet evaluate MODEL DATA [--json] [--diameter auto|native|PX] [--tta]
    nuclei-unet finetune MODEL CORRECTIONS --out PROJECT [--data ORIGINAL_DATA]
    nuclei-unet demo [--screenshot shot.png]

Progress bars and per-epoch lines go to stderr; results (paths, tables, JSON) go to
stdout, so ``nuclei-unet evaluate MODEL DATA --json > scores.json`` works.

Errors a user can fix (a missing file, a folder that is not a dataset, a corrupt
checkpoint, a bad option value) are reported as one line,
``nuclei-unet: error: <what is wrong and what to do>``, with exit status 2; ``--debug``
shows the Python traceback instead.

This module imports neither torch nor numpy: each command imports what it needs
when it runs, so ``nuclei-unet --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__
from ._cli.failures import (
    another_rank,
    is_killed_worker,
    is_out_of_memory,
    is_peer_lost,
    is_refusal,
    is_user_error,
    killed_worker_message,
    maybe_a_bug,
    one_line,
    out_of_memory_message,
    peer_lost_message,
)

PROG = "nuclei-unet"

#: Exit status for bad input (the argparse convention).
EXIT_BAD_INPUT = 2
#: Exit status for an unexpected internal error.
EXIT_INTERNAL = 1
#: Exit status after Ctrl-C outside of training (the shell convention, 128 + SIGINT).
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # SIGTERM, as a shell reports a process it ended (128 + 15)


def _add_size_options(parser: argparse.ArgumentParser, *, native: str) -> None:
    """``--diameter``, ``--tta`` and ``--no-focus`` of ``predict`` and ``evaluate``.

    ``native`` says what ``--diameter native`` does with the images (no resizing).
    """
    from ._cli.diameter import METAVAR, diameter_help, parse_diameter

    parser.add_argument(
        "--diameter", type=parse_diameter, default=0.0, metavar=METAVAR,
        help=diameter_help("typical nucleus diameter", native))
    parser.add_argument("--tta", action="store_true",
                        help="test-time augmentation: average flipped predictions (about 4x "
                             "slower)")
    parser.add_argument("--no-focus", action="store_true",
                        help="do not outline the nuclei of images that look out of focus "
                             "tighter (see the README, 'Out-of-focus images')")


def _add_channel_axes(parser: Any, when: str = "") -> None:
    """``--channel`` and ``--axes`` of an own image (``when``: for which inputs, if not all)."""
    parser.add_argument("--channel", type=int, metavar="N",
                        help=f"{when}the nuclear channel, 0-based on the channel axis "
                             "(default: the only channel, or the RGB composite)")
    parser.add_argument("--axes", metavar="AXES",
                        help=f"{when}the images' axes, overriding their metadata, e.g. ZCYX "
                             "or TCYX")


def _add_own_image_options(parser: argparse.ArgumentParser) -> None:
    """Options of ``predict`` for the user's own TIFF stacks and large images."""
    own = parser.add_argument_group(
        "own images (TIFF/OME-TIFF stacks, multi-channel and large images)",
        "A TIFF/OME-TIFF/zarr INPUT (or a folder holding TIFFs, or any of these options) "
        "gives <out>/<name>_labels.tif with the input's non-channel shape and "
        "<out>/<name>_measurements.csv (one row per nucleus).")
    _add_channel_axes(own)
    own.add_argument("--labels", action="store_true",
                     help="PNG/JPEG images too: <name>_labels.tif and measurements, as for "
                          "a TIFF (the names finetune reads), not one mask per image")
    own.add_argument("--scheduler", metavar="ADDRESS",
                     help="run on this dask.distributed scheduler (tcp://host:8786)")
    own.add_argument("--workers", type=_worker_count, default=0, metavar="N",
                     help="start a local dask cluster with N worker processes")
    own.add_argument("--block", type=int, default=896, metavar="PX",
                     help="block side for large 2-D images, streamed block by block "
                          "(default: 896)")


def _add_device(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    parser.add_argument(
        "--device", default=default, metavar="DEVICE",
        help="where to compute: auto (GPU if there is one), cpu, cuda, cuda:1, mps"
             + (" (default: auto)" if default else " (default: from the configuration)"),
    )


def _add_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", metavar="MODEL",
        help="a checkpoint (.safetensors with its .json beside it), 'default' for the "
             "model shipped with the plugin, a training run's folder (its "
             "best.safetensors), a fine-tuning project's folder (its current version) or "
             "version folder (DIR/versions/v002), or a bioimage.io model package (folder, "
             "rdf.yaml or .zip; TorchScript or ONNX weights)",
    )


def _count(text: str) -> int:
    """A whole number, 0 or more (``--worst -2`` was taken silently: review h_rev15, L7)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, got {text!r}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    from ._cli.diameter import METAVAR, diameter_help, parse_diameter
    from ._cli.train_options import add_train_config_options

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Segment cell nuclei with a U-Net: in your own images (TIFF and "
                    "OME-TIFF stacks, PNG, zarr) or DSB2018-style datasets. Inspect a dataset, "
                    "train, predict, evaluate, fine-tune on corrected masks, and share a "
                    "model as a bioimage.io package.",
        epilog="Progress goes to stderr, results to stdout. Run "
               f"'{PROG} COMMAND --help' for the options of one command. Exit status: 0 "
               "done; 2 a problem with what was given or with this computer, said in one "
               "line (a missing file, a bad option, a full disk, out of memory); 1 an "
               "unexpected error (please report it, with --debug), or under torchrun a process "
               "whose peer stopped; 130 Ctrl-C; 143 SIGTERM.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of errors (for bug reports)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars or per-epoch lines on stderr")
    # The same two options after the command name (``nuclei-unet train ... -q``); SUPPRESS
    # keeps a value given before the command name.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the Python traceback of errors (for bug reports)")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars or per-epoch lines on stderr")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add_command(name: str, **kwargs: object) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[common], **kwargs)

    info = add_command(
        "info", help="summarise a dataset: samples, nuclei, sizes, modalities, bad samples",
        description="Summarise a DSB2018-style dataset (stage1_train folder, its .zip, or one "
                    "sample folder), a folder of your images beside their label images "
                    "(cells.tif + cells_labels.tif) or a fine-tuning project: number of "
                    "samples and nuclei, image sizes, modality counts, and the samples that "
                    "cannot be read, with the reason.",
    )
    info.add_argument("data", metavar="DATA",
                      help="dataset folder, .zip or sample folder; images beside label "
                           "images; or a fine-tuning project")
    # a stack of channels beside its labels asked for --channel, which info refused
    # (README check h_readme1, M3)
    _add_channel_axes(info, "with images beside label images: ")
    info.set_defaults(handler="info:run")

    train = add_command(
        "train", help="train a U-Net on a DSB2018-style dataset",
        description="Train a U-Net. Writes best.safetensors (best validation IoU) and "
                    "last.safetensors (with their .json) in --out and prints the best "
                    "checkpoint's path on stdout. Ctrl-C stops cleanly: the best checkpoint "
                    "is kept and the last one saved (press it twice to abort at once); the "
                    "exit status is then 130, as after any Ctrl-C, and 0 after --time-limit.",
    )
    train.add_argument("data", metavar="DATA", help="dataset folder, .zip or sample folder")
    train.add_argument("--out", required=True, metavar="DIR",
                       help="folder for the checkpoints (created if missing)")
    train.add_argument("--config", metavar="JSON",
                       help="training configuration file (a TrainConfig JSON, e.g. the "
                            "'config' of a checkpoint's .json); options given here win")
    start = train.add_mutually_exclusive_group()
    start.add_argument("--resume", metavar="CKPT",
                       help="continue an interrupted run from its last.safetensors")
    start.add_argument("--init", metavar="CKPT",
                       help="start from these weights (e.g. 'default') instead of random ones")
    train.add_argument("--time-limit", type=float, metavar="MINUTES",
                       help="stop after this many minutes, keeping the best checkpoint")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the model an earlier run left in --out (without it, "
                            "a folder holding one is refused: continue that run with "
                            "--resume, or choose another --out)")
    add_train_config_options(train)
    train.set_defaults(handler="train:run")

    predict = add_command(
        "predict", help="segment images: label images and measurements (TIFF stacks), "
                        "or masks (PNG datasets)",
        description="Segment nuclei. INPUT is a DSB2018 dataset folder or .zip (masks not "
                    "needed), one sample folder, one image file or a folder of image files. "
                    "Writes <out>/<image id>.png: a 0/255 mask, or an instance label image "
                    "(16-bit PNG or TIFF) with --instances.",
    )
    _add_model(predict)
    predict.add_argument("input", metavar="INPUT", help="dataset, sample folder, image or folder")
    predict.add_argument("--out", required=True, metavar="DIR", help="folder for the masks")
    predict.add_argument("--threshold", type=float, default=0.5,
                         help="foreground probability threshold (default: 0.5)")
    predict.add_argument("--instances", choices=("watershed", "components", "none"),
                         default="none",
                         help="split the mask into numbered nuclei: watershed (splits touching "
                              "nuclei), components (connected regions) or none: a binary "
                              "0/255 mask (default: none)")
    predict.add_argument("--format", choices=("png", "tif"), default=None,
                         help="mask file format (default: png; TIFF stacks always give "
                              "<name>_labels.tif)")
    predict.add_argument("--submission", metavar="CSV",
                         help="also write a Kaggle DSB2018 submission (run-length encoded "
                              "nuclei; uses watershed instances when --instances is none)")
    existing = predict.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true",
                          help="replace masks already in --out (default: refuse)")
    existing.add_argument("--skip-existing", action="store_true",
                          help="segment only the images whose results are not in --out yet: "
                               "to continue a run that was stopped, or a folder that grew")
    _add_size_options(predict, native="segments the images as they are")
    _add_own_image_options(predict)
    _add_device(predict)
    predict.set_defaults(handler="predict:run")

    evaluate = add_command(
        "evaluate", help="score a model on a labelled dataset (IoU, Dice, DSB score)",
        description="Predict every image of a labelled dataset and compare with its masks. "
                    "Prints a table (per modality, and the worst images) or, with --json, "
                    "one JSON object {\"summary\": ..., \"images\": [...]} on stdout.",
    )
    _add_model(evaluate)
    evaluate.add_argument("data", metavar="DATA",
                          help="dataset folder, .zip or sample folder, or a folder of your "
                               "images beside their label images (cells.tif + "
                               "cells_labels.tif)")
    _add_channel_axes(evaluate, "with images beside label images: ")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--threshold", type=float, default=0.5,
                          help="foreground probability threshold (default: 0.5)")
    evaluate.add_argument("--worst", type=_count, default=10, metavar="N",
                          help="how many of the worst images the table lists (default: 10)")
    evaluate.add_argument("--split", choices=("all", "validation", "training"), default="all",
                          help="score every image (all), or only the images the model was "
                               "validated on / trained on, as the model records them "
                               "(default: all)")
    _add_size_options(evaluate, native="scores the images as they are")
    _add_device(evaluate)
    evaluate.set_defaults(handler="evaluate:run")

    finetune = add_command(
        "finetune", help="retrain a model on corrected masks (keeps every version)",
        description="Fine-tune MODEL on corrected image/mask pairs, mixed with the replay set "
                    "shipped with the plugin (and --data if given) so the model does not "
                    "forget other kinds of images. Each round is saved as a new version "
                    "<out>/versions/vNNN (never overwritten) and made current only if it gained "
                    "at least 0.01 mean IoU on the corrected images, lost nothing on the "
                    "images kept aside (--held-out) and no more than 0.005 on the built-in "
                    "regression set (and --eval-data).",
    )
    finetune.add_argument(
        "model", metavar="MODEL",
        help="the model to start from: a checkpoint, 'default' (the shipped model), "
             "'latest' (the current version in --out: the newest one that was made "
             "current, to continue a series of rounds), or a training run's, project's "
             "or version's folder",
    )
    finetune.add_argument(
        "corrections", metavar="CORRECTIONS_DIR",
        help="a folder of your images beside their corrected label images (cells.tif + "
             "cells_labels.tif, as predict names them; stored in the --out project), a "
             "fine-tuning project folder (with corrections/ and project.json; its images "
             "kept aside in the Retrain dock are held out, as with --held-out) or a "
             "DSB2018-style folder of corrected samples",
    )
    _add_channel_axes(finetune, "with images beside label images: ")
    finetune.add_argument("--out", required=True, metavar="DIR",
                          help="project folder for the model versions (created if missing)")
    finetune.add_argument("--data", metavar="ORIGINAL_DATA",
                          help="original training data, mixed in with the shipped replay set "
                               "(optional)")
    finetune.add_argument("--held-out", metavar="DATA",
                          help="corrected images kept aside: not trained on, scored before "
                               "and after (a round that gets worse on them is not made current)")
    finetune.add_argument("--no-replay", action="store_true",
                          help="do not mix in the shipped replay set (the model may then get "
                               "worse on other kinds of images)")
    finetune.add_argument("--eval-data", metavar="DATA",
                          help="labelled images scored before and after (to check nothing "
                               "got worse)")
    finetune.add_argument("--diameter", type=parse_diameter, default=0.0, metavar=METAVAR,
                          help=diameter_help(
                              "typical nucleus diameter of the corrected images, which are "
                              "trained on and scored at the size predictions show them to "
                              "the network (as predict and evaluate do)",
                              "trains on and scores them as they are"))
    finetune.add_argument("--ratio", type=float, default=None, metavar="R",
                          help="fraction of the training crops taken from the corrections "
                               "(0 < R <= 1; default: 0.75 for 1-3 corrected images, down to "
                               "0.5 for 8 and more)")
    # the defaults are the round's (core.finetune.FINETUNE_DEFAULTS, more_steps), written
    # out so that --help needs no core import; a test holds them to the code
    finetune.add_argument("--epochs", type=int, metavar="N",
                          help="epochs of fine-tuning (default: 12, up to 18 when the model is "
                               "far off on the corrections)")
    finetune.add_argument("--steps", "--steps-per-epoch", type=int, metavar="N",
                          help="optimisation steps per epoch (default: 8)")
    finetune.add_argument("--lr", type=float, metavar="LR",
                          help="peak learning rate (default: 0.001)")
    finetune.add_argument("--seed", type=int, metavar="N", help="random seed")
    finetune.add_argument("--threads", "--num-threads", type=int, metavar="N",
                          help="CPU threads (default: 1, which stays fast when the computer "
                               "is busy; more helps on an idle multi-core machine)")
    _add_device(finetune)
    finetune.set_defaults(handler="finetune:run")

    export = add_command(
        "export", help="share a model as a bioimage.io package (Fiji, ilastik, QuPath...)",
        description="Write MODEL as a bioimage.io model package (format 0.5): TorchScript, "
                    "ONNX and PyTorch weights, the preprocessing, test images, cover, README, "
                    "licence and citations. Needs the optional bioimageio.core package "
                    "(pip install -e \".[bioimageio]\" in the plugin's folder).",
    )
    export.add_argument("model", metavar="MODEL",
                        help="a checkpoint (.safetensors with its .json), 'default', a "
                             "training run's folder, or a fine-tuning project's or "
                             "version's folder")
    export.add_argument("--bioimageio", required=True, metavar="OUT.zip",
                        help="the package file to write")
    export.add_argument("--author", action="append", metavar="NAME",
                        help="an author of the model (repeat for several)")
    export.add_argument("--name", metavar="TEXT", help="the model's name in the package")
    export.add_argument("--license", default="CC-BY-4.0", metavar="SPDX",
                        help="licence of the weights, an SPDX id (default: CC-BY-4.0)")
    export.add_argument("--overwrite", action="store_true", help="replace OUT.zip")
    export.set_defaults(handler="export:run")

    demo = add_command(
        "demo", help="open napari with sample images, the model's predictions and scores",
        description="Open napari with the shipped sample images, predict them and show the "
                    "scores; with --screenshot, save a picture of the window and exit.",
    )
    demo.add_argument("--screenshot", metavar="PATH",
                      help="save a screenshot of the viewer to PATH and close it")
    demo.add_argument("--model", default="default", metavar="MODEL",
                      help="'default' (the shipped model) or a checkpoint path")
    demo.set_defaults(handler="demo:run")
    return parser


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _worker_count(text: str) -> int:
    """``--workers N``: 1 or more (0 ran in this process without a word: h_cli1, L11)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{value} worker processes: give 1 or more (leave --workers out to segment in "
            "this process)")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``nuclei-unet`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 2 for bad input (a one-line message on stderr),
        1 for an unexpected error, 130 when interrupted, 143 on SIGTERM.
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and argparse usage errors
        return int(exc.code or 0)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    from ._cli.pipes import readers_may_go

    with readers_may_go():  # `| head`: the work goes on, and so do its last words
        return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; its exit status, with any error said in one line."""
    module_name, function_name = args.handler.split(":")
    from ._cli.stopping import Terminated, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            _say_which_model(args)
            module = importlib.import_module(f"._cli.{module_name}", __package__)
            return int(getattr(module, function_name)(args) or 0)
    except BrokenPipeError:
        # a pipe of the command's own (not stdout or stderr, which readers_may_go keeps)
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the flush at exit
        except OSError:
            pass
        return 0
    except KeyboardInterrupt as exc:
        if args.debug:
            raise
        more = (" The images segmented so far are kept: run the same command with "
                "--skip-existing" + (" (in place of --overwrite)" if args.overwrite else "")
                + " to go on with the others." if args.command == "predict"
                and not args.submission and _wrote_some(args) else "")
        if isinstance(exc, Terminated):  # kill, scancel, a time-out (review h_rev17, F10)
            _error("stopped by a termination signal (SIGTERM)." + more)
            return EXIT_TERMINATED
        _error("interrupted (Ctrl-C)." + more)
        return EXIT_INTERRUPTED
    except (Exception, MemoryError) as exc:  # one line; --debug shows the traceback
        if args.debug:
            raise
        if is_user_error(exc):
            if not (another_rank() and is_refusal(exc)):
                _error(one_line(exc) + maybe_a_bug(exc))  # a refusal: said once (others,
                # out of memory on one GPU say, are that process's own: review h_rev25, B4)
            return EXIT_BAD_INPUT
        if is_out_of_memory(exc):
            _error(out_of_memory_message(exc))
            return EXIT_BAD_INPUT
        if is_killed_worker(exc):
            _error(killed_worker_message(
                exc, can_skip=not getattr(args, "submission", None)))
            return EXIT_BAD_INPUT
        if is_peer_lost(exc):
            _error(f"this process (rank {os.environ.get('RANK')}) stopped: "
                   + peer_lost_message(args))
            return EXIT_INTERNAL
        _error(
            f"unexpected {type(exc).__name__}: {one_line(exc)} -- this is a bug in "
            f"napari-nuclei-unet; please report it with the output of the same command "
            f"run with --debug."
        )
        return EXIT_INTERNAL


def _wrote_some(args: argparse.Namespace) -> bool:
    """Whether ``predict`` had written anything to ``--out`` when it was stopped.

    "The images segmented so far are kept" was said while the model was still loading
    (review h_rev17, L11).
    """
    out = getattr(args, "out", None)
    try:
        return bool(out) and os.path.isdir(out) and any(os.scandir(out))
    except OSError:
        return False


def _say_which_model(args: argparse.Namespace) -> None:
    """Name the model a MODEL folder stands for (a project's current version...)."""
    model = getattr(args, "model", None)
    if args.command not in ("predict", "evaluate", "export", "finetune") or not model \
            or getattr(args, "quiet", False) or not os.path.isdir(str(model)):
        return
    from .core.finetune.versions import describe_model_folder

    text = describe_model_folder(model)
    if text:
        print(f"model: {text}", file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
