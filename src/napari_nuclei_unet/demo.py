"""A ready-made napari session: sample images, the model's predictions and scores.

:func:`run_demo` opens napari with the plugin's workflow panel (every step as a
tab of one dock, which fits a 1280x800 screen), opens the bundled
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
#: The one dock the demo opens (napari.yaml display name): every step as a tab.
PANEL = "Nuclei U-Net (all steps)"
#: Dock display names (napari.yaml) the demo adds.
DOCKS = (PANEL,)
#: Step names of the demo's code -> attribute of the workflow panel.
STEPS = {"Data": "data", "Model": "model", "Compare": "compare", "IoU panel": "scores",
         "Train": "train", "Retrain": "retrain"}
WINDOW_SIZE = (1600, 1000)
#: Share of the window's width given to the panel.
PANEL_SHARE = 0.36


def _add_docks(viewer: napari.Viewer) -> dict[str, tuple[Any, Any]]:
    """Add the workflow panel; return its steps as ``{name: (dock, widget)}``."""
    from napari_nuclei_unet.widgets._workers import notify

    try:
        dock, panel = viewer.window.add_plugin_dock_widget(PLUGIN, PANEL)
    except Exception as exc:  # the demo explains instead of a traceback
        logger.warning("could not add the workflow panel", exc_info=exc)
        notify(f"The demo could not open the Nuclei U-Net panel ({exc}).", warning=True)
        return {}
    docks = {name: (dock, panel.widget_of(attr)) for name, attr in STEPS.items()
             if panel.widget_of(attr) is not None}
    docks["panel"] = (dock, panel)
    _size_docks(viewer, docks)
    return docks


def _size_docks(viewer: napari.Viewer, docks: dict[str, tuple[Any, Any]]) -> None:
    """Give the panel about a third of the window's width; the canvas keeps the rest."""
    from qtpy.QtCore import Qt

    if "panel" not in docks:
        return
    main_window = viewer.window._qt_window
    dock = docks["panel"][0]
    width = max(360, int(main_window.width() * PANEL_SHARE))
    main_window.resizeDocks([dock], [width], Qt.Orientation.Horizontal)
    scores = docks.get("IoU panel", (None, None))[1]
    splitter = getattr(scores, "splitter", None)
    if splitter is not None:  # a short table: give the summary its lines
        room = max(sum(splitter.sizes()), 300)
        table = min(room // 2, 40 + 24 * (scores.proxy.rowCount() + 1))
        summary = max(60, min(170, room - table - 100))
        splitter.setSizes([table, summary, room - table - summary])


def _raise_dock(docks: dict[str, tuple[Any, Any]], name: str) -> None:
    if "panel" in docks and name in STEPS:
        docks["panel"][1].show_step(STEPS[name])


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
    yield _SampleLayersMade(session)  # as a user waits for the first image
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
    _raise_dock(docks, "IoU panel")
    _size_docks(viewer, docks)


class _SampleLayersMade:
    """A step's wait: ``handled`` once the viewer's warm-up has made its sample layers."""

    def __init__(self, session: Any) -> None:
        import time

        self._session = session
        self._until = time.monotonic() + 10.0  # the first image waits no longer

    @property
    def handled(self) -> bool:
        import time

        runner = self._session.layer_warm_up
        return (getattr(runner, "sample_layers", None) is not False
                or time.monotonic() > self._until)


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
    window_size: tuple[int, int] | None = None,
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
    window_size : tuple of int, optional
        ``(width, height)`` of the window (default :data:`WINDOW_SIZE`, shrunk to
        the screen); 1280x800 fits too.

    Returns
    -------
    napari.Viewer
        The viewer (already closed when ``screenshot`` was given).
    """
    import napari

    viewer = napari.Viewer(title="Nuclei U-Net demo")
    main_window = viewer.window._qt_window
    main_window.resize(*_fitting_size(main_window, window_size or WINDOW_SIZE))
    docks = _add_docks(viewer)
    runner = _DemoRunner(_demo_steps(viewer, docks, model), parent=main_window)
    # the runner lives as long as the window (no module-level state)
    main_window._nuclei_unet_demo = runner
    runner.start()

    if screenshot is not None:
        from napari_nuclei_unet.widgets._session import session_for

        session = session_for(viewer)
        panel = docks.get("panel", (None, None))[1]
        warm_up = getattr(panel, "warm_up", None)  # its unseen first draws, then settled

        def finished_all() -> bool:
            return (runner.done and not session.jobs.kinds()
                    and (warm_up is None or warm_up.done))

        finished = _process_events_until(finished_all, timeout)
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


def _fitting_size(window: Any, size: tuple[int, int] = WINDOW_SIZE) -> tuple[int, int]:
    """``size``, shrunk to the screen's available size."""
    screen = window.screen() if hasattr(window, "screen") else None
    if screen is None:
        return size
    available = screen.availableGeometry()
    return (min(size[0], available.width()), min(size[1], available.height()))
