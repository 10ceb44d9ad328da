"""A resumed run takes over its run's split, time budget, best model and early stopping
(review h_rev23, M1-M3, M5, L1)."""

from __future__ import annotations

import types

import pytest

import napari_nuclei_unet.core.training as training
from napari_nuclei_unet.core.checkpoint import load_checkpoint, read_metadata
from napari_nuclei_unet.core.progress import drive
from napari_nuclei_unet.core.training import TrainingError, resume_data, train
from test_training import _stop_after, make_samples, tiny_config


def test_a_resumed_run_keeps_its_validation_images_when_images_are_added(tmp_path):
    # one image more in the folder moved an image the run trained on into validation
    samples = make_samples(9)
    first = drive(train(tiny_config(epochs=1), samples, out_dir=tmp_path))
    more = [*samples, *make_samples(12, seed=1)[9:]]  # s9, s10, s11 added
    more[-3:] = [type(s)(f"new{i}", s.image, s.labels, s.modality)
                 for i, s in enumerate(more[-3:])]
    train_now, val_now, note = resume_data(first.last_checkpoint, more, tiny_config(epochs=2))
    assert {s.id for s in val_now} == set(first.val_ids)
    assert {"new0", "new1", "new2"} <= {s.id for s in train_now}
    assert note == ("The dataset changed since this run was started: it trains on 9 images, "
                    "not 6: the new ones join the training set, never validation.")
    second = drive(train(tiny_config(epochs=2), more, out_dir=tmp_path,
                         resume_from=first.last_checkpoint))
    assert second.val_ids == first.val_ids
    assert read_metadata(second.last_checkpoint)["training_data"]["n_train"] == 9
    # a validation image gone is said; another dataset is refused
    fewer = [s for s in samples if s.id != first.val_ids[0]]
    assert "1 of its 3 validation images are missing now" in resume_data(
        first.last_checkpoint, fewer, tiny_config())[2]
    other = [type(s)(f"x{s.id}", s.image, s.labels, s.modality) for s in samples]
    with pytest.raises(TrainingError, match="None of the 3 validation images .* another "
                                            "dataset.*--init"):
        drive(train(tiny_config(epochs=2), other, out_dir=tmp_path,
                    resume_from=first.last_checkpoint))


def test_a_resumed_time_budget_run_continues_its_budget_and_schedule(tmp_path, monkeypatch):
    # it got a whole new budget, its learning rate back near the top (M2)
    clock = [0.0]

    def perf_counter():
        clock[0] += 1e-3
        return clock[0]

    monkeypatch.setattr(training, "time", types.SimpleNamespace(perf_counter=perf_counter))
    factors = []
    real = training.learning_rate_factor
    monkeypatch.setattr(training, "learning_rate_factor",
                        lambda step, total, config: factors.append(real(step, total, config))
                        or factors[-1])

    def ten_seconds_a_step(k=None):
        calls = [0]

        def should_stop():
            clock[0] += 10.0
            calls[0] += 1
            return k is not None and calls[0] > k
        return should_stop

    config = tiny_config(epochs=100, steps_per_epoch=5, val_fraction=0.0, time_budget_s=100.0,
                         warmup_fraction=0.0)
    samples = make_samples()
    half = drive(train(config, samples, out_dir=tmp_path, should_stop=ten_seconds_a_step(5)))
    factors[:] = factors[::2]  # one per parameter group (decay, no decay): one per step
    assert half.cancelled and len(factors) == 5
    before = factors[-1]
    factors.clear()
    clock[0] = 1000.0  # another process, another clock
    drive(train(config, samples, out_dir=tmp_path, resume_from=half.last_checkpoint,
                should_stop=ten_seconds_a_step()))
    factors[:] = factors[::2]
    assert 4 <= len(factors) <= 6  # the 50 s left, not 100 s more
    assert factors[0] <= before  # going on down, not back up
    with pytest.raises(TrainingError, match="has used its whole time budget .* larger budget"):
        drive(train(config, samples, out_dir=tmp_path,
                    resume_from=tmp_path / "last.safetensors"))


def test_a_run_resumed_into_another_folder_has_its_best_model_there(tmp_path, monkeypatch):
    # its best IoU came along, so a run that never beat it wrote no best (M3)
    samples = make_samples()
    ious = iter([0.9, 0.1])
    monkeypatch.setattr(training, "validate", lambda *a, **k: (1.0, next(ious)))
    first = drive(train(tiny_config(epochs=1), samples, out_dir=tmp_path / "a"))
    second = drive(train(tiny_config(epochs=2), samples, out_dir=tmp_path / "b",
                         resume_from=first.last_checkpoint))
    assert second.best_checkpoint == tmp_path / "b" / "best.safetensors"
    best = load_checkpoint(second.best_checkpoint)
    assert best.metadata["metrics"]["val_iou"] == 0.9  # the run's best, epoch 1
    # into a folder holding another run (--overwrite): its best is not this run's (B13)
    ious = iter([0.95, 0.2])
    drive(train(tiny_config(epochs=1), samples, out_dir=tmp_path / "c"))
    third = drive(train(tiny_config(epochs=2), samples, out_dir=tmp_path / "c",
                        resume_from=first.last_checkpoint))
    best = load_checkpoint(third.best_checkpoint)
    assert best.metadata["metrics"]["val_iou"] == 0.9  # a's, not c's own 0.95
    # a's own best missing (only its last copied from a cluster): c's is not a's either
    # (review h_rev26, 2)
    ious = iter([0.95, 0.2])
    drive(train(tiny_config(epochs=1), samples, out_dir=tmp_path / "d"))
    (tmp_path / "a" / "best.safetensors").unlink()
    fourth = drive(train(tiny_config(epochs=2), samples, out_dir=tmp_path / "d",
                         resume_from=first.last_checkpoint))
    best = load_checkpoint(fourth.best_checkpoint)
    assert best.metadata["metrics"]["val_iou"] == 0.2  # its own epoch 2, the only one
    # a new run stopped before its first validation, in a folder holding another run's
    ious = iter([0.95])
    drive(train(tiny_config(epochs=1), samples, out_dir=tmp_path / "e"))
    stopped = drive(train(tiny_config(epochs=3), samples, out_dir=tmp_path / "e",
                          should_stop=_stop_after(1)))
    assert stopped.cancelled
    best = load_checkpoint(stopped.best_checkpoint)
    assert best.metadata["metrics"]["val_iou"] is None  # its own, not the 0.95


def test_a_new_run_started_from_its_folders_best_keeps_that_file(tmp_path):
    # train --init OUT/best.safetensors --out OUT --overwrite removed the starting model
    # before the run began: stopped before its first validation, it was gone (h_rev28, 9)
    samples = make_samples()
    first = drive(train(tiny_config(epochs=1), samples, out_dir=tmp_path))
    before = (tmp_path / "best.safetensors").read_bytes()
    stopped = drive(train(tiny_config(epochs=2), samples, out_dir=tmp_path,
                          init_from=first.best_checkpoint, should_stop=_stop_after(1)))
    assert stopped.cancelled and (tmp_path / "best.safetensors").read_bytes() == before


def test_a_run_resumed_in_its_folder_by_another_spelling_keeps_its_best(tmp_path,
                                                                         monkeypatch):
    # a bind mount (or a share mounted twice) is another path to the same folder: the
    # run's own best was removed as another run's (review h_rev27, 2)
    from napari_nuclei_unet.core import train_resume

    samples = make_samples()
    ious = iter([0.9, 0.1])
    monkeypatch.setattr(training, "validate", lambda *a, **k: (1.0, next(ious)))
    first = drive(train(tiny_config(epochs=1), samples, out_dir=tmp_path))
    monkeypatch.setattr(train_resume, "same_path", lambda one, other: False)  # the spelling
    again = drive(train(tiny_config(epochs=2), samples, out_dir=tmp_path,
                        resume_from=first.last_checkpoint))
    assert load_checkpoint(again.best_checkpoint).metadata["metrics"]["val_iou"] == 0.9


def test_start_best_reads_the_runs_best_before_it_removes_anything(tmp_path, monkeypatch):
    # were the resumed run's best the very file the new best goes to, by a path neither
    # its spelling nor the disk tells (a share mounted twice that samefile cannot see
    # through), removing first would lose it: it is read first, then written back
    # (review h_rev28, 8)
    from napari_nuclei_unet.core import train_resume

    first = drive(train(tiny_config(epochs=1), make_samples(), out_dir=tmp_path))
    best_path = tmp_path / "best.safetensors"
    iou = load_checkpoint(best_path).metadata["metrics"]["val_iou"]
    monkeypatch.setattr(train_resume, "_same_file", lambda one, other: False)
    train_resume.start_best(first.last_checkpoint, best_path)
    assert load_checkpoint(best_path).metadata["metrics"]["val_iou"] == iou
    # a damaged best of the resumed run: none carried, the folder's removed
    best_path.write_bytes(b"not a checkpoint")
    train_resume.start_best(first.last_checkpoint, best_path)
    assert not best_path.exists()


def test_early_stopping_counts_validations_and_a_resume_goes_on(tmp_path, monkeypatch):
    # resuming a run that stopped early trained one unvalidated epoch and stopped again
    # (M5); with val_every 3, an epoch without validation never stops a run
    monkeypatch.setattr(training, "validate", lambda *a, **k: (1.0, 0.5))
    config = tiny_config(epochs=30, early_stopping_patience=2, val_every=3)
    first = drive(train(config, make_samples(), out_dir=tmp_path))
    assert first.stopped_early and [h.epoch for h in first.history][-1] == 9
    again = drive(train(config, make_samples(), out_dir=tmp_path,
                        resume_from=first.last_checkpoint))
    assert again.stopped_early and again.history[-1].epoch == 15  # two more validations
    assert again.history[-1].val_iou is not None


def test_a_stopped_resume_still_keeps_the_best(tmp_path):
    samples = make_samples()
    first = drive(train(tiny_config(epochs=1), samples, out_dir=tmp_path / "a"))
    stopped = drive(train(tiny_config(epochs=3), samples, out_dir=tmp_path / "b",
                          resume_from=first.last_checkpoint, should_stop=_stop_after(1)))
    assert stopped.cancelled
    best = load_checkpoint(stopped.best_checkpoint)
    assert best.metadata["metrics"]["val_iou"] is not None  # the run's best, not the last
