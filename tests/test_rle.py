"""Kaggle run-length encoding and solution / submission CSVs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from napari_nuclei_unet.core.rle import (
    CSVFormatError,
    labels_to_rles,
    read_solution_csv,
    rle_decode,
    rle_encode,
    write_submission_csv,
)

shapes = st.tuples(st.integers(1, 12), st.integers(1, 12))


def test_known_encoding_is_column_major_and_one_based():
    mask = np.array([[1, 0, 1], [1, 0, 1], [0, 0, 1]], bool)
    # column-major numbering: column 0 holds pixels 1..3, column 2 holds 7..9
    assert rle_encode(mask) == "1 2 7 3"
    np.testing.assert_array_equal(rle_decode("1 2 7 3", (3, 3)), mask)
    assert rle_encode(np.zeros((2, 2))) == ""
    assert not rle_decode("", (2, 2)).any()


@settings(max_examples=200, deadline=None)
@given(shapes.flatmap(lambda s: arrays(bool, s)))
def test_mask_roundtrip(mask):
    rle = rle_encode(mask)
    np.testing.assert_array_equal(rle_decode(rle, mask.shape), mask)
    numbers = [int(x) for x in rle.split()]
    assert all(n >= 1 for n in numbers)


def _canonical(labels):
    """Relabel 1..n in order of first appearance of each label value (sorted values)."""
    out = np.zeros(labels.shape, np.int32)
    for k, value in enumerate(np.unique(labels[labels > 0]), start=1):
        out[labels == value] = k
    return out


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.text("abcdef0123456789", min_size=1, max_size=8),
        shapes.flatmap(lambda s: arrays(np.int32, s, elements=st.integers(0, 6))),
        min_size=1,
        max_size=4,
    )
)
def test_labels_csv_roundtrip(tmp_path_factory, labels_by_id):
    path = tmp_path_factory.mktemp("csv") / "sub.csv"
    write_submission_csv(path, labels_by_id)
    back = read_solution_csv(path, shapes={k: v.shape for k, v in labels_by_id.items()})
    assert set(back) == set(labels_by_id)
    for image_id, labels in labels_by_id.items():
        np.testing.assert_array_equal(back[image_id], _canonical(labels))


def test_labels_to_rles_one_per_label_in_order():
    labels = np.array([[0, 3, 3], [5, 0, 3]])
    rles = labels_to_rles(labels)
    assert rles == [rle_encode(labels == 3), rle_encode(labels == 5)]
    assert labels_to_rles(np.zeros((2, 2), int)) == []


def test_submission_format(tmp_path):
    labels = np.zeros((3, 3), np.int32)
    labels[0, 0] = 1
    path = write_submission_csv(tmp_path / "s.csv", {"img1": labels, "empty": np.zeros((2, 2))})
    assert path.read_text().splitlines() == ["ImageId,EncodedPixels", "img1,1 1", "empty,"]


def test_solution_csv_with_height_width(tmp_path):
    path = tmp_path / "stage1_solution.csv"
    path.write_text(
        "ImageId,EncodedPixels,Height,Width,Usage\n"
        "a,1 2,3,3,Public\n"
        "a,7 3,3,3,Public\n"
        "b,,2,2,Private\n"
    )
    out = read_solution_csv(path)
    np.testing.assert_array_equal(out["a"], [[1, 0, 2], [1, 0, 2], [0, 0, 2]])
    assert out["a"].dtype == np.int32
    assert out["b"].shape == (2, 2) and not out["b"].any()


def test_missing_shapes_say_what_to_pass(tmp_path):
    path = tmp_path / "sub.csv"
    path.write_text("ImageId,EncodedPixels\nabc,1 2\n")
    with pytest.raises(CSVFormatError, match=r"no Height/Width columns.*'abc'.*shapes="):
        read_solution_csv(path)
    assert read_solution_csv(path, shapes={"abc": (2, 2)})["abc"].sum() == 2


def test_bad_csv_and_rle(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("Id,Pixels\n")
    with pytest.raises(CSVFormatError, match=r"missing column.*ImageId"):
        read_solution_csv(path)
    with pytest.raises(CSVFormatError, match="odd number"):
        rle_decode("1 2 3", (3, 3))
    with pytest.raises(CSVFormatError, match="outside"):
        rle_decode("8 5", (3, 3))
