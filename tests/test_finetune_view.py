"""Rounds train on, and score, the corrections as inference shows them (issue 12)."""

import numpy as np
import pytest

from napari_nuclei_unet.core.dataset import Sample
from napari_nuclei_unet.core.finetune import finetune, replay_samples, transform_sample
from napari_nuclei_unet.core.progress import drive
from napari_nuclei_unet.core.segment import TRAINING_DIAMETER, SegmentOptions
from napari_nuclei_unet.core.synthetic import make_synthetic_sample

TINY = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 2, "crop_size": 32,
        "num_threads": 1}


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NUCLEI_UNET_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


def synthetic(seed, shape=(128, 128), zoom=1):
    image, masks = make_synthetic_sample("fluorescence", shape=shape, seed=seed)
    labels = np.zeros(shape, np.int32)
    for i, mask in enumerate(masks, start=1):
        labels[mask] = i
    if zoom > 1:  # nuclei `zoom` times larger
        image = np.repeat(np.repeat(image, zoom, axis=0), zoom, axis=1)
        labels = np.repeat(np.repeat(labels, zoom, axis=0), zoom, axis=1)
    return Sample(f"fluo-{seed}-x{zoom}", image, labels, "fluorescence")


@pytest.fixture()
def tiny_checkpoint(tmp_path):
    from napari_nuclei_unet.core.checkpoint import save_checkpoint
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.model import UNet

    config = TrainConfig(base_width=4, depth=2, crop_size=32)
    return save_checkpoint(tmp_path / "tiny.safetensors", UNet(3, 4, 2), config, {})


@pytest.fixture()
def trained_on(monkeypatch):
    """The images the round's crop sampler is built from (what the network trains on)."""
    from napari_nuclei_unet.core.augment import CropSampler

    seen = []
    real = CropSampler.__init__

    def spy(self, samples, *args, **kwargs):
        seen.append([(s.id, np.array(s.image), np.array(s.labels)) for s in samples])
        return real(self, samples, *args, **kwargs)

    monkeypatch.setattr(CropSampler, "__init__", spy)
    return seen


def test_transform_sample_resizes_labels_by_nearest_and_smooths_at_native_pixels():
    sample = synthetic(1, zoom=3)
    small = transform_sample(sample, 1 / 3, 0.0)
    assert small.image.shape == (128, 128, 3) and small.image.dtype == np.uint8
    assert small.labels.shape == (128, 128) and small.labels.dtype == np.int32
    assert set(np.unique(small.labels)) <= set(np.unique(sample.labels))  # no new labels
    assert small.id == sample.id and transform_sample(sample, 1.0, 0.0) is sample
    dim = Sample("dim", (10 + sample.image // 40).astype(np.uint8), sample.labels, "f")
    assert len(np.unique(dim.image)) <= 8
    smooth = transform_sample(dim, 1.0, 1.7)
    # smoothed, then stretched to 0-255 so that its sub-grey-level values survive
    assert smooth.image.shape == dim.image.shape and len(np.unique(smooth.image)) > 50
    assert np.array_equal(smooth.labels, dim.labels)


def test_a_round_on_big_nuclei_trains_on_a_copy_shrunk_to_the_training_size(
        tmp_path, trained_on):
    """The shipped model shrinks an image of 3x larger nuclei ~3x: the round does too."""
    correction = synthetic(1, zoom=3)  # nuclei ~60 px; the model was trained at ~18 px
    result = drive(finetune("default", [correction], out_dir=tmp_path, replay=False,
                            check=False, config_overrides=TINY))
    (view,) = result.views
    assert view["id"] == correction.id and 0.2 < view["scale"] < 0.45
    side = round(384 * view["scale"])
    # the shrunk copy first, then (match_inference="both", the default) the native one
    (shrunk_id, image, labels), (native_id, native, _) = trained_on[-1]
    assert shrunk_id == native_id == correction.id
    assert image.shape == (side, side, 3) and labels.shape == (side, side)
    assert labels.max() > 0
    assert native.shape == (384, 384, 3)
    assert result.version.info["inference_views"] == [view]
    assert result.summary()["inference_views"] == [view]


def test_a_given_diameter_sets_the_scale_and_native_rounds_stay_possible(
        tmp_path, tiny_checkpoint, trained_on):
    correction = synthetic(2)
    replay = replay_samples("train")[:2]
    result = drive(finetune(tiny_checkpoint, [correction], out_dir=tmp_path / "a",
                            replay=replay, check=False, ratio=0.5,
                            config_overrides={**TINY, "match_inference": True},
                            segment_options=SegmentOptions(diameter=2 * TRAINING_DIAMETER)))
    assert [v["scale"] for v in result.views] == [0.5]
    shown = trained_on[-1]
    assert shown[0][1].shape == (64, 64, 3)  # the correction, halved
    assert [s[1].shape for s in shown[1:]] == [r.image.shape for r in replay]  # replay as is
    assert result.version.info["scoring"]["diameter"] == 2 * TRAINING_DIAMETER
    native = drive(finetune(tiny_checkpoint, [correction], out_dir=tmp_path / "b",
                            replay=False, check=False,
                            config_overrides={**TINY, "match_inference": False},
                            segment_options=SegmentOptions(diameter=2 * TRAINING_DIAMETER)))
    assert native.views == () and trained_on[-1][0][1].shape == (128, 128, 3)


def test_both_views_share_the_corrections_chance_of_being_drawn(
        monkeypatch, tmp_path, tiny_checkpoint, trained_on):
    from napari_nuclei_unet.core.finetune import trainer

    chances = []
    real = trainer.train_round

    def spy(config, samples, base_model, **kwargs):
        chances.append(kwargs.get("probabilities"))
        return real(config, samples, base_model, **kwargs)

    monkeypatch.setattr("napari_nuclei_unet.core.finetune.rounds.train_round", spy)
    big, small = synthetic(2), synthetic(6, shape=(64, 64))
    replay = replay_samples("train")[:4]
    options = SegmentOptions(diameter=2 * TRAINING_DIAMETER)
    drive(finetune(tiny_checkpoint, [big, small], out_dir=tmp_path, replay=replay,
                   check=False, ratio=0.5, config_overrides={**TINY, "match_inference": "both"},
                   segment_options=options))
    shapes = [s[1].shape[:2] for s in trained_on[-1]]
    # the halved copies, then the native ones, then the replay crops
    assert shapes[:4] == [(64, 64), (32, 32), (128, 128), (64, 64)]
    assert len(shapes) == 4 + len(replay)
    assert chances[-1][:4].sum() == pytest.approx(0.5)  # the corrections' share, spread
    assert np.allclose(chances[-1][:4], 0.125)
    with pytest.raises(ValueError, match="match_inference"):
        drive(finetune(tiny_checkpoint, [big], out_dir=tmp_path / "x", replay=False,
                       check=False, config_overrides={**TINY, "match_inference": "yes"}))


def test_a_dim_correction_is_trained_on_smoothed_as_inference_smooths_it(
        monkeypatch, tmp_path, tiny_checkpoint, trained_on):
    from napari_nuclei_unet.core import plane_passes

    monkeypatch.setattr(plane_passes, "DENOISE_SIGMAS", (1.7,))  # the sigma inference picks
    monkeypatch.setattr(plane_passes, "DENOISE_MORE_SIGMAS", ())
    bright = synthetic(3)
    dim = Sample("dim", (10 + bright.image // 40).astype(np.uint8), bright.labels, "f")
    result = drive(finetune(tiny_checkpoint, [dim], out_dir=tmp_path, replay=False,
                            check=False, config_overrides=TINY))
    assert [(v["scale"], v["smoothing"]) for v in result.views] == [(1.0, 1.7)]
    (_, image, _), (_, raw, _) = trained_on[-1]  # smoothed, then as it is ("both")
    assert np.array_equal(image, transform_sample(dim, 1.0, 1.7).image)
    assert len(np.unique(image)) > 50  # not the raw image's few grey levels
    assert np.array_equal(raw, dim.image)


def test_the_self_check_scores_the_users_images_as_predictions_are_made(
        monkeypatch, tmp_path, tiny_checkpoint):
    from napari_nuclei_unet.core import evaluation

    calls = []
    real = evaluation.evaluate

    def spy(model, samples, **kwargs):
        samples = list(samples)
        calls.append(([s.id for s in samples], kwargs.get("segment_options")))
        return real(model, samples, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate", spy)
    options = SegmentOptions(diameter=30.0, threshold=0.4)
    check = replay_samples("check")[:2]
    # any change passes the check: the first model checked is kept (one scoring after)
    lenient = {"corrected": 1.0, "held_out": 1.0, "regression": 1.0}
    result = drive(finetune(tiny_checkpoint, [synthetic(4)], out_dir=tmp_path,
                            held_out=[synthetic(5)], replay=False, check=check,
                            config_overrides=TINY, segment_options=options,
                            tolerance=lenient))
    users = ["fluo-4-x1", "fluo-5-x1"]
    assert calls == [(users, options), ([c.id for c in check], None)] * 2
    assert len(result.corrected) == 1 and len(result.regression) == 2
    monkeypatch.setattr(evaluation, "evaluate", real)
    default = drive(finetune(tiny_checkpoint, [synthetic(4)], out_dir=tmp_path / "d",
                             replay=False, check=False, config_overrides=TINY))
    assert default.version.info["scoring"] == {"diameter": 0.0, "threshold": 0.5,
                                               "tta": False}
