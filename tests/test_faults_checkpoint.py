"""Checkpoint saves under injected crashes, full disks and diverged weights.

A crash is simulated by ending a forked child with ``os._exit`` just before its k-th
file operation (every temp file creation, write, fsync, rename and delete of a save
goes through :data:`napari_nuclei_unet.core.atomic.fault_hook`), for every k. The
parent then loads the checkpoint and its resume state: each must be the complete old
set or the complete new set, never a mix and never unloadable.
"""

from __future__ import annotations

import errno
import json
import os

import pytest
import torch

from napari_nuclei_unet.core import atomic
from napari_nuclei_unet.core import checkpoint as ckpt
from napari_nuclei_unet.core import checkpoint_commit as commit
from napari_nuclei_unet.core.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_train_state,
    recover_checkpoint,
    save_checkpoint,
)
from napari_nuclei_unet.core.config import TrainConfig
from napari_nuclei_unet.core.model import UNet

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _model(seed: int) -> UNet:
    torch.manual_seed(seed)
    return UNet(base_width=4, depth=2)


def _config() -> TrainConfig:
    return TrainConfig(base_width=4, depth=2, crop_size=32)


def _state(value: float):
    return {"moment": torch.full((3,), value)}, {"epoch": int(value), "note": "resume"}


def _save(path, seed: int, *, resume: bool = True):
    state = _state(float(seed)) if resume else None
    return save_checkpoint(path, _model(seed), _config(), {"metrics": {"val_iou": seed / 10}},
                           train_state=state)


def _crash_at(k: int, job) -> int:
    """Run ``job`` in a forked child that dies before its k-th file operation.

    Returns the number of operations the child passed (k when it crashed, fewer when
    the job finished first).
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        count = 0

        def hook(op, path):
            nonlocal count
            if count == k:
                os.write(write, str(count).encode())
                os._exit(17)
            count += 1

        atomic.fault_hook = hook
        try:
            job()
        except BaseException:
            os._exit(3)
        os.write(write, str(count).encode())
        os._exit(0)
    os.close(write)
    done = int(os.read(read, 32) or b"-1")
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) in (0, 17), f"the save failed in the child: {status}"
    return done if os.WEXITSTATUS(status) == 17 else -1


def _which(path) -> int:
    """Which save (seed) the loadable set comes from; fails if it is not complete."""
    loaded = load_checkpoint(path)
    seed = round(loaded.metadata["metrics"]["val_iou"] * 10)
    reference = _model(seed).state_dict()
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, reference[key]), f"weights of save {seed} are mixed up"
    return seed


@pytest.mark.parametrize("resume", [True, False], ids=["last-with-resume", "best"])
def test_crash_between_any_two_file_operations_keeps_a_whole_set(tmp_path, resume):
    torch.set_num_threads(1)
    k, seen = 0, set()
    while True:
        folder = tmp_path / f"k{k}"
        path = _save(folder / "last", 1, resume=True)
        passed = _crash_at(k, lambda path=path: _save(path, 2, resume=resume))
        seed = _which(path)
        seen.add(seed)
        if resume or seed == 1:
            weights, state, meta = load_train_state(path)
            assert float(state["moment"][0]) == seed and meta["resume"]["epoch"] == seed
        else:
            with pytest.raises(CheckpointError, match="no resume state"):
                load_train_state(path)
        # after a load, nothing is left half-done: no commit record, no temporary file
        leftovers = [p.name for p in folder.iterdir()
                     if p.name.endswith(".tmp") or p.name.endswith(".commit.json")]
        if seed == 2 or passed == -1:
            assert not leftovers, leftovers
        # and the next save works and cleans every leftover
        _save(path, 3, resume=True)
        assert _which(path) == 3
        assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
        if passed == -1:  # the save finished before reaching operation k: all covered
            break
        k += 1
    assert seen == {1, 2}
    assert k >= 10  # temp files, fsyncs, the commit record, three renames, deletes


def test_crash_before_the_commit_record_leaves_temps_that_the_next_save_removes(tmp_path):
    path = _save(tmp_path / "best", 1)
    _crash_at(4, lambda: _save(path, 2))  # after the first temp file is complete
    temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert temps and _which(path) == 1
    recover_checkpoint(path)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_committed_save_is_read_from_temps_when_the_folder_is_read_only(tmp_path, monkeypatch):
    path = _save(tmp_path / "best", 1)
    n_ops = 0

    def count(op, p):
        nonlocal n_ops
        n_ops += 1

    monkeypatch.setattr(atomic, "fault_hook", count)
    _save(tmp_path / "probe", 5)
    monkeypatch.setattr(atomic, "fault_hook", None)
    # crash right after the commit record is in place (before the first rename)
    record_ops = [k for k in range(n_ops)
                  if _crash_at(k, lambda: _save(path, 2)) >= 0 and
                  ckpt.commit_record_path(path).exists()]
    assert record_ops, "no crash point left a commit record"

    def no_recovery(*args, **kwargs):
        raise PermissionError(errno.EACCES, "read-only")

    monkeypatch.setattr(commit, "recover_checkpoint", no_recovery)
    assert _which(path) == 2  # read through the commit record, nothing moved
    assert ckpt.commit_record_path(path).exists()


def test_full_disk_keeps_the_old_set_and_says_so(tmp_path, monkeypatch):
    path = _save(tmp_path / "last", 1)

    def full(op, p):
        if op == "write" and "json" not in p.name:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "fault_hook", full)
    with pytest.raises(CheckpointError, match="is full") as info:
        _save(path, 2)
    assert "kept" in str(info.value)
    monkeypatch.setattr(atomic, "fault_hook", None)
    assert _which(path) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_exception_at_any_operation_keeps_a_loadable_set(tmp_path, monkeypatch):
    path = _save(tmp_path / "last", 1)
    k = 0
    while True:
        count = 0

        def fail(op, p, k=k):
            nonlocal count
            if count == k:
                raise OSError(errno.EIO, "injected")
            count += 1

        monkeypatch.setattr(atomic, "fault_hook", fail)
        try:
            _save(path, 2 + k)
            finished = True
        except CheckpointError:
            finished = False
        monkeypatch.setattr(atomic, "fault_hook", None)
        seed = _which(path)
        load_train_state(path)
        if finished:
            break
        assert seed in (1, 2 + k) or seed >= 2
        k += 1
    assert k >= 5


def test_diverged_weights_are_not_saved_and_the_old_set_stays(tmp_path):
    path = _save(tmp_path / "best", 1)
    model = _model(2)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        save_checkpoint(path, model, _config())
    assert _which(path) == 1


def test_checkpoints_written_before_commit_records_still_load(tmp_path):
    # the old format: the three files, no commit record, no lock file
    path = _save(tmp_path / "best", 4)
    for extra in tmp_path.glob(".*"):
        extra.unlink()
    assert _which(path) == 4
    assert load_checkpoint("default").model is not None
    assert json.loads(path.with_suffix(".json").read_text())["format_version"] == 1
