"""Checks on the real DSB2018 stage1_train; skipped unless NUCLEI_UNET_DSB2018 is set.

NUCLEI_UNET_DSB2018=/path/to/stage1_train pytest -m realdata tests/test_realdata.py
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from napari_nuclei_unet.core.dataset import MODALITIES, DSBDataset
from napari_nuclei_unet.core.progress import drive

ROOT = os.environ.get("NUCLEI_UNET_DSB2018")
pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not ROOT, reason="set NUCLEI_UNET_DSB2018 to a stage1_train folder"),
]

N_IMAGES = 670
N_NUCLEI = 29_461


@pytest.fixture(scope="module")
def dataset():
    return DSBDataset.open(ROOT)


def test_index_full_dataset(dataset):
    assert len(dataset) == N_IMAGES and not dataset.skipped
    assert sum(i.n_nuclei for i in dataset.infos) == N_NUCLEI
    assert {i.modality for i in dataset.infos} <= set(MODALITIES)
    sizes = Counter((i.height, i.width) for i in dataset.infos)
    assert sizes[(256, 256)] == 334 and sizes[(1040, 1388)] == 1


def test_modality_guess_agrees_with_manifest(dataset):
    manifest = Path(ROOT).parent / "manifest.csv"
    if not manifest.exists():
        pytest.skip(f"no {manifest}")
    names = {
        "fluorescence_darkbg": "fluorescence",
        "gray_brightbg": "brightfield",
        "color_histology_like": "histology",
    }
    with open(manifest, newline="") as fh:
        expected = {r["ImageId"]: names[r["modality_guess"]] for r in csv.DictReader(fh)}
    agree = sum(expected[i.id] == i.modality for i in dataset.infos)
    assert agree / len(dataset) >= 0.98
    assert Counter(i.modality for i in dataset.infos) == Counter(expected.values())


def test_load_subset(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEI_UNET_CACHE_DIR", str(tmp_path))
    ids = dataset.ids()[::34][:20]
    samples = drive(dataset.iter_load(ids))
    assert [s.id for s in samples] == ids
    for s in samples:
        info = dataset.info(s.id)
        assert s.image.shape == (info.height, info.width, 3) and s.image.dtype == np.uint8
        assert s.labels.shape == (info.height, info.width) and s.labels.dtype == np.int32
        assert len(np.unique(s.labels[s.labels > 0])) == info.n_nuclei == s.labels.max()
        assert s.overlap_pixels == 0 and s.has_labels


def test_full_scan(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEI_UNET_CACHE_DIR", str(tmp_path))
    samples = drive(dataset.iter_load())
    assert len(samples) == N_IMAGES
    assert sum(int(s.labels.max()) for s in samples) == N_NUCLEI
    again = drive(dataset.iter_load())  # from the decoded cache
    assert sum(int(s.labels.max()) for s in again) == N_NUCLEI


@pytest.mark.skipif(
    not Path(__file__).parents[1].joinpath(
        "src/napari_nuclei_unet/models/default.safetensors").exists(),
    reason="no shipped default model",
)
def test_shipped_model_segments_its_held_out_images(dataset):
    """The shipped model, on a few of its own validation images, per modality."""
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.core.evaluation import evaluate

    loaded = load_checkpoint("default")
    val_ids = loaded.metadata["training_data"]["val_ids"]
    by_modality: dict[str, list[str]] = {}
    for sample_id in val_ids:
        by_modality.setdefault(dataset.info(sample_id).modality, []).append(sample_id)
    ids = [i for ids in by_modality.values() for i in ids[:4]]
    samples = drive(dataset.iter_load(ids))
    report = drive(evaluate(loaded.model, samples))
    summary = report.summary()
    assert summary["n"] == len(ids)
    # README, "The shipped model": on these images fluorescence 0.91, histology 0.81,
    # brightfield 0.75 (its two validation images; 16 of the 670 are brightfield)
    per_modality = summary["per_modality"]
    assert set(per_modality) == {"fluorescence", "histology", "brightfield"}
    assert per_modality["fluorescence"]["mean_iou"] > 0.85, per_modality
    assert per_modality["histology"]["mean_iou"] > 0.75, per_modality
    assert per_modality["brightfield"]["mean_iou"] > 0.65, per_modality
