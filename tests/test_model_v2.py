"""Model v2 (issue 9): scale estimation, TTA, normalisation, heads, checkpoints, augmentation."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from napari_nuclei_unet.core import nucleus_size, plane_passes, planes, segment
from napari_nuclei_unet.core.augment import AugmentSettings, CropSampler, contour_map
from napari_nuclei_unet.core.checkpoint import load_checkpoint, save_checkpoint
from napari_nuclei_unet.core.config import TrainConfig
from napari_nuclei_unet.core.instances import (
    labels_from_heads,
    labels_from_probability,
    typical_diameter,
)
from napari_nuclei_unet.core.losses import DiceBCELoss, HeadsLoss
from napari_nuclei_unet.core.metrics import image_scores
from napari_nuclei_unet.core.model import UNet
from napari_nuclei_unet.core.normalize import normalize_image
from napari_nuclei_unet.core.segment import SegmentOptions, estimate_diameter, segment_image
from napari_nuclei_unet.core.synthetic import make_synthetic_sample
from napari_nuclei_unet.core.training import _init_weights


class Threshold(nn.Module):
    """A stand-in network: foreground where the normalised image is bright (pointwise)."""

    out_channels = 1
    training_diameter = None

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.mean(1, keepdim=True) - 0.2) * 30.0 + self.dummy


class Texture(Threshold):
    """Like :class:`Threshold`, but unsure where the image is rough (noise, a staircase)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x.mean(1, keepdim=True)
        rough = (grey - nn.functional.avg_pool2d(grey, 3, 1, 1, count_include_pad=False)).abs()
        return (grey - 0.2) * 30.0 * torch.exp(-rough / 0.05) + self.dummy


def _sample(style="fluorescence", seed=0, shape=(256, 256)):
    image, masks = make_synthetic_sample(style, seed=seed, shape=shape)
    labels = np.zeros(image.shape[:2], np.int32)
    for k, mask in enumerate(masks, start=1):
        labels[mask > 0] = k
    return SimpleNamespace(id=f"s{seed}", image=image, labels=labels, modality=style)


def _zoom(array, factor, order):
    from skimage.transform import resize

    shape = (round(array.shape[0] * factor), round(array.shape[1] * factor))
    out = resize(array, shape + array.shape[2:], order=order, preserve_range=True,
                 anti_aliasing=False)
    return out.astype(array.dtype)


def _two_disks(radius=12, gap=20):
    yy, xx = np.mgrid[:64, :80]
    a = (yy - 32) ** 2 + (xx - 40 + gap // 2) ** 2 <= radius**2
    b = (yy - 32) ** 2 + (xx - 40 - gap // 2) ** 2 <= radius**2
    labels = np.zeros((64, 80), np.int32)
    labels[a] = 1
    labels[b & ~a] = 2
    return labels


# -- scale -------------------------------------------------------------------------------


def test_estimate_diameter_recovers_the_scale():
    sample = _sample(seed=3)
    native, scale, _ = estimate_diameter(Threshold(), sample.image)
    assert scale == 1.0  # synthetic nuclei are DSB-sized: no resizing
    assert native == pytest.approx(typical_diameter(sample.labels), rel=0.25)
    for factor in (2.5, 4.0):
        image = _zoom(sample.image, factor, 1)
        diameter, scale, maps = estimate_diameter(Threshold(), image)
        assert diameter == pytest.approx(native * factor, rel=0.15)
        # the nuclei are brought to the size the model handles natively
        low, high = (r * segment.TRAINING_DIAMETER for r in segment.NATIVE_RANGE)
        assert low <= diameter * scale <= high
        assert maps.shape[1:] == (round(image.shape[0] * scale), round(image.shape[1] * scale))


def test_auto_diameter_rescales_big_nuclei_and_maps_labels_back():
    sample = _sample(seed=4)
    factor = 4.0
    image, labels = _zoom(sample.image, factor, 1), _zoom(sample.labels, factor, 0)
    result = segment_image(Threshold(), image)
    assert result.scale < 0.6  # the plane was shrunk to the training size
    assert result.labels.shape == labels.shape == result.probability.shape
    assert result.labels.dtype == np.int32
    # labels mapped back to the input's pixels still match the truth
    assert image_scores(labels, result.labels).iou > 0.85


def test_given_diameter_rescales_and_round_trips_labels():
    sample = _sample(seed=5)
    diameter = 2.0 * segment.TRAINING_DIAMETER
    result = segment_image(Threshold(), sample.image, SegmentOptions(diameter=diameter))
    assert result.scale == pytest.approx(0.5) and result.diameter == diameter
    assert result.labels.shape == sample.labels.shape
    assert image_scores(sample.labels, result.labels).iou > 0.8


def test_model_records_its_training_diameter():
    net = UNet(base_width=4, depth=2, training_diameter=30.0)
    assert segment.model_diameter(net) == 30.0
    assert segment.model_diameter(UNet(base_width=4, depth=2)) == segment.TRAINING_DIAMETER


# -- TTA ---------------------------------------------------------------------------------


def test_tta_of_a_flip_equivariant_model_equals_plain_prediction():
    image = _sample(seed=6).image
    plain = segment_image(Threshold(), image, SegmentOptions(diameter=18.0))
    tta = segment_image(Threshold(), image, SegmentOptions(diameter=18.0, tta=True))
    np.testing.assert_allclose(tta.probability, plain.probability, atol=1e-5)
    np.testing.assert_array_equal(tta.labels, plain.labels)


def test_tta_averages_the_flipped_predictions():
    torch.manual_seed(0)
    net = UNet(base_width=4, depth=2, out_channels=2).eval()
    image = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    opts = dict(diameter=18.0, amp=False)
    tta = segment_image(net, image, SegmentOptions(tta=True, **opts))
    flips = []
    for fy in (False, True):
        for fx in (False, True):
            view = image[::-1] if fy else image
            view = view[:, ::-1] if fx else view
            prob = segment_image(net, np.ascontiguousarray(view), SegmentOptions(**opts))
            p = prob.probability[::-1] if fy else prob.probability
            flips.append(p[:, ::-1] if fx else p)
    np.testing.assert_allclose(tta.probability, np.mean(flips, axis=0), atol=1e-5)
    assert tta.contour is not None and tta.contour.shape == image.shape[:2]


# -- normalisation -----------------------------------------------------------------------


def test_dim_16bit_and_float_images_normalise_like_the_bright_one():
    image = _sample(seed=7).image
    bright = normalize_image(image)
    dim = image.astype(np.float32) * (100.0 / image.max())  # max ~100 of 255
    np.testing.assert_allclose(normalize_image(dim), bright, atol=1e-5)
    np.testing.assert_allclose(normalize_image(image.astype(np.uint16) * 257), bright, atol=1e-5)
    np.testing.assert_allclose(normalize_image(image / 255.0), bright, atol=1e-5)
    # dimmed to 10 % then quantised to 8 bit: only the rounding differs
    quantised = np.round(image * 0.1).astype(np.uint8)
    assert np.abs(normalize_image(quantised) - bright).mean() < 0.03


def test_nan_pixels_do_not_poison_the_normalisation():
    image = _sample(seed=7).image.astype(np.float32)
    reference = normalize_image(image)
    image[0, 0] = np.nan
    out = normalize_image(image)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 1:, 1:], reference[:, 1:, 1:], atol=1e-5)


def _few_nuclei_in_a_large_field(size=1024, value=100, seed=0):
    """Camera-like noise (mean 10, sd 2) holding two nuclei of 20 px: 0.06 % of the pixels."""
    rng = np.random.default_rng(seed)
    field = rng.normal(10.0, 2.0, (size, size))
    yy, xx = np.mgrid[:size, :size]
    nuclei = np.zeros((size, size), bool)
    for cy, cx in ((300, 300), (700, 650)):
        nuclei |= (yy - cy) ** 2 + (xx - cx) ** 2 <= 10**2
    field[nuclei] = value + rng.normal(0.0, 2.0, nuclei.sum())
    return np.clip(np.round(field), 0, 255).astype(np.uint8), nuclei


def test_a_few_nuclei_in_a_large_field_map_to_one_and_the_noise_stays_dark():
    field, nuclei = _few_nuclei_in_a_large_field()
    out = normalize_image(field).mean(axis=0)
    # with the 99.8th percentile alone the noise spanned 0-1 and the nuclei sat near 8
    assert 0.8 < np.median(out[nuclei]) < 1.3
    assert np.percentile(out[~nuclei], 99.9) < 0.25
    # 16-bit and float copies of the same field normalise alike
    np.testing.assert_allclose(normalize_image(field.astype(np.uint16) * 257).mean(axis=0),
                               out, atol=1e-4)
    np.testing.assert_allclose(normalize_image(field / 255.0).mean(axis=0), out, atol=0.05)


def test_the_shipped_model_finds_the_few_nuclei_of_a_large_field_and_nothing_else():
    from napari_nuclei_unet.core.checkpoint import load_checkpoint

    field, nuclei = _few_nuclei_in_a_large_field()
    # at the nuclei's own size: one pass (before, the automatic diameter measured the
    # noise's specks and enlarged the field six times, past this machine's memory)
    result = segment_image(load_checkpoint("default").model, field,
                           SegmentOptions(diameter=20.0))
    assert result.labels.max() == 2  # the noise was segmented into thousands before
    assert (result.labels > 0)[nuclei].mean() > 0.9


def test_the_sparse_rule_leaves_dense_and_empty_images_to_the_percentiles():
    from napari_nuclei_unet.core.normalize import (
        HIGH_PERCENTILE,
        LOW_PERCENTILE,
        normalization_params,
    )

    empty, _ = _few_nuclei_in_a_large_field(size=256, value=10)  # noise only
    for image in (_sample(seed=7).image, _sample("histology", 1).image, empty):
        grey = image.astype(np.float64)
        grey = np.repeat(grey[..., None], 3, axis=2) if grey.ndim == 2 else grey[..., :3]
        low, high = np.percentile(grey, [LOW_PERCENTILE, HIGH_PERCENTILE])
        assert abs(normalization_params(image).scale) == pytest.approx(1.0 / (high - low))


# -- augmentation ------------------------------------------------------------------------


def test_strong_augmentation_keeps_shapes_and_ranges():
    samples = [_sample("histology", 1), _sample("fluorescence", 2), _sample("brightfield", 3)]
    sampler = CropSampler(samples, 64, AugmentSettings(scale=1.0, strong=True), contours=True)
    assert sampler.colour.tolist() == [True, False, False]
    rng = np.random.default_rng(0)
    for _ in range(5):
        x, y = sampler.batch(rng, [0, 0, 0, 1, 2, 0, 1, 2])
        assert x.shape == (8, 3, 64, 64) and y.shape == (8, 2, 64, 64)
        assert torch.isfinite(x).all() and x.abs().max() < 10
        assert set(torch.unique(y[:, 0]).tolist()) <= {0.0, 1.0}
        assert 0.0 <= float(y[:, 1].min()) and float(y[:, 1].max()) <= 1.0
        # the contour lies on the nuclei
        assert float((y[:, 1] * (1 - y[:, 0])).sum()) <= 0.25 * float(y[:, 1].sum()) + 1


def test_stain_jitter_changes_colour_images_only():
    histo, fluo = _sample("histology", 1), _sample("fluorescence", 2)
    sampler = CropSampler([histo, fluo], 64, AugmentSettings(strong=True))
    x = torch.stack([torch.from_numpy(histo.image[:64, :64]), torch.from_numpy(
        fluo.image[:64, :64])]).permute(0, 3, 1, 2).float()
    changed = 0
    for seed in range(6):
        out, norm = sampler._raw_jitter(np.random.default_rng(seed), x.clone(),
                                        sampler.norm.clone(), sampler.colour)
        assert out.shape == x.shape and 0 <= float(out.min()) and float(out.max()) <= 255
        changed += not torch.allclose(out[0], x[0])
        grey_same = torch.allclose(out[1], x[1])
        dimmed = not torch.equal(norm[1], sampler.norm[1])
        assert grey_same or dimmed  # grey images are only ever dimmed
    assert changed


def test_contour_map_marks_inner_borders():
    labels = _two_disks(gap=20)
    contour = contour_map(labels)
    assert not contour[labels == 0].any()
    assert labels[32, 42] == 1 and labels[32, 43] == 2
    assert contour[32, 42] and contour[32, 43]  # both sides of the contact line
    assert not contour[32, 30] and not contour[32, 50]  # the disk centres


# -- heads, watershed, losses ------------------------------------------------------------


def test_watershed_on_the_heads_splits_two_touching_disks():
    labels = _two_disks(gap=20)
    prob = (labels > 0).astype(np.float32)
    contour = contour_map(labels).astype(np.float32)
    heads = labels_from_heads(prob, contour)
    assert heads.max() == 2
    assert image_scores(labels, heads).dsb_score > 0.9
    # without the contour, both disks are one region
    assert labels_from_probability(prob, method="components").max() == 1
    # the former core-seeded rule is still there on request
    assert labels_from_heads(prob, contour, seed_threshold=0.5).max() == 2


def test_the_contour_head_splits_what_the_distance_alone_cannot():
    labels = _two_disks(radius=12, gap=8)  # a broad neck: one top of the distance map
    prob = (labels > 0).astype(np.float32)
    assert labels_from_probability(prob).max() == 1
    assert labels_from_heads(prob, np.zeros_like(prob)).max() == 1
    contour = contour_map(labels).astype(np.float32)
    heads = labels_from_heads(prob, contour)
    assert heads.max() == 2
    assert heads[32, 40 - 4 - 6] != heads[32, 40 + 4 + 6]
    assert labels_from_heads(prob, contour, contour_weight=0.0).max() == 1


def test_heads_loss_with_one_channel_is_dice_bce():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 1, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()
    assert torch.allclose(HeadsLoss()(logits, target), DiceBCELoss()(logits, target))
    two = HeadsLoss()(torch.randn(2, 2, 8, 8), (torch.rand(2, 2, 8, 8) > 0.5).float())
    assert two > 0


# -- checkpoints -------------------------------------------------------------------------


def test_shipped_v1_checkpoint_loads_and_segments():
    loaded = load_checkpoint("default")
    assert loaded.model.out_channels == 1 and loaded.model.training_diameter is None
    assert "out_channels" not in loaded.model.architecture()
    result = segment_image(loaded.model, _sample(seed=8).image)
    assert result.contour is None and result.labels.max() > 0


def test_v1_checkpoint_saved_before_v2_still_loads(tmp_path):
    torch.manual_seed(0)
    net = UNet(base_width=4, depth=2)
    path = save_checkpoint(tmp_path / "old", net, TrainConfig(base_width=4, depth=2))
    loaded = load_checkpoint(path)
    assert loaded.model.out_channels == 1
    assert loaded.metadata["architecture"] == {"name": "unet-v1", "in_channels": 3,
                                               "base_width": 4, "depth": 2}


def test_two_head_checkpoint_saves_loads_and_predicts(tmp_path):
    torch.manual_seed(0)
    net = UNet(base_width=4, depth=2, out_channels=2, training_diameter=24.0)
    config = TrainConfig(base_width=4, depth=2, contour_head=True)
    path = save_checkpoint(tmp_path / "v2", net, config)
    loaded = load_checkpoint(path)
    assert loaded.model.out_channels == 2 and loaded.model.heads == ("foreground", "contour")
    assert loaded.model.training_diameter == 24.0 and loaded.config.contour_head
    for key, value in net.state_dict().items():
        assert torch.equal(value, loaded.model.state_dict()[key])
    result = segment_image(loaded.model, _sample(seed=9).image[:64, :64],
                           SegmentOptions(diameter=24.0))
    assert result.contour.shape == result.labels.shape == (64, 64)


def test_v1_weights_initialise_the_foreground_channel_of_a_two_head_model():
    torch.manual_seed(0)
    old = UNet(base_width=4, depth=2)
    new = UNet(base_width=4, depth=2, out_channels=2)
    _init_weights(new, old, "old")
    assert torch.equal(new.head.weight[:1], old.head.weight)
    assert torch.equal(new.head.bias[:1], old.head.bias)
    assert torch.equal(new.down[0][0].weight, old.down[0][0].weight)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(new.eval()(x)[:, :1], old.eval()(x), atol=1e-6)
    # a source's recorded training diameter is kept by the fine-tuned model
    recorded = UNet(base_width=4, depth=2, out_channels=2, training_diameter=31.0)
    _init_weights(new, recorded, "v2")
    assert new.training_diameter == 31.0


def test_a_normal_image_is_not_denoised():
    image = _sample(seed=7).image
    assert planes.grey_levels(image) >= segment.DIM_LEVELS
    assert segment.denoise_dim(Threshold(), image) == (image, None, 0.0)
    assert planes.grey_levels(image.astype(np.float32)) is None  # floats: never


def test_a_dim_image_gets_the_smoothing_the_network_is_surest_of():
    sample = _sample(seed=7)
    rng = np.random.default_rng(0)
    # nuclei 3 grey levels up, and shot noise a level or two up on 15 % of pixels
    dim = np.round(sample.image * (3.0 / sample.image.max())).astype(np.uint8)
    dim = dim + (rng.random(dim.shape[:2]) < 0.15)[..., None].astype(np.uint8) * 2
    assert planes.grey_levels(dim) < segment.DIM_LEVELS
    model = Texture()
    image, maps, sigma = segment.denoise_dim(model, dim)
    scores = {}
    for candidate in (*segment.DENOISE_SIGMAS, *segment.DENOISE_MORE_SIGMAS):
        smoothed = planes.smooth(dim, candidate) if candidate else dim
        prob = segment.predict_maps(model, smoothed)[0]
        scores[candidate] = planes.sharpness(prob)
    assert sigma == max(scores, key=scores.get) and sigma > 0  # the noise wants smoothing
    assert image.dtype == np.float32 and maps.shape == (1, *dim.shape[:2])
    result = segment_image(model, dim)
    assert result.smoothing == sigma
    # with a diameter given, the choice is made at the network's scale
    given = segment_image(model, dim, SegmentOptions(diameter=2 * segment.TRAINING_DIAMETER))
    assert given.scale == 0.5
    assert given.smoothing in (*segment.DENOISE_SIGMAS, *segment.DENOISE_MORE_SIGMAS)


@pytest.mark.parametrize("sure, tried, chosen", [
    ({0.0: 0.5, 0.8: 0.6, 1.7: 0.7, 2.5: 0.8, 3.5: 0.75}, [0.8, 1.7, 2.5, 3.5], 2.5),
    ({0.0: 0.5, 0.8: 0.6, 1.7: 0.7, 2.5: 0.65, 3.5: 0.9}, [0.8, 1.7, 2.5], 1.7),
    ({0.0: 0.5, 0.8: 0.7, 1.7: 0.6, 2.5: 0.9, 3.5: 0.9}, [0.8, 1.7], 0.8),
])
def test_a_noisy_dim_image_is_smoothed_more_only_while_it_helps(monkeypatch, sure, tried,
                                                                 chosen):
    dim = (np.arange(64 * 64).reshape(64, 64) % 5).astype(np.uint8)  # 5 grey levels
    smoothed = []

    def smooth(image, sigma):
        smoothed.append(sigma)
        return np.full(image.shape, sigma, np.float64)

    monkeypatch.setattr(plane_passes, "smooth", smooth)
    def at_scale(model, image, *args):  # steps, as the real one: no tiles, the image back
        return image[None].astype(np.float64)
        yield

    monkeypatch.setattr(plane_passes, "at_scale", at_scale)
    monkeypatch.setattr(plane_passes, "sharpness", lambda prob: sure[float(prob.flat[0])])
    assert segment.DENOISE_MORE_SIGMAS == (2.5, 3.5)
    assert segment.denoise_dim(None, dim)[2] == chosen
    assert smoothed == tried  # more than 1.7 only while the last sigma was the surest


def test_sharpness_prefers_a_confident_map():
    prob = np.zeros((32, 32), np.float32)
    prob[8:24, 8:24] = 1.0
    assert planes.sharpness(prob) == 1.0
    assert planes.sharpness(np.where(prob > 0, 0.6, 0.1).astype(np.float32)) < 0.5
    assert planes.sharpness(np.zeros((8, 8), np.float32)) == 0.0


def test_large_planes_with_big_nuclei_skip_the_full_size_pass(monkeypatch):
    sample = _sample(seed=4)
    image = _zoom(sample.image, 5.0, 1)  # 1280 x 1280, nuclei ~50 px
    monkeypatch.setattr(nucleus_size, "_LARGE_PIXELS", 1_000_000)
    scales = []
    real = plane_passes.at_scale

    def spy(model, plane, scale, options, device, stop=None):
        scales.append(scale)
        return (yield from real(model, plane, scale, options, device, stop))

    monkeypatch.setattr(plane_passes, "at_scale", spy)
    diameter, scale, _ = estimate_diameter(Threshold(), image)
    assert 1.0 not in scales and scales[0] == 0.5
    assert diameter * scale == pytest.approx(segment.TRAINING_DIAMETER, rel=0.4)


_FIVE_SPOTS = ((0, 0), (-20, 0), (20, 0), (0, -20), (0, 20))


def _big_nuclei_seen_in_parts(monkeypatch, inner_radius=9, radius=40, spots_at=_FIVE_SPOTS):
    """Four nuclei of 80 px whose native pass finds only five inner spots of 18 px each.

    Every other scale sees the nuclei whole (the plane's bright area). Returns the plane
    and the list the scales of the passes made go to.
    """
    yy, xx = np.mgrid[:256, :256]
    centres = [(64, 64), (64, 192), (192, 64), (192, 192)]
    image = np.full((256, 256), 10, np.uint8)
    spots = np.zeros((256, 256), bool)
    for cy, cx in centres:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 200
        for dy, dx in spots_at:
            spots |= (yy - cy - dy) ** 2 + (xx - cx - dx) ** 2 <= inner_radius**2
    calls = []

    def passes(model, plane, scale, options, device, stop=None):
        calls.append(scale)
        if scale == 1.0:
            return spots[None].astype(np.float32)
        return (_zoom(image, scale, 1)[None] > 100).astype(np.float32)
        yield  # a generator, as the real passes are

    monkeypatch.setattr(plane_passes, "at_scale", passes)
    return image, calls


def test_big_nuclei_seen_only_in_parts_at_native_size_are_measured_at_half_size(monkeypatch):
    image, calls = _big_nuclei_seen_in_parts(monkeypatch)
    # the spots measure 18 px, the training size: without the half-size look the plane
    # was segmented as it is, its 80 px nuclei cut into fragments
    diameter, scale, maps = estimate_diameter(Threshold(), image)
    assert calls[:2] == [1.0, 0.5]
    assert diameter == pytest.approx(80, rel=0.1)
    assert scale == pytest.approx(segment.TRAINING_DIAMETER / 80, rel=0.15)
    assert maps.shape[1:] == (round(256 * scale), round(256 * scale))


def test_a_large_planes_first_half_size_look_is_the_one_followed(monkeypatch):
    # nuclei of 44 px, one 18 px spot each at native size; at half size they measure 22 px
    # (in range there, so the full-size pass is made) and the rule follows that first look
    image, calls = _big_nuclei_seen_in_parts(monkeypatch, radius=22, spots_at=((0, 0),))
    monkeypatch.setattr(nucleus_size, "_LARGE_PIXELS", 1000)
    diameter, scale, _ = estimate_diameter(Threshold(), image)
    assert calls == [0.5, 1.0]  # no second half-size pass
    assert scale == 0.5 and diameter == pytest.approx(44, rel=0.1)


def test_nuclei_found_over_most_of_the_bright_area_are_not_looked_at_again(monkeypatch):
    # spots of 60 px cover more than half of the nuclei: the native measure stands
    # (it is out of range here, so the plane is resized from it as before)
    image, calls = _big_nuclei_seen_in_parts(monkeypatch, inner_radius=30)
    assert not nucleus_size.sees_little(image, np.ones((256, 256), np.float32), 0.5)
    estimate_diameter(Threshold(), image)
    assert 0.5 not in calls
    # a plane with no bright area at all is not said to be seen little of
    flat = np.zeros((64, 64), np.uint8)
    assert not nucleus_size.sees_little(flat, np.zeros((64, 64), np.float32), 0.5)


def test_a_half_size_pass_that_sees_no_bigger_nuclei_keeps_the_native_scale(monkeypatch):
    image, calls = _big_nuclei_seen_in_parts(monkeypatch)
    real = plane_passes.at_scale

    def same_spots(model, plane, scale, options, device, stop=None):
        maps = yield from real(model, plane, 1.0, options, device, stop)
        calls[-1] = scale
        return maps[:, ::2, ::2] if scale == 0.5 else maps

    monkeypatch.setattr(plane_passes, "at_scale", same_spots)
    diameter, scale, _ = estimate_diameter(Threshold(), image)
    assert calls == [1.0, 0.5]
    assert scale == 1.0 and diameter == pytest.approx(18, rel=0.15)


def test_out_of_range_nuclei_go_to_the_sharpest_of_the_candidate_scales(monkeypatch):
    monkeypatch.setattr(nucleus_size, "SCALE_CHOICES", (1.0, 1.4, 2.0))
    sample = _sample(seed=4)
    image = _zoom(sample.image, 4.0, 1)  # nuclei ~4x the training size
    calls = []
    real = plane_passes.at_scale

    def spy(model, plane, scale, options, device, stop=None):
        calls.append(scale)
        return (yield from real(model, plane, scale, options, device, stop))

    monkeypatch.setattr(plane_passes, "at_scale", spy)
    plain, plain_scale, _ = estimate_diameter(Threshold(), image)
    to_target = segment.TRAINING_DIAMETER / plain
    # a stand-in sharpness that prefers the nuclei at 1.4x the training diameter
    wanted = to_target * nucleus_size.SCALE_CHOICES[1]

    def prefer(prob):
        return -abs(np.log(prob.shape[0] / (image.shape[0] * wanted)))

    monkeypatch.setattr(nucleus_size, "sharpness", prefer)
    calls.clear()
    result = segment_image(Threshold(), image)
    assert result.scale == pytest.approx(wanted, rel=0.05)
    assert result.labels.shape == image.shape[:2] == result.probability.shape
    assert any(abs(c - 1.0) < 1e-9 for c in calls)  # native was among the candidates
    # a sharpness that prefers native keeps the plane as it is
    monkeypatch.setattr(nucleus_size, "sharpness",
                        lambda prob: float(prob.shape == image.shape[:2]))
    assert segment_image(Threshold(), image).scale == 1.0


def test_nuclei_of_the_training_size_cost_one_pass_or_one_per_choice(monkeypatch):
    sample = _sample(seed=3)
    calls = []
    real = plane_passes.at_scale

    def spy(model, plane, scale, options, device, stop=None):
        calls.append(scale)
        return (yield from real(model, plane, scale, options, device, stop))

    monkeypatch.setattr(plane_passes, "at_scale", spy)
    assert segment_image(Threshold(), sample.image).scale == 1.0 and calls == [1.0]
    # with choices: native, then the nuclei at the other multiples of the training size
    monkeypatch.setattr(nucleus_size, "SCALE_CHOICES", (1.0, 1.4, 2.0))
    calls.clear()
    result = segment_image(Threshold(), sample.image)
    assert calls[0] == 1.0 and result.scale in calls
    ratios = sorted(c * result.diameter / segment.TRAINING_DIAMETER for c in calls[1:])
    assert ratios == pytest.approx(nucleus_size.SCALE_CHOICES[-len(ratios):], rel=0.01)
