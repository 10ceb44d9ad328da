"""A ready-made napari session: sample images, the model's predictions and scores.

:func:`run_demo` opens napari with the plugin's docks, opens the bundled
synthetic samples in the Data dock, loads a model, predicts every sample and
shows the prediction beside the label mask, with the IoU panel filled. Every
step runs through the docks' own background jobs, driven by a small timer on
the main thread, so the window stays responsive while the demo sets itself up.
``nuclei-unet demo [--screenshot PATH]`` calls it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

PLUGIN = "napari-nuclei-unet"
#: Dock display names (napari.yaml) in the order they are added.
DOCKS = ("Data", "Model", "Train", "Compare", "Retrain", "IoU panel")
WINDOW_SIZE = (1600, 1000)


def _add_docks(viewer: napari.Viewer) -> dict[str, tuple[Any, Any]]:
    """Add the plugin's docks and arrange them: a tab group over the IoU panel."""
    from napari_nuclei_unet.widgets._workers import notify

    docks: dict[str, tuple[Any, Any]] = {}
    for name in DOCKS:
        try:
            docks[name] = viewer.window.add_plugin_dock_widget(PLUGIN, name)
        except Exception as exc:  # a dock that fails must not stop the demo
            logger.warning("could not add the %s dock", name, exc_info=exc)
            notify(f"The demo could not open the {name} panel ({exc}).", warning=True)
    _arrange(viewer, docks)
    return docks


def _arrange(viewer: napari.Viewer, docks: dict[str, tuple[Any, Any]]) -> None:
    """Compare, Data, Model, Train and Retrain as tabs on the right; the IoU panel below."""
    from qtpy.QtCore import Qt

    main_window = viewer.window._qt_window
    right = Qt.DockWidgetArea.RightDockWidgetArea
    tabbed = [docks[name][0] for name in ("Compare", "Data", "Model", "Train", "Retrain")
              if name in docks]
    iou = docks["IoU panel"][0] if "IoU panel" in docks else None
    # napari tabifies a plugin's docks together; take them apart and rebuild the layout
    for dock in [*tabbed, iou]:
        if dock is not None:
            main_window.removeDockWidget(dock)
    if not tabbed:
        return
    first = tabbed[0]
    main_window.addDockWidget(right, first)
    first.show()
    if iou is not None:
        # split before tabifying: Qt adds a split of a tabbed dock as one more tab
        main_window.splitDockWidget(first, iou, Qt.Orientation.Vertical)
        iou.show()
    for dock in tabbed[1:]:
        main_window.tabifyDockWidget(first, dock)
        dock.show()
    first.raise_()
    _size_docks(viewer, docks)


def _size_docks(viewer: napari.Viewer, docks: dict[str, tuple[Any, Any]]) -> None:
    """Give the right column room for the IoU table; Compare needs little height."""
    from qtpy.QtCore import Qt

    main_window = viewer.window._qt_window
    if "Compare" not in docks:
        return
    first = docks["Compare"][0]
    main_window.resizeDocks([first], [WINDOW_SIZE[0] * 36 // 100], Qt.Orientation.Horizontal)
    if "IoU panel" in docks:
        total = main_window.height()
        main_window.resizeDocks(
            [first, docks["IoU panel"][0]], [total * 46 // 100, total * 54 // 100],
            Qt.Orientation.Vertical,
        )
        panel = docks["IoU panel"][1]
        splitter = getattr(panel, "splitter", None)
        if splitter is not None:  # a short table: give the summary its lines
            room = sum(splitter.sizes())
            table = min(room // 2, 40 + 24 * (panel.proxy.rowCount() + 1))
            summary = max(60, min(170, room - table - 100))
            splitter.setSizes([table, summary, room - table - summary])


def _raise_dock(docks: dict[str, tuple[Any, Any]], name: str) -> None:
    if name in docks:
        docks[name][0].raise_()


def _close_toasts(viewer: napari.Viewer) -> None:
    """Close the notification pop-ups (they would cover the screenshot's canvas)."""
    try:
        from napari._qt.dialogs.qt_notification import NapariQtNotification
    except ImportError:  # moved in another napari version: keep them
        return
    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()


def _demo_steps(viewer: napari.Viewer, docks: dict[str, tuple[Any, Any]], model: str | Path
                ) -> Generator[Any, None, None]:
    """The demo as a sequence of background jobs; each yield waits for that job."""
    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets._workers import notify

    session = session_for(viewer)
    data = docks.get("Data", (None, None))[1]
    model_dock = docks.get("Model", (None, None))[1]
    compare = docks.get("Compare", (None, None))[1]
    if data is None or compare is None:
        notify("The demo needs the Data and Compare panels.", warning=True)
        return

    yield data.open_bundled_samples()
    if session.dataset is None:
        return  # the reason was notified
    yield data.load_all()
    if not session.samples:
        notify("The demo could not load the sample images.", warning=True)
        return
    first = sorted(session.samples)[0]
    yield data.select(first)

    if model_dock is not None:
        yield model_dock.load(str(model))
    else:
        from napari_nuclei_unet.core.checkpoint import load_checkpoint

        yield session.jobs.start(
            "load model", load_checkpoint, str(model),
            on_returned=session.set_model, action="Loading the model",
        )
    if session.model is None:
        what = "The default model" if str(model) == "default" else f"The model {model}"
        notify(
            f"{what} could not be loaded, so the demo shows the images and label masks only. "
            "Train a model in the Train panel, or load a checkpoint in the Model panel.",
            warning=True,
        )
        return
    compare.set_mode("side by side")
    _raise_dock(docks, "Compare")
    yield compare.predict_all()
    if session.current_id is None or session.current_id not in session.samples:
        data.select(first)
    compare.refresh()
    _raise_dock(docks, "Compare")
    _size_docks(viewer, docks)


class _DemoRunner:
    """Run :func:`_demo_steps` on the main thread, one background job at a time.

    A ``QTimer`` polls the job of the current step (``worker.handled``, set by
    ``WorkerGuard`` once its handlers ran) and then advances the generator.
    """

    def __init__(self, steps: Generator[Any, None, None], parent: Any) -> None:
        from qtpy.QtCore import QTimer

        self._steps = steps
        self._waiting: Any = None
        self.done = False
        self._timer = QTimer(parent)
        self._timer.setInterval(50)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self._timer.start()
        self._tick()

    def _tick(self) -> None:
        if self.done:
            return
        if self._waiting is not None and not getattr(self._waiting, "handled", True):
            return
        try:
            self._waiting = next(self._steps)
        except StopIteration:
            self._finish()
        except Exception as exc:  # shown to the user, never a traceback dialog
            from napari_nuclei_unet.widgets._workers import notify_error

            notify_error(exc, "The demo")
            self._finish()

    def _finish(self) -> None:
        self.done = True
        self._timer.stop()


def _process_events_until(condition, timeout: float) -> bool:
    """Process Qt events until ``condition()`` is true or ``timeout`` seconds passed."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QApplication.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def run_demo(
    *,
    screenshot: str | Path | None = None,
    block: bool = True,
    model: str | Path = "default",
    timeout: float = 300.0,
) -> napari.Viewer:
    """Open napari with the sample images, a model's predictions and their scores.

    Parameters
    ----------
    screenshot : str or pathlib.Path, optional
        When given, wait until every step has finished (at most ``timeout``
        seconds), save a screenshot of the whole window to this PNG file and
        close napari.
    block : bool, optional
        Without ``screenshot``: run napari's event loop until the window is
        closed (True, for the command line) or return at once (False, e.g. in
        a notebook or a test; the demo then completes in the caller's loop).
    model : str or pathlib.Path, optional
        ``"default"`` for the shipped model, or a ``.safetensors`` checkpoint.
    timeout : float, optional
        Seconds to wait for the demo to finish before taking the screenshot.

    Returns
    -------
    napari.Viewer
        The viewer (already closed when ``screenshot`` was given).
    """
    import napari

    viewer = napari.Viewer(title="Nuclei U-Net demo")
    main_window = viewer.window._qt_window
    main_window.resize(*_fitting_size(main_window))
    docks = _add_docks(viewer)
    runner = _DemoRunner(_demo_steps(viewer, docks, model), parent=main_window)
    # the runner lives as long as the window (no module-level state)
    main_window._nuclei_unet_demo = runner
    runner.start()

    if screenshot is not None:
        from napari_nuclei_unet.widgets._session import session_for

        session = session_for(viewer)
        finished = _process_events_until(
            lambda: runner.done and not session.jobs.kinds(), timeout
        )
        if not finished:
            logger.warning("the demo did not finish within %s s; saving the screenshot anyway",
                           timeout)
        viewer.reset_view()
        _close_toasts(viewer)
        _process_events_until(lambda: False, 0.5)  # let the canvas and docks repaint
        path = Path(screenshot).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(path), canvas_only=False, flash=False)
        viewer.close()
        return viewer
    if block:
        napari.run()
    return viewer


def _fitting_size(window: Any) -> tuple[int, int]:
    """:data:`WINDOW_SIZE`, shrunk to the screen's available size."""
    screen = window.screen() if hasattr(window, "screen") else None
    if screen is None:
        return WINDOW_SIZE
    available = screen.availableGeometry()
    return (min(WINDOW_SIZE[0], available.width()), min(WINDOW_SIZE[1], available.height()))
