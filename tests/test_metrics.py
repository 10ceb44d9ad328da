"""core.metrics: tiny hand-worked arrays, degenerate cases, a brute-force cross-check."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from napari_nuclei_unet.core.metrics import (
    DSB_THRESHOLDS,
    ImageScores,
    dice,
    dsb_score,
    image_scores,
    iou,
    match_instances,
)

# ---------------------------------------------------------------- foreground IoU / Dice


def test_iou_dice_hand_computed():
    truth = np.zeros((4, 4), bool)
    truth[:2, :2] = True  # 4 pixels
    pred = np.zeros((4, 4), bool)
    pred[:2, 1:3] = True  # 4 pixels, 2 of them shared with truth
    # intersection 2, union 4 + 4 - 2 = 6 -> IoU 1/3; Dice 2*2 / (4+4) = 1/2
    assert iou(truth, pred) == pytest.approx(1 / 3)
    assert dice(truth, pred) == pytest.approx(0.5)


def test_iou_dice_treat_any_positive_value_as_foreground():
    truth = np.array([[0, 3, 7], [0, 0, 1]])  # 3 foreground pixels
    pred = np.array([[0.0, 0.2, 0.0], [0.0, 0.0, 5.0]])  # 2 foreground pixels, both in truth
    # intersection 2, union 3 -> 2/3; Dice 4/5
    assert iou(truth, pred) == pytest.approx(2 / 3)
    assert dice(truth, pred) == pytest.approx(0.8)


def test_iou_dice_are_symmetric():
    rng = np.random.default_rng(1)
    a, b = rng.random((2, 16, 16)) > 0.5
    assert iou(a, b) == iou(b, a)
    assert dice(a, b) == dice(b, a)


def test_iou_dice_empty_cases():
    empty = np.zeros((3, 3), bool)
    full = np.ones((3, 3), bool)
    assert iou(empty, empty) == 1.0
    assert dice(empty, empty) == 1.0
    assert iou(empty, empty, empty=0.0) == 0.0
    assert np.isnan(dice(empty, empty, empty=np.nan))
    assert iou(empty, full) == 0.0 and iou(full, empty) == 0.0
    assert dice(empty, full) == 0.0
    assert iou(full, full) == 1.0 and dice(full, full) == 1.0


def test_iou_empty_is_keyword_only():
    with pytest.raises(TypeError):
        iou(np.zeros(2), np.zeros(2), 0.0)


@pytest.mark.parametrize("func", [iou, dice, dsb_score, match_instances, image_scores])
def test_shape_mismatch_says_expected_and_got(func):
    a = np.zeros((4, 5), np.int32)
    b = np.zeros((5, 4), np.int32)
    with pytest.raises(ValueError, match=r"same shape.*\(4, 5\).*\(5, 4\)"):
        func(a, b)


# ---------------------------------------------------------------- instance matching


def _two_by_six():
    # true:            pred:
    # 1 1 0 0 2 2      4 4 4 0 0 0
    # 1 1 0 0 2 2      4 4 4 0 0 9
    true = np.array([[1, 1, 0, 0, 2, 2], [1, 1, 0, 0, 2, 2]], np.int32)
    pred = np.array([[4, 4, 4, 0, 0, 0], [4, 4, 4, 0, 0, 9]], np.int32)
    return true, pred


def test_match_instances_hand_computed():
    true, pred = _two_by_six()
    m = match_instances(true, pred)
    assert m.true_ids.tolist() == [1, 2]
    assert m.pred_ids.tolist() == [4, 9]
    assert m.true_areas.tolist() == [4, 4]
    assert m.pred_areas.tolist() == [6, 1]
    # (1,4): intersection 4, union 4 + 6 - 4 = 6 -> 2/3
    # (2,9): intersection 1, union 4 + 1 - 1 = 4 -> 1/4
    np.testing.assert_allclose(m.iou, [[2 / 3, 0.0], [0.0, 0.25]])
    assert m.intersection.tolist() == [[4, 0], [0, 1]]

    c = m.counts(0.5)  # only (1,4) is above 0.5
    assert (c.tp, c.fp, c.fn) == (1, 1, 1)
    assert c.precision == 0.5 and c.recall == 0.5 and c.f1 == 0.5
    assert c.average_precision == pytest.approx(1 / 3)
    assert m.matched_ids(0.5).tolist() == [[1, 4]]
    assert m.unmatched_true_ids(0.5).tolist() == [2]
    assert m.unmatched_pred_ids(0.5).tolist() == [9]
    # (1,4) with IoU 0.667 is a hit at 0.50, 0.55, 0.60, 0.65: 1/3 each; 0/4 at the other six.
    assert m.dsb_score() == pytest.approx(4 * (1 / 3) / 10)
    assert dsb_score(true, pred) == pytest.approx(4 / 30)


def test_match_threshold_is_strictly_greater():
    # IoU exactly 0.5: true 2 pixels, pred 1 of them -> 1/2, which is not a hit at 0.5.
    true = np.array([[1, 1]])
    pred = np.array([[1, 0]])
    m = match_instances(true, pred)
    assert m.iou[0, 0] == 0.5
    assert m.counts(0.5).tp == 0
    assert m.counts(0.45).tp == 1


def test_matching_below_half_is_one_to_one():
    # One true object of 4 pixels, two predicted halves: each IoU 2/4 = 0.5.
    true = np.array([[1, 1, 1, 1]])
    pred = np.array([[1, 1, 2, 2]])
    m = match_instances(true, pred)
    np.testing.assert_allclose(m.iou, [[0.5, 0.5]])
    c = m.counts(0.3)  # both pairs pass 0.3 but the true object can match only once
    assert (c.tp, c.fp, c.fn) == (1, 1, 0)
    # a case where the optimal assignment beats greedy: true 1 overlaps preds a and b,
    # true 2 overlaps only a, so matching 1-b and 2-a gives two hits.
    rng_iou = np.array([[0.45, 0.40], [0.35, 0.0]])
    from napari_nuclei_unet.core.metrics import MatchResult

    fake = MatchResult(
        np.array([1, 2]), np.array([1, 2]), rng_iou, np.ones(2), np.ones(2), np.zeros((2, 2))
    )
    rows, cols = fake.matched_indices(0.3)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 1), (1, 0)]


def test_matching_threshold_out_of_range():
    m = match_instances(np.ones((2, 2), int), np.ones((2, 2), int))
    with pytest.raises(ValueError, match="threshold"):
        m.counts(1.5)


def test_perfect_prediction_with_renumbered_non_consecutive_ids():
    true = np.zeros((8, 8), np.int32)
    true[0:3, 0:3] = 7
    true[5:8, 5:8] = 300
    true[0:2, 6:8] = 12
    pred = np.zeros_like(true, dtype=np.uint16)
    pred[true == 7] = 65000
    pred[true == 300] = 2
    pred[true == 12] = 41
    m = match_instances(true, pred)
    assert m.true_ids.tolist() == [7, 12, 300]
    assert m.pred_ids.tolist() == [2, 41, 65000]
    assert m.dsb_score() == 1.0
    s = image_scores(true, pred)
    assert (s.iou, s.dice, s.ap50, s.dsb_score, s.n_true, s.n_pred) == (1.0, 1.0, 1.0, 1.0, 3, 3)


def test_huge_label_values_use_the_sparse_path():
    true = np.array([[0, 1, 1, 2_000_000_000]], np.int64)
    pred = np.array([[0, 5, 5, 5]], np.int64)
    m = match_instances(true, pred)
    assert m.true_ids.tolist() == [1, 2_000_000_000]
    # (1,5): 2 / 3; (2e9,5): 1 / 3
    np.testing.assert_allclose(m.iou, [[2 / 3], [1 / 3]])


def test_no_background_anywhere():
    true = np.array([[1, 1], [2, 2]])
    pred = np.array([[3, 3], [3, 3]])
    m = match_instances(true, pred)
    np.testing.assert_allclose(m.iou, [[0.5], [0.5]])


def test_boolean_masks_are_single_objects():
    true = np.array([[True, True, False]])
    pred = np.array([[True, True, False]])
    assert match_instances(true, pred).iou.tolist() == [[1.0]]


def test_bad_label_inputs():
    with pytest.raises(TypeError, match="integer label image"):
        match_instances(np.zeros((2, 2), float), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="negative"):
        match_instances(np.array([[-1, 0]]), np.array([[0, 0]]))


def test_empty_images():
    empty = np.zeros((5, 5), np.int32)
    one = empty.copy()
    one[1:3, 1:3] = 1
    both = image_scores(empty, empty)
    assert both == ImageScores(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0, 0)
    missed = image_scores(one, empty)  # everything missed
    assert (missed.iou, missed.ap50, missed.precision50, missed.recall50) == (0.0, 0.0, 0.0, 0.0)
    assert (missed.f1_50, missed.dsb_score, missed.n_true, missed.n_pred) == (0.0, 0.0, 1, 0)
    spurious = image_scores(empty, one)  # only false positives
    assert (spurious.precision50, spurious.recall50, spurious.dsb_score) == (0.0, 0.0, 0.0)
    m = match_instances(empty, one)
    assert m.iou.shape == (0, 1)
    assert match_instances(np.zeros((0, 3), int), np.zeros((0, 3), int)).dsb_score() == 1.0


def test_image_scores_hand_computed():
    true, pred = _two_by_six()
    s = image_scores(true, pred)
    # foreground: truth 8 px, pred 7 px, shared 5 -> IoU 5/10, Dice 10/15
    assert s.iou == pytest.approx(0.5)
    assert s.dice == pytest.approx(2 / 3)
    assert s.ap50 == pytest.approx(1 / 3)
    assert (s.precision50, s.recall50, s.f1_50) == (0.5, 0.5, 0.5)
    assert s.dsb_score == pytest.approx(4 / 30)
    assert (s.n_true, s.n_pred) == (2, 2)
    assert dataclasses.is_dataclass(s)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.iou = 0.0


def test_scores_symmetric_in_swap():
    true, pred = _two_by_six()
    a, b = image_scores(true, pred), image_scores(pred, true)
    for field in ("iou", "dice", "ap50", "f1_50", "dsb_score"):
        assert getattr(a, field) == getattr(b, field)
    assert (a.precision50, a.recall50) == (b.recall50, b.precision50)


def test_dsb_thresholds():
    assert DSB_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def test_many_objects_match_quickly():
    # 375 objects on a 1024 x 1024 grid, shifted by one pixel in the prediction.
    true = np.zeros((1024, 1024), np.int32)
    k = 0
    for y in range(0, 1000, 40):
        for x in range(0, 990, 66):
            k += 1
            true[y + 2 : y + 30, x + 2 : x + 30] = k
    pred = np.roll(true, 1, axis=1)
    m = match_instances(true, pred)
    assert m.n_true == m.n_pred == k == 375
    # each object: 28x28, overlap 28x27 -> IoU 756 / (784 + 784 - 756) = 0.9310...
    np.testing.assert_allclose(np.diag(m.iou), 756 / 812)
    assert m.counts(0.9).tp == 375 and m.counts(0.95).tp == 0


# ---------------------------------------------------------------- brute-force cross-check


def _brute_force_iou(true, pred):
    true_ids = [i for i in np.unique(true) if i != 0]
    pred_ids = [j for j in np.unique(pred) if j != 0]
    out = np.zeros((len(true_ids), len(pred_ids)))
    for a, i in enumerate(true_ids):
        for b, j in enumerate(pred_ids):
            inter = np.logical_and(true == i, pred == j).sum()
            union = np.logical_or(true == i, pred == j).sum()
            out[a, b] = inter / union
    return true_ids, pred_ids, out


def _brute_force_dsb(iou_matrix):
    scores = []
    for t in DSB_THRESHOLDS:
        tp = int((iou_matrix > t).sum())
        fp = iou_matrix.shape[1] - tp
        fn = iou_matrix.shape[0] - tp
        scores.append(1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn))
    return float(np.mean(scores))


label_images = hnp.arrays(
    np.int32,
    st.tuples(st.integers(1, 12), st.integers(1, 12)),
    elements=st.sampled_from([0, 0, 1, 2, 3, 17, 1000]),
)


@settings(max_examples=150, deadline=None)
@given(true=label_images, data=st.data())
def test_match_instances_matches_brute_force(true, data):
    pred = data.draw(hnp.arrays(np.int32, true.shape, elements=st.sampled_from([0, 0, 4, 5, 9, 1])))
    m = match_instances(true, pred)
    true_ids, pred_ids, expected = _brute_force_iou(true, pred)
    assert m.true_ids.tolist() == true_ids
    assert m.pred_ids.tolist() == pred_ids
    np.testing.assert_allclose(m.iou, expected)
    assert m.dsb_score() == pytest.approx(_brute_force_dsb(expected))
    # matches at >= 0.5 are one-to-one
    rows, cols = m.matched_indices(0.5)
    assert len(set(rows.tolist())) == rows.size and len(set(cols.tolist())) == cols.size


def test_random_blob_images_match_brute_force():
    rng = np.random.default_rng(0)
    from scipy import ndimage as ndi

    for _ in range(5):
        true, _ = ndi.label(ndi.gaussian_filter(rng.random((48, 48)), 2) > 0.5)
        pred, _ = ndi.label(ndi.gaussian_filter(rng.random((48, 48)), 2) > 0.5)
        pred = np.where(pred > 0, pred * 3 + 10, 0)  # non-consecutive ids
        m = match_instances(true, pred)
        _, _, expected = _brute_force_iou(true, pred)
        np.testing.assert_allclose(m.iou, expected)
