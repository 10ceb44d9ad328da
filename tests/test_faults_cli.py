"""Training faults: two writers on one run folder, --resume, out of memory, divergence."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import tifffile

sys.path.insert(0, str(Path(__file__).parent))
import test_faults_corpus as corpus  # noqa: E402
from napari_nuclei_unet.cli import main  # noqa: E402

TINY = ["--base-width", "4", "--depth", "2", "--crop-size", "32", "--batch-size", "2",
        "--steps-per-epoch", "1", "--device", "cpu", "--num-threads", "1", "--seed", "1"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NUCLEI_UNET_CACHE_DIR", str(tmp_path / "cache"))


@contextmanager
def held_in_another_process(hold: str, folder):
    """``core.locking.<hold>(folder)`` held by another process for the ``with`` block."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import time\n"
         f"from napari_nuclei_unet.core.locking import {hold}\n"
         f"with {hold}({str(folder)!r}):\n"
         "    print('held', flush=True)\n"
         "    time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def data(tmp_path):
    return corpus.good_dataset(tmp_path / "data", n=3)


@pytest.mark.parametrize("trained", [False, True])
def test_second_writer_on_a_run_folder_fails_at_once_naming_the_other(data, tmp_path, capsys,
                                                                      trained):
    run = tmp_path / "run"
    if trained:  # the live run has saved a model: it is named, not "continue it with
        # --resume" (README check h_readme1, M6)
        assert main(["-q", "train", str(data), "--out", str(run), "--epochs", "1",
                     *TINY]) == 0
        capsys.readouterr()
    with held_in_another_process("hold_run_folder", run) as holder:
        started = time.monotonic()
        code = main(["train", str(data), "--out", str(run), "--epochs", "1", *TINY])
        err = capsys.readouterr().err
        assert time.monotonic() - started < 30  # no training, no waiting
    assert code == 2, err
    assert str(run) in err and f"process {holder.pid}" in err, err
    assert "another --out" in err and "--resume" not in err
    assert (run / "best.safetensors").exists() == trained
    # once the other run is gone the folder is free again (the OS lock died with it)
    assert main(["-q", "train", str(data), "--out", str(run), "--epochs", "1", *TINY,
                 *(["--overwrite"] if trained else [])]) == 0


def test_a_second_predict_into_one_folder_is_refused_naming_the_first(tmp_path, capsys):
    # two predicts into one --out both succeeded, the later replacing the earlier's
    # results without --overwrite (CLI check h_cli3, H2)
    from napari_nuclei_unet.core.synthetic import make_synthetic_sample

    image, _ = make_synthetic_sample("fluorescence", shape=(48, 48), seed=1)
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "a.tif", image[..., 0])
    out = tmp_path / "out"
    with held_in_another_process("hold_output_folder", out) as holder:
        code = main(["predict", "default", str(tmp_path / "in"), "--out", str(out)])
        err = capsys.readouterr().err
    assert code == 2 and f"process {holder.pid}" in err and "another --out" in err, err
    assert not out.exists()  # nothing written, no folder made
    assert main(["-q", "predict", "default", str(tmp_path / "in"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_labels.tif", "a_measurements.csv"]


def test_two_trainings_in_one_process_on_one_folder(data, tmp_path):
    from _thread_helpers import held_elsewhere
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.locking import RunFolderBusy, hold_run_folder
    from napari_nuclei_unet.core.training import train

    run = tmp_path / "run"
    config = TrainConfig(base_width=4, depth=2, crop_size=32, batch_size=2, epochs=1,
                         steps_per_epoch=1, device="cpu")
    with held_elsewhere(lambda: hold_run_folder(run)), \
            pytest.raises(RunFolderBusy, match="already used by a training run"):
        next(train(config, [], out_dir=run))


def test_resume_continues_with_the_saved_configuration(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["-q", "train", str(data), "--out", str(run), "--epochs", "1", *TINY]) == 0
    capsys.readouterr()
    last = run / "last.safetensors"
    code = main(["train", str(data), "--out", str(run), "--resume", str(last),
                 "--epochs", "2"])
    err = capsys.readouterr().err
    assert code == 0, err
    config = json.loads((run / "last.json").read_text())["config"]
    assert (config["batch_size"], config["crop_size"], config["seed"], config["base_width"],
            config["steps_per_epoch"], config["epochs"]) == (2, 32, 1, 4, 1, 2)
    # the longer cosine schedule raises the rate again: said (review h_rev23, L3)
    assert ("resuming with epochs=2 (the run was started with epochs=1; the learning rate "
            "follows the longer schedule, so it rises again before it decays)") in err
    assert "crops 32, batch 2" in err
    assert "nothing left to train" not in err
    # resuming a run that is already complete says so (it used to train nothing silently)
    code = main(["train", str(data), "--out", str(run), "--resume", str(last)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert (f"the run of {last} already trained all 2 epochs: there is nothing left to "
            "train. To train it further, give --epochs 12") in err


def test_resume_into_another_runs_folder_is_refused_and_a_folder_means_its_last(
        data, tmp_path, capsys):
    # resumed into another run's --out, that run's last was overwritten and its best
    # printed as this run's (review h_rev24, M5); --resume RUN said "sidecar missing" (L4)
    for name in ("a", "b"):
        assert main(["-q", "train", str(data), "--out", str(tmp_path / name), "--epochs", "1",
                     *TINY]) == 0
    before = (tmp_path / "b" / "last.json").read_bytes()
    capsys.readouterr()
    code = main(["train", str(data), "--out", str(tmp_path / "b"), "--resume",
                 str(tmp_path / "a" / "last.safetensors"), "--epochs", "2"])
    assert code == 2 and "b already holds a trained model" in capsys.readouterr().err
    assert (tmp_path / "b" / "last.json").read_bytes() == before
    code = main(["-q", "train", str(data), "--out", str(tmp_path / "a"), "--resume",
                 str(tmp_path / "a"), "--epochs", "2"])  # the run's folder
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "a" / "last.json").read_text())["config"]["epochs"] == 2


def test_resume_refuses_another_network_shape(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["-q", "train", str(data), "--out", str(run), "--epochs", "1", *TINY]) == 0
    capsys.readouterr()
    code = main(["train", str(data), "--out", str(run), "--resume",
                 str(run / "last.safetensors"), "--base-width", "8"])
    err = capsys.readouterr().err
    assert code == 2 and "keeps the network's shape" in err and "--init" in err, err


@pytest.mark.parametrize("error", [
    MemoryError(),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough "
                 "memory: you tried to allocate 68719476736 bytes."),
    RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"),
])
def test_out_of_memory_is_a_plain_message(error, data, tmp_path, capsys, monkeypatch):
    import napari_nuclei_unet.core.training as training

    def boom(*args, **kwargs):
        raise error
        yield  # pragma: no cover

    monkeypatch.setattr(training, "train", boom)
    code = main(["train", str(data), "--out", str(tmp_path / "run"), *TINY])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "ran out of memory" in err and "this is a bug" not in err
    assert training._is_out_of_memory(error)


def test_divergence_names_only_checkpoints_that_exist(data, tmp_path, monkeypatch):
    import napari_nuclei_unet.core.training as training
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.dataset import DSBDataset
    from napari_nuclei_unet.core.progress import drive

    samples = drive(DSBDataset.open(data, use_cache=False).iter_load(use_cache=False))
    monkeypatch.setattr(training, "_train_step", lambda *a, **k: float("nan"))
    config = TrainConfig(base_width=4, depth=2, crop_size=32, batch_size=2, epochs=1,
                         steps_per_epoch=1, device="cpu")
    with pytest.raises(training.NonFiniteLossError) as info:
        drive(training.train(config, samples, out_dir=tmp_path / "run"))
    assert "No checkpoint was saved yet" in str(info.value)
    assert "best.safetensors" not in str(info.value)


@pytest.mark.parametrize("argv, words", [
    # named as typed, not as TrainConfig's fields
    (["--lr", "inf"], "error: --lr must be a finite number"),
    (["--lr", "nan"], "error: --lr must be a finite number"),
    (["--seed", "-1"], "error: --seed must be a whole number from 0"),
    (["--min-lr-fraction", "5"], "error: --min-lr-fraction must be in [0, 1]"),
    (["--weight-decay", "nan"], "error: --weight-decay must be a finite number"),
    (["--augment-scale", "inf"], "error: --augment-scale must be a finite number"),
    (["--time-budget-s", "inf"], "error: --time-budget-s must be a finite number"),
])
def test_non_finite_hyperparameters_refused_up_front(argv, words, data, tmp_path, capsys):
    code = main(["train", str(data), "--out", str(tmp_path / "run"), *TINY, *argv])
    err = capsys.readouterr().err
    assert code == 2 and words in err, err
    assert not (tmp_path / "run").exists()


def _refuse_temporary_files(monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        folder = kwargs.get("dir", ".")
        raise PermissionError(1, "Operation not permitted",
                              f"{folder}/{kwargs.get('prefix', '')}a54bq06s.tmp")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)


def test_an_unwritable_output_names_the_users_file_not_a_temporary_one(tmp_path, capsys,
                                                                      monkeypatch):
    # "error: <folder>/.rgba.png.a54bq06s.png: Operation not permitted" named a file the
    # user never asked for (GUI check h_gui9, LOW 10; the GUI said the same, MEDIUM 13)
    from napari_nuclei_unet.core.atomic import atomic_write_bytes
    from napari_nuclei_unet.core.synthetic import make_synthetic_sample, write_dsb_sample

    image, masks = make_synthetic_sample("fluorescence", shape=(64, 64), seed=1)
    write_dsb_sample(tmp_path / "in", "s1", image, masks)
    _refuse_temporary_files(monkeypatch)
    assert main(["predict", "default", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"Could not write {tmp_path / 'out'}" in err, err  # the mask's own path
    assert "no permission to write in" in err and ".tmp" not in err, err
    with pytest.raises(OSError) as caught:
        atomic_write_bytes(tmp_path / "table.csv", b"x")
    assert str(caught.value).startswith(f"Could not write {tmp_path / 'table.csv'}: no "
                                        "permission to write in")


def test_a_truncated_tiff_given_to_predict_is_said_in_plain_words(tmp_path, capsys):
    # "error: corrupted strip cannot be reshaped from (20429,) to (1, 256, 320, 1)":
    # tifffile's words (GUI check h_gui9, LOW 9)
    import numpy as np
    import tifffile

    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 255, (256, 320), np.uint8))
    path.write_bytes(path.read_bytes()[:20_000])
    assert main(["predict", "default", str(path), "--out", str(tmp_path / "out"),
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert f"{path} is not a readable image" in err and "replace it with a fresh copy" in err


def test_a_lost_peer_under_torchrun_is_not_called_a_bug(data, tmp_path, capsys, monkeypatch):
    # the surviving rank printed gloo's internals and "this is a bug in
    # napari-nuclei-unet" when another rank died (review h_rev17, F8)
    import napari_nuclei_unet.core.training as training

    def peer_gone(*args, **kwargs):
        raise RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection "
                           "closed by peer [127.0.0.1]:42387")
        yield  # pragma: no cover

    monkeypatch.setattr(training, "train", peer_gone)
    out = tmp_path / "run"
    args = ["train", str(data), "--out", str(out), *TINY]
    assert main(args) == 1  # not under torchrun: it may be a bug
    assert "this is a bug" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: a session of its own
    monkeypatch.setenv("RANK", "0")
    assert main(args) == 1 and "this is a bug" in capsys.readouterr().err
    # under torchrun (rank 1 of 2): main() says it in plain words, with the rank (the
    # command itself fails as training does when its peer goes; review h_rev19, L5)
    import napari_nuclei_unet._cli.train as train_cli
    import napari_nuclei_unet.core.distributed as distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(distributed, "launched_by_torchrun", lambda: True)
    failure = RuntimeError("Connection closed by peer [127.0.0.1]:42387")
    monkeypatch.setattr(train_cli, "run", lambda args: (_ for _ in ()).throw(failure))
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "this process (rank 1) stopped: another process of this torchrun group stopped" \
        in err and f"--resume {out / 'last.safetensors'}" in err and "a bug" not in err
    failure = RuntimeError("shape mismatch")  # any other error still may be a bug
    assert main(args) == 1 and "this is a bug" in capsys.readouterr().err


def test_a_dask_worker_killed_under_a_task_is_a_plain_message(tmp_path, capsys, monkeypatch):
    # a worker killed for memory ended in "unexpected KilledWorker ... this is a bug", its
    # memory warnings silenced (review h_rev20, M5)
    import numpy as np
    import tifffile
    from distributed import KilledWorker

    import napari_nuclei_unet._cli.predict_own as predict_own

    def killed(*args, **kwargs):
        from types import SimpleNamespace

        raise KilledWorker("segment-block-3", SimpleNamespace(address="tcp://10.0.0.7:4242"), 3)

    monkeypatch.setattr(predict_own, "_segment", killed)
    tifffile.imwrite(tmp_path / "cells.tif", np.zeros((64, 64), np.uint16))
    code = main(["predict", "default", str(tmp_path / "cells.tif"), "--out",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "a dask worker died while segmenting (" in err and "ran out of memory" in err
    assert "tcp://10.0.0.7:4242" in err
    assert "this is a bug" not in err


def test_a_broken_tiff_or_a_text_file_given_to_predict_is_said_once_in_plain_words(
        tmp_path, capsys):
    # "(list index out of range)"; a notes.txt was told to be replaced by "a fresh copy",
    # twice, and an empty --out was left behind (CLI check h_cli1, L3)
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00garbage" * 10)
    assert main(["predict", "default", str(broken), "--out", str(tmp_path / "o1")]) == 2
    err = capsys.readouterr().err
    assert f"{broken} is not a readable TIFF file (its structure is damaged)" in err, err
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert main(["predict", "default", str(notes), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert err.count("is not an image file") == 1 and "fresh copy" not in err, err
    assert f"{notes} is not an image file (.txt is not an image format this plugin reads)" \
        in err
    assert not (tmp_path / "o2").exists()


def test_a_mistyped_model_name_and_no_workers_are_said_plainly(tmp_path, capsys):
    # "Checkpoint file defualt.safetensors does not exist" named a file never typed, and
    # --workers 0 ran in this process without a word (CLI check h_cli1, L5, L11)
    import numpy as np
    import tifffile

    tifffile.imwrite(tmp_path / "cells.tif", np.zeros((32, 32), np.uint16))
    assert main(["predict", "defualt", str(tmp_path / "cells.tif"), "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "There is no model 'defualt': give 'default' (the shipped model)" in err, err
    assert main(["predict", "default", str(tmp_path / "cells.tif"), "--out",
                 str(tmp_path / "out"), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "--workers: 0 worker processes: give 1 or more" in err, err


def test_a_missing_package_and_a_dataset_with_nothing_to_score_are_plain_errors(
        data, tmp_path, capsys):
    # "Checkpoint file nosuch.zip.safetensors does not exist" (CLI check h_cli2, M6)
    image = next(data.glob("*/images/*.png"))
    for given in ("nosuch.zip", str(tmp_path / "pkg" / "rdf.yaml")):
        assert main(["predict", given, str(image), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert f"{given} does not exist: give the path of a bioimage.io package" in err
        assert ".safetensors does not exist" not in err
    # evaluate printed an empty table and exited 0 when no sample could be read with its
    # masks (M3); info and finetune stop
    for mask in data.glob("*/masks/*.png"):  # cut short, as by a failed copy
        mask.write_bytes(mask.read_bytes()[:60])
    assert main(["evaluate", "default", str(data), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "No image of" in err and "could be scored" in err


def test_quiet_does_not_point_at_notes_it_did_not_print(tmp_path, capsys):
    # "-q": no notes, yet "skipped 1 image that could not be read (see the notes above)"
    # (CLI check h_cli2, M5)
    import numpy as np
    import tifffile

    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(folder / "good.tif", np.random.default_rng(0).integers(
        0, 255, (64, 80), np.uint8))
    (folder / "cut.tif").write_bytes(b"II*\x00")
    for quiet, words in ((["-q"], "run without -q to see why"), ([], "see the notes above")):
        assert main(["predict", "default", str(folder), "--out", str(tmp_path / "out"),
                     "--overwrite", *quiet]) == 0
        captured = capsys.readouterr()
        assert f"skipped 1 image that could not be read ({words})" in captured.out
        assert bool(captured.err.strip()) != bool(quiet), captured.err


def test_a_model_given_where_the_images_go_is_said_to_come_first(data, tmp_path, capsys):
    # "default does not exist: give an image file ..." (CLI check h_cli2)
    image = next(data.glob("*/images/*.png"))
    assert main(["predict", str(image), "default", "--out", str(tmp_path / "o")]) == 2
    assert "default is a model: the model comes first, then the images" in \
        capsys.readouterr().err


def test_a_full_disk_is_said_in_plain_words_even_when_no_file_is_named():
    # a big image's blocks written to a full disk: "[Errno 28] No space left on device"
    # (CLI check h_cli3, M3)
    import errno

    from napari_nuclei_unet._cli.failures import one_line

    text = one_line(OSError(errno.ENOSPC, "No space left on device"))
    assert text.startswith("the disk is full (No space left on device). Free some space")
    text = one_line(OSError(errno.ENOSPC, "No space left on device", "/big/out/x.zarr"))
    assert text.startswith("the disk holding /big/out/x.zarr is full")


def test_a_permission_refused_is_said_with_what_to_do():
    # "nuclei-unet: error: /x/project/.nuclei-unet-round.lock: Permission denied"
    # (CLI check h_cli2)
    from napari_nuclei_unet._cli.failures import one_line

    text = one_line(PermissionError(13, "Permission denied", "/ro/out"))
    assert text == ("no permission for /ro/out (Permission denied): give files you may read, "
                    "and an output folder you can write to.")
