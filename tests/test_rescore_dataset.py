"""A re-scoring job that ends after another dataset was opened keeps its rows out of it."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np

from napari_nuclei_unet.core.dataset import Sample
from napari_nuclei_unet.core.evaluation import ImageRow
from test_session_rules import FakeDataset, FakeModel


def test_rows_of_a_rescoring_ended_after_another_dataset_opened_stay_out(
        make_napari_viewer, qtbot, tmp_path, monkeypatch):
    # they filled the new dataset's Scores table, and a click on one said "unexpected
    # error, report it" (review h_rev23, M4)
    from _widget_helpers import wait_worker
    from napari_nuclei_unet.widgets import _prediction_service as service
    from napari_nuclei_unet.widgets._session import session_for

    viewer = make_napari_viewer()
    session = session_for(viewer)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    session.set_dataset(FakeDataset(tmp_path / "a"))
    model = FakeModel(tmp_path / "m.safetensors")
    session.set_model(model)
    image = np.zeros((8, 8), np.uint8)
    truth = np.zeros((8, 8), np.int32)
    session.add_samples([Sample(i, image, truth, "fluorescence") for i in ("x", "y")])
    rows = [ImageRow(i, "fluorescence", 0.8, 0.8, 0.8, 0.8, 3, 3) for i in ("x", "y")]
    session.add_predictions(model, {"x": image, "y": image}, rows)
    release = threading.Event()

    def slow_rescore(samples, probabilities, **kwargs):  # the threshold moved: scored again
        release.wait(10)
        yield from ()
        return SimpleNamespace(rows=[ImageRow(s.id, "fluorescence", 0.5, 0.5, 0.5, 0.5, 3, 3)
                                     for s in samples])

    monkeypatch.setattr(service, "rescore", slow_rescore)
    session.set_scoring(threshold=0.6)
    worker = service.start_rescore_job(viewer)
    session.set_dataset(FakeDataset(tmp_path / "b", ("z",)))
    release.set()
    wait_worker(qtbot, worker)
    assert "x" not in session.rows and "y" not in session.rows
    assert session.current_rows() == []
