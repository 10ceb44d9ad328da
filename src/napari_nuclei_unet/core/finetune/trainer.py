"""The training loop of a fine-tuning round: a few dozen steps from a trained model.

Not :func:`~napari_nuclei_unet.core.training.train` (which builds a model from scratch
or a checkpoint and writes best/last checkpoints with resume state every epoch): a
round starts from weights already in memory, saves nothing itself, and protects what
the base model knew:

- BatchNorm statistics stay those of the base model (``freeze_batchnorm``): with
  batches of a few crops of mostly 1-3 new images, updating them shifts the features
  of *every* kind of image, which was measured as the main cause of forgetting
  (``benchmarks/bench_finetune_domains.py``, docs/readme-finetune.md);
- only the decoder (and the output layer) learns (``trainable="decoder"``, the default
  of rounds): the encoder's generic image features stay those of the base model.

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

#: Which parameters a round may change.
TRAINABLE = ("all", "decoder")


def _trainable_parameters(model: Any, trainable: str) -> list[Any]:
    if trainable not in TRAINABLE:
        raise FinetuneError(f"trainable must be one of {TRAINABLE}, got {trainable!r}.")
    if trainable == "all":
        return list(model.parameters())
    names = ("upsample.", "up.", "head.")
    return [p for n, p in model.named_parameters() if n.startswith(names)]


def train_round(
    config: Any,
    samples: Sequence[Any],
    base_model: Any,
    *,
    device: Any,
    freeze_batchnorm: bool = True,
    trainable: str = "all",
    should_stop: Callable[[], bool] | None = None,
    out_hint: Path | None = None,
) -> Generator[Any, None, tuple[Any, list[Any], bool]]:
    """Fine-tune a copy of ``base_model`` on random augmented crops of ``samples``.

    Parameters
    ----------
    config : TrainConfig
        Steps, batch, crop size, learning rate and schedule, augmentation, seed, amp.
    samples : sequence of Sample
        The mixed training list (entries are drawn uniformly).
    base_model : UNet
        The starting weights (not modified).
    device : torch.device
        Where to train.
    freeze_batchnorm : bool, default True
        Keep the base model's BatchNorm running statistics.
    trainable : {"all", "decoder"}
        Which parameters learn.
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
    from ..losses import DiceBCELoss
    from ..training import EpochEnd, TrainStep, _train_step, learning_rate_factor

    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = copy.deepcopy(base_model).to(device)
    model.train()
    if freeze_batchnorm:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()  # normalise with the base model's statistics, never update them
    params = _trainable_parameters(model, trainable)
    chosen = {id(p) for p in params}
    for param in model.parameters():
        param.requires_grad_(id(param) in chosen)
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}], lr=config.learning_rate)
    dtype = amp_dtype(device) if config.amp else None
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    loss_fn = DiceBCELoss()
    sampler = CropSampler(samples, config.crop_size, AugmentSettings.from_config(config),
                          device=device)
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
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate * learning_rate_factor(
                    global_step, total, config)
            indices = rng.integers(0, len(sampler), size=config.batch_size)
            x, y = sampler.batch(rng, indices)
            loss = _train_step(model, optimizer, loss_fn, x, y, dtype, scaler)
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
