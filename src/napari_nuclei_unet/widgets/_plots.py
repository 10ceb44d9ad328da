"""Plots painted with QPainter in napari's colours: training curves and the IoU histogram.

:class:`TrainingCurves` shows the training and validation loss (top panel) and the
validation IoU (bottom panel) per epoch, the best epoch marked with a star. Its
``series`` argument picks the curves (e.g. ``TrainingCurves(series=("train_loss",))``
for a run without validation): only their panels and legend entries are drawn.

:class:`IoUHistogram` is the Scores tab's histogram of the per-image IoU (20 bins over
[0, 1], the median dashed).

Why not matplotlib: a matplotlib redraw of this small figure takes 50-150 ms of
main-thread time on a busy 2-core machine (and importing it about as much again
when the dock opens), every epoch; painting a few polylines with QPainter takes
about a millisecond, so the window never stutters while training (see
``tests/test_responsiveness.py``). Points are kept in plain lists that tests and
other code read with :meth:`TrainingCurves.points`. Importing matplotlib and making
its Qt canvas took 3.5-4.5 s of main-thread time when the workflow panel opened (issue
11), so the plugin does not use matplotlib at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from qtpy.QtCore import QEvent, QPointF, QRectF, QSize, Qt
from qtpy.QtGui import QColor, QFont, QPainter, QPainterPath, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QToolTip, QWidget

#: Curve name -> (legend label, panel 0 = loss / 1 = IoU, colour).
#: The colours read well on napari's dark and light themes.
SERIES: dict[str, tuple[str, int, str]] = {
    "train_loss": ("training loss", 0, "#3d9df2"),
    "val_loss": ("validation loss", 0, "#f5a142"),
    "val_iou": ("validation IoU", 1, "#5cc96b"),
}
PANEL_TITLES = ("Loss", "Validation IoU")
EMPTY_TEXT = "The curves appear after the first epoch"


def theme_colors(theme_name: str | None) -> dict[str, str]:
    """Background, text and grid colours of a napari theme (hex strings).

    Parameters
    ----------
    theme_name : str or None
        A napari theme id such as ``"dark"`` or ``"light"``. Unknown names fall
        back to dark colours.

    Returns
    -------
    dict
        Keys ``"background"``, ``"text"``, ``"grid"``, ``"axis"``, ``"bar"`` (the
        theme's accent colour).
    """
    fallback = {"background": "#262930", "text": "#f0f1f2", "grid": "#414851",
                "axis": "#6a7380", "bar": "#4560c4"}
    try:
        from napari.utils.theme import get_theme

        theme = get_theme(theme_name or "dark")
        return {
            "background": theme.background.as_hex(),
            "text": theme.text.as_hex(),
            "grid": theme.primary.as_hex(),
            "axis": theme.highlight.as_hex(),
            "bar": theme.current.as_hex(),
        }
    except Exception:  # an unknown or broken theme must not break the dock
        return fallback


def nice_ticks(low: float, high: float, max_ticks: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering ``[low, high]``.

    Parameters
    ----------
    low, high : float
        The range; ``high`` must be >= ``low``.
    max_ticks : int, optional
        Upper bound of the number of ticks.

    Returns
    -------
    list of float
        Ticks inside ``[low, high]``, ascending.
    """
    span = high - low
    if span <= 0 or not math.isfinite(span):
        return [low]
    raw = span / max(1, max_ticks - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + 1e-9 * step:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _tick_label(value: float) -> str:
    if value == int(value) and abs(value) < 1e5:
        return str(int(value))
    return f"{value:.3g}"


class TrainingCurves(QWidget):
    """Loss and validation-IoU curves, one point per epoch.

    Parameters
    ----------
    theme_name : str, optional
        napari theme id used for the colours (see :meth:`set_theme`).
    parent : QWidget, optional
        Parent widget.
    series : sequence of str, optional
        The curves to show, names of :data:`SERIES` (default: all). Only the panels
        holding one of them are drawn, and the legend names only them; values of
        other curves are ignored.
    empty_text : str, optional
        Shown before the first point.

    Raises
    ------
    ValueError
        For an unknown or empty ``series``.
    """

    def __init__(self, theme_name: str | None = "dark", parent: QWidget | None = None, *,
                 series: Sequence[str] = tuple(SERIES), empty_text: str = EMPTY_TEXT) -> None:
        super().__init__(parent)
        series = tuple(series)
        unknown = [name for name in series if name not in SERIES]
        if unknown or not series:
            raise ValueError(f"series must be one or more of {tuple(SERIES)}, got {series}.")
        self.series = tuple(name for name in SERIES if name in series)  # drawing order
        self.panels = sorted({SERIES[name][1] for name in self.series})
        self.empty_text = empty_text
        self._points: dict[str, list[tuple[int, float]]] = {name: [] for name in SERIES}
        self._planned_epochs = 0
        self._colors = theme_colors(theme_name)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(80 * len(self.panels))
        if "val_iou" in self.series:
            self.setToolTip("Training curves: one point per epoch; the star marks the best epoch")
        else:
            self.setToolTip("Training curves: one point per epoch")

    def sizeHint(self) -> QSize:  # noqa: D102 - Qt API
        return QSize(320, 140 * len(self.panels))

    # ------------------------------------------------------------ public API
    def points(self, name: str) -> list[tuple[int, float]]:
        """Return the ``(epoch, value)`` points of a curve.

        Parameters
        ----------
        name : {"train_loss", "val_loss", "val_iou"}
            The curve.

        Returns
        -------
        list of (int, float)
            Empty for a curve not in :attr:`series`.
        """
        return list(self._points[name])

    def add_point(self, name: str, epoch: int, value: float | None) -> None:
        """Add one point (None and NaN values, e.g. an epoch without validation, are skipped).

        Points of a curve not in :attr:`series` are ignored.
        """
        if name not in self.series or value is None or not math.isfinite(float(value)):
            return
        self._points[name].append((int(epoch), float(value)))
        self.update()

    def add_epoch(self, end: Any) -> None:
        """Add the values of an ``EpochEnd`` update (its ``epochs`` sets the x range)."""
        self._planned_epochs = max(self._planned_epochs, int(getattr(end, "epochs", 0) or 0))
        for name in SERIES:
            self.add_point(name, end.epoch, getattr(end, name, None))

    def set_history(self, history: list[Any]) -> None:
        """Replace all points by a run's history (``EpochEnd`` objects or their dicts)."""
        self.clear()
        for item in history:
            if isinstance(item, dict):
                self._planned_epochs = max(self._planned_epochs, int(item.get("epochs") or 0))
                for name in SERIES:
                    self.add_point(name, item["epoch"], item.get(name))
            else:
                self.add_epoch(item)

    def set_planned_epochs(self, epochs: int) -> None:
        """Fix the x axis to ``1..epochs`` (the run's planned length)."""
        self._planned_epochs = int(epochs)
        self.update()

    def clear(self) -> None:
        """Remove all points."""
        for values in self._points.values():
            values.clear()
        self._planned_epochs = 0
        self.update()

    def set_theme(self, theme_name: str | None) -> None:
        """Use a napari theme's colours (connect to ``viewer.events.theme``)."""
        self._colors = theme_colors(theme_name)
        self.update()

    # -------------------------------------------------------------- painting
    def paintEvent(self, event: Any) -> None:  # noqa: D102 - Qt API
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor(self._colors["background"]))
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        painter.setFont(font)
        gap = 6
        count = len(self.panels)
        panel_height = (self.height() - gap * (count - 1)) / count
        epochs = [e for values in self._points.values() for e, _ in values]
        x_max = max([self._planned_epochs, *epochs, 2])
        for row, panel in enumerate(self.panels):
            rect = QRectF(0, row * (panel_height + gap), self.width(), panel_height)
            self._paint_panel(painter, rect, panel, x_max, bottom=row == count - 1)
        if not epochs:
            painter.setPen(QColor(self._colors["text"]))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.empty_text)
        painter.end()

    def _paint_panel(self, painter: QPainter, rect: QRectF, panel: int, x_max: int, *,
                     bottom: bool) -> None:
        metrics = painter.fontMetrics()
        line_height = metrics.height()
        # the x axis' name ("epoch") ends left of the first tick's label, centred on the
        # plot's left edge: the margin fits both the y tick labels and it
        half_tick = metrics.horizontalAdvance("00") / 2
        left = max(metrics.horizontalAdvance("0.000"),
                   metrics.horizontalAdvance("epoch") + half_tick + 4)
        plot = rect.adjusted(left + 10, line_height + 4, -10, -(line_height + 6))
        if plot.width() < 20 or plot.height() < 20:
            return
        names = [n for n in self.series if SERIES[n][1] == panel]
        values = [v for n in names for _, v in self._points[n]]
        if panel == 1:
            y_low, y_high = 0.0, 1.0
        elif values:
            low, high = min(values), max(values)
            pad = 0.1 * (high - low) or 0.1 * max(abs(high), 1e-3)
            y_low, y_high = max(0.0, low - pad), high + pad
        else:
            y_low, y_high = 0.0, 1.0

        def to_px(epoch: float, value: float) -> QPointF:
            x = plot.left() + (epoch - 1) / max(1, x_max - 1) * plot.width()
            y = plot.bottom() - (value - y_low) / (y_high - y_low) * plot.height()
            return QPointF(x, y)

        text, grid, axis = (QColor(self._colors[k]) for k in ("text", "grid", "axis"))
        # grid and tick labels
        for tick in nice_ticks(y_low, y_high, 4):
            y = to_px(1, tick).y()
            painter.setPen(QPen(grid, 1))
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            painter.setPen(text)
            label_rect = QRectF(rect.left(), y - line_height / 2, plot.left() - rect.left() - 4,
                                line_height)
            right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
            painter.drawText(label_rect, right, _tick_label(tick))
        for tick in nice_ticks(1, x_max, 6):
            if tick != int(tick):
                continue
            x = to_px(tick, y_low).x()
            painter.setPen(QPen(grid, 1))
            painter.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
            painter.setPen(text)
            painter.drawText(QRectF(x - 30, plot.bottom() + 2, 60, line_height),
                             Qt.AlignmentFlag.AlignHCenter, str(int(tick)))
        painter.setPen(QPen(axis, 1))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(plot)
        # title (left) and legend (right) above the panel
        painter.setPen(text)
        title = PANEL_TITLES[panel]
        if bottom:  # name the x axis once, under the bottom panel
            painter.drawText(QRectF(rect.left(), plot.bottom() + 2,
                                    plot.left() - rect.left() - half_tick - 4, line_height),
                             Qt.AlignmentFlag.AlignRight, "epoch")
        painter.drawText(QRectF(rect.left() + 4, rect.top(), rect.width() / 2, line_height),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, title)
        x_legend = plot.right()
        for name in reversed(names):
            label, _, color = SERIES[name]
            width = metrics.horizontalAdvance(label)
            x_legend -= width
            painter.setPen(text)
            painter.drawText(QRectF(x_legend, rect.top(), width, line_height),
                             Qt.AlignmentFlag.AlignVCenter, label)
            x_legend -= 18
            painter.setPen(QPen(QColor(color), 2))
            y = rect.top() + line_height / 2
            painter.drawLine(QPointF(x_legend, y), QPointF(x_legend + 14, y))
            x_legend -= 10
        # curves
        painter.save()
        painter.setClipRect(plot.adjusted(-4, -4, 4, 4))
        for name in names:
            points = [to_px(e, v) for e, v in self._points[name]]
            if not points:
                continue
            color = QColor(SERIES[name][2])
            painter.setPen(QPen(color, 2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPolyline(QPolygonF(points))
            painter.setBrush(color)
            for point in points:
                painter.drawEllipse(point, 2.5, 2.5)
        if "val_iou" in names and self._points["val_iou"]:
            epoch, best = max(self._points["val_iou"], key=lambda p: p[1])
            painter.setPen(QPen(text, 1))
            painter.setBrush(QColor(SERIES["val_iou"][2]))
            painter.drawPath(_star(to_px(epoch, best), 7))
        painter.restore()


def _star(center: QPointF, radius: float) -> QPainterPath:
    """A five-pointed star path around ``center``."""
    path = QPainterPath()
    for k in range(10):
        r = radius if k % 2 == 0 else radius * 0.45
        angle = -math.pi / 2 + k * math.pi / 5
        point = QPointF(center.x() + r * math.cos(angle), center.y() + r * math.sin(angle))
        if k == 0:
            path.moveTo(point)
        else:
            path.lineTo(point)
    path.closeSubpath()
    return path


#: Bins of :class:`IoUHistogram` over [0, 1].
HISTOGRAM_BINS = 20
HISTOGRAM_X_LABEL = "IoU per image (dashed: median)"


def histogram_counts(values: Sequence[float], bins: int = HISTOGRAM_BINS) -> list[int]:
    """Count ``values`` in ``bins`` equal bins over [0, 1] (1.0 falls in the last bin).

    Parameters
    ----------
    values : sequence of float
        Scores in [0, 1]; values outside are clipped into the end bins, NaN skipped.
    bins : int, optional
        Number of bins.

    Returns
    -------
    list of int
        ``bins`` counts, lowest bin first.
    """
    counts = [0] * bins
    for value in values:
        if not math.isfinite(float(value)):
            continue
        counts[min(bins - 1, max(0, int(float(value) * bins)))] += 1
    return counts


class IoUHistogram(QWidget):
    """Histogram of the per-image IoU: bars over [0, 1], the median as a dashed line.

    Parameters
    ----------
    theme_name : str, optional
        napari theme id used for the colours (see :meth:`set_theme`).
    parent : QWidget, optional
        Parent widget.

    Notes
    -----
    Hovering a bar shows its range and count in a tooltip. Painting costs about a
    millisecond, and Qt paints only when the widget is shown.
    """

    def __init__(self, theme_name: str | None = "dark", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._values: list[float] = []
        self._counts = [0] * HISTOGRAM_BINS
        self._colors = theme_colors(theme_name)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(80)
        self.setMouseTracking(True)

    def sizeHint(self) -> QSize:  # noqa: D102 - Qt API
        return QSize(320, 140)

    # ------------------------------------------------------------ public API
    def set_values(self, values: Sequence[float]) -> None:
        """Show the histogram of ``values`` (one IoU per image)."""
        self._values = [float(v) for v in values if math.isfinite(float(v))]
        self._counts = histogram_counts(self._values)
        self.update()

    def counts(self) -> list[int]:
        """The number of images in each bin, lowest IoU first."""
        return list(self._counts)

    def median(self) -> float | None:
        """The median IoU marked by the dashed line (None without values)."""
        if not self._values:
            return None
        ordered = sorted(self._values)
        middle = len(ordered) // 2
        if len(ordered) % 2:
            return ordered[middle]
        return (ordered[middle - 1] + ordered[middle]) / 2

    def set_theme(self, theme_name: str | None) -> None:
        """Use a napari theme's colours (connect to ``viewer.events.theme``)."""
        self._colors = theme_colors(theme_name)
        self.update()

    def bin_at(self, x: float) -> int | None:
        """The bin under widget x coordinate ``x``, or None outside the plot."""
        plot = self._plot_rect()
        if plot is None or not plot.left() <= x < plot.right():
            return None
        return min(HISTOGRAM_BINS - 1, int((x - plot.left()) / plot.width() * HISTOGRAM_BINS))

    # -------------------------------------------------------------- painting
    def _font(self) -> QFont:
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        return font

    def _plot_rect(self) -> QRectF | None:
        from qtpy.QtGui import QFontMetrics

        metrics = QFontMetrics(self._font())
        line_height = metrics.height()
        left = metrics.horizontalAdvance("0000") + line_height + 8
        plot = QRectF(self.rect()).adjusted(left, 6, -14, -(2 * line_height + 6))
        return plot if plot.width() >= 20 and plot.height() >= 20 else None

    def event(self, event: Any) -> bool:  # noqa: D102 - Qt API
        if event.type() == QEvent.Type.ToolTip:
            k = self.bin_at(event.pos().x())
            if k is None:
                QToolTip.hideText()
                event.ignore()
                return True
            low, high = k / HISTOGRAM_BINS, (k + 1) / HISTOGRAM_BINS
            QToolTip.showText(event.globalPos(),
                              f"IoU {low:.2f}-{high:.2f}: {self._counts[k]} image(s)", self)
            return True
        return super().event(event)

    def paintEvent(self, event: Any) -> None:  # noqa: D102 - Qt API
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(self._colors["background"]))
        painter.setFont(self._font())
        plot = self._plot_rect()
        if plot is not None:
            self._paint_plot(painter, plot)
        painter.end()

    def _paint_plot(self, painter: QPainter, plot: QRectF) -> None:
        metrics = painter.fontMetrics()
        line_height = metrics.height()
        text, grid, axis = (QColor(self._colors[k]) for k in ("text", "grid", "axis"))
        background, bar = QColor(self._colors["background"]), QColor(self._colors["bar"])
        top = max(1, max(self._counts))
        y_ticks = [t for t in nice_ticks(0, top, 4) if t == int(t)]
        y_high = top * 1.1  # room above the tallest bar

        def y_of(count: float) -> float:
            return plot.bottom() - count / y_high * plot.height()

        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        for tick in y_ticks:
            y = y_of(tick)
            painter.setPen(QPen(grid, 1))
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            painter.setPen(text)
            painter.drawText(QRectF(plot.left() - 44, y - line_height / 2, 40, line_height),
                             right, _tick_label(tick))
        for tick in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
            x = plot.left() + tick * plot.width()
            painter.setPen(text)
            painter.drawText(QRectF(x - 20, plot.bottom() + 2, 40, line_height),
                             Qt.AlignmentFlag.AlignHCenter, f"{tick:.1f}")
        # bars
        width = plot.width() / HISTOGRAM_BINS
        painter.setPen(QPen(background, 1))
        painter.setBrush(bar)
        for k, count in enumerate(self._counts):
            if count:
                y = y_of(count)
                painter.drawRect(QRectF(plot.left() + k * width, y, width, plot.bottom() - y))
        median = self.median()
        if median is not None:
            x = plot.left() + median * plot.width()
            painter.setPen(QPen(text, 1, Qt.PenStyle.DashLine))
            painter.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
        painter.setPen(QPen(axis, 1))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(plot)
        # axis names: x under the ticks, y turned along the left edge
        painter.setPen(text)
        painter.drawText(QRectF(plot.left(), plot.bottom() + line_height + 2, plot.width(),
                                line_height), Qt.AlignmentFlag.AlignHCenter, HISTOGRAM_X_LABEL)
        painter.save()
        painter.translate(2, plot.center().y())
        painter.rotate(-90)
        painter.drawText(QRectF(-plot.height() / 2, 0, plot.height(), line_height),
                         Qt.AlignmentFlag.AlignHCenter, "images")
        painter.restore()
