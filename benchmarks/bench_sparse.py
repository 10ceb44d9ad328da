"""A few nuclei in a large field: does the background's noise become nuclei?

For each validation image with a dark background (grey fluorescence; the ids the
checkpoint records), a 96 x 96 crop centred on one of its nuclei is placed in the middle
of a square field of its own background: pixels drawn from the image's pixels more than
5 px from any labelled nucleus, smoothed by a Gaussian of 0.7 px, as a camera's noise
is. The crop alone (``--sizes 96``) is the reference; in 512 and 1024 px fields the
nuclei cover less than the 0.2 % of pixels above the normalisation's high percentile.
Reports the mean IoU against the crop's labels and how many images got nuclei outside
the crop (false nuclei in the empty field). Automatic diameter, as a user's prediction.

    NUCLEI_UNET_DSB2018=../shared/dsb2018/stage1_train \\
    python benchmarks/bench_sparse.py --model default [--sizes 96 512 1024] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

CROP = 96


def crop_around_a_nucleus(image: np.ndarray, labels: np.ndarray):
    """A ``CROP``-px crop of the image and labels centred on a nucleus, or None."""
    from scipy import ndimage as ndi

    half = CROP // 2
    height, width = image.shape
    for box in ndi.find_objects(labels):
        if box is None:
            continue
        cy = (box[0].start + box[0].stop) // 2
        cx = (box[1].start + box[1].stop) // 2
        if half <= cy < height - half and half <= cx < width - half:
            window = (slice(cy - half, cy + half), slice(cx - half, cx + half))
            return image[window], labels[window]
    return None


def sparse_field(image, labels, size: int, rng):
    """The crop in the middle of a ``size``-px field of the image's own background."""
    from scipy import ndimage as ndi

    found = crop_around_a_nucleus(image, labels)
    background = image[~ndi.binary_dilation(labels > 0, iterations=5)]
    if found is None or background.size < 100:
        return None
    crop, crop_labels = found
    field = rng.choice(background, size=(size, size)).astype(np.float32)
    field = np.clip(np.round(ndi.gaussian_filter(field, 0.7)), 0, 255).astype(np.uint8)
    truth = np.zeros((size, size), np.int32)
    at = (size - CROP) // 2
    field[at:at + CROP, at:at + CROP] = crop
    truth[at:at + CROP, at:at + CROP] = crop_labels
    return field, truth, at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default=os.environ.get("NUCLEI_UNET_DSB2018"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 512, 1024])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not args.data:
        sys.exit("Give --data or set NUCLEI_UNET_DSB2018 to the stage1_train folder.")
    import torch

    from napari_nuclei_unet._cli.evaluate import select_split
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.core.dataset import DSBDataset
    from napari_nuclei_unet.core.metrics import image_scores
    from napari_nuclei_unet.core.progress import drive
    from napari_nuclei_unet.core.segment import SegmentOptions, segment_image

    torch.set_num_threads(args.threads)
    dataset = DSBDataset.open(args.data)
    loaded = load_checkpoint(args.model)
    ids = select_split(dataset.ids(), loaded.metadata, "validation")
    rows = {size: [] for size in args.sizes}
    rng = np.random.default_rng(0)
    for sample in drive(dataset.iter_load(ids)):
        image, labels = np.asarray(sample.image), np.asarray(sample.labels)
        if image.ndim == 3:
            if np.ptp(image[..., :3].astype(int) - image[..., :1]) != 0:
                continue  # colour
            image = image[..., 0]
        if np.median(image) > 127:
            continue  # bright background
        for size in args.sizes:
            made = sparse_field(image, labels, size, rng)
            if made is None:
                break
            field, truth, at = made
            result = segment_image(loaded.model, field, SegmentOptions(diameter=0.0))
            outside = result.labels.copy()
            outside[at:at + CROP, at:at + CROP] = 0
            rows[size].append((image_scores(truth, result.labels).iou,
                               len(np.unique(outside)) - 1))
    print(f"model {loaded.path}")
    print(f"{'field':>6s} {'images':>6s} {'mean IoU':>8s} {'with false nuclei':>18s}")
    for size, got in rows.items():
        print(f"{size:6d} {len(got):6d} {np.mean([g[0] for g in got]):8.3f} "
              f"{sum(g[1] > 0 for g in got):18d}")


if __name__ == "__main__":
    main()
