"""Warm-ups run in workers when docks open, so that the user's first action does not stall.

* :func:`tiny_training_run` -- one tiny training step on a blank image, shared by the
  Train and Retrain docks: the first training step of a process imports about a
  thousand modules.
* :func:`import_layer_modules` -- the modules napari imports when the first image and
  label-mask layers are added (started by the Data dock).
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_nuclei_unet.core.dataset import Sample

#: What napari 0.9 imports, on the main thread, when the first Image and Labels layers
#: are added: xarray and pandas (``napari.utils._xarray_utils``), the histogram of the
#: contrast-limit controls, scipy.ndimage (thumbnails), scikit-image's colour modules
#: (the label colormap) and scipy.linalg. About 600 modules: the first image shown
#: stalled the window for 0.6-1.3 s (``benchmarks/bench_journey.py``).
LAYER_MODULES = (
    "xarray",
    "napari.components.histogram",
    "scipy.ndimage",
    "scipy.linalg",
    "skimage.color",
    "skimage.exposure",
    "skimage.util",
)


def import_layer_modules(names: tuple[str, ...] = LAYER_MODULES) -> list[str]:
    """Import ``names`` (in a worker: Python gives the main thread its turn meanwhile).

    Parameters
    ----------
    names : tuple of str
        Module names; those not installed are skipped.

    Returns
    -------
    list of str
        The names imported (or already imported).
    """
    import importlib

    done = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        done.append(name)
    return done


def tiny_training_run(*, validate: bool) -> tuple[Sample, np.ndarray]:
    """Train one step of a tiny model on a blank 32x32 image with one square nucleus.

    Parameters
    ----------
    validate : bool
        Validate on the same image too (exercises the validation code path).

    Returns
    -------
    tuple of Sample and numpy.ndarray
        The blank sample and its label mask.
    """
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.dataset import Sample
    from napari_nuclei_unet.core.progress import drive
    from napari_nuclei_unet.core.training import train

    labels = np.zeros((32, 32), np.int32)
    labels[8:20, 8:20] = 1
    image = np.repeat((labels[..., None] * 200).astype(np.uint8), 3, axis=2)
    blank = Sample("warm-up", image, labels, "fluorescence")
    config = TrainConfig(base_width=2, depth=1, crop_size=16, batch_size=1, epochs=1,
                         steps_per_epoch=1, num_threads=1, amp=False, device="cpu")
    with tempfile.TemporaryDirectory(prefix="nuclei-unet-warm-up-") as folder:
        drive(train(config, [blank], out_dir=folder, val_samples=[blank] if validate else []))
    return blank, labels
