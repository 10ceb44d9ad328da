"""What a failed command says: which exceptions are the user's to fix, and in what words.

:func:`napari_nuclei_unet.cli.main` turns every exception into one line (or a traceback
with ``--debug``); this module tells a refusal, bad input, running out of memory, a dask
worker or a torchrun peer lost, and a bug apart. It imports neither torch nor numpy.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import sys

# Exception classes, by module, that mean "the input is wrong", not "the program is wrong".
# They are looked up in sys.modules only: an exception can only come from a loaded module.
_USER_ERRORS_BY_MODULE = {
    "napari_nuclei_unet.core.train_updates": ("TrainingError",),
    "napari_nuclei_unet.core.download": ("DownloadError",),
    "napari_nuclei_unet.core.dataset": ("DatasetError",),
    "napari_nuclei_unet.core.checkpoint": ("CheckpointError",),
    "napari_nuclei_unet.core.finetune": ("FinetuneError",),
}


class UsageError(ValueError):
    """Bad command line input detected by the CLI itself (reported in one line)."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says the computer ran out of memory (CPU or GPU)."""
    if isinstance(exc, MemoryError):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    text = str(exc).lower()
    return "out of memory" in text or ("allocat" in text and "memory" in text)


#: What gloo and NCCL say when another process of the group has gone.
_PEER_LOST = ("connection closed by peer", "connection reset by peer", "broken pipe",
              "remote worker crashing", "nccl communicator was aborted")


def is_refusal(exc: BaseException) -> bool:
    """A refusal of the command line, the same in every process (not one's own failure).

    ``UsageError`` lives here, not in ``cli``: run as ``python -m
    napari_nuclei_unet.cli`` (torchrun), that module is ``__main__``, and a class of its
    own would be another one than the commands raise.
    """
    # a batch that does not split over the processes: the same in every process, and
    # said by each (CLI check h_cli3, L7); not every DistributedError (too many processes
    # for the GPUs is raised by the ranks past them only: review h_rev29, 1)
    distributed = sys.modules.get("napari_nuclei_unet.core.distributed")
    same = (distributed.BatchSplitError,) if distributed is not None else ()
    return isinstance(exc, (UsageError, FileNotFoundError, *same))


def another_rank() -> bool:
    """Whether this is a torchrun process other than its machine's first (local rank 0).

    A refusal of the command line (``train --out`` holding another run, a bad option, a
    file missing on this machine) is the same for every process of a machine: it was
    printed once per process (review h_rev17, L2). Each machine still says its own.
    """
    if "RANK" not in os.environ:  # not torchrun: torch stays unloaded
        return False
    from ..core.distributed import launched_by_torchrun, local_rank

    return launched_by_torchrun() and local_rank() != 0


def is_peer_lost(exc: BaseException) -> bool:
    """Whether, under torchrun, ``exc`` says another process of the group stopped.

    The surviving ranks got gloo's internals and "this is a bug in napari-nuclei-unet"
    when one rank died (out of memory, a lost node: what ``--max-restarts`` is for):
    review h_rev17, F8.
    """
    if "torch" not in sys.modules:  # no training ran here (and torch stays unloaded)
        return False
    from ..core.distributed import launched_by_torchrun

    if not launched_by_torchrun():
        return False
    text = str(exc).lower()
    return (type(exc).__name__ in ("DistBackendError", "DistNetworkError")
            or isinstance(exc, RuntimeError) and any(words in text for words in _PEER_LOST))


def peer_lost_message(args: argparse.Namespace) -> str:
    out = getattr(args, "out", None)
    resume = (f"; or run the command again with --resume "
              f"{os.path.join(out, 'last.safetensors')}" if out else "")
    return ("another process of this torchrun group stopped (out of memory, a lost "
            "machine...): see its messages above. To go on, start torchrun with "
            f"--max-restarts N, which starts the group again by itself{resume}.")


def is_killed_worker(exc: BaseException) -> bool:
    """Whether a dask worker died under a task (dask's ``KilledWorker``).

    Most often it ran out of memory and its nanny killed it; the cluster's warnings that
    said so are silenced (they also fill a stop's output), and the run ended in
    "unexpected KilledWorker ... this is a bug" (review h_rev20, M5).
    """
    distributed = sys.modules.get("distributed")
    killed = getattr(distributed, "KilledWorker", None) if distributed is not None else None
    return killed is not None and isinstance(exc, killed)


def killed_worker_message(exc: BaseException, *, can_skip: bool = True) -> str:
    try:
        detail = " ".join(str(exc).split())[:200]
    except Exception:  # noqa: BLE001 - its str() needs the worker it names
        detail = ""
    again = (" (with --skip-existing, images already segmented are kept)" if can_skip
             else "")  # --submission refuses --skip-existing
    return (
        "a dask worker died while segmenting" + (f" ({detail})" if detail else "") + ": most "
        "often it ran out of memory. Use fewer --workers or a smaller --block, or give the "
        f"workers more memory; then run it again{again}."
    )


def out_of_memory_message(exc: BaseException) -> str:
    detail = " ".join(str(exc).split())[:200]
    return (
        "ran out of memory" + (f" ({detail})" if detail else "") + ". Use smaller values "
        "(--crop-size, --batch-size, --base-width), smaller images, or a computer with more "
        "memory; close other programs."
    )


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` reports bad input (a one-line message) rather than a bug."""
    # OSError: a missing or unreadable file, a full disk: the message says which file.
    if isinstance(exc, (UsageError, OSError, ValueError)):
        return True
    zipfile = sys.modules.get("zipfile")
    if zipfile is not None and isinstance(exc, zipfile.BadZipFile):
        return True  # a damaged zip (e.g. a bad CRC): the message names the member
    for module_name, class_names in _USER_ERRORS_BY_MODULE.items():
        module = sys.modules.get(module_name)
        if module is None:
            continue
        classes = tuple(getattr(module, name) for name in class_names if hasattr(module, name))
        if classes and isinstance(exc, classes):
            return True
    return False


def maybe_a_bug(exc: BaseException) -> str:
    """A hint to report a ValueError raised outside this package (numpy, torch, a reader).

    Every ValueError read as the user's mistake, with no word that it may be a bug
    (review h_rev15, M17); ours say what to do, others' may not.
    """
    if type(exc) is not ValueError:
        return ""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    module = frame.tb_frame.f_globals.get("__name__", "") if frame is not None else ""
    if module.split(".")[0] == __name__.split(".")[0]:
        return ""
    return (" (If that does not look like a mistake in what you gave, run the same command "
            "with --debug and report it.)")


def one_line(exc: BaseException, *, max_lines: int = 4, max_chars: int = 1500) -> str:
    """The exception's message on one line; long multi-line lists are shortened."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)) and exc.filename:
        text = (f"{exc.filename} (or a folder above it) is a file, where a folder is needed: "
                "give another path, or move the file away.")
    elif isinstance(exc, PermissionError) and exc.filename:  # "ro/sub: Permission denied"
        text = (f"no permission for {exc.filename} ({exc.strerror or 'permission denied'}): "
                "give files you may read, and an output folder you can write to.")  # (h_cli2)
    elif isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        # a big image's blocks: "[Errno 28] No space left on device", naming nothing
        # (CLI check h_cli3, M3)
        where = f" holding {exc.filename}" if exc.filename else ""
        text = (f"the disk{where} is full ({exc.strerror or 'no space left'}). Free some "
                "space or choose an output folder on another disk, then run the command "
                "again.")
    elif isinstance(exc, OSError) and exc.filename and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        text = str(exc.args[0])
    text = re.sub(r"<_io\.\w+ (?:object at 0x[0-9a-fA-F]+|name=[^>]*)>", "the file", text)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) > max_lines:
        # e.g. a dataset error listing every bad sample: keep the head and the advice
        hidden = len(lines) - max_lines
        lines = [*lines[: max_lines - 1], f"[{hidden} more lines]", lines[-1]]
    text = " ".join(lines)
    if len(text) > max_chars:  # e.g. a validator's list of every value it takes (M11)
        text = f"{text[:max_chars - 200]} [...] {text[-199:]}"
    return text
