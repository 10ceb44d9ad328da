"""The pinned content of DSB2018 stage1_train: manifest, layouts, and what a mismatch says."""

import os
import shutil
import zipfile
from pathlib import Path

import pytest

from napari_nuclei_unet.core import dsb2018_pin
from napari_nuclei_unet.core.dsb2018_pin import (
    ContentMismatchError,
    build_manifest,
    load_manifest,
    verify_stage1_train,
    write_manifest,
)
from napari_nuclei_unet.core.imageio import DatasetError
from napari_nuclei_unet.core.synthetic import write_synthetic_dataset


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A small synthetic stage1_train folder (6 samples, 4 files each) and its manifest."""
    root = tmp_path_factory.mktemp("ds") / "stage1_train"
    write_synthetic_dataset(root, n_per_style=2, seed=0, shape=(32, 32), n_nuclei=3)
    return root, build_manifest(root)


def _zip(folder: Path, out: Path, prefix: str = "", extra: dict | None = None) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        if prefix:
            zf.writestr(prefix, "")  # a directory entry, as zip tools write them
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, prefix + f.relative_to(folder).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return out


def _copy(tree_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tree_root, tmp_path / "stage1_train"))


def test_manifest_shape(tree):
    _, manifest = tree
    assert manifest["n_samples"] == 6 and manifest["n_files"] == 24
    assert manifest["samples"]["brightfield-0"][1] == 4
    assert all(len(sha) == 32 for sha, _ in manifest["samples"].values())
    assert manifest["digest"].startswith("sha256:")


@pytest.mark.parametrize("prefix", ["", "stage1_train/"])
def test_zip_in_either_layout_matches(tree, tmp_path, prefix):
    root, manifest = tree
    junk = {"__MACOSX/._x": b"x", prefix + "brightfield-0/.DS_Store": b"x",
            prefix + "README.txt": b"a loose file belongs to no sample"}
    archive = _zip(root, tmp_path / "stage1_train.zip", prefix, junk)
    result = verify_stage1_train(archive, manifest)
    assert (result.n_samples, result.n_files) == (6, 24)
    assert result.digest == manifest["digest"]


def test_folder_and_its_parent_match(tree):
    root, manifest = tree
    assert verify_stage1_train(root, manifest).n_samples == 6
    assert verify_stage1_train(root.parent, manifest).n_samples == 6  # holds stage1_train/


def test_manifest_file_is_deterministic(tree, tmp_path):
    root, manifest = tree
    write_manifest(build_manifest(root), tmp_path / "a.json")
    write_manifest(manifest, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert load_manifest(tmp_path / "a.json") == manifest
    assert verify_stage1_train(root, tmp_path / "a.json").n_files == 24


def test_one_altered_byte_in_one_mask_is_named(tree, tmp_path):
    root, manifest = tree
    copy = _copy(root, tmp_path)
    mask = sorted((copy / "histology-1" / "masks").iterdir())[1]
    data = bytearray(mask.read_bytes())
    data[-20] ^= 1
    mask.write_bytes(bytes(data))
    for where in (copy, _zip(copy, tmp_path / "s.zip", "stage1_train/")):
        with pytest.raises(ContentMismatchError) as info:
            verify_stage1_train(where, manifest)
        assert str(info.value) == (
            f"{where} is not the published DSB2018 stage1_train (BBBC038): 1 sample has "
            "files that differ (histology-1: a file's content differs)."
        )
        assert info.value.altered == ["histology-1: a file's content differs"]
        assert not info.value.missing and not info.value.extra


def test_dropped_sample_is_named(tree, tmp_path):
    root, manifest = tree
    copy = _copy(root, tmp_path)
    shutil.rmtree(copy / "fluorescence-1")
    with pytest.raises(ContentMismatchError, match=r": 1 sample is missing \(fluorescence-1\)\.$"):
        verify_stage1_train(_zip(copy, tmp_path / "s.zip"), manifest)


def test_added_sample_and_added_mask_are_named(tree, tmp_path):
    root, manifest = tree
    copy = _copy(root, tmp_path)
    shutil.copytree(copy / "brightfield-0", copy / "brightfield-9")
    shutil.copy(copy / "histology-0" / "masks" / "histology-0_mask001.png",
                copy / "histology-0" / "masks" / "histology-0_mask004.png")
    with pytest.raises(ContentMismatchError) as info:
        verify_stage1_train(copy, manifest)
    assert info.value.extra == ["brightfield-9"]
    assert info.value.altered == ["histology-0: 4 files expected, 5 found"]
    assert "1 unexpected sample (brightfield-9)" in str(info.value)


def test_truncated_zip_and_missing_path_give_plain_errors(tree, tmp_path):
    root, manifest = tree
    archive = _zip(root, tmp_path / "s.zip")
    archive.write_bytes(archive.read_bytes()[:2000])
    with pytest.raises(DatasetError, match="download it again"):
        verify_stage1_train(archive, manifest)
    with pytest.raises(DatasetError, match="does not exist"):
        verify_stage1_train(tmp_path / "nothing.zip", manifest)


def test_damaged_manifest_is_refused(tree, tmp_path):
    _, manifest = tree
    write_manifest(manifest, tmp_path / "m.json")
    text = (tmp_path / "m.json").read_text()
    sha = manifest["samples"]["histology-0"][0]
    (tmp_path / "m.json").write_text(text.replace(sha, sha[::-1]))
    with pytest.raises(DatasetError, match="damaged"):
        load_manifest(tmp_path / "m.json")


def test_shipped_manifest_is_whole():
    manifest = load_manifest()
    assert manifest["n_samples"] == 670 and manifest["n_files"] == 30131
    assert dsb2018_pin.SHIPPED_MANIFEST.stat().st_size < 50_000


@pytest.mark.skipif(not os.environ.get("NUCLEI_UNET_DSB2018"),
                    reason="set NUCLEI_UNET_DSB2018 to the real stage1_train folder")
def test_shipped_manifest_pins_the_real_dataset():
    real = Path(os.environ["NUCLEI_UNET_DSB2018"])
    assert build_manifest(real) == load_manifest()  # exactly: every sample, every file
    result = verify_stage1_train(real)
    assert (result.n_samples, result.n_files) == (670, 30131)


def _corpus():
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import test_faults_corpus

    return test_faults_corpus


@pytest.mark.parametrize("patch, data, reason", [
    ({"flag": 0x1}, None, "encrypted"),
    ({"method": 98}, None, "compression method 98"),
    ({}, bytes(20 << 20), "like a zip bomb"),
])
def test_a_bad_member_gets_the_dataset_readers_message(tmp_path, patch, data, reason):
    """The content check reads members as the dataset reader does: same refusal, same words."""
    import warnings

    from napari_nuclei_unet.core.dataset import DSBDataset

    path = _corpus().zip_with_bad_sample(tmp_path / "bad.zip", "images/z9bad.png", data, **patch)
    with pytest.raises(DatasetError) as info:
        build_manifest(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        skipped = dict(DSBDataset.open(path, use_cache=False).skipped)
    assert reason in str(info.value)
    assert str(info.value) == skipped["z9bad"]


def test_a_fifo_in_the_folder_is_refused_without_blocking(tree, tmp_path):
    root = _copy(tree[0], tmp_path)
    os.mkfifo(root / "histology-0" / "masks" / "pipe.png")
    with pytest.raises(DatasetError, match=r"pipe\.png is a named pipe \(FIFO\)"):
        build_manifest(root)
