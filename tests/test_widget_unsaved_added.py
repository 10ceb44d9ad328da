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


def kept():
    from napari_nuclei_unet.widgets._unsaved_labels import unsaved_dir

    return sorted(p.name for p in unsaved_dir().glob("*.tif"))


def test_a_painted_plane_added_is_not_kept_but_a_stroke_after_it_is(dock, qtbot, tmp_path):
    viewer, widget = dock
    viewer.add_image(disc_image(), name="cells")
    widget.image.value = viewer.layers["cells"]
    wait_worker(qtbot, widget.segment())
    layer = widget.result_layer
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
    viewer.add_image(np.stack([disc_image(), disc_image(((20, 20),))]), name="z")
    widget.axes.value = "ZYX"
    widget.image.value = viewer.layers["z"]
    wait_worker(qtbot, widget.segment())
    layer = widget.result_layer
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
    assert painted_boxes([object()], set()) == [(None, (0, 2**62, 0, 2**62))]
    layer = SimpleNamespace(metadata={UNSAVED_KEY: "token", PAINTED_KEY: {
        (): (100, 140, 200, 230)}})
    added(layer, "token", (), (slice(0, 1024), slice(512, 1536)))  # the stroke is left of it
    assert layer.metadata[UNSAVED_KEY] is True
    layer.metadata[UNSAVED_KEY] = "token2"
    added(layer, "token2", (), (slice(0, 1024), slice(0, 1024)))
    assert layer.metadata[UNSAVED_KEY] is False and layer.metadata[PAINTED_KEY] == {}
    layer.metadata.update({UNSAVED_KEY: True, PAINTED_KEY: {(): (1, 2, 1, 2)}})
    added(layer, "token3", (), None)  # painted during the add: its token is gone
    assert layer.metadata[UNSAVED_KEY] is True
