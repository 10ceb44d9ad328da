import numpy as np
import pytest
import torch

from napari_nuclei_unet.core.model import UNet, count_parameters, pad_to_multiple
from napari_nuclei_unet.core.normalize import as_rgb, normalization_params, normalize_image


@pytest.mark.parametrize("shape", [(37, 51), (1, 1), (5, 130), (64, 64), (33, 16)])
def test_forward_any_size(shape):
    torch.manual_seed(0)
    net = UNet(base_width=4, depth=2).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, *shape))
    assert out.shape == (2, 1, *shape)
    assert torch.isfinite(out).all()


def test_constructor_and_widths():
    net = UNet(in_channels=1, base_width=4, depth=3)
    assert net.multiple == 8
    assert net.architecture() == {"name": "unet-v1", "in_channels": 1, "base_width": 4, "depth": 3}
    assert count_parameters(net) > 0
    with pytest.raises(ValueError, match="expects input of shape"):
        net(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError):
        UNet(base_width=0)


def test_pad_to_multiple_small_inputs_use_replicate():
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    y = pad_to_multiple(x, 8)
    assert y.shape == (1, 1, 8, 8)
    assert torch.equal(y[..., :2, :3], x)


def test_fused_model_matches_eval_model():
    torch.manual_seed(0)
    net = UNet(base_width=4, depth=2)
    net.train()
    with torch.no_grad():  # give BatchNorm non-trivial running statistics
        for _ in range(3):
            net(torch.randn(4, 3, 32, 32) * 2 + 1)
    net.eval()
    fused = net.fuse_for_inference()
    assert fused.is_fused and not fused.training
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # original untouched
    x = torch.randn(1, 3, 45, 29)
    with torch.inference_mode():
        np.testing.assert_allclose(net(x).numpy(), fused(x).numpy(), atol=1e-4)


def test_normalize_shapes_and_inversion():
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[5:10, 5:10, :3] = 200
    out = normalize_image(rgba)
    assert out.shape == (3, 20, 30) and out.dtype == np.float32
    assert out[:, 6, 6].min() > 0.9 and abs(out[:, 0, 0]).max() < 0.05
    # a bright-background image is inverted: nuclei become bright
    bright = 255 - rgba[..., :3]
    inv = normalize_image(bright)
    assert normalization_params(bright).inverted
    np.testing.assert_allclose(inv, out, atol=0.02)
    grey = rgba[..., 0]
    np.testing.assert_allclose(normalize_image(grey), out, atol=1e-6)
    assert as_rgb(grey[..., None]).shape == (20, 30, 3)
    with pytest.raises(ValueError, match="Expected an image"):
        as_rgb(np.zeros((2, 3, 4, 5)))
    flat = normalize_image(np.full((8, 8), 7, np.uint8))
    assert np.isfinite(flat).all()
