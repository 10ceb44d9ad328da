"""Damaged TIFF stacks: said in plain words, never read as a smaller image.

A stack cut short by an interrupted copy was segmented as its first plane, with exit 0
(review h_rev15, H2); a plane whose compressed data is damaged stopped a batch with
"this is a bug" and no file named (H4).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tifffile

from napari_nuclei_unet.core.stacks import ImageFileError, open_stack


def _stack(path, n=5, **kwargs):
    data = np.random.default_rng(0).integers(0, 4000, (n, 64, 64), np.uint16)
    tifffile.imwrite(path, data, **kwargs)
    return data


@pytest.mark.parametrize("kind", ["imagej", "shaped", "ome"])
def test_a_stack_cut_short_is_refused_not_read_as_fewer_planes(kind, tmp_path, caplog):
    path = tmp_path / ("cut.ome.tif" if kind == "ome" else "cut.tif")
    options = {"imagej": {"imagej": True, "metadata": {"axes": "ZYX"}},
               "shaped": {}, "ome": {"metadata": {"axes": "ZYX"}}}[kind]
    _stack(path, **options)
    assert open_stack(path).n_planes == 5
    data = path.read_bytes()
    path.write_bytes(data[:len(data) - 2 * 64 * 64 * 2 - 100])  # the last two planes gone
    with caplog.at_level(logging.WARNING), pytest.raises(ImageFileError) as caught:
        stack = open_stack(path)
        stack.plane(stack.n_planes - 1)  # (if it opened: reading must fail in words)
    assert str(caught.value).startswith(str(path))
    assert "truncated" in str(caught.value) and "fresh copy" in str(caught.value)
    assert "invalid page offset" not in caplog.text  # tifffile's own words are not printed


def test_a_damaged_plane_names_the_file_and_the_plane(tmp_path):
    path = tmp_path / "z.tif"
    _stack(path, n=3, imagej=True, metadata={"axes": "ZYX"}, compression="zlib")
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[2]
        offset, count = page.dataoffsets[0], page.databytecounts[0]
    raw = bytearray(path.read_bytes())
    raw[offset + 10:offset + count - 10] = b"\x55" * (count - 20)  # its data overwritten
    path.write_bytes(bytes(raw))
    stack = open_stack(path)
    assert stack.plane(0).shape == (64, 64)  # the other planes read as before
    with pytest.raises(ImageFileError) as caught:
        stack.plane(2)
    assert str(caught.value).startswith(f"{path}: its plane 3 of 3 (Z=2) cannot be decoded (")
    assert "replace it with a fresh copy" in str(caught.value)


def test_a_whole_stack_is_read_whole(tmp_path):
    path = tmp_path / "z.tif"
    data = _stack(path, imagej=True, metadata={"axes": "ZYX"})
    stack = open_stack(path)
    assert stack.n_planes == 5
    np.testing.assert_array_equal(stack.plane(4), data[4])


def test_a_microscope_makers_file_is_said_to_be_exported_not_damaged(tmp_path):
    # ".czi ... may be corrupt or truncated: replace it with a fresh copy" (h_rev15, M15)
    path = tmp_path / "sample.czi"
    path.write_bytes(b"ZISRAWFILE" + bytes(100))
    with pytest.raises(ImageFileError) as caught:
        open_stack(path)
    assert str(caught.value).startswith("sample.czi: Zeiss .czi files are not read here. "
                                        "Export it as OME-TIFF")
    assert "fresh copy" not in str(caught.value)


def test_a_threads_capture_of_tifffiles_log_holds_only_its_own_files_words(tmp_path):
    # another thread's truncated file refused a good one, and tifffile's log could stay
    # switched off for the whole process (review h_rev16, M4)
    import threading

    from napari_nuclei_unet.core.tiff_checks import tifffile_log

    logger = logging.getLogger("tifffile")
    started, done = threading.Event(), threading.Event()
    other: list = []

    def other_thread() -> None:
        with tifffile_log() as mine:
            started.set()
            done.wait(10)
            logger.warning("from the other thread")
            other.extend(mine)

    thread = threading.Thread(target=other_thread)
    thread.start()
    started.wait(10)
    with tifffile_log() as captured:
        done.set()
        thread.join(10)
        logger.warning("from this thread")
    assert captured == ["from this thread"] and other == ["from the other thread"]
    assert logger.propagate


def test_an_empty_file_and_a_png_named_tif_are_told_by_their_content(tmp_path):
    # "not a TIFF file: header=b''" and a PNG named .tif refused although it reads
    # (review h_rev15, L2 and M1)
    from PIL import Image

    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    with pytest.raises(ImageFileError, match=r"empty.tif is an empty file \(0 bytes\)"):
        open_stack(empty)
    png = tmp_path / "actually_png.tif"
    Image.fromarray(np.full((20, 30), 7, np.uint8)).save(png, format="PNG")
    stack = open_stack(png)
    assert stack.plane(0).shape == (20, 30) and int(stack.plane(0)[0, 0]) == 7


@pytest.mark.parametrize("size", [2, 4, 7])
def test_a_tiff_cut_within_its_header_is_a_damaged_file_not_a_bug(tmp_path, size):
    # a file of 2-7 bytes ("II*\0" and a little) stopped a whole folder with "this is a
    # bug" (CLI check h_cli2, H2)
    path = tmp_path / "cut.tif"
    path.write_bytes(b"II*\x00\x08\x00\x00\x00"[:size])
    with pytest.raises(ImageFileError, match="is not a readable TIFF file .* truncated"):
        open_stack(path)


def test_a_pyramid_is_read_at_its_full_resolution(tmp_path):
    # a whole slide's OME-TIFF with lower-resolution levels raised AttributeError ('Group'
    # object has no attribute 'shape') at any size (CLI check h_cli2, H1)
    data = np.random.default_rng(0).integers(0, 255, (256, 320), np.uint8)
    with tifffile.TiffWriter(tmp_path / "slide.ome.tif") as tif:
        tif.write(data, subifds=1, tile=(128, 128), metadata={"axes": "YX"})
        tif.write(data[::2, ::2], subfiletype=1, tile=(128, 128))
    stack = open_stack(tmp_path / "slide.ome.tif")
    assert stack.axes == "YX" and stack.data.shape == (256, 320)
    assert np.array_equal(stack.plane(0), data)


def test_a_multi_position_ome_tiff_says_how_many_images_it_holds(tmp_path):
    # only the first position was segmented, without a word (CLI check h_cli2, M2); a
    # pyramid's levels are not positions
    data = np.random.default_rng(0).integers(0, 255, (64, 80), np.uint8)
    with tifffile.TiffWriter(tmp_path / "positions.ome.tif", ome=True) as tif:
        tif.write(data, metadata={"axes": "YX", "Name": "pos1"})
        tif.write(data[::-1], metadata={"axes": "YX", "Name": "pos2"})
    assert open_stack(tmp_path / "positions.ome.tif").other_series == 1
    with tifffile.TiffWriter(tmp_path / "slide.ome.tif") as tif:
        tif.write(np.zeros((256, 256), np.uint8), subifds=1, tile=(128, 128),
                  metadata={"axes": "YX"})
        tif.write(np.zeros((128, 128), np.uint8), subfiletype=1, tile=(128, 128))
    assert open_stack(tmp_path / "slide.ome.tif").other_series == 0


def test_a_damaged_png_gets_the_advice_a_damaged_tiff_gets(tmp_path):
    # "fake.png is not a readable image (cannot identify image file ...)" and no more,
    # where a truncated TIFF says what to do (CLI check h_cli2)
    (tmp_path / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageFileError, match="not a readable image .* replace it with a fresh"):
        open_stack(tmp_path / "fake.png")
