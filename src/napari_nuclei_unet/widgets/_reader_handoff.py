"""Hand a dataset dropped on napari (folder or ``stage1_train.zip``) to the Data panel.

A biologist who drops ``stage1_train.zip`` on the window wants to see its 670
images, not one. Layers cannot hold them (sizes differ, and decoding them all
would take seconds on the main thread and gigabytes of memory), so the reader
(:mod:`napari_nuclei_unet._reader`) calls :func:`open_in_data_panel`: the
plugin's Data panel opens the dataset in the background (progress, ETA,
Cancel), lists every sample and shows the first one; clicking a row shows any
other. Samples are decoded only when shown (or on *Load all*), so memory stays
bounded.

The panel used is the one already open (the workflow panel's Data tab or the
separate Data dock); otherwise the workflow panel is opened.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PLUGIN = "napari-nuclei-unet"
#: napari.yaml display name of the workflow panel opened when no Data widget is open.
PANEL = "Nuclei U-Net (all steps)"


def _current_window() -> Any:
    """The current napari viewer's Qt window, or None (no viewer, or headless)."""
    try:
        import napari

        viewer = napari.current_viewer()
    except Exception:  # noqa: BLE001  (no Qt, no napari: the reader falls back to layers)
        return None
    return None if viewer is None else getattr(viewer, "window", None)


def find_data_widget(window: Any) -> tuple[Any, Any] | None:
    """The Data widget already docked in ``window`` and the dock's inner widget.

    Returns
    -------
    tuple or None
        ``(data widget, docked widget)``: the docked widget is the workflow panel
        when the Data widget is its tab. None when neither is open.
    """
    from napari_nuclei_unet.widgets.data_browser import DataBrowserWidget
    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    found = None
    for widget in dict(window.dock_widgets).values():
        if isinstance(widget, WorkflowPanel) and widget.data is not None:
            return widget.data, widget  # the panel first: it is what the user works in
        if isinstance(widget, DataBrowserWidget) and found is None:
            found = (widget, widget)
    return found


def _raise(docked: Any) -> None:
    """Show the dock holding ``docked`` (and the Data tab of the workflow panel)."""
    if hasattr(docked, "show_step"):
        docked.show_step("data")
    dock = docked.parent()
    if dock is not None and hasattr(dock, "raise_"):
        dock.show()
        dock.raise_()


def open_in_data_panel(path: str | Path) -> bool:
    """Open dataset ``path`` in the Data panel of the current napari window.

    The panel indexes the dataset in a worker and, once it is open, shows its
    first sample (the first row of its table).

    Parameters
    ----------
    path : str or pathlib.Path
        A ``stage1_train``-like folder or zip.

    Returns
    -------
    bool
        True when the Data panel took the dataset; False when there is no napari
        window to hand it to (the caller then opens samples as layers).
    """
    window = _current_window()
    if window is None or not hasattr(window, "dock_widgets"):
        return False
    found = find_data_widget(window)
    if found is None:
        try:
            _dock, panel = window.add_plugin_dock_widget(PLUGIN, PANEL)
        except Exception:  # noqa: BLE001  (plugin not registered, e.g. a bare script)
            logger.debug("could not open the workflow panel", exc_info=True)
            return False
        if getattr(panel, "data", None) is None:
            return False
        found = (panel.data, panel)
    data, docked = found
    _raise(docked)
    dataset = data.dataset
    from napari_nuclei_unet.core.paths import same_path

    if dataset is not None and same_path(dataset.path, Path(path).expanduser()):
        return True  # already open there
    data.open_dataset(path)  # which shows the first sample once the dataset is open
    return True
