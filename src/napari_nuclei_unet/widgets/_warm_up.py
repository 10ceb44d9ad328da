"""Warm-ups run in workers when docks open, so that the user's first action does not stall.

* :func:`tiny_training_run` -- one tiny training step on a blank image, shared by the
  Train and Retrain docks: the first training step of a process imports about a
  thousand modules.
* :func:`import_layer_modules` -- the modules napari imports when the first image and
  label-mask layers are added, and pint's unit registry it builds then
  (:func:`prepare_layer_display`, started by the Data dock).
* :func:`settle_heap_steps` -- freezes the warmed-up heap once every warm-up is over and
  no job runs (see there).
"""

from __future__ import annotations

import tempfile
import warnings
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari_nuclei_unet.core.dataset import Sample

#: What napari 0.9 imports, on the main thread, when the first Image and Labels layers
#: are added: xarray and pandas (``napari.utils._xarray_utils``), the histogram of the
#: contrast-limit controls, scipy.ndimage (thumbnails), scikit-image's colour modules
#: (the label colormap) and scipy.linalg. About 600 modules: the first image shown
#: stalled the window for 0.6-1.3 s (``benchmarks/bench_journey.py``).
#: The session job that runs :func:`import_layer_modules` (the Data dock starts it).
IMPORT_JOB = "warm up image display"

LAYER_MODULES = (
    "xarray",
    "napari.components.histogram",
    "scipy.ndimage",
    "scipy.linalg",
    "skimage.color",
    "skimage.exposure",
    "skimage.util",
)


def import_layer_modules(names: tuple[str, ...] = LAYER_MODULES) -> list[str]:
    """Import ``names`` (in a worker: Python gives the main thread its turn meanwhile).

    Parameters
    ----------
    names : tuple of str
        Module names; those not installed are skipped.

    Returns
    -------
    list of str
        The names imported (or already imported).
    """
    import importlib

    done = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        done.append(name)
    return done


def build_unit_registry() -> object | None:
    """Build pint's default unit registry here (in a worker), not at the first layer.

    napari 0.9 gives every layer's transforms units from pint's application
    registry, which pint builds lazily, on the main thread, when the first
    layer is made: parsing pint's unit definitions took 400-500 ms (1.6 s under
    the profiler) of the panel's first layer warm-up step. This builds the same
    registry (pint's defaults, ``on_redefinition="raise"`` as pint's lazy one)
    for :func:`install_unit_registry`.

    Returns
    -------
    pint.UnitRegistry or None
        None when pint is missing or fails (napari then builds its own as before).
    """
    try:
        import pint

        registry = pint.UnitRegistry(on_redefinition="raise")
        registry.pixel  # noqa: B018 - what napari asks for first
    except Exception:  # noqa: BLE001 - a warm-up never bothers the user
        return None
    return registry


def install_unit_registry(registry: object | None) -> bool:
    """Make ``registry`` pint's application registry if pint's own was never used (main thread).

    pint's default application registry is a ``LazyRegistry`` until first used;
    once used (a layer was made meanwhile, another plugin), its units exist and
    it is left alone, so units of two registries never mix.

    Returns
    -------
    bool
        True when ``registry`` was installed.
    """
    if registry is None:
        return False
    try:
        import pint
        from pint.registry import LazyRegistry, UnitRegistry
    except ImportError:
        return False
    app = pint.get_application_registry()
    if type(app.get()) is not LazyRegistry or not isinstance(registry, UnitRegistry):
        return False
    pint.set_application_registry(registry)
    return True


def build_dash_patterns() -> bool:
    """Compute vispy's dash patterns here (in a worker), not at the first Labels layer.

    Every napari Labels layer gets a polygon-tool overlay whose lines build a
    vispy ``DashAtlas`` of 13 dash patterns; vispy computes each pattern once
    per process (a Python loop over 1,024 samples, cached) on the main thread,
    when the first Labels layer is added: about 50 ms of the workflow panel's
    first Labels layer (124 ms in all, later ones 69-92 ms, ``bench_journey``).
    Building one atlas here fills that cache (plain numpy, no OpenGL).

    Returns
    -------
    bool
        False when vispy's module is not there (napari then pays it as before).
    """
    try:
        from vispy.visuals.line.dash_atlas import DashAtlas

        DashAtlas()
    except Exception:  # noqa: BLE001 - a warm-up never bothers the user
        return False
    return True


def prepare_layer_display() -> object | None:
    """The Data dock's warm-up job: imports, dash patterns, pint's unit registry.

    :func:`import_layer_modules`, :func:`build_dash_patterns`, then
    :func:`build_unit_registry`.

    Returns
    -------
    pint.UnitRegistry or None
        For :func:`install_unit_registry` (the job's ``on_returned``).
    """
    import_layer_modules()
    build_dash_patterns()
    return build_unit_registry()


def tiny_training_run(*, validate: bool) -> tuple[Sample, np.ndarray]:
    """Train one step of a tiny model on a blank 32x32 image with one square nucleus.

    Parameters
    ----------
    validate : bool
        Validate on the same image too (exercises the validation code path).

    Returns
    -------
    tuple of Sample and numpy.ndarray
        The blank sample and its label mask.
    """
    from napari_nuclei_unet.core.config import TrainConfig
    from napari_nuclei_unet.core.dataset import Sample
    from napari_nuclei_unet.core.progress import drive
    from napari_nuclei_unet.core.training import train

    labels = np.zeros((32, 32), np.int32)
    labels[8:20, 8:20] = 1
    image = np.repeat((labels[..., None] * 200).astype(np.uint8), 3, axis=2)
    blank = Sample("warm-up", image, labels, "fluorescence")
    config = TrainConfig(base_width=2, depth=1, crop_size=16, batch_size=1, epochs=1,
                         steps_per_epoch=1, num_threads=1, amp=False, device="cpu")
    with tempfile.TemporaryDirectory(prefix="nuclei-unet-warm-up-") as folder:
        drive(train(config, [blank], out_dir=folder, val_samples=[blank] if validate else []))
    return blank, labels


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

    def extend(self, steps: list) -> TurnRunner:
        """Run ``steps`` after the others (again, when every step had run); returns self."""
        if self._stopped:
            return self
        was_done = self.done
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
    its shaders and the caption draws every character it will use, and napari's
    brush circle (paint mode's cursor, :func:`brush_overlay`) is drawn once at zero
    opacity, so that the first real image, prediction, overlay and correction pay
    none of it (issue 11). Side by side needs nothing more: its panes are the same
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
        return [*captions, caption_hide, *more, brush_show, _wait, brush_hide]

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


#: How long :func:`settle_heap_steps` waits for a moment with no job running (s).
SETTLE_WAIT_S = 120.0


def settle_heap_steps(viewer, *, wait_s: float = SETTLE_WAIT_S, pause: int | None = None
                      ) -> list:
    """Steps that freeze the warmed-up heap once the warm-ups are over and idle.

    Python runs a full ("generation 2") collection when the objects that survived
    two young collections since the last full one exceed a quarter of those kept
    by it, and a full collection walks every tracked object. The warm-ups import
    napari's layer modules, torch's optimizer (which imports ``torch._dynamo``
    and sympy) and draw every layer once: the heap grows to about 610,000 tracked
    objects, and each full collection of it froze the window 450-600 ms (the
    warm-ups' own, then one in the user's first minutes: a fine-tuning round, a
    model switch). While the warm-ups run, ``pause`` (a token of
    ``_gc_pause.PAUSE``) holds full collections off; here, once no job runs, it
    is released with ``freeze=True``: the young generations are collected and
    the rest is frozen (a few milliseconds), so later full collections walk only
    what the session makes afterwards (``_gc_pause`` has the figures).

    Removing a layer that existed when the heap was frozen thaws it
    (:meth:`~._gc_pause.CollectionPause.thaw`): the layer's data would otherwise
    stay in memory for the rest of the session.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer (its session's jobs are waited for; its layers are watched).
    wait_s : float, optional
        Give up (freeze nothing; full collections come back) when no idle moment
        came within this many seconds.
    pause : int, optional
        The token of a :data:`~._gc_pause.PAUSE` hold to release. Without one,
        the steps take their own hold when they start.

    Returns
    -------
    list of callable
        The steps, for :class:`TurnRunner`.
    """
    import time

    from napari_nuclei_unet.widgets._gc_pause import PAUSE
    from napari_nuclei_unet.widgets._session import session_for

    began: list[float] = []
    token: list[int] = [] if pause is None else [pause]

    def settle() -> list | None:
        if not began:
            began.append(time.monotonic())
            if not token:
                token.append(PAUSE.hold())
        jobs = getattr(session_for(viewer), "jobs", None)
        if jobs is not None and jobs.kinds():  # a warm-up or the user's job runs
            if time.monotonic() - began[0] > wait_s:
                PAUSE.release(token[0])  # the user is busy: the collector keeps its pace
                return None
            return [_wait, _wait, settle]
        if PAUSE.release(token[0], freeze=True):
            thaw_when_removed(viewer)
        return None

    return [settle]


def thaw_when_removed(viewer) -> None:
    """Thaw the frozen heap when a layer the viewer has now is removed.

    A frozen layer in a cycle (napari's layers are) is never freed once removed,
    nor is its data; thawing hands every frozen object back to the collector.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose current layers are watched (a stand-in without
        ``layers`` is ignored).
    """
    import weakref

    from napari_nuclei_unet.widgets._gc_pause import PAUSE

    layers = getattr(viewer, "layers", None)
    events = getattr(layers, "events", None)
    if events is None:
        return
    frozen = weakref.WeakSet(layers)

    def on_removed(event) -> None:
        if event.value in frozen:
            PAUSE.thaw()

    events.removed.connect(on_removed)


def _wait() -> None:
    """A turn without work: the canvas draws in between."""


def start_layer_warm_up(viewer, after=None, pause: int | None = None) -> TurnRunner:
    """Start :func:`layer_warm_up_steps`, then :func:`settle_heap_steps`, once shown.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    after : callable, optional
        The steps also wait until it returns True (e.g. the panel's tabs are built).
    pause : int, optional
        A :data:`~._gc_pause.PAUSE` token, released by :func:`settle_heap_steps`.

    Returns
    -------
    TurnRunner
        The runner (``.done`` once finished).
    """
    def ready() -> bool:
        window = _qt_window(viewer)
        return ((window is None or window.isVisible()) and not warming_up(viewer)
                and (after is None or after()))

    steps = layer_warm_up_steps(viewer) + settle_heap_steps(viewer, pause=pause)
    return TurnRunner(steps, interval_ms=60, ready=ready).start()


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


#: The warm-up jobs the docks start when they open (the Data dock's imports, the
#: Model and Train docks' device listing and tiny training run, the Retrain dock's).
WARM_UP_JOBS = (IMPORT_JOB, "list devices", "warm up fine-tuning")


def warming_up(viewer) -> bool:
    """True while one of :data:`WARM_UP_JOBS` runs (the panel's tabs and layers wait).

    Adding a layer while the Data dock's worker imports xarray makes napari import
    it on the main thread, which then waits for the worker's module lock (a stall
    of 0.3-1.3 s in ``bench_journey``). And a worker running Python holds the GIL
    for up to Python's switch interval (5 ms) each time the main thread gives it
    up, which PyQt does at nearly every Qt call: building the Train tab took
    480-500 ms beside a warm-up worker, about 250 ms without one.
    """
    from napari_nuclei_unet.widgets._session import session_for

    jobs = getattr(session_for(viewer), "jobs", None)
    return bool(jobs is not None and any(jobs.is_running(kind) for kind in WARM_UP_JOBS))
