"""Data-parallel training with PyTorch DistributedDataParallel under ``torchrun``.

``torchrun --standalone --nproc_per_node=N nuclei-unet train DATA --out RUN ...`` starts
N copies of the command; torchrun's environment variables (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``...) tell each copy its place. :func:`session` turns them
into a process group (NCCL on CUDA, one GPU per rank chosen by ``LOCAL_RANK``; gloo on
the CPU); without torchrun every function here is a no-op and training is the plain
single-process loop.

How a step is split (the global batch stays ``config.batch_size``):

- every rank draws the same global batch from the same seeded generator (so the
  sampling, the augmentation and the random state in checkpoints are those of a
  single-process run) and keeps its own slice of ``batch_size / world_size`` crops
  (:func:`shard_batch`): the ranks train on different crops;
- the loss is computed on the whole global batch: each rank gathers every rank's logits
  and targets (:func:`global_batch_loss`, autograd-aware) so losses that are not a mean
  over images (the batch Dice) are those of a single-process run; DDP then averages the
  gradients;
- on CUDA, BatchNorm layers become SyncBatchNorm (statistics over the global batch).
  PyTorch's SyncBatchNorm does not run on the CPU, so CPU (gloo) ranks normalise with
  the statistics of their own slice: CPU runs are close to, not equal to, a
  single-process run;
- validation runs on rank 0 while the others wait; its result, stop requests (Ctrl-C,
  time limit) and early stopping reach every rank (:func:`any_rank`,
  :func:`from_rank0`), so all ranks stop together; only rank 0 writes checkpoints.

This module needs only torch (``torch.distributed``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch

T = TypeVar("T")

#: Test-only: ``"RANK:STEP:MARKER"`` makes rank RANK exit at global step STEP once
#: (while MARKER does not exist; it is created), to test torchrun's ``--max-restarts``.
FAULT_ENV = "NUCLEI_UNET_TEST_KILL_RANK"
#: Test-only: when "1", BatchNorm layers use their running statistics while training, so
#: that a CPU run with several ranks can be compared exactly with a single-process run.
FREEZE_BN_ENV = "NUCLEI_UNET_TEST_FREEZE_BATCHNORM"


class DistributedError(ValueError):
    """The torchrun set-up or options cannot be used (message says why and what to do)."""


class BatchSplitError(DistributedError):
    """The global batch does not split over the processes: the same in every process."""


def launched_by_torchrun() -> bool:
    """Whether this process was started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def is_active() -> bool:
    """Whether a process group with more than one rank is running."""
    return (torch.distributed.is_available() and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1)


def rank() -> int:
    """Rank of this process (0 without torchrun)."""
    return torch.distributed.get_rank() if is_active() else 0


def world_size() -> int:
    """Number of ranks (1 without torchrun)."""
    return torch.distributed.get_world_size() if is_active() else 1


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0, or no torchrun)."""
    if is_active():
        return rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def local_rank() -> int:
    """Rank on this machine, torchrun's ``LOCAL_RANK`` (0 without torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def restart_count() -> int:
    """How many times torchrun restarted the group (``TORCHELASTIC_RESTART_COUNT``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


@contextlib.contextmanager
def session(device: str = "auto") -> Iterator[None]:
    """Initialise the process group from torchrun's variables, and destroy it on exit.

    Parameters
    ----------
    device : str, default "auto"
        The configured training device: NCCL is used when it resolves to CUDA (and each
        rank is pinned to GPU ``LOCAL_RANK``), gloo otherwise.

    Yields
    ------
    None
        Inside, :func:`is_active` is True under torchrun with ``WORLD_SIZE > 1``.

    Raises
    ------
    DistributedError
        When there are more ranks on this machine than GPUs.
    """
    if not launched_by_torchrun() or torch.distributed.is_initialized():
        yield
        return
    use_cuda = torch.cuda.is_available() and str(device).lower() in ("auto", "cuda") or \
        str(device).lower().startswith("cuda")
    if use_cuda:
        if local_rank() >= torch.cuda.device_count():
            raise DistributedError(
                f"torchrun started {os.environ.get('LOCAL_WORLD_SIZE', '?')} processes on "
                f"this machine but it has {torch.cuda.device_count()} GPU(s): use "
                "--nproc_per_node at most the number of GPUs (one GPU per process)."
            )
        torch.cuda.set_device(local_rank())
    backend = "nccl" if use_cuda else "gloo"
    torch.distributed.init_process_group(backend=backend, **_restart_safe_store())
    try:
        yield
        # leave together: a rank that tears gloo down while another is still finishing
        # (rank 0 writes the last checkpoint) can make the other abort at exit
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def leave_worker(exit_code: int) -> int:
    """End a torchrun worker now, with ``exit_code``, once its work is written.

    After training, gloo's threads can still release tensors that hold Python objects;
    during the interpreter's shutdown such a thread can no longer take the GIL, Python
    ends the thread from inside C++ code, and the C++ runtime aborts the whole process
    ("terminate called without an active exception", SIGABRT). torchrun then reports
    the finished run as failed and stops the other ranks. So a worker whose process
    group is closed flushes its output and exits without the interpreter's shutdown
    (``os._exit``). Outside torchrun: returns ``exit_code``.
    """
    if not launched_by_torchrun() or torch.distributed.is_initialized():
        return exit_code
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(exit_code)


def _restart_safe_store() -> dict:
    """Store arguments for ``init_process_group`` that survive torchrun restarts.

    torchrun shares its rendezvous TCPStore with the workers; its keys outlive a restart,
    so a restarted gloo group can read the previous group's addresses and fail to
    connect (pytorch/pytorch#135712). Prefixing the keys with the restart count gives
    every attempt its own. Without torchrun's agent store: torch's defaults.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return {}
    from datetime import timedelta

    size = int(os.environ["WORLD_SIZE"])
    base = torch.distributed.TCPStore(
        os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), size, is_master=False,
        timeout=timedelta(minutes=10),
    )
    store = torch.distributed.PrefixStore(f"nuclei-unet/attempt-{restart_count()}", base)
    return {"store": store, "rank": int(os.environ["RANK"]), "world_size": size}


def rank_device(device: torch.device) -> torch.device:
    """One GPU per rank: ``cuda`` becomes ``cuda:LOCAL_RANK`` under torchrun."""
    if is_active() and device.type == "cuda":
        return torch.device("cuda", local_rank())
    return device


def check_batch_size(batch_size: int) -> int:
    """The per-rank batch size; the global ``batch_size`` must split evenly."""
    size = world_size()
    if batch_size % size:
        raise BatchSplitError(
            f"batch_size {batch_size} cannot be split evenly over {size} processes: "
            f"--batch-size is the global batch; use a multiple of {size}."
        )
    return batch_size // size


def shard_batch(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Slice of a global batch for this rank (the whole batch without torchrun)."""
    if not is_active():
        return x, y
    part = check_batch_size(x.shape[0])
    start = rank() * part
    return x[start:start + part], y[start:start + part]


def _gather(value: Any, autograd: bool) -> Any:
    """Concatenate ``value`` (tensor, or tuple/list/dict of them) over ranks, on dim 0."""
    if isinstance(value, torch.Tensor):
        if autograd:
            from torch.distributed.nn.functional import all_gather

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # deprecated, not replaced
                parts = all_gather(value.contiguous())
        else:
            parts = [torch.empty_like(value) for _ in range(world_size())]
            torch.distributed.all_gather(parts, value.contiguous())
        return torch.cat(list(parts), dim=0)
    if isinstance(value, (tuple, list)):
        return type(value)(_gather(v, autograd) for v in value)
    if isinstance(value, dict):
        return {k: _gather(v, autograd) for k, v in value.items()}
    return value


class _GlobalBatchLoss(torch.nn.Module):
    """Compute ``loss_fn`` on the logits and targets of every rank (see module notes)."""

    def __init__(self, loss_fn: torch.nn.Module) -> None:
        super().__init__()
        self.loss_fn = loss_fn

    def forward(self, logits: Any, target: Any) -> torch.Tensor:
        """The global-batch loss, the same value on every rank."""
        return self.loss_fn(_gather(logits, autograd=True), _gather(target, autograd=False))


def global_batch_loss(loss_fn: torch.nn.Module) -> torch.nn.Module:
    """Wrap ``loss_fn`` so each rank computes the loss of the whole global batch.

    Every rank computes the same loss value; the gradient of a rank's logits comes back
    summed over the ranks' identical copies (``world_size`` times the single-process
    gradient), and DDP's averaging divides it out again: the parameter gradient is the
    single-process gradient of the global batch. Without torchrun, ``loss_fn`` itself.
    """
    return _GlobalBatchLoss(loss_fn) if is_active() else loss_fn


def wrap_model(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The module to train: ``model`` in DistributedDataParallel under torchrun.

    ``model`` (which keeps the parameters) is what validation and checkpoints use. On
    CUDA its BatchNorm layers are converted to SyncBatchNorm in place first.
    """
    _maybe_freeze_batchnorm(model)
    if not is_active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if converted is not model:  # only happens for a bare BatchNorm module
            raise DistributedError("the model's BatchNorm layers could not be synchronised")
        return DistributedDataParallel(model, device_ids=[device.index])
    return DistributedDataParallel(model)


def _maybe_freeze_batchnorm(model: torch.nn.Module) -> None:
    if os.environ.get(FREEZE_BN_ENV) != "1":
        return

    def use_running_statistics(module: torch.nn.Module, args: Any) -> None:
        module.training = False

    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(use_running_statistics)


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is True on at least one (e.g. a stop request)."""
    if not is_active():
        return bool(flag)
    device = torch.device("cuda", local_rank()) if \
        torch.distributed.get_backend() == "nccl" else torch.device("cpu")
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item() > 0)


def from_rank0(compute: Callable[[], T]) -> T:
    """Run ``compute`` on rank 0 only and return its (picklable) result on every rank.

    The other ranks wait meanwhile. An exception on rank 0 is raised there; torchrun
    then stops the other ranks.
    """
    if not is_active():
        return compute()
    box: list[Any] = [compute() if rank() == 0 else None]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def main_only(function: Callable[..., T]) -> Callable[..., T | None]:
    """``function`` on rank 0; a no-op returning its first argument on other ranks.

    Used for checkpoint writers: ``save_checkpoint(path, ...)`` returns ``path``.
    """

    def call(*args: Any, **kwargs: Any) -> Any:
        if is_main():
            return function(*args, **kwargs)
        return args[0] if args else None

    return call


def inject_fault(global_step: int) -> None:
    """Test-only: exit this rank at a step, once (see :data:`FAULT_ENV`)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec or not is_active():
        return
    target_rank, step, marker = spec.split(":", 2)
    if rank() == int(target_rank) and global_step == int(step) and not Path(marker).exists():
        Path(marker).write_text(f"rank {rank()} exited at step {global_step}\n")
        os._exit(17)
