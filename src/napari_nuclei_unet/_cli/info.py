"""``nuclei-unet info DATA``: what a dataset holds, and what could not be read."""

from __future__ import annotations

import argparse
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
        as skipped and nuclei are counted from the decoded labels.

    Returns
    -------
    int
        0.
    """
    import numpy as np

    from ..core.dataset import MODALITIES, DatasetError

    dataset = open_dataset(args.data, quiet=True)
    # Every mask is decoded (from the cache when it is fresh): a sample whose masks are
    # broken is reported as skipped, and nuclei are counted from the labels, not files.
    samples = load_samples(dataset, quiet=args.quiet, skipped_notes=False)  # listed below
    counted = {s.id: int(np.count_nonzero(np.bincount(s.labels.ravel())[1:])) for s in samples}
    infos = [info for info in dataset.infos if info.id in counted]
    if not infos:
        reasons = "; ".join(f"{i}: {r}" for i, r in dataset.skipped[:3])
        raise DatasetError(f"{dataset.path}: no sample could be decoded ({reasons}).")
    nuclei = [counted[info.id] for info in infos]
    sizes = Counter(f"{info.height}x{info.width}" for info in infos)
    print(f"Dataset {dataset.path}")
    print(format_table([
        ["samples", str(len(infos))],
        ["nuclei", f"{sum(nuclei)} (median {median(nuclei):g} per image, "
                   f"min {min(nuclei)}, max {max(nuclei)})"],
        ["image sizes", ", ".join(f"{size}: {count}" for size, count in sizes.most_common(6))
         + (f" and {len(sizes) - 6} other sizes" if len(sizes) > 6 else "")],
        ["skipped", str(len(dataset.skipped))],
    ], align_numbers=False))
    print()
    rows = [["modality", "samples", "nuclei"]]
    by_modality = Counter(info.modality for info in infos)
    nuclei_by_modality = Counter()
    for info in infos:
        nuclei_by_modality[info.modality] += counted[info.id]
    for modality in (*MODALITIES, *sorted(set(by_modality) - set(MODALITIES))):
        rows.append([modality, str(by_modality.get(modality, 0)),
                     str(nuclei_by_modality.get(modality, 0))])
    print(format_table(rows))
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
