"""Showing a large result in the Segment dock: how long is the window held?

When a large image's segmentation arrives, the dock adds its labels (an OME-Zarr array,
as :func:`~napari_nuclei_unet.core.bigimage.segment_large` writes them) to the viewer.
napari draws them on the main thread. This measures the longest gap of a 10 ms
main-thread heartbeat while the dock shows such a result, in a 1280x800 window with
the dock open over a ``--size`` x ``--size`` uint16 image:

* ``first``: the image's first result (a new Labels layer);
* ``again``: the same image segmented again (the dock's layer takes the new labels).

The network's work is replaced by writing synthetic labels (blocks of 30 px, about 40 %
of the image, up to 60,000 labels) so that only the showing is timed; ``--dtype``
chooses their type: ``uint16`` is what ``segment_large`` writes while the labels and
:data:`~napari_nuclei_unet.core.own_images.PAINT_ROOM` more fit, ``uint32`` beyond.

Usage (needs a screen or Xvfb)::

    xvfb-run -a -s "-screen 0 1280x800x24" python benchmarks/bench_show_result.py
        [--size 6000] [--dtype uint16|uint32] [--repeat 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _gui_clock import Heartbeat, wait


def synthetic_labels(size: int, dtype: str, seed: int = 0) -> np.ndarray:
    """Square 'nuclei' of 30 px on about 40 % of a ``size`` x ``size`` plane."""
    rng = np.random.default_rng(seed)
    cells = -(-size // 30)
    small = rng.integers(1, 60000, (cells, cells))
    small[rng.random(small.shape) < 0.6] = 0
    return np.kron(small, np.ones((30, 30), np.int64))[:size, :size].astype(dtype)


def main() -> None:
    """Run the benchmark (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=6000, help="image side (default 6000)")
    parser.add_argument("--dtype", default="uint16", choices=("uint16", "uint32"))
    parser.add_argument("--repeat", type=int, default=2, help="results shown (default 2)")
    args = parser.parse_args()

    import napari
    import zarr
    from qtpy.QtWidgets import QApplication

    import napari_nuclei_unet.widgets.segment_widget as segment_widget
    from napari_nuclei_unet.core.ome_zarr import create_array, open_ome_group
    from napari_nuclei_unet.widgets._own_layers import LayerResult

    labels = synthetic_labels(args.size, args.dtype)
    n = int(labels.max())
    folder = Path(tempfile.mkdtemp(prefix="bench-show-"))

    def job(*_args, planes, **_kwargs):  # the network's work, replaced
        yield from ()
        out = folder / f"run{len(list(folder.iterdir()))}" / "image_labels.ome.zarr"
        root = open_ome_group(out)
        create_array(root, "0", labels.shape, (1024, 1024), labels.dtype)[:] = labels
        table = {"label": np.arange(1, n + 1), "area": np.full(n, 900)}
        return LayerResult("image", zarr.open(str(out), mode="r+")["0"], table,
                           [planes[0] if planes else 0], "YX", out, False, 1.0)

    segment_widget._job = job
    try:
        viewer = napari.Viewer()
        viewer.window._qt_window.resize(1280, 800)
        rng = np.random.default_rng(1)
        image = viewer.add_image((rng.random(labels.shape) * 4000).astype(np.uint16),
                                 name="image")
        _, dock = viewer.window.add_plugin_dock_widget("napari-nuclei-unet",
                                                       "Segment image layer")
        app = QApplication.instance()
        heart = Heartbeat()
        wait(app, lambda: heart.clock.elapsed() > 3000)  # the window and dock drawn
        print(f"{args.size}x{args.size} {args.dtype} labels ({n} values), "
              f"image {image.data.dtype}:")
        for run in range(args.repeat):
            dock.image.value = image
            heart.take()
            started = time.perf_counter()
            worker = dock.segment()
            wait(app, lambda w=worker: dock._worker is None and w is not None)
            shown = time.perf_counter()
            wait(app, lambda s=shown: time.perf_counter() - s > 1.0)  # drawn meanwhile
            label = "first" if run == 0 else "again"
            print(f"  {label}: longest main-thread gap {heart.take()} ms "
                  f"(shown {shown - started:.2f} s after Segment)")
        viewer.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
