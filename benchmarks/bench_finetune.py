"""Time one interactive fine-tuning round: what the user waits for after "Retrain".

A round (:func:`napari_nuclei_unet.core.finetune.finetune`) on N corrected images =
find how inference shows them (``prep``: scale and smoothing, :mod:`..finetune.view`) +
score them with the base model + train (FINETUNE_DEFAULTS) + re-predict and score them
with the new model + save the version. Target: <= 30 s for 5 images with the default-size
model (base_width 16, depth 4) on a 2-core CPU.

Usage::

    python benchmarks/bench_finetune.py [--model default|CKPT] [--n 5] [--shape 256 256]
                                        [--originals 16] [--repeats 2] [--threads N]
                                        [--steps N] [--epochs N]

The corrections are synthetic histology images (a style the fluorescence-heavy
default model handles worst), the originals synthetic fluorescence. When the shipped
model is missing, a randomly initialised model of the default size is used: the time
does not depend on the weights. Prints the phases of each round, CPU seconds and the
load average (other jobs on the machine slow the wall figures down).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def make_samples(style, n, shape, seed):
    from napari_nuclei_unet.core.dataset import Sample
    from napari_nuclei_unet.core.synthetic import make_synthetic_sample

    samples = []
    for k in range(n):
        image, masks = make_synthetic_sample(style, shape=shape, seed=seed + k)
        labels = np.zeros(shape, np.int32)
        for i, mask in enumerate(masks, start=1):
            labels[mask] = i
        samples.append(Sample(f"{style}-{seed + k}", image, labels, style))
    return samples


def base_model(spec: str, folder: Path) -> str:
    from napari_nuclei_unet.core.checkpoint import default_model_path, save_checkpoint
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.model import UNet

    if spec != "default" or default_model_path().exists():
        return spec
    config = TrainConfig()
    print("shipped default model missing: timing a random model of the default size "
          f"(base_width {config.base_width}, depth {config.depth})")
    model = UNet(config.in_channels, config.base_width, config.depth)
    return str(save_checkpoint(folder / "random-default.safetensors", model, config, {}))


def one_round(model, corrections, originals, overrides, project):
    from napari_nuclei_unet.core.finetune import finetune

    marks = {}
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    job = finetune(model, corrections, original=originals, ratio=0.5,
                   config_overrides=overrides, out_dir=project)
    try:
        while True:
            update = next(job)
            now = time.perf_counter() - t0
            kind = type(update).__name__
            if getattr(update, "stage", "") == "prepare":
                marks["prepare_end"] = now
            if kind == "TrainStep" and "train_start" not in marks:
                marks["train_start"] = now
            if kind == "EpochEnd":
                marks["train_end"] = now
    except StopIteration as stop:
        result = stop.value
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    return result, wall, cpu, marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--n", type=int, default=5, help="corrected images")
    parser.add_argument("--shape", type=int, nargs=2, default=(256, 256))
    parser.add_argument("--originals", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()

    from napari_nuclei_unet.core.finetune import FINETUNE_DEFAULTS

    overrides = {"device": "cpu"}
    if args.threads:
        overrides["num_threads"] = args.threads
    if args.epochs:
        overrides["epochs"] = args.epochs
    if args.steps:
        overrides["steps_per_epoch"] = args.steps
    shape = tuple(args.shape)
    corrections = make_samples("histology", args.n, shape, 500)
    originals = make_samples("fluorescence", args.originals, shape, 600)
    settings = {**FINETUNE_DEFAULTS, **overrides}
    print(f"{args.n} corrections of {shape[0]}x{shape[1]}, {args.originals} originals; "
          f"epochs {settings['epochs']} x steps {settings['steps_per_epoch']}, batch "
          f"{settings['batch_size']}, crop {settings['crop_size']}; cpu count "
          f"{len(os.sched_getaffinity(0))}")
    with tempfile.TemporaryDirectory() as tmp:
        model = base_model(args.model, Path(tmp))
        print(f"{'round':>5} {'wall s':>7} {'cpu s':>7} {'prep':>5} {'score0':>7} {'train':>7} "
              f"{'score1+save':>11} {'IoU before':>10} {'IoU after':>9} {'load':>5}")
        for k in range(args.repeats):
            load = os.getloadavg()[0]
            result, wall, cpu, marks = one_round(model, corrections, originals, overrides,
                                                 Path(tmp) / f"project{k}")
            start, end = marks.get("train_start", 0.0), marks.get("train_end", wall)
            prep = marks.get("prepare_end", 0.0)
            print(f"{k + 1:>5} {wall:7.1f} {cpu:7.1f} {prep:5.1f} {start - prep:7.1f} "
                  f"{end - start:7.1f} "
                  f"{wall - end:11.1f} {result.mean_iou('corrected', 'before'):10.3f} "
                  f"{result.mean_iou('corrected', 'after'):9.3f} {load:5.1f}")


if __name__ == "__main__":
    main()
