"""core.instances: connected components and the watershed split of touching nuclei."""

import time

import numpy as np
import pytest

from napari_nuclei_unet.core.instances import (
    INSTANCE_METHODS,
    MIN_NUCLEUS_PIXELS,
    labels_from_probability,
    split_instances,
)
from napari_nuclei_unet.core.metrics import image_scores


def _disc(shape, centre, radius):
    yy, xx = np.indices(shape)
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _two_touching_discs(radius=10, gap=18):
    # centres `gap` apart with radius 10: the discs overlap in a neck ~8 px wide
    shape = (40, 60)
    a = _disc(shape, (20, 20), radius)
    b = _disc(shape, (20, 20 + gap), radius)
    return a, b


def _assert_consecutive_int32(labels):
    assert labels.dtype == np.int32
    ids = np.unique(labels)
    assert ids.tolist() == list(range(ids.size))


def test_two_touching_discs_split_by_watershed_not_by_components():
    a, b = _two_touching_discs()
    mask = a | b
    components = split_instances(mask, method="components")
    watershed = split_instances(mask, method="watershed")
    assert components.max() == 1
    assert watershed.max() == 2
    _assert_consecutive_int32(components)
    _assert_consecutive_int32(watershed)
    # each disc centre carries its own label, the split runs through the neck
    assert watershed[20, 20] != watershed[20, 38]
    assert np.array_equal(watershed > 0, mask)
    left_only = a & ~b
    assert len(np.unique(watershed[left_only])) == 1


def test_watershed_is_the_default():
    mask = np.logical_or(*_two_touching_discs())
    assert split_instances(mask).max() == 2


def test_probability_valley_splits_what_distance_alone_cannot():
    # discs 8 px apart: the distance map has one broad top, so no split on the mask alone
    a, b = _two_touching_discs(gap=8)
    mask = a | b
    assert split_instances(mask).max() == 1
    prob = np.where(mask, 0.99, 0.0)
    prob[:, 23:25] = 0.5  # the network is unsure along the contact line
    labels = split_instances(mask, prob=prob)
    assert labels.max() == 2
    assert labels[20, 18] != labels[20, 30]
    assert np.array_equal(labels > 0, mask)
    # the probability map is ignored by "components"
    assert split_instances(mask, method="components", prob=prob).max() == 1


def test_elongated_nucleus_stays_whole():
    yy, xx = np.indices((40, 80))
    ellipse = ((yy - 20) / 7) ** 2 + ((xx - 40) / 30) ** 2 <= 1
    assert split_instances(ellipse).max() == 1


def test_empty_mask_gives_all_zero_int32():
    for method in INSTANCE_METHODS:
        labels = split_instances(np.zeros((16, 16), bool), method=method)
        assert labels.dtype == np.int32
        assert labels.shape == (16, 16)
        assert not labels.any()


def test_separate_objects_get_consecutive_ids_and_small_ones_vanish():
    mask = np.zeros((30, 30), np.uint8)
    mask[2:8, 2:8] = 1  # 36 px
    mask[20:28, 20:28] = 255  # 64 px, any value > 0 is foreground
    mask[15, 2] = 1  # 1 px speck
    for method in INSTANCE_METHODS:
        labels = split_instances(mask, method=method, min_size=10)
        _assert_consecutive_int32(labels)
        assert labels.max() == 2
        assert labels[15, 2] == 0
        kept = split_instances(mask, method=method, min_size=0)
        assert kept.max() == 3


def test_corner_contact_is_not_a_connection():
    mask = np.zeros((10, 10), bool)
    mask[1:5, 1:5] = True
    mask[5:9, 5:9] = True  # touches the first square only diagonally
    assert split_instances(mask, method="components", min_size=0).max() == 2


def test_split_scores_perfectly_on_touching_squares_with_a_neck():
    true = np.zeros((30, 50), np.int32)
    true[5:25, 5:25] = 1
    true[5:25, 25:45] = 2
    true[5:12, 24:26] = 0  # notch on both sides of the contact
    true[18:25, 24:26] = 0
    labels = split_instances(true > 0)
    scores = image_scores(true, labels)
    assert labels.max() == 2
    assert scores.ap50 == 1.0


def test_min_distance_merges_close_seeds():
    a, b = _two_touching_discs(gap=18)
    mask = a | b
    assert split_instances(mask, min_distance=17).max() == 2
    assert split_instances(mask, min_distance=19).max() == 1


def test_large_h_prevents_the_split():
    mask = np.logical_or(*_two_touching_discs())
    assert split_instances(mask, h=50).max() == 1


def test_object_touching_the_image_border():
    mask = np.zeros((20, 20), bool)
    mask[:, :6] = True
    mask[:6, :] = True
    labels = split_instances(mask)
    assert labels[0, 0] > 0
    assert np.array_equal(labels > 0, mask)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mask": np.zeros((2, 2, 2))}, "2-D"),
        ({"mask": np.zeros((4, 4)), "method": "magic"}, "method"),
        ({"mask": np.zeros((4, 4)), "prob": np.zeros((4, 5))}, r"\(4, 4\).*\(4, 5\)"),
        ({"mask": np.zeros((4, 4)), "min_size": -1}, ">= 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    mask = kwargs.pop("mask")
    with pytest.raises(ValueError, match=match):
        split_instances(mask, **kwargs)


def _many_nuclei(shape=(1024, 1024), n=300, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.indices(shape)
    mask = np.zeros(shape, bool)
    centres, radii = rng.uniform(15, shape[0] - 15, (n, 2)), rng.uniform(6, 14, n)
    for (y, x), r in zip(centres, radii, strict=True):
        sl = (slice(int(y - r - 1), int(y + r + 2)), slice(int(x - r - 1), int(x + r + 2)))
        mask[sl] |= (yy[sl] - y) ** 2 + (xx[sl] - x) ** 2 <= r * r
    return mask


@pytest.mark.timing
def test_watershed_on_a_large_image_is_fast():
    mask = _many_nuclei()
    split_instances(mask)  # warm imports
    start = time.perf_counter()
    labels = split_instances(mask)
    elapsed = time.perf_counter() - start
    assert labels.max() > 250
    # typically ~0.15 s; generous bound for busy CI machines
    assert elapsed < 2.0, f"split_instances took {elapsed:.2f} s on a 1024x1024 mask"


def test_labels_from_probability_thresholds_strictly_then_splits():
    a, b = _two_touching_discs()
    prob = np.where(a | b, 0.8, 0.1).astype(np.float32)
    labels = labels_from_probability(prob)
    assert labels.dtype == np.int32 and labels.max() == 2
    assert not labels_from_probability(prob, threshold=0.8).any()  # foreground is prob > 0.8
    assert labels_from_probability(prob, method="components").max() == 1


def test_network_labels_drop_specks_below_the_tuned_size():
    prob = np.zeros((40, 40), np.float32)
    prob[2:6, 2:7] = 0.9  # 20 px: a speck
    prob[20:26, 20:26] = 0.9  # 36 px: a small nucleus
    assert MIN_NUCLEUS_PIXELS == 25
    labels = labels_from_probability(prob)
    assert labels.max() == 1 and labels[22, 22] == 1 and labels[3, 3] == 0
    assert labels_from_probability(prob, min_size=10).max() == 2
