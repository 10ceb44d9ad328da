"""Training loop: a generator yielding typed progress updates, returning a TrainResult.

Usage (headless)::

    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.progress import drive
    from napari_nuclei_unet.core.training import train

    result = drive(train(TrainConfig(epochs=40), samples, out_dir="runs/a"), print)
    result.best_checkpoint  # runs/a/best.safetensors

The napari dock runs the same generator in a ``thread_worker`` and reacts to the
:class:`TrainStep` / :class:`EpochEnd` updates on the main thread.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable, Generator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import distributed
from .augment import AugmentSettings, CropSampler
from .checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_state_strict,
    load_train_state,
    save_checkpoint,
)
from .config import TrainConfig
from .device import amp_dtype, configure_cpu_threads, resolve_device, restored_cpu_threads
from .inference import predict_probability
from .locking import hold_run_folder
from .losses import HeadsLoss
from .model import UNet
from .progress import stop_requested
from .train_data import data_description, sampling_probabilities, split_train_val, training_diameter
from .train_resume import resume_data, start_best, time_left_check
from .train_updates import (
    BEST_NAME,
    LAST_NAME,
    EpochEnd,
    NonFiniteLossError,
    TrainingError,
    TrainResult,
    TrainStep,
)

# Under torchrun only rank 0 writes checkpoints (a no-op elsewhere): see core/distributed.py.
save_checkpoint = distributed.main_only(save_checkpoint)

# Defined next door (torch-free, for front ends) and part of this module's interface.
__all__ = [
    "BEST_NAME", "LAST_NAME", "EpochEnd", "NonFiniteLossError", "TrainResult", "TrainStep",
    "TrainingError", "apply_loss", "foreground_iou", "learning_rate_factor",
    "sampling_probabilities", "split_train_val", "train", "training_diameter", "validate",
]


def learning_rate_factor(step: int, total_steps: int, config: TrainConfig) -> float:
    """Multiplier of the peak learning rate at a (0-based) global step.

    Linear warm-up over ``warmup_fraction`` of the steps, then constant or cosine decay
    to ``min_lr_fraction``.
    """
    warmup = int(round(config.warmup_fraction * total_steps))
    if warmup and step < warmup:
        return (step + 1) / warmup
    if config.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    floor = config.min_lr_fraction
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def foreground_iou(truth: np.ndarray, pred: np.ndarray) -> float:
    """Foreground IoU of two boolean masks (1.0 when both are empty)."""
    union = np.count_nonzero(truth | pred)
    return 1.0 if union == 0 else np.count_nonzero(truth & pred) / union


def _prob_loss(prob: np.ndarray, truth: np.ndarray) -> float:
    """DiceBCE loss computed from probabilities (for validation)."""
    p = np.clip(prob.astype(np.float64), 1e-6, 1 - 1e-6)
    t = truth.astype(np.float64)
    bce = -np.mean(t * np.log(p) + (1 - t) * np.log1p(-p))
    dice = 1.0 - (2.0 * np.sum(p * t) + 1.0) / (np.sum(p) + np.sum(t) + 1.0)
    return float(bce + dice)


def validate(
    model: torch.nn.Module, samples: Sequence[Any], device: torch.device
) -> tuple[float, float]:
    """Mean validation loss and mean per-image foreground IoU (threshold 0.5).

    Whole images at native resolution go through :func:`predict_probability`, the
    same path as prediction.
    """
    losses, ious = [], []
    for sample in samples:
        prob = predict_probability(model, sample.image, device=device)
        truth = np.asarray(sample.labels) > 0
        losses.append(_prob_loss(prob, truth))
        ious.append(foreground_iou(truth, prob > 0.5))
    return float(np.mean(losses)), float(np.mean(ious))


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    tensors = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                tensors[f"optimizer.{index}.{key}"] = torch.tensor(value)
    return tensors


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    state_dict = optimizer.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if not name.startswith("optimizer."):
            continue
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    state_dict["state"] = state
    optimizer.load_state_dict(state_dict)


def train(
    config: TrainConfig,
    samples: Sequence[Any],
    *,
    out_dir: str | os.PathLike,
    resume_from: str | os.PathLike | None = None,
    init_from: str | os.PathLike | None = None,
    should_stop: Callable[[], bool] | None = None,
    val_samples: Sequence[Any] | None = None,
) -> Generator[TrainStep | EpochEnd, None, TrainResult]:
    """Train a U-Net on in-memory samples.

    Parameters
    ----------
    config : TrainConfig
        Hyperparameters (saved with every checkpoint).
    samples : sequence of Sample
        Samples with ``id``, ``image`` ((H, W, 3) uint8), ``labels`` ((H, W) int) and
        ``modality``; samples whose ``has_labels`` is False are skipped. When
        ``val_samples`` is None they are split with :func:`split_train_val`.
    out_dir : str or os.PathLike
        Folder for ``best.safetensors`` / ``last.safetensors`` (+ ``.json`` sidecars).
    resume_from : str or os.PathLike, optional
        A ``last`` checkpoint of an earlier run: weights, optimizer, schedule, epoch,
        RNG state and history are restored and training continues up to
        ``config.epochs``. Architecture fields of ``config`` must match.
    init_from : str or os.PathLike, optional
        Checkpoint (or ``"default"``) whose weights initialise the model (fine-tuning);
        optimizer and schedule start fresh.
    should_stop : callable, optional
        Checked before every step; when True, the last checkpoint is saved (the best
        one is kept) and the run returns with ``cancelled=True``.
    val_samples : sequence of Sample, optional
        Explicit validation samples (then all ``samples`` are used for training).

    Yields
    ------
    TrainStep or EpochEnd
        After every optimisation step, and after every epoch.

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingError
        No labelled samples, non-finite loss (:class:`NonFiniteLossError`), CUDA out of
        memory, or a resume checkpoint that does not match ``config``.

    Notes
    -----
    On the CPU, torch's thread count (a process-wide setting) is set from
    ``config.num_threads`` for the run and put back when the run ends, fails or is
    closed, so that later predictions in the same process keep their setting.
    """
    with hold_run_folder(out_dir), restored_cpu_threads():  # one writer per run folder
        return (yield from _train(config, samples, out_dir=out_dir, resume_from=resume_from,
                                  init_from=init_from, should_stop=should_stop,
                                  val_samples=val_samples))


def _train(
    config: TrainConfig,
    samples: Sequence[Any],
    *,
    out_dir: str | os.PathLike,
    resume_from: str | os.PathLike | None,
    init_from: str | os.PathLike | None,
    should_stop: Callable[[], bool] | None,
    val_samples: Sequence[Any] | None,
) -> Generator[TrainStep | EpochEnd, None, TrainResult]:
    """The body of :func:`train` (which restores torch's thread count around it)."""
    started = time.perf_counter()
    config.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    best_path, last_path = out / BEST_NAME, out / LAST_NAME

    labelled = [s for s in samples if getattr(s, "has_labels", True)]
    if val_samples is None and resume_from is not None:
        train_samples, val_list, _ = resume_data(resume_from, labelled, config)
    elif val_samples is None:
        train_samples, val_list = split_train_val(labelled, config.val_fraction, config.seed)
    else:
        train_samples = labelled
        val_list = [s for s in val_samples if getattr(s, "has_labels", True)]
    if not train_samples:
        raise TrainingError(
            "No labelled training samples: load a dataset with masks, or lower val_fraction."
        )

    device = distributed.rank_device(resolve_device(config.device))  # cuda:LOCAL_RANK
    distributed.check_batch_size(config.batch_size)
    if device.type == "cpu":
        configure_cpu_threads(config.num_threads)
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed crop size: autotune conv algorithms
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    out_channels = 2 if getattr(config, "contour_head", False) else 1
    model = UNet(config.in_channels, config.base_width, config.depth, out_channels=out_channels,
                 training_diameter=training_diameter(train_samples))
    if init_from is not None:
        source = load_checkpoint(init_from, device="cpu")
        _init_weights(model, source.model, init_from)
    model.to(device)
    # channels_last speeds convolutions up on CUDA (tensor cores) and on CPU (oneDNN).
    channels_last = device.type in ("cuda", "cpu")
    if channels_last:
        model.to(memory_format=torch.channels_last)
    # The compiled module shares the parameters; checkpoints and validation use `model`.
    step_model = torch.compile(model) if config.compile and device.type == "cuda" else model
    compiling = step_model is not model

    decay, no_decay = [], []
    for param in model.parameters():
        (decay if param.ndim > 1 else no_decay).append(param)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
        fused=device.type == "cuda",  # one kernel for the whole update instead of many
    )
    dtype = amp_dtype(device) if config.amp else None
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    loss_fn = HeadsLoss()

    steps = config.steps_per_epoch or math.ceil(len(train_samples) / config.batch_size)
    total_steps = steps * config.epochs
    start_epoch, start_step, global_step = 1, 1, 0
    best_iou: float | None = None
    stale_epochs = 0
    history: list[EpochEnd] = []

    if resume_from is not None:
        try:
            weights, state, meta = load_train_state(resume_from)
        except CheckpointError as exc:
            raise TrainingError(f"Cannot resume: {exc}") from exc
        saved = meta.get("architecture", {})
        if (saved.get("base_width"), saved.get("depth"), saved.get("in_channels")) != (
            config.base_width, config.depth, config.in_channels
        ):
            raise TrainingError(
                f"Cannot resume from {resume_from}: it is a {saved} model but the config asks "
                f"for base_width={config.base_width}, depth={config.depth}."
            )
        load_state_strict(model, {k: v.to(device) for k, v in weights.items()}, Path(resume_from))
        _restore_optimizer(optimizer, state)
        resume = meta["resume"]
        rng.bit_generator.state = resume["numpy_rng"]
        if "torch_rng" in state:
            torch.set_rng_state(state["torch_rng"])
        global_step = int(resume["global_step"])
        best_iou = resume.get("best_val_iou")
        stale_epochs = int(resume.get("stale_epochs", 0))
        if config.early_stopping_patience is not None \
                and stale_epochs >= config.early_stopping_patience:
            stale_epochs = 0  # it had stopped early, and is asked to go on (h_rev23, M5)
        # the time already trained counts against the budget and moves the schedule: a
        # resumed run got a whole new budget at the top of its rate (h_rev23, M2)
        started -= time_left_check(float(resume.get("elapsed_s") or 0.0), config)
        if resume.get("epoch_complete", True):
            start_epoch, start_step = int(resume["epoch"]) + 1, 1
        else:
            start_epoch, start_step = int(resume["epoch"]), int(resume["step"]) + 1
        if scaler is not None and resume.get("grad_scaler"):
            scaler.load_state_dict(resume["grad_scaler"])
        for item in meta.get("history", []):
            history.append(EpochEnd(**{**item, "checkpoint": Path(item["checkpoint"])}))

    sampler = CropSampler(
        train_samples, config.crop_size, AugmentSettings.from_config(config), device=device,
        contours=out_channels > 1,
    )
    probabilities = sampling_probabilities(train_samples, config.modality_balance)
    data = data_description(train_samples, val_list)
    val_ids = tuple(data["val_ids"])

    def metadata(metrics: dict) -> dict:
        return {
            "metrics": metrics,
            "training_data": data,
            "history": [h.to_dict() for h in history],
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "device": str(device),
            "processes": distributed.world_size(),
        }

    def save(path: Path, metrics: dict, epoch: int, step: int, complete: bool) -> Path:
        tensors = _optimizer_tensors(optimizer)
        tensors["torch_rng"] = torch.get_rng_state()
        scalars = {
            "epoch": epoch,
            "step": step,
            "epoch_complete": complete,
            "global_step": global_step,
            "best_val_iou": best_iou,
            "stale_epochs": stale_epochs,
            "elapsed_s": time.perf_counter() - started,  # trained so far, resumes included
            "numpy_rng": rng.bit_generator.state,
            "grad_scaler": scaler.state_dict() if scaler is not None else None,
        }
        return save_checkpoint(
            path, model, config, metadata(metrics), train_state=(tensors, scalars)
        )

    step_time = None  # smoothed seconds per step
    val_time = None  # seconds per validation

    def n_val_rounds_left(epoch: int) -> int:
        if not val_list:
            return 0
        return sum(
            1
            for e in range(epoch, config.epochs + 1)
            if e % config.val_every == 0 or e == config.epochs
        )

    def eta(epoch: int, step: int) -> float:
        remaining = total_steps - ((epoch - 1) * steps + step)
        estimate = (step_time or 0.0) * remaining + (val_time or 0.0) * n_val_rounds_left(epoch)
        if config.time_budget_s:
            estimate = min(estimate, config.time_budget_s - (time.perf_counter() - started))
        return max(0.0, estimate)

    def out_of_time() -> bool:
        """The time budget is spent, keeping back the time of one final validation."""
        if not config.time_budget_s:
            return False
        reserve = (val_time or 0.0) if val_list else 0.0
        return time.perf_counter() - started + reserve >= config.time_budget_s

    def cancel(epoch: int, step: int) -> TrainResult:
        if global_step == 0 and resume_from is None:  # a new run, not one step done:
            # its untrained weights were kept as "best", offered and used (h_cli3, M1)
            return TrainResult(best_path, last_path, history, False, True, val_ids, False)
        save(last_path, {"epoch": epoch, "cancelled_at_step": step}, epoch, step, False)
        if not best_path.exists():
            save_checkpoint(best_path, model, config, metadata(  # the epoch under way is not
                {"epoch": epoch, "val_iou": None, "cancelled_at_step": step}))  # done (h_rev25)
        return TrainResult(best_path, last_path, history, False, True, val_ids)

    # Data-parallel training under torchrun (no-ops otherwise): DDP, global-batch loss.
    step_model = distributed.wrap_model(step_model, device)
    loss_fn = distributed.global_batch_loss(loss_fn)
    start_best(resume_from, best_path, keep=init_from)  # not another run's (h_rev26)

    epoch = start_epoch
    step = start_step - 1
    try:
        for epoch in range(start_epoch, config.epochs + 1):
            model.train()
            losses = []
            first = start_step if epoch == start_epoch else 1
            for step in range(first, steps + 1):
                if distributed.any_rank(stop_requested(should_stop)):
                    return cancel(epoch, step - 1)
                tic = time.perf_counter()
                # p=None draws as rng.integers does: runs without balance are unchanged
                indices = rng.choice(len(sampler), config.batch_size, p=probabilities)
                schedule_step = global_step
                if config.time_budget_s:
                    spent = (time.perf_counter() - started) / config.time_budget_s
                    schedule_step = max(global_step, int(spent * total_steps))
                for group in optimizer.param_groups:
                    group["lr"] = config.learning_rate * learning_rate_factor(
                        schedule_step, total_steps, config
                    )
                try:
                    x, y = sampler.batch(rng, indices)  # on the GPU: can run out of memory
                    x, y = distributed.shard_batch(x, y)  # this rank's slice (torchrun)
                    if channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    loss = _train_step(step_model, optimizer, loss_fn, x, y, dtype, scaler)
                except (RuntimeError, MemoryError) as exc:  # CUDA OOM is a RuntimeError
                    if _is_out_of_memory(exc):
                        raise TrainingError(
                            f"{device} ran out of memory with batch_size={config.batch_size} "
                            f"and crop_size={config.crop_size}: lower the batch size or the "
                            "crop size (or base_width)."
                        ) from exc
                    if _is_compile_error(exc):
                        raise TrainingError(
                            f"torch.compile could not compile the model ({exc}). Turn the "
                            "compile option off: training then runs uncompiled."
                        ) from exc
                    raise
                if not math.isfinite(loss):
                    raise NonFiniteLossError(
                        f"The training loss became {loss} at epoch {epoch}, step {step}. Training "
                        f"diverged: lower the learning rate (now {config.learning_rate:g}; try "
                        f"{config.learning_rate / 3:g}), or turn off amp. "
                        + (f"The best checkpoint so far is kept at {best_path}."
                           if best_path.exists() else "No checkpoint was saved yet.")
                    )
                global_step += 1
                distributed.inject_fault(global_step)  # test-only (torchrun restarts)
                losses.append(loss)
                elapsed = time.perf_counter() - tic
                if compiling:  # the first compiled step includes compiling: not a step's time
                    compiling = False
                else:
                    step_time = elapsed if step_time is None else 0.9 * step_time + 0.1 * elapsed
                yield TrainStep(epoch, config.epochs, step, steps, loss,
                                config.batch_size / (step_time or elapsed), eta(epoch, step))
                if distributed.any_rank(out_of_time()):
                    break
            train_loss = float(np.mean(losses)) if losses else float("nan")
            val_loss = val_iou = None
            is_best = False
            final = epoch == config.epochs or distributed.any_rank(out_of_time())
            validated = bool(val_list) and (epoch % config.val_every == 0 or final)
            if validated:
                tic = time.perf_counter()
                model.eval()
                try:
                    val_loss, val_iou = distributed.from_rank0(  # others wait (torchrun)
                        lambda: validate(model, val_list, device))
                except (RuntimeError, MemoryError) as exc:
                    if not _is_out_of_memory(exc):
                        raise
                    raise TrainingError(
                        f"{device} ran out of memory while validating on whole images; use "
                        "fewer or smaller validation images, or train on the CPU."
                    ) from exc
                val_time = time.perf_counter() - tic
                if best_iou is None or val_iou > best_iou:
                    best_iou, is_best, stale_epochs = val_iou, True, 0
                else:
                    stale_epochs += 1
            elif not val_list and (best_iou is None or final):
                is_best = True  # nothing to select on: the latest model is the best we have
            metrics = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                       "val_iou": val_iou, "best_val_iou": best_iou}
            stopping = (  # only on a validated epoch (h_rev23, M5)
                validated and config.early_stopping_patience is not None
                and stale_epochs >= config.early_stopping_patience
            )
            end = EpochEnd(epoch, config.epochs, train_loss, val_loss, val_iou, best_iou,
                           is_best, last_path, eta(epoch + 1, 0),
                           time.perf_counter() - started)
            history.append(end)
            if is_best:
                save_checkpoint(best_path, model, config, metadata(metrics))
            save(last_path, metrics, epoch, steps, True)
            yield end
            if stopping or final:
                if not best_path.exists():  # resumed into another folder, never beaten
                    save_checkpoint(best_path, model, config, metadata(metrics))
                return TrainResult(best_path, last_path, history, stopping, False, val_ids)
    except GeneratorExit:
        # The caller closed the generator (e.g. worker.quit()): keep what we have. When it
        # was closed at an EpochEnd, that epoch's checkpoints are already written.
        if not history or history[-1].epoch != epoch:
            cancel(epoch, step)
        raise
    if not best_path.exists():
        save_checkpoint(best_path, model, config, metadata({"epoch": epoch}))
    return TrainResult(best_path, last_path, history, False, False, val_ids)


def _init_weights(model: UNet, source: torch.nn.Module, init_from: Any) -> None:
    """Copy a checkpoint's weights into ``model`` (fine-tuning, or v1 -> two heads).

    A one-output (v1) source initialises the foreground channel of a two-output model;
    the contour channel keeps its fresh initialisation. A source that records its
    training diameter passes it on (fine-tuning keeps the scale the network knows).
    """
    mine = {k: v for k, v in model.architecture().items()
            if k not in ("out_channels", "training_diameter")}
    theirs = {k: v for k, v in source.architecture().items()
              if k not in ("out_channels", "training_diameter")}
    if mine != theirs or source.out_channels > model.out_channels:
        raise TrainingError(
            f"init_from={init_from} is a {source.architecture()} model but the config "
            f"asks for {model.architecture()}; set base_width/depth (and contour_head) to match."
        )
    state = source.state_dict()
    if source.out_channels < model.out_channels:
        own = model.state_dict()
        for key in ("head.weight", "head.bias"):
            merged = own[key].clone()
            merged[: source.out_channels] = state[key]
            state[key] = merged
    model.load_state_dict(state)
    if getattr(source, "training_diameter", None):
        model.training_diameter = float(source.training_diameter)


def _is_out_of_memory(exc: BaseException) -> bool:
    """True for out-of-memory errors (CUDA, MPS and the CPU allocator)."""
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if isinstance(exc, MemoryError) or (oom is not None and isinstance(exc, oom)):
        return True
    text = str(exc).lower()
    # CPU: "DefaultCPUAllocator: can't allocate memory: you tried to allocate ..."
    return "out of memory" in text or ("allocat" in text and "memory" in text)


def _is_compile_error(exc: BaseException) -> bool:
    """True for errors raised by torch.compile (dynamo tracing or the inductor backend)."""
    return type(exc).__module__.startswith(("torch._dynamo", "torch._inductor"))


def _train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    dtype: torch.dtype | None,
    scaler: Any,
) -> float:
    """One optimisation step; returns the loss as a float."""
    optimizer.zero_grad(set_to_none=True)
    if dtype is not None:
        with torch.autocast(x.device.type, dtype=dtype):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
    else:
        loss = loss_fn(model(x), y)
    return apply_loss(loss, optimizer, scaler)


def apply_loss(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: Any) -> float:
    """Back-propagate ``loss`` and step ``optimizer`` unless it is not finite.

    Parameters
    ----------
    loss : torch.Tensor
        The step's scalar loss.
    optimizer : torch.optim.Optimizer
        The optimiser to step.
    scaler : torch.amp.GradScaler or None
        The fp16 gradient scaler, if any.

    Returns
    -------
    float
        The loss; a NaN/inf loss is returned without any update.
    """
    value = float(loss.detach())
    if not math.isfinite(value):
        return value
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return value
