"""Time opening and loading DSB2018 stage1_train: cold, and from the decoded cache.

Usage::

    python benchmarks/bench_load.py [PATH] [--workers N] [--keep-cache]

PATH defaults to $NUCLEI_UNET_DSB2018. A fresh temporary cache directory is used (so
the first load is really cold) unless --keep-cache is given, in which case the user
cache directory is used. The second open + load runs in a fresh process, as it would
in a later session. Prints a table: wall seconds, CPU seconds (this process and
its worker processes; CPU > wall means real parallelism), and the load average (other
jobs on the machine slow the wall figures down).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from tqdm import tqdm


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(label, fn, rows):
    load_before = os.getloadavg()[0]
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    result = fn()
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    rows.append((label, wall, cpu, load_before))
    return result


def drive_with_bar(job, desc):
    from napari_nuclei_unet.core.progress import drive

    bar = tqdm(total=0, desc=desc, unit="img", leave=False, mininterval=0.5)

    def update(p):
        bar.total = p.total
        bar.update(p.done - bar.n)

    try:
        return drive(job, update)
    finally:
        bar.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=os.environ.get("NUCLEI_UNET_DSB2018"))
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--keep-cache", action="store_true")
    parser.add_argument("--warm-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.path:
        parser.error("give PATH or set NUCLEI_UNET_DSB2018")
    tmp = None
    if not args.keep_cache and not args.warm_only:
        tmp = tempfile.mkdtemp(prefix="nuclei-unet-bench-")
        os.environ["NUCLEI_UNET_CACHE_DIR"] = tmp

    from napari_nuclei_unet.core import pngrows
    from napari_nuclei_unet.core.dataset import DSBDataset

    rows: list[tuple[str, float, float, float]] = []
    if args.warm_only:  # the second load, in a fresh process as in a later session
        ds = timed("open: index, from index cache", lambda: DSBDataset.open(args.path), rows)
        timed("load all: from decoded cache", lambda: drive_with_bar(ds.iter_load(), "load"), rows)
        print(json.dumps(rows))
        return
    try:
        ds = timed(
            "open: index, cold (decode 670 images)",
            lambda: drive_with_bar(DSBDataset.iter_open(args.path, workers=args.workers), "index"),
            rows,
        )
        samples = timed(
            "load all: decode every mask (cold)",
            lambda: drive_with_bar(ds.iter_load(workers=args.workers), "load"),
            rows,
        )
        n_images = len(samples)
        n_nuclei = sum(int(s.labels.max()) for s in samples)
        n_masks = sum(i.n_nuclei for i in ds.infos)
        del samples
        os.sync()  # let the cache file reach the disk, as it would before a later session
        out = subprocess.run(
            [sys.executable, __file__, args.path, "--warm-only"],
            check=True,
            capture_output=True,
            text=True,
            env=os.environ,
        ).stdout
        rows += [tuple(r) for r in json.loads(out.strip().splitlines()[-1])]
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    inflater = "libdeflate" if pngrows._fast_inflate is not None else "zlib"
    print(f"\n{args.path}: {n_images} images, {n_masks} mask files, {n_nuclei} nuclei decoded")
    print(f"cores: {len(os.sched_getaffinity(0))}, mask inflate: {inflater}")
    print(f"{'step':<42} {'wall s':>8} {'CPU s':>8} {'load avg':>9}")
    for label, wall, cpu, load in rows:
        print(f"{label:<42} {wall:8.2f} {cpu:8.2f} {load:9.2f}")
    cold = rows[0][1] + rows[1][1]
    warm = rows[2][1] + rows[3][1]
    print(f"{'first open + load (target <= 15 s)':<42} {cold:8.2f}")
    print(f"{'second open + load from cache (<= 2 s)':<42} {warm:8.2f}")


if __name__ == "__main__":
    main()
