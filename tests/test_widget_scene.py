"""widgets._scene: several layer visibility/grid changes make one scene-graph rebuild."""

from __future__ import annotations

import numpy as np
import pytest

from napari_nuclei_unet.widgets._scene import camera_of

pytestmark = pytest.mark.gui


def _count_rebuilds(canvas, monkeypatch):
    """Count the scene-graph rebuilds napari really makes (not the paused calls)."""
    calls = []
    original = canvas._reorder_layers  # called by every rebuild that is not paused

    def counting():
        calls.append(1)
        return original()

    monkeypatch.setattr(canvas, "_reorder_layers", counting)
    return calls


def test_one_rebuild_for_many_visibility_changes(make_napari_viewer, monkeypatch):
    from napari_nuclei_unet.widgets._compare_layers import grid_of
    from napari_nuclei_unet.widgets._scene import one_scene_rebuild, scene_canvas, set_visible

    viewer = make_napari_viewer()
    layers = [viewer.add_labels(np.zeros((8, 8), np.int32), name=f"l{i}") for i in range(4)]
    canvas = scene_canvas(viewer)
    assert canvas is not None and canvas is viewer.window._qt_viewer.canvas
    calls = _count_rebuilds(canvas, monkeypatch)
    for layer in layers:
        layer.visible = False
    assert len(calls) == 4  # napari alone: one rebuild per change
    calls.clear()
    with one_scene_rebuild(viewer):
        for layer in layers:
            layer.visible = True
        with one_scene_rebuild(viewer):  # nested: still one, at the outer end
            grid_of(viewer).enabled = True
        assert calls == []
    assert len(calls) == 1
    assert all(layer.visible for layer in layers) and not canvas._pause_scene_graph
    # the same value again changes nothing (napari's setter would rebuild)
    calls.clear()
    assert set_visible(layers[0], True) is False and calls == []
    assert set_visible(layers[0], False) is True and len(calls) == 1


def test_without_a_window_the_changes_run_unbatched():
    from types import SimpleNamespace

    from napari_nuclei_unet.widgets._scene import one_scene_rebuild, scene_canvas

    viewer = SimpleNamespace()
    assert scene_canvas(viewer) is None
    with one_scene_rebuild(viewer):
        pass


def test_a_mode_switch_and_the_editing_view_rebuild_the_scene_once(make_napari_viewer,
                                                                    monkeypatch):
    from _widget_helpers import labelled_synthetic_samples
    from napari_nuclei_unet.widgets import _compare_layers as cl
    from napari_nuclei_unet.widgets._layers import show_sample
    from napari_nuclei_unet.widgets._retrain_editing import promote_prediction
    from napari_nuclei_unet.widgets._scene import scene_canvas

    viewer = make_napari_viewer()
    (sample,) = labelled_synthetic_samples(1, (48, 64), first_seed=3)
    image, truth = show_sample(viewer, sample)

    def show(mode):
        cl.show_comparison(viewer, image_layer=image, truth_layer=truth,
                           pred_labels=sample.labels, true_labels=sample.labels, mode=mode,
                           sample_id=sample.id)

    show(cl.SIDE_BY_SIDE)  # the layers exist from here on
    calls = _count_rebuilds(scene_canvas(viewer), monkeypatch)
    for mode in (cl.OVERLAY, cl.SIDE_BY_SIDE, cl.OVERLAY):
        calls.clear()
        show(mode)
        assert len(calls) == 1, mode  # four to seven visibility/grid changes each
        assert cl.shown_mode(viewer) == mode
    assert viewer.layers[cl.ERROR_LAYER].visible and not viewer.layers[cl.TITLE_LEFT_LAYER].visible
    promote_prediction(viewer, sample.labels, sample)  # adds the correction layer
    show(cl.SIDE_BY_SIDE)
    calls.clear()
    layer = promote_prediction(viewer, sample.labels, sample)
    assert len(calls) == 1
    assert not cl.grid_of(viewer).enabled
    assert [lay.name for lay in viewer.layers if lay.visible] == [image.name, layer.name]


def _count_shader_builds(monkeypatch):
    """Count vispy's shader program builds (parse, compile, link on the main thread)."""
    from vispy.visuals.shaders import program

    builds = []
    original = program.ModularProgram._build

    def counting(self):
        builds.append(1)
        return original(self)

    monkeypatch.setattr(program.ModularProgram, "_build", counting)
    return builds


def _count_layer_shader_builds(viewer, monkeypatch):
    """Count vispy program builds of the layers' own visuals (not napari's canvas overlays).

    napari sets the transform of its caption's background box again at every
    scene-graph rebuild, which builds that small rectangle's program (one per
    visibility change batch, with or without the plugin's panes).
    """
    import sys

    from vispy.visuals.shaders import program

    canvas = viewer.window._qt_viewer.canvas
    builds = []
    original = program.ModularProgram._build

    def counting(self):
        nodes = {id(visual.node): layer.name for layer, visual in canvas.layer_to_visual.items()}
        frame = sys._getframe(1)
        while frame is not None:
            owner = frame.f_locals.get("self")
            if frame.f_code.co_name == "draw" and id(owner) in nodes:
                builds.append(nodes[id(owner)])
                break
            frame = frame.f_back
        return original(self)

    monkeypatch.setattr(program.ModularProgram, "_build", counting)
    return builds


def _draw(viewer, qtbot):
    viewer.window._qt_viewer.canvas._scene_canvas.render()
    qtbot.wait(10)


def test_new_labels_data_builds_no_shader(make_napari_viewer, qtbot, monkeypatch):
    """A prediction, label mask or correction shown again rebuilt the layer's shader.

    napari made a new colormap at every data change (``_on_colormap_change``) and
    vispy built the program again (40-100 ms on the main thread each).
    """
    from napari_nuclei_unet.widgets._compare_layers import placeholder_makers
    from napari_nuclei_unet.widgets._layers import LABELS_LAYER, get_or_create_labels

    viewer = make_napari_viewer(show=True)
    for make in placeholder_makers(viewer):
        make()
    layers = [layer for layer in viewer.layers if layer._type_string == "labels"]
    for layer in layers:
        layer.visible = True
    _draw(viewer, qtbot)
    builds = _count_shader_builds(monkeypatch)
    rng = np.random.default_rng(0)
    for count in (3, 40, 400):
        data = np.zeros((64, 96), np.int32)
        data.ravel()[rng.choice(data.size, count, replace=False)] = np.arange(1, count + 1)
        for layer in layers:
            layer.data = data.astype(layer.data.dtype) if count < 256 else (
                data if layer.data.dtype == np.int32 else layer.data)
        get_or_create_labels(viewer, LABELS_LAYER, data)
        _draw(viewer, qtbot)
    assert builds == []
    shown = viewer.layers[LABELS_LAYER]  # colours still follow the data (cyclic colormap)
    assert np.array_equal(shown.data, data)
    values = np.unique(data)[1:3]
    colors = shown.colormap.map(values)
    assert colors.shape == (2, 4) and colors[:, 3].min() > 0
    # a dtype change still rebuilds the colormap (napari checks the dtypes itself)
    shown.data = data.astype(np.uint16)
    _draw(viewer, qtbot)
    assert builds


def test_a_mode_switch_builds_no_shader(make_napari_viewer, qtbot, monkeypatch):
    """Side by side <-> overlay (and the correction view) only translate and hide layers.

    With napari's grid as the two panes, every switch between one pane and two moved
    each visual to another view box and vispy built 8-10 programs again (40-100 ms
    each with software OpenGL, on the main thread).
    """
    from _widget_helpers import labelled_synthetic_samples
    from napari_nuclei_unet.widgets import _compare_layers as cl
    from napari_nuclei_unet.widgets._layers import show_sample
    from napari_nuclei_unet.widgets._retrain_editing import (
        hide_correction_layer,
        promote_prediction,
    )

    viewer = make_napari_viewer(show=True)
    (sample,) = labelled_synthetic_samples(1, (48, 64), first_seed=4)
    image, truth = show_sample(viewer, sample)

    def show(mode):
        cl.show_comparison(viewer, image_layer=image, truth_layer=truth,
                           pred_labels=sample.labels, true_labels=sample.labels, mode=mode,
                           sample_id=sample.id)
        _draw(viewer, qtbot)

    for mode in (cl.SIDE_BY_SIDE, cl.OVERLAY, cl.SIDE_BY_SIDE):  # every layer drawn once
        show(mode)
    promote_prediction(viewer, sample.labels, sample)
    _draw(viewer, qtbot)
    hide_correction_layer(viewer)  # saved: the panes come back
    show(cl.SIDE_BY_SIDE)
    builds = _count_layer_shader_builds(viewer, monkeypatch)
    for mode in (cl.OVERLAY, cl.SIDE_BY_SIDE, cl.OVERLAY, cl.SIDE_BY_SIDE):
        show(mode)
        assert cl.shown_mode(viewer) == mode
    assert cl.side_by_side_active(viewer)
    promote_prediction(viewer, sample.labels, sample)  # the one-pane correction view
    _draw(viewer, qtbot)
    assert not viewer.layers[cl.PREDICTION_LAYER].visible
    assert builds == []


def test_labels_look_the_same_without_the_shader_rebuild(make_napari_viewer, qtbot):
    """The layer kept from rebuilding draws the very pixels napari's own layer draws."""
    from napari_nuclei_unet.widgets._scene import keep_shader_on_data_change

    viewer = make_napari_viewer(show=True)
    plain = viewer.add_labels(np.zeros((8, 8), np.int32), name="plain")
    kept = viewer.add_labels(np.zeros((8, 8), np.int32), name="kept")
    assert keep_shader_on_data_change(viewer, kept)
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    sizes = []

    def canvas_settled() -> bool:  # a window just shown still resizes its canvas
        sizes.append(tuple(canvas.size))
        return len(sizes) > 10 and len(set(sizes[-10:])) == 1

    qtbot.waitUntil(canvas_settled, timeout=10_000)
    rng = np.random.default_rng(1)
    for count in (400, 70_000):  # a cyclic colormap, then more labels than colours
        data = np.zeros((300, 300), np.int32)
        data.ravel()[rng.choice(data.size, count, replace=False)] = rng.integers(
            1, count + 1, count)
        kept.data, plain.data = data, data.copy()
        viewer.reset_view()
        shots = []
        for shown, hidden in ((kept, plain), (plain, kept)):
            shown.visible, hidden.visible = True, False
            qtbot.wait(10)
            shots.append(canvas.render())
        first, second = shots
        assert first.shape == second.shape  # the same view of the same canvas
        assert (first[..., :3] > 0).any(-1).sum() > 1000  # labels drawn in colour
        assert np.array_equal(first, second)


def test_correction_layer_is_not_moved_again_to_the_same_place(make_napari_viewer):
    """Promoting a prediction set translate and scale again (a redraw) for the same image."""
    from _widget_helpers import labelled_synthetic_samples
    from napari_nuclei_unet.widgets._layers import IMAGE_LAYER, show_sample
    from napari_nuclei_unet.widgets._retrain_editing import promote_prediction

    viewer = make_napari_viewer()
    first, second = labelled_synthetic_samples(2, (48, 64), first_seed=11)
    show_sample(viewer, first)
    layer = promote_prediction(viewer, first.labels, first)
    moved = []
    layer.events.translate.connect(lambda _e: moved.append("translate"))
    layer.events.scale.connect(lambda _e: moved.append("scale"))
    show_sample(viewer, second)
    promote_prediction(viewer, second.labels, second)
    assert moved == []  # same place: nothing set
    viewer.layers[IMAGE_LAYER].translate = (5, 7)
    promote_prediction(viewer, second.labels, second)
    assert moved == ["translate"] and tuple(layer.translate) == (5, 7)


def test_the_camera_frames_the_visible_layers_only(make_napari_viewer):
    from napari_nuclei_unet.widgets._scene import frame_shown

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 64), np.uint8), name="small")
    big = viewer.add_image(np.zeros((600, 800), np.uint8), name="big hidden copy")
    big.visible = False
    frame_shown(viewer)
    framed = camera_of(viewer).zoom
    assert tuple(camera_of(viewer).center[-2:]) == pytest.approx((31.5, 31.5), abs=1.0)
    viewer.reset_view()  # napari's own: the hidden 600 x 800 layer counts
    assert camera_of(viewer).zoom < framed / 5


def test_a_2d_sample_is_framed_beside_the_users_hidden_stack(make_napari_viewer):
    # napari's reset_view(layers=...) raised IndexError when the layers shown had fewer
    # dimensions than the viewer: a DSB2018 sample clicked after the user had opened a
    # 2-channel Z-stack (GUI check h_gui15)
    from napari_nuclei_unet.widgets._scene import _fit_image_layers, frame_shown

    viewer = make_napari_viewer()
    stack = viewer.add_image(np.zeros((2, 2, 600, 800), np.uint16), name="embryo_zstack")
    stack.visible = False
    image = viewer.add_image(np.zeros((64, 96), np.uint8), name="nuclei image")
    labels = viewer.add_labels(np.zeros((64, 96), np.int32), name="label mask")
    assert viewer.dims.ndim == 4
    assert frame_shown(viewer)
    assert tuple(viewer.scene.camera.center[-2:]) == pytest.approx((31.5, 47.5), abs=1e-6)
    framed = viewer.scene.camera.zoom
    viewer.reset_view()  # every layer: the hidden 600 x 800 stack counts
    assert viewer.scene.camera.zoom < framed / 5
    # an axis displayed that the 2-D layers lack: napari's own framing, without an error
    viewer.dims.order = (2, 3, 0, 1)
    assert not _fit_image_layers(viewer, [image, labels])
    viewer.scene.camera.zoom = 123.0
    frame_shown(viewer)  # napari's reset_view(layers=...) raised here: every layer then
    assert viewer.scene.camera.zoom != 123.0 and np.isfinite(viewer.scene.camera.zoom)


def _counting_layer_list_copies(monkeypatch) -> list:
    from napari.components import viewer_model

    copies = []
    real = viewer_model.LayerList

    def counting(*args, **kwargs):
        copies.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(viewer_model, "LayerList", counting)
    return copies


def test_framing_needs_no_copy_of_the_layer_list_when_hidden_layers_add_nothing(
        make_napari_viewer, monkeypatch):
    """napari's ``reset_view(layers=...)`` copies the layer list (15-30 ms a view change)."""
    from napari_nuclei_unet.widgets._scene import _hidden_add_nothing

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((64, 96), np.uint8), name="image")
    inside = viewer.add_labels(np.zeros((64, 96), np.int32), name="hidden, same size")
    inside.visible = False
    assert _hidden_add_nothing(viewer, [image])  # reset_view() then frames the same
    larger = viewer.add_labels(np.zeros((600, 800), np.int32), name="hidden, larger")
    larger.visible = False
    assert not _hidden_add_nothing(viewer, [image])


@pytest.mark.parametrize("case", ["hidden larger", "two panes", "scaled", "all shown",
                                  "pane titles"])
def test_image_layers_are_framed_as_napari_frames_them_without_copying_the_list(
        make_napari_viewer, monkeypatch, case):
    """Measured in a session: ``reset_view(layers=...)`` 27 ms, ``reset_view()`` 9 ms."""
    from napari_nuclei_unet.widgets._scene import frame_shown

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((64, 96), np.uint8), name="image")
    labels = viewer.add_labels(np.zeros((64, 96), np.int32), name="labels")
    hidden = viewer.add_labels(np.zeros((600, 800), np.int32), name="hidden, larger")
    hidden.visible = False
    if case == "two panes":
        viewer.add_image(np.zeros((64, 96), np.uint8), name="pane", translate=(0, 100))
    if case == "scaled":
        image.scale = labels.scale = (0.5, 0.25)
        image.translate = labels.translate = (10, -20)
    if case == "all shown":
        hidden.visible = True
    if case == "pane titles":  # one-point Points layers at the panes' corners
        from napari_nuclei_unet.widgets._compare_layers import TITLE_LEFT_LAYER, _add_title

        image.scale = labels.scale = (0.5, 0.25)
        image.translate = labels.translate = (10, -20)
        title = _add_title(viewer, TITLE_LEFT_LAYER)
        title.scale, title.translate = image.scale, image.translate
    shown = [layer for layer in viewer.layers if layer.visible]
    viewer.reset_view(layers=shown)  # napari's framing
    expected = (viewer.scene.camera.zoom, tuple(viewer.scene.camera.center))
    viewer.scene.camera.zoom *= 3
    viewer.scene.camera.center = (0, 0)
    copies = _counting_layer_list_copies(monkeypatch)
    frame_shown(viewer)
    assert copies == []
    assert viewer.scene.camera.zoom == pytest.approx(expected[0], rel=1e-6)
    assert tuple(viewer.scene.camera.center) == pytest.approx(expected[1], abs=1e-6)


def test_other_layers_are_framed_by_napari(make_napari_viewer, monkeypatch):
    from napari_nuclei_unet.widgets._scene import _fit_image_layers, frame_shown

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((64, 96), np.uint8), name="image")
    points = viewer.add_points([[10, 500]], name="title")
    viewer.add_labels(np.zeros((600, 800), np.int32), name="hidden").visible = False
    assert not _fit_image_layers(viewer, [points])
    copies = _counting_layer_list_copies(monkeypatch)
    frame_shown(viewer)
    assert copies  # napari's reset_view(layers=...), which counts the point's extent
    assert viewer.scene.camera.center[-1] > 200


def test_framing_reads_only_what_napari_lets_a_plugin_read(make_napari_viewer):
    """A plugin's viewer is napari's public-only proxy: private reads warn on the console."""
    import warnings

    from napari.utils._proxies import PublicOnlyProxy

    from napari_nuclei_unet.widgets._scene import _fit_image_layers, _hidden_add_nothing

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((64, 96), np.uint8), name="image")
    viewer.add_labels(np.zeros((32, 32), np.int32), name="hidden, inside").visible = False
    proxy = PublicOnlyProxy(viewer)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        assert _hidden_add_nothing(proxy, [proxy.layers["image"]])
        assert _fit_image_layers(proxy, [proxy.layers["image"]])
    larger = viewer.add_labels(np.zeros((600, 800), np.int32), name="hidden, larger")
    larger.visible = False
    assert not _hidden_add_nothing(viewer, [image])


def test_an_image_given_while_hidden_is_framed_at_its_new_size(make_napari_viewer):
    """The layer warm-up makes 8 x 8 placeholders; the first image replaces their data.

    napari keeps a hidden layer's extent cached: framing from ``layer.extent`` showed
    the session's first image 71 times too close (an 8 x 8 box).
    """
    from napari_nuclei_unet.widgets._scene import frame_shown

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((8, 8, 3), np.uint8), rgb=True, visible=False)
    labels = viewer.add_labels(np.zeros((8, 8), np.int32), visible=False)
    image.data = np.zeros((256, 320, 3), np.uint8)
    labels.data = np.zeros((256, 320), np.int32)
    image.visible = labels.visible = True
    viewer.reset_view()  # napari's framing, from the data
    expected = (viewer.scene.camera.zoom, tuple(viewer.scene.camera.center))
    viewer.scene.camera.zoom *= 3
    frame_shown(viewer)
    assert viewer.scene.camera.zoom == pytest.approx(expected[0], rel=1e-6)
    assert tuple(viewer.scene.camera.center) == pytest.approx(expected[1], abs=1e-6)


def test_the_first_sample_shown_after_the_warm_up_is_framed_whole(make_napari_viewer):
    from _widget_helpers import labelled_synthetic_samples
    from napari_nuclei_unet.widgets._compare_layers import placeholder_makers
    from napari_nuclei_unet.widgets._layers import show_sample

    viewer = make_napari_viewer()
    for make in placeholder_makers(viewer):
        make()
    (sample,) = labelled_synthetic_samples(1, (200, 240), 0)
    show_sample(viewer, sample)
    zoom = viewer.scene.camera.zoom
    viewer.reset_view()
    assert zoom == pytest.approx(viewer.scene.camera.zoom, rel=1e-6)


def _shown_side_by_side(viewer):
    """A synthetic sample shown with its prediction side by side; (sample, image, truth)."""
    from _widget_helpers import labelled_synthetic_samples
    from napari_nuclei_unet.widgets import _compare_layers as cl
    from napari_nuclei_unet.widgets._layers import show_sample

    (sample,) = labelled_synthetic_samples(1, (48, 64), first_seed=4)
    image, truth = show_sample(viewer, sample)

    def side_by_side():
        cl.show_comparison(viewer, image_layer=image, truth_layer=truth,
                           pred_labels=sample.labels, true_labels=sample.labels,
                           mode=cl.SIDE_BY_SIDE, sample_id=sample.id)

    side_by_side()
    return sample, image, side_by_side


def test_moving_the_prediction_pane_updates_the_viewer_dims_once(make_napari_viewer,
                                                                 monkeypatch):
    """napari recomputed its dims from every layer at each of the pane's 3 translate sets."""
    from napari_nuclei_unet.widgets import _compare_layers as cl

    viewer = make_napari_viewer()
    _sample, image, _again = _shown_side_by_side(viewer)
    beside = float(viewer.dims.range[-1].stop)
    calls = []
    real = viewer._on_layers_change

    def counting():
        calls.append(1)
        return real()

    monkeypatch.setattr(viewer, "_on_layers_change", counting)  # napari looks it up per event
    assert cl.place_prediction_pane(viewer, image, beside=False)  # 3 layers moved
    assert len(calls) == 1
    assert float(viewer.dims.range[-1].stop) < beside  # the dims follow the moved layers
    calls.clear()
    assert not cl.place_prediction_pane(viewer, image, beside=False)  # nothing to move
    assert calls == []
    assert cl.place_prediction_pane(viewer, image, beside=True)
    assert len(calls) == 1 and float(viewer.dims.range[-1].stop) == pytest.approx(beside)
    # napari's own connection is intact afterwards: one set, one update
    calls.clear()
    viewer.layers[cl.PREDICTION_LAYER].translate = (0, 1)
    assert len(calls) == 1


def _pane_at_image(viewer, image) -> bool:
    from napari_nuclei_unet.widgets import _compare_layers as cl

    return all(tuple(viewer.layers[n].translate) == tuple(image.translate)
               for n in cl.PREDICTION_PANE_LAYERS)


def test_the_correction_view_moves_the_hidden_pane_back_later(make_napari_viewer, qtbot,
                                                              monkeypatch):
    """The click frames the one pane at once; the hidden pane moves after its repaint."""
    from napari_nuclei_unet.widgets import _compare_layers as cl
    from napari_nuclei_unet.widgets import _retrain_editing as editing
    from napari_nuclei_unet.widgets._retrain_editing import (
        hide_correction_layer,
        promote_prediction,
    )

    viewer = make_napari_viewer()
    sample, image, side_by_side = _shown_side_by_side(viewer)

    def pane_at_image():
        return _pane_at_image(viewer, image)

    two_panes = camera_of(viewer).zoom
    # a long delay here, so that a slow machine's repaint cannot outlast it
    monkeypatch.setattr(editing, "PANE_BACK_MS", 1000)
    promote_prediction(viewer, sample.labels, sample)
    qtbot.wait(20)  # the click's repaint: a zero-delay timer would run before it
    assert not pane_at_image()  # not in the click's stall
    assert camera_of(viewer).zoom > two_panes * 1.5  # but the one pane is framed already
    assert tuple(camera_of(viewer).center[-2:]) == pytest.approx((23.5, 31.5), abs=1.0)
    qtbot.waitUntil(pane_at_image, timeout=5000)
    monkeypatch.setattr(editing, "PANE_BACK_MS", 100)
    # side by side shown again before the delay is over: the panes stay apart
    hide_correction_layer(viewer)
    side_by_side()
    promote_prediction(viewer, sample.labels, sample)
    hide_correction_layer(viewer)
    side_by_side()
    qtbot.wait(200)
    assert cl.side_by_side_active(viewer) and not pane_at_image()


def test_without_naparis_layer_fit_the_one_pane_is_framed_once_the_pane_is_back(
        make_napari_viewer, qtbot, monkeypatch):
    """napari < 0.9 fits hidden layers too: framed again once the hidden pane is back."""
    import napari

    from napari_nuclei_unet.widgets import _scene
    from napari_nuclei_unet.widgets._retrain_editing import promote_prediction

    viewer = make_napari_viewer()
    sample, image, _again = _shown_side_by_side(viewer)
    two_panes = camera_of(viewer).zoom
    real_reset = napari.Viewer.reset_view

    def old_reset_view(self, *args, **kwargs):
        if "layers" in kwargs:
            raise TypeError("reset_view() got an unexpected keyword argument 'layers'")
        return real_reset(self, *args, **kwargs)

    monkeypatch.setattr(_scene, "_fit_image_layers", lambda _viewer, _shown: False)
    monkeypatch.setattr(napari.Viewer, "reset_view", old_reset_view)
    promote_prediction(viewer, sample.labels, sample)
    assert camera_of(viewer).zoom < two_panes * 1.2  # the hidden pane still widens the frame
    qtbot.waitUntil(lambda: _pane_at_image(viewer, image), timeout=5000)
    assert camera_of(viewer).zoom > two_panes * 1.5  # then the one pane is framed
    assert tuple(camera_of(viewer).center[-2:]) == pytest.approx((23.5, 31.5), abs=1.0)


def test_the_hidden_pane_waits_for_no_closed_window(make_napari_viewer, qtbot):
    """A window closed within the delay: napari cleared its layers; nothing moves or raises."""
    from napari_nuclei_unet.widgets import _compare_layers as cl
    from napari_nuclei_unet.widgets import _retrain_editing as editing

    viewer = make_napari_viewer()
    sample, _image, _again = _shown_side_by_side(viewer)
    moved = []
    viewer.layers[cl.PREDICTION_LAYER].events.translate.connect(lambda _e: moved.append(1))
    editing.promote_prediction(viewer, sample.labels, sample)
    viewer.close()
    qtbot.wait(editing.PANE_BACK_MS + 100)  # an exception in the timer fails the test
    assert moved == []


def test_the_users_first_layer_after_the_panels_placeholders_is_framed(make_napari_viewer,
                                                                        qtbot):
    """The hidden 8 x 8 placeholders came first, so napari framed them and left a
    user's image opened next zoomed on 8 pixels (grey blocks until Home)."""
    from napari_nuclei_unet.widgets._compare_layers import placeholder_makers
    from napari_nuclei_unet.widgets._scene import frame_first_own_layer

    viewer = make_napari_viewer()
    frame_first_own_layer(viewer)
    frame_first_own_layer(viewer)  # once per viewer
    for make in placeholder_makers(viewer):
        make()
    placeholder_zoom = camera_of(viewer).zoom
    viewer.add_image(np.zeros((520, 696), np.uint8), name="mine")
    qtbot.waitUntil(lambda: camera_of(viewer).zoom < placeholder_zoom / 10, timeout=2000)
    assert tuple(camera_of(viewer).center[-2:]) == pytest.approx((259.5, 347.5), abs=1.0)
    # a second layer keeps the view the user has now
    camera_of(viewer).zoom = 3.0
    viewer.add_image(np.zeros((100, 100), np.uint8), name="another")
    qtbot.wait(50)
    assert camera_of(viewer).zoom == pytest.approx(3.0)
