"""The Compare dock: side-by-side and overlay layers, live threshold, user mistakes."""

from __future__ import annotations

import numpy as np
import pytest

from _widget_helpers import capture_notifications, labelled_synthetic_samples, wait_worker

pytestmark = pytest.mark.gui

SHAPE = (96, 112)


# ---------------------------------------------------------------- helpers
def make_samples(n_labelled: int = 3, *, unlabelled: bool = False):
    """Deterministic synthetic samples (three modalities), optionally one without labels."""
    from napari_nuclei_unet.core.dataset import Sample
    from napari_nuclei_unet.core.synthetic import make_synthetic_sample

    samples = labelled_synthetic_samples(n_labelled, SHAPE, first_seed=10)
    if unlabelled:
        image, _ = make_synthetic_sample("fluorescence", shape=SHAPE, seed=99)
        samples.append(
            Sample("no-labels", image, np.zeros(SHAPE, np.int32), "fluorescence", has_labels=False)
        )
    return samples


def known_probability(sample, index: int) -> np.ndarray:
    """A probability map with known errors at thresholds 0.5 and 0.3.

    The label mask shifted by 2 px at p = 0.8, one nucleus missing (false
    negative), and a square at p = 0.4 (a false positive only below 0.4).
    """
    truth = sample.labels > 0 if sample.has_labels else np.zeros(SHAPE, bool)
    prob = np.where(np.roll(truth, 2, axis=1), 0.8, 0.02).astype(np.float32)
    if sample.has_labels and sample.labels.max() > 0:
        prob[sample.labels == 1] = 0.02  # missed nucleus
    prob[4 + 3 * index : 20 + 3 * index, 4:20] = np.maximum(
        prob[4 + 3 * index : 20 + 3 * index, 4:20], 0.4
    )
    if not sample.has_labels:
        prob[40:60, 40:60] = 0.9
    return prob


class FakeNetwork:
    """Stands in for the model: ``predict_network_maps`` is patched to use known maps."""

    def __init__(self, samples):
        self.maps = {id(s.image): known_probability(s, i) for i, s in enumerate(samples)}
        self.calls = 0


def install_fake_model(monkeypatch, session, samples) -> FakeNetwork:
    """Patch core.segment.predict_network_maps and give the session a model.

    The known maps are returned at native scale (as ``segment_image`` keeps images
    whose nuclei have the training size), so the expected labels are those of
    ``labels_from_probability``.
    """
    from napari_nuclei_unet.core import segment

    fake = FakeNetwork(samples)

    def predict_network_maps(model, image, options=None, **_kwargs):
        assert model is fake
        fake.calls += 1
        fake.options = options
        prob = fake.maps[id(image)].copy()
        return segment.NetworkMaps(prob[None], prob.shape, 1.0, segment.TRAINING_DIAMETER)

    monkeypatch.setattr(segment, "predict_network_maps", predict_network_maps)
    session.model = fake
    return fake


def show(viewer, session, sample) -> None:
    """What the Data dock does when a sample is selected."""
    from napari_nuclei_unet.widgets._layers import show_sample

    show_sample(viewer, sample)
    session.current_id = sample.id
    session.current_changed.emit(sample.id)


@pytest.fixture
def compare(make_napari_viewer, qtbot, monkeypatch):
    from napari_nuclei_unet.widgets._session import session_for
    from napari_nuclei_unet.widgets.compare_widget import CompareWidget

    viewer = make_napari_viewer()
    session = session_for(viewer)
    samples = make_samples(unlabelled=True)
    session.samples.update({s.id: s for s in samples})
    fake = install_fake_model(monkeypatch, session, samples)
    widget = CompareWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Compare")
    show(viewer, session, samples[0])
    return viewer, widget, session, samples, fake


def predict_current(qtbot, widget):
    worker = widget.predict_current()
    assert worker is not None
    wait_worker(qtbot, worker)


# ---------------------------------------------------------------- tests
def test_matched_nuclei_share_the_label_mask_colour():
    from napari_nuclei_unet.widgets._compare_layers import match_colors_to_truth

    truth = np.zeros((20, 30), np.int32)
    truth[2:8, 2:8] = 5
    truth[10:18, 10:18] = 7
    pred = np.zeros_like(truth)
    pred[2:8, 3:8] = 1  # matches 5 (IoU 5/6)
    pred[10:12, 10:12] = 2  # too small for 7 (IoU 4/64)
    pred[0:4, 20:25] = 3  # nothing there
    out = match_colors_to_truth(truth, pred)
    assert set(np.unique(out[pred == 1])) == {5}
    assert set(np.unique(out[pred == 2])) | set(np.unique(out[pred == 3])) <= {8, 9}
    assert len(np.unique(out)) == len(np.unique(pred))  # same objects, renumbered
    np.testing.assert_array_equal(out > 0, pred > 0)
    assert match_colors_to_truth(truth, np.zeros_like(truth)).max() == 0


def test_an_image_opened_after_compare_closed_is_shown_not_hidden(compare, qtbot):
    # the panel closed, its panes stayed and hid every image opened next, with advice
    # to switch a Compare no longer there to overlay (GUI check h_gui36, M1)
    from napari_nuclei_unet.widgets._compare_layers import side_by_side_active
    from napari_nuclei_unet.widgets._layers import IMAGE_LAYER

    viewer, widget, session, samples, fake = compare
    predict_current(qtbot, widget)
    assert side_by_side_active(viewer)
    with capture_notifications() as notes:
        viewer.add_image(np.zeros((40, 40), np.uint8), name="mine")
    assert not viewer.layers["mine"].visible and notes.any("Switch Compare to overlay")
    # napari's x only takes the widget out of its dock, and its activity list keeps the
    # prediction job's cancel, a method of the dock: the dock was never destroyed and
    # still counted as open (GUI check h_gui37, H1); no deleteLater here
    viewer.window.remove_dock_widget(widget)
    qtbot.waitUntil(lambda: session.compare_views == 0, timeout=5000)
    with capture_notifications() as notes:
        viewer.add_image(np.zeros((40, 40), np.uint8), name="own")
    assert viewer.layers["own"].visible and not side_by_side_active(viewer)
    assert not viewer.layers[IMAGE_LAYER].visible and not notes.any("Switch Compare")


def test_side_by_side_layers_sit_side_by_side(compare, qtbot):
    """Two panes made by translating the prediction pane's layers, never napari's grid."""
    from napari.layers import Image, Labels

    from napari_nuclei_unet.widgets._compare_layers import (
        ERROR_LAYER,
        PREDICTION_IMAGE_LAYER,
        PREDICTION_LAYER,
        TITLE_LEFT_LAYER,
        TITLE_RIGHT_LAYER,
        TRUTH_CONTOUR_LAYER,
        grid_of,
        side_by_side_active,
    )
    from napari_nuclei_unet.widgets._layers import IMAGE_LAYER, LABELS_LAYER

    viewer, widget, session, samples, fake = compare
    predict_current(qtbot, widget)
    assert fake.calls == 1
    names = [layer.name for layer in viewer.layers]
    assert names[:6] == [IMAGE_LAYER, LABELS_LAYER, TITLE_LEFT_LAYER,
                         PREDICTION_IMAGE_LAYER, PREDICTION_LAYER, TITLE_RIGHT_LAYER]
    assert set(names) == {
        IMAGE_LAYER, LABELS_LAYER, PREDICTION_IMAGE_LAYER, PREDICTION_LAYER,
        TRUTH_CONTOUR_LAYER, ERROR_LAYER, TITLE_LEFT_LAYER, TITLE_RIGHT_LAYER,
    }
    assert isinstance(viewer.layers[PREDICTION_IMAGE_LAYER], Image)
    assert isinstance(viewer.layers[PREDICTION_LAYER], Labels)
    # the second image shares the first one's array: no copy
    assert viewer.layers[PREDICTION_IMAGE_LAYER].data is viewer.layers[IMAGE_LAYER].data

    assert not grid_of(viewer).enabled and side_by_side_active(viewer)
    height, width = SHAPE
    step = width + 4  # the image width and a gap of 4 % of it
    for name in (IMAGE_LAYER, LABELS_LAYER, TITLE_LEFT_LAYER):
        assert tuple(viewer.layers[name].translate) == (0, 0), name
    for name in (PREDICTION_IMAGE_LAYER, PREDICTION_LAYER, TITLE_RIGHT_LAYER):
        assert tuple(viewer.layers[name].translate) == (0, step), name
    left = viewer.layers[IMAGE_LAYER].extent.world
    right = viewer.layers[PREDICTION_LAYER].extent.world
    assert right[0][1] - left[1][1] >= 2 and right[0][0] == left[0][0]  # a gap, same rows
    # the panes are titled on the canvas itself, at the top left corner of each pane
    assert viewer.layers[TITLE_LEFT_LAYER].text.values[0] == "label mask"
    assert viewer.layers[TITLE_RIGHT_LAYER].text.values[0] == "prediction"
    assert viewer.layers[TITLE_LEFT_LAYER].text.anchor == "upper_left"
    for title, pane in ((TITLE_LEFT_LAYER, IMAGE_LAYER), (TITLE_RIGHT_LAYER, PREDICTION_LAYER)):
        point = viewer.layers[title].data_to_world(viewer.layers[title].data[0])
        np.testing.assert_allclose(point, viewer.layers[pane].data_to_world((0, 0)))
        assert viewer.layers[title].visible
    # the camera (and napari's "reset view") frames both panes
    center = viewer.scene.camera.center[-1]
    assert width - 1 < center < step + 1
    viewer.scene.camera.center = (0, 10, 10)
    viewer.reset_view()
    assert width - 1 < viewer.scene.camera.center[-1] < step + 1

    # a layer the user adds (e.g. a dropped zip) does not land over a pane
    extra = viewer.add_image(np.zeros((8, 8)), name="dropped")
    assert not extra.visible
    viewer.layers.remove(extra)
    assert not viewer.layers[ERROR_LAYER].visible
    assert not viewer.layers[TRUTH_CONTOUR_LAYER].visible
    assert "IoU" in widget.metrics_label.text()


def test_the_compare_layers_are_views_not_painted_and_the_user_is_told_once(compare, qtbot,
                                                                            monkeypatch):
    # strokes on "prediction" were lost at the next image without a word, while the
    # score shown stayed the model's (GUI check h_gui47, H2)
    from napari.utils._test_utils import read_only_mouse_event
    from napari.utils.interactions import mouse_press_callbacks

    from napari_nuclei_unet.widgets import _workers
    from napari_nuclei_unet.widgets._compare_layers import (
        ERROR_LAYER,
        PREDICTION_LAYER,
        TRUTH_CONTOUR_LAYER,
    )

    told = []
    monkeypatch.setattr(_workers, "notify", lambda message, **_: told.append(message))
    viewer, widget, session, samples, fake = compare
    predict_current(qtbot, widget)
    layer = viewer.layers[PREDICTION_LAYER]
    assert viewer.layers.selection.active is layer and not told  # selected by the plugin
    assert not any(viewer.layers[name].editable
                   for name in (PREDICTION_LAYER, ERROR_LAYER, TRUTH_CONTOUR_LAYER))
    before = np.array(layer.data, copy=True)
    layer.mode = "paint"  # napari's paint button and key: refused
    assert layer.mode == "pan_zoom"
    world = (30, layer.translate[1] + 40)  # row 30, column 40 of the right pane
    mouse_press_callbacks(layer, read_only_mouse_event(type="mouse_press", button=1,
                                                       position=world))
    np.testing.assert_array_equal(layer.data, before)
    # the user selects it: told once where a prediction is corrected
    viewer.layers.selection.active = viewer.layers[0]
    viewer.layers.selection.active = layer
    viewer.layers.selection.active = viewer.layers[0]
    viewer.layers.selection.active = layer
    assert len(told) == 1 and "Edit prediction as labels" in told[0], told


def test_a_user_grid_is_left_on(compare, qtbot):
    """The user turned napari's grid on: the plugin neither turns it off nor translates."""
    from napari_nuclei_unet.widgets._compare_layers import PREDICTION_LAYER, grid_of

    viewer, widget, session, samples, fake = compare
    grid_of(viewer).enabled = True
    predict_current(qtbot, widget)
    for mode in ("overlay", "side by side"):
        widget.set_mode(mode)
        assert grid_of(viewer).enabled, mode
        assert tuple(viewer.layers[PREDICTION_LAYER].translate) == (0, 0)


def test_overlay_layers_and_error_colours(compare, qtbot):
    from napari.layers import Labels

    from napari_nuclei_unet.core.instances import labels_from_probability
    from napari_nuclei_unet.widgets._compare_layers import (
        ERROR_COLORS,
        ERROR_LAYER,
        FALSE_NEGATIVE,
        FALSE_POSITIVE,
        PREDICTION_IMAGE_LAYER,
        PREDICTION_LAYER,
        TRUE_POSITIVE,
        TRUTH_CONTOUR_LAYER,
        error_map,
        grid_of,
        side_by_side_active,
    )
    from napari_nuclei_unet.widgets._layers import IMAGE_LAYER, LABELS_LAYER

    viewer, widget, session, samples, fake = compare
    predict_current(qtbot, widget)
    widget.set_mode("overlay")
    assert widget.overlay_radio.isChecked()
    assert not grid_of(viewer).enabled and not side_by_side_active(viewer)
    for name in (IMAGE_LAYER, PREDICTION_LAYER, ERROR_LAYER, TRUTH_CONTOUR_LAYER):
        assert tuple(viewer.layers[name].translate) == (0, 0), name  # one pane
        assert viewer.layers[name].visible, name
    for name in (PREDICTION_IMAGE_LAYER, LABELS_LAYER):
        assert not viewer.layers[name].visible, name
    errors = viewer.layers[ERROR_LAYER]
    contours = viewer.layers[TRUTH_CONTOUR_LAYER]
    assert isinstance(errors, Labels) and isinstance(contours, Labels)
    assert contours.contour >= 1
    sample = samples[0]
    pred = labels_from_probability(fake.maps[id(sample.image)], threshold=0.5)
    np.testing.assert_array_equal(errors.data, error_map(sample.labels, pred))
    assert {TRUE_POSITIVE, FALSE_POSITIVE, FALSE_NEGATIVE} <= set(np.unique(errors.data))
    for value, rgba in ERROR_COLORS.items():
        np.testing.assert_allclose(errors.colormap.map(np.array([value]))[0], rgba, atol=1e-6)
    assert widget.legend_label.isVisible() or not widget.isVisible()
    assert "false positive" in widget.legend_label.text()
    # back to side by side: two panes again, the same layer objects
    before = {layer.name: layer for layer in viewer.layers}
    widget.set_mode("side by side")
    assert side_by_side_active(viewer) and not grid_of(viewer).enabled
    assert viewer.layers[PREDICTION_LAYER].translate[1] > SHAPE[1]
    assert all(viewer.layers[name] is layer for name, layer in before.items())


def test_threshold_rethresholds_cached_map_without_the_network(compare, qtbot):
    from napari_nuclei_unet.core.evaluation import score_prediction
    from napari_nuclei_unet.core.instances import labels_from_probability
    from napari_nuclei_unet.widgets._compare_layers import PREDICTION_LAYER, match_colors_to_truth

    viewer, widget, session, samples, fake = compare
    predict_current(qtbot, widget)
    calls = fake.calls
    sample = samples[0]
    prob = fake.maps[id(sample.image)]
    layer = viewer.layers[PREDICTION_LAYER]
    before = layer.data.copy()
    emitted = []
    session.scores_changed.connect(lambda: emitted.append(True))

    widget.set_threshold(0.3)
    assert fake.calls == calls  # the network was not run again
    assert session.threshold == pytest.approx(0.3)
    assert widget.threshold_slider.value() == pytest.approx(0.3)
    assert viewer.layers[PREDICTION_LAYER] is layer
    assert not np.array_equal(layer.data, before)
    expected = labels_from_probability(prob, threshold=0.3)
    np.testing.assert_array_equal(layer.data, match_colors_to_truth(sample.labels, expected))
    row = session.rows[sample.id]
    assert row == score_prediction(sample, prob, threshold=0.3)
    assert emitted

    # the slider itself (debounced) does the same
    widget.threshold_slider.setValue(0.6)
    qtbot.waitUntil(lambda: session.threshold == pytest.approx(0.6), timeout=3000)
    at_06 = labels_from_probability(prob, threshold=0.6)
    np.testing.assert_array_equal(layer.data, match_colors_to_truth(sample.labels, at_06))
    assert fake.calls == calls


def test_threshold_rescores_other_cached_images_in_background(compare, qtbot):
    from napari_nuclei_unet.core.evaluation import score_prediction

    viewer, widget, session, samples, fake = compare
    wait_worker(qtbot, widget.predict_all())
    labelled = [s for s in samples if s.has_labels]
    assert set(session.rows) == {s.id for s in labelled}
    calls = fake.calls
    widget.set_threshold(0.35)
    qtbot.waitUntil(lambda: not widget.is_busy(), timeout=10_000)
    for s in labelled:
        prob = fake.maps[id(s.image)]
        assert session.rows[s.id] == score_prediction(s, prob, threshold=0.35)
    assert fake.calls == calls


def test_large_image_is_rethresholded_in_a_worker(compare, qtbot, monkeypatch):
    from napari_nuclei_unet.core.evaluation import score_prediction
    from napari_nuclei_unet.core.instances import labels_from_probability
    from napari_nuclei_unet.widgets import compare_widget
    from napari_nuclei_unet.widgets._compare_layers import PREDICTION_LAYER, match_colors_to_truth

    viewer, widget, session, samples, fake = compare
    monkeypatch.setattr(compare_widget, "SYNC_PIXELS", 100)  # every test image is "large"
    wait_worker(qtbot, widget.predict_current())
    qtbot.waitUntil(lambda: widget.current_labels() is not None, timeout=10_000)
    sample = samples[0]
    prob = fake.maps[id(sample.image)]
    widget.set_threshold(0.3)
    assert widget.current_labels() is None  # not computed on the main thread
    assert "Updating" in widget.metrics_label.text()
    qtbot.waitUntil(lambda: widget.current_labels() is not None, timeout=10_000)
    expected = labels_from_probability(prob, threshold=0.3)
    np.testing.assert_array_equal(
        viewer.layers[PREDICTION_LAYER].data, match_colors_to_truth(sample.labels, expected)
    )
    assert session.rows[sample.id] == score_prediction(sample, prob, threshold=0.3)
    assert "IoU" in widget.metrics_label.text()


def test_split_toggle_changes_instances_not_the_network(compare, qtbot):
    from napari_nuclei_unet.core.instances import labels_from_probability
    from napari_nuclei_unet.widgets._compare_layers import PREDICTION_LAYER, match_colors_to_truth

    viewer, widget, session, samples, fake = compare
    predict_current(qtbot, widget)
    calls = fake.calls
    widget.set_split_touching(False)
    assert session.instance_method == "components"
    prob = fake.maps[id(samples[0].image)]
    expected = labels_from_probability(prob, threshold=0.5, method="components")
    np.testing.assert_array_equal(
        viewer.layers[PREDICTION_LAYER].data, match_colors_to_truth(samples[0].labels, expected)
    )
    n_pred = len(np.unique(viewer.layers[PREDICTION_LAYER].data)) - 1
    assert session.rows[samples[0].id].n_pred == n_pred
    assert fake.calls == calls


def test_switching_samples_reuses_layers(compare, qtbot):
    from napari_nuclei_unet.widgets._compare_layers import COMPARE_LAYERS, PREDICTION_LAYER
    from napari_nuclei_unet.widgets._layers import SAMPLE_ID_KEY

    viewer, widget, session, samples, fake = compare
    wait_worker(qtbot, widget.predict_all())
    layers_before = {layer.name: layer for layer in viewer.layers}
    show(viewer, session, samples[1])
    assert len(viewer.layers) == len(layers_before)
    assert all(viewer.layers[n] is layer for n, layer in layers_before.items())
    assert viewer.layers[PREDICTION_LAYER].metadata[SAMPLE_ID_KEY] == samples[1].id
    assert fake.calls == len(samples)  # from the cache: no new prediction

    # a sample without a cached prediction: the compare layers are hidden and emptied,
    # not removed (re-adding them rebuilt napari's visuals: a stall of seconds)
    from napari_nuclei_unet.widgets._compare_layers import shown_prediction_id

    session.probabilities.pop(samples[2].id)
    show(viewer, session, samples[2])
    assert all(viewer.layers[n] is layers_before[n] for n in COMPARE_LAYERS)
    assert not any(viewer.layers[n].visible for n in COMPARE_LAYERS)
    assert not np.any(viewer.layers[PREDICTION_LAYER].data)
    assert shown_prediction_id(viewer) is None
    assert "not been predicted" in widget.metrics_label.text()

    # shown again with a prediction: the same layers come back (samples[0]: the fake
    # prediction of samples[1] is a 2 px sliver, dropped as smaller than a nucleus)
    show(viewer, session, samples[0])
    assert all(viewer.layers[n] is layer for n, layer in layers_before.items())
    assert viewer.layers[PREDICTION_LAYER].visible
    assert np.any(viewer.layers[PREDICTION_LAYER].data)


def test_no_model_is_explained_and_default_model_button(compare, qtbot, monkeypatch):
    from napari_nuclei_unet.core import checkpoint

    viewer, widget, session, samples, fake = compare
    session.set_model(None)
    assert not widget.load_default_button.isHidden()
    with capture_notifications() as notes:
        assert widget.predict_current() is None
        assert widget.predict_all() is None
    assert notes.any("Load a model in the Model panel first")
    assert notes.any("Load default model")

    loaded = []
    monkeypatch.setattr(
        checkpoint, "load_checkpoint", lambda path, device="cpu": loaded.append(path) or fake
    )
    widget.load_default_button.click()
    qtbot.waitUntil(lambda: session.model is fake, timeout=5000)
    assert loaded == ["default"]
    assert widget.load_default_button.isHidden()


def test_missing_default_model_is_a_notification(compare, qtbot, monkeypatch):
    from napari_nuclei_unet.core import checkpoint

    viewer, widget, session, samples, fake = compare
    session.set_model(None)

    def missing(path, device="cpu"):
        raise checkpoint.CheckpointError("The default model is not installed: x is missing.")

    monkeypatch.setattr(checkpoint, "load_checkpoint", missing)
    with capture_notifications() as notes:
        wait_worker(qtbot, widget.load_default_model())
    assert notes.any("default model is not installed")
    assert session.model is None
    assert widget.load_default_button.isEnabled()


def test_no_sample_selected_is_explained(compare):
    viewer, widget, session, samples, fake = compare
    session.current_id = None
    with capture_notifications() as notes:
        assert widget.predict_current() is None
    assert notes.any("Select an image in the Data panel first")


def test_sample_without_labels_shows_prediction_and_says_why_no_iou(compare, qtbot):
    from napari_nuclei_unet.widgets._compare_layers import ERROR_LAYER, PREDICTION_LAYER

    viewer, widget, session, samples, fake = compare
    unlabelled = samples[-1]
    show(viewer, session, unlabelled)
    with capture_notifications() as notes:
        predict_current(qtbot, widget)
    assert notes.any("IoU")
    assert viewer.layers[PREDICTION_LAYER].data.max() > 0
    assert unlabelled.id not in session.rows
    assert "needs a label mask" in widget.metrics_label.text()
    widget.set_mode("overlay")
    assert not viewer.layers[ERROR_LAYER].visible


def test_second_prediction_while_busy_is_refused(compare, qtbot, monkeypatch):
    import threading

    from napari_nuclei_unet.core import segment

    viewer, widget, session, samples, fake = compare
    release = threading.Event()
    original = segment.predict_network_maps

    def slow(model, image, *args, **kwargs):
        release.wait(10)
        return original(model, image, *args, **kwargs)

    monkeypatch.setattr(segment, "predict_network_maps", slow)
    worker = widget.predict_all()
    with capture_notifications() as notes:
        assert widget.predict_current() is None
    assert notes.any("already running")
    assert widget.cancel_button.isEnabled()
    widget.cancel()
    release.set()
    wait_worker(qtbot, worker)
    assert len(session.probabilities) <= len(samples)
    assert widget.predict_button.isEnabled()


def test_screenshot_shows_both_masks(compare, qtbot):
    """Pixels, not only files: the label mask left, the prediction right; error colours."""
    from napari_nuclei_unet.widgets._compare_layers import ERROR_COLORS

    viewer, widget, session, samples, fake = compare
    viewer.window.show()  # a hidden canvas renders black under Xvfb
    viewer.window._qt_window.resize(1000, 700)
    predict_current(qtbot, widget)
    qtbot.wait(50)
    viewer.reset_view()
    qtbot.wait(50)
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    assert shot.std() > 5  # not blank

    saturation = shot.max(axis=2) - shot.min(axis=2)
    coloured = saturation > 60  # label colours; the image itself is grey
    height, width = coloured.shape
    left = coloured[:, : width // 2].sum()
    right = coloured[:, width // 2 :].sum()
    assert left > 500 and right > 500, (left, right)

    widget.set_mode("overlay")
    viewer.reset_view()
    qtbot.wait(50)
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    r, g, b = shot[..., 0], shot[..., 1], shot[..., 2]
    green = (g > r + 40) & (g > b + 40)
    magenta = (r > g + 60) & (b > g + 60)
    yellow = (r > b + 60) & (g > b + 60) & (abs(r - g) < 80)
    assert green.sum() > 500, green.sum()
    assert magenta.sum() > 50, magenta.sum()
    assert yellow.sum() > 50, yellow.sum()
    assert len(ERROR_COLORS) == 3


def test_pane_guard_leaves_the_plugins_own_layers_alone(compare, qtbot):
    from napari_nuclei_unet.widgets._compare_layers import PLUGIN_LAYERS
    from napari_nuclei_unet.widgets._retrain_editing import CORRECTION_LAYER

    assert CORRECTION_LAYER in PLUGIN_LAYERS
    viewer, widget, session, samples, fake = compare
    predict_current(qtbot, widget)
    layer = viewer.add_labels(np.zeros((8, 8), np.int32), name=CORRECTION_LAYER)
    assert layer.visible


def _blocked_at(monkeypatch, image_number: int):
    """Patch the fake network to wait, at its ``image_number``-th image, for the event."""
    import threading

    from napari_nuclei_unet.core import segment
    from napari_nuclei_unet.widgets import _prediction_service

    monkeypatch.setattr(_prediction_service, "PARTIAL_EVERY_S", 0.0,  # every image
                        raising=False)
    release = threading.Event()
    original = segment.predict_network_maps
    calls = [0]

    def blocked(model, image, *args, **kwargs):
        calls[0] += 1
        if calls[0] == image_number:
            release.wait(10)
        return original(model, image, *args, **kwargs)

    monkeypatch.setattr(segment, "predict_network_maps", blocked)
    return release


def test_predict_all_shows_the_scores_of_the_images_done_so_far(compare, qtbot, monkeypatch):
    """670 images take minutes: the table fills as they are done, not all at the end."""
    viewer, widget, session, samples, fake = compare
    release = _blocked_at(monkeypatch, 3)
    worker = widget.predict_all()
    try:
        qtbot.waitUntil(lambda: len(session.rows) == 2, timeout=10_000)
        assert widget.is_busy() and not worker.handled  # still at the third image
        assert set(session.probabilities) == {s.id for s in samples[:2]}
    finally:
        release.set()
    wait_worker(qtbot, worker)
    assert set(session.rows) == {s.id for s in samples if s.has_labels}
    assert set(session.probabilities) == {s.id for s in samples}


def test_images_done_after_another_dataset_was_opened_are_not_filed_under_it(
        compare, qtbot, monkeypatch, tmp_path):
    from pathlib import Path

    viewer, widget, session, samples, fake = compare

    class Folder:
        def __init__(self, path: Path) -> None:
            self.path = path

        def ids(self) -> list[str]:
            return []

    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    session.dataset = Folder(tmp_path / "first")
    release = _blocked_at(monkeypatch, 3)
    worker = widget.predict_all()
    try:
        qtbot.waitUntil(lambda: len(session.rows) == 2, timeout=10_000)
        session.set_dataset(Folder(tmp_path / "second"))
        assert session.rows == {}
    finally:
        release.set()
    with capture_notifications() as notes:
        wait_worker(qtbot, worker)
    assert session.rows == {} and session.probabilities == {}
    assert notes.any("Another dataset was opened during the prediction, which stopped: the "
                     "scores of the 2 image(s) done before are kept with the first dataset")
    assert fake.calls == 3 < len(samples)  # it stopped after the image it was at
    assert not notes.any("before Cancel")
    assert widget.predict_all_button.isEnabled()


def test_the_shown_prediction_is_not_drawn_again_when_other_images_are_done(
        compare, qtbot, monkeypatch):
    from napari_nuclei_unet.widgets import compare_widget

    viewer, widget, session, samples, fake = compare
    predict_current(qtbot, widget)
    drawn = []
    original = compare_widget.show_prediction
    monkeypatch.setattr(compare_widget, "show_prediction",
                        lambda *a, **k: (drawn.append(1), original(*a, **k)))
    other = samples[1]
    session.add_predictions(fake, {other.id: fake.maps[id(other.image)]})
    assert drawn == []
    session.probabilities[samples[0].id] = fake.maps[id(samples[0].image)].copy()
    session.predictions_changed.emit()  # the shown image's own prediction changed
    assert drawn == [1]
    # the user deleted the prediction layer: the next results bring it back
    from napari_nuclei_unet.widgets._compare_layers import PREDICTION_LAYER

    viewer.layers.remove(PREDICTION_LAYER)
    session.add_predictions(fake, {samples[2].id: fake.maps[id(samples[2].image)]})
    assert drawn == [1, 1] and PREDICTION_LAYER in viewer.layers
