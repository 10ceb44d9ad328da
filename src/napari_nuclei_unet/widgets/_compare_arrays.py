"""What the Compare view shows, as arrays: the error map and the renumbered prediction.

Pure numpy (no napari): the Compare dock computes these in a worker, so that the
main thread only assigns layer data (``widgets._compare_layers``).
"""

from __future__ import annotations

import numpy as np

#: Values of the error layer.
TRUE_POSITIVE, FALSE_POSITIVE, FALSE_NEGATIVE = 1, 2, 3

#: RGBA colours of the error layer, also used for the legend in the dock.
ERROR_COLORS: dict[int, tuple[float, float, float, float]] = {
    TRUE_POSITIVE: (0.15, 0.85, 0.25, 1.0),  # green
    FALSE_POSITIVE: (1.0, 0.15, 0.85, 1.0),  # magenta
    FALSE_NEGATIVE: (1.0, 0.85, 0.0, 1.0),  # yellow
}
ERROR_NAMES = {
    TRUE_POSITIVE: "correct nucleus pixels (true positive)",
    FALSE_POSITIVE: "predicted, not in the label mask (false positive)",
    FALSE_NEGATIVE: "in the label mask, missed (false negative)",
}


def error_map(true_labels: np.ndarray, pred_labels: np.ndarray) -> np.ndarray:
    """Pixel-wise comparison of a prediction with the label mask.

    Parameters
    ----------
    true_labels, pred_labels : numpy.ndarray
        Label images (or boolean masks) of the same ``(H, W)`` shape; any value
        > 0 is foreground.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` uint8: 0 background in both, :data:`TRUE_POSITIVE` (1)
        foreground in both, :data:`FALSE_POSITIVE` (2) predicted only,
        :data:`FALSE_NEGATIVE` (3) in the label mask only.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    truth = np.asarray(true_labels) > 0
    pred = np.asarray(pred_labels) > 0
    if truth.shape != pred.shape:
        raise ValueError(
            "label mask and prediction must have the same shape, "
            f"got {truth.shape} and {pred.shape}"
        )
    out = np.zeros(truth.shape, dtype=np.uint8)
    out[truth & pred] = TRUE_POSITIVE
    out[pred & ~truth] = FALSE_POSITIVE
    out[truth & ~pred] = FALSE_NEGATIVE
    return out


def match_colors_to_truth(true_labels: np.ndarray, pred_labels: np.ndarray) -> np.ndarray:
    """Renumber predicted nuclei so that each one matching a true nucleus gets its id.

    napari colours a label by its value, so a predicted nucleus drawn with the
    same colour as a nucleus of the label mask is a match (IoU > 0.5, as for
    AP@0.5); unmatched predicted nuclei get new ids above the label mask's.

    Parameters
    ----------
    true_labels, pred_labels : numpy.ndarray
        ``(H, W)`` label images of the same shape.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` int32: ``pred_labels`` renumbered (the same objects).
    """
    from napari_nuclei_unet.core.metrics import match_instances

    pred_labels = np.asarray(pred_labels)
    match = match_instances(true_labels, pred_labels)
    if match.n_pred == 0:
        return pred_labels.astype(np.int32, copy=True)
    lookup = np.zeros(int(pred_labels.max()) + 1, dtype=np.int32)
    pairs = match.matched_ids(0.5)
    lookup[pairs[:, 1]] = pairs[:, 0]
    unmatched = match.unmatched_pred_ids(0.5)
    start = int(match.true_ids.max()) + 1 if match.n_true else 1
    lookup[unmatched] = np.arange(start, start + unmatched.size, dtype=np.int32)
    return lookup[pred_labels]


def comparison_arrays(true_labels: np.ndarray | None,
                      pred_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the compare layers show: the renumbered prediction and the error map.

    Pure numpy: the Compare dock computes them in a worker, so that the main thread
    only assigns layer data.

    Parameters
    ----------
    true_labels : numpy.ndarray or None
        The label mask, or None when the sample has none.
    pred_labels : numpy.ndarray
        ``(H, W)`` predicted nuclei.

    Returns
    -------
    tuple of numpy.ndarray
        ``(shown, errors)``: :func:`match_colors_to_truth` (``pred_labels`` itself
        without a label mask) and :func:`error_map` (against an empty mask without one).
    """
    pred_labels = np.asarray(pred_labels)
    if true_labels is None:
        return pred_labels, error_map(np.zeros(pred_labels.shape, np.int32), pred_labels)
    return match_colors_to_truth(true_labels, pred_labels), error_map(true_labels, pred_labels)
