"""``nuclei-unet train DATA --out DIR``: train a U-Net, keep the best checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .data import load_samples, open_dataset
from .predict import counted
from .progress import TrainReporter, note
from .stopping import StopRequest
from .train_options import config_from_args


def run(args: argparse.Namespace) -> int:
    """Train on a dataset and print the best checkpoint's path on stdout.

    Parameters
    ----------
    args : argparse.Namespace
        ``data``, ``out``, ``config``, ``resume``, ``init``, ``time_limit``, ``quiet``
        and the training configuration options.

    Returns
    -------
    int
        0, also when stopped by the time limit (the checkpoints are saved); 130 when
        stopped by Ctrl-C (they are saved too), so that ``train ... && predict ...`` stops;
        2 when the time limit ran out before the first step (nothing to predict with).
    """
    from ..core import distributed
    from ..core.device import resolve_device
    from ..core.locking import hold_run_folder
    from ..core.paths import same_path
    from ..core.progress import drive
    from ..core.train_resume import resume_data
    from ..core.training import train

    if args.resume and Path(args.resume).is_dir():  # a run's folder: its last checkpoint
        args.resume = str(Path(args.resume) / "last.safetensors")  # (review h_rev24, L4)
    # Bad values fail here, before the (long) dataset load.
    notes: list[str] = []
    config = config_from_args(args, notes=notes)
    if distributed.launched_by_torchrun() and not distributed.is_active():
        _prepare_torchrun(args, distributed)  # data-parallel: see core/distributed.py
        with distributed.session(config.device):
            code = run(args)  # prints its notes once, on rank 0
        return distributed.leave_worker(code)  # the group is closed: no interpreter shutdown
    for line in notes:
        note(line, quiet=args.quiet)
    if args.resume:
        note(f"Resuming {args.resume} with the configuration it was started with "
             "(options given on this command line win).", quiet=args.quiet)
    # resumed into another run's folder, that run's last and best were taken over (its
    # best printed as this run's): refused as a new run there is (review h_rev24, M5)
    elsewhere = not args.resume or not same_path(Path(args.resume).parent, args.out)
    device = resolve_device(config.device)
    # One writer per run folder: a second run on the same --out fails here, at once
    # (under torchrun, rank 0 holds it for the job).
    with (hold_run_folder(args.out),
          StopRequest(args.time_limit, what="training", quiet=args.quiet) as stop):
        if elsewhere and not getattr(args, "overwrite", False):  # once the run in it is
            _refuse_trained_folder(Path(args.out))  # said: --resume on it advised (h_readme1)
        dataset = _open_training_data(args)
        samples = load_samples(dataset, quiet=args.quiet, should_stop=stop)
        if stop.stopped:
            note("Stopped while loading the dataset; nothing was trained.", quiet=args.quiet)
            return stop.exit_status
        if args.resume:  # the run's validation images stay so; another dataset: refused
            labelled = [s for s in samples if getattr(s, "has_labels", True)]
            change = resume_data(args.resume, labelled, config)[2]
            if change:
                note(change, quiet=args.quiet)
        where = (f"{distributed.world_size()} processes ({device} each)"
                 if distributed.is_active() else str(device))
        note(f"Training on {counted(len(samples), 'sample')} on {where} "
             f"({counted(config.epochs, 'epoch')}, "
             f"crops {config.crop_size}, batch {config.batch_size}); checkpoints in {args.out}",
             quiet=args.quiet)
        stop.start_clock()
        with TrainReporter(quiet=args.quiet) as reporter:
            result = drive(
                train(config, samples, out_dir=args.out, resume_from=args.resume,
                      init_from=args.init, should_stop=stop),
                reporter,
            )
    if not result.trained:
        if stop.interrupted:
            note(f"Training stopped ({stop.why}) before its first step: nothing was trained, "
                 f"and no model was saved in {args.out}.", quiet=args.quiet)
            return stop.exit_status
        # exit 0 with nothing on stdout read as done to `train ... && predict ...`
        from .failures import UsageError

        raise UsageError(
            f"The time limit ({args.time_limit:g} min) ran out while the training data was "
            f"being prepared, before the first training step: nothing was trained, and no "
            f"model was saved in {args.out}. Give a longer --time-limit.")
    if result.cancelled:
        note(f"Training stopped ({stop.why}). Best checkpoint kept: {result.best_checkpoint}; "
             f"last state saved to {result.last_checkpoint} (continue with "
             f"--resume {result.last_checkpoint}).", quiet=args.quiet)
    elif result.stopped_early:  # counted in validations (every --val-every epochs)
        every = (f" (one every {config.val_every} epochs)" if config.val_every > 1 else "")
        note(f"Stopped early: no better validation IoU for {config.early_stopping_patience} "
             f"validations{every}. To train it further, resume it: its early stopping counts "
             "again from there (or add --patience none).", quiet=args.quiet)
    best = max((h.best_val_iou for h in result.history if h.best_val_iou is not None),
               default=None)
    if best is not None:
        note(f"Best validation IoU {best:.3f}.", quiet=args.quiet)
    if distributed.is_main():
        print(result.best_checkpoint)
    return stop.exit_status if result.cancelled and stop.interrupted else 0


def _open_training_data(args: argparse.Namespace) -> Any:
    """The DSB2018 dataset to train on; images beside label images are said to fine-tune.

    ``train`` refused the image + ``NAME_labels.tif`` folders that predict, evaluate and
    finetune read, with no word of what to do with them (CLI check h_cli3, M6).
    """
    from ..core.dataset import DatasetError

    try:
        return open_dataset(args.data, quiet=args.quiet)
    except DatasetError as exc:
        from ..core.finetune import FinetuneError, labelled_pairs

        try:
            pairs = labelled_pairs(args.data) if Path(args.data).is_dir() else []
        except (FinetuneError, OSError):
            pairs = []
        if not pairs:
            raise
        raise DatasetError(
            f"{exc} It holds {len(pairs)} image(s) beside their label images (e.g. "
            f"{pairs[0][1].name}), which train does not read: to teach a model those images, "
            f"fine-tune it on them (nuclei-unet finetune default {args.data} --out PROJECT; "
            "their labels are the corrections). evaluate and predict read such a folder as "
            "it is.") from None


def _refuse_trained_folder(out: Path) -> None:
    """Refuse ``--out`` holding a model of an earlier run: training would replace it.

    A model that took hours was lost when the command was repeated without
    ``--resume`` (review h_rev15, H3); ``predict`` and ``export`` refuse too.
    """
    from ..core.checkpoint import read_metadata
    from .failures import UsageError

    for name in ("best.safetensors", "last.safetensors"):
        path = out / name
        if not path.is_file():
            continue
        try:
            metrics = read_metadata(path).get("metrics")
            value = metrics.get("val_iou") if isinstance(metrics, dict) else None
        except (OSError, ValueError, RecursionError):
            value = None
        score = (f", validation IoU {value:.3f}" if isinstance(value, (int, float))
                 and not isinstance(value, bool) else "")
        last = out / "last.safetensors"
        resume = (f"continue that run with --resume {last}, " if last.is_file() else "")
        raise UsageError(
            f"{out} already holds a trained model ({name}{score}), which this run would "
            f"replace: {resume}choose another --out, or add --overwrite to replace it.")


def _prepare_torchrun(args: argparse.Namespace, distributed: Any) -> None:
    """Under torchrun: only rank 0 prints; a restarted group resumes from the run's last.

    torchrun's ``--max-restarts`` starts the whole group again with the same command
    line after a rank fails; the run then continues from ``<out>/last.safetensors``
    (written by rank 0 at the end of each epoch) when there is one, also for a run
    started with ``--init`` (it was refused as a folder holding a trained model) or
    with ``--resume`` of an older run (it went back to that one): review h_rev17, F7.
    """
    if not distributed.is_main():
        args.quiet = True
    last = Path(args.out) / "last.safetensors"
    if distributed.restart_count() and last.exists() and _newer_than(last, args.resume):
        args.resume, args.init = str(last), None
        note(f"torchrun restart {distributed.restart_count()}: resuming from {last}",
             quiet=args.quiet)
    elif distributed.restart_count():  # the first attempt passed the folder's check: what
        args.overwrite = True  # it holds (a best before any last) is this job's (h_rev16 L2)


def _newer_than(last: Path, resume: str | None) -> bool:
    """Whether ``last`` is the run's own progress, past what ``--resume`` gave (if any).

    By the epochs each has done (their ``history``), not by file time, which a copy can
    keep (review h_rev18, L7).
    """
    from ..core.checkpoint import read_metadata

    if resume is None:
        return True
    try:
        given = Path(resume)
        if given.resolve() == last.resolve():
            return False
        return len(read_metadata(last).get("history") or []) > len(
            read_metadata(given).get("history") or [])
    except (OSError, ValueError):
        return True
