"""IoU panel: one row of scores per image, a summary and a histogram.

The table shows ``session.rows`` (``core.evaluation.ImageRow``, computed by
``core.evaluation.score_prediction``) and follows ``session.scores_changed``.
Sorting is numeric (the proxy model sorts on the raw values, not on the text),
cells are coloured by score, and clicking a row shows that image with its label
mask and prediction. "Score all" predicts (in a worker) the loaded images that
have no cached prediction and scores all of them.
"""

from __future__ import annotations

import csv
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QModelIndex, QPoint, Qt
from qtpy.QtGui import QCursor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QWidget,
)

from napari_nuclei_unet.widgets._data_jobs import load_sample_then
from napari_nuclei_unet.widgets._dock_life import (
    connect_napari,
    disconnect_all,
    on_destroyed,
    share_the_column_when_shown,
)
from napari_nuclei_unet.widgets._ids import enable_id_copy
from napari_nuclei_unet.widgets._layers import short_id, show_sample
from napari_nuclei_unet.widgets._score_table import (  # noqa: F401  (re-exported)
    COLUMNS,
    CSV_FIELDS,
    EMPTY_MESSAGE,
    FIELDS,
    FIT_ROWS,
    ID_COLUMN_CHARS,
    ID_COLUMN_WIDTH,
    ID_ROLE,
    SCORE_FIELDS,
    SORT_ROLE,
    ScoreTableModel,
    SortInSourceProxy,
    elide_id,
    kept_words,
    score_color,
    summarize,
    summary_html,
    text_color_on,
)
from napari_nuclei_unet.widgets._scroll import scrolled_layout
from napari_nuclei_unet.widgets._session import session_for
from napari_nuclei_unet.widgets._workers import notify, notify_error

if TYPE_CHECKING:
    import napari

#: Shown while a prediction started in the Compare dock (or tab) fills the table.
ELSEWHERE_TEXT = ("Predicting the loaded images (Predict all; the Cancel beside it stops it): "
                  "each image's row is added as soon as it is done.")


def hidden_scores(session: Any, shown: int) -> str:
    """Plain words on the scores hidden at the current threshold that nothing re-scores.

    Scores read back from an earlier session have no prediction map: at another
    threshold they are hidden, and the table said "No scores yet" (GUI check h_gui9).
    ``shown``: the rows shown or being scored again. "" when there are none hidden.
    """
    from collections import Counter

    now = session.settings()
    others = [session.rows_settings.get(sid, now) for sid in session.rows]
    others = [s for s in others if s != now]
    n = len(session.rows) - shown
    if n <= 0 or not others:
        return ""
    threshold, method = Counter(others).most_common(1)[0][0]
    then, here, back = [], [], []
    if threshold != now[0]:
        then.append(f"at threshold {threshold:.2f}")
        here.append(f"{now[0]:.2f}")
        back.append(f"set the threshold back to {threshold:.2f}")
    if method != now[1]:
        then.append(f"with the {method} split")
        here.append(f"the {now[1]} split")
        back.append(f"choose the {method} split again")
    then, here, back = " ".join(then), " and ".join(here), " and ".join(back)
    # 'Score all' scores the images loaded only: after it, "3 image(s) ... are hidden"
    # still (GUI check h_gui47, L1)
    unloaded = sum(1 for sid in session.rows if sid not in session.samples
                   and session.rows_settings.get(sid, now) != now)
    first = (f"'Load all' in the Data step, then 'Score all', to score them again ({unloaded} "
             "of them are not loaded)") if unloaded else "'Score all' to score them again"
    return (f"{n} image(s) scored {then} are hidden at {here}: {back} to see them, or "
            f"press {first}.")


class IoUPanel(QWidget):
    """Dock widget: per-image scores, summary, histogram, export.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer (napari passes it).
    parent : QWidget, optional
        Parent widget.

    Notes
    -----
    Public methods (used by the demo and the tests): :meth:`refresh`,
    :meth:`score_all`, :meth:`show_sample_id`, :meth:`jump_to_worst`,
    :meth:`export_csv`, :meth:`visible_rows`, :meth:`cell_text`,
    :meth:`cell_value`, :meth:`sort_by`.
    """

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self._syncing = False
        self._stop = threading.Event()
        self._build()
        self._connect()
        self.refresh()
        from napari_nuclei_unet.widgets._layer_warm_up import ensure_layer_warm_up

        ensure_layer_warm_up(napari_viewer)  # its first image draws warm (as in the panel)

    # ------------------------------------------------------------------ UI
    def _build(self) -> None:
        layout = scrolled_layout(self)

        buttons = QHBoxLayout()
        self.score_button = QPushButton("Score all")
        self.score_button.setToolTip(
            "Predict the loaded images that have no prediction yet, then score every one."
        )
        self.worst_button = QPushButton("Jump to worst")
        self.worst_button.setToolTip("Show the image with the lowest IoU.")
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setToolTip("Save the table (full precision) as a CSV file.")
        for button in (self.score_button, self.worst_button, self.export_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)

        progress_row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop after this image (the scores so far are kept)")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel)
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        layout.addLayout(progress_row)
        self.stale_label = QLabel()
        self.stale_label.setWordWrap(True)
        self.stale_label.setVisible(False)
        layout.addWidget(self.stale_label)
        self.elsewhere_label = QLabel(ELSEWHERE_TEXT)  # a prediction the Compare panel runs
        self.elsewhere_label.setWordWrap(True)
        self.elsewhere_label.setVisible(False)
        layout.addWidget(self.elsewhere_label)

        self.model = ScoreTableModel(self)
        self.proxy = SortInSourceProxy(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        # rows stay in scoring order until the user clicks a header
        self.table.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table (h_gui36 L6)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.setResizeContentsPrecision(FIT_ROWS)
        # a narrow id column keeps both ends of a name (where names of one experiment differ)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setMinimumHeight(120)
        enable_id_copy(self.table, self._selected_id)

        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextFormat(Qt.TextFormat.RichText)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        summary_area = QScrollArea()
        summary_area.setWidget(self.summary_label)
        summary_area.setWidgetResizable(True)
        summary_area.setFrameShape(QFrame.Shape.NoFrame)
        summary_area.setMinimumHeight(60)

        # a splitter never lets the parts overlap when the dock is short; the user
        # can give the table more room
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(summary_area)
        self.splitter.addWidget(self._build_histogram())
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 1)
        self.splitter.setSizes([220, 150, 140])
        layout.addWidget(self.splitter, 1)

    def _build_histogram(self) -> QWidget:
        from napari_nuclei_unet.widgets._plots import IoUHistogram

        self.histogram = IoUHistogram(self.viewer.theme)
        return self.histogram

    def _connect(self) -> None:
        self.score_button.clicked.connect(self.score_all)
        self.worst_button.clicked.connect(self.jump_to_worst)
        self.export_button.clicked.connect(self._choose_csv)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row_changed)
        self.table.clicked.connect(self._on_clicked)
        session = self.session
        session.scores_changed.connect(self.refresh)
        session.current_changed.connect(self._select_current)
        session.jobs.started.connect(self._on_job)
        session.jobs.ended.connect(self._on_job)
        self._napari_pairs = connect_napari([(self.viewer.events.theme, self._draw_histogram)])
        on_destroyed(self, self._disconnect)
        share_the_column_when_shown(self)  # stacked under another dock

    def _disconnect(self, *_args: Any) -> None:
        from napari_nuclei_unet.widgets._prediction_service import stop_when_closed

        stop_when_closed(self._scoring, self._stop, "IoU panel", "'Score all'")
        disconnect_all((
            (self.session.scores_changed, self.refresh),
            (self.session.current_changed, self._select_current),
            (self.session.jobs.started, self._on_job),
            (self.session.jobs.ended, self._on_job),
            *self._napari_pairs,
        ))

    # ------------------------------------------------------------ content
    def refresh(self) -> None:
        """Fill the table, summary and histogram from ``session.rows``."""
        from napari_nuclei_unet.core.predict_score import splits_of

        session = self.session
        rows = session.current_rows()  # never old scores under a new threshold
        # rows arrive every second during "Predict all": the row under the pointer stays
        # under it (a click at that moment hits the row aimed at), else the row the user
        # scrolled to stays at the top, also when rows sorted above them arrive
        anchor = self._anchor_row()
        self._syncing = True
        try:
            dataset = session.dataset
            ids = list(dataset.ids()) if dataset is not None else list(session.samples)
            splits = splits_of(session.model, ids)
            self.model.set_rows(rows, splits)
        finally:
            self._syncing = False
        self._show_prediction_elsewhere()
        stale = session.stale_count()
        hidden = hidden_scores(session, len(rows) + stale)
        self.stale_label.setVisible(bool(stale or hidden))
        if stale:
            self.stale_label.setText(
                f"Scoring {stale} image(s) again at threshold {session.threshold:.2f} … "
                "(their old scores are hidden)"
            )
        elif hidden:  # no prediction map to score again (read back from an earlier session)
            self.stale_label.setText(hidden)
        self.summary_label.setText(
            summary_html(summarize(rows, splits), self.session.threshold,
                         self.session.instance_method) + ("" if rows else kept_words(session))
            if rows or not hidden else "")
        self.worst_button.setEnabled(bool(rows))
        self.export_button.setEnabled(bool(rows))
        self._fit_columns()
        self._draw_histogram()
        self._select_current(self.session.current_id, scroll=False)
        self._keep_in_place(anchor)

    def _show_prediction_elsewhere(self) -> None:
        """Say so while a prediction started in another dock fills the table."""
        from napari_nuclei_unet.widgets._prediction_service import PREDICT_JOB

        worker = self.session.jobs.running(PREDICT_JOB)
        elsewhere = worker is not None and self.cancel_button.isHidden()  # not this panel's
        self.elsewhere_label.setVisible(elsewhere)

    def _on_job(self, kind: str) -> None:
        """A job started or ended (any dock's): the "predicting elsewhere" line follows."""
        from napari_nuclei_unet.widgets._prediction_service import PREDICT_JOB

        if kind == PREDICT_JOB:
            self._show_prediction_elsewhere()

    def _anchor_row(self) -> tuple[str, int] | None:
        """The row to keep in place through a refresh, and its top's y in the viewport.

        The row under the pointer when the pointer is over the table; else the top row,
        or None when the table is not scrolled (at the top it stays at the top: the rows
        sorted first show).
        """
        from qtpy.QtWidgets import QApplication

        viewport = self.table.viewport()
        pointer = viewport.mapFromGlobal(QCursor.pos())
        over = viewport.isVisible() and QApplication.widgetAt(QCursor.pos()) is viewport
        index = self.table.indexAt(pointer) if over else None
        if index is None or not index.isValid():
            if self.table.verticalScrollBar().value() == 0:
                return None
            index = self.table.indexAt(QPoint(1, 1))
            if not index.isValid():
                return None
        sample_id = index.sibling(index.row(), 0).data(ID_ROLE)
        return None if sample_id is None else (sample_id, self.table.visualRect(index).top())

    def _keep_in_place(self, anchor: tuple[str, int] | None) -> None:
        """Scroll so that the anchor's row is where it was (:meth:`_anchor_row`)."""
        bar = self.table.verticalScrollBar()
        row = self._view_row_of(anchor[0]) if anchor is not None else None
        if row is None:
            bar.setValue(0)
            return
        self.table.updateGeometries()  # the scroll range of the new rows, now
        index = self.proxy.index(row, 0)
        self.table.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtTop)
        above = anchor[1] - self.table.visualRect(index).top()  # pixels to put back above
        if self.table.verticalScrollMode() == QAbstractItemView.ScrollMode.ScrollPerPixel:
            bar.setValue(bar.value() - above)
        else:  # the scroll bar counts rows
            bar.setValue(bar.value() - round(above / max(1, self.table.rowHeight(row))))

    def _fit_columns(self) -> None:
        """Columns as wide as their contents, the id column at most a short id's width.

        Only :data:`FIT_ROWS` rows are read (the shown ones first).
        """
        self.table.resizeColumnsToContents()
        widest = max(ID_COLUMN_WIDTH,
                     self.table.fontMetrics().horizontalAdvance("0" * ID_COLUMN_CHARS))
        if self.table.columnWidth(0) > widest:
            self.table.setColumnWidth(0, widest)  # full id in the tooltip

    def _draw_histogram(self, *_args: Any) -> None:
        # QPainter: about a millisecond, and Qt paints only while the panel is shown
        self.histogram.set_theme(self.viewer.theme)
        self.histogram.set_values([row.iou for row in self.model._rows])

    # ----------------------------------------------------------- queries
    def visible_rows(self) -> list[Any]:
        """The ``ImageRow`` objects in the order the table shows them."""
        return [
            self.model.row_at(self.proxy.mapToSource(self.proxy.index(r, 0)).row())
            for r in range(self.proxy.rowCount())
        ]

    def _column(self, field: str) -> int:
        if field not in FIELDS:
            raise ValueError(f"unknown column {field!r}: expected one of {', '.join(FIELDS)}")
        return FIELDS.index(field)

    def cell_text(self, row: int, field: str) -> str:
        """Text shown in view row ``row`` of column ``field`` (an ``ImageRow`` field name)."""
        return self.proxy.index(row, self._column(field)).data(Qt.ItemDataRole.DisplayRole)

    def cell_value(self, row: int, field: str) -> Any:
        """Raw value (the one sorted on) in view row ``row`` of column ``field``."""
        return self.proxy.index(row, self._column(field)).data(SORT_ROLE)

    def sort_by(self, field: str, *, descending: bool = False) -> None:
        """Sort the table by column ``field`` (an ``ImageRow`` field name)."""
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        self.table.sortByColumn(self._column(field), order)

    # ----------------------------------------------------------- actions
    def score_all(self) -> Any:
        """Predict the loaded images without a prediction and score them all (in a worker).

        Returns
        -------
        WorkerBase or None
            The worker, or None when nothing was started (the reason is notified).
        """
        from napari_nuclei_unet.widgets._prediction_service import (
            NO_SAMPLES_MESSAGE,
            start_prediction_job,
        )

        samples = list(self.session.samples.values())
        if not samples:
            if self.session.dataset is not None:
                notify(
                    "The images of the dataset are not loaded yet: click 'Load all' in the "
                    "Data panel first.",
                    warning=True,
                )
            else:
                notify(NO_SAMPLES_MESSAGE, warning=True)
            return None
        if not any(s.has_labels for s in samples):
            notify("None of the loaded images has a label mask, so there is nothing to score.")
        dataset = self.session.dataset
        if dataset is not None:  # 4 of 670 scored, the others not said (GUI check h_gui28 M2)
            from napari_nuclei_unet.widgets._train_jobs import decodable  # the Train dock's

            left = decodable(dataset) - len(samples)
            if left > 0:
                notify(f"Scoring the {len(samples)} loaded image(s): {left} more of the "
                       "dataset are not loaded. 'Load all' in the Data panel loads them; "
                       "'Score all' then scores them too.")
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

    def cancel(self) -> None:
        """Stop "Score all" after the current image (the scores so far are kept)."""
        self._stop.set()
        self.cancel_button.setEnabled(False)
        self.progress.setFormat("Stopping after this image…")

    _scoring = False  # a 'Score all' this panel started is running

    def _on_job_started(self) -> None:
        from napari_nuclei_unet.widgets._prediction_service import reset_prediction_progress

        self._scoring = True
        self.score_button.setEnabled(False)
        self.progress.setRange(0, 0)
        self.progress.setFormat("Starting…")
        reset_prediction_progress(self.progress)
        self.progress.setVisible(True)
        self.cancel_button.setEnabled(True)
        self.cancel_button.setVisible(True)
        self._show_prediction_elsewhere()  # this panel's own: its progress says it

    def _on_progress(self, update: Any) -> None:
        from napari_nuclei_unet.widgets._prediction_service import show_prediction_progress

        show_prediction_progress(self.progress, update, stopping=self._stop.is_set())

    def _on_job_done(self, result: Any) -> None:
        self._scoring = False
        self.score_button.setEnabled(True)
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        if result is not None and result.cancelled:
            notify(f"Scoring stopped: {len(result.rows)} image(s) scored before Cancel are "
                   "kept.")

    def show_sample_id(self, sample_id: str) -> None:
        """Show image ``sample_id`` with its label mask and prediction, and select its row.

        Parameters
        ----------
        sample_id : str
            Full sample id.
        """
        session = self.session
        sample = session.samples.get(sample_id)
        if sample is None:
            if session.dataset is None:
                notify(f"Image {short_id(sample_id)} is no longer loaded.", warning=True)
                return
            load_sample_then(session, sample_id, self._show)  # shown once loaded
            return
        self._show(sample)

    def _show(self, sample: Any) -> None:
        from napari_nuclei_unet.widgets import _compare_layers
        from napari_nuclei_unet.widgets._prediction_service import DISPLAY_JOB, show_prediction

        session = self.session
        try:
            show_sample(self.viewer, sample)
            session.set_current(sample.id)  # the Compare dock shows the prediction
            if (_compare_layers.shown_prediction_id(self.viewer) != sample.id
                    and not session.jobs.is_running(DISPLAY_JOB)):
                show_prediction(self.viewer, sample)  # no Compare dock open: show it here
        except Exception as exc:  # never a traceback dialog for a click
            notify_error(exc, f"Showing image {short_id(sample.id)}")

    def jump_to_worst(self) -> str | None:
        """Show the image with the lowest IoU (ties: lowest DSB score) and select its row.

        Returns
        -------
        str or None
            Its id, or None when there are no scores.
        """
        rows = self.session.current_rows()
        if not rows:
            notify(EMPTY_MESSAGE)
            return None
        worst = min(rows, key=lambda r: (r.iou, r.dsb_score, r.id))
        self.show_sample_id(worst.id)
        self._select_current(worst.id)
        return worst.id

    def export_csv(self, path: str | Path) -> Path:
        """Write the table, in the order shown, to a CSV file at full precision.

        Parameters
        ----------
        path : str or pathlib.Path
            Destination file (overwritten).

        Returns
        -------
        pathlib.Path
            The file written. Columns: ``id, modality, iou, dice, ap50, dsb_score,
            n_true, n_pred`` (the ``ImageRow`` fields; floats as Python ``repr``,
            so reading them back gives the same numbers).
        """
        from napari_nuclei_unet.core.atomic import atomic_write

        rows = self.visible_rows()

        def write(tmp: Path) -> None:  # an earlier export stays whole if this one fails
            with tmp.open("w", newline="", encoding="utf-8") as handle:  # (h_rev22, M2)
                writer = csv.writer(handle)
                writer.writerow(CSV_FIELDS)
                for row in rows:
                    writer.writerow([repr(v) if isinstance(v, float) else v
                                     for v in (getattr(row, f) for f in CSV_FIELDS)])

        return atomic_write(path, write)

    def _choose_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Export scores as CSV", "nuclei-scores.csv", "CSV files (*.csv)"
        )
        if not path:
            return
        try:
            written = self.export_csv(path)
        except OSError as exc:
            notify_error(exc, "Exporting the scores")
            return
        notify(f"Scores of {self.proxy.rowCount()} images saved to {written}.")

    # ---------------------------------------------------------- selection
    def _selected_id(self) -> str | None:
        index = self.table.currentIndex()
        return None if not index.isValid() else index.sibling(index.row(), 0).data(ID_ROLE)

    def _view_row_of(self, sample_id: str | None) -> int | None:
        if sample_id is None:
            return None
        for r in range(self.proxy.rowCount()):
            if self.proxy.index(r, 0).data(ID_ROLE) == sample_id:
                return r
        return None

    def _select_current(self, sample_id: str | None, *, scroll: bool = True) -> None:
        """Select the row of ``sample_id`` without showing it again (and scroll to it)."""
        row = self._view_row_of(sample_id)
        self._syncing = True
        try:
            if row is None:
                self.table.clearSelection()
            else:
                self.table.selectRow(row)
                if scroll:
                    self.table.scrollTo(self.proxy.index(row, 0))
        finally:
            self._syncing = False

    def _on_current_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self._syncing or not current.isValid():
            return
        sample_id = current.sibling(current.row(), 0).data(ID_ROLE)
        if sample_id is not None and sample_id != self.session.current_id:
            self.show_sample_id(sample_id)

    def _on_clicked(self, index: QModelIndex) -> None:
        sample_id = index.sibling(index.row(), 0).data(ID_ROLE)
        if sample_id is not None and sample_id != self.session.current_id:
            self.show_sample_id(sample_id)
