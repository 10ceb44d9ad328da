"""The classic U-Net recipe's training loop vs. ours, side by side, same wall time.

Classic loop (as in the popular DSB2018 starter notebooks, PyTorch Dataset style):
every epoch decodes each training image and all its mask PNGs from disk, resizes
image and mask to 256x256, trains in fp32 with Adam (lr 1e-3, constant), no
augmentation; prediction resizes the image to 256x256 and the probability map back.

Ours: ``core.training.train`` with the default ``TrainConfig`` (images decoded once and
kept in memory, random 256 px crops at native resolution, augmentation incl. scale
jitter and inversion, AdamW + warm-up + cosine fitted to the time budget with
``time_budget_s``, validation at native resolution).

Both get the same wall-clock budget, the same model size and the same seeded,
modality-stratified validation split; the score is the mean per-image foreground IoU
at 0.5 at native resolution.

    python benchmarks/bench_baseline.py --path /path/to/stage1_train --minutes 10 [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from napari_nuclei_unet.core.checkpoint import load_checkpoint
from napari_nuclei_unet.core.config import TrainConfig
from napari_nuclei_unet.core.dataset import DSBDataset
from napari_nuclei_unet.core.device import configure_cpu_threads
from napari_nuclei_unet.core.losses import DiceBCELoss
from napari_nuclei_unet.core.model import UNet
from napari_nuclei_unet.core.progress import drive
from napari_nuclei_unet.core.training import (
    EpochEnd,
    TrainStep,
    foreground_iou,
    split_train_val,
    train,
    validate,
)

SIZE = 256


def classic_item(root: Path, sample_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one sample from disk and resize it to SIZE x SIZE (image in [0, 1])."""
    image = Image.open(root / sample_id / "images" / f"{sample_id}.png").convert("RGB")
    image = image.resize((SIZE, SIZE), Image.BILINEAR)
    mask = np.zeros((SIZE, SIZE), bool)
    for mask_file in sorted((root / sample_id / "masks").glob("*.png")):
        nucleus = Image.open(mask_file).resize((SIZE, SIZE), Image.NEAREST)
        mask |= np.asarray(nucleus) > 0
    x = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0
    return x, mask.astype(np.float32)[None]


def run_classic(root: Path, train_ids: list[str], val_samples: list, budget_s: float,
                batch_size: int, base_width: int, seed: int) -> dict:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = UNet(base_width=base_width)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = DiceBCELoss()
    started = time.perf_counter()
    images = steps = 0
    while time.perf_counter() - started < budget_s:
        order = rng.permutation(len(train_ids))
        for first in range(0, len(order) - batch_size + 1, batch_size):
            items = [classic_item(root, train_ids[i]) for i in order[first : first + batch_size]]
            x = torch.from_numpy(np.stack([a for a, _ in items]))
            y = torch.from_numpy(np.stack([b for _, b in items]))
            model.train()
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            images += batch_size
            steps += 1
            if time.perf_counter() - started >= budget_s:
                break
    train_s = time.perf_counter() - started
    model.eval()
    ious = []
    with torch.inference_mode():
        for sample in val_samples:
            h, w = sample.labels.shape
            image = Image.fromarray(sample.image).resize((SIZE, SIZE), Image.BILINEAR)
            x = torch.from_numpy(np.asarray(image, np.float32).transpose(2, 0, 1)[None] / 255.0)
            prob = torch.sigmoid(model(x))
            prob = F.interpolate(prob, size=(h, w), mode="bilinear", align_corners=False)
            ious.append(foreground_iou(sample.labels > 0, prob[0, 0].numpy() > 0.5))
    return {"images_per_s": images / train_s, "steps": steps, "train_s": train_s,
            "val_iou": float(np.mean(ious))}


def run_ours(samples: list, budget_s: float, threads: int | None, base_width: int,
             seed: int) -> dict:
    config = TrainConfig(base_width=base_width, epochs=1000, steps_per_epoch=50, val_every=2,
                         time_budget_s=budget_s, device="cpu", num_threads=threads, seed=seed)
    rates, steps, curve = [], 0, []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:

        def on_update(update):
            nonlocal steps
            if isinstance(update, TrainStep):
                rates.append(update.images_per_s)
                steps += 1
            elif isinstance(update, EpochEnd) and update.val_iou is not None:
                curve.append((update.elapsed_s / 60, update.val_iou))
                print(f"  ours: {update.elapsed_s / 60:5.2f} min  val IoU {update.val_iou:.4f}",
                      flush=True)

        result = drive(train(config, samples, out_dir=out), on_update)
        elapsed = time.perf_counter() - started
        best = load_checkpoint(result.best_checkpoint)
        best_iou = best.metadata["metrics"]["val_iou"]
        # re-check the stored figure with the prediction path
        _, check_iou = validate(best.model, [s for s in samples if s.id in result.val_ids],
                                torch.device("cpu"))
    return {"images_per_s": config.batch_size * steps / elapsed, "steps": steps,
            "train_s": elapsed, "val_iou": best_iou, "val_iou_recomputed": check_iou,
            "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=os.environ.get("NUCLEI_UNET_DSB2018"),
                        help="stage1_train folder (default $NUCLEI_UNET_DSB2018)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--base-width", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["classic", "ours"], default=None)
    args = parser.parse_args()
    if not args.path:
        parser.error("give --path or set NUCLEI_UNET_DSB2018")
    threads = configure_cpu_threads(args.threads)
    budget = args.minutes * 60

    tic = time.perf_counter()
    dataset = DSBDataset.open(args.path)
    samples = drive(dataset.iter_load())
    load_s = time.perf_counter() - tic
    train_samples, val_samples = split_train_val(samples, 0.1, args.seed)
    print(f"{len(train_samples)} train / {len(val_samples)} val images; decoded once in "
          f"{load_s:.1f} s (ours only); budget {args.minutes:g} min; {threads} threads")

    rows = []
    if args.only in (None, "classic"):
        classic = run_classic(Path(args.path), [s.id for s in train_samples], val_samples, budget,
                              args.batch_size, args.base_width, args.seed)
        rows.append(("classic: decode+resize every epoch, fp32, Adam const", classic))
    if args.only in (None, "ours"):
        ours = run_ours(samples, budget, args.threads, args.base_width, args.seed)
        rows.append(("ours: in-memory native crops, aug, AdamW+cosine", ours))
        print("| minutes (ours) | val IoU |")
        print("|---|---|")
        for minutes, iou in ours["curve"]:
            print(f"| {minutes:.1f} | {iou:.4f} |")
    print("| recipe | images/s | steps | wall s | val IoU (mean per image, native res) |")
    print("|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['images_per_s']:.2f} | {r['steps']} | {r['train_s']:.0f} | "
              f"{r['val_iou']:.4f} |")


if __name__ == "__main__":
    main()
