"""A large result's working copy, removed once no layer shows it and no job reads it.

A large plane's labels are written block by block into a temporary OME-Zarr
(``<temp>/nuclei-unet-*/<image>_labels.ome.zarr``, :func:`work_folder`), shown as a
Labels layer read from it, and painted into. Those folders stayed after their layer was
deleted, replaced by a new result or napari closed: 144 MB per 6000 x 6000 result
(GUI check h_gui19, L3).

A folder goes once its layer has left the viewer, or taken other labels, and none of the
viewer's layers shows it. A result painted on and not saved is kept in the data folder
as its layer is removed (:mod:`._unsaved_labels`, in the same event, before this
runs). While a job of the viewer runs (an export or a comparison may read the labels),
the folder waits for it to end. One left when napari closes goes as Python exits, after
the running jobs (a folder removed under a save read as zeros: review h_rev12, H2); a
folder whose layer is still in a viewer then is never removed, nor one left by a crash
(it holds the last strokes painted).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

#: What :func:`work_folder` names its folders with
PREFIX = "nuclei-unet-"
#: Folders whose layer has gone, not yet removed (at exit at the latest: the process's
#: folders, as the temporary directory is the process's)
_PENDING: set[Path] = set()


def work_folder() -> Path:
    """A new temporary folder for a large result's labels."""
    return Path(tempfile.mkdtemp(prefix=PREFIX))


def _ours(zarr_path: Any) -> Path | None:
    """The temporary folder holding ``zarr_path`` when :func:`work_folder` made it."""
    if not zarr_path:
        return None
    folder = Path(zarr_path).parent
    if folder.name.startswith(PREFIX) and folder.parent == Path(tempfile.gettempdir()):
        return folder
    return None


def zarr_of(layer: Any) -> str | None:
    """The OME-Zarr a result layer's labels are read from (None: in memory)."""
    from napari_nuclei_unet.widgets._segment_jobs import RESULT_KEY

    return (getattr(layer, "metadata", {}).get(RESULT_KEY) or {}).get("zarr")


def release(viewer: Any, zarr_path: Any) -> None:
    """``zarr_path``'s layer has gone or taken other labels: remove its working copy soon.

    After the current event (the unsaved labels are kept in it), unless a layer of
    ``viewer`` still shows it; after the viewer's jobs, if any run.
    """
    folder = _ours(zarr_path)
    if folder is None:
        return
    from qtpy.QtCore import QTimer

    from napari_nuclei_unet.widgets._session import session_for

    if not _PENDING:
        atexit.register(_remove_pending)  # after the workers' wait (atexit: last first)
    _PENDING.add(folder)
    jobs = session_for(viewer).jobs

    def attempt(*_args: Any) -> None:
        if folder not in _PENDING:
            return
        if any(_ours(zarr_of(layer)) == folder for layer in viewer.layers):
            _PENDING.discard(folder)  # shown again (the same labels): kept
            return
        if jobs.kinds():  # an export or a comparison may be reading it
            jobs.ended.connect(attempt, unique=True)
            return
        jobs.ended.disconnect(attempt)
        _PENDING.discard(folder)
        shutil.rmtree(folder, ignore_errors=True)

    QTimer.singleShot(0, attempt)


def release_when_removed(viewer: Any) -> None:
    """Release the working copy of every result layer removed from ``viewer`` (once)."""
    import weakref

    from napari_nuclei_unet.widgets._layers import unwrapped
    from napari_nuclei_unet.widgets._session import session_for

    session = session_for(viewer)
    if session.working_copies_released:
        return
    ref = weakref.ref(unwrapped(viewer))

    def removed(event: Any) -> None:
        if ref() is not None:
            release(ref(), zarr_of(event.value))

    viewer.layers.events.removed.connect(removed)
    session.working_copies_released = True


def _remove_pending() -> None:
    from napari_nuclei_unet.widgets._workers import _wait_for_workers_at_exit

    if _PENDING:  # (registered once per first folder pending: a second call finds none)
        _wait_for_workers_at_exit()  # a save or export still reading one
    for folder in list(_PENDING):
        shutil.rmtree(folder, ignore_errors=True)
    _PENDING.clear()
