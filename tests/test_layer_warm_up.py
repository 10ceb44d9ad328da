"""Never freeze (issue 11): the plugin's layers are made ahead, reused, never moved.

napari builds a layer's visual, controls and layer-list row on the main thread
when it is added, and rebuilds its scene graph at every move; the workflow panel
therefore makes every layer hidden and empty while the window is idle, in the one
order both compare modes use, and the prediction shown is made in a worker.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from _widget_helpers import labelled_synthetic_samples

pytestmark = pytest.mark.gui


def _count_layer_list_events(viewer) -> dict[str, int]:
    counts = {"inserted": 0, "removed": 0, "moved": 0}
    for name in counts:
        getattr(viewer.layers.events, name).connect(
            lambda _e, n=name: counts.__setitem__(n, counts[n] + 1))
    return counts


def test_placeholders_are_reused_and_never_moved(make_napari_viewer):
    from napari_nuclei_unet.widgets import _compare_layers as cl
    from napari_nuclei_unet.widgets._layers import (
        IMAGE_LAYER,
        LABELS_LAYER,
        PLACEHOLDER_KEY,
        show_sample,
    )

    viewer = make_napari_viewer()
    for make in cl.placeholder_makers(viewer):
        make()
    names = [layer.name for layer in viewer.layers]
    assert names[:8] == cl.layer_order(IMAGE_LAYER, LABELS_LAYER)
    assert all(not layer.visible and layer.metadata[PLACEHOLDER_KEY] for layer in viewer.layers)
    made = {layer.name: layer for layer in viewer.layers}
    counts = _count_layer_list_events(viewer)

    small, large = labelled_synthetic_samples(2, (48, 64), first_seed=3)
    large.image = np.pad(large.image, ((0, 32), (0, 16), (0, 0)))
    large.labels = np.pad(large.labels, ((0, 32), (0, 16)))
    for sample, mode in ((small, cl.SIDE_BY_SIDE), (small, cl.OVERLAY),
                         (large, cl.OVERLAY), (large, cl.SIDE_BY_SIDE)):
        image, truth = show_sample(viewer, sample)
        cl.show_comparison(viewer, image_layer=image, truth_layer=truth,
                           pred_labels=sample.labels, true_labels=sample.labels,
                           mode=mode, sample_id=sample.id)
        assert viewer.layers[cl.PREDICTION_LAYER].data.shape == sample.labels.shape
    assert counts == {"inserted": 0, "removed": 0, "moved": 0}
    assert {layer.name: layer for layer in viewer.layers} == made  # the same objects
    assert viewer.layers[IMAGE_LAYER].visible and cl.side_by_side_active(viewer)
    assert not cl.grid_of(viewer).enabled  # the panes are translated layers, not napari's grid


def test_show_prediction_keeps_the_mode_shown(make_napari_viewer):
    """The IoU panel shows a prediction without knowing the mode: overlay stays overlay."""
    from napari_nuclei_unet.widgets import _compare_layers as cl
    from napari_nuclei_unet.widgets._layers import show_sample
    from napari_nuclei_unet.widgets._prediction_service import show_prediction

    viewer = make_napari_viewer()
    first, second = labelled_synthetic_samples(2, (48, 64), first_seed=5)
    image, truth = show_sample(viewer, first)
    cl.show_comparison(viewer, image_layer=image, truth_layer=truth, pred_labels=first.labels,
                       true_labels=first.labels, mode=cl.OVERLAY, sample_id=first.id)
    assert cl.shown_mode(viewer) == cl.OVERLAY
    assert show_prediction(viewer, second, pred_labels=second.labels)
    assert not cl.side_by_side_active(viewer) and cl.shown_mode(viewer) == cl.OVERLAY


def test_turn_runner_runs_one_step_per_turn(qtbot):
    from napari_nuclei_unet.widgets._layer_warm_up import TurnRunner

    ran: list[str] = []

    def fails():
        raise RuntimeError("a broken warm-up step")

    steps = [lambda: ran.append("a"), lambda: [lambda: ran.append("b1")], fails,
             lambda: ran.append("c")]
    runner = TurnRunner(steps, interval_ms=1).start()
    assert ran == [] and not runner.done  # nothing runs before the event loop turns
    qtbot.waitUntil(lambda: runner.done, timeout=5000)
    assert ran == ["a", "b1", "c"]


def test_steps_added_first_run_before_the_others_and_restart_a_done_runner(qtbot):
    from napari_nuclei_unet.widgets._layer_warm_up import TurnRunner

    ran: list[str] = []
    runner = TurnRunner([lambda: ran.append("a"), lambda: ran.append("b")], interval_ms=1)
    runner.extend([lambda: ran.append("first")], first=True).start()
    qtbot.waitUntil(lambda: runner.done, timeout=5000)
    runner.extend([lambda: ran.append("later")])
    assert not runner.done
    qtbot.waitUntil(lambda: runner.done, timeout=5000)
    assert ran == ["first", "a", "b", "later"]


def test_a_panel_opened_over_the_users_images_makes_the_sample_layers_only_for_a_dataset(
        make_napari_viewer, qtbot, monkeypatch):
    # a biologist with their own image opens the panel: the dataset workflow's nine
    # hidden layers would come above theirs in the layer list; they are made once a
    # dataset is opened, and its first image waits for them (no cold layer adding)
    from napari_nuclei_unet.widgets import _layer_warm_up
    from napari_nuclei_unet.widgets._layers import IMAGE_LAYER, is_placeholder
    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    monkeypatch.setattr(_layer_warm_up, "SAMPLE_LAYERS_WAIT_S", 120.0)  # a busy machine
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((32, 32), np.uint8), name="my cells")
    panel = WorkflowPanel(viewer)
    viewer.window.add_dock_widget(panel, name="all steps")
    qtbot.waitUntil(lambda: panel.warm_up.done and panel.tabs_built.done, timeout=120_000)
    qtbot.wait(300)
    assert [layer.name for layer in viewer.layers] == ["my cells"]
    assert panel.warm_up.sample_layers is None
    session = session_for(viewer)
    when_shown: list[tuple] = []
    session.current_changed.connect(lambda _id: when_shown.append(
        (panel.warm_up.sample_layers, len(viewer.layers))))
    panel.data.open_bundled_samples()
    qtbot.waitUntil(lambda: session.current_id is not None, timeout=60_000)
    assert when_shown[0] == (True, 10)  # all nine made before the first image showed
    assert viewer.layers[IMAGE_LAYER].visible and not is_placeholder(viewer.layers[IMAGE_LAYER])
    assert [layer.name for layer in viewer.layers].index("my cells") == 0  # below them
    qtbot.waitUntil(lambda: panel.warm_up.done, timeout=60_000)


def test_a_folder_that_is_not_a_dataset_leaves_the_users_layers_as_they_were(
        make_napari_viewer, qtbot, tmp_path):
    # its nine hidden layers came above the user's own, one of them selected: the brush
    # painted on a hidden layer (GUI check h_gui31, M2)
    from napari_nuclei_unet.widgets._layers import is_placeholder
    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((32, 32), np.uint8), name="my cells")
    mine = viewer.add_labels(np.zeros((32, 32), np.uint8), name="my corrections")
    panel = WorkflowPanel(viewer)
    viewer.window.add_dock_widget(panel, name="all steps")
    qtbot.waitUntil(lambda: panel.warm_up.done and panel.tabs_built.done, timeout=120_000)
    (tmp_path / "cells.tif").write_bytes(b"not a dataset")
    panel.data.open_dataset(tmp_path)  # the layers are made while it opens, then it fails
    qtbot.waitUntil(lambda: panel.warm_up.done and panel.data.session.jobs.running(
        "open dataset") is None, timeout=120_000)
    qtbot.wait(200)
    assert [layer.name for layer in viewer.layers] == ["my cells", "my corrections"]
    assert viewer.layers.selection.active is mine
    assert panel.warm_up.sample_layers is None
    panel.data.open_bundled_samples()  # a dataset after all: they are made again
    qtbot.waitUntil(lambda: panel.data.session.current_id is not None, timeout=120_000)
    assert sum(1 for layer in viewer.layers if not is_placeholder(layer)) >= 3
    assert len(viewer.layers) == 11
    qtbot.waitUntil(lambda: panel.warm_up.done, timeout=60_000)


def test_a_dataset_opened_right_after_a_closed_dialog_keeps_its_layers(
        make_napari_viewer, qtbot, monkeypatch):
    # the layers were taken away once made, the "forget" of the closed dialog still
    # pending (review h_rev16, M6)
    from qtpy.QtWidgets import QFileDialog

    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((32, 32), np.uint8), name="my cells")
    panel = WorkflowPanel(viewer)
    viewer.window.add_dock_widget(panel, name="all steps")
    qtbot.waitUntil(lambda: panel.warm_up.done and panel.tabs_built.done, timeout=120_000)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: "")
    panel.data._choose_folder()  # closed: the layers were asked for, then forgotten
    panel.data.open_bundled_samples()  # a dataset at once
    qtbot.waitUntil(lambda: panel.data.session.current_id is not None, timeout=120_000)
    qtbot.waitUntil(lambda: panel.warm_up.done, timeout=60_000)
    qtbot.wait(300)
    assert len(viewer.layers) >= 10 and panel.warm_up.sample_layers is True
    # taken away one per turn (GUI check h_gui32, N6): a dataset wanted meanwhile gets
    # them back, those already gone made again
    session = panel.data.session
    dataset, session.dataset = session.dataset, None
    runner = panel.warm_up
    runner.forget_sample_layers()
    qtbot.waitUntil(lambda: len(viewer.layers) < 9, timeout=60_000)  # some gone
    runner.want_sample_layers()
    session.dataset = dataset
    qtbot.waitUntil(lambda: runner.done, timeout=60_000)
    assert len(viewer.layers) >= 10 and runner.sample_layers is True


def test_nothing_waits_for_the_sample_layers_in_a_hidden_window(make_napari_viewer):
    from napari_nuclei_unet.widgets._layer_warm_up import LayerWarmUp

    viewer = make_napari_viewer()  # not shown: the warm-up cannot draw, so never runs
    runner = LayerWarmUp(viewer, [], interval_ms=1)
    runner.want_sample_layers()
    assert runner.sample_layers is False
    assert runner.after_sample_layers(lambda: None) is False  # the caller shows it now
    runner.stop()


def test_workflow_panel_makes_its_layers_while_idle(make_napari_viewer, qtbot):
    from napari_nuclei_unet.widgets import _compare_layers as cl
    from napari_nuclei_unet.widgets._layer_warm_up import brush_overlay
    from napari_nuclei_unet.widgets._layers import (
        IMAGE_LAYER,
        LABELS_LAYER,
        PLACEHOLDER_KEY,
        text_overlay,
    )
    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    viewer = make_napari_viewer(show=True)
    color = tuple(np.asarray(text_overlay(viewer).color).ravel())
    brush = brush_overlay(viewer)
    assert brush is not None and not brush.visible
    brush_opacity = brush.opacity
    brush_shown = []
    brush.events.visible.connect(lambda value: brush_shown.append((value, brush.opacity)))
    grid = cl.grid_of(viewer)
    grid_before = (grid.enabled, grid.stride, tuple(grid.shape))
    panel = WorkflowPanel(viewer)
    viewer.window.add_dock_widget(panel, name="all steps")
    assert len(viewer.layers) == 0  # nothing is made while the panel opens
    qtbot.waitUntil(lambda: panel.warm_up.done, timeout=120_000)
    names = [layer.name for layer in viewer.layers]
    assert names[:8] == cl.layer_order(IMAGE_LAYER, LABELS_LAYER)
    for layer in viewer.layers:
        assert not layer.visible and layer.metadata.get(PLACEHOLDER_KEY), layer.name
        assert layer.opacity > 0, layer.name  # the unseen first draw is undone
    overlay = text_overlay(viewer)
    assert not overlay.visible and tuple(np.asarray(overlay.color).ravel()) == color
    assert (grid.enabled, grid.stride, tuple(grid.shape)) == grid_before  # never touched
    # paint mode's brush circle was drawn once, unseen, and is hidden again
    assert brush_shown == [(True, 0.0), (False, 0.0)]
    assert not brush.visible and brush.opacity == brush_opacity


def test_large_images_are_labelled_and_coloured_in_a_worker(make_napari_viewer, qtbot,
                                                            monkeypatch):
    """The main thread only assigns layer data for a DSB2018-sized image."""
    from napari_nuclei_unet.widgets import _compare_arrays as arrays
    from napari_nuclei_unet.widgets import _compare_layers as cl
    from napari_nuclei_unet.widgets import compare_widget
    from napari_nuclei_unet.widgets._layers import show_sample
    from napari_nuclei_unet.widgets._session import session_for

    viewer = make_napari_viewer()
    session = session_for(viewer)
    (sample,) = labelled_synthetic_samples(1, (160, 160), first_seed=7)  # > SYNC_PIXELS
    session.samples[sample.id] = sample
    session.model = object()
    session.probabilities[sample.id] = (sample.labels > 0).astype(np.float32) * 0.9
    threads: list[bool] = []
    real = arrays.match_colors_to_truth

    def spy(*args, **kwargs):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(arrays, "match_colors_to_truth", spy)
    widget = compare_widget.CompareWidget(viewer)
    show_sample(viewer, sample)
    session.set_current(sample.id)
    qtbot.waitUntil(lambda: cl.shown_prediction_id(viewer) == sample.id, timeout=20_000)
    assert threads and not any(threads)  # computed, and never on the main thread
    assert widget.current_labels() is not None


def test_workflow_panel_builds_its_tabs_one_per_turn(make_napari_viewer, qtbot):
    """Opening the panel builds no tab (docking it is the click's work); they follow in
    idle turns, each widget made in one turn and placed in its tab in the next."""
    from qtpy.QtWidgets import QAbstractButton

    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    viewer = make_napari_viewer()
    panel = WorkflowPanel(viewer)
    qtbot.addWidget(panel)
    assert "data" not in panel.__dict__ and "train" not in panel.__dict__
    assert panel.tabs.count() >= 6 and panel.step_names()[:2] == ["data", "model"]
    events: list[str] = []
    real_make, real_place = panel._make_widget, panel._place
    panel._make_widget = lambda attr: (events.append(f"make {attr}"), real_make(attr))[1]
    panel._place = lambda attr: (events.append(f"place {attr}"), real_place(attr))[1]
    qtbot.waitUntil(lambda: "place data" in events, timeout=60_000)
    assert events == ["make data", "place data"]  # two turns
    assert panel.tabs.widget(0).widget() is panel.data
    assert panel.scores is not None and "scores" in panel.__dict__  # used early: built now
    panel.show_step("retrain")
    assert "retrain" in panel.__dict__ and panel.tabs.currentIndex() == 5
    qtbot.waitUntil(lambda: panel.tabs_built.done, timeout=60_000)
    for index in range(panel.tabs.count()):
        assert panel.tabs.widget(index).widget().findChildren(QAbstractButton)
    with pytest.raises(AttributeError):
        panel.no_such_step  # noqa: B018


@pytest.mark.parametrize("kind", ["warm up image display", "list devices",
                                  "warm up fine-tuning"])
def test_warm_up_and_tabs_wait_for_the_warm_up_workers(make_napari_viewer, qtbot, kind):
    """Adding a layer while a worker imports xarray blocked the main thread on its lock;
    a tab built beside a warm-up worker took twice as long (the GIL, at each Qt call)."""
    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets._warm_up import IMPORT_JOB, WARM_UP_JOBS, warming_up
    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    assert kind in WARM_UP_JOBS and IMPORT_JOB in WARM_UP_JOBS
    viewer = make_napari_viewer(show=True)
    session = session_for(viewer)
    release = threading.Event()
    session.layers_warmed_up = True  # the Data dock starts no import of its own
    session.jobs.start(kind, release.wait, 30, refuse=False, action="warming up")
    qtbot.waitUntil(lambda: session.jobs.is_running(kind), timeout=5_000)
    assert warming_up(viewer)
    panel = WorkflowPanel(viewer)
    viewer.window.add_dock_widget(panel, name="all steps")
    qtbot.wait(800)
    assert len(viewer.layers) == 0 and not panel.tabs_built.done
    assert "data" not in panel.__dict__  # no tab built beside the worker
    release.set()
    qtbot.waitUntil(lambda: panel.warm_up.done and panel.tabs_built.done, timeout=120_000)
    assert len(viewer.layers) >= 8


class _FakeJobs:
    def __init__(self) -> None:
        self.running: list[str] = []

    def kinds(self) -> list[str]:
        return list(self.running)


class _Viewer:
    """A stand-in viewer: the session is all the heap settling looks at."""


def _drive(steps: list, turns: int) -> int:
    """Run TurnRunner-style steps (a list returned is run next); return turns left."""
    steps = list(steps)
    while steps and turns:
        more = steps.pop(0)()
        if isinstance(more, list):
            steps[:0] = more
        turns -= 1
    return turns


def test_heap_is_frozen_once_when_no_job_runs(monkeypatch):
    """The warmed-up heap is frozen once no job (warm-up or user's) runs, never before.

    Full collections of the warmed-up heap froze the window 450-600 ms (one of
    them in a fine-tuning round); frozen, it is no longer walked by them.
    """
    import gc

    from napari_nuclei_unet.widgets._gc_pause import PAUSE, settle_heap_steps
    from napari_nuclei_unet.widgets._session import session_for

    viewer = _Viewer()
    jobs = _FakeJobs()
    session_for(viewer).jobs = jobs
    freezes: list[int] = []
    monkeypatch.setattr(gc, "freeze", lambda: freezes.append(1))
    jobs.running = ["warm up fine-tuning"]
    steps = settle_heap_steps(viewer, wait_s=60)
    assert _drive(steps, 30) == 0 and freezes == []  # still waiting, nothing frozen
    assert PAUSE.active  # full collections held off meanwhile
    jobs.running = []
    left = [_drive(steps, 1000)]
    assert freezes == [1] and left[-1] > 0 and not PAUSE.active
    PAUSE.thaw()
    steps = settle_heap_steps(viewer, wait_s=60)
    jobs.running = ["list devices"]
    left.append(_drive(steps, 7))
    jobs.running = []
    left.append(_drive(steps, 1000))
    assert freezes == [1, 1] and left[-1] > 0  # once, after the job


def test_heap_settling_gives_up_when_never_idle(monkeypatch):
    import gc

    from napari_nuclei_unet.widgets._gc_pause import PAUSE, settle_heap_steps
    from napari_nuclei_unet.widgets._session import session_for

    viewer = _Viewer()
    jobs = _FakeJobs()
    jobs.running = ["predict all"]
    session_for(viewer).jobs = jobs
    freezes: list = []
    monkeypatch.setattr(gc, "freeze", lambda: freezes.append(1))
    assert _drive(settle_heap_steps(viewer, wait_s=0.0), 1000) > 0  # ended by itself
    assert freezes == [] and not PAUSE.active and not PAUSE.frozen


def test_removing_a_layer_frozen_with_the_heap_frees_its_data(make_napari_viewer, qtbot):
    """A layer frozen with the heap, then removed, was never freed, nor its data.

    napari's layers sit in reference cycles: only a collection frees them, and a
    collection never looks at frozen objects. Removing one thaws the heap.
    """
    import gc
    import weakref

    from napari_nuclei_unet.widgets._gc_pause import PAUSE, settle_heap_steps

    viewer = make_napari_viewer()
    kept = viewer.add_image(np.zeros((64, 64), np.float32), name="kept")
    data = np.zeros((512, 512), np.float32)
    gone = weakref.ref(data)
    viewer.add_image(data, name="mine")
    del data
    assert _drive(settle_heap_steps(viewer, wait_s=60), 1000) > 0
    assert PAUSE.frozen
    viewer.layers.remove("mine")
    qtbot.wait(10)
    gc.collect()
    assert gone() is None and not PAUSE.frozen
    assert kept in viewer.layers


def test_workflow_panel_freezes_the_heap_after_its_warm_up(make_napari_viewer, qtbot,
                                                          monkeypatch):
    import gc

    from napari_nuclei_unet.widgets._gc_pause import PAUSE
    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    viewer = make_napari_viewer(show=True)
    layers_then: list[int] = []
    real = gc.freeze
    monkeypatch.setattr(gc, "freeze", lambda: layers_then.append(len(viewer.layers))
                        or real())
    panel = WorkflowPanel(viewer)
    viewer.window.add_dock_widget(panel, name="all steps")
    qtbot.waitUntil(lambda: panel.warm_up.done, timeout=180_000)
    assert layers_then and layers_then[-1] >= 8  # frozen after the layers were made
    assert PAUSE.frozen


def test_a_dock_opened_before_the_panel_warms_the_layers_up_once(make_napari_viewer, qtbot):
    # the separate docks start the viewer's one warm-up; the panel opened afterwards
    # still ends its collection pause and freezes the heap once its tabs are built
    from napari_nuclei_unet.widgets._gc_pause import PAUSE
    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.iou_panel import IoUPanel
    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    viewer = make_napari_viewer(show=True)
    iou = IoUPanel(viewer)
    viewer.window.add_dock_widget(iou, name="IoU panel")
    runner = session_for(viewer).layer_warm_up
    assert runner is not None
    panel = WorkflowPanel(viewer)
    viewer.window.add_dock_widget(panel, name="all steps")
    assert panel.warm_up is runner  # one warm-up per viewer
    qtbot.waitUntil(lambda: runner.done and panel.tabs_built.done, timeout=240_000)
    qtbot.waitUntil(lambda: not PAUSE.active, timeout=60_000)
    assert PAUSE.frozen
    assert sum(1 for layer in viewer.layers if layer.name == "prediction") == 1


def test_the_retrain_dock_alone_adds_no_placeholder_layers(make_napari_viewer, qtbot,
                                                           tmp_path, monkeypatch):
    # a user of their own images opens it beside the Segment dock: the dataset
    # workflow's hidden layers would push theirs down and move the view
    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.retrain_widget import RetrainWidget

    monkeypatch.setenv("NUCLEI_UNET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NUCLEI_UNET_CONFIG_DIR", str(tmp_path / "config"))
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((32, 32), np.uint8), name="my cells")
    dock = RetrainWidget(viewer)
    viewer.window.add_dock_widget(dock, name="Retrain")
    qtbot.wait(1500)
    assert session_for(viewer).layer_warm_up is None
    assert [layer.name for layer in viewer.layers] == ["my cells"]


def test_a_dock_starts_the_warm_up_through_naparis_plugin_proxy_quietly(make_napari_viewer):
    # napari hands a plugin's dock a proxy that toasts any private attribute read
    import warnings

    from napari.utils._proxies import PublicOnlyProxy

    from napari_nuclei_unet.widgets._layer_warm_up import ensure_layer_warm_up

    viewer = make_napari_viewer()
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        runner = ensure_layer_warm_up(PublicOnlyProxy(viewer))
    assert runner is not None


def test_a_viewer_closed_before_it_was_shown_stops_its_warm_up(make_napari_viewer, qtbot):
    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.iou_panel import IoUPanel

    viewer = make_napari_viewer()  # never shown: the warm-up waits
    IoUPanel(viewer)
    runner = session_for(viewer).layer_warm_up
    assert not runner.done
    viewer.close()
    qtbot.waitUntil(lambda: runner.done, timeout=10_000)


def test_no_full_collection_while_the_panel_warms_up(make_napari_viewer, qtbot):
    """The warm-ups' imports started full collections of 250-450 ms in the first clicks.

    Full collections are held off from the panel's opening until the heap is
    frozen in idle time (``_gc_pause``); young ones keep running.
    """
    import gc

    from napari_nuclei_unet.widgets._gc_pause import NO_FULL_COLLECTION, PAUSE
    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    thresholds = gc.get_threshold()
    assert gc.isenabled() and not PAUSE.active
    viewer = make_napari_viewer(show=True)
    generations: list[int] = []

    def seen(phase, info):
        if phase == "start" and PAUSE.active:
            generations.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        panel = WorkflowPanel(viewer)
        viewer.window.add_dock_widget(panel, name="all steps")
        assert gc.get_threshold()[2] == NO_FULL_COLLECTION  # from the first tab on
        qtbot.waitUntil(lambda: panel.tabs_built.done, timeout=120_000)
        assert gc.get_threshold()[2] == NO_FULL_COLLECTION
        qtbot.waitUntil(lambda: panel.warm_up.done, timeout=180_000)
    finally:
        gc.callbacks.remove(seen)
    assert 2 not in generations and 0 in generations  # young ones ran, no full one
    assert gc.get_threshold() == thresholds and gc.isenabled() and not PAUSE.active
    assert PAUSE.frozen


def test_closing_the_panel_ends_its_collection_pause(make_napari_viewer, qtbot):
    import gc

    from napari_nuclei_unet.widgets._gc_pause import PAUSE
    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    thresholds = gc.get_threshold()
    viewer = make_napari_viewer()  # never shown: the warm-up would wait
    panel = WorkflowPanel(viewer)
    assert PAUSE.active and gc.get_threshold() != thresholds
    panel.deleteLater()
    qtbot.waitUntil(lambda: not PAUSE.active, timeout=10_000)
    assert gc.get_threshold() == thresholds and not PAUSE.frozen


def test_closing_the_panel_thaws_the_heap(make_napari_viewer, qtbot):
    """The panel's own objects were frozen with the heap: closing it thaws it."""
    from napari_nuclei_unet.widgets._gc_pause import PAUSE
    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    viewer = make_napari_viewer()
    panel = WorkflowPanel(viewer)
    PAUSE.end_all()
    PAUSE.release(PAUSE.hold(), freeze=True)
    assert PAUSE.frozen
    panel.deleteLater()
    qtbot.waitUntil(lambda: not PAUSE.frozen, timeout=10_000)


def test_the_data_tab_fits_the_docked_panel(make_napari_viewer, qtbot):
    """The tabs are built after docking: the dock still takes the Data tab's width."""
    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    panel = WorkflowPanel(viewer)
    viewer.window.add_dock_widget(panel, name="all steps", area="right")
    qtbot.waitUntil(lambda: "data" in panel.__dict__ and not panel._unplaced, timeout=60_000)
    qtbot.wait(100)
    area = panel.tabs.widget(0)
    assert area.widget() is panel.data
    assert area.viewport().width() >= panel.data.minimumSizeHint().width()
    assert not area.horizontalScrollBar().isVisible()


def test_the_brush_warm_up_leaves_a_brush_in_use_shown(make_napari_viewer, qtbot):
    from napari_nuclei_unet.widgets._layer_warm_up import (
        TurnRunner,
        brush_overlay,
        brush_warm_up_steps,
    )

    viewer = make_napari_viewer(show=True)
    layer = viewer.add_labels(np.zeros((64, 64), np.int32))
    brush = brush_overlay(viewer)
    opacity = brush.opacity
    show, _wait, hide = brush_warm_up_steps(viewer)
    show()
    assert brush.visible and brush.opacity == 0.0
    layer.mode = "paint"  # the user starts painting before the warm-up hides it
    hide()
    assert brush.visible and brush.opacity == opacity
    layer.mode = "pan_zoom"
    assert not brush.visible
    assert TurnRunner  # the steps run one per turn in the panel (see above)


def test_caption_glyphs_are_warmed_up_a_few_per_turn(make_napari_viewer):
    """All caption characters in one draw held the window 150-250 ms (first glyphs)."""
    from napari_nuclei_unet.widgets._layer_warm_up import (
        CAPTION_CHARS,
        CAPTION_CHUNK,
        caption_chunks,
        layer_warm_up_steps,
    )
    from napari_nuclei_unet.widgets._layers import text_overlay

    viewer = make_napari_viewer()
    overlay = text_overlay(viewer)
    color = _colour(overlay)
    texts: list[str] = []
    overlay.events.text.connect(lambda event: texts.append(overlay.text))
    assert _drive(layer_warm_up_steps(viewer), 10_000) > 0
    drawn = [text for text in texts if text]
    assert set("".join(drawn)) == set(CAPTION_CHARS)  # every glyph, once
    assert len(drawn) == len(caption_chunks()) > 1
    assert all(len(text) <= CAPTION_CHUNK for text in drawn)
    assert not overlay.visible and _colour(overlay) == color


def test_a_caption_shown_during_the_glyph_warm_up_keeps_its_colour(make_napari_viewer):
    from napari_nuclei_unet.widgets._layer_warm_up import layer_warm_up_steps
    from napari_nuclei_unet.widgets._layers import text_overlay

    viewer = make_napari_viewer()
    overlay = text_overlay(viewer)
    color = _colour(overlay)
    steps = layer_warm_up_steps(viewer)
    while steps and overlay.text == "":  # up to the first chunk
        more = steps.pop(0)()
        if isinstance(more, list):
            steps[:0] = more
    assert overlay.text and _colour(overlay) != color
    overlay.text = "sample 0001 · 32 nuclei"  # a sample is shown meanwhile
    steps.pop(0)()  # the wait, then the next chunk
    steps.pop(0)()
    assert overlay.text == "sample 0001 · 32 nuclei" and _colour(overlay) == color
    _drive(steps, 10_000)
    assert overlay.visible and overlay.text == "sample 0001 · 32 nuclei"
    assert _colour(overlay) == color


def _colour(overlay):
    return None if overlay.color is None else tuple(overlay.color)


@pytest.mark.parametrize("had", ["nothing", "own layer"])
def test_the_warm_up_leaves_the_users_selection_as_it_was(make_napari_viewer, had):
    """napari selects each layer it adds: a hidden placeholder stayed the selected layer."""
    from napari_nuclei_unet.widgets._layer_warm_up import layer_warm_up_steps

    viewer = make_napari_viewer()
    if had == "own layer":
        own = viewer.add_image(np.zeros((32, 32), np.uint8), name="my image")
        viewer.add_image(np.zeros((32, 32), np.uint8), name="another")
        viewer.layers.selection.active = own
    expected = (set(viewer.layers.selection), viewer.layers.selection.active)
    assert _drive(layer_warm_up_steps(viewer), 10_000) > 0
    assert len(viewer.layers) >= 8
    assert (set(viewer.layers.selection), viewer.layers.selection.active) == expected


def test_a_layer_the_user_selects_during_the_warm_up_stays_selected(make_napari_viewer):
    from napari_nuclei_unet.widgets._layer_warm_up import layer_warm_up_steps

    viewer = make_napari_viewer()
    steps = layer_warm_up_steps(viewer)
    for _ in range(3):  # a few placeholders made
        more = steps.pop(0)()
        if isinstance(more, list):
            steps[:0] = more
    mine = viewer.add_image(np.zeros((32, 32), np.uint8), name="mine")
    viewer.layers.selection.active = mine
    _drive(steps, 10_000)
    assert viewer.layers.selection.active is mine


def test_a_placeholder_is_added_unselected_and_selected_in_a_turn_of_its_own(
        make_napari_viewer):
    """Showing a new layer's controls (~20 ms) was paid inside the turn that added it."""
    from napari_nuclei_unet.widgets._layer_warm_up import layer_warm_up_steps
    from napari_nuclei_unet.widgets._layers import PLACEHOLDER_KEY

    viewer = make_napari_viewer()
    own = viewer.add_image(np.zeros((32, 32), np.uint8), name="my image")
    steps = layer_warm_up_steps(viewer)
    more = steps.pop(0)()  # the first placeholder is made
    made = [layer for layer in viewer.layers if layer is not own]
    assert len(made) == 1 and made[0].metadata.get(PLACEHOLDER_KEY)
    assert viewer.layers.selection.active is own  # napari would have selected it
    assert set(viewer.layers.selection) == {own}
    assert isinstance(more, list) and len(more) == 1
    more[0]()  # the next turn: its controls are shown once
    assert viewer.layers.selection.active is made[0]
    _drive(steps, 10_000)
    assert viewer.layers.selection.active is own


def test_layers_added_unselected_leave_napari_as_it_was(make_napari_viewer):
    from napari_nuclei_unet.widgets._scene import added_unselected

    viewer = make_napari_viewer()
    first = viewer.add_image(np.zeros((8, 8), np.uint8), name="first")
    with added_unselected(viewer):
        viewer.add_image(np.zeros((8, 8), np.uint8), name="second")
    assert viewer.layers.selection.active is first
    third = viewer.add_image(np.zeros((8, 8), np.uint8), name="third")
    assert viewer.layers.selection.active is third  # napari's own way again


def test_titles_made_by_a_comparison_before_the_warm_up_sit_in_the_layer_order(
        make_napari_viewer):
    """A prediction shown before the warm-up made the titles left one on top of the list."""
    from napari_nuclei_unet.widgets import _compare_layers as cl
    from napari_nuclei_unet.widgets._layers import IMAGE_LAYER, LABELS_LAYER, show_sample

    viewer = make_napari_viewer()
    for make in cl.placeholder_makers(viewer)[:5]:  # the warm-up stopped before the titles
        make()
    assert cl.TITLE_RIGHT_LAYER not in viewer.layers
    (sample,) = labelled_synthetic_samples(1, (48, 64), first_seed=3)
    image, truth = show_sample(viewer, sample)
    cl.show_comparison(viewer, image_layer=image, truth_layer=truth,
                       pred_labels=sample.labels, true_labels=sample.labels,
                       mode=cl.SIDE_BY_SIDE, sample_id=sample.id)
    names = [layer.name for layer in viewer.layers]
    order = [n for n in cl.layer_order(IMAGE_LAYER, LABELS_LAYER) if n in names]
    assert [n for n in names if n in order] == order
    assert names.index(cl.TITLE_RIGHT_LAYER) < names.index(cl.ERROR_LAYER)


def test_a_wait_for_the_sample_layers_ends_and_its_errors_are_shown(make_napari_viewer,
                                                                    qtbot, monkeypatch):
    # a show waiting for the layers ran inside a warm-up step: its error was only logged,
    # and the shows waiting after it were skipped (review h_rev7)
    from _widget_helpers import capture_notifications
    from napari_nuclei_unet.widgets import _layer_warm_up
    from napari_nuclei_unet.widgets._layer_warm_up import LayerWarmUp

    monkeypatch.setattr(_layer_warm_up, "SAMPLE_LAYERS_WAIT_S", 0.2)
    viewer = make_napari_viewer(show=True)
    runner = LayerWarmUp(viewer, [], interval_ms=60)  # never started: never made
    runner.want_sample_layers()
    ran: list[str] = []

    def broken():
        raise RuntimeError("the layer was deleted")

    with capture_notifications() as notes:
        assert runner.after_sample_layers(broken)
        assert runner.after_sample_layers(lambda: ran.append("shown"))
        assert runner._interval == _layer_warm_up.HURRY_MS
        qtbot.waitUntil(lambda: ran == ["shown"], timeout=5000)
    assert notes.any("Showing the image failed")
    assert runner._interval == 60  # calm again once nothing waits
    runner.stop()
