"""The notes ``predict`` gives about an input file before it is segmented.

How its axes were read (guessed, or given over the file's own), and whether it looks like
a label image rather than a microscope image (CLI check h_cli2).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .progress import note


def note_guessed_planes(path: Path, stack: Any, args: argparse.Namespace) -> None:
    """A file without recorded axes whose few planes may be channels: say how they are read.

    A plain 2-plane TIFF was segmented as 2 planes with no word (CLI check h_cli2); the
    Segment dock says the same of such a layer.
    """
    if stack.few_planes is None:
        return
    axes = stack.stored_axes or stack.axes
    letter, n = stack.few_planes
    note(f"note: {path.name} does not record its axes ({axes} guessed): its {n} {letter} "
         f"entries are segmented as {n} planes. If they are channels, give --axes "
         f"{axes.replace(letter, 'C', 1)} and --channel with the nuclei's channel "
         f"(0-{n - 1}).", quiet=args.quiet)


def note_label_like(path: Path, stack: Any, args: argparse.Namespace) -> None:
    """An input that looks like a label image (nuclei numbered 1, 2, …): said.

    The Segment dock says so; a label image given to predict had no note (CLI check
    h_cli2). Its first plane's middle 512 x 512 pixels are looked at (a large file is not
    read whole).
    """
    import numpy as np

    from ..core.planes import looks_like_labels

    if stack.rgb or "Y" not in stack.axes or "X" not in stack.axes:
        return
    height, width = (stack.data.shape[stack.axes.index(a)] for a in "YX")
    top, left = max(0, height // 2 - 256), max(0, width // 2 - 256)
    channel = args.channel if "C" in stack.axes else None
    try:
        plane = stack.plane(0, channel, (slice(top, top + 512), slice(left, left + 512)))
    except (ValueError, IndexError, OSError):
        return
    if looks_like_labels(np.asarray(plane)):
        note(f"note: {path.name} looks like a label image (whole numbers, the same within "
             "each object), not a microscope image: its nuclei would mean nothing. Give the "
             "image it labels instead.", quiet=args.quiet)


def note_axes_overridden(path: Path, args: argparse.Namespace) -> None:
    """``--axes`` other than the axes the file records: said, as they are used anyway.

    ``--axes CZYX`` on an ImageJ ZCYX file overrode its metadata without a word (CLI
    check h_cli2).
    """
    from ..core.stacks import ImageFileError, open_stack

    try:
        recorded = open_stack(path).stored_axes
    except (ImageFileError, OSError, ValueError):
        return
    given = args.axes.strip().upper()
    if recorded and "Q" not in recorded and recorded.replace("S", "C") != given.replace("S", "C"):
        note(f"note: --axes {args.axes.upper()} is used for {path.name}, whose file records "
             f"{recorded}.", quiet=args.quiet)
