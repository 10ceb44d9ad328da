"""Training hyperparameters: one dataclass, saved beside every checkpoint.

This module never imports torch, so it can be used by the reader, the widgets'
forms and checkpoint metadata reading without paying for a torch import.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

SCHEDULES = ("cosine", "constant")
#: Largest U-Net depth accepted (2**8 = 256 px minimum input).
MAX_DEPTH = 8
#: Largest scale jitter accepted: crops resized by 1/5 to 5.
MAX_AUGMENT_SCALE = 4.0


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class ConfigError(ValueError):
    """A training configuration has an unknown key or an invalid value."""


@dataclass
class TrainConfig:
    """Hyperparameters of one training run.

    The whole object is stored (as JSON) with every checkpoint, so a model can be
    rebuilt and a run resumed from the checkpoint alone.

    Attributes
    ----------
    base_width : int
        Channels of the first U-Net level; doubled at every level down.
    depth : int
        Number of down-sampling steps (the input is padded to a multiple of ``2**depth``).
    in_channels : int
        Channels of the network input (3: every image is read as colour).
    crop_size : int
        Side of the square random crops taken at native resolution for training.
    batch_size : int
        Crops per optimisation step.
    epochs : int
        Maximum number of epochs.
    steps_per_epoch : int or None
        Optimisation steps per epoch. ``None`` means one pass over the training
        images (``ceil(n_train / batch_size)`` steps); a fixed number makes small and
        huge datasets behave alike (an epoch is then that many random crops batches).
    learning_rate : float
        Peak learning rate of AdamW.
    schedule : str
        ``"cosine"`` (linear warm-up then cosine decay to ``min_lr_fraction``) or
        ``"constant"`` (linear warm-up then constant).
    warmup_fraction : float
        Fraction of all steps spent warming the learning rate up linearly from ~0.
    min_lr_fraction : float
        Final learning rate of the cosine schedule, as a fraction of the peak.
    weight_decay : float
        AdamW decoupled weight decay.
    val_fraction : float
        Fraction of the samples held out for validation (per modality), when no
        explicit validation samples are given.
    seed : int
        Seed of the split, the weights initialisation, the crops and the augmentations.
    augment_flips : bool
        Random horizontal and vertical flips.
    augment_rot90 : bool
        Random 90-degree rotations.
    augment_intensity : bool
        Mild brightness/contrast/gamma/colour jitter.
    augment_invert : bool
        Randomly invert images (bright-background brightfield then looks like
        dark-background fluorescence) and randomly convert to grey.
    augment_scale : float
        Random scale jitter: crops are resized by a factor in ``[1/(1+s), 1+s]``
        (0 disables it).
    augment_strong : bool
        Stronger appearance augmentation for images unlike the training set: H&E
        stain jitter (colour deconvolution), hue/saturation, blur/defocus, wider gamma,
        and strong dimming with 8-bit quantisation.
    contour_head : bool
        Train a second output channel, the nuclei's contours, used to split touching
        nuclei (seeded watershed on the network's own outputs).
    modality_balance : float
        How much rarer modalities are favoured when training crops are drawn: an
        image is picked with probability proportional to ``n ** -modality_balance``,
        where ``n`` is the number of training images of its modality. 0: every image
        alike (a modality is seen as often as it occurs); 1: every modality alike;
        0.5: in between.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
    amp : bool
        Mixed precision: on CUDA bf16 where supported, else fp16 with a GradScaler; on
        CPUs with native bf16 (AVX512-BF16/AMX) bf16, about twice as fast as fp32.
        Ignored on MPS and other CPUs.
    compile : bool
        Compile the model with ``torch.compile`` for training on CUDA (about 30% more
        crops per second for wide models, after a minute of compiling at the start).
        Ignored on the CPU and MPS.
    early_stopping_patience : int or None
        Stop after this many validations without a better validation IoU (``None``:
        never); epochs when ``val_every`` is 1. A resumed run that had stopped so counts
        again from its resume.
    num_threads : int or None
        CPU threads for torch (``None``: the number of physical cores).
    val_every : int
        Validate every this many epochs (the last epoch is always validated).
    time_budget_s : float or None
        Wall-clock budget of the run in seconds (training and validation). When set,
        the learning-rate schedule runs on ``max(step fraction, time fraction)`` and the
        run ends, with a final validation, when the budget (less the expected time of
        that validation) is spent, even before ``epochs``. ``None``: no limit.
    """

    base_width: int = 16
    depth: int = 4
    in_channels: int = 3
    crop_size: int = 256
    batch_size: int = 8
    epochs: int = 40
    steps_per_epoch: int | None = 50
    learning_rate: float = 2e-3
    schedule: str = "cosine"
    warmup_fraction: float = 0.03
    min_lr_fraction: float = 0.02
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    seed: int = 0
    augment_flips: bool = True
    augment_rot90: bool = True
    augment_intensity: bool = True
    augment_invert: bool = True
    augment_scale: float = 0.25
    augment_strong: bool = False
    contour_head: bool = False
    modality_balance: float = 0.0
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    early_stopping_patience: int | None = None
    num_threads: int | None = None
    val_every: int = 1
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the values; raise :class:`ConfigError` naming the bad field.

        Raises
        ------
        ConfigError
            When a value is out of range.
        """
        positive = ("base_width", "depth", "in_channels", "crop_size", "batch_size", "epochs",
                    "val_every")
        for name in positive:
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ConfigError(f"TrainConfig.{name} must be a positive integer, got {value!r}.")
        for name in ("steps_per_epoch", "early_stopping_patience", "num_threads"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise ConfigError(
                    f"TrainConfig.{name} must be None or a positive integer, got {value!r}."
                )
        if not _is_int(self.seed) or not 0 <= self.seed < 2**32:
            raise ConfigError(
                f"TrainConfig.seed must be a whole number from 0 to {2**32 - 1} (any such "
                f"number; the same seed repeats a run), got {self.seed!r}."
            )
        if self.depth > MAX_DEPTH:
            raise ConfigError(
                f"TrainConfig.depth must be at most {MAX_DEPTH} (each level halves the image), "
                f"got {self.depth}."
            )
        for name in ("augment_flips", "augment_rot90", "augment_intensity", "augment_invert",
                     "amp", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"TrainConfig.{name} must be true or false, got {getattr(self, name)!r}."
                )
        for name in ("device", "schedule"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(
                    f"TrainConfig.{name} must be text, got {getattr(self, name)!r}."
                )
        for name in ("learning_rate", "warmup_fraction", "min_lr_fraction", "weight_decay",
                     "val_fraction", "augment_scale", "modality_balance", "time_budget_s"):
            value = getattr(self, name)
            if value is None and name == "time_budget_s":
                continue
            if not _is_number(value) or not math.isfinite(value):
                raise ConfigError(
                    f"TrainConfig.{name} must be a finite number, got {value!r}."
                )
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"TrainConfig.schedule must be one of {SCHEDULES}, got {self.schedule!r}."
            )
        if not 0 < self.learning_rate <= 1:
            raise ConfigError(
                f"TrainConfig.learning_rate must be > 0 and at most 1 (typical: 1e-4 to 1e-2), "
                f"got {self.learning_rate}."
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(
                f"TrainConfig.val_fraction must be in [0, 1), got {self.val_fraction}."
            )
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ConfigError(
                f"TrainConfig.warmup_fraction must be in [0, 1), got {self.warmup_fraction}."
            )
        if not 0.0 <= self.min_lr_fraction <= 1.0:
            raise ConfigError(
                f"TrainConfig.min_lr_fraction must be in [0, 1] (a fraction of the peak "
                f"learning rate), got {self.min_lr_fraction}."
            )
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ConfigError(
                f"TrainConfig.time_budget_s must be None or > 0, got {self.time_budget_s}."
            )
        if self.weight_decay < 0:
            raise ConfigError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay}.")
        if not 0.0 <= self.augment_scale <= MAX_AUGMENT_SCALE:
            raise ConfigError(
                f"TrainConfig.augment_scale must be in [0, {MAX_AUGMENT_SCALE:g}] (0.25 resizes "
                f"crops by 0.8 to 1.25), got {self.augment_scale}."
            )
        if not 0.0 <= self.modality_balance <= 1.0:
            raise ConfigError(
                f"TrainConfig.modality_balance must be in [0, 1], got {self.modality_balance}."
            )
        multiple = 2**self.depth
        if self.crop_size % multiple:
            raise ConfigError(
                f"TrainConfig.crop_size ({self.crop_size}) must be a multiple of {multiple} "
                f"(TrainConfig.depth {self.depth} halves the crops {self.depth} times); try "
                f"{self.crop_size - self.crop_size % multiple or multiple}."
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build a configuration from a dict made by :meth:`to_dict`.

        Missing keys take their defaults (so older checkpoints still load).

        Parameters
        ----------
        data : dict
            Field names to values.

        Returns
        -------
        TrainConfig

        Raises
        ------
        ConfigError
            When ``data`` has keys that are not fields of :class:`TrainConfig`.
        """
        if not isinstance(data, dict):
            raise ConfigError(
                f"A training configuration must be a JSON object of TrainConfig fields, got a "
                f"{type(data).__name__}."
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"Unknown TrainConfig key(s) {unknown}; known keys are {sorted(known)}. "
                "The checkpoint may come from a newer version of napari-nuclei-unet."
            )
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        """Return a copy with some fields changed."""
        return dataclasses.replace(self, **changes)
