"""Copy the full sample id of a table row: Ctrl+C and a context-menu entry.

Tables show short ids (:func:`napari_nuclei_unet.widgets._layers.short_id`, the
first 8 characters); the full 64-character id is in the tooltip and, with
:func:`enable_id_copy`, on the clipboard with Ctrl+C or "Copy full id".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import QApplication, QMenu


def copy_text(text: str) -> None:
    """Put ``text`` on the clipboard."""
    QApplication.clipboard().setText(text)


def enable_id_copy(view: Any, selected_id: Callable[[], str | None]) -> None:
    """Let the user copy the full id of ``view``'s selected row.

    Parameters
    ----------
    view : QAbstractItemView
        The table.
    selected_id : callable
        Returns the full id of the selected row (None when nothing is selected).
    """
    from qtpy.QtGui import QShortcut

    def copy() -> None:
        sample_id = selected_id()
        if sample_id:
            copy_text(sample_id)

    shortcut = QShortcut(QKeySequence(QKeySequence.StandardKey.Copy), view)
    shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
    shortcut.activated.connect(copy)
    view._nuclei_unet_copy_shortcut = shortcut  # keep it alive with the view
    view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

    def menu(position: Any) -> None:
        sample_id = selected_id()
        if not sample_id:
            return
        popup = QMenu(view)
        action = popup.addAction("Copy full id")
        action.setToolTip(sample_id)
        action.triggered.connect(copy)
        popup.exec(view.viewport().mapToGlobal(position))

    view.customContextMenuRequested.connect(menu)
    view.copy_full_id = copy  # tests and other docks call it
