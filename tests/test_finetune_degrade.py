"""Noise-matched replay: replay crops made as dim and noisy as noisy corrections."""

import numpy as np
import pytest

from napari_nuclei_unet.core.dataset import Sample
from napari_nuclei_unet.core.finetune import finetune, replay_samples
from napari_nuclei_unet.core.finetune import rounds as ft_rounds
from napari_nuclei_unet.core.finetune.degrade import NOISE_FACTOR, matched_replay, measure
from napari_nuclei_unet.core.finetune.trainer import group_probabilities
from napari_nuclei_unet.core.progress import drive
from napari_nuclei_unet.core.synthetic import make_synthetic_sample

# a few steps of tiny crops (the cache folder is private: conftest's isolated_cache_dir)
TINY = dict(epochs=1, steps_per_epoch=2, batch_size=2, crop_size=32, num_threads=1)


def fluorescence(seed, shape=(96, 96)):
    image, masks = make_synthetic_sample("fluorescence", shape=shape, seed=seed)
    labels = np.zeros(shape, np.int32)
    for i, mask in enumerate(masks, start=1):
        labels[mask] = i
    return Sample(f"fluo-{seed}", image, labels, "fluorescence")


def dim_noisy(sample, seed, brightness=0.08, noise=2.0):
    """As the benchmark's fluo-dim domain: 8 % bright, offset 10, camera noise."""
    rng = np.random.default_rng(seed)
    image = 10.0 + brightness * sample.image.astype(np.float32)
    image = image + rng.normal(0.0, noise, image.shape[:2])[..., None]
    return Sample(f"dim-{sample.id}", np.clip(np.rint(image), 0, 255).astype(np.uint8),
                  sample.labels, sample.modality)


def test_measure_finds_the_noise_and_contrast_of_a_dim_noisy_image():
    clean = fluorescence(1)
    noisy = dim_noisy(clean, 0)
    a, b = measure(clean.image, clean.labels), measure(noisy.image, noisy.labels)
    assert b.noise == pytest.approx(2.0, rel=0.2)  # the camera noise added
    assert b.background == pytest.approx(10 + 0.08 * a.background, abs=1.0)
    assert b.contrast == pytest.approx(0.08 * a.contrast, rel=0.2)
    assert b.noise_ratio > 10 * a.noise_ratio
    assert measure(clean.image, np.zeros_like(clean.labels)) is None  # no nuclei


def test_only_noisy_corrections_get_replay_crops_made_like_them():
    replay = replay_samples("train")
    clean = [fluorescence(s) for s in (1, 2, 3)]
    copies, measured = matched_replay(clean, replay)
    assert copies == [] and measured is not None  # DSB-like images: nothing added

    noisy = [dim_noisy(s, i) for i, s in enumerate(clean)]
    copies, target = matched_replay(noisy, replay, seed=0)
    found = [(s, measure(s.image, s.labels)) for s in replay]
    dark = [s for s, m in found if m is not None and m.contrast > 0]
    assert len(copies) == len(dark) > 50  # every dark-background crop, none of the others
    assert target.noise_ratio > NOISE_FACTOR * 0.05
    for copy, source in zip(copies[:10], dark[:10], strict=True):
        assert copy.id == f"{source.id}~noisy" and copy.image.dtype == np.uint8
        np.testing.assert_array_equal(copy.labels, source.labels)  # true labels kept
        got = measure(copy.image, copy.labels)
        assert got.contrast == pytest.approx(target.contrast, abs=1.5)
        assert got.noise == pytest.approx(target.noise, rel=0.25)
    again, _ = matched_replay(noisy, replay, seed=0)
    np.testing.assert_array_equal(again[0].image, copies[0].image)  # seeded


def test_group_probabilities_share_each_group_equally():
    p = group_probabilities((2, 4, 0, 4), (0.3, 0.45, 0.1, 0.15))
    assert p.shape == (10,) and p.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(p[:2], 0.3 / 2 / 0.9)  # the empty group's share is spread
    np.testing.assert_allclose(p[2:6], 0.45 / 4 / 0.9)


def test_a_round_on_noisy_corrections_trains_on_noise_matched_replay(
        monkeypatch, tmp_path):
    from napari_nuclei_unet.core.augment import CropSampler
    from napari_nuclei_unet.core.checkpoint import save_checkpoint
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.model import UNet

    checkpoint = save_checkpoint(tmp_path / "m.safetensors", UNet(3, 4, 2),
                                 TrainConfig(base_width=4, depth=2, crop_size=32), {})
    replay = replay_samples("train")
    seen: list[list[str]] = []
    real = CropSampler.__init__

    def spy(self, samples, *args, **kwargs):
        seen.append([s.id for s in samples])
        real(self, samples, *args, **kwargs)

    monkeypatch.setattr(CropSampler, "__init__", spy)
    noisy = [dim_noisy(fluorescence(s), s) for s in (1, 2)]
    result = drive(finetune(checkpoint, noisy, out_dir=tmp_path / "a", replay=replay,
                            check=False, config_overrides=TINY))
    info = result.version.info["noise_matched"]
    assert info["n"] > 50 and info["share"] == ft_rounds.ROUND_OPTIONS["noise_matched"] > 0
    assert sum(i.endswith("~noisy") for i in seen[-1]) == info["n"]

    clean = [fluorescence(s) for s in (1, 2)]
    result = drive(finetune(checkpoint, clean, out_dir=tmp_path / "b", replay=replay,
                            check=False, config_overrides=TINY))
    assert result.version.info["noise_matched"] is None
    assert not any(i.endswith("~noisy") for i in seen[-1])
    off = drive(finetune(checkpoint, noisy, out_dir=tmp_path / "c", replay=replay, check=False,
                         config_overrides={**TINY, "noise_matched": 0.0}))
    assert off.version.info["noise_matched"] is None


def test_noise_matched_copies_take_their_share_of_the_corrections_draws():
    corrections = [fluorescence(1)]
    mixed = [*corrections, *replay_samples("train")]
    options = {"n_corrections": 1, "probabilities": np.full(len(mixed), 1.0 / len(mixed))}
    noisy = [dim_noisy(corrections[0], 0)]
    out, info = ft_rounds._with_noise_matched(
        [*noisy, *mixed[1:]], noisy, replay_samples("train"), {"noise_matched": 0.5},
        options, 0.75, 0)
    n = info["n"]
    p = options["probabilities"]
    assert options["n_corrections"] == 1 + n and len(out) == len(p)
    assert p[0] == pytest.approx(0.375) and p[1:1 + n].sum() == pytest.approx(0.375)
    assert p[1 + n:].sum() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="noise_matched"):
        ft_rounds._with_noise_matched(mixed, corrections, [], {"noise_matched": 1.0},
                                      {}, 0.75, 0)
