"""The IoU panel's table model, colours and summary (no widgets).

:class:`ScoreTableModel` shows ``session.rows`` (``core.evaluation.ImageRow``):
display text is rounded, :data:`SORT_ROLE` gives the raw value, cells are coloured by
score. The model sorts its rows itself by their raw values (:meth:`ScoreTableModel.sort`);
:class:`SortInSourceProxy` hands it the view's sort requests.
:func:`summarize` and :func:`summary_html` make the summary under the table.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from qtpy.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt
from qtpy.QtGui import QColor

from napari_nuclei_unet.widgets._layers import short_id

#: Table columns: (header, ImageRow field, tooltip). The scores and the nuclei counts
#: come right after the image: in the panel at 1280 x 800 the table shows about six
#: columns, and the scores were cut after Dice, behind the modality and split.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("Image", "id", "Sample id (hover a cell for the full id)"),
    ("IoU", "iou", "Foreground intersection over union with the label mask"),
    ("Dice", "dice", "Foreground Dice coefficient with the label mask"),
    ("AP@0.5", "ap50", "Matched nuclei / (matched + missed + extra), match = IoU > 0.5"),
    ("DSB", "dsb_score", "DSB2018 score: AP averaged over IoU thresholds 0.5 to 0.95"),
    ("True", "n_true", "Number of nuclei in the label mask"),
    ("Pred", "n_pred", "Number of predicted nuclei"),
    ("Modality", "modality", "Kind of image"),
    ("Split", "split", "train: the model learnt from this image (its score is optimistic); "
                       "validation: used to choose the model; fine-tuned: a corrected image "
                       "a fine-tuning round learnt from; kept aside: corrected, never learnt "
                       "from; unseen: never shown to it"),
)
FIELDS = tuple(column[1] for column in COLUMNS)
SCORE_FIELDS = ("iou", "dice", "ap50", "dsb_score")
#: Column names of :meth:`IoUPanel.export_csv` (the ``ImageRow`` fields), in the order
#: CSV files have always had.
CSV_FIELDS = ("id", "modality", "iou", "dice", "ap50", "dsb_score", "n_true", "n_pred")

#: Widest the id column gets by itself (pixels, at least), and in characters of the
#: table's font: a 16-character short id (``short_id``) fits; longer text is elided.
ID_COLUMN_WIDTH = 100
ID_COLUMN_CHARS = 17
#: Rows that fitting the columns to their contents looks at (the shown ones first):
#: Qt's default (1000) measured every one of a full dataset's 670 rows at each
#: refresh, 190-310 ms on the main thread, and all of them while the table is hidden.
FIT_ROWS = 30

#: Item-data role holding the raw value a column sorts on.
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
#: Item-data role holding the full sample id.
ID_ROLE = Qt.ItemDataRole.UserRole + 2

# red -> yellow -> green (ColorBrewer RdYlGn, light enough for dark text to read on all)
_SCORE_STOPS = ((0.0, (244, 109, 67)), (0.5, (254, 224, 139)), (1.0, (102, 189, 99)))

EMPTY_MESSAGE = (
    "No scores yet. Load a model and images, then click 'Score all' "
    "(or predict in the Compare panel)."
)


def elide_id(sample_id: str) -> str:
    """``sample_id`` shortened to its first 8 characters (whole when short)."""
    return short_id(sample_id)


def score_color(value: float) -> tuple[int, int, int]:
    """Colour of a score in [0, 1]: red (0) through yellow (0.5) to green (1).

    Parameters
    ----------
    value : float
        The score; values outside [0, 1] are clamped, NaN gives grey.

    Returns
    -------
    tuple of int
        RGB in 0..255.
    """
    if value is None or math.isnan(value):
        return (128, 128, 128)
    value = min(1.0, max(0.0, float(value)))
    for (x0, c0), (x1, c1) in zip(_SCORE_STOPS, _SCORE_STOPS[1:], strict=False):
        if value <= x1:
            t = (value - x0) / (x1 - x0)
            return tuple(round(a + (b - a) * t) for a, b in zip(c0, c1, strict=True))
    return _SCORE_STOPS[-1][1]


def _relative_luminance(rgb: tuple[int, int, int]) -> float:
    """WCAG 2 relative luminance of an sRGB colour."""
    linear = [
        c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
        for c in (x / 255 for x in rgb)
    ]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def text_color_on(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever has the higher WCAG contrast ratio on ``rgb``."""
    luminance = _relative_luminance(rgb)
    black = (luminance + 0.05) / 0.05
    white = 1.05 / (luminance + 0.05)
    return (0, 0, 0) if black >= white else (255, 255, 255)


class ScoreTableModel(QAbstractTableModel):
    """Qt table model over a list of ``ImageRow``.

    Display text is rounded; :data:`SORT_ROLE` gives the raw value (float, int
    or str). :meth:`sort` orders the rows by those raw values in Python, one key per
    row; a ``QSortFilterProxyModel`` sorting them called :meth:`data` for both keys of
    every comparison (11,768 calls for 670 rows: a refresh of the sorted table took
    46-63 ms on the main thread, 12-22 ms now).
    """

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._given: list[Any] = []  # scoring order
        self._rows: list[Any] = []  # shown order
        self._splits: dict[str, str] = {}
        self._order: tuple[str, bool] | None = None  # (field, descending)

    def _value(self, row: Any, name: str) -> Any:
        return self._splits.get(row.id, "unseen") if name == "split" else getattr(row, name)

    def _sorted(self) -> list[Any]:
        if self._order is None:
            return list(self._given)
        name, descending = self._order
        return sorted(self._given, key=lambda row: self._value(row, name), reverse=descending)

    def set_rows(self, rows: list[Any], splits: dict[str, str] | None = None) -> None:
        """Replace all rows (``splits``: ``core.predict_score.splits_of``'s marks by id)."""
        self.beginResetModel()
        self._given = list(rows)
        self._splits = dict(splits or {})
        self._rows = self._sorted()
        self.endResetModel()

    def sort(self, column: int, order: Any = Qt.SortOrder.AscendingOrder) -> None:
        """Order the rows by column ``column`` (stable; -1: scoring order)."""
        self._order = ((FIELDS[column], order == Qt.SortOrder.DescendingOrder)
                       if 0 <= column < len(FIELDS) else None)
        self.layoutAboutToBeChanged.emit()
        before = self._rows
        self._rows = self._sorted()
        where = {id(row): i for i, row in enumerate(self._rows)}
        persistent = self.persistentIndexList()
        self.changePersistentIndexList(
            persistent, [self.index(where[id(before[i.row()])], i.column()) for i in persistent])
        self.layoutChanged.emit()

    def row_at(self, row: int) -> Any:
        """The ``ImageRow`` of source row ``row``."""
        return self._rows[row]

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        """Number of rows (images)."""
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        """Number of columns (:data:`COLUMNS`)."""
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Any, role: int = Qt.ItemDataRole.DisplayRole):
        """Column titles and their tooltips."""
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section][0]
        if role == Qt.ItemDataRole.ToolTipRole:
            return COLUMNS[section][2]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        """Rounded text, raw value (:data:`SORT_ROLE`), id, tooltip and colours of a cell."""
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        name = FIELDS[index.column()]
        value = self._value(row, name)
        if role == Qt.ItemDataRole.DisplayRole:
            if name == "id":
                return elide_id(value)  # full id in the tooltip
            if name in SCORE_FIELDS:
                return f"{value:.3f}"
            return str(value)
        if role == SORT_ROLE:
            return value
        if role == ID_ROLE:
            return row.id
        if role == Qt.ItemDataRole.ToolTipRole:
            if name == "id":
                return value
            return repr(value) if name in SCORE_FIELDS else str(value)
        if role == Qt.ItemDataRole.TextAlignmentRole and name not in ("id", "modality"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if name in SCORE_FIELDS:
            background = score_color(value)
            if role == Qt.ItemDataRole.BackgroundRole:
                return QColor(*background)
            if role == Qt.ItemDataRole.ForegroundRole:
                return QColor(*text_color_on(background))
        return None


class SortInSourceProxy(QSortFilterProxyModel):
    """A proxy that hands the view's sort requests to its source model's ``sort``.

    The proxy itself keeps the source's order (its own sort column stays -1).
    """

    def sort(self, column: int, order: Any = Qt.SortOrder.AscendingOrder) -> None:
        """Sort the source model (see :meth:`ScoreTableModel.sort`)."""
        self.sourceModel().sort(column, order)


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


#: The parts of a model's training an image can be (``core.predict_score.splits_of``).
#: Short: under the "images" column, one line each at 1280 x 800 (GUI check h_gui15, L6).
SPLIT_WORDS = {"train": "trained on", "validation": "validation set",
               "fine-tuned": "fine-tuned on",
               "kept aside": "kept aside", "unseen": "not trained on"}


def summarize(rows: list[Any], splits: dict[str, str] | None = None) -> dict[str, Any]:
    """Means and medians over all rows, per modality, and per part of the training.

    Parameters
    ----------
    rows : list of ImageRow
        The scores.
    splits : dict, optional
        ``splits_of(model, ids)``: which images the model was trained or validated on.

    Returns
    -------
    dict
        ``core.evaluation.EvaluationReport.summary()`` (n, mean_iou, median_iou,
        mean_dice, dsb_score, per_modality), plus ``mean_ap50`` and
        ``median_dice`` over all rows, and ``per_split`` (by :data:`SPLIT_WORDS`) when
        the model records what it was trained on.
    """
    if not rows:  # the panel opening: core.evaluation imports scipy (about 1 s)
        return {"n": 0, "mean_iou": None, "median_iou": None, "mean_dice": None,
                "dsb_score": None, "per_modality": {}, "mean_ap50": None, "median_dice": None,
                "per_split": {}}
    from napari_nuclei_unet.core.evaluation import EvaluationReport

    summary = EvaluationReport.from_rows(rows).summary()
    summary["mean_ap50"] = _mean([r.ap50 for r in rows]) if rows else None
    summary["median_dice"] = float(statistics.median([r.dice for r in rows])) if rows else None
    # a score over the images the model learned from flatters it: say how many were
    # (the Split column is off screen at 1280 x 800: GUI check h_gui13, L7)
    summary["per_split"] = {}
    if splits and any(part != "unseen" for part in splits.values()):
        for part, words in SPLIT_WORDS.items():
            chosen = [r for r in rows if splits.get(r.id, "unseen") == part]
            if chosen:
                summary["per_split"][words] = EvaluationReport.from_rows(chosen).summary()
    return summary


def kept_words(session: Any) -> str:
    """Scores of other models on the open dataset, kept from before, in words ("" if none)."""
    from pathlib import Path
    from types import SimpleNamespace

    from napari_nuclei_unet.widgets._dataset_place import _place
    from napari_nuclei_unet.widgets._model_names import model_name
    from napari_nuclei_unet.widgets._score_memory import remembered_models

    if session.dataset is None:
        return ""
    model = getattr(session.model, "path", None)
    kept = remembered_models(_place(session.dataset), str(model) if model else None)
    names = [name or model_name(SimpleNamespace(path=Path(path), metadata={}))
             for path, name in kept[:3]]
    return "" if not names else (
        f"<br>Scores of {', '.join(names)}{' and others' if len(kept) > 3 else ''} on this "
        "dataset are kept from before: load that model (Model panel) to see them again.")


def summary_html(summary: dict[str, Any], threshold: float, method: str) -> str:
    """The summary as a small HTML table: all images, then one line per modality."""
    if not summary["n"]:
        return EMPTY_MESSAGE
    split = "touching nuclei split" if method == "watershed" else "touching nuclei not split"

    def cells(name: str, stats: dict[str, Any], bold: bool = False) -> str:
        values = [
            str(stats["n"]),
            f"{stats['mean_iou']:.3f}",
            f"{stats['median_iou']:.3f}",
            f"{stats['mean_dice']:.3f}",
            f"{stats['dsb_score']:.3f}",
        ]
        tag = ("<b>", "</b>") if bold else ("", "")
        tds = "".join(f'<td align="right">&nbsp;{tag[0]}{v}{tag[1]}</td>' for v in values)
        return f"<tr><td>{tag[0]}{name}{tag[1]}</td>{tds}</tr>"

    header = "".join(
        f'<th align="right">&nbsp;{h}</th>'
        for h in ("images", "IoU mean", "median", "Dice mean", "DSB")
    )
    rows = [cells("all", summary, bold=True)]
    per_modality = summary.get("per_modality", {})
    if len(per_modality) > 1:
        rows += [cells(m, stats) for m, stats in per_modality.items()]
    rows += [cells(words, stats) for words, stats in summary.get("per_split", {}).items()]
    return (
        f"Threshold {threshold:.2f}, {split}.<br>AP@0.5 mean {summary['mean_ap50']:.3f}"
        f'<table cellspacing="0" cellpadding="1"><tr><th></th>{header}</tr>'
        + "".join(rows)
        + "</table>"
    )
