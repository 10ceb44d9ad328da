"""Run core jobs in background threads and explain their errors in plain words.

The core's long jobs are generators (or plain functions) that know nothing about
Qt. :class:`WorkerGuard` runs them in a superqt/napari worker thread, connects
the ``yielded`` / ``returned`` / ``errored`` / ``finished`` handlers (which run on
the main thread, the only place where widgets touch layers), refuses to start a
second job of a kind that is already running, and turns every exception into a
napari notification written for biologists (never a traceback dialog).

Each viewer's guard lives in its session (``session_for(viewer).jobs``), so two
Train docks of one viewer cannot train at the same time either.

A job holds its handlers only weakly when they are methods (or partials of
methods) of a widget, and the viewer only weakly: a job that outlives its dock
or its viewer (napari closed during a background load) must not keep them
alive; its results are then dropped.
"""

from __future__ import annotations

import atexit
import inspect
import logging
import os
import threading
import warnings
import weakref
from collections.abc import Callable
from functools import partial, wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psygnal import Signal

if TYPE_CHECKING:
    import napari
    from superqt.utils import WorkerBase

logger = logging.getLogger(__name__)

# torch's package initialisation is not safe when two threads import it at the same
# time (seen: "operator debug_mode_ops::annotate does not exist"), and several docks
# start background jobs that import it when they open.
_HEAVY_IMPORTS = threading.Lock()
_exit_hook_installed = False
#: Python's warning hooks (``warnings.showwarning`` and the filters) are one for the
#: whole process. A superqt worker replaces them while it runs and puts back what it
#: found when it ends: two jobs that overlap put back each other's, and after them every
#: warning of the session went to the first job's handler, shown "always" (even the
#: developers' warnings napari hides). The hooks found before the first of our jobs are
#: put back when the last one ends. This repairs the end state only: while jobs overlap,
#: a job's warning can still reach the terminal instead of a notification (so what the
#: user must read travels in a job's result, not a warning: Load all's failures), and a
#: warning filter the main thread adds while a job runs is dropped when the last ends.
_hooks_before_jobs: warnings.catch_warnings | None = None
_jobs_running = 0


class JobError(Exception):
    """A ``RuntimeError`` raised in a generator job, as its worker can report it.

    superqt takes a ``RuntimeError`` out of a generator for a sign that its worker was
    deleted: the job then ends with neither ``errored`` nor ``finished``, so the user
    was told nothing (torch's "out of memory" is a RuntimeError) and the job stayed
    "already running" (review h_rev9). :meth:`WorkerGuard.start` reports the original
    (``__cause__``).
    """


def _runtime_errors_reported(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func``, a generator job, raising :class:`JobError` instead of RuntimeError."""
    if not inspect.isgeneratorfunction(func):
        return func

    @wraps(func)
    def job(*args: Any, **kwargs: Any) -> Any:
        try:
            return (yield from func(*args, **kwargs))
        except RuntimeError as exc:
            raise JobError(str(exc)) from exc

    return job


def _job_started() -> None:
    global _hooks_before_jobs, _jobs_running
    if _jobs_running == 0:
        _hooks_before_jobs = warnings.catch_warnings()
        _hooks_before_jobs.__enter__()  # saves the hooks; __exit__ puts them back
    _jobs_running += 1


def _job_ended() -> None:
    global _hooks_before_jobs, _jobs_running
    _jobs_running = max(_jobs_running - 1, 0)
    if _jobs_running == 0 and _hooks_before_jobs is not None:
        hooks, _hooks_before_jobs = _hooks_before_jobs, None
        hooks.__exit__(None, None, None)


def import_torch_safely() -> None:
    """Import torch (and the training engine) once, one thread at a time.

    Call at the start of any worker job that imports torch.
    """
    with _HEAVY_IMPORTS:
        load_torch_library()
        import torch  # noqa: F401

        import napari_nuclei_unet.core.training  # noqa: F401


def load_torch_library() -> bool:
    """Load torch's main native library with the GIL released (Linux and macOS).

    Python's import (and ``ctypes.CDLL``) hold the GIL while the dynamic linker loads
    a library: a worker's first ``import torch`` held it 150-270 ms for
    ``libtorch_cpu`` alone, and the window froze that long when the workflow panel
    opened (``benchmarks/bench_torch_import.py``). Called here as a foreign function,
    libc's ``dlopen`` runs without the GIL; the import then finds the library loaded.
    The library's own initialisation calls no Python. Anything unexpected leaves the
    loading to the import, as before.

    Returns
    -------
    bool
        True when the library was loaded here.
    """
    import sys

    if "torch" in sys.modules or sys.platform not in ("linux", "darwin"):
        return False
    try:
        import ctypes
        import importlib.util

        spec = importlib.util.find_spec("torch")
        if spec is None or not spec.origin:
            return False
        suffix = ".dylib" if sys.platform == "darwin" else ".so"
        path = Path(spec.origin).parent / "lib" / f"libtorch_cpu{suffix}"
        if not path.is_file():
            return False
        dlopen = ctypes.CDLL(None).dlopen  # the process's libc
        dlopen.restype = ctypes.c_void_p
        dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
        return bool(dlopen(os.fsencode(path), os.RTLD_NOW | os.RTLD_LOCAL))
    except Exception:  # noqa: BLE001 - the import loads it then
        logger.debug("could not load torch's library ahead of the import", exc_info=True)
        return False


def gui_cpu_threads() -> int:
    """CPU threads for training in the GUI: all physical cores but one (at least 1).

    torch's intra-op threads spin on every core they get; on a 2-core laptop two
    training threads starve napari's main thread (and make training itself many
    times slower when other programs need the CPU too), so one core is left free.
    """
    from napari_nuclei_unet.core.device import physical_cpu_count

    return max(1, physical_cpu_count() - 1)


def _wait_for_workers_at_exit() -> None:
    """Let running Qt workers finish before Python shuts down (max 30 s).

    Python does not wait for QThreadPool threads; finalising the interpreter under
    a running job aborts the process.
    """
    from qtpy.QtCore import QThreadPool

    QThreadPool.globalInstance().waitForDone(30_000)

#: Message shown when a job of the same kind is started twice.
REFUSALS = {
    "training": "Training is already running. Stop it first.",
    "load all": "The dataset is already being loaded. Wait for it, or press Stop loading.",
    "open dataset": "A dataset is already being opened. Wait for it to finish.",
    "download": "The DSB2018 download is already running. Wait for it to finish.",
    "load model": "A model is already being loaded. Wait for it to finish.",
}

_PLAIN_NAMES = {
    "DatasetError": "dataset problem",
    "CheckpointError": "checkpoint problem",
    "TrainingError": "training problem",
    "ConfigError": "setting problem",
    "DeviceError": "device problem",
    "DownloadError": "download problem",
}


def typed_path(text: str) -> str:
    """A path as the user typed or pasted it, without the quotes a file manager adds.

    ``'/data/my nuclei'`` (copied from a file manager or a shell) is the folder
    ``/data/my nuclei``; a path that really holds quotes is typed without outer ones.
    """
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1].strip()
    return text


def write_problem(folder: str | os.PathLike) -> str | None:
    """Why nothing can be written in ``folder``, in a few words (the system's), or None.

    A file is made and removed in the folder or, when it does not exist yet, in the
    nearest folder above it that does (where it would be created).
    """
    import tempfile

    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return f"{probe}: {exc.strerror or exc}"
    return None


def explain(exc: BaseException) -> str:
    """Describe ``exc`` in plain words for a notification.

    The project's own errors (``DatasetError``, ``CheckpointError``,
    ``TrainingError``, ``ConfigError``, ``DeviceError``, ``DownloadError``) already
    say what is wrong and what to do, so their message is used as it is; common
    system errors get a short explanation; anything else is reported as unexpected.

    Parameters
    ----------
    exc : BaseException
        The error raised by a job.

    Returns
    -------
    str
        One or two sentences, no traceback.
    """
    name = type(exc).__name__
    text = str(exc).strip()
    if name in _PLAIN_NAMES:
        return text or f"A {_PLAIN_NAMES[name]} occurred."
    if isinstance(exc, MemoryError) or name == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and "out of memory" in text.lower()
    ):
        on_gpu = "cuda" in text.lower() or name == "OutOfMemoryError"
        where = "graphics card" if on_gpu else "computer"
        return (
            f"The {where} ran out of memory. Try a smaller batch size or crop size, "
            "a smaller network, or close other programs."
        )
    if isinstance(exc, FileNotFoundError):
        return f"File or folder not found: {exc.filename or text}."
    if isinstance(exc, PermissionError):
        return f"No permission to read or write {exc.filename or text}. Choose another place."
    if isinstance(exc, OSError):
        if exc.filename and exc.strerror:
            return f"Could not read or write {exc.filename}: {exc.strerror}."
        # the project's own OSErrors say which file and what was kept themselves
        return (text.rstrip(".") + ".") if text else "A file could not be read or written."
    if isinstance(exc, ValueError) and text:
        return text
    return (
        f"Something unexpected went wrong ({name}: {text or 'no details'}). "
        "Please report it to the napari-nuclei-unet developers."
    )


def notify_error(exc: BaseException, action: str = "") -> str:
    """Show ``exc`` as a napari error notification, prefixed by what failed.

    Parameters
    ----------
    exc : BaseException
        The error.
    action : str, optional
        What the user was doing, e.g. ``"Opening the dataset"``.

    Returns
    -------
    str
        The message shown.
    """
    from napari.utils.notifications import show_error, show_warning

    message = explain(exc)
    if getattr(exc, "not_started", False):  # a refusal before any work: a warning, not
        logger.debug(message)  # "... failed" (core.finetune.RoundRunning: h_rev28, 2)
        show_warning(message)
        return message
    if action:
        message = f"{action} failed: {message}"
    known = type(exc).__name__ in _PLAIN_NAMES or isinstance(
        exc, (OSError, MemoryError, ValueError)
    )
    # the traceback goes to the log (terminal), not to the user
    logger.log(logging.DEBUG if known else logging.ERROR, message, exc_info=exc)
    show_error(message)
    return message


def notify(message: str, *, warning: bool = False) -> None:
    """Show an information (or warning) notification."""
    from napari.utils.notifications import show_info, show_warning

    (show_warning if warning else show_info)(message)


class WorkerGuard:
    """Start background jobs, at most one of each kind at a time.

    Examples
    --------
    >>> jobs = session_for(viewer).jobs                      # doctest: +SKIP
    >>> worker = jobs.start("load all", dataset.iter_load,   # doctest: +SKIP
    ...                     on_yielded=bar.update, on_returned=keep, action="Loading")

    Attributes
    ----------
    started, ended : psygnal.Signal
        Emitted with the job's kind on the main thread when a job starts, and when
        it has ended (after its ``on_finished``): a dock can follow jobs that other
        docks start without polling.
    """

    started = Signal(str)
    ended = Signal(str)

    def __init__(self) -> None:
        self._workers: dict[str, WorkerBase] = {}

    def running(self, kind: str) -> WorkerBase | None:
        """Return the running worker of ``kind``, or None."""
        return self._workers.get(kind)

    def is_running(self, kind: str) -> bool:
        """Return True while a job of ``kind`` runs."""
        return kind in self._workers

    def kinds(self) -> list[str]:
        """Return the kinds of the jobs running now."""
        return list(self._workers)

    def start(
        self,
        kind: str,
        func: Callable[..., Any],
        *args: Any,
        on_yielded: Callable[[Any], None] | None = None,
        on_returned: Callable[[Any], None] | None = None,
        on_errored: Callable[[BaseException], None] | None = None,
        on_finished: Callable[[], None] | None = None,
        action: str = "",
        viewer: napari.Viewer | None = None,
        description: str = "",
        cancel: Callable[[], Any] | None = None,
        refuse: bool = True,
        error_message: Callable[[BaseException], str | None] | None = None,
        **kwargs: Any,
    ) -> WorkerBase | None:
        """Run ``func(*args, **kwargs)`` in a worker thread.

        Parameters
        ----------
        kind : str
            Job kind; while one of this kind runs, another is refused with a
            notification (see :data:`REFUSALS`) and None is returned.
        func : callable
            A generator function (each yielded update goes to ``on_yielded``) or a
            plain function.
        *args, **kwargs
            Passed to ``func``.
        on_yielded, on_returned, on_errored, on_finished : callable, optional
            Handlers run on the main thread. Errors are always shown as a
            notification (see :func:`notify_error`) before ``on_errored`` runs.
        action : str, optional
            What the job does, for error messages ("Loading the dataset").
        viewer : napari.Viewer, optional
            When given, the job is registered with the viewer window, so closing
            napari asks for confirmation and then calls ``cancel``.
        description : str, optional
            Text of that registration (defaults to ``action``).
        cancel : callable, optional
            Called when napari's window closes during the job (default: ask the
            worker to quit at its next yield).
        refuse : bool, optional
            When False, a running job of the same kind is not a reason to refuse
            (the caller handles it).
        error_message : callable, optional
            Returns the notification text for an error (None: the default,
            ``"<action> failed: <explanation>"``).

        Returns
        -------
        WorkerBase or None
            The started worker, or None when refused. Its attribute ``handled``
            becomes True on the main thread once ``on_finished`` has run.
        """
        from superqt.utils import create_worker

        global _exit_hook_installed
        if not _exit_hook_installed:
            atexit.register(_wait_for_workers_at_exit)
            _exit_hook_installed = True
        if refuse and kind in self._workers:
            default = f"{kind.capitalize()} is already running. Wait for it to finish."
            notify(REFUSALS.get(kind, default))
            return None

        worker = create_worker(_runtime_errors_reported(func), *args, _start_thread=False,
                               _ignore_errors=True, **kwargs)
        worker.handled = False
        errored_handler = _tolerant(on_errored) if on_errored is not None else None
        finished_handler = _tolerant(on_finished) if on_finished is not None else None
        if on_yielded is not None and hasattr(worker, "yielded"):
            worker.yielded.connect(_tolerant(on_yielded))
        if on_returned is not None:
            worker.returned.connect(_tolerant(on_returned))

        def _errored(exc: BaseException) -> None:
            if isinstance(exc, JobError) and exc.__cause__ is not None:
                exc = exc.__cause__  # what the job raised
            custom = error_message(exc) if error_message is not None else None
            if custom:
                from napari.utils.notifications import show_error

                logger.debug(custom, exc_info=exc)
                show_error(custom)
            else:
                notify_error(exc, action)
            if errored_handler is not None:
                errored_handler(exc)

        worker.errored.connect(_errored)
        status = _register_task(viewer, description or action or kind,
                                _cancel_while_running(worker, cancel or worker.quit))
        viewer_ref = weakref.ref(viewer) if viewer is not None else (lambda: None)

        def _finished() -> None:
            _job_ended()  # its thread has left its warning hooks: put back what we found
            if self._workers.get(kind) is worker:
                del self._workers[kind]
            _finish_task(viewer_ref(), status)
            try:
                if finished_handler is not None:
                    finished_handler()
            finally:
                worker.handled = True  # all handlers have run (tests wait on this)
                self._emit(self.ended, kind)

        worker.finished.connect(_finished)
        # warnings raised in the job (e.g. "3 samples skipped") become notifications
        worker.warned.connect(_show_warning)
        self._workers[kind] = worker
        _job_started()
        worker.start()
        self._emit(self.started, kind)
        return worker

    @staticmethod
    def _emit(signal: Any, kind: str) -> None:
        """Emit ``signal(kind)``; a listener's error is logged (the job is not theirs)."""
        try:
            signal.emit(kind)
        except Exception:
            logger.exception("a listener of the job signals failed")


def _cancel_while_running(worker: Any, cancel: Callable[[], Any]) -> Callable[[], Any]:
    """``cancel`` for napari's task list: held weakly, and a no-op once the job ended.

    napari keeps every task it was given and, closing the window while one runs, calls
    the cancel of each, the ended ones too: a dock closed with its x (destroyed) raised
    "wrapped C/C++ object ... has been deleted" there, and the rest of napari's closing
    (the running round's own stop) was skipped (GUI check h_gui38, H1).
    """
    job, call = weakref.ref(worker), _tolerant(cancel)

    def cancel_if_running() -> Any:
        running = job()
        if running is None or getattr(running, "handled", False):
            return False
        return call()

    return cancel_if_running


def _tolerant(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a handler: held weakly when it is a (partial of a) method, and tolerant.

    A job may outlive its dock (the user closed the panel) or its viewer. The
    wrapper then skips the handler instead of keeping the widget alive, and a
    handler that touches deleted Qt widgets (``RuntimeError("wrapped C/C++
    object ... has been deleted")``) is logged and ignored; other errors propagate.
    """
    args: tuple = ()
    keywords: dict = {}
    func = handler
    if isinstance(handler, partial) and inspect.ismethod(handler.func):
        func, args, keywords = handler.func, handler.args, handler.keywords
    ref = weakref.WeakMethod(func) if inspect.ismethod(func) else (lambda: func)

    def call(*call_args: Any) -> Any:
        target = ref()
        if target is None:
            logger.debug("handler of a deleted widget skipped")
            return None
        try:
            return target(*args, *call_args, **keywords)
        except RuntimeError as exc:
            if "deleted" not in str(exc):
                raise
            logger.debug("handler of a deleted widget skipped: %s", exc)
            return None

    return call


#: Warnings meant for developers (Python's own documentation says so): a job's
#: ``ResourceWarning("unclosed file <...bioimageio.yaml>")`` reached a biologist as a
#: yellow notification (GUI check h_gui9). They go to the log.
DEVELOPER_WARNINGS = (ResourceWarning, DeprecationWarning, PendingDeprecationWarning)


def _show_warning(warning_args: tuple) -> None:
    """Show a warning raised in a job (``warnings.showwarning``'s arguments)."""
    message = warning_args[0] if warning_args else ""
    category = warning_args[1] if len(warning_args) > 1 else type(message)
    if isinstance(category, type) and issubclass(category, DEVELOPER_WARNINGS):
        logger.debug("warning in a job: %s", message)
        return
    notify(str(message), warning=True)


def _window_private(viewer: Any, name: str) -> Any:
    """Return a private attribute of napari's window, or None.

    Plugins see the viewer through napari's public-only proxy, which emits a
    FutureWarning (shown to the user as a notification) on private access. The task
    API has no public spelling yet, so the warning is silenced here, in one place.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return getattr(getattr(viewer, "window", None), name, None)


def _register_task(viewer: Any, description: str, cancel: Callable[[], Any]) -> Any:
    """Register a running job with napari's window (uses napari's private task API).

    napari then lists the job when the user closes the window, asks for
    confirmation, and calls ``cancel``. Returns an id, or None when unavailable.
    """
    register = _window_private(viewer, "_register_task_status")
    if register is None:
        return None
    try:
        from napari.utils.task_status import Status

        from napari_nuclei_unet.widgets._close_guard import list_jobs_on_every_close

        list_jobs_on_every_close(viewer)  # not only napari's title-bar button (h_gui47)

        return register("Nuclei U-Net", Status.BUSY, description, cancel_callback=cancel)
    except Exception:  # a missing or changed private API must not stop the job
        logger.debug("could not register the task with napari", exc_info=True)
        return None


def _finish_task(viewer: Any, status_id: Any) -> None:
    if status_id is None:
        return
    update = _window_private(viewer, "_update_task_status")
    if update is None:
        return
    from napari.utils.task_status import Status

    update(status_id, Status.COMPLETED, "")
