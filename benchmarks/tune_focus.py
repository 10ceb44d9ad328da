"""How the out-of-focus rule (``core.plane_passes.FOCUS_SOFT``) was chosen, on DSB2018 only.

Each image of a fixed, modality-stratified subset of the shipped model's *training* split
(``bench_generalisation.training_subset``) is blurred by a Gaussian of each sigma, predicted
once without the rule (``SegmentOptions(focus=False)``), and labelled at thresholds
0.3-0.95 of the network's own map (0.3-0.9 before 2026-12-07, evening; ``--rows`` reads
either). The script then prints, per sigma, the mean IoU at 0.5,
with the rule's threshold (linearly interpolated between the measured ones), and with the
best threshold of each image (an oracle), for the rule as shipped and for any other
settings given with ``--rule SOFT,SLOPE,MAX,BLUR``.

    NUCLEI_UNET_DSB2018=/work/shared/dsb2018/stage1_train \\
    python benchmarks/tune_focus.py --limit 240 --sigmas 0 1.5 2.5 3.5 --json focus.json \\
        --rule 0.2,8,0.9,0.55 --rule 0.25,8,0.9,0.58

``--split validation`` scores the checkpoint's validation images instead (after choosing).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def measure(model, sample, sigma: float) -> dict:
    """One blurred image: what the rule looks at, and its IoU at each threshold."""
    from bench_generalisation import transform

    from napari_nuclei_unet.core import plane_passes
    from napari_nuclei_unet.core.metrics import image_scores
    from napari_nuclei_unet.core.normalize import prepare_plane
    from napari_nuclei_unet.core.segment import (
        SegmentOptions,
        labels_from_maps,
        predict_network_maps,
    )

    image, labels = np.asarray(sample.image), np.asarray(sample.labels)
    if sigma:
        image, labels = transform(f"blur{sigma:g}", image, labels)
    net = predict_network_maps(model, image, SegmentOptions(focus=False))
    share = plane_passes.uncertain_share(net.maps[0], net.scale)
    blur = plane_passes.blur_measure(prepare_plane(image))
    return {
        "id": sample.id, "sigma": sigma, "scale": net.scale,
        "share": None if share is None else float(share),  # None: not judged
        "blur": -1.0 if blur is None else blur, "bright_background": blur is None,
        "thresholds": list(THRESHOLDS),
        "ious": [image_scores(labels, labels_from_maps(net, t).labels).iou
                 for t in THRESHOLDS],
    }


def rule_threshold(row: dict, *settings: float) -> float:
    """The threshold the rule with these settings gives ``row`` (as ``focus_threshold``)."""
    from napari_nuclei_unet.core.plane_passes import threshold_for

    if row["share"] is None:
        return 0.5
    return threshold_for(row["share"], None if row["bright_background"] else row["blur"],
                         *settings)


def report(rows: list[dict], rules: list[tuple[float, float, float, float]]) -> None:
    for sigma in sorted({row["sigma"] for row in rows}):
        part = [row for row in rows if row["sigma"] == sigma]
        at_half = np.mean([row["ious"][2] for row in part])  # 0.5 in either kind of row
        words = [f"sigma {sigma:g} ({len(part)} images): at 0.5 {at_half:.3f}"]
        for rule in rules:
            # rows written before 0.95 was measured hold 0.3-0.9
            got = [np.interp(rule_threshold(row, *rule),
                             row.get("thresholds", THRESHOLDS[:7]), row["ious"])
                   for row in part]
            changed = sum(rule_threshold(row, *rule) > 0.5 for row in part)
            words.append(f"rule {','.join(f'{v:g}' for v in rule)} {np.mean(got):.3f} "
                         f"({changed} changed)")
        words.append("best of each image "
                     f"{np.mean([max(row['ious']) for row in part]):.3f}")
        print("; ".join(words))


def main() -> None:
    from napari_nuclei_unet.core import plane_passes

    shipped = (plane_passes.FOCUS_SOFT, plane_passes.FOCUS_SLOPE, plane_passes.FOCUS_MAX,
               plane_passes.FOCUS_BLUR)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", default=os.environ.get("NUCLEI_UNET_DSB2018"))
    parser.add_argument("--split", choices=("train", "validation"), default="train")
    parser.add_argument("--limit", type=int, default=240)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 1.5, 2.5, 3.5])
    parser.add_argument("--rule", action="append", default=[],
                        help="SOFT,SLOPE,MAX,BLUR: other settings to report")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="write the per-image rows here")
    parser.add_argument("--rows", default=None, help="report rows written before")
    args = parser.parse_args()
    rules = [shipped] + [tuple(float(v) for v in rule.split(",")) for rule in args.rule]
    if args.rows:
        report(json.loads(Path(args.rows).read_text()), rules)
        return
    if not args.data:
        sys.exit("Give --data or set NUCLEI_UNET_DSB2018 to the stage1_train folder.")
    import torch
    from bench_generalisation import training_subset

    from napari_nuclei_unet._cli.evaluate import select_split
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.core.dataset import DSBDataset

    torch.set_num_threads(args.threads)
    dataset = DSBDataset.open(args.data)
    loaded = load_checkpoint(args.model)
    if args.split == "train":
        ids = training_subset(dataset, select_split(dataset.ids(), loaded.metadata,
                                                    "training"), args.limit)
    else:
        ids = select_split(dataset.ids(), loaded.metadata, "validation")
    rows = []
    for sample_id in ids:
        sample = dataset.load(sample_id)
        rows += [measure(loaded.model, sample, sigma) for sigma in args.sigmas]
    if args.json:
        Path(args.json).write_text(json.dumps(rows))
    report(rows, rules)


if __name__ == "__main__":
    main()
