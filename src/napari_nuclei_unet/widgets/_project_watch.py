"""The Retrain dock lists its project again when another program writes to it.

A round run from the command line (``nuclei-unet finetune``) beside an open Retrain dock
saved a version that the dock listed only when it next refreshed for its own reasons
(another project chosen, a round, a correction): nothing told it that another process
wrote (GUI checks h_gui43, L2 and h_gui44, M1). The project's folder, its ``versions``
and its ``corrections`` are watched by the operating system (``QFileSystemWatcher``); a
burst of writes is listed once, a moment after the last.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qtpy.QtCore import QFileSystemWatcher, QObject, QTimer

from napari_nuclei_unet.core.finetune import CORRECTIONS_DIR, VERSIONS_DIR

#: How long after the last write the project is listed again (a round's version folder,
#: a correction's files and its index are written within this).
SETTLE_MS = 500


class ProjectWatch(QObject):
    """Call ``on_change`` once a burst of writes to the followed project has settled.

    ``on_change`` is not called while ``busy()`` is true (the dock's own round or save:
    its handlers list the project themselves); the watch then waits for the next write.
    """

    def __init__(self, parent: QObject, on_change: Callable[[], None],
                 busy: Callable[[], bool] = lambda: False) -> None:
        super().__init__(parent)
        self._on_change, self._busy = on_change, busy
        self.project: Path | None = None
        self._seen: tuple = ()
        self._watcher = QFileSystemWatcher(self)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SETTLE_MS)
        self._timer.timeout.connect(self._settled)
        self._watcher.directoryChanged.connect(lambda *_: self._timer.start())

    def follow(self, project: Path) -> None:
        """Watch ``project`` (and its versions and corrections once they exist)."""
        self.project = Path(project)
        self._seen = self._state()
        self._watch_folders()

    def _folders(self) -> list[Path]:
        assert self.project is not None
        return [self.project, self.project / VERSIONS_DIR, self.project / CORRECTIONS_DIR]

    def _state(self) -> tuple:
        """When each of the project's folders last changed (files are replaced whole)."""
        found = []
        for folder in self._folders():
            try:
                found.append(folder.stat().st_mtime_ns)
            except OSError:
                found.append(None)
        return tuple(found)

    def _watch_folders(self) -> None:
        if self.project is None:
            return
        wanted = [str(p) for p in self._folders() if p.is_dir()]
        if not wanted:  # made on the first save: the nearest folder above that exists
            above = self.project.parent  # (a new data folder has no projects/ yet:
            while not above.is_dir() and above != above.parent:  # GUI check h_gui46, M1)
                above = above.parent
            wanted = [str(above)] if above.is_dir() else []
        old = self._watcher.directories()
        if sorted(old) != sorted(wanted):
            if old:
                self._watcher.removePaths(old)
            if wanted:
                self._watcher.addPaths(wanted)

    def _settled(self) -> None:
        if self.project is None:
            return
        self._watch_folders()  # a versions folder made by the first round, one removed
        state = self._state()
        if self._busy():
            return  # listed by the dock's own handlers; the next write is heard
        if state != self._seen:  # not another file of the folder above
            self._seen = state
            self._on_change()
