"""Big-image and cluster benchmark: megapixels/s and peak memory, images/s with 1-2 workers.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_bigimage.py --size 8000 --threads 1
    OMP_NUM_THREADS=1 python benchmarks/bench_bigimage.py --size 20000 --threads 1 --skip-workers
    python benchmarks/bench_bigimage.py --workers-only --images 16 --seam-check 2048
    OMP_NUM_THREADS=1 python benchmarks/bench_bigimage.py --size 6000 --planes 2 \
        --skip-workers [--whole]

1. Writes a ``size x size`` uint16 tiled TIFF of synthetic nuclei (tile by tile, never
   the whole image in memory) into a temporary folder.
2. Segments it in a fresh process exactly as ``nuclei-unet predict`` does
   (:func:`~napari_nuclei_unet.core.own_images.process_file`: tifffile ``aszarr`` ->
   dask ``map_overlap`` blocks -> OME-Zarr labels -> tiled label TIFF + CSV) and reports
   megapixels/s and the peak resident memory of that process (``ru_maxrss``).
   ``--planes N``: a stack of N such planes (Z), each plane block by block;
   ``--whole``: each plane segmented whole instead, as stacks were before, to compare.
3. ``--seam-check SIZE``: segments a SIZE x SIZE slide with the local threaded scheduler
   and on a 2-worker ``LocalCluster`` and checks the labels are identical up to
   renumbering.
4. Segments a folder of ``--images`` 512 x 512 TIFFs on a ``LocalCluster`` with 1 and
   2 worker processes (one task per image) and reports images/s (cluster start-up
   excluded).

The issue's target: a 20,000 x 20,000 uint16 TIFF with peak RSS <= 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TILE = 512


def _pattern(seed: int = 0) -> np.ndarray:
    """A 1024 x 1024 uint16 patch of nuclei, repeated (shifted) over the slide."""
    from napari_nuclei_unet.core.synthetic import make_synthetic_sample

    rgb, _ = make_synthetic_sample("fluorescence", shape=(1024, 1024), seed=seed,
                                   n_nuclei=600)
    return rgb[..., 0].astype(np.uint16) * 40 + 100


def write_slide(path: Path, size: int, planes: int = 1) -> None:
    """Write a ``size x size`` uint16 tiled TIFF (``planes`` Z planes), tile by tile."""
    import tifffile

    patch = _pattern()
    ph, pw = patch.shape
    big = np.tile(patch, (2, 2))

    def tiles():
        for z in range(planes):
            for y in range(0, size, TILE):
                for x in range(0, size, TILE):
                    oy, ox = (y + 97 * z) % ph, (x + 61 * z) % pw
                    yield big[oy:oy + TILE, ox:ox + TILE]

    shape = (size, size) if planes == 1 else (planes, size, size)
    tifffile.imwrite(path, tiles(), shape=shape, dtype=np.uint16, tile=(TILE, TILE),
                     photometric="minisblack", bigtiff=planes * size * size * 2 > 2**31,
                     metadata={"axes": "YX" if planes == 1 else "ZYX"})


def run_one(path: str, out: str, threads: int, block: int, whole: bool = False) -> None:
    """(Child process) segment one slide and print a JSON line with time and peak RSS."""
    import torch

    torch.set_num_threads(threads)
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.core.own_images import process_file

    model = load_checkpoint("default").model
    Path(out).mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary = process_file(model, path, out, big_pixels=2**62 if whole else 1, block=block,
                           workers=1)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "pixels": summary.pixels,
                      "n_nuclei": summary.n_nuclei, "peak_rss_mb": peak_mb}))


def run_workers(folder: str, out: str, workers: int) -> None:
    """(Child process) segment a folder on a LocalCluster; print a JSON line with images/s."""
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.core.cluster import dask_client, map_files, torch_threads_per_worker
    from napari_nuclei_unet.core.progress import drive

    model_path = str(load_checkpoint("default").path)
    files = sorted(str(p) for p in Path(folder).glob("*.tif"))
    with dask_client(None, workers) as client:
        threads = torch_threads_per_worker(client)
        client.run(lambda: __import__("torch").set_num_threads(threads))
        drive(map_files(client, model_path, files[:workers], out + "-warm",
                        threads=threads))  # model loaded in every worker
        start = time.perf_counter()
        drive(map_files(client, model_path, files, out, threads=threads))
        seconds = time.perf_counter() - start
    print(json.dumps({"workers": workers, "images": len(files), "seconds": seconds,
                      "images_per_s": len(files) / seconds, "torch_threads": threads}))


def run_seam_check(path: str, out: str, block: int) -> None:
    """(Child process) the same slide tiled locally and on a 2-worker LocalCluster."""
    import dask.array as da
    import torch

    from napari_nuclei_unet.core.bigimage import segment_large
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.core.cluster import dask_client
    from napari_nuclei_unet.core.lazy_plane import LazyPlane
    from napari_nuclei_unet.core.progress import drive

    torch.set_num_threads(1)
    model_path = str(load_checkpoint("default").path)
    plane = da.from_array(LazyPlane(path, None, None), chunks=(block, block))
    start = time.perf_counter()
    plain = drive(segment_large(model_path, plane, Path(out) / "plain.zarr", block=block))
    t_plain = time.perf_counter() - start
    with dask_client(None, 2) as client:
        client.run(lambda: __import__("torch").set_num_threads(1))
        start = time.perf_counter()
        dist = drive(segment_large(model_path, plane, Path(out) / "dist.zarr", block=block,
                                   client=client, threads=1))
        t_dist = time.perf_counter() - start
    a, b = np.asarray(plain.labels()[:]), np.asarray(dist.labels()[:])
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]], axis=1), axis=0)
    same = bool(np.array_equal(a > 0, b > 0) and len(pairs) == len(np.unique(pairs[:, 0]))
                == len(np.unique(pairs[:, 1])))
    print(json.dumps({"identical_up_to_renumbering": same, "n_plain": plain.n_nuclei,
                      "n_dist": dist.n_nuclei, "blocks": plain.n_blocks,
                      "seconds_plain": t_plain, "seconds_2_workers": t_dist}))


def _child(*argv: str) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, __file__, *argv], check=True, capture_output=True,
                          text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Parse the arguments and run the benchmark (or one child job)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8000)
    parser.add_argument("--block", type=int, default=896)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--skip-workers", action="store_true")
    parser.add_argument("--seam-check", type=int, default=0, metavar="SIZE",
                        help="also segment a SIZE x SIZE slide locally and on 2 workers and "
                             "compare the labels")
    parser.add_argument("--workers-only", action="store_true")
    parser.add_argument("--planes", type=int, default=1,
                        help="a stack of this many planes of --size x --size")
    parser.add_argument("--whole", action="store_true",
                        help="segment each plane whole (the path stacks took before)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "one":
            run_one(rest[0], rest[1], args.threads, args.block, args.whole)
        elif kind == "seam":
            run_seam_check(rest[0], rest[1], args.block)
        else:
            run_workers(rest[0], rest[1], int(rest[2]))
        return
    with tempfile.TemporaryDirectory(prefix="bench-bigimage-") as tmp:
        tmp_path = Path(tmp)
        if not args.workers_only:
            slide = tmp_path / "slide.tif"
            start = time.perf_counter()
            write_slide(slide, args.size, args.planes)
            stack = f"{args.planes} x " if args.planes > 1 else ""
            print(f"wrote {stack}{args.size} x {args.size} uint16 TIFF "
                  f"({slide.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.0f} s")
            res = _child("--threads", str(args.threads), "--block", str(args.block),
                         *(["--whole"] if args.whole else []),
                         "--child", "one", str(slide), str(tmp_path / "out"))
            mp = res["pixels"] / 1e6
            how = ", each plane whole" if args.whole else ""
            print(f"big image: {stack}{args.size} x {args.size}{how}, "
                  f"{args.threads} torch thread(s), "
                  f"block {args.block}: {res['seconds']:.0f} s, {mp / res['seconds']:.2f} MP/s, "
                  f"peak RSS {res['peak_rss_mb']:.0f} MB, {res['n_nuclei']} nuclei")
        if args.seam_check:
            slide = tmp_path / "seam.tif"
            write_slide(slide, args.seam_check)
            (tmp_path / "seam").mkdir()
            res = _child("--block", str(args.block), "--child", "seam", str(slide),
                         str(tmp_path / "seam"))
            print(f"seam check {args.seam_check} x {args.seam_check} ({res['blocks']} blocks "
                  f"of {args.block}): local threads vs 2-worker LocalCluster identical up to "
                  f"renumbering: {res['identical_up_to_renumbering']} ({res['n_plain']} vs "
                  f"{res['n_dist']} nuclei; {res['seconds_plain']:.0f} s vs "
                  f"{res['seconds_2_workers']:.0f} s)")
        if args.skip_workers:
            return
        import tifffile

        folder = tmp_path / "many"
        folder.mkdir()
        patch = _pattern(1)
        for k in range(args.images):
            y, x = (k * 131) % 512, (k * 197) % 512
            tifffile.imwrite(folder / f"img{k:03d}.tif", patch[y:y + 512, x:x + 512])
        for workers in (1, 2):
            res = _child("--child", "workers", str(folder), str(tmp_path / f"w{workers}"),
                         str(workers))
            print(f"{args.images} images of 512 x 512 on a LocalCluster with {workers} "
                  f"worker process(es), {res['torch_threads']} torch thread(s) each: "
                  f"{res['images_per_s']:.2f} images/s")


if __name__ == "__main__":
    main()
