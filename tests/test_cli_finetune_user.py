"""A command-line user's fine-tuning: what a dataset folder's masks/ may hold, the image +
NAME_labels.tif pairs that ``nuclei-unet finetune`` reads, and the folders that stand for
the model it made (project, version, training run)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from _cli_helpers import run_cli
from conftest import write_dataset, write_sample
from napari_nuclei_unet.cli import main
from napari_nuclei_unet.core.dataset import DatasetError, DSBDataset, load_sample
from napari_nuclei_unet.core.imageio import DatasetWarning


def label_image(shape=(24, 32), n=3) -> np.ndarray:
    labels = np.zeros(shape, np.uint16)
    for k in range(n):
        labels[2 + 7 * k: 7 + 7 * k, 3:9 + 2 * k] = k + 1
    return labels


def test_a_label_tiff_in_masks_is_not_read_as_an_image_without_nuclei(tmp_path):
    # what a user who corrected predict's NAME_labels.tif tried: the sample used to load
    # with 0 nuclei, and a round then taught the model that the image shows none
    root = write_dataset(tmp_path / "data", {"good": (24, 32, 3)})
    folder = write_sample(root, "edited", (24, 32), 0)
    tifffile.imwrite(folder / "masks" / "edited_labels.tif", label_image())
    with pytest.warns(DatasetWarning):
        dataset = DSBDataset.open(root)
    assert dataset.ids() == ["good"]
    [(sample_id, reason)] = dataset.skipped
    assert sample_id == "edited"
    assert "masks/ holds no mask PNG (edited_labels.tif not read)" in reason
    assert "one black-and-white PNG per nucleus" in reason
    # an empty masks/ is still an image without nuclei, as before
    write_sample(root, "empty", (24, 32), 0)
    with pytest.warns(DatasetWarning):
        assert "empty" in DSBDataset.open(root).ids()


def test_a_16_bit_label_png_in_masks_is_refused_not_read_as_one_nucleus(tmp_path):
    folder = write_sample(tmp_path, "labelpng", (24, 32), 0)
    Image.fromarray(label_image()).save(folder / "masks" / "labels.png")
    with pytest.raises(DatasetError, match="labels.png holds 3 different labels: it is a "
                                           "label image, not a mask"):
        load_sample(folder)
    # a 16-bit mask with one value is still a mask
    one = (label_image() > 0).astype(np.uint16) * 1000
    Image.fromarray(one).save(folder / "masks" / "labels.png")
    assert load_sample(folder).labels.max() == 1


def test_the_command_line_says_which_files_it_ignored(tmp_path, capsys):
    root = write_dataset(tmp_path / "data", {"a": (24, 32, 2)})
    (root / "a" / "masks" / "notes.txt").write_text("drawn by hand")
    code, out, err = run_cli(capsys, "info", root)
    assert code == 0, err
    assert "Ignored files, neither a sample's image nor a mask PNG (1):" in out
    assert "notes.txt" in out
    # the commands that train on a dataset say it on stderr
    code, out, err = run_cli(capsys, "evaluate", "default", root, "--json")
    assert code == 0, err
    assert "ignored 1 file(s) that are neither a sample's image nor a mask PNG" in err


# -- image + NAME_labels.tif pairs ---------------------------------------------------------

@pytest.fixture
def tiny_checkpoint(tmp_path):
    from napari_nuclei_unet.core.checkpoint import save_checkpoint
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.model import UNet

    config = TrainConfig(base_width=4, depth=2, crop_size=32, batch_size=2, num_threads=1,
                         amp=False, device="cpu")
    return save_checkpoint(tmp_path / "tiny.safetensors", UNet(3, 4, 2), config, {})


def blobs(labels: np.ndarray) -> np.ndarray:
    return np.where(labels > 0, 3000, 200).astype(np.uint16)


def write_pairs(folder, counts=(("cells", 3), ("more", 2))):
    """A folder of 16-bit images, each beside its label image NAME_labels.tif."""
    folder.mkdir()
    for name, n in counts:
        labels = label_image(n=n)
        tifffile.imwrite(folder / f"{name}.tif", blobs(labels))
        tifffile.imwrite(folder / f"{name}_labels.tif", labels)
    return folder


def test_pairs_are_found_beside_their_images(tmp_path):
    from napari_nuclei_unet.core.finetune import labelled_pairs
    from napari_nuclei_unet.core.finetune.own import orphan_label_images, unlabelled_images

    for name in ("b.tif", "b_labels.tif", "a.png", "a_labels.png", "alone.tif",
                 "notes_labels.tif", "embryo.ome.tif", "embryo_labels.tif", "old.ome.tif",
                 "old.ome_labels.tif"):
        (tmp_path / name).write_bytes(b"")
    # an OME-TIFF's labels are named as predict names them (embryo_labels.tif), or after
    # the file's whole stem
    assert [(i.name, m.name) for i, m in labelled_pairs(tmp_path)] == [
        ("a.png", "a_labels.png"), ("b.tif", "b_labels.tif"),
        ("embryo.ome.tif", "embryo_labels.tif"), ("old.ome.tif", "old.ome_labels.tif")]
    assert [p.name for p in orphan_label_images(tmp_path)] == ["notes_labels.tif"]
    # a .zarr image pairs too; predict's own big-image output is labels, not an image
    (tmp_path / "slide.zarr").mkdir()
    (tmp_path / "slide_labels.tif").write_bytes(b"")
    (tmp_path / "b_labels.ome.zarr").mkdir()
    assert ("slide.zarr", "slide_labels.tif") in [
        (i.name, m.name) for i, m in labelled_pairs(tmp_path)]
    assert "b_labels.ome.zarr" not in [p.name for p in unlabelled_images(tmp_path)]
    # which label image is the correction, or which image the labels belong to, is
    # asked, not guessed
    from napari_nuclei_unet.core.finetune import FinetuneError

    (tmp_path / "embryo.ome_labels.tif").write_bytes(b"")
    with pytest.raises(FinetuneError, match="embryo.ome.tif has 2 label images beside it"):
        labelled_pairs(tmp_path)
    (tmp_path / "embryo.ome_labels.tif").unlink()
    (tmp_path / "embryo.tif").write_bytes(b"")
    with pytest.raises(FinetuneError, match="would both take embryo_labels.tif"):
        labelled_pairs(tmp_path)
    (tmp_path / "embryo.tif").unlink()
    # names that differ only in case: one pair was left out without a word (h_rev22, L1)
    (tmp_path / "B.tif").write_bytes(b"")
    with pytest.raises(FinetuneError, match="B.tif and b.tif differ only in upper and lower"):
        labelled_pairs(tmp_path)


def test_each_plane_of_a_pair_is_stored_as_the_segment_dock_stores_it(tmp_path):
    from napari_nuclei_unet.core.finetune import CorrectionStore, add_labelled_image
    from napari_nuclei_unet.core.finetune._common import FinetuneError

    labels = np.stack([label_image(n=3), label_image(n=2)])
    tifffile.imwrite(tmp_path / "embryo.tif", blobs(labels), imagej=True,
                     metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "embryo_labels.tif", labels)
    store = CorrectionStore(tmp_path / "project")
    added = add_labelled_image(store, tmp_path / "embryo.tif", tmp_path / "embryo_labels.tif")
    assert [(c.id, c.n_nuclei) for c in added] == [("embryo-plane0", 3), ("embryo-plane1", 2)]
    samples = store.load_samples()
    assert [s.labels.max() for s in samples] == [3, 2]
    assert samples[0].image.shape[:2] == (24, 32)
    # labels that do not fit the image are refused in plain words, nothing stored
    tifffile.imwrite(tmp_path / "small_labels.tif", labels[:, :10])
    with pytest.raises(FinetuneError, match=r"small_labels.tif is 2 x 10 x 32 but its image "
                                            r"needs labels of 2 x 24 x 32"):
        add_labelled_image(CorrectionStore(tmp_path / "other"), tmp_path / "embryo.tif",
                           tmp_path / "small_labels.tif")
    # labels the Segment dock lined up over a channel stack, saved by napari with their
    # size-1 axis (Z x 1 x Y x X), were refused (review h_rev24, M6)
    tifffile.imwrite(tmp_path / "napari_labels.tif", labels[:, None])
    lined = add_labelled_image(CorrectionStore(tmp_path / "napari"), tmp_path / "embryo.tif",
                               tmp_path / "napari_labels.tif")
    assert [(c.id, c.n_nuclei) for c in lined] == [("embryo-plane0", 3), ("embryo-plane1", 2)]
    # float labels holding whole numbers (as Fiji saves them) are read as labels ...
    tifffile.imwrite(tmp_path / "fiji_labels.tif", labels.astype(np.float32))
    fiji = add_labelled_image(CorrectionStore(tmp_path / "fiji"), tmp_path / "embryo.tif",
                              tmp_path / "fiji_labels.tif")
    assert [(c.id, c.n_nuclei) for c in fiji] == [("embryo-plane0", 3), ("embryo-plane1", 2)]
    # ... other float images are refused in plain words
    for name, data, says in [
            ("prob_labels.tif", labels.astype(np.float32) / 4, "not whole numbers from 0 up "
                                                                r"\(e.g. 0.25\)"),
            ("neg_labels.tif", labels.astype(np.float32) - 1, r"from -1 to 2"),
            ("nan_labels.tif", np.where(labels > 0, labels, np.nan).astype(np.float32),
             "NaN or infinite")]:
        tifffile.imwrite(tmp_path / name, data)
        with pytest.raises(FinetuneError, match=f"{name} is not a label image.*{says}"):
            add_labelled_image(CorrectionStore(tmp_path / "other"), tmp_path / "embryo.tif",
                               tmp_path / name)
    assert not (tmp_path / "other" / "corrections").exists() or \
        not list((tmp_path / "other" / "corrections").iterdir())


def test_a_label_image_cut_short_is_said_with_the_fresh_copy_advice(tmp_path):
    # a PNG cut short said only "image file is truncated" (stop 45, noticed; the TIFF
    # already had the advice)
    from napari_nuclei_unet.core.finetune import CorrectionStore, add_labelled_image
    from napari_nuclei_unet.core.finetune._common import FinetuneError

    labels = label_image(n=3)
    Image.fromarray(blobs(labels)).save(tmp_path / "a.png")
    Image.fromarray(labels.astype(np.uint8)).save(tmp_path / "full.png")
    tifffile.imwrite(tmp_path / "full.tif", labels)
    for name in ("a_labels.png", "a_labels.tif"):
        whole = (tmp_path / f"full{name[-4:]}").read_bytes()
        (tmp_path / name).write_bytes(whole[: len(whole) // 2])
        with pytest.raises(FinetuneError, match=f"{name} cannot be read as a label image "
                                                r"\(.+\): .*replace it with a fresh copy"):
            add_labelled_image(CorrectionStore(tmp_path / "p"), tmp_path / "a.png",
                               tmp_path / name)
    assert not (tmp_path / "p" / "corrections").exists() or \
        not list((tmp_path / "p" / "corrections").iterdir())


def test_finetune_reads_pairs_into_its_project(tmp_path, tiny_checkpoint, capsys):
    folder = write_pairs(tmp_path / "corrected")
    project = tmp_path / "project"
    code, out, err = run_cli(capsys, "finetune", tiny_checkpoint, folder, "--out", project,
                             "--epochs", "1", "--steps", "1", "--device", "cpu")
    assert code == 0, err
    assert "cells.tif + cells_labels.tif: 1 plane added to the project in" in err
    assert "cells-plane0" in out and "more-plane0" in out
    assert sorted(p.name for p in (project / "corrections").iterdir()) == [
        "cells-plane0", "more-plane0"]
    assert (project / "versions" / "v001" / "model.safetensors").is_file()
    # an image without its label image is named, not silently dropped
    (folder / "alone.tif").write_bytes((folder / "cells.tif").read_bytes())
    code, out, err = run_cli(capsys, "finetune", tiny_checkpoint, folder, "--out",
                             tmp_path / "p2", "--epochs", "1", "--steps", "1", "--device", "cpu")
    assert code == 0, err
    assert "not used, no label image beside them: alone.tif" in err
    # the same folder again: its corrections are stored again, said to hold the same
    # labels (it said "replacing", CLI check h_cli2), and a label image whose image is
    # missing is named
    (folder / "lost_labels.tif").write_bytes((folder / "cells_labels.tif").read_bytes())
    code, out, err = run_cli(capsys, "finetune", tiny_checkpoint, folder, "--out",
                             tmp_path / "p2", "--epochs", "1", "--steps", "1", "--device", "cpu",
                             "--seed", "2")  # (the same round again is refused as a repeat)
    assert code == 0, err
    assert "cells.tif + cells_labels.tif: 1 plane added to the project in " in err
    assert ", the same labels as its earlier correction (3 nuclei)" in err
    assert "not used, no image beside them: lost_labels.tif (copy the image each was made " \
        "from beside it, e.g. lost.tif or lost.png)" in err
    # a plain tifffile.imwrite of 3 planes is read as RGB: the shape error says so
    rgbish = tmp_path / "rgbish"
    rgbish.mkdir()
    planes = np.stack([label_image(n=n) for n in (1, 2, 3)])
    tifffile.imwrite(rgbish / "stack.tif", blobs(planes), photometric="rgb",
                     planarconfig="separate")  # what a plain imwrite of 3 planes gives
    tifffile.imwrite(rgbish / "stack_labels.tif", planes)
    code, out, err = run_cli(capsys, "finetune", tiny_checkpoint, rgbish, "--out",
                             tmp_path / "p3")
    assert code != 0
    assert "stack.tif is read as one RGB colour image (3 samples, 16-bit;" in err
    assert "If it holds 3 planes, its axes are ZYX: give them with --axes." in err
    # a folder with neither pairs nor samples is refused as before
    empty = tmp_path / "nothing"
    empty.mkdir()
    (empty / "cells.tif").write_bytes((folder / "cells.tif").read_bytes())
    code, out, err = run_cli(capsys, "finetune", tiny_checkpoint, empty, "--out", project)
    assert code != 0
    assert "holds images (cells.tif) but no label image beside them: save each one's " \
        "labels as NAME_labels.tif next to NAME.tif" in err
    # labels copied without their image: the missing image is named, not the labels taken
    # for an image
    only_labels = tmp_path / "only labels"
    only_labels.mkdir()
    (only_labels / "cells_labels.tif").write_bytes((folder / "cells_labels.tif").read_bytes())
    for command in (["finetune", tiny_checkpoint, only_labels, "--out", project],
                    ["evaluate", "default", only_labels]):
        code, out, err = run_cli(capsys, *command)
        assert code != 0
        assert "holds label images (cells_labels.tif) but not the images they were made " \
            "from: copy each image beside its labels (cells.tif or cells.png beside " \
            "cells_labels.tif)" in err


# -- the model a round made, named by its folder ------------------------------------------

def test_a_project_a_version_or_a_run_folder_stands_for_its_model(tmp_path, tiny_checkpoint,
                                                                   capsys):
    import shutil

    from napari_nuclei_unet.core.checkpoint import CheckpointError
    from napari_nuclei_unet.core.finetune.versions import resolve_model_folder

    folder = write_pairs(tmp_path / "corrected", (("cells", 3),))
    project = tmp_path / "project"
    with pytest.raises(CheckpointError, match="without a model version yet"):
        (project / "versions").mkdir(parents=True)
        resolve_model_folder(project)
    argv = ["finetune", tiny_checkpoint, folder, "--out", project, "--epochs", "1", "--steps",
            "1", "--device", "cpu"]
    assert run_cli(capsys, *argv)[0] == 0
    v001 = project / "versions" / "v001" / "model.safetensors"
    current = resolve_model_folder(project)
    # the current version: v001 when the round was made current, else the base (v000)
    assert current in (v001, project / "versions" / "v000" / "model.safetensors")
    assert resolve_model_folder(project / "versions" / "v001") == v001
    assert resolve_model_folder("default") == "default"
    assert resolve_model_folder(tiny_checkpoint) == tiny_checkpoint
    run = tmp_path / "run"
    run.mkdir()
    for suffix in (".safetensors", ".json"):
        shutil.copy(tiny_checkpoint.with_suffix(suffix), run / f"best{suffix}")
    assert resolve_model_folder(run) == run / "best.safetensors"
    with pytest.raises(CheckpointError, match="give the project folder itself"):
        resolve_model_folder("latest")
    # a mistyped version, or the folder above the versions, names the choices
    with pytest.raises(CheckpointError, match=r"project has no version v009 \(its versions: "
                                              r"v000, v001\)\. Give the project folder"):
        resolve_model_folder(project / "versions" / "v009")
    with pytest.raises(CheckpointError, match=r"holds a fine-tuning project's versions: give "
                                              r"the project folder .*versions.v001\)"):
        resolve_model_folder(project / "versions")
    # the commands a user tried after the round: predict and export on the folders
    out = tmp_path / "predicted"
    code, _, err = run_cli(capsys, "predict", project, folder / "cells.tif", "--out", out,
                           "--device", "cpu")
    assert code == 0, err
    assert (out / "cells_labels.tif").is_file()
    # and it says which model the folder stood for (the shipped one when no round of
    # the project was made current: a user would not guess that)
    assert f"model: {project} stands for its current version v00" in err
    code, _, err = run_cli(capsys, "predict", project / "versions" / "v001",
                           folder / "cells.tif", "--out", tmp_path / "p1", "--device", "cpu")
    assert code == 0 and f"stands for {v001}" in err
    code, _, err = run_cli(capsys, "predict", "latest", folder / "cells.tif", "--out",
                           tmp_path / "p2")
    assert code != 0 and "give the project folder itself" in err


def test_epoch_lines_without_validation_leave_out_its_columns():
    from napari_nuclei_unet._cli.progress import format_epoch
    from napari_nuclei_unet.core.training import EpochEnd

    fields = dict(epoch=3, epochs=12, train_loss=0.31, is_best=True, checkpoint=None,
                  eta_s=None, elapsed_s=None)
    none = dict(val_loss=None, val_iou=None, best_val_iou=None)
    round_line = format_epoch(EpochEnd(**fields, **none))
    assert round_line.startswith("epoch  3/12  train loss 0.3100")
    assert "val" not in round_line and "best" not in round_line and " - " not in round_line
    assert not round_line.endswith("*")  # "best" means nothing without validation
    trained = format_epoch(EpochEnd(**fields, val_loss=0.29, val_iou=0.812, best_val_iou=0.815))
    assert "val loss 0.2900  val IoU 0.812  best 0.815" in trained and trained.endswith("*")


def test_finetune_asks_for_the_nuclear_channel_of_a_multichannel_pair(tmp_path,
                                                                      tiny_checkpoint, capsys):
    folder = tmp_path / "corrected"
    folder.mkdir()
    labels = label_image(n=3)
    two = np.stack([np.full(labels.shape, 500, np.uint16), blobs(labels)])  # nuclei in 1
    tifffile.imwrite(folder / "cells.tif", two, imagej=True, metadata={"axes": "CYX"})
    tifffile.imwrite(folder / "cells_labels.tif", labels)
    argv = ["finetune", tiny_checkpoint, folder, "--out", tmp_path / "p", "--epochs", "1",
            "--steps", "1", "--device", "cpu"]
    code, out, err = run_cli(capsys, *argv)
    assert code != 0 and "choose the nuclear channel with --channel N (0 to 1)" in err
    code, out, err = run_cli(capsys, *argv, "--channel", "1")
    assert code == 0, err
    assert "cells-plane0" in out
    # grey images beside it, and as images kept aside: used as they are, as predict does
    # with a folder (--channel refused them: CLI check h_cli1, M3)
    tifffile.imwrite(folder / "grey.tif", blobs(labels))
    tifffile.imwrite(folder / "grey_labels.tif", labels)
    aside = tmp_path / "aside"
    aside.mkdir()
    tifffile.imwrite(aside / "other.tif", blobs(label_image(n=2)))
    tifffile.imwrite(aside / "other_labels.tif", label_image(n=2))
    code, out, err = run_cli(capsys, *argv[:4], tmp_path / "p2", *argv[5:], "--channel", "1",
                             "--held-out", aside)
    assert code == 0, err
    assert "note: --channel 1 does not apply to grey.tif, of one channel: it is used as it " \
        "is." in err and "does not apply to other.tif" in err
    assert "cells-plane0" in out and "grey-plane0" in out
    code, out, err = run_cli(capsys, "evaluate", "default", aside, "--channel", "1")
    assert code == 0, err


def test_evaluate_scores_images_beside_their_label_images(tmp_path, capsys):
    import json

    folder = write_pairs(tmp_path / "labelled")
    code, out, err = run_cli(capsys, "evaluate", "default", folder, "--json")
    assert code == 0, err
    images = json.loads(out)["images"]
    assert sorted(row["id"] for row in images) == ["cells-plane0", "more-plane0"]
    assert all(0.0 <= row["iou"] <= 1.0 for row in images)
    # each row names its file and plane: ids lose accents and other letters, and a
    # script could not join the scores to its files (CLI check h_cli3, M7)
    assert sorted((row["file"], row["plane"]) for row in images) == [("cells.tif", 0),
                                                                      ("more.tif", 0)]
    assert "cells.tif + cells_labels.tif: 1 plane read" in err
    # the README's OME-TIFF: predict names its labels embryo_labels.tif
    ome = tmp_path / "ome"
    ome.mkdir()
    tifffile.imwrite(ome / "embryo.ome.tif", blobs(label_image(n=2)), ome=True)
    tifffile.imwrite(ome / "embryo_labels.tif", label_image(n=2))
    code, out, err = run_cli(capsys, "evaluate", "default", ome, "--json", "--split",
                             "validation")
    assert code == 0, err
    assert [row["id"] for row in json.loads(out)["images"]] == ["embryo-plane0"]
    assert "--split validation is ignored" in err
    # a fine-tuning project's corrections are scored too (as --held-out reads them)
    from napari_nuclei_unet.core.finetune import CorrectionStore, add_labelled_image

    add_labelled_image(CorrectionStore(tmp_path / "project"), folder / "cells.tif",
                       folder / "cells_labels.tif")
    code, out, err = run_cli(capsys, "evaluate", "default", tmp_path / "project", "--json")
    assert code == 0, err
    assert [row["id"] for row in json.loads(out)["images"]] == ["cells-plane0"]
    # a missing folder: every form evaluate takes is named
    code, out, err = run_cli(capsys, "evaluate", "default", tmp_path / "nowhere")
    assert code != 0
    assert "a folder of images with their corrected label images" in err
    assert "a fine-tuning project folder" in err and "a DSB2018 dataset" in err


def test_a_refused_training_option_is_named_as_it_was_typed(tmp_path, capsys):
    root = write_dataset(tmp_path / "data", {"a": (24, 32, 2)})
    for argv, flag in ((["--lr", "inf"], "--lr"), (["--crop-size", "-4"], "--crop-size"),
                       (["--seed", "-1"], "--seed")):
        code, out, err = run_cli(capsys, "train", root, "--out", tmp_path / "run", *argv)
        assert code != 0
        assert f"error: {flag} " in err and "TrainConfig." not in err, err


def test_finetune_without_a_usable_correction_says_so_in_its_own_words(tmp_path,
                                                                        tiny_checkpoint,
                                                                        capsys):
    folder = write_sample(tmp_path / "corr", "labelpng", (24, 32), 0)
    Image.fromarray(label_image()).save(folder / "masks" / "labels.png")
    code, out, err = run_cli(capsys, "finetune", tiny_checkpoint, tmp_path / "corr", "--out",
                             tmp_path / "p")
    assert code != 0
    assert "labels.png holds 3 different labels" in err  # the note on the skipped sample
    assert "No corrected image could be used in" in err
    assert "save at least one corrected mask first" not in err  # the Retrain dock's words


def test_a_label_image_without_nuclei_and_a_broken_base_model_are_caught_early(
        tmp_path, tiny_checkpoint, capsys):
    folder = tmp_path / "corrected"
    folder.mkdir()
    labels = label_image(n=3)
    tifffile.imwrite(folder / "cells.tif", blobs(labels))
    tifffile.imwrite(folder / "cells_labels.tif", np.zeros_like(labels))  # a wrong layer
    argv = ["--out", tmp_path / "p", "--epochs", "1", "--steps", "1", "--device", "cpu"]
    code, out, err = run_cli(capsys, "finetune", tiny_checkpoint, folder, *argv)
    assert code == 0, err
    assert "cells_labels.tif holds no nucleus" in err and "Is it the right file?" in err
    # a truncated base model is refused before the corrections are stored
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(tiny_checkpoint.read_bytes()[:200])
    broken.with_suffix(".json").write_text(tiny_checkpoint.with_suffix(".json").read_text())
    code, out, err = run_cli(capsys, "finetune", broken, folder, "--out", tmp_path / "q")
    assert code != 0
    assert not (tmp_path / "q" / "corrections").exists()


def test_finetune_help_states_the_adoption_rule_the_rounds_apply(capsys):
    # the command line imports no core module to build its help: the numbers are written
    # out there, and must follow the rule's (ADOPT_TOLERANCE) when it changes
    import re

    from napari_nuclei_unet.core.finetune import ADOPT_TOLERANCE

    assert main(["finetune", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    rule = re.search(r"gained at least ([\d.]+) mean IoU on the corrected images, lost "
                     r"nothing on the images kept aside \(--held-out\) and no more than "
                     r"([\d.]+) on the built-in regression set", text)
    assert rule, text
    assert float(rule[1]) == -ADOPT_TOLERANCE["corrected"]
    assert ADOPT_TOLERANCE["held_out"] == 0.0
    assert float(rule[2]) == ADOPT_TOLERANCE["regression"]
    # the round's defaults, written out in the help too
    from napari_nuclei_unet.core.finetune.rounds import (
        FINETUNE_DEFAULTS,
        ROUND_OPTIONS,
        steps_for_error,
    )

    epochs = FINETUNE_DEFAULTS["epochs"]
    most = steps_for_error(epochs, [0.0], ROUND_OPTIONS["more_steps"])  # all wrong
    assert f"epochs of fine-tuning (default: {epochs}, up to {most} when" in text
    assert f"steps per epoch (default: {FINETUNE_DEFAULTS['steps_per_epoch']})" in text
    assert f"peak learning rate (default: {FINETUNE_DEFAULTS['learning_rate']:g})" in text


def test_a_binary_mask_beside_an_image_is_numbered_not_read_as_one_nucleus(tmp_path,
                                                                           capsys):
    # Fiji's Convert to Mask gives 0/255: evaluate counted 1 nucleus and scored DSB 0,
    # and a round learned that the nuclei are one (review h_rev15, H5)
    import json

    from napari_nuclei_unet.core.finetune import CorrectionStore, add_labelled_image

    folder = tmp_path / "binary"
    folder.mkdir()
    labels = label_image(n=3)
    tifffile.imwrite(folder / "cells.tif", blobs(labels))
    tifffile.imwrite(folder / "cells_labels.tif", (labels > 0).astype(np.uint8) * 255)
    code, out, err = run_cli(capsys, "evaluate", "default", folder, "--json")
    assert code == 0, err
    assert "1 plane read (3 nuclei)" in err
    assert "cells_labels.tif is a binary mask" in err and "touching nuclei count as one" in err
    assert json.loads(out)["images"][0]["n_true"] == 3
    (correction,) = add_labelled_image(CorrectionStore(tmp_path / "p"), folder / "cells.tif",
                                       folder / "cells_labels.tif")
    assert correction.n_nuclei == 3 and "a binary mask" in correction.note
    # a label image of one nucleus, and one of several numbers, are taken as they are
    tifffile.imwrite(folder / "cells_labels.tif", label_image(n=1) * 7)
    code, out, err = run_cli(capsys, "evaluate", "default", folder)
    assert "1 plane read (1 nucleus)" in err and "binary mask" not in err


def test_finetune_refuses_bad_options_by_name_before_storing_anything(tmp_path,
                                                                       tiny_checkpoint, capsys):
    # they were refused inside the round, as "TrainConfig.epochs must be ...", after the
    # corrections had been stored in --out (review h_rev15, M9)
    folder = write_pairs(tmp_path / "corrected")
    for argv, flag in ((["--epochs", "0"], "--epochs"), (["--lr", "-1"], "--lr"),
                       (["--threads", "0"], "--threads"), (["--steps", "0"], "--steps")):
        out = tmp_path / f"p{flag}"
        code, _, err = run_cli(capsys, "finetune", tiny_checkpoint, folder, "--out", out, *argv)
        assert code != 0
        assert f"error: {flag} " in err and "TrainConfig" not in err, err
        assert not out.exists()


def test_held_out_images_that_are_also_corrections_are_refused(tmp_path, tiny_checkpoint,
                                                               capsys):
    # "kept aside" scores of the very images trained on said nothing (review h_rev15, M10)
    import shutil

    folder = write_pairs(tmp_path / "corrected")
    argv = ["--epochs", "1", "--steps", "1", "--device", "cpu"]
    code, _, err = run_cli(capsys, "finetune", tiny_checkpoint, folder, "--out",
                           tmp_path / "p", "--held-out", folder, *argv)
    assert code != 0
    assert "cells-plane0, more-plane0 of --held-out" in err
    assert "also among the corrections trained on" in err
    renamed = tmp_path / "renamed"  # the same pixels under another name
    renamed.mkdir()
    shutil.copy(folder / "cells.tif", renamed / "copy.tif")
    shutil.copy(folder / "cells_labels.tif", renamed / "copy_labels.tif")
    code, _, err = run_cli(capsys, "finetune", tiny_checkpoint, folder, "--out",
                           tmp_path / "q", "--held-out", renamed, *argv)
    assert code != 0 and "copy-plane0 (the same image as correction cells-plane0) of " \
        "--held-out" in err  # which one, by name (CLI check h_cli1, L10)
    assert not (tmp_path / "q").exists()  # the new project it had filled is gone
    other = write_pairs(tmp_path / "other", counts=(("others", 4),))
    code, out, err = run_cli(capsys, "finetune", tiny_checkpoint, folder, "--out",
                             tmp_path / "r", "--held-out", other, *argv)
    assert code == 0, err
    assert "Images kept aside (1)" in out


def test_ctrl_c_during_a_round_says_what_is_kept(tmp_path, tiny_checkpoint, capsys,
                                                 monkeypatch):
    # it said "saving..." and then "the corrections are unchanged", though nothing of the
    # round is saved and the corrections were in the project (review h_rev15, L10)
    import signal

    from napari_nuclei_unet.core import finetune as module

    real = module.finetune

    def round_then_ctrl_c(*args, **kwargs):
        job = real(*args, **kwargs)
        update = next(job)
        signal.raise_signal(signal.SIGINT)
        yield update
        return (yield from job)

    monkeypatch.setattr(module, "finetune", round_then_ctrl_c)
    folder = write_pairs(tmp_path / "corrected")
    code, out, err = run_cli(capsys, "finetune", tiny_checkpoint, folder, "--out",
                             tmp_path / "p", "--epochs", "2", "--steps", "2", "--device", "cpu")
    assert code == 130, err
    assert "after the current step (nothing of this round is kept)" in err and "saving" not in err
    assert f"The corrections stay in {tmp_path / 'p'} for the next round." in err
    assert (tmp_path / "p" / "corrections").is_dir()


def test_info_summarises_images_beside_labels_and_projects(tmp_path, capsys):
    # info took only the DSB2018 layout, and told a user with one image to "use
    # read_image", a Python function (review h_rev15, M14)
    from napari_nuclei_unet.core.finetune import CorrectionStore, add_labelled_image

    folder = write_pairs(tmp_path / "labelled")
    code, out, err = run_cli(capsys, "info", folder)
    assert code == 0, err
    assert out.startswith(f"Labelled images {folder}\n")
    assert "samples      2" in out and "nuclei       5 (median 2.5 per image" in out
    assert "image sizes  24x32: 2" in out
    add_labelled_image(CorrectionStore(tmp_path / "project"), folder / "cells.tif",
                       folder / "cells_labels.tif")
    code, out, err = run_cli(capsys, "info", tmp_path / "project")
    assert code == 0, err
    assert "samples      1" in out and "nuclei       3 " in out
    code, out, err = run_cli(capsys, "info", folder / "cells.tif")
    assert code == 2
    assert "cells.tif is one image: info summarises a dataset" in err
    assert "nuclei-unet predict default" in err and "read_image" not in err


@pytest.mark.parametrize("form", ["folder", "yaml", "zip"])
def test_a_package_as_the_model_to_fine_tune_says_what_to_give(tmp_path, capsys, form):
    # "not a model checkpoint: choose ... or a bioimage.io model package" of a package,
    # and "choose its rdf.yaml" of the rdf.yaml given (review h_rev17, F9)
    import zipfile

    from _cli_helpers import assert_one_line_error

    package = tmp_path / "pkg"
    package.mkdir()
    (package / "rdf.yaml").write_text("type: model\nformat_version: 0.5.3\n")
    given = {"folder": package, "yaml": package / "rdf.yaml", "zip": tmp_path / "pkg.zip"}
    with zipfile.ZipFile(given["zip"], "w") as archive:
        archive.write(package / "rdf.yaml", "rdf.yaml")
    code, _, err = run_cli(capsys, "finetune", given[form], tmp_path / "corrections", "--out",
                           tmp_path / "project")
    assert_one_line_error(code, err, "is a bioimage.io model package: predict, evaluate and "
                                     "the Model dock use one, but fine-tuning and training "
                                     "(--init) start from a napari-nuclei-unet checkpoint")
    assert "or a bioimage.io model package" not in err and "choose its" not in err
    assert not (tmp_path / "project").exists()


def test_a_round_into_a_project_starts_from_its_model_or_is_refused(tmp_path, tiny_checkpoint,
                                                                    capsys):
    # 'finetune default' into a project at v001 started from the shipped model, was
    # judged against it only, and made current a v003 scoring below v001 (CLI check
    # h_cli1, M2)
    folder = write_pairs(tmp_path / "corrected", (("cells", 3),))
    project = tmp_path / "project"
    fast = ["--epochs", "1", "--steps", "1", "--device", "cpu"]
    assert run_cli(capsys, "finetune", tiny_checkpoint, folder, "--out", project, *fast)[0] == 0
    versions = sorted(p.name for p in (project / "versions").iterdir() if p.is_dir())
    code, _, err = run_cli(capsys, "finetune", "default", folder, "--out", project, *fast)
    assert code == 2 and f"{project} is a fine-tuning project whose model is v00" in err
    assert "Give MODEL latest" in err and "another --out for a new project" in err
    assert sorted(p.name for p in (project / "versions").iterdir() if p.is_dir()) == versions
    for seed, model in enumerate((tiny_checkpoint, "latest", project,  # its own model,
                                  tiny_checkpoint.with_suffix(""),  # however named
                                  tiny_checkpoint.with_suffix(".json")), start=2):
        if model in (tiny_checkpoint, tiny_checkpoint.with_suffix(""),
                     tiny_checkpoint.with_suffix(".json")) and (project / "versions" /
                                                                "v001").is_dir():
            continue  # a round made current: the project's model is v001 now
        # (a seed of its own: the same round again is refused as a repeat)
        code, _, err = run_cli(capsys, "finetune", model, folder, "--out", project, *fast,
                               "--seed", str(seed))
        assert code == 0, err  # (run/best, run/best.json were refused: review h_rev21)


def test_pairs_beside_a_project_kept_in_their_folder_are_added(tmp_path, tiny_checkpoint,
                                                               capsys):
    # finetune ... corrected/ --out corrected/: the next round read the folder as the
    # project it now holds, and a pair added (or labels edited) beside it was left out
    # without a word (CLI check h_cli1, M4)
    import shutil

    folder = write_pairs(tmp_path / "corrected")
    fast = ["--epochs", "1", "--steps", "1", "--device", "cpu"]
    assert run_cli(capsys, "finetune", tiny_checkpoint, folder, "--out", folder, *fast)[0] == 0
    shutil.copy(folder / "cells.tif", folder / "new.tif")
    shutil.copy(folder / "cells_labels.tif", folder / "new_labels.tif")
    code, out, err = run_cli(capsys, "finetune", "latest", folder, "--out", folder, *fast)
    assert code == 0, err
    assert "new.tif + new_labels.tif: 1 plane added to the project in" in err
    assert "3 corrections from project" in err and "new-plane0" in out
    # read from another project's round: said, not used
    code, out, err = run_cli(capsys, "finetune", tiny_checkpoint, folder, "--out",
                             tmp_path / "other", *fast)
    assert code == 0, err
    assert f"3 image + label image pairs in {folder} not used: it is read as the " \
        "fine-tuning project it holds" in err


def test_corrections_the_model_already_segmented_are_named(capsys):
    # a round on the unedited prediction (IoU 0.987 before it) said nothing, where the
    # dock says "not edited" (CLI check h_cli1, L8)
    from types import SimpleNamespace

    from napari_nuclei_unet._cli.finetune import _note_unedited

    rows = [SimpleNamespace(id="cells-plane0", iou_before=0.987),
            SimpleNamespace(id="more-plane0", iou_before=0.71)]
    _note_unedited(rows, quiet=False)
    err = capsys.readouterr().err
    assert "note: the model segmented cells-plane0 almost exactly as corrected" in err
    assert "more-plane0" not in err
    _note_unedited(rows[1:], quiet=False)
    assert capsys.readouterr().err == ""


def test_an_empty_corrections_folder_names_the_three_forms(tmp_path, capsys):
    # only the DSB2018 layout was named (CLI check h_cli1, L9)
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "finetune", "default", tmp_path / "empty", "--out",
                           tmp_path / "p")
    assert code == 2 and "empty is empty: give a folder of images with their corrected " \
        "label images (NAME.tif and NAME_labels.tif), a fine-tuning project folder, or a " \
        "DSB2018 dataset" in err, err


def test_a_pairs_round_into_a_project_uses_its_corrections_and_keeps_a_replaced_one(
        tmp_path, tiny_checkpoint, capsys):
    # a pairs folder's round trained on the project's kept-aside correction and left its
    # other corrections out (review h_rev24, M1); another experiment's cells.tif replaced
    # a correction with no copy kept (M2)
    from napari_nuclei_unet.core.finetune import CorrectionStore

    project = tmp_path / "project"
    fast = ["--epochs", "1", "--steps", "1", "--device", "cpu"]
    first = write_pairs(tmp_path / "first", (("cells", 3), ("more", 2), ("aside", 2)))
    assert run_cli(capsys, "finetune", tiny_checkpoint, first, "--out", project, *fast)[0] == 0
    CorrectionStore(project).set_aside("aside-plane0")
    second = write_pairs(tmp_path / "second", (("cells", 1), ("aside", 2)))
    code, out, err = run_cli(capsys, "finetune", "latest", second, "--out", project, *fast)
    assert code == 0, err
    assert "1 earlier correction of project" in err and "join the round" in err
    assert "1 correction kept aside: scored before and after, not trained on" in err
    assert "cells.tif + cells_labels.tif: 1 plane added to the project in" in err
    assert "replacing its earlier correction (a copy of the earlier one is kept in the " \
        "project's 'removed' folder)" in err
    (copy,) = (project / "removed").iterdir()
    assert copy.name.startswith("cells-plane0-")
    import json

    latest = sorted(p for p in (project / "versions").iterdir() if p.is_dir())[-1]
    info = json.loads((latest / "model.json").read_text())["finetune"]
    trained = {c if isinstance(c, str) else c.get("id") for c in info["corrections"]}
    assert trained == {"cells-plane0", "more-plane0"}, info["corrections"]


def test_a_device_missing_here_is_refused_before_a_project_is_made(tmp_path, capsys):
    # refused inside the round, after the pairs were stored in a new --out (h_rev24, L4)
    folder = write_pairs(tmp_path / "corrected", (("cells", 3),))
    code, _, err = run_cli(capsys, "finetune", "default", folder, "--out", tmp_path / "new",
                           "--device", "cuda:7")
    assert code == 2 and "cuda:7" in err
    assert not (tmp_path / "new").exists()


def test_a_round_running_on_the_project_is_said_before_pairs_are_stored(tmp_path, capsys):
    # the pairs went into the project, then the round lock refused the round (h_rev25, B6)
    from _thread_helpers import held_elsewhere
    from napari_nuclei_unet.core.finetune.rounds import ROUND_LOCK_NAME
    from napari_nuclei_unet.core.locking import exclusive_lock

    project = tmp_path / "project"
    project.mkdir()
    folder = write_pairs(tmp_path / "corrected", (("cells", 3),))
    with held_elsewhere(lambda: exclusive_lock(project / ROUND_LOCK_NAME, owner="napari")):
        code, _, err = run_cli(capsys, "finetune", "default", folder, "--out", project)
    assert code == 2 and "A fine-tuning round is already running on the project" in err
    assert not (project / "corrections").exists()


def test_the_round_lock_is_held_while_the_pairs_are_stored(tmp_path, capsys, monkeypatch):
    # a round that started elsewhere between the check and the round: the pairs replaced
    # a correction of the project, then the round was refused (CLI check h_cli2, M1)
    import threading

    import napari_nuclei_unet._cli.finetune as cli_finetune
    import napari_nuclei_unet.core.finetune as core_finetune
    from napari_nuclei_unet.core.finetune.rounds import RoundRunning, round_lock

    folder = write_pairs(tmp_path / "corrected", (("cells", 3),))
    project = tmp_path / "project"
    store_pairs, elsewhere = cli_finetune._store_pairs, []

    def another() -> None:
        try:
            with round_lock(project):
                elsewhere.append("ran")
        except RoundRunning:
            elsewhere.append("refused")

    def stored_while_another_starts(*args, **kwargs):
        thread = threading.Thread(target=another)
        thread.start()
        thread.join()
        return store_pairs(*args, **kwargs)

    def no_round(*args, **kwargs):
        raise core_finetune.FinetuneError("no round in this test")
        yield  # a generator, as the round is

    monkeypatch.setattr(cli_finetune, "_store_pairs", stored_while_another_starts)
    monkeypatch.setattr(core_finetune, "finetune", no_round)
    code, _, err = run_cli(capsys, "finetune", "default", folder, "--out", project)
    assert code == 2 and "no round in this test" in err
    assert elsewhere == ["refused"]
    # a project this command made and left with nothing but its lock is not left behind
    code, _, err = run_cli(capsys, "finetune", "default", tmp_path / "nothing here", "--out",
                           tmp_path / "new")
    assert code == 2 and not (tmp_path / "new").exists()


def test_train_on_images_beside_label_images_says_to_fine_tune(tmp_path, capsys):
    # "... is not a DSB2018 dataset" and nothing on what to do with the folder that
    # predict, evaluate and finetune read (CLI check h_cli3, M6)
    folder = write_pairs(tmp_path / "pairs")
    code = main(["train", str(folder), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "is not a DSB2018 dataset" in err
    assert "It holds 2 image(s) beside their label images" in err
    assert f"nuclei-unet finetune default {folder} --out PROJECT" in err


def test_scoring_a_folder_of_pairs_skips_a_pair_that_cannot_be_read(tmp_path, capsys):
    # one cut-short label image (or image) refused the whole folder to evaluate and info,
    # where a DSB2018 dataset's bad sample is skipped (README check h_readme1, M2)
    import json

    folder = write_pairs(tmp_path / "labelled")
    whole = (folder / "more_labels.tif").read_bytes()
    (folder / "more_labels.tif").write_bytes(whole[: len(whole) // 2])
    code, out, err = run_cli(capsys, "evaluate", "default", folder, "--json")
    assert code == 0, err
    assert [row["id"] for row in json.loads(out)["images"]] == ["cells-plane0"]
    assert "skipped more.tif + more_labels.tif:" in err and "fresh copy" in err
    # recorded with -q too, where no note is said (review h_rev30, M2)
    code, out, err = run_cli(capsys, "evaluate", "-q", "default", folder, "--json")
    assert code == 0 and err == "", err
    (skipped,) = json.loads(out)["skipped"]
    assert skipped["file"] == "more.tif + more_labels.tif" and "fresh copy" in skipped["reason"]
    # a round's images kept aside are its check: one it cannot read is refused, not
    # left out (the round ran unchecked and was made current: review h_rev30, H2)
    good = write_pairs(tmp_path / "good", (("cells", 3),))
    code, out, err = run_cli(capsys, "finetune", "default", good, "--out", tmp_path / "p0",
                             "--held-out", folder, "--device", "cpu", "--epochs", "1",
                             "--steps", "1")
    assert code == 2 and "more_labels.tif cannot be read as a label image" in err, err
    assert not (tmp_path / "p0" / "versions" / "v001").exists()
    code, out, err = run_cli(capsys, "info", folder)
    assert code == 0, err
    assert "samples      1" in out and "skipped      1" in out
    assert "Skipped pairs (1):\n  more.tif + more_labels.tif: " in out
    # a cut image too; every pair unreadable: said, not an empty table
    (folder / "cells.tif").write_bytes((folder / "cells.tif").read_bytes()[:200])
    code, out, err = run_cli(capsys, "evaluate", "-q", "default", folder)
    assert code == 2 and "could be scored" in err and "cells.tif + cells_labels.tif: " in err, \
        err  # the reasons, which -q did not say as notes
    # fine-tuning keeps refusing a correction it cannot read: it is the user's to fix
    code, out, err = run_cli(capsys, "finetune", "default", folder, "--out", tmp_path / "p",
                             "--device", "cpu")
    assert code == 2 and "replace it with a fresh copy" in err, err


def test_info_takes_the_nuclear_channel_of_a_stack_beside_its_labels(tmp_path, capsys):
    # the error said "choose the nuclear channel with --channel N", which info refused
    # (README check h_readme1, M3)
    folder = tmp_path / "stacks"
    folder.mkdir()
    labels = label_image(n=3)
    two = np.stack([np.full(labels.shape, 500, np.uint16), blobs(labels)])
    tifffile.imwrite(folder / "cells.tif", two, imagej=True, metadata={"axes": "CYX"})
    tifffile.imwrite(folder / "cells_labels.tif", labels)
    code, out, err = run_cli(capsys, "info", folder)
    assert code == 2 and "--channel N (0 to 1)" in err
    code, out, err = run_cli(capsys, "info", folder, "--channel", "1")
    assert code == 0, err
    assert "samples      1" in out and "nuclei       3 " in out


def test_a_round_that_would_only_repeat_a_version_not_made_current_is_refused(
        tmp_path, tiny_checkpoint, capsys, monkeypatch):
    # the README's "a next round, from it" after a round not made current trained the
    # same weights again, 20 s and a version folder each time (README check h_readme1, M5)
    import napari_nuclei_unet.core.finetune.versions as versions_module

    monkeypatch.setattr(versions_module.ModelVersion, "adopted",
                        property(lambda self: self.is_base))  # no round made current
    folder = write_pairs(tmp_path / "corrected")
    project = tmp_path / "project"
    argv = ["finetune", tiny_checkpoint, folder, "--out", project, "--epochs", "1",
            "--steps", "1", "--device", "cpu"]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and "Nothing changed since the round that made v001" in err, err
    assert "change --epochs, --lr or --seed" in err
    assert not (project / "versions" / "v002").exists()
    code, out, err = run_cli(capsys, *argv, "--seed", "3")  # another round: it runs
    assert code == 0, err
    argv[1] = "latest"  # the project's current model is still the one it started from
    code, out, err = run_cli(capsys, *argv, "--seed", "3")
    assert code == 2 and "the round that made v002" in err, err
    (folder / "more_labels.tif").write_bytes((folder / "cells_labels.tif").read_bytes())
    code, out, err = run_cli(capsys, *argv, "--seed", "3")  # a correction changed: it runs
    assert code == 0, err


def test_a_round_not_made_current_says_how_to_use_its_version_anyway(
        tmp_path, tiny_checkpoint, capsys, monkeypatch):
    # the Retrain dock says how ("Use this version"); the command line gave only a path
    # among its lines, where a round on corrections alone (--ratio 1, refused because it
    # forgets) is the version to use for such images (docs/finetuning.md, twentieth check)
    import napari_nuclei_unet.core.finetune.check as check_module

    monkeypatch.setattr(check_module, "adoption",
                        lambda sets, tolerance=None: (False, "Refused for the test."))
    folder = write_pairs(tmp_path / "corrected")
    code, out, err = run_cli(capsys, "finetune", tiny_checkpoint, folder, "--out",
                             tmp_path / "my project", "--epochs", "1", "--steps", "1",
                             "--device", "cpu")
    assert code == 0, err
    assert "(NOT made current)" in out
    checkpoint = tmp_path / "my project" / "versions" / "v001" / "model.safetensors"
    assert checkpoint.is_file()
    assert ("To use it anyway (for images like these corrections), give its file as the "
            f"model: nuclei-unet predict '{checkpoint}' IMAGES --out RESULTS") in out


def test_channel_and_axes_are_refused_for_a_dsb_dataset(tmp_path, capsys):
    # info and evaluate took them there without a word; predict refuses them (review
    # h_rev30, L4)
    dataset = write_dataset(tmp_path / "dsb")
    for command in (["info", dataset], ["evaluate", "default", dataset]):
        code, out, err = run_cli(capsys, *command, "--channel", "1", "--axes", "ZYX")
        assert code == 2 and "--channel and --axes apply to images beside their label " \
            "images" in err and "leave them out" in err, err
    code, out, err = run_cli(capsys, "info", dataset)
    assert code == 0, err


def test_tifffile_log_lines_of_a_damaged_label_image_are_not_printed(tmp_path, caplog):
    # "<tifffile.TiffPages @8> invalid offset to first page 8" on stderr, even under -q,
    # beside the plain words that say the same (review h_rev30, L8)
    from napari_nuclei_unet.core.finetune._common import FinetuneError
    from napari_nuclei_unet.core.finetune.own import _read_labels

    tifffile.imwrite(tmp_path / "l.tif", label_image())
    (tmp_path / "cut.tif").write_bytes((tmp_path / "l.tif").read_bytes()[:8])
    with caplog.at_level("WARNING", logger="tifffile"), pytest.raises(FinetuneError):
        _read_labels(tmp_path / "cut.tif", (24, 32))
    assert not [r for r in caplog.records if r.name == "tifffile"], caplog.text
