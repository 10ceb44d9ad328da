"""``nuclei-unet demo``: open napari with the sample images and the model's predictions."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    """Run :func:`napari_nuclei_unet.demo.run_demo`.

    Parameters
    ----------
    args : argparse.Namespace
        ``screenshot`` (a path or None) and ``model`` (``"default"`` or a checkpoint).

    Returns
    -------
    int
        0.
    """
    from ..cli import UsageError

    try:
        from ..demo import run_demo
    except ImportError as exc:
        raise UsageError(
            f"The demo needs napari with a Qt backend, which could not be imported ({exc}). "
            "Install it with: pip install 'napari[pyqt6]'."
        ) from exc
    run_demo(screenshot=args.screenshot, model=args.model)
    if args.screenshot:
        print(args.screenshot)
    return 0
