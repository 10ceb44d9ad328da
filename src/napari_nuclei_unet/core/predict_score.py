"""Predict, then score: the service behind "Predict all" and "Score all" (no Qt).

:func:`predict_and_score` predicts the samples that have no cached probability
map and scores every sample against its label mask; :func:`labels_and_row`
thresholds one cached map and scores it. Both are plain functions or generator
jobs (yielding :class:`~napari_nuclei_unet.core.progress.Progress`), run by the
widgets in a worker (``widgets._prediction_service``) and usable headless.
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
        New probability maps by sample id (only the samples that were predicted).
    rows : dict
        Scores by sample id (``core.evaluation.ImageRow``) of the samples that have
        a label mask, at ``threshold`` / ``instance_method``.
    threshold : float
        Threshold the rows were computed at.
    instance_method : str
        ``"watershed"`` or ``"components"``.
    cancelled : bool
        True when the job was stopped before the end (the results are partial).
    """

    probabilities: dict[str, np.ndarray] = field(default_factory=dict)
    rows: dict[str, Any] = field(default_factory=dict)
    threshold: float = 0.5
    instance_method: str = INSTANCE_METHOD_SPLIT
    cancelled: bool = False


def network_of(model: Any) -> Any:
    """The torch module of ``model`` (a ``core.checkpoint.LoadedModel`` or a bare UNet)."""
    return getattr(model, "model", model)


def predict_and_score(
    model: Any,
    samples: Sequence[Sample],
    cached: dict[str, np.ndarray] | None = None,
    *,
    threshold: float = 0.5,
    instance_method: str = INSTANCE_METHOD_SPLIT,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[Progress, None, PredictionResult]:
    """Predict the samples that have no cached map, then score every sample.

    A generator job (no Qt): it yields :class:`~napari_nuclei_unet.core.progress.Progress`
    updates (stage ``"predict"`` then ``"score"``) and returns a
    :class:`PredictionResult`. It never changes ``cached``.

    Parameters
    ----------
    model : LoadedModel or UNet
        The model.
    samples : sequence of Sample
        The samples to predict and score.
    cached : dict, optional
        Probability maps already computed by this model, by sample id; these
        samples are only scored.
    threshold : float, optional
        Probability threshold for the masks.
    instance_method : {"watershed", "components"}, optional
        How a mask is split into nuclei.
    should_stop : callable, optional
        Checked between images; when it returns True the job returns what it has.

    Returns
    -------
    PredictionResult
        The new maps and the scores.
    """
    from napari_nuclei_unet.core.evaluation import rescore

    cached = dict(cached or {})
    todo = [s for s in samples if s.id not in cached]
    result = PredictionResult(threshold=threshold, instance_method=instance_method)
    if todo:
        from napari_nuclei_unet.core.inference import predict_samples

        result.probabilities = yield from predict_samples(
            network_of(model), todo, should_stop=should_stop
        )
        cached.update(result.probabilities)
    scorable = [s for s in samples if s.id in cached and s.has_labels]
    if scorable and not stop_requested(should_stop):
        report = yield from rescore(
            scorable, cached, threshold=threshold, instance_method=instance_method,
            should_stop=should_stop,
        )
        result.rows = {row.id: row for row in report.rows}
    result.cancelled = stop_requested(should_stop) or len(result.probabilities) < len(todo)
    return result


def predicted_labels(prob: np.ndarray, *, threshold: float, instance_method: str) -> np.ndarray:
    """Threshold a probability map and split it into nuclei, as ``score_prediction`` does.

    Parameters
    ----------
    prob : numpy.ndarray
        ``(H, W)`` probabilities in [0, 1].
    threshold : float
        Pixels with ``prob > threshold`` are foreground.
    instance_method : str
        ``"watershed"`` or ``"components"``.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` int32 labels, 0 = background.
    """
    from napari_nuclei_unet.core.instances import labels_from_probability

    return labels_from_probability(prob, threshold=threshold, method=instance_method)


def labels_and_row(
    sample: Sample, prob: np.ndarray, *, threshold: float, instance_method: str
) -> tuple[np.ndarray, Any]:
    """Predicted nuclei of one image and its scores (None without a label mask).

    Parameters
    ----------
    sample : Sample
        The sample.
    prob : numpy.ndarray
        Its probability map.
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
    from napari_nuclei_unet.core.evaluation import score_prediction

    labels = predicted_labels(prob, threshold=threshold, instance_method=instance_method)
    row = None
    if sample.has_labels:
        row = score_prediction(sample, prob, threshold=threshold,
                               instance_method=instance_method, labels=labels)
    return labels, row



def splits_of(model: Any, sample_ids: Sequence[str]) -> dict[str, str]:
    """Which part of ``model``'s training each sample was: train, validation or unseen.

    Read from the checkpoint's ``training_data`` (``val_ids``, and ``train_ids``
    when recorded). Without ``train_ids``, a sample not in ``val_ids`` counts as a
    training image when the ids given are the model's whole training set (same
    number of images, validation ids among them), as for the shipped model on
    stage1_train.

    Parameters
    ----------
    model : LoadedModel or None
        The model (its ``metadata``).
    sample_ids : sequence of str
        The samples to mark (e.g. the loaded ones).

    Returns
    -------
    dict
        ``"train"``, ``"validation"`` or ``"unseen"`` by sample id.
    """
    data = (getattr(model, "metadata", None) or {}).get("training_data") or {}
    val = set(data.get("val_ids") or ())
    train = set(data.get("train_ids") or ())
    ids = list(sample_ids)
    if not train and val:
        n_train, n_val = int(data.get("n_train") or 0), int(data.get("n_val") or 0)
        known = set(ids)
        if n_train and val <= known and len(known) == n_train + n_val:
            train = known - val
    return {
        sid: "validation" if sid in val else "train" if sid in train else "unseen"
        for sid in ids
    }
