"""Drop a dataset on napari (``viewer.open``) and time the main thread (issue 11).

Opens ``PATH`` (``stage1_train.zip`` or a ``stage1_train`` folder) with the
plugin's reader, as a drag and drop does, in a 1280x800 window, and prints how
long the reader takes to claim the path (``get_reader``, asked on napari's main
thread before anything is read), how long ``viewer.open`` held the main thread,
when the first sample was shown in the Data panel, how many samples are listed
and decoded, and the memory added.
With ``--panel-open`` the workflow panel is opened first (as when the user
already works in it) and its own opening time is printed separately.

Usage (needs a screen or Xvfb)::

    xvfb-run -a -s "-screen 0 1280x800x24" python benchmarks/bench_drop_dataset.py \\
        /tmp/stage1_train.zip --panel-open --screenshot drop.png
"""

from __future__ import annotations

import argparse
import statistics
import time


def _spin(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.02)


def main() -> None:
    """Run the benchmark (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="stage1_train.zip or a stage1_train folder")
    parser.add_argument("--panel-open", action="store_true",
                        help="open the workflow panel before dropping the dataset")
    parser.add_argument("--screenshot", help="save the window here at the end")
    args = parser.parse_args()

    import napari
    import psutil
    from qtpy.QtWidgets import QApplication

    from napari_nuclei_unet._reader import get_reader
    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    app = QApplication.instance()
    _spin(app, 1.0)
    if args.panel_open:
        start = time.perf_counter()
        viewer.window.add_plugin_dock_widget("napari-nuclei-unet", "Nuclei U-Net (all steps)")
        print(f"opening the workflow panel: {time.perf_counter() - start:.2f} s (main thread)")
        _spin(app, 20.0)  # let its warm-up jobs (torch import, ...) finish
    claims = []
    for _ in range(20):  # napari asks the reader first, on its main thread
        start = time.perf_counter()
        claimed = get_reader(args.path) is not None
        claims.append(time.perf_counter() - start)
    print(f"claiming the path (get_reader): {1e3 * statistics.median(claims):.2f} ms "
          f"(median of 20; claimed: {claimed})")
    rss = psutil.Process().memory_info().rss
    start = time.perf_counter()
    viewer.open(args.path, plugin="napari-nuclei-unet")
    held = time.perf_counter() - start
    panel = next(w for w in viewer.window.dock_widgets.values() if isinstance(w, WorkflowPanel))
    data = panel.data
    while data.session.current_id is None and time.perf_counter() - start < 600:
        app.processEvents()
        time.sleep(0.02)
    first = time.perf_counter() - start
    _spin(app, 2.0)
    added = (psutil.Process().memory_info().rss - rss) / 2**20
    print(f"viewer.open held the main thread {held:.2f} s; first sample shown after {first:.1f} s;"
          f" {len(data.dataset)} samples listed, {len(data.session.samples)} decoded; "
          f"memory +{added:.0f} MiB")
    if args.screenshot:
        viewer.window._qt_window.grab().save(args.screenshot)
    viewer.close()


if __name__ == "__main__":  # the dataset index may start worker processes that import this
    main()
