"""A result whose corrections went into a project with Add plane is not kept as unsaved.

Results added to a project were written to ``unsaved-labels/`` when napari closed, and
every later session offered to add them again (GUI check h_gui23, M3). A result counts
as saved once each stroke painted on it is in a project (its plane, or the region added
of a large plane) or in a file.
"""

from __future__ import annotations

import numpy as np
import pytest

from _widget_helpers import disc_labels, segment_dock, wait_worker

pytestmark = pytest.mark.gui

SHAPE = (48, 64)


def disc_image(centres=((12, 12), (30, 40))) -> np.ndarray:
    return (disc_labels(SHAPE, centres) > 0).astype(np.uint16) * 900 + 50


@pytest.fixture
def dock(make_napari_viewer):
    return segment_dock(make_napari_viewer())


def segment_cells(qtbot, viewer, widget):
    """A 2-D image "cells" segmented; its result layer."""
    viewer.add_image(disc_image(), name="cells")
    widget.image.value = viewer.layers["cells"]
    wait_worker(qtbot, widget.segment())
    return widget.result_layer


def segment_stack_z(qtbot, viewer, widget):
    """A 2-plane stack "z" segmented; its result layer."""
    viewer.add_image(np.stack([disc_image(), disc_image(((20, 20),))]), name="z")
    widget.axes.value = "ZYX"
    widget.image.value = viewer.layers["z"]
    wait_worker(qtbot, widget.segment())
    return widget.result_layer


def kept():
    from napari_nuclei_unet.widgets._unsaved_labels import unsaved_dir

    return sorted(p.name for p in unsaved_dir().glob("*.tif"))


def test_a_painted_plane_added_is_not_kept_but_a_stroke_after_it_is(dock, qtbot, tmp_path):
    viewer, widget = dock
    layer = segment_cells(qtbot, viewer, widget)
    layer.paint((40, 60), 50)
    wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    viewer.layers.remove(layer)  # as napari closing does
    assert kept() == []
    viewer.layers.selection.active = viewer.layers["cells"]
    wait_worker(qtbot, widget.segment())
    layer = widget.result_layer
    layer.paint((40, 60), 50)
    wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    layer.paint((5, 50), 51)  # after the add: not in the project
    viewer.layers.remove(layer)
    assert [name[:13] for name in kept()] == ["cells_labels-"]


def test_a_stack_is_saved_once_each_painted_plane_is_added(dock, qtbot, tmp_path):
    viewer, widget = dock
    layer = segment_stack_z(qtbot, viewer, widget)
    for plane in (0, 1):
        viewer.dims.set_current_step(0, plane)
        layer.paint((plane, 40, 60), 50 + plane)
    viewer.dims.set_current_step(0, 0)
    wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    assert layer.metadata["nuclei_unet_unsaved"] is True  # plane 1's stroke is not in
    viewer.dims.set_current_step(0, 1)
    wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    assert layer.metadata["nuclei_unet_unsaved"] is False
    viewer.layers.remove(layer)
    assert kept() == []


def test_strokes_outside_the_region_added_of_a_large_plane_stay_unsaved():
    from types import SimpleNamespace

    from napari_nuclei_unet.widgets._unsaved_labels import (
        PAINTED_KEY,
        UNSAVED_KEY,
        _with_box,
        added,
        painted_boxes,
    )

    class Atom(tuple):  # napari's masked atom: its bounding box as slices
        slice_key = (slice(3, 4), slice(100, 140), slice(200, 230))

    # napari's two forms of edits: a bounding box, or index arrays (a fill, say)
    assert painted_boxes([Atom()], set()) == [((3,), (100, 140, 200, 230))]
    indices = (np.array([0, 0, 2]), np.array([0, 0, 0]), np.array([5, 9, 1]),
               np.array([7, 2, 4]))
    assert painted_boxes([(indices, None, None)], {1}) == [((0,), (5, 10, 2, 8)),
                                                          ((2,), (1, 2, 4, 5))]
    # a channel after X (ZYXC: the result layer is (Z, Y, X, 1)), h_rev12 L2
    zyxc = (np.array([1, 1]), np.array([5, 9]), np.array([7, 2]), np.array([0, 0]))
    assert painted_boxes([(zyxc, None, None)], {3}) == [((1,), (5, 10, 2, 8))]
    assert painted_boxes([object()], set()) == [(None, (0, 2**62, 0, 2**62))]
    # two strokes far apart stay two boxes; overlapping ones join
    boxes = _with_box(_with_box([], (100, 140, 200, 230)), (3000, 3010, 3000, 3010))
    assert boxes == [(100, 140, 200, 230), (3000, 3010, 3000, 3010)]
    assert _with_box(boxes, (130, 150, 100, 210)) == [(3000, 3010, 3000, 3010),
                                                     (100, 150, 100, 230)]
    layer = SimpleNamespace(metadata={UNSAVED_KEY: "token", PAINTED_KEY: {(): boxes}})
    added(layer, "token", (), (slice(0, 1024), slice(512, 1536)))  # both are outside it
    assert layer.metadata[UNSAVED_KEY] is True
    layer.metadata[UNSAVED_KEY] = "token2"
    added(layer, "token2", (), (slice(0, 1024), slice(0, 1024)))  # the first one's region
    assert layer.metadata[UNSAVED_KEY] is True
    assert layer.metadata[PAINTED_KEY] == {(): [(3000, 3010, 3000, 3010)]}
    layer.metadata[UNSAVED_KEY] = "token3"
    added(layer, "token3", (), (slice(2560, 3584), slice(2560, 3584)))  # the second's
    assert layer.metadata[UNSAVED_KEY] is False and layer.metadata[PAINTED_KEY] == {}
    layer.metadata.update({UNSAVED_KEY: True, PAINTED_KEY: {(): [(1, 2, 1, 2)]}})
    added(layer, "token4", (), None)  # painted during the add: its token is gone
    assert layer.metadata[UNSAVED_KEY] is True


def test_a_refused_or_failed_add_leaves_the_result_as_it_was(dock, qtbot, tmp_path,
                                                             monkeypatch):
    # a second press while the first add ran, or an add that failed, left a result
    # never painted marked unsaved: kept on closing, and offered again (review h_rev12 M1)
    import napari_nuclei_unet.widgets._segment_outputs as outputs

    viewer, widget = dock
    layer = segment_cells(qtbot, viewer, widget)
    first = widget.add_to_project(tmp_path / "p")
    assert widget.add_to_project(tmp_path / "p") is None  # refused: one at a time
    wait_worker(qtbot, first)
    assert layer.metadata["nuclei_unet_unsaved"] is False
    layer.paint((40, 60), 50)

    def broken(*_args, **_kwargs):
        raise OSError("the disk is full")

    monkeypatch.setattr(outputs, "_add_plane", broken)
    wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    assert layer.metadata["nuclei_unet_unsaved"] is True  # its stroke is in no project
    assert "the disk is full" in widget.status.text()


def test_add_plane_adds_the_result_the_dock_shows_not_a_newer_one(dock, qtbot, tmp_path):
    # the image's newest result was added in place of the corrected one the dock showed,
    # once another layer was selected (review h_rev12, H1)
    from napari_nuclei_unet.core.finetune import CorrectionStore

    viewer, widget = dock
    corrected = segment_cells(qtbot, viewer, widget)
    corrected.paint((40, 60), 77)
    wait_worker(qtbot, widget.segment())  # the corrected layer is kept: a new one
    assert widget.result_layer is not corrected
    viewer.layers.selection.active = corrected  # the dock follows it
    viewer.layers.selection.active = viewer.layers["cells"]  # e.g. to set its contrast
    wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    (sample,) = CorrectionStore(tmp_path / "p").load_samples(["cells-plane0"])
    assert sample.labels[40, 60] > 0 and np.array_equal(
        sample.labels > 0, np.asarray(corrected.data) > 0)


def test_a_kept_stack_file_stays_offered_until_each_plane_is_added(dock, qtbot, tmp_path):
    # adding one plane of it set the whole file aside: its other corrected planes were
    # never offered again (GUI check h_gui24, N2)
    import tifffile

    from napari_nuclei_unet.widgets._unsaved_labels import kept_words, unsaved_dir

    viewer, widget = dock
    result = segment_stack_z(qtbot, viewer, widget)
    result.paint((1, 40, 60), 50)
    viewer.layers.remove(result)
    (kept,) = unsaved_dir().glob("z_labels-*.tif")
    opened = viewer.add_labels(tifffile.imread(kept), name=kept.stem)
    viewer.layers.selection.active = opened
    viewer.dims.set_current_step(0, 0)
    wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    assert kept.exists()  # plane 1 is not in the project
    assert "(plane0 added already; add the other planes you corrected)" in kept_words("z")
    viewer.dims.set_current_step(0, 1)
    assert widget.status.text().endswith("as z's plane1 correction. Added already: plane0.")
    wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    assert not kept.exists() and (unsaved_dir() / "added" / kept.name).exists()
    assert kept_words("z") == ""


def test_choosing_an_image_selects_and_shows_its_result(dock, qtbot, tmp_path):
    # with B's result still selected, the dock showed A's result but Add plane added
    # B's (GUI check h_gui24, N1); an opened image was "to choose" (N4)
    from napari_nuclei_unet.core.finetune import CorrectionStore

    viewer, widget = dock
    segment_cells(qtbot, viewer, widget)
    a = viewer.layers["cells labels"]  # (the dock's are napari's proxies of the layers)
    viewer.add_image(disc_image(((20, 20),)), name="b")
    assert widget.status.text().startswith("b has no result yet")
    wait_worker(qtbot, widget.segment())
    assert viewer.layers.selection.active is viewer.layers["b labels"] and not a.visible
    widget.image.value = viewer.layers["cells"]
    assert viewer.layers.selection.active is a and a.visible
    wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    assert CorrectionStore(tmp_path / "p").ids() == ["cells-plane0"]


def test_an_undo_after_a_save_counts_as_an_edit_and_is_kept(dock, qtbot, tmp_path):
    # napari's Ctrl+Z changes the labels without a paint event: a stroke taken back
    # after Add plane left the result "saved", and closing napari kept nothing of it
    from napari_nuclei_unet.widgets._segment_outputs import EDITED_SINCE, EDITED_SINCE_ADDED
    from napari_nuclei_unet.widgets._unsaved_labels import UNSAVED_KEY

    viewer, widget = dock
    layer = segment_cells(qtbot, viewer, widget)
    before = np.asarray(layer.data).copy()
    viewer.layers.selection.active = layer
    keys = viewer.window._qt_viewer._key_map_handler  # the canvas's own key handling
    keys.press_key("Control-Z")  # nothing to undo: still saved
    keys.release_key("Control-Z")
    assert layer.metadata[UNSAVED_KEY] is False
    layer.paint((40, 60), 50)
    wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    assert layer.metadata[UNSAVED_KEY] is False
    said = widget.status.text()
    assert said.startswith("Added ") and "You have edited" not in said
    keys.press_key("Control-Z")
    keys.release_key("Control-Z")
    np.testing.assert_array_equal(np.asarray(layer.data), before)  # napari's undo ran
    assert layer.metadata[UNSAVED_KEY] is True
    # the dock no longer says it is all in the project (GUI check h_gui26, L1)
    assert widget.status.text() == said + EDITED_SINCE_ADDED
    wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))  # the undo added: saved
    assert layer.metadata[UNSAVED_KEY] is False
    assert widget.status.text().startswith("Replaced ")
    assert "You have edited" not in widget.status.text()
    keys.press_key("Control-Shift-Z")  # redo: the stroke is back, not in the project
    keys.release_key("Control-Shift-Z")
    assert np.asarray(layer.data)[40, 60] == 50
    assert layer.metadata[UNSAVED_KEY] is True
    assert widget.status.text().endswith(EDITED_SINCE_ADDED)
    saved_to = tmp_path / "saved_labels.tif"
    assert widget.save_labels(saved_to) is not None
    assert widget.status.text() == f"Labels of cells saved to {saved_to}."
    layer.paint((10, 10), 51)  # a stroke after a save, as an undo
    assert widget.status.text() == f"Labels of cells saved to {saved_to}.{EDITED_SINCE}"
    viewer.layers.remove(layer)  # as napari closing does
    assert [name[:13] for name in kept()] == ["cells_labels-"]


def test_a_stroke_during_a_save_or_an_add_is_said_not_saved(dock, qtbot, tmp_path):
    # a stroke painted while the labels were written is not in the file, but the dock
    # said the plain "saved" words (review h_rev14, L2)
    import tifffile

    from napari_nuclei_unet.widgets._segment_outputs import EDITED_SINCE, EDITED_SINCE_ADDED
    from napari_nuclei_unet.widgets._unsaved_labels import UNSAVED_KEY

    viewer, widget = dock
    layer = segment_cells(qtbot, viewer, widget)
    layer.paint((40, 60), 50)
    path = tmp_path / "saved_labels.tif"
    worker = widget.save_labels(path, background=True)
    layer.paint((10, 10), 51)  # before the worker's end reaches the dock
    wait_worker(qtbot, worker)
    assert tifffile.imread(path)[10, 10] != 51  # the file holds the labels of the start
    assert layer.metadata[UNSAVED_KEY] is True
    assert widget.status.text() == f"Labels of cells saved to {path}.{EDITED_SINCE}"
    layer.paint((12, 12), 52)  # said once
    assert widget.status.text().count("You have edited") == 1
    worker = widget.add_to_project(tmp_path / "p")
    layer.paint((14, 14), 53)
    wait_worker(qtbot, worker)
    assert widget.status.text().startswith("Added ")
    assert widget.status.text().endswith(EDITED_SINCE_ADDED)
    assert layer.metadata[UNSAVED_KEY] is True
    wait_worker(qtbot, widget.save_labels(path, background=True))  # nothing painted since
    assert widget.status.text() == f"Labels of cells saved to {path}."
    assert layer.metadata[UNSAVED_KEY] is False


def test_forgetting_a_layers_history_through_naparis_proxy_warns_nobody(make_napari_viewer):
    # napari's plugin proxy warned the user of a private attribute (GUI check h_gui32, N7)
    import warnings

    from napari.utils._proxies import PublicOnlyProxy

    from napari_nuclei_unet.widgets._unsaved_labels import forget_history

    viewer = make_napari_viewer()
    layer = viewer.add_labels(np.zeros((8, 8), np.uint8))
    layer.paint((2, 2), 1)
    assert layer._undo_history
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        forget_history(PublicOnlyProxy(layer))
    assert not layer._undo_history
