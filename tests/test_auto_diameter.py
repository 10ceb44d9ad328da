"""Automatic nucleus diameter is the default wherever a user segments or scores.

``nuclei-unet evaluate`` and ``predict`` on datasets, and the Predict & compare
workflow, go through ``segment_image`` (diameter 0 = automatic), with a diameter
override; cached GUI predictions re-threshold to ``segment_image``'s labels.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from _cli_helpers import run_cli
from napari_nuclei_unet.core import planes, segment
from napari_nuclei_unet.core.segment import (
    SegmentOptions,
    labels_from_maps,
    predict_network_maps,
    segment_image,
)
from napari_nuclei_unet.core.synthetic import make_synthetic_sample, write_dsb_sample

FACTOR = 5  # synthetic nuclei 5x bigger: 40-200 px across, like confocal nuclei at 63x


@pytest.fixture(scope="module", autouse=True)
def _private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NUCLEI_UNET_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


def _zoom(array, factor, order):
    from skimage.transform import resize

    shape = (array.shape[0] * factor, array.shape[1] * factor)
    out = resize(array, shape + array.shape[2:], order=order, preserve_range=True,
                 anti_aliasing=False)
    return out.astype(array.dtype)


@pytest.fixture(scope="module")
def big_nuclei(tmp_path_factory):
    """One H&E-like sample whose nuclei are ~5x the training size (640 x 640 px)."""
    image, masks = make_synthetic_sample("histology", seed=1, shape=(128, 128))
    image = _zoom(image, FACTOR, 1)
    masks = [_zoom(m.astype(np.uint8), FACTOR, 0) > 0 for m in masks]
    root = tmp_path_factory.mktemp("data") / "big"
    write_dsb_sample(root, "big-0", image, masks)
    return root


@pytest.fixture(scope="module")
def model():
    from napari_nuclei_unet.core.checkpoint import load_checkpoint

    return load_checkpoint("default").model



# -- evaluate ----------------------------------------------------------------------------

def test_evaluate_estimates_the_diameter_by_default(big_nuclei, capsys):
    code, out, err = run_cli(capsys, "-q", "evaluate", "default", big_nuclei, "--json")
    assert code == 0, err
    auto = json.loads(out)["summary"]
    code, out, err = run_cli(capsys, "-q", "evaluate", "default", big_nuclei, "--json",
                             "--diameter", "native")
    assert code == 0, err
    native = json.loads(out)["summary"]
    assert auto["diameter"] == "automatic" and native["diameter"] == "native"
    # native scale sees texture, not nuclei (0.45 IoU); the estimate rescales (0.94)
    assert auto["mean_iou"] > native["mean_iou"] + 0.2
    assert auto["mean_iou"] > 0.8


def test_evaluate_options_and_summary_say_which_diameter(big_nuclei, capsys, monkeypatch):
    from napari_nuclei_unet.core import evaluation

    seen = []
    real = evaluation.evaluate

    def spy(model, samples, **kwargs):
        seen.append(kwargs["segment_options"])
        return real(model, samples[:0], **kwargs)  # no image: only the options matter

    monkeypatch.setattr(evaluation, "evaluate", spy)
    for argv, expected in ((["--diameter", "auto"], 0.0), (["--diameter", "0"], 0.0),
                           (["--diameter", "30", "--tta"], 30.0)):
        code, out, err = run_cli(capsys, "-q", "evaluate", "default", big_nuclei, *argv)
        assert code == 0, err
        assert seen[-1].diameter == expected
    assert seen[-1].tta and "diameter 30 px, TTA" in out
    code, out, err = run_cli(capsys, "-q", "evaluate", "default", big_nuclei)
    assert code == 0, err
    assert seen[-1] == SegmentOptions(diameter=0.0, threshold=0.5)
    assert "diameter automatic" in out
    code, out, err = run_cli(capsys, "-q", "evaluate", "default", big_nuclei,
                             "--diameter", "native")
    assert code == 0, err
    assert seen[-1] is None and "native scale (no resizing)" in out


def test_evaluate_bad_diameter_is_one_line(big_nuclei, capsys):
    code, _, err = run_cli(capsys, "evaluate", "default", big_nuclei, "--diameter", "big")
    assert code == 2 and "native" in err and "Traceback" not in err


# -- predict on a dataset ----------------------------------------------------------------

def test_predict_on_a_dataset_goes_through_segment_image(big_nuclei, tmp_path, capsys,
                                                         monkeypatch):
    seen = []
    real = segment.segment_image

    def spy(model, image, options=None, **kwargs):
        seen.append(options)
        return real(model, image, options, **kwargs)

    monkeypatch.setattr(segment, "segment_image", spy)
    code, out, err = run_cli(capsys, "predict", "default", big_nuclei, "--out", tmp_path / "a",
                             "--instances", "watershed")
    assert code == 0, err
    assert seen[-1].diameter == 0.0 and not seen[-1].tta
    assert "automatic nucleus diameter" in err and "1 of 1 image(s) resized" in err
    assert out.startswith("Wrote 1 label image to ")  # not "1 label images"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["big-0.png"]  # masks, not TIFFs
    code, out, err = run_cli(capsys, "predict", "default", big_nuclei, "--out", tmp_path / "b",
                             "--diameter", "90", "--tta")
    assert code == 0, err
    assert seen[-1].diameter == 90.0 and seen[-1].tta
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["big-0.png"]


def test_predict_native_segments_the_images_as_they_are(big_nuclei, tmp_path, capsys,
                                                        monkeypatch):
    seen = []
    real = segment.segment_image

    def spy(model, image, options=None, **kwargs):
        result = real(model, image, options, **kwargs)
        seen.append((options, result.scale))
        return result

    monkeypatch.setattr(segment, "segment_image", spy)
    code, out, err = run_cli(capsys, "predict", "default", big_nuclei, "--out", tmp_path / "a",
                             "--diameter", "native")
    assert code == 0, err
    (options, scale), = seen
    assert options.diameter == segment.TRAINING_DIAMETER and scale == 1.0  # no resizing
    assert "native scale, no resizing" in err
    assert out.startswith("Wrote 1 mask to ")  # not "1 masks"


def test_one_diameter_type_for_predict_evaluate_and_finetune(capsys):
    from napari_nuclei_unet.cli import _build_parser

    parser = _build_parser()
    for command in (["predict", "m", "in", "--out", "o"], ["evaluate", "m", "data"],
                    ["finetune", "m", "corrections", "--out", "o"]):
        for text, value in (("auto", 0.0), ("0", 0.0), ("native", "native"), ("25", 25.0)):
            assert parser.parse_args([*command, "--diameter", text]).diameter == value
        assert parser.parse_args(command).diameter == 0.0
        code, _, err = run_cli(capsys, *command, "--diameter", "big")
        assert code == 2 and "invalid float value" not in err
        assert ("error: argument --diameter: expected 'auto' (estimated per image; 0 means "
                "the same), 'native' (no resizing) or a nucleus diameter in pixels, got "
                "'big'") in err
        code, help_text, _ = run_cli(capsys, command[0], "--help")
        assert code == 0 and "--diameter auto|native|PX" in help_text
        assert "0 = automatic" not in help_text  # the default is 'auto', as it says


# -- cached GUI predictions --------------------------------------------------------------

@pytest.mark.parametrize("diameter", [0.0, 90.0])
def test_rethresholded_cached_maps_equal_segment_image(model, diameter):
    from napari_nuclei_unet.core.predict_score import predicted_labels

    image, _ = make_synthetic_sample("histology", seed=2, shape=(96, 96))
    image = _zoom(image, 4, 1)
    cached = predict_network_maps(model, image, SegmentOptions(diameter=diameter))
    assert cached.scale < 0.5 and cached.maps.shape[1] < image.shape[0] // 2
    compared = 0
    for threshold in (0.5, 0.3, 0.7):
        expected = segment_image(model, image,
                                 SegmentOptions(diameter=diameter, threshold=threshold))
        if expected.scale != cached.scale:
            # an automatic diameter is estimated at the threshold of the prediction; the
            # cache keeps that scale when the threshold moves
            assert not diameter and threshold != 0.5
            continue
        got = labels_from_maps(cached, threshold)
        assert got.labels.shape == image.shape[:2]
        np.testing.assert_array_equal(got.labels, expected.labels)
        np.testing.assert_allclose(got.probability, expected.probability, atol=1e-6)
        np.testing.assert_array_equal(
            predicted_labels(cached, threshold=threshold, instance_method="watershed"),
            expected.labels)
        compared += 1
    assert compared == 3 if diameter else compared >= 1
    plain = predicted_labels(cached, threshold=0.5, instance_method="components")
    assert plain.shape == image.shape[:2] and plain.max() > 0


def test_scores_of_cached_maps_are_those_of_segment_image(model):
    from types import SimpleNamespace

    from napari_nuclei_unet.core.evaluation import rescore, score_prediction
    from napari_nuclei_unet.core.predict_score import ImageDone, predict_and_score
    from napari_nuclei_unet.core.progress import drive

    image, masks = make_synthetic_sample("histology", seed=3, shape=(96, 96))
    labels = np.zeros(image.shape[:2], np.int32)
    for k, mask in enumerate(masks, start=1):
        labels[mask > 0] = k
    sample = SimpleNamespace(id="s", image=_zoom(image, 4, 1), labels=_zoom(labels, 4, 0),
                             modality="histology", has_labels=True)
    updates = []
    result = drive(predict_and_score(model, [sample], {}, threshold=0.5), updates.append)
    assert result.diameter == 0.0 and result.probabilities["s"].scale < 0.5
    # each image's maps and scores are yielded as soon as it is done
    done = [u for u in updates if isinstance(u, ImageDone)]
    assert [(d.id, d.maps, d.row) for d in done] == [("s", result.probabilities["s"],
                                                     result.rows["s"])]
    seg = segment_image(model, sample.image, SegmentOptions(threshold=0.5))
    expected = score_prediction(sample, seg.probability, labels=seg.labels)
    assert result.rows["s"] == expected
    again = drive(rescore([sample], result.probabilities, threshold=0.5))
    assert again.rows == [expected]


# -- the Predict & compare dock ----------------------------------------------------------

@pytest.mark.gui
def test_diameter_field_sets_the_options_and_keeps_results_per_diameter(
        make_napari_viewer, qtbot, monkeypatch):
    from _widget_helpers import wait_worker
    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.compare_widget import DIAMETER_TOOLTIP, CompareWidget
    from test_widget_compare import install_fake_model, make_samples, show

    viewer = make_napari_viewer()
    session = session_for(viewer)
    samples = make_samples()
    session.samples.update({s.id: s for s in samples})
    fake = install_fake_model(monkeypatch, session, samples)
    widget = CompareWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Compare")
    show(viewer, session, samples[0])
    assert widget.diameter.value == 0.0 and "0 = automatic" in DIAMETER_TOOLTIP

    wait_worker(qtbot, widget.predict_all())
    assert fake.options.diameter == 0.0  # automatic by default
    auto_rows = dict(session.rows)
    assert auto_rows and "Nucleus diameter" in widget.metrics_label.text()

    widget.diameter.value = 30.0  # as the user types 30 and presses Enter
    assert session.diameter == 30.0
    assert session.probabilities == {} and session.rows == {}  # kept aside, not shown
    calls = fake.calls
    wait_worker(qtbot, widget.predict_all())
    assert fake.options.diameter == 30.0 and fake.calls == calls + len(samples)

    widget.set_diameter(0)  # back to automatic: the first results come back, unpredicted
    assert session.rows == auto_rows and fake.calls == calls + len(samples)
    assert widget.diameter.value == 0.0


@pytest.mark.parametrize("channels", [None, 3])
def test_images_are_enlarged_bicubic_within_their_range(channels):
    """Small nuclei are enlarged before the network: bicubic, never past the image's own
    range (validation x0.5 protocol: 0.824 -> 0.833 IoU against bilinear)."""
    y, x = np.mgrid[0:40, 0:30].astype(np.float32)
    plane = np.where((y - 20) ** 2 + (x - 15) ** 2 < 64, 200.0, 10.0).astype(np.uint8)
    image = plane if channels is None else np.repeat(plane[..., None], channels, axis=2)
    big = planes.enlarge(image, (80, 60))
    assert big.dtype == np.float32 and big.shape == (80, 60, *image.shape[2:])
    assert big.min() >= 10.0 and big.max() <= 200.0  # bicubic overshoot is clipped
    ramp = planes.enlarge(x, (80, 60))
    assert np.allclose(ramp[:, 6:-6], np.linspace(-0.25, 29.25, 60)[6:-6], atol=0.05)
    sharp = np.abs(np.diff(big.reshape(80, 60, -1)[..., 0], axis=1)).max()
    smooth = np.abs(np.diff(planes.resize_array(image.astype(np.float32), (80, 60), 1)
                            .reshape(80, 60, -1)[..., 0], axis=1)).max()
    assert sharp > smooth  # edges stay steeper than with bilinear
    holed = image.astype(np.float32)
    holed[5, 5] = np.nan  # one missing pixel (a float TIFF) stays a local hole
    big = planes.enlarge(holed, (80, 60))
    holes = np.isnan(big.reshape(80, 60, -1)).any(axis=2).sum()
    assert 0 < holes <= 64 and np.nanmax(big) <= 200.0


def test_a_plane_without_numbers_gives_no_nucleus_and_no_warning(model):
    """An all-NaN float plane (a failed acquisition, a padded stack plane) segments to
    nothing, without scikit-image's "All-NaN slice" warning on stderr (h_rev15, L11)."""
    import warnings

    empty = np.full((64, 80), np.nan, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shrunk = planes.resize_array(empty, (32, 40), 1)
        labels = segment.segment_image(model, empty, segment.SegmentOptions(diameter=40.0))
    assert np.isnan(shrunk).all() and shrunk.shape == (32, 40)
    assert labels.labels.shape == (64, 80) and labels.labels.max() == 0


def test_small_nuclei_go_through_the_bicubic_enlargement(model, monkeypatch):
    calls = []
    enlarge = planes.enlarge
    monkeypatch.setattr(planes, "enlarge", lambda image, shape: calls.append(shape)
                        or enlarge(image, shape))
    image, _ = make_synthetic_sample("fluorescence", shape=(64, 64), seed=3)
    segment_image(model, image, SegmentOptions(diameter=9.0))
    assert calls == [(128, 128)]
    calls.clear()
    segment_image(model, image, SegmentOptions(diameter=36.0))  # made smaller: no enlarging
    assert calls == []
