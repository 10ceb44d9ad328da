"""Every way of closing napari lists the plugin's running jobs first.

napari lists the jobs registered with its window (a training, a fine-tuning round,
a prediction: ``_workers._register_task``) when the window's title-bar button closes
it, not when Ctrl+W, Ctrl+Q or the File menu do: those showed only "Confirm to close
window", and a training or a round was stopped without a word (GUI check h_gui47,
M1). Those close the window through ``close(quit_app, confirm_need=True)``, which this
module wraps, for its window only, to ask first with napari's own dialog and the jobs'
descriptions. A close from code (``confirm_need`` False) is not asked about, as
napari's is not; closing cancels the jobs as before (napari's ``closeEvent``).
"""

from __future__ import annotations

from typing import Any

#: Set on a window whose ``close`` is wrapped (once per window).
_WRAPPED = "_nuclei_unet_lists_jobs"


def list_jobs_on_every_close(viewer: Any) -> None:
    """Wrap ``viewer``'s window's ``close`` so that Ctrl+W / Ctrl+Q list running jobs."""
    from napari_nuclei_unet.widgets._layers import unwrapped
    from napari_nuclei_unet.widgets._workers import _window_private

    # napari's own objects, not the plugin's proxies (which warn on private names)
    window = unwrapped(_window_private(viewer, "_qt_window"))
    manager = unwrapped(_window_private(viewer, "_task_status_manager"))
    if window is None or manager is None or getattr(window, _WRAPPED, False):
        return
    import weakref

    # weak: the wrapper, kept by the window, must not keep the window (or its jobs) alive
    window_ref, manager_ref = weakref.ref(window), weakref.ref(manager)

    def close(quit_app: bool = False, confirm_need: bool = False) -> Any:
        window, manager = window_ref(), manager_ref()
        if window is None:
            return None
        jobs = manager.get_status() if confirm_need and manager is not None else []
        if jobs:
            from napari._qt.dialogs.confirm_close_dialog import ConfirmCloseDialog
            from qtpy.QtWidgets import QDialog

            dialog = ConfirmCloseDialog(window, close_app=quit_app, display_checkbox=False,
                                        extra_info="\n".join(jobs))
            if dialog.exec_() != QDialog.DialogCode.Accepted:
                return None
            confirm_need = False  # asked once, as the title-bar button asks
        return type(window).close(window, quit_app=quit_app, confirm_need=confirm_need)

    try:
        window.close = close
        setattr(window, _WRAPPED, True)
    except (AttributeError, TypeError):  # another napari: its own dialog stays
        pass
