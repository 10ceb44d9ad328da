"""Add plane with the user's own labels: a labels file opened again, or labels drawn by hand.

A user who saved their labels yesterday (or drew them from scratch) selects that Labels
layer and adds a plane of it, without segmenting the image again: the dock could add a
plane of its own results only.
"""

from __future__ import annotations

import numpy as np
import pytest

from _widget_helpers import capture_notifications, disc_labels, segment_dock, wait_worker
from napari_nuclei_unet.widgets._layers import LINED_UP_KEY
from napari_nuclei_unet.widgets._scene import camera_of

pytestmark = pytest.mark.gui

SHAPE = (48, 64)


@pytest.fixture
def dock(make_napari_viewer):
    return segment_dock(make_napari_viewer())  # given a proxy, as napari gives plugins


def two_images_one_segmented(qtbot, viewer, widget, first: str, second: str) -> np.ndarray:
    """Images ``first`` and ``second`` of the same nuclei, ``second`` segmented; the truth."""
    truth = disc_labels(SHAPE, [(12, 12), (30, 40)])
    viewer.add_image((truth > 0).astype(np.uint16) * 900 + 50, name=first)
    viewer.add_image((truth > 0).astype(np.uint16) * 900 + 60, name=second)
    widget.image.value = viewer.layers[second]
    wait_worker(qtbot, widget.segment())
    return truth


def test_choosing_an_image_with_a_result_keeps_the_users_own_labels_selected(dock, qtbot,
                                                                            tmp_path):
    # choosing the image again selected the model's result in place of the user's own
    # labels: Add plane then added the model's labels (GUI check h_gui30, M1)
    from napari_nuclei_unet.core.finetune import CorrectionStore
    from napari_nuclei_unet.widgets._segment_outputs import EDITED_SINCE_ADDED

    viewer, widget = dock
    truth = two_images_one_segmented(qtbot, viewer, widget, "b", "a")
    result = widget.result_layer
    mine = viewer.add_labels(truth[:, ::-1].copy(), name="mine")
    viewer.layers.selection.active = mine
    widget.image.value = viewer.layers["b"]
    widget.image.value = viewer.layers["a"]  # back: a and its result shown, mine stays
    assert result.visible and viewer.layers.selection.active is mine
    assert widget.status.text() == "Add plane adds the labels of “mine” (yours) as a's correction."
    wait_worker(qtbot, widget.add_to_project(tmp_path / "project"))
    (sample,) = CorrectionStore(tmp_path / "project").load_samples(["a-plane0"])
    assert np.array_equal(sample.labels > 0, truth[:, ::-1] > 0)  # the user's, not the model's
    mine.paint((2, 2), 3)  # an edit after the add is said of the user's own labels too
    assert widget.status.text().endswith(EDITED_SINCE_ADDED)  # (review h_rev14, L2)


def test_a_labels_layer_of_the_images_shape_selected_is_added(dock, qtbot, tmp_path):
    from napari_nuclei_unet.core.finetune import CorrectionStore
    from napari_nuclei_unet.widgets._retrain_views import source_text

    viewer, widget = dock
    truth = disc_labels(SHAPE, [(12, 12), (30, 40)])
    viewer.add_image((truth > 0).astype(np.uint16) * 900 + 50, name="cells")
    widget.image.value = viewer.layers["cells"]
    assert not widget.add_button.enabled  # nothing segmented, nothing of the user's chosen
    other = viewer.add_labels(np.zeros((20, 20), np.int32), name="another size")
    viewer.layers.selection.active = other  # said at once, and when pressed
    assert "“another size” (20 x 20 pixels) does not fit cells" in widget.status.text()
    with capture_notifications() as notes:
        assert widget.add_to_project(tmp_path / "project") is None
    assert notes.any("does not fit cells, whose labels are 48 x 64")
    mine = viewer.add_labels(truth, name="cells_labels")  # saved yesterday, opened again
    viewer.layers.selection.active = mine
    assert widget.add_button.enabled
    assert widget.status.text() == ("Add plane adds the labels of “cells_labels” (yours) "
                                    "as cells's correction.")
    with capture_notifications() as notes:
        wait_worker(qtbot, widget.add_to_project(tmp_path / "project"))
    assert notes.any("with the labels of “cells_labels”")
    store = CorrectionStore(tmp_path / "project")
    (sample,) = store.load_samples(["cells-plane0"])
    assert np.array_equal(sample.labels > 0, truth > 0)
    (entry,) = store.list()
    assert source_text(entry.source, entry.note) == "edited mask"  # the user's own labels
    # another image chosen: that layer is not its labels
    viewer.add_image(np.zeros((20, 30), np.uint16), name="small")
    widget.image.value = viewer.layers["small"]
    viewer.layers.selection.active = mine
    with capture_notifications() as notes:
        assert widget.add_to_project(tmp_path / "project") is None
    assert notes.any("“cells_labels” (48 x 64 pixels) does not fit small")
    # an empty layer (napari's New labels) is refused, not added as a correction of none
    widget.image.value = viewer.layers["cells"]
    viewer.layers.selection.active = viewer.add_labels(np.zeros(SHAPE, np.int32), name="new")
    with capture_notifications() as notes:
        assert widget.add_to_project(tmp_path / "project") is None
    assert notes.any("“new” has no nuclei on this plane")
    # the ground truth chosen for Compare is never trained on
    widget.truth.value = mine
    viewer.layers.selection.active = mine
    assert widget._own_labels() is None


def test_a_plane_of_a_stacks_own_labels_is_the_one_shown(dock, qtbot, tmp_path):
    from napari_nuclei_unet.core.finetune import CorrectionStore

    viewer, widget = dock
    planes = [disc_labels(SHAPE, [(12, 12)]), disc_labels(SHAPE, [(30, 40), (10, 50)])]
    stack = np.stack(planes)
    viewer.add_image((stack > 0).astype(np.uint16) * 900 + 50, name="zs")
    widget.image.value = viewer.layers["zs"]
    viewer.layers.selection.active = viewer.add_labels(stack, name="zs truth")
    viewer.dims.set_current_step(0, 1)
    wait_worker(qtbot, widget.add_to_project(tmp_path / "project"))
    store = CorrectionStore(tmp_path / "project")
    assert store.ids() == ["zs-plane1"]
    (sample,) = store.load_samples(["zs-plane1"])
    assert len(np.unique(sample.labels)) - 1 == 2


def test_a_large_plane_adds_the_region_around_the_view(dock, qtbot, tmp_path, monkeypatch):
    # a 6000 x 6000 plane was written whole, one full-size mask per nucleus: 143 s and
    # 184 MB, no Cancel (GUI check h_gui19, H1); its region in view is what was corrected
    from napari_nuclei_unet.core.finetune import CorrectionStore
    from napari_nuclei_unet.widgets import _segment_jobs

    monkeypatch.setattr(_segment_jobs, "ADD_WHOLE_PIXELS", 100 * 100)
    monkeypatch.setattr(_segment_jobs, "ADD_REGION", 64)
    viewer, widget = dock
    truth = disc_labels((150, 200), [(20, 20), (40, 170), (120, 180)])
    image = viewer.add_image((truth > 0).astype(np.uint16) * 900 + 50, name="slide")
    widget.image.value = image
    viewer.layers.selection.active = viewer.add_labels(truth, name="slide labels mine")
    camera_of(viewer).center = (30, 190)  # zoomed in on the top right corner
    with capture_notifications() as notes:
        wait_worker(qtbot, widget.add_to_project(tmp_path / "project"))
    store = CorrectionStore(tmp_path / "project")
    assert store.ids() == ["slide-plane0-y0-x136"]  # kept inside the plane
    (sample,) = store.load_samples(store.ids())
    assert sample.image.shape[:2] == (64, 64)
    assert np.array_equal(sample.labels > 0, truth[:64, 136:] > 0)
    assert notes.any("slide is 150 x 200 pixels: the 64 x 64 region around the centre of "
                     "the view was added (rows 0-63, columns 136-199)")
    # a plane of a lazy stack: only the region is read
    import dask.array as da

    lazy = da.from_array(np.stack([np.asarray(image.data)] * 3), chunks=(1, 50, 50))
    viewer.add_image(lazy, name="lazy")
    widget.image.value = viewer.layers["lazy"]
    viewer.layers.selection.active = viewer.add_labels(np.stack([truth] * 3), name="lazy mine")
    viewer.dims.set_current_step(0, 2)
    camera_of(viewer).center = (130, 170)
    reads = []
    lazy_stack = widget._own_labels()["stack"]
    real = type(lazy_stack)._read
    with pytest.MonkeyPatch.context() as patch:  # only the region is read
        patch.setattr(type(lazy_stack), "_read", lambda self, index: reads.append(
            np.asarray(real(self, index)).size) or real(self, index))
        wait_worker(qtbot, widget.add_to_project(tmp_path / "project"))
    assert reads == [64 * 64]
    assert "lazy-plane2-y86-x128" in store.ids()  # on the grid, kept inside the plane
    (sample,) = store.load_samples(["lazy-plane2-y86-x128"])
    assert np.array_equal(sample.labels > 0, truth[86:, 128:192] > 0)


def close_dock(widget):
    from qtpy.QtCore import QCoreApplication, QEvent

    widget.deleteLater()  # napari closing the dock (or the window)
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def test_a_result_painted_and_not_saved_is_kept_when_napari_closes(
        dock, qtbot, tmp_path, make_napari_viewer):
    # corrections painted on a result and not saved were lost when napari closed: napari
    # removes every layer as it closes, before its docks go
    import tifffile

    from napari_nuclei_unet.widgets._unsaved_labels import unsaved_dir
    from napari_nuclei_unet.widgets.segment_widget import SegmentWidget

    viewer, widget = dock
    truth = two_images_one_segmented(qtbot, viewer, widget, "cells", "saved one")
    widget.result_layer.paint((40, 5), 77)
    widget.save_labels(tmp_path / "saved.tif")  # saved after painting: not kept again
    widget.image.value = viewer.layers["cells"]
    wait_worker(qtbot, widget.segment())
    result = widget.result_layer
    result.paint((40, 5), 77)  # a correction, then the dock closes, then napari
    close_dock(widget)
    painted = np.asarray(result.data).copy()
    viewer.layers.clear()  # what napari's closing does first
    (kept,) = unsaved_dir().glob("*.tif")
    assert kept.name.startswith("cells_labels-")
    assert np.array_equal(tifffile.imread(kept), painted)
    # next session: choosing that image says where the labels are, once
    viewer2 = make_napari_viewer()
    viewer2.add_image((truth > 0).astype(np.uint16), name="other")
    viewer2.add_image((truth > 0).astype(np.uint16), name="cells")
    with capture_notifications() as notes:
        second = SegmentWidget(viewer2)  # cells, the last image opened, is chosen
        assert "Convert to Labels" in second.status.text()
        second.image.value = viewer2.layers["other"]
        # not said of another image (h_gui21 L2)
        assert second.status.text() == "other has no result yet: press Segment."
        second.image.value = viewer2.layers["cells"]
    assert sum(kept.name in text and str(kept.parent) in text for text in notes.texts()) == 1
    # ... as the message says: opened (the dock makes an opened file its Image), then
    # converted to Labels with several images open: added as cells's correction, not as
    # the top image's (GUI check h_gui21, H2), and then not offered again (L2)
    viewer2.add_image((truth > 0).astype(np.uint16), name="cells3")
    viewer2.add_labels(tifffile.imread(kept), name=kept.stem)  # opened twice: napari
    opened = viewer2.add_labels(tifffile.imread(kept), name=kept.stem)  # adds " [1]" (N3)
    assert opened.name == f"{kept.stem} [1]"
    viewer2.layers.selection.active = opened
    second.image.value = viewer2.layers["other"]
    assert second.status.text() == (f"Add plane adds the labels of “{kept.stem} [1]” "
                                    "(yours) as cells's correction.")
    wait_worker(qtbot, second.add_to_project(tmp_path / "p2"))
    from napari_nuclei_unet.core.finetune import CorrectionStore

    assert CorrectionStore(tmp_path / "p2").ids() == ["cells-plane0"]
    assert not kept.exists() and (kept.parent / "added" / kept.name).is_file()
    from napari_nuclei_unet.widgets._unsaved_labels import kept_words

    assert kept_words("cells") == ""
    # the ground truth chosen: the line no longer says the truth will be added (M1)
    second.truth.value = opened
    assert not second.status.text().startswith("Add plane adds the labels of")


def test_a_result_painted_and_not_saved_is_kept_when_the_window_is_closed(dock, qtbot):
    # Ctrl+W or the window's close button leave the layers in place as napari ends (only
    # File > Exit removes them): the painted labels were lost (GUI check h_gui45, H1)
    import tifffile

    from napari_nuclei_unet.widgets._layers import unwrapped
    from napari_nuclei_unet.widgets._unsaved_labels import unsaved_dir

    viewer, widget = dock
    two_images_one_segmented(qtbot, viewer, widget, "cells", "painted")
    result = widget.result_layer
    result.paint((40, 5), 77)
    painted = np.asarray(result.data).copy()
    window = unwrapped(viewer).window._qt_window
    window.showMinimized()  # the window system hides it: nothing is kept yet
    qtbot.wait(50)
    assert not list(unsaved_dir().glob("*.tif"))
    from qtpy.QtCore import Qt

    # closed as Ctrl+W does (napari asks first when the user presses it); not deleted,
    # so that the fixture can close the viewer as it does for every test
    window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
    window.close()
    assert not window.isVisible()
    assert len(unwrapped(viewer).layers) == 3  # still there: napari does not remove them
    (kept,) = unsaved_dir().glob("*.tif")
    assert kept.name.startswith("painted_labels-")
    assert np.array_equal(tifffile.imread(kept), painted)


def test_a_painted_result_deleted_by_the_user_is_kept_and_said(dock, qtbot):
    from napari_nuclei_unet.widgets._unsaved_labels import unsaved_dir

    viewer, widget = dock
    truth = disc_labels(SHAPE, [(12, 12), (30, 40)])
    viewer.add_image((truth > 0).astype(np.uint16) * 900 + 50, name="cells")
    widget.image.value = viewer.layers["cells"]
    wait_worker(qtbot, widget.segment())
    widget.result_layer.paint((40, 5), 77)
    viewer.layers.remove(widget.result_layer)
    (kept,) = unsaved_dir().glob("cells_labels-*.tif")
    assert f"Its corrections, not saved, are kept in {kept}." in widget.status.text()


def test_own_labels_of_one_plane_new_labels_on_channels_and_a_pyramid(dock, qtbot, tmp_path):
    # a plane's 2-D labels, napari's New labels on a ZCYX image (with its C axis) and a
    # multiscale labels layer: the dock's result was added in their place, or the sizes
    # were misread (review h_rev11, M3, M7)
    from napari_nuclei_unet.core.finetune import CorrectionStore

    viewer, widget = dock
    planes = np.stack([disc_labels(SHAPE, [(12, 12)]), disc_labels(SHAPE, [(30, 40), (10, 50)])])
    image = np.stack([planes > 0, planes > 0], axis=1).astype(np.uint16) * 900 + 50  # ZCYX
    viewer.add_image(image, name="zc")
    widget.image.value = viewer.layers["zc"]
    widget.axes.value = "ZCYX"
    viewer.dims.set_current_step(0, 1)
    viewer.layers.selection.active = viewer.add_labels(planes[1], name="plane 1 only")
    assert widget.status.text().endswith("as zc's plane1 correction.")
    viewer.dims.set_current_step(0, 0)  # the line follows the sliders (h_gui22 N1)
    assert widget.status.text().endswith("as zc's plane0 correction.")
    viewer.layers.selection.active = viewer.add_labels(planes, name="every plane")
    assert widget.status.text().endswith("as zc's plane0 correction.")  # (h_gui23 M1)
    viewer.dims.set_current_step(0, 1)
    assert widget.status.text().endswith("as zc's plane1 correction.")
    viewer.layers.remove("every plane")
    viewer.layers.selection.active = viewer.layers["plane 1 only"]
    viewer.dims.set_current_step(0, 1)
    with capture_notifications() as notes:  # said in the dock's words, not the CLI's
        wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    assert notes.any("in the Nuclear channel field") and not notes.any("--channel")
    widget.channel.value = 0
    wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    store = CorrectionStore(tmp_path / "p")
    assert store.ids() == ["zc-plane1"]
    new = viewer.add_labels(np.zeros(image.shape, np.int32), name="drawn")  # New labels
    viewer.dims.set_current_step(0, 0)
    viewer.dims.set_current_step(1, 1)  # painted on channel 1 of plane 0
    new.data[0, 1] = planes[0] * 5
    viewer.layers.selection.active = new
    wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    (sample,) = store.load_samples(["zc-plane0"])
    assert np.array_equal(sample.labels > 0, planes[0] > 0)
    pyramid = viewer.add_labels([planes, planes[:, ::2, ::2]], multiscale=True, name="pyr")
    viewer.layers.selection.active = pyramid
    viewer.dims.set_current_step(0, 1)
    with capture_notifications() as notes:
        wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    assert notes.any("Replaced zc-plane1 with the labels of “pyr” (2 nuclei)")


def test_labels_of_a_channel_stack_opened_again_lie_over_their_planes(dock, qtbot, tmp_path):
    # napari lines layers up by their last axes: a ZYX labels file over its ZCYX image
    # followed the channel slider, and Add plane spoke of another plane than the one seen
    # (GUI check h_gui40, M3)
    from napari_nuclei_unet.core.finetune import CorrectionStore

    viewer, widget = dock
    planes = np.stack([disc_labels(SHAPE, [(12, 12)]), disc_labels(SHAPE, [(30, 40)]),
                       disc_labels(SHAPE, [(20, 20), (36, 50)])])
    image = np.stack([planes > 0, planes > 0], axis=1).astype(np.uint16) * 900 + 50  # ZCYX
    viewer.add_image(image, name="zc")
    widget.image.value = viewer.layers["zc"]
    widget.axes.value = "ZCYX"
    widget.channel.value = 0
    viewer.dims.set_current_step(0, 1)
    with capture_notifications() as notes:
        saved = viewer.add_labels(planes.copy(), name="saved")
    assert saved.data.shape == (3, 1, *SHAPE) and notes.any("a channel axis of size 1")
    # drawn at the plane the sliders are on at once: it showed plane 0 over Z plane 1,
    # and strokes went to plane 1 unseen, until the slider moved (GUI check h_gui45, M2)
    qtbot.waitUntil(lambda: np.array_equal(np.asarray(saved._slice.image.view) > 0,
                                           planes[1] > 0), timeout=2000)
    assert viewer.dims.nsteps[:2] == (3, 2)  # its planes on Z, not on the channel slider
    # placed as the dock's results: shown at both channels (at channel 1 it was not drawn,
    # and a stroke raised napari's IndexError: GUI check h_gui41, H1)
    viewer.dims.set_current_step(0, 0)
    for channel in (0, 1):
        viewer.dims.set_current_step(1, channel)
        assert np.array_equal(np.asarray(saved._slice.image.view) > 0, planes[0] > 0), channel
    viewer.dims.set_current_step(0, 2)
    viewer.layers.selection.active = saved
    assert widget.status.text().endswith("as zc's plane2 correction.")
    wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    (sample,) = CorrectionStore(tmp_path / "p").load_samples(["zc-plane2"])
    assert np.array_equal(sample.labels > 0, planes[2] > 0)
    # saved by napari with that axis and opened again: placed the same, added the same
    back = viewer.add_labels(np.asarray(saved.data).copy(), name="saved by napari")
    assert back.data.shape == (3, 1, *SHAPE) and back.scale[1] == saved.scale[1] == 2.0
    viewer.layers.selection.active = back
    assert widget.status.text().endswith("as zc's plane2 correction.")
    viewer.layers.remove(back)
    # opened before its image was chosen: lined up as the image is (GUI check h_gui41, L5)
    widget.image.value = viewer.add_image(image[0, 0], name="another")
    early = viewer.add_labels(planes.copy(), name="opened first")
    assert early.data.shape == (3, *SHAPE)
    early.paint((1, 10, 10), 5)  # a stroke before: its undo has the old axes
    widget.image.value = viewer.layers["zc"]
    assert early.data.shape == (3, 1, *SHAPE)
    early.undo()  # raised napari's IndexError (review h_rev25, B1)
    viewer.layers.remove(early)
    wait_worker(qtbot, widget.segment())  # and it is a ground truth of its image
    widget.truth.value = saved
    wait_worker(qtbot, widget.compare())
    assert "zc-plane2: IoU" in widget.status.text(), widget.status.text()


def test_lined_up_labels_follow_the_axes_set_again(dock, qtbot):
    # labels lined up under guessed axes kept their size-1 axis at the old place once the
    # Axes were set right, and followed the wrong slider again (review h_rev25, M16)
    viewer, widget = dock
    planes = np.stack([disc_labels(SHAPE, [(12, 12)]), disc_labels(SHAPE, [(30, 40)])])
    image = np.stack([planes > 0, planes > 0], axis=1).astype(np.uint16) * 900 + 50
    viewer.add_image(image, name="zc")

    def set_axes(axes):  # typed, then Enter (or the field left)
        widget.axes.value = axes
        widget.axes.native.editingFinished.emit()

    widget.image.value = viewer.layers["zc"]
    set_axes("ZCYX")
    saved = viewer.add_labels(planes.copy(), name="saved")
    assert saved.data.shape == (2, 1, *SHAPE)
    saved.paint((0, 0, 10, 10), 5)
    widget.axes.value = "CZ"  # as typed: nothing moves, the undo history stays
    widget.axes.value = "CZYX"
    assert saved.data.shape == (2, 1, *SHAPE)
    saved.undo()
    set_axes("CZYX")  # the channels first: napari lines them up by Z, Y, X
    assert saved.data.shape == (2, *SHAPE) and list(saved.scale) == [1.0, 1.0, 1.0]
    assert np.array_equal(saved.data, planes) and not saved.metadata.get(LINED_UP_KEY)
    set_axes("ZCYX")  # and back
    assert saved.data.shape == (2, 1, *SHAPE) and saved.scale[1] == 2.0
    # another image, of the same shape or not: the labels stay over zc (review h_rev26, 3)
    viewer.add_image(image.copy(), name="zc2")
    viewer.add_image(np.zeros((2, 3, *SHAPE), np.uint16), name="wider")
    for other in ("zc2", "wider"):
        widget.image.value = viewer.layers[other]
        set_axes("CZYX")
        assert saved.data.shape == (2, 1, *SHAPE) and saved.scale[1] == 2.0, other
    # zc closed and opened again, or renamed: still theirs (reviews h_rev27 4, h_rev28 3)
    viewer.layers.remove("zc")
    widget.image.value = viewer.add_image(image.copy(), name="zc")
    set_axes("CZYX")
    assert saved.data.shape == (2, *SHAPE)
    set_axes("ZCYX")
    assert saved.data.shape == (2, 1, *SHAPE)
    viewer.layers["zc"].name = "zc renamed"
    set_axes("CZYX")
    assert saved.data.shape == (2, *SHAPE)


def test_each_painted_plane_of_a_lazy_stack_is_kept_in_its_own_file(dock, qtbot, tmp_path):
    # two painted plane results of one stack were kept in one file, named without its
    # plane, the second write over the first (GUI check h_gui21, H1); opened again, a
    # plane's file is added as that plane, wherever the sliders are (M2)
    import dask.array as da
    import tifffile

    from napari_nuclei_unet.core.finetune import CorrectionStore
    from napari_nuclei_unet.widgets._unsaved_labels import kept_words, unsaved_dir

    viewer, widget = dock
    planes = np.stack([disc_labels(SHAPE, [(12, 12)]), disc_labels(SHAPE, [(30, 40)])])
    image = (planes > 0).astype(np.uint16) * 900 + 50
    viewer.add_image(da.from_array(image, chunks=(1, 24, 32)), name="lazy")
    widget.image.value = viewer.layers["lazy"]
    widget.planes.value = "current plane"  # each plane into a 2-D layer of its own
    painted = {}
    for plane in (0, 1):
        viewer.dims.set_current_step(0, plane)
        wait_worker(qtbot, widget.segment())
        widget.result_layer.paint((40, 60), 50 + plane)
        painted[plane] = np.asarray(widget.result_layer.data).copy()
    viewer.layers.clear()  # napari closing
    files = sorted(unsaved_dir().glob("*.tif"))
    assert [f.name[:18] for f in files] == ["lazy_labels-plane0", "lazy_labels-plane1"]
    for plane, file in enumerate(files):
        assert np.array_equal(tifffile.imread(file), painted[plane])
    assert "(of plane0, plane1)" in kept_words("lazy")
    viewer.add_image(da.from_array(image, chunks=(1, 24, 32)), name="lazy")
    widget.image.value = viewer.layers["lazy"]
    viewer.dims.set_current_step(0, 1)
    opened = viewer.add_labels(tifffile.imread(files[0]), name=files[0].stem)
    viewer.layers.selection.active = opened
    wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    assert CorrectionStore(tmp_path / "p").ids() == ["lazy-plane0"]


def test_an_image_named_like_a_plane_keeps_its_own_labels(dock, qtbot, tmp_path):
    # "well-b2" was read as plane b2 of "well" (GUI check h_gui22, N2)
    import tifffile

    from napari_nuclei_unet.core.finetune import CorrectionStore
    from napari_nuclei_unet.widgets._unsaved_labels import kept_words, unsaved_dir

    viewer, widget = dock
    truth = disc_labels(SHAPE, [(12, 12), (30, 40)])
    for name in ("well", "well-b2"):
        viewer.add_image((truth > 0).astype(np.uint16) * 900 + 50, name=name)
    widget.image.value = viewer.layers["well-b2"]
    wait_worker(qtbot, widget.segment())
    widget.result_layer.paint((40, 5), 77)
    viewer.layers.remove(widget.result_layer)
    (kept,) = unsaved_dir().glob("*.tif")
    assert kept.name.startswith("well-b2_labels-") and "of well-b2 were" in kept_words("well-b2")
    assert kept_words("well") == ""
    widget.image.value = viewer.layers["well"]
    viewer.layers.selection.active = viewer.add_labels(tifffile.imread(kept), name=kept.stem)
    wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    assert CorrectionStore(tmp_path / "p").ids() == ["well-b2-plane0"]


def test_an_ome_files_layer_names_its_results_without_ome(dock, qtbot):
    # napari names slide6000.ome.zarr's layer "slide6000.ome": the labels were saved as
    # slide6000.ome_labels.tif (GUI check h_gui36, L7), and the result layer was named
    # "slide6000.ome labels" (h_gui37)
    from napari_nuclei_unet.widgets._own_layers import safe_name

    assert safe_name("slide6000.ome") == "slide6000"
    assert safe_name("cells.OME") == "cells"
    assert safe_name("home") == "home" and safe_name("my cells: day 2") == "my_cells_day_2"
    viewer, widget = dock
    truth = disc_labels(SHAPE, [(12, 12), (30, 40)])
    widget.image.value = viewer.add_image((truth > 0).astype(np.uint16) * 900 + 50,
                                          name="cells.ome")
    wait_worker(qtbot, widget.segment())
    assert widget.result_layer.name == "cells labels"


def test_the_pickers_follow_a_layer_renamed_in_the_layer_list(dock):
    # the Ground truth list kept a layer's old name after it was renamed in napari's
    # layer list (GUI check h_gui36, L4)
    viewer, widget = dock
    image = viewer.add_image(np.zeros(SHAPE, np.uint16), name="image 1")
    viewer.add_labels(np.zeros(SHAPE, np.int32), name="Labels")
    widget.image.value = image

    def shown(combo) -> list[str]:
        return [combo.native.itemText(i) for i in range(combo.native.count())]

    assert "Labels" in shown(widget.truth) and "image 1" in shown(widget.image)
    viewer.layers["Labels"].name = "my truth"
    image.name = "well B2"
    assert "my truth" in shown(widget.truth) and "Labels" not in shown(widget.truth)
    assert widget.image.native.currentText() == "well B2" and widget.image.value is image


def test_one_image_with_an_empty_ground_truth_is_scored(dock, qtbot):
    # "not annotated, not scored" is for the planes of a stack: one image whose truth has
    # no nuclei scores what was found in it (review h_rev20, L3)
    viewer, widget = dock
    truth = disc_labels(SHAPE, [(12, 12), (30, 40)])
    widget.image.value = viewer.add_image((truth > 0).astype(np.uint16) * 900 + 50, name="e")
    wait_worker(qtbot, widget.segment())
    empty = viewer.add_labels(np.zeros(SHAPE, np.int32), name="none here")
    widget._refresh_choices()
    widget.truth.value = empty
    wait_worker(qtbot, widget.compare())
    (row,) = widget.scores
    assert row.id == "e" and row.n_true == 0 and row.n_pred == 2 and row.iou == 0.0
    assert widget.status.text().startswith("e: IoU 0.000")


def test_a_plane_an_earlier_version_added_with_ome_in_its_id_is_replaced(dock, qtbot,
                                                                         tmp_path):
    # ids lost the .ome of slide.ome.zarr's layer name (h_gui36, L7): the plane added
    # again was a second correction beside "cells.ome-plane0", both trained on, and its
    # kept labels asked to open cells.ome, open (review h_rev20, L4)
    from napari_nuclei_unet.core.finetune import CorrectionStore

    viewer, widget = dock
    truth = disc_labels(SHAPE, [(12, 12), (30, 40)])
    image = (truth > 0).astype(np.uint16) * 900 + 50
    CorrectionStore(tmp_path / "p").add("cells.ome-plane0", image, truth, source="label")
    widget.image.value = viewer.add_image(image, name="cells.ome")
    mine = viewer.add_labels(truth[:, ::-1].copy(), name="cells.ome_labels-20261205-101010")
    viewer.layers.selection.active = mine
    assert widget.status.text() == ("Add plane adds the labels of “cells.ome_labels-"
                                    "20261205-101010” (yours) as cells.ome's correction.")
    with capture_notifications() as notes:
        wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))
    assert notes.any("Replaced cells.ome-plane0 with the labels of"), notes.messages
    assert CorrectionStore(tmp_path / "p").ids() == ["cells.ome-plane0"]
    viewer.layers.remove(mine)
    widget.result_layer = None
    wait_worker(qtbot, widget.segment())
    wait_worker(qtbot, widget.add_to_project(tmp_path / "p"))  # the model's result too
    assert CorrectionStore(tmp_path / "p").ids() == ["cells.ome-plane0"]
    wait_worker(qtbot, widget.add_to_project(tmp_path / "q"))  # a new project: the new id
    assert CorrectionStore(tmp_path / "q").ids() == ["cells-plane0"]
