"""``nuclei-unet evaluate MODEL DATA``: scores per modality and the worst images."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from .data import load_samples, open_dataset
from .diameter import NATIVE, check_diameter, diameter_in_pixels
from .info import format_table
from .predict import check_threshold
from .progress import ProgressBars, note, note_weights


def _number(value: Any, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def format_report(report: dict[str, Any], *, worst: int = 10) -> str:
    """Readable tables of an evaluation: overall and per modality, then the worst images.

    Parameters
    ----------
    report : dict
        ``EvaluationReport.to_json()``.
    worst : int
        How many of the lowest-IoU images to list.

    Returns
    -------
    str
    """
    summary = report["summary"]
    rows = [["", "images", "mean IoU", "median IoU", "mean Dice", "DSB score"]]

    def stats_row(name: str, stats: dict[str, Any]) -> list[str]:
        return [name, str(stats["n"]), _number(stats["mean_iou"]),
                _number(stats["median_iou"]), _number(stats["mean_dice"]),
                _number(stats["dsb_score"])]

    for modality, stats in summary.get("per_modality", {}).items():
        rows.append(stats_row(modality, stats))
    rows.append(stats_row("all", summary))
    lines = [format_table(rows)]
    images = sorted(report["images"], key=lambda image: image["iou"])[:max(0, worst)]
    if images:
        lines += ["", f"Worst {len(images)} images by IoU:"]
        table = [["id", "modality", "IoU", "Dice", "AP50", "nuclei", "predicted"]]
        for image in images:
            table.append([image["id"], image["modality"], _number(image["iou"]),
                          _number(image["dice"]), _number(image["ap50"]),
                          str(image["n_true"]), str(image["n_pred"])])
        lines.append(format_table(table))
    return "\n".join(lines)


def select_split(ids: list[str], metadata: dict[str, Any], split: str) -> list[str] | None:
    """The sample ids of one split of a model's training data (chosen before decoding).

    Parameters
    ----------
    ids : list of str
        Every sample id of the dataset.
    metadata : dict
        The checkpoint's JSON; its ``training_data.val_ids`` names the validation images.
    split : {"all", "validation", "training"}
        Which images to keep.

    Returns
    -------
    list of str or None
        The ids to load; None for ``"all"`` (load everything).

    Raises
    ------
    ValueError
        When the split is asked for but the checkpoint records no validation images, or
        none of them is in this dataset.
    """
    if split == "all":
        return None
    val_ids = set((metadata.get("training_data") or {}).get("val_ids") or ())
    if not val_ids:
        raise ValueError(
            "This model records no validation images, so --split "
            f"{split} cannot be used; evaluate with --split all."
        )
    keep = [i for i in ids if (i in val_ids) == (split == "validation")]
    if not keep:
        raise ValueError(
            f"None of this dataset's images is in the model's {split} split: was the model "
            "trained on another dataset? Use --split all."
        )
    return keep


def _note_trained_on(loaded: Any, ids: list[str], split: str, *, quiet: bool) -> None:
    """Say how many of the images scored the model learned from: their scores flatter it.

    ``evaluate default stage1_train`` mixed the shipped model's own training images in
    without a word (review h_rev15, M13).
    """
    from ..core.predict_score import splits_of

    marks = splits_of(loaded, ids)
    learned = [i for i in ids if marks.get(i) in ("train", "fine-tuned")]
    if not learned or quiet:
        return
    validation = sum(marks.get(i) == "validation" for i in ids)
    how = (" --split validation scores only the model's validation images." if validation
           and split == "all" else "")
    note(f"note: the model learned from {len(learned)} of these {len(ids)} images: their "
         "scores are better than on images it has never seen." + how)


def segment_options(args: argparse.Namespace, model: Any):
    """The :class:`SegmentOptions` of ``--diameter``/``--tta``; None: plain native scoring.

    The default (``--diameter`` 0) estimates the nucleus diameter of every image, as
    ``predict`` and the GUI do. ``--diameter native`` (or None) scores the images as
    they are: for a one-output (v1) model exactly as before the options existed
    (``None``), with ``--tta`` or a two-head model through ``segment_image`` at the
    model's training diameter.
    """
    diameter = getattr(args, "diameter", 0.0)
    tta = bool(getattr(args, "tta", False))
    native = diameter is None or diameter == NATIVE
    if native and not tta:
        return None
    from ..core.segment import SegmentOptions

    diameter = diameter_in_pixels(NATIVE if native else diameter, model)
    return SegmentOptions(diameter=diameter, threshold=args.threshold, tta=tta,
                          focus=not getattr(args, "no_focus", False))


def describe_options(options: Any, instance_method: str, two_heads: bool) -> str:
    """Plain words for how the images were segmented (the report's first line)."""
    split = "contour-seeded" if two_heads else "watershed"
    if options is None:
        split = split if two_heads else instance_method
        return f"{split} instances, native scale (no resizing)"
    size = ("diameter automatic (estimated per image)" if options.diameter == 0 else
            f"diameter {options.diameter:g} px")
    return f"{split} instances, {size}{', TTA' if options.tta else ''}"


def run(args: argparse.Namespace) -> int:
    """Evaluate a model on a labelled dataset; print a table or one JSON object.

    Parameters
    ----------
    args : argparse.Namespace
        ``model``, ``data``, ``json``, ``threshold``, ``worst``, ``device``, ``quiet``,
        and optionally ``diameter`` (pixels, 0 = automatic, the default; ``"native"``:
        no resizing) and ``tta``.

    Returns
    -------
    int
        0.
    """
    check_threshold(args.threshold)
    check_diameter(getattr(args, "diameter", 0.0))
    from .finetune import check_labelled_exists, own_labelled_samples

    check_labelled_exists(args.data)  # before the model is loaded
    from ..bioimageio.load import load_any_model
    from ..core.device import configure_cpu_threads, resolve_device
    from ..core.evaluation import evaluate
    from ..core.progress import drive

    device = resolve_device(args.device)
    loaded = load_any_model(args.model, device=device)  # checkpoint or bioimage.io
    note_weights(loaded)
    if device.type == "cpu":
        configure_cpu_threads()  # physical cores: hyper-threads slow convolutions down
    # a fine-tuning project, or your images beside their label images, as finetune reads them
    origins: dict[str, tuple[str, int]] = {}
    unread: list[tuple[str, str]] = []  # pairs that cannot be read: skipped, and said
    samples = own_labelled_samples(args.data, quiet=args.quiet,
                                   axes=getattr(args, "axes", None),
                                   channel=getattr(args, "channel", None), origins=origins,
                                   skipped=unread)
    where: Any = args.data
    if samples is not None and getattr(args, "split", "all") != "all" and not args.quiet:
        note(f"--split {args.split} is ignored: {args.data} is not the model's training "
             "data; every image is scored.")
    if samples is None:
        from .finetune import refuse_own_image_options

        refuse_own_image_options(args, args.data)
        dataset = open_dataset(args.data, quiet=args.quiet)
        ids = select_split(dataset.ids(), loaded.metadata, getattr(args, "split", "all"))
        samples = load_samples(dataset, quiet=args.quiet, ids=ids)
        where = dataset.path
    if not any(getattr(s, "has_labels", True) for s in samples):
        from ..core.dataset import DatasetError

        # an empty table and exit 0 (CLI check h_cli2, M3); info and finetune stop too
        why = ("; ".join(f"{name}: {reason}" for name, reason in unread[:3]) + "."
               if unread else "the notes above say why each was skipped.")  # (-q: none)
        raise DatasetError(f"No image of {where} could be scored: none could be read with "
                           f"its label masks ({why})")
    _note_trained_on(loaded, [s.id for s in samples], getattr(args, "split", "all"),
                     quiet=args.quiet)
    options = segment_options(args, loaded.model)
    with ProgressBars(quiet=args.quiet) as bars:
        report = drive(evaluate(loaded.model, samples, threshold=args.threshold, device=device,
                                segment_options=options), bars)
    data = report.to_json()
    for row in data["images"]:  # a script joins the scores to its files (h_cli3, M7)
        if row["id"] in origins:
            row["file"], row["plane"] = origins[row["id"]]
    data["summary"]["diameter"] = NATIVE if options is None else (
        "automatic" if options.diameter == 0 else options.diameter)
    data["summary"]["tta"] = bool(options is not None and options.tta)
    if unread:  # recorded, also under -q (review h_rev30, M2)
        data["skipped"] = [{"file": name, "reason": reason} for name, reason in unread]
    if args.json:
        print(json.dumps(data, allow_nan=False))
    else:
        how = describe_options(options, report.instance_method,
                               getattr(loaded.model, "out_channels", 1) > 1)
        shown = os.path.normpath(str(where))  # not "exp/../dsb5" (README check h_readme1)
        print(f"Model {loaded.path} on {shown} (threshold {args.threshold:g}, {how})")
        print(format_report(data, worst=args.worst))
        if report.skipped:
            print(f"\n{len(report.skipped)} image(s) without masks were not scored.")
        if unread:
            print(f"\nSkipped pairs, which cannot be read ({len(unread)}):")
            for name, reason in unread:
                print(f"  {name}: {reason}")
    return 0
