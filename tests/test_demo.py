"""The demo: napari with the docks, bundled samples, a model's predictions and scores."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui


@pytest.fixture
def tiny_checkpoint(tmp_path):
    """An untrained tiny U-Net checkpoint (fast; the demo only needs it to run)."""
    import torch

    from napari_nuclei_unet.core.checkpoint import save_checkpoint
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.model import UNet

    torch.manual_seed(0)
    model = UNet(base_width=4, depth=2).eval()
    return save_checkpoint(tmp_path / "tiny", model, TrainConfig(base_width=4, depth=2), {})


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEI_UNET_CACHE_DIR", str(tmp_path / "cache"))


def _close_all_viewers():
    import napari

    napari.Viewer.close_all()


def test_demo_screenshot_is_written_and_not_blank(tiny_checkpoint, tmp_path, qapp,
                                                  monkeypatch):
    import napari
    from PIL import Image

    from napari_nuclei_unet.demo import run_demo
    from napari_nuclei_unet.widgets._layers import PLACEHOLDER_KEY
    from napari_nuclei_unet.widgets._session import session_for

    at_screenshot, warmed = [], []
    screenshot = napari.Viewer.screenshot

    def noting(self, *args, **kwargs):  # the layers as the picture shows them
        from qtpy.QtWidgets import QApplication

        at_screenshot.extend((layer.name, layer.opacity) for layer in self.layers
                             if layer.metadata.get(PLACEHOLDER_KEY))
        panels = [w for w in QApplication.allWidgets() if type(w).__name__ == "WorkflowPanel"]
        warmed.extend(panel.warm_up.done for panel in panels)
        return screenshot(self, *args, **kwargs)

    monkeypatch.setattr(napari.Viewer, "screenshot", noting)
    path = tmp_path / "shots" / "demo.png"
    try:
        viewer = run_demo(screenshot=path, model=tiny_checkpoint, timeout=120)
        session = session_for(viewer)
    finally:
        _close_all_viewers()
    assert path.is_file()
    image = np.asarray(Image.open(path).convert("RGB")).astype(int)
    height, width, _ = image.shape
    assert height > 400 and width > 600
    assert image.std() > 10  # not blank
    # the demo ran to the end: every bundled sample loaded, predicted and scored
    assert session.model is not None
    assert len(session.samples) >= 3
    assert set(session.probabilities) == set(session.samples)
    assert set(session.rows) == {s.id for s in session.samples.values() if s.has_labels}
    # the IoU panel's score colours (red..green cells) are in the picture
    saturation = image.max(axis=2) - image.min(axis=2)
    assert (saturation > 60).sum() > 1000
    # taken after the panel's warm-up: no layer caught at its unseen first draw
    assert warmed and all(warmed)
    assert at_screenshot and all(opacity > 0 for _name, opacity in at_screenshot)


def test_demo_without_model_explains_and_still_shows_data(tmp_path, qapp):
    from napari_nuclei_unet.demo import run_demo
    from napari_nuclei_unet.widgets._session import session_for

    path = tmp_path / "demo.png"
    messages = []
    from napari.utils.notifications import notification_manager

    def keep(notification):
        messages.append(str(notification.message))

    notification_manager.notification_ready.connect(keep)
    try:
        viewer = run_demo(screenshot=path, model=tmp_path / "missing.safetensors", timeout=60)
        session = session_for(viewer)
    finally:
        notification_manager.notification_ready.disconnect(keep)
        _close_all_viewers()
    assert path.is_file()
    assert session.model is None and session.samples
    assert any("could not be loaded" in m for m in messages), messages


def test_demo_without_blocking_returns_at_once_and_completes(tiny_checkpoint, qtbot):
    from napari_nuclei_unet.demo import run_demo
    from napari_nuclei_unet.widgets._compare_layers import PREDICTION_LAYER, side_by_side_active
    from napari_nuclei_unet.widgets._session import session_for

    viewer = run_demo(block=False, model=tiny_checkpoint)
    try:
        session = session_for(viewer)
        assert session.model is None  # returned before the background steps ran
        qtbot.waitUntil(
            lambda: bool(session.rows) and not session.jobs.kinds(), timeout=120_000
        )
        assert PREDICTION_LAYER in viewer.layers
        assert side_by_side_active(viewer)
        assert set(session.rows) == {s.id for s in session.samples.values() if s.has_labels}
    finally:
        _close_all_viewers()


def test_demo_docks_every_widget_of_the_manifest():
    from npe2 import PluginManifest

    import napari_nuclei_unet
    from napari_nuclei_unet.demo import DOCKS

    manifest = PluginManifest.from_file(
        __import__("pathlib").Path(napari_nuclei_unet.__file__).parent / "napari.yaml"
    )
    names = {w.display_name for w in manifest.contributions.widgets}
    assert set(DOCKS) <= names
    # the workflow panel holds every other dock of the manifest as a tab
    from napari_nuclei_unet.widgets.workflow_panel import TABS

    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    classes = {commands[w.command].rsplit(":", 1)[1] for w in manifest.contributions.widgets}
    assert classes - {"WorkflowPanel"} <= {cls for _t, _m, cls, _a in TABS}


@pytest.mark.parametrize("size", [(1280, 800), (1600, 1000)])
def test_demo_fits_the_screen_with_every_step_reachable(tiny_checkpoint, qtbot, size):
    from qtpy.QtWidgets import QAbstractButton, QScrollArea

    from napari_nuclei_unet.demo import run_demo
    from napari_nuclei_unet.widgets._session import session_for

    viewer = run_demo(block=False, model=tiny_checkpoint, window_size=size)
    try:
        session = session_for(viewer)
        qtbot.waitUntil(
            lambda: bool(session.rows) and not session.jobs.kinds(), timeout=120_000
        )
        window = viewer.window._qt_window
        # the window never has to be taller than the screen (was 2,037 px with six docks)
        assert window.minimumSizeHint().height() <= size[1]
        assert window.minimumSize().height() <= size[1]
        assert window.height() <= size[1]
        from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

        workflow = viewer.window._qt_window.findChild(WorkflowPanel)
        assert workflow is not None
        assert workflow.step_names()[:6] == [
            "data", "model", "compare", "scores", "train", "retrain"
        ]
        # every tab scrolls inside itself: each button can be scrolled to
        for index in range(workflow.tabs.count()):
            area = workflow.tabs.widget(index)
            assert isinstance(area, QScrollArea)
            assert area.widgetResizable()
            buttons = area.widget().findChildren(QAbstractButton)
            assert buttons
        # the canvas keeps most of the width
        canvas = viewer.window._qt_viewer.canvas.native
        assert canvas.width() >= 0.35 * window.width()  # panes were 165 px wide before
    finally:
        _close_all_viewers()


def test_the_demo_without_a_screen_says_how_to_run_it(capsys, monkeypatch):
    from napari_nuclei_unet._cli.demo import no_display_reason
    from napari_nuclei_unet.cli import main

    assert "xvfb-run -a nuclei-unet demo" in no_display_reason({}, "linux")
    assert no_display_reason({"DISPLAY": ":99"}, "linux") == ""
    assert no_display_reason({"WAYLAND_DISPLAY": "wayland-0"}, "linux") == ""
    assert no_display_reason({"QT_QPA_PLATFORM": "offscreen"}, "linux") == ""
    assert no_display_reason({}, "darwin") == "" and no_display_reason({}, "win32") == ""
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert main(["demo", "--screenshot", "never.png"]) == 2
    err = capsys.readouterr().err
    assert "nuclei-unet: error: There is no screen" in err and "xvfb-run" in err


def test_four_docks_and_the_panel_under_them_fit_a_laptop_screen(make_napari_viewer, qtbot):
    # the panel opened under four separate docks grew the window to 877 px (h_gui9)
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1280, 800)
    for name in ("Data", "Compare", "IoU panel", "Retrain", "Nuclei U-Net (all steps)"):
        viewer.window.add_plugin_dock_widget("napari-nuclei-unet", name)
        qtbot.wait(50)
    qtbot.wait(300)
    assert window.minimumSizeHint().height() <= 800
    assert window.height() <= 800


def test_the_seven_separate_docks_fit_a_laptop_screen(make_napari_viewer, qtbot):
    # each asked for 130 px: six grew the window to 870 px, seven to 1009, the bottom
    # docks and the status bar off the screen (GUI check h_gui38, L5)
    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    window.resize(1280, 800)
    for name in ("Data", "Model", "Compare", "IoU panel", "Train", "Retrain",
                 "Segment image layer"):
        viewer.window.add_plugin_dock_widget("napari-nuclei-unet", name)
        qtbot.wait(50)
    qtbot.wait(300)
    assert window.minimumSizeHint().height() <= 800
    assert window.height() <= 800
