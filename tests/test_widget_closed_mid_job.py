"""A dock closed with napari's x while its job runs: the job's result still reaches the session.

napari's x destroys a dock now (GUI check h_gui37, H1), and a job's handler that updated
the dock's widgets first failed there and dropped the rest: a model loaded, a dataset
opened, labels saved were lost without a word (review h_rev20, M1). And the panel closed
before its tabs were built went on building them, hidden and connected (M2).
"""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
from qtpy.QtCore import QCoreApplication, QEvent

from _widget_helpers import disc_labels, segment_dock, wait_worker

pytestmark = pytest.mark.gui


def close_with_x(viewer, widget) -> None:
    """What napari's x does, and Qt's deleting the widget that follows."""
    from qtpy import sip

    viewer.window.remove_dock_widget(widget)
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert sip.isdeleted(widget)


def segmented_dock(make_napari_viewer, qtbot, name: str):
    """A Segment dock that has segmented image ``name`` (two nuclei); viewer and dock."""
    viewer, widget = segment_dock(make_napari_viewer())
    truth = disc_labels((48, 64), [(12, 12), (30, 40)])
    widget.image.value = viewer.add_image((truth > 0).astype(np.uint16) * 900 + 50, name=name)
    wait_worker(qtbot, widget.segment())
    return viewer, widget


def gated(function):
    """``function`` waiting for the returned event first (in the job's thread)."""
    import inspect

    gate = threading.Event()

    def wait_then(*args, **kwargs):
        gate.wait(60)
        return function(*args, **kwargs)

    def wait_then_yield(*args, **kwargs):  # a job yielding progress
        gate.wait(60)
        return (yield from function(*args, **kwargs))

    return (wait_then_yield if inspect.isgeneratorfunction(function) else wait_then), gate


def test_a_model_loaded_after_the_model_dock_closed_is_used(make_napari_viewer, qtbot,
                                                           monkeypatch):
    from napari_nuclei_unet.widgets import model_widget
    from napari_nuclei_unet.widgets._session import session_for

    slow, gate = gated(model_widget._load)
    monkeypatch.setattr(model_widget, "_load", slow)
    viewer = make_napari_viewer()
    widget = model_widget.ModelWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Model")
    session = session_for(viewer)
    wait_worker(qtbot, session.jobs.running("list devices"))
    worker = widget.load("default")
    close_with_x(viewer, widget)
    gate.set()
    wait_worker(qtbot, worker, timeout=120_000)
    assert session.model is not None and str(session.model.path).endswith("default.safetensors")


def test_a_dataset_opened_after_the_data_dock_closed_is_open(make_napari_viewer, qtbot,
                                                            monkeypatch, dsb_folder):
    from napari_nuclei_unet.widgets import data_browser
    from napari_nuclei_unet.widgets._session import session_for

    slow, gate = gated(data_browser._open_dataset)
    monkeypatch.setattr(data_browser, "_open_dataset", slow)
    viewer = make_napari_viewer()
    widget = data_browser.DataBrowserWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Data")
    session = session_for(viewer)
    worker = widget.open_dataset(dsb_folder)
    close_with_x(viewer, widget)
    gate.set()
    wait_worker(qtbot, worker, timeout=60_000)
    assert session.dataset is not None and len(session.dataset) > 0
    again = data_browser.DataBrowserWidget(viewer)  # reopened: it shows the dataset
    viewer.window.add_dock_widget(again, name="Data")
    assert again.row_count() == len(session.dataset)


def test_labels_saved_after_the_segment_dock_closed_are_marked_saved(make_napari_viewer,
                                                                    qtbot, monkeypatch,
                                                                    tmp_path):
    # the layer stayed "saving …": kept and offered again as unsaved when napari closed
    from napari_nuclei_unet.widgets import _segment_outputs
    from napari_nuclei_unet.widgets._unsaved_labels import UNSAVED_KEY

    viewer, widget = segmented_dock(make_napari_viewer, qtbot, "a")
    layer = widget.result_layer
    layer.paint((20, 20), 5)
    assert layer.metadata[UNSAVED_KEY] is True
    slow, gate = gated(_segment_outputs.write_labels)
    monkeypatch.setattr(_segment_outputs, "write_labels", slow)
    worker = widget.save_labels(tmp_path / "a_labels.tif", background=True)
    close_with_x(viewer, widget)
    gate.set()
    wait_worker(qtbot, worker, timeout=60_000)
    assert (tmp_path / "a_labels.tif").exists() and layer.metadata[UNSAVED_KEY] is False


def test_the_panel_closed_before_its_tabs_are_built_builds_no_more(make_napari_viewer, qtbot):
    from qtpy.QtWidgets import QApplication

    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    viewer = make_napari_viewer()
    session = session_for(viewer)
    panel = WorkflowPanel(viewer)
    viewer.window.add_dock_widget(panel, name="all steps")
    runner = panel.tabs_built
    close_with_x(viewer, panel)
    del panel
    qtbot.waitUntil(lambda: runner.done, timeout=60_000)
    qtbot.wait(300)
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
    orphans = [type(w).__name__ for w in QApplication.topLevelWidgets()
               if type(w).__module__.startswith("napari_nuclei_unet")]
    # the hidden Compare step kept hiding the images opened next (h_gui36 M1 again)
    assert session.compare_views == 0 and orphans == []


def test_closing_napari_after_a_dock_that_ran_a_job_was_closed(make_napari_viewer, qtbot):
    # napari calls the cancel of every task it was given, the ended ones too: the closed
    # dock's raised on its deleted widgets, and the running job's was never called (its
    # round lost the note that napari's closing stopped it: GUI check h_gui38, H1)
    from napari_nuclei_unet.widgets._session import session_for

    viewer, widget = segmented_dock(make_napari_viewer, qtbot, "a")
    close_with_x(viewer, widget)
    gate, cancelled = threading.Event(), []

    def cancel() -> None:
        cancelled.append(True)
        gate.set()

    worker = session_for(viewer).jobs.start("slow job", gate.wait, 60, cancel=cancel,
                                            viewer=viewer, action="Waiting")
    viewer.close()  # the window's close (no confirmation dialog here)
    wait_worker(qtbot, worker, timeout=10_000)
    assert cancelled == [True]


@pytest.mark.parametrize("name", ["compare_widget.CompareWidget", "iou_panel.IoUPanel"])
def test_a_prediction_of_a_closed_dock_stops_and_says_so(make_napari_viewer, qtbot, name):
    # Predict all (Score all) ran on without a word after its dock was closed, and a dock
    # opened again could neither show nor cancel it (GUI check h_gui38, M1)
    import importlib

    from _widget_helpers import capture_notifications, labelled_synthetic_samples
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.widgets._session import session_for

    viewer = make_napari_viewer()
    session = session_for(viewer)
    samples = labelled_synthetic_samples(16, (96, 112), first_seed=10)
    session.add_samples(samples)
    session.set_model(load_checkpoint("default"))
    module, cls = name.split(".")
    dock = getattr(importlib.import_module(f"napari_nuclei_unet.widgets.{module}"), cls)(viewer)
    viewer.window.add_dock_widget(dock, name=cls)
    worker = dock.predict_all() if hasattr(dock, "predict_all") else dock.score_all()
    qtbot.waitUntil(lambda: session.jobs.running("predict") is not None, timeout=10_000)
    with capture_notifications() as notes:
        close_with_x(viewer, dock)
        wait_worker(qtbot, worker, timeout=120_000)
    assert notes.any("panel was closed: ") and notes.any("stops after the current image"), \
        notes.messages
    assert len(session.probabilities) < len(samples)  # stopped, not run to the end


def test_a_result_deleted_while_its_plane_is_added_is_not_said_unsaved(make_napari_viewer,
                                                                      qtbot, monkeypatch,
                                                                      tmp_path):
    # Add plane, then the result deleted before the add ended: the labels were in the
    # project, and the dock said they were not saved, then and in the next session
    # (GUI check h_gui38, L1)
    from napari_nuclei_unet.widgets import _segment_outputs
    from napari_nuclei_unet.widgets._unsaved_labels import kept_words, unsaved_dir

    viewer, widget = segmented_dock(make_napari_viewer, qtbot, "b")
    layer = widget.result_layer
    layer.paint((20, 20), 5)
    slow, gate = gated(_segment_outputs._add_plane)
    monkeypatch.setattr(_segment_outputs, "_add_plane", slow)
    worker = widget.add_to_project(tmp_path / "p")
    viewer.layers.remove(layer)  # kept as unsaved: the add has not ended
    (kept,) = unsaved_dir().glob("b_labels-*.tif")
    gate.set()
    wait_worker(qtbot, worker, timeout=60_000)
    assert not kept.exists() and (unsaved_dir() / "added" / kept.name).exists()
    assert kept_words("b") == ""
