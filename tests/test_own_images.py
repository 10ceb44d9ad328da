"""The user's own images through the CLI: real TIFF flavours written by tifffile."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile")

from _cli_helpers import assert_one_line_error, run_cli  # noqa: E402

SHAPE = (64, 80)


@pytest.fixture(scope="module")
def model():
    import torch

    from napari_nuclei_unet.core.checkpoint import load_checkpoint

    torch.set_num_threads(1)
    return load_checkpoint("default").model


def nuclei_plane(seed: int, dtype=np.uint16, scale: float = 200.0) -> np.ndarray:
    """A fluorescence-like grey plane with nuclei (different for every seed)."""
    from napari_nuclei_unet.core.synthetic import make_synthetic_sample

    image, _ = make_synthetic_sample("fluorescence", shape=SHAPE, seed=seed)
    return (image[..., 0].astype(np.float32) * scale).astype(dtype)


def noise_plane(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 300, SHAPE).astype(np.uint16)





def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def expected_mask(model, plane):
    from napari_nuclei_unet.core.segment import segment_image

    return segment_image(model, plane).labels > 0


def check_outputs(out, name, model, planes, labels_shape):
    """Labels TIFF has the non-channel shape; each plane equals its own 2-D segmentation."""
    labels = tifffile.imread(out / f"{name}_labels.tif")
    assert labels.shape == labels_shape
    flat = labels.reshape(-1, *SHAPE)
    assert len(flat) == len(planes)
    for k, plane in enumerate(planes):
        assert np.array_equal(flat[k] > 0, expected_mask(model, plane)), f"plane {k}"
    rows = read_csv(out / f"{name}_measurements.csv")
    assert len(rows) == len(np.unique(labels)) - 1 > 0
    for row in rows:  # every row points at its nucleus, in its plane
        k, label = int(row["plane"]), int(row["label"])
        assert int(row["area"]) == int((flat[k] == label).sum())
    return labels, rows


def test_16bit_tiff(tmp_path, capsys, model):
    plane = nuclei_plane(1)
    tifffile.imwrite(tmp_path / "cells.tif", plane)
    code, out, err = run_cli(capsys, "predict", "default", tmp_path / "cells.tif", "--out",
                             tmp_path / "out")
    assert code == 0, err
    labels, rows = check_outputs(tmp_path / "out", "cells", model, [plane], SHAPE)
    label = int(rows[0]["label"])
    mean = plane[labels == label].mean()
    assert float(rows[0]["mean_intensity_c0"]) == pytest.approx(mean, rel=1e-4)
    assert {"eccentricity", "solidity", "centroid_y", "bbox_x1"} <= set(rows[0])


def test_ome_tiff_zcyx_with_channel(tmp_path, capsys, model):
    planes = [nuclei_plane(10 + z) for z in range(3)]
    data = np.stack([np.stack([noise_plane(z), planes[z]]) for z in range(3)])  # Z, C, Y, X
    tifffile.imwrite(tmp_path / "stack.ome.tif", data, metadata={"axes": "ZCYX"})
    code, out, err = run_cli(capsys, "predict", "default", tmp_path / "stack.ome.tif", "--out",
                             tmp_path / "out", "--channel", "1")
    assert code == 0, err
    _, rows = check_outputs(tmp_path / "out", "stack", model, planes, (3, *SHAPE))
    assert sorted({int(r["z"]) for r in rows}) == [0, 1, 2]
    assert {"mean_intensity_c0", "mean_intensity_c1"} <= set(rows[0])


def test_ome_tiff_tcyx_and_axes_override(tmp_path, capsys, model):
    planes = [nuclei_plane(20 + t) for t in range(2)]
    data = np.stack([np.stack([planes[t], noise_plane(t)]) for t in range(2)])  # T, C, Y, X
    tifffile.imwrite(tmp_path / "movie.ome.tif", data, metadata={"axes": "TCYX"})
    code, out, err = run_cli(capsys, "predict", "default", tmp_path / "movie.ome.tif", "--out",
                             tmp_path / "a", "--channel", "0")
    assert code == 0, err
    check_outputs(tmp_path / "a", "movie", model, planes, (2, *SHAPE))
    # the same pixels without axes metadata (a shaped TIFF): axes given on the command line
    tifffile.imwrite(tmp_path / "raw.tif", data)
    assert tifffile.TiffFile(tmp_path / "raw.tif").series[0].axes != "TCYX"
    code, out, err = run_cli(capsys, "predict", "default", tmp_path / "raw.tif", "--out",
                             tmp_path / "b", "--channel", "0", "--axes", "tcyx")
    assert code == 0, err
    check_outputs(tmp_path / "b", "raw", model, planes, (2, *SHAPE))


def test_imagej_hyperstack(tmp_path, capsys, model):
    planes = [nuclei_plane(30 + k) for k in range(4)]
    data = np.stack(planes).reshape(2, 2, 1, *SHAPE)  # T, Z, C, Y, X
    tifffile.imwrite(tmp_path / "hyper.tif", data, imagej=True,
                     metadata={"axes": "TZCYX"})
    code, out, err = run_cli(capsys, "predict", "default", tmp_path / "hyper.tif", "--out",
                             tmp_path / "out")
    assert code == 0, err
    _, rows = check_outputs(tmp_path / "out", "hyper", model, planes, (2, 2, *SHAPE))
    assert {(int(r["t"]), int(r["z"])) for r in rows} == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_rgb_tiff_is_segmented_as_a_composite(tmp_path, capsys, model):
    from napari_nuclei_unet.core.synthetic import make_synthetic_sample

    image, _ = make_synthetic_sample("histology", shape=SHAPE, seed=4)
    tifffile.imwrite(tmp_path / "he.tif", image, photometric="rgb")
    code, out, err = run_cli(capsys, "predict", "default", tmp_path / "he.tif", "--out",
                             tmp_path / "out")
    assert code == 0, err
    _, rows = check_outputs(tmp_path / "out", "he", model, [image], SHAPE)
    assert {"mean_intensity_c0", "mean_intensity_c1", "mean_intensity_c2"} <= set(rows[0])


def test_float32_tiff(tmp_path, capsys, model):
    plane = nuclei_plane(5, dtype=np.float32, scale=1 / 255)
    tifffile.imwrite(tmp_path / "float.tif", plane)
    code, out, err = run_cli(capsys, "predict", "default", tmp_path / "float.tif", "--out",
                             tmp_path / "out", "--tta")
    assert code == 0, err
    labels = tifffile.imread(tmp_path / "out" / "float_labels.tif")
    assert labels.shape == SHAPE and labels.max() > 0


def test_folder_of_stacks_and_png_with_options(tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", np.stack([nuclei_plane(1), nuclei_plane(2)]),
                     metadata={"axes": "ZYX"})
    Image.fromarray((nuclei_plane(3) // 256).astype(np.uint8)).save(folder / "b.png")
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "out",
                             "--diameter", "20")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "a_labels.tif", "a_measurements.csv", "b_labels.tif", "b_measurements.csv"]
    assert tifffile.imread(tmp_path / "out" / "a_labels.tif").shape == (2, *SHAPE)
    # results are never overwritten silently
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "out",
                             "--diameter", "20")
    assert_one_line_error(code, err, "--overwrite")
    # an earlier run's OME-Zarr of a large "b" is not left beside the new, small result
    # (review h_rev24, L3)
    (tmp_path / "out" / "b_labels.ome.zarr").mkdir()
    code, out, err = run_cli(capsys, "predict", "default", folder, "--out", tmp_path / "out",
                             "--diameter", "20", "--overwrite")
    assert code == 0, err
    assert not (tmp_path / "out" / "b_labels.ome.zarr").exists()


def test_user_mistakes_are_one_line_errors(tmp_path, capsys):
    data = np.stack([np.stack([noise_plane(z), nuclei_plane(z)]) for z in range(2)])
    path = tmp_path / "s.ome.tif"
    tifffile.imwrite(path, data, metadata={"axes": "ZCYX"})
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "predict", "default", path, "--out", out)
    assert_one_line_error(code, err, "2 channels", "--channel")
    code, _, err = run_cli(capsys, "predict", "default", path, "--out", out, "--channel", "2")
    assert_one_line_error(code, err, "Channel 2", "0 to 1")
    code, _, err = run_cli(capsys, "predict", "default", path, "--out", out, "--axes", "ZYX",
                           "--channel", "0")
    assert_one_line_error(code, err, "ZYX", "4 dimensions")
    code, _, err = run_cli(capsys, "predict", "default", path, "--out", out, "--axes", "ZCAB",
                           "--channel", "0")
    assert_one_line_error(code, err, "Y and an X")
    code, _, err = run_cli(capsys, "predict", "default", path, "--out", out, "--channel", "0",
                           "--diameter", "-3")
    assert_one_line_error(code, err, "diameter")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff")
    code, _, err = run_cli(capsys, "predict", "default", bad, "--out", out)
    assert_one_line_error(code, err, "bad.tif")
    assert not out.exists()  # nothing written for a mistake
    # a DSB2018 dataset with an option of the own-image path: said as such
    from conftest import write_dataset

    root = write_dataset(tmp_path / "dsb", {"a": (24, 32, 2)})
    for option in (["--workers", "2"], ["--channel", "0"]):
        code, _, err = run_cli(capsys, "predict", "default", root, "--out", out, *option)
        assert_one_line_error(code, err, "is a DSB2018 dataset", f"{option[0]} works on image "
                              "files and folders of images")
    assert not out.exists()


def test_stack_reader_planes_in_order():
    from napari_nuclei_unet.core.stacks import stack_from_array

    data = np.arange(2 * 3 * 2 * 4 * 5).reshape(2, 3, 2, 4, 5)  # T Z C Y X
    stack = stack_from_array(data, "TZCYX")
    assert stack.plane_axes == "TZ" and stack.n_planes == 6 and stack.n_channels == 2
    assert np.array_equal(stack.plane(4, 1), data[1, 1, 1])
    # channel-last input is reordered lazily, same planes
    moved = stack_from_array(np.moveaxis(data, 2, -1), "TZYXC")
    assert np.array_equal(moved.plane(4, 1), data[1, 1, 1])
    assert moved.labels_shape == (2, 3, 4, 5)


def test_doubtful_rgb_note_names_what_each_front_end_asks_for():
    from napari_nuclei_unet.core.stacks import stack_from_array

    def note(data, axes, words=None):
        return stack_from_array(data, axes, "cells", rgb=True).doubtful_rgb_note("cells", words)

    assert note(np.zeros((8, 8, 3), np.uint8), "YXS") == ""  # a colour photo
    two = note(np.zeros((2, 8, 8, 3), np.uint16), "ZYXS")
    assert two.startswith("cells is read as 2 RGB colour images (3 samples, 16-bit;")
    # the stack's planes are taken: only channels are left to say
    assert two.endswith("If it holds 3 channels each, its axes are ZYXC: give them with "
                        "--axes, and the nuclei's channel (0 to 2) with --channel N.")
    dock = note(np.zeros((3, 8, 8), np.float32), "SYX", {"axes": "in the Axes field",
                                                          "channel": "in the Channel field"})
    assert "32-bit float" in dock and "--" not in dock
    assert "If it holds 3 planes, its axes are ZYX: give them in the Axes field." in dock
    assert "(0 to 2) in the Channel field." in dock


def test_written_labels_and_csv_are_readable_by_others(tmp_path):
    """Outputs go through core.atomic: mode 0644, not mkstemp's 0600, and no temp left."""
    import stat

    from napari_nuclei_unet.core.measure import write_csv
    from napari_nuclei_unet.core.own_images import write_labels_tiff

    labels = np.zeros((20, 20), np.uint16)
    labels[2:6, 2:6] = 1
    tif = write_labels_tiff(tmp_path / "a_labels.tif", labels, "YX")
    table = {"label": np.array([1]), "area": np.array([16.0])}
    out = write_csv(table, tmp_path / "a.csv")
    for path in (tif, out):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a_labels.tif"]
    assert out.read_text().splitlines() == ["label,area", "1,16"]


# -- axes, notes and options the command line used to take silently ---------------------

def test_axes_must_end_in_yx_for_every_front_end(tmp_path, capsys):
    from napari_nuclei_unet.core.stacks import ImageFileError, check_axes, stack_from_array

    tifffile.imwrite(tmp_path / "cells.tif", nuclei_plane(1)[:, :60])  # (64, 60): not square
    out = tmp_path / "out"
    for axes in ("XY", "TCXY"):
        code, _, err = run_cli(capsys, "predict", "default", tmp_path / "cells.tif", "--out",
                               out, "--axes", axes)
        assert_one_line_error(code, err, f"Axes '{axes}'", "name them YX, in that order")
    assert not out.exists()  # before: (60, 64) labels, transposed
    data = np.zeros((2, 8, 6), np.uint8)
    for axes in ("YXZ", "ZXY", "XYC"):
        with pytest.raises(ImageFileError, match="name them YX, in that order"):
            stack_from_array(data, axes)
    # a letter typed twice: its count is the mistake, not the order (CLI check h_cli2)
    with pytest.raises(ImageFileError, match="'ZCYXX' have 5 letters but"):
        stack_from_array(np.zeros((2, 2, 8, 6), np.uint8), "ZCYXX")
    for axes in ("ZYX", "CYX", "YXC", "YXS"):  # a channel axis may follow
        assert check_axes(axes, 3) == axes
    assert stack_from_array(data, "YXC").labels_shape == (2, 8)


def test_axes_the_file_does_not_give_are_asked_for(tmp_path, capsys):
    from napari_nuclei_unet.core.stacks import ImageFileError, open_stack

    data = np.stack([np.stack([nuclei_plane(t), noise_plane(t)]) for t in range(4)])
    tifffile.imwrite(tmp_path / "movie.tif", data.reshape(4, 2, *SHAPE))
    assert tifffile.TiffFile(tmp_path / "movie.tif").series[0].axes == "QQYX"
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "movie.tif", "--out",
                           tmp_path / "out")
    assert_one_line_error(
        code, err, "movie.tif does not say what its 4 dimensions are (tifffile reads them as "
                   "QQYX); give them with --axes, e.g. TCYX")
    assert "distinct letters" not in err
    with pytest.raises(ImageFileError) as info:
        open_stack(tmp_path / "movie.tif")
    assert "give them in the Axes field, e.g. TCYX" in info.value.worded(
        {"channel": "in the Nuclear channel field", "axes": "in the Axes field"})  # the dock
    # axes the user gives are corrected as before
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "movie.tif", "--out",
                           tmp_path / "out", "--axes", "QQYX")
    assert_one_line_error(code, err, "Axes 'QQYX'", "distinct letters")


def test_a_16bit_stack_read_as_rgb_gets_a_note(tmp_path, capsys):
    stack = np.stack([nuclei_plane(k) for k in range(3)])
    # what a plain tifffile.imwrite(path, stack) writes today (with a DeprecationWarning)
    tifffile.imwrite(tmp_path / "zstack.tif", stack, photometric="rgb", planarconfig="separate")
    assert tifffile.TiffFile(tmp_path / "zstack.tif").series[0].axes == "SYX"
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "zstack.tif", "--out",
                           tmp_path / "a")
    assert code == 0, err
    assert ("note: zstack.tif is read as one RGB colour image (3 samples, 16-bit; colour "
            "photos are 8-bit). If it holds 3 planes, its axes are ZYX: give them with --axes. "
            "If it holds 3 channels, its axes are CYX: give them with --axes, and the nuclei's "
            "channel (0 to 2) with --channel N.") in err
    assert tifffile.imread(tmp_path / "a" / "zstack_labels.tif").shape == SHAPE  # unchanged
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "zstack.tif", "--out",
                           tmp_path / "b", "--axes", "ZYX")
    assert code == 0 and "RGB" not in err, err
    assert tifffile.imread(tmp_path / "b" / "zstack_labels.tif").shape == (3, *SHAPE)
    # CYX, as the note says: its channels, one chosen (the RGB composite was segmented
    # again, and --channel not asked for: CLI check h_cli1, M1)
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "zstack.tif", "--out",
                           tmp_path / "c", "--axes", "CYX")
    assert code == 2 and "has 3 channels" in err and "--channel" in err, err
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "zstack.tif", "--out",
                           tmp_path / "c", "--axes", "CYX", "--channel", "1")
    assert code == 0, err
    assert np.array_equal(tifffile.imread(tmp_path / "c" / "zstack_labels.tif") > 0,
                          tifffile.imread(tmp_path / "b" / "zstack_labels.tif")[1] > 0)
    # a colour photo (8-bit RGB) gets no note
    tifffile.imwrite(tmp_path / "he.tif", np.zeros((*SHAPE, 3), np.uint8), photometric="rgb")
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "he.tif", "--out",
                           tmp_path / "c")
    assert code == 0 and "note" not in err, err


def test_each_file_says_the_diameter_it_was_segmented_at(tmp_path, capsys, model):

    tifffile.imwrite(tmp_path / "cells.tif", nuclei_plane(1))
    tifffile.imwrite(tmp_path / "z.tif", np.stack([nuclei_plane(2), nuclei_plane(3)]),
                     metadata={"axes": "ZYX"})
    code, out, err = run_cli(capsys, "predict", "default", tmp_path / "cells.tif", "--out",
                             tmp_path / "a")
    assert code == 0, err
    assert "Wrote 1 label image (1 plane, " in out
    line = next(x for x in err.splitlines() if x.startswith("cells: "))
    assert "in 1 plane, diameter " in line and " px (automatic), " in line, line
    code, out, err = run_cli(capsys, "predict", "default", tmp_path / "z.tif", "--out",
                             tmp_path / "b", "--diameter", "20")
    assert code == 0, err
    assert "in 2 planes, diameter 20 px, " in err
    code, out, err = run_cli(capsys, "predict", "default", tmp_path / "z.tif", "--out",
                             tmp_path / "c")
    assert code == 0, err
    assert "(automatic: median of 2 planes" in err
    code, out, err = run_cli(capsys, "predict", "default", tmp_path / "cells.tif", "--out",
                             tmp_path / "d", "--diameter", "native")
    assert code == 0, err
    assert "native scale (no resizing)" in err and "px (native" not in err


def test_native_diameter_segments_a_stack_without_resizing(tmp_path, capsys, monkeypatch):
    from napari_nuclei_unet.core import segment

    seen = []
    real = segment.segment_image_steps

    def spy(model, image, options=None, **kwargs):
        seen.append(options)
        result = yield from real(model, image, options, **kwargs)
        seen.append(result.scale)
        return result

    monkeypatch.setattr(segment, "segment_image_steps", spy)
    tifffile.imwrite(tmp_path / "cells.tif", nuclei_plane(1))
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "cells.tif", "--out",
                           tmp_path / "a", "--diameter", "native")
    assert code == 0, err
    options, scale = seen
    assert options.diameter == segment.TRAINING_DIAMETER and scale == 1.0


def test_mask_options_with_stacks_are_refused_or_noted(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "cells.tif", nuclei_plane(1))
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "cells.tif", "--out", out,
                           "--instances", "components")
    assert_one_line_error(code, err, "--instances components", "not with TIFF stacks",
                          "Leave it out")
    assert not out.exists()
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "cells.tif", "--out", out,
                           "--instances", "watershed", "--format", "tif")
    assert code == 0, err
    assert ("note: --instances watershed and --format tif are ignored with TIFF stacks, "
            "which always give <name>_labels.tif") in err
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "cells.tif", "--out",
                           tmp_path / "b")
    assert code == 0 and "ignored" not in err, err
    # the default format named explicitly is ignored just the same, and said so
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "cells.tif", "--out",
                           tmp_path / "c", "--format", "png")
    assert code == 0 and "note: --format png is ignored with TIFF stacks" in err, err


def test_a_label_image_is_told_from_a_microscope_image():
    """A label image opened with File > Open was segmented without a word."""
    from napari_nuclei_unet.core.planes import looks_like_labels
    from napari_nuclei_unet.core.synthetic import make_synthetic_sample

    for style, seed in (("fluorescence", 1), ("brightfield", 2), ("histology", 3)):
        image, masks = make_synthetic_sample(style, shape=(128, 160), seed=seed)
        labels = np.zeros(image.shape[:2], np.uint16)
        for k, mask in enumerate(masks, 1):
            labels[mask > 0] = k
        assert looks_like_labels(labels) and looks_like_labels((labels > 0).astype(np.uint8))
        assert not looks_like_labels(image[..., 0]), style  # a photo, even a dim one
        assert not looks_like_labels((image[..., 0] // 16).astype(np.uint16)), style
    assert not looks_like_labels(labels.astype(np.float32))  # not whole numbers
    assert not looks_like_labels(np.zeros((64, 64), np.uint8))  # nothing in it


def test_planes_of_a_stack_of_several_axes_are_named_by_them():
    # a time-lapse of z-stacks added "movie-plane5" to a project (GUI check h_gui16, N6)
    from napari_nuclei_unet.core.stacks import stack_from_array

    movie = stack_from_array(np.zeros((2, 3, 16, 16), np.uint16), "TZYX", "movie")
    assert [movie.plane_name(k) for k in (0, 5)] == ["t0-z0", "t1-z2"]
    stack = stack_from_array(np.zeros((3, 16, 16), np.uint16), "ZYX", "stack")
    assert stack.plane_name(2) == "plane2"  # one axis: as before


def test_the_axes_in_a_message_are_those_the_user_gave(tmp_path, capsys):
    # "--axes YXC" was answered with "has 256 channels (axes CYX)": the axes put in order
    # (CLI check h_cli1, L6)
    tifffile.imwrite(tmp_path / "three.tif", np.zeros((40, 50, 60), np.uint16),
                     photometric="minisblack")
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "three.tif", "--out",
                           tmp_path / "o", "--axes", "YXC")
    assert code == 2 and "has 60 channels (axes YXC)" in err, err


def test_a_label_image_given_as_the_image_gets_a_note(tmp_path, capsys):
    # segmented without a word, where a folder leaves such files out and the dock warns
    # (CLI check h_cli1, L7)
    tifffile.imwrite(tmp_path / "cells_labels.tif", (nuclei_plane(0) > 0).astype(np.uint16))
    code, _, err = run_cli(capsys, "predict", "default", tmp_path / "cells_labels.tif",
                           "--out", tmp_path / "o")
    assert code == 0, err
    assert "note: cells_labels.tif is named as a label image (or an earlier result): it is " \
        "segmented as an image" in err


def test_labels_keep_the_images_pixel_size_and_open_as_a_hyperstack(tmp_path, capsys):
    # the labels lost an OME-TIFF's pixel size, and a TZYX ImageJ stack's came out as a
    # plain TIFF that Fiji opened as 12 flat slices (CLI check h_cli1, L4)
    movie = np.stack([np.stack([nuclei_plane(t + z) for z in range(2)]) for t in range(3)])
    tifffile.imwrite(tmp_path / "movie.tif", movie, imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"axes": "TZYX", "unit": "um", "spacing": 1.5})
    tifffile.imwrite(tmp_path / "cells.ome.tif", nuclei_plane(5), ome=True,
                     metadata={"axes": "YX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25})
    code, _, err = run_cli(capsys, "predict", "default", tmp_path, "--out", tmp_path / "o")
    assert code == 0, err
    line = next(s for s in err.splitlines() if s.startswith("movie:"))
    said = re.search(r"diameter (\d+) px \((\d+\.\d) \u00b5m\) \(automatic", line)
    assert said, line  # in micrometres too (GUI check h_gui40, L10): 0.5 µm pixels
    assert float(said[2]) == pytest.approx(int(said[1]) * 0.5, abs=0.3)
    with tifffile.TiffFile(tmp_path / "o" / "movie_labels.tif") as tif:
        assert tif.is_imagej and tif.series[0].axes == "TZYX"
        assert tif.series[0].shape == movie.shape and tif.imagej_metadata["unit"] == "um"
        assert tif.pages.first.get_resolution() == pytest.approx((2.0, 2.0))
        assert tif.imagej_metadata["spacing"] == pytest.approx(1.5)  # (h_gui41, L4)
    with tifffile.TiffFile(tmp_path / "o" / "cells_labels.tif") as tif:
        x, y = tif.pages.first.get_resolution()
        assert (x, y) == pytest.approx((4.0, 4.0)) or (x, y) == pytest.approx((4e4, 4e4))


def test_label_tiffs_read_back_with_their_shape_and_pixel_size_spelt_either_way(tmp_path):
    # ImageJ drops an axis of one plane: (1, 5, Y, X) labels read back (5, Y, X), and a
    # pair was then refused; an OME unit written with the Greek mu was not understood
    # (review h_rev21)
    from napari_nuclei_unet.core.own_images import write_labels_tiff
    from napari_nuclei_unet.core.stacks import open_stack

    labels = np.arange(5 * 20 * 30).reshape(1, 5, 20, 30) % 7
    write_labels_tiff(tmp_path / "l.tif", labels, "TZYX", (2.0, 2.0))
    assert tifffile.imread(tmp_path / "l.tif").shape == labels.shape
    tifffile.imwrite(tmp_path / "mu.ome.tif", nuclei_plane(1), ome=True,
                     metadata={"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5,
                               "PhysicalSizeXUnit": "\u03bcm", "PhysicalSizeYUnit": "\u03bcm"})
    assert open_stack(tmp_path / "mu.ome.tif").pixels_per_um == pytest.approx((2.0, 2.0))


def test_the_z_spacing_a_file_records_is_read_in_micrometres(tmp_path):
    # saved labels of a Z stack lost its spacing: Fiji measured their depth in pixels
    # (GUI check h_gui41, L4)
    from napari_nuclei_unet.core.stacks import open_stack

    stack = np.stack([nuclei_plane(z) for z in range(3)])
    tifffile.imwrite(tmp_path / "ij.tif", stack, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "ZYX", "unit": "nm", "spacing": 800})
    assert open_stack(tmp_path / "ij.tif").z_spacing_um == pytest.approx(0.8)
    tifffile.imwrite(tmp_path / "z.ome.tif", stack, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 2.0})
    assert open_stack(tmp_path / "z.ome.tif").z_spacing_um == pytest.approx(2.0)
    tifffile.imwrite(tmp_path / "pixel.tif", stack, imagej=True,  # a unit of no length
                     metadata={"axes": "ZYX", "unit": "pixel", "spacing": 3})
    assert open_stack(tmp_path / "pixel.tif").z_spacing_um is None
    tifffile.imwrite(tmp_path / "time.tif", stack, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TYX", "unit": "um", "spacing": 2})  # no Z axis
    assert open_stack(tmp_path / "time.tif").z_spacing_um is None
    assert open_stack(tmp_path / "z.ome.tif", "TYX").z_spacing_um is None
    # as Fiji writes µm: escaped in the file (review h_rev26, 1); a Z unit of its own
    for unit, extra, z in (("\\u00B5m", "", 2.0), ("Micron ", "", 2.0),
                           ("micron", "zunit=nm\n", 0.002)):
        tifffile.imwrite(tmp_path / "fiji.tif", stack, imagej=True, resolution=(4.0, 4.0),
                         metadata={"axes": "ZYX", "unit": "UNIT", "spacing": 2.0})
        description = tifffile.tiffcomment(tmp_path / "fiji.tif")
        tifffile.tiffcomment(tmp_path / "fiji.tif", description.replace(
            "unit=UNIT\n", f"unit={unit}\n{extra}"))
        fiji = open_stack(tmp_path / "fiji.tif")
        assert fiji.z_spacing_um == pytest.approx(z), unit
        assert fiji.pixels_per_um == pytest.approx((4.0, 4.0)), unit
    # kept in the labels without a pixel size too, as OME: ImageJ's hyperstack would
    # claim a pixel of 1 µm
    from napari_nuclei_unet.core.own_images import write_labels_tiff

    write_labels_tiff(tmp_path / "l.tif", stack, "ZYX", None, 2.5)
    assert open_stack(tmp_path / "l.tif").z_spacing_um == pytest.approx(2.5)
    assert open_stack(tmp_path / "l.tif").pixels_per_um is None
    # and in labels that cannot be a 16-bit hyperstack: over 65535 nuclei, or axes out of
    # ImageJ's order (they were written without it)
    many = np.zeros((3, 8, 9), np.uint32)
    many[1, 2, 3] = 70_000
    for axes, labels in (("ZYX", many), ("ZTYX", np.ones((3, 2, 8, 9), np.uint16))):
        write_labels_tiff(tmp_path / "l32.tif", labels, axes, (4.0, 2.0), 2.5)
        back = open_stack(tmp_path / "l32.tif")
        assert back.z_spacing_um == pytest.approx(2.5), axes
        assert back.pixels_per_um == pytest.approx((4.0, 2.0)), axes
        assert np.array_equal(tifffile.imread(tmp_path / "l32.tif"), labels), axes


def test_an_ome_zarrs_pixel_size_and_z_spacing_are_read(tmp_path):
    # its labels kept no pixel size, and the nucleus size was said in pixels only (CLI
    # check h_cli2, M4)
    import zarr

    from napari_nuclei_unet.core.stacks import open_stack

    root = zarr.open_group(str(tmp_path / "stack.ome.zarr"), mode="w")
    root.create_array("0", shape=(3, 2, 32, 40), dtype="uint16")
    root.attrs["multiscales"] = [{
        "version": "0.4",
        "axes": [{"name": "z", "type": "space", "unit": "micrometer"},
                 {"name": "c", "type": "channel"},
                 {"name": "y", "type": "space", "unit": "nanometer"},
                 {"name": "x", "type": "space", "unit": "nanometer"}],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [2.0, 1, 250.0, 500.0]}]}]}]
    stack = open_stack(tmp_path / "stack.ome.zarr")
    assert stack.axes == "ZCYX" and stack.z_spacing_um == pytest.approx(2.0)
    assert stack.pixels_per_um == pytest.approx((2.0, 4.0))  # (x, y) pixels per µm
    # other axes given: the sizes are not known to be theirs
    assert open_stack(tmp_path / "stack.ome.zarr", "CZYX").pixels_per_um is None
