"""Is an image of the corrections' kind? A gate for weights of a kind of image's own.

A round that must learn a kind of image unlike DSB2018 (the cells stained too, around
the nuclei) cannot both adapt and keep what the model knew in one set of weights
(docs/finetuning.md, twentieth check). Weights of the kind's own beside the base model's
need a rule that says which images are of that kind: this module fits one from what a
round already has, the corrected images (the kind) and the replay crops (what the model
knew), as the network sees them.

The rule reads the base model's first two encoder blocks (edges, blobs, halos: what
tells kinds of images apart, before the deeper blocks' nucleus shapes): the mean and
spread of each of their channels over an image, standardised by the replay crops'
values, then a logistic regression fitted on crops of both sides (class-balanced,
L2-penalised). Deeper blocks told `fluo-cells` images from DSB2018's less well
(docs/finetuning.md, twenty-first check, with every figure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The encoder blocks whose outputs describe an image (0 = the first, full resolution).
GATE_LEVELS = (0, 1)
#: Side of the crops the gate is fitted on (whole images when smaller).
GATE_CROP = 128


def encoder_statistics(model: Any, images: Any, levels: Sequence[int] = GATE_LEVELS) -> Any:
    """Mean and standard deviation of each channel of ``model``'s first encoder blocks.

    Parameters
    ----------
    model : UNet
        The base model (eval mode: its BatchNorm uses its running statistics).
    images : torch.Tensor
        ``(N, 3, H, W)`` images normalised as the network gets them.
    levels : sequence of int
        Which encoder blocks (0 = the first).

    Returns
    -------
    torch.Tensor
        ``(N, D)`` float32: for each level, every channel's mean, then its std.
    """
    import torch
    import torch.nn.functional as F

    from ..model import pad_to_multiple

    out = []
    with torch.inference_mode():
        x = pad_to_multiple(images.float(), 2 ** max(levels))
        for level, block in enumerate(model.down[: max(levels) + 1]):
            if level:
                x = F.max_pool2d(x, 2)
            x = block(x)
            if level in levels:
                out += [x.mean((2, 3)), x.std((2, 3))]
    return torch.cat(out, dim=1)


@dataclass(frozen=True)
class KindGate:
    """A fitted rule: the probability that an image is of the corrections' kind.

    Attributes
    ----------
    mean, scale : numpy.ndarray
        ``(D,)`` the replay crops' statistics' mean and standard deviation.
    weights : numpy.ndarray
        ``(D,)`` the logistic regression's weights on the standardised statistics.
    bias : float
        Its intercept.
    levels : tuple of int
        The encoder blocks read (:data:`GATE_LEVELS`).
    """

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    levels: tuple[int, ...] = GATE_LEVELS

    def logit(self, model: Any, images: Any) -> np.ndarray:
        """``(N,)`` log-odds that each of ``images`` (``(N, 3, H, W)`` tensor) is of the kind."""
        stats = encoder_statistics(model, images, self.levels).double().numpy()
        return ((stats - self.mean) / self.scale) @ self.weights + self.bias

    def probability(self, model: Any, images: Any) -> np.ndarray:
        """``(N,)`` probabilities in [0, 1] (see :meth:`logit`)."""
        return 1.0 / (1.0 + np.exp(-self.logit(model, images)))


def _crops(image: np.ndarray, count: int, size: int, rng: np.random.Generator,
           ) -> list[np.ndarray]:
    """``count`` random ``size`` crops of a ``(3, H, W)`` image, each turned a quarter more.

    The image itself (once) when it is no larger than a crop.
    """
    _, height, width = image.shape
    if height <= size and width <= size:
        return [image]
    out = []
    for k in range(count):
        y = int(rng.integers(0, max(1, height - size + 1)))
        x = int(rng.integers(0, max(1, width - size + 1)))
        out.append(np.rot90(image[:, y:y + size, x:x + size], k % 4, axes=(1, 2)))
    return out


def _statistics(model: Any, crops: list[np.ndarray], levels: tuple[int, ...]) -> np.ndarray:
    import torch

    return np.concatenate([
        encoder_statistics(model, torch.from_numpy(np.ascontiguousarray(c, np.float32))[None],
                           levels).double().numpy() for c in crops])


def fit_kind_gate(
    model: Any,
    kind: Sequence[np.ndarray],
    known: Sequence[np.ndarray],
    *,
    kind_crops: int = 16,
    known_crops: int = 8,
    crop: int = GATE_CROP,
    l2: float = 1e-3,
    levels: tuple[int, ...] = GATE_LEVELS,
    seed: int = 0,
) -> KindGate:
    """Fit a :class:`KindGate`: the kind's images against the images the model knew.

    Parameters
    ----------
    model : UNet
        The base model (put in eval mode here).
    kind : sequence of numpy.ndarray
        ``(3, H, W)`` float32 normalised images of the kind (the corrected images, as
        inference shows them to the network).
    known : sequence of numpy.ndarray
        Images the model already handles, likewise (the replay crops).
    kind_crops, known_crops : int
        Random crops of each image (a quarter turn more each), for more examples than
        images; the image itself when no larger than ``crop``.
    crop : int
        Side of the crops.
    l2 : float
        Penalty on the squared weights (over both classes' weight of 1 in all).
    levels : tuple of int
        Encoder blocks read.
    seed : int
        Seeds the crops.

    Returns
    -------
    KindGate
    """
    import torch
    import torch.nn.functional as F

    if not kind or not known:
        raise ValueError("fit_kind_gate needs images of both sides (the kind and the known).")
    model.eval()
    rng = np.random.default_rng(seed)
    positive = _statistics(model, [c for x in kind for c in _crops(x, kind_crops, crop, rng)],
                           levels)
    negative = _statistics(model, [c for x in known for c in _crops(x, known_crops, crop, rng)],
                           levels)
    mean, scale = negative.mean(0), negative.std(0) + 1e-3
    features = torch.from_numpy((np.concatenate([positive, negative]) - mean) / scale)
    target = torch.cat([torch.ones(len(positive)), torch.zeros(len(negative))]).double()
    weight = torch.cat([torch.full((len(positive),), 0.5 / len(positive)),
                        torch.full((len(negative),), 0.5 / len(negative))]).double()
    w = torch.zeros(features.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        value = (weight * F.binary_cross_entropy_with_logits(
            features @ w + b, target, reduction="none")).sum() + l2 * (w**2).sum()
        value.backward()
        return value

    with torch.enable_grad():
        optimiser.step(loss)
    return KindGate(mean, scale, w.detach().numpy().copy(), float(b.detach()), tuple(levels))
