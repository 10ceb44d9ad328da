"""Export the model in use for bioimage.io from the Model dock: does the window freeze?

The Model dock's *Export for bioimage.io…* runs ``nuclei-unet export`` in a process of
its own. This compares it with the same export in a thread of napari's process (what a
plain worker would do): the export's time, and the longest gap of a 10 ms heartbeat on
the main thread meanwhile, in a 1280x800 window with the Model dock open. Each way
runs ``--repeat`` times (default 2), alternately.

Usage (needs a screen or Xvfb; the ``bioimageio`` extra)::

    xvfb-run -a -s "-screen 0 1280x800x24" python benchmarks/bench_export_gui.py
        [--model default] [--repeat 2] [--out /tmp]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from _gui_clock import Heartbeat, wait


def main() -> None:
    """Run the benchmark (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="MODEL to export (default: default)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each way (default 2)")
    parser.add_argument("--out", default=None, help="folder for the packages (default: temp)")
    args = parser.parse_args()

    import napari
    from qtpy.QtWidgets import QApplication

    from napari_nuclei_unet.bioimageio.export import export_bioimageio
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.core.finetune.versions import resolve_model_folder
    from napari_nuclei_unet.widgets._model_export import ExportChoice

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-nuclei-unet", "Model")
    app = QApplication.instance()
    widget.session.set_model(load_checkpoint(resolve_model_folder(args.model)))
    wait(app, lambda: not widget.session.jobs.kinds(), 120)
    time.sleep(0.5)
    folder = Path(args.out or tempfile.mkdtemp(prefix="bench-export-"))
    beat = Heartbeat()
    print("way                        export (s)   longest main-thread gap (ms)")
    for run in range(args.repeat):
        out = folder / f"dock-{run}.zip"
        beat.take()
        worker = widget.export_model(ExportChoice(out, "Nuclei U-Net (bench)", (), "MIT",
                                                  overwrite=True))
        seconds = wait(app, lambda: worker.handled)  # noqa: B023
        assert out.is_file(), widget.export_status.text()
        print(f"Model dock (own process)   {seconds:10.1f}   {beat.take():10d}")

        out = folder / f"thread-{run}.zip"
        done: list = []
        thread = threading.Thread(target=lambda: done.append(  # noqa: B023
            export_bioimageio(args.model, out, overwrite=True)))  # noqa: B023
        beat.take()
        thread.start()
        seconds = wait(app, lambda: not thread.is_alive())  # noqa: B023
        assert done, "the in-process export failed"
        print(f"thread of napari's process {seconds:10.1f}   {beat.take():10d}")
    viewer.close()


if __name__ == "__main__":
    main()
