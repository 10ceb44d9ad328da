"""Prediction speed of the default-size U-Net on this machine.

Compares, for each image size, the plain eval model, BatchNorm fused into the convs,
fused + channels_last (fp32, then with the reduced precision ``amp_dtype`` picks: bf16 on
CPUs with native bf16), and the full ``predict_probability`` path (normalisation, fused
cached model, amp, tiling where needed), then ``segment_image`` (the whole call a user
makes: prediction, automatic nucleus diameter, instance labels) on a synthetic
fluorescence image of DSB2018-sized nuclei, at the model's training scale (diameter
given) and with automatic diameter (which costs extra passes when the nuclei are
outside the native range). Automatic diameter is the default of every front end
(``predict``, ``evaluate``, the GUI), so the targets (256x256 <= 50 ms, 1024x1024 <=
1 s) are checked for both columns. Prints a table of median milliseconds.

    python benchmarks/bench_predict.py [--base-width 16] [--depth 4] [--sizes 256 1024]
        [--repeats 10] [--threads N] [--checkpoint path|default] [--device cpu]
        [--real STAGE1_TRAIN [--real-count 30]]

``--real`` also times ``segment_image`` with the default automatic diameter on real
256 x 256 images of DSB2018 ``stage1_train`` (the checkpoint's validation images
first, then others), as a user meets it: the median and 90th percentile over the
images, and how many needed a second pass at another scale.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from napari_nuclei_unet.core.device import amp_dtype, configure_cpu_threads, resolve_device
from napari_nuclei_unet.core.inference import inference_model, predict_probability
from napari_nuclei_unet.core.model import UNet
from napari_nuclei_unet.core.segment import SegmentOptions, model_diameter, segment_image
from napari_nuclei_unet.core.synthetic import make_synthetic_sample


def timed(fn, repeats: int, device: torch.device) -> tuple[float, float]:
    """Median and best wall time in ms (after 2 warm-up calls)."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        tic = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - tic) * 1000)
    return statistics.median(times), min(times)


def verdict(ms: float, target: float | None) -> str:
    """``"<= 50 ok"`` / ``"<= 50 MISS"``; "" without a target."""
    if target is None:
        return ""
    return f"<= {target:.0f} " + ("ok" if ms <= target else "MISS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 520, 1024])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--checkpoint", default=None, help="load weights (path or 'default')")
    parser.add_argument("--tile-size", type=int, default=None)
    parser.add_argument("--real", default=None, metavar="STAGE1_TRAIN",
                        help="also time automatic-diameter segment_image on real 256x256 images")
    parser.add_argument("--real-count", type=int, default=30)
    args = parser.parse_args()

    device = resolve_device(args.device)
    threads = configure_cpu_threads(args.threads) if device.type == "cpu" else None
    if args.checkpoint:
        from napari_nuclei_unet.core.checkpoint import load_checkpoint

        model = load_checkpoint(args.checkpoint, device=device).model
    else:
        torch.manual_seed(0)
        model = UNet(base_width=args.base_width, depth=args.depth).to(device).eval()
    fused_plain = model.fuse_for_inference(channels_last=False).to(device)
    fused = inference_model(model, device)
    print(f"device={device} threads={threads} base_width={model.base_width} depth={model.depth} "
          f"outputs={getattr(model, 'out_channels', 1)} torch={torch.__version__}")
    amp = amp_dtype(device)
    header = ("size", "plain eval", "fused", "fused+CL", f"fused+CL {amp}", "predict_probability",
              "segment_image", "best", "target", "segment_image, auto diameter (default)",
              "target, auto")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    targets = {256: 50.0, 1024: 1000.0}
    rng = np.random.default_rng(0)
    for size in args.sizes:
        image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        x = torch.randn(1, 3, size, size, device=device)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            plain, _ = timed(lambda: model(x), args.repeats, device)  # noqa: B023
            fused_t, _ = timed(lambda: fused_plain(x), args.repeats, device)  # noqa: B023
            cl_t, _ = timed(lambda: fused(x_cl), args.repeats, device)  # noqa: B023
            if amp is not None:
                with torch.autocast(device.type, dtype=amp):
                    amp_t, _ = timed(lambda: fused(x_cl), args.repeats, device)  # noqa: B023
            else:
                amp_t = float("nan")
        kwargs = {"tile_size": args.tile_size} if args.tile_size else {}
        full, _ = timed(
            lambda: predict_probability(model, image, device=device, **kwargs),  # noqa: B023
            args.repeats, device,
        )
        nuclei, _ = make_synthetic_sample("fluorescence", shape=(size, size), seed=1)
        native = SegmentOptions(diameter=model_diameter(model))
        whole, best = timed(lambda: segment_image(model, nuclei, native),  # noqa: B023
                            args.repeats, device)
        auto, _ = timed(lambda: segment_image(model, nuclei), args.repeats,  # noqa: B023
                        device)
        target = targets.get(size)
        print(f"| {size}x{size} | {plain:.1f} | {fused_t:.1f} | {cl_t:.1f} | {amp_t:.1f} | "
              f"{full:.1f} | {whole:.1f} | {best:.1f} | {verdict(whole, target)} | "
              f"{auto:.1f} | {verdict(auto, target)} |")
    print("(median ms over", args.repeats, "runs; 'best' = fastest segment_image run)")
    if args.real:
        real_images(model, args.real, args.real_count, device, getattr(args, "checkpoint", None))


def real_images(model, root: str, count: int, device: torch.device, checkpoint) -> None:
    """Time default (automatic-diameter) ``segment_image`` on real 256 x 256 images."""
    from napari_nuclei_unet.core.dataset import DSBDataset

    dataset = DSBDataset.open(root)
    val_ids: list[str] = []
    if checkpoint:
        from napari_nuclei_unet.core.checkpoint import load_checkpoint

        meta = load_checkpoint(checkpoint, device="cpu").metadata
        val_ids = list((meta.get("training_data") or {}).get("val_ids") or [])
    square = {i.id for i in dataset.infos if (i.height, i.width) == (256, 256)}
    ids = [i for i in val_ids if i in square]
    ids += sorted(square - set(ids))
    times, resized = [], 0
    for sample_id in ids[:count]:
        image = dataset.load(sample_id).image
        median, _ = timed(lambda: segment_image(model, image), 3, device)  # noqa: B023
        times.append(median)
        resized += segment_image(model, image).scale != 1.0
    times.sort()
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    print(f"real 256x256 images ({len(times)}, validation first), segment_image with automatic "
          f"diameter: median {statistics.median(times):.1f} ms, 90th percentile {p90:.1f} ms, "
          f"max {times[-1]:.1f} ms; {resized} needed a pass at another scale")


if __name__ == "__main__":
    main()
