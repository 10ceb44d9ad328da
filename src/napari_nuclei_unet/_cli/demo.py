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
    from .failures import UsageError

    try:
        from ..demo import run_demo
    except ImportError as exc:
        raise UsageError(
            f"The demo needs napari with a Qt backend, which could not be imported ({exc}). "
            "Install it with: pip install 'napari[pyqt6]'."
        ) from exc
    missing = no_display_reason()
    if missing:
        raise UsageError(missing)
    run_demo(screenshot=args.screenshot, model=args.model)
    if args.screenshot:
        print(args.screenshot)
    return 0


def no_display_reason(environ: dict | None = None, platform: str | None = None) -> str:
    """Why the demo's window cannot open here ("" when it can, or when we cannot tell).

    On Linux, Qt needs an X or Wayland display; without one it aborts the process
    with "Reinstalling the application may fix this problem", which misleads. A
    platform chosen with ``QT_QPA_PLATFORM`` is left to Qt.
    """
    import os
    import sys

    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux") or environ.get("QT_QPA_PLATFORM"):
        return ""
    if environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"):
        return ""
    return ("There is no screen to open the demo's window on (neither DISPLAY nor "
            "WAYLAND_DISPLAY is set). On a server, run it under a virtual screen: "
            "xvfb-run -a nuclei-unet demo --screenshot demo.png (see the README, Headless).")
