"""The Model dock: load a checkpoint in the background, show its config and metrics."""

from __future__ import annotations

import pytest

from _widget_helpers import capture_notifications, wait_worker

pytestmark = pytest.mark.gui


@pytest.fixture
def tiny_checkpoint(tmp_path):
    from napari_nuclei_unet.core.checkpoint import save_checkpoint
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.model import UNet

    config = TrainConfig(base_width=4, depth=2, crop_size=32, epochs=3)
    model = UNet(3, base_width=4, depth=2)
    metadata = {
        "metrics": {"epoch": 3, "val_iou": 0.8125, "val_loss": 0.31,
                    "val_iou_by_modality": {"fluorescence": 0.9, "histology": 0.7}},
        "training_data": {"n_train": 10, "n_val": 2, "train_modalities": {"fluorescence": 10}},
        "created": "2026-11-25T12:00:00+00:00",
    }
    return save_checkpoint(tmp_path / "run" / "best.safetensors", model, config, metadata)


@pytest.fixture
def model_widget(make_napari_viewer, qtbot):
    from napari_nuclei_unet.widgets.model_widget import ModelWidget

    viewer = make_napari_viewer()
    widget = ModelWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Model")
    yield viewer, widget
    wait_worker(qtbot, widget.session.jobs.running("list devices"))


def test_loads_checkpoint_and_shows_config(model_widget, qtbot, tiny_checkpoint):
    from napari_nuclei_unet.widgets._session import session_for

    viewer, widget = model_widget
    session = session_for(viewer)
    with qtbot.waitSignal(session.model_changed, timeout=60_000):
        worker = widget.load(tiny_checkpoint)
    wait_worker(qtbot, worker)
    assert session.model is not None and session.model.path == tiny_checkpoint
    config = dict(widget.config_rows())
    assert config["base width"] == "4" and config["depth"] == "2"
    metrics = dict(widget.metric_rows())
    assert metrics["validation IoU"] == "0.8125"
    assert metrics["val iou by modality · fluorescence"] == "0.9"
    assert "CPU" in widget.device_label.text()
    assert "10 training" in widget.training_label.text()
    assert widget.name_label.text() == "run/best"  # as the Compare dock names it
    assert widget.name_label.toolTip() == str(tiny_checkpoint)


def test_devices_listed_are_real(model_widget, qtbot):
    _viewer, widget = model_widget
    wait_worker(qtbot, widget.session.jobs.running("list devices"))
    qtbot.waitUntil(lambda: widget.device_combo.count() >= 2, timeout=60_000)
    devices = [widget.device_combo.itemData(i) for i in range(widget.device_combo.count())]
    assert devices[0] == "auto" and devices[-1] == "cpu"


def test_bad_file_gives_plain_notification(model_widget, qtbot, tmp_path):
    _viewer, widget = model_widget
    bogus = tmp_path / "holiday.safetensors"
    bogus.write_bytes(b"not a checkpoint at all")
    pickle = tmp_path / "model.pth"
    pickle.write_bytes(b"\x80\x04")
    with capture_notifications() as notes:
        wait_worker(qtbot, widget.load(bogus))
        wait_worker(qtbot, widget.load(pickle))
    errors = notes.texts("error")
    assert len(errors) == 2, notes.messages
    assert all(e.startswith("This file is not a usable nuclei-unet checkpoint") for e in errors)
    assert widget.session.model is None
    assert widget.default_button.isEnabled()
    # a broken .zip is called a package, not a checkpoint; one that is no package at all
    # is not "This bioimage.io package" (GUI check h_gui36, L1)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    with capture_notifications() as notes:
        wait_worker(qtbot, widget.load(broken))
    errors = notes.texts("error")
    assert len(errors) == 1, notes.messages
    assert "broken.zip is not a complete zip file (a download that stopped" in errors[0]
    assert "This bioimage.io" not in errors[0] and "checkpoint:" not in errors[0]
    # the toast fades: the dock says it too, until a model loads
    assert widget.export_status.text().startswith("broken.zip was not loaded. ")
    # a package's description is named by its folder: every one is "bioimageio.yaml"
    # (GUI check h_gui42, L3)
    (tmp_path / "mypackage").mkdir()
    (tmp_path / "mypackage" / "bioimageio.yaml").write_text("format_version: 0.5.3\n")
    wait_worker(qtbot, widget.load(tmp_path / "mypackage" / "bioimageio.yaml"))
    assert widget.export_status.text().startswith("The package mypackage was not loaded. ")
    wait_worker(qtbot, widget.load("default"))
    assert widget.session.model is not None and widget.export_status.text() == ""


def test_follows_model_set_by_another_dock(model_widget, qtbot, tiny_checkpoint):
    from napari_nuclei_unet.core.checkpoint import load_checkpoint

    _viewer, widget = model_widget
    widget.session.set_model(load_checkpoint(tiny_checkpoint))
    assert dict(widget.config_rows())["crop size"] == "32"


def test_training_described_plainly():
    import json

    from napari_nuclei_unet.core.checkpoint import default_model_path
    from napari_nuclei_unet.widgets.model_widget import describe_training

    metadata = json.loads(default_model_path().with_suffix(".json").read_text())
    text = describe_training(metadata)
    assert "100000" not in text and "cuda:0" not in text  # was "epoch 30 of 100000 · on cuda:0"
    assert "epochs" in text and "min" in text
    assert "trained on" in text and "NVIDIA" in text
    assert "cuda" not in describe_training({"device": "cuda:0"})
    assert describe_training({"device": "cpu"}).endswith("trained on the CPU")


def test_a_runs_best_epoch_is_not_called_a_stop(tmp_path):
    # a run of 3 epochs whose best model is from epoch 2: the run was not stopped
    import json

    from napari_nuclei_unet.widgets.model_widget import describe_training

    def sidecar(name, epoch, planned=3):
        (tmp_path / name).write_text(json.dumps(
            {"config": {"steps_per_epoch": 10}, "metrics": {"epoch": epoch},
             "history": [{"epoch": e, "epochs": planned} for e in range(1, epoch + 1)]}))
        return json.loads((tmp_path / name).read_text())

    best = sidecar("best.json", 2)
    assert "stopped before the 3 planned" in describe_training(best)  # how far: unknown
    sidecar("last.json", 3)
    text = describe_training(best, tmp_path / "best.safetensors")
    assert "2 epochs (20 steps), the best of the 3 trained" in text and "stopped" not in text
    # stopped in epoch 4 of 5: its last checkpoint is epoch 3's
    best = sidecar("best.json", 2, planned=5)
    sidecar("last.json", 3, planned=5)
    assert describe_training(best, tmp_path / "best.json").startswith(
        "2 epochs (20 steps), the best of the 3 trained so far (5 planned)")
    # a last saved as it stopped (in epoch 4, none of its steps done): 3 trained, not 4
    # (GUI check h_gui41, L1)
    (tmp_path / "last.json").write_text(json.dumps(
        {"config": {"steps_per_epoch": 10}, "metrics": {"epoch": 4, "cancelled_at_step": 0},
         "history": [{"epoch": e, "epochs": 5} for e in range(1, 4)]}))
    assert describe_training(best, tmp_path / "best.json").startswith(
        "2 epochs (20 steps), the best of the 3 trained so far (5 planned)")
    # the weights of a run stopped in its first epoch are no "1 epoch (10 steps)"
    first = {"config": {"steps_per_epoch": 10}, "metrics": {"epoch": 1, "val_iou": None}}
    assert "epoch" not in describe_training(first)
    # a last.json that is not ours is no reason to fail
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "last.json").write_text(json.dumps(
        {"config": {}, "metrics": {"epoch": "three"}, "history": {"a": 1}}))
    assert "stopped before the 5 planned" in describe_training(best, tmp_path / "other" /
                                                                "best.json")
    # the run's last checkpoint itself says what it says
    last = json.loads((tmp_path / "last.json").read_text())
    assert "stopped before the 5 planned" in describe_training(last, tmp_path / "last.json")

def test_one_epoch_is_not_called_epochs():
    from napari_nuclei_unet.widgets.model_widget import describe_training

    text = describe_training({"config": {"steps_per_epoch": 50}, "metrics": {"epoch": 1}})
    assert text == "1 epoch (50 steps)"
    assert describe_training({"config": {"steps_per_epoch": 1}, "metrics": {"epoch": 1}}) \
        == "1 epoch (1 step)"
    assert describe_training({"metrics": {"epoch": 2}}) == "2 epochs"


def test_a_fine_tuning_version_is_described_as_one():
    # v001 read "trained 2026-12-05 · 12 epochs (96 steps) in 34 s · 602 training / 68
    # validation images": no word of its corrections, nor of the model it started from
    from datetime import datetime

    from napari_nuclei_unet.widgets.model_widget import describe_training

    created = "2026-12-05T06:40:00+00:00"
    local = f"{datetime.fromisoformat(created).astimezone():%Y-%m-%d %H:%M}"
    metadata = {
        "config": {"steps_per_epoch": 8}, "metrics": {"epoch": 12}, "created": created,
        "history": [{"epoch": 12, "epochs": 12, "elapsed_s": 34.2}],
        "training_data": {"n_train": 602, "n_val": 68},
        "finetune": {"base_model": "default", "adopted": True, "held_out": ["d"],
                     "corrections": [{"id": "a"}, {"id": "b"}, {"id": "c"}],
                     "mean_iou_corrected": {"before": 0.5, "after": 0.7}},
    }
    assert describe_training(metadata) == (
        f"fine-tuned from the default model on 3 corrected images (1 kept aside) · 34 s · "
        f"{local}")
    metadata["finetune"].update(base_model="v001", held_out=[], adopted=False,
                                corrections=[{"id": "a"}])
    assert describe_training(metadata).startswith(
        "fine-tuned from v001 on 1 corrected image · 34 s · ")
    assert describe_training(metadata).endswith(" · not made current by its round's checks")
    # exported as a package and loaded back: its own test is said (GUI check h_gui42, L2)
    metadata["bioimageio"] = {"test": "reproduces its test output (largest difference 1e-06)"}
    assert describe_training(metadata).endswith(
        " · not made current by its round's checks · reproduces its test output (largest "
        "difference 1e-06)")
    del metadata["bioimageio"]
    metadata["finetune"] = {"base_model": "/data/runs/run-20261205-062511/best.safetensors"}
    assert describe_training(metadata).startswith("fine-tuned from run-20261205-062511/best")


def test_checkpoint_dialog_opens_where_models_are(model_widget, qtbot, tiny_checkpoint,
                                                  monkeypatch):
    # it opened in the working folder; runs are in a hidden folder a dialog does not show
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.widgets import model_widget as module
    from napari_nuclei_unet.widgets._train_jobs import default_runs_root

    _viewer, widget = model_widget
    asked = []
    monkeypatch.setattr(module.QFileDialog, "getOpenFileName",
                        lambda parent, title, folder, *rest: asked.append(folder) or ("", ""))
    default_runs_root().mkdir(parents=True)
    widget.file_button.click()
    assert asked[-1] == str(default_runs_root())
    widget.session.set_model(load_checkpoint(tiny_checkpoint))
    widget.file_button.click()
    assert asked[-1] == str(tiny_checkpoint.parent)  # the folder of the model in use
    widget.session.set_model(load_checkpoint("default"))  # not the installation's folder
    widget.file_button.click()
    assert asked[-1] == str(default_runs_root())


def test_configuration_explains_the_epoch_limit_and_the_training_device():
    import json

    from napari_nuclei_unet.core.checkpoint import default_model_path
    from napari_nuclei_unet.widgets.model_widget import describe_config

    metadata = json.loads(default_model_path().with_suffix(".json").read_text())
    rows = dict(describe_config(metadata["config"], metadata, "cpu"))
    assert rows["epochs"].startswith("30 trained") and "time budget" in rows["epochs"]
    assert rows["trained on device"] == "cuda (runs here on the CPU)"
    assert "device" not in rows
    assert rows["time budget"] == "8 min"
    plain = dict(describe_config({"epochs": 3, "device": "cpu"}, {"metrics": {"epoch": 3}},
                                 "cpu"))
    assert plain["epochs"] == "3"
    # a run's best from epoch 4 of the 6 it trained: not "the run ended before" (h_gui42)
    config = {"epochs": 6, "device": "cpu"}
    best = {"metrics": {"epoch": 4}, "history": [{"epoch": 4}]}
    assert dict(describe_config(config, {**best, "epochs_run": 6}, "cpu"))["epochs"] == "6"
    assert dict(describe_config(config, best, "cpu"))["epochs"].startswith("4 trained")


def test_configuration_counts_the_epochs_a_run_trained_from_its_last_checkpoint(
        tmp_path, monkeypatch):
    # its best from epoch 1 of 2: "1 trained (limit 2; the run ended before)" (GUI check
    # h_gui42, L6); the run's last.json beside it says 2 (review h_rev27, 12)
    import napari_nuclei_unet.core.training as training
    from napari_nuclei_unet.core.checkpoint import read_metadata
    from napari_nuclei_unet.core.progress import drive
    from napari_nuclei_unet.widgets.model_widget import describe_config
    from test_training import make_samples, tiny_config

    ious = iter([0.9, 0.1])
    monkeypatch.setattr(training, "validate", lambda *a, **k: (1.0, next(ious)))
    run = drive(training.train(tiny_config(epochs=2), make_samples(), out_dir=tmp_path))
    metadata = read_metadata(run.best_checkpoint)
    config = {"epochs": 2, "device": "cpu"}
    assert dict(describe_config(config, metadata, "cpu", run.best_checkpoint))["epochs"] == "2"
    assert dict(describe_config(config, metadata, "cpu"))["epochs"].startswith("1 trained")


def test_value_column_is_visible_in_a_narrow_dock(model_widget, qtbot, tiny_checkpoint):
    from napari_nuclei_unet.widgets._session import session_for

    viewer, widget = model_widget
    session = session_for(viewer)
    with qtbot.waitSignal(session.model_changed, timeout=60_000):
        wait_worker(qtbot, widget.load(tiny_checkpoint))
    widget.resize(340, 600)
    widget.show()
    qtbot.wait(50)
    for table in (widget.metrics_table, widget.config_table):
        widget.tabs.setCurrentWidget(table)
        qtbot.wait(20)
        table.fit_columns()
        qtbot.wait(50)
        right = table.columnViewportPosition(1) + table.columnWidth(1)
        assert table.columnWidth(1) >= 40
        assert right <= table.viewport().width() + 1, (
            right, table.viewport().width(), table.columnWidth(0), table.columnWidth(1),
            table.horizontalHeader().length(), table.horizontalHeader().offset(),
            widget.tabs.currentIndex())


def test_export_button_follows_the_model_in_use(model_widget, tiny_checkpoint):
    from napari_nuclei_unet.core.checkpoint import load_checkpoint

    _viewer, widget = model_widget
    assert not widget.export_button.isEnabled()
    assert "Load a model first" in widget.export_button.toolTip()
    loaded = load_checkpoint(tiny_checkpoint)
    widget.session.set_model(loaded)
    assert widget.export_button.isEnabled()
    assert "bioimage.io package" in widget.export_button.toolTip()
    widget.export_status.setText("Exported run/best to /x.zip")
    from dataclasses import replace

    # a package of another tool cannot be re-exported; nor a model that is not in a file
    widget.session.set_model(replace(loaded, metadata={"bioimageio": "unet2d"}))
    assert not widget.export_button.isEnabled()
    assert widget.export_status.text() == ""  # it spoke of another model
    # its Metrics tab was an empty table (GUI check h_gui31, L7)
    assert [name for name, _ in widget.metric_rows()] == ["scores"]
    assert "none recorded with this model" in widget.metric_rows()[0][1]
    assert "bioimage.io package already" in widget.export_button.toolTip()
    widget.session.set_model(replace(loaded, path=None))
    assert not widget.export_button.isEnabled()


def test_export_dialog_proposes_a_name_and_file(model_widget, qtbot, tiny_checkpoint,
                                                 monkeypatch, tmp_path):
    from dataclasses import replace

    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from napari_nuclei_unet.core.checkpoint import load_checkpoint

    monkeypatch.setenv("HOME", str(tmp_path))
    _viewer, widget = model_widget
    widget.session.set_model(load_checkpoint(tiny_checkpoint))
    seen, widths, corners = [], [], []

    def answer(accept: bool) -> None:
        from qtpy.QtWidgets import QLabel

        dialog = QApplication.activeModalWidget()
        seen.append(dialog.windowTitle() if dialog is not None else None)
        widths.append(dialog.width() if dialog is not None else 0)
        if dialog is not None and not seen[1:]:
            labels = {w.text(): w for w in dialog.findChildren(QLabel) if w.isVisible()}
            intro = next((w for t, w in labels.items() if t.startswith("Save ")), None)
            if intro is not None and "Name" in labels:
                corners.extend(w.mapTo(dialog, w.rect().topLeft()) for w in (intro,
                                                                           labels["Name"]))
                corners.append(intro.mapTo(dialog, intro.rect().bottomLeft()))
        if dialog is not None:
            dialog.accept() if accept else dialog.reject()

    QTimer.singleShot(300, lambda: answer(True))
    choice = widget.ask_export()
    assert seen == ["Export the model for bioimage.io"]
    # the introduction starts at the dialog's left, above the labels' column (it sat in
    # the fields' column: GUI check h_gui14, N10)
    intro_top, name_top, intro_bottom = corners
    assert intro_top.x() <= name_top.x() + 2 and intro_bottom.y() <= name_top.y()
    assert widths[0] >= 480  # "Save as" shows the folder (it was 295 px wide: h_gui13, L3)
    assert choice is not None
    assert choice.name == "Nuclei U-Net (run-best)" and choice.license == "CC-BY-4.0"
    assert choice.out == tmp_path / "nuclei-unet-run-best.zip" and choice.authors == ()
    QTimer.singleShot(300, lambda: answer(False))
    assert widget.ask_export() is None
    # a refused name: the dialog comes back with what was typed, and why
    typed = replace(choice, name="lab/a", authors=("Ada Lovelace",), license="MIT")
    QTimer.singleShot(300, lambda: answer(True))
    assert widget.ask_export(typed, "not '/'") == typed
    # the authors and licence of the last export are offered again
    widget._last_choice = typed
    QTimer.singleShot(300, lambda: answer(True))
    again = widget.ask_export()
    assert again.authors == ("Ada Lovelace",) and again.license == "MIT"
    assert again.name == "Nuclei U-Net (run-best)"


def test_a_file_the_picker_returned_is_not_asked_about_twice(model_widget, qtbot,
                                                            tiny_checkpoint, tmp_path,
                                                            monkeypatch):
    # the save dialog asks itself whether to replace a file; the dock asked again
    # (review h_rev8 L5). A typed path is still asked about by the dock.
    import magicgui.backends._qtpy as qt_backend
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication, QLineEdit, QPushButton

    from napari_nuclei_unet.core.checkpoint import load_checkpoint

    _viewer, widget = model_widget
    widget.session.set_model(load_checkpoint(tiny_checkpoint))
    existing = tmp_path / "ours.zip"
    existing.write_bytes(b"old")
    monkeypatch.setattr(qt_backend, "show_file_dialog", lambda *a, **k: str(existing))

    def fill(pick: bool) -> None:
        dialog = QApplication.activeModalWidget()
        if pick:
            button = next(b for b in dialog.findChildren(QPushButton)
                          if b.text() not in ("Export", "Cancel"))
            button.click()  # the (fake) save dialog returns the existing file
        else:
            edits = [e for e in dialog.findChildren(QLineEdit) if e.text().endswith(".zip")]
            edits[0].setText(str(existing))  # the same path, typed
        dialog.accept()

    QTimer.singleShot(300, lambda: fill(True))
    picked = widget.ask_export()
    assert picked.out == existing and picked.overwrite
    QTimer.singleShot(300, lambda: fill(False))
    typed = widget.ask_export()
    assert typed.out == existing and not typed.overwrite


def test_export_names_and_authors_are_checked():
    from napari_nuclei_unet.widgets._model_export import name_problem, split_authors

    assert name_problem("Nuclei U-Net (our lab)") is None
    assert "not '/'" in name_problem("lab/a")
    assert "Give the package a name" in name_problem("  ")
    assert split_authors("Lovelace, Ada; Alan Turing ;") == ("Lovelace, Ada", "Alan Turing")


def test_export_writes_a_package_that_loads_back(model_widget, qtbot, tiny_checkpoint,
                                                 tmp_path, monkeypatch):
    pytest.importorskip("bioimageio.core")
    from napari_nuclei_unet.bioimageio.load import load_any_model
    from napari_nuclei_unet.core.checkpoint import load_checkpoint, read_metadata, save_checkpoint
    from napari_nuclei_unet.widgets._model_export import ExportChoice
    from napari_nuclei_unet.widgets._model_training import describe_training

    _viewer, widget = model_widget
    # a stopped run's best model, with its held-out report, epochs and hardware: a
    # package loaded back showed 6 metric rows of 25 and "1 epoch" (GUI check h_gui31, L2)
    tiny = load_checkpoint(tiny_checkpoint)
    metadata = {k: v for k, v in read_metadata(tiny_checkpoint).items()
                if k in ("training_data", "created")}
    metadata.update({
        "metrics": {"epoch": 1, "val_iou": 0.73},
        "history": [{"epoch": 1, "epochs": 3, "val_iou": 0.73, "is_best": True,
                     "elapsed_s": 63.0, "checkpoint": str(tmp_path / "secret" / "x")}],
        "evaluation": {"mean_iou": 0.71, "dsb_score": 0.4,
                       "per_modality": {"fluorescence": {"mean_iou": 0.75}}},
        "training_hardware": "one NVIDIA H100 80GB HBM3"})
    best = save_checkpoint(tmp_path / "rich" / "run" / "best.safetensors", tiny.model,
                           tiny.config, metadata)
    save_checkpoint(best.with_name("last.safetensors"), tiny.model, tiny.config,
                    {**metadata, "metrics": {"epoch": 2}})
    widget.session.set_model(load_checkpoint(best))
    before = describe_training(widget.session.model.metadata, best)
    assert "the best of the 2 trained so far (3 planned)" in before
    out = tmp_path / "shared" / "our lab.zip"
    out.parent.mkdir()
    # a name bioimage.io refuses is said before any work
    assert widget.export_model(ExportChoice(out, "lab/a", (), "MIT")) is None
    assert "may hold only letters" in widget.export_status.text()
    with capture_notifications() as notes:
        wait_worker(qtbot, widget.export_model(
            ExportChoice(out, "Nuclei U-Net (our lab)", ("Ada Lovelace",), "MIT")))
    assert out.is_file(), notes.messages
    assert widget.export_status.text().startswith(f"Exported run/best to {out}")
    assert not notes.texts("error")
    assert widget.export_button.isEnabled()
    package = load_any_model(out)
    assert package.metadata["bioimageio"]["name"] == "Nuclei U-Net (our lab)"
    assert package.metadata["train_config_recorded"]
    assert package.metadata["evaluation"] == metadata["evaluation"]
    assert "secret" not in str(package.metadata["history"])  # never a path of this disk
    # the same words, and that the package reproduced its own test output as it loaded
    test = package.metadata["bioimageio"]["test"]
    assert test.startswith("reproduces its test output")
    assert describe_training(package.metadata, out) == f"{before} · {test}"
    widget.session.set_model(package)
    assert len(widget.metric_rows()) >= 5  # training's and the held-out report's
    assert any(name.startswith("held-out") or "DSB" in name or "dsb" in name
               for name, _ in widget.metric_rows()), widget.metric_rows()
    widget.session.set_model(tiny)

    # an existing file is replaced only when the user agrees
    before = out.stat().st_mtime_ns
    monkeypatch.setattr(type(widget), "_confirm_overwrite", lambda self, path: False)
    assert widget.export_model(ExportChoice(out, "Nuclei U-Net (v2)", (), "MIT")) is None
    assert widget.export_status.text() == "Not exported: the file exists."
    assert out.stat().st_mtime_ns == before
    monkeypatch.setattr(type(widget), "_confirm_overwrite", lambda self, path: True)
    wait_worker(qtbot, widget.export_model(ExportChoice(out, "Nuclei U-Net (v2)", (), "MIT")))
    assert load_any_model(out).metadata["bioimageio"]["name"] == "Nuclei U-Net (v2)"
    assert "Tip: name the authors" in widget.export_status.text()


def test_export_failure_is_said_in_the_dock(model_widget, qtbot, tiny_checkpoint, tmp_path):
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.widgets._model_export import ExportChoice

    _viewer, widget = model_widget
    widget.session.set_model(load_checkpoint(tiny_checkpoint))
    blocker = tmp_path / "not a folder"
    blocker.write_text("a file where a folder should be")
    with capture_notifications() as notes:
        wait_worker(qtbot, widget.export_model(
            ExportChoice(blocker / "model.zip", "Nuclei U-Net", (), "MIT")))
    errors = notes.texts("error")
    assert len(errors) == 1, notes.messages
    assert "failed" in widget.export_status.text() or "could not" in \
        widget.export_status.text(), widget.export_status.text()
    assert str(blocker) in widget.export_status.text() or "not a folder" in errors[0]
    assert widget.export_button.isEnabled()


def test_export_runs_apart_and_stops_with_napari(model_widget, qtbot, tiny_checkpoint,
                                                 tmp_path, monkeypatch):
    """The export is a process of its own, killed when its job is stopped (napari closes)."""
    import os
    import sys

    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.widgets import _model_export
    from napari_nuclei_unet.widgets._model_export import ExportChoice, export_command

    choice = ExportChoice(tmp_path / "a.zip", "Nuclei U-Net (lab)", ("A B", "C D"), "MIT",
                          overwrite=True)
    command = export_command("/m/best.safetensors", choice)
    assert command[1:5] == ["-m", "napari_nuclei_unet.cli", "export", "/m/best.safetensors"]
    assert command.count("--author") == 2 and "--overwrite" in command
    pid_file, tidied = tmp_path / "pid", tmp_path / "tidied"
    monkeypatch.setattr(_model_export, "export_command", lambda model, choice: [
        sys.executable, "-c",
        f"import os, sys, time; open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        f"try:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n"
        f"    open({str(tidied)!r}, 'w').write('the export removes its partial file')\n"
        "    sys.exit(130)"])
    _viewer, widget = model_widget
    widget.session.set_model(load_checkpoint(tiny_checkpoint))
    worker = widget.export_model(ExportChoice(tmp_path / "b.zip", "Nuclei U-Net", (), "MIT"))
    assert not widget.export_button.isEnabled()  # one export at a time
    qtbot.waitUntil(lambda: pid_file.exists() and bool(pid_file.read_text()), timeout=30_000)
    widget._export_run.stop()  # what napari's close confirmation calls
    wait_worker(qtbot, worker, timeout=10_000)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
    if sys.platform != "win32":  # interrupted (its Ctrl-C: it tidies up), not killed
        assert tidied.exists()
    assert widget.export_button.isEnabled()
    assert not (tmp_path / "b.zip").exists()
    assert widget.export_status.text() == "The export was stopped; nothing was written."
