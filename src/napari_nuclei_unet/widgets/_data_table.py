"""The Data dock's sample table: a Qt model over ``DSBDataset.infos``, rows drawn lazily.

A ``QTableWidget`` with one item per cell built 2,680 items for stage1_train's 670
samples and sized its columns to their contents on every layout: opening the
dataset froze the window for 0.3-0.5 s (``benchmarks/bench_journey.py``). The
model below holds only the list of ``SampleInfo``; Qt asks for the text of the
rows it draws. A proxy sorts on raw values (numbers as numbers) and filters by
modality; the columns have fixed widths (never sized to their contents).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qtpy.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt

from napari_nuclei_unet.widgets._layers import short_id

if TYPE_CHECKING:
    from napari_nuclei_unet.core.dataset import SampleInfo

#: Column titles.
COLUMNS = ("Sample", "Modality", "Size (px)", "Nuclei")
#: Item-data role of the full sample id (column 0 and every other column).
ID_ROLE = Qt.ItemDataRole.UserRole
#: Item-data role of the raw value a column sorts on.
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
#: Column widths in characters of the font (fixed: never sized to 670 rows of contents).
COLUMN_CHARS = (10, 13, 11, 7)

_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


class SampleTableModel(QAbstractTableModel):
    """One row per ``SampleInfo``; text is made when Qt draws or asks for a cell."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._infos: list[SampleInfo] = []
        self._failed: dict[str, str] = {}

    def set_infos(self, infos: list[SampleInfo]) -> None:
        """Replace all rows (one model reset, no per-row signal)."""
        self.beginResetModel()
        self._infos = list(infos)
        self._failed = {}
        self.endResetModel()

    def set_failed(self, failed: dict[str, str]) -> None:
        """Mark the samples whose files could not be decoded (id: reason); the others not.

        Their rows show "⚠" before the id, the reason in the tooltip: a selected row
        whose image could not be shown looked like any other (GUI check h_gui10, N9).
        """
        if failed == self._failed:
            return
        changed = set(failed).symmetric_difference(self._failed) | {
            i for i in failed if self._failed.get(i) != failed[i]}
        self._failed = dict(failed)
        for sample_id in changed:
            row = self.row_of(sample_id)
            if row is not None:
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def is_marked(self, sample_id: str) -> bool:
        """Whether ``sample_id``'s row is marked as not decoded (:meth:`set_failed`)."""
        return sample_id in self._failed

    def info_at(self, row: int) -> SampleInfo:
        """The ``SampleInfo`` of source row ``row``."""
        return self._infos[row]

    def row_of(self, sample_id: str) -> int | None:
        """Source row of ``sample_id``, or None."""
        for row, info in enumerate(self._infos):
            if info.id == sample_id:
                return row
        return None

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        """Number of samples."""
        return 0 if parent.isValid() else len(self._infos)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        """Number of columns (:data:`COLUMNS`)."""
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Any,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Column titles."""
        if (orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole
                and 0 <= section < len(COLUMNS)):
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Text, sort key, full id, tooltip and alignment of a cell."""
        if not index.isValid():
            return None
        info = self._infos[index.row()]
        column = index.column()
        failed = self._failed.get(info.id)
        if role == Qt.ItemDataRole.DisplayRole:
            text = _display(info, column)
            return f"⚠ {text}" if failed is not None and column == 0 else text
        if role == SORT_ROLE:
            return _sort_key(info, column)
        if role == ID_ROLE:
            return info.id
        if role == Qt.ItemDataRole.ToolTipRole and failed is not None:
            return f"{info.id} could not be decoded: {failed}"
        if role == Qt.ItemDataRole.ToolTipRole and column == 0:
            return info.id
        if role == Qt.ItemDataRole.TextAlignmentRole and column >= 2:
            return _RIGHT
        return None


def _display(info: SampleInfo, column: int) -> str:
    if column == 0:
        return short_id(info.id)  # the full id in the tooltip
    if column == 1:
        return info.modality
    if column == 2:
        return f"{info.height} × {info.width}"
    return str(info.n_nuclei)


def _sort_key(info: SampleInfo, column: int) -> Any:
    if column == 0:
        return info.id
    if column == 1:
        return f"{info.modality}\x00{info.id}"
    if column == 2:
        return info.height * info.width
    return info.n_nuclei


class ModalityFilter(QSortFilterProxyModel):
    """Sorts on :data:`SORT_ROLE`; shows only the rows of one modality (None: all)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._modality: str | None = None
        self.setSortRole(SORT_ROLE)

    def set_modality(self, modality: str | None) -> None:
        """Show only ``modality`` (None: every row)."""
        if modality != self._modality:
            self._modality = modality
            self.invalidateFilter()

    def filterAcceptsRow(self, row: int, parent: QModelIndex) -> bool:  # noqa: N802
        """True when the row's modality is the one shown."""
        if self._modality is None:
            return True
        return self.sourceModel().info_at(row).modality == self._modality
