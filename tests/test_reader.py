"""The npe2 reader: claims DSB2018 paths only, and opens them as image + labels layers."""

import zipfile

import numpy as np
import pytest

from napari_nuclei_unet._reader import (
    DATASET_KEY,
    NULL_LAYER_SENTINEL,
    SAMPLE_ID_KEY,
    get_reader,
    read_dsb,
)
from napari_nuclei_unet.core.synthetic import write_synthetic_dataset

PLUGIN = "napari-nuclei-unet"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small stage1_train-like folder: one sample per style (32 x 40 px)."""
    root = tmp_path_factory.mktemp("stage1_train")
    ids = write_synthetic_dataset(root, n_per_style=1, seed=2, shape=(32, 40), n_nuclei=4)
    return root, ids


def _zip_folder(folder, zip_path, prefix=""):
    with zipfile.ZipFile(zip_path, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, prefix + f.relative_to(folder).as_posix())
    return zip_path


@pytest.fixture(scope="module")
def dataset_zip(dataset, tmp_path_factory):
    root, _ = dataset
    return _zip_folder(root, tmp_path_factory.mktemp("zip") / "stage1_train.zip")


def _expected(root, sample_id):
    """Image and mask count straight from the PNG files."""
    from PIL import Image

    with Image.open(root / sample_id / "images" / f"{sample_id}.png") as im:
        image = np.asarray(im.convert("RGB"))
    return image, len(list((root / sample_id / "masks").glob("*.png")))


# -- get_reader: what is claimed ----------------------------------------------------------


def test_rejects_non_dsb_paths(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.png").write_bytes(b"not really")
    (tmp_path / "notes.txt").write_text("hello")
    plain_zip = tmp_path / "photos.zip"
    with zipfile.ZipFile(plain_zip, "w") as zf:
        zf.writestr("holiday/beach.png", b"x")
        zf.writestr("images/foo.png", b"x")
    fake_zip = tmp_path / "broken.zip"
    fake_zip.write_bytes(b"this is no zip")
    for path in [
        tmp_path / "plain",
        tmp_path / "notes.txt",
        plain_zip,
        fake_zip,
        tmp_path / "missing",
        tmp_path,
    ]:
        assert get_reader(str(path)) is None, path
    assert get_reader([]) is None


def test_claims_sample_dataset_and_zip(dataset, dataset_zip):
    root, ids = dataset
    assert get_reader(str(root / ids[0])) is read_dsb
    assert get_reader(str(root)) is read_dsb
    assert get_reader(root) is read_dsb  # os.PathLike too
    assert get_reader(str(dataset_zip)) is read_dsb
    assert get_reader([str(root / i) for i in ids]) is read_dsb


def test_list_with_a_foreign_path_is_not_claimed(dataset, tmp_path):
    root, ids = dataset
    assert get_reader([str(root / ids[0]), str(tmp_path)]) is None


def test_claims_zip_with_top_level_folder(dataset, tmp_path):
    root, _ = dataset
    zipped = _zip_folder(root, tmp_path / "dsb.zip", prefix="stage1_train/")
    assert get_reader(str(zipped)) is read_dsb


# -- reading without a viewer -----------------------------------------------------------


def test_read_sample_folder(dataset):
    root, ids = dataset
    sample_id = ids[-1]
    layers = read_dsb(str(root / sample_id))
    assert [t for _, _, t in layers] == ["image", "labels"]
    (image, image_kwargs, _), (labels, labels_kwargs, _) = layers
    expected_image, n_masks = _expected(root, sample_id)
    assert np.array_equal(image, expected_image)
    assert image_kwargs["name"] == sample_id and image_kwargs["rgb"] is True
    assert labels_kwargs["name"] == f"{sample_id} labels"
    assert labels.dtype == np.int32 and labels.shape == image.shape[:2]
    assert len(np.unique(labels[labels > 0])) == n_masks
    assert image_kwargs["metadata"][SAMPLE_ID_KEY] == sample_id


def test_read_dataset_opens_first_sample_with_metadata(dataset, dataset_zip):
    root, ids = dataset
    for path in (root, dataset_zip):
        (image, image_kwargs, _), (_, labels_kwargs, _) = read_dsb(str(path))
        assert image_kwargs["name"] == ids[0]
        for kwargs in (image_kwargs, labels_kwargs):
            assert kwargs["metadata"][DATASET_KEY] == str(path)
            assert kwargs["metadata"][SAMPLE_ID_KEY] == ids[0]


def test_fluorescence_contrast_is_stretched(dataset):
    root, _ = dataset
    (_, kwargs, _), _ = read_dsb(str(root / "fluorescence-0"))
    low, high = kwargs["contrast_limits"]
    assert low == 0 and 16 <= high < 255
    (_, kwargs, _), _ = read_dsb(str(root / "histology-0"))
    assert kwargs["contrast_limits"] == (0.0, 255.0)


@pytest.fixture
def corrupt_sample(dataset, tmp_path):
    """A sample folder whose image file is not a PNG."""
    import shutil

    root, ids = dataset
    folder = tmp_path / ids[0]
    shutil.copytree(root / ids[0], folder)
    (folder / "images" / f"{ids[0]}.png").write_bytes(b"\x89PNG but truncated")
    return folder


@pytest.fixture
def shown_errors(monkeypatch):
    import napari.utils.notifications

    shown = []
    monkeypatch.setattr(napari.utils.notifications, "show_error", shown.append)
    return shown


def test_corrupt_sample_notifies_instead_of_raising(corrupt_sample, shown_errors):
    assert get_reader(str(corrupt_sample)) is read_dsb  # looks like DSB ...
    assert read_dsb(str(corrupt_sample)) == NULL_LAYER_SENTINEL  # ... but cannot be read
    assert len(shown_errors) == 1
    assert corrupt_sample.name in shown_errors[0]


def test_bad_first_sample_of_a_folder_is_skipped(dataset, tmp_path, shown_errors):
    import shutil

    root, ids = dataset
    copy = tmp_path / "stage1_train"
    shutil.copytree(root, copy)
    (copy / ids[0] / "images" / f"{ids[0]}.png").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=ids[0]):  # the dataset reports the skipped sample
        (_, image_kwargs, _), _ = read_dsb(str(copy))
    assert image_kwargs["name"] == ids[1]
    assert not shown_errors


def test_read_zip_with_top_level_folder(dataset, tmp_path):
    root, ids = dataset
    zipped = _zip_folder(root, tmp_path / "dsb.zip", prefix="stage1_train/")
    (image, image_kwargs, _), (labels, _, _) = read_dsb(str(zipped))
    expected_image, n_masks = _expected(root, ids[0])
    assert image_kwargs["name"] == ids[0]
    assert np.array_equal(image, expected_image)
    assert labels.max() == n_masks


def test_bad_first_sample_of_a_zip_is_skipped(dataset, tmp_path, shown_errors):
    import shutil

    root, ids = dataset
    copy = tmp_path / "stage1_train"
    shutil.copytree(root, copy)
    (copy / ids[0] / "images" / f"{ids[0]}.png").write_bytes(b"garbage")
    zipped = _zip_folder(copy, tmp_path / "stage1_train.zip")
    with pytest.warns(UserWarning, match=ids[0]):
        (_, image_kwargs, _), _ = read_dsb(str(zipped))
    assert image_kwargs["name"] == ids[1]
    assert not shown_errors


def test_metadata_keys_match_the_widgets():
    layers = pytest.importorskip("napari_nuclei_unet.widgets._layers")
    from napari_nuclei_unet import _reader

    assert _reader.DATASET_KEY == layers.DATASET_KEY
    assert _reader.SAMPLE_ID_KEY == layers.SAMPLE_ID_KEY
    assert _reader.MODALITY_KEY == layers.MODALITY_KEY


# -- through napari ---------------------------------------------------------------------


@pytest.mark.gui
@pytest.mark.parametrize("kind", ["sample", "dataset", "zip"])
def test_viewer_open_adds_image_and_labels(make_napari_viewer, dataset, dataset_zip, kind):
    from napari.layers import Image, Labels

    root, ids = dataset
    path, sample_id = {
        "sample": (root / ids[1], ids[1]),
        "dataset": (root, ids[0]),
        "zip": (dataset_zip, ids[0]),
    }[kind]
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=PLUGIN)
    assert [type(layer) for layer in viewer.layers] == [Image, Labels]
    image_layer, labels_layer = viewer.layers
    expected_image, n_masks = _expected(root, sample_id)
    assert image_layer.name == sample_id and image_layer.rgb
    assert np.array_equal(image_layer.data, expected_image)
    assert labels_layer.name == f"{sample_id} labels"
    assert labels_layer.data.shape == expected_image.shape[:2]
    assert len(np.unique(labels_layer.data[labels_layer.data > 0])) == n_masks
    if kind != "sample":
        assert image_layer.metadata[DATASET_KEY] == str(path)


@pytest.mark.gui
def test_viewer_open_corrupt_sample_notifies(make_napari_viewer, corrupt_sample, shown_errors):
    viewer = make_napari_viewer()
    viewer.open(str(corrupt_sample), plugin=PLUGIN)  # no exception
    assert len(viewer.layers) == 0
    assert len(shown_errors) == 1
