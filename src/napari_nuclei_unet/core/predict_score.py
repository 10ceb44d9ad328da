"""Predict, then score: the service behind "Predict all" and "Score all" (no Qt).

:func:`predict_and_score` predicts the samples that have no cached prediction
(through the network half of ``core.segment.segment_image``, automatic nucleus
diameter by default) and scores every sample against its label mask;
:func:`labels_and_row` thresholds one cached prediction and scores it, with the
labels ``segment_image`` gives at that threshold (:func:`predicted_labels`).
A cached prediction is a ``core.segment.NetworkMaps`` (maps at the network's
scale, with the scale and diameter used) or, from older callers, a plain
``(H, W)`` probability map at native scale. Both are plain functions or generator
jobs (yielding :class:`~napari_nuclei_unet.core.progress.Progress`, and
:class:`ImageDone` as each image is predicted and scored), run by the widgets in a
worker (``widgets._prediction_service``) and usable headless.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_nuclei_unet.core.progress import Progress, stop_requested

if TYPE_CHECKING:
    from napari_nuclei_unet.core.dataset import Sample

INSTANCE_METHOD_SPLIT = "watershed"
INSTANCE_METHOD_PLAIN = "components"


@dataclass
class PredictionResult:
    """What a :func:`predict_and_score` job returns.

    Attributes
    ----------
    probabilities : dict
        New predictions by sample id (only the samples that were predicted):
        ``core.segment.NetworkMaps``, re-thresholded with :func:`predicted_labels`.
    rows : dict
        Scores by sample id (``core.evaluation.ImageRow``) of the samples that have
        a label mask, at ``threshold`` / ``instance_method``.
    threshold : float
        Threshold the rows were computed at.
    instance_method : str
        ``"watershed"`` or ``"components"``.
    cancelled : bool
        True when the job was stopped before the end (the results are partial).
    diameter : float
        Nucleus diameter option of the new predictions (pixels; 0 = automatic).
    """

    probabilities: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, Any] = field(default_factory=dict)
    threshold: float = 0.5
    instance_method: str = INSTANCE_METHOD_SPLIT
    cancelled: bool = False
    diameter: float = 0.0


@dataclass(frozen=True)
class ImageDone:
    """One image :func:`predict_and_score` has just predicted (and scored), yielded at once.

    A caller can show results as they come (the IoU panel fills its table during a
    long "Predict all") instead of at the end; the job's :class:`PredictionResult`
    holds them all again.

    Attributes
    ----------
    id : str
        Sample id.
    maps : Any
        Its new prediction (``core.segment.NetworkMaps``).
    row : Any
        Its scores (``core.evaluation.ImageRow``), or None without a label mask.
    """

    id: str
    maps: Any
    row: Any = None


def network_of(model: Any) -> Any:
    """The torch module of ``model`` (a ``core.checkpoint.LoadedModel`` or a bare UNet)."""
    return getattr(model, "model", model)


def predict_and_score(
    model: Any,
    samples: Sequence[Sample],
    cached: dict[str, Any] | None = None,
    *,
    threshold: float = 0.5,
    instance_method: str = INSTANCE_METHOD_SPLIT,
    should_stop: Callable[[], bool] | None = None,
    diameter: float = 0.0,
) -> Generator[Progress | ImageDone, None, PredictionResult]:
    """Predict the samples that have no cached prediction, and score every sample.

    A generator job (no Qt): it yields :class:`~napari_nuclei_unet.core.progress.Progress`
    updates (stage ``"predict"``, then ``"score"`` for the samples that were only
    scored) and, as each image is predicted and scored, an :class:`ImageDone`; it
    returns a :class:`PredictionResult`. It never changes ``cached``. Each image is
    predicted as ``segment_image`` does (``core.segment.predict_network_maps``): the nucleus
    diameter estimated (``diameter`` 0) or given, the image resized to the model's
    training nucleus size, dim images smoothed.

    Parameters
    ----------
    model : LoadedModel or UNet
        The model.
    samples : sequence of Sample
        The samples to predict and score.
    cached : dict, optional
        Predictions already made by this model at this diameter, by sample id; these
        samples are only scored.
    threshold : float, optional
        Probability threshold for the masks (and for measuring nuclei when the
        diameter is estimated).
    instance_method : {"watershed", "components"}, optional
        How a mask is split into nuclei.
    should_stop : callable, optional
        Checked between images; when it returns True the job returns what it has.
    diameter : float, optional
        Typical nucleus diameter in pixels; 0 (default) = automatic, per image.

    Returns
    -------
    PredictionResult
        The new predictions and the scores.
    """
    from napari_nuclei_unet.core.evaluation import rescore
    from napari_nuclei_unet.core.segment import SegmentOptions, predict_network_maps

    options = SegmentOptions(diameter=float(diameter), threshold=threshold)
    cached = dict(cached or {})
    todo = [s for s in samples if s.id not in cached]
    result = PredictionResult(threshold=threshold, instance_method=instance_method,
                              diameter=float(diameter))
    network = network_of(model)
    for done, sample in enumerate(todo, start=1):
        if stop_requested(should_stop):
            break
        maps = predict_network_maps(network, sample.image, options)
        result.probabilities[sample.id] = maps
        # scored at once, so that a caller can show each row as it comes
        row = labels_and_row(sample, maps, threshold=threshold,
                             instance_method=instance_method)[1]
        if row is not None:
            result.rows[sample.id] = row
        yield ImageDone(sample.id, maps, row)
        yield Progress("predict", done, len(todo), sample.id)
    cached.update(result.probabilities)
    scorable = [s for s in samples
                if s.id in cached and s.has_labels and s.id not in result.rows]
    if scorable and not stop_requested(should_stop):
        report = yield from rescore(
            scorable, cached, threshold=threshold, instance_method=instance_method,
            should_stop=should_stop,
        )
        result.rows.update((row.id, row) for row in report.rows)
    result.rows = {s.id: result.rows[s.id] for s in samples if s.id in result.rows}
    result.cancelled = stop_requested(should_stop) or len(result.probabilities) < len(todo)
    return result


def predicted_labels(prob: Any, *, threshold: float, instance_method: str) -> np.ndarray:
    """The nuclei of a cached prediction at ``threshold``, as ``segment_image`` gives them.

    Parameters
    ----------
    prob : NetworkMaps or numpy.ndarray
        A ``core.segment.NetworkMaps`` (labels from
        ``core.segment.labels_from_maps``), or an ``(H, W)`` probability map at native
        scale.
    threshold : float
        Pixels with a probability above it are foreground.
    instance_method : str
        ``"watershed"`` (touching nuclei split) or ``"components"``.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` int32 labels, 0 = background, in the image's pixels.
    """
    from napari_nuclei_unet.core.segment import NetworkMaps, labels_from_maps

    if isinstance(prob, NetworkMaps):
        split = instance_method == INSTANCE_METHOD_SPLIT
        return labels_from_maps(prob, threshold, split=split).labels
    from napari_nuclei_unet.core.instances import labels_from_probability

    return labels_from_probability(prob, threshold=threshold, method=instance_method)


def score_labels(sample: Sample, labels: np.ndarray, *, threshold: float,
                 instance_method: str) -> Any:
    """Scores of predicted nuclei against ``sample``'s label mask.

    Parameters
    ----------
    sample : Sample
        A sample with a label mask.
    labels : numpy.ndarray
        ``(H, W)`` predicted nuclei (e.g. :func:`predicted_labels`).
    threshold, instance_method
        The settings they were made at (recorded, not applied again).

    Returns
    -------
    ImageRow
        ``core.evaluation.ImageRow``.
    """
    from napari_nuclei_unet.core.evaluation import score_prediction

    shape_only = np.broadcast_to(np.float32(0), np.shape(labels))  # labels are given
    return score_prediction(sample, shape_only, threshold=threshold,
                            instance_method=instance_method, labels=labels)


def labels_and_row(
    sample: Sample, prob: Any, *, threshold: float, instance_method: str
) -> tuple[np.ndarray, Any]:
    """Predicted nuclei of one image and its scores (None without a label mask).

    Parameters
    ----------
    sample : Sample
        The sample.
    prob : NetworkMaps or numpy.ndarray
        Its cached prediction (see :func:`predicted_labels`).
    threshold : float
        Probability threshold.
    instance_method : str
        ``"watershed"`` or ``"components"``.

    Returns
    -------
    tuple
        ``(labels, row)``: ``(H, W)`` int32 labels and a ``core.evaluation.ImageRow``
        (or None when the sample has no label mask).
    """
    labels = predicted_labels(prob, threshold=threshold, instance_method=instance_method)
    row = None
    if sample.has_labels:
        row = score_labels(sample, labels, threshold=threshold, instance_method=instance_method)
    return labels, row


def splits_of(model: Any, sample_ids: Sequence[str]) -> dict[str, str]:
    """Which part of ``model``'s training each sample was: train, validation or unseen.

    Read from the checkpoint's ``training_data`` (``val_ids``, and ``train_ids``
    when recorded). Without ``train_ids``, a sample not in ``val_ids`` counts as a
    training image when the model records that it was trained on the whole of
    DSB2018 stage1_train (``dataset_digest``, the shipped manifest's: the shipped
    model) and the sample is one of stage1_train's, or when the ids given are the
    model's whole training set (same number of images, validation ids among them).

    Parameters
    ----------
    model : LoadedModel or None
        The model (its ``metadata``).
    sample_ids : sequence of str
        The samples to mark (e.g. the loaded ones).

    A fine-tuning version records its base model's ``training_data``; its round's own
    images are marked apart: ``"fine-tuned"`` (the corrected images it learned from:
    some were the base model's validation images) and ``"kept aside"`` (corrected,
    never learned from).

    Returns
    -------
    dict
        ``"train"``, ``"validation"``, ``"fine-tuned"``, ``"kept aside"`` or ``"unseen"``
        by sample id.
    """
    metadata = getattr(model, "metadata", None) or {}
    marks = _base_splits(metadata, sample_ids)
    round_info = metadata.get("finetune")
    if isinstance(round_info, dict):  # GUI check h_gui14, N1
        learned = {str(c.get("id")) for c in round_info.get("corrections") or ()
                   if isinstance(c, dict)}
        aside = {str(i) for i in round_info.get("held_out") or ()}
        for sid in marks:
            if sid in aside:
                marks[sid] = "kept aside"
            elif sid in learned:
                marks[sid] = "fine-tuned"
    return marks


def _base_splits(metadata: dict, sample_ids: Sequence[str]) -> dict[str, str]:
    """:func:`splits_of` from a checkpoint's ``training_data`` alone."""
    data = metadata.get("training_data") or {}
    val = set(data.get("val_ids") or ())
    train = set(data.get("train_ids") or ())
    ids = list(sample_ids)
    if not train and val:
        n_train, n_val = int(data.get("n_train") or 0), int(data.get("n_val") or 0)
        known = set(ids)
        if n_train and val <= known and len(known) == n_train + n_val:
            train = known - val
        elif data.get("dataset_digest"):
            from .dsb2018_pin import stage1_train_ids
            from .imageio import DatasetError

            try:
                digest, chars, prefixes = stage1_train_ids()
            except DatasetError:  # the shipped manifest is damaged: say nothing of it
                digest, chars, prefixes = None, 0, frozenset()
            if data["dataset_digest"] == digest:
                train = {sid for sid in known - val if sid[:chars] in prefixes}
    return {
        sid: "validation" if sid in val else "train" if sid in train else "unseen"
        for sid in ids
    }
