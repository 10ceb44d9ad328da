"""``nuclei-unet export MODEL --bioimageio OUT.zip``: share a model as a bioimage.io package."""

from __future__ import annotations

import argparse
import shlex

from .progress import note


def run(args: argparse.Namespace) -> int:
    """Write the bioimage.io package of ``args.model`` to ``args.bioimageio``.

    Parameters
    ----------
    args : argparse.Namespace
        ``model``, ``bioimageio``, ``author``, ``name``, ``license``, ``overwrite``,
        ``quiet``.

    Returns
    -------
    int
        0.
    """
    from ..bioimageio.export import check_export, export_bioimageio

    if not args.bioimageio:
        raise ValueError("Give the package to write: --bioimageio OUT.zip")
    check_export(args.model, args.bioimageio, name=args.name, overwrite=args.overwrite,
                 license=args.license)
    note(f"exporting {args.model} (TorchScript, ONNX and PyTorch state dict) ...",
         quiet=args.quiet)
    path = export_bioimageio(args.model, args.bioimageio, authors=args.author or (),
                             name=args.name, license=args.license, overwrite=args.overwrite)
    print(path)
    if not args.author:
        note("tip: add --author 'Your Name' (repeatable) to credit the model's authors",
             quiet=args.quiet)
    note("check it with: python -m napari_nuclei_unet.bioimageio test "
         + shlex.quote(str(path)),
         quiet=args.quiet)
    return 0
