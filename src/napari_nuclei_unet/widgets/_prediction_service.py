"""Worker glue of the predict-then-score service, shared by the docks.

The Compare dock, the IoU panel and the Retrain dock start predictions and
re-scoring jobs here (``core.predict_score`` does the work, no Qt); the results go
into the viewer's session through its own methods (``Session.add_predictions``,
``Session.put_rows``), which tell every dock. :func:`show_prediction` draws a
cached prediction beside (or over) the label mask. No dock imports another dock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_nuclei_unet.core.evaluation import rescore
from napari_nuclei_unet.core.predict_score import (
    ImageDone,
    PredictionResult,
    labels_and_row,
    predict_and_score,
    predicted_labels,
)
from napari_nuclei_unet.core.progress import Progress, stop_requested
from napari_nuclei_unet.widgets import _compare_layers as compare_layers
from napari_nuclei_unet.widgets._dataset_place import same_place
from napari_nuclei_unet.widgets._layers import (
    IMAGE_LAYER,
    LABELS_LAYER,
    SAMPLE_ID_KEY,
    find_layer,
    nuclei,
    show_sample,
)
from napari_nuclei_unet.widgets._model_names import diameter_text, model_name
from napari_nuclei_unet.widgets._progress import ThrottledProgress
from napari_nuclei_unet.widgets._session import session_for
from napari_nuclei_unet.widgets._workers import notify

if TYPE_CHECKING:
    import napari

    from napari_nuclei_unet.core.dataset import Sample

#: Job kind of prediction runs in the session's WorkerGuard (shared with the IoU panel).
PREDICT_JOB = "predict"
#: Job kind of the Compare dock making the shown prediction in a worker.
DISPLAY_JOB = "compare display"
#: Job kind of re-scoring the cached maps after a threshold change.
RESCORE_JOB = "rescore"

DIAMETER_TOOLTIP = (
    "Typical nucleus diameter in pixels; 0 = automatic (measured on each image). "
    "Images whose nuclei are far from the size the model was trained at are resized "
    "before the network. Changing it keeps the predictions made so far aside: set it "
    "back to see them."
)
NO_MODEL_MESSAGE = "Load a model in the Model panel first (or click 'Load default model')."
NO_SAMPLE_MESSAGE = "Select an image in the Data panel first."
NO_SAMPLES_MESSAGE = "No images are loaded yet. Open a dataset in the Data panel first."
BUSY_MESSAGE = ("A prediction is already running. Wait for it to finish, or press the Cancel "
                "beside the button that started it.")
#: During a prediction, the images done so far go into the session at most this often
#: (seconds): the IoU table fills as they come, without redrawing it for every image.
PARTIAL_EVERY_S = 1.0


def show_prediction(
    viewer: napari.Viewer,
    sample: Sample,
    *,
    pred_labels: np.ndarray | None = None,
    mode: str | None = None,
    arrays: tuple[np.ndarray, np.ndarray] | None = None,
) -> bool:
    """Show ``sample`` with its cached prediction beside (or over) its label mask.

    Used by the Compare dock and by the IoU panel (when it shows a sample while
    no Compare dock is open). The network is never run here.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    sample : Sample
        The sample; the image layers are switched to it when they show another.
    pred_labels : numpy.ndarray, optional
        Predicted nuclei; computed from the session's cached probability map at
        the session's threshold and split when omitted.
    mode : {"side by side", "overlay"}, optional
        Layout; by default the one shown last (``_compare_layers.shown_mode``).
    arrays : tuple of numpy.ndarray, optional
        ``_compare_layers.comparison_arrays`` of ``pred_labels`` (made in a worker).

    Returns
    -------
    bool
        False when the sample has no cached probability map (nothing shown but
        the image and its label mask).
    """
    session = session_for(viewer)
    image_layer = find_layer(viewer, IMAGE_LAYER)
    if image_layer is None or image_layer.metadata.get(SAMPLE_ID_KEY) != sample.id:
        image_layer, _ = show_sample(viewer, sample)
    if pred_labels is None:
        prob = session.probabilities.get(sample.id)
        if prob is None:
            compare_layers.clear_comparison(viewer)
            return False
        pred_labels = predicted_labels(
            prob, threshold=session.threshold, instance_method=session.instance_method
        )
    if mode is None:
        mode = compare_layers.shown_mode(viewer)
    compare_layers.show_comparison(
        viewer,
        image_layer=image_layer,
        truth_layer=find_layer(viewer, LABELS_LAYER),
        pred_labels=pred_labels,
        true_labels=sample.labels if sample.has_labels else None,
        mode=mode,
        sample_id=sample.id,
        arrays=arrays,
    )
    return True


def _settings(session: Any) -> tuple[float, str]:
    return (session.threshold, session.instance_method)


def start_rescore_job(viewer: napari.Viewer, *, exclude: str | None = None) -> Any:
    """Score every cached prediction again at the session's current settings.

    Runs :func:`napari_nuclei_unet.core.evaluation.rescore` in a worker.
    The job stops by itself when the threshold or the split changes again (a newer
    re-scoring job takes over), or the model or diameter changes, and its rows are
    merged into ``session.rows`` only while the settings are still those it used;
    ``scores_changed`` is emitted at the end.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose session is used.
    exclude : str, optional
        A sample id not to score (the shown image, already scored on the main thread).

    Returns
    -------
    WorkerBase or None
        The worker, or None when there was nothing to score.
    """
    session = session_for(viewer)
    samples = [
        s for sid, s in session.samples.items()
        if sid != exclude and sid in session.probabilities and s.has_labels
    ]
    if not samples:
        return None
    settings = _settings(session)
    owner = (session.model, session.diameter)
    dataset = session.dataset

    def outdated() -> bool:  # another dataset too: its table got these rows (h_rev23, M4)
        return (_settings(session) != settings or (session.model, session.diameter) != owner
                or (dataset is not None and not same_place(dataset, session.dataset)))

    def keep(report: Any) -> None:
        if outdated():
            return  # a newer re-scoring job takes over; stale rows stay hidden
        session.put_rows(report.rows, settings)

    return session.jobs.start(
        RESCORE_JOB,
        rescore,
        samples,
        dict(session.probabilities),
        threshold=settings[0],
        instance_method=settings[1],
        should_stop=outdated,
        on_returned=keep,
        action="Scoring the predictions again",
        refuse=False,
    )


def show_prediction_progress(bar: Any, update: Any, *, stopping: bool = False) -> None:
    """Show a :func:`start_prediction_job` update on ``bar`` (other updates are ignored).

    Shared by the Compare dock and the IoU panel. Repaints at most ~10 times a
    second (:class:`~napari_nuclei_unet.widgets._progress.ThrottledProgress`) and
    says how long is left. While ``stopping`` the bar's text (e.g. "Stopping after
    this image…") is left as it is.
    """
    if not isinstance(update, Progress):
        return
    throttle = getattr(bar, "_nuclei_unet_throttle", None)
    if throttle is None or getattr(bar, "_nuclei_unet_stage", None) != update.stage:
        throttle = ThrottledProgress(bar)
        bar._nuclei_unet_throttle = throttle  # one ETA clock per stage of the job
        bar._nuclei_unet_stage = update.stage
    verb = "Predicting" if update.stage == "predict" else "Scoring"
    if stopping:
        # the caller's "Stopping…" text, taken once: bar.format() later ends in an ETA
        if getattr(bar, "_nuclei_unet_stop_text", None) is None:
            bar._nuclei_unet_stop_text = bar.format()
        throttle.show(update.done, update.total, bar._nuclei_unet_stop_text)
    else:
        bar._nuclei_unet_stop_text = None
        throttle.show(update.done, update.total, f"{verb}: %v / %m images")


def stop_when_closed(running: bool, stop: Any, panel: str, what: str) -> None:
    """A dock closed while its prediction runs: it stops after the current image, said.

    It ran on without a word, and a dock opened again could neither show nor cancel it
    (GUI check h_gui38, M1). ``stop``: the job's stop event; plain Python only (the
    dock's widgets are going away).
    """
    if running and not stop.is_set():
        stop.set()
        notify(f"The {panel} was closed: {what} stops after the current image (the images "
               "done so far are kept).")


def reset_prediction_progress(bar: Any) -> None:
    """Forget the ETA clock of ``bar`` (a new job starts)."""
    bar._nuclei_unet_throttle = None
    bar._nuclei_unet_stage = None
    bar._nuclei_unet_stop_text = None


def start_prediction_job(
    viewer: napari.Viewer,
    samples: list[Sample],
    *,
    on_started: Callable[[], None] | None = None,
    on_progress: Callable[[Any], None] | None = None,
    on_done: Callable[[PredictionResult | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    cancel: Callable[[], Any] | None = None,
    before: Callable[[], Any] | None = None,
) -> Any:
    """Start a :func:`predict_and_score` worker for ``viewer``'s session.

    Shared by the Compare dock and the IoU panel. User mistakes (no model, a job
    already running) are notified and nothing is started. On success the new
    probability maps and scores are merged into the session (main thread) and
    ``predictions_changed`` / ``scores_changed`` are emitted, for the images done so
    far every :data:`PARTIAL_EVERY_S` during the job too. Images are predicted
    at the session's nucleus diameter (0 = automatic, per image); results of a model
    or a diameter that was replaced meanwhile are kept aside for it.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose session is used.
    samples : list of Sample
        What to predict and score.
    on_started, on_progress, on_done : callable, optional
        UI hooks: called when the worker starts, with each ``Progress``, and at the
        end with the result (None after an error).
    should_stop : callable, optional
        Cooperative stop flag of the job.
    cancel : callable, optional
        Called when napari is closed during the job.
    before : callable, optional
        Called just before the worker starts (e.g. to clear a stop flag).

    Returns
    -------
    WorkerBase or None
        The worker, or None when nothing was started.
    """
    session = session_for(viewer)
    if session.model is None:
        notify(NO_MODEL_MESSAGE, warning=True)
        return None
    if session.jobs.is_running(PREDICT_JOB):
        notify(BUSY_MESSAGE)
        return None
    model = session.model
    diameter = session.diameter
    dataset = session.dataset
    settings_at_start = _settings(session)
    outcome: dict[str, PredictionResult] = {}
    done_so_far: dict[str, ImageDone] = {}
    last_merge = [time.monotonic()]
    merged: set[str] = set()  # the images whose results went into the session during the job

    def moved() -> bool:
        """Whether another dataset was opened since the job started."""
        return dataset is not None and not same_place(dataset, session.dataset)

    def merge_done_so_far() -> None:
        # only while nothing the results depend on changed (add_predictions refuses another
        # model or diameter): else the job's end decides
        if (not moved() and _settings(session) == settings_at_start
                and session.add_predictions(
                    model, {d.id: d.maps for d in done_so_far.values()},
                    [d.row for d in done_so_far.values() if d.row is not None],
                    settings_at_start, diameter=diameter)):
            merged.update(done_so_far)
        done_so_far.clear()
        last_merge[0] = time.monotonic()

    def yielded(update: Any) -> None:
        if not isinstance(update, ImageDone):
            if on_progress is not None:
                on_progress(update)
            return
        done_so_far[update.id] = update
        if time.monotonic() - last_merge[0] >= PARTIAL_EVERY_S:
            merge_done_so_far()

    def stop() -> bool:  # checked in the worker between images
        # another dataset was opened: its results would not be kept, so the job ends
        return stop_requested(should_stop) or moved()

    def keep(result: PredictionResult) -> None:
        done_so_far.clear()
        if moved():
            # these are not the open dataset's images' results (and "stopped before
            # Cancel" would not be true: the docks get no result)
            kept = (f"the scores of the {len(merged)} image(s) done before are kept with "
                    "the first dataset, the other images' results were not. Open it again "
                    "to see those scores, and predict to see the rest" if merged else
                    "its results were not kept. Open the first dataset again and predict to "
                    "see them")
            notify(f"Another dataset was opened during the prediction, which stopped: "
                   f"{kept}.", warning=True)
            return
        outcome["result"] = result
        settings = (result.threshold, result.instance_method)
        if session.model is not model or session.diameter != diameter:
            session.keep_for(model, result.probabilities, result.rows.values(), settings,
                             diameter=diameter)
            what = ("model" if session.model is not model else "nucleus diameter")
            notify(
                f"The {what} was changed during the prediction: its results are kept for "
                f"{model_name(model)} at {diameter_text(diameter)} (choose them again to "
                "see them).",
                warning=True,
            )
            return
        session.add_predictions(model, result.probabilities, result.rows.values(), settings,
                                diameter=diameter)
        if _settings(session) != settings:
            # the threshold moved during the job: score everything at the new one
            start_rescore_job(viewer)

    def finished() -> None:
        if on_done is not None:
            on_done(outcome.get("result"))

    if before is not None:
        before()
    worker = session.jobs.start(
        PREDICT_JOB,
        predict_and_score,
        model,
        list(samples),
        dict(session.probabilities),
        threshold=session.threshold,
        instance_method=_settings(session)[1],
        diameter=diameter,
        should_stop=stop,
        on_yielded=yielded,
        on_returned=keep,
        on_finished=finished,
        action="Predicting",
        viewer=viewer,
        description=f"Predicting {len(samples)} image(s)",
        cancel=cancel,
        refuse=False,
    )
    if worker is not None and on_started is not None:
        on_started()
    return worker

def display_arrays(sample: Sample, prob: np.ndarray, *, threshold: float,
                    instance_method: str) -> tuple[np.ndarray, Any, tuple]:
    """Everything the compare layers show for ``sample`` (runs in a worker).

    Parameters
    ----------
    sample : Sample
        The sample.
    prob : NetworkMaps or numpy.ndarray
        Its cached prediction.
    threshold : float
        Probability threshold.
    instance_method : str
        ``"watershed"`` or ``"components"``.

    Returns
    -------
    tuple
        ``(labels, row, arrays)``: ``labels_and_row`` and
        ``_compare_layers.comparison_arrays(sample.labels, labels)``.
    """
    labels, row = labels_and_row(sample, prob, threshold=threshold,
                                 instance_method=instance_method)
    truth = sample.labels if sample.has_labels else None
    return labels, row, compare_layers.comparison_arrays(truth, labels)


def format_scores(row: Any, prob: Any = None) -> str:
    """The Compare dock's lines for one scored image (and how it was predicted)."""
    return (
        f"IoU {row.iou:.3f}  ·  Dice {row.dice:.3f}\n"
        f"AP@0.5 {row.ap50:.3f}  ·  DSB score {row.dsb_score:.3f}\n"
        f"{nuclei(row.n_true)} in the label mask, {row.n_pred} predicted" + scale_text(prob)
    )


def scale_text(prob: Any) -> str:
    """How a cached prediction was made: nucleus diameter and resizing ("" if unknown)."""
    diameter = getattr(prob, "diameter", None)
    if diameter is None:
        return ""
    scale = float(getattr(prob, "scale", 1.0))
    resized = "native scale" if scale == 1.0 else f"resized ×{scale:.2f}"
    return f"\nNucleus diameter {diameter:.0f} px, {resized}"
