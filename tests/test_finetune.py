"""core.finetune: the corrections store, model versions and fine-tuning rounds."""

import json
import os
import shutil

import numpy as np
import pytest

from napari_nuclei_unet.core.atomic import FILE_MODE
from napari_nuclei_unet.core.checkpoint import default_model_path
from napari_nuclei_unet.core.dataset import DSBDataset, Sample
from napari_nuclei_unet.core.finetune import (
    CorrectionStore,
    FinetuneError,
    ModelVersions,
    finetune,
    mix_samples,
    safe_sample_id,
)
from napari_nuclei_unet.core.finetune import rounds as ft_rounds
from napari_nuclei_unet.core.finetune import store as ft_store
from napari_nuclei_unet.core.progress import drive
from napari_nuclei_unet.core.synthetic import make_synthetic_sample, write_dsb_sample


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NUCLEI_UNET_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


# One torch thread: on a shared CI machine two threads fighting for two busy cores are
# several times slower than one.
FAST = {"num_threads": 1, "device": "cpu"}


def synthetic(style, seed, shape=(64, 64)):
    image, masks = make_synthetic_sample(style, shape=shape, seed=seed)
    labels = np.zeros(shape, np.int32)
    for i, mask in enumerate(masks, start=1):
        labels[mask] = i
    return Sample(f"{style}-{seed}", image, labels, style)


def same_partition(a, b):
    """Same nuclei, whatever their numbers."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = {(x, y) for x, y in zip(a.ravel(), b.ravel(), strict=True) if x}
    return len(pairs) == len({x for x, _ in pairs}) == len({y for _, y in pairs})


# -- corrections store ------------------------------------------------------------------

def test_add_then_reopen_lists_and_loads_corrections(tmp_path):
    a, b = synthetic("histology", 1), synthetic("brightfield", 2)
    labels_with_gaps = np.where(a.labels > 0, a.labels * 10 + 3, 0)
    store = CorrectionStore(tmp_path / "project")
    entry = store.add("cells-a", a.image, labels_with_gaps, source="label", note="fixed merges")
    store.add("cells-b", b.image, b.labels, source="prediction")
    assert entry.n_nuclei == int(a.labels.max())
    assert (entry.height, entry.width) == (64, 64)

    reopened = CorrectionStore(tmp_path / "project")
    listed = {c.id: c for c in reopened.list()}
    assert sorted(listed) == ["cells-a", "cells-b"]
    assert listed["cells-a"].source == "label" and listed["cells-a"].note == "fixed merges"
    assert listed["cells-b"].source == "prediction"
    assert listed["cells-a"].created and listed["cells-a"].updated
    samples = {s.id: s for s in reopened.load_samples()}
    assert np.array_equal(samples["cells-a"].image, a.image)
    assert same_partition(samples["cells-a"].labels, labels_with_gaps)
    assert same_partition(samples["cells-b"].labels, b.labels)
    index = json.loads((tmp_path / "project" / "project.json").read_text())
    assert set(index["corrections"]) == {"cells-a", "cells-b"}


def test_labels_numbered_past_int64_are_renumbered_not_called_negative(tmp_path):
    # uint64 ids above 2**63 (hashed by another tool) were refused as "negative values"
    # (review h_rev22, L3)
    image = np.zeros((32, 32), np.uint8)
    image[4:10, 4:10] = image[20:26, 20:26] = 200
    labels = np.zeros((32, 32), np.uint64)
    labels[4:10, 4:10] = 2**63 + 5
    labels[20:26, 20:26] = 7
    store = CorrectionStore(tmp_path)
    assert store.add("x", image, labels).n_nuclei == 2
    back = store.load_labels("x")
    assert sorted(np.unique(back).tolist()) == [0, 1, 2]
    assert back[5, 5] == 2 and back[21, 21] == 1 and back[0, 0] == 0
    full = np.full((32, 32), 2**64 - 1, np.uint64)  # no background at all
    full[:16] = 2**63 + 1
    assert store.add("y", image, full).n_nuclei == 2


def test_corrections_folder_is_a_dsb_dataset(tmp_path):
    a, b = synthetic("fluorescence", 3), synthetic("histology", 4)
    store = CorrectionStore(tmp_path)
    store.add("a", a.image, a.labels)
    store.add("b", b.image, b.labels)
    dataset = DSBDataset.open(tmp_path / "corrections")
    assert dataset.ids() == ["a", "b"]
    assert dataset.info("a").n_nuclei == int(a.labels.max())
    assert same_partition(dataset.load("b").labels, b.labels)


def test_replacing_keeps_creation_time_and_no_leftovers(tmp_path):
    a = synthetic("fluorescence", 5)
    store = CorrectionStore(tmp_path)
    first = store.add("a", a.image, a.labels)
    fewer = np.where(a.labels == 1, 1, 0)
    second = store.add("a", a.image, fewer, note="only one")
    assert second.created == first.created
    assert second.n_nuclei == 1
    assert len(os.listdir(tmp_path / "corrections" / "a" / "masks")) == 1
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".staging-")]
    assert leftovers == []
    assert not any((tmp_path / ".backup").iterdir())


def test_crash_while_writing_masks_keeps_old_correction_and_index(tmp_path, monkeypatch):
    a = synthetic("fluorescence", 6)
    store = CorrectionStore(tmp_path)
    store.add("a", a.image, a.labels)
    index_before = (tmp_path / "project.json").read_bytes()

    real_write = ft_store._write_png
    calls = []

    def failing_write(path, array):
        calls.append(path)
        if len(calls) == 2:  # the image is written, the first mask fails
            raise OSError(28, "No space left on device")
        real_write(path, array)

    monkeypatch.setattr(ft_store, "_write_png", failing_write)
    with pytest.raises(OSError, match="No space"):
        store.add("a", a.image, np.roll(a.labels, 7, axis=1))
    monkeypatch.undo()

    assert (tmp_path / "project.json").read_bytes() == index_before
    reopened = CorrectionStore(tmp_path)
    assert reopened.ids() == ["a"]
    assert same_partition(reopened.load_samples()[0].labels, a.labels)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".staging-")]


def test_crash_while_writing_index_restores_old_correction(tmp_path, monkeypatch):
    a = synthetic("fluorescence", 7)
    store = CorrectionStore(tmp_path)
    store.add("a", a.image, a.labels)
    index_before = (tmp_path / "project.json").read_bytes()

    def failing_index(path, data):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(ft_store, "_write_json_atomic", failing_index)
    with pytest.raises(OSError):
        store.add("a", a.image, np.zeros_like(a.labels))
    monkeypatch.undo()
    assert (tmp_path / "project.json").read_bytes() == index_before
    assert same_partition(CorrectionStore(tmp_path).load_samples()[0].labels, a.labels)


def test_reopening_after_a_hard_crash_restores_the_backup(tmp_path):
    a = synthetic("histology", 8)
    CorrectionStore(tmp_path).add("a", a.image, a.labels)
    # As if the process was killed after moving the old correction aside, while the new
    # one was still in its staging folder.
    (tmp_path / ".backup").mkdir(exist_ok=True)
    os.rename(tmp_path / "corrections" / "a", tmp_path / ".backup" / "a")
    (tmp_path / ".staging-dead" / "a" / "images").mkdir(parents=True)
    store = CorrectionStore(tmp_path)
    assert store.ids() == ["a"]
    assert same_partition(store.load_samples()[0].labels, a.labels)
    assert not (tmp_path / ".staging-dead").exists()


@pytest.mark.parametrize("moment", ["writing masks", "old version moved aside"])
def test_opening_a_store_during_a_save_leaves_that_save_alone(tmp_path, monkeypatch, moment):
    # The Retrain dock saves in a worker while finetune() (or another window) opens a
    # store of the same project: that must not take the running save for a crashed one.
    a = synthetic("fluorescence", 12)
    store = CorrectionStore(tmp_path)
    store.add("a", a.image, a.labels, note="old")
    opened = []

    def open_second_store():
        if not opened:
            opened.append(CorrectionStore(tmp_path))

    real_write, real_rename = ft_store._write_png, os.rename

    def write_then_open(path, array):
        real_write(path, array)
        if moment == "writing masks" and path.parent.name == "masks":
            open_second_store()

    def rename_then_open(src, dst):
        real_rename(src, dst)
        if moment == "old version moved aside" and os.path.basename(
                os.path.dirname(dst)) == ".backup":
            open_second_store()

    monkeypatch.setattr(ft_store, "_write_png", write_then_open)
    monkeypatch.setattr(os, "rename", rename_then_open)
    new_labels = np.where(a.labels == 1, 1, 0)
    store.add("a", a.image, new_labels, note="new")
    monkeypatch.undo()

    assert opened, "the second store was never opened"
    reopened = CorrectionStore(tmp_path)
    assert [(c.id, c.note, c.n_nuclei) for c in reopened.list()] == [("a", "new", 1)]
    assert same_partition(reopened.load_samples()[0].labels, new_labels)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".staging-")]


def test_two_stores_of_one_project_keep_each_others_entries(tmp_path):
    a, b = synthetic("fluorescence", 13), synthetic("histology", 14)
    first, second = CorrectionStore(tmp_path), CorrectionStore(tmp_path)
    first.add("a", a.image, a.labels, source="prediction", note="from first")
    second.add("b", b.image, b.labels)
    listed = {c.id: c for c in CorrectionStore(tmp_path).list()}
    assert (listed["a"].source, listed["a"].note) == ("prediction", "from first")
    second.remove("b")
    assert [c.id for c in first.list()] == ["a"] and "a" in json.loads(
        (tmp_path / "project.json").read_text())["corrections"]


def test_a_store_lists_what_another_store_replaced(tmp_path):
    """The Retrain dock keeps one store open; the Segment dock (or a nuclei-unet command)
    replaced a correction through another: the dock listed the old nuclei count and time."""
    a = synthetic("fluorescence", 13)
    dock, other = CorrectionStore(tmp_path), CorrectionStore(tmp_path)
    other.add("a", a.image, a.labels, note="first")
    assert [(c.id, c.note) for c in dock.list()] == [("a", "first")]
    fewer = np.where(a.labels == a.labels.max(), 0, a.labels)  # one nucleus less
    other.add("a", a.image, fewer, note="second")
    (entry,) = dock.list()
    assert entry.note == "second" and entry.n_nuclei == int(np.unique(fewer).size - 1)
    assert dock.get("a").note == "second"


def test_a_lock_held_elsewhere_waits_and_a_killed_holder_never_blocks(tmp_path, monkeypatch):
    import subprocess
    import sys

    a = synthetic("fluorescence", 15)
    CorrectionStore(tmp_path).add("a", a.image, a.labels)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from napari_nuclei_unet.core.locking import exclusive_lock\n"
         "with exclusive_lock(sys.argv[1]):\n"
         "    print('held', flush=True)\n"
         "    time.sleep(120)\n",
         str(tmp_path / ".lock")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        # Another process is saving: its staging folder is left alone...
        (tmp_path / ".staging-live" / "a" / "images").mkdir(parents=True)
        store = CorrectionStore(tmp_path)
        assert (tmp_path / ".staging-live").exists()
        # ...and a save waits for it, then gives up with a plain message.
        monkeypatch.setattr(ft_store, "LOCK_TIMEOUT_S", 0.3)
        with pytest.raises(FinetuneError, match="Another program"):
            store.add("b", a.image, a.labels)
    finally:
        holder.kill()  # as if it crashed: the OS drops its lock, the lock file stays
        holder.wait()
        holder.stdout.close()
    assert (tmp_path / ".lock").exists()
    store.add("b", a.image, a.labels)
    assert store.ids() == ["a", "b"]
    assert not (tmp_path / ".staging-live").exists()  # repaired once the lock was free


def test_loaded_samples_are_writable(tmp_path):
    a = synthetic("histology", 16)
    store = CorrectionStore(tmp_path)
    store.add("a", a.image, a.labels)
    sample = store.load_samples()[0]
    assert sample.image.flags.writeable and sample.labels.flags.writeable


def test_a_crashed_save_that_cannot_be_repaired_is_reported(tmp_path, monkeypatch):
    a = synthetic("histology", 17)
    CorrectionStore(tmp_path).add("a", a.image, a.labels)
    (tmp_path / ".backup").mkdir(exist_ok=True)
    os.rename(tmp_path / "corrections" / "a", tmp_path / ".backup" / "a")

    def no_permission(src, dst):
        raise PermissionError(13, "Permission denied", str(src))

    monkeypatch.setattr(os, "rename", no_permission)
    with pytest.raises(PermissionError):
        CorrectionStore(tmp_path)
    monkeypatch.undo()
    assert CorrectionStore(tmp_path).ids() == ["a"]


def test_folder_without_index_entry_is_listed(tmp_path):
    a = synthetic("fluorescence", 9)
    masks = [a.labels == i for i in range(1, a.labels.max() + 1)]
    write_dsb_sample(tmp_path / "corrections", "copied-in", a.image, masks)
    listed = CorrectionStore(tmp_path).list()
    assert [(c.id, c.source, c.n_nuclei) for c in listed] == [
        ("copied-in", "unknown", len(masks))
    ]


def test_a_correction_kept_aside_stays_aside_through_saves_and_crashes(tmp_path):
    a, b = synthetic("fluorescence", 11), synthetic("histology", 12)
    store = CorrectionStore(tmp_path)
    store.add("a", a.image, a.labels)
    store.add("b", b.image, b.labels)
    assert not store.get("a").aside
    assert store.set_aside("a").aside
    assert {c.id: c.aside for c in CorrectionStore(tmp_path).list()} == {"a": True, "b": False}
    store.add("a", a.image, a.labels, note="corrected again")  # stays aside
    assert CorrectionStore(tmp_path).get("a").aside
    # the folder's own entry wins over an index a crash left behind
    index = tmp_path / "project.json"
    data = json.loads(index.read_text())
    data["corrections"]["a"].pop("aside")
    index.write_text(json.dumps(data))
    assert CorrectionStore(tmp_path).set_aside("b").aside
    assert {c.id: c.aside for c in CorrectionStore(tmp_path).list()} == {"a": True, "b": True}
    assert not store.set_aside("a", False).aside
    assert "aside" not in json.loads(index.read_text())["corrections"]["a"]
    with pytest.raises(KeyError):
        store.set_aside("nope")


def test_remove_keeps_the_files(tmp_path):
    a = synthetic("fluorescence", 10)
    store = CorrectionStore(tmp_path)
    store.add("a", a.image, a.labels)
    kept = store.remove("a")
    assert store.ids() == [] and CorrectionStore(tmp_path).ids() == []
    assert (kept / "images" / "a.png").exists()
    with pytest.raises(KeyError):
        store.remove("a")


def test_bad_corrections_are_refused_with_a_reason(tmp_path):
    a = synthetic("fluorescence", 11)
    store = CorrectionStore(tmp_path)
    with pytest.raises(FinetuneError, match="folder name"):
        store.add("../escape", a.image, a.labels)
    with pytest.raises(FinetuneError, match="must match"):
        store.add("a", a.image, a.labels[:32])
    with pytest.raises(FinetuneError, match="negative"):
        store.add("a", a.image, -a.labels)
    with pytest.raises(FinetuneError, match="source"):
        store.add("a", a.image, a.labels, source="guess")
    assert store.ids() == []
    assert safe_sample_id("image [1].tif").startswith("image_1_.tif-")


# -- issue 13: ids never collide, crashes never leave a stale index, plain file modes ----

def test_safe_sample_id_is_injective_and_keeps_valid_ids():
    names = ["cells [1]", "cells_1_", "cells (1)", "cells_1", "", " ", "..", "a" * 200,
             "a" * 199 + "b", "x-0123456789", "x", "ünïcode", "unicode", "image"]
    ids = [safe_sample_id(n) for n in names]
    assert len(set(ids)) == len(names), ids
    for name, sample_id in zip(names, ids, strict=True):
        assert ft_store._check_id(sample_id) == sample_id
        assert safe_sample_id(name) == sample_id  # stable
    assert safe_sample_id("cells_1_") == "cells_1_"  # valid ids stay as they are
    assert safe_sample_id("0a7d30b2523-59a10fd29") == "0a7d30b2523-59a10fd29"


def test_a_correction_saved_for_one_name_is_not_returned_for_a_look_alike(tmp_path):
    a, b = synthetic("histology", 1), synthetic("fluorescence", 2)
    store = CorrectionStore(tmp_path / "project")
    store.add(safe_sample_id("cells [1]"), a.image, a.labels)
    assert safe_sample_id("cells_1_") not in store
    store.add(safe_sample_id("cells_1_"), b.image, b.labels)
    first, second = store.load_samples([safe_sample_id("cells [1]"), safe_sample_id("cells_1_")])
    assert np.array_equal(first.image, a.image) and np.array_equal(second.image, b.image)


def test_files_of_a_project_are_readable_by_others_like_any_file(tmp_path):
    a = synthetic("histology", 1)
    store = CorrectionStore(tmp_path / "project")
    store.add("a", a.image, a.labels)
    checkpoint, _, _ = _tiny_checkpoint(tmp_path / "base.safetensors")
    for source in (checkpoint, checkpoint.with_suffix(".json")):
        os.chmod(source, 0o600)  # private source files: the project's copies are still 0644
    base = ModelVersions(store.path).record_base(checkpoint)
    files = [store.index_path, *store.get("a").path.rglob("*.png"),
             store.get("a").path / ft_store.ENTRY_FILE, *base.path.iterdir()]
    assert len(files) >= 6
    modes = {str(f.relative_to(store.path)): oct(f.stat().st_mode & 0o777) for f in files}
    assert set(modes.values()) == {oct(FILE_MODE)}, modes


class _Crash(BaseException):
    """Stops a save at an injected point (after the disk state there was copied)."""


def _file_operation_snapshots(monkeypatch, project, save):
    """Copy ``project`` before every file operation of ``save()`` and once at its end.

    Each copy is what the disk holds if the process dies at that moment (the copy is
    taken before the operation, so no cleanup code of the save has run).
    """
    import shutil
    import tempfile

    snapshots = []
    real = {"rename": os.rename, "replace": os.replace, "rmtree": shutil.rmtree,
            "mkdtemp": tempfile.mkdtemp, "png": ft_store._write_png,
            "json": ft_store._write_json_atomic, "mkdir": ft_store.Path.mkdir}
    real_copytree = shutil.copytree

    def snap():
        target = project.parent / f"crash-{len(snapshots):02d}"
        real_copytree(project, target, symlinks=True)
        snapshots.append(target)

    def wrap(name):
        def call(*args, **kwargs):
            snap()
            return real[name](*args, **kwargs)
        return call

    with monkeypatch.context() as m:
        m.setattr(os, "rename", wrap("rename"))
        m.setattr(os, "replace", wrap("replace"))
        m.setattr(shutil, "rmtree", wrap("rmtree"))
        m.setattr(tempfile, "mkdtemp", wrap("mkdtemp"))
        m.setattr(ft_store, "_write_png", wrap("png"))
        m.setattr(ft_store, "_write_json_atomic", wrap("json"))
        m.setattr(ft_store.Path, "mkdir", wrap("mkdir"))
        save()
    snap()
    return snapshots


@pytest.mark.parametrize("replace", [False, True], ids=["new", "replace"])
def test_a_crash_between_any_two_file_operations_of_a_save_loses_nothing(
        tmp_path, monkeypatch, replace):
    old, new, other = synthetic("histology", 1), synthetic("fluorescence", 2), synthetic(
        "brightfield", 3)
    project = tmp_path / "project"
    store = CorrectionStore(project)
    store.add("keep", other.image, other.labels, note="untouched")
    if replace:
        store.add("x", old.image, old.labels, source="label", note="old")
    new_labels = new.labels[:, :] if not replace else np.where(new.labels > 0, 1, 0)
    snapshots = _file_operation_snapshots(
        monkeypatch, project,
        lambda: CorrectionStore(project).add("x", new.image, new_labels, source="prediction",
                                             note="new"))
    assert len(snapshots) >= 8
    seen = set()
    for snapshot in snapshots:
        reopened = CorrectionStore(snapshot)  # repairs
        where = snapshot.name
        assert not list(snapshot.glob(".staging-*")), where
        assert not (snapshot / ".backup").exists() or not any((snapshot / ".backup").iterdir())
        keep = reopened.get("keep")
        assert keep.note == "untouched", where
        [kept] = reopened.load_samples(["keep"])
        assert same_partition(kept.labels, other.labels), where
        on_disk = json.loads((snapshot / "project.json").read_text())["corrections"]
        assert set(on_disk) == set(reopened.ids()), where  # the index matches the folders
        if "x" not in reopened:
            assert not replace, f"{where}: the old correction was lost"
            seen.add("none")
            continue
        entry = reopened.get("x")
        assert on_disk["x"]["note"] == entry.note, where
        [sample] = reopened.load_samples(["x"])
        if entry.note == "new":
            assert same_partition(sample.labels, new_labels), where
            assert np.array_equal(sample.image, new.image), where
            seen.add("new")
        else:
            assert entry.note == "old" and replace, where
            assert same_partition(sample.labels, old.labels), where
            seen.add("old")
        assert entry.n_nuclei == int(sample.labels.max()), where  # never stale metadata
    assert seen == ({"old", "new"} if replace else {"none", "new"})


def test_a_crash_between_any_two_file_operations_of_a_removal_loses_nothing(
        tmp_path, monkeypatch):
    a = synthetic("histology", 1)
    project = tmp_path / "project"
    CorrectionStore(project).add("x", a.image, a.labels, note="mine")
    snapshots = _file_operation_snapshots(monkeypatch, project,
                                          lambda: CorrectionStore(project).remove("x"))
    assert len(snapshots) >= 3
    outcomes = set()
    for snapshot in snapshots:
        reopened = CorrectionStore(snapshot)
        on_disk = json.loads((snapshot / "project.json").read_text())["corrections"]
        assert set(on_disk) == set(reopened.ids()), snapshot.name
        if "x" in reopened:
            [sample] = reopened.load_samples(["x"])
            assert same_partition(sample.labels, a.labels) and reopened.get("x").note == "mine"
            outcomes.add("kept")
        else:
            [moved] = (snapshot / "removed").iterdir()  # the files are kept, never deleted
            assert len(list((moved / "masks").iterdir())) == int(a.labels.max())
            outcomes.add("removed")
    assert outcomes == {"kept", "removed"}


def test_a_crash_between_a_rename_and_the_index_write_is_repaired_on_open(tmp_path, monkeypatch):
    a, b = synthetic("histology", 1), synthetic("fluorescence", 2)
    store = CorrectionStore(tmp_path / "project")
    store.add("x", a.image, a.labels, note="old")

    def killed(*args, **kwargs):
        raise _Crash()

    real_move = CorrectionStore._move_into_place

    def move_then_die(self, new, sample_id, entry):
        monkeypatch.setattr(self, "_write_index", killed)
        real_move(self, new, sample_id, entry)

    monkeypatch.setattr(CorrectionStore, "_move_into_place", move_then_die)
    monkeypatch.setattr(ft_store.shutil, "rmtree", lambda *a, **k: None)  # no cleanup: a kill
    with pytest.raises(_Crash):
        store.add("x", b.image, np.where(b.labels > 0, 1, 0), note="new")
    monkeypatch.undo()
    reopened = CorrectionStore(tmp_path / "project")
    entry = reopened.get("x")
    [sample] = reopened.load_samples(["x"])
    assert entry.n_nuclei == int(sample.labels.max())
    assert entry.note in ("old", "new")
    stored = json.loads(reopened.index_path.read_text())["corrections"]["x"]
    assert stored["note"] == entry.note and stored["n_nuclei"] == entry.n_nuclei


# -- model versions ---------------------------------------------------------------------

def _tiny_checkpoint(path):
    from napari_nuclei_unet.core.checkpoint import save_checkpoint
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.model import UNet

    config = TrainConfig(base_width=4, depth=2, crop_size=32)
    model = UNet(3, 4, 2)
    return save_checkpoint(path, model, config, {}), model, config


def test_versions_are_never_overwritten(tmp_path):
    checkpoint, model, config = _tiny_checkpoint(tmp_path / "base.safetensors")
    versions = ModelVersions(tmp_path / "project")
    assert versions.list() == [] and versions.latest() is None
    base = versions.record_base(checkpoint)
    assert base.name == "v000" and base.is_base
    assert (tmp_path / "project" / "versions" / "v000" / "model.safetensors").exists()
    assert versions.record_base(checkpoint) == base  # recorded once

    first = versions.add(model, config, {"round": 1})
    weights = first.path / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    second = versions.add(model, config, {"round": 2})
    assert (first.name, second.name) == ("v001", "v002")
    (tmp_path / "project" / "versions" / "v003").mkdir()  # a round that crashed mid-save
    third = versions.add(model, config, {"round": 3})
    assert third.name == "v004"
    assert [v.name for v in versions.list()] == ["v000", "v001", "v002", "v004"]
    assert weights.stat().st_mtime_ns == stamp
    assert versions.latest().name == "v004"
    assert versions.get("2").info == {"round": 2}
    with pytest.raises(KeyError, match="v003"):
        versions.get("v003")
    # a version whose model.json broke is listed as unreadable, never started from
    # (it vanished from the list: GUI check h_gui9)
    sidecar = second.path / "model.json"
    sidecar.write_text(sidecar.read_text()[:40])
    listed = {v.name: v for v in versions.list()}
    assert list(listed) == ["v000", "v001", "v002", "v004"]
    assert listed["v002"].unreadable and not listed["v002"].adopted
    assert not listed["v004"].unreadable
    assert versions.current().name == "v004"


def test_a_version_chosen_stays_the_projects_model(tmp_path, monkeypatch):
    # "Use this version" on a version its round did not make current was forgotten when
    # napari started again (GUI check h_gui13, L6); a round made current later takes over
    import torch

    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.finetune import _common
    from napari_nuclei_unet.core.finetune import versions as module
    from napari_nuclei_unet.core.finetune.versions import ModelVersions
    from napari_nuclei_unet.core.model import UNet

    # every version saved in the same second, then the clock going back: the order of
    # the versions decides, not the clocks (review h_rev9, 7)
    clock = iter(["2026-12-05T07:00:00+00:00"] * 6 + ["2026-12-04T07:00:00+00:00"] * 4)
    monkeypatch.setattr(_common, "_now", lambda: next(clock))
    monkeypatch.setattr(module, "_now", _common._now)
    torch.manual_seed(0)
    model, config = UNet(base_width=4, depth=2), TrainConfig(base_width=4, depth=2)
    versions = ModelVersions(tmp_path / "project")
    versions.add(model, config, {"adopted": True})  # v001, made current
    versions.add(model, config, {"adopted": False})  # v002, refused
    assert versions.current().name == "v001"
    versions.choose("v002")
    assert ModelVersions(tmp_path / "project").current().name == "v002"  # napari restarted
    versions.add(model, config, {"adopted": False})  # v003 refused: the choice stays
    assert versions.current().name == "v002"
    versions.add(model, config, {"adopted": True})  # v004 made current: it takes over
    assert versions.current().name == "v004"
    versions.choose("v001")  # an older one chosen again
    assert versions.current().name == "v001"
    # the version a choice counts from deleted by hand: its number is not given to the
    # next round, which was said to be made current while v001 stayed (h_rev24, L1)
    shutil.rmtree(tmp_path / "project" / "versions" / "v004")
    assert versions.current().name == "v001"
    assert versions.add(model, config, {"adopted": True}).name == "v005"
    assert versions.current().name == "v005"
    (tmp_path / "project" / "versions" / "chosen.json").write_text("{broken")
    assert versions.current().name == "v005"
    (tmp_path / "project" / "versions" / "chosen.json").write_text(  # hand-edited (h_rev26)
        '{"version": "v001", "over": Infinity}')
    assert versions.current().name == "v005"
    (tmp_path / "project" / "versions" / "chosen.json").write_text(
        '{"version": "v001", "over": 1e300}')  # every round failed at its save (h_rev27)
    assert versions.add(model, config, {"adopted": True}).name == "v006"
    with pytest.raises(KeyError):
        versions.choose("v009")


def test_versions_saved_at_once_never_share_a_folder(tmp_path):
    """Two programs saving rounds into one project at the same time (no lock needed:
    each version folder is claimed by an atomic mkdir)."""
    import threading

    _checkpoint, model, config = _tiny_checkpoint(tmp_path / "base.safetensors")
    start = threading.Barrier(4)
    names, errors = [], []

    def save_rounds(k):
        versions = ModelVersions(tmp_path / "project")  # one object per "program"
        start.wait()
        try:
            for i in range(4):
                names.append(versions.add(model, config, {"writer": k, "i": i}).name)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=save_rounds, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(names) == [f"v{i:03d}" for i in range(1, 17)]
    listed = ModelVersions(tmp_path / "project").list()
    assert sorted((v.info["writer"], v.info["i"]) for v in listed) == [
        (k, i) for k in range(4) for i in range(4)]


def test_round_draws_uniformly_and_uncompiled_whatever_the_base_config():
    from napari_nuclei_unet.core.config import TrainConfig

    base = TrainConfig(modality_balance=0.5, compile=True)  # as the shipped model's config
    config = ft_rounds._round_config(base, None, [])
    assert config.modality_balance == 0.0 and not config.compile  # the ratio asked holds
    assert ft_rounds._round_config(base, {"modality_balance": 0.3}, []).modality_balance == 0.3


def test_default_model_is_recorded_by_reference(tmp_path):
    base = ModelVersions(tmp_path).record_base("default")
    assert base.model == "default"
    assert not (base.path / "model.safetensors").exists()


# -- mixing -----------------------------------------------------------------------------

def test_mix_samples_ratio():
    corrections = [Sample(f"c{i}", None, None, "x") for i in range(5)]
    original = [Sample(f"o{i}", None, None, "x") for i in range(100)]
    mixed, ratio, n_original = mix_samples(corrections, original, 0.5)
    assert ratio == pytest.approx(0.5)
    assert sum(s.id.startswith("c") for s in mixed) == len(mixed) - n_original
    mixed, ratio, _ = mix_samples(corrections, original, 0.2)
    assert ratio == pytest.approx(0.2, abs=0.02)
    assert mix_samples(corrections, None, 0.5)[1:] == (1.0, 0)
    same_id = [Sample("c0", None, None, "x")]
    assert mix_samples(corrections, same_id, 0.5)[1:] == (1.0, 0)
    for bad in (0.0, 1.5):
        with pytest.raises(FinetuneError):
            mix_samples(corrections, original, bad)
    with pytest.raises(FinetuneError, match="No corrected image"):
        mix_samples([], original, 0.5)


# -- fine-tuning rounds -----------------------------------------------------------------

@pytest.fixture(scope="module")
def fluorescence_model(tmp_path_factory):
    """A tiny U-Net trained on synthetic fluorescence only (bright nuclei, dark background)."""
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.training import train

    train_samples = [synthetic("fluorescence", s) for s in range(8)]
    val_samples = [synthetic("fluorescence", 100 + s) for s in range(3)]
    config = TrainConfig(base_width=4, depth=2, crop_size=48, batch_size=8, epochs=3,
                         steps_per_epoch=12, learning_rate=5e-3, augment_invert=False,
                         augment_scale=0.0, seed=0, **FAST)
    out = tmp_path_factory.mktemp("base")
    result = drive(train(config, train_samples, out_dir=out, val_samples=val_samples))
    return result.best_checkpoint, train_samples, val_samples


def test_finetune_learns_a_new_style_without_forgetting(fluorescence_model, tmp_path):
    checkpoint, original, val_samples = fluorescence_model
    # H&E-like histology: purple nuclei on pink tissue, never seen by the base model.
    corrected = [synthetic("histology", 300)]
    updates = []
    result = drive(
        finetune(checkpoint, corrected, original=original, ratio=0.5, out_dir=tmp_path,
                 eval_samples=val_samples, replay=False, check=False,
                 # A toy base model (36 steps) whose BatchNorm statistics are far from
                 # settled: here, unlike with the shipped model, adapting them is needed.
                 config_overrides={"epochs": 3, "steps_per_epoch": 10, "learning_rate": 3e-3,
                                   "freeze_batchnorm": False, "trainable": "all", **FAST}),
        updates.append,
    )
    (change,) = result.corrected
    assert change.iou_before < 0.4
    assert change.iou_after > change.iou_before + 0.2, result.summary()
    before = result.mean_iou("evaluation", "before")
    after = result.mean_iou("evaluation", "after")
    assert before > 0.6  # the base model does work on its own style
    assert after >= before - 0.02, result.summary()

    kinds = {type(u).__name__ for u in updates}
    assert {"Progress", "TrainStep", "EpochEnd"} <= kinds
    assert result.version.name == "v001"
    info = ModelVersions(tmp_path).get("v001").info
    assert [c["id"] for c in info["corrections"]] == ["histology-300"]
    assert info["ratio"] == 0.5
    assert info["mean_iou_corrected"]["after"] == pytest.approx(change.iou_after)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".round-")]

    # the new version predicts as reported
    from napari_nuclei_unet.core.checkpoint import load_checkpoint
    from napari_nuclei_unet.core.evaluation import score_prediction
    from napari_nuclei_unet.core.inference import predict_probability

    model = load_checkpoint(result.checkpoint).model
    row = score_prediction(corrected[0], predict_probability(model, corrected[0].image))
    assert row.iou == pytest.approx(change.iou_after)


def test_cancelled_round_saves_nothing(fluorescence_model, tmp_path):
    checkpoint, original, _ = fluorescence_model
    steps = []

    def should_stop():
        return len(steps) >= 1

    job = finetune(checkpoint, [synthetic("histology", 301)], original=original,
                   out_dir=tmp_path, should_stop=should_stop,
                   config_overrides={"epochs": 2, "steps_per_epoch": 5, **FAST})
    result = drive(job, lambda u: steps.append(u) if type(u).__name__ == "TrainStep" else None)
    assert result.cancelled and result.version is None
    assert [v.name for v in ModelVersions(tmp_path).list()] == ["v000"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".round-")]


def test_overrides_cannot_change_the_architecture(fluorescence_model, tmp_path):
    checkpoint, original, _ = fluorescence_model
    job = finetune(checkpoint, [synthetic("histology", 302)], out_dir=tmp_path,
                   config_overrides={"base_width": 8})
    with pytest.raises(FinetuneError, match="architecture"):
        next(job)


def test_rounds_from_a_correction_store_chain_versions(fluorescence_model, tmp_path, request):
    import torch

    checkpoint, original, _ = fluorescence_model
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    request.addfinalizer(lambda: torch.set_num_threads(threads))  # the process's again
    store = CorrectionStore(tmp_path)
    sample = synthetic("histology", 303)
    store.add("h", sample.image, sample.labels)
    overrides = {"epochs": 1, "steps_per_epoch": 2, **FAST}
    first = drive(finetune(checkpoint, store.load_samples(), original=original,
                           out_dir=tmp_path, config_overrides=overrides))
    versions = ModelVersions(tmp_path)
    second = drive(finetune(versions.latest(), store.load_samples(), out_dir=tmp_path,
                            config_overrides=overrides))
    assert (first.version.name, second.version.name) == ("v001", "v002")
    assert torch.get_num_threads() == 2  # the round's thread count was not left behind
    assert versions.get("v002").info["base_model"] == "v001"
    assert versions.get("v001").info["corrections"][0]["source"] == "label"


@pytest.mark.slow
@pytest.mark.skipif(not default_model_path().exists(), reason="no shipped default model")
def test_default_model_improves_on_a_corrected_image(tmp_path):
    corrected = [synthetic("histology", 400, shape=(256, 256))]
    result = drive(finetune("default", corrected, out_dir=tmp_path,
                            config_overrides={"device": "cpu"}))
    (change,) = result.corrected
    assert change.iou_after >= change.iou_before + 0.05 or change.iou_after > 0.9
    # The built-in regression set (real DSB2018 crops never trained on) barely moves.
    assert len(result.regression) >= 20
    assert (result.mean_iou("regression", "after")
            >= result.mean_iou("regression", "before") - 0.03), result.summary()
    from napari_nuclei_unet.core.finetune import ADOPT_TOLERANCE

    assert result.adopted == (result.mean_iou("regression", "after")
                              >= result.mean_iou("regression", "before")
                              - ADOPT_TOLERANCE["regression"])


def _save_again_and_again(path, stop):
    store = CorrectionStore(path)
    image = np.random.default_rng(0).integers(0, 255, (64, 64)).astype(np.uint8)
    labels = np.zeros((64, 64), np.int32)
    labels[10:20, 10:20], labels[30:40, 30:40] = 1, 2
    while not stop.is_set():
        store.add("cells-plane0", image, labels)  # Add plane, again and again


def test_corrections_read_while_another_program_saves_them_are_whole(tmp_path):
    # a round's start read the project without its lock: a save of the same correction
    # (two renames) failed about 1 read in 70 (review h_rev24, L2)
    import multiprocessing
    import time

    store = CorrectionStore(tmp_path)
    labels = np.zeros((64, 64), np.int32)
    labels[5:9, 5:9] = 1
    store.add("cells-plane0", np.zeros((64, 64), np.uint8), labels)
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    saver = context.Process(target=_save_again_and_again, args=(tmp_path, stop))
    saver.start()
    try:
        start, reads = time.monotonic(), 0
        while time.monotonic() - start < 4 or reads < 50:
            (sample,) = CorrectionStore(tmp_path).load_samples()
            assert sample.labels.max() in (1, 2)
            reads += 1
    finally:
        stop.set()
        saver.join(30)


def test_a_project_one_may_not_write_to_is_still_read(tmp_path, monkeypatch):
    # reading each correction under the project's lock failed on a read-only project
    # (a colleague's, a read-only share) with PermissionError (review h_rev25, B2)
    from napari_nuclei_unet.core.finetune import store as store_module

    store = CorrectionStore(tmp_path)
    labels = np.zeros((32, 32), np.int32)
    labels[4:9, 4:9] = 1
    store.add("cells-plane0", np.zeros((32, 32), np.uint8), labels)

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".lock"))

    monkeypatch.setattr(store_module, "exclusive_lock", refused)
    (sample,) = CorrectionStore(tmp_path).load_samples()
    assert sample.labels.max() == 1
    with pytest.raises(KeyError):
        CorrectionStore(tmp_path).load_samples(["other"])



def test_a_version_that_could_not_be_saved_leaves_no_empty_folder(tmp_path, monkeypatch):
    # a full disk left an empty versions/v001 ("not a complete model version"), and the
    # next round was saved as v002 (CLI check h_cli3, L4)
    import errno

    from napari_nuclei_unet.core import atomic

    checkpoint, model, config = _tiny_checkpoint(tmp_path / "base.safetensors")
    versions = ModelVersions(tmp_path / "project")
    versions.record_base(checkpoint)
    real = atomic.write_temp

    def disk_full(*args, **kwargs):  # the save's lock file is made by then
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "write_temp", disk_full)
    with pytest.raises((OSError, ValueError), match="is full"):
        versions.add(model, config, {"round": 1})
    assert not (tmp_path / "project" / "versions" / "v001").exists()
    monkeypatch.setattr(atomic, "write_temp", real)
    assert versions.add(model, config, {"round": 1}).name == "v001"
