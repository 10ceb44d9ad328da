"""The command line finds its inputs with the dataset reader's own code: one set of words."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import pytest

from napari_nuclei_unet._cli.data import find_images, open_dataset
from napari_nuclei_unet.core.dataset import DatasetError, DSBDataset, zip_samples
from napari_nuclei_unet.core.synthetic import write_synthetic_dataset


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEI_UNET_CACHE_DIR", str(tmp_path / "cache"))


def _dangling_message(call) -> str:
    with pytest.raises(DatasetError) as info:
        call()
    return str(info.value)


@pytest.mark.parametrize("kind", ["broken", "loop"])
def test_a_link_to_nothing_gets_one_message_everywhere(tmp_path, monkeypatch, kind):
    import napari_nuclei_unet._reader as reader

    link = tmp_path / "stage1_train.zip"
    if kind == "broken":
        link.symlink_to(tmp_path / "gone.zip")
    else:
        (tmp_path / "other.zip").symlink_to(link)
        link.symlink_to(tmp_path / "other.zip")
    messages = {
        "dataset": _dangling_message(lambda: DSBDataset.open(link)),
        "info/train/evaluate": _dangling_message(lambda: open_dataset(str(link), quiet=True)),
        "predict": _dangling_message(lambda: find_images(str(link), quiet=True)),
        "zip_samples": _dangling_message(lambda: zip_samples(link)),
    }
    shown: list[str] = []
    monkeypatch.setattr(reader, "_show_error", shown.append)
    monkeypatch.setattr(reader, "_hand_to_data_panel", lambda path: False)
    reader.read_dsb(str(link))
    messages["napari reader"] = shown[0]
    assert len(set(messages.values())) == 1, messages
    assert messages["dataset"] == (
        f"{link} is a symbolic link to nothing (a broken link or a loop of links): give "
        "the real file or folder it should point to."
    )


def _odd_zip(tmp_path: Path) -> tuple[Path, list[str]]:
    """A zip under a prefix folder with litter, an ambiguous sample and an image-only one."""
    root = tmp_path / "stage1_train"
    ids = write_synthetic_dataset(root, n_per_style=1, seed=3, shape=(24, 24), n_nuclei=2)
    path = tmp_path / "odd.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(root.rglob("*")):
            if f.is_file():
                zf.write(f, "download/stage1_train/" + f.relative_to(root).as_posix())
        image = (root / ids[0] / "images" / f"{ids[0]}.png").read_bytes()
        zf.writestr("__MACOSX/download/stage1_train/x/images/._x.png", b"litter")
        zf.writestr("download/stage1_train/.DS_Store", b"litter")
        zf.writestr("download/stage1_train/twoimg/images/a.png", image)
        zf.writestr("download/stage1_train/twoimg/images/b.png", image)
        zf.writestr("download/stage1_train/twoimg/masks/", b"")
        zf.writestr("download/stage1_train/nomasks/images/nomasks.png", image)
        zf.writestr("download/stage1_train/named/images/other.png", image)
        zf.writestr("download/stage1_train/named/images/named.png", image)
        zf.writestr("download/stage1_train/named/masks/", b"")
    return path, ids


def test_predict_finds_a_zips_samples_as_the_dataset_does(tmp_path, capsys):
    path, ids = _odd_zip(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = DSBDataset.open(path, use_cache=False)
    assert dataset.ids() == sorted([*ids, "named"])
    inputs = find_images(str(path))
    # predict needs no masks: the image-only sample is segmented too
    assert [i.id for i in inputs] == sorted([*ids, "named", "nomasks"])
    by_id = {i.id: i for i in inputs}
    assert by_id["named"].member == "download/stage1_train/named/images/named.png"
    for sample_id in dataset.ids():
        assert by_id[sample_id].member == dataset._files[sample_id].image
    # the ambiguous sample is skipped by both, with the same reason
    reason = dict(dataset.skipped)["twoimg"]
    assert "several images in images/" in reason
    assert f"skipped twoimg: {reason}" in capsys.readouterr().err


def test_a_zip_without_samples_gets_the_datasets_message(tmp_path):
    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("holiday/beach.png", b"x")
    with pytest.raises(DatasetError) as from_dataset:
        DSBDataset.open(path)
    with pytest.raises(DatasetError) as from_predict:
        find_images(str(path), quiet=True)
    assert str(from_predict.value) == str(from_dataset.value)
    assert "photos.zip holds no DSB2018 samples" in str(from_dataset.value)


def test_zip_samples_refuses_a_fifo_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "data.zip"
    os.mkfifo(fifo)
    with pytest.raises(DatasetError, match=r"named pipe \(FIFO\)"):
        zip_samples(fifo)


def test_every_front_end_takes_the_same_image_files(tmp_path):
    """A BigTIFF (.btf) or .bmp image is one of one's own images everywhere (h_rev15 M18).

    predict's folder reader, the fine-tuning layout's pairs and a DSB sample folder read
    the one list of ``core.imageio``; each used to have its own, and only predict's TIFF
    path knew ``.btf``.
    """
    import numpy as np
    import tifffile
    from PIL import Image

    from napari_nuclei_unet.core.dataset_layout import is_sample_folder
    from napari_nuclei_unet.core.finetune.own import labelled_pairs

    own = tmp_path / "own"
    own.mkdir()
    image = (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8)
    tifffile.imwrite(own / "big.btf", image, bigtiff=True)
    Image.fromarray(image).save(own / "old.bmp")
    tifffile.imwrite(own / "big_labels.tif", (image > 128).astype(np.uint16))
    assert sorted(i.id for i in find_images(str(own), quiet=True)) == ["big", "old"]
    assert [(i.name, lab.name) for i, lab in labelled_pairs(own)] == [("big.btf", "big_labels.tif")]
    assert find_images(str(own / "big.btf"), quiet=True)[0].read().shape == (64, 64, 3)

    sample = tmp_path / "abc"
    (sample / "images").mkdir(parents=True)
    tifffile.imwrite(sample / "images" / "abc.btf", image, bigtiff=True)
    assert is_sample_folder(sample)
