"""Compare dock: the prediction beside (or over) the label mask, re-thresholded live.

The network runs in a background worker (``core.predict_score.predict_and_score``,
started by :mod:`napari_nuclei_unet.widgets._prediction_service`), as
``core.segment.segment_image`` runs it: at the "Diameter (px)" field's nucleus
diameter, 0 = estimated per image (images whose nuclei are far from the training
size are resized). Its maps are cached in the session (at the network's scale, with
the scale used), so moving the threshold slider or
switching the "split touching nuclei" toggle only re-thresholds the cached map:
the prediction and error layers and the scores follow at once, the network is
never run again. The layers themselves are managed by
:mod:`napari_nuclei_unet.widgets._compare_layers`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QWidget,
)

from napari_nuclei_unet.core.predict_score import (  # noqa: F401  (re-exported)
    INSTANCE_METHOD_PLAIN,
    INSTANCE_METHOD_SPLIT,
    PredictionResult,
    labels_and_row,
    predict_and_score,
    predicted_labels,
)
from napari_nuclei_unet.widgets import _compare_layers as compare_layers
from napari_nuclei_unet.widgets._compare_layers import (
    MODES,
    OVERLAY,
    SIDE_BY_SIDE,
    leave_correction_view,
)
from napari_nuclei_unet.widgets._compare_layout import build_layout, clamped_threshold
from napari_nuclei_unet.widgets._dock_life import (
    disconnect_all,
    on_destroyed,
    share_the_column_when_shown,
)
from napari_nuclei_unet.widgets._layers import (
    nuclei,
    short_id,
)
from napari_nuclei_unet.widgets._model_names import model_name
from napari_nuclei_unet.widgets._prediction_service import (  # noqa: F401  (re-exported)
    BUSY_MESSAGE,
    DIAMETER_TOOLTIP,
    DISPLAY_JOB,
    NO_MODEL_MESSAGE,
    NO_SAMPLE_MESSAGE,
    NO_SAMPLES_MESSAGE,
    PREDICT_JOB,
    RESCORE_JOB,
    display_arrays,
    format_scores,
    reset_prediction_progress,
    scale_text,
    show_prediction,
    show_prediction_progress,
    start_prediction_job,
    start_rescore_job,
    stop_when_closed,
)
from napari_nuclei_unet.widgets._session import session_for
from napari_nuclei_unet.widgets._workers import import_torch_safely, notify

if TYPE_CHECKING:
    import napari

    from napari_nuclei_unet.core.dataset import Sample

#: Images up to this many pixels are re-thresholded on the main thread (a few ms);
#: larger ones (every DSB2018 image) in a worker: labelling, colour matching, the
#: error map and scoring a 256 x 256 image took 50-200 ms of the main thread.
SYNC_PIXELS = 128 * 128

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
    :meth:`set_split_touching`, :meth:`set_diameter`, :meth:`load_default_model`, :meth:`refresh`,
    :meth:`is_busy`.
    """

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self._stop = threading.Event()
        self._labels_key: tuple | None = None
        self._labels: np.ndarray | None = None
        self._arrays: tuple | None = None  # comparison_arrays of _labels, made in the worker
        self._pending_key: tuple | None = None
        self._build()
        self._connect()
        self._update_model_status()
        self.refresh()
        from napari_nuclei_unet.widgets._layer_warm_up import ensure_layer_warm_up

        ensure_layer_warm_up(napari_viewer)  # its first image draws warm (as in the panel)

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        build_layout(self)

    def _connect(self) -> None:
        self.load_default_button.clicked.connect(self.load_default_model)
        self.predict_button.clicked.connect(self.predict_current)
        self.predict_all_button.clicked.connect(self.predict_all)
        self.cancel_button.clicked.connect(self.cancel)
        self.side_by_side_radio.toggled.connect(self._on_mode_toggled)
        self.mode_group.buttonClicked.connect(self._on_mode_clicked)
        self.threshold_slider.valueChanged.connect(lambda _v: self._threshold_timer.start())
        self._threshold_timer.timeout.connect(
            lambda: self.set_threshold(self.threshold_slider.value())
        )
        self.split_checkbox.toggled.connect(self.set_split_touching)
        self.diameter.changed.connect(self.set_diameter)
        session = self.session
        session.current_changed.connect(self._on_current_changed)
        session.model_changed.connect(self._update_model_status)
        session.predictions_changed.connect(self._on_predictions_changed)
        session.dataset_changed.connect(self._on_dataset_changed)
        session.compare_views += 1  # side by side guards its panes while one is open
        on_destroyed(self, self._disconnect_session)
        share_the_column_when_shown(self)  # stacked under another dock

    def _disconnect_session(self, *_args: Any) -> None:
        session = self.session
        session.compare_views -= 1
        stop_when_closed(self._predicting, self._stop, "Compare panel", "its prediction")
        disconnect_all((
            (session.current_changed, self._on_current_changed),
            (session.model_changed, self._update_model_status),
            (session.predictions_changed, self._on_predictions_changed),
            (session.dataset_changed, self._on_dataset_changed),
        ))

    # ------------------------------------------------------------ state
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
            leave_correction_view(self.viewer)
            self.refresh()
        else:
            radio.setChecked(True)  # -> _on_mode_toggled -> refresh

    def _on_mode_toggled(self, _checked: bool) -> None:
        # a view asked for: the Retrain dock's corrected mask on top of the image gives
        # way (the buttons changed nothing while it was shown: GUI check h_gui13, M1)
        leave_correction_view(self.viewer)
        self.refresh()

    def _on_mode_clicked(self, _button: Any) -> None:
        if leave_correction_view(self.viewer):  # the view already chosen, clicked again
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
        value = round(clamped_threshold(value), 4)
        self._threshold_timer.stop()
        if abs(self.threshold_slider.value() - value) > 1e-9:
            self.threshold_slider.blockSignals(True)
            self.threshold_slider.setValue(value)
            self.threshold_slider.blockSignals(False)
        if value == self.session.threshold and self._labels_key is not None:
            return
        self.session.set_scoring(threshold=value)
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
        self.session.set_scoring(
            instance_method=INSTANCE_METHOD_SPLIT if split else INSTANCE_METHOD_PLAIN
        )
        self._scores_settings_changed()

    def set_diameter(self, value: float) -> None:
        """Predict at nucleus diameter ``value`` (pixels; 0 = automatic) from now on.

        Results at the former diameter are put aside, those made before at ``value``
        come back (``Session.set_diameter``); nothing is predicted here.
        """
        value = max(0.0, float(value))
        if abs(self.diameter.value - value) > 1e-9:
            self.diameter.value = value  # -> changed -> here again
            return
        self.session.set_diameter(value)

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
        self.load_default_button.setEnabled(False)
        worker = self.session.jobs.start(
            "load model",
            _load_default_model,
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
        worker = self._start_prediction([sample])
        if worker is not None:  # the prediction asked for is shown (GUI check h_gui13, M1)
            leave_correction_view(self.viewer)
        return worker

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
    _predicting = False  # a prediction this dock started is running

    def _on_job_started(self) -> None:
        self._predicting = True
        self.predict_button.setEnabled(False)
        self.predict_all_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.progress.setFormat("Starting…")
        reset_prediction_progress(self.progress)
        self.progress.setVisible(True)

    def _on_progress(self, update: Any) -> None:
        show_prediction_progress(self.progress, update, stopping=self._stop.is_set())

    def _on_job_done(self, result: PredictionResult | None) -> None:
        self._predicting = False
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

    def _on_predictions_changed(self, ids: frozenset[str] | None = None) -> None:
        current = self.session.current_id
        if (ids is not None and current is not None and current not in ids
                and compare_layers.shown_prediction_id(self.viewer) == current):
            # other images' results arrived (a running "Predict all" adds them every
            # second): the one shown is unchanged, so it is not drawn again
            return
        self._on_dataset_changed()

    def _on_dataset_changed(self) -> None:
        if abs(self.diameter.value - self.session.diameter) > 1e-9:
            with self.diameter.changed.blocked():
                self.diameter.value = self.session.diameter
        self._labels_key = None
        self._labels = None
        self._arrays = None
        self.refresh()

    def _update_model_status(self) -> None:
        model = self.session.model
        if model is None:
            self.model_label.setText("No model loaded.")
            self.load_default_button.setVisible(True)
            self.refresh()  # the hints depend on the model
            return
        path = getattr(model, "path", None)
        self.model_label.setText(f"Model: {model_name(model)}")
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
            self._arrays = None
            self._labels_key = key
            rescore = True
        pred_labels = self._labels
        show_prediction(self.viewer, sample, pred_labels=pred_labels, mode=self.mode,
                        arrays=self._arrays)
        if not sample.has_labels:
            self.metrics_label.setText(
                f"{short_id(sample.id)}: {nuclei(int(pred_labels.max()))} predicted. "
                "IoU needs a label mask, and this image has none." + scale_text(prob)
            )
            return
        row = self.session.rows.get(sample.id)
        if row is None or (rescore and prob.size <= SYNC_PIXELS):
            from napari_nuclei_unet.core.predict_score import score_labels

            row = score_labels(sample, pred_labels, threshold=self.session.threshold,
                               instance_method=self.instance_method)
            self.session.put_rows([row], (self.session.threshold, self.instance_method))
        self.metrics_label.setText(format_scores(row, prob))

    def _start_display_job(self, sample: Sample, prob: np.ndarray, key: tuple) -> None:
        """Threshold, split and score a large image in a worker, then show it."""
        if self._pending_key == key:
            return
        self._pending_key = key
        self.metrics_label.setText(f"Updating the prediction of {short_id(sample.id)} …")
        threshold, method = key[2], key[3]

        def shown(result: tuple[np.ndarray, Any, tuple]) -> None:
            labels, row, arrays = result
            if self._current_key() != key:
                return  # the threshold, split or image changed meanwhile
            self._labels, self._labels_key, self._arrays = labels, key, arrays
            if row is not None:
                self.session.put_rows([row], (threshold, method))
            self.refresh()

        def finished() -> None:
            if self._pending_key == key:
                self._pending_key = None

        self.session.jobs.start(
            DISPLAY_JOB,
            display_arrays,
            sample,
            prob,
            threshold=threshold,
            instance_method=method,
            on_returned=shown,
            on_finished=finished,
            action=f"Updating the prediction of {short_id(sample.id)}",
            refuse=False,
        )


def _load_default_model() -> Any:
    """Load the shipped model (in a worker; torch is imported one thread at a time)."""
    from napari_nuclei_unet.core.checkpoint import load_checkpoint

    import_torch_safely()
    return load_checkpoint("default", device="auto")
