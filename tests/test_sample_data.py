"""Offline sample data: the shipped synthetic samples open as image + labels."""

import numpy as np
import pytest

from napari_nuclei_unet import _sample_data
from napari_nuclei_unet._sample_data import sample_data_dir
from napari_nuclei_unet.core.synthetic import SAMPLE_SPECS

PLUGIN = "napari-nuclei-unet"
CONTRIBUTIONS = {
    "fluorescence": (_sample_data.fluorescence_sample, "synthetic-fluorescence"),
    "brightfield": (_sample_data.brightfield_sample, "synthetic-brightfield"),
    "histology": (_sample_data.histology_sample, "synthetic-histology"),
}


def _spec(style):
    return next(s for s in SAMPLE_SPECS if s.style == style)


def test_shipped_samples_exist_and_are_small():
    folder = sample_data_dir()
    for spec in SAMPLE_SPECS:
        assert (folder / spec.sample_id / "images" / f"{spec.sample_id}.png").is_file()
        assert list((folder / spec.sample_id / "masks").glob("*.png"))
    total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert total < 1_000_000


@pytest.mark.parametrize("style", list(CONTRIBUTIONS))
def test_contribution_returns_image_and_labels(style):
    function, _ = CONTRIBUTIONS[style]
    spec = _spec(style)
    layers = function()
    assert [t for _, _, t in layers] == ["image", "labels"]
    (image, image_kwargs, _), (labels, labels_kwargs, _) = layers
    assert image.shape == (*spec.shape, 3) and image.dtype == np.uint8
    assert labels.shape == spec.shape and labels.dtype == np.int32
    assert image_kwargs["name"] == spec.sample_id
    assert image_kwargs["rgb"] is True
    assert labels_kwargs["name"] == f"{spec.sample_id} label mask"
    n_mask_files = len(list((sample_data_dir() / spec.sample_id / "masks").glob("*.png")))
    assert len(np.unique(labels[labels > 0])) == n_mask_files
    assert labels.max() == n_mask_files
    assert image_kwargs["metadata"]["nuclei_unet_modality"] == style


def test_missing_files_fall_back_to_the_same_sample_generated(monkeypatch, tmp_path):
    shipped = _sample_data.fluorescence_sample()
    monkeypatch.setattr(_sample_data, "sample_data_dir", lambda: tmp_path)  # empty folder
    generated = _sample_data.fluorescence_sample()
    assert np.array_equal(shipped[0][0], generated[0][0])
    assert np.array_equal(shipped[1][0], generated[1][0])


def test_importing_sample_data_is_light():
    from _widget_helpers import fresh_python

    code = (
        "import sys, napari_nuclei_unet._sample_data, napari_nuclei_unet._reader\n"
        "print(sorted(m for m in ('torch', 'napari', 'qtpy') if m in sys.modules))"
    )
    assert fresh_python(code) == "[]"


@pytest.mark.gui
@pytest.mark.parametrize("style", list(CONTRIBUTIONS))
def test_open_sample_in_viewer(make_napari_viewer, style):
    from napari.layers import Image, Labels

    _, key = CONTRIBUTIONS[style]
    spec = _spec(style)
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, key)
    assert [type(layer) for layer in viewer.layers] == [Image, Labels]
    assert [layer.name for layer in viewer.layers] == [spec.sample_id,
                                                       f"{spec.sample_id} label mask"]
    assert viewer.layers[0].data.shape == (*spec.shape, 3)
    assert viewer.layers[1].data.max() > 0


@pytest.mark.gui
def test_offline_download_sample_shows_one_plain_message(make_napari_viewer, tmp_path,
                                                         monkeypatch):
    import socket

    from napari.utils.notifications import notification_manager

    from _widget_helpers import capture_notifications
    from napari_nuclei_unet.core import download

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/stage1_train.zip"
    monkeypatch.setattr(download, "DEFAULT_URL", url)
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "cache"))
    viewer = make_napari_viewer()
    with capture_notifications() as notes:
        with pytest.raises(download.DownloadError) as info:
            viewer.open_sample(PLUGIN, "dsb2018-stage1-train")
        assert notes.messages == []  # nothing shown by the plugin itself...
        # ...the exception is the one message: in the app, napari's exception hook
        # turns what the File > Open Sample action raises into an error notification.
        monkeypatch.setattr(notification_manager, "catch_error", True)
        monkeypatch.setattr(notification_manager, "exit_on_error", False)
        notification_manager.receive_error(type(info.value), info.value,
                                           info.value.__traceback__)
    assert len(viewer.layers) == 0
    assert notes.texts() == [
        f"Could not download DSB2018 stage1_train from {url}: could not connect to the "
        "server (are you offline?). Check your internet connection, or download "
        "stage1_train.zip yourself and drag it onto napari."
    ]
