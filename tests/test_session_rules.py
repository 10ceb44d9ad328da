"""The shared session's rules: nothing lost when the model changes, no stale scores shown."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from napari_nuclei_unet.core.evaluation import ImageRow
from napari_nuclei_unet.widgets._model_names import model_name
from napari_nuclei_unet.widgets._session import Session


@dataclass
class FakeModel:
    path: Path | None = None
    metadata: dict = field(default_factory=dict)


def _row(sid: str, iou: float) -> ImageRow:
    return ImageRow(sid, "fluorescence", iou, iou, iou, iou, 3, 3)


@pytest.fixture
def session():
    s = Session()
    s.jobs = None  # no workers needed
    return s


def test_switching_model_keeps_the_old_results_and_brings_them_back(session, tmp_path):
    a = FakeModel(tmp_path / "a.safetensors")
    b = FakeModel(tmp_path / "b.safetensors")
    session.set_model(a)
    session.add_predictions(a, {"x": np.zeros((2, 2))}, [_row("x", 0.8)])
    assert set(session.rows) == {"x"}
    note = session.set_model(b)
    assert session.rows == {} and session.probabilities == {}
    assert "kept" in note and "a" in note
    session.set_model(FakeModel(tmp_path / "a.safetensors"))  # the same file, loaded again
    assert session.rows["x"].iou == 0.8 and "x" in session.probabilities
    # the same weights again (a project's version v000 of the model in use): the scores
    # stay shown, and nothing says they were put aside (GUI check h_gui9, M3)
    note = session.set_model(FakeModel(tmp_path / "a.safetensors"))
    assert "kept" not in note and session.rows["x"].iou == 0.8


def test_results_of_a_replaced_model_are_kept_not_dropped(session, tmp_path):
    a, b = FakeModel(tmp_path / "a.safetensors"), FakeModel(tmp_path / "b.safetensors")
    session.set_model(a)
    session.set_model(b)
    assert not session.add_predictions(a, {"x": np.zeros((2, 2))}, [_row("x", 0.5)])
    session.keep_for(a, {"x": np.zeros((2, 2))}, [_row("x", 0.5)])
    session.set_model(a)
    assert session.rows["x"].iou == 0.5


@dataclass
class FakeDataset:
    path: Path
    sample_ids: tuple = ("x", "y")

    def ids(self):
        return list(self.sample_ids)


def test_a_dataset_opened_again_keeps_its_results_and_another_puts_them_aside(session,
                                                                              tmp_path):
    from napari_nuclei_unet.core.dataset import Sample

    a, b = FakeModel(tmp_path / "a.safetensors"), FakeModel(tmp_path / "b.safetensors")
    (tmp_path / "data").mkdir()
    session.set_dataset(FakeDataset(tmp_path / "data"))
    session.set_model(a)
    image = np.zeros((2, 2), np.uint8)
    session.add_samples([Sample("x", image, np.zeros((2, 2), np.int32), "fluorescence"),
                         Sample("y", image, np.zeros((2, 2), np.int32), "fluorescence")])
    session.add_predictions(a, {"x": image, "y": image}, [_row("x", 0.8), _row("y", 0.7)])
    session.set_model(b)
    session.add_predictions(b, {"x": image}, [_row("x", 0.6)])
    # the same folder again (named another way), one sample removed from it meanwhile
    note = session.set_dataset(FakeDataset(tmp_path / "data" / ".." / "data", ("x",)))
    assert "opened again" in note and "1 loaded image(s)" in note
    assert set(session.samples) == {"x"} and session.rows["x"].iou == 0.6
    # another dataset: nothing of the first shows, and every model's results are kept
    note = session.set_dataset(FakeDataset(tmp_path / "other", ("z",)))
    assert "The scores of data (1 scored image(s)) are kept: open it again" in note, note
    assert session.rows == {} and session.samples == {} and session.probabilities == {}
    note = session.set_dataset(FakeDataset(tmp_path / "data", ("x",)))
    assert session.rows["x"].iou == 0.6
    assert "shown again. Its images are read again from the files (Load all" in note, note
    # the maps were not kept aside (hundreds of MB for a whole dataset), nor the images
    assert session.probabilities == {} and session.samples == {}
    session.set_model(FakeModel(tmp_path / "a.safetensors"))
    assert session.rows["x"].iou == 0.8 and "y" not in session.rows


def test_scores_come_back_after_a_restart_without_their_maps(tmp_path):
    import os

    (tmp_path / "data").mkdir()
    model_file = tmp_path / "a.safetensors"
    model_file.write_bytes(b"weights")

    def restart():
        fresh = Session()
        fresh.jobs = None
        return fresh

    first = restart()
    first.set_dataset(FakeDataset(tmp_path / "data"))
    first.set_model(FakeModel(model_file))
    first.put_rows([_row("x", 0.8)])
    first.set_scoring(threshold=0.7)
    first.put_rows([_row("y", 0.6)])  # scored at another threshold
    # napari quits; the next session opens the same folder and loads the same model
    second = restart()
    assert second.set_dataset(FakeDataset(tmp_path / "data")) == ""
    note = second.set_model(FakeModel(model_file))
    assert "The scores of 1 image(s) from an earlier session are shown in the IoU panel " \
        "(Plugins > Nuclei U-Net > IoU panel)" in note, note
    assert "1 more image(s) were scored then at another threshold" in note
    assert second.rows["x"].iou == 0.8 and second.probabilities == {}
    assert [r.id for r in second.current_rows()] == ["x"]  # scored at 0.5, the default
    assert second.stale_count() == 0  # nothing to re-score: y has no prediction map
    second.set_scoring(threshold=0.7)
    assert [r.id for r in second.current_rows()] == ["y"]
    # in the other order (model first), and a dataset that lost image y meanwhile
    third = restart()
    third.set_model(FakeModel(model_file))
    note = third.set_dataset(FakeDataset(tmp_path / "data", ("x",)))
    assert "scores of 1 image(s)" in note and set(third.rows) == {"x"}
    # the model file changed since (retrained in place): its old scores are not its
    stamp = model_file.stat().st_mtime_ns + 5_000_000_000
    os.utime(model_file, ns=(stamp, stamp))
    fourth = restart()
    fourth.set_dataset(FakeDataset(tmp_path / "data"))
    assert "earlier session" not in fourth.set_model(FakeModel(model_file))
    assert fourth.rows == {}
    # a checkpoint is known by the weights loaded (its save token): scores made with
    # weights a running training has since overwritten are not the new weights'
    fifth = restart()
    fifth.set_dataset(FakeDataset(tmp_path / "data"))
    fifth.set_model(FakeModel(model_file, {"token": "first-weights"}))
    fifth.put_rows([_row("x", 0.3)])
    sixth = restart()
    sixth.set_dataset(FakeDataset(tmp_path / "data"))
    sixth.set_model(FakeModel(model_file, {"token": "new-weights"}))
    assert sixth.rows == {}
    sixth.set_model(FakeModel(model_file, {"token": "first-weights"}))
    assert sixth.rows["x"].iou == 0.3


def test_scores_kept_for_another_model_are_said_where_the_table_is_empty(tmp_path):
    # after a restart the Scores table said "No scores yet" while they waited for their
    # model to be loaded again (GUI check h_gui40, L11)
    from napari_nuclei_unet.widgets._score_table import kept_words

    (tmp_path / "data").mkdir()
    model_file = tmp_path / "run-a.safetensors"
    model_file.write_bytes(b"weights")
    first = Session()
    first.jobs = None
    first.set_dataset(FakeDataset(tmp_path / "data"))
    first.set_model(FakeModel(model_file))
    first.put_rows([_row("x", 0.8)])
    second = Session()
    second.jobs = None
    second.set_dataset(FakeDataset(tmp_path / "data"))
    words = kept_words(second)
    assert "Scores of run-a on this dataset are kept from before: load that model" in words
    second.set_model(FakeModel(model_file))  # its own scores: shown, not said as others'
    assert kept_words(second) == "" and second.rows["x"].iou == 0.8
    third = Session()
    third.jobs = None
    third.set_dataset(FakeDataset(tmp_path / "other"))  # another dataset: none of its own
    assert kept_words(third) == ""
    # a bioimage.io package by the name it records, not "unet2d/bioimageio" (h_gui42, L4)
    package = tmp_path / "unet2d" / "bioimageio.yaml"
    package.parent.mkdir()
    package.write_text("name: UNet 2D")
    third.set_model(FakeModel(package, {"bioimageio": {"name": "UNet 2D Nuclei Broad"}}))
    third.put_rows([_row("y", 0.7)])
    fourth = Session()
    fourth.jobs = None
    fourth.set_dataset(FakeDataset(tmp_path / "other"))
    assert "Scores of UNet 2D Nuclei Broad on this dataset are kept" in kept_words(fourth)


def test_old_score_files_are_pruned(tmp_path, monkeypatch):
    import napari_nuclei_unet.widgets._score_memory as memory

    monkeypatch.setattr(memory, "MAX_FILES", 3)
    for k in range(5):
        path = tmp_path / f"{k}.json"
        assert memory.save_scores(path, {"x": _row("x", 0.5)}, {"x": (0.5, "watershed")},
                                  {}, {"x": ""})
        os.utime(path, (k, k))
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["2.json", "3.json", "4.json"]
    rows, settings = memory.load_scores(tmp_path / "4.json", lambda ids: {"x": ""})
    assert rows["x"].iou == 0.5 and settings["x"] == (0.5, "watershed")
    (tmp_path / "4.json").write_text("{not json")
    assert memory.load_scores(tmp_path / "4.json", lambda ids: {"x": ""}) == ({}, {})


def test_scores_of_a_sample_whose_masks_changed_since_are_not_shown_again(tmp_path):
    import shutil

    from conftest import write_dataset
    from napari_nuclei_unet.core.dataset import DSBDataset

    root = write_dataset(tmp_path / "stage1_train", {"a": (24, 32, 2), "b": (24, 32, 3)})
    model_file = tmp_path / "m.safetensors"
    model_file.write_bytes(b"weights")
    first = Session()
    first.jobs = None
    first.set_dataset(DSBDataset.open(root, use_cache=False))
    first.set_model(FakeModel(model_file))
    first.put_rows([_row("a", 0.8), _row("b", 0.7), _row("my-layer", 0.9)])
    # a nucleus is added to sample b's masks on disk (one more mask file)
    masks = root / "b" / "masks"
    shutil.copy(sorted(masks.iterdir())[0], masks / "zz-added.png")
    second = Session()
    second.jobs = None
    second.set_dataset(DSBDataset.open(root, use_cache=False))
    note = second.set_model(FakeModel(model_file))
    assert set(second.rows) == {"a"} and "scores of 1 image(s)" in note
    # the same, with the fingerprints the opening worker took: none is taken again on
    # the main thread (670 samples took 0.6 s there, beside a running prediction)
    dataset = DSBDataset.open(root, use_cache=False)
    stamps = dataset.fingerprints(dataset.ids())
    taken = []
    dataset.fingerprints = lambda ids: taken.append(list(ids)) or {}
    third = Session()
    third.jobs = None
    third.set_dataset(dataset, stamps)
    note = third.set_model(FakeModel(model_file))
    assert set(third.rows) == {"a"} and "scores of 1 image(s)" in note
    third.add_predictions(third.model, {"a": np.zeros((2, 2))})
    third.set_dataset(dataset, stamps)  # opened again
    assert "a" in third.probabilities and taken == []


def test_scores_at_an_old_threshold_are_not_current(session):
    model = FakeModel()
    session.set_model(model)
    maps = {"x": np.zeros((2, 2)), "y": np.zeros((2, 2))}
    session.add_predictions(model, maps, [_row("x", 0.8), _row("y", 0.6)])
    assert len(session.current_rows()) == 2
    session.set_scoring(threshold=0.7)
    assert session.current_rows() == [] and session.stale_count() == 2
    session.put_rows([_row("x", 0.9)])
    assert [r.id for r in session.current_rows()] == ["x"] and session.stale_count() == 1


def test_session_methods_emit_their_own_signals(session):
    seen = []
    session.scores_changed.connect(lambda: seen.append("scores"))
    session.current_changed.connect(lambda sid: seen.append(sid))
    session.set_current("abc")
    session.set_scoring(threshold=0.3)
    assert seen == ["abc", "scores"]


def test_model_names_say_which_file():
    assert model_name(FakeModel(Path("/x/models/default.safetensors"))) == "default model"
    assert model_name(FakeModel(Path("/runs/20261201-0930/best.safetensors"))) == \
        "20261201-0930/best"
    assert model_name(FakeModel(Path("/p/versions/v002.safetensors"))) == "v002"
    # a fine-tuning project's version (versions/v001/model.safetensors), as the Retrain
    # dock names it: "v001", not "v001/model"
    assert model_name(FakeModel(Path("/p/versions/v001/model.safetensors"))) == "v001"
    assert model_name(FakeModel(Path("/p/other/v001/model.safetensors"))) == "v001/model"
    from napari_nuclei_unet.widgets._model_names import model_name_in

    version = FakeModel(Path("/labs/a/versions/v001/model.safetensors"))
    assert model_name_in(version, Path("/labs/b")) == "v001 of project a"
    assert model_name_in(version, Path("/labs/a")) == "v001"
    assert model_name_in(FakeModel(Path("/x/v001.safetensors")), Path("/labs/b")) == "v001"
    # a bioimage.io package by the name it was exported under, not by its file (h_gui12
    # L-E: a colleague's "finetuned.zip" was "finetuned"); the dialog's default name
    # of a version says its project (a colleague got "Nuclei U-Net (v001)")
    from napari_nuclei_unet.widgets._model_export import default_file, default_name

    package = FakeModel(Path("/in/finetuned.zip"))
    package.metadata = {"bioimageio": {"name": "Nuclei U-Net (lab-a v001)"}}
    assert model_name(package) == "Nuclei U-Net (lab-a v001)"
    assert default_name(version) == "Nuclei U-Net (a v001)"
    assert default_file(version, Path("/out")) == Path("/out/nuclei-unet-a-v001.zip")
    assert default_name(FakeModel(Path("/x/v001.safetensors"))) == "Nuclei U-Net (v001)"
    # the Retrain dock's own project is "default": "default v001" read as the shipped
    # model; and a version its round did not make current is said in the dialog (h_gui40)
    from napari_nuclei_unet.widgets._model_export import refused_words

    mine = FakeModel(Path("/data/projects/default/versions/v001/model.safetensors"))
    assert default_name(mine) == "Nuclei U-Net (fine-tuned v001)"
    assert default_file(mine, Path("/out")) == Path("/out/nuclei-unet-fine-tuned-v001.zip")
    assert refused_words(mine) == ""
    mine.metadata = {"finetune": {"adopted": False}}
    assert "its fine-tuning round did not make it current" in refused_words(mine)
    # a checkpoint named as its folder is not a version (review h_rev9, 5)
    own = FakeModel(Path("/home/ana/experiments/unet1/unet1.safetensors"))
    assert model_name_in(own, Path("/labs/b")) == "unet1"
    assert default_name(own) == "Nuclei U-Net (unet1)"


def test_split_marks():
    from napari_nuclei_unet.core.predict_score import splits_of

    ids = [f"s{k}" for k in range(10)]
    model = FakeModel(metadata={"training_data": {"n_train": 8, "n_val": 2,
                                                  "val_ids": ["s0", "s1"]}})
    marks = splits_of(model, ids)
    assert marks["s0"] == "validation" and marks["s5"] == "train"
    assert set(splits_of(model, ids + ["new"]).values()) >= {"unseen"}  # another dataset
    assert splits_of(None, ids)["s3"] == "unseen"


def test_the_shipped_model_marks_any_stage1_train_image_it_trained_on():
    # a user's copy of a few stage1_train samples: not the whole training set, yet the
    # shipped model trained on them (it records stage1_train's digest), so not "unseen"
    from napari_nuclei_unet.core.checkpoint import default_model_path, read_metadata
    from napari_nuclei_unet.core.dsb2018_pin import stage1_train_ids
    from napari_nuclei_unet.core.predict_score import splits_of

    metadata = read_metadata(default_model_path())
    val = metadata["training_data"]["val_ids"]
    _, chars, prefixes = stage1_train_ids()
    trained = next(p for p in sorted(prefixes) if not any(v.startswith(p) for v in val))
    trained_id = trained + "0" * (64 - chars)
    marks = splits_of(FakeModel(metadata=metadata), [val[0], trained_id, "f" * 64, "mine"])
    assert marks == {val[0]: "validation", trained_id: "train", "f" * 64: "unseen",
                     "mine": "unseen"}
    # another model that records no such digest marks them unseen, as before
    other = {"training_data": {"n_train": 602, "n_val": 68, "val_ids": val}}
    assert splits_of(FakeModel(metadata=other), [trained_id])[trained_id] == "unseen"
    # a fine-tuning version records its base's training data: the images its round
    # learned from were "validation", the one kept aside "train" (GUI check h_gui14, N1)
    version = {**metadata, "finetune": {"corrections": [{"id": val[0]}],
                                        "held_out": [trained_id]}}
    marks = splits_of(FakeModel(metadata=version), [val[0], trained_id, val[1]])
    assert marks == {val[0]: "fine-tuned", trained_id: "kept aside", val[1]: "validation"}


def test_short_ids_are_eight_characters():
    from napari_nuclei_unet.widgets._layers import short_id

    long = "0123456789abcdef" * 4
    assert short_id(long) == "01234567"
    assert short_id("tiny-3") == "tiny-3"
    assert short_id("zstack_ZYX-plane2") == "zstack_ZYX-plane2"  # a "…" would save 1 character
    # readable names keep their start and their end, where names of one experiment differ
    assert short_id("synthetic-brightfield-12") == "synthet…field-12"
    names = [f"2026-11-30_plate3_well_A0{i}_s1" for i in range(1, 4)]
    shown = [short_id(name) for name in names]
    assert len(set(shown)) == 3 and all(len(text) == 16 for text in shown)


def test_reader_names_layers_by_short_id():
    from napari_nuclei_unet._reader import SAMPLE_ID_KEY, sample_layer_data
    from napari_nuclei_unet.core.dataset import Sample

    long = "0a7d30b252359a10fd298b638b90cb9ada3acced4e0c0e5a3692013f432ee4e9"
    sample = Sample(long, np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.int32),
                    "fluorescence")
    (_, image_kwargs, _), (_, labels_kwargs, _) = sample_layer_data(sample)
    assert image_kwargs["name"] == "0a7d30b2"
    assert labels_kwargs["name"] == "0a7d30b2 label mask"
    assert image_kwargs["metadata"][SAMPLE_ID_KEY] == long  # the full id is kept


def test_a_sample_loaded_after_its_files_changed_is_stamped_as_read(tmp_path):
    """The fingerprints taken when the dataset was opened are not those of a sample read
    later from files changed since: it would be dropped as changed when opened again."""
    from conftest import write_dataset
    from napari_nuclei_unet.core.dataset import DSBDataset

    root = write_dataset(tmp_path / "stage1_train", {"a": (24, 32, 2), "b": (24, 32, 3)})
    dataset = DSBDataset.open(root, use_cache=False)
    session = Session()
    session.jobs = None
    session.set_dataset(dataset, dataset.fingerprints(dataset.ids()))
    mask = sorted((root / "a" / "masks").iterdir())[0]  # fixed in another program
    stat = mask.stat()
    os.utime(mask, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    session.add_samples([dataset.load("a")])  # what a click in the Data dock does
    assert session.sample_stamps["a"] == dataset.fingerprints(["a"])["a"]
    note = session.set_dataset(dataset, dataset.fingerprints(dataset.ids()))
    assert "a" in session.samples and "changed" not in note, note


def test_a_dataset_opened_again_without_scores_does_not_speak_of_zero(session, tmp_path):
    from napari_nuclei_unet.core.dataset import Sample

    (tmp_path / "data").mkdir()
    session.set_dataset(FakeDataset(tmp_path / "data"))
    image = np.zeros((2, 2), np.uint8)
    session.add_samples([Sample("x", image, np.zeros((2, 2), np.int32), "fluorescence")])
    note = session.set_dataset(FakeDataset(tmp_path / "data"))
    assert note.startswith("data was opened again: its 1 loaded image(s) are kept"), note
    assert "scores" not in note
