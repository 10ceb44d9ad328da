import math

import pytest
import torch

from napari_nuclei_unet.core.losses import DiceBCELoss, soft_dice_loss

BIG = 30.0


def test_perfect_prediction_is_near_zero():
    target = torch.zeros(1, 1, 4, 4)
    target[..., :2, :] = 1
    logits = (target * 2 - 1) * BIG
    assert DiceBCELoss()(logits, target).item() == pytest.approx(0.0, abs=1e-6)


def test_half_probability_values():
    target = torch.zeros(1, 1, 2, 2)
    target[..., 0, 0] = 1
    logits = torch.zeros(1, 1, 2, 2)  # p = 0.5 everywhere
    bce = math.log(2)
    dice = 1 - (2 * 0.5 + 1) / (2.0 + 1 + 1)
    assert DiceBCELoss()(logits, target).item() == pytest.approx(bce + dice, rel=1e-6)
    assert DiceBCELoss(bce_weight=0)(logits, target).item() == pytest.approx(dice, rel=1e-6)
    assert DiceBCELoss(dice_weight=0)(logits, target).item() == pytest.approx(bce, rel=1e-6)


def test_wrong_prediction_is_large_and_per_image_dice():
    target = torch.ones(2, 1, 3, 3)
    target[1] = 0
    logits = -BIG * torch.ones(2, 1, 3, 3)
    # batch Dice: nothing predicted, 9 true pixels -> 1 - 1/10
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.9, abs=1e-6)
    # per image: image 0 -> 0.9, image 1 (empty/empty) -> 0
    assert soft_dice_loss(logits, target, per_image=True).item() == pytest.approx(0.45, abs=1e-6)
    assert DiceBCELoss()(logits, target).item() > 10


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shapes differ"):
        DiceBCELoss()(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))


def test_gradient_is_finite():
    logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
    DiceBCELoss()(logits, torch.ones(2, 1, 8, 8)).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
