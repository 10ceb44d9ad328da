"""Train dock: train (or fine-tune, or resume) a U-Net on the loaded samples.

The form edits a :class:`~napari_nuclei_unet.core.config.TrainConfig`. Start runs
``core.training.train`` in a worker thread; its ``TrainStep`` / ``EpochEnd``
updates drive the progress bar and the live curves in the ``yielded`` handler
(main thread). Stop is cooperative: the loop saves ``last.safetensors`` and keeps
``best.safetensors``. Every run writes to a new timestamped folder under the runs
folder, so nothing is ever overwritten (Resume continues a run in its own folder).
When a run ends its best model is offered ("Use this model"), never swapped in for
the model in use (whose scores would go); with no model in use it is used at once.
The offer stays while that model is not in use, also after a restart:
:mod:`._train_offer`. The form is :mod:`._train_form`, the jobs :mod:`._train_jobs`,
the runs on disk :mod:`._train_runs`.

Closing napari during training asks for confirmation (napari lists the running
job), then stops the run and waits for its checkpoints to be written.

Programmatic use::

    widget = TrainWidget(viewer)
    widget.set_config(TrainConfig(epochs=2, base_width=8, depth=2, crop_size=64))
    widget.set_output_root(tmp_path)
    worker = widget.start()
    widget.stop()
    widget.curves.points("val_iou")  # [(epoch, value), ...]
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt, QUrl
from qtpy.QtGui import QDesktopServices
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from napari_nuclei_unet.core.config import ConfigError, TrainConfig
from napari_nuclei_unet.core.train_updates import LAST_NAME
from napari_nuclei_unet.widgets._dock_life import (
    connect_napari,
    disconnect_all,
    on_destroyed,
    share_the_column_when_shown,
)
from napari_nuclei_unet.widgets._plots import TrainingCurves
from napari_nuclei_unet.widgets._progress import format_duration  # noqa: F401  (re-exported)
from napari_nuclei_unet.widgets._scroll import scrolled_layout
from napari_nuclei_unet.widgets._session import session_for
from napari_nuclei_unet.widgets._train_form import (
    add_sections,
    form_values,
    in_form_words,
    show_config,
)
from napari_nuclei_unet.widgets._train_jobs import (  # noqa: F401  (re-exported)
    CLOSE_TIMEOUT_S,
    _list_devices_and_warm_up,
    _load_best,
    _run_training,
    best_summary,
    data_words,
    decodable,
    default_runs_root,
    new_run_dir,
    result_words,
    resume_change,
    resume_point,
)
from napari_nuclei_unet.widgets._train_offer import RunOffer
from napari_nuclei_unet.widgets._train_runs import remember_runs_root, runs_root
from napari_nuclei_unet.widgets._workers import (
    gui_cpu_threads,  # noqa: F401  (re-exported)
    notify,
    typed_path,
    write_problem,
)

if TYPE_CHECKING:
    import napari
    from superqt.utils import WorkerBase

FROM_SCRATCH = "scratch"
FINE_TUNE = "fine-tune"


class TrainWidget(RunOffer, QWidget):
    """The "Train" dock.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer this dock belongs to (shares its :class:`Session`).

    Attributes
    ----------
    curves : TrainingCurves
        The live curves; ``curves.points("val_iou")`` lists ``(epoch, value)``.
    run_dir : pathlib.Path or None
        Folder of the current (or last) run.
    best_checkpoint : pathlib.Path or None
        Best checkpoint of the last run that ended (in this session).
    last_run : RunModel or None
        The run whose model "Use this model" loads (this session's last, or the
        newest under the runs folder).
    result : TrainResult or None
        What the last run returned.
    """

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.run_dir: Path | None = None
        self.best_checkpoint: Path | None = None
        self.result: Any = None
        self._worker: WorkerBase | None = None
        self._stop_event = threading.Event()
        self._done_event = threading.Event()
        self._done_event.set()
        self._closing = False
        self._dead = False  # the dock was closed (destroyed): its widgets are gone
        self._last_step_ui = 0.0
        self._editors: dict[str, QWidget] = {}
        self._fields: dict[str, Any] = {}  # magicgui widgets by TrainConfig field
        self._build()
        self.set_config(TrainConfig())
        theme = connect_napari([(self.viewer.events.theme, self._on_theme)])
        share_the_column_when_shown(self)  # stacked under another dock
        self.session.model_changed.connect(self._update_start_from)
        self.session.samples_changed.connect(self._update_data_label)
        # napari keeps its events, and a closed dock's wrapper may outlive its Qt part
        # (the samples loaded next reached a deleted label: h_gui37 recheck)
        on_destroyed(self, lambda: self._closed([
            *theme, (self.session.model_changed, self._update_start_from),
            (self.session.samples_changed, self._update_data_label),
            (self.session.model_changed, self._show_last_run)]))
        self._update_start_from()
        self._update_data_label()
        self.find_last_run()  # after a restart: the newest run's model is offered again
        self.session.jobs.start(
            "list devices", _list_devices_and_warm_up, on_returned=self._set_devices,
            action="Preparing training", refuse=False,
        )

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        # Start/Stop and the progress bar stay visible on top; below them two tabs, the
        # settings and the curves, so that a short dock (tabbed over the IoU panel)
        # still shows either one whole. Starting a run shows the curves.
        outer = scrolled_layout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        body = QWidget()
        layout = QVBoxLayout(body)
        scroll.setWidget(body)
        top_layout = QVBoxLayout()
        top_layout.setContentsMargins(6, 6, 6, 0)
        outer.addLayout(top_layout)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        self.tabs = QTabWidget()
        self.tabs.addTab(scroll, "Settings")
        self.tabs.addTab(bottom, "Curves")
        outer.addWidget(self.tabs, 1)

        self.data_label = QLabel()
        self.data_label.setWordWrap(True)
        layout.addWidget(self.data_label)

        start_form = QFormLayout()
        self.start_from = QComboBox()
        self.start_from.addItem("scratch (new model)", FROM_SCRATCH)
        self.start_from.addItem("current model (fine-tune)", FINE_TUNE)
        self.start_from.setToolTip(
            "Fine-tuning starts from the model shown in the Model panel; its network size is kept"
        )
        start_form.addRow("Start from", self.start_from)
        self.device_combo = QComboBox()
        self.device_combo.addItem("Automatic (best available)", "auto")
        self.device_combo.setToolTip("Only devices found on this computer are listed")
        start_form.addRow("Train on", self.device_combo)
        out_row = QHBoxLayout()
        self.output_edit = QLineEdit(str(runs_root()))  # the one used last time
        self.output_edit.editingFinished.connect(self._on_output_root_typed)
        self.output_edit.setToolTip(
            "Every run is saved in a new run-<date>-<time> folder inside this folder"
        )
        choose = QPushButton("…")
        choose.setFixedWidth(32)
        choose.setToolTip("Choose the runs folder")
        choose.clicked.connect(self._choose_output_root)
        out_row.addWidget(self.output_edit, 1)
        out_row.addWidget(choose)
        start_form.addRow("Runs folder", out_row)
        layout.addLayout(start_form)

        add_sections(layout, self._fields, self._editors)
        self._epochs_chosen = False  # the user set Epochs (a resume may then extend a run)
        self._fields["epochs"].changed.connect(self._on_epochs_typed)
        layout.addStretch(1)
        layout = top_layout

        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Train a new run with these settings")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current step; the best model is kept")
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.setEnabled(False)
        self.resume_button = QPushButton("Resume…")
        self.resume_button.setToolTip("Continue a stopped run from its last checkpoint")
        self.resume_button.clicked.connect(self._choose_resume)
        for button in (self.start_button, self.stop_button, self.resume_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("not training")
        layout.addWidget(self.progress)
        self.status_label = QLabel(" ")
        # no word wrap and an ignored width: new text never re-lays out the dock
        self.status_label.setWordWrap(True)  # "Run folder: run-…, in <a long path>" was cut
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status_label)
        self._build_run_offer(layout)
        layout = bottom_layout

        self.curves = TrainingCurves(getattr(self.viewer, "theme", "dark"))
        layout.addWidget(self.curves, 1)

        result_row = QHBoxLayout()
        self.best_label = QLabel("Best model: —")
        self.best_label.setWordWrap(True)
        self.best_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.open_folder_button = QPushButton("Open folder")
        self.open_folder_button.setEnabled(False)
        self.open_folder_button.clicked.connect(self.open_run_folder)
        result_row.addWidget(self.best_label, 1)
        result_row.addWidget(self.open_folder_button)
        layout.addLayout(result_row)

    # ------------------------------------------------------------ public API
    def config(self) -> TrainConfig:
        """The configuration in the form.

        Raises
        ------
        ConfigError
            When a value is invalid (e.g. crop size not a multiple of 2**depth).
        """
        values = form_values(self._fields)
        values["device"] = self.device_combo.currentData() or "auto"
        return TrainConfig.from_dict(values)

    def set_config(self, config: TrainConfig) -> None:
        """Show ``config`` in the form (the device is chosen when it exists here)."""
        show_config(self._fields, config)
        self._epochs_chosen = False
        index = self.device_combo.findData(config.device)
        if index >= 0:
            self.device_combo.setCurrentIndex(index)

    def _on_epochs_typed(self, *_args: Any) -> None:
        self._epochs_chosen = True

    def set_output_root(self, folder: str | Path) -> None:
        """Use ``folder`` as the runs folder (each run gets a new sub-folder)."""
        self.output_edit.setText(str(folder))
        self._on_output_root_typed()

    def _on_output_root_typed(self) -> None:
        if self.best_checkpoint is None and not self.is_training():
            self.find_last_run()  # the newest run there (a run of this session stays)

    def output_root(self) -> Path:
        """The runs folder."""
        text = typed_path(self.output_edit.text())
        return Path(text).expanduser() if text else default_runs_root()

    def is_training(self) -> bool:
        """Whether a run is in progress."""
        return self.session.jobs.is_running("training")

    def start(self, *, fine_tune: bool | None = None) -> WorkerBase | None:
        """Start a new run in a new folder under the runs folder.

        Parameters
        ----------
        fine_tune : bool, optional
            Start from the session's model (default: the "Start from" choice).

        Returns
        -------
        WorkerBase or None
            The training worker, or None when refused (already training, no data,
            invalid settings); a notification says why.
        """
        if fine_tune is None:
            fine_tune = self.start_from.currentData() == FINE_TUNE
        try:
            config = self.config()
        except ConfigError as exc:
            notify(f"Please check the training settings: {in_form_words(exc)}", warning=True)
            return None
        init_from = None
        if fine_tune:
            loaded = self.session.model
            if loaded is None or getattr(loaded, "path", None) is None:
                notify("Load a model in the Model panel first, or start from scratch.")
                return None
            arch = loaded.config
            config = config.replace(base_width=arch.base_width, depth=arch.depth,
                                    in_channels=arch.in_channels)
            init_from = str(loaded.path)
        root = self.output_root()
        problem = write_problem(root)
        if problem:  # said before training, not as a failure after it started
            notify(f"The runs folder {root} cannot be written to ({problem}): choose another "
                   "runs folder with '…' beside it.", warning=True)
            return None
        worker = self._launch(config, new_run_dir(root), init_from=init_from)
        if worker is not None:
            remember_runs_root(root)  # shown, and its runs offered, when napari starts again
        return worker

    def resume(self, run_dir: str | Path) -> WorkerBase | None:
        """Continue the run in ``run_dir`` from its ``last.safetensors``.

        The run's own settings are used; Epochs set in the form by the user (when
        higher than the run's) extend it, and the device / mixed precision / threads
        come from the form. The run goes on writing into ``run_dir`` (a folder written by
        an earlier run). Returns the training worker, or None when refused.
        """
        run_dir = Path(run_dir)
        try:
            saved, meta, done_epochs = resume_point(run_dir)
        except ValueError as exc:
            return notify(str(exc), warning=True)
        try:
            form = self.config()
        except ConfigError:
            form = saved
        # Epochs the user set, or shown when the run is over (more is then asked for):
        # the form's default (40) turned an unfinished 6-epoch run into 40 (h_gui9)
        more = self._epochs_chosen or done_epochs >= saved.epochs
        epochs = max(saved.epochs, form.epochs) if more else saved.epochs
        if done_epochs >= epochs:
            notify(f"This run already finished its {saved.epochs} epochs. Set Epochs higher "
                   f"than {saved.epochs}, then press Resume again.")
            return None
        samples = self._training_samples()  # none: said before the form changes (L6)
        if samples is None:
            return None
        try:  # another dataset: refused before anything changes (GUI check h_gui41, M2)
            change = resume_change(meta, samples, saved)
        except ValueError as exc:
            return notify(str(exc), warning=True)
        config = saved.replace(epochs=epochs, device=form.device, amp=form.amp,
                               compile=form.compile, num_threads=form.num_threads)
        self.set_config(config)
        worker = self._launch(config, run_dir, resume_from=run_dir / LAST_NAME, samples=samples)
        if worker is not None:
            self.status_label.setText(" — ".join(filter(None, (self.status_label.text(), change))))
            self.curves.set_history(meta.get("history") or [])
            best = [h for h in meta.get("history") or [] if isinstance(h, dict)
                    and h.get("is_best")]  # not "—" until beaten (GUI check h_gui31, L1)
            if best and isinstance(best[-1].get("val_iou"), (int, float)):
                self.best_label.setText(
                    f"Best model so far: epoch {best[-1].get('epoch')}, validation IoU "
                    f"{best[-1]['val_iou']:.3f}\n{run_dir / 'best.safetensors'}")
            if epochs > saved.epochs:
                notify(f"The run goes on to {epochs} epochs (set in Epochs; {saved.epochs} "
                       "planned)" + (": its learning rate rises again, then decays over them."
                                     if saved.schedule == "cosine" and not saved.time_budget_s
                                     else "."))
        return worker

    def stop(self) -> None:
        """Ask the run to stop after the current step (the best checkpoint is kept)."""
        if not self.is_training():
            return
        self._stop_event.set()
        self.stop_button.setEnabled(False)
        self.status_label.setText("Stopping after the current step …")

    def stop_and_wait(self, timeout: float = CLOSE_TIMEOUT_S) -> bool:
        """Stop the run and block until its checkpoints are written (napari closing).

        Returns
        -------
        bool
            True when the run ended within ``timeout`` seconds.
        """
        self._closing = True
        self._stop_event.set()
        return self._done_event.wait(timeout)

    def open_run_folder(self) -> None:
        """Open the folder of the last run in the system's file browser."""
        folder = self.run_dir
        if folder is not None and folder.exists():
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    # ------------------------------------------------------------- running
    def _launch(self, config: TrainConfig, out_dir: Path, *, resume_from: Path | None = None,
                init_from: str | None = None, samples: list | None = None) -> WorkerBase | None:
        if self.is_training():
            notify("Training is already running. Stop it first.")
            return None
        samples = self._training_samples() if samples is None else samples  # (resume: checked)
        if samples is None:
            return None
        if config.num_threads is None:
            config = config.replace(num_threads=gui_cpu_threads())
        self._stop_event.clear()
        self._done_event.clear()
        worker = self.session.jobs.start(
            "training",
            _run_training,
            config,
            samples,
            out_dir,
            resume_from=resume_from,
            init_from=init_from,
            should_stop=self._stop_event.is_set,
            done=self._done_event,
            on_yielded=self._on_update,
            on_returned=self._on_result,
            on_errored=self._on_error,
            on_finished=self._on_finished,
            action="Training",
            viewer=self.viewer,
            description=f"Training a U-Net ({config.epochs} epochs) into {out_dir}",
            cancel=self.stop_and_wait,
        )
        if worker is None:
            self._done_event.set()
            return None
        self._worker = worker
        self._closing = False
        self._config = config
        self._pause_offer()  # a new run: offered when it ends
        self.run_dir = out_dir
        self.result = None
        if resume_from is None:
            self.curves.clear()
        self.curves.set_planned_epochs(config.epochs)
        self.start_button.setEnabled(False)
        self.resume_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.open_folder_button.setEnabled(True)
        self.tabs.setCurrentWidget(self.curves.parentWidget())
        self.progress.setValue(0)
        self.progress.setFormat("starting …")
        what = "Resuming" if resume_from else "Training"
        self.status_label.setText(f"{what} on {len(samples)} images; saving to {out_dir}")
        self.best_label.setText("Best model: — (not yet validated)")
        return worker

    def _training_samples(self) -> list[Any] | None:
        samples = list(self.session.samples.values())
        dataset = self.session.dataset
        if not samples:
            notify("Load a dataset in the Data panel first (Load all).")
            return None
        if dataset is not None and len(samples) < decodable(dataset):
            notify(f"Only {len(samples)} of the {len(dataset)} samples are loaded. Press "
                   "Load all in the Data panel, then Start again.")
            return None
        return samples  # without those that could not be decoded (the Data tab says why)

    def _on_update(self, update: Any) -> None:
        if self._closing:
            return
        if hasattr(update, "step"):  # TrainStep
            done = (update.epoch - 1) * update.steps + update.step
            total = max(1, update.epochs * update.steps)
            now = time.monotonic()
            if now - self._last_step_ui < 0.5 and update.step < update.steps:
                return  # at most 2 updates per second: every repaint recomposes the window
            self._last_step_ui = now
            # one deferred repaint for the three changes (QProgressBar.setValue alone
            # would repaint synchronously)
            self.progress.setUpdatesEnabled(False)
            self.status_label.setUpdatesEnabled(False)
            self.progress.setValue(int(1000 * done / total))
            self.progress.setFormat(
                f"epoch {update.epoch}/{update.epochs} · step {update.step}/{update.steps}"
            )
            self.status_label.setText(
                f"{update.images_per_s:.1f} images/s · loss {update.loss:.3f} · about "
                f"{format_duration(update.eta_s)} left"
            )
            self.progress.setUpdatesEnabled(True)
            self.status_label.setUpdatesEnabled(True)
        elif hasattr(update, "train_loss"):  # EpochEnd
            self.curves.add_epoch(update)
            if update.is_best:
                iou = "" if update.val_iou is None else f", validation IoU {update.val_iou:.3f}"
                self.best_label.setText(
                    f"Best model: epoch {update.epoch}{iou}\n{update.checkpoint.parent}"
                )

    def _closed(self, pairs: list) -> None:
        """The dock was closed: never train on for it (the events are reused), and say so.

        Plain Python only: its widgets are going away. A run stopped without a word and
        its handlers, which update the dock first, never ran (review h_rev20, H1).
        """
        disconnect_all(pairs)
        self._dead = True
        if self._worker is not None and not self._closing and not self._stop_event.is_set():
            notify(f"The Train panel was closed: training stops after its current step. The "
                   f"best model so far is kept in {self.run_dir}; open the Train panel to "
                   "use it.")
        self._stop_event.set()

    def _on_result(self, result: Any) -> None:
        self.result = result
        if result.trained:  # else stopped before its first step: no model (h_cli3, M1)
            self.best_checkpoint = Path(result.best_checkpoint)
        if self._closing or self._dead:  # napari closing, or said as the dock closed
            return
        label, message = result_words(result, self.best_checkpoint)
        self.best_label.setText(label)
        notify(message)
        if result.trained:
            self.find_last_run()
            self.use_or_offer_run()

    def _on_error(self, _exc: BaseException) -> None:
        if self._closing or self._dead:
            return
        if self.run_dir is not None and (self.run_dir / "best.safetensors").exists():
            self.best_label.setText(f"Best model so far: {self.run_dir / 'best.safetensors'}")
        self.find_last_run(self.run_dir)  # its model if it left one, else the one before

    def _on_finished(self) -> None:
        self._worker = None
        if self._closing or self._dead:
            return
        self.start_button.setEnabled(True)
        self.resume_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        if self.result is not None:
            self.progress.setFormat("stopped" if self.result.cancelled else "finished")
            if not self.result.cancelled:
                self.progress.setValue(1000)
        else:
            self.progress.setFormat("failed")
        # the run's own name first: a narrow dock cuts the line's end, not the name
        self.status_label.setText(f"Run folder: {self.run_dir.name}, in {self.run_dir.parent}")
        self.status_label.setToolTip(str(self.run_dir))

    # ------------------------------------------------------------- handlers
    def _choose_output_root(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for training runs",
                                                  str(self.output_root()))
        if folder:
            self.set_output_root(folder)

    def _choose_resume(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a run folder to resume",
                                                  str(self.output_root()))
        if folder:
            self.resume(folder)

    def _set_devices(self, devices: list[tuple[str, str]]) -> None:
        current = self.device_combo.currentData()
        self.device_combo.clear()
        self.device_combo.addItem("Automatic (best available)", "auto")
        for device_id, label in devices:
            self.device_combo.addItem(label, device_id)
        self.device_combo.setCurrentIndex(max(self.device_combo.findData(current), 0))

    def _update_start_from(self) -> None:
        has_model = getattr(self.session.model, "path", None) is not None
        item = self.start_from.model().item(1)
        if item is not None:
            item.setEnabled(has_model)
        if not has_model:
            self.start_from.setCurrentIndex(0)

    def _update_data_label(self) -> None:
        self.data_label.setText(data_words(len(self.session.samples), self.session.dataset))

    def _on_theme(self, event: Any = None) -> None:
        self.curves.set_theme(getattr(self.viewer, "theme", "dark"))

