"""Training throughput with 1 and N data-parallel ranks (torchrun, DDP).

Usage::

    python benchmarks/bench_ddp.py                       # 1 and 2 CPU (gloo) ranks
    python benchmarks/bench_ddp.py --ranks 1 2 4 --device cuda   # GPUs (NCCL)

For each rank count the script starts ``torchrun --standalone --nproc_per_node=N`` on
itself; each rank trains on the same in-memory synthetic dataset (global batch
``--batch-size``, split over the ranks) and rank 0 reports the global images per second
over the steps after ``--warmup``. Start-up, data loading and the first steps are not
counted. Prints one JSON line per configuration and a summary table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _worker(args: argparse.Namespace) -> None:
    import torch

    from napari_nuclei_unet.core import distributed
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.dataset import DSBDataset
    from napari_nuclei_unet.core.progress import drive
    from napari_nuclei_unet.core.synthetic import write_synthetic_dataset
    from napari_nuclei_unet.core.training import TrainStep, train

    torch.set_num_threads(args.threads)
    with distributed.session(args.device), tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        write_synthetic_dataset(root, n_per_style=2, seed=0, shape=(256, 256))
        dataset = DSBDataset.open(root)
        samples = drive(dataset.iter_load(use_cache=False))
        config = TrainConfig(
            base_width=args.base_width, depth=args.depth, crop_size=args.crop_size,
            batch_size=args.batch_size, epochs=1, steps_per_epoch=args.warmup + args.steps,
            device=args.device, amp=args.device != "cpu", num_threads=args.threads,
            val_fraction=0.0, seed=0,
        )
        stamps: list[float] = []

        def on_update(update: object) -> None:
            if isinstance(update, TrainStep):
                stamps.append(time.perf_counter())

        drive(train(config, samples, out_dir=Path(tmp) / "run", val_samples=[]), on_update)
        counted = stamps[args.warmup:]
        rate = args.batch_size * (len(counted) - 1) / (counted[-1] - counted[0])
        if distributed.is_main():
            print(json.dumps({
                "ranks": distributed.world_size(), "threads_per_rank": args.threads,
                "device": args.device, "global_batch": args.batch_size,
                "crop": args.crop_size, "base_width": args.base_width, "depth": args.depth,
                "steps": len(counted) - 1, "images_per_s": round(rate, 2),
            }), flush=True)


def main() -> None:
    """Run the benchmark (or, under torchrun, one rank of it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1],
                        help="CPU threads per rank (several values: one run each)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop-size", type=int, default=128)
    parser.add_argument("--base-width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.threads = args.threads[0]
        _worker(args)
        return
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    results = []
    for threads in args.threads:
        for ranks in args.ranks:
            env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            command = [
                sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", str(ranks), str(Path(__file__).resolve()), "--worker",
                "--threads", str(threads), "--device", args.device,
                "--batch-size", str(args.batch_size), "--crop-size", str(args.crop_size),
                "--base-width", str(args.base_width), "--depth", str(args.depth),
                "--steps", str(args.steps), "--warmup", str(args.warmup),
            ]
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
            if done.returncode or not lines:
                sys.exit(f"{ranks} rank(s) failed:\n{done.stderr[-3000:]}")
            print(lines[-1], flush=True)
            results.append(json.loads(lines[-1]))
    print("\nranks  threads/rank  images/s")
    for r in results:
        print(f"{r['ranks']:5d}  {r['threads_per_rank']:12d}  {r['images_per_s']:8.2f}")


if __name__ == "__main__":
    main()
