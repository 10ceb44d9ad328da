"""``nuclei-unet info DATA``: what a dataset holds, and what could not be read."""

from __future__ import annotations

import argparse
import shlex
from collections import Counter
from statistics import median

from .data import load_samples, open_dataset


def _is_number(text: str) -> bool:
    return text.lstrip("+-").replace(".", "", 1).isdigit()


def format_table(rows: list[list[str]], *, indent: str = "  ", align_numbers: bool = True) -> str:
    """Align rows of cells into a plain-text table (numbers right-aligned if asked)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if align_numbers and _is_number(cell) else cell.ljust(width)
            for cell, width in zip(row, widths, strict=True)
        ]
        lines.append(indent + "  ".join(cells).rstrip())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the summary of a dataset on stdout.

    Parameters
    ----------
    args : argparse.Namespace
        ``data`` and ``quiet``. Every sample is decoded (masks included; fast when the
        decoded-dataset cache is fresh), so that samples with broken masks are listed
        as skipped and nuclei are counted from the decoded labels. ``data`` may also be
        a folder of images beside their label images or a fine-tuning project, as
        ``evaluate`` and ``finetune`` read them (review h_rev15, M14).

    Returns
    -------
    int
        0.
    """
    from pathlib import Path

    from ..core.dataset import DatasetError
    from ..core.stacks import is_image_file
    from .finetune import own_labelled_samples

    if Path(args.data).is_file() and is_image_file(args.data):
        from .failures import UsageError

        raise UsageError(f"{args.data} is one image: info summarises a dataset (a folder of "
                         "images). To segment this image: nuclei-unet predict default "
                         f"{shlex.quote(str(args.data))} --out FOLDER")
    skipped: list[tuple[str, str]] = []
    own = own_labelled_samples(args.data, quiet=args.quiet, axes=getattr(args, "axes", None),
                               channel=getattr(args, "channel", None), skipped=skipped)
    if own is not None:
        if not own:
            reasons = "; ".join(f"{name}: {why}" for name, why in skipped[:3])
            raise DatasetError(f"{args.data}: no labelled image could be read"
                               + (f" ({reasons})." if reasons else "."))
        print(f"Labelled images {args.data}")
        _summary(own, skipped=len(skipped) if skipped else None)
        if skipped:
            print()
            print(f"Skipped pairs ({len(skipped)}):")
            for name, why in skipped:
                print(f"  {name}: {why}")
        return 0
    from .finetune import refuse_own_image_options

    refuse_own_image_options(args, args.data)
    dataset = open_dataset(args.data, quiet=True)
    # Every mask is decoded (from the cache when it is fresh): a sample whose masks are
    # broken is reported as skipped, and nuclei are counted from the labels, not files.
    samples = load_samples(dataset, quiet=args.quiet, skipped_notes=False)  # listed below
    if not samples:
        reasons = "; ".join(f"{i}: {r}" for i, r in dataset.skipped[:3])
        raise DatasetError(f"{dataset.path}: no sample could be decoded ({reasons}).")
    print(f"Dataset {dataset.path}")
    _summary(samples, skipped=len(dataset.skipped))
    if dataset.skipped:
        print()
        print(f"Skipped samples ({len(dataset.skipped)}):")
        for sample_id, reason in dataset.skipped:
            print(f"  {sample_id}: {' '.join(str(reason).split())}")
    if dataset.stray_files:
        print()
        print(f"Ignored files, neither a sample's image nor a mask PNG "
              f"({len(dataset.stray_files)}):")
        for path in dataset.stray_files:
            print(f"  {path}")
    return 0


def _summary(samples: list, skipped: int | None = None) -> None:
    """The tables of ``info``: samples, nuclei, image sizes; samples by modality."""
    import numpy as np

    from ..core.dataset import MODALITIES

    counted = [int(np.count_nonzero(np.bincount(np.ravel(s.labels))[1:])) for s in samples]
    sizes = Counter("x".join(map(str, np.shape(s.image)[:2])) for s in samples)
    rows = [
        ["samples", str(len(samples))],
        ["nuclei", f"{sum(counted)} (median {median(counted):g} per image, "
                   f"min {min(counted)}, max {max(counted)})"],
        ["image sizes", ", ".join(f"{size}: {count}" for size, count in sizes.most_common(6))
         + (f" and {len(sizes) - 6} other sizes" if len(sizes) > 6 else "")],
    ]
    if skipped is not None:
        rows.append(["skipped", str(skipped)])
    print(format_table(rows, align_numbers=False))
    print()
    rows = [["modality", "samples", "nuclei"]]
    by_modality: Counter = Counter()
    nuclei_by_modality: Counter = Counter()
    for sample, n in zip(samples, counted, strict=True):
        by_modality[sample.modality] += 1
        nuclei_by_modality[sample.modality] += n
    for modality in (*MODALITIES, *sorted(set(by_modality) - set(MODALITIES))):
        rows.append([modality, str(by_modality.get(modality, 0)),
                     str(nuclei_by_modality.get(modality, 0))])
    print(format_table(rows))
