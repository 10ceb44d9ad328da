"""Data dock: open a DSB2018 dataset, browse its samples, load them all for training.

The dock lists the samples of a ``stage1_train`` folder, a ``stage1_train.zip``,
the bundled synthetic samples or the downloaded DSB2018 training set. Selecting
a row loads that sample in the background and shows it in the viewer's
``"nuclei image"`` and ``"label mask"`` layers (reused from sample to sample, see
:mod:`napari_nuclei_unet.widgets._layers`). "Load all" decodes every sample in the
background, filling ``Session.samples`` for training and evaluation.

Programmatic use (demo, tests)::

    widget = DataBrowserWidget(viewer)
    widget.open_dataset("path/to/stage1_train")   # returns the worker
    widget.select("0a7d30b2...")                  # returns the worker, or None if cached
    widget.load_all()
"""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QFileDialog,
    QWidget,
)

from napari_nuclei_unet.widgets._data_jobs import (  # noqa: F401  (re-exported)
    LAYOUT_HINT,
    DownloadMeter,
    _load_all_stamped,
    _open_dataset,
    failure_list,
)
from napari_nuclei_unet.widgets._data_layout import ALL_MODALITIES
from napari_nuclei_unet.widgets._data_samples import SampleShowing
from napari_nuclei_unet.widgets._data_table import (  # noqa: F401  (re-exported)
    COLUMN_CHARS,
    COLUMNS,
    ID_ROLE,
    SORT_ROLE,
    ModalityFilter,
    SampleTableModel,
)
from napari_nuclei_unet.widgets._dock_life import (
    connect_napari,
    disconnect_all,
    on_destroyed,
    share_the_column_when_shown,
)
from napari_nuclei_unet.widgets._layer_warm_up import forget_sample_layers, want_sample_layers
from napari_nuclei_unet.widgets._layers import DATASET_KEY, short_id
from napari_nuclei_unet.widgets._session import session_for
from napari_nuclei_unet.widgets._warm_up import IMPORT_JOB
from napari_nuclei_unet.widgets._workers import notify, typed_path

if TYPE_CHECKING:
    import napari
    from superqt.utils import WorkerBase

    from napari_nuclei_unet.core.dataset import DSBDataset, Sample

#: Job kind of the import warm-up started when the dock opens.
WARM_UP_JOB = IMPORT_JOB
#: A click on "Stop" this soon after "Load all" is the second click of a double click.
DOUBLE_CLICK_S = 0.5


class DataBrowserWidget(SampleShowing, QWidget):
    """The "Data" dock: dataset picker, sample table, "Load all".

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer this dock belongs to (shares its :class:`Session`).
    """

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self._sample_worker: WorkerBase | None = None
        self._pending_id: str | None = None
        self._load_all_clicked = float("-inf")  # when "Load all" was last clicked
        self._stop_loading = threading.Event()
        self._stop_opening = threading.Event()
        self._offered_path: str | None = None
        self._syncing = False  # True while the table follows another dock's choice
        self._dead = False  # the dock was closed (Qt destroyed it)
        self._meter: DownloadMeter | None = None
        self._meter_timer = QTimer(self)
        self._meter_timer.setInterval(200)
        self._meter_timer.timeout.connect(self._show_download_progress)
        self._build()
        self._connect()
        self._warm_up_layers()
        if self.session.dataset is not None:  # dock reopened: show the open dataset
            self._fill_table(self.session.dataset)
            self._select_current(self.session.current_id)

    def _warm_up_layers(self) -> None:
        """Import what napari needs for the first image layers, in a worker, once.

        Then the plugin's layers are made and drawn once, unseen, as the workflow
        panel has them made (``_layer_warm_up.ensure_layer_warm_up``).
        """
        from napari_nuclei_unet.widgets._layer_warm_up import ensure_layer_warm_up
        from napari_nuclei_unet.widgets._warm_up import (
            install_unit_registry,
            prepare_layer_display,
        )

        ensure_layer_warm_up(self.viewer)  # waits for the imports below
        if getattr(self.session, "layers_warmed_up", False):
            return
        self.session.layers_warmed_up = True
        self.session.jobs.start(WARM_UP_JOB, prepare_layer_display, refuse=False,
                                on_returned=install_unit_registry,
                                action="Preparing the image display")

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        from napari_nuclei_unet.widgets import _data_layout

        _data_layout.build(self)

    def _connect(self) -> None:
        self._napari_pairs = connect_napari(
            [(self.viewer.layers.events.inserted, self._on_layer_inserted)])
        self.session.current_changed.connect(self._on_current_changed)
        on_destroyed(self, self._disconnect)
        share_the_column_when_shown(self)  # stacked under another dock

    def _disconnect(self) -> None:
        self._dead = True
        disconnect_all((
            (self.session.current_changed, self._on_current_changed),
            *self._napari_pairs,
        ))

    # ------------------------------------------------------------ public API
    @property
    def dataset(self) -> DSBDataset | None:
        """The open dataset (``session.dataset``), or None."""
        return self.session.dataset

    def open_dataset(self, path: str | Path) -> WorkerBase | None:
        """Open a DSB2018 folder, zip or sample folder in the background.

        Parameters
        ----------
        path : str or pathlib.Path
            The dataset location.

        Returns
        -------
        WorkerBase or None
            The worker opening it (None when another opening is running). Errors,
            such as a folder that is not a dataset, become notifications.
        """
        path = str(Path(path).expanduser())
        want_sample_layers(self.viewer)  # made while it opens (not for own images only)
        self.path_edit.setText(path)
        self.status_label.setText(f"Opening {path} …")
        self._stop_opening.clear()
        worker = self.session.jobs.start(
            "open dataset",
            _open_dataset,
            path,
            self._stop_opening.is_set,
            on_yielded=self._on_progress,
            on_returned=self._on_dataset_opened,
            on_errored=self._on_open_failed,
            on_finished=self._on_open_finished,
            action=f"Opening {Path(path).name}",
            viewer=self.viewer,
            description=f"Opening {Path(path).name}",
            cancel=self._stop_opening.set,
        )
        if worker is not None:
            self._throttle.begin("indexing samples …")
            self.cancel_button.setEnabled(True)
            self.load_all_button.setEnabled(False)  # until the samples are listed
        return worker

    def cancel(self) -> None:
        """Stop opening or loading after the current sample (what is done is kept)."""
        self._stop_opening.set()
        self._stop_loading.set()

    def open_bundled_samples(self) -> WorkerBase | None:
        """Open the synthetic samples shipped with the plugin.

        Returns
        -------
        WorkerBase or None
            The worker opening them.
        """
        from napari_nuclei_unet._sample_data import sample_data_dir

        try:
            folder = sample_data_dir()
        except FileNotFoundError as exc:
            from napari_nuclei_unet.widgets._workers import notify_error

            notify_error(exc, "Opening the bundled samples")
            return None
        return self.open_dataset(folder)

    def download_dsb2018(self) -> WorkerBase | None:
        """Download DSB2018 stage1_train (once, into the cache) and open it.

        Returns
        -------
        WorkerBase or None
            The download worker.
        """
        from napari_nuclei_unet.core.download import fetch_stage1_train

        want_sample_layers(self.viewer)
        self._meter = DownloadMeter()
        worker = self.session.jobs.start(
            "download",
            fetch_stage1_train,
            progressbar=self._meter,
            on_returned=self.open_dataset,
            on_finished=self._on_download_finished,
            action="Downloading DSB2018",
            viewer=self.viewer,
            description="Downloading DSB2018 stage1_train",
        )
        if worker is not None:
            self.download_button.setEnabled(False)
            self.progress.setRange(0, 0)  # busy until the size is known
            self.progress.setFormat("downloading DSB2018 …")
            self._meter_timer.start()
        return worker

    def select(self, sample_id: str) -> WorkerBase | None:
        """Select ``sample_id`` in the table, which shows it in the viewer.

        The modality filter is cleared when it hides the sample.

        Parameters
        ----------
        sample_id : str
            Full id of a sample of the open dataset.

        Returns
        -------
        WorkerBase or None
            The worker loading the sample, or None when it was already loaded
            (then it is shown at once).

        Raises
        ------
        KeyError
            When the open dataset has no such sample.
        """
        if self.table_model.row_of(sample_id) is None:
            raise KeyError(f"No sample {sample_id!r} in the open dataset.")
        row = self._row_of(sample_id)
        if row is None:  # the modality filter hides it
            self.modality_combo.setCurrentIndex(0)
            row = self._row_of(sample_id)
        self.table.selectRow(row)
        self.table.scrollTo(self.proxy.index(row, 0))
        return self._sample_worker

    def load_all(self) -> WorkerBase | None:
        """Decode every sample of the dataset in the background into ``session.samples``.

        Returns
        -------
        WorkerBase or None
            The worker, or None when no dataset is open or loading already runs.
        """
        dataset = self.dataset
        if self.session.jobs.is_running("open dataset"):
            notify("The dataset is still opening: press Load all once its samples are listed.")
            return None
        if dataset is None:
            notify("Open a dataset first (folder, zip or Bundled samples).")
            return None
        if all(i in self.session.samples for i in dataset.ids()):
            notify(f"All {len(dataset)} samples are already loaded.")
            return None
        self._stop_loading.clear()
        # always all ids: the decoded-dataset cache is keyed by the list of ids
        worker = self.session.jobs.start(
            "load all",
            _load_all_stamped,
            dataset,
            should_stop=self._stop_loading.is_set,
            on_yielded=self._on_progress,
            on_returned=partial(self._on_all_loaded, dataset),
            on_finished=self._on_load_all_finished,
            action="Loading the samples",
            viewer=self.viewer,
            description=f"Loading {len(dataset)} samples",
            cancel=self._stop_loading.set,
        )
        if worker is not None:
            self.load_all_button.setText("Stop loading")
            self._throttle.begin("loading samples …", len(dataset))
            self.cancel_button.setEnabled(True)
        return worker

    def stop_loading(self) -> None:
        """Ask "Load all" to stop after the current sample (samples loaded so far are kept)."""
        self._stop_loading.set()

    def visible_ids(self) -> list[str]:
        """Ids of the rows shown (filter applied), in table order (sorting applied)."""
        proxy = self.proxy
        return [proxy.index(row, 0).data(ID_ROLE) for row in range(proxy.rowCount())]

    def row_count(self) -> int:
        """Number of samples in the table (the filter ignored)."""
        return self.table_model.rowCount()

    def sort_by(self, column: int, descending: bool = False) -> None:
        """Sort the table by ``column`` (0 id, 1 modality, 2 area, 3 nuclei)."""
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        self.table.sortByColumn(column, order)

    def set_modality_filter(self, modality: str | None) -> None:
        """Show only samples of ``modality`` (None: all)."""
        index = self.modality_combo.findData(modality)
        self.modality_combo.setCurrentIndex(max(index, 0))

    # ------------------------------------------------------------- handlers
    def _open_typed_path(self) -> None:
        text = typed_path(self.path_edit.text())
        if not text:
            notify("Type the path of a DSB2018 folder or zip, or use Folder… / Zip….")
            return
        self.open_dataset(text)

    def _choose_folder(self) -> None:
        want_sample_layers(self.viewer)  # made while the user picks the folder
        folder = QFileDialog.getExistingDirectory(self, "Choose a DSB2018 dataset folder")
        if folder:
            self.open_dataset(folder)
        else:
            self._no_dataset_after_all()

    def _choose_zip(self) -> None:
        want_sample_layers(self.viewer)
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose a DSB2018 zip", "", "Zip archives (*.zip);;All files (*)"
        )
        if path:
            self.open_dataset(path)
        else:
            self._no_dataset_after_all()

    def _on_dataset_opened(self, opened: tuple[DSBDataset, dict[str, str] | None] | None
                           ) -> None:
        if opened is None:  # cancelled
            notify("Opening the dataset was cancelled; the previous one stays open.")
            return
        dataset, stamps = opened
        self.stop_loading()  # a "Load all" of the previous dataset must not fill the new one
        self._pending_id = None
        if self._dead:  # closed while it opened: the session still gets it (h_rev20, M1)
            note = self.session.set_dataset(dataset, stamps)
            return notify(note) if note else None
        self._fill_table(dataset)
        if self._offered_path and Path(self._offered_path) == Path(dataset.path):
            self.offer_box.setVisible(False)
        note = self.session.set_dataset(dataset, stamps)
        self._describe_dataset(dataset)  # opened again: what failed before stays marked
        if note:
            notify(note)
        self._show_first()

    def _show_first(self) -> None:
        """After opening, show the image kept from before (reopened), else the first row."""
        current = self.session.current_id
        if current is not None and self._row_of(current) is not None:
            self._select_current(current)  # the same folder again: it is shown already
            return
        ids = self.visible_ids()
        if ids:
            # a row of the same id as the image shown from the dataset before is
            # highlighted already: selecting it again would show nothing
            self._syncing = True
            try:
                self.table.clearSelection()
            finally:
                self._syncing = False
            self.select(ids[0])

    def _on_open_failed(self, _exc: BaseException) -> None:
        self._describe_dataset(self.dataset)
        self._no_dataset_after_all()

    def _no_dataset_after_all(self) -> None:
        """No dataset opened: the layers made for one go again (GUI check h_gui31, M2)."""
        if self.session.dataset is None:
            forget_sample_layers(self.viewer)

    def _fill_table(self, dataset: DSBDataset) -> None:
        self.path_edit.setText(str(dataset.path))
        self._syncing = True  # the reset clears the selection: that shows nothing
        try:
            self.table_model.set_infos(dataset.infos)  # one reset; rows drawn lazily
            self.table.clearSelection()
        finally:
            self._syncing = False
        self._describe_dataset(dataset)  # after the reset: it marks the rows that failed

        counts: dict[str, int] = {}
        for info in dataset.infos:
            counts[info.modality] = counts.get(info.modality, 0) + 1
        combo = self.modality_combo
        chosen = combo.currentData()  # kept when the dataset has that modality too (chosen
        combo.blockSignals(True)  # while it opened, or the same dataset opened again)
        combo.clear()
        combo.addItem(f"{ALL_MODALITIES} ({len(dataset.infos)})", None)
        for modality in sorted(counts):
            combo.addItem(f"{modality} ({counts[modality]})", modality)
        combo.setCurrentIndex(max(combo.findData(chosen), 0))
        combo.blockSignals(False)
        self._apply_filter()
        self._show_loaded_count()

    def _describe_dataset(self, dataset: DSBDataset | None) -> None:
        if dataset is None:
            self.status_label.setText("No dataset open. " + LAYOUT_HINT)
            return
        text = f"{Path(dataset.path).name}: {len(dataset)} samples"
        tip = str(dataset.path)
        skipped = list(dataset.skipped)  # one reading: a loading thread may replace it
        if skipped:
            # the reasons name long file paths: a line that cannot wrap pushed the
            # tab wider than the dock (Open out of sight); they are in the tooltip
            text += f", {len(skipped)} skipped (bad files: point here for why)"
            reasons = [f"{short_id(i)}: {why}" for i, why in skipped[:10]]
            more = len(skipped) - len(reasons)
            tip += "\n\nSkipped:\n" + "\n".join(reasons) + (f"\n… and {more} more" if more
                                                               else "")
        self.status_label.setText(text)
        self.status_label.setToolTip(tip)
        if hasattr(dataset, "failures"):  # the rows of those that failed to decode
            self.table_model.set_failed(dataset.failures())

    def _apply_filter(self) -> None:
        self._syncing = True  # rows moving under the selection show nothing new
        try:
            self.proxy.set_modality(self.modality_combo.currentData())
        finally:
            self._syncing = False
        # the shown image's row stays highlighted; when the filter hides it, no other row
        # is (Qt would move the highlight to a neighbour the canvas does not show)
        self._select_current(self.session.current_id)

    def _row_of(self, sample_id: str) -> int | None:
        """Table row of ``sample_id``; None when absent or hidden by the filter."""
        source = self.table_model.row_of(sample_id)
        if source is None:
            return None
        row = self.proxy.mapFromSource(self.table_model.index(source, 0)).row()
        return None if row < 0 else row

    def _selected_id(self) -> str | None:
        """Id of the selected row, or None when no row is selected."""
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return min(rows, key=lambda index: index.row()).data(ID_ROLE)

    def _on_selection_changed(self, *_args: Any) -> None:
        if self._syncing:
            return
        sample_id = self._selected_id()
        if sample_id is not None:
            self._request_sample(sample_id)

    def _on_current_changed(self, sample_id: str | None) -> None:
        """Follow the sample shown by another dock (IoU panel, Retrain) in the table.

        The sample is already shown: it is neither loaded nor shown again, and a
        sample still loading for an earlier click here will not replace it.
        """
        if sample_id == self._selected_id():
            return  # this dock showed it, or the row is already selected
        self._pending_id = sample_id
        self._select_current(sample_id)

    def _select_current(self, sample_id: str | None) -> None:
        """Select and scroll to the row of ``sample_id`` without showing it again.

        The selection is cleared when the table has no such row or the modality
        filter hides it (the filter is kept).

        Parameters
        ----------
        sample_id : str or None
            Full id of the sample shown in the viewer.
        """
        row = None if sample_id is None else self._row_of(sample_id)
        self._syncing = True
        try:
            if row is None:
                self.table.selectionModel().clear()
            else:
                self.table.selectRow(row)
                self.table.scrollTo(self.proxy.index(row, 0))
        finally:
            self._syncing = False

    def _toggle_load_all(self) -> None:
        import time

        if self.session.jobs.is_running("load all"):
            # the second click of a double click is not a Stop (it stopped at 0 samples)
            if time.monotonic() - self._load_all_clicked >= DOUBLE_CLICK_S:
                self.stop_loading()
        else:
            self._load_all_clicked = time.monotonic()
            self.load_all()

    def _on_progress(self, update: Any) -> None:
        # throttled: at most ~10 repaints a second, whatever the rate of updates
        verb = "indexing" if getattr(update, "stage", "") == "index" else "loading"
        self._throttle.show_update(update, f"{verb} %v / %m samples")

    def _on_open_finished(self) -> None:
        self.load_all_button.setEnabled(True)
        self._describe_dataset(self.dataset)
        self._job_ended()

    def _on_all_loaded(self, dataset: DSBDataset, loaded: tuple[
            list[Sample], dict[str, str], dict[str, str]]) -> None:
        if dataset is not self.dataset:
            return
        samples, stamps, new_failures = loaded
        self.session.add_samples(samples, stamps)
        n, total = len(self.session.samples), len(dataset)
        if n < total and self._stop_loading.is_set():
            notify(f"Loading stopped: {n} of {total} samples are loaded.")
        elif n < total:  # the files are listed once, at the Load all that met them
            notify(f"{n} of {total} samples are loaded: {total - n} could not be decoded "
                   "and are left out; you can train on the others."
                   + failure_list(new_failures), warning=bool(new_failures))
        else:
            notify(f"All {total} samples are loaded; you can train now.")

    def _on_load_all_finished(self) -> None:
        self.load_all_button.setText("Load all")
        self._describe_dataset(self.dataset)  # samples that failed to decode are skipped
        self._job_ended()

    def _job_ended(self) -> None:
        jobs = self.session.jobs
        self.cancel_button.setEnabled(
            jobs.is_running("open dataset") or jobs.is_running("load all")
        )
        self._show_loaded_count()

    def _show_loaded_count(self) -> None:
        dataset = self.dataset
        total = len(dataset) if dataset is not None else 0
        n = len(self.session.samples) if dataset is not None else 0
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(n, total))
        self.progress.setFormat(f"{n} / {total} samples loaded" if total else "no samples loaded")

    def _show_download_progress(self) -> None:
        meter = self._meter
        if meter is None or not meter.total:
            return
        mib, total_mib = meter.n / 2**20, meter.total / 2**20
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(1000 * min(1.0, meter.n / meter.total)))
        self.progress.setFormat(f"downloading DSB2018: {mib:.0f} / {total_mib:.0f} MB")

    def _on_download_finished(self) -> None:
        self._meter_timer.stop()
        self._meter = None
        self.download_button.setEnabled(True)
        self._show_loaded_count()

    def _on_layer_inserted(self, event: Any) -> None:
        layer = event.value
        path = getattr(layer, "metadata", {}).get(DATASET_KEY)
        if not path:
            return
        current = self.dataset
        if current is not None and Path(current.path) == Path(path):
            return
        self._offered_path = str(path)
        self.offer_label.setText(
            f"Layer “{short_id(layer.name)}” comes from {Path(path).name}. "
            "Browse all its samples in this panel?"
        )
        self.offer_label.setToolTip(str(path))
        self.offer_box.setVisible(True)

    def _accept_offer(self) -> None:
        self.offer_box.setVisible(False)
        if self._offered_path:
            self.open_dataset(self._offered_path)

