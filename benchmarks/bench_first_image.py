"""Open the workflow panel, then a dataset: when is its first image shown (issue 11)?

The panel makes the dataset workflow's nine hidden layers while the window is idle.
Opened over an image of the user's own (``--own``), it makes them only once a dataset
is opened, and the dataset's first image waits for them. Prints, in a 1280x800
window with a 10 ms heartbeat on the main thread: the layers once the panel's warm-up
is over, how long after the click on *Bundled samples* (or the opening of ``--data``)
the nine layers existed and the first image was shown, and the longest main-thread
gap of each stage.

Usage (needs a screen or Xvfb)::

    xvfb-run -a -s "-screen 0 1280x800x24" python benchmarks/bench_first_image.py [--own]
        [--early] [--data PATH] [--screenshot first.png]
"""

from __future__ import annotations

import argparse
import time

from _gui_clock import Heartbeat, wait


def main() -> None:
    """Run the benchmark (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--own", action="store_true",
                        help="add an image of the user's own before the panel opens")
    parser.add_argument("--data", help="a dataset to open (default: the bundled samples)")
    parser.add_argument("--early", action="store_true",
                        help="click as soon as the panel's tabs are built, not once its "
                             "warm-up is over")
    parser.add_argument("--screenshot", help="save the window here at the end")
    args = parser.parse_args()

    import napari
    import numpy as np
    from qtpy.QtWidgets import QApplication

    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    viewer = napari.Viewer(show=False)
    window = viewer.window._qt_window
    window.show()
    window.resize(1280, 800)
    app = QApplication.instance()
    if args.own:
        viewer.add_image(np.random.default_rng(0).integers(0, 255, (256, 256), np.uint8),
                         name="my cells")
    beat = Heartbeat()
    end = time.monotonic() + 1.0
    while time.monotonic() < end:  # the window's first draws
        app.processEvents()
    beat.take()
    panel = WorkflowPanel(viewer)
    viewer.window.add_dock_widget(panel, name="all steps")
    wait(app, lambda: panel.tabs_built.done and (args.early or panel.warm_up.done))
    names = [layer.name for layer in viewer.layers]
    print(f"panel open{'' if args.early else ', warm-up over'}: {len(names)} layers "
          f"{names}; longest gap {beat.take()} ms")
    session = session_for(viewer)
    start = time.monotonic()
    if args.data:
        panel.data.open_dataset(args.data)
    else:
        panel.data.open_bundled_samples()
    made = wait(app, lambda: sum(layer.name != "my cells" for layer in viewer.layers) >= 9)
    wait(app, lambda: session.current_id is not None)
    print(f"nine layers made after {made:.2f} s; first image shown after "
          f"{time.monotonic() - start:.2f} s; longest gap {beat.take()} ms")
    wait(app, lambda: panel.warm_up.done)
    print(f"warm-up over after {time.monotonic() - start:.2f} s; "
          f"longest gap {beat.take()} ms; {len(viewer.layers)} layers")
    if args.screenshot:
        window.grab().save(args.screenshot)
    viewer.close()


if __name__ == "__main__":
    main()
