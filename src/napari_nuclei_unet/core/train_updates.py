"""What training yields and returns: progress updates, the result, the errors.

Plain dataclasses (no torch), so front ends can import them without loading torch:
:func:`napari_nuclei_unet.core.training.train` yields :class:`TrainStep` after every
step and :class:`EpochEnd` after every epoch, and returns a :class:`TrainResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BEST_NAME = "best.safetensors"
LAST_NAME = "last.safetensors"


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to change."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainStep:
    """Progress after one optimisation step.

    Attributes
    ----------
    epoch, epochs : int
        Current epoch (1-based) and the planned number of epochs.
    step, steps : int
        Step within the epoch (1-based) and steps per epoch.
    loss : float
        Training loss of this batch.
    images_per_s : float
        Recent training throughput (crops per second, smoothed).
    eta_s : float
        Estimated seconds until the planned end (training and validation).
    """

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    images_per_s: float
    eta_s: float


@dataclass(frozen=True)
class EpochEnd:
    """Summary after an epoch.

    Attributes
    ----------
    epoch, epochs : int
        Epoch just finished (1-based) and the planned number of epochs.
    train_loss : float
        Mean training loss over the epoch.
    val_loss, val_iou : float or None
        Validation loss and mean per-image foreground IoU at threshold 0.5 (None when
        this epoch was not validated or there is no validation set).
    best_val_iou : float or None
        Best validation IoU so far.
    is_best : bool
        Whether this epoch's model was saved as the best checkpoint.
    checkpoint : pathlib.Path
        The last checkpoint, written at the end of this epoch.
    eta_s : float
        Estimated seconds left.
    elapsed_s : float
        Seconds the run has trained, its earlier (resumed) parts included.
    """

    epoch: int
    epochs: int
    train_loss: float
    val_loss: float | None
    val_iou: float | None
    best_val_iou: float | None
    is_best: bool
    checkpoint: Path
    eta_s: float
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (the checkpoint path as a string)."""
        return {
            "epoch": self.epoch, "epochs": self.epochs, "train_loss": self.train_loss,
            "val_loss": self.val_loss, "val_iou": self.val_iou,
            "best_val_iou": self.best_val_iou, "is_best": self.is_best,
            "checkpoint": str(self.checkpoint), "eta_s": self.eta_s, "elapsed_s": self.elapsed_s,
        }


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`.

    Attributes
    ----------
    best_checkpoint : pathlib.Path
        Checkpoint with the best validation IoU (the last model when nothing was
        validated yet).
    last_checkpoint : pathlib.Path
        Checkpoint of the final weights, with resume state.
    history : list of EpochEnd
        One entry per finished epoch (including those of a resumed run).
    stopped_early : bool
        Early stopping ended the run.
    cancelled : bool
        ``should_stop`` (or closing the generator) ended the run.
    val_ids : tuple of str
        Ids of the validation samples.
    trained : bool
        False for a new run stopped before its first step: nothing was trained, and
        neither checkpoint was written.
    """

    best_checkpoint: Path
    last_checkpoint: Path
    history: list[EpochEnd] = field(default_factory=list)
    stopped_early: bool = False
    cancelled: bool = False
    val_ids: tuple[str, ...] = ()
    trained: bool = True


def epochs_trained(metrics: Any) -> int | None:
    """The epochs a checkpoint's run had trained, from its ``metrics`` (None: not said).

    A run stopped half way (``cancelled_at_step``) records the epoch under way, which is
    not trained (GUI check h_gui41, L1): the Model dock and a package of it counted
    the same run differently (h_gui47, L2).
    """
    epoch = metrics.get("epoch") if isinstance(metrics, dict) else None
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        return None
    return epoch - 1 if metrics.get("cancelled_at_step") is not None else epoch

