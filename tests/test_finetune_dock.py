"""The Retrain dock with a round that is kept as a version but not made current."""

from __future__ import annotations

from pathlib import Path

import pytest

from _widget_helpers import capture_notifications, wait_worker
from test_widget_retrain import (  # noqa: F401 - fixtures
    add,
    paint_square,
    retrain,
    show,
    tiny_model,
    user_dirs,
)

pytestmark = pytest.mark.gui


def test_a_round_that_got_worse_is_not_switched_to(retrain, qtbot, monkeypatch):  # noqa: F811
    from napari_nuclei_unet.core.finetune import results

    viewer, dock, session, samples, project = retrain
    base_path = Path(session.model.path)
    show(viewer, session, samples[0])
    paint_square(dock.edit_label_mask(), 7)
    add(qtbot, dock)
    # Ask more of the round than it can give: the corrected images must gain 2 IoU.
    monkeypatch.setitem(results.ADOPT_TOLERANCE, "corrected", -2.0)
    dock.epochs_spin.setValue(1)
    dock.steps_spin.setValue(1)
    with capture_notifications() as notes:
        worker = dock.start_finetune()
        assert worker is not None
        wait_worker(qtbot, worker, timeout=120_000)
    # either it got worse, or it gained less than asked: both are said plainly
    assert notes.any("v001: The new model got worse on the corrected images") or notes.any(
        "v001: The new model is hardly better on the corrected images")
    assert not notes.any("is now the model")
    assert Path(session.model.path) == base_path  # the model in use is unchanged
    assert [v.name for v in dock.versions()] == ["v000", "v001"]
    # the status line points at the message below it instead of saying it again
    assert "Not in use (see below)" in dock.status_label.text()
    message = dock.adoption_label.text()
    assert message.count("not made current") == 1 and message.count("mean IoU") == 1
    # a double click on it (to see its scores) asks first (GUI check h_gui14, N3)
    asked = []
    monkeypatch.setattr(type(dock), "_confirm_refused",
                        lambda self, name: asked.append(name) or False)
    dock.versions_table.select_key("v001")
    dock.versions_table.cellDoubleClicked.emit(1, 0)
    assert asked == ["v001"] and Path(session.model.path) == base_path
    assert not session.jobs.is_running("load model")
    # used anyway, it stays the project's model when napari starts again (h_gui13, L6)
    wait_worker(qtbot, dock.use_version("v001"))
    session.set_model(None)  # napari started again: no model loaded yet
    dock.refresh()
    assert "This project's model is <b>v001</b>" in dock.model_label.text()


def test_a_round_uses_the_sessions_nucleus_diameter(retrain, qtbot, monkeypatch):  # noqa: F811
    from napari_nuclei_unet.core.finetune import rounds

    viewer, dock, session, samples, project = retrain
    show(viewer, session, samples[0])
    paint_square(dock.edit_label_mask(), 7)
    add(qtbot, dock)
    seen = []
    real = rounds.inference_views

    def spy(model, corrections, options, *args, **kwargs):
        seen.append(options)
        return real(model, corrections, options, *args, **kwargs)

    monkeypatch.setattr(rounds, "inference_views", spy)
    session.set_diameter(30.0)
    dock.epochs_spin.setValue(1)
    dock.steps_spin.setValue(1)
    worker = dock.start_finetune()
    assert worker is not None
    wait_worker(qtbot, worker, timeout=120_000)
    assert [o.diameter for o in seen] == [30.0]
