"""Decoded-dataset cache: hits, invalidation, atomic writes, no pickle."""

from __future__ import annotations

import os

import numpy as np

from conftest import write_sample
from napari_nuclei_unet.core import cache
from napari_nuclei_unet.core.dataset import DSBDataset
from napari_nuclei_unet.core.progress import drive


def load_all(ds):
    updates = []
    samples = drive(ds.iter_load(), updates.append)
    return samples, updates


def from_cache(updates):
    return any(u.message == "read from cache" for u in updates)


def test_cache_dir_env_override(isolated_cache_dir, monkeypatch):
    assert cache.cache_dir() == isolated_cache_dir
    monkeypatch.delenv(cache.CACHE_ENV_VAR)
    assert "napari-nuclei-unet" in str(cache.cache_dir())


def test_second_load_hits_cache_with_same_content(dsb_folder, isolated_cache_dir):
    ds = DSBDataset.open(dsb_folder)
    first, updates = load_all(ds)
    assert not from_cache(updates)
    files = list((isolated_cache_dir / "datasets").glob("*.npys"))
    assert len(files) == 1
    second, updates = load_all(DSBDataset.open(dsb_folder))
    assert from_cache(updates)
    for a, b in zip(first, second, strict=True):
        assert (a.id, a.modality, a.overlap_pixels, a.has_labels) == (
            b.id,
            b.modality,
            b.overlap_pixels,
            b.has_labels,
        )
        assert b.labels.dtype == np.int32 and b.image.dtype == np.uint8
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.image, b.image)


def test_touching_a_file_is_a_miss(dsb_folder):
    ds = DSBDataset.open(dsb_folder)
    load_all(ds)
    mask = dsb_folder / "b1sample" / "masks" / "b1sample_m00.png"
    st = mask.stat()
    os.utime(mask, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    _, updates = load_all(ds)
    assert not from_cache(updates)
    _, updates = load_all(ds)
    assert from_cache(updates)


def test_added_and_removed_masks_are_misses(dsb_folder):
    ds = DSBDataset.open(dsb_folder)
    load_all(ds)
    write_sample(dsb_folder, "b1sample", (20, 20), 3)  # adds a third mask file
    samples, updates = load_all(ds)
    assert not from_cache(updates)
    assert {s.id: int(s.labels.max()) for s in samples}["b1sample"] == 3
    (dsb_folder / "b1sample" / "masks" / "b1sample_m02.png").unlink()
    samples, updates = load_all(ds)
    assert not from_cache(updates)
    assert {s.id: int(s.labels.max()) for s in samples}["b1sample"] == 2


def test_zip_cache_invalidated_by_zip_stat(dsb_zip):
    ds = DSBDataset.open(dsb_zip)
    load_all(ds)
    assert from_cache(load_all(ds)[1])
    st = dsb_zip.stat()
    os.utime(dsb_zip, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000))
    assert not from_cache(load_all(DSBDataset.open(dsb_zip))[1])


def test_subset_has_its_own_cache_file(dsb_folder, isolated_cache_dir):
    ds = DSBDataset.open(dsb_folder)
    load_all(ds)
    samples = drive(ds.iter_load(["b1sample"]))
    assert [s.id for s in samples] == ["b1sample"]
    assert len(list((isolated_cache_dir / "datasets").glob("*.npys"))) == 2


def test_cache_file_has_no_pickles_and_corruption_is_a_miss(dsb_folder, isolated_cache_dir):
    ds = DSBDataset.open(dsb_folder)
    load_all(ds)
    (path,) = (isolated_cache_dir / "datasets").glob("*.npys")
    with open(path, "rb") as fh:
        for _ in cache._FIELDS:
            arr = np.load(fh, allow_pickle=False)
            assert arr.dtype != object
    path.write_bytes(path.read_bytes()[:1000])  # truncated file: a miss, rebuilt
    _, updates = load_all(ds)
    assert not from_cache(updates)
    assert from_cache(load_all(ds)[1])


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    samples = [
        cache.CachedSample(
            "x", np.zeros((2, 3, 3), np.uint8), np.ones((2, 3), np.int32), "fluorescence", 0, True
        )
    ]
    path = cache.save(tmp_path / "c.npys", "fp", samples)
    assert [p.name for p in tmp_path.iterdir()] == ["c.npys"]
    assert cache.load(path, "other fingerprint") is None
    (back,) = cache.load(path, "fp")
    assert back.id == "x" and back.labels.dtype == np.int32 and back.labels.sum() == 6


def test_fingerprint_changes():
    a = cache.fingerprint([("x", 1, 2), ("y", 3, 4)])
    assert a == cache.fingerprint([("y", 3, 4), ("x", 1, 2)])
    assert a != cache.fingerprint([("x", 1, 2)])
    assert a != cache.fingerprint([("x", 1, 3), ("y", 3, 4)])
