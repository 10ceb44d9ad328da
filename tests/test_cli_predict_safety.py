"""``nuclei-unet predict`` never harms the user's files (review h_rev15: H1, M1, M3, M4, M6,
M12, M18, L3, L4), on small synthetic images."""

from __future__ import annotations

import hashlib
import os
import signal

import numpy as np
import pytest
from PIL import Image

tifffile = pytest.importorskip("tifffile")

from _cli_helpers import assert_one_line_error, run_cli  # noqa: E402

SHAPE = (48, 64)





def grey(seed: int, shape=SHAPE) -> np.ndarray:
    """A fluorescence-like 8-bit grey plane with nuclei."""
    from napari_nuclei_unet.core.synthetic import make_synthetic_sample

    image, _ = make_synthetic_sample("fluorescence", shape=shape, seed=seed)
    return image[..., 0].astype(np.uint8)


def write_png(path, seed: int = 0) -> None:
    Image.fromarray(np.dstack([grey(seed)] * 3)).save(path)


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# -- H1: never write over an input --------------------------------------------------------

def test_out_in_the_input_folder_never_replaces_the_images(tmp_path, capsys):
    folder = tmp_path / "same"
    folder.mkdir()
    write_png(folder / "cells.png")
    before = md5(folder / "cells.png")
    for extra in ([], ["--overwrite"]):
        code, _, err = run_cli(capsys, "predict", "default", folder, "--out", folder, *extra)
        assert_one_line_error(code, err, "input image", "cells.png",
                              "--overwrite never replaces an input image")
        assert "edited masks" not in err  # the images are not called masks
        assert md5(folder / "cells.png") == before
        assert sorted(p.name for p in folder.iterdir()) == ["cells.png"]
    # the same folder by another spelling of its path
    other = tmp_path / "same" / ".." / "same"
    code, _, err = run_cli(capsys, "predict", "default", folder / "cells.png", "--out", other,
                           "--overwrite")
    assert_one_line_error(code, err, "input image")
    assert md5(folder / "cells.png") == before


# -- M1: one unreadable file never refuses a whole folder -----------------------------------

def test_unreadable_tiffs_are_skipped_with_a_note_each(tmp_path, capsys):
    folder = tmp_path / "own"
    folder.mkdir()
    tifffile.imwrite(folder / "good.tif", grey(1).astype(np.uint16) * 100)
    (folder / "garbage.tif").write_bytes(b"not an image at all " * 20)
    (folder / "empty.tif").write_bytes(b"")
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "out")
    assert code == 0, err
    assert "skipped garbage.tif: " in err and "skipped empty.tif: " in err
    assert "Wrote 1 label image (1 plane, " in out
    assert "skipped 2 images that could not be read" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "good_labels.tif", "good_measurements.csv"]
    # none readable: one error naming every file
    (folder / "good.tif").unlink()
    code, _, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "none")
    assert_one_line_error(code, err, "None of the 2 image files", "garbage.tif",
                          "empty.tif")
    assert not (tmp_path / "none").exists()


# -- M3: label images and earlier results are not segmented ---------------------------------

def test_label_images_and_results_in_the_input_folder_are_left_out(tmp_path, capsys):
    folder = tmp_path / "corrected"
    folder.mkdir()
    tifffile.imwrite(folder / "cells.tif", grey(2).astype(np.uint16) * 100)
    tifffile.imwrite(folder / "cells_labels.tif", np.zeros(SHAPE, np.uint16))  # a correction
    (folder / "old_labels.ome.zarr").mkdir()  # an earlier result
    (folder / "old_measurements.csv").write_text("label\n")
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "out")
    assert code == 0, err
    assert "Wrote 1 label image" in out
    assert "left out 2 label image(s) or earlier result(s)" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "cells_labels.tif", "cells_measurements.csv"]


# -- M6: masks are readable by the colleagues --------------------------------------------------

@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_png_path_masks_are_written_0644(tmp_path, capsys):
    folder = tmp_path / "pngs"
    folder.mkdir()
    write_png(folder / "cells.png")
    for fmt in ("png", "tif"):
        out = tmp_path / f"out_{fmt}"
        code, _, err = run_cli(capsys, "predict", "default", folder, "--out", out,
                               "--format", fmt)
        assert code == 0, err
        mask = out / f"cells.{fmt}"
        assert mask.stat().st_mode & 0o777 == 0o644
        assert [p.name for p in out.iterdir()] == [mask.name]  # no temporary file left


# -- M18: one threshold rule, one message; one check of --out for both paths -----------------

@pytest.mark.parametrize("value", ["0", "1", "1.5"])
def test_threshold_is_strictly_between_0_and_1_said_once(tmp_path, capsys, value):
    write_png(tmp_path / "cells.png")
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "cells.png", "--out",
                           tmp_path / "out", "--threshold", value)
    assert_one_line_error(code, err, "--threshold must be strictly between 0 and 1",
                          f"got {float(value):g}.")
    assert "(--threshold)" not in err
    assert not (tmp_path / "out").exists()


def test_out_checks_say_the_same_on_both_paths(tmp_path, capsys):
    write_png(tmp_path / "cells.png")
    tifffile.imwrite(tmp_path / "cells.tif", grey(3).astype(np.uint16))
    (tmp_path / "file").write_text("")
    messages = []
    for image in ("cells.png", "cells.tif"):
        code, _, err = run_cli(capsys, "predict", "default", tmp_path / image, "--out",
                               tmp_path / "file")
        assert_one_line_error(code, err, "is a file; give a folder for the results")
        messages.append(err)
    assert messages[0] == messages[1]
    # existing results: refused by the same check, in the same words
    (tmp_path / "o1").mkdir()
    (tmp_path / "o1" / "cells.png").write_bytes(b"mask")
    (tmp_path / "o2").mkdir()
    (tmp_path / "o2" / "cells_labels.tif").write_bytes(b"labels")
    for image, out, what in (("cells.png", "o1", "mask file"),
                             ("cells.tif", "o2", "result file")):
        code, _, err = run_cli(capsys, "predict", "default", tmp_path / image, "--out",
                               tmp_path / out)
        assert_one_line_error(code, err, f"1 {what}(s) already exist in",
                              "add --skip-existing to segment only the images without results")
    # --submission refuses --skip-existing: the refusal does not offer it
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "cells.png", "--out",
                           tmp_path / "o1", "--submission", tmp_path / "sub.csv")
    assert_one_line_error(code, err, "1 mask file(s) already exist in",
                          "Choose another --out, or --overwrite to replace them.")
    assert "--skip-existing" not in err


def test_a_killed_worker_offers_skip_existing_only_where_it_is_taken():
    from napari_nuclei_unet._cli.failures import killed_worker_message

    exc = RuntimeError("worker tcp://127.0.0.1:4000 died")
    assert "with --skip-existing, images already segmented are kept" in \
        killed_worker_message(exc)
    words = killed_worker_message(exc, can_skip=False)
    assert "--skip-existing" not in words and words.endswith("then run it again.")


# -- M12: absurd diameters are refused --------------------------------------------------------

@pytest.mark.parametrize(("value", "words"), [("0.5", "enlarge the images 36 times"),
                                              ("1e9", "shrink the images"),
                                              ("2", "enlarge the images 9 times")])
def test_absurd_diameter_is_refused_with_its_resize_factor(tmp_path, capsys, value, words):
    tifffile.imwrite(tmp_path / "cells.tif", grey(4, (32, 32)).astype(np.uint16))
    write_png(tmp_path / "cells.png")
    for image in ("cells.tif", "cells.png"):
        code, _, err = run_cli(capsys, "predict", "default", tmp_path / image, "--out",
                               tmp_path / "out", "--diameter", value)
        assert_one_line_error(code, err, words, "trained on nuclei of 18 px",
                              "between 3 and 300 px")
        assert not (tmp_path / "out").exists()


def test_plausible_diameters_are_accepted(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "cells.tif", grey(4, (32, 32)).astype(np.uint16))
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "cells.tif", "--out",
                           tmp_path / "out", "--diameter", "20")
    assert code == 0, err


# -- M4: an interrupted predict leaves no partial results -------------------------------------

def test_interrupt_between_labels_and_measurements_leaves_neither(tmp_path, capsys,
                                                                 monkeypatch):
    from napari_nuclei_unet.core import measure

    tifffile.imwrite(tmp_path / "z.tif", np.stack([grey(5), grey(6)]).astype(np.uint16),
                     metadata={"axes": "ZYX"})

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(measure, "write_csv", interrupted)
        code, _, err = run_cli(capsys, "predict", "default", tmp_path / "z.tif", "--out",
                               tmp_path / "out")
    assert code == 130, err
    assert list((tmp_path / "out").iterdir()) == []
    # the rerun is not refused as "edited labels"
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "z.tif", "--out",
                           tmp_path / "out")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "z_labels.tif", "z_measurements.csv"]
    # with --overwrite, an interrupt after the new labels leaves no old CSV beside them
    with monkeypatch.context() as patch:
        patch.setattr(measure, "write_csv", interrupted)
        code, _, err = run_cli(capsys, "predict", "default", tmp_path / "z.tif", "--out",
                               tmp_path / "out", "--overwrite")
    assert code == 130, err
    assert list((tmp_path / "out").iterdir()) == []


def test_interrupt_in_a_large_image_leaves_no_half_written_zarr(tmp_path, capsys,
                                                               monkeypatch):
    from napari_nuclei_unet.core import bigimage

    monkeypatch.setattr(bigimage, "BIG_PIXELS", 100 * 100)
    plane = np.tile(grey(7, (64, 64)), (3, 3)).astype(np.uint16)  # 192 x 192: 4 blocks
    tifffile.imwrite(tmp_path / "slide.tif", plane, tile=(64, 64))
    args = ["predict", "default", tmp_path / "slide.tif", "--out", tmp_path / "out",
            "--block", "128"]
    seen = []

    def interrupted(block, target, y0, x0):
        seen.append(os.path.isdir(tmp_path / "out" / "slide_labels.ome.zarr"))
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(bigimage, "_write_block", interrupted)
        code, _, err = run_cli(capsys, *args)
    assert code == 130, err
    assert seen and seen[0]  # the zarr was being written when the interrupt came
    assert list((tmp_path / "out").iterdir()) == []
    code, _, err = run_cli(capsys, *args)
    assert code == 0, err
    assert (tmp_path / "out" / "slide_labels.ome.zarr").is_dir()


# -- L3: no empty --out folder after an early failure ------------------------------------------

def test_no_out_folder_is_made_when_the_model_or_device_fails(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "cells.tif", grey(8).astype(np.uint16))
    write_png(tmp_path / "cells.png")
    for image in ("cells.tif", "cells.png"):
        for extra in (["--device", "nonsense"], []):
            model = "default" if extra else tmp_path / "missing.safetensors"
            code, _, err = run_cli(capsys, "predict", model, tmp_path / image, "--out",
                                   tmp_path / "out", *extra)
            assert code == 2, err
            assert not (tmp_path / "out").exists(), (image, extra, err)


# -- L4: plain words for a plain file; skipped images counted ----------------------------------

def test_png_skip_note_fits_a_plain_folder_and_the_summary_counts_it(tmp_path, capsys):
    folder = tmp_path / "pngs"
    folder.mkdir()
    write_png(folder / "good.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "out")
    assert code == 0, err
    assert "skipped " in err and "broken.png" in err
    assert "sample folder" not in err
    assert "Wrote 1 mask to " in out and "skipped 1 image that could not be read" in out


def test_a_microscope_makers_file_is_said_to_need_exporting(tmp_path, capsys):
    # ".czi ... may be corrupt or truncated: replace it with a fresh copy" (h_rev15, M15)
    folder = tmp_path / "vendor"
    folder.mkdir()
    (folder / "sample.czi").write_bytes(b"ZISRAWFILE" + bytes(64))
    code, out, err = run_cli(capsys, "predict", "default", folder / "sample.czi", "--out",
                             tmp_path / "out")
    assert_one_line_error(code, err, "sample.czi: Zeiss .czi files are not read here. Export "
                                     "it as OME-TIFF")
    assert "fresh copy" not in err and not (tmp_path / "out").exists()
    (folder / "more.nd2").write_bytes(bytes(64))  # a folder of them: the advice once
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "out")
    assert_one_line_error(code, err, f"No image found in {folder}: it holds only microscope "
                                     "makers' files (more.nd2, sample.czi), which are not read "
                                     "here. Export them as OME-TIFF")
    assert "skipped" not in err and err.count("Export") == 1  # h_rev16, L11
    write_png(folder / "good.png")  # beside an image: skipped with the same words
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "out")
    assert code == 0, err
    assert "skipped sample.czi: Zeiss .czi files are not read here" in err
    tifffile.imwrite(folder / "cells.tif", grey(5))  # a folder of TIFFs too (h_rev16, M5)
    (folder / "cut.tif").write_bytes((folder / "cells.tif").read_bytes()[:300])
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "t")
    assert code == 0, err
    assert "skipped sample.czi: Zeiss .czi files are not read here" in err
    # the summary counts them too (it said "skipped 1": README check h_readme1, L2)
    assert out.strip().endswith("skipped 1 image that could not be read (see the notes "
                                "above); 2 files in a microscope's own format not read "
                                "(see the notes above)"), out


def test_quiet_still_says_why_nothing_could_be_segmented(tmp_path, capsys):
    # -q hid the skip notes and the error said "(2 skipped: see above)" above nothing
    # (review h_rev19, L1)
    folder = tmp_path / "mixed"
    (folder / "s1" / "images").mkdir(parents=True)
    (folder / "s1" / "masks").mkdir()
    (folder / "a.czi").write_bytes(b"ZISRAWFILE" + bytes(64))
    for name in ("x", "y"):  # a sample folder with two images: not one sample
        tifffile.imwrite(folder / "s1" / "images" / f"{name}.tif", grey(3))
    code, out, err = run_cli(capsys, "predict", "-q", "default", folder, "--out",
                             tmp_path / "out")
    assert code == 2 and "(2 skipped: see above)" in err
    assert "skipped a.czi: Zeiss .czi files" in err and "skipped s1: several images" in err


def test_a_folder_named_images_is_not_taken_for_a_dsb_sample(tmp_path, capsys):
    # experiment/images/cells.tif (16-bit) was read as a DSB2018 sample: an 8-bit 0/255
    # mask named after the folder, not labels and measurements (review h_rev15, M8)
    import tifffile

    images = tmp_path / "experiment" / "images"
    images.mkdir(parents=True)
    tifffile.imwrite(images / "cells.tif", grey(1).astype(np.uint16) * 200)
    code, out, err = run_cli(capsys, "predict", "default", tmp_path / "experiment", "--out",
                             tmp_path / "out")
    assert_one_line_error(code, err, f"(your images may be in {images}: give that folder)")
    code, out, err = run_cli(capsys, "predict", "default", images, "--out", tmp_path / "out")
    assert code == 0, err
    assert (tmp_path / "out" / "cells_labels.tif").exists()
    assert not (tmp_path / "out" / "experiment.png").exists()


def test_channel_applies_to_the_files_with_channels_in_a_mixed_folder(tmp_path, capsys):
    # a folder of grey images and one 3-channel file had no command that worked: without
    # --channel the 3-channel file was refused, with it every grey one (review h_rev15, M2)
    import tifffile

    folder = tmp_path / "mixed"
    folder.mkdir()
    tifffile.imwrite(folder / "grey.tif", grey(2).astype(np.uint16) * 100)
    noise = np.zeros(SHAPE, np.uint16)
    tifffile.imwrite(folder / "three.tif", np.stack([noise, grey(3).astype(np.uint16) * 100,
                                                     noise]), imagej=True,
                     metadata={"axes": "CYX"})
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "a")
    assert code == 2 and "three.tif has 3 channels" in err  # which one holds the nuclei?
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "b",
                             "--channel", "1")
    assert code == 0, err
    assert "--channel 1 is used for three.tif (the files with channels; of a colour image, " \
        "one colour), and grey.tif of one channel is segmented as it is" in err
    assert (tmp_path / "b" / "grey_labels.tif").exists()
    assert (tmp_path / "b" / "three_labels.tif").exists()
    # with a cluster, refused before it starts and before --out is made (h_rev16, M2)
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "w",
                             "--channel", "1", "--workers", "1")
    assert code == 2 and "put the files of one channel in a folder of their own" in err
    assert "is used for" not in err and not (tmp_path / "w").exists()
    code, out, err = run_cli(capsys, "predict", "default", folder / "grey.tif", "--out",
                             tmp_path / "c", "--channel", "1")  # one file: a mistake
    assert code == 2 and "Channel 1 does not exist in" in err


def test_axes_apply_to_the_files_they_fit_in_a_mixed_folder(tmp_path, capsys):
    # a folder of a plain TIFF and a zarr without recorded axes had no command that
    # worked: without --axes the zarr was refused, with them the TIFF (review h_rev24, L4)
    import tifffile
    import zarr

    folder = tmp_path / "mixed"
    folder.mkdir()
    tifffile.imwrite(folder / "plain.tif", grey(2).astype(np.uint16) * 100)
    stack = zarr.open(str(folder / "czyx.zarr"), mode="w", shape=(2, 2, *SHAPE),
                      dtype="uint16")
    stack[:] = np.stack([np.stack([grey(3), grey(4)])] * 2).astype(np.uint16) * 100
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "a")
    assert code == 2 and "czyx.zarr does not say what its 4 dimensions are" in err
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "b",
                             "--axes", "czyx", "--channel", "0")
    assert code == 0, err
    assert ("note: --axes CZYX is used for czyx.zarr, and plain.tif of another number of "
            "dimensions or in colour keeps its own axes.") in err
    with tifffile.TiffFile(tmp_path / "b" / "czyx_labels.tif") as tif:
        assert tif.series[0].shape == (2, *SHAPE)  # its Z planes, the nuclei's channel
    assert (tmp_path / "b" / "plain_labels.tif").exists()
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "c",
                             "--axes", "tzcyx")  # fits neither: a mistake, said
    assert code == 2 and "Axes 'TZCYX' have 5 letters but" in err
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "w",
                             "--axes", "czyx", "--channel", "0", "--workers", "1")
    assert code == 2 and "put the files that --axes fits in a folder of their own" in err
    assert not (tmp_path / "w").exists()
    # the same command goes on after a stop with only the plain TIFF left (h_rev26, 6)
    for path in (tmp_path / "b").glob("plain_*"):
        path.unlink()
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "b",
                             "--axes", "czyx", "--channel", "0", "--skip-existing")
    assert code == 0 and (tmp_path / "b" / "plain_labels.tif").exists(), err
    assert "note: --axes CZYX fits none of the files left to do: plain.tif keeps its own " \
        "axes (another number of dimensions, or in colour)." in err


def test_axes_of_planes_leave_a_colour_photo_in_the_folder_as_it_is(tmp_path, capsys):
    # --axes ZYX made an RGB PNG 48 planes of 64 x 3 pixels (review h_rev26, 5)
    from PIL import Image

    folder = tmp_path / "mixed"
    folder.mkdir()
    tifffile.imwrite(folder / "stack.tif", np.stack([grey(2), grey(3)]).astype(np.uint16))
    Image.fromarray(np.stack([grey(4).astype(np.uint8) * 200] * 3, axis=-1)).save(
        folder / "photo.png")
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "o",
                             "--axes", "zyx")
    assert code == 0, err
    assert ("note: --axes ZYX is used for stack.tif, and photo.png of another number of "
            "dimensions or in colour keeps its own axes.") in err
    assert tifffile.imread(tmp_path / "o" / "photo_labels.tif").shape == SHAPE
    assert tifffile.imread(tmp_path / "o" / "stack_labels.tif").shape == (2, *SHAPE)
    # 3 planes written plainly read as colours first (SYX): --axes ZYX, as the note about
    # them asks, makes them planes in a folder too (review h_rev27, 1)
    tifffile.imwrite(folder / "three.tif", np.stack([grey(k) for k in range(3)]).astype(
        np.uint16) * 100)
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "p",
                             "--axes", "zyx")
    assert code == 0, err
    assert tifffile.imread(tmp_path / "p" / "three_labels.tif").shape == (3, *SHAPE)
    assert "photo.png of another number of dimensions or in colour keeps" in err


def test_skip_existing_goes_on_with_the_images_not_done(tmp_path, capsys, monkeypatch):
    # after a Ctrl-C the same command was refused, and --overwrite redid (and replaced)
    # every image (review h_rev15, M5)
    from napari_nuclei_unet.core import measure

    folder = tmp_path / "tiffs"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"c{i}.tif", grey(10 + i).astype(np.uint16) * 100)
    real, calls = measure.write_csv, []

    def third_interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(measure, "write_csv", third_interrupted)
        code, _, err = run_cli(capsys, "predict", "default", folder, "--out", out)
    assert code == 130 and "run the same command with --skip-existing" in err
    # each image's line as it ended: none came before the end, so an interrupted run (or
    # a batch job's log) never said which were done (CLI check h_cli1, L1)
    assert "-> c0_labels.tif" in err and "-> c1_labels.tif" in err and "c2_labels" not in err
    done = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert sorted(done) == ["c0_labels.tif", "c0_measurements.csv", "c1_labels.tif",
                            "c1_measurements.csv"]
    code, out_text, err = run_cli(capsys, "predict", "default", folder, "--out", out,
                                  "--skip-existing")
    assert code == 0, err
    assert "--skip-existing: 2 images with results in" in err and "segmenting the other 1" in err
    assert (out / "c2_labels.tif").exists()
    assert {n: (out / n).stat().st_mtime_ns for n in done} == done  # not redone
    code, out_text, err = run_cli(capsys, "predict", "default", folder, "--out", out,
                                  "--skip-existing")
    assert code == 0 and out_text.startswith("Nothing to do: the results of all 3 images")
    # labels without their CSV (a run writes both or neither: most likely edited, the
    # stale CSV deleted) are left as they are and said: they were replaced without a
    # word (CLI check h_cli1, H1); a CSV without its labels is done again, not refused,
    # and the images never started go on (review h_rev16, H1)
    edited = tifffile.imread(out / "c2_labels.tif")
    edited[:5, :5] = 999
    tifffile.imwrite(out / "c2_labels.tif", edited)
    (out / "c2_measurements.csv").unlink()
    (out / "c1_labels.tif").unlink()
    code, out_text, err = run_cli(capsys, "predict", "default", folder, "--out", out,
                                  "--skip-existing")
    assert code == 0, err
    assert np.array_equal(tifffile.imread(out / "c2_labels.tif"), edited)
    assert not (out / "c2_measurements.csv").exists()
    assert "--skip-existing: 1 image (c2) has labels in" in err and "left as they are" in err
    assert (out / "c1_labels.tif").exists() and "segmenting the other 1" in err
    # with --overwrite too: the other images are segmented again, the edited labels are
    # left as they are (they were replaced with no word: CLI check h_cli2, H3)
    code, out_text, err = run_cli(capsys, "predict", "default", folder, "--out", out,
                                  "--overwrite")
    assert code == 0, err
    assert np.array_equal(tifffile.imread(out / "c2_labels.tif"), edited)
    assert "--overwrite: 1 image (c2) has labels in" in err and "left as they are" in err
    assert (out / "c0_measurements.csv").stat().st_mtime_ns != done["c0_measurements.csv"]
    # a zarr a large image's run left half built (stopped by an error) is not its labels:
    # the image was left out for good (review h_rev21)
    (out / "c1_labels.tif").unlink()
    (out / "c1_labels.ome.zarr").mkdir()
    code, out_text, err = run_cli(capsys, "predict", "default", folder, "--out", out,
                                  "--skip-existing")
    assert code == 0 and (out / "c1_labels.tif").exists(), err
    # an input is never taken for its own result (review h_rev16, M1)
    (tmp_path / "same").mkdir()
    write_png(tmp_path / "same" / "cells.png")
    code, out_text, err = run_cli(capsys, "predict", "default", tmp_path / "same", "--out",
                                  tmp_path / "same", "--skip-existing")
    assert code == 2 and "is where the input images are" in err
    # the PNG path too
    pngs = tmp_path / "pngs"
    pngs.mkdir()
    write_png(pngs / "a.png", 1)
    assert run_cli(capsys, "predict", "default", pngs, "--out", tmp_path / "m")[0] == 0
    write_png(pngs / "b.png", 2)
    code, out_text, err = run_cli(capsys, "predict", "default", pngs, "--out",
                                  tmp_path / "m", "--skip-existing")
    assert code == 0 and "Wrote 1 mask to" in out_text


def test_labels_gives_png_images_the_labels_finetune_reads(tmp_path, capsys):
    # a PNG got <name>.png, a 0/255 mask: the README's predict -> correct -> finetune
    # steps (cells_labels.tif beside cells.png) did not fit PNGs (review h_rev15, M7)
    write_png(tmp_path / "cells.png", 4)
    code, out, err = run_cli(capsys, "predict", "default", tmp_path / "cells.png", "--out",
                             tmp_path / "out", "--labels")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "cells_labels.tif", "cells_measurements.csv"]
    labels = tifffile.imread(tmp_path / "out" / "cells_labels.tif")
    assert labels.shape == SHAPE and 0 < labels.max() < 255  # numbered, not a 0/255 mask


@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_ctrl_c_in_the_main_thread_stops_the_blocks_before_their_folder_goes(
        tmp_path, capsys, monkeypatch, stop):
    # the block threads went on after a Ctrl-C and wrote the zarr again once it had been
    # removed (review h_rev16, H1); here the interrupt reaches the main thread, as a
    # real Ctrl-C does, while blocks are being written. SIGTERM (kill, scancel) left the
    # half-written zarr: it was not handled at all (review h_rev17, F10)
    import _thread
    import time

    from napari_nuclei_unet.core import bigimage

    monkeypatch.setattr(bigimage, "BIG_PIXELS", 100 * 100)
    plane = np.tile(grey(7, (64, 64)), (4, 4)).astype(np.uint16)  # 256 x 256: 4 blocks
    tifffile.imwrite(tmp_path / "slide.tif", plane, tile=(64, 64))
    real, calls = bigimage._write_block, []

    def slow_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1 and stop == "ctrl-c":
            _thread.interrupt_main()  # Ctrl-C, while this block is still being written
        elif len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.3)
        return real(*args, **kwargs)

    monkeypatch.setattr(bigimage, "_write_block", slow_write)
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "slide.tif", "--out",
                           tmp_path / "out", "--block", "128")
    assert code == (130 if stop == "ctrl-c" else 143), err
    assert ("SIGTERM" in err) == (stop == "sigterm")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back
    time.sleep(1.0)  # a block thread still running would write the folder again
    assert list((tmp_path / "out").iterdir()) == []


def test_with_workers_a_damaged_file_is_skipped_and_the_others_go_on(tmp_path, capsys):
    # one damaged plane stopped the batch with the dask worker's traceback (h_rev16, M3)
    folder = tmp_path / "stacks"
    folder.mkdir()
    for name in ("a_good", "b_bad"):
        tifffile.imwrite(folder / f"{name}.tif", np.stack([grey(20), grey(21)]),
                         imagej=True, metadata={"axes": "ZYX"}, compression="zlib")
    with tifffile.TiffFile(folder / "b_bad.tif") as tif:
        offset, count = tif.pages[1].dataoffsets[0], tif.pages[1].databytecounts[0]
    raw = bytearray((folder / "b_bad.tif").read_bytes())
    raw[offset + 4:offset + count - 4] = b"\x55" * (count - 8)
    (folder / "b_bad.tif").write_bytes(bytes(raw))
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "out",
                             "--workers", "1")
    assert code == 0, err
    assert "skipped b_bad.tif" in err and "plane 2 of 2 (Z=1) cannot be decoded" in err
    assert "Traceback" not in err and "Compute Failed" not in err
    assert (tmp_path / "out" / "a_good_labels.tif").exists()
    assert "skipped 1 image that could not be read" in out


def test_local_workers_leave_ctrl_c_to_this_process():
    # a terminal's Ctrl-C reached the worker processes too: each printed a traceback and
    # dask's warnings before the plain "interrupted" line (review h_rev17, L1)
    from napari_nuclei_unet.core.cluster import dask_client

    before = signal.getsignal(signal.SIGINT)
    with dask_client(None, 1) as client:
        assert signal.getsignal(signal.SIGINT) is before  # this process still stops
        ignored = client.run(lambda: signal.getsignal(signal.SIGINT) == signal.SIG_IGN)
    assert list(ignored.values()) == [True]


def test_ctrl_c_before_anything_is_written_does_not_speak_of_images_kept(tmp_path, capsys,
                                                                         monkeypatch):
    # "The images segmented so far are kept: run ... --skip-existing" while the model was
    # still loading (review h_rev17, L11)
    import napari_nuclei_unet._cli.predict as predict

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(predict, "run", interrupted)
    args = ["predict", "default", tmp_path / "in.png", "--out", tmp_path / "out"]
    code, _, err = run_cli(capsys, *args)
    assert code == 130 and "interrupted (Ctrl-C)." in err and "--skip-existing" not in err
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.png").write_bytes(b"x")
    code, _, err = run_cli(capsys, *args)
    assert code == 130 and "run the same command with --skip-existing" in err


def test_a_few_planes_without_recorded_axes_are_said_to_be_read_as_planes(tmp_path, capsys):
    # a plain 2-plane TIFF was segmented as 2 planes with no word (CLI check h_cli2)
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((2, 48, 64), np.uint16))
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "plain.tif", "--out",
                           tmp_path / "out")
    assert code == 0, err
    assert "plain.tif does not record its axes (QYX guessed): its 2 Q entries are segmented " \
        "as 2 planes. If they are channels, give --axes CYX" in err
    with tifffile.TiffWriter(tmp_path / "pages.tif") as tif:  # page by page: IYX
        for _ in range(2):
            tif.write(np.zeros((48, 64), np.uint16), metadata=None)
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "pages.tif", "--out",
                           tmp_path / "out")
    assert code == 0 and "pages.tif does not record its axes (IYX guessed): its 2 I entries "\
        "are segmented as 2 planes. If they are channels, give --axes CYX" in err, err
    tifffile.imwrite(tmp_path / "z.tif", np.zeros((2, 48, 64), np.uint16), imagej=True,
                     metadata={"axes": "ZYX"})
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "z.tif", "--out",
                           tmp_path / "out")
    assert code == 0 and "does not record its axes" not in err
    # --axes other than the file's own: used, and said (they overrode it with no word)
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "z.tif", "--out",
                           tmp_path / "out", "--overwrite", "--axes", "tyx")
    assert code == 0 and "note: --axes TYX is used for z.tif, whose file records ZYX." in err


def test_a_label_image_given_to_predict_is_said_to_look_like_one(tmp_path, capsys):
    # segmented without a word, where the Segment dock says it (CLI check h_cli2)
    labels = np.zeros((64, 80), np.uint16)
    for i, (y, x) in enumerate([(10, 10), (30, 50), (50, 20)], start=1):
        labels[y - 6:y + 6, x - 6:x + 6] = i
    tifffile.imwrite(tmp_path / "nuclei.tif", labels)
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "nuclei.tif", "--out",
                           tmp_path / "out")
    assert code == 0 and "note: nuclei.tif looks like a label image" in err
    tifffile.imwrite(tmp_path / "cells.tif", (labels > 0) * 900 + np.random.default_rng(0)
                     .integers(20, 60, labels.shape))  # a camera's noise
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "cells.tif", "--out",
                           tmp_path / "out2")
    assert code == 0 and "looks like a label image" not in err


def test_a_reader_that_goes_away_does_not_stop_the_work(tmp_path):
    # `predict plate/ --out r 2>&1 | head -3` stopped after the fourth image with exit
    # status 0: the closed pipe was taken for the end (README check h_readme1, H1)
    import subprocess
    import sys

    folder = tmp_path / "plate"
    folder.mkdir()
    for k in range(4):
        tifffile.imwrite(folder / f"img{k}.tif", grey(k).astype(np.uint16) * 40)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as in a shell:
    # stdout to a pipe is buffered, flushed at the end (exit 120 there: review h_rev30, H1)
    process = subprocess.Popen(
        [sys.executable, "-m", "napari_nuclei_unet.cli", "predict", "default", str(folder),
         "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    first = process.stdout.readline()  # as `head -1`: one line read, then the pipe closed
    process.stdout.close()
    assert process.wait(timeout=300) == 0, first
    assert sorted(p.name for p in (tmp_path / "out").glob("*_labels.tif")) == [
        f"img{k}_labels.tif" for k in range(4)]


def test_one_file_found_damaged_while_segmented_is_said_once(tmp_path, capsys):
    # its "skipped" note and the error said the same words twice (h_readme1, L3)
    image = (np.random.default_rng(0).random((256, 256)) * 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "full.tif", image)
    whole = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(whole[: len(whole) * 6 // 10])  # header whole
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "cut.tif", "--out",
                           tmp_path / "out")
    assert_one_line_error(code, err, "cut.tif is not a readable image", "fresh copy")
    assert err.count("is not a readable image") == 1, err


def test_an_image_without_nuclei_is_not_said_to_have_a_measured_size(tmp_path, capsys):
    # "0 nuclei in 1 plane, diameter 18 px (automatic)": nothing was measured (h_readme1, L4)
    tifffile.imwrite(tmp_path / "zeros.tif", np.zeros((2, 64, 64), np.uint16), imagej=True,
                     metadata={"axes": "ZYX"})
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "zeros.tif", "--out",
                           tmp_path / "out")
    assert code == 0, err
    assert "zeros: 0 nuclei in 2 planes, diameter 18 px (the model's own: no nucleus found " \
        "to measure)" in err, err


def test_axes_that_make_planes_a_few_pixels_wide_are_refused(tmp_path, capsys):
    # --axes CYX on an RGB file segmented "images" of 256 x 3 pixels, exit 0 (h_readme1, L1)
    Image.fromarray(np.dstack([grey(1)] * 3)).save(tmp_path / "rgb.tif")
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "rgb.tif", "--out",
                           tmp_path / "out", "--axes", "CYX", "--channel", "0")
    assert_one_line_error(code, err, "Axes CYX for", "make its planes 64 x 3 pixels",
                          "Give the axes in the file's order with --axes (e.g. YXS")
    assert not (tmp_path / "out").exists()
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "rgb.tif", "--out",
                           tmp_path / "out", "--axes", "YXS")
    assert code == 0, err


def test_the_last_words_after_the_reader_went_away_keep_the_exit_status(monkeypatch):
    # a SIGTERM under -q with the reader gone: the error hit the closed pipe and the
    # command exited 1, not 143 (review h_rev30, L3)
    import sys

    from napari_nuclei_unet._cli import info
    from napari_nuclei_unet._cli.stopping import Terminated
    from napari_nuclei_unet.cli import main

    class Gone:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    def terminated(args):
        raise Terminated

    monkeypatch.setattr(info, "run", terminated)
    monkeypatch.setattr(sys, "stdout", Gone())
    monkeypatch.setattr(sys, "stderr", Gone())
    assert main(["-q", "info", "."]) == 143
