from dataclasses import dataclass

import numpy as np
import pytest
import torch

from napari_nuclei_unet.core.inference import (
    inference_model,
    predict_probability,
    predict_samples,
    probability_to_mask,
    tile_starts,
)
from napari_nuclei_unet.core.model import UNet
from napari_nuclei_unet.core.normalize import normalize_image
from napari_nuclei_unet.core.progress import Progress, drive


@dataclass
class FakeSample:
    id: str
    image: np.ndarray


@pytest.fixture
def model():
    torch.manual_seed(0)
    net = UNet(base_width=4, depth=2)
    with torch.no_grad():
        net.head.bias.fill_(0.5)
    return net.eval()


def _image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    blobs = np.zeros((h, w))
    for _ in range(max(1, h * w // 200)):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        blobs += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 20)
    grey = np.clip(blobs * 200 + rng.normal(10, 3, (h, w)), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def test_single_pass_equals_direct_forward(model):
    image = _image(45, 61)
    prob = predict_probability(model, image, amp=False)
    assert prob.shape == (45, 61) and prob.dtype == np.float32
    assert 0 <= prob.min() and prob.max() <= 1
    with torch.no_grad():
        direct = torch.sigmoid(model(torch.from_numpy(normalize_image(image))[None]))[0, 0]
    np.testing.assert_allclose(prob, direct.numpy(), atol=1e-5)
    # reduced precision (bf16 where the hardware has it) stays close
    np.testing.assert_allclose(predict_probability(model, image), prob, atol=2e-2)


def test_tiled_matches_untiled_without_seams(model):
    image = _image(150, 203)
    whole = predict_probability(model, image, tile_size=256)
    tiled = predict_probability(model, image, tile_size=64, overlap=32)
    assert tiled.shape == whole.shape
    diff = np.abs(tiled - whole)
    assert diff.mean() < 2e-3 and diff.max() < 0.05
    # no seams: the tiled map is as smooth across tile borders as the whole-image map
    jumps_tiled = np.abs(np.diff(tiled, axis=1)).max()
    jumps_whole = np.abs(np.diff(whole, axis=1)).max()
    assert jumps_tiled < jumps_whole + 0.02


@pytest.mark.parametrize("shape", [(1, 1), (7, 300), (33, 17), (129, 65)])
def test_odd_sizes_with_tiles(model, shape):
    prob = predict_probability(model, _image(*shape), tile_size=32, overlap=8)
    assert prob.shape == shape and np.isfinite(prob).all()


def test_grey_and_rgba_inputs(model):
    rgb = _image(40, 50)
    rgba = np.concatenate([rgb, np.full((40, 50, 1), 255, np.uint8)], axis=2)
    ref = predict_probability(model, rgb)
    np.testing.assert_allclose(predict_probability(model, rgba), ref, atol=1e-6)
    np.testing.assert_allclose(predict_probability(model, rgb[..., 0]), ref, atol=1e-6)


def test_tile_starts_cover_everything():
    for length, tile, overlap in [(1000, 256, 32), (257, 256, 64), (100, 256, 0), (512, 64, 16)]:
        starts = tile_starts(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] + min(tile, length) == length
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:], strict=False))


def test_fused_model_is_cached_and_refreshed(model):
    first = inference_model(model)
    assert inference_model(model) is first and first.is_fused
    with torch.no_grad():
        model.head.bias.add_(1.0)
    second = inference_model(model)
    assert second is not first


def test_probability_to_mask():
    mask = probability_to_mask(np.array([0.2, 0.5, 0.51, 0.9]))
    assert mask.dtype == bool and mask.tolist() == [False, False, True, True]
    assert probability_to_mask(np.array([0.3]), threshold=0.25).tolist() == [True]


def test_predict_samples_progress_and_stop(model):
    samples = [FakeSample(f"s{i}", _image(20 + i, 30)) for i in range(3)]
    updates = []
    probs = drive(predict_samples(model, samples), updates.append)
    assert updates == [Progress("predict", i + 1, 3, f"s{i}") for i in range(3)]
    assert list(probs) == ["s0", "s1", "s2"] and probs["s1"].shape == (21, 30)
    calls = iter([False, True])
    partial = drive(predict_samples(model, samples, should_stop=lambda: next(calls)))
    assert list(partial) == ["s0"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_prediction_matches_cpu():
    from napari_nuclei_unet.core.checkpoint import load_checkpoint

    model = load_checkpoint("default").model
    image = _image(300, 420)
    cpu = predict_probability(model, image, device="cpu", tile_size=256)
    gpu = predict_probability(model, image, device="cuda", tile_size=256)
    assert gpu.shape == cpu.shape and gpu.dtype == cpu.dtype
    assert np.abs(gpu - cpu).mean() < 0.01  # bf16 on the GPU: small differences only
    assert ((gpu > 0.5) == (cpu > 0.5)).mean() > 0.995
