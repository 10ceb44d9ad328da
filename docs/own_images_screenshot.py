"""Make docs/own-images.png: a user's 2-channel z-stack segmented with the dock.

Run from the repository root (needs the DSB2018 stage1_train folder for real nuclei)::

    NUCLEI_UNET_DSB2018=/path/to/stage1_train xvfb-run -a -s "-screen 0 1280x800x24" \
        python docs/own_images_screenshot.py docs/own-images.png

Three real fluorescence images of DSB2018 (256 x 256) become the Z planes of channel 0;
channel 1 is a blurred, shifted "cytoplasm" stain. The stack is written as an
OME-TIFF (ZCYX), opened in napari like a user's file, segmented (all planes, nuclear
channel 0) and the window, with the features table, is saved.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np


def _stack() -> np.ndarray:
    from PIL import Image
    from scipy import ndimage

    root = Path(os.environ["NUCLEI_UNET_DSB2018"])
    planes = []
    for folder in sorted(root.iterdir()):
        image = np.asarray(Image.open(folder / "images" / f"{folder.name}.png").convert("L"))
        if image.shape == (256, 256) and image.mean() < 40 and len(list(
                (folder / "masks").iterdir())) > 15:
            planes.append(image.astype(np.uint16) * 64)
        if len(planes) == 3:
            break
    nuclei = np.stack(planes)
    cyto = ndimage.gaussian_filter(np.roll(nuclei, 6, axis=2).astype(np.float32), (0, 8, 8)) * 1.5
    return np.stack([nuclei, cyto.astype(np.uint16)], axis=1)  # Z, C, Y, X


def main(out: str) -> None:
    """Build the stack, segment it in the dock and save the screenshot."""
    import napari
    import tifffile
    from qtpy.QtWidgets import QApplication

    from napari_nuclei_unet.widgets.segment_widget import SegmentWidget

    path = Path(tempfile.mkdtemp()) / "embryo_stack.ome.tif"
    tifffile.imwrite(path, _stack(), metadata={"axes": "ZCYX"})
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    viewer.open(str(path), plugin="napari", channel_axis=1, name=["nuclei", "cytoplasm"])
    viewer.layers["cytoplasm"].colormap = "magenta"
    viewer.layers["nuclei"].colormap = "cyan"
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment image layer", area="right")
    widget.image.value = viewer.layers["nuclei"]
    worker = widget.segment()
    while not getattr(worker, "handled", True):
        QApplication.processEvents()
    viewer.dims.set_current_step(0, 1)
    viewer.layers[-1].contour = 2
    widget.table.selectRow(2)
    for _ in range(20):
        QApplication.processEvents()
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
    viewer.screenshot(out, canvas_only=False, flash=False)
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/own-images.png")
