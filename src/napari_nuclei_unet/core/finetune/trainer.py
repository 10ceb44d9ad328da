"""The training loop of a fine-tuning round: a few dozen steps from a trained model.

Not :func:`~napari_nuclei_unet.core.training.train` (which builds a model from scratch
or a checkpoint and writes best/last checkpoints with resume state every epoch): a
round starts from weights already in memory, saves nothing itself, and protects what
the base model knew:

- BatchNorm statistics stay those of the base model (``freeze_batchnorm``): with
  batches of a few crops of mostly 1-3 new images, updating them shifts the features
  of *every* kind of image, which was measured as the main cause of forgetting
  (``benchmarks/bench_finetune_domains.py``, docs/finetuning.md);
- only the decoder, the output layer and the encoder's deepest block learn
  (``trainable="late"``, the default of rounds): the encoder's earlier, generic image
  features stay those of the base model;
- crops are drawn by weight from the corrections and *every* replay crop
  (:func:`draw_probabilities`);
- on the replay crops, the outputs are also pulled towards the base model's
  (distillation, ``distill=4.0`` in rounds), on top of the crops' true labels.

A lower learning rate for the encoder (``encoder_lr``) is an option, measured but not a
default (docs/finetuning.md).

It yields the same :class:`~napari_nuclei_unet.core.training.TrainStep` and
:class:`~napari_nuclei_unet.core.training.EpochEnd` updates as full training.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..progress import stop_requested
from ._common import FinetuneError

#: Which parameters a round may change: everything, the decoder (and output layer), or
#: the decoder plus the encoder's deepest block ("late").
TRAINABLE = ("all", "late", "decoder")
_DECODER = ("upsample.", "up.", "head.")


def _is_encoder(name: str) -> bool:
    return not name.startswith(_DECODER)


def _trainable_parameters(model: Any, trainable: str) -> list[tuple[str, Any]]:
    if trainable not in TRAINABLE:
        raise FinetuneError(f"trainable must be one of {TRAINABLE}, got {trainable!r}.")
    named = list(model.named_parameters())
    if trainable == "all":
        return named
    if trainable == "late":
        deepest = f"down.{len(model.down) - 1}."
        return [(n, p) for n, p in named if n.startswith((*_DECODER, deepest))]
    return [(n, p) for n, p in named if n.startswith(_DECODER)]


def _param_groups(named: list[tuple[str, Any]], lr: float, weight_decay: float,
                  encoder_lr: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on weights only; encoder parameters at ``encoder_lr`` x ``lr``."""
    groups = []
    for encoder in (False, True):
        scale = encoder_lr if encoder else 1.0
        for decay in (True, False):
            params = [p for n, p in named
                      if _is_encoder(n) == encoder and (p.ndim > 1) == decay]
            if params:
                groups.append({"params": params, "weight_decay": weight_decay if decay else 0.0,
                               "lr": lr * scale, "lr_scale": scale})
    return groups


def draw_probabilities(n_corrections: int, n_total: int, ratio: float) -> np.ndarray:
    """Chance of each entry of ``corrections + others`` to be drawn for a crop.

    The corrections share ``ratio`` equally, the others share ``1 - ratio`` equally, so
    every replay crop can be seen (instead of a random subset of them, as when the
    share is made by repeating entries of a list).

    Parameters
    ----------
    n_corrections : int
        Number of corrected samples (first in the list).
    n_total : int
        Length of the list.
    ratio : float
        Share of the corrections, in ``(0, 1]``.

    Returns
    -------
    numpy.ndarray
        ``(n_total,)`` probabilities summing to 1.
    """
    n_other = n_total - n_corrections
    if n_other <= 0 or ratio >= 1.0:
        return np.full(n_total, 1.0 / n_total)
    return np.concatenate([np.full(n_corrections, ratio / n_corrections),
                           np.full(n_other, (1.0 - ratio) / n_other)])


def group_probabilities(sizes: Sequence[int], shares: Sequence[float]) -> np.ndarray:
    """Chance of each entry of consecutive groups, each group sharing its ``shares`` equally.

    Empty groups give their share to the others (the result sums to 1).

    Parameters
    ----------
    sizes : sequence of int
        Lengths of the groups, in list order.
    shares : sequence of float
        Non-negative share of each group.

    Returns
    -------
    numpy.ndarray
        ``(sum(sizes),)`` probabilities.
    """
    parts = [np.full(int(n), float(share) / n) for n, share in zip(sizes, shares, strict=True)
             if n > 0]
    p = np.concatenate(parts) if parts else np.zeros(0)
    return p / p.sum() if p.sum() > 0 else np.full(p.size, 1.0 / max(p.size, 1))


def train_round(
    config: Any,
    samples: Sequence[Any],
    base_model: Any,
    *,
    device: Any,
    freeze_batchnorm: bool = True,
    trainable: str = "all",
    encoder_lr: float = 1.0,
    distill: float = 0.0,
    probabilities: Sequence[float] | None = None,
    n_corrections: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    out_hint: Path | None = None,
) -> Generator[Any, None, tuple[Any, list[Any], bool]]:
    """Fine-tune a copy of ``base_model`` on random augmented crops of ``samples``.

    Parameters
    ----------
    config : TrainConfig
        Steps, batch, crop size, learning rate and schedule, augmentation, seed, amp.
    samples : sequence of Sample
        The training list: the corrections first (``n_corrections`` of them), then the
        replay and original samples.
    base_model : UNet
        The starting weights (not modified). A two-head model learns the contour
        target too.
    device : torch.device
        Where to train.
    freeze_batchnorm : bool, default True
        Keep the base model's BatchNorm running statistics.
    trainable : {"all", "late", "decoder"}
        Which parameters learn (see :data:`TRAINABLE`).
    encoder_lr : float, default 1.0
        Learning rate of the encoder's trainable parameters, as a fraction of the
        decoder's (discriminative learning rates).
    distill : float, default 0.0
        Weight of a distillation term on the crops that are not corrections: the binary
        cross-entropy of the new model's outputs against the base model's
        probabilities, which holds the model to what it did on other images.
    probabilities : sequence of float, optional
        Chance of each entry to be drawn for a crop (default: uniform).
    n_corrections : int, optional
        How many of the first entries are corrections (needed by ``distill``; default:
        none).
    should_stop : callable, optional
        Checked before each step; when True the round ends (``cancelled``).
    out_hint : pathlib.Path, optional
        Shown as ``EpochEnd.checkpoint`` (the round writes no per-epoch checkpoints).

    Yields
    ------
    TrainStep or EpochEnd

    Returns
    -------
    model : UNet
        The fine-tuned copy (eval mode, on ``device``).
    history : list of EpochEnd
    cancelled : bool
    """
    import torch

    from ..augment import AugmentSettings, CropSampler
    from ..device import amp_dtype
    from ..losses import HeadsLoss
    from ..training import EpochEnd, TrainStep, learning_rate_factor

    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = copy.deepcopy(base_model).to(device)
    model.train()
    if freeze_batchnorm:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()  # normalise with the base model's statistics, never update them
    named = _trainable_parameters(model, trainable)
    chosen = {id(p) for _, p in named}
    for param in model.parameters():
        param.requires_grad_(id(param) in chosen)
    optimizer = torch.optim.AdamW(
        _param_groups(named, config.learning_rate, config.weight_decay, encoder_lr),
        lr=config.learning_rate)
    first_other = len(samples) if n_corrections is None else int(n_corrections)
    teacher = None
    if distill > 0 and first_other < len(samples):  # only crops that are not corrections
        teacher = copy.deepcopy(base_model).to(device).eval()
        for param in teacher.parameters():
            param.requires_grad_(False)
    dtype = amp_dtype(device) if config.amp else None
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    loss_fn = HeadsLoss()
    sampler = CropSampler(samples, config.crop_size, AugmentSettings.from_config(config),
                          device=device, contours=getattr(model, "out_channels", 1) > 1)
    p = None if probabilities is None else np.asarray(probabilities, dtype=np.float64)
    if p is not None:
        if p.shape != (len(samples),) or not np.all(p >= 0) or not p.sum() > 0:
            raise FinetuneError("probabilities must give one non-negative chance per sample.")
        p = p / p.sum()
    steps = int(config.steps_per_epoch or math.ceil(len(samples) / config.batch_size))
    total = steps * config.epochs
    history: list[Any] = []
    global_step = 0
    step_time = None
    for epoch in range(1, config.epochs + 1):
        losses = []
        for step in range(1, steps + 1):
            if stop_requested(should_stop):
                return model.eval(), history, True
            tic = time.perf_counter()
            factor = learning_rate_factor(global_step, total, config)
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate * group["lr_scale"] * factor
            indices = rng.choice(len(sampler), size=config.batch_size, p=p)
            x, y = sampler.batch(rng, indices)
            other = torch.as_tensor(indices >= first_other, device=x.device)
            loss = _step(model, teacher, optimizer, loss_fn, x, y, other, distill, dtype,
                         scaler)
            if not math.isfinite(loss):
                raise FinetuneError(
                    f"The training loss became {loss} at step {global_step + 1}: the round "
                    f"diverged. Lower the learning rate (now {config.learning_rate:g}); the "
                    "model in use is unchanged."
                )
            global_step += 1
            losses.append(loss)
            elapsed = time.perf_counter() - tic
            step_time = elapsed if step_time is None else 0.8 * step_time + 0.2 * elapsed
            yield TrainStep(epoch, config.epochs, step, steps, loss,
                            config.batch_size / max(step_time, 1e-9),
                            step_time * (total - global_step))
        end = EpochEnd(epoch, config.epochs, float(np.mean(losses)), None, None, None,
                       epoch == config.epochs, out_hint or Path("."),
                       (step_time or 0.0) * (total - global_step),
                       time.perf_counter() - started)
        history.append(end)
        yield end
    for param in model.parameters():
        param.requires_grad_(True)
    return model.eval(), history, False


def extrapolate_weights(model: Any, base_model: Any, factor: float) -> Any:
    """A copy of ``model`` whose parameters are ``base + factor * (model - base)``.

    With ``factor`` above 1 the change a round made is carried further in the same
    direction (model extrapolation); below 1 it is partly undone (weight-space
    interpolation). Buffers (BatchNorm statistics) are left as they are; parameters the
    round froze are equal to the base model's and stay so.

    Parameters
    ----------
    model : UNet
        The fine-tuned model (not modified).
    base_model : UNet
        The model the round started from, of the same architecture.
    factor : float
        How far to go along the change (1: an unchanged copy).

    Returns
    -------
    UNet
        The new model, in eval mode, on ``model``'s device.
    """
    import torch

    out = copy.deepcopy(model).eval()
    base = dict(base_model.named_parameters())
    with torch.no_grad():
        for name, param in out.named_parameters():
            start = base[name].detach().to(device=param.device, dtype=param.dtype)
            param.copy_(start + factor * (param - start))
    return out


def _step(model, teacher, optimizer, loss_fn, x, y, other, distill, dtype, scaler) -> float:
    """One optimisation step (label loss + distillation on ``other`` crops); the loss."""
    import contextlib

    import torch
    import torch.nn.functional as F

    optimizer.zero_grad(set_to_none=True)
    autocast = (torch.autocast(x.device.type, dtype=dtype) if dtype is not None
                else contextlib.nullcontext())
    with autocast:
        logits = model(x)
    logits = logits.float()
    loss = loss_fn(logits, y)
    if teacher is not None and bool(other.any()):
        with torch.no_grad(), autocast:
            target = torch.sigmoid(teacher(x[other]).float())
        loss = loss + distill * F.binary_cross_entropy_with_logits(logits[other], target)
    from ..training import apply_loss

    return apply_loss(loss, optimizer, scaler)
