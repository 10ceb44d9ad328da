"""Issue 11's structural rules for the docks: the session owns its state and signals,
docks name models alike, and no dock module grows past one job."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

WIDGETS = Path(__file__).resolve().parents[1] / "src" / "napari_nuclei_unet" / "widgets"
SIGNALS = {"dataset_changed", "samples_changed", "current_changed", "model_changed",
           "predictions_changed", "scores_changed", "labels_edited"}
#: Session fields only the session's methods change (set_model, set_dataset, ...).
OWNED = {"model", "dataset", "current_id", "threshold", "instance_method", "diameter"}
OWNED_DICTS = {"rows", "rows_settings", "probabilities", "kept_results", "samples"}


def _dock_sources() -> list[Path]:
    return [p for p in sorted(WIDGETS.glob("*.py")) if p.name != "_session.py"]


def _session_like(node: ast.AST) -> bool:
    """``session`` or ``self.session`` / ``x.session``."""
    return (isinstance(node, ast.Name) and node.id == "session") or (
        isinstance(node, ast.Attribute) and node.attr == "session")


def test_no_dock_emits_a_session_signal():
    emits = []
    for path in _dock_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "emit"
                    and isinstance(node.func.value, ast.Attribute)
                    and node.func.value.attr in SIGNALS):
                emits.append(f"{path.name}:{node.lineno}")
    assert not emits, f"session signals emitted outside Session's methods: {emits}"


def test_no_dock_changes_session_state_by_hand():
    changes = []
    for path in _dock_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else [])
            for target in targets:
                if (isinstance(target, ast.Attribute) and target.attr in OWNED
                        and _session_like(target.value)):
                    changes.append(f"{path.name}:{node.lineno} {target.attr} =")
                if (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Attribute)
                        and target.value.attr in OWNED_DICTS
                        and _session_like(target.value.value)):
                    changes.append(f"{path.name}:{node.lineno} {target.value.attr}[...] =")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in {"clear", "update", "pop", "setdefault"}
                    and isinstance(node.func.value, ast.Attribute)
                    and node.func.value.attr in OWNED_DICTS
                    and _session_like(node.func.value.value)):
                changes.append(f"{path.name}:{node.lineno} {node.func.value.attr}."
                               f"{node.func.attr}()")
    assert not changes, f"session state changed outside Session's methods: {changes}"


@pytest.mark.parametrize("module", ["retrain_widget.py", "train_widget.py", "model_widget.py",
                                    "segment_widget.py", "_workers.py"])
def test_dock_modules_hold_one_job(module):
    lines = len((WIDGETS / module).read_text(encoding="utf-8").splitlines())
    assert lines <= 620, f"{module} has {lines} lines: split it by job"


@pytest.mark.gui
def test_compare_and_model_docks_name_the_model_by_its_file(make_napari_viewer, qtbot,
                                                            tmp_path):
    from _widget_helpers import wait_worker
    from napari_nuclei_unet.core.checkpoint import load_checkpoint, save_checkpoint
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.model import UNet
    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.compare_widget import CompareWidget
    from napari_nuclei_unet.widgets.model_widget import ModelWidget

    path = save_checkpoint(tmp_path / "20261201-0930" / "best.safetensors",
                           UNet(3, base_width=4, depth=2),
                           TrainConfig(base_width=4, depth=2, crop_size=32, epochs=1), {})
    viewer = make_napari_viewer()
    compare, model_dock = CompareWidget(viewer), ModelWidget(viewer)
    session_for(viewer).set_model(load_checkpoint(path))
    assert compare.model_label.text() == "Model: 20261201-0930/best"  # not "Model: best"
    assert model_dock.name_label.text() == "20261201-0930/best"
    for kind in ("list devices", "warm up", "warm up layers"):
        wait_worker(qtbot, session_for(viewer).jobs.running(kind))


@pytest.mark.gui
def test_retrain_tables_show_short_ids_with_the_full_id_in_tooltip_and_copy(qapp, tmp_path):
    from types import SimpleNamespace

    from qtpy.QtWidgets import QApplication

    from napari_nuclei_unet.widgets._retrain_views import CorrectionsTable, ScoreChangeTable

    long_id = "0123456789abcdef" * 4
    corrections = CorrectionsTable()
    corrections.set_corrections([SimpleNamespace(
        id=long_id, path=tmp_path / long_id, n_nuclei=3, source="label", note="",
        updated="2026-11-25T15:18:02+00:00")])
    changes = ScoreChangeTable()
    changes.set_changes([{"id": long_id, "iou_before": 0.5, "iou_after": 0.7}])
    for table in (corrections, changes):
        item = table.item(0, 0)
        assert item.text() == long_id[:8]
        assert long_id in item.toolTip()
        QApplication.clipboard().setText("")
        table.selectRow(0)
        table.copy_full_id()
        assert QApplication.clipboard().text() == long_id


@pytest.mark.gui
def test_predict_all_progress_says_how_long_is_left(qapp):
    import time

    from qtpy.QtWidgets import QProgressBar

    from napari_nuclei_unet.core.progress import Progress
    from napari_nuclei_unet.widgets._prediction_service import show_prediction_progress

    bar = QProgressBar()
    show_prediction_progress(bar, Progress("predict", 0, 669))
    time.sleep(0.6)  # the estimate needs half a second of history (no speed is asserted)
    show_prediction_progress(bar, Progress("predict", 3, 669))
    assert bar.format().startswith("Predicting: %v / %m images")
    assert "left" in bar.format()


def test_shipped_model_marks_the_real_stage1_train_by_split():
    """On the real stage1_train, the Scores tab marks the shipped model's 602 training and
    68 validation images (its scores on them are optimistic), none "unseen"."""
    import json
    import os
    from types import SimpleNamespace

    from napari_nuclei_unet.core.checkpoint import default_model_path
    from napari_nuclei_unet.core.predict_score import splits_of

    root = os.environ.get("NUCLEI_UNET_DSB2018")
    if not root or not Path(root).is_dir():
        pytest.skip("NUCLEI_UNET_DSB2018 (stage1_train) not set")
    ids = sorted(p.name for p in Path(root).iterdir() if (p / "images").is_dir())
    metadata = json.loads(default_model_path().with_suffix(".json").read_text())
    marks = splits_of(SimpleNamespace(metadata=metadata), ids)
    counts = {kind: list(marks.values()).count(kind) for kind in ("train", "validation",
                                                                   "unseen")}
    assert counts == {"train": 602, "validation": 68, "unseen": 0}


@pytest.mark.gui
@pytest.mark.parametrize("name", ["segment_widget.SegmentWidget", "data_browser.DataBrowserWidget",
                                  "retrain_widget.RetrainWidget", "iou_panel.IoUPanel",
                                  "train_widget.TrainWidget"])
def test_a_closed_dock_lets_go_of_naparis_events(make_napari_viewer, name, tmp_path,
                                                 monkeypatch):
    """Once Qt had deleted a dock, napari could not disconnect its methods (comparing them
    raised): the next layer removed ran the closed dock's handler, an error."""
    import importlib

    import numpy as np
    from qtpy.QtCore import QCoreApplication, QEvent

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    module, cls = name.split(".")
    viewer = make_napari_viewer()
    events = (viewer.layers.events.inserted, viewer.layers.events.removed, viewer.events.theme)
    make = getattr(importlib.import_module(f"napari_nuclei_unet.widgets.{module}"), cls)
    for _ in range(2):  # the first dock of a viewer also hooks the viewer, once for all
        before = [len(e.callbacks) for e in events]
        dock = make(viewer)
        assert [len(e.callbacks) for e in events] != before
        dock.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert [len(e.callbacks) for e in events] == before
    viewer.add_image(np.zeros((4, 4)))
    viewer.layers.pop()  # raised in the closed Segment dock's handler


def test_tab_leaves_every_table_of_the_panel(make_napari_viewer, qtbot):
    # in the Scores table Tab moved cell by cell, 61 rows x 9 columns, and never left it
    # (GUI check h_gui36, L6); the arrow keys move between rows
    from qtpy.QtWidgets import QAbstractItemView, QTableView

    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    panel = WorkflowPanel(make_napari_viewer())
    qtbot.addWidget(panel)
    panel.build_all()
    tables = panel.findChildren(QTableView)
    assert len(tables) >= 5  # data, scores, measurements, retrain's, the model's
    assert [t for t in tables if t.tabKeyNavigation()] == []
    # ... nor stops on the scroll area of a page, which shows no focus (h_gui37)
    from qtpy.QtCore import Qt

    from napari_nuclei_unet.widgets._scroll import _WideEnoughScrollArea

    pages = panel.findChildren(_WideEnoughScrollArea)
    assert len(pages) >= 7
    assert [a for a in pages if a.focusPolicy() != Qt.FocusPolicy.NoFocus] == []
    assert all(isinstance(t, QAbstractItemView) for t in tables)


@pytest.mark.gui
def test_a_closed_panel_lets_go_of_the_sessions_signals(make_napari_viewer, qtbot):
    # closed with napari's x, the panel is destroyed now (GUI check h_gui37, H1); its Train
    # and Model steps stayed connected, and the samples loaded next reached a deleted label
    from napari_nuclei_unet.core.dataset import Sample
    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.workflow_panel import WorkflowPanel

    viewer = make_napari_viewer()
    session = session_for(viewer)
    signals = [session.model_changed, session.samples_changed, session.current_changed,
               session.scores_changed, session.predictions_changed]  # (the viewer's layer
    # warm-up, started by the panel once, stays on dataset_changed)
    before = [len(s) for s in signals]
    panel = WorkflowPanel(viewer)
    viewer.window.add_dock_widget(panel, name="all steps")
    panel.build_all()
    assert [len(s) for s in signals] != before
    viewer.window.remove_dock_widget(panel)  # napari's x: no deleteLater here
    qtbot.waitUntil(lambda: [len(s) for s in signals] == before, timeout=5000)
    session.add_samples([Sample("s", np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.int32),
                                "fluorescence")])
    session.set_model(None)
