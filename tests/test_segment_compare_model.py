"""The Segment dock's Compare files a score under the model that made the result."""

from __future__ import annotations

import numpy as np

from _widget_helpers import disc_labels, segment_dock, wait_worker


def test_a_result_of_another_model_is_scored_but_kept_out_of_the_scores_table(
        make_napari_viewer, qtbot, tmp_path):
    # a result of the default model, compared after another model was loaded, went into
    # that model's Scores table: an untrained model got IoU 1.000 (review h_rev23, L2)
    from napari_nuclei_unet.core.checkpoint import load_checkpoint, save_checkpoint
    from napari_nuclei_unet.widgets._session import session_for

    viewer, widget = segment_dock(make_napari_viewer())
    session = session_for(viewer)
    default = load_checkpoint("default", device="cpu")
    session.set_model(default)
    truth = disc_labels((96, 96), [(20, 20), (60, 64), (30, 70)])
    widget.image.value = viewer.add_image((truth > 0).astype(np.uint16) * 900 + 50,
                                          name="cells")
    wait_worker(qtbot, widget.segment())
    viewer.add_labels(truth, name="my truth")
    widget._refresh_choices()
    widget.truth.value = viewer.layers["my truth"]
    other = save_checkpoint(tmp_path / "other.safetensors", default.model, default.config)
    session.set_model(load_checkpoint(other, device="cpu"))
    wait_worker(qtbot, widget.compare())
    assert "cells" not in session.rows
    assert "IoU" in widget.status.text()  # the score is said, in the dock
    assert "Not put in the Scores table" in widget.status.text()
    session.set_model(default)  # back to the model that made it: Compare files it there
    wait_worker(qtbot, widget.compare())
    assert session.rows["cells"].iou > 0.5
    assert "Not put in the Scores table" not in widget.status.text()


def test_the_dock_names_the_image_as_the_layer_list_does(make_napari_viewer, qtbot, tmp_path):
    # "Labels of stackZC_scaled saved to": the file's name, not the layer's (h_gui40, L8)
    viewer, widget = segment_dock(make_napari_viewer())
    truth = disc_labels((64, 64), [(20, 20), (40, 44)])
    widget.image.value = viewer.add_image((truth > 0).astype(np.uint16) * 900 + 50,
                                          name="my cells")
    wait_worker(qtbot, widget.segment())
    widget.save_labels(tmp_path / "x.tif")
    assert widget.status.text().startswith("Labels of my cells saved to")
    assert widget.shown_name() == "my_cells"  # files and ids keep the safe name
