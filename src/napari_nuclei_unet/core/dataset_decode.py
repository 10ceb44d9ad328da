"""Decoding DSB2018 samples: their files read from a folder or a zip, in a process pool.

:class:`Sample` is a decoded sample and :class:`SampleInfo` what the index knows
without decoding; the functions here are module-level so that a spawn process pool
can run them. Used by :mod:`.dataset`.
"""

from __future__ import annotations

import ast
import concurrent.futures as cf
import multiprocessing
import os
import sys
import warnings
import zipfile
from collections.abc import Callable, Generator, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np

from .dataset_layout import _SampleFiles
from .device import usable_cores
from .imageio import (
    DatasetError,
    DatasetWarning,
    check_regular_file,
    image_size,
    read_image,
    read_mask_box,
)
from .modality import guess_modality
from .progress import StopCheck, stop_requested
from .zipread import MAX_MEMBER_BYTES, read_zip_member


@dataclass(frozen=True)
class SampleInfo:
    """What the index knows about a sample without decoding its masks."""

    id: str
    height: int
    width: int
    modality: str  # one of MODALITIES
    n_nuclei: int  # number of mask files


@dataclass
class Sample:
    """A decoded sample: the image and its instance labels."""

    id: str
    image: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray  # (H, W) int32, 0 = background, 1..n = mask files in sorted name order
    modality: str
    overlap_pixels: int = 0  # pixels claimed by several masks (the later mask file wins)
    has_labels: bool = True  # False for an image loaded without a masks/ folder


# ---------------------------------------------------------------------------
# containers: a folder or a zip, read by relative posix paths
# ---------------------------------------------------------------------------

_OPEN_ZIPS: dict[tuple[str, int, int], zipfile.ZipFile] = {}


def _zip_handle(path: str) -> zipfile.ZipFile:
    """Return an open ZipFile for ``path``, reused per process while the file is unchanged."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    handle = _OPEN_ZIPS.get(key)
    if handle is None:
        for old in [k for k in _OPEN_ZIPS if k[0] == path]:
            _OPEN_ZIPS.pop(old).close()
        handle = _OPEN_ZIPS[key] = zipfile.ZipFile(path)
    return handle


def _read_member(kind: str, root: str, rel: str) -> bytes:
    if kind == "zip":
        try:
            handle = _zip_handle(root)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DatasetError(
                f"Cannot read {rel} from {root}: {exc}. The zip may be truncated: "
                "download it again."
            ) from exc
        return read_zip_member(handle, rel, where=root)
    path = os.path.join(root, rel)
    check_regular_file(path, max_bytes=MAX_MEMBER_BYTES, what="image or mask file")
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise DatasetError(
            f"Cannot read {path}: {exc.strerror or exc}. Check that it exists and is readable."
        ) from exc


def _display(kind: str, root: str, rel: str) -> str:
    return f"{root}:{rel}" if kind == "zip" else os.path.join(root, rel)


# ---------------------------------------------------------------------------
# decoding one sample (module level so that a spawn process pool can run it)
# ---------------------------------------------------------------------------


def _decode_files(kind: str, root: str, files: _SampleFiles, *, modality: bool = True) -> dict:
    """Decode one sample; labels are uint16 (int32 beyond 65,535 masks)."""
    image = read_image(
        _read_member(kind, root, files.image), name=_display(kind, root, files.image)
    )
    h, w = image.shape[:2]
    dtype = np.uint16 if len(files.masks) <= np.iinfo(np.uint16).max else np.int32
    labels = np.zeros((h, w), dtype=dtype)
    overlapped = None
    for k, rel in enumerate(files.masks, start=1):
        found = read_mask_box(
            _read_member(kind, root, rel), name=_display(kind, root, rel), shape=(h, w)
        )
        if found is None:
            continue
        r0, c0, crop = found
        window = labels[r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]]
        if window.any():  # cheap test first: masks rarely touch
            clash = crop & (window != 0)
            if clash.any():
                if overlapped is None:
                    overlapped = np.zeros((h, w), dtype=bool)
                overlapped[r0 : r0 + crop.shape[0], c0 : c0 + crop.shape[1]] |= clash
        window[crop] = k
    return {
        "id": files.id,
        "image": image,
        "labels": labels,
        "modality": guess_modality(image) if modality else "",
        "overlap_pixels": 0 if overlapped is None else int(overlapped.sum()),
        "has_labels": files.has_masks_dir,
    }


def _decode_task(kind: str, root: str, files: _SampleFiles) -> tuple[str, object]:
    """Pool entry point: never raises for a bad sample, returns ("ok"|"error", payload)."""
    try:
        return "ok", _decode_files(kind, root, files, modality=False)  # the index has it
    except DatasetError as exc:
        return "error", str(exc)
    except Exception as exc:  # noqa: BLE001 - one odd file must not end a whole-dataset load
        return "error", f"{files.id}: unexpected {type(exc).__name__}: {exc}"


def _index_task(kind: str, root: str, files: _SampleFiles) -> tuple[str, object]:
    """Index one sample: size from the image header, modality from the decoded image."""
    name = _display(kind, root, files.image)
    try:
        data = _read_member(kind, root, files.image)
        height, width = image_size(data, name=name)
        image = read_image(data, name=name)
        modality = guess_modality(image)
    except DatasetError as exc:
        return "error", str(exc)
    except Exception as exc:  # noqa: BLE001 - one odd file must not refuse a whole dataset
        return "error", f"{name}: cannot be read ({type(exc).__name__}: {exc})"
    return "ok", (height, width, modality)


def _to_sample(d: dict) -> Sample:
    return Sample(
        id=d["id"],
        image=d["image"],
        labels=d["labels"].astype(np.int32, copy=False),
        modality=d["modality"],
        overlap_pixels=d["overlap_pixels"],
        has_labels=d["has_labels"],
    )


def spawn_reruns_main() -> bool:
    """Whether a spawned worker would run the user's script again.

    A 'spawn' worker imports the parent's ``__main__`` module (as ``__mp_main__``), which
    runs its top level again. A biologist's napari script does its work there (opens a
    viewer, loads data), with or without ``napari.run()`` under an ``if __name__ ==
    "__main__":`` guard: every worker would open its windows and load its data again.
    Only a script whose top level merely imports, defines and assigns plain values (work
    happens under the guard: napari's and this plugin's own entry points, pytest) is
    safe, and interactive sessions and notebooks (no ``__main__.__file__``).
    """
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if not path:
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            tree = ast.parse(handle.read(1 << 20))
    except (OSError, SyntaxError, ValueError):
        return True  # cannot tell: do not risk running it again
    return not all(_harmless(node) for node in tree.body)


def _harmless(node: ast.stmt) -> bool:
    """A top-level statement that does nothing when a worker imports the script."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                         ast.ClassDef, ast.Pass)):
        return True
    if isinstance(node, ast.Expr):
        return isinstance(node.value, ast.Constant)  # a docstring
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        value = node.value
        return value is None or not any(isinstance(n, ast.Call) for n in ast.walk(value))
    if isinstance(node, ast.If):
        return _is_main_guard(node.test) and all(_harmless(n) for n in node.orelse)
    return False


def _is_main_guard(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = {ast.dump(test.left), ast.dump(test.comparators[0])}
    return sides == {ast.dump(ast.Name("__name__", ast.Load())),
                     ast.dump(ast.Constant("__main__"))}


def die_with_parent(parent: int) -> None:
    """In a decoding worker: end when the process that started it ends (Linux).

    A command killed (kill -9, the out-of-memory killer) while it decoded a dataset left
    its workers and their resource tracker running for good, blocked writing to the pipe
    of a process that was gone, and holding the caller's output open (CLI check h_cli3,
    M2). A ``ProcessPoolExecutor`` initializer: it runs once in each worker.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not glibc/musl: as before
        return
    if os.getppid() != parent:  # the parent was gone before the signal was asked for
        os._exit(1)


def _run_tasks(
    fn: Callable,
    kind: str,
    root: str,
    items: Sequence[_SampleFiles],
    *,
    parallel: bool,
    workers: int | None,
    should_stop: StopCheck | None,
) -> Generator[tuple[_SampleFiles, str, object], None, bool]:
    """Run ``fn(kind, root, item)`` over items, yield (item, status, payload) as they finish.

    Returns True when stopped early. The pool uses the 'spawn' start method so that it
    is safe to start from a thread (napari's thread_worker); under a script that a
    spawned worker would run again (:func:`spawn_reruns_main`) the items are decoded
    here, one after the other.
    """
    n_workers = workers or usable_cores()
    if not parallel or n_workers < 2 or len(items) < 2 or spawn_reruns_main():
        return (yield from _run_serial(fn, kind, root, items, should_stop))
    ctx = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx,
                                  initializer=die_with_parent, initargs=(os.getpid(),))
    finished: set[str] = set()
    try:
        # biggest first, so the pool does not wait on one large sample at the end
        order = sorted(items, key=lambda f: -len(f.masks))
        pending = {pool.submit(fn, kind, root, item): item for item in order}
        while pending:
            if stop_requested(should_stop):
                return True
            done, _ = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                item = pending.pop(fut)
                status, payload = fut.result()
                finished.add(item.id)
                yield item, status, payload
        return False
    except (BrokenProcessPool, RuntimeError, OSError) as exc:
        # e.g. workers that cannot start; decoding in this process is slower but gives
        # the same result
        warnings.warn(
            f"parallel decoding failed ({type(exc).__name__}: {exc}); continuing in one process",
            DatasetWarning,
            stacklevel=2,
        )
        rest = [item for item in items if item.id not in finished]
        return (yield from _run_serial(fn, kind, root, rest, should_stop))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_serial(
    fn: Callable,
    kind: str,
    root: str,
    items: Sequence[_SampleFiles],
    should_stop: StopCheck | None,
) -> Generator[tuple[_SampleFiles, str, object], None, bool]:
    for item in items:
        if stop_requested(should_stop):
            return True
        status, payload = fn(kind, root, item)
        yield item, status, payload
    return False
