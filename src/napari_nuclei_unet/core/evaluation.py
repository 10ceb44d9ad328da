"""Evaluate a model over labelled samples: per-image rows and a summary.

:func:`evaluate` predicts each sample, turns the probability map into
instances (:func:`~napari_nuclei_unet.core.instances.labels_from_probability`)
and scores them against the true labels
(:func:`~napari_nuclei_unet.core.metrics.image_scores`). :func:`score_prediction`
and :func:`rescore` do the same from probability maps already computed, so a
widget can move the threshold without running the network again.

Like every long job in :mod:`napari_nuclei_unet.core`, :func:`evaluate` and
:func:`rescore` are generators that yield :class:`~.progress.Progress` and
return their result (see :func:`~.progress.drive`).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .instances import INSTANCE_METHODS, labels_from_probability
from .metrics import image_scores
from .progress import Progress, stop_requested

__all__ = [
    "EvaluationReport",
    "ImageRow",
    "evaluate",
    "rescore",
    "score_prediction",
]


@dataclass(frozen=True)
class ImageRow:
    """Scores of one image.

    Attributes
    ----------
    id : str
        Sample id.
    modality : str
        Sample modality (``"fluorescence"``, ``"brightfield"``, ``"histology"``).
    iou, dice : float
        Foreground IoU and Dice (1.0 when truth and prediction are both empty).
    ap50 : float
        ``TP / (TP + FP + FN)`` of the objects at IoU threshold 0.5.
    dsb_score : float
        DSB2018 score: mean of that ratio over IoU thresholds 0.50:0.05:0.95.
    n_true, n_pred : int
        Number of true and predicted nuclei.
    area_true, area_pred : int
        Foreground pixels of the labels and of the prediction (0: not known, as in
        reports written before 2026-12-06).
    """

    id: str
    modality: str
    iou: float
    dice: float
    ap50: float
    dsb_score: float
    n_true: int
    n_pred: int
    area_true: int = 0
    area_pred: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the fields in declaration order."""
        return dataclasses.asdict(self)


def _stats(rows: list[ImageRow]) -> dict[str, Any]:
    if not rows:
        return {"n": 0, "mean_iou": None, "median_iou": None, "mean_dice": None, "dsb_score": None}
    ious = [r.iou for r in rows]
    return {
        "n": len(rows),
        "mean_iou": float(np.mean(ious)),
        "median_iou": float(statistics.median(ious)),
        "mean_dice": float(np.mean([r.dice for r in rows])),
        "dsb_score": float(np.mean([r.dsb_score for r in rows])),
    }


@dataclass
class EvaluationReport:
    """Per-image scores of an evaluation run.

    Attributes
    ----------
    rows : list of ImageRow
        One row per scored image, in the order the samples were given.
    threshold : float
        Probability threshold used (foreground is ``prob > threshold``).
    instance_method : str
        How instances were split, see :func:`~.instances.split_instances`.
    cancelled : bool
        True when the run was stopped early; ``rows`` then holds the images done.
    skipped : list of str
        Ids of samples that were not scored because they have no labels.
    probabilities : dict of str to ndarray
        Probability map of each scored sample, only when asked for with
        ``keep_probabilities=True``; never written by :meth:`to_json`.
    """

    rows: list[ImageRow] = field(default_factory=list)
    threshold: float = 0.5
    instance_method: str = "watershed"
    cancelled: bool = False
    skipped: list[str] = field(default_factory=list)
    probabilities: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_rows(cls, rows: Iterable[ImageRow], **kwargs: Any) -> EvaluationReport:
        """Build a report from rows (e.g. rows re-scored one by one in a widget).

        Parameters
        ----------
        rows : iterable of ImageRow
            The per-image scores.
        **kwargs
            Other fields: ``threshold``, ``instance_method``, ``cancelled``, ``skipped``.

        Returns
        -------
        EvaluationReport
        """
        return cls(rows=list(rows), **kwargs)

    def summary(self) -> dict[str, Any]:
        """Averages over all images and per modality.

        Returns
        -------
        dict
            ``{"n", "mean_iou", "median_iou", "mean_dice", "dsb_score",
            "per_modality": {modality: {"n", "mean_iou", "median_iou",
            "mean_dice", "dsb_score"}}}``. ``dsb_score`` is the mean of the
            per-image DSB scores, as in the Kaggle leaderboard. With no rows the
            averages are None (JSON ``null``). Modalities are sorted by name and
            only those present appear.
        """
        by_modality: dict[str, list[ImageRow]] = {}
        for row in self.rows:
            by_modality.setdefault(row.modality, []).append(row)
        return {
            **_stats(self.rows),
            "per_modality": {m: _stats(by_modality[m]) for m in sorted(by_modality)},
        }

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict: ``{"summary": summary(), "images": [row dicts]}``.

        Each image is ``{"id", "modality", "iou", "dice", "ap50", "dsb_score",
        "n_true", "n_pred"}``. Pass the result to :func:`json.dumps`.
        """
        return {"summary": self.summary(), "images": [row.to_dict() for row in self.rows]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvaluationReport:
        """Rebuild a report from :meth:`to_json` output (summary is recomputed).

        Parameters
        ----------
        data : mapping
            A dict with an ``"images"`` list as written by :meth:`to_json`.

        Returns
        -------
        EvaluationReport

        Raises
        ------
        ValueError
            If ``"images"`` is missing or an image lacks a field.
        """
        if "images" not in data:
            raise ValueError(
                f"an evaluation report needs an 'images' list, got keys {sorted(data)}"
            )
        names = [f.name for f in dataclasses.fields(ImageRow)]
        needed = [f.name for f in dataclasses.fields(ImageRow)
                  if f.default is dataclasses.MISSING]  # the areas came later
        rows = []
        for i, image in enumerate(data["images"]):
            missing = [n for n in needed if n not in image]
            if missing:
                raise ValueError(f"image {i} of the report lacks the fields {missing}")
            rows.append(ImageRow(**{n: image[n] for n in names if n in image}))
        return cls(rows=rows)


def _check_options(threshold: float, instance_method: str) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if instance_method not in INSTANCE_METHODS:
        raise ValueError(
            f"instance_method must be one of {INSTANCE_METHODS}, got {instance_method!r}"
        )


def score_prediction(
    sample, prob, *, threshold: float = 0.5, instance_method: str = "watershed",
    labels=None,
) -> ImageRow:
    """Score a probability map of one sample against its true labels.

    Parameters
    ----------
    sample : Sample
        Needs ``id``, ``modality`` and ``labels`` (H, W) int.
    prob : array_like, shape (H, W)
        Foreground probability in [0, 1], e.g. from ``predict_probability``.
    threshold : float, optional
        Foreground is ``prob > threshold``. Default 0.5.
    instance_method : {"watershed", "components"}, optional
        How the foreground is split into nuclei. Default ``"watershed"``.
    labels : array_like, shape (H, W), optional
        Predicted instances already made (e.g. by
        :func:`~napari_nuclei_unet.core.segment.segment_image`); then ``prob`` is not
        thresholded again.

    Returns
    -------
    ImageRow

    Raises
    ------
    ValueError
        If ``prob`` and ``sample.labels`` differ in shape, or an option is invalid.
    """
    _check_options(threshold, instance_method)
    prob = np.asarray(prob)
    if prob.shape != np.shape(sample.labels):
        raise ValueError(
            f"probability map of sample {sample.id!r} must have the shape of its labels "
            f"{np.shape(sample.labels)}, got {prob.shape}"
        )
    if labels is not None:
        pred = np.asarray(labels)
    else:
        pred = labels_from_probability(prob, threshold=threshold, method=instance_method)
    s = image_scores(np.asarray(sample.labels), pred)
    return ImageRow(
        id=str(sample.id),
        modality=str(sample.modality),
        iou=s.iou,
        dice=s.dice,
        ap50=s.ap50,
        dsb_score=s.dsb_score,
        n_true=s.n_true,
        n_pred=s.n_pred,
        area_true=s.area_true,
        area_pred=s.area_pred,
    )


def _has_labels(sample) -> bool:
    return bool(getattr(sample, "has_labels", True)) and getattr(sample, "labels", None) is not None


def _score_all(
    samples,
    get_probability: Callable[[Any], np.ndarray],
    stage: str,
    *,
    threshold: float,
    instance_method: str,
    should_stop,
    keep_probabilities: bool,
) -> Generator[Progress, None, EvaluationReport]:
    _check_options(threshold, instance_method)
    samples = list(samples)
    report = EvaluationReport(threshold=threshold, instance_method=instance_method)
    for i, sample in enumerate(samples):
        if stop_requested(should_stop):
            report.cancelled = True
            break
        if _has_labels(sample):
            prob = get_probability(sample)
            pred = None
            if isinstance(prob, tuple):  # (probability, labels) from segment_image
                prob, pred = prob
            report.rows.append(
                score_prediction(sample, prob, threshold=threshold,
                                 instance_method=instance_method, labels=pred)
            )
            if keep_probabilities:
                report.probabilities[sample.id] = prob
        else:
            report.skipped.append(sample.id)
        yield Progress(stage, i + 1, len(samples), str(sample.id))
    return report


def evaluate(
    model,
    samples,
    *,
    threshold: float = 0.5,
    instance_method: str = "watershed",
    should_stop: Callable[[], bool] | None = None,
    device=None,
    keep_probabilities: bool = False,
    segment_options=None,
) -> Generator[Progress, None, EvaluationReport]:
    """Predict and score every sample.

    Parameters
    ----------
    model : UNet or LoadedModel
        The network (a ``LoadedModel`` from ``load_checkpoint`` is unwrapped).
    samples : iterable of Sample
        Samples with ``id``, ``image``, ``labels`` and ``modality``. Samples whose
        ``has_labels`` is False are skipped (listed in ``report.skipped``).
    threshold : float, optional
        Foreground is ``prob > threshold``. Default 0.5.
    instance_method : {"watershed", "components"}, optional
        How the foreground is split into nuclei. Default ``"watershed"``.
    should_stop : callable, optional
        Checked before each sample; when it returns True the job stops and
        returns the rows so far with ``cancelled=True``.
    device : str or torch.device, optional
        Passed to ``predict_probability``; defaults to the model's device.
    keep_probabilities : bool, optional
        Keep each probability map in ``report.probabilities`` so it can be
        re-scored with :func:`rescore` or :func:`score_prediction`. Default False.
    segment_options : SegmentOptions, optional
        Segment each image with :func:`~napari_nuclei_unet.core.segment.segment_image`
        (nucleus diameter, TTA; ``threshold`` is taken from here). Models with a
        contour head always go this way (with native scale unless given).

    Yields
    ------
    Progress
        ``Progress("evaluate", i, n, sample_id)`` after each sample.

    Returns
    -------
    EvaluationReport
        Rows in the order of ``samples``.

    Raises
    ------
    ValueError
        On an invalid option (at the first step) or a probability map whose
        shape differs from the sample's labels.
    """
    # Imported here: importing this module must not import torch.
    from .inference import predict_probability

    if not callable(model) and hasattr(model, "model"):
        model = model.model

    if segment_options is None and getattr(model, "out_channels", 1) > 1:
        from .segment import SegmentOptions, model_diameter

        segment_options = SegmentOptions(diameter=model_diameter(model), threshold=threshold)
    if segment_options is not None:
        from .segment import segment_image

        threshold = segment_options.threshold

        def predict(sample):
            result = segment_image(model, sample.image, segment_options, device=device)
            return result.probability, result.labels
    else:

        def predict(sample) -> np.ndarray:
            return predict_probability(model, sample.image, device=device)

    return (
        yield from _score_all(
            samples,
            predict,
            "evaluate",
            threshold=threshold,
            instance_method=instance_method,
            should_stop=should_stop,
            keep_probabilities=keep_probabilities,
        )
    )


def rescore(
    samples,
    probabilities: Mapping[str, np.ndarray],
    *,
    threshold: float = 0.5,
    instance_method: str = "watershed",
    should_stop: Callable[[], bool] | None = None,
) -> Generator[Progress, None, EvaluationReport]:
    """Score probability maps computed earlier, e.g. at a new threshold.

    Parameters
    ----------
    samples : iterable of Sample
        Samples to score; those without labels are skipped.
    probabilities : mapping of str to ndarray or NetworkMaps
        Probability map by sample id (``predict_samples`` output or
        ``EvaluationReport.probabilities``), or the maps kept from
        ``core.segment.predict_network_maps``: those are labelled as ``segment_image``
        labels them at ``threshold`` (``core.segment.labels_from_maps``).
    threshold, instance_method, should_stop
        As for :func:`evaluate`.

    Yields
    ------
    Progress
        ``Progress("score", i, n, sample_id)`` after each sample.

    Returns
    -------
    EvaluationReport
        ``probabilities`` of the report is left empty.

    Raises
    ------
    KeyError
        If a labelled sample has no probability map.
    """
    from .segment import NetworkMaps, labels_from_maps

    def lookup(sample):
        try:
            prediction = probabilities[sample.id]
        except KeyError:
            raise KeyError(
                f"no probability map for sample {sample.id!r}; predict it first"
            ) from None
        if isinstance(prediction, NetworkMaps):
            found = labels_from_maps(prediction, threshold,
                                     split=instance_method == "watershed")
            return found.probability, found.labels
        return prediction

    return (
        yield from _score_all(
            samples,
            lookup,
            "score",
            threshold=threshold,
            instance_method=instance_method,
            should_stop=should_stop,
            keep_probabilities=False,
        )
    )
