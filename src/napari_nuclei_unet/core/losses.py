"""Segmentation losses (torch)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, *, smooth: float = 1.0, per_image: bool = False
) -> torch.Tensor:
    """Soft Dice loss ``1 - (2 |P T| + s) / (|P| + |T| + s)`` on sigmoid probabilities.

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, 1, H, W)`` (or any ``(N, ...)``) foreground logits.
    target : torch.Tensor
        Same shape, values in [0, 1].
    smooth : float, default 1.0
        Added to numerator and denominator; makes an empty prediction of an empty
        target a perfect score and keeps the gradient finite.
    per_image : bool, default False
        Average the Dice of each image (True) or compute one Dice over the whole batch
        (False, steadier when many crops hold few nuclei).

    Returns
    -------
    torch.Tensor
        Scalar loss in [0, 1].
    """
    prob = torch.sigmoid(logits.float())
    target = target.float()
    dims = tuple(range(1, prob.ndim)) if per_image else tuple(range(prob.ndim))
    intersection = (prob * target).sum(dims)
    total = prob.sum(dims) + target.sum(dims)
    dice = (2.0 * intersection + smooth) / (total + smooth)
    return 1.0 - dice.mean()


class DiceBCELoss(nn.Module):
    """Binary cross-entropy (with logits) plus soft Dice loss.

    ``loss = bce_weight * BCE(logits, target) + dice_weight * (1 - soft Dice)``.

    Parameters
    ----------
    bce_weight : float, default 1.0
        Weight of the pixel-wise binary cross-entropy.
    dice_weight : float, default 1.0
        Weight of the soft Dice loss.
    smooth : float, default 1.0
        Smoothing term of the Dice loss.
    per_image : bool, default False
        See :func:`soft_dice_loss`.
    """

    def __init__(
        self,
        bce_weight: float = 1.0,
        dice_weight: float = 1.0,
        smooth: float = 1.0,
        per_image: bool = False,
    ) -> None:
        super().__init__()
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.smooth = smooth
        self.per_image = per_image

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Parameters
        ----------
        logits : torch.Tensor
            ``(N, 1, H, W)`` foreground logits.
        target : torch.Tensor
            ``(N, 1, H, W)`` foreground mask (0/1, any dtype).

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        if logits.shape != target.shape:
            raise ValueError(
                f"logits and target shapes differ: {tuple(logits.shape)} vs {tuple(target.shape)}."
            )
        target = target.float()
        bce = F.binary_cross_entropy_with_logits(logits.float(), target)
        dice = soft_dice_loss(logits, target, smooth=self.smooth, per_image=self.per_image)
        return self.bce_weight * bce + self.dice_weight * dice


class HeadsLoss(nn.Module):
    """Loss of a model with one or two output channels (foreground, contour).

    ``loss = DiceBCE(foreground) + contour_weight * DiceBCE(contour)``; with one channel
    it is exactly :class:`DiceBCELoss`.

    Parameters
    ----------
    contour_weight : float, default 1.0
        Weight of the contour channel's loss.
    """

    def __init__(self, contour_weight: float = 1.0) -> None:
        super().__init__()
        self.contour_weight = contour_weight
        self.dice_bce = DiceBCELoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Parameters
        ----------
        logits : torch.Tensor
            ``(N, C, H, W)`` logits, ``C`` in {1, 2}.
        target : torch.Tensor
            ``(N, C, H, W)`` 0/1 targets.

        Returns
        -------
        torch.Tensor
            Scalar loss.
        """
        if logits.shape != target.shape:
            raise ValueError(
                f"logits and target shapes differ: {tuple(logits.shape)} vs {tuple(target.shape)}."
            )
        loss = self.dice_bce(logits[:, :1], target[:, :1])
        if logits.shape[1] > 1:
            loss = loss + self.contour_weight * self.dice_bce(logits[:, 1:2], target[:, 1:2])
        return loss
