"""An out-of-focus large image: segmented whole, and block by block as large planes are.

Usage::

    NUCLEI_UNET_DSB2018=../shared/dsb2018/stage1_train OMP_NUM_THREADS=2 \
        python benchmarks/bench_big_focus.py --grid 8 --sigma 2.5 --block 512 [--each-block]

A mosaic of ``grid x grid`` fluorescence images of 256 x 256 px from the shipped model's
training split (the first in id order; the validation images are never used), each
blurred by a Gaussian of ``--sigma`` px, is segmented with the shipped model and the
automatic diameter three ways: whole (:func:`~napari_nuclei_unet.core.segment.
segment_image`, one judgement of the plane), block by block
(:func:`~napari_nuclei_unet.core.bigimage.segment_large`: judged once on sample blocks,
:mod:`~napari_nuclei_unet.core.bigsize`), and with the out-of-focus rule off. Prints the
foreground IoU of each against the mosaic's labels and the thresholds used.
``--each-block``: blocks judged each on its own, as before 2026-12-07 (for comparison).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np


def mosaic(data: str, grid: int, sigma: float):
    """(grey uint8 plane, int32 labels) of ``grid x grid`` blurred training images."""
    from scipy.ndimage import gaussian_filter

    from napari_nuclei_unet.core.checkpoint import read_metadata
    from napari_nuclei_unet.core.dataset import DSBDataset

    dataset = DSBDataset.open(data)
    val = set(read_metadata("default")["training_data"]["val_ids"])
    ids = [i.id for i in dataset.infos if i.modality == "fluorescence"
           and (i.height, i.width) == (256, 256) and i.id not in val][:grid * grid]
    if len(ids) < grid * grid:
        sys.exit(f"only {len(ids)} images of 256 x 256 px: use a smaller --grid")
    image = np.zeros((256 * grid, 256 * grid), np.uint8)
    labels = np.zeros(image.shape, np.int32)
    offset = 0
    for k, sample_id in enumerate(ids):
        sample = dataset.load(sample_id)
        y, x = divmod(k, grid)
        grey = sample.image[..., :3].astype(np.float32).mean(axis=-1)
        grey = gaussian_filter(grey, sigma) if sigma else grey
        image[y * 256:(y + 1) * 256, x * 256:(x + 1) * 256] = np.clip(np.rint(grey), 0, 255)
        own = sample.labels.astype(np.int32)
        own[own > 0] += offset
        offset = int(own.max(initial=offset))
        labels[y * 256:(y + 1) * 256, x * 256:(x + 1) * 256] = own
    return image, labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("NUCLEI_UNET_DSB2018"))
    parser.add_argument("--grid", type=int, default=8)
    parser.add_argument("--sigma", type=float, default=2.5)
    parser.add_argument("--block", type=int, default=512)
    parser.add_argument("--each-block", action="store_true")
    args = parser.parse_args(argv)
    if not args.data:
        parser.error("give --data STAGE1_TRAIN or set NUCLEI_UNET_DSB2018")

    from dataclasses import replace

    from napari_nuclei_unet.core import bigimage
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.core.progress import drive
    from napari_nuclei_unet.core.segment import SegmentOptions, segment_image

    if args.each_block:  # the sample blocks measure the size only, as before
        measure = bigimage.sample_plane

        def size_only(*a, **k):
            return replace((yield from measure(*a, **k)), focus=0.0)

        bigimage.sample_plane = size_only
    image, labels = mosaic(args.data, args.grid, args.sigma)
    model = load_checkpoint("default", device="cpu").model

    def iou(pred) -> float:
        pred, true = np.asarray(pred) > 0, labels > 0
        return float((pred & true).sum() / (pred | true).sum())

    print(f"{args.grid}x{args.grid} images blurred by sigma {args.sigma} px "
          f"({image.shape[0]} x {image.shape[1]} px), blocks of {args.block} px"
          + (", each block judged on its own" if args.each_block else ""))
    for focus in (True, False):
        options = SegmentOptions(focus=focus)
        whole = segment_image(model, image, options, device="cpu")
        with tempfile.TemporaryDirectory() as folder:
            big = drive(bigimage.segment_large(model, image, f"{folder}/l.zarr", options,
                                               block=args.block))
            blocks = iou(big.labels()[:])
        print(f"rule {'on ' if focus else 'off'}: whole IoU {iou(whole.labels):.4f} "
              f"(threshold {whole.focus:.3f}), blocks IoU {blocks:.4f} "
              f"(threshold {big.focus:.3f}), nuclei {int(whole.labels.max())} / "
              f"{big.n_nuclei}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
