"""Model dock: load the shipped default model or a checkpoint, and see what it is.

Loading runs in a worker (it imports torch and reads the weights); the dock then
shows the model's recorded metrics, its training configuration and the device it
runs on, and makes it the session's model (``Session.set_model``), which the
Compare and IoU docks use. The dock also follows models set by other docks (the
Train dock sets the best model of a finished run).

Programmatic use::

    widget = ModelWidget(viewer)
    widget.load("default")                 # or a path to best.safetensors; returns the worker
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QWidget,
)

from napari_nuclei_unet.widgets._dock_life import (
    disconnect_all,
    on_destroyed,
    share_the_column_when_shown,
)
from napari_nuclei_unet.widgets._model_export import ModelExport
from napari_nuclei_unet.widgets._model_names import model_name
from napari_nuclei_unet.widgets._model_training import (  # noqa: F401  (re-exported)
    describe_training,
    describe_version,
)
from napari_nuclei_unet.widgets._scroll import keep_narrow, scrolled_layout
from napari_nuclei_unet.widgets._session import session_for
from napari_nuclei_unet.widgets._workers import notify

if TYPE_CHECKING:
    import napari
    from superqt.utils import WorkerBase

    from napari_nuclei_unet.core.checkpoint import LoadedModel

AUTO_DEVICE = "auto"

#: Friendlier names of the metrics the training loop records.
METRIC_NAMES = {
    "val_iou": "validation IoU",
    "best_val_iou": "best validation IoU",
    "val_loss": "validation loss",
    "train_loss": "training loss",
    "epoch": "epoch",
    "dsb_score": "DSB score",
    "ap50": "AP at IoU 0.5",
    "dice": "Dice",
    "iou": "IoU",
}


def _load(path: str, device: str) -> LoadedModel:
    """Load a checkpoint (in a worker)."""
    from napari_nuclei_unet.bioimageio.load import load_any_model
    from napari_nuclei_unet.widgets._workers import import_torch_safely

    import_torch_safely()

    return load_any_model(path, device=device)  # a checkpoint or a bioimage.io package


def _move(loaded: LoadedModel, device: str) -> LoadedModel:
    """Return ``loaded`` with its model on ``device`` (in a worker)."""
    from dataclasses import replace

    from napari_nuclei_unet.core.device import resolve_device

    return replace(loaded, model=loaded.model.to(resolve_device(device)))


def _list_devices() -> list[tuple[str, str]]:
    from napari_nuclei_unet.core.device import available_devices
    from napari_nuclei_unet.widgets._workers import import_torch_safely

    import_torch_safely()

    return available_devices()


def _checkpoint_error(exc: BaseException, package: bool = False) -> str | None:
    """The notification for a model that could not be loaded (None: the default one).

    ``package``: the file was a bioimage.io package (a ``.zip``, its YAML or its
    folder), not a checkpoint, and is named so.
    """
    from napari_nuclei_unet.bioimageio.load import NotAPackage
    from napari_nuclei_unet.core.checkpoint import CheckpointError

    if not isinstance(exc, CheckpointError):
        return None
    text = str(exc)
    if "not installed" in text or "does not exist" in text:
        return text  # no file to blame: the message says what is missing and what to do
    if package and not isinstance(exc, NotAPackage):  # a zip, not one
        return f"This bioimage.io package cannot be used here: {text}"
    if package:
        return text
    return f"This file is not a usable nuclei-unet checkpoint: {text}"


def model_device(loaded: LoadedModel) -> str:
    """Return the device the model's weights are on (e.g. ``"cpu"``, ``"cuda:0"``)."""
    try:
        return str(next(loaded.model.parameters()).device)
    except (StopIteration, AttributeError):
        pass
    # a bioimage.io package runs through bioimageio.core and names its own device
    device = getattr(loaded.model, "device", None)
    return "unknown" if device is None else str(device)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    if value is None:
        return "—"
    return str(value)


def flatten_metrics(metadata: dict) -> list[tuple[str, str]]:
    """The metrics recorded in a checkpoint, as ``(name, value)`` rows for display.

    Reads ``metadata["metrics"]`` (written by training: epoch, losses, validation
    IoU, ...), an optional ``metadata["evaluation"]`` summary and a fine-tuning
    version's scores before and after its round; nested dicts
    (e.g. per-modality IoU) become ``"validation IoU · fluorescence"`` rows.

    Parameters
    ----------
    metadata : dict
        The checkpoint's JSON sidecar.

    Returns
    -------
    list of (str, str)
    """
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any, out: list) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                name = METRIC_NAMES.get(str(key), str(key).replace("_", " "))
                walk(f"{prefix} · {name}" if prefix else name, sub, out)
        elif isinstance(value, (int, float, str)) or value is None:
            out.append((prefix, _format(value)))

    for section in ("metrics", "evaluation"):
        if isinstance(metadata.get(section), dict):
            walk("", metadata[section], rows)
    from napari_nuclei_unet.core.finetune.versions import round_scores

    scores: list[tuple[str, str]] = []
    walk("", round_scores(metadata), scores)  # a fine-tuning version: its round's scores
    shown = {name for name, _ in rows}  # ... which its package records as metrics too
    return rows + [row for row in scores if row[0] not in shown]


def describe_config(config: dict, metadata: dict, runs_on: str,
                    path: Any = None) -> list[tuple[str, str]]:
    """The configuration table's rows, with the settings that would mislead explained.

    A run limited by time plans a huge number of epochs (100000) and stops on its
    budget: the epochs row says how many were trained and that the number was a
    limit. The ``device`` setting is where the model was *trained*; the row says
    where it runs here, so a CPU user does not read "cuda" as a requirement.

    Parameters
    ----------
    config : dict
        ``TrainConfig.to_dict()`` of the model.
    metadata : dict
        The checkpoint's JSON sidecar (its history and metrics).
    runs_on : str
        The device the model's weights are on now (``"cpu"``, ``"cuda:0"``).
    path : path, optional
        The checkpoint: a run's best may come from an epoch before its last, and its
        ``last.json`` says how many epochs the run trained ("4 trained (limit 6; the run
        ended before)" was said of a run that trained all 6: GUI check h_gui42, L6).

    Returns
    -------
    list of (str, str)
    """
    from napari_nuclei_unet.widgets._model_training import _epochs_run
    from napari_nuclei_unet.widgets._progress import format_duration

    history = metadata.get("history") or []
    last = history[-1] if history and isinstance(history[-1], dict) else {}
    trained = metadata.get("epochs_run") or _epochs_run(path) or (
        metadata.get("metrics") or {}).get("epoch") or last.get("epoch")
    rows: list[tuple[str, str]] = []
    for key, value in config.items():
        name, text = key.replace("_", " "), _format(value)
        if key == "epochs" and trained and isinstance(value, int) and value > int(trained):
            budget = config.get("time_budget_s")
            why = (f"the {format_duration(float(budget))} time budget ended the run"
                   if budget else "the run ended before")
            text = f"{trained} trained (limit {value}; {why})"
        elif key == "device" and value:
            here = "the CPU" if runs_on == "cpu" else runs_on
            name, text = "trained on device", f"{value} (runs here on {here})"
        elif key == "time_budget_s" and isinstance(value, (int, float)):
            name, text = "time budget", format_duration(float(value))
        rows.append((name, text))
    return rows


class _KeyValueTable(QTableWidget):
    """Two columns, name and value, that always fit the visible width.

    A long value (a path in the configuration) is elided in the middle, whole in
    its tooltip, instead of pushing the value column off-screen.
    """

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.setTabKeyNavigation(False)  # Tab leaves the table; arrows move in it

    def fit_columns(self) -> None:
        """Share the visible width: names as wide as needed up to half, values the rest."""
        room = self.viewport().width()
        if room <= 0:
            return
        self.resizeColumnToContents(0)
        name = min(self.columnWidth(0), room // 2)
        self.setColumnWidth(0, name)
        self.setColumnWidth(1, max(40, room - name))  # values: the rest, elided if long
        self.resizeRowsToContents()  # a long name wraps whole ("… · …": h_gui15, L2)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802  (Qt's name)
        """Refit the columns to the new width."""
        super().resizeEvent(event)
        self.fit_columns()


def _table(headers: tuple[str, str]) -> QTableWidget:
    table = _KeyValueTable(0, 2)
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.setWordWrap(True)
    table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
    table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setStretchLastSection(False)
    header.setMinimumSectionSize(40)
    return table


def _fill(table: QTableWidget, rows: list[tuple[str, str]]) -> None:
    table.setRowCount(len(rows))
    for i, (name, value) in enumerate(rows):
        name_item = QTableWidgetItem(name)
        name_item.setToolTip(name)
        table.setItem(i, 0, name_item)
        item = QTableWidgetItem(value)
        item.setToolTip(value)
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        table.setItem(i, 1, item)
    if isinstance(table, _KeyValueTable):
        table.fit_columns()


class ModelWidget(ModelExport, QWidget):
    """The "Model" dock: choose the model used for prediction and inspect it.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer this dock belongs to (shares its :class:`Session`).
    """

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self._build()
        self.session.model_changed.connect(self._show_model)
        on_destroyed(self, lambda: disconnect_all([(self.session.model_changed,
                                                    self._show_model)]))  # closed
        self._show_model()
        share_the_column_when_shown(self)  # stacked under another dock
        # listing devices imports torch: do it in the background
        self.session.jobs.start(
            "list devices", _list_devices, on_returned=self._set_devices,
            action="Listing the compute devices", refuse=False,
        )

    def _build(self) -> None:
        layout = scrolled_layout(self)
        buttons = QHBoxLayout()
        self.default_button = QPushButton("Default model")
        self.default_button.setToolTip("The model shipped with napari-nuclei-unet")
        self.default_button.clicked.connect(lambda: self.load("default"))
        self.file_button = QPushButton("Checkpoint…")
        self.file_button.setToolTip(
            "A .safetensors checkpoint (with its .json) written by training, or a "
            "bioimage.io model package (.zip or rdf.yaml)"
        )
        self.file_button.clicked.connect(self._choose_file)
        buttons.addWidget(self.default_button)
        buttons.addWidget(self.file_button)
        layout.addLayout(buttons)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.device_combo = QComboBox()
        self.device_combo.addItem("Automatic (best available)", AUTO_DEVICE)
        self.device_combo.setToolTip("Where the model runs; only devices found on this computer")
        self.device_combo.activated.connect(self._device_chosen)
        keep_narrow(self.device_combo, 12)  # the dock fits a laptop's 280-px column
        form.addRow("Run on", self.device_combo)
        self.name_label = QLabel("no model loaded")
        self.name_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.name_label.setWordWrap(True)
        form.addRow("Model", self.name_label)
        self.device_label = QLabel("—")
        self.device_label.setWordWrap(True)  # the dock scrolled sideways (h_gui44, L1)
        form.addRow("Runs on", self.device_label)
        self.training_label = QLabel("—")
        self.training_label.setWordWrap(True)
        form.addRow("Training", self.training_label)
        layout.addLayout(form)

        share = QHBoxLayout()
        self.export_button = QPushButton("Export for bioimage.io…")
        self.export_button.clicked.connect(self._choose_export)
        share.addWidget(self.export_button)
        share.addStretch(1)
        layout.addLayout(share)
        self.export_status = QLabel("")
        self.export_status.setWordWrap(True)
        self.export_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.export_status)

        self.tabs = QTabWidget()
        self.metrics_table = _table(("Metric", "Value"))
        self.config_table = _table(("Setting", "Value"))
        self.tabs.addTab(self.metrics_table, "Metrics")
        self.tabs.addTab(self.config_table, "Configuration")
        layout.addWidget(self.tabs, 1)

    # ------------------------------------------------------------ public API
    def load(self, path: str | Path = "default") -> WorkerBase | None:
        """Load a checkpoint in the background and make it the session's model.

        Parameters
        ----------
        path : str or pathlib.Path
            ``"default"`` for the shipped model, or a ``.safetensors`` checkpoint.

        Returns
        -------
        WorkerBase or None
            The loading worker (None when a load is already running).
        """
        from napari_nuclei_unet.bioimageio.load import may_be_package

        package = may_be_package(path)
        name = "the default model" if str(path) == "default" else Path(path).name
        if package and name.lower().endswith((".yaml", ".yml")):  # every package's name:
            name = f"the package {Path(path).parent.name}"  # its folder's (h_gui42, L3)
        words = partial(_checkpoint_error, package=package)

        def failed(exc: BaseException) -> None:  # the toast fades: the dock says it too
            from napari_nuclei_unet.widgets._workers import explain  # (h_gui36, L1)

            said = f"{name} was not loaded. {words(exc) or explain(exc)}"
            self.export_status.setText(  # "The package x", "The default model", a file's name
                "T" + said[1:] if said.startswith("the ") else said)

        def loaded(model: Any) -> None:  # the session first: the dock may be closed by now
            self.session.set_model(model)  # (a load was dropped then: review h_rev20, M1)
            note = str(((getattr(model, "metadata", None) or {}).get("bioimageio") or {})
                       .get("weights_note") or "")  # damaged weights (GUI check h_gui42, L1)
            self.export_status.setText(note)
            if note:
                notify(note, warning=True)

        worker = self.session.jobs.start(
            "load model", _load, str(path), self.device(), on_returned=loaded,
            on_errored=failed, on_finished=self._loading_finished,
            action=f"Loading {name}", error_message=words)
        if worker is not None:
            self.name_label.setText(f"loading {name} …")
            self.default_button.setEnabled(False)
            self.file_button.setEnabled(False)
        return worker

    def device(self) -> str:
        """The device chosen in the "Run on" combo (``"auto"``, ``"cpu"``, ``"cuda:0"``...)."""
        return self.device_combo.currentData() or AUTO_DEVICE

    def config_rows(self) -> list[tuple[str, str]]:
        """The configuration table's rows, ``(setting, value)``."""
        return self._rows(self.config_table)

    def metric_rows(self) -> list[tuple[str, str]]:
        """The metrics table's rows, ``(metric, value)``."""
        return self._rows(self.metrics_table)

    # ------------------------------------------------------------- handlers
    @staticmethod
    def _rows(table: QTableWidget) -> list[tuple[str, str]]:
        return [
            (table.item(r, 0).text(), table.item(r, 1).text()) for r in range(table.rowCount())
        ]

    def start_folder(self) -> Path:
        """Where *Checkpoint…* opens: the folder of the model in use, else the runs folder.

        The shipped default model's folder is inside the installation: not there. The
        runs folder (``~/.local/share/...``) is hidden, so a file dialog would not show
        it; the home folder when it does not exist yet.
        """
        from napari_nuclei_unet.core.checkpoint import default_model_path
        from napari_nuclei_unet.core.paths import same_path
        from napari_nuclei_unet.widgets._train_runs import runs_root

        path = getattr(self.session.model, "path", None)
        if path is not None and not same_path(path, default_model_path()):
            folder = Path(path) if Path(path).is_dir() else Path(path).parent
            if folder.is_dir():
                return folder
        root = runs_root()
        return root if root.is_dir() else Path.home()

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Choose a nuclei-unet checkpoint",
            str(self.start_folder()),
            "nuclei-unet checkpoints or bioimage.io packages (*.safetensors *.zip *.yaml)"
            ";;All files (*)",
        )
        if path:
            self.load(path)

    def _loading_finished(self) -> None:
        self.default_button.setEnabled(True)
        self.file_button.setEnabled(True)
        self._show_model()  # also restores the label after an error

    def _set_devices(self, devices: list[tuple[str, str]]) -> None:
        current = self.device()
        self.device_combo.clear()
        self.device_combo.addItem("Automatic (best available)", AUTO_DEVICE)
        for device_id, label in devices:
            self.device_combo.addItem(label, device_id)
        index = self.device_combo.findData(current)
        self.device_combo.setCurrentIndex(max(index, 0))

    def _device_chosen(self, _index: int) -> None:
        loaded = self.session.model
        if loaded is None or getattr(loaded, "model", None) is None:
            return
        self.session.jobs.start(
            "load model", _move, loaded, self.device(),
            on_returned=self.session.set_model, action="Moving the model",
        )

    def _show_model(self) -> None:
        loaded = self.session.model
        self._update_export_button()
        if loaded is None:
            self.name_label.setText("no model loaded: press Default model or Checkpoint…")
            self.device_label.setText("—")
            self.training_label.setText("—")
            _fill(self.metrics_table, [])
            _fill(self.config_table, [])
            return
        path = getattr(loaded, "path", None)
        # the same name as the Compare dock and the Retrain versions use ("default model")
        self.name_label.setText(model_name(loaded))
        self.name_label.setToolTip(str(path or "not saved to a file"))
        n_params = sum(p.numel() for p in loaded.model.parameters())
        size = f"{n_params / 1e6:.2f} M" if n_params >= 1e6 else f"{n_params / 1e3:.1f} k"
        device = model_device(loaded)
        where = ("the CPU" if device == "cpu" else "an unknown device"
                 if device == "unknown" else f"the GPU ({device})")
        # a bioimage.io package's weights are not torch parameters here: no count of them
        self.device_label.setText(f"{where} · {size} parameters" if n_params else
                                  f"{where} · bioimage.io package")
        metadata = getattr(loaded, "metadata", {}) or {}
        self.training_label.setText(describe_training(metadata, path))
        metrics = flatten_metrics(metadata)
        if not metrics:  # an empty table said nothing (GUI check h_gui31, L7)
            metrics = [("scores", "none recorded with this model")]
        _fill(self.metrics_table, metrics)
        config = loaded.config.to_dict() if hasattr(loaded.config, "to_dict") else {}
        if metadata.get("train_config_recorded") is False:  # a package of another tool
            rows = [("training settings", "not recorded in this bioimage.io package")]
        else:
            rows = describe_config(config, metadata, device, path)
        _fill(self.config_table, rows)
