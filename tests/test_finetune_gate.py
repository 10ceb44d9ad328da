"""The kind-of-image gate: fitted on a round's corrections against the replay crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_nuclei_unet.core.finetune.gate import (
    GATE_LEVELS,
    _crops,
    encoder_statistics,
    fit_kind_gate,
)
from napari_nuclei_unet.core.model import UNet


def _image(rng, halo, size=96):
    """A normalised (3, H, W) image of bright discs; ``halo``: each in a dimmer band."""
    yy, xx = np.mgrid[:size, :size]
    grey = np.zeros((size, size), np.float32)
    for _ in range(6):
        cy, cx, r = rng.uniform(12, size - 12), rng.uniform(12, size - 12), rng.uniform(4, 7)
        distance = np.hypot(yy - cy, xx - cx)
        if halo:
            grey = np.maximum(grey, np.where(distance <= r + 5, 0.6, 0.0))
        grey = np.maximum(grey, np.where(distance <= r, 1.0, 0.0))
    grey += rng.normal(0, 0.03, grey.shape).astype(np.float32)
    return np.repeat(grey[None], 3, 0).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return UNet(base_width=8, depth=2).eval()


def test_the_gate_tells_the_corrections_kind_from_what_the_model_knew(model):
    rng = np.random.default_rng(0)
    kind = [_image(rng, halo=True) for _ in range(3)]
    known = [_image(rng, halo=False) for _ in range(12)]
    gate = fit_kind_gate(model, kind, known, kind_crops=8, known_crops=2, crop=64)
    new_kind = torch.from_numpy(np.stack([_image(rng, halo=True) for _ in range(5)]))
    new_known = torch.from_numpy(np.stack([_image(rng, halo=False) for _ in range(5)]))
    assert (gate.probability(model, new_kind) > 0.9).all()
    assert (gate.probability(model, new_known) < 0.1).all()
    # the log-odds are the probability's
    np.testing.assert_allclose(1 / (1 + np.exp(-gate.logit(model, new_kind))),
                               gate.probability(model, new_kind))


def test_statistics_are_each_channels_mean_and_spread_of_the_first_blocks(model):
    x = torch.from_numpy(_image(np.random.default_rng(1), halo=False))[None]
    stats = encoder_statistics(model, x)
    widths = [model.base_width * 2**level for level in GATE_LEVELS]
    assert stats.shape == (1, 2 * sum(widths))
    with torch.no_grad():
        first = model.down[0](x)
    np.testing.assert_allclose(stats[0, :widths[0]].numpy(), first.mean((2, 3))[0].numpy(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats[0, widths[0]:2 * widths[0]].numpy(),
                               first.std((2, 3))[0].numpy(), rtol=1e-5, atol=1e-6)


def test_crops_turn_a_quarter_more_each_and_a_small_image_is_itself():
    image = np.arange(3 * 40 * 50, dtype=np.float32).reshape(3, 40, 50)
    assert len(_crops(image, 5, 64, np.random.default_rng(0))) == 1
    crops = _crops(image, 4, 16, np.random.default_rng(0))
    assert [c.shape for c in crops] == [(3, 16, 16)] * 4
    # each is a quarter turn of a crop of the image: turned back, it is found in it
    for k, crop in enumerate(crops):
        back = np.rot90(crop, -k, axes=(1, 2))
        y, x = np.argwhere(image[0] == back[0, 0, 0])[0]
        np.testing.assert_array_equal(back, image[:, y:y + 16, x:x + 16])


def test_a_gate_needs_both_sides(model):
    image = _image(np.random.default_rng(2), halo=False)
    with pytest.raises(ValueError, match="both sides"):
        fit_kind_gate(model, [], [image])
    with pytest.raises(ValueError, match="both sides"):
        fit_kind_gate(model, [image], [])

