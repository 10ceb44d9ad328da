"""Cancel in the "Segment image layer" dock: within one plane, and block by block.

A stand-in network holds its first forward call until Cancel was pressed, so the
stop always arrives before the plane is done (no timing).
"""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
import torch

from _widget_helpers import wait_worker

pytestmark = pytest.mark.gui


class HeldNet(torch.nn.Module):
    """Background everywhere; the first forward call waits until ``cancelled`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.cancelled = threading.Event()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 1:
            assert self.cancelled.wait(30), "Cancel was never pressed"
        return torch.full((x.shape[0], 1, *x.shape[2:]), -5.0)


@pytest.fixture
def dock(make_napari_viewer, monkeypatch):
    from napari_nuclei_unet.widgets import _segment_jobs
    from napari_nuclei_unet.widgets.segment_widget import SegmentWidget

    net = HeldNet()
    monkeypatch.setattr(_segment_jobs, "_resolve_model", lambda path, session_model: net)
    viewer = make_napari_viewer()
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment image layer")
    return viewer, widget, net


def cancel_on_first_update(widget, net, seen, word=""):
    """Press Cancel when the first update (whose message has ``word``) arrives."""
    shown = widget._on_progress

    def on_progress(update):
        seen.append(update)
        shown(update)
        if not widget._stop and word in update.message:
            widget.cancel()
            net.cancelled.set()

    widget._on_progress = on_progress


def test_cancel_stops_one_plane_between_its_tiles(dock, qtbot):
    viewer, widget, net = dock
    plane = np.random.default_rng(0).integers(0, 256, (2100, 2100)).astype(np.uint8)
    viewer.add_image(plane, name="big")  # passes of 4 and 9 tiles of 1024 px, 2 per batch
    widget.image.value = viewer.layers["big"]
    seen = []
    cancel_on_first_update(widget, net, seen, "tile")
    worker = widget.segment()
    wait_worker(qtbot, worker)
    # Cancel came before the first batch, or while it ran: none of the plane's other 6+
    assert net.calls <= 1
    assert seen[1].message == "the image: tile 0 of 4 (step 1, image at 50 % size)"
    assert widget.status.text() == ("Cancelled before the plane was finished: no labels "
                                    "were kept.")
    assert widget.result_layer is None and [layer.name for layer in viewer.layers] == ["big"]
    assert widget.segment_button.enabled and not widget.cancel_button.enabled


def test_one_plane_shows_its_tiles_as_it_goes(dock, qtbot):
    viewer, widget, net = dock
    net.cancelled.set()  # nothing held: runs to the end
    viewer.add_image(np.random.default_rng(1).integers(0, 256, (1100, 1100)).astype(np.uint8),
                     name="big")
    widget.image.value = viewer.layers["big"]
    updates, shown = [], []
    show = widget._on_progress

    def on_progress(update):
        show(update)
        updates.append(update.message)
        shown.append((widget.status.text(), widget.progress.maximum()))

    widget._on_progress = on_progress
    wait_worker(qtbot, widget.segment())
    assert [m for m in updates if "step 1," in m] == [
        f"the image: tile {k} of 4 (step 1, image at full size)" for k in (0, 2, 4)]
    # the status line moves within the plane (it repaints at most 10 times a second)
    # with the time so far (how many steps a plane takes is not known ahead), and a busy
    # bar, not one stuck at 0 % for the whole plane
    moving = [(text, top) for text, top in shown if "— the image: tile " in text]
    assert moving and all(re.match(r"0/1 planes, \d+ s so far — the image: tile \d+ of \d+ "
                                   r"\(step \d, image at ", text) and top == 0
                          for text, top in moving)
    assert widget.status.text().startswith("Segmentation done: 1 plane(s), 0 nuclei")


def test_cancel_of_a_block_by_block_image_says_nothing_was_kept(dock, qtbot):
    import dask.array as da

    viewer, widget, net = dock
    plane = np.random.default_rng(2).integers(0, 256, (300, 360)).astype(np.uint8)
    viewer.add_image(da.from_array(plane, chunks=(128, 128)), name="lazy")
    widget.image.value = viewer.layers["lazy"]
    seen = []
    cancel_on_first_update(widget, net, seen)
    wait_worker(qtbot, widget.segment())
    # the block under way when Cancel came may finish; the message says so either way
    assert widget.status.text() in (
        "Cancelled after 0 of 1 blocks. A large image's labels are kept only when all its "
        "blocks are done, so none were kept.",
        "Cancelled while the 1 blocks were being joined. A large image's labels are kept "
        "only once its blocks are joined, so none were kept.")
    assert widget.result_layer is None and [layer.name for layer in viewer.layers] == ["lazy"]


def test_closing_the_dock_stops_its_segmentation(dock, qtbot):
    """The job ran on for 34 s after the dock was closed, and its result went nowhere."""
    from qtpy.QtCore import QCoreApplication, QEvent

    from _widget_helpers import capture_notifications

    viewer, widget, net = dock
    plane = np.random.default_rng(0).integers(0, 256, (2100, 2100)).astype(np.uint8)
    viewer.add_image(plane, name="big")
    widget.image.value = viewer.layers["big"]
    worker = widget.segment()
    qtbot.waitUntil(lambda: net.calls == 1, timeout=30_000)  # in the first tile
    with capture_notifications() as notes:
        # napari's x: it only takes the widget out of its dock, which the job's cancel in
        # napari's activity list kept alive (GUI check h_gui37, H1)
        viewer.window.remove_dock_widget(widget)
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        net.cancelled.set()
        qtbot.waitUntil(lambda: worker.handled, timeout=30_000)
    assert net.calls == 1  # none of the plane's other tiles ran
    assert notes.any("The Segment dock was closed: its segmentation stopped.")
    assert [layer.name for layer in viewer.layers] == ["big"]


def test_deleting_the_image_stops_its_segmentation(dock, qtbot):
    """The job ran on for 40 s and added a labels layer with no image under it."""
    from _widget_helpers import capture_notifications

    viewer, widget, net = dock
    plane = np.random.default_rng(0).integers(0, 256, (2100, 2100)).astype(np.uint8)
    viewer.add_image(plane, name="big")
    viewer.add_image(plane[:64, :64], name="small")
    widget.image.value = viewer.add_image(plane[:64, :64], name="kept")
    net.cancelled.set()  # segmented at once, its result shown once big is gone
    wait_worker(qtbot, widget.segment())
    net.cancelled.clear()
    net.calls = 0
    widget.image.value = viewer.layers["big"]
    worker = widget.segment()
    qtbot.waitUntil(lambda: net.calls == 1, timeout=30_000)  # in the first tile
    with capture_notifications() as notes:
        viewer.layers.remove("small")  # another layer: nothing happens
        assert not widget._stop
        viewer.layers.remove("big")
        net.cancelled.set()
        wait_worker(qtbot, worker)
    assert net.calls == 1 and not notes.any("big")  # no toast (see segment_widget)
    # said, and kept when the image chosen next is shown (it was overwritten within half
    # a second, with no toast: GUI check h_gui38, L4)
    assert widget.status.text().startswith("big was deleted: its labels were not added.")
    assert [layer.name for layer in viewer.layers] == ["kept", "kept labels"]


def test_add_plane_after_a_run_without_result_speaks_of_the_image_shown(dock, qtbot, tmp_path):
    """Segment a, then b, delete b during its run: 'Add plane' paired b with a's labels."""
    from napari_nuclei_unet.core.finetune import CorrectionStore

    viewer, widget, net = dock
    net.cancelled.set()  # a: nothing held
    viewer.add_image(np.random.default_rng(3).integers(0, 256, (64, 64)).astype(np.uint8),
                     name="a")
    widget.image.value = viewer.layers["a"]
    wait_worker(qtbot, widget.segment())
    net.calls, net.cancelled = 0, threading.Event()
    viewer.add_image(np.random.default_rng(4).integers(0, 256, (2100, 2100)).astype(np.uint8),
                     name="b")
    widget.image.value = viewer.layers["b"]
    worker = widget.segment()
    qtbot.waitUntil(lambda: net.calls == 1, timeout=30_000)
    viewer.layers.remove("b")
    net.cancelled.set()
    wait_worker(qtbot, worker)
    wait_worker(qtbot, widget.add_to_project(tmp_path / "project"))
    assert CorrectionStore(tmp_path / "project").ids() == ["a-plane0"]


class HoldAfterFirstPlane(torch.nn.Module):
    """Background everywhere; once ``hold`` is set, the next forward call waits for ``go``."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.hold, self.holding, self.go = (threading.Event() for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hold.is_set() and not self.go.is_set():
            self.holding.set()
            assert self.go.wait(30), "never let go"
        return torch.full((x.shape[0], 1, *x.shape[2:]), -5.0)


def test_closing_the_dock_mid_stack_keeps_the_planes_done(make_napari_viewer, qtbot,
                                                          monkeypatch):
    # they were thrown away with "its segmentation stopped", where Cancel keeps them
    # (README check h_readme2, M1)
    from qtpy.QtCore import QCoreApplication, QEvent

    from _widget_helpers import capture_notifications
    from napari_nuclei_unet.widgets import _segment_jobs
    from napari_nuclei_unet.widgets._segment_jobs import RESULT_KEY
    from napari_nuclei_unet.widgets.segment_widget import SegmentWidget

    net = HoldAfterFirstPlane()
    monkeypatch.setattr(_segment_jobs, "_resolve_model", lambda path, session_model: net)
    viewer = make_napari_viewer()
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment image layer")
    stack = np.random.default_rng(3).integers(0, 256, (3, 96, 96)).astype(np.uint8)
    viewer.add_image(stack, name="stack")
    widget.image.value = viewer.layers["stack"]
    widget.planes.value = "all planes"
    from napari_nuclei_unet.core import own_images

    real = own_images.segment_stack

    def first_plane_then_hold(*args, **kwargs):  # in the worker: no race with the planes
        job = real(*args, **kwargs)
        try:
            while True:
                update = next(job)
                if update.done >= 1:  # the first plane is done: hold the next one
                    net.hold.set()
                yield update
        except StopIteration as end:
            return end.value

    monkeypatch.setattr(own_images, "segment_stack", first_plane_then_hold)
    worker = widget.segment()
    qtbot.waitUntil(net.holding.is_set, timeout=60_000)
    with capture_notifications() as notes:
        viewer.window.remove_dock_widget(widget)
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        net.go.set()
        qtbot.waitUntil(lambda: worker.handled, timeout=30_000)
    assert notes.any("The Segment dock was closed: its segmentation stopped.")
    assert notes.any("The Segment dock was closed while it worked: the 1 plane(s) it had "
                     "segmented are kept as the layer “stack labels”.")
    kept = viewer.layers["stack labels"]
    assert kept.metadata[RESULT_KEY]["planes"] == [0] and kept.data.shape == (3, 96, 96)


@pytest.mark.parametrize("earlier", [False, True])
def test_a_result_of_an_image_no_longer_chosen_does_not_take_over_the_dock(
        make_napari_viewer, qtbot, monkeypatch, earlier):
    # it filled the table, Export CSV and Add plane under the other image's name
    # (README check h_readme2, M2); an image segmented before: its earlier result's
    # layer, refilled, filled the table at the end (re-check on main)
    from napari_nuclei_unet.widgets import _segment_jobs
    from napari_nuclei_unet.widgets.segment_widget import SegmentWidget

    net = HoldAfterFirstPlane()
    monkeypatch.setattr(_segment_jobs, "_resolve_model", lambda path, session_model: net)
    viewer = make_napari_viewer()
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment image layer")
    viewer.add_image(np.random.default_rng(4).integers(0, 256, (96, 96)).astype(np.uint8),
                     name="first")
    viewer.add_image(np.random.default_rng(5).integers(0, 256, (96, 96)).astype(np.uint8),
                     name="second")
    widget.image.value = viewer.layers["first"]  # ("second" hidden, to show "first")
    if earlier:
        wait_worker(qtbot, widget.segment())
        qtbot.waitUntil(lambda: widget.segment_button.enabled, timeout=10_000)
    net.hold.set()
    worker = widget.segment()
    qtbot.waitUntil(net.holding.is_set, timeout=30_000)  # held in its first pass
    widget.image.value = viewer.layers["second"]
    net.go.set()
    qtbot.waitUntil(lambda: worker.handled, timeout=60_000)
    qtbot.waitUntil(lambda: widget.segment_button.enabled, timeout=10_000)
    assert widget.image.value.name == "second"
    assert widget.status.text() == ("first's result is ready as the layer “first labels”: "
                                    "choose first in Image to see it here.")
    assert widget.result_layer is None and widget.table.model().rowCount() == 0
    assert not widget.export_button.enabled
    assert not viewer.layers["first labels"].visible
    # the canvas shows the image chosen, and the brush is not on the hidden result
    assert viewer.layers["second"].visible
    assert viewer.layers.selection.active is not viewer.layers["first labels"]
    widget.image.value = viewer.layers["first"]  # chosen again: it is the dock's
    qtbot.waitUntil(lambda: widget.result_layer is not None, timeout=10_000)
    assert widget.result_layer.name == "first labels"
    assert "to see it here" not in widget.status.text()
