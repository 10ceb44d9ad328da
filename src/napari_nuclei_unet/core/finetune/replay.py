"""The replay set shipped with the package: DSB2018 crops that keep rounds from forgetting.

``models/replay/`` (built by ``benchmarks/build_replay_set.py``) holds about 130 crops of
192 x 192 px of the shipped model's DSB2018 training images, stratified by kind of
image (modality and size). Two parts:

- ``train``: mixed into every fine-tuning round with the user's corrections (replay),
  so that the model keeps seeing the kinds of images it already handles;
- ``check``: never trained on; scored before and after every round as the built-in
  regression set (a round that gets worse on it is not made current).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ._common import FinetuneError

#: The shipped replay set.
REPLAY_DIR = Path(__file__).resolve().parents[2] / "models" / "replay"
SPLITS = ("train", "check")


@lru_cache(maxsize=4)
def _read(folder: str, split: str | None) -> tuple[Any, ...]:
    from PIL import Image

    from ..dataset import Sample
    from ..imageio import read_image

    root = Path(folder)
    try:
        index = json.loads((root / "index.json").read_text(encoding="utf-8"))
        crops = [c for c in index["crops"] if split is None or c["split"] == split]
        samples = []
        for crop in crops:
            image = read_image(root / "images" / f"{crop['name']}.png")
            with Image.open(root / "labels" / f"{crop['name']}.png") as handle:
                labels = np.asarray(handle, dtype=np.int32)
            sample = Sample(f"replay-{crop['name']}", np.array(image[..., :3], order="C"),
                            np.array(labels), str(crop["modality"]))
            samples.append(sample)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FinetuneError(
            f"The replay set in {root} is missing or damaged ({exc}). Reinstall "
            "napari-nuclei-unet, or pass replay=False (or --no-replay) to fine-tune without "
            "it (the model may then get worse on other kinds of images)."
        ) from exc
    return tuple(samples)


def replay_samples(split: str | None = "train", folder: str | Path | None = None) -> list[Any]:
    """The replay crops as :class:`~napari_nuclei_unet.core.dataset.Sample` objects.

    Parameters
    ----------
    split : {"train", "check"} or None
        ``"train"``: crops mixed into rounds; ``"check"``: the regression set; None: all.
    folder : str or pathlib.Path, optional
        Another replay set in the same layout (default: the shipped one).

    Returns
    -------
    list of Sample
        Ids ``replay-NNN``; decoded once per process and shared (do not modify them).

    Raises
    ------
    FinetuneError
        When the set is missing or damaged.
    """
    if split not in (*SPLITS, None):
        raise FinetuneError(f"split must be one of {SPLITS} or None, got {split!r}.")
    return list(_read(str(Path(folder) if folder is not None else REPLAY_DIR), split))
