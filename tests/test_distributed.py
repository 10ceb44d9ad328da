"""Data-parallel training under torchrun: 2 CPU (gloo) ranks against one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_nuclei_unet.core import distributed

SRC = Path(__file__).resolve().parents[1] / "src"
TRAIN_ARGS = ["--steps-per-epoch", "2", "--batch-size", "4", "--crop-size", "32",
              "--base-width", "4", "--depth", "2", "--seed", "3", "--device", "cpu",
              "--no-amp", "--num-threads", "1", "--val-fraction", "0.34", "-q"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from napari_nuclei_unet.core.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("ddp") / "data"
    write_synthetic_dataset(root, n_per_style=2, seed=0, shape=(64, 64))
    return root


def _env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    return env


def _torchrun(args: list[str], env: dict, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", *extra, "-m", "napari_nuclei_unet.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_without_torchrun_everything_is_a_no_op():
    assert not distributed.launched_by_torchrun() and not distributed.is_active()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    x, y = torch.zeros(4, 3, 8, 8), torch.ones(4, 1, 8, 8)
    assert distributed.shard_batch(x, y)[0] is x
    loss = torch.nn.BCEWithLogitsLoss()
    assert distributed.global_batch_loss(loss) is loss
    assert distributed.any_rank(True) and not distributed.any_rank(False)
    assert distributed.from_rank0(lambda: (1, 2)) == (1, 2)
    assert distributed.check_batch_size(5) == 5
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap_model(model, torch.device("cpu")) is model
    with distributed.session("cpu"):
        assert not distributed.is_active()


@pytest.mark.slow
def test_two_ranks_train_like_one_process(dataset, tmp_path, monkeypatch):
    """Same global batch and seed: the 2-rank checkpoint equals the 1-process one.

    BatchNorm uses each rank's own slice on the CPU (PyTorch's SyncBatchNorm needs a GPU),
    so both runs freeze BatchNorm statistics (test-only switch) to compare exactly;
    everything else (sampling, sharding, global-batch Dice, gradient averaging, schedule,
    validation and checkpoints on rank 0) is the real path.
    """
    from napari_nuclei_unet.cli import main
    from napari_nuclei_unet.core.checkpoint import load_checkpoint

    args = ["train", str(dataset), "--epochs", "2", *TRAIN_ARGS]
    monkeypatch.setenv(distributed.FREEZE_BN_ENV, "1")
    assert main([*args, "--out", str(tmp_path / "single")]) == 0
    done = _torchrun([*args, "--out", str(tmp_path / "ddp")],
                     _env(**{distributed.FREEZE_BN_ENV: "1"}))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines() == [str(tmp_path / "ddp" / "best.safetensors")]

    single = _weights(tmp_path / "single" / "last.safetensors")
    ddp = _weights(tmp_path / "ddp" / "last.safetensors")
    assert single.keys() == ddp.keys()
    for name in single:
        np.testing.assert_allclose(ddp[name].numpy(), single[name].numpy(), atol=1e-5,
                                   err_msg=name)
    meta = json.loads((tmp_path / "ddp" / "last.json").read_text())
    assert meta["processes"] == 2
    single_meta = json.loads((tmp_path / "single" / "last.json").read_text())
    assert meta["metrics"]["train_loss"] == pytest.approx(single_meta["metrics"]["train_loss"],
                                                          rel=1e-5)
    loaded = load_checkpoint(tmp_path / "ddp" / "best.safetensors")
    assert loaded.model.architecture()["base_width"] == 4


@pytest.mark.slow
@pytest.mark.parametrize("start", ["scratch", "init"])
def test_killed_rank_is_restarted_and_the_run_resumes(dataset, tmp_path, start):
    # a run started with --init was refused at the restart, as a folder holding a
    # trained model (review h_rev17, F7)
    from napari_nuclei_unet.cli import main

    marker = tmp_path / "killed"
    out = tmp_path / "run"
    init = []
    if start == "init":
        assert main(["train", str(dataset), "--epochs", "1", *TRAIN_ARGS, "--out",
                     str(tmp_path / "first")]) == 0
        init = ["--init", str(tmp_path / "first" / "best.safetensors")]
    done = _torchrun(
        ["train", str(dataset), "--epochs", "3", *TRAIN_ARGS[:-1], *init, "--out", str(out)],
        _env(**{distributed.FAULT_ENV: f"1:3:{marker}"}),  # rank 1 exits at step 3, once
        "--max-restarts", "1",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert marker.exists(), "the test switch did not kill rank 1"
    assert f"resuming from {out / 'last.safetensors'}" in done.stderr  # not from scratch
    meta = json.loads((out / "last.json").read_text())
    assert [h["epoch"] for h in meta["history"]] == [1, 2, 3]
    assert meta["metrics"]["epoch"] == 3
    assert done.stdout.strip().splitlines() == [str(out / "best.safetensors")]


@pytest.mark.slow
def test_under_torchrun_each_note_is_printed_once(dataset, tmp_path):
    out = tmp_path / "run"
    loud = [a for a in TRAIN_ARGS if a != "-q"]
    done = _torchrun(["train", str(dataset), "--epochs", "1", *loud, "--out", str(out)], _env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("Training on 6 samples on 2 processes (cpu each)") == 1
    done = _torchrun(["train", str(dataset), "--epochs", "2", *loud, "--out", str(out),
                      "--resume", str(out / "last.safetensors")], _env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("resuming with epochs=2") == 1, done.stderr
    assert done.stderr.count(f"Resuming {out / 'last.safetensors'}") == 1, done.stderr
    assert done.stderr.count("epoch 2/2") == 1, done.stderr
    # a refusal, the same for every process, is said once too (review h_rev17, L2)
    done = _torchrun(["train", str(dataset), "--epochs", "1", *loud, "--out", str(out)],
                     _env())
    assert done.returncode != 0
    refusals = [line for line in done.stderr.splitlines() if "nuclei-unet: error:" in line]
    assert len(refusals) == 1 and str(out) in refusals[0], done.stderr
    # and a batch that does not split over the processes (CLI check h_cli3, L7)
    done = _torchrun(["train", str(dataset), "--epochs", "1", *loud, "--out",
                      str(tmp_path / "odd"), "--batch-size", "3"], _env())
    refusals = [line for line in done.stderr.splitlines() if "nuclei-unet: error:" in line]
    assert len(refusals) == 1 and "cannot be split evenly" in refusals[0], done.stderr


def _worker(rank: int, store_path: str, results: dict) -> None:
    torch.set_num_threads(1)
    store = torch.distributed.FileStore(store_path, 2)
    torch.distributed.init_process_group("gloo", store=store, rank=rank, world_size=2)
    try:
        x = torch.arange(4.0).view(4, 1, 1, 1)
        xs, ys = distributed.shard_batch(x, x + 10)
        logits = torch.tensor([[1.0], [2.0]]) * (rank + 1)
        logits.requires_grad_(True)
        loss = distributed.global_batch_loss(lambda a, b: (a * b).sum())(logits, logits.detach())
        loss.backward()
        results[rank] = {
            "shard": xs.flatten().tolist(), "targets": ys.flatten().tolist(),
            "any": distributed.any_rank(rank == 1), "none": distributed.any_rank(False),
            "from0": distributed.from_rank0(lambda: f"computed on rank {distributed.rank()}"),
            "loss": float(loss), "grad": logits.grad.flatten().tolist(),
        }
    finally:
        torch.distributed.destroy_process_group()


def test_rank_helpers_with_two_gloo_processes(tmp_path):
    import torch.multiprocessing as mp

    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_worker, args=(str(tmp_path / "store"), results), nprocs=2, join=True)
        results = dict(results)
    assert results[0]["shard"] == [0.0, 1.0] and results[1]["shard"] == [2.0, 3.0]
    assert results[1]["targets"] == [12.0, 13.0]
    assert results[0]["any"] and results[1]["any"] and not results[0]["none"]
    assert results[0]["from0"] == results[1]["from0"] == "computed on rank 0"
    # loss of the global batch [1, 2, 2, 4] on both ranks: 1 + 4 + 4 + 16
    assert results[0]["loss"] == results[1]["loss"] == 25.0
    # d/dlogits of sum(a * b) over both ranks' copies: 2 * b (DDP then averages)
    assert results[0]["grad"] == [2.0, 4.0] and results[1]["grad"] == [4.0, 8.0]


def test_a_torchrun_worker_leaves_without_the_interpreter_shutdown(monkeypatch, capsys):
    """gloo threads can abort a finished worker during shutdown: it exits at once."""
    exits = []

    def fake_exit(code):
        exits.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(distributed.os, "_exit", fake_exit)
    assert distributed.leave_worker(3) == 3  # not under torchrun: nothing happens
    assert exits == []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    print("last line", end="")
    with pytest.raises(SystemExit):
        distributed.leave_worker(0)
    assert exits == [0]
    assert capsys.readouterr().out == "last line"


def test_a_restart_before_the_first_last_checkpoint_is_not_refused(tmp_path, monkeypatch):
    # rank 0 wrote best.safetensors, then the group died before last.safetensors: the
    # restarted group was refused as a folder holding a trained model (h_rev16, L2)
    import argparse

    from napari_nuclei_unet._cli.train import _prepare_torchrun

    out = tmp_path / "run"
    out.mkdir()
    (out / "best.safetensors").write_bytes(b"x")
    args = argparse.Namespace(out=str(out), resume=None, init=None, quiet=True,
                              overwrite=False)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    _prepare_torchrun(args, distributed)
    assert not args.overwrite  # the first attempt: the folder's check applies
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    _prepare_torchrun(args, distributed)
    assert args.overwrite and args.resume is None


def test_a_restart_after_resume_of_another_run_takes_the_further_one(tmp_path, monkeypatch):
    # by file time, a copy that kept its time (cp -p) could win over the run's own last
    # (review h_rev18, L7): the epochs each has done decide
    import argparse
    import os

    from napari_nuclei_unet._cli.train import _prepare_torchrun

    def checkpoint(path, epochs):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
        path.with_suffix(".json").write_text(json.dumps(
            {"config": {}, "history": [{"epoch": k + 1} for k in range(epochs)]}))

    older, out = tmp_path / "older" / "last.safetensors", tmp_path / "run"
    checkpoint(older, 3)
    checkpoint(out / "last.safetensors", 5)
    os.utime(older, (2e9, 2e9))  # newer by its time
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    args = argparse.Namespace(out=str(out), resume=str(older), init=None, quiet=True,
                              overwrite=False)
    _prepare_torchrun(args, distributed)
    assert args.resume == str(out / "last.safetensors")
    checkpoint(out / "last.safetensors", 2)  # the run's own is behind: the one given stays
    args.resume = str(older)
    _prepare_torchrun(args, distributed)
    assert args.resume == str(older)
