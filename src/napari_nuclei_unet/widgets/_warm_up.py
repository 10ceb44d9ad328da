"""One tiny training step on a blank image, shared by the Train and Retrain docks' warm-ups.

The first training step of a process imports about a thousand modules; both docks run
this in a worker when they open so that the user's own run does not stall napari.
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_nuclei_unet.core.dataset import Sample


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
