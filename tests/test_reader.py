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
    fake_zip = tmp_path / "broken.zip"
    fake_zip.write_bytes(b"this is no zip")
    not_named_zip = tmp_path / "archive.bin"
    with zipfile.ZipFile(not_named_zip, "w") as zf:
        zf.writestr("s/images/s.png", b"x")
    for path in [
        tmp_path / "plain",
        tmp_path / "notes.txt",
        fake_zip,
        not_named_zip,
        tmp_path / "missing",
        tmp_path,
    ]:
        assert get_reader(str(path)) is None, path
    assert get_reader([]) is None


def test_a_zip_without_samples_is_claimed_and_gets_a_plain_message(tmp_path, monkeypatch):
    """Claiming reads only the end record; the list of names is read with the file."""
    import napari.utils.notifications

    shown = []
    monkeypatch.setattr(napari.utils.notifications, "show_error", shown.append)
    plain_zip = tmp_path / "photos.zip"
    with zipfile.ZipFile(plain_zip, "w") as zf:
        zf.writestr("holiday/beach.png", b"x")
        zf.writestr("images/foo.png", b"x")
    assert get_reader(str(plain_zip)) is read_dsb
    assert read_dsb(str(plain_zip)) == NULL_LAYER_SENTINEL
    assert len(shown) == 1
    assert "photos.zip holds no DSB2018 samples" in shown[0], shown


def test_claiming_a_zip_reads_its_end_record_only(dataset_zip, monkeypatch):
    """napari asks on its main thread: the 32,142 names of stage1_train.zip are not read."""
    def refuse(*args, **kwargs):
        raise AssertionError("the zip's directory was read to claim it")

    monkeypatch.setattr(zipfile.ZipFile, "namelist", refuse)
    monkeypatch.setattr(zipfile.ZipFile, "infolist", refuse)
    monkeypatch.setattr(zipfile.ZipFile, "__init__", refuse)
    assert get_reader(str(dataset_zip)) is read_dsb


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


def test_odd_zips_are_claimed_like_zipfile_reads_them(dataset_zip, tmp_path):
    prefixed = tmp_path / "prefixed.zip"  # data before the zip (self-extracting archives)
    prefixed.write_bytes(b"#!/bin/sh\nexit 0\n" + dataset_zip.read_bytes())
    assert get_reader(str(prefixed)) is read_dsb
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(dataset_zip.read_bytes()[:-40])
    assert get_reader(str(truncated)) is None


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
    assert labels_kwargs["name"] == f"{sample_id} label mask"
    assert labels.dtype == np.int32 and labels.shape == image.shape[:2]
    assert len(np.unique(labels[labels > 0])) == n_masks
    assert image_kwargs["metadata"][SAMPLE_ID_KEY] == sample_id


def _images(layers):
    return [(data, kwargs) for data, kwargs, kind in layers if kind == "image"]


def test_read_dataset_without_a_window_opens_every_sample(dataset, dataset_zip):
    root, ids = dataset
    for path in (root, dataset_zip):
        layers = read_dsb(str(path))
        assert [t for _, _, t in layers] == ["image", "labels"] * len(ids)
        images = _images(layers)
        assert [kwargs["metadata"][SAMPLE_ID_KEY] for _, kwargs in images] == ids
        assert [kwargs["name"] for _, kwargs in images] == ids
        for _, kwargs, _ in layers:
            assert kwargs["metadata"][DATASET_KEY] == str(path)
        for (image, _), sample_id in zip(images, ids, strict=True):
            assert np.array_equal(image, _expected(root, sample_id)[0])


def test_a_large_dataset_opens_a_bounded_number_and_says_so(dataset, dataset_zip, monkeypatch):
    import napari.utils.notifications

    from napari_nuclei_unet import _reader

    shown = []
    monkeypatch.setattr(napari.utils.notifications, "show_info", shown.append)
    monkeypatch.setattr(_reader, "MAX_LAYER_SAMPLES", 2)
    root, ids = dataset
    layers = read_dsb(str(dataset_zip))
    assert [kwargs["metadata"][SAMPLE_ID_KEY] for _, kwargs in _images(layers)] == ids[:2]
    assert len(shown) == 1
    assert f"{len(ids)} samples" in shown[0] and "first 2" in shown[0] and "Data" in shown[0]


def test_long_ids_are_named_by_their_first_8_characters(dataset, tmp_path):
    import shutil

    root, ids = dataset
    long_id = "0123456789abcdef" * 4
    folder = tmp_path / "stage1_train" / long_id
    shutil.copytree(root / ids[0], folder)
    (folder / "images" / f"{ids[0]}.png").rename(folder / "images" / f"{long_id}.png")
    for path in (folder, folder.parent, _zip_folder(folder.parent, tmp_path / "one.zip")):
        (_, image_kwargs, _), (_, labels_kwargs, _) = read_dsb(str(path))
        assert image_kwargs["name"] == long_id[:8]
        assert labels_kwargs["name"] == f"{long_id[:8]} label mask"
        assert image_kwargs["metadata"][SAMPLE_ID_KEY] == long_id  # the full id is kept


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
        layers = read_dsb(str(copy))
    assert [kwargs["name"] for _, kwargs in _images(layers)] == ids[1:]
    assert not shown_errors


def test_read_zip_with_top_level_folder(dataset, tmp_path):
    root, ids = dataset
    zipped = _zip_folder(root, tmp_path / "dsb.zip", prefix="stage1_train/")
    (image, image_kwargs, _), (labels, _, _) = read_dsb(str(zipped))[:2]
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
        layers = read_dsb(str(zipped))
    assert [kwargs["name"] for _, kwargs in _images(layers)] == ids[1:]
    assert not shown_errors


def test_metadata_keys_match_the_widgets():
    layers = pytest.importorskip("napari_nuclei_unet.widgets._layers")
    from napari_nuclei_unet import _reader

    assert _reader.DATASET_KEY == layers.DATASET_KEY
    assert _reader.SAMPLE_ID_KEY == layers.SAMPLE_ID_KEY
    assert _reader.MODALITY_KEY == layers.MODALITY_KEY


# -- through napari ---------------------------------------------------------------------


@pytest.mark.gui
def test_viewer_open_sample_adds_image_and_labels(make_napari_viewer, dataset):
    from napari.layers import Image, Labels

    root, ids = dataset
    viewer = make_napari_viewer()
    viewer.open(str(root / ids[1]), plugin=PLUGIN)
    assert [type(layer) for layer in viewer.layers] == [Image, Labels]
    image_layer, labels_layer = viewer.layers
    expected_image, n_masks = _expected(root, ids[1])
    assert image_layer.name == ids[1] and image_layer.rgb
    assert np.array_equal(image_layer.data, expected_image)
    assert labels_layer.name == f"{ids[1]} label mask"
    assert len(np.unique(labels_layer.data[labels_layer.data > 0])) == n_masks


def _wait_for_first_sample(qtbot, data, ids):
    from _widget_helpers import wait_worker

    wait_worker(qtbot, data.session.jobs.running("open dataset"))
    qtbot.waitUntil(lambda: data.session.current_id == ids[0], timeout=30_000)
    wait_worker(qtbot, data.session.jobs.running("load sample"))


@pytest.mark.gui
@pytest.mark.parametrize("kind", ["dataset", "zip"])
def test_viewer_open_dataset_lists_every_sample_in_the_data_panel(
        make_napari_viewer, qtbot, dataset, dataset_zip, kind):
    from napari_nuclei_unet.widgets._layers import IMAGE_LAYER
    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    root, ids = dataset
    path = root if kind == "dataset" else dataset_zip
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin=PLUGIN)  # as when the zip is dropped on the window
    panels = [w for w in viewer.window.dock_widgets.values() if isinstance(w, WorkflowPanel)]
    assert len(panels) == 1
    data = panels[0].data
    assert panels[0].tabs.currentIndex() == panels[0].step_names().index("data")
    _wait_for_first_sample(qtbot, data, ids)
    assert data.dataset.ids() == ids  # every sample listed, decoded only when shown
    assert sorted(data.visible_ids()) == ids
    assert len(data.session.samples) <= 2
    image = viewer.layers[IMAGE_LAYER]
    assert np.array_equal(image.data, _expected(root, ids[0])[0])
    assert image.metadata[SAMPLE_ID_KEY] == ids[0]


@pytest.mark.gui
def test_viewer_open_dataset_uses_the_open_data_dock(make_napari_viewer, qtbot, dataset_zip,
                                                     dataset):
    from napari_nuclei_unet.widgets.data_browser import DataBrowserWidget

    _root, ids = dataset
    viewer = make_napari_viewer()
    data = DataBrowserWidget(viewer)
    viewer.window.add_dock_widget(data, name="Data")
    viewer.open(str(dataset_zip), plugin=PLUGIN)
    assert len(viewer.window.dock_widgets) == 1  # no second Data widget
    _wait_for_first_sample(qtbot, data, ids)
    assert data.dataset.ids() == ids


@pytest.mark.gui
def test_dropping_a_zip_without_samples_keeps_the_open_dataset(
        make_napari_viewer, qtbot, dataset, dataset_zip, tmp_path, shown_errors):
    """Any zip is claimed (end record only); the Data panel says plainly it holds no samples."""
    from _widget_helpers import wait_worker
    from napari_nuclei_unet.widgets.data_browser import DataBrowserWidget

    _root, ids = dataset
    viewer = make_napari_viewer()
    data = DataBrowserWidget(viewer)
    viewer.window.add_dock_widget(data, name="Data")
    viewer.open(str(dataset_zip), plugin=PLUGIN)
    _wait_for_first_sample(qtbot, data, ids)
    photos = tmp_path / "photos.zip"
    with zipfile.ZipFile(photos, "w") as zf:
        zf.writestr("holiday/beach.png", b"x")
    viewer.open(str(photos), plugin=PLUGIN)  # no exception, no layer
    wait_worker(qtbot, data.session.jobs.running("open dataset"))
    qtbot.waitUntil(lambda: len(shown_errors) == 1, timeout=30_000)
    assert "photos.zip holds no DSB2018 samples" in shown_errors[0]
    assert "Traceback" not in shown_errors[0]
    assert data.dataset.ids() == ids  # the open dataset stays


@pytest.mark.gui
def test_viewer_open_corrupt_sample_notifies(make_napari_viewer, corrupt_sample, shown_errors):
    viewer = make_napari_viewer()
    viewer.open(str(corrupt_sample), plugin=PLUGIN)  # no exception
    assert len(viewer.layers) == 0
    assert len(shown_errors) == 1
