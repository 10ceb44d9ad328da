"""Compare dock: the prediction beside (or over) the label mask, re-thresholded live.

The network runs in a background worker (:func:`predict_and_score`, a generator
over :func:`napari_nuclei_unet.core.inference.predict_samples`) and its
probability maps are cached in the session, so moving the threshold slider or
switching the "split touching nuclei" toggle only re-thresholds the cached map:
the prediction and error layers and the scores follow at once, the network is
never run again. The layers themselves are managed by
:mod:`napari_nuclei_unet.widgets._compare_layers`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from napari_nuclei_unet.core.progress import Progress, stop_requested
from napari_nuclei_unet.widgets import _compare_layers as compare_layers
from napari_nuclei_unet.widgets._compare_layers import (
    ERROR_COLORS,
    ERROR_NAMES,
    MODES,
    OVERLAY,
    SIDE_BY_SIDE,
)
from napari_nuclei_unet.widgets._layers import (
    IMAGE_LAYER,
    LABELS_LAYER,
    SAMPLE_ID_KEY,
    find_layer,
    short_id,
    show_sample,
)
from napari_nuclei_unet.widgets._session import disconnect_all, on_destroyed, session_for
from napari_nuclei_unet.widgets._workers import notify

if TYPE_CHECKING:
    import napari

    from napari_nuclei_unet.core.dataset import Sample

#: Job kind of prediction runs in the session's WorkerGuard (shared with the IoU panel).
PREDICT_JOB = "predict"
#: Job kind of re-scoring the cached maps after a threshold change.
RESCORE_JOB = "rescore"
#: Job kind of re-thresholding a large shown image.
DISPLAY_JOB = "compare display"
#: Images up to this many pixels are re-thresholded on the main thread (a few ms).
SYNC_PIXELS = 512 * 512

THRESHOLD_RANGE = (0.05, 0.95)
INSTANCE_METHOD_SPLIT = "watershed"
INSTANCE_METHOD_PLAIN = "components"

NO_MODEL_MESSAGE = "Load a model in the Model panel first (or click 'Load default model')."
NO_SAMPLE_MESSAGE = "Select an image in the Data panel first."
NO_SAMPLES_MESSAGE = "No images are loaded yet. Open a dataset in the Data panel first."
BUSY_MESSAGE = "A prediction is already running. Wait for it to finish, or press Cancel."


@dataclass
class PredictionResult:
    """What a :func:`predict_and_score` job returns.

    Attributes
    ----------
    probabilities : dict
        New probability maps by sample id (only the samples that were predicted).
    rows : dict
        Scores by sample id (``core.evaluation.ImageRow``) of the samples that have
        a label mask, at ``threshold`` / ``instance_method``.
    threshold : float
        Threshold the rows were computed at.
    instance_method : str
        ``"watershed"`` or ``"components"``.
    cancelled : bool
        True when the job was stopped before the end (the results are partial).
    """

    probabilities: dict[str, np.ndarray] = field(default_factory=dict)
    rows: dict[str, Any] = field(default_factory=dict)
    threshold: float = 0.5
    instance_method: str = INSTANCE_METHOD_SPLIT
    cancelled: bool = False


def network_of(model: Any) -> Any:
    """The torch module of ``model`` (a ``core.checkpoint.LoadedModel`` or a bare UNet)."""
    return getattr(model, "model", model)


def predict_and_score(
    model: Any,
    samples: Sequence[Sample],
    cached: dict[str, np.ndarray] | None = None,
    *,
    threshold: float = 0.5,
    instance_method: str = INSTANCE_METHOD_SPLIT,
    should_stop: Callable[[], bool] | None = None,
) -> Generator[Progress, None, PredictionResult]:
    """Predict the samples that have no cached map, then score every sample.

    A generator job (no Qt): it yields :class:`~napari_nuclei_unet.core.progress.Progress`
    updates (stage ``"predict"`` then ``"score"``) and returns a
    :class:`PredictionResult`. It never changes ``cached``.

    Parameters
    ----------
    model : LoadedModel or UNet
        The model.
    samples : sequence of Sample
        The samples to predict and score.
    cached : dict, optional
        Probability maps already computed by this model, by sample id; these
        samples are only scored.
    threshold : float, optional
        Probability threshold for the masks.
    instance_method : {"watershed", "components"}, optional
        How a mask is split into nuclei.
    should_stop : callable, optional
        Checked between images; when it returns True the job returns what it has.

    Returns
    -------
    PredictionResult
        The new maps and the scores.
    """
    from napari_nuclei_unet.core.evaluation import rescore

    cached = dict(cached or {})
    todo = [s for s in samples if s.id not in cached]
    result = PredictionResult(threshold=threshold, instance_method=instance_method)
    if todo:
        from napari_nuclei_unet.core.inference import predict_samples

        result.probabilities = yield from predict_samples(
            network_of(model), todo, should_stop=should_stop
        )
        cached.update(result.probabilities)
    scorable = [s for s in samples if s.id in cached and s.has_labels]
    if scorable and not stop_requested(should_stop):
        report = yield from rescore(
            scorable, cached, threshold=threshold, instance_method=instance_method,
            should_stop=should_stop,
        )
        result.rows = {row.id: row for row in report.rows}
    result.cancelled = stop_requested(should_stop) or len(result.probabilities) < len(todo)
    return result


def predicted_labels(prob: np.ndarray, *, threshold: float, instance_method: str) -> np.ndarray:
    """Threshold a probability map and split it into nuclei, as ``score_prediction`` does.

    Parameters
    ----------
    prob : numpy.ndarray
        ``(H, W)`` probabilities in [0, 1].
    threshold : float
        Pixels with ``prob > threshold`` are foreground.
    instance_method : str
        ``"watershed"`` or ``"components"``.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` int32 labels, 0 = background.
    """
    from napari_nuclei_unet.core.instances import labels_from_probability

    return labels_from_probability(prob, threshold=threshold, method=instance_method)


def labels_and_row(
    sample: Sample, prob: np.ndarray, *, threshold: float, instance_method: str
) -> tuple[np.ndarray, Any]:
    """Predicted nuclei of one image and its scores (None without a label mask).

    Parameters
    ----------
    sample : Sample
        The sample.
    prob : numpy.ndarray
        Its probability map.
    threshold : float
        Probability threshold.
    instance_method : str
        ``"watershed"`` or ``"components"``.

    Returns
    -------
    tuple
        ``(labels, row)``: ``(H, W)`` int32 labels and a ``core.evaluation.ImageRow``
        (or None when the sample has no label mask).
    """
    from napari_nuclei_unet.core.evaluation import score_prediction

    labels = predicted_labels(prob, threshold=threshold, instance_method=instance_method)
    row = None
    if sample.has_labels:
        row = score_prediction(sample, prob, threshold=threshold, instance_method=instance_method)
    return labels, row


def _legend_html() -> str:
    lines = []
    for value, (r, g, b, _) in ERROR_COLORS.items():
        color = f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"
        lines.append(f'<span style="color:{color}">&#9632;</span>&nbsp;{ERROR_NAMES[value]}')
    lines.append("<span>&#9633;</span>&nbsp;white outlines: nuclei of the label mask")
    return "<br>".join(lines)


def _format_row(row: Any) -> str:
    return (
        f"IoU {row.iou:.3f}  ·  Dice {row.dice:.3f}\n"
        f"AP@0.5 {row.ap50:.3f}  ·  DSB score {row.dsb_score:.3f}\n"
        f"{row.n_true} nuclei in the label mask, {row.n_pred} predicted"
    )


class CompareWidget(QWidget):
    """Dock widget: predict, then compare the prediction with the label mask.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer (napari passes it).
    parent : QWidget, optional
        Parent widget.

    Notes
    -----
    Public methods (used by the demo and the tests): :meth:`predict_current`,
    :meth:`predict_all`, :meth:`cancel`, :meth:`set_mode`, :meth:`set_threshold`,
    :meth:`set_split_touching`, :meth:`load_default_model`, :meth:`refresh`,
    :meth:`is_busy`.
    """

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self._stop = threading.Event()
        self._labels_key: tuple | None = None
        self._labels: np.ndarray | None = None
        self._pending_key: tuple | None = None
        self._build()
        self._connect()
        self._update_model_status()
        self.refresh()

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        from superqt import QLabeledDoubleSlider

        layout = QVBoxLayout(self)

        model_row = QHBoxLayout()
        self.model_label = QLabel()
        self.model_label.setWordWrap(True)
        self.load_default_button = QPushButton("Load default model")
        self.load_default_button.setToolTip("Load the model shipped with the plugin.")
        model_row.addWidget(self.model_label, 1)
        model_row.addWidget(self.load_default_button)
        layout.addLayout(model_row)

        buttons = QHBoxLayout()
        self.predict_button = QPushButton("Predict this image")
        self.predict_button.setToolTip("Run the model on the image shown.")
        self.predict_all_button = QPushButton("Predict all loaded")
        self.predict_all_button.setToolTip(
            "Run the model on every loaded image and score each one (IoU panel)."
        )
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        for button in (self.predict_button, self.predict_all_button, self.cancel_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)

        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.progress.setTextVisible(True)
        layout.addWidget(self.progress)

        view_box = QGroupBox("Show the prediction")
        view_layout = QVBoxLayout(view_box)
        mode_row = QHBoxLayout()
        self.mode_group = QButtonGroup(self)
        self.side_by_side_radio = QRadioButton("Side by side")
        self.side_by_side_radio.setToolTip(
            "Two linked panes: label mask on the left, prediction on the right."
        )
        self.overlay_radio = QRadioButton("Overlay")
        self.overlay_radio.setToolTip(
            "One pane: the prediction's errors coloured, the label mask outlined."
        )
        self.side_by_side_radio.setChecked(True)
        for radio in (self.side_by_side_radio, self.overlay_radio):
            self.mode_group.addButton(radio)
            mode_row.addWidget(radio)
        view_layout.addLayout(mode_row)

        threshold_row = QHBoxLayout()
        threshold_row.addWidget(QLabel("Threshold"))
        self.threshold_slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(*THRESHOLD_RANGE)
        self.threshold_slider.setSingleStep(0.01)
        self.threshold_slider.setDecimals(2)
        self.threshold_slider.setValue(self._clamped(self.session.threshold))
        self.threshold_slider.setToolTip(
            "Pixels with a nucleus probability above this are nucleus. "
            "Changing it does not run the network again."
        )
        threshold_row.addWidget(self.threshold_slider, 1)
        view_layout.addLayout(threshold_row)

        self.split_checkbox = QCheckBox("Split touching nuclei")
        self.split_checkbox.setChecked(
            self.session.instance_method == INSTANCE_METHOD_SPLIT
        )
        self.split_checkbox.setToolTip(
            "On: touching nuclei are separated (watershed). Off: every connected blob "
            "is one nucleus."
        )
        view_layout.addWidget(self.split_checkbox)
        layout.addWidget(view_box)

        self.panes_label = QLabel("Left pane: label mask  ·  right pane: prediction")
        self.panes_label.setWordWrap(True)
        layout.addWidget(self.panes_label)

        self.metrics_label = QLabel()
        self.metrics_label.setWordWrap(True)
        self.metrics_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.metrics_label)

        self.legend_label = QLabel(_legend_html())
        self.legend_label.setTextFormat(Qt.TextFormat.RichText)
        self.legend_label.setWordWrap(True)
        self.legend_label.setVisible(False)
        layout.addWidget(self.legend_label)
        layout.addStretch(1)

        # a drag of the slider re-thresholds once it pauses, not at every pixel
        self._threshold_timer = QTimer(self)
        self._threshold_timer.setSingleShot(True)
        self._threshold_timer.setInterval(80)

    def _connect(self) -> None:
        self.load_default_button.clicked.connect(self.load_default_model)
        self.predict_button.clicked.connect(self.predict_current)
        self.predict_all_button.clicked.connect(self.predict_all)
        self.cancel_button.clicked.connect(self.cancel)
        self.side_by_side_radio.toggled.connect(self._on_mode_toggled)
        self.threshold_slider.valueChanged.connect(lambda _v: self._threshold_timer.start())
        self._threshold_timer.timeout.connect(
            lambda: self.set_threshold(self.threshold_slider.value())
        )
        self.split_checkbox.toggled.connect(self.set_split_touching)
        session = self.session
        session.current_changed.connect(self._on_current_changed)
        session.model_changed.connect(self._update_model_status)
        session.predictions_changed.connect(self._on_predictions_changed)
        session.dataset_changed.connect(self._on_predictions_changed)
        on_destroyed(self, self._disconnect_session)

    def _disconnect_session(self, *_args: Any) -> None:
        session = self.session
        disconnect_all((
            (session.current_changed, self._on_current_changed),
            (session.model_changed, self._update_model_status),
            (session.predictions_changed, self._on_predictions_changed),
            (session.dataset_changed, self._on_predictions_changed),
        ))

    # ------------------------------------------------------------ state
    @staticmethod
    def _clamped(value: float) -> float:
        low, high = THRESHOLD_RANGE
        return float(min(high, max(low, value)))

    @property
    def mode(self) -> str:
        """The compare layout: ``"side by side"`` or ``"overlay"``."""
        return SIDE_BY_SIDE if self.side_by_side_radio.isChecked() else OVERLAY

    @property
    def instance_method(self) -> str:
        """``"watershed"`` when touching nuclei are split, else ``"components"``."""
        return self.session.instance_method

    def is_busy(self) -> bool:
        """Return True while a prediction, re-scoring or re-thresholding job of this viewer runs."""
        jobs = self.session.jobs
        return any(jobs.is_running(kind) for kind in (PREDICT_JOB, RESCORE_JOB, DISPLAY_JOB))

    def _current_sample(self) -> Sample | None:
        sample_id = self.session.current_id
        if sample_id is None:
            return None
        return self.session.samples.get(sample_id)

    # ---------------------------------------------------------- actions
    def set_mode(self, mode: str) -> None:
        """Show the comparison ``"side by side"`` (two linked panes) or as an ``"overlay"``.

        Parameters
        ----------
        mode : {"side by side", "overlay"}
            The layout.

        Raises
        ------
        ValueError
            If ``mode`` is unknown.
        """
        if mode not in MODES:
            raise ValueError(f"unknown compare mode {mode!r}: expected one of {', '.join(MODES)}")
        radio = self.side_by_side_radio if mode == SIDE_BY_SIDE else self.overlay_radio
        if radio.isChecked():
            self.refresh()
        else:
            radio.setChecked(True)  # -> _on_mode_toggled -> refresh

    def _on_mode_toggled(self, _checked: bool) -> None:
        self.refresh()

    def set_threshold(self, value: float) -> None:
        """Re-threshold the cached probability maps at ``value`` (no network run).

        The shown prediction, its error layer and the scores of the shown image
        are updated at once; the other cached images are re-scored in the
        background and ``session.scores_changed`` is emitted when they are done.

        Parameters
        ----------
        value : float
            Threshold, clamped to [0.05, 0.95].
        """
        value = round(self._clamped(value), 4)
        self._threshold_timer.stop()
        if abs(self.threshold_slider.value() - value) > 1e-9:
            self.threshold_slider.blockSignals(True)
            self.threshold_slider.setValue(value)
            self.threshold_slider.blockSignals(False)
        if value == self.session.threshold and self._labels_key is not None:
            return
        self.session.threshold = value
        self._scores_settings_changed()

    def set_split_touching(self, split: bool) -> None:
        """Split touching nuclei (watershed) or keep connected blobs whole (components).

        Parameters
        ----------
        split : bool
            True for the watershed split.
        """
        if self.split_checkbox.isChecked() != bool(split):
            self.split_checkbox.setChecked(bool(split))  # -> toggled -> here again
            return
        self.session.instance_method = (
            INSTANCE_METHOD_SPLIT if split else INSTANCE_METHOD_PLAIN
        )
        self._scores_settings_changed()

    def _scores_settings_changed(self) -> None:
        """Threshold or split changed: refresh the shown image now, the others in a worker."""
        current = self.session.current_id
        self.refresh(rescore=True)
        start_rescore_job(self.viewer, exclude=current)

    def load_default_model(self) -> Any:
        """Load the shipped default model in a worker; it becomes the session's model.

        Returns
        -------
        WorkerBase or None
            The worker, or None when another model is being loaded.
        """
        from napari_nuclei_unet.core.checkpoint import load_checkpoint

        self.load_default_button.setEnabled(False)
        worker = self.session.jobs.start(
            "load model",
            load_checkpoint,
            "default",
            device="auto",
            on_returned=self.session.set_model,
            on_finished=lambda: self.load_default_button.setEnabled(True),
            action="Loading the default model",
            viewer=self.viewer,
        )
        if worker is None:
            self.load_default_button.setEnabled(True)
        return worker

    def predict_current(self) -> Any:
        """Predict the image shown (in a worker) and show it beside its label mask.

        Returns
        -------
        WorkerBase or None
            The worker, or None when nothing was started (the reason is notified).
        """
        sample = self._current_sample()
        if sample is None:
            notify(NO_SAMPLE_MESSAGE, warning=True)
            return None
        if not sample.has_labels and self.session.model is not None:
            notify(
                f"{short_id(sample.id)} has no label mask: the prediction will be shown, "
                "but IoU and the other scores need a label mask."
            )
        return self._start_prediction([sample])

    def predict_all(self) -> Any:
        """Predict and score every loaded image (in a worker), for the IoU panel.

        Images predicted before with the same model are only scored again.

        Returns
        -------
        WorkerBase or None
            The worker, or None when nothing was started (the reason is notified).
        """
        samples = list(self.session.samples.values())
        if not samples:
            notify(NO_SAMPLES_MESSAGE, warning=True)
            return None
        return self._start_prediction(samples)

    def cancel(self) -> None:
        """Stop the running prediction after the current image (results so far are kept)."""
        self._stop.set()
        self.cancel_button.setEnabled(False)
        self.progress.setFormat("Stopping after this image…")

    def _start_prediction(self, samples: list[Sample]) -> Any:
        return start_prediction_job(
            self.viewer,
            samples,
            on_started=self._on_job_started,
            on_progress=self._on_progress,
            on_done=self._on_job_done,
            should_stop=self._stop.is_set,
            cancel=self.cancel,
            before=self._stop.clear,
        )

    # ---------------------------------------------------------- handlers
    def _on_job_started(self) -> None:
        self.predict_button.setEnabled(False)
        self.predict_all_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.progress.setFormat("Starting…")
        self.progress.setVisible(True)

    def _on_progress(self, update: Any) -> None:
        show_prediction_progress(self.progress, update, stopping=self._stop.is_set())

    def _on_job_done(self, result: PredictionResult | None) -> None:
        self.predict_button.setEnabled(True)
        self.predict_all_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress.setVisible(False)
        if result is not None and result.cancelled:
            notify(
                f"Prediction stopped: {len(result.probabilities)} image(s) predicted "
                "before Cancel are kept."
            )
        self.refresh()

    def _on_current_changed(self, _sample_id: str) -> None:
        self.refresh()

    def _on_predictions_changed(self) -> None:
        self._labels_key = None
        self._labels = None
        self.refresh()

    def _update_model_status(self) -> None:
        model = self.session.model
        if model is None:
            self.model_label.setText("No model loaded.")
            self.load_default_button.setVisible(True)
            self.refresh()  # the hints depend on the model
            return
        path = getattr(model, "path", None)
        name = path.stem if path is not None else "model"
        if path is not None and path.name == "default.safetensors":
            name = "default model"
        self.model_label.setText(f"Model: {name}")
        self.model_label.setToolTip(str(path) if path is not None else "")
        self.load_default_button.setVisible(False)

    # ------------------------------------------------------------ view
    def current_labels(self) -> np.ndarray | None:
        """The predicted nuclei shown for the current image, or None.

        Returns
        -------
        numpy.ndarray or None
            ``(H, W)`` int32 labels at the current threshold and split, or None
            when the image was not predicted yet (or is still being re-thresholded).
        """
        key = self._current_key()
        return self._labels if key is not None and key == self._labels_key else None

    def _current_key(self) -> tuple | None:
        sample_id = self.session.current_id
        prob = self.session.probabilities.get(sample_id) if sample_id is not None else None
        if prob is None:
            return None
        return (sample_id, id(prob), self.session.threshold, self.instance_method)

    def refresh(self, *, rescore: bool = False) -> None:
        """Show the current image's cached prediction in the current mode.

        Nothing is predicted here: without a cached map the compare layers are
        removed and the dock says so. Images up to :data:`SYNC_PIXELS` pixels are
        re-thresholded at once; larger ones in a worker (the layers follow when
        it is done), so the window never freezes.

        Parameters
        ----------
        rescore : bool, optional
            Score the shown image again even when it already has a row (the
            threshold or the split changed).
        """
        self.legend_label.setVisible(self.mode == OVERLAY)
        self.panes_label.setVisible(self.mode == SIDE_BY_SIDE)
        sample = self._current_sample()
        if sample is None:
            compare_layers.clear_comparison(self.viewer)
            self.panes_label.setVisible(False)
            self.metrics_label.setText(
                NO_SAMPLE_MESSAGE if not self.session.samples else "No image selected."
            )
            return
        key = self._current_key()
        if key is None:
            compare_layers.clear_comparison(self.viewer)
            self.panes_label.setVisible(False)
            hint = (
                "click 'Predict this image'." if self.session.model is not None
                else NO_MODEL_MESSAGE
            )
            self.metrics_label.setText(f"{short_id(sample.id)} has not been predicted yet: {hint}")
            return
        prob = self.session.probabilities[sample.id]
        if key != self._labels_key:
            if prob.size > SYNC_PIXELS:
                self._start_display_job(sample, prob, key)
                return
            self._labels = predicted_labels(
                prob, threshold=self.session.threshold, instance_method=self.instance_method
            )
            self._labels_key = key
            rescore = True
        pred_labels = self._labels
        show_prediction(self.viewer, sample, pred_labels=pred_labels, mode=self.mode)
        if not sample.has_labels:
            self.metrics_label.setText(
                f"{short_id(sample.id)}: {int(pred_labels.max())} nuclei predicted. "
                "IoU needs a label mask, and this image has none."
            )
            return
        row = self.session.rows.get(sample.id)
        if row is None or (rescore and prob.size <= SYNC_PIXELS):
            from napari_nuclei_unet.core.evaluation import score_prediction

            row = score_prediction(
                sample, prob, threshold=self.session.threshold,
                instance_method=self.instance_method,
            )
            if self.session.rows.get(sample.id) != row:
                self.session.rows[sample.id] = row
                self.session.scores_changed.emit()
        self.metrics_label.setText(_format_row(row))

    def _start_display_job(self, sample: Sample, prob: np.ndarray, key: tuple) -> None:
        """Threshold, split and score a large image in a worker, then show it."""
        if self._pending_key == key:
            return
        self._pending_key = key
        self.metrics_label.setText(f"Updating the prediction of {short_id(sample.id)} …")
        threshold, method = key[2], key[3]

        def shown(result: tuple[np.ndarray, Any]) -> None:
            labels, row = result
            if self._current_key() != key:
                return  # the threshold, split or image changed meanwhile
            self._labels, self._labels_key = labels, key
            if row is not None and self.session.rows.get(sample.id) != row:
                self.session.rows[sample.id] = row
                self.session.scores_changed.emit()
            self.refresh()

        def finished() -> None:
            if self._pending_key == key:
                self._pending_key = None

        self.session.jobs.start(
            DISPLAY_JOB,
            labels_and_row,
            sample,
            prob,
            threshold=threshold,
            instance_method=method,
            on_returned=shown,
            on_finished=finished,
            action=f"Updating the prediction of {short_id(sample.id)}",
            refuse=False,
        )


def show_prediction(
    viewer: napari.Viewer,
    sample: Sample,
    *,
    pred_labels: np.ndarray | None = None,
    mode: str = SIDE_BY_SIDE,
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
    mode : {"side by side", "overlay"}
        Layout.

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
    compare_layers.show_comparison(
        viewer,
        image_layer=image_layer,
        truth_layer=find_layer(viewer, LABELS_LAYER),
        pred_labels=pred_labels,
        true_labels=sample.labels if sample.has_labels else None,
        mode=mode,
        sample_id=sample.id,
    )
    return True


def _settings(session: Any) -> tuple[float, str]:
    return (session.threshold, session.instance_method)


def start_rescore_job(viewer: napari.Viewer, *, exclude: str | None = None) -> Any:
    """Score every cached probability map again at the session's current settings.

    Runs :func:`napari_nuclei_unet.core.evaluation.rescore` in a worker. The job
    stops by itself when the threshold or the split changes again (a newer
    re-scoring job takes over), and its rows are merged into ``session.rows``
    only while the settings are still those it used; ``scores_changed`` is
    emitted at the end.

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
    from napari_nuclei_unet.core.evaluation import rescore

    session = session_for(viewer)
    samples = [
        s for sid, s in session.samples.items()
        if sid != exclude and sid in session.probabilities and s.has_labels
    ]
    if not samples:
        return None
    settings = _settings(session)

    def outdated() -> bool:
        return _settings(session) != settings

    def keep(report: Any) -> None:
        if outdated():
            return
        session.rows.update({row.id: row for row in report.rows})
        session.scores_changed.emit()

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


def show_prediction_progress(bar: QProgressBar, update: Any, *, stopping: bool = False) -> None:
    """Show a :func:`start_prediction_job` update on ``bar`` (other updates are ignored).

    Shared by the Compare dock and the IoU panel. While ``stopping`` the bar's text
    (e.g. "Stopping after this image…") is left as it is.
    """
    if not isinstance(update, Progress):
        return
    verb = "Predicting" if update.stage == "predict" else "Scoring"
    bar.setRange(0, max(1, update.total))
    bar.setValue(update.done)
    if not stopping:
        bar.setFormat(f"{verb}: %v / %m images")


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
    ``predictions_changed`` / ``scores_changed`` are emitted; results of a model
    that was replaced meanwhile are dropped.

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
    outcome: dict[str, PredictionResult] = {}

    def keep(result: PredictionResult) -> None:
        outcome["result"] = result
        if session.model is not model:
            notify(
                "The model was changed during the prediction; its results were dropped. "
                "Predict again with the new model.",
                warning=True,
            )
            return
        session.probabilities.update(result.probabilities)
        if _settings(session) == (result.threshold, result.instance_method):
            session.rows.update(result.rows)
            session.predictions_changed.emit()
            session.scores_changed.emit()
        else:  # the threshold moved during the job: score everything at the new one
            session.predictions_changed.emit()
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
        should_stop=should_stop,
        on_yielded=on_progress,
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
