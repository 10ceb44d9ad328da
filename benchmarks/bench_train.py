"""Training throughput (crops per second) of the engine's training step.

Uses the same pieces as ``core.training.train``: in-memory ``CropSampler`` (on the
training device, so a GPU run never copies images from the host), augmentation,
DiceBCE loss, AdamW, optional AMP and channels_last. Prints one row per base width.

    python benchmarks/bench_train.py                          # CPU, widths 16 32 64
    python benchmarks/bench_train.py --device cuda --base-width 64 --crop 256 --amp \
        --batch-size 128
    NUCLEI_UNET_DSB2018=/path/stage1_train python benchmarks/bench_train.py --data real

Synthetic images are used unless ``--data real`` (then the DSB2018 folder from
``--path`` or ``$NUCLEI_UNET_DSB2018``).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass

import numpy as np
import torch

from napari_nuclei_unet.core.augment import AugmentSettings, CropSampler
from napari_nuclei_unet.core.device import amp_dtype, configure_cpu_threads, resolve_device
from napari_nuclei_unet.core.losses import DiceBCELoss
from napari_nuclei_unet.core.model import UNet
from napari_nuclei_unet.core.training import _train_step


@dataclass
class _Sample:
    id: str
    image: np.ndarray
    labels: np.ndarray
    modality: str = "fluorescence"


def synthetic_samples(n: int = 64, size: int = 320, seed: int = 0) -> list[_Sample]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    samples = []
    for i in range(n):
        labels = np.zeros((size, size), np.int32)
        for k in range(30):
            cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(4, 12)
            labels[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = k + 1
        grey = (labels > 0) * 160 + rng.normal(20, 8, (size, size))
        image = np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
        samples.append(_Sample(f"syn{i}", image, labels))
    return samples


def real_samples(path: str, limit: int) -> list:
    from napari_nuclei_unet.core.dataset import DSBDataset
    from napari_nuclei_unet.core.progress import drive

    dataset = DSBDataset.open(path)
    return drive(dataset.iter_load(dataset.ids()[:limit]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--base-width", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default 8 on CPU, 128 on CUDA")
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps (default 5 CPU, 50 GPU)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--amp", action="store_true", help="bf16/fp16 autocast on CUDA")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data", choices=["synthetic", "real"], default="synthetic")
    parser.add_argument("--path", default=os.environ.get("NUCLEI_UNET_DSB2018"))
    parser.add_argument("--limit", type=int, default=200, help="real images to load")
    args = parser.parse_args()

    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    threads = configure_cpu_threads(args.threads) if device.type == "cpu" else None
    batch = args.batch_size or (128 if gpu else 8)
    steps = args.steps or (50 if gpu else 5)
    warmup = args.warmup if args.warmup is not None else (10 if gpu else 1)
    if gpu:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    samples = real_samples(args.path, args.limit) if args.data == "real" else synthetic_samples()
    sampler = CropSampler(samples, args.crop, AugmentSettings(scale=0.25), device=device)
    dtype = amp_dtype(device) if args.amp else None
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {threads} threads"
    print(f"device={device} ({name}) crop={args.crop} batch={batch} amp={dtype} "
          f"data={args.data} ({len(samples)} images) torch={torch.__version__}")
    print("| base width | params (M) | step (ms) | data (ms) | images/s |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for width in args.base_width:
        torch.manual_seed(0)
        model = UNet(base_width=width, depth=args.depth).to(device)
        model = model.to(memory_format=torch.channels_last)
        train_model = torch.compile(model) if args.compile else model
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4,
                                      fused=gpu)
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        loss_fn = DiceBCELoss()
        data_time = 0.0
        tic = 0.0
        for i in range(warmup + steps):
            if i == warmup:
                if gpu:
                    torch.cuda.synchronize()
                tic, data_time = time.perf_counter(), 0.0
            t0 = time.perf_counter()
            x, y = sampler.batch(rng, rng.integers(0, len(sampler), batch))
            x = x.contiguous(memory_format=torch.channels_last)
            data_time += time.perf_counter() - t0
            _train_step(train_model, optimizer, loss_fn, x, y, dtype, scaler)
        if gpu:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - tic
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"| {width} | {params:.2f} | {1000 * elapsed / steps:.0f} | "
              f"{1000 * data_time / steps:.0f} | {batch * steps / elapsed:.1f} |")


if __name__ == "__main__":
    main()
