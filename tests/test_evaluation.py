"""core.evaluation: scoring probability maps, the evaluate() job, the report and its JSON."""

import json
from dataclasses import dataclass

import numpy as np
import pytest

from napari_nuclei_unet.core import inference
from napari_nuclei_unet.core.evaluation import (
    EvaluationReport,
    ImageRow,
    evaluate,
    rescore,
    score_prediction,
)
from napari_nuclei_unet.core.progress import Progress, drive


@dataclass
class FakeSample:
    """Stand-in with the attributes of core.dataset.Sample."""

    id: str
    image: np.ndarray
    labels: np.ndarray
    modality: str
    overlap_pixels: int = 0
    has_labels: bool = True


def _sample(sample_id="a", modality="fluorescence", n_discs=2, shape=(48, 64)):
    yy, xx = np.indices(shape)
    labels = np.zeros(shape, np.int32)
    for k in range(n_discs):
        cy, cx = 12 + 24 * (k % 2), 12 + 20 * (k // 2)
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= 49] = k + 1
    image = np.repeat((labels > 0)[..., None] * 200, 3, axis=-1).astype(np.uint8)
    return FakeSample(sample_id, image, labels, modality)


def _truth_as_probability(model, image, *, device=None, **kwargs):
    """A perfect 'model': the image is bright exactly where the nuclei are."""
    return (image[..., 0] > 0).astype(np.float32)


@pytest.fixture
def perfect_model(monkeypatch):
    monkeypatch.setattr(inference, "predict_probability", _truth_as_probability)
    return object()


# ---------------------------------------------------------------- score_prediction


def test_score_prediction_perfect_and_shifted():
    sample = _sample(n_discs=3)
    prob = (sample.labels > 0).astype(np.float32)
    row = score_prediction(sample, prob, threshold=0.5, instance_method="watershed")
    area = int((sample.labels > 0).sum())
    assert row == ImageRow("a", "fluorescence", 1.0, 1.0, 1.0, 1.0, 3, 3, area, area)

    zeros = np.zeros_like(prob)
    nothing = score_prediction(sample, zeros, threshold=0.5, instance_method="watershed")
    assert (nothing.iou, nothing.dice, nothing.ap50, nothing.dsb_score) == (0.0, 0.0, 0.0, 0.0)
    assert (nothing.n_true, nothing.n_pred) == (3, 0)


def test_score_prediction_threshold_is_strict_and_changes_the_result():
    sample = _sample(n_discs=1)
    prob = np.where(sample.labels > 0, 0.6, 0.0).astype(np.float32)
    assert score_prediction(sample, prob, threshold=0.5, instance_method="components").iou == 1.0
    assert score_prediction(sample, prob, threshold=0.6, instance_method="components").n_pred == 0


def test_score_prediction_watershed_vs_components_on_touching_nuclei():
    shape = (40, 60)
    yy, xx = np.indices(shape)
    labels = np.zeros(shape, np.int32)
    labels[(yy - 20) ** 2 + (xx - 20) ** 2 <= 100] = 1
    labels[((yy - 20) ** 2 + (xx - 38) ** 2 <= 100) & (labels == 0)] = 2
    sample = FakeSample("t", np.zeros(shape + (3,), np.uint8), labels, "histology")
    prob = (labels > 0).astype(np.float32)
    merged = score_prediction(sample, prob, threshold=0.5, instance_method="components")
    split = score_prediction(sample, prob, threshold=0.5, instance_method="watershed")
    # One blob: disc 1 (whole) is more than half of it, so it matches; disc 2 is
    # missed -> TP 1, FP 0, FN 1 -> 1/2.
    assert (merged.n_pred, merged.ap50) == (1, 0.5)
    assert split.n_pred == 2 and split.ap50 == 1.0


def test_score_prediction_shape_mismatch():
    sample = _sample()
    with pytest.raises(ValueError, match=r"'a'.*\(48, 64\).*\(64, 48\)"):
        score_prediction(sample, np.zeros((64, 48)), threshold=0.5, instance_method="watershed")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"threshold": 1.5}, "threshold"), ({"instance_method": "magic"}, "instance_method")],
)
def test_score_prediction_bad_options(kwargs, match):
    sample = _sample()
    options = {"threshold": 0.5, "instance_method": "watershed", **kwargs}
    with pytest.raises(ValueError, match=match):
        score_prediction(sample, np.zeros(sample.labels.shape), **options)


# ---------------------------------------------------------------- evaluate()


def test_evaluate_with_a_perfect_model(perfect_model):
    samples = [_sample("a"), _sample("b", "histology", n_discs=4), _sample("c")]
    updates = []
    report = drive(evaluate(perfect_model, samples), updates.append)
    assert updates == [
        Progress("evaluate", 1, 3, "a"),
        Progress("evaluate", 2, 3, "b"),
        Progress("evaluate", 3, 3, "c"),
    ]
    assert [r.id for r in report.rows] == ["a", "b", "c"]
    assert all(r.iou == 1.0 and r.dsb_score == 1.0 for r in report.rows)
    assert [r.n_true for r in report.rows] == [2, 4, 2]
    assert not report.cancelled and report.probabilities == {}
    summary = report.summary()
    assert summary["n"] == 3 and summary["mean_iou"] == 1.0 and summary["dsb_score"] == 1.0
    assert summary["per_modality"]["histology"]["n"] == 1
    assert summary["per_modality"]["fluorescence"]["n"] == 2


def test_evaluate_passes_device_and_unwraps_loaded_models(monkeypatch):
    calls = []

    def fake(model, image, *, device=None):
        calls.append((model, device))
        return np.zeros(image.shape[:2], np.float32)

    monkeypatch.setattr(inference, "predict_probability", fake)

    @dataclass
    class Loaded:  # like checkpoint.LoadedModel: not callable, holds .model
        model: object

    net = object()
    drive(evaluate(Loaded(net), [_sample()], device="cpu"))
    assert calls == [(net, "cpu")]


def test_evaluate_stops_when_asked(perfect_model):
    samples = [_sample(str(i)) for i in range(5)]
    done = []
    job = evaluate(perfect_model, samples, should_stop=lambda: len(done) >= 2)
    report = drive(job, done.append)
    assert report.cancelled
    assert [r.id for r in report.rows] == ["0", "1"]


def test_evaluate_skips_samples_without_labels(perfect_model):
    unlabelled = _sample("u")
    unlabelled.has_labels = False
    report = drive(evaluate(perfect_model, [_sample("a"), unlabelled]))
    assert [r.id for r in report.rows] == ["a"]
    assert report.skipped == ["u"]


def test_evaluate_rejects_bad_options_at_first_step(perfect_model):
    job = evaluate(perfect_model, [_sample()], threshold=-0.1)
    with pytest.raises(ValueError, match="threshold"):
        next(job)


def test_evaluate_keeps_probabilities_for_rescoring(perfect_model):
    samples = [_sample("a"), _sample("b", "brightfield", n_discs=3)]
    report = drive(evaluate(perfect_model, samples, keep_probabilities=True))
    assert sorted(report.probabilities) == ["a", "b"]
    updates = []
    again = drive(rescore(samples, report.probabilities, threshold=0.9), updates.append)
    assert again.rows == report.rows and again.threshold == 0.9
    assert updates[-1] == Progress("score", 2, 2, "b")
    with pytest.raises(KeyError, match="'b'"):
        drive(rescore(samples, {"a": report.probabilities["a"]}))


def test_evaluate_with_the_real_sample_and_model_classes():
    dataset = pytest.importorskip("napari_nuclei_unet.core.dataset")
    model_module = pytest.importorskip("napari_nuclei_unet.core.model")
    fake = _sample()
    sample = dataset.Sample(
        id="real", image=fake.image, labels=fake.labels, modality="fluorescence"
    )
    net = model_module.UNet(in_channels=3, base_width=4, depth=2)
    report = drive(evaluate(net, [sample], device="cpu"))
    (row,) = report.rows
    assert row.id == "real" and row.n_true == 2
    assert 0.0 <= row.iou <= 1.0 and 0.0 <= row.dsb_score <= 1.0


# ---------------------------------------------------------------- report


def _rows():
    return [
        ImageRow("a", "fluorescence", 0.9, 0.95, 0.8, 0.7, 10, 9),
        ImageRow("b", "fluorescence", 0.5, 0.6, 0.4, 0.3, 4, 6),
        ImageRow("c", "histology", 0.7, 0.8, 0.5, 0.5, 20, 18),
    ]


def test_summary_numbers():
    summary = EvaluationReport.from_rows(_rows()).summary()
    assert summary["n"] == 3
    assert summary["mean_iou"] == pytest.approx(0.7)
    assert summary["median_iou"] == pytest.approx(0.7)
    assert summary["mean_dice"] == pytest.approx((0.95 + 0.6 + 0.8) / 3)
    assert summary["dsb_score"] == pytest.approx(0.5)
    assert list(summary["per_modality"]) == ["fluorescence", "histology"]
    fluo = summary["per_modality"]["fluorescence"]
    assert fluo == {
        "n": 2,
        "mean_iou": pytest.approx(0.7),
        "median_iou": pytest.approx(0.7),  # median of two values is their mean
        "mean_dice": pytest.approx(0.775),
        "dsb_score": pytest.approx(0.5),
    }


def test_empty_report_summary_is_json_null():
    summary = EvaluationReport().summary()
    assert summary == {
        "n": 0,
        "mean_iou": None,
        "median_iou": None,
        "mean_dice": None,
        "dsb_score": None,
        "per_modality": {},
    }


def test_to_json_layout_and_round_trip():
    report = EvaluationReport.from_rows(_rows(), threshold=0.4)
    data = json.loads(json.dumps(report.to_json()))
    assert set(data) == {"summary", "images"}
    assert set(data["summary"]) == {
        "n",
        "mean_iou",
        "median_iou",
        "mean_dice",
        "dsb_score",
        "per_modality",
    }
    assert data["images"][0] == {
        "id": "a",
        "modality": "fluorescence",
        "iou": 0.9,
        "dice": 0.95,
        "ap50": 0.8,
        "dsb_score": 0.7,
        "n_true": 10,
        "n_pred": 9,
        "area_true": 0,
        "area_pred": 0,
    }
    assert EvaluationReport.from_json(data).rows == report.rows
    for image in data["images"]:  # a report written before the areas were kept
        del image["area_true"], image["area_pred"]
    assert EvaluationReport.from_json(data).rows == report.rows
    with pytest.raises(ValueError, match="images"):
        EvaluationReport.from_json({"summary": {}})
    with pytest.raises(ValueError, match="lacks"):
        EvaluationReport.from_json({"images": [{"id": "a"}]})


def test_importing_evaluation_does_not_import_torch():
    from _widget_helpers import fresh_python

    code = (
        "import sys, napari_nuclei_unet.core.evaluation, napari_nuclei_unet.core.metrics, "
        "napari_nuclei_unet.core.instances; print('torch' in sys.modules)"
    )
    assert fresh_python(code) == "False"
