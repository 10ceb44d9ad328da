"""The Train dock: a tiny model trains through the GUI worker; Stop, refusals, closing."""

from __future__ import annotations

import json

import pytest

from _widget_helpers import capture_notifications, tiny_samples, wait_worker

pytestmark = pytest.mark.gui


def tiny_config(**changes):
    from napari_nuclei_unet.core.config import TrainConfig

    values = dict(base_width=4, depth=2, crop_size=32, batch_size=4, epochs=2,
                  steps_per_epoch=3, val_fraction=0.34, num_threads=1, amp=False,
                  augment_scale=0.0)
    values.update(changes)
    return TrainConfig(**values)


@pytest.fixture
def trainer(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from napari_nuclei_unet.widgets import _train_offer
    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.train_widget import TrainWidget

    # tiny runs validate far below the shipped model, which they would never replace
    monkeypatch.setattr(_train_offer, "shipped_validation", lambda: None)

    viewer = make_napari_viewer()
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Train")
    widget.set_output_root(tmp_path / "runs")
    session = session_for(viewer)
    session.samples.update({s.id: s for s in tiny_samples(6)})
    session.samples_changed.emit()
    wait_worker(qtbot, session.jobs.running("list devices"))
    yield viewer, widget
    if widget.is_training():  # never leave a run behind (it would keep the viewer alive)
        widget.stop()
        wait_worker(qtbot, session.jobs.running("training"), timeout=120_000)
    wait_worker(qtbot, session.jobs.running("load model"))


def test_a_setting_that_is_off_says_so(qapp):
    # "Early stopping 0", "CPU threads 0": magicgui's integer spin box showed the number
    # the form takes for "never" / "automatic" (GUI check h_gui13)
    from napari_nuclei_unet.widgets._train_form import form_values, make_field

    fields = {n: make_field(n) for n in ("early_stopping_patience", "num_threads",
                                         "steps_per_epoch", "epochs")}
    texts = {n: w.native.text() for n, w in fields.items()}
    assert texts["early_stopping_patience"] == "never"
    assert texts["num_threads"] == "automatic"
    fields["num_threads"].value = 3
    values = form_values(fields)
    assert values["num_threads"] == 3 and isinstance(values["num_threads"], int)
    assert values["early_stopping_patience"] is None and isinstance(values["epochs"], int)


def test_form_round_trips_config(trainer):
    _viewer, widget = trainer
    config = tiny_config(early_stopping_patience=None, steps_per_epoch=None, learning_rate=3e-4,
                         modality_balance=0.5, compile=True)
    widget.set_config(config)
    back = widget.config()
    assert back.replace(device=config.device) == config


def test_tiny_training_draws_curves_and_sets_model(trainer, qtbot):
    viewer, widget = trainer
    widget.set_config(tiny_config())
    assert widget.tabs.tabText(widget.tabs.currentIndex()) == "Settings"
    with capture_notifications() as notes, \
            qtbot.waitSignal(widget.session.model_changed, timeout=120_000):
        worker = widget.start()
        assert worker is not None
        assert widget.tabs.tabText(widget.tabs.currentIndex()) == "Curves"
        wait_worker(qtbot, worker, timeout=120_000)
    # no model was loaded: the run's model is used at once, and the dock says so
    qtbot.waitUntil(lambda: notes.any("is now the model used for predictions"))
    assert [e for e, _ in widget.curves.points("train_loss")] == [1, 2]
    assert [e for e, _ in widget.curves.points("val_iou")] == [1, 2]
    assert all(0.0 <= v <= 1.0 for _, v in widget.curves.points("val_iou"))
    assert widget.result is not None and not widget.result.cancelled
    assert widget.best_checkpoint.exists()
    assert widget.run_dir.parent == widget.output_root()
    assert widget.session.model.path == widget.best_checkpoint
    assert widget.start_button.isEnabled() and not widget.stop_button.isEnabled()
    assert widget.progress.value() == 1000


def _train_one_epoch_then_stop(qtbot, widget, config) -> None:
    widget.set_config(config)
    worker = widget.start()
    qtbot.waitUntil(lambda: len(widget.curves.points("val_iou")) >= 1, timeout=120_000)
    widget.stop()
    wait_worker(qtbot, worker, timeout=120_000)


def test_stop_keeps_best_and_resume_continues(trainer, qtbot):
    _viewer, widget = trainer
    _train_one_epoch_then_stop(qtbot, widget, tiny_config(epochs=50, steps_per_epoch=2))
    result = widget.result
    assert result.cancelled
    assert result.best_checkpoint.exists() and result.last_checkpoint.exists()
    run_dir = widget.run_dir
    done = len(result.history)
    wait_worker(qtbot, widget.session.jobs.running("load model"))

    worker = widget.resume(run_dir)
    assert worker is not None
    assert len(widget.curves.points("train_loss")) >= done  # history shown again
    best = [h for h in result.history if h.is_best][-1]  # not "—" (GUI check h_gui31, L1)
    assert widget.best_label.text().startswith(
        f"Best model so far: epoch {best.epoch}, validation IoU {best.val_iou:.3f}")
    qtbot.waitUntil(lambda: len(widget.curves.points("train_loss")) > done, timeout=120_000)
    widget.stop()
    wait_worker(qtbot, worker, timeout=120_000)
    assert widget.run_dir == run_dir
    assert len(widget.result.history) > done


def test_a_resume_on_other_data_is_refused_before_it_starts_and_a_change_is_said(trainer,
                                                                                qtbot):
    # another dataset was refused from the worker as "Training failed", the bar saying
    # "failed", after "Resuming on 4 images" (GUI check h_gui41, M2); images added since
    # were said in a toast only (L2)
    from dataclasses import replace

    _viewer, widget = trainer
    _train_one_epoch_then_stop(qtbot, widget, tiny_config(epochs=50, steps_per_epoch=2))
    run_dir, session = widget.run_dir, widget.session
    wait_worker(qtbot, session.jobs.running("load model"))
    mine = dict(session.samples)
    session.samples.clear()
    widget.set_config(tiny_config(epochs=7))
    with capture_notifications() as notes:  # no data: said, the form left as it was (L6)
        assert widget.resume(run_dir) is None
    assert notes.any("Load a dataset in the Data panel first") and widget.config().epochs == 7
    session.samples.update({f"other-{k}": replace(s, id=f"other-{k}")
                            for k, s in enumerate(mine.values())})
    widget.set_config(tiny_config(epochs=7))
    with capture_notifications() as notes:
        assert widget.resume(run_dir) is None
    assert notes.any("This run was trained on another dataset: none of its validation "
                     "images is open") and not notes.texts("error")
    assert widget.config().epochs == 7  # the form is left as it was
    assert not widget.is_training()
    session.samples.clear()
    session.samples.update({**mine, "new": replace(next(iter(mine.values())), id="new")})
    worker = widget.resume(run_dir)
    assert worker is not None
    assert "The dataset changed since this run was started: it trains on" in \
        widget.status_label.text()
    widget.stop()
    wait_worker(qtbot, worker, timeout=120_000)


def test_second_start_is_refused(trainer, qtbot):
    _viewer, widget = trainer
    widget.set_config(tiny_config(epochs=50))
    with capture_notifications() as notes:
        first = widget.start()
        second = widget.start()
    assert first is not None and second is None
    assert notes.any("Training is already running. Stop it first.")
    widget.stop()
    wait_worker(qtbot, first, timeout=120_000)


def test_no_samples_gives_plain_message(trainer):
    _viewer, widget = trainer
    widget.session.samples.clear()
    with capture_notifications() as notes:
        assert widget.start() is None
    assert notes.any("Load a dataset in the Data panel first (Load all)")


def test_invalid_settings_are_explained(trainer):
    _viewer, widget = trainer
    widget.set_config(tiny_config())
    widget._editors["crop_size"].setValue(42)  # not a multiple of 2**depth = 4
    with capture_notifications() as notes:
        assert widget.start() is None
    # named as the form labels its fields, not as the code does
    assert notes.any("Crop size (42) must be a multiple of 4 (Depth 2 halves the crops 2 "
                     "times); try 40."), notes.messages
    assert not notes.any("TrainConfig")


def test_an_unwritable_runs_folder_is_said_before_training(trainer, tmp_path, monkeypatch):
    import tempfile

    _viewer, widget = trainer
    widget.set_config(tiny_config())
    widget.set_output_root(tmp_path / "runs")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    with capture_notifications() as notes:
        assert widget.start() is None
    assert notes.any(f"The runs folder {tmp_path / 'runs'} cannot be written to"), notes.messages
    assert notes.any("Permission denied") and not (tmp_path / "runs").exists()
    assert widget.status_label.text().strip() == ""  # no run folder named that is not there


def test_closing_napari_during_training_saves(make_napari_viewer, qtbot, tmp_path):
    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.train_widget import TrainWidget

    viewer = make_napari_viewer()
    widget = TrainWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Train")
    widget.set_output_root(tmp_path / "runs")
    session = session_for(viewer)
    session.samples.update({s.id: s for s in tiny_samples(6)})
    widget.set_config(tiny_config(epochs=500, steps_per_epoch=2))
    wait_worker(qtbot, session.jobs.running("list devices"))
    worker = widget.start()
    qtbot.waitUntil(lambda: len(widget.curves.points("train_loss")) >= 1, timeout=120_000)
    run_dir = widget.run_dir

    viewer.close()  # what the window's close button does, without the confirmation dialog

    assert not worker.is_running or widget._done_event.is_set()
    last = run_dir / "last.safetensors"
    assert last.exists() and (run_dir / "best.safetensors").exists()
    meta = json.loads(last.with_suffix(".json").read_text())
    assert meta["metrics"].get("cancelled_at_step") is not None  # saved by the stop
    qtbot.waitUntil(lambda: worker.handled, timeout=30_000)


def test_closing_the_train_dock_during_training_stops_it_and_says_so(trainer, qtbot):
    # napari's x destroys the dock now: the run stopped without a word, its handlers
    # failing on the deleted labels first (review h_rev20, H1)
    viewer, widget = trainer
    widget.set_config(tiny_config(epochs=500, steps_per_epoch=2))
    worker = widget.start()
    qtbot.waitUntil(lambda: len(widget.curves.points("train_loss")) >= 1, timeout=120_000)
    run_dir = widget.run_dir
    with capture_notifications() as notes:
        viewer.window.remove_dock_widget(widget)  # napari's x
        wait_worker(qtbot, worker, timeout=120_000)
        qtbot.waitUntil(lambda: worker.handled, timeout=30_000)
    assert notes.texts() == [
        "The Train panel was closed: training stops after its current step. The best model "
        f"so far is kept in {run_dir}; open the Train panel to use it."]
    assert widget.result.cancelled and (run_dir / "best.safetensors").exists()


def test_finished_training_offers_its_model_instead_of_swapping_it_in(trainer, qtbot):
    """A model in use (and its scores) is never replaced without the user asking."""
    viewer, widget = trainer
    session = widget.session
    in_use = object()
    session.model = in_use
    session.rows["kept"] = "a score"
    widget.set_config(tiny_config())
    worker = widget.start()
    wait_worker(qtbot, worker, timeout=120_000)
    assert session.model is in_use and session.rows == {"kept": "a score"}
    assert widget.use_model_button.isVisible() or not widget.isVisible()
    assert not widget.use_model_button.isHidden()
    with qtbot.waitSignal(session.model_changed, timeout=120_000):
        widget.use_model_button.click()
    assert session.model.path == widget.best_checkpoint
    assert widget.use_model_button.isHidden()


def test_form_fields_are_magicgui_widgets_from_trainconfig(trainer):
    import dataclasses

    from magicgui.widgets.bases import ValueWidget

    from napari_nuclei_unet.core.config import TrainConfig

    _viewer, widget = trainer
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert widget._fields, "the Train form is built with magicgui"
    for name, field in widget._fields.items():
        assert isinstance(field, ValueWidget)
        if isinstance(defaults[name], bool):
            assert isinstance(field.value, bool)
        elif isinstance(defaults[name], float):
            assert isinstance(field.value, float)


def test_a_resume_after_a_restart_keeps_the_runs_epochs(trainer, qtbot, make_napari_viewer):
    # the new dock's form holds the default 40 epochs: a 2-epoch run became a 40-epoch
    # one without a word (GUI check h_gui9); Epochs the user sets still extend it
    from napari_nuclei_unet.widgets.train_widget import TrainWidget

    viewer, widget = trainer
    _train_one_epoch_then_stop(qtbot, widget, tiny_config(epochs=3, steps_per_epoch=2))
    run_dir = widget.run_dir
    wait_worker(qtbot, widget.session.jobs.running("load model"))
    again = TrainWidget(make_napari_viewer())  # napari started again
    again.session.samples.update(widget.session.samples)
    assert again.config().epochs == 40
    worker = again.resume(run_dir)
    assert worker is not None and again.config().epochs == 3
    again.stop()
    wait_worker(qtbot, worker, timeout=120_000)
    again._fields["epochs"].value = 5  # the user asks for more
    with capture_notifications() as notes:
        worker = again.resume(run_dir)
    assert worker is not None and again.config().epochs == 5
    assert notes.any("The run goes on to 5 epochs (set in Epochs; 3 planned)")
    again.stop()
    wait_worker(qtbot, worker, timeout=120_000)


def test_samples_that_could_not_be_decoded_do_not_block_training(trainer):
    # Load all said "3 of 5 samples are loaded: 2 could not be decoded ...; you can train
    # on the others", and Start then refused: "Only 3 of the 5 samples are loaded"
    viewer, widget = trainer
    session = widget.session

    class Decoded:
        def __init__(self, failed):
            self.failed = failed

        def __len__(self):
            return 8

        def failed_ids(self):
            return self.failed

    session.dataset = Decoded(["bad1", "bad2"])
    session.samples_changed.emit()
    assert widget.data_label.text() == ("6 samples loaded and ready for training "
                                        "(2 could not be decoded).")
    assert len(widget._training_samples()) == 6
    session.dataset = Decoded(["bad1"])  # one sample is still to be loaded
    session.samples_changed.emit()
    assert widget.data_label.text().startswith("6 of 8 samples loaded: press Load all")
    with capture_notifications() as notes:
        assert widget._training_samples() is None
    assert notes.any("Only 6 of the 8 samples are loaded")


def test_check_boxes_show_no_field_names(trainer):
    # "Flips ☑ augment flips", "Mixed precision ☑ amp" (GUI check h_gui13 L2): the form's
    # label says what a box is; magicgui's text beside it was the dataclass field's name
    _viewer, widget = trainer
    boxes = {name: editor for name, editor in widget._editors.items()
             if isinstance(widget._fields[name].value, bool)}
    assert {"augment_flips", "amp", "compile"} <= set(boxes)
    assert all(box.text() == "" for box in boxes.values()), {
        name: box.text() for name, box in boxes.items()}
