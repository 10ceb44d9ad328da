"""The Data dock's controls: dataset picker, reader offer, modality filter, table, "Load all".

:func:`build` lays them out on the dock and sets them as its attributes (the
dock connects them); the table is a Qt model (:mod:`._data_table`).
"""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableView,
    QWidget,
)

from napari_nuclei_unet.widgets._data_jobs import LAYOUT_HINT
from napari_nuclei_unet.widgets._data_table import COLUMN_CHARS, ModalityFilter, SampleTableModel
from napari_nuclei_unet.widgets._ids import enable_id_copy
from napari_nuclei_unet.widgets._progress import ThrottledProgress
from napari_nuclei_unet.widgets._scroll import scrolled_layout

ALL_MODALITIES = "All modalities"


def build(widget: Any) -> None:
    """Lay out the Data dock's controls on ``widget`` (a ``DataBrowserWidget``)."""
    layout = scrolled_layout(widget)

    box = QGroupBox("Dataset")
    grid = QGridLayout(box)
    widget.path_edit = QLineEdit()
    widget.path_edit.setPlaceholderText("stage1_train folder or .zip")
    widget.path_edit.setToolTip(LAYOUT_HINT)
    widget.path_edit.returnPressed.connect(widget._open_typed_path)
    folder_button = QPushButton("Folder…")
    folder_button.setToolTip("Choose a DSB2018 dataset folder (stage1_train)")
    folder_button.clicked.connect(widget._choose_folder)
    zip_button = QPushButton("Zip…")
    zip_button.setToolTip("Choose a DSB2018 zip file (stage1_train.zip)")
    zip_button.clicked.connect(widget._choose_zip)
    widget.open_button = QPushButton("Open")
    widget.open_button.clicked.connect(widget._open_typed_path)
    grid.addWidget(widget.path_edit, 0, 0, 1, 3)
    grid.addWidget(widget.open_button, 0, 3)
    grid.addWidget(folder_button, 1, 0)
    grid.addWidget(zip_button, 1, 1)
    widget.bundled_button = QPushButton("Bundled samples")
    widget.bundled_button.setToolTip("Open the small synthetic dataset shipped with the plugin")
    widget.bundled_button.clicked.connect(widget.open_bundled_samples)
    widget.download_button = QPushButton("Download DSB2018…")
    widget.download_button.setToolTip(
        "Download the DSB2018 stage1_train set (BBBC038, about 80 MB, CC0) "
        "into your cache folder, then open it"
    )
    widget.download_button.clicked.connect(widget.download_dsb2018)
    grid.addWidget(widget.bundled_button, 1, 2)
    grid.addWidget(widget.download_button, 1, 3)
    widget.status_label = QLabel("No dataset open. " + LAYOUT_HINT)
    widget.status_label.setWordWrap(True)
    widget.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    grid.addWidget(widget.status_label, 2, 0, 1, 4)
    layout.addWidget(box)

    # offer shown when a layer read by the plugin's reader names a dataset
    widget.offer_box = QWidget()
    offer_layout = QHBoxLayout(widget.offer_box)
    offer_layout.setContentsMargins(0, 0, 0, 0)
    widget.offer_label = QLabel()
    widget.offer_label.setWordWrap(True)
    widget.offer_button = QPushButton("Browse it here")
    widget.offer_button.clicked.connect(widget._accept_offer)
    offer_layout.addWidget(widget.offer_label, 1)
    offer_layout.addWidget(widget.offer_button)
    widget.offer_box.setVisible(False)
    layout.addWidget(widget.offer_box)

    filter_row = QHBoxLayout()
    filter_row.addWidget(QLabel("Show"))
    widget.modality_combo = QComboBox()
    widget.modality_combo.addItem(ALL_MODALITIES, None)
    widget.modality_combo.currentIndexChanged.connect(widget._apply_filter)
    filter_row.addWidget(widget.modality_combo, 1)
    layout.addLayout(filter_row)

    # a model over the dataset's infos: Qt asks for the rows it draws (no 2,680 items)
    widget.table_model = SampleTableModel(widget)
    widget.proxy = ModalityFilter(widget)
    widget.proxy.setSourceModel(widget.table_model)
    widget.table = QTableView()
    widget.table.setModel(widget.proxy)
    widget.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    widget.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    widget.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    widget.table.setTabKeyNavigation(False)  # Tab leaves the table; arrows move in it
    widget.table.verticalHeader().setVisible(False)
    widget.table.verticalHeader().setDefaultSectionSize(24)
    header = widget.table.horizontalHeader()
    # fixed widths: sizing columns to their contents reads every row at each layout
    char = widget.table.fontMetrics().horizontalAdvance("0")
    for column, chars in enumerate(COLUMN_CHARS):
        header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
        widget.table.setColumnWidth(column, chars * char + 12)
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    widget.table.setSortingEnabled(True)
    widget.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
    widget.table.selectionModel().selectionChanged.connect(widget._on_selection_changed)
    widget.table.clicked.connect(widget._on_row_clicked)  # the selected row again
    widget.table.activated.connect(widget._on_row_clicked)  # the same by Enter
    widget.table.setMinimumHeight(120)
    enable_id_copy(widget.table, widget._selected_id)  # Ctrl+C / right click: the full id
    layout.addWidget(widget.table, 1)

    load_row = QHBoxLayout()
    widget.load_all_button = QPushButton("Load all")
    widget.load_all_button.setToolTip(
        "Decode every sample of the dataset in the background, those the modality filter "
        "hides too (training and Score all use every loaded sample)"
    )
    widget.load_all_button.clicked.connect(widget._toggle_load_all)
    widget.progress = QProgressBar()
    widget.progress.setRange(0, 1)
    widget.progress.setValue(0)
    widget.progress.setFormat("no samples loaded")
    widget.progress.setTextVisible(True)
    # one update per sample would repaint the bar hundreds of times a second
    widget._throttle = ThrottledProgress(widget.progress)
    widget.cancel_button = QPushButton("Cancel")
    widget.cancel_button.setToolTip("Stop opening or loading (what is done so far is kept)")
    widget.cancel_button.clicked.connect(widget.cancel)
    widget.cancel_button.setEnabled(False)
    load_row.addWidget(widget.load_all_button)
    load_row.addWidget(widget.progress, 1)
    load_row.addWidget(widget.cancel_button)
    layout.addLayout(load_row)
