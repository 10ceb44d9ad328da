"""The Retrain dock: correct a mask, add it to the project, fine-tune, switch versions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _widget_helpers import (
    capture_notifications,
    labelled_synthetic_samples,
    pixels_of,
    rendered,
    wait_worker,
)
from napari_nuclei_unet.core.finetune import NOT_ADOPTED

pytestmark = pytest.mark.gui

SHAPE = (64, 64)


def make_samples(n: int = 4):
    return labelled_synthetic_samples(n, SHAPE, first_seed=20)


def fake_probability(sample) -> np.ndarray:
    """The label mask shifted by 3 px, one nucleus missed: a prediction worth correcting."""
    prob = np.where(np.roll(sample.labels > 0, 3, axis=1), 0.9, 0.05).astype(np.float32)
    prob[sample.labels == 1] = 0.05
    return prob


@pytest.fixture
def user_dirs(tmp_path, monkeypatch):
    """Config and data folders of a pretend user (never the real ones)."""
    monkeypatch.setenv("NUCLEI_UNET_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("NUCLEI_UNET_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


@pytest.fixture
def tiny_model(tmp_path):
    from napari_nuclei_unet.core.checkpoint import load_checkpoint, save_checkpoint
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.model import UNet

    config = TrainConfig(base_width=4, depth=2, crop_size=32, batch_size=2, num_threads=1,
                         amp=False, device="cpu")
    path = save_checkpoint(tmp_path / "base.safetensors", UNet(3, 4, 2), config, {})
    return load_checkpoint(path)


def show(viewer, session, sample):
    from napari_nuclei_unet.widgets._layers import show_sample

    show_sample(viewer, sample)
    session.current_id = sample.id
    session.current_changed.emit(sample.id)


@pytest.fixture
def retrain(make_napari_viewer, qtbot, user_dirs, tiny_model):
    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.compare_widget import show_prediction
    from napari_nuclei_unet.widgets.retrain_widget import RetrainWidget

    viewer = make_napari_viewer()
    session = session_for(viewer)
    samples = make_samples()
    session.samples.update({s.id: s for s in samples})
    session.set_model(tiny_model)
    session.probabilities.update({s.id: fake_probability(s) for s in samples})
    dock = RetrainWidget(viewer)
    viewer.window.add_dock_widget(dock, name="Retrain")
    project = user_dirs / "project"
    assert dock.set_project(project)
    show(viewer, session, samples[0])
    show_prediction(viewer, samples[0])
    yield viewer, dock, session, samples, project
    if dock.is_finetuning():
        dock.stop()
    settle(qtbot, session)


def settle(qtbot, session) -> None:
    """Wait for every job of the session (the dock's warm-up included)."""
    for kind in ("fine-tuning", "predict", "load model", "save correction",
                 "warm up fine-tuning"):
        wait_worker(qtbot, session.jobs.running(kind), timeout=120_000)


def paint_square(layer, value: int, box=(slice(5, 15), slice(40, 50))) -> None:
    """What a brush stroke does: change the data in place, then emit ``paint``."""
    layer.data[box] = value
    layer.refresh()


def add(qtbot, dock):
    worker = dock.add_to_training_set()
    assert worker is not None
    wait_worker(qtbot, worker)


# ------------------------------------------------------------------------ tests
def test_default_project_and_shortcuts_hint(make_napari_viewer, qtbot, user_dirs):
    from napari.utils.shortcuts import default_shortcuts

    from napari_nuclei_unet.widgets.retrain_widget import RetrainWidget

    dock = RetrainWidget(make_napari_viewer())
    settle(qtbot, dock.session)
    assert dock.project == user_dirs / "data" / "projects" / "default"
    assert not dock.project.exists()  # nothing written until something is saved
    hint = dock.keys_label.text()
    for action, key in (("paint", "P"), ("fill", "F"), ("erase", "E")):
        keys = [str(k) for k in default_shortcuts[f"napari:activate_labels_{action}_mode"]]
        assert key in keys and f"<b>{key}</b> {action}" in hint
    assert "M" in [str(k) for k in default_shortcuts["napari:new_label"]]


def test_promote_prediction_paint_add_and_reopen(retrain, qtbot, make_napari_viewer):
    from napari_nuclei_unet.core.dataset import DSBDataset
    from napari_nuclei_unet.widgets._compare_layers import (
        PREDICTION_LAYER,
        grid_of,
        side_by_side_active,
    )
    from napari_nuclei_unet.widgets._retrain_editing import CORRECTION_LAYER
    from napari_nuclei_unet.widgets.compare_widget import show_prediction
    from napari_nuclei_unet.widgets.retrain_widget import RetrainWidget

    viewer, dock, session, samples, project = retrain
    sample = samples[0]
    predicted = np.array(viewer.layers[PREDICTION_LAYER].data)
    layer = dock.edit_prediction()
    assert layer is viewer.layers[CORRECTION_LAYER]
    assert viewer.layers.selection.active is layer and layer.mode == "paint"
    assert layer.selected_label == predicted.max() + 1  # paints a new nucleus
    assert np.array_equal(layer.data, predicted) and layer.data is not predicted
    assert not dock.has_unsaved_edits()
    paint_square(layer, 99)
    assert dock.has_unsaved_edits()
    assert np.array_equal(viewer.layers[PREDICTION_LAYER].data, predicted)  # a copy was edited
    # a new prediction of the image being corrected (e.g. after a round) updates the
    # compare layers, hidden: the one-pane editing view stays (no flip to the panes)
    assert not grid_of(viewer).enabled and not side_by_side_active(viewer)
    new = np.zeros_like(predicted)
    new[2:8, 2:8] = 1
    show_prediction(viewer, sample, pred_labels=new)
    session.predictions_changed.emit()
    assert not grid_of(viewer).enabled and not side_by_side_active(viewer)
    assert not viewer.layers[PREDICTION_LAYER].visible
    assert tuple(viewer.layers[PREDICTION_LAYER].translate) == (0, 0)  # one pane to frame
    assert np.array_equal(viewer.layers[PREDICTION_LAYER].data > 0, new > 0)
    qtbot.wait(200)
    assert not grid_of(viewer).enabled and not side_by_side_active(viewer)
    assert viewer.layers[-1] is layer and layer.visible

    add(qtbot, dock)
    folder = project / "corrections" / sample.id
    assert (folder / "images" / f"{sample.id}.png").is_file()
    masks = sorted((folder / "masks").glob("*.png"))
    assert len(masks) == len(np.unique(layer.data)) - 1
    assert not dock.has_unsaved_edits()
    assert dock.corrections_table.keys() == [sample.id]
    assert dock.corrections_table.item(0, 2).text() == "edited prediction"
    loaded = DSBDataset.open(project / "corrections").load(sample.id)
    assert np.array_equal(loaded.labels > 0, layer.data > 0)

    # napari restarted: a new dock reopens the same project and lists the correction
    again = RetrainWidget(make_napari_viewer())
    settle(qtbot, again.session)
    assert again.project == project
    assert again.corrections_table.keys() == [sample.id]
    assert again.corrections_table.item(0, 1).text() == str(len(masks))


def test_edit_label_mask_and_add_without_painting(retrain, qtbot):
    from napari_nuclei_unet.widgets._layers import LABELS_LAYER

    viewer, dock, session, samples, project = retrain
    layer = dock.edit_label_mask()
    assert layer is viewer.layers[LABELS_LAYER]
    assert viewer.layers.selection.active is layer and layer.mode == "paint"
    paint_square(layer, 0, (slice(0, 64), slice(0, 20)))  # erase part of it
    assert dock.has_unsaved_edits()
    add(qtbot, dock)
    (correction,) = dock.corrections()
    assert correction.source == "label"
    assert np.array_equal(samples[0].labels, session.samples[samples[0].id].labels)  # truth kept


def test_an_undo_after_add_is_an_unsaved_edit_kept_as_a_draft(retrain, qtbot):
    # napari's Ctrl+Z emits no paint event: after Add, an undo left the dock saying
    # nothing of unsaved edits and kept no draft of them
    viewer, dock, session, samples, project = retrain
    keys = viewer.window._qt_viewer._key_map_handler  # the canvas's own key handling
    for edit in (dock.edit_prediction, dock.edit_label_mask):
        layer = edit()
        viewer.layers.selection.active = layer
        layer.paint((30, 30), 9)  # a stroke, with napari's history
        add(qtbot, dock)
        assert "unsaved edits" not in dock.image_label.text()
        assert not (project / "drafts" / f"{samples[0].id}.npz").exists()
        keys.press_key("Control-Z")
        keys.release_key("Control-Z")
        assert layer.data[30, 30] != 9  # napari's undo ran
        assert "unsaved edits" in dock.image_label.text(), edit
        qtbot.waitUntil(lambda: (project / "drafts" / f"{samples[0].id}.npz").exists(),
                        timeout=10_000)  # the draft of the edit, as after a stroke
        add(qtbot, dock)
    layer.paint((30, 30), 9)
    add(qtbot, dock)
    keys.press_key("Control-Z")
    keys.release_key("Control-Z")
    from napari_nuclei_unet.widgets._layers import short_id

    with capture_notifications() as notes:
        show(viewer, session, samples[1])  # the image added before, its undo not: said
    assert notes.any(f"Your latest edits of {short_id(samples[0].id)} are not in the training "
                     "set (it holds your earlier correction). They were kept as a draft")


def test_an_undo_on_the_next_image_does_not_reach_into_the_one_before(retrain, qtbot):
    # napari keeps a layer's undo history when its data is replaced, and the plugin
    # reuses the mask and correction layers: Ctrl+Z put the last image's stroke into the
    # next one, offered as a correction with a draft (review h_rev14, H2)
    viewer, dock, session, samples, project = retrain
    keys = viewer.window._qt_viewer._key_map_handler
    for edit in (dock.edit_label_mask, dock.edit_prediction):
        show(viewer, session, samples[1])
        before = np.array(edit().data)
        show(viewer, session, samples[0])
        layer = edit()
        viewer.layers.selection.active = layer
        spot = tuple(np.argwhere(np.asarray(layer.data) != before)[0])  # an undo shows
        layer.paint(spot, 9, refresh=True)
        add(qtbot, dock)
        show(viewer, session, samples[1])
        layer = edit()
        viewer.layers.selection.active = layer
        keys.press_key("Control-Z")
        keys.release_key("Control-Z")
        np.testing.assert_array_equal(np.asarray(layer.data), before)
        assert "unsaved edits" not in dock.image_label.text(), edit
        assert not (project / "drafts" / f"{samples[1].id}.npz").exists()


def test_closing_the_dock_keeps_unsaved_edits_as_draft(retrain, qtbot):
    from qtpy.QtCore import QCoreApplication, QEvent

    viewer, dock, session, samples, project = retrain
    layer = dock.edit_prediction()
    paint_square(layer, 42)
    connected = len(session.current_changed)
    dock.deleteLater()  # napari closing the dock (or the window)
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert (project / "drafts" / f"{samples[0].id}.npz").is_file()
    assert len(session.current_changed) == connected - 1  # and it let go of the session
    # the layer stays: strokes painted on it since go to the draft too (they were lost
    # without a word at Continue draft: GUI check h_gui38, M2)
    paint_square(layer, 43, (slice(30, 34), slice(30, 34)))
    layer.events.paint(value=[])  # as napari's brush does
    draft = np.load(project / "drafts" / f"{samples[0].id}.npz")
    (key,) = [k for k in draft.files if draft[k].ndim == 2]
    assert (draft[key][30:34, 30:34] == 43).all() and (draft[key][5:15, 40:50] == 42).all()
    # ... until a Retrain dock edits in it again (another image here)
    from napari_nuclei_unet.widgets import _retrain_editing as editing

    editing.promote_prediction(viewer, np.zeros(samples[1].labels.shape, np.int32),
                               samples[1])
    paint_square(layer, 44, (slice(30, 34), slice(30, 34)))
    layer.events.paint(value=[])
    draft = np.load(project / "drafts" / f"{samples[0].id}.npz")
    assert (draft[key][30:34, 30:34] == 43).all()


@pytest.mark.parametrize("dock_name", ["compare", "iou"])
def test_closed_docks_let_go_of_the_session(make_napari_viewer, dock_name):
    from qtpy.QtCore import QCoreApplication, QEvent

    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.compare_widget import CompareWidget
    from napari_nuclei_unet.widgets.iou_panel import IoUPanel

    viewer = make_napari_viewer()
    session = session_for(viewer)
    before = len(session.current_changed)
    dock = (CompareWidget if dock_name == "compare" else IoUPanel)(viewer)
    assert len(session.current_changed) == before + 1
    dock.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert len(session.current_changed) == before


def test_switching_image_after_editing_the_label_mask_says_it_once(retrain, qtbot):
    # the session's "edits kept for this session" and the dock's "kept as a draft"
    # came together for one switch (GUI check h_gui14, N7): the dock's says more
    from napari_nuclei_unet.widgets._layers import LABELS_LAYER

    viewer, dock, session, samples, project = retrain
    # painted with napari's tools alone, no correction under way: the session says it
    mask = viewer.layers[LABELS_LAYER]
    paint_square(mask, 7, (slice(20, 25), slice(20, 25)))
    mask.events.paint(value=[])  # as napari's brush does
    with capture_notifications() as notes:
        show(viewer, session, samples[1])
    assert notes.any("kept for this session") and not notes.any("draft"), notes.messages
    # a correction of the label mask under way in this dock: its notice alone
    layer = dock.edit_label_mask()
    paint_square(layer, 42)
    layer.events.paint(value=[])
    with capture_notifications() as notes:
        show(viewer, session, samples[0])
    assert notes.any("kept as a draft") and not notes.any("kept for this session"), \
        notes.messages


def test_switching_image_keeps_unsaved_edits_as_draft(retrain, qtbot):
    from napari_nuclei_unet.widgets._retrain_editing import CORRECTION_LAYER

    viewer, dock, session, samples, project = retrain
    layer = dock.edit_prediction()
    paint_square(layer, 42)
    painted = np.array(layer.data)
    with capture_notifications() as notes:
        show(viewer, session, samples[1])
    assert notes.any("kept as a draft")
    assert (project / "drafts" / f"{samples[0].id}.npz").is_file()
    # no stale mask over the other image: hidden and emptied, kept for reuse (re-adding
    # a layer rebuilt napari's visual: a stall of about a second)
    assert viewer.layers[CORRECTION_LAYER] is layer
    assert not layer.visible and not np.any(layer.data)
    assert not dock.draft_button.isVisibleTo(dock)

    show(viewer, session, samples[0])
    assert dock.draft_button.isVisibleTo(dock)
    reused = layer
    layer = dock.continue_draft()
    assert layer is reused and layer.visible
    assert np.array_equal(layer.data, painted)
    assert dock.has_unsaved_edits()
    assert "editing the draft" in dock.image_label.text()  # not "the prediction copy"
    add(qtbot, dock)
    assert not (project / "drafts" / f"{samples[0].id}.npz").exists()
    assert dock.corrections_table.keys() == [samples[0].id]


def test_remove_keeps_files(retrain, qtbot):
    viewer, dock, session, samples, project = retrain
    dock.edit_label_mask()
    add(qtbot, dock)
    target = dock.remove_correction(samples[0].id)
    assert target is not None and (target / "masks").is_dir()
    assert dock.corrections() == [] and dock.corrections_table.rowCount() == 0


def test_the_remove_button_asks_first(retrain, qtbot, monkeypatch):
    # GUI check h_gui14 N6: one click took a correction out of the training set
    viewer, dock, session, samples, project = retrain
    dock.edit_label_mask()
    add(qtbot, dock)
    asked, replies = [], [False, True]
    monkeypatch.setattr(type(dock), "_confirm_remove",
                        lambda self, sample_id: asked.append(sample_id) or replies.pop(0))
    dock.corrections_table.selectRow(0)
    dock.remove_button.click()  # "No"
    assert asked == [samples[0].id] and dock.corrections() != []
    dock.remove_button.click()  # "Yes"
    assert dock.corrections() == [] and (project / "removed").is_dir()


def test_finetune_makes_a_version_and_switches_back(retrain, qtbot):
    from napari_nuclei_unet.widgets.iou_panel import IoUPanel

    viewer, dock, session, samples, project = retrain
    panel = IoUPanel(viewer)
    viewer.window.add_dock_widget(panel, name="IoU panel")
    base_path = session.model.path
    for sample in samples[:2]:
        show(viewer, session, sample)
        paint_square(dock.edit_label_mask(), 7)
        add(qtbot, dock)
    assert len(dock.corrections()) == 2
    dock.epochs_spin.setValue(2)
    dock.steps_spin.setValue(2)
    dock.ratio_spin.setValue(0.5)

    # this test is about a round that is adopted (a worse one: see the test below)
    import napari_nuclei_unet.widgets._retrain_finetune as retrain_module
    import napari_nuclei_unet.widgets._scroll as scroll

    retrain_module_round_adopted = retrain_module.round_adopted
    retrain_module.round_adopted = lambda result: (True, "")
    shown, bring = [], scroll.bring_into_view
    scroll.bring_into_view = shown.append  # the outcome is scrolled to (h_gui33 L2)
    with capture_notifications() as notes:
        worker = dock.start_finetune()
        assert worker is not None
        assert dock.start_finetune() is None  # a second round is refused
        wait_worker(qtbot, worker, timeout=120_000)
    retrain_module.round_adopted = retrain_module_round_adopted
    qtbot.waitUntil(lambda: shown == [dock.summary_label], timeout=5_000)
    scroll.bring_into_view = bring
    assert notes.any("already running")
    assert notes.any("v001 is now the model")
    assert [v.name for v in dock.versions()] == ["v000", "v001"]
    assert Path(session.model.path) == project / "versions" / "v001" / "model.safetensors"
    assert dock.current_version().name == "v001"
    assert len(dock.curves.points("train_loss")) == 2
    # the round has no validation: the curves name only the training loss
    curves = rendered(dock.curves, (320, 150))
    assert pixels_of(curves, (0x3D, 0x9D, 0xF2)) > 0  # training loss
    assert pixels_of(curves, (0xF5, 0xA1, 0x42)) == 0  # no "validation loss" legend entry
    assert dock.progress.format() == "finished"
    assert not (project / "round-in-progress.json").exists()
    # before/after table: one row per corrected image
    table = dock.scores_table
    assert sorted(table.keys()) == sorted(s.id for s in samples[:2])
    for row in range(table.rowCount()):
        delta = float(table.cell_text(row, 2)) - float(table.cell_text(row, 1))
        assert table.cell_text(row, 3).startswith(("+", "-", "±"))
        assert abs(delta) < 1.0
    # the corrected images were predicted again and the IoU panel refreshed itself
    wait_worker(qtbot, session.jobs.running("predict"), timeout=60_000)
    qtbot.waitUntil(lambda: panel.proxy.rowCount() == 2, timeout=30_000)
    assert set(session.probabilities) == {s.id for s in samples[:2]}
    assert dock.versions_table.keys() == ["v000", "v001"]
    assert dock.versions_table.item(1, 0).text().startswith("●")

    worker = dock.use_version("v000")
    assert worker is not None
    wait_worker(qtbot, worker)
    assert dock.current_version().name == "v000"
    # the scores shown are the version in use's (v001's stayed: GUI check h_gui11, L6)
    assert dock.scores_title.text().startswith("v000") and dock.scores_table.rowCount() == 0
    assert session.model.path != base_path  # v000 is a copy kept in the project
    wait_worker(qtbot, session.jobs.running("predict"), timeout=60_000)
    qtbot.waitUntil(lambda: panel.proxy.rowCount() == 2, timeout=30_000)
    assert (project / "versions" / "v001" / "model.safetensors").is_file()  # nothing deleted
    # another project has no round to show; back on this one (as in a dock opened after a
    # restart), the last round's before/after scores are shown again
    assert dock.set_project(project.parent / "another project")
    assert dock.scores_table.rowCount() == 0
    assert dock.set_project(project)
    assert sorted(dock.scores_table.keys()) == sorted(s.id for s in samples[:2])
    assert dock.scores_title.text().startswith("v001: IoU of the corrected images")


def test_images_kept_aside_check_the_round_and_are_not_trained_on(retrain, qtbot):
    # the README's "images you keep aside" were only for the command line (--held-out):
    # a GUI user had no way to check rounds on images they do not train on (h_gui11, M3)
    import json

    from qtpy.QtWidgets import QApplication

    viewer, dock, session, samples, project = retrain
    for sample in samples[:3]:
        show(viewer, session, sample)
        paint_square(dock.edit_label_mask(), 7)
        add(qtbot, dock)
    aside = samples[2].id
    dock.corrections_table.select_key(aside)
    assert dock.aside_button.text() == "Keep aside" and dock.aside_button.isEnabled()
    with capture_notifications() as notes:
        dock.aside_button.click()
    assert notes.any("is kept aside: rounds do not learn from it")
    assert dock.corrections_table.aside == {aside}
    assert "3 image(s), 1 kept aside" in dock.corrections_label.text()
    dock.corrections_table.select_key(aside)
    QApplication.processEvents()
    assert dock.aside_button.text() == "Train on it"
    dock.epochs_spin.setValue(1)
    dock.steps_spin.setValue(1)
    worker = dock.start_finetune()
    assert "(1 kept aside to check it)" in dock.status_label.text()
    # the replay set is said: "corrections only" read as no guard at all (h_readme2, L5)
    assert "mixed with the built-in replay set" in dock.status_label.text()
    wait_worker(qtbot, worker, timeout=120_000)
    info = json.loads((project / "versions" / "v001" / "model.json").read_text())["finetune"]
    assert sorted(c["id"] for c in info["corrections"]) == sorted(s.id for s in samples[:2])
    assert info["held_out"] == [aside]
    # pressing Fine-tune again with nothing changed would make the same version again:
    # when that version was not made current, the round is not run (h_gui11, L2)
    import napari_nuclei_unet.core.finetune.versions as versions_module

    adopted = versions_module.ModelVersion.adopted
    versions_module.ModelVersion.adopted = property(lambda self: self.is_base)  # refused
    try:
        if dock.current_version() is not None and dock.current_version().name == "v001":
            dock.use_version("v000")  # as when the round was not made current
            settle(qtbot, session)
        with capture_notifications() as notes:
            assert dock.start_finetune() is None
        assert notes.any("Nothing changed since the round that made v001")
        # the dock says it too: the toast is cut at 1280x800, and fades (h_gui35, L4)
        assert dock.status_label.text().startswith("Nothing changed since the round")
        dock.epochs_spin.setValue(2)  # another setting: it runs
        worker = dock.start_finetune()
        assert worker is not None
        dock.stop()
        wait_worker(qtbot, worker, timeout=120_000)
    finally:
        versions_module.ModelVersion.adopted = adopted
    table = dock.scores_table
    assert table.keys()[-1] == aside and table.cell_text(2, 0).endswith("(aside)")
    assert "Kept aside (1)" in dock.summary_label.text()
    # every image aside: nothing to learn from, said so
    for sample in samples[:2]:
        assert dock.keep_aside(sample.id)
    with capture_notifications() as notes:
        assert dock.start_finetune() is None
    assert notes.any("Every image of the training set is kept aside")
    assert dock.keep_aside(aside, False)
    assert dock.corrections_table.aside == {s.id for s in samples[:2]}
    show(viewer, session, samples[0])  # corrected again: it stays aside, and is said so
    paint_square(dock.edit_label_mask(), 9, (slice(20, 30), slice(20, 30)))
    with capture_notifications() as notes:
        add(qtbot, dock)
    assert notes.any("saved, still kept aside"), notes.messages
    assert dock.corrections_table.aside == {s.id for s in samples[:2]}


def test_the_other_view_of_the_project_is_free_again_after_a_round(retrain, qtbot):
    # the panel's tab kept Fine-tune greyed and Stop on after a round run in the dock,
    # until a row was clicked (GUI check h_gui12, M-A)
    from napari_nuclei_unet.widgets.retrain_widget import RetrainWidget

    viewer, dock, session, samples, project = retrain
    other = RetrainWidget(viewer)
    show(viewer, session, samples[0])
    paint_square(dock.edit_label_mask(), 7)
    add(qtbot, dock)
    dock.epochs_spin.setValue(1)
    dock.steps_spin.setValue(1)
    worker = dock.start_finetune()
    assert worker is not None
    wait_worker(qtbot, worker, timeout=120_000)
    assert other.finetune_button.isEnabled() and not other.stop_button.isEnabled()
    assert other.choose_button.isEnabled()
    assert "v001" in other.versions_table.keys()
    other.deleteLater()


def test_stopped_round_saves_nothing(retrain, qtbot):
    viewer, dock, session, samples, project = retrain
    model = session.model
    dock.edit_label_mask()
    add(qtbot, dock)
    dock.epochs_spin.setValue(50)
    with capture_notifications() as notes:
        worker = dock.start_finetune()
        assert worker is not None
        # a correction added during the round waits for its end (kept as a draft meanwhile)
        show(viewer, session, samples[1])
        paint_square(dock.edit_label_mask(), 3)
        assert dock.add_to_training_set() is None
        assert (project / "drafts" / f"{samples[1].id}.npz").is_file()
        assert dock.remove_correction(samples[0].id) is None  # refused during the round
        dock.stop()
        wait_worker(qtbot, worker, timeout=120_000)
        wait_worker(qtbot, session.jobs.running("save correction"))
    assert notes.any("will be added to the training set when it ends")
    assert notes.any("nothing was saved")
    assert [c.id for c in dock.corrections()] == sorted(s.id for s in samples[:2])
    assert not (project / "drafts" / f"{samples[1].id}.npz").exists()
    assert session.model is model
    assert [v.name for v in dock.versions() if not v.is_base] == []
    assert dock.progress.format() == "stopped"
    assert dock.finetune_button.isEnabled() and not dock.stop_button.isEnabled()
    assert not (project / "round-in-progress.json").exists()  # the user stopped it


def one_step_round_ready(qtbot, dock):
    """Add the shown image's mask; a round of 1 epoch of 1 step (Fine-tune not pressed)."""
    dock.edit_label_mask()
    add(qtbot, dock)
    dock.epochs_spin.setValue(1)
    dock.steps_spin.setValue(1)


def start_a_long_round(qtbot, dock):
    """Add the shown image's mask and start a round of 50 epochs (to be stopped)."""
    dock.edit_label_mask()
    add(qtbot, dock)
    dock.epochs_spin.setValue(50)
    worker = dock.start_finetune()
    assert worker is not None
    return worker


def test_a_dock_opened_again_mid_round_shows_the_project_and_can_stop_it(retrain, qtbot):
    # it showed an empty project ("choose a project folder"), no corrections, and a
    # greyed Stop, while Fine-tune said "press Stop" (GUI check h_gui33, H1)
    from napari_nuclei_unet.widgets.retrain_widget import RetrainWidget

    viewer, dock, session, samples, project = retrain
    with capture_notifications() as notes:
        worker = start_a_long_round(qtbot, dock)
        again = RetrainWidget(viewer)
        viewer.window.add_dock_widget(again, name="Retrain again")  # as the menu opens it
        assert again.project_edit.text() == str(project)
        assert [c.id for c in again.corrections()] == [samples[0].id]
        assert again.stop_button.isEnabled() and not again.finetune_button.isEnabled()
        # not "not fine-tuning" beside a working Stop (GUI check h_gui34, N3)
        assert again.progress.format().startswith("a round is running")
        again.stop()
        wait_worker(qtbot, worker, timeout=120_000)
    assert notes.any("nothing was saved")
    assert not notes.any("before changing the project")
    qtbot.waitUntil(lambda: again.status_label.text() == "Stopped: nothing was saved, the "
                                                         "model is unchanged.")  # (h_gui44)
    assert again.progress.format() == "not fine-tuning"  # not "Stopping …" for good
    assert dock.progress.format() == "stopped"  # the view that ran it says how it ended
    assert [v.name for v in again.versions() if not v.is_base] == []


@pytest.mark.parametrize("opened", ["before", "during"])
def test_another_view_names_the_version_the_round_saved(retrain, qtbot, opened):
    # a view opened during a round said "it saved no version" of a round that saved
    # v001: the round's end refreshed its table before it looked (GUI check h_gui42, M1)
    from napari_nuclei_unet.widgets.retrain_widget import RetrainWidget

    viewer, dock, session, samples, project = retrain
    one_step_round_ready(qtbot, dock)
    other = RetrainWidget(viewer) if opened == "before" else None
    worker = dock.start_finetune()
    other = other or RetrainWidget(viewer)
    viewer.window.add_dock_widget(other, name="Retrain again")
    # open before it started too, the view shows the round and lets Stop stop it (it
    # said "not fine-tuning" beside a greyed Stop: GUI check h_gui43, M1)
    qtbot.waitUntil(lambda: other.progress.format().startswith("a round is running"))
    assert other.stop_button.isEnabled() and not other.finetune_button.isEnabled()
    assert dock.progress.format() != other.progress.format()  # the view running it: its own
    wait_worker(qtbot, worker, timeout=120_000)
    qtbot.waitUntil(lambda: other.status_label.text().startswith("The round has ended"))
    assert other.status_label.text() == ("The round has ended: v001 is listed under '4. "
                                         "Model versions'.")
    assert other.versions_table.selected_key() == "v001"


def test_a_correction_added_in_one_view_is_listed_in_the_other(retrain, qtbot):
    # the second view said "0 image(s)" of images just added (GUI check h_gui43, L1)
    from napari_nuclei_unet.widgets.retrain_widget import RetrainWidget

    viewer, dock, session, samples, project = retrain
    other = RetrainWidget(viewer)
    viewer.window.add_dock_widget(other, name="Retrain again")
    dock.edit_label_mask()
    add(qtbot, dock)
    assert [c.id for c in other.corrections()] == [samples[0].id]
    assert other.corrections_table.keys() == [samples[0].id]


def test_a_round_says_which_segment_results_were_corrected_and_not_added(retrain, qtbot):
    # 20 nuclei redrawn in the Segment dock, Add plane not pressed, Fine-tune: no word
    # that they were not in the round (GUI check h_gui33, L4)
    import numpy as np

    from napari_nuclei_unet.widgets._segment_jobs import RESULT_KEY
    from napari_nuclei_unet.widgets._unsaved_labels import UNSAVED_KEY

    viewer, dock, session, samples, project = retrain
    viewer.add_labels(np.zeros((8, 8), np.uint16), name="cells labels",
                      metadata={RESULT_KEY: {"source": "cells"}, UNSAVED_KEY: True})
    viewer.add_labels(np.zeros((8, 8), np.uint16), name="saved labels",
                      metadata={RESULT_KEY: {"source": "saved"}, UNSAVED_KEY: False})
    with capture_notifications() as notes:
        worker = start_a_long_round(qtbot, dock)
        dock.stop()
        wait_worker(qtbot, worker, timeout=120_000)
    assert notes.any("You corrected “cells labels” and did not add it to the project (Add "
                     "plane in the Segment panel): this round learns from the 1 image(s)")
    assert not notes.any("saved labels")


def test_closing_the_dock_stops_its_round_and_says_so(retrain, qtbot):
    # napari un-parents a closed dock's widget instead of destroying it: the round went
    # on unseen, with no Stop anywhere (GUI check h_gui33, H1)
    viewer, dock, session, samples, project = retrain
    with capture_notifications() as notes:
        worker = start_a_long_round(qtbot, dock)
        viewer.window.remove_dock_widget(dock)
        wait_worker(qtbot, worker, timeout=120_000)
    assert notes.any("The Retrain panel was closed during the fine-tuning round, so the "
                     "round was stopped")
    assert [v.name for v in dock.versions() if not v.is_base] == []
    assert not session.jobs.is_running("fine-tuning")


def test_broken_project_index_is_explained(make_napari_viewer, qtbot, user_dirs):
    from napari_nuclei_unet.widgets._retrain_project import remember_project_dir
    from napari_nuclei_unet.widgets.retrain_widget import RetrainWidget

    broken = user_dirs / "broken"
    broken.mkdir()
    (broken / "project.json").write_text("{ not json")
    remember_project_dir(broken)
    with capture_notifications() as notes:
        dock = RetrainWidget(make_napari_viewer())
        settle(qtbot, dock.session)
    assert notes.any("not a readable project index")
    assert dock.project == user_dirs / "data" / "projects" / "default"  # usable instead
    assert dock.corrections() == []


def test_mistakes_are_plain_notifications(make_napari_viewer, qtbot, user_dirs, tiny_model):
    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.retrain_widget import (
        NO_CORRECTIONS,
        NO_IMAGE,
        RetrainWidget,
    )

    viewer = make_napari_viewer()
    session = session_for(viewer)
    dock = RetrainWidget(viewer)
    settle(qtbot, session)
    dock.set_project(user_dirs / "p")
    with capture_notifications() as notes:
        assert dock.start_finetune() is None
        assert dock.edit_prediction() is None
        assert dock.edit_label_mask() is None
        assert dock.add_to_training_set() is None
        assert dock.use_version("v009") is None
        session.set_model(tiny_model)
        assert dock.start_finetune() is None
        sample = make_samples(1)[0]
        session.samples[sample.id] = sample
        show(viewer, session, sample)
        (user_dirs / "file").write_text("x")
        assert not dock.set_project(user_dirs / "file")
    for message in (NO_IMAGE, NO_CORRECTIONS, "v009", "is a file"):
        assert notes.any(message), message
    assert dock.project == user_dirs / "p"
    # a user of their own images is told the way in (the Segment dock's button, by name)
    from napari_nuclei_unet.widgets.segment_widget import SegmentWidget
    from napari_nuclei_unet.widgets.workflow_panel import TABS

    segment = SegmentWidget(viewer)
    assert f"'{segment.add_button.text}' there" in NO_IMAGE
    assert f"'{next(t[0] for t in TABS if t[3] == 'segment')}'" in NO_IMAGE
    from pathlib import Path

    import yaml

    manifest = Path(__file__).resolve().parents[1] / "src" / "napari_nuclei_unet" / "napari.yaml"
    docks = [w["display_name"] for w in yaml.safe_load(manifest.read_text())["contributions"]
             ["widgets"] if w["command"].endswith("segment_widget")]
    assert docks and f"'{docks[0]}' dock" in NO_IMAGE


def test_without_a_model_a_round_starts_from_the_projects_model(retrain, qtbot, monkeypatch,
                                                                tiny_model):
    """After a restart nothing is loaded: Fine-tune loads the project's model (the shipped
    one for a new project) and starts from it, instead of refusing."""
    import napari_nuclei_unet.widgets._retrain_finetune as finetune_module

    viewer, dock, session, samples, project = retrain
    dock.edit_label_mask()
    add(qtbot, dock)
    session.model = None  # as after a restart (the fixture had loaded one)
    dock.epochs_spin.setValue(1)
    dock.steps_spin.setValue(1)
    loaded = []
    monkeypatch.setattr(finetune_module, "_load_version",
                        lambda version: loaded.append(version) or tiny_model)
    with capture_notifications() as notes:
        worker = dock.start_finetune()
        assert worker is not None
        # pressed again while the model loads: said so, not "A model is already being
        # loaded" of a load the user never asked for (GUI check h_gui45, L4)
        assert dock.start_finetune() is None
        assert notes.any("Fine-tune is starting: the model is being loaded first")
        wait_worker(qtbot, worker)
        qtbot.waitUntil(lambda: dock.is_finetuning() or dock.last_result is not None,
                        timeout=30_000)
        settle(qtbot, session)
    assert loaded == [None]  # a new project: the shipped default model
    assert notes.any("No model was in use: the round starts from the default model")
    assert not notes.any("A model is already being loaded")
    assert session.model is not None and dock.last_result is not None
    assert [v.name for v in dock.versions()] == ["v000", "v001"]


def test_a_read_only_project_is_said_before_a_round_trains(retrain, qtbot, monkeypatch):
    import napari_nuclei_unet.widgets._retrain_finetune as finetune_module

    viewer, dock, session, samples, project = retrain
    dock.edit_label_mask()
    add(qtbot, dock)
    monkeypatch.setattr(finetune_module, "unwritable_reason",
                        lambda folder: f"The project folder {folder} cannot be written to")
    with capture_notifications() as notes:
        assert dock.start_finetune() is None
    assert notes.any("cannot be written to")
    assert "cannot be written to" in dock.status_label.text()  # stays in the dock
    assert not dock.is_finetuning()


def test_unwritable_reason_names_the_folder(tmp_path, monkeypatch):
    import tempfile

    from napari_nuclei_unet.widgets._retrain_project import unwritable_reason

    assert unwritable_reason(tmp_path / "new" / "project") is None  # made on the first save
    assert unwritable_reason(tmp_path) is None

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    reason = unwritable_reason(tmp_path)
    assert reason.startswith(f"The project folder {tmp_path} cannot be written to")
    assert "Permission denied" in reason and "Change" in reason


class _FakeRound:
    """What core.finetune returns for a round that made the corrected images worse."""

    def __init__(self, version, before=0.978, after=0.950, adopted=None):
        self.version, self.cancelled, self.elapsed_s = version, False, 1.0
        self.corrected = [{"id": "a", "iou_before": before, "iou_after": after},
                          {"id": "b", "iou_before": before, "iou_after": after}]
        self.evaluation, self.held_out, self.regression = [], [], []
        self._means = {"before": before, "after": after}
        if adopted is not None:
            self.adopted = adopted

    def mean_iou(self, which="corrected", when="after"):
        return self._means[when] if which == "corrected" else None


def test_round_that_scored_worse_is_kept_but_not_made_current(retrain, qtbot):
    from types import SimpleNamespace

    from napari_nuclei_unet.widgets.retrain_widget import round_adopted

    viewer, dock, session, samples, project = retrain
    assert round_adopted(_FakeRound(None)) == (
        False, "The new model got worse on the corrected images: mean IoU 0.978 -> 0.950. "
               f"{NOT_ADOPTED}")
    assert round_adopted(_FakeRound(None, 0.90, 0.95))[0]
    assert round_adopted(_FakeRound(None, 0.90, 0.95, adopted=False))[0] is False  # core's say

    in_use = session.model
    version = SimpleNamespace(name="v001", path=project / "versions" / "v001", model=None)
    new_model = SimpleNamespace(path=project / "versions" / "v001" / "model.safetensors")
    with capture_notifications() as notes:
        dock._on_result((_FakeRound(version), new_model))
    assert session.model is in_use  # not made current
    assert dock.last_adopted is False
    assert not dock.adoption_label.isHidden()
    text = dock.adoption_label.text()
    assert text.startswith("v001: The new model got worse on the corrected images")
    assert notes.any(text)  # the notification says the same, once
    for phrase in ("0.978 → 0.950", "not made current", "model in use is unchanged",
                   "Add or fix corrections", "Use this version"):
        assert text.count(phrase) == 1, phrase


def test_every_view_of_the_project_hears_of_a_rounds_version(retrain, qtbot):
    # a refused round's version was listed only by the dock that ran it; a dock closed
    # during the round did not even make an adopted round's model current (h_gui11, M1)
    from types import SimpleNamespace

    from napari_nuclei_unet.widgets.retrain_widget import RetrainWidget

    viewer, dock, session, samples, project = retrain
    other = RetrainWidget(viewer)  # the panel's Retrain tab, beside the dock
    assert other.project == project
    refreshed = []
    other.refresh = lambda: refreshed.append(True)
    version = SimpleNamespace(name="v001", path=project / "versions" / "v001", model=None)
    new_model = SimpleNamespace(path=project / "versions" / "v001" / "model.safetensors")
    dock._on_result((_FakeRound(version), new_model))
    assert refreshed, "the other view did not list the refused round's version"
    refreshed.clear()
    dock._dead = True  # closed during an adopted round: the session still takes it
    with capture_notifications() as notes:
        dock._on_result((_FakeRound(version, 0.80, 0.90), new_model))
    assert session.model is new_model and refreshed
    assert notes.any("v001 is now the model")
    other.deleteLater()


def test_a_refused_rounds_message_says_each_thing_once():
    from napari_nuclei_unet.widgets._retrain_finetune import refused_round_message

    # the reason of the round a tester saw, which the dock once wrapped in a second copy
    # of the scores and of "kept as a version but not made current"
    why = ("The new model got worse on the corrected images: mean IoU 0.938 -> 0.936. "
           f"{NOT_ADOPTED}")
    text = refused_round_message("v002", why, 0.938, 0.936)
    assert text == (
        "v002: The new model got worse on the corrected images: mean IoU 0.938 → 0.936. "
        "It is kept as a version but not made current: the model in use is unchanged. "
        "Add or fix corrections (or train longer) and run another round. To use it anyway, "
        "select v002 under '4. Model versions' and click 'Use this version'.")
    for phrase in ("0.938", "0.936", "kept as a version", "not made current", "in use",
                   "corrected images"):
        assert text.count(phrase) == 1, phrase
    # refused for other images: the corrected images' scores are added, once
    why = ("The new model got worse on the built-in regression set (other kinds of images): "
           f"mean IoU 0.826 -> 0.818. {NOT_ADOPTED}")
    text = refused_round_message("v003", why, 0.700, 0.750)
    assert text.startswith("v003: Mean IoU on the corrected images 0.700 → 0.750. The new "
                           "model got worse on the built-in regression set")
    assert text.count("0.700 → 0.750") == 1 and text.count("not made current") == 1


def test_the_default_models_version_is_named_as_the_other_docks_name_it(tmp_path,
                                                                        tiny_model):
    from napari_nuclei_unet.core.finetune import ModelVersions
    from napari_nuclei_unet.widgets._retrain_jobs import version_words

    # after "Now using model v000" the Model and Compare docks say "default model": the
    # notice names both, so the user sees they are one model
    versions = ModelVersions(tmp_path / "project")
    base = versions.record_base("default")
    assert version_words(base) == "v000 (the default model)"
    other = ModelVersions(tmp_path / "other")
    copied = other.record_base(tiny_model.path)
    assert version_words(copied) == "v000"


def test_round_progress_names_each_model_the_self_check_scores(retrain):
    from napari_nuclei_unet.core.progress import Progress

    _viewer, dock, _session, _samples, _project = retrain
    seen = {}
    for stage in ("score-before", "score-after", "score-plain", "score-step-back"):
        dock._on_update(Progress(stage, 1, 2, ""))
        seen[stage] = (dock.progress.value(), dock.progress.format())
    assert seen["score-before"] == (50, "scoring with the current model · 1/2")
    assert seen["score-after"] == (940, "scoring with the fine-tuned model · 1/2")
    # the self-check refused the first model: the next ones fill the end of the bar
    assert seen["score-plain"] == (990, "scoring with the round's plain weights · 1/2")
    assert seen["score-step-back"] == (
        990, "scoring with the round's change, part of the way · 1/2")


def test_a_stepped_back_round_says_how_much_of_its_change_it_keeps():
    from types import SimpleNamespace

    from napari_nuclei_unet.widgets._retrain_finetune import _stepped_back

    def note(**info):
        return _stepped_back(SimpleNamespace(info=info))

    assert "keeps 85% of the round's change" in note(extrapolated=0.85,
                                                      refused_factors=[1.3, 1.0])
    assert note(extrapolated=1.0, refused_factors=[1.3]) == ""  # the trained weights
    assert note(extrapolated=1.3, refused_factors=[]) == ""
    assert note(extrapolated=0.8, refused_factors=[]) == ""  # a fraction the user chose
    assert note() == "" and _stepped_back(None) == ""


def test_epochs_are_automatic_unless_the_user_sets_them(retrain):
    from napari_nuclei_unet.core.finetune import FINETUNE_DEFAULTS

    _viewer, dock, _session, _samples, _project = retrain
    # automatic: the round may train longer when the model is far off (more_steps);
    # a number would turn that off, as --epochs does on the command line
    assert dock.epochs_spin.value() == 0
    assert dock.epochs_spin.text() == "automatic"
    assert f"Automatic: {FINETUNE_DEFAULTS['epochs']}, up to 18" in dock.epochs_spin.toolTip()
    overrides = dock._round_overrides(1)
    assert "epochs" not in overrides and overrides["device"] == "auto"
    assert overrides["steps_per_epoch"] == FINETUNE_DEFAULTS["steps_per_epoch"]
    dock.epochs_spin.setValue(5)
    assert dock._round_overrides(1)["epochs"] == 5


def test_corrections_added_by_another_dock_are_listed(retrain, tmp_path):
    """The Segment dock's "Add plane to fine-tuning project" writes into the project
    behind the Retrain dock's back: the session tells the dock, which lists it again."""
    from napari_nuclei_unet.core.finetune import CorrectionStore

    viewer, dock, session, samples, project = retrain
    assert dock.corrections_label.text().startswith("0 image(s)")
    sample = samples[1]
    CorrectionStore(project).add("from-segment-dock", sample.image, sample.labels,
                                 source="label")
    session.note_project_changed(tmp_path / "another project")
    assert dock.corrections_label.text().startswith("0 image(s)")
    session.note_project_changed(project)
    assert dock.corrections_label.text().startswith("1 image(s)")
    session.current_id = None  # no dataset image: not "select a dataset image first"
    session.note_project_changed(project)  # (GUI check h_gui23, L4)
    assert dock.image_label.text().startswith("This project holds 1 correction(s), listed "
                                              "in '2. Training set'")


def test_what_another_program_writes_to_the_project_is_listed(retrain, qtbot):
    """A command-line round or ``finetune`` beside the open dock: its version and its
    corrections are listed without the dock being told (GUI checks h_gui43 L2, h_gui44 M1)."""
    from napari_nuclei_unet.core.finetune import CorrectionStore, ModelVersions

    viewer, dock, session, samples, project = retrain
    assert dock.versions_table.rowCount() == 0
    versions = ModelVersions(project)  # as another process writes: no session signal
    versions.add(session.model.model, session.model.config, {"round": 0})
    versions.add(session.model.model, session.model.config, {"round": 1})
    qtbot.waitUntil(lambda: dock.versions_table.rowCount() == 2, timeout=5000)
    assert dock.versions_label.text().startswith("2 version(s)")
    CorrectionStore(project).add("from-the-cli", samples[1].image, samples[1].labels,
                                 source="label")
    qtbot.waitUntil(lambda: dock.corrections_label.text().startswith("1 image(s)"),
                    timeout=5000)
    # a project whose folder, and the folder above it, are not made yet (a new data
    # folder has no projects/): listed too (GUI check h_gui46, M1)
    new = project.parent / "projects" / "default"
    assert dock.set_project(new) and dock.versions_table.rowCount() == 0
    ModelVersions(new).add(session.model.model, session.model.config, {"round": 0})
    qtbot.waitUntil(lambda: dock.versions_table.rowCount() == 1, timeout=5000)


def test_without_a_model_the_dock_names_the_projects_model(make_napari_viewer, user_dirs,
                                                           tiny_model):
    """After napari restarts, the project (and its versions) comes back but no model is
    loaded: the dock says which version is the project's and how to use it."""
    from napari_nuclei_unet.core.finetune import ModelVersions
    from napari_nuclei_unet.widgets.retrain_widget import RetrainWidget

    project = user_dirs / "project"
    versions = ModelVersions(project)
    versions.record_base(tiny_model.path)
    versions.add(tiny_model.model, tiny_model.config, {"adopted": True})
    versions.add(tiny_model.model, tiny_model.config, {"adopted": False})  # refused: not it
    dock = RetrainWidget(make_napari_viewer())
    assert dock.set_project(project)
    assert [v.name for v in dock.versions()] == ["v000", "v001", "v002"]
    text = dock.model_label.text()
    assert "This project's model is <b>v001</b>" in text and "Use this version" in text
    # the Segment dock already segments with it (GUI check h_gui33, L5)
    assert "'Fine-tune' and the Segment panel use it; to predict dataset images" in text


def test_the_dock_follows_the_viewers_project_and_forgets_stale_messages(retrain, user_dirs,
                                                                         tiny_model):
    """The Segment dock chose another project, or another model was put in use: the
    last round's lines spoke of something else and go."""
    viewer, dock, session, samples, project = retrain
    assert session.project_dir == project  # the dock's project is the viewer's
    dock.adoption_label.setText("v001: ... not made current ...")
    dock.adoption_label.setVisible(True)
    dock.status_label.setText("v001 saved in ... Not in use (see below).")
    session.set_model(tiny_model)  # e.g. 'Use this version'
    assert not dock.adoption_label.isVisible() and dock.status_label.text() == " "
    dock.status_label.setText("The round failed: no room left.")
    session.set_project_dir(user_dirs / "other")
    assert dock.project == user_dirs / "other"
    assert dock.status_label.text() == " "


def test_other_images_predicted_meanwhile_leave_the_editing_view_alone(retrain, qtbot):
    """"Predict all" adds other images' results every second: a layer the user turned on
    while painting stays on (the editing view is set again only when the edited image's
    own prediction changed)."""
    from napari_nuclei_unet.widgets._layers import LABELS_LAYER

    viewer, dock, session, samples, project = retrain
    layer = dock.edit_prediction()
    paint_square(layer, 99)
    session.predictions_changed.emit()  # a first change: the view is set once
    qtbot.wait(400)
    viewer.layers[LABELS_LAYER].visible = True  # the user compares with the label mask
    other = samples[1]
    for k in range(3):
        session.add_predictions(session.model, {other.id: fake_probability(other) + k / 10})
        qtbot.wait(300)
        assert viewer.layers[LABELS_LAYER].visible
    # the edited image's own prediction changes: the editing view comes back
    session.add_predictions(session.model, {samples[0].id: fake_probability(samples[0])})
    qtbot.waitUntil(lambda: not viewer.layers[LABELS_LAYER].visible, timeout=3000)
    assert dock.has_unsaved_edits()


def test_a_folder_that_cannot_be_written_is_not_made_the_project(
        make_napari_viewer, qtbot, user_dirs, monkeypatch):
    # it was kept and remembered after a warning: at the next start the corrections
    # painted there were lost when napari closed (their draft could not be written)
    import json

    import napari_nuclei_unet.widgets.retrain_widget as retrain_module
    from napari_nuclei_unet.widgets._retrain_project import (
        SETTINGS_NAME,
        config_dir,
        default_project_dir,
    )
    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.retrain_widget import RetrainWidget

    read_only = user_dirs / "read-only"
    read_only.mkdir()
    monkeypatch.setattr(retrain_module, "unwritable_reason", lambda folder: (
        f"The project folder {folder} cannot be written to (not allowed)."
        if Path(folder) == read_only else None))
    viewer = make_napari_viewer()
    dock = RetrainWidget(viewer)
    viewer.window.add_dock_widget(dock, name="Retrain")
    mine = user_dirs / "mine"
    assert dock.set_project(mine)
    with capture_notifications() as notes:
        assert not dock.set_project(read_only)
    assert notes.any(f"cannot be written to (not allowed). The fine-tuning project stays {mine}")
    assert dock.project == mine and session_for(viewer).project_dir == mine
    remembered = json.loads((config_dir() / SETTINGS_NAME).read_text())["project"]
    assert Path(remembered) == mine
    # remembered before it became read-only: the next start works in the default one
    (config_dir() / SETTINGS_NAME).write_text(json.dumps({"project": str(read_only)}))
    other = make_napari_viewer()
    with capture_notifications() as notes:
        again = RetrainWidget(other)
    assert again.project == default_project_dir()
    # one message says both: the folder's problem and the project used meanwhile (two
    # notifications at each start before: GUI check h_gui10, N7)
    said = [m for _level, m in notes.messages if "cannot be written to" in m]
    assert len(said) == 1 and "default fine-tuning project" in said[0], notes.messages
    assert "tried again when napari starts next time" in said[0]
    assert not notes.any("for now"), notes.messages


def test_a_double_click_on_add_saves_once_and_an_unedited_prediction_is_said(retrain, qtbot):
    # two clicks 0.2 s apart saved twice and said so twice; the prediction added as it
    # was went in without a word (GUI check h_gui9, LOW 3 and 4)
    viewer, dock, session, samples, project = retrain
    dock.edit_prediction()
    with capture_notifications() as notes:
        worker = dock.add_to_training_set()
        dock.add_to_training_set()  # the second click of the double click, during the save
        wait_worker(qtbot, worker)
        qtbot.wait(200)
        assert dock.add_to_training_set() is None  # or after a quick save
    assert notes.any("is in the training set as it is already")
    added = [m for _level, m in notes.messages if "added to the training set" in m]
    assert len(added) == 1, notes.messages
    assert "It is the prediction as it was, not edited" in added[0]
    assert len(dock.corrections()) == 1


def test_the_model_in_use_has_the_name_the_other_docks_give_it(retrain):
    # "best" here, "run-20261205-002609/best" in the Model and Compare docks (h_gui9)
    from napari_nuclei_unet.core.checkpoint import load_checkpoint, save_checkpoint
    from napari_nuclei_unet.widgets._model_names import model_name

    viewer, dock, session, samples, project = retrain
    trained = session.model
    path = save_checkpoint(project.parent / "run-1" / "best.safetensors", trained.model,
                           trained.config, {})
    session.set_model(load_checkpoint(path))
    dock.refresh()
    assert model_name(session.model) == "run-1/best"
    assert "Model in use: <b>run-1/best</b>" in dock.model_label.text()


def test_a_version_of_another_project_is_named_with_its_project(retrain):
    # in a new project the model line said "v003" (of the other project) and the scores
    # title "model.safetensors" (GUI check h_gui11, L1)
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.core.finetune.versions import ModelVersions

    viewer, dock, session, samples, project = retrain
    other = ModelVersions(project.parent / "lab-a")
    other.add(session.model.model, session.model.config, {"round": 1})
    theirs = other.add(session.model.model, session.model.config, {"round": 2})
    session.set_model(load_checkpoint(theirs.model))
    dock.refresh()
    assert "Model in use: <b>v002 of project lab-a</b>" in dock.model_label.text()
    mine = ModelVersions(project).add(session.model.model, session.model.config,
                                      {"round": 1, "base_model": str(theirs.model)})
    dock.refresh()
    dock.versions_table.select_key(mine.name)
    dock._on_version_selected()
    assert dock.scores_title.text() == (f"{mine.name}: IoU of the corrected images with "
                                        f"v002 of project lab-a (before) and {mine.name} "
                                        "(after)")
    # the usual next round starts from this project's version, recorded by its name
    # ("with v001 of project  (before)": review h_rev8, M1)
    nxt = ModelVersions(project).add(session.model.model, session.model.config,
                                     {"round": 2, "base_model": mine.name})
    dock.refresh()
    dock.versions_table.select_key(nxt.name)
    dock._on_version_selected()
    assert f"with {mine.name} (before)" in dock.scores_title.text()


def test_an_unreadable_version_is_listed_and_cannot_be_used(retrain):
    from napari_nuclei_unet.core.finetune.versions import ModelVersions

    viewer, dock, session, samples, project = retrain
    versions = ModelVersions(project)
    version = versions.add(session.model.model, session.model.config, {"round": 1})
    sidecar = version.path / "model.json"
    sidecar.write_text(sidecar.read_text()[:40])
    dock.refresh()
    assert dock.versions_table.unreadable == {"v001"}
    dock.versions_table.select_key("v001")
    assert not dock.use_button.isEnabled()


def test_a_view_asked_for_in_the_compare_dock_shows_over_the_correction(retrain, qtbot):
    # after 'Add to training set' the corrected mask stayed on top: Side by side, Overlay
    # and Predict this image changed nothing on the canvas (GUI check h_gui13, M1)
    from napari_nuclei_unet.widgets._compare_layers import (
        OVERLAY,
        PREDICTION_LAYER,
        SIDE_BY_SIDE,
        side_by_side_active,
    )
    from napari_nuclei_unet.widgets.compare_widget import CompareWidget

    viewer, dock, session, samples, project = retrain
    compare = CompareWidget(viewer)
    viewer.window.add_dock_widget(compare, name="Compare")
    layer = dock.edit_prediction()
    paint_square(layer, 99)
    add(qtbot, dock)
    assert layer.visible and not viewer.layers[PREDICTION_LAYER].visible
    compare.set_mode(OVERLAY)
    assert not layer.visible and viewer.layers[PREDICTION_LAYER].visible
    assert compare.mode == OVERLAY and not side_by_side_active(viewer)
    # the correction shown again (its eye), then the view already chosen clicked again
    layer.visible = True
    compare.overlay_radio.click()
    assert not layer.visible and viewer.layers[PREDICTION_LAYER].visible
    # unsaved edits stay in the layer (and the dock) when a view is asked for
    layer = dock.edit_prediction()
    paint_square(layer, 77)
    compare.set_mode(SIDE_BY_SIDE)
    assert not layer.visible and side_by_side_active(viewer)
    assert dock.has_unsaved_edits() and np.any(layer.data == 77)


def test_a_saved_correction_is_shown_to_be_looked_at_and_fixed(retrain, qtbot):
    # double-clicking a row showed the image only: the correction saved could not be
    # looked at, and fixing one nucleus meant redoing it (GUI check h_gui13, M3)
    from napari_nuclei_unet.core.dataset import DSBDataset

    viewer, dock, session, samples, project = retrain
    sample = samples[0]
    layer = dock.edit_prediction()
    paint_square(layer, 99)
    add(qtbot, dock)
    saved = np.array(layer.data)
    show(viewer, session, samples[1])
    assert not layer.visible
    dock.corrections_table.cellDoubleClicked.emit(0, 1)
    wait_worker(qtbot, session.jobs.running("load correction"))
    assert session.current_id == sample.id
    assert layer.visible and layer.mode == "paint" and viewer.layers.selection.active is layer
    assert np.array_equal(layer.data > 0, saved > 0)
    assert not dock.has_unsaved_edits()
    assert "editing the saved correction" in dock.image_label.text()  # h_gui14, N5
    with capture_notifications() as notes:
        assert dock.add_to_training_set() is None  # nothing changed: nothing to save
    assert notes.any("in the training set as it is already")
    paint_square(layer, 0, box=(slice(5, 15), slice(40, 50)))  # one nucleus erased
    assert dock.has_unsaved_edits()
    add(qtbot, dock)
    fixed = DSBDataset.open(project / "corrections").load(sample.id)
    assert np.array_equal(fixed.labels > 0, layer.data > 0)
    assert not np.any(fixed.labels[5:15, 40:50])
    assert dock.corrections_table.item(0, 2).text() == "edited prediction"


def test_edit_prediction_predicts_the_image_first_when_needed(retrain, qtbot):
    # after a restart an image's score is listed but its prediction is not kept: "Edit
    # prediction as labels" sent the user to the Compare panel first (h_gui13, L8)
    from napari_nuclei_unet.widgets._retrain_editing import CORRECTION_LAYER

    viewer, dock, session, samples, project = retrain
    show(viewer, session, samples[1])
    session.probabilities.pop(samples[1].id)
    with capture_notifications() as notes:
        assert dock.edit_prediction() is None
        assert notes.any("predicting it with")
        wait_worker(qtbot, session.jobs.running("predict"))
    qtbot.waitUntil(lambda: CORRECTION_LAYER in viewer.layers
                    and viewer.layers[CORRECTION_LAYER].visible, timeout=10_000)
    layer = viewer.layers[CORRECTION_LAYER]
    assert layer.metadata["nuclei_unet_sample_id"] == samples[1].id
    assert np.array_equal(layer.data, dock.current_prediction())
    assert layer.mode == "paint" and not dock.has_unsaved_edits()


def test_a_correction_removed_can_be_added_again(retrain, qtbot):
    # Add, Remove, Add said "is in the training set as it is already" and saved nothing:
    # the correction was only in removed/ (review h_rev9, 1)
    viewer, dock, session, samples, project = retrain
    layer = dock.edit_prediction()
    paint_square(layer, 99)
    add(qtbot, dock)
    assert dock.remove_correction(samples[0].id) is not None
    assert dock.corrections() == []
    add(qtbot, dock)
    assert [c.id for c in dock.corrections()] == [samples[0].id]


def test_a_saved_correction_shown_in_a_new_dock_is_not_added_again(retrain, qtbot):
    # napari started again: the dock has added nothing yet, the saved correction is
    # shown; Add with nothing changed saves nothing (the earlier check knew only the
    # dock's own last save)
    from napari_nuclei_unet.widgets.retrain_widget import RetrainWidget

    viewer, dock, session, samples, project = retrain
    layer = dock.edit_prediction()
    paint_square(layer, 99)
    add(qtbot, dock)
    fresh = RetrainWidget(viewer)
    viewer.window.add_dock_widget(fresh, name="Retrain again")
    assert fresh.set_project(project)
    wait_worker(qtbot, fresh.show_correction(samples[0].id))
    with capture_notifications() as notes:
        assert fresh.add_to_training_set() is None
    assert notes.any("in the training set as it is already")
    settle(qtbot, session)


def test_a_correction_of_an_image_not_loaded_yet_is_loaded_and_shown(retrain, qtbot):
    # a new session, its dataset open but not loaded (no Load all): a double click on a
    # correction said "not among the loaded images: open its dataset" (GUI check h_gui28,
    # M1); the Scores tab loads such an image
    from types import SimpleNamespace

    from napari_nuclei_unet.widgets._retrain_editing import CORRECTION_LAYER

    viewer, dock, session, samples, project = retrain
    layer = dock.edit_prediction()
    paint_square(layer, 99)
    add(qtbot, dock)
    saved = np.array(layer.data) > 0
    target = samples[0]
    show(viewer, session, samples[1])
    del session.samples[target.id]
    loads = []
    session.dataset = SimpleNamespace(path=project.parent / "dataset",
                                      ids=lambda: [s.id for s in samples],
                                      load=lambda i: loads.append(i) or target)
    wait_worker(qtbot, dock.show_correction(target.id))
    qtbot.waitUntil(lambda: session.current_id == target.id
                    and not session.jobs.is_running("load correction"), timeout=10_000)
    wait_worker(qtbot, session.jobs.running("load correction"))
    shown = viewer.layers[CORRECTION_LAYER]
    qtbot.waitUntil(lambda: shown.metadata.get("nuclei_unet_sample_id") == target.id,
                    timeout=10_000)
    assert loads == [target.id] and target.id in session.samples
    assert np.array_equal(np.asarray(shown.data) > 0, saved)
    # an image of no dataset open: said in plain words
    session.dataset = None
    del session.samples[target.id]
    with capture_notifications() as notes:
        assert dock.show_correction(target.id) is None
    assert notes.any("is not in the dataset open"), notes.messages


def test_a_correction_is_read_once_its_save_is_done(retrain, qtbot, monkeypatch):
    # a double click during a save read the correction as it was before: the newest edit
    # left the layer, and one more stroke and Add overwrote it (review h_rev9, 2)
    import threading

    from napari_nuclei_unet.widgets import _retrain_corrections

    viewer, dock, session, samples, project = retrain
    layer = dock.edit_prediction()
    paint_square(layer, 99)
    add(qtbot, dock)
    release = threading.Event()
    save = _retrain_corrections._save_correction

    def slow_save(*args):
        release.wait(10)
        return save(*args)

    monkeypatch.setattr(_retrain_corrections, "_save_correction", slow_save)
    paint_square(layer, 55, box=(slice(20, 30), slice(5, 15)))
    newest = np.array(layer.data)
    saving = dock.add_to_training_set()
    assert saving is not None
    assert dock.show_correction(samples[0].id) is None  # waits for the save
    release.set()
    wait_worker(qtbot, saving)
    wait_worker(qtbot, session.jobs.running("load correction"))
    qtbot.waitUntil(lambda: not session.jobs.is_running("load correction"), timeout=10_000)
    assert np.array_equal(layer.data > 0, newest > 0) and layer.visible
    assert not dock.has_unsaved_edits()


def test_predict_this_image_over_the_correction_stays_shown(retrain, qtbot):
    # the prediction asked for arrived, and the editing view came back over it (review
    # h_rev9, 4)
    from napari_nuclei_unet.widgets._compare_layers import PREDICTION_LAYER
    from napari_nuclei_unet.widgets.compare_widget import CompareWidget

    viewer, dock, session, samples, project = retrain
    compare = CompareWidget(viewer)
    viewer.window.add_dock_widget(compare, name="Compare")
    layer = dock.edit_prediction()
    paint_square(layer, 99)
    session.probabilities.pop(samples[0].id)  # a new prediction arrives
    wait_worker(qtbot, compare.predict_current())
    qtbot.wait(400)  # the editing view's timer (150 ms) has had its turn
    assert not layer.visible and viewer.layers[PREDICTION_LAYER].visible
    assert dock.has_unsaved_edits()  # still held (and kept as a draft)


def test_edit_prediction_with_no_model_loads_the_projects_model(retrain, qtbot):
    # after a restart no model is loaded: Fine-tune loaded the project's model, Edit
    # prediction refused (GUI check h_gui14, N4)
    from napari_nuclei_unet.widgets._retrain_editing import CORRECTION_LAYER

    viewer, dock, session, samples, project = retrain
    session.set_model(None)
    session.probabilities.pop(samples[1].id, None)
    show(viewer, session, samples[1])
    assert dock.edit_prediction() is None
    wait_worker(qtbot, session.jobs.running("load model"), timeout=120_000)
    assert session.model is not None  # the shipped one: this project has no version yet
    wait_worker(qtbot, session.jobs.running("predict"), timeout=120_000)
    qtbot.waitUntil(lambda: CORRECTION_LAYER in viewer.layers
                    and viewer.layers[CORRECTION_LAYER].visible, timeout=10_000)
    assert viewer.layers[CORRECTION_LAYER].metadata["nuclei_unet_sample_id"] == samples[1].id


def test_a_round_napari_closed_is_said_when_the_project_opens_again(
        retrain, qtbot, user_dirs, make_napari_viewer):
    # closing napari during a round discarded it without a word next time (GUI check
    # h_gui28, L3)
    from napari_nuclei_unet.widgets._retrain_project import ROUND_NOTE
    from napari_nuclei_unet.widgets.retrain_widget import RetrainWidget

    viewer, dock, session, samples, project = retrain
    dock.edit_label_mask()
    add(qtbot, dock)
    dock.epochs_spin.setValue(100)
    worker = dock.start_finetune()
    assert worker is not None
    qtbot.waitUntil(lambda: dock._round_at.startswith("at epoch 2 "), timeout=120_000)
    assert json.loads((project / ROUND_NOTE).read_text())["state"] == "running"

    viewer.close()  # what the window's close button does, without the confirmation dialog

    assert json.loads((project / ROUND_NOTE).read_text())["state"] == "closed"
    assert [v.name for v in dock.versions() if not v.is_base] == []
    qtbot.waitUntil(lambda: not worker.is_running, timeout=30_000)

    with capture_notifications() as notes:
        again = RetrainWidget(make_napari_viewer())  # napari started again: last project
    assert notes.any("Fine-tuning round not saved: napari stopped while it ran")
    # said at the top of '3. Fine-tune the model', not in its status line, which lies
    # below a laptop's screen (GUI check h_gui29, M1)
    text = again.model_label.text()
    assert again.project == project
    assert "The last fine-tuning round of this project" in text
    assert "on 1 corrected image)" in text
    assert "was stopped at epoch " in text and " of 100 when napari was closed" in text
    assert "Nothing of it was saved" in text
    assert text.index("Nothing of it was saved") < text.index("No model loaded")
    assert not (project / ROUND_NOTE).exists()  # said once
    assert again.set_project(user_dirs / "other") and again.set_project(project)
    assert "fine-tuning round" not in again.model_label.text()


def test_a_round_whose_napari_stopped_without_ending_it_is_said(tmp_path, tiny_model):
    import os
    import socket

    from napari_nuclei_unet.core.finetune import ModelVersions
    from napari_nuclei_unet.widgets import _retrain_project as files

    project = tmp_path / "project"
    project.mkdir()
    path = project / files.ROUND_NOTE

    def rewrite(**changes):
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    assert files.interrupted_round(project) is None
    round_id = files.start_round_note(project, 3)
    assert files.interrupted_round(project) is None  # running in this napari
    files.forget_round(project, "another round's id")  # not this round's: kept
    assert path.exists()
    rewrite(pid=2**22 + 12345)  # no such process (above Linux's highest pid)
    text = files.interrupted_round(project)
    assert text is not None and "(started " in text and "on 3 corrected images)" in text
    assert "never finished: napari stopped while it ran (it may have crashed)" in text
    rewrite(pid=os.getpid())
    assert files.interrupted_round(project) is None  # this very process
    rewrite(process_started=files._started() - 3600)  # its pid given to another since
    assert files.interrupted_round(project) is not None
    rewrite(host=socket.gethostname() + "-another")  # a round on another computer
    assert files.interrupted_round(project) is None
    rewrite(host=socket.gethostname(), state="closed", at="at epoch 3 of 12")
    assert "was stopped at epoch 3 of 12 when napari was closed" in files.interrupted_round(
        project)
    versions = ModelVersions(project)  # napari closed while the round saved its version
    versions.record_base(tiny_model.path)
    assert files.interrupted_round(project) is not None  # the base is no round's
    versions.add(tiny_model.model, tiny_model.config, {"adopted": True})
    assert files.interrupted_round(project) is None
    path.write_text("{broken")
    assert files.interrupted_round(project) is None
    files.forget_round(project, round_id)  # not readable as this round's: kept
    files.forget_round_note(project)
    assert not path.exists()


def test_a_refused_second_round_keeps_the_running_rounds_note(retrain, qtbot):
    # a second dock's round wrote its note over the running round's, was refused by the
    # round lock, then removed the note as its own (review h_rev25, B5); from another
    # computer too: the note is written once the round holds the lock (h_rev26, 8)
    from napari_nuclei_unet.core.finetune.rounds import round_lock
    from napari_nuclei_unet.widgets import _retrain_project as files

    viewer, dock, session, samples, project = retrain
    one_step_round_ready(qtbot, dock)
    running = files.start_round_note(project, 3)  # a round on another computer
    path = project / files.ROUND_NOTE
    path.write_text(json.dumps({**json.loads(path.read_text()), "host": "another-computer"}))
    with round_lock(project):  # (this thread's: the worker's is another thread)
        with capture_notifications() as notes:
            wait_worker(qtbot, dock.start_finetune())
        assert notes.any("A fine-tuning round is already running on the project")
        assert not notes.any("failed"), notes.messages  # a warning (h_rev28, 2)
    # said as not started, not as a failed round (GUI check h_gui43, L2)
    assert dock.progress.format() == "not started"
    assert dock.status_label.text().startswith("Not started: A fine-tuning round is already "
                                               "running on the project")
    note = json.loads((project / files.ROUND_NOTE).read_text())
    assert note["round"] == running and note["corrections"] == 3
    assert [v.name for v in dock.versions() if not v.is_base] == []


def test_a_refused_round_that_loaded_the_model_says_so_and_not_that_it_started(
        retrain, qtbot, monkeypatch, tiny_model):
    # with no model in use, "the round starts from model v000" came just before the
    # refusal (another program's round held the project), then "The model in use is
    # unchanged", of a model just loaded (GUI check h_gui44)
    import napari_nuclei_unet.widgets._retrain_finetune as finetune_module
    from napari_nuclei_unet.core.finetune.rounds import round_lock

    viewer, dock, session, samples, project = retrain
    one_step_round_ready(qtbot, dock)
    session.model = None  # as after a restart
    monkeypatch.setattr(finetune_module, "_load_version", lambda version: tiny_model)
    with round_lock(project):
        with capture_notifications() as notes:
            dock.start_finetune()
            qtbot.waitUntil(lambda: dock.progress.format() == "not started", timeout=30_000)
            settle(qtbot, session)
    assert not notes.any("the round starts from"), notes.messages
    assert dock.status_label.text().endswith(
        "No model was in use: the default model is in use now.")
    assert session.model is not None


def test_the_round_removes_its_note_once_its_version_is_saved(retrain, qtbot, monkeypatch):
    # napari closing after the version was saved, before the dock heard of it, would
    # otherwise call the round lost
    import napari_nuclei_unet.widgets._retrain_finetune as steps

    viewer, dock, session, samples, project = retrain
    one_step_round_ready(qtbot, dock)
    monkeypatch.setattr(steps, "forget_round", lambda *args: None)  # the dock's own
    dock._round_lost = "A round was cut short."  # as read when the project opened
    dock.refresh()
    assert "A round was cut short." in dock.model_label.text()
    worker = dock.start_finetune()
    assert "A round was cut short." not in dock.model_label.text()  # a new one runs
    qtbot.waitUntil(lambda: (project / "round-in-progress.json").exists())  # the worker's
    wait_worker(qtbot, worker, timeout=120_000)
    assert [v.name for v in dock.versions() if not v.is_base] == ["v001"]
    assert not (project / "round-in-progress.json").exists()


def test_using_a_version_with_only_own_images_says_to_segment_them_again(retrain, qtbot):
    # "the corrected images are predicted again" was said for images of one's own,
    # which only the Segment dock segments (GUI check h_gui33, M3)
    from types import SimpleNamespace

    from napari_nuclei_unet.core.finetune import ModelVersions

    viewer, dock, session, samples, project = retrain
    base = session.model
    versions = ModelVersions(project)
    versions.record_base(base.path)
    versions.add(base.model, base.config, {"adopted": True})
    session.samples.clear()  # no dataset open: the corrections are of one's own images
    dock.refresh()
    with capture_notifications() as notes:
        wait_worker(qtbot, dock.use_version("v001"))
    assert notes.any("Now using model v001")
    assert notes.any("press Segment (Segment panel) to see it on your images")
    assert not notes.any("predicted again")
    # a dataset image shown, the corrected ones not loaded: said so, not "the corrected
    # images are predicted again" (GUI check h_gui40, L4)
    from napari_nuclei_unet.core.finetune import CorrectionStore

    shown = samples[-1]
    dock._current_sample = lambda: shown
    with capture_notifications() as notes:
        wait_worker(qtbot, dock.use_version("v000"))
    assert notes.any("Now using model v000; the image shown is predicted again."), notes.messages
    CorrectionStore(project).add("elsewhere", samples[0].image, samples[0].labels)
    with capture_notifications() as notes:
        wait_worker(qtbot, dock.use_version("v001"))
    assert notes.any("the image shown is predicted again (none of the corrected images is "
                     "among the images open)"), notes.messages
    # one of the open dataset's images, not loaded since napari started again: Load all
    # would bring it (GUI check h_gui42, L5)
    CorrectionStore(project).add(samples[1].id, samples[1].image, samples[1].labels)
    session.dataset = SimpleNamespace(ids=lambda: [s.id for s in samples])  # (its list)
    try:
        assert dock.predicted_words([shown]) == (
            "the image shown is predicted again (the corrected images are not loaded: "
            "press Load all in Data to predict them too)")
    finally:
        session.dataset = None


def test_use_it_anyway_gives_the_rounds_own_reason(retrain, monkeypatch):
    # it said "did worse" of a round refused for gaining too little (h_gui33, L1)
    from qtpy.QtWidgets import QMessageBox

    from napari_nuclei_unet.core.finetune import ModelVersions

    viewer, dock, session, samples, project = retrain
    versions = ModelVersions(project)
    versions.record_base(session.model.path)
    versions.add(session.model.model, session.model.config, {
        "adopted": False, "reason": "The new model is hardly better on the corrected images "
        "(mean IoU 0.883 -> 0.889, less than the +0.01 a round must gain there). The round "
        "learned little."})
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda parent, title, text: asked.append(
        text) or QMessageBox.StandardButton.No)
    assert not dock._confirm_refused("v001")
    assert asked[0].startswith("Its round did not make v001 current: the new model is hardly "
                               "better on the corrected images (mean IoU 0.883 → 0.889, "
                               "less than the +0.01 a round must gain there). Use it anyway?")
    assert "did worse" not in asked[0]


def test_a_selected_version_says_why_it_was_not_made_current_and_what_it_did_elsewhere(
        retrain, make_napari_viewer):
    # the reason went for good after any version switch or a restart (GUI check h_gui33,
    # L7), and the dock never showed the regression set (L3)
    from napari_nuclei_unet.core.finetune import ModelVersions

    viewer, dock, session, samples, project = retrain
    versions = ModelVersions(project)
    versions.record_base(session.model.path)
    row = {"id": "x", "modality": "fluorescence", "iou_before": 0.8, "iou_after": 0.7,
           "dice_before": 0, "dice_after": 0, "ap50_before": 0, "ap50_after": 0,
           "n_true": 1, "n_pred_before": 1, "n_pred_after": 1}
    versions.add(session.model.model, session.model.config, {
        "adopted": False, "reason": "The new model got worse on the corrected images.",
        "scores": {"corrected": [row], "regression": [{**row, "iou_after": 0.79}]}})
    dock.refresh()
    dock.versions_table.select_key("v001")
    dock._on_version_selected()
    assert not dock.adoption_label.isHidden()
    assert dock.adoption_label.text() == ("v001 was not made current by its round: the new "
                                          "model got worse on the corrected images.")
    assert "Other kinds of images (built-in regression set, 1): 0.800" in (
        dock.summary_label.text())
    dock.versions_table.select_key("v000")
    dock._on_version_selected()
    assert dock.adoption_label.isHidden()
    # put in use anyway: not "the model in use is unchanged" (GUI check h_gui34, N4)
    from napari_nuclei_unet.core.checkpoint import load_checkpoint

    session.set_model(load_checkpoint(versions.get("v001").model))
    dock.versions_table.select_key("v001")
    dock._on_version_selected()
    assert dock.adoption_label.text() == ("v001 is in use because you chose it; its round "
                                          "had not made it current: the new model got worse "
                                          "on the corrected images.")
    # napari started again, nothing loaded: the project's chosen model is in use (h_gui35)
    from napari_nuclei_unet.widgets.retrain_widget import RetrainWidget

    versions.choose("v001")
    again = RetrainWidget(make_napari_viewer())
    assert again.set_project(project)
    again.versions_table.select_key("v001")
    again._on_version_selected()
    # ... said as the project's model, and marked ● ("is in use" beside "No model loaded",
    # and no version marked: GUI check h_gui38, L2)
    assert again.adoption_label.text().startswith(
        "v001 is this project's model (Fine-tune and the Segment panel use it) because you "
        "chose it")
    names = [again.versions_table.item(r, 0).text()
             for r in range(again.versions_table.rowCount())]
    assert [n for n in names if n.startswith("●")] == ["● v001"]


def test_another_version_put_in_use_elsewhere_undoes_a_choice_and_chooses_nothing(
        retrain, qtbot, make_napari_viewer, monkeypatch):
    # tried a refused version, went back to the base model through the Model dock: napari
    # started again named the refused version as the project's model (GUI check h_gui28,
    # L1); a model only looked at must not become the project's (review h_rev14, H1)
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.core.finetune import ModelVersions
    from napari_nuclei_unet.widgets.retrain_widget import RetrainWidget

    viewer, dock, session, samples, project = retrain
    base = session.model
    versions = ModelVersions(project)
    versions.record_base(base.path)
    versions.add(base.model, base.config, {"adopted": False})  # v001, refused
    dock.refresh()
    monkeypatch.setattr(RetrainWidget, "_confirm_refused", lambda self, name: True)
    wait_worker(qtbot, dock.use_version("v001"))
    assert versions.current().name == "v001"  # chosen: the project's model
    session.set_model(load_checkpoint(base.path))  # what the Model dock's loading does
    assert versions.current().name == "v000"  # the newest made current
    again = RetrainWidget(make_napari_viewer())  # napari started again
    assert "This project's model is <b>v000</b>" in again.model_label.text()  # not v001

    versions.add(base.model, base.config, {"adopted": True})  # v002, made current
    for model in (load_checkpoint(base.path),  # the default model looked at
                  load_checkpoint(versions.get("v001").model),  # a version, not chosen
                  tiny_other_model(project.parent)):  # not a version of this project
        session.set_model(model)
        dock.refresh()
        assert versions.current().name == "v002"
    assert not (project / "versions" / "chosen.json").exists()


def tiny_other_model(folder):
    from napari_nuclei_unet.core.checkpoint import load_checkpoint, save_checkpoint
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.model import UNet

    config = TrainConfig(base_width=4, depth=2, crop_size=32, batch_size=2, num_threads=1,
                         amp=False, device="cpu")
    return load_checkpoint(save_checkpoint(folder / "other.safetensors", UNet(3, 4, 2),
                                           config, {}))


def test_bring_into_view_scrolls_the_dock_to_a_widget_below_its_fold(qtbot):
    from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

    from napari_nuclei_unet.widgets._scroll import bring_into_view, scroll_area

    body = QWidget()
    layout = QVBoxLayout(body)
    labels = [QLabel(f"line {k}") for k in range(60)]
    for label in labels:
        layout.addWidget(label)
    area = scroll_area(body)
    qtbot.addWidget(area)
    area.resize(200, 150)
    area.show()
    qtbot.waitExposed(area)
    assert area.verticalScrollBar().value() == 0
    bring_into_view(labels[-1])
    top = labels[-1].mapTo(body, labels[-1].rect().topLeft()).y()
    assert area.verticalScrollBar().value() > 0
    assert area.verticalScrollBar().value() <= top <= area.verticalScrollBar().value() + 150
