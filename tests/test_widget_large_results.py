"""A large result in the Segment dock: drawn once, and its working copy goes with it.

napari drew a new result three to four times on the main thread before it was shown
(2-3 s at 6000 x 6000, ``benchmarks/bench_show_result.py``). The working copies (a
temporary OME-Zarr each) stayed in the temporary directory after their layer was
deleted, replaced by a new result or napari closed: 144 MB per 6000 x 6000 result
(GUI check h_gui19, L3).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from _widget_helpers import disc_labels, segment_dock, wait_worker

pytestmark = pytest.mark.gui

SHAPE = (48, 64)


def disc_image() -> np.ndarray:
    return (disc_labels(SHAPE, [(12, 12), (30, 40)]) > 0).astype(np.uint16) * 900 + 50


@pytest.fixture
def dock(make_napari_viewer):
    return segment_dock(make_napari_viewer())


def segment_lazy(qtbot, viewer, widget):
    """Segment a lazy (dask) image, which goes block by block into a working copy."""
    import dask.array as da

    from napari_nuclei_unet.widgets._segment_jobs import RESULT_KEY

    if "lazy" not in viewer.layers:
        viewer.add_image(da.from_array(disc_image(), chunks=(24, 32)), name="lazy")
    widget.image.value = viewer.layers["lazy"]
    wait_worker(qtbot, widget.segment())
    from pathlib import Path

    zarr = Path(widget.result_layer.metadata[RESULT_KEY]["zarr"])
    assert zarr.exists() and zarr.parent.name.startswith("nuclei-unet-")
    return zarr.parent


def test_a_result_is_drawn_once_when_shown_and_again(dock, qtbot, monkeypatch):
    from napari.layers import Labels

    viewer, widget = dock
    segment_lazy(qtbot, viewer, widget)  # napari's first labels layer drawn: warm
    draws = []
    real = Labels._raw_to_displayed

    def counted(self, *args, **kwargs):
        draws.append(self.name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Labels, "_raw_to_displayed", counted)
    viewer.layers.remove(widget.result_layer)
    segment_lazy(qtbot, viewer, widget)  # a new layer
    assert draws == ["lazy labels"]
    assert widget.result_layer.data.dtype == np.uint16  # drawn as it is, not mapped
    draws.clear()
    segment_lazy(qtbot, viewer, widget)  # the same layer takes the new labels
    assert draws == ["lazy labels"]
    import dask.array as da

    viewer.add_image(da.from_array(np.stack([disc_image()] * 2), chunks=(1, 24, 32)),
                     name="stack")  # a plane's own 2-D layer, which follows the sliders
    viewer.dims.set_current_step(0, 1)
    widget.image.value = viewer.layers["stack"]
    widget.planes.value = "current plane"
    draws.clear()
    wait_worker(qtbot, widget.segment())
    assert draws == ["stack labels (plane1)"]
    widget.planes.value = "all planes"  # one layer over the stack's planes
    draws.clear()
    wait_worker(qtbot, widget.segment())
    assert draws == ["stack labels"]


def test_a_deleted_result_s_working_copy_goes_after_its_corrections_are_kept(dock, qtbot):
    import tifffile

    from napari_nuclei_unet.widgets._unsaved_labels import unsaved_dir

    viewer, widget = dock
    folder = segment_lazy(qtbot, viewer, widget)
    widget.result_layer.paint((40, 60), 50)
    painted = np.asarray(widget.result_layer.data).copy()
    viewer.layers.remove(widget.result_layer)
    qtbot.waitUntil(lambda: not folder.exists())
    (kept,) = unsaved_dir().glob("lazy_labels-*.tif")  # written from it before it went
    assert np.array_equal(tifffile.imread(kept), painted)


def test_a_result_segmented_again_releases_the_one_it_replaces(dock, qtbot):
    viewer, widget = dock
    first = segment_lazy(qtbot, viewer, widget)
    layer = widget.result_layer
    second = segment_lazy(qtbot, viewer, widget)
    assert widget.result_layer is layer and second != first  # the layer took the new labels
    qtbot.waitUntil(lambda: not first.exists())
    qtbot.wait(50)
    assert second.exists()  # the one shown stays


def test_a_working_copy_waits_for_the_viewer_s_jobs(dock, qtbot):
    from napari_nuclei_unet.widgets._session import session_for

    viewer, widget = dock
    folder = segment_lazy(qtbot, viewer, widget)
    go = threading.Event()
    worker = session_for(viewer).jobs.start("export", go.wait, 30, action="Exporting")
    viewer.layers.remove(widget.result_layer)
    qtbot.wait(200)
    assert folder.exists()  # an export may be reading it
    go.set()
    wait_worker(qtbot, worker)
    qtbot.waitUntil(lambda: not folder.exists())


def test_a_folder_not_made_for_a_result_is_never_removed(dock, qtbot, tmp_path):
    from napari_nuclei_unet.widgets._working_copies import release

    viewer, _widget = dock
    mine = tmp_path / "nuclei-unet-mine" / "x_labels.ome.zarr"  # not in the temp dir itself
    mine.mkdir(parents=True)
    release(viewer, mine)
    release(viewer, None)
    qtbot.wait(50)
    assert mine.exists()


def test_at_exit_a_working_copy_goes_after_the_jobs_reading_it(tmp_path, monkeypatch):
    # removed before a running save had read it, the save wrote zeros (review h_rev12 H2)
    import napari_nuclei_unet.widgets._workers as workers
    from napari_nuclei_unet.widgets import _working_copies

    folder = tmp_path / "nuclei-unet-x"
    folder.mkdir()
    order = []
    monkeypatch.setattr(workers, "_wait_for_workers_at_exit",
                        lambda: order.append(("waited", folder.exists())))
    monkeypatch.setattr(_working_copies, "_PENDING", {folder})
    _working_copies._remove_pending()
    assert order == [("waited", True)] and not folder.exists()


def test_a_failed_large_segmentation_leaves_no_working_copy(tmp_path, monkeypatch):
    import tempfile

    import dask.array as da

    import napari_nuclei_unet.core.bigimage as bigimage
    from napari_nuclei_unet.core.stacks import stack_from_array
    from napari_nuclei_unet.widgets._own_layers import segment_layer_job

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def broken(*_args, **_kwargs):
        yield from ()
        raise OSError("the zarr folder was moved")

    monkeypatch.setattr(bigimage, "segment_large", broken)
    stack = stack_from_array(da.from_array(disc_image(), chunks=(24, 32)), "YX", "lazy")
    job = segment_layer_job(None, stack, None, channel=None, planes=[0], big=True)
    with pytest.raises(OSError):
        for _ in job:
            pass
    assert list(tmp_path.iterdir()) == []  # its folder went (review h_rev12, M2)
