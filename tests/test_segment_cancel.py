"""Cancel within one plane: the stop is checked between the network's tiles and passes.

A stand-in network counts its forward calls, so each test says how many batches of
tiles ran after the stop was asked for (no timing).
"""

from __future__ import annotations

import re
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_nuclei_unet.core.progress import Cancelled, Progress, drive
from napari_nuclei_unet.core.segment import SegmentOptions, segment_image, segment_image_steps

SMALL_TILES = SegmentOptions(tile_size=64, overlap=8)


class CountingNet(torch.nn.Module):
    """Background everywhere (no nucleus), every forward call counted.

    With no nucleus found, the automatic diameter also looks at the plane at half and at
    a quarter size: three network passes.
    """

    def __init__(self, on_call=None) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the model a device
        self.calls = 0
        self.on_call = on_call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.on_call is not None:
            self.on_call(self.calls)
        return torch.full((x.shape[0], 1, *x.shape[2:]), -5.0)


def noise(shape, seed=0, levels=256):
    return np.random.default_rng(seed).integers(0, levels, shape).astype(np.uint8)


def test_tiles_are_reported_and_the_stop_is_checked_between_them():
    from napari_nuclei_unet.core.inference import predict_maps, predict_maps_steps

    net = CountingNet()
    image = noise((256, 256))
    updates = []
    maps = drive(predict_maps_steps(net, image, tile_size=64, overlap=8), updates.append)
    assert net.calls == 13  # 25 tiles, two per batch
    assert updates[0] == Progress("tiles", 0, 25) and updates[-1] == Progress("tiles", 25, 25)
    assert [u.done for u in updates] == [0, *range(2, 25, 2), 25]
    assert np.array_equal(maps, predict_maps(net, image, tile_size=64, overlap=8))
    net.calls = 0
    with pytest.raises(Cancelled):
        drive(predict_maps_steps(net, image, tile_size=64, overlap=8,
                                 should_stop=lambda: net.calls >= 1))
    assert net.calls == 1


def test_segment_image_reports_each_pass_and_its_tiles():
    net = CountingNet()
    updates = []
    result = drive(segment_image_steps(net, noise((256, 256)), SMALL_TILES), updates.append)
    assert result.labels.max() == 0 and result.labels.shape == (256, 256)
    starts = [u for u in updates if u.done == 0]
    assert [(u.total, u.message) for u in starts] == [
        (25, "step 1, image at full size"), (9, "step 2, image at 50 % size"),
        (1, "step 3, image at 25 % size")]
    assert updates[-1] == Progress("tiles", 1, 1, "step 3, image at 25 % size")
    assert net.calls == 13 + 5 + 1 == len(updates) - len(starts)
    # test-time augmentation: the four flips are one pass of four times the tiles
    updates.clear()
    drive(segment_image_steps(net, noise((128, 128)),
                              SegmentOptions(tile_size=64, overlap=8, tta=True)),
          updates.append)
    # 128 px: 9 tiles at full size, one at half and at a quarter size; four flips each
    assert [u.total for u in updates if u.done == 0] == [36, 4, 4]
    assert [u.done for u in updates if u.message.startswith("step 1,")][-1] == 36


@pytest.mark.parametrize("case", ["automatic", "diameter given", "dim", "tta"])
def test_a_stop_after_the_first_batch_of_tiles_ends_the_plane(case):
    image, options = noise((256, 256)), SMALL_TILES
    if case == "diameter given":
        options = SegmentOptions(diameter=30.0, tile_size=64, overlap=8)
    elif case == "dim":
        image = noise((256, 256), levels=4)  # four grey levels: tried smoothed, several passes
    elif case == "tta":
        options = SegmentOptions(tta=True, tile_size=64, overlap=8)
    net = CountingNet()
    with pytest.raises(Cancelled):
        segment_image(net, image, options, should_stop=lambda: net.calls >= 1)
    assert net.calls == 1
    # without a stop, the same call runs to the end (and asks every batch)
    net.calls, asked = 0, []
    segment_image(net, image, options, should_stop=lambda: asked.append(1) or False)
    assert net.calls > 1 and len(asked) > net.calls


def test_a_stop_between_the_passes_of_the_automatic_diameter():
    net = CountingNet()  # one tile per pass: passes at full, half and quarter size
    with pytest.raises(Cancelled):
        segment_image(net, noise((200, 200)), should_stop=lambda: net.calls >= 1)
    assert net.calls == 1
    net.calls = 0
    segment_image(net, noise((200, 200)))
    assert net.calls == 3


def test_stopping_one_big_plane_ends_the_stack_job_after_one_batch():
    from napari_nuclei_unet.core.own_images import segment_stack
    from napari_nuclei_unet.core.stacks import stack_from_array

    net = CountingNet()
    stack = stack_from_array(noise((256, 256)), "YX", "big")
    updates = []
    result = drive(segment_stack(net, stack, SMALL_TILES, should_stop=lambda: net.calls >= 1),
                   updates.append)
    assert net.calls == 1  # not the 19 batches of the plane's three passes
    assert result.cancelled and result.planes == [] and result.labels.max() == 0
    # the tiles show as movement within the plane, in its progress messages
    assert updates[0] == Progress("segment", 0, 1, "big")
    assert updates[1] == Progress("segment", 0, 1,
                                  "the image: tile 0 of 25 (step 1, image at full size)")
    net.calls = 0
    done = drive(segment_stack(net, stack, SMALL_TILES))
    assert not done.cancelled and done.planes == [0] and net.calls == 19
    assert done.labels.dtype == np.uint16  # napari draws it without mapping each pixel


def test_a_stacks_progress_names_planes_as_the_table_does_and_says_the_flips():
    # "plane 3/5" spoke of plane2, and test-time augmentation's flips read as tiles
    # (GUI check h_gui40, L2, L3)
    from dataclasses import replace

    from napari_nuclei_unet.core.own_images import segment_stack
    from napari_nuclei_unet.core.stacks import stack_from_array

    net = CountingNet()
    stack = stack_from_array(np.stack([noise((64, 64), seed=s) for s in range(3)]), "ZYX", "zs")
    updates = []
    drive(segment_stack(net, stack, replace(SMALL_TILES, tta=True, diameter=17.0),
                        planes=[2]), updates.append)
    texts = [u.message for u in updates]
    assert any(t.startswith("plane2 of 3 planes: tile ") for t in texts), texts
    assert any("each tile flipped 4 ways" in t for t in texts), texts
    assert texts[-1].startswith("plane2 of 3 planes: ") and texts[-1].endswith(" nuclei")


def test_a_stack_whose_labels_need_more_than_uint16_keeps_uint32():
    from napari_nuclei_unet.core.own_images import _finish
    from napari_nuclei_unet.widgets._own_layers import PAINT_ROOM

    labels = np.zeros((2, 4, 4), np.uint32)
    labels[1, 0, 0] = 65536 - PAINT_ROOM  # a stack's planes are numbered on
    done = _finish(labels, [], [0, 1], ([], []), cancelled=False, room=PAINT_ROOM)
    assert done.labels.dtype == np.uint32
    labels[1, 0, 0] -= 1
    done = _finish(labels, [], [0, 1], ([], []), cancelled=False, room=PAINT_ROOM)
    assert done.labels.dtype == np.uint16


def test_a_stack_stopped_mid_plane_keeps_the_planes_done():
    from napari_nuclei_unet.core.own_images import segment_stack
    from napari_nuclei_unet.core.stacks import stack_from_array

    net = CountingNet()  # 19 batches per plane
    stack = stack_from_array(np.stack([noise((256, 256), k) for k in range(3)]), "ZYX", "z")
    result = drive(segment_stack(net, stack, SMALL_TILES, should_stop=lambda: net.calls >= 25))
    assert result.cancelled and result.planes == [0] and net.calls == 25


def test_layer_job_cancelled_before_any_plane_says_nothing_was_kept():
    from napari_nuclei_unet.core.stacks import stack_from_array
    from napari_nuclei_unet.widgets._own_layers import segment_layer_job

    net = CountingNet()
    stack = stack_from_array(noise((256, 256)), "YX", "big")
    result = drive(segment_layer_job(net, stack, SMALL_TILES, channel=None, planes=None,
                                     big=False, should_stop=lambda: net.calls >= 1))
    assert result.cancelled and result.labels is None
    assert result.message == "Cancelled before the plane was finished: no labels were kept."


# -- large images, block by block ----------------------------------------------------

BLOCK, HALO = 128, 32  # a 256 x 256 plane: 2 x 2 blocks of 160 px with their halo
#: A given diameter and the out-of-focus rule off: no sample block is measured or judged
#: before the blocks (core.bigsize).
SET_SIZE = SegmentOptions(tile_size=64, overlap=8, diameter=18.0, focus=False)


def test_a_block_being_segmented_stops_between_its_tiles(tmp_path):
    from napari_nuclei_unet.core.bigimage import segment_large

    asked = threading.Event()

    def wait_for_the_stop(calls: int) -> None:
        if calls == 1:  # the first block's first batch: hold it until the stop is asked
            assert asked.wait(30), "the stop was never asked for"

    def stop() -> bool:
        if net.calls >= 1:
            asked.set()
            return True
        return False

    net = CountingNet(wait_for_the_stop)
    result = drive(segment_large(net, noise((256, 256)), tmp_path / "s.zarr", SET_SIZE,
                                 block=BLOCK, halo=HALO, should_stop=stop))
    assert result.cancelled and result.blocks_done == 0 and result.n_blocks == 4
    assert not (tmp_path / "s.zarr").exists()
    # a block takes 5 batches (one pass at the size given); at most one ran after the
    # stop (the one under way while the stop reached the block's thread)
    assert net.calls <= 2
    net.calls, net.on_call = 0, None
    drive(segment_large(net, noise((256, 256)), tmp_path / "all.zarr", SET_SIZE,
                        block=BLOCK, halo=HALO))
    assert net.calls == 4 * 5


def test_a_stop_while_the_nucleus_size_is_measured_leaves_nothing(tmp_path):
    """The automatic diameter is measured on sample blocks first; a stop there is a
    cancelled result with no block done, and no folder."""
    from napari_nuclei_unet.core.bigimage import segment_large

    net = CountingNet()
    updates = []
    result = drive(segment_large(net, noise((256, 256)), tmp_path / "s.zarr", SMALL_TILES,
                                 block=BLOCK, halo=HALO, should_stop=lambda: net.calls >= 2),
                   updates.append)
    assert result.cancelled and result.blocks_done == 0 and net.calls == 2
    assert not (tmp_path / "s.zarr").exists()
    assert "measuring the nucleus size" in [u.message for u in updates]
    # a given diameter: the windows judge the focus, and a stop there is the same
    updates.clear()
    net.calls = 0
    result = drive(segment_large(net, noise((256, 256)), tmp_path / "g.zarr",
                                 replace(SET_SIZE, focus=True), block=BLOCK, halo=HALO,
                                 should_stop=lambda: net.calls >= 2), updates.append)
    assert result.cancelled and result.blocks_done == 0 and net.calls == 2
    assert not (tmp_path / "g.zarr").exists()
    assert "judging the focus" in [u.message for u in updates]


def test_a_cancelled_large_image_says_how_many_blocks_were_done(tmp_path, monkeypatch):
    from napari_nuclei_unet.core import bigimage
    from napari_nuclei_unet.core.stacks import stack_from_array
    from napari_nuclei_unet.widgets._own_layers import segment_layer_job

    measured = []
    real = bigimage._block_stats

    def counted(*args, **kwargs):
        table = real(*args, **kwargs)
        measured.append(1)
        return table

    monkeypatch.setattr(bigimage, "_block_stats", counted)
    held = threading.Event()

    def hold_the_fourth_pass(calls: int) -> None:  # one pass per block (size given)
        if calls == 4:
            assert held.wait(30), "the stop was never asked for"

    def stop() -> bool:
        if net.calls >= 4:
            held.set()
            return True
        return False

    net = CountingNet(hold_the_fourth_pass)
    stack = stack_from_array(noise((1900, 1900)), "YX", "slide")  # 3 x 3 blocks of 896 px
    result = drive(segment_layer_job(net, stack, SegmentOptions(diameter=18.0, focus=False),
                                     channel=None, planes=None, big=True, should_stop=stop))
    assert result.cancelled and result.labels is None
    found = re.fullmatch(r"Cancelled after (\d+) of (\d+) blocks\. A large image's labels are "
                         r"kept only when all its blocks are done, so none were kept\.",
                         result.message)
    assert found, result.message
    assert int(found[1]) == len(measured) < int(found[2])


def test_a_large_image_stopped_while_its_blocks_are_joined_says_so():
    from napari_nuclei_unet.widgets._segment_big import _cancel_message

    assert _cancel_message(25, 25) == (
        "Cancelled while the 25 blocks were being joined. A large image's labels are kept "
        "only once its blocks are joined, so none were kept.")
