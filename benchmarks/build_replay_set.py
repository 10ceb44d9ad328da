"""Build the replay set shipped with the package (``models/replay/``), deterministically.

Fine-tuning rounds mix these crops of DSB2018 stage1_train with the user's corrections
so that the model keeps what it knew about other kinds of images, and score the
``check`` part of them before and after every round (the built-in regression set).

Only images of the shipped model's *training* split are used: its validation ids
(``models/default.json``, ``training_data.val_ids``) stay unseen, so the figures
measured on them stay honest. Images are grouped by modality and size (each group is
one kind of image in DSB2018); every group gets crops in proportion to the square root
of its size (at least 4 where it has them), one crop per image, placed where it holds
the most nuclei among a few seeded candidate windows. The first quarter of each group
(at least one crop in groups of two or more) is the ``check`` part, never trained on.

Usage::

    python benchmarks/build_replay_set.py [STAGE1_TRAIN] [--out DIR] [--total 128] [--size 192]

``STAGE1_TRAIN`` defaults to ``$NUCLEI_UNET_DSB2018``, then ``../shared/dsb2018/stage1_train``.
The same inputs always give byte-identical files (sorted ids, seeded choices, fixed PNG
settings). DSB2018 (BBBC038) is released under CC0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "src" / "napari_nuclei_unet" / "models" / "replay"
SEED = 20180416  # the Data Science Bowl 2018 launch date: any fixed number would do


def allocate(counts: dict[str, int], total: int, minimum: int = 4) -> dict[str, int]:
    """Crops per group: proportional to sqrt(group size), at least ``minimum``, at most all."""
    weights = {g: math.sqrt(n) for g, n in counts.items()}
    scale = total / sum(weights.values())
    return {g: int(min(counts[g], max(minimum, round(weights[g] * scale)))) for g in counts}


def best_window(labels: np.ndarray, size: int, rng: np.random.Generator,
                candidates: int = 8) -> tuple[int, int]:
    """Top-left corner of the candidate window holding the most nuclei (seeded)."""
    h, w = labels.shape
    best, best_count = (0, 0), -1
    for _ in range(candidates):
        y = int(rng.integers(0, h - size + 1))
        x = int(rng.integers(0, w - size + 1))
        window = labels[y:y + size, x:x + size]
        count = len(np.unique(window[window > 0]))
        if count > best_count:
            best, best_count = (y, x), count
    return best


def write_png(path: Path, array: np.ndarray) -> None:
    """Deterministic PNG (no timestamps, fixed compression)."""
    from PIL import Image

    Image.fromarray(array).save(path, format="PNG", compress_level=9, optimize=False)


def main(argv: list[str] | None = None) -> int:
    """Build the replay set; print what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=os.environ.get(
        "NUCLEI_UNET_DSB2018", str(ROOT.parent / "shared" / "dsb2018" / "stage1_train")))
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--total", type=int, default=128, help="crops in all (about)")
    parser.add_argument("--size", type=int, default=192, help="crop side in pixels")
    args = parser.parse_args(argv)

    from skimage.segmentation import relabel_sequential

    from napari_nuclei_unet.core.checkpoint import default_model_path, read_metadata
    from napari_nuclei_unet.core.dataset import DSBDataset

    val_ids = set(read_metadata(default_model_path()).get("training_data", {}).get("val_ids", []))
    if not val_ids:
        raise SystemExit("The shipped model records no validation ids: cannot keep them out.")
    dataset = DSBDataset.open(args.data, use_cache=False)
    groups: dict[str, list[str]] = defaultdict(list)
    for info in dataset.infos:  # sorted by id
        if info.id in val_ids or min(info.height, info.width) < args.size:
            continue
        groups[f"{info.modality}-{info.height}x{info.width}"].append(info.id)
    quota = allocate({g: len(ids) for g, ids in groups.items()}, args.total)

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    (out / "images").mkdir(parents=True)
    (out / "labels").mkdir()
    rng = np.random.default_rng(SEED)
    entries = []
    for group in sorted(groups):
        ids = groups[group]
        chosen = sorted(rng.choice(len(ids), size=quota[group], replace=False).tolist())
        n_check = max(1 if len(chosen) >= 2 else 0, len(chosen) // 4)
        for k, index in enumerate(chosen):
            sample = dataset.load(ids[index])
            y, x = best_window(sample.labels, args.size, rng)
            image = np.ascontiguousarray(sample.image[y:y + args.size, x:x + args.size, :3])
            labels = sample.labels[y:y + args.size, x:x + args.size]
            labels = relabel_sequential(labels.astype(np.int64))[0].astype(np.uint16)
            name = f"{len(entries):03d}"
            grey = bool(np.array_equal(image[..., 0], image[..., 1])
                        and np.array_equal(image[..., 0], image[..., 2]))
            write_png(out / "images" / f"{name}.png", image[..., 0] if grey else image)
            write_png(out / "labels" / f"{name}.png", labels)
            entries.append({"name": name, "source_id": sample.id, "group": group,
                            "modality": sample.modality, "y": y, "x": x, "size": args.size,
                            "n_nuclei": int(labels.max()),
                            "split": "check" if k < n_check else "train"})
    index = {"format": "napari-nuclei-unet replay set", "format_version": 1,
             "source": "DSB2018 stage1_train (BBBC038), CC0; training split of the shipped "
                       "model only", "seed": SEED, "crop_size": args.size, "crops": entries}
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    write_readme(out, entries, args.size)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    by_split = {s: sum(e["split"] == s for e in entries) for s in ("train", "check")}
    print(f"{len(entries)} crops ({by_split}) in {len(quota)} groups, {size / 1e6:.2f} MB -> {out}")
    for group in sorted(quota):
        print(f"  {group:32s} {quota[group]:3d} of {len(groups[group])}")
    return 0


def write_readme(out: Path, entries: list[dict], size: int) -> None:
    """The README listing every crop's source image, position and licence."""
    lines = [
        "# Replay set (built by `benchmarks/build_replay_set.py`; do not edit by hand)",
        "",
        f"{len(entries)} crops of {size} x {size} px from the DSB2018 stage1_train images",
        "(Broad Bioimage Benchmark Collection BBBC038, Caicedo et al. 2019, Nature Methods),",
        "released under **CC0 1.0** (public domain). Only images of the shipped model's",
        "training split are used (its validation ids stay unseen).",
        "",
        "`images/NNN.png`: the crop (8-bit grey when R = G = B, else RGB); `labels/NNN.png`:",
        "16-bit labels, 0 = background, 1..n = one nucleus each. `index.json` lists every",
        "crop: source image id, group (modality-size), position, split (`train`: mixed into",
        "fine-tuning rounds; `check`: the regression set scored before and after every round,",
        "never trained on).",
        "",
        "| crop | split | group | source image id | y | x |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {e['name']} | {e['split']} | {e['group']} | {e['source_id']} | {e['y']} | "
              f"{e['x']} |" for e in entries]
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
