"""The plugin's layers, made and drawn once unseen in small main-thread turns, ahead of use.

* :class:`TurnRunner` -- runs small steps one per event-loop turn while the window is idle.
* :func:`layer_warm_up_steps` -- make each plugin layer hidden and draw it once at zero
  opacity (shaders, caption glyphs), so that the first real image,
  prediction, overlay and correction draw warm (issue 11).
* :class:`LayerWarmUp` -- the viewer's runner; makes the dataset workflow's layers on
  demand (not over the user's own images until a dataset is opened).
* ``_gc_pause.settle_heap_steps`` -- freeze the warmed-up heap once every warm-up is over
  and no job runs (see there).
* :func:`ensure_layer_warm_up` -- start all of it once per viewer, from whichever dock
  (or the panel) opens first.

The warm-ups that run in workers are in :mod:`._warm_up`.
"""

from __future__ import annotations

import warnings
from functools import partial

from napari_nuclei_unet.widgets._gc_pause import PAUSE, settle_heap_steps
from napari_nuclei_unet.widgets._warm_up import warming_up

#: Every character the canvas caption and pane titles may draw: vispy renders a
#: font glyph into its atlas (on the main thread, ~10 ms each) the first time it
#: draws it; the first caption shown stalled for ~150 ms.
CAPTION_CHARS = ("0123456789abcdefABCDEF ·×-_:.,()/ px nuclei fluorescence brightfield "
                 "histology label mask prediction")
#: Distinct characters drawn per warm-up turn: all of them in one draw held the
#: window 150-250 ms (``bench_journey``'s warm-up step); a glyph costs about 10 ms.
CAPTION_CHUNK = 3


def caption_chunks(chars: str = CAPTION_CHARS, size: int = CAPTION_CHUNK) -> list[str]:
    """The distinct characters of ``chars``, in order, ``size`` per text."""
    distinct = "".join(dict.fromkeys(chars))
    return [distinct[i:i + size] for i in range(0, len(distinct), size)]


class TurnRunner:
    """Run small main-thread steps one per event-loop turn, while the window is idle.

    Each step is a callable; one that returns a list adds those steps next; one
    that raises is logged and skipped (a warm-up never breaks the panel). Steps
    wait until ``ready()`` is true (e.g. the window is shown, so that first draws
    can happen).

    Parameters
    ----------
    steps : list of callable
        The steps, in order.
    interval_ms : int, optional
        Pause between two steps, so that the window stays responsive.
    ready : callable, optional
        Steps start once it returns True (polled every 200 ms).

    Attributes
    ----------
    done : bool
        True once every step ran.
    """

    def __init__(self, steps: list, *, interval_ms: int = 30, ready=None) -> None:
        self._steps = list(steps)
        self._interval = interval_ms
        self._ready = ready
        self.done = not self._steps
        self._stopped = False

    def start(self) -> TurnRunner:
        """Schedule the first step; returns self."""
        self._schedule(self._interval)
        return self

    def _schedule(self, ms: int) -> None:
        from qtpy.QtCore import QTimer

        if not self.done:
            QTimer.singleShot(ms, self._next)

    def extend(self, steps: list, *, first: bool = False) -> TurnRunner:
        """Run ``steps`` after the others, or before them when ``first``; returns self.

        When every step had run, the runner starts again.
        """
        if self._stopped:
            return self
        was_done = self.done
        if first:
            self._steps[:0] = steps
        else:
            self._steps.extend(steps)
        self.done = not self._steps
        if was_done and not self.done:
            self._schedule(self._interval)
        return self

    def stop(self) -> None:
        """Run no more steps (e.g. the window closed), now or later."""
        self._stopped = True
        self._steps.clear()
        self.done = True

    def _next(self) -> None:
        import logging

        try:
            ready = self._ready is None or self._ready()
        except Exception:  # e.g. the window is gone: nothing left to warm up
            logging.getLogger(__name__).debug("warm-up stopped", exc_info=True)
            self.stop()
            return
        if not ready:
            self._schedule(200)
            return
        if not self._steps:  # stopped meanwhile
            return
        step = self._steps.pop(0)
        try:
            more = step()
            if isinstance(more, list):  # a step may add steps, run next
                self._steps[:0] = more
        except Exception:  # a warm-up never breaks the panel
            logging.getLogger(__name__).debug("warm-up step failed", exc_info=True)
        self.done = not self._steps
        self._schedule(self._interval)


def layer_warm_up_steps(viewer) -> list:
    """Steps that make the plugin's layers ahead of use and draw each once, unseen.

    Each layer is made hidden and empty (``_compare_layers.placeholder_makers``),
    one per turn; then each is drawn once at zero opacity, so that vispy compiles
    its shaders and the caption draws every character it will use, so that the first
    real image, prediction, overlay and correction pay none of it (issue 11); napari's
    brush circle is warmed up apart (:func:`brush_warm_up_steps`, for the user's own
    images too). Side by side needs nothing more: its panes are the same
    layers, translated (``_compare_layers.place_prediction_pane``), in the same view.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.

    Returns
    -------
    list of callable
        The steps, for :class:`TurnRunner`.
    """
    from napari_nuclei_unet.widgets._compare_layers import placeholder_makers
    from napari_nuclei_unet.widgets._layers import is_placeholder, text_overlay
    from napari_nuclei_unet.widgets._scene import added_unselected, frame_first_own_layer

    frame_first_own_layer(viewer)  # the placeholders must not keep napari from framing it
    selection = viewer.layers.selection
    before: dict = {}

    def remember() -> None:  # what the user had selected before the layers are made
        before["selected"] = list(selection)
        before["active"] = selection.active

    def give_back_selection() -> None:
        # napari selects each layer it adds: the last hidden placeholder stayed selected
        active = selection.active
        if active is not None and not is_placeholder(active):
            return  # the user picked a layer meanwhile
        kept = [layer for layer in before.get("selected", []) if layer in viewer.layers]
        selection.clear()
        selection.update(kept)
        if before.get("active") in kept:
            selection.active = before["active"]

    def after_remembering(make):
        def step():
            active = selection.active
            if not before or active is None or not is_placeholder(active):
                remember()  # at first, and whenever the user picked layers in between
            return make()
        return step

    def then_selected(make):
        # the placeholder is added unselected, and selected in a turn of its own: its
        # controls are shown once here (about 20 ms the first time), not inside its
        # adding turn, nor later when a prediction or a correction selects it
        def step():
            with added_unselected(viewer):  # the user's selection and controls stay
                layer = make()
            if layer is None:
                return None

            def select() -> None:
                if layer in viewer.layers:
                    selection.active = layer
            return [after_remembering(select)]
        return step

    steps = [*(after_remembering(then_selected(make)) for make in placeholder_makers(viewer)),
             give_back_selection]

    def prime(layer) -> tuple:
        def show() -> None:
            if layer in viewer.layers and is_placeholder(layer):
                layer._nuclei_unet_opacity = layer.opacity
                layer.opacity = 0.0
                layer.visible = True

        def hide() -> None:
            opacity = getattr(layer, "_nuclei_unet_opacity", None)
            if opacity is None:
                return
            del layer._nuclei_unet_opacity
            if layer in viewer.layers and is_placeholder(layer):
                layer.visible = False
            layer.opacity = opacity

        return show, hide

    def expand() -> list:
        more: list = []
        for layer in list(viewer.layers):
            if is_placeholder(layer):
                show, hide = prime(layer)
                more.extend([show, _wait, hide])
        captions: list = []
        for chunk in caption_chunks():
            captions.extend([partial(caption_show, chunk), _wait])
        # the glyphs first: the panes' titles then draw from the same font atlas
        return [*captions, caption_hide, *more]

    saved: dict = {}

    def caption_show(chunk: str) -> None:
        overlay = text_overlay(viewer)
        if "color" in saved:  # a later chunk, while the caption is still ours
            if overlay.text == saved["text"]:
                overlay.text = saved["text"] = chunk
            else:  # a sample's caption replaced it: it shows in its own colour now
                overlay.color = saved.pop("color")
                saved.pop("text")
            return
        if overlay.visible:  # a sample is shown already: its caption is in use
            return
        saved["color"] = overlay.color
        overlay.text = saved["text"] = chunk
        overlay.font_size = 9
        overlay.color = (0.0, 0.0, 0.0, 0.0)
        overlay.visible = True

    def caption_hide() -> None:
        overlay = text_overlay(viewer)
        if "color" not in saved:
            return
        if overlay.text == saved.pop("text"):  # else a sample's caption replaced it
            overlay.visible = False
            overlay.text = ""
        overlay.color = saved.pop("color")

    steps.append(expand)
    return steps


def brush_warm_up_steps(viewer) -> list:
    """The :class:`TurnRunner` steps that draw napari's brush circle once, unseen.

    The brush circle is paint mode's cursor (:func:`brush_overlay`): the user's first
    correction, of a dataset's image or of their own, draws it warm.
    """
    saved: dict = {}

    def brush_show() -> None:
        overlay = brush_overlay(viewer)
        if overlay is None or overlay.visible:  # paint mode is on: it is drawn already
            return
        saved["brush"] = overlay.opacity
        overlay.opacity = 0.0
        overlay.visible = True

    def brush_hide() -> None:
        overlay = brush_overlay(viewer)
        if overlay is None or "brush" not in saved:
            return
        if not _painting(viewer):  # else the user started painting meanwhile: it stays
            overlay.visible = False
        overlay.opacity = saved.pop("brush")

    return [brush_show, _wait, brush_hide]


def _real_viewer(viewer) -> object | None:
    from napari_nuclei_unet.widgets._scene import scene_canvas

    return getattr(scene_canvas(viewer), "viewer", None)


def brush_overlay(viewer) -> object | None:
    """The brush-circle overlay of napari (the cursor of paint mode), or None.

    Its first draw builds its shader program: 50-80 ms on the main thread with
    software OpenGL when the user first clicks "Edit prediction as labels" (the
    first paint mode of the session), which the layer warm-up pays while idle.
    Found through the real viewer of napari's canvas (no private attribute of
    the plugin's viewer proxy is read); None with another napari.
    """
    overlays = getattr(getattr(_real_viewer(viewer), "canvas", None), "overlays", None)
    overlay = getattr(overlays, "_brush_circle", None)
    return overlay if hasattr(overlay, "visible") and hasattr(overlay, "opacity") else None


def _painting(viewer) -> bool:
    """True when napari shows the brush circle for the user (paint or erase mode)."""
    cursor = getattr(_real_viewer(viewer), "cursor", None)
    return str(getattr(cursor, "style", "")).startswith("circle")


def _wait() -> None:
    """A turn without work: the canvas draws in between."""


def start_layer_warm_up(viewer, after=None, pause: int | None = None) -> LayerWarmUp:
    """Start the brush's warm-up, then :func:`~._gc_pause.settle_heap_steps`, once shown.

    The dataset workflow's layers (:func:`layer_warm_up_steps`) are made first, unless
    the viewer already shows layers of the user's own (they brought their own images:
    the hidden layers would come above theirs in the layer list); then they are made
    once a dataset is open or about to be (:meth:`LayerWarmUp.want_sample_layers`).

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    after : callable, optional
        The steps also wait until it returns True (e.g. the panel's tabs are built).
    pause : int, optional
        A :data:`~._gc_pause.PAUSE` token, released by :func:`~._gc_pause.settle_heap_steps`.

    Returns
    -------
    LayerWarmUp
        The runner (``.done`` once finished).
    """
    from napari_nuclei_unet.widgets._session import session_for

    def ready() -> bool:
        window = _qt_window(viewer)
        return ((window is None or window.isVisible()) and not warming_up(viewer)
                and (after is None or after()))

    steps = brush_warm_up_steps(viewer) + settle_heap_steps(viewer, pause=pause)
    runner = LayerWarmUp(viewer, steps, interval_ms=60, ready=ready)
    session = session_for(viewer)
    if session.dataset is not None or not _own_layers(viewer):
        runner.want_sample_layers()
    session.dataset_changed.connect(runner.want_sample_layers)
    return runner.start()


def _own_layers(viewer) -> list:
    """The viewer's layers that are not the plugin's hidden, unused ones."""
    from napari_nuclei_unet.widgets._layers import is_placeholder

    return [layer for layer in getattr(viewer, "layers", ()) if not is_placeholder(layer)]


#: How long a sample waits for the dataset workflow's layers to be made before it is
#: shown anyway (s): their making took 3.8 s on the 2-core machine (bundled samples).
SAMPLE_LAYERS_WAIT_S = 8.0


#: The pause between two warm-up steps while a sample waits for them (ms).
HURRY_MS = 10


class LayerWarmUp(TurnRunner):
    """The viewer's warm-up: a :class:`TurnRunner` that makes the sample layers on demand.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    steps, interval_ms, ready
        As for :class:`TurnRunner`.

    Attributes
    ----------
    sample_layers : bool or None
        None until they are asked for (at the start, unless the viewer shows layers of
        the user's own; else when a dataset is about to be opened); False while the
        dataset workflow's layers are being made; True once they are made and drawn.
    """

    def __init__(self, viewer, steps: list, **kwargs) -> None:
        super().__init__(steps, **kwargs)
        self._viewer = viewer
        self.sample_layers: bool | None = None
        self._token: int | None = None  # its hold of full collections while they are made
        self._calm = self._interval
        self._waiting: list = []
        self._forget = False  # take the sample layers away once made (no dataset opened)
        self._removing = False  # they are being taken away, one per turn

    def want_sample_layers(self, *_args) -> None:
        """Make the dataset workflow's layers next (once), while the window is idle.

        Called when the user starts opening a dataset (the Data dock) and whenever
        the session's dataset changes. Full collections are held off until they
        are made; then the heap is frozen again (:func:`~._gc_pause.settle_heap_steps`).
        """
        self._forget = False  # a dataset is wanted after all (review h_rev16, M6)
        if self._removing:  # some are gone: made again (those left are kept)
            self._removing, self.sample_layers = False, None
        if self.sample_layers is not None or self._stopped:
            return
        self.sample_layers = False
        self.extend([self._begin_sample_layers], first=True)

    def _begin_sample_layers(self) -> list:
        # the hold is taken when the steps start: a window never shown takes none
        self._token = PAUSE.hold()
        return [*layer_warm_up_steps(self._viewer), self._made,
                *settle_heap_steps(self._viewer, pause=self._token)]

    def _made(self) -> None:
        self.sample_layers = True
        if self._forget:
            self._forget = False
            self._remove_sample_layers()
        self._call_waiting()

    def forget_sample_layers(self) -> None:
        """No dataset was opened after all: the unused layers made for it go again.

        Nine hidden layers stayed over the user's own (GUI check h_gui31, M2); they are
        made again when a dataset is next opened.
        """
        from napari_nuclei_unet.widgets._session import session_for

        if self.sample_layers is None or self._stopped or not _own_layers(self._viewer) \
                or session_for(self._viewer).dataset is not None:
            return
        if self.sample_layers is False:
            self._forget = True  # once they are made (their steps are queued)
            return
        self._remove_sample_layers()

    def _remove_sample_layers(self) -> None:
        """Take the unused layers away, one per turn (at once: 0.7 s, GUI check h_gui32 N6)."""
        from napari_nuclei_unet.widgets._layers import is_placeholder

        layers = self._viewer.layers
        unused = [layer for layer in layers if is_placeholder(layer)]
        selected = [layer for layer in layers.selection if not is_placeholder(layer)]
        active = layers.selection.active
        layers.selection.clear()  # never a hidden layer selected: the brush painted on it
        layers.selection.update(selected)
        if active in selected:
            layers.selection.active = active
        self._removing = True

        def remove(layer) -> None:
            if self._removing and layer in layers and is_placeholder(layer):
                layers.remove(layer)

        def removed() -> None:
            if self._removing:
                self._removing, self.sample_layers = False, None

        self.extend([*(partial(remove, layer) for layer in unused), removed], first=True)

    def _call_waiting(self) -> None:
        """Run all that waits for the sample layers; the warm-up's calm pace comes back."""
        self._interval = self._calm
        waiting, self._waiting = self._waiting, []
        _run_each(waiting)

    def after_sample_layers(self, callback) -> bool:
        """Call ``callback()`` once the sample layers are made; True when it must wait.

        It waits only while they are being made in a shown window, and at most
        :data:`SAMPLE_LAYERS_WAIT_S`; else nothing waits (False: call it now).
        """
        from qtpy.QtCore import QTimer

        window = _qt_window(self._viewer)
        if self.sample_layers is not False or self._stopped or (
                window is not None and not window.isVisible()):
            return False
        def timed_out() -> None:  # shown now; the warm-up goes on, calm once none waits
            if callback not in self._waiting:
                return  # run already
            self._waiting.remove(callback)
            if not self._waiting:
                self._interval = self._calm
            _run_each([callback])

        self._waiting.append(callback)
        self._interval = min(self._interval, HURRY_MS)  # the user waits: fewer idle gaps
        QTimer.singleShot(int(SAMPLE_LAYERS_WAIT_S * 1000), timed_out)
        return True

    def stop(self) -> None:
        """As :meth:`TurnRunner.stop`; whatever waits for the sample layers waits no more."""
        super().stop()
        if self._token is not None:
            PAUSE.release(self._token)  # a token released already is ignored
        self._call_waiting()


def _run_each(callbacks: list) -> None:
    """Call each of ``callbacks``; an error is shown, and the others still run.

    (In a warm-up step an error would only be logged, and the rest skipped.)
    """
    from napari_nuclei_unet.widgets._workers import notify_error

    for callback in callbacks:
        try:
            callback()
        except Exception as exc:
            notify_error(exc, "Showing the image")


def want_sample_layers(viewer) -> None:
    """:meth:`LayerWarmUp.want_sample_layers` of the viewer's warm-up, when one runs."""
    from napari_nuclei_unet.widgets._session import session_for

    runner = session_for(viewer).layer_warm_up
    if isinstance(runner, LayerWarmUp):
        runner.want_sample_layers()


def forget_sample_layers(viewer) -> None:
    """:meth:`LayerWarmUp.forget_sample_layers` of the viewer's warm-up, when one runs."""
    from napari_nuclei_unet.widgets._session import session_for

    runner = session_for(viewer).layer_warm_up
    if isinstance(runner, LayerWarmUp):
        runner.forget_sample_layers()


def after_sample_layers(viewer, callback) -> bool:
    """:meth:`LayerWarmUp.after_sample_layers` of the viewer's warm-up (False: none runs)."""
    from napari_nuclei_unet.widgets._session import session_for

    runner = session_for(viewer).layer_warm_up
    return isinstance(runner, LayerWarmUp) and runner.after_sample_layers(callback)


def ensure_layer_warm_up(viewer, after=None, pause: int | None = None) -> TurnRunner:
    """:func:`start_layer_warm_up` once per viewer, whichever dock (or the panel) opens first.

    The separate Data, Compare and IoU docks show the plugin's layers as the workflow
    panel does; without the warm-up their first image, prediction and
    correction drew cold (0.5-1.3 s). Arguments as for :func:`start_layer_warm_up`,
    used by the first caller only.
    """
    from napari_nuclei_unet.widgets._session import session_for

    session = session_for(viewer)
    if session.layer_warm_up is None:
        if after is None:  # a dock: the user may be opening others (each a relayout)
            after = _seconds_from_now(DOCK_WARM_UP_DELAY_S)
        session.layer_warm_up = _stop_with_window(
            viewer, start_layer_warm_up(viewer, after=after, pause=pause))
    elif pause is not None:
        # the panel opened after a dock: its hold is released, and the heap frozen, once
        # its tabs are built and the warm-up is over, as its own warm-up would do
        steps = settle_heap_steps(viewer, pause=pause)
        session.layer_warm_up.extend(steps if after is None else [_once(after, steps)])
    return session.layer_warm_up


#: A separate dock starts the warm-up this long after it opened: docks opened one
#: after the other (each relayouts the window and redraws the canvas) do not meet its
#: layer additions.
DOCK_WARM_UP_DELAY_S = 2.0


def _seconds_from_now(seconds: float):
    """A condition that becomes true ``seconds`` from now."""
    import time

    start = time.monotonic()
    return lambda: time.monotonic() - start >= seconds


def _once(condition, steps: list):
    """A step that runs ``steps`` once ``condition()`` is true (until then, it waits)."""
    def wait() -> list:
        return list(steps) if condition() else [_wait, _wait, wait]
    return wait


def _stop_with_window(viewer, runner: TurnRunner) -> TurnRunner:
    """Stop ``runner`` when the viewer's window goes (one closed before it was shown)."""
    window = _qt_window(viewer)
    if window is not None:
        window.destroyed.connect(runner.stop)
    return runner


def _qt_window(viewer):
    """The viewer's Qt main window, or None (a stand-in without one)."""
    from napari_nuclei_unet.widgets._layers import unwrapped

    with warnings.catch_warnings():  # napari's plugin proxy toasts private access
        warnings.simplefilter("ignore", FutureWarning)
        return getattr(getattr(unwrapped(viewer), "window", None), "_qt_window", None)
