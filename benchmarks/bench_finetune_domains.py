"""New-domain protocol of issue 12: does one default round on 3 corrections adapt the model?

For each domain (a kind of image from DSB2018 stage1_train, or a transformed one):

1. pick 3 images of the domain (seeded); their label masks stand in for the user's
   corrections;
2. run ONE fine-tuning round of the shipped model with the defaults (replay set
   included, no original training data: only the package and the 3 images);
3. score the OTHER images of the domain with the base and with the new model (target:
   +0.15 IoU where the base is below 0.75, and a higher DSB score; for a transformed
   domain, the base model is also scored on the same images untransformed, what the
   round's target compares with), and the validation
   split's other domains (the shipped model's ``val_ids`` outside the domain: lose at
   most 0.02 IoU); report the round's wall time (target <= 60 s on a 2-core CPU).

Images are scored as a user's predictions are made: ``segment_image`` with an automatic
nucleus diameter (resized to the model's training nucleus size, dim images smoothed),
through ``evaluate(..., segment_options=SegmentOptions(diameter=0))``. ``--native``
scores at native pixels instead (plain ``evaluate``, as this benchmark did before), to
compare with earlier figures.

Images that the replay set was cut from are never used as domain images (they ship with
the package). Domains:

- ``histology``: the colour (H&E, purple) group, 256 x 320;
- ``brightfield``: the grey bright-background group, 1024 x 1024;
- ``fluo-x3``: fluorescence 256 x 256 images of the training split upscaled 3 times
  (nuclei 3 times larger than anything in DSB2018);
- ``fluo-dim``: the same images at 8% of their brightness with camera noise (sigma 2
  grey levels) and an offset of 10, as on a weakly stained, short-exposure sample;
- ``fluo-blur``: the same images out of focus (Gaussian blur, sigma 2.5 px);
- ``fluo-haze``: the same images under widefield haze (their light spread by a Gaussian
  of sigma 5 px, 2.5 times as bright as their own) and uneven illumination (a smooth
  wave, 110 grey levels, of random phase), rescaled to 235 at the brightest: the nuclei's
  own detail is kept, at 0.35 of its contrast;
- ``fluo-cells``: the same images with the cells stained too, in the same channel (a
  band of about 5 px around each nucleus at 0.65 of its brightness, as with a whole-cell
  dye): the shipped model outlines the cells;
- ``histology-x2``: histology images of the training split upscaled 2 times (a higher
  magnification than DSB2018's tissue images).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_finetune_domains.py [STAGE1_TRAIN]
        [--domains histology,brightfield,fluo-x3,fluo-dim] [--n-correct 3] [--n-other 10]
        [--set key=value ...] [--no-replay] [--ratio R] [--model M] [--json OUT.json]
        [--native] [--thresholds 0.5,0.6,0.7,0.8] [--extrapolations 1,1.3,1.6]
        [--focus-off] [--extra-corrections K] [--routed]

``--thresholds`` also records, for the base and the new model, the mean IoU of the
corrected, other, validation (other domains) and regression images at each of these
probability thresholds (one prediction per image, re-thresholded): what a version's own
threshold would change (docs/finetuning.md, ninth check).
``--extrapolations`` runs the round with ``extrapolate=1`` (its trained weights) and
scores the other, validation (other domains) and regression images with the weights
carried k times as far from the base model, for each k (``extrapolate_weights``;
docs/finetuning.md, tenth check).
``--focus-off`` also scores the domain's other images, base and new model, with the
out-of-focus rule off (docs/finetuning.md, nineteenth check).
``--extra-corrections K`` corrects K more images of the domain, drawn after the others
(the draw's own 3 corrections and other images are kept): what far more corrections
reach (docs/finetuning.md, twentieth check).
``--routed`` also fits a :class:`~napari_nuclei_unet.core.finetune.gate.KindGate` (the
corrected images against the replay crops, as the network sees them) and scores the
domain's other images and the validation split's other domains with weights chosen
image by image: the round's where the gate says "the corrections' kind" (probability
above 0.5), the base model's elsewhere (the JSON's ``routed``: ``iou_other``,
``iou_val_other``, the images sent, each image's probability; docs/finetuning.md,
twenty-first check). Run it with ``--no-replay``: weights of the
kind's own need not remember the rest.
``STAGE1_TRAIN`` defaults to ``$NUCLEI_UNET_DSB2018``. ``--set`` overrides round
settings (``FINETUNE_DEFAULTS``, ``ROUND_OPTIONS``), e.g. ``--set learning_rate=1e-3``
or ``--set match_inference=false`` (train on the corrections at native pixels and
self-check natively, as rounds did before), to compare choices.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

DOMAINS = ("fluo-dim", "fluo-blur", "fluo-haze", "fluo-cells", "histology-x2", "fluo-x3",
           "histology", "brightfield")
NATURAL = ("histology", "brightfield")


def transformed(sample, domain: str, rng: np.random.Generator):
    """A synthetic-domain copy of a fluorescence sample."""
    from scipy.ndimage import gaussian_filter
    from skimage.transform import resize

    from napari_nuclei_unet.core.dataset import Sample

    image, labels = sample.image.astype(np.float32), sample.labels
    factor = {"fluo-x3": 3, "histology-x2": 2}.get(domain)
    if factor:
        h, w = labels.shape
        image = resize(image, (factor * h, factor * w, image.shape[2]), order=1,
                       preserve_range=True)
        labels = np.repeat(np.repeat(labels, factor, axis=0), factor, axis=1)
    elif domain == "fluo-dim":
        image = 10.0 + 0.08 * image + rng.normal(0.0, 2.0, image.shape[:2])[..., None]
    elif domain == "fluo-blur":
        image = gaussian_filter(image, (2.5, 2.5, 0))
    elif domain == "fluo-haze":
        h, w = labels.shape
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        light = 0.5 + 0.5 * np.cos(2.5 * xx + 1.5 * yy + rng.uniform(0, 2 * np.pi))
        image = (0.35 * image + 2.5 * gaussian_filter(image, (5, 5, 0))
                 + 110.0 * light[..., None])
        image *= 235.0 / max(float(image.max()), 1.0)
    elif domain == "fluo-cells":
        from scipy.ndimage import grey_dilation
        from skimage.morphology import disk

        spread = grey_dilation(gaussian_filter(image, (1, 1, 0)), footprint=disk(5)[..., None])
        image = np.maximum(image, 0.65 * gaussian_filter(spread, (1.5, 1.5, 0)))
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return Sample(f"{domain}:{sample.id}", image, labels.astype(np.int32), sample.modality)


def domain_samples(dataset, domain: str, exclude: set[str], val_ids: set[str],
                   n_correct: int, n_other: int, seed: int, extra: int = 0):
    """(corrections, others, domain ids) of one domain, seeded.

    ``extra`` more corrections are drawn after the others, so that the first
    ``n_correct`` corrections and the others are those of the same seed without them.
    """
    rng = np.random.default_rng(seed)
    if domain in NATURAL:
        ids = [i.id for i in dataset.infos if i.modality == domain and i.id not in exclude]
        member = set(ids)
    elif domain == "histology-x2":
        ids = [i.id for i in dataset.infos if i.modality == "histology"
               and i.id not in exclude and i.id not in val_ids]
        member = set()
    else:  # fluorescence 256 x 256 of the training split, transformed
        ids = [i.id for i in dataset.infos if i.modality == "fluorescence"
               and (i.height, i.width) == (256, 256) and i.id not in exclude
               and i.id not in val_ids]
        member = set()  # the validation images themselves stay untransformed
    picked = [ids[k] for k in rng.permutation(len(ids))[:n_correct + n_other + extra]]
    samples = [dataset.load(i) for i in picked]
    if domain not in NATURAL:
        samples = [transformed(s, domain, rng) for s in samples]
    split = n_correct + n_other
    return samples[:n_correct] + samples[split:], samples[n_correct:split], member


def score_all(model, samples, cache=None, key="", options=None):
    """ImageRow per sample, scored with ``evaluate`` (``segment_options=options``).

    ``options`` None: native pixels (two-head models: contour-seeded nuclei at the
    training diameter); a ``SegmentOptions``: as ``segment_image`` predicts for a user.
    """
    from napari_nuclei_unet.core.evaluation import evaluate
    from napari_nuclei_unet.core.progress import drive

    todo = [s for s in samples if cache is None or (key, s.id) not in cache]
    rows = {row.id: row for row in drive(evaluate(model, todo, device="cpu",
                                                   segment_options=options)).rows}
    if cache is not None:
        cache.update({(key, i): row for i, row in rows.items()})
        rows.update({s.id: cache[(key, s.id)] for s in samples})
    return [rows[s.id] for s in samples]


def timed_round(job):
    """Drive a round; its result and the seconds at which each phase ended."""
    tic = time.perf_counter()
    marks = {}
    try:
        while True:
            update = next(job)
            stage = getattr(update, "stage", type(update).__name__)
            stage = "train" if stage in ("TrainStep", "EpochEnd") else stage
            marks[stage] = time.perf_counter() - tic
    except StopIteration as end:
        marks["total"] = time.perf_counter() - tic
        return end.value, marks


def views_of(model, samples, options):
    """(scale, smoothing) that ``segment_image`` picks for each sample with ``model``."""
    from napari_nuclei_unet.core.segment import segment_image

    out = []
    for sample in samples:
        seg = segment_image(model, sample.image, options, device="cpu")
        out.append([round(float(seg.scale), 3), float(seg.smoothing)])
    return out


def threshold_curves(model, samples, thresholds, options):
    """Mean IoU of ``samples`` at each threshold (the network runs once per image).

    ``options`` None: as ``evaluate`` scores without options (and rounds score their
    regression crops): a one-output model's plain probability at native pixels, a
    two-head model's maps at its training diameter; else as ``segment_image`` predicts
    with these options. The maps are re-thresholded and scored by ``rescore``.
    """
    from napari_nuclei_unet.core.evaluation import rescore
    from napari_nuclei_unet.core.inference import predict_probability
    from napari_nuclei_unet.core.progress import drive
    from napari_nuclei_unet.core.segment import (
        SegmentOptions,
        model_diameter,
        predict_network_maps,
    )

    if options is None and getattr(model, "out_channels", 1) == 1:
        maps = {s.id: predict_probability(model, s.image, device="cpu") for s in samples}
    else:
        options = options or SegmentOptions(diameter=model_diameter(model))
        maps = {s.id: predict_network_maps(model, s.image, options, device="cpu")
                for s in samples}
    return [round(mean(drive(rescore(samples, maps, threshold=t)).rows, "iou"), 4)
            for t in thresholds]


def network_inputs(model, samples, options, views=None):
    """Each sample normalised as the network gets it with ``model`` (resized, smoothed).

    ``views``: (scale, smoothing) per sample when known (a round's own), else found by
    ``segment_image`` with ``options`` (None: native pixels).
    """
    from napari_nuclei_unet.core.finetune.view import transform_sample
    from napari_nuclei_unet.core.normalize import normalize_image, prepare_plane

    if views is None:
        views = (views_of(model, samples, options) if options is not None
                 else [(1.0, 0.0)] * len(samples))
    return [normalize_image(prepare_plane(transform_sample(s, scale, sigma).image))
            for s, (scale, sigma) in zip(samples, views, strict=True)]


def gate_probabilities(gate, model, inputs):
    """The gate's probability for each normalised image."""
    import torch

    return [float(gate.probability(model, torch.from_numpy(x)[None])[0]) for x in inputs]


def routed(before, after, chosen):
    """Rows: the round's where ``chosen``, the base model's elsewhere."""
    return [a if c else b for b, a, c in zip(before, after, chosen, strict=True)]


def mean(rows, field):
    """Mean of one ImageRow field (NaN when empty)."""
    return float(np.mean([getattr(r, field) for r in rows])) if rows else float("nan")


def parse_value(text: str):
    """``--set`` values: JSON when it parses (numbers, true, null), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def number_list(low: float, high: float, high_included: bool = True):
    """argparse type: comma-separated numbers above ``low`` and up to ``high``.

    ``high`` itself is allowed when ``high_included``. A bad value is a plain usage error
    (argparse's exit 2), not a traceback.
    """
    def parse(text: str) -> list[float]:
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected numbers separated by commas, e.g. 0.5,0.7, got {text!r}") from None
        bad = [v for v in values if not (low < v < high or (high_included and v == high))]
        if bad:
            limit = f"at most {high:g}" if high_included else f"below {high:g}"
            raise argparse.ArgumentTypeError(
                f"every value must be above {low:g} and {limit}, got {bad}")
        return values
    return parse


def main(argv: list[str] | None = None) -> int:
    """Run the protocol; print a table (and write JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=os.environ.get("NUCLEI_UNET_DSB2018"))
    parser.add_argument("--domains", default=",".join(DOMAINS))
    parser.add_argument("--model", default="default",
                        help="base model (default: the shipped one), e.g. a two-head model")
    parser.add_argument("--n-correct", type=int, default=3)
    parser.add_argument("--n-other", type=int, default=10)
    parser.add_argument("--extra-corrections", type=int, default=0, metavar="K",
                        help="K more corrected images of the domain, drawn after the "
                             "others (the same 3 + others as without them): what many "
                             "corrections reach, a round's ceiling")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--ratio", type=float, default=None)
    parser.add_argument("--no-replay", action="store_true")
    parser.add_argument("--json", default=None)
    parser.add_argument("--views", action="store_true",
                        help="also record the scale and smoothing segment_image picks for "
                             "each other image with the base and the new model")
    parser.add_argument("--focus-off", action="store_true",
                        help="also score the domain's other images with the out-of-focus "
                             "rule off, base and new model (iou_other_focus_off)")
    parser.add_argument("--routed", action="store_true",
                        help="also score with weights chosen image by image by a gate "
                             "fitted on the corrections against the replay crops")
    parser.add_argument("--native", action="store_true",
                        help="score at native pixels (as before), not as segment_image "
                             "predicts with an automatic diameter")
    parser.add_argument("--thresholds", default=None, metavar="T1,T2,...",
                        type=number_list(0.0, 1.0, high_included=False),
                        help="also record each set's mean IoU at these probability "
                             "thresholds, base and new model")
    parser.add_argument("--extrapolations", default=None, metavar="K1,K2,...",
                        type=number_list(0.0, 10.0),
                        help="run the round unextrapolated and score its change carried "
                             "k times as far, for each k")
    args = parser.parse_args(argv)
    if not args.data:
        parser.error("give STAGE1_TRAIN or set NUCLEI_UNET_DSB2018")
    if args.routed and args.native:
        parser.error("--routed reads images as segment_image shows them: not with --native")
    if args.focus_off and args.native:
        parser.error("--focus-off scores as segment_image predicts: not with --native")

    from dataclasses import replace

    import torch

    from napari_nuclei_unet.core.checkpoint import load_checkpoint, read_metadata
    from napari_nuclei_unet.core.dataset import DSBDataset
    from napari_nuclei_unet.core.finetune import REPLAY_DIR, finetune
    from napari_nuclei_unet.core.finetune.replay import replay_samples
    from napari_nuclei_unet.core.finetune.trainer import extrapolate_weights
    from napari_nuclei_unet.core.segment import SegmentOptions

    torch.set_num_threads(1)
    overrides = {"num_threads": 1}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = parse_value(value)
    factors = args.extrapolations or []
    if factors:
        overrides["extrapolate"] = 1.0
    base = load_checkpoint(args.model, device="cpu")
    val_ids = set(read_metadata(args.model)["training_data"]["val_ids"])
    replay_ids = {c["source_id"] for c in
                  json.loads((REPLAY_DIR / "index.json").read_text())["crops"]}
    dataset = DSBDataset.open(args.data)
    val = [dataset.load(i) for i in sorted(val_ids) if i in set(dataset.ids())]
    cache: dict = {}
    check = replay_samples("check")  # the rounds' regression crops, loaded once
    options = None if args.native else SegmentOptions(diameter=0.0, threshold=0.5)
    results = []
    val_inputs: dict = {}  # the validation images as the base model's network sees them
    for domain in args.domains.split(","):
        corrections, others, member = domain_samples(
            dataset, domain, replay_ids, val_ids, args.n_correct, args.n_other, args.seed,
            args.extra_corrections)
        val_other = [s for s in val if s.id not in member]
        before_other = score_all(base.model, others, options=options)
        # a transformed domain's images as they were: what the base model scores on them
        # before dimming, blurring or enlarging (a round cannot be expected beyond it)
        untransformed = ([dataset.load(o.id.split(":", 1)[1]) for o in others]
                         if domain not in NATURAL else [])
        plain_other = (score_all(base.model, untransformed, options=options)
                       if untransformed else [])
        before_val = score_all(base.model, val_other, cache, "base", options=options)
        with tempfile.TemporaryDirectory() as project:
            result, marks = timed_round(finetune(
                args.model, corrections, out_dir=project, ratio=args.ratio,
                config_overrides=overrides, replay=not args.no_replay))
            round_s = marks["total"]
            tuned = load_checkpoint(result.checkpoint, device="cpu")
            after_other = score_all(tuned.model, others, options=options)
            if args.views:
                seg = options or SegmentOptions()
                other_views = [views_of(base.model, others, seg),
                               views_of(tuned.model, others, seg)]
            after_val = score_all(tuned.model, val_other, options=options)
            focus_off = {}
            if args.focus_off:
                plain = replace(options, focus=False)
                focus_off = {"iou_other_focus_off": [
                    mean(score_all(net, others, options=plain), "iou")
                    for net in (base.model, tuned.model)]}
            curves = {}
            if args.thresholds:
                grid = args.thresholds
                sets = {"corrected": (corrections, options), "other": (others, options),
                        "val_other": (val_other, options),
                        "regression": (check, None)}
                curves = {"thresholds": grid, **{
                    f"{name}_{key}": threshold_curves(net, samples, grid, opts)
                    for name, net in (("base", base.model), ("new", tuned.model))
                    for key, (samples, opts) in sets.items()}}
            sweep = {}
            for k in factors:
                net = extrapolate_weights(tuned.model, base.model, k)
                sweep[str(k)] = {
                    "other": mean(score_all(net, others, options=options), "iou"),
                    "val_other": mean(score_all(net, val_other, options=options), "iou"),
                    "regression": mean(score_all(net, check), "iou")}
        row = {"other_views": other_views} if args.views else {}
        row.update(focus_off)
        if args.routed:
            from napari_nuclei_unet.core.finetune.gate import fit_kind_gate

            seen = {v["id"]: (v["scale"], v["smoothing"]) for v in result.views}
            kind = network_inputs(base.model, corrections, None,
                                  [seen.get(c.id, (1.0, 0.0)) for c in corrections])
            known = network_inputs(base.model, replay_samples("train"), None)
            gate = fit_kind_gate(base.model, kind, known)
            for s in val_other:
                if s.id not in val_inputs:
                    val_inputs[s.id] = network_inputs(base.model, [s], options)[0]
            g_other = gate_probabilities(gate, base.model, network_inputs(
                base.model, others, options))
            g_val = gate_probabilities(gate, base.model, [val_inputs[s.id] for s in val_other])
            r_other = routed(before_other, after_other, [g > 0.5 for g in g_other])
            r_val = routed(before_val, after_val, [g > 0.5 for g in g_val])
            row["routed"] = {
                "iou_other": mean(r_other, "iou"), "dsb_other": mean(r_other, "dsb_score"),
                "iou_val_other": mean(r_val, "iou"), "dsb_val_other": mean(r_val, "dsb_score"),
                "n_other_routed": sum(g > 0.5 for g in g_other),
                "n_val_other_routed": sum(g > 0.5 for g in g_val),
                "gate_other": g_other, "gate_val_other": g_val}
        if curves:
            row["threshold_curves"] = curves
        if sweep:
            row["extrapolations"] = sweep
        row.update({
            "domain": domain, "n_correct": len(corrections), "n_other": len(others),
            "n_val_other": len(val_other), "round_s": round_s, "phases_s": marks,
            "iou_other": [mean(before_other, "iou"), mean(after_other, "iou")],
            "dsb_other": [mean(before_other, "dsb_score"), mean(after_other, "dsb_score")],
            # None (JSON null, not a bare NaN) for a domain of untransformed images
            "iou_other_untransformed": mean(plain_other, "iou") if plain_other else None,
            "dsb_other_untransformed": (mean(plain_other, "dsb_score") if plain_other
                                        else None),
            "iou_val_other": [mean(before_val, "iou"), mean(after_val, "iou")],
            "dsb_val_other": [mean(before_val, "dsb_score"), mean(after_val, "dsb_score")],
            "iou_corrected": [result.mean_iou("corrected", "before"),
                              result.mean_iou("corrected", "after")],
            "iou_regression": [result.mean_iou("regression", "before"),
                               result.mean_iou("regression", "after")],
            "adopted": result.adopted, "reason": result.reason,
            "views": [dict(v) for v in result.views],
            "regression": [c.to_dict() for c in result.regression],
            "other": [[b.id, b.iou, a.iou, b.dsb_score, a.dsb_score]
                      for b, a in zip(before_other, after_other, strict=True)],
            "corrected": [c.to_dict() for c in result.corrected],
            "val_other": [[b.id, b.iou, a.iou] for b, a in zip(before_val, after_val,
                                                               strict=True)],
        })
        results.append(row)
        print(json.dumps({k: v for k, v in row.items()
                          if k not in ("regression", "corrected", "val_other",
                                       "other_views", "other", "threshold_curves",
                                       "extrapolations")}),
              flush=True)

    print(f"\nsettings: {overrides}, ratio={args.ratio or 'auto'}, replay={not args.no_replay}, "
          f"scoring={'native' if args.native else 'segment_image, automatic diameter'}")
    print("| domain | other images IoU | DSB score | val. other domains IoU | corrected IoU "
          "| regression IoU | adopted | round |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        cells = [f"{a:.3f} -> {b:.3f} ({b - a:+.3f})" for a, b in
                 (r["iou_other"], r["dsb_other"], r["iou_val_other"])]
        cells += [f"{a:.3f} -> {b:.3f}" for a, b in (r["iou_corrected"], r["iou_regression"])]
        print(f"| {r['domain']} ({r['n_correct']} + {r['n_other']}) | " + " | ".join(cells)
              + f" | {'yes' if r['adopted'] else 'no'} | {r['round_s']:.0f} s |")
    for r in results:
        if r["iou_other_untransformed"] is not None:
            print(f"{r['domain']}: the base model on the same {r['n_other']} other images "
                  f"untransformed: IoU {r['iou_other_untransformed']:.3f}, DSB score "
                  f"{r['dsb_other_untransformed']:.3f} (+0.15 over the transformed base "
                  f"would be {r['iou_other'][0] + 0.15:.3f})")
    for r in results:
        if "routed" in r:
            got = r["routed"]
            print(f"{r['domain']}: routed by the gate: other images {r['iou_other'][0]:.3f} -> "
                  f"{got['iou_other']:.3f} ({got['iou_other'] - r['iou_other'][0]:+.3f}; "
                  f"{got['n_other_routed']} of {r['n_other']} to the round's weights), DSB "
                  f"score {r['dsb_other'][0]:.3f} -> {got['dsb_other']:.3f}, val. other "
                  f"domains {got['iou_val_other'] - r['iou_val_other'][0]:+.4f} "
                  f"({got['n_val_other_routed']} of {r['n_val_other']})")
    for r in results:
        if "iou_other_focus_off" in r:
            a, b = r["iou_other_focus_off"]
            print(f"{r['domain']}: other images with the out-of-focus rule off: "
                  f"{a:.3f} -> {b:.3f} ({b - a:+.3f})")
    for r in results:
        curves = r.get("threshold_curves")
        if curves:
            print(f"{r['domain']}: mean IoU at thresholds {curves['thresholds']}")
            for key, values in curves.items():
                if key != "thresholds":
                    print(f"  {key:22s} " + " ".join(f"{v:.3f}" for v in values))
    for r in results:
        for k, got in r.get("extrapolations", {}).items():
            print(f"{r['domain']}: k = {k}: other {got['other'] - r['iou_other'][0]:+.3f}, "
                  f"val. other domains {got['val_other'] - r['iou_val_other'][0]:+.4f}, "
                  f"regression {got['regression'] - r['iou_regression'][0]:+.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": overrides, "ratio": args.ratio,
                                               "replay": not args.no_replay,
                                               "native": args.native,
                                               "domains": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
