"""Generalisation report of a model, on DSB2018 stage1_train only.

Scores (mean foreground IoU and DSB score, the mean AP over IoU 0.5:0.05:0.95) of the
model's validation images (the ids its checkpoint records) under the protocols of
issue 9, each predicted with ``segment_image``:

``native``
    the images as they are, segmented at native scale (``diameter`` = the model's
    training diameter: no resizing), as ``nuclei-unet evaluate --diameter native``;
``auto``
    the images as they are, automatic diameter (the default of ``evaluate``,
    ``predict`` and the GUI);
``x0.5``, ``x2``, ``x3``, any ``xF``
    images and labels resized by factor F (nuclei smaller / bigger, as at another
    magnification), automatic diameter; ``xF-fixed`` (or ``--fixed``) the same at native
    scale. ``x4`` and ``x5`` (nuclei 70-90 px, like confocal images at high
    magnification) are reported, never tuned on;
``dim10``
    intensities times 0.1 then rounded to 8 bit (a dim raw image), automatic diameter;
``zerobg``
    the background set to zero, as some acquisition and export software does: on
    images with a dark background, every pixel whose grey is under half Otsu's
    threshold becomes 0 (images with a bright background are left as they are),
    automatic diameter;
``bright10``, ``bright3``
    a few nuclei far brighter than the rest, as dividing or dying cells are in a DNA
    stain: on images with a dark background, one nucleus in ten (``bright10``, at least
    one) or three (``bright3``), drawn at random, and a 2 px ring around each, made 8
    times brighter; the grey image saved as 16 bit (times 100, plus 100). Images with a
    bright background are left as they are. Automatic diameter;
``bright10-8bit``
    ``bright10`` in 8 bit: the other nuclei at a third of their brightness, the bright
    ones (8 times that) saturating at 255;
``blob``
    one bright blob that is not a nucleus (dust, a stain aggregate): on dark-background
    images, a Gaussian of sigma 6 % of the image's smaller side, at a random place, 8
    times as bright as the image's 99.8th percentile, added; saved as 16 bit;
``camera16``, ``camera16-pad``
    a 16-bit camera image: on dark-background images, the grey times 10 plus an offset
    of 500 and noise (sigma 8); ``-pad`` frames it with zeros a third of its size wide
    on every side, as stitching, registration or padding do (labels framed alike);
``rot20``, ``camera16-rot5``
    rotated inside the bounding box of the rotation, the corners left black, as a
    registered or straightened image is saved: every image rotated by 20 degrees
    (``rot20``; bilinear, the labels by nearest neighbour), or the ``camera16`` image by
    5 degrees (``camera16-rot5``);
``sat3``
    overexposed: on dark-background images, the grey times 3, clipped at 255;
``blue``, ``green``
    fluorescence saved in colour: the grey of each dark-background image in the blue
    (green) channel of an RGB image, the other channels 0, as microscopes' software
    exports a DNA stain (a nuclear marker). Images with a bright background are left as
    they are;
``blurS``
    out of focus: every image (each channel) blurred by a Gaussian of sigma S pixels,
    e.g. ``blur1.5``, ``blur2.5``, ``blur3.5``; rounded to its dtype. Automatic diameter;
``blurS-camera16``
    out of focus as a camera records it, the noise added after the blur: the grey of a
    dark-background image blurred by sigma S, then made a ``camera16`` image (images
    with a bright background are left as they are).

``--no-focus`` scores every protocol without the recentring of out-of-focus planes'
maps (``SegmentOptions(focus=False)``: inference as it was before it).

``--tta`` adds every protocol again with flip test-time augmentation (``<protocol>-tta``),
with its cost.

``--logo`` runs leave-one-group-out: stage1_train is grouped by acquisition
(modality, image size and colour), and for each group a model is trained from scratch
for ``--minutes`` on every other image and scored on that group.

    NUCLEI_UNET_DSB2018=/work/shared/dsb2018/stage1_train \\
    python benchmarks/bench_generalisation.py --model default [--protocols ...]
        [--split validation|train] [--limit N] [--tta] [--threads N] [--json out.json]

``--split train --limit N`` scores a fixed subset of N of the model's *training* images
instead (evenly spaced in id order within each modality, in proportion to the
modalities): the images the inference parameters of ``core.segment`` and
``core.instances`` are tuned on, so the validation figures stay unseen.
    python benchmarks/bench_generalisation.py --logo --minutes 5 [--groups g1 g2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_nuclei_unet.core.metrics import image_scores
from napari_nuclei_unet.core.planes import smooth
from napari_nuclei_unet.core.segment import SegmentOptions, model_diameter, segment_image

PROTOCOLS = ("native", "auto", "x0.5", "x2", "x3", "dim10")


def _resize(array: np.ndarray, factor: float, order: int) -> np.ndarray:
    from skimage.transform import resize

    shape = (max(8, round(array.shape[0] * factor)), max(8, round(array.shape[1] * factor)))
    out = resize(array, shape + array.shape[2:], order=order, preserve_range=True,
                 anti_aliasing=order > 0 and factor < 1, mode="edge")
    return out.astype(array.dtype) if order == 0 else np.clip(np.round(out), 0, 255).astype(
        np.uint8) if array.dtype == np.uint8 else out


def _zero_background(image: np.ndarray) -> np.ndarray:
    """Pixels under half Otsu's threshold set to 0 (dark-background images only)."""
    from skimage.filters import threshold_otsu

    grey = image[..., :3].mean(axis=-1) if image.ndim == 3 else image.astype(np.float64)
    if np.median(grey) > 127:
        return image
    out = image.copy()
    out[grey < 0.5 * threshold_otsu(grey)] = 0
    return out


def _dark_grey(image: np.ndarray) -> np.ndarray | None:
    """The grey of a dark-background image (float64), or None for a bright background."""
    grey = image[..., :3].mean(axis=-1) if image.ndim == 3 else image.astype(np.float64)
    return None if np.median(grey) > 127 else grey


def _a_few_bright(grey: np.ndarray, labels: np.ndarray, count: int | None,
                  eight_bit: bool = False) -> np.ndarray:
    """``count`` nuclei (None: one in ten) and a 2 px ring 8 times brighter, in 16 bit.

    ``eight_bit``: in 8 bit instead, everything at a third of its brightness first.
    """
    from scipy import ndimage

    ids = np.unique(labels[labels > 0])
    k = max(1, round(0.1 * len(ids))) if count is None else count
    chosen = np.random.default_rng(int(labels.max())).choice(ids, size=min(k, len(ids)),
                                                              replace=False)
    gain = np.where(ndimage.binary_dilation(np.isin(labels, chosen), iterations=2), 8.0, 1.0)
    if eight_bit:
        return np.clip(np.round(grey * gain / 3), 0, 255).astype(np.uint8)
    return np.clip(np.round(grey * gain * 100 + 100), 0, 65535).astype(np.uint16)


def _camera(grey: np.ndarray, labels: np.ndarray, pad: bool):
    """The grey as a 16-bit camera image (x10, offset 500, noise 8), maybe framed by zeros."""
    noise = np.random.default_rng(0).normal(0.0, 8.0, grey.shape)
    camera = np.clip(np.round(grey * 10 + 500 + noise), 0, 65535).astype(np.uint16)
    if not pad:
        return camera, labels
    h, w = grey.shape
    widths = ((h // 3, h // 3), (w // 3, w // 3))
    return np.pad(camera, widths), np.pad(labels, widths)


def _blob(grey: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A bright Gaussian blob (not a nucleus) added at a random place, in 16 bit."""
    h, w = grey.shape
    rng = np.random.default_rng(int(labels.max()))
    cy, cx = rng.integers(0, h), rng.integers(0, w)
    sigma = 0.06 * min(h, w)
    yy, xx = np.mgrid[:h, :w]
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma * sigma))
    out = grey * 100 + 100 + blob * 8 * np.percentile(grey, 99.8) * 100
    return np.clip(np.round(out), 0, 65535).astype(np.uint16)


def _rotated(image: np.ndarray, labels: np.ndarray, degrees: float):
    """Image and labels rotated inside the rotation's bounding box, the corners 0."""
    from scipy import ndimage

    def turn(plane, order):
        return ndimage.rotate(plane, degrees, order=order, reshape=True, cval=0)

    if image.ndim == 3:
        planes = [turn(image[..., c].astype(np.float32), 1) for c in range(image.shape[2])]
        turned = np.stack(planes, axis=-1)
    else:
        turned = turn(image.astype(np.float32), 1)
    top = np.iinfo(image.dtype).max
    return np.clip(np.round(turned), 0, top).astype(image.dtype), turn(labels, 0)


def transform(protocol: str, image: np.ndarray, labels: np.ndarray):
    """The image and labels of one protocol (see the module notes)."""
    if protocol == "rot20":
        return _rotated(image, labels, 20.0)
    if protocol == "camera16-rot5":
        camera, _ = transform("camera16", image, labels)
        return (image, labels) if camera is image else _rotated(camera, labels, 5.0)
    if protocol in ("bright10", "bright3", "bright10-8bit", "blob", "sat3", "blue", "green",
                    "camera16", "camera16-pad"):
        grey = _dark_grey(image)
        if grey is None:
            return image, labels
        if protocol.startswith("camera16"):
            return _camera(grey, labels, protocol.endswith("-pad"))
        if protocol in ("blue", "green"):
            out = np.zeros(grey.shape + (3,), np.uint8)
            out[..., 2 if protocol == "blue" else 1] = np.round(grey).astype(np.uint8)
            return out, labels
        if protocol == "sat3":
            return np.clip(np.round(grey * 3), 0, 255).astype(np.uint8), labels
        if protocol == "blob":
            return _blob(grey, labels), labels
        return _a_few_bright(grey, labels, 3 if protocol == "bright3" else None,
                             eight_bit=protocol == "bright10-8bit"), labels
    if protocol.startswith("x"):
        factor = float(protocol[1:].split("-")[0])
        return _resize(image, factor, 1), _resize(labels, factor, 0)
    if protocol == "zerobg":
        return _zero_background(image), labels
    if protocol.startswith("blur") and protocol.endswith("-camera16"):
        grey = _dark_grey(image)
        if grey is None:
            return image, labels
        sigma = float(protocol[4:].removesuffix("-camera16"))
        return _camera(ndimage.gaussian_filter(grey, sigma), labels, False)
    if protocol.startswith("blur"):
        blurred = smooth(image, float(protocol[4:]))
        top = np.iinfo(image.dtype).max
        return np.clip(np.round(blurred), 0, top).astype(image.dtype), labels
    if protocol == "dim10":
        dim = np.round(image.astype(np.float32) * 0.1)
        return np.clip(dim, 0, 255).astype(np.uint8), labels
    return image, labels


def options_for(protocol: str, model, tta: bool, focus: bool = True) -> SegmentOptions:
    """Native protocols keep the model's scale; the others estimate the diameter."""
    protocol = protocol.removesuffix("-tta")
    if protocol == "native" or protocol.endswith("-fixed"):
        return SegmentOptions(diameter=model_diameter(model), tta=tta, focus=focus)
    return SegmentOptions(diameter=0.0, tta=tta, focus=focus)


def training_subset(dataset, ids: list[str], n: int) -> list[str]:
    """A fixed, modality-stratified subset of ``n`` of ``ids`` (no decoding needed).

    Each modality gets its share of ``n`` (at least one image), taken evenly spaced in
    id order, so the same ``n`` always gives the same images.
    """
    by_modality: dict[str, list[str]] = defaultdict(list)
    for sample_id in sorted(ids):
        by_modality[str(dataset.info(sample_id).modality)].append(sample_id)
    chosen = []
    for members in by_modality.values():
        k = min(len(members), max(1, round(n * len(members) / len(ids))))
        chosen += [members[int(i * len(members) / k)] for i in range(k)]
    return sorted(chosen)


def score_protocol(model, samples, protocol: str, *, tta: bool = False,
                   focus: bool = True) -> dict:
    """Mean IoU / DSB score of ``samples`` under ``protocol``, with timings."""
    ious, dsbs, seconds, diameters, images = [], [], [], [], []
    per_modality = defaultdict(list)
    for sample in samples:
        image, labels = transform(protocol.replace("-tta", ""), np.asarray(sample.image),
                                  np.asarray(sample.labels))
        tic = time.perf_counter()
        result = segment_image(model, image, options_for(protocol, model, tta, focus))
        seconds.append(time.perf_counter() - tic)
        s = image_scores(labels, result.labels)
        ious.append(s.iou)
        dsbs.append(s.dsb_score)
        diameters.append(result.diameter)
        images.append({"id": sample.id, "iou": s.iou, "dsb_score": s.dsb_score,
                       "diameter": result.diameter, "scale": result.scale,
                       "focus": result.focus})
        per_modality[str(sample.modality)].append((s.iou, s.dsb_score))
    return {
        "protocol": protocol, "tta": tta, "n": len(samples),
        "mean_iou": float(np.mean(ious)), "dsb_score": float(np.mean(dsbs)),
        "seconds_per_image": float(np.mean(seconds)),
        "median_diameter": float(np.median(diameters)),
        "per_modality": {m: {"n": len(v), "mean_iou": float(np.mean([a for a, _ in v])),
                             "dsb_score": float(np.mean([b for _, b in v]))}
                         for m, v in sorted(per_modality.items())},
        "images": images,
    }


def acquisition_groups(samples) -> dict[str, list]:
    """Group samples by acquisition: modality, image size, nucleus size and colour.

    Fluorescence is split by image size (the DSB2018 screens differ in camera) and, for
    the 334 images of 256x256, by nucleus size (magnification); histology by colour
    (purple H&E vs. other stains). Groups of fewer than 8 images join the ``-other``
    group of their modality.
    """
    from napari_nuclei_unet.core.instances import typical_diameter

    raw: dict[str, list] = defaultdict(list)
    for s in samples:
        image = np.asarray(s.image)
        h, w = image.shape[:2]
        modality = str(s.modality)
        if modality == "fluorescence":
            key = f"fluo-{h}x{w}"
            if (h, w) == (256, 256):
                d = typical_diameter(np.asarray(s.labels)) or 0.0
                key += "-small" if d < 12 else "-medium" if d < 24 else "-large"
        elif modality == "histology":
            rgb = image[..., :3].reshape(-1, 3).mean(0)
            key = "histo-purple" if rgb[2] > rgb[1] + 10 else "histo-other"
        else:
            key = modality
        raw[key].append(s)
    groups: dict[str, list] = defaultdict(list)
    for key, members in raw.items():
        if len(members) < 8:
            key = key.split("-")[0] + "-other"
        groups[key].extend(members)
    return dict(sorted(groups.items()))


def leave_one_group_out(samples, minutes: float, names, out_root: Path, threads: int) -> list:
    """Train without each group (from scratch, ``minutes`` each), score that group."""
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.progress import drive
    from napari_nuclei_unet.core.training import train

    groups = acquisition_groups(samples)
    rows = []
    for name, members in groups.items():
        if names and name not in names:
            continue
        held = {s.id for s in members}
        rest = [s for s in samples if s.id not in held]
        config = TrainConfig(crop_size=128, batch_size=16, epochs=100000, steps_per_epoch=100,
                             learning_rate=2e-3, val_fraction=0.05, augment_scale=1.0,
                             augment_strong=True, contour_head=True, modality_balance=0.5,
                             device="cpu", num_threads=threads, val_every=1000,
                             time_budget_s=minutes * 60)
        out = out_root / name
        tic = time.perf_counter()
        result = drive(train(config, rest, out_dir=out), lambda _u: None)
        model = load_checkpoint(result.best_checkpoint).model
        scored = score_protocol(model, members, "auto")
        scored.update(group=name, n_train=len(rest), train_minutes=(time.perf_counter() - tic)
                      / 60)
        rows.append(scored)
        print(f"{name:16s} n={len(members):3d} IoU {scored['mean_iou']:.3f} "
              f"DSB {scored['dsb_score']:.3f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="checkpoint path or 'default'")
    parser.add_argument("--data", default=os.environ.get("NUCLEI_UNET_DSB2018"),
                        help="stage1_train folder (default: $NUCLEI_UNET_DSB2018)")
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS),
                        help=f"any of {PROTOCOLS}, or xF / xF-fixed (factor F)")
    parser.add_argument("--fixed", action="store_true",
                        help="also score every xF protocol at native scale (no diameter "
                             "estimate)")
    parser.add_argument("--tta", action="store_true",
                        help="also score every protocol with flip TTA")
    parser.add_argument("--split", choices=("validation", "train"), default="validation",
                        help="the checkpoint's validation images, or its training images "
                             "(for tuning; use with --limit)")
    parser.add_argument("--limit", type=int, default=None,
                        help="validation: the first N images; train: a fixed stratified "
                             "subset of N")
    parser.add_argument("--no-focus", action="store_true",
                        help="no recentring of out-of-focus planes' maps (as before it)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--logo", action="store_true", help="leave-one-group-out instead")
    parser.add_argument("--minutes", type=float, default=5.0, help="training minutes per group")
    parser.add_argument("--groups", nargs="*", default=None, help="only these LOGO groups")
    parser.add_argument("--logo-out", default="/tmp/nuclei-logo", help="LOGO run folders")
    parser.add_argument("--list-groups", action="store_true", help="print the LOGO groups")
    args = parser.parse_args()
    if not args.data:
        sys.exit("Give --data or set NUCLEI_UNET_DSB2018 to the stage1_train folder.")

    import torch

    from napari_nuclei_unet._cli.evaluate import select_split
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.core.dataset import DSBDataset
    from napari_nuclei_unet.core.progress import drive

    torch.set_num_threads(args.threads)
    dataset = DSBDataset.open(args.data)
    results: dict = {"model": args.model, "data": args.data, "threads": args.threads,
                     "split": args.split, "limit": args.limit}
    if args.logo or args.list_groups:
        samples = drive(dataset.iter_load(None))
        if args.list_groups:
            for name, members in acquisition_groups(samples).items():
                print(f"{name:16s} {len(members):4d}")
            return
        results["logo"] = leave_one_group_out(samples, args.minutes, args.groups,
                                              Path(args.logo_out), args.threads)
    else:
        loaded = load_checkpoint(args.model)
        if args.split == "train":
            ids = select_split(dataset.ids(), loaded.metadata, "training")
            if args.limit:
                ids = training_subset(dataset, ids, args.limit)
        else:
            ids = select_split(dataset.ids(), loaded.metadata, "validation")
            ids = ids[: args.limit] if args.limit else ids
        samples = drive(dataset.iter_load(ids))
        model = loaded.model
        protocols = list(args.protocols)
        if args.fixed:
            protocols += [f"{p}-fixed" for p in protocols if p.startswith("x")]
        rows = []
        print(f"model {loaded.path} (training diameter {model_diameter(model):.1f} px, "
              f"{model.out_channels} output(s)), {len(samples)} {args.split} images")
        print(f"{'protocol':12s} {'mean IoU':>8s} {'DSB':>6s} {'s/image':>8s} {'diam':>6s}")
        runs = [(p, False) for p in protocols]
        runs += [(f"{p}-tta", True) for p in protocols] if args.tta else []
        for protocol, tta in runs:
            row = score_protocol(model, samples, protocol, tta=tta, focus=not args.no_focus)
            rows.append(row)
            print(f"{protocol:12s} {row['mean_iou']:8.3f} {row['dsb_score']:6.3f} "
                  f"{row['seconds_per_image']:8.2f} {row['median_diameter']:6.1f}", flush=True)
        results["protocols"] = rows
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
