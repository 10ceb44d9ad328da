"""Tables and curves of the Retrain dock (display only; the dock owns the logic).

* :class:`CorrectionsTable` -- the corrections of the project (id, nuclei, source, when);
* :class:`ScoreChangeTable` -- per image, IoU before and after a fine-tuning round,
  the change coloured (green better, red worse);
* :class:`VersionsTable` -- the model versions with their scores and corrections;
* :func:`loss_curves` -- the Train dock's curves, training loss only (a fine-tuning
  round has no per-epoch validation: its check is the before/after table).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qtpy.QtCore import QSize, Qt
from qtpy.QtGui import QColor, QFont
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
)

from napari_nuclei_unet.core.finetune.results import iou_change
from napari_nuclei_unet.widgets._ids import enable_id_copy
from napari_nuclei_unet.widgets._layers import short_id
from napari_nuclei_unet.widgets._plots import TrainingCurves
from napari_nuclei_unet.widgets._retrain_project import (
    START_PREDICTION,
    UNEDITED_NOTE,
    local_time,
)

#: Colours of a score change: mid tones, legible on napari's dark and light themes.
BETTER, WORSE, SAME = "#3aa655", "#e0533d", "#8a9099"
#: Changes smaller than this are shown as "no change".
SAME_TOLERANCE = 0.005
#: What "kept aside" means, where a correction or its score is marked so.
ASIDE_TIP = ("Kept aside: rounds do not learn from this image; each round scores it "
             "before and after, and a round that makes it worse is not made current.")
ROW_HEIGHT = 22


def change_color(change: float) -> str:
    """Colour of an IoU change: :data:`BETTER`, :data:`WORSE` or :data:`SAME`."""
    if change > SAME_TOLERANCE:
        return BETTER
    if change < -SAME_TOLERANCE:
        return WORSE
    return SAME


def change_text(change: float) -> str:
    """``"+0.123 ▲"``, ``"-0.050 ▼"`` or ``"±0.000"``."""
    if change > SAME_TOLERANCE:
        return f"+{change:.3f} ▲"
    if change < -SAME_TOLERANCE:
        return f"{change:.3f} ▼"
    return f"{change:+.3f}"


def source_text(source: str, note: str) -> str:
    """Plain words for a correction's origin (``Correction.source`` plus the dock's note)."""
    if source == "prediction":
        return "prediction"
    if source == "label":
        if note.endswith(UNEDITED_NOTE):  # the Segment dock's result, as it was segmented
            return "unedited result"
        started_from_prediction = note.startswith(f"started from the {START_PREDICTION}")
        return "edited prediction" if started_from_prediction else "edited mask"
    return "unknown"


class _Table(QTableWidget):
    """A read-only, row-selecting table with compact rows."""

    def __init__(self, headers: Sequence[str], tooltips: Sequence[str] = (), *,
                 stretch: int = 0) -> None:
        super().__init__(0, len(headers))
        self.setHorizontalHeaderLabels(list(headers))
        for column, tip in enumerate(tooltips):
            self.horizontalHeaderItem(column).setToolTip(tip)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setTabKeyNavigation(False)  # Tab leaves the table; arrows move in it
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        # fit the dock's width: one column takes the room left (its text elided), the
        # others fit their contents; never a horizontal scroll bar
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(40)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setWordWrap(False)
        self.setMinimumHeight(ROW_HEIGHT * 4)

    def enable_id_copy(self) -> None:
        """Ctrl+C and right click > "Copy full id" copy the selected row's full id (its key)."""
        enable_id_copy(self, self.selected_key)

    def sizeHint(self) -> QSize:  # noqa: D102 - Qt API
        return QSize(300, ROW_HEIGHT * 6)

    @staticmethod
    def _item(text: str, *, key: Any = None, tooltip: str = "", right: bool = False,
              color: str | None = None) -> QTableWidgetItem:
        item = QTableWidgetItem(text)
        if key is not None:
            item.setData(Qt.ItemDataRole.UserRole, key)
        if tooltip:
            item.setToolTip(tooltip)
        if right:
            item.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))
        if color is not None:
            item.setForeground(QColor(color))
        return item

    def selected_key(self) -> Any:
        """The key (first column's user data) of the selected row, or None."""
        rows = self.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.item(rows[0].row(), 0)
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def select_key(self, key: Any) -> bool:
        """Select the row whose key is ``key``; return whether it was found."""
        for row in range(self.rowCount()):
            item = self.item(row, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == key:
                self.selectRow(row)
                return True
        return False

    def keys(self) -> list[Any]:
        """The keys of all rows, top to bottom."""
        return [self.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in range(self.rowCount())]


class CorrectionsTable(_Table):
    """The project's corrections: image, nuclei, origin, time saved."""

    def __init__(self) -> None:
        super().__init__(
            ("Image", "Nuclei", "From", "Saved"),
            ("Image id (hover for the full id)", "Nuclei in the corrected mask",
             "What the correction started from: the label mask or the model's prediction",
             "When it was last saved (local time)"),
        )
        self.enable_id_copy()
        self.aside: set[str] = set()

    def set_corrections(self, corrections: Sequence[Any]) -> None:
        """Show ``core.finetune.Correction`` entries (sorted by id); those kept aside greyed."""
        selected = self.selected_key()
        self.aside = {c.id for c in corrections if getattr(c, "aside", False)}
        self.setRowCount(len(corrections))
        for row, c in enumerate(corrections):
            aside = c.id in self.aside
            grey = SAME if aside else None
            self.setItem(row, 0, self._item(short_id(c.id), key=c.id, color=grey,
                                            tooltip=f"{c.id}\nsaved in {c.path}"))
            self.setItem(row, 1, self._item(str(c.n_nuclei), right=True, color=grey))
            source = source_text(c.source, c.note)
            self.setItem(row, 2, self._item(
                f"kept aside · {source}" if aside else source, color=grey,
                tooltip=ASIDE_TIP if aside else c.note))
            self.setItem(row, 3, self._item(local_time(c.updated, short=True), color=grey,
                                            tooltip=local_time(c.updated)))
        if selected is not None:
            self.select_key(selected)


class ScoreChangeTable(_Table):
    """Per image: IoU with the model before and after a round, and the change."""

    def __init__(self) -> None:
        super().__init__(
            ("Image", "Before", "After", "Change"),
            ("Corrected image", "IoU of the model before the round with your corrected mask",
             "IoU of the fine-tuned model with your corrected mask",
             "Green: better, red: worse"),
        )
        self.enable_id_copy()

    def set_changes(self, changes: Sequence[Any], aside: Sequence[Any] = ()) -> None:
        """Show ``ScoreChange`` objects or their dicts (``iou_before``, ``iou_after``).

        ``aside``: the images kept aside, listed after the others and marked so.
        """
        rows = [(change, False) for change in changes] + [(change, True) for change in aside]
        self.setRowCount(len(rows))
        for row, (change, kept) in enumerate(rows):
            get = change.get if isinstance(change, dict) else lambda k, c=change: getattr(c, k)
            sample_id, before, after = get("id"), float(get("iou_before")), float(get("iou_after"))
            delta = after - before
            self.setItem(row, 0, self._item(
                f"{short_id(sample_id)} (aside)" if kept else short_id(sample_id),
                key=sample_id, tooltip=f"{sample_id}\n{ASIDE_TIP}" if kept else sample_id))
            self.setItem(row, 1, self._item(f"{before:.3f}", right=True))
            self.setItem(row, 2, self._item(f"{after:.3f}", right=True))
            item = self._item(change_text(delta), right=True, color=change_color(delta))
            font = QFont(item.font())
            font.setBold(abs(delta) > SAME_TOLERANCE)
            item.setFont(font)
            self.setItem(row, 3, item)

    def cell_text(self, row: int, column: int) -> str:
        """Text of a cell (tests, screenshots)."""
        item = self.item(row, column)
        return "" if item is None else item.text()


def version_scores(version: Any) -> tuple[float | None, float | None]:
    """Mean IoU on the corrected images before and after the round (None for v000)."""
    means = (version.info or {}).get("mean_iou_corrected") or {}
    return means.get("before"), means.get("after")


class VersionsTable(_Table):
    """The model versions: name, date, mean IoU before → after, corrections used."""

    def __init__(self) -> None:
        super().__init__(
            ("Version", "Saved", "IoU", "Images"),
            ("● marks the model in use", "When the version was saved (local time)",
             "Mean IoU on the corrected images: before → after the round",
             "How many corrected images the round learned from (hover for their ids)"),
            stretch=2,
        )
        self.unreadable: set[str] = set()  # versions listed as unreadable (never used)

    def set_versions(self, versions: Sequence[Any], current: str | None) -> None:
        """Show ``ModelVersion`` objects, ``current`` (a name) marked in bold with ●."""
        selected = self.selected_key()
        self.setRowCount(len(versions))
        self.unreadable = {v.name for v in versions if getattr(v, "unreadable", "")}
        for row, version in enumerate(versions):
            in_use = version.name == current
            name = f"● {version.name}" if in_use else version.name
            if version.is_base:
                model = version.model
                base = "default model" if model == "default" else getattr(model, "name", model)
                name += " base"
                tooltip = f"The model the project started from: {base}"
            elif version.unreadable:
                name += " unreadable"
                tooltip = version.unreadable
            else:
                tooltip = f"Fine-tuned from {version.info.get('base_model', '?')}"
            before, after = version_scores(version)
            scores = "—" if after is None else iou_change(before, after, "→")
            used = version.info.get("corrections") or []
            ids = ", ".join(str(c.get("id")) for c in used if isinstance(c, dict))
            cells = (
                self._item(name, key=version.name, tooltip=tooltip),
                self._item(local_time(version.created, short=True),
                           tooltip=f"{local_time(version.created)}\n{version.path}"),
                self._item(scores, right=True,
                           color=None if after is None else change_color(after - before),
                           tooltip="" if after is None else
                           f"Mean IoU on the corrected images: {iou_change(before, after, '→')}"),
                self._item("—" if version.is_base else str(len(used)), right=True,
                           tooltip=ids),
            )
            for column, item in enumerate(cells):
                if in_use:
                    font = QFont(item.font())
                    font.setBold(True)
                    item.setFont(font)
                self.setItem(row, column, item)
        if selected is not None:
            self.select_key(selected)


def loss_curves(theme_name: str | None = "dark") -> TrainingCurves:
    """:class:`~napari_nuclei_unet.widgets._plots.TrainingCurves` of the training loss only.

    A fine-tuning round trains without per-epoch validation (the before/after
    scores are its check), so neither a validation loss nor an IoU panel is shown.
    """
    curves = TrainingCurves(theme_name, series=("train_loss",),
                            empty_text="The loss appears after the first epoch")
    curves.setMinimumHeight(130)
    curves.setToolTip("Training loss per epoch of the fine-tuning round")
    return curves
