"""Segmentation metrics: foreground IoU/Dice, instance matching and the DSB2018 score.

All functions are pure numpy, check shapes first and take their options as
keyword-only arguments. Every edge case (empty masks, images without objects)
is an explicit, documented choice.

Instance matching follows the Kaggle Data Science Bowl 2018 metric: a predicted
object *hits* a true object when their IoU is strictly greater than a threshold
``t``; at each ``t`` in ``0.50, 0.55, ..., 0.95`` the image scores
``TP / (TP + FP + FN)`` and the DSB score is the mean over the thresholds.

References
----------
.. [1] Kaggle, "2018 Data Science Bowl: evaluation",
       https://www.kaggle.com/competitions/data-science-bowl-2018/overview/evaluation
.. [2] Caicedo et al., "Nucleus segmentation across imaging experiments: the
       2018 Data Science Bowl", Nature Methods 16, 1247-1253 (2019).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "DSB_THRESHOLDS",
    "ImageScores",
    "MatchCounts",
    "MatchResult",
    "dice",
    "dsb_score",
    "image_scores",
    "iou",
    "match_instances",
]

#: IoU thresholds of the DSB2018 metric: 0.50, 0.55, ..., 0.95.
DSB_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def _check_same_shape(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, "
            f"got {names[0]} {a.shape} and {names[1]} {b.shape}"
        )


def _foreground_counts(truth, pred) -> tuple[int, int, int]:
    """Return (|truth|, |pred|, |truth & pred|) of the foregrounds (values > 0)."""
    truth = np.asarray(truth)
    pred = np.asarray(pred)
    _check_same_shape(truth, pred, ("truth", "pred"))
    t = truth > 0
    p = pred > 0
    return int(np.count_nonzero(t)), int(np.count_nonzero(p)), int(np.count_nonzero(t & p))


def iou(truth, pred, *, empty: float = 1.0) -> float:
    """Intersection over union (Jaccard index) of two foreground masks.

    Parameters
    ----------
    truth, pred : array_like
        Masks of any dimensionality and the same shape. Any value > 0 is
        foreground, so label images can be passed directly.
    empty : float, optional
        Score returned when both masks are empty (the union is empty). Default
        1.0: predicting nothing where there is nothing is a perfect answer.

    Returns
    -------
    float
        ``|truth & pred| / |truth | pred|`` in [0, 1], or ``empty``. When only
        one mask is empty the result is 0.0.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    n_truth, n_pred, n_both = _foreground_counts(truth, pred)
    union = n_truth + n_pred - n_both
    return float(empty) if union == 0 else n_both / union


def dice(truth, pred, *, empty: float = 1.0) -> float:
    """Dice coefficient (F1 of the pixels) of two foreground masks.

    Parameters
    ----------
    truth, pred : array_like
        Masks of any dimensionality and the same shape. Any value > 0 is
        foreground.
    empty : float, optional
        Score returned when both masks are empty. Default 1.0.

    Returns
    -------
    float
        ``2 |truth & pred| / (|truth| + |pred|)`` in [0, 1], or ``empty``. When
        only one mask is empty the result is 0.0.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    n_truth, n_pred, n_both = _foreground_counts(truth, pred)
    total = n_truth + n_pred
    return float(empty) if total == 0 else 2.0 * n_both / total


def _ratio(numerator: int, denominator: int, *, both_empty: bool) -> float:
    """Return the ratio; 0/0 is 1.0 when both images have no objects, else 0.0."""
    if denominator == 0:
        return 1.0 if both_empty else 0.0
    return numerator / denominator


@dataclass(frozen=True)
class MatchCounts:
    """True/false positives and false negatives of a matching at one IoU threshold.

    Attributes
    ----------
    threshold : float
        A pair of objects matches when its IoU is strictly greater than this.
    tp : int
        Matched pairs (true positives).
    fp : int
        Predicted objects without a match (false positives).
    fn : int
        True objects without a match (false negatives).

    Notes
    -----
    Ratios whose denominator is zero are 1.0 when both images have no objects
    (nothing to find, nothing predicted) and 0.0 otherwise, e.g. precision is
    0.0 when nothing was predicted although there were true objects.
    """

    threshold: float
    tp: int
    fp: int
    fn: int

    @property
    def _both_empty(self) -> bool:
        return self.tp + self.fp + self.fn == 0

    @property
    def precision(self) -> float:
        """``TP / (TP + FP)``: the fraction of predicted objects that are right."""
        return _ratio(self.tp, self.tp + self.fp, both_empty=self._both_empty)

    @property
    def recall(self) -> float:
        """``TP / (TP + FN)``: the fraction of true objects that were found."""
        return _ratio(self.tp, self.tp + self.fn, both_empty=self._both_empty)

    @property
    def f1(self) -> float:
        """``2 TP / (2 TP + FP + FN)``, the harmonic mean of precision and recall."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn, both_empty=self._both_empty)

    @property
    def average_precision(self) -> float:
        """``TP / (TP + FP + FN)``, the per-threshold score of the DSB2018 metric."""
        return _ratio(self.tp, self.tp + self.fp + self.fn, both_empty=self._both_empty)


@dataclass(frozen=True, eq=False)
class MatchResult:
    """Pairwise IoU between the objects of a true and a predicted label image.

    Build it with :func:`match_instances`.

    Attributes
    ----------
    true_ids : ndarray of int64, shape (n_true,)
        Label values of the true objects, ascending (0, the background, excluded).
    pred_ids : ndarray of int64, shape (n_pred,)
        Label values of the predicted objects, ascending.
    iou : ndarray of float64, shape (n_true, n_pred)
        ``iou[i, j]`` is the IoU of true object ``true_ids[i]`` and predicted
        object ``pred_ids[j]`` (0.0 where they do not overlap).
    true_areas : ndarray of int64, shape (n_true,)
        Pixel count of each true object.
    pred_areas : ndarray of int64, shape (n_pred,)
        Pixel count of each predicted object.
    intersection : ndarray of int64, shape (n_true, n_pred)
        Overlap in pixels of each pair.

    Notes
    -----
    At a threshold ``t >= 0.5`` every pair with IoU > t is a match, and these
    matches are automatically one-to-one: two disjoint predictions cannot both
    cover more than half of the union with the same true object. This is the
    rule of the DSB2018 metric. For ``t < 0.5`` one object may exceed ``t``
    with several others; the matching is then made one-to-one with an optimal
    assignment (``scipy.optimize.linear_sum_assignment``) that maximises the
    number of matched pairs and, among those, the total IoU.
    """

    true_ids: np.ndarray
    pred_ids: np.ndarray
    iou: np.ndarray
    true_areas: np.ndarray
    pred_areas: np.ndarray
    intersection: np.ndarray

    @property
    def n_true(self) -> int:
        """Number of true objects."""
        return int(self.true_ids.size)

    @property
    def n_pred(self) -> int:
        """Number of predicted objects."""
        return int(self.pred_ids.size)

    def matched_indices(self, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices into :attr:`iou` of the matched pairs.

        Parameters
        ----------
        threshold : float, optional
            A pair matches when its IoU is strictly greater than this. Default 0.5.

        Returns
        -------
        rows, cols : ndarray of intp
            ``iou[rows[k], cols[k]]`` is the k-th match. Each row and each column
            appears at most once (see the class notes for ``threshold < 0.5``).

        Raises
        ------
        ValueError
            If the threshold is not in [0, 1].
        """
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        above = self.iou > threshold
        if threshold >= 0.5 or not above.any():
            rows, cols = np.nonzero(above)
            return rows, cols
        from scipy.optimize import linear_sum_assignment

        # Each matched pair is worth more than any total of IoUs, so the assignment
        # first maximises the number of matches, then their summed IoU.
        weight = np.where(above, self.iou + (min(self.n_true, self.n_pred) + 1), 0.0)
        rows, cols = linear_sum_assignment(weight, maximize=True)
        keep = above[rows, cols]
        return rows[keep], cols[keep]

    def matched_ids(self, threshold: float = 0.5) -> np.ndarray:
        """Label value pairs ``(true_id, pred_id)`` of the matches, shape (n_matches, 2)."""
        rows, cols = self.matched_indices(threshold)
        return np.stack([self.true_ids[rows], self.pred_ids[cols]], axis=1)

    def unmatched_true_ids(self, threshold: float = 0.5) -> np.ndarray:
        """Label values of the true objects without a match (false negatives)."""
        rows, _ = self.matched_indices(threshold)
        return np.setdiff1d(self.true_ids, self.true_ids[rows])

    def unmatched_pred_ids(self, threshold: float = 0.5) -> np.ndarray:
        """Label values of the predicted objects without a match (false positives)."""
        _, cols = self.matched_indices(threshold)
        return np.setdiff1d(self.pred_ids, self.pred_ids[cols])

    def counts(self, threshold: float = 0.5) -> MatchCounts:
        """TP, FP and FN at one IoU threshold.

        Parameters
        ----------
        threshold : float, optional
            A pair matches when its IoU is strictly greater than this. Default 0.5.

        Returns
        -------
        MatchCounts
            Also gives precision, recall, F1 and ``TP / (TP + FP + FN)``.
        """
        rows, _ = self.matched_indices(threshold)
        tp = int(rows.size)
        return MatchCounts(float(threshold), tp, self.n_pred - tp, self.n_true - tp)

    def dsb_score(self, thresholds: tuple[float, ...] = DSB_THRESHOLDS) -> float:
        """Mean of ``TP / (TP + FP + FN)`` over the thresholds (the DSB2018 score).

        Parameters
        ----------
        thresholds : sequence of float, optional
            IoU thresholds, default 0.50, 0.55, ..., 0.95.

        Returns
        -------
        float
            In [0, 1]; 1.0 when neither image has objects, 0.0 when exactly one has.
        """
        return float(np.mean([self.counts(t).average_precision for t in thresholds]))


def _check_label_image(labels, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"{name} must be an integer label image (0 = background), got dtype {labels.dtype}; "
            "convert a probability map with a threshold and split_instances() first"
        )
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} must not contain negative labels, got minimum {labels.min()}")
    return labels


def _dense_index(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map label values to 0 (background) and 1..n; return (index image, ids, areas)."""
    flat = labels.ravel()
    max_label = int(flat.max()) if flat.size else 0
    if max_label <= 4 * flat.size + 1024:
        # Counting is O(pixels) and much faster than np.unique's sort.
        areas_by_value = np.bincount(flat, minlength=max_label + 1)
        ids = np.flatnonzero(areas_by_value[1:]) + 1
        lookup = np.zeros(max_label + 1, dtype=np.int64)
        lookup[ids] = np.arange(1, ids.size + 1)
        return lookup[flat], ids.astype(np.int64), areas_by_value[ids].astype(np.int64)
    values, index, areas = np.unique(flat, return_inverse=True, return_counts=True)
    index = index.ravel().astype(np.int64)
    if values[0] != 0:  # no background: shift so that index 0 stays reserved for it
        return index + 1, values.astype(np.int64), areas.astype(np.int64)
    return index, values[1:].astype(np.int64), areas[1:].astype(np.int64)


def match_instances(true_labels, pred_labels) -> MatchResult:
    """IoU of every pair of true and predicted objects.

    The IoU matrix comes from one joint histogram of the (true, predicted)
    label pairs over all pixels (``np.bincount``), so the cost is linear in the
    number of pixels plus ``n_true * n_pred``, with no per-object loop.

    Parameters
    ----------
    true_labels, pred_labels : array_like of int or bool
        Label images of the same shape (any dimensionality): 0 is background,
        every other value one object. Ids need not be consecutive.

    Returns
    -------
    MatchResult
        The IoU matrix, object ids and areas; its methods count matches at a
        threshold (:meth:`MatchResult.counts`) and give the DSB2018 score.

    Raises
    ------
    ValueError
        If the shapes differ or a label is negative.
    TypeError
        If an input is not an integer (or boolean) array.
    """
    true_labels = np.asarray(true_labels)
    pred_labels = np.asarray(pred_labels)
    _check_same_shape(true_labels, pred_labels, ("true_labels", "pred_labels"))
    true_labels = _check_label_image(true_labels, "true_labels")
    pred_labels = _check_label_image(pred_labels, "pred_labels")

    true_index, true_ids, true_areas = _dense_index(true_labels)
    pred_index, pred_ids, pred_areas = _dense_index(pred_labels)
    n_true, n_pred = true_ids.size, pred_ids.size
    n_cols = n_pred + 1
    n_bins = (n_true + 1) * n_cols
    if n_bins <= max(4 * true_index.size, 1 << 20):
        joint = np.bincount(true_index * n_cols + pred_index, minlength=n_bins)
        intersection = joint.reshape(n_true + 1, n_cols)[1:, 1:]
    else:  # very many objects: histogram only the overlapping pixels
        both = (true_index > 0) & (pred_index > 0)
        pairs, overlap = np.unique(true_index[both] * n_cols + pred_index[both], return_counts=True)
        intersection = np.zeros((n_true, n_pred), dtype=np.int64)
        intersection[pairs // n_cols - 1, pairs % n_cols - 1] = overlap

    union = true_areas[:, None] + pred_areas[None, :] - intersection
    iou_matrix = intersection / np.maximum(union, 1)  # union >= 1 for objects that exist
    return MatchResult(
        true_ids,
        pred_ids,
        iou_matrix.astype(np.float64),
        true_areas,
        pred_areas,
        np.ascontiguousarray(intersection, dtype=np.int64),
    )


def dsb_score(true_labels, pred_labels) -> float:
    """Kaggle DSB2018 score of one image.

    The mean over IoU thresholds ``t = 0.50, 0.55, ..., 0.95`` of
    ``TP(t) / (TP(t) + FP(t) + FN(t))``, where a predicted object is a true
    positive when its IoU with a true object is strictly greater than ``t``.

    Parameters
    ----------
    true_labels, pred_labels : array_like of int or bool
        Label images of the same shape, 0 = background.

    Returns
    -------
    float
        In [0, 1]. 1.0 when neither image has any object; 0.0 when exactly one
        of them has none.

    Raises
    ------
    ValueError
        If the shapes differ or a label is negative.
    """
    return match_instances(true_labels, pred_labels).dsb_score()


@dataclass(frozen=True)
class ImageScores:
    """All scores of one predicted label image against its ground truth.

    Attributes
    ----------
    iou, dice : float
        Foreground (semantic) IoU and Dice of ``labels > 0``; 1.0 when both are empty.
    ap50 : float
        ``TP / (TP + FP + FN)`` at IoU threshold 0.5 (the DSB per-threshold score).
    precision50, recall50, f1_50 : float
        Object precision, recall and F1 at IoU threshold 0.5.
    dsb_score : float
        DSB2018 score: mean of the per-threshold score over 0.50:0.05:0.95.
    n_true, n_pred : int
        Number of true and predicted objects.
    area_true, area_pred : int
        Foreground pixels of the truth and of the prediction.
    """

    iou: float
    dice: float
    ap50: float
    precision50: float
    recall50: float
    f1_50: float
    dsb_score: float
    n_true: int
    n_pred: int
    area_true: int = 0
    area_pred: int = 0


def image_scores(true_labels, pred_labels) -> ImageScores:
    """Foreground and object scores of one image.

    Parameters
    ----------
    true_labels, pred_labels : array_like of int or bool
        Label images of the same shape, 0 = background.

    Returns
    -------
    ImageScores
        See :class:`ImageScores` for each field and its empty-image convention.

    Raises
    ------
    ValueError
        If the shapes differ or a label is negative.
    """
    match = match_instances(true_labels, pred_labels)
    # The foreground areas follow from the object areas and overlaps: no second pass.
    n_truth = int(match.true_areas.sum())
    n_pred_px = int(match.pred_areas.sum())
    n_both = int(match.intersection.sum())
    union = n_truth + n_pred_px - n_both
    at50 = match.counts(0.5)
    return ImageScores(
        iou=1.0 if union == 0 else n_both / union,
        dice=1.0 if n_truth + n_pred_px == 0 else 2.0 * n_both / (n_truth + n_pred_px),
        ap50=at50.average_precision,
        precision50=at50.precision,
        recall50=at50.recall,
        f1_50=at50.f1,
        dsb_score=match.dsb_score(),
        n_true=match.n_true,
        n_pred=match.n_pred,
        area_true=n_truth,
        area_pred=n_pred_px,
    )
