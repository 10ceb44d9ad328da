from dataclasses import dataclass

import numpy as np
import pytest
import torch

import napari_nuclei_unet.core.training as training
from napari_nuclei_unet.core.checkpoint import load_checkpoint, train_state_path
from napari_nuclei_unet.core.config import ConfigError, TrainConfig
from napari_nuclei_unet.core.progress import drive
from napari_nuclei_unet.core.training import (
    EpochEnd,
    NonFiniteLossError,
    TrainingError,
    TrainResult,
    TrainStep,
    learning_rate_factor,
    sampling_probabilities,
    split_train_val,
    train,
)


@dataclass
class FakeSample:
    id: str
    image: np.ndarray
    labels: np.ndarray
    modality: str
    has_labels: bool = True


def make_samples(n=6, seed=0):
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        h, w = 24 + 3 * (i % 6), 40 - 2 * (i % 6)  # odd sizes, some smaller than the crop
        yy, xx = np.mgrid[:h, :w]
        labels = np.zeros((h, w), np.int32)
        for k in range(3):
            cy, cx = rng.integers(0, h), rng.integers(0, w)
            labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 16] = k + 1
        grey = (labels > 0) * 180 + rng.integers(0, 40, (h, w))
        image = np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)
        modality = ("fluorescence", "histology", "brightfield")[i % 3]
        if modality != "fluorescence":
            image = 255 - image
        samples.append(FakeSample(f"s{i}", image, labels, modality))
    return samples


def tiny_config(**changes):
    base = dict(base_width=4, depth=2, crop_size=32, batch_size=2, epochs=2, steps_per_epoch=2,
                val_fraction=0.34, device="cpu", num_threads=1, learning_rate=1e-3)
    return TrainConfig(**{**base, **changes})


def test_two_epochs_update_types_and_checkpoints(tmp_path):
    updates = []
    result = drive(train(tiny_config(), make_samples(), out_dir=tmp_path), updates.append)
    assert isinstance(result, TrainResult)
    steps = [u for u in updates if isinstance(u, TrainStep)]
    ends = [u for u in updates if isinstance(u, EpochEnd)]
    assert len(steps) == 4 and len(ends) == 2 and len(updates) == 6
    assert [(s.epoch, s.step) for s in steps] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert all(np.isfinite(s.loss) and s.images_per_s > 0 and s.eta_s >= 0 for s in steps)
    assert ends[0].is_best and ends[0].val_iou is not None and 0 <= ends[0].val_iou <= 1
    assert ends[-1].best_val_iou == max(e.val_iou for e in ends)
    assert result.history == ends and not result.cancelled and not result.stopped_early
    assert set(result.val_ids) == {"s0", "s3", "s1", "s4", "s2", "s5"} & set(result.val_ids)
    assert len(result.val_ids) == 3  # one per modality
    for path in (result.best_checkpoint, result.last_checkpoint):
        loaded = load_checkpoint(path)
        assert loaded.config == tiny_config()
        assert loaded.metadata["training_data"]["n_val"] == 3
    assert train_state_path(result.last_checkpoint).exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_continues_from_the_right_epoch(tmp_path):
    samples = make_samples()
    first = drive(train(tiny_config(epochs=1), samples, out_dir=tmp_path))
    updates = []
    second = drive(
        train(tiny_config(epochs=3), samples, out_dir=tmp_path,
              resume_from=first.last_checkpoint),
        updates.append,
    )
    epochs = sorted({u.epoch for u in updates})
    assert epochs == [2, 3]
    assert [h.epoch for h in second.history] == [1, 2, 3]
    assert load_checkpoint(second.last_checkpoint).metadata["resume"]["global_step"] == 6


def test_a_broken_resume_state_says_to_start_from_its_weights(tmp_path):
    from napari_nuclei_unet.core.training import TrainingError

    samples = make_samples()
    first = drive(train(tiny_config(epochs=1), samples, out_dir=tmp_path))
    state = tmp_path / "last.train.safetensors"
    state.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(TrainingError, match=r"Cannot resume: .*last.train.safetensors is corrupt"
                                            r".*resume state is broken.* initialised from "
                                            r".*last.safetensors instead of resuming"):
        drive(train(tiny_config(epochs=2), samples, out_dir=tmp_path / "again",
                    resume_from=first.last_checkpoint))
    # the weights themselves are fine: a new run starts from them
    drive(train(tiny_config(epochs=1), samples, out_dir=tmp_path / "new",
                init_from=first.last_checkpoint))


def test_resume_is_deterministic(tmp_path):
    samples = make_samples()
    full = drive(train(tiny_config(epochs=2), samples, out_dir=tmp_path / "full"))
    half = drive(train(tiny_config(epochs=2), samples, out_dir=tmp_path / "half",
                       should_stop=_stop_after(2)))
    assert half.cancelled
    resumed = drive(train(tiny_config(epochs=2), samples, out_dir=tmp_path / "half",
                          resume_from=half.last_checkpoint))
    a = load_checkpoint(full.last_checkpoint).model.state_dict()
    b = load_checkpoint(resumed.last_checkpoint).model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


def _stop_after(n_calls):
    calls = {"n": 0}

    def should_stop():
        calls["n"] += 1
        return calls["n"] > n_calls

    return should_stop


def test_cancel_keeps_best_and_saves_last(tmp_path):
    samples = make_samples()
    # 2 steps of epoch 1, validation, then stop at the first step of epoch 2
    result = drive(train(tiny_config(epochs=3), samples, out_dir=tmp_path,
                         should_stop=_stop_after(3)))
    assert result.cancelled and len(result.history) == 1
    best = load_checkpoint(result.best_checkpoint)
    assert best.metadata["metrics"]["epoch"] == 1
    last = load_checkpoint(result.last_checkpoint)
    assert last.metadata["resume"]["epoch_complete"] is False


def test_cancel_before_the_first_step_keeps_no_model_and_after_one_step_does(tmp_path):
    # Ctrl-C before the first step saved the untrained weights as "best", which was then
    # offered and used, and refused the folder to the next run (CLI check h_cli3, M1)
    result = drive(train(tiny_config(), make_samples(), out_dir=tmp_path / "a",
                         should_stop=lambda: True))
    assert result.cancelled and result.history == [] and not result.trained
    assert not result.best_checkpoint.exists() and not result.last_checkpoint.exists()
    result = drive(train(tiny_config(), make_samples(), out_dir=tmp_path / "b",
                         should_stop=_stop_after(1)))
    assert result.cancelled and result.history == [] and result.trained
    load_checkpoint(result.best_checkpoint)
    load_checkpoint(result.last_checkpoint)


def test_nan_loss_raises_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "_train_step", lambda *a, **k: float("nan"))
    with pytest.raises(NonFiniteLossError, match="lower the learning rate") as info:
        drive(train(tiny_config(), make_samples(), out_dir=tmp_path))
    assert isinstance(info.value, TrainingError) and isinstance(info.value, RuntimeError)


def test_early_stopping(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "validate", lambda *a, **k: (1.0, 0.5))
    result = drive(train(tiny_config(epochs=10, early_stopping_patience=2), make_samples(),
                         out_dir=tmp_path))
    assert result.stopped_early and len(result.history) == 3
    assert [h.is_best for h in result.history] == [True, False, False]


def test_explicit_validation_and_unlabelled_samples(tmp_path):
    samples = make_samples()
    samples[0].has_labels = False
    result = drive(train(tiny_config(epochs=1), samples[:4], out_dir=tmp_path,
                         val_samples=samples[4:]))
    assert result.val_ids == ("s4", "s5")
    assert load_checkpoint(result.best_checkpoint).metadata["training_data"]["n_train"] == 3
    with pytest.raises(TrainingError, match="No labelled training samples"):
        drive(train(tiny_config(), samples[:1], out_dir=tmp_path, val_samples=[]))


def test_split_is_stratified_seeded_and_order_free():
    samples = make_samples(30)
    train_a, val_a = split_train_val(samples, 0.2, seed=3)
    train_b, val_b = split_train_val(list(reversed(samples)), 0.2, seed=3)
    assert {s.id for s in val_a} == {s.id for s in val_b}
    assert len(val_a) == 6 and len(train_a) == 24
    assert sorted(s.modality for s in val_a).count("histology") == 2
    _, val_c = split_train_val(samples, 0.2, seed=4)
    assert {s.id for s in val_c} != {s.id for s in val_a}
    assert split_train_val(samples, 0.0, seed=0)[1] == []


def test_learning_rate_schedule():
    cfg = tiny_config(warmup_fraction=0.1, min_lr_fraction=0.0)
    factors = [learning_rate_factor(s, 100, cfg) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    decaying = factors[9:]
    assert factors[-1] < 0.01 and all(a >= b for a, b in zip(decaying, decaying[1:], strict=False))
    const = tiny_config(schedule="constant", warmup_fraction=0.0)
    assert learning_rate_factor(50, 100, const) == 1.0


def test_time_budget_ends_run_with_a_validated_model(tmp_path):
    result = drive(train(tiny_config(epochs=1000, time_budget_s=1.0), make_samples(),
                         out_dir=tmp_path))
    assert 1 <= len(result.history) < 1000 and not result.cancelled
    assert result.history[-1].val_iou is not None
    assert load_checkpoint(result.best_checkpoint).metadata["metrics"]["val_iou"] is not None


def test_out_of_memory_is_reported_with_advice(tmp_path, monkeypatch):
    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    monkeypatch.setattr(training, "_train_step", oom)
    with pytest.raises(TrainingError, match="lower the batch size or the crop size"):
        drive(train(tiny_config(), make_samples(), out_dir=tmp_path))


@pytest.mark.realdata
@pytest.mark.skipif(not __import__("os").environ.get("NUCLEI_UNET_DSB2018"),
                    reason="set NUCLEI_UNET_DSB2018 to a stage1_train folder")
def test_train_on_a_few_real_images(tmp_path):
    import os

    from napari_nuclei_unet.core.dataset import DSBDataset

    dataset = DSBDataset.open(os.environ["NUCLEI_UNET_DSB2018"])
    samples = drive(dataset.iter_load(dataset.ids()[:6]))
    config = tiny_config(crop_size=64, epochs=1, steps_per_epoch=2, val_fraction=0.2)
    result = drive(train(config, samples, out_dir=tmp_path))
    assert result.history[-1].val_iou is not None
    load_checkpoint(result.best_checkpoint)


def test_closing_the_generator_saves_last(tmp_path):
    job = train(tiny_config(epochs=3), make_samples(), out_dir=tmp_path)
    updates = [next(job) for _ in range(3)]  # two steps and the first EpochEnd
    assert isinstance(updates[-1], EpochEnd)
    next(job)  # first step of epoch 2
    job.close()
    resume = load_checkpoint(tmp_path / "last.safetensors").metadata["resume"]
    assert (resume["epoch"], resume["step"], resume["epoch_complete"]) == (2, 1, False)
    load_checkpoint(tmp_path / "best.safetensors")


def test_modality_balance_evens_out_modalities():
    samples = [FakeSample(f"f{i}", None, None, "fluorescence") for i in range(90)]
    samples += [FakeSample(f"b{i}", None, None, "brightfield") for i in range(10)]
    assert sampling_probabilities(samples, 0.0) is None  # uniform: the old draw
    share = {}
    for balance in (0.5, 1.0):
        p = sampling_probabilities(samples, balance)
        assert p.shape == (100,) and np.isclose(p.sum(), 1.0)
        assert np.allclose(p[:90], p[0]) and np.allclose(p[90:], p[90])  # alike within one
        share[balance] = p[90:].sum()
    # brightfield: 10% of the images; 25% of the draws at 0.5 (sqrt 10 vs sqrt 90); half at 1
    assert share[0.5] == pytest.approx(np.sqrt(10) / (np.sqrt(10) + np.sqrt(90)))
    assert share[1.0] == pytest.approx(0.5)


def test_modality_balance_is_used_by_train_and_validated(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="modality_balance"):
        tiny_config(modality_balance=1.5)
    drawn = []
    real_batch = training.CropSampler.batch

    def spy(self, rng, indices):
        drawn.extend(int(i) for i in indices)
        return real_batch(self, rng, indices)

    monkeypatch.setattr(training.CropSampler, "batch", spy)
    samples = make_samples(12)
    for i, sample in enumerate(samples):
        sample.modality = "brightfield" if i < 2 else "fluorescence"  # 2 of 12 images
    shares = {}
    for balance in (0.0, 1.0):
        drawn.clear()
        config = tiny_config(modality_balance=balance, val_fraction=0.0, epochs=1,
                             steps_per_epoch=50, batch_size=8)
        drive(train(config, samples, out_dir=tmp_path / str(balance)))
        assert len(drawn) == 400
        shares[balance] = sum(i < 2 for i in drawn) / len(drawn)
    assert shares[0.0] < 0.25 and 0.4 < shares[1.0] < 0.6  # 1/6 of the crops vs half


def test_compile_is_ignored_off_cuda(tmp_path, monkeypatch):
    def no_compile(*args, **kwargs):
        raise AssertionError("torch.compile must not be called for a CPU run")

    monkeypatch.setattr(torch, "compile", no_compile)
    result = drive(train(tiny_config(compile=True, epochs=1), make_samples(), out_dir=tmp_path))
    assert load_checkpoint(result.best_checkpoint).config.compile


def test_compile_errors_are_told_apart_from_others():
    from torch._dynamo.exc import TorchRuntimeError

    assert training._is_compile_error(TorchRuntimeError("inductor failed"))
    assert not training._is_compile_error(RuntimeError("CUDA error: device-side assert"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_compiled_cuda_training_saves_plain_weights(tmp_path):
    config = tiny_config(device="cuda", compile=True, amp=True, epochs=2, steps_per_epoch=3)
    updates = []
    result = drive(train(config, make_samples(), out_dir=tmp_path), updates.append)
    assert all(np.isfinite(u.loss) for u in updates if isinstance(u, TrainStep))
    loaded = load_checkpoint(result.best_checkpoint)  # no "_orig_mod." keys: loads strictly
    assert loaded.config.compile and loaded.metadata["device"].startswith("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_out_of_memory_is_explained(tmp_path):
    big = [FakeSample("big", np.zeros((2048, 2048, 3), np.uint8),
                      np.zeros((2048, 2048), np.int32), "fluorescence")]
    config = tiny_config(device="cuda", base_width=64, depth=2, crop_size=2048,
                         batch_size=1024, val_fraction=0.0, epochs=1, steps_per_epoch=1)
    with pytest.raises(TrainingError, match="ran out of memory.*lower the batch size"):
        drive(train(config, big, out_dir=tmp_path))


def test_cpu_thread_count_is_put_back(tmp_path):
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    try:
        seen = []
        job = train(tiny_config(num_threads=wanted, epochs=1), make_samples(), out_dir=tmp_path)
        drive(job, lambda u: seen.append(torch.get_num_threads()))
        assert set(seen) == {wanted}  # the run uses its own setting...
        assert torch.get_num_threads() == before  # ...and puts the process's back
        job = train(tiny_config(num_threads=wanted), make_samples(), out_dir=tmp_path / "b")
        next(job)
        job.close()  # a run closed early (napari's worker.quit()) puts it back too
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(before)


def test_out_of_memory_while_making_a_batch_is_explained(tmp_path, monkeypatch):
    def out_of_memory(self, rng, indices):  # as a GPU batch of huge crops fails
        raise RuntimeError("CUDA out of memory. Tried to allocate 64.00 GiB")

    monkeypatch.setattr(training.CropSampler, "batch", out_of_memory)
    with pytest.raises(TrainingError, match="ran out of memory.*lower the batch size"):
        drive(train(tiny_config(), make_samples(), out_dir=tmp_path))
