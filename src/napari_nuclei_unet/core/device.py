"""Compute device resolution and listing.

torch is imported inside the functions, so listing helpers can be imported by
light modules; :func:`available_devices` does import torch when called.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch


class DeviceError(ValueError):
    """A requested device does not exist or is not available on this machine."""


class DeviceNotHere(DeviceError):
    """A known kind of device (``cuda``, ``cuda:N``, ``mps``) that this machine lacks."""


def device_here(device: Any) -> Any:
    """``device`` for this process: a name resolved here, None kept (the model's own).

    A cluster's worker resolves the name it was given, so ``"auto"`` is its own GPU
    (review h_rev17, F6); a :class:`torch.device` passes as it is.
    """
    return resolve_device(device) if isinstance(device, str) else device


def device_here_or_cpu(device: Any) -> Any:
    """:func:`device_here`, or the CPU when this machine lacks that GPU.

    For the little a cluster's head computes itself (a large image's nucleus size):
    ``--device cuda`` names the workers' GPUs, which a login node may not have (review
    h_rev19, M2). A name no machine has (a typo) still raises :class:`DeviceError`.
    """
    try:
        return device_here(device)
    except DeviceNotHere:  # one grammar of device names: resolve_device's (h_rev20, L6)
        import torch

        return torch.device("cpu")


def resolve_device(spec: str | None = "auto") -> torch.device:
    """Turn a device string into an available :class:`torch.device`.

    Parameters
    ----------
    spec : str or None, default "auto"
        ``"auto"`` (or None) picks CUDA, then Apple MPS, then CPU. Explicit values:
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``.

    Returns
    -------
    torch.device

    Raises
    ------
    DeviceError
        When the string is not a device name, or the device is not available here
        (the message lists those that are).
    """
    import torch

    text = "auto" if spec is None else str(spec).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = ", ".join(repr(d) for d, _ in available_devices())
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match:
        if not torch.cuda.is_available():
            raise DeviceNotHere(
                f"Device {spec!r} requested but CUDA is not available (no NVIDIA GPU, or this "
                f"torch build has no CUDA support). Available: {available}; use 'auto' or 'cpu'."
            )
        index = int(match.group(1) or torch.cuda.current_device())
        if index >= torch.cuda.device_count():
            raise DeviceNotHere(
                f"Device {spec!r} requested but only {torch.cuda.device_count()} CUDA device(s) "
                f"exist. Available: {available}."
            )
        return torch.device("cuda", index)
    if text == "mps":
        if not _mps_available():
            raise DeviceNotHere(
                f"Device 'mps' requested but Apple MPS is not available. Available: {available}."
            )
        return torch.device("mps")
    raise DeviceError(
        f"Unknown device {spec!r}: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'. "
        f"Available here: {available}."
    )


def available_devices() -> list[tuple[str, str]]:
    """List the devices usable on this machine, best first.

    Returns
    -------
    list of (str, str)
        ``(device id, human label)`` pairs, e.g. ``("cuda:0", "GPU 0: NVIDIA H100 (80 GB)")``,
        always ending with ``("cpu", "CPU (N cores)")``.
    """
    import torch

    devices: list[tuple[str, str]] = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            gib = props.total_memory / 2**30
            devices.append((f"cuda:{i}", f"GPU {i}: {props.name} ({gib:.0f} GiB)"))
    if _mps_available():
        devices.append(("mps", "Apple GPU (MPS)"))
    devices.append(("cpu", f"CPU ({physical_cpu_count()} cores)"))
    return devices


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def usable_cores() -> int:
    """The (logical) cores this process may use: a container's or a Slurm job's share.

    The one rule for the dataset decoders and a local cluster's workers (h_rev16 L4;
    review h_rev19, L6: it was written twice).
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@lru_cache(maxsize=1)
def physical_cpu_count() -> int:
    """Number of physical CPU cores usable by this process (at least 1).

    Uses the CPU affinity mask and, on Linux, ``/proc/cpuinfo`` to discount
    hyper-threads; falls back to the logical count elsewhere.
    """
    try:
        usable = sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        usable = list(range(os.cpu_count() or 1))
    try:
        cores: dict[int, tuple[str, str]] = {}
        processor = physical = core = None
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in [*handle, "\n"]:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "processor":
                    processor = int(value)
                elif key == "physical id":
                    physical = value
                elif key == "core id":
                    core = value
                elif not key and processor is not None:
                    cores[processor] = (physical or "0", core or str(processor))
                    processor = physical = core = None
        physical_cores = {cores.get(cpu, ("?", str(cpu))) for cpu in usable}
        return max(1, len(physical_cores))
    except (OSError, ValueError):
        return max(1, len(usable))


def configure_cpu_threads(num_threads: int | None = None) -> int:
    """Set torch's intra-op thread count for CPU work.

    Parameters
    ----------
    num_threads : int, optional
        Threads to use; default the number of physical cores (hyper-threads slow
        convolutions down rather than up).

    Returns
    -------
    int
        The thread count now in effect.
    """
    import torch

    threads = int(num_threads) if num_threads else physical_cpu_count()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


@contextmanager
def restored_cpu_threads() -> Iterator[None]:
    """Put torch's process-wide thread count back as it was when the block ends.

    Training and fine-tuning set their own thread count (:func:`configure_cpu_threads`);
    this keeps that setting from leaking into later work in the same process, such as
    predictions made in napari. Also around ``yield from``: a generator closed early
    or failing puts the count back too.
    """
    import torch

    before = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def cpu_has_fast_bf16() -> bool:
    """True when this CPU runs bf16 convolutions natively (AVX512-BF16 or AMX, via oneDNN).

    On such CPUs bf16 autocast roughly halves convolution time (measured on the
    development machine: a base-16 U-Net training step 9.2 s -> 4.3 s, prediction of a
    256 x 256 image 229 ms -> 112 ms, both under load).
    """
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype to use on ``device``, or None for full precision.

    bf16 on CUDA devices that support it, else fp16 (to be used with a GradScaler);
    bf16 on CPUs with native bf16 support (:func:`cpu_has_fast_bf16`); None on other
    CPUs and on MPS.
    """
    import torch

    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_fast_bf16():
        return torch.bfloat16
    return None
